//! The estate's compute extras and operations, v4 only (Prism Central has
//! no v3 list of them; the v3 lists answer 404), rendered directly in the
//! v4.0 shapes: vmm `Template`, monitoring `Alert`, lifecycle `Entity`.
//!
//! - VM template `t` (of [`TEMPLATES`]) lives on cluster `t % clusters`;
//!   its active version is `v{t + 1}`, made from VM `t`'s size, after `t`
//!   older ones (`v1` ..), a day apart ([`template_versions`], served at
//!   `content/templates/{extId}/versions`);
//! - every VM `i` with `i % 2 == 0` has an alert about it
//!   ([`ALERT_SEVERITIES`]`[i / 2 % 3]`), resolved when `i % 8 == 0`,
//!   acknowledged when `i % 8 == 2`; every host has one WARNING, open;
//!   Prism Central one INFO about itself, open, in no cluster;
//! - each cluster has AOS, AHV and NCC (software, at the cluster; NCC with
//!   an update on offer), each host BIOS and BMC firmware (at the node; BMC
//!   with an update on offer on odd hosts).
//!
//! With [`EstateConfig::gpus`] ([`attach_gpus`], v3 shapes: the v4 ones are
//! rendered from them): every even host has two NVIDIA GPUs, an A100 in
//! passthrough at `0000:3b:00.0`, used by the host's first powered-on VM on
//! hosts `h % 4 == 0` and free on the others, and an A16 in vGPU mode at
//! `0000:86:00.0`, listed once per VM using a `NVIDIA A16-4Q` profile (the
//! host's next two powered-on VMs; once, free, when it has none).

use crate::estate::{uuid, EstateConfig};
use crate::v4::format_utc;
use serde_json::{json, Value};
use std::sync::Arc;
use crate::lazy::{CategoryCounts, LazyList};

/// VM templates in the estate.
pub const TEMPLATES: usize = 4;
/// The severities VM alerts take in turn.
pub const ALERT_SEVERITIES: [&str; 3] = ["CRITICAL", "WARNING", "INFO"];

fn name(e: &Value) -> Value {
    e.pointer("/status/name").cloned().unwrap_or(Value::Null)
}

fn id(e: &Value) -> Value {
    e.pointer("/metadata/uuid").cloned().unwrap_or(Value::Null)
}

pub fn vm_templates(cfg: &EstateConfig, vms: &LazyList, now: i64) -> Vec<Value> {
    (0..TEMPLATES)
        .map(|t| {
            let r = vms.get(t).and_then(|v| v.pointer("/status/resources").cloned()).unwrap_or(Value::Null);
            let created = format_utc(now - 86_400 * (10 + t as i64));
            json!({
                "extId": uuid("template", t),
                "templateName": format!("tpl-{t:02}"),
                "templateDescription": format!("golden image {t}"),
                "createTime": created,
                "updateTime": format_utc(now - 3_600),
                "createdBy": {"username": "admin"},
                "templateVersionSpec": {
                    "extId": uuid("template-version", t),
                    "versionName": format!("v{}", t + 1),
                    "versionDescription": "current",
                    "createTime": format_utc(now - 3_600),
                    "isActiveVersion": true,
                    "vmSpec": {
                        "name": format!("tpl-{t:02}"),
                        "numSockets": r["num_sockets"],
                        "numCoresPerSocket": r["num_vcpus_per_socket"],
                        "memorySizeBytes": r["memory_size_mib"].as_u64().map(|m| m * 1024 * 1024),
                        "cluster": {"extId": uuid("cluster", t % cfg.clusters.max(1))},
                    },
                },
            })
        })
        .collect()
}

/// The versions of the template with `ext_id` (v4 `TemplateVersionSpec`s,
/// oldest first), `None` for no such template.
pub fn template_versions(templates: &[Value], ext_id: &str, now: i64) -> Option<Vec<Value>> {
    let t = templates.iter().position(|x| x["extId"] == ext_id)?;
    let active = templates[t]["templateVersionSpec"].clone();
    let mut out: Vec<Value> = (0..t)
        .map(|k| {
            let mut v = active.clone();
            v["extId"] = json!(uuid(&format!("template-{t}-version"), k));
            v["versionName"] = json!(format!("v{}", k + 1));
            v["versionDescription"] = json!(format!("superseded by v{}", k + 2));
            v["createTime"] = json!(format_utc(now - 86_400 * (t - k) as i64 - 3_600));
            v["isActiveVersion"] = json!(false);
            // An older version had one socket less (at least one).
            let sockets = v["vmSpec"]["numSockets"].as_u64().unwrap_or(1);
            v["vmSpec"]["numSockets"] = json!(sockets.saturating_sub((t - k) as u64).max(1));
            v
        })
        .collect();
    out.push(active);
    Some(out)
}

