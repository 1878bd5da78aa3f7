//! The multiply-accumulate kernel of the scan, the one hot loop of the server.
//!
//! For one tile of 8 Fourier points it accumulates, for each of the [`CHUNK_BLOCKS`]
//! blocks of a chunk, `sum_g Q_g * P_{block,g}` over a run of query ciphertexts g (complex
//! products on split re/im vectors). The AVX-512 version keeps its accumulators in
//! registers (one query: real and imaginary parts each split in two chains to hide FMA
//! latency; a pair of queries: 24 accumulators, each catalog vector loaded once for both)
//! and loads each query vector once for the chunk's blocks. Every vector it loads sits on
//! a 64-byte boundary ([`aligned_zeros`](super::memory::aligned_zeros)). The portable version computes the same sums;
//! the raw f64 results may differ in the last bits (FMA rounds once), never the decrypted
//! scores.

use blindscore_common::bitpack;
use blindscore_common::encoding::torus_to_word;

#[cfg(target_arch = "x86_64")]
use super::cpu::{avx512_detected, avx512bw_detected};
use super::tile::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};

/// Which kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Explicit AVX-512F intrinsics.
    Avx512,
    /// Plain Rust, left to the compiler.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
        }
        Kernel::Portable
    }

    /// Whether this kernel can run on this CPU.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::Avx512 => Kernel::detect() == Kernel::Avx512,
        }
    }

    /// `p`: a run of groups of the chunk's tile, `CHUNK_BLOCKS` vectors per group. `q`: the
    /// query's vectors of the same groups, [`TILE_F64`] values each, `stride` values apart
    /// (a batch lays its queries out in pairs).
    /// With `next` (what the next call reads), cache lines are requested a fixed distance
    /// ahead of the loads, past the end of `p` into `next`, so memory streams while this
    /// runs; without, the hardware prefetchers stream alone (see
    /// [`Tuning::streaming_prefetch`](super::Tuning)).
    #[inline]
    pub fn mac_tile(self, q: &[f64], stride: usize, p: &[f64], next: Option<&[f64]>) -> TileSums {
        let groups = p.len() / (CHUNK_BLOCKS * TILE_F64);
        assert_eq!(p.len(), CHUNK_BLOCKS * groups * TILE_F64);
        assert!(stride >= TILE_F64 && q.len() >= query_span(groups, stride, 1));
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 if avx512_detected() => {
                // SAFETY: AVX-512F was detected just now (a cached check), and the slice
                // lengths were checked above.
                unsafe { super::avx512::mac_tile(q, stride, p, groups, next) }
            }
            _ => {
                let _ = next;
                let mut sums = TileSums::default();
                portable_accumulate(q, stride, p, &mut sums);
                sums
            }
        }
    }

    /// [`Kernel::mac_tile`] for two queries at once, added to `sums`: each catalog vector
    /// loaded serves both queries, whose vectors sit side by side in `q` (`stride` values
    /// from one group to the next). `q` and `p` may start at any group (the same one), so a
    /// batch can take a chunk a slice at a time and keep that slice in L1 while every pair
    /// of queries passes over it. The cache lines of `prefetch` (the data the next calls
    /// will read) are requested along the way, so memory streams while this runs.
    #[inline]
    pub fn mac_tile_pair(
        self,
        q: &[f64],
        stride: usize,
        p: &[f64],
        sums: &mut [TileSums; 2],
        prefetch: &[f64],
    ) {
        let groups = p.len() / (CHUNK_BLOCKS * TILE_F64);
        assert_eq!(p.len(), CHUNK_BLOCKS * groups * TILE_F64);
        assert!(stride >= 2 * TILE_F64 && q.len() >= query_span(groups, stride, 2));
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 if avx512_detected() => {
                // SAFETY: as in `mac_tile`: AVX-512F was detected and the lengths checked
                // above; prefetches never fault.
                unsafe { super::avx512::mac_tile_pair(q, stride, p, groups, sums, prefetch) }
            }
            _ if groups == 0 => {}
            _ => {
                let _ = prefetch;
                portable_accumulate(q, stride, p, &mut sums[0]);
                portable_accumulate(&q[TILE_F64..], stride, p, &mut sums[1]);
            }
        }
    }

    /// Round top-aligned torus values to their top `width` bits and pack the words, least
    /// significant bit first: the bytes of [`bitpack::pack_into`] over
    /// [`torus_to_word`]s, in one pass. `out` must be exactly
    /// [`packed_len`](blindscore_common::layout::packed_len) of `torus.len()` words long.
    /// The AVX-512 version packs each run of 8 words (`width` bytes) in registers, for
    /// widths up to 32 bits (a response word is about 24).
    pub fn pack_rounded(self, torus: &[u64], width: u32, out: &mut [u8]) {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Avx512 && width <= 32 && avx512bw_detected() {
            done = torus.len() / 8 * 8;
            let bytes = done / 8 * width as usize;
            assert!(
                width >= 1 && out.len() >= bytes,
                "pack_rounded: output too short"
            );
            // SAFETY: AVX-512F and BW were detected; `out` holds the `width` bytes of each
            // of the `done / 8` runs (checked above).
            unsafe { super::avx512::pack_rounded(&torus[..done], width, &mut out[..bytes]) };
        }
        let rest = done / 8 * width as usize;
        let words = torus[done..].iter().map(|&t| torus_to_word(t, width));
        bitpack::pack_into(words, width, &mut out[rest..]);
    }
}

