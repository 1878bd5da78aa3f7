//! The blindscore client SDK: private ranking in a few lines of app code.
//!
//! ```no_run
//! # #[cfg(feature = "http")]
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
//! A runnable version, with an in-process server: `cargo run --release -p blindscore-cli
//! --example quickstart`; the whole loop with timings: `cargo run --release -p
//! blindscore-cli -- demo`.
//!
//! # Layers
//!
//! * At the top, with the `http` feature (on by default): [`Ranker`], which talks to a
//!   server over HTTP (through a [`Connection`]), caches each catalog version's public
//!   data, retries once when that is safe, and runs the CPU-heavy steps on tokio's
//!   blocking pool. It returns [`RankedItem`]s, tells a query's [`QueryCost`], and reports
//!   every failure as a [`ClientError`]. [`profile`] builds the preference vector on the
//!   device.
//! * Below it, [`core`]: the sans-IO steps (check the artefacts, seal a vector, open a
//!   response) as plain functions over bytes and checked types. It has no network, no
//!   runtime, no file system and no clock, and builds with `default-features = false`,
//!   for transports of the app's own (a browser's `fetch`, a platform's HTTP stack).
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
//! Privacy rules the SDK keeps (and its tests check): nothing it sends depends in content
//! or timing on decrypted scores; it retries only on a transport error or a replaced
//! version, once, with a fresh encryption; a vector from another embedding space is
//! refused before anything is sent; no parameter is taken from the server.

// No unsafe code in any build of the crate; its own test binary alone has an allocator
// that scans freed memory for secrets (core::tests::wipe).
#![cfg_attr(not(test), forbid(unsafe_code))]
#![cfg_attr(test, deny(unsafe_code))]

pub mod core;
mod error;
#[cfg(feature = "http")]
mod http;
pub mod profile;

pub use crate::core::{QueryCost, RankedItem};
pub use error::ClientError;
#[cfg(feature = "http")]
pub use http::{Connection, Ranker};
