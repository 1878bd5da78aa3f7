//! Catalog artefacts: a catalog version built once (widths and layout chosen over every
//! item, the items quantized, the version and the hint computed) and written to a
//! directory that any number of processes serve under that same version: whole, one shard
//! each, or a router in front of the shards.
//!
//! The directory:
//!
//! * `manifest.json`: the [`Manifest`]: parameter id, catalog name, version, layout,
//!   widths, Delta and the rest of the budget, block norm, items, dimension, embedding
//!   space, the shards' item ranges, and the length and SHA-256 of every file.
//! * `shard-NNN/items.i16`: the shard's quantized values, item after item, little-endian
//!   i16.
//! * `shard-NNN/ids.json`: its item ids (a JSON array of strings).
//! * `shard-NNN/scales.f32`: its per-item scales, little-endian f32.
//! * `shard-NNN/hint.bin`: its blocks of the catalog's packed hint.
//! * `dimension_scales.f32`: the per-dimension scales, when the catalog has them.
//!
//! Shard ranges are multiples of max(N/b, 8) items (`Geometry::shard_ranges`), so each
//! shard holds whole blocks of the hint and its packed scores end on a byte boundary.
//! Readers check every file's length and digest before using it ([`read`]).

pub mod read;
pub mod routes;
pub mod serve;
pub mod write;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use blindscore_common::api::EmbeddingSpace;
use blindscore_common::Layout;

use crate::load::LoadError;

pub use read::{Artefact, PublicArtefacts};
pub use routes::{Following, Route, RouteSource, Router, Routes};
pub use serve::{install_artefact, routed_entry};
pub use write::write_artefact;

/// The manifest's `format`.
pub const FORMAT: &str = "blindscore-artefact/1";

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// What an artefact holds, and the digest of every file of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The parameter set's id.
    pub param_id: u16,
    /// The catalog's name.
    pub catalog: String,
    /// The version (64 hex digits), over the whole catalog.
    pub version: String,
    /// The layout.
    pub layout: Layout,
    /// Items in the whole catalog.
    pub items: u64,
    /// Dimension of the vectors.
    pub dimension: u32,
    /// Width of catalog values, bits.
    pub catalog_bits: u8,
    /// Width of query values, bits.
    pub query_bits: u8,
    /// Largest block norm^2 over the whole catalog, the budget's input.
    pub block_norm_sq: u64,
    /// Target failure probability per query, log2.
    pub failure_log2: i32,
    /// Delta, log2, and the rest of the budget (as in the description).
    pub delta_log2: u8,
    pub modulus_log2: u8,
    pub query_low: u8,
    pub hint_low: u8,
    pub response_low: u8,
    /// SHA-256 of the whole catalog's encoded hint message (the description's hint digest).
    pub hint_sha256: String,
    /// SHA-256 of the whole catalog's ids artefact, as served.
    pub ids_sha256: String,
    /// SHA-256 of the whole catalog's scales artefact, as served.
    pub scales_sha256: String,
    /// The embedding space as declared.
    pub space: EmbeddingSpace,
    /// The per-dimension scales, if the catalog has them.
    pub dimension_scales: Option<FileEntry>,
    /// The shards, in item order.
    pub shards: Vec<ShardEntry>,
}

/// One shard: its item range and files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// Its first item in the whole catalog.
    pub first_item: u64,
    /// Its item count.
    pub items: u64,
    /// Its quantized values.
    pub values: FileEntry,
    /// Its ids.
    pub ids: FileEntry,
    /// Its per-item scales.
    pub scales: FileEntry,
    /// Its blocks of the packed hint.
    pub hint: FileEntry,
}

/// A file of the artefact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the artefact directory.
    pub path: String,
    /// Length, bytes.
    pub bytes: u64,
    /// SHA-256, 64 hex digits.
    pub sha256: String,
}

/// Why an artefact cannot be written or served. Every error about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Protocol(#[from] blindscore_common::ProtocolError),
}
