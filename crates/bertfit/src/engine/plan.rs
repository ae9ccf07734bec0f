//! The activation arena's plan: where every saved activation and scratch buffer of one forward and
//! backward lives, for a given model shape and batch (tokens `N`, sequences `B`). Training keeps one set
//! of saved buffers per layer; inference reuses one set for all layers. Offsets are aligned to 64 floats.

use super::backend::{Buf, Ints, Region};
use super::layout::ALIGN;

/// The model dimensions the plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Hidden size `H`.
    pub hidden: usize,
    /// Width `E` of the embedding tables (ELECTRA's `embedding_size`; `H` elsewhere).
    pub embedding: usize,
    /// FFN width `I`.
    pub intermediate: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Whether the encoder has a pooler (CLS pooling).
    pub pooler: bool,
    /// Widths through the head: `H`, the hidden head layers, the classes.
    pub head: Vec<usize>,
}

/// Saved activations of one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerActs {
    /// Q, K, V, `N × 3H`.
    pub qkv: Buf,
    /// Attention context, `N × H`.
    pub ctx: Buf,
    /// Input of the attention LayerNorm (dropout(attention output) + layer input), `N × H`.
    pub pre1: Buf,
    /// Attention LayerNorm output, `N × H`.
    pub h1: Buf,
    /// FFN pre-activation, `N × I`.
    pub u: Buf,
    /// Input of the output LayerNorm, `N × H`.
    pub pre2: Buf,
}

/// Saved head activations of one dense head layer.
#[derive(Debug, Clone, Copy)]
pub struct HeadActs {
    /// Input after dropout, `B × in`.
    pub input: Buf,
    /// Output before the activation, `B × out`.
    pub pre: Buf,
    /// Output after the activation (hidden layers only), `B × out`.
    pub act: Buf,
}

/// Integer inputs of a batch.
#[derive(Debug, Clone, Copy)]
pub struct IntsPlan {
    /// Token ids, positions, segment ids, padded row index (`row · S + position`), each `[N]`.
    pub ids: Ints,
    /// Position ids.
    pub positions: Ints,
    /// Segment ids.
    pub types: Ints,
    /// Padded row of each token.
    pub prow: Ints,
    /// Sequence starts, `[B + 1]`.
    pub cu_seqlens: Ints,
    /// Elements in all.
    pub total: usize,
}

/// Every buffer of one step.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Tokens.
    pub tokens: usize,
    /// Sequences.
    pub sequences: usize,
    /// The padded length `S` of the batch (dropout counters' stride).
    pub padded_len: usize,
    /// Embedding sum before its LayerNorm, `N × E`.
    pub emb_pre: Buf,
    /// With projected embeddings (`E ≠ H`): the embeddings' LayerNorm (+ dropout) output, `N × E`, the
    /// projection's input, and the gradient there.
    pub projected: Option<(Buf, Buf)>,
    /// Hidden states: the embeddings' output, then each layer's (training: `layers + 1`; inference: 2, alternating).
    pub hidden: Vec<Buf>,
    /// Per-layer saved activations (training: one per layer; inference: one, reused).
    pub layers: Vec<LayerActs>,
    /// Pooled rows, `B × H`.
    pub pooled: Buf,
    /// Pooler pre-activation and output, `B × H` (CLS pooling).
    pub pooler: Option<(Buf, Buf)>,
    /// Head layers.
    pub head: Vec<HeadActs>,
    /// Probabilities and logit gradients, `B × classes`.
    pub probs: Buf,
    /// Logit gradients.
    pub dlogits: Buf,
    /// Two `B × max width` gradient buffers for the head backward.
    pub head_grad: [Buf; 2],
    /// Scratch: `N × I` twice (activation, its gradient), `N × H` four times, `N × 3H` once.
    pub wide: [Buf; 2],
    /// `N × H` scratch buffers.
    pub narrow: [Buf; 4],
    /// `N × 3H` scratch (the Q/K/V gradient).
    pub dqkv: Buf,
    /// Elements of the activation region.
    pub total: usize,
    /// Integer inputs.
    pub ints: IntsPlan,
}

/// Bump allocation of aligned buffers.
struct Bump {
    at: usize,
}

impl Bump {
    fn take(&mut self, len: usize) -> Buf {
        let offset = self.at.next_multiple_of(ALIGN);
        self.at = offset + len;
        Buf { region: Region::Acts, offset, len }
    }
}

