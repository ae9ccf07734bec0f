//! The CUDA backend of the engine (design 4, milestone M2): each region is one device buffer, every
//! [`Backend`] call is queued on the GPU's one stream (cuBLASLt for the matrix products, `engine.cu` for
//! the rest). f32 activations; in bf16 mode the matrix operands are rounded to bf16 (RNE: the values the
//! CPU backend's bf16 mode multiplies) — the weights once per update into a bf16 copy of the parameters,
//! activations per product into scratch — and products accumulate in f32 into f32 outputs. Host reads (the
//! loss, the gradient norm) wait for the queue. Reductions are fixed-order (no float atomics): the same
//! inputs on the same GPU model give the same bits.

use bertfit_cuda::blaslt::GemmArgs;
use bertfit_cuda::kernels::{Args, Grid, ADAMW_KERNEL};
use bertfit_cuda::launch::{column_chunks, grid_stride, warp_rows, COLUMN_BLOCK, WARPS_PER_BLOCK};
use bertfit_cuda::{Blas, CudaError, DType, DeviceBuffer, GemmShape, Gpu, Kernels, Region as Span};

use super::backend::{first_overlap, Attention, Backend, Buf, DropIndex, Dropout, DropoutAdd, Embed, EmbedGrad, Gemm, Ints, LayerNorm, LayerNormGrad, Pooling, Region, SoftmaxCe};
use super::ops::{self, AdamStep, Pool};
use crate::error::{Error, Result};
use crate::model::Activation;
use crate::runtime::Precision;

/// A CUDA backend call that cannot run (a wiring bug or an input outside its table), or a device error.
#[derive(Debug, thiserror::Error)]
pub enum CudaBackendError {
    /// A call's arguments do not fit its buffers.
    #[error("cuda backend: {0}")]
    Call(String),
    /// The device, driver or cuBLASLt failed.
    #[error(transparent)]
    Device(#[from] CudaError),
}

fn fail(msg: impl Into<String>) -> Error {
    Error::Backend(Box::new(CudaBackendError::Call(msg.into())))
}

fn dev(e: CudaError) -> Error {
    Error::Backend(Box::new(CudaBackendError::Device(e)))
}

/// Blocks of the f64 sum-of-squares kernel (fixed, so the summation order is too).
const NORM_BLOCKS: u32 = 64;
/// Threads of that kernel (its shared-memory tree is sized for this).
const NORM_THREADS: u32 = 256;
/// Threads per block of the per-sequence and per-group kernels.
const ROW_THREADS: u32 = 256;
/// Dynamic shared memory a block may use without opting in.
const SHARED_LIMIT: usize = 48 << 10;

/// One growable device allocation: `len` elements of the size it was last sized for, `bytes` in all.
#[derive(Default)]
struct Mem {
    buf: Option<DeviceBuffer>,
    len: usize,
    bytes: usize,
}

impl Mem {
    fn base(&self) -> u64 {
        // an empty allocation is never dereferenced: calls on it have zero elements
        self.buf.as_ref().and_then(|b| b.at(b.whole()).ok()).unwrap_or(0)
    }

    /// Room for at least `len` elements of `elem` bytes (old contents dropped when it grows).
    fn ensure(&mut self, gpu: &Gpu, len: usize, elem: usize) -> Result<u64> {
        let bytes = len.max(1) * elem;
        if self.bytes < bytes || self.buf.is_none() {
            // queued work may still read the old buffer
            gpu.synchronize().map_err(dev)?;
            self.buf = None;
            self.buf = Some(DeviceBuffer::alloc(gpu, bytes).map_err(dev)?);
            self.bytes = bytes;
        }
        self.len = self.bytes / elem;
        Ok(self.base())
    }
}

/// Scratch slots (grown on demand, never shrunk).
#[derive(Clone, Copy)]
enum Scratch {
    /// bf16 copy of a product's left operand (cuBLASLt's A).
    OperandA = 0,
    /// bf16 copy of its right operand.
    OperandB,
    /// Per-row LayerNorm statistics, attention row statistics (f32).
    Stats,
    /// Column-sum partials (f32).
    Partials,
    /// Sum-of-squares partials (f64).
    Norms,
    /// Embedding-gradient groups (u32).
    Groups,
    /// Attention v1's packed heads, scores and their gradients (f32).
    Attn,
    /// Segment lists (u64 offset, length pairs).
    Segments,
}

/// The engine's memory and queue on one GPU.
pub struct CudaBackend {
    gpu: Gpu,
    kernels: Kernels,
    blas: Blas,
    regions: [Mem; 5],
    ints: Mem,
    /// The integer region as last uploaded (sequence starts and token ids are read on the host to size
    /// launches and to group embedding gradients, without a device round trip).
    ints_host: Vec<u32>,
    /// bf16 copy of the parameters (bf16 mode), refreshed before the first product after a write.
    params_bf16: Mem,
    params_stale: bool,
    scratch: [Mem; 8],
    /// Attention one warp per row (v0) instead of batched products (v1).
    row_attention: bool,
    /// bf16 operands for the attention products of bf16 runs (f32 otherwise, as on the CPU).
    bf16_attention: bool,
}

// SAFETY: the backend is used by one thread at a time (`&mut self`); CUDA driver and cuBLASLt handles may
// be used from any thread once the context is current, which every entry point makes it (`call`, `bind`).
unsafe impl Send for CudaBackend {}

fn slot(r: Region) -> usize {
    match r {
        Region::Params => 0,
        Region::Grads => 1,
        Region::AdamM => 2,
        Region::AdamV => 3,
        Region::Acts => 4,
    }
}

fn rows_of(what: &str, b: Buf, width: usize) -> Result<usize> {
    if width == 0 || !b.len.is_multiple_of(width) {
        return Err(fail(format!("{what}: {} elements are not rows of {width}", b.len)));
    }
    Ok(b.len / width)
}

fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| fail(format!("{what} {v} exceeds the kernels' 32-bit range")))
}

/// The activation's kernel code (`engine.cu` `bf_act`).
fn act_code(a: Activation) -> i32 {
    match a {
        Activation::GeluErf => 0,
        Activation::GeluTanh => 1,
        Activation::Relu => 2,
        Activation::Tanh => 3,
    }
}

/// A strided operand as cuBLASLt sees it: (transposed?, leading dimension, elements spanned).
fn lt_layout(rs: usize, cs: usize, rows: usize, cols: usize, what: &str) -> std::result::Result<(bool, usize, usize), String> {
    if cs == 1 && rs >= cols {
        // row-major: as column-major it is its own transpose, leading dimension rs
        Ok((false, rs, (rows - 1) * rs + cols))
    } else if rs == 1 && cs >= rows {
        Ok((true, cs, (cols - 1) * cs + rows))
    } else {
        Err(format!("{what} operand with strides ({rs}, {cs}) for {rows}×{cols}"))
    }
}

