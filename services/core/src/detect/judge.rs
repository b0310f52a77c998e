//! Judging a window against the usual rate. A complaint rarely sits in exactly one cluster: it
//! starts in fragments, a busy one re-forms in a fresh cluster, an incident spreads over a
//! cluster and its near neighbours. So a ticket's cluster is judged together with the clusters
//! the ticket nearly joined: their windows together, against the sum of their usual rates.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rules::Rules;
use super::state::{DetectorState, Member};
use super::{negbin_tail, Policy, RuleName, WEAK_PRIOR_WINDOWS};
use crate::ticket::Tier;

/// How a window looks against the rules when a ticket is counted: what the backtest prints
/// and what an escalation carries as its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub tickets: u64,
    pub customers: u64,
    /// Distinct customers weighted by tier.
    pub customer_weight: f64,
    /// Usual tickets per `span_minutes`, as the clusters' histories and the prior have it.
    pub expected: f64,
    /// `P(X ≥ distinct customers in the span)` at the usual rate (the predictive tail), for
    /// the scanned span where it is smallest.
    pub p_value: f64,
    /// The span (ending at the newest ticket) the p-value is for.
    pub span_minutes: f64,
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

/// A verdict and the tickets it was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The tickets of the longest span that stood out, oldest first: the evidence if it
    /// escalates.
    pub evidence: Vec<String>,
    pub first_ticket_at: Option<DateTime<Utc>>,
}

/// Judges the windows of `group` (a cluster and its near neighbours) together, as of event
/// time `end`. `scope_started` is when the product was first seen.
pub fn judge(
    group: &[&DetectorState],
    end: DateTime<Utc>,
    rules: &Rules,
    scope_started: DateTime<Utc>,
) -> Judgement {
    let start = end - chrono::Duration::from_std(rules.floor.window).unwrap_or_default();
    // A neighbour's window slides only when it counts a ticket: keep its members in ours.
    let mut members: BTreeMap<&str, &Member> = BTreeMap::new();
    for m in group.iter().flat_map(|s| &s.window) {
        if m.at >= start && m.at <= end {
            members.entry(&m.ticket_id).or_insert(m);
        }
    }
    let mut customers: BTreeMap<&str, Tier> = BTreeMap::new();
    for m in members.values() {
        let tier = customers.entry(&m.customer_id).or_insert(m.tier);
        *tier = (*tier).max(m.tier);
    }
    let customer_weight: f64 = customers.values().map(|t| rules.tiers.of(*t)).sum();
    let usual = usual_rate(group, end, rules, scope_started);
    let whole = scan_span(&members, &usual, rules.floor.window, end, rules);
    let shorter: Vec<Scan> = rules
        .spike
        .shorter_spans(rules.floor.window)
        .into_iter()
        .map(|span| scan_span(&members, &usual, span, end, rules))
        .collect();
    // The most improbable span; the shortest on a tie.
    let scan = shorter.iter().rev().fold(whole, |best, s| {
        if s.p_value.total_cmp(&best.p_value).is_le() {
            *s
        } else {
            best
        }
    });
    // The window is judged at every ticket it counts: a busy neighbourhood is judged about
    // `usual` times per window, so the per-judgement rate is split among them, and among the
    // spans scanned, and the false-alarm rate stays per window of time, however busy the
    // complaint.
    let judged = (usual.shape / usual.rate).max(1.0) * (shorter.len() + 1) as f64;
    let bound = rules.spike.max_false_alarm / judged;
    let significant = usual.judgeable && scan.p_value <= bound;
    // The evidence is the longest span that stands out on its own: the whole burst, but not
    // the usual traffic before it.
    let evidence_since = std::iter::once(&whole)
        .chain(shorter.iter().rev())
        .find(|s| s.p_value <= bound)
        .map_or(scan.since, |s| s.since);
    let mut window: Vec<&Member> = members.into_values().collect();
    window.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
    let tickets = window.len();
    let evidence: Vec<&Member> = window
        .into_iter()
        .filter(|m| m.at >= evidence_since)
        .collect();
    Judgement {
        verdict: Verdict {
            tickets: tickets as u64,
            customers: customers.len() as u64,
            customer_weight,
            expected: scan.expected,
            p_value: scan.p_value,
            span_minutes: scan.span_minutes,
            floor: tickets >= rules.floor.min_tickets as usize
                && customer_weight >= rules.floor.min_customers,
            spike: significant && !usual.young,
            cold_start: significant && usual.young,
        },
        first_ticket_at: evidence.first().map(|m| m.at),
        evidence: evidence.into_iter().map(|m| m.ticket_id.clone()).collect(),
    }
}

