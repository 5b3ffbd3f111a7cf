//! `cf-host test`: replay (or record) a cassette through a guest, print a
//! readable report, and say whether it passed.

use super::cassette::{Cassette, MatchMode, RecordedCall, Recorder, Replayer};
use super::expect::{golden_diff, Expect};
use super::{Harness, Outcome};
use crate::host::http::{ClientPool, HttpTransport, ReqwestTransport};
use crate::options::HostOptions;
use crate::secret::Secret;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// What `cf-host test` was asked to do.
#[derive(Clone, Debug)]
pub struct TestArgs {
    pub plugin: PathBuf,
    pub cassette: PathBuf,
    pub expect: Option<PathBuf>,
    pub golden: Option<PathBuf>,
    pub update_golden: bool,
    /// Record against this live endpoint (with `secret`) instead of replaying.
    pub record: Option<(url::Url, Value)>,
    /// Options; a replay defaults to the cassette's.
    pub options: Option<Value>,
    pub task_options: Option<Value>,
}

/// Runs the test; prints the report to stdout. `Ok(true)` = passed.
/// `Err` is for unusable input (missing files, invalid cassette).
pub async fn run(args: TestArgs) -> Result<bool, String> {
    let mut expect = match &args.expect {
        Some(p) => Expect::load(p)?,
        None => Expect::default(),
    };
    let harness = Harness::load(&args.plugin)?;
    let empty = || Value::Object(Default::default());
    let mut call = harness.call();
    // A cassette of a failed run: what the replay must reproduce.
    let mut recorded = None;
    let (outcome, source, ordered) = match &args.record {
        Some((endpoint, secret)) => {
            let options = args.options.clone().unwrap_or_else(empty);
            let task_options = args.task_options.clone().unwrap_or_else(empty);
            let (live, secret) = live(endpoint, secret, &options)?;
            let recorder = Recorder::new(live, &secret);
            call = call.secret(secret).options(options.clone()).task_options(task_options.clone());
            let out = harness.collect(&call, recorder.clone()).await;
            let mut cassette = recorder.cassette();
            cassette.options = Some(options);
            cassette.task_options = Some(task_options);
            let file = cassette.save(&args.cassette)?;
            (out, format!("recorded from {} into {}", endpoint.origin().ascii_serialization(), file.display()), false)
        }
        None => {
            let cassette = Cassette::load(&args.cassette)?;
            call = harness.call_for(&cassette);
            if let Some(o) = &args.options {
                call.options = o.clone();
            }
            if let Some(t) = &args.task_options {
                call.task_options = t.clone();
            }
            let n = cassette.interactions.len();
            let ordered = cassette.match_mode == MatchMode::Ordered;
            if let Some(f) = &cassette.failure
                && args.expect.is_none()
            {
                expect = Expect::reproducing(f);
            }
            recorded = Some((cassette.call.unwrap_or_default(), cassette.failure.clone(), cassette.truncated));
            let replayer = Replayer::new(cassette);
            (harness.replay(&call, &replayer).await, format!("cassette {} ({n} interactions)", args.cassette.display()), ordered)
        }
    };

    let mut report = String::new();
    let plugin = harness.plugin();
    let _ = writeln!(report, "cf-host test: {} ({}) against {source}", plugin.name, plugin.short_digest());
    let reproducing = match &recorded {
        Some((kind, failure, truncated)) => {
            if *kind != RecordedCall::Collect {
                let _ = writeln!(report, "Call: {}", kind.name());
            }
            if let Some(t) = truncated {
                let _ = writeln!(
                    report,
                    "Truncated: the recording kept its first {} bytes; {} later exchanges are missing, so the replay may fail earlier",
                    t.max_bytes, t.dropped
                );
            }
            failure.as_ref().map(|f| {
                let _ = writeln!(report, "Recorded failure: {} ({} on {}, tenant {}, {})", f.describe(), f.run_id, f.plugin, f.tenant, f.at);
                if !f.plugin.contains(plugin.short_digest()) {
                    let _ = writeln!(report, "Note: recorded with another build than this one ({})", plugin.short_digest());
                }
                f.describe()
            })
        }
        None => None,
    };
    render(&mut report, &outcome);
    let mut failures = expect.check(&outcome);
    if ordered && !outcome.unused.is_empty() {
        failures.push(format!("{} cassette interactions were never used (ordered cassette)", outcome.unused.len()));
    }
    if let Some(path) = &args.golden {
        let actual = outcome.ndjson();
        if args.update_golden {
            std::fs::write(path, &actual).map_err(|e| format!("cannot write golden file {}: {e}", path.display()))?;
            let _ = writeln!(report, "Golden: written {} ({} records)", path.display(), outcome.records.len());
        } else {
            match golden_check(path, &actual)? {
                None => {
                    let _ = writeln!(report, "Golden: matches {}", path.display());
                }
                Some(diff) => failures.push(format!("output differs from golden file {}:\n{diff}", path.display())),
            }
        }
    }
    if failures.is_empty() {
        let checked = match (&args.expect, reproducing) {
            (Some(_), _) => "expectations met".to_string(),
            (None, Some(failure)) => format!("the recorded failure reproduced ({failure})"),
            (None, None) => "run succeeded".to_string(),
        };
        let _ = writeln!(report, "PASS: {checked}");
    } else {
        let _ = writeln!(report, "FAIL:");
        for f in &failures {
            let _ = writeln!(report, "  - {}", f.replace('\n', "\n    "));
        }
    }
    print!("{report}");
    Ok(failures.is_empty())
}

