//! The CPU backend: each [`Backend`] call runs at once on host memory, through the slice-level cores of
//! `model::kernels` (GEMMs, LayerNorm, GELU) and the engine's own loops (embeddings, dropout by logical
//! coordinates, varlen attention, pooling, loss, AdamW). Every call checks that its outputs overlap neither
//! its inputs nor each other, which is what lets it hand out `&mut` slices of one region. Reductions run in
//! a fixed order (blocks summed in order, or one thread per column range), so results do not depend on
//! the number of threads.

mod attention;

use rayon::prelude::*;

use super::backend::{first_overlap, longest_sequence, Attention, Backend, Buf, DropIndex, Dropout, DropoutAdd, Embed, EmbedGrad, Gemm, Ints, LayerNorm, LayerNormGrad, Pooling, Region, SoftmaxCe};
use super::ops::{self, AdamStep};
use crate::error::{Error, Result};
use crate::model::kernels::bf16::gemm_bf16;
use crate::model::kernels::gemm::{gemm, Mat, Threads};
use crate::model::kernels::{gelu, layer_norm, simd};
use crate::model::Activation;
use crate::rng;
use crate::runtime::Precision;

/// A CPU backend call that cannot run (a wiring bug, or a token id outside its table).
#[derive(Debug, thiserror::Error)]
#[error("cpu backend: {0}")]
pub struct CpuError(String);

/// Refuses an index at or beyond a table's `rows`, naming what it indexes.
fn check_rows(name: &str, rows: usize, idx: &[u32]) -> Result<()> {
    match idx.iter().find(|&&i| i as usize >= rows) {
        Some(bad) => Err(fail(format!("{name} {bad} is outside the embedding table of {rows} rows"))),
        None => Ok(()),
    }
}

fn fail(msg: impl Into<String>) -> Error {
    Error::Backend(Box::new(CpuError(msg.into())))
}

/// Columns per task in column-parallel reductions.
const COLS: usize = 64;
/// Elements per task in element-wise loops.
const CHUNK: usize = 4096;

/// Host memory of the engine's regions.
#[derive(Debug, Default)]
pub struct CpuBackend {
    regions: [Vec<f32>; 5],
    ints: Vec<u32>,
    /// Gradients of frozen LayerNorms (computed by the backward core, then dropped).
    scratch: Vec<f32>,
}

fn slot(r: Region) -> usize {
    r.index()
}

