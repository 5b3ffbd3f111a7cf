//! The networking and security kinds (on request, option `resource_kinds`):
//! Flow Virtual Networking's VPCs, floating IPs, route tables and virtual
//! switches, and Flow Network Security's policies, address groups and
//! service groups. Pure functions.
//!
//! | option name          | group / type                     | v4 list (networking, microseg)        | v3 list                         |
//! |----------------------|----------------------------------|---------------------------------------|---------------------------------|
//! | `vpcs`               | Networking / VPC                 | `networking/v4.0/config/vpcs`         | `vpcs/list`                     |
//! | `floating_ips`       | Networking / FloatingIP          | `networking/v4.0/config/floating-ips` | `floating_ips/list`             |
//! | `route_tables`       | Networking / RouteTable          | `networking/v4.0/config/route-tables` | none (v4 only)                  |
//! | `virtual_switches`   | Networking / VirtualSwitch       | `networking/v4.0/config/virtual-switches` | none (v4 only)              |
//! | `security_policies`  | Security / NetworkSecurityPolicy | `microseg/v4.0/config/policies`       | `network_security_rules/list`   |
//! | `address_groups`     | Security / AddressGroup          | `microseg/v4.0/config/address-groups` | `address_groups/list`           |
//! | `service_groups`     | Security / ServiceGroup          | `microseg/v4.0/config/service-groups` | `service_groups/list`           |
//!
//! These kinds are normalized from the v4 item itself (the v4 models are
//! the richer ones); a v3 entity is first adapted to the v4 shape
//! ([`v3_to_v4`]), the other way round from the older kinds, so each kind
//! still has one normalization. Every list is one call per page (v4: 100
//! entities, v3: up to 500); nothing is read per entity (a route table's
//! routes, a policy's rules beyond what the list carries, are not read).
//!
//! What v3 does not tell (so those fields stay empty when read through
//! v3): a VPC's SNAT IPs; a security policy's rules, scope, VPCs, secured
//! groups, creator and the `SAVE` state (v3 knows `APPLY`, shown as
//! `ENFORCE`, and `MONITOR`); who created an address or service group.

