//! The catalog precomputed in the Fourier domain, once per version.
//!
//! Storage is tile-major: for each tile of 8 Fourier points, for each chunk of
//! [`CHUNK_BLOCKS`] blocks, for each group g, for each block of the chunk: 8 real parts
//! then 8 imaginary parts. Scanning tile by tile streams contiguous memory (any run of
//! groups of a chunk is one contiguous slice), the reduction over g sums in registers,
//! each query vector serves the chunk's blocks, and a batch's query tiles stay in cache
//! while that tile's slice of the whole catalog is read once. Parallel work is split by
//! tiles.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::{CatalogShape, Geometry, QuantizedCatalog};

use super::memory::{aligned_zeros, AlignedF64};
use super::tile::{CHUNK_BLOCKS, TILE, TILE_F64};

/// Progress of a long build: called with (blocks done, blocks in all).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// The catalog polynomials P_{block,g}, forward-transformed and laid out for the scan.
pub struct FourierCatalog {
    geometry: Geometry,
    stored_blocks: usize,
    data: AlignedF64,
}

/// Blocks transformed per build step (bounds the build's temporary memory).
const BUILD_STEP_BLOCKS: usize = 16;

impl FourierCatalog {
    /// Transform every block (in parallel), reporting progress.
    pub fn build(shape: &CatalogShape, catalog: &QuantizedCatalog, progress: Progress<'_>) -> Self {
        let geometry = shape.geometry;
        let n = geometry.n;
        let half = n / 2;
        let groups = geometry.groups();
        let total = geometry.blocks();
        let stored_blocks = total.next_multiple_of(CHUNK_BLOCKS);
        let tile_len = stored_blocks * groups * TILE_F64;
        let mut data = aligned_zeros((half / TILE) * tile_len);
        let done = AtomicUsize::new(0);
        let mut step = vec![c64::new(0.0, 0.0); BUILD_STEP_BLOCKS.min(total) * groups * half];
        for first in (0..total).step_by(BUILD_STEP_BLOCKS) {
            let count = BUILD_STEP_BLOCKS.min(total - first);
            // Transform this step's blocks, block-major, in parallel...
            step[..count * groups * half]
                .par_chunks_mut(groups * half)
                .enumerate()
                .for_each_init(
                    || (NegacyclicFft::new(n), vec![0u64; n]),
                    |(fft, poly), (blk, out)| {
                        for (g, fourier) in out.chunks_exact_mut(half).enumerate() {
                            block_polynomial(&geometry, catalog, first + blk, g, poly);
                            fft.forward_integer(fourier, poly);
                        }
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                    },
                );
            // ...then scatter them into the tile-major layout, in parallel over tiles.
            let step = &step;
            data.par_chunks_mut(tile_len)
                .enumerate()
                .for_each(|(tile, out)| {
                    for blk in 0..count {
                        for g in 0..groups {
                            let points = &step[(blk * groups + g) * half + tile * TILE..][..TILE];
                            let block = first + blk;
                            let at = ((block / CHUNK_BLOCKS * groups + g) * CHUNK_BLOCKS
                                + block % CHUNK_BLOCKS)
                                * TILE_F64;
                            let v = &mut out[at..at + TILE_F64];
                            for (i, z) in points.iter().enumerate() {
                                v[i] = z.re;
                                v[TILE + i] = z.im;
                            }
                        }
                    }
                });
        }
        FourierCatalog {
            geometry,
            stored_blocks,
            data,
        }
    }

    /// Sizes of the catalog.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Blocks stored per tile: the real blocks rounded up to [`CHUNK_BLOCKS`] (the padding
    /// is zero).
    pub fn stored_blocks(&self) -> usize {
        self.stored_blocks
    }

    /// The values of one tile: `stored_blocks * G` vectors, chunk by chunk, each chunk
    /// group-major.
    pub fn tile(&self, tile: usize) -> &[f64] {
        let len = self.stored_blocks * self.geometry.groups() * TILE_F64;
        &self.data[tile * len..(tile + 1) * len]
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f64>()
    }
}

/// The catalog polynomial of group g in a block: item t's coordinates g*b..g*b+b placed
/// reversed at exponents t*b + b - 1 - j, as signed integers in u64.
pub fn block_polynomial(
    geometry: &Geometry,
    catalog: &QuantizedCatalog,
    block: usize,
    g: usize,
    out: &mut [u64],
) {
    out.fill(0);
    let b = geometry.b;
    let d = geometry.dimension;
    let first = block * geometry.items_per_block();
    for t in 0..geometry.items_in_block(block) {
        let row = catalog.row(first + t);
        for j in 0..b {
            let dim = g * b + j;
            if dim < d {
                out[geometry.catalog_exponent(t, j)] = row[dim] as i64 as u64;
            }
        }
    }
}