/// Slices of `regions` for one call: `ins` shared, `outs` exclusive. Refuses out-of-range buffers and
/// outputs that overlap any other buffer of the call.
fn views<'a, const I: usize, const O: usize>(regions: &'a mut [Vec<f32>; 5], ins: [Buf; I], outs: [Buf; O]) -> Result<([&'a [f32]; I], [&'a mut [f32]; O])> {
    for b in ins.iter().chain(&outs) {
        if b.offset.checked_add(b.len).is_none_or(|end| end > regions[slot(b.region)].len()) {
            return Err(fail(format!("{b:?} lies outside its region of {}", regions[slot(b.region)].len())));
        }
    }
    if let Some(o) = first_overlap(&ins, &outs) {
        return Err(fail(format!("output {o:?} overlaps another buffer of the call")));
    }
    let bases: [*mut f32; 5] = std::array::from_fn(|i| regions[i].as_mut_ptr());
    // SAFETY: every buffer lies inside its region (checked above); the outputs are pairwise disjoint and
    // disjoint from every input, so no element is reachable through a `&mut` and another reference; all
    // slices borrow from `regions`, exclusively borrowed for 'a.
    let ins = ins.map(|b| unsafe { std::slice::from_raw_parts(bases[slot(b.region)].add(b.offset), b.len) as &'a [f32] });
    let outs = outs.map(|b| unsafe { std::slice::from_raw_parts_mut(bases[slot(b.region)].add(b.offset), b.len) });
    Ok((ins, outs))
}

fn ints(all: &[u32], i: Ints) -> Result<&[u32]> {
    i.offset.checked_add(i.len).and_then(|end| all.get(i.offset..end)).ok_or_else(|| fail(format!("{i:?} lies outside the integer region of {}", all.len())))
}

/// Sequence starts that begin at 0, never decrease and end at `tokens`.
fn check_cu(cu: &[u32], tokens: usize, what: &str) -> Result<()> {
    longest_sequence(cu, tokens).map(|_| ()).ok_or_else(|| fail(format!("{what}: sequence starts do not cover the {tokens} tokens in order")))
}

/// A table pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: only used where each task writes a disjoint set of elements (see `embed_grad`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the `Sync` wrapper rather than its field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Splits `data` (rows of `width`) at the sequence starts `cu`: one mutable block per sequence.
fn by_sequence<'a>(mut data: &'a mut [f32], cu: &[u32], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(cu.len().saturating_sub(1));
    for w in cu.windows(2) {
        let (head, rest) = std::mem::take(&mut data).split_at_mut((w[1] - w[0]) as usize * width);
        out.push(head);
        data = rest;
    }
    out
}

/// The mask value of counter `i`: `scale` when kept, 0 when dropped.
#[inline(always)]
fn keep(key: u64, p: f32, scale: f32, i: u64) -> f32 {
    if rng::uniform_f32(key, i) >= p {
        scale
    } else {
        0.0
    }
}

/// The first dropout counter of row `r`.
fn row_base(index: DropIndex, prow: &[u32], r: usize, width: usize) -> u64 {
    match index {
        DropIndex::Dense => (r * width) as u64,
        DropIndex::Tokens(_) => prow[r] as u64 * width as u64,
    }
}

/// The padded rows a dropout needs (empty for dense counters).
fn prow_of<'a>(all: &'a [u32], d: &Dropout) -> Result<&'a [u32]> {
    match d.index {
        DropIndex::Dense => Ok(&[]),
        DropIndex::Tokens(i) => ints(all, i),
    }
}

/// `out[r] = a[r] · mask(r) (+ res[r])` over rows of `width`, in parallel row blocks.
fn masked_rows(out: &mut [f32], a: Option<&[f32]>, res: Option<&[f32]>, width: usize, d: &Dropout, prow: &[u32]) {
    let (p, scale) = (d.p as f32, (1.0 / (1.0 - d.p)) as f32);
    let rows_per_task = (CHUNK / width.max(1)).max(1);
    out.par_chunks_mut(rows_per_task * width).enumerate().for_each(|(c, chunk)| {
        for (i, row) in chunk.chunks_mut(width).enumerate() {
            let r = c * rows_per_task + i;
            let base = row_base(d.index, prow, r, width);
            let at = r * width;
            simd::vectorised!({
                match (a, res) {
                    (Some(a), Some(res)) => {
                        for (j, (y, (&x, &s))) in row.iter_mut().zip(a[at..].iter().zip(&res[at..])).enumerate() {
                            *y = x * keep(d.key, p, scale, base + j as u64) + s;
                        }
                    }
                    (Some(a), None) => {
                        for (j, (y, &x)) in row.iter_mut().zip(&a[at..]).enumerate() {
                            *y = x * keep(d.key, p, scale, base + j as u64);
                        }
                    }
                    _ => {
                        for (j, y) in row.iter_mut().enumerate() {
                            *y *= keep(d.key, p, scale, base + j as u64);
                        }
                    }
                }
            })
        }
    });
}

impl CpuBackend {
    /// An empty backend; regions grow with [`Backend::reserve`].
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    fn check_width(what: &str, b: Buf, width: usize) -> Result<usize> {
        if width == 0 || !b.len.is_multiple_of(width) {
            return Err(fail(format!("{what}: {} elements are not rows of {width}", b.len)));
        }
        Ok(b.len / width)
    }
}

