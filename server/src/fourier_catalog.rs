//! The catalog precomputed in the Fourier domain, once per version.
//!
//! Storage is tile-major within chunks of [`CHUNK_BLOCKS`] blocks: for each chunk, for each
//! tile of 8 Fourier points, for each block, for each group g: 8 real parts then 8
//! imaginary parts. The scan's reduction over g then streams contiguous memory and each
//! query vector serves 4 blocks.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::{CatalogShape, Geometry, QuantizedCatalog};

use crate::simd::{CHUNK_BLOCKS, TILE, TILE_F64};

/// Progress of a long build: called with (blocks done, blocks in all).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// The catalog polynomials P_{block,g}, forward-transformed and laid out for the scan.
pub struct FourierCatalog {
    geometry: Geometry,
    chunks: usize,
    data: Vec<f64>,
}

impl FourierCatalog {
    /// Transform every block (in parallel), reporting progress.
    pub fn build(shape: &CatalogShape, catalog: &QuantizedCatalog, progress: Progress<'_>) -> Self {
        let geometry = shape.geometry;
        let n = geometry.n;
        let groups = geometry.groups();
        let chunks = geometry.blocks().div_ceil(CHUNK_BLOCKS);
        let chunk_len = chunk_len(&geometry);
        let mut data = vec![0.0f64; chunks * chunk_len];
        let done = AtomicUsize::new(0);
        let total = geometry.blocks();
        data.par_chunks_mut(chunk_len).enumerate().for_each_init(
            || (NegacyclicFft::new(n), vec![0u64; n], vec![c64::new(0.0, 0.0); n / 2]),
            |(fft, poly, fourier), (chunk, out)| {
                for blk in 0..CHUNK_BLOCKS {
                    let block = chunk * CHUNK_BLOCKS + blk;
                    if block >= total {
                        break;
                    }
                    for g in 0..groups {
                        block_polynomial(&geometry, catalog, block, g, poly);
                        fft.forward_integer(fourier, poly);
                        for (tile, points) in fourier.chunks_exact(TILE).enumerate() {
                            let at = ((tile * CHUNK_BLOCKS + blk) * groups + g) * TILE_F64;
                            let v = &mut out[at..at + TILE_F64];
                            for (i, z) in points.iter().enumerate() {
                                v[i] = z.re;
                                v[TILE + i] = z.im;
                            }
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            },
        );
        FourierCatalog { geometry, chunks, data }
    }

    /// Sizes of the catalog.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Number of chunks of [`CHUNK_BLOCKS`] blocks.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The values of one chunk.
    pub fn chunk(&self, chunk: usize) -> &[f64] {
        let len = chunk_len(&self.geometry);
        &self.data[chunk * len..(chunk + 1) * len]
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f64>()
    }
}

fn chunk_len(geometry: &Geometry) -> usize {
    (geometry.n / 2 / TILE) * CHUNK_BLOCKS * geometry.groups() * TILE_F64
}

/// The catalog polynomial of group g in a block: item t's coordinates g*b..g*b+b placed
/// reversed at exponents t*b + b - 1 - j, as signed integers in u64.
pub fn block_polynomial(geometry: &Geometry, catalog: &QuantizedCatalog, block: usize, g: usize, out: &mut [u64]) {
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
