//! The simulated estate's networking and security: Flow Virtual
//! Networking's VPCs (each with an overlay subnet), floating IPs, route
//! tables and virtual switches, and Flow Network Security's policies,
//! address groups and service groups.
//!
//! Kept in the v4 shape (the networking and microseg v4.0 models, checked
//! against Nutanix's SDK by guest-nutanix's `sdk_schema` test); the v3
//! lists (`vpcs`, `floating_ips`, `network_security_rules`,
//! `address_groups`, `service_groups`) are rendered from them
//! ([`v3_entity`]). Route tables and virtual switches have no v3 list
//! ([`V4_ONLY`]). A deterministic function of the estate's config and a
//! size `n` (VPCs, policies, groups, switches: `n` each; floating IPs
//! `2n`). The overlay subnets join the subnet list only when a test asks
//! ([`crate::SimState::add_vpc_networking`]), so the default subnet list
//! stays as it was.

use crate::estate::{timestamp as stamp, uuid, EstateConfig};
use serde_json::{json, Value};

/// The lists: (v4 path at v4.0, the list's name, the SDK model), as
/// [`crate::v4::ENDPOINTS`].
pub const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("/api/networking/v4.0/config/vpcs", "vpcs", "networking.v4.config.Vpc"),
    ("/api/networking/v4.0/config/floating-ips", "floating_ips", "networking.v4.config.FloatingIp"),
    ("/api/networking/v4.0/config/route-tables", "route_tables", "networking.v4.config.RouteTable"),
    ("/api/networking/v4.0/config/virtual-switches", "virtual_switches", "networking.v4.config.VirtualSwitch"),
    ("/api/microseg/v4.0/config/policies", "network_security_rules", "microseg.v4.config.NetworkSecurityPolicy"),
    ("/api/microseg/v4.0/config/address-groups", "address_groups", "microseg.v4.config.AddressGroup"),
    ("/api/microseg/v4.0/config/service-groups", "service_groups", "microseg.v4.config.ServiceGroup"),
];

/// Lists Prism Central has no v3 list of.
pub const V4_ONLY: [&str; 2] = ["route_tables", "virtual_switches"];

/// The size of the default estate's networking (per Prism Element cluster
/// one VPC, and one more).
pub fn default_size(cfg: &EstateConfig) -> usize {
    cfg.clusters + 1
}

#[derive(Clone, Debug, Default)]
pub struct Network {
    pub vpcs: Vec<Value>,
    pub floating_ips: Vec<Value>,
    pub route_tables: Vec<Value>,
    pub virtual_switches: Vec<Value>,
    pub security_policies: Vec<Value>,
    pub address_groups: Vec<Value>,
    pub service_groups: Vec<Value>,
    /// One overlay subnet per VPC, in v3's shape (as the estate's subnets).
    pub overlay_subnets: Vec<Value>,
}

const POLICY_TYPES: [&str; 3] = ["APPLICATION", "ISOLATION", "QUARANTINE"];
const BOND_MODES: [&str; 3] = ["ACTIVE_BACKUP", "BALANCE_SLB", "BALANCE_TCP"];

/// The external (floating) address `i`: 192.168.0.0/16, from .10.
fn external_ip(i: usize) -> String {
    let k = i + 10;
    format!("192.168.{}.{}", k / 250, k % 250 + 1)
}

