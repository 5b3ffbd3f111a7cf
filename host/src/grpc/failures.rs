//! `serve --record-failures DIR`: every failed run's HTTP exchange kept as
//! a redacted cassette that `cf-host test` replays, so a production
//! failure can be reproduced without the production endpoint.
//!
//! - What is recorded: `collect` and `verify` (the inventory protocol's,
//!   and the data sources' `verify`), and the data sources' `get_data`
//!   (costs: with the task options; metrics: with the metric query). Each such call's transport is wrapped
//!   in a [`Tape`] (a [`crate::host::http::TransportLayer`]) that keeps the
//!   exchanges in memory, redacted as `cf-host test --record` redacts them
//!   (the secret's values and their encodings; `Authorization`, cookie and
//!   API-key headers), up to [`RecordFailures::max_run_bytes`]; past it the
//!   rest is counted, not kept, and the cassette says `truncated`.
//! - What is a failure: the call ended in an error (a typed collector
//!   error, a limit, a trap, an egress refusal: any `RunError`), or a
//!   `collect` finished with error resources. A successful run leaves
//!   nothing on disk. A stream the client cancelled, let stall, or the
//!   shutdown cut short is not the plugin's failure and is not kept.
//! - Where: `DIR/<UTC time>-<tenant>-<plugin>-<run id>/cassette.json`
//!   (names made file-safe), with the guest's options, the task options,
//!   the secret's endpoint (`host`, `port`: a replay names the same one, so
//!   the guest builds the same URLs and state keys), the call and the
//!   failure (code and message, or the error resources).
//!   At most [`RecordFailures::max_kept`] are kept: the oldest are deleted.
//!   A cassette that cannot be written is logged; the run is not affected.
//! - The state the run read (`state` import: each key's value before the
//!   run wrote it) is kept too, within the same budget, redacted: a replay
//!   starts with it (e.g. the deletion guard's counts of the last run).

use crate::error::RunError;
use crate::runtime::{CollectReport, Plugin, RunContext};
use crate::testing::cassette::{Cassette, RecordedCall, RecordedFailure, Tape, FILE_NAME};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Failed runs kept by default.
pub const DEFAULT_MAX_KEPT: usize = 100;
/// Bytes of exchanges kept per run by default: one response of the default
/// `max_http_response_mb`.
pub const DEFAULT_MAX_RUN_BYTES: u64 = 64 << 20;

/// Where and how much `serve --record-failures` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFailures {
    pub dir: PathBuf,
    /// Failed runs kept; the oldest beyond it are deleted (at least 1).
    pub max_kept: usize,
    /// Bytes of one run's exchanges (URLs, headers, bodies) kept in memory
    /// while it runs; the exchanges past it are dropped and counted.
    pub max_run_bytes: u64,
}

impl RecordFailures {
    pub fn new(dir: impl Into<PathBuf>) -> RecordFailures {
        RecordFailures { dir: dir.into(), max_kept: DEFAULT_MAX_KEPT, max_run_bytes: DEFAULT_MAX_RUN_BYTES }
    }
}

/// Why a failed run's cassette was not kept (logged, never the run's error).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode the cassette: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The directory of failed runs; one writer at a time, so the bound holds.
pub(super) struct FailureLog {
    config: RecordFailures,
    writing: Mutex<()>,
}

/// One run being recorded; [`Recording::ended`] decides whether it is kept.
pub(super) struct Recording {
    log: Arc<FailureLog>,
    tape: Tape,
    call: RecordedCall,
    options: Value,
    task_options: Option<Value>,
    metric_query: Option<crate::runtime::MetricQuery>,
    endpoint: Option<serde_json::Map<String, Value>>,
    run_id: String,
    tenant: String,
    plugin: String,
    plugin_name: String,
}

impl FailureLog {
    pub(super) fn new(config: RecordFailures) -> Arc<FailureLog> {
        Arc::new(FailureLog { config, writing: Mutex::new(()) })
    }

    /// Records `ctx`'s run from here on: its transport is wrapped in a tape.
    pub(super) fn start(self: &Arc<Self>, ctx: &mut RunContext, plugin: &Plugin, call: RecordedCall, task_options: Option<&Value>) -> Recording {
        let tape = Tape::new(ctx.secret.redactor().clone(), self.config.max_run_bytes);
        ctx.http_layer = Some(Arc::new(tape.clone()));
        ctx.state = tape.state_layer(ctx.state.clone());
        let version = plugin.version.as_deref().unwrap_or("0.0.0");
        let endpoint: serde_json::Map<String, Value> = ["host", "port"]
            .into_iter()
            .filter_map(|k| ctx.secret.get(k).map(|v| (k.to_string(), tape.redact_json(v))))
            .collect();
        Recording {
            endpoint: Some(endpoint).filter(|e| !e.is_empty()),
            log: self.clone(),
            options: tape.redact_json(&ctx.options),
            task_options: task_options.map(|t| tape.redact_json(t)),
            metric_query: None,
            tape,
            call,
            run_id: ctx.run_id.clone(),
            tenant: ctx.tenant.clone(),
            plugin: format!("{}@{version} ({})", plugin.name, plugin.short_digest()),
            plugin_name: plugin.name.clone(),
        }
    }

