//! Replaying a ticket log through clustering and detection, without log or database, to see
//! which SEVs the rules would open, when, and with which tickets: what `backtest` prints and
//! scores. SEVs are handled as the pipeline handles them (one per cluster episode, related
//! clusters join, a recurrence links to the still-open SEV), but nobody acknowledges or resolves
//! anything in a backtest, so every SEV stays open.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::sev::Opening;
use sevloop_core::{
    Catalog, ClusterConfig, Decision, Escalation, Policy, RuleBook, SevState, TicketEvent, Verdict,
};

use crate::evaluation::{OnlineClustering, Placements};

pub mod score;

/// A SEV the rules would open.
#[derive(Debug, Clone, Serialize)]
pub struct WouldOpen {
    pub sev_id: String,
    pub cluster_id: String,
    pub rule: String,
    /// Event time of the crossing ticket.
    pub opened_at: DateTime<Utc>,
    pub first_ticket_at: DateTime<Utc>,
    /// Position in the log (1-based) of the ticket whose arrival opened it.
    pub opened_at_ticket: usize,
    pub label: Vec<String>,
    /// The window when it fired.
    pub verdict: Verdict,
    /// The tickets of the span that stood out when it fired.
    pub evidence: Vec<String>,
    /// Every ticket linked to it by the end of the log, in link order.
    pub ticket_ids: Vec<String>,
    /// Other clusters whose crossing joined it, and recurrences of its own cluster.
    pub joined: Vec<String>,
}

/// How detection judged one traced ticket (`backtest --trace`).
#[derive(Debug, Clone)]
pub struct Trace {
    /// Position in the log (1-based).
    pub at_ticket: usize,
    pub ticket_id: String,
    pub event_time: DateTime<Utc>,
    /// The cluster it went to.
    pub cluster_id: String,
    pub decision: &'static str,
    /// Its cluster's window as judged; none when it could not fire.
    pub verdict: Option<Verdict>,
}

/// The SEVs of one replay, as the pipeline would link them.
#[derive(Default)]
struct Book {
    sevs: Vec<WouldOpen>,
    linked: Vec<BTreeSet<String>>,
    /// A cluster's SEV: the one it opened, or joined.
    by_cluster: HashMap<String, usize>,
}

impl Book {
    /// Acts on one decision about `ticket`, the `at_ticket`-th of the log.
    fn apply(&mut self, d: Decision, ticket: &str, at_ticket: usize, label: Vec<String>) {
        match d {
            Decision::Quiet => {}
            Decision::Attach { sev_cluster } => {
                self.link_to(&sev_cluster, None, &[ticket.to_string()])
            }
            Decision::Join {
                escalation,
                sev_cluster,
            } => self.link_to(&sev_cluster, Some(&escalation), &escalation.evidence),
            Decision::Escalate(e) => {
                let latest = self.by_cluster.get(&e.cluster_id).map(|_| SevState::Open);
                match Opening::for_latest(latest) {
                    Opening::Open => self.open(e, at_ticket, label),
                    _ => {
                        let cluster = e.cluster_id.clone();
                        self.link_to(&cluster, Some(&e), &e.evidence)
                    }
                }
            }
        }
    }

    fn open(&mut self, e: Escalation, at_ticket: usize, label: Vec<String>) {
        let n = self.sevs.len();
        self.by_cluster.insert(e.cluster_id.clone(), n);
        self.sevs.push(WouldOpen {
            sev_id: format!("SEV-{}", n + 1),
            cluster_id: e.cluster_id.clone(),
            rule: e.rule.clone(),
            opened_at: e.fired_at,
            first_ticket_at: e.first_ticket_at,
            opened_at_ticket: at_ticket,
            label,
            verdict: e.verdict.clone(),
            evidence: e.evidence.clone(),
            ticket_ids: Vec::new(),
            joined: Vec::new(),
        });
        self.linked.push(BTreeSet::new());
        self.link(n, &e.evidence);
    }

    /// Links tickets to the SEV of `sev_cluster`; `joining` records a crossing that joined it.
    fn link_to(&mut self, sev_cluster: &str, joining: Option<&Escalation>, ids: &[String]) {
        let Some(&n) = self.by_cluster.get(sev_cluster) else {
            return;
        };
        if let Some(e) = joining {
            self.by_cluster.insert(e.cluster_id.clone(), n);
            self.sevs[n].joined.push(e.cluster_id.clone());
        }
        self.link(n, ids);
    }

    fn link(&mut self, n: usize, ids: &[String]) {
        for id in ids {
            if self.linked[n].insert(id.clone()) {
                self.sevs[n].ticket_ids.push(id.clone());
            }
        }
    }
}

/// What a replay would open, and where it left each ticket.
pub struct Replay {
    /// The SEVs it would open, in order.
    pub sevs: Vec<WouldOpen>,
    /// Each ticket's live cluster at the end of the log, in log order.
    pub clusters: Vec<String>,
    /// How each traced ticket was judged, in log order.
    pub traces: Vec<Trace>,
}

