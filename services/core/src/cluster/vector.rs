//! Dense vector arithmetic for semantic features. Plain loops over slices: the compiler
//! vectorises them, and the summation order is fixed, so results are bit-for-bit repeatable.
//! The loops are also compiled for AVX2 and picked at run time where the CPU has it: twice the
//! lanes per instruction, the same operations in the same order (no fused multiply-add, which
//! Rust never contracts to), so the same bits either way. [`dots`], the scoring kernel, is
//! written with AVX intrinsics to the same rule.

use half::slice::HalfFloatSliceExt;
use multiversion::multiversion;

/// Sixteen independent partial sums, added up in a fixed order at the end: the compiler keeps
/// them in four SIMD registers (a single running sum cannot be reordered, so it would not
/// vectorise), and the result is still the same on every run. A plain sum of the lanes
/// vectorises best: a pairwise tree made LLVM use two-lane registers, half the throughput.
#[multiversion(targets("x86_64+avx2"))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for (lane, (p, q)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *lane += p * q;
        }
    }
    finish(&lanes, ta, tb)
}

/// The end of a dot product, shared by [`dot`] and `avx::dot4` so both give the same bits: the
/// lanes summed in order, plus the tail that did not fill a chunk of lanes.
#[inline]
fn finish(lanes: &[f32; 16], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `dot(row, b)` for each row, in order, bit for bit as [`dot`] gives it. One dot waits on its
/// own additions (each lane's chain, then the sequential sum of the lanes); with AVX, four rows
/// go at once (`avx::dot4`), so that four independent chains fill those waits.
pub fn dots<'a>(rows: impl IntoIterator<Item = &'a [f32]>, b: &[f32]) -> Vec<f32> {
    let rows: Vec<&[f32]> = rows.into_iter().collect();
    let mut out = Vec::with_capacity(rows.len());
    // Rows left to score one at a time: all of them without AVX, the last few with it.
    let rest = 'fours: {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            let (fours, left) = rows.as_chunks::<4>();
            for four in fours {
                // SAFETY: the CPU has AVX (checked above).
                out.extend(unsafe { avx::dot4(*four, b) });
            }
            break 'fours left;
        }
        rows.as_slice()
    };
    out.extend(rest.iter().map(|row| dot(row, b)));
    out
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };

    /// Four of [`super::dot`] at once, written with intrinsics: with plain loops LLVM
    /// vectorised across the four rows instead of along them (three times slower than four
    /// single dots, and other bits). Each row's sixteen lanes are two 8-float registers, filled
    /// in the same order as `dot` fills them, multiplied and added separately (no fused
    /// multiply-add), and summed the same way at the end, so the bits are `dot`'s.
    #[target_feature(enable = "avx")]
    pub(super) fn dot4(rows: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
        if rows.iter().any(|r| r.len() != b.len()) {
            return rows.map(|r| super::dot(r, b));
        }
        let whole = b.len() / 16 * 16;
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        for at in (0..whole).step_by(16) {
            // SAFETY: `at + 16 <= whole <= b.len()`, and every row is as long as `b`.
            let load =
                |v: &[f32], half: usize| unsafe { _mm256_loadu_ps(v.as_ptr().add(at + 8 * half)) };
            let y = [load(b, 0), load(b, 1)];
            for (sums, row) in acc.iter_mut().zip(rows) {
                for (half, sum) in sums.iter_mut().enumerate() {
                    *sum = _mm256_add_ps(*sum, _mm256_mul_ps(load(row, half), y[half]));
                }
            }
        }
        std::array::from_fn(|k| super::finish(&lanes(acc[k]), &rows[k][whole..], &b[whole..]))
    }

    #[target_feature(enable = "avx")]
    fn lanes(sums: [__m256; 2]) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        let (low, high) = out.split_at_mut(8);
        // SAFETY: each half holds exactly the 8 floats a store writes.
        unsafe {
            _mm256_storeu_ps(low.as_mut_ptr(), sums[0]);
            _mm256_storeu_ps(high.as_mut_ptr(), sums[1]);
        }
        out
    }
}

pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = norm(&v);
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        0.0
    } else {
        dot(a, b) / norms
    }
}

