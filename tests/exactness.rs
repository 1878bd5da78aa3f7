//! Decrypted scores equal the plaintext integer dot products, for every item.

mod common;

use blindscore_common::Layout;
use common::*;

#[test]
fn column_layout_small_catalog_is_exact() {
    let catalog = random_catalog(5000, 128, 8, 1);
    let served = serve(&catalog, Layout::Column, 8);
    let prepared = prepare(&served);
    let query = random_query(128, 8, 2);
    let scores = round_trip(&served, &prepared, &query);
    assert_eq!(wrong_scores(&catalog, &query, &scores), 0);
}
