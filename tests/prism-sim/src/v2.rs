//! Prism Element mode ([`crate::SimConfig::prism_element`]): the v2.0 REST
//! API of one Prism Element (the estate's first cluster), rendered from the
//! estate's v3 entities (and its v4 storage containers), as a cluster
//! managed without Prism Central serves it.
//!
//! Field names and types follow Nutanix's Prism Element REST API v2.0
//! reference (developer.nutanix.com, "Prism Element v2.0"; there is no
//! official v2.0 SDK to validate against), as real Prism Elements answer
//! (bodies captured from AOS 5.10 to 6.8 in public projects' test
//! fixtures): the cluster (`GET /cluster`), hosts (`GET /hosts/`), VMs
//! with `vm_disk_info` and `vm_nics` (`GET
//! /vms/?include_vm_disk_config=true&include_vm_nic_config=true`),
//! storage containers (`GET /storage_containers/`), AHV networks (`GET
//! /networks/`: `ip_config` with `network_address`, `prefix_length`,
//! `default_gateway`, `ipam_enabled`, `pool` [{`range`}], an unmanaged
//! network's `{prefix_length: 0, ipam_enabled: false, pool: []}`, as
//! AsBuiltReport.Nutanix.PrismElement's captured body), images (`GET
//! /images/`: `image_type`, `image_state`, `vm_disk_id`,
//! `storage_container_uuid`, times in microseconds, `vm_disk_size` only
//! with `include_vm_disk_sizes=true`), and the list envelope `{metadata:
//! {grand_total_entities, total_entities, count, page, start_index,
//! end_index}, entities}` (networks and images: the two totals only, as
//! captured). `vms`, `networks` and `images` page by `offset` and
//! `length`, the others by `page` (1-based) and `count`. Values a v2.0
//! body spells differently from v3 are spelled as v2.0 does: power state
//! `on`/`off`, disk buses `scsi`/`ide`, hypervisor type `kKvm`, erasure
//! coding `off`.
//!
//! What a Prism Element answers besides: the v4 paths the gateway's 404
//! (the simulator's PE has no v4 APIs), and Aplos's v3 cluster list its own
//! cluster only, without the Prism Central pseudo-cluster.

use crate::estate::Estate;
use serde_json::{json, Value};

/// The lists served under `/PrismGateway/services/rest/v2.0/`.
pub const LISTS: [&str; 5] = ["vms", "hosts", "storage_containers", "networks", "images"];

/// Whether a list pages by `page`/`count` (the others by `offset`/`length`).
pub fn paged(list: &str) -> bool {
    matches!(list, "hosts" | "storage_containers")
}

fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn n(v: &Value, p: &str) -> Option<u64> {
    v.pointer(p).and_then(Value::as_u64)
}

/// The Prism Element's cluster (`GET /cluster`): the estate's first real
/// cluster.
pub fn cluster(estate: &Estate) -> Value {
    let c = pe_cluster(estate);
    let id = s(&c, "/metadata/uuid").unwrap_or_default();
    let build = |k: &str| s(&c, &format!("/status/resources/config/build/{k}")).map(str::to_string);
    let rf = n(&c, "/status/resources/config/redundancy_factor");
    let nodes = c.pointer("/status/resources/nodes/hypervisor_server_list").and_then(Value::as_array).map_or(0, Vec::len);
    json!({
        "id": format!("{id}::8117467418497916547"),
        "uuid": id,
        "cluster_incarnation_id": 1_700_000_000_000_000i64,
        "cluster_uuid": id,
        "name": s(&c, "/status/name"),
        "cluster_external_ipaddress": s(&c, "/status/resources/network/external_ip"),
        "cluster_external_data_services_ipaddress": null,
        "timezone": s(&c, "/status/resources/config/timezone"),
        "operation_mode": "Normal",
        "storage_type": "all_flash",
        "cluster_functions": ["NDFS"],
        "num_nodes": nodes,
        "block_serials": ["BLK-00"],
        "version": build("version"),
        "full_version": build("full_version"),
        "name_servers": c.pointer("/status/resources/network/name_server_ip_list"),
        "ntp_servers": c.pointer("/status/resources/network/ntp_server_ip_list"),
        "hypervisor_types": ["kKvm"],
        "cluster_redundancy_state": {"current_redundancy_factor": rf, "desired_redundancy_factor": rf},
        "multicluster": false,
        "cluster_arch": s(&c, "/status/resources/config/cluster_arch"),
    })
}

