//! CloudForet inventory collector for Nutanix Prism Central (and, through
//! the v2.0 API, a Prism Element managed without one: [`v2`]).
//!
//! # Layout
//!
//! - [`config`]: options, secret and task options, validated with field-named errors.
//! - `error`, `heap`, `record` and the I/O traits ([`Transport`], [`Sink`],
//!   [`State`]) come from the collector SDK (`sdk/rust`,
//!   `cloudforet-collector`), re-exported here.
//! - [`v3`]: the Prism Central v3 wire model (list pages, entities, error bodies).
//! - [`v4`]: the v4 APIs (endpoints, `$page`/`$limit` envelope, error bodies)
//!   and the adapter from v4 entities to the v3 shapes normalization reads.
//! - [`v2`]: the Prism Element v2.0 API, selected automatically when the
//!   endpoint is a Prism Element (how it is told from a Prism Central,
//!   `offset`/`length` and `page`/`count` paging) and the adapter from
//!   v2.0 entities to the shapes normalization reads.
//! - [`normalize`]: v3 entities → CloudForet records (pure functions).
//! - [`network_kinds`], [`network`]: the networking and security kinds
//!   (VPCs, floating IPs, route tables, virtual switches, security
//!   policies, address and service groups): what each is, and their
//!   records from the v4 item (v3 entities adapted to it).
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
//! - [`collect`]: the collector's calls (`init`, `verify`, `get_tasks`,
//!   `collect`, cost data), written against the [`Transport`] and [`Sink`]
//!   traits below.
//! - `component`: the collector as the SDK's `Collector`, `CostSource` and
//!   `MetricSource`, delegating to the modules above; the SDK's `export!`
//!   makes it the component's export (the WIT edge lives in the SDK).
//!
//! Everything builds and is unit-tested natively against JSON fixtures
//! (`cargo test -p guest-nutanix`).

pub mod collect;
pub mod config;
pub mod console;
pub mod guard;
pub mod costs;
pub mod emission;
pub mod incremental;
pub mod incremental_vms;
pub mod layout;
pub mod listing;
pub mod metrics;
pub mod network;
pub mod network_kinds;
pub mod normalize;
pub mod operations;
pub mod operations_layout;
pub mod prism;
pub mod protection;
pub mod server_error;
pub mod time;
pub mod usage;
pub mod v2;
pub mod v3;
pub mod v4;

pub mod component;

// The SDK's plain types, under the paths the modules above use.
pub use cloudforet_collector::{error, heap, record};
pub use cloudforet_collector::{Error, Flow, HttpRequest, HttpResponse, Level, Method, NoState, Record, Sink, Started, State, Transport, TransportError};

/// Provider name of every record.
pub const PROVIDER: &str = "nutanix";
