//! Dynamic layouts of the CloudServiceTypes: what CloudForet's console shows.
//!
//! The structure is the one CloudForet's Python plugin SDK generates (see
//! `shared/reference/cloudforet/dynamic_layout_example.json`):
//! `{"view": {"search": [...], "table": {"layout": {"name": "Main Table",
//! "type": "query-search-table", "options": {"default_sort", "fields"}}},
//! "sub_data": {"layouts": [...]}}}`, with fields of type `text`, `enum`
//! (state icons), `size`, `datetime`, `list`.

pub use cloudforet_collector::layout::*;
use serde_json::Value;

/// The per-service `metadata` pointing the console at its type's layout.
pub fn service_reference(group: &str, kind: &str) -> Value {
    cloudforet_collector::layout::service_reference(crate::PROVIDER, group, kind)
}

const POWER: &[(&str, &str)] = &[("ON", "green.500"), ("OFF", "gray.400"), ("PAUSED", "yellow.500"), ("SUSPENDED", "yellow.500"), ("UNKNOWN", "red.500")];
const ENTITY_STATE: &[(&str, &str)] = &[("COMPLETE", "green.500"), ("PENDING", "yellow.500"), ("RUNNING", "yellow.500"), ("ERROR", "red.500")];

pub fn vm() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Power State", "data.power_state"),
            search("Cluster", "data.cluster.name"),
            search("Host", "data.host.name"),
            search_typed("vCPUs", "data.vcpus", "integer"),
            search_typed("Memory (MiB)", "data.memory_mib", "integer"),
            search("IP Address", "ip_addresses"),
            search("MAC Address", "data.nics.mac_address"),
            search("Subnet", "data.nics.subnet.name"),
            search("Project", "data.project"),
            search_typed("Created", "data.created_at", "datetime"),
        ],
        "name",
        vec![
            state("Power State", "data.power_state", POWER),
            text("Cluster", "data.cluster.name"),
            text("Host", "data.host.name"),
            text("vCPUs", "data.vcpus"),
            size("Memory", "data.memory_mib", "MB", "GB"),
            size("Disk Total", "data.disk_total_bytes", "BYTES", "GB"),
            list("IP Addresses", "ip_addresses", "<br>"),
            text("Hypervisor", "data.hypervisor_type").optional(),
            text("Project", "data.project").optional(),
            text("Owner", "data.owner").optional(),
            datetime("Created", "data.created_at").optional(),
            datetime("Updated", "data.updated_at").optional(),
        ],
        vec![
            item(
                "VM",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    state("Power State", "data.power_state", POWER),
                    state("Entity State", "data.state", ENTITY_STATE),
                    text("Instance Type", "instance_type"),
                    text("Sockets", "data.num_sockets"),
                    text("vCPUs per Socket", "data.num_vcpus_per_socket"),
                    text("vCPUs", "data.vcpus"),
                    size("Memory", "data.memory_mib", "MB", "GB"),
                    text("Machine Type", "data.machine_type"),
                    text("Boot Type", "data.boot_type"),
                    text("Cluster", "data.cluster.name"),
                    text("Host", "data.host.name"),
                    text("Project", "data.project"),
                    text("Owner", "data.owner"),
                    datetime("Created", "data.created_at"),
                    datetime("Updated", "data.updated_at"),
                ],
            ),
            table(
                "Disks",
                "data.disks",
                vec![
                    text("UUID", "uuid"),
                    text("Device Type", "device_type"),
                    text("Adapter", "adapter_type"),
                    text("Index", "device_index"),
                    size("Size", "size_bytes", "BYTES", "GB"),
                    text("Image", "image_uuid"),
                ],
            ),
            table(
                "NICs",
                "data.nics",
                vec![
                    text("MAC Address", "mac_address"),
                    list("IP Addresses", "ip_addresses", "<br>"),
                    text("Subnet", "subnet.name"),
                    text("NIC Type", "nic_type"),
                    text("Connected", "is_connected"),
                ],
            ),
        ],
    )
}

