//! Online clustering of one product's tickets (a "scope").
//!
//! First algorithm, deliberately simple: a leader clusterer over term vectors. Each cluster keeps a
//! pruned centroid; candidates for a new ticket come from an inverted index from centroid terms to
//! clusters (never a scan of every cluster), and the ticket joins the most similar candidate above
//! a threshold or starts a new cluster. Everything iterates in sorted order, so the same tickets in
//! the same order give the same clusters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text::TermVector;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Cosine similarity to a centroid needed to join its cluster.
    pub similarity_threshold: f32,
    /// Cosine similarity between two centroids above which an escalating cluster joins the
    /// other's open SEV instead of opening a duplicate.
    pub related_threshold: f32,
    /// Terms kept per centroid; also bounds the postings each cluster adds to the inverted index.
    pub centroid_terms: usize,
    /// At most this many candidate clusters are scored per ticket (bounded time per ticket).
    pub max_candidates: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            similarity_threshold: 0.45,
            related_threshold: 0.3,
            centroid_terms: 40,
            max_candidates: 64,
        }
    }
}

/// A cluster's durable state. Stored as JSON with the consumed offsets, restored on start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub product: String,
    pub seq: u64,
    pub size: u64,
    /// Sum of member vectors, pruned to the heaviest terms.
    pub centroid: BTreeMap<String, f32>,
    pub surface: BTreeMap<String, String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl Cluster {
    /// The label: the heaviest centroid terms, in readable form.
    pub fn label(&self, terms: usize) -> Vec<String> {
        let mut ranked: Vec<(&String, &f32)> = self
            .centroid
            .iter()
            .filter(|(t, _)| !crate::text::is_mask(t))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        ranked
            .into_iter()
            .take(terms)
            .map(|(t, _)| self.surface.get(t).unwrap_or(t).clone())
            .collect()
    }

    /// Cosine similarity of two centroids.
    pub fn similarity_to(&self, other: &Cluster) -> f32 {
        cosine(&self.centroid, &other.centroid)
    }

    /// Cosine similarity of a ticket's (unit-length) vector to the centroid.
    fn similarity(&self, v: &TermVector) -> f32 {
        cosine(&v.weights, &self.centroid)
    }

    /// Terms of `v` that the centroid shares, most contributing first.
    fn matched_terms(&self, v: &TermVector, n: usize) -> Vec<String> {
        let mut shared: Vec<(&String, f32)> = v
            .weights
            .iter()
            .filter_map(|(t, w)| self.centroid.get(t).map(|c| (t, c * w)))
            .collect();
        shared.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        shared.into_iter().take(n).map(|(t, _)| t.clone()).collect()
    }
}

/// Where a ticket went and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub cluster_id: String,
    pub similarity: f32,
    pub matched_terms: Vec<String>,
    pub new_cluster: bool,
}

/// The clusters of one product and the inverted index over their centroids.
#[derive(Debug, Clone)]
pub struct Clusterer {
    config: ClusterConfig,
    product: String,
    clusters: BTreeMap<u64, Cluster>,
    postings: BTreeMap<String, BTreeSet<u64>>,
}

impl Clusterer {
    pub fn new(product: &str, config: ClusterConfig) -> Self {
        Clusterer {
            config,
            product: product.to_string(),
            clusters: BTreeMap::new(),
            postings: BTreeMap::new(),
        }
    }

