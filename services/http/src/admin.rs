//! Admin: tokens, the ownership catalog, and endpoints a 410 disabled. A new token's secret is in the answer once; only
//! its hash is kept. The catalog is shown without URLs or secrets, and replaced whole: the new
//! file is validated first (an error names the line) and only then written and swapped in.

use std::io::ErrorKind;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sevloop_core::access::{Need, Role};
use sevloop_core::{CatalogError, CatalogSummary};
use sevloop_store::{DisabledEndpoint, Revoked};

use crate::extract::{Body, Id, Raw};
use crate::{auth, Actor, ApiError, AppState};

pub(crate) async fn list_tokens(
    actor: Actor,
    State(s): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    Ok(Json(json!({"items": s.store.tokens().await?})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// support, team, leadership or admin.
    role: String,
    /// The team, for the team role.
    team: Option<String>,
    #[serde(default)]
    label: String,
}

pub(crate) async fn create_token(
    actor: Actor,
    State(s): State<AppState>,
    body: Body<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    let body = body.parsed()?;
    let role = Role::parse(&body.role, body.team.as_deref()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_role",
            "`role` must be support, leadership, admin, or team with a `team`",
        )
    })?;
    if let (Role::Team { team }, Some(catalog)) = (&role, &s.catalog) {
        if !catalog.summary().teams.iter().any(|t| &t.name == team) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_team",
                format!("the catalog has no team {team:?}"),
            ));
        }
    }
    if body.label.chars().count() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_label",
            "`label` holds at most 200 characters",
        ));
    }
    let (token_id, secret) = auth::new_token();
    let now = chrono::Utc::now();
    s.store
        .create_token(&token_id, &auth::hash(&secret), &role, &body.label, now)
        .await?;
    tracing::info!(token_id = %token_id, role = %role.actor(), by = %actor.token_id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token_id": token_id, "secret": secret, "role": role.name(), "team": role.team(), "label": body.label}),
        ),
    ))
}

pub(crate) async fn revoke_token(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    match s.store.revoke_token(&id, chrono::Utc::now()).await? {
        Revoked::Done => {}
        Revoked::NoSuchToken => return Err(ApiError::not_found("live token", &id)),
        Revoked::LastAdmin => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last_admin_token",
                format!("{id} is the last admin token; create another admin token first"),
            ))
        }
    }
    tracing::info!(token_id = %id, by = %actor.token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Endpoints a 410 Gone disabled, each saying whether the catalog in use still has it (when
/// sevloop runs with a catalog file). The record of one that left is kept: a channel added
/// back at the same URL is still gone.
pub(crate) async fn list_disabled_endpoints(
    actor: Actor,
    State(s): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    let catalog = s.catalog.as_ref().map(|c| c.summary());
    let items: Vec<Listed> = s
        .store
        .disabled_endpoints()
        .await?
        .into_iter()
        .map(|endpoint| Listed {
            in_catalog: catalog.as_ref().map(|c| c.has_endpoint(&endpoint.name)),
            endpoint,
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// A disabled endpoint as the list shows it.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    endpoint: DisabledEndpoint,
    /// Absent when sevloop runs without a catalog file.
    #[serde(skip_serializing_if = "Option::is_none")]
    in_catalog: Option<bool>,
}

/// Calls a disabled endpoint again: notifications go to it, and the dispatcher settles those it
/// held meanwhile.
pub(crate) async fn enable_endpoint(
    actor: Actor,
    State(s): State<AppState>,
    Id(name): Id,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    if !s.store.enable_endpoint(&name, None).await? {
        return Err(ApiError::not_found("disabled endpoint", &name));
    }
    tracing::info!(endpoint = %name, by = %actor.token_id, "endpoint enabled");
    Ok(StatusCode::NO_CONTENT)
}

/// The catalog in use, as the HTTP edge may read and replace it.
pub trait CatalogAdmin: Send + Sync {
    fn summary(&self) -> CatalogSummary;
    /// Validates `text` as a catalog file, then writes it and swaps it in.
    fn replace(&self, text: &str) -> Result<CatalogSummary, CatalogRefused>;
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogRefused {
    #[error(transparent)]
    Invalid(#[from] CatalogError),
    #[error("sevloop runs without a catalog file (set `catalog` in the settings to manage one)")]
    NoFile,
    #[error("the catalog file could not be written: {0}")]
    Write(#[source] std::io::Error),
}

pub(crate) async fn get_catalog(
    actor: Actor,
    State(s): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    let catalog = s.catalog.as_ref().ok_or_else(no_file)?;
    Ok(Json(catalog.summary()))
}

/// Replaces the catalog with the TOML file in the body.
pub(crate) async fn put_catalog(
    actor: Actor,
    State(s): State<AppState>,
    Raw(body): Raw,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    let catalog = s.catalog.as_ref().ok_or_else(no_file)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the catalog must be UTF-8 TOML text",
        )
    })?;
    // Validating and writing the file is blocking work: off the async workers.
    let (catalog, text) = (catalog.clone(), text.to_owned());
    let replaced = tokio::task::spawn_blocking(move || catalog.replace(&text))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    match replaced {
        Ok(summary) => {
            tracing::info!(by = %actor.token_id, "catalog replaced");
            Ok(Json(summary))
        }
        Err(e) => Err(refused(e)),
    }
}

/// The answer to a refused catalog. A file sevloop may not write (a read-only mount, say) is
/// the deployment's choice, not a fault: the catalog in use stays, and the answer says so.
fn refused(e: CatalogRefused) -> ApiError {
    match e {
        CatalogRefused::NoFile => no_file(),
        CatalogRefused::Invalid(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_catalog",
            e.to_string(),
        ),
        CatalogRefused::Write(io)
            if matches!(
                io.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            ApiError::new(
                StatusCode::CONFLICT,
                "catalog_read_only",
                format!(
                    "the catalog file cannot be written here ({io}); the catalog in use is \
                     unchanged: change the file where it is managed"
                ),
            )
        }
        e @ CatalogRefused::Write(_) => ApiError::internal(&e),
    }
}

fn no_file() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_catalog_file",
        CatalogRefused::NoFile.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_file_that_cannot_be_written_is_a_conflict_that_says_the_catalog_stays() {
        for kind in [ErrorKind::ReadOnlyFilesystem, ErrorKind::PermissionDenied] {
            let answer = refused(CatalogRefused::Write(kind.into()));
            assert_eq!(answer.status(), StatusCode::CONFLICT, "{kind:?}");
            assert!(
                answer.message().contains("the catalog in use is unchanged"),
                "{}",
                answer.message()
            );
        }
    }

    #[test]
    fn other_write_failures_stay_internal_errors_that_reveal_nothing() {
        let answer = refused(CatalogRefused::Write(ErrorKind::StorageFull.into()));
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.message(), "internal error");
    }
}
