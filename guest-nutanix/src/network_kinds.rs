//! The networking and security kinds (on request, option `resource_kinds`):
//! what each is (names, list paths, CloudForet type, console labels, icon,
//! layout). Their records are made in [`crate::network`]; the table of
//! kinds and APIs is there too.

use cloudforet_collector::console::{Icon, Label};
use crate::layout::{self, item, list, search, search_typed, state, table, text, view};
use serde_json::Value;

/// The networking and security kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetKind {
    Vpc,
    FloatingIp,
    /// v4 only (v3 reads a VPC's route table per VPC: no list).
    RouteTable,
    /// v4 only (Prism Central has no v3 API for them).
    VirtualSwitch,
    SecurityPolicy,
    AddressGroup,
    ServiceGroup,
}

impl NetKind {
    pub const ALL: [NetKind; 7] =
        [NetKind::Vpc, NetKind::FloatingIp, NetKind::RouteTable, NetKind::VirtualSwitch, NetKind::SecurityPolicy, NetKind::AddressGroup, NetKind::ServiceGroup];

    /// The v3 `kind` (the list request body's, and the error messages').
    pub fn api_kind(self) -> &'static str {
        match self {
            NetKind::Vpc => "vpc",
            NetKind::FloatingIp => "floating_ip",
            NetKind::RouteTable => "route_table",
            NetKind::VirtualSwitch => "virtual_switch",
            NetKind::SecurityPolicy => "network_security_rule",
            NetKind::AddressGroup => "address_group",
            NetKind::ServiceGroup => "service_group",
        }
    }

    /// The name in options and task options.
    pub fn plural(self) -> &'static str {
        match self {
            NetKind::Vpc => "vpcs",
            NetKind::FloatingIp => "floating_ips",
            NetKind::RouteTable => "route_tables",
            NetKind::VirtualSwitch => "virtual_switches",
            NetKind::SecurityPolicy => "security_policies",
            NetKind::AddressGroup => "address_groups",
            NetKind::ServiceGroup => "service_groups",
        }
    }

    /// The v3 list (empty where there is none).
    pub fn v3_list_path(self) -> &'static str {
        match self {
            NetKind::Vpc => "/api/nutanix/v3/vpcs/list",
            NetKind::FloatingIp => "/api/nutanix/v3/floating_ips/list",
            NetKind::SecurityPolicy => "/api/nutanix/v3/network_security_rules/list",
            NetKind::AddressGroup => "/api/nutanix/v3/address_groups/list",
            NetKind::ServiceGroup => "/api/nutanix/v3/service_groups/list",
            NetKind::RouteTable | NetKind::VirtualSwitch => "",
        }
    }

    /// The v4 list, written at `v4.0`.
    pub fn v4_list_path(self) -> &'static str {
        match self {
            NetKind::Vpc => "/api/networking/v4.0/config/vpcs",
            NetKind::FloatingIp => "/api/networking/v4.0/config/floating-ips",
            NetKind::RouteTable => "/api/networking/v4.0/config/route-tables",
            NetKind::VirtualSwitch => "/api/networking/v4.0/config/virtual-switches",
            NetKind::SecurityPolicy => "/api/microseg/v4.0/config/policies",
            NetKind::AddressGroup => "/api/microseg/v4.0/config/address-groups",
            NetKind::ServiceGroup => "/api/microseg/v4.0/config/service-groups",
        }
    }

    pub fn group_and_type(self) -> (&'static str, &'static str) {
        match self {
            NetKind::Vpc => ("Networking", "VPC"),
            NetKind::FloatingIp => ("Networking", "FloatingIP"),
            NetKind::RouteTable => ("Networking", "RouteTable"),
            NetKind::VirtualSwitch => ("Networking", "VirtualSwitch"),
            NetKind::SecurityPolicy => ("Security", "NetworkSecurityPolicy"),
            NetKind::AddressGroup => ("Security", "AddressGroup"),
            NetKind::ServiceGroup => ("Security", "ServiceGroup"),
        }
    }

    /// The Nutanix product the type belongs to.
    pub fn service_code(self) -> &'static str {
        match self {
            NetKind::VirtualSwitch => "ahv",
            NetKind::Vpc | NetKind::FloatingIp | NetKind::RouteTable => "flow_virtual_networking",
            NetKind::SecurityPolicy | NetKind::AddressGroup | NetKind::ServiceGroup => "flow_network_security",
        }
    }

    /// Labels, primary and major. VPCs, floating IPs and security
    /// policies are what a user looks for (primary); route tables and
    /// virtual switches are the VPCs' and subnets' plumbing, address and
    /// service groups the policies' building blocks (listed with "all
    /// types").
    /// (labels, primary); none is major.
    pub fn type_rules(self) -> (&'static [Label], bool) {
        use Label::{Networking, Security};
        let r = |labels: &'static [Label], is_primary| (labels, is_primary);
        match self {
            NetKind::Vpc | NetKind::FloatingIp => r(&[Networking], true),
            NetKind::RouteTable | NetKind::VirtualSwitch => r(&[Networking], false),
            NetKind::SecurityPolicy => r(&[Security, Networking], true),
            NetKind::AddressGroup | NetKind::ServiceGroup => r(&[Security], false),
        }
    }

    pub fn icon(self) -> Icon {
        match self {
            NetKind::Vpc => Icon { file: "vpc.svg", svg: include_str!("../icons/vpc.svg") },
            NetKind::FloatingIp => Icon { file: "floating-ip.svg", svg: include_str!("../icons/floating-ip.svg") },
            NetKind::RouteTable => Icon { file: "route-table.svg", svg: include_str!("../icons/route-table.svg") },
            NetKind::VirtualSwitch => Icon { file: "virtual-switch.svg", svg: include_str!("../icons/virtual-switch.svg") },
            NetKind::SecurityPolicy => Icon { file: "security-policy.svg", svg: include_str!("../icons/security-policy.svg") },
            NetKind::AddressGroup => Icon { file: "address-group.svg", svg: include_str!("../icons/address-group.svg") },
            NetKind::ServiceGroup => Icon { file: "service-group.svg", svg: include_str!("../icons/service-group.svg") },
        }
    }

    /// The type's dynamic layout.
    pub fn layout(self) -> Value {
        match self {
            NetKind::Vpc => vpc_layout(),
            NetKind::FloatingIp => floating_ip_layout(),
            NetKind::RouteTable => route_table_layout(),
            NetKind::VirtualSwitch => virtual_switch_layout(),
            NetKind::SecurityPolicy => security_policy_layout(),
            NetKind::AddressGroup => address_group_layout(),
            NetKind::ServiceGroup => service_group_layout(),
        }
    }
}

