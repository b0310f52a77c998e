//! Centroid terms as small integers, for the lexical hot paths.
//!
//! Comparing a ticket's terms with a candidate's centroid, and two centroids in consolidation,
//! used to walk two string-sorted term lists side by side: a string comparison per step, most
//! of the time of terms-only clustering. Here each term in a live centroid has an id (kept in
//! its posting), and each live cluster a copy of its centroid as (id, weight) pairs, so a shared
//! term is found by a binary search over integers. Products are still added up in the order of
//! the terms' strings and norms are taken over the centroid in that order, so every similarity
//! is the same float, bit for bit, as the string walk gave: ids need not be the same after a
//! restart, and decisions do not depend on them.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

/// The clusters whose centroids hold a term, and the term's id.
#[derive(Debug, Clone)]
pub(super) struct Posting {
    pub id: u32,
    pub clusters: BTreeSet<u64>,
}

/// A centroid's terms by id, built whenever the centroid changes.
#[derive(Debug, Clone)]
pub(super) struct TermIndex {
    /// (id, weight) in the order of the terms' strings: the order products are added up in.
    in_order: Vec<(u32, f32)>,
    /// The same pairs by id, for lookups.
    by_id: Vec<(u32, f32)>,
    norm: f32,
}

/// A ticket's terms as ids (none for a term no centroid holds, which matches nothing), weighted
/// by idf, in string order, with the norm of all of them.
#[derive(Debug, Clone)]
pub(super) struct Query {
    pub terms: Vec<(Option<u32>, f32)>,
    pub norm: f32,
}

impl TermIndex {
    /// Every term of `centroid` must have a posting.
    pub fn new(centroid: &BTreeMap<String, f32>, postings: &HashMap<String, Posting>) -> Self {
        let in_order: Vec<(u32, f32)> = centroid
            .iter()
            .filter_map(|(t, w)| Some((postings.get(t)?.id, *w)))
            .collect();
        let mut by_id = in_order.clone();
        by_id.sort_unstable_by_key(|(id, _)| *id);
        let norm = centroid.values().map(|w| w * w).sum::<f32>().sqrt();
        TermIndex {
            in_order,
            by_id,
            norm,
        }
    }

    fn weight(&self, id: u32) -> Option<f32> {
        let i = self.by_id.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(self.by_id[i].1)
    }

    /// Cosine of a ticket's weighted terms to this centroid.
    pub fn similarity(&self, query: &Query) -> f32 {
        if query.norm == 0.0 || self.norm == 0.0 {
            return 0.0;
        }
        let dot: f32 = query
            .terms
            .iter()
            .filter_map(|(id, w)| Some(w * self.weight((*id)?)?))
            .sum();
        dot / (query.norm * self.norm)
    }

    /// Cosine of two centroids.
    pub fn cosine(&self, other: &TermIndex) -> f32 {
        let norms = self.norm * other.norm;
        if norms == 0.0 {
            return 0.0;
        }
        let dot: f32 = self
            .in_order
            .iter()
            .filter_map(|(id, w)| Some(w * other.weight(*id)?))
            .sum();
        dot / norms
    }
}
