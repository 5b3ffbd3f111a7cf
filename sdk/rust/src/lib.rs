//! Write a sandboxed CloudForet collector in Rust, for `cf-host`.
//!
//! A collector implements [`Collector`] (and, with features `cost` and
//! `metrics`, [`CostSource`] and [`MetricSource`]) over plain Rust types,
//! and [`export!`] makes it the component's export:
//!
//! ```ignore
//! use cloudforet_collector::{export, CloudService, Collector, Error, Io, Metadata, Summary};
//!
//! struct Hello;
//!
//! impl Collector for Hello {
//!     fn init(_options: &str) -> Result<Metadata, Error> {
//!         Ok(Metadata::inventory())
//!     }
//!     fn collect(io: &mut Io<'_>, _options: &str, _secret: &str, _task: &str) -> Result<Summary, Error> {
//!         let hello = CloudService::builder("hello", "Demo", "Greeting", "hello-1", "hello").build()?;
//!         io.emit(vec![hello.into()]);
//!         Ok(Summary { emitted: 1, errors: 0 })
//!     }
//! }
//!
//! export!(Hello);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (crate type
//! `cdylib`); everything but the WIT edge also builds natively, so the
//! collector's logic is tested with `cargo test` against [`testing`]'s
//! doubles.
//!
//! # Layout
//!
//! - [`plugin`]: the traits a collector implements and their plain types
//!   ([`Metadata`], [`Summary`], [`CostTask`], [`MetricInfo`] ...).
//! - [`io`]: what a call reaches, as traits: [`Transport`] (outbound HTTP
//!   through the host; credentials are added by the host, see
//!   [`Credential`]), [`Sink`] (records and logs), [`State`] (key/value
//!   state, typed through [`StateExt`]); [`Io`] holds the three.
//! - [`client`]: HTTP with retries (429/`Retry-After` on its own budget,
//!   back-off on 5xx and transport failures), status → [`Error`] mapping,
//!   and paging (offset/limit or page/limit; once the first page tells the
//!   total, the rest in windows the host performs while the collector goes
//!   on, world 0.3.1 `start-many`, at most
//!   [`client::MAX_PENDING_WINDOWS`] (2) pending; handed on in order).
//! - [`record`]: the records (CloudService, CloudServiceType, Region,
//!   ErrorResource, Namespace, Metric, Cost); [`build`]: their builders,
//!   which require the fields CloudForet matches records by and take the
//!   console's labels as [`Label`]s.
//! - [`console`]: the console's vocabulary: [`Label`], continents, [`Icon`].
//! - [`layout`]: dynamic layouts (table, search, detail tabs) as the Python
//!   plugin SDK renders them.
//! - [`error`]: the expected failures ([`Error`]), 1:1 with WIT
//!   `collector-error` and the host's gRPC codes.
//! - [`heap`]: the component's allocator (free lists per size class in
//!   front of talc; feature `allocator`, on by default).
//! - [`testing`]: doubles of the host for native tests ([`testing::MockHttp`]
//!   performs a started batch at once, as the host does, and counts the
//!   batches pending).
//! - `bindings`, `guest` (wasm32 only): the generated WIT bindings of the
//!   world the features select (`plugin`; `cost-plugin`, `monitoring-plugin`
//!   or `full-plugin` with `cost`/`metrics`) and the edge [`export!`] uses.

pub mod build;
pub mod client;
pub mod console;
pub mod error;
pub mod heap;
pub mod io;
pub mod layout;
pub mod plugin;
pub mod record;
pub mod testing;

pub use client::{Client, Page, PageRef, Retries};
pub use console::{Icon, Label};
pub use error::Error;
pub use io::{Credential, Flow, HttpRequest, HttpResponse, Io, Level, Method, NoState, Sink, Started, State, StateExt, Transport, TransportError};
pub use plugin::{Collector, CostSource, CostTask, Metadata, MetricData, MetricInfo, MetricQuery, MetricSource, Summary};
pub use record::{CloudService, CloudServiceType, Cost, ErrorResource, Metric, Namespace, Record, Region};

/// The component's allocator: free lists per size class in front of talc
/// (the collection allocates per entity and per record; see [`heap`]).
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: heap::SizeClasses<talc::wasm::WasmDynamicTalc> = heap::SizeClasses::new(talc::wasm::new_wasm_dynamic_allocator());

/// The generated bindings of the world the features select.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    #[cfg(not(any(feature = "cost", feature = "metrics")))]
    wit_bindgen::generate!({ path: "wit", world: "plugin", pub_export_macro: true, export_macro_name: "__export_world" });
    #[cfg(all(feature = "cost", not(feature = "metrics")))]
    wit_bindgen::generate!({ path: "wit", world: "cost-plugin", pub_export_macro: true, export_macro_name: "__export_world" });
    #[cfg(all(feature = "metrics", not(feature = "cost")))]
    wit_bindgen::generate!({ path: "wit", world: "monitoring-plugin", pub_export_macro: true, export_macro_name: "__export_world" });
    #[cfg(all(feature = "cost", feature = "metrics"))]
    wit_bindgen::generate!({ path: "wit", world: "full-plugin", pub_export_macro: true, export_macro_name: "__export_world" });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

