//! CloudForet's own inventory service as the oracle: spaceone-inventory's
//! real collector, job and collecting code (2.0.dev247 and 1.12.2, each in
//! its own venv from PyPI, with mongomock for MongoDB; see
//! tests/python/inventory/) drives `cf-host serve` (in process) with the
//! real guest against the simulator.
//!
//! What CloudForet stores is compared with what the plugin emits for the
//! same collection, type by type; CloudForet's own errors, retries and
//! deletions are what the assertions read.

use cf_tests::{block_on, guest_wasm};
use prism_sim::estate::EstateConfig;
use prism_sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;

struct Fixture {
    sim: Simulator,
    served: cf_tests::Served,
}

fn fixture(cloudforet: cf_host::grpc::convert::CloudForet) -> Fixture {
    let sim = block_on(Simulator::start(SimConfig { estate: EstateConfig { vms: 12, clusters: 2, gpus: true, ..EstateConfig::default() }, v4: true, ..SimConfig::default() }))
        .expect("simulator");
    let served = block_on(cf_tests::serve({
        let mut o = cf_host::serve::ServeOptions { plugin: Some(guest_wasm()), ..Default::default() };
        // The simulator listens on loopback.
        o.runtime.tenancy.default.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        o.grpc.cloudforet = cloudforet;
        o
    }));
    Fixture { sim, served }
}

impl Fixture {
    fn secret(&self) -> Value {
        json!({"host": self.sim.url(), "username": "admin", "password": "nutanix/4u"})
    }

