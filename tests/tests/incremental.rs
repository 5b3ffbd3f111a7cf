//! Incremental VM collection (option `incremental`) through the real host
//! and its `state` interface, against the simulator whose estate changes
//! between runs: a run after changes reads only the changes and the ids, and
//! returns exactly what a full collection of the changed estate returns;
//! anything it cannot account for makes it collect fully.

use cf_host::host::state::MemoryState;
use cf_host::record::Record;
use cf_host::runtime::CollectReport;
use cf_tests::{block_on, collect_all, host};
use prism_sim::estate::{uuid, EstateConfig};
use prism_sim::{Faults, PageFault, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

fn sim(v4: bool) -> Simulator {
    let estate = EstateConfig { vms: 230, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, v4, ..SimConfig::default() })).expect("simulator starts")
}

/// One VM collection with `options`, keeping the collector's state in `state`.
fn run(sim: &Simulator, state: &Arc<MemoryState>, options: Value) -> (CollectReport, BTreeMap<String, Value>) {
    let (rt, plugin) = host();
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ctx = cf_tests::sim_context(sim).options(options).state(state.clone()).log_capture(logs.clone()).build().unwrap();
    let (r, records) = block_on(collect_all(rt, plugin, &ctx, &json!({"resource_kinds": ["vms"]})));
    for l in logs.lock().unwrap().iter() {
        eprintln!("guest log: {} {} {:?}", l.level, l.message, l.fields);
    }
    let report = r.expect("collect");
    assert_eq!(report.errors, 0, "{records:?}");
    (report, vms(&records))
}

/// VM records by resource id.
fn vms(records: &[Record]) -> BTreeMap<String, Value> {
    records
        .iter()
        .filter(|r| r.resource().get("cloud_service_type") == Some(&json!("VirtualMachine")))
        .map(|r| {
            let v = r.to_json();
            (v["resource"]["reference"]["resource_id"].as_str().unwrap_or_default().to_string(), v)
        })
        .collect()
}

