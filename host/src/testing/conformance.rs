//! `cf-host test --conformance`: does a component behave as a CloudForet
//! collector this host can serve?
//!
//! [`run`] loads the component, calls `init`, `get-tasks` (unless task
//! options are given) and `collect` for each task (at most [`MAX_TASKS`])
//! in the [`Harness`], with HTTP answered by [`NotFound`] (404 to every
//! request) or a cassette. [`check`] then judges what was observed, a pure
//! function unit-tested natively: the world is supported, the identity
//! section names a plugin and a semver version, `init` answers an options
//! schema that is a JSON object, `collect` ends without trap or limit, its
//! errors are typed `collector-error`s, no emitted item was rejected by the
//! host's record checks, cloud service types carry console labels (and,
//! as a warning, a `spaceone:icon` tag), and cloud services have a
//! `reference.resource_id` and a type that was emitted.

use super::cassette::{Cassette, Replayer};
use super::{Call, Harness, Outcome};
use crate::error::RunError;
use crate::host::http::{HttpTransport, InboundResponse, OutboundRequest, TransportFuture};
use crate::record::{Record, ResourceType, REJECTED_PREFIX};
use crate::registry::identity::{self, EmbeddedInfo};
use crate::runtime::PluginMetadata;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The labels CloudForet's console knows for a cloud service type
/// (its menu and the Server page).
pub const CONSOLE_LABELS: [&str; 10] =
    ["Server", "Compute", "Container", "Database", "Networking", "Storage", "Security", "Analytics", "Application Integration", "Management"];

/// The tag whose value is a cloud service type's icon in the console.
pub const ICON_TAG: &str = "spaceone:icon";

/// Most tasks of `get-tasks` collected.
pub const MAX_TASKS: usize = 5;

/// The world versions (`major.minor`) this host links.
pub const SUPPORTED_WORLDS: [(u64, u64); 3] = [(0, 1), (0, 2), (0, 3)];

/// Input `cf-host test --conformance` could not use (no report is made).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Cassette(String),
}

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Worth fixing; does not fail the run.
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn verdict(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check { name, status, detail: detail.into() }
}

/// What a conformance run observed: the input of [`check`].
#[derive(Debug)]
pub struct Observed {
    /// The exported world's version, or why the component did not load.
    pub world: Result<semver::Version, String>,
    /// The `cloudforet-plugin` section.
    pub identity: Result<Option<EmbeddedInfo>, String>,
    /// `init`'s answer (None: not called, the component did not load).
    pub init: Option<Result<PluginMetadata, RunError>>,
    /// `get-tasks`' answer (None: not called: task options were given).
    pub tasks: Option<Result<Vec<Value>, RunError>>,
    /// One `collect` per task: its task options and outcome.
    pub collects: Vec<(Value, Outcome)>,
}

/// The checks' verdicts.
#[derive(Debug)]
pub struct Report {
    /// `name (sha256:...)` of the component.
    pub plugin: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The check named `name`.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The printed report: one line per check, then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "cf-host test --conformance: {}", self.plugin);
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let _ = writeln!(out, "  {}  {:<width$}  {}", c.status.as_str(), c.name, c.detail.replace('\n', "\n        "));
        }
        let (fail, warn, pass) = (self.count(Status::Fail), self.count(Status::Warn), self.count(Status::Pass));
        if self.passed() {
            let _ = writeln!(out, "PASS: {pass} checks passed, {warn} warnings");
        } else {
            let _ = writeln!(out, "FAIL: {fail} checks failed, {warn} warnings, {pass} passed");
        }
        out
    }
}

/// Answers 404 to every request: a collector meets an endpoint that has
/// nothing, and must end with a typed error or an empty collection.
pub struct NotFound;

impl HttpTransport for NotFound {
    fn perform<'a>(&'a self, _req: &'a OutboundRequest, _timeout: Duration, _max_body: u64) -> TransportFuture<'a> {
        Box::pin(async {
            Ok(InboundResponse {
                status: 404,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"message": "not found (cf-host conformance mock)"}"#.to_vec(),
            })
        })
    }
}

/// What `cf-host test --conformance` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct ConformanceArgs {
    pub plugin: PathBuf,
    /// Answer HTTP from this cassette instead of 404s.
    pub cassette: Option<PathBuf>,
    /// Options (default: the cassette's, or `{}`).
    pub options: Option<Value>,
    /// Collect this one task instead of `get-tasks`' tasks (default: the
    /// cassette's task options, if it has them).
    pub task_options: Option<Value>,
}

