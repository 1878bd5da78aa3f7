//! Per-query work: transform the query bodies, multiply-accumulate against the Fourier
//! catalog, one inverse transform per block, keep only the score-bearing coefficients.
//! Bodies only: the mask half of a ciphertext never exists on the server.

use rayon::prelude::*;

use blindscore_common::bitpack;
use blindscore_common::encoding::{torus_to_word, word_to_torus};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::{CatalogShape, ProtocolError, QueryMessage};

use crate::fourier_catalog::FourierCatalog;
use crate::simd::{Kernel, CHUNK_BLOCKS, TILE, TILE_F64};

/// A query's bodies in the Fourier domain, laid out tile-major like the catalog.
pub struct PreparedQuery {
    data: Vec<f64>,
}

/// Scores queries against one Fourier catalog.
pub struct Evaluator<'a> {
    shape: &'a CatalogShape,
    catalog: &'a FourierCatalog,
    kernel: Kernel,
}

impl<'a> Evaluator<'a> {
    /// An evaluator with the fastest kernel this CPU has.
    pub fn new(shape: &'a CatalogShape, catalog: &'a FourierCatalog) -> Self {
        Self::with_kernel(shape, catalog, Kernel::detect())
    }

    /// An evaluator with a chosen kernel (falls back to the portable one when the CPU
    /// lacks the requested one).
    pub fn with_kernel(shape: &'a CatalogShape, catalog: &'a FourierCatalog, kernel: Kernel) -> Self {
        let kernel = if kernel.is_available() { kernel } else { Kernel::Portable };
        Evaluator { shape, catalog, kernel }
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Unpack and transform a query's bodies. The message must have passed
    /// [`QueryMessage::check`].
    pub fn prepare(&self, query: &QueryMessage) -> Result<PreparedQuery, ProtocolError> {
        let g = &self.shape.geometry;
        let n = g.n;
        let groups = g.groups();
        let width = self.shape.budget.query_bits();
        let words = bitpack::unpack(&query.bodies, width, g.query_coefficients(), "query bodies")?;
        let mut fft = NegacyclicFft::new(n);
        let mut torus = vec![0u64; n];
        let mut fourier = vec![c64::new(0.0, 0.0); n / 2];
        let mut data = vec![0.0; (n / 2 / TILE) * groups * TILE_F64];
        for (gi, body) in words.chunks_exact(n).enumerate() {
            for (t, w) in torus.iter_mut().zip(body) {
                *t = word_to_torus(*w, width);
            }
            fft.forward_torus(&mut fourier, &torus);
            for (tile, points) in fourier.chunks_exact(TILE).enumerate() {
                let at = (tile * groups + gi) * TILE_F64;
                for (i, z) in points.iter().enumerate() {
                    data[at + i] = z.re;
                    data[at + TILE + i] = z.im;
                }
            }
        }
        Ok(PreparedQuery { data })
    }

    /// Score a batch of queries in one pass over the catalog (parallel over chunks of
    /// blocks): each catalog tile is read from memory once for all of them. Returns each
    /// query's response words, one per item.
    pub fn score_batch(&self, queries: &[PreparedQuery]) -> Vec<Vec<u64>> {
        let g = &self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let groups = g.groups();
        let tiles = half / TILE;
        let tile_len = CHUNK_BLOCKS * groups * TILE_F64;
        let width = self.shape.budget.response_bits();
        let nq = queries.len();
        let per_chunk: Vec<Vec<Vec<u64>>> = (0..self.catalog.chunks())
            .into_par_iter()
            .map_init(
                || (NegacyclicFft::new(n), vec![0u64; n], Vec::<c64>::new()),
                |(fft, poly, acc), chunk| {
                    acc.clear();
                    acc.resize(nq * CHUNK_BLOCKS * half, c64::new(0.0, 0.0));
                    let data = self.catalog.chunk(chunk);
                    for tile in 0..tiles {
                        let p = &data[tile * tile_len..(tile + 1) * tile_len];
                        for (qi, q) in queries.iter().enumerate() {
                            let qt = &q.data[tile * groups * TILE_F64..(tile + 1) * groups * TILE_F64];
                            let sums = self.kernel.mac_tile(qt, p, groups);
                            for blk in 0..CHUNK_BLOCKS {
                                let at = (qi * CHUNK_BLOCKS + blk) * half + tile * TILE;
                                for i in 0..TILE {
                                    acc[at + i] = c64::new(sums.re[blk][i], sums.im[blk][i]);
                                }
                            }
                        }
                    }
                    let mut words: Vec<Vec<u64>> = vec![Vec::new(); nq];
                    for (qi, out) in words.iter_mut().enumerate() {
                        for blk in 0..CHUNK_BLOCKS {
                            let block = chunk * CHUNK_BLOCKS + blk;
                            if block >= g.blocks() {
                                break;
                            }
                            let at = (qi * CHUNK_BLOCKS + blk) * half;
                            fft.backward_torus(poly, &acc[at..at + half]);
                            out.extend(
                                (0..g.items_in_block(block))
                                    .map(|t| torus_to_word(poly[g.score_coefficient(t)], width)),
                            );
                        }
                    }
                    words
                },
            )
            .collect();
        let mut out: Vec<Vec<u64>> = (0..nq).map(|_| Vec::with_capacity(g.items)).collect();
        for chunk in per_chunk {
            for (o, w) in out.iter_mut().zip(chunk) {
                o.extend(w);
            }
        }
        out
    }

    /// Score one query.
    pub fn score(&self, query: &PreparedQuery) -> Vec<u64> {
        self.score_batch(std::slice::from_ref(query)).pop().unwrap_or_default()
    }
}
