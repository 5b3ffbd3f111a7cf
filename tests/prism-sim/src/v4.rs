//! The simulated estate as Prism Central's v4 APIs show it, rendered from the
//! same v3 entities, so a collection through v3 and one through v4 see the
//! same facts.
//!
//! Shapes follow the v4.0 APIs: camelCase fields, `extId`s, references that
//! carry only an `extId` (hosts carry `cluster{uuid, name}`), categories as
//! references to `/api/prism/v4.0/config/categories`, NICs with
//! `backingInfo`/`networkInfo`, the Prism Central pseudo-cluster with
//! `hypervisorTypes: ["$UNKNOWN"]`, powered-off VMs without `host`.
//! `$objectType` is set on the first item of a page only.

use crate::estate::{uuid, Estate};
use crate::lazy::{Entities, Source};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The v4 list endpoints and the estate list each one shows.
pub const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("/api/vmm/v4.0/ahv/config/vms", "vms", "vmm.v4.ahv.config.Vm"),
    ("/api/clustermgmt/v4.0/config/clusters", "clusters", "clustermgmt.v4.config.Cluster"),
    ("/api/clustermgmt/v4.0/config/hosts", "hosts", "clustermgmt.v4.config.Host"),
    ("/api/networking/v4.0/config/subnets", "subnets", "networking.v4.config.Subnet"),
    ("/api/vmm/v4.0/content/images", "images", "vmm.v4.content.Image"),
    ("/api/prism/v4.0/config/categories", "categories", "prism.v4.config.Category"),
    ("/api/clustermgmt/v4.0/config/storage-containers", "storage_containers", "clustermgmt.v4.config.StorageContainer"),
    ("/api/volumes/v4.0/config/volume-groups", "volume_groups", "volumes.v4.config.VolumeGroup"),
    ("/api/volumes/v4.0/config/iscsi-clients", "iscsi_clients", "volumes.v4.config.IscsiClient"),
    ("/api/datapolicies/v4.0/config/protection-policies", "protection_rules", "datapolicies.v4.config.ProtectionPolicy"),
    ("/api/dataprotection/v4.0/config/recovery-points", "vm_recovery_points", "dataprotection.v4.config.RecoveryPoint"),
    ("/api/vmm/v4.0/content/templates", "vm_templates", "vmm.v4.content.Template"),
    ("/api/monitoring/v4.0/serviceability/alerts", "alerts", "monitoring.v4.serviceability.Alert"),
    ("/api/lifecycle/v4.0/resources/entities", "lcm_entities", "lifecycle.v4.resources.Entity"),
];

/// The iSCSI clients attached to volume groups: (extId, initiator name).
pub fn iscsi_clients(estate: &Estate) -> Vec<(String, String)> {
    let mut names: Vec<String> = estate
        .volume_groups
        .iter()
        .flat_map(|vg| vg.pointer("/status/resources/attachment_list").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|a| a["iscsi_initiator_name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| (iscsi_client_id(&n), n)).collect()
}

/// The extId of the iSCSI client with this initiator name.
pub fn iscsi_client_id(name: &str) -> String {
    uuid(&format!("iscsi-client-{name}"), 0)
}

/// A v4 volume group (volumes API): disks and attachments are
/// sub-resources ([`volume_group_part`]), not in the item.
pub fn volume_group(v3: &Value) -> Value {
    let r = s(v3, "/status/resources");
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "description": s(v3, "/status/description"),
        "clusterReference": s(v3, "/status/cluster_reference/uuid"),
        "sharingStatus": r["sharing_status"],
        "targetPrefix": r["iscsi_target_prefix"],
        "storageFeatures": {"flashMode": {"isEnabled": r["flash_mode"] == "ENABLED"}},
        "usageType": "USER",
    }))
}

