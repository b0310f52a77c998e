//! The SEV API: list and read SEVs, and act on them (acknowledge, mitigate, resolve, decline,
//! reroute, merge).
//!
//! An action is checked here against the SEV as it is now, then appended to the ticket log
//! (keyed by the SEV's product, so it is ordered with that product's tickets and a replay
//! applies it at the same point) and applied by the pipeline. The answer waits briefly for the
//! pipeline: 200 with the SEV once applied, 409 if it was refused in the meantime, 202 if the
//! pipeline has not got to it yet.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sevloop_core::redact::Personal;
use sevloop_core::sev::{SevAction, SevActionRequest, SEV_ACTION_RECORD};
use sevloop_core::{SevState, Severity};
use sevloop_store::{ActionRow, SevFilter, SevRow, SevSort};

use sevloop_core::access::Need;

use crate::extract::{Body, Id, Params};
use crate::{Actor, ApiError, AppState};

/// How long an action request waits for the pipeline to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(5);
const APPLY_POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
    team: Option<String>,
    severity: Option<String>,
    product: Option<String>,
    /// Opened (event time) at or after this RFC 3339 time.
    from: Option<DateTime<Utc>>,
    /// Opened before this time.
    to: Option<DateTime<Utc>>,
    #[serde(default)]
    sort: SevSort,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(crate) async fn list(
    actor: Actor,
    State(s): State<AppState>,
    Params(q): Params<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadSevs)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("`limit` must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(bad("`offset` must not be negative"));
    }
    if let Some(state) = q.state.as_deref().filter(|s| SevState::parse(s).is_none()) {
        return Err(bad(format!(
            "`state` must be one of open, acknowledged, mitigated, resolved, declined, merged; got `{state}`"
        )));
    }
    if let Some(sev) = q
        .severity
        .as_deref()
        .filter(|s| Severity::parse(s).is_none())
    {
        return Err(bad(format!(
            "`severity` must be one of SEV1, SEV2, SEV3, SEV4; got `{sev}`"
        )));
    }
    let filter = SevFilter {
        state: q.state,
        team: q.team,
        severity: q.severity,
        product: q.product,
        from: q.from,
        to: q.to,
        sort: q.sort,
        limit,
        offset,
    };
    let (items, total) = s.store.sevs_page(&filter).await?;
    Ok(Json(crate::page(items, total, offset, limit)))
}

