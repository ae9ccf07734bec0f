//! bertfit's CUDA backend: finds the driver and cuBLASLt at run time, owns one device context, stream
//! and device memory, runs matrix products through cuBLASLt and our own CUDA C++ kernels.
//!
//! Nothing here is needed to build or link: cudarc opens `libcuda` and `libcublasLt` when a GPU is first
//! asked for, and a machine without them gets an error naming what is missing. This crate knows nothing of
//! bertfit's models; the engine's CUDA backend (in the `bertfit` crate) drives it through raw device
//! pointers.
#![warn(missing_docs)]

pub mod blaslt;
pub mod device;
pub mod error;
pub mod kernels;
pub mod launch;
mod libs;
pub mod memory;

pub use blaslt::{Blas, DType, GemmShape};
pub use device::{DeviceInfo, Event, Gpu};
pub use error::{CudaError, Result};
pub use kernels::Kernels;
pub use memory::{ArenaPlan, DeviceBuffer, Region};

/// The kernels compiled by nvcc at build time (empty in a stub build).
pub(crate) static KERNEL_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

/// True when this build embeds compiled kernels (false for a `BERTFIT_CUDA_STUB_KERNELS=1` build).
pub fn has_kernels() -> bool {
    !KERNEL_IMAGE.is_empty()
}

/// Checks that the driver and cuBLASLt libraries can be opened (an error names the missing one and the fix).
pub fn check_libraries() -> Result<()> {
    libs::ensure_loaded()
}

/// True when the NVIDIA driver library can be opened and reports at least one GPU. Never panics: this is
/// what `--device auto` asks.
pub fn gpu_present() -> bool {
    libs::driver_present() && device::count().is_ok_and(|n| n > 0)
}
