//! The host's model of an emitted CloudForet record, and its construction
//! from the guest's WIT items.
//!
//! A [`Record`] is shaped like one item of CloudForet's collector `collect`
//! stream (`state`, `message`, `resource_type`, `match_rules`, `resource`).
//! `data` and `metadata`, the bulk of a record, are kept as the JSON text the
//! guest sent, validated (syntax, an object, size) but never re-parsed into
//! trees on the hot path: the gRPC stream sends them as `json_data` /
//! `json_metadata` text, the store and NDJSON splice them in. The other
//! fields stay the guest's lifted item, checked, until a sink asks for the
//! resource object ([`Record::resource`]): the emit path builds no JSON.
//! Every sink (embedded store, NDJSON, gRPC stream, test harness) consumes
//! this one type.
//!
//! Guest output is hostile input: every item is validated here. An item that
//! fails validation is not dropped: it becomes an `inventory.ErrorResource`
//! saying what was wrong, so nothing disappears silently.

use crate::bindings::current::cloudforet::collector::{costs, emit};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

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
    /// A cost line of a cost data source (`costs.emit`).
    Cost,
}

impl ResourceType {
    pub const ALL: [ResourceType; 7] = [
        ResourceType::CloudService,
        ResourceType::CloudServiceType,
        ResourceType::Region,
        ResourceType::ErrorResource,
        ResourceType::Namespace,
        ResourceType::Metric,
        ResourceType::Cost,
    ];

