//! `blindscore-server`: serve catalogs of item embeddings for private scoring.
//!
//! With no arguments it serves the embedded demo catalog (12,000 real Debian packages) on
//! 127.0.0.1:8080. Catalogs come from `.npy` matrices with id files, or JSON Lines.

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blindscore_common::api::{Metric, Normalisation};
use blindscore_common::Layout;
use blindscore_demo::{DemoCatalog, DEMO_ITEMS, DEMO_MODEL};
use blindscore_server::access::{parse_proxy, ApiKeys, BearerToken, ForwardedHeader, RateLimit};
use blindscore_server::artefact::{
    install_artefact, write_artefact, Artefact, Following, Route, RouteSource, Router, Routes,
};
use blindscore_server::http::serve;
use blindscore_server::http::tls::server_config_from_files;
use blindscore_server::load::{demo_items, read_ids, read_jsonl, read_npy, LoadedItems};
use blindscore_server::origins::AllowedOrigins;
use blindscore_server::serving::metrics::process_memory;
use blindscore_server::serving::{
    plan_entry, AppState, BatchConfig, ServiceConfig, SpaceDeclaration,
};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// blindscore-server: with no subcommand, `serve` (the embedded demo catalog when no catalog
/// is given).
#[derive(Parser, Debug)]
#[command(
    version,
    about = "blindscore: score an item catalog against encrypted preferences",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve catalogs (the default): catalog files, the embedded demo, or an artefact
    /// (whole, or one shard of it behind a router).
    Serve(ServeArgs),
    /// Build one catalog into an artefact directory (widths, layout, version and hint
    /// computed once over every item), optionally split into shards.
    Build(BuildArgs),
    /// The public edge of a sharded catalog: serves its artefacts, and sends each query to
    /// every shard and joins their answers.
    Route(RouteArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    catalogs: CatalogArgs,
    /// Serve the artefact in this directory (made by `build`) instead of catalog files:
    /// nothing is quantized or chosen again; every file's digest and the hint are checked.
    #[arg(long, env = "BLINDSCORE_ARTEFACT", value_name = "DIR", conflicts_with_all = ["catalogs", "config"])]
    artefact: Option<PathBuf>,
    /// Serve only this shard of the artefact, as an internal service behind `route`: it
    /// answers scores for its share of the items, never the catalog's artefacts; rate
    /// limits and catalog replacement are off.
    #[arg(long, env = "BLINDSCORE_SHARD", requires = "artefact")]
    shard: Option<usize>,
}

#[derive(Args, Debug)]
struct BuildArgs {
    #[command(flatten)]
    catalogs: CatalogArgs,
    /// The artefact directory to write (must not exist yet).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many shards to split the items into (ranges of whole blocks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    shards: u32,
}

#[derive(Args, Debug)]
struct RouteArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// The routes file: for each catalog, its artefact and its shards' URLs (JSON, see
    /// the README). Read again whenever it changes: a route to a new artefact makes that
    /// version current once every one of its shards answers ready for it.
    #[arg(long, env = "BLINDSCORE_ROUTES", value_name = "FILE", conflicts_with_all = ["artefact", "shard_urls"])]
    routes: Option<PathBuf>,
    /// Instead of a routes file, one sharded catalog's artefact directory (its manifest,
    /// ids, scales and hint blocks are read; its items are not).
    #[arg(
        long,
        env = "BLINDSCORE_ARTEFACT",
        value_name = "DIR",
        requires = "shard_urls"
    )]
    artefact: Option<PathBuf>,
    /// With --artefact: where shard I is served, I=URL (a load-balanced service of its
    /// replicas), one for every shard of the artefact.
    #[arg(
        long = "shard-url",
        value_name = "I=URL",
        env = "BLINDSCORE_SHARD_URLS",
        value_delimiter = ',',
        requires = "artefact"
    )]
    shard_urls: Vec<String>,
    /// Time limit of a query's shard calls, seconds (a call is retried once within it).
    #[arg(long, env = "BLINDSCORE_SHARD_TIMEOUT_SECONDS", default_value_t = 10)]
    shard_timeout_seconds: u64,
    /// How often the routes file is read and a new version's shards are probed,
    /// milliseconds.
    #[arg(long, env = "BLINDSCORE_ROUTES_POLL_MS", default_value_t = 1000)]
    routes_poll_ms: u64,
}

/// How the service listens and limits requests.
#[derive(Args, Debug)]
struct ServiceArgs {
    /// Address to listen on.
    #[arg(long, env = "BLINDSCORE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
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
    /// An origin whose web pages may call the API from a browser (CORS), as a browser
    /// sends it: https://shop.example. Repeatable; `*` allows every origin. None by default.
    #[arg(
        long = "allow-origin",
        value_name = "ORIGIN",
        env = "BLINDSCORE_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    allow_origins: Vec<String>,
}

