//! The numerical building blocks of the model, kept behind plain functions so each can be swapped for a
//! fused kernel without touching the layers that call it.
//!
//! On the CPU in f32, dense layers, attention, dropout, LayerNorm and GELU run as our fused kernels
//! ([`super::kernels`]); otherwise they are composed from candle primitives that have a backward pass
//! (which also serve as the kernels' test reference). candle-nn's fused LayerNorm has no backward on
//! contiguous input, and its dropout is unseeded: neither is used.

use candle_core::{DType, Tensor, D};

use super::config::Activation;
use super::kernels;
use crate::error::Result;
use crate::rng;
use crate::runtime::Exec;

/// A dense layer with Hugging Face's `[out, in]` weight layout, computing as its runtime said when it
/// was built.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight, (out, in).
    pub weight: Tensor,
    /// Bias, (out).
    pub bias: Option<Tensor>,
    /// Precision and kernels.
    pub exec: Exec,
}

impl Linear {
    /// `x`: (..., in) → (..., out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (Some(b), true) = (&self.bias, fused(x, self.exec)) {
            // Any leading dimensions: no reshape nodes in the graph.
            return kernels::linear(x, &self.weight, b, self.exec.precision);
        }
        let dims = x.dims().to_vec();
        let (last, lead) = dims.split_last().ok_or_else(|| candle_core::Error::Msg("linear on a scalar".into()))?;
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, *last))?;
        let mut y = x2.matmul(&self.weight.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = lead.to_vec();
        out_dims.push(self.weight.dim(0)?);
        Ok(y.reshape(out_dims)?)
    }

    /// `act(self.forward(x))`; with the erf GELU on the fused path, one op for both.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        if let (Some(b), Activation::GeluErf, true) = (&self.bias, act, fused(x, self.exec)) {
            return kernels::linear_gelu(x, &self.weight, b, self.exec.precision);
        }
        activate(&self.forward(x)?, act, self.exec)
    }
}

/// LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale, (hidden).
    pub weight: Tensor,
    /// Shift, (hidden).
    pub bias: Tensor,
    /// Epsilon.
    pub eps: f64,
    /// Fused kernel or composed ops.
    pub exec: Exec,
}

impl LayerNorm {
    /// `x`: (..., hidden) → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if fused(x, self.exec) {
            return kernels::layer_norm(x, &self.weight, &self.bias, self.eps);
        }
        self.composed(x)
    }

    /// The same from candle primitives, in any dtype and on any device.
    pub fn composed(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// Whether `x` goes through our fused CPU kernels: f32 on the CPU, unless the runtime asks for the
/// composed ops (the reference, and a way to measure what the kernels bring).
fn fused(x: &Tensor, exec: Exec) -> bool {
    exec.fused && x.dtype() == DType::F32 && x.device().is_cpu()
}

/// Multi-head self-attention context from the projected `q`, `k`, `v` (batch, seq, hidden):
/// `dropout(softmax(Q Kᵀ / √d + bias)) V` per head, merged back to (batch, seq, hidden).
#[allow(clippy::too_many_arguments)]
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, heads: usize, dropout_p: f64, mode: Mode, site: u64, exec: Exec) -> Result<Tensor> {
    let (b, s, h) = q.dims3()?;
    let d = h / heads.max(1);
    let scale = 1.0 / (d as f64).sqrt();
    if fused(q, exec) && bias.dtype() == DType::F32 {
        let drop = (mode.train && dropout_p > 0.0).then(|| kernels::AttentionDropout { p: dropout_p, key: rng::key(&[mode.dropout_key, site]) });
        return kernels::attention(q, k, v, bias, heads, scale, drop);
    }
    let split = |t: &Tensor| -> Result<Tensor> { Ok(t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()?) };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let probs = softmax_last(&(q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?)?;
    let probs = dropout(&probs, dropout_p, mode, site, exec)?;
    Ok(probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, s, h))?)
}

/// Softmax over the last dimension (max-subtracted for stability).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

/// Log-softmax over the last dimension.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Applies an activation function.
pub fn activate(x: &Tensor, act: Activation, exec: Exec) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluErf if fused(x, exec) => kernels::gelu_erf(x)?,
        Activation::GeluErf => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Tanh => x.tanh()?,
    })
}

/// Where dropout masks come from: a run-wide key for this forward pass (derived from seed and step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Training (dropout on) or inference.
    pub train: bool,
    /// Key of this forward pass's dropout streams; each dropout site mixes in its own id.
    pub dropout_key: u64,
}

impl Mode {
    /// Inference: no dropout.
    pub const EVAL: Mode = Mode { train: false, dropout_key: 0 };

    /// Training mode for a given run seed and optimizer micro-step.
    pub fn train(seed: u64, micro_step: u64) -> Mode {
        Mode { train: true, dropout_key: rng::key(&[seed, rng::label("dropout"), micro_step]) }
    }
}

/// Inverted dropout with a counter-based mask: element `i` of site `site` is kept when
/// `uniform(key(mode.dropout_key, site), i) >= p`, and scaled by `1 / (1 - p)`.
pub fn dropout(x: &Tensor, p: f64, mode: Mode, site: u64, exec: Exec) -> Result<Tensor> {
    if !mode.train || p <= 0.0 {
        return Ok(x.clone());
    }
    let key = rng::key(&[mode.dropout_key, site]);
    if fused(x, exec) {
        return kernels::dropout(x, p, key);
    }
    let n = x.elem_count();
    let scale = (1.0 / (1.0 - p)) as f32;
    let p32 = p as f32;
    let mask: Vec<f32> =
        (0..n as u64).map(|i| if rng::uniform_f32(key, i) >= p32 { scale } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

/// `dropout(x) + residual` (the sublayer output joining the residual stream).
pub fn dropout_add(x: &Tensor, residual: &Tensor, p: f64, mode: Mode, site: u64, exec: Exec) -> Result<Tensor> {
    if !mode.train || p <= 0.0 {
        return Ok(x.add(residual)?);
    }
    if fused(x, exec) && residual.dtype() == DType::F32 {
        return kernels::dropout_add(x, residual, p, rng::key(&[mode.dropout_key, site]));
    }
    Ok(dropout(x, p, mode, site, exec)?.add(residual)?)
}

/// An embedding table lookup. `ids`: (batch, seq) u32 → (batch, seq, dim).
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, s) = ids.dims2()?;
    let flat = ids.flatten_all()?;
    let dim = table.dim(1)?;
    Ok(table.embedding(&flat)?.reshape((b, s, dim))?)
}

/// Additive attention bias from a (batch, seq) 0/1 mask: 0 where attended, `f32::MIN` where masked,
/// shaped (batch, 1, 1, seq).
pub fn attention_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    let bias = m.affine(-(f32::MIN as f64), f32::MIN as f64)?;
    Ok(bias.reshape((b, 1, 1, s))?)
}
