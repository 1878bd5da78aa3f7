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

use blindscore_common::api::EmbeddingSpace;
use blindscore_common::digest::{hex, sha256};
use blindscore_common::{CatalogVersion, ProtocolError};

use crate::core::{
    Artifacts, Limits, PendingQuery, PreparedCatalog, QueryCost, RankedItem, SealedQuery,
};
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
    cache: Option<Arc<DiskCache>>,
    model: Option<String>,
    dimension: Option<usize>,
    limits: Limits,
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
            dimension: None,
            limits: Limits::default(),
        }
    }

    /// Keep each catalog version's public data in this directory too, so a restarted app
    /// does not download the hint again. Entries are kept per server (its URL), so one
    /// server cannot plant data that the app then uses for another.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(Arc::new(DiskCache::new(dir.into(), self.client.base())));
        self
    }

    /// Refuse catalogs whose declared embedding model is not this one.
    pub fn expect_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Refuse catalogs whose declared dimension is not this one, before fetching anything
    /// but their info ([`Ranker::rank`] always checks the vector's own dimension so).
    pub fn expect_dimension(mut self, dimension: usize) -> Self {
        self.dimension = Some(dimension);
        self
    }

    /// Limit what a server may make this device fetch, hold and send (see [`Limits`] for
    /// the defaults).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
        let mut prepared = self.prepare_for(catalog, Some(preferences.len())).await?;
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
                    prepared = self.prepare_for(catalog, Some(preferences.len())).await?;
                }
                Err(ClientError::Transport(_)) if !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Make sure the current version of `catalog` is on the device (e.g. to prefetch the
    /// hint while on Wi-Fi). Fetches its public data only when the version changed.
    pub async fn prepare(&self, catalog: &str) -> Result<Arc<PreparedCatalog>, ClientError> {
        self.prepare_for(catalog, None).await
    }

    async fn prepare_for(
        &self,
        catalog: &str,
        dimension: Option<usize>,
    ) -> Result<Arc<PreparedCatalog>, ClientError> {
        let info = self.client.catalog_info(catalog).await?.current;
        let version = info.catalog_version()?;
        // The app's expectations and limits, before anything else is fetched.
        self.limits.check_space(
            &info.embedding_space,
            self.model.as_deref(),
            dimension.into_iter().chain(self.dimension),
        )?;
        if let Some(prepared) = self.cached(catalog).filter(|p| p.version() == version) {
            return Ok(prepared);
        }
        let expected = Expected {
            name: catalog.to_string(),
            version,
            space: info.embedding_space,
            hint_sha256: info.hint_sha256,
            limits: self.limits,
        };
        if let Some(cache) = &self.cache {
            let (cache, expected) = (cache.clone(), expected.clone());
            // A damaged or foreign cache entry only costs a download.
            let cached = blocking(move || {
                Ok(cache
                    .load(&expected.name, &expected.version, &expected.limits)
                    .and_then(|a| expected.check(a).ok()))
            })
            .await?;
            if let Some((prepared, _)) = cached {
                return Ok(self.remember(catalog, prepared));
            }
        }
        let artifacts = self
            .client
            .fetch_artifacts(catalog, &version, &self.limits)
            .await?;
        let name = expected.name.clone();
        let (prepared, artifacts) = blocking(move || expected.check(artifacts)).await?;
        if let Some(cache) = &self.cache {
            let cache = cache.clone();
            blocking(move || {
                cache.save(&name, &version, &artifacts);
                Ok(())
            })
            .await?;
        }
        Ok(self.remember(catalog, prepared))
    }

    /// Seal a preference vector for a prepared version (see [`PreparedCatalog::seal`]), on
    /// a blocking thread; the app's expected model, if set, is checked too.
    pub async fn seal(
        &self,
        prepared: &Arc<PreparedCatalog>,
        preferences: &[f32],
    ) -> Result<SealedQuery, ClientError> {
        let prepared = prepared.clone();
        let preferences = zeroize::Zeroizing::new(preferences.to_vec());
        let model = self.model.clone();
        blocking(move || prepared.seal(&preferences, model.as_deref())).await
    }

    /// Send sealed query bytes for a prepared version; returns the encoded response.
    pub async fn send(
        &self,
        prepared: &PreparedCatalog,
        query: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        self.client.score(prepared, query, &self.limits).await
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

    fn remember(&self, catalog: &str, prepared: PreparedCatalog) -> Arc<PreparedCatalog> {
        let prepared = Arc::new(prepared);
        self.catalogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(catalog.to_string(), prepared.clone());
        prepared
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

/// What the catalog info says a version's artefacts must be.
#[derive(Clone)]
struct Expected {
    name: String,
    version: CatalogVersion,
    space: EmbeddingSpace,
    hint_sha256: String,
    limits: Limits,
}

impl Expected {
    /// Check artefacts into a prepared catalog (CPU-heavy), handing them back for the
    /// cache: the hint against the info's digest, everything against the description, the
    /// version against the info's.
    fn check(self, artifacts: Artifacts) -> Result<(PreparedCatalog, Artifacts), ClientError> {
        if hex(&sha256(&artifacts.hint)) != self.hint_sha256 {
            return Err(ProtocolError::DigestMismatch(
                "the hint's SHA-256 differs from the catalog info's",
            )
            .into());
        }
        let prepared = PreparedCatalog::check(&self.name, self.space, &artifacts, &self.limits)?;
        if prepared.version() != self.version {
            return Err(ProtocolError::Malformed(
                "the artefacts are of another version than requested".into(),
            )
            .into());
        }
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
