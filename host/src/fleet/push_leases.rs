//! Push mode's schedule across replicas (`cf-host run --database`).
//!
//! Two tables:
//! - `cf_push_leases`: one row per (sink, tenant) while some replica works
//!   on the tenant (a scheduled run, a `--once` run, or redelivery of its
//!   outbox). Taken with one `INSERT … ON CONFLICT DO UPDATE … WHERE
//!   expires_at < now()` (a live lease is never taken over), renewed by the
//!   holder's heartbeat, deleted when the work ends. A replica killed
//!   mid-run stops renewing: its lease expires after the TTL and another
//!   replica takes it.
//! - `cf_push_slots`: one row per (sink, tenant, slot) — a slot is a
//!   tenant's scheduled hour (hours since the epoch, UTC) — started by the
//!   lease holder, `done_at` set when the run ended. A slot started but not
//!   done (its replica died, or lost its lease or its database mid-run) is
//!   open: the next replica to take the tenant's lease runs it again,
//!   however long ago it started (all replicas may have been down for
//!   days). Only a tenant's latest open slot is run: when a slot's run
//!   ends, the tenant's older open slots are closed as superseded
//!   (`done_at` set, `superseded_by` the slot that ran), so a tenant back
//!   after an outage runs once, not once per missed hour. A run is an
//!   upsert by match rule, so running it again duplicates nothing.
//!
//! Every call is one statement (or one transaction) and blocking: callers
//! use tokio's blocking threads.

use super::error::FleetError;
use super::pool::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct PushLeases {
    pool: Arc<Pool>,
    replica: String,
}

impl std::fmt::Debug for PushLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushLeases").field("replica", &self.replica).finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> f64 {
    d.as_millis().min(i64::MAX as u128) as f64
}

impl PushLeases {
    pub(super) fn new(pool: Arc<Pool>, replica: String) -> PushLeases {
        PushLeases { pool, replica }
    }