/// The estate's first cluster but the Prism Central pseudo-cluster (v3).
fn pe_cluster(estate: &Estate) -> Value {
    estate.clusters.iter().find(|c| !crate::estate::is_prism_central(c)).cloned().unwrap_or(Value::Null)
}

/// The Prism Element's uuid.
pub fn cluster_uuid(estate: &Estate) -> String {
    s(&pe_cluster(estate), "/metadata/uuid").unwrap_or_default().to_string()
}

fn of_cluster<'a>(list: &'a [Value], pe: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    list.iter().filter(move |e| s(e, "/status/cluster_reference/uuid") == Some(pe))
}

/// A host (`GET /hosts/` entity) from the estate's v3 host.
fn host(h: &Value) -> Value {
    let r = &h["status"]["resources"];
    json!({
        "uuid": s(h, "/metadata/uuid"),
        "name": s(h, "/status/name"),
        "serial": r["serial_number"],
        "block_serial": r.pointer("/block/block_serial_number"),
        "block_model_name": r.pointer("/block/block_model"),
        "hypervisor_address": r.pointer("/hypervisor/ip"),
        "hypervisor_full_name": r.pointer("/hypervisor/hypervisor_full_name"),
        "hypervisor_type": "kKvm",
        "service_vmexternal_ip": r.pointer("/controller_vm/ip"),
        "cpu_model": r["cpu_model"],
        "num_cpu_sockets": r["num_cpu_sockets"],
        "num_cpu_cores": r["num_cpu_cores"],
        "num_cpu_threads": n(r, "/num_cpu_cores").map(|c| c * 2),
        "cpu_capacity_in_hz": r["cpu_capacity_hz"],
        "cpu_frequency_in_hz": 2_000_000_000u64,
        "memory_capacity_in_bytes": n(r, "/memory_capacity_mib").map(|m| m * 1024 * 1024),
        "num_vms": r.pointer("/hypervisor/num_vms"),
        "cluster_uuid": s(h, "/status/cluster_reference/uuid"),
        "host_type": r["host_type"],
        "state": "NORMAL",
    })
}

/// A VM (`GET /vms/` entity) with its disks and NICs, from the estate's v3
/// VM.
fn vm(v: &Value) -> Value {
    let r = &v["status"]["resources"];
    let disks: Vec<Value> = r["disk_list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let cdrom = s(d, "/device_properties/device_type") == Some("CDROM");
            let bus = s(d, "/device_properties/disk_address/adapter_type").unwrap_or("SCSI").to_ascii_lowercase();
            let index = n(d, "/device_properties/disk_address/device_index").unwrap_or(0);
            let size = n(d, "/disk_size_bytes");
            let mut disk = json!({
                "disk_address": {"device_bus": bus, "device_index": index, "disk_label": format!("{bus}.{index}"), "vmdisk_uuid": d["uuid"]},
                "is_cdrom": cdrom,
                "is_empty": cdrom && size.is_none(),
                "flash_mode_enabled": false,
                "is_scsi_passthrough": !cdrom,
                "is_hot_remove_enabled": !cdrom,
                "is_thin_provisioned": false,
                "shared": false,
            });
            if let Some(size) = size {
                disk["size"] = json!(size);
            }
            if let Some(c) = s(d, "/storage_config/storage_container_reference/uuid") {
                disk["storage_container_uuid"] = json!(c);
            }
            disk
        })
        .collect();
    let nics: Vec<Value> = r["nic_list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|nic| {
            let ips: Vec<&str> = nic["ip_endpoint_list"].as_array().into_iter().flatten().filter_map(|e| s(e, "/ip")).collect();
            let mut out = json!({
                "nic_uuid": nic["uuid"],
                "mac_address": nic["mac_address"],
                "network_uuid": s(nic, "/subnet_reference/uuid"),
                "model": "",
                "vlan_mode": "Access",
                "is_connected": nic["is_connected"],
            });
            if let Some(first) = ips.first() {
                out["ip_address"] = json!(first);
                out["ip_addresses"] = json!(ips);
            }
            out
        })
        .collect();
    let mut out = json!({
        "uuid": s(v, "/metadata/uuid"),
        "name": s(v, "/status/name"),
        "power_state": s(r, "/power_state").unwrap_or("OFF").to_ascii_lowercase(),
        "num_vcpus": r["num_sockets"],
        "num_cores_per_vcpu": r["num_vcpus_per_socket"],
        "memory_mb": r["memory_size_mib"],
        "machine_type": s(r, "/machine_type").unwrap_or("PC").to_ascii_lowercase(),
        "boot": {"uefi_boot": s(r, "/boot_config/boot_type") == Some("UEFI"), "secure_boot": false},
        "vm_disk_info": disks,
        "vm_nics": nics,
        "vm_logical_timestamp": n(v, "/metadata/spec_version").unwrap_or(1),
        "timezone": "UTC",
        "ha_priority": 0,
        "allow_live_migrate": true,
        "gpus_assigned": false,
        "vm_features": {"AGENT_VM": false, "VGA_CONSOLE": true},
    });
    if let Some(d) = s(v, "/status/description") {
        out["description"] = json!(d);
    }
    if let Some(h) = s(r, "/host_reference/uuid") {
        out["host_uuid"] = json!(h);
    }
    out
}

