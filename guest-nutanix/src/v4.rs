//! Prism Central v4 REST APIs: endpoints, paging envelope, error bodies, and
//! the adapter from v4 entities to the v3-shaped entities normalization
//! reads, so both API versions produce the same records.
//!
//! v4 facts this relies on: `GET` list endpoints paged with `$page`
//! (0-based) and `$limit` (1-100); the envelope `{data, metadata{
//! totalAvailableResults}}`; `$objectType` only on some items (never
//! required); references carry only an `extId` (names are looked up in
//! other lists: [`Lookups`]); categories are references to
//! `/api/prism/v4.0/config/categories`; powered-off VMs have no `host`;
//! v4.0 NICs use `backingInfo`/`networkInfo`, v4.1+ `nicBackingInfo`/
//! `nicNetworkInfo`; host references to clusters are `cluster{uuid, name}`;
//! the Prism Central pseudo-cluster shows `clusterFunction: ["PRISM_CENTRAL"]`
//! and `hypervisorTypes: ["$UNKNOWN"]`; errors are read by
//! [`crate::server_error`].
//!
//! Documented differences from v3 (v4.0 does not return these): `state` of
//! every entity, a VM's `owner` and `project` names, a cluster's
//! `created_at` (and so its `launched_at`) and its hypervisors' versions, a
//! host's serial number, a subnet's (empty) `categories`, an image's
//! `architecture`; a volume group's `categories`, `created_at` and the
//! names of its attached VMs (v4 attachments name only the VM's `extId`).
//! And v3 does not return a host's CPU frequency (`cpuFrequencyHz`), which
//! v4 does.
//!
//! Volume groups are read through v4 only when the v3 list is gone (or
//! `api_version=v4`): their disks and attachments are sub-resources
//! ([`VOLUME_GROUP_PARTS`]), three more calls per volume group, merged into
//! the item before [`to_v3`].

use crate::v3::Kind;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Largest `$limit` v4 accepts.
pub const MAX_LIMIT: u32 = 100;

/// The category list (names for the references VMs carry).
pub const CATEGORIES_PATH: &str = "/api/prism/v4.0/config/categories";

/// The v4 list endpoint of a kind; `None` where the collector reads v3
/// only: the v4 volumes API lists volume groups without their disks and
/// attachments (one more call per group), v3 lists them with both; projects
/// have no v4 API in Prism Central pc.2024.3; recovery plans are read
/// through v3 (datapolicies v4.0 has no list of them).
pub fn list_path(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Vm => "/api/vmm/v4.0/ahv/config/vms",
        Kind::Cluster => "/api/clustermgmt/v4.0/config/clusters",
        Kind::Host => "/api/clustermgmt/v4.0/config/hosts",
        Kind::Subnet => "/api/networking/v4.0/config/subnets",
        Kind::Image => "/api/vmm/v4.0/content/images",
        Kind::Category => CATEGORIES_PATH,
        Kind::StorageContainer => "/api/clustermgmt/v4.0/config/storage-containers",
        Kind::RecoveryPoint => "/api/dataprotection/v4.0/config/recovery-points",
        Kind::ProtectionPolicy => "/api/datapolicies/v4.0/config/protection-policies",
        Kind::VmTemplate => TEMPLATES_PATH,
        Kind::Alert => "/api/monitoring/v4.0/serviceability/alerts",
        Kind::LcmEntity => "/api/lifecycle/v4.0/resources/entities",
        // Read through v3 only: datapolicies v4.0 has no recovery plan list
        // (v4.2 added `/api/datapolicies/v4.2/config/recovery-plans`,
        // which the collector does not read yet).
        Kind::VolumeGroup | Kind::Project | Kind::VmDisk | Kind::RecoveryPlan | Kind::GuestTools => return None,
        // Read through v3's host list only: v4.0 names no host for a
        // physical GPU. clustermgmt hosts carry `gpuList` (names only) and
        // `gpuDriverVersion`; the per-cluster `physical-gpu-profiles` and
        // `virtual-gpu-profiles` carry a device and the VMs allocated to
        // it (`allocatedVmExtIds`) but no host; a VM's `gpus` carry no
        // physical GPU's address. v3 hosts' `gpu_list` carries each GPU
        // with its consumer (`crate::operations::gpus_of_host`).
        Kind::Gpu => return None,
        Kind::Network(n) => n.v4_list_path(),
    })
}

/// The v4 API revisions the collector knows, newest first. Prism Centrals
/// serve different ones per namespace (pc.2024.3: v4.0; later releases
/// v4.1 and v4.2, and some retire the older): the first list of a
/// namespace tries them in this order, and the run keeps the first the
/// gateway does not answer 404. The paths here are written at `v4.0`
/// ([`at_revision`] rewrites them).
pub const REVISIONS: [&str; 3] = ["v4.2", "v4.1", "v4.0"];

/// The namespace of a v4 path (`/api/vmm/v4.0/...` → `vmm`).
pub fn namespace(path: &str) -> &str {
    path.strip_prefix("/api/").and_then(|p| p.split('/').next()).unwrap_or_default()
}

/// A v4 path (written at `v4.0`) at another revision.
pub fn at_revision(path: &str, revision: &str) -> String {
    let ns = namespace(path);
    match path.strip_prefix(&format!("/api/{ns}/v4.0/")) {
        Some(rest) => format!("/api/{ns}/{revision}/{rest}"),
        None => path.to_string(),
    }
}

/// The v4 iSCSI client list (names of volume groups' external initiators).
pub const ISCSI_CLIENTS_PATH: &str = "/api/volumes/v4.0/config/iscsi-clients";

/// The v4 volume group list (see the module docs for when it is used).
pub const VOLUME_GROUPS_PATH: &str = "/api/volumes/v4.0/config/volume-groups";