impl Backend for CpuBackend {
    fn reserve(&mut self, region: Region, len: usize) -> Result<()> {
        let v = &mut self.regions[slot(region)];
        if v.len() < len {
            v.resize(len, 0.0);
        }
        Ok(())
    }

    fn reserve_ints(&mut self, len: usize) -> Result<()> {
        if self.ints.len() < len {
            self.ints.resize(len, 0);
        }
        Ok(())
    }

    fn upload(&mut self, dst: Buf, src: &[f32]) -> Result<()> {
        let (_, [d]) = views(&mut self.regions, [], [dst])?;
        if d.len() != src.len() {
            return Err(fail(format!("upload of {} elements into {dst:?}", src.len())));
        }
        d.copy_from_slice(src);
        Ok(())
    }

    fn upload_ints(&mut self, dst: Ints, src: &[u32]) -> Result<()> {
        let d = self.ints.get_mut(dst.offset..dst.offset + dst.len).ok_or_else(|| fail(format!("{dst:?} outside the integer region")))?;
        if d.len() != src.len() {
            return Err(fail(format!("upload of {} integers into {dst:?}", src.len())));
        }
        d.copy_from_slice(src);
        Ok(())
    }

    fn download(&mut self, src: Buf, dst: &mut [f32]) -> Result<()> {
        let ([s], []) = views(&mut self.regions, [src], [])?;
        if s.len() != dst.len() {
            return Err(fail(format!("download of {src:?} into {} elements", dst.len())));
        }
        dst.copy_from_slice(s);
        Ok(())
    }

    fn fill(&mut self, dst: Buf, value: f32) -> Result<()> {
        let (_, [d]) = views(&mut self.regions, [], [dst])?;
        d.par_chunks_mut(CHUNK).for_each(|c| c.fill(value));
        Ok(())
    }

    fn gemm(&mut self, g: &Gemm) -> Result<()> {
        let bias = g.bias.filter(|_| !g.accumulate);
        let ([a, b, bias_data], [c]) = views(&mut self.regions, [g.a.buf, g.b.buf, bias.unwrap_or(g.a.buf.part(0, 0))], [g.c])?;
        if g.m.checked_mul(g.n).is_none_or(|mn| c.len() < mn) {
            return Err(fail(format!("gemm: result {:?} too small for {}×{}", g.c, g.m, g.n)));
        }
        let mut accumulate = g.accumulate;
        if bias.is_some() {
            if bias_data.len() != g.n {
                return Err(fail(format!("gemm: bias of {} for {} columns", bias_data.len(), g.n)));
            }
            for row in c.chunks_mut(g.n).take(g.m) {
                row.copy_from_slice(bias_data);
            }
            accumulate = true;
        }
        let (lhs, rhs) = (Mat { data: a, rs: g.a.rs, cs: g.a.cs }, Mat { data: b, rs: g.b.rs, cs: g.b.cs });
        match g.precision {
            Precision::F32 => gemm(c, g.n, g.m, g.n, g.k, lhs, rhs, accumulate, Threads::Pool)?,
            Precision::Bf16 => gemm_bf16(c, g.n, g.m, g.n, g.k, lhs, rhs, accumulate)?,
        }
        Ok(())
    }

    fn bias_grad(&mut self, dy: Buf, db: Buf, width: usize) -> Result<()> {
        let rows = Self::check_width("bias gradient", dy, width)?;
        let ([dy], [db]) = views(&mut self.regions, [dy], [db])?;
        if db.len() != width {
            return Err(fail(format!("bias gradient of {} for width {width}", db.len())));
        }
        // one task per column range; each sums the rows in order
        db.par_chunks_mut(COLS).enumerate().for_each(|(c, cols)| {
            let at = c * COLS;
            for r in 0..rows {
                let row = &dy[r * width + at..r * width + at + cols.len()];
                for (d, &v) in cols.iter_mut().zip(row) {
                    *d += v;
                }
            }
        });
        Ok(())
    }