/// Runs the component through its calls and judges it.
pub async fn run(args: &ConformanceArgs) -> Result<Report, ConformanceError> {
    let bytes = std::fs::read(&args.plugin).map_err(|source| ConformanceError::Read { path: args.plugin.display().to_string(), source })?;
    let cassette = args.cassette.as_deref().map(Cassette::load).transpose().map_err(ConformanceError::Cassette)?;
    let identity = identity::embedded(&bytes);
    let harness = match Harness::load(&args.plugin) {
        Ok(h) => h,
        Err(e) => {
            let observed = Observed { world: Err(e), identity, init: None, tasks: None, collects: Vec::new() };
            return Ok(Report { plugin: args.plugin.display().to_string(), checks: check(&observed) });
        }
    };
    let plugin = format!("{} ({})", harness.plugin().name, harness.plugin().short_digest());
    let mut call: Call = match &cassette {
        Some(c) => harness.call_for(c),
        None => harness.call(),
    };
    if let Some(o) = &args.options {
        call.options = o.clone();
    }
    let init = harness.init(&call).await;
    // A cassette answers the task it was recorded with.
    let given = args.task_options.clone().or_else(|| cassette.as_ref().and_then(|c| c.task_options.clone()));
    let (tasks, task_list) = match given {
        Some(t) => (None, vec![t]),
        None => {
            let r = harness.get_tasks(&call).await;
            let list = match &r {
                Ok(t) if !t.is_empty() => t.iter().take(MAX_TASKS).cloned().collect(),
                _ => vec![Value::Object(Default::default())],
            };
            (Some(r), list)
        }
    };
    let mut collects = Vec::new();
    for (i, task) in task_list.into_iter().enumerate() {
        let mut call = call.clone().task_options(task.clone());
        // A tenant per task: one task's failures do not open the circuit
        // breaker the next task meets (breakers are per tenant and origin).
        call.tenant = format!("{}-{i}", call.tenant);
        let outcome = match &cassette {
            // A fresh replayer per task: each task sees the whole cassette.
            Some(c) => harness.replay(&call, &Replayer::new(c.clone())).await,
            None => harness.collect(&call, Arc::new(NotFound)).await,
        };
        collects.push((task, outcome));
    }
    let observed = Observed { world: Ok(harness.plugin().world.clone()), identity, init: Some(init), tasks, collects };
    Ok(Report { plugin, checks: check(&observed) })
}

/// The checks over what a run observed.
pub fn check(o: &Observed) -> Vec<Check> {
    let mut checks = vec![check_world(&o.world), check_identity(&o.identity)];
    if o.world.is_err() {
        return checks;
    }
    if let Some(init) = &o.init {
        checks.push(check_init(init));
    }
    if let Some(tasks) = &o.tasks {
        checks.push(match tasks {
            Ok(t) if t.len() > MAX_TASKS => verdict("get-tasks", Status::Pass, format!("{} tasks (the first {MAX_TASKS} collected)", t.len())),
            Ok(t) if t.is_empty() => verdict("get-tasks", Status::Warn, "no tasks; collected once with task options {}"),
            Ok(t) => verdict("get-tasks", Status::Pass, format!("{} task(s)", t.len())),
            Err(e) => verdict("get-tasks", Status::Fail, format!("failed, {}: {}", e.code().grpc_name(), e.message())),
        });
    }
    checks.push(check_completes(&o.collects));
    checks.push(check_typed_errors(&o.collects));
    let records: Vec<&Record> = o.collects.iter().flat_map(|(_, out)| out.records.iter()).collect();
    checks.push(check_rejections(&records));
    checks.push(check_types(&records));
    checks.push(check_services(&records));
    checks
}

fn check_world(world: &Result<semver::Version, String>) -> Check {
    let supported = SUPPORTED_WORLDS.iter().map(|(a, b)| format!("{a}.{b}.x")).collect::<Vec<_>>().join(", ");
    match world {
        Ok(v) if SUPPORTED_WORLDS.contains(&(v.major, v.minor)) => {
            verdict("world", Status::Pass, format!("cloudforet:collector@{v} (this host: {supported})"))
        }
        Ok(v) => verdict("world", Status::Fail, format!("cloudforet:collector@{v} is not one of {supported}")),
        Err(e) => verdict("world", Status::Fail, format!("the component does not load: {e}")),
    }
}

