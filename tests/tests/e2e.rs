//! The real guest component in the real host, against the Prism simulator
//! over loopback, into the embedded store.

use cf_host::job::{self, Counts, JobReport, JobSpec};
use cf_host::record::ResourceType;
use cf_host::store::Store;
use cf_host::{ErrorCode, RunContext, RunError};
use cf_tests::{block_on, host, temp_dir};
use prism_sim::estate::{cluster_name, vm_facts, EstateConfig};
use prism_sim::{Faults, PageFault, SimConfig, Simulator};
use serde_json::{json, Value};
use std::sync::Arc;

fn sim(vms: usize) -> Simulator {
    block_on(Simulator::start(SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, ..SimConfig::default() }))
        .expect("simulator starts")
}

fn store(name: &str) -> Arc<Store> {
    Arc::new(Store::open(&temp_dir(name).join("store.db")).expect("store opens"))
}

fn collect(sim: &Simulator, store: &Arc<Store>, options: Value) -> JobReport {
    collect_secret(sim, store, options, sim.secret())
}

fn collect_secret(sim: &Simulator, store: &Arc<Store>, options: Value, secret: Value) -> JobReport {
    let (rt, plugin) = host();
    let spec = JobSpec {
        tenant: "t1".into(),
        endpoint: sim.url(),
        secret,
        options,
        task_options: json!({}),
        out: None,
        costs: None,
    };
    block_on(job::run(rt, plugin, store.clone(), spec, |_| {})).expect("job runs")
}

/// A run granted exactly the simulator, with its credentials.
fn run_context(sim: &Simulator) -> RunContext {
    let ctx = cf_tests::sim_context(sim).build().unwrap();
    ctx
}

fn created(n: u64) -> Counts {
    Counts { created: n, ..Counts::default() }
}

#[test]
fn collects_the_estate_with_exact_counts() {
    let sim = sim(200);
    let store = store("full");
    let r = collect(&sim, &store, json!({}));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.get("CloudServiceType"), created(5));
    assert_eq!(r.get("Region"), created(3));
    assert_eq!(r.get("Cluster/Cluster"), created(3));
    assert_eq!(r.get("Compute/Host"), created(12));
    assert_eq!(r.get("Compute/VirtualMachine"), created(200));
    assert_eq!(r.get("Networking/Subnet"), created(6));
    assert_eq!(r.get("Storage/Image"), created(8));
    assert_eq!(r.totals(), created(237));
    assert_eq!(store.count("t1", ResourceType::CloudService).unwrap(), 229);
    // One list call per kind: everything fits a 500-entity page.
    let calls = sim.state.calls_per_kind();
    assert_eq!(calls.values().sum::<u64>(), 5, "{calls:?}");
}

