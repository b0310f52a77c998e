//! The vector sums of the live clusters and aliases, copied into one contiguous block with their
//! norms, for scoring candidates.
//!
//! Scoring is the clustering's hottest loop (up to `max_candidates` dot products a ticket), and
//! it was bound by memory, not arithmetic: each candidate cost a walk to its `Cluster`, a probe
//! of a norm map and a jump to a separately allocated sum. Here a candidate is one small map
//! probe and one run of consecutive floats. The copies are refreshed wherever a sum changes
//! (where its LSH buckets are), and hold the same floats, so the same similarities come out, bit
//! for bit.

use foldhash::HashMap;

use super::vector;

#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Floats per row: the first sum filed sets it; sums of another length are not filed.
    dim: usize,
    /// `dim` floats per slot.
    sums: Vec<f32>,
    norms: Vec<f32>,
    slots: HashMap<u64, Slot>,
    free: Vec<usize>,
}

/// What a row stands for: scoring a live cluster's row needs nothing else, an alias's leads on
/// to the cluster it was merged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Alias,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: usize,
    kind: Kind,
}

impl Rows {
    /// Files (or refreshes) the sum of cluster or alias `seq`.
    pub fn set(&mut self, seq: u64, sum: &[f32], kind: Kind) {
        if self.dim == 0 {
            self.dim = sum.len();
        }
        if sum.len() != self.dim || sum.is_empty() {
            self.remove(seq);
            return;
        }
        let index = match self.slots.get(&seq) {
            Some(slot) => slot.index,
            None => self.claim(),
        };
        self.slots.insert(seq, Slot { index, kind });
        self.sums[index * self.dim..(index + 1) * self.dim].copy_from_slice(sum);
        self.norms[index] = vector::norm(sum);
    }

    pub fn remove(&mut self, seq: u64) {
        if let Some(slot) = self.slots.remove(&seq) {
            self.free.push(slot.index);
        }
    }

    /// [`Rows::cosine`] for each of `seqs`, in order, with what each row stands for: one probe
    /// per candidate and its dot computed four at a time ([`vector::dots`]), the same bits.
    pub fn cosines(&self, seqs: &[u64], v: &[f32]) -> Vec<Option<(f32, Kind)>> {
        let mut out = vec![None; seqs.len()];
        if v.len() != self.dim {
            return out;
        }
        let filed: Vec<(usize, Slot)> = seqs
            .iter()
            .enumerate()
            .filter_map(|(i, seq)| Some((i, *self.slots.get(seq)?)))
            .collect();
        let dots = vector::dots(filed.iter().map(|(_, slot)| self.row(slot.index)), v);
        for ((i, slot), dot) in filed.into_iter().zip(dots) {
            out[i] = Some((self.scaled(dot, slot.index), slot.kind));
        }
        out
    }

    /// Cosine of `v` to the centroid (the sum's direction) of `seq`: None when `seq` has no row
    /// or `v` is of another length.
    pub fn cosine(&self, seq: u64, v: &[f32]) -> Option<f32> {
        if v.len() != self.dim {
            return None;
        }
        let index = self.slots.get(&seq)?.index;
        Some(self.scaled(vector::dot(self.row(index), v), index))
    }

    fn row(&self, slot: usize) -> &[f32] {
        &self.sums[slot * self.dim..(slot + 1) * self.dim]
    }

    fn scaled(&self, dot: f32, slot: usize) -> f32 {
        let norm = self.norms[slot];
        if norm == 0.0 {
            0.0
        } else {
            dot / norm
        }
    }

    fn claim(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.sums.resize(self.sums.len() + self.dim, 0.0);
            self.norms.push(0.0);
            self.norms.len() - 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_scores_as_its_sum_does_and_slots_are_reused() {
        let mut rows = Rows::default();
        let (a, b, v) = ([3.0, 4.0], [1.0, 0.0], [0.6, 0.8]);
        rows.set(1, &a, Kind::Cluster);
        rows.set(2, &b, Kind::Alias);
        let expected = vector::dot(&a, &v) / vector::norm(&a);
        assert_eq!(
            rows.cosine(1, &v).map(f32::to_bits),
            Some(expected.to_bits())
        );
        rows.remove(1);
        assert_eq!(rows.cosine(1, &v), None);
        rows.set(3, &[0.0, 2.0], Kind::Cluster);
        assert_eq!(rows.norms.len(), 2, "the freed slot is taken again");
        assert_eq!(rows.cosine(3, &v), Some(0.8));
        assert_eq!(rows.cosine(2, &v), Some(0.6));
        assert_eq!(
            rows.cosines(&[2, 1, 3], &v),
            vec![Some((0.6, Kind::Alias)), None, Some((0.8, Kind::Cluster))]
        );
        assert_eq!(
            rows.cosines(&[2, 3], &[1.0]),
            vec![None, None],
            "another length"
        );
    }

    #[test]
    fn zero_sums_and_other_lengths_score_nothing_wrong() {
        let mut rows = Rows::default();
        rows.set(1, &[0.0, 0.0], Kind::Cluster);
        assert_eq!(rows.cosine(1, &[1.0, 0.0]), Some(0.0));
        assert_eq!(rows.cosine(1, &[1.0, 0.0, 0.0]), None);
        rows.set(2, &[1.0, 0.0, 0.0], Kind::Cluster);
        assert_eq!(
            rows.cosine(2, &[1.0, 0.0, 0.0]),
            None,
            "not filed: another length"
        );
        rows.set(1, &[1.0], Kind::Cluster);
        assert_eq!(
            rows.cosine(1, &[1.0, 0.0]),
            None,
            "refiled with another length: dropped"
        );
    }
}
