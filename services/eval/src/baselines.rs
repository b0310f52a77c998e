//! Batch baselines: what a classic offline pipeline reaches on the same texts, so the online
//! clusterer's scores have something to be compared with.
//!
//! TF-IDF is built from the project's own analyzer (the features the online clusterer sees), not
//! from a separate tokenizer, so the comparison is about the clustering, not the words.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use linfa_nn::distance::Distance;
use linfa_reduction::Pca;
use ndarray::{Array1, Array2, ArrayView, Axis, Dimension};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use sevloop_core::text::Featurizer;

use crate::EvalError;

/// Parameters of [`tfidf_kmeans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineConfig {
    /// Number of clusters (usually the number of labels).
    pub k: usize,
    /// Seeds the k-means++ starts; equal seeds give equal assignments. (linfa's PCA seeds its
    /// own SVD with a fixed seed, so LSA is deterministic too.)
    pub seed: u64,
    /// Vocabulary cap: the `max_terms` terms with the highest document frequency.
    pub max_terms: usize,
    /// Reduce TF-IDF to this many dimensions (LSA) before k-means; `None` clusters raw TF-IDF.
    pub lsa_dims: Option<usize>,
}

/// k-means restarts, each from its own k-means++ seeding; the lowest-inertia run wins. sklearn
/// runs one (`n_init="auto"`), linfa ten; three steadies the result at a third of linfa's cost.
const KMEANS_RUNS: usize = 3;
const KMEANS_MAX_ITERATIONS: u64 = 300;
/// Stop when the centroids (all of them, as one matrix) move less than this.
const KMEANS_TOLERANCE: f64 = 1e-4;

/// TF-IDF over analysed terms → optional LSA to `lsa_dims` (rows re-normalised) → k-means with
/// `k`, seeded. Returns one cluster index (0..k) per text, in input order.
///
/// The matrix is dense (linfa works on dense arrays): texts × kept terms × 8 bytes, 320 MB for
/// 20,000 texts and 2,000 terms; PCA holds a centred copy as well.
pub fn tfidf_kmeans(texts: &[&str], config: &BaselineConfig) -> Result<Vec<usize>, EvalError> {
    check_config(texts.len(), config)?;
    let docs = featurize(texts);
    let vocabulary = vocabulary(&docs, config.max_terms);
    if vocabulary.is_empty() {
        return Err(EvalError::NoTerms { texts: texts.len() });
    }
    let tfidf = tfidf_matrix(&docs, &vocabulary);
    let records = match config.lsa_dims {
        Some(dims) => lsa(tfidf, dims)?,
        None => tfidf,
    };
    kmeans(records, config.k, config.seed)
}

fn check_config(texts: usize, config: &BaselineConfig) -> Result<(), EvalError> {
    if config.k == 0 || config.k > texts {
        return Err(EvalError::BadK { k: config.k, texts });
    }
    if config.max_terms == 0 {
        return Err(EvalError::ZeroMaxTerms);
    }
    Ok(())
}

/// Each text's terms with their sub-linear, L2-normalised term-frequency weight.
fn featurize(texts: &[&str]) -> Vec<BTreeMap<String, f32>> {
    let mut featurizer = Featurizer::default();
    texts
        .iter()
        .map(|text| featurizer.features(text, &[]).weights)
        .collect()
}

/// A kept term: its column in the matrix and its inverse document frequency.
struct Term {
    column: usize,
    idf: f64,
}

