//! Ticket rows and cluster checkpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::{Assignment, TicketEvent};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// What the pipeline needs to know about a ticket it has seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTicket {
    pub cluster_id: String,
}

/// Tickets among `ids` that are already stored, with their cluster.
pub async fn known_tickets(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<BTreeMap<String, KnownTicket>, StoreError> {
    let mut out = BTreeMap::new();
    // Portable IN-list; batches are bounded (the pipeline reads a few hundred records at a time).
    for chunk in ids.chunks(200) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT ticket_id, cluster_id FROM tickets WHERE ticket_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::sql("look up known tickets", e))?;
        for row in rows {
            let id: String = get(&row, "ticket_id")?;
            let cluster_id: String = get(&row, "cluster_id")?;
            out.insert(id, KnownTicket { cluster_id });
        }
    }
    Ok(out)
}

/// Stores a ticket seen for the first time, with its cluster assignment and log position.
pub async fn insert_ticket(
    conn: &mut AnyConnection,
    ticket: &TicketEvent,
    assignment: &Assignment,
    embedding: Option<&[f32]>,
    partition: i32,
    offset: i64,
) -> Result<(), StoreError> {
    let raw = serde_json::to_string(ticket).unwrap_or_default();
    let tags = serde_json::to_string(&ticket.tags).unwrap_or_default();
    let matched = serde_json::to_string(&assignment.matched_terms).unwrap_or_default();
    let at = to_ms(ticket.event_time);
    sqlx::query(
        "INSERT INTO tickets (ticket_id, product, status, subject, body, component, tags, customer_id, \
         customer_tier, channel, source, raw, created_at, updated_at, cluster_id, similarity, \
         matched_terms, log_partition, log_offset, embedding) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&ticket.ticket_id)
    .bind(&ticket.product)
    .bind(status_of(ticket))
    .bind(&ticket.subject)
    .bind(&ticket.body)
    .bind(ticket.component.as_deref())
    .bind(tags)
    .bind(&ticket.customer.id)
    .bind(tier_of(ticket))
    .bind(&ticket.channel)
    .bind(&ticket.source)
    .bind(raw)
    .bind(at)
    .bind(at)
    .bind(&assignment.cluster_id)
    .bind(assignment.similarity as f64)
    .bind(matched)
    .bind(partition as i64)
    .bind(offset)
    .bind(embedding.map(sevloop_core::cluster::vector::to_bytes))
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("insert ticket {}", ticket.ticket_id), e))?;
    Ok(())
}

/// A later event of a known ticket: it updates the ticket, never counts as a new complaint.
/// Events older than what is stored are ignored, so out-of-order updates cannot roll it back.
pub async fn update_ticket(
    conn: &mut AnyConnection,
    ticket: &TicketEvent,
) -> Result<(), StoreError> {
    let raw = serde_json::to_string(ticket).unwrap_or_default();
    sqlx::query(
        "UPDATE tickets SET status = $1, subject = $2, body = $3, raw = $4, updated_at = $5 \
         WHERE ticket_id = $6 AND updated_at <= $5",
    )
    .bind(status_of(ticket))
    .bind(&ticket.subject)
    .bind(&ticket.body)
    .bind(raw)
    .bind(to_ms(ticket.event_time))
    .bind(&ticket.ticket_id)
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("update ticket {}", ticket.ticket_id), e))?;
    Ok(())
}

fn status_of(ticket: &TicketEvent) -> &'static str {
    match ticket.event {
        sevloop_core::EventKind::Created | sevloop_core::EventKind::Updated => "open",
        sevloop_core::EventKind::Solved => "solved",
        sevloop_core::EventKind::Closed => "closed",
    }
}

fn tier_of(ticket: &TicketEvent) -> &'static str {
    match ticket.customer.tier {
        sevloop_core::Tier::Free => "free",
        sevloop_core::Tier::Pro => "pro",
        sevloop_core::Tier::Enterprise => "enterprise",
    }
}

