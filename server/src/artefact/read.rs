//! Reading an artefact: the manifest checked as a client checks a description (the budget
//! recomputed from the compiled-in parameters), the shard ranges checked against the
//! geometry, and every file's length and SHA-256 checked before it is used. An error names
//! the file.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use blindscore_common::artefacts::{encode_ids, encode_scales, parse_ids};
use blindscore_common::digest::{hex, sha256};
use blindscore_common::wire::{self, WIRE_VERSION};
use blindscore_common::ParamId;
use blindscore_common::{
    CatalogDescription, CatalogRef, CatalogShape, CatalogVersion, HintMessage, QuantizedCatalog,
};

use super::{ArtefactError, FileEntry, Manifest, ShardEntry, FORMAT, MANIFEST};
use crate::serving::{plan_quantized, PlannedShare, PlannedVersion, ServiceConfig, ShardOf};

/// Largest manifest read, bytes.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// An opened artefact whose manifest passed its checks.
pub struct Artefact {
    dir: PathBuf,
    manifest: Manifest,
    description: CatalogDescription,
    shape: CatalogShape,
}

/// What a router serves of a sharded catalog: the whole catalog's artefacts, joined from
/// the shards' files and checked against the manifest's digests.
pub struct PublicArtefacts {
    pub hint_message: Vec<u8>,
    pub ids_json: Vec<u8>,
    pub scales_bytes: Vec<u8>,
}