fn check_identity(identity: &Result<Option<EmbeddedInfo>, String>) -> Check {
    match identity {
        Ok(Some(i)) if i.name.trim().is_empty() => verdict("identity", Status::Fail, "the cloudforet-plugin section has an empty name"),
        Ok(Some(i)) => match semver::Version::parse(&i.version) {
            Ok(_) => verdict("identity", Status::Pass, format!("{} {}", i.name, i.version)),
            Err(e) => verdict("identity", Status::Fail, format!("{}: version {:?} is not semver: {e}", i.name, i.version)),
        },
        Ok(None) => verdict("identity", Status::Fail, format!("no {} custom section (name and version)", identity::SECTION)),
        Err(e) => verdict("identity", Status::Fail, e.clone()),
    }
}

fn check_init(init: &Result<PluginMetadata, RunError>) -> Check {
    match init {
        Ok(m) if m.options_schema.is_object() => verdict(
            "init",
            Status::Pass,
            format!("metadata with an options schema; resource types [{}]", m.supported_resource_types.join(", ")),
        ),
        Ok(m) => verdict("init", Status::Fail, format!("the options schema is not a JSON object: {}", m.options_schema)),
        Err(e) => verdict("init", Status::Fail, format!("failed, {}: {}", e.code().grpc_name(), e.message())),
    }
}

fn task_label(task: &Value) -> String {
    let t = task.to_string();
    if t.len() > 60 { format!("{}...", &t[..t.floor_char_boundary(57)]) } else { t }
}

fn check_completes(collects: &[(Value, Outcome)]) -> Check {
    let mut bad = Vec::new();
    let mut summary = Vec::new();
    for (task, out) in collects {
        match &out.result {
            Ok(r) => summary.push(format!("task {}: ok, {} records", task_label(task), r.records)),
            Err(e @ (RunError::Trap(_) | RunError::Limit(_) | RunError::Host(_) | RunError::Load(_) | RunError::Input(_) | RunError::Shared(_))) => {
                bad.push(format!("task {}: {}", task_label(task), e.message()));
            }
            Err(e) => summary.push(format!("task {}: {} ({}), {} records", task_label(task), e.code().grpc_name(), e.message(), out.records.len())),
        }
    }
    if bad.is_empty() {
        verdict("collect", Status::Pass, summary.join("\n"))
    } else {
        verdict("collect", Status::Fail, bad.join("\n"))
    }
}

fn check_typed_errors(collects: &[(Value, Outcome)]) -> Check {
    let untyped: Vec<String> = collects
        .iter()
        .filter_map(|(task, out)| match &out.result {
            Err(RunError::Trap(m)) => Some(format!("task {}: trapped instead of returning a collector-error: {m}", task_label(task))),
            _ => None,
        })
        .collect();
    let typed = collects.iter().filter(|(_, out)| matches!(out.result, Err(RunError::Collector(..) | RunError::Egress(_)))).count();
    if untyped.is_empty() {
        verdict("typed-errors", Status::Pass, format!("{typed} collector-error(s), none untyped"))
    } else {
        verdict("typed-errors", Status::Fail, untyped.join("\n"))
    }
}

fn check_rejections(records: &[&Record]) -> Check {
    let rejected: Vec<&str> = records
        .iter()
        .filter(|r| r.is_error())
        .filter_map(|r| r.message.as_deref())
        .filter(|m| m.starts_with(REJECTED_PREFIX))
        .collect();
    if rejected.is_empty() {
        verdict("records", Status::Pass, format!("{} records, none rejected by the host's checks", records.len()))
    } else {
        let shown: Vec<&str> = rejected.iter().take(3).copied().collect();
        verdict("records", Status::Fail, format!("{} of {} records rejected by the host:\n{}", rejected.len(), records.len(), shown.join("\n")))
    }
}

fn text<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn has_tag(m: &serde_json::Map<String, Value>, tag: &str) -> bool {
    match m.get("tags") {
        Some(Value::Object(t)) => t.get(tag).and_then(Value::as_str).is_some_and(|v| !v.is_empty()),
        Some(Value::Array(t)) => t.iter().any(|e| e.get("key").and_then(Value::as_str) == Some(tag)),
        _ => false,
    }
}

