//! The catalog routes: catalog info, each version's immutable artefacts, and scoring.
//! Nothing here logs, stores or echoes a query or a response.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use blindscore_common::api::{CatalogInfo, ErrorBody, ErrorCode};

use super::body::{drain, read_limited};
use super::error::ApiError;
use crate::serving::{AppState, Lookup, ScoreError, SubmitError, VersionEntry};

/// The tag of these routes in the API document.
pub const TAG: &str = "catalogs";

/// A binary message of the blindscore wire format (bincode): a description, a hint, a
/// query or a response.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WireMessage(pub Vec<u8>);

/// Little-endian f32 values.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Float32s(pub Vec<u8>);

/// Every catalog with its current (and in-grace previous) version.
#[utoipa::path(
    get,
    path = "/v1/catalogs",
    tag = TAG,
    responses(
        (status = 200, description = "The catalogs served, by name", body = Vec<CatalogInfo>),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn list_catalogs(State(state): State<Arc<AppState>>) -> Json<Vec<CatalogInfo>> {
    Json(
        state
            .registry
            .list()
            .into_iter()
            .map(|(name, current, previous)| CatalogInfo {
                name,
                current: current.info(),
                previous: previous.map(|p| p.info()),
            })
            .collect(),
    )
}

/// A catalog: version, items, dimension, embedding space, layout, widths, wire sizes, the
/// hint's digest, how to rescale.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{name}",
    tag = TAG,
    params(("name" = String, Path, description = "The catalog's name")),
    responses(
        (status = 200, description = "The catalog's current (and in-grace previous) version", body = CatalogInfo),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`loading` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn describe_catalog(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<CatalogInfo>, ApiError> {
    let (current, previous) = state.registry.catalog(&name).map_err(|e| match e {
        Lookup::Loading => ApiError::loading(&name),
        _ => ApiError::unknown_catalog(&name),
    })?;
    Ok(Json(CatalogInfo {
        name,
        current: current.info(),
        previous: previous.map(|p| p.info()),
    }))
}

fn version_entry(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<Arc<VersionEntry>, ApiError> {
    state.registry.version(name, version).map_err(|e| match e {
        Lookup::UnknownCatalog => ApiError::unknown_catalog(name),
        Lookup::Loading => ApiError::loading(name),
        Lookup::VersionGone { current } => ApiError::new(ErrorCode::VersionGone,
            format!("version {version} of catalog {name:?} is no longer served; the current version is {current}: refetch the description"),
        ),
    })
}

/// The immutable artefacts of a version.
#[derive(Clone, Copy)]
enum Artefact {
    Description,
    Hint,
    Ids,
    Scales,
}

impl Artefact {
    /// The last segment of its route, also in its ETag.
    fn tag(self) -> &'static str {
        match self {
            Artefact::Description => "description",
            Artefact::Hint => "hint",
            Artefact::Ids => "ids",
            Artefact::Scales => "scales",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Artefact::Ids => "application/json",
            _ => "application/octet-stream",
        }
    }

    fn bytes(self, entry: &VersionEntry) -> bytes::Bytes {
        match self {
            Artefact::Description => entry.description_bytes.clone(),
            Artefact::Hint => entry.hint_message.clone(),
            Artefact::Ids => entry.ids_json.clone(),
            Artefact::Scales => entry.scales_bytes.clone(),
        }
    }
}

/// An immutable artefact of a version: strong ETag, long caching, 304 on a match.
fn artefact(
    state: &AppState,
    (name, version): (String, String),
    headers: &HeaderMap,
    kind: Artefact,
) -> Result<Response, ApiError> {
    let entry = version_entry(state, &name, &version)?;
    if let Some(shard) = entry.shard {
        // A shard holds only its share: the catalog's artefacts come from its router.
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "this process is shard {} of {} of catalog {name:?}: it scores queries only; its router serves the catalog's artefacts",
                shard.index, shard.count
            ),
        ));
    }
    let etag = format!("\"{}-{}\"", entry.version().to_hex(), kind.tag());
    let cache = "public, max-age=31536000, immutable";
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::CONTENT_TYPE, kind.content_type().to_string()),
        ],
        kind.bytes(&entry),
    )
        .into_response())
}

