//! Prism Central v4: the same simulated estate collected through v3 and
//! through v4 normalizes to the same records (apart from the differences
//! `guest-nutanix/src/v4.rs` documents); `auto` picks v4 where offered and
//! v3 otherwise; forcing v4 against a Prism without it is a clear error.

use cf_host::record::Record;
use cf_host::ErrorCode;
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, PageFault, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn sim(v4: bool) -> Simulator {
    let estate = EstateConfig { vms: 230, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, v4, ..SimConfig::default() })).expect("simulator starts")
}

fn run(sim: &Simulator, options: Value) -> (Result<cf_host::runtime::CollectReport, cf_host::RunError>, Vec<Record>) {
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(sim).options(options).build().unwrap();
    block_on(collect_all(rt, plugin, &ctx, &json!({})))
}

/// Records by (resource type, id), with the documented v3/v4 differences removed.
fn comparable(records: &[Record]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| {
            let mut v = r.to_json();
            let res = &mut v["resource"];
            let id = res.pointer("/reference/resource_id").or_else(|| res.get("region_code")).or_else(|| res.get("name")).cloned();
            let ty = res["cloud_service_type"].as_str().unwrap_or("").to_string();
            if let Some(data) = res.get_mut("data").and_then(Value::as_object_mut) {
                data.remove("state");
                match ty.as_str() {
                    "VirtualMachine" => {
                        data.remove("owner");
                        data.remove("project");
                    }
                    "Cluster" => {
                        data.remove("created_at");
                        // v4.0 names no hypervisor versions.
                        for server in data.get_mut("hypervisor_servers").and_then(Value::as_array_mut).into_iter().flatten() {
                            server["version"] = Value::Null;
                        }
                    }
                    "Host" => {
                        // v4.0 has no node serial; v3 no CPU frequency.
                        data.remove("serial_number");
                        data.remove("cpu_frequency_hz");
                    }
                    "Subnet" => {
                        data.remove("categories");
                    }
                    "Image" => {
                        data.remove("architecture");
                    }
                    _ => {}
                }
            }
            if ty == "Cluster" {
                res.as_object_mut().map(|o| o.remove("launched_at"));
            }
            (format!("{} {ty} {}", r.resource_type.as_str(), id.unwrap_or(Value::Null)), v)
        })
        .collect()
}

#[test]
fn v3_and_v4_of_one_estate_normalize_to_the_same_records() {
    let sim = sim(true);
    let (r3, v3) = run(&sim, json!({"api_version": "v3"}));
    let (r4, v4) = run(&sim, json!({"api_version": "v4"}));
    let (r3, r4) = (r3.expect("v3 collect"), r4.expect("v4 collect"));
    assert_eq!((r3.errors, r4.errors), (0, 0));
    assert_eq!(r3.records, r4.records);
    let calls = sim.state.calls_per_kind();
    assert_eq!(calls.get("v4/vms"), Some(&3), "230 VMs in v4 pages of 100: {calls:?}");
    assert_eq!(calls.get("v4/categories"), Some(&1), "{calls:?}");
    assert_eq!((calls.get("v4/hosts"), calls.get("v4/subnets")), (Some(&1), Some(&1)), "read once for names and as kinds: {calls:?}");
    let (a, b) = (comparable(&v3), comparable(&v4));
    assert_eq!(a.len(), v3.len(), "ids are unique");
    for (key, want) in &a {
        let got = b.get(key).unwrap_or_else(|| panic!("{key} missing from the v4 collection"));
        assert_eq!(got, want, "{key} differs between v3 and v4");
    }
    assert_eq!(a.len(), b.len());
    // The facts v4 brings in through lookups made it through.
    let vm = v4
        .iter()
        .map(|r| r.to_json()["resource"].clone())
        .find(|r| r["data"]["power_state"] == "ON" && r["tags"].as_object().is_some_and(|t| !t.is_empty()) && r["data"]["nics"][0].is_object());
    let vm = vm.expect("a powered-on VM with categories and a NIC");
    assert!(vm["data"]["host"]["name"].is_string(), "{:?}", vm["data"]["host"]);
    assert!(vm["data"]["nics"][0]["subnet"]["name"].is_string(), "{:?}", vm["data"]["nics"]);
}