const POLICY_STATE: &[(&str, &str)] = &[("ENFORCE", "green.500"), ("MONITOR", "yellow.500"), ("SAVE", "gray.400")];

fn vpc_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("Type", "data.vpc_type"), search("External IP", "ip_addresses"), search("Project", "data.project")],
        "name",
        vec![
            text("Type", "data.vpc_type"),
            list("External IPs", "ip_addresses", "<br>"),
            text("External Subnets", "data.external_subnet_count"),
            list("Routable Prefixes", "data.externally_routable_prefixes", ", ").optional(),
            text("Project", "data.project").optional(),
        ],
        vec![
            item(
                "VPC",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("Type", "data.vpc_type"),
                    list("SNAT IPs", "data.snat_ips", "<br>"),
                    list("DNS Servers", "data.dns_servers", ", "),
                    list("Externally Routable Prefixes", "data.externally_routable_prefixes", ", "),
                    text("Project", "data.project"),
                    text("Owner", "data.owner"),
                ],
            ),
            table("External Subnets", "data.external_subnets", vec![text("Subnet UUID", "subnet_uuid"), list("External IPs", "external_ips", ", ")]),
        ],
    )
}

fn floating_ip_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("Floating IP", "data.floating_ip"), search("Private IP", "data.private_ip"), search("Association", "data.association"), search("VPC UUID", "data.vpc_uuid")],
        "name",
        vec![
            text("Floating IP", "data.floating_ip"),
            state("Association", "data.association", &[("VM_NIC", "green.500"), ("PRIVATE_IP", "green.500"), ("UNASSOCIATED", "gray.400")]),
            text("Private IP", "data.private_ip"),
            text("VPC UUID", "data.vpc_uuid").optional(),
        ],
        vec![item(
            "Floating IP",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Description", "data.description"),
                text("Floating IP", "data.floating_ip"),
                text("Association", "data.association"),
                text("VM NIC UUID", "data.vm_nic_uuid"),
                text("Private IP", "data.private_ip"),
                text("VPC UUID", "data.vpc_uuid"),
                text("External Subnet UUID", "data.external_subnet_uuid"),
                text("Owner", "data.owner"),
            ],
        )],
    )
}

fn route_table_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("VPC UUID", "data.vpc_uuid")],
        "name",
        vec![
            text("UUID", "data.uuid"),
            text("VPC UUID", "data.vpc_uuid"),
            text("External Routing Domain", "data.external_routing_domain_uuid").optional(),
            text("Owner", "data.owner").optional(),
        ],
        vec![item(
            "Route Table",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("VPC UUID", "data.vpc_uuid"),
                text("External Routing Domain", "data.external_routing_domain_uuid"),
                text("Owner", "data.owner"),
            ],
        )],
    )
}

