//! Usage of VMs, hosts and clusters from Prism Central's v3 groups API
//! (`POST /api/nutanix/v3/groups`, entity types `mh_vm`, `host`, `cluster`):
//! one paged call per kind instead of one stats call per entity. With option
//! `usage`, the collector reads it for each requested kind of the three
//! before listing, and puts each entity's latest values into its
//! `data.usage`. It also emits, per kind, the inventory `Namespace` and
//! `Metric` records that let CloudForet's metric explorer aggregate them.
//!
//! Values come as strings in `group_results[].entity_results[].data[]`
//! (`{"name": attribute, "values": [{"values": ["123"], "time": µs}]}`); a
//! missing or unparsable value is left out, never guessed.

use crate::normalize::group_and_type;
use crate::record::{Metric, Namespace};
use crate::v3::Kind;
use crate::PROVIDER;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A groups API attribute, its key in `data.usage`, and the scale to apply
/// (parts per million → percent).
pub type Attribute = (&'static str, &'static str, f64);

const CPU: Attribute = ("hypervisor_cpu_usage_ppm", "cpu_percent", 1e-4);
const DISK_IOPS: Attribute = ("controller_num_iops", "disk_iops", 1.0);
const DISK_KBPS: Attribute = ("controller_io_bandwidth_kBps", "disk_kbps", 1.0);
const NET_IN: Attribute = ("hypervisor_num_received_bytes", "network_received_bytes", 1.0);
const NET_OUT: Attribute = ("hypervisor_num_transmitted_bytes", "network_transmitted_bytes", 1.0);

/// A VM's memory is its guest's (`memory_usage_ppm`); a host's or cluster's
/// the hypervisor's.
pub const VM_ATTRIBUTES: &[Attribute] = &[CPU, ("memory_usage_ppm", "memory_percent", 1e-4), DISK_IOPS, DISK_KBPS, NET_IN, NET_OUT];
pub const HOST_ATTRIBUTES: &[Attribute] = &[CPU, ("hypervisor_memory_usage_ppm", "memory_percent", 1e-4), DISK_IOPS, DISK_KBPS, NET_IN, NET_OUT];

/// The kinds with usage, in the order they are read.
pub const KINDS: [Kind; 3] = [Kind::Cluster, Kind::Host, Kind::Vm];

/// The groups API entity type of a kind with usage.
pub fn entity_type(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Vm => Some("mh_vm"),
        Kind::Host => Some("host"),
        Kind::Cluster => Some("cluster"),
        _ => None,
    }
}

pub fn attributes(kind: Kind) -> &'static [Attribute] {
    if kind == Kind::Vm { VM_ATTRIBUTES } else { HOST_ATTRIBUTES }
}

pub const GROUPS_PATH: &str = "/api/nutanix/v3/groups";

/// The request body of one page of `kind`'s usage (VMs, hosts or clusters).
pub fn request(kind: Kind, offset: u64, length: u32) -> Value {
    groups_request(kind, attributes(kind).iter().map(|(a, _, _)| *a), offset, length)
}

/// One page of a groups query for `attributes` of every entity of `kind`;
/// VMs are sorted by name, so their pages are stable.
pub fn groups_request<'a>(kind: Kind, attributes: impl IntoIterator<Item = &'a str>, offset: u64, length: u32) -> Value {
    let mut body = json!({
        "entity_type": entity_type(kind).unwrap_or("mh_vm"),
        "group_member_attributes": attributes.into_iter().map(|a| json!({"attribute": a})).collect::<Vec<_>>(),
        "group_member_count": length,
        "group_member_offset": offset,
    });
    if kind == Kind::Vm {
        body["group_member_sort_attribute"] = json!("vm_name");
    }
    body
}