#[test]
fn auto_uses_v4_where_offered_and_v3_elsewhere() {
    let with = sim(true);
    let (r, records) = run(&with, json!({}));
    assert_eq!(r.expect("collect").errors, 0);
    let calls = with.state.calls_per_kind();
    assert!(calls.keys().all(|k| k.starts_with("v4/")), "only v4 calls: {calls:?}");
    let without = sim(false);
    let (r, again) = run(&without, json!({}));
    assert_eq!(r.expect("collect").errors, 0);
    let calls = without.state.calls_per_kind();
    assert!(calls.keys().all(|k| !k.starts_with("v4/")), "only v3 calls: {calls:?}");
    assert_eq!(comparable(&records).len(), comparable(&again).len());
    // Forcing v4 against a Prism without it: a clear error.
    let (r, _) = run(&without, json!({"api_version": "v4"}));
    let e = r.expect_err("no v4");
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.message().contains("does not offer /api/clustermgmt/v4.0/config/clusters"), "{e}");
}

#[test]
fn a_failed_v4_page_becomes_an_error_resource_and_the_rest_is_kept() {
    let sim = sim(true);
    sim.set_faults(Faults { pages: vec![PageFault { kind: "vms".into(), offset: 100, status: 500, times: None }], ..Faults::default() });
    let (r, records) = run(&sim, json!({"api_version": "v4", "max_retries": 1}));
    let r = r.expect("collect");
    assert_eq!(r.errors, 1);
    let vms = records.iter().filter(|r| !r.is_error() && r.resource().get("cloud_service_type") == Some(&json!("VirtualMachine"))).count();
    assert_eq!(vms, 130, "pages 0 and 2 of 100 + 30 kept");
    let err = records.iter().find(|r| r.is_error()).unwrap();
    assert!(err.message.as_deref().unwrap().contains("INTERNAL_ERROR: Injected fault"), "{err:?}");
}

#[test]
fn an_api_key_secret_collects_through_v4() {
    let sim = sim(true);
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(&sim).secret(json!({"host": sim.url(), "api_key": prism_sim::API_KEY})).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({})));
    let r = r.expect("collect with an API key");
    assert_eq!((r.errors, records.len() as u64), (0, r.records));
    assert_eq!(sim.state.unauthorized_calls(), 0);
    assert!(sim.state.calls_per_kind().keys().all(|k| k.starts_with("v4/")));
    // A wrong key is UNAUTHENTICATED, with the v4 error text.
    let ctx = cf_tests::sim_context(&sim).secret(json!({"host": sim.url(), "api_key": "wrong-key"})).build().unwrap();
    let (r, _) = block_on(collect_all(rt, plugin, &ctx, &json!({})));
    let e = r.expect_err("wrong key");
    assert_eq!(e.code(), ErrorCode::Unauthenticated);
    assert!(e.message().contains("AUTH-401: Authentication required."), "{e}");
}

