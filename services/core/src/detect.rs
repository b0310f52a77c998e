//! Detection: when a cluster's tickets cross a rule, it escalates (and a SEV opens).
//!
//! Decisions depend on event time only: the window ends at the latest event time the cluster has
//! seen, never at the wall clock, so replaying a log gives the same escalations.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most members a window remembers; far above any sensible `min_tickets`.
const MAX_WINDOW_MEMBERS: usize = 10_000;

/// The floor rule: at least `min_tickets` tickets from at least `min_customers` distinct customers
/// within `window`. One angry customer filing ten tickets counts as one customer.
///
/// Guarded by the cluster's own baseline: a busy topic whose usual rate already reaches the floor
/// is not an incident. The window's count must be improbable under a Poisson model of the
/// cluster's history (`P(X ≥ count) ≤ max_false_alarm`); a cluster with less than one window of
/// history is assumed to run at `cold_start_rate` tickets per window. That cold-start assumption
/// holds only for clusters born after the product has been watched for `warmup`: early in a log
/// every cluster is new to sevloop, not to its customers, so those wait for a window of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloorRule {
    pub min_tickets: u32,
    pub min_customers: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Probability, per evaluation, that a cluster at its usual rate fires anyway.
    pub max_false_alarm: f64,
    /// Assumed tickets per window of a cluster with no history yet.
    pub cold_start_rate: f64,
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

impl Default for FloorRule {
    fn default() -> Self {
        FloorRule {
            min_tickets: 8,
            min_customers: 6,
            window: Duration::from_secs(30 * 60),
            max_false_alarm: 1e-5,
            cold_start_rate: 0.5,
            warmup: Duration::from_secs(2 * 3600),
        }
    }
}

/// P(X ≥ k) for X ~ Poisson(λ), summed in log space so large λ stays finite.
pub fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    // P(X < k) = Σ_{i<k} e^{-λ} λ^i / i!
    let mut log_term = -lambda;
    let mut below = log_term.exp();
    for i in 1..k {
        log_term += lambda.ln() - (i as f64).ln();
        below += log_term.exp();
    }
    (1.0 - below).max(0.0)
}

/// One counted complaint inside a cluster's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub ticket_id: String,
    pub customer_id: String,
    pub at: DateTime<Utc>,
}

/// A cluster's detection state, checkpointed with the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    pub window: VecDeque<Member>,
    /// How many SEV episodes this cluster has had.
    pub episode: u32,
    /// An episode is open: new tickets attach to its SEV instead of escalating again.
    pub active: bool,
    /// Tickets that have left the window: the cluster's history, for its baseline.
    #[serde(default)]
    pub history: u64,
    /// Event time of the cluster's first counted ticket.
    #[serde(default)]
    pub first_at: Option<DateTime<Utc>>,
    /// While active: the cluster whose SEV this cluster's tickets are linked to.
    #[serde(default)]
    pub sev_cluster: Option<String>,
}

/// A cluster crossed a rule. Its id is derived from the cluster and episode, so a replay of the
/// same log produces the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub id: String,
    pub cluster_id: String,
    pub rule: String,
    pub episode: u32,
    pub window_start: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// Event time of the earliest evidence ticket.
    pub first_ticket_at: DateTime<Utc>,
    pub ticket_count: u64,
    pub distinct_customers: u64,
    /// The tickets in the window when the rule fired; all are linked to the SEV.
    pub evidence: Vec<String>,
}

/// What detection decided for one newly counted ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do yet.
    Quiet,
    /// An episode is open: link the ticket to the SEV of `sev_cluster` (this cluster, or the
    /// related one whose SEV it joined).
    Attach { sev_cluster: String },
    /// Open a SEV.
    Escalate(Escalation),
    /// The cluster crossed the rule while a closely related cluster already has an open SEV:
    /// link the evidence to that SEV instead of opening a duplicate.
    Join {
        escalation: Escalation,
        sev_cluster: String,
    },
}

