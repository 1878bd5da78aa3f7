//! The service: its state, and turning loaded items into a served catalog version.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindscore_common::layout::CostModel;
use blindscore_common::params::DEFAULT_PARAMS;
use blindscore_common::{Layout, LayoutChoice};

use ipnet::IpNet;

use crate::access::{ApiKeys, BearerToken, Buckets, ForwardedHeader, RateLimit};
use crate::batcher::BatchConfig;
use blindscore_common::api::{EmbeddingSpace, Metric, Normalisation};

use crate::load::{LoadError, LoadedItems};
use crate::metrics::{process_memory, Metrics};
use crate::registry::{Registry, VersionEntry};
use crate::{CatalogSource, ServedCatalog};

/// Settings shared by every catalog of a service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Batching of concurrent queries.
    pub batch: BatchConfig,
    /// How long a replaced version stays answerable.
    pub grace: Duration,
    /// Per-request time limit (catalog replacement excepted).
    pub request_timeout: Duration,
    /// Time limit of a catalog replacement, upload and build (default 10 minutes).
    pub admin_timeout: Duration,
    /// Largest catalog replacement body.
    pub max_upload_bytes: u64,
    /// Bearer token of the admin endpoints; `None` disables them.
    pub admin_token: Option<BearerToken>,
    /// Proxies (addresses or networks) whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client for the rate limits; empty (the default) believes no such header.
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies write the client's address into (only that one is
    /// read).
    pub forwarded_header: ForwardedHeader,
    /// Serve without connection info (the peer's address), explicitly: the per-address
    /// rate limits are then off. Without this choice, a request that arrives without the
    /// peer's address while rate limits are on is refused (500 `internal`), so that limits
    /// are never silently off.
    pub without_peer_addresses: bool,
    /// Whether `/metrics` is served on the main listener (the default), or only where the
    /// operator serves [`crate::http::metrics_router`] (a separate listen address).
    pub metrics_on_main_listener: bool,
    /// Bearer token `/metrics` requires; `None` (the default) serves it to anyone who
    /// reaches it (it carries counts and sizes, no per-client data).
    pub metrics_token: Option<BearerToken>,
    /// Width of query values, bits.
    pub query_bits: u32,
    /// Layout: fixed, or `None` for the cost model's choice.
    pub layout: Option<Layout>,
    /// Per-client-address limit on catalog requests; `None` for none.
    pub rate_limit: Option<RateLimit>,
    /// API keys every catalog request must carry, with each app's quota; `None` for open
    /// access.
    pub api_keys: Option<Arc<ApiKeys>>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            batch: BatchConfig::default(),
            grace: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            admin_timeout: Duration::from_secs(600),
            max_upload_bytes: 4 << 30,
            admin_token: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            without_peer_addresses: false,
            metrics_on_main_listener: true,
            metrics_token: None,
            query_bits: 8,
            layout: None,
            rate_limit: Some(RateLimit::default()),
            api_keys: None,
        }
    }
}

/// How the operator declares a catalog's embedding space.
#[derive(Clone, Debug)]
pub struct SpaceDeclaration {
    pub model: String,
    pub normalisation: Normalisation,
    pub metric: Metric,
    /// Width of catalog values, bits; `None` for the widest the noise budget allows (the
    /// items are then loaded at 16 bits and narrowed).
    pub bits: Option<u32>,
    /// Also scale each dimension to the full range of values, the scales served with the
    /// item scales and folded into the query by the client.
    pub dimension_scales: bool,
}

impl Default for SpaceDeclaration {
    fn default() -> Self {
        SpaceDeclaration {
            model: "unspecified".into(),
            normalisation: Normalisation::L2,
            metric: Metric::Cosine,
            bits: None,
            dimension_scales: false,
        }
    }
}

