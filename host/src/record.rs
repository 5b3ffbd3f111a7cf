//! The host's model of an emitted CloudForet record, and its construction
//! from the guest's WIT items.
//!
//! A [`Record`] is shaped like one item of CloudForet's collector `collect`
//! stream (`state`, `message`, `resource_type`, `match_rules`, `resource`),
//! with `data` and `metadata` held as JSON values. Every sink (embedded
//! store, NDJSON, gRPC stream, test harness) consumes this one type.
//!
//! Guest output is hostile input: every item is validated here. An item that
//! fails validation is not dropped: it becomes an `inventory.ErrorResource`
//! saying what was wrong, so nothing disappears silently.

use crate::bindings::current::cloudforet::collector::emit;
use serde_json::{json, Map, Value};

/// Longest string field the host accepts in a record (bytes).
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    CloudService,
    CloudServiceType,
    Region,
    ErrorResource,
    Namespace,
    Metric,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::CloudService => "inventory.CloudService",
            ResourceType::CloudServiceType => "inventory.CloudServiceType",
            ResourceType::Region => "inventory.Region",
            ResourceType::ErrorResource => "inventory.ErrorResource",
            ResourceType::Namespace => "inventory.Namespace",
            ResourceType::Metric => "inventory.Metric",
        }
    }

    /// CloudForet's standard match rules (in priority order), as its own
    /// plugins send them. Error resources have none.
    pub fn match_rules(self) -> &'static [&'static [&'static str]] {
        match self {
            ResourceType::CloudService => {
                &[&["reference.resource_id", "provider", "cloud_service_type", "cloud_service_group", "account"]]
            }
            ResourceType::CloudServiceType => &[&["name", "group", "provider"]],
            ResourceType::Region => &[&["region_code", "provider"]],
            ResourceType::Namespace => &[&["namespace_id"]],
            ResourceType::Metric => &[&["metric_id"]],
            ResourceType::ErrorResource => &[],
        }
    }
}

/// `SUCCESS` for resources, `FAILURE` for error resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Success,
    Failure,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub resource_type: ResourceType,
    pub state: State,
    /// Set on error resources.
    pub message: Option<String>,
    /// The CloudForet resource (`data`/`metadata` as JSON values).
    pub resource: Map<String, Value>,
}

impl Record {
    pub fn is_error(&self) -> bool {
        self.resource_type == ResourceType::ErrorResource
    }

    /// An error resource raised by the host itself (e.g. a rejected record).
    pub fn host_error(message: String, group: &str, ty: &str, provider: &str) -> Record {
        let mut resource = Map::new();
        resource.insert("provider".into(), provider.into());
        resource.insert("cloud_service_group".into(), group.into());
        resource.insert("cloud_service_type".into(), ty.into());
        resource.insert("resource_type".into(), ResourceType::CloudService.as_str().into());
        Record { resource_type: ResourceType::ErrorResource, state: State::Failure, message: Some(message), resource }
    }

    /// `match_rules` as CloudForet sends them: `{"1": [...], "2": [...]}`.
    pub fn match_rules_json(&self) -> Value {
        let mut m = Map::new();
        for (i, rule) in self.resource_type.match_rules().iter().enumerate() {
            m.insert((i + 1).to_string(), json!(rule));
        }
        Value::Object(m)
    }

    /// Human label of what the record is, used for per-type counts:
    /// `Compute/VirtualMachine`, `CloudServiceType`, `Region`, ...
    pub fn label(&self) -> String {
        let s = |k: &str| self.resource.get(k).and_then(Value::as_str).unwrap_or("?");
        match self.resource_type {
            ResourceType::CloudService => format!("{}/{}", s("cloud_service_group"), s("cloud_service_type")),
            ResourceType::ErrorResource => format!("{}/{}", s("cloud_service_group"), s("cloud_service_type")),
            ResourceType::CloudServiceType => "CloudServiceType".into(),
            ResourceType::Region => "Region".into(),
            ResourceType::Namespace => "Namespace".into(),
            ResourceType::Metric => "Metric".into(),
        }
    }

