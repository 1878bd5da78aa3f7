//! Request bodies read under a limit, with a JSON error past it; a refused body is read on
//! (up to a bound) so that the client sees the answer rather than a reset connection.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

use blindscore_common::api::ErrorCode;

use super::error::ApiError;

/// Most bytes of a refused request body read before answering.
pub const DRAIN_LIMIT: usize = 64 << 20;

/// Read and discard a body, up to [`DRAIN_LIMIT`] bytes.
pub async fn drain(body: Body) {
    let mut body = http_body_util::Limited::new(body, DRAIN_LIMIT);
    while let Some(Ok(_)) = body.frame().await {}
}

/// Read a body of at most `limit` bytes. A larger one is read on (and discarded) up to
/// [`DRAIN_LIMIT`] before the 413.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    let mut body = body;
    // In one allocation when the length is announced (a query's always is): a vector
    // doubling its way up to megabytes leaves a trail of freed blocks of every size.
    let announced = body.size_hint().exact().unwrap_or(0);
    let mut out = Vec::with_capacity((announced as usize).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                out.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than this endpoint's limit of {limit} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}
