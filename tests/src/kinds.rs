//! Helpers of the per-kind collection tests (`dataprotection.rs`,
//! `operations.rs`): the records of one type by resource id, and the
//! one-list-call-per-page budget against the simulator's call counts.

use cf_host::record::Record;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The CloudService records of type `ty`, each as CloudForet's resource,
/// by resource id.
pub fn of_type(records: &[Record], ty: &str) -> BTreeMap<String, Value> {
    records
        .iter()
        .filter(|r| !r.is_error() && r.resource().get("cloud_service_type") == Some(&json!(ty)))
        .map(|r| {
            let res = r.to_json()["resource"].clone();
            (res["reference"]["resource_id"].as_str().unwrap_or_default().to_string(), res)
        })
        .collect()
}

/// The list calls `n` entities take in pages of 100 (v4's largest page).
pub fn pages(n: usize) -> u64 {
    n.div_ceil(100) as u64
}

/// List calls per page of 100: the kind's list key (`calls_per_kind`)
/// holds exactly one call per page (its one-entity checks between windows
/// of pages, at most one per window of 8, are counted apart as `?probe`).
pub fn assert_one_call_per_page(calls: &BTreeMap<String, u64>, key: &str, entities: usize) {
    let pages = pages(entities).max(1);
    assert_eq!(calls.get(key), Some(&pages), "{key}: {calls:?}");
    assert!(calls.get(&format!("{key}?probe")).copied().unwrap_or(0) <= pages.div_ceil(8), "{key}: {calls:?}");
}

/// A collection of the default kinds (no options) from `sim`: its records
/// and the simulator's calls per list.
pub fn collect_default(sim: &prism_sim::Simulator) -> (Vec<Record>, BTreeMap<String, u64>) {
    let (rt, plugin) = crate::host();
    let ctx = crate::sim_context(sim).build().expect("run context");
    let (r, records) = crate::block_on(crate::collect_all(rt, plugin, &ctx, &json!({})));
    r.expect("collect");
    (records, sim.state.calls_per_kind())
}