    /// The type named by [`ResourceType::as_str`].
    pub fn parse(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::CloudService => "inventory.CloudService",
            ResourceType::CloudServiceType => "inventory.CloudServiceType",
            ResourceType::Region => "inventory.Region",
            ResourceType::ErrorResource => "inventory.ErrorResource",
            ResourceType::Namespace => "inventory.Namespace",
            ResourceType::Metric => "inventory.Metric",
            ResourceType::Cost => "cost_analysis.Cost",
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
            // CloudForet's cost protocol has no match rules: a cost line is
            // one resource's usage type on one day.
            ResourceType::Cost => &[&["resource", "usage_type", "billed_date", "provider"]],
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

/// A record's JSON object fields by name, as validated text.
pub type RawFields = Vec<(&'static str, Box<RawValue>)>;

#[derive(Clone, Debug)]
pub struct Record {
    pub resource_type: ResourceType,
    pub state: State,
    /// Set on error resources.
    pub message: Option<String>,
    /// The CloudForet resource's fields, except those in `raw`.
    body: Body,
    /// `data` / `metadata`: validated JSON object text, as the guest sent it.
    pub raw: RawFields,
}

/// A record's fields other than the raw ones.
#[derive(Clone, Debug)]
enum Body {
    /// A guest's item, checked, its JSON fields moved to `raw`: converted
    /// to JSON only when a sink asks. `size` is what its checks counted
    /// ([`Record::approx_size`]).
    Item { item: emit::Item, size: usize },
    Cost { cost: costs::Cost, size: usize },
    /// A JSON object: records the host makes, records read back, and any
    /// record a sink changed.
    Map(Map<String, Value>),
}

impl Body {
    fn into_map(self) -> Map<String, Value> {
        match self {
            Body::Item { item: emit::Item::CloudService(c), .. } => cloud_service_map(c),
            Body::Item { item: emit::Item::CloudServiceType(t), .. } => cloud_service_type_map(t),
            Body::Item { item: emit::Item::Region(r), .. } => region_map(r),
            Body::Item { item: emit::Item::ErrorResource(e), .. } => error_resource_map(e),
            Body::Item { item: emit::Item::Namespace(n), .. } => namespace_map(n),
            Body::Item { item: emit::Item::Metric(m), .. } => metric_map(m),
            Body::Cost { cost, .. } => cost_map(cost),
            Body::Map(m) => m,
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.resource_type == other.resource_type
            && self.state == other.state
            && self.message == other.message
            && self.resource() == other.resource()
            && self.raw.len() == other.raw.len()
            && self.raw.iter().zip(&other.raw).all(|((a, x), (b, y))| a == b && x.get() == y.get())
    }
}

/// A resource field for serialization: a value, or raw JSON text.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Field<'a> {
    Value(&'a Value),
    Raw(&'a RawValue),
}

/// The NDJSON line of a record, serialized without building a tree (keys
/// in the same order as [`Record::to_json`]).
#[derive(Serialize)]
struct Line<'a> {
    match_rules: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    resource: BTreeMap<&'a str, Field<'a>>,
    resource_type: &'static str,
    state: &'static str,
}

impl Record {
    pub fn is_error(&self) -> bool {
        self.resource_type == ResourceType::ErrorResource
    }

    /// A record of a JSON object.
    fn of_map(resource_type: ResourceType, state: State, message: Option<String>, resource: Map<String, Value>, raw: RawFields) -> Record {
        Record { resource_type, state, message, body: Body::Map(resource), raw }
    }

    /// An error resource raised by the host itself (e.g. a rejected record).
    pub fn host_error(message: String, group: &str, ty: &str, provider: &str) -> Record {
        let mut resource = Map::new();
        resource.insert("provider".into(), provider.into());
        resource.insert("cloud_service_group".into(), group.into());
        resource.insert("cloud_service_type".into(), ty.into());
        resource.insert("resource_type".into(), ResourceType::CloudService.as_str().into());
        Record::of_map(ResourceType::ErrorResource, State::Failure, Some(message), resource, Vec::new())
    }

    /// A successful record from a whole resource object (tools and tests):
    /// its `data`, `metadata`, `query_options` and `additional_info` objects
    /// become raw.
    pub fn from_resource(resource_type: ResourceType, mut resource: Map<String, Value>) -> Record {
        let mut raw = Vec::new();
        for key in ["data", "metadata", "query_options", "additional_info"] {
            if let Some(v @ Value::Object(_)) = resource.get(key)
                && let Ok(r) = RawValue::from_string(v.to_string())
            {
                raw.push((key, r));
                resource.remove(key);
            }
        }
        Record::of_map(resource_type, State::Success, None, resource, raw)
    }

    /// The CloudForet resource's fields, except those in `raw`. Built from
    /// the guest's item on each call: a sink that reads several fields
    /// keeps the result.
    pub fn resource(&self) -> Cow<'_, Map<String, Value>> {
        match &self.body {
            Body::Map(m) => Cow::Borrowed(m),
            other => Cow::Owned(other.clone().into_map()),
        }
    }

    /// The resource's fields for a sink that changes them (the record then
    /// keeps them as JSON).
    pub fn resource_mut(&mut self) -> &mut Map<String, Value> {
        if !matches!(self.body, Body::Map(_)) {
            let body = std::mem::replace(&mut self.body, Body::Map(Map::new()));
            self.body = Body::Map(body.into_map());
        }
        match &mut self.body {
            Body::Map(m) => m,
            _ => unreachable!("the body was just made a map"),
        }
    }

    /// The resource's fields and the raw ones, for a sink that consumes
    /// the record: the guest's strings move into the map.
    pub fn into_resource(self) -> (Map<String, Value>, RawFields) {
        (self.body.into_map(), self.raw)
    }

    /// The fields of `resource` and the raw ones, in key order.
    fn fields<'a>(&'a self, resource: &'a Map<String, Value>) -> BTreeMap<&'a str, Field<'a>> {
        let mut m: BTreeMap<&str, Field<'_>> = resource.iter().map(|(k, v)| (k.as_str(), Field::Value(v))).collect();
        for (k, v) in &self.raw {
            m.insert(k, Field::Raw(v));
        }
        m
    }

    /// The raw JSON text of `data` or `metadata`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.raw.iter().find(|(k, _)| *k == key).map(|(_, v)| v.get())
    }

    /// The whole resource as one JSON object (parses the raw fields: for
    /// tests and tools, not the hot path).
    pub fn resource_json(&self) -> Map<String, Value> {
        let mut m = self.resource().into_owned();
        for (k, v) in &self.raw {
            m.insert((*k).to_string(), serde_json::from_str(v.get()).unwrap_or(Value::Null));
        }
        m
    }

    /// The resource as JSON text (the store's body), raw fields included.
    /// `resource` is this record's [`Record::resource`], which the caller
    /// builds once for its other reads too (the match keys).
    pub fn resource_text(&self, resource: &Map<String, Value>) -> String {
        serde_json::to_string(&self.fields(resource)).unwrap_or_default()
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
        // Read from the item or the map as the record holds it: never
        // builds the resource.
        let (group, ty, usage_type) = match &self.body {
            Body::Item { item: emit::Item::CloudService(c), .. } => (c.cloud_service_group.as_str(), c.cloud_service_type.as_str(), "?"),
            Body::Item { item: emit::Item::ErrorResource(e), .. } => (e.cloud_service_group.as_str(), e.cloud_service_type.as_str(), "?"),
            Body::Cost { cost, .. } => ("?", "?", cost.usage_type.as_str()),
            Body::Map(m) => {
                let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("?");
                (s("cloud_service_group"), s("cloud_service_type"), s("usage_type"))
            }
            Body::Item { .. } => ("?", "?", "?"),
        };
        match self.resource_type {
            ResourceType::CloudService | ResourceType::ErrorResource => format!("{group}/{ty}"),
            ResourceType::CloudServiceType => "CloudServiceType".into(),
            ResourceType::Region => "Region".into(),
            ResourceType::Namespace => "Namespace".into(),
            ResourceType::Metric => "Metric".into(),
            ResourceType::Cost => format!("Cost/{usage_type}"),
        }
    }

    fn state_str(&self) -> &'static str {
        match self.state {
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
        }
    }

