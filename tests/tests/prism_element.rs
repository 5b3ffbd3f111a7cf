//! A Prism Element managed without Prism Central, against the simulator's
//! Prism Element mode (`SimConfig::prism_element`: the v2.0 API, no v4, a
//! v3 cluster list of the cluster alone), collected end to end through the
//! host with no option naming the API: the guest sees no Prism Central in
//! the cluster list, asks the v2.0 cluster, and reads clusters, hosts, VMs
//! (with their disks), storage containers, subnets (AHV networks) and
//! images through v2.0, one list call per page, into the same types, keys
//! and match rules as from a Prism Central of the same estate; kinds a
//! Prism Element does not serve are error resources, with no call. A
//! Prism Central costs no v2.0 call.

use cf_host::record::Record;
use cf_tests::kinds::{assert_one_call_per_page, collect_default, of_type, pages};
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, PageFault, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const VMS: usize = 230;

/// One cluster; subnets and images enough for two pages each.
fn estate() -> EstateConfig {
    EstateConfig { vms: VMS, clusters: 1, subnets_per_cluster: 120, images: 250, ..EstateConfig::default() }
}

fn sim(prism_element: bool) -> Simulator {
    block_on(Simulator::start(SimConfig { estate: estate(), v4: true, prism_element, ..SimConfig::default() })).expect("simulator starts")
}

fn collect(sim: &Simulator, kinds: &[&str]) -> (u64, Vec<Record>) {
    collect_with(sim, json!({"page_size": 100}), kinds)
}