/// Volume groups: listed only when asked for (option `resource_kinds`), and
/// through v3 while Prism offers it (the v4 list lacks disks and
/// attachments), also when `auto` picks v4 for the other kinds. Each one's
/// disks, size, attachments and cluster come out as the simulator made them.
#[test]
fn volume_groups_come_on_request_through_v3() {
    let sim = sim(true);
    let (r, default) = run(&sim, json!({}));
    r.expect("default collection");
    assert!(!sim.state.calls_per_kind().contains_key("volume_groups"), "not in the default kinds");
    assert!(default.iter().all(|r| r.resource().get("cloud_service_type") != Some(&json!("VolumeGroup"))));

    let (r, records) = run(&sim, json!({"resource_kinds": ["volume_groups", "vms"]}));
    r.expect("collection");
    let vgs: Vec<&Record> = records.iter().filter(|r| r.resource().get("cloud_service_type") == Some(&json!("VolumeGroup"))).collect();
    let cfg = EstateConfig { vms: 230, ..EstateConfig::default() };
    assert_eq!(vgs.len(), cfg.clusters * cfg.volume_groups_per_cluster);
    assert_eq!(sim.state.calls_per_kind()["volume_groups"], 2, "a one-entity probe, then one v3 page");
    assert!(!sim.state.calls_per_kind().contains_key("v4/volume_groups"));
    assert!(sim.state.calls_per_kind().contains_key("v4/vms"), "VMs still through v4");
    let vg0 = vgs.iter().find(|r| r.resource()["name"] == "vg-000").unwrap().resource_json();
    let data = &vg0["data"];
    assert_eq!(data["disk_count"], 1);
    assert_eq!(data["size_bytes"], json!(10_240u64 * 1024 * 1024));
    let attached: Vec<&str> = data["attached_vms"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    let names = [prism_sim::estate::vm_facts(&cfg, 0).name, prism_sim::estate::vm_facts(&cfg, 1).name];
    assert_eq!(attached, names);
    assert_eq!(data["cluster"]["name"], prism_sim::estate::cluster_name(0));
    assert_eq!(vg0["region_code"], prism_sim::estate::uuid("cluster", 0));
    assert_eq!(vg0["instance_type"], "SHARED");
    let types = records.iter().filter(|r| r.resource_type == cf_host::record::ResourceType::CloudServiceType).count();
    assert_eq!(types, 2, "VirtualMachine and VolumeGroup");
}

/// Projects: on request, through v3 (no v4 API), members, clusters and
/// quotas as the simulator made them; no region (a project spans clusters).
#[test]
fn projects_come_on_request_through_v3() {
    let sim = sim(true);
    let (r, records) = run(&sim, json!({"resource_kinds": ["projects"]}));
    r.expect("collection");
    let cfg = EstateConfig { vms: 230, ..EstateConfig::default() };
    let projects: Vec<Value> = records
        .iter()
        .filter(|r| r.resource().get("cloud_service_type") == Some(&json!("Project")))
        .map(|r| Value::Object(r.resource_json()))
        .collect();
    assert_eq!(projects.len(), cfg.projects);
    assert_eq!(sim.state.calls_per_kind()["projects"], 1);
    let p2 = projects.iter().find(|p| p["name"] == "project-2").unwrap();
    assert_eq!(p2["data"]["user_count"], 3);
    assert_eq!(p2["data"]["quotas"][0], json!({"resource_type": "VCPUS", "limit": 192, "used": 8}));
    assert_eq!(p2["region_code"], Value::Null);
    let default = projects.iter().find(|p| p["name"] == "default").unwrap();
    assert_eq!(default["data"]["is_default"], true);
    let names: Vec<&str> = default["data"]["clusters"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), cfg.clusters, "the default project may use every cluster: {names:?}");
    assert!(names.contains(&prism_sim::estate::cluster_name(0).as_str()));
}

/// Categories as a type: on request; through v4 where offered (one list of
/// key/value pairs), through v3 otherwise (the keys, then each key's
/// values); the same records either way, apart from v4's `ext_id`.
#[test]
fn categories_are_the_same_records_through_v3_and_v4() {
    let pick = |records: &[Record]| -> BTreeMap<String, Value> {
        records
            .iter()
            .filter(|r| r.resource().get("cloud_service_type") == Some(&json!("Category")))
            .map(|r| {
                let mut v = Value::Object(r.resource_json());
                v["data"].as_object_mut().map(|d| d.remove("ext_id"));
                v["reference"].as_object_mut().map(|r| r.remove("external_link"));
                (r.resource()["name"].as_str().unwrap_or("").to_string(), v)
            })
            .collect()
    };
    let (v3, v4) = (sim(false), sim(true));
    let (r, a) = run(&v3, json!({"resource_kinds": ["categories"]}));
    r.expect("v3 collection");
    let (r, b) = run(&v4, json!({"resource_kinds": ["categories"]}));
    r.expect("v4 collection");
    let (a, b) = (pick(&a), pick(&b));
    let pairs = prism_sim::estate::Estate::generate(EstateConfig { vms: 230, ..EstateConfig::default() }).category_pairs();
    assert_eq!(a.len(), pairs.len());
    assert_eq!(a, b);
    let keys = pairs.iter().map(|(k, _)| k).collect::<std::collections::BTreeSet<_>>().len() as u64;
    let calls = v3.state.calls_per_kind();
    assert_eq!((calls["categories"], calls["category_values"]), (1, keys), "the keys, then one value list per key");
    assert!(!v4.state.calls_per_kind().contains_key("category_values"));
    let (k, v) = &pairs[0];
    assert_eq!(a[&format!("{k}:{v}")]["data"]["description"], format!("{k} {v}"));
}

