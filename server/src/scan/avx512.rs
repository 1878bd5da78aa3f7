//! The AVX-512 kernels of the scan: the multiply-accumulate of one query or a pair of
//! queries over a chunk, the rounding packer of the responses, and streaming stores. Every
//! function here is `unsafe` and needs the CPU features its `target_feature` names; the
//! safe wrappers in [`super::kernel`] and [`super::memory`] check them first
//! ([`super::cpu`]).

use super::tile::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};
use std::arch::x86_64::*;

/// Eight u64 lanes from an array, lane 0 first.
#[inline(always)]
fn lanes(values: [i64; 8]) -> __m512i {
    // SAFETY: an unaligned load of exactly the array's 64 bytes.
    unsafe { _mm512_loadu_si512(values.as_ptr() as *const _) }
}

/// # Safety
/// The CPU must support AVX-512F and BW; `1 <= width <= 32`; `torus` holds whole runs
/// of 8 values and `out` exactly `width` bytes for each.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn pack_rounded(torus: &[u64], width: u32, out: &mut [u8]) {
    debug_assert!((1..=32).contains(&width));
    debug_assert!(torus.len().is_multiple_of(8) && out.len() == torus.len() / 8 * width as usize);
    let w = width as i64;
    // Rounding: add half of the dropped part, keep the top `width` bits.
    let half = _mm512_set1_epi64(1 << (63 - w));
    let down = lanes([64 - w; 8]);
    // Each odd word beside its even one: 4 pairs of 2w <= 64 bits, in lanes 0, 2, 4, 6.
    let odd = lanes([0, w, 0, w, 0, w, 0, w]);
    // Each second pair beside its first: 2 quads of 4w <= 128 bits, in lanes 0-1 and
    // 4-5. (A shift by 64 or more gives zero, which clears the lanes not wanted.)
    let second = lanes([2, 2, 0, 0, 6, 6, 0, 0]);
    let second_lo = lanes([2 * w, 64, 64, 64, 2 * w, 64, 64, 64]);
    let second_hi = lanes([64, 64 - 2 * w, 64, 64, 64, 64 - 2 * w, 64, 64]);
    // The second quad 4w bits up, over lanes 0-3: its lanes move up by whole words
    // (`t`), then the rest of the shift (`r`) carries bits from each word to the next.
    let (t, r) = ((4 * w / 64) as usize, 4 * w % 64);
    let mut up_idx = [0i64; 8];
    let (mut up_mask, mut carry_mask) = (0u8, 0u8);
    let mut carry_idx = [0i64; 8];
    for i in 0..4 {
        if (t..t + 2).contains(&i) {
            up_idx[i] = (4 + i - t) as i64;
            up_mask |= 1 << i;
        }
        if (t + 1..t + 3).contains(&i) {
            carry_idx[i] = (4 + i - t - 1) as i64;
            carry_mask |= 1 << i;
        }
    }
    let (up_idx, carry_idx) = (lanes(up_idx), lanes(carry_idx));
    let (up_shift, carry_shift) = (lanes([r; 8]), lanes([64 - r; 8]));
    let store_mask: __mmask64 = (1u64 << width) - 1;
    for (run, dst) in torus
        .chunks_exact(8)
        .zip(out.chunks_exact_mut(width as usize))
    {
        // SAFETY: `run` is 8 values; the store writes the `width` bytes of `dst`.
        unsafe {
            let v = _mm512_loadu_si512(run.as_ptr() as *const _);
            let v = _mm512_srlv_epi64(_mm512_add_epi64(v, half), down);
            let v = _mm512_sllv_epi64(v, odd);
            let pairs = _mm512_or_si512(v, _mm512_bsrli_epi128::<8>(v));
            let x = _mm512_permutexvar_epi64(second, pairs);
            let quads = _mm512_or_si512(
                _mm512_maskz_mov_epi64(0x11, pairs),
                _mm512_or_si512(
                    _mm512_sllv_epi64(x, second_lo),
                    _mm512_srlv_epi64(x, second_hi),
                ),
            );
            let up = _mm512_maskz_permutexvar_epi64(up_mask, up_idx, quads);
            let carry = _mm512_maskz_permutexvar_epi64(carry_mask, carry_idx, quads);
            let packed = _mm512_or_si512(
                _mm512_maskz_mov_epi64(0x03, quads),
                _mm512_or_si512(
                    _mm512_sllv_epi64(up, up_shift),
                    _mm512_srlv_epi64(carry, carry_shift),
                ),
            );
            _mm512_mask_storeu_epi8(dst.as_mut_ptr() as *mut i8, store_mask, packed);
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F; `p` holds `CHUNK_BLOCKS * groups * TILE_F64` values
/// and, when `groups > 0`, `q` holds `(groups - 1) * stride + TILE_F64`.
#[target_feature(enable = "avx512f")]
pub unsafe fn mac_tile(
    q: &[f64],
    stride: usize,
    p: &[f64],
    groups: usize,
    next: Option<&[f64]>,
) -> TileSums {
    let zero = _mm512_setzero_pd();
    // Per block: re = a - b, im = c + d, each term its own FMA chain.
    let mut re_a = [zero; CHUNK_BLOCKS];
    let mut re_b = [zero; CHUNK_BLOCKS];
    let mut im_c = [zero; CHUNK_BLOCKS];
    let mut im_d = [zero; CHUNK_BLOCKS];
    let qp = q.as_ptr();
    let pp = p.as_ptr();
    let ahead = next.map(|next| Ahead { p, next });
    for g in 0..groups {
        // SAFETY: g < groups, so every offset below stays inside the slices whose
        // lengths the caller guarantees.
        unsafe {
            let q_re = _mm512_loadu_pd(qp.add(g * stride));
            let q_im = _mm512_loadu_pd(qp.add(g * stride + TILE));
            for blk in 0..CHUNK_BLOCKS {
                let at = (g * CHUNK_BLOCKS + blk) * TILE_F64;
                if let Some(ahead) = &ahead {
                    ahead.issue(at);
                }
                let base = pp.add(at);
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
/// The CPU must support AVX-512F; `p` holds `CHUNK_BLOCKS * groups * TILE_F64` values
/// and, when `groups > 0`, `q` holds `(groups - 1) * stride + 2 * TILE_F64`.
#[target_feature(enable = "avx512f")]
pub unsafe fn mac_tile_pair(
    q: &[f64],
    stride: usize,
    p: &[f64],
    groups: usize,
    sums: &mut [TileSums; 2],
    prefetch: &[f64],
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
    let prefetches = Prefetches::new(prefetch, groups);
    let pp = p.as_ptr();
    let qs = [q.as_ptr(), q.as_ptr().wrapping_add(TILE_F64)];
    for g in 0..groups {
        prefetches.issue(g);
        // SAFETY: g < groups keeps every offset inside the slices (caller's guarantee).
        unsafe {
            let q_re = [
                _mm512_loadu_pd(qs[0].add(g * stride)),
                _mm512_loadu_pd(qs[1].add(g * stride)),
            ];
            let q_im = [
                _mm512_loadu_pd(qs[0].add(g * stride + TILE)),
                _mm512_loadu_pd(qs[1].add(g * stride + TILE)),
            ];
            for blk in 0..CHUNK_BLOCKS {
                let base = pp.add((g * CHUNK_BLOCKS + blk) * TILE_F64);
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
/// The CPU must support AVX-512F; `dst` is 64-byte aligned, valid for `values.len()`
/// writes (a multiple of 8) and does not overlap `values`.
#[target_feature(enable = "avx512f")]
pub unsafe fn copy_streaming(dst: *mut f64, values: &[f64]) {
    for (i, line) in values.chunks_exact(8).enumerate() {
        // SAFETY: line i lies inside both buffers by the caller's guarantees, and
        // the destination is aligned.
        unsafe { _mm512_stream_pd(dst.add(i * 8), _mm512_loadu_pd(line.as_ptr())) };
    }
}

/// # Safety
/// The CPU must support AVX-512F; `data` starts on a 64-byte boundary and its length
/// is a multiple of 8.
#[target_feature(enable = "avx512f")]
pub unsafe fn zero_streaming(data: &mut [f64]) {
    let zero = _mm512_setzero_pd();
    for line in data.chunks_exact_mut(8) {
        // SAFETY: each line is 8 values inside `data`, 64-byte aligned.
        unsafe { _mm512_stream_pd(line.as_mut_ptr(), zero) };
    }
}

/// Values ahead (2 KiB) that streaming reads request their lines: the distance at which
/// one thread's stream reads fastest on Intel's Xeon. AMD's Zen 5 gains nothing from the
/// requests, and the single-query kernel leaves them out there (see `streaming_prefetch`).
const AHEAD: usize = 256;

/// Requests, for the vector a loop loads at offset `at` of `p`, the lines [`AHEAD`] values
/// further on: in `p`, or past its end in `next`. One request per line read, each right
/// beside the load it runs ahead of: spread out like this, they keep the stream as fast as
/// a plain sequential read, which the same requests bunched at the start of a group do not.
struct Ahead<'a> {
    p: &'a [f64],
    next: &'a [f64],
}

impl Ahead<'_> {
    #[inline(always)]
    fn issue(&self, at: usize) {
        let to = at + AHEAD;
        let line = if to < self.p.len() {
            self.p.as_ptr().wrapping_add(to)
        } else if to - self.p.len() + TILE_F64 <= self.next.len() {
            self.next.as_ptr().wrapping_add(to - self.p.len())
        } else {
            return;
        };
        for half in [0, TILE] {
            // SAFETY: a prefetch is a hint that never faults; this address is inside
            // `p` or `next` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(half) as *const i8) };
        }
    }
}

/// The cache lines of a region, prefetched into L2 a share per group of the loop.
struct Prefetches<'a> {
    region: &'a [f64],
    per_group: usize,
}

impl<'a> Prefetches<'a> {
    fn new(region: &'a [f64], groups: usize) -> Self {
        Prefetches {
            region,
            per_group: (region.len() / 8).div_ceil(groups.max(1)),
        }
    }

    #[inline(always)]
    fn issue(&self, g: usize) {
        let lines = self.region.len() / 8;
        let from = (g * self.per_group).min(lines);
        let to = ((g + 1) * self.per_group).min(lines);
        for line in self.region[from * 8..to * 8].chunks(8) {
            // SAFETY: a prefetch is a hint that never faults; this address is inside the
            // region anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(line.as_ptr() as *const i8) };
        }
    }
}
