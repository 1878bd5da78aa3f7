//! Talking to a blindscore server over HTTP. Every body is read under a limit derived
//! from what the (range-checked) description says it should be, so a hostile server
//! cannot exhaust the client's memory.

use serde::Deserialize;

use blindscore_common::{wire, CatalogDescription, ProtocolError};

use crate::error::ClientError;
use crate::prepared::PreparedCatalog;

/// Largest description or catalog listing a client reads.
const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Room for headers around a payload.
const ALLOWANCE: usize = 4096;
/// Longest item id the server accepts, plus JSON quoting.
const MAX_ID_BYTES: usize = 512 * 6 + 3;

/// A connection to one server.
pub struct Client {
    /// The HTTP client, or why none could be made (reported by the first request).
    http: Result<reqwest::Client, String>,
    base: String,
    api_key: Option<String>,
}

/// How to reach a server: whom to trust and what to present.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Root certificates (PEM) to trust besides the public web's, e.g. a private CA or a
    /// self-signed server certificate. Server certificates are always verified.
    pub root_certificates: Vec<Vec<u8>>,
    /// An API key for servers that require one (sent as `x-api-key`).
    pub api_key: Option<String>,
    /// Allow plain `http://` to hosts beyond loopback (refused by default: without TLS an
    /// on-path attacker sees which catalog is queried and when, and can tamper with
    /// everything the server sends).
    pub allow_plain_http: bool,
}

impl Connection {
    fn http_client(&self, base: &str) -> Result<reqwest::Client, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("server URL {base:?}: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http || is_loopback(&url) => {}
            "http" => {
                return Err(format!(
                    "refusing plain http:// to {}: use https://, or allow plain HTTP for a trusted network",
                    url.host_str().unwrap_or("?")
                ))
            }
            other => return Err(format!("server URL {base:?}: unsupported scheme {other:?}")),
        }
        let mut builder = reqwest::Client::builder().https_only(url.scheme() == "https");
        for pem in &self.root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| format!("root certificate: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build().map_err(|e| e.to_string())
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What a fetch or a query cost on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent.
    pub up: usize,
    /// Bytes received.
    pub down: usize,
}

#[derive(Deserialize)]
struct CatalogInfo {
    current: VersionInfo,
}

#[derive(Deserialize)]
struct VersionInfo {
    version: String,
    embedding_space: EmbeddingSpace,
}

/// The embedding space a catalog declares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmbeddingSpace {
    /// Embedding model name.
    pub model: String,
    /// Dimension of its vectors.
    pub dimension: usize,
    /// "l2" (rows and queries of unit norm) or "none".
    pub normalisation: String,
    /// "cosine" or "dot".
    pub metric: String,
}

/// The raw, immutable artefacts of one catalog version, as fetched (for caching).
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub description: Vec<u8>,
    pub hint: Vec<u8>,
    pub ids: Vec<u8>,
    pub scales: Vec<u8>,
}

impl Client {
    /// A client for the server at `base` (e.g. `https://shop.example/blindscore`, or
    /// `http://127.0.0.1:8080` on loopback) with the default [`Connection`].
    pub fn new(base: &str) -> Self {
        Self::with_connection(base, &Connection::default())
    }