/// A volume group's `disks`, `vm-attachments` or
/// `external-iscsi-attachments` (v4 items); `None` for another part.
pub fn volume_group_part(v3: &Value, part: &str) -> Option<Vec<Value>> {
    let r = s(v3, "/status/resources");
    let vg = s(v3, "/metadata/uuid");
    let vg = vg.as_str().unwrap_or_default();
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    Some(match part {
        "disks" => list("disk_list")
            .iter()
            .map(|d| {
                json!({"extId": crate::estate::uuid(&format!("{vg}-disk"), d["index"].as_u64().unwrap_or(0) as usize), "index": d["index"],
                       "diskSizeBytes": d["disk_size_mib"].as_u64().map(|m| m * 1024 * 1024), "storageContainerId": d["storage_container_uuid"]})
            })
            .collect(),
        "vm-attachments" => list("attachment_list")
            .iter()
            .filter(|a| a["vm_reference"].is_object())
            .enumerate()
            .map(|(i, a)| json!({"extId": a["vm_reference"]["uuid"], "index": i}))
            .collect(),
        // An external attachment names the iSCSI client (its initiator is
        // in the client list), as `volumes.v4.config.IscsiClientAttachment`.
        "external-iscsi-attachments" => list("attachment_list")
            .iter()
            .filter_map(|a| a["iscsi_initiator_name"].as_str())
            .map(|name| json!({"extId": iscsi_client_id(name), "clusterReference": s(v3, "/status/cluster_reference/uuid")}))
            .collect(),
        _ => return None,
    })
}

/// Every category key/value pair used in the estate, with its extId.
pub fn categories(estate: &Estate) -> Vec<(String, String, String)> {
    estate.category_pairs().into_iter().enumerate().map(|(i, (k, v))| (uuid("category", i), k, v)).collect()
}

fn s(v: &Value, p: &str) -> Value {
    v.pointer(p).cloned().unwrap_or(Value::Null)
}

fn ip(v: Value) -> Value {
    if v.is_null() { v } else { json!({"ipv4": {"value": v}}) }
}

/// Drops null fields (v4 omits what is not set).
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, compact(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

pub fn vm(v3: &Value, category_ids: &BTreeMap<(String, String), String>) -> Value {
    let r = s(v3, "/status/resources");
    let drives = r["disk_list"].as_array().cloned().unwrap_or_default();
    let is_cdrom = |d: &Value| d.pointer("/device_properties/device_type").and_then(Value::as_str) == Some("CDROM");
    let cd_roms: Vec<Value> = drives
        .iter()
        .filter(|d| is_cdrom(d))
        .map(|d| {
            let media = d["data_source_reference"].is_object().then(|| {
                json!({"diskSizeBytes": d["disk_size_bytes"],
                       "dataSource": {"reference": {"$objectType": "vmm.v4.ahv.config.ImageReference", "imageExtId": s(d, "/data_source_reference/uuid")}}})
            });
            json!({
                "extId": d["uuid"],
                "diskAddress": {"busType": s(d, "/device_properties/disk_address/adapter_type"), "index": s(d, "/device_properties/disk_address/device_index")},
                "backingInfo": media,
                "isoType": if media.is_some() { json!("OTHER") } else { Value::Null },
            })
        })
        .collect();
    let disks: Vec<Value> = drives
        .iter()
        .filter(|d| !is_cdrom(d))
        .map(|d| {
            json!({
                "extId": d["uuid"],
                "diskAddress": {"busType": s(d, "/device_properties/disk_address/adapter_type"), "index": s(d, "/device_properties/disk_address/device_index")},
                "backingInfo": {
                    "$objectType": "vmm.v4.ahv.config.VmDisk",
                    "diskSizeBytes": d["disk_size_bytes"],
                    "storageContainer": {"extId": s(d, "/storage_config/storage_container_reference/uuid")},
                    "dataSource": if d["data_source_reference"].is_object() {
                        json!({"reference": {"$objectType": "vmm.v4.ahv.config.ImageReference", "imageExtId": s(d, "/data_source_reference/uuid")}})
                    } else { Value::Null },
                }
            })
        })
        .collect();
    let nics: Vec<Value> = r["nic_list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let endpoints = n["ip_endpoint_list"].as_array().cloned().unwrap_or_default();
            let of_type = |t: &str| endpoints.iter().filter(|e| e["type"] == t).map(|e| e["ip"].clone()).collect::<Vec<Value>>();
            let ip = of_type("ASSIGNED").first().cloned().unwrap_or(Value::Null);
            let learned: Vec<Value> = of_type("LEARNED").into_iter().map(|ip| json!({"value": ip, "prefixLength": 32})).collect();
            json!({
                "extId": n["uuid"],
                "backingInfo": {"macAddress": n["mac_address"], "isConnected": n["is_connected"], "model": "VIRTIO"},
                "networkInfo": {
                    "nicType": n["nic_type"],
                    "subnet": {"extId": s(n, "/subnet_reference/uuid")},
                    "ipv4Config": if ip.is_null() { Value::Null } else { json!({"ipAddress": {"value": ip}}) },
                    "ipv4Info": if learned.is_empty() { Value::Null } else { json!({"learnedIpAddresses": learned}) },
                }
            })
        })
        .collect();
    let categories: Vec<Value> = match v3.pointer("/metadata/categories") {
        Some(Value::Object(c)) => c
            .iter()
            .filter_map(|(k, v)| category_ids.get(&(k.clone(), v.as_str().unwrap_or_default().to_string())))
            .map(|id| json!({"extId": id}))
            .collect(),
        _ => Vec::new(),
    };
    let boot = match r.pointer("/boot_config/boot_type").and_then(Value::as_str) {
        Some("UEFI") => "vmm.v4.ahv.config.UefiBoot",
        _ => "vmm.v4.ahv.config.LegacyBoot",
    };
    let memory_bytes = r["memory_size_mib"].as_u64().map(|m| m * 1024 * 1024);
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "description": s(v3, "/status/description"),
        "createTime": s(v3, "/metadata/creation_time"),
        "updateTime": s(v3, "/metadata/last_update_time"),
        "numSockets": r["num_sockets"],
        "numCoresPerSocket": r["num_vcpus_per_socket"],
        "numThreadsPerCore": r["num_threads_per_core"],
        "memorySizeBytes": memory_bytes,
        "powerState": r["power_state"],
        "machineType": r["machine_type"],
        "cluster": {"extId": s(v3, "/status/cluster_reference/uuid")},
        "host": if r["host_reference"].is_object() { json!({"extId": s(&r, "/host_reference/uuid")}) } else { Value::Null },
        "categories": if categories.is_empty() { Value::Null } else { Value::Array(categories) },
        "disks": disks,
        "cdRoms": if cd_roms.is_empty() { Value::Null } else { Value::Array(cd_roms) },
        "nics": nics,
        "bootConfig": {"$objectType": boot},
        "gpus": gpus(&r),
        "guestTools": if r["guest_tools"].is_object() { json!({"isEnabled": true, "version": s(&r, "/guest_tools/nutanix_guest_tools/version")}) } else { Value::Null },
        "ownershipInfo": {"owner": {"extId": s(v3, "/metadata/owner_reference/uuid")}},
    }))
}