impl Network {
    pub fn generate(cfg: &EstateConfig, n: usize) -> Network {
        let per = cfg.hosts_per_cluster;
        let vpc = |i: usize| uuid("vpc", i);
        let ext_subnet = uuid("subnet", 0);
        let vpcs = (0..n)
            .map(|i| {
                let mut v = json!({
                    "extId": vpc(i),
                    "name": format!("vpc-{i}"),
                    "vpcType": if i == 0 { "TRANSIT" } else { "REGULAR" },
                    "externalSubnets": [{"subnetReference": ext_subnet, "externalIps": [{"ipv4": {"value": external_ip(i)}}]}],
                    "snatIps": [{"ipv4": {"value": external_ip(i)}}],
                    "commonDhcpOptions": {"domainNameServers": [{"ipv4": {"value": "10.0.0.53"}}]},
                    "metadata": {"ownerUserName": "admin", "projectName": "default"},
                });
                if i % 2 == 1 {
                    v["description"] = json!(format!("tenant network {i}"));
                    v["externallyRoutablePrefixes"] = json!([{"ipv4": {"ip": {"value": format!("10.{}.0.0", 100 + i % 100)}, "prefixLength": 16}}]);
                }
                v
            })
            .collect();
        let overlay_subnets = (0..n)
            .map(|i| {
                let net = format!("172.{}.{}", 16 + i / 250 % 16, i % 250);
                json!({
                    "status": {"name": format!("overlay-{i}"), "state": "COMPLETE", "resources": {
                        "subnet_type": "OVERLAY",
                        // v4 names the VPC by extId only; v3 is rendered alike.
                        "vpc_reference": {"kind": "vpc", "uuid": vpc(i)},
                        "ip_config": {"subnet_ip": format!("{net}.0"), "prefix_length": 24, "default_gateway_ip": format!("{net}.1"),
                                      "pool_list": [{"range": format!("{net}.10 {net}.200")}]},
                    }},
                    "metadata": {"kind": "subnet", "uuid": uuid("overlay-subnet", i), "categories": {}},
                })
            })
            .collect();
        let floating_ips = (0..2 * n)
            .map(|i| {
                let owner = vpc(i % n.max(1));
                let mut f = json!({
                    "extId": uuid("floating-ip", i),
                    "name": format!("fip-{i}"),
                    "floatingIp": {"ipv4": {"value": external_ip(n + i)}},
                    "externalSubnetReference": ext_subnet,
                    "metadata": {"ownerUserName": "admin"},
                });
                let private = format!("172.{}.{}.{}", 16 + i % n.max(1) / 250 % 16, i % n.max(1) % 250, 10 + i / n.max(1));
                match i % 3 {
                    0 => {
                        f["association"] = json!({"$objectType": "networking.v4.config.VmNicAssociation", "vmNicReference": uuid("vm-nic", i), "vpcReference": owner});
                        f["vmNicReference"] = json!(uuid("vm-nic", i));
                        f["vpcReference"] = json!(owner);
                        f["privateIp"] = json!(private);
                    }
                    1 => {
                        f["association"] = json!({"$objectType": "networking.v4.config.PrivateIpAssociation", "privateIp": {"ipv4": {"value": private}}, "vpcReference": owner});
                        f["vpcReference"] = json!(owner);
                        f["privateIp"] = json!(private);
                    }
                    _ => {}
                }
                f
            })
            .collect();
        let route_tables = (0..n).map(|i| json!({"extId": uuid("route-table", i), "vpcReference": vpc(i), "metadata": {"ownerUserName": "admin"}})).collect();
        let virtual_switches = (0..n)
            .map(|i| {
                // vs0 spans every cluster, each other switch one.
                let clusters: Vec<Value> = (0..cfg.clusters)
                    .filter(|c| i == 0 || *c == (i - 1) % cfg.clusters)
                    .map(|c| {
                        let hosts: Vec<Value> = (0..per).map(|j| json!({"extId": uuid("host", c * per + j), "hostNics": ["eth0", "eth1"]})).collect();
                        json!({"extId": uuid("cluster", c), "hosts": hosts, "gatewayIpAddress": {"value": format!("10.{}.0.1", 10 + c)}})
                    })
                    .collect();
                json!({
                    "extId": uuid("virtual-switch", i),
                    "name": format!("vs{i}"),
                    "description": if i == 0 { "the default virtual switch" } else { "workload switch" },
                    "isDefault": i == 0,
                    "isQuickMode": false,
                    "hasDeploymentError": false,
                    "mtu": if i % 2 == 0 { 1500 } else { 9000 },
                    "bondMode": BOND_MODES[i % 3],
                    "ownerType": "PC",
                    "clusters": clusters,
                })
            })
            .collect();
        let security_policies = (0..n)
            .map(|i| {
                let ty = POLICY_TYPES[i % 3];
                let rules = match ty {
                    "APPLICATION" => json!([
                        {"extId": uuid("policy-rule", 2 * i), "type": "APPLICATION", "description": "inbound web", "spec": {
                            "$objectType": "microseg.v4.config.ApplicationRuleSpec",
                            "securedGroupCategoryReferences": [uuid("category-ref", i)],
                            "srcAddressGroupReferences": [uuid("address-group", i)],
                            "serviceGroupReferences": [uuid("service-group", i)],
                        }},
                        {"extId": uuid("policy-rule", 2 * i + 1), "type": "INTRA_GROUP", "spec": {
                            "$objectType": "microseg.v4.config.IntraEntityGroupRuleSpec",
                            "securedGroupCategoryReferences": [uuid("category-ref", i)],
                            "securedGroupAction": "DENY",
                        }},
                    ]),
                    "ISOLATION" => json!([{"extId": uuid("policy-rule", 2 * i), "type": "TWO_ENV_ISOLATION", "spec": {
                        "$objectType": "microseg.v4.config.TwoEnvIsolationRuleSpec",
                        "firstIsolationGroup": [uuid("category-ref", i)], "secondIsolationGroup": [uuid("category-ref", i + 1)],
                    }}]),
                    _ => json!([{"extId": uuid("policy-rule", 2 * i), "type": "QUARANTINE", "spec": {
                        "$objectType": "microseg.v4.config.ApplicationRuleSpec", "srcAllowSpec": "NONE", "destAllowSpec": "NONE",
                    }}]),
                };
                let mut p = json!({
                    "extId": uuid("security-policy", i),
                    "name": format!("policy-{i}"),
                    "description": format!("{} policy {i}", ty.to_lowercase()),
                    "type": ty,
                    // v3 knows no SAVE (only APPLY and MONITOR).
                    "state": if i % 2 == 0 { "ENFORCE" } else { "MONITOR" },
                    "rules": rules,
                    "isIpv6TrafficAllowed": false,
                    "isHitlogEnabled": i % 2 == 0,
                    "isSystemDefined": false,
                    "scope": if i % 2 == 0 { "ALL_VLAN" } else { "VPC_LIST" },
                    "securedGroups": [uuid("category-ref", i)],
                    "createdBy": "admin",
                    "creationTime": stamp(i),
                    "lastUpdateTime": stamp(i + 3),
                });
                if i % 2 == 1 {
                    p["vpcReferences"] = json!([vpc(i % n.max(1))]);
                }
                p
            })
            .collect();
        // The groups an APPLICATION policy's rule names point back to it.
        let used_by = |i: usize| if POLICY_TYPES[i % 3] == "APPLICATION" { vec![uuid("security-policy", i)] } else { vec![] };
        let address_groups = (0..n)
            .map(|i| {
                let mut g = json!({
                    "extId": uuid("address-group", i),
                    "name": format!("address-group-{i}"),
                    "description": format!("branch office {i}"),
                    "ipv4Addresses": [{"value": format!("10.{}.{}.0", 200 + i / 250 % 50, i % 250), "prefixLength": 24}],
                    "policyReferences": used_by(i),
                    "createdBy": "admin",
                });
                if i % 2 == 1 {
                    g["ipRanges"] = json!([{"startIp": format!("10.250.{}.10", i % 250), "endIp": format!("10.250.{}.20", i % 250)}]);
                }
                g
            })
            .collect();
        let service_groups = (0..n)
            .map(|i| {
                let mut g = json!({
                    "extId": uuid("service-group", i),
                    "name": format!("service-group-{i}"),
                    "description": format!("application ports {i}"),
                    "isSystemDefined": i == 0,
                    "tcpServices": [{"startPort": 8000 + i % 1000, "endPort": 8000 + i % 1000}, {"startPort": 9000, "endPort": 9100}],
                    "policyReferences": used_by(i),
                    "createdBy": "admin",
                });
                if i % 2 == 0 {
                    g["udpServices"] = json!([{"startPort": 53, "endPort": 53}]);
                }
                match i % 3 {
                    0 => g["icmpServices"] = json!([{"type": 8, "code": 0}]),
                    1 => g["icmpServices"] = json!([{"isAllAllowed": true}]),
                    _ => {}
                }
                g
            })
            .collect();
        Network { vpcs, floating_ips, route_tables, virtual_switches, security_policies, address_groups, service_groups, overlay_subnets }
    }