impl Artefact {
    /// Open the artefact in `dir` and check its manifest.
    pub fn open(dir: &Path) -> Result<Self, ArtefactError> {
        let path = dir.join(MANIFEST);
        let text = read_bounded(&path, MAX_MANIFEST_BYTES)?;
        let damaged = |message: String| ArtefactError::Damaged {
            path: path.clone(),
            message,
        };
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| damaged(format!("not a manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(damaged(format!(
                "format {:?}; this build reads {FORMAT:?}",
                manifest.format
            )));
        }
        let version = CatalogVersion::from_hex(&manifest.version)
            .ok_or_else(|| damaged("the version is not 64 hex digits".into()))?;
        let hint_digest = CatalogVersion::from_hex(&manifest.hint_sha256)
            .ok_or_else(|| damaged("the hint digest is not 64 hex digits".into()))?
            .0;
        wire::validate_catalog_id(&manifest.catalog).map_err(|e| damaged(e.to_string()))?;
        let description = CatalogDescription {
            wire_version: WIRE_VERSION,
            catalog: CatalogRef {
                param_id: ParamId(manifest.param_id),
                catalog_id: manifest.catalog.clone(),
                version,
            },
            item_count: manifest.items,
            dimension: manifest.dimension,
            layout: manifest.layout,
            catalog_bits: manifest.catalog_bits,
            query_bits: manifest.query_bits,
            block_norm_sq: manifest.block_norm_sq,
            failure_log2: manifest.failure_log2,
            delta_log2: manifest.delta_log2,
            modulus_log2: manifest.modulus_log2,
            query_low: manifest.query_low,
            hint_low: manifest.hint_low,
            response_low: manifest.response_low,
            hint_digest,
        };
        // The budget is recomputed from the compiled-in parameters and must equal the
        // manifest's, as a client checks a description.
        let shape = description.shape().map_err(|e| damaged(e.to_string()))?;
        if manifest.space.dimension != shape.geometry.dimension {
            return Err(damaged(format!(
                "the embedding space has dimension {}, the catalog {}",
                manifest.space.dimension, shape.geometry.dimension
            )));
        }
        let ranges = shape
            .geometry
            .shard_ranges(manifest.shards.len())
            .map_err(|e| damaged(e.to_string()))?;
        for (s, (entry, range)) in manifest.shards.iter().zip(&ranges).enumerate() {
            if entry.first_item != range.start as u64 || entry.items != range.len() as u64 {
                return Err(damaged(format!(
                    "shard {s} holds items {}..{}; {} shards of this catalog hold {}..{}",
                    entry.first_item,
                    entry.first_item.saturating_add(entry.items),
                    manifest.shards.len(),
                    range.start,
                    range.end
                )));
            }
        }
        Ok(Artefact {
            dir: dir.to_path_buf(),
            manifest,
            description,
            shape,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The whole catalog's description.
    pub fn description(&self) -> &CatalogDescription {
        &self.description
    }

    /// The whole catalog's shape.
    pub fn shape(&self) -> &CatalogShape {
        &self.shape
    }

    /// How many shards.
    pub fn shard_count(&self) -> usize {
        self.manifest.shards.len()
    }

    /// The shape shard `s` answers in.
    pub fn share_shape(&self, s: usize) -> Result<CatalogShape, ArtefactError> {
        Ok(self.shape.share(self.shard(s)?.items as usize)?)
    }

    fn shard(&self, s: usize) -> Result<&ShardEntry, ArtefactError> {
        self.manifest.shards.get(s).ok_or_else(|| {
            ArtefactError::Invalid(format!(
                "shard {s}: the artefact has shards 0..{}",
                self.shard_count()
            ))
        })
    }

    /// Read a file of the artefact, checking its length and digest.
    fn read(&self, entry: &FileEntry) -> Result<Vec<u8>, ArtefactError> {
        let relative = Path::new(&entry.path);
        let path = self.dir.join(relative);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ArtefactError::Damaged {
                path,
                message: "a path outside the artefact".into(),
            });
        }
        let bytes = read_bounded(&path, entry.bytes)?;
        if bytes.len() as u64 != entry.bytes {
            return Err(ArtefactError::Damaged {
                path,
                message: format!("{} bytes; the manifest says {}", bytes.len(), entry.bytes),
            });
        }
        let digest = hex(&sha256(&bytes));
        if digest != entry.sha256 {
            return Err(ArtefactError::Damaged {
                path,
                message: format!(
                    "SHA-256 {digest}; the manifest says {}: the file is damaged or from another build",
                    entry.sha256
                ),
            });
        }
        Ok(bytes)
    }

    fn damaged(&self, entry: &FileEntry, message: String) -> ArtefactError {
        ArtefactError::Damaged {
            path: self.dir.join(&entry.path),
            message,
        }
    }

    /// Shard `s`'s quantized items.
    pub fn shard_items(&self, s: usize) -> Result<QuantizedCatalog, ArtefactError> {
        let entry = self.shard(s)?;
        let bytes = self.read(&entry.values)?;
        let d = self.shape.geometry.dimension;
        let expected = entry.items as usize * d * 2;
        if bytes.len() != expected {
            return Err(self.damaged(
                &entry.values,
                format!(
                    "{} bytes for {} items of {d} values",
                    bytes.len(),
                    entry.items
                ),
            ));
        }
        let values = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        QuantizedCatalog::new(d, self.shape.catalog_bits, values)
            .map_err(|e| self.damaged(&entry.values, e.to_string()))
    }

    /// Shard `s`'s ids, as they are encoded in its file.
    fn shard_ids(&self, s: usize) -> Result<Vec<String>, ArtefactError> {
        let entry = self.shard(s)?;
        let bytes = self.read(&entry.ids)?;
        parse_ids(&bytes, entry.items as usize).map_err(|e| self.damaged(&entry.ids, e.to_string()))
    }

    /// Shard `s`'s per-item scales (empty if the catalog has none).
    fn shard_scales(&self, s: usize) -> Result<Vec<f32>, ArtefactError> {
        let entry = self.shard(s)?;
        let bytes = self.read(&entry.scales)?;
        if !bytes.is_empty() && bytes.len() != entry.items as usize * 4 {
            return Err(self.damaged(
                &entry.scales,
                format!("{} bytes for {} items", bytes.len(), entry.items),
            ));
        }
        Ok(floats(&bytes))
    }

    /// Shard `s`'s blocks of the packed hint.
    fn shard_hint(&self, s: usize) -> Result<Vec<u8>, ArtefactError> {
        let entry = self.shard(s)?;
        let bytes = self.read(&entry.hint)?;
        let expected = self.share_shape(s)?.hint_payload_bytes();
        if bytes.len() != expected {
            return Err(self.damaged(
                &entry.hint,
                format!("{} bytes; its blocks take {expected}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// The per-dimension scales (empty if the catalog has none).
    fn dimension_scales(&self) -> Result<Vec<f32>, ArtefactError> {
        let Some(entry) = &self.manifest.dimension_scales else {
            return Ok(Vec::new());
        };
        let bytes = self.read(entry)?;
        if bytes.len() != self.shape.geometry.dimension * 4 {
            return Err(self.damaged(entry, format!("{} bytes", bytes.len())));
        }
        Ok(floats(&bytes))
    }

    /// The whole catalog's scales, as the version and the scales artefact hold them.
    fn scales(&self) -> Result<Vec<f32>, ArtefactError> {
        let mut scales = Vec::new();
        for s in 0..self.shard_count() {
            scales.extend(self.shard_scales(s)?);
        }
        if !scales.is_empty() && scales.len() != self.shape.geometry.items {
            return Err(ArtefactError::Invalid(
                "some shards have scales and some do not".into(),
            ));
        }
        scales.extend(self.dimension_scales()?);
        Ok(scales)
    }

    /// The whole catalog's ids artefact.
    fn ids_json(&self) -> Result<Vec<u8>, ArtefactError> {
        let mut ids = Vec::with_capacity(self.shape.geometry.items);
        for s in 0..self.shard_count() {
            ids.extend(self.shard_ids(s)?);
        }
        Ok(encode_ids(&ids))
    }

    fn check_whole(&self, what: &str, bytes: &[u8], expected: &str) -> Result<(), ArtefactError> {
        let digest = hex(&sha256(bytes));
        if digest != expected {
            return Err(ArtefactError::Damaged {
                path: self.dir.join(MANIFEST),
                message: format!(
                    "the shards' {what} join to SHA-256 {digest}; the manifest says {expected}"
                ),
            });
        }
        Ok(())
    }

    /// The whole catalog's public artefacts, for a router (no items are read).
    pub fn public_artefacts(&self) -> Result<PublicArtefacts, ArtefactError> {
        let mut words = Vec::with_capacity(self.shape.hint_payload_bytes());
        for s in 0..self.shard_count() {
            words.extend(self.shard_hint(s)?);
        }
        let hint_message = wire::encode(&HintMessage {
            wire_version: WIRE_VERSION,
            catalog: self.description.catalog.clone(),
            words,
        });
        self.check_whole("hint blocks", &hint_message, &self.manifest.hint_sha256)?;
        let ids_json = self.ids_json()?;
        self.check_whole("ids", &ids_json, &self.manifest.ids_sha256)?;
        let scales_bytes = encode_scales(&self.scales()?);
        self.check_whole("scales", &scales_bytes, &self.manifest.scales_sha256)?;
        Ok(PublicArtefacts {
            hint_message,
            ids_json,
            scales_bytes,
        })
    }

    /// The whole catalog, planned in the manifest's layout at its widths: the version the
    /// build computes from the items must be the manifest's (checked by the caller after
    /// the build with [`Self::check_built`]).
    pub fn plan_whole(&self, config: &ServiceConfig) -> Result<PlannedVersion, ArtefactError> {
        self.check_config(config)?;
        let d = self.shape.geometry.dimension;
        let mut values = Vec::with_capacity(self.shape.geometry.items * d);
        for s in 0..self.shard_count() {
            values.extend_from_slice(self.shard_items(s)?.values());
        }
        let catalog = QuantizedCatalog::new(d, self.shape.catalog_bits, values)?;
        let ids_json = self.ids_json()?;
        self.check_whole("ids", &ids_json, &self.manifest.ids_sha256)?;
        let scales = self.scales()?;
        let plan = plan_quantized(
            &self.manifest.catalog,
            catalog,
            scales,
            ids_json,
            self.manifest.space.clone(),
            self.manifest.layout,
            config,
        )?;
        if plan.shape != self.shape || plan.version != self.description.catalog.version {
            return Err(ArtefactError::Damaged {
                path: self.dir.join(MANIFEST),
                message: format!(
                    "the items give version {} (block norm^2 {}), the manifest says {} ({})",
                    plan.version,
                    plan.shape.block_norm_sq,
                    self.description.catalog.version,
                    self.shape.block_norm_sq
                ),
            });
        }
        Ok(plan)
    }

    /// Check a whole catalog built from [`Self::plan_whole`]: its hint, recomputed from
    /// the items, must be the one whose digest the manifest holds, and the one the shards'
    /// hint files join to.
    pub fn check_built(
        &self,
        description: &CatalogDescription,
        hint_message: &[u8],
    ) -> Result<(), ArtefactError> {
        if description != &self.description {
            return Err(ArtefactError::Damaged {
                path: self.dir.join(MANIFEST),
                message: format!(
                    "the hint recomputed from the items has SHA-256 {}, the manifest says {}",
                    hex(&description.hint_digest),
                    self.manifest.hint_sha256
                ),
            });
        }
        let public = self.public_artefacts()?;
        if public.hint_message != hint_message {
            return Err(ArtefactError::Damaged {
                path: self.dir.join(MANIFEST),
                message: "the shards' hint blocks differ from the hint recomputed from the items"
                    .into(),
            });
        }
        Ok(())
    }

    /// Shard `s`, read and checked, for its build (which recomputes and compares its hint
    /// blocks).
    pub fn plan_share(
        &self,
        s: usize,
        config: &ServiceConfig,
    ) -> Result<PlannedShare, ArtefactError> {
        self.check_config(config)?;
        let catalog = self.shard_items(s)?;
        let ids_json = encode_ids(&self.shard_ids(s)?);
        let scales = self.shard_scales(s)?;
        let hint_blocks = self.shard_hint(s)?;
        Ok(PlannedShare {
            description: self.description.clone(),
            shard: ShardOf {
                index: s,
                count: self.shard_count(),
            },
            catalog,
            ids_json,
            scales,
            space: self.manifest.space.clone(),
            hint_blocks,
        })
    }

    fn check_config(&self, config: &ServiceConfig) -> Result<(), ArtefactError> {
        if config.query_bits != self.shape.query_bits {
            return Err(ArtefactError::Invalid(format!(
                "the artefact was built for {}-bit queries, the server is set to {}",
                self.shape.query_bits, config.query_bits
            )));
        }
        Ok(())
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Read at most `limit` bytes of a file (one more tells that it is longer).
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ArtefactError> {
    let io = |source| ArtefactError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ArtefactError::Damaged {
            path: path.to_path_buf(),
            message: format!("longer than {limit} bytes"),
        });
    }
    Ok(bytes)
}
