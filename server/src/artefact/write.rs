//! Writing an artefact from a planned version (see [`super`] for the directory's layout).

use std::path::{Path, PathBuf};

use blindscore_common::artefacts::{encode_ids, encode_scales, parse_ids};
use blindscore_common::digest::{hex, sha256};
use blindscore_common::masks::Masks;
use blindscore_common::wire::{self, WIRE_VERSION};
use blindscore_common::{CatalogRef, HintMessage, QuantizedCatalog};

use super::{ArtefactError, FileEntry, Manifest, ShardEntry, FORMAT, MANIFEST};
use crate::scan::hint::packed_hint;
use crate::serving::PlannedVersion;

/// Write `plan` as an artefact of `shards` shards to the directory `out`, which must not
/// exist yet. The files are written into a sibling directory first and renamed into place
/// at the end, so a failed build leaves nothing at `out`. `progress` hears of each shard.
pub fn write_artefact(
    out: &Path,
    plan: &PlannedVersion,
    shards: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Manifest, ArtefactError> {
    if out.exists() {
        return Err(ArtefactError::Invalid(format!(
            "{} exists already: remove it, or give another --out",
            out.display()
        )));
    }
    let shape = plan.shape;
    let geometry = shape.geometry;
    let ranges = geometry.shard_ranges(shards)?;
    let catalog = plan.catalog();
    let d = geometry.dimension;
    let ids = parse_ids(plan.ids_json(), geometry.items)?;
    let scales = plan.scales();
    let (item_scales, dimension_scales) = match scales.len() {
        0 => (&[][..], None),
        n if n == geometry.items => (scales, None),
        _ => (&scales[..geometry.items], Some(&scales[geometry.items..])),
    };
    let catalog_ref = CatalogRef {
        param_id: shape.params.id,
        catalog_id: plan.name().to_string(),
        version: plan.version,
    };
    let masks = Masks::derive(shape.params, plan.name(), &plan.version, geometry.groups());

    let partial = sibling(out, "partial");
    let _ = std::fs::remove_dir_all(&partial);
    let written = (|| {
        make_dir(&partial)?;
        let mut entries = Vec::with_capacity(ranges.len());
        let mut hint_words = Vec::with_capacity(shape.hint_payload_bytes());
        for (s, range) in ranges.iter().enumerate() {
            progress(&format!(
                "shard {s} of {}: items {}..{}",
                ranges.len(),
                range.start,
                range.end
            ));
            let dir = format!("shard-{s:03}");
            make_dir(&partial.join(&dir))?;
            let values = &catalog.values()[range.start * d..range.end * d];
            let share = QuantizedCatalog::new(d, catalog.bits(), values.to_vec())?;
            let hint = packed_hint(&shape.share(range.len())?, &share, &masks, &|_, _| {});
            drop(share);
            let value_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let scales = if item_scales.is_empty() {
                Vec::new()
            } else {
                encode_scales(&item_scales[range.clone()])
            };
            entries.push(ShardEntry {
                first_item: range.start as u64,
                items: range.len() as u64,
                values: write_file(&partial, &format!("{dir}/items.i16"), &value_bytes)?,
                ids: write_file(
                    &partial,
                    &format!("{dir}/ids.json"),
                    &encode_ids(&ids[range.clone()]),
                )?,
                scales: write_file(&partial, &format!("{dir}/scales.f32"), &scales)?,
                hint: write_file(&partial, &format!("{dir}/hint.bin"), &hint)?,
            });
            hint_words.extend_from_slice(&hint);
        }
        let hint_message = wire::encode(&HintMessage {
            wire_version: WIRE_VERSION,
            catalog: catalog_ref.clone(),
            words: hint_words,
        });
        let dimension_scales = match dimension_scales {
            Some(t) => Some(write_file(
                &partial,
                "dimension_scales.f32",
                &encode_scales(t),
            )?),
            None => None,
        };
        let b = &shape.budget;
        let manifest = Manifest {
            format: FORMAT.into(),
            param_id: shape.params.id.0,
            catalog: plan.name().to_string(),
            version: plan.version.to_hex(),
            layout: shape.layout,
            items: geometry.items as u64,
            dimension: d as u32,
            catalog_bits: shape.catalog_bits as u8,
            query_bits: shape.query_bits as u8,
            block_norm_sq: shape.block_norm_sq,
            failure_log2: shape.failure_log2,
            delta_log2: b.delta_log2 as u8,
            modulus_log2: b.modulus_log2 as u8,
            query_low: b.query_low as u8,
            hint_low: b.hint_low as u8,
            response_low: b.response_low as u8,
            hint_sha256: hex(&sha256(&hint_message)),
            ids_sha256: hex(&sha256(plan.ids_json())),
            scales_sha256: hex(&sha256(&encode_scales(scales))),
            space: plan.space().clone(),
            dimension_scales,
            shards: entries,
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| ArtefactError::Invalid(format!("encoding the manifest: {e}")))?;
        write_file(&partial, MANIFEST, &text)?;
        Ok(manifest)
    })();
    match written {
        Ok(manifest) => {
            std::fs::rename(&partial, out).map_err(|source| ArtefactError::Io {
                path: out.to_path_buf(),
                source,
            })?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// `out` with a suffix, beside it.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    out.with_file_name(name)
}

fn make_dir(path: &Path) -> Result<(), ArtefactError> {
    std::fs::create_dir_all(path).map_err(|source| ArtefactError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(root: &Path, relative: &str, bytes: &[u8]) -> Result<FileEntry, ArtefactError> {
    let path = root.join(relative);
    std::fs::write(&path, bytes).map_err(|source| ArtefactError::Io { path, source })?;
    Ok(FileEntry {
        path: relative.to_string(),
        bytes: bytes.len() as u64,
        sha256: hex(&sha256(bytes)),
    })
}
