//! Fleet mode's outbox, push ledger and cost synchronization marks in the
//! shared PostgreSQL database (`cf_outbox`, `cf_pushed`, `cf_cost_sync`):
//! the same statements as the embedded store's, so that whichever replica
//! holds a tenant's lease delivers what any replica spooled for it (a dead
//! replica's leftovers included).
//!
//! A batch is durable (committed) before `spool` returns, as in the
//! embedded store: the spooler waits for it before the deliverer sends
//! anything. A refused record leaves the outbox and becomes an error
//! resource of its run (`cf_error_resources`, [`crate::fleet::runs`]) in
//! one transaction.
//!
//! The `postgres` client blocks on a runtime of its own, which tokio
//! forbids on its async workers: each call here moves off them
//! ([`off_async`]).

use super::{read_row, spool_key, Outbox, SpoolError, Spooled};
use crate::fleet::pool::{off_async, Pool};
use crate::record::{Record, ResourceType};
use serde_json::Value;
use std::sync::Arc;

pub struct PgOutbox {
    pool: Arc<Pool>,
}

impl PgOutbox {
    pub fn new(pool: Arc<Pool>) -> PgOutbox {
        PgOutbox { pool }
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Outbox for PgOutbox {
    fn spool(&self, sink: &str, tenant: &str, run_id: &str, batch: &[Record]) -> Result<usize, SpoolError> {
        off_async(|| {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction().map_err(crate::fleet::FleetError::from)?;
            let stmt = tx
                .prepare("INSERT INTO cf_outbox (sink, tenant, run_id, resource_type, label, key, body) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .map_err(crate::fleet::FleetError::from)?;
            let mut n = 0;
            for r in batch.iter().filter(|r| !r.is_error()) {
                let resource = r.resource();
                let (key, body, label) = (spool_key(r, &resource), r.resource_text(&resource), r.label());
                tx.execute(&stmt, &[&sink, &tenant, &run_id, &r.resource_type.as_str(), &label, &key, &body])
                    .map_err(crate::fleet::FleetError::from)?;
                n += 1;
            }
            tx.commit().map_err(crate::fleet::FleetError::from)?;
            Ok(n)
        })
    }

    fn spooled(&self, sink: &str, tenant: &str, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = off_async(|| -> Result<_, crate::fleet::FleetError> {
            Ok(self.pool.get()?.query(
                "SELECT seq, run_id, resource_type, label, key, body, attempts FROM cf_outbox
                 WHERE sink = $1 AND tenant = $2 ORDER BY seq LIMIT $3",
                &[&sink, &tenant, &limit],
            )?)
        })?;
        rows.iter()
            .map(|r| read_row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get::<_, &str>(5), r.get(6)))
            .collect()
    }

    fn spool_len(&self, sink: &str, tenant: Option<&str>) -> Result<u64, SpoolError> {
        let n: i64 = off_async(|| -> Result<_, crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let row = match tenant {
                Some(t) => c.query_one("SELECT count(*) FROM cf_outbox WHERE sink = $1 AND tenant = $2", &[&sink, &t])?,
                None => c.query_one("SELECT count(*) FROM cf_outbox WHERE sink = $1", &[&sink])?,
            };
            Ok(row.get(0))
        })?;
        Ok(count(n))
    }

    fn spool_tenants(&self, sink: &str) -> Result<Vec<String>, SpoolError> {
        let rows = off_async(|| -> Result<_, crate::fleet::FleetError> {
            Ok(self.pool.get()?.query("SELECT DISTINCT tenant FROM cf_outbox WHERE sink = $1 ORDER BY tenant", &[&sink])?)
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn delivered(&self, sink: &str, tenant: &str, s: &Spooled, remote_id: &str) -> Result<(), SpoolError> {
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM cf_outbox WHERE seq = $1", &[&s.seq])?;
            if s.resource_type == ResourceType::CloudService && !s.key.is_empty() {
                tx.execute(
                    "INSERT INTO cf_pushed (sink, tenant, resource_type, key, remote_id, last_run, missed) VALUES ($1, $2, $3, $4, $5, $6, 0)
                     ON CONFLICT (sink, tenant, resource_type, key) DO UPDATE SET remote_id = EXCLUDED.remote_id, last_run = EXCLUDED.last_run, missed = 0",
                    &[&sink, &tenant, &s.resource_type.as_str(), &s.key, &remote_id, &s.run_id],
                )?;
            }
            tx.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    fn refused(&self, tenant: &str, s: &Spooled, reason: &str) -> Result<(), SpoolError> {
        let body = Value::Object(s.resource.clone()).to_string();
        let message = format!("CloudForet refused the record: {reason}");
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM cf_outbox WHERE seq = $1", &[&s.seq])?;
            crate::fleet::runs::insert_error(&mut tx, tenant, &s.run_id, &s.label, &message, &body)?;
            tx.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    fn attempt_failed(&self, s: &Spooled, error: &str) -> Result<(), SpoolError> {
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            self.pool.get()?.execute("UPDATE cf_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1", &[&s.seq, &error])?;
            Ok(())
        })?;
        Ok(())
    }

    fn missed_by(&self, sink: &str, tenant: &str, run_id: &str, delete_after: u32) -> Result<Vec<(String, String)>, SpoolError> {
        let after = i32::try_from(delete_after).unwrap_or(i32::MAX);
        let gone = off_async(|| -> Result<_, crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            tx.execute("UPDATE cf_pushed SET missed = missed + 1 WHERE sink = $1 AND tenant = $2 AND last_run != $3", &[&sink, &tenant, &run_id])?;
            let gone: Vec<(String, String)> = if delete_after == 0 {
                Vec::new()
            } else {
                tx.query("SELECT key, remote_id FROM cf_pushed WHERE sink = $1 AND tenant = $2 AND missed >= $3 ORDER BY key", &[&sink, &tenant, &after])?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect()
            };
            tx.commit()?;
            Ok(gone)
        })?;
        Ok(gone)
    }

    fn cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str) -> Result<Option<String>, SpoolError> {
        let row = off_async(|| -> Result<_, crate::fleet::FleetError> {
            Ok(self.pool.get()?.query_opt(
                "SELECT synced_at FROM cf_cost_sync WHERE sink = $1 AND tenant = $2 AND data_source_id = $3",
                &[&sink, &tenant, &data_source_id],
            )?)
        })?;
        Ok(row.map(|r| r.get(0)))
    }

    fn set_cost_synced(&self, sink: &str, tenant: &str, data_source_id: &str, at: &str) -> Result<(), SpoolError> {
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            self.pool.get()?.execute(
                "INSERT INTO cf_cost_sync (sink, tenant, data_source_id, synced_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sink, tenant, data_source_id) DO UPDATE SET synced_at = EXCLUDED.synced_at",
                &[&sink, &tenant, &data_source_id, &at],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    fn forget_pushed(&self, sink: &str, tenant: &str, key: &str) -> Result<(), SpoolError> {
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            self.pool.get()?.execute("DELETE FROM cf_pushed WHERE sink = $1 AND tenant = $2 AND key = $3", &[&sink, &tenant, &key])?;
            Ok(())
        })?;
        Ok(())
    }

    fn pushed_count(&self, sink: &str, tenant: &str) -> Result<u64, SpoolError> {
        let n: i64 = off_async(|| -> Result<_, crate::fleet::FleetError> {
            Ok(self.pool.get()?.query_one("SELECT count(*) FROM cf_pushed WHERE sink = $1 AND tenant = $2", &[&sink, &tenant])?.get(0))
        })?;
        Ok(count(n))
    }
}
