//! Per-query work: transform the query bodies, multiply-accumulate against the Fourier
//! catalog, one inverse transform per block, keep only the score-bearing coefficients.
//! Bodies only: the mask half of a ciphertext never exists on the server.

use rayon::prelude::*;

use blindscore_common::bitpack;
use blindscore_common::encoding::{torus_to_word, word_to_torus};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::wire::QueryView;
use blindscore_common::{CatalogShape, ProtocolError};

use crate::fourier_catalog::FourierCatalog;
use crate::simd::{
    aligned_filled, aligned_zeros, prefetch_l2, Aligned, AlignedF64, Kernel, TileSums,
    CHUNK_BLOCKS, TILE, TILE_F64,
};

/// Blocks scanned per span (whole chunks): bounds the accumulators at
/// `queries * SPAN_BLOCKS * N * 8` bytes (24 MiB for a batch of 16).
pub const SPAN_BLOCKS: usize = 16 * CHUNK_BLOCKS;

/// Groups (query ciphertexts) taken at a time by the batch kernel: a chunk's slice of
/// `CHUNK_BLOCKS * GROUP_SLICE * 128` bytes (24 KiB) stays in L1 while the pairs of queries
/// pass over it.
const GROUP_SLICE: usize = 32;

/// Blocks of one query transformed back together, so gathering their Fourier points reads
/// one contiguous run per tile.
const GATHER_BLOCKS: usize = 8;

