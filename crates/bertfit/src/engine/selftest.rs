//! `bertfit gpu-selftest`: checks the CUDA backend against the CPU on the machine it runs on and measures
//! the ceilings the engine is judged by. Today (milestone M0): device and library discovery, the kernel
//! image, the counter-based random numbers (bit-identical to [`crate::rng`]), the bf16 rounding kernel,
//! device copy bandwidth, and every cuBLASLt configuration the engine uses at BERT shapes — each run
//! twice (equal bits), checked against a float64 product of the same inputs, timed (TFLOP/s), and timed
//! again with each algorithm the heuristic offers.

use crate::model::kernels::bf16::{from_bf16, to_bf16};
use crate::rng;
use crate::{Error, Result};
use bertfit_cuda::blaslt::GemmArgs;
use bertfit_cuda::{ArenaPlan, Blas, CudaError, DType, DeviceBuffer, GemmShape, Gpu, Kernels, Region};
use serde::Serialize;
use std::time::Instant;

/// What the self-test found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The GPU.
    pub device: Device,
    /// Pass/fail checks, in order.
    pub checks: Vec<Check>,
    /// One row per matrix-product configuration.
    pub gemms: Vec<GemmRow>,
    /// Device-to-device copy, GB/s counting bytes read and written.
    pub copy_gb_s: f64,
    /// Counter-based random draws per second (the dropout-mask cost).
    pub rng_draws_per_s: f64,
    /// Wall time of the whole self-test, seconds.
    pub wall_s: f64,
}

impl Report {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.gemms.iter().all(|g| g.repeat_equal && g.max_rel_err <= g.tolerance)
    }
}

/// The device as the report names it.
#[derive(Debug, Serialize)]
pub struct Device {
    /// Name.
    pub name: String,
    /// Multiprocessors.
    pub sm_count: u32,
    /// Compute capability, "9.0".
    pub compute_capability: String,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Driver's CUDA version, "13.0".
    pub driver_cuda: String,
    /// cuBLASLt version number.
    pub cublaslt: usize,
}

/// One pass/fail check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Numbers behind the verdict.
    pub detail: String,
}

/// One GEMM configuration's results.
#[derive(Debug, Serialize)]
pub struct GemmRow {
    /// What the product is in the engine ("qkv fwd", "ffn1 wgrad", ...).
    pub name: String,
    /// Row-major description: tokens × in → out, operand → output types.
    pub shape: String,
    /// Median milliseconds per product with the heuristic's first algorithm.
    pub ms: f64,
    /// Its TFLOP/s.
    pub tflops: f64,
    /// Two runs from the same inputs gave the same bits.
    pub repeat_equal: bool,
    /// max |gpu − f64 reference| / max |reference| over sampled outputs.
    pub max_rel_err: f64,
    /// The tolerance for that error (bf16 output: 1e-2; f32 output: 1e-4, which TF32 would exceed).
    pub tolerance: f64,
    /// TFLOP/s of each algorithm the heuristic offered, in its order.
    pub algorithms_tflops: Vec<f64>,
}

/// Options of a self-test run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Device ordinal.
    pub device: usize,
    /// Tokens per batch of the GEMM shapes (16384 = 128 × 128).
    pub tokens: u64,
    /// Also time every algorithm the heuristic offers.
    pub all_algorithms: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { device: 0, tokens: 16384, all_algorithms: true }
    }
}

fn backend(e: CudaError) -> Error {
    Error::Backend(Box::new(e))
}

