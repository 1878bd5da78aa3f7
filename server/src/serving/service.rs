//! The service: its shared state, and building a planned version into a served one (the
//! batcher of each version started here, on the service's runtime).

use std::net::IpAddr;
use std::sync::Arc;

use super::batcher::Batcher;
use super::config::{ServiceConfig, SpaceDeclaration};
use super::metrics::{process_memory, CatalogGauges, Metrics};
use super::plan::{plan_entry, source, PlannedShare, PlannedVersion};
use super::registry::Registry;
use super::version::VersionEntry;
use crate::access::Buckets;
use crate::load::{LoadError, LoadedItems};
use crate::scan::ServedCatalog;

/// Shared state of the HTTP service.
pub struct AppState {
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub config: ServiceConfig,
    /// Token buckets per client address.
    pub limiter: Option<Buckets<IpAddr>>,
    /// False while the start-up catalogs load.
    loading: std::sync::atomic::AtomicBool,
    /// Where the versions' batchers run.
    runtime: tokio::runtime::Handle,
}

impl AppState {
    /// State with no catalogs yet, whose versions' batchers will run on the tokio runtime
    /// this is called from.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(config: ServiceConfig) -> Arc<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("AppState::new is called within the tokio runtime that serves it");
        Arc::new(AppState {
            runtime,
            registry: Registry::new(config.grace),
            metrics: Arc::new(Metrics::default()),
            limiter: config
                .rate_limit
                .map(|l| Buckets::new(l.per_second, l.burst)),
            config,
            loading: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Mark the start-up catalogs as loading (not ready) or loaded.
    pub fn set_loading(&self, loading: bool) {
        self.loading
            .store(loading, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ready: start-up loading is over and at least one catalog is served.
    pub fn is_ready(&self) -> bool {
        !self.loading.load(std::sync::atomic::Ordering::SeqCst) && !self.registry.list().is_empty()
    }

    /// Build a version from loaded items (CPU-heavy: call from a blocking context) and
    /// install it as `name`'s current version.
    pub fn build_and_install(
        &self,
        name: &str,
        items: LoadedItems,
        declaration: &SpaceDeclaration,
    ) -> Result<Arc<VersionEntry>, LoadError> {
        // The same order as a replacement over HTTP: claim, check and plan, drop a version
        // still in grace (never three in memory), build, install.
        let guard = self
            .registry
            .begin_build(name)
            .ok_or_else(|| LoadError::Busy(name.to_string()))?;
        let plan = plan_entry(name, items, declaration, &self.config)?;
        if let Some(current) = self.registry.current(name) {
            if current.version() == plan.version {
                // The same content is the same version: nothing to build or drop.
                return Ok(current);
            }
        }
        guard.make_room();
        self.build_planned_and_install(plan)
    }

    /// Build and install a planned version.
    pub fn build_planned_and_install(
        &self,
        plan: PlannedVersion,
    ) -> Result<Arc<VersionEntry>, LoadError> {
        let name = plan.name.clone();
        let entry = self.build_planned(plan)?;
        self.registry.install(&name, entry.clone());
        Ok(entry)
    }

    /// Build a planned version (the Fourier catalog and the hint, CPU-heavy) and start its
    /// batcher; it is not installed.
    pub fn build_planned(&self, plan: PlannedVersion) -> Result<Arc<VersionEntry>, LoadError> {
        build_planned(plan, &self.config, &self.runtime, self.metrics.clone())
    }

    /// Build a shard's share of a version and install it (a shard process serves nothing
    /// else).
    pub fn build_share_and_install(
        &self,
        share: PlannedShare,
    ) -> Result<Arc<VersionEntry>, LoadError> {
        let name = share.description.catalog.catalog_id.clone();
        let _guard = self
            .registry
            .begin_build(&name)
            .ok_or_else(|| LoadError::Busy(name.clone()))?;
        let entry = build_share(share, &self.config, &self.runtime, self.metrics.clone())?;
        self.registry.install(&name, entry.clone());
        Ok(entry)
    }

    /// The catalogs' gauges for the metrics, now.
    pub fn catalog_gauges(&self) -> Vec<CatalogGauges> {
        self.registry
            .list()
            .into_iter()
            .map(|(name, current, previous)| CatalogGauges {
                name,
                items: current.shape().geometry.items,
                versions_held: 1 + previous.is_some() as usize,
                memory_bytes: current.memory_bytes
                    + previous.as_ref().map_or(0, |p| p.memory_bytes),
                build_seconds: current.build_seconds,
                queue_depth: current.queued(),
            })
            .collect()
    }
}

/// Build a planned version: the Fourier catalog and the hint (CPU-heavy), with progress in
/// the log; its batcher started on `runtime`.
fn build_planned(
    plan: PlannedVersion,
    config: &ServiceConfig,
    runtime: &tokio::runtime::Handle,
    metrics: Arc<Metrics>,
) -> Result<Arc<VersionEntry>, LoadError> {
    let PlannedVersion {
        version: _,
        name,
        started,
        ids_json,
        catalog,
        scales,
        space,
        layout,
        shape: _,
    } = plan;
    let name = name.as_str();
    let served = ServedCatalog::build(
        &source(name, &catalog, &scales, &ids_json, layout, config),
        &|step, done, total| {
            // About every 10%, and at the end of each step.
            if done == total || done % (total / 10).max(1) == 0 {
                tracing::info!(catalog = name, step, done, total, "building");
            }
        },
    )?;
    drop(catalog);
    let seconds = started.elapsed().as_secs_f64();
    let served = Arc::new(served);
    let batcher = Batcher::start(runtime, served.clone(), config.batch, metrics);
    let entry = Arc::new(VersionEntry::scanned(
        served,
        batcher,
        ids_json,
        &scales,
        space,
        seconds,
        config.queries_per_version,
        None,
    ));
    log_built(name, &entry);
    Ok(entry)
}

/// Build a shard's share of a version (its Fourier catalog and its hint blocks, which must
/// equal the ones it was given) and start its batcher.
fn build_share(
    share: PlannedShare,
    config: &ServiceConfig,
    runtime: &tokio::runtime::Handle,
    metrics: Arc<Metrics>,
) -> Result<Arc<VersionEntry>, LoadError> {
    let started = std::time::Instant::now();
    let PlannedShare {
        description,
        shard,
        catalog,
        ids_json,
        scales,
        space,
        hint_blocks,
    } = share;
    let name = description.catalog.catalog_id.clone();
    let served = ServedCatalog::build_share(&description, &catalog, &|step, done, total| {
        if done == total || done % (total / 10).max(1) == 0 {
            tracing::info!(catalog = %name, shard = shard.index, step, done, total, "building");
        }
    })?;
    drop(catalog);
    let expected = blindscore_common::wire::encode(&blindscore_common::HintMessage {
        wire_version: blindscore_common::wire::WIRE_VERSION,
        catalog: description.catalog.clone(),
        words: hint_blocks,
    });
    if served.hint_message() != expected.as_slice() {
        return Err(LoadError::Protocol(
            blindscore_common::ProtocolError::Malformed(format!(
                "shard {}'s hint blocks differ from the hint recomputed from its items",
                shard.index
            )),
        ));
    }
    let served = Arc::new(served);
    let batcher = Batcher::start(runtime, served.clone(), config.batch, metrics);
    let entry = Arc::new(VersionEntry::scanned(
        served,
        batcher,
        ids_json,
        &scales,
        space,
        started.elapsed().as_secs_f64(),
        config.queries_per_version,
        Some(shard),
    ));
    log_built(&name, &entry);
    Ok(entry)
}

fn log_built(name: &str, entry: &VersionEntry) {
    let seconds = entry.build_seconds;
    let mem = process_memory();
    tracing::info!(
        catalog = name,
        version = %entry.version(),
        shard = ?entry.shard,
        items = entry.shape().geometry.items,
        dimension = entry.shape().geometry.dimension,
        layout = %entry.shape().layout,
        seconds,
        version_mib = entry.memory_bytes as f64 / (1 << 20) as f64,
        resident_mib = mem.resident as f64 / (1 << 20) as f64,
        peak_resident_mib = mem.peak as f64 / (1 << 20) as f64,
        "catalog version built"
    );
    let shape = entry.shape();
    let transfer = &entry.transfer;
    let alternative = transfer.plaintext_alternative(shape);
    tracing::info!(
        catalog = name,
        first_query_bytes =
            transfer.once_per_version + transfer.query_message + transfer.response_message,
        later_query_bytes = transfer.query_message + transfer.response_message,
        queries = alternative.queries_per_version,
        encrypted_bytes = alternative.encrypted_bytes,
        plaintext_bytes = alternative.plaintext_bytes,
        "what a client transfers"
    );
    if !alternative.encryption_saves_bytes {
        tracing::warn!(
            catalog = name,
            queries = alternative.queries_per_version,
            encrypted_bytes = alternative.encrypted_bytes,
            plaintext_bytes = alternative.plaintext_bytes,
            "not worth encrypting by bytes: over this many queries a client would transfer fewer bytes downloading the quantized catalog (public to clients) and ranking on the device"
        );
    }
}