/// A row-major product `c (m × n, row stride n) = a (m × k) · b (k × n)` with operand strides `(rs, cs)`,
/// in cuBLASLt's column-major terms: `cᵀ = bᵀ · aᵀ`, so cuBLASLt's A is our `b` and its B our `a`. Each
/// operand must be row-major (`cs == 1`) or column-major (`rs == 1`) with a leading dimension no smaller
/// than its contiguous extent. Returns the shape (f32, one product; the caller sets types and batches) and
/// the element spans our `a` and our `b` touch.
pub fn lt_raw(m: usize, n: usize, k: usize, a: (usize, usize), b: (usize, usize), accumulate: bool) -> std::result::Result<(GemmShape, usize, usize), String> {
    if m == 0 || n == 0 || k == 0 {
        return Err(format!("empty product {m}×{n}×{k}"));
    }
    let (b_col, ldb, b_span) = lt_layout(b.0, b.1, k, n, "right")?;
    let (a_col, lda, a_span) = lt_layout(a.0, a.1, m, k, "left")?;
    let shape = GemmShape {
        m: n as u64,
        n: m as u64,
        k: k as u64,
        trans_a: b_col,
        trans_b: a_col,
        lda: ldb as u64,
        ldb: lda as u64,
        ldd: n as u64,
        a: DType::F32,
        b: DType::F32,
        d: DType::F32,
        bias: false,
        accumulate,
        batch: 1,
        strides: [0; 3],
    };
    Ok((shape, a_span, b_span))
}

/// [`lt_raw`] for an engine product.
pub fn lt_shape(g: &Gemm) -> std::result::Result<(GemmShape, usize, usize), String> {
    lt_raw(g.m, g.n, g.k, (g.a.rs, g.a.cs), (g.b.rs, g.b.cs), g.accumulate)
}

/// Token indices grouped by table row, stable: `(order, starts, rows)` with group `i` holding the tokens
/// `order[starts[i]..starts[i + 1]]` (ascending) of table row `rows[i]`.
pub fn group_rows(index: &[u32], table_rows: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut count = vec![0u32; table_rows + 1];
    for &i in index {
        count[i as usize + 1] += 1;
    }
    for r in 0..table_rows {
        count[r + 1] += count[r];
    }
    let mut fill = count.clone();
    let mut order = vec![0u32; index.len()];
    for (t, &i) in index.iter().enumerate() {
        order[fill[i as usize] as usize] = t as u32;
        fill[i as usize] += 1;
    }
    let (mut starts, mut rows) = (Vec::new(), Vec::new());
    for r in 0..table_rows {
        if count[r + 1] > count[r] {
            starts.push(count[r]);
            rows.push(r as u32);
        }
    }
    starts.push(index.len() as u32);
    (order, starts, rows)
}

/// Tokens summed by one block of the embedding gradient's first stage.
const EMBED_CHUNK: u32 = 32;

/// Splits each group `starts[g]..starts[g + 1]` of a grouped token list into chunks of at most `chunk`:
/// `(chunk_start, chunk_end, group_chunk)`, group `g` owning chunks `group_chunk[g]..group_chunk[g + 1]`.
pub fn chunk_groups(starts: &[u32], chunk: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let (mut cs, mut ce, mut gc) = (Vec::new(), Vec::new(), vec![0u32]);
    for w in starts.windows(2) {
        let mut q = w[0];
        while q < w[1] {
            let end = (q + chunk.max(1)).min(w[1]);
            cs.push(q);
            ce.push(end);
            q = end;
        }
        gc.push(cs.len() as u32);
    }
    (cs, ce, gc)
}

/// Sequence starts that begin at 0, never decrease and end at `tokens`; returns the longest sequence.
fn check_cu(cu: &[u32], tokens: usize, what: &str) -> Result<usize> {
    if cu.first() != Some(&0) || cu.last().map(|&n| n as usize) != Some(tokens) || cu.windows(2).any(|w| w[1] < w[0]) {
        return Err(fail(format!("{what}: sequence starts do not cover the {tokens} tokens in order")));
    }
    Ok(cu.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0))
}

impl CudaBackend {
    /// Opens GPU `ordinal`, loads the kernels and creates the cuBLASLt handle; regions start empty.
    pub fn new(ordinal: usize) -> Result<CudaBackend> {
        let gpu = Gpu::open(ordinal).map_err(dev)?;
        let kernels = Kernels::load(&gpu).map_err(dev)?;
        let blas = Blas::new(&gpu).map_err(dev)?;
        Ok(CudaBackend {
            gpu,
            kernels,
            blas,
            regions: Default::default(),
            ints: Mem::default(),
            ints_host: Vec::new(),
            params_bf16: Mem::default(),
            params_stale: true,
            scratch: Default::default(),
            row_attention: false,
            bf16_attention: false,
        })
    }

    /// Attention products on bf16 operands (f32 results and softmax) in bf16 runs: faster, and further from
    /// the CPU engine, whose attention stays f32.
    pub fn with_bf16_attention(mut self) -> Self {
        self.bf16_attention = true;
        self
    }