fn check_types(records: &[&Record]) -> Check {
    let types: Vec<_> = records.iter().filter(|r| r.resource_type == ResourceType::CloudServiceType).map(|r| r.resource()).collect();
    if types.is_empty() {
        return verdict("cloud-service-types", Status::Pass, "none emitted");
    }
    let (mut fails, mut warns) = (Vec::new(), Vec::new());
    for t in &types {
        let name = format!("{}/{}", text(t, "group"), text(t, "name"));
        let labels: Vec<&str> = t.get("labels").and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let unknown: Vec<&str> = labels.iter().copied().filter(|l| !CONSOLE_LABELS.contains(l)).collect();
        if !unknown.is_empty() {
            fails.push(format!("{name}: labels {unknown:?} are not the console's ({})", CONSOLE_LABELS.join(", ")));
        } else if labels.is_empty() {
            warns.push(format!("{name}: no labels (the console's menu groups types by them)"));
        }
        if !has_tag(t, ICON_TAG) {
            warns.push(format!("{name}: no {ICON_TAG} tag"));
        }
    }
    if !fails.is_empty() {
        fails.extend(warns);
        verdict("cloud-service-types", Status::Fail, fails.join("\n"))
    } else if !warns.is_empty() {
        verdict("cloud-service-types", Status::Warn, warns.join("\n"))
    } else {
        verdict("cloud-service-types", Status::Pass, format!("{} types with console labels and icons", types.len()))
    }
}

