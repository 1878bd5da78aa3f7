//! The scan's unit of work: a tile of 8 Fourier points, chunks of 6 blocks, and the sums a
//! kernel call leaves.

/// Fourier points per tile.
pub const TILE: usize = 8;
/// Blocks scanned together per chunk: 6 keeps a pair of queries' 24 accumulators, their
/// query vectors and one catalog vector within the 32 vector registers.
pub const CHUNK_BLOCKS: usize = 6;
/// f64 values per (tile, group) vector: 8 real parts then 8 imaginary parts.
pub const TILE_F64: usize = 2 * TILE;

/// Accumulated tile results: `re[block]` and `im[block]`, 8 points each.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TileSums {
    pub re: [[f64; TILE]; CHUNK_BLOCKS],
    pub im: [[f64; TILE]; CHUNK_BLOCKS],
}