    /// Attention by the one-warp-per-row kernels (v0: slower, no scratch beyond per-row statistics)
    /// instead of batched matrix products (v1).
    pub fn with_row_attention(mut self) -> Self {
        self.row_attention = true;
        self
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Device address of a buffer (checked against its region).
    fn ptr(&self, b: Buf) -> Result<u64> {
        let m = &self.regions[slot(b.region)];
        if b.offset.checked_add(b.len).is_none_or(|end| end > m.len) {
            return Err(fail(format!("{b:?} lies outside its region of {}", m.len)));
        }
        Ok(m.base() + 4 * b.offset as u64)
    }

    /// Addresses of a call's inputs and outputs, after checking that no output overlaps another buffer.
    fn call<const I: usize, const O: usize>(&mut self, ins: [Buf; I], outs: [Buf; O]) -> Result<([u64; I], [u64; O])> {
        // the caller's thread may differ from the last call's (a worker pool): make our context current
        self.gpu.bind().map_err(dev)?;
        if let Some(o) = first_overlap(&ins, &outs) {
            return Err(fail(format!("output {o:?} overlaps another buffer of the call")));
        }
        for o in &outs {
            if o.region == Region::Params {
                self.params_stale = true;
            }
        }
        let mut a = [0u64; I];
        for (p, b) in a.iter_mut().zip(ins) {
            *p = self.ptr(b)?;
        }
        let mut o = [0u64; O];
        for (p, b) in o.iter_mut().zip(outs) {
            *p = self.ptr(b)?;
        }
        Ok((a, o))
    }

    fn ints(&self, i: Ints) -> Result<&[u32]> {
        i.offset.checked_add(i.len).and_then(|end| self.ints_host.get(i.offset..end)).ok_or_else(|| fail(format!("{i:?} lies outside the integer region of {}", self.ints_host.len())))
    }

    fn ints_ptr(&self, i: Ints) -> Result<u64> {
        self.ints(i)?;
        Ok(self.ints.base() + 4 * i.offset as u64)
    }

    fn scratch(&mut self, s: Scratch, len: usize, elem: usize) -> Result<u64> {
        self.scratch[s as usize].ensure(&self.gpu, len, elem)
    }

    fn launch(&self, name: &str, grid: Grid, args: Args) -> Result<()> {
        // SAFETY: every caller passes the kernel's parameters in order (engine.cu), with addresses from
        // `call`/`ints_ptr`/`scratch` whose extents it checked against the sizes the kernel reads at `grid`.
        unsafe { self.kernels.launch(&self.gpu, name, grid, &args) }.map_err(dev)
    }

    fn elementwise(&self, n: usize) -> Grid {
        grid_stride(n as u64, self.kernels.sm_count()).into()
    }

    fn warp_grid(&self, rows: usize) -> Result<Grid> {
        let (blocks, threads) = warp_rows(rows as u64).ok_or_else(|| fail(format!("{rows} rows exceed the grid")))?;
        Ok(Grid { blocks: (blocks, 1, 1), threads, shared: 0 })
    }

    /// `out[j] += Σ_rows x[r, j]` through per-chunk partials summed in chunk order.
    fn column_sum(&mut self, x: u64, out: u64, rows: usize, width: usize) -> Result<()> {
        let (chunks, rpc) = column_chunks(rows as u64, width as u64, self.kernels.sm_count());
        let part = self.scratch(Scratch::Partials, chunks as usize * width, 4)?;
        let w = to_u32("width", width)?;
        let cols = w.div_ceil(COLUMN_BLOCK);
        self.launch("col_partials", Grid { blocks: (cols, chunks, 1), threads: COLUMN_BLOCK, shared: 0 }, Args::new().ptr(x).ptr(part).u64(rows as u64).u32(w).u32(rpc))?;
        self.launch("col_finish", Grid { blocks: (cols, 1, 1), threads: COLUMN_BLOCK, shared: 0 }, Args::new().ptr(part).ptr(out).u32(chunks).u32(w).i32(1))
    }

    /// A bf16 address for a product operand: the parameters' bf16 copy, or the operand rounded into scratch.
    fn bf16_operand(&mut self, b: Buf, span: usize, slot: Scratch) -> Result<u64> {
        if b.region == Region::Params {
            let len = self.regions[0].len;
            if self.params_stale || self.params_bf16.bytes < 2 * len {
                let dst = self.params_bf16.ensure(&self.gpu, len, 2)?;
                let src = self.regions[0].base();
                // SAFETY: both hold `len` elements of their type.
                unsafe { self.kernels.f32_to_bf16(&self.gpu, src, dst, len as u64) }.map_err(dev)?;
                self.params_stale = false;
            }
            self.ptr(b.part(0, span))?;
            return Ok(self.params_bf16.base() + 2 * b.offset as u64);
        }
        let src = self.ptr(b.part(0, span))?;
        let dst = self.scratch(slot, span, 2)?;
        // SAFETY: `src` holds `span` f32 (checked), `dst` room for `span` bf16.
        unsafe { self.kernels.f32_to_bf16(&self.gpu, src, dst, span as u64) }.map_err(dev)?;
        Ok(dst)
    }

    /// A product operand rounded to bf16 and kept as f32, in scratch.
    fn rounded_operand(&mut self, b: Buf, span: usize, slot: Scratch) -> Result<u64> {
        let src = self.ptr(b.part(0, span))?;
        let dst = self.scratch(slot, span, 4)?;
        self.launch("round_bf16", self.elementwise(span), Args::new().ptr(src).ptr(dst).u64(span as u64))?;
        Ok(dst)
    }

    fn attention_geometry(&self, a: &Attention, what: &str) -> Result<(usize, usize, usize)> {
        let (h, heads) = (a.width, a.heads);
        if heads == 0 || !h.is_multiple_of(heads) || a.qkv.len != 3 * a.ctx.len || !a.ctx.len.is_multiple_of(h.max(1)) {
            return Err(fail(format!("{what}: {heads} heads, width {h}, qkv {}, context {}", a.qkv.len, a.ctx.len)));
        }
        let tokens = a.ctx.len / h;
        let cu = self.ints(a.cu_seqlens)?;
        let longest = check_cu(cu, tokens, what)?;
        if longest > a.padded_len {
            return Err(fail(format!("{what}: a sequence of {longest} tokens in a batch padded to {}", a.padded_len)));
        }
        Ok((h / heads, cu.len() - 1, longest))
    }
}

impl Backend for CudaBackend {
    fn reserve(&mut self, region: Region, len: usize) -> Result<()> {
        self.gpu.bind().map_err(dev)?;
        let m = &mut self.regions[slot(region)];
        if m.len >= len && m.buf.is_some() {
            return Ok(());
        }
        let fresh = DeviceBuffer::alloc(&self.gpu, len.max(1) * 4).map_err(dev)?;
        let base = fresh.at(fresh.whole()).map_err(dev)?;
        let args = Args::new().ptr(base).u64(len as u64).f32(0.0);
        // SAFETY: fill_f32(out, n, v) over the `len` elements just allocated.
        unsafe { self.kernels.launch(&self.gpu, "fill_f32", grid_stride(len as u64, self.kernels.sm_count()).into(), &args) }.map_err(dev)?;
        if let Some(old) = &m.buf {
            let src = old.at(old.whole()).map_err(dev)?;
            DeviceBuffer::copy(&self.gpu, base, src, 4 * m.len).map_err(dev)?;
            self.gpu.synchronize().map_err(dev)?;
        }
        m.buf = Some(fresh);
        m.len = len;
        m.bytes = 4 * len.max(1);
        if region == Region::Params {
            self.params_stale = true;
        }
        Ok(())
    }

    fn reserve_ints(&mut self, len: usize) -> Result<()> {
        self.gpu.bind().map_err(dev)?;
        if self.ints_host.len() >= len && self.ints.buf.is_some() {
            return Ok(());
        }
        self.ints.ensure(&self.gpu, len, 4)?;
        self.ints_host.resize(len, 0);
        if let Some(b) = &self.ints.buf {
            b.upload(&self.gpu, Span { offset: 0, bytes: 4 * len }, &self.ints_host).map_err(dev)?;
        }
        Ok(())
    }

    fn upload(&mut self, dst: Buf, src: &[f32]) -> Result<()> {
        if dst.len != src.len() {
            return Err(fail(format!("upload of {} elements into {dst:?}", src.len())));
        }
        self.call([], [dst])?;
        let m = &self.regions[slot(dst.region)];
        let b = m.buf.as_ref().ok_or_else(|| fail("upload into an empty region"))?;
        b.upload(&self.gpu, Span { offset: 4 * dst.offset, bytes: 4 * dst.len }, src).map_err(dev)
    }

    fn upload_ints(&mut self, dst: Ints, src: &[u32]) -> Result<()> {
        self.gpu.bind().map_err(dev)?;
        if dst.len != src.len() {
            return Err(fail(format!("upload of {} integers into {dst:?}", src.len())));
        }
        let host = dst.offset.checked_add(dst.len).and_then(|end| self.ints_host.get_mut(dst.offset..end)).ok_or_else(|| fail(format!("{dst:?} outside the integer region")))?;
        host.copy_from_slice(src);
        let b = self.ints.buf.as_ref().ok_or_else(|| fail("upload into an empty integer region"))?;
        b.upload(&self.gpu, Span { offset: 4 * dst.offset, bytes: 4 * dst.len }, src).map_err(dev)
    }

