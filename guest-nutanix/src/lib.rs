//! CloudForet inventory collector for Nutanix Prism Central.
//!
//! # Layout
//!
//! - [`config`]: options, secret and task options, validated with field-named errors.
//! - [`error`]: the collector's expected failures (WIT `collector-error`).
//! - [`v3`]: the Prism Central v3 wire model (list pages, entities, error bodies).
//! - [`v4`]: the v4 APIs (endpoints, `$page`/`$limit` envelope, error bodies)
//!   and the adapter from v4 entities to the v3 shapes normalization reads.
//! - [`normalize`]: v3 entities → CloudForet records (pure functions).
//! - [`console`]: what CloudForet's console makes of the records: label
//!   vocabulary, primary/major types, icons (`icons/`), region map tags,
//!   the Server page's fields (pure).
//! - [`guard`]: the deletion guard: a kind that came back much smaller
//!   than in its last successful run becomes an error resource (counts in
//!   the collector's `state`).
//! - [`layout`]: the dynamic layouts of each CloudServiceType (console views).
//! - [`costs`]: the rate card, cost tasks (days) and each VM's daily cost
//!   lines (pure functions; `collect::cost_data` lists the VMs).
//! - [`metrics`]: the monitoring data source: VM, host and cluster metrics
//!   from the v4 stats APIs, aligned per timestamp.
//! - [`incremental`]: option `incremental`: the VM cache kept in the
//!   collector's state, its format and when a run must be full (pure).
//! - [`usage`]: usage from the v3 groups API (option `usage`) and the
//!   Namespace/Metric records over it (pure).
//! - [`heap`]: the component's allocator (free lists per size class in
//!   front of `talc`).
//! - [`prism`]: the Prism Central client every request goes through:
//!   retries with back-off and `Retry-After`, error bodies, the mapping to
//!   [`Error`], paging (v3 `offset`/`length`, v4 `$page`/`$limit`, the
//!   groups API).
//! - [`server_error`]: Prism's error bodies (v3 envelope, v4
//!   `ErrorResponse`, the gateway's flat bodies) read into one line, and
//!   whether the service or the gateway answered.
//! - [`emission`]: records out to the [`Sink`] in batches, error
//!   resources, the task's regions, the run's summary.
//! - [`listing`]: each kind's list through the API the option and the
//!   endpoint allow, lost pages as error resources.
//! - [`incremental_vms`]: the VM collection of option `incremental`
//!   (cache in `state`, changes, full runs).
//! - [`record`]: the records the guest emits (CloudService, types,
//!   regions, error resources, namespaces, metrics) as plain Rust values,
//!   and their JSON text for the WIT edge.
//! - [`collect`]: the collector's calls (`init`, `verify`, `get_tasks`,
//!   `collect`, cost data), written against the [`Transport`] and [`Sink`]
//!   traits below.
//! - `component` (wasm32 only): the thin WIT edge. `impl Guest` converts WIT
//!   types and delegates to the modules above, with the host's imports as
//!   `Transport` and `Sink`.
//!
//! Everything except `component` builds and is unit-tested natively against
//! JSON fixtures (`cargo test -p guest-nutanix`).

pub mod collect;
pub mod config;
pub mod console;
pub mod guard;
pub mod error;
pub mod costs;
pub mod emission;
pub mod heap;
pub mod incremental;
pub mod incremental_vms;
pub mod layout;
pub mod listing;
pub mod metrics;
pub mod normalize;
pub mod prism;
pub mod record;
pub mod server_error;
pub mod usage;
pub mod v3;
pub mod v4;

#[cfg(target_arch = "wasm32")]
mod component;

pub use record::Record;

/// Provider name of every record.
pub const PROVIDER: &str = "nutanix";

pub use error::Error;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, msg) = match self {
            Error::InvalidArgument(m) => ("invalid argument", m),
            Error::MissingParameter(m) => ("missing parameter", m),
            Error::Unauthenticated(m) => ("unauthenticated", m),
            Error::PermissionDenied(m) => ("permission denied", m),
            Error::NotFound(m) => ("not found", m),
            Error::Unavailable(m) => ("unavailable", m),
            Error::Timeout(m) => ("timeout", m),
            Error::ResourceExhausted(m) => ("resource exhausted", m),
            Error::Internal(m) => ("internal", m),
        };
        write!(f, "{code}: {msg}")
    }
}

/// HTTP methods the collector uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u32>,
    /// The credential the host adds (the guest never holds it).
    pub auth: Option<config::Auth>,
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Transport failures; mirrors WIT `http-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    Denied(String),
    InvalidRequest(String),
    Timeout,
    Connection(String),
    Tls(String),
    TooLarge(u64),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Denied(m) => write!(f, "egress denied by host policy: {m}"),
            TransportError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            TransportError::Timeout => write!(f, "request timed out"),
            TransportError::Connection(m) => write!(f, "connection failed: {m}"),
            TransportError::Tls(m) => write!(f, "TLS failed: {m}"),
            TransportError::TooLarge(n) => write!(f, "response larger than the host limit of {n} bytes"),
        }
    }
}

/// Outbound HTTP plus waiting (for retry back-off).
pub trait Transport {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
    /// Requests the host may perform concurrently; the answers in order.
    /// One after another unless the transport can do better.
    fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        reqs.into_iter().map(|r| self.send(r)).collect()
    }
    fn sleep_ms(&mut self, ms: u64);
}

/// Log levels; mirrors WIT `log.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Whether the consumer wants more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Proceed,
    Stop,
}

/// The collector's key/value state (WIT `state`), scoped by the host to
/// this tenant and collector.
pub trait State {
    fn get(&mut self, key: &str) -> Result<Option<String>, String>;
    fn set(&mut self, key: &str, value: &str) -> Result<(), String>;
    fn delete(&mut self, key: &str) -> Result<(), String>;
}

/// No state: every `get` finds nothing and writes fail (incremental
/// collection then always runs full).
pub struct NoState;

impl State for NoState {
    fn get(&mut self, _key: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn set(&mut self, _key: &str, _value: &str) -> Result<(), String> {
        Err("no state".into())
    }
    fn delete(&mut self, _key: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Where records and logs go.
pub trait Sink {
    fn emit(&mut self, batch: Vec<Record>) -> Flow;
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);
}