fn check_services(records: &[&Record]) -> Check {
    let types: BTreeSet<(String, String, String)> = records
        .iter()
        .filter(|r| r.resource_type == ResourceType::CloudServiceType)
        .map(|r| {
            let t = r.resource();
            (text(&t, "provider").to_string(), text(&t, "group").to_string(), text(&t, "name").to_string())
        })
        .collect();
    let mut fails = Vec::new();
    let mut n = 0;
    for r in records.iter().filter(|r| r.resource_type == ResourceType::CloudService) {
        n += 1;
        let s = r.resource();
        let key = (text(&s, "provider").to_string(), text(&s, "cloud_service_group").to_string(), text(&s, "cloud_service_type").to_string());
        let id = s.get("reference").and_then(|x| x.get("resource_id")).and_then(Value::as_str).unwrap_or_default();
        let name = format!("{}/{} {:?}", key.1, key.2, text(&s, "name"));
        if id.is_empty() {
            fails.push(format!("{name}: no reference.resource_id"));
        }
        if !types.contains(&key) {
            fails.push(format!("{name}: its type ({}, {}, {}) was not emitted", key.0, key.1, key.2));
        }
    }
    if fails.is_empty() {
        verdict("cloud-services", Status::Pass, format!("{n} services with a resource_id and an emitted type"))
    } else {
        let more = fails.len().saturating_sub(5);
        fails.truncate(5);
        if more > 0 {
            fails.push(format!("... and {more} more"));
        }
        verdict("cloud-services", Status::Fail, fails.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CollectReport;
    use serde_json::json;

    fn outcome(result: Result<CollectReport, RunError>, records: Vec<Record>) -> Outcome {
        Outcome {
            result,
            records,
            logs: Vec::new(),
            requests: Vec::new(),
            unmatched: Vec::new(),
            unused: Vec::new(),
            denied: Vec::new(),
            state: Default::default(),
        }
    }

    fn cst(labels: &[&str], icon: bool) -> Record {
        let tags = if icon { json!({ICON_TAG: "https://example.com/i.svg"}) } else { json!({}) };
        Record::from_resource(
            ResourceType::CloudServiceType,
            json!({"name": "Greeting", "group": "Hello", "provider": "hello", "labels": labels, "tags": tags}).as_object().unwrap().clone(),
        )
    }

    fn service(ty: &str, id: &str) -> Record {
        Record::from_resource(
            ResourceType::CloudService,
            json!({"name": "g", "provider": "hello", "cloud_service_group": "Hello", "cloud_service_type": ty, "reference": {"resource_id": id}})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn metadata() -> PluginMetadata {
        PluginMetadata { supported_resource_types: vec!["inventory.CloudService".into()], supported_schedules: vec![], supported_features: vec![], options_schema: json!({}) }
    }

    fn observed(result: Result<CollectReport, RunError>, records: Vec<Record>) -> Observed {
        Observed {
            world: Ok(semver::Version::new(0, 3, 0)),
            identity: Ok(Some(EmbeddedInfo { name: "hello".into(), version: "0.1.0".into() })),
            init: Some(Ok(metadata())),
            tasks: Some(Ok(vec![json!({})])),
            collects: vec![(json!({}), outcome(result, records))],
        }
    }

    fn report(o: &Observed) -> Report {
        Report { plugin: "t".into(), checks: check(o) }
    }

    fn status(r: &Report, name: &str) -> Status {
        r.get(name).unwrap_or_else(|| panic!("no check {name}: {r:?}")).status
    }

    #[test]
    fn a_conforming_run_passes_every_check() {
        let r = report(&observed(Ok(CollectReport::default()), vec![cst(&["Compute"], true), service("Greeting", "hello-1")]));
        assert!(r.passed(), "{}", r.render());
        assert_eq!(r.count(Status::Warn), 0, "{}", r.render());
        assert!(r.render().starts_with("cf-host test --conformance: t\n"));
    }

    #[test]
    fn a_typed_error_against_404s_passes_but_a_trap_fails() {
        let r = report(&observed(Err(RunError::Collector(crate::error::ErrorCode::NotFound, "no".into())), vec![]));
        assert!(r.passed(), "{}", r.render());
        let r = report(&observed(Err(RunError::Trap("panicked".into())), vec![]));
        assert_eq!(status(&r, "collect"), Status::Fail);
        assert_eq!(status(&r, "typed-errors"), Status::Fail);
        assert!(!r.passed());
    }

    #[test]
    fn a_limit_fails_collect() {
        let limit = crate::error::LimitExceeded { kind: crate::error::LimitKind::Output, detail: "more than 10 records".into() };
        let r = report(&observed(Err(RunError::Limit(limit)), vec![]));
        assert_eq!(status(&r, "collect"), Status::Fail);
    }

    #[test]
    fn rejected_items_fail_records() {
        let bad = Record::host_error(format!("{REJECTED_PREFIX}Region: field 'name' is empty"), "", "", "x");
        let guest_error = Record::host_error("page 3 lost".into(), "Hello", "Greeting", "hello");
        let r = report(&observed(Ok(CollectReport::default()), vec![guest_error.clone()]));
        assert_eq!(status(&r, "records"), Status::Pass, "a guest's own error resource is no rejection");
        let r = report(&observed(Ok(CollectReport::default()), vec![guest_error, bad]));
        assert_eq!(status(&r, "records"), Status::Fail);
        assert!(r.get("records").unwrap().detail.contains("1 of 2 records rejected"), "{}", r.render());
    }

    #[test]
    fn labels_outside_the_console_fail_and_a_missing_icon_warns() {
        let r = report(&observed(Ok(CollectReport::default()), vec![cst(&["Compute"], false), service("Greeting", "1")]));
        assert_eq!(status(&r, "cloud-service-types"), Status::Warn);
        assert!(r.passed());
        let r = report(&observed(Ok(CollectReport::default()), vec![cst(&["Compute", "Hello"], true), service("Greeting", "1")]));
        assert_eq!(status(&r, "cloud-service-types"), Status::Fail);
        assert!(r.get("cloud-service-types").unwrap().detail.contains("[\"Hello\"]"));
    }

    #[test]
    fn services_need_a_resource_id_and_an_emitted_type() {
        let r = report(&observed(Ok(CollectReport::default()), vec![cst(&["Compute"], true), service("Greeting", ""), service("Other", "2")]));
        assert_eq!(status(&r, "cloud-services"), Status::Fail);
        let d = &r.get("cloud-services").unwrap().detail;
        assert!(d.contains("no reference.resource_id") && d.contains("(hello, Hello, Other) was not emitted"), "{d}");
    }

    #[test]
    fn identity_init_and_world_failures() {
        let mut o = observed(Ok(CollectReport::default()), vec![]);
        o.identity = Ok(None);
        o.init = Some(Ok(PluginMetadata { options_schema: json!([1]), ..metadata() }));
        o.tasks = Some(Err(RunError::Collector(crate::error::ErrorCode::InvalidArgument, "bad".into())));
        let r = report(&o);
        for name in ["identity", "init", "get-tasks"] {
            assert_eq!(status(&r, name), Status::Fail, "{name}: {}", r.render());
        }
        o.identity = Ok(Some(EmbeddedInfo { name: "x".into(), version: "one".into() }));
        assert_eq!(status(&report(&o), "identity"), Status::Fail);
        o.world = Ok(semver::Version::new(0, 9, 0));
        assert_eq!(status(&report(&o), "world"), Status::Fail);
        o.world = Err("wrong world".into());
        let r = report(&o);
        assert_eq!(r.checks.len(), 2, "nothing ran: {}", r.render());
        assert!(!r.passed());
    }
}