/// Runs the self-test; `progress` receives one line per finished part.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let started = Instant::now();
    let gpu = Gpu::open(opts.device).map_err(backend)?;
    let info = gpu.info().clone();
    progress(&format!(
        "{} ({} SMs, compute {}.{}, driver CUDA {}.{}, cuBLASLt {})",
        info.name,
        info.sm_count,
        info.compute_capability.0,
        info.compute_capability.1,
        info.driver_version / 1000,
        info.driver_version % 1000 / 10,
        info.cublaslt_version
    ));
    let kernels = Kernels::load(&gpu).map_err(backend)?;
    let mut checks = Vec::new();
    for c in rng_checks(&gpu, &kernels).map_err(backend)? {
        progress(&format!("{} {}: {}", if c.passed { "ok  " } else { "FAIL" }, c.name, c.detail));
        checks.push(c);
    }
    let (rng_draws_per_s, rng_check) = rng_throughput(&gpu, &kernels).map_err(backend)?;
    progress(&format!("rng: {:.1} G draws/s", rng_draws_per_s / 1e9));
    checks.push(rng_check);
    let copy_gb_s = copy_bandwidth(&gpu).map_err(backend)?;
    progress(&format!("device copy: {copy_gb_s:.0} GB/s (read + write)"));
    let mut blas = Blas::new(&gpu).map_err(backend)?;
    let mut gemms = Vec::new();
    for (name, shape) in gemm_cases(opts.tokens) {
        // one failing configuration is reported and the others still run
        let row = match gemm_case(&gpu, &kernels, &mut blas, name, &shape, opts.all_algorithms) {
            Ok(row) => row,
            Err(e) => {
                let detail = crate::error::causes(&e);
                progress(&format!("FAIL GEMM {name}: {detail}"));
                checks.push(Check { name: format!("GEMM {name} ({})", describe(&shape)), passed: false, detail });
                continue;
            }
        };
        progress(&format!(
            "{:<18} {:<34} {:7.3} ms {:6.1} TFLOP/s  repeat {}  err {:.1e}  algos {}",
            row.name,
            row.shape,
            row.ms,
            row.tflops,
            if row.repeat_equal { "equal" } else { "DIFFERS" },
            row.max_rel_err,
            row.algorithms_tflops.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>().join("/")
        ));
        gemms.push(row);
    }
    let device = Device {
        name: info.name,
        sm_count: info.sm_count,
        compute_capability: format!("{}.{}", info.compute_capability.0, info.compute_capability.1),
        memory_gib: info.total_memory as f64 / (1u64 << 30) as f64,
        driver_cuda: format!("{}.{}", info.driver_version / 1000, info.driver_version % 1000 / 10),
        cublaslt: info.cublaslt_version,
    };
    Ok(Report { device, checks, gemms, copy_gb_s, rng_draws_per_s, wall_s: started.elapsed().as_secs_f64() })
}

/// The engine's products at bert-base (H 768, I 3072) and MiniLM (H 384, I 1536) widths over `tokens`.
pub fn gemm_cases(tokens: u64) -> Vec<(&'static str, GemmShape)> {
    use DType::{BF16, F32};
    vec![
        ("qkv fwd", GemmShape::linear(tokens, 768, 2304, BF16, BF16, true)),
        ("attn-out fwd", GemmShape::linear(tokens, 768, 768, BF16, BF16, true)),
        ("ffn1 fwd", GemmShape::linear(tokens, 768, 3072, BF16, BF16, true)),
        ("ffn2 fwd", GemmShape::linear(tokens, 3072, 768, BF16, BF16, true)),
        ("qkv wgrad", GemmShape::weight_grad(tokens, 768, 2304, BF16, F32, true)),
        ("ffn1 wgrad", GemmShape::weight_grad(tokens, 768, 3072, BF16, F32, true)),
        ("ffn2 wgrad", GemmShape::weight_grad(tokens, 3072, 768, BF16, F32, true)),
        ("qkv dgrad", GemmShape::input_grad(tokens, 768, 2304, BF16, F32, true)),
        ("ffn2 dgrad", GemmShape::input_grad(tokens, 3072, 768, BF16, BF16, false)),
        ("ffn1 dgrad", GemmShape::input_grad(tokens, 768, 3072, BF16, F32, true)),
        ("minilm ffn1 fwd", GemmShape::linear(tokens, 384, 1536, BF16, BF16, true)),
        ("minilm ffn1 wgrad", GemmShape::weight_grad(tokens, 384, 1536, BF16, F32, true)),
        ("f32 ffn1 fwd", GemmShape::linear(tokens, 768, 3072, F32, F32, true)),
        ("f32 ffn1 wgrad", GemmShape::weight_grad(tokens, 768, 3072, F32, F32, true)),
    ]
}

fn describe(s: &GemmShape) -> String {
    let ty = |d: DType| match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
    };
    // recover the row-major (tokens, in, out) from the column-major shape
    let (what, tokens, inp, out) = if s.trans_a {
        ("y=xWᵀ+b", s.n, s.k, s.m)
    } else if s.trans_b {
        ("dW+=dyᵀx", s.k, s.m, s.n)
    } else {
        (if s.accumulate { "dx+=dyW" } else { "dx=dyW" }, s.n, s.m, s.k)
    };
    format!("{what} {tokens}x{inp}->{out} {}->{}", ty(s.a), ty(s.d))
}

