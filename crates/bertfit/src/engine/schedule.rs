//! The engine's forward and backward as calls on a [`Backend`] (design 2.6): embeddings, post-LN
//! transformer layers on packed tokens, pooling, the pooler and the head; the backward writes every
//! gradient once into the accumulators (weight gradients by β = 1 GEMMs, nothing zero-filled per edge),
//! stops below the lowest trainable layer and skips frozen weights. Dropout sites and keys are the graph's
//! (`model::site`), so both paths drop the same elements.

use std::sync::Arc;

use super::backend::{Attention, Backend, Buf, DropIndex, Dropout, DropoutAdd, Embed, EmbedGrad, Gemm, LayerNorm, LayerNormGrad, Operand, Pooling, Region};
use super::plan::Plan;
use super::Engine;
use crate::error::Result;
use crate::model::{site, Activation, Mode};
use crate::rng;

/// The weights of one transformer layer (buffers in the parameter region).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerWeights {
    pub qkv: (Buf, Buf),
    pub attn_out: (Buf, Buf),
    pub attn_norm: (Buf, Buf),
    pub inter: (Buf, Buf),
    pub out: (Buf, Buf),
    pub out_norm: (Buf, Buf),
}

/// Every weight, by role.
#[derive(Debug, Clone)]
pub(crate) struct Weights {
    /// Word and position tables.
    pub tables: [Buf; 2],
    /// Segment table (families with token types).
    pub segments: Option<Buf>,
    pub emb_norm: (Buf, Buf),
    /// ELECTRA's `embeddings_project` (`E → H`), when the tables are narrower than the hidden size.
    pub project: Option<(Buf, Buf)>,
    pub layers: Vec<LayerWeights>,
    pub pooler: Option<(Buf, Buf)>,
    pub head: Vec<(Buf, Buf)>,
}

/// The same elements in the gradient region.
fn grad(b: Buf) -> Buf {
    Buf { region: Region::Grads, ..b }
}

impl<B: Backend> Engine<B> {
    fn drop_key(mode: Mode, site: u64) -> u64 {
        rng::key(&[mode.dropout_key, site])
    }

    /// A dropout site over packed token rows, when training with `p > 0`.
    fn token_drop(&self, plan: &Plan, mode: Mode, p: f64, site: u64) -> Option<Dropout> {
        (mode.train && p > 0.0).then(|| Dropout { p, key: Self::drop_key(mode, site), index: DropIndex::Tokens(plan.ints.prow) })
    }

    /// `y = x Wᵀ + b` for `x` of `rows × inp` and `W` of `[out, inp]`.
    fn linear(&mut self, x: Buf, w: (Buf, Buf), y: Buf, rows: usize, inp: usize, out: usize) -> Result<()> {
        let g = Gemm {
            m: rows,
            n: out,
            k: inp,
            a: Operand::rows(x, inp),
            b: Operand::transposed(w.0, inp),
            c: y,
            accumulate: false,
            bias: Some(w.1),
            precision: self.spec.precision,
        };
        self.backend.gemm(&g)
    }

    #[allow(clippy::too_many_arguments)]
    /// `dx (+)= dy W` for `dy` of `rows × out` and `W` of `[out, inp]`.
    fn input_grad(&mut self, dy: Buf, w: Buf, dx: Buf, rows: usize, inp: usize, out: usize, accumulate: bool) -> Result<()> {
        let g = Gemm { m: rows, n: inp, k: out, a: Operand::rows(dy, out), b: Operand::rows(w, inp), c: dx, accumulate, bias: None, precision: self.spec.precision };
        self.backend.gemm(&g)
    }

    /// `dW += dyᵀ x` and `db += Σ dy` into the gradient accumulators of `w`.
    fn param_grad(&mut self, dy: Buf, x: Buf, w: (Buf, Buf), rows: usize, inp: usize, out: usize) -> Result<()> {
        let g = Gemm {
            m: out,
            n: inp,
            k: rows,
            a: Operand::transposed(dy, out),
            b: Operand::rows(x, inp),
            c: grad(w.0),
            accumulate: true,
            bias: None,
            precision: self.spec.precision,
        };
        self.backend.gemm(&g)?;
        self.backend.bias_grad(dy, grad(w.1), out)
    }

