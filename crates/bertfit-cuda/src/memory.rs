//! Device memory: one allocation per region (`DeviceBuffer`, freed on drop) and the arena plan that places
//! named buffers inside it at aligned offsets, so nothing is allocated per step.

use crate::device::Gpu;
use crate::error::{CudaError, DriverContext, Result};
use cudarc::driver::{result, sys};

/// Alignment of every planned buffer: 256 bytes (cuBLASLt wants 16; 256 keeps rows of any dtype aligned
/// and matches the driver's allocation granularity).
pub const ALIGN: usize = 256;

/// A buffer's place inside a planned allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Byte offset from the allocation's start (a multiple of [`ALIGN`]).
    pub offset: usize,
    /// Size in bytes.
    pub bytes: usize,
}

impl Region {
    /// True when the two regions share a byte (an empty region shares none).
    pub fn overlaps(&self, other: &Region) -> bool {
        self.bytes > 0 && other.bytes > 0 && self.offset < other.offset + other.bytes && other.offset < self.offset + self.bytes
    }
}

/// Places buffers one after another at aligned offsets (pure; no device needed).
#[derive(Debug, Default, Clone)]
pub struct ArenaPlan {
    regions: Vec<(String, Region)>,
    total: usize,
}

impl ArenaPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a buffer of `bytes` and returns its region.
    pub fn push(&mut self, name: &str, bytes: usize) -> Region {
        let offset = self.total.next_multiple_of(ALIGN);
        let r = Region { offset, bytes };
        self.total = offset + bytes;
        self.regions.push((name.to_string(), r));
        r
    }
    /// Bytes the whole plan needs.
    pub fn total(&self) -> usize {
        self.total.next_multiple_of(ALIGN)
    }
    /// The planned buffers in order.
    pub fn regions(&self) -> &[(String, Region)] {
        &self.regions
    }
}

/// One device allocation, freed on drop.
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

impl DeviceBuffer {
    /// Allocates `bytes` (at least 1) on `gpu`; an error names the size and the free memory.
    pub fn alloc(gpu: &Gpu, bytes: usize) -> Result<DeviceBuffer> {
        gpu.bind()?;
        // SAFETY: plain device allocation of a positive size; freed in Drop.
        let ptr = unsafe { result::malloc_sync(bytes.max(1)) }.map_err(|source| {
            let free = gpu.memory().map(|(f, _)| f).unwrap_or(0);
            CudaError::Driver { what: format!("allocate {bytes} bytes ({free} free)"), source }
        })?;
        Ok(DeviceBuffer { ptr, bytes })
    }
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// The device address of `region` (checked to lie inside the buffer).
    pub fn at(&self, region: Region) -> Result<sys::CUdeviceptr> {
        if region.offset + region.bytes > self.bytes {
            return Err(CudaError::Invalid(format!(
                "region {}+{} outside a buffer of {} bytes",
                region.offset, region.bytes, self.bytes
            )));
        }
        Ok(self.ptr + region.offset as u64)
    }
    /// The whole buffer as a region.
    pub fn whole(&self) -> Region {
        Region { offset: 0, bytes: self.bytes }
    }
    /// Copies host values into `region` (waits for queued work first, then for the copy).
    pub fn upload<T: Copy>(&self, gpu: &Gpu, region: Region, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes > region.bytes {
            return Err(CudaError::Invalid(format!("upload of {bytes} bytes into a region of {}", region.bytes)));
        }
        let dst = self.at(region)?;
        gpu.synchronize()?;
        // on the GPU's own stream, then waited for: a synchronous copy from pageable memory runs on the
        // legacy stream and may return before the data lands, which our non-blocking stream would not wait for
        // SAFETY: dst has room for `bytes` (checked above); T is Copy plain data that outlives the wait.
        unsafe { result::memcpy_htod_async(dst, data, gpu.stream()) }.what("copy to the device")?;
        gpu.synchronize()
    }
    /// Copies `region` into host values (waits for queued work).
    pub fn download<T: Copy>(&self, gpu: &Gpu, region: Region, out: &mut [T]) -> Result<()> {
        let bytes = std::mem::size_of_val(out);
        if bytes > region.bytes {
            return Err(CudaError::Invalid(format!("download of {bytes} bytes from a region of {}", region.bytes)));
        }
        let src = self.at(region)?;
        gpu.synchronize()?;
        // SAFETY: src holds at least `bytes`; every bit pattern the callers read (f32, u16, u32) is valid.
        unsafe { result::memcpy_dtoh_sync(out, src) }.what("copy from the device")
    }
    /// Queues a device-to-device copy of `bytes` from `src` to `dst` on the GPU's stream.
    pub fn copy(gpu: &Gpu, dst: sys::CUdeviceptr, src: sys::CUdeviceptr, bytes: usize) -> Result<()> {
        // SAFETY: the callers pass addresses of live buffers with `bytes` to spare.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, gpu.stream()) }.what("copy on the device")
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc`, freed once.
        unsafe {
            let _ = result::free_sync(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_regions_are_aligned_and_disjoint() {
        let mut plan = ArenaPlan::new();
        let sizes = [1usize, 255, 256, 257, 4096, 3, 16384 * 768 * 2];
        let regions: Vec<Region> = sizes.iter().enumerate().map(|(i, &b)| plan.push(&format!("b{i}"), b)).collect();
        for (i, r) in regions.iter().enumerate() {
            assert_eq!(r.offset % ALIGN, 0, "region {i} offset {}", r.offset);
            assert_eq!(r.bytes, sizes[i]);
            assert!(r.offset + r.bytes <= plan.total());
            for (j, s) in regions.iter().enumerate().skip(i + 1) {
                assert!(!r.overlaps(s), "regions {i} and {j} overlap: {r:?} {s:?}");
            }
        }
        assert_eq!(plan.total() % ALIGN, 0);
        assert_eq!(plan.regions().len(), sizes.len());
        // nothing is wasted beyond alignment padding
        let padded: usize = sizes.iter().map(|b| b.next_multiple_of(ALIGN)).sum();
        assert_eq!(plan.total(), padded);
    }

    #[test]
    fn overlap_is_exact_at_the_edges() {
        let a = Region { offset: 0, bytes: 256 };
        assert!(!a.overlaps(&Region { offset: 256, bytes: 1 }));
        assert!(a.overlaps(&Region { offset: 255, bytes: 1 }));
        assert!(!a.overlaps(&Region { offset: 10, bytes: 0 }));
    }
}