/// Random values of `dtype` from stream `key` into `region` (uniform in [-1, 1)).
fn fill(gpu: &Gpu, k: &Kernels, buf: &DeviceBuffer, r: Region, dtype: DType, key: u64) -> bertfit_cuda::Result<()> {
    let n = (r.bytes / dtype.bytes()) as u64;
    let p = buf.at(r)?;
    // SAFETY: `p` addresses `r`, which holds `n` elements of `dtype`.
    unsafe {
        match dtype {
            DType::F32 => k.fill_uniform_f32(gpu, p, n, key, -1.0, 1.0),
            DType::BF16 => k.fill_uniform_bf16(gpu, p, n, key, -1.0, 1.0),
        }
    }
}

/// The CPU's value of element `i` of a fill.
fn cpu_uniform(key: u64, i: u64, lo: f32, hi: f32) -> f32 {
    lo + rng::uniform_f32(key, i) * (hi - lo)
}

fn download_f64(gpu: &Gpu, buf: &DeviceBuffer, r: Region, dtype: DType) -> bertfit_cuda::Result<Vec<f64>> {
    Ok(match dtype {
        DType::F32 => {
            let mut v = vec![0f32; r.bytes / 4];
            buf.download(gpu, r, &mut v)?;
            v.into_iter().map(f64::from).collect()
        }
        DType::BF16 => {
            let mut v = vec![0u16; r.bytes / 2];
            buf.download(gpu, r, &mut v)?;
            v.into_iter().map(|h| f64::from(from_bf16(h))).collect()
        }
    })
}

fn rng_checks(gpu: &Gpu, k: &Kernels) -> bertfit_cuda::Result<Vec<Check>> {
    let n: u64 = (1 << 22) + 3; // not a multiple of any block size
    let key = rng::key(&[7, rng::label("selftest")]);
    let mut plan = ArenaPlan::new();
    let rf = plan.push("f32", n as usize * 4);
    let rb = plan.push("bf16", n as usize * 2);
    let rc = plan.push("converted", n as usize * 2);
    let buf = DeviceBuffer::alloc(gpu, plan.total())?;
    // SAFETY: each region holds n elements of the written type.
    unsafe {
        k.fill_uniform_f32(gpu, buf.at(rf)?, n, key, -3.0, 5.0)?;
        k.fill_uniform_bf16(gpu, buf.at(rb)?, n, key, -3.0, 5.0)?;
        k.f32_to_bf16(gpu, buf.at(rf)?, buf.at(rc)?, n)?;
    }
    let mut f = vec![0f32; n as usize];
    let mut b = vec![0u16; n as usize];
    let mut c = vec![0u16; n as usize];
    buf.download(gpu, rf, &mut f)?;
    buf.download(gpu, rb, &mut b)?;
    buf.download(gpu, rc, &mut c)?;
    let f_bad = (0..n).filter(|&i| f[i as usize].to_bits() != cpu_uniform(key, i, -3.0, 5.0).to_bits()).count();
    let b_bad = (0..n).filter(|&i| b[i as usize] != to_bf16(cpu_uniform(key, i, -3.0, 5.0))).count();
    let c_bad = f.iter().zip(&c).filter(|(x, h)| to_bf16(**x) != **h).count();
    let check = |name: &str, bad: usize| Check {
        name: name.into(),
        passed: bad == 0,
        detail: format!("{bad} of {n} values differ from the CPU's bits"),
    };
    Ok(vec![
        check("uniform f32 = rng::uniform_f32", f_bad),
        check("uniform bf16 = CPU rounding", b_bad),
        check("f32 -> bf16 = CPU rounding", c_bad),
    ])
}