/// A VM's GPUs (`vmm.v4.ahv.config.Gpu`), none when it has none.
fn gpus(r: &Value) -> Value {
    let Some(list) = r["gpu_list"].as_array().filter(|l| !l.is_empty()) else { return Value::Null };
    // `0000:3b:00.0` → SBDF.
    let sbdf = |a: &str| {
        let n: Vec<u64> = a.split([':', '.']).filter_map(|p| u64::from_str_radix(p, 16).ok()).collect();
        (n.len() == 4).then(|| json!({"segment": n[0], "bus": n[1], "device": n[2], "func": n[3]}))
    };
    Value::Array(
        list.iter()
            .map(|g| {
                json!({
                    "extId": g["uuid"],
                    "mode": g["mode"],
                    "vendor": g["vendor"],
                    "deviceId": g["device_id"],
                    "name": g["name"],
                    "pciAddress": g["pci_address"].as_str().and_then(sbdf),
                    "frameBufferSizeBytes": g["frame_buffer_size_mib"].as_u64().map(|m| m * 1024 * 1024),
                    "guestDriverVersion": g["guest_driver_version"],
                    "numVirtualDisplayHeads": g["num_virtual_display_heads"],
                    "fraction": g["fraction"],
                })
            })
            .collect(),
    )
}

pub fn cluster(v3: &Value) -> Value {
    let r = s(v3, "/status/resources");
    let servers = r.pointer("/nodes/hypervisor_server_list").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut types: Vec<Value> = servers.iter().map(|h| h["type"].clone()).collect();
    types.dedup();
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "config": {
            "clusterFunction": s(&r, "/config/service_list"),
            "buildInfo": {"version": s(&r, "/config/build/version"), "fullVersion": s(&r, "/config/build/full_version")},
            "hypervisorTypes": types,
            "clusterArch": s(&r, "/config/cluster_arch"),
            "redundancyFactor": s(&r, "/config/redundancy_factor"),
            "timezone": s(&r, "/config/timezone"),
            "encryptionInTransitStatus": s(&r, "/config/encryption_status"),
        },
        "network": {
            "externalAddress": ip(s(&r, "/network/external_ip")),
            "nameServerIpList": r.pointer("/network/name_server_ip_list").and_then(Value::as_array).map(|l| l.iter().cloned().map(ip).collect::<Vec<_>>()),
            "ntpServerIpList": r.pointer("/network/ntp_server_ip_list").and_then(Value::as_array).map(|l| l.iter().map(|v| json!({"fqdn": {"value": v}})).collect::<Vec<_>>()),
        },
        "nodes": {
            "numberOfNodes": servers.len(),
            "nodeList": servers.iter().map(|h| json!({"hostIp": ip(h["ip"].clone())})).collect::<Vec<_>>(),
        },
    }))
}

