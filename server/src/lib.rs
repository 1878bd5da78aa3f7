//! The blindscore server, along its data path: a request comes in through [`http`], is
//! decoded and checked once into a [`scan::CheckedQuery`], waits in its version's queue in
//! [`serving`] for company, and is scored in one pass over the catalog by [`scan`]. It holds
//! no key of any kind, and this crate does not depend on the client.
//!
//! * [`http`]: the router, its layers (rate limits, API keys, tokens, time limits, CORS),
//!   the handlers, the generated OpenAPI document, TLS.
//! * [`serving`]: the catalogs by name and version, building versions, batching queries,
//!   metrics.
//! * [`scan`]: the Fourier catalog, the exact hint, the evaluator and its kernels.
//! * [`load`]: catalog files (`.npy` with ids, JSON Lines) to quantized items.
//! * [`access`]: API keys and quotas, bearer tokens, token buckets, forwarded addresses.
//! * [`origins`]: the web origins whose pages may call the API from a browser (CORS).
//!
//! `unsafe` code lives only in the scan's kernel and memory modules.
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]

pub mod access;
pub mod artefact;
pub mod http;
pub mod load;
pub mod origins;
pub mod scan;
pub mod serving;

pub use scan::{CatalogSource, CheckedQuery, Kernel, ServedCatalog};
