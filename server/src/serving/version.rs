//! One catalog version as the service holds it: the scan's catalog, its encoded artefacts,
//! and the queue of its queries.

use std::sync::Arc;

use blindscore_common::api::{EmbeddingSpace, TransferBytes, VersionInfo};
use blindscore_common::artefacts::encode_scales;
use blindscore_common::wire::{self, WIRE_VERSION};
use blindscore_common::{CatalogVersion, QueryMessage, ResponseMessage};

use super::batcher::Batcher;
use crate::scan::ServedCatalog;

/// One immutable catalog version, ready to serve.
pub struct VersionEntry {
    /// The evaluator's catalog.
    pub served: Arc<ServedCatalog>,
    /// The embedding space as declared.
    pub space: EmbeddingSpace,
    /// Encoded artefacts, served as they are.
    pub description_bytes: Vec<u8>,
    pub ids_json: Vec<u8>,
    pub scales_bytes: Vec<u8>,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// Bytes held by this version (Fourier catalog, hint, ids, scales).
    pub memory_bytes: usize,
    /// Queue of queries for this version.
    pub batcher: Batcher,
    /// What the version costs a client, in bytes.
    pub transfer: TransferBytes,
}

impl VersionEntry {
    /// A built catalog with its artefacts encoded, and the batcher started for it.
    pub fn new(
        served: Arc<ServedCatalog>,
        batcher: Batcher,
        ids_json: Vec<u8>,
        scales: &[f32],
        space: EmbeddingSpace,
        build_seconds: f64,
        queries_per_version: u32,
    ) -> Self {
        let description_bytes = wire::encode(served.description());
        let scales_bytes = encode_scales(scales);
        let shape = served.shape();
        // A message is its header (the same for every message of this version), its
        // payload's length (a varint: the empty payload's one byte replaced) and its payload.
        let with_payload = |empty: usize, payload: usize| {
            empty - 1 + wire::encode(&(payload as u64)).len() + payload
        };
        let catalog = served.catalog_ref().clone();
        let query_header = wire::encode(&QueryMessage {
            wire_version: WIRE_VERSION,
            catalog: catalog.clone(),
            bodies: Vec::new(),
        })
        .len();
        let response_header = wire::encode(&ResponseMessage {
            wire_version: WIRE_VERSION,
            catalog,
            scores: Vec::new(),
        })
        .len();
        let ids_and_scales = ids_json.len() + scales_bytes.len();
        let transfer = TransferBytes {
            once_per_version: description_bytes.len()
                + served.hint_message().len()
                + ids_and_scales,
            ids_and_scales,
            query_message: with_payload(query_header, shape.query_payload_bytes()),
            response_message: with_payload(response_header, shape.response_payload_bytes()),
            queries_per_version,
        };
        let memory_bytes = served.fourier().memory_bytes()
            + served.hint_message().len()
            + ids_json.len()
            + scales_bytes.len();
        VersionEntry {
            served,
            space,
            description_bytes,
            ids_json,
            scales_bytes,
            build_seconds,
            memory_bytes,
            batcher,
            transfer,
        }
    }

    /// The version.
    pub fn version(&self) -> CatalogVersion {
        self.served.catalog_ref().version
    }

    /// What a client or operator sees of this version.
    pub fn info(&self) -> VersionInfo {
        let shape = self.served.shape();
        VersionInfo::describe(
            &self.version(),
            shape,
            self.space.clone(),
            self.served.hint_message().len(),
            &self.served.description().hint_digest,
            self.scales_bytes.len() > 4 * shape.geometry.items,
            &self.transfer,
        )
    }
}
