//! The noise checks, on worst-case input scored by the server's real evaluator: the
//! budget's own figures (random variance, deterministic bound, the tail its failure
//! exponent rests on) against the parts of the measured noise; and the whole noise's
//! variance against the budget's prediction across layouts, the largest noise below
//! Delta / 2, with the margin printed.

use blindscore_common::digest::CatalogVersion;
use blindscore_common::masks::Masks;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire::{self, CatalogRef, QueryView, WIRE_VERSION};
use blindscore_common::{
    bitpack, CatalogShape, Layout, LayoutChoice, QuantizedCatalog, ResponseMessage,
};
use blindscore_server::scan::{hint, Evaluator, FourierCatalog};

use super::SplitMix;
use crate::core::noise::NoiseSource;
use crate::core::PreparedCatalog;

struct Measured {
    variance: f64,
    predicted: f64,
    max_abs: f64,
    limit: f64,
}

fn measure(layout: Layout, d: usize, round_response: bool, trials: usize) -> Measured {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    let mut rng = SplitMix(7);
    let per_block = n / layout.group_size();
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
        let words = evaluator.score_one(&r, &sealed.bytes).unwrap();
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
    let b = shape.budget;
    // The budget's random variance, and (on the wire) the response's rounding, uniform over
    // the budget's 2^response_low.
    let response = if b.response_low > 0 {
        2f64.powi(2 * b.response_low as i32) / 12.0
    } else {
        0.0
    };
    Measured {
        variance,
        predicted: b.random_variance + response,
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

/// The budget's own numbers against measurement on worst-case input (every catalog value
/// at its bound, the response rounded as on the wire): each score's noise is split
/// exactly into its random part (fresh noise, query rounding, the hint's rounding times
/// the key's deviation from 1/2) and its deterministic part (response rounding, the hint's
/// rounding times 1/2, FFT error), from the known key, noise, bodies and exact hint. The
/// random part's variance is the budget's `random_variance` within 10%; its tail obeys the
/// Bernstein bound the failure exponent rests on; the deterministic part stays within
/// `deterministic_bound`; and `failure_log2` is what the budget's figures give.
#[test]
fn the_budgets_own_numbers_hold_on_worst_case_input() {
    use blindscore_common::encoding::word_to_torus;
    use blindscore_common::fourier::exact_add_mul;
    use blindscore_server::scan::fourier_catalog::block_polynomial;

    use crate::core::key::SecretKey;

    let params = DEFAULT_PARAMS;
    let n = params.polynomial_size.0;
    let (layout, d) = (Layout::Column, 128);
    let mut rng = SplitMix(11);
    let block: Vec<i16> = (0..n * d).map(|_| rng.sign(127) as i16).collect();
    let catalog = QuantizedCatalog::new(d, 8, block.repeat(2)).unwrap();
    let shape =
        CatalogShape::for_catalog(params, &catalog, 8, LayoutChoice::Fixed(layout)).unwrap();
    let (b, g) = (shape.budget, shape.geometry);
    let r = CatalogRef {
        param_id: params.id,
        catalog_id: "budget".into(),
        version: CatalogVersion([4; 32]),
    };
    let masks = Masks::derive(params, &r.catalog_id, &r.version, g.groups());
    let fourier = FourierCatalog::build(&shape, &catalog, &|_, _| {});
    let exact_hint = hint::exact_hint(&shape, &catalog, &masks, &|_, _| {});
    let words = hint::hint_words(&shape, &exact_hint);
    let prepared = PreparedCatalog::from_parts(r.clone(), shape, &words);
    let evaluator = Evaluator::new(&shape, &fourier);
    let hi = b.modulus_log2;
    let to_t = |x: u64| x << (64 - hi);
    let unit = 2f64.powi(64 - hi as i32);
    // The hint's rounding, per block, in 2^64 units.
    let rh: Vec<u64> = exact_hint
        .iter()
        .zip(&words)
        .map(|(&h, &w)| to_t(h).wrapping_sub(word_to_torus(w, b.hint_bits())))
        .collect();
    // The catalog polynomials of every block and group.
    let mut polys = vec![vec![0u64; n]; g.blocks() * g.groups()];
    for (i, p) in polys.iter_mut().enumerate() {
        block_polynomial(&g, &catalog, i / g.groups(), i % g.groups(), p);
    }
    let ones = vec![1u64; n];
    let (mut random, mut deterministic) = (Vec::new(), 0f64);
    for trial in 0..6 {
        let bits: Vec<u64> = (0..n).map(|_| rng.next() & 1).collect();
        let query: Vec<i32> = (0..d).map(|_| rng.sign(127)).collect();
        let noise_source = NoiseSource::from_seed(&[trial as u8; 32], params.noise_bound_log2);
        let mut noise = vec![0u64; g.query_coefficients()];
        NoiseSource::from_seed(&[trial as u8; 32], params.noise_bound_log2).fill(&mut noise);
        let (bodies, sealed) = prepared
            .seal_with_key(
                SecretKey::from_bits(bits.clone()),
                move |out| {
                    let mut s = noise_source;
                    s.fill(out)
                },
                &query,
            )
            .unwrap();
        let message: QueryView<'_> = wire::decode_view(&sealed.bytes, u64::MAX).unwrap();
        let sent =
            bitpack::unpack(message.bodies, b.query_bits(), g.query_coefficients(), "q").unwrap();
        let scores = evaluator.score_one(&r, &sealed.bytes).unwrap();
        let response = wire::encode(&ResponseMessage {
            wire_version: WIRE_VERSION,
            catalog: r.clone(),
            scores: bitpack::pack(&scores, b.response_bits()),
        });
        let (decrypted, z) = sealed
            .pending
            .decrypt_with_noise(&prepared, &response)
            .unwrap();
        assert_eq!(decrypted, catalog.plaintext_scores(&query));
        for block in 0..g.blocks() {
            let (mut fresh, mut rounding) = (vec![0u64; n], vec![0u64; n]);
            for group in 0..g.groups() {
                let p = &polys[block * g.groups() + group];
                let range = group * n..(group + 1) * n;
                exact_add_mul(&mut fresh, &noise[range.clone()], p);
                let rq: Vec<u64> = bodies[range.clone()]
                    .iter()
                    .zip(&sent[range])
                    .map(|(&body, &w)| to_t(body).wrapping_sub(word_to_torus(w, b.query_bits())))
                    .collect();
                exact_add_mul(&mut rounding, &rq, p);
            }
            let rh_block = &rh[block * n..(block + 1) * n];
            let (mut with_key, mut with_ones) = (vec![0u64; n], vec![0u64; n]);
            exact_add_mul(&mut with_key, rh_block, &bits);
            exact_add_mul(&mut with_ones, rh_block, &ones);
            for t in 0..g.items_in_block(block) {
                let c = g.score_coefficient(t);
                // Twice each part, in 2^64 units, so that the halves stay integers.
                let random2 = to_t(fresh[c])
                    .wrapping_mul(2)
                    .wrapping_sub(rounding[c].wrapping_mul(2))
                    .wrapping_add(with_key[c].wrapping_mul(2))
                    .wrapping_sub(with_ones[c]) as i64;
                let z2 = (z[block * g.items_per_block() + t] * unit * 2.0) as i64;
                let det2 = z2.wrapping_sub(random2);
                random.push(random2 as f64 / 2.0 / unit);
                deterministic = deterministic.max((det2 as f64 / 2.0 / unit).abs());
            }
        }
    }
    let variance = random.iter().map(|x| x * x).sum::<f64>() / random.len() as f64;
    let ratio = variance / b.random_variance;
    println!(
        "random part: sd 2^{:.2}, {ratio:.3} of the budget's variance; deterministic part at most 2^{:.2} of the budget's 2^{:.2}",
        variance.log2() / 2.0,
        deterministic.log2(),
        b.deterministic_bound.log2()
    );
    // The budget's variance is a bound (its hint term bounds the hint's): the measured one
    // may not exceed it beyond the estimate's own spread (about 1.3% at 12,000 independent
    // scores: 4 sd), and must not be far below it (fresh noise dominates here, and the
    // budget counts it exactly).
    assert!(ratio < 1.05, "{ratio:.3} x the budget's random variance");
    assert!(
        ratio > 0.90,
        "{ratio:.3}: the budget's random variance is far too loose"
    );
    assert!(
        deterministic <= b.deterministic_bound,
        "{deterministic} > {}",
        b.deterministic_bound
    );
    // Bernstein's tail, from the budget's variance and largest term, at 2 to 4 sd.
    let (v, m) = (b.random_variance, b.random_term_max);
    for k in [2.0, 3.0, 4.0] {
        let x = k * v.sqrt();
        let seen = random.iter().filter(|z| z.abs() > x).count() as f64 / random.len() as f64;
        let bound = 2.0 * (-x * x / (2.0 * (v + m * x / 3.0))).exp();
        assert!(
            seen <= bound,
            "beyond {k} sd: {seen:.2e} of the scores, bound {bound:.2e}"
        );
    }
    // The failure exponent: what the budget's figures give, and what the measured ones
    // give (the measured variance, at least 0.95 of the budget's for the estimate's spread,
    // and the measured deterministic maximum), which must be no worse.
    let exponent = |variance: f64, deterministic: f64| {
        let t = b.noise_limit() - deterministic - 1.0;
        let ln_p = std::f64::consts::LN_2 - t * t / (2.0 * (variance + m * t / 3.0));
        ln_p / std::f64::consts::LN_2 + (g.items as f64).log2()
    };
    let budgeted = exponent(v, b.deterministic_bound);
    assert!(
        (budgeted - b.failure_log2).abs() < 1e-9,
        "{budgeted} != {}",
        b.failure_log2
    );
    let measured = exponent(variance.max(0.95 * v), deterministic);
    println!(
        "failure probability per query: 2^{:.1} by the budget's figures, 2^{measured:.1} by the measured ones",
        b.failure_log2
    );
    assert!(
        measured <= b.failure_log2,
        "2^{measured:.1} from the measured figures"
    );
    assert!(b.failure_log2 <= -40.0);
    // And nothing came near failing: the largest noise keeps its margin.
    let largest = random.iter().fold(0f64, |m, z| m.max(z.abs())) + deterministic;
    assert!(largest < b.noise_limit());
}
