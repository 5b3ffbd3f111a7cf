//! CloudForet records as the collector produces them; mirrors WIT `emit.item`
//! (and `costs.cost`).
//!
//! `data` and `metadata` are kept as JSON values here and serialized to JSON
//! text only at the WIT edge.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Serializable, so a collector can cache it in its `state` (guest-nutanix's
/// incremental collection does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudService {
    pub name: String,
    pub provider: String,
    pub cloud_service_group: String,
    pub cloud_service_type: String,
    pub account: Option<String>,
    pub region_code: Option<String>,
    pub instance_type: Option<String>,
    pub instance_size: Option<f64>,
    pub ip_addresses: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub resource_id: String,
    pub external_link: Option<String>,
    pub launched_at: Option<String>,
    pub data: Value,
    pub metadata: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CloudServiceType {
    pub name: String,
    pub group: String,
    pub provider: String,
    pub service_code: Option<String>,
    pub is_primary: bool,
    pub is_major: bool,
    pub labels: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub metadata: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub name: String,
    pub region_code: String,
    pub provider: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ErrorResource {
    pub message: String,
    pub provider: String,
    pub cloud_service_group: String,
    pub cloud_service_type: String,
    pub resource_type: String,
}

/// `inventory.Namespace`; mirrors WIT `emit.namespace`.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    pub namespace_id: String,
    pub name: String,
    pub category: String,
    pub resource_type: String,
    pub group: String,
    pub provider: String,
    pub icon: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// `inventory.Metric`; mirrors WIT `emit.metric`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub metric_id: String,
    pub name: String,
    /// `GAUGE` (else `COUNTER`).
    pub gauge: bool,
    pub resource_type: String,
    pub namespace_id: String,
    pub provider: String,
    pub unit: Value,
    pub query_options: Value,
    pub tags: Vec<(String, String)>,
}

/// A cost line; mirrors WIT `costs.cost`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    pub cost: f64,
    pub usage_quantity: f64,
    pub usage_unit: String,
    pub provider: String,
    pub region_code: Option<String>,
    pub product: String,
    pub usage_type: String,
    pub resource: String,
    pub tags: Vec<(String, String)>,
    pub additional_info: Value,
    pub data: Value,
    pub billed_date: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    CloudService(CloudService),
    CloudServiceType(CloudServiceType),
    Region(Region),
    Error(ErrorResource),
    Namespace(Namespace),
    Metric(Metric),
    /// Emitted through `costs.emit` (cost-source calls only).
    Cost(Cost),
}

impl Record {
    pub fn is_error(&self) -> bool {
        matches!(self, Record::Error(_))
    }
}

/// `data` / `metadata` as the JSON text the WIT edge sends. Writes bytes
/// straight into a buffer: `Value`'s `Display` goes through `fmt::Write` a
/// token at a time, which costs the component a third of its time on a VM
/// list (BENCHMARKS.md).
pub fn json_text(v: &Value) -> String {
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}
