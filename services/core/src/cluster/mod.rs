//! Online clustering of one product's tickets (a "scope").
//!
//! A leader clusterer: a ticket joins the most similar candidate cluster above a threshold, or
//! starts a new one. Similarity is the cosine to the cluster's centroid, over sentence-encoder
//! vectors when the ticket has one and over idf-weighted terms otherwise. Candidates never come
//! from a scan of every cluster: semantic vectors go through LSH ([`lsh`]), terms through an
//! inverted index from centroid terms to clusters, both capped at `max_candidates`, so the cost
//! per ticket stays flat as clusters grow. Consolidation ([`consolidate`]) periodically merges
//! fragments of one complaint and folds stale strays into their nearest cluster; human
//! corrections ([`corrections`]) merge, split and move, and are respected afterwards.
//!
//! Everything iterates in sorted order with fixed summation order, so the same tickets in the
//! same order give bit-identical clusters.

pub mod alias;
pub mod consolidate;
pub mod corrections;
pub mod drift;
mod lexicon;
pub mod lsh;
mod rows;
pub mod vector;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

use crate::text::{is_mask, TermVector};
pub use consolidate::ConsolidationConfig;
use lexicon::{Posting, Query, TermIndex};
use lsh::{Lsh, LshConfig};
use rows::{Kind, Rows};

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

/// A ticket's features: terms always (labels, explanations, search), a sentence vector when the
/// encoder is on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub terms: TermVector,
    /// Unit-length sentence vector.
    pub dense: Option<Vec<f32>>,
}

/// A ticket shown as typical of its cluster, with its similarity when it joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    pub ticket_id: String,
    pub similarity: f32,
}

/// A cluster's durable state. Stored as JSON with the consumed offsets, restored on start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub product: String,
    pub seq: u64,
    pub size: u64,
    /// Sum of member term vectors, pruned to the heaviest terms.
    pub centroid: BTreeMap<String, f32>,
    pub surface: BTreeMap<String, String>,
    /// Sum of member sentence vectors.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "vector::base64_f32"
    )]
    pub dense: Option<Vec<f32>>,
    /// LSH projections of `dense`, kept so buckets survive a restart exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projections: Vec<f32>,
    /// The first ticket, then the closest later ones.
    #[serde(default)]
    pub exemplars: Vec<Exemplar>,
    /// Clusters a human split from this one: consolidation never merges them back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cannot_link: BTreeSet<u64>,
    /// Set when this cluster was merged into another; its tickets now count there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<u64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The latest members with their features, oldest first: what consolidation looks at to
    /// split a cluster that drifted (the sums alone cannot say which tickets to move).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Arc<Sample>>,
    /// Members that joined since consolidation last looked for drift: it looks again once
    /// enough have joined to form a side of a cut, not at every round the cluster changed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchecked: u32,
    /// Merged away, but still routing tickets close to it into `merged_into` (see [`alias`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alias: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One recent member of a cluster, kept with the features it added to the sums. Shared (`Arc`)
/// so checkpoint copies of a cluster do not copy its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub ticket_id: String,
    pub at: DateTime<Utc>,
    pub terms: BTreeMap<String, f32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vector::base64_f16::serialize",
        deserialize_with = "vector::base64_f32::deserialize"
    )]
    pub dense: Option<Vec<f32>>,
}

impl Cluster {
    /// A sample's features as they were added, with this cluster's readable words for its terms.
    pub fn features_of(&self, sample: &Sample) -> Features {
        let surface = sample
            .terms
            .keys()
            .filter_map(|t| Some((t.clone(), self.surface.get(t)?.clone())))
            .collect();
        Features {
            terms: TermVector {
                weights: sample.terms.clone(),
                surface,
            },
            dense: sample.dense.clone(),
        }
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

/// Where a ticket went, and what detection needs to know of the clusters around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub seq: u64,
    pub assignment: Assignment,
    /// Other clusters the ticket came within `near_margin` of joining.
    pub near: Vec<u64>,
    /// The best other cluster it came within `source_margin` of joining: where it would have
    /// gone otherwise.
    pub source: Option<u64>,
}

/// A cluster carrying traffic like another's (see [`Clusterer::carriers`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Carrier {
    pub seq: u64,
    /// The share of its recent members that would join the other cluster.
    pub share: f64,
}

