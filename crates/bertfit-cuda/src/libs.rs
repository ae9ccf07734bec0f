//! Finding the CUDA libraries at run time: the driver (`libcuda`) and cuBLASLt, checked before cudarc
//! opens them (cudarc panics on a missing library; we answer with an error that names the fix).
//!
//! `BERTFIT_CUDA_LIB_DIR` may name a folder holding `libcublasLt.so.*` (for example the `nvidia/cu13/lib`
//! folder of a PyTorch installation): the library is opened from there first, and cudarc's later lookup by
//! name finds the already-loaded copy by its soname.

use crate::error::{CudaError, Result};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The variable naming a folder with the CUDA libraries.
pub const LIB_DIR_VAR: &str = "BERTFIT_CUDA_LIB_DIR";

/// cuBLASLt file names tried in `BERTFIT_CUDA_LIB_DIR`, newest first.
const CUBLASLT_FILES: [&str; 3] = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"];

/// True when the NVIDIA driver library opens.
pub(crate) fn driver_present() -> bool {
    // SAFETY: only tries to open the library by its candidate names; nothing is called in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Opens cuBLASLt from `BERTFIT_CUDA_LIB_DIR` when set (once per process) and checks that both the driver
/// and cuBLASLt can be found.
pub(crate) fn ensure_loaded() -> Result<()> {
    if !driver_present() {
        return Err(CudaError::LibraryMissing {
            lib: "libcuda.so (the NVIDIA driver)".into(),
            hint: "this machine has no NVIDIA driver, or its folder is not on the loader path (LD_LIBRARY_PATH)"
                .into(),
        });
    }
    preload_from_dir()?;
    // SAFETY: as above, a probe by name.
    if !unsafe { cudarc::cublaslt::sys::is_culib_present() } {
        return Err(CudaError::LibraryMissing {
            lib: "libcublasLt.so.13".into(),
            hint: format!(
                "install CUDA 13's cuBLAS (for example the Python package nvidia-cublas, which PyTorch brings) and \
                 set {LIB_DIR_VAR} to the folder that holds it, or add that folder to LD_LIBRARY_PATH"
            ),
        });
    }
    Ok(())
}

fn preload_from_dir() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let Some(dir) = std::env::var_os(LIB_DIR_VAR).map(PathBuf::from) else {
        return Ok(());
    };
    let outcome = LOADED.get_or_init(|| {
        let Some(path) = CUBLASLT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()) else {
            return Err(format!("{} holds none of {}", dir.display(), CUBLASLT_FILES.join(", ")));
        };
        // SAFETY: opening cuBLASLt runs its initialisers, which have no preconditions.
        match unsafe { libloading::Library::new(&path) } {
            Ok(lib) => {
                // kept open for the life of the process: cudarc resolves its symbols from it by soname
                std::mem::forget(lib);
                Ok(())
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    });
    outcome.clone().map_err(|msg| CudaError::LibraryMissing {
        lib: "libcublasLt".into(),
        hint: format!("{LIB_DIR_VAR}: {msg}"),
    })
}