    /// LayerNorm backward of a trained norm `(weight, bias)` over the hidden width: `dx` written, its
    /// gradients accumulated.
    fn norm_grad(&mut self, x: Buf, norm: (Buf, Buf), dy: Buf, dx: Buf) -> Result<()> {
        self.norm_grad_width(x, norm, dy, dx, self.spec.hidden)
    }

    /// [`Self::norm_grad`] over rows of `width`.
    fn norm_grad_width(&mut self, x: Buf, norm: (Buf, Buf), dy: Buf, dx: Buf, width: usize) -> Result<()> {
        let eps = self.spec.eps;
        self.backend.layer_norm_grad(&LayerNormGrad { x, weight: norm.0, dy, dx, dweight: Some(grad(norm.0)), dbias: Some(grad(norm.1)), width, eps })
    }

    /// The input of head layer `i` as the forward left it: its dropout buffer, or the previous output.
    fn head_input(&self, plan: &Plan, i: usize, train: bool) -> Buf {
        if train && self.spec.head_drops(i) {
            return plan.head[i].input;
        }
        match i {
            0 => plan.pooler.map_or(plan.pooled, |p| p.1),
            _ => plan.head[i - 1].act,
        }
    }

    /// Forward over the uploaded batch; returns the logits buffer (`B × classes`).
    pub(crate) fn forward(&mut self, plan: &Plan, mode: Mode) -> Result<Buf> {
        let (s, w) = (Arc::clone(&self.spec), Arc::clone(&self.weights));
        let (n, b, h, i) = (plan.tokens, plan.sequences, s.hidden, s.intermediate);
        let e = s.embedding;
        self.backend.embed(&Embed { ids: plan.ints.ids, positions: plan.ints.positions, types: plan.ints.types, tables: w.tables, segments: w.segments, out: plan.emb_pre, width: e })?;
        // the embeddings' output: the first hidden state, or the projection's input
        let x0 = plan.hidden_at(0);
        let emb = plan.projected.map_or(x0, |p| p.0);
        self.backend.layer_norm(&LayerNorm { x: plan.emb_pre, weight: w.emb_norm.0, bias: w.emb_norm.1, out: emb, width: e, eps: s.eps })?;
        if let Some(d) = self.token_drop(plan, mode, s.hidden_dropout, site::EMBEDDINGS) {
            self.backend.dropout(emb, emb, e, &d)?;
        }
        if let Some(pw) = w.project {
            self.linear(emb, pw, x0, n, e, h)?;
        }
        let scale = 1.0 / ((h / s.heads.max(1)) as f64).sqrt();
        for (l, lw) in w.layers.iter().enumerate() {
            let (x, a) = (plan.hidden_at(l), plan.layer(l));
            self.linear(x, lw.qkv, a.qkv, n, h, 3 * h)?;
            let drop = (mode.train && s.attn_dropout > 0.0).then(|| (s.attn_dropout, Self::drop_key(mode, site::attention_probs(l))));
            self.backend.attention(&Attention {
                qkv: a.qkv,
                ctx: a.ctx,
                dqkv: None,
                cu_seqlens: plan.ints.cu_seqlens,
                heads: s.heads,
                width: h,
                scale: scale as f32,
                drop,
                padded_len: plan.padded_len,
                precision: s.precision,
            })?;
            let tmp = plan.narrow[0];
            self.linear(a.ctx, lw.attn_out, tmp, n, h, h)?;
            let drop = self.token_drop(plan, mode, s.attn_out_dropout, site::attention_output(l));
            self.backend.dropout_add(&DropoutAdd { a: tmp, residual: x, out: a.pre1, width: h, drop })?;
            self.backend.layer_norm(&LayerNorm { x: a.pre1, weight: lw.attn_norm.0, bias: lw.attn_norm.1, out: a.h1, width: h, eps: s.eps })?;
            self.linear(a.h1, lw.inter, a.u, n, h, i)?;
            self.backend.activation(s.act, a.u, plan.wide[0])?;
            self.linear(plan.wide[0], lw.out, tmp, n, i, h)?;
            let drop = self.token_drop(plan, mode, s.hidden_dropout, site::ffn_output(l));
            self.backend.dropout_add(&DropoutAdd { a: tmp, residual: a.h1, out: a.pre2, width: h, drop })?;
            let y = plan.hidden_at(l + 1);
            self.backend.layer_norm(&LayerNorm { x: a.pre2, weight: lw.out_norm.0, bias: lw.out_norm.1, out: y, width: h, eps: s.eps })?;
        }
        let last = plan.hidden_at(s.layers);
        self.backend.pool(&Pooling { x: last, out: plan.pooled, cu_seqlens: plan.ints.cu_seqlens, how: s.pooling, width: h })?;
        let mut x = plan.pooled;
        if let (Some(pw), Some((pre, out))) = (w.pooler, plan.pooler) {
            self.linear(plan.pooled, pw, pre, b, h, h)?;
            self.backend.activation(Activation::Tanh, pre, out)?;
            x = out;
        }
        let layers = w.head.len();
        for (k, hw) in w.head.iter().enumerate() {
            let (inp, out) = (s.head[k], s.head[k + 1]);
            let acts = plan.head[k];
            if mode.train && s.head_drops(k) {
                let d = Dropout { p: s.head_dropout, key: Self::drop_key(mode, site::head(k)), index: DropIndex::Dense };
                self.backend.dropout(x, acts.input, inp, &d)?;
            }
            let input = self.head_input(plan, k, mode.train);
            self.linear(input, *hw, acts.pre, b, inp, out)?;
            x = acts.pre;
            if k + 1 < layers {
                self.backend.activation(s.head_act, acts.pre, acts.act)?;
                x = acts.act;
            }
        }
        Ok(x)
    }

