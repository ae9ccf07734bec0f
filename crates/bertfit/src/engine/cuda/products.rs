//! Matrix products on the GPU: an engine [`Gemm`] as a cuBLASLt call (see `host.rs` for the shape), its
//! operands in the run's precision (the parameters' bf16 copy, refreshed after writes; activations rounded
//! into scratch per product) and its bias.

use bertfit_cuda::blaslt::GemmArgs;
use bertfit_cuda::kernels::Args;
use bertfit_cuda::{DType, GemmShape};

use super::host::lt_shape;
use super::{dev, fail, to_u32, CudaBackend, Scratch};
use crate::engine::backend::{Buf, Gemm, Region};
use crate::error::Result;
use crate::runtime::Precision;

impl CudaBackend {
    /// One engine product through cuBLASLt: f32, bf16 operands (f32 results), or bf16-rounded operands
    /// multiplied in f32 where the leading dimensions rule bf16 kernels out; the bias by epilogue when
    /// cuBLASLt offers it, else written into the rows first.
    pub(super) fn product(&mut self, g: &Gemm) -> Result<()> {
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
}
