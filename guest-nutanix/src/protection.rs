//! Data protection flags (pure): which protected VMs have no recovery
//! point newer than their policy's RPO, which recovery points have
//! expired, and which recovery plans name VMs that no longer exist.
//!
//! The collector lists VMs, then recovery points, then protection
//! policies, then recovery plans (the order of [`Kind`]); [`Facts`] learns
//! from the VMs and recovery points (emitted, or read only for this when
//! they were not asked for) and flags each policy and plan before it goes
//! out. A flag the facts cannot decide (a list that lost a page) is
//! `null`, never a guess: a VM missing from a half-read list is not
//! "deleted", a VM whose recovery points were half read is not "violated".
//!
//! A policy protects the VMs in its categories: any of them
//! (`CATEGORIES_MATCH_ANY`, v3's usual filter and what v4 policies do), or
//! all of its keys with `CATEGORIES_MATCH_ALL`. Its RPO is the shortest of
//! its schedules'; a policy without one flags nothing (status `NO_RPO`).
//! An expired recovery point protects nothing.

use crate::normalize::group_and_type;
use crate::record::CloudService;
use crate::time::{format_time, parse_time};
use crate::v3::Kind;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Most VMs a policy record lists in `protected_vms` and in
/// `rpo_violated_vms` (the counts stay exact; the violators come first),
/// so a policy over a whole estate stays a record of bounded size.
pub const MAX_LISTED_VMS: usize = 1_000;

/// A protected VM's state against its policy's RPO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpoStatus {
    /// A recovery point newer than the RPO.
    Ok,
    /// Recovery points, none newer than the RPO.
    RpoViolated,
    /// No (unexpired) recovery point at all.
    NoRecoveryPoint,
    /// The policy states no RPO.
    NoRpo,
    /// The recovery point list lost a page: cannot tell.
    Unknown,
}

impl RpoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RpoStatus::Ok => "OK",
            RpoStatus::RpoViolated => "RPO_VIOLATED",
            RpoStatus::NoRecoveryPoint => "NO_RECOVERY_POINT",
            RpoStatus::NoRpo => "NO_RPO",
            RpoStatus::Unknown => "UNKNOWN",
        }
    }

    pub fn violated(self) -> bool {
        matches!(self, RpoStatus::RpoViolated | RpoStatus::NoRecoveryPoint)
    }
}

/// The status of a VM whose newest unexpired recovery point was taken at
/// `latest` (seconds since the epoch), under an RPO of `rpo` seconds.
pub fn rpo_status(rpo: Option<u64>, latest: Option<i64>, now: i64, points_complete: bool) -> RpoStatus {
    let Some(rpo) = rpo else { return RpoStatus::NoRpo };
    let rpo = i64::try_from(rpo).unwrap_or(i64::MAX);
    match latest {
        Some(t) if now.saturating_sub(t) <= rpo => RpoStatus::Ok,
        _ if !points_complete => RpoStatus::Unknown,
        Some(_) => RpoStatus::RpoViolated,
        None => RpoStatus::NoRecoveryPoint,
    }
}

#[derive(Debug)]
struct VmFact {
    name: String,
    categories: BTreeMap<String, String>,
}

/// What the run learned of VMs and recovery points.
#[derive(Debug)]
pub struct Facts {
    vms: BTreeMap<String, VmFact>,
    /// VM uuid → creation time of its newest unexpired recovery point.
    latest: BTreeMap<String, i64>,
    /// The VM list was read whole (no lost page).
    pub vms_complete: bool,
    /// The recovery point list was read whole.
    pub points_complete: bool,
    /// The run's clock (seconds since the epoch).
    pub now: i64,
}

impl Facts {
    pub fn new(now: i64) -> Facts {
        Facts { vms: BTreeMap::new(), latest: BTreeMap::new(), vms_complete: true, points_complete: true, now }
    }

    /// Learns from a VM or a recovery point record (others are ignored).
    pub fn observe(&mut self, cs: &CloudService) {
        let ty = cs.cloud_service_type.as_str();
        if ty == group_and_type(Kind::Vm).1 {
            let categories = cs
                .data
                .get("categories")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            self.vms.insert(cs.resource_id.clone(), VmFact { name: cs.name.clone(), categories });
        } else if ty == group_and_type(Kind::RecoveryPoint).1 {
            if expired(&cs.data, self.now) == Some(true) {
                return;
            }
            let Some(created) = cs.data.get("created_at").and_then(Value::as_str).and_then(parse_time) else { return };
            for vm in cs.data.get("vms").and_then(Value::as_array).into_iter().flatten() {
                if let Some(uuid) = vm.get("uuid").and_then(Value::as_str) {
                    let t = self.latest.entry(uuid.to_string()).or_insert(created);
                    *t = (*t).max(created);
                }
            }
        }
    }

