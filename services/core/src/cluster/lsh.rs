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

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LshConfig {
    pub tables: usize,
    /// Bits per table key, at most [`MAX_BITS`]: each table is an array of `2^bits` buckets.
    #[serde(deserialize_with = "bits_in_range")]
    pub bits: usize,
    pub seed: u64,
}

/// The most bits a table key may have: 65,536 buckets a table (1.5 MB of bucket headers). Ten,
/// the default, gives 1,024 a table (24 KB), about one per cluster of a busy product.
pub const MAX_BITS: usize = 16;

fn bits_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let bits = usize::deserialize(d)?;
    if (1..=MAX_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(serde::de::Error::custom(format!(
            "lsh bits must be between 1 and {MAX_BITS}, got {bits}"
        )))
    }
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
    /// Every table's buckets, table after table, `2^bits` each, indexed by key: the clusters in
    /// each, by seq. A lookup (eleven per table per ticket) is an index, not a hash probe, and
    /// a bucket (a few clusters) is a sorted vector, not a tree.
    buckets: Vec<Vec<u64>>,
    /// Each cluster's current key per table, to move it when its centroid changes.
    keys: HashMap<u64, Vec<u32>>,
}

impl Lsh {
    pub fn new(mut config: LshConfig, dim: usize) -> Self {
        // Settings files are checked for this range when read; a config built in code is held
        // to it here.
        config.bits = config.bits.clamp(1, MAX_BITS);
        let mut rng = SplitMix64(config.seed);
        let planes = (0..config.tables * config.bits * dim)
            .map(|_| rng.gaussian())
            .collect();
        Lsh {
            buckets: vec![Vec::new(); config.tables << config.bits],
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
        super::vector::dots(self.planes.chunks_exact(self.dim), v)
    }

    /// Files (or refiles) a cluster under the buckets of its projections.
    pub fn insert(&mut self, seq: u64, projections: &[f32]) {
        let keys = self.keys_of(projections);
        if self.keys.get(&seq) == Some(&keys) {
            return;
        }
        self.remove(seq);
        for (table, key) in keys.iter().enumerate() {
            let slot = self.slot(table, *key);
            let bucket = &mut self.buckets[slot];
            if let Err(at) = bucket.binary_search(&seq) {
                bucket.insert(at, seq);
            }
        }
        self.keys.insert(seq, keys);
    }

    pub fn remove(&mut self, seq: u64) {
        let Some(keys) = self.keys.remove(&seq) else {
            return;
        };
        for (table, key) in keys.iter().enumerate() {
            let slot = self.slot(table, *key);
            let bucket = &mut self.buckets[slot];
            if let Ok(at) = bucket.binary_search(&seq) {
                bucket.remove(at);
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
                for seq in &self.buckets[self.slot(table, key)] {
                    if !super::insert_capped(&mut out, *seq, max) {
                        return out;
                    }
                }
            }
        }
        out
    }

    fn slot(&self, table: usize, key: u32) -> usize {
        (table << self.config.bits) | key as usize
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
    fn bits_outside_the_table_range_are_refused_by_name() {
        for bad in ["bits = 0", "bits = 40"] {
            let err = toml::from_str::<LshConfig>(bad).unwrap_err().to_string();
            assert!(err.contains("lsh bits must be between 1 and 16"), "{err}");
        }
        let ok: LshConfig = toml::from_str("bits = 16").unwrap();
        assert_eq!(ok.bits, 16);
    }

    #[test]
    fn the_same_seed_gives_the_same_hyperplanes() {
        let a = Lsh::new(LshConfig::default(), 16);
        let b = Lsh::new(LshConfig::default(), 16);
        assert_eq!(a.planes, b.planes);
    }
}
