//! What happens to a SEV after it opens: people's actions (applied in log order by the
//! pipeline), regressions, escalation of unacknowledged SEVs, reroutes that stick to a cluster,
//! and endpoints that asked not to be called again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::sev::SevAction;
use sevloop_core::SevState;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::sevs::{sev_row, SevRow, SEV_COLUMNS};
use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// Moves a SEV to `next` for `action`, stamping the action's time (wall clock, from the
/// request) in the columns it sets.
pub async fn apply_transition(
    conn: &mut AnyConnection,
    sev_id: &str,
    action: &SevAction,
    next: SevState,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // $1 state, $2 time, $3 SEV, $4 the action's text where it has one.
    let base = |sql: &'static str| {
        sqlx::query(sql)
            .bind(next.as_str())
            .bind(to_ms(at))
            .bind(sev_id.to_string())
    };
    let query = match action {
        SevAction::Acknowledge => base(
            "UPDATE sevs SET state = $1, acknowledged_at = COALESCE(acknowledged_at, $2) \
             WHERE sev_id = $3",
        ),
        SevAction::Mitigate => base(
            "UPDATE sevs SET state = $1, mitigated_at = $2, \
             acknowledged_at = COALESCE(acknowledged_at, $2) WHERE sev_id = $3",
        ),
        SevAction::Resolve => {
            base("UPDATE sevs SET state = $1, resolved_at = $2 WHERE sev_id = $3")
        }
        SevAction::Decline { reason } => base(
            "UPDATE sevs SET state = $1, declined_at = $2, decline_reason = $4 WHERE sev_id = $3",
        )
        .bind(reason.clone()),
        SevAction::Reroute { team, .. } => base(
            "UPDATE sevs SET state = $1, assigned_at = $2, team = $4, acknowledged_at = NULL, \
             escalated_at = NULL, escalated_to = NULL WHERE sev_id = $3",
        )
        .bind(team.clone()),
        SevAction::Merge { into } => {
            base("UPDATE sevs SET state = $1, resolved_at = $2, merged_into = $4 WHERE sev_id = $3")
                .bind(into.clone())
        }
    };
    query
        .execute(conn)
        .await
        .map_err(|e| StoreError::sql(format!("{} {sev_id}", action.kind()), e))?;
    Ok(())
}

/// A resolved SEV whose complaint came back: open again, counted as a regression, and handed
/// to its team afresh (the ack clock restarts at `now`).
pub async fn reopen(
    conn: &mut AnyConnection,
    sev_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sevs SET state = 'open', reopened = reopened + 1, assigned_at = $1, episode_at = $1, \
         acknowledged_at = NULL, mitigated_at = NULL, resolved_at = NULL, escalated_at = NULL, \
         escalated_to = NULL WHERE sev_id = $2",
    )
    .bind(to_ms(now))
    .bind(sev_id)
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("reopen {sev_id}"), e))?;
    Ok(())
}

/// One action as asked for, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRow {
    pub action_id: String,
    pub sev_id: String,
    pub kind: String,
    pub request: serde_json::Value,
    pub actor_role: String,
    pub requested_at: DateTime<Utc>,
    /// `applied`, or `refused: <why>`.
    pub outcome: String,
}

/// Records an action's outcome. Recording the same action twice keeps the first.
pub async fn record_action(conn: &mut AnyConnection, row: &ActionRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sev_actions (action_id, sev_id, kind, request, actor_role, requested_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&row.action_id)
    .bind(&row.sev_id)
    .bind(&row.kind)
    .bind(row.request.to_string())
    .bind(&row.actor_role)
    .bind(to_ms(row.requested_at))
    .bind(&row.outcome)
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("record action {}", row.action_id), e))?;
    Ok(())
}

/// Whether an action was seen before (a replayed record is not applied twice).
pub async fn action_seen(conn: &mut AnyConnection, action_id: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sev_actions WHERE action_id = $1")
        .bind(action_id)
        .fetch_one(conn)
        .await
        .map_err(|e| StoreError::sql(format!("look up action {action_id}"), e))?;
    Ok(n > 0)
}

/// The team a person rerouted a cluster's SEV to, if any.
pub async fn cluster_owner(
    conn: &mut AnyConnection,
    cluster_id: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT team FROM cluster_owners WHERE cluster_id = $1")
        .bind(cluster_id)
        .fetch_optional(conn)
        .await
        .map_err(|e| StoreError::sql(format!("read the owner of {cluster_id}"), e))
}

pub async fn set_cluster_owner(
    conn: &mut AnyConnection,
    cluster_id: &str,
    team: &str,
    sev_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cluster_owners (cluster_id, team, sev_id, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (cluster_id) DO UPDATE SET team = excluded.team, sev_id = excluded.sev_id, at = excluded.at",
    )
    .bind(cluster_id)
    .bind(team)
    .bind(sev_id)
    .bind(to_ms(at))
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("set the owner of {cluster_id}"), e))?;
    Ok(())
}

