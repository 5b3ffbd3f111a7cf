//! Prism Central v3 REST API: the wire model (error bodies are
//! [`crate::server_error`]'s).
//!
//! Only what the collector reads is modelled; every field that real Prism
//! omits for some entities (powered-off VMs have no host, NICs may have no
//! IP, entities may have no categories) is optional. Unknown fields are
//! ignored. Entities are parsed one by one from a page of raw JSON values so a
//! single malformed entity never loses the rest of its page.

use crate::network_kinds::NetKind;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// One listed entity as normalization takes it: the raw JSON text of a v3
/// page (parsed once, straight into the typed entity, with no JSON tree in
/// between) or a JSON value (v4 items adapted to the v3 shape, tests).
#[derive(Debug)]
pub enum Item {
    Raw(Box<RawValue>),
    Value(Value),
}

impl From<Value> for Item {
    fn from(v: Value) -> Item {
        Item::Value(v)
    }
}

impl Item {
    /// As a JSON value (parses raw text; `null` if it nests too deeply).
    pub fn into_value(self) -> Value {
        match self {
            Item::Raw(r) => serde_json::from_str(r.get()).unwrap_or(Value::Null),
            Item::Value(v) => v,
        }
    }

    /// Parses the item into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Item::Raw(r) => serde_json::from_str(r.get()),
            Item::Value(v) => T::deserialize(v),
        }
    }

    /// `metadata.uuid`, when there is one.
    pub fn uuid(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Meta {
            uuid: Option<String>,
        }
        #[derive(Deserialize)]
        struct Head {
            metadata: Option<Meta>,
        }
        match self {
            Item::Value(v) => v.pointer("/metadata/uuid").and_then(Value::as_str).map(str::to_string),
            Item::Raw(_) => self.parse::<Head>().ok()?.metadata?.uuid,
        }
    }
}

/// The resource kinds collected through `POST /api/nutanix/v3/{kind}s/list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cluster,
    Host,
    Vm,
    Subnet,
    Image,
    VolumeGroup,
    Project,
    Category,
    /// Only in the v4 APIs (Prism Central has no v3 list of them).
    StorageContainer,
    /// Each VM disk as its own resource, from the VM list (no list of its own).
    VmDisk,
    /// Recovery points (v3 `vm_recovery_point`s; v4 dataprotection).
    /// Listed after VMs and before protection policies, whose RPO flags
    /// they feed ([`crate::protection`]).
    RecoveryPoint,
    /// Protection policies (v3 `protection_rule`s; v4 datapolicies).
    ProtectionPolicy,
    /// Recovery plans (through v3: datapolicies v4.0 has no list of them).
    RecoveryPlan,
    /// The networking and security kinds ([`crate::network_kinds`]).
    Network(NetKind),
    /// VM templates (v4 vmm only; [`crate::operations`]).
    VmTemplate,
    /// Alerts (v4 monitoring only).
    Alert,
    /// LCM software and firmware entities (v4 lifecycle only).
    LcmEntity,
    /// Each VM's Nutanix Guest Tools state, from the VM list (no list of
    /// its own; [`crate::operations::guest_tools_of`]).
    GuestTools,
    /// Physical GPUs, each with its host and the VMs using it, from the
    /// v3 host list's `gpu_list` ([`crate::operations::gpus_of_host`]):
    /// v4.0 has no list that names a physical GPU's host.
    Gpu,
}

impl Kind {
    pub const ALL: [Kind; 25] = [
        Kind::Cluster,
        Kind::Host,
        Kind::Vm,
        Kind::Subnet,
        Kind::Image,
        Kind::VolumeGroup,
        Kind::Project,
        Kind::Category,
        Kind::StorageContainer,
        Kind::VmDisk,
        Kind::RecoveryPoint,
        Kind::ProtectionPolicy,
        Kind::RecoveryPlan,
        Kind::Network(NetKind::Vpc),
        Kind::Network(NetKind::FloatingIp),
        Kind::Network(NetKind::RouteTable),
        Kind::Network(NetKind::VirtualSwitch),
        Kind::Network(NetKind::SecurityPolicy),
        Kind::Network(NetKind::AddressGroup),
        Kind::Network(NetKind::ServiceGroup),
        Kind::VmTemplate,
        Kind::Alert,
        Kind::LcmEntity,
        Kind::GuestTools,
        Kind::Gpu,
    ];
    /// The compute extras and operations kinds (option `resource_kinds`
    /// only; v4 only).
    pub const OPERATIONS: [Kind; 3] = [Kind::VmTemplate, Kind::Alert, Kind::LcmEntity];
    /// The data protection kinds (option `resource_kinds` only).
    pub const DATA_PROTECTION: [Kind; 3] = [Kind::RecoveryPoint, Kind::ProtectionPolicy, Kind::RecoveryPlan];
    /// What a collection lists when the options name no kinds (volume
    /// groups, projects, categories and storage containers only on
    /// request: option `resource_kinds`).
    pub const DEFAULT: [Kind; 5] = [Kind::Cluster, Kind::Host, Kind::Vm, Kind::Subnet, Kind::Image];