pub fn host(v3: &Value, cluster_names: &BTreeMap<String, String>) -> Value {
    let r = s(v3, "/status/resources");
    let cluster_uuid = s(v3, "/status/cluster_reference/uuid");
    let cluster_name = cluster_uuid.as_str().and_then(|u| cluster_names.get(u)).cloned();
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "hostName": s(v3, "/status/name"),
        "hostType": r["host_type"],
        "cluster": {"uuid": cluster_uuid, "name": cluster_name},
        "cpuModel": r["cpu_model"],
        "numberOfCpuSockets": r["num_cpu_sockets"],
        "numberOfCpuCores": r["num_cpu_cores"],
        "cpuCapacityHz": r["cpu_capacity_hz"],
        // v4 only (v3 hosts carry no frequency): 2 GHz, as the model name says.
        "cpuFrequencyHz": 2_000_000_000u64,
        "memorySizeBytes": r["memory_capacity_mib"].as_u64().map(|m| m * 1024 * 1024),
        "hypervisor": {
            "externalAddress": ip(s(&r, "/hypervisor/ip")),
            "fullName": s(&r, "/hypervisor/hypervisor_full_name"),
            "numberOfVms": s(&r, "/hypervisor/num_vms"),
        },
        "controllerVm": {"externalAddress": ip(s(&r, "/controller_vm/ip"))},
        // Names only: clustermgmt v4.0 hosts carry no GPU's address, mode
        // or consumer.
        "gpuDriverVersion": r["gpu_driver_version"],
        "gpuList": r["gpu_list"].as_array().map(|l| l.iter().map(|g| g["name"].clone()).collect::<Vec<_>>()),
        "blockSerial": s(&r, "/block/block_serial_number"),
        "blockModel": s(&r, "/block/block_model"),
    }))
}

pub fn subnet(v3: &Value) -> Value {
    let r = s(v3, "/status/resources");
    let ip_config = r.get("ip_config").filter(|c| c.is_object()).map(|c| {
        let pools: Vec<Value> = c["pool_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["range"].as_str())
            .filter_map(|range| range.split_once(' '))
            .map(|(a, b)| json!({"startIp": {"value": a}, "endIp": {"value": b}}))
            .collect();
        json!([{"ipv4": {
            "ipSubnet": {"ip": {"value": c["subnet_ip"]}, "prefixLength": c["prefix_length"]},
            "defaultGatewayIp": {"value": c["default_gateway_ip"]},
            "poolList": pools,
        }}])
    });
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "subnetType": r["subnet_type"],
        "networkId": r["vlan_id"],
        "bridgeName": r["vswitch_name"],
        "clusterReference": s(v3, "/status/cluster_reference/uuid"),
        "vpcReference": s(v3, "/status/resources/vpc_reference/uuid"),
        "ipConfig": ip_config,
    }))
}

pub fn image(v3: &Value) -> Value {
    let r = s(v3, "/status/resources");
    let clusters: Vec<Value> = r["current_cluster_reference_list"].as_array().into_iter().flatten().map(|c| c["uuid"].clone()).collect();
    compact(json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "description": s(v3, "/status/description"),
        "type": r["image_type"],
        "sizeBytes": r["size_bytes"],
        "source": {"$objectType": "vmm.v4.content.UrlSource", "url": r["source_uri"]},
        "clusterLocationExtIds": if clusters.is_empty() { Value::Null } else { Value::Array(clusters) },
        "createTime": s(v3, "/metadata/creation_time"),
    }))
}

/// What a v4 list call asks beyond paging: the simulator understands
/// `$filter=updateTime gt T` (or `ge`) and `$select=extId` on the VM list.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    /// (seconds since the epoch, inclusive)
    pub updated_since: Option<(i64, bool)>,
    pub ext_id_only: bool,
    /// Only the first N entities exist (fault `cut_lists`).
    pub cut: Option<usize>,
}

