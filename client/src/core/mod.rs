//! The sans-IO client core: every crypto and protocol step of a ranking as a plain
//! function over bytes and checked types. Nothing here opens a connection, needs a
//! runtime, touches a file system or reads a clock, so any transport can drive it (the
//! [`Ranker`](crate::Ranker) over HTTP, a web app's `fetch`, a test handing in bytes).
//!
//! 1. **Check** the catalog's public artefacts into a [`PreparedCatalog`]:
//!    [`PreparedCatalog::check`] takes the catalog's name, the embedding space its catalog
//!    info declares, the [`Artifacts`] (description, hint, ids, scales) and the app's
//!    [`Limits`] (what a server may make the device fetch, hold and send; a transport
//!    fetches the description first and reads the other artefacts under the sizes
//!    [`PreparedCatalog::check_description`] allows).
//! 2. **Seal** a preference vector: [`PreparedCatalog::seal`] gives a [`SealedQuery`], the
//!    query bytes to send and a [`PendingQuery`] that holds what the fresh key left behind.
//! 3. **Open** the response bytes into a ranking: [`PendingQuery::open`] (or
//!    [`PendingQuery::decrypt`] for the exact integer scores).
//!
//! ```no_run
//! # fn fetch(path: &str) -> Vec<u8> { unimplemented!() }
//! # fn post(path: &str, body: Vec<u8>) -> Vec<u8> { unimplemented!() }
//! use std::collections::HashSet;
//! use blindscore_client::core::{Artifacts, Limits, PreparedCatalog};
//! use blindscore_common::api::CatalogInfo;
//!
//! let info = CatalogInfo::parse(&fetch("/v1/catalogs/shop"))?;
//! let base = format!("/v1/catalogs/shop/versions/{}", info.current.version);
//! let artifacts = Artifacts {
//!     description: fetch(&format!("{base}/description")),
//!     hint: fetch(&format!("{base}/hint")),
//!     ids: fetch(&format!("{base}/ids")),
//!     scales: fetch(&format!("{base}/scales")),
//! };
//! let limits = Limits::default();
//! let catalog =
//!     PreparedCatalog::check("shop", info.current.embedding_space, &artifacts, &limits)?;
//! let preferences = vec![0.125f32; 64];
//! let sealed = catalog.seal(&preferences, None)?;
//! let response = post(&format!("{base}/score"), sealed.bytes);
//! let top = sealed.pending.open(&catalog, &response, 10, &HashSet::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod key;
mod limits;
mod noise;
mod open;
mod rank;
mod seal;
#[cfg(test)]
mod tests;

pub use catalog::{Artifacts, PreparedCatalog, QueryCost};
pub use key::SecretKey;
pub use limits::{preparation_bytes, Limits, ReadLimit, ReadLimits};
pub use open::RankedItem;
pub use rank::{rescale, top_k};
pub use seal::{PendingQuery, SealedQuery};
