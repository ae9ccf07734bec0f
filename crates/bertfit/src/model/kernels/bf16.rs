//! A bf16 GEMM for mixed precision: f32 operands are rounded to bf16 while being packed, products
//! accumulate in f32 with the AVX512-BF16 dot-product instruction (`vdpbf16ps`, two bf16 products
//! per f32 lane). CPUs without it take the same rounding and an f32 GEMM, so results agree up to
//! summation order (and subnormal f32 inputs, which `vcvtneps2bf16` flushes to zero). The packing
//! reads operands through strides, so transposed operands are free.

use candle_core::Result;

use super::gemm::{gemm, last_index, Mat, Threads};
use super::simd;

/// Rows of the register tile (6 × 2 accumulators: measured faster than 8, 10, 12 or 14 rows here).
const MR: usize = 6;
/// Columns of the register tile (two 16-lane vectors).
const NR: usize = 32;
/// Rows of A packed per parallel task.
const MC: usize = 4 * MR;
/// Pairs of k per pass over a panel.
const KP: usize = 128;

/// Rounds to the nearest bf16 (ties to even), as the upper 16 bits of the f32.
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    // A NaN stays a (quiet) NaN; written as a select so the loops around it vectorise.
    if x.is_nan() {
        ((bits >> 16) | 0x40) as u16
    } else {
        rounded
    }
}

