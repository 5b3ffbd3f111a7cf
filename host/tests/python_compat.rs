//! `cf-host serve` driven by CloudForet's own Python client code (spaceone-core
//! `SpaceConnector`, spaceone-api `CollectorStub`/`JobStub`), collecting the
//! Prism Central simulator through the real guest component; the output is
//! compared field by field with what CloudForet's Python plugin SDK puts on
//! the wire (`../shared/reference/cloudforet/python_sdk_wire_output.json`,
//! kept in the repository as `guest-nutanix/tests/fixtures/`).
//!
//! Needs the guest built and Python 3 with `venv`; the venv is bootstrapped
//! from PyPI on first use (or `CF_HOST_PYTHON` names one).

mod common;

use common::{cf_client, simulator, Server};
use prism_sim::{Faults, PageFault, SimConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn reference() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-nutanix/tests/fixtures/python_sdk_wire_output.json");
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reference {p}: {e}"));
    serde_json::from_str(&text).expect("reference JSON")
}

fn ok(result: &Value) -> &Value {
    result.get("ok").unwrap_or_else(|| panic!("call failed: {result}"))
}

fn err(result: &Value) -> &Value {
    result.get("error").unwrap_or_else(|| panic!("call should have failed: {result}"))
}

/// Stream items counted by `resource_type` and, for cloud services, type.
fn counts(items: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in items.as_array().expect("items") {
        let mut key = i["resource_type"].as_str().unwrap_or("?").to_string();
        if key == "inventory.CloudService" {
            key = format!("{key}/{}", i["resource"]["cloud_service_type"].as_str().unwrap_or("?"));
        }
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The default estate: 200 VMs, 3 clusters, 12 hosts, 6 subnets, 8 images.
fn expected_full_counts() -> BTreeMap<String, u64> {
    [
        ("inventory.CloudService/VirtualMachine", 200),
        ("inventory.CloudService/Cluster", 3),
        ("inventory.CloudService/Host", 12),
        ("inventory.CloudService/Subnet", 6),
        ("inventory.CloudService/Image", 8),
        ("inventory.CloudServiceType", 5),
        ("inventory.Region", 3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn reflection_lists_the_same_services_as_the_python_sdk() {
    let server = Server::start();
    let out = cf_client(&server.endpoint(), &json!([]));
    let sorted = |v: &Value| -> BTreeMap<String, Vec<String>> {
        v.as_object()
            .expect("api_resources")
            .iter()
            .map(|(k, verbs)| {
                let mut verbs: Vec<String> =
                    verbs.as_array().expect("verbs").iter().map(|s| s.as_str().unwrap_or("").to_string()).collect();
                verbs.sort();
                (k.clone(), verbs)
            })
            .collect()
    };
    assert_eq!(sorted(&out["api_resources"]), sorted(&reference()["api_resources"]));
}

#[test]
fn round_trip_through_space_connector_matches_the_python_sdk_wire_output() {
    let sim = simulator(SimConfig::default());
    let secret = sim.secret();
    let calls = json!([
        {"call": "Collector.init", "params": {"options": {}}},
        {"call": "Collector.verify", "params": {"options": {}, "secret_data": secret}},
        {"call": "Job.get_tasks", "params": {"options": {}, "secret_data": secret}},
        {"call": "Collector.collect", "params": {"options": {}, "secret_data": secret, "task_options": {}}},
    ]);
    let server = Server::start();
    let out = cf_client(&server.endpoint(), &calls);
    let r = &out["results"];
    let reference = reference();

    // init: the SDK's metadata keys, with the guest's own values.
    let meta = &ok(&r[0])["metadata"];
    let ref_meta = &reference["init"]["metadata"];
    for key in ref_meta.as_object().unwrap().keys() {
        assert_eq!(json_type(&meta[key]), json_type(&ref_meta[key]), "init metadata.{key}: {meta}");
    }
    assert_eq!(meta["supported_schedules"], json!(["hours"]));
    assert_eq!(meta["filter_format"], json!([]));
    assert_eq!(meta["options_schema"]["type"], "object");
    assert_eq!(meta["options_schema"]["properties"]["page_size"]["maximum"], json!(500.0));
    for t in ["inventory.CloudService", "inventory.CloudServiceType", "inventory.Region"] {
        assert!(meta["supported_resource_type"].as_array().unwrap().contains(&json!(t)), "{meta}");
    }

    // verify: google.protobuf.Empty.
    assert_eq!(ok(&r[1]), &json!({}));

    // get_tasks: one task per kind.
    let tasks = ok(&r[2])["tasks"].as_array().expect("tasks").clone();
    assert_eq!(tasks.len(), 5, "{tasks:?}");
    for t in &tasks {
        assert_eq!(t["task_options"]["resource_type"], reference["get_tasks"]["tasks"][0]["task_options"]["resource_type"]);
    }

    // collect: exact counts.
    let items = ok(&r[3]);
    assert_eq!(counts(items), expected_full_counts());

    // Field by field against the SDK's output, one item of each resource type.
    for want in reference["collect"].as_array().unwrap() {
        let rt = want["resource_type"].as_str().unwrap();
        if rt == "inventory.ErrorResource" {
            continue; // see error_resource_arrives_as_failure
        }
        let got = items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["resource_type"] == rt
                    && (rt != "inventory.CloudService" || i["resource"]["cloud_service_type"] == "VirtualMachine")
                    && (rt != "inventory.CloudServiceType" || i["resource"]["name"] == "VirtualMachine")
            })
            .unwrap_or_else(|| panic!("no {rt} in the stream"));
        compare_item(got, want);
    }
    // The VM's metadata points the console at its type, exactly as the SDK does.
    let vm = items.as_array().unwrap().iter().find(|i| i["resource"]["cloud_service_type"] == "VirtualMachine").unwrap();
    let want_vm = reference["collect"].as_array().unwrap().iter().find(|i| i["resource_type"] == "inventory.CloudService").unwrap();
    assert_eq!(vm["resource"]["json_metadata__decoded"], want_vm["resource"]["json_metadata__decoded"]);
    // Integers survive as integers inside json_data.
    assert!(vm["resource"]["json_data__decoded"]["memory_mib"].is_u64(), "{}", vm["resource"]["json_data"]);
}

/// `got` has every field the SDK sends, with the same JSON type, the same
/// state and the same match rules.
fn compare_item(got: &Value, want: &Value) {
    let rt = want["resource_type"].as_str().unwrap();
    assert_eq!(got["state"], want["state"], "{rt} state");
    assert_eq!(got.get("message"), want.get("message"), "{rt} message");
    assert_eq!(got["match_rules"], want["match_rules"], "{rt} match_rules");
    let (g, w) = (got["resource"].as_object().unwrap(), want["resource"].as_object().unwrap());
    for (key, wv) in w {
        let gv = g.get(key).unwrap_or_else(|| panic!("{rt}: field {key} missing in {got}"));
        match key.as_str() {
            // Optional in the SDK too: null or a timestamp string.
            "launched_at" => assert!(gv.is_null() || gv.is_string(), "{rt}.{key}: {gv}"),
            _ => assert_eq!(json_type(gv), json_type(wv), "{rt}.{key}: got {gv}, SDK sends {wv}"),
        }
    }
    for key in g.keys() {
        assert!(w.contains_key(key), "{rt}: field {key} is not in the SDK's output");
    }
}

#[test]
fn tasks_split_the_work_and_collect_honours_task_options() {
    let sim = simulator(SimConfig::default());
    let secret = sim.secret();
    let filter = json!({"cloud_service_groups": ["Compute"], "providers": ["nutanix"]});
    let get = json!([{"call": "Job.get_tasks", "via": "stub",
        "params": {"options": {}, "secret_data": secret, "task_filter": filter}}]);
    let server = Server::start();
    let out = cf_client(&server.endpoint(), &get);
    let tasks = ok(&out["results"][0])["tasks"].as_array().expect("tasks").clone();
    // Compute = VirtualMachine and Host.
    assert_eq!(tasks.len(), 2, "{tasks:?}");

    let calls: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({"call": "Collector.collect", "via": "stub",
                "params": {"options": {}, "secret_data": secret, "task_options": t["task_options"]}})
        })
        .collect();
    let out = cf_client(&server.endpoint(), &Value::Array(calls));
    let mut total = BTreeMap::new();
    for r in out["results"].as_array().unwrap() {
        for (k, v) in counts(ok(r)) {
            *total.entry(k).or_insert(0) += v;
        }
    }
    let want: BTreeMap<String, u64> = [
        ("inventory.CloudService/VirtualMachine", 200),
        ("inventory.CloudService/Host", 12),
        ("inventory.CloudServiceType", 2),
        ("inventory.Region", 6), // each task reports the regions it saw
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(total, want);
}

#[test]
fn bad_input_gets_cloudforet_error_codes() {
    let sim = simulator(SimConfig::default());
    let mut wrong_password = sim.secret();
    wrong_password["password"] = json!("not-the-password");
    let mut no_username = sim.secret();
    no_username.as_object_mut().unwrap().remove("username");
    let mut closed_port = sim.secret();
    closed_port["host"] = json!("http://127.0.0.1:9");
    let calls = json!([
        {"call": "Collector.verify", "params": {"options": {}, "secret_data": wrong_password}},
        {"call": "Collector.verify", "via": "stub", "params": {"options": {}, "secret_data": wrong_password}},
        {"call": "Collector.collect", "via": "stub", "params": {"options": {}, "secret_data": wrong_password}},
        {"call": "Collector.verify", "via": "stub", "params": {"options": {}, "secret_data": no_username}},
        {"call": "Collector.init", "via": "stub", "params": {"options": {"page_size": 0}}},
        {"call": "Collector.verify", "via": "stub", "params": {"options": {"max_retries": 0}, "secret_data": closed_port}},
        {"call": "Collector.verify", "via": "stub", "params": {"options": {"verify_ssl": "no"}, "secret_data": sim.secret()}},
    ]);
    let server = Server::start();
    let out = cf_client(&server.endpoint(), &calls);
    let r = out["results"].as_array().unwrap();

    let e = err(&r[0]);
    assert_eq!(e["error_code"], "ERROR_AUTHENTICATE_FAILURE", "{e}");
    let stub_error = |i: usize| {
        let e = err(&r[i]);
        (e["status_code"].as_str().unwrap().to_string(), e["details"].as_str().unwrap().to_string())
    };
    for i in [1, 2] {
        let (code, details) = stub_error(i);
        assert_eq!(code, "UNAUTHENTICATED", "{details}");
        assert!(details.starts_with("ERROR_AUTHENTICATE_FAILURE: "), "{details}");
        assert!(!details.contains("not-the-password"), "the secret leaked: {details}");
    }
    let (code, details) = stub_error(3);
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(details.starts_with("ERROR_REQUIRED_PARAMETER: ") && details.contains("username"), "{details}");
    let (code, details) = stub_error(4);
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(details.starts_with("ERROR_INVALID_ARGUMENT: ") && details.contains("page_size"), "{details}");
    let (code, details) = stub_error(5);
    assert_eq!(code, "UNAVAILABLE", "{details}");
    // Not ERROR_GRPC_CONNECTION, which CloudForet's client retries.
    assert!(details.starts_with("ERROR_UNAVAILABLE: "), "{details}");
    let (code, details) = stub_error(6);
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(details.contains("verify_ssl"), "{details}");
}

#[test]
fn error_resource_arrives_as_failure() {
    let sim = simulator(SimConfig::default());
    // The second VM page fails every time: it becomes an ErrorResource and
    // the rest of the collection goes on.
    sim.set_faults(Faults {
        pages: vec![PageFault { kind: "vms".into(), offset: 100, status: 500, times: None }],
        ..Faults::default()
    });
    let calls = json!([{"call": "Collector.collect", "params": {
        "options": {"page_size": 100, "max_retries": 0}, "secret_data": sim.secret(),
        "task_options": {"resource_kinds": ["vms"]}}}]);
    let server = Server::start();
    let out = cf_client(&server.endpoint(), &calls);
    let items = ok(&out["results"][0]);
    let c = counts(items);
    assert_eq!(c.get("inventory.CloudService/VirtualMachine"), Some(&100), "{c:?}");
    assert_eq!(c.get("inventory.ErrorResource"), Some(&1), "{c:?}");
    let got = items.as_array().unwrap().iter().find(|i| i["resource_type"] == "inventory.ErrorResource").unwrap();
    let want = reference()["collect"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource_type"] == "inventory.ErrorResource")
        .unwrap()
        .clone();
    assert_eq!(got["state"], "FAILURE");
    assert!(got["message"].as_str().is_some_and(|m| m.contains("HTTP 500")), "{got}");
    assert_eq!(got["match_rules"], want["match_rules"]);
    let mut want_resource = want["resource"].clone();
    want_resource["provider"] = json!("nutanix");
    assert_eq!(got["resource"], want_resource, "ErrorResource fields as the SDK sends them");
}

/// `cf-host serve --protocol cost-analysis` driven by SpaceConnector as
/// CloudForet's cost analysis service drives a data source plugin:
/// reflection lists the cost protocol's services, `DataSource.init` returns
/// the guest's metadata, `Job.get_tasks` one task per day with the period it
/// replaces, `Cost.get_data` streams the day's cost lines of every VM.
#[test]
fn the_cost_data_source_protocol_through_space_connector() {
    let format_day = |days_ago: i64| (chrono::Utc::now().date_naive() - chrono::Days::new(days_ago as u64)).format("%Y-%m-%d").to_string();
    let server = Server::start_with(&["--protocol", "cost-analysis"]);
    let sim = simulator(SimConfig::default());
    let secret = sim.secret();
    let options = json!({"rate_card": {"currency": "EUR", "vcpu_hour": 0.02, "memory_gib_hour": 0.005, "disk_gib_month": 0.1}});
    let calls = json!([
        {"call": "DataSource.init", "params": {"options": options}},
        {"call": "DataSource.verify", "params": {"options": options, "secret_data": secret}},
        {"call": "Job.get_tasks", "params": {"options": options, "secret_data": secret, "start": format_day(2)}},
        {"call": "Cost.get_data", "params": {"options": options, "secret_data": secret, "task_options": {"billed_date": format_day(0)}}},
        {"call": "Cost.get_linked_accounts", "params": {"options": options, "secret_data": secret}},
        {"call": "DataSource.init", "params": {"options": {}}},
    ]);
    let out = cf_client(&server.endpoint(), &calls);
    let services: BTreeMap<String, usize> =
        out["api_resources"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_array().unwrap().len())).collect();
    let want: BTreeMap<String, usize> =
        [("Cost", 2), ("DataSource", 2), ("Health", 2), ("Job", 1), ("ServerInfo", 1)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(services, want);
    let r = &out["results"];
    assert_eq!(ok(&r[0])["metadata"]["currency"], "EUR");
    assert!(r[1].get("ok").is_some(), "{}", r[1]);
    let tasks = ok(&r[2])["tasks"].as_array().unwrap();
    let days: Vec<&str> = tasks.iter().map(|t| t["task_options"]["billed_date"].as_str().unwrap()).collect();
    assert_eq!(days, [format_day(2), format_day(1), format_day(0)]);
    assert_eq!(tasks[0]["task_changed"]["start"], format_day(2));
    assert_eq!(ok(&r[2])["changed"].as_array().unwrap().len(), 3);

    // Every simulated VM has disks; the running ones pay vCPU and memory too.
    let lines: Vec<&Value> = ok(&r[3]).as_array().unwrap().iter().flat_map(|c| c["results"].as_array().unwrap()).collect();
    let estate = SimConfig::default().estate;
    let running = (0..estate.vms).filter(|i| prism_sim::estate::vm_facts(&estate, *i).powered_on).count();
    assert_eq!(lines.len(), running * 3 + (estate.vms - running));
    let vcpu = lines.iter().find(|l| l["usage_type"] == "vCPU").unwrap();
    assert_eq!((vcpu["provider"].as_str(), vcpu["usage_unit"].as_str(), vcpu["product"].as_str()), (Some("nutanix"), Some("vCPU-Hour"), Some("Virtual Machine")));
    assert_eq!(vcpu["billed_date"], format_day(0));
    assert!(vcpu["cost"].as_f64().is_some_and(|c| c > 0.0) && vcpu["data"]["currency"] == "EUR", "{vcpu}");
    assert_eq!(ok(&r[4]), &json!({}), "no linked accounts");
    let e = err(&r[5]);
    assert_eq!(e["error_code"], "ERROR_INVALID_ARGUMENT", "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains("rate_card"), "{e}");
}

/// `cf-host serve --protocol monitoring` driven by SpaceConnector as
/// CloudForet's monitoring service drives a metric data source: reflection
/// lists DataSource and Metric, `Metric.list` offers the VM metrics with a
/// query naming the VMs, `Metric.get_data` returns the simulator's exact
/// series (v4 stats, ppm → percent), nulls for a powered-off VM; a host and
/// a cluster are recognised and read through the clustermgmt stats.
#[test]
fn the_monitoring_data_source_protocol_through_space_connector() {
    let server = Server::start_with(&["--protocol", "monitoring"]);
    let sim = simulator(SimConfig { v4: true, ..SimConfig::default() });
    let secret = sim.secret();
    let estate = SimConfig::default().estate;
    let (on, off) = (prism_sim::estate::vm_facts(&estate, 0), prism_sim::estate::vm_facts(&estate, 4));
    assert!(on.powered_on && !off.powered_on);
    let query = json!({on.uuid.clone(): {}, off.uuid.clone(): {}});
    // A host and a cluster: Metric.list finds out what they are, and says
    // so in the metric_query that Metric.get_data gets back.
    let full = prism_sim::estate::Estate::generate(estate.clone());
    let uuid = |v: &Value| v.pointer("/metadata/uuid").and_then(Value::as_str).unwrap().to_string();
    let (host, cluster) = (uuid(&full.hosts[0]), uuid(&full.clusters[1]));
    assert_eq!(full.hosts[0].pointer("/status/cluster_reference/uuid").and_then(Value::as_str), Some(cluster.as_str()));
    let nodes = json!({host.clone(): {}, cluster.clone(): {}});
    let node_query = json!({host.clone(): {"type": "host", "cluster": cluster.clone()}, cluster.clone(): {"type": "cluster"}});
    let (start, end) = ("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z");
    let calls = json!([
        {"call": "DataSource.init", "params": {"options": {}}},
        {"call": "DataSource.verify", "params": {"options": {}, "secret_data": secret}},
        {"call": "Metric.list", "params": {"options": {}, "secret_data": secret, "query": query}},
        {"call": "Metric.get_data", "params": {"options": {}, "secret_data": secret, "metric_query": query, "metric": "cpu_usage",
                                              "start": start, "end": end, "period": 600, "stat": "AVERAGE"}},
        {"call": "Metric.get_data", "params": {"options": {}, "secret_data": secret, "metric_query": query, "metric": "gpu_usage",
                                              "start": start, "end": end}},
        {"call": "Metric.list", "params": {"options": {}, "secret_data": secret, "query": nodes}},
        {"call": "Metric.get_data", "params": {"options": {}, "secret_data": secret, "metric_query": node_query, "metric": "memory_usage",
                                              "start": start, "end": end, "period": 600}},
    ]);
    let out = cf_client(&server.endpoint(), &calls);
    let services: BTreeMap<String, usize> =
        out["api_resources"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_array().unwrap().len())).collect();
    let want: BTreeMap<String, usize> =
        [("DataSource", 2), ("Health", 2), ("Metric", 2), ("ServerInfo", 1)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(services, want);
    let r = &out["results"];
    assert_eq!(ok(&r[0])["metadata"]["supported_stat"], json!(["AVERAGE", "MAX", "MIN", "SUM"]));
    assert!(r[1].get("ok").is_some(), "{}", r[1]);
    let metrics = ok(&r[2])["metrics"].as_array().unwrap();
    let keys: Vec<&str> = metrics.iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["cpu_usage", "memory_usage", "disk_iops", "disk_bandwidth", "network_received", "network_transmitted"]);
    assert_eq!(metrics[0]["metric_query"], query);
    assert_eq!(metrics[0]["unit"], json!({"x": "Timestamp", "y": "Percent"}));

    let data = ok(&r[3]);
    let t0 = prism_sim::v4::parse_utc(start).unwrap();
    let labels: Vec<String> = (0..6).map(|k| prism_sim::v4::format_utc(t0 + k * 600)).collect();
    assert_eq!(data["labels"], json!(labels));
    let expected: Vec<f64> = (0..6).map(|k| prism_sim::v4::vm_stat(0, "hypervisorCpuUsagePpm", t0 / 600 + k).unwrap() * 1e-4).collect();
    let got: Vec<f64> = data["values"][&on.uuid].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), 6);
    assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-9), "{got:?} != {expected:?}");
    assert_eq!(data["values"][&off.uuid], json!([null, null, null, null, null, null]));
    let e = err(&r[4]);
    assert_eq!(e["error_code"], "ERROR_INVALID_ARGUMENT", "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains("unknown metric \"gpu_usage\""), "{e}");

    let metrics = ok(&r[5])["metrics"].as_array().unwrap();
    let keys: Vec<&str> = metrics.iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["cpu_usage", "memory_usage", "disk_iops", "disk_bandwidth"], "no network metrics for hosts and clusters");
    assert_eq!(metrics[1]["metric_query"], node_query);
    let data = ok(&r[6]);
    assert_eq!(data["labels"], json!(labels));
    for (id, entity_type) in [(&host, "host"), (&cluster, "cluster")] {
        let want: Vec<f64> = (0..6).map(|k| prism_sim::v4::node_stat(entity_type, 0, "aggregateHypervisorMemoryUsagePpm", t0 / 600 + k).unwrap() * 1e-4).collect();
        let got: Vec<f64> = data["values"][id].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(got.len() == 6 && got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9), "{entity_type}: {got:?} != {want:?}");
    }
}

