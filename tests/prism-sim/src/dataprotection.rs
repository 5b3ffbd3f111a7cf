//! The estate's data protection: protection rules (policies), VM recovery
//! points and recovery plans, in the v3 shape, and their v4 renderings
//! (datapolicies `ProtectionPolicy`, dataprotection `RecoveryPoint`; the
//! v4.0 revision has no recovery plan list).
//!
//! Recovery points are taken relative to the estate's clock (`now`, when
//! it was generated), so an RPO check against the wall clock sees the same
//! picture in every run:
//!
//! - policy 0 `pp-production-1h` (RPO 1 h) protects `Environment:Production`,
//!   policy 1 `pp-web-daily` (RPO 24 h) `AppType:Web`, policy 2
//!   `pp-dev-manual` (no schedule, so no RPO) `Environment:Dev`;
//! - VM `i` with categories has no recovery point when `i % 5 == 0`, else
//!   its newest is `300 + (i % 4) * 1800` s old (older than 1 h for
//!   `i % 4` 2 and 3); every even one has one more two days old, and when
//!   `i % 7 == 1` a recent one that has already expired;
//! - plan 0 names VMs 0 and 6 and the category `Environment:Production`,
//!   plan 1 names VM 1 and a VM that does not exist (`decommissioned-db`).

use crate::estate::{uuid, vm_facts, EstateConfig};
use crate::v4::format_utc;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use crate::lazy::{CategoryCounts, LazyList};

/// (name, RPO in seconds, category key, value).
pub const POLICIES: [(&str, Option<u64>, &str, &str); 3] = [
    ("pp-production-1h", Some(3_600), "Environment", "Production"),
    ("pp-web-daily", Some(86_400), "AppType", "Web"),
    ("pp-dev-manual", None, "Environment", "Dev"),
];

/// The uuid of a VM that no recovery plan should name (it was deleted).
pub fn deleted_vm_uuid() -> String {
    uuid("vm-deleted", 0)
}

pub fn protection_rules(now: i64) -> Vec<Value> {
    POLICIES
        .iter()
        .enumerate()
        .map(|(p, (name, rpo, key, value))| {
            let schedules: Vec<Value> = rpo
                .iter()
                .map(|r| json!({"recovery_point_objective_secs": r, "snapshot_type": "CRASH_CONSISTENT",
                                "local_snapshot_retention_policy": {"num_snapshots": 24}, "remote_snapshot_retention_policy": {"num_snapshots": 24}}))
                .collect();
            json!({
                "metadata": {"kind": "protection_rule", "uuid": uuid("protection_rule", p), "creation_time": format_utc(now - 30 * 86_400)},
                "status": {"name": name, "description": format!("{name}: {key}:{value}"), "state": "COMPLETE", "resources": {
                    "start_time": "",
                    "ordered_availability_zone_list": [{"availability_zone_url": uuid("az", 0), "cluster_uuid": uuid("cluster", 0)}, {"availability_zone_url": uuid("az", 1)}],
                    "availability_zone_connectivity_list": [{"source_availability_zone_index": 0, "destination_availability_zone_index": 1, "snapshot_schedule_list": schedules}],
                    "category_filter": {"type": "CATEGORIES_MATCH_ANY", "kind_list": ["vm"], "params": {*key: [value]}},
                }}
            })
        })
        .collect()
}

/// The recovery points of VM `i`: (age in seconds, expires in seconds from now).
fn points_of_vm(cfg: &EstateConfig, i: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if vm_facts(cfg, i).categories.is_empty() || i.is_multiple_of(5) {
        return out;
    }
    out.push((300 + (i % 4) as i64 * 1_800, 7 * 86_400));
    if i.is_multiple_of(2) {
        out.push((2 * 86_400, 5 * 86_400));
    }
    if i % 7 == 1 {
        out.push((60, -10));
    }
    out
}

/// How many recovery points a VM has repeats with its index every
/// `PERIOD` VMs (categories by `i % 3`, then `i % 5`, `i % 2`, `i % 7`,
/// `i % 4`).
const PERIOD: usize = 420;

