//! Varlen multi-head attention on the CPU: per packed sequence (in parallel) and head, `softmax(Q Kᵀ ·
//! scale)` from the column blocks of `qkv`, dropout by the padded coordinates, `· V`; the backward
//! recomputes the probabilities and the mask instead of storing them. Per-thread scratch is grown once and
//! reused.

use std::cell::RefCell;

use rayon::prelude::*;

use super::{by_sequence, check_cu, fail, ints, keep, views};
use crate::engine::backend::Attention;
use crate::error::Result;
use crate::model::kernels::gemm::{gemm, Mat, Threads};
use crate::model::kernels::simd;

thread_local! {
    /// Per-thread attention scratch (probabilities and their gradients), grown once and reused.
    static ATTN: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Attention probabilities of one (sequence, head): `softmax(Q Kᵀ · scale)` into `p` (`len × len`), then
/// the dropout mask when `drop` (counters `base + q · S + k`).
#[allow(clippy::too_many_arguments)]
fn probs(p: &mut [f32], qkv: &[f32], start: usize, len: usize, hd: usize, a: &Attention, d: usize, drop_base: Option<u64>) -> Result<()> {
    let h3 = 3 * a.width;
    let q = Mat { data: &qkv[start * h3 + hd * d..], rs: h3, cs: 1 };
    let k = Mat { data: &qkv[start * h3 + a.width + hd * d..], rs: 1, cs: h3 };
    gemm(p, len, len, len, d, q, k, false, Threads::One)?;
    simd::vectorised!({
        for row in p.chunks_mut(len) {
            for x in row.iter_mut() {
                *x *= a.scale;
            }
            let sum = simd::exp_shifted(row, simd::max(row));
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|x| *x *= inv);
        }
    });
    if let (Some(base), Some((pd, key))) = (drop_base, a.drop) {
        mask_probs(p, len, base, a.padded_len, pd, key);
    }
    Ok(())
}

/// Multiplies a `len × len` block by the attention dropout mask (counters `base + q · S + k`).
fn mask_probs(p: &mut [f32], len: usize, base: u64, padded: usize, pd: f64, key: u64) {
    let (pf, scale) = (pd as f32, (1.0 / (1.0 - pd)) as f32);
    simd::vectorised!({
        for (qi, row) in p.chunks_mut(len).enumerate() {
            let at = base + (qi * padded) as u64;
            for (k, x) in row.iter_mut().enumerate() {
                *x *= keep(key, pf, scale, at + k as u64);
            }
        }
    });
}

/// Attention forward: writes the context of every (sequence, head), sequences in parallel.
pub(super) fn forward(regions: &mut [Vec<f32>; 5], all_ints: &[u32], a: &Attention) -> Result<()> {
    let (h, heads) = (a.width, a.heads);
    if heads == 0 || !h.is_multiple_of(heads) || a.qkv.len != 3 * a.ctx.len || !a.ctx.len.is_multiple_of(h.max(1)) {
        return Err(fail(format!("attention: {heads} heads, width {h}, qkv {}, context {}", a.qkv.len, a.ctx.len)));
    }
    let d = h / heads;
    let cu = ints(all_ints, a.cu_seqlens)?;
    check_cu(cu, a.ctx.len / h, "attention")?;
    let ([qkv], [ctx]) = views(regions, [a.qkv], [a.ctx])?;
    by_sequence(ctx, cu, h).into_par_iter().enumerate().try_for_each(|(b, block)| -> Result<()> {
        let (start, len) = (cu[b] as usize, (cu[b + 1] - cu[b]) as usize);
        if len == 0 {
            return Ok(());
        }
        ATTN.with(|cell| -> Result<()> {
            let mut buf = cell.borrow_mut();
            if buf.len() < len * len {
                buf.resize(len * len, 0.0);
            }
            let p = &mut buf[..len * len];
            for hd in 0..heads {
                let base = ((b * heads + hd) * a.padded_len * a.padded_len) as u64;
                probs(p, qkv, start, len, hd, a, d, Some(base))?;
                let v = Mat { data: &qkv[start * 3 * h + 2 * h + hd * d..], rs: 3 * h, cs: 1 };
                gemm(&mut block[hd * d..], h, len, d, len, Mat { data: p, rs: len, cs: 1 }, v, false, Threads::One)?;
            }
            Ok(())
        })
    })
}