#[test]
fn normalizes_specific_vms_exactly() {
    let sim = sim(200);
    let store = store("fields");
    let r = collect(&sim, &store, json!({}));
    assert!(r.error.is_none());
    let cfg = EstateConfig::default();

    // VM 3: a unicode name, 4 sockets × 2 vCPUs, 8 GiB, one 50 GiB disk, one NIC.
    let f = vm_facts(&cfg, 3);
    let vm = store.find_by_resource_id("t1", &f.uuid).unwrap().expect("vm 3 stored");
    assert_eq!(vm["name"], "データベース-0003");
    assert_eq!(vm["provider"], "nutanix");
    assert_eq!(vm["cloud_service_group"], "Compute");
    assert_eq!(vm["cloud_service_type"], "VirtualMachine");
    assert_eq!(vm["instance_type"], "8vCPU-8GiB");
    assert_eq!(vm["instance_size"], 8.0);
    assert_eq!(vm["region_code"], prism_sim::estate::uuid("cluster", 0).as_str(), "coded by the cluster's uuid");
    assert_eq!(vm["account"], sim.state.estate().prism_central_uuid().as_str());
    assert_eq!(vm["ip_addresses"], json!(["10.10.1.5"]));
    assert_eq!(vm["tags"], json!({"Environment": "Dev"}));
    assert_eq!(vm["launched_at"], "2024-04-04T03:03:00Z");
    assert_eq!(vm["reference"]["resource_id"], f.uuid.as_str());
    assert_eq!(
        vm["reference"]["external_link"],
        format!("{}/console/#page/explore/ebrowser/vms/?entity_id={}", sim.url(), f.uuid)
    );
    let d = &vm["data"];
    assert_eq!((d["num_sockets"].as_u64(), d["num_vcpus_per_socket"].as_u64(), d["vcpus"].as_u64()), (Some(4), Some(2), Some(8)));
    assert_eq!(d["memory_mib"], 8192);
    assert_eq!(d["power_state"], "ON");
    assert_eq!(d["host"]["name"], "cluster-a-node-4");
    assert_eq!(d["disks"].as_array().unwrap().len(), 1);
    assert_eq!(d["disks"][0]["size_bytes"], 50u64 << 30);
    assert_eq!(d["disk_total_bytes"], 50u64 << 30);
    assert_eq!(d["nics"][0]["mac_address"], "50:6b:8d:00:03:00");
    assert_eq!(d["nics"][0]["subnet"]["name"], "vlan-100");
    assert_eq!(
        vm["metadata"],
        json!({"view": {"sub_data": {"reference": {"resource_type": "inventory.CloudServiceType",
            "options": {"provider": "nutanix", "cloud_service_group": "Compute", "cloud_service_type": "VirtualMachine"}}}}})
    );

    // VM 4: powered off, so no host and disconnected NICs.
    let f = vm_facts(&cfg, 4);
    let vm = store.find_by_resource_id("t1", &f.uuid).unwrap().expect("vm 4 stored");
    assert_eq!(vm["data"]["power_state"], "OFF");
    assert_eq!(vm["data"]["host"], Value::Null);
    assert_eq!(vm["data"]["nics"][0]["is_connected"], false);

    // Every VM against the simulator's own description of it.
    for i in 0..cfg.vms {
        let f = vm_facts(&cfg, i);
        let vm = store.find_by_resource_id("t1", &f.uuid).unwrap().unwrap_or_else(|| panic!("vm {i} stored"));
        let vcpus = f.sockets * f.vcpus_per_socket;
        assert_eq!(vm["name"], f.name.as_str());
        assert_eq!(vm["instance_size"], f64::from(vcpus), "vm {i}");
        assert_eq!(vm["data"]["memory_mib"], f.memory_mib, "vm {i}");
        assert_eq!(vm["region_code"], prism_sim::estate::uuid("cluster", f.cluster).as_str(), "vm {i}");
        assert_eq!(vm["data"]["cluster"]["name"], cluster_name(f.cluster).as_str(), "vm {i}");
        assert_eq!(vm["ip_addresses"], json!(f.ips), "vm {i}");
        let tags: serde_json::Map<String, Value> = f.categories.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        assert_eq!(vm["tags"], Value::Object(tags), "vm {i}");
        assert_eq!(vm["data"]["disks"].as_array().unwrap().len(), f.disks_gib.len() + f.cdroms, "vm {i}: disks and CD-ROMs");
        assert_eq!(vm["data"]["disk_total_bytes"], f.disks_gib.iter().sum::<u64>() << 30, "vm {i}");
        assert_eq!(vm["data"]["host"].is_null(), f.host.is_none(), "vm {i}");
    }
}

#[test]
fn paginates_across_page_boundaries() {
    let sim = sim(1234);
    let store = store("pages");
    let r = collect(&sim, &store, json!({}));
    assert!(r.error.is_none());
    assert_eq!(r.get("Compute/VirtualMachine"), created(1234));
    assert_eq!(sim.state.calls_per_kind()["vms"], 3, "offsets 0, 500, 1000");

    let sim = self::sim(1234);
    let store = self::store("pages-100");
    let r = collect(&sim, &store, json!({"page_size": 100}));
    assert_eq!(r.get("Compute/VirtualMachine"), created(1234));
    assert_eq!(sim.state.calls_per_kind()["vms"], 13);
}

#[test]
fn a_failed_page_becomes_an_error_resource_and_the_rest_is_stored() {
    let sim = sim(1234);
    sim.set_faults(Faults {
        pages: vec![PageFault { kind: "vms".into(), offset: 500, status: 503, times: None }],
        ..Faults::default()
    });
    let store = store("fault");
    let r = collect(&sim, &store, json!({"max_retries": 1}));
    assert!(r.error.is_none(), "a lost page does not fail the run: {:?}", r.error);
    assert_eq!(r.get("Compute/VirtualMachine"), Counts { created: 734, errors: 1, ..Counts::default() });
    assert_eq!(r.get("Compute/Host"), created(12), "other kinds are unaffected");
    let errors = store.errors_of_run(&r.run_id).unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("vms list page at offset 500 (of 1234) failed: POST /api/nutanix/v3/vms/list: HTTP 503: INTERNAL_ERROR: Injected fault"),
        "{}",
        errors[0]
    );
    assert!(errors[0].ends_with("(after 2 attempts)"), "{}", errors[0]);
    assert_eq!(sim.state.calls_per_kind()["vms"], 4, "offset 500 tried twice");
}

