//! Data protection kinds (`recovery_points`, `protection_policies`,
//! `recovery_plans`, on request only) against the simulator: through v4
//! (datapolicies, dataprotection; recovery plans through v3, as v4.0 has
//! no list of them) and through v3; the RPO and missing-VM flags match
//! what the estate says, computed here on their own; each kind costs one
//! list call per page of 100 entities.

use cf_host::record::{Record, ResourceType};
use cf_tests::kinds::{assert_one_call_per_page, collect_default, of_type, pages};
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::{Estate, EstateConfig};
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const VMS: usize = 230;
const KINDS: [&str; 3] = ["recovery_points", "protection_policies", "recovery_plans"];

fn sim(v4: bool, faults: Faults) -> Simulator {
    let estate = EstateConfig { vms: VMS, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, v4, faults, ..SimConfig::default() })).expect("simulator starts")
}

fn collect(sim: &Simulator, options: Value, kinds: &[&str]) -> Vec<Record> {
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(sim).options(options).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": kinds})));
    let r = r.expect("collect");
    let errors: Vec<_> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone()).collect();
    assert_eq!(r.errors, 0, "{errors:?}");
    records
}

fn t(s: &str) -> i64 {
    prism_sim::v4::parse_utc(s).unwrap_or_else(|| panic!("time {s}"))
}

/// What the estate says, worked out here: per policy name, the uuids of the
/// VMs it protects that have no unexpired recovery point within its RPO;
/// per plan name, the VM uuids it names that the estate lacks.
fn expected(e: &Estate, now: i64) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, BTreeSet<String>>) {
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for p in e.vm_recovery_points.iter() {
        let expires_ms = p["status"]["resources"]["expiration_time_msecs"].as_i64().unwrap();
        if expires_ms / 1000 <= now {
            continue;
        }
        let vm = p["status"]["resources"]["parent_vm_reference"]["uuid"].as_str().unwrap().to_string();
        let at = t(p["metadata"]["creation_time"].as_str().unwrap());
        latest.entry(vm).and_modify(|x| *x = (*x).max(at)).or_insert(at);
    }
    let mut violated = BTreeMap::new();
    for rule in &e.protection_rules {
        let rpo = rule.pointer("/status/resources/availability_zone_connectivity_list/0/snapshot_schedule_list/0/recovery_point_objective_secs").and_then(Value::as_i64);
        let params = rule.pointer("/status/resources/category_filter/params").and_then(Value::as_object).unwrap();
        let mut bad = BTreeSet::new();
        for vm in e.vms.iter() {
            let cats = vm["metadata"]["categories"].as_object().cloned().unwrap_or_default();
            let protected = params.iter().any(|(k, vs)| cats.get(k).is_some_and(|v| vs.as_array().unwrap().contains(v)));
            let uuid = vm["metadata"]["uuid"].as_str().unwrap();
            if protected && rpo.is_some_and(|rpo| latest.get(uuid).is_none_or(|at| now - at > rpo)) {
                bad.insert(uuid.to_string());
            }
        }
        violated.insert(rule["status"]["name"].as_str().unwrap().to_string(), bad);
    }
    let existing: BTreeSet<String> = e.vms.iter().map(|v| v["metadata"]["uuid"].as_str().unwrap().to_string()).collect();
    let mut missing = BTreeMap::new();
    for plan in &e.recovery_plans {
        let named = plan.pointer("/status/resources/stage_list/0/stage_work/recover_entities/entity_info_list").and_then(Value::as_array).unwrap();
        let gone: BTreeSet<String> = named
            .iter()
            .filter_map(|i| i.pointer("/any_entity_reference/uuid").and_then(Value::as_str))
            .filter(|u| !existing.contains(*u))
            .map(str::to_string)
            .collect();
        missing.insert(plan["status"]["name"].as_str().unwrap().to_string(), gone);
    }
    (violated, missing)
}

fn uuids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|x| x["uuid"].as_str().unwrap().to_string()).collect()
}

