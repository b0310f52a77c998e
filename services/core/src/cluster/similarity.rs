//! Comparing clusters by their centroids: how alike two clusters are (for consolidation and for
//! SEVs), and a cluster's label, the terms that set it apart.

use std::collections::BTreeMap;

use super::lexicon::TermIndex;
use super::{vector, Cluster, Clusterer};
use crate::text::is_mask;

impl Clusterer {
    /// The label: the centroid's most distinguishing terms (weight × idf), in readable form.
    pub fn label(&self, cluster: &Cluster, terms: usize) -> Vec<String> {
        let mut ranked: Vec<(&String, f32)> = cluster
            .centroid
            .iter()
            .filter(|(t, _)| !is_mask(t))
            .map(|(t, w)| (t, w * self.idf(t)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked
            .into_iter()
            .take(terms)
            .map(|(t, _)| cluster.surface.get(t).unwrap_or(t).clone())
            .collect()
    }

    /// Cosine similarity of two clusters' centroids (semantic when both have vectors).
    pub fn similarity_between(&self, a: &Cluster, b: &Cluster) -> f32 {
        match (&a.dense, &b.dense) {
            (Some(x), Some(y)) => vector::cosine(x, y),
            _ => match (self.term_index(a), self.term_index(b)) {
                (Some(x), Some(y)) => x.cosine(y),
                _ => sparse_cosine(&a.centroid, &b.centroid),
            },
        }
    }

    /// How alike two clusters' centroids are, and whether that makes them one complaint for
    /// SEVs (an escalating cluster joins the other's open SEV). Vectors and terms each have
    /// their own threshold, as their cosines run on different scales.
    pub fn relatedness(&self, a: &Cluster, b: &Cluster) -> (f32, bool) {
        let sim = self.similarity_between(a, b);
        let threshold = if a.dense.is_some() && b.dense.is_some() {
            self.config.semantic_related_threshold
        } else {
            self.config.related_threshold
        };
        (sim, sim >= threshold)
    }

    /// The term index of `c` if it is one of this clusterer's live clusters (not a copy).
    fn term_index(&self, c: &Cluster) -> Option<&TermIndex> {
        let live = self.clusters.get(&c.seq)?;
        std::ptr::eq(live, c).then(|| self.lexicon.get(&c.seq))?
    }
}

/// Cosine similarity of two sparse vectors.
pub(super) fn sparse_cosine(a: &BTreeMap<String, f32>, b: &BTreeMap<String, f32>) -> f32 {
    let norm = |v: &BTreeMap<String, f32>| v.values().map(|w| w * w).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        return 0.0;
    }
    let dot: f32 = shared_products(sorted(a), sorted(b)).sum();
    dot / norms
}

pub(super) fn sorted(v: &BTreeMap<String, f32>) -> impl Iterator<Item = (&str, f32)> {
    v.iter().map(|(t, w)| (t.as_str(), *w))
}

/// The products of the weights two term-sorted vectors share, in term order: one merge of the
/// two sequences, a string comparison per step where a tree lookup per term took several
/// (these comparisons dominated lexical assignment and consolidation).
pub(super) fn shared_products<'a>(
    a: impl Iterator<Item = (&'a str, f32)>,
    b: impl Iterator<Item = (&'a str, f32)>,
) -> impl Iterator<Item = f32> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || loop {
        let (x, y) = (a.peek()?, b.peek()?);
        match x.0.cmp(y.0) {
            std::cmp::Ordering::Less => {
                a.next();
            }
            std::cmp::Ordering::Greater => {
                b.next();
            }
            std::cmp::Ordering::Equal => {
                let product = x.1 * y.1;
                a.next();
                b.next();
                return Some(product);
            }
        }
    })
}
