//! Prism Element v2.0 REST API: the fallback for a cluster managed without
//! Prism Central (clusters, hosts, VMs, storage containers, subnets and
//! images), its paging, how the collector tells a Prism Element from a
//! Prism Central, and the adapter from v2.0 entities to the shapes
//! normalization reads (v3 for clusters, hosts, VMs, subnets and images;
//! the v4 item for storage containers), so a Prism Element's records are
//! the same types, keys and match-rule fields as a Prism Central's.
//!
//! # Telling a Prism Element from a Prism Central
//!
//! The collector always starts as for a Prism Central (option `api_version`
//! `auto`, the default): the v4 cluster list, then the v3 one. A Prism
//! Central always lists itself in its cluster list (the pseudo-cluster with
//! service `PRISM_CENTRAL`, v4 `clusterFunction: ["PRISM_CENTRAL"]`). When
//! the cluster list has no such entry, or neither cluster list is there
//! (the v4 gateway answers 404 at every revision and the v3 list 404: a
//! Prism Element without Aplos), the endpoint may
//! be a Prism Element: the collector asks `GET` [`CLUSTER_PATH`] once. The
//! endpoint is a Prism Element when that answers with the v2.0 cluster
//! object ([`is_prism_element`]): a JSON object with a non-empty `uuid`
//! whose `cluster_functions` do not name Prism Central's (`MULTICLUSTER`,
//! `PRISM_CENTRAL`; a Prism Element's are `["NDFS"]`). Then clusters, hosts,
//! VMs, storage containers, subnets (AHV networks) and images are read
//! through v2.0 for the rest of the run. When neither answers, the run fails naming the endpoint and both
//! answers. A Prism Central costs no call more (it lists itself); options
//! `api_version: v3` or `v4` say the endpoint is a Prism Central and skip
//! the check.
//!
//! # Paging
//!
//! v2.0 lists are `GET`s answering `{metadata, entities}`. `vms` pages
//! with `offset`/`length` (and `include_vm_disk_config` /
//! `include_vm_nic_config` for the disks and NICs); `hosts` and
//! `storage_containers` with `page` (1-based) and `count`. The metadata
//! holds `total_entities` (the entities the request matches) and
//! `grand_total_entities` (all of them), with `count`, `page`,
//! `start_index` and `end_index` on the paged lists ([`parse_page`] takes
//! `total_entities`, or `grand_total_entities` without it). `cluster` is
//! one object, no list.
//!
//! `networks` and `images` are Acropolis lists, as `vms` is: they are asked
//! by `offset`/`length` like it (`images` with `include_vm_disk_sizes=true`,
//! without which an image has no `vm_disk_size`). Captured answers carry
//! only the two totals in their metadata (no `count` or `page`), and public
//! clients read both lists in one `GET` (or send `page`/`count`, which the
//! answers do not echo): whether a Prism Element honours the window is not
//! documented. Either way one call reads one page: a first page longer
//! than asked (the whole list) sets the list's step, so a Prism Element
//! that answers everything at once costs one call
//! ([`crate::listing`]).
//!
//! Field lists: Nutanix's Prism Element REST API v2.0 reference
//! (developer.nutanix.com, "Prism Element v2.0": the answers of `GET
//! /cluster`, `/hosts/`, `/vms/`, `/storage_containers/`, `/networks/`
//! and `/images/`), checked against bodies captured from real Prism
//! Elements (AOS 5.10 to 6.8) that public projects keep as test fixtures
//! (for networks: AsBuiltReport.Nutanix.PrismElement's network section,
//! `uuid`, `name`, `vlan_id`, `vswitch_name`, `virtual_switch_uuid`,
//! `logical_timestamp` and `ip_config` {`network_address`,
//! `prefix_length`, `default_gateway`, `ipam_enabled`, `dhcp_server_address`,
//! `dhcp_options`, `pool` [{`range` "first last"}]}, an unmanaged network's
//! `ip_config` being `{prefix_length: 0, ipam_enabled: false, pool: []}`;
//! for images: `uuid`, `name`, `annotation`, `image_type` (`DISK_IMAGE`,
//! `ISO_IMAGE`), `image_state`, `vm_disk_id`, `vm_disk_size`,
//! `storage_container_uuid`, `created_time_in_usecs`,
//! `updated_time_in_usecs`, as in yunionio/cloudmux's Nutanix image model
//! and captured image lists); there is no official v2.0 SDK to check
//! bodies against. v2.0 lacks what the records then leave absent or null:
//! every entity's categories and `state`; the creation and update times of
//! all but images; a VM's cluster (a Prism Element's VMs are all its own),
//! owner, project, image, host name, guest tools and GPUs; a cluster's
//! nodes' addresses and its hypervisors' versions; a container's cache
//! deduplication and whether it is internal; a subnet's cluster (a Prism
//! Element's networks are all its own) and VPC; an image's source URL,
//! architecture and cluster (a Prism Element's images are in its own
//! containers).

use crate::v3::Kind;
use crate::v4::compact;
use serde_json::{json, Value};

/// The v2.0 API's root.
pub const BASE: &str = "/PrismGateway/services/rest/v2.0";

/// The cluster the Prism Element is (one object).
pub const CLUSTER_PATH: &str = "/PrismGateway/services/rest/v2.0/cluster";

