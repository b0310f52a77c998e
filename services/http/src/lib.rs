//! The HTTP edge: ticket intake, the read API, search, health, metrics and the HTML pages.
//! Handlers are thin: they validate, call the store or index, and shape the answer.

mod admin;
pub mod auth;
mod charts;
mod clusters;
mod error;
mod extract;
mod intake;
pub mod leadership;
mod metrics;
mod pages;
mod sevs;
mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sevloop_core::redact::Redactor;
use sevloop_index::TicketIndex;
use sevloop_store::Store;
use tower_http::catch_panic::CatchPanicLayer;

pub use admin::{CatalogAdmin, CatalogRefused};
pub use auth::Actor;
pub use error::ApiError;
use extract::{Id, Params};
pub use intake::Intake;
pub use metrics::Metrics;
pub use pages::{digest_html, period_words};
use sevloop_core::access::{Need, TextView};

/// Largest request body accepted (a batch of tickets).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub index: Arc<TicketIndex>,
    /// Absent in processes that only read (no ticket log to write to).
    pub intake: Option<Intake>,
    pub metrics: Arc<Metrics>,
    /// Hides personal data in what people type (decline reasons, reroute notes).
    pub redactor: Arc<Redactor>,
    /// The ownership catalog, for admins; absent where sevloop runs without a catalog file.
    pub catalog: Option<Arc<dyn admin::CatalogAdmin>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/tickets", post(intake::post_tickets))
        .route("/api/v1/tickets/{id}", get(get_ticket))
        .route("/api/v1/tickets/{id}/move", post(clusters::move_ticket))
        .route("/api/v1/clusters", get(clusters::list))
        .route("/api/v1/clusters/{id}", get(clusters::get_one))
        .route("/api/v1/clusters/{id}/merge", post(clusters::merge))
        .route("/api/v1/clusters/{id}/split", post(clusters::split))
        .route("/api/v1/sevs", get(sevs::list))
        .route("/api/v1/sevs/{id}", get(sevs::get_one))
        .route("/api/v1/sevs/{id}/acknowledge", post(sevs::acknowledge))
        .route("/api/v1/sevs/{id}/mitigate", post(sevs::mitigate))
        .route("/api/v1/sevs/{id}/resolve", post(sevs::resolve))
        .route("/api/v1/sevs/{id}/decline", post(sevs::decline))
        .route("/api/v1/sevs/{id}/reroute", post(sevs::reroute))
        .route("/api/v1/sevs/{id}/merge", post(sevs::merge))
        .route("/api/v1/search", get(search))
        .route("/api/v1/leadership/overview", get(leadership::overview))
        .route(
            "/api/v1/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route(
            "/api/v1/endpoints/disabled",
            get(admin::list_disabled_endpoints),
        )
        .route(
            "/api/v1/endpoints/{id}/enable",
            post(admin::enable_endpoint),
        )
        .route(
            "/api/v1/catalog",
            get(admin::get_catalog).put(admin::put_catalog),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(pages::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }))
        .with_state(state)
}

/// The API's OpenAPI 3.1 document; `tests/api_contract.rs` keeps it true.
const OPENAPI: &str = include_str!("../../../schemas/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/v1/openapi.json",
    )
}

async fn get_ticket(
    actor: Actor,
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadTickets)?;
    let ticket = s
        .store
        .ticket(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket", &id))?;
    Ok(Json(views::ticket(
        ticket,
        actor.role.text_view(),
        &s.redactor,
    )))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

async fn search(
    actor: Actor,
    State(s): State<AppState>,
    Params(q): Params<SearchQuery>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadTickets)?;
    let query = q.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "`q` must not be empty",
        ));
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let (total, hits) = search_as(&s, &actor, query, limit).await?;
    Ok(Json(json!({"total": total, "items": hits})))
}

/// Full-text search, off the async threads, the hits' text shown as the caller's role may see it.
async fn search_as(
    s: &AppState,
    actor: &Actor,
    query: String,
    limit: usize,
) -> Result<(usize, Vec<sevloop_index::Hit>), ApiError> {
    let view = actor.role.text_view();
    // A team sees tickets with personal data redacted; searching by it would undo that.
    if !matches!(view, TextView::Full) && !s.redactor.find(&query, &Default::default()).is_empty() {
        return Err(personal_data_search(
            "the search holds personal data (an email, phone, card or similar)",
        ));
    }
    let index = s.index.clone();
    let searched = query.clone();
    let (total, hits) = tokio::task::spawn_blocking(move || index.search(&searched, limit))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let filers = match view {
        TextView::Full => Default::default(),
        _ => {
            let ids: Vec<String> = hits.iter().map(|h| h.ticket_id.clone()).collect();
            s.store.filers(&ids).await?
        }
    };
    // Names and customer ids are no pattern: what shows them is that they are a hit's own.
    if filers
        .values()
        .any(|f| s.redactor.names(&query, &views::personal(f)))
    {
        return Err(personal_data_search(
            "the search names a customer of the tickets it finds",
        ));
    }
    let hits = hits
        .into_iter()
        .map(|h| {
            let filer = filers.get(&h.ticket_id).cloned().unwrap_or_default();
            views::hit(h, view, &s.redactor, &filer)
        })
        .collect();
    Ok((total, hits))
}

/// A team's search by personal data, refused: `what` says what gave it away.
fn personal_data_search(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "personal_data_search",
        format!("{what}: only support may search by it"),
    )
}

/// One page of a list: `{items, total, next_offset}` (`next_offset` null on the last page).
fn page<T: serde::Serialize>(
    items: Vec<T>,
    total: i64,
    offset: i64,
    limit: i64,
) -> serde_json::Value {
    let next = offset.saturating_add(limit);
    json!({"items": items, "total": total, "next_offset": (next < total).then_some(next)})
}

async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    s.store
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok("ready")
}

async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let stats = s.store.stats().await?;
    s.metrics.set_stats(&stats, s.index.doc_count());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    ))
}