#[test]
fn rate_limits_and_truncated_bodies_are_retried_without_loss() {
    let sim = sim(600);
    sim.set_faults(Faults { rate_limit_every: 3, retry_after_secs: 0, truncate_every: 4, ..Faults::default() });
    let store = store("flaky");
    let r = collect(&sim, &store, json!({"page_size": 100}));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.get("Compute/VirtualMachine"), created(600));
    assert_eq!(r.totals().errors, 0);
    // 6 VM pages + 4 other kinds = 10 good answers; the faults cost extra calls.
    let calls: u64 = sim.state.calls_per_kind().values().sum();
    assert!(calls > 10, "faults were injected: {calls} calls");
}

#[test]
fn second_collection_of_unchanged_data_creates_nothing() {
    let sim = sim(200);
    let store = store("twice");
    let first = collect(&sim, &store, json!({}));
    assert_eq!(first.totals().created, 237);
    let second = collect(&sim, &store, json!({}));
    assert!(second.error.is_none());
    assert_eq!(second.totals(), Counts { unchanged: 237, ..Counts::default() });
    assert_eq!(store.count("t1", ResourceType::CloudService).unwrap(), 229);
}

#[test]
fn wrong_credentials_are_unauthenticated() {
    let sim = sim(10);
    let store = store("badcreds");
    let mut secret = sim.secret();
    secret["password"] = json!("wrong-password");
    let r = collect_secret(&sim, &store, json!({}), secret);
    let e = r.error.clone().expect("fails");
    assert_eq!(e.code(), ErrorCode::Unauthenticated);
    assert_eq!(e.code().cloudforet_code(), "ERROR_AUTHENTICATE_FAILURE");
    assert!(e.message().contains("AUTHENTICATION_REQUIRED"), "{e}");
    assert!(!e.to_string().contains("wrong-password"));
    assert_eq!(r.totals(), Counts::default());
    assert_eq!(sim.state.unauthorized_calls(), 1, "401 is not retried");
}

#[test]
fn verify_init_and_get_tasks() {
    let sim = sim(10);
    let (rt, plugin) = host();
    let ctx = run_context(&sim);
    block_on(rt.verify(plugin, &ctx)).expect("verify succeeds");
    let meta = block_on(rt.init(plugin, &ctx)).unwrap();
    assert_eq!(meta.supported_schedules, vec!["hours"]);
    assert_eq!(meta.options_schema["properties"]["page_size"]["maximum"], 500);
    let tasks = block_on(rt.get_tasks(plugin, &ctx)).unwrap();
    assert_eq!(tasks.len(), 5);
    assert_eq!(tasks[0], json!({"resource_type": "inventory.CloudService", "resource_kinds": ["clusters"]}));

    let mut wrong = sim.secret();
    wrong["password"] = json!("nope");
    let ctx = cf_tests::sim_context(&sim).secret(wrong).build().unwrap();
    let e = block_on(rt.verify(plugin, &ctx)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unauthenticated);
    let ctx = cf_tests::sim_context(&sim).secret(json!({"host": sim.url()})).build().unwrap();
    let e = block_on(rt.verify(plugin, &ctx)).unwrap_err();
    assert_eq!(e, RunError::Collector(ErrorCode::MissingParameter, "secret field 'username' is required".into()));
}

#[test]
fn a_task_collects_only_its_kinds() {
    let sim = sim(50);
    let (rt, plugin) = host();
    let ctx = run_context(&sim);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let report = block_on(rt.collect(plugin, &ctx, &json!({"resource_kinds": ["hosts"]}), tx)).unwrap();
    let mut labels = std::collections::BTreeMap::<String, u64>::new();
    while let Ok(batch) = rx.try_recv() {
        for r in batch {
            *labels.entry(r.label()).or_default() += 1;
        }
    }
    // Every task also brings the regions (clusters) its services name.
    let want = [("CloudServiceType".to_string(), 1), ("Compute/Host".to_string(), 12), ("Region".to_string(), 3)];
    assert_eq!(labels, want.into());
    assert_eq!(report.records, 16);
    assert_eq!(report.http_requests, 5, "the v4 probes at v4.2, v4.1 and v4.0 (the gateway's 404: this simulator has no v4), the cluster list and one hosts page");
}

