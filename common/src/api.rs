//! The JSON documents of the HTTP API, shared by the server that writes them and the
//! clients that read them: a catalog's info, the embedding space it declares, and the
//! error body with its codes.
//!
//! A client treats every field as untrusted: [`CatalogInfo::parse`] checks what can be
//! checked without the binary description (a version of 64 hex digits), and everything
//! that matters to the cryptography is taken from the description and checked there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogShape;
use crate::digest::CatalogVersion;
use crate::error::ProtocolError;

/// How a catalog's rows (and so the queries for it) are normalised.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// Rows are scaled to unit L2 norm at load; queries must have unit norm too.
    L2,
    /// Rows are used as they are.
    None,
}

/// The similarity that scores stand for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (L2-normalised rows and queries).
    Cosine,
    /// Plain dot product.
    Dot,
}

/// The embedding space a catalog lives in, as its operator declares it. Clients refuse a
/// vector from another space before anything is sent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingSpace {
    /// Name of the embedding model.
    pub model: String,
    /// Dimension of its vectors.
    pub dimension: usize,
    /// Whether rows and queries are L2-normalised.
    pub normalisation: Normalisation,
    /// What a score means.
    pub metric: Metric,
}

/// `GET /v1/catalogs/{name}` (and one element of `GET /v1/catalogs`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogInfo {
    /// The catalog's name.
    pub name: String,
    /// The version new queries should use.
    pub current: VersionInfo,
    /// The version replaced last, while it is still answerable (its grace period).
    pub previous: Option<VersionInfo>,
}

/// What a client or an operator sees of one catalog version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The content digest, 64 hex digits.
    pub version: String,
    /// Row of the parameter table.
    pub param_id: u16,
    /// Items in the catalog.
    pub items: usize,
    /// Dimension of the item vectors.
    pub dimension: usize,
    /// The declared embedding space.
    pub embedding_space: EmbeddingSpace,
    /// The layout, for display (`column` or `grouped(b=8)`); `group_size` is the number.
    pub layout: String,
    /// Coordinates per query ciphertext, b.
    pub group_size: usize,
    /// Width of the catalog values, bits.
    pub catalog_bits: u32,
    /// Width of the query values, bits.
    pub query_bits: u32,
    /// log2 of the scaling factor Delta.
    pub delta_log2: u32,
    /// The noise budget's failure probability per query, log2.
    pub failure_log2_per_query: i32,
    /// Bits per word of each wire part.
    pub wire_bits: WireBits,
    /// Payload bytes of each wire part.
    pub bytes: WireBytes,
    /// SHA-256 of the encoded hint, hex.
    pub hint_sha256: String,
    /// Whether the scales artefact carries per-dimension scales after the item scales.
    pub dimension_scales: bool,
    /// How to turn an integer score into a float score, in words.
    pub rescale: String,
    /// Bytes a new client transfers for its first ranking of this version: the
    /// description, hint, ids and scales once, then the query and its response.
    #[serde(default)]
    pub first_query_bytes: usize,
    /// Bytes of each later ranking of this version: the query and its response.
    #[serde(default)]
    pub later_query_bytes: usize,
    /// The encrypted route against downloading the quantized catalog and ranking on the
    /// device, over the first Q queries of the version.
    #[serde(default)]
    pub plaintext_alternative: Option<PlaintextAlternative>,
    /// Set when this process is one shard of the catalog behind a router: which one. Its
    /// `items` are then the shard's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
}

/// Which part of a sharded catalog a process scans.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOf {
    /// This shard's index.
    pub index: usize,
    /// How many shards the catalog has.
    pub count: usize,
}

/// What a client would pay to rank on the device instead: the catalog's embeddings are
/// public to clients by design, so an app may download the quantized catalog once and
/// score it locally, sending nothing about its user.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaintextAlternative {
    /// Q: the queries of a version the comparison counts.
    pub queries_per_version: u32,
    /// The encrypted route over Q queries: the first query's bytes, then Q - 1 later ones.
    pub encrypted_bytes: usize,
    /// The on-device route: the quantized catalog packed at its width, with the ids and
    /// scales both routes need.
    pub plaintext_bytes: usize,
    /// Whether the encrypted route costs the client fewer bytes over Q queries.
    pub encryption_saves_bytes: bool,
}

/// The bytes a version costs a client, as [`VersionInfo::describe`] states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferBytes {
    /// Description, hint, ids and scales: once per version.
    pub once_per_version: usize,
    /// The ids and scales alone (part of `once_per_version`; both routes need them).
    pub ids_and_scales: usize,
    /// One query message.
    pub query_message: usize,
    /// One response message.
    pub response_message: usize,
    /// Q of the layout objective.
    pub queries_per_version: u32,
}