fn rng_throughput(gpu: &Gpu, k: &Kernels) -> bertfit_cuda::Result<(f64, Check)> {
    let threads = gpu.info().sm_count.max(1) as u64 * 2048;
    let per_thread = 4096u64;
    let key = rng::key(&[11, rng::label("dropout")]);
    let buf = DeviceBuffer::alloc(gpu, threads as usize * 4)?;
    let p = buf.at(buf.whole())?;
    // SAFETY: `buf` holds one u32 per thread.
    let time = |gpu: &Gpu| -> bertfit_cuda::Result<f64> {
        let (a, b) = (gpu.event()?, gpu.event()?);
        a.record()?;
        unsafe { k.count_below(gpu, p, threads, per_thread, key, 0.1)? };
        b.record()?;
        Ok(a.elapsed_ms(&b)? as f64)
    };
    time(gpu)?; // warm-up
    let mut ms: Vec<f64> = (0..3).map(|_| time(gpu)).collect::<bertfit_cuda::Result<_>>()?;
    let mut counts = vec![0u32; threads as usize];
    buf.download(gpu, buf.whole(), &mut counts)?;
    let cpu = |t: u64| (0..per_thread).filter(|j| rng::uniform_f32(key, t * per_thread + j) < 0.1).count() as u32;
    let sampled = [0, 1, threads / 2, threads - 1];
    let bad = sampled.iter().filter(|&&t| counts[t as usize] != cpu(t)).count();
    ms.sort_by(f64::total_cmp);
    let draws = (threads * per_thread) as f64;
    let check = Check {
        name: "dropout draws = rng::uniform_f32".into(),
        passed: bad == 0,
        detail: format!("{bad} of {} sampled threads' counts differ; {:.2} ms for {:.2} G draws", sampled.len(), ms[1], draws / 1e9),
    };
    Ok((draws / (ms[1] / 1e3), check))
}

