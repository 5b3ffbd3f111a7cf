//! Compute extras and operations (pure), each a kind on request only
//! (their layouts in [`crate::operations_layout`]),
//! read from its v4 list item as is (Prism Central has no v3 list of
//! them, so there is no v3 shape to adapt to):
//!
//! - VM templates (vmm `content/templates`), each with the version the
//!   list carries (`templateVersionSpec`: the active one) and its VM spec
//!   in brief;
//! - alerts (monitoring `serviceability/alerts`), open and resolved alike,
//!   with `data.state` (`OPEN`, `ACKNOWLEDGED`, `RESOLVED`), `data.severity`
//!   and the entity each is about (`data.source_entity`: type, uuid, name;
//!   the uuid is the `resource_id` of that entity's own record);
//! - LCM entities (lifecycle `resources/entities`): a software or firmware
//!   component with its version per cluster or host (`data.host.uuid` for
//!   a node's), and the versions LCM offers to update to.
//!
//! Lists inside an item are bounded ([`MAX_LISTED`]), and long texts cut
//! ([`MAX_TEXT`]), so a hostile item stays a record of bounded size.

use crate::normalize::{self, service, Context};
use crate::record::CloudService;
use crate::v3::{Item, Kind};
use serde_json::{json, Map, Value};

/// Most entries of a list a record carries (affected entities, available
/// versions, classifications).
pub const MAX_LISTED: usize = 100;
/// Longest text a record carries (an alert's message), in bytes.
pub const MAX_TEXT: usize = 4_096;

/// The v4 item as an object, or why not.
fn object(kind: Kind, raw: Item) -> Result<Map<String, Value>, String> {
    match raw.into_value() {
        Value::Object(v) => Ok(v),
        _ => Err(format!("a {} is not a JSON object", kind.api_kind())),
    }
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(|s| cut(s, MAX_TEXT))
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn bounded(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten().take(MAX_LISTED)
}

/// The id and name a record needs, or a malformed-entity message.
fn id_and_name(kind: Kind, v: &Map<String, Value>, name_keys: &[&str]) -> Result<(String, String), String> {
    let id = v.get("extId").and_then(text_of).ok_or_else(|| format!("malformed {} entity: missing extId", kind.api_kind()))?;
    let name = name_keys.iter().find_map(|k| v.get(*k).and_then(text_of)).ok_or_else(|| format!("malformed {} entity {id}: missing {}", kind.api_kind(), name_keys[0]))?;
    Ok((id, name))
}

/// The cluster `{uuid, name}` and the region code: a cluster the cluster
/// list names (a Prism Element cluster) is the record's region; another
/// (Prism Central's own) is named in the data only.
fn cluster(ctx: &Context, uuid: Option<String>) -> (Value, Option<String>) {
    match uuid {
        Some(u) => {
            let name = ctx.cluster_names.get(&u).cloned();
            let region = name.as_ref().map(|_| u.clone());
            (json!({"uuid": u, "name": name}), region)
        }
        None => (Value::Null, None),
    }
}

/// A VM template with its active version.
pub fn vm_template(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let v = object(Kind::VmTemplate, raw.into())?;
    let (uuid, name) = id_and_name(Kind::VmTemplate, &v, &["templateName"])?;
    let get = |k: &str| v.get(k).unwrap_or(&Value::Null);
    let version = get("templateVersionSpec");
    let spec = &version["vmSpec"];
    let (cluster, region) = cluster(ctx, text_of(&spec["cluster"]["extId"]));
    let sockets = spec["numSockets"].as_u64();
    let cores = spec["numCoresPerSocket"].as_u64();
    let vcpus = sockets.map(|s| s.saturating_mul(cores.unwrap_or(1)).saturating_mul(spec["numThreadsPerCore"].as_u64().unwrap_or(1)));
    let memory = spec["memorySizeBytes"].as_u64();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": text_of(get("templateDescription")),
        "created_at": text_of(get("createTime")),
        "updated_at": text_of(get("updateTime")),
        "created_by": text_of(&get("createdBy")["username"]),
        "updated_by": text_of(&get("updatedBy")["username"]),
        "guest_update_status": text_of(&get("guestUpdateStatus")["deployedVmReference"]).map(|vm| json!({"vm_uuid": vm})),
        "version": if version.is_object() {
            json!({
                "uuid": text_of(&version["extId"]),
                "name": text_of(&version["versionName"]),
                "description": text_of(&version["versionDescription"]),
                "created_at": text_of(&version["createTime"]),
                "created_by": text_of(&version["createdBy"]["username"]),
                "is_active": version["isActiveVersion"].as_bool(),
            })
        } else {
            Value::Null
        },
        "vm_spec": {
            "vcpus": vcpus,
            "num_sockets": sockets,
            "num_cores_per_socket": cores,
            "memory_size_bytes": memory,
            "disk_count": spec["disks"].as_array().map(Vec::len),
            "nic_count": spec["nics"].as_array().map(Vec::len),
            "gpu_count": spec["gpus"].as_array().map(Vec::len),
        },
        "cluster": cluster,
    });
    let mut cs = service(ctx, Kind::VmTemplate, name, uuid, region, data);
    cs.instance_type = version["versionName"].as_str().map(|s| cut(s, MAX_TEXT));
    cs.launched_at = text_of(get("createTime"));
    Ok(cs)
}