/// Storage containers exist only in v4: listed with their values through
/// v4, an error resource that says why on a Prism without v4 or with v3
/// forced.
#[test]
fn storage_containers_come_through_v4_only() {
    let (rt, plugin) = host();
    let collect = |sim: &Simulator, options: Value| {
        let ctx = cf_tests::sim_context(&sim).options(options).build().unwrap();
        let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": ["storage_containers"]})));
        (r.expect("collect"), records)
    };
    let containers = |records: &[Record]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| !r.is_error() && r.resource().get("cloud_service_type") == Some(&json!("StorageContainer")))
            .map(|r| r.to_json()["resource"].clone())
            .collect()
    };
    let with = sim(true);
    let (r, records) = collect(&with, json!({}));
    assert_eq!(r.errors, 0);
    let got = containers(&records);
    let want = with.state.estate().storage_containers.clone();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 6, "two per cluster");
    for w in &want {
        let id = w["containerExtId"].as_str().unwrap();
        let g = got.iter().find(|g| g["reference"]["resource_id"] == id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(g["name"], w["name"]);
        assert_eq!(g["region_code"], w["clusterExtId"]);
        assert_eq!(g["data"]["max_capacity_bytes"], w["maxCapacityBytes"]);
        assert_eq!(g["data"]["internal"], w["isInternal"]);
        assert_eq!(g["instance_type"], "RF2");
    }
    assert_eq!(with.state.calls_per_kind().get("v4/storage_containers"), Some(&1));

    for (sim, options, says) in [
        (sim(false), json!({}), "need the v4 API /api/clustermgmt/v4.0/config/storage-containers"),
        (sim(true), json!({"api_version": "v3"}), "have no v3 API (option api_version=v3)"),
    ] {
        let (r, records) = collect(&sim, options);
        assert_eq!(r.errors, 1);
        assert!(containers(&records).is_empty());
        let err = records.iter().find(|r| r.is_error()).unwrap();
        assert!(err.message.as_deref().unwrap().contains(says), "{err:?}");
        assert!(!sim.state.calls_per_kind().contains_key("storage_containers"), "no v3 call for them");
    }
}

/// VM disks as their own resources: from the VM list (no extra call), the
/// same records through v3 and v4; asked for alone, the VMs themselves are
/// not emitted.
#[test]
fn vm_disks_come_from_the_vm_list_through_v3_and_v4() {
    let (rt, plugin) = host();
    let collect = |sim: &Simulator, options: Value, kinds: Value| {
        let ctx = cf_tests::sim_context(&sim).options(options).build().unwrap();
        let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": kinds})));
        assert_eq!(r.expect("collect").errors, 0);
        records
    };
    let of_type = |records: &[Record], ty: &str| -> Vec<Value> {
        records.iter().filter(|r| r.resource().get("cloud_service_type") == Some(&json!(ty))).map(|r| r.to_json()["resource"].clone()).collect()
    };
    let sim = sim(true);
    let want: usize = sim.state.estate().vms.iter().map(|v| v.pointer("/status/resources/disk_list").and_then(Value::as_array).map_or(0, Vec::len)).sum();
    let v4 = collect(&sim, json!({"api_version": "v4"}), json!(["vms", "vm_disks"]));
    let calls = sim.state.calls_per_kind();
    assert_eq!(calls.get("v4/vms"), Some(&3), "one VM list for both: {calls:?}");
    let v3 = collect(&sim, json!({"api_version": "v3"}), json!(["vms", "vm_disks"]));
    let (d3, d4) = (of_type(&v3, "Disk"), of_type(&v4, "Disk"));
    assert_eq!((d3.len(), d4.len()), (want, want));
    assert_eq!(of_type(&v3, "VirtualMachine").len(), 230);
    let by_id = |d: &[Value]| -> BTreeMap<String, Value> { d.iter().map(|x| (x["reference"]["resource_id"].as_str().unwrap().to_string(), x.clone())).collect() };
    assert_eq!(by_id(&d3), by_id(&d4), "the same disks through v3 and v4");
    let disk = &d3[0];
    let vm = of_type(&v3, "VirtualMachine").into_iter().find(|v| v["reference"]["resource_id"] == disk["data"]["vm"]["uuid"]).expect("its VM");
    assert_eq!(disk["region_code"], vm["region_code"]);
    assert!(disk["data"]["storage_container_uuid"].is_string(), "{disk}");
    let types: Vec<Value> = v3.iter().filter(|r| r.resource_type.as_str() == "inventory.CloudServiceType").map(|r| r.resource()["name"].clone()).collect();
    assert!(types.contains(&json!("Disk")), "the Disk type comes with its resources: {types:?}");

    // Disks alone: the VM list is read, the VMs are not emitted.
    let only = collect(&sim, json!({}), json!(["vm_disks"]));
    assert_eq!((of_type(&only, "Disk").len(), of_type(&only, "VirtualMachine").len()), (want, 0));
}

