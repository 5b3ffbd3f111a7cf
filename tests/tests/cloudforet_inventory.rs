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
    let sim = block_on(Simulator::start(SimConfig { estate: EstateConfig { vms: 12, clusters: 2, ..EstateConfig::default() }, v4: true, ..SimConfig::default() }))
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
