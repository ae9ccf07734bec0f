//! A dense layer `y = x Wᵀ + b` as one op over the GEMM microkernels (the `gemm` crate candle itself
//! uses): the bias is written into the output before the product accumulates onto it, and the
//! backward gives `dx = dy W`, `dW = dyᵀ x` (both straight from the row-major buffers, no transposed
//! copies) and `db` in two calls, instead of candle's matmul, broadcast-add, transposes and reshapes.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::bf16::gemm_bf16;
use super::gelu::{gelu_grad, gelu_into};
use super::gemm::{gemm, Mat, Threads};
use super::Precision;
use super::{for_rows, slice};
use crate::error::Result;

/// `x`: (..., in), `weight`: (out, in) (Hugging Face layout), `bias`: (out) → (..., out), f32; the
/// leading dimensions are rows (taking them as they are saves the reshape nodes, whose backward
/// costs a zero-filled gradient and an add each). Differentiable in all three.
/// Products use `precision`, forward and backward alike (the op keeps it).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, precision: Precision) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Forward { precision, gelu: None })?)
}

/// `gelu(x Wᵀ + b)` (the erf GELU) as one op: the activation is applied in the dense layer's
/// call, and its backward runs inside the layer's, so the graph holds one node where it held two
/// (saving the activation node's zero-filled gradient and add). Shapes as [`linear`].
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor, precision: Precision) -> Result<Tensor> {
    let op = Forward { precision, gelu: Some(std::sync::OnceLock::new()) };
    Ok(x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?)
}

/// A product in the op's precision, on candle's threads.
#[allow(clippy::too_many_arguments)]
fn product(p: Precision, dst: &mut [f32], dst_rs: usize, m: usize, n: usize, k: usize, lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool) -> candle_core::Result<()> {
    match p {
        Precision::F32 => gemm(dst, dst_rs, m, n, k, lhs, rhs, accumulate, Threads::Pool),
        Precision::Bf16 => gemm_bf16(dst, dst_rs, m, n, k, lhs, rhs, accumulate),
    }
}

/// Rows, inputs and outputs of a linear op, checked.
fn sizes(x: &Layout, w: &Layout, b_len: usize) -> candle_core::Result<(usize, usize, usize)> {
    let (xd, wd) = (x.dims(), w.dims());
    if xd.is_empty() || wd.len() != 2 || xd[xd.len() - 1] != wd[1] || b_len != wd[0] {
        candle_core::bail!("linear: input {xd:?}, weight {wd:?}, bias {b_len}");
    }
    Ok((leading(xd), wd[1], wd[0]))
}

/// `dims` with the last dimension replaced by `last`.
fn with_last(dims: &[usize], last: usize) -> Shape {
    let mut d = dims.to_vec();
    if let Some(l) = d.last_mut() {
        *l = last;
    }
    Shape::from(d)
}

/// Product of all but the last dimension: the rows of a (..., width) tensor, zero-width ones included.
fn leading(dims: &[usize]) -> usize {
    dims[..dims.len().saturating_sub(1)].iter().product()
}

/// Rows of a (..., width) gradient, checked against the expected width.
fn grad_rows(op: &str, g: &Layout, width: usize, other: &Layout) -> candle_core::Result<usize> {
    match g.dims().last() {
        Some(&w) if w == width => Ok(leading(g.dims())),
        _ => candle_core::bail!("{op}: gradient {:?} for {:?}", g.dims(), other.dims()),
    }
}

