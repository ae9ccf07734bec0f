//! What this CPU can do, measured: the f32 fused-multiply-add peak of its widest vector unit (every
//! thread of the current pool running independent FMA chains) and the rate of our matrix products at a
//! given shape, so benchmarks can say how far the GEMMs run from the machine's ceiling.

use std::time::Instant;

use rayon::prelude::*;

use super::bf16::gemm_bf16;
use super::gemm::{gemm, Mat, Threads};
use super::Precision;
use crate::error::Result;

/// The vector extension the peak loop used.
pub fn vector_unit() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    "scalar"
}

/// f32 GFLOP/s of independent FMA chains on every thread of the current rayon pool, for about `secs`.
pub fn fma_peak_gflops(secs: f64) -> f64 {
    let threads = rayon::current_num_threads();
    let t0 = Instant::now();
    let flops: f64 = (0..threads).into_par_iter().map(|_| spin(secs)).sum();
    flops / t0.elapsed().as_secs_f64() / 1e9
}

/// Runs FMA chains for about `secs` seconds; returns the floating-point operations done.
fn spin(secs: f64) -> f64 {
    let t0 = Instant::now();
    let mut flops = 0.0;
    while t0.elapsed().as_secs_f64() < secs {
        flops += chains();
    }
    flops
}

/// One block of independent FMA chains on the widest unit; returns its floating-point operations.
fn chains() -> f64 {
    const ITERS: usize = 1 << 20;
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { x86::avx512(ITERS) };
            return (ITERS * 12 * 16 * 2) as f64;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { x86::avx2(ITERS) };
            return (ITERS * 12 * 8 * 2) as f64;
        }
    }
    let mut acc = [1.0f32; 8];
    for _ in 0..ITERS {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (ITERS * 8 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Twelve independent accumulators: enough to cover FMA latency on two ports.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iters: usize) {
        let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, m, c);
            }
        }
        std::hint::black_box(acc);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(iters: usize) {
        let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, m, c);
            }
        }
        std::hint::black_box(acc);
    }
}

/// GFLOP/s of `reps` products `m × k · k × n` (row-major operands, on the current pool), median of
/// the repetitions after one warm-up.
pub fn gemm_gflops(m: usize, n: usize, k: usize, precision: Precision, reps: usize) -> Result<f64> {
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 89) as f32 - 44.0) * 0.01).collect();
    let mut c = vec![0f32; m * n];
    let mut times = Vec::with_capacity(reps);
    for r in 0..=reps {
        let t0 = Instant::now();
        let (lhs, rhs) = (Mat { data: &a, rs: k, cs: 1 }, Mat { data: &b, rs: n, cs: 1 });
        match precision {
            Precision::F32 => gemm(&mut c, n, m, n, k, lhs, rhs, false, Threads::Pool)?,
            Precision::Bf16 => gemm_bf16(&mut c, n, m, n, k, lhs, rhs, false)?,
        }
        if r > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(2.0 * (m * n * k) as f64 / median / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measurements_are_positive_and_finite() {
        assert!(fma_peak_gflops(0.01) > 0.0);
        let g = gemm_gflops(64, 48, 32, Precision::F32, 2).expect("gemm");
        assert!(g.is_finite() && g > 0.0, "{g}");
    }
}
