//! Per-query work: transform the query bodies, multiply-accumulate against the Fourier
//! catalog, one inverse transform per block, keep only the score-bearing coefficients.
//! Bodies only: the mask half of a ciphertext never exists on the server.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use blindscore_common::bitpack;
use blindscore_common::encoding::{torus_to_word, word_to_torus};
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::{CatalogRef, CatalogShape, ProtocolError};

use super::kernel::Kernel;
use super::memory::{prefetch_l2, split_disjoint, store_fence, write_streaming, Scratch};
use super::tile::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};
use super::tuning::Tuning;
use super::{CheckedQuery, FourierCatalog, ResponseMessage};

/// Blocks scanned per span (whole chunks) for a batch of `queries` at polynomial size `n`,
/// under this CPU's tuning (see [`Tuning::span_blocks`]).
pub fn span_blocks(queries: usize, n: usize) -> usize {
    Tuning::for_this_cpu().span_blocks(queries, n)
}

/// Groups (query ciphertexts) taken at a time by the batch kernel: a chunk's slice of
/// `CHUNK_BLOCKS * GROUP_SLICE * 128` bytes (24 KiB) stays in L1 while the pairs of queries
/// pass over it. A constant, not part of [`Tuning`]: the kernel's loop over a slice
/// compiles for its length (a run-time length measured 4% slower at 16 per pass).
const GROUP_SLICE: usize = 32;

/// Groups of a pair of queries transformed by one task of the batch's preparation, so that
/// its vectors of each tile are written as one contiguous run.
const PREPARE_GROUPS: usize = 8;

/// A batch of queries' bodies in the Fourier domain, laid out for the scan: for each tile,
/// for each pair of queries (the last may be a single), for each group, the pair's two
/// vectors of 8 real then 8 imaginary parts. What one call of the pair kernel reads is one
/// contiguous run, which the hardware prefetchers follow.
pub struct PreparedBatch {
    data: Scratch,
    queries: usize,
}

impl PreparedBatch {
    /// Number of queries in the batch.
    pub fn len(&self) -> usize {
        self.queries
    }

    /// Whether the batch holds no query.
    pub fn is_empty(&self) -> bool {
        self.queries == 0
    }
}

/// Wall-clock time of the two phases of a scan (each span's multiply-accumulate, then its
/// inverse side), summed over the spans of a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassTimings {
    /// Multiply-accumulate of the batch's queries against the Fourier catalog.
    pub multiply_accumulate: Duration,
    /// Gathering each block's sums, the inverse transforms, rounding and packing the scores.
    pub inverse: Duration,
}