    /// The NDJSON line: the stream item with `data`/`metadata` decoded.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "state": match self.state { State::Success => "SUCCESS", State::Failure => "FAILURE" },
            "resource_type": self.resource_type.as_str(),
            "match_rules": self.match_rules_json(),
            "resource": Value::Object(self.resource.clone()),
        });
        if let Some(m) = &self.message {
            v["message"] = Value::String(m.clone());
        }
        v
    }

    /// Approximate size in bytes, for output limits.
    pub fn approx_size(&self) -> usize {
        fn size(v: &Value) -> usize {
            match v {
                Value::Null | Value::Bool(_) => 4,
                Value::Number(_) => 8,
                Value::String(s) => s.len() + 2,
                Value::Array(a) => 2 + a.iter().map(size).sum::<usize>(),
                Value::Object(o) => 2 + o.iter().map(|(k, v)| k.len() + 3 + size(v)).sum::<usize>(),
            }
        }
        self.resource.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>()
            + self.message.as_ref().map_or(0, String::len)
    }
}

/// Why the host rejected an item.
#[derive(Debug)]
struct Invalid(String);

fn check_str(field: &str, v: &str) -> Result<(), Invalid> {
    if v.len() > MAX_FIELD_BYTES {
        return Err(Invalid(format!("field '{field}' is {} bytes, over the limit of {MAX_FIELD_BYTES}", v.len())));
    }
    Ok(())
}

fn required(field: &str, v: &str) -> Result<Value, Invalid> {
    check_str(field, v)?;
    if v.trim().is_empty() {
        return Err(Invalid(format!("field '{field}' is empty")));
    }
    Ok(Value::String(v.to_string()))
}

fn optional(field: &str, v: &Option<String>) -> Result<Value, Invalid> {
    match v {
        Some(s) => {
            check_str(field, s)?;
            Ok(Value::String(s.clone()))
        }
        None => Ok(Value::Null),
    }
}

/// A JSON object field: empty text means `{}`.
fn json_object(field: &str, text: &str) -> Result<Value, Invalid> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Invalid(format!("field '{field}' is not a JSON object"))),
        Err(e) => Err(Invalid(format!("field '{field}' is not valid JSON: {e}"))),
    }
}

