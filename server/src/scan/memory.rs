//! Memory for the scan: 64-byte-aligned buffers, one pool that reuses them from pass to
//! pass, the streaming stores and prefetches the kernels rely on, and a slice that parallel
//! tasks write in disjoint runs.
//!
//! The pool holds the scan's large temporaries (a batch's transformed queries, the span's
//! accumulators) and the response messages. Written into fresh memory, every page of such
//! a buffer costs a fault and a clear by the kernel; a buffer given back is already mapped
//! (in huge pages where the kernel granted them). Given back, a buffer is zeroed, so no
//! ciphertext of one pass lingers in memory for the next (response words reveal nothing
//! without the query's key: the zeroing keeps them from lingering, it is not what privacy
//! rests on).

use std::sync::Mutex;

/// f64 values on 64-byte boundaries: every vector the kernels load then sits in one cache
/// line (a load split across two lines costs two). A run of a zero-initialised `Vec` that
/// starts on a boundary, so a large one comes from the allocator as fresh zero pages,
/// cleared once by the kernel when first touched and never written twice.
#[derive(Default)]
pub struct AlignedF64 {
    buf: Vec<f64>,
    start: usize,
    len: usize,
}

impl AlignedF64 {
    /// Values the buffer can hold without reallocating.
    pub fn capacity(&self) -> usize {
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

/// Buffers kept for reuse at most: a pass of 16 queries needs its 16 responses, the
/// transformed queries and the accumulators.
const KEPT: usize = 20;

/// A kept buffer serves only requests of at least 1/FIT of its capacity. Were a pass's
/// accumulators (tens of MiB, every page touched) lent to a response of a few hundred KiB,
/// the next pass would map a new set, and the process would hold ever more of them: what
/// the pool keeps stays within the sizes the passes ask for.
const FIT: usize = 2;

/// Smaller buffers are not worth keeping (the allocator serves them from memory it
/// already has).
const SMALLEST_KEPT_BYTES: usize = 64 << 10;

/// The process-wide pool.
static POOL: Pool = Pool::new();

/// Zeroed aligned buffers kept for reuse. Every value of a kept buffer, up to its
/// capacity, is zero.
pub(crate) struct Pool(Mutex<Vec<AlignedF64>>);

impl Pool {
    pub(crate) const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    /// `len` zeros: in the smallest kept buffer that fits (big enough, and at most
    /// [`FIT`] times `len`), or in a new one.
    pub(crate) fn take(&self, len: usize) -> AlignedF64 {
        let kept = {
            let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
            (0..pool.len())
                .filter(|&i| (len..=len.saturating_mul(FIT)).contains(&pool[i].capacity()))
                .min_by_key(|&i| pool[i].capacity())
                .map(|i| pool.remove(i))
        };
        match kept {
            // Zero up to its capacity (see `give`): only the length changes.
            Some(mut buffer) => {
                buffer.len = len;
                buffer
            }
            None => aligned_zeros(len),
        }
    }

    /// Zero `buffer` and keep it, if it is worth keeping; when the pool is full, the
    /// buffer given back longest ago goes (the pool follows the sizes in use now).
    pub(crate) fn give(&self, mut buffer: AlignedF64) {
        if buffer.capacity() * std::mem::size_of::<f64>() < SMALLEST_KEPT_BYTES {
            return;
        }
        zero_streaming(&mut buffer);
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(buffer);
        if pool.len() > KEPT {
            pool.remove(0);
        }
    }
}

/// Bytes the process-wide pool holds for reuse (its buffers' capacities).
pub fn pooled_bytes() -> usize {
    let pool = POOL.0.lock().unwrap_or_else(|e| e.into_inner());
    pool.iter().map(|b| b.capacity()).sum::<usize>() * std::mem::size_of::<f64>()
}

/// Bytes of the heap in use now: allocated and not freed (glibc's count; `None` where it
/// is not available). Unlike the resident size it leaves out what the allocator keeps
/// after a free, so between two idle moments it grows only if memory is held on to.
pub fn heap_in_use_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics (under its locks).
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// `len` zero f64 values, 64-byte aligned, from the process-wide pool and given back to it
/// (zeroed) when dropped.
pub struct Scratch(AlignedF64);

impl Scratch {
    /// A buffer of `len` zeros.
    pub fn take(len: usize) -> Self {
        Scratch(POOL.take(len))
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        POOL.give(std::mem::take(&mut self.0));
    }
}

/// `len` zero bytes in a [`Scratch`] buffer (64-byte aligned, pooled, zeroed when given
/// back).
pub struct ScratchBytes {
    values: Scratch,
    len: usize,
}

impl ScratchBytes {
    /// `len` zero bytes.
    pub fn take(len: usize) -> Self {
        ScratchBytes {
            values: Scratch::take(len.div_ceil(std::mem::size_of::<f64>())),
            len,
        }
    }
}

impl std::ops::Deref for ScratchBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.values)[..self.len]
    }
}