    /// The VMs (uuid, name) a policy's category filter selects, by name.
    fn protected_by(&self, filter: &BTreeMap<String, Vec<String>>, match_all: bool) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .vms
            .iter()
            .filter(|(_, vm)| {
                let hit = |(k, values): (&String, &Vec<String>)| vm.categories.get(k).is_some_and(|v| values.contains(v));
                !filter.is_empty() && if match_all { filter.iter().all(hit) } else { filter.iter().any(hit) }
            })
            .map(|(uuid, vm)| (uuid.as_str(), vm.name.as_str()))
            .collect();
        out.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        out
    }

    /// Adds a protection policy's flags to its `data`: `protected_vms`
    /// (each with its status and newest recovery point; violators first,
    /// at most [`MAX_LISTED_VMS`], `protected_vms_truncated` says whether
    /// more were left out), their count,
    /// `rpo_violated_vms` and its count, and `rpo_violated` (`true` when
    /// one VM is seen violating, `false` when none does and every list was
    /// read whole, else `null`).
    pub fn flag_policy(&self, cs: &mut CloudService) {
        let Value::Object(data) = &mut cs.data else { return };
        let rpo = data.get("rpo_secs").and_then(Value::as_u64);
        let filter: BTreeMap<String, Vec<String>> = data
            .get("category_filter")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()))
                    .collect()
            })
            .unwrap_or_default();
        let match_all = data.get("category_match").and_then(Value::as_str) == Some("CATEGORIES_MATCH_ALL");
        let mut protected = Vec::new();
        let mut violated = Vec::new();
        for (uuid, name) in self.protected_by(&filter, match_all) {
            let latest = self.latest.get(uuid).copied();
            let status = rpo_status(rpo, latest, self.now, self.points_complete);
            if status.violated() {
                violated.push(json!({"uuid": uuid, "name": name}));
            }
            protected.push(json!({"uuid": uuid, "name": name, "status": status.as_str(), "latest_recovery_point_at": latest.map(format_time)}));
        }
        let (protected_count, violated_count) = (protected.len(), violated.len());
        // Violators first (stable: by name within each), then cut.
        protected.sort_by_key(|v| v["status"] != RpoStatus::RpoViolated.as_str() && v["status"] != RpoStatus::NoRecoveryPoint.as_str());
        let truncated = protected_count > MAX_LISTED_VMS;
        protected.truncate(MAX_LISTED_VMS);
        violated.truncate(MAX_LISTED_VMS);
        let decided = self.vms_complete && (self.points_complete || rpo.is_none());
        let flag = if !violated.is_empty() {
            json!(true)
        } else if decided {
            json!(false)
        } else {
            Value::Null
        };
        data.insert("protected_vm_count".into(), json!(protected_count));
        data.insert("protected_vms".into(), Value::Array(protected));
        data.insert("protected_vms_truncated".into(), json!(truncated));
        data.insert("rpo_violated_count".into(), json!(violated_count));
        data.insert("rpo_violated_vms".into(), Value::Array(violated));
        data.insert("rpo_violated".into(), flag);
    }

    /// Adds a recovery plan's flags to its `data`: `missing_vms` (the VMs
    /// it names that the VM list does not hold), their count and
    /// `has_missing_vms`; all `null` when the VM list was not read whole.
    pub fn flag_plan(&self, cs: &mut CloudService) {
        let Value::Object(data) = &mut cs.data else { return };
        if !self.vms_complete {
            for k in ["missing_vms", "missing_vm_count", "has_missing_vms"] {
                data.insert(k.into(), Value::Null);
            }
            return;
        }
        let missing: Vec<Value> = data
            .get("vms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("uuid").and_then(Value::as_str).is_some_and(|u| !self.vms.contains_key(u)))
            .cloned()
            .collect();
        data.insert("missing_vm_count".into(), json!(missing.len()));
        data.insert("has_missing_vms".into(), json!(!missing.is_empty()));
        data.insert("missing_vms".into(), Value::Array(missing));
    }
}

/// Whether a recovery point's `data` says it expired before `now`
/// (`None`: it states no parsable expiry).
fn expired(data: &Value, now: i64) -> Option<bool> {
    let at = data.get("expires_at").and_then(Value::as_str).and_then(parse_time)?;
    Some(at <= now)
}

