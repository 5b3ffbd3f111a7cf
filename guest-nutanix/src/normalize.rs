//! Prism Central v3 entities → CloudForet records. Pure functions.
//!
//! | v3 kind | group / type              | region               |
//! |---------|---------------------------|----------------------|
//! | vm      | Compute / VirtualMachine  | the VM's cluster     |
//! | host    | Compute / Host            | the host's cluster   |
//! | cluster | Cluster / Cluster         | itself (+ a Region)  |
//! | subnet  | Networking / Subnet       | the subnet's cluster |
//! | image   | Storage / Image           | first cluster holding it |
//!
//! Region code = the Prism Element cluster's uuid (unique across Prism
//! Centrals, unlike cluster names), region name = the cluster's name; the
//! Prism Central pseudo-cluster (service `PRISM_CENTRAL`) is not a region.
//! Labels, primary/major, icons, region map tags and the Server page's
//! fields follow [`crate::console`]. A raw entity
//! that cannot be normalized yields an error message naming the entity, which
//! the collector turns into an ErrorResource.

use crate::console::{self, Locations};
use crate::layout;
use crate::record::{CloudService, CloudServiceType, Region};
use crate::v3::{
    ClusterResources, Entity, HostResources, ImageResources, Item, Kind, ProjectResources, ProtectionRuleResources, RecoveryPlanResources,
    RecoveryPointResources, Ref, SubnetResources, VmResources, VolumeGroupResources,
};
use crate::PROVIDER;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What normalization needs beyond the entity itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// CloudForet `account`: the Prism Central instance (its pseudo-cluster
    /// uuid), or the endpoint host when there is none.
    pub account: Option<String>,
    /// `scheme://host:port` of Prism, for external links.
    pub base_url: String,
    /// Cluster uuid → name, to resolve references that carry only a uuid.
    pub cluster_names: BTreeMap<String, String>,
    /// Option `region_locations`: the Regions' map tags.
    pub locations: Locations,
    /// Kind `guest_tools` asked for: a VM keeps its guest tools as read in
    /// `data.guest_tools` until the `Emitter` takes them out for their own
    /// record (so the VM's record stays as without).
    pub guest_tools: bool,
}

/// CloudForet group and type of a kind.
pub fn group_and_type(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Vm => ("Compute", "VirtualMachine"),
        Kind::Host => ("Compute", "Host"),
        Kind::Cluster => ("Cluster", "Cluster"),
        Kind::Subnet => ("Networking", "Subnet"),
        Kind::Image => ("Storage", "Image"),
        Kind::VolumeGroup => ("Storage", "VolumeGroup"),
        Kind::Project => ("Management", "Project"),
        Kind::Category => ("Management", "Category"),
        Kind::StorageContainer => ("Storage", "StorageContainer"),
        Kind::VmDisk => ("Storage", "Disk"),
        Kind::RecoveryPoint => ("DataProtection", "RecoveryPoint"),
        Kind::ProtectionPolicy => ("DataProtection", "ProtectionPolicy"),
        Kind::RecoveryPlan => ("DataProtection", "RecoveryPlan"),
        Kind::Network(n) => n.group_and_type(),
        Kind::VmTemplate => ("Compute", "VmTemplate"),
        Kind::Alert => ("Operations", "Alert"),
        Kind::LcmEntity => ("Operations", "LcmEntity"),
        Kind::GuestTools => ("Compute", "GuestTools"),
        Kind::Gpu => ("Compute", "Gpu"),
    }
}

/// The CloudServiceType of a kind, with its dynamic layout, the console's
/// labels and primary/major ([`console::type_rules`]) and its icon (under
/// option `icon_base_url`, else inline).
pub fn cloud_service_type(kind: Kind, icon_base_url: Option<&str>) -> CloudServiceType {
    let (group, name) = group_and_type(kind);
    let (metadata, service_code) = match kind {
        Kind::Vm => (layout::vm(), "ahv"),
        Kind::Host => (layout::host(), "ahv"),
        Kind::Cluster => (layout::cluster(), "aos"),
        Kind::Subnet => (layout::subnet(), "ahv"),
        Kind::Image => (layout::image(), "ahv"),
        Kind::VolumeGroup => (layout::volume_group(), "aos"),
        Kind::Project => (layout::project(), "calm"),
        Kind::Category => (layout::category(), "prism"),
        Kind::StorageContainer => (layout::storage_container(), "aos"),
        Kind::VmDisk => (layout::vm_disk(), "ahv"),
        Kind::RecoveryPoint => (layout::recovery_point(), "leap"),
        Kind::ProtectionPolicy => (layout::protection_policy(), "leap"),
        Kind::RecoveryPlan => (layout::recovery_plan(), "leap"),
        Kind::Network(n) => (n.layout(), n.service_code()),
        Kind::VmTemplate => (crate::operations_layout::vm_template(), "ahv"),
        Kind::Alert => (crate::operations_layout::alert(), "prism"),
        Kind::LcmEntity => (crate::operations_layout::lcm_entity(), "lcm"),
        Kind::GuestTools => (crate::operations_layout::guest_tools(), "ahv"),
        Kind::Gpu => (crate::operations_layout::gpu(), "ahv"),
    };
    let rules = console::type_rules(kind);
    CloudServiceType {
        name: name.to_string(),
        group: group.to_string(),
        provider: PROVIDER.to_string(),
        service_code: Some(service_code.to_string()),
        is_primary: rules.is_primary,
        is_major: rules.is_major,
        labels: rules.labels.iter().map(|l| l.as_str().to_string()).collect(),
        tags: vec![(console::ICON_TAG.to_string(), console::icon_url(kind, icon_base_url))],
        metadata,
    }
}

/// A Region for a Prism Element cluster: coded by its uuid, named by its
/// name, on the map where option `region_locations` places it.
pub fn region(name: &str, uuid: &str, locations: &Locations) -> Region {
    let mut tags = vec![("nutanix:cluster_uuid".to_string(), uuid.to_string())];
    if let Some(loc) = locations.of(name, Some(uuid)) {
        tags.extend(loc.tags());
    }
    Region { name: name.to_string(), region_code: uuid.to_string(), provider: PROVIDER.to_string(), tags }
}

/// The Region of a region code a resource carries (its cluster's uuid)
/// that the cluster list did not yield: named by the cluster's name when
/// the resource has it.
pub fn region_of_service(cs: &CloudService, locations: &Locations) -> Option<Region> {
    let code = cs.region_code.as_deref()?;
    let name = cs.data.pointer("/cluster/name").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(code);
    Some(region(name, code, locations))
}

/// The kind whose records have this CloudForet type.
pub fn kind_of_type(ty: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| group_and_type(*k).1 == ty)
}

/// Deserializes one raw entity, with an error naming its uuid when it has one.
pub fn parse_entity<R: DeserializeOwned + Default>(kind: Kind, raw: impl Into<Item>) -> Result<Entity<R>, String> {
    let raw = raw.into();
    raw.parse::<Entity<R>>().map_err(|e| {
        // The position within one entity's text tells a reader nothing.
        let mut e = e.to_string();
        if let Some(at) = e.rfind(" at line ") {
            e.truncate(at);
        }
        match raw.uuid() {
            Some(u) => format!("malformed {} entity {u}: {e}", kind.api_kind()),
            None => format!("malformed {} entity: {e}", kind.api_kind()),
        }
    })
}

fn required(field: &Option<String>, what: &str, kind: Kind, uuid: Option<&str>) -> Result<String, String> {
    match field.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(match uuid {
            Some(u) => format!("malformed {} entity {u}: missing {what}", kind.api_kind()),
            None => format!("malformed {} entity: missing {what}", kind.api_kind()),
        }),
    }
}

/// The entity's uuid; an empty one is as good as none (and the error names
/// the entity by its name, when it has one).
fn uuid_of<R>(kind: Kind, e: &Entity<R>) -> Result<String, String> {
    required(&e.metadata.uuid, "metadata.uuid", kind, None).map_err(|err| match e.status.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("malformed {} entity '{name}': empty or missing metadata.uuid", kind.api_kind()),
        None => err,
    })
}

