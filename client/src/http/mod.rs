//! The HTTP layer over the sans-IO core: [`Ranker`], which fetches and caches each catalog
//! version's public data, seals, sends and opens, and [`Connection`], which says how to
//! reach the server.
//!
//! What the SDK sends never depends on decrypted scores: the only requests are the catalog
//! info, the version's public artefacts (once per version, then cached), and the encrypted
//! query. It retries only on a transport error or a replaced version, once, and always
//! with a fresh encryption under a fresh key.

mod cache;
mod transport;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use blindscore_common::ProtocolError;

use crate::core::{PendingQuery, PreparedCatalog, QueryCost, RankedItem, SealedQuery};
use crate::error::ClientError;
use cache::DiskCache;
use transport::Client;
pub use transport::Connection;

/// The SDK's entry point: a server, a memory cache of prepared catalog versions, and
/// optionally an on-disk cache directory.
///
/// Its methods are `async` and need a [tokio](https://tokio.rs) runtime: the CPU-heavy
/// steps (preparing a catalog's hint, sealing, opening a million scores) run on tokio's
/// blocking thread pool, off the async executor.
pub struct Ranker {
    client: Client,
    catalogs: Mutex<HashMap<String, Arc<PreparedCatalog>>>,
    cache: Option<DiskCache>,
    model: Option<String>,
}

impl Ranker {
    /// A ranker for the server at `url` (e.g. `https://shop.example/blindscore`, or
    /// `http://127.0.0.1:8080` on loopback) with the default [`Connection`].
    pub fn new(url: &str) -> Self {
        Self::with_connection(url, &Connection::default())
    }

    /// A ranker with given trust roots, API key and transport policy. A bad URL or
    /// certificate is reported, as a typed error, by every call that needs the server.
    pub fn with_connection(url: &str, connection: &Connection) -> Self {
        Ranker {
            client: Client::new(url, connection),
            catalogs: Mutex::new(HashMap::new()),
            cache: None,
            model: None,
        }
    }

    /// Keep each catalog version's public data in this directory too, so a restarted app
    /// does not download the hint again.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(DiskCache::new(dir.into()));
        self
    }

    /// Refuse catalogs whose declared embedding model is not this one.
    pub fn expect_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        self.client.base()
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
        let mut prepared = self.prepare(catalog).await?;
        let mut retried = false;
        loop {
            let sealed = self.seal(&prepared, preferences).await?;
            match self.send(&prepared, sealed.bytes).await {
                Ok(response) => {
                    return self
                        .open(&prepared, sealed.pending, response, k, exclude)
                        .await
                }
                Err(ClientError::VersionGone) if !retried => {
                    retried = true;
                    self.forget(catalog);
                    prepared = self.prepare(catalog).await?;
                }
                Err(ClientError::Transport(_)) if !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Make sure the current version of `catalog` is on the device (e.g. to prefetch the
    /// hint while on Wi-Fi). Fetches its public data only when the version changed.
    pub async fn prepare(&self, catalog: &str) -> Result<Arc<PreparedCatalog>, ClientError> {
        let info = self.client.catalog_info(catalog).await?;
        let version = info.current.catalog_version()?;
        let space = info.current.embedding_space;
        if let Some(prepared) = self.cached(catalog).filter(|p| p.version() == version) {
            return Ok(prepared);
        }
        let from_disk = self.cache.as_ref().and_then(|c| c.load(catalog, &version));
        let prepared = match from_disk {
            Some(artifacts) => blocking(check(catalog.into(), space.clone(), artifacts))
                .await
                .ok()
                .filter(|(p, _)| p.version() == version),
            None => None,
        };
        let prepared = match prepared {
            Some((prepared, _)) => prepared,
            None => {
                let artifacts = self.client.fetch_artifacts(catalog, &version).await?;
                let (prepared, artifacts) =
                    blocking(check(catalog.into(), space, artifacts)).await?;
                if prepared.version() != version {
                    return Err(ProtocolError::Malformed(
                        "the artefacts are of another version than requested".into(),
                    )
                    .into());
                }
                if let Some(cache) = &self.cache {
                    cache.save(catalog, &version, &artifacts);
                }
                prepared
            }
        };
        if let Some(model) = &self.model {
            prepared.check_model(model)?;
        }
        let prepared = Arc::new(prepared);
        self.catalogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(catalog.to_string(), prepared.clone());
        Ok(prepared)
    }

    /// Seal a preference vector for a prepared version (see [`PreparedCatalog::seal`]), on
    /// a blocking thread; the app's expected model, if set, is checked too.
    pub async fn seal(
        &self,
        prepared: &Arc<PreparedCatalog>,
        preferences: &[f32],
    ) -> Result<SealedQuery, ClientError> {
        let (prepared, preferences) = (prepared.clone(), preferences.to_vec());
        let model = self.model.clone();
        blocking(move || prepared.seal(&preferences, model.as_deref())).await
    }

    /// Send sealed query bytes for a prepared version; returns the encoded response.
    pub async fn send(
        &self,
        prepared: &PreparedCatalog,
        query: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        self.client.score(prepared, query).await
    }

    /// Open a response (see [`PendingQuery::open`]) on a blocking thread.
    pub async fn open(
        &self,
        prepared: &Arc<PreparedCatalog>,
        pending: PendingQuery,
        response: Vec<u8>,
        k: usize,
        exclude: &HashSet<String>,
    ) -> Result<Vec<RankedItem>, ClientError> {
        let prepared = prepared.clone();
        let exclude = exclude.clone();
        blocking(move || pending.open(&prepared, &response, k, &exclude)).await
    }

    /// What a query to `catalog` will cost, before sending one.
    pub async fn cost(&self, catalog: &str) -> Result<QueryCost, ClientError> {
        Ok(self.prepare(catalog).await?.cost())
    }

    fn cached(&self, catalog: &str) -> Option<Arc<PreparedCatalog>> {
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
}

/// Check artefacts into a prepared catalog, handing the artefacts back for the cache.
fn check(
    name: String,
    space: blindscore_common::api::EmbeddingSpace,
    artifacts: crate::core::Artifacts,
) -> impl FnOnce() -> Result<(PreparedCatalog, crate::core::Artifacts), ClientError> {
    move || {
        let prepared = PreparedCatalog::check(&name, space, &artifacts)?;
        Ok((prepared, artifacts))
    }
}

/// Run CPU-heavy work on tokio's blocking pool. A panic there is a bug: it is resumed
/// here rather than turned into an error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(ClientError::Cancelled),
        },
    }
}
