//! Pooling and normalisation, as the sentence-transformers config of all-MiniLM-L6-v2 asks:
//! mean of the token vectors over real tokens only, then L2 normalisation.

use candle_core::{DType, Result, Tensor, D};

/// Mean of `hidden` (`[batch, tokens, dim]`) over the positions where `mask` (`[batch, tokens]`)
/// is 1. Padded positions must not count, or a short text padded to a long one drifts towards
/// the padding's vectors and short texts all look alike.
pub(crate) fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?; // [b, t, 1]
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // [b, dim]
                                                       // Clamp like sentence-transformers so an all-masked row yields zeros, not NaN.
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // [b, 1]
    summed.broadcast_div(&counts)
}

/// Scales `v` to unit L2 norm in place. A zero vector stays all zero (there is no direction
/// to keep), so callers never see NaN.
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Pools a batch and returns one normalised row per text.
pub(crate) fn pool_rows(hidden: &Tensor, mask: &Tensor) -> Result<Vec<Vec<f32>>> {
    let mut rows = mean_pool(hidden, mask)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?;
    rows.iter_mut().for_each(|r| normalize(r));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mean_pool_ignores_masked_positions() -> Result<()> {
        // Row 0: the middle token is padding with huge values; it must not move the mean.
        // Row 1: only the first token is real.
        let hidden = Tensor::new(
            &[
                [[1f32, 2.], [100., -100.], [3., 4.]],
                [[5f32, 6.], [7., 8.], [9., 10.]],
            ],
            &Device::Cpu,
        )?;
        let mask = Tensor::new(&[[1u32, 0, 1], [1, 0, 0]], &Device::Cpu)?;
        let pooled = mean_pool(&hidden, &mask)?.to_vec2::<f32>()?;
        assert_eq!(pooled, vec![vec![2., 3.], vec![5., 6.]]);
        Ok(())
    }

    #[test]
    fn all_masked_row_pools_to_zero_not_nan() -> Result<()> {
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.]]], &Device::Cpu)?;
        let mask = Tensor::new(&[[0u32, 0]], &Device::Cpu)?;
        let rows = pool_rows(&hidden, &mask)?;
        assert_eq!(rows, vec![vec![0., 0.]]);
        Ok(())
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3f32, 4.];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
