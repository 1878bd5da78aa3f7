//! The high-level SDK: one call from a float preference vector to a ranked, decrypted
//! top-k, with the catalog's public data cached per version.
//!
//! What the SDK sends never depends on decrypted scores: the only requests are the catalog
//! info, the version's public artefacts (once per version, then cached), and the encrypted
//! query. It retries only on a transport error or a replaced version, once, and always
//! with a fresh encryption under a fresh key.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use blindscore_common::quant::quantize;
use blindscore_common::{wire, CatalogDescription, ProtocolError};

use crate::error::ClientError;
use crate::http::{Artifacts, Client, Connection, EmbeddingSpace};
use crate::prepared::PreparedCatalog;
use crate::query::PendingQuery;
use crate::rank::top_k;

/// How far from 1 the norm of a vector for an L2-normalised catalog may be.
const NORM_TOLERANCE: f64 = 1e-3;

/// One ranked item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankedItem {
    /// The item's id.
    pub id: String,
    /// Its score in the catalog's metric (e.g. cosine similarity), from the exact integer
    /// score and the scales.
    pub score: f64,
}

/// What a query costs on the wire, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QueryCost {
    /// The encrypted query, up.
    pub up: usize,
    /// The encrypted scores, down.
    pub down: usize,
    /// The catalog's public data (description, hint, ids, scales), once per version.
    pub once_per_version: usize,
}

/// A catalog version ready on the device: checked public data, ids, scales, space.
pub struct CatalogState {
    /// Catalog name.
    pub name: String,
    /// The prepared (checked) catalog.
    pub prepared: PreparedCatalog,
    /// Item ids in catalog order.
    pub ids: Vec<String>,
    /// Per-item scales.
    pub scales: Vec<f32>,
    /// Per-dimension scales, folded into the query before quantizing, if the catalog has
    /// them.
    pub dimension_scales: Option<Vec<f32>>,
    /// The declared embedding space.
    pub space: EmbeddingSpace,
    artifact_bytes: usize,
}

/// An encrypted query and what is needed to finish it.
pub struct SealedQuery {
    /// The encoded query to send.
    pub bytes: Vec<u8>,
    pending: PendingQuery,
    query_scale: f64,
}

impl CatalogState {
    /// Check artefacts (description against the parameter table, hint digest, ids and
    /// scales against the item count) and prepare.
    pub fn from_artifacts(
        name: &str,
        space: EmbeddingSpace,
        a: &Artifacts,
    ) -> Result<Self, ClientError> {
        let description: CatalogDescription = wire::decode(&a.description, 64 * 1024)?;
        if description.catalog.catalog_id != name {
            return Err(ProtocolError::CatalogMismatch {
                found: description.catalog.catalog_id,
                expected: name.into(),
            }
            .into());
        }
        let prepared = PreparedCatalog::new(&description, &a.hint)?;
        let items = prepared.shape().geometry.items;
        if space.dimension != prepared.shape().geometry.dimension {
            return Err(ProtocolError::Malformed(
                "the declared embedding space's dimension differs from the catalog's".into(),
            )
            .into());
        }
        let ids = crate::http::parse_ids(&a.ids, items)?;
        let (scales, dimension_scales) =
            crate::http::parse_scales(&a.scales, items, prepared.shape().geometry.dimension)?;
        let artifact_bytes = a.description.len() + a.hint.len() + a.ids.len() + a.scales.len();
        Ok(CatalogState {
            name: name.into(),
            prepared,
            ids,
            scales,
            dimension_scales,
            space,
            artifact_bytes,
        })
    }

    /// The catalog version (hex).
    pub fn version(&self) -> String {
        self.prepared.catalog().version.to_hex()
    }

    /// Bytes a query costs.
    pub fn cost(&self) -> QueryCost {
        let s = self.prepared.shape();
        QueryCost {
            up: s.query_payload_bytes(),
            down: s.response_payload_bytes(),
            once_per_version: self.artifact_bytes,
        }
    }

