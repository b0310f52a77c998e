//! External clustering scores against known labels, defined as in scikit-learn (natural log,
//! computed from the contingency table), including its answers for degenerate partitions.

use std::collections::BTreeMap;

use crate::EvalError;

/// How well a partition matches the labels. `clusters` and `labels` count the distinct values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Normalised mutual information, arithmetic-mean normalisation (sklearn's default).
    pub nmi: f64,
    /// Adjusted Rand index: 0 for chance, 1 for identical partitions, can be negative.
    pub ari: f64,
    /// Each cluster holds only one label (1.0) or a mix (towards 0).
    pub homogeneity: f64,
    /// Each label lands in only one cluster (1.0) or is spread (towards 0).
    pub completeness: f64,
    pub clusters: usize,
    pub labels: usize,
}

/// Scores `predicted` against `truth`; `truth[i]` and `predicted[i]` belong to item i.
pub fn score<T: Ord, P: Ord>(truth: &[T], predicted: &[P]) -> Result<Scores, EvalError> {
    if truth.len() != predicted.len() {
        return Err(EvalError::LengthMismatch {
            truth: truth.len(),
            predicted: predicted.len(),
        });
    }
    if truth.is_empty() {
        return Err(EvalError::Empty);
    }
    let table = Contingency::new(truth, predicted);
    let (homogeneity, completeness) = table.homogeneity_completeness();
    Ok(Scores {
        nmi: table.nmi(),
        ari: table.ari(),
        homogeneity,
        completeness,
        clusters: table.cluster_sizes.len(),
        labels: table.label_sizes.len(),
    })
}

/// The contingency table in sparse form: only non-zero cells, in a fixed order so that sums (and
/// therefore the last bits of every score) do not depend on hashing.
struct Contingency {
    n: u64,
    label_sizes: Vec<u64>,
    cluster_sizes: Vec<u64>,
    /// (label index, cluster index, count), count > 0.
    cells: Vec<(usize, usize, u64)>,
}

impl Contingency {
    fn new<T: Ord, P: Ord>(truth: &[T], predicted: &[P]) -> Self {
        let (labels, label_count) = dense_ids(truth);
        let (clusters, cluster_count) = dense_ids(predicted);
        let mut cells: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        let mut label_sizes = vec![0; label_count];
        let mut cluster_sizes = vec![0; cluster_count];
        for (&l, &c) in labels.iter().zip(&clusters) {
            *cells.entry((l, c)).or_default() += 1;
            label_sizes[l] += 1;
            cluster_sizes[c] += 1;
        }
        Contingency {
            n: truth.len() as u64,
            label_sizes,
            cluster_sizes,
            cells: cells.into_iter().map(|((l, c), n)| (l, c, n)).collect(),
        }
    }

    /// Mutual information in nats, as sklearn's `mutual_info_score`: exactly 0 when either side
    /// has a single value, tiny terms flushed to 0, the sum clipped at 0.
    fn mutual_information(&self) -> f64 {
        if self.label_sizes.len() == 1 || self.cluster_sizes.len() == 1 {
            return 0.0;
        }
        let n = self.n as f64;
        let mi: f64 = self
            .cells
            .iter()
            .map(|&(l, c, count)| {
                let p = count as f64 / n;
                let outer = (self.label_sizes[l] as f64).ln() + (self.cluster_sizes[c] as f64).ln();
                let term = p * ((count as f64).ln() + n.ln() - outer);
                if term.abs() < f64::EPSILON {
                    0.0
                } else {
                    term
                }
            })
            .sum();
        mi.max(0.0)
    }

    /// sklearn's `normalized_mutual_info_score` with `average_method="arithmetic"`.
    fn nmi(&self) -> f64 {
        // Neither side splits the data: both have zero entropy, a perfect match.
        if self.label_sizes.len() == 1 && self.cluster_sizes.len() == 1 {
            return 1.0;
        }
        let mi = self.mutual_information();
        if mi == 0.0 {
            return 0.0;
        }
        let mean_entropy = (entropy(&self.label_sizes) + entropy(&self.cluster_sizes)) / 2.0;
        unit(mi / mean_entropy.max(f64::EPSILON))
    }

