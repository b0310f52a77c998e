//! `GET /api/v1/leadership/overview`: the numbers leadership watches, aggregated; no ticket
//! text, no customer identifiers (cluster labels and SEV titles are redacted).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_core::redact::Redactor;
use sevloop_store::{Overview, Period, Store, StoreError};

use crate::extract::Params;
use crate::{Actor, ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverviewQuery {
    /// Event-time period start (RFC 3339), inclusive.
    from: Option<DateTime<Utc>>,
    /// Event-time period end, exclusive.
    to: Option<DateTime<Utc>>,
    /// How many clusters the Pareto lists (default 20).
    pareto: Option<i64>,
}

pub(crate) async fn overview(
    actor: Actor,
    State(s): State<AppState>,
    Params(q): Params<OverviewQuery>,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::ReadAggregates)?;
    let pareto = q.pareto.unwrap_or(20);
    if !(1..=200).contains(&pareto) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "`pareto` must be between 1 and 200",
        ));
    }
    let period = Period {
        from: q.from,
        to: q.to,
    };
    Ok(Json(numbers(&s.store, &s.redactor, period, pareto).await?))
}

/// The leadership numbers as people may see them: cluster labels and SEV titles redacted (they
/// are drawn from ticket text). The API, the dashboard and the daily digest all show these.
pub async fn numbers(
    store: &Store,
    redactor: &Redactor,
    period: Period,
    pareto: i64,
) -> Result<Overview, StoreError> {
    let mut overview = store.leadership(period, pareto).await?;
    for row in &mut overview.pareto {
        row.label = redactor.redact_all(&row.label);
    }
    for d in &mut overview.declined {
        d.title = redactor.redact_all(&d.title);
    }
    Ok(overview)
}