/// A volume group's sub-resources: (path segment, key the collector
/// merges the items under before [`to_v3`]).
pub const VOLUME_GROUP_PARTS: [(&str, &str); 3] =
    [("disks", "disks"), ("vm-attachments", "vmAttachments"), ("external-iscsi-attachments", "iscsiAttachments")];

/// Every v4.0 field the collector reads, as wire paths from each SDK model
/// (`*` for a list's items): `tests/sdk_schema.rs` checks each against
/// Nutanix's own models, and that the adapter names no field missing here.
pub const WIRE_READS: &[(&str, &[&str])] = &[
    (
        "vmm.v4.ahv.config.Vm",
        &[
            "extId", "name", "description", "createTime", "updateTime", "numSockets", "numCoresPerSocket", "numThreadsPerCore",
            "memorySizeBytes", "powerState", "machineType", "cluster/extId", "host/extId", "categories/*/extId", "bootConfig/$objectType",
            "guestTools", "vtpmConfig/isVtpmEnabled", "gpus/*/extId", "gpus/*/vendor", "gpus/*/mode", "gpus/*/deviceId", "gpus/*/name",
            "disks/*/extId", "disks/*/diskAddress/busType", "disks/*/diskAddress/index", "disks/*/backingInfo/diskSizeBytes",
            "disks/*/backingInfo/storageContainer/extId", "disks/*/backingInfo/dataSource/reference/imageExtId",
            "cdRoms/*/extId", "cdRoms/*/diskAddress/busType", "cdRoms/*/diskAddress/index", "cdRoms/*/backingInfo/diskSizeBytes",
            "cdRoms/*/backingInfo/storageContainer/extId", "cdRoms/*/backingInfo/dataSource/reference/imageExtId",
            "nics/*/extId", "nics/*/backingInfo/macAddress", "nics/*/backingInfo/isConnected", "nics/*/networkInfo/nicType",
            "nics/*/networkInfo/subnet/extId", "nics/*/networkInfo/ipv4Config/ipAddress/value",
            "nics/*/networkInfo/ipv4Info/learnedIpAddresses/*/value",
        ],
    ),
    (
        "clustermgmt.v4.config.Cluster",
        &[
            "extId", "name", "config/clusterFunction", "config/buildInfo/version", "config/buildInfo/fullVersion", "config/hypervisorTypes",
            "config/clusterArch", "config/redundancyFactor", "config/timezone", "config/encryptionInTransitStatus",
            "nodes/nodeList/*/hostIp/ipv4/value", "network/externalAddress/ipv4/value", "network/externalAddress/ipv6/value",
            "network/nameServerIpList/*/ipv4/value",
            "network/ntpServerIpList/*/fqdn/value",
        ],
    ),
    (
        "clustermgmt.v4.config.Host",
        &[
            "extId", "hostName", "cluster/uuid", "cluster/name", "hostType", "cpuModel", "numberOfCpuSockets", "numberOfCpuCores",
            "cpuCapacityHz", "cpuFrequencyHz", "memorySizeBytes", "hypervisor/externalAddress/ipv4/value", "hypervisor/fullName",
            "hypervisor/numberOfVms", "controllerVm/externalAddress/ipv4/value", "blockSerial", "blockModel",
        ],
    ),
    (
        "networking.v4.config.Subnet",
        &[
            "extId", "name", "clusterReference", "networkId", "subnetType", "bridgeName", "vpcReference", "ipConfig/*/ipv4/ipSubnet/ip/value",
            "ipConfig/*/ipv4/ipSubnet/prefixLength", "ipConfig/*/ipv4/defaultGatewayIp/value", "ipConfig/*/ipv4/poolList/*/startIp/value",
            "ipConfig/*/ipv4/poolList/*/endIp/value",
        ],
    ),
    ("vmm.v4.content.Image", &["extId", "name", "description", "type", "sizeBytes", "source/url", "clusterLocationExtIds", "createTime"]),
    ("prism.v4.config.Category", &["extId", "key", "value", "description", "type"]),
    (
        "clustermgmt.v4.config.StorageContainer",
        &[
            "containerExtId", "extId", "name", "clusterExtId", "clusterName", "maxCapacityBytes", "logicalExplicitReservedCapacityBytes",
            "logicalAdvertisedCapacityBytes", "replicationFactor", "isCompressionEnabled", "compressionDelaySecs", "erasureCode", "onDiskDedup",
            "cacheDeduplication", "isSoftwareEncryptionEnabled", "isEncrypted", "isMarkedForRemoval", "isInternal",
        ],
    ),
    (
        "volumes.v4.config.VolumeGroup",
        &["extId", "name", "description", "clusterReference", "sharingStatus", "targetPrefix", "storageFeatures/flashMode/isEnabled"],
    ),
    ("volumes.v4.config.VolumeDisk", &["index", "diskSizeBytes", "storageContainerId"]),
    ("volumes.v4.config.VmAttachment", &["extId"]),
    ("volumes.v4.config.IscsiClientAttachment", &["extId"]),
    ("volumes.v4.config.IscsiClient", &["extId", "iscsiInitiatorName"]),
    (
        "datapolicies.v4.config.ProtectionPolicy",
        &[
            "extId", "name", "description", "categoryIds", "replicationLocations/*/label", "replicationLocations/*/isPrimary",
            "replicationLocations/*/domainManagerExtId", "replicationConfigurations/*/sourceLocationLabel",
            "replicationConfigurations/*/remoteLocationLabel", "replicationConfigurations/*/schedule/recoveryPointObjectiveTimeSeconds",
            "replicationConfigurations/*/schedule/recoveryPointType",
        ],
    ),
    (
        "dataprotection.v4.config.RecoveryPoint",
        &["extId", "name", "creationTime", "expirationTime", "status", "recoveryPointType", "vmRecoveryPoints/*/vmExtId"],
    ),
    // A VM's `guestTools` (kind `guest_tools`, `crate::operations::guest_tools_of`).
    (
        "vmm.v4.ahv.config.GuestTools",
        &["version", "isInstalled", "isEnabled", "isReachable", "availableVersion", "isIsoInserted", "isVssSnapshotCapable", "capabilities", "guestOsVersion"],
    ),
    // Read by `crate::operations` from the item itself.
    (
        "vmm.v4.content.Template",
        &[
            "extId", "templateName", "templateDescription", "createTime", "updateTime", "createdBy/username", "updatedBy/username",
            "guestUpdateStatus/deployedVmReference", "templateVersionSpec/extId", "templateVersionSpec/versionName",
            "templateVersionSpec/versionDescription", "templateVersionSpec/createTime", "templateVersionSpec/createdBy/username",
            "templateVersionSpec/isActiveVersion", "templateVersionSpec/vmSpec/numSockets", "templateVersionSpec/vmSpec/numCoresPerSocket",
            "templateVersionSpec/vmSpec/numThreadsPerCore", "templateVersionSpec/vmSpec/memorySizeBytes", "templateVersionSpec/vmSpec/disks",
            "templateVersionSpec/vmSpec/nics", "templateVersionSpec/vmSpec/gpus", "templateVersionSpec/vmSpec/cluster/extId",
        ],
    ),
    // A template's versions (`content/templates/{extId}/versions`,
    // `crate::operations::with_versions`).
    (
        "vmm.v4.content.TemplateVersionSpec",
        &[
            "extId", "versionName", "versionDescription", "createTime", "createdBy/username", "isActiveVersion", "vmSpec/numSockets",
            "vmSpec/numCoresPerSocket", "vmSpec/numThreadsPerCore", "vmSpec/memorySizeBytes", "vmSpec/disks", "vmSpec/nics", "vmSpec/gpus",
        ],
    ),
    (
        "monitoring.v4.serviceability.Alert",
        &[
            "extId", "title", "message", "alertType", "severity", "isResolved", "isAcknowledged", "isAutoResolved", "isUserDefined",
            "creationTime", "lastUpdatedTime", "acknowledgedTime", "acknowledgedByUsername", "resolvedTime", "resolvedByUsername",
            "serviceName", "classifications", "impactTypes", "clusterUUID", "parameters/*/paramName", "parameters/*/paramValue",
            "sourceEntity/type", "sourceEntity/extId", "sourceEntity/name", "affectedEntities/*/type", "affectedEntities/*/extId",
            "affectedEntities/*/name",
        ],
    ),
    (
        "lifecycle.v4.resources.Entity",
        &[
            "extId", "entityModel", "entityClass", "entityType", "entityVersion", "entityDescription", "targetVersion", "hardwareVendor",
            "hardwareFamily", "deviceId", "lastUpdatedTime", "locationInfo/uuid", "locationInfo/locationType", "clusterExtId",
            "availableVersions/*/version", "availableVersions/*/status", "availableVersions/*/isEnabled", "availableVersions/*/releaseDate",
        ],
    ),
];