/// The clusters of one product and the indexes over their centroids.
#[derive(Debug, Clone)]
pub struct Clusterer {
    config: ClusterConfig,
    product: String,
    clusters: BTreeMap<u64, Cluster>,
    /// Merged-away clusters: seq → the cluster it went into.
    merged: BTreeMap<u64, u64>,
    /// Merged-away clusters not yet checkpointed.
    retired: Vec<Cluster>,
    /// Merged-away clusters that still route their kind of ticket (see [`alias`]), by seq.
    aliases: BTreeMap<u64, Cluster>,
    /// Aliases a ticket joined through since the last checkpoint.
    touched_aliases: BTreeSet<u64>,
    next_seq: u64,
    /// Inverted index: term → its id and the clusters whose centroids hold it.
    postings: HashMap<String, Posting>,
    next_term: u32,
    lsh: Option<Lsh>,
    /// The vector sums of live clusters and aliases with their norms, refreshed wherever a sum
    /// changes (the scoring hot path).
    rows: Rows,
    /// Centroids by term id of clusters without vector sums, refreshed wherever a centroid
    /// changes (lexical hot paths).
    lexicon: HashMap<u64, TermIndex>,
}

impl Clusterer {
    pub fn new(product: &str, config: ClusterConfig) -> Self {
        Clusterer {
            config,
            product: product.to_string(),
            clusters: BTreeMap::new(),
            merged: BTreeMap::new(),
            retired: Vec::new(),
            aliases: BTreeMap::new(),
            touched_aliases: BTreeSet::new(),
            next_seq: 1,
            postings: HashMap::new(),
            next_term: 0,
            lsh: None,
            rows: Rows::default(),
            lexicon: HashMap::new(),
        }
    }

