//! Concurrent list paging, end to end: the real guest pages through the
//! simulator with several requests in flight (WIT 0.3 `send-many`), within
//! the host's per-origin cap, slowed by a rate-limited Prism, and loses or
//! duplicates nothing when the list changes while it is read.

use cf_host::limits::{HttpLimits, Limits};
use cf_host::record::{Record, ResourceType};
use cf_host::RunContext;
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator, VmChurn};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn sim(vms: usize, v4: bool, faults: Faults) -> Simulator {
    let config = SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, v4, faults, ..SimConfig::default() };
    block_on(Simulator::start(config)).expect("simulator starts")
}

/// Collects the VMs of `sim` with `options`, under `http` limits.
fn collect_vms(sim: &Simulator, options: Value, http: HttpLimits) -> Vec<Record> {
    collect(sim, options, http, json!({"resource_kinds": ["vms"]}))
}

/// Collects `task` from `sim` with `options`, under `http` limits.
fn collect(sim: &Simulator, options: Value, http: HttpLimits, task: Value) -> Vec<Record> {
    let (rt, plugin) = host();
    let ctx = RunContext::builder("t1", Limits { http, ..Limits::default() })
        .endpoint(sim.url())
        .secret(sim.secret())
        .options(options)
        .build()
        .expect("context");
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &task));
    r.expect("collect");
    records
}