impl DetectorState {
    /// Counts one new complaint for `cluster_id` and decides. `scope_started` is the event time of
    /// the first ticket of the cluster's product.
    pub fn observe(
        &mut self,
        cluster_id: &str,
        member: Member,
        rule: &FloorRule,
        scope_started: DateTime<Utc>,
    ) -> Decision {
        self.window.push_back(member);
        if self.window.len() > MAX_WINDOW_MEMBERS {
            self.window.pop_front();
        }
        let Some(end) = self.window.iter().map(|m| m.at).max() else {
            return Decision::Quiet;
        };
        let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
        let start = end - window;
        let before = self.window.len();
        self.window.retain(|m| m.at >= start);
        self.history += (before - self.window.len()) as u64;
        let first_at = *self.first_at.get_or_insert(end);
        if self.active {
            return Decision::Attach {
                sev_cluster: self
                    .sev_cluster
                    .clone()
                    .unwrap_or_else(|| cluster_id.to_string()),
            };
        }
        let customers: BTreeSet<&str> =
            self.window.iter().map(|m| m.customer_id.as_str()).collect();
        if self.window.len() < rule.min_tickets as usize
            || customers.len() < rule.min_customers as usize
            || !self.above_baseline(start, first_at, scope_started, rule)
        {
            return Decision::Quiet;
        }
        self.active = true;
        self.episode += 1;
        self.sev_cluster = Some(cluster_id.to_string());
        Decision::Escalate(Escalation {
            id: escalation_id(cluster_id, self.episode, "floor"),
            cluster_id: cluster_id.to_string(),
            rule: "floor".to_string(),
            episode: self.episode,
            window_start: start,
            fired_at: end,
            first_ticket_at: self.window.iter().map(|m| m.at).min().unwrap_or(end),
            ticket_count: self.window.len() as u64,
            distinct_customers: customers.len() as u64,
            evidence: self.window.iter().map(|m| m.ticket_id.clone()).collect(),
        })
    }
}

impl DetectorState {
    /// Takes over the state of a cluster merged into this one: its window, history and any
    /// open episode, so the merged complaint keeps counting (and keeps its SEV).
    pub fn absorb(&mut self, other: DetectorState) {
        let mut window: Vec<Member> = self.window.drain(..).chain(other.window).collect();
        window.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
        let skip = window.len().saturating_sub(MAX_WINDOW_MEMBERS);
        self.window = window.into_iter().skip(skip).collect();
        self.history += other.history;
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.episode = self.episode.max(other.episode);
        if !self.active && other.active {
            self.active = true;
            self.sev_cluster = other.sev_cluster;
        }
    }

    /// Whether the window's count is improbable at the cluster's usual rate.
    fn above_baseline(
        &self,
        start: DateTime<Utc>,
        first_at: DateTime<Utc>,
        scope_started: DateTime<Utc>,
        rule: &FloorRule,
    ) -> bool {
        let window = rule.window.as_secs_f64().max(1.0);
        let observed = (start - first_at).num_milliseconds() as f64 / 1000.0;
        let born_in_warmup = (first_at - scope_started).to_std().unwrap_or_default() < rule.warmup;
        let usual = if observed < window {
            if born_in_warmup {
                return false;
            }
            rule.cold_start_rate
        } else {
            (self.history as f64 * window / observed).max(rule.cold_start_rate)
        };
        poisson_tail(self.window.len() as u64, usual) <= rule.max_false_alarm
    }
}

