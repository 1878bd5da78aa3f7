//! `blindscore-server`: serve catalogs of item embeddings for private scoring.
//!
//! With no arguments it serves the embedded demo catalog (12,000 real Debian packages) on
//! 127.0.0.1:8080. Catalogs come from `.npy` matrices with id files, or JSON Lines.

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blindscore_common::api::{Metric, Normalisation};
use blindscore_common::Layout;
use blindscore_demo::{DemoCatalog, DEMO_ITEMS, DEMO_MODEL};
use blindscore_server::access::{parse_proxy, ApiKeys, BearerToken, ForwardedHeader, RateLimit};
use blindscore_server::http::serve;
use blindscore_server::http::tls::server_config_from_files;
use blindscore_server::load::{demo_items, read_ids, read_jsonl, read_npy, LoadedItems};
use blindscore_server::serving::metrics::process_memory;
use blindscore_server::serving::{AppState, BatchConfig, ServiceConfig, SpaceDeclaration};
use clap::Parser;
use serde::Deserialize;

/// Configuration of the server (flags, or environment variables).
#[derive(Parser, Debug)]
#[command(
    version,
    about = "blindscore: score an item catalog against encrypted preferences"
)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "BLINDSCORE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A catalog to serve, NAME=PATH, where PATH is a .npy matrix (items x dims; give its
    /// ids with --ids, in the same order) or a .jsonl file. Repeatable.
    #[arg(long = "catalog", value_name = "NAME=PATH")]
    catalogs: Vec<String>,
    /// Item ids (one per line) for each .npy catalog, in the order of --catalog.
    #[arg(long = "ids", value_name = "PATH")]
    ids: Vec<PathBuf>,
    /// A JSON file listing catalogs: {"catalogs": [{"name", "path", "ids", "model",
    /// "normalisation", "metric", "bits"}]}.
    #[arg(long, env = "BLINDSCORE_CONFIG")]
    config: Option<PathBuf>,
    /// Embedding model the catalogs were made with (declared in their description).
    #[arg(long, env = "BLINDSCORE_MODEL", default_value = "unspecified")]
    model: String,
    /// Row normalisation applied at load: l2 or none.
    #[arg(long, env = "BLINDSCORE_NORMALISATION", default_value = "l2")]
    normalisation: Normalisation,
    /// What the scores stand for: cosine or dot.
    #[arg(long, env = "BLINDSCORE_METRIC", default_value = "cosine")]
    metric: Metric,
    /// Width of catalog values, bits (default: the widest the noise budget allows for the
    /// catalog's real norms and dimension).
    #[arg(long, env = "BLINDSCORE_BITS")]
    bits: Option<u32>,
    /// Scale each dimension to the full range too (folded into the query by the client).
    #[arg(long, env = "BLINDSCORE_DIMENSION_SCALES")]
    dimension_scales: bool,
    /// Width of query values, bits.
    #[arg(long, env = "BLINDSCORE_QUERY_BITS", default_value_t = 8)]
    query_bits: u32,
    /// Group size b of the layout (1 = column); by default the layout objective picks it.
    #[arg(long, env = "BLINDSCORE_GROUP_SIZE")]
    group_size: Option<u32>,
    /// How many queries a client makes of one catalog version (rankings before the
    /// catalog changes): the layout is chosen for the fewest bytes over that many, within
    /// the server's speed (see the README).
    #[arg(long, env = "BLINDSCORE_QUERIES_PER_VERSION", default_value_t = blindscore_common::objective::DEFAULT_QUERIES_PER_VERSION, value_parser = clap::value_parser!(u32).range(1..))]
    queries_per_version: u32,
    /// Batching window for concurrent queries, milliseconds.
    #[arg(long, env = "BLINDSCORE_BATCH_WINDOW_MS", default_value_t = 2)]
    batch_window_ms: u64,
    /// Most queries scored in one pass.
    #[arg(long, env = "BLINDSCORE_MAX_BATCH", default_value_t = 16)]
    max_batch: usize,
    /// Most queries waiting per catalog version (beyond it: 503 with Retry-After).
    #[arg(long, env = "BLINDSCORE_QUEUE_DEPTH", default_value_t = 64)]
    queue_depth: usize,
    /// Seconds a replaced version stays answerable.
    #[arg(long, env = "BLINDSCORE_GRACE_SECONDS", default_value_t = 60)]
    grace_seconds: u64,
    /// Per-request time limit, seconds (catalog replacement excepted).
    #[arg(long, env = "BLINDSCORE_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    request_timeout_seconds: u64,
    /// Time limit of a catalog replacement (upload and build), seconds.
    #[arg(long, env = "BLINDSCORE_ADMIN_TIMEOUT_SECONDS", default_value_t = 600)]
    admin_timeout_seconds: u64,
    /// Largest catalog replacement body, bytes.
    #[arg(long, env = "BLINDSCORE_MAX_UPLOAD_BYTES", default_value_t = 4 << 30)]
    max_upload_bytes: u64,
    /// A proxy (address or network, e.g. 10.0.0.0/8) whose Forwarded or X-Forwarded-For
    /// header names the client for the rate limits. Repeatable; by default none is
    /// believed and the limits key on the peer address.
    #[arg(long = "trusted-proxy", env = "BLINDSCORE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// The header the trusted proxies write the client's address into: x-forwarded-for
    /// or forwarded. Only that one is read.
    #[arg(
        long,
        env = "BLINDSCORE_FORWARDED_HEADER",
        default_value = "x-forwarded-for"
    )]
    forwarded_header: ForwardedHeader,
    /// Serve /metrics on this address only (not on --listen). By default /metrics is on
    /// the main listener; with BLINDSCORE_METRICS_TOKEN set it needs that bearer token.
    #[arg(long, env = "BLINDSCORE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM, leaf first). TLS is required whenever the server
    /// listens beyond loopback.
    #[arg(long, env = "BLINDSCORE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "BLINDSCORE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback anyway (only behind a proxy that terminates TLS).
    #[arg(long, env = "BLINDSCORE_INSECURE_PLAIN_HTTP")]
    insecure_plain_http: bool,
    /// Catalog requests per second allowed per client address (0: no limit).
    #[arg(long, env = "BLINDSCORE_RATE_LIMIT", default_value_t = 20.0)]
    rate_limit: f64,
    /// How many requests a client address may make at once before the rate applies.
    #[arg(long, env = "BLINDSCORE_RATE_BURST", default_value_t = 40)]
    rate_burst: u32,
    /// API keys file: {"keys": [{"app", "key_sha256", "queries_per_minute"}]}; with it,
    /// every catalog request needs a key in the x-api-key header.
    #[arg(long, env = "BLINDSCORE_API_KEYS")]
    api_keys: Option<PathBuf>,
}

