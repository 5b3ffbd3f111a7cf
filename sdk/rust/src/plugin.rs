//! What a collector implements: [`Collector`] (CloudForet's inventory
//! collector calls), and optionally [`CostSource`] (feature `cost`) and
//! [`MetricSource`] (feature `metrics`). Plain Rust: the calls take JSON
//! text and an [`Io`], so they are tested natively with
//! [`crate::testing`]'s doubles; [`crate::export!`] makes a type the
//! component's export.

use serde_json::Value;

use crate::io::{Io, Transport};
use crate::Error;

/// What `init` answers: what CloudForet stores as the plugin's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub supported_resource_types: Vec<String>,
    pub supported_schedules: Vec<String>,
    pub supported_features: Vec<String>,
    /// JSON Schema (object) of the options the collector accepts.
    pub options_schema: Value,
}

impl Metadata {
    /// A collector of cloud services (and their types and regions) run
    /// hourly, with no options.
    pub fn inventory() -> Metadata {
        Metadata {
            supported_resource_types: ["inventory.CloudService", "inventory.CloudServiceType", "inventory.Region"].map(String::from).to_vec(),
            supported_schedules: vec!["hours".into()],
            supported_features: Vec::new(),
            options_schema: serde_json::json!({"type": "object", "properties": {}}),
        }
    }
}

/// The collector's own account of a collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records emitted, all kinds.
    pub emitted: u64,
    /// Error resources among them.
    pub errors: u64,
}

/// CloudForet's collector calls (`Collector.init`, `Collector.verify`,
/// `Job.get_tasks`, `Collector.collect`). Options, secret and task options
/// are JSON object text; the secret's credential fields are masked for
/// world 0.3 guests (the host adds credentials to requests, see
/// [`crate::io::Credential`]).
pub trait Collector {
    fn init(options: &str) -> Result<Metadata, Error>;

    /// Checks the options and that the endpoint answers; by default,
    /// nothing to check.
    fn verify(io: &mut Io<'_>, options: &str, secret: &str) -> Result<(), Error> {
        let _ = (io, options, secret);
        Ok(())
    }

    /// The units of work; each one's options come back to `collect` as
    /// `task_options`. By default one task, `{}`.
    fn get_tasks(options: &str, secret: &str) -> Result<Vec<Value>, Error> {
        let _ = (options, secret);
        Ok(vec![Value::Object(Default::default())])
    }

    /// Emits the task's records through `io` (in batches: the host answers
    /// [`crate::Flow::Stop`] when the consumer has had enough).
    fn collect(io: &mut Io<'_>, options: &str, secret: &str, task_options: &str) -> Result<Summary, Error>;
}

/// One unit of cost work.
#[derive(Clone, Debug, PartialEq)]
pub struct CostTask {
    /// Handed back to `get_data` as `task_options`.
    pub options: Value,
    /// The period (days `YYYY-MM-DD` or months `YYYY-MM`, end included)
    /// whose costs CloudForet replaces with what the task emits.
    pub changed: Option<(String, Option<String>)>,
}

/// CloudForet's cost data source calls (`DataSource.init`,
/// `Job.get_tasks`, `Cost.get_data`). Feature `cost`.
pub trait CostSource {
    fn init(options: &str) -> Result<Value, Error>;
    fn get_tasks(options: &str, secret: &str, start: Option<&str>, last_synchronized_at: Option<&str>) -> Result<Vec<CostTask>, Error>;
    /// Emits the task's costs ([`crate::Record::Cost`]) and answers how
    /// many.
    fn get_data(io: &mut Io<'_>, options: &str, secret: &str, task_options: &str) -> Result<u64, Error>;
}

/// A metric offered for the queried resources.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    /// Passed back to `get_data` as `metric`.
    pub key: String,
    pub name: String,
    pub group: String,
    /// e.g. `{"x": "Timestamp", "y": "Percent"}`.
    pub unit: Value,
    /// The per-resource query passed back to `get_data`.
    pub metric_query: Value,
}

/// A time series per resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricData {
    /// The timestamps (RFC 3339), one per value.
    pub labels: Vec<String>,
    /// Resource id → list of numbers (null where missing).
    pub values: Value,
}

/// What `get_data` is asked for.
#[derive(Clone, Copy, Debug)]
pub struct MetricQuery<'a> {
    pub metric_query: &'a str,
    pub metric: &'a str,
    pub start: &'a str,
    pub end: &'a str,
    pub period: Option<u32>,
    pub stat: Option<&'a str>,
}

/// CloudForet's monitoring data source calls (`DataSource.init`,
/// `Metric.list`, `Metric.get_data`). Feature `metrics`.
pub trait MetricSource {
    fn init(options: &str) -> Result<Value, Error>;
    fn list_metrics(http: &mut dyn Transport, options: &str, secret: &str, query: &str) -> Result<Vec<MetricInfo>, Error>;
    fn get_data(http: &mut dyn Transport, options: &str, secret: &str, query: MetricQuery<'_>) -> Result<MetricData, Error>;
}