    /// The stream item as a JSON value, with `data`/`metadata` decoded.
    pub fn to_json(&self) -> Value {
        // Serializing raw text into a `Value` parses it.
        serde_json::to_value(self.line(&self.resource())).unwrap_or(Value::Null)
    }

    /// The NDJSON line, written straight from the raw text (the same JSON as
    /// [`Record::to_json`]).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&self.line(&self.resource())).unwrap_or_default()
    }

    fn line<'a>(&'a self, resource: &'a Map<String, Value>) -> Line<'a> {
        Line {
            match_rules: self.match_rules_json(),
            message: self.message.as_deref(),
            resource: self.fields(resource),
            resource_type: self.resource_type.as_str(),
            state: self.state_str(),
        }
    }

    /// Approximate size in bytes, for output limits.
    /// A guest's item counts what its checks saw (each string field's
    /// name and text, lists and tags); a JSON object counts its keys and
    /// values.
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
        let body = match &self.body {
            Body::Map(m) => m.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>(),
            Body::Item { size, .. } | Body::Cost { size, .. } => *size,
        };
        body + self.raw.iter().map(|(k, v)| k.len() + v.get().len()).sum::<usize>()
            + self.message.as_ref().map_or(0, String::len)
    }
}

/// Why the host rejected an item.
#[derive(Debug)]
struct Invalid(String);

/// An item's checks, which also count its size ([`Record::approx_size`]):
/// each field's name and text, as the resource object would hold them.
#[derive(Default)]
struct Checks {
    size: usize,
}

fn check_len(field: &str, v: &str) -> Result<(), Invalid> {
    if v.len() > MAX_FIELD_BYTES {
        return Err(Invalid(format!("field '{field}' is {} bytes, over the limit of {MAX_FIELD_BYTES}", v.len())));
    }
    Ok(())
}

impl Checks {
    fn text(&mut self, field: &str, v: &str) -> Result<(), Invalid> {
        check_len(field, v)?;
        self.size += field.len() + v.len() + 2;
        Ok(())
    }

    fn required(&mut self, field: &str, v: &str) -> Result<(), Invalid> {
        self.text(field, v)?;
        if v.trim().is_empty() {
            return Err(Invalid(format!("field '{field}' is empty")));
        }
        Ok(())
    }

    /// A required field CloudForet stores in at most `max` characters.
    fn required_within(&mut self, field: &str, v: &str, max: usize) -> Result<(), Invalid> {
        self.required(field, v)?;
        let n = v.chars().count();
        if n > max {
            return Err(Invalid(format!("field '{field}' is {n} characters; CloudForet keeps at most {max}")));
        }
        Ok(())
    }