pub fn host() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Serial Number", "data.serial_number"),
            search("Cluster", "data.cluster.name"),
            search("Hypervisor IP", "data.hypervisor.ip"),
            search("CVM IP", "data.controller_vm_ip"),
            search("CPU Model", "data.cpu_model"),
        ],
        "name",
        vec![
            text("Cluster", "data.cluster.name"),
            text("Hypervisor IP", "data.hypervisor.ip"),
            text("CVM IP", "data.controller_vm_ip"),
            text("CPU Model", "data.cpu_model"),
            text("Cores", "data.num_cpu_cores"),
            size("Memory", "data.memory_mib", "MB", "GB"),
            text("VMs", "data.hypervisor.num_vms"),
            text("Serial Number", "data.serial_number").optional(),
            text("Block Model", "data.block.model").optional(),
        ],
        vec![item(
            "Host",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Host Type", "data.host_type"),
                text("Serial Number", "data.serial_number"),
                text("CPU Model", "data.cpu_model"),
                text("Sockets", "data.num_cpu_sockets"),
                text("Cores", "data.num_cpu_cores"),
                text("CPU Capacity (Hz)", "data.cpu_capacity_hz"),
                size("Memory", "data.memory_mib", "MB", "GB"),
                text("Hypervisor", "data.hypervisor.full_name"),
                text("Hypervisor IP", "data.hypervisor.ip"),
                text("CVM IP", "data.controller_vm_ip"),
                text("Block Serial", "data.block.serial_number"),
                text("Block Model", "data.block.model"),
                text("Cluster", "data.cluster.name"),
            ],
        )],
    )
}

pub fn cluster() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("AOS Version", "data.aos_version"),
            search("Hypervisor", "data.hypervisor_types"),
            search("External IP", "data.external_ip"),
            search_typed("Nodes", "data.num_nodes", "integer"),
        ],
        "name",
        vec![
            text("AOS Version", "data.aos_version"),
            list("Hypervisors", "data.hypervisor_types", ", "),
            text("Nodes", "data.num_nodes"),
            text("External IP", "data.external_ip"),
            text("Redundancy Factor", "data.redundancy_factor").optional(),
            text("Architecture", "data.architecture").optional(),
        ],
        vec![
            item(
                "Cluster",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("AOS Version", "data.aos_version"),
                    text("Full Version", "data.full_version"),
                    list("Services", "data.service_list", ", "),
                    text("External IP", "data.external_ip"),
                    text("Redundancy Factor", "data.redundancy_factor"),
                    text("Architecture", "data.architecture"),
                    text("Timezone", "data.timezone"),
                    text("Encryption", "data.encryption_status"),
                    list("Name Servers", "data.name_servers", ", "),
                    list("NTP Servers", "data.ntp_servers", ", "),
                ],
            ),
            table(
                "Hypervisor Servers",
                "data.hypervisor_servers",
                vec![text("IP", "ip"), text("Type", "type"), text("Version", "version")],
            ),
        ],
    )
}

pub fn subnet() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search_typed("VLAN", "data.vlan_id", "integer"),
            search("Network", "data.network"),
            search("Cluster", "data.cluster.name"),
        ],
        "name",
        vec![
            text("Type", "data.subnet_type"),
            text("VLAN", "data.vlan_id"),
            text("Network", "data.network"),
            text("Gateway", "data.gateway"),
            text("Cluster", "data.cluster.name"),
            text("Virtual Switch", "data.vswitch_name").optional(),
        ],
        vec![item(
            "Subnet",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Type", "data.subnet_type"),
                text("VLAN", "data.vlan_id"),
                text("Network", "data.network"),
                text("Gateway", "data.gateway"),
                list("IP Pools", "data.ip_pools", "<br>"),
                text("Virtual Switch", "data.vswitch_name"),
                text("Cluster", "data.cluster.name"),
            ],
        )],
    )
}

pub fn image() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Image Type", "data.image_type"),
            search_typed("Size (Bytes)", "data.size_bytes", "integer"),
        ],
        "name",
        vec![
            text("Image Type", "data.image_type"),
            size("Size", "data.size_bytes", "BYTES", "GB"),
            text("Architecture", "data.architecture"),
            text("Source", "data.source_uri").optional(),
            datetime("Created", "data.created_at").optional(),
        ],
        vec![item(
            "Image",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Description", "data.description"),
                text("Image Type", "data.image_type"),
                size("Size", "data.size_bytes", "BYTES", "GB"),
                text("Architecture", "data.architecture"),
                text("Source URI", "data.source_uri"),
                list("Clusters", "data.clusters.name", ", "),
                datetime("Created", "data.created_at"),
            ],
        )],
    )
}