/// The binary catalog description the client checks (bincode), immutable.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{name}/versions/{version}/description",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The catalog's name"),
        ("version" = String, Path, description = "The version: 64 hex digits"),
    ),
    responses(
        (status = 200, description = "The encoded description (strong ETag, cached for a year)", content_type = "application/octet-stream", body = WireMessage),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 410, description = "`version_gone`: refetch the catalog info", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`loading` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn description(
    State(state): State<Arc<AppState>>,
    Path(at): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    artefact(&state, at, &headers, Artefact::Description)
}

/// The exact catalog hint (bincode), immutable; its SHA-256 is in the description.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{name}/versions/{version}/hint",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The catalog's name"),
        ("version" = String, Path, description = "The version: 64 hex digits"),
    ),
    responses(
        (status = 200, description = "The encoded hint (strong ETag, cached for a year)", content_type = "application/octet-stream", body = WireMessage),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 410, description = "`version_gone`: refetch the catalog info", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`loading` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn hint(
    State(state): State<Arc<AppState>>,
    Path(at): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    artefact(&state, at, &headers, Artefact::Hint)
}

/// The item ids in catalog order (a JSON array of strings), immutable.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{name}/versions/{version}/ids",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The catalog's name"),
        ("version" = String, Path, description = "The version: 64 hex digits"),
    ),
    responses(
        (status = 200, description = "The ids (strong ETag, cached for a year)", body = Vec<String>),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 410, description = "`version_gone`: refetch the catalog info", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`loading` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn ids(
    State(state): State<Arc<AppState>>,
    Path(at): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    artefact(&state, at, &headers, Artefact::Ids)
}

/// Per-item scales (little-endian f32, one per item, then one per dimension when the
/// catalog has dimension scales), immutable.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{name}/versions/{version}/scales",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The catalog's name"),
        ("version" = String, Path, description = "The version: 64 hex digits"),
    ),
    responses(
        (status = 200, description = "The scales (strong ETag, cached for a year)", content_type = "application/octet-stream", body = Float32s),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 410, description = "`version_gone`: refetch the catalog info", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`loading` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn scales(
    State(state): State<Arc<AppState>>,
    Path(at): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    artefact(&state, at, &headers, Artefact::Scales)
}

/// Score an encrypted query against this version: ciphertext bodies in, encrypted scores
/// out (bincode messages of the wire format).
#[utoipa::path(
    post,
    path = "/v1/catalogs/{name}/versions/{version}/score",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The catalog's name"),
        ("version" = String, Path, description = "The version: 64 hex digits"),
    ),
    request_body(content = WireMessage, content_type = "application/octet-stream", description = "An encoded query message: the bodies of GLWE ciphertexts under a key drawn for this query alone"),
    responses(
        (status = 200, description = "The encoded response: one encrypted score per item", content_type = "application/octet-stream", body = WireMessage),
        (status = 400, description = "`malformed_query`, `wrong_parameters`, `wrong_catalog`, `wrong_length`", body = ErrorBody),
        (status = 401, description = "`api_key_required`", body = ErrorBody),
        (status = 404, description = "`unknown_catalog`", body = ErrorBody),
        (status = 409, description = "`version_mismatch`: the query names another version", body = ErrorBody),
        (status = 410, description = "`version_gone`: refetch the catalog info and encrypt afresh", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this address or this app's quota (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "`internal`: the scoring pass failed (the server's fault)", body = ErrorBody),
        (status = 503, description = "`busy`, `loading` or (from a router) `shard_unavailable` (with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("apiKey" = []))
)]
pub async fn score(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let entry = match version_entry(&s, &name, &version) {
        Ok(entry) => entry,
        Err(e) => {
            // Read the query before answering, so the client gets the error (typically
            // version_gone: refetch) rather than a connection closed mid-upload.
            drain(body).await;
            return Err(e);
        }
    };
    if entry.is_full() {
        // Busy already: the query is read and dropped, never held, decoded or checked
        // (the queue decides again when a query is submitted).
        drain(body).await;
        return Err(busy(&s));
    }
    let limit = entry.max_query_bytes() as usize;
    let bytes = read_limited(body, limit).await?;
    // Decoded and checked here, once: a bad query never takes a place in a batch (nor
    // reaches a router's shards).
    let query = entry.check_query(bytes)?;
    match entry.score(query).await {
        Ok(response) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            response,
        )
            .into_response()),
        Err(ScoreError::Shard(e)) => {
            tracing::warn!(catalog = %name, error = %e, "a routed query failed");
            s.metrics.record_busy();
            Err(ApiError::new(
                ErrorCode::ShardUnavailable,
                format!("a shard of catalog {name:?} did not answer rightly in time ({e}); retry shortly"),
            )
            .retry_after(1))
        }
        Err(ScoreError::Submit(SubmitError::Busy)) => Err(busy(&s)),
        Err(ScoreError::Submit(SubmitError::Closed)) => Err(ApiError::new(
            ErrorCode::VersionGone,
            "this version was dropped; refetch the description",
        )),
        Err(ScoreError::Submit(SubmitError::Failed)) => Err(ApiError::internal(
            "the scoring pass failed; this is the server's fault, not the query's",
        )),
    }
}

/// `busy`, counted.
fn busy(s: &AppState) -> ApiError {
    s.metrics.record_busy();
    ApiError::new(
        ErrorCode::Busy,
        "too many queries are waiting; retry shortly",
    )
    .retry_after(1)
}