    /// Takes the tenant's lease for `ttl` unless another holder's is still
    /// live; answers the holder name (this replica plus a random token)
    /// when it did.
    pub fn try_take(&self, sink: &str, tenant: &str, ttl: Duration) -> Result<Option<String>, FleetError> {
        let mut token = [0u8; 8];
        getrandom::fill(&mut token).map_err(|e| FleetError::NoRandomness(e.to_string()))?;
        let holder = format!("{}#{}", self.replica, token.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut c = self.pool.get()?;
        let row = c.query_opt(
            "INSERT INTO cf_push_leases (sink, tenant, holder, expires_at)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
             ON CONFLICT (sink, tenant) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE cf_push_leases.expires_at < now()
             RETURNING holder",
            &[&sink, &tenant, &holder, &millis(ttl)],
        )?;
        Ok(row.map(|_| holder))
    }

    /// Extends `holder`'s lease by `ttl` from now; false when it no longer
    /// holds it (it expired and another replica took it).
    pub fn renew(&self, sink: &str, tenant: &str, holder: &str, ttl: Duration) -> Result<bool, FleetError> {
        let mut c = self.pool.get()?;
        let n = c.execute(
            "UPDATE cf_push_leases SET expires_at = now() + $4 * interval '1 millisecond'
             WHERE sink = $1 AND tenant = $2 AND holder = $3",
            &[&sink, &tenant, &holder, &millis(ttl)],
        )?;
        Ok(n == 1)
    }

    /// Ends `holder`'s lease (nothing when it no longer holds it).
    pub fn release(&self, sink: &str, tenant: &str, holder: &str) -> Result<(), FleetError> {
        let mut c = self.pool.get()?;
        c.execute("DELETE FROM cf_push_leases WHERE sink = $1 AND tenant = $2 AND holder = $3", &[&sink, &tenant, &holder])?;
        Ok(())
    }

    /// Starts `slot` of the tenant unless it is done: answers how many
    /// times it has been started (1 the first time), or `None` when it is
    /// done. Call it holding the tenant's lease.
    pub fn start_slot(&self, sink: &str, tenant: &str, slot: i64) -> Result<Option<i32>, FleetError> {
        let mut c = self.pool.get()?;
        let row = c.query_opt(
            "INSERT INTO cf_push_slots (sink, tenant, slot, runs, replica, started_at) VALUES ($1, $2, $3, 1, $4, now())
             ON CONFLICT (sink, tenant, slot) DO UPDATE SET runs = cf_push_slots.runs + 1, replica = EXCLUDED.replica, started_at = now()
             WHERE cf_push_slots.done_at IS NULL
             RETURNING runs",
            &[&sink, &tenant, &slot, &self.replica],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The slot's run ended; the tenant's older open slots are closed as
    /// superseded by it (in the same transaction).
    pub fn finish_slot(&self, sink: &str, tenant: &str, slot: i64) -> Result<(), FleetError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("UPDATE cf_push_slots SET done_at = now() WHERE sink = $1 AND tenant = $2 AND slot = $3", &[&sink, &tenant, &slot])?;
        tx.execute(
            "UPDATE cf_push_slots SET done_at = now(), superseded_by = $3 WHERE sink = $1 AND tenant = $2 AND slot < $3 AND done_at IS NULL",
            &[&sink, &tenant, &slot],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The latest open (started, not done) slot of each of these tenants,
    /// whatever its age: `(tenant, slot)`, oldest first.
    pub fn open_slots(&self, sink: &str, tenants: &[String]) -> Result<Vec<(String, i64)>, FleetError> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT tenant, slot FROM (
                 SELECT DISTINCT ON (tenant) tenant, slot FROM cf_push_slots
                 WHERE sink = $1 AND tenant = ANY($2) AND done_at IS NULL ORDER BY tenant, slot DESC
             ) latest ORDER BY slot, tenant",
            &[&sink, &tenants],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// `(runs, done)` of a slot (tests, operators). `None`: never started.
    pub fn slot(&self, sink: &str, tenant: &str, slot: i64) -> Result<Option<(i32, bool)>, FleetError> {
        let mut c = self.pool.get()?;
        let row = c.query_opt(
            "SELECT runs, done_at IS NOT NULL FROM cf_push_slots WHERE sink = $1 AND tenant = $2 AND slot = $3",
            &[&sink, &tenant, &slot],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}

/// Runs a blocking database call on tokio's blocking threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, FleetError> + Send + 'static) -> Result<T, FleetError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FleetError::Task(e.to_string()))?
}

/// Whether a lease's holder may still act on its tenant (send to
/// CloudForet). A renewal sent at local instant `t` keeps the lease in the
/// database until at least `t + ttl` (the database's clock reads it later);
/// the holder stops acting at `t + 2/3 ttl`, and at once when a renewal
/// fails or finds the lease gone. Checked before every send: a run whose
/// task was held up in a database call that hung cannot send after its
/// lease may have passed to another replica.
#[derive(Clone, Debug)]
pub struct LeaseGuard {
    until: Arc<std::sync::Mutex<Instant>>,
    holder: Arc<str>,
}

impl LeaseGuard {
    fn new(from: Instant, ttl: Duration, holder: &str) -> LeaseGuard {
        LeaseGuard { until: Arc::new(std::sync::Mutex::new(from + ttl * 2 / 3)), holder: holder.into() }
    }

    /// The lease's holder (`cf_push_leases.holder`): a push run records it,
    /// so that the run is known abandoned once this lease is gone.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The holder may still act.
    pub fn live(&self) -> bool {
        Instant::now() < *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn extend(&self, from: Instant, ttl: Duration) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        *until = (*until).max(from + ttl * 2 / 3);
    }

    fn revoke(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl PushLeases {
    /// Runs `work` holding the tenant's lease: `Ok(None)` when another
    /// replica holds it (nothing ran). `work` gets the lease's
    /// [`LeaseGuard`] to check before each send. While it goes on, a task
    /// of its own renews the lease every third of `ttl`; a renewal that
    /// fails (the database is down, or the lease was lost) or takes longer
    /// than a third of `ttl` revokes the guard and stops `work` (it is
    /// dropped: fail closed) with the error. The lease is released at the
    /// end (left to expire when that fails).
    pub async fn hold<T, F: std::future::Future<Output = T>>(
        &self,
        sink: &str,
        tenant: &str,
        ttl: Duration,
        work: impl FnOnce(LeaseGuard) -> F,
    ) -> Result<Option<T>, FleetError> {
        let (me, s, t) = (self.clone(), sink.to_string(), tenant.to_string());
        let taken_at = Instant::now();
        let Some(holder) = blocking(move || me.try_take(&s, &t, ttl)).await? else {
            return Ok(None);
        };
        let guard = LeaseGuard::new(taken_at, ttl, &holder);
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<FleetError>();
        let heartbeat = {
            let (me, s, t, h, g) = (self.clone(), sink.to_string(), tenant.to_string(), holder.clone(), guard.clone());
            tokio::spawn(async move {
                let failure = loop {
                    tokio::time::sleep(ttl / 3).await;
                    let sent = Instant::now();
                    let (me, s2, t2, h2) = (me.clone(), s.clone(), t.clone(), h.clone());
                    match tokio::time::timeout(ttl / 3, blocking(move || me.renew(&s2, &t2, &h2, ttl))).await {
                        Ok(Ok(true)) => g.extend(sent, ttl),
                        Ok(Ok(false)) => break FleetError::LeaseLost(t.clone()),
                        Ok(Err(e)) => break e,
                        Err(_) => break FleetError::SlowRenewal { tenant: t.clone(), ms: (ttl / 3).as_millis() as u64 },
                    }
                };
                g.revoke();
                let _ = failed_tx.send(failure);
            })
        };
        let outcome = tokio::select! {
            done = work(guard.clone()) => Ok(Some(done)),
            Ok(failed) = failed_rx => Err(failed),
        };
        heartbeat.abort();
        // Bounded: a database that hangs leaves the lease to expire.
        let (me, s, t) = (self.clone(), sink.to_string(), tenant.to_string());
        match tokio::time::timeout(ttl / 3, blocking(move || me.release(&s, &t, &holder))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(tenant, "push lease not released (it expires): {e}"),
            Err(_) => tracing::warn!(tenant, "push lease release did not answer (it expires)"),
        }
        outcome
    }
}
