//! The catalog hint H_block = sum_g a_g * P_{block,g}, computed once per version, exactly,
//! and cut to the budget's hint width.
//!
//! Exactness comes from limbs: a_g = sum_l A_{g,l} 2^(L l) with A_{g,l} < 2^L, and L chosen
//! so that every coefficient of `sum_g A_{g,l} * P_g` is below 2^40 in absolute value.
//! Those sums are computed with the f64 FFT (accumulated in the Fourier domain, one inverse
//! transform per limb and block) and are integers far inside f64's 53-bit range, so
//! rounding recovers them exactly; they are then shifted and added mod 2^64. A test checks
//! the result bit for bit against tfhe's integer polynomial product
//! ([`exact_hint_integer`]) on worst-case blocks.
//!
//! The hint is the same for every client; a client subtracts H_block * s to decrypt. It
//! must be exact: an FFT error here would be multiplied by the key's ~N/2 ones.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use blindscore_common::encoding::to_word;
use blindscore_common::fourier::{
    c64, exact_add_mul, limb_count, mask_limb_transforms, NegacyclicFft,
};
use blindscore_common::masks::Masks;
use blindscore_common::{CatalogShape, QuantizedCatalog};

use super::fourier_catalog::{block_polynomial, Progress};

/// Largest |coefficient| of a limb sum, log2: far below f64's 53 bits, so the FFT's
/// rounding error (a few ulps times log N) cannot reach 1/2.
const LIMB_SUM_LOG2: u32 = 40;

/// Bits per mask limb for a catalog shape: the largest L with G * N * 2^L * max|c| <= 2^40.
pub fn limb_bits(shape: &CatalogShape) -> u32 {
    let g = &shape.geometry;
    let used = (g.groups() as f64 * g.n as f64 * shape.catalog_max_abs() as f64)
        .log2()
        .ceil() as u32;
    LIMB_SUM_LOG2.saturating_sub(used).clamp(1, 32)
}

/// The exact hint, block after block, N coefficients each, mod 2^64 (FFT on limbs).
pub fn exact_hint(
    shape: &CatalogShape,
    catalog: &QuantizedCatalog,
    masks: &Masks,
    progress: Progress<'_>,
) -> Vec<u64> {
    let geometry = shape.geometry;
    let n = geometry.n;
    let half = n / 2;
    let groups = geometry.groups();
    let limb = limb_bits(shape);
    let limbs = limb_count(limb);
    // Transforms of every limb of every mask, as torus elements (value * 2^-64), so that
    // the inverse transform returns the integer limb sums directly.
    let mut mask_limbs = vec![c64::new(0.0, 0.0); groups * limbs * half];
    mask_limbs
        .par_chunks_mut(limbs * half)
        .enumerate()
        .for_each_init(
            || (NegacyclicFft::new(n), vec![0u64; n]),
            |(fft, poly), (g, out)| mask_limb_transforms(fft, masks.mask(g), limb, poly, out),
        );
    let total = geometry.blocks();
    let done = AtomicUsize::new(0);
    let mut hint = vec![0u64; total * n];
    hint.par_chunks_mut(n).enumerate().for_each_init(
        || {
            (
                NegacyclicFft::new(n),
                vec![0u64; n],
                vec![c64::new(0.0, 0.0); half],
                vec![c64::new(0.0, 0.0); limbs * half],
            )
        },
        |(fft, poly, p, acc), (block, h)| {
            acc.fill(c64::new(0.0, 0.0));
            for g in 0..groups {
                block_polynomial(&geometry, catalog, block, g, poly);
                fft.forward_integer(p, poly);
                let a = &mask_limbs[g * limbs * half..(g + 1) * limbs * half];
                for (acc, a) in acc.chunks_exact_mut(half).zip(a.chunks_exact(half)) {
                    for ((o, x), y) in acc.iter_mut().zip(a).zip(p.iter()) {
                        *o += x * y;
                    }
                }
            }
            for (l, sum) in acc.chunks_exact(half).enumerate() {
                fft.backward_torus(poly, sum);
                let shift = limb as usize * l;
                for (h, x) in h.iter_mut().zip(poly.iter()) {
                    *h = h.wrapping_add(x.wrapping_shl(shift as u32));
                }
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        },
    );
    hint
}

/// The same hint with tfhe's integer (Karatsuba) polynomial product: the reference the
/// FFT path is checked against, and far slower than it.
pub fn exact_hint_integer(
    shape: &CatalogShape,
    catalog: &QuantizedCatalog,
    masks: &Masks,
    progress: Progress<'_>,
) -> Vec<u64> {
    let geometry = shape.geometry;
    let n = geometry.n;
    let total = geometry.blocks();
    let done = AtomicUsize::new(0);
    let mut hint = vec![0u64; total * n];
    hint.par_chunks_mut(n).enumerate().for_each_init(
        || vec![0u64; n],
        |poly, (block, h)| {
            for g in 0..geometry.groups() {
                block_polynomial(&geometry, catalog, block, g, poly);
                exact_add_mul(h, masks.mask(g), poly);
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        },
    );
    hint
}

/// The hint's wire payload for a catalog (or one shard's share, whole blocks of it): the
/// exact hint cut to its words and bit-packed. Each block is N words, a whole number of
/// bytes, so the payloads of consecutive shares join into the whole catalog's.
pub fn packed_hint(
    shape: &CatalogShape,
    catalog: &QuantizedCatalog,
    masks: &Masks,
    progress: Progress<'_>,
) -> Vec<u8> {
    let mut words = exact_hint(shape, catalog, masks, progress);
    cut_to_words(shape, &mut words);
    blindscore_common::bitpack::pack(&words, shape.budget.hint_bits())
}

/// Cut the exact hint, in place, to its wire words.
pub fn cut_to_words(shape: &CatalogShape, hint: &mut [u64]) {
    let b = &shape.budget;
    hint.iter_mut()
        .for_each(|h| *h = to_word(*h, b.hint_low, b.modulus_log2));
}

/// The hint's wire words: bits hint_low..hi of every coefficient.
pub fn hint_words(shape: &CatalogShape, hint: &[u64]) -> Vec<u64> {
    let b = &shape.budget;
    hint.iter()
        .map(|&h| to_word(h, b.hint_low, b.modulus_log2))
        .collect()
}