    fn optional(&mut self, field: &str, v: &Option<String>) -> Result<(), Invalid> {
        match v {
            Some(s) => self.text(field, s),
            None => {
                self.null(field);
                Ok(())
            }
        }
    }

    fn null(&mut self, field: &str) {
        self.size += field.len() + 4;
    }

    fn strings(&mut self, field: &str, list: &[String]) -> Result<(), Invalid> {
        self.size += field.len() + 2;
        for s in list {
            check_len(field, s)?;
            self.size += s.len() + 2;
        }
        Ok(())
    }

    fn tags(&mut self, t: &[(String, String)]) -> Result<(), Invalid> {
        self.size += "tags".len() + 2;
        for (k, v) in t {
            check_len("tags", k)?;
            check_len("tags", v)?;
            self.size += k.len() + v.len() + 5;
        }
        Ok(())
    }

    fn number(&mut self, field: &str, v: f64) -> Result<(), Invalid> {
        if !v.is_finite() {
            return Err(Invalid(format!("field '{field}' is not a finite number")));
        }
        self.size += field.len() + 8;
        Ok(())
    }
}

/// A JSON object field, validated without building a tree and kept as the
/// guest's own text (no copy): empty text means `{}`.
fn json_object(field: &'static str, text: &mut String) -> Result<(&'static str, Box<RawValue>), Invalid> {
    let text = std::mem::take(text);
    if text.trim().is_empty() {
        return Ok((field, RawValue::from_string("{}".into()).map_err(|e| Invalid(e.to_string()))?));
    }
    match RawValue::from_string(text) {
        Ok(raw) if raw.get().starts_with('{') => Ok((field, raw)),
        Ok(_) => Err(Invalid(format!("field '{field}' is not a JSON object"))),
        Err(e) => Err(Invalid(format!("field '{field}' is not valid JSON: {e}"))),
    }
}

/// Converters of checked fields: they move the guest's strings into the
/// resource.
fn text(v: String) -> Value {
    Value::String(v)
}

