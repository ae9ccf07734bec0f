//! Launchers for the CUDA kernels of `kernels/*.cu`: typed ones for the self-test's kernels, and one
//! checked-by-name launcher ([`Kernels::launch`] with [`Args`]) for the engine's kernels (`engine.cu`),
//! whose typed wrappers live beside the engine's backend. Work is queued on the GPU's stream. Launch
//! geometry comes from [`crate::launch`].

use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use crate::launch::{grid_stride, one_per_thread, Launch};
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::ffi::c_void;

/// The kernels of `engine.cu`, looked up when the module loads.
pub const ENGINE_KERNELS: [&str; 22] = [
    "fill_f32", "round_bf16", "bias_rows", "col_partials", "col_finish", "embed_sum", "embed_grad_chunks", "embed_grad_rows",
    "layer_norm_fwd", "layer_norm_bwd", "layer_norm_partials", "dropout_rows", "activation_fwd", "activation_bwd",
    "heads_pack", "heads_pack_bf16", "heads_unpack", "attn_softmax", "attn_softmax_bwd", "pool_fwd", "pool_bwd",
    "sum_sq_segments",
];

/// The AdamW kernel (separate from the list so its name reads at the call site).
pub const ADAMW_KERNEL: &str = "adamw_step";

/// A kernel's arguments, each kept in its own 8-byte slot (cuLaunchKernel reads as many bytes from each
/// slot as the parameter has: 8 for pointers and 64-bit integers, 4 for u32, i32 and f32).
#[derive(Debug, Default, Clone)]
pub struct Args {
    slots: Vec<u64>,
}

impl Args {
    /// No arguments yet.
    pub fn new() -> Args {
        Args::default()
    }
    /// A device pointer (0 for a null pointer).
    pub fn ptr(mut self, p: sys::CUdeviceptr) -> Args {
        self.slots.push(p);
        self
    }
    /// A 64-bit unsigned integer.
    pub fn u64(mut self, v: u64) -> Args {
        self.slots.push(v);
        self
    }
    /// A 32-bit unsigned integer.
    pub fn u32(mut self, v: u32) -> Args {
        self.slots.push(u64::from(v));
        self
    }
    /// A 32-bit signed integer.
    pub fn i32(mut self, v: i32) -> Args {
        self.slots.push(u64::from(v as u32));
        self
    }
    /// A 32-bit float.
    pub fn f32(mut self, v: f32) -> Args {
        self.slots.push(u64::from(v.to_bits()));
        self
    }
}

/// A launch's grid (x, y, z), threads per block and dynamic shared memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Blocks in x, y and z.
    pub blocks: (u32, u32, u32),
    /// Threads per block (x only).
    pub threads: u32,
    /// Dynamic shared memory per block.
    pub shared: u32,
}

impl From<Launch> for Grid {
    fn from(l: Launch) -> Grid {
        Grid { blocks: (l.grid, 1, 1), threads: l.block, shared: 0 }
    }
}

/// The kernels of our module, looked up once.
pub struct Kernels {
    fill_uniform_f32: sys::CUfunction,
    fill_uniform_bf16: sys::CUfunction,
    count_below: sys::CUfunction,
    f32_to_bf16: sys::CUfunction,
    engine: HashMap<&'static str, sys::CUfunction>,
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
            engine: ENGINE_KERNELS
                .iter()
                .chain(&[ADAMW_KERNEL])
                .map(|&name| Ok((name, gpu.function(name)?)))
                .collect::<Result<_>>()?,
            sm_count: gpu.info().sm_count,
        })
    }

    /// The GPU's multiprocessor count (launch geometry depends on it, and so do reduction orders).
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// Queues engine kernel `name` with `args`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type (see `kernels/engine.cu`),
    /// and every device pointer among them must be valid for the ranges the kernel touches at this grid.
    pub unsafe fn launch(&self, gpu: &Gpu, name: &str, grid: Grid, args: &Args) -> Result<()> {
        let f = *self.engine.get(name).ok_or_else(|| crate::CudaError::Invalid(format!("no engine kernel named {name}")))?;
        if grid.blocks.0 == 0 || grid.blocks.1 == 0 || grid.blocks.2 == 0 || grid.threads == 0 {
            return Ok(());
        }
        let mut slots = args.slots.clone();
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        result::launch_kernel(f, grid.blocks, (grid.threads, 1, 1), grid.shared, gpu.stream(), &mut ptrs).what(format!("launch {name}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined_once_in_the_source() {
        // a name missing from engine.cu would fail only when a GPU loads the module
        let source = include_str!("../kernels/engine.cu");
        for name in ENGINE_KERNELS.iter().chain(&[ADAMW_KERNEL]) {
            assert_eq!(source.matches(&format!("__global__ void {name}(")).count(), 1, "{name}");
        }
        let defined = source.matches("extern \"C\" __global__ void ").count();
        assert_eq!(defined, ENGINE_KERNELS.len() + 1, "a kernel of engine.cu is not in ENGINE_KERNELS");
    }
}