    /// A list by its name (the v3 list's: `network_security_rules` are
    /// the security policies).
    pub fn list(&self, list: &str) -> Option<&[Value]> {
        Some(match list {
            "vpcs" => &self.vpcs,
            "floating_ips" => &self.floating_ips,
            "route_tables" => &self.route_tables,
            "virtual_switches" => &self.virtual_switches,
            "network_security_rules" => &self.security_policies,
            "address_groups" => &self.address_groups,
            "service_groups" => &self.service_groups,
            _ => return None,
        })
    }
}

/// Whether `list` is one of these lists.
pub fn is_network(list: &str) -> bool {
    ENDPOINTS.iter().any(|(_, l, _)| *l == list)
}

fn ipv4(v: &Value) -> Value {
    v.pointer("/ipv4/value").cloned().unwrap_or(Value::Null)
}

fn each(v: &Value, key: &str, f: impl Fn(&Value) -> Value) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().map(f).collect()).unwrap_or_default()
}

/// `{metadata, spec, status}` with v3's `kind`.
fn entity(kind: &str, v: &Value, status: Value, metadata: Value) -> Value {
    let mut m = json!({"kind": kind, "uuid": v["extId"]});
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), metadata) {
        m.extend(extra);
    }
    json!({"metadata": m, "spec": {"name": v["name"]}, "status": status})
}

