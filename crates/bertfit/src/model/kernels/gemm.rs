//! Matrix products for the fused kernels, over the `gemm` crate's microkernels (the ones candle's
//! own matmul uses), with explicit strides so operands are read in place: transposes and head
//! slices are strides, never copies.

use candle_core::Result;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Mat<'_> {
    /// Whether a `rows × cols` view stays inside the data.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || last_index(rows, cols, self.rs, self.cs).is_some_and(|i| i < self.data.len())
    }
}

/// `(rows - 1) · rs + (cols - 1) · cs` (rows, cols ≥ 1), `None` on overflow.
pub(crate) fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)
}

/// How a product is spread over threads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the current rayon pool's threads (one large product).
    Pool,
    /// On the calling thread (many small products run in parallel by the caller).
    One,
}

/// `dst = (accumulate ? dst : 0) + lhs (m × k) · rhs (k × n)`, where `dst` is row-major with row
/// stride `dst_rs` (≥ n) and must hold `(m - 1) * dst_rs + n` elements. The split of work depends
/// only on the sizes and the thread count, so results are reproducible.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(dst: &mut [f32], dst_rs: usize, m: usize, n: usize, k: usize, lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool, threads: Threads) -> Result<()> {
    let dst_fits = m == 0 || n == 0 || (dst_rs >= n && last_index(m, n, dst_rs, 1).is_some_and(|i| i < dst.len()));
    if !dst_fits || !lhs.fits(m, k) || !rhs.fits(k, n) {
        candle_core::bail!("gemm: operands too small for {m}×{k} · {k}×{n}");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    // the current rayon pool: the runtime's own when called inside `Runtime::install`
    let pool = rayon::current_num_threads();
    let parallelism = match threads {
        Threads::Pool if pool > 1 => gemm::Parallelism::Rayon(pool),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the checks above keep every element the kernel reads or writes inside the three
    // slices; `dst` is exclusively borrowed, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}
