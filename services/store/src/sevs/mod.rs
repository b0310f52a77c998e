//! SEVs: opened once per cluster episode, with their linked tickets, counts and timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::Escalation;
use sqlx::any::AnyRow;

use crate::tickets::get;
use crate::time::from_ms;
use crate::StoreError;

mod reads;
mod writes;

pub use reads::{latest_sev_of_cluster, sev_cluster_ids, sev_in, sev_ticket_ids};
pub use writes::{
    add_sev_event, cover_cluster, cover_clusters_of, link_tickets, open_sev, update_severity,
};

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

/// The order in which a cluster's SEVs are read, the one to show first: a SEV still covering
/// it (not resolved, declined or merged), then the newest.
pub(crate) const COVERING_FIRST: &str =
    "CASE WHEN s.state IN ('resolved', 'declined', 'merged') THEN 1 ELSE 0 END, s.number DESC";

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
