//! Drift: finding the part of a cluster that has become a different complaint.
//!
//! A leader clusterer's centroid moves as members join, so a cluster can chain from one
//! complaint into a neighbouring one, and later tickets of the neighbour keep joining it. The
//! sums cannot say which tickets those are, so each cluster keeps its latest members with their
//! features (`Cluster::recent`). At a consolidation round, a changed cluster whose sample is
//! spread out is cut in two with k-means (linfa, seeded per cluster, so a replay cuts the same
//! way). The cut counts only when the two sides are far apart and the side that would leave is
//! also far from everything else the cluster holds; then that side becomes a new cluster.
//!
//! Sides are compared by average linkage over sentence vectors when every sample has one, and
//! by the cosine of their sums over idf-free term vectors otherwise (off by default, see
//! `lexical_separation`). Plain functions, no state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use super::{vector, Cluster, Sample};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    pub enabled: bool,
    /// Latest members kept per cluster with their features (what a split can move; 0 keeps
    /// none and so never splits).
    pub sample: usize,
    /// Each side of a cut holds at least this many of the sample.
    pub min_side: usize,
    /// Sentence vectors: a sample whose mean pairwise cosine is at least this is one complaint
    /// and is not cut (the cheap test that spares most clusters the k-means). Two equal halves
    /// with nothing in common already reach ~0.47, so this sits well above that.
    pub spread: f32,
    /// Sentence vectors: the two sides, and the leaving side and the rest of the cluster, must
    /// be less alike than this (mean cosine over their pairs; keep it below the merge threshold
    /// so the next round does not merge them back). On banking77, 0.5 moved 50 tickets and
    /// raised NMI / ARI from 0.792 / 0.498 to 0.794 / 0.501; 0.53 moved 187 and lost ARI.
    pub separation: f32,
    /// Sentence vectors: the side that leaves must be one complaint itself, its mean pairwise
    /// cosine at least this (a diffuse cluster cut anywhere gives two diffuse halves).
    pub cohesion: f32,
    /// The same for term vectors, by the cosine of their sums (no spread test: single tickets
    /// share few terms); 0 never splits. Off by default: common words keep such sums alike
    /// (0.39 at the least on banking77), every cut made at 0.4 to 0.55 there lowered ARI, and
    /// the k-means over term vectors cost 70% more time per ticket at 1M tickets.
    pub lexical_separation: f32,
    /// Seeds the k-means (with the cluster's seq), so a replay cuts the same way.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            enabled: true,
            sample: 16,
            min_side: 5,
            spread: 0.6,
            separation: 0.5,
            cohesion: 0.55,
            lexical_separation: 0.0,
            seed: 0x5e71_00b5,
        }
    }
}

/// The samples (indexes into `cluster.recent`) that drifted away from the rest of the cluster,
/// if any did.
pub fn drifted(cluster: &Cluster, config: &SplitConfig) -> Option<Vec<usize>> {
    let n = cluster.recent.len();
    if !config.enabled || config.min_side == 0 || n < 2 * config.min_side {
        return None;
    }
    let dense = cluster.dense.is_some() && cluster.recent.iter().all(|s| s.dense.is_some());
    let threshold = if dense {
        config.separation
    } else {
        config.lexical_separation
    };
    if threshold <= 0.0 {
        return None;
    }
    let space = Space::of(cluster, dense);
    let points: Vec<Vec<f32>> = space.raw.iter().cloned().map(vector::unit).collect();
    if dense && mean_pairwise_cosine(&points) >= config.spread {
        return None;
    }
    let side = bisect(&points, config.seed ^ cluster.seq)?;
    let (one, other): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| side[*i]);
    if one.len() < config.min_side || other.len() < config.min_side {
        return None;
    }
    if space.similarity(
        &sum_of(&space.raw, &one),
        one.len(),
        &sum_of(&space.raw, &other),
        other.len(),
    ) >= threshold
    {
        return None;
    }
    let (away, sim) = leaving_side(cluster, &space, one, other);
    if sim >= threshold || (dense && side_cohesion(&points, &away) < config.cohesion) {
        return None;
    }
    Some(away)
}

/// The side less like the rest of the cluster, with that similarity. When the two are about as
/// unlike (the sample is the whole cluster), the newer side, so the cluster keeps the complaint
/// it was opened for.
fn leaving_side(
    cluster: &Cluster,
    space: &Space,
    one: Vec<usize>,
    other: Vec<usize>,
) -> (Vec<usize>, f32) {
    let sim_one = space.similarity_to_rest(&one);
    let sim_other = space.similarity_to_rest(&other);
    if (sim_one - sim_other).abs() <= TIE {
        let sim = sim_one.min(sim_other);
        if newest(cluster, &one) >= newest(cluster, &other) {
            (one, sim)
        } else {
            (other, sim)
        }
    } else if sim_one < sim_other {
        (one, sim_one)
    } else {
        (other, sim_other)
    }
}