pub(crate) async fn get_one(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadSevs)?;
    let sev = s
        .store
        .sev(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("SEV", &id))?;
    let mut body = serde_json::to_value(sev).map_err(|e| ApiError::internal(&e))?;
    body["ticket_ids"] = json!(s.store.sev_ticket_ids(&id).await?);
    body["timeline"] = json!(s.store.sev_timeline(&id).await?);
    body["notifications"] = json!(s.store.notifications_of(&id).await?);
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclineBody {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerouteBody {
    team: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeBody {
    into: String,
}

pub(crate) async fn acknowledge(
    actor: Actor,
    s: State<AppState>,
    id: Id,
) -> Result<Response, ApiError> {
    act(actor, s, id, |()| SevAction::Acknowledge, Ok(())).await
}

pub(crate) async fn mitigate(
    actor: Actor,
    s: State<AppState>,
    id: Id,
) -> Result<Response, ApiError> {
    act(actor, s, id, |()| SevAction::Mitigate, Ok(())).await
}

pub(crate) async fn resolve(
    actor: Actor,
    s: State<AppState>,
    id: Id,
) -> Result<Response, ApiError> {
    act(actor, s, id, |()| SevAction::Resolve, Ok(())).await
}

pub(crate) async fn decline(
    actor: Actor,
    s: State<AppState>,
    id: Id,
    body: Body<DeclineBody>,
) -> Result<Response, ApiError> {
    let decline = |body: DeclineBody| SevAction::Decline {
        reason: body.reason,
    };
    act(actor, s, id, decline, body.parsed()).await
}

pub(crate) async fn reroute(
    actor: Actor,
    s: State<AppState>,
    id: Id,
    body: Body<RerouteBody>,
) -> Result<Response, ApiError> {
    let reroute = |body: RerouteBody| SevAction::Reroute {
        team: body.team,
        note: body.note,
    };
    act(actor, s, id, reroute, body.parsed()).await
}

pub(crate) async fn merge(
    actor: Actor,
    s: State<AppState>,
    id: Id,
    body: Body<MergeBody>,
) -> Result<Response, ApiError> {
    let merge = |body: MergeBody| SevAction::Merge { into: body.into };
    act(actor, s, id, merge, body.parsed()).await
}

/// An action on SEV `id`, made of the request's body by `action` once the caller is known to
/// be allowed to act on it: a caller who may not is refused (403) whatever body it sent (the
/// body's error waits in `body` until then).
async fn act<B>(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
    action: impl FnOnce(B) -> SevAction,
    body: Result<B, ApiError>,
) -> Result<Response, ApiError> {
    let sev = actionable(&s, &actor, &id).await?;
    let action = action(body?);
    Ok(match perform(&s, &actor, sev, action).await? {
        Outcome::Applied { action, sev } => {
            Json(json!({"action": action, "sev": sev})).into_response()
        }
        Outcome::Pending(request) => {
            (StatusCode::ACCEPTED, Json(json!({"accepted": request}))).into_response()
        }
    })
}

/// What became of an action once asked for.
pub(crate) enum Outcome {
    /// The pipeline applied it; the SEV as it is now.
    Applied {
        action: ActionRow,
        sev: Option<Box<SevRow>>,
    },
    /// On the log, not applied yet.
    Pending(SevActionRequest),
}

/// The SEV `id`, if `actor` may act on it. A role that may act on no SEV is refused before the
/// SEV is looked up or the request's body read: 403, whatever it asked.
pub(crate) async fn actionable(s: &AppState, actor: &Actor, id: &str) -> Result<SevRow, ApiError> {
    let own = actor.role.team().unwrap_or_default();
    actor.need(Need::ActOnSev { team: own })?;
    let sev = s
        .store
        .sev(id)
        .await?
        .ok_or_else(|| ApiError::not_found("SEV", id))?;
    actor.need(Need::ActOnSev { team: &sev.team })?;
    Ok(sev)
}

/// Checks an action (with personal data removed from what was typed) against the SEV as it is
/// now, appends it to the ticket log and waits for the pipeline: the one path of the API and of
/// the dashboard's forms.
pub(crate) async fn perform(
    s: &AppState,
    actor: &Actor,
    sev: SevRow,
    action: SevAction,
) -> Result<Outcome, ApiError> {
    let action = redacted(s, &sev.id, action).await?;
    let state = SevState::parse(&sev.state).unwrap_or(SevState::Open);
    state.after(&action).map_err(|e| match e {
        sevloop_core::sev::TransitionError::State { .. } => {
            ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_action",
            e.to_string(),
        ),
    })?;
    let request = SevActionRequest {
        action_id: format!("act-{}", uuid::Uuid::new_v4().simple()),
        sev_id: sev.id.clone(),
        product: sev.product.clone(),
        action,
        actor_role: actor.role.actor(),
        requested_at: chrono::Utc::now(),
    };
    let payload = serde_json::to_vec(&request).map_err(|e| ApiError::internal(&e))?;
    crate::intake::append_record(s, &sev.product, SEV_ACTION_RECORD, payload).await?;
    applied(s, request).await
}

/// Decline reasons and reroute notes stay visible on the SEV, to leadership too, and go out in
/// notifications: personal data goes first, with the names, emails and ids of the SEV's own
/// customers, which no pattern knows.
async fn redacted(s: &AppState, sev_id: &str, action: SevAction) -> Result<SevAction, ApiError> {
    let text = match &action {
        SevAction::Decline { reason } => reason,
        SevAction::Reroute { note: Some(n), .. } => n,
        _ => return Ok(action),
    };
    let filers = s.store.sev_filers(sev_id).await?;
    let mut clean = s.redactor.redact_all(text);
    for filer in &filers {
        let personal = Personal {
            name: filer.name.as_deref(),
            customer_id: Some(&filer.id),
            email: filer.email.as_deref(),
        };
        if s.redactor.names(text, &personal) {
            clean = s.redactor.redact(&clean, &personal);
        }
    }
    Ok(match action {
        SevAction::Decline { .. } => SevAction::Decline { reason: clean },
        SevAction::Reroute { team, .. } => SevAction::Reroute {
            team,
            note: Some(clean),
        },
        other => other,
    })
}

/// Waits for the pipeline's verdict on an action.
async fn applied(s: &AppState, request: SevActionRequest) -> Result<Outcome, ApiError> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(done) = s.store.action(&request.action_id).await? {
            if let Some(why) = done.outcome.strip_prefix("refused: ") {
                return Err(ApiError::new(StatusCode::CONFLICT, "refused", why));
            }
            let sev = s.store.sev(&request.sev_id).await?.map(Box::new);
            return Ok(Outcome::Applied { action: done, sev });
        }
        tokio::time::sleep(APPLY_POLL).await;
    }
    Ok(Outcome::Pending(request))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}