    /// sklearn's `homogeneity_completeness_v_measure`: a side with zero entropy scores 1.0.
    fn homogeneity_completeness(&self) -> (f64, f64) {
        let mi = self.mutual_information();
        let ratio = |h: f64| if h == 0.0 { 1.0 } else { unit(mi / h) };
        (
            ratio(entropy(&self.label_sizes)),
            ratio(entropy(&self.cluster_sizes)),
        )
    }

    /// sklearn's `adjusted_rand_score` from the pair confusion matrix (ordered pairs, as sklearn
    /// counts them). Integer arithmetic in i128 keeps it exact and exactly symmetric.
    fn ari(&self) -> f64 {
        let n = i128::from(self.n);
        let sum_squares: i128 = self.cells.iter().map(|c| sq(c.2)).sum();
        let with_cluster_sizes: i128 = self
            .cells
            .iter()
            .map(|&(_, c, count)| i128::from(count) * i128::from(self.cluster_sizes[c]))
            .sum();
        let with_label_sizes: i128 = self
            .cells
            .iter()
            .map(|&(l, _, count)| i128::from(count) * i128::from(self.label_sizes[l]))
            .sum();
        let tp = sum_squares - n;
        let fp = with_cluster_sizes - sum_squares;
        let fn_ = with_label_sizes - sum_squares;
        let tn = n * n - fp - fn_ - sum_squares;
        // No pair on which the two partitions disagree (this includes all-singletons on both sides).
        if fn_ == 0 && fp == 0 {
            return 1.0;
        }
        let numerator = 2 * (tp * tn - fn_ * fp);
        let denominator = (tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn);
        numerator as f64 / denominator as f64
    }
}

/// Maps values to 0.. in sorted order, so ids are independent of the order items arrive in.
fn dense_ids<T: Ord>(values: &[T]) -> (Vec<usize>, usize) {
    let mut ids: BTreeMap<&T, usize> = values.iter().map(|v| (v, 0)).collect();
    for (i, id) in ids.values_mut().enumerate() {
        *id = i;
    }
    let dense = values.iter().map(|v| ids[v]).collect();
    (dense, ids.len())
}

/// Shannon entropy in nats of a partition given its block sizes (sklearn's `entropy`).
fn entropy(sizes: &[u64]) -> f64 {
    let total = sizes.iter().sum::<u64>() as f64;
    if sizes.len() <= 1 || total == 0.0 {
        return 0.0;
    }
    -sizes
        .iter()
        .map(|&s| {
            let s = s as f64;
            (s / total) * (s.ln() - total.ln())
        })
        .sum::<f64>()
}

fn sq(x: u64) -> i128 {
    i128::from(x) * i128::from(x)
}

