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

use crate::host::state::{Namespace, StateBackend};
use crate::record::{Record, ResourceType};
use rusqlite::{params, Connection, OptionalExtension};
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
    tenant        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    rule          INTEGER NOT NULL,
    key           TEXT NOT NULL,
    resource_id   INTEGER NOT NULL REFERENCES resources(id),
    PRIMARY KEY (tenant, resource_type, rule, key)
);
CREATE TABLE IF NOT EXISTS error_resources (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    label     TEXT NOT NULL,
    message   TEXT NOT NULL,
    body      TEXT NOT NULL,
    at        TEXT NOT NULL
);
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

impl Store {
    pub fn open(path: &Path) -> Result<Store, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create store directory {}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("cannot open store {}: {e}", path.display()))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .and_then(|_| conn.execute_batch(SCHEMA))
            .map_err(|e| format!("store {} is not usable: {e}", path.display()))?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a batch in one transaction.
    pub fn apply(&self, tenant: &str, run_id: &str, batch: &[Record]) -> Result<Vec<Outcome>, String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            out.push(upsert(&tx, tenant, run_id, r).map_err(|e| format!("store write failed: {e}"))?);
        }
        tx.commit().map_err(|e| format!("store commit failed: {e}"))?;
        Ok(out)
    }

    pub fn begin_run(&self, run_id: &str, tenant: &str, plugin: &str, digest: &str) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO runs (run_id, tenant, plugin, digest, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, 'RUNNING')",
                params![run_id, tenant, plugin, digest, now()],
            )
            .map(|_| ())
            .map_err(|e| format!("store: {e}"))
    }

    pub fn finish_run(&self, run_id: &str, status: &str, summary: &Value) -> Result<(), String> {
        self.conn()
            .execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE run_id = ?1",
                params![run_id, now(), status, summary.to_string()],
            )
            .map(|_| ())
            .map_err(|e| format!("store: {e}"))
    }

    /// Number of stored resources of a type for a tenant.
    pub fn count(&self, tenant: &str, resource_type: ResourceType) -> Result<u64, String> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM resources WHERE tenant = ?1 AND resource_type = ?2",
                params![tenant, resource_type.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    /// A stored resource by its rule-1 key values (e.g. a CloudService by
    /// reference.resource_id + provider + type + group + account).
    pub fn find_by_resource_id(&self, tenant: &str, resource_id: &str) -> Result<Option<Value>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT body FROM resources WHERE tenant = ?1 AND resource_type = 'inventory.CloudService' AND json_extract(body, '$.reference.resource_id') = ?2")
            .map_err(|e| e.to_string())?;
        let body: Option<String> = stmt.query_row(params![tenant, resource_id], |r| r.get(0)).optional().map_err(|e| e.to_string())?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| e.to_string())).transpose()
    }

    /// The host's 32-byte key named `name`, made (random) on first use, so
    /// it outlives restarts with the store (the tenant key: tenants' state
    /// in this store stays theirs).
    pub fn host_key(&self, name: &str) -> Result<[u8; 32], String> {
        let conn = self.conn();
        let found: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM host_keys WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
            .map_err(|e| e.to_string())?;
        if let Some(k) = found.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            return Ok(k);
        }
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| format!("no randomness for the {name} key: {e}"))?;
        conn.execute("INSERT OR REPLACE INTO host_keys (name, value) VALUES (?1, ?2)", params![name, k.to_vec()]).map_err(|e| e.to_string())?;
        Ok(k)
    }

    /// Error messages recorded for a run.
    pub fn errors_of_run(&self, run_id: &str) -> Result<Vec<String>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT message FROM error_resources WHERE run_id = ?1 ORDER BY id").map_err(|e| e.to_string())?;
        let rows = stmt.query_map(params![run_id], |r| r.get::<_, String>(0)).map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }
}