/// Shared state of the HTTP service.
pub struct AppState {
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub config: ServiceConfig,
    /// Token buckets per client address.
    pub limiter: Option<Buckets<IpAddr>>,
    /// False while the start-up catalogs load.
    loading: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// State with no catalogs yet.
    pub fn new(config: ServiceConfig) -> Arc<Self> {
        Arc::new(AppState {
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
        let entry = build_planned(plan, &self.config, self.metrics.clone())?;
        self.registry.install(name, entry.clone());
        Ok(entry)
    }

    /// Build and install a planned version.
    pub fn build_planned_and_install(
        &self,
        plan: PlannedVersion,
    ) -> Result<Arc<VersionEntry>, LoadError> {
        let name = plan.name.clone();
        let entry = build_planned(plan, &self.config, self.metrics.clone())?;
        self.registry.install(&name, entry.clone());
        Ok(entry)
    }
}

/// Build a catalog version: quantized items to Fourier catalog and hint, with progress in
/// the log, and time and memory reported.
pub fn build_entry(
    name: &str,
    items: LoadedItems,
    declaration: &SpaceDeclaration,
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<VersionEntry>, LoadError> {
    build_planned(
        plan_entry(name, items, declaration, config)?,
        config,
        metrics,
    )
}

/// A catalog version checked and planned (its widths and layout chosen, the noise budget
/// met), ready for the costly build: everything that can fail on the operator's input has
/// been checked.
pub struct PlannedVersion {
    /// The version it will have.
    pub version: blindscore_common::CatalogVersion,
    name: String,
    started: Instant,
    ids_json: Vec<u8>,
    catalog: blindscore_common::QuantizedCatalog,
    scales: Vec<f32>,
    space: EmbeddingSpace,
    layout: LayoutChoice,
}

/// Check and plan a version: spread the dimensions if asked, narrow the values to the
/// widest the noise budget allows (or check the declared width against it).
pub fn plan_entry(
    name: &str,
    items: LoadedItems,
    declaration: &SpaceDeclaration,
    config: &ServiceConfig,
) -> Result<PlannedVersion, LoadError> {
    let started = Instant::now();
    let LoadedItems {
        ids,
        catalog,
        scales,
    } = items;
    // Only the encoded ids are kept (that is all the service sends), and they are encoded
    // before the build so that the strings are freed first.
    let ids_json = blindscore_common::artefacts::encode_ids(&ids);
    drop(ids);
    let (catalog, dimension_scales) = if declaration.dimension_scales {
        let (spread, t) = spread_dimensions(&catalog)?;
        (spread, Some(t))
    } else {
        (catalog, None)
    };
    let (catalog, mut scales) = if declaration.bits.is_none() {
        let choice = match config.layout {
            Some(layout) => LayoutChoice::Fixed(layout),
            None => LayoutChoice::Auto(CostModel::default()),
        };
        let (_, narrow, factor) = blindscore_common::catalog::widest_catalog(
            DEFAULT_PARAMS,
            &catalog,
            config.query_bits,
            choice,
        )?;
        tracing::info!(
            catalog = name,
            bits = narrow.bits(),
            "widest catalog values the noise budget allows"
        );
        let scales = scales
            .iter()
            .map(|s| (*s as f64 * factor) as f32)
            .collect::<Vec<f32>>();
        (narrow, scales)
    } else {
        (catalog, scales)
    };
    if let Some(t) = &dimension_scales {
        scales.extend_from_slice(t);
    }
    let space = EmbeddingSpace {
        model: declaration.model.clone(),
        dimension: catalog.dimension(),
        normalisation: declaration.normalisation,
        metric: declaration.metric,
    };
    let layout = match config.layout {
        Some(layout) => LayoutChoice::Fixed(layout),
        None => LayoutChoice::Auto(CostModel::default()),
    };
    // The shape the build will use must exist (a declared width may not fit the budget).
    let shape = blindscore_common::CatalogShape::for_catalog(
        DEFAULT_PARAMS,
        &catalog,
        config.query_bits,
        layout,
    )?;
    let version = source(name, &catalog, &scales, &ids_json, layout, config).version(&shape);
    Ok(PlannedVersion {
        version,
        name: name.to_string(),
        started,
        ids_json,
        catalog,
        scales,
        space,
        layout,
    })
}

/// What a version is built from: the same for its planned version digest and its build.
fn source<'a>(
    name: &'a str,
    catalog: &'a blindscore_common::QuantizedCatalog,
    scales: &'a [f32],
    ids_json: &'a [u8],
    layout: LayoutChoice,
    config: &ServiceConfig,
) -> CatalogSource<'a> {
    CatalogSource {
        catalog_id: name,
        params: DEFAULT_PARAMS,
        catalog,
        scales,
        query_bits: config.query_bits,
        layout,
        item_data: ids_json,
    }
}

/// Build a planned version: the Fourier catalog and the hint (CPU-heavy).
pub fn build_planned(
    plan: PlannedVersion,
    config: &ServiceConfig,
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
    let entry = VersionEntry::new(
        served,
        ids_json,
        &scales,
        space,
        seconds,
        config.batch,
        metrics,
    );
    let mem = process_memory();
    tracing::info!(
        catalog = name,
        version = %entry.version(),
        items = entry.served.shape().geometry.items,
        dimension = entry.served.shape().geometry.dimension,
        layout = %entry.served.shape().layout,
        seconds,
        version_mib = entry.memory_bytes as f64 / (1 << 20) as f64,
        resident_mib = mem.resident as f64 / (1 << 20) as f64,
        peak_resident_mib = mem.peak as f64 / (1 << 20) as f64,
        "catalog version built"
    );
    Ok(entry)
}

impl SpaceDeclaration {
    /// The width to load values at: the declared one, or 16 to narrow later.
    pub fn load_bits(&self) -> u32 {
        self.bits.unwrap_or(16)
    }
}

/// Scale every dimension of a quantized catalog to the full range of its width: returns
/// the catalog with `q'_ij = round(q_ij / t_j)` and the scales `t_j = max_i |q_ij| / max`,
/// so that `c_ij ~ s_i * t_j * q'_ij` and a query folded as `u_j * t_j` scores the same.
pub fn spread_dimensions(
    catalog: &blindscore_common::QuantizedCatalog,
) -> Result<(blindscore_common::QuantizedCatalog, Vec<f32>), LoadError> {
    let d = catalog.dimension();
    let max = blindscore_common::budget::max_abs_for_bits(catalog.bits()) as f64;
    let mut column_max = vec![0i32; d];
    for row in catalog.values().chunks_exact(d) {
        for (m, &v) in column_max.iter_mut().zip(row) {
            *m = (*m).max((v as i32).abs());
        }
    }
    // An all-zero dimension keeps scale 1 (its values stay zero).
    let t: Vec<f64> = column_max
        .iter()
        .map(|&m| if m == 0 { 1.0 } else { m as f64 / max })
        .collect();
    let values = catalog
        .values()
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(&t)
                .map(|(&v, &tj)| (v as f64 / tj).round().clamp(-max, max) as i16)
                .collect::<Vec<_>>()
        })
        .collect();
    let spread = blindscore_common::QuantizedCatalog::new(d, catalog.bits(), values)?;
    Ok((spread, t.iter().map(|&x| x as f32).collect()))
}