/// The kinds a Prism Element serves through v2.0 (VM disks come from the
/// VM list).
pub const KINDS: [Kind; 7] = [Kind::Cluster, Kind::Host, Kind::Vm, Kind::StorageContainer, Kind::VmDisk, Kind::Subnet, Kind::Image];

/// The v2.0 list of a kind (`None`: not read through v2.0; the cluster is
/// [`CLUSTER_PATH`]).
pub fn list_path(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Vm => "/PrismGateway/services/rest/v2.0/vms/",
        Kind::Host => "/PrismGateway/services/rest/v2.0/hosts/",
        Kind::StorageContainer => "/PrismGateway/services/rest/v2.0/storage_containers/",
        Kind::Subnet => "/PrismGateway/services/rest/v2.0/networks/",
        Kind::Image => "/PrismGateway/services/rest/v2.0/images/",
        _ => return None,
    })
}

/// Path and query of one page of `kind` at (`offset`, `length`): the
/// Acropolis lists by offset and length (VMs with their disks and NICs,
/// images with their sizes), the others by 1-based page (`offset` a
/// multiple of `length`) and count.
pub fn page_path(kind: Kind, path: Option<&str>, offset: u64, length: u32) -> String {
    let path = path.or(list_path(kind)).unwrap_or_default();
    match kind {
        Kind::Vm => format!("{path}?offset={offset}&length={length}&include_vm_disk_config=true&include_vm_nic_config=true"),
        Kind::Image => format!("{path}?offset={offset}&length={length}&include_vm_disk_sizes=true"),
        Kind::Subnet => format!("{path}?offset={offset}&length={length}"),
        _ => format!("{path}?page={}&count={length}", offset / u64::from(length.max(1)) + 1),
    }
}

/// One v2.0 page (the shape of a v4 one).
pub use crate::v4::Page;

/// Parses a 2xx list answer: a missing or null `entities` is an empty page,
/// anything else but a list is an error; a total that is not a
/// non-negative integer is no total.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid or truncated JSON: {e}"))?;
    if !v.is_object() {
        return Err("a v2.0 list answer is not a JSON object".into());
    }
    let total = ["/metadata/total_entities", "/metadata/grand_total_entities"].iter().find_map(|p| v.pointer(p).and_then(Value::as_u64));
    match v.get("entities") {
        None | Some(Value::Null) => Ok(Page { total, entities: Vec::new() }),
        Some(Value::Array(items)) => Ok(Page { total, entities: items.clone() }),
        Some(_) => Err("'entities' of a v2.0 list is not a list".into()),
    }
}

/// Whether a 2xx answer of [`CLUSTER_PATH`] is a Prism Element's cluster
/// (see the module docs): `Err` says why not.
pub fn is_prism_element(cluster: &Value) -> Result<(), String> {
    let Some(o) = cluster.as_object() else { return Err("the v2.0 cluster answer is not a JSON object".into()) };
    if o.get("uuid").and_then(Value::as_str).is_none_or(|u| u.trim().is_empty()) {
        return Err("the v2.0 cluster answer has no uuid".into());
    }
    let functions: Vec<&str> = o.get("cluster_functions").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if let Some(f) = functions.iter().find(|f| matches!(**f, "MULTICLUSTER" | "PRISM_CENTRAL")) {
        return Err(format!("the v2.0 cluster is a Prism Central (cluster function {f})"));
    }
    Ok(())
}

fn text(v: &Value, k: &str) -> Value {
    v.get(k).filter(|x| x.as_str().is_some_and(|s| !s.is_empty())).cloned().unwrap_or(Value::Null)
}

fn upper(v: &Value, k: &str) -> Value {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map_or(Value::Null, |s| json!(s.to_ascii_uppercase()))
}

fn num(v: &Value, k: &str) -> Value {
    v.get(k).and_then(Value::as_u64).map_or(Value::Null, |n| json!(n))
}

/// A count the v3 model keeps in 32 bits (larger ones are left out).
fn small(v: &Value, k: &str) -> Value {
    v.get(k).and_then(Value::as_u64).filter(|n| u32::try_from(*n).is_ok()).map_or(Value::Null, |n| json!(n))
}

fn flag(v: &Value, k: &str) -> Value {
    v.get(k).and_then(Value::as_bool).map_or(Value::Null, Value::Bool)
}

fn strings(v: &Value, k: &str) -> Value {
    match v.get(k).and_then(Value::as_array) {
        Some(l) => Value::Array(l.iter().filter(|s| s.is_string()).cloned().collect()),
        None => Value::Null,
    }
}

/// v2.0 hypervisor types in the v3/v4 vocabulary.
fn hypervisor(t: &str) -> Option<&'static str> {
    Some(match t {
        "kKvm" => "AHV",
        "kVMware" => "ESX",
        "kHyperv" => "HYPERV",
        _ => return None,
    })
}