fn virtual_switch_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("Bond Mode", "data.bond_mode"), search("Cluster", "data.clusters.name")],
        "name",
        vec![
            text("Default", "data.is_default"),
            text("Bond Mode", "data.bond_mode"),
            text("MTU", "data.mtu"),
            list("Clusters", "data.clusters.name", ", "),
            text("Deployment Error", "data.has_deployment_error").optional(),
        ],
        vec![
            item(
                "Virtual Switch",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("Default", "data.is_default"),
                    text("Bond Mode", "data.bond_mode"),
                    text("MTU", "data.mtu"),
                    text("Owner", "data.owner_type"),
                    text("Deployment Error", "data.has_deployment_error"),
                ],
            ),
            table(
                "Clusters",
                "data.clusters",
                vec![text("Name", "name"), text("UUID", "uuid"), text("Hosts", "host_count"), text("Gateway IP", "gateway_ip")],
            ),
        ],
    )
}

fn security_policy_layout() -> Value {
    view(
        vec![
            search("UUID", "data.uuid"),
            search("Type", "data.policy_type"),
            search("State", "data.state"),
            search("Scope", "data.scope"),
            search_typed("Rules", "data.rule_count", "integer"),
        ],
        "name",
        vec![
            text("Type", "data.policy_type"),
            state("State", "data.state", POLICY_STATE),
            text("Scope", "data.scope"),
            text("Rules", "data.rule_count"),
            text("Hit Log", "data.hitlog_enabled").optional(),
            layout::datetime("Updated", "data.updated_at").optional(),
        ],
        vec![
            item(
                "Security Policy",
                vec![
                    text("Name", "name"),
                    text("UUID", "data.uuid"),
                    text("Description", "data.description"),
                    text("Type", "data.policy_type"),
                    state("State", "data.state", POLICY_STATE),
                    text("Scope", "data.scope"),
                    list("VPCs", "data.vpc_uuids", ", "),
                    list("Secured Groups", "data.secured_groups", ", "),
                    text("IPv6 Traffic Allowed", "data.ipv6_traffic_allowed"),
                    text("Hit Log", "data.hitlog_enabled"),
                    text("System Defined", "data.system_defined"),
                    list("Address Groups", "data.address_group_uuids", ", "),
                    list("Service Groups", "data.service_group_uuids", ", "),
                    text("Created By", "data.created_by"),
                    layout::datetime("Created", "data.created_at"),
                    layout::datetime("Updated", "data.updated_at"),
                ],
            ),
            table("Rules", "data.rules", vec![text("UUID", "uuid"), text("Type", "type"), text("Description", "description")]),
        ],
    )
}

fn address_group_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("Address", "data.ipv4_addresses"), search_typed("Policies", "data.policy_count", "integer")],
        "name",
        vec![
            list("Addresses", "data.ipv4_addresses", ", "),
            list("Ranges", "data.ip_ranges", ", "),
            text("Entries", "data.entry_count"),
            text("Policies", "data.policy_count"),
        ],
        vec![item(
            "Address Group",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Description", "data.description"),
                list("Addresses", "data.ipv4_addresses", "<br>"),
                list("Ranges", "data.ip_ranges", "<br>"),
                list("Policies", "data.policy_uuids", ", "),
                text("Created By", "data.created_by"),
            ],
        )],
    )
}

fn service_group_layout() -> Value {
    view(
        vec![search("UUID", "data.uuid"), search("Protocol", "data.protocols"), search("TCP Port", "data.tcp_ports"), search("UDP Port", "data.udp_ports")],
        "name",
        vec![
            list("TCP", "data.tcp_ports", ", "),
            list("UDP", "data.udp_ports", ", "),
            list("ICMP", "data.icmp", ", "),
            text("System Defined", "data.system_defined"),
            text("Policies", "data.policy_count"),
        ],
        vec![item(
            "Service Group",
            vec![
                text("Name", "name"),
                text("UUID", "data.uuid"),
                text("Description", "data.description"),
                list("TCP Ports", "data.tcp_ports", ", "),
                list("UDP Ports", "data.udp_ports", ", "),
                list("ICMP (type:code)", "data.icmp", ", "),
                text("System Defined", "data.system_defined"),
                list("Policies", "data.policy_uuids", ", "),
                text("Created By", "data.created_by"),
            ],
        )],
    )
}