pub fn volume_group() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Sharing", "data.sharing_status"),
            search_typed("Disks", "data.disk_count", "integer"),
        ],
        "name",
        vec![
            text("Sharing", "data.sharing_status"),
            size("Size", "data.size_bytes", "BYTES", "GB"),
            text("Disks", "data.disk_count"),
            list("Attached VMs", "data.attached_vms.name", ", "),
            text("Cluster", "data.cluster.name"),
        ],
        vec![
            item(
                "Volume Group",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("Sharing", "data.sharing_status"),
                    text("Flash Mode", "data.flash_mode"),
                    text("iSCSI Target Prefix", "data.iscsi_target_prefix"),
                    size("Size", "data.size_bytes", "BYTES", "GB"),
                    text("Cluster", "data.cluster.name"),
                ],
            ),
            table(
                "Disks",
                "data.disks",
                vec![text("Index", "index"), size("Size", "size_bytes", "BYTES", "GB"), text("Storage Container", "storage_container_uuid")],
            ),
            table("Attachments", "data.attachments", vec![text("VM", "vm.name"), text("VM UUID", "vm.uuid"), text("iSCSI Initiator", "iscsi_initiator_name")]),
        ],
    )
}

pub fn category() -> Value {
    view(
        vec![search("Key", "data.key"), search("Value", "data.value")],
        "name",
        vec![text("Key", "data.key"), text("Value", "data.value"), text("Description", "data.description"), text("System", "data.system_defined")],
        vec![item(
            "Category",
            vec![
                text("Key", "data.key"),
                text("Value", "data.value"),
                text("Description", "data.description"),
                text("System defined", "data.system_defined"),
                text("v4 extId", "data.ext_id"),
            ],
        )],
    )
}

pub fn vm_disk() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("VM", "data.vm.name"), search("Device Type", "data.device_type")],
        "name",
        vec![
            text("VM", "data.vm.name"),
            size("Size", "data.size_bytes", "BYTES", "GB"),
            text("Device Type", "data.device_type"),
            text("Bus", "data.adapter_type"),
            text("Cluster", "data.cluster.name"),
        ],
        vec![item(
            "Disk",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("VM", "data.vm.name"),
                text("VM UUID", "data.vm.uuid"),
                size("Size", "data.size_bytes", "BYTES", "GB"),
                text("Device Type", "data.device_type"),
                text("Bus", "data.adapter_type"),
                text("Index", "data.device_index"),
                text("Image", "data.image_uuid"),
                text("Storage Container", "data.storage_container_uuid"),
                text("Cluster", "data.cluster.name"),
            ],
        )],
    )
}

pub fn storage_container() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Erasure Coding", "data.erasure_code"),
            search_typed("Replication Factor", "data.replication_factor", "integer"),
        ],
        "name",
        vec![
            text("Cluster", "data.cluster.name"),
            size("Capacity", "data.max_capacity_bytes", "BYTES", "GB"),
            text("Replication Factor", "data.replication_factor"),
            text("Compression", "data.compression"),
            text("Erasure Coding", "data.erasure_code"),
            text("Dedup", "data.on_disk_dedup"),
        ],
        vec![item(
            "Storage Container",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Cluster", "data.cluster.name"),
                size("Capacity", "data.max_capacity_bytes", "BYTES", "GB"),
                size("Reserved", "data.reserved_bytes", "BYTES", "GB"),
                size("Advertised", "data.advertised_bytes", "BYTES", "GB"),
                text("Replication Factor", "data.replication_factor"),
                text("Compression", "data.compression"),
                text("Compression Delay (s)", "data.compression_delay_s"),
                text("Erasure Coding", "data.erasure_code"),
                text("On-disk Dedup", "data.on_disk_dedup"),
                text("Cache Dedup", "data.cache_dedup"),
                text("Encrypted", "data.encrypted"),
                text("Internal", "data.internal"),
                text("Marked for Removal", "data.marked_for_removal"),
            ],
        )],
    )
}