/// Checks the records of the three kinds against the estate.
fn check(records: &[Record], sim: &Simulator) {
    let estate = sim.state.estate();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (violated, missing) = expected(&estate, now);
    let points = of_type(records, "RecoveryPoint");
    assert_eq!(points.len(), estate.vm_recovery_points.len());
    let expired = points.values().filter(|p| p["data"]["expired"] == true).count();
    assert!(expired > 0 && expired < points.len(), "some expired: {expired}");
    assert!(points.values().all(|p| p["data"]["vms"].as_array().unwrap().len() == 1 && p["data"]["expires_at"].is_string()));

    let policies = of_type(records, "ProtectionPolicy");
    assert_eq!(policies.len(), 3);
    let by_name: BTreeMap<&str, &Value> = policies.values().map(|p| (p["name"].as_str().unwrap(), p)).collect();
    for (name, want) in &violated {
        let p = by_name[name.as_str()];
        assert_eq!(&uuids(&p["data"]["rpo_violated_vms"]), want, "{name}");
        assert_eq!(p["data"]["rpo_violated"], json!(!want.is_empty()), "{name}");
        assert_eq!(p["data"]["rpo_violated_count"], json!(want.len()));
    }
    // The estate has each case: violations, none, and a policy without RPO.
    assert!(!violated["pp-production-1h"].is_empty() && violated["pp-web-daily"].len() < by_name["pp-web-daily"]["data"]["protected_vm_count"].as_u64().unwrap() as usize);
    assert!(by_name["pp-dev-manual"]["data"]["protected_vms"].as_array().unwrap().iter().all(|v| v["status"] == "NO_RPO"));
    assert_eq!(by_name["pp-production-1h"]["instance_type"], "RPO 1h");

    let plans = of_type(records, "RecoveryPlan");
    assert_eq!(plans.len(), 2);
    for p in plans.values() {
        let want = &missing[p["name"].as_str().unwrap()];
        assert_eq!(&uuids(&p["data"]["missing_vms"]), want);
        assert_eq!(p["data"]["has_missing_vms"], json!(!want.is_empty()));
    }
    assert!(missing["rp-web"].contains(&prism_sim::dataprotection::deleted_vm_uuid()));

    // The flags are what the console searches on.
    let types: BTreeMap<String, Value> = records
        .iter()
        .filter(|r| r.resource_type == ResourceType::CloudServiceType && r.resource().get("group") == Some(&json!("DataProtection")))
        .map(|r| {
            let res = r.to_json()["resource"].clone();
            (res["name"].as_str().unwrap().to_string(), res["metadata"].clone())
        })
        .collect();
    let search = |ty: &str| -> Vec<String> {
        types[ty]["view"]["search"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
    };
    assert!(search("ProtectionPolicy").contains(&"data.rpo_violated".to_string()), "{:?}", types.keys());
    assert!(search("RecoveryPlan").contains(&"data.has_missing_vms".to_string()));
    assert!(search("RecoveryPoint").contains(&"data.expired".to_string()));
}

#[test]
fn data_protection_through_v4_with_recovery_plans_through_v3() {
    let sim = sim(true, Faults::default());
    let records = collect(&sim, json!({"page_size": 100}), &KINDS);
    check(&records, &sim);
    assert!(of_type(&records, "VirtualMachine").is_empty(), "VMs read for the flags, not emitted");
    let calls = sim.state.calls_per_kind();
    let points = sim.state.estate().vm_recovery_points.len();
    assert!(points > 100, "more than one page: {points}");
    assert_one_call_per_page(&calls, "v4/vm_recovery_points", points);
    assert_one_call_per_page(&calls, "v4/protection_rules", 3);
    assert_one_call_per_page(&calls, "recovery_plans", 2);
    assert_one_call_per_page(&calls, "v4/vms", VMS);
    assert!(!calls.contains_key("vm_recovery_points") && !calls.contains_key("protection_rules"), "no v3 where v4 answers: {calls:?}");
    // Nothing else, nothing twice: the cluster list, the VMs' name lists
    // (categories also name the policies' categories), and a probe per
    // window of pages.
    let want: BTreeMap<String, u64> = [
        ("v4/clusters", 1),
        ("v4/categories", 1),
        ("v4/hosts", 1),
        ("v4/subnets", 1),
        ("v4/vms", pages(VMS)),
        ("v4/vms?probe", 1),
        ("v4/vm_recovery_points", pages(points)),
        ("v4/vm_recovery_points?probe", 1),
        ("v4/protection_rules", 1),
        ("recovery_plans", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(calls, want);
}

#[test]
fn data_protection_through_v3_and_per_kind_fallback() {
    let v3 = sim(false, Faults::default());
    let records = collect(&v3, json!({"page_size": 100}), &KINDS);
    check(&records, &v3);
    let calls = v3.state.calls_per_kind();
    assert_one_call_per_page(&calls, "vm_recovery_points", v3.state.estate().vm_recovery_points.len());
    assert_one_call_per_page(&calls, "protection_rules", 3);
    assert_one_call_per_page(&calls, "recovery_plans", 2);
    assert_one_call_per_page(&calls, "vms", VMS);

    // A Prism Central with v4 but without the dataprotection list: recovery
    // points through v3, policies still through v4.
    let mixed = sim(true, Faults { v4_absent: vec!["vm_recovery_points".into()], ..Faults::default() });
    let records = collect(&mixed, json!({"page_size": 100}), &KINDS);
    check(&records, &mixed);
    let calls = mixed.state.calls_per_kind();
    assert_one_call_per_page(&calls, "vm_recovery_points", mixed.state.estate().vm_recovery_points.len());
    assert_one_call_per_page(&calls, "v4/protection_rules", 3);
}

/// A VM deleted after a plan named it: the next run flags the plan; the
/// VMs asked for too are read once, for both.
#[test]
fn a_vm_deleted_under_a_recovery_plan_is_flagged() {
    let sim = sim(true, Faults::default());
    let vm6 = prism_sim::estate::uuid("vm", 6);
    assert!(sim.state.remove_vm(&vm6));
    let records = collect(&sim, json!({"page_size": 100}), &["vms", "recovery_plans"]);
    assert_eq!(of_type(&records, "VirtualMachine").len(), VMS - 1);
    let plans = of_type(&records, "RecoveryPlan");
    let production = plans.values().find(|p| p["name"] == "rp-production").unwrap();
    assert_eq!(uuids(&production["data"]["missing_vms"]), BTreeSet::from([vm6]));
    assert_eq!(production["data"]["has_missing_vms"], true);
    let calls = sim.state.calls_per_kind();
    assert_one_call_per_page(&calls, "v4/vms", VMS - 1);
    assert!(!calls.contains_key("v4/vm_recovery_points"), "plans need no recovery points: {calls:?}");
}

/// The default kinds read nothing of data protection.
#[test]
fn the_default_kinds_read_no_data_protection_list() {
    let (records, calls) = collect_default(&sim(true, Faults::default()));
    assert!(records.iter().all(|r| r.resource().get("cloud_service_group") != Some(&json!("DataProtection"))));
    for key in ["protection_rules", "vm_recovery_points", "recovery_plans"] {
        assert!(calls.keys().all(|k| !k.contains(key)), "{key}: {calls:?}");
    }
}
