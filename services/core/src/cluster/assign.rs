//! Assigning a ticket: its candidate clusters from the indexes, each scored against its
//! threshold, then the ticket joins the best (its sums, recent members and exemplars updated) or
//! starts a new cluster.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::lexicon::{Query, TermIndex};
use super::lsh::Lsh;
use super::rows::Kind;
use super::{
    add_terms, cluster_id, insert_capped, vector, Assignment, Cluster, Clusterer, Exemplar,
    Features, Linkage, Placement, Sample,
};
use crate::text::{is_mask, TermVector};

impl Clusterer {
    /// Assigns a ticket to a cluster, updating that cluster. Returns the cluster's seq.
    pub fn assign(
        &mut self,
        f: &Features,
        ticket_id: &str,
        at: DateTime<Utc>,
    ) -> (u64, Assignment) {
        let placed = self.assign_near(f, ticket_id, at);
        (placed.seq, placed.assignment)
    }

    /// [`Clusterer::assign`], also returning the clusters detection counts the ticket toward
    /// or weighs it against: those it came within `near_margin` of joining, and its source.
    pub fn assign_near(&mut self, f: &Features, ticket_id: &str, at: DateTime<Utc>) -> Placement {
        let projections = self.project(f);
        let query = self.weighted(&f.terms);
        // Only candidates within the widest margin matter (the best joins if at or above the
        // threshold, the rest are near or the source): the few left are sorted, not all.
        let widest = -self
            .config
            .near_margin
            .max(self.config.source_margin)
            .max(0.0);
        // (live cluster, similarity, margin over its threshold, the cluster or alias scored)
        let candidates = self.candidates(f, projections.as_deref());
        let mut scored = self.score_candidates(&candidates, f, &query);
        scored.retain(|(_, _, margin, _)| *margin >= widest);
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        // A cluster reached through its aliases counts once, at its best.
        if scored.iter().any(|s| s.3 != s.0) {
            let mut seen = BTreeSet::new();
            scored.retain(|s| seen.insert(s.0));
        }
        let joins = scored.first().filter(|s| s.2 >= 0.0).map(|s| s.0);
        let others = || scored.iter().filter(|s| Some(s.0) != joins);
        let near = others()
            .filter(|(_, _, margin, _)| *margin >= -self.config.near_margin)
            .map(|(seq, _, _, _)| *seq)
            .collect();
        let source = others()
            .find(|(_, _, margin, _)| *margin >= -self.config.source_margin)
            .map(|(seq, _, _, _)| *seq);
        let (seq, assignment) = match scored.first() {
            Some(&(seq, sim, _, through)) if joins == Some(seq) => {
                self.hit_alias(through, at);
                let matched = self.matched_terms(&self.clusters[&seq], &f.terms, 5);
                self.absorb(seq, f, projections.as_deref(), at);
                self.remember(seq, ticket_id, f, at);
                self.add_exemplar(seq, ticket_id, sim);
                let id = self.clusters[&seq].id.clone();
                (seq, assignment(id, sim, matched, false))
            }
            _ => {
                let seq = self.create(f, projections, ticket_id, at);
                let id = self.clusters[&seq].id.clone();
                (seq, assignment(id, 1.0, Vec::new(), true))
            }
        };
        Placement {
            seq,
            assignment,
            near,
            source,
        }
    }

    /// Each candidate scored, in the order given: (the live cluster a ticket joining it joins,
    /// similarity, margin over its threshold, the candidate). By centroid, the candidates' rows
    /// say which are live and are scored together; the rest go one by one.
    fn score_candidates(
        &self,
        seqs: &[u64],
        f: &Features,
        query: &Query,
    ) -> Vec<(u64, f32, f32, u64)> {
        let by_rows = match (&f.dense, self.config.semantic_linkage) {
            (Some(v), Linkage::Centroid) => self.rows.cosines(seqs, v),
            _ => vec![None; seqs.len()],
        };
        let semantic = self.config.semantic_threshold;
        let scored = seqs.iter().zip(by_rows).filter_map(|(&seq, row)| {
            let (live, sim, threshold) = match row {
                Some((sim, Kind::Cluster)) => {
                    debug_assert!(self.clusters.contains_key(&seq), "row of a live cluster");
                    (seq, sim, semantic)
                }
                Some((sim, Kind::Alias)) => (self.live_through(seq)?, sim, semantic),
                None => {
                    let (candidate, live) = self.candidate(seq)?;
                    let (sim, threshold) = self.score(seq, candidate, f, query);
                    (live, sim, threshold)
                }
            };
            Some((live, sim, sim - threshold, seq))
        });
        scored.collect()
    }