/// Physical GPUs (see the module's description) on the estate's hosts, in
/// each host's `gpu_list` and in the `gpu_list` of the VMs using them.
pub fn attach_gpus(estate: &mut crate::estate::Estate) {
    let cfg = estate.config.clone();
    let n_hosts = estate.hosts.len();
    let mut on_host: Vec<Vec<usize>> = vec![Vec::new(); n_hosts];
    for i in 0..estate.vms.len() {
        // A host's first three powered-on VMs are all that may use its GPUs.
        if let Some(h) = crate::estate::vm_facts(&cfg, i).host.filter(|h| *h < n_hosts && on_host[*h].len() < 3) {
            on_host[h].push(i);
        }
    }
    for (h, vms) in on_host.iter().enumerate().filter(|(h, _)| h % 2 == 0) {
        let host_id = uuid("host", h);
        let mut list = Vec::new();
        let pt_user = vms.first().filter(|_| h % 4 == 0).copied();
        let mut pt = json!({
            "name": "NVIDIA A100 80GB PCIe", "vendor": "NVIDIA", "device_id": 8373, "mode": "PASSTHROUGH_COMPUTE",
            "pci_address": "0000:3b:00.0", "numa_node": 0, "index": 0, "frame_buffer_size_mib": 81_920,
            "uuid": uuid(&format!("gpu-{host_id}"), 0), "assignable": pt_user.is_none(),
            "status": if pt_user.is_some() { "UVM.Assigned" } else { "UVM.Available" },
        });
        if let Some(i) = pt_user {
            let vm = estate.vms.get(i).unwrap_or(Value::Null);
            pt["consumer_reference"] = json!({"kind": "vm", "uuid": id(&vm), "name": name(&vm)});
            estate.vms.edit_at(i, |vm| give(vm, json!({"vendor": "NVIDIA", "mode": "PASSTHROUGH_COMPUTE", "device_id": 8373, "name": "NVIDIA A100 80GB PCIe",
                "uuid": uuid(&format!("vm-gpu-{i}"), 0), "pci_address": "0000:3b:00.0", "frame_buffer_size_mib": 81_920, "guest_driver_version": "535.104.05"})));
        }
        list.push(pt);
        let vgpu_users: Vec<usize> = vms.iter().skip(usize::from(pt_user.is_some())).take(2).copied().collect();
        let vgpu = |user: Option<usize>, vms: &LazyList| {
            let mut e = json!({
                "name": "NVIDIA A16-4Q", "vendor": "NVIDIA", "device_id": 9654, "mode": "VIRTUAL", "pci_address": "0000:86:00.0",
                "numa_node": 1, "index": 1, "frame_buffer_size_mib": 4_096, "fraction": 4, "num_virtual_display_heads": 4,
                "max_resolution": "5120x2880", "max_instances_per_vm": 1, "license_list": ["NVIDIA_VPC"],
                "uuid": uuid(&format!("gpu-{host_id}"), 1), "assignable": true, "num_vgpus_allocated": usize::from(user.is_some()),
                "status": "UVM.Available",
            });
            if let Some(i) = user {
                let vm = vms.get(i).unwrap_or(Value::Null);
                e["consumer_reference"] = json!({"kind": "vm", "uuid": id(&vm), "name": name(&vm)});
            }
            e
        };
        if vgpu_users.is_empty() {
            list.push(vgpu(None, &estate.vms));
        }
        for &i in &vgpu_users {
            list.push(vgpu(Some(i), &estate.vms));
            estate.vms.edit_at(i, |vm| give(vm, json!({"vendor": "NVIDIA", "mode": "VIRTUAL", "device_id": 9654, "name": "NVIDIA A16-4Q",
                "uuid": uuid(&format!("vm-gpu-{i}"), 0), "pci_address": "0000:86:00.0", "frame_buffer_size_mib": 4_096, "fraction": 4,
                "num_virtual_display_heads": 4, "guest_driver_version": "535.104.05"})));
        }
        let r = &mut estate.hosts[h]["status"]["resources"];
        r["gpu_driver_version"] = json!("535.104.06");
        r["gpu_list"] = Value::Array(list);
    }
}

/// Adds a GPU to a VM's `gpu_list` (status; the spec has the request).
fn give(vm: &mut Value, gpu: Value) {
    let r = &mut vm["status"]["resources"];
    if !r["gpu_list"].is_array() {
        r["gpu_list"] = json!([]);
    }
    if let Some(l) = r["gpu_list"].as_array_mut() {
        l.push(gpu);
    }
}

