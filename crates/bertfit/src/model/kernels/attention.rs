//! Multi-head self-attention as one fused op, read and written in the (batch, seq, hidden) layout the
//! dense layers use: per batch row and head, `softmax(Q Kᵀ · scale + bias)`, dropout, `· V`, with the
//! heads addressed by strides (no split/merge transposes) and no (batch, heads, seq, seq) tensor kept.
//! The backward recomputes the probabilities (a small share of the layer's work) from Q and K and the
//! dropout mask from its counter-based key.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::gemm::{gemm, Mat, Threads};
use super::{simd, slice};
use crate::error::Result;
use crate::rng;

/// Attention dropout: probability and mask key (the draw index of element (b, head, query, key) is
/// its position in a (batch, heads, seq, seq) tensor, as in the composed path).
#[derive(Debug, Clone, Copy)]
pub struct AttentionDropout {
    /// Drop probability.
    pub p: f64,
    /// Mask stream key.
    pub key: u64,
}

/// `q`, `k`, `v`: (batch, seq, hidden) f32 with `heads` heads of `hidden / heads`; `bias`:
/// (batch, 1, 1, seq) additive mask. Returns the context (batch, seq, hidden). Differentiable in
/// `q`, `k` and `v`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, heads: usize, scale: f64, dropout: Option<AttentionDropout>) -> Result<Tensor> {
    let bias: Vec<f32> = bias.flatten_all()?.to_vec1()?;
    let op = Attention { heads, scale: scale as f32, bias, dropout: dropout.filter(|d| d.p > 0.0) };
    Ok(q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)?)
}

struct Attention {
    heads: usize,
    scale: f32,
    bias: Vec<f32>,
    dropout: Option<AttentionDropout>,
}

/// Sizes of one call: seq, hidden, head width.
#[derive(Clone, Copy)]
struct Dims {
    s: usize,
    h: usize,
    d: usize,
}

impl Attention {
    fn dims(&self, l: &Layout) -> candle_core::Result<Dims> {
        let (b, s, h) = l.shape().dims3()?;
        if self.heads == 0 || h % self.heads != 0 || self.bias.len() != b * s {
            candle_core::bail!("attention: input {:?} with {} heads and a bias of {}", l.dims(), self.heads, self.bias.len());
        }
        Ok(Dims { s, h, d: h / self.heads })
    }

