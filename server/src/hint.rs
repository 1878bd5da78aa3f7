//! The catalog hint H_block = sum_g a_g * P_{block,g}, computed once per version with
//! exact integer arithmetic (tfhe's wrapping polynomial product) and cut to the budget's
//! hint width.
//!
//! The hint is the same for every client; a client subtracts H_block * s to decrypt. It
//! must be exact: an FFT error here would be multiplied by the key's ~N/2 ones.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use blindscore_common::encoding::to_word;
use blindscore_common::fourier::exact_add_mul;
use blindscore_common::masks::Masks;
use blindscore_common::{CatalogShape, QuantizedCatalog};

use crate::fourier_catalog::{block_polynomial, Progress};

/// The exact hint, block after block, N coefficients each, mod 2^64.
pub fn exact_hint(shape: &CatalogShape, catalog: &QuantizedCatalog, masks: &Masks, progress: Progress<'_>) -> Vec<u64> {
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

/// The hint's wire words: bits hint_low..hi of every coefficient.
pub fn hint_words(shape: &CatalogShape, hint: &[u64]) -> Vec<u64> {
    let b = &shape.budget;
    hint.iter().map(|&h| to_word(h, b.hint_low, b.modulus_log2)).collect()
}
