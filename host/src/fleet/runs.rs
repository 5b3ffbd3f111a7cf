//! Fleet mode's record of push runs (`cf_runs`, `cf_error_resources`): a
//! [`RunLog`] in the shared database, so that any replica lists a run and
//! its error resources whichever replica made it.
//!
//! Every push run in fleet mode works under its tenant's lease
//! (`cf_push_leases`), and its row names the lease's holder. A `RUNNING`
//! run whose holder no longer holds a live lease on its tenant is dead:
//! its replica was killed, or stopped it when the lease could not be
//! renewed. [`PgRuns::close_abandoned`] (each replica's scheduler tick)
//! marks such runs `FAILURE` with `abandoned: true` in their summary, so
//! no run stays `RUNNING` forever. A run that was only slow (its lease
//! renewed late, after the mark) still records its own end when it ends.
//!
//! Blocking like the outbox ([`off_async`]).

use super::error::FleetError;
use super::pool::{off_async, Pool};
use crate::record::Record;
use crate::run_log::{summary_of, ErrorResource, RunLog, RunLogError, RunRecord, MAX_ERRORS_LISTED, MAX_RUNS_LISTED};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct PgRuns {
    pool: Arc<Pool>,
    /// This process (`host:pid`), recorded with the runs it makes.
    replica: String,
}

impl PgRuns {
    pub(super) fn new(pool: Arc<Pool>, replica: String) -> PgRuns {
        PgRuns { pool, replica }
    }

    /// Marks the runs whose lease is gone (see the module's text) as
    /// failed and abandoned: how many.
    pub fn close_abandoned(&self) -> Result<u64, FleetError> {
        let summary = json!({
            "error": "abandoned: the replica running it stopped before it ended (its tenant's lease is gone)",
            "abandoned": true,
        })
        .to_string();
        off_async(|| {
            let n = self.pool.get()?.execute(
                "UPDATE cf_runs r SET status = 'FAILURE', finished_at = now(), summary = $1
                 WHERE r.status = 'RUNNING' AND NOT EXISTS (
                     SELECT 1 FROM cf_push_leases l
                     WHERE l.sink = r.sink AND l.tenant = r.tenant AND l.holder = r.holder AND l.expires_at > now())",
                &[&summary],
            )?;
            Ok(n)
        })
    }
}

/// Records an error resource of a run in `tx`.
pub(crate) fn insert_error(tx: &mut postgres::Transaction<'_>, tenant: &str, run_id: &str, label: &str, message: &str, body: &str) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO cf_error_resources (tenant, run_id, label, message, body) VALUES ($1, $2, $3, $4, $5)",
        &[&tenant, &run_id, &label, &message, &body],
    )?;
    Ok(())
}

/// Seconds since the epoch with milliseconds, as the embedded store
/// writes its times.
fn epoch_text(secs: f64) -> String {
    format!("{secs:.3}")
}

impl RunLog for PgRuns {
    fn begin_run(&self, sink: &str, run_id: &str, tenant: &str, plugin: &str, digest: &str, holder: Option<&str>) -> Result<(), RunLogError> {
        let holder = holder.unwrap_or("");
        off_async(|| -> Result<(), FleetError> {
            self.pool.get()?.execute(
                "INSERT INTO cf_runs (run_id, sink, tenant, plugin, digest, replica, holder, started_at, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now(), 'RUNNING')",
                &[&run_id, &sink, &tenant, &plugin, &digest, &self.replica, &holder],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    fn record_errors(&self, tenant: &str, run_id: &str, errors: &[Record]) -> Result<(), RunLogError> {
        if !errors.iter().any(Record::is_error) {
            return Ok(());
        }
        off_async(|| -> Result<(), FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            for r in errors.iter().filter(|r| r.is_error()) {
                let resource = r.resource();
                insert_error(&mut tx, tenant, run_id, &r.label(), r.message.as_deref().unwrap_or(""), &r.resource_text(&resource))?;
            }
            tx.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    fn error_counts_of_run(&self, run_id: &str) -> Result<BTreeMap<String, u64>, RunLogError> {
        let rows = off_async(|| -> Result<_, FleetError> {
            Ok(self.pool.get()?.query("SELECT label, count(*) FROM cf_error_resources WHERE run_id = $1 GROUP BY label", &[&run_id])?)
        })?;
        Ok(rows.iter().map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0))).collect())
    }

    fn finish_run(&self, run_id: &str, status: &str, summary: &Value) -> Result<(), RunLogError> {
        let summary = summary.to_string();
        off_async(|| -> Result<(), FleetError> {
            self.pool.get()?.execute(
                "UPDATE cf_runs SET finished_at = now(), status = $2, summary = $3 WHERE run_id = $1",
                &[&run_id, &status, &summary],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    fn runs(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, RunLogError> {
        let limit = limit.min(MAX_RUNS_LISTED) as i64;
        let max_errors = MAX_ERRORS_LISTED as i64;
        let runs = off_async(|| -> Result<Vec<RunRecord>, FleetError> {
            let mut c = self.pool.get()?;
            let rows = c.query(
                "SELECT run_id, tenant, plugin, digest, replica, extract(epoch FROM started_at)::float8,
                        extract(epoch FROM finished_at)::float8, status, summary,
                        (SELECT count(*) FROM cf_error_resources e WHERE e.run_id = r.run_id)
                 FROM cf_runs r WHERE $1::text IS NULL OR tenant = $1 ORDER BY started_at DESC, run_id LIMIT $2",
                &[&tenant, &limit],
            )?;
            let mut runs = Vec::with_capacity(rows.len());
            for r in rows {
                let run_id: String = r.get(0);
                let errors = c
                    .query("SELECT label, message FROM cf_error_resources WHERE run_id = $1 ORDER BY id LIMIT $2", &[&run_id, &max_errors])?
                    .iter()
                    .map(|e| ErrorResource { label: e.get(0), message: e.get(1) })
                    .collect();
                runs.push(RunRecord {
                    run_id,
                    tenant: r.get(1),
                    plugin: r.get(2),
                    digest: r.get(3),
                    replica: r.get(4),
                    started_at: epoch_text(r.get(5)),
                    finished_at: r.get::<_, Option<f64>>(6).map(epoch_text),
                    status: r.get(7),
                    summary: summary_of(r.get(8)),
                    errors_total: u64::try_from(r.get::<_, i64>(9)).unwrap_or(0),
                    errors,
                });
            }
            Ok(runs)
        })?;
        Ok(runs)
    }
}