/// The `max_terms` terms that occur in most documents (ties broken by the term, so the choice is
/// deterministic), with sklearn's smooth idf: ln((1 + n) / (1 + df)) + 1.
fn vocabulary(docs: &[BTreeMap<String, f32>], max_terms: usize) -> BTreeMap<&str, Term> {
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in docs {
        for term in doc.keys() {
            *df.entry(term.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = df.into_iter().collect();
    ranked.sort_by_key(|&(term, df)| (Reverse(df), term));
    let n = docs.len() as f64;
    ranked
        .into_iter()
        .take(max_terms)
        .enumerate()
        .map(|(column, (term, df))| {
            let idf = ((1.0 + n) / (1.0 + df as f64)).ln() + 1.0;
            (term, Term { column, idf })
        })
        .collect()
}

/// Dense documents × terms matrix of tf × idf, rows L2-normalised (a text with no kept term
/// stays a zero row).
fn tfidf_matrix(docs: &[BTreeMap<String, f32>], vocabulary: &BTreeMap<&str, Term>) -> Array2<f64> {
    let mut matrix = Array2::zeros((docs.len(), vocabulary.len()));
    for (mut row, doc) in matrix.rows_mut().into_iter().zip(docs) {
        for (term, &tf) in doc {
            if let Some(t) = vocabulary.get(term.as_str()) {
                row[t.column] = f64::from(tf) * t.idf;
            }
        }
    }
    normalize_rows(&mut matrix);
    matrix
}

fn normalize_rows(matrix: &mut Array2<f64>) {
    for mut row in matrix.axis_iter_mut(Axis(0)) {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
}

/// Latent semantic analysis: project onto the top `dims` principal directions, then re-normalise
/// rows so k-means' Euclidean distance behaves like cosine again.
///
/// linfa's reduction is `linfa_reduction::Pca`: a truncated SVD (LOBPCG, pure Rust) of the
/// mean-centred matrix. sklearn's LSA is an uncentred TruncatedSVD; centring only drops the
/// direction of the mean, which says little about clusters. On the same terms, sklearn's
/// TruncatedSVD + KMeans and this scored on par (banking77 NMI 0.61 vs 0.59-0.60).
fn lsa(tfidf: Array2<f64>, dims: usize) -> Result<Array2<f64>, EvalError> {
    let (texts, terms) = tfidf.dim();
    if dims == 0 || dims >= terms || dims >= texts {
        return Err(EvalError::BadLsaDims { dims, terms, texts });
    }
    let dataset = DatasetBase::from(tfidf);
    let pca = Pca::params(dims)
        .fit(&dataset)
        .map_err(|source| EvalError::Reduction { dims, source })?;
    let mut reduced = pca.predict(dataset.records());
    normalize_rows(&mut reduced);
    Ok(reduced)
}

/// linfa k-means, [`KMEANS_RUNS`] times from seeded k-means++ starts; keeps the run with the
/// lowest inertia (the first on ties), so one seed always gives one answer.
fn kmeans(records: Array2<f64>, k: usize, seed: u64) -> Result<Vec<usize>, EvalError> {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let dataset = DatasetBase::from(records);
    let mut best = kmeans_run(&dataset, k, &mut rng)?;
    for _ in 1..KMEANS_RUNS {
        let model = kmeans_run(&dataset, k, &mut rng)?;
        if model.inertia() < best.inertia() {
            best = model;
        }
    }
    Ok(best.predict(dataset.records()).to_vec())
}

fn kmeans_run(
    dataset: &DatasetBase<Array2<f64>, Array1<()>>,
    k: usize,
    rng: &mut Xoshiro256Plus,
) -> Result<KMeans<f64, LanedL2>, EvalError> {
    let start = kmeans_plus_plus(dataset.records(), k, rng);
    // linfa's parameters need an rng even though precomputed centroids never use it.
    KMeans::params_with(k, rng.clone(), LanedL2)
        .n_runs(1)
        .max_n_iterations(KMEANS_MAX_ITERATIONS)
        .tolerance(KMEANS_TOLERANCE)
        .init_method(KMeansInit::Precomputed(start))
        .fit(dataset)
        .map_err(|source| EvalError::KMeans { k, source })
}

/// k-means++ seeding (Arthur and Vassilvitskii 2007): the first centre uniformly at random, each
/// next one with probability proportional to its squared distance to the nearest centre so far.
///
/// linfa has this too (`KMeansInit::KMeansPlusPlus`), but at every step it measures each point
/// against *all* centres chosen so far: k²/2 passes over the data, which on raw TF-IDF (k = 77,
/// ~2,000 dense columns) took 15 s per run, far more than k-means itself. Keeping each point's
/// nearest distance and measuring only the newest centre needs k passes.
fn kmeans_plus_plus(records: &Array2<f64>, k: usize, rng: &mut Xoshiro256Plus) -> Array2<f64> {
    let mut centroids = Array2::zeros((k, records.ncols()));
    let mut nearest = vec![f64::INFINITY; records.nrows()];
    let mut chosen = weighted_index(&vec![1.0; records.nrows()], rng);
    for c in 0..k {
        let centre = records.row(chosen);
        centroids.row_mut(c).assign(&centre);
        for (d, row) in nearest.iter_mut().zip(records.rows()) {
            *d = d.min(LanedL2.rdistance(row, centre));
        }
        chosen = weighted_index(&nearest, rng);
    }
    centroids
}

/// An index drawn with probability proportional to `weights` (uniformly if they are all zero,
/// which happens when there are fewer distinct points than clusters).
fn weighted_index(weights: &[f64], rng: &mut Xoshiro256Plus) -> usize {
    // The top 53 bits of the generator as a uniform number in [0, 1).
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return ((unit * weights.len() as f64) as usize).min(weights.len() - 1);
    }
    let target = unit * total;
    let mut cumulative = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        cumulative += w;
        if cumulative > target {
            return i;
        }
    }
    // Rounding can leave the target just above the last sum: take the last point with weight.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// Euclidean distance, as linfa's `L2Dist`, but summed in [`LANES`] independent accumulators.
///
/// linfa's `L2Dist` adds one element at a time into one sum, so every addition waits for the
/// previous one and the compiler may not vectorise it (that would reorder float additions).
/// k-means spends nearly all its time here: on raw banking77 TF-IDF (1,642 columns) this version
/// made k-means 2.6 times faster (286 s to 111 s, before the k-means++ change above). The order of additions is fixed, so results stay deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LanedL2;

const LANES: usize = 8;

impl Distance<f64> for LanedL2 {
    fn distance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        self.rdistance(a, b).sqrt()
    }

    /// Squared distance: orders points like the distance, without the square root.
    fn rdistance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        assert_eq!(
            a.shape(),
            b.shape(),
            "distance between points of different dimensions"
        );
        match (a.as_slice(), b.as_slice()) {
            (Some(a), Some(b)) => squared_distance(a, b),
            // Views that are not contiguous (linfa passes rows of standard-layout arrays, so
            // this is only a fallback).
            _ => a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum(),
        }
    }

    fn rdist_to_dist(&self, rdist: f64) -> f64 {
        rdist.sqrt()
    }

    fn dist_to_rdist(&self, dist: f64) -> f64 {
        dist * dist
    }
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            lanes[i] += d * d;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn laned_distance_agrees_with_the_plain_sum() {
        let a: Vec<f64> = (0..21).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..21).map(|i| (i as f64 * 0.11).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((squared_distance(&a, &b) - plain).abs() < 1e-12);
        let m = array![[1.0, 2.0], [4.0, 6.0]];
        assert_eq!(LanedL2.distance(m.row(0), m.row(1)), 5.0);
        // A column is not contiguous: the fallback gives the same answer.
        assert_eq!(LanedL2.rdistance(m.column(0), m.column(1)), 1.0 + 4.0);
    }

    #[test]
    fn vocabulary_keeps_the_most_frequent_terms_ties_by_term() {
        let docs: Vec<BTreeMap<String, f32>> = [&["b", "a"][..], &["b", "c"], &["c", "b"]]
            .iter()
            .map(|terms| terms.iter().map(|t| (t.to_string(), 1.0)).collect())
            .collect();
        let vocabulary = vocabulary(&docs, 2);
        let columns: Vec<(&str, usize)> = vocabulary.iter().map(|(t, v)| (*t, v.column)).collect();
        assert_eq!(columns, vec![("b", 0), ("c", 1)]);
        // sklearn's smooth idf: ln((1 + 3) / (1 + 3)) + 1 for a term in every document.
        assert_eq!(vocabulary["b"].idf, 1.0);
    }
}
