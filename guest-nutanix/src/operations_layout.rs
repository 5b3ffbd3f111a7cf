//! The dynamic layouts of the compute extras and operations kinds
//! ([`crate::operations`]): what the console shows and searches.

use crate::layout::{datetime, item, list, search, search_typed, size, state, table, text, view};
use serde_json::Value;

const SEVERITY: &[(&str, &str)] = &[("CRITICAL", "red.500"), ("WARNING", "yellow.500"), ("INFO", "blue.400")];
const ALERT_STATE: &[(&str, &str)] = &[("OPEN", "red.500"), ("ACKNOWLEDGED", "yellow.500"), ("RESOLVED", "green.500")];

/// VM templates: the active version and its VM spec.
pub fn vm_template() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Version", "data.version.name"),
            search("Version UUID", "data.version.uuid"),
            search("Created By", "data.created_by"),
            search("Cluster", "data.cluster.name"),
            search_typed("vCPUs", "data.vm_spec.vcpus", "integer"),
            search_typed("Created", "data.created_at", "datetime"),
        ],
        "name",
        vec![
            text("Version", "data.version.name"),
            text("vCPUs", "data.vm_spec.vcpus"),
            size("Memory", "data.vm_spec.memory_size_bytes", "BYTES", "GB"),
            text("Disks", "data.vm_spec.disk_count"),
            datetime("Updated", "data.updated_at"),
        ],
        vec![
            item(
                "Template",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("Created By", "data.created_by"),
                    datetime("Created", "data.created_at"),
                    datetime("Updated", "data.updated_at"),
                ],
            ),
            item(
                "Version",
                vec![
                    text("Name", "data.version.name"),
                    text("UUID", "data.version.uuid"),
                    text("Description", "data.version.description"),
                    text("Active", "data.version.is_active"),
                    datetime("Created", "data.version.created_at"),
                ],
            ),
            item(
                "VM Spec",
                vec![
                    text("vCPUs", "data.vm_spec.vcpus"),
                    text("Sockets", "data.vm_spec.num_sockets"),
                    text("Cores per Socket", "data.vm_spec.num_cores_per_socket"),
                    size("Memory", "data.vm_spec.memory_size_bytes", "BYTES", "GB"),
                    text("Disks", "data.vm_spec.disk_count"),
                    text("NICs", "data.vm_spec.nic_count"),
                    text("GPUs", "data.vm_spec.gpu_count"),
                ],
            ),
        ],
    )
}

/// Alerts: open ones by severity, each linked to its entity.
pub fn alert() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Severity", "data.severity"),
            search("State", "data.state"),
            search_typed("Resolved", "data.is_resolved", "boolean"),
            search_typed("Acknowledged", "data.is_acknowledged", "boolean"),
            search("Entity Type", "data.source_entity.type"),
            search("Entity UUID", "data.source_entity.uuid"),
            search("Entity Name", "data.source_entity.name"),
            search("Alert Type", "data.alert_type"),
            search("Cluster", "data.cluster.name"),
            search_typed("Created", "data.created_at", "datetime"),
        ],
        "data.created_at",
        vec![
            state("Severity", "data.severity", SEVERITY),
            state("State", "data.state", ALERT_STATE),
            text("Entity", "data.source_entity.name"),
            text("Entity Type", "data.source_entity.type"),
            datetime("Created", "data.created_at"),
        ],
        vec![
            item(
                "Alert",
                vec![
                    text("Title", "name"),
                    text("UUID", "data.uuid"),
                    text("Message", "data.message"),
                    state("Severity", "data.severity", SEVERITY),
                    state("State", "data.state", ALERT_STATE),
                    text("Alert Type", "data.alert_type"),
                    list("Classifications", "data.classifications", ", "),
                    list("Impact", "data.impact_types", ", "),
                    text("Entity Type", "data.source_entity.type"),
                    text("Entity Name", "data.source_entity.name"),
                    text("Entity UUID", "data.source_entity.uuid"),
                    text("Cluster", "data.cluster.name"),
                    datetime("Created", "data.created_at"),
                    datetime("Acknowledged", "data.acknowledged_at"),
                    datetime("Resolved", "data.resolved_at"),
                    text("Resolved By", "data.resolved_by"),
                ],
            ),
            table("Affected Entities", "data.affected_entities", vec![text("Type", "type"), text("Name", "name"), text("UUID", "uuid")]),
        ],
    )
}

