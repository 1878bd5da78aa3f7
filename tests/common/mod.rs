//! Helpers shared by the integration tests: catalogs, queries and the full
//! encrypt-score-decrypt loop through the real server and client code.
#![allow(dead_code)]

pub mod processes;

use blindscore_client::core::{Artifacts, Limits, PreparedCatalog};
use blindscore_client::ClientError;
use blindscore_common::api::Normalisation;
use blindscore_common::api::{CatalogInfo, EmbeddingSpace, Metric};
use blindscore_common::artefacts::{encode_ids, encode_scales};
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::wire;
use blindscore_common::{CatalogDescription, Layout, LayoutChoice, QuantizedCatalog};
use blindscore_server::load::{quantize_rows, LoadedItems};
use blindscore_server::{CatalogSource, ServedCatalog};

/// A small deterministic generator (SplitMix64: every output bit is well mixed, unlike
/// the low bits of an LCG; tests must be reproducible).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-max, max].
    pub fn value(&mut self, max: i32) -> i32 {
        (self.next() % (2 * max as u64 + 1)) as i32 - max
    }
}

pub fn random_catalog(items: usize, d: usize, bits: u32, seed: u64) -> QuantizedCatalog {
    let max = (1 << (bits - 1)) - 1;
    let mut rng = SplitMix(seed);
    let values = (0..items * d).map(|_| rng.value(max) as i16).collect();
    QuantizedCatalog::new(d, bits, values).unwrap()
}

pub fn random_query(d: usize, bits: u32, seed: u64) -> Vec<i32> {
    let max = (1 << (bits - 1)) - 1;
    let mut rng = SplitMix(seed ^ 0xdead_beef);
    (0..d).map(|_| rng.value(max)).collect()
}

pub fn serve(catalog: &QuantizedCatalog, layout: Layout, query_bits: u32) -> ServedCatalog {
    ServedCatalog::build(
        &CatalogSource {
            catalog_id: "test",
            params: DEFAULT_PARAMS,
            catalog,
            scales: &[],
            query_bits,
            layout: LayoutChoice::Fixed(layout),
            item_data: &[],
        },
        &|_, _, _| {},
    )
    .unwrap()
}

/// The embedding space of the test catalogs: integer vectors, no normalisation.
pub fn test_space(dimension: usize) -> EmbeddingSpace {
    EmbeddingSpace {
        model: "test".into(),
        dimension,
        normalisation: Normalisation::None,
        metric: Metric::Dot,
    }
}

/// The artefacts a server would serve for a catalog built directly (ids "0", "1", ...
/// and unit scales), with a given description and hint.
pub fn artifacts_with(description: &CatalogDescription, hint: &[u8]) -> Artifacts {
    // A description with an absurd count (as the bad-input tests send) is refused before
    // ids and scales are read: none are made for it.
    let items = usize::try_from(description.item_count)
        .ok()
        .filter(|&n| n <= blindscore_common::catalog::MAX_ITEMS)
        .unwrap_or(0);
    Artifacts {
        description: wire::encode(description),
        hint: hint.to_vec(),
        ids: encode_ids(&(0..items).map(|i| i.to_string()).collect::<Vec<_>>()),
        scales: encode_scales(&vec![1.0; items]),
    }
}

/// No limits: the exactness tests go to the budget's own extremes, far beyond what an
/// app admits by default.
pub fn unlimited() -> Limits {
    Limits::none()
}

/// Check a description and hint through the client core, as the SDK does (without the
/// app's limits).
pub fn prepare_with(
    description: &CatalogDescription,
    hint: &[u8],
) -> Result<PreparedCatalog, ClientError> {
    let space = test_space(description.dimension as usize);
    PreparedCatalog::check(
        &description.catalog.catalog_id,
        space,
        &artifacts_with(description, hint),
        &unlimited(),
    )
}

pub fn prepare(served: &ServedCatalog) -> PreparedCatalog {
    prepare_with(served.description(), served.hint_message()).unwrap()
}

/// The catalog info document a server at `base` answers for `name`.
pub async fn catalog_info(base: &str, name: &str) -> CatalogInfo {
    let bytes = reqwest::get(format!("{base}/v1/catalogs/{name}"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    CatalogInfo::parse(&bytes).unwrap()
}

/// The current version (hex) of catalog `name` on the server at `base`.
pub async fn current_version(base: &str, name: &str) -> String {
    catalog_info(base, name).await.current.version
}

/// Encrypt, score through the server's byte interface, decrypt.
pub fn round_trip(served: &ServedCatalog, prepared: &PreparedCatalog, query: &[i32]) -> Vec<i64> {
    let encrypted = prepared.seal_quantized(query).unwrap();
    let response = served.score_encoded(&encrypted.bytes).unwrap();
    encrypted.pending.decrypt(prepared, &response).unwrap()
}

/// Number of scores that differ from the plaintext dot products.
pub fn wrong_scores(catalog: &QuantizedCatalog, query: &[i32], scores: &[i64]) -> usize {
    let expected = catalog.plaintext_scores(query);
    assert_eq!(expected.len(), scores.len());
    expected.iter().zip(scores).filter(|(a, b)| a != b).count()
}

/// Unit-norm float rows of dimension d, deterministic.
pub fn unit_rows(items: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(items * d);
    for _ in 0..items {
        let row: Vec<f32> = (0..d).map(|_| rng.value(1000) as f32 / 1000.0).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        out.extend(row.iter().map(|x| x / norm));
    }
    out
}

/// Items with ids `s{seed}-item-{i}`, quantized to 8 bits.
pub fn loaded_items(items: usize, d: usize, seed: u64) -> LoadedItems {
    let ids = (0..items).map(|i| format!("s{seed}-item-{i}")).collect();
    quantize_rows(ids, &unit_rows(items, d, seed), d, 8, Normalisation::L2).unwrap()
}