pub use crate::network_kinds::NetKind;
use crate::v3::Item;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Every v4.0 field these kinds read, per SDK model (checked against
/// Nutanix's models by `tests/sdk_schema.rs`, with [`crate::v4::WIRE_READS`]).
pub const WIRE_READS: &[(&str, &[&str])] = &[
    (
        "networking.v4.config.Vpc",
        &[
            "extId", "name", "description", "vpcType", "snatIps/*/ipv4/value", "externalSubnets/*/subnetReference",
            "externalSubnets/*/externalIps/*/ipv4/value", "commonDhcpOptions/domainNameServers/*/ipv4/value",
            "externallyRoutablePrefixes/*/ipv4/ip/value", "externallyRoutablePrefixes/*/ipv4/prefixLength", "metadata/ownerUserName",
            "metadata/projectName", "metadata/categoryIds",
        ],
    ),
    (
        "networking.v4.config.FloatingIp",
        &[
            "extId", "name", "description", "floatingIp/ipv4/value", "externalSubnetReference", "vpcReference", "vmNicReference",
            "privateIp", "association/vmNicReference", "association/vpcReference", "association/privateIp/ipv4/value",
            "metadata/ownerUserName",
        ],
    ),
    ("networking.v4.config.RouteTable", &["extId", "vpcReference", "externalRoutingDomainReference", "metadata/ownerUserName"]),
    (
        "networking.v4.config.VirtualSwitch",
        &[
            "extId", "name", "description", "isDefault", "mtu", "bondMode", "ownerType", "hasDeploymentError", "clusters/*/extId",
            "clusters/*/hosts/*/extId", "clusters/*/gatewayIpAddress/value",
        ],
    ),
    (
        "microseg.v4.config.NetworkSecurityPolicy",
        &[
            "extId", "name", "description", "type", "state", "scope", "isIpv6TrafficAllowed", "isHitlogEnabled", "isSystemDefined",
            "vpcReferences", "securedGroups", "createdBy", "creationTime", "lastUpdateTime", "rules/*/extId", "rules/*/type",
            "rules/*/description", "rules/*/spec/srcAddressGroupReferences", "rules/*/spec/destAddressGroupReferences",
            "rules/*/spec/serviceGroupReferences",
        ],
    ),
    (
        "microseg.v4.config.AddressGroup",
        &["extId", "name", "description", "ipv4Addresses/*/value", "ipv4Addresses/*/prefixLength", "ipRanges/*/startIp", "ipRanges/*/endIp", "policyReferences", "createdBy"],
    ),
    (
        "microseg.v4.config.ServiceGroup",
        &[
            "extId", "name", "description", "isSystemDefined", "tcpServices/*/startPort", "tcpServices/*/endPort", "udpServices/*/startPort",
            "udpServices/*/endPort", "icmpServices/*/isAllAllowed", "icmpServices/*/type", "icmpServices/*/code", "policyReferences", "createdBy",
        ],
    ),
];

/// What a record of these kinds holds (`normalize` makes the CloudService).
#[derive(Debug)]
pub struct Parts {
    pub id: String,
    pub name: String,
    pub data: Value,
    pub instance_type: Option<String>,
    pub ip_addresses: Vec<String>,
}

/// One listed entity (a v4 item, or a v3 entity) → its record's parts;
/// `cluster_names` names the clusters a virtual switch spans.
pub fn normalize(kind: NetKind, cluster_names: &BTreeMap<String, String>, raw: Item) -> Result<Parts, String> {
    let raw = raw.into_value();
    if !raw.is_object() {
        return Err(format!("a {} entity is not a JSON object", kind.api_kind()));
    }
    let v = if is_v3(&raw) { v3_to_v4(kind, &raw) } else { raw };
    let id = txt(&v, "/extId").ok_or_else(|| format!("malformed {} entity{}: missing extId", kind.api_kind(), named(&v)))?;
    let name = match kind {
        // Neither has to have a name: a floating IP is known by its
        // address, a route table by its VPC.
        NetKind::FloatingIp => txt(&v, "/name").or_else(|| txt(&v, "/floatingIp/ipv4/value")).unwrap_or_else(|| id.clone()),
        NetKind::RouteTable => txt(&v, "/vpcReference").map(|vpc| format!("route table of VPC {vpc}")).unwrap_or_else(|| id.clone()),
        _ => txt(&v, "/name").ok_or_else(|| format!("malformed {} entity {id}: missing name", kind.api_kind()))?,
    };
    let (data, instance_type, ips) = match kind {
        NetKind::Vpc => vpc(&v),
        NetKind::FloatingIp => floating_ip(&v),
        NetKind::RouteTable => route_table(&v),
        NetKind::VirtualSwitch => virtual_switch(cluster_names, &v),
        NetKind::SecurityPolicy => security_policy(&v),
        NetKind::AddressGroup => address_group(&v),
        NetKind::ServiceGroup => service_group(&v),
    };
    let mut data = match data {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    data.insert("uuid".into(), json!(id));
    data.insert("name".into(), json!(name));
    Ok(Parts { id, name, data: Value::Object(data), instance_type, ip_addresses: ips })
}

fn named(v: &Value) -> String {
    txt(v, "/name").map(|n| format!(" '{n}'")).unwrap_or_default()
}

/// A non-empty string at `p`.
fn txt(v: &Value, p: &str) -> Option<String> {
    v.pointer(p).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn items<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The strings of a list of strings (others dropped).
fn strings(v: &Value, p: &str) -> Vec<String> {
    items(v, p).iter().filter_map(Value::as_str).map(str::to_string).collect()
}

/// `{"ipv4": {"value": ..}}` (or `ipv6`) → the address.
fn ip_of(v: &Value) -> Option<String> {
    txt(v, "/ipv4/value").or_else(|| txt(v, "/ipv6/value"))
}

fn ips(v: &Value, p: &str) -> Vec<String> {
    items(v, p).iter().filter_map(ip_of).collect()
}

/// `a.b.c.d/len` (or the address alone without a length).
fn cidr(ip: Option<String>, len: Option<&Value>) -> Option<String> {
    let ip = ip?;
    Some(match len.and_then(Value::as_u64) {
        Some(l) => format!("{ip}/{l}"),
        None => ip,
    })
}

fn flag(v: &Value, p: &str) -> Value {
    v.pointer(p).and_then(Value::as_bool).map_or(Value::Null, Value::Bool)
}

fn owner(v: &Value) -> Option<String> {
    txt(v, "/metadata/ownerUserName").or_else(|| txt(v, "/createdBy"))
}

type Normalized = (Value, Option<String>, Vec<String>);

fn vpc(v: &Value) -> Normalized {
    let external: Vec<Value> = items(v, "/externalSubnets")
        .iter()
        .map(|e| json!({"subnet_uuid": txt(e, "/subnetReference"), "external_ips": ips(e, "/externalIps")}))
        .collect();
    let prefixes: Vec<String> =
        items(v, "/externallyRoutablePrefixes").iter().filter_map(|p| cidr(txt(p, "/ipv4/ip/value"), p.pointer("/ipv4/prefixLength"))).collect();
    let snat = ips(v, "/snatIps");
    let mut addresses: Vec<String> = items(v, "/externalSubnets").iter().flat_map(|e| ips(e, "/externalIps")).chain(snat.iter().cloned()).collect();
    addresses.dedup();
    let vpc_type = txt(v, "/vpcType");
    let data = json!({
        "description": txt(v, "/description"),
        "vpc_type": vpc_type,
        "external_subnets": external,
        "external_subnet_count": external.len(),
        "snat_ips": snat,
        "dns_servers": ips(v, "/commonDhcpOptions/domainNameServers"),
        "externally_routable_prefixes": prefixes,
        "project": txt(v, "/metadata/projectName"),
        "owner": owner(v),
        "category_ids": strings(v, "/metadata/categoryIds"),
    });
    (data, vpc_type, addresses)
}

fn floating_ip(v: &Value) -> Normalized {
    let address = txt(v, "/floatingIp/ipv4/value").or_else(|| txt(v, "/floatingIp/ipv6/value"));
    let a = v.get("association").filter(|a| a.is_object());
    let vm_nic = txt(v, "/vmNicReference").or_else(|| a.and_then(|a| txt(a, "/vmNicReference")));
    let private_ip = txt(v, "/privateIp").or_else(|| a.and_then(|a| a.get("privateIp")).and_then(ip_of));
    let vpc = txt(v, "/vpcReference").or_else(|| a.and_then(|a| txt(a, "/vpcReference")));
    let association = if vm_nic.is_some() {
        "VM_NIC"
    } else if private_ip.is_some() {
        "PRIVATE_IP"
    } else {
        "UNASSOCIATED"
    };
    let data = json!({
        "description": txt(v, "/description"),
        "floating_ip": address,
        "association": association,
        "vm_nic_uuid": vm_nic,
        "private_ip": private_ip,
        "vpc_uuid": vpc,
        "external_subnet_uuid": txt(v, "/externalSubnetReference"),
        "owner": owner(v),
    });
    (data, Some(association.to_string()), address.into_iter().chain(private_ip).collect())
}

fn route_table(v: &Value) -> Normalized {
    let data = json!({
        "vpc_uuid": txt(v, "/vpcReference"),
        "external_routing_domain_uuid": txt(v, "/externalRoutingDomainReference"),
        "owner": owner(v),
    });
    (data, None, Vec::new())
}

fn virtual_switch(cluster_names: &BTreeMap<String, String>, v: &Value) -> Normalized {
    let clusters: Vec<Value> = items(v, "/clusters")
        .iter()
        .map(|c| {
            let id = txt(c, "/extId");
            let name = id.as_ref().and_then(|i| cluster_names.get(i).cloned());
            json!({"uuid": id, "name": name, "host_count": items(c, "/hosts").len(), "gateway_ip": txt(c, "/gatewayIpAddress/value")})
        })
        .collect();
    let bond = txt(v, "/bondMode");
    let data = json!({
        "description": txt(v, "/description"),
        "is_default": flag(v, "/isDefault"),
        "mtu": v.get("mtu").and_then(Value::as_u64),
        "bond_mode": bond,
        "owner_type": txt(v, "/ownerType"),
        "has_deployment_error": flag(v, "/hasDeploymentError"),
        "clusters": clusters,
        "cluster_count": clusters.len(),
    });
    (data, bond, Vec::new())
}

fn security_policy(v: &Value) -> Normalized {
    let rules = items(v, "/rules");
    let refs = |key: &str| -> Vec<String> {
        let mut all: Vec<String> = rules.iter().flat_map(|r| strings(r, &format!("/spec/{key}"))).collect();
        all.sort();
        all.dedup();
        all
    };
    let mut address_groups = refs("srcAddressGroupReferences");
    address_groups.extend(refs("destAddressGroupReferences"));
    address_groups.sort();
    address_groups.dedup();
    let policy_type = txt(v, "/type");
    let data = json!({
        "description": txt(v, "/description"),
        "policy_type": policy_type,
        "state": txt(v, "/state"),
        "scope": txt(v, "/scope"),
        "ipv6_traffic_allowed": flag(v, "/isIpv6TrafficAllowed"),
        "hitlog_enabled": flag(v, "/isHitlogEnabled"),
        "system_defined": flag(v, "/isSystemDefined"),
        "vpc_uuids": strings(v, "/vpcReferences"),
        "secured_groups": strings(v, "/securedGroups"),
        "rules": rules.iter().map(|r| json!({"uuid": txt(r, "/extId"), "type": txt(r, "/type"), "description": txt(r, "/description")})).collect::<Vec<_>>(),
        "rule_count": rules.len(),
        "address_group_uuids": address_groups,
        "service_group_uuids": refs("serviceGroupReferences"),
        "created_by": txt(v, "/createdBy"),
        "created_at": txt(v, "/creationTime"),
        "updated_at": txt(v, "/lastUpdateTime"),
    });
    (data, policy_type, Vec::new())
}

fn address_group(v: &Value) -> Normalized {
    let subnets: Vec<String> = items(v, "/ipv4Addresses").iter().filter_map(|a| cidr(txt(a, "/value"), a.get("prefixLength"))).collect();
    let ranges: Vec<String> =
        items(v, "/ipRanges").iter().filter_map(|r| Some(format!("{}-{}", txt(r, "/startIp")?, txt(r, "/endIp")?))).collect();
    let policies = strings(v, "/policyReferences");
    let data = json!({
        "description": txt(v, "/description"),
        "ipv4_addresses": subnets,
        "ip_ranges": ranges,
        "entry_count": subnets.len() + ranges.len(),
        "policy_uuids": policies,
        "policy_count": policies.len(),
        "created_by": txt(v, "/createdBy"),
    });
    (data, None, Vec::new())
}

fn service_group(v: &Value) -> Normalized {
    let ports = |p: &str| -> Vec<String> {
        items(v, p)
            .iter()
            .filter_map(|r| {
                let (a, b) = (r.get("startPort").and_then(Value::as_u64)?, r.get("endPort").and_then(Value::as_u64));
                Some(match b.filter(|b| *b != a) {
                    Some(b) => format!("{a}-{b}"),
                    None => a.to_string(),
                })
            })
            .collect()
    };
    let icmp: Vec<String> = items(v, "/icmpServices")
        .iter()
        .map(|i| match (i.get("isAllAllowed").and_then(Value::as_bool), i.get("type").and_then(Value::as_u64), i.get("code").and_then(Value::as_u64)) {
            (Some(true), _, _) | (_, None, _) => "any".to_string(),
            (_, Some(t), Some(c)) => format!("{t}:{c}"),
            (_, Some(t), None) => t.to_string(),
        })
        .collect();
    let policies = strings(v, "/policyReferences");
    let (tcp, udp) = (ports("/tcpServices"), ports("/udpServices"));
    let protocols: Vec<&str> = [("TCP", !tcp.is_empty()), ("UDP", !udp.is_empty()), ("ICMP", !icmp.is_empty())].into_iter().filter(|(_, on)| *on).map(|(p, _)| p).collect();
    let data = json!({
        "description": txt(v, "/description"),
        "system_defined": flag(v, "/isSystemDefined"),
        "tcp_ports": tcp,
        "udp_ports": udp,
        "icmp": icmp,
        "protocols": protocols,
        "policy_uuids": policies,
        "policy_count": policies.len(),
        "created_by": txt(v, "/createdBy"),
    });
    (data, (!protocols.is_empty()).then(|| protocols.join("/")), Vec::new())
}

/// A v3 entity in the v4 item's shape (the fields v3 has; see the module
/// docs for what it lacks).
pub fn v3_to_v4(kind: NetKind, v: &Value) -> Value {
    let r = v.pointer("/status/resources").cloned().unwrap_or(Value::Null);
    let uuid = v.pointer("/metadata/uuid").or_else(|| v.get("uuid")).cloned().unwrap_or(Value::Null);
    let name = v.pointer("/status/name").or_else(|| v.pointer("/spec/name")).cloned().unwrap_or(Value::Null);
    let description = v.pointer("/status/description").cloned().unwrap_or(Value::Null);
    let ip = |x: &Value| json!({"ipv4": {"value": x}});
    let meta = json!({
        "ownerUserName": v.pointer("/metadata/owner_reference/name"),
        "projectName": v.pointer("/metadata/project_reference/name"),
    });
    match kind {
        NetKind::Vpc => json!({
            "extId": uuid, "name": name, "description": description, "vpcType": r["vpc_type"],
            "externalSubnets": items(&r, "/external_subnet_list").iter().map(|e| json!({
                "subnetReference": e.pointer("/external_subnet_reference/uuid"),
                "externalIps": items(e, "/external_ip_list").iter().map(ip).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "commonDhcpOptions": {"domainNameServers": items(&r, "/common_domain_name_server_ip_list").iter().map(|d| ip(&d["ip"])).collect::<Vec<_>>()},
            "externallyRoutablePrefixes": items(&r, "/externally_routable_prefix_list").iter()
                .map(|p| json!({"ipv4": {"ip": {"value": p["ip"]}, "prefixLength": p["prefix_length"]}})).collect::<Vec<_>>(),
            "metadata": meta,
        }),
        NetKind::FloatingIp => json!({
            "extId": uuid, "name": name, "description": description,
            "floatingIp": {"ipv4": {"value": r["floating_ip"]}},
            "externalSubnetReference": r.pointer("/external_subnet_reference/uuid"),
            "vmNicReference": r.pointer("/vm_nic_reference/uuid"),
            "vpcReference": r.pointer("/vpc_reference/uuid"),
            "privateIp": r["private_ip"],
            "metadata": meta,
        }),
        NetKind::SecurityPolicy => {
            let (ty, rule) = [("APPLICATION", "app_rule"), ("ISOLATION", "isolation_rule"), ("QUARANTINE", "quarantine_rule")]
                .into_iter()
                .find_map(|(ty, key)| r.get(key).filter(|x| x.is_object()).map(|x| (json!(ty), x.clone())))
                .unwrap_or((Value::Null, Value::Null));
            let state = match rule.get("action").and_then(Value::as_str) {
                Some("APPLY") => json!("ENFORCE"),
                Some("MONITOR") => json!("MONITOR"),
                _ => Value::Null,
            };
            json!({
                "extId": uuid, "name": name, "description": description, "type": ty, "state": state,
                "isHitlogEnabled": r["is_policy_hitlog_enabled"], "isIpv6TrafficAllowed": r["allow_ipv6_traffic"],
                "creationTime": v.pointer("/metadata/creation_time"), "lastUpdateTime": v.pointer("/metadata/last_update_time"),
            })
        }
        NetKind::AddressGroup => {
            let g = v.get("address_group").cloned().unwrap_or(Value::Null);
            json!({
                "extId": uuid, "name": g["name"], "description": g["description"],
                "ipv4Addresses": items(&g, "/ip_address_block_list").iter().map(|b| json!({"value": b["ip"], "prefixLength": b["prefix_length"]})).collect::<Vec<_>>(),
                "ipRanges": items(&g, "/ip_address_range_list").iter().map(|b| json!({"startIp": b["start_address"], "endIp": b["end_address"]})).collect::<Vec<_>>(),
                "policyReferences": items(v, "/associated_policies_list").iter().map(|p| p["uuid"].clone()).collect::<Vec<_>>(),
            })
        }
        NetKind::ServiceGroup => {
            let g = v.get("service_group").cloned().unwrap_or(Value::Null);
            let services = items(&g, "/service_list");
            let ranges = |key: &str| -> Vec<Value> {
                services.iter().flat_map(|s| items(s, &format!("/{key}")).iter()).map(|p| json!({"startPort": p["start_port"], "endPort": p["end_port"]})).collect()
            };
            json!({
                "extId": uuid, "name": g["name"], "description": g["description"], "isSystemDefined": g["is_system_defined"],
                "tcpServices": ranges("tcp_port_range_list"),
                "udpServices": ranges("udp_port_range_list"),
                "icmpServices": services.iter().flat_map(|s| items(s, "/icmp_type_code_list").iter())
                    .map(|i| if i.get("type").is_some() { json!({"type": i["type"], "code": i["code"]}) } else { json!({"isAllAllowed": true}) }).collect::<Vec<_>>(),
                "policyReferences": items(v, "/associated_policies_list").iter().map(|p| p["uuid"].clone()).collect::<Vec<_>>(),
            })
        }
        // No v3 list: never read through v3.
        NetKind::RouteTable | NetKind::VirtualSwitch => json!({"extId": uuid, "name": name}),
    }
}

/// Whether an entity is in v3's shape (`{metadata, spec, status}`, or the
/// address and service groups' `{uuid, address_group | service_group}`).
fn is_v3(v: &Value) -> bool {
    ["status", "address_group", "service_group"].iter().any(|k| v.get(k).is_some_and(Value::is_object)) || v.pointer("/metadata/uuid").is_some_and(Value::is_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{self, service_of, Context};
    use crate::record::CloudService;
    use crate::v3::Kind;
    use std::collections::BTreeMap;

    fn ctx() -> Context {
        Context {
            account: Some("pc-1".into()),
            base_url: "https://pc.example:9440".into(),
            cluster_names: BTreeMap::from([("c-1".to_string(), "cluster-a".to_string())]),
            locations: Default::default(),
            guest_tools: false,
        }
    }

    fn of(kind: NetKind, v: Value) -> Result<CloudService, String> {
        service_of(Kind::Network(kind), &ctx(), v)
    }

    #[test]
    fn every_kind_has_its_own_type_paths_and_names() {
        let mut types = std::collections::BTreeSet::new();
        for n in NetKind::ALL {
            let k = Kind::Network(n);
            assert!(Kind::ALL.contains(&k), "{n:?} in Kind::ALL");
            assert!(!Kind::DEFAULT.contains(&k), "{n:?} only on request");
            assert_eq!(Kind::from_plural(n.plural()), Some(k));
            assert!(types.insert(n.group_and_type().1), "{n:?}: a type of its own");
            assert_eq!(normalize::kind_of_type(n.group_and_type().1), Some(k));
            assert!(n.v4_list_path().starts_with("/api/networking/v4.0/config/") || n.v4_list_path().starts_with("/api/microseg/v4.0/config/"));
            assert_eq!(crate::v4::list_path(k), Some(n.v4_list_path()));
            assert_eq!(k.has_v3(), !matches!(n, NetKind::RouteTable | NetKind::VirtualSwitch), "{n:?}");
            assert_eq!(k.list_path(), n.v3_list_path());
            let t = normalize::cloud_service_type(k, None);
            assert_eq!((t.group.as_str(), t.name.as_str()), n.group_and_type());
            assert!(t.labels.iter().all(|l| ["Networking", "Security"].contains(&l.as_str())), "{:?}", t.labels);
            assert_eq!((t.is_primary, t.labels.len()), (n.type_rules().1, n.type_rules().0.len()));
            assert!(t.tags[0].1.starts_with("data:image/svg+xml;base64,"));
        }
        // Every wire-read model is one of the kinds' list models.
        assert_eq!(WIRE_READS.len(), NetKind::ALL.len());
    }

    /// The layouts have the shape every other type's has (see
    /// `layout::tests::layouts_have_the_sdk_shape`), and every field they
    /// show is a field the normalization writes.
    #[test]
    fn layouts_have_the_sdk_shape_and_show_written_fields() {
        let samples = samples();
        for n in NetKind::ALL {
            let l = n.layout();
            assert_eq!(l["view"]["table"]["layout"]["name"], "Main Table");
            let tabs = l["view"]["sub_data"]["layouts"].as_array().unwrap();
            assert!(!tabs.is_empty());
            let cs = of(n, samples[&n].clone()).unwrap();
            let record = json!({"name": cs.name, "data": cs.data, "ip_addresses": cs.ip_addresses, "instance_type": cs.instance_type});
            let mut keys: Vec<String> = l["view"]["table"]["layout"]["options"]["fields"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap().to_string()).collect();
            keys.extend(l["view"]["search"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()));
            for tab in tabs {
                let root = tab["options"]["root_path"].as_str();
                for f in tab["options"]["fields"].as_array().unwrap() {
                    let k = f["key"].as_str().unwrap();
                    keys.push(match root {
                        Some(r) => format!("{r}.0.{k}"),
                        None => k.to_string(),
                    });
                }
            }
            for k in keys {
                // `data.clusters.name`: a list's items' field.
                let path = k.replace("clusters.name", "clusters.0.name");
                let pointer = format!("/{}", path.replace('.', "/"));
                assert!(record.pointer(&pointer).is_some(), "{n:?}: the layout shows {k}, which the record lacks");
            }
        }
    }

    fn samples() -> BTreeMap<NetKind, Value> {
        BTreeMap::from([
            (NetKind::Vpc, json!({
                "extId": "vpc-1", "name": "prod", "description": "d", "vpcType": "REGULAR",
                "externalSubnets": [{"subnetReference": "sn-ext", "externalIps": [{"ipv4": {"value": "192.168.1.10"}}]}],
                "snatIps": [{"ipv4": {"value": "192.168.1.11"}}],
                "commonDhcpOptions": {"domainNameServers": [{"ipv4": {"value": "8.8.8.8"}}]},
                "externallyRoutablePrefixes": [{"ipv4": {"ip": {"value": "10.5.0.0"}, "prefixLength": 16}}],
                "metadata": {"ownerUserName": "admin", "projectName": "default", "categoryIds": ["cat-1"]},
            })),
            (NetKind::FloatingIp, json!({
                "extId": "fip-1", "name": "web", "floatingIp": {"ipv4": {"value": "192.168.1.20"}}, "externalSubnetReference": "sn-ext",
                "association": {"$objectType": "networking.v4.config.VmNicAssociation", "vmNicReference": "nic-1", "vpcReference": "vpc-1"},
                "privateIp": "10.5.0.7", "description": "x", "vmNicReference": "nic-1", "vpcReference": "vpc-1", "metadata": {"ownerUserName": "admin"},
            })),
            (NetKind::RouteTable, json!({"extId": "rt-1", "vpcReference": "vpc-1", "externalRoutingDomainReference": "erd-1", "metadata": {"ownerUserName": "admin"}})),
            (NetKind::VirtualSwitch, json!({
                "extId": "vs-1", "name": "vs0", "description": "default", "isDefault": true, "mtu": 1500, "bondMode": "ACTIVE_BACKUP",
                "ownerType": "PC", "hasDeploymentError": false,
                "clusters": [{"extId": "c-1", "hosts": [{"extId": "h-1"}, {"extId": "h-2"}], "gatewayIpAddress": {"value": "10.0.0.1"}}],
            })),
            (NetKind::SecurityPolicy, json!({
                "extId": "sp-1", "name": "app-policy", "description": "d", "type": "APPLICATION", "state": "ENFORCE", "scope": "VPC_LIST",
                "isIpv6TrafficAllowed": false, "isHitlogEnabled": true, "isSystemDefined": false, "vpcReferences": ["vpc-1"],
                "securedGroups": ["cat-1"], "createdBy": "admin", "creationTime": "2024-05-01T08:30:00Z", "lastUpdateTime": "2024-05-02T08:30:00Z",
                "rules": [
                    {"extId": "r-1", "type": "APPLICATION", "description": "web in", "spec": {"$objectType": "microseg.v4.config.ApplicationRuleSpec",
                        "srcAddressGroupReferences": ["ag-2", "ag-1"], "serviceGroupReferences": ["sg-1"]}},
                    {"extId": "r-2", "type": "INTRA_GROUP", "spec": {"securedGroupAction": "DENY"}},
                ],
            })),
            (NetKind::AddressGroup, json!({
                "extId": "ag-1", "name": "branch", "description": "d", "ipv4Addresses": [{"value": "10.1.0.0", "prefixLength": 16}, {"value": "10.2.0.5"}],
                "ipRanges": [{"startIp": "10.3.0.1", "endIp": "10.3.0.9"}], "policyReferences": ["sp-1"], "createdBy": "admin",
            })),
            (NetKind::ServiceGroup, json!({
                "extId": "sg-1", "name": "web", "description": "d", "isSystemDefined": false,
                "tcpServices": [{"startPort": 80, "endPort": 80}, {"startPort": 8000, "endPort": 8080}], "udpServices": [{"startPort": 53, "endPort": 53}],
                "icmpServices": [{"type": 8, "code": 0}, {"isAllAllowed": true}], "policyReferences": ["sp-1"], "createdBy": "admin",
            })),
        ])
    }

    #[test]
    fn v4_items_normalize_with_their_facts() {
        let s = samples();
        let vpc = of(NetKind::Vpc, s[&NetKind::Vpc].clone()).unwrap();
        assert_eq!((vpc.cloud_service_group.as_str(), vpc.cloud_service_type.as_str(), vpc.resource_id.as_str(), vpc.name.as_str()), ("Networking", "VPC", "vpc-1", "prod"));
        assert_eq!(vpc.ip_addresses, ["192.168.1.10", "192.168.1.11"]);
        assert_eq!(vpc.instance_type.as_deref(), Some("REGULAR"));
        assert_eq!(vpc.data["externally_routable_prefixes"], json!(["10.5.0.0/16"]));
        assert_eq!(vpc.data["dns_servers"], json!(["8.8.8.8"]));
        assert_eq!((vpc.data["project"].as_str(), vpc.data["owner"].as_str()), (Some("default"), Some("admin")));
        assert_eq!(vpc.region_code, None);
        assert_eq!(vpc.account.as_deref(), Some("pc-1"));
        assert!(vpc.external_link.unwrap().ends_with("/vpcs/?entity_id=vpc-1"));

        let fip = of(NetKind::FloatingIp, s[&NetKind::FloatingIp].clone()).unwrap();
        assert_eq!((fip.data["association"].as_str(), fip.data["vm_nic_uuid"].as_str(), fip.data["vpc_uuid"].as_str()), (Some("VM_NIC"), Some("nic-1"), Some("vpc-1")));
        assert_eq!(fip.ip_addresses, ["192.168.1.20", "10.5.0.7"]);
        // Only the private IP association: the IP from the association.
        let private = of(NetKind::FloatingIp, json!({"extId": "fip-2", "floatingIp": {"ipv4": {"value": "192.168.1.21"}},
            "association": {"privateIp": {"ipv4": {"value": "10.5.0.8"}}, "vpcReference": "vpc-1"}})).unwrap();
        assert_eq!((private.name.as_str(), private.data["association"].as_str(), private.data["private_ip"].as_str()), ("192.168.1.21", Some("PRIVATE_IP"), Some("10.5.0.8")));
        assert_eq!(of(NetKind::FloatingIp, json!({"extId": "fip-3"})).unwrap().instance_type.as_deref(), Some("UNASSOCIATED"));

        let rt = of(NetKind::RouteTable, s[&NetKind::RouteTable].clone()).unwrap();
        assert_eq!((rt.name.as_str(), rt.data["vpc_uuid"].as_str()), ("route table of VPC vpc-1", Some("vpc-1")));

        let vs = of(NetKind::VirtualSwitch, s[&NetKind::VirtualSwitch].clone()).unwrap();
        assert_eq!(vs.data["clusters"], json!([{"uuid": "c-1", "name": "cluster-a", "host_count": 2, "gateway_ip": "10.0.0.1"}]));
        assert_eq!((vs.data["mtu"].as_u64(), vs.data["is_default"].as_bool(), vs.instance_type.as_deref()), (Some(1500), Some(true), Some("ACTIVE_BACKUP")));

        let sp = of(NetKind::SecurityPolicy, s[&NetKind::SecurityPolicy].clone()).unwrap();
        assert_eq!((sp.cloud_service_group.as_str(), sp.cloud_service_type.as_str()), ("Security", "NetworkSecurityPolicy"));
        assert_eq!((sp.data["rule_count"].as_u64(), sp.data["state"].as_str(), sp.data["scope"].as_str()), (Some(2), Some("ENFORCE"), Some("VPC_LIST")));
        assert_eq!(sp.data["address_group_uuids"], json!(["ag-1", "ag-2"]));
        assert_eq!(sp.data["service_group_uuids"], json!(["sg-1"]));
        assert_eq!(sp.instance_type.as_deref(), Some("APPLICATION"));

        let ag = of(NetKind::AddressGroup, s[&NetKind::AddressGroup].clone()).unwrap();
        assert_eq!(ag.data["ipv4_addresses"], json!(["10.1.0.0/16", "10.2.0.5"]));
        assert_eq!((ag.data["ip_ranges"].clone(), ag.data["entry_count"].as_u64(), ag.data["policy_count"].as_u64()), (json!(["10.3.0.1-10.3.0.9"]), Some(3), Some(1)));

        let sg = of(NetKind::ServiceGroup, s[&NetKind::ServiceGroup].clone()).unwrap();
        assert_eq!((sg.data["tcp_ports"].clone(), sg.data["udp_ports"].clone(), sg.data["icmp"].clone()), (json!(["80", "8000-8080"]), json!(["53"]), json!(["8:0", "any"])));
        assert_eq!(sg.instance_type.as_deref(), Some("TCP/UDP/ICMP"));
    }

    /// v3 entities (the fallback) give the records their v4 items give,
    /// for the fields v3 has.
    #[test]
    fn v3_entities_normalize_like_their_v4_items() {
        let v3_vpc = json!({"metadata": {"kind": "vpc", "uuid": "vpc-1", "owner_reference": {"name": "admin"}, "project_reference": {"name": "default"}},
            "spec": {"name": "prod"}, "status": {"name": "prod", "description": "d", "resources": {"vpc_type": "REGULAR",
            "external_subnet_list": [{"external_subnet_reference": {"kind": "subnet", "uuid": "sn-ext"}, "external_ip_list": ["192.168.1.10"]}],
            "common_domain_name_server_ip_list": [{"ip": "8.8.8.8"}], "externally_routable_prefix_list": [{"ip": "10.5.0.0", "prefix_length": 16}]}}});
        let a = of(NetKind::Vpc, v3_vpc).unwrap();
        let mut v4 = samples()[&NetKind::Vpc].clone();
        v4.as_object_mut().unwrap().remove("snatIps");
        v4["metadata"].as_object_mut().unwrap().remove("categoryIds");
        let b = of(NetKind::Vpc, v4).unwrap();
        assert_eq!(a.data, b.data);
        assert_eq!((a.name, a.ip_addresses), (b.name, b.ip_addresses));

        let v3_fip = json!({"metadata": {"kind": "floating_ip", "uuid": "fip-1"}, "status": {"name": "web", "resources": {"floating_ip": "192.168.1.20",
            "external_subnet_reference": {"uuid": "sn-ext"}, "vm_nic_reference": {"uuid": "nic-1"}, "vpc_reference": {"uuid": "vpc-1"}, "private_ip": "10.5.0.7"}}});
        let a = of(NetKind::FloatingIp, v3_fip).unwrap();
        assert_eq!((a.data["association"].as_str(), a.data["vpc_uuid"].as_str(), a.ip_addresses.clone()), (Some("VM_NIC"), Some("vpc-1"), vec!["192.168.1.20".to_string(), "10.5.0.7".to_string()]));

        let rule = |key: &str, action: &str| json!({"metadata": {"kind": "network_security_rule", "uuid": "sp-1", "creation_time": "2024-05-01T08:30:00Z"},
            "status": {"name": "p", "resources": {key: {"action": action}, "is_policy_hitlog_enabled": true, "allow_ipv6_traffic": false}}});
        let p = of(NetKind::SecurityPolicy, rule("app_rule", "APPLY")).unwrap();
        assert_eq!((p.data["policy_type"].as_str(), p.data["state"].as_str(), p.data["hitlog_enabled"].as_bool()), (Some("APPLICATION"), Some("ENFORCE"), Some(true)));
        assert_eq!(p.data["created_at"], "2024-05-01T08:30:00Z");
        let q = of(NetKind::SecurityPolicy, rule("quarantine_rule", "MONITOR")).unwrap();
        assert_eq!((q.data["policy_type"].as_str(), q.data["state"].as_str()), (Some("QUARANTINE"), Some("MONITOR")));
        let i = of(NetKind::SecurityPolicy, rule("isolation_rule", "SOMETHING_NEW")).unwrap();
        assert_eq!((i.data["policy_type"].as_str(), i.data["state"].as_str()), (Some("ISOLATION"), None));

        let ag = of(NetKind::AddressGroup, json!({"uuid": "ag-1", "address_group": {"name": "branch", "description": "d",
            "ip_address_block_list": [{"ip": "10.1.0.0", "prefix_length": 16}], "ip_address_range_list": [{"start_address": "10.3.0.1", "end_address": "10.3.0.9"}]},
            "associated_policies_list": [{"kind": "network_security_rule", "uuid": "sp-1"}]})).unwrap();
        assert_eq!((ag.resource_id.as_str(), ag.data["ipv4_addresses"].clone(), ag.data["ip_ranges"].clone(), ag.data["policy_uuids"].clone()),
            ("ag-1", json!(["10.1.0.0/16"]), json!(["10.3.0.1-10.3.0.9"]), json!(["sp-1"])));

        let sg = of(NetKind::ServiceGroup, json!({"uuid": "sg-1", "service_group": {"name": "web", "is_system_defined": true, "service_list": [
            {"protocol": "TCP", "tcp_port_range_list": [{"start_port": 80, "end_port": 80}, {"start_port": 8000, "end_port": 8080}]},
            {"protocol": "ICMP", "icmp_type_code_list": [{"type": 8, "code": 0}, {}]}]}})).unwrap();
        assert_eq!((sg.data["tcp_ports"].clone(), sg.data["icmp"].clone(), sg.data["system_defined"].as_bool()), (json!(["80", "8000-8080"]), json!(["8:0", "any"]), Some(true)));
    }

    /// Hostile or incomplete entities: an error naming the entity, or a
    /// record with the field left out; never a panic.
    #[test]
    fn hostile_and_incomplete_entities_never_panic() {
        for n in NetKind::ALL {
            for bad in [json!(null), json!([1, 2]), json!("vpc"), json!(7)] {
                assert!(of(n, bad).unwrap_err().contains("not a JSON object"), "{n:?}");
            }
            let e = of(n, json!({"name": "x"})).unwrap_err();
            assert!(e.contains("missing extId") && e.contains(n.api_kind()) && e.contains("'x'"), "{n:?}: {e}");
            assert!(of(n, json!({"extId": "   "})).is_err(), "{n:?}: a blank id is none");
            // Every field of the wrong type.
            let garbage = json!({"extId": "id-1", "name": "n", "vpcType": 3, "externalSubnets": {"a": 1}, "snatIps": [null, 1, {"ipv4": 5}],
                "floatingIp": [], "association": "vm", "clusters": [7, {"extId": 9, "hosts": "many"}], "rules": [null, {"spec": [1]}],
                "ipv4Addresses": [{"value": 1, "prefixLength": "16"}], "ipRanges": [{"startIp": "a"}], "tcpServices": [{"startPort": -1}, {"startPort": 70000, "endPort": "x"}],
                "icmpServices": [{"type": "8"}], "policyReferences": [1, "sp"], "mtu": "big", "isDefault": "yes", "metadata": [], "status": null});
            let cs = of(n, garbage).unwrap_or_else(|e| panic!("{n:?}: {e}"));
            assert_eq!(cs.resource_id, "id-1");
            // v3 shapes with holes.
            let v3 = json!({"metadata": {"uuid": "u-1"}, "status": {"name": "v3", "resources": {"external_subnet_list": [null], "app_rule": "x"}},
                "address_group": 5, "service_group": {"service_list": [null, {"tcp_port_range_list": "x"}]}});
            let _ = of(n, v3);
        }
        // The name falls back where a kind needs none, and is required where it does.
        assert_eq!(of(NetKind::RouteTable, json!({"extId": "rt-9"})).unwrap().name, "rt-9");
        assert!(of(NetKind::Vpc, json!({"extId": "vpc-9"})).unwrap_err().contains("vpc-9: missing name"));
        assert_eq!(of(NetKind::ServiceGroup, json!({"extId": "sg-9", "name": "none"})).unwrap().instance_type, None);
    }

    #[test]
    fn an_overlay_subnet_carries_its_vpc_and_a_vlan_subnet_no_vpc_key() {
        let lk = crate::v4::Lookups::default();
        let overlay = json!({"extId": "sn-1", "name": "overlay", "subnetType": "OVERLAY", "vpcReference": "vpc-1"});
        let cs = service_of(Kind::Subnet, &ctx(), crate::v4::to_v3(Kind::Subnet, &overlay, &lk).unwrap()).unwrap();
        assert_eq!((cs.data["subnet_type"].as_str(), cs.data["vpc"]["uuid"].as_str()), (Some("OVERLAY"), Some("vpc-1")));
        let vlan = json!({"extId": "sn-2", "name": "vlan", "subnetType": "VLAN", "networkId": 10, "clusterReference": "c-1"});
        let cs = service_of(Kind::Subnet, &ctx(), crate::v4::to_v3(Kind::Subnet, &vlan, &lk).unwrap()).unwrap();
        assert!(cs.data.get("vpc").is_none(), "{}", cs.data);
        // v3: the subnet's vpc_reference; an empty one is none.
        let v3 = |vpc: Value| json!({"metadata": {"uuid": "sn-3"}, "status": {"name": "o", "resources": {"subnet_type": "OVERLAY", "vpc_reference": vpc}}});
        let cs = service_of(Kind::Subnet, &ctx(), v3(json!({"kind": "vpc", "uuid": "vpc-2", "name": "prod"}))).unwrap();
        assert_eq!(cs.data["vpc"], json!({"uuid": "vpc-2", "name": "prod"}));
        assert!(service_of(Kind::Subnet, &ctx(), v3(json!({"kind": "vpc", "uuid": ""}))).unwrap().data.get("vpc").is_none());
    }
}
