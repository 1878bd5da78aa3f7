//! The routes about the server itself: liveness, readiness, metrics, the parameter table,
//! what it computes and keeps, and the API document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use blindscore_common::api::ErrorBody;
use blindscore_common::params::PARAMETER_TABLE;

use super::openapi::ApiDocument;
use crate::serving::AppState;

/// The tag of these routes in the API document.
pub const TAG: &str = "server";

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = TAG,
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the start-up catalogs are loaded and at least one is served.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = TAG,
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "`loading`", content_type = "text/plain", body = String),
    )
)]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response()
    } else {
        "ready".into_response()
    }
}

/// Prometheus metrics: counts of requests by route and status, queries and passes, queue
/// depths, catalog sizes and memory.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG,
    responses(
        (status = 200, description = "The text exposition format", content_type = "text/plain", body = String),
        (status = 401, description = "`unauthorized`: the metrics token is missing or wrong", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.catalog_gauges()),
    )
        .into_response()
}

/// One row of the parameter table compiled into this build.
#[derive(Serialize, ToSchema)]
pub struct ParameterInfo {
    /// The row's id, named by every catalog and query.
    id: u16,
    /// Revision of the noise budget's formula for this row.
    budget_revision: u32,
    /// N, the polynomial size.
    polynomial_size: usize,
    /// k, the GLWE dimension.
    glwe_dimension: usize,
    /// The noise distribution.
    noise: String,
    /// The secret key's distribution.
    key: &'static str,
    /// The ciphertext modulus.
    modulus: &'static str,
    /// Where the row comes from.
    source: &'static str,
}

/// The parameter table of this build (clients trust their own copy, never this one).
#[utoipa::path(
    get,
    path = "/v1/parameters",
    tag = TAG,
    responses((status = 200, description = "Every row", body = Vec<ParameterInfo>))
)]
pub async fn parameters() -> Json<Vec<ParameterInfo>> {
    Json(
        PARAMETER_TABLE
            .iter()
            .map(|p| ParameterInfo {
                id: p.id.0,
                budget_revision: p.budget_revision,
                polynomial_size: p.polynomial_size.0,
                glwe_dimension: p.glwe_dimension.0,
                noise: format!("TUniform({})", p.noise_bound_log2),
                key: "binary",
                modulus: "2^64",
                source: p.source,
            })
            .collect(),
    )
}

/// What the server computes, receives, keeps and logs, in words.
#[derive(Serialize, ToSchema)]
pub struct Transparency {
    computes: &'static str,
    receives: &'static str,
    keeps: &'static str,
    logs: &'static str,
    metrics: &'static str,
    does_not_guarantee: &'static str,
}

/// What the server computes, keeps and logs.
#[utoipa::path(
    get,
    path = "/v1/transparency",
    tag = TAG,
    responses((status = 200, description = "The statement", body = Transparency))
)]
pub async fn transparency() -> Json<Transparency> {
    Json(Transparency {
        computes: "For each query, the products of the encrypted query bodies with the catalog's item vectors (a linear map on ciphertexts). The server holds no key and cannot decrypt queries or scores.",
        receives: "Ciphertext bodies under a secret key the client draws fresh for every query and never sends.",
        keeps: "The catalogs it serves. It does not store queries or responses; they live in memory only while a query is scored.",
        logs: "Per request: a request id, the route template, the status and the time taken. Per scoring pass: catalog name, version, item count, batch size and time. Never a query, a response, a vector or a score.",
        metrics: "Counts of requests by route and status, queries and passes, queue depth, catalog sizes and memory.",
        does_not_guarantee: "Integrity: a malicious server could return wrong scores. The catalog (its quantized vectors) is public to clients.",
    })
}

/// This document (OpenAPI 3.1), its path parameters' examples taken from the catalogs
/// served now.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = TAG,
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn openapi(
    State(state): State<Arc<AppState>>,
    Extension(document): Extension<Arc<ApiDocument>>,
) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.with_examples(&state),
    )
        .into_response()
}