    /// Restores a product's clusters (merged ones included) as they were checkpointed.
    pub fn restore(product: &str, config: ClusterConfig, clusters: Vec<Cluster>) -> Self {
        let mut me = Clusterer::new(product, config);
        let mut aliases = Vec::new();
        for cluster in clusters {
            me.next_seq = me.next_seq.max(cluster.seq + 1);
            match cluster.merged_into {
                Some(into) => {
                    me.merged.insert(cluster.seq, into);
                    if cluster.alias && me.config.consolidation.alias.enabled {
                        aliases.push(cluster);
                    }
                }
                None => me.insert(cluster),
            }
        }
        // After the live clusters: the LSH exists once one with a vector sum is in.
        for alias in aliases {
            me.index_alias(alias);
        }
        me
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn product(&self) -> &str {
        &self.product
    }

    pub fn get(&self, seq: u64) -> Option<&Cluster> {
        self.clusters.get(&seq)
    }

    /// Live clusters, by seq.
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values()
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Clusters created so far, live or not: how much the clustering churns, beside
    /// [`Clusterer::len`] and [`Clusterer::merged_away`].
    pub fn created(&self) -> u64 {
        self.next_seq - 1
    }

    /// Clusters merged into others so far (by consolidation or by a human).
    pub fn merged_away(&self) -> usize {
        self.merged.len()
    }

    /// The live cluster a (possibly merged-away) cluster's tickets now belong to.
    pub fn resolve(&self, mut seq: u64) -> u64 {
        while let Some(into) = self.merged.get(&seq) {
            seq = *into;
        }
        seq
    }

    /// Merged-away clusters changed since the last call (newly merged, or an alias a ticket
    /// joined through or that was dropped), for checkpointing.
    pub fn take_retired(&mut self) -> Vec<Cluster> {
        let mut retired = std::mem::take(&mut self.retired);
        retired.extend(self.take_touched_aliases());
        retired
    }

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

    /// Inverse cluster frequency: terms found in many clusters say little about any one of them.
    /// Derived from the inverted index, so it is restored with the clusters at no cost.
    fn idf(&self, term: &str) -> f32 {
        self.idf_of(self.postings.get(term))
    }

    fn idf_of(&self, posting: Option<&Posting>) -> f32 {
        let n = self.clusters.len() as f32;
        let df = posting.map_or(0, |p| p.clusters.len()) as f32;
        ((1.0 + n) / (1.0 + df)).ln() + 1.0
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
    fn would_join(&self, c: &Cluster, f: &Features) -> bool {
        let (sim, threshold) = self.score(c.seq, c, f, &self.weighted(&f.terms));
        sim >= threshold
    }

    /// The LSH projections of `f`'s sentence vector, once the LSH exists.
    fn projections_of(&self, f: &Features) -> Option<Vec<f32>> {
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
    fn candidates(&self, f: &Features, projections: Option<&[f32]>) -> Vec<u64> {
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

    /// Files a live cluster in both indexes.
    fn insert(&mut self, cluster: Cluster) {
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
    fn take(&mut self, seq: u64) -> Option<Cluster> {
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
    fn reindex_dense(&mut self, seq: u64) {
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
    fn post(&mut self, term: String, seq: u64) {
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
    fn prune(&mut self, seq: u64) {
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

/// Adds `sign ×` a term vector to a centroid, dropping terms that fall to zero or below. Returns
/// the terms that are new to the centroid. Runs for every ticket, so it copies a term's string
/// only when the term is new to the centroid, and sweeps for dropped terms only when a weight
/// fell that low.
fn add_terms(c: &mut Cluster, v: &TermVector, sign: f32) -> Vec<String> {
    let mut added = Vec::new();
    let mut fell = false;
    for (term, w) in &v.weights {
        let slot = match c.centroid.get_mut(term) {
            Some(slot) => slot,
            None => {
                added.push(term.clone());
                c.centroid.entry(term.clone()).or_insert(0.0)
            }
        };
        *slot += sign * w;
        fell |= *slot <= 1e-6;
        if let Some(word) = v.surface.get(term) {
            if !c.surface.contains_key(term) {
                c.surface.insert(term.clone(), word.clone());
            }
        }
    }
    if fell {
        c.centroid.retain(|_, w| *w > 1e-6);
        let centroid = &c.centroid;
        c.surface.retain(|t, _| centroid.contains_key(t));
        added.retain(|t| c.centroid.contains_key(t));
    }
    added
}

/// Adds `seq` to the sorted, distinct `out` unless `out` already holds `max`; false once full.
/// A sorted vector of at most `max_candidates` beats a tree for this size.
fn insert_capped(out: &mut Vec<u64>, seq: u64, max: usize) -> bool {
    if out.len() >= max {
        return false;
    }
    if let Err(at) = out.binary_search(&seq) {
        out.insert(at, seq);
    }
    true
}

/// Keeps the latest `keep` samples, oldest first (in event time, then ticket id).
fn keep_latest(recent: &mut Vec<Arc<Sample>>, keep: usize) {
    recent.sort_by(|a, b| (a.at, &a.ticket_id).cmp(&(b.at, &b.ticket_id)));
    let excess = recent.len().saturating_sub(keep);
    recent.drain(..excess);
}

/// Cosine similarity of two sparse vectors.
fn sparse_cosine(a: &BTreeMap<String, f32>, b: &BTreeMap<String, f32>) -> f32 {
    let norm = |v: &BTreeMap<String, f32>| v.values().map(|w| w * w).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        return 0.0;
    }
    let dot: f32 = shared_products(sorted(a), sorted(b)).sum();
    dot / norms
}

fn sorted(v: &BTreeMap<String, f32>) -> impl Iterator<Item = (&str, f32)> {
    v.iter().map(|(t, w)| (t.as_str(), *w))
}

/// The products of the weights two term-sorted vectors share, in term order: one merge of the
/// two sequences, a string comparison per step where a tree lookup per term took several
/// (these comparisons dominated lexical assignment and consolidation).
fn shared_products<'a>(
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

/// Parses a cluster id back into its product and seq.
pub fn parse_cluster_id(id: &str) -> Option<(&str, u64)> {
    let (product, seq) = id.rsplit_once(':')?;
    Some((product, seq.parse().ok()?))
}

fn duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests;
