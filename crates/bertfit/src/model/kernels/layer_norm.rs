//! LayerNorm over the last dimension as one fused op: forward in one pass per row, backward giving
//! the input, weight and bias gradients in one pass (candle-nn's fused LayerNorm has no backward).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::{for_rows, simd, slice, ROW_BLOCK};
use crate::error::Result;

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` over the last dimension of `x` (f32,
/// contiguous); `weight` and `bias` are (hidden). Differentiable in all three.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op3(weight, bias, Forward { eps: eps as f32 })?)
}

/// Mean and reciprocal standard deviation of a row (two passes, lane-split sums).
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = simd::sum_map(row, |v| v) / n;
    let var = simd::sum_map(row, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `out = LayerNorm(x) · w + b` row by row (`h = w.len()`), rows in parallel: the forward core.
pub(crate) fn forward_rows(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    for_rows(out, h, |r, y| {
        simd::vectorised!({
            let row = &x[r * h..(r + 1) * h];
            let (mean, rstd) = moments(row, eps);
            for j in 0..h {
                y[j] = (row[j] - mean) * rstd * w[j] + b[j];
            }
        })
    });
}

/// The backward core: writes `dx` (rows of `h = w.len()`) from the LayerNorm input `x` and the output
/// gradient `g`, and adds the weight and bias gradients into `dw`, `db`. Rows are split into blocks of
/// [`ROW_BLOCK`] whose partial sums are added in block order: the same bits for any thread count.
pub(crate) fn backward_rows(dx: &mut [f32], dw: &mut [f32], db: &mut [f32], x: &[f32], w: &[f32], g: &[f32], eps: f32) {
    use rayon::prelude::*;
    let h = w.len();
    if h == 0 {
        return;
    }
    // Each block of rows writes its dx rows and returns its partial dw, db.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(h * ROW_BLOCK)
        .enumerate()
        .map(|(block, chunk)| {
            let mut part = vec![0f32; 2 * h];
            let (pw, pb) = part.split_at_mut(h);
            for (i, dxr) in chunk.chunks_mut(h).enumerate() {
                let r = block * ROW_BLOCK + i;
                let xr = &x[r * h..(r + 1) * h];
                let gr = &g[r * h..(r + 1) * h];
                simd::vectorised!({
                    let (mean, rstd) = moments(xr, eps);
                    // dxr holds g·w for a moment.
                    for j in 0..h {
                        dxr[j] = gr[j] * w[j];
                    }
                    let sum_gw = simd::sum_map(dxr, |v| v);
                    let sum_gw_x = simd::dot(dxr, xr);
                    let (a, c) = (sum_gw / h as f32, rstd * (sum_gw_x - mean * sum_gw) / h as f32);
                    for j in 0..h {
                        let xhat = (xr[j] - mean) * rstd;
                        pw[j] += gr[j] * xhat;
                        pb[j] += gr[j];
                        dxr[j] = rstd * (dxr[j] - a - xhat * c);
                    }
                });
            }
            part
        })
        .collect();
    // Blocks are summed in order: the same result for any number of threads.
    for part in &partials {
        let (pw, pb) = part.split_at(h);
        for (t, p) in dw.iter_mut().zip(pw) {
            *t += p;
        }
        for (t, p) in db.iter_mut().zip(pb) {
            *t += p;
        }
    }
}

struct Forward {
    eps: f32,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "bertfit-layer-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let w = slice(self.name(), s2, l2)?;
        let b = slice(self.name(), s3, l3)?;
        let h = w.len();
        if h == 0 || b.len() != h || l1.dims().last() != Some(&h) {
            candle_core::bail!("layer-norm: input {:?} with weight {} and bias {}", l1.dims(), h, b.len());
        }
        let mut out = vec![0f32; x.len()];
        forward_rows(&mut out, x, w, b, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let rows = x.elem_count() / w.elem_count().max(1);
        // One output holding dx (rows × h), then dw and db (one row each).
        let packed = x.apply_op3_no_bwd(w, &grad, &Backward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.narrow(0, rows, 1)?.reshape(w.shape())?;
        let db = packed.narrow(0, rows + 1, 1)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct Backward {
    eps: f32,
}

impl CustomOp3 for Backward {
    fn name(&self) -> &'static str {
        "bertfit-layer-norm-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let w = slice(self.name(), s2, l2)?;
        let g = slice(self.name(), s3, l3)?;
        let h = w.len();
        if h == 0 || g.len() != x.len() || x.len() % h != 0 {
            candle_core::bail!("layer-norm backward: input {:?}, weight {h}, gradient {}", l1.dims(), g.len());
        }
        let rows = x.len() / h;
        let mut out = vec![0f32; x.len() + 2 * h];
        let (dx, tail) = out.split_at_mut(x.len());
        let (dw, db) = tail.split_at_mut(h);
        backward_rows(dx, dw, db, x, w, g, self.eps);
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, h))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{backward, max_diff, random};
    use super::*;
    use crate::model::ops::LayerNorm;
    use candle_core::{DType, Var};

    /// The composed candle LayerNorm (autograd through primitive ops), in any dtype.
    fn composed(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        LayerNorm { weight: w.clone(), bias: b.clone(), eps: 1e-12, exec: crate::runtime::Exec::default() }.composed(x).expect("composed")
    }

    #[test]
    fn forward_and_gradients_match_float64_and_candle_autograd() {
        for (shape, seed) in [(vec![3usize, 5, 16], 1u64), (vec![70, 384], 2), (vec![1, 1, 7], 3)] {
            let h = *shape.last().expect("dims");
            let x = Var::from_tensor(&(random(&shape, seed, 3.0) + 0.5).expect("x")).expect("var");
            let w = Var::from_tensor(&(random(&[h], seed + 10, 1.0) + 1.0).expect("w")).expect("var");
            let b = Var::from_tensor(&random(&[h], seed + 20, 1.0)).expect("var");
            let up = random(&shape, seed + 30, 1.0);

            let ours = layer_norm(&x, &w, &b, 1e-12).expect("fused");
            let g_ours = backward(&ours, &up);
            let candle = composed(&x, &w, &b);
            let g_candle = backward(&candle, &up);
            let f64s = |t: &Var| Var::from_tensor(&t.to_dtype(DType::F64).expect("f64")).expect("var");
            let (x64, w64, b64) = (f64s(&x), f64s(&w), f64s(&b));
            let reference = composed(&x64, &w64, &b64);
            let g_ref = backward(&reference, &up);

            assert!(max_diff(&ours, &reference) < 1e-5, "forward vs f64: {}", max_diff(&ours, &reference));
            assert!(max_diff(&ours, &candle) < 1e-5, "forward vs candle");
            for (name, a, c, r) in [("x", &x, &x, &x64), ("weight", &w, &w, &w64), ("bias", &b, &b, &b64)] {
                let ga = g_ours.get(a.as_tensor()).expect("our grad");
                let gc = g_candle.get(c.as_tensor()).expect("candle grad");
                let gr = g_ref.get(r.as_tensor()).expect("f64 grad");
                let tol = 1e-4 * (1.0 + shape[0] as f64);
                assert!(max_diff(ga, gr) < tol, "d{name} vs f64: {} (shape {shape:?})", max_diff(ga, gr));
                assert!(max_diff(ga, gc) < tol, "d{name} vs candle: {}", max_diff(ga, gc));
            }
        }
    }

    #[test]
    fn weight_gradients_do_not_depend_on_the_thread_count() {
        let x = Var::from_tensor(&random(&[300, 32], 5, 2.0)).expect("var");
        let w = Var::from_tensor(&random(&[32], 6, 1.0)).expect("var");
        let b = Var::from_tensor(&random(&[32], 7, 1.0)).expect("var");
        let grads = |threads: usize| -> Vec<f32> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| {
                let y = layer_norm(&x, &w, &b, 1e-5).expect("ln");
                let g = y.sqr().expect("sqr").sum_all().expect("sum").backward().expect("bwd");
                g.get(w.as_tensor()).expect("dw").to_vec1().expect("vec")
            })
        };
        assert_eq!(grads(1), grads(3));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = random(&[2, 8], 1, 1.0);
        let w = random(&[4], 2, 1.0);
        assert!(layer_norm(&x, &w, &w, 1e-5).is_err());
    }
}
