//! Attention on the GPU: heads packed per sequence into [B·heads, L, d] blocks, the four products (and
//! the scores' recomputation in backward) as strided-batched cuBLASLt calls, softmax and its backward one
//! warp per score row (`engine.cu`). f32 operands by default (the CPU's attention precision), bf16 ones for
//! bf16 runs on a backend made [`CudaBackend::with_bf16_attention`].

use bertfit_cuda::blaslt::GemmArgs;
use bertfit_cuda::kernels::Args;
use bertfit_cuda::DType;

use super::host::lt_raw;
use super::{check_cu, dev, fail, to_u32, CudaBackend, Scratch};
use crate::engine::backend::Attention;
use crate::error::Result;
use crate::runtime::Precision;

/// Kernel arguments of an optional attention dropout: (p, keep scale, flag).
fn drop_args(drop: Option<(f64, u64)>) -> (f32, f32, i32) {
    match drop {
        Some((p, _)) => (p as f32, (1.0 / (1.0 - p)) as f32, 1),
        None => (0.0, 1.0, 0),
    }
}

impl CudaBackend {
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

    /// Attention forward (`grad` false: writes the context) or backward (reads the context's gradient,
    /// writes the Q/K/V gradient): heads packed into [B·heads, L, d] blocks, strided-batched products,
    /// softmax rows one warp each. The products are f32 (the CPU's attention precision in both modes), or
    /// bf16 operands with f32 results for bf16 runs on a backend made [`CudaBackend::with_bf16_attention`]
    /// (then L is rounded up to a multiple of 8, the rows and keys past a sequence being zero).
    pub(super) fn attention_batched(&mut self, a: &Attention, grad: bool) -> Result<()> {
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
}
