//! The embedded local store (SQLite): resources upserted by CloudForet's
//! match rules, error resources, runs, and the `state` interface's data.
//!
//! Upsert semantics, as CloudForet's inventory service applies a collector's
//! stream: for each match rule in priority order, build its key from the
//! resource's values at the rule's (dotted) paths; the first rule whose key
//! finds an existing resource of the same type and tenant decides the match.
//! No match → **created**. A match with the same content digest →
//! **unchanged**; a different digest → **updated**. A rule whose fields are
//! missing is skipped; a resource no rule can key is recorded as an error.
//!
//! Push mode's durable outbox and its ledger of what was pushed live in the
//! same database (tables `outbox`, `pushed`; see [`crate::spool`]).
//!
//! Failures are a [`StoreError`], one variant for each way the store can
//! fail (the file cannot be opened, is not usable, a write or its commit
//! failed, ...); callers that only report them use its text.

use crate::host::state::{BackendError, Namespace, PutError, StateBackend};
use crate::record::{Record, ResourceType};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What happened to one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Error,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The schema this build writes, recorded in the file as `PRAGMA
/// user_version`:
///
/// - 0: the first schema (before 2026-12): the tables below without the
///   indexes `match_keys_by_resource`, `resources_by_type` and
///   `error_resources_by_run`, so every upsert scanned `match_keys`.
/// - 1: the same tables with those indexes.
/// - 2: `match_keys` holds a key's [`key_digest`] instead of its tenant,
///   type, rule and text, in a `WITHOUT ROWID` table: the one index written
///   at random places (match keys are mostly uuids) is 16 bytes an entry
///   instead of ~180, so it stays in the page cache at a million resources
///   and a commit writes far fewer of its pages to the WAL.
///
/// Opening a store of an older version migrates it in one transaction
/// ([`migrate`]); a newer version is refused.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS resources (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    label         TEXT NOT NULL,
    body          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_run      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS match_keys (
    key_digest    BLOB PRIMARY KEY,
    resource_id   INTEGER NOT NULL REFERENCES resources(id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS match_keys_by_resource ON match_keys (resource_id);
CREATE INDEX IF NOT EXISTS resources_by_type ON resources (tenant, resource_type);
CREATE TABLE IF NOT EXISTS error_resources (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    label     TEXT NOT NULL,
    message   TEXT NOT NULL,
    body      TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS error_resources_by_run ON error_resources (run_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    sink          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    label         TEXT NOT NULL,
    key           TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_sink ON outbox (sink, tenant, seq);
CREATE TABLE IF NOT EXISTS pushed (
    sink          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    key           TEXT NOT NULL,
    remote_id     TEXT NOT NULL,
    last_run      TEXT NOT NULL,
    missed        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sink, tenant, resource_type, key)
);
CREATE TABLE IF NOT EXISTS cost_sync (
    sink           TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    data_source_id TEXT NOT NULL,
    synced_at      TEXT NOT NULL,
    PRIMARY KEY (sink, tenant, data_source_id)
);
CREATE TABLE IF NOT EXISTS webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS host_keys (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    tenant    TEXT NOT NULL,
    collector TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant, collector, key)
);
"#;

fn now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Value at a dotted path (`reference.resource_id`).
fn lookup<'a>(resource: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = resource.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Match keys of a record of `resource_type` whose resource is `resource`
/// ([`Record::resource`]), one per rule whose fields are all present.
pub fn match_keys(resource_type: ResourceType, resource: &serde_json::Map<String, Value>) -> Vec<(i64, String)> {
    resource_type
        .match_rules()
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            let values: Option<Vec<&Value>> = rule
                .iter()
                .map(|f| lookup(resource, f).filter(|v| !v.is_null()))
                .collect();
            values.map(|v| (i as i64 + 1, serde_json::to_string(&v).unwrap_or_default()))
        })
        .collect()
}