/// The f32 value of a bf16.
#[inline]
pub(crate) fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Whether this CPU runs the bf16 dot-product kernel.
pub fn native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::detect().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst (m × n, row stride dst_rs) = (accumulate ? dst : 0) + bf16(lhs) · bf16(rhs)`, f32 accumulation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(dst: &mut [f32], dst_rs: usize, m: usize, n: usize, k: usize, lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool) -> Result<()> {
    let dst_fits = m == 0 || n == 0 || (dst_rs >= n && last_index(m, n, dst_rs, 1).is_some_and(|i| i < dst.len()));
    let fits = |a: &Mat<'_>, r: usize, c: usize| r == 0 || c == 0 || last_index(r, c, a.rs, a.cs).is_some_and(|i| i < a.data.len());
    if !dst_fits || !fits(&lhs, m, k) || !fits(&rhs, k, n) {
        candle_core::bail!("bf16 gemm: operands too small for {m}×{k} · {k}×{n}");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(cpu), true) = (x86::detect(), k > 0) {
        let packed_b = pack_b(rhs, k, n);
        return x86::run(cpu, dst, dst_rs, m, n, k, lhs, &packed_b, accumulate);
    }
    // Fallback: the same bf16 rounding, f32 products.
    let round = |a: Mat<'_>, r: usize, c: usize| -> Vec<f32> {
        let mut v = Vec::with_capacity(r * c);
        for i in 0..r {
            v.extend((0..c).map(|j| from_bf16(to_bf16(a.data[i * a.rs + j * a.cs]))));
        }
        v
    };
    let (a, b) = (round(lhs, m, k), round(rhs, k, n));
    gemm(dst, dst_rs, m, n, k, Mat { data: &a, rs: k, cs: 1 }, Mat { data: &b, rs: n, cs: 1 }, accumulate, Threads::Pool)
}

/// One bf16 word pair: `lo` in the low half, `hi` in the high half.
#[inline(always)]
fn word(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | ((to_bf16(hi) as u32) << 16)
}

/// Fills `out[p * step]` for each pair `p` with the pair of a line of the matrix along k:
/// `line(kk)` is the element at position kk of that line, `k` its length (odd lengths pad a zero).
/// When the line is contiguous (`stride == 1`) the conversion runs as one vectorised pass.
#[inline(always)]
fn pack_line(out: &mut [u32], step: usize, data: &[f32], start: usize, stride: usize, k: usize) {
    let pairs = k.div_ceil(2);
    if stride == 1 {
        // Converted in pieces into a contiguous buffer (a vectorised pass: strided stores would
        // keep it scalar), then spread out to every `step`-th word.
        const PIECE: usize = 256;
        let mut halves = [0u16; PIECE];
        for (c, run) in data[start..start + k].chunks(PIECE).enumerate() {
            let h = &mut halves[..run.len().next_multiple_of(2)];
            convert(&mut h[..run.len()], run);
            if run.len() % 2 == 1 {
                h[run.len()] = 0;
            }
            let first = c * PIECE / 2;
            for (q, two) in h.chunks_exact(2).enumerate() {
                out[(first + q) * step] = two[0] as u32 | ((two[1] as u32) << 16);
            }
        }
    } else {
        for p in 0..pairs {
            let at = |kk: usize| if kk < k { data[start + kk * stride] } else { 0.0 };
            out[p * step] = word(at(2 * p), at(2 * p + 1));
        }
    }
}

/// `dst[i] = bf16(src[i])` over the shorter of the two.
#[inline(always)]
fn convert(dst: &mut [u16], src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = x86::detect() {
        return x86::convert(cpu, dst, src);
    }
    dst.iter_mut().zip(src).for_each(|(d, &x)| *d = to_bf16(x));
}

/// Fills `out[j]` for `j < cols` with the pairs of two neighbouring k-lines that are contiguous
/// along the other dimension (`row0`, and `row1` or zeros past the end of k): one vectorised pass.
#[inline(always)]
fn pack_two_rows(out: &mut [u32], row0: &[f32], row1: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = x86::detect() {
        return x86::pair_words(cpu, out, row0, row1);
    }
    match row1 {
        Some(row1) => out.iter_mut().zip(row0).zip(row1).for_each(|((w, &a), &b)| *w = word(a, b)),
        None => out.iter_mut().zip(row0).for_each(|(w, &a)| *w = word(a, 0.0)),
    }
}

/// Packs `rhs` (k × n) into panels of NR columns; within a panel, for each pair of rows `(2p, 2p+1)`,
/// NR 32-bit words holding the two bf16 values of a column (row 2p in the low half). Zero-padded.
fn pack_b(rhs: Mat<'_>, k: usize, n: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let pairs = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    let mut out = vec![0u32; panels * pairs * NR];
    out.par_chunks_mut(pairs * NR).enumerate().for_each(|(panel, dst)| {
        let j0 = panel * NR;
        let cols = NR.min(n - j0);
        simd::vectorised!({
            if rhs.cs == 1 && rhs.rs != 1 {
                // Rows contiguous along n: two rows at a time.
                for p in 0..pairs {
                    let row = |kk: usize| (kk < k).then(|| &rhs.data[kk * rhs.rs + j0..kk * rhs.rs + j0 + cols]);
                    if let Some(row0) = row(2 * p) {
                        pack_two_rows(&mut dst[p * NR..p * NR + cols], row0, row(2 * p + 1));
                    }
                }
            } else {
                // Columns contiguous along k (a transposed operand), or general strides.
                for j in 0..cols {
                    pack_line(&mut dst[j..], NR, rhs.data, (j0 + j) * rhs.cs, rhs.rs, k);
                }
            }
        })
    });
    out
}

/// Packs rows `i0..i0 + rows` of `lhs` (m × k) into blocks of MR rows: for each pair of columns, MR
/// words holding the row's two bf16 values. Zero-padded.
fn pack_a(lhs: Mat<'_>, i0: usize, rows: usize, k: usize, out: &mut Vec<u32>) {
    let pairs = k.div_ceil(2);
    let blocks = rows.div_ceil(MR);
    out.clear();
    out.resize(blocks * pairs * MR, 0);
    simd::vectorised!({
        if lhs.rs == 1 && lhs.cs != 1 {
            // Columns contiguous along m (a transposed operand): the words of all the task's rows
            // for one pair of columns in one pass, then dealt out to the row blocks.
            let mut words = [0u32; MC];
            let words = &mut words[..rows];
            for p in 0..pairs {
                let col = |kk: usize| (kk < k).then(|| &lhs.data[kk * lhs.cs + i0..kk * lhs.cs + i0 + rows]);
                if let Some(c0) = col(2 * p) {
                    pack_two_rows(words, c0, col(2 * p + 1));
                }
                for (blk, w) in words.chunks(MR).enumerate() {
                    let at = (blk * pairs + p) * MR;
                    out[at..at + w.len()].copy_from_slice(w);
                }
            }
            return;
        }
        for blk in 0..blocks {
            let dst = &mut out[blk * pairs * MR..(blk + 1) * pairs * MR];
            let r0 = i0 + blk * MR;
            let valid = MR.min(rows - blk * MR);
            for r in 0..valid {
                pack_line(&mut dst[r..], MR, lhs.data, (r0 + r) * lhs.rs, lhs.cs, k);
            }
        }
    });
}

/// The AVX-512 kernels. Their safe entry points take a [`x86::Bf16Cpu`], which only
/// [`x86::detect`] makes, so they cannot run on a CPU without the instructions.
#[cfg(target_arch = "x86_64")]
#[deny(unsafe_op_in_unsafe_fn)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{pack_a, Mat, KP, MC, MR, NR};

    /// Proof that this CPU has AVX-512 F, BW, VL and BF16. The private field keeps it from being
    /// made anywhere but [`detect`].
    #[derive(Clone, Copy)]
    pub(super) struct Bf16Cpu(());

    /// A [`Bf16Cpu`] if this CPU has the instructions (checked once).
    pub(super) fn detect() -> Option<Bf16Cpu> {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let has = *HAS.get_or_init(|| {
            // The conversion kernels also use AVX-512 BW and VL (every CPU with BF16 has them, but
            // a VM may report features selectively).
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl")
        });
        has.then_some(Bf16Cpu(()))
    }

    /// Raw output pointer shared by tasks that write disjoint row ranges.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: each task writes only its own rows of the output (see `run`).
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    /// `dst (m × n, row stride dst_rs) = (accumulate ? dst : 0) + lhs · B` with B packed by
    /// [`super::pack_b`], for k > 0. The kernel writes `dst` and reads `packed_b` through raw
    /// pointers, so their sizes are checked here (an error if too small), whatever the caller did.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        _cpu: Bf16Cpu,
        dst: &mut [f32],
        dst_rs: usize,
        m: usize,
        n: usize,
        k: usize,
        lhs: Mat<'_>,
        packed_b: &[u32],
        accumulate: bool,
    ) -> candle_core::Result<()> {
        use rayon::prelude::*;
        let pairs = k.div_ceil(2);
        if m == 0 || n == 0 {
            return Ok(());
        }
        // Rows must not overlap either: tasks write disjoint row blocks in parallel.
        let dst_fits = dst_rs >= n && (m - 1).checked_mul(dst_rs).and_then(|x| x.checked_add(n)).is_some_and(|end| end <= dst.len());
        if !dst_fits || packed_b.len() < n.div_ceil(NR) * pairs * NR {
            candle_core::bail!("bf16 gemm: output or packed operand too small for {m}×{k} · {k}×{n}");
        }
        let out = Out(dst.as_mut_ptr());
        // Tasks own disjoint row blocks [t * MC, (t + 1) * MC) of dst.
        (0..m.div_ceil(MC)).into_par_iter().for_each_init(Vec::new, |apack, t| {
            let i0 = t * MC;
            let rows = MC.min(m - i0);
            pack_a(lhs, i0, rows, k, apack);
            // Use the wrapper as a whole, so the closure captures it (Send) and not its raw pointer.
            #[allow(clippy::redundant_locals)]
            let out = out;
            // k in blocks of KP pairs, so a panel's slice of B stays in L1 across the row blocks.
            for kb in (0..pairs).step_by(KP) {
                let kp = KP.min(pairs - kb);
                let add = accumulate || kb > 0;
                for panel in 0..n.div_ceil(NR) {
                    let j0 = panel * NR;
                    let cols = NR.min(n - j0);
                    let b = &packed_b[(panel * pairs + kb) * NR..];
                    for blk in 0..rows.div_ceil(MR) {
                        let a = &apack[(blk * pairs + kb) * MR..];
                        let r0 = i0 + blk * MR;
                        let valid_rows = MR.min(m - r0);
                        // SAFETY: the CPU has AVX512-BF16 (`_cpu` proves it); `a` and `b`
                        // hold at least `kp` more steps of MR and NR words (pack_a's layout, the
                        // size of packed_b checked above); rows r0..r0 + valid_rows < m and columns
                        // j0..j0 + cols <= n lie inside dst (checked above), and only this task
                        // writes rows i0..i0 + rows (rows do not overlap: dst_rs >= n).
                        unsafe { tile_kernel(kp, a.as_ptr(), b.as_ptr(), out.0.add(r0 * dst_rs + j0), dst_rs, valid_rows, cols, add) };
                    }
                }
            }
        });
        Ok(())
    }

    /// Lanes `0..n` of a 16-lane vector.
    #[inline(always)]
    fn first(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// `dst[i] = bf16(src[i])` with `vcvtneps2bf16` (round to nearest even, as [`super::to_bf16`];
    /// the instruction also flushes f32 denormals to zero), 16 values per instruction.
    #[inline(always)]
    pub(super) fn convert(_cpu: Bf16Cpu, dst: &mut [u16], src: &[f32]) {
        // SAFETY: `_cpu` proves the CPU has the features the function is compiled for.
        unsafe { convert_avx512(dst, src) }
    }

    #[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
    unsafe fn convert_avx512(dst: &mut [u16], src: &[f32]) {
        let n = dst.len().min(src.len());
        for at in (0..n).step_by(16) {
            let m = first(n - at);
            // SAFETY: the masks keep loads and stores within the first n elements of both slices.
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, src.as_ptr().add(at));
                let h = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x));
                _mm256_mask_storeu_epi16(dst.as_mut_ptr().add(at) as *mut i16, m, h);
            }
        }
    }

    /// `out[j] = bf16(row0[j]) | bf16(row1[j]) << 16` (zeros for an absent `row1`), 16 words per step.
    #[inline(always)]
    pub(super) fn pair_words(_cpu: Bf16Cpu, out: &mut [u32], row0: &[f32], row1: Option<&[f32]>) {
        // SAFETY: `_cpu` proves the CPU has the features the function is compiled for.
        unsafe { pair_words_avx512(out, row0, row1) }
    }

    #[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
    unsafe fn pair_words_avx512(out: &mut [u32], row0: &[f32], row1: Option<&[f32]>) {
        let n = out.len().min(row0.len()).min(row1.map_or(usize::MAX, <[f32]>::len));
        // 16 f32 to bf16, each zero-extended into the low half of a 32-bit lane.
        let widen = |x: __m512| {
            let halves = _mm512_cvtneps_pbh(x);
            // SAFETY: both are 256-bit vectors of plain bits, and every bit pattern is a valid
            // `__m256i`: the transmute only renames the type.
            _mm512_cvtepu16_epi32(unsafe { std::mem::transmute::<__m256bh, __m256i>(halves) })
        };
        for at in (0..n).step_by(16) {
            let m = first(n - at);
            // SAFETY: the masks keep loads and stores within the first n elements of the slices.
            unsafe {
                let lo = widen(_mm512_maskz_loadu_ps(m, row0.as_ptr().add(at)));
                let w = match row1 {
                    Some(r) => _mm512_or_si512(lo, _mm512_slli_epi32::<16>(widen(_mm512_maskz_loadu_ps(m, r.as_ptr().add(at))))),
                    None => lo,
                };
                _mm512_mask_storeu_epi32(out.as_mut_ptr().add(at) as *mut i32, m, w);
            }
        }
    }

    /// One MR × NR tile: `dst[r][c] = (add ? dst[r][c] : 0) + Σ_p a[p] ⊗ b[p]` for `r < rows`,
    /// `c < cols`, written straight from the accumulators with masked stores.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile_kernel(pairs: usize, a: *const u32, b: *const u32, dst: *mut f32, dst_rs: usize, rows: usize, cols: usize, add: bool) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..pairs {
            // SAFETY: p < pairs, so the loads stay inside the packed panels.
            let (b0, b1) = unsafe {
                (
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(p * NR) as *const _)),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(p * NR + 16) as *const _)),
                )
            };
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: as above, for the MR words of step p.
                let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(p * MR + r) as i32)) };
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        let (m0, m1) = (first(cols), first(cols.saturating_sub(16)));
        for (r, row) in acc.iter().enumerate() {
            if r < rows {
                // Masked-off lanes are neither read nor written, so the pointers may run past the
                // last column (hence `wrapping_add`).
                let d0 = dst.wrapping_add(r * dst_rs);
                let d1 = d0.wrapping_add(16);
                // SAFETY: the caller guarantees that columns 0..cols of rows 0..rows are inside dst;
                // the masks cover exactly those columns.
                unsafe {
                    let (mut v0, mut v1) = (row[0], row[1]);
                    if add {
                        v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, d0), v0);
                        v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, d1), v1);
                    }
                    _mm512_mask_storeu_ps(d0, m0, v0);
                    _mm512_mask_storeu_ps(d1, m1, v1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let key = crate::rng::key(&[seed]);
        (0..n as u64).map(|i| crate::rng::uniform_f32(key, i) * 2.0 - 1.0).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0, "a tie rounds to the even neighbour");
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    /// The vector conversion (`vcvtneps2bf16` where the CPU has it) rounds like [`to_bf16`]: ties
    /// to even, infinities kept, NaN stays NaN; over a length that leaves a masked tail. (On a CPU
    /// without AVX512-BF16 both sides are the scalar path, so the check only bites where it runs.)
    #[test]
    fn vector_conversion_rounds_like_the_scalar_one() {
        let mut xs = vec![0.0f32, -0.0, 1.0, -2.5, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN_POSITIVE, 65504.0, 3.0e-5];
        xs.extend(data(1000, 9).iter().map(|x| x * 1000.0));
        let mut got = vec![0u16; xs.len()];
        convert(&mut got, &xs);
        for (x, g) in xs.iter().zip(&got) {
            assert_eq!(*g, to_bf16(*x), "{x}");
        }
        let mut nan = [0u16; 1];
        convert(&mut nan, &[f32::NAN]);
        assert!(from_bf16(nan[0]).is_nan());
        // Pairs of rows into words: row 0 in the low half.
        let (r0, r1) = (&xs[..37], &xs[37..74]);
        let mut words = vec![0u32; 37];
        pack_two_rows(&mut words, r0, Some(r1));
        for j in 0..37 {
            assert_eq!(words[j], word(r0[j], r1[j]), "column {j}");
        }
        pack_two_rows(&mut words, r0, None);
        assert!(words.iter().zip(r0).all(|(w, &x)| *w == to_bf16(x) as u32));
    }

    /// The native kernel checks the sizes its raw pointers rely on, whatever its caller passes: a
    /// short output, overlapping output rows or a short packed operand are errors. (Only where
    /// the CPU has AVX512-BF16: elsewhere no `Bf16Cpu` can be had, so `x86::run` cannot be called.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_native_kernel_refuses_buffers_too_small() {
        let Some(cpu) = x86::detect() else { return };
        let (m, n, k) = (4, 5, 6);
        let a = data(m * k, 1);
        let lhs = Mat { data: &a, rs: k, cs: 1 };
        let b = data(k * n, 2);
        let packed = pack_b(Mat { data: &b, rs: n, cs: 1 }, k, n);
        let mut dst = vec![0.0f32; m * n];
        assert!(x86::run(cpu, &mut dst, n, m, n, k, lhs, &packed, false).is_ok());
        let mut short = vec![0.0f32; m * n - 1];
        assert!(x86::run(cpu, &mut short, n, m, n, k, lhs, &packed, false).is_err(), "short output");
        assert!(x86::run(cpu, &mut dst, n - 1, m, n, k, lhs, &packed, false).is_err(), "overlapping rows");
        assert!(x86::run(cpu, &mut dst, n, m, n, k, lhs, &packed[..packed.len() - 1], false).is_err(), "short packed operand");
    }

    /// Against a float64 product of the bf16-rounded operands (what the instruction computes), for
    /// sizes with ragged edges, every operand layout (row-major and transposed), and accumulation.
    #[test]
    fn matches_a_float64_product_of_the_rounded_operands() {
        for (m, n, k) in [(37usize, 45usize, 19usize), (100, 70, 384), (1, 1, 1), (13, 33, 2), (5, 40, 7)] {
            let a = data(m * k, 1);
            let b = data(n * k, 2);
            let init = data(m * n, 3);
            let r = |x: f32| from_bf16(to_bf16(x)) as f64;
            // a is read as A (m × k) either row-major or from a (k × m) buffer; b likewise as B (k × n).
            for (a_t, b_t) in [(false, false), (false, true), (true, false), (true, true)] {
                let lhs = if a_t { Mat { data: &a, rs: 1, cs: m } } else { Mat { data: &a, rs: k, cs: 1 } };
                let rhs = if b_t { Mat { data: &b, rs: 1, cs: k } } else { Mat { data: &b, rs: n, cs: 1 } };
                for accumulate in [false, true] {
                    let mut dst = init.clone();
                    gemm_bf16(&mut dst, n, m, n, k, lhs, rhs, accumulate).expect("gemm");
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k).map(|kk| r(a[i * lhs.rs + kk * lhs.cs]) * r(b[kk * rhs.rs + j * rhs.cs])).sum();
                            let want = dot + if accumulate { init[i * n + j] as f64 } else { 0.0 };
                            let got = dst[i * n + j] as f64;
                            assert!((got - want).abs() < 1e-5 * (k as f64).sqrt() + 1e-6, "({i},{j}) of {m}×{n}×{k}, transposed {a_t}/{b_t}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