/// List calls since `before`, by kind.
fn calls_since(sim: &Simulator, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    sim.state
        .calls_per_kind()
        .into_iter()
        .map(|(k, n)| {
            let d = n - before.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What a plain full collection of the simulator's current estate returns.
fn full(sim: &Simulator) -> BTreeMap<String, Value> {
    run(sim, &Arc::new(MemoryState::default()), json!({})).1
}

/// Rename one VM, delete one, create one (all after every simulated change).
fn change(sim: &Simulator) -> (String, String, String) {
    let (renamed, deleted) = (uuid("vm", 3), uuid("vm", 5));
    assert!(sim.state.update_vm(&renamed, "renamed-vm", "2030-01-01T00:00:00Z"));
    assert!(sim.state.remove_vm(&deleted));
    let added = sim.state.add_vm("2030-01-02T00:00:00Z");
    (renamed, deleted, added)
}

fn incremental_run_reads_only_changes_and_ids(v4: bool) {
    let (full_list, changes, ids) = if v4 { ("v4/vms", "v4/vms?filter", "v4/vms?select") } else { ("vms", "vms?filter", "groups") };
    let sim = sim(v4);
    let state = Arc::new(MemoryState::default());
    let options = json!({"incremental": true});

    // First run: no cache, so a full collection that fills it.
    let before = sim.state.calls_per_kind();
    let (first, records) = run(&sim, &state, options.clone());
    let calls = calls_since(&sim, &before);
    assert!(calls.contains_key(full_list) && !calls.contains_key(changes), "{calls:?}");
    assert_eq!(records.len(), 230);
    assert_eq!(records, full(&sim), "the first run is an ordinary full collection");
    let ns = cf_host::host::state::Namespace { tenant: "t1".into(), collector: host().1.name.clone() };
    let kept = state.dump(&ns);
    assert!(kept.keys().any(|k| k.ends_with("/manifest")), "{:?}", kept.keys().collect::<Vec<_>>());

    // The estate changes; the second run reads the changes and the ids only.
    let (renamed, deleted, added) = change(&sim);
    let before = sim.state.calls_per_kind();
    let (second, records) = run(&sim, &state, options.clone());
    let calls = calls_since(&sim, &before);
    assert!(!calls.contains_key(full_list), "no full VM list: {calls:?}");
    assert_eq!((calls.get(changes), calls.contains_key(ids)), (Some(&1), true), "{calls:?}");
    assert_eq!(records.len(), 230, "one VM deleted, one created");
    assert_eq!(records[&renamed]["resource"]["name"], "renamed-vm");
    assert!(!records.contains_key(&deleted) && records.contains_key(&added));
    assert_eq!(records, full(&sim), "the same records as a full collection of the changed estate");
    assert_eq!(second.records, first.records);

    // A third run without changes is incremental again and still complete.
    let before = sim.state.calls_per_kind();
    let (_, again) = run(&sim, &state, options.clone());
    assert!(!calls_since(&sim, &before).contains_key(full_list));
    assert_eq!(again, records);
}

#[test]
fn v3_incremental_run_reads_only_changes_and_ids() {
    incremental_run_reads_only_changes_and_ids(false);
}

#[test]
fn v4_incremental_run_reads_only_changes_and_ids() {
    incremental_run_reads_only_changes_and_ids(true);
}

#[test]
fn what_the_run_cannot_account_for_makes_it_full() {
    let sim = sim(false);
    let state = Arc::new(MemoryState::default());
    let options = json!({"incremental": true, "max_retries": 0});
    run(&sim, &state, options.clone());

    // The id listing fails: a full collection instead, with no error resource.
    change(&sim);
    sim.set_faults(Faults { pages: vec![PageFault { kind: "groups".into(), offset: 0, status: 500, times: Some(1) }], ..Faults::default() });
    let before = sim.state.calls_per_kind();
    let (_, records) = run(&sim, &state, options.clone());
    assert!(calls_since(&sim, &before).contains_key("vms"), "fell back to the full list");
    assert_eq!(records, full(&sim));

    // A VM the cache lacks although it did not change (its time lies before
    // the watermark less the overlap): full again, and nothing is lost.
    let old = sim.state.add_vm("2020-01-01T00:00:00Z");
    let before = sim.state.calls_per_kind();
    let (_, records) = run(&sim, &state, options.clone());
    assert!(calls_since(&sim, &before).contains_key("vms"), "fell back to the full list");
    assert!(records.contains_key(&old));
    assert_eq!(records, full(&sim));

    // A refused change filter (an older Prism): full as well.
    sim.set_faults(Faults { pages: vec![PageFault { kind: "vms".into(), offset: 0, status: 400, times: Some(1) }], ..Faults::default() });
    let before = sim.state.calls_per_kind();
    let (_, records) = run(&sim, &state, options.clone());
    let calls = calls_since(&sim, &before);
    assert!(calls.contains_key("vms?filter") && calls.contains_key("vms"), "{calls:?}");
    assert_eq!(records, full(&sim));

    // A cache another tenant cannot see: tenant t2 starts full.
    let ns = cf_host::host::state::Namespace { tenant: "t2".into(), collector: host().1.name.clone() };
    assert!(state.dump(&ns).is_empty());
}

/// A server that loses a page silently (an empty page although its total
/// says there is more) must not shorten the incremental run's lists: a
/// short id list would drop cached VMs, which CloudForet then deletes, and
/// a short change list would keep stale ones. The run collects fully.
#[test]
fn a_silently_lost_page_makes_the_run_full() {
    // One VM per page, so each list has a second page to lose: the change
    // list (v3), the id list (v4), the id list through the groups API (v3).
    for (v4, lost, full_list) in [(false, "vms", "vms"), (true, "vms", "v4/vms"), (false, "groups", "vms")] {
        let sim = sim(v4);
        let state = Arc::new(MemoryState::default());
        let options = json!({"incremental": true, "page_size": 1});
        run(&sim, &state, options.clone());
        change(&sim);
        sim.set_faults(Faults { pages: vec![PageFault { kind: lost.into(), offset: 1, status: 200, times: Some(1) }], ..Faults::default() });
        let before = sim.state.calls_per_kind();
        let (_, records) = run(&sim, &state, options.clone());
        assert!(calls_since(&sim, &before).contains_key(full_list), "fell back to the full list (v4: {v4}, lost: {lost})");
        assert_eq!(records, full(&sim), "v4: {v4}, lost: {lost}");
    }
}

#[test]
fn a_full_collection_comes_every_full_every_runs() {
    let sim = sim(false);
    let state = Arc::new(MemoryState::default());
    let options = json!({"incremental": {"full_every": 2}});
    let mut full_lists = Vec::new();
    for _ in 0..4 {
        let before = sim.state.calls_per_kind();
        run(&sim, &state, options.clone());
        full_lists.push(calls_since(&sim, &before).contains_key("vms"));
    }
    assert_eq!(full_lists, [true, false, true, false]);
}

#[test]
fn bad_incremental_options_are_refused_by_name() {
    let (rt, plugin) = host();
    for (bad, says) in [
        (json!({"incremental": "yes"}), "options field 'incremental' must be"),
        (json!({"incremental": {"full_every": 0}}), "incremental.full_every' must be 1-1000"),
        (json!({"incremental": {"every": 3}}), "unknown key 'every'"),
    ] {
        let ctx = rt.context("t1").options(bad).build().unwrap();
        let (r, _) = block_on(collect_all(rt, plugin, &ctx, &json!({})));
        let e = r.expect_err("refused");
        assert_eq!(e.code(), cf_host::ErrorCode::InvalidArgument);
        assert!(e.message().contains(says), "{e}");
    }
}
