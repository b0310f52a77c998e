//! SEVs: opened once per cluster episode, with their linked tickets and timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::{Escalation, Severity};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

pub struct NewSev<'a> {
    pub escalation: &'a Escalation,
    pub title: &'a str,
    pub severity: Severity,
    pub team: &'a str,
    pub first_ticket_at: DateTime<Utc>,
}

/// Opens the SEV of an escalation. Returns its id, or `None` when this escalation (or this
/// cluster episode) already has one: the unique keys make opening idempotent and race-free.
pub async fn open_sev(
    conn: &mut AnyConnection,
    new: &NewSev<'_>,
) -> Result<Option<String>, StoreError> {
    let e = new.escalation;
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT sev_id FROM sevs WHERE escalation_id = $1 OR (cluster_id = $2 AND episode = $3)",
    )
    .bind(&e.id)
    .bind(&e.cluster_id)
    .bind(e.episode as i64)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|err| StoreError::sql("look up escalation", err))?;
    if exists.is_some() {
        return Ok(None);
    }
    let number: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'sev' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|err| StoreError::sql("number a SEV", err))?;
    let sev_id = format!("SEV-{number}");
    let inserted = sqlx::query(
        "INSERT INTO sevs (sev_id, number, escalation_id, cluster_id, episode, rule, title, severity, team, \
         state, ticket_count, distinct_customers, first_ticket_at, opened_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $13) ON CONFLICT DO NOTHING",
    )
    .bind(&sev_id)
    .bind(number)
    .bind(&e.id)
    .bind(&e.cluster_id)
    .bind(e.episode as i64)
    .bind(&e.rule)
    .bind(new.title)
    .bind(new.severity.as_str())
    .bind(new.team)
    .bind(e.ticket_count as i64)
    .bind(e.distinct_customers as i64)
    .bind(to_ms(new.first_ticket_at))
    .bind(to_ms(e.fired_at))
    .execute(&mut *conn)
    .await
    .map_err(|err| StoreError::sql(format!("open {sev_id}"), err))?;
    Ok((inserted.rows_affected() == 1).then_some(sev_id))
}

/// The SEV of a cluster's latest episode.
pub async fn latest_sev_of_cluster(
    conn: &mut AnyConnection,
    cluster_id: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT sev_id FROM sevs WHERE cluster_id = $1 ORDER BY episode DESC LIMIT 1",
    )
    .bind(cluster_id)
    .fetch_optional(conn)
    .await
    .map_err(|e| StoreError::sql(format!("find SEV of cluster {cluster_id}"), e))
}

/// Links tickets to a SEV; linking twice is a no-op. Returns how many links are new.
pub async fn link_tickets(
    conn: &mut AnyConnection,
    sev_id: &str,
    ticket_ids: &[String],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut added = 0;
    for ticket_id in ticket_ids {
        added += sqlx::query(
            "INSERT INTO sev_tickets (sev_id, ticket_id, linked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(sev_id)
        .bind(ticket_id)
        .bind(to_ms(at))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("link {ticket_id} to {sev_id}"), e))?
        .rows_affected();
    }
    Ok(added)
}

/// Recounts a SEV's tickets and distinct customers from its links and re-derives its severity.
/// Returns the new severity.
pub async fn refresh_sev_counts(
    conn: &mut AnyConnection,
    sev_id: &str,
) -> Result<Severity, StoreError> {
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(sev_id.to_string());
    let tickets = count("SELECT COUNT(*) FROM sev_tickets WHERE sev_id = $1")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| StoreError::sql("count SEV tickets", e))?;
    let customers = count(
        "SELECT COUNT(DISTINCT t.customer_id) FROM sev_tickets st \
         JOIN tickets t ON t.ticket_id = st.ticket_id WHERE st.sev_id = $1",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| StoreError::sql("count SEV customers", e))?;
    let enterprise = count(
        "SELECT COUNT(DISTINCT t.customer_id) FROM sev_tickets st \
         JOIN tickets t ON t.ticket_id = st.ticket_id WHERE st.sev_id = $1 AND t.customer_tier = 'enterprise'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| StoreError::sql("count SEV enterprise customers", e))?;
    let severity = Severity::from_impact(customers as u64, enterprise as u64);
    sqlx::query("UPDATE sevs SET ticket_count = $1, distinct_customers = $2, severity = $3 WHERE sev_id = $4")
        .bind(tickets)
        .bind(customers)
        .bind(severity.as_str())
        .bind(sev_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("update counts of {sev_id}"), e))?;
    Ok(severity)
}

