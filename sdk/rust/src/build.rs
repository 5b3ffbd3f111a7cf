//! Builders for the records, enforcing CloudForet's rules where the types
//! can: a cloud service cannot be built without the fields its match rules
//! read (provider, group, type and `reference.resource_id`), a type's labels
//! are [`Label`]s (the console's vocabulary), its icon goes in the tag the
//! console reads. What only a value can tell (`data` is an object, names are
//! not empty) is checked by `build`, as the host checks it again.

use serde_json::{Map, Value};

use crate::console::{Icon, Label, ICON_TAG};
use crate::record::{CloudService, CloudServiceType, ErrorResource, Metric, Namespace, Region};
use crate::Error;

fn object(what: &str, v: &Value) -> Result<(), Error> {
    if v.is_object() { Ok(()) } else { Err(Error::Internal(format!("{what} must be a JSON object"))) }
}

fn named(what: &str, v: &str) -> Result<(), Error> {
    if v.trim().is_empty() { Err(Error::Internal(format!("{what} must not be empty"))) } else { Ok(()) }
}

impl CloudService {
    /// A cloud service with the fields CloudForet matches it by: `provider`,
    /// `group`, `kind` (its type) and `resource_id` (`reference.resource_id`).
    pub fn builder(provider: &str, group: &str, kind: &str, resource_id: &str, name: &str) -> CloudServiceBuilder {
        CloudServiceBuilder(CloudService {
            name: name.into(),
            provider: provider.into(),
            cloud_service_group: group.into(),
            cloud_service_type: kind.into(),
            account: None,
            region_code: None,
            instance_type: None,
            instance_size: None,
            ip_addresses: Vec::new(),
            tags: Vec::new(),
            resource_id: resource_id.into(),
            external_link: None,
            launched_at: None,
            data: Value::Object(Map::new()),
            metadata: Value::Object(Map::new()),
        })
    }
}

#[must_use]
pub struct CloudServiceBuilder(CloudService);

impl CloudServiceBuilder {
    pub fn region(mut self, code: &str) -> Self {
        self.0.region_code = Some(code.into());
        self
    }
    pub fn account(mut self, account: &str) -> Self {
        self.0.account = Some(account.into());
        self
    }
    pub fn instance_type(mut self, t: &str) -> Self {
        self.0.instance_type = Some(t.into());
        self
    }
    /// Bytes for `Storage` types (the console's Storage Size sums them).
    pub fn instance_size(mut self, size: f64) -> Self {
        self.0.instance_size = Some(size);
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.0.ip_addresses.push(ip.into());
        self
    }
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.tags.push((key.into(), value.into()));
        self
    }
    pub fn link(mut self, url: &str) -> Self {
        self.0.external_link = Some(url.into());
        self
    }
    /// RFC 3339.
    pub fn launched_at(mut self, at: &str) -> Self {
        self.0.launched_at = Some(at.into());
        self
    }
    /// What the type's layout shows (a JSON object).
    pub fn data(mut self, data: Value) -> Self {
        self.0.data = data;
        self
    }
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.0.metadata = metadata;
        self
    }
    pub fn build(self) -> Result<CloudService, Error> {
        let c = self.0;
        for (what, v) in [("provider", &c.provider), ("cloud_service_group", &c.cloud_service_group), ("cloud_service_type", &c.cloud_service_type), ("resource_id", &c.resource_id), ("name", &c.name)] {
            named(what, v)?;
        }
        object("data", &c.data)?;
        object("metadata", &c.metadata)?;
        Ok(c)
    }
}

impl CloudServiceType {
    pub fn builder(provider: &str, group: &str, name: &str) -> TypeBuilder {
        TypeBuilder(CloudServiceType {
            name: name.into(),
            group: group.into(),
            provider: provider.into(),
            service_code: None,
            is_primary: false,
            is_major: false,
            labels: Vec::new(),
            tags: Vec::new(),
            metadata: Value::Object(Map::new()),
        })
    }
}

#[must_use]
pub struct TypeBuilder(CloudServiceType);

impl TypeBuilder {
    /// The console's service categories the type is listed under.
    pub fn labels(mut self, labels: &[Label]) -> Self {
        self.0.labels = labels.iter().map(|l| l.as_str().to_string()).collect();
        self
    }
    /// Listed by default and counted by the console's managed metrics.
    pub fn primary(mut self) -> Self {
        self.0.is_primary = true;
        self
    }
    pub fn major(mut self) -> Self {
        self.0.is_major = true;
        self
    }
    pub fn service_code(mut self, code: &str) -> Self {
        self.0.service_code = Some(code.into());
        self
    }
    /// The icon, served under `base` (else inline).
    pub fn icon(mut self, icon: &Icon, base: Option<&str>) -> Self {
        self.0.tags.retain(|(k, _)| k != ICON_TAG);
        self.0.tags.push((ICON_TAG.into(), icon.url(base)));
        self
    }
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.tags.push((key.into(), value.into()));
        self
    }
    /// The console layout (see [`crate::layout::view`]).
    pub fn layout(mut self, metadata: Value) -> Self {
        self.0.metadata = metadata;
        self
    }
    pub fn build(self) -> Result<CloudServiceType, Error> {
        let t = self.0;
        for (what, v) in [("provider", &t.provider), ("group", &t.group), ("name", &t.name)] {
            named(what, v)?;
        }
        object("metadata", &t.metadata)?;
        Ok(t)
    }
}