/// A storage container (`GET /storage_containers/` entity) from the
/// estate's v4 item.
fn storage_container(c: &Value) -> Value {
    let id = s(c, "/containerExtId").unwrap_or_default();
    json!({
        "id": format!("{id}::1"),
        "storage_container_uuid": id,
        "name": c["name"],
        "cluster_uuid": c["clusterExtId"],
        "max_capacity": c["maxCapacityBytes"],
        "total_explicit_reserved_capacity": c["logicalExplicitReservedCapacityBytes"],
        "total_implicit_reserved_capacity": 0,
        "advertised_capacity": c["logicalAdvertisedCapacityBytes"],
        "replication_factor": c["replicationFactor"],
        "oplog_replication_factor": c["replicationFactor"],
        "compression_enabled": c["isCompressionEnabled"],
        "compression_delay_in_secs": c["compressionDelaySecs"],
        "erasure_code": s(c, "/erasureCode").unwrap_or("OFF").to_ascii_lowercase(),
        "on_disk_dedup": c["onDiskDedup"],
        "finger_print_on_write": "off",
        "enable_software_encryption": c["isSoftwareEncryptionEnabled"],
        "marked_for_removal": c["isMarkedForRemoval"],
    })
}

/// An AHV network (`GET /networks/` entity) from the estate's v3 subnet:
/// managed (IPAM) when the subnet has an IP configuration.
fn network(sn: &Value) -> Value {
    let r = &sn["status"]["resources"];
    let id = s(sn, "/metadata/uuid").unwrap_or_default();
    let ip_config = match r.get("ip_config").filter(|c| c.is_object()) {
        Some(c) => json!({
            "network_address": c["subnet_ip"],
            "prefix_length": c["prefix_length"],
            "default_gateway": c["default_gateway_ip"],
            "ipam_enabled": true,
            "dhcp_server_address": c["subnet_ip"].as_str().map(|a| a.trim_end_matches(".0").to_string() + ".254"),
            "dhcp_options": {},
            "pool": c["pool_list"].as_array().into_iter().flatten().map(|p| json!({"range": p["range"]})).collect::<Vec<_>>(),
        }),
        None => json!({"prefix_length": 0, "ipam_enabled": false, "free_ips": -1, "assigned_ips": -1, "dhcp_options": {}, "pool": []}),
    };
    json!({
        "logical_timestamp": 1,
        "uuid": id,
        "name": s(sn, "/status/name"),
        "vlan_id": r["vlan_id"],
        "vswitch_name": r["vswitch_name"],
        "virtual_switch_uuid": crate::estate::uuid("vswitch", 0),
        "ip_config": ip_config,
    })
}