/// A query's bodies in the Fourier domain: G transforms of N/2 points.
pub struct PreparedQuery {
    data: Aligned<c64>,
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
    pub fn with_kernel(
        shape: &'a CatalogShape,
        catalog: &'a FourierCatalog,
        kernel: Kernel,
    ) -> Self {
        let kernel = if kernel.is_available() {
            kernel
        } else {
            Kernel::Portable
        };
        Evaluator {
            shape,
            catalog,
            kernel,
        }
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Unpack and transform a query's bodies. The message must have passed
    /// [`QueryView::check`].
    pub fn prepare(&self, query: &QueryView<'_>) -> Result<PreparedQuery, ProtocolError> {
        let g = &self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let width = self.shape.budget.query_bits();
        let mut fft = NegacyclicFft::new(n);
        let mut torus = Vec::with_capacity(n);
        let mut data = aligned_filled(g.groups() * half, c64::new(0.0, 0.0));
        // Unpack body by body straight into the transform's input.
        let mut bodies = data.chunks_exact_mut(half);
        bitpack::unpack_chunks(
            query.bodies,
            width,
            g.query_coefficients(),
            n,
            "query bodies",
            |body| {
                torus.clear();
                torus.extend(body.iter().map(|&w| word_to_torus(w, width)));
                if let Some(fourier) = bodies.next() {
                    fft.forward_torus(fourier, &torus);
                }
            },
        )?;
        Ok(PreparedQuery { data })
    }

    /// Score a batch of queries in one pass over the catalog: each catalog tile is read
    /// from memory once for all of them. The blocks are taken in spans of
    /// [`SPAN_BLOCKS`], each scanned in parallel over tiles (the batch's query tiles stay in
    /// cache for the whole span) and then inverse-transformed in parallel over blocks, so
    /// the accumulators stay a few MiB whatever the catalog's size. Returns each query's
    /// response words, one per item.
    pub fn score_batch(&self, queries: &[PreparedQuery]) -> Vec<Vec<u64>> {
        let g = &self.shape.geometry;
        let width = self.shape.budget.response_bits();
        let mut out: Vec<Vec<u64>> = queries.iter().map(|_| vec![0u64; g.items]).collect();
        let mut slices: Vec<&mut [u64]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
        self.scan(queries, &mut slices, g.items_per_block(), |poly, words| {
            for (t, word) in words.iter_mut().enumerate() {
                *word = torus_to_word(poly[g.score_coefficient(t)], width);
            }
        });
        out
    }

    /// [`Evaluator::score_batch`] with each query's scores packed at the response width
    /// (the response payload), each block packed straight into its own bytes.
    pub fn score_batch_packed(&self, queries: &[PreparedQuery]) -> Vec<Vec<u8>> {
        self.score_batch_packed_after(queries, &[])
    }

    /// [`Evaluator::score_batch_packed`] with each payload written after `prefix` in one
    /// buffer (a response message's leading bytes), so it is never copied.
    pub fn score_batch_packed_after(
        &self,
        queries: &[PreparedQuery],
        prefix: &[u8],
    ) -> Vec<Vec<u8>> {
        let g = &self.shape.geometry;
        let width = self.shape.budget.response_bits();
        let len = self.shape.response_payload_bytes();
        if !(g.items_per_block() * width as usize).is_multiple_of(8) {
            // Blocks of a few items (b > N/8) may end mid-byte: pack the words afterwards.
            return self
                .score_batch(queries)
                .iter()
                .map(|words| [prefix, &bitpack::pack(words, width)].concat())
                .collect();
        }
        // Each block's scores fill whole bytes of the payload.
        let per_block = g.items_per_block() * width as usize / 8;
        let mut out: Vec<Vec<u8>> = queries
            .iter()
            .map(|_| {
                let mut message = Vec::with_capacity(prefix.len() + len);
                message.extend_from_slice(prefix);
                message.resize(prefix.len() + len, 0);
                message
            })
            .collect();
        let mut slices: Vec<&mut [u8]> = out.iter_mut().map(|v| &mut v[prefix.len()..]).collect();
        self.scan(queries, &mut slices, per_block, |poly, bytes| {
            let items = if bytes.len() == per_block {
                g.items_per_block()
            } else {
                g.items_in_block(g.blocks() - 1)
            };
            if g.b == 1 {
                // Every coefficient is a score: a plain run the packer takes fastest.
                let words = poly[..items].iter().map(|&c| torus_to_word(c, width));
                bitpack::pack_into(words, width, bytes);
            } else {
                let words = (0..items).map(|t| torus_to_word(poly[g.score_coefficient(t)], width));
                bitpack::pack_into(words, width, bytes);
            }
        });
        out
    }

    /// The scan: `out[q]` is cut into one chunk of `per_block` elements per block (the last
    /// may be shorter), and `finish(poly, chunk)` turns each block's inverse transform into
    /// its chunk.
    fn scan<T: Send>(
        &self,
        queries: &[PreparedQuery],
        out: &mut [&mut [T]],
        per_block: usize,
        finish: impl Fn(&[u64], &mut [T]) + Sync,
    ) {
        let g = &self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let tiles = half / TILE;
        let groups = g.groups();
        let chunk_len = CHUNK_BLOCKS * groups * TILE_F64;
        let stored = self.catalog.stored_blocks();
        let blocks = g.blocks();
        let nq = queries.len();
        if nq == 0 {
            return;
        }
        let batch = interleave(queries, tiles, groups);
        // The query vectors of one (tile, group): every query's, side by side.
        let stride = nq * TILE_F64;
        let q_tile_of = |tile: usize| &batch[tile * groups * stride..(tile + 1) * groups * stride];
        let span_len = SPAN_BLOCKS.min(stored);
        // acc[tile][query][block of the span][8 points]: each tile's results in one run.
        let acc_tile = nq * span_len * TILE;
        let mut acc = aligned_filled(tiles * acc_tile, c64::new(0.0, 0.0));
        for first in (0..stored).step_by(SPAN_BLOCKS) {
            let span = SPAN_BLOCKS.min(stored - first);
            let span_of = |tile: usize| {
                let len = groups * TILE_F64;
                &self.catalog.tile(tile)[first * len..(first + span) * len]
            };
            acc.par_chunks_mut(acc_tile)
                .enumerate()
                .for_each(|(tile, acc)| {
                    let data = span_of(tile);
                    let q_tile = q_tile_of(tile);
                    // What the next tile reads first, most likely on this thread: its query
                    // vectors (prefetched a share per kernel call) and its first slice of the
                    // catalog.
                    let (next_q, next_p) = if tile + 1 < tiles {
                        (q_tile_of(tile + 1), span_of(tile + 1))
                    } else {
                        (&[][..], &[][..])
                    };
                    let pairs = nq / 2;
                    let calls = (data.len() / chunk_len) * groups.div_ceil(GROUP_SLICE) * pairs;
                    let q_share = next_q.len().div_ceil(calls.max(1)).next_multiple_of(8);
                    let mut call = 0;
                    let at = |g: usize| g * CHUNK_BLOCKS * TILE_F64;
                    let slice_len = at(GROUP_SLICE);
                    let mut sums = vec![TileSums::default(); nq];
                    for (chunk, p) in data.chunks_exact(chunk_len).enumerate() {
                        if nq % 2 == 1 {
                            // The next chunk, or the next tile's first.
                            let next_at = (chunk + 1) * chunk_len;
                            let next = if next_at < data.len() {
                                &data[next_at..(next_at + chunk_len).min(data.len())]
                            } else {
                                &next_p[..chunk_len.min(next_p.len())]
                            };
                            sums[nq - 1] = self.kernel.mac_tile(
                                &q_tile[(nq - 1) * TILE_F64..],
                                stride,
                                p,
                                if pairs == 0 { next } else { &[] },
                            );
                        }
                        sums[..2 * pairs].fill(TileSums::default());
                        // A slice of the groups at a time: that slice of the chunk and of every
                        // query stays in L1 while every pair of queries passes over it, and the
                        // pairs prefetch the next slice of the chunk between them.
                        for first_group in (0..groups).step_by(GROUP_SLICE) {
                            if pairs == 0 {
                                break;
                            }
                            let gs = first_group..(first_group + GROUP_SLICE).min(groups);
                            let p_slice = &p[at(gs.start)..at(gs.end)];
                            let q_slice = &q_tile[gs.start * stride..gs.end * stride];
                            let next_at = chunk * chunk_len + at(gs.end);
                            let next = if next_at < data.len() {
                                &data[next_at..(next_at + slice_len).min(data.len())]
                            } else {
                                &next_p[..slice_len.min(next_p.len())]
                            };
                            let share = next.len().div_ceil(pairs).next_multiple_of(8);
                            for (pair, two) in sums.chunks_exact_mut(2).enumerate() {
                                let two: &mut [TileSums; 2] =
                                    two.try_into().expect("chunks of two");
                                let from = (call * q_share).min(next_q.len());
                                prefetch_l2(&next_q[from..(from + q_share).min(next_q.len())]);
                                call += 1;
                                let from = (pair * share).min(next.len());
                                self.kernel.mac_tile_pair(
                                    &q_slice[2 * pair * TILE_F64..],
                                    stride,
                                    p_slice,
                                    two,
                                    &next[from..(from + share).min(next.len())],
                                );
                            }
                        }
                        for (qi, s) in sums.iter().enumerate() {
                            for blk in 0..CHUNK_BLOCKS {
                                let at = (qi * span_len + chunk * CHUNK_BLOCKS + blk) * TILE;
                                for (i, z) in acc[at..at + TILE].iter_mut().enumerate() {
                                    *z = c64::new(s.re[blk][i], s.im[blk][i]);
                                }
                            }
                        }
                    }
                });
            let real = blocks.min(first + span) - first;
            let acc = &acc;
            // Each (query, run of blocks) of the span: gather the run's Fourier points (one
            // contiguous read per tile for the whole run), transform each block back, and
            // write its scores in place.
            let range =
                |len: usize| (first * per_block).min(len)..((first + real) * per_block).min(len);
            let finish = &finish;
            out.par_iter_mut()
                .enumerate()
                .flat_map(|(qi, chunks)| {
                    let range = range(chunks.len());
                    chunks[range]
                        .par_chunks_mut(per_block * GATHER_BLOCKS)
                        .enumerate()
                        .map(move |(run, chunk)| (qi, run * GATHER_BLOCKS, chunk))
                })
                .for_each_init(
                    || {
                        (
                            NegacyclicFft::new(n),
                            vec![0u64; n],
                            vec![c64::new(0.0, 0.0); half * GATHER_BLOCKS],
                        )
                    },
                    |(fft, poly, fourier), (qi, first_blk, chunk)| {
                        let run = chunk.len().div_ceil(per_block);
                        // fourier[block of the run][point]
                        for tile in 0..tiles {
                            let at = tile * acc_tile + (qi * span_len + first_blk) * TILE;
                            let points = &acc[at..at + run * TILE];
                            for (b, p) in points.chunks_exact(TILE).enumerate() {
                                fourier[b * half + tile * TILE..][..TILE].copy_from_slice(p);
                            }
                        }
                        for (b, chunk) in chunk.chunks_mut(per_block).enumerate() {
                            fft.backward_torus(poly, &fourier[b * half..(b + 1) * half]);
                            finish(poly, chunk);
                        }
                    },
                );
        }
    }

    /// Score one query.
    pub fn score(&self, query: &PreparedQuery) -> Vec<u64> {
        self.score_batch(std::slice::from_ref(query))
            .pop()
            .unwrap_or_default()
    }
}

/// The batch's query vectors, `[tile][group][query][8 re, 8 im]`: a slice of groups holds
/// every query's vectors in one contiguous run (which then stays in L1), where separate
/// buffers would put them a multiple of 4 KiB apart, in the same cache sets.
fn interleave(queries: &[PreparedQuery], tiles: usize, groups: usize) -> AlignedF64 {
    let nq = queries.len();
    let half = tiles * TILE;
    let mut batch = aligned_zeros(tiles * groups * nq * TILE_F64);
    batch
        .par_chunks_mut(groups * nq * TILE_F64)
        .enumerate()
        .for_each(|(tile, out)| {
            for (gi, out) in out.chunks_exact_mut(nq * TILE_F64).enumerate() {
                for (q, v) in queries.iter().zip(out.chunks_exact_mut(TILE_F64)) {
                    let points = &q.data[gi * half + tile * TILE..][..TILE];
                    let (re, im) = v.split_at_mut(TILE);
                    for (i, z) in points.iter().enumerate() {
                        re[i] = z.re;
                        im[i] = z.im;
                    }
                }
            }
        });
    batch
}
