//! The backend seam of the engine: buffers named by region and offset ([`Buf`], [`Ints`]) and one
//! [`Backend`] method per kernel or matrix product, each taking a plain argument struct. The schedule
//! (`schedule.rs`) speaks only this trait; the CPU backend runs each call at once on its own memory, a
//! GPU backend queues it on a stream.

use crate::error::Result;
use crate::model::Activation;
use crate::runtime::Precision;

use super::ops::{AdamStep, Pool};

/// A memory region of the engine; one allocation each, sized once per run (grown for a larger batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// f32 master weights, laid out by [`super::layout::Layout`].
    Params,
    /// Gradient accumulators, same offsets as the weights.
    Grads,
    /// AdamW first moments, same offsets.
    AdamM,
    /// AdamW second moments, same offsets.
    AdamV,
    /// Activations and scratch, laid out by [`super::plan::Plan`].
    Acts,
}

impl Region {
    /// The region's place among the five (backends keep one allocation per region in an array).
    pub fn index(self) -> usize {
        match self {
            Region::Params => 0,
            Region::Grads => 1,
            Region::AdamM => 2,
            Region::AdamV => 3,
            Region::Acts => 4,
        }
    }
}

/// The longest sequence of sequence starts `cu` that begin at 0, never decrease and end at `tokens`;
/// `None` when they do not (a wiring bug: backends refuse the call).
pub fn longest_sequence(cu: &[u32], tokens: usize) -> Option<usize> {
    let valid = cu.first() == Some(&0) && cu.last().map(|&n| n as usize) == Some(tokens) && cu.windows(2).all(|w| w[1] >= w[0]);
    valid.then(|| cu.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0))
}

/// A run of f32 elements in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buf {
    /// The region.
    pub region: Region,
    /// First element.
    pub offset: usize,
    /// Elements.
    pub len: usize,
}

impl Buf {
    /// `len` elements starting `at` elements into this buffer.
    pub fn part(self, at: usize, len: usize) -> Buf {
        // the schedule takes parts of planned buffers by planned sizes: a violation is a bug, not input
        assert!(at.checked_add(len).is_some_and(|end| end <= self.len), "part {at}+{len} of {}", self.len);
        Buf { region: self.region, offset: self.offset + at, len }
    }

    /// Whether two buffers share an element.
    pub fn overlaps(&self, other: &Buf) -> bool {
        self.region == other.region && self.len > 0 && other.len > 0 && self.offset < other.offset + other.len && other.offset < self.offset + self.len
    }
}

/// The first output of a call that overlaps one of its inputs or another output (backends refuse such
/// calls: the CPU hands out disjoint slices, the GPU's kernels read inputs while writing outputs).
pub fn first_overlap(ins: &[Buf], outs: &[Buf]) -> Option<Buf> {
    outs.iter().enumerate().find(|(i, o)| ins.iter().chain(&outs[i + 1..]).any(|b| o.overlaps(b))).map(|(_, o)| *o)
}

/// A run of u32 elements in the integer region (token ids, positions, sequence starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ints {
    /// First element.
    pub offset: usize,
    /// Elements.
    pub len: usize,
}

/// A strided matrix operand: element `(i, j)` is element `i · rs + j · cs` of `buf`.
#[derive(Debug, Clone, Copy)]
pub struct Operand {
    /// The data.
    pub buf: Buf,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl Operand {
    /// A row-major matrix with `cols` columns.
    pub fn rows(buf: Buf, cols: usize) -> Operand {
        Operand { buf, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(buf: Buf, cols: usize) -> Operand {
        Operand { buf, rs: 1, cs: cols }
    }
}

/// `c (m × n, row stride n) = (accumulate ? c : bias rows or 0) + a (m × k) · b (k × n)`.
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Left operand.
    pub a: Operand,
    /// Right operand.
    pub b: Operand,
    /// Result, row-major.
    pub c: Buf,
    /// Add onto `c` (β = 1) instead of overwriting it.
    pub accumulate: bool,
    /// A bias row (`n`) written into every row of `c` before the product accumulates (not with `accumulate`).
    pub bias: Option<Buf>,
    /// Operand precision.
    pub precision: Precision,
}

/// Which dropout counter an element uses (design 2.4: masks are functions of logical coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropIndex {
    /// Element `(r, j)` of a `rows × width` buffer draws counter `r · width + j`.
    Dense,
    /// Packed token rows: element `(t, j)` draws `prow[t] · width + j`, `prow[t]` the token's padded row
    /// `row · S + position` (what the padded graph uses).
    Tokens(Ints),
}

/// One dropout site: keep an element when `uniform(key, counter) >= p`, scaling kept ones by `1 / (1 - p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Drop probability (the keep scale `1 / (1 - p)` is computed in f64, as the graph does).
    pub p: f64,
    /// The site's stream key.
    pub key: u64,
    /// Counter numbering.
    pub index: DropIndex,
}

