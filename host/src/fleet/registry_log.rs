//! The registry's desired state, shared: every admin change is an
//! [`Op`] appended to `cf_registry_ops` (a load's component bytes in
//! `cf_components` by digest) and announced with `NOTIFY cf_registry`.
//! Every replica's [`RegistryFollower`] applies the log in order: at start
//! (all of it, before serving), on each notification, and every second in
//! case one was missed. The replica that took the admin call answers only
//! once it has applied the op itself, with the outcome it got; so all
//! replicas apply the same changes in the same order, and a change that
//! fails (a version not loaded, ...) fails the same way everywhere.
//! Runs in flight keep the version they started on.
//!
//! A load that activates is two ops: the load (each replica compiles the
//! component, seconds for a large one), then, once every live replica
//! (one that reported in the last [`LIVE_WITHIN`]) has applied the load,
//! the activation, which every replica applies within a notification's
//! latency: the switch happens on all replicas at nearly the same moment.
//! Replicas report the last op they applied in `cf_replicas`.

use super::error::FleetError;
use super::pool::Pool;
use crate::registry::ops::{Op, Outcome};
use postgres::fallible_iterator::FallibleIterator;
use crate::registry::{Registry, RegistryError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The notification channel.
const CHANNEL: &str = "cf_registry";
/// How often the log is read without a notification.
const POLL: Duration = Duration::from_secs(1);
/// How long an admin call waits for its own replica to apply its op.
const SUBMIT_WAIT: Duration = Duration::from_secs(120);
/// Outcomes kept for the admin calls waiting on them.
const KEPT_OUTCOMES: usize = 1024;
/// A replica that reported within this long counts as live.
const LIVE_WITHIN: Duration = Duration::from_secs(10);

/// Why an admin change did not go through the shared log.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// Applied, and refused by the registry (on every replica alike).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// In the log, but this replica has not applied it in time.
    #[error("the change is op {0} of the fleet's log, not yet applied on this replica: check again shortly")]
    Pending(i64),
    /// Loaded, not activated: a replica did not load it in time.
    #[error("{name}@{version} is loaded but not live: replica(s) {late:?} have not loaded it yet; activate it once they have")]
    NotEverywhere { name: String, version: String, late: Vec<String> },
}

/// Applies the shared log to a replica's registry.
pub struct RegistryFollower {
    pool: Arc<Pool>,
    replica: String,
    registry: Arc<Registry>,
    applied: tokio::sync::watch::Sender<i64>,
    outcomes: Mutex<BTreeMap<i64, Result<Outcome, RegistryError>>>,
    stop: Arc<AtomicBool>,
}

/// Stops the follower's thread when dropped.
pub struct FollowerGuard(Arc<AtomicBool>);

impl Drop for FollowerGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl RegistryFollower {
    /// Applies the whole log to `registry`, then follows it on a thread of
    /// its own. Blocking.
    pub(super) fn start(pool: Arc<Pool>, replica: String, registry: Arc<Registry>) -> Result<(Arc<RegistryFollower>, FollowerGuard), FleetError> {
        let stop = Arc::new(AtomicBool::new(false));
        let f = Arc::new(RegistryFollower {
            pool,
            replica,
            registry,
            applied: tokio::sync::watch::Sender::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            stop: stop.clone(),
        });
        f.catch_up()?;
        let me = f.clone();
        std::thread::Builder::new()
            .name("cf-host-registry-follower".into())
            .spawn(move || me.follow())
            .map_err(|e| FleetError::Task(format!("cannot start the registry follower: {e}")))?;
        Ok((f, FollowerGuard(stop)))
    }