/// Records an error resource of a run.
pub(crate) fn insert_error(tx: &rusqlite::Transaction<'_>, tenant: &str, run_id: &str, label: &str, message: &str, body: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO error_resources (tenant, run_id, label, message, body, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![tenant, run_id, label, message, body, now()],
    )
    .map(|_| ())
}

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
    let mut existing: Option<(i64, String)> = None;
    for (rule, key) in &keys {
        existing = tx
            .query_row(
                "SELECT r.id, r.digest FROM match_keys k JOIN resources r ON r.id = k.resource_id
                 WHERE k.tenant = ?1 AND k.resource_type = ?2 AND k.rule = ?3 AND k.key = ?4",
                params![tenant, rtype, rule, key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if existing.is_some() {
            break;
        }
    }
    let ts = now();
    let (id, outcome) = match existing {
        Some((id, old)) if old == digest => {
            tx.execute("UPDATE resources SET last_run = ?2 WHERE id = ?1", params![id, run_id])?;
            (id, Outcome::Unchanged)
        }
        Some((id, _)) => {
            tx.execute(
                "UPDATE resources SET body = ?2, digest = ?3, label = ?4, updated_at = ?5, last_run = ?6 WHERE id = ?1",
                params![id, body, digest, label, ts, run_id],
            )?;
            (id, Outcome::Updated)
        }
        None => {
            tx.execute(
                "INSERT INTO resources (tenant, resource_type, label, body, digest, created_at, updated_at, last_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
                params![tenant, rtype, label, body, digest, ts, run_id],
            )?;
            (tx.last_insert_rowid(), Outcome::Created)
        }
    };
    // Keep every rule's key pointing at this resource (values may have changed).
    tx.execute("DELETE FROM match_keys WHERE resource_id = ?1", params![id])?;
    for (rule, key) in &keys {
        tx.execute(
            "INSERT OR REPLACE INTO match_keys (tenant, resource_type, rule, key, resource_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![tenant, rtype, rule, key, id],
        )?;
    }
    Ok(outcome)
}

/// The admin API's webhooks.
impl crate::webhook::SubscriptionStore for Store {
    fn load(&self) -> Result<Vec<(crate::webhook::Subscription, String)>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, url, events, secret, created_at FROM webhooks ORDER BY created_at, id").map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| {
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
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    fn insert(&self, s: &crate::webhook::Subscription, secret: &str) -> Result<(), String> {
        let events = serde_json::to_string(&s.events).map_err(|e| e.to_string())?;
        self.conn()
            .execute(
                "INSERT INTO webhooks (id, url, events, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id, s.url, events, secret, s.created_at as i64],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn delete(&self, id: &str) -> Result<bool, String> {
        self.conn().execute("DELETE FROM webhooks WHERE id = ?1", params![id]).map(|n| n > 0).map_err(|e| e.to_string())
    }
}

impl StateBackend for Store {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, String> {
        self.conn()
            .query_row(
                "SELECT value FROM state WHERE tenant = ?1 AND collector = ?2 AND key = ?3",
                params![ns.tenant, ns.collector, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())
    }

    fn set(&self, ns: &Namespace, key: &str, value: &str) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO state (tenant, collector, key, value) VALUES (?1, ?2, ?3, ?4)",
                params![ns.tenant, ns.collector, key, value],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), String> {
        self.conn()
            .execute("DELETE FROM state WHERE tenant = ?1 AND collector = ?2 AND key = ?3", params![ns.tenant, ns.collector, key])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn count(&self, ns: &Namespace) -> Result<usize, String> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM state WHERE tenant = ?1 AND collector = ?2", params![ns.tenant, ns.collector], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(|e| e.to_string())
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

    fn temp_store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("cf-host-store-test-{}", crate::runtime::new_run_id()));
        let path = dir.join("s.db");
        (Store::open(&path).unwrap(), dir)
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

    #[test]
    fn corrupt_store_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("cf-host-store-bad-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.db");
        std::fs::write(&p, b"this is not sqlite, not at all, definitely not a database file at all").unwrap();
        let e = Store::open(&p).err().unwrap();
        assert!(e.contains("is not usable") || e.contains("cannot open"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
