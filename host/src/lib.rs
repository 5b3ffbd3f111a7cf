//! `cf-host`: a WASM plugin host for CloudForet inventory collectors.
//!
//! # Layout
//!
//! - [`bindings`]: the generated WIT bindings, one module (and one `bindgen!`)
//!   per supported, incompatible world version (0.1.x, 0.2.x), and the
//!   dispatch to the version a component was built for.
//! - [`cloudforet`]: the host's CloudForet connectors: tonic clients of
//!   identity, inventory and notification with tokens, retries and breakers.
//! - [`push`]: a push run: collection → durable outbox → upserts into
//!   CloudForet, sweep of vanished resources, notification.
//! - [`push_config`]: `cf-host run --config FILE`: tenants, secrets,
//!   schedule, sink; the scheduler loop and spool redelivery.
//! - [`spool`]: the outbox and push ledger in the embedded store.
//! - [`webhook`]: HMAC-signed completion webhooks (`collection.finished`/`failed`).
//! - [`config_file`]: `cf-host serve --config FILE` (TOML keys = flags).
//! - [`host`]: the WIT imports, one module and one `impl <iface>::Host` per
//!   interface (`http`, `log`, `emit`, `state`, `types`), each on a context
//!   holding only that capability.
//! - [`sandbox`]: engine (pooling allocator, epoch ticker), plugin loading and
//!   admission, one fresh store per call with limits in place; the store's
//!   state only aggregates the capability contexts.
//! - [`egress`]: the egress policy, a pure module checked before any I/O.
//! - [`resilience`]: back-off with jitter and the circuit breaker (pure),
//!   used by the CloudForet connectors and by guests' outbound HTTP.
//! - [`limits`]: per-run limits and their defaults.
//! - [`metrics`]: Prometheus counters of runs, records, HTTP calls, limit
//!   hits, sandboxes, live plugin versions.
//! - [`tenancy`]: per-tenant limits, concurrency caps with fair queuing,
//!   memory budgets and network grants.
//! - [`error`]: the boundary's error model (typed collector errors vs traps
//!   and limits) and its 1:1 error codes.
//! - [`registry`]: collector versions by name and semver, live version,
//!   pins, rollback, admission, precompile cache, plugins directory watcher.
//! - [`record`]: emitted records, validated from guest output.
//! - [`secret`]: secret loading and redaction.
//! - [`store`]: the embedded SQLite store with match-rule upserts.
//! - [`job`]: a collection into the store (CLI `collect` and `demo`).
//! - [`grpc`]: CloudForet's collector plugin protocol (tonic server,
//!   reflection, health).
//! - [`testing`]: run a guest against a mocked host (cassettes, captured
//!   emit/log/state, fixed clock), expectations and golden files, and the
//!   conformance checks (`cf-host test --conformance`).
//! - [`admin`]: the admin HTTP API over the registry (bearer token, error
//!   envelope); `cf-host plugins` is its client.
//! - [`scaffold`]: `cf-host new`, a collector project from the templates
//!   in `host/templates/`.
//! - [`bench`]: `cf-host bench`, the performance figures as a table.
//! - `main.rs`: the `cf-host` command line.

pub mod admin;
pub mod bench;
pub mod bindings;
pub mod cloudforet;
pub mod config_file;
pub mod egress;
pub mod error;
pub mod grpc;
pub mod host;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod push;
pub mod options;
pub mod push_config;
pub mod record;
pub mod registry;
pub mod resilience;
pub mod runtime;
pub mod scaffold;
pub mod secret;
pub mod serve;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod testing;
pub mod webhook;

pub use error::{ErrorCode, RunError};
pub use runtime::{Plugin, RunContext, RunContextBuilder, Runtime, RuntimeConfig};
