//! Serving catalogs: the versions held by name, their query queues (or a router's shards),
//! building a version from loaded items or an artefact's share, and the counters. Of HTTP
//! it knows the access settings it holds for the HTTP layer, and the shard calls of a
//! router.
//!
//! * [`config`]: the operator's settings and each catalog's declared space.
//! * [`plan`]: checking a catalog and choosing widths, layout and version before a build.
//! * [`service`]: the shared state; building planned versions and starting their batchers.
//! * [`registry`]: current and previous versions by name, and builds in progress.
//! * [`version`]: one version: its scan, artefacts and queue.
//! * [`batcher`]: concurrent queries of a version scored together.
//! * [`fanout`]: a router's scoring: each query sent to every shard, the payloads joined.
//! * [`metrics`]: counters and gauges in the Prometheus text format.

pub mod batcher;
pub mod config;
pub mod fanout;
pub mod metrics;
pub mod plan;
pub mod registry;
pub mod service;
pub mod version;

pub use batcher::{BatchConfig, Batcher, SubmitError};
pub use config::{ServiceConfig, SpaceDeclaration};
pub use fanout::{Fanout, FanoutError, ShardTarget};
pub use plan::{plan_entry, plan_quantized, spread_dimensions, PlannedShare, PlannedVersion};
pub use registry::{Lookup, Registry};
pub use service::AppState;
pub use version::{ScoreError, Scorer, ShardOf, VersionEntry};