/// Attention backward: recomputes the probabilities (and the dropout mask) and writes the Q/K/V gradient.
pub(super) fn backward(regions: &mut [Vec<f32>; 5], all_ints: &[u32], a: &Attention) -> Result<()> {
    let (h, heads) = (a.width, a.heads);
    let Some(dqkv) = a.dqkv else { return Err(fail("attention gradient without a Q/K/V gradient buffer")) };
    if heads == 0 || !h.is_multiple_of(heads) || a.qkv.len != 3 * a.ctx.len || dqkv.len != a.qkv.len {
        return Err(fail(format!("attention gradient: {heads} heads, width {h}, qkv {}, context {}", a.qkv.len, a.ctx.len)));
    }
    let d = h / heads;
    let cu = ints(all_ints, a.cu_seqlens)?;
    check_cu(cu, a.ctx.len / h, "attention gradient")?;
    let ([qkv, dctx], [dqkv]) = views(regions, [a.qkv, a.ctx], [dqkv])?;
    by_sequence(dqkv, cu, 3 * h).into_par_iter().enumerate().try_for_each(|(b, block)| -> Result<()> {
        let (start, len) = (cu[b] as usize, (cu[b + 1] - cu[b]) as usize);
        if len == 0 {
            return Ok(());
        }
        ATTN.with(|cell| -> Result<()> {
            let mut buf = cell.borrow_mut();
            if buf.len() < 3 * len * len {
                buf.resize(3 * len * len, 0.0);
            }
            let (p, rest) = buf.split_at_mut(len * len);
            let (pd, rest) = rest.split_at_mut(len * len);
            let dp = &mut rest[..len * len];
            let h3 = 3 * h;
            for hd in 0..heads {
                let base = ((b * heads + hd) * a.padded_len * a.padded_len) as u64;
                probs(p, qkv, start, len, hd, a, d, None)?;
                pd.copy_from_slice(p);
                if let Some((pdrop, key)) = a.drop {
                    mask_probs(pd, len, base, a.padded_len, pdrop, key);
                }
                let dout = Mat { data: &dctx[start * h + hd * d..], rs: h, cs: 1 };
                // dV = P̃ᵀ dO
                gemm(&mut block[2 * h + hd * d..], h3, len, d, len, Mat { data: pd, rs: 1, cs: len }, dout, false, Threads::One)?;
                // dP̃ = dO Vᵀ, through the mask
                let vt = Mat { data: &qkv[start * h3 + 2 * h + hd * d..], rs: 1, cs: h3 };
                gemm(dp, len, len, len, d, dout, vt, false, Threads::One)?;
                if let Some((pdrop, key)) = a.drop {
                    mask_probs(dp, len, base, a.padded_len, pdrop, key);
                }
                // dS = scale · P ∘ (dP − rowsum(dP ∘ P))
                simd::vectorised!({
                    for (prow, drow) in p.chunks(len).zip(dp.chunks_mut(len)) {
                        let dot = simd::dot(prow, drow);
                        for (x, &pv) in drow.iter_mut().zip(prow) {
                            *x = a.scale * pv * (*x - dot);
                        }
                    }
                });
                let k = Mat { data: &qkv[start * h3 + h + hd * d..], rs: h3, cs: 1 };
                let q = Mat { data: &qkv[start * h3 + hd * d..], rs: h3, cs: 1 };
                // dQ = dS K, dK = dSᵀ Q
                gemm(&mut block[hd * d..], h3, len, d, len, Mat { data: dp, rs: len, cs: 1 }, k, false, Threads::One)?;
                gemm(&mut block[h + hd * d..], h3, len, d, len, Mat { data: dp, rs: 1, cs: len }, q, false, Threads::One)?;
            }
            Ok(())
        })
    })
}
