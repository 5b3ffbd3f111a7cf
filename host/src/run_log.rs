//! Push mode's record of its runs: each run's status and summary, and
//! its error resources (records the guest reported as errors, records
//! no match rule can key, records CloudForet refused).
//!
//! Where it lives is a [`RunLog`]: the embedded store ([`Store`]'s
//! `runs` and `error_resources` tables: one replica's file), or in fleet
//! mode the shared PostgreSQL database ([`crate::fleet::runs::PgRuns`]),
//! so that a run made on one replica is listed, with its error resources,
//! through any other (`cf-host runs`), and a run whose replica died is
//! closed by another instead of staying `RUNNING`. It is chosen with the
//! outbox (`crate::push_config::Runner::new`): a refused record leaves the
//! outbox and becomes an error resource in one transaction of the same
//! database.
//!
//! Statuses: `RUNNING` while a run goes on, then `SUCCESS` (the
//! collection succeeded; the summary says what was delivered) or
//! `FAILURE` (the collection failed, or in fleet mode the run was
//! abandoned: its replica stopped before it ended; its summary's
//! `abandoned` is then true).
//!
//! Failures are a [`RunLogError`]: the embedded store or the fleet's
//! database failed.

use crate::record::Record;
use crate::store::{Store, StoreError};
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Error resources listed per run at most (their total is given).
pub const MAX_ERRORS_LISTED: usize = 100;
/// Runs listed at most.
pub const MAX_RUNS_LISTED: usize = 1000;

/// Why the record of runs failed.
#[derive(Debug, thiserror::Error)]
pub enum RunLogError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fleet mode: the shared database failed.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::error::FleetError),
}

impl From<rusqlite::Error> for RunLogError {
    fn from(e: rusqlite::Error) -> RunLogError {
        RunLogError::Store(StoreError::from(e))
    }
}

/// One run as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub tenant: String,
    pub plugin: String,
    pub digest: String,
    /// Fleet mode: the replica that ran it (`host:pid`); empty otherwise.
    pub replica: String,
    /// Seconds since the epoch (UTC), as text with milliseconds.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    /// What the run did (`crate::push::PushReport::summary_json`).
    pub summary: Option<Value>,
    /// Error resources of the run.
    pub errors_total: u64,
    /// The first [`MAX_ERRORS_LISTED`] of them.
    pub errors: Vec<ErrorResource>,
}

/// One error resource of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorResource {
    pub label: String,
    pub message: String,
}

/// What a push run needs recorded, and what reads it back. Blocking, as
/// the store is (the PostgreSQL one moves off the async workers itself).
pub trait RunLog: Send + Sync {
    /// A run starts (`RUNNING`). `holder`: fleet mode's lease holder the
    /// run works under (the run is abandoned once that lease is gone).
    fn begin_run(&self, sink: &str, run_id: &str, tenant: &str, plugin: &str, digest: &str, holder: Option<&str>) -> Result<(), RunLogError>;
    /// Records a batch's error resources (records that are not errors are
    /// ignored: push mode's resources are CloudForet's).
    fn record_errors(&self, tenant: &str, run_id: &str, errors: &[Record]) -> Result<(), RunLogError>;
    /// Error resources of a run by label.
    fn error_counts_of_run(&self, run_id: &str) -> Result<BTreeMap<String, u64>, RunLogError>;
    /// The run ended with `status` and `summary`.
    fn finish_run(&self, run_id: &str, status: &str, summary: &Value) -> Result<(), RunLogError>;
    /// The latest `limit` runs (of one tenant), newest first, each with its
    /// first error resources.
    fn runs(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, RunLogError>;
}

/// The summary JSON as stored (text); unreadable text is kept as a string.
pub(crate) fn summary_of(text: Option<String>) -> Option<Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

impl RunLog for Store {
    fn begin_run(&self, _sink: &str, run_id: &str, tenant: &str, plugin: &str, digest: &str, _holder: Option<&str>) -> Result<(), RunLogError> {
        Ok(Store::begin_run(self, run_id, tenant, plugin, digest)?)
    }

    fn record_errors(&self, tenant: &str, run_id: &str, errors: &[Record]) -> Result<(), RunLogError> {
        let errors: Vec<Record> = errors.iter().filter(|r| r.is_error()).cloned().collect();
        if !errors.is_empty() {
            self.apply(tenant, run_id, &errors)?;
        }
        Ok(())
    }

    fn error_counts_of_run(&self, run_id: &str) -> Result<BTreeMap<String, u64>, RunLogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT label, COUNT(*) FROM error_resources WHERE run_id = ?1 GROUP BY label")?;
        let rows = stmt.query_map(params![run_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<BTreeMap<String, u64>, _>>()?)
    }

    fn finish_run(&self, run_id: &str, status: &str, summary: &Value) -> Result<(), RunLogError> {
        Ok(Store::finish_run(self, run_id, status, summary)?)
    }

    fn runs(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, RunLogError> {
        let limit = limit.min(MAX_RUNS_LISTED) as i64;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT run_id, tenant, plugin, digest, started_at, finished_at, status, summary FROM runs
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY CAST(started_at AS REAL) DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit], |r| {
            Ok(RunRecord {
                run_id: r.get(0)?,
                tenant: r.get(1)?,
                plugin: r.get(2)?,
                digest: r.get(3)?,
                replica: String::new(),
                started_at: r.get(4)?,
                finished_at: r.get(5)?,
                status: r.get(6)?,
                summary: summary_of(r.get(7)?),
                errors_total: 0,
                errors: Vec::new(),
            })
        })?;
        let mut runs = rows.collect::<Result<Vec<_>, _>>()?;
        let mut count = conn.prepare("SELECT COUNT(*) FROM error_resources WHERE run_id = ?1")?;
        let mut first = conn.prepare("SELECT label, message FROM error_resources WHERE run_id = ?1 ORDER BY id LIMIT ?2")?;
        for run in &mut runs {
            run.errors_total = count.query_row(params![run.run_id], |r| r.get::<_, i64>(0))? as u64;
            let errors = first.query_map(params![run.run_id, MAX_ERRORS_LISTED as i64], |r| Ok(ErrorResource { label: r.get(0)?, message: r.get(1)? }))?;
            run.errors = errors.collect::<Result<Vec<_>, _>>()?;
        }
        Ok(runs)
    }
}
