//! `POST /api/v1/tickets`: one ticket or a JSON array of them. All are validated first; if any
//! is invalid, none is appended and the answer names each bad ticket and field.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use sevloop_bus::LogWriter;
use sevloop_bus::Outgoing;
use sevloop_core::ticket::MAX_TICKET_BYTES;
use sevloop_core::{TicketError, TicketEvent, RECORD_HEADER};

use sevloop_core::access::Need;

use crate::extract::Raw;
use crate::{Actor, ApiError, AppState};

const MAX_BATCH: usize = 1000;

/// Where accepted tickets go: the ticket log, keyed by product.
#[derive(Clone)]
pub struct Intake {
    pub writer: LogWriter,
    pub topic: String,
}

pub(crate) async fn post_tickets(
    actor: Actor,
    State(s): State<AppState>,
    Raw(body): Raw,
) -> Result<impl IntoResponse, ApiError> {
    actor.need(Need::FileTickets)?;
    let intake = intake_of(&s)?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            format!(
                "a batch holds 1 to {MAX_BATCH} tickets; this one has {}",
                items.len()
            ),
        ));
    }
    let mut records = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let now = chrono::Utc::now();
    for (i, item) in items.into_iter().enumerate() {
        match validate(item, now) {
            Ok(record) => records.push(record),
            Err(e) => errors.push(json!({"index": i, "code": e.code(), "message": e.to_string()})),
        }
    }
    if let Some(first) = errors.first() {
        let message = format!(
            "ticket {}: {}",
            first["index"],
            first["message"].as_str().unwrap_or_default()
        );
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_ticket", message)
                .with_details(json!(errors)),
        );
    }
    let n = records.len();
    intake
        .writer
        .send(&intake.topic, records)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    s.metrics.tickets_accepted.inc_by(n as u64);
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": n}))))
}

/// The ticket log writer, if this instance has one.
pub(crate) fn intake_of(s: &AppState) -> Result<&Intake, ApiError> {
    s.intake.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "intake_disabled",
            "this instance does not accept tickets or corrections",
        )
    })
}

/// How far ahead of this server's clock a ticket's event time may be (clocks drift): a ticket
/// from further on would skew every rate and chart its product has, for good.
const MAX_CLOCK_AHEAD: chrono::Duration = chrono::Duration::hours(24);

fn validate(item: Value, now: chrono::DateTime<chrono::Utc>) -> Result<Outgoing, TicketError> {
    let payload = serde_json::to_vec(&item).unwrap_or_default();
    if payload.len() > MAX_TICKET_BYTES {
        return Err(TicketError::TooLarge {
            size: payload.len(),
            max: MAX_TICKET_BYTES,
        });
    }
    let ticket = TicketEvent::from_value(item)?;
    if ticket.event_time > now + MAX_CLOCK_AHEAD {
        return Err(TicketError::Field {
            field: "event_time".into(),
            problem: format!(
                "is {}, more than a day after this server's clock ({})",
                ticket.event_time.to_rfc3339(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        });
    }
    Ok(Outgoing {
        key: Some(ticket.product.into_bytes()),
        payload,
        headers: Vec::new(),
    })
}

/// Appends a record that is not a ticket (a correction, a SEV action) to the ticket log, keyed
/// by `product` so it is ordered with that product's tickets, marked with its kind.
pub(crate) async fn append_record(
    s: &AppState,
    product: &str,
    kind: &str,
    payload: Vec<u8>,
) -> Result<(), ApiError> {
    let intake = intake_of(s)?;
    let record = Outgoing {
        key: Some(product.as_bytes().to_vec()),
        payload,
        headers: vec![(RECORD_HEADER.into(), kind.as_bytes().to_vec())],
    };
    intake
        .writer
        .send(&intake.topic, vec![record])
        .await
        .map_err(|e| ApiError::unavailable(&e))
}