    fn download(&mut self, src: Buf, dst: &mut [f32]) -> Result<()> {
        self.gpu.bind().map_err(dev)?;
        if src.len != dst.len() {
            return Err(fail(format!("download of {src:?} into {} elements", dst.len())));
        }
        self.ptr(src)?;
        let b = self.regions[slot(src.region)].buf.as_ref().ok_or_else(|| fail("download from an empty region"))?;
        b.download(&self.gpu, Span { offset: 4 * src.offset, bytes: 4 * src.len }, dst).map_err(dev)
    }

    fn fill(&mut self, dst: Buf, value: f32) -> Result<()> {
        let (_, [d]) = self.call([], [dst])?;
        self.launch("fill_f32", self.elementwise(dst.len), Args::new().ptr(d).u64(dst.len as u64).f32(value))
    }

    fn gemm(&mut self, g: &Gemm) -> Result<()> {
        let (mut shape, a_span, b_span) = lt_shape(g).map_err(|e| fail(format!("gemm: {e}")))?;
        if g.m.checked_mul(g.n).is_none_or(|mn| g.c.len < mn) {
            return Err(fail(format!("gemm: result {:?} too small for {}×{}", g.c, g.m, g.n)));
        }
        let bias = g.bias.filter(|_| !g.accumulate);
        let ins = [g.a.buf.part(0, a_span), g.b.buf.part(0, b_span), bias.unwrap_or(g.a.buf.part(0, 0))];
        let (_, [c]) = self.call(ins, [g.c])?;
        // cuBLASLt's A is our right operand, its B our left
        let native = shape.lda % 8 == 0 && shape.ldb % 8 == 0 && shape.ldd % 4 == 0;
        let (a, b) = match g.precision {
            Precision::F32 => (self.ptr(g.b.buf.part(0, b_span))?, self.ptr(g.a.buf.part(0, a_span))?),
            // leading dimensions bf16 kernels cannot take (a classifier's few columns): the same bf16
            // values, multiplied in f32
            Precision::Bf16 if !native => (self.rounded_operand(g.b.buf, b_span, Scratch::OperandA)?, self.rounded_operand(g.a.buf, a_span, Scratch::OperandB)?),
            Precision::Bf16 => {
                shape.a = DType::BF16;
                shape.b = DType::BF16;
                (self.bf16_operand(g.b.buf, b_span, Scratch::OperandA)?, self.bf16_operand(g.a.buf, a_span, Scratch::OperandB)?)
            }
        };
        let mut args = GemmArgs { a, b, d: c, bias: 0 };
        if let Some(bias) = bias {
            if bias.len != g.n {
                return Err(fail(format!("gemm: bias of {} for {} columns", bias.len, g.n)));
            }
            let bp = self.ptr(bias)?;
            // the bias epilogue when cuBLASLt has one for this product, else bias rows written first
            let with = GemmShape { bias: true, ..shape };
            let with_args = GemmArgs { bias: bp, ..args };
            if self.blas.supports(&with, &with_args).map_err(dev)? {
                (shape, args) = (with, with_args);
            } else {
                let (m, n) = (g.m as u64, to_u32("columns", g.n)?);
                self.launch("bias_rows", self.elementwise(g.m * g.n), Args::new().ptr(c).ptr(bp).u64(m).u32(n))?;
                shape.accumulate = true;
            }
        }
        // SAFETY: A and B span `b_span`/`a_span` elements of their type (checked above, or written into
        // scratch of that size), D holds m × n f32 and overlaps neither (checked by `call`), the bias n f32.
        unsafe { self.blas.gemm(&self.gpu, &shape, &args) }.map_err(dev)
    }

    fn bias_grad(&mut self, dy: Buf, db: Buf, width: usize) -> Result<()> {
        let rows = rows_of("bias gradient", dy, width)?;
        if db.len != width {
            return Err(fail(format!("bias gradient of {} for width {width}", db.len)));
        }
        let ([x], [out]) = self.call([dy], [db])?;
        self.column_sum(x, out, rows, width)
    }

    fn embed(&mut self, e: &Embed) -> Result<()> {
        let w = e.width;
        let n = rows_of("embed", e.out, w)?;
        for (name, table, idx) in [("token id", e.tables[0], e.ids), ("position", e.tables[1], e.positions), ("token type", e.tables[2], e.types)] {
            let rows = table.len / w.max(1);
            let idx = self.ints(idx)?;
            if idx.len() != n {
                return Err(fail("embed: index lengths differ from the output rows"));
            }
            if let Some(bad) = idx.iter().find(|&&i| i as usize >= rows) {
                return Err(fail(format!("{name} {bad} is outside the embedding table of {rows} rows")));
            }
        }
        let (ids, pos, types) = (self.ints_ptr(e.ids)?, self.ints_ptr(e.positions)?, self.ints_ptr(e.types)?);
        let ([word, position, segment], [out]) = self.call(e.tables, [e.out])?;
        let args = Args::new().ptr(ids).ptr(pos).ptr(types).ptr(word).ptr(position).ptr(segment).ptr(out).u64(n as u64).u32(to_u32("width", w)?);
        self.launch("embed_sum", self.elementwise(n * w), args)
    }

    fn embed_grad(&mut self, e: &EmbedGrad) -> Result<()> {
        let w = e.width;
        for (index, table) in e.index.iter().zip(e.tables) {
            let Some(table) = table else { continue };
            let rows = table.len / w.max(1);
            let idx = self.ints(*index)?;
            if idx.len() * w != e.dy.len || idx.iter().any(|&i| i as usize >= rows) {
                return Err(fail("embedding gradient: indices do not match the table or the gradient"));
            }
            let (order, starts, group_rows) = group_rows(idx, rows);
            let groups = group_rows.len();
            if groups == 0 {
                continue;
            }
            let (chunk_start, chunk_end, group_chunk) = chunk_groups(&starts, EMBED_CHUNK);
            let chunks = chunk_start.len();
            // one upload: order, chunk starts, chunk ends, group → chunks, group rows
            let mut all = order;
            let mut at = Vec::new();
            for part in [&chunk_start, &chunk_end, &group_chunk, &group_rows] {
                at.push(all.len());
                all.extend(part.iter());
            }
            let base = self.scratch(Scratch::Groups, all.len(), 4)?;
            let buf = self.scratch[Scratch::Groups as usize].buf.as_ref().ok_or_else(|| fail("group scratch"))?;
            buf.upload(&self.gpu, Span { offset: 0, bytes: 4 * all.len() }, &all).map_err(dev)?;
            let part = self.scratch(Scratch::Partials, chunks * w, 4)?;
            let ([dy], [g]) = self.call([e.dy], [table])?;
            let u = |i: usize| base + 4 * at[i] as u64;
            let (uc, ug, uw) = (to_u32("chunks", chunks)?, to_u32("groups", groups)?, to_u32("width", w)?);
            let args = Args::new().ptr(base).ptr(u(0)).ptr(u(1)).ptr(dy).ptr(part).u32(uc).u32(uw);
            self.launch("embed_grad_chunks", Grid { blocks: (uc, 1, 1), threads: ROW_THREADS, shared: 0 }, args)?;
            let args = Args::new().ptr(u(2)).ptr(u(3)).ptr(part).ptr(g).u32(ug).u32(uw);
            self.launch("embed_grad_rows", Grid { blocks: (ug, 1, 1), threads: ROW_THREADS, shared: 0 }, args)?;
        }
        Ok(())
    }

