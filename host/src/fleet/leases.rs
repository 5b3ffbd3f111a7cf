//! Per-tenant run leases across replicas: a row per run in progress. A
//! run starts only when its tenant holds fewer live leases than its cap;
//! the check and the insert happen under a lock on the tenant, in one
//! transaction, so two replicas cannot both take the last slot. A lease
//! ends when its run ends (deleted) or, if the replica died, when it
//! expires: the run's wall-clock limit plus [`EXPIRY_MARGIN`], after which
//! no run can still be going.

use super::pool::Pool;
use super::error::FleetError;
use std::sync::Arc;
use std::time::Duration;

/// What a lease outlives its run's wall-clock limit by.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct RunLeases {
    pool: Arc<Pool>,
    replica: String,
}

impl std::fmt::Debug for RunLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLeases").field("replica", &self.replica).finish_non_exhaustive()
    }
}

/// A run's lease, released when dropped (on a blocking thread when in a
/// tokio runtime). A release that fails leaves the row to expire.
pub struct Lease {
    leases: RunLeases,
    run_id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (leases, run_id) = (self.leases.clone(), std::mem::take(&mut self.run_id));
        let release = move || {
            if let Err(e) = leases.release(&run_id) {
                tracing::warn!(run = %run_id, "run lease not released (it expires): {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

/// The longest pause between two attempts at a full tenant's lease.
const MAX_POLL: Duration = Duration::from_millis(500);

impl RunLeases {
    pub(super) fn new(pool: Arc<Pool>, replica: String) -> RunLeases {
        RunLeases { pool, replica }
    }

    /// Takes a lease for `run_id`, expiring after `ttl`, if `tenant` holds
    /// fewer than `cap` live ones; answers whether it did. Expired leases
    /// are dropped first. Blocking.
    pub fn try_acquire(&self, tenant: &str, cap: u32, run_id: &str, ttl: Duration) -> Result<bool, FleetError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&tenant])?;
        tx.execute("DELETE FROM cf_run_leases WHERE tenant = $1 AND expires_at < now()", &[&tenant])?;
        let held: i64 = tx.query_one("SELECT count(*) FROM cf_run_leases WHERE tenant = $1", &[&tenant])?.get(0);
        if held >= i64::from(cap) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO cf_run_leases (run_id, tenant, replica, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')",
            &[&run_id, &tenant, &self.replica, &(ttl_ms as f64)],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Waits until `tenant` has a free slot and takes it for `run_id` (for
    /// the run's `wall_clock` limit plus [`EXPIRY_MARGIN`]); fails closed
    /// when the database does not answer.
    pub async fn acquire(&self, tenant: &str, cap: u32, run_id: &str, wall_clock: Duration) -> Result<Lease, FleetError> {
        let mut pause = Duration::from_millis(20);
        loop {
            let (me, t, r) = (self.clone(), tenant.to_string(), run_id.to_string());
            let got = tokio::task::spawn_blocking(move || me.try_acquire(&t, cap, &r, wall_clock + EXPIRY_MARGIN))
                .await
                .map_err(|e| FleetError::Task(e.to_string()))??;
            if got {
                return Ok(Lease { leases: self.clone(), run_id: run_id.to_string() });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Ends `run_id`'s lease. Blocking.
    pub fn release(&self, run_id: &str) -> Result<(), FleetError> {
        let mut c = self.pool.get()?;
        c.execute("DELETE FROM cf_run_leases WHERE run_id = $1", &[&run_id])?;
        Ok(())
    }

    /// Live leases of `tenant` (tests, metrics). Blocking.
    pub fn held(&self, tenant: &str) -> Result<u64, FleetError> {
        let mut c = self.pool.get()?;
        let n: i64 = c.query_one("SELECT count(*) FROM cf_run_leases WHERE tenant = $1 AND expires_at >= now()", &[&tenant])?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
