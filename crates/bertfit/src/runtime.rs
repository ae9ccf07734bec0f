//! Where and how a model computes: the device, the dense layers' matmul precision, fused kernels or
//! composed ops, and the thread pool. The caller creates one [`Runtime`] and hands it to what it loads;
//! layers record its [`Exec`] when they are built. Nothing here is process-wide, so two models with
//! different settings (an f32 and a bf16 one, say) live side by side in one process.

use std::sync::Arc;

use candle_core::Device;

use crate::error::{Error, Result};

/// Precision of the dense layers' matrix products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and accumulation.
    #[default]
    F32,
    /// Mixed precision: operands rounded to bf16, f32 accumulation; weights, gradients and optimizer
    /// state stay f32 (the master weights).
    Bf16,
}

impl Precision {
    /// Parses `f32` or `bf16`.
    pub fn parse(s: &str) -> std::result::Result<Precision, String> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("`{other}`: expected f32 or bf16")),
        }
    }
    /// `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Which implementation trains and predicts: the candle graph (autograd over our fused ops; every
/// family) or the engine (one explicit forward and backward on packed tokens; BERT-layout families).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnginePath {
    /// The engine where it covers the model's family and device, the graph elsewhere.
    #[default]
    Auto,
    /// The candle graph.
    Graph,
    /// The engine (`crate::engine`).
    Fused,
}

impl EnginePath {
    /// Parses `auto`, `graph` or `fused`.
    pub fn parse(s: &str) -> std::result::Result<EnginePath, String> {
        match s {
            "auto" => Ok(EnginePath::Auto),
            "graph" => Ok(EnginePath::Graph),
            "fused" | "engine" => Ok(EnginePath::Fused),
            other => Err(format!("`{other}`: expected auto, graph or fused")),
        }
    }
    /// `auto`, `graph` or `fused`.
    pub fn name(self) -> &'static str {
        match self {
            EnginePath::Auto => "auto",
            EnginePath::Graph => "graph",
            EnginePath::Fused => "fused",
        }
    }
    /// The path that runs: `Auto` becomes `Fused` when the engine `covers` the model (its family, on
    /// the CPU), `Graph` otherwise; explicit choices stay.
    pub fn resolve(self, covers: bool) -> EnginePath {
        match self {
            EnginePath::Auto if covers => EnginePath::Fused,
            EnginePath::Auto => EnginePath::Graph,
            other => other,
        }
    }
}

/// Where the engine computes: `auto` (a CUDA GPU when this binary has CUDA support and the machine has
/// one, else the CPU), the CPU, or CUDA device N. Saved in run configurations by name (`cuda:0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Accelerator {
    /// The GPU when there is one this binary can use, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl Accelerator {
    /// Parses `auto`, `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(s: &str) -> std::result::Result<Accelerator, String> {
        match s {
            "auto" => Ok(Accelerator::Auto),
            "cpu" => Ok(Accelerator::Cpu),
            "cuda" => Ok(Accelerator::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Accelerator::Cuda(n)),
                _ => Err(format!("`{other}`: expected auto, cpu, cuda or cuda:N (N a device number)")),
            },
        }
    }
    /// `auto`, `cpu` or `cuda:N`.
    pub fn name(self) -> String {
        match self {
            Accelerator::Auto => "auto".into(),
            Accelerator::Cpu => "cpu".into(),
            Accelerator::Cuda(n) => format!("cuda:{n}"),
        }
    }
    /// The device that runs: `Auto` becomes CUDA device 0 when [`cuda_available`], else the CPU.
    pub fn resolve(self) -> Accelerator {
        match self {
            Accelerator::Auto if cuda_available() => Accelerator::Cuda(0),
            Accelerator::Auto => Accelerator::Cpu,
            other => other,
        }
    }
    /// Whether this is a GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, Accelerator::Cuda(_))
    }
}