/// Values of `q` that `count` side-by-side queries' vectors of `groups` groups span.
/// Panics when that does not fit a `usize` (a slice that long cannot exist).
fn query_span(groups: usize, stride: usize, count: usize) -> usize {
    match groups {
        0 => 0,
        _ => (groups - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(count * TILE_F64))
            .expect("query span overflows"),
    }
}

/// `sums += sum_g q_g * p_{g,block}` for each block of the chunk (p group-major, the
/// query's vectors `stride` values apart).
fn portable_accumulate(q: &[f64], stride: usize, p: &[f64], sums: &mut TileSums) {
    // Block by block, so one block's sums stay in registers over the whole reduction.
    for blk in 0..CHUNK_BLOCKS {
        let (mut re, mut im) = (sums.re[blk], sums.im[blk]);
        for (g, pg) in p.chunks_exact(CHUNK_BLOCKS * TILE_F64).enumerate() {
            let (q_re, q_im) = q[g * stride..g * stride + TILE_F64].split_at(TILE);
            let (p_re, p_im) = pg[blk * TILE_F64..(blk + 1) * TILE_F64].split_at(TILE);
            for i in 0..TILE {
                re[i] += q_re[i] * p_re[i] - q_im[i] * p_im[i];
                im[i] += q_re[i] * p_im[i] + q_im[i] * p_re[i];
            }
        }
        (sums.re[blk], sums.im[blk]) = (re, im);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_matches_the_generic_packer_at_every_width() {
        use blindscore_common::layout::packed_len;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let torus: Vec<u64> = (0..203)
            .map(|i| match i % 7 {
                // Worst cases for the rounding: all ones (wraps to zero), the top bit,
                // exactly half of the dropped part at width 24.
                0 => u64::MAX,
                1 => 1 << 63,
                2 => 1 << 39,
                _ => {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                }
            })
            .collect();
        for width in 1..=64 {
            for len in [0, 5, 8, 64, 203] {
                let torus = &torus[..len];
                let expected = bitpack::pack(
                    &torus
                        .iter()
                        .map(|&t| torus_to_word(t, width))
                        .collect::<Vec<_>>(),
                    width,
                );
                for kernel in [Kernel::Portable, Kernel::detect()] {
                    let mut out = vec![0xa5; packed_len(len, width)];
                    kernel.pack_rounded(torus, width, &mut out);
                    assert_eq!(out, expected, "{kernel:?}, width {width}, {len} words");
                }
            }
        }
    }

    #[test]
    fn kernels_agree() {
        let groups = 13;
        let q: Vec<f64> = (0..groups * TILE_F64)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let p: Vec<f64> = (0..CHUNK_BLOCKS * groups * TILE_F64)
            .map(|i| ((i * 53 % 97) as f64 - 48.0) * 3.0)
            .collect();
        let a = Kernel::Portable.mac_tile(&q, TILE_F64, &p, None);
        let k = Kernel::detect();
        let b = k.mac_tile(&q, TILE_F64, &p, Some(&p));
        let q1: Vec<f64> = q.iter().map(|x| x * -1.5).collect();
        // Both queries interleaved, group by group.
        let both: Vec<f64> = q
            .chunks_exact(TILE_F64)
            .zip(q1.chunks_exact(TILE_F64))
            .flat_map(|(x, y)| x.iter().chain(y))
            .copied()
            .collect();
        // The pair kernel, over the groups in two slices, prefetching the second.
        let mut pair = [TileSums::default(); 2];
        let (qa, qb) = both.split_at(5 * 2 * TILE_F64);
        let (pa, pb) = p.split_at(5 * CHUNK_BLOCKS * TILE_F64);
        k.mac_tile_pair(qa, 2 * TILE_F64, pa, &mut pair, pb);
        k.mac_tile_pair(qb, 2 * TILE_F64, pb, &mut pair, &[]);
        let [c, d] = pair;
        let e = Kernel::Portable.mac_tile(&q1, TILE_F64, &p, None);
        let f = k.mac_tile(&both[TILE_F64..], 2 * TILE_F64, &p, None);
        let close = |x: &TileSums, y: &TileSums| {
            (0..CHUNK_BLOCKS).all(|blk| {
                (0..TILE).all(|i| {
                    (x.re[blk][i] - y.re[blk][i]).abs() < 1e-9
                        && (x.im[blk][i] - y.im[blk][i]).abs() < 1e-9
                })
            })
        };
        assert!(close(&a, &b) && close(&a, &c) && close(&e, &d) && close(&e, &f));
    }
}
