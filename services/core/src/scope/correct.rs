//! Human corrections of a scope's clusters: merge two, split some tickets off, move one.

use std::collections::BTreeSet;

use super::Scope;
use crate::cluster::consolidate::Merge;
use crate::cluster::corrections::Correction;
use crate::cluster::{parse_cluster_id, Features};

impl Scope {
    /// Applies a human correction. `members` are the tickets it names, with the cluster each is
    /// in now and its features. Returns the tickets whose cluster changed and their new cluster.
    pub fn correct(
        &mut self,
        correction: &Correction,
        members: &[(String, String, Features)],
    ) -> Result<Vec<(String, String)>, CorrectionError> {
        let seq_of = |id: &str| -> Result<u64, CorrectionError> {
            let (_, seq) = parse_cluster_id(id)
                .filter(|(p, _)| *p == self.clusterer.product())
                .ok_or_else(|| CorrectionError::UnknownCluster(id.to_string()))?;
            let seq = self.clusterer.resolve(seq);
            self.clusterer
                .get(seq)
                .map(|_| seq)
                .ok_or_else(|| CorrectionError::UnknownCluster(id.to_string()))
        };
        match correction {
            Correction::Merge {
                cluster_ids: [a, b],
            } => {
                let (a, b) = (seq_of(a)?, seq_of(b)?);
                if a == b {
                    return Ok(Vec::new());
                }
                let m = self.clusterer.merge(a, b);
                self.after_merges(&[m]);
                Ok(Vec::new())
            }
            Correction::Split { cluster_id, .. } => {
                let seq = seq_of(cluster_id)?;
                let moving: Vec<(String, Features)> = members
                    .iter()
                    .filter(|(_, current, _)| seq_of(current).ok() == Some(seq))
                    .map(|(id, _, f)| (id.clone(), f.clone()))
                    .collect();
                if moving.is_empty() {
                    return Err(CorrectionError::NoMembers(cluster_id.clone()));
                }
                let new = self
                    .clusterer
                    .split_off(seq, &moving)
                    .ok_or_else(|| CorrectionError::UnknownCluster(cluster_id.clone()))?;
                // As a consolidation split does: the tickets count for the new cluster now, not
                // for the one they left.
                let tickets: BTreeSet<&str> = moving.iter().map(|(id, _)| id.as_str()).collect();
                self.split_detector(seq, new, &tickets);
                self.touched.extend([seq, new]);
                let new_id = self
                    .clusterer
                    .get(new)
                    .map(|c| c.id.clone())
                    .unwrap_or_default();
                Ok(moving
                    .into_iter()
                    .map(|(id, _)| (id, new_id.clone()))
                    .collect())
            }
            Correction::Move {
                ticket_id,
                to_cluster_id,
            } => {
                let to = seq_of(to_cluster_id)?;
                let (_, current, f) = members
                    .iter()
                    .find(|(id, _, _)| id == ticket_id)
                    .ok_or_else(|| CorrectionError::UnknownTicket(ticket_id.clone()))?;
                let from = seq_of(current)?;
                if self.clusterer.move_member(from, to, ticket_id, f) {
                    self.move_detector_member(from, to, ticket_id);
                    // A cluster the move emptied was retired into `to`: the rest of its
                    // detection state (history, an open episode) goes there as in a merge.
                    if self.clusterer.resolve(from) == to {
                        self.after_merges(&[Merge { from, into: to }]);
                    }
                }
                self.touched.extend([from, to]);
                let to_id = self
                    .clusterer
                    .get(self.clusterer.resolve(to))
                    .map(|c| c.id.clone());
                Ok(vec![(
                    ticket_id.clone(),
                    to_id.unwrap_or_else(|| to_cluster_id.clone()),
                )])
            }
        }
    }
}

/// Why a correction could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CorrectionError {
    #[error("cluster {0} does not exist in this product (or was merged away)")]
    UnknownCluster(String),
    #[error("ticket {0} is not known")]
    UnknownTicket(String),
    #[error("none of the named tickets is in cluster {0}")]
    NoMembers(String),
}
