//! A catalog version prepared for querying: its checked shape, the transforms of its
//! public masks and of its hint. All of it is public and cacheable per version; none of it
//! depends on a key.

use blindscore_common::digest::sha256;
use blindscore_common::encoding::word_to_torus;
use blindscore_common::fourier::{c64, NegacyclicFft};
use blindscore_common::masks::Masks;
use blindscore_common::wire::{self, CatalogRef};
use blindscore_common::{bitpack, CatalogDescription, CatalogShape, HintMessage, ProtocolError};

use crate::error::ClientError;

/// Limbs a mask coefficient is split into for the exact product a_g * s.
pub(crate) const LIMBS: usize = 3;
/// Bits per limb: a limb times a binary key sums to at most 2^22 * N = 2^33, far inside
/// f64's exact range even after the FFT's rounding, so the product is exact.
pub(crate) const LIMB_BITS: u32 = 22;

/// Room for a message's header around its payload when decoding.
pub(crate) const HEADER_ALLOWANCE: u64 = 4096;

/// One catalog version, ready to encrypt queries for and decrypt responses from.
pub struct PreparedCatalog {
    pub(crate) catalog: CatalogRef,
    pub(crate) shape: CatalogShape,
    /// For each group g and limb l, the transform of limb l of a_g (N/2 points each).
    pub(crate) mask_limbs: Vec<c64>,
    /// For each block, the transform of the top-aligned hint (N/2 points each).
    pub(crate) hint: Vec<c64>,
}

impl PreparedCatalog {
    /// Check a description and its hint (digest, catalog, version, lengths) and prepare.
    /// Every number the server sent is range-checked and the budget recomputed from the
    /// compiled-in parameter table.
    pub fn new(description: &CatalogDescription, hint_bytes: &[u8]) -> Result<Self, ClientError> {
        let shape = description.shape()?;
        if sha256(hint_bytes) != description.hint_digest {
            return Err(ProtocolError::DigestMismatch(
                "the hint's SHA-256 differs from the description's",
            )
            .into());
        }
        let limit = shape.hint_payload_bytes() as u64 + HEADER_ALLOWANCE;
        let hint: HintMessage = wire::decode(hint_bytes, limit)?;
        hint.check(&description.catalog, &shape)?;
        let words = bitpack::unpack(
            &hint.words,
            shape.budget.hint_bits(),
            shape.geometry.hint_coefficients(),
            "hint",
        )?;
        Ok(Self::from_parts(description.catalog.clone(), shape, &words))
    }

    /// Prepare from a shape the caller computed itself and hint words at the shape's hint
    /// width (no checks: for callers that built both, such as tests and benchmarks).
    pub fn from_parts(catalog: CatalogRef, shape: CatalogShape, hint_words: &[u64]) -> Self {
        let g = shape.geometry;
        let n = g.n;
        let half = n / 2;
        let mut fft = NegacyclicFft::new(n);
        let masks = Masks::derive(
            shape.params,
            &catalog.catalog_id,
            &catalog.version,
            g.groups(),
        );
        let mut mask_limbs = vec![c64::new(0.0, 0.0); g.groups() * LIMBS * half];
        let mut limb = vec![0u64; n];
        for (gi, out) in mask_limbs.chunks_exact_mut(LIMBS * half).enumerate() {
            let a = masks.mask(gi);
            for (l, out) in out.chunks_exact_mut(half).enumerate() {
                for (x, y) in limb.iter_mut().zip(a) {
                    *x = (y >> (LIMB_BITS * l as u32)) & ((1 << LIMB_BITS) - 1);
                }
                fft.forward_torus(out, &limb);
            }
        }
        let width = shape.budget.hint_bits();
        let mut hint = vec![c64::new(0.0, 0.0); g.blocks() * half];
        let mut torus = vec![0u64; n];
        for (out, words) in hint.chunks_exact_mut(half).zip(hint_words.chunks_exact(n)) {
            for (t, w) in torus.iter_mut().zip(words) {
                *t = word_to_torus(*w, width);
            }
            fft.forward_torus(out, &torus);
        }
        PreparedCatalog {
            catalog,
            shape,
            mask_limbs,
            hint,
        }
    }

    /// The catalog version this was prepared for.
    pub fn catalog(&self) -> &CatalogRef {
        &self.catalog
    }

    /// Shape and budget.
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }
}
