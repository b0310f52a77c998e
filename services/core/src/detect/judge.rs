//! Judging a window against the usual rate. A complaint rarely sits in exactly one cluster: it
//! starts in fragments, a busy one re-forms in a fresh cluster, an incident spreads over a
//! cluster and its near neighbours. So a ticket's cluster is judged together with the clusters
//! the ticket nearly joined (its neighbourhood): their windows together, against the sum of their
//! usual rates. A busy neighbour's usual traffic can drown a burst there, so a cluster is also
//! judged on its region (itself and its boundary) once its neighbourhood stands out a little.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rules::{Rules, TierWeights};
use super::state::{DetectorState, Member};
use super::{event_span, negbin_tail, Moments, Policy, RuleName, WEAK_PRIOR_WINDOWS};
use crate::ticket::Tier;

/// How a window looks against the rules when a ticket is counted: what the backtest prints
/// and what an escalation carries as its reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub tickets: u64,
    pub customers: u64,
    /// Distinct customers weighted by tier.
    pub customer_weight: f64,
    /// Usual tickets per `span_minutes`, as the clusters' histories and the prior have it (with,
    /// on a cold start, the share of what their carriers draw).
    pub expected: f64,
    /// `P(X ≥ distinct customers in the span)` at the usual rate (the predictive tail), for
    /// the scanned span where it is smallest.
    pub p_value: f64,
    /// The span (ending at the newest ticket) the p-value is for.
    pub span_minutes: f64,
    /// Tickets of the window taken as usual traffic moved in from other clusters (the
    /// shortfall of the clusters its tickets would have joined otherwise), not counted as new.
    pub moved_in: u64,
    /// Judged on the cluster's region (itself and its boundary) rather than its neighbourhood
    /// (see [`super::SpikeRule::region_gate`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub region: bool,
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

/// An open episode stays hot while its window is this improbable at the usual rate, per window
/// of time, split among all the judgements of a window (a busy cluster is judged hundreds of
/// times a window, and 1% per judgement would keep a false alarm's episode hot, and filing
/// every ticket under its SEV, for ever). Not eased as the false-alarm rate's split is (see
/// [`tests_per_window`]): any judgement above the level keeps the episode hot, not only one
/// that crosses it.
const HOT: f64 = 0.01;

/// A verdict and the tickets it was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The window is still improbable enough to keep an open episode going: 1% per window of
    /// time, split among the window's judgements.
    pub hot: bool,
    /// The tickets of the longest span that stood out, oldest first: the evidence if it
    /// escalates. Collected only when a rule fires under the policy judged by (only then can
    /// it escalate), so the busy path copies no ticket ids.
    pub evidence: Vec<String>,
    pub first_ticket_at: Option<DateTime<Utc>>,
}

/// Clusters outside a judged group whose usual traffic may turn up in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Elsewhere<'a> {
    /// Clusters the group's tickets would have joined otherwise: what they fell short of their
    /// usual rate moved in (see [`moved_in`]).
    pub sources: &'a [&'a DetectorState],
    /// Clusters carrying traffic like the group's, with the share of theirs that is (see
    /// [`crate::cluster::Clusterer::carriers`]): that share of their usual rate is usual here.
    pub carriers: &'a [(&'a DetectorState, f64)],
}

