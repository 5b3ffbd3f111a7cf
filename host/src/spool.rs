//! Push mode's durable outbox and push ledger, in the embedded store.
//!
//! Every record a push run collects is written to the `outbox` (one
//! transaction per batch) before any delivery is tried, and leaves it only
//! once CloudForet has taken it (or refused it as invalid, which is
//! recorded as an error resource). A run that cannot reach CloudForet ends
//! with its records still spooled; the next delivery (the next run, or the
//! daemon's redelivery) sends them: nothing collected is lost. Delivery is
//! an upsert by match rule, so a record delivered twice (a crash between
//! CloudForet's answer and the outbox delete) is not duplicated.
//!
//! The deliverer acknowledges what CloudForet took a chunk at a time
//! ([`Outbox::delivered_many`]): the chunk's outbox deletes and ledger rows
//! in one transaction, so a record leaves the outbox exactly when its
//! ledger row is written, and a failure (a crash, a dropped connection, a
//! lost lease) before the commit leaves the whole chunk spooled, to be
//! upserted again (unchanged) by the next delivery.
//!
//! The `pushed` ledger remembers the CloudForet id of every cloud service
//! pushed per sink and tenant and the last run that saw it; a complete run
//! counts up `missed` on the others, which are deleted after N misses.
//!
//! Where they live is an [`Outbox`]: the embedded store ([`Store`], below:
//! one replica's file), or in fleet mode the shared PostgreSQL database
//! ([`pg::PgOutbox`]), so that any replica delivers any tenant's leftovers.
//!
//! Failures are a [`SpoolError`]: the database failed, or an outbox row
//! does not read back.

pub mod pg;

use crate::record::{Record, ResourceType};
use crate::store::{insert_error, match_keys, Store};
use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

/// A record waiting in the outbox.
#[derive(Clone, Debug)]
pub struct Spooled {
    pub seq: i64,
    pub run_id: String,
    pub resource_type: ResourceType,
    pub label: String,
    /// The match-rule key (delivery of one key is serialized).
    pub key: String,
    pub resource: Map<String, Value>,
    pub attempts: i64,
}

/// Why the outbox or the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A statement failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Fleet mode: the shared database failed.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// An outbox row names a resource type this build does not know.
    #[error("outbox row {seq}: unknown resource type '{resource_type}'")]
    UnknownType { seq: i64, resource_type: String },
    /// An outbox row's body is not a JSON object.
    #[error("outbox row {seq}: {source}")]
    Corrupt { seq: i64, source: serde_json::Error },
}

/// The text, for callers that only report it.
impl From<SpoolError> for String {
    fn from(e: SpoolError) -> String {
        e.to_string()
    }
}

/// The outbox, the push ledger and the cost synchronization marks: the
/// embedded store's or the fleet's. Blocking: callers in async code use
/// them as they use the store (the PostgreSQL one moves off the async
/// workers itself).
pub trait Outbox: Send + Sync {
    /// Writes a batch in one transaction (durable when it returns); error
    /// resources are not spooled (the caller records them).
    fn spool(&self, sink: &str, tenant: &str, run_id: &str, batch: &[Record]) -> Result<usize, SpoolError>;
    /// The oldest `limit` spooled records of a sink and tenant.
    fn spooled(&self, sink: &str, tenant: &str, limit: usize) -> Result<Vec<Spooled>, SpoolError>;
    /// Records left for a tenant (all tenants: `None`).
    fn spool_len(&self, sink: &str, tenant: Option<&str>) -> Result<u64, SpoolError>;
    /// Tenants with spooled records.
    fn spool_tenants(&self, sink: &str) -> Result<Vec<String>, SpoolError>;
    /// Records CloudForet took (each with the id it answered): out of the
    /// outbox, cloud services into the ledger, all in one transaction (all
    /// or none). Only a record this call takes out of the outbox enters the
    /// ledger, so acknowledging again (a retry after a lost answer, or a
    /// replica that delivered it too) changes nothing; of records of one
    /// key, the one spooled last (highest `seq`) is the ledger's. Any
    /// number of records: statements stay within [`ACK_ROWS`].
    fn delivered_many(&self, sink: &str, tenant: &str, acks: &[(&Spooled, &str)]) -> Result<(), SpoolError>;
    /// One record CloudForet took: see [`Outbox::delivered_many`].
    fn delivered(&self, sink: &str, tenant: &str, s: &Spooled, remote_id: &str) -> Result<(), SpoolError> {
        self.delivered_many(sink, tenant, &[(s, remote_id)])
    }
    /// A record CloudForet refused as invalid: out of the outbox, into the
    /// run's error resources.
    fn refused(&self, tenant: &str, s: &Spooled, reason: &str) -> Result<(), SpoolError>;
    /// A delivery attempt failed for a passing reason.
    fn attempt_failed(&self, s: &Spooled, error: &str) -> Result<(), SpoolError>;
    /// After a complete run: see [`Store::missed_by`].
    fn missed_by(&self, sink: &str, tenant: &str, run_id: &str, delete_after: u32) -> Result<Vec<(String, String)>, SpoolError>;
    fn cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str) -> Result<Option<String>, SpoolError>;
    fn set_cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str, at: &str) -> Result<(), SpoolError>;
    /// A cloud service deleted in CloudForet leaves the ledger.
    fn forget_pushed(&self, sink: &str, tenant: &str, key: &str) -> Result<(), SpoolError>;
    /// Cloud services in the ledger of a sink and tenant.
    fn pushed_count(&self, sink: &str, tenant: &str) -> Result<u64, SpoolError>;
}