/// Appends to a SEV's timeline. The actor is a role, never a person: the timeline is blameless.
pub async fn add_sev_event(
    conn: &mut AnyConnection,
    sev_id: &str,
    kind: &str,
    actor_role: &str,
    at: DateTime<Utc>,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sev_events (sev_id, kind, actor_role, at, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sev_id)
    .bind(kind)
    .bind(actor_role)
    .bind(to_ms(at))
    .bind(detail.to_string())
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("record {kind} on {sev_id}"), e))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SevRow {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub severity: String,
    pub team: String,
    pub state: String,
    pub cluster_id: String,
    pub rule: String,
    pub escalation_id: String,
    pub ticket_count: i64,
    pub distinct_customers: i64,
    pub first_ticket_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct SevFilter {
    pub state: Option<String>,
    pub team: Option<String>,
    pub limit: i64,
}

const SEV_COLUMNS: &str =
    "sev_id, number, title, severity, team, state, cluster_id, rule, escalation_id, \
     ticket_count, distinct_customers, first_ticket_at, opened_at, acknowledged_at, resolved_at";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub kind: String,
    pub actor_role: String,
    pub at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

impl Store {
    /// SEVs, newest first.
    pub async fn sevs(&self, filter: &SevFilter) -> Result<Vec<SevRow>, StoreError> {
        let sql = format!(
            "SELECT {SEV_COLUMNS} FROM sevs WHERE ($1 = '' OR state = $1) AND ($2 = '' OR team = $2) \
             ORDER BY number DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.state.clone().unwrap_or_default())
            .bind(filter.team.clone().unwrap_or_default())
            .bind(if filter.limit > 0 { filter.limit } else { 100 })
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list SEVs", e))?;
        rows.iter().map(sev_row).collect()
    }

    pub async fn sev(&self, sev_id: &str) -> Result<Option<SevRow>, StoreError> {
        let sql = format!("SELECT {SEV_COLUMNS} FROM sevs WHERE sev_id = $1");
        let row = sqlx::query(&sql)
            .bind(sev_id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("read {sev_id}"), e))?;
        row.as_ref().map(sev_row).transpose()
    }

    /// Linked ticket ids, in link order.
    pub async fn sev_ticket_ids(&self, sev_id: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT ticket_id FROM sev_tickets WHERE sev_id = $1 ORDER BY linked_at, ticket_id",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read tickets of {sev_id}"), e))
    }

    pub async fn sev_timeline(&self, sev_id: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, actor_role, at, detail FROM sev_events WHERE sev_id = $1 ORDER BY id",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read timeline of {sev_id}"), e))?;
        rows.iter()
            .map(|r| {
                let detail: String = get(r, "detail")?;
                Ok(TimelineEvent {
                    kind: get(r, "kind")?,
                    actor_role: get(r, "actor_role")?,
                    at: from_ms(get(r, "at")?),
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

fn sev_row(r: &AnyRow) -> Result<SevRow, StoreError> {
    let opt = |v: Option<i64>| v.map(from_ms);
    Ok(SevRow {
        id: get(r, "sev_id")?,
        number: get(r, "number")?,
        title: get(r, "title")?,
        severity: get(r, "severity")?,
        team: get(r, "team")?,
        state: get(r, "state")?,
        cluster_id: get(r, "cluster_id")?,
        rule: get(r, "rule")?,
        escalation_id: get(r, "escalation_id")?,
        ticket_count: get(r, "ticket_count")?,
        distinct_customers: get(r, "distinct_customers")?,
        first_ticket_at: from_ms(get(r, "first_ticket_at")?),
        opened_at: from_ms(get(r, "opened_at")?),
        acknowledged_at: opt(get(r, "acknowledged_at")?),
        resolved_at: opt(get(r, "resolved_at")?),
    })
}
