//! One catalog version as the service holds it: its encoded artefacts, and what scores its
//! queries: the scan of this process (with the queue of its queries), or the shards a router
//! fans each query out to.

use std::sync::Arc;

use bytes::Bytes;

pub use blindscore_common::api::ShardOf;
use blindscore_common::api::{EmbeddingSpace, TransferBytes, VersionInfo};
use blindscore_common::artefacts::encode_scales;
use blindscore_common::wire::{self, HEADER_ALLOWANCE, WIRE_VERSION};
use blindscore_common::{
    CatalogDescription, CatalogRef, CatalogShape, CatalogVersion, ProtocolError, QueryMessage,
    ResponseMessage,
};

use super::batcher::{Batcher, SubmitError};
use super::fanout::{Fanout, FanoutError};
use crate::scan::{CheckedQuery, ServedCatalog};

/// What scores a version's queries.
pub enum Scorer {
    /// This process's scan, its queries queued and batched.
    Scan {
        served: Arc<ServedCatalog>,
        batcher: Batcher,
    },
    /// The catalog's shards, each query sent to every one and the payloads joined.
    Shards(Box<Fanout>),
}

/// Why a checked query was not scored.
#[derive(Debug)]
pub enum ScoreError {
    /// The scan's queue refused or failed it.
    Submit(SubmitError),
    /// A shard did not answer rightly in time (a router's version).
    Shard(FanoutError),
}

/// One immutable catalog version, ready to serve.
pub struct VersionEntry {
    catalog_ref: CatalogRef,
    /// The shape queries are checked against and answered in (a shard's: its share).
    shape: CatalogShape,
    /// The catalog's description (a shard's too is the whole catalog's).
    pub description: CatalogDescription,
    /// The embedding space as declared.
    pub space: EmbeddingSpace,
    /// Encoded artefacts, served as they are.
    pub description_bytes: Bytes,
    pub hint_message: Bytes,
    pub ids_json: Bytes,
    pub scales_bytes: Bytes,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// Bytes held by this version (Fourier catalog, hint, ids, scales).
    pub memory_bytes: usize,
    /// What the version costs a client, in bytes.
    pub transfer: TransferBytes,
    /// The part of a sharded catalog this process scans, if it is a shard.
    pub shard: Option<ShardOf>,
    /// What scores its queries.
    pub scorer: Scorer,
}

impl VersionEntry {
    /// A version this process scans (the whole catalog, or a shard of it), with its
    /// artefacts encoded, and the batcher started for it.
    #[allow(clippy::too_many_arguments)]
    pub fn scanned(
        served: Arc<ServedCatalog>,
        batcher: Batcher,
        ids_json: Vec<u8>,
        scales: &[f32],
        space: EmbeddingSpace,
        build_seconds: f64,
        queries_per_version: u32,
        shard: Option<ShardOf>,
    ) -> Self {
        let hint_message = served.hint_bytes();
        let memory_bytes = served.fourier().memory_bytes();
        let mut entry = VersionEntry::assemble(
            served.description().clone(),
            *served.shape(),
            hint_message,
            ids_json.into(),
            encode_scales(scales).into(),
            space,
            queries_per_version,
            Scorer::Scan { served, batcher },
        );
        entry.build_seconds = build_seconds;
        entry.memory_bytes += memory_bytes;
        entry.shard = shard;
        entry
    }

