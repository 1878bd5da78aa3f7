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

impl Kernel {
    /// [`Kernel::mac_tile`] for two queries at once, over the groups `groups` of the
    /// `total` in the tile, added to `sums`: each catalog vector loaded serves both
    /// queries, and a batch can take the groups a slice at a time, so that slice of the
    /// chunk stays in L1 while every pair of queries passes over it.
    #[inline]
    pub fn mac_tile_pair(
        self,
        q: [&[f64]; 2],
        p: &[f64],
        total: usize,
        groups: std::ops::Range<usize>,
        sums: &mut [TileSums; 2],
    ) {
        assert_eq!(q[0].len(), total * TILE_F64);
        assert_eq!(q[1].len(), total * TILE_F64);
        assert_eq!(p.len(), CHUNK_BLOCKS * total * TILE_F64);
        assert!(groups.start <= groups.end && groups.end <= total);
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                // SAFETY: as in `mac_tile`: AVX-512F was detected, lengths and the group
                // range checked above.
                unsafe { avx512::mac_tile_pair(q, p, total, groups, sums) }
            }
            _ => {
                for (q, sums) in q.into_iter().zip(sums.iter_mut()) {
                    portable_accumulate(q, p, total, groups.clone(), sums);
                }
            }
        }
    }
}

fn portable_accumulate(
    q: &[f64],
    p: &[f64],
    total: usize,
    groups: std::ops::Range<usize>,
    sums: &mut TileSums,
) {
    for blk in 0..CHUNK_BLOCKS {
        let pb = &p[blk * total * TILE_F64..(blk + 1) * total * TILE_F64];
        let (re, im) = (&mut sums.re[blk], &mut sums.im[blk]);
        for g in groups.clone() {
            let (q_re, q_im) = q[g * TILE_F64..(g + 1) * TILE_F64].split_at(TILE);
            let (p_re, p_im) = pb[g * TILE_F64..(g + 1) * TILE_F64].split_at(TILE);
            for i in 0..TILE {
                re[i] += q_re[i] * p_re[i] - q_im[i] * p_im[i];
                im[i] += q_re[i] * p_im[i] + q_im[i] * p_re[i];
            }
        }
    }
}

