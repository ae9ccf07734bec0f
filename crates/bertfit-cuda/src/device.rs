//! One GPU: the driver's primary context, one stream on which all work is queued in order, the module
//! of our kernels, and what the device is (name, multiprocessors, memory, driver and cuBLASLt versions).

use crate::error::{CudaError, DriverContext, Result};
use crate::{libs, KERNEL_IMAGE};
use cudarc::driver::{result, sys};
use std::ffi::CString;

/// What a GPU is: enough to fingerprint its numerics and to size launches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// The device's name (e.g. "NVIDIA H100 80GB HBM3").
    pub name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// The driver's CUDA version as `major * 1000 + minor * 10` (13000 for 13.0).
    pub driver_version: u32,
    /// `cublasLtGetVersion()` (e.g. 130100).
    pub cublaslt_version: usize,
}

impl DeviceInfo {
    /// What a run's numerics depend on, in one line: the GPU model and its multiprocessor count (launch
    /// grids and reduction orders follow it), the driver and the cuBLASLt version.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}, {} SMs, compute {}.{}, driver CUDA {}.{}, cuBLASLt {}",
            self.name,
            self.sm_count,
            self.compute_capability.0,
            self.compute_capability.1,
            self.driver_version / 1000,
            self.driver_version % 1000 / 10,
            self.cublaslt_version
        )
    }
}

/// How many CUDA devices the driver reports (an error when the driver is missing or fails to start).
pub fn count() -> Result<usize> {
    libs::ensure_loaded()?;
    result::init().what("cuInit")?;
    let n = result::device::get_count().what("cuDeviceGetCount")?;
    Ok(n.max(0) as usize)
}

/// An open GPU. All calls queue on its one stream; the context is made current on the thread that opened
/// it (use it from that thread).
pub struct Gpu {
    info: DeviceInfo,
    device: sys::CUdevice,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    module: sys::CUmodule,
}

impl Gpu {
    /// Opens device `ordinal`: checks the libraries, retains the primary context, creates the stream and
    /// loads our kernels.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if !crate::has_kernels() {
            return Err(CudaError::StubBuild);
        }
        let n = count()?;
        if ordinal >= n {
            return Err(CudaError::NoDevice { ordinal, count: n });
        }
        let device = result::device::get(ordinal as i32).what("cuDeviceGet")?;
        // SAFETY: `device` is a valid handle from cuDeviceGet; the context is released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(device) }.what("retain the primary context")?;
        // SAFETY: `ctx` was just retained.
        unsafe { result::ctx::set_current(ctx) }.what("make the context current")?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking).what("create a stream")?;
        // cuModuleLoadData wants an aligned image; the embedded bytes have alignment 1
        let mut image = vec![0u64; KERNEL_IMAGE.len().div_ceil(8)];
        // SAFETY: `image` has at least KERNEL_IMAGE.len() bytes, and u64 has no invalid bit patterns.
        unsafe { std::ptr::copy_nonoverlapping(KERNEL_IMAGE.as_ptr(), image.as_mut_ptr().cast::<u8>(), KERNEL_IMAGE.len()) };
        // SAFETY: the image is a fatbin written by nvcc at build time; the driver copies it.
        let module = unsafe { result::module::load_data(image.as_ptr().cast()) }.what("load the kernel image")?;
        let info = DeviceInfo {
            ordinal,
            name: result::device::get_name(device).what("cuDeviceGetName")?,
            sm_count: attribute(device, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            compute_capability: (
                attribute(device, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attribute(device, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            // SAFETY: valid device handle.
            total_memory: unsafe { result::device::total_mem(device) }.what("cuDeviceTotalMem")?,
            driver_version: driver_version()?,
            // SAFETY: ensure_loaded (in count) found the library; the call has no arguments.
            cublaslt_version: unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() },
        };
        Ok(Gpu { info, device, ctx, stream, module })
    }

    /// What this device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The stream all work is queued on.
    pub fn stream(&self) -> sys::CUstream {
        self.stream
    }

    /// Makes this GPU's context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        // SAFETY: the context is retained for the life of `self`.
        unsafe { result::ctx::set_current(self.ctx) }.what("make the context current")
    }

    /// Waits until everything queued has run; reports any asynchronous failure.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream lives as long as `self`.
        unsafe { result::stream::synchronize(self.stream) }.what("synchronize the stream")
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        result::mem_get_info().what("cuMemGetInfo")
    }

    /// A kernel of our module by name.
    pub(crate) fn function(&self, name: &str) -> Result<sys::CUfunction> {
        let c = CString::new(name).map_err(|_| CudaError::Invalid(format!("kernel name {name:?}")))?;
        // SAFETY: the module is loaded for the life of `self`.
        unsafe { result::module::get_function(self.module, c) }.what(format!("find kernel `{name}`"))
    }

    /// A timing event (recorded on this GPU's stream).
    pub fn event(&self) -> Result<Event> {
        let e = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT).what("create an event")?;
        Ok(Event { event: e, stream: self.stream })
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: each handle was created in `open` and is released once; errors at teardown are ignored.
        unsafe {
            let _ = result::stream::synchronize(self.stream);
            let _ = result::module::unload(self.module);
            let _ = result::stream::destroy(self.stream);
            let _ = result::primary_ctx::release(self.device);
        }
    }
}

/// A CUDA event on a GPU's stream, for timing queued work.
pub struct Event {
    event: sys::CUevent,
    stream: sys::CUstream,
}

impl Event {
    /// Records the event after the work queued so far.
    pub fn record(&self) -> Result<()> {
        // SAFETY: event and stream outlive this call.
        unsafe { result::event::record(self.event, self.stream) }.what("record an event")
    }
    /// Milliseconds from `self` to `end`, waiting for `end` to complete.
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32> {
        // SAFETY: both events are valid; `end` is waited for first.
        unsafe {
            result::event::synchronize(end.event).what("wait for an event")?;
            result::event::elapsed(self.event, end.event).what("time between events")
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created in Gpu::event and destroyed once.
        unsafe {
            let _ = result::event::destroy(self.event);
        }
    }
}

fn attribute(device: sys::CUdevice, attr: sys::CUdevice_attribute) -> Result<u32> {
    // SAFETY: valid device handle and attribute.
    let v = unsafe { result::device::get_attribute(device, attr) }.what(format!("read device attribute {attr:?}"))?;
    Ok(v.max(0) as u32)
}

fn driver_version() -> Result<u32> {
    let mut v = 0i32;
    // SAFETY: writes one int.
    unsafe { sys::cuDriverGetVersion(&mut v) }.result().what("cuDriverGetVersion")?;
    Ok(v.max(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_what_the_numerics_depend_on() {
        let info = DeviceInfo { ordinal: 0, name: "NVIDIA H100 80GB HBM3".into(), sm_count: 132, compute_capability: (9, 0), total_memory: 80 << 30, driver_version: 13000, cublaslt_version: 130100 };
        assert_eq!(info.fingerprint(), "NVIDIA H100 80GB HBM3, 132 SMs, compute 9.0, driver CUDA 13.0, cuBLASLt 130100");
    }
}