fn opt(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

fn list(v: Vec<String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

fn tag_map(t: Vec<(String, String)>) -> Value {
    Value::Object(t.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Runs an item's checks (which may take its JSON fields) and names the
/// item in the rejection when one fails.
fn checked<T>(what: &str, names: [&str; 3], checks: Result<T, Invalid>) -> Result<T, Rejected> {
    checks.map_err(|Invalid(why)| rejected(what, why, names[0], names[1], names[2]))
}

/// A checked item: its fields stay as lifted until a sink asks.
fn lifted(resource_type: ResourceType, item: emit::Item, raw: RawFields, checks: Checks) -> Record {
    Record { resource_type, state: State::Success, message: None, body: Body::Item { item, size: checks.size }, raw }
}

fn cloud_service(mut c: emit::CloudService) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = (|| {
        ck.required("name", &c.name)?;
        ck.required("cloud_service_type", &c.cloud_service_type)?;
        ck.required("cloud_service_group", &c.cloud_service_group)?;
        ck.required("provider", &c.provider)?;
        ck.strings("ip_addresses", &c.ip_addresses)?;
        ck.optional("account", &c.account)?;
        ck.optional("instance_type", &c.instance_type)?;
        match c.instance_size {
            Some(f) => ck.number("instance_size", f)?,
            None => ck.null("instance_size"),
        }
        ck.optional("launched_at", &c.launched_at)?;
        ck.optional("region_code", &c.region_code)?;
        ck.required("reference.resource_id", &c.reference.resource_id)?;
        ck.optional("reference.external_link", &c.reference.external_link)?;
        ck.tags(&c.tags)?;
        Ok(vec![json_object("data", &mut c.data)?, json_object("metadata", &mut c.metadata)?])
    })();
    let raw = checked("CloudService", [&c.cloud_service_group, &c.cloud_service_type, &c.provider], checks)?;
    Ok(lifted(ResourceType::CloudService, emit::Item::CloudService(c), raw, ck))
}

fn cloud_service_map(c: emit::CloudService) -> Map<String, Value> {
    let mut reference = Map::new();
    reference.insert("resource_id".into(), text(c.reference.resource_id));
    reference.insert("external_link".into(), opt(c.reference.external_link));
    obj([
        ("name", text(c.name)),
        ("cloud_service_type", text(c.cloud_service_type)),
        ("cloud_service_group", text(c.cloud_service_group)),
        ("provider", text(c.provider)),
        ("ip_addresses", list(c.ip_addresses)),
        ("account", opt(c.account)),
        ("instance_type", opt(c.instance_type)),
        ("instance_size", c.instance_size.map_or(Value::Null, number)),
        ("launched_at", opt(c.launched_at)),
        ("region_code", opt(c.region_code)),
        ("reference", Value::Object(reference)),
        ("tags", tag_map(c.tags)),
    ])
}

fn cloud_service_type(mut t: emit::CloudServiceType) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = (|| {
        ck.required("name", &t.name)?;
        ck.required("group", &t.group)?;
        ck.required("provider", &t.provider)?;
        ck.optional("service_code", &t.service_code)?;
        ck.tags(&t.tags)?;
        ck.strings("labels", &t.labels)?;
        Ok(vec![json_object("metadata", &mut t.metadata)?])
    })();
    let raw = checked("CloudServiceType", [&t.group, &t.name, &t.provider], checks)?;
    ck.size += "is_primary".len() + "is_major".len() + 8;
    Ok(lifted(ResourceType::CloudServiceType, emit::Item::CloudServiceType(t), raw, ck))
}

fn cloud_service_type_map(t: emit::CloudServiceType) -> Map<String, Value> {
    obj([
        ("name", text(t.name)),
        ("group", text(t.group)),
        ("provider", text(t.provider)),
        ("is_primary", Value::Bool(t.is_primary)),
        ("is_major", Value::Bool(t.is_major)),
        ("service_code", opt(t.service_code)),
        ("tags", tag_map(t.tags)),
        ("labels", list(t.labels)),
    ])
}

fn region(r: emit::Region) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = ck
        .required("name", &r.name)
        .and_then(|()| ck.required("region_code", &r.region_code))
        .and_then(|()| ck.required("provider", &r.provider))
        .and_then(|()| ck.tags(&r.tags));
    checked("Region", ["", "", &r.provider], checks)?;
    Ok(lifted(ResourceType::Region, emit::Item::Region(r), Vec::new(), ck))
}

fn region_map(r: emit::Region) -> Map<String, Value> {
    obj([
        ("name", text(r.name)),
        ("region_code", text(r.region_code)),
        ("provider", text(r.provider)),
        ("tags", tag_map(r.tags)),
    ])
}

fn error_resource(mut e: emit::ErrorResource) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = ck
        .text("message", &e.message)
        .and_then(|()| ck.text("provider", &e.provider))
        .and_then(|()| ck.text("cloud_service_group", &e.cloud_service_group))
        .and_then(|()| ck.text("cloud_service_type", &e.cloud_service_type))
        .and_then(|()| ck.text("resource_type", &e.resource_type));
    checked("ErrorResource", ["", "", &e.provider], checks)?;
    // The message is the record's, not the resource's.
    let message = std::mem::take(&mut e.message);
    ck.size -= "message".len() + message.len() + 2;
    Ok(Record {
        resource_type: ResourceType::ErrorResource,
        state: State::Failure,
        message: Some(if message.is_empty() { "unspecified error".into() } else { message }),
        body: Body::Item { item: emit::Item::ErrorResource(e), size: ck.size },
        raw: Vec::new(),
    })
}

fn error_resource_map(e: emit::ErrorResource) -> Map<String, Value> {
    obj([
        ("provider", text(e.provider)),
        ("cloud_service_group", text(e.cloud_service_group)),
        ("cloud_service_type", text(e.cloud_service_type)),
        ("resource_type", text(e.resource_type)),
    ])
}

