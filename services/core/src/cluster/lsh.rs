//! Candidate retrieval for semantic features: random-hyperplane LSH (SimHash).
//!
//! Each table hashes a vector to `bits` signs of projections onto seeded random hyperplanes; two
//! vectors at angle θ agree on a bit with probability 1 − θ/π, so close centroids share a bucket
//! in some table. Lookups also probe the buckets one bit away, which lifts recall at moderate
//! similarity without more tables. The work per lookup is fixed by `tables × bits`, and
//! candidates are capped, so the cost per ticket does not grow with the number of clusters.
//!
//! A cluster's projections are kept with it and updated by adding the new member's projections
//! (projection is linear), so a centroid's buckets stay current for the cost of a few adds, and a
//! restored cluster hashes exactly as before the restart.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LshConfig {
    pub tables: usize,
    pub bits: usize,
    pub seed: u64,
}

impl Default for LshConfig {
    fn default() -> Self {
        LshConfig {
            tables: 8,
            bits: 10,
            seed: 0x5e71_00b5,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lsh {
    config: LshConfig,
    dim: usize,
    /// `tables × bits` hyperplanes, each `dim` long, row-major.
    planes: Vec<f32>,
    /// Per table: bucket key → clusters in it.
    buckets: Vec<HashMap<u32, BTreeSet<u64>>>,
    /// Each cluster's current key per table, to move it when its centroid changes.
    keys: HashMap<u64, Vec<u32>>,
}

impl Lsh {
    pub fn new(config: LshConfig, dim: usize) -> Self {
        let mut rng = SplitMix64(config.seed);
        let planes = (0..config.tables * config.bits * dim)
            .map(|_| rng.gaussian())
            .collect();
        Lsh {
            buckets: vec![HashMap::new(); config.tables],
            keys: HashMap::new(),
            config,
            dim,
            planes,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many projections [`Lsh::project`] returns.
    pub fn project_len(&self) -> usize {
        self.config.tables * self.config.bits
    }

    /// Projections of `v` onto every hyperplane (`tables × bits` values).
    pub fn project(&self, v: &[f32]) -> Vec<f32> {
        self.planes
            .chunks_exact(self.dim)
            .map(|plane| super::vector::dot(plane, v))
            .collect()
    }

    /// Files (or refiles) a cluster under the buckets of its projections.
    pub fn insert(&mut self, seq: u64, projections: &[f32]) {
        let keys = self.keys_of(projections);
        if self.keys.get(&seq) == Some(&keys) {
            return;
        }
        self.remove(seq);
        for (table, key) in keys.iter().enumerate() {
            self.buckets[table].entry(*key).or_default().insert(seq);
        }
        self.keys.insert(seq, keys);
    }

    pub fn remove(&mut self, seq: u64) {
        let Some(keys) = self.keys.remove(&seq) else {
            return;
        };
        for (table, key) in keys.iter().enumerate() {
            if let Some(set) = self.buckets[table].get_mut(key) {
                set.remove(&seq);
                if set.is_empty() {
                    self.buckets[table].remove(key);
                }
            }
        }
    }

    /// Clusters sharing a bucket with `projections` in some table, exact buckets first, then
    /// buckets one bit away; at most `max` of them, by seq.
    pub fn candidates(&self, projections: &[f32], max: usize) -> Vec<u64> {
        let keys = self.keys_of(projections);
        let mut out = Vec::with_capacity(max);
        let probes = std::iter::once(None).chain((0..self.config.bits).map(Some));
        for flip in probes {
            for (table, key) in keys.iter().enumerate() {
                let key = flip.map_or(*key, |bit| key ^ (1 << bit));
                for seq in self.buckets[table].get(&key).into_iter().flatten() {
                    if !super::insert_capped(&mut out, *seq, max) {
                        return out;
                    }
                }
            }
        }
        out
    }

    fn keys_of(&self, projections: &[f32]) -> Vec<u32> {
        projections
            .chunks_exact(self.config.bits)
            .map(|signs| {
                signs
                    .iter()
                    .enumerate()
                    .fold(0u32, |key, (i, p)| key | (u32::from(*p > 0.0) << i))
            })
            .collect()
    }
}

/// SplitMix64: a tiny, well-known seeded generator, enough for fixed random hyperplanes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal by Box–Muller: Gaussian hyperplanes have uniformly random directions.
    fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::vector::unit;

    #[test]
    fn a_vector_finds_itself_and_a_close_neighbour_but_candidates_are_capped() {
        let mut lsh = Lsh::new(LshConfig::default(), 4);
        let a = unit(vec![1.0, 0.2, 0.0, 0.1]);
        let near = unit(vec![1.0, 0.25, 0.05, 0.1]);
        lsh.insert(1, &lsh.project(&a));
        assert!(lsh.candidates(&lsh.project(&near), 10).contains(&1));
        for seq in 2..50 {
            lsh.insert(seq, &lsh.project(&a));
        }
        let capped = lsh.candidates(&lsh.project(&a), 10);
        assert_eq!(capped.len(), 10);
        assert!(capped.windows(2).all(|w| w[0] < w[1]), "{capped:?}");
    }

    #[test]
    fn removed_clusters_are_no_longer_candidates() {
        let mut lsh = Lsh::new(LshConfig::default(), 3);
        let a = unit(vec![0.3, 0.4, 0.5]);
        lsh.insert(7, &lsh.project(&a));
        lsh.remove(7);
        assert!(lsh.candidates(&lsh.project(&a), 10).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_hyperplanes() {
        let a = Lsh::new(LshConfig::default(), 16);
        let b = Lsh::new(LshConfig::default(), 16);
        assert_eq!(a.planes, b.planes);
    }
}