/// Token, position and segment embeddings summed per packed token.
#[derive(Debug, Clone, Copy)]
pub struct Embed {
    /// Token ids, `[N]`.
    pub ids: Ints,
    /// Position ids, `[N]`.
    pub positions: Ints,
    /// Segment ids, `[N]`.
    pub types: Ints,
    /// Word table, position table (`rows × width` each).
    pub tables: [Buf; 2],
    /// Segment table, for families with token types (`types` is ignored without one).
    pub segments: Option<Buf>,
    /// Output, `N × width`.
    pub out: Buf,
    /// Hidden size.
    pub width: usize,
}

/// Adds rows of `dy` into the embedding tables' gradients (`None`: that table is not trained).
#[derive(Debug, Clone, Copy)]
pub struct EmbedGrad {
    /// Token ids, position ids, segment ids, `[N]` each.
    pub index: [Ints; 3],
    /// Gradients of the word, position and segment tables.
    pub tables: [Option<Buf>; 3],
    /// Gradient at the embeddings' sum, `N × width`.
    pub dy: Buf,
    /// Hidden size.
    pub width: usize,
}

/// LayerNorm over rows of `width`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm {
    /// Input.
    pub x: Buf,
    /// Scale and shift, `[width]` each.
    pub weight: Buf,
    /// Shift.
    pub bias: Buf,
    /// Output (may not overlap `x`).
    pub out: Buf,
    /// Row width.
    pub width: usize,
    /// Epsilon.
    pub eps: f32,
}

/// The LayerNorm backward: `dx` written, weight and bias gradients added (`None` when frozen).
#[derive(Debug, Clone, Copy)]
pub struct LayerNormGrad {
    /// The forward input.
    pub x: Buf,
    /// The scale.
    pub weight: Buf,
    /// Gradient at the output.
    pub dy: Buf,
    /// Gradient at the input (written).
    pub dx: Buf,
    /// Scale and shift gradients (added).
    pub dweight: Option<Buf>,
    /// Shift gradient.
    pub dbias: Option<Buf>,
    /// Row width.
    pub width: usize,
    /// Epsilon.
    pub eps: f32,
}

/// `out = dropout(a) + residual` (no dropout: a plain sum).
#[derive(Debug, Clone, Copy)]
pub struct DropoutAdd {
    /// The sublayer output.
    pub a: Buf,
    /// The residual stream.
    pub residual: Buf,
    /// The sum (may not overlap either input).
    pub out: Buf,
    /// Row width.
    pub width: usize,
    /// The mask.
    pub drop: Option<Dropout>,
}

/// Multi-head self-attention over packed sequences, reading Q, K, V as column blocks of `qkv` (`N × 3H`).
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    /// Projected queries, keys and values, `N × 3H`.
    pub qkv: Buf,
    /// Context (forward, written) or its gradient (backward, read), `N × H`.
    pub ctx: Buf,
    /// Backward only: the gradient at `qkv` (written).
    pub dqkv: Option<Buf>,
    /// Sequence starts, `[B + 1]`.
    pub cu_seqlens: Ints,
    /// Heads.
    pub heads: usize,
    /// Hidden size `H`.
    pub width: usize,
    /// Score scale, `1 / √d`.
    pub scale: f32,
    /// Probability dropout: probability and key; counters `((b · heads + h) · S + q) · S + k`.
    pub drop: Option<(f64, u64)>,
    /// The padded length `S` of the batch (the dropout counters' stride).
    pub padded_len: usize,
    /// The run's matrix precision. Attention products stay f32 on the CPU; a GPU backend may be told to
    /// run them in bf16 for bf16 runs.
    pub precision: Precision,
}

/// Sequence pooling (forward writes `out`; backward adds into `out`).
#[derive(Debug, Clone, Copy)]
pub struct Pooling {
    /// Token rows (`N × width`) forward; pooled gradient (`B × width`) backward.
    pub x: Buf,
    /// Pooled rows forward; token-row gradient backward.
    pub out: Buf,
    /// Sequence starts.
    pub cu_seqlens: Ints,
    /// First token or mean.
    pub how: Pool,
    /// Row width.
    pub width: usize,
}

