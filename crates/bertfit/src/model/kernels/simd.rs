//! Vector-friendly building blocks for the kernels' inner loops: a branch-free `exp`, lane-split sums
//! and dot products (fixed order, so results do not depend on threads), and [`fast`], which runs a
//! loop compiled for the widest vector extension this CPU has (AVX-512 or AVX2 + FMA, detected at
//! run time; the portable build is the fallback).

/// Lanes of the split reductions: one 512-bit vector of f32.
const LANES: usize = 16;

/// Runs a block (a loop body per row, not per element) compiled with the CPU's widest vector
/// extension: `vectorised!({ ... })`. It hands [`fast`] the block as a closure marked
/// `#[inline(always)]`: a closure the compiler does not inline into the dispatch keeps the baseline
/// instruction set (SSE2), which perf showed for the GELU and bf16 loops before this macro.
macro_rules! vectorised {
    ($body:block) => {
        $crate::model::kernels::simd::fast(#[inline(always)] || $body)
    };
}
pub(crate) use vectorised;

/// Runs `f` compiled with the CPU's widest vector extension; kernels go through [`vectorised!`],
/// which makes sure `f` is inlined here.
#[inline(always)]
pub(crate) fn fast<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `level` checked that the CPU has these features.
            Level::Avx512 => return unsafe { avx512(f) },
            Level::Avx2 => return unsafe { avx2(f) },
            Level::Base => {}
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Avx512,
    Avx2,
    Base,
}

#[cfg(target_arch = "x86_64")]
fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl") && is_x86_feature_detected!("fma") {
            Level::Avx512
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Level::Avx2
        } else {
            Level::Base
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `e^x` in f32 without branches or library calls (relative error below 2e-7); 0 below -87.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The integer n sits in the low mantissa bits of `shifted`; reading it from there keeps the loop
    // in vector registers (`n as i32` saturates, which compiles to scalar compares per element).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// `Σ a[i] · b[i]` summed in [`LANES`] interleaved partial sums, then those in order.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ f(a[i])` summed like [`dot`].
#[inline(always)]
pub(crate) fn sum_map(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += f(x[l]);
        }
    }
    let mut tail = 0f32;
    for &x in rest {
        tail += f(x);
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element (`-inf` for an empty slice).
#[inline(always)]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..LANES {
            acc[l] = acc[l].max(x[l]);
        }
    }
    rest.iter().chain(acc.iter()).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// In-place `x[i] = e^(x[i] - shift)`, returning the sum of the results.
#[inline(always)]
pub(crate) fn exp_shifted(x: &mut [f32], shift: f32) -> f32 {
    for v in x.iter_mut() {
        *v = exp(*v - shift);
    }
    sum_map(x, |v| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = -87.0 + i as f32 * (175.0 / 200_000.0);
            let want = (x as f64).exp();
            let got = fast(|| exp(x)) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions_match_float64() {
        let a: Vec<f32> = (0..1001).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let b: Vec<f32> = (0..1001).map(|i| ((i * 53) % 97) as f32 / 40.0 - 1.2).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((fast(|| dot(&a, &b)) as f64 - want).abs() < 1e-4);
        let want: f64 = a.iter().map(|x| (*x as f64) * (*x as f64)).sum();
        assert!((sum_map(&a, |x| x * x) as f64 - want).abs() < 1e-4);
        assert_eq!(max(&a), a.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        // The same value whichever instruction set ran it.
        assert_eq!(fast(|| dot(&a, &b)).to_bits(), dot(&a, &b).to_bits());
    }
}
