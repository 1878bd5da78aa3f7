//! The HTTP face of the evaluator (axum): describe a catalog, serve its hint, score
//! encrypted queries. Handlers only extract, call the domain and map errors; CPU work runs
//! off the async runtime. Nothing here logs, stores or echoes a query or a response.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use blindscore_common::{wire, ProtocolError};

use crate::ServedCatalog;

/// Catalogs by name.
pub struct AppState {
    catalogs: HashMap<String, Arc<ServedCatalog>>,
}

impl AppState {
    /// State serving these catalogs, keyed by their catalog ids.
    pub fn new(catalogs: Vec<ServedCatalog>) -> Self {
        let catalogs = catalogs
            .into_iter()
            .map(|c| (c.catalog_ref().catalog_id.clone(), Arc::new(c)))
            .collect();
        AppState { catalogs }
    }

    fn catalog(&self, name: &str) -> Result<Arc<ServedCatalog>, ApiError> {
        self.catalogs.get(name).cloned().ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_catalog",
            message: format!("no catalog named {name:?}"),
        })
    }
}

/// The router, with the body limit set to the largest query any catalog accepts.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state
        .catalogs
        .values()
        .map(|c| c.max_query_bytes())
        .max()
        .unwrap_or(1 << 20) as usize;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/catalogs/{name}", get(describe))
        .route("/v1/catalogs/{name}/hint", get(hint))
        .route("/v1/catalogs/{name}/score", post(score))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn describe(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let catalog = state.catalog(&name)?;
    Ok(binary(wire::encode(catalog.description())))
}

async fn hint(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let catalog = state.catalog(&name)?;
    Ok(binary(catalog.hint_message().to_vec()))
}

async fn score(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let catalog = state.catalog(&name)?;
    let scored = tokio::task::spawn_blocking(move || catalog.score_encoded(&body))
        .await
        .map_err(|_| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "scoring failed".into(),
        })?;
    Ok(binary(scored?))
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// A client error: a status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                code: self.code,
                message: &self.message,
            }),
        )
            .into_response()
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        let (status, code) = match e {
            ProtocolError::StaleVersion { .. } => (StatusCode::CONFLICT, "stale_version"),
            ProtocolError::ParameterMismatch { .. } | ProtocolError::UnknownParameters(_) => {
                (StatusCode::BAD_REQUEST, "wrong_parameters")
            }
            ProtocolError::CatalogMismatch { .. } => (StatusCode::BAD_REQUEST, "wrong_catalog"),
            ProtocolError::WrongLength { .. } => (StatusCode::BAD_REQUEST, "wrong_length"),
            _ => (StatusCode::BAD_REQUEST, "malformed_query"),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}
