//! Decrypted scores equal the plaintext integer dot products, for every item: random data,
//! worst cases, both layouts, partial blocks, odd dimensions, d = 1, and a full
//! 100,000 x 128 catalog.

mod common;

use blindscore_common::catalog::max_dimension;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{Layout, QuantizedCatalog};
use blindscore_server::scan::evaluator::span_blocks;
use common::*;
use proptest::prelude::*;

fn check(catalog: &QuantizedCatalog, layout: Layout, query_bits: u32, query: &[i32]) {
    let served = serve(catalog, layout, query_bits);
    let prepared = prepare(&served);
    let scores = round_trip(&served, &prepared, query);
    let wrong = wrong_scores(catalog, query, &scores);
    assert_eq!(
        wrong,
        0,
        "{wrong} wrong scores of {} ({layout}, d = {})",
        catalog.items(),
        catalog.dimension()
    );
}

#[test]
fn column_layout_with_partial_last_block() {
    let catalog = random_catalog(5000, 128, 8, 1);
    check(&catalog, Layout::Column, 8, &random_query(128, 8, 2));
}

#[test]
fn grouped_layouts_with_odd_dimension() {
    let catalog = random_catalog(3001, 100, 8, 3);
    let query = random_query(100, 8, 4);
    for b in [2, 4, 8, 32, 128] {
        check(&catalog, Layout::Grouped(b), 8, &query);
    }
}

#[test]
fn large_groups_whose_blocks_end_mid_byte() {
    // b = 512 and 1024: 4 and 2 items per block, so a block's packed scores need not fill
    // whole bytes; several widths of catalog values give several response widths.
    let query = random_query(600, 4, 9);
    for (b, bits) in [(512, 4), (512, 3), (1024, 2), (1024, 3)] {
        let catalog = random_catalog(123, 600, bits, 10 + bits as u64);
        check(&catalog, Layout::Grouped(b), 4, &query);
    }
}

#[test]
fn dimension_one() {
    let catalog = random_catalog(2500, 1, 8, 5);
    check(&catalog, Layout::Column, 8, &[-127]);
    check(&catalog, Layout::Column, 8, &[127]);
}

/// Every entry at its bound, all blocks identical, the query at its bound: the largest
/// scores and the largest noise, at the largest d the budget supports.
fn worst_case(layout: Layout, bits: u32, query_bits: u32) {
    let items = 3 * DEFAULT_PARAMS.polynomial_size.0 / layout.group_size();
    let d = max_dimension(DEFAULT_PARAMS, layout, items, bits, query_bits).expect("some d fits");
    println!(
        "{layout}: largest supported d at {bits}-bit catalog, {query_bits}-bit query values = {d}"
    );
    assert!(d >= 128, "d = 128 must be supported");
    let max = (1i16 << (bits - 1)) - 1;
    // All +max: the largest score, d * max^2, in every slot.
    let flat = QuantizedCatalog::new(d, bits, vec![max; items * d]).unwrap();
    let qmax = (1i32 << (query_bits - 1)) - 1;
    check(&flat, layout, query_bits, &vec![qmax; d]);
    check(&flat, layout, query_bits, &vec![-qmax; d]);
    // +-max with the same sign pattern in every block: the same worst norm, scores of
    // both signs.
    let mut rng = SplitMix(11);
    let block: Vec<i16> = (0..items / 3 * d)
        .map(|_| if rng.next() & 1 == 1 { max } else { -max })
        .collect();
    let signed = QuantizedCatalog::new(d, bits, block.repeat(3)).unwrap();
    let query: Vec<i32> = (0..d)
        .map(|_| if rng.next() & 1 == 1 { qmax } else { -qmax })
        .collect();
    check(&signed, layout, query_bits, &query);
}

#[test]
fn worst_case_column_int8() {
    worst_case(Layout::Column, 8, 8);
}

#[test]
fn worst_case_grouped_int8() {
    worst_case(Layout::Grouped(16), 8, 8);
}

#[test]
fn worst_case_column_10_bit_catalog() {
    worst_case(Layout::Column, 10, 6);
}