    /// Writes one failed run's cassette (into a hidden directory first,
    /// then renamed), then deletes the oldest beyond the bound.
    fn write(&self, name: &str, cassette: &Cassette) -> Result<PathBuf, RecordError> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.config.dir;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let text = serde_json::to_vec_pretty(cassette)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        private_dir(&tmp).map_err(io(&tmp))?;
        let file = tmp.join(FILE_NAME);
        std::fs::write(&file, text).map_err(io(&file))?;
        let done = dir.join(name);
        std::fs::rename(&tmp, &done).map_err(io(&done))?;
        self.prune();
        Ok(done.join(FILE_NAME))
    }

    /// Deletes the oldest recorded failures beyond `max_kept`. Only
    /// directories named as this module names them are counted or deleted.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else { return };
        let mut kept: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_failure_dir(n))
            .collect();
        kept.sort();
        let excess = kept.len().saturating_sub(self.config.max_kept.max(1));
        for old in &kept[..excess] {
            let path = self.config.dir.join(old);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete an old recorded failure");
            }
        }
    }
}

#[cfg(unix)]
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(not(unix))]
fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(path)
}

/// The time format that starts every failure's directory name (UTC; sorts
/// in time order).
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Whether a directory name is a recorded failure's: `YYYYMMDDTHHMMSS.mmmZ-...`.
fn is_failure_dir(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 21 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'T' && b[9..15].iter().all(u8::is_ascii_digit) && &b[19..21] == b"Z-"
}

/// `s` with every character but ASCII letters, digits, `.`, `_` and `-`
/// replaced by `_`, at most 48 of them.
fn file_safe(s: &str) -> String {
    s.chars().take(48).map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

impl Recording {
    /// The metric query of a `metric-data` call (redacted like the options).
    pub(super) fn metric_query(mut self, q: &crate::runtime::MetricQuery) -> Recording {
        self.metric_query = Some(crate::runtime::MetricQuery { metric_query: self.tape.redact_json(&q.metric_query), ..q.clone() });
        self
    }

    /// A unary call (`verify`) ended.
    pub(super) fn unary_ended<T>(recording: Option<Recording>, result: &Result<T, RunError>) {
        if let Some(r) = recording {
            let done = CollectReport::default();
            r.ended(result.as_ref().map(|_| &done));
        }
    }

    /// The run ended: its cassette is kept if it failed or finished with
    /// error resources. The writing happens off the async threads and its
    /// errors are logged.
    pub(super) fn ended(self, result: Result<&CollectReport, &RunError>) {
        let (code, message, error_resources) = match result {
            Ok(r) if r.errors == 0 => return,
            Ok(r) => (None, None, Some(r.errors)),
            Err(e) => (Some(e.code().grpc_name().to_string()), Some(self.tape.redact(&e.message())), None),
        };
        let now = chrono::Utc::now();
        let mut cassette = self.tape.cassette();
        cassette.options = Some(self.options);
        cassette.task_options = self.task_options;
        cassette.endpoint = self.endpoint;
        cassette.call = Some(self.call);
        cassette.metric_query = self.metric_query;
        cassette.failure = Some(RecordedFailure {
            code,
            message,
            error_resources,
            run_id: self.run_id.clone(),
            tenant: self.tenant.clone(),
            plugin: self.plugin,
            at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let run = self.run_id.strip_prefix("run-").unwrap_or(&self.run_id);
        let name = format!("{}-{}-{}-{}", now.format(TIME_FORMAT), file_safe(&self.tenant), file_safe(&self.plugin_name), file_safe(run));
        let log = self.log;
        let write = move || match log.write(&name, &cassette) {
            Ok(file) => tracing::info!(cassette = %file.display(), "failed run recorded"),
            Err(e) => tracing::warn!(error = %e, "could not keep the failed run's cassette"),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_dirs_are_told_by_name_and_pruned_oldest_first() {
        let dir = std::env::temp_dir().join(format!("cf-failures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = FailureLog::new(RecordFailures { max_kept: 2, ..RecordFailures::new(&dir) });
        std::fs::create_dir_all(dir.join("operator-notes")).unwrap();
        for (i, name) in ["20260101T000000.000Z-t-p-1", "20260101T000001.000Z-t-p-2", "20260101T000002.000Z-t-p-3"].iter().enumerate() {
            assert!(is_failure_dir(name), "{name}");
            let mut c = Cassette::new(Vec::new());
            c.failure = Some(RecordedFailure { run_id: i.to_string(), ..RecordedFailure::default() });
            log.write(name, &c).unwrap();
        }
        let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec!["20260101T000001.000Z-t-p-2", "20260101T000002.000Z-t-p-3", "operator-notes"]);
        assert!(!is_failure_dir("operator-notes") && !is_failure_dir(".20260101T000000.000Z-t-p-1.tmp"));
        assert_eq!(file_safe("acme/0123abcd"), "acme_0123abcd");
        std::fs::remove_dir_all(&dir).ok();
    }
}