/// Mean pairwise cosine within one side of a cut.
fn side_cohesion(points: &[Vec<f32>], members: &[usize]) -> f32 {
    let side: Vec<Vec<f32>> = members.iter().map(|i| points[*i].clone()).collect();
    mean_pairwise_cosine(&side)
}

/// Similarities closer than this are a tie (the sums are rounded differently).
const TIE: f32 = 1e-4;

/// The latest event time and ticket id among some samples.
fn newest<'a>(
    cluster: &'a Cluster,
    members: &[usize],
) -> Option<(chrono::DateTime<chrono::Utc>, &'a str)> {
    members
        .iter()
        .map(|i| (cluster.recent[*i].at, cluster.recent[*i].ticket_id.as_str()))
        .max()
}

/// A cluster's samples and whole sum in one vector space: sentence vectors when every sample
/// has one, else term weights over the sample's own vocabulary (sorted, so the layout is the
/// same on replay; the centroid's other terms are left out).
struct Space {
    dense: bool,
    /// Each sample as it was added to the sums.
    raw: Vec<Vec<f32>>,
    whole: Vec<f32>,
    size: usize,
}

impl Space {
    fn of(cluster: &Cluster, dense: bool) -> Space {
        let samples = &cluster.recent;
        if dense {
            return Space {
                dense,
                raw: samples.iter().filter_map(|s| s.dense.clone()).collect(),
                whole: cluster.dense.clone().unwrap_or_default(),
                size: cluster.size as usize,
            };
        }
        let vocabulary = vocabulary(samples);
        Space {
            dense: false,
            raw: samples
                .iter()
                .map(|s| spread_over(&vocabulary, &s.terms))
                .collect(),
            whole: spread_over(&vocabulary, &cluster.centroid),
            size: cluster.size as usize,
        }
    }

    /// How alike two groups of `na` and `nb` members with these sums are: the mean cosine over
    /// their pairs for sentence vectors (average linkage, as consolidation merges by), the
    /// cosine of the sums for terms.
    fn similarity(&self, a: &[f32], na: usize, b: &[f32], nb: usize) -> f32 {
        if self.dense {
            vector::dot(a, b) / (na * nb).max(1) as f32
        } else {
            vector::cosine(a, b)
        }
    }

    /// How alike some samples are to what the cluster holds besides them.
    fn similarity_to_rest(&self, members: &[usize]) -> f32 {
        let side = sum_of(&self.raw, members);
        let mut rest = self.whole.clone();
        vector::add_scaled(&mut rest, &side, -1.0);
        let others = self.size.saturating_sub(members.len());
        self.similarity(&rest, others, &side, members.len())
    }
}

/// Two groups by k-means (k = 2, k-means++ start, seeded): `true` marks one of them.
pub fn bisect(points: &[Vec<f32>], seed: u64) -> Option<Vec<bool>> {
    let dim = points.first()?.len();
    let flat: Vec<f64> = points
        .iter()
        .flat_map(|p| p.iter().map(|x| f64::from(*x)))
        .collect();
    let records = Array2::from_shape_vec((points.len(), dim), flat).ok()?;
    let dataset = DatasetBase::from(records);
    let model = KMeans::params_with_rng(2, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(3)
        .max_n_iterations(50)
        .fit(&dataset)
        .ok()?;
    let labels = model.predict(dataset.records());
    Some(labels.iter().map(|l| *l == 1).collect())
}

/// Mean cosine over distinct pairs of unit vectors, from their sum: |Σx|² = n + Σ_{i≠j} xᵢ·xⱼ.
pub fn mean_pairwise_cosine(points: &[Vec<f32>]) -> f32 {
    let n = points.len() as f32;
    if n < 2.0 {
        return 1.0;
    }
    let sum = sum_of(points, &(0..points.len()).collect::<Vec<_>>());
    (vector::dot(&sum, &sum) - n) / (n * (n - 1.0))
}

fn vocabulary(samples: &[Arc<Sample>]) -> BTreeMap<&str, usize> {
    let terms: BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.terms.keys().map(String::as_str))
        .collect();
    terms.into_iter().enumerate().map(|(i, t)| (t, i)).collect()
}

fn spread_over(vocabulary: &BTreeMap<&str, usize>, terms: &BTreeMap<String, f32>) -> Vec<f32> {
    let mut v = vec![0.0; vocabulary.len()];
    for (term, w) in terms {
        if let Some(i) = vocabulary.get(term.as_str()) {
            v[*i] = *w;
        }
    }
    v
}

fn sum_of(points: &[Vec<f32>], members: &[usize]) -> Vec<f32> {
    let mut sum = Vec::new();
    for i in members {
        vector::add_scaled(&mut sum, &points[*i], 1.0);
    }
    sum
}