#[test]
fn full_100k_by_128_catalog_has_no_wrong_score() {
    let catalog = random_catalog(100_000, 128, 8, 21);
    let served = serve(&catalog, Layout::Column, 8);
    let prepared = prepare(&served);
    for seed in 0..2 {
        let query = random_query(128, 8, 100 + seed);
        let scores = round_trip(&served, &prepared, &query);
        assert_eq!(wrong_scores(&catalog, &query, &scores), 0);
    }
}

/// Scores narrower than a byte and a last block one item short of full: its payload then
/// has as many bytes as a full block's, and must still hold exactly its own items.
#[test]
fn narrow_scores_with_a_last_block_one_item_short() {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    for items in [2 * n - 1, n - 1] {
        let catalog = random_catalog(items, 1, 2, 41);
        let served = serve(&catalog, Layout::Column, 2);
        let width = served.shape().budget.response_bits();
        assert!(width < 8, "the case needs scores under 8 bits, got {width}");
        check(&catalog, Layout::Column, 2, &random_query(1, 2, 42));
    }
}

/// Batched passes: pairs of queries and an odd one out, more than one span of blocks (the
/// last a part span), and a number of groups that is not a multiple of the kernel's slice
/// of 32; every query of the batch is exact, in both layouts.
#[test]
fn batched_passes_are_exact_for_every_query() {
    let n = DEFAULT_PARAMS.polynomial_size.0;
    // One span and a few blocks more, the last block short.
    let blocks = span_blocks(2, n) + 5;
    for (layout, d) in [(Layout::Column, 40), (Layout::Grouped(4), 150)] {
        let items = blocks * n / layout.group_size() - 3;
        let catalog = random_catalog(items, d, 8, 31);
        let served = serve(&catalog, layout, 8);
        let prepared = prepare(&served);
        for batch in [2usize, 5] {
            let queries: Vec<Vec<i32>> = (0..batch)
                .map(|i| random_query(d, 8, 200 + i as u64))
                .collect();
            let encrypted: Vec<_> = queries
                .iter()
                .map(|q| prepared.seal_quantized(q).unwrap())
                .collect();
            let checked: Vec<_> = encrypted
                .iter()
                .map(|e| served.check_query(e.bytes.clone().into()).unwrap())
                .collect();
            let responses = served.score(&checked);
            assert_eq!(responses.len(), batch);
            for ((query, encrypted), response) in queries.iter().zip(encrypted).zip(responses) {
                let scores = encrypted.pending.decrypt(&prepared, &response).unwrap();
                let wrong = wrong_scores(&catalog, query, &scores);
                assert_eq!(wrong, 0, "{layout}, batch of {batch}: {wrong} wrong scores");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_catalogs_and_layouts_are_exact(
        d in 1usize..200,
        items in 1usize..4500,
        log_b in 0u32..8,
        catalog_bits in 2u32..=10,
        query_bits in 2u32..=9,
        seed in any::<u64>(),
    ) {
        let b = (1u32 << log_b).min(d.next_power_of_two() as u32);
        let catalog = random_catalog(items, d, catalog_bits, seed);
        let query = random_query(d, query_bits, seed);
        check(&catalog, Layout::from_group_size(b), query_bits, &query);
    }
}

/// The portable scan and the AVX-512 scan give the same decrypted scores (their raw f64
/// sums may differ in the last bits).
#[test]
fn portable_and_simd_kernels_decrypt_alike() {
    use blindscore_server::Kernel;
    let catalog = random_catalog(4500, 100, 8, 31);
    let mut served = serve(&catalog, Layout::Grouped(4), 8);
    let prepared = prepare(&served);
    let query = random_query(100, 8, 32);
    let mut results = Vec::new();
    for kernel in [Kernel::detect(), Kernel::Portable] {
        served.set_kernel(kernel);
        assert_eq!(served.evaluator().kernel(), kernel);
        results.push(round_trip(&served, &prepared, &query));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(wrong_scores(&catalog, &query, &results[1]), 0);
}
