//! Everything a client accepts from a (possibly hostile) server before a query: the catalog
//! info document, and a version's description, hint, ids and scales.
#![no_main]

use blindscore_client::core::{Artifacts, Limits, PreparedCatalog};
use blindscore_common::digest::sha256;
use blindscore_common::{wire, CatalogDescription};
use blindscore_common::api::{CatalogInfo, TransferBytes, VersionInfo};
use blindscore_common::artefacts::{parse_ids, parse_scales};
use blindscore_fuzz::{fixture, join, space, split, DIMENSION, ITEMS, NAME};
use libfuzzer_sys::fuzz_target;

/// A catalog info document for the fixture, as a server would write it.
fn info() -> Vec<u8> {
    let f = fixture();
    let version = VersionInfo::describe(
        &f.prepared.version(),
        f.prepared.shape(),
        space(),
        f.artifacts.hint.len(),
        &f.served.description().hint_digest,
        false,
        &TransferBytes {
            once_per_version: f.artifacts.len(),
            ids_and_scales: f.artifacts.ids.len() + f.artifacts.scales.len(),
            query_message: f.served.max_query_bytes() as usize,
            response_message: f.prepared.shape().response_payload_bytes(),
            queries_per_version: 8,
        },
    );
    serde_json::to_vec(&CatalogInfo {
        name: NAME.into(),
        current: version,
        previous: None,
    })
    .expect("json")
}

fuzz_target!(
    init: {
        blindscore_fuzz::write_seeds_if_asked(|| {
            let a = &fixture().artifacts;
            vec![
                join(&[&info(), &a.description, &a.hint, &a.ids, &a.scales]),
                join(&[b"{}", &a.description, b"", b"[]", b""]),
            ]
        });
    },
    |data: &[u8]| {
        let [info, description, hint, ids, scales] = split::<5>(data);
        let space = match CatalogInfo::parse(info) {
            Ok(info) => {
                assert_eq!(info.current.version.len(), 64);
                info.current.embedding_space
            }
            Err(_) => space(),
        };
        let mut artifacts = Artifacts {
            description: description.to_vec(),
            hint: hint.to_vec(),
            ids: ids.to_vec(),
            scales: scales.to_vec(),
        };
        let limits = Limits::default();
        if let Ok(prepared) = PreparedCatalog::check(NAME, space.clone(), &artifacts, &limits) {
            assert_eq!(prepared.ids().len(), prepared.item_scales().len());
        }
        // The same with the description's hint digest made to match the (mutated) hint, so
        // that what follows the digest check is fuzzed too.
        if let Ok(mut d) = wire::decode::<CatalogDescription>(description, 1 << 16) {
            d.hint_digest = sha256(hint);
            artifacts.description = wire::encode(&d);
            if let Ok(prepared) = PreparedCatalog::check(NAME, space, &artifacts, &limits) {
                assert_eq!(prepared.ids().len(), prepared.item_scales().len());
                assert_eq!(prepared.ids().len(), d.item_count as usize);
            }
        }
        if let Ok(ids) = parse_ids(ids, ITEMS) {
            assert_eq!(ids.len(), ITEMS);
        }
        let _ = parse_scales(scales, ITEMS, DIMENSION);
    }
);