    /// A version a router serves: the whole catalog's artefacts, its queries scored by
    /// its shards.
    pub fn routed(
        description: CatalogDescription,
        hint_message: Vec<u8>,
        ids_json: Vec<u8>,
        scales_bytes: Vec<u8>,
        space: EmbeddingSpace,
        queries_per_version: u32,
        fanout: Fanout,
    ) -> Result<Self, ProtocolError> {
        let shape = description.shape()?;
        Ok(VersionEntry::assemble(
            description,
            shape,
            hint_message.into(),
            ids_json.into(),
            scales_bytes.into(),
            space,
            queries_per_version,
            Scorer::Shards(Box::new(fanout)),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        description: CatalogDescription,
        shape: CatalogShape,
        hint_message: Bytes,
        ids_json: Bytes,
        scales_bytes: Bytes,
        space: EmbeddingSpace,
        queries_per_version: u32,
        scorer: Scorer,
    ) -> Self {
        let description_bytes = Bytes::from(wire::encode(&description));
        let catalog_ref = description.catalog.clone();
        // A message is its header (the same for every message of this version), its
        // payload's length (a varint: the empty payload's one byte replaced) and its payload.
        let with_payload = |empty: usize, payload: usize| {
            empty - 1 + wire::encode(&(payload as u64)).len() + payload
        };
        let query_header = wire::encode(&QueryMessage {
            wire_version: WIRE_VERSION,
            catalog: catalog_ref.clone(),
            bodies: Vec::new(),
        })
        .len();
        let response_header = wire::encode(&ResponseMessage {
            wire_version: WIRE_VERSION,
            catalog: catalog_ref.clone(),
            scores: Vec::new(),
        })
        .len();
        let ids_and_scales = ids_json.len() + scales_bytes.len();
        let transfer = TransferBytes {
            once_per_version: description_bytes.len() + hint_message.len() + ids_and_scales,
            ids_and_scales,
            query_message: with_payload(query_header, shape.query_payload_bytes()),
            response_message: with_payload(response_header, shape.response_payload_bytes()),
            queries_per_version,
        };
        VersionEntry {
            memory_bytes: hint_message.len() + ids_and_scales,
            catalog_ref,
            shape,
            description,
            space,
            description_bytes,
            hint_message,
            ids_json,
            scales_bytes,
            build_seconds: 0.0,
            transfer,
            shard: None,
            scorer,
        }
    }

    /// The version.
    pub fn version(&self) -> CatalogVersion {
        self.catalog_ref.version
    }

    /// Which catalog version this is.
    pub fn catalog_ref(&self) -> &CatalogRef {
        &self.catalog_ref
    }

    /// The shape queries are checked against and answered in (a shard's: its share).
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }

    /// The scan of this process, if it scans the version itself.
    pub fn served(&self) -> Option<&Arc<ServedCatalog>> {
        match &self.scorer {
            Scorer::Scan { served, .. } => Some(served),
            Scorer::Shards(_) => None,
        }
    }

    /// The shards a router's version sends its queries to (none for a scanned version).
    pub fn fanout(&self) -> Option<&Fanout> {
        match &self.scorer {
            Scorer::Scan { .. } => None,
            Scorer::Shards(fanout) => Some(fanout),
        }
    }

    /// Queries waiting in this process's queue.
    pub fn queued(&self) -> usize {
        match &self.scorer {
            Scorer::Scan { batcher, .. } => batcher.queued(),
            Scorer::Shards(fanout) => fanout.in_flight(),
        }
    }

    /// Whether this process's queue for the version is full (a query submitted now would
    /// be refused as busy; a router has no queue of its own).
    pub fn is_full(&self) -> bool {
        match &self.scorer {
            Scorer::Scan { batcher, .. } => batcher.is_full(),
            Scorer::Shards(_) => false,
        }
    }

    /// Largest encoded query this version accepts.
    pub fn max_query_bytes(&self) -> u64 {
        (self.shape.query_payload_bytes() + HEADER_ALLOWANCE) as u64
    }

    /// Decode and check an encoded query against this version, once.
    pub fn check_query(&self, message: Bytes) -> Result<CheckedQuery, ProtocolError> {
        CheckedQuery::check(
            message,
            self.max_query_bytes(),
            &self.catalog_ref,
            &self.shape,
        )
    }

    /// Score a checked query: its encoded response.
    pub async fn score(&self, query: CheckedQuery) -> Result<Bytes, ScoreError> {
        match &self.scorer {
            Scorer::Scan { batcher, .. } => batcher
                .submit(query)
                .await
                .map(|r| r.into_bytes())
                .map_err(ScoreError::Submit),
            Scorer::Shards(fanout) => fanout
                .score(query.into_bytes())
                .await
                .map_err(ScoreError::Shard),
        }
    }

    /// What a client or operator sees of this version.
    pub fn info(&self) -> VersionInfo {
        let shape = &self.shape;
        VersionInfo {
            shard: self.shard,
            ..VersionInfo::describe(
                &self.version(),
                shape,
                self.space.clone(),
                self.hint_message.len(),
                &self.description.hint_digest,
                self.scales_bytes.len() > 4 * shape.geometry.items,
                &self.transfer,
            )
        }
    }
}