/// Sets a recovery point's `data.expired` against the run's clock (`null`
/// when it states no expiry).
pub fn flag_recovery_point(cs: &mut CloudService, now: i64) {
    let flag = expired(&cs.data, now);
    if let Value::Object(data) = &mut cs.data {
        data.insert("expired".into(), json!(flag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{self, Context};

    const NOW: i64 = 1_780_000_000;

    fn ctx() -> Context {
        Context { account: Some("pc".into()), base_url: "https://pc:9440".into(), ..Context::default() }
    }

    fn vm(uuid: &str, name: &str, categories: Value) -> CloudService {
        let raw = json!({"metadata": {"uuid": uuid, "categories": categories}, "status": {"name": name, "resources": {}}});
        normalize::service_of(Kind::Vm, &ctx(), raw).unwrap()
    }

    /// A v3 VM recovery point of `vm`, taken `age` seconds before NOW,
    /// expiring `ttl` seconds after NOW (negative: already expired).
    fn point(uuid: &str, vm: &str, age: i64, ttl: Option<i64>) -> CloudService {
        let mut resources = json!({"parent_vm_reference": {"kind": "vm", "uuid": vm}, "recovery_point_type": "CRASH_CONSISTENT"});
        if let Some(ttl) = ttl {
            resources["expiration_time_msecs"] = json!((NOW + ttl) * 1000);
        }
        let raw = json!({"metadata": {"uuid": uuid, "creation_time": format_time(NOW - age)}, "status": {"name": format!("rp-{uuid}"), "state": "COMPLETE", "resources": resources}});
        let mut cs = normalize::service_of(Kind::RecoveryPoint, &ctx(), raw).unwrap();
        flag_recovery_point(&mut cs, NOW);
        cs
    }

    fn policy(rpo: Option<u64>, params: Value, match_type: &str) -> CloudService {
        let schedule = match rpo {
            Some(r) => json!([{"recovery_point_objective_secs": r, "snapshot_type": "CRASH_CONSISTENT", "local_snapshot_retention_policy": {"num_snapshots": 24}}]),
            None => json!([]),
        };
        let raw = json!({"metadata": {"uuid": "pp-1", "creation_time": "2026-01-01T00:00:00Z"}, "status": {"name": "gold", "state": "COMPLETE", "resources": {
            "ordered_availability_zone_list": [{"availability_zone_url": "az-local", "cluster_uuid": "c1"}, {"availability_zone_url": "az-dr"}],
            "availability_zone_connectivity_list": [{"source_availability_zone_index": 0, "destination_availability_zone_index": 1, "snapshot_schedule_list": schedule}],
            "category_filter": {"type": match_type, "kind_list": ["vm"], "params": params}}}});
        normalize::service_of(Kind::ProtectionPolicy, &ctx(), raw).unwrap()
    }

    fn facts(records: &[CloudService]) -> Facts {
        let mut f = Facts::new(NOW);
        records.iter().for_each(|r| f.observe(r));
        f
    }

    fn statuses(cs: &CloudService) -> Vec<(String, String)> {
        cs.data["protected_vms"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap().into(), v["status"].as_str().unwrap().into())).collect()
    }

    #[test]
    fn rpo_status_covers_every_case() {
        assert_eq!(rpo_status(Some(3600), Some(NOW - 3600), NOW, true), RpoStatus::Ok, "exactly at the RPO is within it");
        assert_eq!(rpo_status(Some(3600), Some(NOW - 3601), NOW, true), RpoStatus::RpoViolated);
        assert_eq!(rpo_status(Some(3600), None, NOW, true), RpoStatus::NoRecoveryPoint);
        assert_eq!(rpo_status(None, None, NOW, true), RpoStatus::NoRpo);
        assert_eq!(rpo_status(Some(3600), None, NOW, false), RpoStatus::Unknown, "a lost page may hold it");
        assert_eq!(rpo_status(Some(3600), Some(NOW - 10), NOW, false), RpoStatus::Ok, "a recent one seen is enough");
        assert_eq!(rpo_status(Some(u64::MAX), Some(i64::MIN), NOW, true), RpoStatus::Ok, "no overflow");
        assert!(RpoStatus::NoRecoveryPoint.violated() && RpoStatus::RpoViolated.violated() && !RpoStatus::Unknown.violated());
    }

    /// A recent recovery point, an old one, an expired recent one, none:
    /// each VM's status, the violators by name and the flag.
    #[test]
    fn protected_vms_without_a_recovery_point_within_the_rpo_are_flagged() {
        let prod = json!({"Environment": "Production"});
        let records = [
            vm("v1", "db-1", prod.clone()),
            vm("v2", "db-2", prod.clone()),
            vm("v3", "db-3", prod.clone()),
            vm("v4", "db-4", prod.clone()),
            vm("v5", "web-1", json!({"Environment": "Staging"})),
            point("r1", "v1", 600, Some(86_400)),
            point("r1-old", "v1", 90_000, Some(86_400)),
            point("r2", "v2", 7_200, None),
            // Recent, but expired: protects nothing.
            point("r3", "v3", 60, Some(-1)),
            // Not protected by this policy: not listed.
            point("r5", "v5", 60, None),
        ];
        let f = facts(&records);
        let mut p = policy(Some(3600), json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        assert_eq!(p.instance_type.as_deref(), Some("RPO 1h"));
        f.flag_policy(&mut p);
        // Violators first, by name within each.
        let want = [("db-2", "RPO_VIOLATED"), ("db-3", "NO_RECOVERY_POINT"), ("db-4", "NO_RECOVERY_POINT"), ("db-1", "OK")];
        assert_eq!(statuses(&p), want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(p.data["protected_vms"][3]["latest_recovery_point_at"], format_time(NOW - 600), "the newer of v1's two");
        assert_eq!(p.data["protected_vms_truncated"], false);
        assert_eq!(p.data["rpo_violated"], true);
        assert_eq!(p.data["rpo_violated_count"], 3);
        assert_eq!(p.data["rpo_violated_vms"][0], json!({"uuid": "v2", "name": "db-2"}));
        assert_eq!(p.data["protected_vm_count"], 4);
        assert_eq!(records[8].data["expired"], true);
        assert_eq!(records[5].data["expired"], false);
        assert_eq!(records[7].data["expired"], Value::Null, "no expiry stated");
        assert_eq!(records[5].data["expires_at"], format_time(NOW + 86_400));
    }

    #[test]
    fn a_policy_without_rpo_or_without_recovery_points_or_matching_vms() {
        let prod = json!({"Environment": "Production"});
        // No RPO: nothing violated, and no recovery points needed to say so.
        let mut f = facts(&[vm("v1", "a", prod.clone())]);
        f.points_complete = false;
        let mut p = policy(None, json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!((p.data["rpo_secs"].clone(), p.instance_type.clone()), (Value::Null, None));
        assert_eq!(statuses(&p), [("a".to_string(), "NO_RPO".to_string())]);
        assert_eq!(p.data["rpo_violated"], false);
        // No recovery points at all: every protected VM violates.
        let f = facts(&[vm("v1", "a", prod.clone())]);
        let mut p = policy(Some(900), json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!(p.data["rpo_violated_count"], 1);
        assert_eq!(p.instance_type.as_deref(), Some("RPO 15m"));
        // No VM in its categories: nothing to flag.
        let mut p = policy(Some(900), json!({"Environment": ["Test"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!((p.data["protected_vm_count"].clone(), p.data["rpo_violated"].clone()), (json!(0), json!(false)));
        // MATCH_ALL needs every key.
        let f = facts(&[vm("v1", "a", json!({"Environment": "Production", "App": "db"})), vm("v2", "b", prod)]);
        let mut p = policy(Some(900), json!({"Environment": ["Production"], "App": ["db"]}), "CATEGORIES_MATCH_ALL");
        f.flag_policy(&mut p);
        assert_eq!(statuses(&p), [("a".to_string(), "NO_RECOVERY_POINT".to_string())]);
    }

    /// Lists that lost pages decide nothing they cannot: a violation seen
    /// stands, its absence is `null`.
    #[test]
    fn incomplete_lists_leave_the_flags_undecided() {
        let prod = json!({"Environment": "Production"});
        let mut f = facts(&[vm("v1", "a", prod.clone()), vm("v2", "b", prod.clone()), point("r1", "v1", 60, None)]);
        f.points_complete = false;
        let mut p = policy(Some(3600), json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!(statuses(&p), [("a".to_string(), "OK".to_string()), ("b".to_string(), "UNKNOWN".to_string())]);
        assert_eq!(p.data["rpo_violated"], Value::Null);
        let mut f = facts(&[vm("v1", "a", prod)]);
        f.vms_complete = false;
        let mut p = policy(Some(3600), json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!(p.data["rpo_violated"], true, "a violation seen stands");
    }

    /// A policy over more VMs than a record lists: the counts stay exact,
    /// the violators are listed first.
    #[test]
    fn a_policy_over_many_vms_lists_a_bounded_number_violators_first() {
        let n = MAX_LISTED_VMS + 500;
        let mut records: Vec<CloudService> = (0..n).map(|i| vm(&format!("v{i:05}"), &format!("vm-{i:05}"), json!({"Environment": "Production"}))).collect();
        // Every VM but the last 10 (by name) has a recent recovery point.
        records.extend((0..n - 10).map(|i| point(&format!("r{i}"), &format!("v{i:05}"), 60, None)));
        let f = facts(&records);
        let mut p = policy(Some(3600), json!({"Environment": ["Production"]}), "CATEGORIES_MATCH_ANY");
        f.flag_policy(&mut p);
        assert_eq!((p.data["protected_vm_count"].clone(), p.data["rpo_violated_count"].clone()), (json!(n), json!(10)));
        assert_eq!(p.data["protected_vms"].as_array().unwrap().len(), MAX_LISTED_VMS);
        assert_eq!(p.data["protected_vms_truncated"], true);
        assert_eq!(p.data["protected_vms"][0]["name"], format!("vm-{:05}", n - 10), "violators first");
        assert_eq!(p.data["protected_vms"][10]["status"], "OK");
        assert_eq!(p.data["rpo_violated_vms"].as_array().unwrap().len(), 10);
    }

    fn plan(vms: &[&str]) -> CloudService {
        let entities: Vec<Value> = vms.iter().map(|u| json!({"any_entity_reference": {"kind": "vm", "uuid": u, "name": format!("name-{u}")}})).collect();
        let raw = json!({"metadata": {"uuid": "rp-1"}, "status": {"name": "dr", "resources": {"stage_list": [
            {"stage_uuid": "s1", "stage_work": {"recover_entities": {"entity_info_list": entities}}},
            {"stage_uuid": "s2", "delay_time_secs": 60, "stage_work": {"recover_entities": {"entity_info_list": [{"categories": {"Environment": "Production"}}]}}}
        ]}}});
        normalize::service_of(Kind::RecoveryPlan, &ctx(), raw).unwrap()
    }

    #[test]
    fn recovery_plans_naming_deleted_vms_are_flagged() {
        let f = facts(&[vm("v1", "a", json!({}))]);
        let mut p = plan(&["v1", "gone"]);
        assert_eq!((p.data["stage_count"].clone(), p.data["vm_count"].clone()), (json!(2), json!(2)));
        assert_eq!(p.data["categories"], json!(["Environment:Production"]));
        f.flag_plan(&mut p);
        assert_eq!(p.data["missing_vms"], json!([{"uuid": "gone", "name": "name-gone"}]));
        assert_eq!((p.data["missing_vm_count"].clone(), p.data["has_missing_vms"].clone()), (json!(1), json!(true)));
        let mut ok = plan(&["v1"]);
        f.flag_plan(&mut ok);
        assert_eq!(ok.data["has_missing_vms"], false);
        // A plan by categories only names no VM: nothing missing.
        let mut by_category = plan(&[]);
        f.flag_plan(&mut by_category);
        assert_eq!(by_category.data["has_missing_vms"], false);
        // A VM list that lost a page cannot say a VM is gone.
        let mut half = facts(&[]);
        half.vms_complete = false;
        let mut p = plan(&["v1"]);
        half.flag_plan(&mut p);
        assert_eq!((p.data["missing_vms"].clone(), p.data["has_missing_vms"].clone()), (Value::Null, Value::Null));
    }

    #[test]
    fn malformed_data_protection_entities_are_errors_not_panics() {
        for kind in Kind::DATA_PROTECTION {
            assert!(normalize::service_of(kind, &ctx(), json!({"metadata": {}, "status": {"name": "x"}})).unwrap_err().contains("metadata.uuid"), "{kind:?}");
            assert!(normalize::service_of(kind, &ctx(), json!([1])).is_err());
            assert!(normalize::service_of(kind, &ctx(), json!({"metadata": {"uuid": "u"}, "status": {"name": "n", "resources": {"stage_list": 5, "availability_zone_connectivity_list": 5, "vm_reference_list": 5}}})).is_err());
        }
        // A recovery point without a name is named by its id; one with an
        // unparsable time is kept, and feeds no flag.
        let rp = normalize::service_of(Kind::RecoveryPoint, &ctx(), json!({"metadata": {"uuid": "u", "creation_time": "yesterday"}, "status": {}})).unwrap();
        assert_eq!(rp.name, "u");
        let mut f = Facts::new(NOW);
        f.observe(&rp);
        assert!(f.latest.is_empty());
        // Flags on a record whose data is not an object do nothing.
        let mut odd = rp.clone();
        odd.data = json!(null);
        f.flag_policy(&mut odd);
        f.flag_plan(&mut odd);
        flag_recovery_point(&mut odd, NOW);
        assert_eq!(odd.data, Value::Null);
    }
}
