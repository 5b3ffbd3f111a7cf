//! Conversions between protobuf `Struct` and JSON, records and
//! `ResourceInfo`, and run errors and gRPC `Status`.

use super::pb::plugin::{resource_info, ResourceInfo};
use crate::error::{ErrorCode, RunError};
use crate::record::{Record, ResourceType, State};
use prost_types::{value::Kind, ListValue, Struct, Value as PValue};
use serde_json::{Map, Value};

/// Largest integer a double holds exactly; bigger ones stay doubles.
const MAX_SAFE_INT: f64 = 9_007_199_254_740_991.0;

pub fn struct_to_json(s: Option<Struct>) -> Value {
    match s {
        Some(s) => Value::Object(s.fields.into_iter().map(|(k, v)| (k, value_to_json(v))).collect()),
        None => Value::Object(Map::new()),
    }
}

fn value_to_json(v: PValue) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        // Struct numbers are doubles; integral ones become JSON integers.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INT => Value::from(n as i64),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::StructValue(s)) => struct_to_json(Some(s)),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_to_json).collect()),
    }
}

pub fn json_to_struct(v: &Map<String, Value>) -> Struct {
    json_into_struct(v.clone())
}

pub fn json_to_value(v: &Value) -> PValue {
    json_into_value(v.clone())
}

/// [`json_to_struct`] taking the map: its strings move into the `Struct`.
pub fn json_into_struct(v: Map<String, Value>) -> Struct {
    Struct { fields: v.into_iter().map(|(k, v)| (k, json_into_value(v))).collect() }
}

pub fn json_into_value(v: Value) -> PValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(ListValue { values: a.into_iter().map(json_into_value).collect() }),
        Value::Object(o) => Kind::StructValue(json_into_struct(o)),
    };
    PValue { kind: Some(kind) }
}

/// Which CloudForet release a collect stream is for: how records go on
/// the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudForet {
    /// Per call: a caller that sends `token: NO_TOKEN` (CloudForet 2.x's
    /// inventory, always) gets the 2.x form; any other caller the form both
    /// releases read.
    #[default]
    Auto,
    /// 2.x: `data` / `metadata` as JSON text only (`json_data`,
    /// `json_metadata`), which keeps integers exact.
    #[value(name = "2")]
    V2,
    /// 1.12: also `data` / `metadata` as Structs (1.12 reads only those),
    /// and no `inventory.Namespace` / `inventory.Metric` (1.12 has none).
    #[value(name = "1.12")]
    V1_12,
}

/// How one stream's records go on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    /// `data` / `metadata` as Structs beside their JSON text.
    pub structs: bool,
    /// Namespaces and Metrics are sent (2.x).
    pub metrics: bool,
}

impl CloudForet {
    /// The wire form for a call whose `token` metadata is `token`.
    pub fn wire(self, token: Option<&str>) -> Wire {
        match self {
            CloudForet::V2 => Wire { structs: false, metrics: true },
            CloudForet::V1_12 => Wire { structs: true, metrics: false },
            CloudForet::Auto if token == Some("NO_TOKEN") => Wire { structs: false, metrics: true },
            CloudForet::Auto => Wire { structs: true, metrics: true },
        }
    }
}