/// Softmax cross-entropy of logits against labels (K12).
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxCe<'a> {
    /// Logits, `B × classes`.
    pub logits: Buf,
    /// Classes.
    pub classes: usize,
    /// Class id per row.
    pub labels: &'a [usize],
    /// Loss weight per class.
    pub weights: Option<&'a [f32]>,
    /// Loss scale (`1 / grad_accum`).
    pub scale: f64,
    /// Probabilities (written).
    pub probs: Buf,
    /// Gradient at the logits (written).
    pub dlogits: Buf,
}

/// One computing device with its memory.
pub trait Backend {
    /// Makes the regions at least this large (elements); contents of grown regions are zero.
    fn reserve(&mut self, region: Region, len: usize) -> Result<()>;
    /// Makes the integer region at least this large.
    fn reserve_ints(&mut self, len: usize) -> Result<()>;
    /// Copies host data into a buffer.
    fn upload(&mut self, dst: Buf, src: &[f32]) -> Result<()>;
    /// Copies host integers into the integer region.
    fn upload_ints(&mut self, dst: Ints, src: &[u32]) -> Result<()>;
    /// Copies a buffer to the host (waiting for queued work).
    fn download(&mut self, src: Buf, dst: &mut [f32]) -> Result<()>;
    /// Sets every element of a buffer.
    fn fill(&mut self, dst: Buf, value: f32) -> Result<()>;
    /// A matrix product.
    fn gemm(&mut self, g: &Gemm) -> Result<()>;
    /// `db += Σ_rows dy` for `dy` of `rows × width`, rows in a fixed order.
    fn bias_grad(&mut self, dy: Buf, db: Buf, width: usize) -> Result<()>;
    /// Embedding gather and sum.
    fn embed(&mut self, e: &Embed) -> Result<()>;
    /// Embedding gradient scatter-add.
    fn embed_grad(&mut self, e: &EmbedGrad) -> Result<()>;
    /// LayerNorm forward.
    fn layer_norm(&mut self, a: &LayerNorm) -> Result<()>;
    /// LayerNorm backward.
    fn layer_norm_grad(&mut self, a: &LayerNormGrad) -> Result<()>;
    /// `out = dropout(x)` over rows of `width` (`x == out`: in place). Also the dropout backward.
    fn dropout(&mut self, x: Buf, out: Buf, width: usize, drop: &Dropout) -> Result<()>;
    /// `out = dropout(a) + residual`.
    fn dropout_add(&mut self, a: &DropoutAdd) -> Result<()>;
    /// `out = act(x)`.
    fn activation(&mut self, act: Activation, x: Buf, out: Buf) -> Result<()>;
    /// `dx = dy · act'(x)` (`x`: the activation's input).
    fn activation_grad(&mut self, act: Activation, x: Buf, dy: Buf, dx: Buf) -> Result<()>;
    /// Attention forward (writes `ctx`).
    fn attention(&mut self, a: &Attention) -> Result<()>;
    /// Attention backward (reads `ctx` as the context's gradient, writes `dqkv`).
    fn attention_grad(&mut self, a: &Attention) -> Result<()>;
    /// Pooling forward.
    fn pool(&mut self, p: &Pooling) -> Result<()>;
    /// Pooling backward (adds).
    fn pool_grad(&mut self, p: &Pooling) -> Result<()>;
    /// Loss, probabilities and logit gradients; returns the loss.
    fn softmax_ce(&mut self, a: &SoftmaxCe<'_>) -> Result<f64>;
    /// `Σ g²` over gradient buffers, in a fixed order.
    fn grad_norm_sq(&mut self, grads: &[Buf]) -> Result<f64>;
    /// AdamW on each `(params segment, decays)`, reading the gradients and moments at the same offsets of
    /// their regions, then zeroing the gradients (the next micro-step accumulates from zero).
    fn adamw(&mut self, segments: &[(Buf, bool)], step: &AdamStep) -> Result<()>;
    /// Waits until every queued call has run (a no-op for backends that run calls at once).
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    /// Bytes free for new regions on this backend's memory, when known (the planner refuses batches
    /// that would not fit, naming a batch size that does).
    fn free_memory(&self) -> Option<u64> {
        None
    }
}
