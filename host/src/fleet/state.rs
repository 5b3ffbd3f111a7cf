//! Guest `state` in the fleet's database: every replica reads what any
//! replica wrote, so an incremental collection stays incremental wherever
//! its next run lands, and a restart loses nothing.

use super::pool::Pool;
use super::error::FleetError;
use crate::host::state::{BackendError, Namespace, PutError, StateBackend};
use std::sync::Arc;

pub struct PgState {
    pool: Arc<Pool>,
}

impl PgState {
    pub(super) fn new(pool: Arc<Pool>) -> PgState {
        PgState { pool }
    }
}

fn backend(e: impl Into<FleetError>) -> BackendError {
    BackendError::Other(Box::new(e.into()))
}

impl StateBackend for PgState {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, BackendError> {
        let mut c = self.pool.get().map_err(backend)?;
        let row = c
            .query_opt("SELECT value FROM cf_state WHERE tenant = $1 AND collector = $2 AND key = $3", &[&ns.tenant, &ns.collector, &key])
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// One transaction under a lock on the namespace: the key count and
    /// the write see the same state on every replica.
    fn put(&self, ns: &Namespace, key: &str, value: &str, max_keys: usize) -> Result<(), PutError> {
        let mut c = self.pool.get().map_err(backend)?;
        let mut tx = c.transaction().map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))", &[&ns.tenant, &ns.collector]).map_err(backend)?;
        let updated = tx
            .execute("UPDATE cf_state SET value = $4 WHERE tenant = $1 AND collector = $2 AND key = $3", &[&ns.tenant, &ns.collector, &key, &value])
            .map_err(backend)?;
        if updated == 0 {
            let held: i64 = tx
                .query_one("SELECT count(*) FROM cf_state WHERE tenant = $1 AND collector = $2", &[&ns.tenant, &ns.collector])
                .map_err(backend)?
                .get(0);
            if usize::try_from(held).unwrap_or(usize::MAX) >= max_keys {
                return Err(PutError::TooManyKeys(max_keys));
            }
            tx.execute("INSERT INTO cf_state (tenant, collector, key, value) VALUES ($1, $2, $3, $4)", &[&ns.tenant, &ns.collector, &key, &value])
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(())
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), BackendError> {
        let mut c = self.pool.get().map_err(backend)?;
        c.execute("DELETE FROM cf_state WHERE tenant = $1 AND collector = $2 AND key = $3", &[&ns.tenant, &ns.collector, &key]).map_err(backend)?;
        Ok(())
    }

    fn count(&self, ns: &Namespace) -> Result<usize, BackendError> {
        let mut c = self.pool.get().map_err(backend)?;
        let n: i64 = c.query_one("SELECT count(*) FROM cf_state WHERE tenant = $1 AND collector = $2", &[&ns.tenant, &ns.collector]).map_err(backend)?.get(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn blocks(&self) -> bool {
        true
    }
}