    /// Check a preference vector against the declared space (dimension, finiteness, unit
    /// norm for an L2-normalised catalog, and the model if the app names one) before
    /// anything is sent.
    pub fn check_vector(
        &self,
        preferences: &[f32],
        model: Option<&str>,
    ) -> Result<(), ClientError> {
        if let Some(model) = model {
            if model != self.space.model {
                return Err(ClientError::SpaceMismatch(format!(
                    "the catalog's model is {:?}, not {model:?}",
                    self.space.model
                )));
            }
        }
        if preferences.len() != self.space.dimension {
            return Err(ClientError::SpaceMismatch(format!(
                "the vector has {} values, the catalog's space has {} dimensions",
                preferences.len(),
                self.space.dimension
            )));
        }
        if preferences.iter().any(|v| !v.is_finite()) {
            return Err(ClientError::SpaceMismatch(
                "the vector has a value that is not a finite number".into(),
            ));
        }
        if self.space.normalisation == "l2" {
            let norm = preferences
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
                .sqrt();
            if (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(ClientError::SpaceMismatch(format!(
                    "the catalog's vectors are L2-normalised but this one has norm {norm:.4}; normalise it first"
                )));
            }
        }
        Ok(())
    }

    /// Quantize and encrypt under a fresh key.
    pub fn seal(
        &self,
        preferences: &[f32],
        model: Option<&str>,
    ) -> Result<SealedQuery, ClientError> {
        self.check_vector(preferences, model)?;
        let folded: Vec<f32> = match &self.dimension_scales {
            Some(t) => preferences.iter().zip(t).map(|(u, t)| u * t).collect(),
            None => preferences.to_vec(),
        };
        let q = quantize(&folded, self.prepared.shape().query_bits);
        let encrypted = self.prepared.encrypt(&q.values)?;
        Ok(SealedQuery {
            bytes: encrypted.bytes,
            pending: encrypted.pending,
            query_scale: q.scale,
        })
    }

    /// Decrypt a response, rescale, leave out excluded ids (on the device), and take the
    /// top k.
    pub fn open(
        &self,
        sealed: SealedQuery,
        response: &[u8],
        k: usize,
        exclude: &HashSet<String>,
    ) -> Result<Vec<RankedItem>, ClientError> {
        let scores = sealed.pending.decrypt(&self.prepared, response)?;
        let scaled: Vec<f64> = scores
            .iter()
            .zip(&self.scales)
            .zip(&self.ids)
            .map(|((&s, &scale), id)| {
                if exclude.contains(id) {
                    f64::NAN
                } else {
                    s as f64 * sealed.query_scale * scale as f64
                }
            })
            .collect();
        Ok(top_k(&scaled, k)
            .into_iter()
            .filter(|(_, s)| !s.is_nan())
            .map(|(i, score)| RankedItem {
                id: self.ids[i].clone(),
                score,
            })
            .collect())
    }
}

/// The SDK's entry point: a server, a memory cache of catalog versions, and optionally an
/// on-disk cache directory.
pub struct Ranker {
    client: Client,
    catalogs: Mutex<HashMap<String, Arc<CatalogState>>>,
    cache_dir: Option<PathBuf>,
    model: Option<String>,
}

impl Ranker {
    /// A ranker for the server at `url` (e.g. `https://shop.example/blindscore`).
    pub fn new(url: &str) -> Self {
        Self::with_connection(url, &Connection::default())
    }

    /// A ranker with given trust roots, API key and transport policy.
    pub fn with_connection(url: &str, connection: &Connection) -> Self {
        Ranker {
            client: Client::with_connection(url, connection),
            catalogs: Mutex::new(HashMap::new()),
            cache_dir: None,
            model: None,
        }
    }

    /// Keep each catalog version's public data in this directory too, so a restarted app
    /// does not download the hint again.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Refuse catalogs whose declared embedding model is not this one.
    pub fn expect_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The top `k` items of `catalog` for a float preference vector, decrypted and ranked
    /// on the device.
    pub async fn rank(
        &self,
        catalog: &str,
        preferences: &[f32],
        k: usize,
    ) -> Result<Vec<RankedItem>, ClientError> {
        self.rank_excluding(catalog, preferences, k, &HashSet::new())
            .await
    }

