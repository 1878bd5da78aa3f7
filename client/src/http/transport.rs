//! Talking to a blindscore server over HTTP. Every body is read under a limit derived
//! from what the (range-checked) description says it should be, so a hostile server
//! cannot exhaust the client's memory.

use blindscore_common::api::CatalogInfo;
use blindscore_common::wire;
use blindscore_common::CatalogVersion;

use std::time::Duration;

use crate::core::{Artifacts, Limits, PreparedCatalog, ReadLimit, ReadLimits};
use crate::error::ClientError;

/// Largest catalog info document a client reads.
const MAX_INFO_BYTES: u64 = 64 * 1024;
/// Most bytes of an error answer's body a client reads.
const MAX_ERROR_BYTES: usize = 4096;

/// How to reach a server: whom to trust, what to present, how long to wait. Redirects are
/// never followed.
#[derive(Clone, Debug)]
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
    /// Longest wait for a connection to be set up (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer (default 30 s).
    pub read_timeout: Duration,
    /// Longest time one request may take in all, its whole body read (default 120 s: a
    /// 16 MiB hint over a slow mobile link).
    pub request_timeout: Duration,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            root_certificates: Vec::new(),
            api_key: None,
            allow_plain_http: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl Connection {
    fn http_client(&self, base: &str) -> Result<reqwest::Client, ClientError> {
        let url = reqwest::Url::parse(base).map_err(|source| ClientError::InvalidUrl {
            url: base.into(),
            source,
        })?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http || is_loopback(&url) => {}
            "http" => {
                return Err(ClientError::PlainHttpRefused {
                    host: url.host_str().unwrap_or_default().into(),
                })
            }
            other => {
                return Err(ClientError::UnsupportedScheme {
                    url: base.into(),
                    scheme: other.into(),
                })
            }
        }
        let mut builder = reqwest::Client::builder()
            .https_only(url.scheme() == "https")
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .timeout(self.request_timeout);
        for pem in &self.root_certificates {
            let certificate =
                reqwest::Certificate::from_pem(pem).map_err(ClientError::Certificate)?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build().map_err(ClientError::Transport)
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

/// A connection to one server. The HTTP client is built on the first request, so that a
/// bad URL or certificate is reported by every request as a typed error.
pub(crate) struct Client {
    http: std::sync::OnceLock<reqwest::Client>,
    connection: Connection,
    base: String,
}

impl Client {
    /// A client for the server at `base` (e.g. `https://shop.example/blindscore`).
    pub(crate) fn new(base: &str, connection: &Connection) -> Self {
        Client {
            http: std::sync::OnceLock::new(),
            connection: connection.clone(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let http = match self.http.get() {
            Some(http) => http,
            None => {
                let built = self.connection.http_client(&self.base)?;
                self.http.get_or_init(|| built)
            }
        };
        let mut request = http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.connection.api_key {
            request = request.header("x-api-key", key);
        }
        Ok(request)
    }

    /// The catalog's info document: its current version and declared embedding space.
    pub(crate) async fn catalog_info(&self, name: &str) -> Result<CatalogInfo, ClientError> {
        wire::validate_catalog_id(name)?;
        let bytes = self
            .get(
                &format!("/v1/catalogs/{name}"),
                ReadLimit::protocol(MAX_INFO_BYTES),
            )
            .await?;
        Ok(CatalogInfo::parse(&bytes)?)
    }

    /// Fetch every artefact of a version, the description first and the others each under
    /// the size it implies or the app's limit, whichever is smaller.
    pub(crate) async fn fetch_artifacts(
        &self,
        name: &str,
        version: &CatalogVersion,
        limits: &Limits,
    ) -> Result<Artifacts, ClientError> {
        let base = format!("/v1/catalogs/{name}/versions/{}", version.to_hex());
        let description = self
            .get(
                &format!("{base}/description"),
                ReadLimit {
                    bytes: limits.max_description_bytes,
                    limit: Some("max_description_bytes"),
                },
            )
            .await?;
        let shape = PreparedCatalog::check_description(name, &description, limits)?.shape()?;
        let read = ReadLimits::new(&shape, limits);
        let hint = self.get(&format!("{base}/hint"), read.hint).await?;
        let ids = self.get(&format!("{base}/ids"), read.ids).await?;
        let scales = self.get(&format!("{base}/scales"), read.scales).await?;
        Ok(Artifacts {
            description,
            hint,
            ids,
            scales,
        })
    }

    /// Send an encoded query for a prepared catalog version; returns the encoded response.
    pub(crate) async fn score(
        &self,
        prepared: &PreparedCatalog,
        query: Vec<u8>,
        limits: &Limits,
    ) -> Result<Vec<u8>, ClientError> {
        let path = format!(
            "/v1/catalogs/{}/versions/{}/score",
            prepared.name(),
            prepared.version().to_hex()
        );
        let response = self
            .request(reqwest::Method::POST, &path)?
            .header("content-type", "application/octet-stream")
            .body(query)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(response, prepared.read_limits(limits).response).await
    }

    async fn get(&self, path: &str, limit: ReadLimit) -> Result<Vec<u8>, ClientError> {
        let response = self
            .request(reqwest::Method::GET, path)?
            .send()
            .await
            .map_err(ClientError::Transport)?;
        read(response, limit).await
    }
}

/// Read a body of at most `limit` bytes; an error status becomes its typed error with the
/// server's (truncated) message, and a redirect is refused.
async fn read(mut response: reqwest::Response, limit: ReadLimit) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return Err(ClientError::Redirected {
            status: status.as_u16(),
            location: location.chars().take(256).collect(),
        });
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    // A limit beyond this platform's address space cannot be reached anyway.
    let max = if status.is_success() {
        usize::try_from(limit.bytes).unwrap_or(usize::MAX)
    } else {
        MAX_ERROR_BYTES
    };
    // Sized once from the announced length (within the limit), so that the body does not
    // grow by doubling to twice its size.
    let announced = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0).min(max));
    while let Some(chunk) = response.chunk().await.map_err(ClientError::Transport)? {
        if body.len().saturating_add(chunk.len()) > max {
            if !status.is_success() {
                body.extend_from_slice(&chunk[..max - body.len()]);
                break;
            }
            return Err(limit.exceeded(body.len().saturating_add(chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(ClientError::from_answer(
            status.as_u16(),
            &body,
            retry_after,
        ));
    }
    Ok(body)
}