/// A v2.0 entity as normalization reads it: v3 for clusters, hosts, VMs,
/// subnets and images (`cluster` is the Prism Element's uuid: its VMs,
/// networks and images name no cluster), the v4 item for storage
/// containers. Fails when the entity is not an object;
/// fields of another type than v2.0's are left out, missing ones stay
/// missing (normalization names what it needs).
pub fn adapt(kind: Kind, raw: &Value, cluster: &str) -> Result<Value, String> {
    if !raw.is_object() {
        return Err(format!("a v2.0 {} entity is not a JSON object", kind.api_kind()));
    }
    Ok(compact(match kind {
        Kind::Cluster => cluster_v3(raw),
        Kind::Host => host(raw),
        Kind::Vm => vm(raw, cluster),
        Kind::StorageContainer => storage_container(raw),
        Kind::Subnet => subnet(raw, cluster),
        Kind::Image => image(raw, cluster),
        other => return Err(format!("{} are not read through v2.0", other.plural())),
    }))
}

fn cluster_v3(v: &Value) -> Value {
    // One server per node, of the cluster's one hypervisor type when it
    // has one (v2.0 names neither the nodes' addresses nor versions).
    let types: Vec<&str> = v.get("hypervisor_types").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let single = match types.as_slice() {
        [t] => hypervisor(t),
        _ => None,
    };
    let nodes = v.get("num_nodes").and_then(Value::as_u64).filter(|n| *n <= 4096).unwrap_or(0);
    let servers: Vec<Value> = (0..nodes).map(|_| json!({"type": single})).collect();
    json!({
        "metadata": {"kind": "cluster", "uuid": text(v, "uuid")},
        "status": {
            "name": text(v, "name"),
            "resources": {
                "config": {
                    "build": {"version": text(v, "version"), "full_version": text(v, "full_version")},
                    "cluster_arch": text(v, "cluster_arch"),
                    "redundancy_factor": v.get("cluster_redundancy_state").map_or(Value::Null, |r| small(r, "desired_redundancy_factor")),
                    "timezone": text(v, "timezone"),
                },
                "nodes": if nodes > 0 { json!({"hypervisor_server_list": servers}) } else { Value::Null },
                "network": {
                    "external_ip": text(v, "cluster_external_ipaddress"),
                    "name_server_ip_list": strings(v, "name_servers"),
                    "ntp_server_ip_list": strings(v, "ntp_servers"),
                }
            }
        }
    })
}

fn host(v: &Value) -> Value {
    json!({
        "metadata": {"kind": "host", "uuid": text(v, "uuid")},
        "status": {
            "name": text(v, "name"),
            "cluster_reference": {"kind": "cluster", "uuid": text(v, "cluster_uuid")},
            "resources": {
                "serial_number": text(v, "serial"),
                "host_type": text(v, "host_type"),
                "cpu_model": text(v, "cpu_model"),
                "num_cpu_sockets": small(v, "num_cpu_sockets"),
                "num_cpu_cores": small(v, "num_cpu_cores"),
                "cpu_capacity_hz": num(v, "cpu_capacity_in_hz"),
                "cpu_frequency_hz": num(v, "cpu_frequency_in_hz"),
                "memory_capacity_mib": v.get("memory_capacity_in_bytes").and_then(Value::as_u64).map_or(Value::Null, |b| json!(b / (1024 * 1024))),
                "hypervisor": {"ip": text(v, "hypervisor_address"), "hypervisor_full_name": text(v, "hypervisor_full_name"), "num_vms": small(v, "num_vms")},
                "controller_vm": {"ip": text(v, "service_vmexternal_ip")},
                "block": {"block_serial_number": text(v, "block_serial"), "block_model": text(v, "block_model_name")},
            }
        }
    })
}

