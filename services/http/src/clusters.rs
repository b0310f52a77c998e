//! The cluster API: list and explain clusters, and accept human corrections.
//!
//! Corrections are validated here, then appended to the ticket log (keyed by product, so they
//! are ordered with that product's tickets) and applied by the pipeline; the answer is 202 and
//! the change shows in `GET /api/v1/clusters/{id}` once applied.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sevloop_core::cluster::corrections::{Correction, CorrectionRequest, CORRECTION_RECORD};
use sevloop_store::{ClusterFilter, ClusterSort};

use sevloop_core::access::Need;

use crate::extract::{Body, Id, Params};
use crate::{views, Actor, ApiError, AppState};

/// Most tickets one split may name.
const MAX_SPLIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    product: Option<String>,
    #[serde(default)]
    sort: ClusterSort,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(crate) async fn list(
    actor: Actor,
    State(s): State<AppState>,
    Params(q): Params<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadTickets)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("`limit` must be between 1 and 500"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(bad("`offset` must not be negative"));
    }
    let filter = ClusterFilter {
        product: q.product,
        sort: q.sort,
        limit,
        offset,
    };
    let (items, total) = s.store.clusters_page(&filter).await?;
    Ok(Json(crate::page(items, total, offset, limit)))
}

pub(crate) async fn get_one(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadTickets)?;
    let cluster = s
        .store
        .cluster(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", &id))?;
    Ok(Json(views::cluster(
        cluster,
        actor.role.text_view(),
        &s.redactor,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeBody {
    /// The cluster to merge with.
    with: String,
}

pub(crate) async fn merge(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
    body: Body<MergeBody>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::CorrectClusters)?;
    let body = body.parsed()?;
    Ok(accepted(request_merge(&s, &actor, id, body.with).await?))
}

/// Checks and asks for a merge of two clusters: the one path of the API and the dashboard.
pub(crate) async fn request_merge(
    s: &AppState,
    actor: &Actor,
    id: String,
    with: String,
) -> Result<CorrectionRequest, ApiError> {
    actor.need(Need::CorrectClusters)?;
    if id == with {
        return Err(bad("a cluster cannot be merged with itself"));
    }
    let product = live_product(s, &id).await?;
    if live_product(s, &with).await? != product {
        return Err(bad("clusters of different products cannot be merged"));
    }
    let correction = Correction::Merge {
        cluster_ids: [id, with],
    };
    submit(s, actor, product, correction).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitBody {
    /// The tickets that form the new cluster.
    ticket_ids: Vec<String>,
}

pub(crate) async fn split(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
    body: Body<SplitBody>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::CorrectClusters)?;
    let body = body.parsed()?;
    Ok(accepted(
        request_split(&s, &actor, id, body.ticket_ids).await?,
    ))
}

/// Checks and asks for a split of tickets out of a cluster: the one path of the API and the
/// dashboard.
pub(crate) async fn request_split(
    s: &AppState,
    actor: &Actor,
    id: String,
    ticket_ids: Vec<String>,
) -> Result<CorrectionRequest, ApiError> {
    actor.need(Need::CorrectClusters)?;
    if ticket_ids.is_empty() || ticket_ids.len() > MAX_SPLIT {
        return Err(bad(format!(
            "`ticket_ids` must hold 1 to {MAX_SPLIT} tickets"
        )));
    }
    let product = live_product(s, &id).await?;
    for ticket_id in &ticket_ids {
        let ticket = s
            .store
            .ticket(ticket_id)
            .await?
            .ok_or_else(|| ApiError::not_found("ticket", ticket_id))?;
        if ticket.cluster_id != id {
            return Err(bad(format!(
                "ticket `{ticket_id}` is not in cluster `{id}`"
            )));
        }
    }
    let correction = Correction::Split {
        cluster_id: id,
        ticket_ids,
    };
    submit(s, actor, product, correction).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    to_cluster_id: String,
}

pub(crate) async fn move_ticket(
    actor: Actor,
    State(s): State<AppState>,
    Id(ticket_id): Id,
    body: Body<MoveBody>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::CorrectClusters)?;
    let body = body.parsed()?;
    let ticket = s
        .store
        .ticket(&ticket_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket", &ticket_id))?;
    if live_product(&s, &body.to_cluster_id).await? != ticket.product {
        return Err(bad(
            "a ticket can only move to a cluster of its own product",
        ));
    }
    let correction = Correction::Move {
        ticket_id,
        to_cluster_id: body.to_cluster_id,
    };
    Ok(accepted(
        submit(&s, &actor, ticket.product, correction).await?,
    ))
}

/// The product of a cluster that exists and has not been merged away.
async fn live_product(s: &AppState, id: &str) -> Result<String, ApiError> {
    let live = s
        .store
        .live_cluster(id)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", id))?;
    if live.cluster_id != id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "merged",
            format!("cluster `{id}` was merged into `{}`", live.cluster_id),
        ));
    }
    Ok(live.product)
}

async fn submit(
    s: &AppState,
    actor: &Actor,
    product: String,
    correction: Correction,
) -> Result<CorrectionRequest, ApiError> {
    let request = CorrectionRequest {
        product: product.clone(),
        correction,
        actor_role: actor.role.actor(),
        requested_at: chrono::Utc::now(),
    };
    let payload = serde_json::to_vec(&request).map_err(|e| ApiError::internal(&e))?;
    crate::intake::append_record(s, &product, CORRECTION_RECORD, payload).await?;
    Ok(request)
}

/// The answer to a correction on the log: 202, applied by the pipeline in log order.
fn accepted(request: CorrectionRequest) -> impl IntoResponse {
    (StatusCode::ACCEPTED, Json(json!({"accepted": request})))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}