pub fn project() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search_typed("Users", "data.user_count", "integer")],
        "name",
        vec![
            text("Description", "data.description"),
            text("Users", "data.user_count"),
            list("Clusters", "data.clusters.name", ", "),
            list("Subnets", "data.subnets.name", ", "),
            text("Default", "data.is_default"),
        ],
        vec![
            item(
                "Project",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("State", "data.state"),
                    text("Default", "data.is_default"),
                    datetime("Created", "data.created_at"),
                ],
            ),
            table("Users", "data.users", vec![text("Name", "name"), text("UUID", "uuid")]),
            table("Quotas", "data.quotas", vec![text("Resource", "resource_type"), text("Limit", "limit"), text("Used", "used")]),
        ],
    )
}

const RPO_STATUS: &[(&str, &str)] = &[("OK", "green.500"), ("RPO_VIOLATED", "red.500"), ("NO_RECOVERY_POINT", "red.500"), ("NO_RPO", "gray.400"), ("UNKNOWN", "yellow.500")];

/// Protection policies: the RPO flags are searchable (`data.rpo_violated`,
/// the violating VMs' names).
pub fn protection_policy() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search_typed("RPO Violated", "data.rpo_violated", "boolean"),
            search("RPO Violated VM", "data.rpo_violated_vms.name"),
            search_typed("RPO Violations", "data.rpo_violated_count", "integer"),
            search("Protected VM", "data.protected_vms.name"),
            search("Category", "data.categories"),
            search_typed("RPO (s)", "data.rpo_secs", "integer"),
        ],
        "name",
        vec![
            text("RPO", "instance_type"),
            text("RPO Violated", "data.rpo_violated"),
            text("RPO Violations", "data.rpo_violated_count"),
            text("Protected VMs", "data.protected_vm_count"),
            list("Categories", "data.categories", ", "),
            datetime("Created", "data.created_at").optional(),
        ],
        vec![
            item(
                "Protection Policy",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("RPO (s)", "data.rpo_secs"),
                    text("RPO Violated", "data.rpo_violated"),
                    list("Categories", "data.categories", ", "),
                    text("Category Match", "data.category_match"),
                    datetime("Created", "data.created_at"),
                    datetime("Updated", "data.updated_at"),
                ],
            ),
            table(
                "Protected VMs",
                "data.protected_vms",
                vec![
                    text("VM", "name"),
                    text("UUID", "uuid"),
                    state("Status", "status", RPO_STATUS),
                    datetime("Latest Recovery Point", "latest_recovery_point_at"),
                ],
            ),
            table(
                "Schedules",
                "data.schedules",
                vec![text("RPO (s)", "rpo_secs"), text("Snapshot Type", "snapshot_type"), text("Local Retention", "local_retention"), text("Remote Retention", "remote_retention")],
            ),
        ],
    )
}

/// Recovery points: their VMs and expiry.
pub fn recovery_point() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("VM", "data.vms.name"),
            search("VM UUID", "data.vms.uuid"),
            search_typed("Expired", "data.expired", "boolean"),
            search_typed("Created", "data.created_at", "datetime"),
            search_typed("Expires", "data.expires_at", "datetime"),
            search("Type", "data.recovery_point_type"),
        ],
        "name",
        vec![
            list("VMs", "data.vms.name", ", "),
            text("Type", "data.recovery_point_type"),
            datetime("Created", "data.created_at"),
            datetime("Expires", "data.expires_at"),
            text("Expired", "data.expired"),
        ],
        vec![
            item(
                "Recovery Point",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("State", "data.state"),
                    text("Type", "data.recovery_point_type"),
                    text("Consistency Group", "data.consistency_group_uuid"),
                    datetime("Created", "data.created_at"),
                    datetime("Expires", "data.expires_at"),
                    text("Expired", "data.expired"),
                ],
            ),
            table("VMs", "data.vms", vec![text("Name", "name"), text("UUID", "uuid")]),
        ],
    )
}

