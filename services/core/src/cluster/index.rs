//! The indexes over the live clusters: the inverted index from centroid terms to clusters (with
//! the idf it gives), the centroids by term id, the vector rows and the LSH buckets. Every
//! change to a cluster's sums refreshes them here.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;

use super::lexicon::{Posting, TermIndex};
use super::lsh::Lsh;
use super::rows::Kind;
use super::{Cluster, Clusterer};

impl Clusterer {
    /// Inverse cluster frequency: terms found in many clusters say little about any one of them.
    /// Derived from the inverted index, so it is restored with the clusters at no cost.
    pub(super) fn idf(&self, term: &str) -> f32 {
        self.idf_of(self.postings.get(term))
    }

    pub(super) fn idf_of(&self, posting: Option<&Posting>) -> f32 {
        let n = self.clusters.len() as f32;
        let df = posting.map_or(0, |p| p.clusters.len()) as f32;
        ((1.0 + n) / (1.0 + df)).ln() + 1.0
    }

    /// Files a live cluster in both indexes.
    pub(super) fn insert(&mut self, cluster: Cluster) {
        let seq = cluster.seq;
        for term in cluster.centroid.keys() {
            self.post(term.clone(), seq);
        }
        if let Some(dense) = &cluster.dense {
            let config = self.config.lsh.clone();
            self.lsh
                .get_or_insert_with(|| Lsh::new(config, dense.len()));
        }
        self.clusters.insert(seq, cluster);
        self.reindex_dense(seq);
        self.reindex_terms(seq);
    }

    /// Removes a cluster from both indexes and the live set.
    pub(super) fn take(&mut self, seq: u64) -> Option<Cluster> {
        let cluster = self.clusters.remove(&seq)?;
        for term in cluster.centroid.keys() {
            self.unpost(term, seq);
        }
        if let Some(lsh) = self.lsh.as_mut() {
            lsh.remove(seq);
        }
        self.rows.remove(seq);
        self.lexicon.remove(&seq);
        Some(cluster)
    }

    /// Refreshes what derives from a cluster's vector sum: its norm and its LSH buckets.
    pub(super) fn reindex_dense(&mut self, seq: u64) {
        let Some(c) = self.clusters.get(&seq) else {
            return;
        };
        match &c.dense {
            Some(sum) => self.rows.set(seq, sum, Kind::Cluster),
            None => self.rows.remove(seq),
        }
        if let Some(lsh) = self.lsh.as_mut() {
            if c.projections.len() == lsh.project_len() {
                lsh.insert(seq, &c.projections);
            }
        }
    }

    /// Rebuilds the centroid by term id of a cluster without a vector sum (every term of it has
    /// a posting by now). Clusters with one are compared by their vectors, so they get none.
    fn reindex_terms(&mut self, seq: u64) {
        match self.clusters.get(&seq) {
            Some(c) if c.dense.is_none() => {
                let index = TermIndex::new(&c.centroid, &self.postings);
                self.lexicon.insert(seq, index);
            }
            _ => {
                self.lexicon.remove(&seq);
            }
        }
    }

    /// Files a cluster under a term, giving the term an id when no cluster had it.
    pub(super) fn post(&mut self, term: String, seq: u64) {
        let posting = match self.postings.entry(term) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let id = self.next_term;
                self.next_term += 1;
                e.insert(Posting {
                    id,
                    clusters: BTreeSet::new(),
                })
            }
        };
        posting.clusters.insert(seq);
    }

    fn unpost(&mut self, term: &str, seq: u64) {
        if let Some(posting) = self.postings.get_mut(term) {
            posting.clusters.remove(&seq);
            if posting.clusters.is_empty() {
                self.postings.remove(term);
            }
        }
    }

    /// Keeps a centroid to its heaviest terms, dropping the rest from the inverted index too,
    /// and refreshes its term index: every change to a centroid ends here.
    pub(super) fn prune(&mut self, seq: u64) {
        self.drop_light_terms(seq);
        self.reindex_terms(seq);
    }

    fn drop_light_terms(&mut self, seq: u64) {
        let Some(c) = self.clusters.get_mut(&seq) else {
            return;
        };
        if c.centroid.len() <= self.config.centroid_terms {
            return;
        }
        let mut ranked: Vec<(&String, f32)> = c.centroid.iter().map(|(t, w)| (t, *w)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        // Usually one or two terms fall off: only those are copied.
        let dropped: Vec<String> = ranked[self.config.centroid_terms..]
            .iter()
            .map(|(t, _)| (*t).clone())
            .collect();
        for term in &dropped {
            c.centroid.remove(term);
            c.surface.remove(term);
        }
        for term in &dropped {
            self.unpost(term, seq);
        }
    }
}
