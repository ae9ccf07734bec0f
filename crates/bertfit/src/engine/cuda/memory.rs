//! The CUDA backend's device memory: growable allocations (regions, the parameters' bf16 copy, scratch)
//! and the scratch slots.

use bertfit_cuda::{DeviceBuffer, Gpu};

use super::dev;
use crate::error::Result;

/// One growable device allocation: `len` elements of the size it was last sized for, `bytes` in all.
#[derive(Default)]
pub(super) struct Mem {
    pub(super) buf: Option<DeviceBuffer>,
    pub(super) len: usize,
    pub(super) bytes: usize,
}

impl Mem {
    pub(super) fn base(&self) -> u64 {
        // an empty allocation is never dereferenced: calls on it have zero elements
        self.buf.as_ref().and_then(|b| b.at(b.whole()).ok()).unwrap_or(0)
    }

    /// Room for at least `len` elements of `elem` bytes (old contents dropped when it grows).
    pub(super) fn ensure(&mut self, gpu: &Gpu, len: usize, elem: usize) -> Result<u64> {
        let bytes = len.max(1) * elem;
        if self.bytes < bytes || self.buf.is_none() {
            // queued work may still read the old buffer
            gpu.synchronize().map_err(dev)?;
            self.buf = None;
            self.buf = Some(DeviceBuffer::alloc(gpu, bytes).map_err(dev)?);
            self.bytes = bytes;
        }
        self.len = self.bytes / elem;
        Ok(self.base())
    }
}

/// Scratch slots (grown on demand, never shrunk).
#[derive(Clone, Copy)]
pub(super) enum Scratch {
    /// bf16 copy of a product's left operand (cuBLASLt's A).
    OperandA = 0,
    /// bf16 copy of its right operand.
    OperandB,
    /// Per-row LayerNorm statistics (f32).
    Stats,
    /// Column-sum partials (f32).
    Partials,
    /// Sum-of-squares partials (f64).
    Norms,
    /// Embedding-gradient groups (u32).
    Groups,
    /// Attention's packed heads, scores and their gradients.
    Attn,
    /// Segment lists (u64 offset, length pairs).
    Segments,
}
