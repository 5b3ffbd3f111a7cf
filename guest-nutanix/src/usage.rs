//! VM usage from Prism Central's v3 groups API (`POST /api/nutanix/v3/groups`,
//! entity type `mh_vm`): one paged call for all VMs instead of one stats call
//! per VM. With option `usage`, the collector reads it before listing VMs and
//! puts each VM's latest values into its `data.usage`; it also emits the
//! inventory `Namespace` and `Metric` records that let CloudForet's metric
//! explorer aggregate them.
//!
//! Values come as strings in `group_results[].entity_results[].data[]`
//! (`{"name": attribute, "values": [{"values": ["123"], "time": µs}]}`); a
//! missing or unparsable value is left out, never guessed.

use crate::record::{Metric, Namespace};
use crate::PROVIDER;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Groups API attribute → key in `data.usage` and the scale to apply
/// (parts per million → percent).
pub const ATTRIBUTES: &[(&str, &str, f64)] = &[
    ("hypervisor_cpu_usage_ppm", "cpu_percent", 1e-4),
    ("memory_usage_ppm", "memory_percent", 1e-4),
    ("controller_num_iops", "disk_iops", 1.0),
    ("controller_io_bandwidth_kBps", "disk_kbps", 1.0),
];

pub const GROUPS_PATH: &str = "/api/nutanix/v3/groups";

/// The request body of one page.
pub fn request(offset: u64, length: u32) -> Value {
    json!({
        "entity_type": "mh_vm",
        "group_member_attributes": ATTRIBUTES.iter().map(|(a, _, _)| json!({"attribute": a})).collect::<Vec<_>>(),
        "group_member_count": length,
        "group_member_offset": offset,
        "group_member_sort_attribute": "vm_name",
    })
}

/// One page: (total entities, VM uuid → usage object).
pub fn parse_page(v: &Value) -> Result<(u64, BTreeMap<String, Value>), String> {
    let total = v.get("total_entity_count").and_then(Value::as_u64).ok_or("the groups answer has no total_entity_count")?;
    let mut out = BTreeMap::new();
    let entities = v.pointer("/group_results/0/entity_results").and_then(Value::as_array).into_iter().flatten();
    for e in entities {
        let Some(id) = e.get("entity_id").and_then(Value::as_str) else { continue };
        let mut usage = Map::new();
        for d in e.get("data").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = d.get("name").and_then(Value::as_str) else { continue };
            let Some((_, key, scale)) = ATTRIBUTES.iter().find(|(a, _, _)| *a == name) else { continue };
            let latest = d.pointer("/values/0/values/0").and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_f64().map(|f| f.to_string())));
            if let Some(n) = latest.and_then(|s| s.parse::<f64>().ok()).filter(|n| n.is_finite()) {
                usage.insert((*key).to_string(), json!(n * scale));
            }
        }
        out.insert(id.to_string(), Value::Object(usage));
    }
    Ok((total, out))
}

pub const NAMESPACE_ID: &str = "ns-nutanix-vm-usage";

/// The Namespace and Metric records of VM usage (CloudForet's metric
/// explorer: each metric aggregates `data.usage.*` of the VMs).
pub fn definitions() -> (Namespace, Vec<Metric>) {
    let ns = Namespace {
        namespace_id: NAMESPACE_ID.into(),
        name: "VM Usage".into(),
        category: "ASSET".into(),
        resource_type: "inventory.CloudService:nutanix.Compute.VirtualMachine".into(),
        group: "Compute".into(),
        provider: PROVIDER.into(),
        icon: None,
        tags: Vec::new(),
    };
    let group_by = json!([
        {"key": "region_code", "name": "Cluster", "reference": {"resource_type": "inventory.Region", "reference_key": "region_code"}},
        {"key": "account", "name": "Prism Central"},
        {"key": "data.power_state", "name": "Power State"},
    ]);
    let metric = |id: &str, name: &str, key: &str, operator: &str, unit: &str| Metric {
        metric_id: format!("metric-nutanix-vm-{id}"),
        name: name.into(),
        gauge: true,
        resource_type: ns.resource_type.clone(),
        namespace_id: NAMESPACE_ID.into(),
        provider: PROVIDER.into(),
        unit: json!({"x": unit}),
        query_options: json!({"group_by": group_by, "fields": {"value": {"key": key, "operator": operator}}}),
        tags: Vec::new(),
    };
    let metrics = vec![
        metric("count", "VM Count", "", "count", "Count"),
        metric("cpu-percent", "CPU Usage (avg)", "data.usage.cpu_percent", "average", "Percent"),
        metric("memory-percent", "Memory Usage (avg)", "data.usage.memory_percent", "average", "Percent"),
        metric("disk-iops", "Disk IOPS (sum)", "data.usage.disk_iops", "sum", "Count/Second"),
        metric("vcpus", "vCPUs (sum)", "data.vcpus", "sum", "Count"),
    ];
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
        let (total, m) = parse_page(&body).unwrap();
        assert_eq!(total, 3);
        assert_eq!(m["vm-1"], json!({"cpu_percent": 12.5, "memory_percent": 50.0, "disk_iops": 42.0}));
        assert_eq!(m["vm-2"], json!({}), "no value is left out, not guessed");
        assert!(parse_page(&json!({"group_results": []})).unwrap_err().contains("total_entity_count"));
        assert_eq!(request(500, 250)["group_member_offset"], 500);
    }

    #[test]
    fn definitions_point_at_the_usage_fields() {
        let (ns, metrics) = definitions();
        assert_eq!(ns.namespace_id, NAMESPACE_ID);
        assert!(metrics.iter().all(|m| m.namespace_id == ns.namespace_id && m.resource_type == ns.resource_type));
        let cpu = metrics.iter().find(|m| m.name.starts_with("CPU")).unwrap();
        assert_eq!(cpu.query_options["fields"]["value"], json!({"key": "data.usage.cpu_percent", "operator": "average"}));
        for (_, key, _) in ATTRIBUTES.iter().take(3) {
            assert!(metrics.iter().any(|m| m.query_options["fields"]["value"]["key"] == format!("data.usage.{key}")), "{key}");
        }
    }
}