/// LCM entities: versions per cluster and host, and updates on offer.
pub fn lcm_entity() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Model", "data.model"),
            search("Version", "data.version"),
            search("Type", "data.entity_type"),
            search("Class", "data.entity_class"),
            search("Host UUID", "data.host.uuid"),
            search("Cluster", "data.cluster.name"),
            search_typed("Update Available", "data.update_available", "boolean"),
            search("Update To", "data.update_to"),
        ],
        "name",
        vec![
            text("Version", "data.version"),
            text("Type", "data.entity_type"),
            text("Location", "data.location_type"),
            text("Update To", "data.update_to"),
            text("Cluster", "data.cluster.name"),
        ],
        vec![
            item(
                "Entity",
                vec![
                    text("Model", "data.model"),
                    text("UUID", "data.uuid"),
                    text("Class", "data.entity_class"),
                    text("Type", "data.entity_type"),
                    text("Version", "data.version"),
                    text("Target Version", "data.target_version"),
                    text("Vendor", "data.hardware_vendor"),
                    text("Family", "data.hardware_family"),
                    text("Location", "data.location_type"),
                    text("Host UUID", "data.host.uuid"),
                    text("Cluster", "data.cluster.name"),
                    datetime("Updated", "data.updated_at"),
                ],
            ),
            table(
                "Available Versions",
                "data.available_versions",
                vec![text("Version", "version"), text("Status", "status"), text("Enabled", "is_enabled"), text("Released", "release_date")],
            ),
        ],
    )
}

/// Guest tools: which VMs lack them, cannot be reached or can upgrade.
pub fn guest_tools() -> Value {
    const NGT_STATE: &[(&str, &str)] = &[
        ("OK", "green.500"),
        ("INSTALLED", "green.500"),
        ("UPGRADE_AVAILABLE", "yellow.500"),
        ("UNREACHABLE", "red.500"),
        ("DISABLED", "gray.400"),
        ("NOT_INSTALLED", "gray.400"),
    ];
    view(
        vec![
            search("VM", "data.vm.name"),
            search("VM UUID", "data.vm.uuid"),
            search("State", "data.state"),
            search_typed("Installed", "data.installed", "boolean"),
            search_typed("Reachable", "data.reachable", "boolean"),
            search_typed("Upgrade Available", "data.upgrade_available", "boolean"),
            search("Version", "data.version"),
            search("Cluster", "data.cluster.name"),
        ],
        "name",
        vec![
            state("State", "data.state", NGT_STATE),
            text("VM", "data.vm.name"),
            text("Version", "data.version"),
            text("Available", "data.available_version"),
            text("Cluster", "data.cluster.name"),
        ],
        vec![item(
            "Guest Tools",
            vec![
                text("VM", "data.vm.name"),
                text("VM UUID", "data.vm.uuid"),
                state("State", "data.state", NGT_STATE),
                text("Installed", "data.installed"),
                text("Enabled", "data.enabled"),
                text("Reachable", "data.reachable"),
                text("Version", "data.version"),
                text("Available Version", "data.available_version"),
                text("ISO Inserted", "data.iso_inserted"),
                text("VSS Snapshots", "data.vss_snapshot_capable"),
                list("Capabilities", "data.capabilities", ", "),
                text("Guest OS", "data.guest_os_version"),
            ],
        )],
    )
}

/// Physical GPUs: which host has them, in which mode, and the VMs using
/// each.
pub fn gpu() -> Value {
    view(
        vec![
            search("Host", "data.host.name"),
            search("Host UUID", "data.host.uuid"),
            search("Cluster", "data.cluster.name"),
            search("Vendor", "data.vendor"),
            search("Name", "data.name"),
            search("Mode", "data.mode"),
            search_typed("Assignable", "data.assignable", "boolean"),
            search_typed("In Use", "data.in_use", "boolean"),
            search("VM UUID", "data.vms.uuid"),
            search("VM", "data.vms.name"),
            search("PCI Address", "data.pci_address"),
        ],
        "name",
        vec![
            text("Host", "data.host.name"),
            text("Mode", "data.mode"),
            text("In Use", "data.in_use"),
            text("Assignable", "data.assignable"),
            size("Frame Buffer", "data.frame_buffer_size_bytes", "BYTES", "GB"),
            text("VMs", "data.vm_count"),
        ],
        vec![
            item(
                "GPU",
                vec![
                    text("Name", "data.name"),
                    text("Vendor", "data.vendor"),
                    text("Device ID", "data.device_id"),
                    text("Mode", "data.mode"),
                    text("PCI Address", "data.pci_address"),
                    text("NUMA Node", "data.numa_node"),
                    text("Status", "data.status"),
                    text("Assignable", "data.assignable"),
                    text("In Use", "data.in_use"),
                    size("Frame Buffer", "data.frame_buffer_size_bytes", "BYTES", "GB"),
                    text("vGPUs Allocated", "data.num_vgpus_allocated"),
                    text("Driver Version", "data.driver_version"),
                    text("Host", "data.host.name"),
                    text("Host UUID", "data.host.uuid"),
                    text("Cluster", "data.cluster.name"),
                ],
            ),
            table("VMs", "data.vms", vec![text("Name", "name"), text("UUID", "uuid")]),
            table(
                "Profiles",
                "data.profiles",
                vec![
                    text("Name", "name"),
                    text("Mode", "mode"),
                    text("Fraction", "fraction"),
                    size("Frame Buffer", "frame_buffer_size_bytes", "BYTES", "GB"),
                    text("vGPUs", "num_vgpus_allocated"),
                    text("VM UUID", "vm_uuid"),
                ],
            ),
        ],
    )
}
