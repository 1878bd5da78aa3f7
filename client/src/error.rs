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
    #[error("server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// The OS could not provide randomness.
    #[error("the operating system's random generator failed: {0}")]
    Randomness(String),
}