    /// A retrieved candidate to score and the live cluster a ticket joining it joins: a live
    /// cluster is its own; an alias leads to the cluster it was merged into (resolved only for
    /// aliases, as most candidates are live).
    fn candidate(&self, seq: u64) -> Option<(&Cluster, u64)> {
        if let Some(live) = self.clusters.get(&seq) {
            return Some((live, seq));
        }
        let alias = self.aliases.get(&seq)?;
        Some((alias, self.live_through(seq)?))
    }

    /// The live cluster alias `seq` leads to, if that cluster is still live.
    fn live_through(&self, seq: u64) -> Option<u64> {
        let into = self.resolve(seq);
        self.clusters.contains_key(&into).then_some(into)
    }

    /// A ticket's similarity to cluster (or alias) `seq`, which is `c`, and the threshold that
    /// similarity must reach. By centroid it comes from `seq`'s row, without reading `c` (the
    /// hot path: `seq` is passed so that `c` is not touched).
    fn score(&self, seq: u64, c: &Cluster, f: &Features, query: &Query) -> (f32, f32) {
        if let (Some(v), Linkage::Centroid) = (&f.dense, self.config.semantic_linkage) {
            if let Some(sim) = self.rows.cosine(seq, v) {
                return (sim, self.config.semantic_threshold);
            }
        }
        match (&c.dense, &f.dense) {
            (Some(sum), Some(v)) => {
                let scale = match self.config.semantic_linkage {
                    Linkage::Centroid => vector::norm(sum),
                    Linkage::Average => c.size as f32,
                };
                let sim = if scale == 0.0 {
                    0.0
                } else {
                    vector::dot(sum, v) / scale
                };
                (sim, self.config.semantic_threshold)
            }
            // A ticket without a vector against a cluster with one (rare): its index is built
            // for the occasion.
            _ => (
                self.lexicon.get(&c.seq).map_or_else(
                    || TermIndex::new(&c.centroid, &self.postings).similarity(query),
                    |terms| terms.similarity(query),
                ),
                self.config.similarity_threshold,
            ),
        }
    }

    /// Whether a ticket with features `f` would join `c` (were `c` its best candidate).
    pub(super) fn would_join(&self, c: &Cluster, f: &Features) -> bool {
        let (sim, threshold) = self.score(c.seq, c, f, &self.weighted(&f.terms));
        sim >= threshold
    }

    /// The LSH projections of `f`'s sentence vector, once the LSH exists.
    pub(super) fn projections_of(&self, f: &Features) -> Option<Vec<f32>> {
        let (lsh, v) = (self.lsh.as_ref()?, f.dense.as_ref()?);
        (lsh.dim() == v.len()).then(|| lsh.project(v))
    }

    /// A ticket's terms as ids weighted by idf, with their norm: computed once per ticket.
    fn weighted(&self, v: &TermVector) -> Query {
        let terms: Vec<(Option<u32>, f32)> = v
            .weights
            .iter()
            .map(|(t, w)| {
                let posting = self.postings.get(t);
                (posting.map(|p| p.id), w * self.idf_of(posting))
            })
            .collect();
        let norm = terms.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        Query { terms, norm }
    }

    /// Terms of `v` that the centroid shares, most contributing first.
    fn matched_terms(&self, c: &Cluster, v: &TermVector, n: usize) -> Vec<String> {
        let mut shared: Vec<(&String, f32)> = v
            .weights
            .iter()
            .filter(|(t, _)| !is_mask(t))
            .filter_map(|(t, w)| c.centroid.get(t).map(|x| (t, x * w * self.idf(t))))
            .collect();
        shared.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        shared.into_iter().take(n).map(|(t, _)| t.clone()).collect()
    }

    fn project(&mut self, f: &Features) -> Option<Vec<f32>> {
        let dim = f.dense.as_ref()?.len();
        let config = self.config.lsh.clone();
        self.lsh.get_or_insert_with(|| Lsh::new(config, dim));
        self.projections_of(f)
    }