    /// [`Ranker::rank`], leaving out the given ids (out of stock, already bought): applied
    /// on the device after decryption, so the server never learns them.
    pub async fn rank_excluding(
        &self,
        catalog: &str,
        preferences: &[f32],
        k: usize,
        exclude: &HashSet<String>,
    ) -> Result<Vec<RankedItem>, ClientError> {
        let mut state = self.prepare(catalog).await?;
        let mut retried = false;
        loop {
            let sealed = state.seal(preferences, self.model.as_deref())?;
            match self.send(&state, &sealed).await {
                Ok(response) => return state.open(sealed, &response, k, exclude),
                Err(ClientError::VersionGone) if !retried => {
                    retried = true;
                    self.forget(catalog);
                    state = self.prepare(catalog).await?;
                }
                Err(ClientError::Transport(_)) if !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Make sure the current version of `catalog` is on the device (e.g. to prefetch the
    /// hint while on Wi-Fi). Fetches its public data only when the version changed.
    pub async fn prepare(&self, catalog: &str) -> Result<Arc<CatalogState>, ClientError> {
        let (version, space) = self.client.current(catalog).await?;
        if let Some(state) = self.cached(catalog).filter(|s| s.version() == version) {
            return Ok(state);
        }
        let state = match self.load_from_disk(catalog, &version, &space) {
            Some(state) => state,
            None => {
                let artifacts = self.client.fetch_artifacts(catalog, &version).await?;
                let state = CatalogState::from_artifacts(catalog, space, &artifacts)?;
                if state.version() != version {
                    return Err(ProtocolError::Malformed(
                        "the artefacts are of another version than requested".into(),
                    )
                    .into());
                }
                self.save_to_disk(catalog, &version, &artifacts);
                state
            }
        };
        if let Some(model) = &self.model {
            if *model != state.space.model {
                return Err(ClientError::SpaceMismatch(format!(
                    "the catalog's model is {:?}, not {model:?}",
                    state.space.model
                )));
            }
        }
        let state = Arc::new(state);
        self.catalogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(catalog.to_string(), state.clone());
        Ok(state)
    }

    /// Send a sealed query for a prepared version; returns the encoded response.
    pub async fn send(
        &self,
        state: &CatalogState,
        sealed: &SealedQuery,
    ) -> Result<Vec<u8>, ClientError> {
        let limit = state.prepared.shape().response_payload_bytes();
        self.client
            .send(&state.name, &state.version(), sealed.bytes.clone(), limit)
            .await
    }

    /// What a query to `catalog` will cost, before sending one.
    pub async fn cost(&self, catalog: &str) -> Result<QueryCost, ClientError> {
        Ok(self.prepare(catalog).await?.cost())
    }

    fn cached(&self, catalog: &str) -> Option<Arc<CatalogState>> {
        self.catalogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(catalog)
            .cloned()
    }

    fn forget(&self, catalog: &str) {
        self.catalogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(catalog);
    }

    fn version_dir(&self, catalog: &str, version: &str) -> Option<PathBuf> {
        Some(self.cache_dir.as_ref()?.join(catalog).join(version))
    }

    /// Cached artefacts are checked exactly like fetched ones (hint digest included); a
    /// damaged cache is ignored.
    fn load_from_disk(
        &self,
        catalog: &str,
        version: &str,
        space: &EmbeddingSpace,
    ) -> Option<CatalogState> {
        let dir = self.version_dir(catalog, version)?;
        let read = |f: &str| std::fs::read(dir.join(f)).ok();
        let artifacts = Artifacts {
            description: read("description")?,
            hint: read("hint")?,
            ids: read("ids")?,
            scales: read("scales")?,
        };
        let state = CatalogState::from_artifacts(catalog, space.clone(), &artifacts).ok()?;
        (state.version() == version).then_some(state)
    }

    /// Best effort: a cache that cannot be written only costs a download next time.
    fn save_to_disk(&self, catalog: &str, version: &str, a: &Artifacts) {
        let Some(dir) = self.version_dir(catalog, version) else {
            return;
        };
        let write = |dir: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            for (name, bytes) in [
                ("description", &a.description),
                ("hint", &a.hint),
                ("ids", &a.ids),
                ("scales", &a.scales),
            ] {
                let tmp = dir.join(format!("{name}.tmp"));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, dir.join(name))?;
            }
            Ok(())
        };
        let _ = write(&dir);
    }
}