    /// Restores a product's clusters as they were checkpointed.
    pub fn restore(product: &str, config: ClusterConfig, clusters: Vec<Cluster>) -> Self {
        let mut me = Clusterer::new(product, config);
        for cluster in clusters {
            me.index(cluster.seq, &cluster.centroid);
            me.clusters.insert(cluster.seq, cluster);
        }
        me
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn get(&self, seq: u64) -> Option<&Cluster> {
        self.clusters.get(&seq)
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Assigns a ticket's features to a cluster, updating that cluster. Returns the cluster's seq.
    pub fn assign(&mut self, v: &TermVector, at: DateTime<Utc>) -> (u64, Assignment) {
        let best = self
            .candidates(v)
            .into_iter()
            .filter_map(|seq| self.clusters.get(&seq).map(|c| (seq, c.similarity(v))))
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
        match best {
            Some((seq, sim)) if sim >= self.config.similarity_threshold => {
                let matched = self.clusters[&seq].matched_terms(v, 5);
                self.absorb(seq, v, at);
                let id = self.clusters[&seq].id.clone();
                (seq, assignment(id, sim, matched, false))
            }
            _ => {
                let seq = self.create(v, at);
                let id = self.clusters[&seq].id.clone();
                (seq, assignment(id, 1.0, Vec::new(), true))
            }
        }
    }

    /// Clusters sharing the ticket's heaviest terms, bounded by `max_candidates`.
    fn candidates(&self, v: &TermVector) -> BTreeSet<u64> {
        let mut terms: Vec<(&String, &f32)> = v.weights.iter().collect();
        terms.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let mut out = BTreeSet::new();
        for (term, _) in terms {
            for seq in self.postings.get(term).into_iter().flatten() {
                if out.len() >= self.config.max_candidates {
                    return out;
                }
                out.insert(*seq);
            }
        }
        out
    }

    fn create(&mut self, v: &TermVector, at: DateTime<Utc>) -> u64 {
        let seq = self.clusters.keys().next_back().map_or(1, |s| s + 1);
        let cluster = Cluster {
            id: cluster_id(&self.product, seq),
            product: self.product.clone(),
            seq,
            size: 1,
            centroid: v.weights.clone(),
            surface: v.surface.clone(),
            first_seen: at,
            last_seen: at,
        };
        self.index(seq, &cluster.centroid);
        self.clusters.insert(seq, cluster);
        self.prune(seq);
        seq
    }

    fn absorb(&mut self, seq: u64, v: &TermVector, at: DateTime<Utc>) {
        let mut added = Vec::new();
        if let Some(c) = self.clusters.get_mut(&seq) {
            for (term, w) in &v.weights {
                let slot = c.centroid.entry(term.clone()).or_insert_with(|| {
                    added.push(term.clone());
                    0.0
                });
                *slot += w;
                if let Some(word) = v.surface.get(term) {
                    c.surface
                        .entry(term.clone())
                        .or_insert_with(|| word.clone());
                }
            }
            c.size += 1;
            c.last_seen = c.last_seen.max(at);
        }
        for term in added {
            self.postings.entry(term).or_default().insert(seq);
        }
        self.prune(seq);
    }

    /// Keeps a centroid to its heaviest terms, dropping the rest from the inverted index too.
    fn prune(&mut self, seq: u64) {
        let Some(c) = self.clusters.get_mut(&seq) else {
            return;
        };
        if c.centroid.len() <= self.config.centroid_terms {
            return;
        }
        let mut ranked: Vec<(String, f32)> =
            c.centroid.iter().map(|(t, w)| (t.clone(), *w)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (term, _) in ranked.split_off(self.config.centroid_terms) {
            c.centroid.remove(&term);
            c.surface.remove(&term);
            if let Some(set) = self.postings.get_mut(&term) {
                set.remove(&seq);
                if set.is_empty() {
                    self.postings.remove(&term);
                }
            }
        }
    }

    fn index(&mut self, seq: u64, centroid: &BTreeMap<String, f32>) {
        for term in centroid.keys() {
            self.postings.entry(term.clone()).or_default().insert(seq);
        }
    }
}

/// Cosine similarity of two sparse vectors.
fn cosine(a: &BTreeMap<String, f32>, b: &BTreeMap<String, f32>) -> f32 {
    let norm = |v: &BTreeMap<String, f32>| v.values().map(|w| w * w).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        return 0.0;
    }
    let dot: f32 = a.iter().filter_map(|(t, w)| b.get(t).map(|o| o * w)).sum();
    dot / norms
}

fn assignment(cluster_id: String, similarity: f32, matched: Vec<String>, new: bool) -> Assignment {
    Assignment {
        cluster_id,
        similarity,
        matched_terms: matched,
        new_cluster: new,
    }
}

/// Cluster ids are deterministic: the product and the cluster's sequence number within it.
pub fn cluster_id(product: &str, seq: u64) -> String {
    format!("{product}:{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Featurizer;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run(texts: &[&str]) -> Vec<Assignment> {
        let mut f = Featurizer::default();
        let mut c = Clusterer::new("cards", ClusterConfig::default());
        texts
            .iter()
            .map(|t| c.assign(&f.features(t, &[]), t0()).1)
            .collect()
    }

    #[test]
    fn similar_complaints_share_a_cluster_and_different_ones_do_not() {
        let a = run(&[
            "My card is declined in every shop",
            "card declined in the shop again",
            "How do I change my address?",
            "every shop declined my card",
        ]);
        assert_eq!(a[0].cluster_id, "cards:1");
        assert_eq!(a[1].cluster_id, "cards:1");
        assert_eq!(a[2].cluster_id, "cards:2");
        assert_eq!(a[3].cluster_id, "cards:1");
        assert!(a[1].matched_terms.contains(&"declin".to_string()));
    }

    #[test]
    fn the_same_tickets_in_the_same_order_give_the_same_clusters() {
        let texts = [
            "login fails",
            "cannot log in, login fails with error 500",
            "refund please",
            "where is my refund",
            "login page fails",
        ];
        assert_eq!(run(&texts), run(&texts));
    }

    #[test]
    fn a_restored_clusterer_continues_exactly_like_the_original() {
        let mut f = Featurizer::default();
        let mut original = Clusterer::new("p", ClusterConfig::default());
        for t in ["card declined", "refund missing", "card declined twice"] {
            original.assign(&f.features(t, &[]), t0());
        }
        let saved: Vec<Cluster> = original.clusters.values().cloned().collect();
        let mut restored = Clusterer::restore("p", ClusterConfig::default(), saved);
        for t in [
            "my card got declined",
            "refund is missing",
            "new topic here",
        ] {
            let v = f.features(t, &[]);
            assert_eq!(original.assign(&v, t0()), restored.assign(&v, t0()));
        }
    }

    #[test]
    fn centroids_stay_within_their_term_budget() {
        let mut f = Featurizer::default();
        let config = ClusterConfig {
            centroid_terms: 5,
            similarity_threshold: 0.1,
            ..ClusterConfig::default()
        };
        let mut c = Clusterer::new("p", config);
        for t in [
            "alpha beta gamma delta epsilon zeta",
            "alpha beta eta theta iota kappa",
        ] {
            c.assign(&f.features(t, &[]), t0());
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(1).unwrap().centroid.len(), 5);
        assert_eq!(c.get(1).unwrap().label(2), vec!["alpha", "beta"]);
    }
}
