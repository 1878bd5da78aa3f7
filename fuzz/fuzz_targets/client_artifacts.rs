//! Everything a client accepts from a (possibly hostile) server before a query: the catalog
//! info document, and a version's description, hint, ids and scales.
#![no_main]

use blindscore_client::{
    parse_catalog_info, parse_ids, parse_scales, Artifacts, CatalogState, EmbeddingSpace,
};
use blindscore_fuzz::{fixture, join, split, DIMENSION, ITEMS, NAME};
use libfuzzer_sys::fuzz_target;

fn info(version: &str) -> Vec<u8> {
    format!(
        r#"{{"current": {{"version": "{version}", "embedding_space": {{"model": "m", "dimension": {DIMENSION}, "normalisation": "l2", "metric": "cosine"}}}}}}"#
    )
    .into_bytes()
}

fuzz_target!(
    init: {
        blindscore_fuzz::write_seeds_if_asked(|| {
            let a = &fixture().artifacts;
            let version = fixture().prepared.catalog().version.to_hex();
            vec![
                join(&[&info(&version), &a.description, &a.hint, &a.ids, &a.scales]),
                join(&[b"{}", &a.description, b"", b"[]", b""]),
            ]
        });
    },
    |data: &[u8]| {
        let [info, description, hint, ids, scales] = split::<5>(data);
        let space = match parse_catalog_info(info) {
            Ok((version, space)) => {
                assert_eq!(version.len(), 64);
                space
            }
            Err(_) => EmbeddingSpace {
                model: "m".into(),
                dimension: DIMENSION,
                normalisation: "l2".into(),
                metric: "cosine".into(),
            },
        };
        let artifacts = Artifacts {
            description: description.to_vec(),
            hint: hint.to_vec(),
            ids: ids.to_vec(),
            scales: scales.to_vec(),
        };
        if let Ok(state) = CatalogState::from_artifacts(NAME, space, &artifacts) {
            assert_eq!(state.ids.len(), state.scales.len());
        }
        if let Ok(ids) = parse_ids(ids, ITEMS) {
            assert_eq!(ids.len(), ITEMS);
        }
        let _ = parse_scales(scales, ITEMS, DIMENSION);
    }
);
