//! The API's error answer: a status, a stable code and a message, as JSON
//! ([`ErrorBody`]), with `Retry-After` where the client should come back.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use blindscore_common::api::{ErrorBody, ErrorCode};
use blindscore_common::ProtocolError;

/// Seconds a client is asked to wait for a catalog that is still loading.
const LOADING_RETRY_SECONDS: u32 = 5;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    /// An answer with `code`'s status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.status())
                .expect("every error code has a valid HTTP status"),
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Ask the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The catalog is configured but not built yet.
    pub fn loading(name: &str) -> Self {
        ApiError::new(
            ErrorCode::Loading,
            format!("catalog {name:?} is still loading; retry shortly"),
        )
        .retry_after(LOADING_RETRY_SECONDS)
    }

    /// No catalog of that name.
    pub fn unknown_catalog(name: &str) -> Self {
        ApiError::new(
            ErrorCode::UnknownCatalog,
            format!("no catalog named {name:?}"),
        )
    }

    /// Over a rate limit or a quota, for `wait`.
    pub fn rate_limited(wait: std::time::Duration, message: &str) -> Self {
        let seconds = wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32;
        ApiError::new(ErrorCode::RateLimited, message).retry_after(seconds)
    }

    /// The server failed (not the client's fault).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError::new(ErrorCode::for_query_error(&e), e.to_string())
    }
}