/// Tenants under CloudForet's real client, which names none: each call's
/// tenant comes from its secret. The same Prism account collects
/// incrementally from its own cache on its second run; another account of
/// the same Prism (an API key) starts with no cache, and naming the first
/// tenant's id in `x_domain_id` claims nothing.
#[test]
fn tenants_come_from_the_secret_under_cloudforets_client() {
    let sim = simulator(SimConfig { v4: true, ..SimConfig::default() });
    let server = Server::start();
    let collect = |secret: Value, extra: Value| {
        let mut call = json!({"call": "Collector.collect", "params": {"options": {"incremental": true}, "secret_data": secret, "task_options": {"resource_kinds": ["vms"]}, "filter": {}}});
        if let Some(m) = call.as_object_mut() {
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                m.insert(k, v);
            }
        }
        let before = sim.state.calls_per_kind();
        let out = cf_client(&server.endpoint(), &json!([call]));
        ok(&out["results"][0]);
        let after = sim.state.calls_per_kind();
        // Whether this run read the full VM list (no cache) or only changes.
        after.get("v4/vms").copied().unwrap_or(0) > before.get("v4/vms").copied().unwrap_or(0)
    };
    let admin = sim.secret();
    let key = json!({"host": sim.url(), "api_key": prism_sim::API_KEY});
    assert!(collect(admin.clone(), json!({})), "first run of the account: full");
    assert!(!collect(admin.clone(), json!({})), "its second run: incremental, from its own cache");
    assert!(collect(key.clone(), json!({"x_domain_id": "default"})), "another account: no cache of the first's");
    assert!(!collect(key, json!({})), "and its own cache on its second run");
}