    /// The `kind` field of the list request body.
    pub fn api_kind(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Host => "host",
            Kind::Vm => "vm",
            Kind::Subnet => "subnet",
            Kind::Image => "image",
            Kind::VolumeGroup => "volume_group",
            Kind::Project => "project",
            Kind::Category => "category",
            Kind::StorageContainer => "storage_container",
            Kind::VmDisk => "vm_disk",
            Kind::RecoveryPoint => "vm_recovery_point",
            Kind::ProtectionPolicy => "protection_rule",
            Kind::RecoveryPlan => "recovery_plan",
            Kind::Network(n) => n.api_kind(),
            Kind::VmTemplate => "vm_template",
            Kind::Alert => "alert",
            Kind::LcmEntity => "lcm_entity",
            Kind::GuestTools => "guest_tools",
            // Read from the host list.
            Kind::Gpu => "host",
        }
    }

    /// Whether Prism Central lists this kind through v3.
    pub fn has_v3(self) -> bool {
        match self {
            Kind::Network(n) => !n.v3_list_path().is_empty(),
            k => !matches!(k, Kind::StorageContainer | Kind::VmDisk | Kind::VmTemplate | Kind::Alert | Kind::LcmEntity | Kind::GuestTools),
        }
    }

    /// Path of the v3 list endpoint (empty for a kind without one, see
    /// [`Kind::has_v3`]).
    pub fn list_path(self) -> &'static str {
        match self {
            Kind::Cluster => "/api/nutanix/v3/clusters/list",
            Kind::Host | Kind::Gpu => "/api/nutanix/v3/hosts/list",
            Kind::Vm => "/api/nutanix/v3/vms/list",
            Kind::Subnet => "/api/nutanix/v3/subnets/list",
            Kind::Image => "/api/nutanix/v3/images/list",
            Kind::VolumeGroup => "/api/nutanix/v3/volume_groups/list",
            Kind::Project => "/api/nutanix/v3/projects/list",
            // The keys; each key's values at `/categories/{key}/list`.
            Kind::Category => "/api/nutanix/v3/categories/list",
            Kind::RecoveryPoint => "/api/nutanix/v3/vm_recovery_points/list",
            Kind::ProtectionPolicy => "/api/nutanix/v3/protection_rules/list",
            Kind::RecoveryPlan => "/api/nutanix/v3/recovery_plans/list",
            Kind::StorageContainer | Kind::VmDisk | Kind::VmTemplate | Kind::Alert | Kind::LcmEntity | Kind::GuestTools => "",
            Kind::Network(n) => n.v3_list_path(),
        }
    }

    /// Name used in options and task options (`"vms"`, `"clusters"`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Cluster => "clusters",
            Kind::Host => "hosts",
            Kind::Vm => "vms",
            Kind::Subnet => "subnets",
            Kind::Image => "images",
            Kind::VolumeGroup => "volume_groups",
            Kind::Project => "projects",
            Kind::Category => "categories",
            Kind::StorageContainer => "storage_containers",
            Kind::VmDisk => "vm_disks",
            Kind::RecoveryPoint => "recovery_points",
            Kind::ProtectionPolicy => "protection_policies",
            Kind::RecoveryPlan => "recovery_plans",
            Kind::Network(n) => n.plural(),
            Kind::VmTemplate => "vm_templates",
            Kind::Alert => "alerts",
            Kind::LcmEntity => "lcm_entities",
            Kind::GuestTools => "guest_tools",
            Kind::Gpu => "gpus",
        }
    }

    pub fn from_plural(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == s)
    }
}

