//! `cf-host`: a WASM plugin host for CloudForet inventory collectors.
//!
//! # Layout
//!
//! - [`bindings`]: the generated WIT bindings, a leaf: one module (and one
//!   `bindgen!`, from one macro) per supported world version (0.1.x, 0.2.x,
//!   0.3.x), conversions to the current one, and the dispatch to the
//!   version a component was built for.
//! - [`cloudforet`]: the host's CloudForet connectors: tonic clients of
//!   identity, inventory and notification with tokens, retries and breakers.
//! - [`push`]: a push run: collection → durable outbox → upserts into
//!   CloudForet, sweep of vanished resources, notification.
//! - [`push_config`]: `cf-host run --config FILE`: tenants, secrets,
//!   schedule, sink; the scheduler loop and spool redelivery; with
//!   `--database`, slots and tenants leased across replicas.
//! - [`run_log`]: push runs and their error resources ([`run_log::RunLog`]):
//!   in the embedded store, or in fleet mode in PostgreSQL.
//! - [`spool`]: the outbox and push ledger ([`spool::Outbox`]): in the
//!   embedded store, or in fleet mode in PostgreSQL ([`spool::pg`]).
//! - [`webhook`]: HMAC-signed completion webhooks (`collection.finished`/`failed`).
//! - [`config_file`]: `cf-host serve --config FILE` (TOML keys = flags).
//! - [`host`]: the WIT imports, one module and one `impl <iface>::Host` per
//!   interface (`http`, `log`, `emit`, `state`, `types`), each on a context
//!   holding only that capability; `host::http` holds the transport (TLS,
//!   client pool, policy-checking resolver) and the per-tenant origins
//!   (breakers and 429 pacing) and runs `send-many` batches under caps.
//! - [`runtime`]: engine (pooling allocator, epoch ticker), plugin loading and
//!   admission, one fresh store per call with limits in place (the store's
//!   state only aggregates the capability contexts), the calls and their
//!   results, and the run context with its one builder.
//! - [`serve`]: `serve::run(options, listeners, shutdown, ready)`: the gRPC
//!   server, admin API and metrics as a library function.
//! - [`options`]: host options split from the guest's at the edge.
//! - [`net`]: bounded listeners (connection caps, idle timeouts, accept
//!   back-off).
//! - [`telemetry`]: logging filters and the optional OTLP span export.
//! - [`egress`]: the egress policy, a pure module checked before any I/O.
//! - [`resilience`]: back-off with jitter and the circuit breaker (pure),
//!   used by the CloudForet connectors and by guests' outbound HTTP.
//! - [`limits`]: per-run limits and their defaults.
//! - [`metrics`]: Prometheus counters of runs, records, HTTP calls, limit
//!   hits, sandboxes, live plugin versions.
//! - [`tenancy`]: per-tenant limits, concurrency caps with fair queuing,
//!   memory budgets and network grants.
//! - [`error`]: the boundary's error model (typed collector errors vs traps
//!   and limits) and its 1:1 error codes; each core module has its own
//!   typed error (`thiserror`).
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
//! - [`dev`]: `cf-host dev`, the edit → result loop: build, hot-swap
//!   through the registry, run against a cassette or the simulator, watch.
//! - [`bench`]: `cf-host bench`, the performance figures as a table.
//! - `main.rs` parses the `cf-host` command line and dispatches to `cli/`,
//!   one file per command.

pub mod admin;
pub mod bench;
pub mod bindings;
pub mod cloudforet;
pub mod config_file;
pub mod dev;
pub mod egress;
pub mod error;
pub mod fleet;
pub mod grpc;
pub mod host;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod push;
pub mod options;
pub mod push_config;
pub mod run_log;
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
