//! One clustering scope (a product): features → cluster → detection, for one new ticket at a time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::cluster::{Assignment, Cluster, ClusterConfig, Clusterer, Features, Placement};
use crate::detect::{Decision, DetectorState, Policy, RuleBook, Verdict};
use crate::text::{mask, Featurizer};
use crate::ticket::{EventKind, TicketEvent};

mod correct;
mod judging;

pub use correct::CorrectionError;

/// A cluster and its detection state: what is checkpointed, in the same transaction as the
/// consumed offsets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterCheckpoint {
    pub cluster: Cluster,
    pub detector: DetectorState,
    /// The cluster's label when checkpointed (derived; stored for readers).
    #[serde(default)]
    pub label: Vec<String>,
}

/// What happened to one newly seen ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The cluster's sequence number within its product (see [`Scope::cluster`]).
    pub seq: u64,
    pub assignment: Assignment,
    pub decision: Decision,
    /// How the window of the ticket's cluster (with the clusters judged with it) looked, when
    /// it was judged; none when it could not fire (the busy path judges nothing).
    pub verdict: Option<Verdict>,
    /// Earlier tickets that consolidation, run because this ticket moved event time on, split
    /// off into a new cluster: (ticket id, its new cluster's seq).
    pub moved: Vec<(String, u64)>,
}

/// A ticket clustered but not yet counted by detection (see [`Scope::assign`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Clustered {
    pub placement: Placement,
    pub moved: Vec<(String, u64)>,
}

/// What detection needs besides the tickets: the rules, the catalog that says which team owns
/// a cluster (for per-team rules), and which rules must hold.
#[derive(Debug, Clone, Copy)]
pub struct Detection<'a> {
    pub rules: &'a RuleBook,
    pub catalog: &'a Catalog,
    pub policy: Policy,
    /// Judge a window even when it cannot fire, so its verdict can be shown (`backtest
    /// --trace`); the decision is the same.
    pub explain: bool,
}

pub struct Scope {
    clusterer: Clusterer,
    detectors: BTreeMap<u64, DetectorState>,
    touched: BTreeSet<u64>,
    /// Event time of the product's first ticket (its clusters' earliest `first_seen`).
    started: Option<DateTime<Utc>>,
    /// Latest event time seen (its clusters' latest `last_seen`): consolidation runs when
    /// event time crosses into a new round.
    latest: Option<DateTime<Utc>>,
}

