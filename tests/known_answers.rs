//! Known-answer tests: the masks for a fixed (parameter id, catalog id, version), and the
//! exact hint against tfhe's integer product. A silent change in tfhe's mask expansion
//! fails here first. (The fast encryption against tfhe's seeded encryption, which needs a
//! chosen key, is a unit test of the client crate.)

mod common;

use blindscore_common::digest::{mask_seed, CatalogVersion};
use blindscore_common::masks::Masks;
use blindscore_common::params::{ParamId, DEFAULT_PARAMS};
use blindscore_common::wire::CatalogRef;
use blindscore_common::{CatalogShape, Layout};
use common::SplitMix;

fn kat_ref() -> CatalogRef {
    CatalogRef {
        param_id: ParamId(1),
        catalog_id: "kat".into(),
        version: CatalogVersion([7; 32]),
    }
}

#[test]
fn mask_seed_and_first_mask_coefficients() {
    let r = kat_ref();
    let seed = mask_seed(r.param_id, &r.catalog_id, &r.version);
    // The masks of parameter row 1, for which these values were recorded.
    let params = blindscore_common::params::lookup(r.param_id).unwrap();
    let masks = Masks::derive(params, &r.catalog_id, &r.version, 2);
    assert_eq!(seed, KAT_SEED);
    assert_eq!(&masks.mask(0)[..4], &KAT_MASK0);
    assert_eq!(&masks.mask(1)[..2], &KAT_MASK1);
    // The masks of the first ciphertexts do not depend on how many are expanded.
    let more = Masks::derive(params, &r.catalog_id, &r.version, 5);
    assert_eq!(more.mask(1), masks.mask(1));
}

// Recorded with tfhe 1.8.2; a different value means the seed derivation or tfhe's mask
// expansion changed, and every score of every deployed client would be garbage.
const KAT_SEED: u128 = 0x76a4d5eb3fba8d17d5f9898f56f1c640;
const KAT_MASK0: [u64; 4] = [
    0xc134e997e4044251,
    0x608fa8295f30f807,
    0xd8492c74e70389ba,
    0x8b0bfe50ec2a3bdd,
];
const KAT_MASK1: [u64; 2] = [0x6a394536b3e02022, 0x3dc93d8703cda6d2];

/// The FFT-on-limbs hint equals tfhe's integer polynomial product bit for bit on
/// worst-case blocks: every value at its bound (16-bit and 8-bit catalogs, all +max and
/// random signs), the largest group counts.
#[test]
fn fft_hint_equals_integer_hint_on_worst_case_blocks() {
    use blindscore_common::{LayoutChoice, QuantizedCatalog};
    use blindscore_server::scan::hint::{exact_hint, exact_hint_integer, limb_bits};
    let r = kat_ref();
    for (bits, d, layout) in [
        (16u32, 256usize, Layout::Column),
        (8, 1024, Layout::Column),
        (12, 512, Layout::Grouped(4)),
    ] {
        let max = ((1i32 << (bits - 1)) - 1) as i16;
        let per_block = 2048 / layout.group_size();
        let mut rng = SplitMix(bits as u64);
        let flat = vec![max; per_block * d];
        let signed: Vec<i16> = (0..per_block * d)
            .map(|_| if rng.next() & 1 == 1 { max } else { -max })
            .collect();
        for values in [flat, signed] {
            let catalog = QuantizedCatalog::new(d, bits, values.repeat(2)).unwrap();
            // The budget may refuse such a catalog for scoring; the hint must be exact anyway.
            let geometry =
                blindscore_common::Geometry::new(2048, layout, d, catalog.items()).unwrap();
            let shape =
                CatalogShape::for_catalog(DEFAULT_PARAMS, &catalog, 2, LayoutChoice::Fixed(layout))
                    .unwrap_or_else(|_| {
                        let mut s =
                            CatalogShape::new(DEFAULT_PARAMS, layout, 4, 2, 8, 8, 0, -40).unwrap();
                        s.geometry = geometry;
                        s.catalog_bits = bits;
                        s
                    });
            let masks = Masks::derive(
                DEFAULT_PARAMS,
                &r.catalog_id,
                &r.version,
                shape.geometry.groups(),
            );
            let fast = exact_hint(&shape, &catalog, &masks, &|_, _| {});
            let reference = exact_hint_integer(&shape, &catalog, &masks, &|_, _| {});
            let differing = fast.iter().zip(&reference).filter(|(a, b)| a != b).count();
            assert_eq!(
                differing,
                0,
                "{bits}-bit, d = {d}, {layout}, {} bits per limb",
                limb_bits(&shape)
            );
        }
    }
}
