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

/// Rows per block of the one-warp-per-row kernels (LayerNorm, attention rows).
pub const WARPS_PER_BLOCK: u32 = 4;

/// One warp per row, [`WARPS_PER_BLOCK`] rows per block: `(blocks, threads)`. `None` past CUDA's grid limit.
pub fn warp_rows(rows: u64) -> Option<(u32, u32)> {
    let blocks = rows.div_ceil(WARPS_PER_BLOCK as u64).max(1);
    (blocks <= i32::MAX as u64).then_some((blocks as u32, 32 * WARPS_PER_BLOCK))
}

/// Threads per block of the column-sum kernels (one thread per column).
pub const COLUMN_BLOCK: u32 = 128;

/// How a column sum over `rows × width` is split into row chunks: `(chunks, rows_per_chunk)`, enough
/// blocks to fill `sm_count` multiprocessors about four times over, at least 16 rows per chunk. The split
/// depends only on the shape and the SM count, so the summation order (and the bits) repeat on the same GPU
/// model.
pub fn column_chunks(rows: u64, width: u64, sm_count: u32) -> (u32, u32) {
    let col_blocks = width.div_ceil(COLUMN_BLOCK as u64).max(1);
    let wanted = (4 * sm_count.max(1) as u64).div_ceil(col_blocks);
    let chunks = wanted.clamp(1, rows.div_ceil(16).max(1)).min(4096);
    let rpc = rows.div_ceil(chunks).max(1);
    let chunks = rows.div_ceil(rpc).max(1);
    (chunks as u32, rpc.min(u32::MAX as u64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warp_rows_and_column_chunks_cover_every_row() {
        assert_eq!(warp_rows(10), Some((3, 128)));
        assert_eq!(warp_rows(0), Some((1, 128)));
        for (rows, width) in [(1u64, 768u64), (15, 384), (16384, 768), (16384, 3072), (131072, 2), (7, 1)] {
            let (chunks, rpc) = column_chunks(rows, width, 132);
            assert!(chunks >= 1 && rpc >= 1);
            assert!(chunks as u64 * rpc as u64 >= rows, "{rows}x{width}");
            assert!((chunks as u64 - 1) * (rpc as u64) < rows, "{rows}x{width}: an empty chunk");
        }
        // bert-base bias gradients at 16384 tokens: 6 column blocks × 88 chunks ≈ 4 waves of 132 SMs
        assert_eq!(column_chunks(16384, 768, 132), (88, 187));
    }

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
