//! The admin route: replacing a catalog while it serves.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use blindscore_common::api::{ErrorBody, ErrorCode, Metric, Normalisation};

use super::error::ApiError;
use super::layers::bearer;
use crate::load::read_jsonl;
use crate::serving::metrics::process_memory;
use crate::serving::{plan_entry, AppState, Lookup, SpaceDeclaration};

/// The tag of this route in the API document.
pub const TAG: &str = "admin";

/// How a replacement catalog is declared (query string).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplaceParams {
    /// The embedding model the vectors come from (declared in the catalog info).
    model: Option<String>,
    /// Row normalisation applied at load (default `l2`).
    normalisation: Option<Normalisation>,
    /// What a score stands for (default `cosine`).
    metric: Option<Metric>,
    /// Width of the catalog values, 2 to 16 bits (default: the widest the noise budget
    /// allows).
    #[param(minimum = 2, maximum = 16)]
    bits: Option<u32>,
    /// Also scale each dimension to the full range of values (default `false`).
    dimension_scales: Option<bool>,
}

/// The version a replacement installed.
#[derive(Serialize, ToSchema)]
pub struct Replaced {
    /// The catalog's name.
    name: String,
    /// The version now current (64 hex digits).
    version: String,
    /// The version it replaced, now in its grace period.
    previous: Option<String>,
    /// Items in the new version.
    items: usize,
    /// Seconds the upload and build took.
    seconds: f64,
}

/// Replace (or create) a catalog from a JSON Lines body streamed in, atomically: the old
/// version keeps serving until the new one is built, and stays answerable for the grace
/// period after.
#[utoipa::path(
    put,
    path = "/v1/admin/catalogs/{name}",
    tag = TAG,
    params(("name" = String, Path, description = "The catalog's name"), ReplaceParams),
    request_body(content = String, content_type = "application/x-ndjson", description = "The catalog as JSON Lines: one `{\"id\": string, \"vector\": [number]}` per item"),
    responses(
        (status = 200, description = "The new version is current (or the content was that of the current one)", body = Replaced),
        (status = 400, description = "`bad_catalog` or `bad_parameter`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the bearer token is missing or wrong", body = ErrorBody),
        (status = 403, description = "`admin_disabled`: no admin token is set", body = ErrorBody),
        (status = 408, description = "`timeout`: nothing was changed", body = ErrorBody),
        (status = 409, description = "`swap_in_progress`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "`internal`", body = ErrorBody),
        (status = 503, description = "`loading`: the catalog's first version is still being built", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replace_catalog(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<ReplaceParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Replaced>, ApiError> {
    authorize(&s, &headers)?;
    blindscore_common::wire::validate_catalog_id(&name)?;
    let bits = params.bits;
    if bits.is_some_and(|b| !(2..=16).contains(&b)) {
        return Err(ApiError::new(
            ErrorCode::BadParameter,
            "bits must be within 2..=16",
        ));
    }
    let declaration = SpaceDeclaration {
        model: params.model.unwrap_or_else(|| "unspecified".into()),
        normalisation: params.normalisation.unwrap_or(Normalisation::L2),
        metric: params.metric.unwrap_or(Metric::Cosine),
        bits,
        dimension_scales: params.dimension_scales.unwrap_or(false),
    };
    // A catalog that start-up is still building is not replaced under its feet.
    if s.registry.current(&name).is_none() && s.registry.missing(&name) == Lookup::Loading {
        return Err(ApiError::loading(&name));
    }
    let state = s.clone();
    let previous = s.registry.current(&name).map(|e| e.version().to_hex());
    let limit = s.config.max_upload_bytes;
    // The admin time limit answers the client; this deadline also ends the work, so that a
    // late upload is not installed after its 408 and a stalled one frees its claim.
    let deadline = tokio::time::Instant::now() + s.config.admin_timeout;
    // Stream the body into the parser on a blocking thread, under the upload limit; the
    // stream ends at the deadline (the parser then sees a cut-off body).
    let stream = http_body_util::Limited::new(body, limit as usize);
    let reader = tokio_util::io::StreamReader::new(
        http_body_util::BodyDataStream::new(stream)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .take_until(Box::pin(tokio::time::sleep_until(deadline))),
    );
    let past_deadline = move || {
        (tokio::time::Instant::now() >= deadline).then(|| {
            ApiError::new(
                ErrorCode::Timeout,
                "the replacement took longer than the server's limit; nothing was changed",
            )
        })
    };
    let reader = tokio_util::io::SyncIoBridge::new(reader);
    let started = Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        let Some(guard) = state.registry.begin_build(&name) else {
            return Err(ApiError::new(
                ErrorCode::SwapInProgress,
                "another replacement of this catalog is being built",
            ));
        };
        let items = read_jsonl(
            std::io::BufReader::new(reader),
            declaration.load_bits(),
            declaration.normalisation,
        );
        if let Some(late) = past_deadline() {
            return Err(late);
        }
        let items = items.map_err(|e| {
            let text = e.to_string();
            if text.contains("length limit exceeded") {
                ApiError::new(
                    ErrorCode::BodyTooLarge,
                    format!("the catalog is larger than the upload limit of {limit} bytes"),
                )
            } else {
                ApiError::new(ErrorCode::BadCatalog, text)
            }
        })?;
        // Checked before anything served changes: a bad upload leaves both versions.
        let plan = plan_entry(&name, items, &declaration, &state.config)
            .map_err(|e| ApiError::new(ErrorCode::BadCatalog, e.to_string()))?;
        if let Some(late) = past_deadline() {
            return Err(late);
        }
        if let Some(current) = state.registry.current(&name) {
            if current.version() == plan.version {
                // The same content is the same version: nothing to build, nothing dropped.
                return Ok((name, current));
            }
        }
        guard.make_room();
        let entry = state.build_planned_and_install(plan).map_err(|e| {
            tracing::error!(catalog = %name, error = %e, "a checked catalog failed to build");
            ApiError::internal("the catalog passed its checks but failed to build")
        })?;
        state.metrics.record_swap(process_memory().resident);
        Ok((name, entry))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a catalog build failed");
        ApiError::internal("the build failed")
    })??;
    let (name, entry) = built;
    Ok(Json(Replaced {
        name,
        version: entry.version().to_hex(),
        previous,
        items: entry.shape().geometry.items,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::new(
            ErrorCode::AdminDisabled,
            state
                .config
                .replacement_off
                .unwrap_or("set BLINDSCORE_ADMIN_TOKEN to enable the admin endpoints"),
        ));
    };
    if token.matches(bearer(headers)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a valid bearer token is required",
        ))
    }
}