/// The v3 entity of a v4 item of `list` (`None` for the lists v3 lacks).
pub fn v3_entity(list: &str, v: &Value) -> Option<Value> {
    let owner = json!({"owner_reference": {"kind": "user", "name": v.pointer("/metadata/ownerUserName")}});
    Some(match list {
        "vpcs" => {
            let mut meta = owner;
            meta["project_reference"] = json!({"kind": "project", "name": v.pointer("/metadata/projectName")});
            entity("vpc", v, json!({"name": v["name"], "description": v["description"], "state": "COMPLETE", "resources": {
                "vpc_type": v["vpcType"],
                "external_subnet_list": each(v, "externalSubnets", |e| json!({
                    "external_subnet_reference": {"kind": "subnet", "uuid": e["subnetReference"]},
                    "external_ip_list": each(e, "externalIps", ipv4),
                })),
                "common_domain_name_server_ip_list": v.get("commonDhcpOptions").map(|d| each(d, "domainNameServers", |x| json!({"ip": ipv4(x)}))),
                "externally_routable_prefix_list": each(v, "externallyRoutablePrefixes", |p| json!({"ip": p.pointer("/ipv4/ip/value"), "prefix_length": p.pointer("/ipv4/prefixLength")})),
            }}), meta)
        }
        "floating_ips" => {
            let mut r = json!({"floating_ip": ipv4(&v["floatingIp"]), "external_subnet_reference": {"kind": "subnet", "uuid": v["externalSubnetReference"]}});
            if let Some(nic) = v.get("vmNicReference") {
                r["vm_nic_reference"] = json!({"kind": "vm_nic", "uuid": nic});
            }
            if let Some(vpc) = v.get("vpcReference") {
                r["vpc_reference"] = json!({"kind": "vpc", "uuid": vpc});
            }
            if let Some(ip) = v.get("privateIp") {
                r["private_ip"] = ip.clone();
            }
            entity("floating_ip", v, json!({"name": v["name"], "state": "COMPLETE", "resources": r}), owner)
        }
        "network_security_rules" => {
            let key = match v["type"].as_str() {
                Some("ISOLATION") => "isolation_rule",
                Some("QUARANTINE") => "quarantine_rule",
                _ => "app_rule",
            };
            let action = if v["state"] == "ENFORCE" { "APPLY" } else { "MONITOR" };
            entity(
                "network_security_rule",
                v,
                json!({"name": v["name"], "description": v["description"], "state": "COMPLETE", "resources": {
                    key: {"action": action}, "is_policy_hitlog_enabled": v["isHitlogEnabled"], "allow_ipv6_traffic": v["isIpv6TrafficAllowed"],
                }}),
                json!({"creation_time": v["creationTime"], "last_update_time": v["lastUpdateTime"]}),
            )
        }
        "address_groups" => json!({
            "uuid": v["extId"],
            "address_group": {
                "name": v["name"], "description": v["description"],
                "ip_address_block_list": each(v, "ipv4Addresses", |a| json!({"ip": a["value"], "prefix_length": a["prefixLength"]})),
                "ip_address_range_list": each(v, "ipRanges", |r| json!({"start_address": r["startIp"], "end_address": r["endIp"]})),
            },
            "associated_policies_list": each(v, "policyReferences", |p| json!({"kind": "network_security_rule", "uuid": p})),
        }),
        "service_groups" => {
            let ports = |key: &str| each(v, key, |p| json!({"start_port": p["startPort"], "end_port": p["endPort"]}));
            let mut services = Vec::new();
            for (protocol, key, list) in [("TCP", "tcpServices", "tcp_port_range_list"), ("UDP", "udpServices", "udp_port_range_list")] {
                if v.get(key).is_some() {
                    services.push(json!({"protocol": protocol, list: ports(key)}));
                }
            }
            if v.get("icmpServices").is_some() {
                let icmp = each(v, "icmpServices", |i| if i["isAllAllowed"] == true { json!({}) } else { json!({"type": i["type"], "code": i["code"]}) });
                services.push(json!({"protocol": "ICMP", "icmp_type_code_list": icmp}));
            }
            json!({
                "uuid": v["extId"],
                "service_group": {"name": v["name"], "description": v["description"], "is_system_defined": v["isSystemDefined"], "service_list": services},
                "associated_policies_list": each(v, "policyReferences", |p| json!({"kind": "network_security_rule", "uuid": p})),
            })
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_references_and_v3_renderings() {
        let cfg = EstateConfig::default();
        let n = Network::generate(&cfg, 5);
        assert_eq!((n.vpcs.len(), n.floating_ips.len(), n.route_tables.len(), n.overlay_subnets.len()), (5, 10, 5, 5));
        assert_eq!(n.virtual_switches[0]["clusters"].as_array().unwrap().len(), cfg.clusters);
        let ids: std::collections::BTreeSet<&str> = ENDPOINTS.iter().flat_map(|(_, l, _)| n.list(l).unwrap()).filter_map(|e| e["extId"].as_str()).collect();
        assert_eq!(ids.len(), 5 * 6 + 10, "every extId is unique");
        for &(_, list, _) in ENDPOINTS {
            let v3: Vec<Value> = n.list(list).unwrap().iter().filter_map(|e| v3_entity(list, e)).collect();
            assert_eq!(v3.is_empty(), V4_ONLY.contains(&list), "{list}");
        }
        let fip = v3_entity("floating_ips", &n.floating_ips[0]).unwrap();
        assert_eq!(fip["status"]["resources"]["vm_nic_reference"]["uuid"], n.floating_ips[0]["vmNicReference"]);
        let sg = v3_entity("service_groups", &n.service_groups[1]).unwrap();
        assert_eq!(sg["service_group"]["service_list"][1]["icmp_type_code_list"], json!([{}]));
        assert_eq!(Network::generate(&cfg, 0).vpcs.len(), 0);
    }
}
