//! The CUDA backend's errors: a missing library or device, a stub build, and failed driver or cuBLASLt calls.

use cudarc::cublaslt::result::CublasError;
use cudarc::driver::DriverError;

/// Result alias of this crate.
pub type Result<T, E = CudaError> = std::result::Result<T, E>;

/// Every failure of the CUDA backend.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A CUDA library could not be opened.
    #[error("{lib} not found: {hint}")]
    LibraryMissing {
        /// The library file looked for.
        lib: String,
        /// Why it matters and how to provide it.
        hint: String,
    },
    /// This binary was built without kernels.
    #[error(
        "this bertfit was built without CUDA kernels (BERTFIT_CUDA_STUB_KERNELS=1, nvcc absent): rebuild \
         it with nvcc (bash scripts/setup-cuda-toolchain.sh) to use a GPU"
    )]
    StubBuild,
    /// The requested device does not exist.
    #[error("no CUDA device {ordinal}: this machine has {count}")]
    NoDevice {
        /// The device asked for.
        ordinal: usize,
        /// How many the driver reports.
        count: usize,
    },
    /// A driver call failed.
    #[error("CUDA driver: {what}")]
    Driver {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// A cuBLASLt call failed.
    #[error("cuBLASLt: {what}")]
    Blas {
        /// What was being done.
        what: String,
        /// cuBLASLt's status.
        #[source]
        source: CublasError,
    },
    /// cuBLASLt offers no algorithm for a product (its shape, types, epilogue and alignment).
    #[error("cuBLASLt has no algorithm for {0}")]
    NoAlgorithm(String),
    /// A call was given sizes or buffers that do not fit (a bug in the caller).
    #[error("invalid CUDA call: {0}")]
    Invalid(String),
}

/// Attaches "what was being done" to driver results.
pub(crate) trait DriverContext<T> {
    fn what(self, what: impl Into<String>) -> Result<T>;
}

impl<T> DriverContext<T> for std::result::Result<T, DriverError> {
    fn what(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| CudaError::Driver { what: what.into(), source })
    }
}

/// Attaches "what was being done" to cuBLASLt results.
pub(crate) trait BlasContext<T> {
    fn what(self, what: impl Into<String>) -> Result<T>;
}

impl<T> BlasContext<T> for std::result::Result<T, CublasError> {
    fn what(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| CudaError::Blas { what: what.into(), source })
    }
}
