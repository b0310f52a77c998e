//! SEVs: opened once per cluster episode, with their linked tickets, counts and timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::sev::Impact;
use sevloop_core::{Escalation, Severity};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

pub struct NewSev<'a> {
    pub escalation: &'a Escalation,
    pub title: &'a str,
    pub team: &'a str,
    pub product: &'a str,
    /// Wall-clock time sevloop opened it (response times are measured from here).
    pub created_at: DateTime<Utc>,
    /// The declined SEV of the same cluster this one follows, if any.
    pub previous_sev: Option<&'a str>,
}

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
         assigned_at, previous_sev) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', 0, 0, $10, $11, $12, $13, $13, $14) \
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

/// The order in which a cluster's SEVs are read, the one to show first: a SEV still covering
/// it (not resolved, declined or merged), then the newest.
pub(crate) const COVERING_FIRST: &str =
    "CASE WHEN s.state IN ('resolved', 'declined', 'merged') THEN 1 ELSE 0 END, s.number DESC";

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SevRow {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub severity: String,
    pub team: String,
    pub state: String,
    pub product: String,
    pub cluster_id: String,
    pub rule: String,
    pub escalation_id: String,
    pub ticket_count: i64,
    pub distinct_customers: i64,
    pub enterprise_customers: i64,
    /// Event time of its first ticket and of the crossing: deterministic on replay.
    pub first_ticket_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    /// Wall-clock times of what sevloop and people did.
    pub created_at: DateTime<Utc>,
    pub assigned_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub mitigated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub declined_at: Option<DateTime<Utc>>,
    pub decline_reason: Option<String>,
    pub merged_into: Option<String>,
    /// Set when nobody acknowledged it within its team's ack timeout.
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalated_to: Option<String>,
    /// Times it came back after being resolved.
    pub reopened: i64,
    pub previous_sev: Option<String>,
}

/// Which SEVs a list shows, in what order, which page.
#[derive(Debug, Clone, Default)]
pub struct SevFilter {
    pub state: Option<String>,
    pub team: Option<String>,
    pub severity: Option<String>,
    pub product: Option<String>,
    /// Opened (event time) at or after.
    pub from: Option<DateTime<Utc>>,
    /// Opened (event time) before.
    pub to: Option<DateTime<Utc>>,
    pub sort: SevSort,
    pub limit: i64,
    pub offset: i64,
}

/// The order of a SEV list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SevSort {
    /// Newest first.
    #[default]
    Newest,
    Oldest,
    /// Most severe first, then newest.
    Severity,
    /// Most distinct customers first.
    Customers,
}

impl SevSort {
    fn order_by(self) -> &'static str {
        match self {
            SevSort::Newest => "number DESC",
            SevSort::Oldest => "number ASC",
            SevSort::Severity => "severity ASC, number DESC",
            SevSort::Customers => "distinct_customers DESC, number DESC",
        }
    }
}

pub(crate) const SEV_COLUMNS: &str =
    "sev_id, number, title, severity, team, state, product, cluster_id, rule, escalation_id, \
     ticket_count, distinct_customers, enterprise_customers, first_ticket_at, opened_at, \
     created_at, assigned_at, acknowledged_at, mitigated_at, resolved_at, declined_at, \
     decline_reason, merged_into, escalated_at, escalated_to, reopened, previous_sev";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub kind: String,
    pub actor_role: String,
    pub at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

/// One SEV, read inside the caller's transaction.
pub async fn sev_in(conn: &mut AnyConnection, sev_id: &str) -> Result<Option<SevRow>, StoreError> {
    let sql = format!("SELECT {SEV_COLUMNS} FROM sevs WHERE sev_id = $1");
    let row = sqlx::query(&sql)
        .bind(sev_id)
        .fetch_optional(conn)
        .await
        .map_err(|e| StoreError::sql(format!("read {sev_id}"), e))?;
    row.as_ref().map(sev_row).transpose()
}

/// The SEV a cluster's tickets now belong to: its latest episode's, followed through merges.
pub async fn latest_sev_of_cluster(
    conn: &mut AnyConnection,
    cluster_id: &str,
) -> Result<Option<SevRow>, StoreError> {
    let latest: Option<String> = sqlx::query_scalar(
        "SELECT sev_id FROM sevs WHERE cluster_id = $1 ORDER BY episode DESC LIMIT 1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| StoreError::sql(format!("find SEV of cluster {cluster_id}"), e))?;
    let Some(mut sev_id) = latest else {
        return Ok(None);
    };
    // Merges form a chain; a person cannot merge a SEV into one already merged, so it is short.
    for _ in 0..16 {
        let Some(row) = sev_in(conn, &sev_id).await? else {
            return Ok(None);
        };
        match &row.merged_into {
            Some(into) => sev_id = into.clone(),
            None => return Ok(Some(row)),
        }
    }
    Ok(None)
}

/// Linked ticket ids, in link order.
pub async fn sev_ticket_ids(
    conn: &mut AnyConnection,
    sev_id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT ticket_id FROM sev_tickets WHERE sev_id = $1 ORDER BY linked_at, ticket_id",
    )
    .bind(sev_id)
    .fetch_all(conn)
    .await
    .map_err(|e| StoreError::sql(format!("read tickets of {sev_id}"), e))
}