/// Recovery plans: the VMs they name that no longer exist are searchable
/// (`data.has_missing_vms`, their ids).
pub fn recovery_plan() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search_typed("Missing VMs", "data.has_missing_vms", "boolean"),
            search("Missing VM UUID", "data.missing_vms.uuid"),
            search("VM", "data.vms.name"),
            search("Category", "data.categories"),
        ],
        "name",
        vec![
            text("Stages", "data.stage_count"),
            text("VMs", "data.vm_count"),
            text("Missing VMs", "data.missing_vm_count"),
            list("Categories", "data.categories", ", "),
            datetime("Created", "data.created_at").optional(),
        ],
        vec![
            item(
                "Recovery Plan",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("State", "data.state"),
                    text("Has Missing VMs", "data.has_missing_vms"),
                    list("Categories", "data.categories", ", "),
                    datetime("Created", "data.created_at"),
                    datetime("Updated", "data.updated_at"),
                ],
            ),
            table("VMs", "data.vms", vec![text("Name", "name"), text("UUID", "uuid")]),
            table("Missing VMs", "data.missing_vms", vec![text("Name", "name"), text("UUID", "uuid")]),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout has the SDK's shape: the same top-level keys, table layout
    /// type and field structure as the reference example.
    #[test]
    fn layouts_have_the_sdk_shape() {
        let reference: Value =
            serde_json::from_str(include_str!("../tests/fixtures/dynamic_layout_example.json")).unwrap();
        let ref_view = reference["view"].as_object().unwrap();
        for layout in [vm(), host(), cluster(), subnet(), image(), volume_group(), project(), category(), protection_policy(), recovery_point(), recovery_plan()] {
            let v = layout["view"].as_object().unwrap();
            let keys: Vec<_> = v.keys().collect();
            let ref_keys: Vec<_> = ref_view.keys().collect();
            assert_eq!(keys, ref_keys);
            assert_eq!(layout["view"]["table"]["layout"]["type"], reference["view"]["table"]["layout"]["type"]);
            assert_eq!(layout["view"]["table"]["layout"]["name"], "Main Table");
            assert_eq!(layout["view"]["table"]["layout"]["options"]["default_sort"]["desc"], false);
            for s in layout["view"]["search"].as_array().unwrap() {
                assert_eq!(s["type"], "text");
                assert!(s["key"].as_str().unwrap().len() > 1);
            }
            let tabs = layout["view"]["sub_data"]["layouts"].as_array().unwrap();
            assert!(!tabs.is_empty());
            for tab in tabs {
                let ty = tab["type"].as_str().unwrap();
                assert!(ty == "item" || ty == "table", "{ty}");
                if ty == "table" {
                    assert!(tab["options"]["root_path"].as_str().unwrap().starts_with("data."));
                }
                for f in tab["options"]["fields"].as_array().unwrap() {
                    assert!(f["name"].is_string() && f["key"].is_string() && f["type"].is_string());
                }
            }
        }
    }

    #[test]
    fn field_builders_match_the_reference_encoding() {
        let reference: Value =
            serde_json::from_str(include_str!("../tests/fixtures/dynamic_layout_example.json")).unwrap();
        let ref_fields = reference["view"]["table"]["layout"]["options"]["fields"].as_array().unwrap();
        // {"name":"Size","key":"data.size","type":"size","options":{"display_unit":"GB","source_unit":"BYTES"}}
        assert_eq!(size("Size", "data.size", "BYTES", "GB").into_json(), ref_fields[1]);
        // The enum field with state icons.
        let disk_state = state(
            "Disk State",
            "data.disk_state",
            &[("ActiveSAS", "green.500"), ("ActiveUpload", "green.500"), ("Attached", "green.500"),
              ("Reserved", "green.500"), ("ReadyToUpload", "yellow.500"), ("Unattached", "blue.400")],
        );
        assert_eq!(disk_state.into_json(), ref_fields[2]);
        assert_eq!(text("Subscription ID", "data.subscription_id").optional().into_json(), ref_fields[7]);
        let sub = reference["view"]["sub_data"]["layouts"][0]["options"]["fields"].as_array().unwrap();
        let last = sub.last().unwrap();
        assert_eq!(datetime(last["name"].as_str().unwrap(), "data.time_created").into_json(), *last);
    }

    #[test]
    fn service_reference_matches_sdk_wire_output() {
        let wire: Value =
            serde_json::from_str(include_str!("../tests/fixtures/python_sdk_wire_output.json")).unwrap();
        let expected = &wire["collect"][1]["resource"]["json_metadata__decoded"];
        assert_eq!(service_reference("Compute", "VirtualMachine"), *expected);
    }
}