impl serde::Serialize for Accelerator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Accelerator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Accelerator::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// True when this binary has CUDA kernels and the machine has the driver, cuBLASLt and a GPU the driver
/// reports (what `--device auto` asks; never fails: anything missing means no).
pub fn cuda_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        bertfit_cuda::has_kernels() && bertfit_cuda::check_libraries().is_ok() && bertfit_cuda::gpu_present()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// What a layer needs to know to compute: recorded by each layer when it is built, so forward and
/// backward use the same arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    /// Matmul precision of the dense layers.
    pub precision: Precision,
    /// Our fused CPU kernels (true) or candle's composed ops (false; the reference, and the path on
    /// other devices and dtypes).
    pub fused: bool,
}

impl Default for Exec {
    fn default() -> Self {
        Exec { precision: Precision::F32, fused: true }
    }
}

/// Device, arithmetic and threads of one loaded model or training run.
#[derive(Clone)]
pub struct Runtime {
    device: Device,
    /// Where the engine computes (the candle graph is always on `device`, the CPU).
    accelerator: Accelerator,
    exec: Exec,
    engine: EnginePath,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("device", &self.device).field("accelerator", &self.accelerator).field("exec", &self.exec).field("engine", &self.engine).field("threads", &self.threads()).finish()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::cpu()
    }
}

impl Runtime {
    /// The CPU, f32, fused kernels, rayon's default pool.
    pub fn cpu() -> Self {
        Runtime { device: Device::Cpu, accelerator: Accelerator::Cpu, exec: Exec::default(), engine: EnginePath::Auto, pool: None }
    }

    /// Runs compute on a pool of its own with `threads` workers (0 keeps rayon's default pool).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        if threads == 0 {
            self.pool = None;
            return Ok(self);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("bertfit-{i}"))
            .build()
            .map_err(|e| Error::Backend(Box::new(e)))?;
        self.pool = Some(Arc::new(pool));
        Ok(self)
    }

    /// With the engine computing on `accelerator` (resolved: `auto` picks here).
    pub fn with_accelerator(mut self, accelerator: Accelerator) -> Self {
        self.accelerator = accelerator.resolve();
        self
    }

    /// Where the engine computes (never `Auto`).
    pub fn accelerator(&self) -> Accelerator {
        self.accelerator
    }

    /// The same runtime on another training and inference path.
    pub fn with_engine(mut self, engine: EnginePath) -> Self {
        self.engine = engine;
        self
    }

    /// The training and inference path.
    pub fn engine(&self) -> EnginePath {
        self.engine
    }

    /// The same runtime with another matmul precision.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.exec.precision = precision;
        self
    }

    /// The same runtime with fused kernels on or off.
    pub fn with_fused(mut self, fused: bool) -> Self {
        self.exec.fused = fused;
        self
    }

    /// Where tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The arithmetic layers record.
    pub fn exec(&self) -> Exec {
        self.exec
    }

    /// The matmul precision.
    pub fn precision(&self) -> Precision {
        self.exec.precision
    }

    /// Worker threads compute runs on.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    /// Runs `f` with this runtime's pool as the current one (our kernels and GEMMs split work on it).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_values_not_globals() {
        let a = Runtime::cpu().with_precision(Precision::Bf16);
        let b = Runtime::cpu().with_fused(false);
        assert_eq!(a.exec(), Exec { precision: Precision::Bf16, fused: true });
        assert_eq!(b.exec(), Exec { precision: Precision::F32, fused: false });
        // a second runtime never changes the first
        assert_eq!(a.precision(), Precision::Bf16);
    }

    #[test]
    fn a_dedicated_pool_runs_the_work() {
        let rt = Runtime::cpu().with_threads(3).expect("pool");
        assert_eq!(rt.threads(), 3);
        let inside = rt.install(rayon::current_num_threads);
        assert_eq!(inside, 3);
        let name = rt.install(|| std::thread::current().name().map(str::to_string));
        assert_eq!(name.as_deref().map(|n| n.starts_with("bertfit-")), Some(true));
    }

    #[test]
    fn precision_parses_and_names() {
        assert_eq!(Precision::parse("bf16"), Ok(Precision::Bf16));
        assert_eq!(Precision::parse("fp32"), Ok(Precision::F32));
        assert!(Precision::parse("f16").is_err());
        assert_eq!(Precision::Bf16.name(), "bf16");
    }
}
