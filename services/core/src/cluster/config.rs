//! The clustering settings: the similarity a ticket needs to join a cluster, the bounds on
//! candidates and centroids, and how the clusters around a ticket are weighed for detection.

use serde::{Deserialize, Serialize};

use super::consolidate::ConsolidationConfig;
use super::lsh::LshConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Cosine similarity of idf-weighted terms to a centroid needed to join its cluster.
    pub similarity_threshold: f32,
    /// Cosine similarity of sentence vectors to a centroid needed to join its cluster.
    pub semantic_threshold: f32,
    /// What a sentence-vector similarity to a cluster is measured against.
    pub semantic_linkage: Linkage,
    /// Cosine similarity of idf-weighted terms between two centroids above which an escalating
    /// cluster joins the other's open SEV instead of opening a duplicate.
    pub related_threshold: f32,
    /// The same for sentence vectors, whose cosines run higher: over half of banking77's label
    /// pairs are 0.3 alike, a fifth 0.5; an incident's fragments that fired on the streams were
    /// all at least 0.55 (docs/MEASUREMENTS.md).
    pub semantic_related_threshold: f32,
    /// Terms kept per centroid; also bounds the postings each cluster adds to the inverted index.
    pub centroid_terms: usize,
    /// At most this many candidate clusters are scored per ticket (bounded time per ticket).
    pub max_candidates: usize,
    /// Exemplar tickets kept per cluster: its first ticket and the closest later ones.
    pub exemplars: usize,
    /// Detection judges a ticket's cluster together with the other candidate clusters the
    /// ticket came within this much similarity of joining, so a complaint split across
    /// fragments adds up (0: only candidates that were above the join threshold too).
    pub near_margin: f32,
    /// While the cold-start rule judges a cluster, detection judges it together with its
    /// siblings: clusters whose centroids are at least this similar to its own. Above 1: none.
    pub sibling_threshold: f32,
    /// A ticket's source is the best other candidate it came within this much similarity of
    /// joining: where it would have gone otherwise. When a cluster's rise is its sources'
    /// fall (usual traffic moving between clusters), detection counts it as moved, not new.
    pub source_margin: f32,
    pub lsh: LshConfig,
    pub consolidation: ConsolidationConfig,
}

impl ClusterConfig {
    /// Settings no clustering could work with, named: a cosine threshold outside -1..=1 (no
    /// ticket would ever join a cluster, or every one would), or consolidation every 0 s.
    pub fn validate(&self) -> Result<(), String> {
        let cosines = [
            ("similarity_threshold", self.similarity_threshold),
            ("semantic_threshold", self.semantic_threshold),
            ("related_threshold", self.related_threshold),
            (
                "semantic_related_threshold",
                self.semantic_related_threshold,
            ),
        ];
        if let Some((name, value)) = cosines.iter().find(|(_, v)| !(-1.0..=1.0).contains(v)) {
            return Err(format!(
                "clustering.{name} is {value}; a cosine similarity is between -1 and 1"
            ));
        }
        if self.consolidation.enabled && self.consolidation.every.is_zero() {
            return Err("clustering.consolidation.every must be longer than zero".into());
        }
        Ok(())
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            similarity_threshold: 0.45,
            semantic_threshold: 0.65,
            semantic_linkage: Linkage::Centroid,
            related_threshold: 0.3,
            semantic_related_threshold: 0.5,
            centroid_terms: 40,
            max_candidates: 64,
            exemplars: 3,
            near_margin: 0.05,
            sibling_threshold: 0.7,
            source_margin: 0.15,
            lsh: LshConfig::default(),
            consolidation: ConsolidationConfig::default(),
        }
    }
}

/// How a ticket's similarity to a cluster of sentence vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linkage {
    /// Cosine to the centroid's direction.
    Centroid,
    /// Mean cosine to the members.
    Average,
}
