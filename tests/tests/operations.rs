//! Compute extras and operations kinds (`vm_templates`, `alerts`,
//! `lcm_entities`, on request only, v4 only) against the simulator: every
//! entity of the estate as a record, alerts open or resolved by severity
//! and linked to the record of the entity they are about, LCM versions per
//! cluster and host; each kind costs one list call per page of 100; a
//! Prism Central without them (or `api_version: v3`) gets an error resource
//! per kind naming the v4 path, and no call; the default kinds read none.

use cf_host::record::{Record, ResourceType};
use cf_tests::kinds::{assert_one_call_per_page, collect_default, of_type, pages};
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const VMS: usize = 230;
const KINDS: [&str; 3] = ["vm_templates", "alerts", "lcm_entities"];

fn sim(v4: bool, faults: Faults) -> Simulator {
    let estate = EstateConfig { vms: VMS, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, v4, faults, ..SimConfig::default() })).expect("simulator starts")
}

fn collect(sim: &Simulator, options: Value, kinds: &[&str]) -> (u64, Vec<Record>) {
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(sim).options(options).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": kinds})));
    (r.expect("collect").errors, records)
}

#[test]
fn templates_alerts_and_lcm_entities_through_v4_one_call_per_page() {
    let sim = sim(true, Faults::default());
    let mut kinds = KINDS.to_vec();
    kinds.extend(["vms", "hosts"]);
    let (errors, records) = collect(&sim, json!({"page_size": 100}), &kinds);
    assert_eq!(errors, 0);
    let estate = sim.state.estate();

    // Templates: each with its active version and the size of its VM spec.
    let templates = of_type(&records, "VmTemplate");
    assert_eq!(templates.len(), estate.vm_templates.len());
    for t in &estate.vm_templates {
        let r = &templates[t["extId"].as_str().unwrap()];
        assert_eq!(r["data"]["version"]["name"], t["templateVersionSpec"]["versionName"]);
        assert_eq!(r["data"]["version"]["is_active"], true);
        let spec = &t["templateVersionSpec"]["vmSpec"];
        assert_eq!(r["data"]["vm_spec"]["vcpus"], json!(spec["numSockets"].as_u64().unwrap() * spec["numCoresPerSocket"].as_u64().unwrap()));
        assert_eq!(r["region_code"], spec["cluster"]["extId"]);
        // Every version, newest (the active one) first, each with its spec.
        let want = prism_sim::operations::template_versions(&estate.vm_templates, t["extId"].as_str().unwrap(), estate.now).unwrap();
        let got = r["data"]["versions"].as_array().unwrap_or_else(|| panic!("versions read: {}", r["data"]));
        assert_eq!(got.len(), want.len());
        assert_eq!(r["data"]["version_count"], json!(want.len()));
        let names: Vec<&Value> = got.iter().map(|v| &v["name"]).collect();
        let want_names: Vec<&Value> = want.iter().rev().map(|v| &v["versionName"]).collect();
        assert_eq!(names, want_names, "newest first");
        assert_eq!((got[0]["is_active"].clone(), got[0]["uuid"].clone()), (json!(true), t["templateVersionSpec"]["extId"].clone()));
        assert!(got[1..].iter().all(|v| v["is_active"] == false && v["vm_spec"]["num_sockets"].is_u64()));
    }
    assert!(templates.values().any(|t| t["data"]["versions"].as_array().unwrap().len() > 1), "older versions too");

    // Alerts: state and severity as the estate has them, each linked to the
    // record of its entity (VMs and hosts are collected too).
    let alerts = of_type(&records, "Alert");
    assert!(estate.alerts.len() > 100, "more than one page: {}", estate.alerts.len());
    assert_eq!(alerts.len(), estate.alerts.len());
    let mut want_open: BTreeMap<String, usize> = BTreeMap::new();
    for a in estate.alerts.iter().filter(|a| a["isResolved"] == false) {
        *want_open.entry(a["severity"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for a in alerts.values().filter(|a| a["data"]["state"] != "RESOLVED") {
        assert_eq!(a["data"]["is_resolved"], false);
        *open.entry(a["data"]["severity"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(open, want_open);
    assert_eq!(open.len(), 3, "every severity open: {open:?}");
    let states: BTreeSet<&str> = alerts.values().filter_map(|a| a["data"]["state"].as_str()).collect();
    assert_eq!(states, BTreeSet::from(["OPEN", "ACKNOWLEDGED", "RESOLVED"]));
    let vms = of_type(&records, "VirtualMachine");
    let hosts = of_type(&records, "Host");
    for a in alerts.values() {
        let source = &a["data"]["source_entity"];
        let uuid = source["uuid"].as_str().unwrap();
        match source["type"].as_str().unwrap() {
            "vm" => {
                assert_eq!(vms[uuid]["name"], source["name"], "linked to the VM's record");
                assert!(!a["name"].as_str().unwrap().contains('{'), "title filled in: {}", a["name"]);
                assert!(a["name"].as_str().unwrap().contains(vms[uuid]["name"].as_str().unwrap()));
            }
            "host" => assert!(hosts.contains_key(uuid), "linked to the host's record"),
            other => assert_eq!((other, a["region_code"].clone()), ("prism_central", Value::Null), "Prism Central's own alert has no cluster region"),
        }
    }

    // LCM: software per cluster, firmware per host (linked to its record),
    // and the updates on offer.
    let lcm = of_type(&records, "LcmEntity");
    assert_eq!(lcm.len(), estate.lcm_entities.len());
    let per_host = lcm.values().filter(|e| e["data"]["host"]["uuid"].is_string()).count();
    assert_eq!(per_host, 2 * hosts.len());
    assert!(lcm.values().filter_map(|e| e["data"]["host"]["uuid"].as_str()).all(|h| hosts.contains_key(h)));
    let clusters: BTreeSet<&str> = lcm.values().filter(|e| e["data"]["location_type"] == "CLUSTER").filter_map(|e| e["region_code"].as_str()).collect();
    assert_eq!(clusters.len(), EstateConfig::default().clusters);
    let updates = lcm.values().filter(|e| e["data"]["update_available"] == true).count();
    let want_updates = estate.lcm_entities.iter().filter(|e| e["availableVersions"].as_array().unwrap().len() > 1).count();
    assert_eq!(updates, want_updates);
    assert!(updates > 0 && updates < lcm.len());

    // The console's types: labels, search keys for the flags one filters on.
    let types: BTreeMap<String, Value> = records
        .iter()
        .filter(|r| r.resource_type == ResourceType::CloudServiceType)
        .map(|r| {
            let res = r.to_json()["resource"].clone();
            (res["name"].as_str().unwrap().to_string(), res)
        })
        .collect();
    let search = |ty: &str| -> Vec<String> {
        types[ty]["metadata"]["view"]["search"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
    };
    assert!(search("Alert").contains(&"data.severity".to_string()) && search("Alert").contains(&"data.source_entity.uuid".to_string()));
    assert!(search("LcmEntity").contains(&"data.update_available".to_string()));
    assert_eq!((types["Alert"]["group"].clone(), types["Alert"]["is_primary"].clone()), (json!("Operations"), json!(true)));
    assert_eq!(types["VmTemplate"]["group"], "Compute");

    // Every call, exactly: one per page of 100 (and a probe per window),
    // the VMs' name lists once; and one versions call per template (vmm
    // v4.0 has no list of all versions), within option
    // max_template_version_calls (100 by default).
    let calls = sim.state.calls_per_kind();
    assert_one_call_per_page(&calls, "v4/alerts", estate.alerts.len());
    assert_one_call_per_page(&calls, "v4/lcm_entities", estate.lcm_entities.len());
    assert_one_call_per_page(&calls, "v4/vm_templates", estate.vm_templates.len());
    let mut want: BTreeMap<String, u64> = [
        ("v4/clusters", 1),
        ("v4/categories", 1),
        ("v4/hosts", 1),
        ("v4/subnets", 1),
        ("v4/vms", pages(VMS)),
        ("v4/vms?probe", 1),
        ("v4/vm_templates", 1),
        ("v4/vm_templates/versions", estate.vm_templates.len() as u64),
        ("v4/alerts", pages(estate.alerts.len())),
        ("v4/alerts?probe", 1),
        ("v4/lcm_entities", pages(estate.lcm_entities.len())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if estate.lcm_entities.len() > 100 {
        want.insert("v4/lcm_entities?probe".into(), 1);
    }
    assert_eq!(calls, want);
}

/// Without the v4 lists (a Prism Central that lacks them, or option
/// `api_version: v3`): one error resource per kind, naming the v4 path,
/// after one v4 call at most, and never a v3 call.
#[test]
fn without_v4_each_kind_is_an_error_resource_and_no_v3_call() {
    let absent = sim(true, Faults { v4_absent: KINDS.iter().map(|k| k.to_string()).collect(), ..Faults::default() });
    let (errors, records) = collect(&absent, json!({"page_size": 100}), &KINDS);
    assert_eq!(errors, 3);
    let messages: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    for path in ["/api/vmm/v4.0/content/templates", "/api/monitoring/v4.0/serviceability/alerts", "/api/lifecycle/v4.0/resources/entities"] {
        assert!(messages.iter().any(|m| m.contains(path)), "{path}: {messages:?}");
    }
    let calls = absent.state.calls_per_kind();
    for kind in KINDS {
        assert!(!calls.contains_key(kind), "no v3 call for {kind}: {calls:?}");
    }

    let v3 = sim(false, Faults::default());
    let (errors, records) = collect(&v3, json!({"page_size": 100, "api_version": "v3"}), &KINDS);
    assert_eq!(errors, 3);
    let messages: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    assert!(messages.iter().all(|m| m.contains("have no v3 API")), "{messages:?}");
    let calls = v3.state.calls_per_kind();
    assert_eq!(calls.keys().collect::<Vec<_>>(), ["clusters"], "nothing but the cluster list: {calls:?}");
}

/// The default kinds read none of these lists and emit none of their types.
#[test]
fn the_default_kinds_read_no_operations_list() {
    let (records, calls) = collect_default(&sim(true, Faults::default()));
    for ty in ["VmTemplate", "Alert", "LcmEntity"] {
        assert!(records.iter().all(|r| r.resource().get("cloud_service_type") != Some(&json!(ty)) && r.resource().get("name") != Some(&json!(ty))), "{ty}");
    }
    for key in KINDS {
        assert!(calls.keys().all(|k| !k.contains(key)), "{key}: {calls:?}");
    }
}

/// Guest tools per VM come from the VM list itself: asked for with the
/// VMs, the VM records stay byte for byte what they are without, and no
/// call is added; asked for alone, the VM list is read once (per page) and
/// no VM is emitted. Through v4 and v3 alike.
#[test]
fn guest_tools_per_vm_from_the_vm_list_with_vm_records_unchanged() {
    for v4 in [true, false] {
        let installed: BTreeSet<String> = {
            let s = sim(v4, Faults::default());
            let e = s.state.estate();
            e.vms.iter().filter(|v| v.pointer("/status/resources/guest_tools").is_some()).map(|v| v["metadata"]["uuid"].as_str().unwrap().to_string()).collect()
        };
        assert!(!installed.is_empty() && installed.len() < VMS);

        // One simulator for both runs: its calls add up.
        let both = sim(v4, Faults::default());
        let (errors, without) = collect(&both, json!({"page_size": 100}), &["vms"]);
        assert_eq!(errors, 0);
        let plain_calls = both.state.calls_per_kind();
        let (errors, with) = collect(&both, json!({"page_size": 100}), &["vms", "guest_tools"]);
        assert_eq!(errors, 0);
        let vms = of_type(&with, "VirtualMachine");
        let before = of_type(&without, "VirtualMachine");
        let changed: Vec<&String> = vms.iter().filter(|(id, r)| before.get(*id) != Some(*r)).map(|(id, _)| id).collect();
        assert!(changed.is_empty() && vms.len() == before.len(), "v4={v4}: VM records unchanged, but {} differ", changed.len());
        let twice: BTreeMap<String, u64> = plain_calls.iter().map(|(k, v)| (k.clone(), 2 * v)).collect();
        assert_eq!(both.state.calls_per_kind(), twice, "v4={v4}: no call added");

        let tools = of_type(&with, "GuestTools");
        assert_eq!(tools.len(), VMS, "v4={v4}: one per VM");
        let mut seen_installed = BTreeSet::new();
        for t in tools.values() {
            let vm = t["data"]["vm"]["uuid"].as_str().unwrap();
            assert_eq!(vms[vm]["name"], t["data"]["vm"]["name"], "linked to the VM's record");
            assert_eq!(t["reference"]["resource_id"], json!(format!("{vm}:ngt")));
            if t["data"]["installed"] == true {
                assert_eq!((t["data"]["state"].as_str(), t["data"]["version"].as_str()), (Some("INSTALLED"), Some("4.0")), "v4={v4}");
                seen_installed.insert(vm.to_string());
            } else {
                assert_eq!(t["data"]["state"], "NOT_INSTALLED");
            }
        }
        assert_eq!(seen_installed, installed, "v4={v4}");

        let alone = sim(v4, Faults::default());
        let (errors, records) = collect(&alone, json!({"page_size": 100}), &["guest_tools"]);
        assert_eq!(errors, 0);
        assert!(of_type(&records, "VirtualMachine").is_empty(), "read, not emitted");
        assert_eq!(of_type(&records, "GuestTools").len(), VMS);
        let key = if v4 { "v4/vms" } else { "vms" };
        assert_one_call_per_page(&alone.state.calls_per_kind(), key, VMS);
    }
}

/// Template versions cost one call per template: option
/// `max_template_version_calls` bounds them; the templates past it go out
/// with their active version only (`data.versions` null), and none is lost.
#[test]
fn template_version_calls_stay_within_the_cap() {
    let sim = sim(true, Faults::default());
    let (errors, records) = collect(&sim, json!({"page_size": 100, "max_template_version_calls": 2}), &["vm_templates"]);
    assert_eq!(errors, 0);
    let templates = of_type(&records, "VmTemplate");
    let estate = sim.state.estate();
    assert_eq!(templates.len(), estate.vm_templates.len());
    assert!(estate.vm_templates.len() > 2);
    let with: Vec<&String> = templates.iter().filter(|(_, t)| t["data"]["versions"].is_array()).map(|(id, _)| id).collect();
    assert_eq!(with.len(), 2, "the first two listed");
    for t in templates.values().filter(|t| t["data"]["versions"].is_null()) {
        assert_eq!(t["data"]["version"]["is_active"], true, "the active version stays: {}", t["data"]);
    }
    let calls = sim.state.calls_per_kind();
    assert_eq!(calls.get("v4/vm_templates/versions"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("v4/vm_templates"), Some(&1), "{calls:?}");
}

fn gpu_sim(v4: bool) -> Simulator {
    let estate = EstateConfig { vms: VMS, gpus: true, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, v4, ..SimConfig::default() })).expect("simulator starts")
}

/// Physical GPUs per host (kind `gpus`), read from the v3 host list's
/// `gpu_list` whether or not Prism offers v4 (v4.0 names no host for a
/// physical GPU): one record per GPU with its host and cluster (linked to
/// their records), mode, assignable state, frame buffer, and the VMs using
/// it (linked to the VMs' records, whose own `data.gpus` name it); one
/// host list call per page, nothing else.
#[test]
fn gpus_per_host_with_their_vms_one_host_list_call_per_page() {
    for v4 in [true, false] {
        let sim = gpu_sim(v4);
        let (errors, records) = collect(&sim, json!({"page_size": 5}), &["gpus", "vms", "hosts"]);
        assert_eq!(errors, 0, "v4={v4}");
        let estate = sim.state.estate();
        let gpus = of_type(&records, "Gpu");
        let hosts = of_type(&records, "Host");
        let vms = of_type(&records, "VirtualMachine");
        // What the estate has: per host, its distinct PCI addresses.
        let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for h in &estate.hosts {
            let id = h["metadata"]["uuid"].as_str().unwrap().to_string();
            for g in h.pointer("/status/resources/gpu_list").and_then(Value::as_array).into_iter().flatten() {
                let users = want.entry(format!("{id}:gpu:{}", g["pci_address"].as_str().unwrap())).or_default();
                if let Some(vm) = g["consumer_reference"]["uuid"].as_str() {
                    users.insert(vm.to_string());
                }
            }
        }
        assert_eq!(gpus.keys().cloned().collect::<BTreeSet<_>>(), want.keys().cloned().collect::<BTreeSet<_>>(), "v4={v4}: one record per physical GPU");
        let hosts_with_gpus = estate.hosts.iter().filter(|h| h.pointer("/status/resources/gpu_list").is_some()).count();
        assert!(hosts_with_gpus > 0 && hosts_with_gpus < estate.hosts.len());
        let (mut idle, mut shared, mut passthrough_used) = (0, 0, 0);
        for (id, g) in &gpus {
            let d = &g["data"];
            let host = d["host"]["uuid"].as_str().unwrap();
            assert_eq!(hosts[host]["name"], d["host"]["name"], "linked to its host's record");
            assert_eq!(g["region_code"], hosts[host]["region_code"], "its host's cluster");
            let users: BTreeSet<String> = d["vms"].as_array().unwrap().iter().map(|v| v["uuid"].as_str().unwrap().to_string()).collect();
            assert_eq!(users, want[id], "v4={v4} {id}");
            for u in &users {
                // The VM's own record runs on that host and names the GPU.
                assert_eq!(vms[u]["data"]["host"]["uuid"], json!(host), "{u}");
                let its = vms[u]["data"]["gpus"].as_array().unwrap_or_else(|| panic!("{u} has GPUs: {}", vms[u]["data"]));
                assert!(its.iter().any(|x| x["mode"] == d["mode"]), "{u}: {its:?}");
            }
            match (d["mode"].as_str().unwrap(), users.len()) {
                ("PASSTHROUGH_COMPUTE", 0) => {
                    idle += 1;
                    assert_eq!((d["assignable"].clone(), d["in_use"].clone()), (json!(true), json!(false)));
                }
                ("PASSTHROUGH_COMPUTE", 1) => {
                    passthrough_used += 1;
                    assert_eq!((d["assignable"].clone(), d["in_use"].clone()), (json!(false), json!(true)));
                    assert_eq!(d["frame_buffer_size_bytes"], json!(81_920u64 << 20));
                }
                ("VIRTUAL", n) => {
                    shared += usize::from(n > 1);
                    assert_eq!(d["num_vgpus_allocated"], json!(n));
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(d["vendor"], "NVIDIA");
        }
        assert!(idle > 0 && shared > 0 && passthrough_used > 0, "v4={v4}: idle {idle}, shared {shared}, passthrough used {passthrough_used}");
        // Every VM with GPUs is among its GPUs' users.
        let using: BTreeSet<&String> = want.values().flatten().collect();
        let with_gpus: BTreeSet<&String> = vms.iter().filter(|(_, v)| v["data"]["gpus"].is_array()).map(|(id, _)| id).collect();
        assert_eq!(using, with_gpus, "v4={v4}");

        // The calls: the v3 host list for the GPUs, a call per page of 5.
        let calls = sim.state.calls_per_kind();
        let host_pages = estate.hosts.len().div_ceil(5) as u64;
        let v3_host_lists = if v4 { host_pages } else { 2 * host_pages };
        assert_eq!(calls.get("hosts"), Some(&v3_host_lists), "v4={v4}: {calls:?}");
        assert!(calls.keys().all(|k| !k.contains("gpu")), "no GPU call of any other kind: {calls:?}");

        // Alone: the host list only (and the cluster list).
        let alone = gpu_sim(v4);
        let (errors, records) = collect(&alone, json!({"page_size": 5}), &["gpus"]);
        assert_eq!(errors, 0);
        assert_eq!(of_type(&records, "Gpu").len(), gpus.len());
        assert!(of_type(&records, "Host").is_empty());
        let mut calls = alone.state.calls_per_kind();
        let probes = calls.remove("hosts?probe").unwrap_or(0);
        assert!(probes <= host_pages.div_ceil(8), "{calls:?}");
        let clusters = if v4 { "v4/clusters" } else { "clusters" };
        assert_eq!(calls, BTreeMap::from([(clusters.to_string(), 1), ("hosts".to_string(), host_pages)]), "v4={v4}");
    }
}

/// Without the knob the simulator has no GPUs, and kind `gpus` gives none
/// (and no error) from the same one host list.
#[test]
fn no_gpus_no_records() {
    let sim = sim(true, Faults::default());
    let (errors, records) = collect(&sim, json!({"page_size": 100}), &["gpus"]);
    assert_eq!(errors, 0);
    assert!(of_type(&records, "Gpu").is_empty());
    assert!(records.iter().any(|r| r.resource().get("name") == Some(&json!("Gpu"))), "its type is still emitted");
    assert_eq!(sim.state.calls_per_kind().get("hosts"), Some(&1));
}

/// A Prism Central without the v3 host list: kind `gpus` is an error
/// resource naming that list (there is no v4 list to fall back to), and
/// the run goes on.
#[test]
fn gpus_without_the_v3_host_list_are_an_error_resource() {
    let estate = EstateConfig { vms: VMS, gpus: true, ..EstateConfig::default() };
    let sim = block_on(Simulator::start(SimConfig { estate, v4: true, v3_absent: vec!["hosts".into()], ..SimConfig::default() })).expect("simulator starts");
    let (errors, records) = collect(&sim, json!({"page_size": 100, "max_retries": 0}), &["gpus", "hosts"]);
    assert_eq!(errors, 1);
    let messages: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    assert!(messages[0].contains("/api/nutanix/v3/hosts/list"), "{messages:?}");
    assert!(of_type(&records, "Gpu").is_empty());
    assert_eq!(of_type(&records, "Host").len(), sim.state.estate().hosts.len(), "hosts through v4 all the same");
}