fn collect_with(sim: &Simulator, options: Value, kinds: &[&str]) -> (u64, Vec<Record>) {
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(sim).options(options).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": kinds})));
    (r.expect("collect").errors, records)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// The match rules of the record of `ty` with `id`.
fn match_rules(records: &[Record], ty: &str, id: &str) -> Value {
    records
        .iter()
        .map(Record::to_json)
        .find(|r| r["resource"]["cloud_service_type"] == ty && r["resource"]["reference"]["resource_id"] == id)
        .map(|r| r["match_rules"].clone())
        .unwrap_or(Value::Null)
}

const KINDS: [&str; 7] = ["clusters", "hosts", "vms", "vm_disks", "storage_containers", "subnets", "images"];

#[test]
fn a_prism_element_is_collected_through_v2_into_the_records_of_a_prism_central() {
    let pe = sim(true);
    let (errors, records) = collect(&pe, &KINDS);
    let pe_uuid = prism_sim::v2::cluster_uuid(&pe.state.estate());

    // Every kind collected: no error resource.
    let messages: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    assert_eq!(errors, 0, "{messages:?}");

    // Every call, exactly: Aplos's v3 cluster list (no Prism Central in
    // it), the v2.0 cluster, one call per page of 100 (a one-entity check
    // per window of pages), no Prism Central subnet or image list.
    let calls = pe.state.calls_per_kind();
    let entities = |list: &str| prism_sim::v2::entities(&pe.state.estate(), list).len();
    let (networks, images) = (entities("networks"), entities("images"));
    assert_eq!((entities("vms"), networks), (VMS, 120));
    assert!(images > 100 && images < 250, "the images on the Prism Element's cluster: {images}");
    for (list, n) in [("v2/vms", VMS), ("v2/networks", networks), ("v2/images", images)] {
        assert_one_call_per_page(&calls, list, n);
    }
    let want: BTreeMap<String, u64> = [
        ("clusters", 1),
        ("v2/cluster", 1),
        ("v2/hosts", 1),
        ("v2/vms", pages(VMS)),
        ("v2/vms?probe", 1),
        ("v2/storage_containers", 1),
        ("v2/networks", 2),
        ("v2/networks?probe", 1),
        ("v2/images", 2),
        ("v2/images?probe", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(calls, want);

    // The same estate from a Prism Central (v4): the same types, ids,
    // keys, match rules and values where v2.0 has the data (of the images,
    // those on the Prism Element's cluster: the others are Prism Central's
    // alone).
    let pc = sim(false);
    let (pc_errors, pc_records) = collect(&pc, &KINDS);
    assert_eq!(pc_errors, 0);
    assert!(!pc.state.calls_per_kind().keys().any(|k| k.starts_with("v2/")), "a Prism Central costs no v2.0 call");
    let on_pe = |r: &Value| r["data"]["clusters"].as_array().is_some_and(|l| l.iter().any(|c| c["uuid"] == json!(pe_uuid)));
    for ty in ["Cluster", "Host", "VirtualMachine", "Disk", "StorageContainer", "Subnet", "Image"] {
        let (a, mut b) = (of_type(&records, ty), of_type(&pc_records, ty));
        if ty == "Image" {
            assert!(b.values().any(|r| !on_pe(r)), "the Prism Central has images on no cluster");
            b.retain(|_, r| on_pe(r));
        }
        assert!(!a.is_empty(), "{ty}");
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{ty}: the same resources");
        for (id, r) in &a {
            let p = &b[id];
            assert_eq!(keys(&r["data"]), keys(&p["data"]), "{ty} {id}: the same data keys");
            assert_eq!(match_rules(&records, ty, id), match_rules(&pc_records, ty, id), "{ty} {id}");
            for k in ["name", "region_code", "instance_type", "instance_size", "ip_addresses"] {
                assert_eq!(r[k], p[k], "{ty} {id}: {k}");
            }
            assert_eq!(r["account"], json!(pe_uuid), "the account is the Prism Element");
        }
    }
    let (vms, pc_vms) = (of_type(&records, "VirtualMachine"), of_type(&pc_records, "VirtualMachine"));
    assert_eq!(vms.len(), VMS);
    for (id, r) in &vms {
        let (d, p) = (&r["data"], &pc_vms[id]["data"]);
        for k in ["vcpus", "memory_mib", "power_state", "disk_total_bytes", "boot_type", "cluster", "compute", "hardware"] {
            assert_eq!(d[k], p[k], "vm {id}: {k}");
        }
        let sizes = |d: &Value| d["disks"].as_array().unwrap().iter().map(|x| (x["uuid"].clone(), x["size_bytes"].clone(), x["device_type"].clone())).collect::<Vec<_>>();
        assert_eq!(sizes(d), sizes(p), "vm {id}: disks");
        assert_eq!(d["host"]["uuid"], p["host"]["uuid"], "vm {id}: host");
        // What v2.0 does not say stays unsaid.
        for k in ["created_at", "categories", "project", "guest_tools_installed"] {
            assert!(d[k].is_null(), "vm {id}: {k} = {}", d[k]);
        }
    }
    let (subnets, pc_subnets) = (of_type(&records, "Subnet"), of_type(&pc_records, "Subnet"));
    assert_eq!(subnets.len(), 120);
    assert!(subnets.values().any(|r| r["data"]["network"].is_null()) && subnets.values().any(|r| r["data"]["network"].is_string()), "managed and unmanaged");
    for (id, r) in &subnets {
        let (d, p) = (&r["data"], &pc_subnets[id]["data"]);
        for k in ["subnet_type", "vlan_id", "vswitch_name", "network", "gateway", "ip_pools", "cluster"] {
            assert_eq!(d[k], p[k], "subnet {id}: {k}");
        }
        for k in ["state", "created_at", "updated_at"] {
            assert!(d[k].is_null(), "subnet {id}: {k} = {}", d[k]);
        }
    }
    let (images, pc_images) = (of_type(&records, "Image"), of_type(&pc_records, "Image"));
    for (id, r) in &images {
        let (d, p) = (&r["data"], &pc_images[id]["data"]);
        for k in ["image_type", "size_bytes", "description", "clusters", "created_at"] {
            assert_eq!(d[k], p[k], "image {id}: {k}");
        }
        assert_eq!(r["launched_at"], pc_images[id]["launched_at"], "image {id}");
        assert!(d["updated_at"].is_string(), "v2.0 names an image's update time");
        for k in ["source_uri", "architecture", "state", "categories"] {
            assert!(d[k].is_null(), "image {id}: {k} = {}", d[k]);
        }
    }
    let clusters = of_type(&records, "Cluster");
    assert_eq!(clusters.keys().collect::<Vec<_>>(), [&pe_uuid]);
    let c = &clusters[&pe_uuid]["data"];
    for k in ["aos_version", "num_nodes", "hypervisor_types", "external_ip", "redundancy_factor", "timezone"] {
        assert_eq!(c[k], of_type(&pc_records, "Cluster")[&pe_uuid]["data"][k], "cluster: {k}");
    }
    let regions: Vec<String> = records.iter().filter(|r| r.resource_type == cf_host::record::ResourceType::Region).map(|r| r.to_json()["resource"]["region_code"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(regions, [pe_uuid.clone()]);
}

/// With no option at all (the default kinds), a Prism Element is detected
/// and read through v2.0, every default kind with it: no error resource.
#[test]
fn the_default_kinds_from_a_prism_element_need_no_option() {
    let pe = sim(true);
    let (records, calls) = collect_default(&pe);
    assert_eq!(of_type(&records, "VirtualMachine").len(), VMS);
    assert_eq!(of_type(&records, "Host").len(), EstateConfig::default().hosts_per_cluster);
    assert_eq!(of_type(&records, "Subnet").len(), 120);
    assert_eq!(of_type(&records, "Image").len(), prism_sim::v2::entities(&pe.state.estate(), "images").len());
    let errors: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(calls.get("v2/cluster"), Some(&1));
    assert_eq!((calls.get("v2/networks"), calls.get("v2/images")), (Some(&1), Some(&1)), "one page each (page size 500): {calls:?}");
    assert!(!calls.keys().any(|k| k.starts_with("v4/") || k == "vms" || k == "hosts"), "nothing but v2.0 after the cluster list: {calls:?}");
}

/// A v2.0 page that fails once is asked again and nothing is lost; one
/// that keeps failing is an error resource naming the list, the request,
/// the status and what the Prism Element said, and the rest is kept.
#[test]
fn a_failing_v2_page_is_retried_and_a_lost_one_is_an_error_resource() {
    let pe = sim(true);
    pe.set_faults(Faults {
        pages: vec![
            PageFault { kind: "vms".into(), offset: 100, status: 503, times: Some(1) },
            PageFault { kind: "hosts".into(), offset: 0, status: 500, times: None },
        ],
        ..Faults::default()
    });
    let (errors, records) = collect_with(&pe, json!({"page_size": 100, "max_retries": 1}), &["hosts", "vms"]);
    assert_eq!(of_type(&records, "VirtualMachine").len(), VMS, "the failed page was read again");
    assert!(of_type(&records, "Host").is_empty());
    let messages: Vec<String> = records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect();
    assert_eq!(errors, 1, "{messages:?}");
    assert!(
        messages[0].starts_with("hosts list failed: GET /PrismGateway/services/rest/v2.0/hosts/: HTTP 500: Injected fault"),
        "{messages:?}"
    );
    let calls = pe.state.calls_per_kind();
    assert_eq!((calls.get("v2/hosts"), calls.get("v2/vms")), (Some(&2), Some(&4)), "{calls:?}");
}