/// Judges the windows of `group` (a cluster and its near neighbours) together, as of event
/// time `end`, for `policy`, with what is usual for it `elsewhere`. `scope_started` is when the
/// product was first seen.
pub fn judge(
    group: &[&DetectorState],
    elsewhere: Elsewhere,
    end: DateTime<Utc>,
    rules: &Rules,
    policy: Policy,
    scope_started: DateTime<Utc>,
) -> Judgement {
    let start = end - event_span(rules.floor.window);
    let window = window_of(group, start, end);
    let spans = rules.spike.shorter_spans(rules.floor.window);
    let customers = Customers::count(&window, &spans, end, &rules.tiers);
    let moved = moved_in(elsewhere.sources, end, rules, scope_started);
    let new = |n: usize, moved: u64| n.saturating_sub(moved as usize);
    let per_span: Vec<usize> = (customers.per_span.iter().zip(&moved.per_span))
        .map(|(n, m)| new(*n, *m))
        .collect();
    let usual = usual_rate(group, elsewhere.carriers, end, rules, scope_started);
    let whole = scan_span(
        new(customers.whole, moved.whole),
        &usual,
        rules.floor.window,
        end,
        rules,
    );
    let shorter = scan_spans(&spans, &per_span, &usual, end, rules);
    // The most improbable span; the shortest on a tie.
    let scan = shorter.iter().rev().fold(whole, |best, s| {
        if s.p_value.total_cmp(&best.p_value).is_le() {
            *s
        } else {
            best
        }
    });
    let bound = rules.spike.max_false_alarm / tests_per_window(&usual, spans.len());
    let significant = usual.judgeable && scan.p_value <= bound;
    // The evidence is the longest span that stands out on its own: the whole burst, but not
    // the usual traffic before it.
    let evidence_since = std::iter::once(&whole)
        .chain(shorter.iter().rev())
        .find(|s| s.p_value <= bound)
        .map_or(scan.since, |s| s.since);
    let tickets = window.len();
    let verdict = Verdict {
        tickets: tickets as u64,
        customers: customers.whole as u64,
        customer_weight: customers.weight,
        expected: scan.expected,
        p_value: scan.p_value,
        span_minutes: scan.span_minutes,
        moved_in: moved.whole,
        region: false,
        floor: tickets >= rules.floor.min_tickets as usize
            && customers.weight >= rules.floor.min_customers,
        spike: significant && !usual.young,
        cold_start: significant && usual.young,
    };
    let evidence = match verdict.fired(policy) {
        Some(_) => &window[window.partition_point(|m| m.at < evidence_since)..],
        None => &[],
    };
    Judgement {
        hot: scan.p_value <= HOT / judgements_per_window(&usual, spans.len()),
        verdict,
        first_ticket_at: evidence.first().map(|m| m.at),
        evidence: evidence.iter().map(|m| m.ticket_id.clone()).collect(),
    }
}

/// Whether [`judge`] could fire under `policy`, by an upper bound that needs neither a sort nor
/// a map: every ticket of the group's windows counted as a distinct customer (repeat tickets,
/// and a ticket in two windows, count once in the judgement). Most judgements are of usual
/// traffic, and this settles them by binary searches in the (time-ordered) windows; when it
/// says no, the judgement would say so too.
pub fn could_fire(
    group: &[&DetectorState],
    end: DateTime<Utc>,
    rules: &Rules,
    policy: Policy,
    scope_started: DateTime<Utc>,
) -> bool {
    if policy == Policy::Alone(RuleName::Floor) {
        return true;
    }
    let usual = usual_rate(group, &[], end, rules, scope_started);
    if !usual.judgeable {
        return false;
    }
    let spans = rules.spike.shorter_spans(rules.floor.window);
    let start = end - event_span(rules.floor.window);
    let starts = span_starts(&spans, end);
    let whole: usize = group.iter().map(|s| s.members_in(start, end)).sum();
    let per_span: Vec<usize> = starts
        .iter()
        .map(|since| group.iter().map(|s| s.members_in(*since, end)).sum())
        .collect();
    if policy == Policy::Combined && whole < rules.floor.min_tickets as usize {
        return false;
    }
    let bound = rules.spike.max_false_alarm / tests_per_window(&usual, spans.len());
    std::iter::once(scan_span(whole, &usual, rules.floor.window, end, rules))
        .chain(scan_spans(&spans, &per_span, &usual, end, rules))
        .any(|s| s.p_value <= bound)
}

/// Tickets moved in from other clusters (see [`moved_in`]), whole tickets.
pub struct MovedIn {
    /// Over the whole window.
    pub whole: u64,
    /// Over each shorter span, shortest first.
    pub per_span: Vec<u64>,
}