/// One page: (total entities, entity uuid → usage object).
pub fn parse_page(kind: Kind, v: &Value) -> Result<(u64, BTreeMap<String, Value>), String> {
    let total = v.get("total_entity_count").and_then(Value::as_u64).ok_or("the groups answer has no total_entity_count")?;
    let attributes = attributes(kind);
    let mut out = BTreeMap::new();
    let entities = v.pointer("/group_results/0/entity_results").and_then(Value::as_array).into_iter().flatten();
    for e in entities {
        let Some(id) = e.get("entity_id").and_then(Value::as_str) else { continue };
        let mut usage = Map::new();
        for d in e.get("data").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = d.get("name").and_then(Value::as_str) else { continue };
            let Some((_, key, scale)) = attributes.iter().find(|(a, _, _)| *a == name) else { continue };
            let latest = d.pointer("/values/0/values/0").and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_f64().map(|f| f.to_string())));
            if let Some(n) = latest.and_then(|s| s.parse::<f64>().ok()).filter(|n| n.is_finite()) {
                usage.insert((*key).to_string(), json!(n * scale));
            }
        }
        out.insert(id.to_string(), Value::Object(usage));
    }
    Ok((total, out))
}

/// The VM usage namespace (the first; hosts and clusters have their own).
pub const NAMESPACE_ID: &str = "ns-nutanix-vm-usage";