    fn layer_norm(&mut self, a: &LayerNorm) -> Result<()> {
        let rows = rows_of("layer norm", a.x, a.width)?;
        if a.weight.len != a.width || a.bias.len != a.width || a.out.len != a.x.len {
            return Err(fail("layer norm: shapes differ"));
        }
        let ([x, w, b], [out]) = self.call([a.x, a.weight, a.bias], [a.out])?;
        let args = Args::new().ptr(x).ptr(w).ptr(b).ptr(out).u64(rows as u64).u32(to_u32("width", a.width)?).f32(a.eps);
        self.launch("layer_norm_fwd", self.warp_grid(rows)?, args)
    }

    fn layer_norm_grad(&mut self, a: &LayerNormGrad) -> Result<()> {
        let rows = rows_of("layer norm gradient", a.x, a.width)?;
        if a.weight.len != a.width || a.dy.len != a.x.len || a.dx.len != a.x.len {
            return Err(fail("layer norm gradient: shapes differ"));
        }
        let width = to_u32("width", a.width)?;
        let stats = self.scratch(Scratch::Stats, 2 * rows, 4)?;
        let ([x, w, dy], [dx]) = self.call([a.x, a.weight, a.dy], [a.dx])?;
        self.launch("layer_norm_bwd", self.warp_grid(rows)?, Args::new().ptr(x).ptr(w).ptr(dy).ptr(dx).ptr(stats).u64(rows as u64).u32(width).f32(a.eps))?;
        let (Some(dw), Some(db)) = (a.dweight, a.dbias) else { return Ok(()) };
        if dw.len != a.width || db.len != a.width {
            return Err(fail("layer norm gradient: parameter gradient shapes differ"));
        }
        let (_, [dw, db]) = self.call([a.x, a.dy], [dw, db])?;
        let (chunks, rpc) = column_chunks(rows as u64, a.width as u64, self.kernels.sm_count());
        let part = self.scratch(Scratch::Partials, 2 * chunks as usize * a.width, 4)?;
        let pb = part + 4 * (chunks as u64 * a.width as u64);
        let cols = width.div_ceil(COLUMN_BLOCK);
        let grid = Grid { blocks: (cols, chunks, 1), threads: COLUMN_BLOCK, shared: 0 };
        self.launch("layer_norm_partials", grid, Args::new().ptr(x).ptr(dy).ptr(stats).ptr(part).ptr(pb).u64(rows as u64).u32(width).u32(rpc))?;
        let finish = Grid { blocks: (cols, 1, 1), threads: COLUMN_BLOCK, shared: 0 };
        self.launch("col_finish", finish, Args::new().ptr(part).ptr(dw).u32(chunks).u32(width).i32(1))?;
        self.launch("col_finish", finish, Args::new().ptr(pb).ptr(db).u32(chunks).u32(width).i32(1))
    }

    fn dropout(&mut self, x: Buf, out: Buf, width: usize, drop: &Dropout) -> Result<()> {
        let rows = rows_of("dropout", out, width)?;
        if x.len != out.len {
            return Err(fail("dropout: lengths differ"));
        }
        let prow = self.prow(drop, rows)?;
        let (xp, o) = if x == out {
            let (_, [o]) = self.call([], [out])?;
            (o, o)
        } else {
            let ([xp], [o]) = self.call([x], [out])?;
            (xp, o)
        };
        self.masked(xp, 0, o, prow, rows, width, Some(drop))
    }

    fn dropout_add(&mut self, a: &DropoutAdd) -> Result<()> {
        let rows = rows_of("dropout-add", a.out, a.width)?;
        if a.a.len != a.out.len || a.residual.len != a.out.len {
            return Err(fail("dropout-add: lengths differ"));
        }
        let prow = match &a.drop {
            Some(d) => self.prow(d, rows)?,
            None => 0,
        };
        let ([x, res], [out]) = self.call([a.a, a.residual], [a.out])?;
        self.masked(x, res, out, prow, rows, a.width, a.drop.as_ref())
    }

    fn activation(&mut self, act: Activation, x: Buf, out: Buf) -> Result<()> {
        if x.len != out.len {
            return Err(fail("activation: lengths differ"));
        }
        let ([xp], [o]) = self.call([x], [out])?;
        self.launch("activation_fwd", self.elementwise(x.len), Args::new().i32(act_code(act)).ptr(xp).ptr(o).u64(x.len as u64))
    }

    fn activation_grad(&mut self, act: Activation, x: Buf, dy: Buf, dx: Buf) -> Result<()> {
        if x.len != dx.len || dy.len != dx.len {
            return Err(fail("activation gradient: lengths differ"));
        }
        let ([xp, g], [d]) = self.call([x, dy], [dx])?;
        self.launch("activation_bwd", self.elementwise(x.len), Args::new().i32(act_code(act)).ptr(xp).ptr(g).ptr(d).u64(x.len as u64))
    }

    fn attention(&mut self, a: &Attention) -> Result<()> {
        if self.row_attention {
            self.attention_rows(a)
        } else {
            self.attention_batched(a, false)
        }
    }

    fn attention_grad(&mut self, a: &Attention) -> Result<()> {
        if self.row_attention {
            self.attention_rows_grad(a)
        } else {
            self.attention_batched(a, true)
        }
    }

    fn pool(&mut self, p: &Pooling) -> Result<()> {
        let seqs = self.pool_check(p, p.x, p.out, "pool")?;
        let cu = self.ints_ptr(p.cu_seqlens)?;
        let ([x], [out]) = self.call([p.x], [p.out])?;
        let args = Args::new().ptr(x).ptr(out).ptr(cu).u32(to_u32("width", p.width)?).i32(i32::from(p.how == Pool::Mean));
        self.launch("pool_fwd", Grid { blocks: (to_u32("sequences", seqs)?, 1, 1), threads: ROW_THREADS, shared: 0 }, args)
    }

    fn pool_grad(&mut self, p: &Pooling) -> Result<()> {
        let seqs = self.pool_check(p, p.out, p.x, "pool gradient")?;
        let cu = self.ints_ptr(p.cu_seqlens)?;
        let ([dy], [dx]) = self.call([p.x], [p.out])?;
        let args = Args::new().ptr(dy).ptr(dx).ptr(cu).u32(to_u32("width", p.width)?).i32(i32::from(p.how == Pool::Mean));
        self.launch("pool_bwd", Grid { blocks: (to_u32("sequences", seqs)?, 1, 1), threads: ROW_THREADS, shared: 0 }, args)
    }