/// The catalogs to load from files, and how to encode them.
#[derive(Args, Debug)]
struct CatalogArgs {
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    // The scan's threads by name (`scan-N`, beside tokio's `tokio-runtime-w`), so that an
    // operator's per-thread CPU figures tell scoring from serving.
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("scan-{i}"))
        .build_global()
        .context("starting the scan's threads")?;
    match cli.command {
        Some(Command::Build(args)) => build(args),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async move {
                match command {
                    Some(Command::Route(args)) => route(args).await,
                    Some(Command::Serve(args)) => serve_catalogs(args).await,
                    _ => serve_catalogs(cli.serve).await,
                }
            })
        }
    }
}

/// `build`: load and plan the catalog as `serve` would, and write it as an artefact.
fn build(args: BuildArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut catalogs = catalog_entries(&args.catalogs)?;
    if catalogs.len() != 1 {
        anyhow::bail!(
            "build writes one catalog per artefact; {} were given",
            catalogs.len()
        );
    }
    let (name, load, declaration) = catalogs.remove(0);
    let config = ServiceConfig {
        query_bits: args.catalogs.query_bits,
        layout: args.catalogs.group_size.map(Layout::from_group_size),
        queries_per_version: args.catalogs.queries_per_version,
        ..ServiceConfig::default()
    };
    tracing::info!(catalog = %name, "loading");
    let items = load().with_context(|| format!("loading catalog {name:?}"))?;
    let plan = plan_entry(&name, items, &declaration, &config)
        .with_context(|| format!("planning catalog {name:?}"))?;
    let manifest = write_artefact(
        &args.out,
        &plan,
        args.shards as usize,
        &|step| tracing::info!(catalog = %name, "writing {step}"),
    )
    .with_context(|| format!("writing the artefact to {}", args.out.display()))?;
    tracing::info!(
        catalog = %name,
        version = %manifest.version,
        items = manifest.items,
        dimension = manifest.dimension,
        layout = %manifest.layout,
        catalog_bits = manifest.catalog_bits,
        shards = manifest.shards.len(),
        seconds = started.elapsed().as_secs_f64(),
        "artefact written to {}",
        args.out.display()
    );
    Ok(())
}

/// The service's settings from its flags.
fn service_config(args: &ServiceArgs) -> anyhow::Result<ServiceConfig> {
    Ok(ServiceConfig {
        batch: BatchConfig {
            window: Duration::from_millis(args.batch_window_ms),
            max_batch: args.max_batch.max(1),
            queue_depth: args.queue_depth.max(1),
        },
        grace: Duration::from_secs(args.grace_seconds),
        request_timeout: Duration::from_secs(args.request_timeout_seconds),
        admin_timeout: Duration::from_secs(args.admin_timeout_seconds),
        max_upload_bytes: args.max_upload_bytes,
        admin_token: token_from_env("BLINDSCORE_ADMIN_TOKEN")?,
        trusted_proxies: args.trusted_proxies.clone(),
        forwarded_header: args.forwarded_header,
        without_peer_addresses: false,
        metrics_on_main_listener: args.metrics_listen.is_none(),
        metrics_token: token_from_env("BLINDSCORE_METRICS_TOKEN")?,
        rate_limit: (args.rate_limit > 0.0).then_some(RateLimit {
            per_second: args.rate_limit,
            burst: args.rate_burst.max(1),
        }),
        api_keys: match &args.api_keys {
            Some(path) => Some(Arc::new(ApiKeys::load(path).map_err(anyhow::Error::msg)?)),
            None => None,
        },
        cors: AllowedOrigins::parse(&args.allow_origins).map_err(anyhow::Error::msg)?,
        ..ServiceConfig::default()
    })
}

/// A catalog replacement over the admin route would give a shard or a router a version
/// of its own: off for them (a new catalog is a new artefact).
fn without_replacement(mut service: ServiceConfig, why: &'static str) -> ServiceConfig {
    if service.admin_token.take().is_some() {
        tracing::warn!("BLINDSCORE_ADMIN_TOKEN is ignored: {why}");
    }
    service.replacement_off = Some(why);
    service
}

/// `serve` (and no subcommand): catalog files, the demo, or an artefact.
async fn serve_catalogs(args: ServeArgs) -> anyhow::Result<()> {
    let mut service = service_config(&args.service)?;
    service.layout = args.catalogs.group_size.map(Layout::from_group_size);
    service.query_bits = args.catalogs.query_bits;
    service.queries_per_version = args.catalogs.queries_per_version;
    if let Some(dir) = &args.artefact {
        let artefact = Artefact::open(dir)
            .with_context(|| format!("opening the artefact {}", dir.display()))?;
        service.query_bits = artefact.shape().query_bits;
        if args.shard.is_some() {
            service = without_replacement(
                service,
                "a shard never replaces its catalog: a new catalog is a new artefact, served by new shards and given to the router in its routes",
            );
            // A shard's callers are its router's replicas: per-address limits would
            // throttle the router itself. The router applies them.
            service.rate_limit = None;
        }
        let name = artefact.manifest().catalog.clone();
        let shard = args.shard;
        if let Some(s) = shard {
            if s >= artefact.shard_count() {
                anyhow::bail!(
                    "--shard {s}: the artefact {} has shards 0..{}",
                    dir.display(),
                    artefact.shard_count()
                );
            }
        }
        let dir = dir.clone();
        return run(&args.service, service, vec![name], move |state| {
            let entry = install_artefact(&state, &artefact, shard)
                .with_context(|| format!("serving the artefact {}", dir.display()))?;
            tracing::info!(
                catalog = %artefact.manifest().catalog,
                version = %entry.version(),
                shard = ?entry.shard,
                "artefact served from {}",
                dir.display()
            );
            Ok(())
        })
        .await;
    }
    let catalogs = catalog_entries(&args.catalogs)?;
    let names = catalogs.iter().map(|(name, _, _)| name.clone()).collect();
    run(&args.service, service, names, move |state| {
        for (name, load, declaration) in catalogs {
            let items = load().with_context(|| format!("loading catalog {name:?}"))?;
            state
                .build_and_install(&name, items, &declaration)
                .with_context(|| format!("building catalog {name:?}"))?;
        }
        Ok(())
    })
    .await
}

