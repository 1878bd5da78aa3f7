//! The on-disk cache of catalog artefacts, one directory per catalog version. Cached
//! artefacts are checked exactly like fetched ones (hint digest included), so a damaged
//! cache only costs a download.

use std::path::{Path, PathBuf};

use blindscore_common::digest::{hex, sha256};
use blindscore_common::CatalogVersion;

use std::io::Read;

use blindscore_common::wire::HEADER_ALLOWANCE;

use crate::core::{Artifacts, Limits};

const FILES: [&str; 4] = ["description", "hint", "ids", "scales"];

/// A directory the app gives the SDK for its cache, one subdirectory per server.
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// The cache for the server at `origin` (its base URL) in `dir`: entries live under a
    /// digest of the origin, so that a server cannot plant artefacts for another one that
    /// serves a catalog of the same name and version.
    pub(crate) fn new(dir: PathBuf, origin: &str) -> Self {
        let key = hex(&sha256(origin.as_bytes()));
        DiskCache {
            dir: dir.join(&key[..32]),
        }
    }

    fn version_dir(&self, catalog: &str, version: &CatalogVersion) -> PathBuf {
        self.dir.join(catalog).join(version.to_hex())
    }

    /// The artefacts of a version, if all four are cached, each within the app's limit for
    /// it (a file that has grown past it is not read whole).
    pub(crate) fn load(
        &self,
        catalog: &str,
        version: &CatalogVersion,
        limits: &Limits,
    ) -> Option<Artifacts> {
        let dir = self.version_dir(catalog, version);
        let read = |f: &str, cap: u64| -> Option<Vec<u8>> {
            let mut bytes = Vec::new();
            std::fs::File::open(dir.join(f))
                .ok()?
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .ok()?;
            (bytes.len() as u64 <= cap).then_some(bytes)
        };
        let allowance = HEADER_ALLOWANCE as u64;
        Some(Artifacts {
            description: read(FILES[0], limits.max_description_bytes)?,
            hint: read(FILES[1], limits.max_hint_bytes.saturating_add(allowance))?,
            ids: read(FILES[2], limits.max_ids_bytes)?,
            scales: read(FILES[3], limits.max_scales_bytes)?,
        })
    }

    /// Best effort: a cache that cannot be written only costs a download next time. Each
    /// file is written under a temporary name and renamed, so a reader never sees half.
    pub(crate) fn save(&self, catalog: &str, version: &CatalogVersion, a: &Artifacts) {
        let write = |dir: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            for (name, bytes) in FILES
                .iter()
                .zip([&a.description, &a.hint, &a.ids, &a.scales])
            {
                let tmp = dir.join(format!("{name}.tmp"));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, dir.join(name))?;
            }
            Ok(())
        };
        let _ = write(&self.version_dir(catalog, version));
    }
}
