//! Expectation files (`cf-host test --expect FILE`) and golden NDJSON.
//!
//! ```json
//! {
//!   "error_code": null,
//!   "counts": {"Compute/VirtualMachine": 26, "Region": 3},
//!   "errors": 0,
//!   "resources": {"<resource_id>": {"data.vcpus": 4, "name": "vm-1"}},
//!   "requests": {"POST /api/nutanix/v3/vms/list": 3},
//!   "denied": 0
//! }
//! ```
//!
//! Every key is optional. `error_code` names the expected failure
//! (`UNAUTHENTICATED`, ...; absent or null = the run succeeds). `counts`
//! lists labels as [`Outcome::counts`] does; labels not listed are not
//! checked. Requests outside the cassette always fail a check.

use super::cassette::RecordedFailure;
use super::Outcome;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    #[serde(default)]
    pub errors: Option<u64>,
    #[serde(default)]
    pub resources: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    pub requests: BTreeMap<String, usize>,
    #[serde(default)]
    pub denied: Option<usize>,
}

impl Expect {
    pub fn load(path: &Path) -> Result<Expect, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read expectations {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("expectations {} are not valid: {e}", path.display()))
    }

    /// What a replay of a failed run's cassette must show: the same error
    /// code, or as many error resources.
    pub fn reproducing(f: &RecordedFailure) -> Expect {
        Expect { error_code: f.code.clone(), errors: f.error_resources, ..Expect::default() }
    }

    /// Every way `out` falls short, one line each; empty when it passes.
    pub fn check(&self, out: &Outcome) -> Vec<String> {
        let mut fails = Vec::new();
        match (&self.error_code, &out.result) {
            (None, Err(e)) => fails.push(format!("the run failed: {e}")),
            (Some(want), Ok(_)) => fails.push(format!("expected the run to fail with {want}, it succeeded")),
            (Some(want), Err(e)) if e.code().grpc_name() != want => {
                fails.push(format!("expected failure {want}, got {}: {e}", e.code().grpc_name()))
            }
            _ => {}
        }
        let counts = out.counts();
        for (label, want) in &self.counts {
            let got = counts.get(label).copied().unwrap_or(0);
            if got != *want {
                fails.push(format!("expected {want} {label}, got {got}"));
            }
        }
        if let Some(want) = self.errors {
            let got = out.errors().len() as u64;
            if got != want {
                fails.push(format!("expected {want} error resources, got {got}: {:?}", out.errors()));
            }
        }
        for (id, fields) in &self.resources {
            if out.service(id).is_none() {
                fails.push(format!("no cloud service with resource_id {id}"));
                continue;
            }
            for (path, want) in fields {
                match out.field(id, path) {
                    Some(got) if same(&got, want) => {}
                    Some(got) => fails.push(format!("{id}: expected {path} = {want}, got {got}")),
                    None => fails.push(format!("{id}: expected {path} = {want}, it is missing")),
                }
            }
        }
        for (key, want) in &self.requests {
            let got = match key.split_once(' ') {
                Some((method, path)) => out.calls_to(method, path),
                None => 0,
            };
            if got != *want {
                fails.push(format!("expected {want} requests {key}, got {got}"));
            }
        }
        if let Some(want) = self.denied
            && out.denied.len() != want
        {
            fails.push(format!("expected {want} denied requests, got {}: {:?}", out.denied.len(), out.denied));
        }
        for u in &out.unmatched {
            fails.push(format!("request not in the cassette: {}\n    {}", u.request, u.diff.replace('\n', "\n    ")));
        }
        fails
    }
}

