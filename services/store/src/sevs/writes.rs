//! What the pipeline and people write about a SEV inside the caller's transaction: opening it,
//! the clusters it covers, its linked tickets and their counts, its severity, its timeline.

use chrono::{DateTime, Utc};
use sevloop_core::sev::Impact;
use sevloop_core::Severity;
use sqlx::AnyConnection;

use super::NewSev;
use crate::tickets::get;
use crate::time::to_ms;
use crate::StoreError;

/// Opens the SEV of an escalation (counts start at zero; linking the evidence sets them).
/// Returns its id, or `None` when this escalation (or this cluster episode) already has one:
/// the unique keys make opening idempotent and race-free.
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
    let created = to_ms(new.created_at);
    let inserted = sqlx::query(
        "INSERT INTO sevs (sev_id, number, escalation_id, cluster_id, episode, rule, title, severity, team, \
         state, ticket_count, distinct_customers, first_ticket_at, opened_at, product, created_at, \
         assigned_at, episode_at, previous_sev) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', 0, 0, $10, $11, $12, $13, $13, $13, $14) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&sev_id)
    .bind(number)
    .bind(&e.id)
    .bind(&e.cluster_id)
    .bind(e.episode as i64)
    .bind(&e.rule)
    .bind(new.title)
    .bind(Severity::Sev4.as_str())
    .bind(new.team)
    .bind(to_ms(e.first_ticket_at))
    .bind(to_ms(e.fired_at))
    .bind(new.product)
    .bind(created)
    .bind(new.previous_sev)
    .execute(&mut *conn)
    .await
    .map_err(|err| StoreError::sql(format!("open {sev_id}"), err))?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    cover_cluster(conn, &sev_id, &e.cluster_id, e.fired_at).await?;
    Ok(Some(sev_id))
}

/// A merged SEV's clusters are covered by the SEV it went into.
pub async fn cover_clusters_of(
    conn: &mut AnyConnection,
    merged: &str,
    into: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sev_clusters (cluster_id, sev_id, since) \
         SELECT cluster_id, $1, $2 FROM sev_clusters WHERE sev_id = $3 ON CONFLICT DO NOTHING",
    )
    .bind(into)
    .bind(to_ms(at))
    .bind(merged)
    .execute(conn)
    .await
    .map_err(|err| StoreError::sql(format!("carry {merged}'s clusters over to {into}"), err))?;
    Ok(())
}

/// Records that `sev_id` covers `cluster_id` (its own, or one that joined it).
pub async fn cover_cluster(
    conn: &mut AnyConnection,
    sev_id: &str,
    cluster_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sev_clusters (cluster_id, sev_id, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(cluster_id)
    .bind(sev_id)
    .bind(to_ms(at))
    .execute(conn)
    .await
    .map_err(|err| StoreError::sql(format!("record {sev_id} covering {cluster_id}"), err))?;
    Ok(())
}

/// Links tickets to a SEV and counts them; linking twice is a no-op. Returns the tickets that
/// were not linked before. Counts grow incrementally: a new link adds one ticket, and one
/// customer when the SEV had none of theirs.
pub async fn link_tickets(
    conn: &mut AnyConnection,
    sev_id: &str,
    ticket_ids: &[String],
    at: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut linked = Vec::new();
    let (mut customers, mut enterprise) = (0i64, 0i64);
    for ticket_id in ticket_ids {
        let added = sqlx::query(
            "INSERT INTO sev_tickets (sev_id, ticket_id, linked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(sev_id)
        .bind(ticket_id)
        .bind(to_ms(at))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("link {ticket_id} to {sev_id}"), e))?
        .rows_affected();
        if added == 0 {
            continue;
        }
        linked.push(ticket_id.clone());
        let tier: Option<String> = sqlx::query_scalar(
            "INSERT INTO sev_customers (sev_id, customer_id, tier, first_at) \
             SELECT $1, customer_id, customer_tier, created_at FROM tickets WHERE ticket_id = $2 \
             ON CONFLICT DO NOTHING RETURNING tier",
        )
        .bind(sev_id)
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("count the customer of {ticket_id}"), e))?;
        if let Some(tier) = tier {
            customers += 1;
            enterprise += i64::from(tier == "enterprise");
        }
    }
    sqlx::query(
        "UPDATE sevs SET ticket_count = ticket_count + $1, distinct_customers = distinct_customers + $2, \
         enterprise_customers = enterprise_customers + $3 WHERE sev_id = $4",
    )
    .bind(linked.len() as i64)
    .bind(customers)
    .bind(enterprise)
    .bind(sev_id)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::sql(format!("count the tickets of {sev_id}"), e))?;
    Ok(linked)
}

/// Raises a SEV's severity to what its impact as of event time `at` calls for. Returns the new
/// severity when it changed.
pub async fn update_severity(
    conn: &mut AnyConnection,
    sev_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<Severity>, StoreError> {
    let row = sqlx::query(
        "SELECT severity, distinct_customers, enterprise_customers, \
         (SELECT COUNT(*) FROM sev_customers c WHERE c.sev_id = $1 AND c.first_at >= $2) AS last_hour \
         FROM sevs WHERE sev_id = $1",
    )
    .bind(sev_id)
    .bind(to_ms(at) - 3_600_000)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| StoreError::sql(format!("read the impact of {sev_id}"), e))?;
    let impact = Impact {
        distinct_customers: get::<i64>(&row, "distinct_customers")? as u64,
        enterprise_customers: get::<i64>(&row, "enterprise_customers")? as u64,
        customers_last_hour: get::<i64>(&row, "last_hour")? as u64,
    };
    // Severity only rises on its own: a complaint that slows down is not less severe for the
    // customers it already hit (a person can still decide otherwise).
    let before = Severity::parse(&get::<String>(&row, "severity")?).unwrap_or(Severity::Sev4);
    let severity = Severity::from_impact(&impact).min(before);
    if severity == before {
        return Ok(None);
    }
    sqlx::query("UPDATE sevs SET severity = $1 WHERE sev_id = $2")
        .bind(severity.as_str())
        .bind(sev_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("set the severity of {sev_id}"), e))?;
    Ok(Some(severity))
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
