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
//! Two more, not v4 list items as is:
//!
//! - a VM template's versions ([`with_versions`]): vmm v4.0 lists them per
//!   template only (`content/templates/{extId}/versions`), one call per
//!   template, which the collector bounds (option
//!   `max_template_version_calls`);
//! - physical GPUs ([`gpus_of_host`]), from the v3 host list's `gpu_list`:
//!   v4.0 names no host for a physical GPU (clustermgmt hosts carry only
//!   `gpuList`, names; the per-cluster GPU profiles carry the VMs
//!   allocated but no host), while each v3 host lists its GPUs with the VM
//!   using each (`consumer_reference`). Entries of one host at one PCI
//!   address (a vGPU-mode GPU's profiles) are one physical GPU.
//!
//! Lists inside an item are bounded ([`MAX_LISTED`]), and long texts cut
//! ([`MAX_TEXT`]), so a hostile item stays a record of bounded size.

use crate::normalize::{self, service, Context};
use crate::record::CloudService;
use crate::v3::{Item, Kind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

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
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": text_of(get("templateDescription")),
        "created_at": text_of(get("createTime")),
        "updated_at": text_of(get("updateTime")),
        "created_by": text_of(&get("createdBy")["username"]),
        "updated_by": text_of(&get("updatedBy")["username"]),
        "guest_update_status": text_of(&get("guestUpdateStatus")["deployedVmReference"]).map(|vm| json!({"vm_uuid": vm})),
        "version": if version.is_object() { template_version(version, false) } else { Value::Null },
        "vm_spec": vm_spec(spec),
        "cluster": cluster,
        // Filled in by `with_versions` when they were read.
        "versions": Value::Null,
        "version_count": Value::Null,
    });
    let mut cs = service(ctx, Kind::VmTemplate, name, uuid, region, data);
    cs.instance_type = version["versionName"].as_str().map(|s| cut(s, MAX_TEXT));
    cs.launched_at = text_of(get("createTime"));
    Ok(cs)
}

/// A template's VM spec in brief: its size, and how many disks, NICs and
/// GPUs it has.
fn vm_spec(spec: &Value) -> Value {
    let sockets = spec["numSockets"].as_u64();
    let cores = spec["numCoresPerSocket"].as_u64();
    let vcpus = sockets.map(|s| s.saturating_mul(cores.unwrap_or(1)).saturating_mul(spec["numThreadsPerCore"].as_u64().unwrap_or(1)));
    json!({
        "vcpus": vcpus,
        "num_sockets": sockets,
        "num_cores_per_socket": cores,
        "memory_size_bytes": spec["memorySizeBytes"].as_u64(),
        "disk_count": spec["disks"].as_array().map(Vec::len),
        "nic_count": spec["nics"].as_array().map(Vec::len),
        "gpu_count": spec["gpus"].as_array().map(Vec::len),
    })
}

/// One template version (a v4 `TemplateVersionSpec`), with its VM spec in
/// brief when `with_spec`.
fn template_version(v: &Value, with_spec: bool) -> Value {
    let mut out = json!({
        "uuid": text_of(&v["extId"]),
        "name": text_of(&v["versionName"]),
        "description": text_of(&v["versionDescription"]),
        "created_at": text_of(&v["createTime"]),
        "created_by": text_of(&v["createdBy"]["username"]),
        "is_active": v["isActiveVersion"].as_bool(),
    });
    if let (true, Value::Object(o)) = (with_spec, &mut out) {
        o.insert("vm_spec".into(), if v["vmSpec"].is_object() { vm_spec(&v["vmSpec"]) } else { Value::Null });
    }
    out
}

