//! Serving catalogs: the versions held by name, their query queues, building a version
//! from loaded items, and the counters. It knows nothing of HTTP beyond the access
//! settings it holds for the HTTP layer.
//!
//! * [`config`]: the operator's settings and each catalog's declared space.
//! * [`plan`]: checking a catalog and choosing widths, layout and version before a build.
//! * [`service`]: the shared state; building planned versions and starting their batchers.
//! * [`registry`]: current and previous versions by name, and builds in progress.
//! * [`version`]: one version: its scan, artefacts and queue.
//! * [`batcher`]: concurrent queries of a version scored together.
//! * [`metrics`]: counters and gauges in the Prometheus text format.

pub mod batcher;
pub mod config;
pub mod metrics;
pub mod plan;
pub mod registry;
pub mod service;
pub mod version;

pub use batcher::{BatchConfig, Batcher, SubmitError};
pub use config::{ServiceConfig, SpaceDeclaration};
pub use plan::{plan_entry, spread_dimensions, PlannedVersion};
pub use registry::{Lookup, Registry};
pub use service::AppState;
pub use version::VersionEntry;
