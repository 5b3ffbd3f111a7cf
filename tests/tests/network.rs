//! The networking and security kinds (option `resource_kinds`: `vpcs`,
//! `floating_ips`, `route_tables`, `virtual_switches`, `security_policies`,
//! `address_groups`, `service_groups`) collected from the simulator through
//! v4 and through v3: the same records where v3 has the facts, route
//! tables and virtual switches v4 only, overlay subnets with their VPC,
//! and each list at most one call per page of 100 entities.

use cf_host::record::Record;
use cf_tests::kinds::pages;
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const KINDS: [&str; 7] = ["vpcs", "floating_ips", "route_tables", "virtual_switches", "security_policies", "address_groups", "service_groups"];

/// The simulator's list of each option name (v3's: the policies are
/// `network_security_rules`).
fn list_of(kind: &str) -> &str {
    if kind == "security_policies" { "network_security_rules" } else { kind }
}

/// A simulator with `n` VPCs (and as many of the others; 2n floating IPs).
fn sim(n: usize, faults: Faults) -> Simulator {
    let estate = EstateConfig { vms: 10, ..EstateConfig::default() };
    let sim = block_on(Simulator::start(SimConfig { estate, v4: true, faults, ..SimConfig::default() })).expect("simulator starts");
    sim.state.add_vpc_networking(n);
    sim
}

fn run(sim: &Simulator, options: Value) -> (cf_host::runtime::CollectReport, Vec<Value>) {
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(sim).options(options).build().unwrap();
    let (report, records) = block_on(collect_all(rt, plugin, &ctx, &json!({})));
    (report.expect("collect"), records.iter().map(Record::to_json).collect())
}

fn services<'a>(records: &'a [Value], ty: &str) -> Vec<&'a Value> {
    records.iter().map(|r| &r["resource"]).filter(|r| r["cloud_service_type"] == ty && r.get("reference").is_some()).collect()
}

fn errors(records: &[Value]) -> Vec<String> {
    records.iter().filter(|r| r["resource_type"] == "inventory.ErrorResource").map(|r| r.to_string()).collect()
}

