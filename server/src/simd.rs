//! The multiply-accumulate kernel of the scan, the one hot loop of the server.
//!
//! For one tile of 8 Fourier points it accumulates, for each of the 4 blocks of a chunk,
//! `sum_g Q_g * P_{block,g}` over all G query ciphertexts (complex products on split
//! re/im vectors). The AVX-512 version keeps 16 accumulators in registers (real and
//! imaginary parts each split in two chains to hide FMA latency) and loads each query
//! vector once for 4 blocks. The portable version computes the same sums; the raw f64
//! results may differ in the last bits (FMA rounds once), never the decrypted scores.

/// Fourier points per tile.
pub const TILE: usize = 8;
/// Blocks scanned together per chunk.
pub const CHUNK_BLOCKS: usize = 4;
/// f64 values per (tile, group) vector: 8 real parts then 8 imaginary parts.
pub const TILE_F64: usize = 2 * TILE;

/// Accumulated tile results: `re[block]` and `im[block]`, 8 points each.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TileSums {
    pub re: [[f64; TILE]; CHUNK_BLOCKS],
    pub im: [[f64; TILE]; CHUNK_BLOCKS],
}

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

    /// `q`: G vectors of [`TILE_F64`] (the query's tile). `p`: the chunk's tile,
    /// `CHUNK_BLOCKS * G` vectors, block-major.
    #[inline]
    pub fn mac_tile(self, q: &[f64], p: &[f64], groups: usize) -> TileSums {
        assert_eq!(q.len(), groups * TILE_F64);
        assert_eq!(p.len(), CHUNK_BLOCKS * groups * TILE_F64);
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                // SAFETY: `Kernel::Avx512` is only handed out by `detect`/`is_available`
                // after `is_x86_feature_detected!("avx512f")`, and the slice lengths were
                // checked above.
                unsafe { avx512::mac_tile(q, p, groups) }
            }
            _ => portable_mac_tile(q, p, groups),
        }
    }
}

fn portable_mac_tile(q: &[f64], p: &[f64], groups: usize) -> TileSums {
    let mut sums = TileSums::default();
    for blk in 0..CHUNK_BLOCKS {
        let pb = &p[blk * groups * TILE_F64..(blk + 1) * groups * TILE_F64];
        let mut re = [0.0f64; TILE];
        let mut im = [0.0f64; TILE];
        for (qv, pv) in q.chunks_exact(TILE_F64).zip(pb.chunks_exact(TILE_F64)) {
            let (q_re, q_im) = qv.split_at(TILE);
            let (p_re, p_im) = pv.split_at(TILE);
            for i in 0..TILE {
                re[i] += q_re[i] * p_re[i] - q_im[i] * p_im[i];
                im[i] += q_re[i] * p_im[i] + q_im[i] * p_re[i];
            }
        }
        sums.re[blk] = re;
        sums.im[blk] = im;
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F; `q` holds `groups * TILE_F64` and `p`
    /// `CHUNK_BLOCKS * groups * TILE_F64` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mac_tile(q: &[f64], p: &[f64], groups: usize) -> TileSums {
        let zero = _mm512_setzero_pd();
        // Per block: re = a - b, im = c + d, each term its own FMA chain.
        let mut re_a = [zero; CHUNK_BLOCKS];
        let mut re_b = [zero; CHUNK_BLOCKS];
        let mut im_c = [zero; CHUNK_BLOCKS];
        let mut im_d = [zero; CHUNK_BLOCKS];
        let block_stride = groups * TILE_F64;
        let qp = q.as_ptr();
        let pp = p.as_ptr();
        for g in 0..groups {
            // SAFETY: g < groups, so every offset below stays inside the slices whose
            // lengths the caller guarantees.
            unsafe {
                let q_re = _mm512_loadu_pd(qp.add(g * TILE_F64));
                let q_im = _mm512_loadu_pd(qp.add(g * TILE_F64 + TILE));
                for blk in 0..CHUNK_BLOCKS {
                    let base = pp.add(blk * block_stride + g * TILE_F64);
                    let p_re = _mm512_loadu_pd(base);
                    let p_im = _mm512_loadu_pd(base.add(TILE));
                    re_a[blk] = _mm512_fmadd_pd(q_re, p_re, re_a[blk]);
                    re_b[blk] = _mm512_fmadd_pd(q_im, p_im, re_b[blk]);
                    im_c[blk] = _mm512_fmadd_pd(q_re, p_im, im_c[blk]);
                    im_d[blk] = _mm512_fmadd_pd(q_im, p_re, im_d[blk]);
                }
            }
        }
        let mut sums = TileSums::default();
        for blk in 0..CHUNK_BLOCKS {
            // SAFETY: each destination is an array of exactly 8 f64.
            unsafe {
                _mm512_storeu_pd(sums.re[blk].as_mut_ptr(), _mm512_sub_pd(re_a[blk], re_b[blk]));
                _mm512_storeu_pd(sums.im[blk].as_mut_ptr(), _mm512_add_pd(im_c[blk], im_d[blk]));
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree() {
        let groups = 13;
        let q: Vec<f64> = (0..groups * TILE_F64).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
        let p: Vec<f64> = (0..CHUNK_BLOCKS * groups * TILE_F64).map(|i| ((i * 53 % 97) as f64 - 48.0) * 3.0).collect();
        let a = Kernel::Portable.mac_tile(&q, &p, groups);
        let k = Kernel::detect();
        let b = k.mac_tile(&q, &p, groups);
        for blk in 0..CHUNK_BLOCKS {
            for i in 0..TILE {
                assert!((a.re[blk][i] - b.re[blk][i]).abs() < 1e-9);
                assert!((a.im[blk][i] - b.im[blk][i]).abs() < 1e-9);
            }
        }
    }
}
