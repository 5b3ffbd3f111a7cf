//! A collection job into the embedded store: what `cf-host collect` and
//! `cf-host demo` run.
//!
//! The guest runs in its sandbox; its batches flow through a bounded channel
//! to a writer on a blocking thread, which upserts them into the store, the
//! batches waiting at that moment in one transaction (and
//! appends NDJSON when asked) and counts created / updated / unchanged /
//! errors per type, like a CloudForet job task.
//!
//! A job that cannot run or record its outcome fails with a [`JobError`];
//! the guest's own failure is the report's [`RunError`], with what it
//! emitted before stored.

use crate::error::RunError;
use crate::host::state::StateBackend;
use crate::record::Record;
use crate::runtime::{CollectReport, ContextError, Plugin, RunContext, Runtime};
use crate::store::{Outcome, Store, StoreError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Batches buffered between the guest and the writer (backpressure beyond).
pub const CHANNEL_BATCHES: usize = 8;

/// Records the writer applies in one transaction at most: batches that are
/// already waiting when it starts one are taken together (a writer that
/// keeps up writes each batch as it comes).
pub const WRITE_RECORDS: usize = 2_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub errors: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.errors
    }

    /// The sum over all types.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counts>) -> Counts {
        all.into_iter().fold(Counts::default(), |mut a, c| {
            a.created += c.created;
            a.updated += c.updated;
            a.unchanged += c.unchanged;
            a.errors += c.errors;
            a
        })
    }

    pub fn to_json(&self) -> Value {
        json!({"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "errors": self.errors})
    }

    /// `{"<label>": {"created", ...}}` of per-type counts.
    pub fn per_type_json(counts: &BTreeMap<String, Counts>) -> Value {
        Value::Object(counts.iter().map(|(k, c)| (k.clone(), c.to_json())).collect())
    }
}

/// Why a job could not run, or could not record what it collected.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The endpoint, secret or options are not usable; nothing ran.
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The NDJSON file cannot be created.
    #[error("cannot write {}: {source}", path.display())]
    Out { path: PathBuf, source: std::io::Error },
    #[error("cannot write NDJSON: {0}")]
    Ndjson(#[source] std::io::Error),
    /// The writer thread panicked or was cancelled.
    #[error("store writer failed: {0}")]
    Writer(#[source] tokio::task::JoinError),
}

/// The text, for callers that only report it.
impl From<JobError> for String {
    fn from(e: JobError) -> String {
        e.to_string()
    }
}

pub struct JobSpec {
    pub tenant: String,
    /// `scheme://host:port` of the endpoint; the run's only egress grant.
    pub endpoint: String,
    pub secret: Value,
    pub options: Value,
    pub task_options: Value,
    pub out: Option<PathBuf>,
    /// Collect costs (`cost-source`) instead of the inventory.
    pub costs: Option<CostWindow>,
}

/// Which days a cost run covers (the guest decides from these).
#[derive(Clone, Debug, Default)]
pub struct CostWindow {
    /// `YYYY-MM-DD` or `YYYY-MM`; without it the guest's default (today).
    pub start: Option<String>,
}

pub struct JobReport {
    pub run_id: String,
    /// Per type label (`Compute/VirtualMachine`, `Region`, ...).
    pub counts: BTreeMap<String, Counts>,
    pub elapsed: Duration,
    pub collect: Option<CollectReport>,
    /// Why the run failed, if it did (what was emitted before is stored).
    pub error: Option<RunError>,
}

impl JobReport {
    pub fn totals(&self) -> Counts {
        Counts::sum(self.counts.values())
    }

    pub fn get(&self, label: &str) -> Counts {
        self.counts.get(label).copied().unwrap_or_default()
    }

    /// What a webhook reports of the run: records per label, errors.
    pub fn tally(&self) -> crate::webhook::Tally {
        let mut tally = crate::webhook::Tally::default();
        for (label, c) in &self.counts {
            tally.records.insert(label.clone(), c.total());
            tally.errors += c.errors;
        }
        tally
    }

    pub fn summary_json(&self) -> Value {
        let t = self.totals();
        json!({
            "created": t.created, "updated": t.updated, "unchanged": t.unchanged, "errors": t.errors,
            "per_type": Counts::per_type_json(&self.counts),
            "error": self.error.as_ref().map(|e| e.to_string()),
        })
    }
}

/// The run context of a collection of `endpoint` (`collect`, `demo` and
/// push runs): the endpoint checked and merged into the secret, its origin
/// the only egress grant, host options taken out and checked, the tenant's
/// limits, guest state in `state`.
pub fn run_context(
    runtime: &Runtime,
    tenant: &str,
    endpoint: &str,
    secret: Value,
    options: Value,
    state: Arc<dyn StateBackend>,
) -> Result<RunContext, ContextError> {
    runtime.context(tenant).endpoint(endpoint).secret(secret).options(options).state(state).build()
}

/// Runs one collection into `store`. `progress` is called with the number of
/// records written so far.
pub async fn run(
    runtime: &Runtime,
    plugin: &Plugin,
    store: Arc<Store>,
    spec: JobSpec,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<JobReport, JobError> {
    let ctx = run_context(runtime, &spec.tenant, &spec.endpoint, spec.secret, spec.options, store.clone())?;
    let run_id = ctx.run_id.clone();
    store.begin_run(&run_id, &spec.tenant, &plugin.name, &plugin.digest)?;

    let mut ndjson = match &spec.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|source| JobError::Out { path: p.clone(), source })?,
        )),
        None => None,
    };
    let (tx, mut rx) = mpsc::channel::<Vec<Record>>(CHANNEL_BATCHES);
    let writer_store = store.clone();
    let tenant = spec.tenant.clone();
    let writer_run = run_id.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<BTreeMap<String, Counts>, JobError> {
        let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
        let mut written = 0u64;
        while let Some(mut batch) = rx.blocking_recv() {
            while batch.len() < WRITE_RECORDS {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let outcomes = writer_store.apply(&tenant, &writer_run, &batch)?;
            for (r, o) in batch.iter().zip(outcomes) {
                counts.entry(r.label()).or_default().add(o);
                if let Some(w) = ndjson.as_mut() {
                    writeln!(w, "{}", r.to_json_line()).map_err(JobError::Ndjson)?;
                }
            }
            written += batch.len() as u64;
            progress(written);
        }
        if let Some(w) = ndjson.as_mut() {
            w.flush().map_err(JobError::Ndjson)?;
        }
        Ok(counts)
    });

    let started = Instant::now();
    let result = match &spec.costs {
        None => runtime.collect(plugin, &ctx, &spec.task_options, tx).await,
        Some(w) => run_costs(runtime, plugin, &ctx, w.start.as_deref(), None, tx).await.map(|(_, report)| report),
    };
    // The sender is gone with the store; the writer drains what is left.
    let counts = writer.await.map_err(JobError::Writer)??;
    let elapsed = started.elapsed();
    let (collect, error) = match result {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    let report = JobReport { run_id: run_id.clone(), counts, elapsed, collect, error };
    let status = if report.error.is_some() { "FAILURE" } else { "SUCCESS" };
    store.finish_run(&run_id, status, &report.summary_json())?;
    Ok(report)
}

