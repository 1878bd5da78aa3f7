//! The noise budget's FFT term against the real f64 error of the server's scan: at the
//! largest number of products a block sums in the Fourier domain (the column layout at
//! d = 4096, G = 4096), and at the demo catalog's and 1M x 128's shapes. Uniform bodies
//! (as real ones are) against worst-case blocks (every value at its bound, random signs),
//! the scan's output compared with tfhe's exact integer product.

mod common;

use blindscore_common::digest::CatalogVersion;
use blindscore_common::encoding::word_to_torus;
use blindscore_common::fourier::exact_add_mul;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire::{self, CatalogRef, WIRE_VERSION};
use blindscore_common::{
    bitpack, CatalogShape, Layout, LayoutChoice, QuantizedCatalog, QueryMessage,
};
use blindscore_server::scan::fourier_catalog::block_polynomial;
use blindscore_server::scan::{Evaluator, FourierCatalog};
use common::SplitMix;

/// The largest |FFT error| over every score of `blocks` worst-case blocks, and the budget's
/// bound on it, in units of the scores' modulus 2^hi.
fn measure(layout: Layout, d: usize, blocks: usize) -> (f64, f64, u32) {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    let items = blocks * n / layout.group_size();
    let mut rng = SplitMix(d as u64 * 31 + layout.group_size() as u64);
    // The widest values the budget admits for this shape.
    let (catalog, mut shape) = (2..=16u32)
        .rev()
        .find_map(|bits| {
            let max = ((1i32 << (bits - 1)) - 1) as i16;
            let values: Vec<i16> = (0..items * d)
                .map(|_| if rng.next() & 1 == 1 { max } else { -max })
                .collect();
            let catalog = QuantizedCatalog::new(d, bits, values).ok()?;
            let shape =
                CatalogShape::for_catalog(DEFAULT_PARAMS, &catalog, 8, LayoutChoice::Fixed(layout))
                    .ok()?;
            Some((catalog, shape))
        })
        .expect("some width fits");
    // Every bit of the output, so the error itself is seen.
    shape.budget.response_low = 0;
    let b = shape.budget;
    let g = shape.geometry;
    let r = CatalogRef {
        param_id: DEFAULT_PARAMS.id,
        catalog_id: "fft".into(),
        version: CatalogVersion([9; 32]),
    };
    let words: Vec<u64> = (0..g.query_coefficients())
        .map(|_| rng.next() >> (64 - b.query_bits()))
        .collect();
    let bytes = wire::encode(&QueryMessage {
        wire_version: WIRE_VERSION,
        catalog: r.clone(),
        bodies: bitpack::pack(&words, b.query_bits()),
    });
    let fourier = FourierCatalog::build(&shape, &catalog, &|_, _| {});
    let evaluator = Evaluator::new(&shape, &fourier);
    let scores = evaluator.score_one(&r, &bytes).unwrap();

    let torus: Vec<u64> = words
        .iter()
        .map(|&w| word_to_torus(w, b.query_bits()))
        .collect();
    let mut poly = vec![0u64; n];
    let mut worst = 0f64;
    for block in 0..g.blocks() {
        let mut exact = vec![0u64; n];
        for group in 0..g.groups() {
            block_polynomial(&g, &catalog, block, group, &mut poly);
            exact_add_mul(&mut exact, &torus[group * n..(group + 1) * n], &poly);
        }
        for t in 0..g.items_in_block(block) {
            let word = scores[block * g.items_per_block() + t];
            let want = exact[g.score_coefficient(t)];
            // Both as 2^64 torus values; their difference in units of 2^(64 - hi).
            let diff = word_to_torus(word, b.modulus_log2).wrapping_sub(want) as i64;
            worst = worst.max((diff as f64 / 2f64.powi(64 - b.modulus_log2 as i32)).abs());
        }
    }
    (worst, b.fft_bound, shape.catalog_bits)
}

fn check(layout: Layout, d: usize, blocks: usize) -> f64 {
    let (worst, bound, bits) = measure(layout, d, blocks);
    let ratio = worst / bound;
    println!(
        "{layout}, d = {d} ({} groups), {bits}-bit values, {blocks} blocks: FFT error at most 2^{:.2}, the budget's bound 2^{:.2} ({ratio:.3} of it)",
        d.div_ceil(layout.group_size()),
        worst.log2(),
        bound.log2()
    );
    assert!(worst < bound, "the FFT error exceeds the budget's bound");
    ratio
}

#[test]
fn the_fft_error_at_the_most_groups_stays_well_inside_the_bound() {
    // G = 4096: a block sums 4096 products in the Fourier domain. The largest error over
    // a block's 2,048 scores must leave room for the larger maximum over the 2^26 scores a
    // catalog may have (a Gaussian-like tail: about 1.5 times the maximum over 2,048).
    let ratio = check(Layout::Column, 4096, 1);
    assert!(ratio < 0.5, "{ratio:.3} of the bound over one block");
}

#[test]
fn the_fft_error_at_the_shapes_served_today() {
    // 1M x 128 in the column layout (G = 128), the demo catalog's grouped(b=128) (G = 1).
    check(Layout::Column, 128, 4);
    check(Layout::Grouped(128), 128, 4);
    check(Layout::Grouped(8), 384, 4);
}

/// The demo catalog's and 1M x 128's shapes, as the server chooses them from their real
/// norms under both budget revisions: the demo catalog (the layout objective's layout) gets the
/// same widths, layout, Delta and wire widths; 1M x 128 unit vectors in the column layout
/// lose one bit of catalog precision to revision 2's FFT term, which is why revision 2 is
/// a parameter row of its own (a new catalog version).
#[test]
fn the_shapes_served_today_under_both_budget_revisions() {
    use blindscore_common::api::Normalisation;
    use blindscore_common::catalog::widest_catalog;
    use blindscore_common::objective::Objective;
    use blindscore_common::params::GLWE_2048_TUNIFORM17_BUDGET1;
    use blindscore_demo::DemoCatalog;
    use blindscore_server::load::{demo_items, quantize_rows};

    let chosen = |catalog: &QuantizedCatalog, choice, params| {
        let (shape, narrow, _) = widest_catalog(params, catalog, 8, choice).unwrap();
        let b = shape.budget;
        (
            shape.layout,
            narrow.bits(),
            b.delta_log2,
            b.query_bits(),
            b.hint_bits(),
            b.response_bits(),
        )
    };
    let demo = demo_items(&DemoCatalog::load().unwrap()).unwrap().catalog;
    let auto = LayoutChoice::Auto(Objective::default());
    assert_eq!(
        chosen(&demo, auto, &GLWE_2048_TUNIFORM17_BUDGET1),
        chosen(&demo, auto, DEFAULT_PARAMS)
    );
    let ids = (0..1 << 20).map(|i| i.to_string()).collect();
    let rows = common::unit_rows(1 << 20, 128, 3);
    let million = quantize_rows(ids, &rows, 128, 16, Normalisation::L2)
        .unwrap()
        .catalog;
    let column = LayoutChoice::Fixed(Layout::Column);
    let (old, new) = (
        chosen(&million, column, &GLWE_2048_TUNIFORM17_BUDGET1),
        chosen(&million, column, DEFAULT_PARAMS),
    );
    println!("1M x 128 column: revision 1 {old:?}, revision 2 {new:?}");
    assert_eq!(
        (new.0, new.1 + 1),
        (old.0, old.1),
        "one bit of catalog precision"
    );
}
