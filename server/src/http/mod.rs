//! The HTTP API (axum), versioned under `/v1`: the router, its layers and its handlers.
//! Handlers extract, call the serving layer and map errors to a JSON body with a stable
//! code; CPU work runs off the async runtime. Nothing here logs, stores or echoes a query
//! or a response: logs carry a request id, the route template, the status and the time.
//!
//! * [`catalogs`]: catalog info, artefacts, scoring. [`admin`]: catalog replacement.
//!   [`info`]: health, readiness, metrics, parameters, transparency, the API document.
//! * [`layers`]: request ids and logs, rate limits, API keys and quotas, tokens, time
//!   limits. [`cors`]: the origins whose pages may call the API. [`body`]: body limits.
//!   [`error`]: the error answer.
//! * [`openapi`]: the generated document. [`tls`]: the TLS listener.

pub mod admin;
pub mod body;
pub mod catalogs;
pub mod cors;
pub mod error;
pub mod info;
pub mod layers;
pub mod openapi;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::{Extension, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use blindscore_common::api::ErrorCode;

pub use error::ApiError;
pub use openapi::ApiDocument;

use crate::serving::AppState;
use layers::{
    charge_quota, observe, rate_limit, require_api_key, require_metrics_token, with_timeout,
};

/// The router: public routes under a request timeout (and CORS for the origins the
/// operator allows), the catalog routes under the per-address rate limits and the API keys
/// (each score request charged to its app's quota), the admin route under the rate limits
/// and its own time limit, request ids, metrics and logs on everything.
///
/// The rate limits need each connection's peer address: serve the router with [`serve`]
/// (or `into_make_service_with_connect_info::<SocketAddr>()`). Served without it while
/// rate limits are on, catalog and admin requests are refused (500 `internal`, logged
/// once) unless `ServiceConfig::without_peer_addresses` says that is meant.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, document) = routes(&state).split_for_parts();
    router
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        // Bodies are read by the handlers under their own limits, with JSON errors.
        .layer(DefaultBodyLimit::disable())
        .layer(Extension(Arc::new(ApiDocument::new(document))))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The API document of the router `state` configures, as generated (no examples).
pub fn api_document(state: &Arc<AppState>) -> ApiDocument {
    ApiDocument::new(routes(state).into_openapi())
}

/// Every route with its layers, and the document they make.
fn routes(state: &Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let timeout = state.config.request_timeout;
    let admin_timeout = state.config.admin_timeout;
    if state.config.without_peer_addresses && state.limiter.is_some() {
        tracing::warn!(
            "served without peer addresses, by choice: the per-address rate limits are off"
        );
    }
    let mut open = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(info::healthz))
        .routes(routes!(info::readyz))
        .routes(routes!(info::parameters))
        .routes(routes!(info::transparency))
        .routes(routes!(info::openapi));
    if state.config.metrics_on_main_listener {
        open = open.merge(metrics_routes(state));
    }
    // Everything that reads a catalog: under the rate limits and the API keys; a score
    // request is also charged to its app's quota.
    let score = OpenApiRouter::new()
        .routes(routes!(catalogs::score))
        .route_layer(middleware::from_fn_with_state(state.clone(), charge_quota));
    let catalogs = OpenApiRouter::new()
        .routes(routes!(catalogs::list_catalogs))
        .routes(routes!(catalogs::describe_catalog))
        .routes(routes!(catalogs::description))
        .routes(routes!(catalogs::hint))
        .routes(routes!(catalogs::ids))
        .routes(routes!(catalogs::scales))
        .merge(score)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    let public = open
        .merge(catalogs)
        .layer(middleware::from_fn(move |req, next| {
            with_timeout(timeout, req, next)
        }));
    // Outside the API keys and rate limits: a browser's preflight carries neither.
    let public = match cors::layer(&state.config.cors) {
        Some(cors) => public.layer(cors).layer(middleware::from_fn_with_state(
            state.clone(),
            cors::only_allowed,
        )),
        None => public,
    };
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::replace_catalog))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn(move |req, next| {
            with_timeout(admin_timeout, req, next)
        }));
    public.merge(admin)
}

/// `/metrics` alone, for a listener of its own (`--metrics-listen`), behind the metrics
/// token if one is set and under the rate limits (serve it with connection info, as
/// `serve_metrics` does).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    let (router, _) = metrics_routes(&state).split_for_parts();
    router
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

fn metrics_routes(state: &Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    // Under the rate limits too: a metrics token cannot be guessed faster than catalogs
    // can be read.
    OpenApiRouter::new()
        .routes(routes!(info::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_metrics_token,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
}

/// Serve [`metrics_router`] on a listener of its own, with each connection's peer address
/// known to the rate limits, until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = metrics_router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serve the router on a listener until `shutdown` completes: over TLS when a
/// configuration is given, with each connection's peer address known to the rate limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
