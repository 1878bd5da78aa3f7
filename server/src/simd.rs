//! The multiply-accumulate kernel of the scan, the one hot loop of the server.
//!
//! For one tile of 8 Fourier points it accumulates, for each of the [`CHUNK_BLOCKS`]
//! blocks of a chunk, `sum_g Q_g * P_{block,g}` over a run of query ciphertexts g (complex
//! products on split re/im vectors). The AVX-512 version keeps its accumulators in
//! registers (one query: real and imaginary parts each split in two chains to hide FMA
//! latency; a pair of queries: 24 accumulators, each catalog vector loaded once for both)
//! and loads each query vector once for the chunk's blocks. Every vector it loads sits on
//! a 64-byte boundary ([`aligned_zeros`]). The portable version computes the same sums;
//! the raw f64 results may differ in the last bits (FMA rounds once), never the decrypted
//! scores.

use blindscore_common::bitpack;
use blindscore_common::encoding::torus_to_word;

/// Fourier points per tile.
pub const TILE: usize = 8;
/// Blocks scanned together per chunk: 6 keeps a pair of queries' 24 accumulators, their
/// query vectors and one catalog vector within the 32 vector registers.
pub const CHUNK_BLOCKS: usize = 6;
/// f64 values per (tile, group) vector: 8 real parts then 8 imaginary parts.
pub const TILE_F64: usize = 2 * TILE;

/// f64 values on 64-byte boundaries: every vector the kernels load then sits in one cache
/// line (a load split across two lines costs two). A run of a zero-initialised `Vec` that
/// starts on a boundary, so a large one comes from the allocator as fresh zero pages,
/// cleared once by the kernel when first touched and never written twice.
pub struct AlignedF64 {
    buf: Vec<f64>,
    start: usize,
    len: usize,
}

impl AlignedF64 {
    /// Values the buffer can hold without reallocating.
    fn capacity(&self) -> usize {
        self.buf.len() - self.start
    }
}