fn namespace(n: emit::Namespace) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    // Field limits of CloudForet's Namespace model (spaceone-inventory 2.x).
    let checks = ck
        .required_within("namespace_id", &n.namespace_id, 80)
        .and_then(|()| ck.required_within("name", &n.name, 40))
        .and_then(|()| ck.required_within("category", &n.category, 40))
        .and_then(|()| ck.required("resource_type", &n.resource_type))
        .and_then(|()| ck.required_within("group", &n.group, 40))
        .and_then(|()| ck.required("provider", &n.provider))
        .and_then(|()| ck.optional("icon", &n.icon))
        .and_then(|()| ck.tags(&n.tags));
    checked("Namespace", [&n.group, "", &n.provider], checks)?;
    Ok(lifted(ResourceType::Namespace, emit::Item::Namespace(n), Vec::new(), ck))
}

fn namespace_map(n: emit::Namespace) -> Map<String, Value> {
    obj([
        ("namespace_id", text(n.namespace_id)),
        ("name", text(n.name)),
        ("category", text(n.category)),
        ("resource_type", text(n.resource_type)),
        ("group", text(n.group)),
        ("provider", text(n.provider)),
        ("icon", opt(n.icon)),
        ("tags", tag_map(n.tags)),
    ])
}

fn metric(mut m: emit::Metric) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = (|| {
        // Field limits of CloudForet's Metric model (spaceone-inventory 2.x).
        ck.required_within("metric_id", &m.metric_id, 80)?;
        ck.required_within("name", &m.name, 80)?;
        ck.required("resource_type", &m.resource_type)?;
        ck.required_within("namespace_id", &m.namespace_id, 80)?;
        ck.required("provider", &m.provider)?;
        ck.text("unit", &m.unit)?;
        ck.tags(&m.tags)?;
        Ok(vec![json_object("query_options", &mut m.query_options)?])
    })();
    let raw = checked("Metric", ["", "", &m.provider], checks)?;
    ck.size += "metric_type".len() + 9;
    Ok(lifted(ResourceType::Metric, emit::Item::Metric(m), raw, ck))
}

fn metric_map(m: emit::Metric) -> Map<String, Value> {
    let metric_type = match m.metric_type {
        emit::MetricType::Counter => "COUNTER",
        emit::MetricType::Gauge => "GAUGE",
    };
    obj([
        ("metric_id", text(m.metric_id)),
        ("name", text(m.name)),
        ("metric_type", Value::String(metric_type.into())),
        ("resource_type", text(m.resource_type)),
        ("namespace_id", text(m.namespace_id)),
        ("provider", text(m.provider)),
        // CloudForet's unit is optional: an empty string is none.
        ("unit", if m.unit.is_empty() { Value::Null } else { text(m.unit) }),
        ("tags", tag_map(m.tags)),
    ])
}

/// Validates one emitted cost, as [`from_item`] does items.
pub fn from_cost(mut c: costs::Cost) -> Result<Record, Rejected> {
    let mut ck = Checks::default();
    let checks = (|| {
        ck.number("cost", c.cost)?;
        ck.number("usage_quantity", c.usage_quantity)?;
        ck.text("usage_unit", &c.usage_unit)?;
        ck.required("provider", &c.provider)?;
        ck.optional("region_code", &c.region_code)?;
        ck.text("product", &c.product)?;
        ck.required("usage_type", &c.usage_type)?;
        ck.required("resource", &c.resource)?;
        ck.tags(&c.tags)?;
        ck.required("billed_date", &c.billed_date)?;
        if chrono::NaiveDate::parse_from_str(&c.billed_date, "%Y-%m-%d").is_err() {
            return Err(Invalid(format!("field 'billed_date' is not a YYYY-MM-DD date: {:?}", c.billed_date.chars().take(40).collect::<String>())));
        }
        Ok(vec![json_object("additional_info", &mut c.additional_info)?, json_object("data", &mut c.data)?])
    })();
    let raw = checked("Cost", ["", "", &c.provider], checks)?;
    Ok(Record { resource_type: ResourceType::Cost, state: State::Success, message: None, body: Body::Cost { cost: c, size: ck.size }, raw })
}