impl TransferBytes {
    /// The comparison with ranking on the device, for a shape.
    pub fn plaintext_alternative(&self, shape: &CatalogShape) -> PlaintextAlternative {
        let q = self.queries_per_version.max(1) as usize;
        let later = self.query_message + self.response_message;
        let encrypted_bytes = self.once_per_version + q * later;
        let plaintext_bytes = shape.plaintext_catalog_bytes() + self.ids_and_scales;
        PlaintextAlternative {
            queries_per_version: self.queries_per_version,
            encrypted_bytes,
            plaintext_bytes,
            encryption_saves_bytes: encrypted_bytes < plaintext_bytes,
        }
    }
}

/// Bits per wire word.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBits {
    pub query: u32,
    pub hint: u32,
    pub response: u32,
}

/// Payload bytes of each wire part.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBytes {
    pub query: usize,
    pub response: usize,
    pub hint: usize,
}

/// The rescaling rule stated in every [`VersionInfo`].
pub const RESCALE_RULE: &str = "score_float = score_int * query_scale * item_scale[i]; .../scales holds the item \
                      scales (little-endian f32, one per item), then, with dimension_scales, one scale per \
                      dimension to multiply the query by before quantizing it (query_scale)";

impl CatalogInfo {
    /// Parse a catalog info document from a server, checking its versions' form.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let info: CatalogInfo = serde_json::from_slice(bytes)
            .map_err(|e| ProtocolError::Malformed(format!("catalog info: {e}")))?;
        info.current.catalog_version()?;
        if let Some(previous) = &info.previous {
            previous.catalog_version()?;
        }
        Ok(info)
    }
}

impl VersionInfo {
    /// What a server says of a version of this shape: its digest, declared space, hint
    /// (its size and SHA-256) and whether its scales carry dimension scales.
    pub fn describe(
        version: &CatalogVersion,
        shape: &CatalogShape,
        embedding_space: EmbeddingSpace,
        hint_bytes: usize,
        hint_sha256: &[u8; 32],
        dimension_scales: bool,
        transfer: &TransferBytes,
    ) -> Self {
        let b = &shape.budget;
        let later = transfer.query_message + transfer.response_message;
        VersionInfo {
            version: version.to_hex(),
            param_id: shape.params.id.0,
            items: shape.geometry.items,
            dimension: shape.geometry.dimension,
            embedding_space,
            layout: shape.layout.to_string(),
            group_size: shape.geometry.b,
            catalog_bits: shape.catalog_bits,
            query_bits: shape.query_bits,
            delta_log2: b.delta_log2,
            failure_log2_per_query: shape.failure_log2,
            wire_bits: WireBits {
                query: b.query_bits(),
                hint: b.hint_bits(),
                response: b.response_bits(),
            },
            bytes: WireBytes {
                query: shape.query_payload_bytes(),
                response: shape.response_payload_bytes(),
                hint: hint_bytes,
            },
            hint_sha256: crate::digest::hex(hint_sha256),
            dimension_scales,
            rescale: RESCALE_RULE.into(),
            first_query_bytes: transfer.once_per_version + later,
            later_query_bytes: later,
            plaintext_alternative: Some(transfer.plaintext_alternative(shape)),
            shard: None,
        }
    }

    /// The version as a digest.
    pub fn catalog_version(&self) -> Result<CatalogVersion, ProtocolError> {
        CatalogVersion::from_hex(&self.version).ok_or_else(|| {
            ProtocolError::Malformed("catalog info: the version is not 64 hex digits".into())
        })
    }
}

