//! The plaintext reference scan every encrypted timing is compared with (AVX-512 VNNI
//! where the CPU has it).

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
                unsafe { vnni::scan(&self.offset, query, correction, out) };
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

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI; `query.len()` is a multiple of 64
    /// and `catalog.len() == out.len() * query.len()`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn scan(catalog: &[u8], query: &[i8], correction: i32, out: &mut [i32]) {
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
}
