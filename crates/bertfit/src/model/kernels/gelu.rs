//! GELU (the exact, erf form BERT uses) as one fused op with a one-pass backward.
//!
//! erf comes from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), whose exponential is the same
//! `exp(-x²/2)` the derivative needs, so forward and backward each take one (branch-free, vectorised)
//! `exp` per element.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::{for_rows, simd, slice};
use crate::error::Result;

/// Elements per parallel row (the kernels parallelise over rows; GELU has no row structure).
const CHUNK: usize = 1024;

/// `x * Φ(x) = 0.5 x (1 + erf(x / √2))`, element-wise on f32; differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Forward)?)
}

/// Returns `(Φ(z), φ(z))`: the standard normal CDF and density at `z`.
#[inline(always)]
fn cdf_pdf(z: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let x = (z * INV_SQRT_2).abs();
    let e = simd::exp(-0.5 * z * z);
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf_abs = 1.0 - poly * e;
    let erf = if z < 0.0 { -erf_abs } else { erf_abs };
    (0.5 * (1.0 + erf), e * INV_SQRT_2PI)
}

/// Runs `f` over `CHUNK`-sized pieces of `out` in parallel, passing each piece's offset.
fn chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let n = out.len();
    let width = CHUNK.min(n.max(1));
    if n.is_multiple_of(width) {
        for_rows(out, width, |r, piece| f(r * width, piece));
    } else {
        let (head, tail) = out.split_at_mut(n - n % width);
        for_rows(head, width, |r, piece| f(r * width, piece));
        f(n - n % width, tail);
    }
}

struct Forward;

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        "bertfit-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let mut out = vec![0f32; x.len()];
        gelu_into(&mut out, x);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(gelu_grad(x, grad)?))
    }
}

/// `out[i] = gelu(x[i])` (lengths equal), in parallel.
pub(crate) fn gelu_into(out: &mut [f32], x: &[f32]) {
    chunks(out, |at, y| {
        simd::vectorised!({
            for (v, &z) in y.iter_mut().zip(&x[at..]) {
                *v = z * cdf_pdf(z).0;
            }
        })
    });
}

/// The gradient at the GELU's input `x` from the gradient `grad` at its output (not differentiable).
pub(super) fn gelu_grad(x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op2_no_bwd(&grad.contiguous()?, &Backward)
}

/// `dx[i] = g[i] * (Φ(x[i]) + x[i] φ(x[i]))` (lengths equal), in parallel: the GELU's input gradient.
pub(crate) fn gelu_backward_into(dx: &mut [f32], x: &[f32], g: &[f32]) {
    chunks(dx, |at, d| {
        simd::vectorised!({
            for ((v, &z), &gz) in d.iter_mut().zip(&x[at..]).zip(&g[at..]) {
                let (cdf, pdf) = cdf_pdf(z);
                *v = gz * (cdf + z * pdf);
            }
        })
    });
}

/// `dx = g * (Φ(x) + x φ(x))`.
struct Backward;

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "bertfit-gelu-erf-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let g = slice(self.name(), s2, l2)?;
        if x.len() != g.len() {
            candle_core::bail!("gelu backward: input {:?}, gradient {:?}", l1.dims(), l2.dims());
        }
        let mut out = vec![0f32; x.len()];
        gelu_backward_into(&mut out, x, g);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{backward, max_diff, random};
    use super::*;
    use candle_core::{DType, Var};

    #[test]
    fn forward_and_gradient_match_float64_and_candle_autograd() {
        // 5 × 417 elements: not a multiple of the chunk size, so the tail path runs too.
        for (shape, scale) in [(vec![5usize, 417], 6.0f32), (vec![3, 1500], 12.0), (vec![2], 0.5)] {
            let x = Var::from_tensor(&random(&shape, 3, scale)).expect("var");
            let up = random(&shape, 4, 1.0);
            let ours = gelu_erf(&x).expect("fused");
            let g_ours = backward(&ours, &up);
            let candle = x.gelu_erf().expect("candle");
            let g_candle = backward(&candle, &up);
            let x64 = Var::from_tensor(&x.to_dtype(DType::F64).expect("f64")).expect("var");
            let reference = x64.gelu_erf().expect("f64");
            let g_ref = backward(&reference, &up);

            let tol = 2e-6 * scale as f64;
            assert!(max_diff(&ours, &reference) < tol, "forward vs f64: {}", max_diff(&ours, &reference));
            assert!(max_diff(&ours, &candle) < tol, "forward vs candle: {}", max_diff(&ours, &candle));
            let (ga, gc, gr) = (g_ours.get(&x).expect("ours"), g_candle.get(&x).expect("candle"), g_ref.get(&x64).expect("f64"));
            assert!(max_diff(ga, gr) < tol, "gradient vs f64: {}", max_diff(ga, gr));
            assert!(max_diff(ga, gc) < tol, "gradient vs candle: {}", max_diff(ga, gc));
        }
    }

    #[test]
    fn the_cdf_is_accurate_at_the_centre_and_saturates() {
        assert!((cdf_pdf(0.0).0 - 0.5).abs() < 1e-7);
        assert!((cdf_pdf(0.0).1 - 0.398_942_3).abs() < 1e-7);
        assert!((cdf_pdf(9.0).0 - 1.0).abs() < 1e-7 && cdf_pdf(-9.0).0.abs() < 1e-7);
    }
}