/// The vmm template list; a template's versions are at
/// `{TEMPLATES_PATH}/{extId}/versions` (`vmm.v4.content.TemplateVersionSpec`).
pub const TEMPLATES_PATH: &str = "/api/vmm/v4.0/content/templates";

/// Fields the adapter also reads that later revisions renamed (v4.1+ NICs:
/// `nicBackingInfo`/`nicNetworkInfo`); not in the v4.0 models.
pub const LATER_REVISION_READS: &[&str] = &["nicBackingInfo", "nicNetworkInfo"];

/// One page of a v4 list.
#[derive(Debug)]
pub struct Page {
    pub total: Option<u64>,
    pub entities: Vec<Value>,
}

/// Parses a 2xx list answer. A missing or null `data` is an empty page; a
/// `data` holding an `error` list is an error.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid or truncated JSON: {e}"))?;
    let total = v.pointer("/metadata/totalAvailableResults").and_then(Value::as_u64);
    match v.get("data") {
        None | Some(Value::Null) => Ok(Page { total, entities: Vec::new() }),
        Some(Value::Array(items)) => Ok(Page { total, entities: items.clone() }),
        Some(Value::Object(o)) if o.contains_key("error") => Err(crate::server_error::parse(body).message),
        Some(other) => Err(format!("'data' is neither a list nor an error: {}", cut(&other.to_string()))),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Names that v4 references do not carry.
#[derive(Clone, Debug, Default)]
pub struct Lookups {
    /// Category extId → (key, value).
    pub categories: BTreeMap<String, (String, String)>,
    /// Host extId → name.
    pub hosts: BTreeMap<String, String>,
    /// Subnet extId → name.
    pub subnets: BTreeMap<String, String>,
    /// iSCSI client extId → initiator name (volume groups' external
    /// attachments).
    pub iscsi_clients: BTreeMap<String, String>,
}

impl Lookups {
    pub fn add_category(&mut self, raw: &Value) {
        if let (Some(id), Some(k), Some(v)) = (str_at(raw, "/extId"), str_at(raw, "/key"), str_at(raw, "/value")) {
            self.categories.insert(id.into(), (k.into(), v.into()));
        }
    }

    pub fn add_host(&mut self, raw: &Value) {
        if let (Some(id), Some(name)) = (str_at(raw, "/extId"), str_at(raw, "/hostName")) {
            self.hosts.insert(id.into(), name.into());
        }
    }

    pub fn add_iscsi_client(&mut self, raw: &Value) {
        if let (Some(id), Some(name)) = (str_at(raw, "/extId"), str_at(raw, "/iscsiInitiatorName")) {
            self.iscsi_clients.insert(id.into(), name.into());
        }
    }

    pub fn add_subnet(&mut self, raw: &Value) {
        if let (Some(id), Some(name)) = (str_at(raw, "/extId"), str_at(raw, "/name")) {
            self.subnets.insert(id.into(), name.into());
        }
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn at(v: &Value, p: &str) -> Value {
    v.pointer(p).cloned().unwrap_or(Value::Null)
}

/// `{"ipv4": {"value": ..}}` (or `ipv6`, or `fqdn`) → the address.
fn address(v: &Value) -> Value {
    ["/ipv4/value", "/ipv6/value", "/fqdn/value", "/value"]
        .iter()
        .find_map(|p| v.pointer(p).filter(|x| x.is_string()).cloned())
        .unwrap_or(Value::Null)
}

fn bytes_to_mib(v: &Value) -> Value {
    v.as_u64().map_or(Value::Null, |b| json!(b / (1024 * 1024)))
}

/// Drops null fields so absent stays absent (as in v3).
pub(crate) fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, compact(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

/// A v4 entity as the v3 entity normalization reads. Fails only when the
/// item is not an object; missing fields stay missing (normalization names
/// what it needs).
pub fn to_v3(kind: Kind, raw: &Value, lk: &Lookups) -> Result<Value, String> {
    if !raw.is_object() {
        return Err(format!("a v4 {} item is not a JSON object", kind.api_kind()));
    }
    Ok(compact(match kind {
        Kind::Vm => vm(raw, lk),
        Kind::Cluster => cluster(raw),
        Kind::Host => host(raw),
        Kind::Subnet => subnet(raw),
        Kind::Image => image(raw),
        // The v4 category list: one key/value pair per item.
        Kind::Category => category(raw),
        // With its parts merged in (see VOLUME_GROUP_PARTS).
        Kind::VolumeGroup => volume_group(raw, lk),
        // Never listed through v4 (see `list_path`).
        Kind::Project => raw.clone(),
        // v4 only: normalized from the v4 item itself.
        Kind::StorageContainer => raw.clone(),
        // Never listed (derived from VMs).
        Kind::VmDisk => raw.clone(),
        Kind::ProtectionPolicy => protection_policy(raw, lk),
        Kind::RecoveryPoint => recovery_point(raw),
        // Never listed through v4 (see `list_path`).
        Kind::RecoveryPlan => raw.clone(),
        // Normalized from the v4 item itself (`network`).
        Kind::Network(_) => raw.clone(),
        // Read from the v4 item ([`crate::operations`]).
        Kind::VmTemplate | Kind::Alert | Kind::LcmEntity => raw.clone(),
        // Never listed (derived from VMs).
        Kind::GuestTools | Kind::Gpu => raw.clone(),
    }))
}

fn vm(v: &Value, lk: &Lookups) -> Value {
    // Disks and CD-ROMs (v3 lists both in `disk_list`, told apart by
    // `device_type`); a CD-ROM without media has no backing.
    let drive = |d: &Value, device_type: &str| {
        let image = at(d, "/backingInfo/dataSource/reference/imageExtId");
        json!({
            "uuid": d["extId"],
            "disk_size_bytes": at(d, "/backingInfo/diskSizeBytes"),
            "device_properties": {"device_type": device_type, "disk_address": {"adapter_type": at(d, "/diskAddress/busType"), "device_index": at(d, "/diskAddress/index")}},
            "data_source_reference": if image.is_null() { Value::Null } else { json!({"kind": "image", "uuid": image}) },
            "storage_config": {"storage_container_reference": {"uuid": at(d, "/backingInfo/storageContainer/extId")}},
        })
    };
    let list = |k: &str| v[k].as_array().map(Vec::as_slice).unwrap_or_default();
    let disks: Vec<Value> = list("disks").iter().map(|d| drive(d, "DISK")).chain(list("cdRoms").iter().map(|d| drive(d, "CDROM"))).collect();
    let nics: Vec<Value> = v["nics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let backing = n.get("nicBackingInfo").or_else(|| n.get("backingInfo")).cloned().unwrap_or(Value::Null);
            let network = n.get("nicNetworkInfo").or_else(|| n.get("networkInfo")).cloned().unwrap_or(Value::Null);
            let subnet = at(&network, "/subnet/extId");
            let name = subnet.as_str().and_then(|s| lk.subnets.get(s)).cloned();
            // The assigned address, then those the hypervisor learned (a NIC
            // on DHCP or with a static address inside the guest has only these).
            let mut seen: Vec<Value> = Vec::new();
            let mut ips: Vec<Value> = Vec::new();
            let assigned = [at(&network, "/ipv4Config/ipAddress/value")].into_iter().map(|ip| (ip, "ASSIGNED"));
            let learned = network.pointer("/ipv4Info/learnedIpAddresses").and_then(Value::as_array).into_iter().flatten().map(|a| (a["value"].clone(), "LEARNED"));
            for (ip, kind) in assigned.chain(learned) {
                if ip.is_string() && !seen.contains(&ip) {
                    seen.push(ip.clone());
                    ips.push(json!({"ip": ip, "type": kind}));
                }
            }
            json!({
                "uuid": n["extId"],
                "mac_address": backing["macAddress"],
                "nic_type": network["nicType"],
                "is_connected": backing["isConnected"],
                "subnet_reference": if subnet.is_null() { Value::Null } else { json!({"kind": "subnet", "uuid": subnet, "name": name}) },
                "ip_endpoint_list": if ips.is_empty() { Value::Null } else { Value::Array(ips) },
            })
        })
        .collect();
    let host = at(v, "/host/extId");
    let host_name = host.as_str().and_then(|h| lk.hosts.get(h)).cloned();
    let boot = match str_at(v, "/bootConfig/$objectType") {
        Some(t) if t.ends_with("UefiBoot") => "UEFI",
        Some(_) => "LEGACY",
        None => "",
    };
    let categories: Option<Map<String, Value>> = v["categories"].as_array().map(|refs| {
        refs.iter()
            .filter_map(|r| str_at(r, "/extId"))
            .filter_map(|id| lk.categories.get(id))
            .map(|(k, val)| (k.clone(), Value::String(val.clone())))
            .collect()
    });
    json!({
        "metadata": {
            "kind": "vm",
            "uuid": v["extId"],
            "creation_time": v["createTime"],
            "last_update_time": v["updateTime"],
            "categories": categories,
        },
        "status": {
            "name": v["name"],
            "description": v["description"],
            "cluster_reference": {"kind": "cluster", "uuid": at(v, "/cluster/extId")},
            "resources": {
                "num_sockets": v["numSockets"],
                "num_vcpus_per_socket": v["numCoresPerSocket"],
                "num_threads_per_core": v["numThreadsPerCore"],
                "gpu_list": gpus(v),
                "vtpm_config": at(v, "/vtpmConfig/isVtpmEnabled").as_bool().map(|on| json!({"vtpm_enabled": on})),
                "memory_size_mib": bytes_to_mib(&v["memorySizeBytes"]),
                "power_state": v["powerState"],
                "hypervisor_type": "AHV",
                "machine_type": v["machineType"],
                "host_reference": if host.is_null() { Value::Null } else { json!({"kind": "host", "uuid": host, "name": host_name}) },
                "disk_list": disks,
                "nic_list": nics,
                "guest_tools": if v["guestTools"].is_object() { v["guestTools"].clone() } else { Value::Null },
                "boot_config": if boot.is_empty() { Value::Null } else { json!({"boot_type": boot}) },
            }
        }
    })
}

/// A VM's GPUs in the v3 `gpu_list` shape (absent when it has none).
fn gpus(v: &Value) -> Value {
    match v["gpus"].as_array() {
        Some(list) if !list.is_empty() => {
            Value::Array(list.iter().map(|g| json!({"vendor": g["vendor"], "mode": g["mode"], "device_id": g["deviceId"], "name": g["name"], "uuid": g["extId"]})).collect())
        }
        _ => Value::Null,
    }
}

fn volume_group(v: &Value, lk: &Lookups) -> Value {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let disks: Vec<Value> = list("disks")
        .iter()
        .map(|d| json!({"index": d["index"], "disk_size_mib": bytes_to_mib(&d["diskSizeBytes"]), "storage_container_uuid": d["storageContainerId"]}))
        .collect();
    let mut attachments: Vec<Value> = list("vmAttachments").iter().map(|a| json!({"vm_reference": {"kind": "vm", "uuid": a["extId"]}})).collect();
    // An external attachment names its iSCSI client; the client list names
    // its initiator.
    attachments.extend(list("iscsiAttachments").iter().map(|a| {
        let name = a["extId"].as_str().and_then(|id| lk.iscsi_clients.get(id)).cloned();
        json!({"iscsi_initiator_name": name})
    }));
    let flash = match at(v, "/storageFeatures/flashMode/isEnabled") {
        Value::Bool(true) => json!("ENABLED"),
        Value::Bool(false) => json!("DISABLED"),
        _ => Value::Null,
    };
    json!({
        "metadata": {"kind": "volume_group", "uuid": v["extId"]},
        "status": {
            "name": v["name"],
            "description": v["description"],
            "cluster_reference": {"kind": "cluster", "uuid": v["clusterReference"]},
            "resources": {
                "sharing_status": v["sharingStatus"],
                "flash_mode": flash,
                "iscsi_target_prefix": v["targetPrefix"],
                "disk_list": disks,
                "attachment_list": attachments,
            }
        }
    })
}

fn cluster(v: &Value) -> Value {
    let types: Vec<Value> = v.pointer("/config/hypervisorTypes").and_then(Value::as_array).cloned().unwrap_or_default();
    let single_type = if types.len() == 1 { types[0].clone() } else { Value::Null };
    let servers: Vec<Value> = v
        .pointer("/nodes/nodeList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|n| json!({"ip": address(&n["hostIp"]), "type": single_type}))
        .collect();
    let list = |p: &str| -> Value {
        v.pointer(p).and_then(Value::as_array).map_or(Value::Null, |l| Value::Array(l.iter().map(address).collect()))
    };
    let version = at(v, "/config/buildInfo/version");
    json!({
        "metadata": {"kind": "cluster", "uuid": v["extId"]},
        "status": {
            "name": v["name"],
            "resources": {
                "config": {
                    "service_list": at(v, "/config/clusterFunction"),
                    "build": {"version": version, "full_version": at(v, "/config/buildInfo/fullVersion")},
                    "cluster_arch": at(v, "/config/clusterArch"),
                    "redundancy_factor": at(v, "/config/redundancyFactor"),
                    "timezone": at(v, "/config/timezone"),
                    "encryption_status": at(v, "/config/encryptionInTransitStatus"),
                },
                "nodes": {"hypervisor_server_list": servers},
                "network": {
                    "external_ip": address(&at(v, "/network/externalAddress")),
                    "name_server_ip_list": list("/network/nameServerIpList"),
                    "ntp_server_ip_list": list("/network/ntpServerIpList"),
                }
            }
        }
    })
}

fn host(v: &Value) -> Value {
    json!({
        "metadata": {"kind": "host", "uuid": v["extId"]},
        "status": {
            "name": v["hostName"],
            "cluster_reference": {"kind": "cluster", "uuid": at(v, "/cluster/uuid"), "name": at(v, "/cluster/name")},
            "resources": {
                "host_type": v["hostType"],
                "cpu_model": v["cpuModel"],
                "num_cpu_sockets": v["numberOfCpuSockets"],
                "num_cpu_cores": v["numberOfCpuCores"],
                "cpu_capacity_hz": v["cpuCapacityHz"],
                "cpu_frequency_hz": v["cpuFrequencyHz"],
                "memory_capacity_mib": bytes_to_mib(&v["memorySizeBytes"]),
                "hypervisor": {
                    "ip": address(&at(v, "/hypervisor/externalAddress")),
                    "hypervisor_full_name": at(v, "/hypervisor/fullName"),
                    "num_vms": at(v, "/hypervisor/numberOfVms"),
                },
                "controller_vm": {"ip": address(&at(v, "/controllerVm/externalAddress"))},
                "block": {"block_serial_number": v["blockSerial"], "block_model": v["blockModel"]},
            }
        }
    })
}

fn subnet(v: &Value) -> Value {
    let ipv4 = v.pointer("/ipConfig/0/ipv4").cloned().unwrap_or(Value::Null);
    let ip_config = if ipv4.is_object() {
        let pools: Vec<Value> = ipv4["poolList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some(json!({"range": format!("{} {}", str_at(p, "/startIp/value")?, str_at(p, "/endIp/value")?)})))
            .collect();
        json!({
            "subnet_ip": at(&ipv4, "/ipSubnet/ip/value"),
            "prefix_length": at(&ipv4, "/ipSubnet/prefixLength"),
            "default_gateway_ip": at(&ipv4, "/defaultGatewayIp/value"),
            "pool_list": pools,
        })
    } else {
        Value::Null
    };
    json!({
        "metadata": {"kind": "subnet", "uuid": v["extId"]},
        "status": {
            "name": v["name"],
            "cluster_reference": {"kind": "cluster", "uuid": v["clusterReference"]},
            "resources": {
                "vlan_id": v["networkId"],
                "subnet_type": v["subnetType"],
                "vswitch_name": v["bridgeName"],
                "ip_config": ip_config,
                "vpc_reference": v.get("vpcReference").map(|id| json!({"kind": "vpc", "uuid": id})),
            }
        }
    })
}

/// A v4 category (one key/value pair) in the shape of a v3 category value.
fn category(v: &Value) -> Value {
    json!({
        "name": v["key"],
        "value": v["value"],
        "description": v["description"],
        "system_defined": v.get("type").and_then(Value::as_str).map(|t| t == "SYSTEM"),
        "ext_id": v["extId"],
    })
}

fn image(v: &Value) -> Value {
    let clusters: Vec<Value> = v["clusterLocationExtIds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| json!({"kind": "cluster", "uuid": u}))
        .collect();
    json!({
        "metadata": {"kind": "image", "uuid": v["extId"], "creation_time": v["createTime"]},
        "status": {
            "name": v["name"],
            "description": v["description"],
            "resources": {
                "image_type": v["type"],
                "size_bytes": v["sizeBytes"],
                "source_uri": at(v, "/source/url"),
                "current_cluster_reference_list": clusters,
            }
        }
    })
}

/// A v4 protection policy (datapolicies) as a v3 protection rule: each
/// replication configuration's schedule as a snapshot schedule, its
/// categories (references) by key and value through the category list
/// (an id the list does not name is left out), its locations as
/// availability zones. A v4 policy protects the VMs in any of its
/// categories.
fn protection_policy(v: &Value, lk: &Lookups) -> Value {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let schedules: Vec<Value> = list("replicationConfigurations")
        .iter()
        .map(|c| {
            json!({
                "source_label": c["sourceLocationLabel"],
                "remote_label": c["remoteLocationLabel"],
                "snapshot_schedule_list": [{
                    "recovery_point_objective_secs": at(c, "/schedule/recoveryPointObjectiveTimeSeconds"),
                    "snapshot_type": at(c, "/schedule/recoveryPointType"),
                }],
            })
        })
        .collect();
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in list("categoryIds").iter().filter_map(Value::as_str) {
        if let Some((k, val)) = lk.categories.get(id) {
            params.entry(k.clone()).or_default().push(val.clone());
        }
    }
    let zones: Vec<Value> = list("replicationLocations")
        .iter()
        .map(|l| json!({"availability_zone_url": l["domainManagerExtId"], "label": l["label"], "is_primary": l["isPrimary"]}))
        .collect();
    json!({
        "metadata": {"kind": "protection_rule", "uuid": v["extId"]},
        "status": {
            "name": v["name"],
            "description": v["description"],
            "resources": {
                "ordered_availability_zone_list": zones,
                "availability_zone_connectivity_list": schedules,
                "category_filter": {"type": "CATEGORIES_MATCH_ANY", "params": params},
            }
        }
    })
}

/// A v4 recovery point (dataprotection) as a v3 VM recovery point, with
/// all its VMs (v4 groups a consistency group's VMs in one recovery point).
fn recovery_point(v: &Value) -> Value {
    let vms: Vec<Value> = v["vmRecoveryPoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"kind": "vm", "uuid": r["vmExtId"]}))
        .collect();
    json!({
        "metadata": {"kind": "vm_recovery_point", "uuid": v["extId"], "creation_time": v["creationTime"]},
        "status": {
            "name": v["name"],
            "state": v["status"],
            "resources": {
                "vm_reference_list": vms,
                "expiration_time": v["expirationTime"],
                "recovery_point_type": v["recoveryPointType"],
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_errors() {
        let p = parse_page(br#"{"data": [{"$objectType": "x", "extId": "a"}, {"extId": "b"}], "metadata": {"totalAvailableResults": 7}}"#).unwrap();
        assert_eq!((p.total, p.entities.len()), (Some(7), 2));
        let p = parse_page(br#"{"metadata": {"totalAvailableResults": 0}}"#).unwrap();
        assert!(p.entities.is_empty());
        let nested = br#"{"data": {"error": [{"code": "VMM-20005", "errorGroup": "X", "message": "Failed to list"}]}}"#;
        assert_eq!(parse_page(nested).unwrap_err(), "VMM-20005: Failed to list (group X)");
        assert!(parse_page(b"{\"data\": [").unwrap_err().contains("truncated"));
    }

    #[test]
    fn revisions_rewrite_paths_per_namespace() {
        assert_eq!(namespace("/api/vmm/v4.0/ahv/config/vms"), "vmm");
        assert_eq!(at_revision("/api/vmm/v4.0/ahv/config/vms", "v4.2"), "/api/vmm/v4.2/ahv/config/vms");
        assert_eq!(at_revision(VOLUME_GROUPS_PATH, "v4.1"), "/api/volumes/v4.1/config/volume-groups");
        assert_eq!(at_revision("/api/nutanix/v3/vms/list", "v4.1"), "/api/nutanix/v3/vms/list");
        assert_eq!(REVISIONS.last(), Some(&"v4.0"), "the paths' own revision comes last");
    }

    #[test]
    fn a_powered_off_vm_with_v4_1_nics_and_no_object_type() {
        let mut lk = Lookups::default();
        lk.add_subnet(&json!({"extId": "s1", "name": "vlan-100"}));
        lk.add_category(&json!({"extId": "c1", "key": "Environment", "value": "Production"}));
        let raw = json!({
            "extId": "vm-1", "name": "db-01", "numSockets": 2, "numCoresPerSocket": 4, "memorySizeBytes": 8589934592u64,
            "powerState": "OFF", "cluster": {"extId": "cl-1"}, "categories": [{"extId": "c1"}, {"extId": "unknown"}],
            "nics": [{"extId": "n1", "nicBackingInfo": {"macAddress": "50:6b:8d:00:00:01", "isConnected": false},
                      "nicNetworkInfo": {"nicType": "NORMAL_NIC", "subnet": {"extId": "s1"}}}],
            "bootConfig": {"$objectType": "vmm.v4.ahv.config.UefiBoot"}
        });
        let v3 = to_v3(Kind::Vm, &raw, &lk).unwrap();
        let r = &v3["status"]["resources"];
        assert_eq!(r["memory_size_mib"], 8192);
        assert!(r.get("host_reference").is_none(), "powered off: no host");
        assert_eq!(r["nic_list"][0]["subnet_reference"]["name"], "vlan-100");
        assert_eq!(r["nic_list"][0]["mac_address"], "50:6b:8d:00:00:01");
        assert!(r["nic_list"][0].get("ip_endpoint_list").is_none());
        assert_eq!(r["boot_config"]["boot_type"], "UEFI");
        assert_eq!(v3["metadata"]["categories"], json!({"Environment": "Production"}));
        assert!(to_v3(Kind::Vm, &json!("nope"), &lk).is_err());
    }

    fn ctx() -> crate::normalize::Context {
        crate::normalize::Context { account: Some("pc".into()), base_url: "https://pc:9440".into(), cluster_names: [("cl-1".to_string(), "pe-1".to_string())].into(), ..Default::default() }
    }

    /// What real v4 VMs carry beyond the basics: CD-ROMs (a disk each, typed
    /// so, also an empty drive), addresses only learned by the hypervisor,
    /// threads per core in the vCPU count, GPUs and vTPM.
    #[test]
    fn cd_roms_learned_addresses_threads_gpus_and_vtpm_come_through() {
        let raw = json!({
            "extId": "vm-1", "name": "db", "numSockets": 2, "numCoresPerSocket": 4, "numThreadsPerCore": 2, "memorySizeBytes": 1073741824u64,
            "cluster": {"extId": "cl-1"},
            "disks": [{"extId": "d-1", "diskAddress": {"busType": "SCSI", "index": 0}, "backingInfo": {"diskSizeBytes": 10737418240u64}}],
            "cdRoms": [{"extId": "cd-1", "diskAddress": {"busType": "IDE", "index": 0}, "backingInfo": {"diskSizeBytes": 5368709120u64, "dataSource": {"reference": {"imageExtId": "img-1"}}}},
                       {"extId": "cd-2", "diskAddress": {"busType": "SATA", "index": 1}}],
            "nics": [{"extId": "n-1", "networkInfo": {"subnet": {"extId": "s-1"}, "ipv4Config": {"ipAddress": {"value": "10.0.0.5"}}, "ipv4Info": {"learnedIpAddresses": [{"value": "10.0.0.5"}, {"value": "10.0.0.6"}]}}},
                     {"extId": "n-2", "networkInfo": {"subnet": {"extId": "s-1"}, "ipv4Info": {"learnedIpAddresses": [{"value": "10.0.0.7", "prefixLength": 32}]}}}],
            "gpus": [{"extId": "g-1", "vendor": "NVIDIA", "mode": "VIRTUAL", "deviceId": 8712, "name": "NVIDIA A16-4Q"}],
            "vtpmConfig": {"isVtpmEnabled": true, "version": "2.0"}
        });
        let vm = crate::normalize::service_of(Kind::Vm, &ctx(), to_v3(Kind::Vm, &raw, &Lookups::default()).unwrap()).unwrap();
        let d = &vm.data;
        let drives: Vec<(&str, &str, &str)> = d["disks"].as_array().unwrap().iter().map(|x| (x["uuid"].as_str().unwrap(), x["device_type"].as_str().unwrap(), x["adapter_type"].as_str().unwrap())).collect();
        assert_eq!(drives, [("d-1", "DISK", "SCSI"), ("cd-1", "CDROM", "IDE"), ("cd-2", "CDROM", "SATA")]);
        assert_eq!(d["disks"][1]["size_bytes"], 5368709120u64);
        assert_eq!(d["disks"][1]["image_uuid"], "img-1");
        assert_eq!(d["disk_total_bytes"], 10737418240u64, "CD-ROMs are not counted as disk space");
        assert_eq!(vm.ip_addresses, ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
        assert_eq!(d["nics"][1]["ip_addresses"], json!(["10.0.0.7"]));
        assert_eq!((d["vcpus"].clone(), d["num_sockets"].clone(), d["num_vcpus_per_socket"].clone(), d["num_threads_per_core"].clone()), (json!(16), json!(2), json!(4), json!(2)));
        assert_eq!(vm.instance_type.as_deref(), Some("16vCPU-1GiB"));
        assert_eq!(d["gpus"], json!([{"vendor": "NVIDIA", "mode": "VIRTUAL", "device_id": 8712, "name": "NVIDIA A16-4Q", "uuid": "g-1"}]));
        assert_eq!(d["vtpm_enabled"], true);
        let disks = crate::normalize::disks_of(&vm);
        assert_eq!(disks.iter().map(|x| x.resource_id.as_str()).collect::<Vec<_>>(), ["d-1", "cd-1", "cd-2"], "each drive a Storage/Disk");
        assert_eq!(disks[1].instance_type.as_deref(), Some("CDROM"));
        // Without GPUs or vTPM the VM's data has neither key.
        let plain = crate::normalize::service_of(Kind::Vm, &ctx(), to_v3(Kind::Vm, &json!({"extId": "v", "name": "n"}), &Lookups::default()).unwrap()).unwrap();
        assert!(plain.data.get("gpus").is_none() && plain.data.get("vtpm_enabled").is_none());
    }

    /// A v4 host's CPU frequency is `cpuFrequencyHz` (its capacity stays);
    /// a storage container's encryption is `isSoftwareEncryptionEnabled`.
    #[test]
    fn host_frequency_and_container_encryption_use_the_v4_fields() {
        let host = json!({"extId": "h-1", "hostName": "node-1", "cluster": {"uuid": "cl-1"}, "cpuFrequencyHz": 2000000000u64, "cpuCapacityHz": 128000000000u64});
        let h = crate::normalize::service_of(Kind::Host, &ctx(), to_v3(Kind::Host, &host, &Lookups::default()).unwrap()).unwrap();
        assert_eq!((h.data["cpu_frequency_hz"].clone(), h.data["cpu_capacity_hz"].clone()), (json!(2000000000u64), json!(128000000000u64)));
        let sc = json!({"containerExtId": "sc-1", "name": "c", "clusterExtId": "cl-1", "isSoftwareEncryptionEnabled": true});
        let c = crate::normalize::service_of(Kind::StorageContainer, &ctx(), to_v3(Kind::StorageContainer, &sc, &Lookups::default()).unwrap()).unwrap();
        assert_eq!(c.data["encrypted"], true);
        let off = json!({"containerExtId": "sc-2", "name": "c", "isSoftwareEncryptionEnabled": false, "isEncrypted": true});
        assert_eq!(crate::normalize::service_of(Kind::StorageContainer, &ctx(), off).unwrap().data["encrypted"], false, "the v4.0 field wins");
    }

    /// A v4 policy's categories are references named through the category
    /// list (an id it does not name is left out); a v4 recovery point
    /// holds all its consistency group's VMs.
    #[test]
    fn protection_policies_and_recovery_points_from_v4() {
        let mut lk = Lookups::default();
        lk.add_category(&json!({"extId": "c1", "key": "Environment", "value": "Production"}));
        lk.add_category(&json!({"extId": "c2", "key": "Environment", "value": "Staging"}));
        let raw = json!({"extId": "pp-1", "name": "gold", "categoryIds": ["c1", "c2", "gone"],
            "replicationConfigurations": [
                {"sourceLocationLabel": "a", "remoteLocationLabel": "b", "schedule": {"recoveryPointObjectiveTimeSeconds": 3600, "recoveryPointType": "CRASH_CONSISTENT"}},
                {"sourceLocationLabel": "a", "remoteLocationLabel": "c", "schedule": {"recoveryPointObjectiveTimeSeconds": 900}}]});
        let p = crate::normalize::service_of(Kind::ProtectionPolicy, &ctx(), to_v3(Kind::ProtectionPolicy, &raw, &lk).unwrap()).unwrap();
        assert_eq!(p.data["rpo_secs"], 900, "the shortest schedule's");
        assert_eq!(p.data["categories"], json!(["Environment:Production", "Environment:Staging"]));
        assert_eq!(p.data["category_match"], "CATEGORIES_MATCH_ANY");
        let rp = json!({"extId": "rp-1", "creationTime": "2026-01-01T00:00:00Z", "expirationTime": "2026-01-08T00:00:00.000+00:00", "status": "COMPLETE",
            "vmRecoveryPoints": [{"vmExtId": "vm-1"}, {"vmExtId": "vm-2"}, {"consistencyGroupExtId": "no-vm"}]});
        let r = crate::normalize::service_of(Kind::RecoveryPoint, &ctx(), to_v3(Kind::RecoveryPoint, &rp, &lk).unwrap()).unwrap();
        assert_eq!((r.name.as_str(), r.data["vm_count"].clone()), ("rp-1", json!(2)), "named by its id; the VM-less entry left out");
        assert_eq!(r.data["expires_at"], "2026-01-08T00:00:00.000+00:00");
        assert_eq!(r.data["state"], "COMPLETE");
        assert!(to_v3(Kind::RecoveryPoint, &json!([]), &lk).is_err());
    }

    #[test]
    fn the_prism_central_pseudo_cluster_stays_recognisable() {
        let raw = json!({"extId": "pc", "name": "pc", "config": {"clusterFunction": ["PRISM_CENTRAL"], "hypervisorTypes": ["$UNKNOWN"]}});
        let v3 = to_v3(Kind::Cluster, &raw, &Lookups::default()).unwrap();
        let e: crate::v3::Entity<crate::v3::ClusterResources> = serde_json::from_value(v3).unwrap();
        assert!(e.status.resources.is_prism_central());
    }
}