/// Scores queries against one Fourier catalog.
pub struct Evaluator<'a> {
    shape: &'a CatalogShape,
    catalog: &'a FourierCatalog,
    kernel: Kernel,
    tuning: Tuning,
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
            tuning: Tuning::for_this_cpu(),
        }
    }

    /// This evaluator with other tuning: the same responses, byte for byte, at another
    /// speed.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The tuning in use.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Decode and check an encoded query against `catalog`, in this evaluator's shape.
    pub fn check(
        &self,
        catalog: &CatalogRef,
        message: bytes::Bytes,
    ) -> Result<CheckedQuery, ProtocolError> {
        CheckedQuery::check(message, u64::MAX, catalog, self.shape)
    }

    /// Check one encoded query against `catalog` and score it: its response words, one per
    /// item.
    pub fn score_one(
        &self,
        catalog: &CatalogRef,
        message: &[u8],
    ) -> Result<Vec<u64>, ProtocolError> {
        let query = self.check(catalog, bytes::Bytes::copy_from_slice(message))?;
        let mut words = self.score_words(&self.prepare(&[query]));
        Ok(words.pop().expect("one query, one response"))
    }

    /// Unpack and transform the bodies of a batch of checked queries, in parallel by pairs
    /// of queries and runs of groups, each task's vectors written straight into their place
    /// in the scan's layout (past the caches: the scan reads them tile by tile, much later).
    ///
    /// # Panics
    /// If a query's bodies do not have this shape's length (a query checked against
    /// another shape).
    pub fn prepare(&self, queries: &[CheckedQuery]) -> PreparedBatch {
        let expected = self.shape.query_payload_bytes();
        for query in queries {
            assert_eq!(
                query.bodies().len(),
                expected,
                "a query checked against another shape"
            );
        }
        let g = &self.shape.geometry;
        let n = g.n;
        let tiles = n / 2 / TILE;
        let groups = g.groups();
        let nq = queries.len();
        let width = self.shape.budget.query_bits();
        // N is a multiple of 8, so every body starts on a byte.
        let body_bytes = n * width as usize / 8;
        let mut data = Scratch::take(tiles * groups * nq * TILE_F64);
        let half = n / 2;
        // One task per pair of queries (the last may be a single) and run of groups: its
        // vectors of each tile are one contiguous run of the layout (see `query_slot`),
        // written at once.
        let pairs = nq.div_ceil(2);
        let runs = groups.div_ceil(PREPARE_GROUPS);
        let task_of = |task: usize| {
            let first = task / runs * 2;
            let gs = task % runs * PREPARE_GROUPS..((task % runs + 1) * PREPARE_GROUPS).min(groups);
            (first, gs)
        };
        let places = (0..pairs * runs)
            .map(|task| {
                let (first, gs) = task_of(task);
                let len = gs.len() * pair_width(first, nq) * TILE_F64;
                (0..tiles)
                    .map(|tile| {
                        let at = (tile * groups * nq + query_slot(first, gs.start, nq, groups))
                            * TILE_F64;
                        at..at + len
                    })
                    .collect()
            })
            .collect();
        let writers = split_disjoint(&mut data, places);
        writers.into_par_iter().enumerate().for_each_init(
            || {
                (
                    NegacyclicFft::new(n),
                    Vec::with_capacity(n),
                    vec![c64::new(0.0, 0.0); 2 * PREPARE_GROUPS * half],
                    vec![0.0; 2 * PREPARE_GROUPS * TILE_F64],
                )
            },
            |(fft, torus, fourier, run), (task, mut places)| {
                let (first, gs) = task_of(task);
                let pair = pair_width(first, nq);
                // fourier[(group of the run, query of the pair)][point]
                for (slot, (gi, k)) in gs
                    .clone()
                    .flat_map(|gi| (0..pair).map(move |k| (gi, k)))
                    .enumerate()
                {
                    let bodies = queries[first + k].bodies();
                    let bytes = &bodies[gi * body_bytes..(gi + 1) * body_bytes];
                    torus.clear();
                    bitpack::unpack_checked_with(bytes, width, n, |w| {
                        torus.push(word_to_torus(w, width))
                    });
                    fft.forward_torus(&mut fourier[slot * half..(slot + 1) * half], torus);
                }
                let vectors = gs.len() * pair;
                let run = &mut run[..vectors * TILE_F64];
                for tile in 0..tiles {
                    for (slot, v) in run.chunks_exact_mut(TILE_F64).enumerate() {
                        let points = &fourier[slot * half + tile * TILE..][..TILE];
                        let (re, im) = v.split_at_mut(TILE);
                        for (i, z) in points.iter().enumerate() {
                            re[i] = z.re;
                            im[i] = z.im;
                        }
                    }
                    places.write(tile, run);
                }
                store_fence();
            },
        );
        PreparedBatch { data, queries: nq }
    }

    /// Score a batch of queries in one pass over the catalog: each catalog tile is read
    /// from memory once for all of them. The blocks are taken in spans of
    /// [`span_blocks`], each scanned in parallel over tiles (the batch's query tiles stay in
    /// cache for the whole span) and then inverse-transformed in parallel over blocks, so
    /// the accumulators stay bounded whatever the catalog's size (see [`span_blocks`]).
    /// Returns each query's response words, one per item.
    pub fn score_words(&self, batch: &PreparedBatch) -> Vec<Vec<u64>> {
        self.score_words_timed(batch).0
    }

    /// [`Evaluator::score_words`], with the time each phase of the pass took.
    fn score_words_timed(&self, batch: &PreparedBatch) -> (Vec<Vec<u64>>, PassTimings) {
        let g = &self.shape.geometry;
        let width = self.shape.budget.response_bits();
        let mut out: Vec<Vec<u64>> = (0..batch.len()).map(|_| vec![0u64; g.items]).collect();
        let mut slices: Vec<&mut [u64]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
        let timings = self.scan(batch, &mut slices, g.items_per_block(), |_, poly, words| {
            for (t, word) in words.iter_mut().enumerate() {
                *word = torus_to_word(poly[g.score_coefficient(t)], width);
            }
        });
        (out, timings)
    }

    /// [`Evaluator::score_words`] with each query's scores packed at the response width
    /// (the response payload), each block packed straight into its own bytes, after
    /// `prefix` in the same buffer (a response message's leading bytes, so the payload is
    /// never copied).
    pub fn respond(&self, batch: &PreparedBatch, prefix: &[u8]) -> Vec<ResponseMessage> {
        self.respond_timed(batch, prefix).0
    }

    /// [`Evaluator::respond`], with the time each phase of the pass took.
    pub fn respond_timed(
        &self,
        batch: &PreparedBatch,
        prefix: &[u8],
    ) -> (Vec<ResponseMessage>, PassTimings) {
        let g = &self.shape.geometry;
        let width = self.shape.budget.response_bits();
        let len = self.shape.response_payload_bytes();
        if !(g.items_per_block() * width as usize).is_multiple_of(8) {
            // Blocks of a few items (b > N/8) may end mid-byte: pack the words afterwards.
            let (words, mut timings) = self.score_words_timed(batch);
            let started = Instant::now();
            let messages = words
                .iter()
                .map(|words| {
                    let mut message = ResponseMessage::zeroed(prefix.len() + len);
                    message[..prefix.len()].copy_from_slice(prefix);
                    bitpack::pack_into(words.iter().copied(), width, &mut message[prefix.len()..]);
                    message
                })
                .collect();
            timings.inverse += started.elapsed();
            return (messages, timings);
        }
        // Each block's scores fill whole bytes of the payload.
        let per_block = g.items_per_block() * width as usize / 8;
        let mut out: Vec<ResponseMessage> = (0..batch.len())
            .map(|_| {
                let mut message = ResponseMessage::zeroed(prefix.len() + len);
                message[..prefix.len()].copy_from_slice(prefix);
                message
            })
            .collect();
        let mut slices: Vec<&mut [u8]> = out.iter_mut().map(|v| &mut v[prefix.len()..]).collect();
        let kernel = self.kernel;
        let timings = self.scan(batch, &mut slices, per_block, |block, poly, bytes| {
            let items = g.items_in_block(block);
            if g.b == 1 {
                // Every coefficient is a score: rounded and packed in one pass.
                kernel.pack_rounded(&poly[..items], width, bytes);
            } else {
                let words = (0..items).map(|t| torus_to_word(poly[g.score_coefficient(t)], width));
                bitpack::pack_into(words, width, bytes);
            }
        });
        (out, timings)
    }

    /// The scan: `out[q]` is cut into one chunk of `per_block` elements per block (the last
    /// may be shorter), and `finish(block, poly, chunk)` turns each block's inverse
    /// transform into its chunk (and may overwrite the transform). Returns the time each
    /// phase took.
    fn scan<T: Send>(
        &self,
        batch: &PreparedBatch,
        out: &mut [&mut [T]],
        per_block: usize,
        finish: impl Fn(usize, &mut [u64], &mut [T]) + Sync,
    ) -> PassTimings {
        let g = &self.shape.geometry;
        let n = g.n;
        let half = n / 2;
        let tiles = half / TILE;
        let groups = g.groups();
        let chunk_len = CHUNK_BLOCKS * groups * TILE_F64;
        let stored = self.catalog.stored_blocks();
        let blocks = g.blocks();
        let nq = batch.len();
        let mut timings = PassTimings::default();
        if nq == 0 {
            return timings;
        }
        let batch = &batch.data;
        // One tile of the batch's query vectors (pair by pair, see `query_slot`).
        let tile_len = groups * nq * TILE_F64;
        let q_tile_of = |tile: usize| &batch[tile * tile_len..(tile + 1) * tile_len];
        let tuning = self.tuning;
        let span_blocks = tuning.span_blocks(nq, n);
        let gather_blocks = tuning.gather_blocks.max(1);
        let span_len = span_blocks.min(stored);
        // acc[tile][query][block of the span][8 re, 8 im]: each tile's results in one run.
        let acc_tile = nq * span_len * TILE_F64;
        let mut acc = Scratch::take(tiles * acc_tile);
        for first in (0..stored).step_by(span_blocks) {
            let started = Instant::now();
            let span = span_blocks.min(stored - first);
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
                    // The `len` values of the catalog from `from` on in this span, or, past
                    // its end, the next tile's first.
                    let ahead = |from: usize, len: usize| {
                        if from < data.len() {
                            &data[from..(from + len).min(data.len())]
                        } else {
                            &next_p[..len.min(next_p.len())]
                        }
                    };
                    let mut sums = vec![TileSums::default(); nq];
                    for (chunk, p) in data.chunks_exact(chunk_len).enumerate() {
                        if nq % 2 == 1 {
                            let next = ahead((chunk + 1) * chunk_len, chunk_len);
                            sums[nq - 1] = self.kernel.mac_tile(
                                &q_tile[query_slot(nq - 1, 0, nq, groups) * TILE_F64..],
                                TILE_F64,
                                p,
                                tuning.streaming_prefetch.then_some(if pairs == 0 {
                                    next
                                } else {
                                    &[]
                                }),
                            );
                        }
                        sums[..2 * pairs].fill(TileSums::default());
                        // A slice of the groups at a time: that slice of the chunk and of every
                        // query stays in L1 while every pair of queries passes over it, and the
                        // pairs prefetch the next slice of the chunk between them.
                        let slices = if pairs > 0 { groups } else { 0 };
                        for first_group in (0..slices).step_by(GROUP_SLICE) {
                            let gs = first_group..(first_group + GROUP_SLICE).min(groups);
                            let p_slice = &p[at(gs.start)..at(gs.end)];
                            let next = ahead(chunk * chunk_len + at(gs.end), slice_len);
                            let share = next.len().div_ceil(pairs).next_multiple_of(8);
                            for (pair, two) in sums.chunks_exact_mut(2).enumerate() {
                                let two: &mut [TileSums; 2] =
                                    two.try_into().expect("chunks of two");
                                let from = (call * q_share).min(next_q.len());
                                prefetch_l2(&next_q[from..(from + q_share).min(next_q.len())]);
                                call += 1;
                                let from = (pair * share).min(next.len());
                                self.kernel.mac_tile_pair(
                                    &q_tile
                                        [query_slot(2 * pair, gs.start, nq, groups) * TILE_F64..],
                                    2 * TILE_F64,
                                    p_slice,
                                    two,
                                    &next[from..(from + share).min(next.len())],
                                );
                            }
                        }
                        // Streaming stores: a store that missed would hold up the catalog's
                        // stream while its line is read in.
                        for (qi, s) in sums.iter().enumerate() {
                            for blk in 0..CHUNK_BLOCKS {
                                let at = (qi * span_len + chunk * CHUNK_BLOCKS + blk) * TILE_F64;
                                write_streaming(&mut acc[at..at + TILE], &s.re[blk]);
                                write_streaming(&mut acc[at + TILE..at + TILE_F64], &s.im[blk]);
                            }
                        }
                    }
                    store_fence();
                });
            let accumulated = Instant::now();
            timings.multiply_accumulate += accumulated - started;
            let real = blocks.min(first + span) - first;
            let acc = &*acc;
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
                        .par_chunks_mut(per_block * gather_blocks)
                        .enumerate()
                        .map(move |(run, chunk)| (qi, run * gather_blocks, chunk))
                })
                .for_each_init(
                    || {
                        (
                            NegacyclicFft::new(n),
                            vec![0u64; n],
                            vec![c64::new(0.0, 0.0); half * gather_blocks],
                        )
                    },
                    |(fft, poly, fourier), (qi, first_blk, chunk)| {
                        let run = chunk.len().div_ceil(per_block);
                        // fourier[block of the run][point]
                        for tile in 0..tiles {
                            let at = tile * acc_tile + (qi * span_len + first_blk) * TILE_F64;
                            let sums = &acc[at..at + run * TILE_F64];
                            if tuning.gather_ahead > 0 && tile + tuning.gather_ahead < tiles {
                                let ahead = at + tuning.gather_ahead * acc_tile;
                                prefetch_l2(&acc[ahead..ahead + run * TILE_F64]);
                            }
                            for (b, v) in sums.chunks_exact(TILE_F64).enumerate() {
                                let (re, im) = v.split_at(TILE);
                                let points = &mut fourier[b * half + tile * TILE..][..TILE];
                                for (i, z) in points.iter_mut().enumerate() {
                                    *z = c64::new(re[i], im[i]);
                                }
                            }
                        }
                        for (b, chunk) in chunk.chunks_mut(per_block).enumerate() {
                            fft.backward_torus_in_place(
                                poly,
                                &mut fourier[b * half..(b + 1) * half],
                            );
                            finish(first + first_blk + b, poly, chunk);
                        }
                    },
                );
            timings.inverse += accumulated.elapsed();
        }
        timings
    }
}

/// Where query `qi`'s vector of group `gi` sits within a tile of a batch of `nq`, in
/// vectors: queries in pairs (a last odd one alone), each pair group by group.
fn query_slot(qi: usize, gi: usize, nq: usize, groups: usize) -> usize {
    let first = qi / 2 * 2;
    first * groups + gi * pair_width(first, nq) + qi % 2
}

/// Queries in the pair that starts at query `first` of a batch of `nq`: 2, or 1 for a last
/// odd one.
fn pair_width(first: usize, nq: usize) -> usize {
    if first + 1 < nq {
        2
    } else {
        1
    }
}