/// How improbable one span of the window is at the usual rate.
#[derive(Debug, Clone, Copy)]
struct Scan {
    p_value: f64,
    expected: f64,
    span_minutes: f64,
    /// Start of the span: its tickets are the evidence.
    since: DateTime<Utc>,
}

/// The distinct customers of the last `span` against the usual rate scaled to the span: a
/// Gamma(shape, rate) belief per window is Gamma(shape, rate / share) per share of it.
fn scan_span(
    members: &BTreeMap<&str, &Member>,
    usual: &Usual,
    span: std::time::Duration,
    end: DateTime<Utc>,
    rules: &Rules,
) -> Scan {
    let since = end - chrono::Duration::from_std(span).unwrap_or_default();
    let customers: BTreeSet<&str> = members
        .values()
        .filter(|m| m.at >= since)
        .map(|m| m.customer_id.as_str())
        .collect();
    let share = span.as_secs_f64() / rules.floor.window.as_secs_f64().max(1.0);
    let rate = usual.rate / share;
    Scan {
        p_value: negbin_tail(customers.len() as u64, usual.shape, rate / (rate + 1.0)),
        expected: usual.shape / rate,
        span_minutes: span.as_secs_f64() / 60.0,
        since,
    }
}

/// A Gamma(shape, rate) belief about the usual tickets per window.
struct Usual {
    shape: f64,
    rate: f64,
    /// Every cluster of the group is still judged mostly by its prior: the cold start.
    young: bool,
    /// Some cluster of the group has a rate to judge by: born after the warmup (the cold-start
    /// prior stands for it), or watched for a window since. Clusters born while the product was
    /// new have neither at first, and a window of them proves nothing.
    judgeable: bool,
}

/// The sum of the group's usual rates. Each cluster's belief is its prior (the cold-start rate,
/// held as strongly as `prior_windows` windows; next to nothing for clusters born while the
/// product was new) updated with its discounted history. The sum of the beliefs is matched by
/// one Gamma with the same mean and variance, so a young fragment's uncertainty does not
/// drown an old neighbour's well-known rate.
fn usual_rate(
    group: &[&DetectorState],
    end: DateTime<Utc>,
    rules: &Rules,
    scope_started: DateTime<Utc>,
) -> Usual {
    let (mut mean, mut var, mut young, mut judgeable) = (0.0, 0.0, true, false);
    for s in group {
        let first_at = s.first_at.unwrap_or(end);
        let born_after_warmup =
            (first_at - scope_started).to_std().unwrap_or_default() >= rules.cold_start.warmup;
        let prior = if born_after_warmup && rules.cold_start.enabled {
            rules.spike.prior_windows
        } else {
            WEAK_PRIOR_WINDOWS
        };
        let shape = rules.cold_start.rate * prior + s.history.tickets;
        let rate = prior + s.history.windows;
        mean += shape / rate;
        var += shape / (rate * rate);
        young &= s.history.windows < prior;
        judgeable |= (born_after_warmup && rules.cold_start.enabled) || s.history.windows >= 1.0;
    }
    if var <= 0.0 {
        return Usual {
            shape: rules.cold_start.rate * WEAK_PRIOR_WINDOWS,
            rate: WEAK_PRIOR_WINDOWS,
            young,
            judgeable,
        };
    }
    Usual {
        shape: mean * mean / var,
        rate: mean / var,
        young,
        judgeable,
    }
}