/// Without the v3 volume group list (or with `api_version=v4`), volume
/// groups come through v4 with their disks and attachments read per volume
/// group, and normalize to the v3 records apart from what v4 does not
/// return (categories, creation time, attached VMs' names).
#[test]
fn volume_groups_come_through_v4_when_v3_is_gone() {
    let estate = EstateConfig { vms: 230, ..EstateConfig::default() };
    let without_v3 = block_on(Simulator::start(SimConfig { estate: estate.clone(), v4: true, v3_absent: vec!["volume_groups".into()], ..SimConfig::default() }))
        .expect("simulator starts");
    let with_v3 = sim(true);
    let task = json!({"resource_kinds": ["volume_groups"]});
    let vgs = |sim: &Simulator, options: Value| -> BTreeMap<String, Value> {
        let (rt, plugin) = host();
        let ctx = cf_tests::sim_context(&sim).options(options).build().unwrap();
        let (r, records) = block_on(collect_all(rt, plugin, &ctx, &task));
        assert_eq!(r.expect("collect").errors, 0, "{records:?}");
        records
            .iter()
            .filter(|r| r.resource().get("cloud_service_type") == Some(&json!("VolumeGroup")))
            .map(|r| {
                let mut v = r.to_json()["resource"].clone();
                // What v4 does not return.
                for k in ["categories", "created_at"] {
                    v["data"].as_object_mut().unwrap().remove(k);
                }
                v.as_object_mut().unwrap().remove("launched_at");
                v["tags"] = json!({});
                // Two simulators, two ports.
                let link = v["reference"]["external_link"].as_str().unwrap_or_default().replace(&sim.url(), "");
                v["reference"]["external_link"] = json!(link);
                for a in v["data"]["attached_vms"].as_array_mut().unwrap() {
                    a["name"] = Value::Null;
                }
                for a in v["data"]["attachments"].as_array_mut().unwrap() {
                    if a["vm"].is_object() {
                        a["vm"]["name"] = Value::Null;
                    }
                }
                (v["reference"]["resource_id"].as_str().unwrap().to_string(), v)
            })
            .collect()
    };
    let want = vgs(&with_v3, json!({}));
    assert_eq!(want.len(), estate.clusters * estate.volume_groups_per_cluster);
    let got = vgs(&without_v3, json!({}));
    assert_eq!(got, want, "the same volume groups through v4");
    let calls = without_v3.state.calls_per_kind();
    assert!(!calls.contains_key("volume_groups"), "the v3 probe's 404 is not a list page: {calls:?}");
    assert_eq!(calls.get("v4/volume_groups"), Some(&1));
    assert_eq!(calls.get("v4/volume_groups/disks"), Some(&(want.len() as u64)), "one call per volume group and part");
    assert_eq!(calls.get("v4/volume_groups/external-iscsi-attachments"), Some(&(want.len() as u64)));
    // A volume group whose disks cannot be read is an error resource, not a
    // volume group without disks; the others are kept.
    without_v3.set_faults(Faults { pages: vec![PageFault { kind: "volume_groups/disks".into(), offset: 0, status: 500, times: Some(1) }], ..Faults::default() });
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(&without_v3).options(json!({"max_retries": 0})).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &task));
    assert_eq!(r.expect("collect").errors, 1);
    let err = records.iter().find(|r| r.is_error()).unwrap();
    assert!(err.message.as_deref().unwrap().contains("its disks were not read"), "{err:?}");
    assert_eq!(records.iter().filter(|r| r.resource().get("cloud_service_type") == Some(&json!("VolumeGroup")) && !r.is_error()).count(), want.len() - 1);

    // Forcing v3 where the v3 list is gone: an error resource, no v4 call.
    let before = without_v3.state.calls_per_kind();
    let ctx = cf_tests::sim_context(&without_v3).options(json!({"api_version": "v3", "max_retries": 0})).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &task));
    assert_eq!(r.expect("collect").errors, 1);
    assert!(records.iter().find(|r| r.is_error()).unwrap().message.as_deref().unwrap().contains("HTTP 404"));
    assert_eq!(without_v3.state.calls_per_kind().get("v4/volume_groups"), before.get("v4/volume_groups"), "no v4 call");

    // Forcing v4 on a Prism that has both: no v3 call at all.
    let forced = vgs(&with_v3, json!({"api_version": "v4"}));
    assert_eq!(forced, want);
    assert_eq!(with_v3.state.calls_per_kind().get("volume_groups"), Some(&2), "only the first run's probe and page");
}