fn cost_map(c: costs::Cost) -> Map<String, Value> {
    obj([
        ("cost", number(c.cost)),
        ("usage_quantity", number(c.usage_quantity)),
        ("usage_unit", text(c.usage_unit)),
        ("provider", text(c.provider)),
        ("region_code", opt(c.region_code)),
        ("product", text(c.product)),
        ("usage_type", text(c.usage_type)),
        ("resource", text(c.resource)),
        ("tags", tag_map(c.tags)),
        ("billed_date", text(c.billed_date)),
    ])
}

/// An item the host refused, and the error resource that replaces it.
#[derive(Debug)]
pub struct Rejected {
    pub reason: String,
    /// Boxed: a rejection is rare, and a record is large.
    pub replacement: Box<Record>,
}

/// Validates and converts one emitted item, moving the guest's strings into
/// the record. A rejected item is never dropped: the caller emits
/// [`Rejected::replacement`] in its place.
pub fn from_item(item: emit::Item) -> Result<Record, Rejected> {
    match item {
        emit::Item::CloudService(c) => cloud_service(c),
        emit::Item::CloudServiceType(t) => cloud_service_type(t),
        emit::Item::Region(r) => region(r),
        emit::Item::ErrorResource(e) => error_resource(e),
        emit::Item::Namespace(n) => namespace(n),
        emit::Item::Metric(m) => metric(m),
    }
}

/// Refuses a valid item that the current call may not emit (an inventory
/// record during `cost-source.get-data`, a cost during `collect`).
pub fn out_of_place(r: Record, call: &str) -> Result<Record, Rejected> {
    let resource = r.resource();
    let s = |k: &str| resource.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let why = format!("{} records are not accepted during {call}", r.resource_type.as_str());
    Err(rejected(r.resource_type.as_str(), why, &s("cloud_service_group"), &s("cloud_service_type"), &s("provider")))
}

/// How the message of an error resource the host put in place of a
/// rejected item starts (what `cf-host test --conformance` counts).
pub const REJECTED_PREFIX: &str = "host rejected an emitted ";