#[test]
fn v4_lists_every_kind_at_one_call_per_page_of_100() {
    let n = 150;
    let sim = sim(n, Faults::default());
    let mut kinds: Vec<&str> = KINDS.to_vec();
    kinds.push("subnets");
    let (report, records) = run(&sim, json!({"api_version": "v4", "resource_kinds": kinds}));
    assert_eq!(report.errors, 0, "{:?}", errors(&records));
    for (ty, count) in [("VPC", n), ("FloatingIP", 2 * n), ("RouteTable", n), ("VirtualSwitch", n), ("NetworkSecurityPolicy", n), ("AddressGroup", n), ("ServiceGroup", n), ("Subnet", 6 + n)] {
        assert_eq!(services(&records, ty).len(), count, "{ty}");
        assert!(records.iter().any(|r| r["resource_type"] == "inventory.CloudServiceType" && r["resource"]["name"] == ty), "{ty}: its type");
    }
    // The cost: one list call per page of 100, nothing per entity, no v3;
    // beside the pages, the paging's one-entity shift check once per window
    // of concurrent pages (a window of 7 pages by default).
    let calls = sim.state.calls_per_kind();
    let count_of = |kind: &str| sim.state.estate().network.list(list_of(kind)).unwrap().len();
    for kind in KINDS {
        let list = list_of(kind);
        let p = pages(count_of(kind));
        assert_eq!(calls.get(&format!("v4/{list}")), Some(&p), "{kind}: {calls:?}");
        assert!(calls.get(&format!("v4/{list}?probe")).copied().unwrap_or(0) <= (p - 1).div_ceil(7), "{kind}: {calls:?}");
        assert!(calls.keys().filter(|k| k.contains(list)).all(|k| *k == format!("v4/{list}") || *k == format!("v4/{list}?probe")), "{kind}: {calls:?}");
    }
    // Pages read one at a time (`page_concurrency: 1`): no shift checks,
    // exactly one call per page of 100.
    let before = sim.state.calls_per_kind();
    let (again, same) = run(&sim, json!({"api_version": "v4", "resource_kinds": kinds, "page_concurrency": 1}));
    assert_eq!((again.errors, same.len()), (0, records.len()));
    let calls = sim.state.calls_per_kind();
    for kind in KINDS {
        let list = list_of(kind);
        let spent: u64 = calls.iter().filter(|(k, _)| k.contains(list)).map(|(k, c)| c - before.get(k).copied().unwrap_or(0)).sum();
        assert_eq!(spent, pages(count_of(kind)), "{kind}: {} entities: {calls:?}", count_of(kind));
    }

    // Overlay subnets name their VPC, VLAN subnets have no `vpc` at all.
    let vpc_ids: Vec<&str> = services(&records, "VPC").iter().filter_map(|v| v["reference"]["resource_id"].as_str()).collect();
    let subnets = services(&records, "Subnet");
    let overlay: Vec<_> = subnets.iter().filter(|s| s["data"]["subnet_type"] == "OVERLAY").collect();
    assert_eq!(overlay.len(), n);
    assert!(overlay.iter().all(|s| vpc_ids.contains(&s["data"]["vpc"]["uuid"].as_str().unwrap_or_default())));
    assert!(subnets.iter().filter(|s| s["data"]["subnet_type"] == "VLAN").all(|s| s["data"].get("vpc").is_none()));

    // Facts through to the records.
    let fips = services(&records, "FloatingIP");
    let vm_nic = fips.iter().find(|f| f["data"]["association"] == "VM_NIC").expect("a VM NIC association");
    assert!(vm_nic["data"]["vm_nic_uuid"].is_string() && vm_nic["data"]["vpc_uuid"].is_string() && vm_nic["ip_addresses"].as_array().unwrap().len() == 2);
    assert!(fips.iter().any(|f| f["data"]["association"] == "UNASSOCIATED"));
    let policy = services(&records, "NetworkSecurityPolicy").into_iter().find(|p| p["data"]["policy_type"] == "APPLICATION").expect("an application policy");
    assert_eq!(policy["data"]["rule_count"], 2);
    let group = policy["data"]["address_group_uuids"][0].as_str().unwrap();
    let ag = services(&records, "AddressGroup").into_iter().find(|g| g["reference"]["resource_id"] == group).expect("its address group");
    assert_eq!(ag["data"]["policy_uuids"][0], policy["reference"]["resource_id"]);
    let vs = services(&records, "VirtualSwitch").into_iter().find(|v| v["data"]["is_default"] == true).expect("the default switch");
    assert_eq!(vs["data"]["clusters"].as_array().unwrap().len(), 3);
    assert!(vs["data"]["clusters"][0]["name"].is_string(), "cluster named from the cluster list");
}

/// The fields v3 has, of a record.
fn comparable(r: &Value) -> Value {
    let d = &r["data"];
    let pick = |keys: &[&str]| -> Value { keys.iter().map(|k| (k.to_string(), d[*k].clone())).collect::<serde_json::Map<_, _>>().into() };
    let data = match r["cloud_service_type"].as_str().unwrap_or_default() {
        "VPC" => pick(&["vpc_type", "external_subnets", "dns_servers", "externally_routable_prefixes", "project", "owner", "description"]),
        "FloatingIP" => pick(&["floating_ip", "association", "vm_nic_uuid", "private_ip", "vpc_uuid", "external_subnet_uuid", "owner"]),
        "NetworkSecurityPolicy" => pick(&["policy_type", "state", "hitlog_enabled", "ipv6_traffic_allowed", "created_at", "updated_at", "description"]),
        "AddressGroup" => pick(&["ipv4_addresses", "ip_ranges", "policy_uuids", "description"]),
        _ => pick(&["tcp_ports", "udp_ports", "icmp", "protocols", "system_defined", "policy_uuids", "description"]),
    };
    json!({"name": r["name"], "id": r["reference"]["resource_id"], "type": r["cloud_service_type"], "ips": r["ip_addresses"], "instance_type": r["instance_type"], "data": data})
}