/// Tickets moved in from `sources`: how far each source fell short of its usual rate over the
/// window and each shorter span, summed. When a cluster's rise is its sources' fall, usual
/// traffic moved between clusters (a busy complaint re-forming in a young cluster, or drawn to
/// another as centroids shift); when the sources run as usual, their shortfall is chance and
/// small.
pub fn moved_in(
    sources: &[&DetectorState],
    end: DateTime<Utc>,
    rules: &Rules,
    scope_started: DateTime<Utc>,
) -> MovedIn {
    let window = rules.floor.window;
    let spans = rules.spike.shorter_spans(window);
    let mut moved = MovedIn {
        whole: 0,
        per_span: vec![0; spans.len()],
    };
    for source in sources {
        let usual = usual_rate(&[source], &[], end, rules, scope_started);
        if !usual.judgeable {
            continue;
        }
        let per_window = usual.per_window();
        let shortfall = |span: Duration| {
            let share = span.as_secs_f64() / window.as_secs_f64().max(1.0);
            let seen = source.members_in(end - event_span(span), end) as f64;
            (per_window * share - seen).max(0.0).floor() as u64
        };
        moved.whole += shortfall(window);
        for (m, span) in moved.per_span.iter_mut().zip(&spans) {
            *m += shortfall(*span);
        }
    }
    moved
}

/// How many judgements a window sees: a busy neighbourhood is judged about `usual` times per
/// window, and each judgement scans the shorter spans and the whole.
fn judgements_per_window(usual: &Usual, shorter_spans: usize) -> f64 {
    usual.per_window().max(1.0) * (shorter_spans + 1) as f64
}

/// How many tests the false-alarm rate is split among, so it stays per window of time however
/// busy the complaint: fewer than the judgements. Judgements at consecutive tickets share all
/// but one ticket: a sliding count whose usual count is `u` crosses a level z standard
/// deviations above it about z·√u times as often as one test at that level fires, not u times
/// (z drifts from about 8 to 5 as u grows, at these bounds; the rate stays nominal, set on the
/// streams and the bench). Split u ways, a busy neighbourhood's bound was needlessly strict,
/// and a burst beside busy clusters waited many tickets longer (docs/MEASUREMENTS.md).
fn tests_per_window(usual: &Usual, shorter_spans: usize) -> f64 {
    usual.per_window().max(1.0).sqrt() * (shorter_spans + 1) as f64
}

