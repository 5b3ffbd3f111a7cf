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
//!
//! Compaction ([`RegistryFollower::compact`], every [`COMPACT_EVERY`] on
//! each replica, one at a time under an advisory lock): once every live
//! replica has applied up to op N, N being the compacting replica's own
//! last op, that replica's desired state at N
//! ([`crate::registry::snapshot::NameState`]: loaded versions, live,
//! rollback history, pins, canary) replaces ops up to N in
//! `cf_registry_snapshot`; the ops up to N are deleted (at most
//! [`COMPACT_OPS`] a time, the rest on the next round: readers never read
//! below the snapshot), and the components that neither the snapshot nor
//! a later op loads are deleted (at most [`COMPACT_COMPONENTS`] a time).
//! One transaction: nothing is half-applied. A load publishes under the
//! same lock (shared), so a component is never deleted under an op that
//! is being appended. A replica reads the snapshot and the ops after it in
//! one repeatable-read transaction. One that starts after a compaction
//! loads the snapshot's versions and restores its state, then applies the
//! ops after it; one that fell behind the snapshot (it was not live when
//! the log was compacted) does the same, and unloads the versions it
//! loaded from the log that the snapshot no longer has: both reach the
//! state of a replica that applied the whole log.

use super::error::FleetError;
use super::pool::Pool;
use crate::registry::ops::{Op, Outcome};
use postgres::fallible_iterator::FallibleIterator;
use crate::registry::{Registry, RegistryError};
use crate::registry::snapshot::NameState;
use std::collections::{BTreeMap, BTreeSet};
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
/// How often a replica tries to compact the log.
pub const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// Ops deleted by one compaction at most.
pub const COMPACT_OPS: i64 = 10_000;
/// Components deleted by one compaction at most.
pub const COMPACT_COMPONENTS: i64 = 64;
/// Any constant: the advisory lock compaction takes (exclusive) and a
/// publish takes (shared).
const COMPACT_LOCK: i64 = 0x0cf_4057_c0a9;

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
    /// Held while ops are applied here, and while compaction reads the
    /// state they led to: the state read is the state at `applied`.
    applying: Mutex<()>,
    /// The versions this replica loaded from the log (name, version): the
    /// ones a snapshot no longer has are unloaded when it is applied.
    from_log: Mutex<BTreeSet<(String, String)>>,
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
            applying: Mutex::new(()),
            from_log: Mutex::new(BTreeSet::new()),
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

    /// Applies what the log holds after the last op applied here: the
    /// snapshot first when this replica is behind it, then the ops, in
    /// order. An op the registry refuses is done (its refusal is its
    /// outcome). Blocking.
    pub fn catch_up(&self) -> Result<(), FleetError> {
        let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let after = self.applied();
        let (snapshot, ops) = {
            let mut c = self.pool.get()?;
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
            let snapshot: Option<(i64, String)> =
                tx.query_opt("SELECT upto, state FROM cf_registry_snapshot WHERE upto > $1", &[&after])?.map(|r| (r.get(0), r.get(1)));
            let from = snapshot.as_ref().map_or(after, |(upto, _)| *upto);
            let ops: Vec<(i64, String)> =
                tx.query("SELECT id, op FROM cf_registry_ops WHERE id > $1 ORDER BY id", &[&from])?.into_iter().map(|r| (r.get(0), r.get(1))).collect();
            tx.commit()?;
            (snapshot, ops)
        };
        if let Some((upto, state)) = snapshot {
            self.apply_snapshot(upto, &state)?;
        }
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
                    match (&r, &op) {
                        (Err(e), _) => tracing::warn!(op = id, "fleet registry op not applied here: {e}"),
                        (Ok(Outcome::Loaded(report)), _) => {
                            self.from_log.lock().unwrap_or_else(|p| p.into_inner()).insert((report.name.clone(), report.version.clone()));
                        }
                        (Ok(_), Op::Unload { name, version }) => {
                            self.from_log.lock().unwrap_or_else(|p| p.into_inner()).remove(&(name.clone(), version.clone()));
                        }
                        _ => {}
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

    /// Brings the registry to the snapshot's state (taken at op `upto`):
    /// loads its versions not loaded here (from `cf_components`; a version
    /// whose bytes are not there was loaded outside the fleet, from each
    /// replica's own plugins, and is left to them), restores each name's
    /// live version, history, pins and canary, and unloads the versions
    /// loaded here from the log that the snapshot no longer has. The
    /// caller holds `applying`.
    fn apply_snapshot(&self, upto: i64, state: &str) -> Result<(), FleetError> {
        let names: Vec<NameState> = serde_json::from_str(state).map_err(|e| FleetError::Corrupt(format!("registry snapshot: {e}")))?;
        let mut wanted = BTreeSet::new();
        for name in &names {
            for v in &name.versions {
                wanted.insert((name.name.clone(), v.version.clone()));
                if self.registry.loaded_digest(&name.name, &v.version).as_deref() == Some(v.digest.as_str()) {
                    continue;
                }
                let bytes: Option<Vec<u8>> = {
                    let mut c = self.pool.get()?;
                    c.query_opt("SELECT bytes FROM cf_components WHERE digest = $1", &[&v.digest])?.map(|r| r.get(0))
                };
                let Some(bytes) = bytes else { continue };
                match self.registry.load_bytes(&v.source, &bytes, v.manifest.clone(), Some(&v.digest), false) {
                    Ok(report) => {
                        self.from_log.lock().unwrap_or_else(|p| p.into_inner()).insert((report.name, report.version));
                    }
                    Err(e) => tracing::warn!(snapshot = upto, "{}@{} of the fleet's snapshot not loaded here: {e}", name.name, v.version),
                }
            }
        }
        for name in &names {
            if let Err(e) = self.registry.restore(name) {
                tracing::warn!(snapshot = upto, "{} not restored from the fleet's snapshot: {e}", name.name);
            }
        }
        let stale: Vec<(String, String)> = self.from_log.lock().unwrap_or_else(|p| p.into_inner()).difference(&wanted).cloned().collect();
        for (name, version) in stale {
            let r = semver::Version::parse(&version).map_err(|e| RegistryError::Rejected(e.to_string())).and_then(|v| self.registry.unload(&name, &v));
            match r {
                Ok(()) | Err(RegistryError::NotFound(_)) => {
                    self.from_log.lock().unwrap_or_else(|p| p.into_inner()).remove(&(name, version));
                }
                // Running: unloaded with the next snapshot applied here.
                Err(e) => tracing::warn!(snapshot = upto, "{name}@{version} is no longer in the fleet's registry, not unloaded yet: {e}"),
            }
        }
        self.applied.send_replace(upto);
        Ok(())
    }

    /// Compacts the log (see the module's documentation) when every live
    /// replica has applied up to this replica's last op and the snapshot
    /// is older. Answers the snapshot's op, or `None` when nothing was
    /// done. One transaction. Blocking.
    pub fn compact(&self) -> Result<Option<i64>, FleetError> {
        let (upto, state) = {
            let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
            (self.applied(), self.registry.desired_state())
        };
        if upto == 0 {
            return Ok(None);
        }
        let state = serde_json::to_string(&state).map_err(|e| FleetError::Corrupt(e.to_string()))?;
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COMPACT_LOCK])?;
        let within = LIVE_WITHIN.as_secs_f64();
        let behind: i64 = tx
            .query_one(
                "SELECT count(*) FROM cf_replicas WHERE replica <> $1 AND applied < $2 AND seen_at > now() - $3 * interval '1 second'",
                &[&self.replica, &upto, &within],
            )?
            .get(0);
        let taken: Option<i64> = tx.query_opt("SELECT upto FROM cf_registry_snapshot", &[])?.map(|r| r.get(0));
        if behind > 0 || taken.is_some_and(|t| t >= upto) {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO cf_registry_snapshot (upto, state) VALUES ($1, $2) ON CONFLICT (one) DO UPDATE SET upto = $1, state = $2, taken_at = now()",
            &[&upto, &state],
        )?;
        tx.execute("DELETE FROM cf_registry_ops WHERE id IN (SELECT id FROM cf_registry_ops WHERE id <= $1 ORDER BY id LIMIT $2)", &[&upto, &COMPACT_OPS])?;
        // Components neither the snapshot nor a later op loads.
        tx.execute(
            "DELETE FROM cf_components WHERE digest IN (
                SELECT c.digest FROM cf_components c
                WHERE c.digest NOT IN (SELECT v->>'digest' FROM json_array_elements($1::text::json) n, json_array_elements(n->'versions') v)
                  AND NOT EXISTS (SELECT 1 FROM cf_registry_ops o WHERE o.id > $2 AND o.op::json->>'op' = 'load' AND o.op::json->>'digest' = c.digest)
                LIMIT $3)",
            &[&state, &upto, &COMPACT_COMPONENTS],
        )?;
        tx.commit()?;
        Ok(Some(upto))
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
        let mut compacted = std::time::Instant::now();
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
                if compacted.elapsed() >= COMPACT_EVERY {
                    compacted = std::time::Instant::now();
                    if let Err(e) = self.compact() {
                        tracing::warn!("fleet registry compaction: {e}");
                    }
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
    // Compaction deletes no component while this op is being appended.
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&COMPACT_LOCK])?;
    if let (Op::Load { digest, .. }, Some(bytes)) = (op, bytes) {
        tx.execute("INSERT INTO cf_components (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING", &[digest, &bytes])?;
    }
    let id: i64 = tx.query_one("INSERT INTO cf_registry_ops (op, origin) VALUES ($1, $2) RETURNING id", &[&text, &replica])?.get(0);
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
    tx.commit()?;
    Ok(id)
}