/// An alert's title with its `{parameter}`s filled in from `parameters`
/// (each value's one scalar field: `stringValue`, `intValue`, ...).
fn title(v: &Map<String, Value>) -> Option<String> {
    let mut t = v.get("title").and_then(text_of)?;
    for p in bounded(v.get("parameters").unwrap_or(&Value::Null)) {
        let (Some(name), Some(value)) = (p["paramName"].as_str(), p["paramValue"].as_object()) else { continue };
        let value = value.iter().filter(|(k, _)| !k.starts_with('$')).find_map(|(_, x)| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        });
        if let Some(value) = value {
            t = t.replace(&format!("{{{name}}}"), &value);
        }
    }
    Some(cut(&t, MAX_TEXT))
}

fn entity_ref(r: &Value) -> Value {
    json!({"type": text_of(&r["type"]), "uuid": text_of(&r["extId"]), "name": text_of(&r["name"])})
}

/// An alert, open or resolved, with the entity it is about.
pub fn alert(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let v = object(Kind::Alert, raw.into())?;
    let uuid = v.get("extId").and_then(text_of).ok_or("malformed alert entity: missing extId")?;
    let name = title(&v).or_else(|| v.get("alertType").and_then(text_of)).ok_or_else(|| format!("malformed alert entity {uuid}: missing title"))?;
    let get = |k: &str| v.get(k).unwrap_or(&Value::Null);
    let flag = |k: &str| get(k).as_bool();
    let resolved = flag("isResolved");
    let state = match (resolved, flag("isAcknowledged")) {
        (Some(true), _) => Some("RESOLVED"),
        (_, Some(true)) => Some("ACKNOWLEDGED"),
        (Some(false), _) => Some("OPEN"),
        (None, _) => None,
    };
    let severity = text_of(get("severity"));
    let (cluster, region) = cluster(ctx, text_of(get("clusterUUID")));
    let source = get("sourceEntity");
    let affected: Vec<Value> = bounded(get("affectedEntities")).map(entity_ref).collect();
    let data = json!({
        "uuid": uuid,
        "title": name,
        "message": text_of(get("message")),
        "alert_type": text_of(get("alertType")),
        "severity": severity,
        "state": state,
        "is_resolved": resolved,
        "is_acknowledged": flag("isAcknowledged"),
        "is_auto_resolved": flag("isAutoResolved"),
        "is_user_defined": flag("isUserDefined"),
        "created_at": text_of(get("creationTime")),
        "updated_at": text_of(get("lastUpdatedTime")),
        "acknowledged_at": text_of(get("acknowledgedTime")),
        "acknowledged_by": text_of(get("acknowledgedByUsername")),
        "resolved_at": text_of(get("resolvedTime")),
        "resolved_by": text_of(get("resolvedByUsername")),
        "service_name": text_of(get("serviceName")),
        "classifications": bounded(get("classifications")).filter_map(text_of).collect::<Vec<_>>(),
        "impact_types": bounded(get("impactTypes")).filter_map(text_of).collect::<Vec<_>>(),
        "source_entity": if source.is_object() { entity_ref(source) } else { Value::Null },
        "affected_entities": affected,
        "cluster": cluster,
    });
    let mut cs = service(ctx, Kind::Alert, name, uuid, region, data);
    cs.instance_type = severity;
    cs.launched_at = text_of(get("creationTime"));
    Ok(cs)
}

