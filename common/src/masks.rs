//! The public masks a_g, bound to a catalog version.
//!
//! Client and server expand the same seed with tfhe's seeded mask generation: the server
//! by decompressing a `SeededGlweCiphertextList` with zero bodies (no key involved), the
//! client the same way, so both hold the a_g that tfhe's `encrypt_seeded_glwe_ciphertext_list`
//! would draw for that seed.

use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::{
    decompress_seeded_glwe_ciphertext_list, CiphertextModulus, ContiguousEntityContainer,
    DefaultRandomGenerator, GlweCiphertextCount, GlweCiphertextList, SeededGlweCiphertextList,
};

use crate::digest::{mask_seed, CatalogVersion};
use crate::params::{GlweParams, ParamId};

/// The masks of the G query ciphertexts of one catalog version: G polynomials of N
/// coefficients, flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masks {
    n: usize,
    values: Vec<u64>,
}

impl Masks {
    /// Expand the masks of `groups` ciphertexts for (parameters, catalog id, version).
    pub fn derive(
        params: &GlweParams,
        catalog_id: &str,
        version: &CatalogVersion,
        groups: usize,
    ) -> Self {
        let seed = mask_seed(params.id, catalog_id, version);
        Self::from_seed(params, seed, groups)
    }

    /// Expand the masks of `groups` ciphertexts from a raw seed.
    pub fn from_seed(params: &GlweParams, seed: u128, groups: usize) -> Self {
        assert_eq!(
            params.glwe_dimension.0, 1,
            "only k = 1 (RLWE) is in the parameter table"
        );
        let n = params.polynomial_size;
        let glwe_size = params.glwe_dimension.to_glwe_size();
        let seeded = SeededGlweCiphertextList::new(
            0u64,
            glwe_size,
            n,
            GlweCiphertextCount(groups),
            CompressionSeed::from(Seed(seed)),
            CiphertextModulus::new_native(),
        );
        let mut full = GlweCiphertextList::new(
            0u64,
            glwe_size,
            n,
            GlweCiphertextCount(groups),
            CiphertextModulus::new_native(),
        );
        decompress_seeded_glwe_ciphertext_list::<_, _, _, DefaultRandomGenerator>(
            &mut full, &seeded,
        );
        let mut values = Vec::with_capacity(groups * n.0);
        for ct in full.iter() {
            values.extend_from_slice(ct.get_mask().as_ref());
        }
        Masks { n: n.0, values }
    }

    /// The mask of ciphertext g.
    pub fn mask(&self, g: usize) -> &[u64] {
        &self.values[g * self.n..(g + 1) * self.n]
    }

    /// Number of ciphertexts.
    pub fn groups(&self) -> usize {
        self.values.len() / self.n
    }

    /// All masks, ciphertext after ciphertext.
    pub fn as_slice(&self) -> &[u64] {
        &self.values
    }
}

/// The seed a server and client use for a catalog, for display and tests.
pub fn seed_for(params: ParamId, catalog_id: &str, version: &CatalogVersion) -> u128 {
    mask_seed(params, catalog_id, version)
}
