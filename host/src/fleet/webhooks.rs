//! Webhooks registered through any replica's admin API, kept in the
//! database (`cf_webhooks`): every replica fires them for the collections
//! it runs. Each replica reads the registrations again every [`RELOAD`]
//! ([`crate::webhook::Subscriptions::reload`]), so a webhook added or
//! removed on one replica takes effect on the others within that time.

use super::pool::Pool;
use crate::webhook::{KeepError, Subscription, SubscriptionStore, MAX_SUBSCRIPTIONS};
use std::sync::Arc;
use std::time::Duration;

/// Any constant: the advisory lock webhook inserts take.
const INSERT_LOCK: i64 = 0x0cf_4e6b_4001;

/// How often a replica reads the fleet's webhooks again.
pub const RELOAD: Duration = Duration::from_secs(2);

/// The fleet's webhooks (a [`SubscriptionStore`]). Blocking: call it off
/// the async workers.
pub struct PgSubscriptions {
    pool: Arc<Pool>,
}

impl PgSubscriptions {
    pub(super) fn new(pool: Arc<Pool>) -> PgSubscriptions {
        PgSubscriptions { pool }
    }
}

fn keep(e: impl std::error::Error + Send + Sync + 'static) -> KeepError {
    KeepError(Box::new(e))
}

impl SubscriptionStore for PgSubscriptions {
    fn load(&self) -> Result<Vec<(Subscription, String)>, KeepError> {
        let mut c = self.pool.get().map_err(keep)?;
        let rows = c.query("SELECT id, url, events, secret, created_at FROM cf_webhooks ORDER BY created_at, id", &[]).map_err(keep)?;
        rows.into_iter()
            .map(|r| {
                let events: String = r.get(2);
                let events = serde_json::from_str(&events).map_err(keep)?;
                let created_at: i64 = r.get(4);
                Ok((Subscription { id: r.get(0), url: r.get(1), events, created_at: created_at.max(0) as u64 }, r.get(3)))
            })
            .collect()
    }

    /// Inserts under a lock that orders the fleet's inserts, so replicas
    /// adding at once cannot pass [`MAX_SUBSCRIPTIONS`] together.
    fn insert(&self, s: &Subscription, secret: &str) -> Result<(), KeepError> {
        // A list of strings always encodes.
        let events = serde_json::to_string(&s.events).unwrap_or_default();
        let mut c = self.pool.get().map_err(keep)?;
        let mut tx = c.transaction().map_err(keep)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK]).map_err(keep)?;
        let held: i64 = tx.query_one("SELECT count(*) FROM cf_webhooks", &[]).map_err(keep)?.get(0);
        if held >= MAX_SUBSCRIPTIONS as i64 {
            return Err(KeepError(format!("the fleet already holds {MAX_SUBSCRIPTIONS} webhooks").into()));
        }
        tx.execute(
            "INSERT INTO cf_webhooks (id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&s.id, &s.url, &events, &secret, &(s.created_at as i64)],
        )
        .map_err(keep)?;
        tx.commit().map_err(keep)
    }

    fn delete(&self, id: &str) -> Result<bool, KeepError> {
        let mut c = self.pool.get().map_err(keep)?;
        c.execute("DELETE FROM cf_webhooks WHERE id = $1", &[&id]).map(|n| n > 0).map_err(keep)
    }
}
