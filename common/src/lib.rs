//! The blindscore protocol, shared by client and server. No I/O happens here.
//!
//! * [`api`]: the JSON documents of the HTTP API (catalog info, embedding space, error
//!   codes) and [`artefacts`]: the encodings of the ids and scales.
//! * [`params`]: the parameter table compiled into every build, keyed by [`ParamId`].
//! * [`budget`]: the one noise budget function that owns Delta, value widths and wire widths.
//! * [`layout`]: column and grouped layouts and block geometry; [`objective`]: choosing b by
//!   what clients pay, within the server time a committed table of measurements allows.
//! * [`catalog`]: quantized catalogs and the [`CatalogShape`] both sides derive.
//! * [`digest`]: catalog versions (content digests) and the public mask seed.
//! * [`masks`]: the masks a_g, expanded by tfhe's seeded generator.
//! * [`fourier`]: the negacyclic FFT and the exact integer product.
//! * [`bitpack`] and [`wire`]: bit-packed words and versioned messages.
//! * [`encoding`]: wire words, rounding and centring mod 2^hi.

#![forbid(unsafe_code)]

pub mod api;
pub mod artefacts;
pub mod bitpack;
pub mod budget;
pub mod catalog;
pub mod digest;
pub mod encoding;
pub mod error;
pub mod fourier;
pub mod layout;
pub mod masks;
pub mod objective;
mod param_id;
pub mod params;
pub mod quant;
pub mod wire;

pub use budget::NoiseBudget;
pub use catalog::{CatalogShape, LayoutChoice, QuantizedCatalog};
pub use digest::CatalogVersion;
pub use error::ProtocolError;
pub use layout::{Geometry, Layout};
pub use params::{GlweParams, ParamId};
pub use wire::{CatalogDescription, CatalogRef, HintMessage, QueryMessage, ResponseMessage};