/// An LCM entity: a component's version where it is installed.
pub fn lcm_entity(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let v = object(Kind::LcmEntity, raw.into())?;
    let (uuid, model) = id_and_name(Kind::LcmEntity, &v, &["entityModel", "entityClass"])?;
    let get = |k: &str| v.get(k).unwrap_or(&Value::Null);
    let version = text_of(get("entityVersion"));
    let location = get("locationInfo");
    let location_type = text_of(&location["locationType"]);
    let location_uuid = text_of(&location["uuid"]);
    let host = match (location_type.as_deref(), &location_uuid) {
        (Some("NODE"), Some(u)) => json!({"uuid": u}),
        _ => Value::Null,
    };
    let (cluster, region) = cluster(ctx, text_of(get("clusterExtId")));
    let available: Vec<Value> = bounded(get("availableVersions"))
        .map(|a| json!({"version": text_of(&a["version"]), "status": text_of(&a["status"]), "is_enabled": a["isEnabled"].as_bool(), "release_date": text_of(&a["releaseDate"])}))
        .collect();
    // The first version on offer (in LCM's order) that is not the one
    // installed and not disabled.
    let update_to = bounded(get("availableVersions"))
        .filter(|a| a["isEnabled"].as_bool() != Some(false))
        .filter_map(|a| text_of(&a["version"]))
        .find(|a| Some(a) != version.as_ref());
    let name = match &version {
        Some(ver) => format!("{model} {ver}"),
        None => model.clone(),
    };
    let data = json!({
        "uuid": uuid,
        "model": model,
        "entity_class": text_of(get("entityClass")),
        "entity_type": text_of(get("entityType")),
        "description": text_of(get("entityDescription")),
        "version": version,
        "target_version": text_of(get("targetVersion")),
        "hardware_vendor": text_of(get("hardwareVendor")),
        "hardware_family": text_of(get("hardwareFamily")),
        "device_id": text_of(get("deviceId")),
        "updated_at": text_of(get("lastUpdatedTime")),
        "location_type": location_type,
        "location_uuid": location_uuid,
        "host": host,
        "cluster": cluster,
        "available_versions": available,
        "update_available": update_to.is_some(),
        "update_to": update_to,
    });
    let mut cs = service(ctx, Kind::LcmEntity, name, uuid, region, data);
    cs.instance_type = text_of(get("entityType"));
    Ok(cs)
}

/// [`normalize::service_of`] for every kind, these kinds' own items too
/// (normalization does not reach here: the layouts are in
/// [`crate::operations_layout`]).
pub fn service_of(kind: Kind, ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    match kind {
        Kind::VmTemplate => vm_template(ctx, raw),
        Kind::Alert => alert(ctx, raw),
        Kind::LcmEntity => lcm_entity(ctx, raw),
        _ => normalize::service_of(kind, ctx, raw),
    }
}

