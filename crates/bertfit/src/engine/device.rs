//! The engine's backend for a runtime (`--device`): the CPU's, or a CUDA GPU's in a binary built with the
//! `cuda` feature, behind one boxed [`Backend`] so the trainer and the predictor hold one engine type.

use super::backend::{Attention, Backend, Buf, Dropout, DropoutAdd, Embed, EmbedGrad, Gemm, Ints, LayerNorm, LayerNormGrad, Pooling, Region, SoftmaxCe};
use super::cpu::CpuBackend;
use super::ops::AdamStep;
use crate::error::{Error, Result};
use crate::model::Activation;
use crate::runtime::{Accelerator, Runtime};

/// A backend chosen at run time.
pub type DynBackend = Box<dyn Backend + Send>;

/// The backend of `rt`'s accelerator: the CPU, or CUDA device N (an error naming what is missing when
/// this binary or machine cannot use it).
pub fn backend_for(rt: &Runtime) -> Result<DynBackend> {
    match rt.accelerator() {
        Accelerator::Cpu | Accelerator::Auto => Ok(Box::new(CpuBackend::new())),
        Accelerator::Cuda(n) => cuda(n),
    }
}

/// What the numerics of a run on `a` depend on beyond the bertfit build (design 2.7), for the run
/// configuration: the GPU's [`bertfit_cuda::DeviceInfo::fingerprint`]; `None` on the CPU.
pub fn numerics(a: Accelerator) -> Result<Option<String>> {
    match a.resolve() {
        Accelerator::Cuda(n) => gpu_fingerprint(n).map(Some),
        _ => Ok(None),
    }
}

#[cfg(feature = "cuda")]
fn gpu_fingerprint(n: usize) -> Result<String> {
    let gpu = bertfit_cuda::Gpu::open(n).map_err(|e| Error::Backend(Box::new(e)))?;
    Ok(gpu.info().fingerprint())
}

#[cfg(not(feature = "cuda"))]
fn gpu_fingerprint(n: usize) -> Result<String> {
    cuda(n).map(|_| String::new())
}

/// Refuses, before any work, a device this binary or machine cannot use, naming what is missing (a
/// usage error: exit code 2).
pub fn check_device(a: Accelerator) -> Result<()> {
    match a.resolve() {
        Accelerator::Cuda(n) => check_cuda(n),
        _ => Ok(()),
    }
}