#[test]
fn egress_outside_the_grant_is_denied_before_any_request() {
    let sim = sim(10);
    let other = self::sim(10);
    let (rt, plugin) = host();
    // The secret points at one server, the run is granted only another.
    let grant = cf_host::egress::EgressPolicy::for_endpoint(&sim.url()).unwrap();
    let ctx = host().0.context("t1").secret(other.secret()).egress(grant).build().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let e = block_on(rt.collect(plugin, &ctx, &json!({}), tx)).unwrap_err();
    // The host's policy refused it, and says so with the destination.
    assert_eq!(e.code(), ErrorCode::EgressDenied);
    assert!(e.message().starts_with("the host's egress policy refused http://127.0.0.1:"), "{e}");
    assert!(e.message().contains("is not granted to this run"), "{e}");
    assert!(other.state.calls_per_kind().is_empty() && other.state.unauthorized_calls() == 0, "nothing reached the other server");
}

#[test]
fn components_that_are_not_collectors_are_rejected() {
    let (rt, _) = host();
    // A valid, empty component: it exports nothing.
    let e = rt.load_bytes("empty.wasm", b"\0asm\x0d\0\x01\0").err().unwrap();
    assert_eq!(
        e.to_string(),
        "empty.wasm is not a collector this host can run: it does not export cloudforet:collector/collector@<version> (not a CloudForet collector component)"
    );
    let e = rt.load_bytes("core.wasm", b"\0asm\x01\0\0\0").err().unwrap();
    assert!(e.to_string().contains("core WebAssembly module, not a component"));
    let e = rt.load_bytes("junk.wasm", b"PK\x03\x04 zip").err().unwrap();
    assert!(e.to_string().contains("not a WebAssembly file"));
    let mut truncated = std::fs::read(cf_tests::guest_wasm()).unwrap();
    truncated.truncate(truncated.len() / 2);
    let e = rt.load_bytes("half.wasm", &truncated).err().unwrap();
    assert!(e.to_string().starts_with("half.wasm is not a valid component"), "{e}");
}