#[test]
fn v3_gives_the_records_v4_gives_and_names_the_v4_only_kinds() {
    let n = 40;
    let sim = sim(n, Faults::default());
    let (r4, v4) = run(&sim, json!({"api_version": "v4", "resource_kinds": KINDS}));
    let before = sim.state.calls_per_kind();
    let (r3, v3) = run(&sim, json!({"api_version": "v3", "resource_kinds": KINDS}));
    assert_eq!(r4.errors, 0, "{:?}", errors(&v4));
    // Route tables and virtual switches: no v3 list, one error resource each.
    let errs = errors(&v3);
    assert_eq!((r3.errors, errs.len()), (2, 2), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("route_tables have no v3 API")) && errs.iter().any(|e| e.contains("virtual_switches have no v3 API")), "{errs:?}");
    for ty in ["VPC", "FloatingIP", "NetworkSecurityPolicy", "AddressGroup", "ServiceGroup"] {
        let mut a: Vec<Value> = services(&v4, ty).into_iter().map(comparable).collect();
        let mut b: Vec<Value> = services(&v3, ty).into_iter().map(comparable).collect();
        a.sort_by_key(|x| x["id"].to_string());
        b.sort_by_key(|x| x["id"].to_string());
        assert!(!a.is_empty(), "{ty}");
        assert_eq!(a, b, "{ty}: the same through v3 and v4");
    }
    assert!(services(&v3, "RouteTable").is_empty() && services(&v3, "VirtualSwitch").is_empty());
    // v3: each list one call (up to 500 entities a page).
    let calls = sim.state.calls_per_kind();
    for kind in KINDS.into_iter().filter(|k| !["route_tables", "virtual_switches"].contains(k)) {
        let list = list_of(kind);
        assert_eq!(calls.get(list).copied().unwrap_or(0) - before.get(list).copied().unwrap_or(0), 1, "{kind}: {calls:?}");
    }
}

/// `auto`: a namespace the gateway does not serve (here microseg) falls
/// back to v3 for its kinds, the other (networking) stays on v4; without
/// v4 at all, the v4-only kinds are error resources that say why.
#[test]
fn auto_falls_back_to_v3_per_namespace_and_v4_only_kinds_say_so() {
    let microseg = ["network_security_rules", "address_groups", "service_groups"];
    let sim = sim(5, Faults { v4_absent: microseg.iter().map(|s| s.to_string()).collect(), ..Faults::default() });
    let (report, records) = run(&sim, json!({"resource_kinds": KINDS}));
    assert_eq!(report.errors, 0, "{:?}", errors(&records));
    let calls = sim.state.calls_per_kind();
    for list in microseg {
        assert_eq!(calls.get(list), Some(&1), "{list} through v3: {calls:?}");
    }
    for list in ["vpcs", "floating_ips", "route_tables", "virtual_switches"] {
        assert_eq!((calls.get(&format!("v4/{list}")), calls.get(list)), (Some(&1), None), "{list} through v4: {calls:?}");
    }
    assert_eq!((services(&records, "NetworkSecurityPolicy").len(), services(&records, "AddressGroup").len(), services(&records, "VPC").len()), (5, 5, 5));

    let old = block_on(Simulator::start(SimConfig { estate: EstateConfig { vms: 10, ..EstateConfig::default() }, v4: false, ..SimConfig::default() })).expect("simulator starts");
    old.state.add_vpc_networking(5);
    let (report, records) = run(&old, json!({"resource_kinds": KINDS}));
    let errs = errors(&records);
    assert_eq!((report.errors, errs.len()), (2, 2), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("route_tables need the v4 API /api/networking/v4.0/config/route-tables")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("virtual_switches need the v4 API")), "{errs:?}");
    assert_eq!((services(&records, "VPC").len(), services(&records, "FloatingIP").len(), services(&records, "ServiceGroup").len()), (5, 10, 5));
}

#[test]
fn the_default_kinds_read_none_of_these_lists() {
    let sim = sim(5, Faults::default());
    let (report, records) = run(&sim, json!({}));
    assert_eq!(report.errors, 0);
    let calls = sim.state.calls_per_kind();
    for kind in KINDS {
        assert!(!calls.keys().any(|k| k.contains(list_of(kind))), "{kind}: {calls:?}");
    }
    let types: BTreeMap<String, usize> = records.iter().filter(|r| r["resource_type"] == "inventory.CloudServiceType").map(|r| (r["resource"]["name"].as_str().unwrap().to_string(), 1)).collect();
    assert_eq!(types.keys().cloned().collect::<Vec<_>>(), ["Cluster", "Host", "Image", "Subnet", "VirtualMachine"]);
}