    fn embed(&mut self, e: &Embed) -> Result<()> {
        let w = e.width;
        let (ids, pos, types) = (ints(&self.ints, e.ids)?, ints(&self.ints, e.positions)?, ints(&self.ints, e.types)?);
        let ([word, position], [out]) = views(&mut self.regions, e.tables, [e.out])?;
        let n = out.len() / w.max(1);
        if ids.len() != n || pos.len() != n || types.len() != n {
            return Err(fail("embed: index lengths differ from the output rows"));
        }
        for (name, table, idx) in [("token id", &word, ids), ("position", &position, pos)] {
            check_rows(name, table.len() / w.max(1), idx)?;
        }
        out.par_chunks_mut(w).enumerate().for_each(|(t, row)| {
            let (a, b) = (ids[t] as usize * w, pos[t] as usize * w);
            for (j, y) in row.iter_mut().enumerate() {
                *y = word[a + j] + position[b + j];
            }
        });
        if let Some(segments) = e.segments {
            let ([segment], [out]) = views(&mut self.regions, [segments], [e.out])?;
            check_rows("token type", segment.len() / w.max(1), types)?;
            out.par_chunks_mut(w).enumerate().for_each(|(t, row)| {
                let c = types[t] as usize * w;
                for (j, y) in row.iter_mut().enumerate() {
                    *y += segment[c + j];
                }
            });
        }
        Ok(())
    }