/// A VM's Nutanix Guest Tools as their own record (kind `guest_tools`):
/// `read` is what the VM list said (v3 `guest_tools` with its
/// `nutanix_guest_tools`, or v4 `guestTools`; none: not installed).
/// `data.state` sums it up: `NOT_INSTALLED`, `DISABLED`, `UNREACHABLE`,
/// `UPGRADE_AVAILABLE`, `OK`, or `INSTALLED` when Prism does not say
/// whether the VM answers.
pub fn guest_tools_of(vm: &CloudService, read: Option<&Value>) -> CloudService {
    let read = read.filter(|g| g.is_object());
    // v3 nests them; v4's `guestTools` is the object itself.
    let v3 = read.and_then(|g| g.get("nutanix_guest_tools")).filter(|g| g.is_object());
    let field = |v3_key: &str, v4_key: &str| match (v3, read) {
        (Some(g), _) => g.get(v3_key).cloned(),
        (None, Some(g)) => g.get(v4_key).cloned(),
        (None, None) => None,
    };
    let text = |v3_key: &str, v4_key: &str| field(v3_key, v4_key).as_ref().and_then(text_of);
    let flag = |v3_key: &str, v4_key: &str| field(v3_key, v4_key).and_then(|f| f.as_bool());
    let version = text("version", "version");
    let available = text("available_version", "availableVersion");
    let installed = match v3 {
        Some(g) => g.get("ngt_state").and_then(Value::as_str).map(|s| s == "INSTALLED").or(Some(version.is_some())),
        None => read.map(|g| g.get("isInstalled").and_then(Value::as_bool).unwrap_or(version.is_some())),
    }
    .unwrap_or(false);
    let enabled = match v3 {
        Some(g) => g.get("state").and_then(Value::as_str).map(|s| s == "ENABLED"),
        None => flag("", "isEnabled"),
    };
    let reachable = flag("is_reachable", "isReachable");
    let upgrade = matches!((&version, &available), (Some(v), Some(a)) if v != a);
    let state = if !installed {
        "NOT_INSTALLED"
    } else if enabled == Some(false) {
        "DISABLED"
    } else if reachable == Some(false) {
        "UNREACHABLE"
    } else if upgrade {
        "UPGRADE_AVAILABLE"
    } else if reachable == Some(true) {
        "OK"
    } else {
        "INSTALLED"
    };
    let capabilities: Vec<String> = field("enabled_capability_list", "capabilities").as_ref().map(|c| bounded(c).filter_map(text_of).collect()).unwrap_or_default();
    let data = json!({
        "vm": {"uuid": vm.resource_id, "name": vm.name},
        "cluster": vm.data.get("cluster"),
        "host": vm.data.get("host"),
        "state": state,
        "installed": installed,
        "enabled": enabled,
        "reachable": reachable,
        "version": version,
        "available_version": available,
        "upgrade_available": upgrade,
        "iso_inserted": text("iso_mount_state", "").map(|s| s == "MOUNTED").or(flag("", "isIsoInserted")),
        "vss_snapshot_capable": flag("vss_snapshot_capable", "isVssSnapshotCapable"),
        "capabilities": capabilities,
        "guest_os_version": text("guest_os_version", "guestOsVersion"),
    });
    let (group, ty) = normalize::group_and_type(Kind::GuestTools);
    CloudService {
        name: format!("{} NGT", vm.name),
        provider: vm.provider.clone(),
        cloud_service_group: group.to_string(),
        cloud_service_type: ty.to_string(),
        account: vm.account.clone(),
        region_code: vm.region_code.clone(),
        instance_type: Some(state.to_string()),
        instance_size: None,
        ip_addresses: Vec::new(),
        tags: vm.tags.clone(),
        resource_id: format!("{}:ngt", vm.resource_id),
        external_link: vm.external_link.clone(),
        launched_at: None,
        data,
        metadata: crate::layout::service_reference(group, ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            account: Some("pc".into()),
            base_url: "https://pc:9440".into(),
            cluster_names: [("c-1".to_string(), "pe-1".to_string())].into_iter().collect(),
            ..Context::default()
        }
    }

    #[test]
    fn an_alert_names_its_entity_state_and_severity() {
        let raw = json!({
            "extId": "a-1", "title": "VM {vm_name} CPU at {pct} %", "severity": "CRITICAL", "isResolved": false, "isAcknowledged": true,
            "parameters": [{"paramName": "vm_name", "paramValue": {"$objectType": "monitoring.v4.common.StringValue", "stringValue": "db-01"}},
                           {"paramName": "pct", "paramValue": {"intValue": 97}}, {"paramName": "odd", "paramValue": {"x": [1]}}],
            "sourceEntity": {"type": "vm", "extId": "vm-1", "name": "db-01"}, "clusterUUID": "c-1", "creationTime": "2024-05-06T08:30:00Z",
            "affectedEntities": [{"type": "host", "extId": "h-1"}],
        });
        let cs = alert(&ctx(), raw).unwrap();
        assert_eq!((cs.name.as_str(), cs.resource_id.as_str()), ("VM db-01 CPU at 97 %", "a-1"));
        assert_eq!((cs.cloud_service_group.as_str(), cs.cloud_service_type.as_str()), ("Operations", "Alert"));
        assert_eq!(cs.data["state"], "ACKNOWLEDGED");
        assert_eq!(cs.data["source_entity"], json!({"type": "vm", "uuid": "vm-1", "name": "db-01"}));
        assert_eq!(cs.data["affected_entities"], json!([{"type": "host", "uuid": "h-1", "name": null}]));
        assert_eq!((cs.region_code.as_deref(), cs.instance_type.as_deref()), (Some("c-1"), Some("CRITICAL")));
        let resolved = alert(&ctx(), json!({"extId": "a-2", "alertType": "A1046", "isResolved": true, "isAcknowledged": true, "clusterUUID": "pc-uuid"})).unwrap();
        assert_eq!((resolved.name.as_str(), resolved.data["state"].as_str()), ("A1046", Some("RESOLVED")));
        assert_eq!(resolved.region_code, None, "Prism Central's own alerts belong to no cluster region");
        assert_eq!(alert(&ctx(), json!({"extId": "a-3", "isResolved": false})).unwrap_err(), "malformed alert entity a-3: missing title");
        assert!(alert(&ctx(), json!({"title": "t"})).is_err() && alert(&ctx(), json!("x")).is_err());
    }

    #[test]
    fn hostile_alerts_stay_bounded() {
        let many: Vec<Value> = (0..10_000).map(|i| json!({"type": "vm", "extId": format!("vm-{i}")})).collect();
        let raw = json!({"extId": "a", "title": "é".repeat(10_000), "message": "m".repeat(100_000), "affectedEntities": many, "classifications": [1, "x"]});
        let cs = alert(&ctx(), raw).unwrap();
        assert!(cs.name.len() <= MAX_TEXT && cs.data["message"].as_str().unwrap().len() == MAX_TEXT);
        assert_eq!(cs.data["affected_entities"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(cs.data["classifications"], json!(["x"]));
    }

    #[test]
    fn an_lcm_entity_has_its_version_host_and_update() {
        let raw = json!({
            "extId": "e-1", "entityModel": "BIOS", "entityClass": "BIOS", "entityType": "FIRMWARE", "entityVersion": "PB50.001",
            "locationInfo": {"uuid": "h-1", "locationType": "NODE"}, "clusterExtId": "c-1",
            "availableVersions": [{"version": "PB50.001", "isEnabled": true}, {"version": "PB51.002", "status": "AVAILABLE", "isEnabled": true}],
        });
        let cs = lcm_entity(&ctx(), raw).unwrap();
        assert_eq!(cs.name, "BIOS PB50.001");
        assert_eq!((cs.data["host"]["uuid"].as_str(), cs.data["update_to"].as_str(), cs.data["update_available"].as_bool()), (Some("h-1"), Some("PB51.002"), Some(true)));
        assert_eq!(cs.region_code.as_deref(), Some("c-1"));
        let current = lcm_entity(&ctx(), json!({"extId": "e-2", "entityClass": "AOS", "entityType": "SOFTWARE", "locationInfo": {"uuid": "c-1", "locationType": "CLUSTER"},
            "availableVersions": [{"version": "7.0", "isEnabled": false}]}))
        .unwrap();
        assert_eq!((current.name.as_str(), current.data["host"].clone(), current.data["update_available"].clone()), ("AOS", Value::Null, json!(false)));
        assert_eq!(lcm_entity(&ctx(), json!({"extId": "e-3"})).unwrap_err(), "malformed lcm_entity entity e-3: missing entityModel");
    }

    fn a_vm() -> CloudService {
        crate::normalize::vm(&ctx(), json!({"metadata": {"uuid": "vm-1"}, "status": {"name": "db-01", "resources": {}}})).unwrap()
    }

    #[test]
    fn guest_tools_from_v3_and_v4_and_none() {
        let vm = a_vm();
        let v3 = json!({"nutanix_guest_tools": {"state": "ENABLED", "version": "4.0", "available_version": "4.1", "is_reachable": true,
            "iso_mount_state": "UNMOUNTED", "enabled_capability_list": ["VSS_SNAPSHOT"], "ngt_state": "INSTALLED"}});
        let t = guest_tools_of(&vm, Some(&v3));
        assert_eq!((t.resource_id.as_str(), t.name.as_str(), t.cloud_service_type.as_str()), ("vm-1:ngt", "db-01 NGT", "GuestTools"));
        assert_eq!((t.data["state"].as_str(), t.data["upgrade_available"].as_bool(), t.data["iso_inserted"].as_bool()), (Some("UPGRADE_AVAILABLE"), Some(true), Some(false)));
        assert_eq!((t.data["vm"]["uuid"].as_str(), t.data["capabilities"].clone()), (Some("vm-1"), json!(["VSS_SNAPSHOT"])));
        let v4 = json!({"version": "4.1", "isInstalled": true, "isEnabled": true, "isReachable": false, "availableVersion": "4.1", "isIsoInserted": true});
        let t = guest_tools_of(&vm, Some(&v4));
        assert_eq!((t.data["state"].as_str(), t.data["iso_inserted"].as_bool()), (Some("UNREACHABLE"), Some(true)));
        let off = guest_tools_of(&vm, Some(&json!({"nutanix_guest_tools": {"state": "DISABLED", "version": "4.0"}})));
        assert_eq!(off.data["state"], "DISABLED");
        let sim = guest_tools_of(&vm, Some(&json!({"isEnabled": true, "version": "4.0"})));
        assert_eq!(sim.data["state"], "INSTALLED", "installed with a version, reachability not said");
        for none in [None, Some(&Value::Null), Some(&json!({"isInstalled": false}))] {
            let t = guest_tools_of(&vm, none);
            assert_eq!((t.data["state"].as_str(), t.data["installed"].as_bool()), (Some("NOT_INSTALLED"), Some(false)), "{none:?}");
        }
    }

    #[test]
    fn a_template_carries_its_active_version_and_vm_spec() {
        let raw = json!({
            "extId": "t-1", "templateName": "ubuntu-22", "createdBy": {"username": "admin"},
            "templateVersionSpec": {"extId": "tv-2", "versionName": "v2", "isActiveVersion": true,
                "vmSpec": {"numSockets": 2, "numCoresPerSocket": 2, "memorySizeBytes": 4_294_967_296u64, "disks": [{}, {}], "cluster": {"extId": "c-1"}}},
        });
        let cs = vm_template(&ctx(), raw).unwrap();
        assert_eq!((cs.name.as_str(), cs.instance_type.as_deref()), ("ubuntu-22", Some("v2")));
        assert_eq!(cs.data["version"]["uuid"], "tv-2");
        assert_eq!((cs.data["vm_spec"]["vcpus"].as_u64(), cs.data["vm_spec"]["disk_count"].as_u64()), (Some(4), Some(2)));
        assert_eq!((cs.data["created_by"].as_str(), cs.region_code.as_deref()), (Some("admin"), Some("c-1")));
        assert_eq!(vm_template(&ctx(), json!({"extId": "t-2"})).unwrap_err(), "malformed vm_template entity t-2: missing templateName");
        assert_eq!(vm_template(&ctx(), json!({"extId": "t-3", "templateName": "bare"})).unwrap().data["version"], Value::Null);
    }
}
