//! Fleet mode: many `cf-host` replicas acting as one on a shared
//! PostgreSQL database (`--database postgres://…`); SQLite stays the
//! embedded default.
//!
//! # Layout
//!
//! - this module: [`Fleet`], the database a replica joins (connect,
//!   migrate, the shared host keys).
//! - [`error`]: [`FleetError`].
//! - [`pool`]: a bounded pool of blocking connections (the callers run on
//!   tokio's blocking threads).
//! - [`tls`]: TLS as the URL's `sslmode` and `sslrootcert` say (rustls);
//!   [`tls::Connector::connect`] is the one way the fleet connects.
//! - [`state`]: guest `state` in the database ([`PgState`], a
//!   [`crate::host::state::StateBackend`]): a run that lands on another
//!   replica sees what the last one wrote.
//! - [`registry_log`]: the registry's changes as a shared, ordered log
//!   ([`RegistryFollower`]): an admin call on any replica changes them all.
//! - [`leases`]: per-tenant run leases ([`RunLeases`]): a tenant's
//!   concurrent runs across all replicas stay within its cap; a lease
//!   outlives a dead replica only until it expires (the run's wall-clock
//!   limit plus a margin).
//! - [`webhooks`]: webhooks registered through any replica's admin API
//!   ([`PgSubscriptions`]), fired by every replica.
//! - [`push_leases`]: push mode's tenants and scheduled slots leased across
//!   replicas ([`PushLeases`]): each slot runs once, a dead replica's slot
//!   is taken over once its lease expires.
//! - [`runs`]: push runs and their error resources ([`PgRuns`], a
//!   [`crate::run_log::RunLog`]): listed through any replica; a run whose
//!   replica died is closed as abandoned by the next one to look.
//!
//! Every call fails closed: a database that is down refuses the run
//! (`UNAVAILABLE`), nothing is half-applied (each write is one
//! transaction), and the next call connects again.

pub mod error;
pub mod leases;
pub mod pool;
pub mod push_leases;
pub mod registry_log;
pub mod runs;
pub mod state;
pub mod tls;
pub mod webhooks;

pub use error::FleetError;
pub use tls::describe;
pub use registry_log::{FollowerGuard, RegistryFollower, SubmitError};

pub use leases::RunLeases;
pub use push_leases::PushLeases;
pub use runs::PgRuns;
pub use state::PgState;
pub use webhooks::PgSubscriptions;

use pool::Pool;
use std::sync::Arc;

/// The schema this host writes (see [`MIGRATIONS`]).
pub const SCHEMA_VERSION: i32 = 7;