impl std::ops::Deref for AlignedF64 {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedF64 {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// `len` zeros, 64-byte aligned. Large buffers ask the kernel for transparent huge pages
/// before they are touched: filling them then takes one page fault per 2 MiB instead of
/// per 4 KiB, and a scan streaming them misses the TLB far less often and is not stopped
/// by the hardware prefetchers at every 4 KiB boundary.
pub fn aligned_zeros(len: usize) -> AlignedF64 {
    const PER_LINE: usize = 64 / std::mem::size_of::<f64>();
    let mut buf = vec![0.0f64; len + PER_LINE];
    let start = buf.as_ptr().align_offset(64).min(PER_LINE);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = buf.len() * std::mem::size_of::<f64>();
        if bytes >= 2 * HUGE {
            let at = buf.as_mut_ptr() as usize;
            let first = at.next_multiple_of(HUGE);
            let end = (at + bytes) / HUGE * HUGE;
            if end > first {
                // SAFETY: [first, end) lies inside this vector's own allocation, and
                // MADV_HUGEPAGE only changes how its pages are backed, never their
                // contents; a refusal is harmless (the pages stay small).
                unsafe {
                    libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    AlignedF64 { buf, start, len }
}

/// A large aligned buffer of zeros taken from a small process-wide pool and given back on
/// drop, so a server scoring batch after batch reuses the same (huge) pages instead of
/// having the kernel fault, clear and possibly compact fresh ones for every pass. It is
/// zeroed when given back, so that no ciphertext of a pass lingers in it for the next.
pub struct Scratch(Option<AlignedF64>);

/// Buffers kept for reuse at most (the largest are kept).
const SCRATCH_KEPT: usize = 4;

static SCRATCH_POOL: std::sync::Mutex<Vec<AlignedF64>> = std::sync::Mutex::new(Vec::new());

impl Scratch {
    /// A buffer of `len` zeros: the smallest pooled one big enough, or a new one.
    pub fn take(len: usize) -> Self {
        let pooled = {
            let mut pool = SCRATCH_POOL.lock().unwrap_or_else(|e| e.into_inner());
            let best = (0..pool.len())
                .filter(|&i| pool[i].capacity() >= len)
                .min_by_key(|&i| pool[i].capacity());
            best.map(|i| pool.swap_remove(i))
        };
        let buffer = match pooled {
            // Zero beyond its last length too (see `drop`): only the length changes.
            Some(mut buffer) => {
                buffer.len = len;
                buffer
            }
            None => aligned_zeros(len),
        };
        Scratch(Some(buffer))
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f64] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut buffer) = self.0.take() {
            zero_streaming(&mut buffer);
            let mut pool = SCRATCH_POOL.lock().unwrap_or_else(|e| e.into_inner());
            pool.push(buffer);
            if pool.len() > SCRATCH_KEPT {
                // Let the smallest go.
                pool.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
                pool.truncate(SCRATCH_KEPT);
            }
        }
    }
}

/// Ask for the cache lines of `data` to be brought into L2 (a hint; never faults).
#[inline]
pub fn prefetch_l2(data: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(8) {
        // SAFETY: SSE is part of x86_64; a prefetch of any address is a harmless hint,
        // and this one is inside `data` anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr() as *const i8
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Copy `values` to `dst`, past the caches where it can (AVX-512, a 64-byte aligned
/// destination, whole cache lines): for large buffers written once and read much later,
/// whose lines would otherwise be read from memory just to be overwritten. Call
/// [`store_fence`] before another thread reads them.
///
/// # Safety
/// `dst` must be valid for `values.len()` writes and not overlap `values`.
pub unsafe fn copy_streaming(dst: *mut f64, values: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if avx512_detected() && (dst as usize).is_multiple_of(64) && values.len().is_multiple_of(8) {
        // SAFETY: AVX-512F was detected; the caller's guarantees cover the writes.
        unsafe { avx512::copy_streaming(dst, values) };
        return;
    }
    // SAFETY: the caller's guarantees.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), dst, values.len()) };
}

/// [`copy_streaming`] into a slice of the same length.
#[inline]
pub fn write_streaming(dst: &mut [f64], values: &[f64]) {
    assert_eq!(dst.len(), values.len());
    // SAFETY: `dst` is a distinct (mutably borrowed) slice of exactly `values.len()`.
    unsafe { copy_streaming(dst.as_mut_ptr(), values) };
}

/// Overwrite `data` with zeros, past the caches where it can (see [`copy_streaming`]): a
/// large buffer cleared for reuse need not be read in first.
pub fn zero_streaming(data: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if avx512_detected() {
        let head = data.as_ptr().align_offset(64).min(data.len());
        let (head, rest) = data.split_at_mut(head);
        head.fill(0.0);
        let lines = rest.len() / 8 * 8;
        let (lines, tail) = rest.split_at_mut(lines);
        // SAFETY: AVX-512F was detected; `lines` starts on a 64-byte boundary and holds
        // whole lines.
        unsafe { avx512::zero_streaming(lines) };
        tail.fill(0.0);
        store_fence();
        return;
    }
    data.fill(0.0);
}

/// Order this thread's streaming stores before its later stores (those that tell other
/// threads the work is done).
#[inline]
pub fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

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

    /// `p`: a run of groups of the chunk's tile, `CHUNK_BLOCKS` vectors per group. `q`: the
    /// query's vectors of the same groups, [`TILE_F64`] values each, `stride` values apart
    /// (a batch lays its queries out in pairs).
    /// Cache lines are requested a fixed distance ahead of the loads, past the end of `p`
    /// into `next` (what the next call reads), so memory streams while this runs.
    /// On CPUs whose hardware prefetchers stream the catalog faster without help (see
    /// [`streaming_prefetch`]), `next` is not used.
    #[inline]
    pub fn mac_tile(self, q: &[f64], stride: usize, p: &[f64], next: &[f64]) -> TileSums {
        let groups = p.len() / (CHUNK_BLOCKS * TILE_F64);
        assert_eq!(p.len(), CHUNK_BLOCKS * groups * TILE_F64);
        assert!(stride >= TILE_F64 && q.len() >= query_span(groups, stride, 1));
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 if avx512_detected() => {
                let next = streaming_prefetch().then_some(next);
                // SAFETY: AVX-512F was detected just now (a cached check), and the slice
                // lengths were checked above.
                unsafe { avx512::mac_tile(q, stride, p, groups, next) }
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
                unsafe { avx512::mac_tile_pair(q, stride, p, groups, sums, prefetch) }
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
            unsafe { avx512::pack_rounded(&torus[..done], width, &mut out[..bytes]) };
        }
        let rest = done / 8 * width as usize;
        let words = torus[done..].iter().map(|&t| torus_to_word(t, width));
        bitpack::pack_into(words, width, &mut out[rest..]);
    }
}

/// Whether the single-query kernel requests the catalog's lines ahead of its loads. On
/// Intel's Xeon that made one thread's stream faster (one query at 1M x 128: 2%); on AMD's
/// Zen 5 the hardware prefetchers do better alone (one query at 1M x 128: 33.4 -> 29.1 ms,
/// interleaved A/B). The batch kernel's requests of the next slice help on both.
#[cfg(target_arch = "x86_64")]
fn streaming_prefetch() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let id = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        vendor != b"AuthenticAMD"
    })
}

/// Whether this CPU has AVX-512F and BW (byte-masked stores).
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx512bw_detected() -> bool {
    avx512_detected() && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Whether this CPU has AVX-512F (`is_x86_feature_detected!` caches its answer). Checked
/// before every call of an AVX-512 kernel, so no `Kernel` value can run one without it.
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx512_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{TileSums, CHUNK_BLOCKS, TILE, TILE_F64};
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
        debug_assert!(
            torus.len().is_multiple_of(8) && out.len() == torus.len() / 8 * width as usize
        );
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

    /// Values ahead (2 KiB) that streaming reads request their lines: on Intel's Xeon one
    /// thread reads 1 GiB fastest this way (18.5 GB/s against 15.8 with no requests); on
    /// AMD's Zen 5 it makes no difference to a plain read (about 41 GB/s either way) and
    /// slows the single-query kernel (see `streaming_prefetch`).
    const AHEAD: usize = 256;

    /// Requests, for the vector a loop loads at offset `at` of `p`, the lines [`AHEAD`] values
    /// further on: in `p`, or past its end in `next`. One request per line read, each
    /// right beside the load it runs ahead of. On Intel's Xeon a 1 GiB stream read this way
    /// comes in as fast as a plain sequential read: 18.5 GB/s, against 17.5 with the same
    /// requests issued together at the start of each group and 13.7 with none (one query at
    /// 1M x 128: 2%).
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
            super::prefetch_l2(&self.region[from * 8..to * 8]);
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
    pub unsafe fn read_sum(buffer: &[f64], prefetch: bool) -> f64 {
        let mut acc = [_mm512_setzero_pd(); 4];
        let p = buffer.as_ptr();
        for i in (0..buffer.len()).step_by(32) {
            if prefetch && i + AHEAD + 32 <= buffer.len() {
                for k in 0..4 {
                    // SAFETY: a prefetch is a hint; this address is inside the buffer anyway.
                    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.add(i + AHEAD + 8 * k) as *const i8) };
                }
            }
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
    /// Sum of a buffer of f64, read once with wide loads, with or without software prefetch
    /// (which helps one CPU and not another): bytes / time is the single-thread memory read
    /// bandwidth (pass a buffer aligned to cache lines; take the faster of the two).
    pub fn read_sum(buffer: &[f64], prefetch: bool) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && buffer.len().is_multiple_of(32) {
                // SAFETY: AVX-512F detected; the length is a multiple of 32.
                return unsafe { super::avx512::read_sum(buffer, prefetch) };
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
    fn streaming_copies_are_exact_aligned_or_not() {
        let values: Vec<f64> = (0..100).map(|i| i as f64 * 1.5 - 7.0).collect();
        // Aligned whole lines (the streaming path where AVX-512 exists), then an odd
        // offset and an odd length (the plain copy).
        for (at, len) in [(0, 96), (16, 32), (3, 40), (8, 13)] {
            let mut out = aligned_zeros(128);
            // SAFETY: `at + len <= 128`, and the buffers are distinct.
            unsafe { copy_streaming(out.as_mut_ptr().add(at), &values[..len]) };
            store_fence();
            assert_eq!(&out[at..at + len], &values[..len]);
            assert!(out[..at].iter().chain(&out[at + len..]).all(|&v| v == 0.0));
        }
    }

    #[test]
    fn streaming_zeros_clear_exactly_their_slice() {
        for (from, to) in [(0, 128), (3, 120), (8, 13), (5, 6)] {
            let mut data = aligned_zeros(128);
            data.fill(2.5);
            zero_streaming(&mut data[from..to]);
            assert!(data[from..to].iter().all(|&v| v == 0.0));
            assert!(data[..from].iter().chain(&data[to..]).all(|&v| v == 2.5));
        }
    }

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
        let a = Kernel::Portable.mac_tile(&q, TILE_F64, &p, &[]);
        let k = Kernel::detect();
        let b = k.mac_tile(&q, TILE_F64, &p, &p);
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
        let e = Kernel::Portable.mac_tile(&q1, TILE_F64, &p, &[]);
        let f = k.mac_tile(&both[TILE_F64..], 2 * TILE_F64, &p, &[]);
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
