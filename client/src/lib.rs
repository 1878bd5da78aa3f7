//! The blindscore client: the side that holds the secret.
//!
//! For each query it draws a fresh binary key from the OS's CSPRNG, encrypts the quantized
//! preference vector against a catalog version's public masks, and, once the server has
//! answered, subtracts the catalog hint times the key, rounds, and ranks. Everything the
//! server sends is range-checked; the encryption parameters come from the table compiled
//! into this crate, never from the server.
//!
//! ```no_run
//! # fn demo(description: &blindscore_common::CatalogDescription, hint: &[u8],
//! #         send: impl Fn(&[u8]) -> Vec<u8>) -> Result<(), blindscore_client::ClientError> {
//! use blindscore_client::{top_k, PreparedCatalog};
//! let catalog = PreparedCatalog::new(description, hint)?; // checks digest, budget, sizes
//! let query = vec![3i32; catalog.shape().geometry.dimension];
//! let encrypted = catalog.encrypt(&query)?;               // fresh key inside
//! let response = send(&encrypted.bytes);
//! let scores = encrypted.pending.decrypt(&catalog, &response)?; // key zeroised
//! let best = top_k(&scores, 10);
//! # let _ = best; Ok(()) }
//! ```

mod error;
mod http;
mod key;
mod prepared;
pub mod profile;
mod query;
mod rank;
mod sdk;

pub use error::ClientError;
pub use http::{Artifacts, Client, EmbeddingSpace, Transfer};
pub use key::SecretKey;
pub use prepared::PreparedCatalog;
pub use query::{EncryptedQuery, PendingQuery};
pub use rank::{rescale, top_k};
pub use sdk::{CatalogState, QueryCost, RankedItem, Ranker, SealedQuery};
