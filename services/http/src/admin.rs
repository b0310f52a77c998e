//! Admin: tokens. A new token's secret is in the answer once; only its hash is kept.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sevloop_core::access::{Need, Role};

use crate::extract::{Body, Id};
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
