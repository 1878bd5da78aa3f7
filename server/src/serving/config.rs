//! What an operator sets: the service's settings and each catalog's declared space.

use std::sync::Arc;
use std::time::Duration;

use blindscore_common::api::{Metric, Normalisation};
use blindscore_common::objective::{Objective, DEFAULT_QUERIES_PER_VERSION};
use blindscore_common::{Layout, LayoutChoice};
use ipnet::IpNet;

use super::batcher::BatchConfig;
use crate::access::{ApiKeys, BearerToken, ForwardedHeader, RateLimit};
use crate::origins::AllowedOrigins;

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
    /// Why this process never replaces a catalog over the admin route, whatever the token
    /// (a shard, a router): said in the admin route's 403 and at start-up.
    pub replacement_off: Option<&'static str>,
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
    /// Layout: fixed, or `None` for the layout objective's choice.
    pub layout: Option<Layout>,
    /// Q of the layout objective: a client's bytes are counted over the first Q queries
    /// of a catalog version (how many rankings a user makes before the catalog changes).
    pub queries_per_version: u32,
    /// Per-client-address limit on catalog requests; `None` for none.
    pub rate_limit: Option<RateLimit>,
    /// API keys every catalog request must carry, with each app's quota; `None` for open
    /// access.
    pub api_keys: Option<Arc<ApiKeys>>,
    /// Origins whose web pages may call the public routes from a browser (none by
    /// default).
    pub cors: AllowedOrigins,
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
            replacement_off: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            without_peer_addresses: false,
            metrics_on_main_listener: true,
            metrics_token: None,
            query_bits: 8,
            layout: None,
            queries_per_version: DEFAULT_QUERIES_PER_VERSION,
            rate_limit: Some(RateLimit::default()),
            api_keys: None,
            cors: AllowedOrigins::None,
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

impl ServiceConfig {
    /// How the layout of a new version is chosen: fixed by the operator, or by the
    /// layout objective over [`ServiceConfig::queries_per_version`] queries.
    pub fn layout_choice(&self) -> LayoutChoice {
        match self.layout {
            Some(layout) => LayoutChoice::Fixed(layout),
            None => LayoutChoice::Auto(Objective {
                queries_per_version: self.queries_per_version.max(1),
            }),
        }
    }
}

impl SpaceDeclaration {
    /// The width to load values at: the declared one, or 16 to narrow later.
    pub fn load_bits(&self) -> u32 {
        self.bits.unwrap_or(16)
    }
}