/// One alert; `state` is `OPEN`, `ACKNOWLEDGED` or `RESOLVED`, `source`
/// (type, id, name).
fn alert(i: usize, title: &str, severity: &str, state: &str, source: (&str, Value, Value), cluster: Value, created: i64) -> Value {
    let (resolved, acknowledged) = (state == "RESOLVED", state == "ACKNOWLEDGED");
    let mut a = json!({
        "extId": uuid("alert", i),
        "title": title,
        "message": format!("{title}: see the entity"),
        "alertType": format!("A{}", 1000 + i % 50),
        "severity": severity,
        "isResolved": resolved,
        "isAcknowledged": acknowledged || resolved,
        "isAutoResolved": resolved,
        "isUserDefined": false,
        "creationTime": format_utc(created),
        "lastUpdatedTime": format_utc(created + 60),
        "classifications": ["Performance"],
        "impactTypes": ["PERFORMANCE"],
        "sourceEntity": {"type": source.0, "extId": source.1, "name": source.2},
        "affectedEntities": [{"type": source.0, "extId": source.1, "name": source.2}],
        "serviceName": "health",
    });
    if !cluster.is_null() {
        a["clusterUUID"] = cluster;
    }
    if resolved {
        a["resolvedTime"] = json!(format_utc(created + 600));
        a["resolvedByUsername"] = json!("admin");
    }
    a
}

/// The alerts: one per even VM, one per host, one about Prism Central, in
/// that order; rendered on demand from the VMs' indexes (their alerts are
/// about the VMs as generated), so a million VMs hold none in memory.
pub fn alerts(cfg: &EstateConfig, hosts: &[Value], pc: &Value, now: i64) -> LazyList {
    let per_vm = cfg.vms.div_ceil(2);
    let total = per_vm + hosts.len() + 1;
    let (cfg, hosts, pc) = (cfg.clone(), hosts.to_vec(), pc.clone());
    let render = move |k: usize| {
        if k < per_vm {
            let i = 2 * k;
            let f = crate::estate::vm_facts(&cfg, i);
            let severity = ALERT_SEVERITIES[i / 2 % 3];
            let state = match i % 8 {
                0 => "RESOLVED",
                2 => "ACKNOWLEDGED",
                _ => "OPEN",
            };
            let mut a = alert(k, "VM {vm_name} CPU usage high", severity, state, ("vm", json!(f.uuid), json!(f.name)), json!(uuid("cluster", f.cluster)), now - 600 * i as i64);
            // The title's parameter, as Prism sends it.
            a["parameters"] = json!([{"paramName": "vm_name", "paramValue": {"$objectType": "monitoring.v4.common.StringValue", "stringValue": f.name}}]);
            a
        } else if let Some(h) = hosts.get(k - per_vm) {
            let cluster = h.pointer("/status/cluster_reference/uuid").cloned().unwrap_or(Value::Null);
            alert(k, "Host disk latency high", "WARNING", "OPEN", ("host", id(h), name(h)), cluster, now - 7_200)
        } else {
            alert(k, "Prism Central backup not configured", "INFO", "OPEN", ("prism_central", id(&pc), name(&pc)), Value::Null, now - 86_400)
        }
    };
    LazyList::new(total, "alert", Arc::new(render), CategoryCounts::new())
}

fn lcm(i: usize, model: &str, kind: &str, version: &str, location: (&str, &str), cluster: &str, update: Option<&str>) -> Value {
    let mut available = vec![json!({"version": version, "status": "INSTALLED", "isEnabled": true})];
    if let Some(u) = update {
        available.push(json!({"version": u, "status": "AVAILABLE", "isEnabled": true}));
    }
    json!({
        "extId": uuid("lcm-entity", i),
        "entityModel": model,
        "entityClass": model,
        "entityType": kind,
        "entityVersion": version,
        "entityDescription": format!("{model} ({kind})"),
        "locationInfo": {"uuid": location.1, "locationType": location.0},
        "clusterExtId": cluster,
        "hardwareVendor": if kind == "FIRMWARE" { json!("Nutanix") } else { Value::Null },
        "availableVersions": available,
    })
}

pub fn lcm_entities(cfg: &EstateConfig, hosts: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in 0..cfg.clusters {
        let cluster = uuid("cluster", c);
        for (model, version, update) in [("AOS", "6.8.1", None), ("AHV", "20230302.100173", None), ("NCC", "5.0.0", Some("5.1.0"))] {
            out.push(lcm(out.len(), model, "SOFTWARE", version, ("CLUSTER", &cluster), &cluster, update));
        }
    }
    for (h, host) in hosts.iter().enumerate() {
        let (host_id, cluster) = (id(host), host.pointer("/status/cluster_reference/uuid").cloned().unwrap_or(Value::Null));
        let (host_id, cluster) = (host_id.as_str().unwrap_or_default(), cluster.as_str().unwrap_or_default());
        out.push(lcm(out.len(), "BIOS", "FIRMWARE", "PB50.001", ("NODE", host_id), cluster, None));
        out.push(lcm(out.len(), "BMC", "FIRMWARE", "7.10", ("NODE", host_id), cluster, (h % 2 == 1).then_some("7.13")));
    }
    out
}
