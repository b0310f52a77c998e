//! Admin: tokens and the ownership catalog. A new token's secret is in the answer once; only
//! its hash is kept. The catalog is shown without URLs or secrets, and replaced whole: the new
//! file is validated first (an error names the line) and only then written and swapped in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sevloop_core::access::{Need, Role};
use sevloop_core::{CatalogError, CatalogSummary};

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
    Body(body): Body<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::Administer)?;
    let role = Role::parse(&body.role, body.team.as_deref()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_role",
            "`role` must be support, leadership, admin, or team with a `team`",
        )
    })?;
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
    if !s.store.revoke_token(&id, chrono::Utc::now()).await? {
        return Err(ApiError::not_found("live token", &id));
    }
    tracing::info!(token_id = %id, by = %actor.token_id, "token revoked");
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
    match catalog.replace(text) {
        Ok(summary) => {
            tracing::info!(by = %actor.token_id, "catalog replaced");
            Ok(Json(summary))
        }
        Err(CatalogRefused::NoFile) => Err(no_file()),
        Err(CatalogRefused::Invalid(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_catalog",
            e.to_string(),
        )),
        Err(e @ CatalogRefused::Write(_)) => Err(ApiError::internal(&e)),
    }
}

fn no_file() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_catalog_file",
        CatalogRefused::NoFile.to_string(),
    )
}
