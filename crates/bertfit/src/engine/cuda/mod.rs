//! The CUDA backend of the engine (design 4, milestone M2): each region is one device buffer, every
//! [`Backend`] call is queued on the GPU's one stream (cuBLASLt for the matrix products, `engine.cu` for
//! the rest). f32 activations; in bf16 mode the matrix operands are rounded to bf16 (RNE: the values the
//! CPU backend's bf16 mode multiplies) — the weights once per update into a bf16 copy of the parameters,
//! activations per product into scratch — and products accumulate in f32 into f32 outputs. Host reads (the
//! loss, the gradient norm) wait for the queue. Reductions are fixed-order (no float atomics): the same
//! inputs on the same GPU model give the same bits. Attention is in `attention.rs`, the products in
//! `products.rs`, memory in `memory.rs`, host-side planning (product shapes, embedding groups) in `host.rs`.

mod attention;
mod host;
mod memory;
mod products;

use memory::{Mem, Scratch};

use host::{chunk_groups, group_rows};
use host::EMBED_CHUNK;

use bertfit_cuda::kernels::{Args, Grid, ADAMW_KERNEL};
use bertfit_cuda::launch::{column_chunks, grid_stride, warp_rows, COLUMN_BLOCK};
use bertfit_cuda::{Blas, CudaError, DeviceBuffer, Gpu, Kernels, Region as Span};

use super::backend::{first_overlap, longest_sequence, Attention, Backend, Buf, DropIndex, Dropout, DropoutAdd, Embed, EmbedGrad, Gemm, Ints, LayerNorm, LayerNormGrad, Pooling, Region, SoftmaxCe};
use super::ops::{self, AdamStep, Pool};
use crate::error::{Error, Result};
use crate::model::Activation;

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
    /// bf16 operands for the attention products of bf16 runs (f32 otherwise, as on the CPU).
    bf16_attention: bool,
    /// The segment list last uploaded for the gradient norm.
    segments: Vec<u64>,
}

// SAFETY: the backend is used by one thread at a time (`&mut self`); CUDA driver and cuBLASLt handles may
// be used from any thread once the context is current, which every entry point makes it (`call`, `bind`).
unsafe impl Send for CudaBackend {}

fn slot(r: Region) -> usize {
    r.index()
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

/// The longest sequence of valid sequence starts (see [`longest_sequence`]), or the call's error.
fn check_cu(cu: &[u32], tokens: usize, what: &str) -> Result<usize> {
    longest_sequence(cu, tokens).ok_or_else(|| fail(format!("{what}: sequence starts do not cover the {tokens} tokens in order")))
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
            bf16_attention: false,
            segments: Vec::new(),
        })
    }

    /// Attention products on bf16 operands (f32 results and softmax) in bf16 runs: faster, and further from
    /// the CPU engine, whose attention stays f32.
    pub fn with_bf16_attention(mut self) -> Self {
        self.bf16_attention = true;
        self
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
        self.product(g)
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
        let mut checks = vec![("token id", e.tables[0], e.ids), ("position", e.tables[1], e.positions)];
        if let Some(segments) = e.segments {
            checks.push(("token type", segments, e.types));
        }
        for (name, table, idx) in checks {
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
        // without a segment table the kernel gets a null pointer and adds nothing
        let (word, position, segment, out) = match e.segments {
            Some(segments) => {
                let ([word, position, segment], [out]) = self.call([e.tables[0], e.tables[1], segments], [e.out])?;
                (word, position, segment, out)
            }
            None => {
                let ([word, position], [out]) = self.call(e.tables, [e.out])?;
                (word, position, 0, out)
            }
        };
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
        self.attention_batched(a, false)
    }

    fn attention_grad(&mut self, a: &Attention) -> Result<()> {
        self.attention_batched(a, true)
    }

    fn pool(&mut self, p: &Pooling) -> Result<()> {
        self.pooling(p, "pool_fwd", p.x, p.out, "pool")
    }

    fn pool_grad(&mut self, p: &Pooling) -> Result<()> {
        self.pooling(p, "pool_bwd", p.out, p.x, "pool gradient")
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
        // one launch over the segment list (uploaded when it differs from the last one: the same trainable
        // segments every update), one row of partials per segment
        let list = self.scratch(Scratch::Segments, seg.len(), 8)?;
        if seg != self.segments {
            let buf = self.scratch[Scratch::Segments as usize].buf.as_ref().ok_or_else(|| fail("segment scratch"))?;
            buf.upload(&self.gpu, Span { offset: 0, bytes: 8 * seg.len() }, &seg).map_err(dev)?;
            self.segments = seg;
        }
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

impl CudaBackend {
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

    /// Pooling forward or backward (`kernel`): one block per sequence, reading `p.x` and writing `p.out`;
    /// `tokens` and `pooled` say which of them holds token rows and which pooled rows.
    fn pooling(&mut self, p: &Pooling, kernel: &str, tokens: Buf, pooled: Buf, what: &str) -> Result<()> {
        let cu = self.ints(p.cu_seqlens)?;
        if p.width == 0 || pooled.len != cu.len().saturating_sub(1) * p.width || !tokens.len.is_multiple_of(p.width) {
            return Err(fail(format!("{what}: shapes differ from the sequences")));
        }
        check_cu(cu, tokens.len / p.width, what)?;
        let seqs = to_u32("sequences", cu.len() - 1)?;
        let cu = self.ints_ptr(p.cu_seqlens)?;
        let ([src], [dst]) = self.call([p.x], [p.out])?;
        let args = Args::new().ptr(src).ptr(dst).ptr(cu).u32(to_u32("width", p.width)?).i32(i32::from(p.how == Pool::Mean));
        self.launch(kernel, Grid { blocks: (seqs, 1, 1), threads: ROW_THREADS, shared: 0 }, args)
    }
}

