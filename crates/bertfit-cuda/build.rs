//! Compiles `kernels/*.cu` into one fatbin with nvcc (SASS for sm_80 and sm_90, PTX for newer GPUs).
//!
//! nvcc is looked up in `NVCC`, `CUDA_ROOT/bin`, the project's `.cuda-venv` (made by
//! `scripts/setup-cuda-toolchain.sh`) and `PATH`. With `BERTFIT_CUDA_STUB_KERNELS=1` and no nvcc, an
//! empty image is embedded instead: the crate then type-checks and its pure tests run, and opening a
//! GPU reports that the binary has no kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

const ARCH_FLAGS: [&str; 6] = [
    "-gencode", "arch=compute_80,code=sm_80",
    "-gencode", "arch=compute_90,code=sm_90",
    "-gencode", "arch=compute_90,code=compute_90",
];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    for var in ["NVCC", "CUDA_ROOT", "BERTFIT_CUDA_STUB_KERNELS", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let fatbin = out.join("kernels.fatbin");
    let stub = std::env::var("BERTFIT_CUDA_STUB_KERNELS").is_ok_and(|v| v == "1");
    match find_nvcc() {
        Some(nvcc) if !stub => compile(&nvcc, &fatbin, &out),
        Some(_) | None if stub => {
            std::fs::write(&fatbin, b"").expect("write the empty kernel image");
        }
        _ => panic!(
            "bertfit-cuda: nvcc not found (looked in NVCC, CUDA_ROOT/bin, .cuda-venv and PATH). \
             Run `bash scripts/setup-cuda-toolchain.sh`, or set BERTFIT_CUDA_STUB_KERNELS=1 to build \
             without kernels (type-checking only: such a binary cannot use a GPU)."
        ),
    }
}

fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    if let Some(root) = std::env::var_os("CUDA_ROOT") {
        let p = Path::new(&root).join("bin/nvcc");
        if p.is_file() {
            return Some(p);
        }
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let venv_lib = manifest.join("../../.cuda-venv/lib");
    if let Ok(entries) = std::fs::read_dir(&venv_lib) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/nvidia/cu13/bin/nvcc");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("nvcc")).find(|p| p.is_file())
}

fn compile(nvcc: &Path, fatbin: &Path, out: &Path) {
    let src = Path::new("kernels/all.cu");
    let mut cmd = Command::new(nvcc);
    // nvcc finds its own helpers (cudafe++, ptxas, fatbinary) beside itself
    if let Some(bin) = nvcc.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("PATH entries are valid"));
    }
    cmd.args(["-fatbin", "-O3", "-std=c++17", "-lineinfo", "-Xptxas", "-v"])
        .args(ARCH_FLAGS)
        .arg(src)
        .arg("-o")
        .arg(fatbin);
    let output = cmd.output().unwrap_or_else(|e| panic!("bertfit-cuda: cannot run {}: {e}", nvcc.display()));
    // the ptxas report (registers, shared memory, spills per kernel) is kept for scripts/cuda-lint.sh
    std::fs::write(out.join("ptxas.txt"), &output.stderr).expect("write the ptxas report");
    if !output.status.success() {
        panic!(
            "bertfit-cuda: nvcc failed on {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