    /// The last op applied here.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Applies the ops after the last one applied, in order. An op whose
    /// component cannot be read stops here (tried again later); an op the
    /// registry refuses is done (its refusal is its outcome).
    fn catch_up(&self) -> Result<(), FleetError> {
        let after = self.applied();
        let ops: Vec<(i64, String)> = {
            let mut c = self.pool.get()?;
            c.query("SELECT id, op FROM cf_registry_ops WHERE id > $1 ORDER BY id", &[&after])?.into_iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        for (id, text) in ops {
            let outcome = match serde_json::from_str::<Op>(&text) {
                Ok(op) => {
                    let bytes = match &op {
                        Op::Load { digest, .. } => {
                            let mut c = self.pool.get()?;
                            let row = c.query_opt("SELECT bytes FROM cf_components WHERE digest = $1", &[digest])?;
                            row.map(|r| r.get::<_, Vec<u8>>(0))
                        }
                        _ => None,
                    };
                    let r = self.registry.apply(&op, bytes.as_deref());
                    if let Err(e) = &r {
                        tracing::warn!(op = id, "fleet registry op not applied here: {e}");
                    }
                    r
                }
                // A newer host's op: skipped, said once.
                Err(e) => {
                    tracing::warn!(op = id, "fleet registry op not understood (a newer cf-host?): {e}");
                    Err(RegistryError::Rejected(format!("op {id} is not understood by this host: {e}")))
                }
            };
            {
                let mut kept = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
                kept.insert(id, outcome);
                while kept.len() > KEPT_OUTCOMES {
                    kept.pop_first();
                }
            }
            self.applied.send_replace(id);
        }
        self.report()
    }

    /// Tells the fleet the last op this replica applied (and that it lives).
    fn report(&self) -> Result<(), FleetError> {
        let mut c = self.pool.get()?;
        c.execute(
            "INSERT INTO cf_replicas (replica, applied, seen_at) VALUES ($1, $2, now()) ON CONFLICT (replica) DO UPDATE SET applied = $2, seen_at = now()",
            &[&self.replica, &self.applied()],
        )?;
        Ok(())
    }

    /// The follower thread: LISTEN on a connection of its own, catch up on
    /// each notification and every [`POLL`]; reconnects after a failure.
    fn follow(self: Arc<Self>) {
        while !self.stop.load(Ordering::Relaxed) {
            let mut listener = match self.pool.connect_dedicated().and_then(|mut c| c.batch_execute(&format!("LISTEN {CHANNEL}")).map(|()| c).map_err(FleetError::from)) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("fleet registry follower: {e}; trying again");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            while !self.stop.load(Ordering::Relaxed) {
                if let Err(e) = self.catch_up() {
                    tracing::warn!("fleet registry follower: {e}");
                }
                let waited = listener.notifications().timeout_iter(POLL).next().map(|_| ());
                if let Err(e) = waited {
                    tracing::warn!("fleet registry follower lost its connection: {e}");
                    break;
                }
                if listener.is_closed() {
                    break;
                }
            }
        }
    }

    /// Appends `op` (with a load's component `bytes`) to the log and
    /// answers once this replica has applied it, with its outcome. A load
    /// that activates is loaded everywhere first, then activated.
    pub async fn submit(&self, op: Op, bytes: Option<Vec<u8>>) -> Result<Outcome, SubmitError> {
        let Op::Load { source, digest, manifest, activate: true } = op else { return self.submit_one(op, bytes).await };
        let load = Op::Load { source, digest, manifest, activate: false };
        let Outcome::Loaded(mut report) = self.submit_one(load, bytes).await? else {
            return Err(SubmitError::Fleet(FleetError::Corrupt("a load answered no report".into())));
        };
        let load_id = self.applied();
        let started = std::time::Instant::now();
        loop {
            let (pool, me) = (self.pool.clone(), self.replica.clone());
            let late = tokio::task::spawn_blocking(move || late_replicas(&pool, &me, load_id)).await.map_err(|e| FleetError::Task(e.to_string()))??;
            if late.is_empty() {
                break;
            }
            if started.elapsed() > SUBMIT_WAIT {
                return Err(SubmitError::NotEverywhere { name: report.name, version: report.version, late });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let outcome = self.submit_one(Op::Activate { name: report.name.clone(), version: report.version.clone() }, None).await?;
        report.live = matches!(outcome, Outcome::Live(_));
        Ok(Outcome::Loaded(report))
    }

    async fn submit_one(&self, op: Op, bytes: Option<Vec<u8>>) -> Result<Outcome, SubmitError> {
        let (pool, replica) = (self.pool.clone(), self.replica.clone());
        let id = tokio::task::spawn_blocking(move || publish(&pool, &replica, &op, bytes.as_deref()))
            .await
            .map_err(|e| FleetError::Task(e.to_string()))??;
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout(SUBMIT_WAIT, rx.wait_for(|a| *a >= id)).await {
            Ok(Ok(_)) => {}
            _ => return Err(SubmitError::Pending(id)),
        }
        let outcome = self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        match outcome {
            Some(r) => r.map_err(SubmitError::from),
            // Applied so long ago its outcome was dropped: it was applied.
            None => Ok(Outcome::Done),
        }
    }
}

/// Live replicas (other than `me`) that have not applied op `id` yet.
fn late_replicas(pool: &Pool, me: &str, id: i64) -> Result<Vec<String>, FleetError> {
    let mut c = pool.get()?;
    let within = LIVE_WITHIN.as_secs_f64();
    let rows = c.query(
        "SELECT replica FROM cf_replicas WHERE replica <> $1 AND applied < $2 AND seen_at > now() - $3 * interval '1 second' ORDER BY replica",
        &[&me, &id, &within],
    )?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// One transaction: the component (if new), the op, the notification
/// (sent on commit). Answers the op's id.
fn publish(pool: &Pool, replica: &str, op: &Op, bytes: Option<&[u8]>) -> Result<i64, FleetError> {
    let text = serde_json::to_string(op).map_err(|e| FleetError::Corrupt(e.to_string()))?;
    let mut c = pool.get()?;
    let mut tx = c.transaction()?;
    if let (Op::Load { digest, .. }, Some(bytes)) = (op, bytes) {
        tx.execute("INSERT INTO cf_components (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING", &[digest, &bytes])?;
    }
    let id: i64 = tx.query_one("INSERT INTO cf_registry_ops (op, origin) VALUES ($1, $2) RETURNING id", &[&text, &replica])?.get(0);
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
    tx.commit()?;
    Ok(id)
}
