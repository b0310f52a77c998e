//! Human corrections: merge two clusters, split tickets off into a new cluster, move one ticket.
//!
//! Corrections travel through the ticket log like tickets (see `Correction`), so a replay applies
//! them at the same point of the stream and ends with the same clusters. Once applied they
//! stick: a merged-away cluster never receives tickets again, a split pair is never merged back
//! by consolidation (`cannot_link`), and the centroids they leave behind steer later tickets.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    add_terms, cluster_id, keep_latest, vector, Cluster, Clusterer, Exemplar, Features, Sample,
};

/// A correction as a person asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Correction {
    /// Both clusters become one (the larger survives).
    Merge { cluster_ids: [String; 2] },
    /// The named tickets leave their cluster and form a new one, kept apart from the old.
    Split {
        cluster_id: String,
        ticket_ids: Vec<String>,
    },
    /// One ticket belongs to another cluster.
    Move {
        ticket_id: String,
        to_cluster_id: String,
    },
}

impl Clusterer {
    /// Moves the given members (with their features) out of cluster `seq` into a new cluster
    /// that consolidation keeps apart from it. Returns the new cluster's seq.
    pub fn split_off(&mut self, seq: u64, members: &[(String, Features)]) -> Option<u64> {
        let new = self.carve(seq, members, true)?;
        // Its aliases may stand for the part split off: a person's split outranks them.
        self.drop_aliases_of(self.resolve(seq));
        Some(new)
    }

    /// Moves members out of cluster `seq` into a new cluster (kept apart from it for good when a
    /// person asked, `keep_apart`). Their samples move with them.
    pub(crate) fn carve(
        &mut self,
        seq: u64,
        members: &[(String, Features)],
        keep_apart: bool,
    ) -> Option<u64> {
        let seq = self.resolve(seq);
        // The new cluster dates from its source, so event time (and the consolidation schedule
        // derived from it) does not depend on when a person made the correction.
        let (first, last) = self
            .clusters
            .get(&seq)
            .map(|k| (k.first_seen, k.last_seen))
            .filter(|_| !members.is_empty())?;
        let new = self.next_seq;
        self.next_seq += 1;
        let mut fresh = Cluster {
            id: cluster_id(&self.product, new),
            product: self.product.clone(),
            seq: new,
            size: 0,
            centroid: Default::default(),
            surface: Default::default(),
            dense: None,
            projections: Vec::new(),
            exemplars: Vec::new(),
            cannot_link: BTreeSet::new(),
            merged_into: None,
            first_seen: first,
            last_seen: last,
            recent: Vec::new(),
            unchecked: 0,
            alias: false,
        };
        for (ticket_id, f) in members {
            if let Some(sample) = self.withdraw(seq, ticket_id, f) {
                fresh.recent.push(sample);
            }
            add_member(&mut fresh, f);
            fresh.exemplars.push(Exemplar {
                ticket_id: ticket_id.clone(),
                similarity: 1.0,
            });
        }
        keep_latest(&mut fresh.recent, self.config.consolidation.split.sample);
        fresh.exemplars.truncate(self.config.exemplars.max(1));
        if keep_apart {
            fresh.cannot_link.insert(seq);
        }
        if let Some(old) = self.clusters.get_mut(&seq) {
            if keep_apart {
                old.cannot_link.insert(new);
            }
            old.exemplars
                .retain(|e| !members.iter().any(|(id, _)| *id == e.ticket_id));
        }
        self.insert(fresh);
        self.refresh_indexes(new);
        Some(new)
    }

    /// Moves one ticket's features from cluster `from` to cluster `to`. A cluster left empty is
    /// retired into `to`.
    pub fn move_member(&mut self, from: u64, to: u64, ticket_id: &str, f: &Features) -> bool {
        let (from, to) = (self.resolve(from), self.resolve(to));
        if from == to || !self.clusters.contains_key(&from) || !self.clusters.contains_key(&to) {
            return false;
        }
        let sample = self.withdraw(from, ticket_id, f);
        if let Some(k) = self.clusters.get_mut(&to) {
            add_member(k, f);
            k.unchecked = k.unchecked.saturating_add(u32::from(sample.is_some()));
            k.recent.extend(sample);
            keep_latest(&mut k.recent, self.config.consolidation.split.sample);
            if k.exemplars.len() < self.config.exemplars {
                k.exemplars.push(Exemplar {
                    ticket_id: ticket_id.to_string(),
                    similarity: 1.0,
                });
            }
        }
        self.refresh_indexes(to);
        if self.clusters.get(&from).is_some_and(|k| k.size == 0) {
            self.merge_into(from, to);
        }
        true
    }

    /// Subtracts one member's features from a cluster; returns its sample if it had one.
    fn withdraw(&mut self, seq: u64, ticket_id: &str, f: &Features) -> Option<Arc<Sample>> {
        let mut sample = None;
        if let Some(k) = self.clusters.get_mut(&seq) {
            if let Some(i) = k.recent.iter().position(|s| s.ticket_id == ticket_id) {
                sample = Some(k.recent.remove(i));
            }
            let negated = crate::text::TermVector {
                weights: f.terms.weights.clone(),
                surface: Default::default(),
            };
            add_terms(k, &negated, -1.0);
            if let (Some(sum), Some(v)) = (k.dense.as_mut(), &f.dense) {
                vector::add_scaled(sum, v, -1.0);
            }
            k.size = k.size.saturating_sub(1);
        }
        self.refresh_indexes(seq);
        sample
    }

    /// Brings the inverted index and LSH buckets in line with a cluster's current sums.
    fn refresh_indexes(&mut self, seq: u64) {
        if let Some(mut k) = self.take(seq) {
            if let (Some(lsh), Some(dense)) = (&self.lsh, &k.dense) {
                k.projections = lsh.project(dense);
            }
            self.insert(k);
            self.prune(seq);
        }
    }
}

fn add_member(k: &mut Cluster, f: &Features) {
    add_terms(k, &f.terms, 1.0);
    if let Some(v) = &f.dense {
        match k.dense.as_mut() {
            Some(sum) => vector::add_scaled(sum, v, 1.0),
            None => k.dense = Some(v.clone()),
        }
    }
    k.size += 1;
}

/// Header that marks a record of the ticket log as a correction, not a ticket.
pub const CORRECTION_RECORD: &str = "cluster-correction.v1";

/// A correction as it travels through the ticket log (keyed by product, so it is ordered with
/// the product's tickets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    pub product: String,
    pub correction: Correction,
    /// The role of whoever asked (never a person's name).
    pub actor_role: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
}

impl Correction {
    pub fn kind(&self) -> &'static str {
        match self {
            Correction::Merge { .. } => "merge",
            Correction::Split { .. } => "split",
            Correction::Move { .. } => "move",
        }
    }

    /// The tickets whose features applying this correction needs.
    pub fn ticket_ids(&self) -> Vec<String> {
        match self {
            Correction::Merge { .. } => Vec::new(),
            Correction::Split { ticket_ids, .. } => ticket_ids.clone(),
            Correction::Move { ticket_id, .. } => vec![ticket_id.clone()],
        }
    }
}