impl ListQuery {
    pub fn parse(list: &str, filter: Option<&str>, select: Option<&str>) -> Result<ListQuery, String> {
        let mut q = ListQuery::default();
        if let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) {
            let words: Vec<&str> = f.split_whitespace().collect();
            match (list, words.as_slice()) {
                ("vms", ["updateTime", op @ ("gt" | "ge"), at]) => {
                    let t = parse_utc(at).ok_or_else(|| format!("$filter time '{at}' is not YYYY-MM-DDTHH:MM:SSZ"))?;
                    q.updated_since = Some((t, *op == "ge"));
                }
                _ => return Err(format!("unsupported $filter '{f}' on {list}")),
            }
        }
        match select.map(str::trim).filter(|s| !s.is_empty()) {
            None => {}
            Some("extId") if list == "vms" => q.ext_id_only = true,
            Some(s) => return Err(format!("unsupported $select '{s}' on {list}")),
        }
        Ok(q)
    }
}

/// One page of a v4 list: `{data, metadata}` with `$objectType` on the first item.
pub fn page(estate: &Estate, list: &str, object_type: &str, page: u64, limit: u64, q: &ListQuery) -> Value {
    let filtered: Vec<Value>;
    let listed = estate.list(list).unwrap_or(Entities::Stored(&[]));
    let all = match q.updated_since {
        Some(since) => {
            filtered = listed.iter().filter(|e| crate::updated_since(e, since)).collect();
            Entities::Stored(&filtered)
        }
        None => listed,
    };
    let all_len = q.cut.map_or(all.len(), |n| n.min(all.len()));
    let items: Vec<Value> = match list {
        "categories" => categories(estate)
            .into_iter()
            .map(|(id, k, v)| json!({"extId": id, "key": k, "value": v, "description": format!("{k} {v}"), "type": "USER"}))
            .collect(),
        "iscsi_clients" => iscsi_clients(estate).into_iter().map(|(id, name)| json!({"extId": id, "iscsiInitiatorName": name})).collect(),
        _ => {
            let start = (page * limit).min(all_len as u64) as usize;
            let end = ((page + 1) * limit).min(all_len as u64) as usize;
            let ids: BTreeMap<(String, String), String> =
                if matches!(list, "vms" | "protection_rules") { categories(estate).into_iter().map(|(id, k, v)| ((k, v), id)).collect() } else { BTreeMap::new() };
            let names: BTreeMap<String, String> = estate
                .clusters
                .iter()
                .filter_map(|c| Some((c.pointer("/metadata/uuid")?.as_str()?.to_string(), c.pointer("/status/name")?.as_str()?.to_string())))
                .collect();
            all.range(start, end)
                .iter()
                .map(|e| match list {
                    "vms" if q.ext_id_only => json!({"extId": s(e, "/metadata/uuid")}),
                    "vms" => vm(e, &ids),
                    "clusters" => cluster(e),
                    "hosts" => host(e, &names),
                    "subnets" => subnet(e),
                    "storage_containers" => e.clone(),
                    l if crate::network::is_network(l) => e.clone(),
                    "volume_groups" => volume_group(e),
                    "protection_rules" => crate::dataprotection::protection_policy(e, &ids),
                    "vm_recovery_points" => crate::dataprotection::recovery_point(e),
                    "vm_templates" | "alerts" | "lcm_entities" => e.clone(),
                    _ => image(e),
                })
                .collect()
        }
    };
    let total = match list {
        "categories" | "iscsi_clients" => items.len() as u64,
        _ => all_len as u64,
    };
    let mut items = if matches!(list, "categories" | "iscsi_clients") {
        let start = (page * limit).min(items.len() as u64) as usize;
        let end = ((page + 1) * limit).min(items.len() as u64) as usize;
        items[start..end].to_vec()
    } else {
        items
    };
    if let Some(Value::Object(first)) = items.first_mut() {
        let mut m = Map::new();
        m.insert("$objectType".into(), Value::String(object_type.into()));
        m.extend(std::mem::take(first));
        *first = m;
    }
    json!({"data": items, "metadata": page_metadata(total, page, limit)})
}