fn scan_spans(
    spans: &[Duration],
    counts: &[usize],
    usual: &Usual,
    end: DateTime<Utc>,
    rules: &Rules,
) -> Vec<Scan> {
    spans
        .iter()
        .zip(counts)
        .map(|(span, n)| scan_span(*n, usual, *span, end, rules))
        .collect()
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

/// The `customers` distinct customers of the last `span` against the usual rate scaled to the
/// span: a Gamma(shape, rate) belief per window is Gamma(shape, rate / share) per share of it.
fn scan_span(
    customers: usize,
    usual: &Usual,
    span: Duration,
    end: DateTime<Utc>,
    rules: &Rules,
) -> Scan {
    let share = span.as_secs_f64() / rules.floor.window.as_secs_f64().max(1.0);
    let rate = usual.rate / share;
    Scan {
        p_value: negbin_tail(customers as u64, usual.shape, rate / (rate + 1.0)),
        expected: usual.shape / rate,
        span_minutes: span.as_secs_f64() / 60.0,
        since: end - event_span(span),
    }
}

/// The group's window from `start` to `end`, oldest first, each ticket once. A neighbour's
/// window slides only when it counts a ticket, so its older members are left out here.
fn window_of<'a>(
    group: &[&'a DetectorState],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<&'a Member> {
    let mut window: Vec<&Member> = group
        .iter()
        .flat_map(|s| s.members_between(start, end))
        .collect();
    // Each cluster's window is in time order: the sort merges runs, close to linear.
    window.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
    // Should a ticket sit in two windows of the group, it counts once.
    window.dedup_by(|a, b| a.ticket_id == b.ticket_id);
    window
}

/// Where each span ending at `end` starts.
fn span_starts(spans: &[Duration], end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    spans.iter().map(|s| end - event_span(*s)).collect()
}

/// Distinct customers of a window (repeat tickets from one customer count once).
struct Customers {
    whole: usize,
    /// In each of the shorter spans, shortest first.
    per_span: Vec<usize>,
    /// Distinct customers weighted by their highest tier in the window.
    weight: f64,
}

impl Customers {
    /// One pass from the newest ticket back, noting the count as it crosses each span's start.
    fn count(
        window: &[&Member],
        spans: &[Duration],
        end: DateTime<Utc>,
        tiers: &TierWeights,
    ) -> Customers {
        let starts = span_starts(spans, end);
        let mut seen: HashMap<&str, Tier, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(window.len(), Default::default());
        let mut per_span = Vec::with_capacity(starts.len());
        for m in window.iter().rev() {
            while starts
                .get(per_span.len())
                .is_some_and(|since| m.at < *since)
            {
                per_span.push(seen.len());
            }
            let tier = seen.entry(&m.customer_id).or_insert(m.tier);
            *tier = (*tier).max(m.tier);
        }
        per_span.resize(starts.len(), seen.len());
        // Summed per tier, not per customer, so the order of the map cannot change the sum.
        let weight = [Tier::Free, Tier::Pro, Tier::Enterprise]
            .into_iter()
            .map(|t| seen.values().filter(|v| **v == t).count() as f64 * tiers.of(t))
            .sum();
        Customers {
            whole: seen.len(),
            per_span,
            weight,
        }
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

impl Usual {
    /// The usual tickets per window: the belief's mean.
    fn per_window(&self) -> f64 {
        self.shape / self.rate
    }
}

/// The sum of the group's usual rates, and of the `carriers`' shares of theirs. Each cluster's
/// belief is its prior (the cold-start rate, held as strongly as `prior_windows` windows; next
/// to nothing for clusters born while the product was new) updated with its discounted
/// history. The sum of the beliefs is matched by one Gamma with the same mean and variance, so
/// a young fragment's uncertainty does not drown an old neighbour's well-known rate. Whether
/// the group is young or judgeable is the group's own: carriers only add to what is usual.
fn usual_rate(
    group: &[&DetectorState],
    carriers: &[(&DetectorState, f64)],
    end: DateTime<Utc>,
    rules: &Rules,
    scope_started: DateTime<Utc>,
) -> Usual {
    // A cluster's belief: Gamma(shape, rate), and the prior's strength in windows.
    let belief = |s: &DetectorState| {
        let holds_prior = s.holds_cold_start_prior(rules, scope_started, end);
        let prior = if holds_prior {
            rules.spike.prior_windows
        } else {
            WEAK_PRIOR_WINDOWS
        };
        let rate = prior + s.history.windows;
        (
            rules.cold_start.rate * prior + s.history.tickets,
            rate,
            prior,
            holds_prior,
        )
    };
    let (mut sum, mut young, mut judgeable) = (Moments::default(), true, false);
    for s in group {
        let (shape, rate, prior, holds_prior) = belief(s);
        sum += Moments::of(shape, rate, 1.0);
        if s.is_boundary {
            continue;
        }
        young &= s.history.windows < prior;
        judgeable |= holds_prior || s.history.windows >= 1.0;
    }
    for (s, share) in carriers {
        let (shape, rate, _, _) = belief(s);
        sum += Moments::of(shape, rate, *share);
    }
    let (shape, rate) = sum.gamma().unwrap_or((
        rules.cold_start.rate * WEAK_PRIOR_WINDOWS,
        WEAK_PRIOR_WINDOWS,
    ));
    Usual {
        shape,
        rate,
        young,
        judgeable,
    }
}