fn portable_mac_tile(q: &[f64], p: &[f64], groups: usize) -> TileSums {
    let mut sums = TileSums::default();
    portable_accumulate(q, p, groups, 0..groups, &mut sums);
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
                _mm512_storeu_pd(
                    sums.re[blk].as_mut_ptr(),
                    _mm512_sub_pd(re_a[blk], re_b[blk]),
                );
                _mm512_storeu_pd(
                    sums.im[blk].as_mut_ptr(),
                    _mm512_add_pd(im_c[blk], im_d[blk]),
                );
            }
        }
        sums
    }

    /// # Safety
    /// The CPU must support AVX-512F; `q[0]` and `q[1]` hold `total * TILE_F64` and `p`
    /// `CHUNK_BLOCKS * total * TILE_F64` values, and `groups.end <= total`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mac_tile_pair(
        q: [&[f64]; 2],
        p: &[f64],
        total: usize,
        groups: std::ops::Range<usize>,
        sums: &mut [TileSums; 2],
    ) {
        // acc[query][block]: re accumulates q_re p_re - q_im p_im, im q_re p_im + q_im p_re.
        let mut re = [[_mm512_setzero_pd(); CHUNK_BLOCKS]; 2];
        let mut im = [[_mm512_setzero_pd(); CHUNK_BLOCKS]; 2];
        for k in 0..2 {
            for blk in 0..CHUNK_BLOCKS {
                // SAFETY: each source is an array of exactly 8 f64.
                unsafe {
                    re[k][blk] = _mm512_loadu_pd(sums[k].re[blk].as_ptr());
                    im[k][blk] = _mm512_loadu_pd(sums[k].im[blk].as_ptr());
                }
            }
        }
        let block_stride = total * TILE_F64;
        let pp = p.as_ptr();
        let qs = [q[0].as_ptr(), q[1].as_ptr()];
        for g in groups {
            // SAFETY: g < total keeps every offset inside the slices (caller's guarantee).
            unsafe {
                let q_re = [
                    _mm512_loadu_pd(qs[0].add(g * TILE_F64)),
                    _mm512_loadu_pd(qs[1].add(g * TILE_F64)),
                ];
                let q_im = [
                    _mm512_loadu_pd(qs[0].add(g * TILE_F64 + TILE)),
                    _mm512_loadu_pd(qs[1].add(g * TILE_F64 + TILE)),
                ];
                for blk in 0..CHUNK_BLOCKS {
                    let base = pp.add(blk * block_stride + g * TILE_F64);
                    let p_re = _mm512_loadu_pd(base);
                    let p_im = _mm512_loadu_pd(base.add(TILE));
                    for k in 0..2 {
                        re[k][blk] = _mm512_fmadd_pd(q_re[k], p_re, re[k][blk]);
                        re[k][blk] = _mm512_fnmadd_pd(q_im[k], p_im, re[k][blk]);
                        im[k][blk] = _mm512_fmadd_pd(q_re[k], p_im, im[k][blk]);
                        im[k][blk] = _mm512_fmadd_pd(q_im[k], p_re, im[k][blk]);
                    }
                }
            }
        }
        for (k, s) in sums.iter_mut().enumerate() {
            for blk in 0..CHUNK_BLOCKS {
                // SAFETY: each destination is an array of exactly 8 f64.
                unsafe {
                    _mm512_storeu_pd(s.re[blk].as_mut_ptr(), re[k][blk]);
                    _mm512_storeu_pd(s.im[blk].as_mut_ptr(), im[k][blk]);
                }
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI; `query.len()` is a multiple of 64
    /// and `catalog.len() == out.len() * query.len()`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn plaintext_scan_vnni(
        catalog: &[u8],
        query: &[i8],
        correction: i32,
        out: &mut [i32],
    ) {
        let d = query.len();
        // SAFETY (all loads below): each reads 64 bytes at offset k*64 < d of a row or of
        // the query, inside the slices by the caller's guarantees.
        let q: Vec<__m512i> = (0..d / 64)
            .map(|k| unsafe { _mm512_loadu_si512(query.as_ptr().add(k * 64) as *const __m512i) })
            .collect();
        let rows = out.len();
        let mut i = 0;
        while i + 4 <= rows {
            let mut acc = [_mm512_setzero_si512(); 4];
            for (k, qk) in q.iter().enumerate() {
                for (r, a) in acc.iter_mut().enumerate() {
                    let c = unsafe {
                        _mm512_loadu_si512(
                            catalog.as_ptr().add((i + r) * d + k * 64) as *const __m512i
                        )
                    };
                    *a = _mm512_dpbusd_epi32(*a, c, *qk);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                out[i + r] = _mm512_reduce_add_epi32(*a) - correction;
            }
            i += 4;
        }
        for (r, o) in out.iter_mut().enumerate().skip(i) {
            let mut acc = _mm512_setzero_si512();
            for (k, qk) in q.iter().enumerate() {
                let c = unsafe {
                    _mm512_loadu_si512(catalog.as_ptr().add(r * d + k * 64) as *const __m512i)
                };
                acc = _mm512_dpbusd_epi32(acc, c, *qk);
            }
            *o = _mm512_reduce_add_epi32(acc) - correction;
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F; `buffer.len()` is a multiple of 32.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn read_sum(buffer: &[f64]) -> f64 {
        let mut acc = [_mm512_setzero_pd(); 4];
        let p = buffer.as_ptr();
        for i in (0..buffer.len()).step_by(32) {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: i + 8k + 8 <= len since len is a multiple of 32.
                *a = _mm512_add_pd(*a, unsafe { _mm512_loadu_pd(p.add(i + 8 * k)) });
            }
        }
        _mm512_reduce_add_pd(_mm512_add_pd(
            _mm512_add_pd(acc[0], acc[1]),
            _mm512_add_pd(acc[2], acc[3]),
        ))
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_burst(iterations: u64, seed: f64) -> f64 {
        let mut acc = [_mm512_set1_pd(seed); 16];
        let m = _mm512_set1_pd(0.999_999);
        let c = _mm512_set1_pd(1e-9);
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_pd(*a, m, c);
            }
        }
        let mut total = _mm512_setzero_pd();
        for a in acc {
            total = _mm512_add_pd(total, a);
        }
        _mm512_reduce_add_pd(total)
    }
}

/// The plaintext reference scan: int8 item vectors, an int8 query, i32 dot products, the
/// figure every encrypted timing is compared with. Values are stored offset to unsigned
/// (c + 128) so that, with AVX-512 VNNI, one `vpdpbusd` does 64 multiply-adds; the offset
/// is removed with one per-query correction (128 * sum of the query).
pub struct PlaintextCatalog {
    dimension: usize,
    offset: Vec<u8>,
}

impl PlaintextCatalog {
    /// Lay out int8 rows (row-major, `dimension` values each).
    pub fn new(values: &[i8], dimension: usize) -> Self {
        assert_eq!(values.len() % dimension, 0);
        PlaintextCatalog {
            dimension,
            offset: values.iter().map(|&v| (v as i16 + 128) as u8).collect(),
        }
    }

    /// Number of items.
    pub fn items(&self) -> usize {
        self.offset.len() / self.dimension
    }

    /// `out[i] = sum_j c[i][j] * query[j]`.
    pub fn scan(&self, query: &[i8], out: &mut [i32]) {
        let d = self.dimension;
        assert_eq!(query.len(), d);
        assert_eq!(out.len(), self.items());
        let correction: i32 = 128 * query.iter().map(|&q| q as i32).sum::<i32>();
        #[cfg(target_arch = "x86_64")]
        {
            if d.is_multiple_of(64)
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: AVX-512F and VNNI were detected just above; d is a multiple of 64
                // and the lengths were checked.
                unsafe { avx512::plaintext_scan_vnni(&self.offset, query, correction, out) };
                return;
            }
        }
        for (row, o) in self.offset.chunks_exact(d).zip(out.iter_mut()) {
            *o = row
                .iter()
                .zip(query)
                .map(|(&c, &q)| c as i32 * q as i32)
                .sum::<i32>()
                - correction;
        }
    }
}

/// Probes of this machine's physical limits, so benchmarks can state each figure's
/// distance from them.
pub mod probe {
    /// Sum of a buffer of f64, read once with wide loads: bytes / time is the single-thread
    /// memory read bandwidth.
    pub fn read_sum(buffer: &[f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && buffer.len().is_multiple_of(32) {
                // SAFETY: AVX-512F detected; the length is a multiple of 32.
                return unsafe { super::avx512::read_sum(buffer) };
            }
        }
        buffer
            .chunks_exact(8)
            .fold([0.0; 8], |mut acc, c| {
                for i in 0..8 {
                    acc[i] += c[i];
                }
                acc
            })
            .iter()
            .sum()
    }

    /// Run `iterations` rounds of 16 independent 8-lane FMAs (AVX-512) and return the
    /// number of f64 FMAs done, to time the FMA rate. Falls back to scalar code.
    pub fn fma_burst(iterations: u64, seed: f64) -> (u64, f64) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F detected.
                let r = unsafe { super::avx512::fma_burst(iterations, seed) };
                return (iterations * 16 * 8, r);
            }
        }
        let mut acc = [seed; 16];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = a.mul_add(0.999_999, 1e-9);
            }
        }
        (iterations * 16, acc.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_scan_matches_scalar() {
        let d = 128;
        let catalog: Vec<i8> = (0..d * 103).map(|i| (i * 31 % 255) as i8).collect();
        let query: Vec<i8> = (0..d).map(|i| (i * 7 % 256) as u8 as i8).collect();
        let mut fast = vec![0; 103];
        PlaintextCatalog::new(&catalog, d).scan(&query, &mut fast);
        let slow: Vec<i32> = catalog
            .chunks(d)
            .map(|r| {
                r.iter()
                    .zip(&query)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum()
            })
            .collect();
        assert_eq!(fast, slow);
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
        let a = Kernel::Portable.mac_tile(&q, &p, groups);
        let k = Kernel::detect();
        let b = k.mac_tile(&q, &p, groups);
        let q1: Vec<f64> = q.iter().map(|x| x * -1.5).collect();
        // The pair kernel, over the groups in two slices.
        let mut pair = [TileSums::default(); 2];
        k.mac_tile_pair([&q, &q1], &p, groups, 0..5, &mut pair);
        k.mac_tile_pair([&q, &q1], &p, groups, 5..groups, &mut pair);
        let [c, d] = pair;
        let e = Kernel::Portable.mac_tile(&q1, &p, groups);
        for blk in 0..CHUNK_BLOCKS {
            for i in 0..TILE {
                assert!(
                    (a.re[blk][i] - c.re[blk][i]).abs() < 1e-9
                        && (a.im[blk][i] - c.im[blk][i]).abs() < 1e-9
                );
                assert!(
                    (e.re[blk][i] - d.re[blk][i]).abs() < 1e-9
                        && (e.im[blk][i] - d.im[blk][i]).abs() < 1e-9
                );
            }
        }
        for blk in 0..CHUNK_BLOCKS {
            for i in 0..TILE {
                assert!((a.re[blk][i] - b.re[blk][i]).abs() < 1e-9);
                assert!((a.im[blk][i] - b.im[blk][i]).abs() < 1e-9);
            }
        }
    }
}