    /// Probabilities of batch row `bi`, head `hd` into `p` (s × s): softmax of scaled scores plus bias.
    fn probs(&self, p: &mut [f32], q: &[f32], k: &[f32], bi: usize, hd: usize, n: Dims) -> candle_core::Result<()> {
        let at = bi * n.s * n.h + hd * n.d;
        // Kᵀ[c][j] = K[j][c].
        gemm(p, n.s, n.s, n.s, n.d, Mat { data: &q[at..], rs: n.h, cs: 1 }, Mat { data: &k[at..], rs: 1, cs: n.h }, false, Threads::One)?;
        let bias = &self.bias[bi * n.s..(bi + 1) * n.s];
        simd::vectorised!({
            for row in p.chunks_mut(n.s) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x = *x * self.scale + b;
                }
                let sum = simd::exp_shifted(row, simd::max(row));
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inv);
            }
        });
        Ok(())
    }

    /// Multiplies `p` (s × s of batch row `bi`, head `hd`) by the dropout mask, in place.
    fn drop(&self, p: &mut [f32], bi: usize, hd: usize, n: Dims) {
        let Some(d) = self.dropout else { return };
        let (keep_p, scale) = (d.p as f32, (1.0 / (1.0 - d.p)) as f32);
        let base = ((bi * self.heads + hd) * n.s * n.s) as u64;
        simd::vectorised!({
            for (i, x) in p.iter_mut().enumerate() {
                *x *= if rng::uniform_f32(d.key, base + i as u64) >= keep_p { scale } else { 0.0 };
            }
        });
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "bertfit-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (q, k, v) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?, slice(self.name(), s3, l3)?);
        let n = self.dims(l1)?;
        if l2.dims() != l1.dims() || l3.dims() != l1.dims() {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}", l1.dims(), l2.dims(), l3.dims());
        }
        let mut out = vec![0f32; q.len()];
        // One task per batch row; its heads write disjoint column ranges of the row's block.
        out.par_chunks_mut(n.s * n.h).enumerate().try_for_each(|(bi, block)| -> candle_core::Result<()> {
            let mut p = vec![0f32; n.s * n.s];
            for hd in 0..self.heads {
                self.probs(&mut p, q, k, bi, hd, n)?;
                self.drop(&mut p, bi, hd, n);
                let at = bi * n.s * n.h + hd * n.d;
                gemm(&mut block[hd * n.d..], n.h, n.s, n.d, n.s, Mat { data: &p, rs: n.s, cs: 1 }, Mat { data: &v[at..], rs: n.h, cs: 1 }, false, Threads::One)?;
            }
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let grad = grad.contiguous()?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let cpu = |s: &candle_core::Storage| match s {
            candle_core::Storage::Cpu(c) => Ok(c.clone()),
            _ => Err(candle_core::Error::Msg("attention backward runs on the CPU".into())),
        };
        let (qc, kc, vc, gc) = (cpu(&qs)?, cpu(&ks)?, cpu(&vs)?, cpu(&gs)?);
        let (qd, kd, vd, gd) = (slice(self.name(), &qc, ql)?, slice(self.name(), &kc, kl)?, slice(self.name(), &vc, vl)?, slice(self.name(), &gc, gl)?);
        let n = self.dims(ql)?;
        let len = qd.len();
        let (mut dq, mut dk, mut dv) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
        let block = n.s * n.h;
        dq.par_chunks_mut(block)
            .zip(dk.par_chunks_mut(block))
            .zip(dv.par_chunks_mut(block))
            .enumerate()
            .try_for_each(|(bi, ((dqb, dkb), dvb))| -> candle_core::Result<()> {
                let (mut p, mut pd, mut dp) = (vec![0f32; n.s * n.s], vec![0f32; n.s * n.s], vec![0f32; n.s * n.s]);
                for hd in 0..self.heads {
                    let at = bi * n.s * n.h + hd * n.d;
                    let (qm, km) = (Mat { data: &qd[at..], rs: n.h, cs: 1 }, Mat { data: &kd[at..], rs: n.h, cs: 1 });
                    let dout = Mat { data: &gd[at..], rs: n.h, cs: 1 };
                    self.probs(&mut p, qd, kd, bi, hd, n)?;
                    pd.copy_from_slice(&p);
                    self.drop(&mut pd, bi, hd, n);
                    // dV = P̃ᵀ dO.
                    gemm(&mut dvb[hd * n.d..], n.h, n.s, n.d, n.s, Mat { data: &pd, rs: 1, cs: n.s }, dout, false, Threads::One)?;
                    // dP̃ = dO Vᵀ, then through the dropout mask: dP = dP̃ ∘ mask.
                    gemm(&mut dp, n.s, n.s, n.s, n.d, dout, Mat { data: &vd[at..], rs: 1, cs: n.h }, false, Threads::One)?;
                    self.drop(&mut dp, bi, hd, n);
                    // dS = scale · P ∘ (dP − rowsum(dP ∘ P)).
                    simd::vectorised!({
                        for (prow, drow) in p.chunks(n.s).zip(dp.chunks_mut(n.s)) {
                            let dot = simd::dot(prow, drow);
                            for (x, &pv) in drow.iter_mut().zip(prow) {
                                *x = self.scale * pv * (*x - dot);
                            }
                        }
                    });
                    // dQ = dS K, dK = dSᵀ Q.
                    gemm(&mut dqb[hd * n.d..], n.h, n.s, n.d, n.s, Mat { data: &dp, rs: n.s, cs: 1 }, km, false, Threads::One)?;
                    gemm(&mut dkb[hd * n.d..], n.h, n.s, n.d, n.s, Mat { data: &dp, rs: 1, cs: n.s }, qm, false, Threads::One)?;
                }
                Ok(())
            })?;
        let shape = ql.shape().clone();
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, shape.clone(), dev)?),
            Some(Tensor::from_vec(dk, shape.clone(), dev)?),
            Some(Tensor::from_vec(dv, shape, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{backward, max_diff, random};
    use super::*;
    use crate::model::ops;
    use candle_core::{DType, Device, Var};

    /// The composed path of `bert.rs`: split heads, scores, masked softmax, dropout, context, merge.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, heads: usize, scale: f64, drop: Option<AttentionDropout>) -> Tensor {
        let (b, s, h) = q.dims3().expect("dims");
        let d = h / heads;
        let split = |t: &Tensor| t.reshape((b, s, heads, d)).expect("r").transpose(1, 2).expect("t").contiguous().expect("c");
        let (q, k, v) = (split(q), split(k), split(v));
        let scores = (q.matmul(&k.t().expect("t")).expect("mm") * scale).expect("scale").broadcast_add(bias).expect("bias");
        let mut p = ops::softmax_last(&scores).expect("softmax");
        if let Some(dr) = drop {
            let n = p.elem_count();
            let mask: Vec<f64> = (0..n as u64)
                .map(|i| if rng::uniform_f32(dr.key, i) >= dr.p as f32 { 1.0 / (1.0 - dr.p) } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, p.shape(), &Device::Cpu).expect("mask").to_dtype(p.dtype()).expect("dtype");
            p = p.mul(&mask).expect("mul");
        }
        p.matmul(&v).expect("mm").transpose(1, 2).expect("t").contiguous().expect("c").reshape((b, s, h)).expect("r")
    }

    #[test]
    fn forward_and_gradients_match_float64_and_candle_autograd() {
        let (b, s, h, heads) = (3, 11, 24, 4);
        let scale = 1.0 / ((h / heads) as f64).sqrt();
        let mut mask = vec![1f32; b * s];
        mask[s - 4..s].fill(0.0);
        mask[2 * s + 1..3 * s].fill(0.0);
        let bias = ops::attention_bias(&Tensor::from_vec(mask, (b, s), &Device::Cpu).expect("mask")).expect("bias");
        for drop in [None, Some(AttentionDropout { p: 0.2, key: rng::key(&[3, 4]) })] {
            let vars: Vec<Var> = (0..3).map(|i| Var::from_tensor(&random(&[b, s, h], 10 + i, 1.5)).expect("var")).collect();
            let up = random(&[b, s, h], 20, 1.0);
            let ours = attention(&vars[0], &vars[1], &vars[2], &bias, heads, scale, drop).expect("fused");
            let g_ours = backward(&ours, &up);
            let candle = composed(&vars[0], &vars[1], &vars[2], &bias, heads, scale, drop);
            let g_candle = backward(&candle, &up);
            let v64: Vec<Var> = vars.iter().map(|v| Var::from_tensor(&v.to_dtype(DType::F64).expect("f64")).expect("var")).collect();
            let reference = composed(&v64[0], &v64[1], &v64[2], &bias.to_dtype(DType::F64).expect("f64"), heads, scale, drop);
            let g_ref = backward(&reference, &up);

            assert!(max_diff(&ours, &reference) < 1e-5, "forward vs f64: {}", max_diff(&ours, &reference));
            assert!(max_diff(&ours, &candle) < 1e-5, "forward vs candle");
            for (i, name) in ["q", "k", "v"].iter().enumerate() {
                let ga = g_ours.get(vars[i].as_tensor()).expect("ours");
                let gc = g_candle.get(vars[i].as_tensor()).expect("candle");
                let gr = g_ref.get(v64[i].as_tensor()).expect("f64");
                assert!(max_diff(ga, gr) < 1e-5, "d{name} vs f64: {} (dropout {drop:?})", max_diff(ga, gr));
                assert!(max_diff(ga, gc) < 1e-5, "d{name} vs candle: {}", max_diff(ga, gc));
            }
        }
    }

    #[test]
    fn heads_that_do_not_divide_the_width_are_an_error() {
        let x = random(&[1, 2, 6], 1, 1.0);
        let bias = Tensor::zeros((1, 1, 1, 2), DType::F32, &Device::Cpu).expect("bias");
        assert!(attention(&x, &x, &x, &bias, 4, 1.0, None).is_err());
    }
}