impl std::ops::DerefMut for ScratchBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.values)[..self.len]
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
    if super::cpu::avx512_detected()
        && (dst as usize).is_multiple_of(64)
        && values.len().is_multiple_of(8)
    {
        // SAFETY: AVX-512F was detected; the caller's guarantees cover the writes.
        unsafe { super::avx512::copy_streaming(dst, values) };
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
    if super::cpu::avx512_detected() {
        let head = data.as_ptr().align_offset(64).min(data.len());
        let (head, rest) = data.split_at_mut(head);
        head.fill(0.0);
        let lines = rest.len() / 8 * 8;
        let (lines, tail) = rest.split_at_mut(lines);
        // SAFETY: AVX-512F was detected; `lines` starts on a 64-byte boundary and holds
        // whole lines.
        unsafe { super::avx512::zero_streaming(lines) };
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

/// Exclusive access to some disjoint runs of a slice, for one parallel task: what
/// [`split_disjoint`] hands out. Writes go past the caches where they can (see
/// [`copy_streaming`]); the task must call [`store_fence`] before it signals that it is
/// done.
pub struct DisjointRuns<'a> {
    ptr: *mut f64,
    runs: Vec<std::ops::Range<usize>>,
    _slice: std::marker::PhantomData<&'a mut [f64]>,
}

// SAFETY: a `DisjointRuns` is the only access to its runs of the slice (see
// `split_disjoint`), so moving it to another thread shares nothing.
unsafe impl Send for DisjointRuns<'_> {}

impl DisjointRuns<'_> {
    /// Copy `values` into run `i`, which must be exactly as long.
    pub fn write(&mut self, i: usize, values: &[f64]) {
        let run = &self.runs[i];
        assert_eq!(
            run.len(),
            values.len(),
            "a write of another length than its run"
        );
        // SAFETY: the run lies inside the slice and overlaps no other run of any
        // `DisjointRuns` split from it (both checked by `split_disjoint`); `&mut self`
        // makes this the only write to it now, and `values` cannot alias the slice, which
        // is mutably borrowed for the lifetime of `self`.
        unsafe { copy_streaming(self.ptr.add(run.start), values) };
    }
}