struct Forward {
    precision: Precision,
    /// With a GELU after the product: where the forward keeps the pre-activation for the backward.
    gelu: Option<std::sync::OnceLock<Tensor>>,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "bertfit-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?, slice(self.name(), s3, l3)?);
        let (rows, inp, out) = sizes(l1, l2, b.len())?;
        let mut y = vec![0f32; rows * out];
        for_rows(&mut y, out, |_, row| row.copy_from_slice(b));
        // y += x · Wᵀ, where Wᵀ[k][n] = W[n][k].
        product(self.precision, &mut y, out, rows, out, inp, Mat { data: x, rs: inp, cs: 1 }, Mat { data: w, rs: 1, cs: inp }, true)?;
        let shape = with_last(l1.dims(), out);
        let Some(keep) = &self.gelu else { return Ok((CpuStorage::F32(y), shape)) };
        let mut act = vec![0f32; y.len()];
        gelu_into(&mut act, &y);
        if keep.set(Tensor::from_vec(y, shape.clone(), &candle_core::Device::Cpu)?).is_err() {
            candle_core::bail!("linear+gelu: forward ran twice on one op");
        }
        Ok((CpuStorage::F32(act), shape))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _b: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = match &self.gelu {
            None => grad.contiguous()?,
            Some(keep) => match keep.get() {
                Some(pre) => gelu_grad(pre, grad)?,
                None => candle_core::bail!("linear+gelu: backward before forward"),
            },
        };
        let dx = grad.apply_op2_no_bwd(w, &InputGrad(self.precision))?;
        let (out, inp) = w.dims2()?;
        let packed = grad.apply_op2_no_bwd(x, &ParamGrad(self.precision))?;
        let dw = packed.narrow(0, 0, out * inp)?.reshape((out, inp))?;
        let db = packed.narrow(0, out * inp, out)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `dx (rows × in) = dy (rows × out) · W (out × in)`.
struct InputGrad(Precision);

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "bertfit-linear-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, w) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let (out, inp) = l2.shape().dims2()?;
        let rows = grad_rows("linear backward", l1, out, l2)?;
        let mut dx = vec![0f32; rows * inp];
        product(self.0, &mut dx, inp, rows, inp, out, Mat { data: g, rs: out, cs: 1 }, Mat { data: w, rs: inp, cs: 1 }, false)?;
        Ok((CpuStorage::F32(dx), with_last(l1.dims(), inp)))
    }
}

/// `dW (out × in) = dyᵀ · x` followed by `db (out) = Σ_rows dy`, in one flat buffer.
struct ParamGrad(Precision);