/// Replays `tickets` (with their sentence vectors, when the encoder is on) under `policy`,
/// tracing how the `traced` tickets were judged.
pub fn replay(
    tickets: &[TicketEvent],
    dense: Option<&[Vec<f32>]>,
    config: &ClusterConfig,
    rules: &RuleBook,
    catalog: &Catalog,
    policy: Policy,
    traced: &BTreeSet<String>,
) -> Replay {
    let mut online =
        OnlineClustering::with_detection(config.clone(), rules.clone(), catalog.clone(), policy);
    let mut book = Book::default();
    let mut placements = Placements::default();
    let mut traces = Vec::new();
    for (i, ticket) in tickets.iter().enumerate() {
        let traced = traced.contains(&ticket.ticket_id);
        let observation = online.observe_explained(ticket, dense.map(|d| d[i].clone()), traced);
        placements.note(ticket, &observation);
        if traced {
            traces.push(Trace {
                at_ticket: i + 1,
                ticket_id: ticket.ticket_id.clone(),
                event_time: ticket.event_time,
                cluster_id: observation.assignment.cluster_id.clone(),
                decision: decision_name(&observation.decision),
                verdict: observation.verdict.clone(),
            });
        }
        let d = observation.decision;
        let label = escalated_seq(&d)
            .and_then(|seq| {
                let scope = online.scope(&ticket.product)?;
                let cluster = scope.cluster(scope.clusterer().resolve(seq))?;
                Some(scope.clusterer().label(cluster, 3))
            })
            .unwrap_or_default();
        book.apply(d, &ticket.ticket_id, i + 1, label);
    }
    Replay {
        sevs: book.sevs,
        clusters: placements.finish(tickets, &online),
        traces,
    }
}

fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Quiet => "quiet",
        Decision::Attach { .. } => "attach",
        Decision::Escalate(_) => "escalate",
        Decision::Join { .. } => "join",
    }
}

fn escalated_seq(d: &Decision) -> Option<u64> {
    match d {
        Decision::Escalate(e) => {
            sevloop_core::cluster::parse_cluster_id(&e.cluster_id).map(|(_, seq)| seq)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sevloop_core::DetectionConfig;

    use super::*;
    use crate::evaluation::{self, Corpus};

    /// Detection only reads the clusters, so a replay leaves every ticket in the cluster that
    /// clustering alone (what `eval` scores) leaves it in, and its table can be read beside
    /// `eval`'s.
    #[test]
    fn a_replay_leaves_each_ticket_where_clustering_alone_does() {
        let demo =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/demo/banking77-demo.tickets.jsonl");
        let log = evaluation::load_log(&demo).expect("the demo log loads");
        let config = ClusterConfig::default();
        let rules = DetectionConfig::default()
            .rule_book()
            .expect("default rules");
        let (first, last) = (
            log.tickets[0].ticket_id.clone(),
            log.tickets[log.tickets.len() - 1].ticket_id.clone(),
        );
        let traced = BTreeSet::from([last.clone(), first.clone()]);
        let (first, last) = (first.as_str(), last.as_str());
        let replayed = replay(
            &log.tickets,
            None,
            &config,
            &rules,
            &Catalog::default(),
            Policy::Combined,
            &traced,
        );
        let ids: Vec<&str> = replayed
            .traces
            .iter()
            .map(|t| t.ticket_id.as_str())
            .collect();
        assert_eq!(ids, [first, last], "traced tickets only, in log order");
        assert_eq!(replayed.traces[0].at_ticket, 1);
        assert_eq!(replayed.traces[1].at_ticket, log.tickets.len());
        let corpus = Corpus {
            labels: vec![String::new(); log.tickets.len()],
            injected: vec![false; log.tickets.len()],
            tickets: log.tickets,
        };
        let alone = evaluation::run_online(&corpus, None, &config, |_| {});
        assert_eq!(replayed.clusters.len(), corpus.tickets.len());
        assert_eq!(replayed.clusters, alone.clusters);
        let distinct: BTreeSet<&String> = replayed.clusters.iter().collect();
        assert!(distinct.len() > 10, "{} clusters", distinct.len());
    }

    /// Tracing judges windows that could not fire, to show them; it must decide nothing
    /// differently. Every ticket of the demo log and a burst traced against none.
    #[test]
    fn tracing_every_ticket_changes_no_decision() {
        let demo =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/demo/banking77-demo.tickets.jsonl");
        let mut tickets = evaluation::load_log(&demo)
            .expect("the demo log loads")
            .tickets;
        // A burst at the end, so that something fires on terms alone.
        let last = tickets[tickets.len() - 1].clone();
        for i in 0..20 {
            let mut t = last.clone();
            t.ticket_id = format!("burst-{i}");
            t.customer.id = format!("burst-customer-{i}");
            t.subject = "The app crashes when I open my statement".into();
            t.body = format!("Statement screen crashes the app on open, attempt {i}");
            t.event_time = last.event_time + chrono::Duration::seconds(20 * (i + 1));
            tickets.push(t);
        }
        let rules = DetectionConfig::default()
            .rule_book()
            .expect("default rules");
        let run = |traced: &BTreeSet<String>| {
            let config = ClusterConfig::default();
            let catalog = Catalog::default();
            replay(
                &tickets,
                None,
                &config,
                &rules,
                &catalog,
                Policy::Combined,
                traced,
            )
        };
        let every: BTreeSet<String> = tickets.iter().map(|t| t.ticket_id.clone()).collect();
        let (plain, traced) = (run(&BTreeSet::new()), run(&every));
        let json = |r: &Replay| serde_json::to_value(&r.sevs).expect("SEVs serialize");
        assert!(!plain.sevs.is_empty(), "the burst opens a SEV to compare");
        assert_eq!(json(&plain), json(&traced));
        assert_eq!(plain.clusters, traced.clusters);
        assert_eq!(traced.traces.len(), tickets.len());
        assert!(
            traced.traces.iter().all(|t| t.verdict.is_some()),
            "every traced window is judged, even one that could not fire"
        );
    }
}
