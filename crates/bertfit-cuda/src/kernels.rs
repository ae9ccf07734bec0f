//! One typed launcher per CUDA kernel of `kernels/*.cu`: device pointers and sizes in, work queued on the
//! GPU's stream. Launch geometry comes from [`crate::launch`].

use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use crate::launch::{grid_stride, one_per_thread, Launch};
use cudarc::driver::{result, sys};
use std::ffi::c_void;

/// The kernels of our module, looked up once.
pub struct Kernels {
    fill_uniform_f32: sys::CUfunction,
    fill_uniform_bf16: sys::CUfunction,
    count_below: sys::CUfunction,
    f32_to_bf16: sys::CUfunction,
    sm_count: u32,
}

/// Queues `f` with the given argument addresses.
///
/// # Safety
/// `args` must point at values whose types and order match the kernel's parameters, and every device
/// pointer among them must be valid for the ranges the kernel touches.
unsafe fn launch(gpu: &Gpu, f: sys::CUfunction, l: Launch, args: &mut [*mut c_void]) -> Result<()> {
    result::launch_kernel(f, (l.grid, 1, 1), (l.block, 1, 1), 0, gpu.stream(), args).what("launch a kernel")
}

/// A kernel argument's address, as cuLaunchKernel takes it.
fn arg<T>(v: &mut T) -> *mut c_void {
    (v as *mut T).cast()
}

impl Kernels {
    /// Looks up every kernel in `gpu`'s module.
    pub fn load(gpu: &Gpu) -> Result<Kernels> {
        Ok(Kernels {
            fill_uniform_f32: gpu.function("fill_uniform_f32")?,
            fill_uniform_bf16: gpu.function("fill_uniform_bf16")?,
            count_below: gpu.function("count_below")?,
            f32_to_bf16: gpu.function("f32_to_bf16")?,
            sm_count: gpu.info().sm_count,
        })
    }

    /// `out[i] = lo + uniform(key, i) * (hi - lo)` for `i < n`, f32 (`out` holds `n` f32).
    ///
    /// # Safety
    /// `out` must be a device address with room for `n` f32.
    pub unsafe fn fill_uniform_f32(&self, gpu: &Gpu, out: sys::CUdeviceptr, n: u64, key: u64, lo: f32, hi: f32) -> Result<()> {
        let (mut out, mut n2, mut key, mut lo, mut hi) = (out, n, key, lo, hi);
        launch(gpu, self.fill_uniform_f32, grid_stride(n, self.sm_count), &mut [arg(&mut out), arg(&mut n2), arg(&mut key), arg(&mut lo), arg(&mut hi)])
    }

    /// The same values as [`Kernels::fill_uniform_f32`], rounded to bf16 (`out` holds `n` bf16).
    ///
    /// # Safety
    /// `out` must be a device address with room for `n` bf16.
    pub unsafe fn fill_uniform_bf16(&self, gpu: &Gpu, out: sys::CUdeviceptr, n: u64, key: u64, lo: f32, hi: f32) -> Result<()> {
        let (mut out, mut n2, mut key, mut lo, mut hi) = (out, n, key, lo, hi);
        launch(gpu, self.fill_uniform_bf16, grid_stride(n, self.sm_count), &mut [arg(&mut out), arg(&mut n2), arg(&mut key), arg(&mut lo), arg(&mut hi)])
    }

    /// Thread `t < threads` counts how many of draws `[t * per_thread, (t + 1) * per_thread)` of `key` are
    /// below `p`, into `out[t]` (u32): the throughput probe for dropout masks.
    ///
    /// # Safety
    /// `out` must be a device address with room for `threads` u32.
    pub unsafe fn count_below(&self, gpu: &Gpu, out: sys::CUdeviceptr, threads: u64, per_thread: u64, key: u64, p: f32) -> Result<()> {
        let l = one_per_thread(threads, 256).ok_or_else(|| crate::CudaError::Invalid(format!("{threads} threads")))?;
        let (mut out, mut threads, mut per_thread, mut key, mut p) = (out, threads, per_thread, key, p);
        launch(gpu, self.count_below, l, &mut [arg(&mut out), arg(&mut threads), arg(&mut per_thread), arg(&mut key), arg(&mut p)])
    }

    /// `out[i] = bf16(in[i])`, round to nearest even, for `i < n`.
    ///
    /// # Safety
    /// `input` must hold `n` f32 and `out` room for `n` bf16, on this device.
    pub unsafe fn f32_to_bf16(&self, gpu: &Gpu, input: sys::CUdeviceptr, out: sys::CUdeviceptr, n: u64) -> Result<()> {
        let (mut input, mut out, mut n2) = (input, out, n);
        launch(gpu, self.f32_to_bf16, grid_stride(n, self.sm_count), &mut [arg(&mut input), arg(&mut out), arg(&mut n2)])
    }
}