impl CustomOp2 for ParamGrad {
    fn name(&self) -> &'static str {
        "bertfit-linear-param-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, x) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let inp = *l2.dims().last().unwrap_or(&0);
        let x_rows = leading(l2.dims());
        let out = *l1.dims().last().unwrap_or(&0);
        let rows = grad_rows("linear backward", l1, out, l2)?;
        if x_rows != rows {
            candle_core::bail!("linear backward: gradient {:?} for input {:?}", l1.dims(), l2.dims());
        }
        let mut packed = vec![0f32; out * inp + out];
        let (dw, db) = packed.split_at_mut(out * inp);
        // dyᵀ[m][k] = dy[k][m].
        product(self.0, dw, inp, out, inp, rows, Mat { data: g, rs: 1, cs: out }, Mat { data: x, rs: inp, cs: 1 }, false)?;
        // Rows in order: the same sums for any thread count.
        for row in g.chunks(out.max(1)) {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        Ok((CpuStorage::F32(packed), Shape::from(out * inp + out)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{backward, max_diff, random};
    use super::*;
    use candle_core::{DType, Var};

    fn composed(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        x.broadcast_matmul(&w.t().expect("t")).expect("matmul").broadcast_add(b).expect("add")
    }

    /// Our op (plain or with GELU) against candle's composed ops and a float64 reference: output and
    /// the gradients of x, weight and bias, for x of shape (lead..., inp).
    fn check_against_references(lead: &[usize], inp: usize, out: usize, seed: u64, gelu: bool) {
        let rows: usize = lead.iter().product();
        let with = |last: usize| [lead.to_vec(), vec![last]].concat();
        let x = Var::from_tensor(&random(&with(inp), seed, 2.0)).expect("var");
        let w = Var::from_tensor(&random(&[out, inp], seed + 1, 0.5)).expect("var");
        let b = Var::from_tensor(&random(&[out], seed + 2, 1.0)).expect("var");
        let up = random(&with(out), seed + 3, 1.0);
        let act = |t: Tensor| if gelu { t.gelu_erf().expect("gelu") } else { t };
        let ours = if gelu { linear_gelu(&x, &w, &b, Precision::F32) } else { linear(&x, &w, &b, Precision::F32) }.expect("fused");
        let g_ours = backward(&ours, &up);
        let candle = act(composed(&x, &w, &b));
        let g_candle = backward(&candle, &up);
        let f64s = |t: &Var| Var::from_tensor(&t.to_dtype(DType::F64).expect("f64")).expect("var");
        let (x64, w64, b64) = (f64s(&x), f64s(&w), f64s(&b));
        let reference = act(composed(&x64, &w64, &b64));
        let g_ref = backward(&reference, &up);

        let tol = 1e-5 * (inp.max(rows) as f64);
        assert!(max_diff(&ours, &reference) < tol, "forward vs f64: {}", max_diff(&ours, &reference));
        assert!(max_diff(&ours, &candle) < tol);
        for (name, a, r) in [("x", &x, &x64), ("weight", &w, &w64), ("bias", &b, &b64)] {
            let ga = g_ours.get(a.as_tensor()).expect("ours");
            let gc = g_candle.get(a.as_tensor()).expect("candle");
            let gr = g_ref.get(r.as_tensor()).expect("f64");
            assert_eq!(ga.dims(), a.dims());
            assert!(max_diff(ga, gr) < tol, "d{name} vs f64: {} ({rows}×{inp}→{out}, gelu {gelu})", max_diff(ga, gr));
            assert!(max_diff(ga, gc) < tol, "d{name} vs candle: {}", max_diff(ga, gc));
        }
    }

    #[test]
    fn forward_and_gradients_match_float64_and_candle_autograd() {
        // (batch, seq, in) inputs too: the leading dimensions are rows.
        for (lead, inp, out) in [(vec![37usize], 19usize, 23usize), (vec![4, 32], 64, 96), (vec![1], 1, 1)] {
            check_against_references(&lead, inp, out, 1, false);
        }
    }

    #[test]
    fn linear_gelu_matches_float64_and_candle_autograd() {
        check_against_references(&[3, 21], 40, 72, 11, true);
        check_against_references(&[5], 7, 9, 21, true);
    }

    #[test]
    fn bf16_products_stay_close_to_float64() {
        let (rows, inp, out) = (64usize, 96usize, 40usize);
        let x = Var::from_tensor(&random(&[rows, inp], 5, 1.0)).expect("var");
        let w = Var::from_tensor(&random(&[out, inp], 6, 0.2)).expect("var");
        let b = Var::from_tensor(&random(&[out], 7, 1.0)).expect("var");
        let up = random(&[rows, out], 8, 1.0);
        let op = |t: &Var| t.as_tensor().contiguous().expect("c");
        let y = op(&x).apply_op3(&op(&w), &op(&b), Forward { precision: Precision::Bf16, gelu: None }).expect("bf16");
        let g = backward(&y, &up);
        let reference = composed(&x, &w, &b);
        let g_ref = backward(&reference, &up);
        // bf16 keeps 8 bits of mantissa: errors of about 2^-9 relative per product.
        let scale = |t: &Tensor| t.abs().expect("abs").max_all().expect("max").to_scalar::<f32>().expect("scalar") as f64;
        assert!(max_diff(&y, &reference) < 1e-2 * scale(&reference), "forward: {}", max_diff(&y, &reference));
        for t in [&x, &w, &b] {
            let (ga, gr) = (g.get(t.as_tensor()).expect("ours"), g_ref.get(t.as_tensor()).expect("ref"));
            assert!(max_diff(ga, gr) < 1e-2 * scale(gr), "gradient: {} of {}", max_diff(ga, gr), scale(gr));
        }
        // ...and differ from f32 (the bf16 path really ran).
        assert!(max_diff(&y, &reference) > 0.0);
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let x = random(&[4, 3], 1, 1.0);
        assert!(linear(&x, &random(&[5, 2], 2, 1.0), &random(&[5], 3, 1.0), Precision::F32).is_err());
        assert!(linear(&x, &random(&[5, 3], 2, 1.0), &random(&[4], 3, 1.0), Precision::F32).is_err());
    }

    #[test]
    fn zero_width_input_gives_the_bias_per_row() {
        let x = Tensor::zeros((2, 3, 0), DType::F32, &candle_core::Device::Cpu).expect("x");
        let w = Tensor::zeros((5, 0), DType::F32, &candle_core::Device::Cpu).expect("w");
        let b = random(&[5], 3, 1.0);
        let y = linear(&x, &w, &b, Precision::F32).expect("linear");
        assert_eq!(y.dims(), &[2, 3, 5]);
        assert_eq!(max_diff(&y, &b.broadcast_as((2, 3, 5)).expect("b")), 0.0);
    }
}