/// A match key's identity in the store: the first 16 bytes of the SHA-256
/// of its tenant, resource type, rule number and key text, each prefixed by
/// its length (so no two different keys hash the same input). 128 bits: a
/// collision among even 2^32 keys has a chance of about 2^-64.
pub fn key_digest(tenant: &str, resource_type: &str, rule: i64, key: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [tenant.as_bytes(), resource_type.as_bytes(), rule.to_string().as_bytes(), key.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Why a store file cannot be brought to [`SCHEMA_VERSION`].
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("it has schema version {0}, newer than this cf-host's {SCHEMA_VERSION}")]
    Newer(i64),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the schema of `conn` to [`SCHEMA_VERSION`] in one transaction:
/// [`SCHEMA`]'s `IF NOT EXISTS` statements make what is missing (the
/// indexes of version 1), and a `match_keys` of version 0 or 1 (a rowid
/// table of key texts) is set aside, its rows moved into the new table as
/// digests, and dropped.
fn migrate(conn: &Connection) -> Result<(), MigrateError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Newer(version));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| -> Result<(), MigrateError> {
        // Read again under the write lock: another process may have
        // migrated the file meanwhile.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(MigrateError::Newer(version));
        }
        let text_keys: bool = conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('match_keys') WHERE name = 'key'", [], |r| r.get(0))?;
        if text_keys {
            conn.execute_batch("ALTER TABLE match_keys RENAME TO match_keys_v1; DROP INDEX IF EXISTS match_keys_by_resource;")?;
        }
        conn.execute_batch(SCHEMA)?;
        if text_keys {
            let mut read = conn.prepare("SELECT tenant, resource_type, rule, key, resource_id FROM match_keys_v1")?;
            let mut write = conn.prepare(INSERT_KEY)?;
            let mut rows = read.query([])?;
            while let Some(row) = rows.next()? {
                let (tenant, rtype, rule, key): (String, String, i64, String) = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
                let digest = key_digest(&tenant, &rtype, rule, &key);
                write.execute(params![&digest[..], row.get::<_, i64>(4)?])?;
            }
            conn.execute_batch("DROP TABLE match_keys_v1")?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        Ok(())
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT").map_err(MigrateError::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory of the store file could not be made.
    #[error("cannot create store directory {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: std::io::Error },
    /// SQLite could not open the file.
    #[error("cannot open store {}: {source}", path.display())]
    Open { path: PathBuf, source: rusqlite::Error },
    /// The file opened but cannot be used: not a database, or of a schema
    /// this build cannot bring to [`SCHEMA_VERSION`].
    #[error("store {} is not usable: {source}", path.display())]
    Unusable { path: PathBuf, source: MigrateError },
    /// Writing a record of a batch failed (the batch is not applied).
    #[error("store write failed: {0}")]
    Write(#[source] rusqlite::Error),
    /// Committing a batch failed (the batch is not applied).
    #[error("store commit failed: {0}")]
    Commit(#[source] rusqlite::Error),
    /// Any other statement failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON document does not parse.
    #[error("store: {what} is not JSON: {source}")]
    Corrupt { what: String, source: serde_json::Error },
    /// No randomness to make a host key.
    #[error("no randomness for the {name} key: {source}")]
    NoRandomness { name: String, source: getrandom::Error },
}

/// The text, for callers that only report it.
impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.to_string()
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { dir: dir.to_path_buf(), source })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        // Up to 256 MiB of page cache: the match keys of a million
        // resources (random uuids, so random places in their index) stay
        // in memory; pages are only cached as they are read.
        // A checkpoint (the only fsync in WAL mode with synchronous=NORMAL)
        // every 16,384 pages (64 MiB) of WAL instead of SQLite's 1,000:
        // random match keys dirty many index pages per transaction, and
        // frequent checkpoints wrote and synced them again and again.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-262144; PRAGMA wal_autocheckpoint=16384;",
        )
            .map_err(MigrateError::from)
            .and_then(|()| migrate(&conn))
            .map_err(|source| StoreError::Unusable { path: path.to_path_buf(), source })?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a batch in one transaction.
    pub fn apply(&self, tenant: &str, run_id: &str, batch: &[Record]) -> Result<Vec<Outcome>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            out.push(upsert(&tx, tenant, run_id, r).map_err(StoreError::Write)?);
        }
        tx.commit().map_err(StoreError::Commit)?;
        Ok(out)
    }

    pub fn begin_run(&self, run_id: &str, tenant: &str, plugin: &str, digest: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO runs (run_id, tenant, plugin, digest, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, 'RUNNING')",
                params![run_id, tenant, plugin, digest, now()],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    }

    pub fn finish_run(&self, run_id: &str, status: &str, summary: &Value) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE run_id = ?1",
                params![run_id, now(), status, summary.to_string()],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// Number of stored resources of a type for a tenant.
    pub fn count(&self, tenant: &str, resource_type: ResourceType) -> Result<u64, StoreError> {
        let n = self.conn().query_row(
            "SELECT COUNT(*) FROM resources WHERE tenant = ?1 AND resource_type = ?2",
            params![tenant, resource_type.as_str()],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(n as u64)
    }

    /// A stored resource by its rule-1 key values (e.g. a CloudService by
    /// reference.resource_id + provider + type + group + account).
    pub fn find_by_resource_id(&self, tenant: &str, resource_id: &str) -> Result<Option<Value>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT body FROM resources WHERE tenant = ?1 AND resource_type = 'inventory.CloudService' AND json_extract(body, '$.reference.resource_id') = ?2",
        )?;
        let body: Option<String> = stmt.query_row(params![tenant, resource_id], |r| r.get(0)).optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(|source| StoreError::Corrupt { what: format!("resource {resource_id}"), source }))
            .transpose()
    }

    /// The host's 32-byte key named `name`, made (random) on first use, so
    /// it outlives restarts with the store (the tenant key: tenants' state
    /// in this store stays theirs).
    pub fn host_key(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let conn = self.conn();
        let found: Option<Vec<u8>> = conn.query_row("SELECT value FROM host_keys WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        if let Some(k) = found.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            return Ok(k);
        }
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|source| StoreError::NoRandomness { name: name.to_string(), source })?;
        conn.execute("INSERT OR REPLACE INTO host_keys (name, value) VALUES (?1, ?2)", params![name, k.to_vec()])?;
        Ok(k)
    }

    /// Records one error resource of a run (a record CloudForet refused
    /// after the outbox that held it was elsewhere).
    pub fn record_error(&self, tenant: &str, run_id: &str, label: &str, message: &str, body: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_error(&tx, tenant, run_id, label, message, body)?;
        tx.commit()?;
        Ok(())
    }

    /// Error messages recorded for a run.
    pub fn errors_of_run(&self, run_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT message FROM error_resources WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![run_id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Records an error resource of a run.
pub(crate) fn insert_error(tx: &rusqlite::Transaction<'_>, tenant: &str, run_id: &str, label: &str, message: &str, body: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(INSERT_ERROR)?.execute(params![tenant, run_id, label, message, body, now()]).map(|_| ())
}

/// The statements of the upsert path, in the order [`upsert`] uses them.
/// Every one of them is a keyed search: `upsert_path_has_no_table_scans`
/// checks their query plans.
const FIND_BY_KEY: &str = "SELECT r.id, r.digest FROM match_keys k JOIN resources r ON r.id = k.resource_id WHERE k.key_digest = ?1";
const TOUCH: &str = "UPDATE resources SET last_run = ?2 WHERE id = ?1";
const REWRITE: &str = "UPDATE resources SET body = ?2, digest = ?3, label = ?4, updated_at = ?5, last_run = ?6 WHERE id = ?1";
const INSERT_RESOURCE: &str = "INSERT INTO resources (tenant, resource_type, label, body, digest, created_at, updated_at, last_run)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)";
const KEYS_OF: &str = "SELECT key_digest FROM match_keys WHERE resource_id = ?1";
const DROP_KEYS: &str = "DELETE FROM match_keys WHERE resource_id = ?1";
const INSERT_KEY: &str = "INSERT OR REPLACE INTO match_keys (key_digest, resource_id) VALUES (?1, ?2)";
const INSERT_ERROR: &str = "INSERT INTO error_resources (tenant, run_id, label, message, body, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

#[cfg(test)]
const UPSERT_PATH: [&str; 8] = [FIND_BY_KEY, TOUCH, REWRITE, INSERT_RESOURCE, KEYS_OF, DROP_KEYS, INSERT_KEY, INSERT_ERROR];

fn upsert(tx: &rusqlite::Transaction<'_>, tenant: &str, run_id: &str, r: &Record) -> rusqlite::Result<Outcome> {
    // Built once: the body and the match keys both read it.
    let resource = r.resource();
    let body = r.resource_text(&resource);
    let label = r.label();
    if r.is_error() {
        insert_error(tx, tenant, run_id, &label, r.message.as_deref().unwrap_or(""), &body)?;
        return Ok(Outcome::Error);
    }
    let keys = match_keys(r.resource_type, &resource);
    if keys.is_empty() {
        let msg = format!("{} has none of the fields of its match rules", r.resource_type.as_str());
        insert_error(tx, tenant, run_id, &label, &msg, &body)?;
        return Ok(Outcome::Error);
    }
    let digest = format!("{:x}", Sha256::digest(body.as_bytes()));
    let rtype = r.resource_type.as_str();
    let keys: Vec<[u8; 16]> = keys.iter().map(|(rule, key)| key_digest(tenant, rtype, *rule, key)).collect();
    let mut existing: Option<(i64, String)> = None;
    {
        let mut find = tx.prepare_cached(FIND_BY_KEY)?;
        for key in &keys {
            existing = find.query_row(params![&key[..]], |row| Ok((row.get(0)?, row.get(1)?))).optional()?;
            if existing.is_some() {
                break;
            }
        }
    }
    let ts = now();
    let (id, outcome) = match existing {
        Some((id, old)) if old == digest => {
            tx.prepare_cached(TOUCH)?.execute(params![id, run_id])?;
            (id, Outcome::Unchanged)
        }
        Some((id, _)) => {
            tx.prepare_cached(REWRITE)?.execute(params![id, body, digest, label, ts, run_id])?;
            (id, Outcome::Updated)
        }
        None => {
            tx.prepare_cached(INSERT_RESOURCE)?.execute(params![tenant, rtype, label, body, digest, ts, run_id])?;
            (tx.last_insert_rowid(), Outcome::Created)
        }
    };
    // Keep every rule's key pointing at this resource (values may have
    // changed, or another resource may have taken a key since). Most
    // resources already hold exactly their keys: then nothing is written.
    // A resource just created holds none (with `foreign_keys` on, no key
    // points at an id that was not in `resources`): nothing to drop.
    let replace = match outcome {
        Outcome::Created => true,
        _ if holds_exactly(tx, id, &keys)? => false,
        _ => {
            tx.prepare_cached(DROP_KEYS)?.execute(params![id])?;
            true
        }
    };
    if replace {
        let mut insert = tx.prepare_cached(INSERT_KEY)?;
        for key in &keys {
            insert.execute(params![&key[..], id])?;
        }
    }
    Ok(outcome)
}

/// Whether the match keys pointing at resource `id` are exactly `keys`
/// (their [`key_digest`]s).
fn holds_exactly(tx: &rusqlite::Transaction<'_>, id: i64, keys: &[[u8; 16]]) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached(KEYS_OF)?;
    let mut rows = stmt.query(params![id])?;
    let mut held = 0;
    while let Some(row) = rows.next()? {
        if !matches!(row.get_ref(0)?, ValueRef::Blob(b) if keys.iter().any(|k| &k[..] == b)) {
            return Ok(false);
        }
        held += 1;
    }
    Ok(held == keys.len())
}

/// The admin API's webhooks.
impl crate::webhook::SubscriptionStore for Store {
    fn load(&self) -> Result<Vec<(crate::webhook::Subscription, String)>, crate::webhook::KeepError> {
        self.webhooks().map_err(keep_error)
    }

    fn insert(&self, s: &crate::webhook::Subscription, secret: &str) -> Result<(), crate::webhook::KeepError> {
        // A list of strings always encodes.
        let events = serde_json::to_string(&s.events).unwrap_or_default();
        self.conn()
            .execute(
                "INSERT INTO webhooks (id, url, events, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id, s.url, events, secret, s.created_at as i64],
            )
            .map(drop)
            .map_err(|e| keep_error(e.into()))
    }

    fn delete(&self, id: &str) -> Result<bool, crate::webhook::KeepError> {
        self.conn().execute("DELETE FROM webhooks WHERE id = ?1", params![id]).map(|n| n > 0).map_err(|e| keep_error(e.into()))
    }
}

fn keep_error(e: StoreError) -> crate::webhook::KeepError {
    crate::webhook::KeepError(Box::new(e))
}

impl Store {
    /// The webhooks kept, oldest first, with their secrets.
    fn webhooks(&self) -> Result<Vec<(crate::webhook::Subscription, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, url, events, secret, created_at FROM webhooks ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| {
            let events: String = r.get(2)?;
            Ok((
                crate::webhook::Subscription {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    events: serde_json::from_str(&events).unwrap_or_default(),
                    created_at: r.get::<_, i64>(4)? as u64,
                },
                r.get::<_, String>(3)?,
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl StateBackend for Store {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, BackendError> {
        let value = self
            .conn()
            .query_row(
                "SELECT value FROM state WHERE tenant = ?1 AND collector = ?2 AND key = ?3",
                params![ns.tenant, ns.collector, key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value)
    }

    fn put(&self, ns: &Namespace, key: &str, value: &str, max_keys: usize) -> Result<(), PutError> {
        let unavailable = |e: rusqlite::Error| PutError::from(BackendError::from(e));
        let mut conn = self.conn();
        // One transaction, holding the write lock from its start: the key
        // count and the write see the same namespace, also with another
        // process on the same file.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        let replaced = tx
            .prepare_cached("UPDATE state SET value = ?4 WHERE tenant = ?1 AND collector = ?2 AND key = ?3")
            .and_then(|mut s| s.execute(params![ns.tenant, ns.collector, key, value]))
            .map_err(unavailable)?;
        if replaced == 0 {
            let held: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM state WHERE tenant = ?1 AND collector = ?2")
                .and_then(|mut s| s.query_row(params![ns.tenant, ns.collector], |r| r.get(0)))
                .map_err(unavailable)?;
            if usize::try_from(held).unwrap_or(usize::MAX) >= max_keys {
                return Err(PutError::TooManyKeys(max_keys));
            }
            tx.prepare_cached("INSERT INTO state (tenant, collector, key, value) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![ns.tenant, ns.collector, key, value]))
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }

    fn blocks(&self) -> bool {
        true
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), BackendError> {
        self.conn().execute("DELETE FROM state WHERE tenant = ?1 AND collector = ?2 AND key = ?3", params![ns.tenant, ns.collector, key])?;
        Ok(())
    }

    fn count(&self, ns: &Namespace) -> Result<usize, BackendError> {
        let n = self.conn().query_row("SELECT COUNT(*) FROM state WHERE tenant = ?1 AND collector = ?2", params![ns.tenant, ns.collector], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(id: &str, power: &str) -> Record {
        let resource = json!({
            "name": id, "provider": "nutanix", "cloud_service_group": "Compute", "cloud_service_type": "VirtualMachine",
            "account": "pc-1", "reference": {"resource_id": id, "external_link": null}, "data": {"power_state": power}
        });
        Record::from_resource(ResourceType::CloudService, resource.as_object().unwrap().clone())
    }

    /// A new directory for one test's files.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cf-host-store-{name}-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn temp_store() -> (Store, PathBuf) {
        let dir = temp_dir("test");
        (Store::open(&dir.join("s.db")).unwrap(), dir)
    }

    #[test]
    fn created_unchanged_updated() {
        let (s, dir) = temp_store();
        let out = s.apply("t1", "r1", &[vm("a", "ON"), vm("b", "ON")]).unwrap();
        assert_eq!(out, vec![Outcome::Created, Outcome::Created]);
        let out = s.apply("t1", "r2", &[vm("a", "ON"), vm("b", "OFF")]).unwrap();
        assert_eq!(out, vec![Outcome::Unchanged, Outcome::Updated]);
        assert_eq!(s.count("t1", ResourceType::CloudService).unwrap(), 2);
        assert_eq!(s.find_by_resource_id("t1", "b").unwrap().unwrap()["data"]["power_state"], "OFF");
        // Another tenant's identical resource is its own.
        assert_eq!(s.apply("t2", "r3", &[vm("a", "ON")]).unwrap(), vec![Outcome::Created]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn account_is_part_of_the_match() {
        let (s, dir) = temp_store();
        let mut other = vm("a", "ON");
        other.resource_mut().insert("account".into(), json!("pc-2"));
        assert_eq!(s.apply("t", "r", &[vm("a", "ON"), other]).unwrap(), vec![Outcome::Created, Outcome::Created]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn errors_and_unkeyable_records_are_recorded() {
        let (s, dir) = temp_store();
        let err = Record::host_error("boom".into(), "Compute", "VirtualMachine", "nutanix");
        let mut nokey = vm("x", "ON");
        nokey.resource_mut().remove("reference");
        assert_eq!(s.apply("t", "r9", &[err, nokey]).unwrap(), vec![Outcome::Error, Outcome::Error]);
        let errs = s.errors_of_run("r9").unwrap();
        assert_eq!(errs, vec!["boom", "inventory.CloudService has none of the fields of its match rules"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn state_is_namespaced() {
        let (s, dir) = temp_store();
        let a = Namespace { tenant: "a".into(), collector: "c".into() };
        let b = Namespace { tenant: "b".into(), collector: "c".into() };
        s.set(&a, "cursor", "1").unwrap();
        assert_eq!(s.get(&a, "cursor").unwrap().as_deref(), Some("1"));
        assert_eq!(s.get(&b, "cursor").unwrap(), None);
        assert_eq!(StateBackend::count(&s, &a).unwrap(), 1);
        s.delete(&a, "cursor").unwrap();
        assert_eq!(s.get(&a, "cursor").unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }

    /// Every statement of the upsert path is a keyed search: no `SCAN`
    /// of a table, only `SEARCH ... USING (INTEGER) PRIMARY KEY` or
    /// `USING INDEX`. (Plans are read on a store with rows, as a stale
    /// planner would pick a scan of an empty table just as well.)
    #[test]
    fn upsert_path_has_no_table_scans() {
        let (s, dir) = temp_store();
        let batch: Vec<Record> = (0..200).map(|i| vm(&format!("vm-{i}"), "ON")).collect();
        s.apply("t", "r1", &batch).unwrap();
        s.conn().execute_batch("ANALYZE").unwrap();
        let conn = s.conn();
        let mut searched = 0;
        for sql in UPSERT_PATH {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().unwrap() {
                let detail: String = row.get(3).unwrap();
                assert!(!detail.starts_with("SCAN"), "{sql}\n  plans a table scan: {detail}");
                assert!(
                    detail.starts_with("SEARCH") && (detail.contains("PRIMARY KEY") || detail.contains("USING INDEX") || detail.contains("USING COVERING INDEX")),
                    "{sql}\n  plans {detail}"
                );
                searched += 1;
            }
        }
        // The lookup's two tables, the touch, the rewrite, the key read and the key delete.
        assert_eq!(searched, 6, "every reading statement was planned");
        drop(conn);
        std::fs::remove_dir_all(dir).ok();
    }

    /// The first schema, as cf-host wrote it before `user_version` 1: the
    /// same tables without the indexes.
    const SCHEMA_V0: &str = r#"
        CREATE TABLE resources (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, resource_type TEXT NOT NULL, label TEXT NOT NULL,
            body TEXT NOT NULL, digest TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_run TEXT NOT NULL);
        CREATE TABLE match_keys (tenant TEXT NOT NULL, resource_type TEXT NOT NULL, rule INTEGER NOT NULL, key TEXT NOT NULL,
            resource_id INTEGER NOT NULL REFERENCES resources(id), PRIMARY KEY (tenant, resource_type, rule, key));
        CREATE TABLE error_resources (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, run_id TEXT NOT NULL, label TEXT NOT NULL,
            message TEXT NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL);
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, plugin TEXT NOT NULL, digest TEXT NOT NULL,
            started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL, summary TEXT);
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, tenant TEXT NOT NULL, run_id TEXT NOT NULL,
            resource_type TEXT NOT NULL, label TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
        CREATE INDEX outbox_by_sink ON outbox (sink, tenant, seq);
        CREATE TABLE pushed (sink TEXT NOT NULL, tenant TEXT NOT NULL, resource_type TEXT NOT NULL, key TEXT NOT NULL,
            remote_id TEXT NOT NULL, last_run TEXT NOT NULL, missed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sink, tenant, resource_type, key));
        CREATE TABLE cost_sync (sink TEXT NOT NULL, tenant TEXT NOT NULL, data_source_id TEXT NOT NULL, synced_at TEXT NOT NULL,
            PRIMARY KEY (sink, tenant, data_source_id));
        CREATE TABLE webhooks (id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE state (tenant TEXT NOT NULL, collector TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (tenant, collector, key));
    "#;

    /// Version 1: version 0 and the indexes of the upsert path
    /// (`match_keys` still a rowid table of key texts).
    const SCHEMA_V1_INDEXES: &str = "
        CREATE INDEX match_keys_by_resource ON match_keys (resource_id);
        CREATE INDEX resources_by_type ON resources (tenant, resource_type);
        CREATE INDEX error_resources_by_run ON error_resources (run_id);
        PRAGMA user_version = 1;";

    /// A store of schema `version`, holding what the old cf-host wrote for
    /// vm "a" and vm "b" of tenant "t" (and vm "a" of tenant "u", whose
    /// key text is the same) and a state key, opens migrated to
    /// [`SCHEMA_VERSION`], keeps all of it and matches as before.
    fn opens_migrated(version: i64, schema: &str) {
        let dir = temp_dir(&format!("v{version}"));
        let path = dir.join("old.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(schema).unwrap();
            assert_eq!(old.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), version);
            for (id, tenant, record) in [(1, "t", vm("a", "ON")), (2, "t", vm("b", "ON")), (3, "u", vm("a", "ON"))] {
                let resource = record.resource();
                let body = record.resource_text(&resource);
                let digest = format!("{:x}", Sha256::digest(body.as_bytes()));
                old.execute(
                    "INSERT INTO resources VALUES (?1, ?2, 'inventory.CloudService', ?3, ?4, ?5, '1', '1', 'r1')",
                    params![id, tenant, record.label(), body, digest],
                )
                .unwrap();
                for (rule, key) in match_keys(ResourceType::CloudService, &resource) {
                    old.execute("INSERT INTO match_keys VALUES (?1, 'inventory.CloudService', ?2, ?3, ?4)", params![tenant, rule, key, id]).unwrap();
                }
            }
            old.execute_batch("INSERT INTO state VALUES ('t', 'c', 'cursor', '7')").unwrap();
        }

        let s = Store::open(&path).unwrap();
        let conn = s.conn();
        assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), SCHEMA_VERSION);
        for index in ["match_keys_by_resource", "resources_by_type", "error_resources_by_run"] {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?1", params![index], |r| r.get(0)).unwrap();
            assert_eq!(n, 1, "index {index} was created");
        }
        // The keys are digests now, one per old row, in a table without
        // rowids, and the old table is gone.
        assert!(conn.prepare("SELECT rowid FROM match_keys").is_err(), "match_keys has no rowid");
        let keys: Vec<(Vec<u8>, i64)> = conn
            .prepare("SELECT key_digest, resource_id FROM match_keys ORDER BY resource_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let a_key = &match_keys(ResourceType::CloudService, &vm("a", "ON").resource())[0].1;
        assert_eq!(keys.len(), 3);
        assert_eq!((keys[0].0.as_slice(), keys[0].1), (&key_digest("t", "inventory.CloudService", 1, a_key)[..], 1));
        assert_eq!((keys[2].0.as_slice(), keys[2].1), (&key_digest("u", "inventory.CloudService", 1, a_key)[..], 3));
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'match_keys_v1'", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "the old match_keys is dropped");
        drop(conn);
        let ns = Namespace { tenant: "t".into(), collector: "c".into() };
        assert_eq!(s.get(&ns, "cursor").unwrap().as_deref(), Some("7"));
        let out = s.apply("t", "r2", &[vm("a", "ON"), vm("b", "OFF"), vm("c", "ON")]).unwrap();
        assert_eq!(out, vec![Outcome::Unchanged, Outcome::Updated, Outcome::Created]);
        assert_eq!(s.apply("u", "r2", &[vm("a", "OFF")]).unwrap(), vec![Outcome::Updated]);
        assert_eq!(s.count("t", ResourceType::CloudService).unwrap(), 3);
        assert_eq!(s.count("u", ResourceType::CloudService).unwrap(), 1);
        drop(s);
        // Reopening a migrated store changes nothing.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.apply("t", "r3", &[vm("a", "ON")]).unwrap(), vec![Outcome::Unchanged]);
        drop(s);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_store_of_the_first_schema_opens_migrated_and_keeps_its_resources() {
        opens_migrated(0, SCHEMA_V0);
    }

    #[test]
    fn a_store_of_schema_1_opens_migrated_and_keeps_its_resources() {
        opens_migrated(1, &format!("{SCHEMA_V0} {SCHEMA_V1_INDEXES}"));
    }

    #[test]
    fn key_digests_differ_by_tenant_type_rule_and_text() {
        let base = key_digest("t", "inventory.CloudService", 1, "[\"a\"]");
        for other in [
            key_digest("u", "inventory.CloudService", 1, "[\"a\"]"),
            key_digest("t", "inventory.Region", 1, "[\"a\"]"),
            key_digest("t", "inventory.CloudService", 2, "[\"a\"]"),
            key_digest("t", "inventory.CloudService", 1, "[\"b\"]"),
            // The parts are length-prefixed: moving a byte from one part to
            // the next is another key.
            key_digest("t", "inventory.CloudService1", 1, "[\"a\"]"),
            key_digest("ti", "nventory.CloudService", 1, "[\"a\"]"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(base, key_digest("t", "inventory.CloudService", 1, "[\"a\"]"));
    }

    #[test]
    fn a_store_of_a_newer_schema_is_refused() {
        let dir = temp_dir("new");
        let path = dir.join("new.db");
        Connection::open(&path).unwrap().execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(matches!(e, StoreError::Unusable { source: MigrateError::Newer(v), .. } if v == SCHEMA_VERSION + 1), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn put_checks_the_key_limit_and_writes_in_one_step() {
        let (s, dir) = temp_store();
        let ns = Namespace { tenant: "t".into(), collector: "c".into() };
        s.put(&ns, "a", "1", 2).unwrap();
        s.put(&ns, "b", "1", 2).unwrap();
        assert!(matches!(s.put(&ns, "c", "1", 2), Err(PutError::TooManyKeys(2))));
        assert_eq!(s.get(&ns, "c").unwrap(), None, "a refused key is not written");
        // Replacing a key is not a new key.
        s.put(&ns, "a", "2", 2).unwrap();
        assert_eq!(s.get(&ns, "a").unwrap().as_deref(), Some("2"));
        // Writers racing for the last free key: exactly one wins.
        let s = std::sync::Arc::new(s);
        s.delete(&ns, "b").unwrap();
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (s, ns) = (s.clone(), ns.clone());
                    scope.spawn(move || s.put(&ns, &format!("k{i}"), "v", 2).is_ok())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap() as usize).sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(StateBackend::count(s.as_ref(), &ns).unwrap(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_store_file_is_a_clear_error() {
        let dir = temp_dir("bad");
        let p = dir.join("bad.db");
        std::fs::write(&p, b"this is not sqlite, not at all, definitely not a database file at all").unwrap();
        let e = Store::open(&p).err().unwrap();
        assert!(matches!(e, StoreError::Unusable { .. } | StoreError::Open { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("is not usable") || e.contains("cannot open"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
