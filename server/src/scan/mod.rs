//! The scan: catalogs in the Fourier domain and the encrypted multiply-accumulate over them.
//! It holds no key of any kind and knows nothing of HTTP.
//!
//! * [`served`]: one catalog version ready to serve (description, hint, scan).
//! * [`query`]: a query decoded and checked once.
//! * [`fourier_catalog`]: the catalog transformed once per version, laid out for the scan.
//! * [`hint`]: the exact catalog hint, once per version.
//! * [`evaluator`]: the batched body-only multiply-accumulate and inverse transforms.
//! * [`kernel`]: the hot loop, dispatching to [`avx512`] or to its portable twin, over the
//!   units of [`tile`], as [`cpu`] says this CPU can.
//! * [`tuning`]: the sizes and distances of a pass, chosen per CPU family.
//! * [`memory`]: aligned buffers, their one pool, streaming stores.
//! * [`response`]: encoded responses written in place.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;
mod cpu;
pub mod evaluator;
pub mod fourier_catalog;
pub mod hint;
#[allow(unsafe_code)]
pub mod kernel;
#[allow(unsafe_code)]
pub mod memory;
pub mod query;
pub mod response;
pub mod served;
pub mod tile;
pub mod tuning;

pub use evaluator::{Evaluator, PassTimings, PreparedBatch};
pub use fourier_catalog::{FourierCatalog, Progress};
pub use kernel::Kernel;
pub use query::CheckedQuery;
pub use response::ResponseMessage;
pub use served::{CatalogSource, ServedCatalog};
pub use tuning::Tuning;
