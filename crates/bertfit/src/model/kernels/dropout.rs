//! Seeded inverted dropout as fused ops whose mask is never stored: element `i` is kept when the
//! counter-based draw `uniform(key, i) >= p`, so the backward recomputes the same mask from the key.
//! [`dropout_add`] also adds the residual branch in the same pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::{simd, slice};
use crate::error::Result;
use crate::rng;

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// The mask of one dropout site: `scale` where kept, 0 where dropped.
#[derive(Debug, Clone, Copy)]
struct Mask {
    key: u64,
    p: f32,
    scale: f32,
}

impl Mask {
    fn new(key: u64, p: f64) -> Mask {
        Mask { key, p: p as f32, scale: (1.0 / (1.0 - p)) as f32 }
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        if rng::uniform_f32(self.key, i as u64) >= self.p {
            self.scale
        } else {
            0.0
        }
    }

    /// `out[i] = a[i] * mask(i) + b[i]` (`b` empty: no addition), in parallel chunks.
    fn apply(&self, a: &[f32], b: &[f32]) -> Vec<f32> {
        use rayon::prelude::*;
        let mut out = vec![0f32; a.len()];
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
            let at = c * CHUNK;
            simd::vectorised!({
                let a = &a[at..at + chunk.len()];
                if b.is_empty() {
                    for (j, (y, &x)) in chunk.iter_mut().zip(a).enumerate() {
                        *y = x * self.at(at + j);
                    }
                } else {
                    let b = &b[at..at + chunk.len()];
                    for (j, ((y, &x), &r)) in chunk.iter_mut().zip(a).zip(b).enumerate() {
                        *y = x * self.at(at + j) + r;
                    }
                }
            })
        });
        out
    }
}

/// Inverted dropout of `x` (f32) with probability `p` and mask stream `key`; differentiable.
pub fn dropout(x: &Tensor, p: f64, key: u64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Dropout(Mask::new(key, p)))?)
}

/// `dropout(a) + residual` in one pass; differentiable in both.
pub fn dropout_add(a: &Tensor, residual: &Tensor, p: f64, key: u64) -> Result<Tensor> {
    Ok(a.contiguous()?.apply_op2(&residual.contiguous()?, DropoutAdd(Mask::new(key, p)))?)
}

struct Dropout(Mask);

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "bertfit-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        Ok((CpuStorage::F32(self.0.apply(x, &[])), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // The same mask and scale, applied to the incoming gradient.
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Dropout(self.0))?))
    }
}

struct DropoutAdd(Mask);

impl CustomOp2 for DropoutAdd {
    fn name(&self) -> &'static str {
        "bertfit-dropout-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        if l1.dims() != l2.dims() {
            candle_core::bail!("dropout-add: {:?} + {:?}", l1.dims(), l2.dims());
        }
        Ok((CpuStorage::F32(self.0.apply(a, b)), l1.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, _b: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        Ok((Some(grad.apply_op1_no_bwd(&Dropout(self.0))?), Some(grad)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{backward, max_diff, random};
    use super::*;
    use candle_core::Var;

    /// The composed reference: an explicit mask tensor from the same draws.
    fn mask_tensor(shape: &[usize], key: u64, p: f64) -> Tensor {
        let m = Mask::new(key, p);
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|i| m.at(i)).collect::<Vec<f32>>(), shape, &candle_core::Device::Cpu).expect("mask")
    }

    #[test]
    fn matches_an_explicit_mask_forward_and_backward() {
        let shape = [3usize, 7, 1001];
        let (key, p) = (rng::key(&[7, 9]), 0.1);
        let a = Var::from_tensor(&random(&shape, 1, 1.0)).expect("var");
        let r = Var::from_tensor(&random(&shape, 2, 1.0)).expect("var");
        let up = random(&shape, 3, 1.0);
        let mask = mask_tensor(&shape, key, p);

        let ours = dropout_add(&a, &r, p, key).expect("fused");
        let g = backward(&ours, &up);
        let reference = a.mul(&mask).expect("mul").add(&r).expect("add");
        let g_ref = backward(&reference, &up);
        assert_eq!(max_diff(&ours, &reference), 0.0);
        assert_eq!(max_diff(g.get(&a).expect("da"), g_ref.get(&a).expect("da")), 0.0);
        assert_eq!(max_diff(g.get(&r).expect("dr"), g_ref.get(&r).expect("dr")), 0.0);

        let plain = dropout(&a, p, key).expect("dropout");
        let g = backward(&plain, &up);
        assert_eq!(max_diff(&plain, &a.mul(&mask).expect("mul")), 0.0);
        assert_eq!(max_diff(g.get(&a).expect("da"), &up.mul(&mask).expect("mul")), 0.0);
        // About p of the elements are dropped.
        let dropped = mask.flatten_all().expect("flat").to_vec1::<f32>().expect("vec").iter().filter(|&&v| v == 0.0).count();
        let share = dropped as f64 / shape.iter().product::<usize>() as f64;
        assert!((share - p).abs() < 0.01, "dropped share {share}");
    }

    #[test]
    fn different_keys_give_different_masks() {
        let x = Tensor::ones(1000, candle_core::DType::F32, &candle_core::Device::Cpu).expect("ones");
        let a = dropout(&x, 0.5, 1).expect("a");
        let b = dropout(&x, 0.5, 2).expect("b");
        assert!(max_diff(&a, &b) > 0.0);
        assert_eq!(max_diff(&a, &dropout(&x, 0.5, 1).expect("again")), 0.0);
    }
}