    /// A client with given trust roots, API key and transport policy. A bad URL or
    /// certificate is reported by the first request.
    pub fn with_connection(base: &str, connection: &Connection) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Client {
            http: connection.http_client(&base),
            base,
            api_key: connection.api_key.clone(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let http = self
            .http
            .as_ref()
            .map_err(|e| ClientError::Transport(e.clone()))?;
        let mut request = http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key);
        }
        Ok(request)
    }

    /// The current version of a catalog (hex).
    pub async fn current_version(&self, name: &str) -> Result<String, ClientError> {
        Ok(self.current(name).await?.0)
    }

    /// The current version of a catalog and the embedding space it declares.
    pub async fn current(&self, name: &str) -> Result<(String, EmbeddingSpace), ClientError> {
        blindscore_common::wire::validate_catalog_id(name)?;
        let bytes = self
            .get(&format!("/v1/catalogs/{name}"), MAX_DESCRIPTION_BYTES)
            .await?;
        parse_catalog_info(&bytes)
    }

    /// Fetch every artefact of a version, each under a limit derived from its checked
    /// description.
    pub async fn fetch_artifacts(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Artifacts, ClientError> {
        let base = format!("/v1/catalogs/{name}/versions/{version}");
        let description = self
            .get(&format!("{base}/description"), MAX_DESCRIPTION_BYTES)
            .await?;
        let decoded: CatalogDescription = wire::decode(&description, MAX_DESCRIPTION_BYTES as u64)?;
        let shape = decoded.shape()?;
        let items = shape.geometry.items;
        let hint = self
            .get(
                &format!("{base}/hint"),
                shape.hint_payload_bytes() + ALLOWANCE,
            )
            .await?;
        let ids = self
            .get(&format!("{base}/ids"), items * MAX_ID_BYTES + ALLOWANCE)
            .await?;
        let scales = self
            .get(
                &format!("{base}/scales"),
                (items + shape.geometry.dimension) * 4,
            )
            .await?;
        Ok(Artifacts {
            description,
            hint,
            ids,
            scales,
        })
    }

    /// Send an encoded query to a catalog version.
    pub async fn send(
        &self,
        name: &str,
        version: &str,
        query: Vec<u8>,
        response_limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/catalogs/{name}/versions/{version}/score"),
            )?
            .header("content-type", "application/octet-stream")
            .body(query)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read(response, response_limit + ALLOWANCE).await
    }

    /// Fetch the current version's description and hint, check them and prepare.
    pub async fn fetch_catalog(
        &self,
        name: &str,
    ) -> Result<(PreparedCatalog, Transfer), ClientError> {
        let version = self.current_version(name).await?;
        let base = format!("/v1/catalogs/{name}/versions/{version}");
        let description_bytes = self
            .get(&format!("{base}/description"), MAX_DESCRIPTION_BYTES)
            .await?;
        let description: CatalogDescription =
            wire::decode(&description_bytes, MAX_DESCRIPTION_BYTES as u64)?;
        if description.catalog.catalog_id != name || description.catalog.version.to_hex() != version
        {
            return Err(ProtocolError::Malformed(
                "the description names another catalog or version than requested".into(),
            )
            .into());
        }
        let shape = description.shape()?;
        let hint = self
            .get(
                &format!("{base}/hint"),
                shape.hint_payload_bytes() + ALLOWANCE,
            )
            .await?;
        let prepared = PreparedCatalog::new(&description, &hint)?;
        Ok((
            prepared,
            Transfer {
                up: 0,
                down: description_bytes.len() + hint.len(),
            },
        ))
    }

    /// The item ids of a prepared catalog version, in catalog order.
    pub async fn fetch_ids(&self, prepared: &PreparedCatalog) -> Result<Vec<String>, ClientError> {
        let items = prepared.shape().geometry.items;
        let bytes = self
            .get(
                &format!("{}/ids", self.version_path(prepared)),
                items * MAX_ID_BYTES + ALLOWANCE,
            )
            .await?;
        parse_ids(&bytes, items)
    }

    /// The per-item scales of a prepared catalog version (finite, non-negative), and the
    /// per-dimension scales if the catalog has them.
    pub async fn fetch_scales(
        &self,
        prepared: &PreparedCatalog,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ClientError> {
        let g = prepared.shape().geometry;
        let bytes = self
            .get(
                &format!("{}/scales", self.version_path(prepared)),
                (g.items + g.dimension) * 4,
            )
            .await?;
        parse_scales(&bytes, g.items, g.dimension)
    }

    /// Send an encrypted query for a prepared catalog version; returns the encoded
    /// response.
    pub async fn score(
        &self,
        prepared: &PreparedCatalog,
        query: Vec<u8>,
    ) -> Result<(Vec<u8>, Transfer), ClientError> {
        let up = query.len();
        let limit = prepared.shape().response_payload_bytes() + ALLOWANCE;
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("{}/score", self.version_path(prepared)),
            )?
            .header("content-type", "application/octet-stream")
            .body(query)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let bytes = read(response, limit).await?;
        let down = bytes.len();
        Ok((bytes, Transfer { up, down }))
    }

    fn version_path(&self, prepared: &PreparedCatalog) -> String {
        let c = prepared.catalog();
        format!(
            "/v1/catalogs/{}/versions/{}",
            c.catalog_id,
            c.version.to_hex()
        )
    }

    async fn get(&self, path: &str, limit: usize) -> Result<Vec<u8>, ClientError> {
        let response = self
            .request(reqwest::Method::GET, path)?
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read(response, limit).await
    }
}