/// [`page`] as the bytes of its JSON text: the same bytes, but a VM list
/// page (neither filtered nor `$select`ed) is written VM by VM from the
/// estate ([`crate::render::vm_v4`]) without a tree per VM; a VM edited or
/// added since the estate was generated is converted from its v3 text.
pub fn page_body(estate: &Estate, list: &str, object_type: &str, page_no: u64, limit: u64, q: &ListQuery) -> Vec<u8> {
    let vms = match estate.list(list) {
        Some(Entities::Lazy(vms)) if list == "vms" && q.updated_since.is_none() && !q.ext_id_only => vms,
        _ => return serde_json::to_vec(&page(estate, list, object_type, page_no, limit, q)).unwrap_or_default(),
    };
    let total = q.cut.map_or(vms.len(), |n| n.min(vms.len())) as u64;
    let start = (page_no * limit).min(total) as usize;
    let end = ((page_no + 1) * limit).min(total) as usize;
    let ids: BTreeMap<(String, String), String> = categories(estate).into_iter().map(|(id, k, v)| ((k, v), id)).collect();
    let mut body = Vec::with_capacity((end - start) * 2_048 + 256);
    body.extend_from_slice(br#"{"data":["#);
    for pos in start..end {
        let first = pos == start;
        if !first {
            body.push(b',');
        }
        let object_type = first.then_some(object_type);
        match vms.source(pos) {
            Some(Source::Base(i)) => crate::render::vm_v4(&estate.config, i, &ids, object_type, &mut body),
            held => {
                let v3 = match held {
                    Some(Source::Text(text)) => serde_json::from_slice(text).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                let mut item = vm(&v3, &ids);
                if let (Some(t), Value::Object(m)) = (object_type, &mut item) {
                    m.insert("$objectType".into(), Value::String(t.into()));
                }
                let _ = serde_json::to_writer(&mut body, &item);
            }
        }
    }
    body.extend_from_slice(br#"],"metadata":"#);
    let _ = serde_json::to_writer(&mut body, &page_metadata(total, page_no, limit));
    body.push(b'}');
    body
}

fn page_metadata(total: u64, page: u64, limit: u64) -> Value {
    json!({
        "totalAvailableResults": total,
        "flags": [{"name": "hasError", "value": false}, {"name": "isPaginated", "value": true}],
        "links": [{"href": format!("?$page={page}&$limit={limit}"), "rel": "self"}],
    })
}

/// One page of a template's versions, as `vmm.v4.content.ListTemplateVersionsApiResponse`.
pub fn template_versions_page(versions: Vec<Value>, page: u64, limit: u64) -> Value {
    let total = versions.len();
    let mut data: Vec<Value> = versions.into_iter().skip((page * limit) as usize).take(limit as usize).collect();
    if let Some(Value::Object(first)) = data.first_mut() {
        first.insert("$objectType".into(), json!("vmm.v4.content.TemplateVersionSpec"));
    }
    json!({"data": data, "metadata": {"totalAvailableResults": total}})
}

/// A v4 service's error body: an `ErrorResponse` in the response's `data`
/// (named by `$dataItemDiscriminator`) holding one `AppMessage`, as the
/// SDK models them (`<namespace>.v4.error.*`).
pub fn error(namespace: &str, code: &str, group: &str, message: &str) -> Value {
    let response = format!("{namespace}.v4.error.ErrorResponse");
    json!({
        "data": {
            "error": [{"code": code, "errorGroup": group, "message": message, "severity": "ERROR", "locale": "en_US",
                       "argumentsMap": {"simulated": "true"}, "$objectType": format!("{namespace}.v4.error.AppMessage")}],
            "$objectType": response,
        },
        "$dataItemDiscriminator": response,
    })
}

/// The gateway's answer to a path no service serves (an API or revision
/// this Prism Central does not offer).
pub fn gateway_not_found() -> Value {
    json!({"message": "The requested URL was not found"})
}

/// The v4 VM stats fields the simulator serves.
pub const STAT_FIELDS: &[&str] = &[
    "hypervisorCpuUsagePpm",
    "memoryUsagePpm",
    "controllerNumIops",
    "controllerIoBandwidthKbps",
    "hypervisorNumReceivedBytes",
    "hypervisorNumTransmittedBytes",
];

/// The value of a VM's stat in the sampling bucket `bucket` (seconds since
/// the epoch / interval): deterministic, so tests can check exact numbers.
pub fn vm_stat(vm_index: usize, field: &str, bucket: i64) -> Option<f64> {
    let (i, b) = (vm_index as i64, bucket);
    let v = match field {
        "hypervisorCpuUsagePpm" => 50_000 + (i * 7_919 + b * 104_729).rem_euclid(900_000),
        "memoryUsagePpm" => 200_000 + (i * 31_337 + b * 17).rem_euclid(700_000),
        "controllerNumIops" => (i * 13 + b * 7).rem_euclid(500),
        "controllerIoBandwidthKbps" => (i * 101 + b * 11).rem_euclid(10_000),
        "hypervisorNumReceivedBytes" => (i * 4_099 + b * 65_537).rem_euclid(50_000_000),
        "hypervisorNumTransmittedBytes" => (i * 8_191 + b * 131_071).rem_euclid(20_000_000),
        _ => return None,
    };
    Some(v as f64)
}

/// The latest value of a host's or cluster's groups API attribute
/// (`entity_type` `host` or `cluster`, by index in the estate's list):
/// deterministic, so tests can check exact numbers.
pub fn node_usage(entity_type: &str, index: usize, attribute: &str) -> Option<f64> {
    let i = index as i64 + if entity_type == "cluster" { 1_000 } else { 0 };
    let v = match attribute {
        "hypervisor_cpu_usage_ppm" => 100_000 + (i * 12_347).rem_euclid(800_000),
        "hypervisor_memory_usage_ppm" => 300_000 + (i * 54_321).rem_euclid(600_000),
        "controller_num_iops" => (i * 97).rem_euclid(20_000),
        "controller_io_bandwidth_kBps" => (i * 1_009).rem_euclid(500_000),
        "hypervisor_num_received_bytes" => (i * 1_000_003).rem_euclid(900_000_000),
        "hypervisor_num_transmitted_bytes" => (i * 700_001).rem_euclid(800_000_000),
        _ => return None,
    };
    Some(v as f64)
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (the form the
/// simulator accepts for `$startTime` / `$endTime`).
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + h * 3_600 + mi * 60 + se)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch.
pub fn format_utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3_600, secs % 3_600 / 60, secs % 60)
}

/// The body of `GET /api/vmm/v4.0/ahv/stats/vms/{extId}`: one point per
/// `interval` from `start` (rounded up to the interval) before `end`, the
/// `select`ed fields (all without `$select`); none for a powered-off VM.
pub fn vm_stats(estate: &Estate, ext_id: &str, start: i64, end: i64, interval: i64, select: Option<&str>) -> Option<Value> {
    let index = estate.vms.position(ext_id)?;
    let on = estate.vms.get(index)?.pointer("/status/resources/power_state").and_then(Value::as_str) == Some("ON");
    let fields: Vec<&str> = match select.and_then(|s| s.strip_prefix("stats/")) {
        Some(f) => STAT_FIELDS.iter().copied().filter(|x| *x == f).collect(),
        None => STAT_FIELDS.to_vec(),
    };
    let mut stats = Vec::new();
    let mut t = start.div_euclid(interval) * interval;
    if t < start {
        t += interval;
    }
    while on && t < end && stats.len() < 10_000 {
        let mut p = Map::new();
        p.insert("timestamp".into(), json!(format_utc(t)));
        for f in &fields {
            p.insert((*f).to_string(), json!(vm_stat(index, f, t / interval)));
        }
        stats.push(Value::Object(p));
        t += interval;
    }
    Some(json!({"data": {"extId": ext_id, "stats": stats, "$objectType": "vmm.v4.ahv.stats.VmStats"},
                "metadata": {"flags": [], "links": []}}))
}

/// The clustermgmt stats fields of hosts and clusters the simulator serves,
/// with the groups API attribute whose value they start from.
pub const NODE_STAT_FIELDS: &[(&str, &str)] = &[
    ("hypervisorCpuUsagePpm", "hypervisor_cpu_usage_ppm"),
    ("aggregateHypervisorMemoryUsagePpm", "hypervisor_memory_usage_ppm"),
    ("controllerNumIops", "controller_num_iops"),
    ("controllerIoBandwidthKbps", "controller_io_bandwidth_kBps"),
];

/// A host's or cluster's stat in sampling bucket `bucket`: its groups API
/// value plus a step per bucket (deterministic, for exact tests).
pub fn node_stat(entity_type: &str, index: usize, field: &str, bucket: i64) -> Option<f64> {
    let (_, attribute) = NODE_STAT_FIELDS.iter().find(|(f, _)| *f == field)?;
    Some(node_usage(entity_type, index, attribute)? + (bucket.rem_euclid(7) * 100) as f64)
}

/// `GET /api/clustermgmt/v4.0/stats/clusters/{cluster}` (and `.../hosts/{host}`):
/// each selected field as a list of `{timestamp, value}`, the clustermgmt
/// shape. `None` when there is no such cluster, or host in that cluster.
pub fn node_stats(estate: &Estate, cluster: &str, host: Option<&str>, start: i64, end: i64, interval: i64, select: Option<&str>) -> Option<Value> {
    let uuid_of = |v: &Value| v.pointer("/metadata/uuid").and_then(Value::as_str).map(str::to_string);
    let clusters = estate.clusters.get(1..).unwrap_or_default();
    let c = clusters.iter().position(|v| uuid_of(v).as_deref() == Some(cluster))?;
    let (entity_type, index, ext_id) = match host {
        None => ("cluster", c, cluster),
        Some(h) => {
            let i = estate.hosts.iter().position(|v| {
                uuid_of(v).as_deref() == Some(h) && v.pointer("/status/cluster_reference/uuid").and_then(Value::as_str) == Some(cluster)
            })?;
            ("host", i, h)
        }
    };
    let wanted = select.map(|s| s.split(',').map(str::trim).collect::<Vec<_>>());
    let mut data = Map::new();
    for (field, _) in NODE_STAT_FIELDS.iter().filter(|(f, _)| wanted.as_ref().is_none_or(|w| w.contains(f))) {
        let mut points = Vec::new();
        let mut t = start.div_euclid(interval) * interval;
        if t < start {
            t += interval;
        }
        while t < end && points.len() < 10_000 {
            points.push(json!({"timestamp": format_utc(t), "value": node_stat(entity_type, index, field, t / interval)}));
            t += interval;
        }
        data.insert((*field).to_string(), Value::Array(points));
    }
    data.insert("extId".into(), json!(ext_id));
    let object_type = if host.is_some() { "clustermgmt.v4.stats.HostStats" } else { "clustermgmt.v4.stats.ClusterStats" };
    data.insert("$objectType".into(), json!(object_type));
    Some(json!({"data": data, "metadata": {"flags": [], "links": []}}))
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    #[test]
    fn utc_times_round_trip() {
        for s in ["1970-01-01T00:00:00Z", "2024-02-29T23:59:59Z", "2026-11-23T10:05:00Z", "2100-03-01T00:00:00Z"] {
            assert_eq!(format_utc(parse_utc(s).unwrap()), s);
        }
        assert_eq!(parse_utc("2026-11-23T10:05:00Z").unwrap() - parse_utc("2026-11-23T10:00:00Z").unwrap(), 300);
        assert!(parse_utc("2026-11-23T10:05:00+01:00").is_none() && parse_utc("2026-13-01T00:00:00Z").is_none());
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    /// VM list pages written from the estate are the bytes of the tree
    /// pages, with VMs edited (GPUs, renames), removed and added, cut or
    /// not, and every other list answered through the tree.
    #[test]
    fn page_bodies_are_the_tree_pages_bytes() {
        let cfg = crate::estate::EstateConfig { vms: 230, gpus: true, ..crate::estate::EstateConfig::default() };
        let state = crate::SimState::new(crate::SimConfig { estate: cfg, ..crate::SimConfig::default() });
        assert!(state.update_vm(&uuid("vm", 3), "renamed \"quoted\"", "2026-01-01T00:00:00Z"));
        assert!(state.remove_vm(&uuid("vm", 0)) && state.remove_vm(&uuid("vm", 101)));
        let added = state.add_vm("2026-02-01T00:00:00Z");
        assert!(state.update_vm(&added, "renamed-new", "2026-03-01T00:00:00Z"));
        state.add_vm("2026-02-02T00:00:00Z");
        let estate = state.estate();
        assert!(estate.vms.overlay_len() > 5, "GPU users, renamed and added VMs are held");
        let queries = [ListQuery::default(), ListQuery { cut: Some(57), ..ListQuery::default() }, ListQuery { ext_id_only: true, ..ListQuery::default() }];
        for q in &queries {
            for (p, limit) in [(0, 100), (1, 100), (2, 100), (3, 100), (0, 1), (5, 7), (32, 7), (57, 1), (1, 50)] {
                for (_, list, object_type) in ENDPOINTS.iter().filter(|(_, l, _)| *l == "vms" || q == &ListQuery::default()) {
                    let tree = serde_json::to_vec(&page(&estate, list, object_type, p, limit, q)).unwrap();
                    let body = page_body(&estate, list, object_type, p, limit, q);
                    assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(&tree), "{list} page {p} of {limit}, {q:?}");
                }
            }
        }
    }
}