    /// run_fixture.py with `args`: its JSON.
    fn run(&self, cf: &str, args: &[&str]) -> Value {
        let (venv, requirements) = match cf {
            "2" => ("cf-inventory-2x", "inventory-2x.txt"),
            _ => ("cf-inventory-112", "inventory-112.txt"),
        };
        let py = cf_tests::python_venv(venv, requirements);
        let endpoint = format!("grpc://{}", self.served.grpc.trim_start_matches("http://"));
        let out = std::process::Command::new(py)
            .arg(cf_tests::python_dir().join("inventory/run_fixture.py"))
            .args(["--cf", cf, "--plugin-endpoint", &endpoint, "--secret", &self.secret().to_string()])
            .args(args)
            .output()
            .expect("run_fixture.py runs");
        assert!(out.status.success(), "run_fixture.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
    }

    /// What the plugin emits for one collection with `options`, by type
    /// (`Group/Type` for cloud services), collected here through the host
    /// library: what CloudForet must end up storing.
    fn emitted(&self, options: Value) -> BTreeMap<String, u64> {
        let (rt, plugin) = cf_tests::host();
        let ctx = rt.context("oracle").endpoint(self.sim.url()).secret(self.secret()).options(options).build().unwrap();
        let mut by = BTreeMap::new();
        // One collection per task, as CloudForet runs them.
        for task in block_on(rt.get_tasks(plugin, &ctx)).expect("tasks") {
            let (r, records) = block_on(cf_tests::collect_all(rt, plugin, &ctx, &task));
            r.expect("collection");
            for r in records {
                *by.entry(r.label()).or_default() += 1;
            }
        }
        by
    }
}

fn active(v: &Value) -> u64 {
    v.get("ACTIVE").and_then(Value::as_u64).or_else(|| v.as_u64()).unwrap_or(0)
}

/// Every stored count equals what the plugin emitted, no duplicates.
fn assert_stored_as_emitted(out: &Value, emitted: &BTreeMap<String, u64>) {
    let counts = &out["counts"];
    let mut regions = 0;
    let mut types = 0;
    for (label, n) in emitted {
        match label.as_str() {
            "Region" => regions = *n,
            "CloudServiceType" => types += *n,
            "Namespace" => assert_eq!(active(&counts["by_resource_type"]["inventory.Namespace"]), *n, "Namespaces: {counts}"),
            "Metric" => assert_eq!(active(&counts["by_resource_type"]["inventory.Metric"]), *n, "Metrics: {counts}"),
            cs => assert_eq!(active(&counts["cloud_services_by_type"][cs]), *n, "{cs}: {counts}"),
        }
    }
    // Each task re-sends the regions its services name: one stored each.
    assert!(regions > 0 && active(&counts["by_resource_type"]["inventory.Region"]) > 0, "{counts}");
    assert_eq!(active(&counts["by_resource_type"]["inventory.CloudServiceType"]), types, "{counts}");
    assert_eq!(counts["duplicates"], json!([]), "{counts}");
    assert_eq!(out["exceptions"], json!([]), "{}", out["exceptions"]);
}

fn errors_of(run: &Value) -> Vec<String> {
    run["job_tasks"].as_array().into_iter().flatten().flat_map(|t| t["errors"].as_array().cloned().unwrap_or_default()).map(|e| format!("{}: {}", e["error_code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""))).collect()
}

/// CloudForet 2.x: two runs (create, then update; no duplicates, no
/// ERROR_TOO_MANY_MATCH), every record type stored, Namespaces and Metrics
/// included, a VM's fields, Job SUCCESS.
#[test]
fn cloudforet_2x_stores_what_the_plugin_collects() {
    let f = fixture(Default::default());
    let options = json!({"usage": true});
    let out = f.run("2", &["--runs", "2", "--options", &options.to_string()]);
    assert_eq!((out["create"]["ok"].as_bool(), out["verify"]["ok"].as_bool()), (Some(true), Some(true)), "{}", out["verify"]);
    for (i, run) in out["runs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(run["job"]["status"], "SUCCESS", "run {i}: {:?}", errors_of(run));
        assert!(errors_of(run).is_empty(), "run {i}: {:?}", errors_of(run));
        assert_eq!(run["task_exceptions"], json!([]));
    }
    let second = &out["runs"][1]["job_tasks"];
    assert_eq!(second.as_array().unwrap().iter().map(|t| t["created_count"].as_u64().unwrap_or(0)).sum::<u64>(), 0, "the second run updates: {second}");
    assert_stored_as_emitted(&out, &f.emitted(options));
    // Metrics carry CloudForet's string unit and a version.
    for m in out["metrics"].as_array().unwrap() {
        assert!(m["unit"].is_string() && m["version"].is_string(), "{m}");
    }
    // The 2.x inventory sends `token: NO_TOKEN`, never a tenant.
    assert!(out["plugin_metadata"].as_array().unwrap().iter().all(|c| c["metadata"].get("x_domain_id").is_none()), "{}", out["plugin_metadata"]);
}

/// CloudForet 1.12 reads the reflection, stores every cloud service and
/// type (with its layout) through the real 1.12 code.
#[test]
fn cloudforet_1_12_stores_what_the_plugin_collects() {
    let f = fixture(Default::default());
    let out = f.run("1.12", &["--runs", "2"]);
    assert_eq!(out["reflection_workaround_hits"], json!([]), "the real 1.12 reflection parser read the host");
    assert_eq!((out["create"]["ok"].as_bool(), out["verify"]["ok"].as_bool()), (Some(true), Some(true)), "{}", out["create"]);
    for (i, run) in out["runs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(run["job"]["status"], "SUCCESS", "run {i}: {:?}", errors_of(run));
        assert!(errors_of(run).is_empty(), "run {i}: {:?}", errors_of(run));
    }
    assert_stored_as_emitted(&out, &f.emitted(json!({})));
    for t in out["cloud_service_types"].as_array().unwrap() {
        assert_eq!(t["metadata_is_empty"], false, "the layout arrived: {t}");
    }
}

/// An ErrorResource makes the job FAILURE and nothing is deleted; a wrong
/// password is ERROR_AUTHENTICATE_FAILURE; an unreachable Prism is one
/// plugin call, not three (both releases).
#[test]
fn cloudforet_failures_delete_nothing_and_are_not_retried() {
    let f = fixture(Default::default());
    for cf in ["2", "1.12"] {
        // storage_containers have no v3 list: an ErrorResource.
        let error_options = json!({"resource_kinds": ["clusters", "hosts", "vms", "subnets", "storage_containers"], "api_version": "v3"});
        let out = f.run(cf, &["--scenario", "error-resource", "--runs", "2", "--error-options", &error_options.to_string()]);
        let run = &out["runs"][1];
        assert_eq!(run["job"]["status"], "FAILURE", "{cf}: {:?}", errors_of(run));
        assert!(errors_of(run).iter().any(|e| e.starts_with("ERROR_PLUGIN")), "{cf}: {:?}", errors_of(run));
        assert_eq!(run["deleted_since_previous_run"], 0, "{cf}");
        assert!(active(&run["counts"]["cloud_services_by_type"]["Storage/Image"]) > 0, "{cf}: images kept");

        let out = f.run(cf, &["--scenario", "wrong-password", "--runs", "1"]);
        assert_eq!(out["verify"]["error"]["error_code"], "ERROR_AUTHENTICATE_FAILURE", "{cf}: {}", out["verify"]);
        assert_eq!(out["runs"][0]["job"]["status"], "FAILURE", "{cf}");
    }
    // Prism down: every unary call is made once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = json!({"host": format!("http://{closed}"), "username": "admin", "password": "nutanix/4u"});
    for cf in ["2", "1.12"] {
        let out = f.run(cf, &["--runs", "1", "--per-run", &json!([{"secret": down}]).to_string(), "--secret", &down.to_string()]);
        let calls = out["verify"]["plugin_calls"].as_array().unwrap();
        assert!(!calls.is_empty() && calls.iter().all(|c| c["attempts"] == 1), "{cf}: {calls:?}");
        assert!(out["verify"]["error"]["message"].as_str().is_some_and(|m| m.contains("cannot reach")), "{cf}: the message survives: {}", out["verify"]);
    }
}

/// What the simulator's estate holds, read from its own entities (not
/// through the guest): servers (VMs and hosts) and the bytes the storage
/// kinds hold (images, the VMs' disks other than CD-ROMs, volume groups'
/// disks).
fn estate_totals(f: &Fixture) -> (u64, u64) {
    let e = f.sim.state.estate();
    let servers = (e.vms.len() + e.hosts.len()) as u64;
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let images: u64 = e.images.iter().map(|i| n(i, "/status/resources/size_bytes")).sum();
    let vm_disks: u64 = e
        .vms
        .iter()
        .flat_map(|v| v["status"]["resources"]["disk_list"].as_array().cloned().unwrap_or_default())
        .filter(|d| d.pointer("/device_properties/device_type").and_then(Value::as_str) != Some("CDROM"))
        .map(|d| n(&d, "/disk_size_bytes"))
        .sum();
    let vg_disks: u64 = e
        .volume_groups
        .iter()
        .flat_map(|g| g["status"]["resources"]["disk_list"].as_array().cloned().unwrap_or_default())
        .map(|d| n(&d, "/disk_size_mib") * 1024 * 1024)
        .sum();
    assert!(images > 0 && vm_disks > 0 && vg_disks > 0, "the estate has every storage kind");
    (servers, images + vm_disks + vg_disks)
}

/// The sum of `value` over a managed metric's rows, as CloudForet's own
/// query (`MetricManager.analyze_resource`) computed it on the fixture's
/// database, and over the MetricData its job stored.
fn managed_metric(out: &Value, id: &str) -> (f64, f64) {
    let a = &out["metric_queries"]["analyze"][id];
    assert_eq!(a["ok"], true, "{id}: {a}");
    let analyzed = a["results"].as_array().unwrap_or_else(|| panic!("{id}: {a}")).iter().map(|r| r["value"].as_f64().unwrap_or(0.0)).sum();
    let stored = out["metric_queries"]["metric_data"][id]["sum"].as_f64().unwrap_or(-1.0);
    (analyzed, stored)
}

/// A tag of a stored record, whichever form CloudForet stored it in
/// (a map, or a list of `{key, value}`).
fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.get(key).or_else(|| tags.as_array()?.iter().find(|t| t["key"] == key).map(|t| &t["value"]))
}

/// The console's rules, checked on what CloudForet 2.x stored, and
/// CloudForet's own managed metrics (the home page's Server Count and
/// Storage Size, `managed_resource/metric/*.yaml`) evaluated on it: they
/// equal the simulator's servers and storage bytes.
#[test]
fn cloudforet_console_rules_and_managed_metrics() {
    let f = fixture(Default::default());
    let kinds = ["clusters", "hosts", "vms", "subnets", "images", "volume_groups", "projects", "categories", "storage_containers", "vm_disks",
                 "recovery_points", "protection_policies", "recovery_plans", "vm_templates", "alerts", "lcm_entities", "guest_tools", "gpus",
                 "vpcs", "floating_ips", "route_tables", "virtual_switches", "security_policies", "address_groups", "service_groups"];
    let options = json!({"resource_kinds": kinds, "region_locations": {"*": {"continent": "europe", "latitude": 47.37, "longitude": 8.54}}});
    let out = f.run("2", &["--runs", "1", "--managed-metrics", "--options", &options.to_string()]);
    let run = &out["runs"][0];
    assert_eq!(run["job"]["status"], "SUCCESS", "{:?}", errors_of(run));
    assert_eq!(out["managed_metrics_install"]["ok"], true, "{}", out["managed_metrics_install"]);
    let emitted = f.emitted(options);
    assert_stored_as_emitted(&out, &emitted);
    assert!(emitted.get("Compute/Gpu").is_some_and(|n| *n > 0), "GPUs emitted (and stored as emitted): {emitted:?}");

    let vocabulary = ["Server", "Compute", "Container", "Database", "Networking", "Storage", "Security", "Analytics", "Application Integration", "Management"];
    let types = out["cloud_service_types"].as_array().unwrap();
    assert_eq!(types.len(), kinds.len(), "{types:?}");
    for t in types {
        let labels: Vec<&str> = t["labels"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(!labels.is_empty() && labels.iter().all(|l| vocabulary.contains(l)), "{t}");
        let icon = tag(&t["tags"], "spaceone:icon").and_then(Value::as_str).unwrap_or_default();
        assert!(icon.starts_with("data:image/svg+xml;base64,"), "every type has its icon: {t}");
        let server = matches!(t["name"].as_str(), Some("VirtualMachine" | "Host"));
        assert_eq!(labels.contains(&"Server"), server, "{t}");
        if server {
            assert_eq!(t["is_primary"], true, "{t}");
        }
    }
    assert!(types.iter().any(|t| t["is_primary"] == true && t["labels"].as_array().unwrap().contains(&json!("Storage"))), "a primary storage type");
    let regions = out["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{regions:?}");
    for r in regions {
        assert_ne!(r["region_code"], r["name"], "coded by the cluster's uuid, named by its name: {r}");
        assert_eq!(tag(&r["tags"], "continent"), Some(&json!("europe")), "{r}");
        assert!(tag(&r["tags"], "latitude").is_some() && tag(&r["tags"], "longitude").is_some(), "{r}");
    }
    for vm in out["cloud_service_samples"]["by_type"]["Compute/VirtualMachine"].as_array().unwrap() {
        let d = &vm["data"];
        assert!(d["hardware"]["core"].as_u64().is_some_and(|c| c > 0) && d["hardware"]["memory"].as_f64().is_some(), "{d}");
        assert!(["RUNNING", "STOPPED"].contains(&d["compute"]["instance_state"].as_str().unwrap_or_default()), "{d}");
        assert!(d["os"].is_object() && d.get("primary_ip_address").is_some() && vm["instance_type"].is_string(), "{vm}");
    }

    let (servers, bytes) = estate_totals(&f);
    let (analyzed, stored) = managed_metric(&out, "metric-managed-server-count");
    assert_eq!((analyzed, stored), (servers as f64, servers as f64), "Server Count = the simulator's VMs and hosts");
    let (analyzed, stored) = managed_metric(&out, "metric-managed-storage-size");
    assert_eq!((analyzed, stored), (bytes as f64, bytes as f64), "Storage Size = the simulator's storage bytes");
}

/// The deletion guard through CloudForet's own inventory (both releases):
/// a run whose VM list comes back cut short without any error (the
/// simulator's `cut_lists`) ends FAILURE and deletes nothing; a run that
/// shrinks within `max_drop` succeeds, and CloudForet deletes the missing
/// VMs on its third successful miss, as it would without the guard.
#[test]
fn cloudforet_deletion_guard_stops_false_deletions_only() {
    for cf in ["2", "1.12"] {
        let f = fixture(Default::default());
        let vms = f.sim.state.estate().vms.len() as u64;
        let faults = format!("{}/_sim/faults", f.sim.url());
        let cut = |n: u64| json!([{"method": "PUT", "url": faults, "body": {"cut_lists": {"vms": n}}}]);
        let plan = json!([
            {"label": "full"},
            {"label": "cut short", "http_before": cut(3)},
            {"label": "shrunk 1", "http_before": cut(vms - 2)},
            {"label": "shrunk 2"},
            {"label": "shrunk 3"},
        ]);
        let out = f.run(cf, &["--per-run", &plan.to_string(), "--options", &json!({"deletion_guard": {"max_drop": 0.5}}).to_string()]);
        let runs = out["runs"].as_array().unwrap();
        let vm_count = |r: &Value| active(&r["counts"]["cloud_services_by_type"]["Compute/VirtualMachine"]);
        assert_eq!(runs[0]["job"]["status"], "SUCCESS", "{cf}: {:?}", errors_of(&runs[0]));
        assert_eq!(vm_count(&runs[0]), vms);

        let short = &runs[1];
        assert_eq!(short["job"]["status"], "FAILURE", "{cf}");
        let errors = errors_of(short);
        assert!(errors.len() == 1 && errors[0].starts_with("ERROR_PLUGIN") && errors[0].contains(&format!("deletion guard: 3 vms listed, {vms} after")), "{cf}: {errors:?}");
        assert_eq!((short["deleted_since_previous_run"].as_u64(), vm_count(short)), (Some(0), vms), "{cf}: nothing deleted");
        let disconnected: u64 = short["job_tasks"].as_array().unwrap().iter().map(|t| t["disconnected_count"].as_u64().unwrap_or(0)).sum();
        assert_eq!(disconnected, 0, "{cf}: no miss counted");

        for (i, r) in runs.iter().enumerate().skip(2) {
            assert_eq!(r["job"]["status"], "SUCCESS", "{cf} run {i}: {:?}", errors_of(r));
        }
        assert_eq!((runs[2]["deleted_since_previous_run"].as_u64(), runs[3]["deleted_since_previous_run"].as_u64()), (Some(0), Some(0)), "{cf}");
        assert_eq!(runs[4]["deleted_since_previous_run"].as_u64(), Some(2), "{cf}: the third successful miss deletes");
        assert_eq!(vm_count(&runs[4]), vms - 2, "{cf}");
    }
}