/// Schema changes, in order; entry `i` takes version `i` to `i + 1`.
const MIGRATIONS: [&str; 7] = [r#"
CREATE TABLE cf_host_keys (name text PRIMARY KEY, key bytea NOT NULL);
CREATE TABLE cf_state (
    tenant text NOT NULL,
    collector text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (tenant, collector, key)
);
CREATE TABLE cf_run_leases (
    run_id text PRIMARY KEY,
    tenant text NOT NULL,
    replica text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX cf_run_leases_tenant ON cf_run_leases (tenant, expires_at);
"#, r#"
CREATE TABLE cf_components (digest text PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE cf_registry_ops (
    id bigserial PRIMARY KEY,
    op text NOT NULL,
    origin text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
"#, r#"
CREATE TABLE cf_replicas (replica text PRIMARY KEY, applied bigint NOT NULL, seen_at timestamptz NOT NULL);
"#, r#"
CREATE TABLE cf_webhooks (
    id text PRIMARY KEY,
    url text NOT NULL,
    events text NOT NULL,
    secret text NOT NULL,
    created_at bigint NOT NULL
);
"#, r#"
CREATE TABLE cf_push_leases (
    sink text NOT NULL,
    tenant text NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (sink, tenant)
);
CREATE TABLE cf_push_slots (
    sink text NOT NULL,
    tenant text NOT NULL,
    slot bigint NOT NULL,
    runs int NOT NULL,
    replica text NOT NULL,
    started_at timestamptz NOT NULL,
    done_at timestamptz,
    PRIMARY KEY (sink, tenant, slot)
);
CREATE TABLE cf_outbox (
    seq bigserial PRIMARY KEY,
    sink text NOT NULL,
    tenant text NOT NULL,
    run_id text NOT NULL,
    resource_type text NOT NULL,
    label text NOT NULL,
    key text NOT NULL,
    body text NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    last_error text
);
CREATE INDEX cf_outbox_tenant ON cf_outbox (sink, tenant, seq);
CREATE TABLE cf_pushed (
    sink text NOT NULL,
    tenant text NOT NULL,
    resource_type text NOT NULL,
    key text NOT NULL,
    remote_id text NOT NULL,
    last_run text NOT NULL,
    missed int NOT NULL DEFAULT 0,
    PRIMARY KEY (sink, tenant, resource_type, key)
);
CREATE TABLE cf_cost_sync (
    sink text NOT NULL,
    tenant text NOT NULL,
    data_source_id text NOT NULL,
    synced_at text NOT NULL,
    PRIMARY KEY (sink, tenant, data_source_id)
);
"#, r#"
CREATE TABLE cf_registry_snapshot (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    upto bigint NOT NULL,
    state text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);
"#, r#"
CREATE TABLE cf_runs (
    run_id text PRIMARY KEY,
    sink text NOT NULL,
    tenant text NOT NULL,
    plugin text NOT NULL,
    digest text NOT NULL,
    replica text NOT NULL,
    holder text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    status text NOT NULL,
    summary text
);
CREATE INDEX cf_runs_by_start ON cf_runs (started_at DESC);
CREATE INDEX cf_runs_running ON cf_runs (sink, tenant) WHERE status = 'RUNNING';
CREATE TABLE cf_error_resources (
    id bigserial PRIMARY KEY,
    tenant text NOT NULL,
    run_id text NOT NULL,
    label text NOT NULL,
    message text NOT NULL,
    body text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cf_error_resources_by_run ON cf_error_resources (run_id, id);
ALTER TABLE cf_push_slots ADD COLUMN superseded_by bigint;
"#];

/// Any constant: the advisory lock replicas take while migrating, so two
/// starting at once do not race on the same `CREATE TABLE`.
const MIGRATION_LOCK: i64 = 0x0cf_4057_f1ee7;

/// The database a replica joins.
#[derive(Clone)]
pub struct Fleet {
    pool: Arc<Pool>,
    /// This process, in lease rows (`host:pid`).
    replica: String,
}

impl Fleet {
    /// Connects to `url` (`postgres://user@host:port/db`, or a Unix socket
    /// directory as `host=/path`; TLS as its `sslmode` says, see [`tls`]),
    /// brings the schema up to date and answers the fleet. Blocking: call it off the async workers.
    pub fn connect(url: &str) -> Result<Fleet, FleetError> {
        let pool = Pool::new(url, 8)?;
        let fleet = Fleet { pool: Arc::new(pool), replica: replica_name() };
        fleet.migrate().map_err(|e| match e {
            FleetError::Db(source) => FleetError::Connect { database: describe(url), source },
            e => e,
        })?;
        Ok(fleet)
    }

    fn migrate(&self) -> Result<(), FleetError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS cf_schema (version int NOT NULL)")?;
        let found: i32 = match tx.query_opt("SELECT version FROM cf_schema", &[])? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO cf_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        if found > SCHEMA_VERSION {
            return Err(FleetError::Schema { found, known: SCHEMA_VERSION });
        }
        for step in &MIGRATIONS[found as usize..] {
            tx.batch_execute(step)?;
        }
        tx.execute("UPDATE cf_schema SET version = $1", &[&SCHEMA_VERSION])?;
        tx.commit()?;
        Ok(())
    }

    /// A 32-byte key every replica shares (the first to ask creates it):
    /// e.g. the key tenants are derived with, so a tenant has the same id,
    /// and so the same state, on every replica.
    pub fn host_key(&self, name: &str) -> Result<[u8; 32], FleetError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| FleetError::NoRandomness(e.to_string()))?;
        let mut c = self.pool.get()?;
        c.execute("INSERT INTO cf_host_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &&fresh[..]])?;
        let key: Vec<u8> = c.query_one("SELECT key FROM cf_host_keys WHERE name = $1", &[&name])?.get(0);
        key.try_into().map_err(|_| FleetError::Corrupt(format!("host key {name:?} is not 32 bytes")))
    }

    /// Guest state in the database.
    pub fn state(&self) -> PgState {
        PgState::new(self.pool.clone())
    }

    /// Applies the fleet's registry log to `registry` (all of it now, then
    /// as it grows). Blocking.
    pub fn follow_registry(&self, registry: Arc<crate::registry::Registry>) -> Result<(Arc<RegistryFollower>, FollowerGuard), FleetError> {
        RegistryFollower::start(self.pool.clone(), self.replica.clone(), registry)
    }

    /// The webhooks registered through any replica.
    pub fn webhooks(&self) -> PgSubscriptions {
        PgSubscriptions::new(self.pool.clone())
    }

    /// The connections (push mode's outbox in the database uses them).
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// The same database as another replica: `replica` names it in lease
    /// and `cf_replicas` rows (several replicas in one process, as tests
    /// run them).
    pub fn as_replica(&self, replica: &str) -> Fleet {
        Fleet { pool: self.pool.clone(), replica: replica.to_string() }
    }

    /// Push mode's tenant leases and scheduled slots.
    pub fn push_leases(&self) -> PushLeases {
        PushLeases::new(self.pool.clone(), self.replica.clone())
    }

    /// Push runs and their error resources.
    pub fn runs(&self) -> PgRuns {
        PgRuns::new(self.pool.clone(), self.replica.clone())
    }

    /// Run leases: per-tenant caps across replicas.
    pub fn leases(&self) -> RunLeases {
        RunLeases::new(self.pool.clone(), self.replica.clone())
    }
}

fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}
