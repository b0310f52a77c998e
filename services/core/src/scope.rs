//! One clustering scope (a product): features → cluster → detection, for one new ticket at a time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cluster::{Assignment, Cluster, ClusterConfig, Clusterer};
use crate::detect::{Decision, DetectorState, FloorRule, Member};
use crate::text::Featurizer;
use crate::ticket::TicketEvent;

/// A cluster and its detection state: what is checkpointed, in the same transaction as the
/// consumed offsets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterCheckpoint {
    pub cluster: Cluster,
    pub detector: DetectorState,
}

/// What happened to one newly seen ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The cluster's sequence number within its product (see [`Scope::cluster`]).
    pub seq: u64,
    pub assignment: Assignment,
    pub decision: Decision,
}

pub struct Scope {
    clusterer: Clusterer,
    detectors: BTreeMap<u64, DetectorState>,
    floor: FloorRule,
    touched: BTreeSet<u64>,
    /// Event time of the product's first ticket (its clusters' earliest `first_seen`).
    started: Option<DateTime<Utc>>,
}

impl Scope {
    pub fn restore(
        product: &str,
        clustering: ClusterConfig,
        floor: FloorRule,
        checkpoints: Vec<ClusterCheckpoint>,
    ) -> Self {
        let started = checkpoints.iter().map(|cp| cp.cluster.first_seen).min();
        let mut detectors = BTreeMap::new();
        let mut clusters = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            detectors.insert(cp.cluster.seq, cp.detector);
            clusters.push(cp.cluster);
        }
        Scope {
            clusterer: Clusterer::restore(product, clustering, clusters),
            detectors,
            floor,
            touched: BTreeSet::new(),
            started,
        }
    }

    /// Clusters a ticket seen for the first time and counts it as a complaint.
    /// (Later events of a known ticket never come here: they are not new complaints.)
    pub fn observe(&mut self, featurizer: &mut Featurizer, ticket: &TicketEvent) -> Observation {
        let personal = personal_strings(ticket);
        let features = featurizer.features(&ticket.text(), &personal);
        let (seq, assignment) = self.clusterer.assign(&features, ticket.event_time);
        let member = Member {
            ticket_id: ticket.ticket_id.clone(),
            customer_id: ticket.customer.id.clone(),
            at: ticket.event_time,
        };
        // The product's start is its earliest cluster's birth, exactly as `restore` derives it,
        // so a restored scope decides like one that never stopped.
        if assignment.new_cluster {
            self.started = Some(
                self.started
                    .map_or(ticket.event_time, |s| s.min(ticket.event_time)),
            );
        }
        let started = self.started.unwrap_or(ticket.event_time);
        let decision = self.detectors.entry(seq).or_default().observe(
            &assignment.cluster_id,
            member,
            &self.floor,
            started,
        );
        let decision = self.join_related(seq, decision);
        self.touched.insert(seq);
        Observation {
            seq,
            assignment,
            decision,
        }
    }

    /// Turns an escalation into a join when a closely related cluster already has an open SEV
    /// (the same complaint split across two clusters), so one complaint gets one SEV. The number
    /// of open episodes is small, so this looks at each.
    fn join_related(&mut self, seq: u64, decision: Decision) -> Decision {
        let Decision::Escalate(escalation) = decision else {
            return decision;
        };
        let Some(cluster) = self.clusterer.get(seq) else {
            return Decision::Escalate(escalation);
        };
        let threshold = self.clusterer.config().related_threshold;
        let related = self
            .detectors
            .iter()
            .filter(|(other, d)| **other != seq && d.active)
            .filter_map(|(other, d)| {
                let sim = self.clusterer.get(*other)?.similarity_to(cluster);
                Some((sim, d.sev_cluster.clone()?))
            })
            .filter(|(sim, _)| *sim >= threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
        match related {
            None => Decision::Escalate(escalation),
            Some((_, sev_cluster)) => {
                if let Some(d) = self.detectors.get_mut(&seq) {
                    d.sev_cluster = Some(sev_cluster.clone());
                }
                Decision::Join {
                    escalation,
                    sev_cluster,
                }
            }
        }
    }

    pub fn cluster(&self, seq: u64) -> Option<&Cluster> {
        self.clusterer.get(seq)
    }

    /// Checkpoints of the clusters changed since the last call.
    pub fn take_touched(&mut self) -> Vec<ClusterCheckpoint> {
        std::mem::take(&mut self.touched)
            .into_iter()
            .filter_map(|seq| {
                Some(ClusterCheckpoint {
                    cluster: self.clusterer.get(seq)?.clone(),
                    detector: self.detectors.get(&seq).cloned().unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// The customer's own strings, masked out of features (and so out of labels and SEV titles).
fn personal_strings(ticket: &TicketEvent) -> Vec<&str> {
    let mut out: Vec<&str> = ticket
        .customer
        .name
        .iter()
        .flat_map(|n| n.split_whitespace())
        .collect();
    out.push(&ticket.customer.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::tests::example;

    fn ticket(i: u32, customer: &str, body: &str) -> TicketEvent {
        let mut v = example();
        v["ticket_id"] = format!("T-{i}").into();
        v["customer"]["id"] = customer.into();
        v["subject"] = "".into();
        v["body"] = body.into();
        TicketEvent::from_value(v).unwrap()
    }

    #[test]
    fn the_customers_name_never_reaches_a_cluster_label() {
        let mut scope = Scope::restore("cards", Default::default(), Default::default(), vec![]);
        let mut f = Featurizer::default();
        scope.observe(&mut f, &ticket(1, "c1", "Ada here, my card is declined"));
        let cp = scope.take_touched();
        assert_eq!(cp.len(), 1);
        let label = cp[0].cluster.label(10);
        assert!(
            !label.iter().any(|t| t.to_lowercase().contains("ada")),
            "{label:?}"
        );
        assert!(scope.take_touched().is_empty());
    }
}