    fn embed_grad(&mut self, e: &EmbedGrad) -> Result<()> {
        let w = e.width;
        for (index, table) in e.index.iter().zip(e.tables) {
            let Some(table) = table else { continue };
            let idx = ints(&self.ints, *index)?;
            let ([dy], [g]) = views(&mut self.regions, [e.dy], [table])?;
            let rows = g.len() / w.max(1);
            if idx.len() * w != dy.len() || idx.iter().any(|&i| i as usize >= rows) {
                return Err(fail("embedding gradient: indices do not match the table or the gradient"));
            }
            // one task per column range, tokens in order: a fixed summation order per element
            let base = Shared(g.as_mut_ptr());
            (0..w.div_ceil(COLS)).into_par_iter().for_each(|c| {
                let c0 = c * COLS;
                let c1 = (c0 + COLS).min(w);
                for (t, &id) in idx.iter().enumerate() {
                    let src = &dy[t * w + c0..t * w + c1];
                    // SAFETY: tasks write disjoint column ranges [c0, c1) of the table's rows; `id` is
                    // checked against the table's rows above.
                    let dst = unsafe { std::slice::from_raw_parts_mut(base.ptr().add(id as usize * w + c0), c1 - c0) };
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            });
        }
        Ok(())
    }

    fn layer_norm(&mut self, a: &LayerNorm) -> Result<()> {
        Self::check_width("layer norm", a.x, a.width)?;
        let ([x, w, b], [out]) = views(&mut self.regions, [a.x, a.weight, a.bias], [a.out])?;
        if w.len() != a.width || b.len() != a.width || out.len() != x.len() {
            return Err(fail("layer norm: shapes differ"));
        }
        layer_norm::forward_rows(out, x, w, b, a.eps);
        Ok(())
    }

    fn layer_norm_grad(&mut self, a: &LayerNormGrad) -> Result<()> {
        Self::check_width("layer norm gradient", a.x, a.width)?;
        if a.weight.len != a.width || a.dy.len != a.x.len || a.dx.len != a.x.len {
            return Err(fail("layer norm gradient: shapes differ"));
        }
        match (a.dweight, a.dbias) {
            (Some(dw), Some(db)) => {
                let ([x, w, dy], [dx, dw, db]) = views(&mut self.regions, [a.x, a.weight, a.dy], [a.dx, dw, db])?;
                layer_norm::backward_rows(dx, dw, db, x, w, dy, a.eps);
            }
            _ => {
                self.scratch.resize(2 * a.width, 0.0);
                let (dw, db) = self.scratch.split_at_mut(a.width);
                let ([x, w, dy], [dx]) = views(&mut self.regions, [a.x, a.weight, a.dy], [a.dx])?;
                layer_norm::backward_rows(dx, dw, db, x, w, dy, a.eps);
            }
        }
        Ok(())
    }

    fn dropout(&mut self, x: Buf, out: Buf, width: usize, drop: &Dropout) -> Result<()> {
        Self::check_width("dropout", out, width)?;
        let prow = prow_of(&self.ints, drop)?;
        if prow.len() * width != out.len && !matches!(drop.index, DropIndex::Dense) {
            return Err(fail("dropout: token rows differ from the buffer's rows"));
        }
        if x == out {
            let (_, [o]) = views(&mut self.regions, [], [out])?;
            masked_rows(o, None, None, width, drop, prow);
        } else {
            let ([x], [o]) = views(&mut self.regions, [x], [out])?;
            if x.len() != o.len() {
                return Err(fail("dropout: lengths differ"));
            }
            masked_rows(o, Some(x), None, width, drop, prow);
        }
        Ok(())
    }

    fn dropout_add(&mut self, a: &DropoutAdd) -> Result<()> {
        Self::check_width("dropout-add", a.out, a.width)?;
        let ([x, res], [out]) = views(&mut self.regions, [a.a, a.residual], [a.out])?;
        if x.len() != out.len() || res.len() != out.len() {
            return Err(fail("dropout-add: lengths differ"));
        }
        match &a.drop {
            Some(d) => {
                let prow = prow_of(&self.ints, d)?;
                if prow.len() * a.width != out.len() && !matches!(d.index, DropIndex::Dense) {
                    return Err(fail("dropout-add: token rows differ from the buffer's rows"));
                }
                masked_rows(out, Some(x), Some(res), a.width, d, prow);
            }
            None => out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                for (j, y) in o.iter_mut().enumerate() {
                    *y = x[c * CHUNK + j] + res[c * CHUNK + j];
                }
            }),
        }
        Ok(())
    }

    fn activation(&mut self, act: Activation, x: Buf, out: Buf) -> Result<()> {
        let ([x], [out]) = views(&mut self.regions, [x], [out])?;
        if x.len() != out.len() {
            return Err(fail("activation: lengths differ"));
        }
        const C: f32 = 0.797_884_6; // √(2/π), candle's constant for the tanh GELU
        match act {
            Activation::GeluErf => gelu::gelu_into(out, x),
            Activation::GeluTanh => elementwise(out, x, |v| 0.5 * v * (1.0 + (C * v * (1.0 + 0.044715 * v * v)).tanh())),
            Activation::Relu => elementwise(out, x, |v| v.max(0.0)),
            Activation::Tanh => elementwise(out, x, f32::tanh),
        }
        Ok(())
    }

    fn activation_grad(&mut self, act: Activation, x: Buf, dy: Buf, dx: Buf) -> Result<()> {
        let ([x, dy], [dx]) = views(&mut self.regions, [x, dy], [dx])?;
        if x.len() != dx.len() || dy.len() != dx.len() {
            return Err(fail("activation gradient: lengths differ"));
        }
        const C: f32 = 0.797_884_6;
        let pairs = |dx: &mut [f32], f: &(dyn Fn(f32) -> f32 + Sync)| {
            dx.par_chunks_mut(CHUNK).enumerate().for_each(|(c, d)| {
                let at = c * CHUNK;
                for (j, v) in d.iter_mut().enumerate() {
                    *v = dy[at + j] * f(x[at + j]);
                }
            })
        };
        match act {
            Activation::GeluErf => gelu::gelu_backward_into(dx, x, dy),
            Activation::GeluTanh => pairs(dx, &|v| {
                let t = (C * v * (1.0 + 0.044715 * v * v)).tanh();
                0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044715 * v * v)
            }),
            Activation::Relu => pairs(dx, &|v| if v > 0.0 { 1.0 } else { 0.0 }),
            Activation::Tanh => pairs(dx, &|v| {
                let t = v.tanh();
                1.0 - t * t
            }),
        }
        Ok(())
    }

    fn attention(&mut self, a: &Attention) -> Result<()> {
        attention::forward(&mut self.regions, &self.ints, a)
    }

    fn attention_grad(&mut self, a: &Attention) -> Result<()> {
        attention::backward(&mut self.regions, &self.ints, a)
    }

    fn pool(&mut self, p: &Pooling) -> Result<()> {
        let cu = ints(&self.ints, p.cu_seqlens)?;
        let ([x], [out]) = views(&mut self.regions, [p.x], [p.out])?;
        if p.width == 0 || out.len() != cu.len().saturating_sub(1) * p.width {
            return Err(fail("pool: shapes differ from the sequences"));
        }
        check_cu(cu, x.len() / p.width, "pool")?;
        ops::pool_fwd(x, p.width, cu, p.how, out);
        Ok(())
    }

    fn pool_grad(&mut self, p: &Pooling) -> Result<()> {
        let cu = ints(&self.ints, p.cu_seqlens)?;
        let ([dy], [dx]) = views(&mut self.regions, [p.x], [p.out])?;
        if p.width == 0 || dy.len() != cu.len().saturating_sub(1) * p.width {
            return Err(fail("pool gradient: shapes differ from the sequences"));
        }
        check_cu(cu, dx.len() / p.width, "pool gradient")?;
        ops::pool_bwd(dy, p.width, cu, p.how, dx);
        Ok(())
    }

    fn softmax_ce(&mut self, a: &SoftmaxCe<'_>) -> Result<f64> {
        let ([logits], [probs, dlogits]) = views(&mut self.regions, [a.logits], [a.probs, a.dlogits])?;
        let rows = a.labels.len();
        if logits.len() != rows * a.classes || probs.len() != logits.len() || dlogits.len() != logits.len() {
            return Err(fail("softmax-ce: shapes differ"));
        }
        if let Some(bad) = a.labels.iter().find(|&&y| y >= a.classes) {
            return Err(fail(format!("softmax-ce: label {bad} of {} classes", a.classes)));
        }
        if a.weights.is_some_and(|w| w.len() != a.classes) {
            return Err(fail(format!("softmax-ce: class weights for {} classes", a.classes)));
        }
        Ok(ops::softmax_ce(logits, a.classes, a.labels, a.weights, a.scale, probs, dlogits))
    }

    fn grad_norm_sq(&mut self, grads: &[Buf]) -> Result<f64> {
        let mut total = 0.0;
        for &g in grads {
            let ([g], []) = views(&mut self.regions, [g], [])?;
            total += ops::sum_sq(g);
        }
        Ok(total)
    }

    fn free_memory(&self) -> Option<u64> {
        // Linux's MemAvailable
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    fn adamw(&mut self, segments: &[(Buf, bool)], step: &AdamStep) -> Result<()> {
        for &(p, decays) in segments {
            let at = |region| Buf { region, ..p };
            let (_, [w, g, m, v]) = views(&mut self.regions, [], [p, at(Region::Grads), at(Region::AdamM), at(Region::AdamV)])?;
            let s = AdamStep { decay: if decays { step.decay } else { 0.0 }, ..*step };
            ops::adamw(w, g, m, v, &s);
            g.fill(0.0);
        }
        Ok(())
    }
}

/// `out[i] = f(x[i])` in parallel chunks.
fn elementwise(out: &mut [f32], x: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        for (j, y) in o.iter_mut().enumerate() {
            *y = f(x[c * CHUNK + j]);
        }
    });
}