fn name_of<R>(kind: Kind, e: &Entity<R>, uuid: &str) -> Result<String, String> {
    required(&e.status.name, "status.name", kind, Some(uuid))
}

pub(crate) fn link(ctx: &Context, kind: Kind, uuid: &str) -> String {
    format!("{}/console/#page/explore/ebrowser/{}/?entity_id={uuid}", ctx.base_url, kind.plural())
}

fn tags(categories: &Option<BTreeMap<String, String>>) -> Vec<(String, String)> {
    categories
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn cluster_ref(ctx: &Context, r: &Option<Ref>) -> Value {
    match r {
        Some(r) => {
            let name = r
                .name
                .clone()
                .or_else(|| r.uuid.as_ref().and_then(|u| ctx.cluster_names.get(u).cloned()));
            json!({"uuid": r.uuid, "name": name})
        }
        None => Value::Null,
    }
}

/// The region code of a cluster reference: its uuid (looked up by name
/// when the reference has none; the name itself when the cluster list does
/// not know it either).
fn region_of(ctx: &Context, r: &Option<Ref>) -> Option<String> {
    let r = r.as_ref()?;
    r.uuid.clone().filter(|u| !u.is_empty()).or_else(|| {
        let name = r.name.as_ref()?;
        ctx.cluster_names.iter().find(|(_, n)| *n == name).map(|(u, _)| u.clone()).or_else(|| Some(name.clone()))
    })
}


fn ref_json(r: &Option<Ref>) -> Value {
    match r {
        Some(r) => json!({"uuid": r.uuid, "name": r.name}),
        None => Value::Null,
    }
}

/// `4vCPU-16GiB`; memory with one decimal when not a whole number of GiB.
pub fn instance_type(vcpus: u32, memory_mib: u64) -> String {
    let gib = memory_mib as f64 / 1024.0;
    if memory_mib.is_multiple_of(1024) {
        format!("{vcpus}vCPU-{}GiB", memory_mib / 1024)
    } else {
        format!("{vcpus}vCPU-{gib:.1}GiB")
    }
}

pub(crate) fn service(
    ctx: &Context,
    kind: Kind,
    name: String,
    uuid: String,
    region_code: Option<String>,
    data: Value,
) -> CloudService {
    let (group, ty) = group_and_type(kind);
    CloudService {
        name,
        provider: PROVIDER.to_string(),
        cloud_service_group: group.to_string(),
        cloud_service_type: ty.to_string(),
        account: ctx.account.clone(),
        region_code,
        instance_type: None,
        instance_size: None,
        ip_addresses: Vec::new(),
        tags: Vec::new(),
        external_link: Some(link(ctx, kind, &uuid)),
        resource_id: uuid,
        launched_at: None,
        data,
        metadata: layout::service_reference(group, ty),
    }
}

pub fn vm(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<VmResources> = parse_entity(Kind::Vm, raw)?;
    let uuid = uuid_of(Kind::Vm, &e)?;
    let name = name_of(Kind::Vm, &e, &uuid)?;
    let r = &e.status.resources;
    // vCPUs = sockets × cores per socket × threads per core: the logical
    // CPUs the guest OS sees (each field kept in `data` as well).
    let sockets = r.num_sockets.unwrap_or(1);
    let per_socket = r.num_vcpus_per_socket.unwrap_or(1);
    let vcpus = sockets.saturating_mul(per_socket).saturating_mul(r.num_threads_per_core.unwrap_or(1).max(1));
    let memory_mib = r.memory_size_mib.unwrap_or(0);

    let disks: Vec<Value> = r
        .disk_list
        .iter()
        .map(|d| {
            let size = d.disk_size_bytes.or(d.disk_size_mib.map(|m| m.saturating_mul(1024 * 1024)));
            let props = d.device_properties.as_ref();
            let addr = props.and_then(|p| p.disk_address.as_ref());
            json!({
                "uuid": d.uuid,
                "device_type": props.and_then(|p| p.device_type.clone()),
                "adapter_type": addr.and_then(|a| a.adapter_type.clone()),
                "device_index": addr.and_then(|a| a.device_index),
                "size_bytes": size,
                "image_uuid": d.data_source_reference.as_ref().and_then(|s| s.uuid.clone()),
                "storage_container_uuid": d.storage_config.as_ref().and_then(|c| c.pointer("/storage_container_reference/uuid")).and_then(Value::as_str),
            })
        })
        .collect();
    let disk_total: u64 = r
        .disk_list
        .iter()
        .filter(|d| {
            d.device_properties
                .as_ref()
                .and_then(|p| p.device_type.as_deref())
                .is_none_or(|t| t == "DISK")
        })
        .map(|d| d.disk_size_bytes.or(d.disk_size_mib.map(|m| m.saturating_mul(1024 * 1024))).unwrap_or(0))
        .fold(0u64, u64::saturating_add);

    let mut ips = Vec::new();
    let nics: Vec<Value> = r
        .nic_list
        .iter()
        .map(|n| {
            let nic_ips: Vec<String> = n.ip_endpoint_list.iter().filter_map(|i| i.ip.clone()).collect();
            for ip in &nic_ips {
                if !ips.contains(ip) {
                    ips.push(ip.clone());
                }
            }
            json!({
                "uuid": n.uuid,
                "mac_address": n.mac_address,
                "nic_type": n.nic_type,
                "is_connected": n.is_connected,
                "subnet": ref_json(&n.subnet_reference),
                "ip_addresses": nic_ips,
            })
        })
        .collect();

    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "state": e.status.state,
        "power_state": r.power_state,
        "hypervisor_type": r.hypervisor_type,
        "machine_type": r.machine_type,
        "boot_type": r.boot_config.as_ref().and_then(|b| b.boot_type.clone()),
        "num_sockets": sockets,
        "num_vcpus_per_socket": per_socket,
        "num_threads_per_core": r.num_threads_per_core,
        "vcpus": vcpus,
        "memory_mib": memory_mib,
        "disks": disks,
        "disk_total_bytes": disk_total,
        "nics": nics,
        "cluster": cluster_ref(ctx, &e.status.cluster_reference),
        "host": ref_json(&r.host_reference),
        "guest_tools_installed": r.guest_tools.is_some(),
        "categories": e.metadata.categories,
        "project": e.metadata.project_reference.as_ref().and_then(|p| p.name.clone()),
        "owner": e.metadata.owner_reference.as_ref().and_then(|p| p.name.clone()),
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let mut data = data;
    // Only where a VM has them, so VMs without keep their records.
    if !r.gpu_list.is_empty() {
        data["gpus"] = r.gpu_list.iter().map(|g| json!({"vendor": g.vendor, "mode": g.mode, "device_id": g.device_id, "name": g.name, "uuid": g.uuid})).collect();
    }
    if let Some(on) = r.vtpm_config.as_ref().and_then(|t| t.vtpm_enabled) {
        data["vtpm_enabled"] = json!(on);
    }
    // The fields CloudForet's Server page shows (as its other collectors
    // fill them: memory in GiB, state RUNNING/STOPPED).
    let itype = instance_type(vcpus, memory_mib);
    let guest_os = r.guest_tools.as_ref().and_then(|g| g.pointer("/nutanix_guest_tools/guest_os_version").or_else(|| g.get("guestOsVersion"))).and_then(Value::as_str);
    data["hardware"] = json!({"core": vcpus, "memory": memory_mib as f64 / 1024.0});
    data["os"] = console::vm_os(guest_os, r.machine_type.as_deref());
    data["compute"] = json!({
        "instance_id": uuid,
        "instance_state": console::instance_state(r.power_state.as_deref()),
        "instance_type": itype,
        "az": data["cluster"]["name"],
    });
    data["primary_ip_address"] = json!(ips.first());
    if ctx.guest_tools {
        data["guest_tools"] = r.guest_tools.clone().unwrap_or(Value::Null);
    }
    let region = region_of(ctx, &e.status.cluster_reference);
    let mut cs = service(ctx, Kind::Vm, name, uuid, region, data);
    cs.instance_type = Some(itype);
    cs.instance_size = Some(f64::from(vcpus));
    cs.ip_addresses = ips;
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// A cluster: `Ok(None)` for the Prism Central pseudo-cluster.
pub fn cluster(ctx: &Context, raw: impl Into<Item>) -> Result<Option<(CloudService, Region)>, String> {
    let e: Entity<ClusterResources> = parse_entity(Kind::Cluster, raw)?;
    if e.status.resources.is_prism_central() {
        return Ok(None);
    }
    let uuid = uuid_of(Kind::Cluster, &e)?;
    let name = name_of(Kind::Cluster, &e, &uuid)?;
    let r = &e.status.resources;
    let config = r.config.as_ref();
    let servers = r.nodes.as_ref().map(|n| n.hypervisor_server_list.as_slice()).unwrap_or_default();
    let mut hv_types: Vec<String> = servers.iter().filter_map(|s| s.kind.clone()).collect();
    hv_types.sort();
    hv_types.dedup();
    let aos = config
        .and_then(|c| c.software_map.as_ref())
        .and_then(|m| m.get("NOS"))
        .and_then(|v| v.version.clone())
        .or_else(|| config.and_then(|c| c.build.as_ref()).and_then(|b| b.version.clone()));
    let network = r.network.as_ref();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "state": e.status.state,
        "aos_version": aos,
        "full_version": config.and_then(|c| c.build.as_ref()).and_then(|b| b.full_version.clone()),
        "service_list": config.map(|c| c.service_list.clone()).unwrap_or_default(),
        "hypervisor_types": hv_types,
        "num_nodes": servers.len(),
        "hypervisor_servers": servers.iter().map(|s| json!({"ip": s.ip, "type": s.kind, "version": s.version})).collect::<Vec<_>>(),
        "external_ip": network.and_then(|n| n.external_ip.clone()),
        "name_servers": network.map(|n| n.name_server_ip_list.clone()).unwrap_or_default(),
        "ntp_servers": network.map(|n| n.ntp_server_ip_list.clone()).unwrap_or_default(),
        "redundancy_factor": config.and_then(|c| c.redundancy_factor),
        "architecture": config.and_then(|c| c.cluster_arch.clone()),
        "timezone": config.and_then(|c| c.timezone.clone()),
        "encryption_status": config.and_then(|c| c.encryption_status.clone()),
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let reg = region(&name, &uuid, &ctx.locations);
    let mut cs = service(ctx, Kind::Cluster, name, uuid.clone(), Some(uuid), data);
    cs.ip_addresses = network.and_then(|n| n.external_ip.clone()).into_iter().collect();
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(Some((cs, reg)))
}

pub fn host(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<HostResources> = parse_entity(Kind::Host, raw)?;
    let uuid = uuid_of(Kind::Host, &e)?;
    let name = name_of(Kind::Host, &e, &uuid)?;
    let r = &e.status.resources;
    let hv = r.hypervisor.as_ref();
    let cvm_ip = r.controller_vm.as_ref().and_then(|c| c.ip.clone());
    let mut data = json!({
        "uuid": uuid,
        "name": name,
        "state": e.status.state,
        "host_type": r.host_type,
        "serial_number": r.serial_number,
        "cpu_model": r.cpu_model,
        "num_cpu_sockets": r.num_cpu_sockets,
        "num_cpu_cores": r.num_cpu_cores,
        "cpu_capacity_hz": r.cpu_capacity_hz,
        "cpu_frequency_hz": r.cpu_frequency_hz,
        "memory_mib": r.memory_capacity_mib,
        "hypervisor": {
            "ip": hv.and_then(|h| h.ip.clone()),
            "full_name": hv.and_then(|h| h.hypervisor_full_name.clone()),
            "num_vms": hv.and_then(|h| h.num_vms),
        },
        "controller_vm_ip": cvm_ip,
        "block": {
            "serial_number": r.block.as_ref().and_then(|b| b.block_serial_number.clone()),
            "model": r.block.as_ref().and_then(|b| b.block_model.clone()),
        },
        "cluster": cluster_ref(ctx, &e.status.cluster_reference),
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    // The Server page's fields. Prism reports no power state of a host:
    // its instance_state stays null.
    let hv_ip = hv.and_then(|h| h.ip.clone());
    data["hardware"] = json!({"core": r.num_cpu_cores, "memory": r.memory_capacity_mib.map(|m| m as f64 / 1024.0)});
    data["os"] = console::host_os(hv.and_then(|h| h.hypervisor_full_name.as_deref()));
    data["compute"] = json!({"instance_id": uuid, "instance_state": Value::Null, "instance_type": r.cpu_model, "az": data["cluster"]["name"]});
    data["primary_ip_address"] = json!(hv_ip.as_ref().or(cvm_ip.as_ref()));
    let region = region_of(ctx, &e.status.cluster_reference);
    let mut cs = service(ctx, Kind::Host, name, uuid, region, data);
    cs.ip_addresses = hv.and_then(|h| h.ip.clone()).into_iter().chain(cvm_ip).collect();
    cs.instance_type = r.cpu_model.clone();
    cs.instance_size = r.num_cpu_cores.map(f64::from);
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

pub fn subnet(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<SubnetResources> = parse_entity(Kind::Subnet, raw)?;
    let uuid = uuid_of(Kind::Subnet, &e)?;
    let name = name_of(Kind::Subnet, &e, &uuid)?;
    let r = &e.status.resources;
    let ipc = r.ip_config.as_ref();
    let network = ipc.and_then(|c| match (&c.subnet_ip, c.prefix_length) {
        (Some(ip), Some(len)) => Some(format!("{ip}/{len}")),
        (Some(ip), None) => Some(ip.clone()),
        _ => None,
    });
    let mut data = json!({
        "uuid": uuid,
        "name": name,
        "state": e.status.state,
        "subnet_type": r.subnet_type,
        "vlan_id": r.vlan_id,
        "vswitch_name": r.vswitch_name,
        "network": network,
        "gateway": ipc.and_then(|c| c.default_gateway_ip.clone()),
        "ip_pools": ipc.map(|c| c.pool_list.iter().filter_map(|p| p.range.clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "cluster": cluster_ref(ctx, &e.status.cluster_reference),
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    // Only an overlay subnet has a VPC: a VLAN subnet's record stays as it
    // was before VPCs were read (no `vpc` key at all).
    if let Some(vpc) = r.vpc_reference.as_ref().filter(|v| v.uuid.as_deref().is_some_and(|u| !u.is_empty())) {
        data["vpc"] = ref_json(&Some(vpc.clone()));
    }
    let region = region_of(ctx, &e.status.cluster_reference);
    let mut cs = service(ctx, Kind::Subnet, name, uuid, region, data);
    cs.instance_type = r.subnet_type.clone();
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

pub fn image(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<ImageResources> = parse_entity(Kind::Image, raw)?;
    let uuid = uuid_of(Kind::Image, &e)?;
    let name = name_of(Kind::Image, &e, &uuid)?;
    let r = &e.status.resources;
    let clusters: Vec<Value> = r
        .current_cluster_reference_list
        .iter()
        .map(|c| cluster_ref(ctx, &Some(c.clone())))
        .collect();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "state": e.status.state,
        "image_type": r.image_type,
        "size_bytes": r.size_bytes,
        "source_uri": r.source_uri,
        "architecture": r.architecture,
        "clusters": clusters,
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let region = r
        .current_cluster_reference_list
        .first()
        .and_then(|c| region_of(ctx, &Some(c.clone())));
    let mut cs = service(ctx, Kind::Image, name, uuid, region, data);
    cs.instance_type = r.image_type.clone();
    // Bytes: the console's Storage Size sums them.
    cs.instance_size = r.size_bytes.map(|b| b as f64);
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

pub fn volume_group(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<VolumeGroupResources> = parse_entity(Kind::VolumeGroup, raw)?;
    let uuid = uuid_of(Kind::VolumeGroup, &e)?;
    let name = name_of(Kind::VolumeGroup, &e, &uuid)?;
    let r = &e.status.resources;
    const MIB: u64 = 1024 * 1024;
    let disks: Vec<Value> = r
        .disk_list
        .iter()
        .map(|d| json!({"index": d.index, "size_bytes": d.disk_size_mib.map(|m| m.saturating_mul(MIB)), "storage_container_uuid": d.storage_container_uuid}))
        .collect();
    let size: u64 = r.disk_list.iter().filter_map(|d| d.disk_size_mib).fold(0u64, |a, m| a.saturating_add(m.saturating_mul(MIB)));
    let attachments: Vec<Value> = r
        .attachment_list
        .iter()
        .map(|a| json!({"vm": ref_json(&a.vm_reference), "iscsi_initiator_name": a.iscsi_initiator_name}))
        .collect();
    let attached_vms: Vec<Value> = r.attachment_list.iter().filter(|a| a.vm_reference.is_some()).map(|a| ref_json(&a.vm_reference)).collect();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "sharing_status": r.sharing_status,
        "flash_mode": r.flash_mode,
        "iscsi_target_prefix": r.iscsi_target_prefix,
        "disks": disks,
        "disk_count": r.disk_list.len(),
        "size_bytes": size,
        "attachments": attachments,
        "attached_vms": attached_vms,
        "cluster": cluster_ref(ctx, &e.status.cluster_reference),
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let region = region_of(ctx, &e.status.cluster_reference);
    let mut cs = service(ctx, Kind::VolumeGroup, name, uuid, region, data);
    cs.instance_type = r.sharing_status.clone();
    cs.instance_size = Some(size as f64);
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// Each disk of a normalized VM as its own `Storage/Disk` resource (the
/// VM's region, account, tags and link; disks without a uuid are left out,
/// as they cannot be told apart between runs).
pub fn disks_of(vm: &CloudService) -> Vec<CloudService> {
    let disks = vm.data.get("disks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    disks
        .iter()
        .filter_map(|d| {
            let uuid = d.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty())?.to_string();
            let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
            let slot = match (text("adapter_type"), d.get("device_index").and_then(Value::as_u64)) {
                (Some(a), Some(i)) => format!("{a}.{i}"),
                (Some(a), None) => a,
                (None, Some(i)) => format!("disk {i}"),
                (None, None) => uuid.chars().take(8).collect(),
            };
            let size = d.get("size_bytes").and_then(Value::as_u64);
            let data = json!({
                "uuid": uuid,
                "vm": {"uuid": vm.resource_id, "name": vm.name},
                "device_type": d.get("device_type"),
                "adapter_type": d.get("adapter_type"),
                "device_index": d.get("device_index"),
                "size_bytes": size,
                "image_uuid": d.get("image_uuid"),
                "storage_container_uuid": d.get("storage_container_uuid"),
                "cluster": vm.data.get("cluster"),
            });
            let (group, ty) = group_and_type(Kind::VmDisk);
            Some(CloudService {
                name: format!("{} {slot}", vm.name),
                provider: PROVIDER.to_string(),
                cloud_service_group: group.to_string(),
                cloud_service_type: ty.to_string(),
                account: vm.account.clone(),
                region_code: vm.region_code.clone(),
                instance_type: text("device_type"),
                // Bytes, for Storage Size: a CD-ROM's size is the image
                // it holds, counted with the images already.
                instance_size: size.filter(|_| text("device_type").as_deref() != Some("CDROM")).map(|b| b as f64),
                ip_addresses: Vec::new(),
                tags: vm.tags.clone(),
                resource_id: uuid,
                external_link: vm.external_link.clone(),
                launched_at: vm.launched_at.clone(),
                data,
                metadata: layout::service_reference(group, ty),
            })
        })
        .collect()
}

/// A storage container, from the v4 clustermgmt item (v4 only: there is no
/// v3 shape to adapt it to).
pub fn storage_container(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let Value::Object(v) = raw.into().into_value() else { return Err("a storage container is not a JSON object".into()) };
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let uuid = text("containerExtId").or_else(|| text("extId")).ok_or("malformed storage_container entity: missing containerExtId")?;
    let name = text("name").ok_or_else(|| format!("malformed storage_container entity {uuid}: missing name"))?;
    let bytes = |k: &str| v.get(k).and_then(Value::as_u64);
    let flag = |k: &str| v.get(k).and_then(Value::as_bool);
    let cluster = text("clusterExtId");
    let cluster_name = text("clusterName").or_else(|| cluster.as_ref().and_then(|c| ctx.cluster_names.get(c).cloned()));
    let region = region_of(ctx, &Some(Ref { uuid: cluster.clone(), name: cluster_name.clone() }));
    let rf = v.get("replicationFactor").and_then(Value::as_u64);
    let capacity = bytes("maxCapacityBytes");
    let data = json!({
        "uuid": uuid,
        "name": name,
        "cluster": if cluster.is_some() || cluster_name.is_some() { json!({"uuid": cluster, "name": cluster_name}) } else { Value::Null },
        "max_capacity_bytes": capacity,
        "reserved_bytes": bytes("logicalExplicitReservedCapacityBytes"),
        "advertised_bytes": bytes("logicalAdvertisedCapacityBytes"),
        "replication_factor": rf,
        "compression": flag("isCompressionEnabled"),
        "compression_delay_s": v.get("compressionDelaySecs").and_then(Value::as_u64),
        "erasure_code": text("erasureCode"),
        "on_disk_dedup": text("onDiskDedup"),
        "cache_dedup": text("cacheDeduplication"),
        // v4.0's field; `isEncrypted` only where it is missing.
        "encrypted": flag("isSoftwareEncryptionEnabled").or(flag("isEncrypted")),
        "marked_for_removal": flag("isMarkedForRemoval"),
        "internal": flag("isInternal"),
    });
    let mut cs = service(ctx, Kind::StorageContainer, name, uuid, region, data);
    cs.instance_type = rf.map(|rf| format!("RF{rf}"));
    cs.instance_size = capacity.map(|b| b as f64);
    Ok(cs)
}

pub fn project(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<ProjectResources> = parse_entity(Kind::Project, raw)?;
    let uuid = uuid_of(Kind::Project, &e)?;
    let name = name_of(Kind::Project, &e, &uuid)?;
    let r = &e.status.resources;
    let refs = |list: &[Ref]| list.iter().map(|x| ref_json(&Some(x.clone()))).collect::<Vec<_>>();
    let clusters: Vec<Value> = r.cluster_reference_list.iter().map(|c| cluster_ref(ctx, &Some(c.clone()))).collect();
    let quotas: Vec<Value> = r
        .resource_domain
        .iter()
        .flat_map(|d| &d.resources)
        .map(|q| json!({"resource_type": q.resource_type, "limit": q.limit, "used": q.value}))
        .collect();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "state": e.status.state,
        "is_default": r.is_default.unwrap_or(false),
        "subnets": refs(&r.subnet_reference_list),
        "users": refs(&r.user_reference_list),
        "user_count": r.user_reference_list.len(),
        "clusters": clusters,
        "quotas": quotas,
        "categories": e.metadata.categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    // A project spans clusters: no single region.
    let mut cs = service(ctx, Kind::Project, name, uuid, None, data);
    cs.tags = tags(&e.metadata.categories);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// A category value (`Key:Value`), from v3's value list or v4's adapted
/// item; its id is `Key:Value` whichever API read it (v4's extId is kept in
/// `data.ext_id`), so switching APIs never duplicates it.
pub fn category(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let raw = raw.into().into_value();
    let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(key), Some(value)) = (s("name").filter(|k| !k.is_empty()), s("value")) else {
        return Err("malformed category value: missing name or value".to_string());
    };
    let id = format!("{key}:{value}");
    let data = json!({
        "key": key,
        "value": value,
        "description": s("description"),
        "system_defined": raw.get("system_defined").and_then(Value::as_bool).unwrap_or(false),
        "ext_id": s("ext_id"),
    });
    let mut cs = service(ctx, Kind::Category, id.clone(), id, None, data);
    // Prism has no page per value; its categories page lists them.
    cs.external_link = Some(format!("{}/console/#page/explore/categories", ctx.base_url));
    cs.tags = vec![(key, value)];
    Ok(cs)
}

/// A protection policy (v3 protection rule, or v4's adapted): its
/// schedules, its RPO (the shortest of its schedules'; none when no
/// schedule states one), the categories whose VMs it protects and its
/// locations. Its RPO flags are [`crate::protection::Facts::flag_policy`]'s.
pub fn protection_policy(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<ProtectionRuleResources> = parse_entity(Kind::ProtectionPolicy, raw)?;
    let uuid = uuid_of(Kind::ProtectionPolicy, &e)?;
    let name = name_of(Kind::ProtectionPolicy, &e, &uuid)?;
    let r = &e.status.resources;
    let schedules: Vec<Value> = r
        .availability_zone_connectivity_list
        .iter()
        .flat_map(|c| c.snapshot_schedule_list.iter().map(move |s| (c, s)))
        .map(|(c, s)| {
            json!({
                "rpo_secs": s.recovery_point_objective_secs,
                "snapshot_type": s.snapshot_type,
                "local_retention": s.local_snapshot_retention_policy.as_ref().and_then(|p| p.num_snapshots),
                "remote_retention": s.remote_snapshot_retention_policy.as_ref().and_then(|p| p.num_snapshots),
                "source_index": c.source_availability_zone_index,
                "destination_index": c.destination_availability_zone_index,
            })
        })
        .collect();
    let rpo = r
        .availability_zone_connectivity_list
        .iter()
        .flat_map(|c| &c.snapshot_schedule_list)
        .filter_map(|s| s.recovery_point_objective_secs)
        .filter(|s| *s > 0)
        .min();
    let filter = r.category_filter.as_ref();
    let categories: Vec<String> =
        filter.iter().flat_map(|f| &f.params).flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}:{v}"))).collect();
    let locations: Vec<Value> =
        r.ordered_availability_zone_list.iter().map(|z| json!({"url": z.availability_zone_url, "cluster_uuid": z.cluster_uuid})).collect();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "state": e.status.state,
        "rpo_secs": rpo,
        "schedules": schedules,
        "category_filter": filter.map(|f| &f.params),
        "category_match": filter.and_then(|f| f.match_type.clone()),
        "categories": categories,
        "locations": locations,
        "start_time": r.start_time,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let mut cs = service(ctx, Kind::ProtectionPolicy, name, uuid, None, data);
    cs.instance_type = rpo.map(rpo_label);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// `RPO 1h`, `RPO 15m`, `RPO 90s`.
pub fn rpo_label(secs: u64) -> String {
    match secs {
        s if s % 3_600 == 0 => format!("RPO {}h", s / 3_600),
        s if s % 60 == 0 => format!("RPO {}m", s / 60),
        s => format!("RPO {s}s"),
    }
}

/// A recovery point (v3 VM recovery point, or v4's adapted): its VMs,
/// when it was taken and when it expires (`data.expired` is set against
/// the run's clock by [`crate::protection::flag_recovery_point`]).
pub fn recovery_point(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<RecoveryPointResources> = parse_entity(Kind::RecoveryPoint, raw)?;
    let uuid = uuid_of(Kind::RecoveryPoint, &e)?;
    // v4 recovery points often have no name: the id stands in.
    let name = e.status.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| uuid.clone());
    let r = &e.status.resources;
    let vms: Vec<Value> = r.parent_vm_reference.iter().chain(&r.vm_reference_list).filter(|v| v.uuid.is_some()).map(|v| ref_json(&Some(v.clone()))).collect();
    let expires_at = r
        .expiration_time
        .clone()
        .or_else(|| r.expiration_time_msecs.and_then(|ms| i64::try_from(ms / 1_000).ok()).map(crate::time::format_time));
    let data = json!({
        "uuid": uuid,
        "name": name,
        "state": e.status.state,
        "recovery_point_type": r.recovery_point_type,
        "consistency_group_uuid": r.consistency_group_uuid,
        "vms": vms,
        "vm_count": vms.len(),
        "created_at": e.metadata.creation_time,
        "expires_at": expires_at,
    });
    let mut cs = service(ctx, Kind::RecoveryPoint, name, uuid, None, data);
    cs.instance_type = r.recovery_point_type.clone();
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// A recovery plan (v3): its stages, the VMs it recovers by reference and
/// the categories it recovers by. Its `missing_vms` are
/// [`crate::protection::Facts::flag_plan`]'s.
pub fn recovery_plan(ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let e: Entity<RecoveryPlanResources> = parse_entity(Kind::RecoveryPlan, raw)?;
    let uuid = uuid_of(Kind::RecoveryPlan, &e)?;
    let name = name_of(Kind::RecoveryPlan, &e, &uuid)?;
    let entities = || {
        e.status.resources.stage_list.iter().flat_map(|s| s.stage_work.iter().flat_map(|w| w.recover_entities.iter().flat_map(|r| &r.entity_info_list)))
    };
    let vms: Vec<Value> = entities()
        .filter_map(|i| i.any_entity_reference.as_ref())
        .filter(|r| r.kind.as_deref().is_none_or(|k| k == "vm") && r.uuid.as_deref().is_some_and(|u| !u.is_empty()))
        .map(|r| json!({"uuid": r.uuid, "name": r.name}))
        .collect();
    let categories: Vec<String> = entities().flat_map(|i| i.categories.iter().flatten()).map(|(k, v)| format!("{k}:{v}")).collect();
    let stages: Vec<Value> = e.status.resources.stage_list.iter().map(|s| json!({"uuid": s.stage_uuid, "delay_secs": s.delay_time_secs})).collect();
    let data = json!({
        "uuid": uuid,
        "name": name,
        "description": e.status.description,
        "state": e.status.state,
        "stage_count": stages.len(),
        "stages": stages,
        "vms": vms,
        "vm_count": vms.len(),
        "categories": categories,
        "created_at": e.metadata.creation_time,
        "updated_at": e.metadata.last_update_time,
    });
    let mut cs = service(ctx, Kind::RecoveryPlan, name, uuid, None, data);
    cs.launched_at = e.metadata.creation_time.clone();
    Ok(cs)
}

/// Facts about the Prism estate learned from the cluster list.
#[derive(Debug, Default)]
pub struct ClusterScan {
    /// uuid of the Prism Central pseudo-cluster, if listed.
    pub prism_central_uuid: Option<String>,
    /// uuid → name of every real cluster.
    pub names: BTreeMap<String, String>,
    /// What is wrong with the list (an empty uuid), for error resources.
    pub problems: Vec<String>,
}

impl ClusterScan {
    /// Records what one raw cluster entity tells (tolerates malformed ones:
    /// they are reported when normalized).
    pub fn observe(&mut self, raw: &Value) {
        let Ok(e) = serde_json::from_value::<Entity<ClusterResources>>(raw.clone()) else {
            return;
        };
        let name = e.status.name.clone().unwrap_or_default();
        let Some(uuid) = e.metadata.uuid.filter(|u| !u.trim().is_empty()) else {
            if e.status.resources.is_prism_central() {
                self.problems.push(format!("the Prism Central pseudo-cluster '{name}' has an empty or missing uuid: the account is the endpoint's host instead"));
            }
            return;
        };
        if e.status.resources.is_prism_central() {
            self.prism_central_uuid.get_or_insert(uuid);
        } else if let Some(name) = e.status.name {
            self.names.insert(uuid, name);
        }
    }
}

/// `v3::Kind` dispatcher used by the collector for CloudService kinds.
pub fn service_of(kind: Kind, ctx: &Context, raw: impl Into<Item>) -> Result<CloudService, String> {
    let raw = raw.into();
    match kind {
        Kind::Vm => vm(ctx, raw),
        Kind::Host => host(ctx, raw),
        Kind::Subnet => subnet(ctx, raw),
        Kind::Image => image(ctx, raw),
        Kind::VolumeGroup => volume_group(ctx, raw),
        Kind::Project => project(ctx, raw),
        Kind::Category => category(ctx, raw),
        Kind::StorageContainer => storage_container(ctx, raw),
        Kind::ProtectionPolicy => protection_policy(ctx, raw),
        Kind::RecoveryPoint => recovery_point(ctx, raw),
        Kind::RecoveryPlan => recovery_plan(ctx, raw),
        Kind::VmTemplate | Kind::Alert | Kind::LcmEntity => Err(format!("{} are normalized by operations::service_of", kind.plural())),
        Kind::VmDisk => Err("VM disks come from their VMs (normalize::disks_of)".to_string()),
        Kind::GuestTools => Err("guest tools come from their VMs (operations::guest_tools_of)".to_string()),
        Kind::Gpu => Err("GPUs come from their hosts (operations::gpus_of_host)".to_string()),
        Kind::Cluster => Err("clusters are normalized with normalize::cluster".to_string()),
        Kind::Network(n) => crate::network::normalize(n, &ctx.cluster_names, raw).map(|p| {
            let mut cs = service(ctx, kind, p.name, p.id, None, p.data);
            cs.instance_type = p.instance_type;
            cs.ip_addresses = p.ip_addresses;
            cs
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "vms" => include_str!("../tests/fixtures/v3_vms_page.json"),
            "clusters" => include_str!("../tests/fixtures/v3_clusters.json"),
            "hosts" => include_str!("../tests/fixtures/v3_hosts.json"),
            "subnets" => include_str!("../tests/fixtures/v3_subnets.json"),
            "images" => include_str!("../tests/fixtures/v3_images.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    fn entities(name: &str) -> Vec<Value> {
        fixture(name)["entities"].as_array().unwrap().clone()
    }

    fn ctx() -> Context {
        let mut scan = ClusterScan::default();
        for c in entities("clusters") {
            scan.observe(&c);
        }
        Context {
            account: scan.prism_central_uuid.clone(),
            base_url: "https://pc.example:9440".into(),
            cluster_names: scan.names,
            locations: Locations::default(),
            guest_tools: false,
        }
    }

    #[test]
    fn instance_type_format() {
        assert_eq!(instance_type(4, 16384), "4vCPU-16GiB");
        assert_eq!(instance_type(1, 512), "1vCPU-0.5GiB");
        assert_eq!(instance_type(2, 1536), "2vCPU-1.5GiB");
    }

    #[test]
    fn powered_on_vm_with_two_disks_and_nics() {
        let vm = vm(&ctx(), entities("vms")[0].clone()).unwrap();
        assert_eq!(vm.name, "db-01");
        assert_eq!(vm.resource_id, "0a1b2c3d-0000-4000-8000-000000000001");
        assert_eq!(vm.cloud_service_group, "Compute");
        assert_eq!(vm.cloud_service_type, "VirtualMachine");
        assert_eq!(vm.account.as_deref(), Some("pc-uuid-0000"));
        assert_eq!(vm.region_code.as_deref(), Some("c1-uuid"), "a region is coded by its cluster's uuid");
        // 2 sockets × 2 vCPUs, 16 GiB.
        assert_eq!(vm.instance_type.as_deref(), Some("4vCPU-16GiB"));
        assert_eq!(vm.instance_size, Some(4.0));
        assert_eq!(vm.ip_addresses, vec!["10.0.0.11", "10.0.1.11"]);
        assert_eq!(vm.tags, vec![("Environment".to_string(), "Production".to_string())]);
        assert_eq!(vm.launched_at.as_deref(), Some("2024-03-01T10:00:00Z"));
        assert_eq!(
            vm.external_link.as_deref(),
            Some("https://pc.example:9440/console/#page/explore/ebrowser/vms/?entity_id=0a1b2c3d-0000-4000-8000-000000000001")
        );
        let d = &vm.data;
        assert_eq!(d["power_state"], "ON");
        assert_eq!(d["vcpus"], 4);
        assert_eq!(d["memory_mib"], 16384);
        assert_eq!(d["host"]["name"], "host-a1");
        assert_eq!(d["disks"].as_array().unwrap().len(), 3);
        // The CD-ROM is not counted in the disk total: 40 GiB + 100 GiB.
        assert_eq!(d["disk_total_bytes"], 150_323_855_360u64);
        assert_eq!(d["disks"][1]["size_bytes"], 107_374_182_400u64);
        assert_eq!(d["nics"][0]["mac_address"], "50:6b:8d:00:00:01");
        assert_eq!(d["nics"][1]["subnet"]["name"], "vlan-20");
        assert_eq!(d["project"], "default");
        assert_eq!(vm.metadata, layout::service_reference("Compute", "VirtualMachine"));

        // Its disks as resources of their own (the CD-ROM too, typed so).
        let disks = disks_of(&vm);
        assert_eq!(disks.len(), 3);
        let big = disks.iter().find(|d| d.data["size_bytes"] == 107_374_182_400u64).unwrap();
        assert_eq!((big.cloud_service_group.as_str(), big.cloud_service_type.as_str()), ("Storage", "Disk"));
        assert_eq!(big.resource_id, d["disks"][1]["uuid"].as_str().unwrap());
        assert_eq!(big.data["vm"], json!({"uuid": vm.resource_id, "name": "db-01"}));
        assert_eq!((big.region_code.as_deref(), big.account.as_deref()), (Some("c1-uuid"), Some("pc-uuid-0000")));
        assert_eq!(big.instance_size, Some(107_374_182_400.0), "bytes, as Storage Size sums them");
        assert_eq!(big.tags, vm.tags);
        assert_eq!(big.external_link, vm.external_link, "a disk has no page of its own: its VM's");
        assert!(big.name.starts_with("db-01 "), "{}", big.name);
        assert_eq!(big.metadata, layout::service_reference("Storage", "Disk"));
        let mut no_uuid = vm.clone();
        no_uuid.data["disks"] = json!([{"size_bytes": 1}, {"uuid": "", "size_bytes": 2}, {"uuid": "d-1"}]);
        assert_eq!(disks_of(&no_uuid).iter().map(|d| d.resource_id.as_str()).collect::<Vec<_>>(), ["d-1"], "no uuid, no disk");
        assert_eq!(disks_of(&no_uuid)[0].name, "db-01 d-1");
    }

    #[test]
    fn powered_off_vm_without_host_or_optional_fields() {
        let vm = vm(&ctx(), entities("vms")[1].clone()).unwrap();
        assert_eq!(vm.name, "仮想マシン-ß-02");
        assert_eq!(vm.data["power_state"], "OFF");
        assert_eq!(vm.data["host"], Value::Null);
        assert!(vm.ip_addresses.is_empty());
        assert!(vm.tags.is_empty());
        // Only a cluster uuid: name resolved from the cluster list.
        assert_eq!(vm.region_code.as_deref(), Some("c2-uuid"));
        assert_eq!(vm.instance_type.as_deref(), Some("1vCPU-0.5GiB"));
        assert_eq!(vm.data["description"], Value::Null);
    }

    #[test]
    fn malformed_vms_are_reported_by_uuid() {
        let es = entities("vms");
        let e = vm(&ctx(), es[2].clone()).unwrap_err();
        assert_eq!(e, "malformed vm entity 0a1b2c3d-0000-4000-8000-000000000003: missing status.name");
        let e = vm(&ctx(), es[3].clone()).unwrap_err();
        assert!(e.starts_with("malformed vm entity 0a1b2c3d-0000-4000-8000-000000000004: "), "{e}");
        let e = vm(&ctx(), es[4].clone()).unwrap_err();
        assert_eq!(e, "malformed vm entity 'no-uuid': empty or missing metadata.uuid");
        let mut empty = es[0].clone();
        empty["metadata"]["uuid"] = json!(" ");
        assert_eq!(vm(&ctx(), empty).unwrap_err(), "malformed vm entity 'db-01': empty or missing metadata.uuid", "an empty uuid is no uuid");
    }

    #[test]
    fn clusters_skip_prism_central_and_make_regions() {
        let c = ctx();
        let out: Vec<_> = entities("clusters").into_iter().map(|e| cluster(&c, e).unwrap()).collect();
        assert!(out[0].is_none(), "PC pseudo-cluster is not a region");
        let (cs, region) = out[1].clone().unwrap();
        assert_eq!(cs.name, "cluster-a");
        assert_eq!(cs.cloud_service_group, "Cluster");
        assert_eq!(cs.region_code.as_deref(), Some("c1-uuid"));
        assert_eq!(cs.data["aos_version"], "6.5.2");
        assert_eq!(cs.data["num_nodes"], 3);
        assert_eq!(cs.data["hypervisor_types"], json!(["AHV"]));
        assert_eq!((region.region_code.as_str(), region.name.as_str()), ("c1-uuid", "cluster-a"));
        assert_eq!(region.provider, "nutanix");
        assert_eq!(c.account.as_deref(), Some("pc-uuid-0000"));
    }

    #[test]
    fn hosts_subnets_images() {
        let c = ctx();
        let h = host(&c, entities("hosts")[0].clone()).unwrap();
        assert_eq!(h.cloud_service_type, "Host");
        assert_eq!(h.region_code.as_deref(), Some("c1-uuid"));
        assert_eq!(h.ip_addresses, vec!["10.0.0.2", "10.0.0.3"]);
        assert_eq!(h.data["memory_mib"], 524288);
        assert_eq!(h.instance_size, Some(16.0));

        let s = subnet(&c, entities("subnets")[0].clone()).unwrap();
        assert_eq!(s.data["network"], "10.0.1.0/24");
        assert_eq!(s.data["vlan_id"], 20);
        assert_eq!(s.region_code.as_deref(), Some("c1-uuid"));

        let i = image(&c, entities("images")[0].clone()).unwrap();
        assert_eq!(i.cloud_service_group, "Storage");
        assert_eq!(i.data["size_bytes"], 2_361_393_152u64);
        assert_eq!(i.region_code.as_deref(), Some("c1-uuid"));
        assert_eq!(i.instance_size, Some(2_361_393_152.0));
        let i2 = image(&c, entities("images")[1].clone()).unwrap();
        assert_eq!(i2.region_code, None);
    }

    /// Storage containers come from the v4 item itself; the cluster name
    /// comes from the item or else the cluster list.
    #[test]
    fn storage_containers_normalize_from_the_v4_item() {
        let c = ctx();
        let cluster = c.cluster_names.iter().next().map(|(u, n)| (u.clone(), n.clone())).unwrap();
        let raw = json!({
            "$objectType": "clustermgmt.v4.config.StorageContainer", "containerExtId": "sc-1", "name": "default-container",
            "clusterExtId": cluster.0, "maxCapacityBytes": 2_199_023_255_552u64, "logicalExplicitReservedCapacityBytes": 0,
            "replicationFactor": 2, "isCompressionEnabled": true, "compressionDelaySecs": 0, "erasureCode": "OFF",
            "onDiskDedup": "NONE", "cacheDeduplication": "OFF", "isEncrypted": false, "isInternal": false
        });
        let cs = service_of(Kind::StorageContainer, &c, raw).unwrap();
        assert_eq!((cs.cloud_service_group.as_str(), cs.cloud_service_type.as_str()), ("Storage", "StorageContainer"));
        assert_eq!((cs.name.as_str(), cs.resource_id.as_str()), ("default-container", "sc-1"));
        assert_eq!(cs.region_code.as_deref(), Some(cluster.0.as_str()));
        assert_eq!((cs.instance_type.as_deref(), cs.instance_size), (Some("RF2"), Some(2_199_023_255_552.0)));
        assert_eq!(cs.data["cluster"], json!({"uuid": cluster.0, "name": cluster.1}));
        assert_eq!((cs.data["compression"].clone(), cs.data["erasure_code"].clone()), (json!(true), json!("OFF")));
        assert_eq!(cs.data["advertised_bytes"], Value::Null);
        assert!(cs.external_link.unwrap().ends_with("/storage_containers/?entity_id=sc-1"));
        let named = service_of(Kind::StorageContainer, &c, json!({"extId": "sc-2", "name": "n", "clusterName": "pe-x"})).unwrap();
        assert_eq!((named.resource_id.as_str(), named.region_code.as_deref()), ("sc-2", Some("pe-x")));
        assert_eq!(service_of(Kind::StorageContainer, &c, json!({"extId": "sc-3"})).unwrap_err(), "malformed storage_container entity sc-3: missing name");
        assert!(service_of(Kind::StorageContainer, &c, json!({"name": "x"})).is_err());
        assert!(service_of(Kind::StorageContainer, &c, json!([1])).is_err());
    }

    /// A volume group: disks summed, attachments by VM or iSCSI initiator,
    /// the cluster named from the cluster list, categories as tags; one
    /// without a name or uuid is refused (an error resource, as for every kind).
    #[test]
    fn volume_groups_normalize_disks_attachments_and_cluster() {
        let c = ctx();
        let cluster = c.cluster_names.iter().next().map(|(u, n)| (u.clone(), n.clone())).unwrap();
        let raw = json!({
            "metadata": {"kind": "volume_group", "uuid": "vg-uuid-1", "categories": {"Environment": "Production"}, "creation_time": "2026-01-02T03:04:05Z"},
            "status": {"name": "oracle-data", "description": "DB", "cluster_reference": {"kind": "cluster", "uuid": cluster.0},
                "resources": {"sharing_status": "SHARED", "flash_mode": "DISABLED", "iscsi_target_prefix": "iqn.2010-06.com.nutanix:oracle",
                    "disk_list": [{"index": 0, "disk_size_mib": 10240, "storage_container_uuid": "sc-1"}, {"index": 1, "disk_size_mib": 20480}],
                    "attachment_list": [{"vm_reference": {"kind": "vm", "uuid": "vm-1", "name": "db-1"}}, {"iscsi_initiator_name": "iqn.1991-05.com.microsoft:win"}]}}
        });
        let cs = service_of(Kind::VolumeGroup, &c, raw).unwrap();
        assert_eq!((cs.cloud_service_group.as_str(), cs.cloud_service_type.as_str()), ("Storage", "VolumeGroup"));
        assert_eq!((cs.name.as_str(), cs.resource_id.as_str()), ("oracle-data", "vg-uuid-1"));
        assert_eq!(cs.region_code.as_deref(), Some(cluster.0.as_str()));
        assert_eq!(cs.data["size_bytes"], json!(30u64 * 1024 * 1024 * 1024));
        assert_eq!(cs.instance_size, Some(30.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(cs.data["disk_count"], 2);
        assert_eq!(cs.data["disks"][1]["storage_container_uuid"], Value::Null);
        assert_eq!(cs.data["attached_vms"], json!([{"uuid": "vm-1", "name": "db-1"}]));
        assert_eq!(cs.data["attachments"][1]["iscsi_initiator_name"], "iqn.1991-05.com.microsoft:win");
        assert_eq!(cs.data["cluster"]["name"], cluster.1);
        assert_eq!(cs.tags, vec![("Environment".to_string(), "Production".to_string())]);
        assert!(cs.external_link.unwrap().ends_with("/volume_groups/?entity_id=vg-uuid-1"));
        let unnamed = service_of(Kind::VolumeGroup, &c, json!({"metadata": {"uuid": "vg-2"}, "status": {}}));
        assert_eq!(unnamed.unwrap_err(), "malformed volume_group entity vg-2: missing status.name");
        assert!(service_of(Kind::VolumeGroup, &c, json!({"metadata": {}, "status": {"name": "x"}})).is_err());
    }

    /// Category values: the same record from v3's value shape and v4's.
    #[test]
    fn categories_are_key_value_records_whichever_api() {
        let c = ctx();
        let v3 = json!({"name": "Environment", "value": "Production", "description": "prod", "system_defined": false});
        let v4 = crate::v4::to_v3(Kind::Category, &json!({"extId": "cat-1", "key": "Environment", "value": "Production", "description": "prod", "type": "USER"}), &Default::default()).unwrap();
        let (a, b) = (service_of(Kind::Category, &c, v3).unwrap(), service_of(Kind::Category, &c, v4).unwrap());
        assert_eq!((a.name.as_str(), a.resource_id.as_str()), ("Environment:Production", "Environment:Production"));
        assert_eq!(a.resource_id, b.resource_id);
        assert_eq!(b.data["ext_id"], "cat-1");
        assert_eq!(a.data["ext_id"], Value::Null);
        assert_eq!(a.tags, vec![("Environment".to_string(), "Production".to_string())]);
        assert!(service_of(Kind::Category, &c, json!({"value": "x"})).is_err());
    }

    /// A project: subnets, users, clusters (named) and quotas; no region.
    #[test]
    fn projects_normalize_members_and_quotas() {
        let c = ctx();
        let (cu, cn) = c.cluster_names.iter().next().map(|(u, n)| (u.clone(), n.clone())).unwrap();
        let raw = json!({
            "metadata": {"kind": "project", "uuid": "prj-1", "categories": {"Team": "Platform"}},
            "status": {"name": "platform", "description": "Platform team", "state": "COMPLETE", "resources": {
                "is_default": false,
                "subnet_reference_list": [{"kind": "subnet", "uuid": "sn-1", "name": "vlan10"}],
                "user_reference_list": [{"kind": "user", "uuid": "u-1", "name": "alice"}, {"kind": "user", "uuid": "u-2", "name": "bob"}],
                "cluster_reference_list": [{"kind": "cluster", "uuid": cu}],
                "resource_domain": {"resources": [{"resource_type": "VCPUS", "limit": 64, "value": 12}]}}}
        });
        let cs = service_of(Kind::Project, &c, raw).unwrap();
        assert_eq!((cs.cloud_service_group.as_str(), cs.cloud_service_type.as_str(), cs.name.as_str()), ("Management", "Project", "platform"));
        assert_eq!(cs.region_code, None);
        assert_eq!(cs.data["user_count"], 2);
        assert_eq!(cs.data["users"][1]["name"], "bob");
        assert_eq!(cs.data["clusters"][0]["name"], cn);
        assert_eq!(cs.data["quotas"], json!([{"resource_type": "VCPUS", "limit": 64, "used": 12}]));
        assert_eq!(cs.tags, vec![("Team".to_string(), "Platform".to_string())]);
    }

    #[test]
    fn types_match_sdk_wire_shape() {
        let t = cloud_service_type(Kind::Vm, None);
        assert_eq!((t.name.as_str(), t.group.as_str(), t.provider.as_str()), ("VirtualMachine", "Compute", "nutanix"));
        assert!(t.is_primary && t.is_major);
        assert_eq!(t.labels, vec!["Compute", "Server"]);
        for k in Kind::ALL {
            let t = cloud_service_type(k, None);
            let (g, n) = group_and_type(k);
            assert_eq!((t.group.as_str(), t.name.as_str()), (g, n));
            assert!(t.metadata["view"]["table"]["layout"]["options"]["fields"].as_array().unwrap().len() >= 4);
        }
    }

    /// The console's rules on every type and record (console.rs has the
    /// table; this checks the records follow it): labels from the
    /// vocabulary, `Server` on VMs and hosts with the Server page's fields,
    /// an icon on every type, storage sizes in bytes, regions coded by
    /// cluster uuid (two Prism Centrals' clusters of one name stay apart)
    /// and placed by option `region_locations`.
    #[test]
    fn records_follow_the_console_rules() {
        for k in Kind::ALL {
            let t = cloud_service_type(k, Some("https://cf.example/nutanix-icons"));
            assert!(t.labels.iter().all(|l| console::Label::parse(l).is_some()), "{k:?}: {:?}", t.labels);
            let icon = t.tags.iter().find(|(key, _)| key == console::ICON_TAG).map(|(_, v)| v.as_str()).unwrap();
            assert_eq!(icon, format!("https://cf.example/nutanix-icons/{}", console::icon(k).file));
            assert_eq!(t.labels.iter().any(|l| l == "Server"), matches!(k, Kind::Vm | Kind::Host), "{k:?}");
        }
        let storage_primary: Vec<Kind> = Kind::ALL.into_iter().filter(|k| { let t = cloud_service_type(*k, None); t.is_primary && t.labels.contains(&"Storage".to_string()) }).collect();
        assert_eq!(storage_primary, [Kind::Image, Kind::VolumeGroup, Kind::VmDisk]);

        let c = ctx();
        let vm = vm(&c, entities("vms")[0].clone()).unwrap();
        assert_eq!(vm.data["hardware"], json!({"core": 4, "memory": 16.0}));
        assert_eq!(vm.data["compute"]["instance_state"], "RUNNING");
        assert_eq!(vm.data["compute"]["instance_id"], vm.resource_id.as_str());
        assert_eq!(vm.data["compute"]["instance_type"], "4vCPU-16GiB");
        assert_eq!(vm.data["compute"]["az"], "cluster-a");
        assert_eq!(vm.data["primary_ip_address"], "10.0.0.11");
        assert!(vm.data["os"].is_object());
        let mut with_os = entities("vms")[0].clone();
        with_os["status"]["resources"]["guest_tools"] = json!({"nutanix_guest_tools": {"guest_os_version": "Linux:64:Ubuntu 22.04"}});
        with_os["status"]["resources"]["machine_type"] = json!("PC");
        assert_eq!(super::vm(&c, with_os).unwrap().data["os"], json!({"os_type": "LINUX", "os_distro": "Ubuntu 22.04", "os_arch": "x86_64"}));
        let off = super::vm(&c, entities("vms")[1].clone()).unwrap();
        assert_eq!((off.data["compute"]["instance_state"].as_str(), off.data["primary_ip_address"].as_str()), (Some("STOPPED"), None));
        let h = host(&c, entities("hosts")[0].clone()).unwrap();
        assert_eq!(h.data["hardware"], json!({"core": 16, "memory": 512.0}));
        assert_eq!(h.data["primary_ip_address"], "10.0.0.2");
        assert_eq!(h.data["compute"]["az"], "cluster-a");

        // Two Prism Centrals, each with a cluster named cluster-a.
        let raw = |uuid: &str| json!({"metadata": {"uuid": uuid}, "status": {"name": "cluster-a", "resources": {"config": {"service_list": ["AOS"]}}}});
        let (_, r1) = cluster(&c, raw("pc1-cluster")).unwrap().unwrap();
        let (_, r2) = cluster(&c, raw("pc2-cluster")).unwrap().unwrap();
        assert_ne!(r1.region_code, r2.region_code);
        assert_eq!((r1.name.as_str(), r2.name.as_str()), ("cluster-a", "cluster-a"));
        assert!(r1.tags.iter().all(|(k, _)| k == "nutanix:cluster_uuid"), "no location without the option: {:?}", r1.tags);
        let located = Context { locations: Locations::parse(Some(&json!({"cluster-a": {"continent": "europe", "latitude": 47.37, "longitude": 8.54}}))).unwrap(), ..c };
        let (_, r) = cluster(&located, raw("pc1-cluster")).unwrap().unwrap();
        for (k, v) in [("continent", "europe"), ("latitude", "47.37"), ("longitude", "8.54")] {
            assert!(r.tags.contains(&(k.to_string(), v.to_string())), "{k}: {:?}", r.tags);
        }
    }
}
