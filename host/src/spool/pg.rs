//! Fleet mode's outbox, push ledger and cost synchronization marks in the
//! shared PostgreSQL database (`cf_outbox`, `cf_pushed`, `cf_cost_sync`):
//! the same answers as the embedded store's, so that whichever replica
//! holds a tenant's lease delivers what any replica spooled for it (a dead
//! replica's leftovers included).
//!
//! A batch is durable (committed) before `spool` returns, as in the
//! embedded store: the spooler waits for it before the deliverer sends
//! anything. It is written as arrays (`UNNEST`), a bounded piece
//! ([`SPOOL_ROWS`] rows, [`SPOOL_BYTES`] of bodies) per statement, in one
//! transaction. The deliverer's chunk of acknowledgements is one statement
//! per [`ACK_ROWS`] records (a data-modifying `WITH`: the outbox delete
//! and the ledger upsert of the rows it deleted), in one transaction: a
//! round trip per chunk, not a transaction per record. A refused record
//! leaves the outbox and becomes an error resource of its run
//! (`cf_error_resources`, [`crate::fleet::runs`]) in one transaction.
//!
//! The `postgres` client blocks on a runtime of its own, which tokio
//! forbids on its async workers: each call here moves off them
//! ([`off_async`]).

use super::{ledgered, read_row, spool_key, Outbox, SpoolError, Spooled, ACK_ROWS, SPOOL_BYTES, SPOOL_ROWS};
use crate::fleet::pool::{off_async, Pool};
use crate::record::Record;
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

/// Outbox rows one insert writes, as arrays (`UNNEST`): at most
/// [`SPOOL_ROWS`] rows and about [`SPOOL_BYTES`] of bodies.
#[derive(Default)]
struct Piece {
    types: Vec<&'static str>,
    labels: Vec<String>,
    keys: Vec<String>,
    bodies: Vec<String>,
    bytes: usize,
}

impl Piece {
    /// Inserts the rows in their order (`seq` follows it) and empties the
    /// piece.
    fn insert(&mut self, tx: &mut postgres::Transaction<'_>, sink: &str, tenant: &str, run_id: &str) -> Result<(), crate::fleet::FleetError> {
        tx.execute(
            "INSERT INTO cf_outbox (sink, tenant, run_id, resource_type, label, key, body)
             SELECT $1, $2, $3, t, l, k, b FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS u(t, l, k, b, n)
             ORDER BY n",
            &[&sink, &tenant, &run_id, &self.types, &self.labels, &self.keys, &self.bodies],
        )?;
        *self = Piece::default();
        Ok(())
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Outbox for PgOutbox {
    fn spool(&self, sink: &str, tenant: &str, run_id: &str, batch: &[Record]) -> Result<usize, SpoolError> {
        off_async(|| -> Result<usize, crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            let mut piece = Piece::default();
            let mut n = 0;
            for r in batch.iter().filter(|r| !r.is_error()) {
                let resource = r.resource();
                let body = r.resource_text(&resource);
                if !piece.types.is_empty() && (piece.types.len() >= SPOOL_ROWS || piece.bytes + body.len() > SPOOL_BYTES) {
                    piece.insert(&mut tx, sink, tenant, run_id)?;
                }
                piece.bytes += body.len();
                piece.types.push(r.resource_type.as_str());
                piece.labels.push(r.label());
                piece.keys.push(spool_key(r, &resource));
                piece.bodies.push(body);
                n += 1;
            }
            if !piece.types.is_empty() {
                piece.insert(&mut tx, sink, tenant, run_id)?;
            }
            tx.commit()?;
            Ok(n)
        })
        .map_err(SpoolError::from)
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

    fn delivered_many(&self, sink: &str, tenant: &str, acks: &[(&Spooled, &str)]) -> Result<(), SpoolError> {
        if acks.is_empty() {
            return Ok(());
        }
        let mut acks = acks.to_vec();
        acks.sort_by_key(|(s, _)| s.seq);
        off_async(|| -> Result<(), crate::fleet::FleetError> {
            let mut c = self.pool.get()?;
            let mut tx = c.transaction()?;
            for piece in acks.chunks(ACK_ROWS) {
                let seqs: Vec<i64> = piece.iter().map(|(s, _)| s.seq).collect();
                let ledger: Vec<bool> = piece.iter().map(|(s, _)| ledgered(s)).collect();
                let types: Vec<&str> = piece.iter().map(|(s, _)| s.resource_type.as_str()).collect();
                let keys: Vec<&str> = piece.iter().map(|(s, _)| s.key.as_str()).collect();
                let ids: Vec<&str> = piece.iter().map(|(_, id)| *id).collect();
                let runs: Vec<&str> = piece.iter().map(|(s, _)| s.run_id.as_str()).collect();
                // One statement: the rows it deletes, and of those the
                // cloud services (the last spooled of each key) into the
                // ledger.
                tx.execute(
                    "WITH acks AS (
                         SELECT * FROM UNNEST($3::bigint[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::text[])
                             AS a(seq, ledger, resource_type, key, remote_id, run_id)
                     ), gone AS (
                         DELETE FROM cf_outbox o USING acks a WHERE o.seq = a.seq AND o.sink = $1 AND o.tenant = $2 RETURNING o.seq
                     ), seen AS (
                         SELECT DISTINCT ON (a.resource_type, a.key) a.resource_type, a.key, a.remote_id, a.run_id
                         FROM acks a JOIN gone g ON g.seq = a.seq WHERE a.ledger
                         ORDER BY a.resource_type, a.key, a.seq DESC
                     )
                     INSERT INTO cf_pushed (sink, tenant, resource_type, key, remote_id, last_run, missed)
                     SELECT $1, $2, resource_type, key, remote_id, run_id, 0 FROM seen
                     ON CONFLICT (sink, tenant, resource_type, key) DO UPDATE SET remote_id = EXCLUDED.remote_id, last_run = EXCLUDED.last_run, missed = 0",
                    &[&sink, &tenant, &seqs, &ledger, &types, &keys, &ids, &runs],
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
