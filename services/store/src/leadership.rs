//! The leadership numbers: open SEVs by team and age, response times per team, the support lead
//! time (first ticket → SEV opened → acknowledged), declined and rerouted SEVs with their
//! reasons, the Pareto of complaint clusters and weekly trends. Aggregates only: no ticket text,
//! no customer identifiers.
//!
//! A period picks SEVs by when they opened and tickets by when they were filed (event time).
//! Response times are wall-clock: from when sevloop opened the SEV to when a person acted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::SevState;

use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// The event-time period a view covers: `[from, to)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Period {
    fn bounds(&self) -> (i64, i64) {
        (
            self.from.map_or(i64::MIN, to_ms),
            self.to.map_or(i64::MAX, to_ms),
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeamNumbers {
    pub team: String,
    /// Opened in the period; the counts and times below are of these, but for the three that
    /// say "now".
    pub opened: u64,
    /// Open now (open, acknowledged or mitigated), whenever it opened.
    pub open: u64,
    /// Open now and not acknowledged, whenever it opened.
    pub unacknowledged: u64,
    pub escalated: u64,
    /// When the episode of the oldest SEV open now began (wall clock).
    pub oldest_open_since: Option<DateTime<Utc>>,
    pub acknowledged: u64,
    /// Mean time from the team getting a SEV (opened, rerouted to it, or reopened) to its
    /// acknowledgement, in seconds.
    pub mtta_seconds: Option<f64>,
    pub resolved: u64,
    /// Mean time from the start of a SEV's episode (opened, or reopened as a regression) to
    /// its resolution, in seconds.
    pub mttr_seconds: Option<f64>,
    pub declined: u64,
}

/// A team's numbers with its times to acknowledge and to resolve, by team name.
type TeamRows = BTreeMap<String, (TeamNumbers, Vec<f64>, Vec<f64>)>;

/// `team`'s entry, named.
fn team_entry(teams: &mut TeamRows, team: String) -> &mut (TeamNumbers, Vec<f64>, Vec<f64>) {
    let entry = teams.entry(team.clone()).or_default();
    entry.0.team = team;
    entry
}

/// Medians over the period's SEVs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeadTime {
    pub sevs: u64,
    /// From the first ticket of a complaint to its SEV opening (event time).
    pub first_ticket_to_open_seconds: Option<f64>,
    /// From the team getting the SEV (opened, rerouted to it, reopened) to its acknowledgement
    /// (wall clock).
    pub open_to_acknowledge_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Declined {
    pub sev_id: String,
    pub team: String,
    pub title: String,
    pub reason: String,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rerouted {
    pub sev_id: String,
    pub from: String,
    pub to: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// One complaint cluster's share of the period's tickets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParetoRow {
    pub cluster_id: String,
    pub label: String,
    pub tickets: i64,
    pub share: f64,
    pub cumulative_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// Monday 00:00 UTC.
    pub week: DateTime<Utc>,
    pub tickets: i64,
    pub sevs_opened: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub teams: Vec<TeamNumbers>,
    pub lead_time: LeadTime,
    pub declined: Vec<Declined>,
    pub rerouted: Vec<Rerouted>,
    pub tickets: i64,
    pub pareto: Vec<ParetoRow>,
    pub weekly: Vec<Week>,
}

const WEEK_MS: i64 = 7 * 86_400_000;
/// The Unix epoch was a Thursday; weeks start on Mondays.
const MONDAY_MS: i64 = 4 * 86_400_000;

impl Store {
    pub async fn leadership(&self, period: Period, pareto: i64) -> Result<Overview, StoreError> {
        let (teams, lead_time) = self.team_numbers(period).await?;
        let (tickets, pareto) = self.pareto(period, pareto).await?;
        Ok(Overview {
            teams,
            lead_time,
            declined: self.declined(period).await?,
            rerouted: self.rerouted(period).await?,
            tickets,
            pareto,
            weekly: self.weekly(period).await?,
        })
    }

    async fn team_numbers(
        &self,
        period: Period,
    ) -> Result<(Vec<TeamNumbers>, LeadTime), StoreError> {
        let (from, to) = period.bounds();
        let rows = sqlx::query(
            "SELECT team, state, first_ticket_at, opened_at, assigned_at, episode_at, \
             acknowledged_at, resolved_at, escalated_at FROM sevs \
             WHERE opened_at >= $1 AND opened_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("read SEVs for leadership", e))?;
        let mut teams = TeamRows::new();
        let (mut to_open, mut to_ack) = (Vec::new(), Vec::new());
        for r in &rows {
            let team: String = get(r, "team")?;
            let state = SevState::parse(&get::<String>(r, "state")?).unwrap_or(SevState::Open);
            let acked: Option<i64> = get(r, "acknowledged_at")?;
            let resolved: Option<i64> = get(r, "resolved_at")?;
            let escalated: Option<i64> = get(r, "escalated_at")?;
            let (n, ack_times, resolve_times) = team_entry(&mut teams, team);
            n.opened += 1;
            n.escalated += u64::from(escalated.is_some());
            n.declined += u64::from(state == SevState::Declined);
            // From when the team got it (opened, rerouted to it, reopened): a reroute or a
            // regression starts the wait afresh, and clears the acknowledgement it replaces.
            if let Some(a) = acked {
                let waited = seconds(a - get::<i64>(r, "assigned_at")?);
                ack_times.push(waited);
                to_ack.push(waited);
            }
            // From the start of its episode: a regression weeks later is not weeks to resolve.
            if let Some(done) = resolved.filter(|_| state == SevState::Resolved) {
                resolve_times.push(seconds(done - get::<i64>(r, "episode_at")?));
            }
            to_open.push(seconds(
                get::<i64>(r, "opened_at")? - get::<i64>(r, "first_ticket_at")?,
            ));
        }
        self.open_now(&mut teams).await?;
        let numbers = teams
            .into_values()
            .map(|(mut n, acks, resolves)| {
                n.acknowledged = acks.len() as u64;
                n.mtta_seconds = mean(&acks);
                n.resolved = resolves.len() as u64;
                n.mttr_seconds = mean(&resolves);
                n
            })
            .collect();
        let lead = LeadTime {
            sevs: rows.len() as u64,
            first_ticket_to_open_seconds: median(&mut to_open),
            open_to_acknowledge_seconds: median(&mut to_ack),
        };
        Ok((numbers, lead))
    }

    /// Counts the SEVs open now, whenever they opened: one open for weeks is not out of this
    /// week's view.
    async fn open_now(&self, teams: &mut TeamRows) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT team, state, episode_at FROM sevs \
             WHERE state IN ('open', 'acknowledged', 'mitigated')",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("read open SEVs for leadership", e))?;
        for r in &rows {
            let (n, _, _) = team_entry(teams, get(r, "team")?);
            n.open += 1;
            n.unacknowledged += u64::from(get::<String>(r, "state")? == "open");
            let since = from_ms(get(r, "episode_at")?);
            n.oldest_open_since = Some(n.oldest_open_since.map_or(since, |o| o.min(since)));
        }
        Ok(())
    }

    async fn declined(&self, period: Period) -> Result<Vec<Declined>, StoreError> {
        let (from, to) = period.bounds();
        let rows = sqlx::query(
            "SELECT sev_id, team, title, decline_reason, declined_at FROM sevs \
             WHERE state = 'declined' AND opened_at >= $1 AND opened_at < $2 ORDER BY number DESC",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("read declined SEVs", e))?;
        rows.iter()
            .map(|r| {
                Ok(Declined {
                    sev_id: get(r, "sev_id")?,
                    team: get(r, "team")?,
                    title: get(r, "title")?,
                    reason: get::<Option<String>>(r, "decline_reason")?.unwrap_or_default(),
                    at: get::<Option<i64>>(r, "declined_at")?.map(from_ms),
                })
            })
            .collect()
    }

    async fn rerouted(&self, period: Period) -> Result<Vec<Rerouted>, StoreError> {
        let (from, to) = period.bounds();
        let rows = sqlx::query(
            "SELECT e.sev_id, e.detail, e.at FROM sev_events e JOIN sevs s ON s.sev_id = e.sev_id \
             WHERE e.kind = 'rerouted' AND s.opened_at >= $1 AND s.opened_at < $2 ORDER BY e.id DESC",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("read reroutes", e))?;
        rows.iter()
            .map(|r| {
                let detail: serde_json::Value =
                    serde_json::from_str(&get::<String>(r, "detail")?).unwrap_or_default();
                let text = |k: &str| detail[k].as_str().unwrap_or_default().to_string();
                Ok(Rerouted {
                    sev_id: get(r, "sev_id")?,
                    from: text("from"),
                    to: text("to"),
                    note: detail["note"].as_str().map(str::to_string),
                    at: from_ms(get(r, "at")?),
                })
            })
            .collect()
    }

    /// The period's ticket count and its `limit` biggest clusters (merged ones counted in the
    /// cluster they went into), with their cumulative share.
    async fn pareto(
        &self,
        period: Period,
        limit: i64,
    ) -> Result<(i64, Vec<ParetoRow>), StoreError> {
        let (from, to) = period.bounds();
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tickets WHERE created_at >= $1 AND created_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(self.pool())
        .await
        .map_err(|e| StoreError::sql("count tickets", e))?;
        let rows = sqlx::query(
            "SELECT k.cluster_id, COALESCE(l.label, '') AS label, k.n FROM \
             (SELECT COALESCE(c.merged_into, t.cluster_id) AS cluster_id, COUNT(*) AS n FROM tickets t \
              LEFT JOIN clusters c ON c.cluster_id = t.cluster_id \
              WHERE t.created_at >= $1 AND t.created_at < $2 GROUP BY 1) k \
             LEFT JOIN clusters l ON l.cluster_id = k.cluster_id ORDER BY k.n DESC, k.cluster_id LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("rank clusters", e))?;
        let mut cumulative = 0i64;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let tickets: i64 = get(r, "n")?;
            cumulative += tickets;
            out.push(ParetoRow {
                cluster_id: get(r, "cluster_id")?,
                label: get(r, "label")?,
                tickets,
                share: tickets as f64 / total.max(1) as f64,
                cumulative_share: cumulative as f64 / total.max(1) as f64,
            });
        }
        Ok((total, out))
    }

    async fn weekly(&self, period: Period) -> Result<Vec<Week>, StoreError> {
        let (from, to) = period.bounds();
        let count = |table: &'static str, column: &'static str| {
            format!(
                "SELECT ({column} - {MONDAY_MS}) / {WEEK_MS} AS w, COUNT(*) AS n FROM {table} \
                 WHERE {column} >= $1 AND {column} < $2 GROUP BY 1"
            )
        };
        let mut weeks: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (i, sql) in [count("tickets", "created_at"), count("sevs", "opened_at")]
            .iter()
            .enumerate()
        {
            let rows = sqlx::query(sql)
                .bind(from)
                .bind(to)
                .fetch_all(self.pool())
                .await
                .map_err(|e| StoreError::sql("count by week", e))?;
            for r in &rows {
                let slot = weeks.entry(get(r, "w")?).or_default();
                let n: i64 = get(r, "n")?;
                if i == 0 {
                    slot.0 = n;
                } else {
                    slot.1 = n;
                }
            }
        }
        // Quiet weeks are weeks too: a trend line drawn past them would hide them.
        if let (Some(&first), Some(&last)) = (weeks.keys().next(), weeks.keys().next_back()) {
            if last - first <= MAX_FILLED_WEEKS {
                (first..=last).for_each(|w| _ = weeks.entry(w).or_default());
            }
        }
        Ok(weeks
            .into_iter()
            .map(|(w, (tickets, sevs_opened))| Week {
                week: from_ms(w * WEEK_MS + MONDAY_MS),
                tickets,
                sevs_opened,
            })
            .collect())
    }
}

/// Longest span of weeks whose quiet weeks are listed with zeros (ten years): beyond it only
/// the weeks with data are, so one ticket dated decades off cannot make the answer huge.
const MAX_FILLED_WEEKS: i64 = 520;

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    Some(if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    })
}
