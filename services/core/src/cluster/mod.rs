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
mod assign;
mod config;
pub mod consolidate;
pub mod corrections;
pub mod drift;
mod index;
mod lexicon;
pub mod lsh;
mod rows;
mod similarity;
pub mod vector;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

use crate::text::TermVector;
pub use config::{ClusterConfig, Linkage};
pub use consolidate::ConsolidationConfig;
use lexicon::{Posting, TermIndex};
use lsh::Lsh;
use rows::Rows;

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