/// The transport and the secret of a run against a live `endpoint`
/// (recording; `cf-host dev --sim`): the TLS the options ask for, the
/// egress policy of the endpoint, the secret naming it.
pub fn live(endpoint: &url::Url, secret: &Value, options: &Value) -> Result<(Arc<dyn HttpTransport>, Value), String> {
    let host = options.as_object().map(HostOptions::read).transpose().map_err(|e| e.to_string())?.unwrap_or_default();
    let policy = crate::egress::EgressPolicy::for_endpoint(endpoint.as_str()).map_err(|e| e.to_string())?;
    let live: Arc<dyn HttpTransport> = Arc::new(ReqwestTransport::new(ClientPool::default().client(&host.tls, &[])?, policy));
    let secret = Secret::new(secret.clone()).map_err(|e| e.to_string())?.with_endpoint(endpoint).to_json();
    Ok((live, secret))
}

/// `actual` (normalized NDJSON) against the golden file at `path`:
/// `None` when equal, else the diff.
pub fn golden_check(path: &std::path::Path, actual: &str) -> Result<Option<String>, String> {
    let golden = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read golden file {} (create it with `cf-host test --golden FILE --update-golden`): {e}", path.display())
    })?;
    Ok(golden_diff(&golden, actual))
}

/// The per-type table, errors, requests, and what the cassette lacked.
pub fn render(out: &mut String, o: &Outcome) {
    match &o.result {
        Ok(r) => {
            let _ = writeln!(out, "Result: ok, {} records ({} error resources), {} HTTP requests", r.records, r.errors, r.http_requests);
        }
        Err(e) => {
            let _ = writeln!(out, "Result: failed, {}: {e}", e.code().grpc_name());
        }
    }
    let counts = o.counts();
    if !counts.is_empty() {
        let width = counts.keys().map(String::len).max().unwrap_or(0).max(6);
        let _ = writeln!(out, "  {:<width$}  {:>7}", "TYPE", "RECORDS");
        for (label, n) in &counts {
            let _ = writeln!(out, "  {label:<width$}  {n:>7}");
        }
    }
    for e in o.errors().iter().take(10) {
        let _ = writeln!(out, "  error resource: {e}");
    }
    let mut per_path = std::collections::BTreeMap::<String, usize>::new();
    for r in &o.requests {
        *per_path.entry(format!("{} {}", r.method, r.url.path())).or_default() += 1;
    }
    for (k, n) in &per_path {
        let _ = writeln!(out, "  request {k} x{n}");
    }
    for d in &o.denied {
        let _ = writeln!(out, "  denied by egress policy: {d}");
    }
    for u in &o.unmatched {
        let _ = writeln!(out, "  not in the cassette: {}\n    {}", u.request, u.diff.replace('\n', "\n    "));
    }
    if !o.unused.is_empty() {
        let _ = writeln!(out, "  cassette interactions never used: {}", o.unused.len());
        for u in o.unused.iter().take(5) {
            let _ = writeln!(out, "    {u}");
        }
    }
}