/// The uuid of each VirtualMachine record, in order.
fn vm_ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.resource_type == ResourceType::CloudService && !r.is_error())
        .filter(|r| r.resource()["cloud_service_type"] == "VirtualMachine")
        .map(|r| r.resource()["reference"]["resource_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn errors(records: &[Record]) -> Vec<String> {
    records.iter().filter(|r| r.is_error()).map(|r| r.message.clone().unwrap_or_default()).collect()
}

fn estate_ids(sim: &Simulator) -> BTreeSet<String> {
    sim.state.estate().vms.iter().filter_map(|v| v.pointer("/metadata/uuid").and_then(Value::as_str).map(str::to_string)).collect()
}

/// Pages go out several at a time, never more than the host's per-origin
/// cap, in both APIs; every VM comes once, in the list's order.
#[test]
fn pages_are_read_concurrently_within_the_hosts_cap() {
    for v4 in [false, true] {
        let sim = sim(1_500, v4, Faults { latency_ms: 50, ..Faults::default() });
        let http = HttpLimits { max_in_flight_per_origin: 3, ..HttpLimits::default() };
        let records = collect_vms(&sim, json!({"page_size": 100, "page_concurrency": 8}), http);
        let ids = vm_ids(&records);
        assert_eq!(ids.len(), 1_500, "v4={v4}: {:?}", errors(&records));
        let expected: Vec<String> = sim.state.estate().vms.iter().map(|v| v["metadata"]["uuid"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids, expected, "v4={v4}: in the list's order");
        let peak = sim.state.peak_in_flight();
        assert!((2..=3).contains(&peak), "v4={v4}: {peak} list calls at once; the host allows 3 per origin");
        assert!(errors(&records).is_empty(), "{:?}", errors(&records));
        // One shift check per window of pages after the first page.
        let probes = sim.state.calls_per_kind().get(if v4 { "v4/vms?probe" } else { "vms?probe" }).copied();
        assert_eq!(probes, Some(2), "v4={v4}: 14 pages after the first, in windows of 8");
    }
}

/// Once the cluster list is read, the other kinds' first pages are read
/// together (the VMs' category, host and subnet lists too, through v4),
/// and the records come out as when every list was read one after another.
/// Every list here is one page, so calls in flight together are first
/// pages of different lists.
#[test]
fn the_first_pages_of_all_kinds_are_read_together() {
    for v4 in [false, true] {
        let config = SimConfig { estate: EstateConfig { vms: 50, ..EstateConfig::default() }, v4, faults: Faults { latency_ms: 50, ..Faults::default() }, ..SimConfig::default() };
        let sim = block_on(Simulator::start(config)).expect("simulator starts");
        let mut runs = Vec::new();
        for concurrency in [8, 1] {
            sim.state.reset_peak_in_flight();
            let records = collect(&sim, json!({"page_size": 100, "page_concurrency": concurrency}), HttpLimits::default(), json!({}));
            assert!(errors(&records).is_empty(), "v4={v4}: {:?}", errors(&records));
            runs.push((sim.state.peak_in_flight(), records.iter().map(|r| r.resource().into_owned()).collect::<Vec<_>>()));
        }
        let calls = sim.state.calls_per_kind();
        assert!(calls.keys().all(|k| !k.ends_with("?probe")), "one page a list: {calls:?}");
        assert!(runs[0].0 >= 4, "v4={v4}: {} list calls at once: hosts, VMs, subnets and images (categories through v4) together", runs[0].0);
        assert_eq!(runs[1].0, 1, "v4={v4}: one at a time with page_concurrency 1");
        assert_eq!(runs[0].1, runs[1].1, "v4={v4}: the same records in the same order");
    }
}

/// `page_concurrency: 1` reads one page at a time.
#[test]
fn one_page_at_a_time_when_asked() {
    let sim = sim(600, false, Faults { latency_ms: 20, ..Faults::default() });
    let records = collect_vms(&sim, json!({"page_size": 100, "page_concurrency": 1}), HttpLimits::default());
    assert_eq!(vm_ids(&records).len(), 600);
    assert_eq!(sim.state.peak_in_flight(), 1);
    assert_eq!(sim.state.calls_per_kind().get("vms?probe"), None, "no shift checks beside the pages");
}

/// A Prism that takes 10 list calls a second answers the rest 429: the
/// origin is held and paced, the guest retries, and nothing is lost.
#[test]
fn a_rate_limited_prism_is_paced_and_nothing_is_lost() {
    let sim = sim(3_000, false, Faults { rps_limit: 10.0, ..Faults::default() });
    let records = collect_vms(&sim, json!({"page_size": 100, "page_concurrency": 16, "max_retries": 10}), HttpLimits::default());
    let ids = vm_ids(&records);
    assert_eq!(ids.len(), 3_000, "{:?}", errors(&records));
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3_000, "no VM twice");
    assert!(errors(&records).is_empty(), "{:?}", errors(&records));
    assert!(sim.state.throttled_calls() > 0, "the limit was reached");
}

/// VMs deleted and created while the list is read shift its pages: the
/// guest notices (the total moves, an entity comes twice), reads the list
/// again, and hands on every VM that exists once, none twice.
#[test]
fn a_list_that_changes_while_it_is_read_loses_and_duplicates_nothing() {
    let cases = [
        ("deleted", VmChurn { every: 3, remove: 7, add: 0, times: Some(1) }),
        ("created", VmChurn { every: 3, remove: 0, add: 5, times: Some(1) }),
        ("both", VmChurn { every: 2, remove: 4, add: 4, times: Some(2) }),
    ];
    for v4 in [false, true] {
        for (what, churn) in &cases {
            let sim = sim(1_000, v4, Faults { vm_churn: Some(churn.clone()), ..Faults::default() });
            let before = estate_ids(&sim);
            let records = collect_vms(&sim, json!({"page_size": 100, "page_concurrency": 2}), HttpLimits::default());
            let after = estate_ids(&sim);
            let ids = vm_ids(&records);
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for id in &ids {
                *count.entry(id).or_default() += 1;
            }
            let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "v4={v4} {what}: handed on twice: {twice:?}");
            let got: BTreeSet<String> = ids.iter().cloned().collect();
            let missing: Vec<_> = before.intersection(&after).filter(|id| !got.contains(*id)).collect();
            assert!(missing.is_empty(), "v4={v4} {what}: VMs that existed throughout are missing: {missing:?}");
            assert!(got.iter().all(|id| before.contains(id) || after.contains(id)), "v4={v4} {what}: only real VMs");
            assert!(errors(&records).is_empty(), "v4={v4} {what}: {:?}", errors(&records));
        }
    }
}

/// The host caps the batches a run holds pending (`start-many`): below
/// the 2 guest-nutanix keeps while it pipelines its windows, the run ends
/// with the handle limit (a typed limit, not a trap), and the default
/// allows it.
#[test]
fn the_hosts_cap_on_pending_batches_ends_the_run() {
    // 30 pages: windows 2 and 3 are pending together.
    let sim = sim(3_000, false, Faults::default());
    let (rt, plugin) = host();
    let run = |max_pending: u32| {
        let http = HttpLimits { max_pending, ..HttpLimits::default() };
        let ctx = RunContext::builder("t1", Limits { http, ..Limits::default() })
            .endpoint(sim.url())
            .secret(sim.secret())
            .options(json!({"page_size": 100, "page_concurrency": 8}))
            .build()
            .expect("context");
        block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": ["vms"]})))
    };
    let (r, _) = run(1);
    match r {
        Err(cf_host::error::RunError::Limit(l)) => assert_eq!(l.kind, cf_host::error::LimitKind::Handles, "{l}"),
        other => panic!("expected the handle limit, got {other:?}"),
    }
    let (r, records) = run(2);
    r.expect("collect");
    assert_eq!(vm_ids(&records).len(), 3_000);
}