/// The VM recovery points, one list entry per point, VM by VM: rendered
/// on demand (point `k` is found from the count of points per period of
/// VMs), so a million VMs hold no recovery point in memory.
pub fn vm_recovery_points(cfg: &EstateConfig, now: i64) -> LazyList {
    // prefix[r]: the points of VMs 0..r of a period.
    let mut prefix = vec![0usize; PERIOD + 1];
    for r in 0..PERIOD {
        prefix[r + 1] = prefix[r] + points_of_vm(cfg, r).len();
    }
    let per_period = prefix[PERIOD];
    let total = cfg.vms / PERIOD * per_period + prefix[cfg.vms % PERIOD];
    let cfg = cfg.clone();
    let render = move |k: usize| {
        let (period, rest) = (k / per_period.max(1), k % per_period.max(1));
        let r = prefix.partition_point(|p| *p <= rest) - 1;
        let i = period * PERIOD + r;
        let (age, ttl) = points_of_vm(&cfg, i)[rest - prefix[r]];
        let f = vm_facts(&cfg, i);
        json!({
            "metadata": {"kind": "vm_recovery_point", "uuid": uuid("vm_recovery_point", k), "creation_time": format_utc(now - age)},
            "status": {"name": format!("{}-rp-{k}", f.name), "state": "COMPLETE", "resources": {
                "parent_vm_reference": {"kind": "vm", "uuid": f.uuid, "name": f.name},
                "expiration_time_msecs": (now + ttl) * 1_000,
                "recovery_point_type": "CRASH_CONSISTENT",
                "consistency_group_uuid": uuid("consistency_group", i),
            }}
        })
    };
    LazyList::new(total, "vm_recovery_point", Arc::new(render), CategoryCounts::new())
}

pub fn recovery_plans(cfg: &EstateConfig, now: i64) -> Vec<Value> {
    let vm = |i: usize| {
        let f = vm_facts(cfg, i % cfg.vms.max(1));
        json!({"any_entity_reference": {"kind": "vm", "uuid": f.uuid, "name": f.name}})
    };
    let plans = [
        ("rp-production", vec![vm(0), vm(6), json!({"categories": {"Environment": "Production"}})]),
        ("rp-web", vec![vm(1), json!({"any_entity_reference": {"kind": "vm", "uuid": deleted_vm_uuid(), "name": "decommissioned-db"}})]),
    ];
    plans
        .into_iter()
        .enumerate()
        .map(|(p, (name, entities))| {
            json!({
                "metadata": {"kind": "recovery_plan", "uuid": uuid("recovery_plan", p), "creation_time": format_utc(now - 20 * 86_400)},
                "status": {"name": name, "description": format!("{name} failover"), "state": "COMPLETE", "resources": {
                    "stage_list": [{"stage_uuid": uuid("stage", p), "delay_time_secs": 0, "stage_work": {"recover_entities": {"entity_info_list": entities}}}],
                    "parameters": {},
                }}
            })
        })
        .collect()
}

fn s(v: &Value, p: &str) -> Value {
    v.pointer(p).cloned().unwrap_or(Value::Null)
}

/// A v3 protection rule as a v4 `datapolicies.v4.config.ProtectionPolicy`
/// (`categories`: (key, value) → the v4 category's extId).
pub fn protection_policy(v3: &Value, categories: &BTreeMap<(String, String), String>) -> Value {
    let r = s(v3, "/status/resources");
    let ids: Vec<Value> = r
        .pointer("/category_filter/params")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .flat_map(|(k, vs)| vs.as_array().cloned().unwrap_or_default().into_iter().filter_map(move |v| Some((k.clone(), v.as_str()?.to_string()))))
        .filter_map(|pair| categories.get(&pair).map(|id| json!(id)))
        .collect();
    let configs: Vec<Value> = r
        .pointer("/availability_zone_connectivity_list/0/snapshot_schedule_list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|sch| {
            json!({
                "sourceLocationLabel": "primary",
                "remoteLocationLabel": "dr",
                "schedule": {
                    "recoveryPointType": sch["snapshot_type"],
                    "recoveryPointObjectiveTimeSeconds": sch["recovery_point_objective_secs"],
                    "retention": {"$objectType": "datapolicies.v4.config.LinearRetention", "local": 24, "remote": 24},
                },
            })
        })
        .collect();
    json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "description": s(v3, "/status/description"),
        "categoryIds": ids,
        "replicationLocations": [
            {"label": "primary", "domainManagerExtId": uuid("az", 0), "isPrimary": true},
            {"label": "dr", "domainManagerExtId": uuid("az", 1), "isPrimary": false},
        ],
        "replicationConfigurations": configs,
    })
}

/// A v3 VM recovery point as a v4 `dataprotection.v4.config.RecoveryPoint`
/// holding its one VM's recovery point.
pub fn recovery_point(v3: &Value) -> Value {
    let ms = v3.pointer("/status/resources/expiration_time_msecs").and_then(Value::as_i64);
    json!({
        "extId": s(v3, "/metadata/uuid"),
        "name": s(v3, "/status/name"),
        "creationTime": s(v3, "/metadata/creation_time"),
        "expirationTime": ms.map(|ms| format_utc(ms / 1_000)),
        "status": "COMPLETE",
        "recoveryPointType": s(v3, "/status/resources/recovery_point_type"),
        "vmRecoveryPoints": [{"vmExtId": s(v3, "/status/resources/parent_vm_reference/uuid")}],
    })
}