/// A record as CloudForet's inventory takes it. `data` and `metadata`
/// travel as JSON text in `json_data` / `json_metadata` (which keeps
/// integers exact; what 2.x reads first, and what its Python SDK sends),
/// and with `wire.structs` also as Structs (all 1.12 reads), with no field
/// sent as an explicit null (1.12 rejects `instance_size: null`; absent is
/// what both mean); without, exactly as CloudForet's Python SDK sends them. A Metric's unit is CloudForet's string, and a
/// Namespace or Metric without a version gets `version` (the plugin's),
/// so a new plugin version updates the definitions CloudForet keeps.
/// Takes the record: its strings and raw text move into the message.
pub fn resource_info(mut r: Record, wire: Wire, version: &str) -> ResourceInfo {
    let match_rules = match r.match_rules_json() {
        Value::Object(m) => json_into_struct(m),
        _ => Struct::default(),
    };
    let (resource_type, state, message) = (r.resource_type, r.state, r.message.take());
    let (mut resource, raw) = r.into_resource();
    for (k, v) in raw {
        match (resource_type, k) {
            (ResourceType::CloudService | ResourceType::CloudServiceType, "data" | "metadata") => {
                // 2.x: null beside the text, exactly as CloudForet's Python
                // SDK sends it; otherwise the Struct 1.12 reads.
                let structured = if wire.structs { serde_json::from_str(v.get()).unwrap_or(Value::Null) } else { Value::Null };
                resource.insert(k.into(), structured);
                // The raw text goes out as is: no re-serialization, no copy.
                resource.insert(format!("json_{k}"), Value::String(Box::<str>::from(v).into_string()));
            }
            _ => {
                resource.insert(k.into(), serde_json::from_str(v.get()).unwrap_or(Value::Null));
            }
        }
    }
    if matches!(resource_type, ResourceType::Namespace | ResourceType::Metric) && !version.is_empty() {
        resource.entry("version").or_insert_with(|| Value::String(version.to_string()));
    }
    if wire.structs {
        // 1.12 refuses explicit nulls (`instance_size: null`); absent means
        // the same to both releases.
        resource.retain(|_, v| !v.is_null());
    }
    ResourceInfo {
        state: match state {
            State::Success => resource_info::State::Success as i32,
            State::Failure => resource_info::State::Failure as i32,
        },
        message: message.unwrap_or_default(),
        resource_type: resource_type.as_str().to_string(),
        match_rules: Some(match_rules),
        resource: Some(json_into_struct(resource)),
        options: None,
    }
}

/// The secret of a `Job.get_tasks` call. CloudForet 1.12 sends it the
/// secret service's whole answer, `{"encrypted": false, "data": {...}}`,
/// where every other call gets the data itself: that shape is unwrapped.
pub fn unwrapped_secret(secret: Value) -> Value {
    match secret {
        Value::Object(mut m) if m.len() == 2 && m.contains_key("encrypted") && m.get("data").is_some_and(Value::is_object) => {
            m.remove("data").unwrap_or_default()
        }
        other => other,
    }
}

/// `Status` with CloudForet's `"ERROR_CODE: message"` details.
pub fn status(e: &RunError) -> tonic::Status {
    let code = match e.code() {
        ErrorCode::InvalidArgument | ErrorCode::MissingParameter => tonic::Code::InvalidArgument,
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Unavailable | ErrorCode::Timeout => tonic::Code::Unavailable,
        ErrorCode::EgressDenied => tonic::Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
        ErrorCode::Internal => tonic::Code::Internal,
    };
    let message = e.message();
    tonic::Status::new(code, format!("{}: {message}", e.code().cloudforet_code()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn struct_round_trip_keeps_integers_integral() {
        let v = json!({"a": 1, "b": 2.5, "c": [true, null, "x"], "d": {"e": 500}, "big": 9007199254740993u64});
        let s = json_to_struct(v.as_object().unwrap());
        let back = struct_to_json(Some(s));
        assert_eq!(back["a"], json!(1));
        assert!(back["a"].is_i64());
        assert_eq!(back["b"], json!(2.5));
        assert_eq!(back["c"], json!([true, null, "x"]));
        assert_eq!(back["d"]["e"], json!(500));
        assert!(back["big"].is_f64(), "beyond 2^53 a double is not exact: kept as a double");
        assert_eq!(struct_to_json(None), json!({}));
    }

    #[test]
    fn errors_carry_cloudforet_codes() {
        let s = status(&RunError::Collector(ErrorCode::MissingParameter, "secret field 'username' is required".into()));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "ERROR_REQUIRED_PARAMETER: secret field 'username' is required");
        let s = status(&RunError::Collector(ErrorCode::InvalidArgument, "options field 'page_size' must be 1-500".into()));
        assert!(s.message().starts_with("ERROR_INVALID_ARGUMENT: "));
        let s = status(&RunError::Collector(ErrorCode::Unauthenticated, "bad".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::Unauthenticated, "ERROR_AUTHENTICATE_FAILURE: bad"));
        let s = status(&RunError::Collector(ErrorCode::Unavailable, "down".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::Unavailable, "ERROR_UNAVAILABLE: down"), "not retried by CloudForet's client");
        let s = status(&RunError::Collector(ErrorCode::Timeout, "slow".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::Unavailable, "ERROR_TIMEOUT: slow"), "never DEADLINE_EXCEEDED, which 2.x retries");
        let s = status(&RunError::Egress("https://x:443: not granted".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::FailedPrecondition, "ERROR_EGRESS_DENIED: https://x:443: not granted"));
        let s = status(&RunError::Trap("unreachable".into()));
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