/// A ticket as support sees it, with its cluster and SEV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketRow {
    pub ticket_id: String,
    pub product: String,
    pub status: String,
    pub subject: String,
    pub body: String,
    pub customer_id: String,
    pub customer_tier: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cluster_id: String,
    pub cluster_label: Option<String>,
    pub similarity: f64,
    pub matched_terms: Vec<String>,
    pub sev_id: Option<String>,
    pub sev_state: Option<String>,
    pub sev_team: Option<String>,
    pub sev_severity: Option<String>,
    pub sev_title: Option<String>,
    /// When the SEV's timeline last changed.
    pub sev_updated_at: Option<DateTime<Utc>>,
    /// Who filed it, to redact their own name and email from what other roles see; never
    /// serialized.
    #[serde(skip)]
    pub filed_by: Filer,
}

/// The customer of a ticket as its own fields name them: what redaction must hide besides the
/// patterns (a name is not a pattern).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Filer {
    /// From the ticket as it was filed (the stored raw event).
    pub(crate) fn of(id: String, raw: &str) -> Filer {
        let event: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
        let field = |name: &str| event["customer"][name].as_str().map(str::to_string);
        Filer {
            name: field("name"),
            email: field("email"),
            id,
        }
    }
}

impl Store {
    pub async fn ticket(&self, ticket_id: &str) -> Result<Option<TicketRow>, StoreError> {
        let row = sqlx::query(
            "SELECT t.ticket_id, t.product, t.status, t.subject, t.body, t.customer_id, t.customer_tier, t.raw, \
             t.created_at, t.updated_at, COALESCE(c.merged_into, t.cluster_id) AS cluster_id, \
             t.similarity, t.matched_terms, COALESCE(m.label, c.label) AS label, \
             s.sev_id, s.state, s.team, s.severity, s.title, \
             (SELECT MAX(e.at) FROM sev_events e WHERE e.sev_id = s.sev_id) AS sev_updated \
             FROM tickets t LEFT JOIN clusters c ON c.cluster_id = t.cluster_id \
             LEFT JOIN clusters m ON m.cluster_id = c.merged_into \
             LEFT JOIN sev_tickets st ON st.ticket_id = t.ticket_id \
             LEFT JOIN sevs s ON s.sev_id = st.sev_id \
             WHERE t.ticket_id = $1 \
             ORDER BY CASE WHEN s.state = 'merged' THEN 1 ELSE 0 END, s.number DESC LIMIT 1",
        )
        .bind(ticket_id)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read ticket {ticket_id}"), e))?;
        row.map(|r| ticket_row(&r)).transpose()
    }
}

fn ticket_row(r: &AnyRow) -> Result<TicketRow, StoreError> {
    let matched: String = get(r, "matched_terms")?;
    Ok(TicketRow {
        ticket_id: get(r, "ticket_id")?,
        product: get(r, "product")?,
        status: get(r, "status")?,
        subject: get(r, "subject")?,
        body: get(r, "body")?,
        customer_id: get(r, "customer_id")?,
        customer_tier: get(r, "customer_tier")?,
        created_at: from_ms(get(r, "created_at")?),
        updated_at: from_ms(get(r, "updated_at")?),
        cluster_id: get(r, "cluster_id")?,
        cluster_label: get(r, "label")?,
        similarity: get(r, "similarity")?,
        matched_terms: serde_json::from_str(&matched).unwrap_or_default(),
        sev_id: get(r, "sev_id")?,
        sev_state: get(r, "state")?,
        sev_team: get(r, "team")?,
        sev_severity: get(r, "severity")?,
        sev_title: get(r, "title")?,
        sev_updated_at: get::<Option<i64>>(r, "sev_updated")?.map(from_ms),
        filed_by: Filer::of(get(r, "customer_id")?, &get::<String>(r, "raw")?),
    })
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::sql(format!("decode column {column}"), e))
}