/// Numbers compare by value (4 == 4.0), the rest exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Compares NDJSON with a golden file: `None` when equal, else a readable
/// diff of the first differing lines.
pub fn golden_diff(golden: &str, actual: &str) -> Option<String> {
    if golden == actual {
        return None;
    }
    let (g, a): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), actual.lines().collect());
    let mut out = vec![format!("golden has {} records, this run {}", g.len(), a.len())];
    let mut shown = 0;
    for i in 0..g.len().max(a.len()) {
        let (gl, al) = (g.get(i), a.get(i));
        if gl == al {
            continue;
        }
        if shown == 10 {
            out.push("...".into());
            break;
        }
        shown += 1;
        match (gl.and_then(|l| serde_json::from_str::<Value>(l).ok()), al.and_then(|l| serde_json::from_str::<Value>(l).ok())) {
            (Some(gv), Some(av)) => {
                let mut lines = Vec::new();
                super::cassette::json_diff("record", &gv, &av, &mut lines);
                out.push(format!("line {}:", i + 1));
                out.extend(lines.into_iter().map(|l| format!("  {}", l.replacen("- ", "- golden ", 1).replacen("+ ", "+ actual ", 1))));
            }
            _ => {
                out.push(format!("line {}:", i + 1));
                out.push(format!("  - golden {}", gl.unwrap_or(&"(none)")));
                out.push(format!("  + actual {}", al.unwrap_or(&"(none)")));
            }
        }
    }
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, ResourceType};
    use crate::{ErrorCode, RunError};
    use serde_json::json;

    fn vm(id: &str, vcpus: u64) -> Record {
        let resource = json!({"cloud_service_group": "Compute", "cloud_service_type": "VirtualMachine",
            "reference": {"resource_id": id}, "data": {"vcpus": vcpus}});
        Record::from_resource(ResourceType::CloudService, resource.as_object().unwrap().clone())
    }

    fn outcome(records: Vec<Record>, result: Result<crate::runtime::CollectReport, RunError>) -> Outcome {
        Outcome {
            result,
            records,
            logs: vec![],
            requests: vec![],
            unmatched: vec![],
            unused: vec![],
            denied: vec![],
            state: Default::default(),
        }
    }

    #[test]
    fn checks_counts_fields_and_errors() {
        let out = outcome(vec![vm("a", 4), vm("b", 2)], Ok(Default::default()));
        let e: Expect = serde_json::from_value(json!({
            "counts": {"Compute/VirtualMachine": 2}, "errors": 0,
            "resources": {"a": {"data.vcpus": 4.0}}, "requests": {"POST /x": 0}, "denied": 0
        }))
        .unwrap();
        assert_eq!(e.check(&out), Vec::<String>::new());
        let bad: Expect = serde_json::from_value(json!({
            "counts": {"Compute/VirtualMachine": 3}, "resources": {"a": {"data.vcpus": 8, "data.nope": 1}, "zzz": {}},
            "error_code": "UNAUTHENTICATED"
        }))
        .unwrap();
        let fails = bad.check(&out);
        assert_eq!(fails.len(), 5, "{fails:#?}");
        assert!(fails.iter().any(|f| f.contains("expected 3 Compute/VirtualMachine, got 2")));
        assert!(fails.iter().any(|f| f.contains("a: expected data.vcpus = 8, got 4")));
        assert!(fails.iter().any(|f| f.contains("data.nope = 1, it is missing")));
        let failed = outcome(vec![], Err(RunError::Collector(ErrorCode::Unauthenticated, "no".into())));
        let want_auth: Expect = serde_json::from_value(json!({"error_code": "UNAUTHENTICATED"})).unwrap();
        assert!(want_auth.check(&failed).is_empty());
        assert_eq!(Expect::default().check(&failed).len(), 1);
        assert!(serde_json::from_value::<Expect>(json!({"count": {}})).is_err(), "unknown keys are refused");
    }

    #[test]
    fn golden_diff_points_at_the_field() {
        assert_eq!(golden_diff("{\"a\":1}\n", "{\"a\":1}\n"), None);
        let d = golden_diff("{\"a\":1,\"b\":2}\n", "{\"a\":1,\"b\":3}\n{\"c\":1}\n").unwrap();
        assert!(d.contains("golden has 1 records, this run 2"), "{d}");
        assert!(d.contains("- golden record.b: 2") && d.contains("+ actual record.b: 3"), "{d}");
        assert!(d.contains("- golden (none)"), "{d}");
    }
}