fn vm(v: &Value, cluster: &str) -> Value {
    let list = |k: &str| v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let disks: Vec<Value> = list("vm_disk_info")
        .iter()
        .filter(|d| d.is_object())
        .map(|d| {
            let addr = d.get("disk_address").cloned().unwrap_or(Value::Null);
            let cdrom = d.get("is_cdrom").and_then(Value::as_bool);
            let container = text(d, "storage_container_uuid");
            json!({
                "uuid": text(&addr, "vmdisk_uuid"),
                "disk_size_bytes": num(d, "size"),
                "device_properties": {
                    "device_type": cdrom.map(|c| if c { "CDROM" } else { "DISK" }),
                    "disk_address": {"adapter_type": upper(&addr, "device_bus"), "device_index": small(&addr, "device_index")},
                },
                "storage_config": if container.is_null() { Value::Null } else { json!({"storage_container_reference": {"kind": "storage_container", "uuid": container}}) },
            })
        })
        .collect();
    let nics: Vec<Value> = list("vm_nics")
        .iter()
        .filter(|n| n.is_object())
        .map(|n| {
            // `ip_addresses` where the API has it, else `ip_address`.
            let mut ips: Vec<Value> = Vec::new();
            for ip in list_of(n, "ip_addresses").into_iter().chain([text(n, "ip_address")]) {
                if ip.as_str().is_some_and(|s| !s.is_empty()) && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            let subnet = text(n, "network_uuid");
            json!({
                "uuid": text(n, "nic_uuid"),
                "mac_address": text(n, "mac_address"),
                "is_connected": flag(n, "is_connected"),
                "subnet_reference": if subnet.is_null() { Value::Null } else { json!({"kind": "subnet", "uuid": subnet}) },
                "ip_endpoint_list": if ips.is_empty() { Value::Null } else { Value::Array(ips.into_iter().map(|ip| json!({"ip": ip})).collect()) },
            })
        })
        .collect();
    let host = text(v, "host_uuid");
    let boot = v.pointer("/boot/uefi_boot").and_then(Value::as_bool).map(|uefi| json!({"boot_type": if uefi { "UEFI" } else { "LEGACY" }}));
    json!({
        "metadata": {"kind": "vm", "uuid": text(v, "uuid")},
        "status": {
            "name": text(v, "name"),
            "description": text(v, "description"),
            "cluster_reference": {"kind": "cluster", "uuid": cluster},
            "resources": {
                "num_sockets": small(v, "num_vcpus"),
                "num_vcpus_per_socket": small(v, "num_cores_per_vcpu"),
                "memory_size_mib": num(v, "memory_mb"),
                "power_state": upper(v, "power_state"),
                // The v2.0 VM API is AHV's (Acropolis).
                "hypervisor_type": "AHV",
                "machine_type": upper(v, "machine_type"),
                "host_reference": if host.is_null() { Value::Null } else { json!({"kind": "host", "uuid": host}) },
                "disk_list": disks,
                "nic_list": nics,
                "boot_config": boot,
            }
        }
    })
}

fn list_of(v: &Value, k: &str) -> Vec<Value> {
    v.get(k).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// A storage container as the v4 clustermgmt item normalization reads.
fn storage_container(v: &Value) -> Value {
    json!({
        "containerExtId": text(v, "storage_container_uuid"),
        "name": text(v, "name"),
        "clusterExtId": text(v, "cluster_uuid"),
        "maxCapacityBytes": num(v, "max_capacity"),
        "logicalExplicitReservedCapacityBytes": num(v, "total_explicit_reserved_capacity"),
        "logicalAdvertisedCapacityBytes": num(v, "advertised_capacity"),
        "replicationFactor": num(v, "replication_factor"),
        "isCompressionEnabled": flag(v, "compression_enabled"),
        "compressionDelaySecs": num(v, "compression_delay_in_secs"),
        "erasureCode": upper(v, "erasure_code"),
        "onDiskDedup": upper(v, "on_disk_dedup"),
        "isSoftwareEncryptionEnabled": flag(v, "enable_software_encryption"),
        "isMarkedForRemoval": flag(v, "marked_for_removal"),
    })
}

/// An AHV network as a v3 subnet: VLAN-backed (v2.0's networks are AHV's
/// VLAN networks; overlay subnets are Prism Central's), of the Prism
/// Element's cluster; the IP configuration only when it names a network
/// address (an unmanaged network's has none, and its prefix length is 0).
fn subnet(v: &Value, cluster: &str) -> Value {
    let ipc = v.get("ip_config").filter(|c| c.is_object()).cloned().unwrap_or(Value::Null);
    let address = text(&ipc, "network_address");
    let ip_config = if address.is_null() {
        Value::Null
    } else {
        let pools: Vec<Value> = list_of(&ipc, "pool").iter().filter_map(|p| p.get("range").and_then(Value::as_str)).filter(|r| !r.is_empty()).map(|r| json!({"range": r})).collect();
        json!({
            "subnet_ip": address,
            "prefix_length": small(&ipc, "prefix_length"),
            "default_gateway_ip": text(&ipc, "default_gateway"),
            "pool_list": pools,
        })
    };
    json!({
        "metadata": {"kind": "subnet", "uuid": text(v, "uuid")},
        "status": {
            "name": text(v, "name"),
            "cluster_reference": {"kind": "cluster", "uuid": cluster},
            "resources": {
                "vlan_id": small(v, "vlan_id"),
                "subnet_type": "VLAN",
                "vswitch_name": text(v, "vswitch_name"),
                "ip_config": ip_config,
            }
        }
    })
}

/// A time in microseconds since the epoch as RFC 3339 (`None`: not a
/// non-negative integer).
fn usecs(v: &Value, k: &str) -> Value {
    v.get(k).and_then(Value::as_u64).and_then(|u| i64::try_from(u / 1_000_000).ok()).map_or(Value::Null, |s| json!(crate::time::format_time(s)))
}

/// An image of the Prism Element's image service as a v3 image: on the
/// Prism Element's cluster (its storage container is one of the
/// cluster's), its size when asked with `include_vm_disk_sizes`, its
/// annotation as the description, its times from microseconds.
fn image(v: &Value, cluster: &str) -> Value {
    json!({
        "metadata": {"kind": "image", "uuid": text(v, "uuid"), "creation_time": usecs(v, "created_time_in_usecs"), "last_update_time": usecs(v, "updated_time_in_usecs")},
        "status": {
            "name": text(v, "name"),
            "description": text(v, "annotation"),
            "resources": {
                "image_type": text(v, "image_type"),
                "size_bytes": num(v, "vm_disk_size"),
                "current_cluster_reference_list": [{"kind": "cluster", "uuid": cluster}],
            }
        }
    })
}

/// The error resource of a kind a Prism Element does not serve.
pub fn not_served(kind: Kind) -> String {
    format!(
        "{} are not collected from a Prism Element: this endpoint is one, and the collector reads only clusters, hosts, VMs (with their disks), storage containers, subnets and images through its v2.0 API (a Prism Central serves the rest)",
        kind.plural()
    )
}

/// What v2.0 cannot tell about a normalized record, taken back out of it
/// (normalization reads an absent v3 field as a fact: a VM without
/// `guest_tools` as one without guest tools).
pub fn unknown_fields(kind: Kind, data: &mut Value) {
    if kind == Kind::Vm
        && let Some(o) = data.as_object_mut()
    {
        o.insert("guest_tools_installed".into(), Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{self, Context};

    const PE: &str = "00061de6-4d87-1d4a-0000-00000000a9b3";

    fn ctx() -> Context {
        Context {
            account: Some(PE.into()),
            base_url: "https://pe.example:9440".into(),
            cluster_names: [(PE.to_string(), "pe-a".to_string())].into(),
            ..Context::default()
        }
    }

    fn cluster_body() -> Value {
        json!({
            "id": format!("{PE}::1234"), "uuid": PE, "name": "pe-a", "cluster_external_ipaddress": "10.0.0.2",
            "timezone": "UTC", "cluster_functions": ["NDFS"], "num_nodes": 3, "version": "6.8.1",
            "full_version": "el8.5-release-fraser-6.8.1-stable", "hypervisor_types": ["kKvm"],
            "name_servers": ["10.0.0.53"], "ntp_servers": ["0.pool.ntp.org"], "cluster_arch": "X86_64",
            "cluster_redundancy_state": {"current_redundancy_factor": 2, "desired_redundancy_factor": 2}, "multicluster": false
        })
    }

    fn vm_body() -> Value {
        json!({
            "uuid": "vm-1", "name": "db-01", "description": "primary", "power_state": "on", "num_vcpus": 2, "num_cores_per_vcpu": 4,
            "memory_mb": 8192, "host_uuid": "host-1", "machine_type": "pc", "boot": {"uefi_boot": true},
            "vm_disk_info": [
                {"disk_address": {"device_bus": "scsi", "device_index": 0, "vmdisk_uuid": "disk-1"}, "is_cdrom": false, "size": 107374182400u64, "storage_container_uuid": "ctr-1"},
                {"disk_address": {"device_bus": "ide", "device_index": 0}, "is_cdrom": true, "is_empty": true}
            ],
            "vm_nics": [{"mac_address": "50:6b:8d:00:00:01", "network_uuid": "net-1", "nic_uuid": "nic-1", "ip_address": "10.0.1.5", "ip_addresses": ["10.0.1.5", "10.0.1.6"], "is_connected": true}]
        })
    }

    #[test]
    fn pages_read_either_total_and_refuse_what_is_not_a_list() {
        let p = parse_page(br#"{"metadata":{"grand_total_entities":9,"total_entities":7,"count":2,"page":1},"entities":[{"uuid":"a"},{"uuid":"b"}]}"#).unwrap();
        assert_eq!((p.total, p.entities.len()), (Some(7), 2));
        assert_eq!(parse_page(br#"{"metadata":{"grand_total_entities":3},"entities":[]}"#).unwrap().total, Some(3));
        let p = parse_page(br#"{"metadata":{"total_entities":"many"}}"#).unwrap();
        assert_eq!((p.total, p.entities.len()), (None, 0), "a total of another type is no total; no entities is an empty page");
        assert_eq!(parse_page(br#"{"metadata":{"total_entities":18446744073709551615},"entities":[]}"#).unwrap().total, Some(u64::MAX));
        assert!(parse_page(br#"{"entities":{"uuid":"a"}}"#).is_err());
        assert!(parse_page(br#"[1,2]"#).is_err());
        assert!(parse_page(br#"{"entities":[{"uuid":"a"}"#).is_err(), "truncated");
    }

    #[test]
    fn page_paths_use_each_lists_parameters() {
        assert_eq!(
            page_path(Kind::Vm, None, 200, 100),
            "/PrismGateway/services/rest/v2.0/vms/?offset=200&length=100&include_vm_disk_config=true&include_vm_nic_config=true"
        );
        assert_eq!(page_path(Kind::Host, None, 0, 100), "/PrismGateway/services/rest/v2.0/hosts/?page=1&count=100");
        assert_eq!(page_path(Kind::StorageContainer, None, 200, 100), "/PrismGateway/services/rest/v2.0/storage_containers/?page=3&count=100");
        // A one-entity read at any offset is that entity's page.
        assert_eq!(page_path(Kind::Host, None, 7, 1), "/PrismGateway/services/rest/v2.0/hosts/?page=8&count=1");
        assert_eq!(page_path(Kind::Host, None, 0, 0), "/PrismGateway/services/rest/v2.0/hosts/?page=1&count=0", "no division by zero");
        assert_eq!(page_path(Kind::Subnet, None, 100, 100), "/PrismGateway/services/rest/v2.0/networks/?offset=100&length=100");
        assert_eq!(page_path(Kind::Image, None, 0, 50), "/PrismGateway/services/rest/v2.0/images/?offset=0&length=50&include_vm_disk_sizes=true");
    }

    #[test]
    fn a_prism_element_is_told_from_a_prism_central() {
        assert_eq!(is_prism_element(&cluster_body()), Ok(()));
        let mut no_functions = cluster_body();
        no_functions.as_object_mut().unwrap().remove("cluster_functions");
        assert_eq!(is_prism_element(&no_functions), Ok(()));
        let mut pc = cluster_body();
        pc["cluster_functions"] = json!(["MULTICLUSTER"]);
        assert!(is_prism_element(&pc).unwrap_err().contains("MULTICLUSTER"));
        for not in [json!({"uuid": ""}), json!({"name": "x"}), json!({"uuid": 7}), json!([]), json!("pe")] {
            assert!(is_prism_element(&not).is_err(), "{not}");
        }
    }

    #[test]
    fn the_cluster_is_a_region_with_what_v2_says() {
        let raw = adapt(Kind::Cluster, &cluster_body(), PE).unwrap();
        let (cs, region) = normalize::cluster(&ctx(), raw).unwrap().expect("not the Prism Central pseudo-cluster");
        assert_eq!((cs.resource_id.as_str(), cs.region_code.as_deref(), region.region_code.as_str()), (PE, Some(PE), PE));
        assert_eq!(cs.data["aos_version"], "6.8.1");
        assert_eq!(cs.data["num_nodes"], 3);
        assert_eq!(cs.data["hypervisor_types"], json!(["AHV"]));
        assert_eq!(cs.data["redundancy_factor"], 2);
        assert_eq!(cs.data["external_ip"], "10.0.0.2");
        assert_eq!(cs.data["ntp_servers"], json!(["0.pool.ntp.org"]));
        assert_eq!(cs.data["service_list"], json!([]), "v2.0's cluster functions are another vocabulary: not carried over");
        assert!(cs.data["created_at"].is_null() && cs.launched_at.is_none(), "v2.0 has no creation time");
        // Mixed hypervisors: nodes counted, no type guessed.
        let mut mixed = cluster_body();
        mixed["hypervisor_types"] = json!(["kKvm", "kVMware"]);
        let (cs, _) = normalize::cluster(&ctx(), adapt(Kind::Cluster, &mixed, PE).unwrap()).unwrap().unwrap();
        assert_eq!((cs.data["num_nodes"].clone(), cs.data["hypervisor_types"].clone()), (json!(3), json!([])));
    }

    #[test]
    fn a_vm_keeps_its_disks_nics_and_the_prism_elements_cluster() {
        let cs = normalize::service_of(Kind::Vm, &ctx(), adapt(Kind::Vm, &vm_body(), PE).unwrap()).unwrap();
        assert_eq!((cs.resource_id.as_str(), cs.name.as_str(), cs.region_code.as_deref()), ("vm-1", "db-01", Some(PE)));
        assert_eq!(cs.data["cluster"], json!({"uuid": PE, "name": "pe-a"}));
        assert_eq!((cs.data["vcpus"].clone(), cs.data["memory_mib"].clone()), (json!(8), json!(8192)));
        assert_eq!(cs.instance_type.as_deref(), Some("8vCPU-8GiB"));
        assert_eq!(cs.data["power_state"], "ON");
        assert_eq!(cs.data["compute"]["instance_state"], "RUNNING");
        assert_eq!((cs.data["boot_type"].clone(), cs.data["machine_type"].clone()), (json!("UEFI"), json!("PC")));
        assert_eq!(cs.data["host"], json!({"uuid": "host-1", "name": null}));
        let disks = cs.data["disks"].as_array().unwrap();
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0]["uuid"], "disk-1");
        assert_eq!((disks[0]["adapter_type"].clone(), disks[0]["size_bytes"].clone()), (json!("SCSI"), json!(107374182400u64)));
        assert_eq!(disks[0]["storage_container_uuid"], "ctr-1");
        assert_eq!((disks[1]["device_type"].clone(), disks[1]["uuid"].clone()), (json!("CDROM"), Value::Null));
        assert_eq!(cs.data["disk_total_bytes"], 107374182400u64, "CD-ROMs are not counted");
        assert_eq!(cs.ip_addresses, vec!["10.0.1.5", "10.0.1.6"]);
        assert_eq!(cs.data["nics"][0]["subnet"], json!({"uuid": "net-1", "name": null}));
        assert_eq!(normalize::disks_of(&cs).len(), 1, "the disk with a uuid is a resource of its own");
        let mut data = cs.data.clone();
        unknown_fields(Kind::Vm, &mut data);
        assert!(data["guest_tools_installed"].is_null(), "v2.0 does not say");
    }

    #[test]
    fn hosts_and_containers_map_to_the_same_fields() {
        let raw = json!({"uuid": "host-1", "name": "pe-a-1", "cluster_uuid": PE, "serial": "SN1", "host_type": "HYPER_CONVERGED",
            "cpu_model": "Xeon", "num_cpu_sockets": 2, "num_cpu_cores": 32, "cpu_capacity_in_hz": 64000000000u64, "cpu_frequency_in_hz": 2000000000u64,
            "memory_capacity_in_bytes": 549755813888u64, "hypervisor_address": "10.0.0.10", "hypervisor_full_name": "AHV 20230302.100173",
            "num_vms": 4, "service_vmexternal_ip": "10.0.0.50", "block_serial": "BLK1", "block_model_name": "NX-8155-G8", "hypervisor_type": "kKvm"});
        let h = normalize::service_of(Kind::Host, &ctx(), adapt(Kind::Host, &raw, PE).unwrap()).unwrap();
        assert_eq!((h.data["memory_mib"].clone(), h.data["cpu_frequency_hz"].clone()), (json!(524288), json!(2000000000u64)));
        assert_eq!(h.data["serial_number"], "SN1");
        assert_eq!(h.ip_addresses, vec!["10.0.0.10", "10.0.0.50"]);
        assert_eq!(h.data["cluster"], json!({"uuid": PE, "name": "pe-a"}));
        let sc = json!({"storage_container_uuid": "ctr-1", "name": "default", "cluster_uuid": PE, "max_capacity": 4398046511104u64,
            "total_explicit_reserved_capacity": 0, "advertised_capacity": null, "replication_factor": 2, "compression_enabled": true,
            "compression_delay_in_secs": 0, "erasure_code": "off", "on_disk_dedup": "OFF", "enable_software_encryption": false, "marked_for_removal": false});
        let c = normalize::service_of(Kind::StorageContainer, &ctx(), adapt(Kind::StorageContainer, &sc, PE).unwrap()).unwrap();
        assert_eq!((c.resource_id.as_str(), c.region_code.as_deref(), c.instance_type.as_deref()), ("ctr-1", Some(PE), Some("RF2")));
        assert_eq!((c.data["erasure_code"].clone(), c.data["encrypted"].clone()), (json!("OFF"), json!(false)));
        assert!(c.data["advertised_bytes"].is_null() && c.data["internal"].is_null() && c.data["cache_dedup"].is_null());
    }

    #[test]
    fn hostile_entities_lose_only_what_is_wrong() {
        // Wrong types: left out, the entity kept.
        let raw = json!({"uuid": "vm-2", "name": "x", "num_vcpus": "two", "memory_mb": -5, "power_state": 1, "vm_disk_info": "none",
            "vm_nics": [7, {"ip_addresses": [1, "10.0.0.9"], "ip_address": ""}], "num_cores_per_vcpu": 5000000000u64});
        let cs = normalize::service_of(Kind::Vm, &ctx(), adapt(Kind::Vm, &raw, PE).unwrap()).unwrap();
        assert_eq!((cs.data["num_sockets"].clone(), cs.data["num_vcpus_per_socket"].clone(), cs.data["memory_mib"].clone()), (json!(1), json!(1), json!(0)));
        assert!(cs.data["power_state"].is_null());
        assert_eq!(cs.ip_addresses, vec!["10.0.0.9"]);
        assert_eq!(cs.data["disks"], json!([]));
        // Missing uuid or name: an error naming what is missing.
        for (raw, missing) in [(json!({"name": "x"}), "uuid"), (json!({"uuid": "u"}), "name")] {
            let e = normalize::service_of(Kind::Vm, &ctx(), adapt(Kind::Vm, &raw, PE).unwrap()).unwrap_err();
            assert!(e.contains(missing), "{e}");
        }
        assert!(adapt(Kind::Host, &json!([1]), PE).is_err());
        assert!(adapt(Kind::Category, &json!({}), PE).is_err());
        // A huge node count is no count.
        let mut c = cluster_body();
        c["num_nodes"] = json!(u64::MAX);
        let (cs, _) = normalize::cluster(&ctx(), adapt(Kind::Cluster, &c, PE).unwrap()).unwrap().unwrap();
        assert_eq!(cs.data["num_nodes"], 0);
    }
    /// A managed network (a captured v2.0 body's fields) and an unmanaged
    /// one, as a Prism Central's VLAN subnets are normalized.
    #[test]
    fn networks_are_vlan_subnets_of_the_prism_element() {
        let managed = json!({"logical_timestamp": 284, "vlan_id": 20, "uuid": "net-1", "virtual_switch_uuid": "vs-1", "name": "IPAM_Default", "vswitch_name": "br0",
            "ip_config": {"network_address": "192.168.1.0", "prefix_length": 24, "ipam_enabled": true, "free_ips": 240, "assigned_ips": 16, "num_macs": 13,
                "default_gateway": "192.168.1.1", "dhcp_options": {"domain_name": "ntnxlab", "domain_name_servers": "192.168.1.2"},
                "pool": [{"range": "192.168.1.30 192.168.1.250", "num_free_ips": 211, "num_total_ips": 221}], "dhcp_server_address": "192.168.1.254"}});
        let s = normalize::service_of(Kind::Subnet, &ctx(), adapt(Kind::Subnet, &managed, PE).unwrap()).unwrap();
        assert_eq!((s.resource_id.as_str(), s.name.as_str(), s.region_code.as_deref(), s.instance_type.as_deref()), ("net-1", "IPAM_Default", Some(PE), Some("VLAN")));
        assert_eq!((s.data["vlan_id"].clone(), s.data["vswitch_name"].clone()), (json!(20), json!("br0")));
        assert_eq!((s.data["network"].clone(), s.data["gateway"].clone()), (json!("192.168.1.0/24"), json!("192.168.1.1")));
        assert_eq!(s.data["ip_pools"], json!(["192.168.1.30 192.168.1.250"]));
        assert_eq!(s.data["cluster"], json!({"uuid": PE, "name": "pe-a"}));
        for k in ["state", "created_at", "updated_at", "categories"] {
            assert!(s.data[k].is_null(), "v2.0 has no {k}");
        }
        assert!(s.data.get("vpc").is_none());
        let unmanaged = json!({"vlan_id": 0, "uuid": "net-2", "name": "MANAGEMENT", "vswitch_name": "br0",
            "ip_config": {"prefix_length": 0, "ipam_enabled": false, "free_ips": -1, "assigned_ips": -1, "dhcp_options": {}, "pool": []}});
        let s = normalize::service_of(Kind::Subnet, &ctx(), adapt(Kind::Subnet, &unmanaged, PE).unwrap()).unwrap();
        assert_eq!((s.data["vlan_id"].clone(), s.data["network"].clone(), s.data["gateway"].clone(), s.data["ip_pools"].clone()), (json!(0), Value::Null, Value::Null, json!([])));
    }

    /// An image (a captured v2.0 body's fields): its size, annotation and
    /// times, on the Prism Element's cluster.
    #[test]
    fn images_keep_size_times_and_the_prism_elements_cluster() {
        let raw = json!({"uuid": "img-1", "name": "COS69", "annotation": "CentOS 6.9", "deleted": false, "storage_container_id": 12246,
            "storage_container_uuid": "ctr-1", "logical_timestamp": 1, "image_type": "ISO_IMAGE", "vm_disk_id": "vd-1", "vm_disk_size": 3758096384u64,
            "image_state": "ACTIVE", "created_time_in_usecs": 1505885183934950u64, "updated_time_in_usecs": 1505885190000000u64});
        let i = normalize::service_of(Kind::Image, &ctx(), adapt(Kind::Image, &raw, PE).unwrap()).unwrap();
        assert_eq!((i.resource_id.as_str(), i.name.as_str(), i.region_code.as_deref(), i.instance_type.as_deref()), ("img-1", "COS69", Some(PE), Some("ISO_IMAGE")));
        assert_eq!((i.data["size_bytes"].clone(), i.instance_size), (json!(3758096384u64), Some(3758096384.0)));
        assert_eq!(i.data["description"], "CentOS 6.9");
        assert_eq!((i.data["created_at"].clone(), i.data["updated_at"].clone()), (json!("2017-09-20T05:26:23Z"), json!("2017-09-20T05:26:30Z")));
        assert_eq!(i.launched_at.as_deref(), Some("2017-09-20T05:26:23Z"));
        assert_eq!(i.data["clusters"], json!([{"uuid": PE, "name": "pe-a"}]));
        for k in ["state", "source_uri", "architecture", "categories"] {
            assert!(i.data[k].is_null(), "v2.0 has no {k}");
        }
    }

    /// Hostile networks and images: wrong types are left out, a missing
    /// uuid or name is an error naming it, a non-object is an error.
    #[test]
    fn hostile_networks_and_images_lose_only_what_is_wrong() {
        let raw = json!({"uuid": "net-3", "name": "x", "vlan_id": "ten", "vswitch_name": 5,
            "ip_config": {"network_address": "10.0.0.0", "prefix_length": "24", "default_gateway": 1, "pool": [7, {"range": 8}, {"range": "10.0.0.5 10.0.0.9"}]}});
        let s = normalize::service_of(Kind::Subnet, &ctx(), adapt(Kind::Subnet, &raw, PE).unwrap()).unwrap();
        assert_eq!((s.data["vlan_id"].clone(), s.data["vswitch_name"].clone(), s.data["network"].clone()), (Value::Null, Value::Null, json!("10.0.0.0")));
        assert_eq!((s.data["gateway"].clone(), s.data["ip_pools"].clone()), (Value::Null, json!(["10.0.0.5 10.0.0.9"])));
        let mut huge = raw.clone();
        huge["vlan_id"] = json!(u64::MAX);
        huge["ip_config"] = json!("managed");
        let s = normalize::service_of(Kind::Subnet, &ctx(), adapt(Kind::Subnet, &huge, PE).unwrap()).unwrap();
        assert!(s.data["vlan_id"].is_null() && s.data["network"].is_null());
        let raw = json!({"uuid": "img-2", "name": "y", "vm_disk_size": -1, "image_type": ["DISK_IMAGE"], "created_time_in_usecs": "yesterday", "updated_time_in_usecs": u64::MAX});
        let i = normalize::service_of(Kind::Image, &ctx(), adapt(Kind::Image, &raw, PE).unwrap()).unwrap();
        assert!(i.data["size_bytes"].is_null() && i.instance_size.is_none() && i.instance_type.is_none());
        assert!(i.data["created_at"].is_null());
        assert!(i.data["updated_at"].is_string(), "the largest time still formats");
        for kind in [Kind::Subnet, Kind::Image] {
            for (raw, missing) in [(json!({"name": "x"}), "uuid"), (json!({"uuid": "u"}), "name"), (json!({"uuid": "", "name": "x"}), "uuid")] {
                let e = normalize::service_of(kind, &ctx(), adapt(kind, &raw, PE).unwrap()).unwrap_err();
                assert!(e.contains(missing), "{kind:?}: {e}");
            }
            for not in [json!([1]), json!("net"), json!(null)] {
                assert!(adapt(kind, &not, PE).is_err(), "{kind:?} {not}");
            }
        }
    }
}
