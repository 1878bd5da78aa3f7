//! Probes of this machine's physical limits (single-thread read bandwidth, FMA rate), so
//! benchmarks can state each figure's distance from them.

/// Sum of a buffer of f64, read once with wide loads, with or without software prefetch
/// (which helps one CPU and not another): bytes / time is the single-thread memory read
/// bandwidth (pass a buffer aligned to cache lines; take the faster of the two).
pub fn read_sum(buffer: &[f64], prefetch: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && buffer.len().is_multiple_of(32) {
            // SAFETY: AVX-512F detected; the length is a multiple of 32.
            return unsafe { avx512::read_sum(buffer, prefetch) };
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
            let r = unsafe { avx512::fma_burst(iterations, seed) };
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Values ahead (2 KiB) that the read probe requests its lines, as the scan's kernel
    /// does on the CPUs where that helps.
    const AHEAD: usize = 256;

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
