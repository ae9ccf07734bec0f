//! Slice-level cores of the engine's new CPU ops (design 2.5): the classification loss with its
//! gradient (K12 `softmax_ce`), sequence pooling over packed tokens (K10 `pool`), forward and
//! backward, and the AdamW element update (K14), which the graph's optimizer calls too, so both paths
//! update weights with the same arithmetic. Reductions run in a fixed order, so results do not depend on
//! threads.

use super::layout::Layout;

/// Softmax cross-entropy of `logits` (`rows × classes`, row-major) against `labels`, with optional class
/// weights: the loss is `Σ w_y · nll / Σ w_y · scale` (PyTorch's `CrossEntropyLoss(weight=w)` times
/// `scale`, as `train::loss::cross_entropy`). Writes the probabilities and `∂loss/∂logits`; returns the
/// loss. Softmax and sums run in f64.
pub fn softmax_ce(
    logits: &[f32],
    classes: usize,
    labels: &[usize],
    weights: Option<&[f32]>,
    scale: f64,
    probs: &mut [f32],
    dlogits: &mut [f32],
) -> f64 {
    let w = |y: usize| weights.map_or(1.0, |cw| f64::from(cw[y]));
    let total: f64 = labels.iter().map(|&y| w(y)).sum();
    let norm = if total > 0.0 { scale / total } else { 0.0 };
    let mut loss = 0.0;
    for (r, &y) in labels.iter().enumerate() {
        let row = &logits[r * classes..(r + 1) * classes];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exps: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        let coef = w(y) * norm;
        loss += coef * -(exps[y] / sum).ln();
        for (c, e) in exps.iter().enumerate() {
            let p = e / sum;
            probs[r * classes + c] = p as f32;
            dlogits[r * classes + c] = ((p - f64::from(u8::from(c == y))) * coef) as f32;
        }
    }
    loss
}

/// How a sequence becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The first token.
    First,
    /// The mean over the sequence's tokens.
    Mean,
}

/// `out[b] = pool(x[cu[b]..cu[b+1]])` for packed rows `x` (`tokens × width`); `out` is `sequences × width`.
/// An empty sequence pools to zeros.
pub fn pool_fwd(x: &[f32], width: usize, cu_seqlens: &[u32], how: Pool, out: &mut [f32]) {
    for (b, w) in cu_seqlens.windows(2).enumerate() {
        let (start, end) = (w[0] as usize, w[1] as usize);
        let dst = &mut out[b * width..(b + 1) * width];
        dst.fill(0.0);
        if end == start {
            continue;
        }
        match how {
            Pool::First => dst.copy_from_slice(&x[start * width..(start + 1) * width]),
            Pool::Mean => {
                let mut acc = vec![0f64; width];
                for t in start..end {
                    for (a, &v) in acc.iter_mut().zip(&x[t * width..(t + 1) * width]) {
                        *a += f64::from(v);
                    }
                }
                let n = (end - start) as f64;
                for (d, a) in dst.iter_mut().zip(acc) {
                    *d = (a / n) as f32;
                }
            }
        }
    }
}

/// The gradient of [`pool_fwd`]: adds `∂/∂x` of `Σ dout · out` into `dx` (`tokens × width`).
pub fn pool_bwd(dout: &[f32], width: usize, cu_seqlens: &[u32], how: Pool, dx: &mut [f32]) {
    for (b, w) in cu_seqlens.windows(2).enumerate() {
        let (start, end) = (w[0] as usize, w[1] as usize);
        if end == start {
            continue;
        }
        let g = &dout[b * width..(b + 1) * width];
        let (tokens, scale) = match how {
            Pool::First => (start..start + 1, 1.0f32),
            Pool::Mean => (start..end, 1.0 / (end - start) as f32),
        };
        for t in tokens {
            for (d, &v) in dx[t * width..(t + 1) * width].iter_mut().zip(g) {
                *d += v * scale;
            }
        }
    }
}

/// AdamW hyperparameters (transformers' defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// One AdamW update's constants (`decay` is 0 for segments without weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// Decoupled weight decay of this tensor.
    pub decay: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// `1 - beta1^t`.
    pub bias1: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bias2_sqrt: f32,
    /// Gradient clipping factor (1 without clipping).
    pub grad_scale: f32,
}

impl AdamStep {
    /// The constants of update number `step` (1-based) at `lr` for config `c`, with the clipping factor
    /// that brings a gradient of global norm `norm` to `max_norm` (none without it or for a non-finite
    /// norm). `decay` is the config's; callers zero it for segments that do not decay.
    pub fn new(c: &AdamWConfig, step: usize, lr: f64, norm: f64, max_norm: Option<f64>) -> AdamStep {
        let grad_scale = match max_norm {
            Some(max) if max > 0.0 && norm.is_finite() => (max / (norm + 1e-6)).min(1.0),
            _ => 1.0,
        };
        let t = step as i32;
        AdamStep {
            lr: lr as f32,
            decay: c.weight_decay as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            bias1: (1.0 - c.beta1.powi(t)) as f32,
            bias2_sqrt: (1.0 - c.beta2.powi(t)).sqrt() as f32,
            grad_scale: grad_scale as f32,
        }
    }
}

