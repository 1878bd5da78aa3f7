//! The noise check: on worst-case input (every catalog value at its bound, all blocks
//! identical), scored by the server's real evaluator, the measured noise variance is
//! within 10% of the budget's prediction and the largest noise stays below Delta / 2, with
//! the margin printed.

use blindscore_common::digest::CatalogVersion;
use blindscore_common::masks::Masks;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire::{self, CatalogRef, QueryView, WIRE_VERSION};
use blindscore_common::{
    bitpack, CatalogShape, Layout, LayoutChoice, QuantizedCatalog, ResponseMessage,
};
use blindscore_server::{hint, Evaluator, FourierCatalog};

use super::SplitMix;
use crate::core::PreparedCatalog;

struct Measured {
    variance: f64,
    predicted: f64,
    max_abs: f64,
    limit: f64,
}

fn measure(layout: Layout, d: usize, round_response: bool, trials: usize) -> Measured {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    let per_block = n / layout.group_size();
    let mut rng = SplitMix(7);
    let block: Vec<i16> = (0..per_block * d).map(|_| rng.sign(127) as i16).collect();
    let catalog = QuantizedCatalog::new(d, 8, block.repeat(4)).unwrap();
    let mut shape =
        CatalogShape::for_catalog(DEFAULT_PARAMS, &catalog, 8, LayoutChoice::Fixed(layout))
            .unwrap();
    if !round_response {
        shape.budget.response_low = 0;
    }
    let r = CatalogRef {
        param_id: DEFAULT_PARAMS.id,
        catalog_id: "noise".into(),
        version: CatalogVersion([3; 32]),
    };
    let masks = Masks::derive(
        DEFAULT_PARAMS,
        &r.catalog_id,
        &r.version,
        shape.geometry.groups(),
    );
    let fourier = FourierCatalog::build(&shape, &catalog, &|_, _| {});
    let exact_hint = hint::exact_hint(&shape, &catalog, &masks, &|_, _| {});
    let prepared =
        PreparedCatalog::from_parts(r.clone(), shape, &hint::hint_words(&shape, &exact_hint));
    let evaluator = Evaluator::new(&shape, &fourier);
    let mut noise = Vec::new();
    for _ in 0..trials {
        let query: Vec<i32> = (0..d).map(|_| rng.sign(127)).collect();
        let sealed = prepared.seal_quantized(&query).unwrap();
        let message: QueryView<'_> = wire::decode_view(&sealed.bytes, u64::MAX).unwrap();
        let words = evaluator.score(&evaluator.prepare(&message).unwrap());
        let response = wire::encode(&ResponseMessage {
            wire_version: WIRE_VERSION,
            catalog: r.clone(),
            scores: bitpack::pack(&words, shape.budget.response_bits()),
        });
        let (scores, z) = sealed
            .pending
            .decrypt_with_noise(&prepared, &response)
            .unwrap();
        assert_eq!(scores, catalog.plaintext_scores(&query), "a score is wrong");
        noise.extend(z);
    }
    let variance = noise.iter().map(|z| z * z).sum::<f64>() / noise.len() as f64;
    let norm_sq = catalog.block_norm_sq(per_block) as f64;
    Measured {
        variance,
        predicted: shape.budget.predicted_variance(
            DEFAULT_PARAMS,
            norm_sq,
            shape.budget.response_low,
        ),
        max_abs: noise.iter().fold(0.0f64, |m, z| m.max(z.abs())),
        limit: shape.budget.noise_limit(),
    }
}

fn check(layout: Layout, d: usize, round_response: bool) {
    // All blocks are identical, so one query gives N/b independent-looking samples: take
    // enough queries (each under a fresh key) for about 12,000, a variance estimate good to
    // about 1.3%.
    let per_block = DEFAULT_PARAMS.polynomial_size.0 / layout.group_size();
    let trials = 12_288usize.div_ceil(per_block);
    let m = measure(layout, d, round_response, trials);
    let ratio = m.variance / m.predicted;
    println!(
        "{layout}, d = {d}, response {}: noise sd 2^{:.2} (predicted 2^{:.2}, ratio {ratio:.3}), max 2^{:.2} \
         against Delta/2 = 2^{:.2}: margin {:.2} bits",
        if round_response { "rounded" } else { "unrounded" },
        m.variance.log2() / 2.0,
        m.predicted.log2() / 2.0,
        m.max_abs.log2(),
        m.limit.log2(),
        (m.limit / m.max_abs).log2()
    );
    assert!(
        (ratio - 1.0).abs() < 0.10,
        "measured variance is {ratio:.3} x the prediction"
    );
    assert!(m.max_abs < m.limit);
}

#[test]
fn column_noise_matches_the_budget_before_response_rounding() {
    check(Layout::Column, 128, false);
}

#[test]
fn column_noise_matches_the_budget_on_the_wire() {
    check(Layout::Column, 128, true);
}

#[test]
fn grouped_noise_matches_the_budget() {
    check(Layout::Grouped(8), 128, false);
}
