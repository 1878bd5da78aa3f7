//! Talking to a blindscore server over HTTP.

use blindscore_common::{wire, CatalogDescription};

use crate::error::ClientError;
use crate::prepared::PreparedCatalog;

/// Largest description a client reads.
const MAX_DESCRIPTION_BYTES: u64 = 64 * 1024;

/// A connection to one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// What a fetch or a query cost on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent.
    pub up: usize,
    /// Bytes received.
    pub down: usize,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Fetch a catalog's description and hint, check them and prepare.
    pub async fn fetch_catalog(
        &self,
        name: &str,
    ) -> Result<(PreparedCatalog, Transfer), ClientError> {
        let description_bytes = self.get(&format!("/v1/catalogs/{name}")).await?;
        let description: CatalogDescription =
            wire::decode(&description_bytes, MAX_DESCRIPTION_BYTES)?;
        let shape = description.shape()?;
        let hint = self.get(&format!("/v1/catalogs/{name}/hint")).await?;
        if hint.len() > shape.hint_payload_bytes() + 4096 {
            return Err(blindscore_common::ProtocolError::WrongLength {
                what: "hint bytes",
                found: hint.len(),
                expected: shape.hint_payload_bytes(),
            }
            .into());
        }
        let prepared = PreparedCatalog::new(&description, &hint)?;
        Ok((
            prepared,
            Transfer {
                up: 0,
                down: description_bytes.len() + hint.len(),
            },
        ))
    }

    /// Send an encrypted query; returns the encoded response.
    pub async fn score(
        &self,
        name: &str,
        query: Vec<u8>,
    ) -> Result<(Vec<u8>, Transfer), ClientError> {
        let up = query.len();
        let response = self
            .http
            .post(format!("{}/v1/catalogs/{name}/score", self.base))
            .header("content-type", "application/octet-stream")
            .body(query)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let bytes = read(response).await?;
        let down = bytes.len();
        Ok((bytes, Transfer { up, down }))
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read(response).await
    }
}

async fn read(response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if !status.is_success() {
        let message = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned();
        return Err(ClientError::Server {
            status: status.as_u16(),
            message,
        });
    }
    Ok(bytes.to_vec())
}