/// A Prism Central serving v4.1 (and v4.0) is read at v4.1, every
/// namespace, found newest first: each namespace's first list asks every
/// revision at once, so v4.0 answers that one first page (not used), and
/// nothing else.
#[test]
fn the_newest_revision_served_is_used() {
    let estate = EstateConfig { vms: 30, ..EstateConfig::default() };
    let sim = block_on(Simulator::start(SimConfig { estate, v4: true, v4_revisions: vec!["v4.0".into(), "v4.1".into()], ..SimConfig::default() }))
        .expect("simulator starts");
    let (r, records) = run(&sim, json!({}));
    assert_eq!(r.expect("collect").errors, 0);
    assert_eq!(records.iter().filter(|r| r.resource().get("cloud_service_type") == Some(&json!("VirtualMachine"))).count(), 30);
    let revisions = sim.state.calls_per_revision();
    // clustermgmt (clusters), prism (categories), networking (subnets), vmm (VMs).
    assert!(revisions.contains_key("v4.1") && revisions.get("v4.0") == Some(&4), "v4.1, and v4.0 only as the probes: {revisions:?}");
}

/// Prism's refusals, in each API's own error shape, name the list, the
/// request, the status and the server's message, mapped to the right
/// code: a v3 422 on the cluster list fails the run as invalid argument;
/// a v4 service's 404 on the VM list is an error resource (no silent fall
/// back to v3); a v4 list the gateway does not serve is asked for once and
/// read through v3.
#[test]
fn prism_refusals_are_named_and_mapped() {
    let v3 = sim(false);
    v3.set_faults(Faults { pages: vec![PageFault { kind: "clusters".into(), offset: 0, status: 422, times: None }], ..Faults::default() });
    let (r, _) = run(&v3, json!({"max_retries": 0}));
    let e = r.expect_err("the cluster list is refused");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(
        e.message().starts_with("clusters list failed: POST /api/nutanix/v3/clusters/list: HTTP 422: INJECTED_REFUSAL: Injected fault")
            && e.message().contains("(details: "),
        "{e}"
    );

    let v4 = sim(true);
    v4.set_faults(Faults {
        pages: vec![PageFault { kind: "vms".into(), offset: 0, status: 404, times: None }],
        v4_absent: vec!["hosts".into()],
        ..Faults::default()
    });
    let (r, records) = run(&v4, json!({"max_retries": 0}));
    assert_eq!(r.expect("collect").errors, 1);
    let err = records.iter().find(|r| r.is_error()).unwrap().message.clone().unwrap();
    assert!(err.starts_with("vms list failed: GET /api/vmm/v4.0/ahv/config/vms: HTTP 404: INJECTED_REFUSAL: Injected fault"), "{err}");
    let calls = v4.state.calls_per_kind();
    assert!(!calls.contains_key("vms"), "no v3 VM list after a service's 404: {calls:?}");
    assert_eq!(calls.get("v4/hosts?absent"), Some(&1), "the hosts list the gateway lacks is asked for once: {calls:?}");
    assert_eq!(calls.get("hosts"), Some(&1), "and read through v3: {calls:?}");
    assert_eq!(records.iter().filter(|r| !r.is_error() && r.resource().get("cloud_service_type") == Some(&json!("Host"))).count(), 12);
}

/// No list is read twice in a run: every v4 list of a full collection
/// (all kinds) takes exactly the pages it needs, and the VM list (three
/// pages: the first alone, then two together) one 1-entity read with
/// them that checks the list did not shift.
#[test]
fn no_list_is_read_twice() {
    let sim = sim(true);
    let kinds = json!(["clusters", "hosts", "vms", "subnets", "images", "categories", "storage_containers", "vm_disks"]);
    let (r, _) = run(&sim, json!({"resource_kinds": kinds}));
    assert_eq!(r.expect("collect").errors, 0);
    let calls = sim.state.calls_per_kind();
    let want: BTreeMap<String, u64> = [("v4/clusters", 1), ("v4/hosts", 1), ("v4/vms", 3), ("v4/vms?probe", 1), ("v4/subnets", 1), ("v4/images", 1), ("v4/categories", 1), ("v4/storage_containers", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(calls, want);
}
