//! The blindscore client SDK: private ranking in a few lines of app code.
//!
//! ```no_run
//! # async fn app() -> Result<(), blindscore_client::ClientError> {
//! use blindscore_client::Ranker;
//!
//! let ranker = Ranker::new("https://shop.example/blindscore").with_cache_dir("cache");
//! let preferences: Vec<f32> = vec![0.125; 64]; // the user's taste, unit norm, never sent in the clear
//! for item in ranker.rank("products", &preferences, 10).await? {
//!     println!("{} {:.3}", item.id, item.score);
//! }
//! # Ok(()) }
//! ```
//!
//! A runnable version, with an in-process server: `cargo run --release -p blindscore-client
//! --example quickstart`; the whole loop with timings: `cargo run --release -p
//! blindscore-client -- demo`.
//!
//! What happens inside [`Ranker::rank`]: the catalog's current version is looked up; its
//! public data (description, hint, ids, scales) is fetched once per version, checked (the
//! parameter id against the table compiled into this crate, every size range-checked, the
//! hint against its digest) and cached in memory and optionally on disk; the vector is
//! checked against the catalog's declared embedding space, quantized, and encrypted under
//! a key drawn fresh from the OS's CSPRNG for this query alone; the server scores every
//! item without a key; the response is decrypted (the key is zeroised), rescaled, filtered
//! by the app's exclusions and ranked, all on the device.
//!
//! The steps are also available one by one ([`Ranker::prepare`], [`CatalogState::seal`],
//! [`Ranker::send`], [`CatalogState::open`]), e.g. to prefetch a catalog on Wi-Fi or to
//! query several catalogs, and [`Ranker::cost`] tells what a query costs in bytes. The
//! lowest level ([`PreparedCatalog`], [`PendingQuery`]) works on wire messages.
//!
//! Privacy rules the SDK keeps (and its tests check): nothing it sends depends in content
//! or timing on decrypted scores; it retries only on a transport error or a replaced
//! version, once, with a fresh encryption; a vector from another embedding space is
//! refused before anything is sent; no parameter is taken from the server.
//! [`profile::PreferenceProfile`] builds the preference vector on the device.

mod error;
mod http;
mod key;
mod prepared;
pub mod profile;
pub mod quality;
mod query;
mod rank;
mod sdk;

pub use error::ClientError;
pub use http::{
    parse_catalog_info, parse_ids, parse_scales, Artifacts, Client, Connection, EmbeddingSpace,
    Transfer,
};
pub use key::SecretKey;
pub use prepared::PreparedCatalog;
pub use query::{EncryptedQuery, PendingQuery};
pub use rank::{rescale, top_k};
pub use sdk::{CatalogState, QueryCost, RankedItem, Ranker, SealedQuery};