impl Store {
    /// A page of the SEVs `filter` picks, and how many it picks in all.
    pub async fn sevs_page(&self, f: &SevFilter) -> Result<(Vec<SevRow>, i64), StoreError> {
        const WHERE: &str = "($1 = '' OR state = $1) AND ($2 = '' OR team = $2) \
             AND ($3 = '' OR severity = $3) AND ($4 = '' OR product = $4) \
             AND opened_at >= $5 AND opened_at < $6";
        fn bound<'q>(
            sql: &'q str,
            f: &SevFilter,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            sqlx::query(sql)
                .bind(f.state.clone().unwrap_or_default())
                .bind(f.team.clone().unwrap_or_default())
                .bind(f.severity.clone().unwrap_or_default())
                .bind(f.product.clone().unwrap_or_default())
                .bind(f.from.map_or(i64::MIN, to_ms))
                .bind(f.to.map_or(i64::MAX, to_ms))
        }
        let sql = format!(
            "SELECT {SEV_COLUMNS} FROM sevs WHERE {WHERE} ORDER BY {} LIMIT $7 OFFSET $8",
            f.sort.order_by()
        );
        let rows = bound(&sql, f)
            .bind(if f.limit > 0 { f.limit } else { 100 })
            .bind(f.offset.max(0))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list SEVs", e))?;
        let total_sql = format!("SELECT COUNT(*) AS n FROM sevs WHERE {WHERE}");
        let total: i64 = get(
            &bound(&total_sql, f)
                .fetch_one(self.pool())
                .await
                .map_err(|e| StoreError::sql("count SEVs", e))?,
            "n",
        )?;
        Ok((rows.iter().map(sev_row).collect::<Result<_, _>>()?, total))
    }

    /// The first page of the SEVs `filter` picks.
    pub async fn sevs(&self, filter: &SevFilter) -> Result<Vec<SevRow>, StoreError> {
        Ok(self.sevs_page(filter).await?.0)
    }

    pub async fn sev(&self, sev_id: &str) -> Result<Option<SevRow>, StoreError> {
        sev_in(&mut *self.conn().await?, sev_id).await
    }

    /// Linked ticket ids, in link order.
    pub async fn sev_ticket_ids(&self, sev_id: &str) -> Result<Vec<String>, StoreError> {
        sev_ticket_ids(&mut *self.conn().await?, sev_id).await
    }

    /// The ids of the customers whose tickets are linked to the SEV.
    pub async fn sev_customer_ids(&self, sev_id: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT customer_id FROM sev_customers WHERE sev_id = $1")
            .bind(sev_id)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("read the customers of {sev_id}"), e))
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

pub(crate) fn sev_row(r: &AnyRow) -> Result<SevRow, StoreError> {
    let at = |column: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(get::<Option<i64>>(r, column)?.map(from_ms))
    };
    Ok(SevRow {
        id: get(r, "sev_id")?,
        number: get(r, "number")?,
        title: get(r, "title")?,
        severity: get(r, "severity")?,
        team: get(r, "team")?,
        state: get(r, "state")?,
        product: get(r, "product")?,
        cluster_id: get(r, "cluster_id")?,
        rule: get(r, "rule")?,
        escalation_id: get(r, "escalation_id")?,
        ticket_count: get(r, "ticket_count")?,
        distinct_customers: get(r, "distinct_customers")?,
        enterprise_customers: get(r, "enterprise_customers")?,
        first_ticket_at: from_ms(get(r, "first_ticket_at")?),
        opened_at: from_ms(get(r, "opened_at")?),
        created_at: from_ms(get(r, "created_at")?),
        assigned_at: from_ms(get(r, "assigned_at")?),
        acknowledged_at: at("acknowledged_at")?,
        mitigated_at: at("mitigated_at")?,
        resolved_at: at("resolved_at")?,
        declined_at: at("declined_at")?,
        decline_reason: get(r, "decline_reason")?,
        merged_into: get(r, "merged_into")?,
        escalated_at: at("escalated_at")?,
        escalated_to: get(r, "escalated_to")?,
        reopened: get(r, "reopened")?,
        previous_sev: get(r, "previous_sev")?,
    })
}
