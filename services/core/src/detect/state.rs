//! A cluster's detection state: its window of recent complaints, its history (the baseline) and
//! its open episode. Checkpointed with the cluster; every decision is a function of the tickets
//! and their event times, so a replay decides the same.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::history::History;
use super::rules::Rules;
use super::{
    escalation_id, negbin_tail, Decision, Escalation, Policy, RuleName, WEAK_PRIOR_WINDOWS,
};
use crate::ticket::Tier;

/// Most members a window remembers; far above any sensible `min_tickets`.
const MAX_WINDOW_MEMBERS: usize = 10_000;

/// An open episode stays hot while its window is still this improbable at the usual rate;
/// once it has not been for `episode.quiet`, the episode ends.
const HOT: f64 = 0.01;

/// One counted complaint inside a cluster's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub ticket_id: String,
    pub customer_id: String,
    #[serde(default = "free")]
    pub tier: Tier,
    pub at: DateTime<Utc>,
}

fn free() -> Tier {
    Tier::Free
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    pub window: VecDeque<Member>,
    /// How many episodes this cluster has had.
    pub episode: u32,
    /// An episode is open: new tickets attach to its SEV instead of escalating again.
    pub active: bool,
    /// Tickets that have left the window: the cluster's recent history, for its baseline.
    #[serde(default)]
    pub history: History,
    /// Event time of the cluster's first counted ticket.
    #[serde(default)]
    pub first_at: Option<DateTime<Utc>>,
    /// While active: the cluster whose SEV this cluster's tickets are linked to.
    #[serde(default)]
    pub sev_cluster: Option<String>,
    /// While active: the latest event time at which the window met the floor.
    #[serde(default)]
    pub hot_at: Option<DateTime<Utc>>,
}

/// How the window looks against the rules when a ticket is counted: what the backtest prints
/// and what an escalation carries as its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub tickets: u64,
    pub customers: u64,
    /// Distinct customers weighted by tier.
    pub customer_weight: f64,
    /// Usual tickets per window, as the cluster's history and the prior have it.
    pub expected: f64,
    /// `P(X ≥ customers)` at the usual rate (the predictive tail).
    pub p_value: f64,
    pub floor: bool,
    pub spike: bool,
    pub cold_start: bool,
}

impl Verdict {
    /// The rule that makes this window an incident under `policy`, if any.
    pub fn fired(&self, policy: Policy) -> Option<RuleName> {
        let significant = if self.spike {
            Some(RuleName::Spike)
        } else if self.cold_start {
            Some(RuleName::ColdStart)
        } else {
            None
        };
        match policy {
            Policy::Combined => significant.filter(|_| self.floor),
            Policy::Alone(RuleName::Floor) => self.floor.then_some(RuleName::Floor),
            Policy::Alone(rule) => significant.filter(|s| *s == rule),
        }
    }
}

impl DetectorState {
    /// Counts one complaint for `cluster_id` and decides. `scope_started` is the event time of
    /// the product's first ticket.
    pub fn observe(
        &mut self,
        cluster_id: &str,
        member: Member,
        rules: &Rules,
        scope_started: DateTime<Utc>,
        policy: Policy,
    ) -> Decision {
        let end = self.count(member, rules);
        let verdict = self.verdict(end, rules, scope_started);
        if self.active {
            if verdict.p_value <= HOT {
                self.hot_at = Some(end);
            }
            let quiet = chrono::Duration::from_std(rules.episode.quiet).unwrap_or_default();
            if self.hot_at.is_some_and(|hot| end - hot <= quiet) {
                return Decision::Attach {
                    sev_cluster: self
                        .sev_cluster
                        .clone()
                        .unwrap_or_else(|| cluster_id.to_string()),
                };
            }
            self.end_episode();
        }
        let Some(rule) = verdict.fired(policy) else {
            return Decision::Quiet;
        };
        self.active = true;
        self.episode += 1;
        self.sev_cluster = Some(cluster_id.to_string());
        self.hot_at = Some(end);
        Decision::Escalate(self.escalation(cluster_id, rule, verdict, end, rules))
    }

    /// Ends the open episode (its SEV was closed, or the cluster went quiet): the next crossing
    /// is a new episode.
    pub fn end_episode(&mut self) {
        self.active = false;
        self.sev_cluster = None;
        self.hot_at = None;
    }