impl Scope {
    pub fn restore(
        product: &str,
        clustering: ClusterConfig,
        checkpoints: Vec<ClusterCheckpoint>,
    ) -> Self {
        let started = checkpoints.iter().map(|cp| cp.cluster.first_seen).min();
        let latest = checkpoints.iter().map(|cp| cp.cluster.last_seen).max();
        let mut detectors = BTreeMap::new();
        let mut clusters = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            detectors.insert(cp.cluster.seq, cp.detector);
            clusters.push(cp.cluster);
        }
        Scope {
            clusterer: Clusterer::restore(product, clustering, clusters),
            detectors,
            touched: BTreeSet::new(),
            started,
            latest,
        }
    }

    /// Clusters a ticket seen for the first time, counts it as a complaint of its cluster and
    /// decides on that cluster judged with the clusters the ticket nearly joined. (Later events
    /// of a known ticket never come here: they are not new complaints.)
    pub fn observe(
        &mut self,
        features: &Features,
        ticket: &TicketEvent,
        detection: &Detection,
    ) -> Observation {
        let clustered = self.assign(features, ticket);
        self.decide(clustered, ticket, detection)
    }

    /// The first half of [`Scope::observe`]: consolidation up to the ticket's event time, then
    /// its assignment. Apart so a benchmark can time clustering and detection each.
    pub fn assign(&mut self, features: &Features, ticket: &TicketEvent) -> Clustered {
        let moved = self.consolidate_until(ticket.event_time);
        let placement = self
            .clusterer
            .assign_near(features, &ticket.ticket_id, ticket.event_time);
        // The product's start is its earliest cluster's birth, exactly as `restore` derives it,
        // so a restored scope decides like one that never stopped.
        if placement.assignment.new_cluster {
            self.started = Some(
                self.started
                    .map_or(ticket.event_time, |s| s.min(ticket.event_time)),
            );
        }
        Clustered { placement, moved }
    }

    /// The second half of [`Scope::observe`]: counts the clustered ticket and decides.
    pub fn decide(
        &mut self,
        clustered: Clustered,
        ticket: &TicketEvent,
        detection: &Detection,
    ) -> Observation {
        let Clustered { placement, moved } = clustered;
        let Placement {
            seq,
            assignment,
            near,
            source,
        } = placement;
        // An update of a ticket first seen now (created before sevloop watched, or its creation
        // dead-lettered) is filed in its cluster, but it is no new complaint.
        let (decision, verdict) = if ticket.event == EventKind::Created {
            self.detect(seq, &near, source, ticket, detection)
        } else {
            (Decision::Quiet, None)
        };
        self.touched.insert(seq);
        Observation {
            seq,
            assignment,
            decision,
            verdict,
            moved,
        }
    }

    pub fn cluster(&self, seq: u64) -> Option<&Cluster> {
        self.clusterer.get(seq)
    }

    pub fn clusterer(&self) -> &Clusterer {
        &self.clusterer
    }

    /// Runs the consolidation rounds that event time `t` makes due; merged clusters' detection
    /// state moves into the cluster they merged into, and split-off tickets take their place in
    /// the window with them. Returns the tickets that splits moved.
    fn consolidate_until(&mut self, t: DateTime<Utc>) -> Vec<(String, u64)> {
        let last = *self.latest.get_or_insert(t);
        if t <= last {
            return Vec::new();
        }
        self.latest = Some(t);
        let round = self.clusterer.consolidate(last, t);
        self.touched.extend(&round.checked);
        let mut moved = Vec::new();
        for split in round.splits {
            self.touched.extend([split.from, split.into]);
            let tickets: BTreeSet<&str> = split.ticket_ids.iter().map(String::as_str).collect();
            self.split_detector(split.from, split.into, &tickets);
            moved.extend(split.ticket_ids.into_iter().map(|id| (id, split.into)));
        }
        self.after_merges(&round.merges);
        moved
    }

    /// Gives cluster `into`, split off `from`, its own detection state: the window members
    /// among `tickets` leave `from`'s window for it (they are its complaints now).
    fn split_detector(&mut self, from: u64, into: u64, tickets: &BTreeSet<&str>) {
        if let Some(d) = self.detectors.get_mut(&from) {
            let fresh = d.split_off(tickets);
            self.detectors.insert(into, fresh);
        }
    }

    /// A moved ticket counts for the cluster it joined from now on, not the one it left. An
    /// episode either cluster has open is left as it is: the ticket's SEV link is the
    /// pipeline's to keep, and counts only decide what fires next.
    fn move_detector_member(&mut self, from: u64, to: u64, ticket_id: &str) {
        let Some(d) = self.detectors.get_mut(&from) else {
            return;
        };
        let moved = d.split_off(&BTreeSet::from([ticket_id]));
        let Some(at) = moved.first_at else {
            return; // not in the window any more
        };
        let joined = self.detectors.entry(to).or_default();
        joined.first_at = Some(joined.first_at.map_or(at, |first| first.min(at)));
        joined.history.until.get_or_insert(at);
        joined.take_members(moved.window);
        // It came near the cluster it joined: counted as a member now, not in its boundary too.
        if let Some(b) = joined.boundary.as_mut() {
            b.window.retain(|m| m.ticket_id != ticket_id);
        }
        // In other clusters' boundaries it is now a ticket of the cluster it joined.
        for (seq, d) in &mut self.detectors {
            if d.rejoined_in_boundary(ticket_id, to) {
                self.touched.insert(*seq);
            }
        }
    }

    fn after_merges(&mut self, merges: &[crate::cluster::consolidate::Merge]) {
        for m in merges {
            if let Some(gone) = self.detectors.remove(&m.from) {
                self.detectors.entry(m.into).or_default().absorb(gone);
            }
            self.touched.extend([m.from, m.into]);
        }
    }

    /// Checkpoints of the clusters changed since the last call.
    pub fn take_touched(&mut self) -> Vec<ClusterCheckpoint> {
        let retired = self
            .clusterer
            .take_retired()
            .into_iter()
            .map(|cluster| ClusterCheckpoint {
                cluster,
                detector: DetectorState::default(),
                label: Vec::new(),
            });
        let live: Vec<ClusterCheckpoint> = std::mem::take(&mut self.touched)
            .into_iter()
            .filter_map(|seq| {
                let cluster = self.clusterer.get(seq)?;
                Some(ClusterCheckpoint {
                    label: self.clusterer.label(cluster, 3),
                    cluster: cluster.clone(),
                    detector: self.detectors.get(&seq).cloned().unwrap_or_default(),
                })
            })
            .collect();
        retired.chain(live).collect()
    }
}

/// A ticket's features: its terms, and the sentence vector the encoder made of
/// [`embedding_text`], if the encoder is on.
pub fn ticket_features(
    featurizer: &mut Featurizer,
    ticket: &TicketEvent,
    dense: Option<Vec<f32>>,
) -> Features {
    Features {
        terms: featurizer.features(&ticket.text(), &personal_strings(ticket)),
        dense,
    }
}

/// The text the sentence encoder sees: the ticket with identifiers, contact details and the
/// customer's own name masked, so they cannot pull unrelated tickets together.
pub fn embedding_text(ticket: &TicketEvent) -> String {
    mask(&ticket.text(), &personal_strings(ticket))
}

/// The customer's own strings, masked out of features (and so out of labels and SEV titles).
fn personal_strings(ticket: &TicketEvent) -> Vec<&str> {
    let mut out: Vec<&str> = ticket
        .customer
        .name
        .iter()
        .flat_map(|n| n.split(|c: char| c.is_whitespace() || c == '-'))
        .filter(|part| !part.is_empty())
        .collect();
    out.push(&ticket.customer.id);
    out
}

#[cfg(test)]
mod tests;
