//! CloudForet's plugin protocols over gRPC (tonic): what `cf-host serve`
//! exposes so a CloudForet inventory service (or cost analysis, or
//! monitoring) can use the host as a plugin.
//!
//! # Layout
//!
//! - [`service`]: [`PluginService`], what every call shares: version
//!   resolution, run contexts, per-peer admission, cancellation by the
//!   shutdown, the stream pump of emitting calls (backpressure, stall
//!   timeout, client cancellation).
//! - [`inventory`]: `spaceone.api.inventory.plugin.Collector` (init,
//!   verify, collect), `Job` (get_tasks), `spaceone.api.core.v1.ServerInfo`.
//! - [`cost`]: the cost data source protocol (`--protocol cost-analysis`).
//! - [`monitoring`]: the metric data source protocol (`--protocol monitoring`).
//! - [`failures`]: `--record-failures`: failed `collect` / `verify` runs
//!   kept as redacted cassettes, bounded in memory and on disk.
//! - [`server`]: [`serve`]: the tonic server with health, reflection
//!   (v1alpha, which CloudForet's client requires, and v1), limits, and the
//!   graceful shutdown.
//! - [`codec`]: prost's codec, with undecodable messages as invalid arguments.
//! - [`limit`]: the request size limit, checked before decoding.
//! - [`convert`]: Struct ↔ JSON, records → `ResourceInfo`, errors → `Status`.
//! - [`pb`]: generated types.
//!
//! Every call runs the guest in a fresh sandbox. The `token` metadata is
//! ignored, as a plugin does.

pub mod codec;
pub mod convert;
pub mod cost;
pub mod failures;
pub mod inventory;
pub mod limit;
pub mod monitoring;
pub mod pb;
pub mod server;
pub mod service;

pub use server::serve;
pub use service::{PluginService, Protocol, ServeConfig, DEFAULT_PORT, STREAM_BUFFER};