#[cfg(feature = "cuda")]
fn check_cuda(n: usize) -> Result<()> {
    if !bertfit_cuda::has_kernels() {
        return Err(Error::config("device", format!("cuda:{n}: {}", bertfit_cuda::CudaError::StubBuild)));
    }
    bertfit_cuda::check_libraries().map_err(|e| Error::config("device", format!("cuda:{n}: {e}")))?;
    let count = if bertfit_cuda::gpu_present() { bertfit_cuda::device::count().unwrap_or(0) } else { 0 };
    if count == 0 {
        return Err(Error::config("device", format!("cuda:{n}: no CUDA GPU found (the NVIDIA driver library is missing or reports no device); use --device cpu")));
    }
    if n >= count {
        return Err(Error::config("device", format!("cuda:{n}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{}", count - 1)));
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn check_cuda(n: usize) -> Result<()> {
    cuda(n).map(|_| ())
}

#[cfg(feature = "cuda")]
fn cuda(n: usize) -> Result<DynBackend> {
    Ok(Box::new(super::cuda::CudaBackend::new(n)?))
}

#[cfg(not(feature = "cuda"))]
fn cuda(n: usize) -> Result<DynBackend> {
    Err(Error::config(
        "device",
        format!("cuda:{n}: this bertfit was built without CUDA support; build it with `cargo build --release --features cuda` (see README, GPU) or use --device cpu"),
    ))
}

/// What `--device auto` means for the model at `model`: the CPU, with a note saying why, when the model is a
/// local folder whose family runs on the candle graph only (the GPU engine does not cover it: ModernBERT,
/// DeBERTa) and `auto` would pick a GPU. Any other device, and a model not on disk yet (a Hub id), unchanged.
pub fn auto_for_model(acc: Accelerator, model: &str) -> (Accelerator, Option<String>) {
    fallback(acc, acc == Accelerator::Auto && acc.resolve().is_cuda(), model)
}

/// [`auto_for_model`] given whether `auto` would pick a GPU here.
fn fallback(acc: Accelerator, auto_gpu: bool, model: &str) -> (Accelerator, Option<String>) {
    if !auto_gpu {
        return (acc, None);
    }
    match graph_only_family(std::path::Path::new(model)) {
        Some(kind) => (Accelerator::Cpu, Some(format!("`{kind}` models run on the CPU: the GPU engine does not cover them yet (--device auto chose the CPU)"))),
        None => (acc, None),
    }
}

/// The `model_type` of a local model folder (or a run directory's `best/`) whose family the engine does
/// not cover.
fn graph_only_family(dir: &std::path::Path) -> Option<String> {
    let config = [dir.join("config.json"), dir.join("best").join("config.json")].into_iter().find(|p| p.is_file())?;
    let cfg = crate::model::BertConfig::from_file(&config).ok()?;
    let covered = cfg.family().engine && cfg.embedding_size() <= cfg.hidden_size;
    (!covered).then_some(cfg.model_type)
}

/// Refuses the candle graph on a GPU (it runs on the CPU only), naming the fix.
pub fn check_graph_on(rt: &Runtime, what: &str) -> Result<()> {
    if rt.accelerator().is_cuda() {
        return Err(Error::config(
            "engine",
            format!("{what} on --device {} runs on the engine only, and the engine does not cover this model (or --engine graph was asked for): use --device cpu", rt.accelerator().name()),
        ));
    }
    Ok(())
}

impl Backend for DynBackend {
    fn reserve(&mut self, region: Region, len: usize) -> Result<()> {
        (**self).reserve(region, len)
    }
    fn reserve_ints(&mut self, len: usize) -> Result<()> {
        (**self).reserve_ints(len)
    }
    fn upload(&mut self, dst: Buf, src: &[f32]) -> Result<()> {
        (**self).upload(dst, src)
    }
    fn upload_ints(&mut self, dst: Ints, src: &[u32]) -> Result<()> {
        (**self).upload_ints(dst, src)
    }
    fn download(&mut self, src: Buf, dst: &mut [f32]) -> Result<()> {
        (**self).download(src, dst)
    }
    fn fill(&mut self, dst: Buf, value: f32) -> Result<()> {
        (**self).fill(dst, value)
    }
    fn gemm(&mut self, g: &Gemm) -> Result<()> {
        (**self).gemm(g)
    }
    fn bias_grad(&mut self, dy: Buf, db: Buf, width: usize) -> Result<()> {
        (**self).bias_grad(dy, db, width)
    }
    fn embed(&mut self, e: &Embed) -> Result<()> {
        (**self).embed(e)
    }
    fn embed_grad(&mut self, e: &EmbedGrad) -> Result<()> {
        (**self).embed_grad(e)
    }
    fn layer_norm(&mut self, a: &LayerNorm) -> Result<()> {
        (**self).layer_norm(a)
    }
    fn layer_norm_grad(&mut self, a: &LayerNormGrad) -> Result<()> {
        (**self).layer_norm_grad(a)
    }
    fn dropout(&mut self, x: Buf, out: Buf, width: usize, drop: &Dropout) -> Result<()> {
        (**self).dropout(x, out, width, drop)
    }
    fn dropout_add(&mut self, a: &DropoutAdd) -> Result<()> {
        (**self).dropout_add(a)
    }
    fn activation(&mut self, act: Activation, x: Buf, out: Buf) -> Result<()> {
        (**self).activation(act, x, out)
    }
    fn activation_grad(&mut self, act: Activation, x: Buf, dy: Buf, dx: Buf) -> Result<()> {
        (**self).activation_grad(act, x, dy, dx)
    }
    fn attention(&mut self, a: &Attention) -> Result<()> {
        (**self).attention(a)
    }
    fn attention_grad(&mut self, a: &Attention) -> Result<()> {
        (**self).attention_grad(a)
    }
    fn pool(&mut self, p: &Pooling) -> Result<()> {
        (**self).pool(p)
    }
    fn pool_grad(&mut self, p: &Pooling) -> Result<()> {
        (**self).pool_grad(p)
    }
    fn softmax_ce(&mut self, a: &SoftmaxCe<'_>) -> Result<f64> {
        (**self).softmax_ce(a)
    }
    fn grad_norm_sq(&mut self, grads: &[Buf]) -> Result<f64> {
        (**self).grad_norm_sq(grads)
    }
    fn adamw(&mut self, segments: &[(Buf, bool)], step: &AdamStep) -> Result<()> {
        (**self).adamw(segments, step)
    }
    fn sync(&mut self) -> Result<()> {
        (**self).sync()
    }
    fn free_memory(&self) -> Option<u64> {
        (**self).free_memory()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auto_runs_graph_only_families_on_the_cpu() {
        let fixture = |f: &str| format!("{}/tests/data/families/{f}", env!("CARGO_MANIFEST_DIR"));
        for (family, gpu) in [("modernbert", false), ("deberta-v3", false), ("bert", true), ("distilbert", true)] {
            let (acc, note) = fallback(Accelerator::Auto, true, &fixture(family));
            assert_eq!(acc == Accelerator::Auto, gpu, "{family}");
            assert_eq!(note.is_some(), !gpu, "{family}: {note:?}");
        }
        let (_, note) = fallback(Accelerator::Auto, true, &fixture("modernbert"));
        assert!(note.is_some_and(|n| n.contains("`modernbert`") && n.contains("CPU")));
        // an explicit device, no GPU, or a Hub id: unchanged
        assert_eq!(fallback(Accelerator::Cuda(0), false, &fixture("modernbert")), (Accelerator::Cuda(0), None));
        assert_eq!(fallback(Accelerator::Auto, false, &fixture("modernbert")), (Accelerator::Auto, None));
        assert_eq!(fallback(Accelerator::Auto, true, "org/not-here"), (Accelerator::Auto, None));
    }

    use super::*;

    #[test]
    fn the_cpu_gets_the_cpu_backend_and_cuda_needs_a_cuda_build() {
        let rt = Runtime::cpu();
        assert!(backend_for(&rt).is_ok());
        assert!(check_graph_on(&rt, "training").is_ok());
        let gpu = Runtime::cpu().with_accelerator(Accelerator::Cuda(3));
        let err = check_graph_on(&gpu, "training").expect_err("graph on a GPU");
        assert!(err.to_string().contains("--device cpu"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = backend_for(&gpu).err().expect("no CUDA in this build");
            assert!(err.to_string().contains("without CUDA support"), "{err}");
            let err = check_device(Accelerator::Cuda(1)).expect_err("no CUDA in this build");
            assert!(err.to_string().contains("cuda:1") && err.to_string().contains("--device cpu"), "{err}");
        }
        assert!(check_device(Accelerator::Cpu).is_ok());
        assert_eq!(numerics(Accelerator::Cpu).expect("cpu"), None);
    }

    #[test]
    fn device_names_parse_and_print_back() {
        for (text, want) in [("auto", Accelerator::Auto), ("cpu", Accelerator::Cpu), ("cuda", Accelerator::Cuda(0)), ("cuda:2", Accelerator::Cuda(2))] {
            assert_eq!(Accelerator::parse(text), Ok(want));
        }
        assert_eq!(Accelerator::Cuda(1).name(), "cuda:1");
        for bad in ["cuda:", "cuda:x", "tpu", "cuda:-1"] {
            assert!(Accelerator::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&Accelerator::Cuda(1)).expect("json"), "\"cuda:1\"");
        assert_eq!(serde_json::from_str::<Accelerator>("\"cpu\"").expect("json"), Accelerator::Cpu);
        assert!(serde_json::from_str::<Accelerator>("\"tpu\"").is_err());
        // without CUDA in the build, auto is the CPU
        if !cfg!(feature = "cuda") {
            assert_eq!(Accelerator::Auto.resolve(), Accelerator::Cpu);
        }
    }
}
