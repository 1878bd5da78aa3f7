//! The middleware layers of the router: request ids, metrics and logs; per-address rate
//! limits; API keys and each app's quota; the metrics token; time limits. Each is a tower
//! layer attached to the routes it guards (see [`super::router`]), never a check of the
//! request's path.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use blindscore_common::api::ErrorCode;

use super::error::ApiError;
use crate::access::{client_key, forwarded_client, Refusal};
use crate::serving::AppState;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Request id, metrics and one log line per request (no bodies, no query strings).
pub async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let started = Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.record_request(&route, status);
    tracing::info!(request_id = id, %method, route, status, ms = started.elapsed().as_secs_f64() * 1e3, "request");
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The client's address for the rate limits: the peer, or the client a trusted proxy
/// names. `None` only when the operator chose to serve without peer addresses; a request
/// without one otherwise is refused rather than left unlimited.
fn client_address(state: &AppState, req: &Request) -> Result<Option<IpAddr>, ApiError> {
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => Ok(Some(forwarded_client(
            peer.ip(),
            req.headers(),
            &state.config.trusted_proxies,
            state.config.forwarded_header,
        ))),
        None if state.config.without_peer_addresses => Ok(None),
        None => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::error!(
                    "requests arrive without the peer's address while rate limits are on, and are refused: serve with http::serve (or into_make_service_with_connect_info), or set without_peer_addresses"
                )
            });
            Err(ApiError::internal(
                "the server cannot tell the client's address, so it cannot apply its rate limits",
            ))
        }
    }
}

/// Per-client-address rate limits.
pub async fn rate_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.limiter {
        match client_address(&state, &req) {
            Ok(Some(ip)) => {
                if let Err(wait) = limiter.take(client_key(ip)) {
                    return ApiError::rate_limited(
                        wait,
                        "too many requests from this address; slow down",
                    )
                    .into_response();
                }
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// With API keys configured, a valid `x-api-key` on every catalog request.
pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(keys) = &state.config.api_keys {
        if let Err(refusal) = keys.app(api_key(&req)) {
            return refused(refusal);
        }
    }
    next.run(req).await
}

/// With API keys configured, each score request charged to its app's quota.
pub async fn charge_quota(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(keys) = &state.config.api_keys {
        if let Err(refusal) = keys.charge(api_key(&req)) {
            return refused(refusal);
        }
    }
    next.run(req).await
}

fn api_key(req: &Request) -> Option<&str> {
    req.headers().get("x-api-key").and_then(|v| v.to_str().ok())
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorized => ApiError::new(
            ErrorCode::ApiKeyRequired,
            "this server needs a valid API key in the x-api-key header",
        ),
        Refusal::Limited(wait) => {
            ApiError::rate_limited(wait, "this app's query quota is spent; retry later")
        }
    }
    .into_response()
}

/// With a metrics token set, `/metrics` needs it as a bearer token.
pub async fn require_metrics_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.metrics_token {
        if !token.matches(bearer(req.headers())) {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "a valid bearer token is required for the metrics",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme's name in any case),
/// or "" (which matches no token).
pub fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .unwrap_or("")
}

/// Answer 408 `timeout` when the rest of the stack takes longer than `limit`.
pub async fn with_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            "the request took longer than the server's limit",
        )
        .into_response(),
    }
}