fn tags(t: &[(String, String)]) -> Result<Value, Invalid> {
    let mut m = Map::new();
    for (k, v) in t {
        check_str("tags", k)?;
        check_str("tags", v)?;
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(Value::Object(m))
}

fn strings(field: &str, list: &[String]) -> Result<Value, Invalid> {
    for s in list {
        check_str(field, s)?;
    }
    Ok(json!(list))
}

fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn cloud_service(c: &emit::CloudService) -> Result<Record, Invalid> {
    let instance_size = match c.instance_size {
        Some(f) if !f.is_finite() => return Err(Invalid("field 'instance_size' is not a finite number".into())),
        Some(f) => json!(f),
        None => Value::Null,
    };
    let resource = obj(vec![
        ("name", required("name", &c.name)?),
        ("cloud_service_type", required("cloud_service_type", &c.cloud_service_type)?),
        ("cloud_service_group", required("cloud_service_group", &c.cloud_service_group)?),
        ("provider", required("provider", &c.provider)?),
        ("ip_addresses", strings("ip_addresses", &c.ip_addresses)?),
        ("account", optional("account", &c.account)?),
        ("instance_type", optional("instance_type", &c.instance_type)?),
        ("instance_size", instance_size),
        ("launched_at", optional("launched_at", &c.launched_at)?),
        ("region_code", optional("region_code", &c.region_code)?),
        ("data", json_object("data", &c.data)?),
        ("metadata", json_object("metadata", &c.metadata)?),
        (
            "reference",
            json!({
                "resource_id": required("reference.resource_id", &c.reference.resource_id)?,
                "external_link": optional("reference.external_link", &c.reference.external_link)?,
            }),
        ),
        ("tags", tags(&c.tags)?),
    ]);
    Ok(Record { resource_type: ResourceType::CloudService, state: State::Success, message: None, resource })
}

fn cloud_service_type(t: &emit::CloudServiceType) -> Result<Record, Invalid> {
    let resource = obj(vec![
        ("name", required("name", &t.name)?),
        ("group", required("group", &t.group)?),
        ("provider", required("provider", &t.provider)?),
        ("is_primary", Value::Bool(t.is_primary)),
        ("is_major", Value::Bool(t.is_major)),
        ("metadata", json_object("metadata", &t.metadata)?),
        ("service_code", optional("service_code", &t.service_code)?),
        ("tags", tags(&t.tags)?),
        ("labels", strings("labels", &t.labels)?),
    ]);
    Ok(Record { resource_type: ResourceType::CloudServiceType, state: State::Success, message: None, resource })
}

fn region(r: &emit::Region) -> Result<Record, Invalid> {
    let resource = obj(vec![
        ("name", required("name", &r.name)?),
        ("region_code", required("region_code", &r.region_code)?),
        ("provider", required("provider", &r.provider)?),
        ("tags", tags(&r.tags)?),
    ]);
    Ok(Record { resource_type: ResourceType::Region, state: State::Success, message: None, resource })
}

fn error_resource(e: &emit::ErrorResource) -> Result<Record, Invalid> {
    check_str("message", &e.message)?;
    let resource = obj(vec![
        ("provider", Value::String(e.provider.clone())),
        ("cloud_service_group", Value::String(e.cloud_service_group.clone())),
        ("cloud_service_type", Value::String(e.cloud_service_type.clone())),
        ("resource_type", Value::String(e.resource_type.clone())),
    ]);
    for (k, v) in &resource {
        check_str(k, v.as_str().unwrap_or_default())?;
    }
    Ok(Record {
        resource_type: ResourceType::ErrorResource,
        state: State::Failure,
        message: Some(if e.message.is_empty() { "unspecified error".into() } else { e.message.clone() }),
        resource,
    })
}

fn namespace(n: &emit::Namespace) -> Result<Record, Invalid> {
    let resource = obj(vec![
        ("namespace_id", required("namespace_id", &n.namespace_id)?),
        ("name", required("name", &n.name)?),
        ("category", required("category", &n.category)?),
        ("resource_type", required("resource_type", &n.resource_type)?),
        ("group", required("group", &n.group)?),
        ("provider", required("provider", &n.provider)?),
        ("icon", optional("icon", &n.icon)?),
        ("tags", tags(&n.tags)?),
    ]);
    Ok(Record { resource_type: ResourceType::Namespace, state: State::Success, message: None, resource })
}

fn metric(m: &emit::Metric) -> Result<Record, Invalid> {
    let resource = obj(vec![
        ("metric_id", required("metric_id", &m.metric_id)?),
        ("name", required("name", &m.name)?),
        (
            "metric_type",
            Value::String(match m.metric_type {
                emit::MetricType::Counter => "COUNTER".into(),
                emit::MetricType::Gauge => "GAUGE".into(),
            }),
        ),
        ("resource_type", required("resource_type", &m.resource_type)?),
        ("namespace_id", required("namespace_id", &m.namespace_id)?),
        ("provider", required("provider", &m.provider)?),
        ("unit", json_object("unit", &m.unit)?),
        ("query_options", json_object("query_options", &m.query_options)?),
        ("tags", tags(&m.tags)?),
    ]);
    Ok(Record { resource_type: ResourceType::Metric, state: State::Success, message: None, resource })
}

/// Builds and validates the record of one emitted item. An invalid item
/// comes back as an error resource describing the problem.
/// An item the host refused, and the error resource that replaces it.
#[derive(Debug)]
pub struct Rejected {
    pub reason: String,
    pub replacement: Record,
}

/// Validates and converts one emitted item. A rejected item is never
/// dropped: the caller emits [`Rejected::replacement`] in its place.
pub fn from_item(item: &emit::Item) -> Result<Record, Rejected> {
    let (built, group, ty, provider, what) = match item {
        emit::Item::CloudService(c) => (
            cloud_service(c),
            c.cloud_service_group.as_str(),
            c.cloud_service_type.as_str(),
            c.provider.as_str(),
            "CloudService",
        ),
        emit::Item::CloudServiceType(t) => (cloud_service_type(t), t.group.as_str(), t.name.as_str(), t.provider.as_str(), "CloudServiceType"),
        emit::Item::Region(r) => (region(r), "", "", r.provider.as_str(), "Region"),
        emit::Item::ErrorResource(e) => (error_resource(e), "", "", e.provider.as_str(), "ErrorResource"),
        emit::Item::Namespace(n) => (namespace(n), n.group.as_str(), "", n.provider.as_str(), "Namespace"),
        emit::Item::Metric(m) => (metric(m), "", "", m.provider.as_str(), "Metric"),
    };
    built.map_err(|Invalid(why)| {
        let cut = |s: &str| s.chars().take(256).collect::<String>();
        let replacement =
            Record::host_error(format!("host rejected an emitted {what}: {why}"), &cut(group), &cut(ty), &cut(provider));
        Rejected { reason: why, replacement }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> emit::CloudService {
        emit::CloudService {
            name: "vm1".into(),
            provider: "nutanix".into(),
            cloud_service_group: "Compute".into(),
            cloud_service_type: "VirtualMachine".into(),
            account: Some("pc-1".into()),
            region_code: Some("cluster-a".into()),
            instance_type: Some("4vCPU".into()),
            instance_size: Some(4.0),
            ip_addresses: vec!["10.0.0.1".into()],
            tags: vec![("env".into(), "dev".into())],
            reference: emit::Reference { resource_id: "uuid-1".into(), external_link: Some("https://pc:9440/".into()) },
            launched_at: None,
            data: r#"{"power_state": "ON", "num_vcpus": 4}"#.into(),
            metadata: "{}".into(),
        }
    }

    /// The resource has exactly the keys and values of the SDK's wire output.
    #[test]
    fn cloud_service_matches_sdk_shape() {
        let wire: Value = serde_json::from_str(include_str!("../../guest-nutanix/tests/fixtures/python_sdk_wire_output.json")).unwrap();
        let expected = wire["collect"][1].clone();
        let r = from_item(&emit::Item::CloudService(vm())).unwrap();
        assert_eq!(r.match_rules_json(), expected["match_rules"]);
        let mut keys: Vec<&String> = r.resource.keys().collect();
        keys.sort();
        let mut exp_keys: Vec<String> = expected["resource"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with("json_") )
            .cloned()
            .collect();
        exp_keys.sort();
        assert_eq!(keys, exp_keys.iter().collect::<Vec<_>>());
        for k in ["name", "provider", "ip_addresses", "account", "instance_type", "instance_size", "region_code", "reference", "tags"] {
            assert_eq!(r.resource[k], expected["resource"][k], "{k}");
        }
        assert_eq!(r.resource["data"], expected["resource"]["json_data__decoded"]);
        assert_eq!(r.label(), "Compute/VirtualMachine");
    }

    #[test]
    fn error_resource_matches_sdk_shape() {
        let wire: Value = serde_json::from_str(include_str!("../../guest-nutanix/tests/fixtures/python_sdk_wire_output.json")).unwrap();
        let expected = &wire["collect"][3];
        let r = from_item(&emit::Item::ErrorResource(emit::ErrorResource {
            message: "boom".into(),
            provider: "nutanix".into(),
            cloud_service_group: "Compute".into(),
            cloud_service_type: "VirtualMachine".into(),
            resource_type: "inventory.CloudService".into(),
        }))
        .unwrap();
        let j = r.to_json();
        assert_eq!(j["state"], "FAILURE");
        assert_eq!(j["message"], expected["message"]);
        assert_eq!(j["match_rules"], expected["match_rules"]);
        assert_eq!(j["resource"], expected["resource"]);
        assert_eq!(j["resource_type"], expected["resource_type"]);
    }

    #[test]
    fn region_and_type_match_rules() {
        let r = from_item(&emit::Item::Region(emit::Region {
            name: "cluster-a".into(),
            region_code: "cluster-a".into(),
            provider: "nutanix".into(),
            tags: vec![],
        }))
        .unwrap();
        assert_eq!(r.match_rules_json(), json!({"1": ["region_code", "provider"]}));
        assert_eq!(ResourceType::CloudServiceType.match_rules(), &[&["name", "group", "provider"]]);
    }

    #[test]
    fn invalid_items_become_error_resources() {
        let mut bad = vm();
        bad.data = "{not json".into();
        let rejected = from_item(&emit::Item::CloudService(bad)).unwrap_err();
        assert!(rejected.reason.starts_with("field 'data' is not valid JSON"), "{}", rejected.reason);
        let r = rejected.replacement;
        assert!(r.is_error());
        assert!(r.message.as_deref().unwrap().starts_with("host rejected an emitted CloudService: field 'data' is not valid JSON"));
        assert_eq!(r.label(), "Compute/VirtualMachine");

        let mut bad = vm();
        bad.data = "[1,2]".into();
        assert!(from_item(&emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("not a JSON object"));

        let mut bad = vm();
        bad.reference.resource_id = " ".into();
        assert!(from_item(&emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("'reference.resource_id' is empty"));

        let mut bad = vm();
        bad.instance_size = Some(f64::NAN);
        assert!(from_item(&emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("finite"));

        let mut bad = vm();
        bad.name = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(from_item(&emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("over the limit"));

        let mut bad = vm();
        bad.cloud_service_group = "g".repeat(10_000);
        bad.name = String::new();
        let r = from_item(&emit::Item::CloudService(bad)).unwrap_err().replacement;
        assert_eq!(r.resource["cloud_service_group"].as_str().unwrap().len(), 256, "labels of rejected items are cut");
    }
}