#[test]
fn an_untrusted_tls_certificate_needs_an_explicit_choice() {
    let start = |vms| {
        block_on(Simulator::start(SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, tls: true, ..SimConfig::default() }))
            .expect("TLS simulator starts")
    };
    let sim = start(20);
    assert!(sim.url().starts_with("https://"));
    let ca = sim.ca_pem.clone().unwrap();

    // Verification is on by default: the self-signed chain is refused, clearly.
    let r = collect(&sim, &store("tls-default"), json!({"max_retries": 0}));
    let e = r.error.clone().expect("untrusted certificate is refused");
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert!(e.message().contains("TLS to") && e.message().contains("verify_ssl=false or ca_bundle"), "{e}");
    assert!(e.message().to_lowercase().contains("certificate"), "{e}");
    assert_eq!(r.totals(), Counts::default());
    assert!(sim.state.calls_per_kind().is_empty(), "no request got through");

    // Explicit opt-out.
    let r = collect(&sim, &store("tls-skip"), json!({"verify_ssl": false}));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.get("Compute/VirtualMachine"), created(20));

    // The issuing CA as a bundle: verified, and works.
    let r = collect(&sim, &store("tls-ca"), json!({"ca_bundle": ca}));
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.get("Compute/VirtualMachine"), created(20));

    // Another CA does not vouch for this server.
    let other = start(1);
    let r = collect(&sim, &store("tls-wrong-ca"), json!({"ca_bundle": other.ca_pem.clone().unwrap(), "max_retries": 0}));
    assert_eq!(r.error.expect("wrong CA is refused").code(), ErrorCode::Unavailable);

    // A bundle that is not PEM is a clear error before anything runs.
    let (rt, plugin) = host();
    let spec = JobSpec {
        tenant: "t1".into(),
        endpoint: sim.url(),
        secret: sim.secret(),
        options: json!({"ca_bundle": "not a certificate"}),
        task_options: json!({}),
        out: None,
        costs: None,
    };
    let e = block_on(job::run(rt, plugin, store("tls-bad"), spec, |_| {})).err().expect("a bad bundle is refused before the run");
    assert!(matches!(e, job::JobError::Context(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("CA bundle"), "{e}");
}

/// A Prism failing every call opens the tenant's circuit breaker: further
/// requests of that tenant fail at once without reaching it, another
/// tenant's requests still go out, and after the open period one probe
/// closes the breaker again when Prism has recovered.
#[test]
fn a_failing_prism_opens_the_tenants_circuit_breaker() {
    use cf_host::tenancy::TenancyConfig;
    use std::time::Duration;
    let sim = sim(20);
    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let mut tenancy = TenancyConfig::default();
    tenancy.default.limits.http.breaker_failures = 3;
    tenancy.default.limits.http.breaker_open = Duration::from_secs(600);
    let mut quick = tenancy.default.clone();
    quick.limits.http.breaker_failures = 1;
    quick.limits.http.breaker_open = Duration::from_secs(3);
    tenancy.tenants.insert("quick".into(), quick);
    let rt = cf_host::Runtime::new(cf_host::RuntimeConfig { tenancy, ..cf_host::RuntimeConfig::default() }).unwrap();
    let plugin = rt.load_file(&cf_tests::guest_wasm()).unwrap();
    let store = store("breaker");
    let run = |tenant: &str, retries: u32| {
        let spec = JobSpec {
            tenant: tenant.into(),
            endpoint: sim.url(),
            secret: sim.secret(),
            options: json!({"max_retries": retries}),
            task_options: json!({}),
            out: None,
            costs: None,
        };
        block_on(job::run(&rt, &plugin, store.clone(), spec, |_| {})).expect("job runs")
    };
    let calls = || sim.state.calls_per_kind().values().sum::<u64>();

    // Four attempts: three reach Prism and fail, the fourth is refused.
    let r = run("t1", 3);
    let e = r.error.expect("the collection fails");
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert!(e.to_string().contains("circuit open for http://127.0.0.1:"), "{e}");
    assert_eq!(calls(), 3);
    // The same tenant again: nothing reaches Prism.
    let e = run("t1", 2).error.expect("fails fast");
    assert!(e.to_string().contains("circuit open"), "{e}");
    assert_eq!(calls(), 3);
    // Another tenant has its own breaker.
    assert!(run("t2", 0).error.is_some());
    assert_eq!(calls(), 4);
    let m = rt.metrics().get("cf_host_http_requests_total", &[("status", "circuit_open")]);
    assert_eq!(m, 4.0, "one refusal in the first run, three in the second");

    // Open after one failure; refused while open; a probe after it.
    assert!(run("quick", 0).error.is_some());
    assert_eq!(calls(), 5);
    sim.set_faults(Faults::default());
    let e = run("quick", 0).error.expect("still open");
    assert!(e.to_string().contains("circuit open"), "{e}");
    assert_eq!(calls(), 5);
    std::thread::sleep(Duration::from_millis(3100));
    let r = run("quick", 0);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.get("Compute/VirtualMachine"), created(20));
}

/// Costs into the store: one task per day from `start` through today, each
/// VM's lines (vCPU and memory while running, disk always), priced by the
/// rate card; a second run finds every line unchanged. A component that is
/// no cost data source says so.
#[test]
fn costs_are_collected_per_day_into_the_store() {
    use guest_nutanix::costs::{format_day, Day};
    let sim = sim(50);
    let store = store("costs");
    let (rt, plugin) = host();
    assert!(plugin.is_cost_source());
    let today = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400) as Day;
    let spec = || JobSpec {
        tenant: "t1".into(),
        endpoint: sim.url(),
        secret: sim.secret(),
        options: json!({"rate_card": {"vcpu_hour": 0.1, "memory_gib_hour": 0.01, "disk_gib_month": 0.2}}),
        task_options: json!({}),
        out: None,
        costs: Some(job::CostWindow { start: Some(format_day(today - 2)) }),
    };
    let r = block_on(job::run(rt, plugin, store.clone(), spec(), |_| {})).expect("job runs");
    assert!(r.error.is_none(), "{:?}", r.error);
    let on = (0..50).filter(|i| vm_facts(&EstateConfig { vms: 50, ..EstateConfig::default() }, *i).powered_on).count() as u64;
    assert_eq!(r.get("Cost/vCPU"), created(on * 3));
    assert_eq!(r.get("Cost/Memory"), created(on * 3));
    assert_eq!(r.get("Cost/Disk"), created(50 * 3));
    assert_eq!(r.counts.len(), 3, "costs only: {:?}", r.counts.keys().collect::<Vec<_>>());
    let again = block_on(job::run(rt, plugin, store.clone(), spec(), |_| {})).expect("job runs");
    assert_eq!(again.totals(), Counts { unchanged: on * 6 + 150, ..Counts::default() });

    let legacy = rt.load_file(&cf_tests::legacy_wasm()).unwrap();
    assert!(!legacy.is_cost_source());
    let e = block_on(job::run(rt, &legacy, store, spec(), |_| {})).unwrap().error.expect("fails");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("is not a cost data source"), "{e}");
}