/// `esc-` and the first 16 hex digits of SHA-256 over cluster, episode and rule.
pub fn escalation_id(cluster_id: &str, episode: u32, rule: &str) -> String {
    let digest = Sha256::digest(format!("{cluster_id}\n{episode}\n{rule}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("esc-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u32, customer: &str, minute: i64) -> Member {
        Member {
            ticket_id: format!("T-{i}"),
            customer_id: customer.to_string(),
            at: DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                + chrono::Duration::minutes(minute),
        }
    }

    fn rule() -> FloorRule {
        FloorRule {
            min_tickets: 5,
            min_customers: 4,
            window: Duration::from_secs(30 * 60),
            max_false_alarm: 1e-3,
            ..FloorRule::default()
        }
    }

    /// The product has been watched for a day before these tests' tickets.
    fn scope_start() -> DateTime<Utc> {
        member(0, "", 0).at - chrono::Duration::hours(24)
    }

    /// A cluster that has run at `per_window` tickets per 30 minutes for ten hours.
    fn with_history(per_window: u64) -> DetectorState {
        DetectorState {
            history: per_window * 20,
            first_at: Some(member(0, "", 0).at - chrono::Duration::hours(10)),
            ..DetectorState::default()
        }
    }

    #[test]
    fn the_poisson_tail_matches_known_values() {
        assert_eq!(poisson_tail(0, 3.0), 1.0);
        assert!((poisson_tail(1, 2.0) - (1.0 - (-2.0f64).exp())).abs() < 1e-12);
        // P(X >= 18 | 10) = 0.0143 (tables)
        assert!((poisson_tail(18, 10.0) - 0.0143).abs() < 5e-4);
        assert!(poisson_tail(8, 0.5) < 1e-6);
        assert!(poisson_tail(2000, 1000.0) < 1e-100);
    }

    #[test]
    fn a_busy_cluster_at_its_usual_rate_does_not_escalate() {
        let mut s = with_history(10);
        // Still ten tickets every 30 minutes: busy, but usual.
        for i in 0..100u32 {
            let d = s.observe(
                "c",
                member(i, &format!("c{i}"), i as i64 * 3),
                &rule(),
                scope_start(),
            );
            assert_eq!(d, Decision::Quiet, "ticket {i}");
        }
    }

    #[test]
    fn a_busy_cluster_escalates_when_it_jumps_far_above_its_usual_rate() {
        let mut s = with_history(5);
        let mut fired = None;
        for j in 0..40u32 {
            let d = s.observe(
                "c",
                member(j, &format!("x{j}"), j as i64 / 4),
                &rule(),
                scope_start(),
            );
            if let Decision::Escalate(e) = d {
                fired = Some(e.ticket_count);
                break;
            }
        }
        let n = fired.expect("a spike to four times the usual rate escalates");
        assert!(n > 5, "fired at {n} tickets");
    }

    #[test]
    fn opens_once_when_five_tickets_from_four_customers_arrive_within_the_window() {
        let mut s = DetectorState::default();
        let customers = ["a", "b", "c", "c", "d", "e"];
        let decisions: Vec<Decision> = customers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                s.observe(
                    "cards:1",
                    member(i as u32, c, i as i64),
                    &rule(),
                    scope_start(),
                )
            })
            .collect();
        assert!(decisions[..4].iter().all(|d| *d == Decision::Quiet));
        let Decision::Escalate(e) = &decisions[4] else {
            panic!("expected an escalation, got {:?}", decisions[4]);
        };
        assert_eq!(e.ticket_count, 5);
        assert_eq!(e.distinct_customers, 4);
        assert_eq!(e.evidence, vec!["T-0", "T-1", "T-2", "T-3", "T-4"]);
        assert_eq!(e.id, escalation_id("cards:1", 1, "floor"));
        assert_eq!(
            decisions[5],
            Decision::Attach {
                sev_cluster: "cards:1".into()
            }
        );
    }

    #[test]
    fn one_angry_customer_filing_many_tickets_does_not_escalate() {
        let mut s = DetectorState::default();
        for i in 0..20 {
            assert_eq!(
                s.observe(
                    "cards:1",
                    member(i, "angry", i as i64),
                    &rule(),
                    scope_start()
                ),
                Decision::Quiet
            );
        }
    }

    #[test]
    fn tickets_spread_wider_than_the_window_do_not_escalate() {
        let mut s = DetectorState::default();
        for i in 0..10 {
            let d = s.observe(
                "c",
                member(i, &format!("c{i}"), i as i64 * 20),
                &rule(),
                scope_start(),
            );
            assert_eq!(d, Decision::Quiet, "ticket {i}");
        }
        assert!(s.window.len() <= 2);
    }

    #[test]
    fn a_cluster_born_while_the_product_is_new_waits_for_a_window_of_history() {
        let mut s = DetectorState::default();
        let started = member(0, "", 0).at;
        for i in 0..20u32 {
            let d = s.observe("c", member(i, &format!("c{i}"), i as i64), &rule(), started);
            assert_eq!(d, Decision::Quiet, "ticket {i}");
        }
    }

    #[test]
    fn escalation_ids_are_stable_and_distinct_per_episode() {
        assert_eq!(
            escalation_id("cards:1", 1, "floor"),
            escalation_id("cards:1", 1, "floor")
        );
        assert_ne!(
            escalation_id("cards:1", 1, "floor"),
            escalation_id("cards:1", 2, "floor")
        );
        assert_eq!(escalation_id("x", 1, "floor").len(), 4 + 16);
    }
}