/// `acc += sign * v`, growing `acc` to `v`'s length if needed.
#[multiversion(targets("x86_64+avx2"))]
pub fn add_scaled(acc: &mut Vec<f32>, v: &[f32], sign: f32) {
    if acc.len() < v.len() {
        acc.resize(v.len(), 0.0);
    }
    for (a, x) in acc.iter_mut().zip(v) {
        *a += sign * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn dot_agrees_with_the_plain_sum_at_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "n = {n}");
        }
    }

    /// The same sixteen lanes written out one at a time, compiled for the baseline CPU: the
    /// dispatched `dot` (AVX2 where the CPU has it) must give exactly these bits, or a replay
    /// on another machine could cluster differently.
    fn sixteen_lanes_one_by_one(a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0.0f32; 16];
        let whole = a.len() / 16 * 16;
        for i in 0..whole {
            lanes[i % 16] += a[i] * b[i];
        }
        let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
        lanes.iter().sum::<f32>() + tail
    }

    proptest::proptest! {
        #[test]
        fn dot_gives_the_same_bits_on_every_cpu(
            pairs in proptest::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 0..400)
        ) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            proptest::prop_assert_eq!(dot(&a, &b).to_bits(), sixteen_lanes_one_by_one(&a, &b).to_bits());
        }
    }

    proptest::proptest! {
        #[test]
        fn dots_give_each_rows_dot_bit_for_bit(
            rows in proptest::collection::vec(proptest::collection::vec(-1.0f32..1.0, 37), 0..11),
            b in proptest::collection::vec(-1.0f32..1.0, 37),
        ) {
            let got: Vec<u32> = dots(rows.iter().map(Vec::as_slice), &b).iter().map(|d| d.to_bits()).collect();
            let want: Vec<u32> = rows.iter().map(|r| dot(r, &b).to_bits()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn dots_of_rows_of_another_length_are_each_rows_own_dot() {
        let b = [1.0, 2.0, 3.0];
        let rows: [&[f32]; 5] = [&[1.0], &[1.0, 1.0, 1.0], &[0.5; 3], &[2.0, 0.0], &[1.0; 4]];
        assert_eq!(dots(rows, &b), vec![1.0, 6.0, 3.0, 2.0, 6.0]);
    }

    #[test]
    fn add_scaled_adds_and_subtracts() {
        let mut acc = Vec::new();
        add_scaled(&mut acc, &[1.0, 2.0], 1.0);
        add_scaled(&mut acc, &[0.5, 0.5], -1.0);
        assert_eq!(acc, vec![0.5, 1.5]);
    }
}

/// A vector as its little-endian `f32` bytes (how vectors are stored: exact and compact).
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`to_bytes`]; trailing bytes short of a whole `f32` are ignored.
pub fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `v` rounded to half precision (kept as `f32`): what a stored sample holds, so the copy in
/// memory and the one restored from a checkpoint are the same bits.
pub fn half_precision(v: &[f32]) -> Vec<f32> {
    to_half(v).to_f32_vec()
}

/// The slice conversions, eight lanes at a time with F16C where the CPU has it (one value at a
/// time cost ten times as many instructions per kept sample).
fn to_half(v: &[f32]) -> Vec<half::f16> {
    let mut out = vec![half::f16::ZERO; v.len()];
    out.convert_from_f32_slice(v);
    out
}

/// Little-endian `f16` bytes of `v` (rounded to half precision), as [`to_bytes`] for `f32`.
pub fn to_half_bytes(v: &[f32]) -> Vec<u8> {
    to_half(v).iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`to_half_bytes`]; a trailing odd byte is ignored.
pub fn from_half_bytes(b: &[u8]) -> Vec<f32> {
    let halves: Vec<half::f16> = b
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
        .collect();
    halves.to_f32_vec()
}

/// Marks a stored vector of little-endian `f16` bytes; unmarked base64 is `f32` bytes.
const HALF: &str = "f16:";

/// Serde for an optional vector as base64 of its little-endian `f32` bytes: bit-exact (a
/// restored vector is the same bits, so a restart decides as the first run did) and about
/// half the size of JSON decimals. Reads `f16` vectors ([`base64_f16`]) and, from checkpoints
/// written before vectors were encoded, JSON arrays of numbers.
pub mod base64_f32 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<f32>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(super::to_bytes(v))),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Encoded(String),
        Numbers(Vec<f32>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f32>>, D::Error> {
        let text = match Option::<Stored>::deserialize(d)? {
            None => return Ok(None),
            Some(Stored::Numbers(v)) => return Ok(Some(v)),
            Some(Stored::Encoded(text)) => text,
        };
        let (kind, width, encoded) = match text.strip_prefix(super::HALF) {
            Some(rest) => ("f16", 2, rest),
            None => ("f32", 4, text.as_str()),
        };
        let bytes = STANDARD.decode(encoded).map_err(D::Error::custom)?;
        if bytes.len() % width != 0 {
            return Err(D::Error::custom(format!(
                "a vector of {kind} needs a multiple of {width} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Some(if width == 2 {
            super::from_half_bytes(&bytes)
        } else {
            super::from_bytes(&bytes)
        }))
    }
}

/// Serde for an optional vector already at half precision ([`half_precision`]): base64 of its
/// little-endian `f16` bytes, marked `f16:`, half the size of [`base64_f32`] and as exact for
/// such a vector. Read back with [`base64_f32::deserialize`].
pub mod base64_f16 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &Option<Vec<f32>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&format!(
                "{}{}",
                super::HALF,
                STANDARD.encode(super::to_half_bytes(v))
            )),
            None => s.serialize_none(),
        }
    }
}