/// Flags a SEV nobody acknowledged in time, as `read` (from [`Store::unacknowledged`]) saw it.
/// Returns false when it was acknowledged, closed, flagged, rerouted or reopened since (so two
/// dispatchers never escalate it twice, and a SEV handed to a new team waits out that team's
/// ack timeout).
pub async fn mark_escalated(
    conn: &mut AnyConnection,
    read: &SevRow,
    to: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sevs SET escalated_at = $1, escalated_to = $2 \
         WHERE sev_id = $3 AND state = 'open' AND escalated_at IS NULL \
         AND team = $4 AND assigned_at = $5",
    )
    .bind(to_ms(at))
    .bind(to)
    .bind(&read.id)
    .bind(&read.team)
    .bind(to_ms(read.assigned_at))
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("escalate {}", read.id), e))?;
    Ok(done.rows_affected() == 1)
}

/// An endpoint that answered 410 Gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabledEndpoint {
    pub name: String,
    /// A fingerprint of the URL that answered 410 (never the URL: it may hold a secret).
    #[serde(skip)]
    pub target: String,
    pub disabled_at: DateTime<Utc>,
    pub reason: String,
    /// Its notifications not sent yet (held, or waiting to be tried); they are settled when it
    /// is called again.
    pub waiting: i64,
}

impl Store {
    /// Open SEVs nobody has acknowledged and that are not escalated yet.
    pub async fn unacknowledged(&self) -> Result<Vec<SevRow>, StoreError> {
        let sql = format!(
            "SELECT {SEV_COLUMNS} FROM sevs WHERE state = 'open' AND escalated_at IS NULL ORDER BY number"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list unacknowledged SEVs", e))?;
        rows.iter().map(sev_row).collect()
    }

    /// An action's outcome, once the pipeline has applied (or refused) it.
    pub async fn action(&self, action_id: &str) -> Result<Option<ActionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT action_id, sev_id, kind, request, actor_role, requested_at, outcome \
             FROM sev_actions WHERE action_id = $1",
        )
        .bind(action_id)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read action {action_id}"), e))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let request: String = get(&r, "request")?;
        Ok(Some(ActionRow {
            action_id: get(&r, "action_id")?,
            sev_id: get(&r, "sev_id")?,
            kind: get(&r, "kind")?,
            request: serde_json::from_str(&request).unwrap_or_default(),
            actor_role: get(&r, "actor_role")?,
            requested_at: from_ms(get(&r, "requested_at")?),
            outcome: get(&r, "outcome")?,
        }))
    }

    /// Stops calling an endpoint at `target`. Disabling it again at the same target keeps the
    /// first time and reason; at another target (its URL changed, then that one answered 410
    /// too) records the new one. Returns whether the record changed.
    pub async fn disable_endpoint(
        &self,
        name: &str,
        target: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO endpoints (name, target, disabled_at, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET target = excluded.target, \
             disabled_at = excluded.disabled_at, reason = excluded.reason \
             WHERE endpoints.target <> excluded.target",
        )
        .bind(name)
        .bind(target)
        .bind(to_ms(at))
        .bind(reason)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("disable endpoint {name}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Calls an endpoint again; with `unless_at`, only if it was disabled at another target
    /// (so a 410 just recorded at the current URL stays). Returns whether it was disabled.
    pub async fn enable_endpoint(
        &self,
        name: &str,
        unless_at: Option<&str>,
    ) -> Result<bool, StoreError> {
        let query = match unless_at {
            None => sqlx::query("DELETE FROM endpoints WHERE name = $1").bind(name),
            Some(target) => sqlx::query("DELETE FROM endpoints WHERE name = $1 AND target <> $2")
                .bind(name)
                .bind(target),
        };
        let done = query
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("enable endpoint {name}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn disabled_endpoint(
        &self,
        name: &str,
    ) -> Result<Option<DisabledEndpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DISABLED} FROM endpoints e WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read endpoint {name}"), e))?;
        row.as_ref().map(disabled_endpoint).transpose()
    }

    /// Every disabled endpoint, by name.
    pub async fn disabled_endpoints(&self) -> Result<Vec<DisabledEndpoint>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {DISABLED} FROM endpoints e ORDER BY name"))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list disabled endpoints", e))?;
        rows.iter().map(disabled_endpoint).collect()
    }
}

const DISABLED: &str = "name, target, disabled_at, reason, (SELECT COUNT(*) FROM outbox o \
     WHERE o.endpoint = e.name AND o.state IN ('held', 'pending')) AS waiting";

fn disabled_endpoint(r: &AnyRow) -> Result<DisabledEndpoint, StoreError> {
    Ok(DisabledEndpoint {
        name: get(r, "name")?,
        target: get(r, "target")?,
        disabled_at: from_ms(get(r, "disabled_at")?),
        reason: get(r, "reason")?,
        waiting: get(r, "waiting")?,
    })
}