/// A template's versions, as vmm lists them
/// (`content/templates/{extId}/versions`, one page read: `versions` its
/// items, `total` its `totalAvailableResults`), into its record:
/// `data.versions` (at most [`MAX_LISTED`], newest first, each with its VM
/// spec in brief), `data.version_count` (Prism's total, or the number
/// read when it says none). Items that are not objects are left out.
pub fn with_versions(cs: &mut CloudService, versions: &[Value], total: Option<u64>) {
    let mut kept: Vec<&Value> = versions.iter().filter(|v| v.is_object()).take(MAX_LISTED).collect();
    // Newest first (RFC 3339 times of one zone order as text); a version
    // without a time last.
    kept.sort_by(|a, b| b["createTime"].as_str().unwrap_or_default().cmp(a["createTime"].as_str().unwrap_or_default()));
    let listed: Vec<Value> = kept.into_iter().map(|v| template_version(v, true)).collect();
    let read = versions.iter().filter(|v| v.is_object()).count() as u64;
    let count = total.unwrap_or(read).max(read);
    if let Value::Object(data) = &mut cs.data {
        data.insert("versions".into(), Value::Array(listed));
        data.insert("version_count".into(), json!(count));
    }
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

/// A count or flag Prism sends as a number (or, in the v3 host list, a
/// flag as a boolean): `assignable` is `true`/`false` in v3 and a count in
/// the v4 GPU profiles.
fn assignable(v: &Value) -> Option<bool> {
    v.as_bool().or_else(|| v.as_u64().map(|n| n > 0))
}

/// One GPU entry's mode, vendor, device, name, frame buffer (bytes) and
/// so on, in the record's words.
fn gpu_entry(g: &Map<String, Value>) -> Value {
    let get = |k: &str| g.get(k).unwrap_or(&Value::Null);
    json!({
        "name": text_of(get("name")),
        "mode": text_of(get("mode")),
        "fraction": get("fraction").as_u64(),
        "frame_buffer_size_bytes": get("frame_buffer_size_mib").as_u64().map(|m| m.saturating_mul(1024 * 1024)),
        "num_vgpus_allocated": get("num_vgpus_allocated").as_u64(),
        "max_instances_per_vm": get("max_instances_per_vm").as_u64(),
        "assignable": assignable(get("assignable")),
        "vm_uuid": text_of(&get("consumer_reference")["uuid"]),
    })
}

/// The physical GPUs of one v3 host (`status.resources.gpu_list`), each a
/// record (kind `gpus`) with its host, cluster, vendor, device, name,
/// mode, whether it can be assigned, its frame buffer, and the VMs using
/// it (`data.vms[].uuid`: their records' `resource_id`, from each entry's
/// `consumer_reference`). Entries at the same PCI address (else the same
/// `uuid`, else `index`) are one physical GPU: a GPU in vGPU mode may be
/// listed once per vGPU profile or consumer. A host without GPUs gives
/// none; an entry that is not an object is an error, the others stand.
pub fn gpus_of_host(ctx: &Context, raw: impl Into<Item>) -> Vec<Result<CloudService, String>> {
    let host = match raw.into().into_value() {
        Value::Object(v) => v,
        _ => return vec![Err("a host is not a JSON object".to_string())],
    };
    let status = host.get("status").unwrap_or(&Value::Null);
    let resources = &status["resources"];
    let entries: Vec<&Value> = bounded(&resources["gpu_list"]).collect();
    if entries.is_empty() {
        return Vec::new();
    }
    let Some(host_uuid) = host.get("metadata").and_then(|m| m.get("uuid")).and_then(text_of) else {
        return vec![Err("malformed host entity with GPUs: missing metadata.uuid".to_string())];
    };
    let host_name = text_of(&status["name"]);
    let (cluster, region) = cluster(ctx, text_of(&status["cluster_reference"]["uuid"]));
    let driver = text_of(&resources["gpu_driver_version"]);
    let mut out = Vec::new();
    // Physical GPUs in the order of their first entry.
    let mut order: Vec<String> = Vec::new();
    let mut by_address: BTreeMap<String, Vec<&Map<String, Value>>> = BTreeMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let Some(g) = entry.as_object() else {
            out.push(Err(format!("host {host_uuid}: GPU entry {i} is not a JSON object")));
            continue;
        };
        let address = g
            .get("pci_address")
            .and_then(text_of)
            .or_else(|| g.get("uuid").and_then(text_of))
            .or_else(|| g.get("index").and_then(Value::as_u64).map(|n| format!("#{n}")))
            .unwrap_or_else(|| format!("entry-{i}"));
        if !by_address.contains_key(&address) {
            order.push(address.clone());
        }
        by_address.entry(address).or_default().push(g);
    }
    for address in order {
        let group = &by_address[&address];
        let first = |k: &str| group.iter().find_map(|g| g.get(k).and_then(text_of));
        let number = |k: &str| group.iter().find_map(|g| g.get(k).and_then(Value::as_u64));
        let mut vms: Vec<Value> = Vec::new();
        for r in group.iter().filter_map(|g| g.get("consumer_reference")).filter(|r| r.is_object()) {
            let Some(uuid) = text_of(&r["uuid"]) else { continue };
            if vms.len() < MAX_LISTED && !vms.iter().any(|v| v["uuid"] == uuid.as_str()) {
                vms.push(json!({"uuid": uuid, "name": text_of(&r["name"])}));
            }
        }
        let allocated = group.iter().filter_map(|g| g.get("num_vgpus_allocated").and_then(Value::as_u64)).fold(0u64, u64::saturating_add);
        let flags: Vec<bool> = group.iter().filter_map(|g| g.get("assignable").and_then(assignable)).collect();
        let mode = first("mode");
        let gpu_name = first("name");
        let label = gpu_name.clone().or_else(|| first("vendor")).unwrap_or_else(|| "GPU".to_string());
        let name = format!("{label} ({} {address})", host_name.as_deref().unwrap_or(&host_uuid));
        let data = json!({
            "uuid": first("uuid"),
            "name": gpu_name,
            "vendor": first("vendor"),
            "device_id": number("device_id"),
            "mode": mode,
            "pci_address": first("pci_address"),
            "index": number("index"),
            "numa_node": number("numa_node"),
            "status": first("status"),
            // Any entry free to assign (none said: unknown).
            "assignable": if flags.is_empty() { Value::Null } else { json!(flags.iter().any(|f| *f)) },
            "in_use": !vms.is_empty() || allocated > 0,
            "frame_buffer_size_bytes": number("frame_buffer_size_mib").map(|m| m.saturating_mul(1024 * 1024)),
            "num_vgpus_allocated": allocated,
            "guest_driver_version": first("guest_driver_version"),
            "driver_version": driver,
            "vms": vms,
            "vm_count": vms.len(),
            "profiles": group.iter().map(|g| gpu_entry(g)).collect::<Vec<_>>(),
            "host": {"uuid": host_uuid, "name": host_name},
            "cluster": cluster,
        });
        let mut cs = service(ctx, Kind::Gpu, name, format!("{host_uuid}:gpu:{address}"), region.clone(), data);
        cs.external_link = Some(normalize::link(ctx, Kind::Host, &host_uuid));
        cs.instance_type = mode;
        out.push(Ok(cs));
    }
    out
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

    fn gpu_host() -> Value {
        json!({
            "metadata": {"uuid": "h-1"},
            "status": {"name": "node-1", "cluster_reference": {"kind": "cluster", "uuid": "c-1"}, "resources": {
                "gpu_driver_version": "535.104",
                "gpu_list": [
                    {"name": "NVIDIA A100", "vendor": "kNvidia", "device_id": 8373, "mode": "PASSTHROUGH_COMPUTE", "pci_address": "0000:3b:00.0",
                     "assignable": false, "frame_buffer_size_mib": 81920, "numa_node": 0, "status": "UVM.Assigned", "index": 0,
                     "consumer_reference": {"kind": "vm", "uuid": "vm-1", "name": "train-01"}},
                    {"name": "NVIDIA A16-4Q", "vendor": "kNvidia", "device_id": 9654, "mode": "VIRTUAL", "pci_address": "0000:86:00.0",
                     "assignable": true, "frame_buffer_size_mib": 4096, "num_vgpus_allocated": 1, "fraction": 4,
                     "consumer_reference": {"kind": "vm", "uuid": "vm-2", "name": "vdi-02"}},
                    {"name": "NVIDIA A16-4Q", "vendor": "kNvidia", "device_id": 9654, "mode": "VIRTUAL", "pci_address": "0000:86:00.0",
                     "assignable": true, "num_vgpus_allocated": 1, "consumer_reference": {"kind": "vm", "uuid": "vm-3"}},
                    {"name": "NVIDIA A16-4Q", "vendor": "kNvidia", "mode": "VIRTUAL", "pci_address": "0000:86:00.0",
                     "consumer_reference": {"kind": "vm", "uuid": "vm-2"}},
                    {"name": "NVIDIA T4", "vendor": "kNvidia", "mode": "PASSTHROUGH_GRAPHICS", "index": 3, "assignable": true},
                ]
            }}
        })
    }

    #[test]
    fn a_hosts_gpus_are_one_record_per_physical_gpu_with_host_and_vms() {
        let gpus: Vec<CloudService> = gpus_of_host(&ctx(), gpu_host()).into_iter().map(Result::unwrap).collect();
        assert_eq!(gpus.len(), 3, "two entries at one PCI address are one GPU");
        let pt = &gpus[0];
        assert_eq!((pt.resource_id.as_str(), pt.cloud_service_type.as_str()), ("h-1:gpu:0000:3b:00.0", "Gpu"));
        assert_eq!(pt.name, "NVIDIA A100 (node-1 0000:3b:00.0)");
        assert_eq!((pt.region_code.as_deref(), pt.instance_type.as_deref()), (Some("c-1"), Some("PASSTHROUGH_COMPUTE")));
        assert_eq!(pt.data["host"], json!({"uuid": "h-1", "name": "node-1"}));
        assert_eq!(pt.data["cluster"], json!({"uuid": "c-1", "name": "pe-1"}));
        assert_eq!(pt.data["vms"], json!([{"uuid": "vm-1", "name": "train-01"}]));
        assert_eq!((pt.data["assignable"].as_bool(), pt.data["in_use"].as_bool()), (Some(false), Some(true)));
        assert_eq!((pt.data["frame_buffer_size_bytes"].as_u64(), pt.data["device_id"].as_u64()), (Some(81920 << 20), Some(8373)));
        assert_eq!(pt.data["driver_version"], "535.104");
        assert!(pt.external_link.as_deref().unwrap().ends_with("/hosts/?entity_id=h-1"));
        let vgpu = &gpus[1];
        assert_eq!(vgpu.data["vms"], json!([{"uuid": "vm-2", "name": "vdi-02"}, {"uuid": "vm-3", "name": null}]), "each VM once");
        assert_eq!((vgpu.data["vm_count"].as_u64(), vgpu.data["num_vgpus_allocated"].as_u64()), (Some(2), Some(2)));
        assert_eq!(vgpu.data["profiles"].as_array().unwrap().len(), 3);
        assert_eq!(vgpu.data["mode"], "VIRTUAL");
        let idle = &gpus[2];
        assert_eq!(idle.resource_id, "h-1:gpu:#3", "no PCI address or uuid: its index");
        assert_eq!((idle.data["in_use"].as_bool(), idle.data["assignable"].as_bool(), idle.data["vms"].clone()), (Some(false), Some(true), json!([])));
    }

    #[test]
    fn hostile_hosts_give_errors_or_nothing_never_a_panic() {
        let none = json!({"metadata": {"uuid": "h-2"}, "status": {"resources": {}}});
        assert!(gpus_of_host(&ctx(), none).is_empty(), "a host without GPUs has none");
        assert!(gpus_of_host(&ctx(), json!({"status": {"resources": {"gpu_list": "x"}}})).is_empty());
        assert_eq!(gpus_of_host(&ctx(), json!([1])), vec![Err("a host is not a JSON object".to_string())]);
        let nameless = json!({"status": {"resources": {"gpu_list": [{"mode": "VIRTUAL"}]}}});
        assert_eq!(gpus_of_host(&ctx(), nameless), vec![Err("malformed host entity with GPUs: missing metadata.uuid".to_string())]);
        // Wrong types everywhere: entries that are not objects are errors,
        // fields of the wrong type are left out.
        let odd = json!({"metadata": {"uuid": "h-3"}, "status": {"name": 7, "cluster_reference": "c", "resources": {"gpu_driver_version": [1], "gpu_list": [
            "gpu", {"pci_address": 5, "uuid": "g-9", "name": {"x": 1}, "assignable": "yes", "frame_buffer_size_mib": u64::MAX, "num_vgpus_allocated": -1,
                    "consumer_reference": {"uuid": 3}}, {"consumer_reference": [1]}]}}});
        let out = gpus_of_host(&ctx(), odd);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].clone().unwrap_err(), "host h-3: GPU entry 0 is not a JSON object");
        let g = out[1].clone().unwrap();
        assert_eq!((g.resource_id.as_str(), g.name.as_str(), g.region_code.clone()), ("h-3:gpu:g-9", "GPU (h-3 g-9)", None));
        assert_eq!((g.data["assignable"].clone(), g.data["vms"].clone(), g.data["frame_buffer_size_bytes"].as_u64()), (Value::Null, json!([]), Some(u64::MAX)));
        assert_eq!(out[2].clone().unwrap().resource_id, "h-3:gpu:entry-2");
        // A host listing 10 000 entries: at most MAX_LISTED read.
        let many: Vec<Value> = (0..10_000).map(|i| json!({"pci_address": format!("0000:{i:05x}:00.0"), "consumer_reference": {"uuid": format!("vm-{i}")}})).collect();
        let big = json!({"metadata": {"uuid": "h-4"}, "status": {"resources": {"gpu_list": many}}});
        assert_eq!(gpus_of_host(&ctx(), big).len(), MAX_LISTED);
        let shared: Vec<Value> = (0..10_000).map(|i| json!({"pci_address": "0000:86:00.0", "consumer_reference": {"uuid": format!("vm-{i}")}})).collect();
        let one = gpus_of_host(&ctx(), json!({"metadata": {"uuid": "h-5"}, "status": {"resources": {"gpu_list": shared}}}));
        let g = one[0].clone().unwrap();
        assert!(g.data["vms"].as_array().unwrap().len() <= MAX_LISTED && g.data["profiles"].as_array().unwrap().len() <= MAX_LISTED);
    }

    #[test]
    fn a_templates_versions_newest_first_with_their_vm_specs() {
        let mut cs = vm_template(&ctx(), json!({"extId": "t-1", "templateName": "ubuntu"})).unwrap();
        assert_eq!((cs.data["versions"].clone(), cs.data["version_count"].clone()), (Value::Null, Value::Null), "not read: unknown");
        let versions = [
            json!({"extId": "tv-1", "versionName": "v1", "createTime": "2024-01-01T00:00:00Z", "isActiveVersion": false,
                   "vmSpec": {"numSockets": 1, "numCoresPerSocket": 2, "memorySizeBytes": 1024, "disks": [{}]}}),
            json!({"extId": "tv-2", "versionName": "v2", "versionDescription": "patched", "createTime": "2024-03-01T00:00:00Z", "isActiveVersion": true,
                   "createdBy": {"username": "ops"}}),
            json!("hostile"),
            json!({"versionName": 5, "createTime": ["x"]}),
        ];
        with_versions(&mut cs, &versions, Some(12));
        let listed = cs.data["versions"].as_array().unwrap();
        assert_eq!(listed.len(), 3, "the non-object left out");
        assert_eq!((listed[0]["uuid"].as_str(), listed[0]["is_active"].as_bool(), listed[0]["created_by"].as_str()), (Some("tv-2"), Some(true), Some("ops")));
        assert_eq!((listed[1]["uuid"].as_str(), listed[1]["vm_spec"]["vcpus"].as_u64()), (Some("tv-1"), Some(2)));
        assert_eq!((listed[2]["name"].clone(), listed[2]["vm_spec"].clone()), (Value::Null, Value::Null));
        assert_eq!(cs.data["version_count"], 12, "Prism's total");
        let many: Vec<Value> = (0..500).map(|i| json!({"extId": format!("v-{i}")})).collect();
        with_versions(&mut cs, &many, None);
        assert_eq!((cs.data["versions"].as_array().unwrap().len(), cs.data["version_count"].as_u64()), (MAX_LISTED, Some(500)), "all counted, MAX_LISTED kept");
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