/// Read a body of at most `limit` bytes; an error status becomes [`ClientError::Server`]
/// with the server's (truncated) message.
async fn read(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let limit = if status.is_success() { limit } else { 4096 };
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            if !status.is_success() {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            return Err(ProtocolError::OutOfRange {
                what: "response size",
                value: (body.len() + chunk.len()) as u64,
                allowed: format!("at most {limit} bytes"),
            }
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        #[derive(Deserialize)]
        struct ErrorBody {
            code: String,
            message: String,
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.code, e.message),
            Err(_) => (String::new(), String::from_utf8_lossy(&body).into_owned()),
        };
        return Err(ClientError::from_status(
            status.as_u16(),
            code,
            message,
            retry_after,
        ));
    }
    Ok(body)
}

/// The current version (64 hex digits) and declared embedding space from a catalog's
/// info document (`GET /v1/catalogs/{name}`).
pub fn parse_catalog_info(bytes: &[u8]) -> Result<(String, EmbeddingSpace), ClientError> {
    let info: CatalogInfo = serde_json::from_slice(bytes)
        .map_err(|e| ProtocolError::Malformed(format!("catalog info: {e}")))?;
    if blindscore_common::CatalogVersion::from_hex(&info.current.version).is_none() {
        return Err(ProtocolError::Malformed(
            "catalog info: the version is not 64 hex digits".into(),
        )
        .into());
    }
    Ok((info.current.version, info.current.embedding_space))
}

/// Split the scales artefact: one little-endian f32 per item (finite, non-negative), then
/// optionally one per dimension (finite, positive) to fold into the query.
pub fn parse_scales(
    bytes: &[u8],
    items: usize,
    dimension: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>), ClientError> {
    if bytes.len() != items * 4 && bytes.len() != (items + dimension) * 4 {
        return Err(ProtocolError::WrongLength {
            what: "scale bytes",
            found: bytes.len(),
            expected: items * 4,
        }
        .into());
    }
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if all[..items].iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(
            ProtocolError::Malformed("an item scale is negative or not finite".into()).into(),
        );
    }
    if all.len() == items {
        return Ok((all, None));
    }
    let dims = all[items..].to_vec();
    if dims.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(ProtocolError::Malformed(
            "a dimension scale is not a positive finite number".into(),
        )
        .into());
    }
    let mut items_only = all;
    items_only.truncate(items);
    Ok((items_only, Some(dims)))
}

/// The ids artefact: a JSON array of exactly `items` strings.
pub fn parse_ids(bytes: &[u8], items: usize) -> Result<Vec<String>, ClientError> {
    let ids: Vec<String> =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(format!("ids: {e}")))?;
    if ids.len() != items {
        return Err(ProtocolError::WrongLength {
            what: "ids",
            found: ids.len(),
            expected: items,
        }
        .into());
    }
    Ok(ids)
}