    /// Backward from the logit gradients in `plan.dlogits`, adding into the gradient accumulators.
    pub(crate) fn backward(&mut self, plan: &Plan, mode: Mode) -> Result<()> {
        let (s, w) = (Arc::clone(&self.spec), Arc::clone(&self.weights));
        let (n, b, h, i) = (plan.tokens, plan.sequences, s.hidden, s.intermediate);
        let head_trains = !s.freeze.head;
        let encoder_trains = !s.freeze.encoder;
        let lowest = if encoder_trains { s.freeze.layers.min(s.layers) } else { s.layers };
        let embeddings_train = encoder_trains && s.freeze.layers == 0;

        // head, last layer first: dpre in head_grad[1] (or the logit gradients), dx in head_grad[0]
        let mut dy = plan.dlogits;
        let layers = w.head.len();
        for k in (0..layers).rev() {
            let (inp, out) = (s.head[k], s.head[k + 1]);
            let dpre = if k + 1 == layers {
                dy
            } else {
                let d = plan.head_grad[1].part(0, b * out);
                self.backend.activation_grad(s.head_act, plan.head[k].pre, dy, d)?;
                d
            };
            if head_trains {
                let input = self.head_input(plan, k, mode.train);
                self.param_grad(dpre, input, w.head[k], b, inp, out)?;
            }
            if k == 0 && !encoder_trains {
                return Ok(());
            }
            let dx = plan.head_grad[0].part(0, b * inp);
            self.input_grad(dpre, w.head[k].0, dx, b, inp, out, false)?;
            if mode.train && s.head_drops(k) {
                let d = Dropout { p: s.head_dropout, key: Self::drop_key(mode, site::head(k)), index: DropIndex::Dense };
                self.backend.dropout(dx, dx, inp, &d)?;
            }
            dy = dx;
        }
        let mut dpooled = dy;
        if let (Some(pw), Some((pre, _))) = (w.pooler, plan.pooler) {
            let dpre = plan.head_grad[1].part(0, b * h);
            self.backend.activation_grad(Activation::Tanh, pre, dpooled, dpre)?;
            self.param_grad(dpre, plan.pooled, pw, b, h, h)?;
            if lowest == s.layers && !embeddings_train {
                return Ok(());
            }
            let dx = plan.head_grad[0].part(0, b * h);
            self.input_grad(dpre, pw.0, dx, b, h, h, false)?;
            dpooled = dx;
        }
        if lowest == s.layers && !embeddings_train {
            return Ok(());
        }
        // dY: gradient at the current layer's output; dX: at its input
        let (mut dy, mut dx) = (plan.narrow[2], plan.narrow[3]);
        self.backend.fill(dy, 0.0)?;
        self.backend.pool_grad(&Pooling { x: dpooled, out: dy, cu_seqlens: plan.ints.cu_seqlens, how: s.pooling, width: h })?;
        let scale = 1.0 / ((h / s.heads.max(1)) as f64).sqrt();
        for l in (lowest..s.layers).rev() {
            let (lw, a, x) = (w.layers[l], plan.layer(l), plan.hidden_at(l));
            let dpre = plan.narrow[0];
            self.norm_grad(a.pre2, lw.out_norm, dy, dpre)?;
            let d_out = match self.token_drop(plan, mode, s.hidden_dropout, site::ffn_output(l)) {
                Some(d) => {
                    self.backend.dropout(dpre, plan.narrow[1], h, &d)?;
                    plan.narrow[1]
                }
                None => dpre,
            };
            // FFN: the activation is recomputed for dW2; its gradient lands in wide[0]
            self.backend.activation(s.act, a.u, plan.wide[0])?;
            self.param_grad(d_out, plan.wide[0], lw.out, n, i, h)?;
            self.input_grad(d_out, lw.out.0, plan.wide[1], n, i, h, false)?;
            self.backend.activation_grad(s.act, a.u, plan.wide[1], plan.wide[0])?;
            self.param_grad(plan.wide[0], a.h1, lw.inter, n, h, i)?;
            // dh1 = residual gradient + du W1
            self.input_grad(plan.wide[0], lw.inter.0, dpre, n, h, i, true)?;
            self.norm_grad(a.pre1, lw.attn_norm, dpre, dx)?;
            let d_attn = match self.token_drop(plan, mode, s.attn_out_dropout, site::attention_output(l)) {
                Some(d) => {
                    self.backend.dropout(dx, plan.narrow[1], h, &d)?;
                    plan.narrow[1]
                }
                None => dx,
            };
            self.param_grad(d_attn, a.ctx, lw.attn_out, n, h, h)?;
            let dctx = plan.narrow[0];
            self.input_grad(d_attn, lw.attn_out.0, dctx, n, h, h, false)?;
            let drop = (mode.train && s.attn_dropout > 0.0).then(|| (s.attn_dropout, Self::drop_key(mode, site::attention_probs(l))));
            self.backend.attention_grad(&Attention {
                qkv: a.qkv,
                ctx: dctx,
                dqkv: Some(plan.dqkv),
                cu_seqlens: plan.ints.cu_seqlens,
                heads: s.heads,
                width: h,
                scale: scale as f32,
                drop,
                padded_len: plan.padded_len,
                precision: s.precision,
            })?;
            self.param_grad(plan.dqkv, x, lw.qkv, n, h, 3 * h)?;
            if l > lowest || embeddings_train {
                self.input_grad(plan.dqkv, lw.qkv.0, dx, n, h, 3 * h, true)?;
            }
            std::mem::swap(&mut dy, &mut dx);
        }
        if embeddings_train {
            let e = s.embedding;
            // through the projection first: dW += dyᵀ emb, dy ← dy W (N × E)
            if let (Some(pw), Some((emb, demb))) = (w.project, plan.projected) {
                self.param_grad(dy, emb, pw, n, e, h)?;
                self.input_grad(dy, pw.0, demb, n, e, h, false)?;
                dy = demb;
            }
            if let Some(d) = self.token_drop(plan, mode, s.hidden_dropout, site::EMBEDDINGS) {
                self.backend.dropout(dy, dy, e, &d)?;
            }
            let dsum = plan.narrow[0].part(0, n * e);
            self.norm_grad_width(plan.emb_pre, w.emb_norm, dy, dsum, e)?;
            let [word, pos] = w.tables;
            self.backend.embed_grad(&EmbedGrad {
                index: [plan.ints.ids, plan.ints.positions, plan.ints.types],
                tables: [Some(grad(word)), Some(grad(pos)), w.segments.map(grad)],
                dy: dsum,
                width: e,
            })?;
        }
        Ok(())
    }
}