fn copy_bandwidth(gpu: &Gpu) -> bertfit_cuda::Result<f64> {
    let bytes = 1usize << 30;
    let src = DeviceBuffer::alloc(gpu, bytes)?;
    let dst = DeviceBuffer::alloc(gpu, bytes)?;
    let (s, d) = (src.at(src.whole())?, dst.at(dst.whole())?);
    let mut ms = Vec::new();
    for i in 0..6 {
        let (a, b) = (gpu.event()?, gpu.event()?);
        a.record()?;
        DeviceBuffer::copy(gpu, d, s, bytes)?;
        b.record()?;
        let t = a.elapsed_ms(&b)? as f64;
        if i > 0 {
            ms.push(t);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(2.0 * bytes as f64 / (ms[ms.len() / 2] / 1e3) / 1e9)
}

/// Median milliseconds of one product over `samples` timings of `reps` back-to-back products.
fn time_gemm(gpu: &Gpu, blas: &mut Blas, s: &GemmShape, args: &GemmArgs, samples: usize, reps: usize) -> bertfit_cuda::Result<f64> {
    // SAFETY (both loops): the caller's args address buffers spanning the shape.
    for _ in 0..2 {
        unsafe { blas.gemm(gpu, s, args)? };
    }
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (a, b) = (gpu.event()?, gpu.event()?);
        a.record()?;
        for _ in 0..reps {
            unsafe { blas.gemm(gpu, s, args)? };
        }
        b.record()?;
        ms.push(a.elapsed_ms(&b)? as f64 / reps as f64);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[samples / 2])
}

fn gemm_case(gpu: &Gpu, k: &Kernels, blas: &mut Blas, name: &str, s: &GemmShape, all_algorithms: bool) -> bertfit_cuda::Result<GemmRow> {
    let (a_bytes, b_bytes, d_bytes) = s.spans();
    let mut plan = ArenaPlan::new();
    let ra = plan.push("A", a_bytes);
    let rb = plan.push("B", b_bytes);
    let rd = plan.push("D", d_bytes);
    let rd0 = plan.push("D0", d_bytes);
    let rbias = plan.push("bias", s.m as usize * s.d.bytes());
    let buf = DeviceBuffer::alloc(gpu, plan.total())?;
    let seed = rng::label(name);
    fill(gpu, k, &buf, ra, s.a, rng::key(&[seed, 1]))?;
    fill(gpu, k, &buf, rb, s.b, rng::key(&[seed, 2]))?;
    fill(gpu, k, &buf, rd0, s.d, rng::key(&[seed, 3]))?;
    fill(gpu, k, &buf, rbias, s.d, rng::key(&[seed, 4]))?;
    let args = GemmArgs {
        a: buf.at(ra)?,
        b: buf.at(rb)?,
        d: buf.at(rd)?,
        bias: if s.bias { buf.at(rbias)? } else { 0 },
    };
    let run_once = |blas: &mut Blas| -> bertfit_cuda::Result<Vec<u8>> {
        DeviceBuffer::copy(gpu, buf.at(rd)?, buf.at(rd0)?, d_bytes)?;
        // SAFETY: args address the planned regions, which span the shape.
        unsafe { blas.gemm(gpu, s, &args)? };
        let mut out = vec![0u8; d_bytes];
        buf.download(gpu, rd, &mut out)?;
        Ok(out)
    };
    let first = run_once(blas)?;
    let second = run_once(blas)?;
    let repeat_equal = first == second;

    // reference on sampled outputs, in float64 from the very operand values on the device
    let a = download_f64(gpu, &buf, ra, s.a)?;
    let b = download_f64(gpu, &buf, rb, s.b)?;
    let d0 = download_f64(gpu, &buf, rd0, s.d)?;
    let bias = download_f64(gpu, &buf, rbias, s.d)?;
    let d = bytes_to_f64(&first, s.d);
    let mut stream = rng::Stream::new(&[seed, 5]);
    let (mut max_err, mut max_ref) = (0f64, 0f64);
    for _ in 0..64 {
        let (i, j) = (stream.below(s.m), stream.below(s.n));
        let mut acc = 0f64;
        for l in 0..s.k {
            let av = if s.trans_a { a[(i * s.lda + l) as usize] } else { a[(l * s.lda + i) as usize] };
            let bv = if s.trans_b { b[(l * s.ldb + j) as usize] } else { b[(j * s.ldb + l) as usize] };
            acc += av * bv;
        }
        let at = (j * s.ldd + i) as usize;
        if s.accumulate {
            acc += d0[at];
        }
        if s.bias {
            acc += bias[i as usize];
        }
        max_err = max_err.max((d[at] - acc).abs());
        max_ref = max_ref.max(acc.abs());
    }
    let max_rel_err = max_err / max_ref.max(f64::MIN_POSITIVE);
    let tolerance = if s.d == DType::BF16 { 1e-2 } else { 1e-4 };

    let ms = time_gemm(gpu, blas, s, &args, 5, 10)?;
    let mut algorithms_tflops = Vec::new();
    if all_algorithms {
        for idx in 0..blas.algorithm_count(s)? {
            blas.choose_algorithm(s, idx)?;
            let t = time_gemm(gpu, blas, s, &args, 3, 10)?;
            algorithms_tflops.push(s.flops() / (t / 1e3) / 1e12);
        }
        blas.choose_algorithm(s, 0)?;
    }
    Ok(GemmRow {
        name: name.into(),
        shape: describe(s),
        ms,
        tflops: s.flops() / (ms / 1e3) / 1e12,
        repeat_equal,
        max_rel_err,
        tolerance,
        algorithms_tflops,
    })
}

fn bytes_to_f64(bytes: &[u8], dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        DType::BF16 => bytes.chunks_exact(2).map(|c| f64::from(from_bf16(u16::from_le_bytes([c[0], c[1]])))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_the_engine_products_and_describe_them_row_major() {
        let cases = gemm_cases(16384);
        assert_eq!(describe(&cases[0].1), "y=xWᵀ+b 16384x768->2304 bf16->bf16");
        assert_eq!(describe(&cases[4].1), "dW+=dyᵀx 16384x768->2304 bf16->f32");
        assert_eq!(describe(&cases[7].1), "dx+=dyW 16384x768->2304 bf16->f32");
        assert_eq!(describe(&cases[8].1), "dx=dyW 16384x3072->768 bf16->bf16");
        // the design's M0 target shapes are all present
        for want in ["16384x768->2304", "16384x768->3072", "16384x3072->768"] {
            assert!(cases.iter().filter(|(_, s)| describe(s).contains(want)).count() >= 2, "{want}");
        }
    }

    #[test]
    fn cpu_fill_matches_the_rng_module() {
        let key = rng::key(&[1]);
        assert_eq!(cpu_uniform(key, 5, 0.0, 1.0), rng::uniform_f32(key, 5));
        let v = cpu_uniform(key, 9, -3.0, 5.0);
        assert!((-3.0..5.0).contains(&v));
    }

    #[test]
    fn a_stub_build_or_a_machine_without_gpu_reports_an_error() {
        // CI machines have no GPU and build without kernels: the self-test must fail cleanly, never panic.
        if bertfit_cuda::has_kernels() && bertfit_cuda::gpu_present() {
            return; // a real GPU: exercised by scripts/gpu-check.sh instead
        }
        let err = run(&Options::default(), &mut |_| {}).expect_err("no usable GPU here");
        let chain = format!("{:?}", err);
        assert!(chain.contains("StubBuild") || chain.contains("LibraryMissing") || chain.contains("NoDevice"), "{chain}");
    }
}
