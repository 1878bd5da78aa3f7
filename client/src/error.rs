use blindscore_common::ProtocolError;

/// Everything that can go wrong on the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server sent something that cannot be accepted.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The query vector does not fit the catalog.
    #[error("query has {found} values, the catalog's dimension is {expected}")]
    WrongDimension { found: usize, expected: usize },
    /// A query value is outside the catalog's query width.
    #[error("query value {value} at index {index} exceeds the query width (|v| <= {max})")]
    QueryValueOutOfRange { index: usize, value: i32, max: u32 },
    /// The server could not be reached or the connection failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server answered with an error status.
    #[error("server answered {status} {code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// The catalog version was replaced and is no longer served: refetch it.
    #[error("the catalog version is no longer served (it was replaced); refetch the catalog")]
    VersionGone,
    /// The server is busy: retry after the given seconds.
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: u32 },
    /// Over the server's rate limit or this app's quota: retry after the given seconds.
    #[error("rate limited by the server; retry in {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// The preference vector is not from the catalog's embedding space.
    #[error("the preference vector does not fit the catalog's embedding space: {0}")]
    SpaceMismatch(String),
    /// The local cache or profile file could not be used.
    #[error("local storage: {0}")]
    Storage(String),
    /// The OS could not provide randomness.
    #[error("the operating system's random generator failed: {0}")]
    Randomness(String),
}

impl ClientError {
    /// The typed error for an HTTP error answer.
    pub(crate) fn from_status(
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u32>,
    ) -> Self {
        // A hostile server's Retry-After is capped: an app should not wait for hours.
        let retry_after = retry_after.unwrap_or(1).clamp(1, 3600);
        match (status, code.as_str()) {
            (410, _) | (_, "version_gone") => ClientError::VersionGone,
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
