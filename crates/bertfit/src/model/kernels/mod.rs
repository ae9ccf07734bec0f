//! Our own fused CPU kernels, each a candle custom op with a hand-written backward: one pass over
//! the data instead of a chain of allocating element-wise ops (and their composed backward).
//!
//! Rows are processed in parallel on rayon's pool (sized by `--threads`). Reductions across rows (the
//! LayerNorm weight and bias gradients) sum fixed blocks of rows in a fixed order, so results are
//! bit-identical whatever the number of threads. Kernels take f32; [`super::ops`] falls back to the
//! composed candle ops for other dtypes and devices, which also serve as the tests' reference.

mod attention;
pub mod bf16;
pub(crate) mod dropout;
pub(crate) mod gelu;
pub(crate) mod gemm;
pub(crate) mod layer_norm;
mod linear;
pub mod roofline;
pub(crate) mod simd;

pub use attention::{attention, AttentionDropout};
pub use dropout::{dropout, dropout_add};
pub use gelu::gelu_erf;
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_gelu};

use candle_core::{CpuStorage, Layout};

pub use crate::runtime::Precision;

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance two to
/// sixteen threads on typical batch × sequence sizes.
pub(crate) const ROW_BLOCK: usize = 32;

/// The contiguous f32 data of a kernel input, or an error naming the op.
fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else { candle_core::bail!("{op}: expected f32 input") };
    let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("{op}: input must be contiguous") };
    Ok(&data[start..end])
}

/// Runs `f(row_index, row_in..., row_out)` over rows of `width` in parallel blocks of [`ROW_BLOCK`].
pub(crate) fn for_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    if width == 0 {
        return;
    }
    out.par_chunks_mut(width * ROW_BLOCK).enumerate().for_each(|(block, chunk)| {
        for (i, row) in chunk.chunks_mut(width).enumerate() {
            f(block * ROW_BLOCK + i, row);
        }
    });
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the kernels' tests: random inputs and comparisons.
    use candle_core::{Device, Tensor};

    /// A tensor of uniform values in [-scale, scale) from a fixed seed.
    pub fn random(shape: &[usize], seed: u64, scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let key = crate::rng::key(&[seed]);
        let v: Vec<f32> = (0..n as u64).map(|i| (crate::rng::uniform_f32(key, i) * 2.0 - 1.0) * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    /// Gradients of `Σ out ∘ up` (an arbitrary upstream gradient `up`, cast to `out`'s dtype).
    pub fn backward(out: &Tensor, up: &Tensor) -> candle_core::backprop::GradStore {
        let up = up.to_dtype(out.dtype()).expect("dtype");
        out.mul(&up).and_then(|t| t.sum_all()).and_then(|t| t.backward()).expect("backward")
    }

    /// Largest absolute difference between two tensors of the same shape (compared in f64).
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        let flat = |t: &Tensor| -> Vec<f64> { t.to_dtype(candle_core::DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).expect("f64 values") };
        let (a, b) = (flat(a), flat(b));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }
}