    fn softmax_ce(&mut self, a: &SoftmaxCe<'_>) -> Result<f64> {
        // B × classes values: computed on the host with the CPU's code (design M5 moves it on the device)
        let rows = a.labels.len();
        if a.logits.len != rows * a.classes || a.probs.len != a.logits.len || a.dlogits.len != a.logits.len {
            return Err(fail("softmax-ce: shapes differ"));
        }
        if let Some(bad) = a.labels.iter().find(|&&y| y >= a.classes) {
            return Err(fail(format!("softmax-ce: label {bad} of {} classes", a.classes)));
        }
        if a.weights.is_some_and(|w| w.len() != a.classes) {
            return Err(fail(format!("softmax-ce: class weights for {} classes", a.classes)));
        }
        self.call([a.logits], [a.probs, a.dlogits])?;
        let mut logits = vec![0f32; a.logits.len];
        self.download(a.logits, &mut logits)?;
        let (mut probs, mut dlogits) = (vec![0f32; logits.len()], vec![0f32; logits.len()]);
        let loss = ops::softmax_ce(&logits, a.classes, a.labels, a.weights, a.scale, &mut probs, &mut dlogits);
        self.upload(a.probs, &probs)?;
        self.upload(a.dlogits, &dlogits)?;
        Ok(loss)
    }

    fn grad_norm_sq(&mut self, grads: &[Buf]) -> Result<f64> {
        self.gpu.bind().map_err(dev)?;
        let Some(first) = grads.first() else { return Ok(0.0) };
        if grads.iter().any(|g| g.region != first.region) {
            return Err(fail("gradient norm over buffers of several regions"));
        }
        if grads.len() > 65535 {
            return Err(fail(format!("gradient norm over {} buffers (at most 65535)", grads.len())));
        }
        let mut seg = Vec::with_capacity(2 * grads.len());
        for &g in grads {
            self.ptr(g)?;
            seg.extend([g.offset as u64, g.len as u64]);
        }
        // one launch: the segment list uploaded, one row of partials per segment
        let list = self.scratch(Scratch::Segments, seg.len(), 8)?;
        let buf = self.scratch[Scratch::Segments as usize].buf.as_ref().ok_or_else(|| fail("segment scratch"))?;
        buf.upload(&self.gpu, Span { offset: 0, bytes: 8 * seg.len() }, &seg).map_err(dev)?;
        let per = NORM_BLOCKS as usize;
        let part = self.scratch(Scratch::Norms, grads.len() * per, 8)?;
        let base = self.regions[slot(first.region)].base();
        let grid = Grid { blocks: (NORM_BLOCKS, grads.len() as u32, 1), threads: NORM_THREADS, shared: 0 };
        self.launch("sum_sq_segments", grid, Args::new().ptr(base).ptr(list).ptr(part))?;
        let mut host = vec![0f64; grads.len() * per];
        if let Some(b) = &self.scratch[Scratch::Norms as usize].buf {
            b.download(&self.gpu, Span { offset: 0, bytes: 8 * host.len() }, &mut host).map_err(dev)?;
        }
        Ok(host.iter().sum())
    }

    fn adamw(&mut self, segments: &[(Buf, bool)], step: &AdamStep) -> Result<()> {
        for &(p, decays) in segments {
            let at = |region| Buf { region, ..p };
            let (_, [w, g, m, v]) = self.call([], [p, at(Region::Grads), at(Region::AdamM), at(Region::AdamV)])?;
            let decay = if decays { step.decay } else { 0.0 };
            let args = Args::new().ptr(w).ptr(g).ptr(m).ptr(v).u64(p.len as u64).f32(step.lr).f32(decay).f32(step.beta1).f32(step.beta2);
            let args = args.f32(step.eps).f32(step.bias1).f32(step.bias2_sqrt).f32(step.grad_scale);
            self.launch(ADAMW_KERNEL, self.elementwise(p.len), args)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.gpu.bind().map_err(dev)?;
        self.gpu.synchronize().map_err(dev)
    }

    fn free_memory(&self) -> Option<u64> {
        self.gpu.memory().ok().map(|(free, _)| free as u64)
    }
}

/// Kernel arguments of an optional attention dropout: (p, keep scale, flag).
fn drop_args(drop: Option<(f64, u64)>) -> (f32, f32, i32) {
    match drop {
        Some((p, _)) => (p as f32, (1.0 / (1.0 - p)) as f32, 1),
        None => (0.0, 1.0, 0),
    }
}

impl CudaBackend {
    /// Attention v0: one warp per (sequence, head, query row).
    fn attention_rows(&mut self, a: &Attention) -> Result<()> {
        let (d, seqs, longest) = self.attention_geometry(a, "attention")?;
        if longest == 0 {
            return Ok(());
        }
        let cu = self.ints_ptr(a.cu_seqlens)?;
        let ([qkv], [ctx]) = self.call([a.qkv], [a.ctx])?;
        let stride = d + a.padded_len;
        let grid = self.attention_grid(a, seqs, longest, stride)?;
        let (p, keep, drop) = drop_args(a.drop);
        let args = Args::new().ptr(qkv).ptr(ctx).ptr(cu).u32(to_u32("heads", a.heads)?).u32(to_u32("width", a.width)?).u32(d as u32).f32(a.scale).u32(to_u32("padded length", a.padded_len)?);
        self.launch("attn_fwd", grid, args.u64(a.drop.map_or(0, |(_, k)| k)).f32(p).f32(keep).i32(drop).u32(stride as u32))
    }

    /// Its backward: query rows, then key rows.
    fn attention_rows_grad(&mut self, a: &Attention) -> Result<()> {
        let Some(dqkv) = a.dqkv else { return Err(fail("attention gradient without a Q/K/V gradient buffer")) };
        if dqkv.len != a.qkv.len {
            return Err(fail("attention gradient: Q/K/V gradient shape differs"));
        }
        let (d, seqs, longest) = self.attention_geometry(a, "attention gradient")?;
        if longest == 0 {
            return Ok(());
        }
        let tokens = a.ctx.len / a.width;
        let stats = self.scratch(Scratch::Stats, 3 * tokens * a.heads, 4)?;
        let cu = self.ints_ptr(a.cu_seqlens)?;
        let ([qkv, dctx], [dq]) = self.call([a.qkv, a.ctx], [dqkv])?;
        let stride = 2 * (d + a.padded_len);
        let grid = self.attention_grid(a, seqs, longest, stride)?;
        let (p, keep, drop) = drop_args(a.drop);
        let key = a.drop.map_or(0, |(_, k)| k);
        let args = Args::new().ptr(qkv).ptr(dctx).ptr(dq).ptr(stats).ptr(cu).u32(to_u32("heads", a.heads)?).u32(to_u32("width", a.width)?).u32(d as u32).f32(a.scale).u32(to_u32("padded length", a.padded_len)?);
        let args = args.u64(key).f32(p).f32(keep).i32(drop).u32(stride as u32);
        self.launch("attn_bwd_q", grid, args.clone())?;
        self.launch("attn_bwd_kv", grid, args)
    }