/// Option `usage`: one paged groups call per kind reads every VM's, host's
/// and cluster's usage into its `data.usage` (the simulator's values,
/// percent from ppm; empty for a powered-off VM), and the Namespace and
/// Metric records over each kind's are emitted. Without the option, no
/// groups call and no such records.
#[test]
fn usage_comes_from_the_groups_api_into_vm_host_and_cluster_data() {
    use cf_host::record::ResourceType;
    let sim = sim(230);
    let (rt, plugin) = host();
    let ctx = cf_tests::sim_context(&sim).options(json!({"usage": true, "page_size": 100})).build().unwrap();
    let (r, records) = block_on(cf_tests::collect_all(rt, plugin, &ctx, &json!({})));
    r.expect("collection");
    let calls = sim.state.calls_per_kind();
    assert_eq!(calls["groups"], 3, "230 VMs in pages of 100");
    assert_eq!((calls["groups/host"], calls["groups/cluster"]), (1, 1), "{calls:?}");
    let count = |t: ResourceType| records.iter().filter(|r| r.resource_type == t).count();
    assert_eq!((count(ResourceType::Namespace), count(ResourceType::Metric)), (3, 16), "VMs, hosts, clusters");
    // Hosts and clusters: the hypervisor's usage, by their index in the estate.
    let estate = sim.state.estate();
    for (list, ty, entity_type) in [(&estate.hosts[..], "Host", "host"), (&estate.clusters[1..], "Cluster", "cluster")] {
        for (i, e) in list.iter().enumerate() {
            let id = e.pointer("/metadata/uuid").unwrap();
            let got = records
                .iter()
                .find(|r| r.resource().get("cloud_service_type") == Some(&json!(ty)) && r.resource().get("reference").and_then(|x| x.get("resource_id")) == Some(id))
                .unwrap_or_else(|| panic!("{ty} {id}"))
                .resource_json();
            let want = |a: &str| prism_sim::v4::node_usage(entity_type, i, a).unwrap();
            assert!((got["data"]["usage"]["memory_percent"].as_f64().unwrap() - want("hypervisor_memory_usage_ppm") * 1e-4).abs() < 1e-9);
            assert_eq!(got["data"]["usage"]["network_received_bytes"], json!(want("hypervisor_num_received_bytes")));
        }
    }
    drop(estate);
    let ns: Vec<serde_json::Map<String, Value>> = records.iter().filter(|r| r.resource_type == ResourceType::Namespace).map(|r| r.resource_json()).collect();
    assert!(ns.iter().any(|n| n["namespace_id"] == "ns-nutanix-host-usage" && n["resource_type"] == "inventory.CloudService:nutanix.Compute.Host"), "{ns:?}");
    let cfg = EstateConfig { vms: 230, ..EstateConfig::default() };
    let vm = |i: usize| {
        let uuid = vm_facts(&cfg, i).uuid;
        records.iter().find(|r| r.resource().get("reference").and_then(|x| x.get("resource_id")) == Some(&json!(uuid))).unwrap().resource_json()
    };
    let on = vm(0);
    let cpu = prism_sim::v4::vm_stat(0, "hypervisorCpuUsagePpm", 0).unwrap() * 1e-4;
    assert!((on["data"]["usage"]["cpu_percent"].as_f64().unwrap() - cpu).abs() < 1e-9, "{}", on["data"]["usage"]);
    assert_eq!(on["data"]["usage"]["disk_iops"], json!(prism_sim::v4::vm_stat(0, "controllerNumIops", 0).unwrap()));
    assert!(!vm_facts(&cfg, 4).powered_on);
    assert_eq!(vm(4)["data"]["usage"], json!({}));
    let metric = records.iter().find(|r| r.resource_type == ResourceType::Metric && r.resource()["name"] == "CPU Usage (avg)").unwrap().resource_json();
    assert_eq!(metric["query_options"]["fields"]["value"]["key"], "data.usage.cpu_percent");

    let plain = self::sim(20);
    let (r, records) = block_on(cf_tests::collect_all(rt, plugin, &run_context(&plain), &json!({})));
    r.expect("collection");
    assert!(!plain.state.calls_per_kind().contains_key("groups"));
    assert!(records.iter().all(|r| r.resource_type != ResourceType::Namespace && r.raw("data").is_none_or(|d| !d.contains("\"usage\""))));
}