/// The Namespace and Metric records of one kind's usage (CloudForet's
/// metric explorer: each metric aggregates `data.usage.*` of that kind).
pub fn definitions(kind: Kind) -> (Namespace, Vec<Metric>) {
    let (group, ty) = group_and_type(kind);
    let (slug, label) = match kind {
        Kind::Vm => ("vm", "VM"),
        Kind::Host => ("host", "Host"),
        _ => ("cluster", "Cluster"),
    };
    let ns = Namespace {
        namespace_id: format!("ns-nutanix-{slug}-usage"),
        name: format!("{label} Usage"),
        category: "ASSET".into(),
        resource_type: format!("inventory.CloudService:nutanix.{group}.{ty}"),
        group: group.into(),
        provider: PROVIDER.into(),
        icon: None,
        tags: Vec::new(),
    };
    let mut group_by = vec![json!({"key": "account", "name": "Prism Central"})];
    if kind != Kind::Cluster {
        group_by.insert(0, json!({"key": "region_code", "name": "Cluster", "reference": {"resource_type": "inventory.Region", "reference_key": "region_code"}}));
    }
    if kind == Kind::Vm {
        group_by.push(json!({"key": "data.power_state", "name": "Power State"}));
    }
    let metric = |id: &str, name: String, key: &str, operator: &str, unit: &str| Metric {
        metric_id: format!("metric-nutanix-{slug}-{id}"),
        name,
        gauge: true,
        resource_type: ns.resource_type.clone(),
        namespace_id: ns.namespace_id.clone(),
        provider: PROVIDER.into(),
        // CloudForet's unit is a string (`Metric.unit` is a StringField).
        unit: json!(unit),
        query_options: json!({"group_by": group_by, "fields": {"value": {"key": key, "operator": operator}}}),
        tags: Vec::new(),
    };
    let mut metrics = vec![
        metric("count", format!("{label} Count"), "", "count", "Count"),
        metric("cpu-percent", "CPU Usage (avg)".into(), "data.usage.cpu_percent", "average", "Percent"),
        metric("memory-percent", "Memory Usage (avg)".into(), "data.usage.memory_percent", "average", "Percent"),
        metric("disk-iops", "Disk IOPS (sum)".into(), "data.usage.disk_iops", "sum", "Count/Second"),
        metric("network-received", "Network Received (sum)".into(), "data.usage.network_received_bytes", "sum", "Bytes"),
    ];
    if kind == Kind::Vm {
        metrics.push(metric("vcpus", "vCPUs (sum)".into(), "data.vcpus", "sum", "Count"));
    }
    (ns, metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_give_each_vms_latest_values_scaled() {
        let body = json!({"total_entity_count": 3, "group_results": [{"entity_results": [
            {"entity_id": "vm-1", "data": [
                {"name": "hypervisor_cpu_usage_ppm", "values": [{"values": ["125000"], "time": 1}]},
                {"name": "memory_usage_ppm", "values": [{"values": ["500000"], "time": 1}]},
                {"name": "controller_num_iops", "values": [{"values": ["42"], "time": 1}]},
                {"name": "unknown_attr", "values": [{"values": ["1"], "time": 1}]}]},
            {"entity_id": "vm-2", "data": [{"name": "hypervisor_cpu_usage_ppm", "values": []},
                                           {"name": "memory_usage_ppm", "values": [{"values": ["NaN"]}]}]}]}]});
        let (total, m) = parse_page(Kind::Vm, &body).unwrap();
        assert_eq!(total, 3);
        assert_eq!(m["vm-1"], json!({"cpu_percent": 12.5, "memory_percent": 50.0, "disk_iops": 42.0}));
        assert_eq!(m["vm-2"], json!({}), "no value is left out, not guessed");
        assert!(parse_page(Kind::Vm, &json!({"group_results": []})).unwrap_err().contains("total_entity_count"));
        assert_eq!(request(Kind::Vm, 500, 250)["group_member_offset"], 500);
        // A host's memory is the hypervisor's; the VM attribute means nothing there.
        let host = json!({"total_entity_count": 1, "group_results": [{"entity_results": [{"entity_id": "h-1", "data": [
            {"name": "hypervisor_memory_usage_ppm", "values": [{"values": ["250000"]}]},
            {"name": "memory_usage_ppm", "values": [{"values": ["999999"]}]},
            {"name": "hypervisor_num_received_bytes", "values": [{"values": ["1024"]}]}]}]}]});
        assert_eq!(parse_page(Kind::Host, &host).unwrap().1["h-1"], json!({"memory_percent": 25.0, "network_received_bytes": 1024.0}));
        assert_eq!(request(Kind::Cluster, 0, 10)["entity_type"], "cluster");
        // VM pages are sorted by name, so paging is stable.
        assert_eq!(request(Kind::Vm, 0, 10)["group_member_sort_attribute"], "vm_name");
        assert!(request(Kind::Host, 0, 10).get("group_member_sort_attribute").is_none());
        assert_eq!(groups_request(Kind::Vm, ["vm_name"], 0, 10)["group_member_attributes"], json!([{"attribute": "vm_name"}]));
        assert_eq!(entity_type(Kind::Image), None);
    }

    #[test]
    fn definitions_point_at_the_usage_fields() {
        let (ns, metrics) = definitions(Kind::Vm);
        assert_eq!(ns.namespace_id, NAMESPACE_ID);
        assert_eq!(ns.resource_type, "inventory.CloudService:nutanix.Compute.VirtualMachine");
        assert!(metrics.iter().all(|m| m.namespace_id == ns.namespace_id && m.resource_type == ns.resource_type));
        let cpu = metrics.iter().find(|m| m.name.starts_with("CPU")).unwrap();
        assert_eq!(cpu.query_options["fields"]["value"], json!({"key": "data.usage.cpu_percent", "operator": "average"}));
        for (_, key, _) in VM_ATTRIBUTES.iter().take(3) {
            assert!(metrics.iter().any(|m| m.query_options["fields"]["value"]["key"] == format!("data.usage.{key}")), "{key}");
        }
        let mut ids = std::collections::BTreeSet::new();
        for kind in KINDS {
            let (ns, metrics) = definitions(kind);
            assert!(ids.insert(ns.namespace_id.clone()));
            assert!(metrics.iter().all(|m| ids.insert(m.metric_id.clone())), "metric ids unique across kinds");
        }
        assert_eq!(definitions(Kind::Host).0.resource_type, "inventory.CloudService:nutanix.Compute.Host");
        assert_eq!(definitions(Kind::Cluster).0.resource_type, "inventory.CloudService:nutanix.Cluster.Cluster");
        // CloudForet stores a Namespace name of at most 40 characters and a
        // Metric's unit as a string.
        for kind in KINDS {
            let (ns, metrics) = definitions(kind);
            assert!(!ns.name.is_empty() && ns.name.chars().count() <= 40, "{}", ns.name);
            assert!(metrics.iter().all(|m| m.unit.as_str().is_some_and(|u| ["Count", "Percent", "Count/Second", "Bytes"].contains(&u))), "{metrics:?}");
            assert!(metrics.iter().all(|m| m.name.chars().count() <= 80));
        }
    }
}