/// Every error answer's body: a stable code and a message for people.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// The stable error codes of the API, each with its HTTP status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 404: no catalog of that name.
    UnknownCatalog,
    /// 410: the version was replaced and its grace period is over; refetch and retry with
    /// a fresh encryption.
    VersionGone,
    /// 409: the query names another version than the route.
    VersionMismatch,
    /// 400: the query names another parameter set.
    WrongParameters,
    /// 400: the query names another catalog.
    WrongCatalog,
    /// 400: the query's bodies have the wrong length.
    WrongLength,
    /// 400: the query cannot be decoded.
    MalformedQuery,
    /// 400: an uploaded catalog cannot be loaded.
    BadCatalog,
    /// 400: a query-string parameter is out of range.
    BadParameter,
    /// 401: the admin bearer token is missing or wrong.
    Unauthorized,
    /// 401: this server needs a valid `x-api-key`.
    ApiKeyRequired,
    /// 403: the admin endpoints are disabled.
    AdminDisabled,
    /// 409: another replacement of this catalog is being built.
    SwapInProgress,
    /// 413: the body is larger than the endpoint's limit.
    BodyTooLarge,
    /// 408: the request took longer than the server's limit.
    Timeout,
    /// 429: over the rate limit or the app's quota (with `Retry-After`).
    RateLimited,
    /// 503: the version's queue is full (with `Retry-After`).
    Busy,
    /// 503: the catalog is configured but not built yet (with `Retry-After`).
    Loading,
    /// 503: a router could not get every shard's right answer in time (with
    /// `Retry-After`); never a partial response.
    ShardUnavailable,
    /// 404: no such route.
    NotFound,
    /// 500: the server failed; not the client's fault.
    Internal,
    /// A code this build does not know (from a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCatalog => "unknown_catalog",
            ErrorCode::VersionGone => "version_gone",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::WrongParameters => "wrong_parameters",
            ErrorCode::WrongCatalog => "wrong_catalog",
            ErrorCode::WrongLength => "wrong_length",
            ErrorCode::MalformedQuery => "malformed_query",
            ErrorCode::BadCatalog => "bad_catalog",
            ErrorCode::BadParameter => "bad_parameter",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ApiKeyRequired => "api_key_required",
            ErrorCode::AdminDisabled => "admin_disabled",
            ErrorCode::SwapInProgress => "swap_in_progress",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::Loading => "loading",
            ErrorCode::ShardUnavailable => "shard_unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status a server answers this code with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::UnknownCatalog | ErrorCode::NotFound => 404,
            ErrorCode::VersionGone => 410,
            ErrorCode::VersionMismatch | ErrorCode::SwapInProgress => 409,
            ErrorCode::WrongParameters
            | ErrorCode::WrongCatalog
            | ErrorCode::WrongLength
            | ErrorCode::MalformedQuery
            | ErrorCode::BadCatalog
            | ErrorCode::BadParameter => 400,
            ErrorCode::Unauthorized | ErrorCode::ApiKeyRequired => 401,
            ErrorCode::AdminDisabled => 403,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::Timeout => 408,
            ErrorCode::RateLimited => 429,
            ErrorCode::Busy | ErrorCode::Loading | ErrorCode::ShardUnavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    /// The error code for a protocol error in a client's query.
    pub fn for_query_error(e: &ProtocolError) -> Self {
        match e {
            ProtocolError::StaleVersion { .. } => ErrorCode::VersionMismatch,
            ProtocolError::ParameterMismatch { .. } | ProtocolError::UnknownParameters(_) => {
                ErrorCode::WrongParameters
            }
            ProtocolError::CatalogMismatch { .. } => ErrorCode::WrongCatalog,
            ProtocolError::WrongLength { .. } => ErrorCode::WrongLength,
            _ => ErrorCode::MalformedQuery,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Normalisation {
    /// The name used on the wire and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Normalisation::L2 => "l2",
            Normalisation::None => "none",
        }
    }
}

impl Metric {
    /// The name used on the wire and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
        }
    }
}

impl fmt::Display for Normalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not one of {allowed}")]
pub struct UnknownName {
    found: String,
    allowed: &'static str,
}

impl FromStr for Normalisation {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "l2" => Ok(Normalisation::L2),
            "none" => Ok(Normalisation::None),
            _ => Err(UnknownName {
                found: s.into(),
                allowed: "l2, none",
            }),
        }
    }
}

impl FromStr for Metric {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            _ => Err(UnknownName {
                found: s.into(),
                allowed: "cosine, dot",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_parse() {
        for code in [
            ErrorCode::UnknownCatalog,
            ErrorCode::Internal,
            ErrorCode::Busy,
            ErrorCode::ShardUnavailable,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let body: ErrorBody =
            serde_json::from_str(r#"{"code": "from_the_future", "message": "m"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unknown);
    }

    #[test]
    fn names_parse_as_they_serialise() {
        for n in [Normalisation::L2, Normalisation::None] {
            assert_eq!(n.as_str().parse::<Normalisation>().unwrap(), n);
            assert_eq!(serde_json::to_string(&n).unwrap(), format!("\"{n}\""));
        }
        for m in [Metric::Cosine, Metric::Dot] {
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert!("L2".parse::<Normalisation>().is_err());
    }

    #[test]
    fn catalog_info_versions_are_checked() {
        let space = EmbeddingSpace {
            model: "m".into(),
            dimension: 4,
            normalisation: Normalisation::L2,
            metric: Metric::Cosine,
        };
        let version = VersionInfo {
            version: "ab".repeat(32),
            param_id: 1,
            items: 1,
            dimension: 4,
            embedding_space: space,
            layout: "column".into(),
            group_size: 1,
            catalog_bits: 8,
            query_bits: 8,
            delta_log2: 40,
            failure_log2_per_query: -40,
            wire_bits: WireBits {
                query: 40,
                hint: 30,
                response: 24,
            },
            bytes: WireBytes {
                query: 1,
                response: 1,
                hint: 1,
            },
            hint_sha256: "00".repeat(32),
            dimension_scales: false,
            rescale: RESCALE_RULE.into(),
            first_query_bytes: 10,
            later_query_bytes: 2,
            plaintext_alternative: None,
            shard: None,
        };
        let mut info = CatalogInfo {
            name: "c".into(),
            current: version.clone(),
            previous: None,
        };
        let bytes = serde_json::to_vec(&info).unwrap();
        assert_eq!(CatalogInfo::parse(&bytes).unwrap(), info);
        info.current.version = "xyz".into();
        let bytes = serde_json::to_vec(&info).unwrap();
        assert!(CatalogInfo::parse(&bytes).is_err());
    }
}