/// One page of a list call, entities still raw.
#[derive(Debug, Deserialize)]
pub struct ListPage {
    pub metadata: ListMetadata,
    #[serde(default)]
    pub entities: Vec<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
pub struct ListMetadata {
    pub total_matches: Option<u64>,
    pub length: Option<u64>,
    pub offset: Option<u64>,
}

/// `{"kind": ..., "uuid": ..., "name": ...}` references between entities.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Ref {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Entity metadata common to all kinds.
#[derive(Debug, Deserialize)]
pub struct EntityMetadata {
    pub uuid: Option<String>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub last_update_time: Option<String>,
    /// `{"Environment": "Production"}`: one value per category key.
    #[serde(default)]
    pub categories: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub project_reference: Option<Ref>,
    #[serde(default)]
    pub owner_reference: Option<Ref>,
}

/// An entity: `{metadata, status}`; `spec` is not read (status is the truth).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de> + Default"))]
pub struct Entity<R> {
    pub metadata: EntityMetadata,
    pub status: Status<R>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de> + Default"))]
pub struct Status<R> {
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub cluster_reference: Option<Ref>,
    /// Absent on entities Prism is still creating; every field then
    /// takes its default.
    #[serde(default)]
    pub resources: R,
}

// ---- VMs -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct VmResources {
    #[serde(default)]
    pub num_sockets: Option<u32>,
    #[serde(default)]
    pub num_vcpus_per_socket: Option<u32>,
    #[serde(default)]
    pub num_threads_per_core: Option<u32>,
    #[serde(default)]
    pub memory_size_mib: Option<u64>,
    #[serde(default)]
    pub power_state: Option<String>,
    #[serde(default)]
    pub hypervisor_type: Option<String>,
    #[serde(default)]
    pub machine_type: Option<String>,
    #[serde(default)]
    pub host_reference: Option<Ref>,
    #[serde(default)]
    pub disk_list: Vec<Disk>,
    #[serde(default)]
    pub nic_list: Vec<Nic>,
    #[serde(default)]
    pub guest_tools: Option<Value>,
    #[serde(default)]
    pub boot_config: Option<BootConfig>,
    #[serde(default)]
    pub gpu_list: Vec<Gpu>,
    #[serde(default)]
    pub vtpm_config: Option<VtpmConfig>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Gpu {
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub device_id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VtpmConfig {
    #[serde(default)]
    pub vtpm_enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BootConfig {
    #[serde(default)]
    pub boot_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Disk {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub disk_size_bytes: Option<u64>,
    #[serde(default)]
    pub disk_size_mib: Option<u64>,
    #[serde(default)]
    pub device_properties: Option<DeviceProperties>,
    #[serde(default)]
    pub data_source_reference: Option<Ref>,
    #[serde(default)]
    pub storage_config: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeviceProperties {
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub disk_address: Option<DiskAddress>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DiskAddress {
    #[serde(default)]
    pub adapter_type: Option<String>,
    #[serde(default)]
    pub device_index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Nic {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub nic_type: Option<String>,
    #[serde(default)]
    pub is_connected: Option<bool>,
    #[serde(default)]
    pub subnet_reference: Option<Ref>,
    #[serde(default)]
    pub ip_endpoint_list: Vec<IpEndpoint>,
}

#[derive(Debug, Default, Deserialize)]
pub struct IpEndpoint {
    pub ip: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

// ---- Clusters --------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ClusterResources {
    #[serde(default)]
    pub config: Option<ClusterConfig>,
    #[serde(default)]
    pub nodes: Option<ClusterNodes>,
    #[serde(default)]
    pub network: Option<ClusterNetwork>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClusterConfig {
    #[serde(default)]
    pub service_list: Vec<String>,
    #[serde(default)]
    pub build: Option<ClusterBuild>,
    #[serde(default)]
    pub software_map: Option<BTreeMap<String, SoftwareVersion>>,
    #[serde(default)]
    pub cluster_arch: Option<String>,
    #[serde(default)]
    pub redundancy_factor: Option<u32>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub encryption_status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClusterBuild {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub full_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SoftwareVersion {
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClusterNodes {
    #[serde(default)]
    pub hypervisor_server_list: Vec<HypervisorServer>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HypervisorServer {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClusterNetwork {
    #[serde(default)]
    pub external_ip: Option<String>,
    #[serde(default)]
    pub name_server_ip_list: Vec<String>,
    #[serde(default)]
    pub ntp_server_ip_list: Vec<String>,
}

impl ClusterResources {
    /// The Prism Central pseudo-cluster lists `PRISM_CENTRAL` in its services.
    pub fn is_prism_central(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.service_list.iter().any(|s| s == "PRISM_CENTRAL"))
    }
}

// ---- Hosts -----------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct HostResources {
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub host_type: Option<String>,
    #[serde(default)]
    pub cpu_model: Option<String>,
    #[serde(default)]
    pub num_cpu_sockets: Option<u32>,
    #[serde(default)]
    pub num_cpu_cores: Option<u32>,
    #[serde(default)]
    pub cpu_capacity_hz: Option<u64>,
    /// Not in the v3 API (its host resources have no frequency): only v4
    /// hosts (`cpuFrequencyHz`, through the adapter) fill it.
    #[serde(default)]
    pub cpu_frequency_hz: Option<u64>,
    #[serde(default)]
    pub memory_capacity_mib: Option<u64>,
    #[serde(default)]
    pub hypervisor: Option<Hypervisor>,
    #[serde(default)]
    pub controller_vm: Option<ControllerVm>,
    #[serde(default)]
    pub block: Option<Block>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Hypervisor {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub hypervisor_full_name: Option<String>,
    #[serde(default)]
    pub num_vms: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ControllerVm {
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Block {
    #[serde(default)]
    pub block_serial_number: Option<String>,
    #[serde(default)]
    pub block_model: Option<String>,
}

// ---- Subnets ---------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct SubnetResources {
    #[serde(default)]
    pub vlan_id: Option<u32>,
    #[serde(default)]
    pub subnet_type: Option<String>,
    #[serde(default)]
    pub vswitch_name: Option<String>,
    #[serde(default)]
    pub ip_config: Option<IpConfig>,
    /// An overlay subnet's VPC.
    #[serde(default)]
    pub vpc_reference: Option<Ref>,
}

#[derive(Debug, Default, Deserialize)]
pub struct IpConfig {
    #[serde(default)]
    pub subnet_ip: Option<String>,
    #[serde(default)]
    pub prefix_length: Option<u32>,
    #[serde(default)]
    pub default_gateway_ip: Option<String>,
    #[serde(default)]
    pub pool_list: Vec<Pool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Pool {
    pub range: Option<String>,
}

// ---- Images ----------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ImageResources {
    #[serde(default)]
    pub image_type: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub source_uri: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub current_cluster_reference_list: Vec<Ref>,
}

// ---- Volume groups ---------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct VolumeGroupResources {
    /// `SHARED` or `NOT_SHARED`.
    #[serde(default)]
    pub sharing_status: Option<String>,
    #[serde(default)]
    pub flash_mode: Option<String>,
    #[serde(default)]
    pub iscsi_target_prefix: Option<String>,
    #[serde(default)]
    pub disk_list: Vec<VgDisk>,
    #[serde(default)]
    pub attachment_list: Vec<VgAttachment>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VgDisk {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub disk_size_mib: Option<u64>,
    #[serde(default)]
    pub storage_container_uuid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VgAttachment {
    #[serde(default)]
    pub vm_reference: Option<Ref>,
    /// iSCSI clients attach by initiator name instead of a VM.
    #[serde(default)]
    pub iscsi_initiator_name: Option<String>,
}

// ---- Projects --------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ProjectResources {
    #[serde(default)]
    pub is_default: Option<bool>,
    #[serde(default)]
    pub subnet_reference_list: Vec<Ref>,
    #[serde(default)]
    pub user_reference_list: Vec<Ref>,
    #[serde(default)]
    pub cluster_reference_list: Vec<Ref>,
    #[serde(default)]
    pub resource_domain: Option<ResourceDomain>,
}

/// A project's quotas.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceDomain {
    #[serde(default)]
    pub resources: Vec<Quota>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Quota {
    /// `VCPUS`, `MEMORY` (bytes), `STORAGE` (bytes).
    pub resource_type: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub value: Option<u64>,
}

// ---- Data protection ---------------------------------------------------------

/// A protection rule's (protection policy's) resources: where it
/// replicates, its schedules (each with its RPO) and the categories of the
/// VMs it protects.
#[derive(Debug, Default, Deserialize)]
pub struct ProtectionRuleResources {
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub ordered_availability_zone_list: Vec<AvailabilityZone>,
    #[serde(default)]
    pub availability_zone_connectivity_list: Vec<ZoneConnectivity>,
    #[serde(default)]
    pub category_filter: Option<CategoryFilter>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AvailabilityZone {
    #[serde(default)]
    pub availability_zone_url: Option<String>,
    #[serde(default)]
    pub cluster_uuid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ZoneConnectivity {
    #[serde(default)]
    pub source_availability_zone_index: Option<u32>,
    #[serde(default)]
    pub destination_availability_zone_index: Option<u32>,
    #[serde(default)]
    pub snapshot_schedule_list: Vec<SnapshotSchedule>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SnapshotSchedule {
    #[serde(default)]
    pub recovery_point_objective_secs: Option<u64>,
    /// `CRASH_CONSISTENT` or `APPLICATION_CONSISTENT`.
    #[serde(default)]
    pub snapshot_type: Option<String>,
    #[serde(default)]
    pub local_snapshot_retention_policy: Option<Retention>,
    #[serde(default)]
    pub remote_snapshot_retention_policy: Option<Retention>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Retention {
    #[serde(default)]
    pub num_snapshots: Option<u64>,
}

/// `{"type": "CATEGORIES_MATCH_ANY", "kind_list": ["vm"], "params": {"Key": ["Value", ..]}}`.
#[derive(Debug, Default, Deserialize)]
pub struct CategoryFilter {
    #[serde(default, rename = "type")]
    pub match_type: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
}

/// A VM recovery point's resources (v3 lists one per VM; the v4 adapter
/// puts a recovery point's VMs in `vm_reference_list`).
#[derive(Debug, Default, Deserialize)]
pub struct RecoveryPointResources {
    #[serde(default)]
    pub parent_vm_reference: Option<Ref>,
    #[serde(default)]
    pub vm_reference_list: Vec<Ref>,
    /// v3: milliseconds since the epoch.
    #[serde(default)]
    pub expiration_time_msecs: Option<u64>,
    /// The v4 adapter's: RFC 3339.
    #[serde(default)]
    pub expiration_time: Option<String>,
    #[serde(default)]
    pub recovery_point_type: Option<String>,
    #[serde(default)]
    pub consistency_group_uuid: Option<String>,
}

/// A recovery plan's resources: its stages, each recovering VMs named
/// one by one or by category.
#[derive(Debug, Default, Deserialize)]
pub struct RecoveryPlanResources {
    #[serde(default)]
    pub stage_list: Vec<PlanStage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PlanStage {
    #[serde(default)]
    pub stage_uuid: Option<String>,
    #[serde(default)]
    pub delay_time_secs: Option<u64>,
    #[serde(default)]
    pub stage_work: Option<StageWork>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StageWork {
    #[serde(default)]
    pub recover_entities: Option<RecoverEntities>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RecoverEntities {
    #[serde(default)]
    pub entity_info_list: Vec<EntityInfo>,
}

/// One entry of a stage: a VM (`any_entity_reference`) or categories.
#[derive(Debug, Default, Deserialize)]
pub struct EntityInfo {
    #[serde(default)]
    pub any_entity_reference: Option<KindRef>,
    #[serde(default)]
    pub categories: Option<BTreeMap<String, String>>,
}

/// A reference with its kind (`{"kind": "vm", "uuid", "name"}`).
#[derive(Debug, Default, Deserialize)]
pub struct KindRef {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_plural(k.plural()), Some(k));
            match k {
                // Option names of their own (`security_policies`): checked in `network`.
                Kind::Network(n) => assert_eq!(!n.v3_list_path().is_empty(), k.has_v3(), "{k:?}"),
                // The data protection kinds keep v3's names in their paths.
                _ => {
                    let v3_name = k.list_path().trim_end_matches("/list").rsplit('/').next().unwrap_or_default();
                    let named = v3_name == k.plural() || v3_name == format!("{}s", k.api_kind());
                    assert_eq!(k.list_path().ends_with("/list") && named, k.has_v3(), "{k:?}");
                }
            }
        }
        assert_eq!(Kind::RecoveryPoint.list_path(), "/api/nutanix/v3/vm_recovery_points/list");
        assert_eq!(Kind::from_plural("protection_policies"), Some(Kind::ProtectionPolicy));
        assert_eq!(Kind::from_plural("volume_groups"), Some(Kind::VolumeGroup));
        assert_eq!(Kind::from_plural("disks"), None);
        assert_eq!((Kind::StorageContainer.has_v3(), Kind::StorageContainer.list_path()), (false, ""));
        for k in [Kind::VolumeGroup, Kind::Project, Kind::Category, Kind::StorageContainer, Kind::VmDisk, Kind::RecoveryPoint, Kind::ProtectionPolicy, Kind::RecoveryPlan] {
            assert!(!Kind::DEFAULT.contains(&k), "{k:?} only on request");
        }
    }

    #[test]
    fn pc_pseudo_cluster_detected() {
        let r: ClusterResources =
            serde_json::from_str(r#"{"config":{"service_list":["PRISM_CENTRAL"]}}"#).unwrap();
        assert!(r.is_prism_central());
        let r: ClusterResources = serde_json::from_str(r#"{"config":{"service_list":["AOS"]}}"#).unwrap();
        assert!(!r.is_prism_central());
        let r: ClusterResources = serde_json::from_str(r#"{}"#).unwrap();
        assert!(!r.is_prism_central());
    }
}