/// Cut `slice` into one [`DisjointRuns`] per task, task `t` owning the runs `runs[t]`.
///
/// # Panics
/// If a run reaches past the slice's end or two runs overlap.
pub fn split_disjoint(
    slice: &mut [f64],
    runs: Vec<Vec<std::ops::Range<usize>>>,
) -> Vec<DisjointRuns<'_>> {
    let mut all: Vec<&std::ops::Range<usize>> = runs.iter().flatten().collect();
    all.sort_unstable_by_key(|r| r.start);
    let mut end = 0;
    for run in all {
        assert!(run.start >= end, "overlapping runs");
        end = end.max(run.end);
    }
    assert!(end <= slice.len(), "a run past the end of the slice");
    let ptr = slice.as_mut_ptr();
    runs.into_iter()
        .map(|runs| DisjointRuns {
            ptr,
            runs,
            _slice: std::marker::PhantomData,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_kept_buffer_is_reused_zeroed_and_sized() {
        let pool = Pool::new();
        let len = SMALLEST_KEPT_BYTES / 8 + 100;
        let mut dirty = pool.take(len);
        dirty.fill(3.0);
        let address = dirty.as_ptr();
        assert_eq!(address as usize % 64, 0, "aligned");
        pool.give(dirty);
        let shorter = pool.take(len - 50);
        assert_eq!(shorter.as_ptr(), address, "the kept buffer is reused");
        assert_eq!(shorter.len(), len - 50);
        assert!(
            shorter.iter().all(|&v| v == 0.0),
            "stale values in a reused buffer"
        );
        pool.give(shorter);
        let longer = pool.take(len);
        assert_eq!(longer.as_ptr(), address, "the same buffer, grown back");
        assert!(longer.iter().all(|&v| v == 0.0));
        assert_ne!(pool.take(len).as_ptr(), address, "the pool is empty again");
    }

    #[test]
    fn small_buffers_are_not_kept_and_a_full_pool_lets_the_oldest_go() {
        let pool = Pool::new();
        let small = pool.take(SMALLEST_KEPT_BYTES / 16);
        pool.give(small);
        assert!(pool.0.lock().unwrap().is_empty());
        let large = SMALLEST_KEPT_BYTES / 8;
        // Given back largest first: the oldest is not the smallest.
        let buffers: Vec<AlignedF64> = (1..=KEPT + 1).map(|i| pool.take(i * large)).collect();
        let oldest = buffers[KEPT].as_ptr();
        for b in buffers.into_iter().rev() {
            pool.give(b);
        }
        let kept = pool.0.lock().unwrap();
        assert_eq!(kept.len(), KEPT);
        assert!(
            kept.iter().all(|b| b.as_ptr() != oldest),
            "the buffer given back first went"
        );
    }

    #[test]
    fn a_large_buffer_is_not_lent_to_a_small_request() {
        let pool = Pool::new();
        let len = SMALLEST_KEPT_BYTES / 8;
        let large = pool.take(FIT * len + 8);
        let address = large.as_ptr();
        pool.give(large);
        let small = pool.take(len);
        assert_ne!(
            small.as_ptr(),
            address,
            "a buffer over FIT times the request"
        );
        let fitting = pool.take(len * FIT);
        assert_eq!(fitting.as_ptr(), address, "within FIT times: reused");
    }

    #[test]
    fn disjoint_runs_write_their_own_places() {
        let mut data = aligned_zeros(64);
        let runs = vec![vec![0..8, 32..40], vec![8..16], vec![]];
        let mut parts = split_disjoint(&mut data, runs);
        parts[0].write(1, &[1.0; 8]);
        parts[1].write(0, &[2.0; 8]);
        store_fence();
        drop(parts);
        assert!(data[32..40].iter().all(|&v| v == 1.0));
        assert!(data[8..16].iter().all(|&v| v == 2.0));
        assert!(data[..8]
            .iter()
            .chain(&data[16..32])
            .chain(&data[40..])
            .all(|&v| v == 0.0));
    }

    #[test]
    #[should_panic(expected = "overlapping runs")]
    fn overlapping_runs_are_refused() {
        let mut data = vec![0.0; 32];
        split_disjoint(&mut data, vec![vec![0..10], vec![8..16]]);
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn runs_past_the_end_are_refused() {
        let mut data = vec![0.0; 32];
        split_disjoint(&mut data, vec![vec![30..40]]);
    }

    #[test]
    fn scratch_bytes_are_zero_and_sized() {
        let mut bytes = ScratchBytes::take(1001);
        assert_eq!(bytes.len(), 1001);
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[1000] = 7;
        assert_eq!(bytes[1000], 7);
    }
}