/// `Σ g²` in f64 with eight interleaved partial sums: a fixed order (the same value every run) without one
/// long chain of dependent adds.
pub fn sum_sq(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&g| g as f64 * g as f64).sum();
    for c in chunks {
        for (a, &g) in acc.iter_mut().zip(c) {
            *a += g as f64 * g as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Softmax of one row of logits, computed in f64 (what predictions report).
pub fn softmax_row(r: &[f32]) -> Vec<f32> {
    let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = r.iter().map(|&x| (x as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| (x / s) as f32).collect()
}

/// AdamW on one tensor: moments `m`, `v` and weights `p` updated from the accumulated gradient `g`
/// (transformers' AdamW: decoupled decay, bias-corrected step). Zipped slices, so the loop vectorises.
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let step_size = s.lr / s.bias1;
    for (((w, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * s.grad_scale;
        *m = s.beta1 * *m + (1.0 - s.beta1) * g;
        *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
        let mut x = *w;
        x -= s.lr * s.decay * x;
        x -= step_size * *m / (v.sqrt() / s.bias2_sqrt + s.eps);
        *w = x;
    }
}

/// AdamW over every trainable segment of flat buffers laid out by `layout` (K14: one pass over the
/// packed parameters); `step.decay` is taken as the weight decay of segments that decay.
pub fn adamw_flat(layout: &Layout, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    for seg in layout.segments.iter().filter(|s| s.trainable) {
        let r = seg.offset..seg.offset + seg.len;
        let s = AdamStep { decay: if seg.decay { step.decay } else { 0.0 }, ..*step };
        adamw(&mut params[r.clone()], &grads[r.clone()], &mut m[r.clone()], &mut v[r], &s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::testing::random;
    use candle_core::{Tensor, Var};

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().and_then(|t| t.to_vec1()).expect("f32")
    }

    #[test]
    fn softmax_ce_matches_the_training_loss_and_its_autograd_gradient() {
        let (rows, classes) = (5, 3);
        let logits = Var::from_tensor(&random(&[rows, classes], 3, 4.0)).expect("var");
        let labels = [0usize, 2, 1, 2, 2];
        for (weights, scale) in [(None, 1.0), (Some(vec![1.0f32, 3.0, 0.5]), 0.25)] {
            let loss = crate::train::loss::cross_entropy(logits.as_tensor(), &labels, weights.as_deref(), scale).expect("loss");
            let grads = loss.backward().expect("backward");
            let want_grad = flat(grads.get(logits.as_tensor()).expect("grad"));
            let mut probs = vec![0f32; rows * classes];
            let mut dlogits = vec![0f32; rows * classes];
            let got = softmax_ce(&flat(logits.as_tensor()), classes, &labels, weights.as_deref(), scale, &mut probs, &mut dlogits);
            let want = loss.to_scalar::<f32>().expect("scalar") as f64;
            assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "loss {got} vs {want}");
            for (g, w) in dlogits.iter().zip(&want_grad) {
                assert!((g - w).abs() < 1e-6, "gradient {g} vs {w}");
            }
            let want_probs = crate::infer::softmax_rows(logits.as_tensor()).expect("probs");
            assert_eq!(probs, want_probs.concat());
        }
    }

    #[test]
    fn pooling_matches_a_direct_formula_and_its_gradient() {
        let width = 4;
        let cu = [0u32, 3, 4, 4, 9];
        let x: Vec<f32> = (0..9 * width).map(|i| (i as f32 * 0.37).sin()).collect();
        let dout: Vec<f32> = (0..4 * width).map(|i| (i as f32 * 0.11).cos()).collect();
        for how in [Pool::First, Pool::Mean] {
            let mut out = vec![f32::NAN; 4 * width];
            pool_fwd(&x, width, &cu, how, &mut out);
            let mut dx = vec![0f32; 9 * width];
            pool_bwd(&dout, width, &cu, how, &mut dx);
            for b in 0..4 {
                let (s, e) = (cu[b] as usize, cu[b + 1] as usize);
                for f in 0..width {
                    let want = match (how, e - s) {
                        (_, 0) => 0.0,
                        (Pool::First, _) => x[s * width + f] as f64,
                        (Pool::Mean, n) => (s..e).map(|t| x[t * width + f] as f64).sum::<f64>() / n as f64,
                    };
                    assert!((out[b * width + f] as f64 - want).abs() < 1e-6, "{how:?} b{b} f{f}");
                    for t in s..e {
                        let want_dx = match how {
                            Pool::First if t == s => dout[b * width + f],
                            Pool::First => 0.0,
                            Pool::Mean => dout[b * width + f] / (e - s) as f32,
                        };
                        assert!((dx[t * width + f] - want_dx).abs() < 1e-7, "{how:?} dx t{t} f{f}");
                    }
                }
            }
        }
    }
}