    /// Attention v1 forward (`grad` false: writes the context) or backward (reads the context's gradient,
    /// writes the Q/K/V gradient): heads packed into [B·heads, L, d] blocks, strided-batched products,
    /// softmax rows one warp each. The products are f32 (the CPU's attention precision in both modes), or
    /// bf16 operands with f32 results for bf16 runs on a backend made [`CudaBackend::with_bf16_attention`]
    /// (then L is rounded up to a multiple of 8, the rows and keys past a sequence being zero).
    fn attention_batched(&mut self, a: &Attention, grad: bool) -> Result<()> {
        let what = if grad { "attention gradient" } else { "attention" };
        let dqkv = match (grad, a.dqkv) {
            (true, None) => return Err(fail("attention gradient without a Q/K/V gradient buffer")),
            (true, Some(b)) if b.len != a.qkv.len => return Err(fail("attention gradient: Q/K/V gradient shape differs")),
            (_, b) => b,
        };
        let (d, seqs, longest) = self.attention_geometry(a, what)?;
        if longest == 0 {
            return Ok(());
        }
        let half = self.bf16_attention && a.precision == Precision::Bf16;
        let (h, heads) = (a.width, a.heads);
        let l = if half { longest.next_multiple_of(8) } else { longest };
        let bh = seqs * heads;
        let (hd, ll) = (bh * l * d, bh * l * l);
        // operand blocks (f32, or bf16 when `half`), f32 scores and results; each block 256-byte aligned
        let op = if half { 2 } else { 4 };
        let sizes: Vec<usize> = if grad {
            // q k v dO | S, P̃, dP | dQ dK dV | P̃ and dS as bf16 operands
            vec![op * hd, op * hd, op * hd, op * hd, 4 * ll, 4 * ll, 4 * ll, 4 * hd, 4 * hd, 4 * hd, if half { 2 * ll } else { 0 }, if half { 2 * ll } else { 0 }]
        } else {
            // q k v | S, O | P̃ as a bf16 operand
            vec![op * hd, op * hd, op * hd, 4 * ll, 4 * hd, if half { 2 * ll } else { 0 }]
        };
        let total: usize = sizes.iter().map(|b| b.next_multiple_of(256)).sum();
        let base = self.scratch(Scratch::Attn, total, 1)?;
        let mut at = Vec::with_capacity(sizes.len());
        let mut off = 0u64;
        for b in &sizes {
            at.push(base + off);
            off += b.next_multiple_of(256) as u64;
        }
        let (q, k, v) = (at[0], at[1], at[2]);
        let cu = self.ints_ptr(a.cu_seqlens)?;
        let (ins, outs) = if grad { ([a.qkv, a.ctx], [dqkv.unwrap_or(a.ctx)]) } else { ([a.qkv, a.qkv], [a.ctx]) };
        let ([qkv, ctx], [out]) = self.call(ins, outs)?;
        let (u_heads, u_d, u_l) = (to_u32("heads", heads)?, to_u32("head size", d)?, to_u32("length", l)?);
        let blocks = hd as u64;
        let kernel = if half { "heads_pack_bf16" } else { "heads_pack" };
        let pack = |this: &Self, src: u64, row: usize, dst: u64| {
            this.launch(kernel, this.elementwise(hd), Args::new().ptr(src).u64(row as u64).ptr(dst).ptr(cu).u32(u_heads).u32(u_d).u32(u_l).u64(blocks))
        };
        pack(self, qkv, 3 * h, q)?;
        pack(self, qkv + 4 * h as u64, 3 * h, k)?;
        pack(self, qkv + 8 * h as u64, 3 * h, v)?;
        let dt = if half { DType::BF16 } else { DType::F32 };
        let (ld, ll_s) = (l * d, l * l);
        let s = if grad { at[4] } else { at[3] };
        // scores S = Q Kᵀ
        self.batched(dt, l, l, d, (q, d, 1), (k, 1, d), s, bh, [ld, ld, ll_s])?;
        let (p, keep, drop) = drop_args(a.drop);
        let key = a.drop.map_or(0, |(_, k)| k);
        let rows = (bh * l) as u64;
        let grid = self.warp_grid(bh * l)?;
        let padded = to_u32("padded length", a.padded_len)?;
        let softmax = |this: &Self, pd: u64, out16: u64| {
            let args = Args::new().ptr(s).ptr(pd).ptr(cu).u32(u_heads).u32(u_l).f32(a.scale).u32(padded).u64(key).f32(p).f32(keep).i32(drop).u64(rows);
            this.launch("attn_softmax", grid, args.ptr(out16))
        };
        let unpack = |this: &Self, src: u64, dst: u64, row: usize| {
            this.launch("heads_unpack", this.elementwise(hd), Args::new().ptr(src).ptr(dst).u64(row as u64).ptr(cu).u32(u_heads).u32(u_d).u32(u_l).u64(blocks))
        };
        if !grad {
            // P̃ (in place, and as a bf16 operand when `half`), then O = P̃ V
            let (o, p16) = (at[4], if half { at[5] } else { 0 });
            softmax(self, 0, p16)?;
            let pt = if half { p16 } else { s };
            self.batched(dt, l, d, l, (pt, l, 1), (v, d, 1), o, bh, [ll_s, ld, ld])?;
            return unpack(self, o, out, h);
        }
        let (dout, pd, dp) = (at[3], at[5], at[6]);
        let (dq, dk, dv) = (at[7], at[8], at[9]);
        let (p16, ds16) = if half { (at[10], at[11]) } else { (0, 0) };
        pack(self, ctx, h, dout)?;
        softmax(self, pd, p16)?;
        // dV = P̃ᵀ dO, dP̃ = dO Vᵀ
        let pt = if half { p16 } else { pd };
        self.batched(dt, l, d, l, (pt, 1, l), (dout, d, 1), dv, bh, [ll_s, ld, ld])?;
        self.batched(dt, l, l, d, (dout, d, 1), (v, 1, d), dp, bh, [ld, ld, ll_s])?;
        let args = Args::new().ptr(s).ptr(dp).ptr(cu).u32(u_heads).u32(u_l).f32(a.scale).u32(padded).u64(key).f32(p).f32(keep).i32(drop).u64(rows);
        self.launch("attn_softmax_bwd", grid, args.ptr(ds16))?;
        // dQ = dS K, dK = dSᵀ Q
        let dsm = if half { ds16 } else { dp };
        self.batched(dt, l, d, l, (dsm, l, 1), (k, d, 1), dq, bh, [ll_s, ld, ld])?;
        self.batched(dt, l, d, l, (dsm, 1, l), (q, d, 1), dk, bh, [ll_s, ld, ld])?;
        unpack(self, dq, out, 3 * h)?;
        unpack(self, dk, out + 4 * h as u64, 3 * h)?;
        unpack(self, dv, out + 8 * h as u64, 3 * h)
    }