fn rejected(what: &str, why: String, group: &str, ty: &str, provider: &str) -> Rejected {
    let cut = |s: &str| s.chars().take(256).collect::<String>();
    let replacement = Record::host_error(format!("{REJECTED_PREFIX}{what}: {why}"), &cut(group), &cut(ty), &cut(provider));
    Rejected { reason: why, replacement: Box::new(replacement) }
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
        let r = from_item(emit::Item::CloudService(vm())).unwrap();
        assert_eq!(r.match_rules_json(), expected["match_rules"]);
        let whole = r.resource_json();
        let mut keys: Vec<&String> = whole.keys().collect();
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
            assert_eq!(r.resource()[k], expected["resource"][k], "{k}");
        }
        assert_eq!(whole["data"], expected["resource"]["json_data__decoded"]);
        // The raw text is the guest's, and the NDJSON line is the same JSON as to_json.
        assert_eq!(r.raw("data"), Some(r#"{"power_state": "ON", "num_vcpus": 4}"#));
        assert_eq!(serde_json::from_str::<Value>(&r.to_json_line()).unwrap(), r.to_json());
        assert_eq!(r.label(), "Compute/VirtualMachine");
    }

    #[test]
    fn error_resource_matches_sdk_shape() {
        let wire: Value = serde_json::from_str(include_str!("../../guest-nutanix/tests/fixtures/python_sdk_wire_output.json")).unwrap();
        let expected = &wire["collect"][3];
        let r = from_item(emit::Item::ErrorResource(emit::ErrorResource {
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
        let r = from_item(emit::Item::Region(emit::Region {
            name: "cluster-a".into(),
            region_code: "cluster-a".into(),
            provider: "nutanix".into(),
            tags: vec![],
        }))
        .unwrap();
        assert_eq!(r.match_rules_json(), json!({"1": ["region_code", "provider"]}));
        assert_eq!(r.label(), "Region");
        assert_eq!(ResourceType::CloudServiceType.match_rules(), &[&["name", "group", "provider"]]);
    }

    #[test]
    fn invalid_items_become_error_resources() {
        let mut bad = vm();
        bad.data = "{not json".into();
        let rejected = from_item(emit::Item::CloudService(bad)).unwrap_err();
        assert!(rejected.reason.starts_with("field 'data' is not valid JSON"), "{}", rejected.reason);
        let r = rejected.replacement;
        assert!(r.is_error());
        assert!(r.message.as_deref().unwrap().starts_with("host rejected an emitted CloudService: field 'data' is not valid JSON"));
        assert_eq!(r.label(), "Compute/VirtualMachine");

        let mut bad = vm();
        bad.data = "[1,2]".into();
        assert!(from_item(emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("not a JSON object"));

        let mut bad = vm();
        bad.reference.resource_id = " ".into();
        assert!(from_item(emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("'reference.resource_id' is empty"));

        let mut bad = vm();
        bad.instance_size = Some(f64::NAN);
        assert!(from_item(emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("finite"));

        let mut bad = vm();
        bad.name = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(from_item(emit::Item::CloudService(bad)).unwrap_err().replacement.message.unwrap().contains("over the limit"));

        let mut bad = vm();
        bad.cloud_service_group = "g".repeat(10_000);
        bad.name = String::new();
        let r = from_item(emit::Item::CloudService(bad)).unwrap_err().replacement;
        assert_eq!(r.resource()["cloud_service_group"].as_str().unwrap().len(), 256, "labels of rejected items are cut");
    }

    /// A lifted item's size, counted by its checks, covers every string
    /// the guest sent (the output limit relies on it) and is within a few
    /// bytes of the same record's size as a JSON object.
    #[test]
    fn an_items_size_counts_every_string() {
        let big = "x".repeat(1000);
        let mut c = vm();
        c.name = big.clone();
        c.account = Some(big.clone());
        c.ip_addresses = vec![big.clone(), big.clone()];
        c.tags = vec![(big.clone(), big.clone())];
        c.reference.external_link = Some(big.clone());
        c.data = format!(r#"{{"a": "{big}"}}"#);
        let mut r = from_item(emit::Item::CloudService(c)).unwrap();
        let lifted = r.approx_size();
        assert!(lifted > 8 * 1000, "{lifted}");
        assert_eq!(r.label(), "Compute/VirtualMachine");
        r.resource_mut().insert("project_id".into(), json!("p"));
        assert_eq!(r.label(), "Compute/VirtualMachine", "the same label from the map");
        let as_map = r.approx_size() - "project_id".len() - 3;
        assert!(lifted.abs_diff(as_map) <= 16, "lifted {lifted}, as a map {as_map}");
        assert_eq!(r.resource()["project_id"], "p");
        assert_eq!(r.resource()["tags"][big.as_str()], big.as_str(), "the map holds the item's fields");
    }

    /// `data` is kept as the guest's text: padding is dropped, empty text
    /// is `{}`, and a rejected `metadata` after a valid `data` still names
    /// the item.
    #[test]
    fn json_fields_keep_the_guest_text() {
        let mut padded = vm();
        padded.data = " \n{\"a\": [1, {\"b\": null}]}\t ".into();
        padded.metadata = "  ".into();
        let r = from_item(emit::Item::CloudService(padded)).unwrap();
        let raw: Vec<(&str, &str)> = r.raw.iter().map(|(k, v)| (*k, v.get())).collect();
        assert_eq!(raw, [("data", "{\"a\": [1, {\"b\": null}]}"), ("metadata", "{}")]);
        assert_eq!(r.resource()["reference"], json!({"resource_id": "uuid-1", "external_link": "https://pc:9440/"}));
        assert_eq!(r.resource()["instance_size"], json!(4.0));

        let mut bad = vm();
        bad.metadata = "{\"a\": 1} {}".into();
        let r = from_item(emit::Item::CloudService(bad)).unwrap_err();
        assert!(r.reason.starts_with("field 'metadata' is not valid JSON"), "{}", r.reason);
        assert_eq!(r.replacement.label(), "Compute/VirtualMachine");
    }
}