impl Plan {
    /// The plan for `tokens` packed tokens in `sequences` sequences padded to `padded_len`; `train` keeps
    /// every layer's activations.
    pub fn new(shape: &Shape, tokens: usize, sequences: usize, padded_len: usize, train: bool) -> Plan {
        let (n, b, h, i) = (tokens, sequences, shape.hidden, shape.intermediate);
        let mut m = Bump { at: 0 };
        let e = shape.embedding;
        let emb_pre = m.take(n * e);
        let projected = (e != h).then(|| (m.take(n * e), m.take(n * e)));
        let hidden_count = if train { shape.layers + 1 } else { 2 };
        let hidden: Vec<Buf> = (0..hidden_count).map(|_| m.take(n * h)).collect();
        let layer_count = if train { shape.layers } else { 1.min(shape.layers) };
        let layers = (0..layer_count)
            .map(|_| LayerActs { qkv: m.take(n * 3 * h), ctx: m.take(n * h), pre1: m.take(n * h), h1: m.take(n * h), u: m.take(n * i), pre2: m.take(n * h) })
            .collect();
        let pooled = m.take(b * h);
        let pooler = shape.pooler.then(|| (m.take(b * h), m.take(b * h)));
        let head = shape.head.windows(2).map(|w| HeadActs { input: m.take(b * w[0]), pre: m.take(b * w[1]), act: m.take(b * w[1]) }).collect();
        let classes = shape.head.last().copied().unwrap_or(0);
        let probs = m.take(b * classes);
        let dlogits = m.take(b * classes);
        let widest = shape.head.iter().copied().max().unwrap_or(0);
        let head_grad = [m.take(b * widest), m.take(b * widest)];
        let wide = [m.take(n * i), m.take(n * i)];
        let narrow = [m.take(n * h), m.take(n * h), m.take(n * h), m.take(n * h)];
        let dqkv = m.take(n * 3 * h);
        let total = m.at.next_multiple_of(ALIGN);
        let mut at = 0;
        let mut int = |len: usize| {
            let r = Ints { offset: at, len };
            at += len;
            r
        };
        let (ids, positions, types, prow, cu_seqlens) = (int(n), int(n), int(n), int(n), int(b + 1));
        let ints = IntsPlan { ids, positions, types, prow, cu_seqlens, total: at };
        Plan { tokens, sequences, padded_len, emb_pre, projected, hidden, layers, pooled, pooler, head, probs, dlogits, head_grad, wide, narrow, dqkv, total, ints }
    }

    /// The saved activations of layer `l`.
    pub fn layer(&self, l: usize) -> LayerActs {
        self.layers[l.min(self.layers.len() - 1)]
    }

    /// The input of layer `l` (`l = layers`: the encoder's output).
    pub fn hidden_at(&self, l: usize) -> Buf {
        if self.hidden.len() == 2 {
            self.hidden[l % 2]
        } else {
            self.hidden[l]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_bufs(p: &Plan) -> Vec<Buf> {
        let mut v = vec![p.emb_pre, p.pooled, p.probs, p.dlogits, p.dqkv];
        if let Some((a, b)) = p.projected {
            v.extend([a, b]);
        }
        v.extend(&p.hidden);
        for l in &p.layers {
            v.extend([l.qkv, l.ctx, l.pre1, l.h1, l.u, l.pre2]);
        }
        if let Some((a, b)) = p.pooler {
            v.extend([a, b]);
        }
        for h in &p.head {
            v.extend([h.input, h.pre, h.act]);
        }
        v.extend(p.head_grad);
        v.extend(p.wide);
        v.extend(p.narrow);
        v
    }

    #[test]
    fn buffers_are_disjoint_aligned_and_inside_the_region() {
        let shape = Shape { hidden: 24, embedding: 24, intermediate: 40, layers: 3, pooler: true, head: vec![24, 16, 3] };
        let projected = Shape { embedding: 8, ..shape.clone() };
        for (shape, train) in [(&shape, true), (&shape, false), (&projected, true)] {
            let p = Plan::new(shape, 37, 5, 11, train);
            assert_eq!((p.emb_pre.len, p.projected.is_some()), (37 * shape.embedding, shape.embedding != shape.hidden));
            let bufs = all_bufs(&p);
            for (i, a) in bufs.iter().enumerate() {
                assert!(a.offset.is_multiple_of(ALIGN) && a.offset + a.len <= p.total);
                for b in &bufs[i + 1..] {
                    assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
                }
            }
            assert_eq!(p.layers.len(), if train { 3 } else { 1 });
            assert_eq!(p.hidden_at(3), if train { p.hidden[3] } else { p.hidden[1] });
            assert_eq!(p.ints.total, 4 * 37 + 6);
        }
    }
}
