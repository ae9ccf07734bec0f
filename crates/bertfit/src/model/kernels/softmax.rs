//! Attention probabilities as one fused op: `softmax(scores * scale + bias)` over the last dimension,
//! with the padding bias broadcast per batch row, and its backward in one pass per row.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{for_rows, simd, slice};
use crate::error::Result;

/// `scores`: (batch, heads, queries, keys) f32; `bias`: (batch, 1, 1, keys), added after scaling
/// (0 for tokens, a large negative value for padding). Differentiable in `scores`; `bias` (built from
/// the attention mask) gets no gradient.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    Ok(scores.contiguous()?.apply_op2(&bias.contiguous()?, Forward { scale: scale as f32 })?)
}

/// Row `r` of a (batch, heads, queries, keys) tensor belongs to batch `r / (heads * queries)`.
fn rows_per_batch(dims: &[usize]) -> usize {
    dims[1..dims.len() - 1].iter().product::<usize>().max(1)
}

struct Forward {
    scale: f32,
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "bertfit-masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let bias = slice(self.name(), s2, l2)?;
        let dims = l1.dims();
        if dims.len() < 2 {
            candle_core::bail!("masked softmax: scores {dims:?} need a batch and a key dimension");
        }
        let keys = dims[dims.len() - 1];
        let per_batch = rows_per_batch(dims);
        if bias.len() != dims[0] * keys {
            candle_core::bail!("masked softmax: bias {:?} does not match scores {dims:?}", l2.dims());
        }
        let mut out = vec![0f32; x.len()];
        for_rows(&mut out, keys, |r, y| {
            simd::fast(|| {
                let row = &x[r * keys..(r + 1) * keys];
                let brow = &bias[(r / per_batch) * keys..][..keys];
                for j in 0..keys {
                    y[j] = row[j] * self.scale + brow[j];
                }
                let sum = simd::exp_shifted(y, simd::max(y));
                let inv = 1.0 / sum;
                y.iter_mut().for_each(|v| *v *= inv);
            })
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _scores: &Tensor, _bias: &Tensor, probs: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = probs.apply_op2_no_bwd(&grad.contiguous()?, &Backward { scale: self.scale })?;
        Ok((Some(d), None))
    }
}

/// `d scores = scale * p * (g - sum(g * p))` per row.
struct Backward {
    scale: f32,
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "bertfit-masked-softmax-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = slice(self.name(), s1, l1)?;
        let g = slice(self.name(), s2, l2)?;
        let keys = l1.dims().last().copied().unwrap_or(0);
        if p.len() != g.len() {
            candle_core::bail!("masked softmax backward: probabilities {:?}, gradient {:?}", l1.dims(), l2.dims());
        }
        let mut out = vec![0f32; p.len()];
        for_rows(&mut out, keys, |r, d| {
            simd::fast(|| {
                let (pr, gr) = (&p[r * keys..(r + 1) * keys], &g[r * keys..(r + 1) * keys]);
                let dot = simd::dot(pr, gr);
                for j in 0..keys {
                    d[j] = self.scale * pr[j] * (gr[j] - dot);
                }
            })
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{max_diff, random};
    use super::*;
    use crate::model::ops;
    use candle_core::{DType, Device, Var};

    fn bias(batch: usize, keys: usize, padded: &[usize]) -> Tensor {
        let mut mask = vec![1f32; batch * keys];
        for (b, &n) in padded.iter().enumerate() {
            for k in keys - n..keys {
                mask[b * keys + k] = 0.0;
            }
        }
        ops::attention_bias(&Tensor::from_vec(mask, (batch, keys), &Device::Cpu).expect("mask")).expect("bias")
    }

    #[test]
    fn forward_and_gradient_match_float64_and_candle_autograd() {
        let (b, h, s) = (3, 4, 9);
        let scale = 0.125;
        let x = Var::from_tensor(&random(&[b, h, s, s], 1, 4.0)).expect("var");
        let up = random(&[b, h, s, s], 2, 1.0);
        let bias = bias(b, s, &[0, 3, 8]);

        let ours = masked_softmax(&x, &bias, scale).expect("fused");
        let g_ours = ours.mul(&up).expect("mul").sum_all().expect("sum").backward().expect("bwd");
        let composed = |x: &Tensor, bias: &Tensor| ops::softmax_last(&(x * scale).expect("scale").broadcast_add(bias).expect("add")).expect("softmax");
        let candle = composed(&x, &bias);
        let g_candle = candle.mul(&up).expect("mul").sum_all().expect("sum").backward().expect("bwd");
        let x64 = Var::from_tensor(&x.to_dtype(DType::F64).expect("f64")).expect("var");
        // The f32 bias's f32::MIN stays finite in f64.
        let reference = composed(&x64, &bias.to_dtype(DType::F64).expect("f64"));
        let g_ref = reference.mul(&up.to_dtype(DType::F64).expect("f64")).expect("mul").sum_all().expect("sum").backward().expect("bwd");

        assert!(max_diff(&ours, &reference) < 1e-6, "forward vs f64: {}", max_diff(&ours, &reference));
        assert!(max_diff(&ours, &candle) < 1e-6);
        let (ga, gc, gr) = (g_ours.get(&x).expect("ours"), g_candle.get(&x).expect("candle"), g_ref.get(&x64).expect("f64"));
        assert!(max_diff(ga, gr) < 1e-6, "gradient vs f64: {}", max_diff(ga, gr));
        assert!(max_diff(ga, gc) < 1e-6, "gradient vs candle: {}", max_diff(ga, gc));
        // Padded keys get no probability; every row sums to 1.
        let p: Vec<Vec<f32>> = ours.reshape((b * h * s, s)).expect("reshape").to_vec2().expect("vec");
        for (r, row) in p.iter().enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            if r / (h * s) == 2 {
                assert!(row[1..].iter().all(|&v| v == 0.0), "masked keys got probability: {row:?}");
            }
        }
    }

    #[test]
    fn a_bias_of_the_wrong_shape_is_an_error() {
        let x = random(&[2, 1, 3, 3], 1, 1.0);
        assert!(masked_softmax(&x, &bias(1, 3, &[0]), 1.0).is_err());
    }
}
