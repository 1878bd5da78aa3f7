use blindscore_common::api::{ErrorBody, ErrorCode};
use blindscore_common::ProtocolError;

/// Everything that can go wrong on the client. New kinds may be added, so a `match` needs
/// a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent something that cannot be accepted (malformed, out of range, another
    /// catalog or version, a digest that does not match).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The vector does not have the catalog's dimension.
    #[error(
        "the vector has {found} values, the catalog's embedding space has {expected} dimensions"
    )]
    WrongDimension { found: usize, expected: usize },
    /// A quantized query value is outside the catalog's query width.
    #[error("query value {value} at index {index} exceeds the query width (|v| <= {max})")]
    QueryValueOutOfRange { index: usize, value: i32, max: u32 },
    /// The preference vector is not from the catalog's embedding space (model, norm,
    /// values that are not finite).
    #[error("the preference vector does not fit the catalog's embedding space: {0}")]
    SpaceMismatch(String),
    /// The server answered with an error status.
    #[error("server answered {status} {code}: {message}")]
    Server {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// The catalog version was replaced and is no longer served: refetch it.
    #[error("the catalog version is no longer served (it was replaced); refetch the catalog")]
    VersionGone,
    /// A catalog would take more than one of the app's limits (see [`Limits`]).
    ///
    /// [`Limits`]: crate::core::Limits
    #[error("the catalog is over this app's limit {limit}: {value}, at most {allowed}")]
    OverLimit {
        limit: &'static str,
        value: u64,
        allowed: u64,
    },
    /// The catalog is configured on the server but not built yet: retry after the given
    /// seconds.
    #[error("the catalog is still loading on the server; retry in {retry_after} s")]
    Loading { retry_after: u32 },
    /// The server is busy: retry after the given seconds.
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: u32 },
    /// A router could not get an answer from every shard of the catalog (never a partial
    /// ranking): retry after the given seconds.
    #[error("part of the catalog is unavailable on the server (a shard did not answer); retry in {retry_after} s")]
    ShardUnavailable { retry_after: u32 },
    /// Over the server's rate limit or this app's quota: retry after the given seconds.
    #[error("rate limited by the server; retry in {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// The OS could not provide randomness.
    #[error("the operating system's random generator failed: {0}")]
    Randomness(#[source] getrandom::Error),
    /// A saved preference profile is not valid JSON of a profile.
    #[error("the preference profile cannot be read: {0}")]
    Profile(#[source] serde_json::Error),
    /// The server could not be reached, or the connection failed.
    #[cfg(feature = "http")]
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server's URL cannot be parsed.
    #[cfg(feature = "http")]
    #[error("server URL {url:?}: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    /// The server's URL has a scheme other than `https` or `http`.
    #[cfg(feature = "http")]
    #[error("server URL {url:?}: unsupported scheme {scheme:?}")]
    UnsupportedScheme { url: String, scheme: String },
    /// Plain `http://` to a host beyond loopback, which the connection does not allow.
    #[cfg(feature = "http")]
    #[error(
        "refusing plain http:// to {host}: use https://, or allow plain HTTP for a trusted network"
    )]
    PlainHttpRefused { host: String },
    /// The server answered with a redirect, which the SDK never follows: it would carry the
    /// API key and the query to another host, and could lead from TLS or loopback to plain
    /// HTTP beyond it.
    #[cfg(feature = "http")]
    #[error("the server redirected ({status}) to {location:?}; redirects are not followed")]
    Redirected { status: u16, location: String },
    /// A root certificate given to the connection cannot be used.
    #[cfg(feature = "http")]
    #[error("root certificate: {0}")]
    Certificate(#[source] reqwest::Error),
    /// The tokio runtime shut down while the SDK's work was running on it.
    #[cfg(feature = "http")]
    #[error("the runtime shut down before the work finished")]
    Cancelled,
    /// A local file (the cache, a profile) could not be used.
    #[cfg(feature = "http")]
    #[error("local storage: {0}")]
    Storage(#[from] std::io::Error),
}

impl ClientError {
    /// The typed error for an HTTP error answer from any transport: its status, its body
    /// (the API's `{"code", "message"}`, read under a small limit) and its `Retry-After`
    /// in seconds, if any.
    pub fn from_answer(status: u16, body: &[u8], retry_after: Option<u32>) -> Self {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => (e.code, e.message),
            Err(_) => (
                ErrorCode::Unknown,
                String::from_utf8_lossy(body).into_owned(),
            ),
        };
        Self::from_status(status, code, message, retry_after)
    }

    fn from_status(
        status: u16,
        code: ErrorCode,
        message: String,
        retry_after: Option<u32>,
    ) -> Self {
        // A hostile server's Retry-After is capped: an app should not wait for hours.
        let retry_after = retry_after.unwrap_or(1).clamp(1, 3600);
        match (status, code) {
            (410, _) | (_, ErrorCode::VersionGone) => ClientError::VersionGone,
            (503, ErrorCode::Loading) => ClientError::Loading { retry_after },
            (503, ErrorCode::ShardUnavailable) => ClientError::ShardUnavailable { retry_after },
            (503, _) => ClientError::Busy { retry_after },
            (429, _) => ClientError::RateLimited { retry_after },
            _ => ClientError::Server {
                status,
                code,
                message,
            },
        }
    }
}