    /// Adds a member and slides the window to end at the latest event time seen. Returns it.
    fn count(&mut self, member: Member, rules: &Rules) -> DateTime<Utc> {
        let end = self
            .window
            .back()
            .map_or(member.at, |last| last.at.max(member.at));
        self.first_at.get_or_insert(member.at);
        // The cluster's history starts when it is first seen, not a window before.
        self.history.until.get_or_insert(member.at);
        self.window.push_back(member);
        let start = end - chrono::Duration::from_std(rules.floor.window).unwrap_or_default();
        let mut left = Vec::new();
        self.window.retain(|m| {
            let stays = m.at >= start;
            if !stays {
                left.push(m.at);
            }
            stays
        });
        while self.window.len() > MAX_WINDOW_MEMBERS {
            left.extend(self.window.pop_front().map(|m| m.at));
        }
        let (window, memory) = (rules.floor.window, rules.spike.memory);
        self.history
            .advance(start, left.into_iter(), window, memory);
        end
    }

    fn verdict(&self, end: DateTime<Utc>, rules: &Rules, scope_started: DateTime<Utc>) -> Verdict {
        let mut customers: BTreeMap<&str, Tier> = BTreeMap::new();
        for m in &self.window {
            let tier = customers.entry(&m.customer_id).or_insert(m.tier);
            *tier = (*tier).max(m.tier);
        }
        let customer_weight: f64 = customers.values().map(|t| rules.tiers.of(*t)).sum();
        let first_at = self.first_at.unwrap_or(end);
        let watched = self.history.windows;
        let born_after_warmup =
            (first_at - scope_started).to_std().unwrap_or_default() >= rules.cold_start.warmup;
        let prior = if born_after_warmup && rules.cold_start.enabled {
            rules.spike.prior_windows
        } else {
            WEAK_PRIOR_WINDOWS
        };
        // Gamma(shape, rate) belief about the usual tickets per window, after the history.
        let shape = rules.cold_start.rate * prior + self.history.tickets;
        let rate = prior + watched;
        let n = customers.len() as u64;
        let p_value = negbin_tail(n, shape, rate / (rate + 1.0));
        let significant = p_value <= rules.spike.max_false_alarm;
        // While the prior outweighs the cluster's own history, it is the cold start that fires.
        let young = watched < prior;
        Verdict {
            tickets: self.window.len() as u64,
            customers: n,
            customer_weight,
            expected: shape / rate,
            p_value,
            floor: self.window.len() >= rules.floor.min_tickets as usize
                && customer_weight >= rules.floor.min_customers,
            spike: significant && !young,
            cold_start: significant && young,
        }
    }

    fn escalation(
        &self,
        cluster_id: &str,
        rule: RuleName,
        verdict: Verdict,
        end: DateTime<Utc>,
        rules: &Rules,
    ) -> Escalation {
        let window = chrono::Duration::from_std(rules.floor.window).unwrap_or_default();
        Escalation {
            id: escalation_id(cluster_id, self.episode, rule.as_str()),
            cluster_id: cluster_id.to_string(),
            rule: rule.as_str().to_string(),
            episode: self.episode,
            window_start: end - window,
            fired_at: end,
            first_ticket_at: self.window.iter().map(|m| m.at).min().unwrap_or(end),
            ticket_count: verdict.tickets,
            distinct_customers: verdict.customers,
            evidence: self.window.iter().map(|m| m.ticket_id.clone()).collect(),
            verdict,
        }
    }

    /// Takes over the state of a cluster merged into this one: its window, history and any
    /// open episode, so the merged complaint keeps counting (and keeps its SEV).
    pub fn absorb(&mut self, other: DetectorState) {
        let mut window: Vec<Member> = self.window.drain(..).chain(other.window).collect();
        window.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
        window.dedup_by(|a, b| a.ticket_id == b.ticket_id);
        let skip = window.len().saturating_sub(MAX_WINDOW_MEMBERS);
        self.window = window.into_iter().skip(skip).collect();
        self.history.merge(&other.history);
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.episode = self.episode.max(other.episode);
        if !self.active && other.active {
            self.active = true;
            self.sev_cluster = other.sev_cluster;
            self.hot_at = other.hot_at;
        }
    }
}