#[derive(Deserialize)]
struct ConfigFile {
    catalogs: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEntry {
    name: String,
    path: PathBuf,
    ids: Option<PathBuf>,
    model: Option<String>,
    normalisation: Option<Normalisation>,
    metric: Option<Metric>,
    bits: Option<u32>,
    dimension_scales: Option<bool>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    tracing::info!(?config, "blindscore-server starting");
    let catalogs = catalog_entries(&config)?;
    let service = ServiceConfig {
        batch: BatchConfig {
            window: Duration::from_millis(config.batch_window_ms),
            max_batch: config.max_batch.max(1),
            queue_depth: config.queue_depth.max(1),
        },
        grace: Duration::from_secs(config.grace_seconds),
        request_timeout: Duration::from_secs(config.request_timeout_seconds),
        admin_timeout: Duration::from_secs(config.admin_timeout_seconds),
        max_upload_bytes: config.max_upload_bytes,
        admin_token: token_from_env("BLINDSCORE_ADMIN_TOKEN")?,
        trusted_proxies: config.trusted_proxies.clone(),
        forwarded_header: config.forwarded_header,
        without_peer_addresses: false,
        metrics_on_main_listener: config.metrics_listen.is_none(),
        metrics_token: token_from_env("BLINDSCORE_METRICS_TOKEN")?,
        query_bits: config.query_bits,
        layout: config.group_size.map(Layout::from_group_size),
        queries_per_version: config.queries_per_version,
        rate_limit: (config.rate_limit > 0.0).then_some(RateLimit {
            per_second: config.rate_limit,
            burst: config.rate_burst.max(1),
        }),
        api_keys: match &config.api_keys {
            Some(path) => Some(Arc::new(ApiKeys::load(path).map_err(anyhow::Error::msg)?)),
            None => None,
        },
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            server_config_from_files(cert, key)
                .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?,
        ),
        _ if !config.listen.ip().is_loopback() && !config.insecure_plain_http => {
            anyhow::bail!(
                "listening on {} (beyond loopback) needs TLS: give --tls-cert and --tls-key, or --insecure-plain-http behind a proxy that terminates TLS",
                config.listen
            );
        }
        _ => None,
    };
    if service.admin_token.is_none() {
        tracing::info!(
            "admin endpoints disabled (set BLINDSCORE_ADMIN_TOKEN to enable catalog replacement)"
        );
    }
    let state = AppState::new(service);
    state.set_loading(true);
    state
        .registry
        .expect(catalogs.iter().map(|(name, _, _)| name.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        "listening on {}://{} (ready once the catalogs are loaded: /readyz)",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );

    let loader = state.clone();
    let loading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (name, load, declaration) in catalogs {
            let items = load().with_context(|| format!("loading catalog {name:?}"))?;
            loader
                .build_and_install(&name, items, &declaration)
                .with_context(|| format!("building catalog {name:?}"))?;
        }
        let mem = process_memory();
        tracing::info!(
            resident_mib = mem.resident >> 20,
            peak_mib = mem.peak >> 20,
            "all catalogs loaded"
        );
        loader.set_loading(false);
        Ok(())
    });
    let expiry = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            expiry.registry.expire();
            if let Some(limiter) = &expiry.limiter {
                limiter.prune();
            }
        }
    });
    if let Some(addr) = config.metrics_listen {
        if !addr.ip().is_loopback() && !config.insecure_plain_http {
            anyhow::bail!(
                "--metrics-listen {addr} is beyond loopback, where the metrics (and their token) would travel in plain HTTP: listen on loopback, or add --insecure-plain-http behind a proxy that terminates TLS"
            );
        }
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for the metrics"))?;
        tracing::info!("metrics on http://{}/metrics", metrics.local_addr()?);
        let metrics_state = state.clone();
        tokio::spawn(async move {
            if let Err(e) =
                blindscore_server::http::serve_metrics(metrics, metrics_state, shutdown_signal())
                    .await
            {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let server = tokio::spawn(serve(listener, state.clone(), tls, shutdown_signal()));
    // A catalog that cannot be loaded at start-up stops the server with its reason.
    loading.await??;
    server.await??;
    Ok(())
}

/// A bearer token from the environment (never a flag: flags show in process lists). Unset
/// turns its endpoint off (admin) or leaves it open (metrics); set but empty is an error.
fn token_from_env(name: &str) -> anyhow::Result<Option<BearerToken>> {
    match std::env::var(name) {
        Ok(token) => Ok(Some(
            BearerToken::new(&token).with_context(|| name.to_string())?,
        )),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{name}: {e}")),
    }
}

type Loader = Box<dyn FnOnce() -> anyhow::Result<LoadedItems> + Send>;

fn catalog_entries(config: &Config) -> anyhow::Result<Vec<(String, Loader, SpaceDeclaration)>> {
    let default = SpaceDeclaration {
        model: config.model.clone(),
        normalisation: config.normalisation,
        metric: config.metric,
        bits: config.bits,
        dimension_scales: config.dimension_scales,
    };
    let mut out: Vec<(String, Loader, SpaceDeclaration)> = Vec::new();
    let mut ids = config.ids.iter();
    let mut entries: Vec<CatalogEntry> = Vec::new();
    for spec in &config.catalogs {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--catalog {spec:?}: expected NAME=PATH"))?;
        let path = PathBuf::from(path);
        let is_npy = path.extension().is_some_and(|e| e == "npy");
        let ids = if is_npy {
            Some(
                ids.next()
                    .with_context(|| format!("--catalog {name}: a .npy catalog needs --ids"))?
                    .clone(),
            )
        } else {
            None
        };
        entries.push(CatalogEntry {
            name: name.to_string(),
            path,
            ids,
            model: None,
            normalisation: None,
            metric: None,
            bits: None,
            dimension_scales: None,
        });
    }
    if let Some(file) = &config.config {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let parsed: ConfigFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        entries.extend(parsed.catalogs);
    }
    for e in entries {
        blindscore_common::wire::validate_catalog_id(&e.name)?;
        let declaration = SpaceDeclaration {
            model: e.model.unwrap_or_else(|| default.model.clone()),
            normalisation: e.normalisation.unwrap_or(default.normalisation),
            metric: e.metric.unwrap_or(default.metric),
            bits: e.bits.or(default.bits),
            dimension_scales: e.dimension_scales.unwrap_or(default.dimension_scales),
        };
        let (bits, norm) = (declaration.load_bits(), declaration.normalisation);
        let path = e.path;
        let ids_path = e.ids;
        let loader: Loader = Box::new(move || {
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            if path.extension().is_some_and(|x| x == "npy") {
                let ids_path = ids_path.context("a .npy catalog needs an ids file")?;
                let ids = read_ids(BufReader::new(
                    File::open(&ids_path)
                        .with_context(|| format!("opening {}", ids_path.display()))?,
                ))?;
                Ok(read_npy(BufReader::new(file), ids, bits, norm)?)
            } else {
                Ok(read_jsonl(BufReader::new(file), bits, norm)?)
            }
        });
        out.push((e.name, loader, declaration));
    }
    if out.is_empty() {
        tracing::info!(
            "no catalog given: serving the embedded demo catalog 'demo' ({} real Debian packages, {})",
            DEMO_ITEMS,
            DEMO_MODEL
        );
        let declaration = SpaceDeclaration {
            model: DEMO_MODEL.into(),
            ..default
        };
        let loader: Loader = Box::new(move || {
            let demo = DemoCatalog::load()?;
            Ok(demo_items(&demo)?)
        });
        out.push(("demo".into(), loader, declaration));
    }
    Ok(out)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