impl Region {
    pub fn new(provider: &str, region_code: &str, name: &str) -> Region {
        Region { name: name.into(), region_code: region_code.into(), provider: provider.into(), tags: Vec::new() }
    }

    /// On the console's map: `continent` one of [`crate::console::CONTINENTS`].
    pub fn located(mut self, continent: &str, latitude: f64, longitude: f64) -> Result<Region, Error> {
        if !crate::console::CONTINENTS.contains(&continent) {
            return Err(Error::InvalidArgument(format!("continent {continent:?} is not one of {}", crate::console::CONTINENTS.join(", "))));
        }
        self.tags.push(("continent".into(), continent.into()));
        self.tags.push(("latitude".into(), latitude.to_string()));
        self.tags.push(("longitude".into(), longitude.to_string()));
        Ok(self)
    }
}

impl ErrorResource {
    /// What could not be collected of a type, and why.
    pub fn new(provider: &str, group: &str, kind: &str, message: &str) -> ErrorResource {
        ErrorResource {
            message: message.into(),
            provider: provider.into(),
            cloud_service_group: group.into(),
            cloud_service_type: kind.into(),
            resource_type: "inventory.CloudService".into(),
        }
    }
}

impl Namespace {
    /// The metric explorer's namespace over the cloud services of
    /// `group`/`kind`; `category` e.g. `ASSET`.
    pub fn new(provider: &str, group: &str, kind: &str, namespace_id: &str, name: &str, category: &str) -> Namespace {
        Namespace {
            namespace_id: namespace_id.into(),
            name: name.into(),
            category: category.into(),
            resource_type: format!("inventory.CloudService:{provider}.{group}.{kind}"),
            group: group.into(),
            provider: provider.into(),
            icon: None,
            tags: Vec::new(),
        }
    }
}

impl Metric {
    /// A gauge of `namespace` in `unit` (CloudForet's unit string, e.g.
    /// `Percent`, `Bytes`), aggregated by `query_options` (`group_by`,
    /// `fields`).
    pub fn gauge(namespace: &Namespace, metric_id: &str, name: &str, unit: &str, query_options: Value) -> Metric {
        Metric {
            metric_id: metric_id.into(),
            name: name.into(),
            gauge: true,
            resource_type: namespace.resource_type.clone(),
            namespace_id: namespace.namespace_id.clone(),
            provider: namespace.provider.clone(),
            unit: Value::String(unit.into()),
            query_options,
            tags: Vec::new(),
        }
    }

    /// The same metric as a counter.
    pub fn counter(mut self) -> Metric {
        self.gauge = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cloud_service_carries_its_match_fields_and_an_object_data() {
        let c = CloudService::builder("acme", "Compute", "Instance", "i-1", "web").region("r1").data(json!({"cpu": 2})).build().unwrap();
        assert_eq!((c.provider.as_str(), c.cloud_service_group.as_str(), c.cloud_service_type.as_str(), c.resource_id.as_str()), ("acme", "Compute", "Instance", "i-1"));
        assert_eq!(c.region_code.as_deref(), Some("r1"));
        assert!(matches!(CloudService::builder("acme", "Compute", "Instance", "i-1", "web").data(json!([1])).build(), Err(Error::Internal(m)) if m.contains("data")));
        assert!(matches!(CloudService::builder("acme", "Compute", "Instance", " ", "web").build(), Err(Error::Internal(m)) if m.contains("resource_id")));
    }

    #[test]
    fn a_type_has_console_labels_and_one_icon_tag() {
        let icon = Icon { file: "i.svg", svg: "<svg/>" };
        let t = CloudServiceType::builder("acme", "Compute", "Instance")
            .labels(&[Label::Compute, Label::Server])
            .primary()
            .icon(&icon, None)
            .icon(&icon, Some("https://x"))
            .build()
            .unwrap();
        assert_eq!(t.labels, ["Compute", "Server"]);
        assert!(t.is_primary && !t.is_major);
        assert_eq!(t.tags, [(ICON_TAG.to_string(), "https://x/i.svg".to_string())]);
    }

    #[test]
    fn regions_are_placed_on_known_continents_only() {
        assert_eq!(Region::new("acme", "r1", "One").located("europe", 1.5, 2.0).unwrap().tags.len(), 3);
        assert!(matches!(Region::new("acme", "r1", "One").located("atlantis", 0.0, 0.0), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn metrics_belong_to_their_namespace() {
        let ns = Namespace::new("acme", "Compute", "Instance", "ns-1", "Usage", "ASSET");
        assert_eq!(ns.resource_type, "inventory.CloudService:acme.Compute.Instance");
        let m = Metric::gauge(&ns, "m-1", "CPU", "Count", json!({})).counter();
        assert_eq!((m.namespace_id.as_str(), m.resource_type.as_str(), m.gauge), ("ns-1", ns.resource_type.as_str(), false));
        assert_eq!(m.unit, json!("Count"));
    }
}