    /// Candidate clusters: LSH buckets for a sentence vector, else clusters sharing the ticket's
    /// most distinguishing terms; at most `max_candidates`.
    pub(super) fn candidates(&self, f: &Features, projections: Option<&[f32]>) -> Vec<u64> {
        let max = self.config.max_candidates;
        if let (Some(lsh), Some(p)) = (&self.lsh, projections) {
            return lsh.candidates(p, max);
        }
        let mut terms: Vec<(&String, f32)> = f
            .terms
            .weights
            .iter()
            .map(|(t, w)| (t, w * self.idf(t)))
            .collect();
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut out = Vec::with_capacity(max);
        for (term, _) in terms {
            for seq in self
                .postings
                .get(term)
                .into_iter()
                .flat_map(|p| &p.clusters)
            {
                if !insert_capped(&mut out, *seq, max) {
                    return out;
                }
            }
        }
        out
    }

    fn create(
        &mut self,
        f: &Features,
        projections: Option<Vec<f32>>,
        ticket_id: &str,
        at: DateTime<Utc>,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(Cluster {
            id: cluster_id(&self.product, seq),
            product: self.product.clone(),
            seq,
            size: 1,
            centroid: f.terms.weights.clone(),
            surface: f.terms.surface.clone(),
            dense: f.dense.clone(),
            projections: projections.unwrap_or_default(),
            exemplars: vec![Exemplar {
                ticket_id: ticket_id.to_string(),
                similarity: 1.0,
            }],
            cannot_link: BTreeSet::new(),
            merged_into: None,
            first_seen: at,
            last_seen: at,
            recent: Vec::new(),
            unchecked: 0,
            alias: false,
        });
        self.prune(seq);
        self.remember(seq, ticket_id, f, at);
        seq
    }

    /// Adds one member's features to a cluster's sums.
    fn absorb(&mut self, seq: u64, f: &Features, projections: Option<&[f32]>, at: DateTime<Utc>) {
        let Some(c) = self.clusters.get_mut(&seq) else {
            return;
        };
        let added = add_terms(c, &f.terms, 1.0);
        if let (Some(sum), Some(v)) = (c.dense.as_mut(), &f.dense) {
            vector::add_scaled(sum, v, 1.0);
            if let Some(p) = projections {
                vector::add_scaled(&mut c.projections, p, 1.0);
            }
        }
        c.size += 1;
        c.last_seen = c.last_seen.max(at);
        for term in added {
            self.post(term, seq);
        }
        self.reindex_dense(seq);
        self.prune(seq);
    }

    /// Keeps a new member's features among the cluster's recent ones (the last
    /// `consolidation.split.sample`).
    fn remember(&mut self, seq: u64, ticket_id: &str, f: &Features, at: DateTime<Utc>) {
        let split = &self.config.consolidation.split;
        let keep = if split.enabled { split.sample } else { 0 };
        let Some(c) = self.clusters.get_mut(&seq).filter(|_| keep > 0) else {
            return;
        };
        c.unchecked = c.unchecked.saturating_add(1);
        if c.recent.len() >= keep {
            c.recent.drain(..=c.recent.len() - keep);
        }
        c.recent.push(Arc::new(Sample {
            ticket_id: ticket_id.to_string(),
            at,
            terms: f.terms.weights.clone(),
            // Only drift splits read samples, and half precision is ample for them; it halves
            // the largest part of a cluster's checkpoint.
            dense: f.dense.as_deref().map(vector::half_precision),
        }));
    }

    fn add_exemplar(&mut self, seq: u64, ticket_id: &str, similarity: f32) {
        let keep = self.config.exemplars.max(1);
        let Some(c) = self.clusters.get_mut(&seq) else {
            return;
        };
        c.exemplars.push(Exemplar {
            ticket_id: ticket_id.to_string(),
            similarity,
        });
        // The first ticket stays first; the rest are the closest, best first.
        c.exemplars[1..].sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.ticket_id.cmp(&b.ticket_id))
        });
        c.exemplars.truncate(keep);
    }
}

fn assignment(cluster_id: String, similarity: f32, matched: Vec<String>, new: bool) -> Assignment {
    Assignment {
        cluster_id,
        similarity,
        matched_terms: matched,
        new_cluster: new,
    }
}
