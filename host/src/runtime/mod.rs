//! The sandbox runtime: engine, plugin loading, and one fresh store per call.
//!
//! # Layout
//!
//! - [`engine`]: the [`Runtime`] (one [`wasmtime::Engine`] with the pooling
//!   allocator sized from the maximum concurrency and epoch interruption
//!   driven by a ticker thread; the linker; HTTP client pools and breakers;
//!   the sandbox pool; tenancy; metrics) and loading and admission of a
//!   [`Plugin`] (compiled component plus its `InstancePre`, checked at load
//!   time against the world).
//! - [`store`]: one call's store: [`RunState`] only aggregates the
//!   per-capability contexts; memory limiter, CPU budget (epoch ticks),
//!   classification of traps.
//! - [`context`]: [`RunContext`] and the one builder every caller uses.
//! - [`calls`]: the calls into the guest and what they answer; each takes
//!   a permit from its tenant's queue and one from the pool (a full pool
//!   queues instead of failing), and runs under a wall-clock deadline.

pub mod calls;
pub mod context;
pub mod engine;
pub mod store;

pub use calls::{CollectReport, CostTask, MetricData, MetricInfo, MetricQuery, PluginMetadata, Role};
pub use context::{new_run_id, ContextError, RunContext, RunContextBuilder};
pub use engine::{component_digest, LoadError, Plugin, Runtime, RuntimeConfig};
pub use store::{RunState, EPOCH_TICK};