/// Records acknowledged by one statement at most (the deliverer reads
/// chunks of this size): a hostile or huge chunk never makes an unbounded
/// statement.
pub const ACK_ROWS: usize = 256;
/// Records one outbox insert carries at most ...
pub const SPOOL_ROWS: usize = 256;
/// ... and bytes of bodies (a single larger record goes alone).
pub const SPOOL_BYTES: usize = 4 << 20;

/// Whether a delivered record enters the ledger: a cloud service with a
/// match key (the ones the sweep may delete).
pub fn ledgered(s: &Spooled) -> bool {
    s.resource_type == ResourceType::CloudService && !s.key.is_empty()
}

/// The match-rule key a spooled record is delivered under (the first rule
/// the resource fills).
pub fn spool_key(r: &Record, resource: &Map<String, Value>) -> String {
    match_keys(r.resource_type, resource).into_iter().next().map(|(_, k)| k).unwrap_or_default()
}

/// Reads an outbox row back.
pub fn read_row(seq: i64, run_id: String, ty: String, label: String, key: String, body: &str, attempts: i64) -> Result<Spooled, SpoolError> {
    let resource_type = ResourceType::parse(&ty).ok_or(SpoolError::UnknownType { seq, resource_type: ty })?;
    let resource = serde_json::from_str::<Map<String, Value>>(body).map_err(|source| SpoolError::Corrupt { seq, source })?;
    Ok(Spooled { seq, run_id, resource_type, label, key, resource, attempts })
}

impl Outbox for Store {
    fn spool(&self, sink: &str, tenant: &str, run_id: &str, batch: &[Record]) -> Result<usize, SpoolError> {
        Store::spool(self, sink, tenant, run_id, batch)
    }
    fn spooled(&self, sink: &str, tenant: &str, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        Store::spooled(self, sink, tenant, limit)
    }
    fn spool_len(&self, sink: &str, tenant: Option<&str>) -> Result<u64, SpoolError> {
        Store::spool_len(self, sink, tenant)
    }
    fn spool_tenants(&self, sink: &str) -> Result<Vec<String>, SpoolError> {
        Store::spool_tenants(self, sink)
    }
    fn delivered_many(&self, sink: &str, tenant: &str, acks: &[(&Spooled, &str)]) -> Result<(), SpoolError> {
        Store::delivered_many(self, sink, tenant, acks)
    }
    fn refused(&self, tenant: &str, s: &Spooled, reason: &str) -> Result<(), SpoolError> {
        Store::refused(self, tenant, s, reason)
    }
    fn attempt_failed(&self, s: &Spooled, error: &str) -> Result<(), SpoolError> {
        Store::attempt_failed(self, s, error)
    }
    fn missed_by(&self, sink: &str, tenant: &str, run_id: &str, delete_after: u32) -> Result<Vec<(String, String)>, SpoolError> {
        Store::missed_by(self, sink, tenant, run_id, delete_after)
    }
    fn cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str) -> Result<Option<String>, SpoolError> {
        Store::cost_synced(self, sink, tenant, data_source_id)
    }
    fn set_cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str, at: &str) -> Result<(), SpoolError> {
        Store::set_cost_synced(self, sink, tenant, data_source_id, at)
    }
    fn forget_pushed(&self, sink: &str, tenant: &str, key: &str) -> Result<(), SpoolError> {
        Store::forget_pushed(self, sink, tenant, key)
    }
    fn pushed_count(&self, sink: &str, tenant: &str) -> Result<u64, SpoolError> {
        Store::pushed_count(self, sink, tenant)
    }
}