    /// `batch` row-major products `c_i (m × n) = a_i (m × k) · b_i (k × n)` on scratch addresses, operands
    /// of type `dt` as `(address, row stride, column stride)`, f32 results, consecutive products `strides`
    /// (a, b, c) elements apart.
    #[allow(clippy::too_many_arguments)]
    fn batched(&mut self, dt: DType, m: usize, n: usize, k: usize, a: (u64, usize, usize), b: (u64, usize, usize), c: u64, batch: usize, strides: [usize; 3]) -> Result<()> {
        let (mut shape, _, _) = lt_raw(m, n, k, (a.1, a.2), (b.1, b.2), false).map_err(|e| fail(format!("attention product: {e}")))?;
        shape.batch = batch as u64;
        (shape.a, shape.b) = (dt, dt);
        // cuBLASLt's A is our b
        shape.strides = [strides[1] as u64, strides[0] as u64, strides[2] as u64];
        // SAFETY: the callers pass blocks of the attention scratch sized for `batch` products of these shapes.
        unsafe { self.blas.gemm(&self.gpu, &shape, &GemmArgs { a: b.0, b: a.0, d: c, bias: 0 }) }.map_err(dev)
    }

    /// The packed-row map of a token dropout (0 for dense counters), checked against the rows.
    fn prow(&self, d: &Dropout, rows: usize) -> Result<u64> {
        match d.index {
            DropIndex::Dense => Ok(0),
            DropIndex::Tokens(i) => {
                if i.len != rows {
                    return Err(fail("dropout: token rows differ from the buffer's rows"));
                }
                self.ints_ptr(i)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn masked(&self, a: u64, res: u64, out: u64, prow: u64, rows: usize, width: usize, drop: Option<&Dropout>) -> Result<()> {
        let (p, scale, key, on) = match drop {
            Some(d) => (d.p as f32, (1.0 / (1.0 - d.p)) as f32, d.key, 1),
            None => (0.0, 1.0, 0, 0),
        };
        let args = Args::new().ptr(a).ptr(res).ptr(out).ptr(prow).u64(rows as u64).u32(to_u32("width", width)?).u64(key).f32(p).f32(scale).i32(on);
        self.launch("dropout_rows", self.elementwise(rows * width), args)
    }

    fn attention_grid(&self, a: &Attention, seqs: usize, longest: usize, stride: usize) -> Result<Grid> {
        let shared = 4 * stride * WARPS_PER_BLOCK as usize;
        if shared > SHARED_LIMIT {
            return Err(fail(format!("attention: sequences padded to {} tokens need {shared} bytes of shared memory (limit {SHARED_LIMIT})", a.padded_len)));
        }
        if seqs > 65535 || a.heads > 65535 {
            return Err(fail(format!("attention: {seqs} sequences × {} heads exceed the launch grid (65535 each)", a.heads)));
        }
        let blocks = to_u32("rows", longest.div_ceil(WARPS_PER_BLOCK as usize))?;
        Ok(Grid { blocks: (blocks, to_u32("heads", a.heads)?, to_u32("sequences", seqs)?), threads: 32 * WARPS_PER_BLOCK, shared: shared as u32 })
    }

    fn pool_check(&self, p: &Pooling, tokens_buf: Buf, pooled: Buf, what: &str) -> Result<usize> {
        let cu = self.ints(p.cu_seqlens)?;
        if p.width == 0 || pooled.len != cu.len().saturating_sub(1) * p.width || !tokens_buf.len.is_multiple_of(p.width) {
            return Err(fail(format!("{what}: shapes differ from the sequences")));
        }
        check_cu(cu, tokens_buf.len / p.width, what)?;
        Ok(cu.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backend::Operand;

    /// What cuBLASLt computes for a column-major shape: D (m × n, ld ldd) = op(A) · op(B) (+ D).
    fn column_major(s: &GemmShape, a: &[f32], b: &[f32], d: &mut [f32]) {
        let (m, n, k) = (s.m as usize, s.n as usize, s.k as usize);
        let at = |i: usize, l: usize| if s.trans_a { a[l + i * s.lda as usize] } else { a[i + l * s.lda as usize] };
        let bt = |l: usize, j: usize| if s.trans_b { b[j + l * s.ldb as usize] } else { b[l + j * s.ldb as usize] };
        for j in 0..n {
            for i in 0..m {
                let v: f32 = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
                let o = &mut d[i + j * s.ldd as usize];
                *o = if s.accumulate { *o + v } else { v };
            }
        }
    }

    #[test]
    fn row_major_products_map_onto_column_major_cublaslt_shapes() {
        let (m, n, k) = (5usize, 3usize, 4usize);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
        // a[i][l] and b[l][j] in both storage orders
        let a_t: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        let b_t: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
        let expect: Vec<f32> = (0..m * n).map(|x| (0..k).map(|l| a[(x / n) * k + l] * b[l * n + x % n]).sum()).collect();
        let buf = |len| Buf { region: Region::Acts, offset: 0, len };
        for (a_op, a_data) in [(Operand::rows(buf(m * k), k), &a), (Operand::transposed(buf(m * k), m), &a_t)] {
            for (b_op, b_data) in [(Operand::rows(buf(k * n), n), &b), (Operand::transposed(buf(k * n), k), &b_t)] {
                for accumulate in [false, true] {
                    let g = Gemm { m, n, k, a: a_op, b: b_op, c: buf(m * n), accumulate, bias: None, precision: Precision::F32 };
                    let (shape, a_span, b_span) = lt_shape(&g).expect("shape");
                    assert_eq!((a_span, b_span), (m * k, k * n));
                    let mut c = vec![1.0f32; m * n];
                    // cuBLASLt's A is our b, its B our a; its D (n × m, ld n) is our row-major c
                    column_major(&shape, b_data, a_data, &mut c);
                    for (x, (&got, &want)) in c.iter().zip(&expect).enumerate() {
                        let want = if accumulate { want + 1.0 } else { want };
                        assert!((got - want).abs() < 1e-5, "a cs {} b cs {} acc {accumulate}: element {x} {got} vs {want}", a_op.cs, b_op.cs);
                    }
                }
            }
        }
        // a strided operand that is neither row- nor column-major is refused
        let odd = Gemm { m, n, k, a: Operand { buf: buf(100), rs: 2, cs: 3 }, b: Operand::rows(buf(k * n), n), c: buf(m * n), accumulate: false, bias: None, precision: Precision::F32 };
        assert!(lt_shape(&odd).is_err());
    }

    #[test]
    fn groups_split_into_chunks_in_order() {
        // groups of 3, 0 (none here: starts are of non-empty groups), 70 and 1 tokens, chunks of 32
        let (cs, ce, gc) = chunk_groups(&[0, 3, 73, 74], 32);
        assert_eq!(cs, vec![0, 3, 35, 67, 73]);
        assert_eq!(ce, vec![3, 35, 67, 73, 74]);
        assert_eq!(gc, vec![0, 1, 4, 5]);
        let (cs, _, gc) = chunk_groups(&[0], 32);
        assert!(cs.is_empty());
        assert_eq!(gc, vec![0]);
    }

    #[test]
    fn embedding_rows_are_grouped_stably_by_table_row() {
        let idx = [3u32, 1, 3, 0, 1, 3];
        let (order, starts, rows) = group_rows(&idx, 5);
        assert_eq!(rows, vec![0, 1, 3]);
        assert_eq!(starts, vec![0, 1, 3, 6]);
        assert_eq!(order, vec![3, 1, 4, 0, 2, 5]);
        let (order, starts, rows) = group_rows(&[], 4);
        assert!(order.is_empty() && rows.is_empty());
        assert_eq!(starts, vec![0]);
    }
}