/// An image (`GET /images/` entity) from the estate's v3 image, in the
/// Prism Element's default container; `vm_disk_size` with `sizes`.
fn image(k: usize, i: &Value, container: &str, sizes: bool) -> Value {
    let r = &i["status"]["resources"];
    let usecs = |p: &str| s(i, p).and_then(crate::v4::parse_utc).map(|t| t * 1_000_000);
    let id = s(i, "/metadata/uuid").unwrap_or_default();
    let mut out = json!({
        "uuid": id,
        "name": s(i, "/status/name"),
        "deleted": false,
        "storage_container_uuid": container,
        "logical_timestamp": 1,
        "image_type": r["image_type"],
        "vm_disk_id": crate::estate::uuid("image-vmdisk", k),
        "image_state": "ACTIVE",
        "created_time_in_usecs": usecs("/metadata/creation_time"),
        "updated_time_in_usecs": usecs("/metadata/creation_time"),
    });
    if let Some(d) = s(i, "/status/description") {
        out["annotation"] = json!(d);
    }
    if sizes {
        out["vm_disk_size"] = r["size_bytes"].clone();
    }
    out
}

/// Every entity of a v2.0 list of the Prism Element (v2.0 shapes; images
/// with their sizes).
pub fn entities(estate: &Estate, list: &str) -> Vec<Value> {
    entities_with(estate, list, true)
}

/// Every entity of a v2.0 list of the Prism Element (v2.0 shapes); images
/// with `vm_disk_size` when `sizes` (`include_vm_disk_sizes=true`).
pub fn entities_with(estate: &Estate, list: &str, sizes: bool) -> Vec<Value> {
    let pe = cluster_uuid(estate);
    match list {
        "networks" => of_cluster(&estate.subnets, &pe).map(network).collect(),
        "images" => {
            // The images stored on the Prism Element's cluster, in its
            // default container.
            let container = estate
                .storage_containers
                .iter()
                .find(|c| s(c, "/clusterExtId") == Some(pe.as_str()) && c["isInternal"] != json!(true))
                .and_then(|c| s(c, "/containerExtId"))
                .unwrap_or_default()
                .to_string();
            let on_pe = |(_, i): &(usize, &Value)| i.pointer("/status/resources/current_cluster_reference_list").and_then(Value::as_array).is_some_and(|l| l.iter().any(|c| s(c, "/uuid") == Some(pe.as_str())));
            estate.images.iter().enumerate().filter(on_pe).map(|(k, i)| image(k, i, &container, sizes)).collect()
        }
        "vms" => estate.vms.iter().filter(|e| s(e, "/status/cluster_reference/uuid") == Some(pe.as_str())).map(|e| vm(&e)).collect(),
        "hosts" => of_cluster(&estate.hosts, &pe).map(host).collect(),
        "storage_containers" => estate.storage_containers.iter().filter(|c| s(c, "/clusterExtId") == Some(pe.as_str())).map(storage_container).collect(),
        _ => Vec::new(),
    }
}

/// One page of a v2.0 list: `first` (0-based) and at most `count`
/// entities; `paged` lists (by `page`/`count`) carry the page's indexes.
pub fn page(all: &[Value], first: u64, count: u64, paged: bool) -> Value {
    let total = all.len() as u64;
    let items: Vec<Value> = all.iter().skip(usize::try_from(first).unwrap_or(usize::MAX)).take(usize::try_from(count).unwrap_or(usize::MAX)).cloned().collect();
    let mut metadata = json!({"grand_total_entities": total, "total_entities": total, "count": items.len()});
    if paged {
        metadata["page"] = json!(first / count.max(1) + 1);
        metadata["start_index"] = json!(first + 1);
        metadata["end_index"] = json!(first + items.len() as u64);
    }
    json!({"metadata": metadata, "entities": items})
}

/// A Prism Element's own error body (`{message, error_code: {code,
/// help_url}}`).
pub fn error_body(code: u16, message: &str) -> Value {
    json!({"message": message, "error_code": {"code": code, "help_url": "http://my.nutanix.com"}})
}