/// Every cost task the guest plans (from `start`, or the days since
/// `last_synchronized_at`), one after another, into `tx`: how many tasks
/// ran and their reports added up. `collect --costs` and push runs.
pub async fn run_costs(
    runtime: &Runtime,
    plugin: &Plugin,
    ctx: &RunContext,
    start: Option<&str>,
    last_synchronized_at: Option<&str>,
    tx: mpsc::Sender<Vec<Record>>,
) -> Result<(usize, CollectReport), RunError> {
    let tasks = runtime.cost_tasks(plugin, ctx, start, last_synchronized_at).await?;
    let mut sum = CollectReport::default();
    for task in &tasks {
        let r = runtime.cost_data(plugin, ctx, &task.options, tx.clone()).await?;
        sum.records += r.records;
        sum.errors += r.errors;
        sum.http_requests += r.http_requests;
        sum.suppressed_log_lines += r.suppressed_log_lines;
        sum.guest_emitted += r.guest_emitted;
    }
    Ok((tasks.len(), sum))
}

/// The summary table, like a CloudForet job task's counts.
pub fn render_table(report: &JobReport) -> String {
    let mut rows: Vec<(String, Counts)> = report.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    rows.sort_by_key(|(k, _)| {
        let rank = match k.as_str() {
            "CloudServiceType" => 0,
            "Region" => 1,
            _ => 2,
        };
        (rank, k.clone())
    });
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4).max(5);
    let mut s = format!(
        "{:<width$}  {:>8}  {:>8}  {:>9}  {:>6}\n",
        "TYPE", "CREATED", "UPDATED", "UNCHANGED", "ERRORS"
    );
    for (k, c) in &rows {
        s.push_str(&format!(
            "{:<width$}  {:>8}  {:>8}  {:>9}  {:>6}\n",
            k, c.created, c.updated, c.unchanged, c.errors
        ));
    }
    let t = report.totals();
    s.push_str(&format!(
        "{:<width$}  {:>8}  {:>8}  {:>9}  {:>6}\n",
        "TOTAL", t.created, t.updated, t.unchanged, t.errors
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_totals() {
        let mut counts = BTreeMap::new();
        counts.insert("Compute/VirtualMachine".to_string(), Counts { created: 3, updated: 1, unchanged: 0, errors: 1 });
        counts.insert("Region".to_string(), Counts { created: 2, ..Default::default() });
        let r = JobReport { run_id: "r".into(), counts, elapsed: Duration::ZERO, collect: None, error: None };
        let t = render_table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("Region"));
        assert!(lines[3].starts_with("TOTAL") && lines[3].ends_with("       5         1          0       1"), "{t}");
    }
}
