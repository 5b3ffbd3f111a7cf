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

/// A record as CloudForet's Python SDK puts it on the wire: `data` and
/// `metadata` travel as JSON text in `json_data` / `json_metadata` (which
/// keeps integers exact), with `data` / `metadata` left null. Takes the
/// record: its strings and raw text move into the message.
pub fn resource_info(mut r: Record) -> ResourceInfo {
    let match_rules = match r.match_rules_json() {
        Value::Object(m) => json_into_struct(m),
        _ => Struct::default(),
    };
    let (resource_type, state, message) = (r.resource_type, r.state, r.message.take());
    let (mut resource, raw) = r.into_resource();
    // The raw text goes out as is: no parse, no re-serialization, no copy.
    for (k, v) in raw {
        match (resource_type, k) {
            (ResourceType::CloudService | ResourceType::CloudServiceType, "data" | "metadata") => {
                resource.insert(k.into(), Value::Null);
                resource.insert(format!("json_{k}"), Value::String(Box::<str>::from(v).into_string()));
            }
            _ => {
                resource.insert(k.into(), serde_json::from_str(v.get()).unwrap_or(Value::Null));
            }
        }
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

/// `Status` with CloudForet's `"ERROR_CODE: message"` details.
pub fn status(e: &RunError) -> tonic::Status {
    let code = match e.code() {
        ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
        ErrorCode::Internal => tonic::Code::Internal,
    };
    let message = e.message();
    let cf = if e.code() == ErrorCode::InvalidArgument && message.contains("is required") {
        "ERROR_REQUIRED_PARAMETER"
    } else {
        e.code().cloudforet_code()
    };
    tonic::Status::new(code, format!("{cf}: {message}"))
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
        let s = status(&RunError::Collector(ErrorCode::InvalidArgument, "secret field 'username' is required".into()));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "ERROR_REQUIRED_PARAMETER: secret field 'username' is required");
        let s = status(&RunError::Collector(ErrorCode::InvalidArgument, "options field 'page_size' must be 1-500".into()));
        assert!(s.message().starts_with("ERROR_INVALID_ARGUMENT: "));
        let s = status(&RunError::Collector(ErrorCode::Unauthenticated, "bad".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::Unauthenticated, "ERROR_AUTHENTICATE_FAILURE: bad"));
        let s = status(&RunError::Collector(ErrorCode::Unavailable, "down".into()));
        assert_eq!((s.code(), s.message()), (tonic::Code::Unavailable, "ERROR_GRPC_CONNECTION: down"));
        let s = status(&RunError::Trap("unreachable".into()));
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