impl Store {
    /// Writes a batch to the outbox in one transaction. Error resources
    /// are not spooled (the caller records them).
    pub fn spool(&self, sink: &str, tenant: &str, run_id: &str, batch: &[Record]) -> Result<usize, SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO outbox (sink, tenant, run_id, resource_type, label, key, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                ?;
            for r in batch.iter().filter(|r| !r.is_error()) {
                let resource = r.resource();
                let key = spool_key(r, &resource);
                stmt.execute(params![sink, tenant, run_id, r.resource_type.as_str(), r.label(), key, r.resource_text(&resource)])?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// The oldest `limit` spooled records of a sink and tenant.
    pub fn spooled(&self, sink: &str, tenant: &str, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, run_id, resource_type, label, key, body, attempts FROM outbox
                 WHERE sink = ?1 AND tenant = ?2 ORDER BY seq LIMIT ?3",
            )
            ?;
        let rows = stmt
            .query_map(params![sink, tenant, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?, r.get(6)?))
            })
            ?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, run_id, ty, label, key, body, attempts) = row?;
            out.push(read_row(seq, run_id, ty, label, key, &body, attempts)?);
        }
        Ok(out)
    }

    /// Records left in a sink's outbox for a tenant (all tenants: `None`).
    pub fn spool_len(&self, sink: &str, tenant: Option<&str>) -> Result<u64, SpoolError> {
        let conn = self.conn();
        let n: i64 = match tenant {
            Some(t) => conn.query_row("SELECT COUNT(*) FROM outbox WHERE sink = ?1 AND tenant = ?2", params![sink, t], |r| r.get(0)),
            None => conn.query_row("SELECT COUNT(*) FROM outbox WHERE sink = ?1", params![sink], |r| r.get(0)),
        }
        ?;
        Ok(n as u64)
    }

    /// Tenants with spooled records for a sink.
    pub fn spool_tenants(&self, sink: &str) -> Result<Vec<String>, SpoolError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT DISTINCT tenant FROM outbox WHERE sink = ?1 ORDER BY tenant")?;
        let rows = stmt.query_map(params![sink], |r| r.get(0))?;
        rows.collect::<Result<Vec<String>, _>>().map_err(SpoolError::from)
    }

    /// Records CloudForet took: out of the outbox; cloud services go into
    /// the ledger as seen by their runs. One transaction; see
    /// [`Outbox::delivered_many`].
    pub fn delivered_many(&self, sink: &str, tenant: &str, acks: &[(&Spooled, &str)]) -> Result<(), SpoolError> {
        let mut acks = acks.to_vec();
        acks.sort_by_key(|(s, _)| s.seq);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1 AND sink = ?2 AND tenant = ?3")?;
            let mut ledger = tx.prepare_cached(
                "INSERT INTO pushed (sink, tenant, resource_type, key, remote_id, last_run, missed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)
                 ON CONFLICT (sink, tenant, resource_type, key) DO UPDATE SET remote_id = ?5, last_run = ?6, missed = 0",
            )?;
            for (s, remote_id) in acks {
                // Only what this call takes out of the outbox enters the ledger.
                if delete.execute(params![s.seq, sink, tenant])? == 1 && ledgered(s) {
                    ledger.execute(params![sink, tenant, s.resource_type.as_str(), s.key, remote_id, s.run_id])?;
                }
            }
        }
        tx.commit().map_err(SpoolError::from)
    }

    /// A record CloudForet refused as invalid: out of the outbox, into the
    /// run's error resources with the reason.
    pub fn refused(&self, tenant: &str, s: &Spooled, reason: &str) -> Result<(), SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM outbox WHERE seq = ?1", params![s.seq])?;
        let body = Value::Object(s.resource.clone()).to_string();
        insert_error(&tx, tenant, &s.run_id, &s.label, &format!("CloudForet refused the record: {reason}"), &body)?;
        tx.commit().map_err(SpoolError::from)
    }

    /// A delivery attempt that failed for a passing reason (kept spooled).
    pub fn attempt_failed(&self, s: &Spooled, error: &str) -> Result<(), SpoolError> {
        self.conn()
            .execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1", params![s.seq, error])
            .map(|_| ())
            .map_err(SpoolError::from)
    }

    /// After a complete run: every pushed cloud service of the sink and
    /// tenant the run did not see has missed one more run. Returns
    /// `(key, remote_id)` of those that have now missed `delete_after`
    /// runs (0: never).
    pub fn missed_by(&self, sink: &str, tenant: &str, run_id: &str, delete_after: u32) -> Result<Vec<(String, String)>, SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("UPDATE pushed SET missed = missed + 1 WHERE sink = ?1 AND tenant = ?2 AND last_run != ?3", params![sink, tenant, run_id])
            ?;
        let gone = if delete_after == 0 {
            Vec::new()
        } else {
            let mut stmt = tx
                .prepare("SELECT key, remote_id FROM pushed WHERE sink = ?1 AND tenant = ?2 AND missed >= ?3 ORDER BY key")
                ?;
            let rows = stmt.query_map(params![sink, tenant, delete_after], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<(String, String)>, _>>()?
        };
        tx.commit()?;
        Ok(gone)
    }

    /// When costs of `data_source_id` were last synchronized for a tenant
    /// (RFC 3339); host-owned, out of reach of the collectors' state.
    pub fn cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str) -> Result<Option<String>, SpoolError> {
        self.conn()
            .query_row(
                "SELECT synced_at FROM cost_sync WHERE sink = ?1 AND tenant = ?2 AND data_source_id = ?3",
                params![sink, tenant, data_source_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(SpoolError::from)
    }

    pub fn set_cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str, at: &str) -> Result<(), SpoolError> {
        self.conn()
            .execute(
                "INSERT INTO cost_sync (sink, tenant, data_source_id, synced_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sink, tenant, data_source_id) DO UPDATE SET synced_at = ?4",
                params![sink, tenant, data_source_id, at],
            )
            .map(|_| ())
            .map_err(SpoolError::from)
    }

    /// A cloud service deleted in CloudForet leaves the ledger.
    pub fn forget_pushed(&self, sink: &str, tenant: &str, key: &str) -> Result<(), SpoolError> {
        self.conn()
            .execute("DELETE FROM pushed WHERE sink = ?1 AND tenant = ?2 AND key = ?3", params![sink, tenant, key])
            .map(|_| ())
            .map_err(SpoolError::from)
    }

    /// Cloud services in the ledger of a sink and tenant.
    pub fn pushed_count(&self, sink: &str, tenant: &str) -> Result<u64, SpoolError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM pushed WHERE sink = ?1 AND tenant = ?2", params![sink, tenant], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(SpoolError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(id: &str) -> Record {
        let r = json!({"name": id, "provider": "nutanix", "cloud_service_group": "Compute", "cloud_service_type": "VirtualMachine",
            "account": "pc", "reference": {"resource_id": id}, "data": {"n": 1}});
        Record::from_resource(ResourceType::CloudService, r.as_object().cloned().unwrap_or_default())
    }

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("cf-host-spool-test-{}", crate::runtime::new_run_id()));
        (Store::open(&dir.join("s.db")).expect("store"), dir)
    }

    #[test]
    fn cost_sync_is_kept_per_sink_tenant_and_data_source() {
        let (s, dir) = store();
        assert_eq!(s.cost_synced("cf", "t", "ds").unwrap(), None);
        s.set_cost_synced("cf", "t", "ds", "2026-11-20T00:00:00Z").unwrap();
        s.set_cost_synced("cf", "t", "ds", "2026-11-23T00:00:00Z").unwrap();
        s.set_cost_synced("other", "t", "ds", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(s.cost_synced("cf", "t", "ds").unwrap().as_deref(), Some("2026-11-23T00:00:00Z"));
        assert_eq!(s.cost_synced("cf", "u", "ds").unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn spool_survives_reopen_and_drains_in_order() {
        let (s, dir) = store();
        let err = Record::host_error("boom".into(), "Compute", "VirtualMachine", "nutanix");
        assert_eq!(s.spool("cf", "t", "r1", &[vm("a"), err, vm("b")]).unwrap(), 2);
        drop(s);
        let s = Store::open(&dir.join("s.db")).unwrap();
        let rows = s.spooled("cf", "t", 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.resource["name"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rows[0].resource["data"], json!({"n": 1}));
        assert_eq!(s.spooled("cf", "other", 10).unwrap().len(), 0);
        assert_eq!(s.spool_tenants("cf").unwrap(), ["t"]);
        s.attempt_failed(&rows[0], "down").unwrap();
        assert_eq!(s.spooled("cf", "t", 1).unwrap()[0].attempts, 1);
        s.delivered("cf", "t", &rows[0], "cs-a").unwrap();
        s.refused("t", &rows[1], "ERROR_INVALID_ARGUMENT: bad").unwrap();
        assert_eq!(s.spool_len("cf", None).unwrap(), 0);
        assert_eq!(s.errors_of_run("r1").unwrap(), ["CloudForet refused the record: ERROR_INVALID_ARGUMENT: bad"]);
        assert_eq!(crate::run_log::RunLog::error_counts_of_run(&s, "r1").unwrap(), std::collections::BTreeMap::from([("Compute/VirtualMachine".to_string(), 1)]));
        assert_eq!(s.pushed_count("cf", "t").unwrap(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A chunk acknowledged in any order: the last spooled record of a key
    /// is the ledger's; acknowledging a record again (a retry whose answer
    /// was lost), or as another sink's or tenant's, changes nothing.
    #[test]
    fn a_chunk_is_acknowledged_once_and_the_last_spooled_of_a_key_wins() {
        let (s, dir) = store();
        s.spool("cf", "t", "r1", &[vm("a"), vm("b")]).unwrap();
        s.spool("cf", "t", "r2", &[vm("a")]).unwrap();
        let rows = s.spooled("cf", "t", 10).unwrap();
        s.delivered_many("cf", "other", &[(&rows[0], "x")]).unwrap();
        s.delivered_many("other", "t", &[(&rows[0], "x")]).unwrap();
        assert_eq!((s.spool_len("cf", None).unwrap(), s.pushed_count("cf", "other").unwrap()), (3, 0), "not their rows");
        s.delivered_many("cf", "t", &[(&rows[2], "cs-a2"), (&rows[1], "cs-b"), (&rows[0], "cs-a1")]).unwrap();
        assert_eq!((s.spool_len("cf", None).unwrap(), s.pushed_count("cf", "t").unwrap()), (0, 2));
        let ids = |gone: Vec<(String, String)>| gone.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
        // "a" was last seen by r2 (as cs-a2), "b" by r1.
        assert_eq!(ids(s.missed_by("cf", "t", "r2", 1).unwrap()), ["cs-b"]);
        s.delivered_many("cf", "t", &[(&rows[1], "stale")]).unwrap();
        assert_eq!(ids(s.missed_by("cf", "t", "r3", 2).unwrap()), ["cs-b"], "b's misses kept, its id too");
        assert_eq!(ids(s.missed_by("cf", "t", "r4", 2).unwrap()), ["cs-a2", "cs-b"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unseen_cloud_services_are_deleted_after_n_complete_runs() {
        let (s, dir) = store();
        s.spool("cf", "t", "r1", &[vm("a"), vm("b")]).unwrap();
        for (row, id) in s.spooled("cf", "t", 10).unwrap().iter().zip(["cs-a", "cs-b"]) {
            s.delivered("cf", "t", row, id).unwrap();
        }
        assert!(s.missed_by("cf", "t", "r1", 2).unwrap().is_empty());
        // Run 2 sees only "a"; "b" misses once, then twice.
        s.spool("cf", "t", "r2", &[vm("a")]).unwrap();
        let row = s.spooled("cf", "t", 10).unwrap().remove(0);
        s.delivered("cf", "t", &row, "cs-a").unwrap();
        assert!(s.missed_by("cf", "t", "r2", 2).unwrap().is_empty());
        let gone = s.missed_by("cf", "t", "r3", 0).unwrap();
        assert!(gone.is_empty(), "0 never deletes");
        let gone = s.missed_by("cf", "t", "r4", 2).unwrap();
        // "a" missed r3 and r4 too, "b" r2..r4.
        assert_eq!(gone.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(), ["cs-a", "cs-b"]);
        s.forget_pushed("cf", "t", &gone[0].0).unwrap();
        assert_eq!(s.pushed_count("cf", "t").unwrap(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