impl From<CloudService> for Record {
    fn from(c: CloudService) -> Record {
        Record::CloudService(c)
    }
}

impl From<CloudServiceType> for Record {
    fn from(t: CloudServiceType) -> Record {
        Record::CloudServiceType(t)
    }
}

impl From<Region> for Record {
    fn from(r: Region) -> Record {
        Record::Region(r)
    }
}

impl From<ErrorResource> for Record {
    fn from(e: ErrorResource) -> Record {
        Record::Error(e)
    }
}

/// Makes a type implementing [`Collector`] (and, with features `cost` and
/// `metrics`, [`CostSource`] and [`MetricSource`]) the component's export,
/// and writes the `cloudforet-plugin` section the host's registry reads:
/// the crate's name and version (`export!(T)`) or another name
/// (`export!(T, name = "nutanix")`). Expands to nothing off wasm32, so the
/// crate's tests build natively.
#[macro_export]
macro_rules! export {
    ($t:ty) => {
        $crate::__export_with_identity!($t, concat!(r#"{"name":""#, env!("CARGO_PKG_NAME"), r#"","version":""#, env!("CARGO_PKG_VERSION"), r#""}"#));
    };
    ($t:ty, name = $name:literal) => {
        $crate::__export_with_identity!($t, concat!(r#"{"name":""#, $name, r#"","version":""#, env!("CARGO_PKG_VERSION"), r#""}"#));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_with_identity {
    ($t:ty, $info:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;

            impl $crate::bindings::exports::cloudforet::collector::collector::Guest for Exports {
                fn init(options: String) -> Result<$crate::bindings::exports::cloudforet::collector::collector::PluginMetadata, $crate::guest::CollectorError> {
                    $crate::guest::init::<$t>(options)
                }
                fn verify(options: String, secret: String) -> Result<(), $crate::guest::CollectorError> {
                    $crate::guest::verify::<$t>(options, secret)
                }
                fn get_tasks(options: String, secret: String) -> Result<Vec<$crate::bindings::exports::cloudforet::collector::collector::Task>, $crate::guest::CollectorError> {
                    $crate::guest::get_tasks::<$t>(options, secret)
                }
                fn collect(options: String, secret: String, task_options: String) -> Result<$crate::bindings::exports::cloudforet::collector::collector::Summary, $crate::guest::CollectorError> {
                    $crate::guest::collect::<$t>(options, secret, task_options)
                }
            }

            $crate::__cost_exports!(Exports, $t);
            $crate::__metric_exports!(Exports, $t);
            $crate::bindings::__export_world!(Exports with_types_in $crate::bindings);

            const INFO: &str = $info;
            #[unsafe(link_section = "cloudforet-plugin")]
            #[used]
            static PLUGIN_SECTION: [u8; INFO.len()] = $crate::__section(INFO);
        };
    };
}

#[cfg(feature = "cost")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cost_exports {
    ($c:ident, $t:ty) => {
        impl $crate::bindings::exports::cloudforet::collector::cost_source::Guest for $c {
            fn init(options: String) -> Result<String, $crate::guest::CollectorError> {
                $crate::guest::cost::init::<$t>(options)
            }
            fn get_tasks(
                options: String,
                secret: String,
                start: Option<String>,
                last_synchronized_at: Option<String>,
            ) -> Result<Vec<$crate::bindings::exports::cloudforet::collector::cost_source::CostTask>, $crate::guest::CollectorError> {
                $crate::guest::cost::get_tasks::<$t>(options, secret, start, last_synchronized_at)
            }
            fn get_data(options: String, secret: String, task_options: String) -> Result<u64, $crate::guest::CollectorError> {
                $crate::guest::cost::get_data::<$t>(options, secret, task_options)
            }
        }
    };
}

#[cfg(not(feature = "cost"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cost_exports {
    ($c:ident, $t:ty) => {};
}

#[cfg(feature = "metrics")]
#[doc(hidden)]
#[macro_export]
macro_rules! __metric_exports {
    ($c:ident, $t:ty) => {
        impl $crate::bindings::exports::cloudforet::collector::metric_source::Guest for $c {
            fn init(options: String) -> Result<String, $crate::guest::CollectorError> {
                $crate::guest::metrics::init::<$t>(options)
            }
            fn list_metrics(
                options: String,
                secret: String,
                query: String,
            ) -> Result<Vec<$crate::bindings::exports::cloudforet::collector::metric_source::MetricInfo>, $crate::guest::CollectorError> {
                $crate::guest::metrics::list_metrics::<$t>(options, secret, query)
            }
            fn get_data(
                options: String,
                secret: String,
                metric_query: String,
                metric: String,
                start: String,
                end: String,
                period: Option<u32>,
                stat: Option<String>,
            ) -> Result<$crate::bindings::exports::cloudforet::collector::metric_source::MetricData, $crate::guest::CollectorError> {
                $crate::guest::metrics::get_data::<$t>(options, secret, metric_query, metric, start, end, period, stat)
            }
        }
    };
}

#[cfg(not(feature = "metrics"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __metric_exports {
    ($c:ident, $t:ty) => {};
}

/// The bytes of the `cloudforet-plugin` section (`N` is the text's length).
#[doc(hidden)]
pub const fn __section<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}
