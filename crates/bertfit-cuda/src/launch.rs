//! Launch geometry: grid and block sizes for our kernels, as pure functions (unit-tested without a GPU).

/// Threads per block of the element-wise kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Resident blocks per multiprocessor aimed at by grid-stride kernels (enough to hide memory latency).
pub const BLOCKS_PER_SM: u32 = 8;

/// Grid and block of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in x.
    pub grid: u32,
    /// Threads per block in x.
    pub block: u32,
}

/// A grid-stride launch over `n` elements: one thread per element up to `sm_count * BLOCKS_PER_SM` full
/// blocks, each thread looping beyond that. Never zero blocks (a launch with `n = 0` does nothing).
pub fn grid_stride(n: u64, sm_count: u32) -> Launch {
    let block = ELEMENTWISE_BLOCK;
    let needed = n.div_ceil(block as u64).max(1);
    let cap = (sm_count.max(1) as u64) * BLOCKS_PER_SM as u64;
    Launch { grid: needed.min(cap) as u32, block }
}

/// One thread per item, `n` items: exactly enough blocks (for kernels whose threads do not loop).
/// `None` when the grid would exceed CUDA's 2^31 - 1 blocks in x.
pub fn one_per_thread(n: u64, block: u32) -> Option<Launch> {
    let grid = n.div_ceil(block as u64).max(1);
    (grid <= i32::MAX as u64).then_some(Launch { grid: grid as u32, block })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_stride_covers_small_and_caps_large() {
        // small: one thread per element, rounded up to whole blocks
        let l = grid_stride(1000, 132);
        assert_eq!(l, Launch { grid: 4, block: 256 });
        assert!(l.grid as u64 * l.block as u64 >= 1000);
        // empty: one block that does nothing
        assert_eq!(grid_stride(0, 132).grid, 1);
        // large: capped at 8 blocks per SM, threads loop
        let l = grid_stride(16384 * 3072, 132);
        assert_eq!(l.grid, 132 * 8);
        // no SM count known: still a valid grid
        assert_eq!(grid_stride(1 << 30, 0).grid, 8);
    }

    #[test]
    fn one_per_thread_is_exact_and_refuses_huge_grids() {
        assert_eq!(one_per_thread(16 * 1024, 128), Some(Launch { grid: 128, block: 128 }));
        assert_eq!(one_per_thread(16 * 1024 + 1, 128).map(|l| l.grid), Some(129));
        assert_eq!(one_per_thread(0, 128).map(|l| l.grid), Some(1));
        assert_eq!(one_per_thread(u64::MAX / 2, 32), None);
    }
}