/// Ratios of MI to an entropy can land a rounding error outside [0, 1]; the scores cannot.
fn unit(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOL: f64 = 1e-12;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < TOL
    }

    /// Expected values are sklearn 1.9.1's outputs for the same inputs
    /// (nmi, ari, homogeneity, completeness).
    fn check(truth: &[u32], predicted: &[u32], expected: [f64; 4]) {
        let s = score(truth, predicted).expect("valid input");
        let got = [s.nmi, s.ari, s.homogeneity, s.completeness];
        for (name, (g, e)) in ["nmi", "ari", "homogeneity", "completeness"]
            .iter()
            .zip(got.iter().zip(expected))
        {
            assert!(
                close(*g, e),
                "{name} of {truth:?} vs {predicted:?}: got {g}, sklearn says {e}"
            );
        }
    }

    #[test]
    fn sklearn_docstring_example_splitting_a_class() {
        // adjusted_rand_score([0,0,1,1],[0,0,1,2]) ≈ 0.57 in sklearn's docs.
        check(
            &[0, 0, 1, 1],
            &[0, 0, 1, 2],
            [0.8, 0.5714285714285714, 1.0, 2.0 / 3.0],
        );
        check(
            &[0, 0, 1, 2],
            &[0, 0, 1, 1],
            [0.8, 0.5714285714285714, 2.0 / 3.0, 1.0],
        );
    }

    #[test]
    fn mixed_partitions_match_sklearn() {
        check(
            &[0, 0, 1, 1, 2, 2],
            &[0, 0, 1, 2, 2, 2],
            [
                0.7396673768007592,
                0.4444444444444444,
                0.7103099178571525,
                0.7715561736794712,
            ],
        );
        check(
            &[0, 0, 0, 1, 1, 1],
            &[0, 0, 1, 1, 2, 2],
            [
                0.5158037429793889,
                0.24242424242424243,
                0.6666666666666669,
                0.420619835714305,
            ],
        );
        check(
            &[0, 1, 2, 0, 3, 4, 5, 1],
            &[1, 1, 0, 0, 2, 2, 2, 2],
            [0.5, -0.12903225806451613, 0.4, 2.0 / 3.0],
        );
    }

    #[test]
    fn independent_partitions_score_zero_and_ari_can_go_negative() {
        check(&[0, 0, 1, 1], &[0, 1, 0, 1], [0.0, -0.5, 0.0, 0.0]);
    }

    #[test]
    fn degenerate_partitions_follow_sklearn() {
        // One cluster and one label: nothing is split, a perfect match.
        check(&[0, 0, 0], &[0, 0, 0], [1.0, 1.0, 1.0, 1.0]);
        check(&[5], &[7], [1.0, 1.0, 1.0, 1.0]);
        // All singletons vs one block: homogeneous but not complete, or the reverse.
        check(&[0, 0, 0, 0], &[0, 1, 2, 3], [0.0, 0.0, 1.0, 0.0]);
        check(&[0, 1, 2, 3], &[0, 0, 0, 0], [0.0, 0.0, 0.0, 1.0]);
        // All singletons on both sides: no pair disagrees.
        check(&[0, 1], &[0, 1], [1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn relabelled_identical_partition_is_perfect_and_counts_are_reported() {
        let s = score(&["a", "a", "b", "c"], &[9, 9, 4, 1]).expect("valid input");
        assert_eq!(
            (s.nmi, s.ari, s.homogeneity, s.completeness),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!((s.labels, s.clusters), (3, 3));
    }

    #[test]
    fn length_mismatch_names_both_lengths() {
        let err = score(&[1, 2, 3], &[1, 2]).expect_err("lengths differ");
        let message = err.to_string();
        assert!(message.contains('3') && message.contains('2'), "{message}");
        assert!(matches!(
            err,
            EvalError::LengthMismatch {
                truth: 3,
                predicted: 2
            }
        ));
    }

    #[test]
    fn empty_input_is_an_error() {
        let none: [u8; 0] = [];
        assert!(matches!(score(&none, &none), Err(EvalError::Empty)));
    }

    /// Two partitions of the same items, each with up to 6 blocks.
    fn two_partitions() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (1usize..60).prop_flat_map(|n| {
            (
                proptest::collection::vec(0u8..6, n),
                proptest::collection::vec(0u8..6, n),
            )
        })
    }

    proptest! {
        #[test]
        fn scores_are_in_range((a, b) in two_partitions()) {
            let s = score(&a, &b).expect("valid input");
            for v in [s.nmi, s.homogeneity, s.completeness] {
                prop_assert!((0.0..=1.0).contains(&v), "{s:?}");
            }
            prop_assert!((-1.0..=1.0).contains(&s.ari), "{s:?}");
        }

        #[test]
        fn nmi_and_ari_are_symmetric((a, b) in two_partitions()) {
            let ab = score(&a, &b).expect("valid input");
            let ba = score(&b, &a).expect("valid input");
            prop_assert!(close(ab.nmi, ba.nmi), "{ab:?} {ba:?}");
            prop_assert_eq!(ab.ari, ba.ari);
            prop_assert!(close(ab.homogeneity, ba.completeness), "{ab:?} {ba:?}");
            prop_assert!(close(ab.completeness, ba.homogeneity), "{ab:?} {ba:?}");
        }

        #[test]
        fn relabelling_a_partition_scores_perfectly(
            a in proptest::collection::vec(0u8..6, 1..60),
            shift in 1u8..250,
        ) {
            // An injective relabelling (a bijection on the values used) with a different type.
            let b: Vec<u16> = a.iter().map(|&x| u16::from(x) * 7 + u16::from(shift)).collect();
            let s = score(&a, &b).expect("valid input");
            prop_assert!(close(s.nmi, 1.0), "{s:?}");
            prop_assert!(close(s.ari, 1.0), "{s:?}");
            prop_assert!(close(s.homogeneity, 1.0), "{s:?}");
            prop_assert!(close(s.completeness, 1.0), "{s:?}");
        }
    }
}
