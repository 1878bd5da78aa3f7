//! The fast encryption against tfhe's own seeded GLWE encryption, bit for bit, for a fixed
//! key, the public masks, and the noise tfhe drew injected into the fast path. A change in
//! tfhe's mask expansion or in the fast product fails here first.

use blindscore_common::digest::{mask_seed, CatalogVersion};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire::CatalogRef;
use blindscore_common::{CatalogShape, Layout};
use tfhe::core_crypto::commons::math::random::{CompressionSeed, RandomGenerator, Seed};
use tfhe::core_crypto::prelude::*;

use super::SplitMix;
use crate::core::key::SecretKey;
use crate::core::PreparedCatalog;

struct FixedSeeder(u128);

impl Seeder for FixedSeeder {
    fn seed(&mut self) -> Seed {
        Seed(self.0)
    }
    fn is_available() -> bool {
        true
    }
}

fn check_fast_encryption_equals_tfhe(layout: Layout, d: usize) {
    let params = DEFAULT_PARAMS;
    let n = params.polynomial_size.0;
    let shape = CatalogShape::new(params, layout, d, 3000, 8, 8, 0, -40).unwrap();
    let r = CatalogRef {
        param_id: DEFAULT_PARAMS.id,
        catalog_id: "kat".into(),
        version: CatalogVersion([7; 32]),
    };
    let hint = vec![0u64; shape.geometry.hint_coefficients()];
    let prepared = PreparedCatalog::from_parts(r.clone(), shape, &hint);
    let mut rng = SplitMix(99);
    let bits: Vec<u64> = (0..n).map(|_| rng.next() & 1).collect();
    let query: Vec<i32> = (0..d).map(|_| rng.value(127)).collect();
    let noise_seed = 0x1234_5678_9abc_def0_u128;

    // tfhe draws the noise of a seeded encryption from a generator seeded by the seeder,
    // body after body: the same stream, injected into the fast path.
    let tfhe_noise = |out: &mut [u64]| {
        RandomGenerator::<DefaultRandomGenerator>::new(Seed(noise_seed))
            .fill_slice_with_random_from_distribution(out, params.noise_distribution())
    };
    let (fast, _) = prepared
        .seal_with_key(SecretKey::from_bits(bits.clone()), tfhe_noise, &query)
        .unwrap();

    let groups = shape.geometry.groups();
    let b = shape.geometry.b;
    let mut encoded = vec![0u64; groups * n];
    for (dim, &u) in query.iter().enumerate() {
        encoded[(dim / b) * n + dim % b] = (u as i64 as u64) << shape.budget.delta_log2;
    }
    let key = GlweSecretKey::from_container(bits, params.polynomial_size);
    let mut seeded = SeededGlweCiphertextList::new(
        0u64,
        params.glwe_dimension.to_glwe_size(),
        params.polynomial_size,
        GlweCiphertextCount(groups),
        CompressionSeed::from(Seed(mask_seed(r.param_id, &r.catalog_id, &r.version))),
        CiphertextModulus::new_native(),
    );
    encrypt_seeded_glwe_ciphertext_list(
        &key,
        &mut seeded,
        &PlaintextList::from_container(encoded),
        params.noise_distribution(),
        &mut FixedSeeder(noise_seed),
    );
    let tfhe_bodies: &[u64] = seeded.as_ref();
    assert_eq!(tfhe_bodies.len(), fast.len());
    let differing = tfhe_bodies
        .iter()
        .zip(&fast)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} body coefficients differ",
        fast.len()
    );
}

#[test]
fn fast_encryption_equals_tfhe_seeded_encryption_column() {
    check_fast_encryption_equals_tfhe(Layout::Column, 128);
}

#[test]
fn fast_encryption_equals_tfhe_seeded_encryption_grouped() {
    check_fast_encryption_equals_tfhe(Layout::Grouped(8), 100);
}
