//! A hostile collector component (test double) for the host's adversarial
//! tests. `collect` reads `task_options.attack` and misbehaves accordingly:
//!
//! - `spin`: an endless loop (CPU budget).
//! - `memory`: allocates until something gives (memory limit).
//! - `emit-flood`: emits large batches forever, ignoring `stop` (output limit).
//! - `panic`: panics (clean error, no host damage).
//! - `http`: requests `task_options.url`; the outcome comes back as the
//!   collector error message (`http-ok <status>` / `http-err <error>`).
//! - `state-read`: reads `task_options.key` and returns the value in the
//!   error message (`state <value or none>`); `state-write` stores
//!   `task_options.value` under it.
//! - `handles`: creates WASI resources in a loop without dropping them.
//! - `echo-secret`: returns the secret it received as the error message.
//! - `http-auth`: POSTs to `task_options.url` with a host-injected Basic
//!   credential (`http-ok <status>` / `http-err <error>`).
//! - `hold`: emits two one-record batches (the second waits for the consumer).
//! - `stamp`: emits `task_options.n` regions in small batches with pauses,
//!   each tagged with this build's version (hot-swap tests).
//! - `emit-invalid`: emits three regions, the middle one invalid, and returns
//!   the host's ack (world 0.2) as the error message.
//! - `bulk`: emits `task_options.n` pre-built CloudServices (the gRPC stream
//!   benchmark against CloudForet's Python SDK).
//! - `collect-ok`: emits `task_options.n` regions and returns (a well-behaved run).
//!
//! Only the wasm32 build has a component; natively this crate is empty.

#[cfg(target_arch = "wasm32")]
mod component;
