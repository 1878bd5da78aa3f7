//! Serving an artefact: the whole catalog, one shard of it, or a router's version.

use std::sync::Arc;
use std::time::Duration;

use super::{Artefact, ArtefactError};
use crate::serving::{AppState, Fanout, ShardTarget, VersionEntry};

/// Build and install what this process serves of `artefact`: the whole catalog (`shard`
/// `None`), whose version and hint, recomputed from the items, must be the manifest's; or
/// one shard, whose hint blocks, recomputed, must be its file's. CPU-heavy: call from a
/// blocking context.
pub fn install_artefact(
    state: &AppState,
    artefact: &Artefact,
    shard: Option<usize>,
) -> Result<Arc<VersionEntry>, ArtefactError> {
    match shard {
        None => {
            let plan = artefact.plan_whole(&state.config)?;
            let entry = state.build_planned(plan)?;
            artefact.check_built(&entry.description, &entry.hint_message)?;
            state
                .registry
                .install(&artefact.manifest().catalog, entry.clone());
            Ok(entry)
        }
        Some(s) => {
            let share = artefact.plan_share(s, &state.config)?;
            Ok(state.build_share_and_install(share)?)
        }
    }
}

/// A router's version of `artefact`: the whole catalog's artefacts, its queries sent to the
/// shards at `urls` (one base URL per shard, in shard order), each query answered within
/// `deadline`.
pub fn routed_entry(
    artefact: &Artefact,
    urls: Vec<String>,
    deadline: Duration,
    queries_per_version: u32,
) -> Result<VersionEntry, ArtefactError> {
    if urls.len() != artefact.shard_count() {
        return Err(ArtefactError::Invalid(format!(
            "the artefact has {} shards; {} shard URLs were given",
            artefact.shard_count(),
            urls.len()
        )));
    }
    let public = artefact.public_artefacts()?;
    let shards = urls
        .into_iter()
        .enumerate()
        .map(|(index, url)| {
            Ok(ShardTarget {
                index,
                url,
                shape: artefact.share_shape(index)?,
            })
        })
        .collect::<Result<Vec<_>, ArtefactError>>()?;
    let description = artefact.description().clone();
    let fanout = Fanout::new(
        description.catalog.clone(),
        *artefact.shape(),
        shards,
        deadline,
    )
    .map_err(|e| ArtefactError::Invalid(format!("the shards' HTTP client: {e}")))?;
    Ok(VersionEntry::routed(
        description,
        public.hint_message,
        public.ids_json,
        public.scales_bytes,
        artefact.manifest().space.clone(),
        queries_per_version,
        fanout,
    )?)
}