/// `route`: the routes (a file, or one artefact and its shards' addresses), each version
/// made current once its shards answer ready for it.
async fn route(args: RouteArgs) -> anyhow::Result<()> {
    let service = without_replacement(
        service_config(&args.service)?,
        "a router never replaces a catalog over the admin route: a new catalog is a new artefact, given to the router in its routes file",
    );
    let source = match (&args.routes, &args.artefact) {
        (Some(path), _) => RouteSource::File(path.clone()),
        (None, Some(dir)) => RouteSource::Fixed(Routes {
            catalogs: vec![Route {
                artefact: dir.clone(),
                shard_urls: shard_urls(dir, &args.shard_urls)?,
            }],
        }),
        (None, None) => anyhow::bail!(
            "give --routes FILE, or --artefact DIR with a --shard-url I=URL for every shard"
        ),
    };
    let names = source.catalogs()?;
    let following = Following {
        deadline: Duration::from_secs(args.shard_timeout_seconds.max(1)),
        poll: Duration::from_millis(args.routes_poll_ms.max(50)),
        report: Duration::from_secs(10),
    };
    run(&args.service, service, names, move |state| {
        // On the blocking pool: wait here, ready once every catalog has a version whose
        // shards all answer ready, then follow the routes on the runtime.
        let runtime = tokio::runtime::Handle::current();
        let mut router = Router::new(state, source, following);
        runtime.block_on(router.start())?;
        runtime.spawn(router.follow());
        Ok(())
    })
    .await
}

/// `--shard-url I=URL` flags in shard order, one for every shard of the artefact at `dir`.
fn shard_urls(dir: &Path, specs: &[String]) -> anyhow::Result<Vec<String>> {
    let artefact =
        Artefact::open(dir).with_context(|| format!("opening the artefact {}", dir.display()))?;
    let mut urls: Vec<Option<String>> = vec![None; artefact.shard_count()];
    for spec in specs {
        let (index, url) = spec
            .split_once('=')
            .with_context(|| format!("--shard-url {spec:?}: expected I=URL"))?;
        let index: usize = index
            .parse()
            .with_context(|| format!("--shard-url {spec:?}: I is a shard number"))?;
        let slot = urls.get_mut(index).with_context(|| {
            format!(
                "--shard-url {spec:?}: the artefact has shards 0..{}",
                artefact.shard_count()
            )
        })?;
        if slot.replace(url.to_string()).is_some() {
            anyhow::bail!("--shard-url: shard {index} is given twice");
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("--shard-url {spec:?}: the URL must start with http:// or https://");
        }
    }
    urls.into_iter()
        .enumerate()
        .map(|(i, url)| url.with_context(|| format!("no --shard-url for shard {i}")))
        .collect()
}

/// Listen (TLS required beyond loopback), load what `load` installs on the blocking pool
/// (ready once it is done), and serve until a shutdown signal.
async fn run(
    args: &ServiceArgs,
    service: ServiceConfig,
    names: Vec<String>,
    load: impl FnOnce(Arc<AppState>) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(?args, "blindscore-server starting");
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            server_config_from_files(cert, key)
                .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?,
        ),
        _ if !args.listen.ip().is_loopback() && !args.insecure_plain_http => {
            anyhow::bail!(
                "listening on {} (beyond loopback) needs TLS: give --tls-cert and --tls-key, or --insecure-plain-http behind a proxy that terminates TLS",
                args.listen
            );
        }
        _ => None,
    };
    if service.admin_token.is_none() && service.replacement_off.is_none() {
        tracing::info!(
            "admin endpoints disabled (set BLINDSCORE_ADMIN_TOKEN to enable catalog replacement)"
        );
    }
    let state = AppState::new(service);
    state.set_loading(true);
    state.registry.expect(names);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(
        "listening on {}://{} (ready once the catalogs are loaded: /readyz)",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );

    let loader = state.clone();
    let loading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        load(loader.clone())?;
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
    if let Some(addr) = args.metrics_listen {
        if !addr.ip().is_loopback() && !args.insecure_plain_http {
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

fn catalog_entries(
    config: &CatalogArgs,
) -> anyhow::Result<Vec<(String, Loader, SpaceDeclaration)>> {
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
