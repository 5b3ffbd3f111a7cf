//! A bounded pool of blocking PostgreSQL connections. The `postgres`
//! client runs its own small runtime per call, so callers use it from
//! tokio's blocking threads (`spawn_blocking`), never from async code.

use super::error::FleetError;
use super::tls::{Connector, DbUrl};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How long a caller waits for a free connection before failing closed.
const WAIT: Duration = Duration::from_secs(10);
/// Each statement's limit; a hung database fails the call instead of
/// holding a connection (and a blocking thread) forever.
const STATEMENT_TIMEOUT_MS: u64 = 15_000;
/// How long the check of an idle connection may take.
const VALIDATE: Duration = Duration::from_secs(2);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Pool {
    config: postgres::Config,
    /// TLS as the URL's `sslmode` says: every connection goes through it.
    connector: Connector,
    /// The database, for errors (never its password).
    database: String,
    max: usize,
    inner: Mutex<Idle>,
    freed: Condvar,
}

struct Idle {
    clients: Vec<postgres::Client>,
    /// Connections handed out.
    out: usize,
}

impl Pool {
    pub fn new(url: &str, max: usize) -> Result<Pool, FleetError> {
        let DbUrl { mut config, connector } = DbUrl::parse(url)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
        config.application_name("cf-host");
        Ok(Pool { config, connector, database: super::tls::describe(url), max: max.max(1), inner: Mutex::new(Idle { clients: Vec::new(), out: 0 }), freed: Condvar::new() })
    }

    /// A connection: an idle one, a new one while fewer than `max` are
    /// out, else the first one freed within [`WAIT`].
    pub fn get(&self) -> Result<Conn<'_>, FleetError> {
        let mut idle = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(mut c) = idle.clients.pop() {
                idle.out += 1;
                drop(idle);
                // An idle connection may have died with its server (a
                // restart): checked with one round trip, else replaced.
                if !c.is_closed() && c.is_valid(VALIDATE).is_ok() {
                    return Ok(Conn { pool: self, client: Some(c) });
                }
                drop(c);
                return self.fresh();
            }
            if idle.out < self.max {
                idle.out += 1;
                drop(idle);
                return self.fresh();
            }
            let (guard, timeout) = self.freed.wait_timeout(idle, WAIT).unwrap_or_else(|p| p.into_inner());
            idle = guard;
            if timeout.timed_out() && idle.clients.is_empty() && idle.out >= self.max {
                return Err(FleetError::Busy(WAIT.as_millis() as u64));
            }
        }
    }

    /// A new connection in a slot already counted as out.
    fn fresh(&self) -> Result<Conn<'_>, FleetError> {
        match self.connect_dedicated() {
            Ok(c) => Ok(Conn { pool: self, client: Some(c) }),
            Err(e) => {
                self.give_back(None);
                Err(e)
            }
        }
    }

    /// A connection outside the pool (a listener that stays connected).
    /// The one place the fleet connects: pooled connections are made here
    /// too.
    pub fn connect_dedicated(&self) -> Result<postgres::Client, FleetError> {
        self.connector.connect(&self.config, &self.database)
    }

    fn give_back(&self, client: Option<postgres::Client>) {
        let mut idle = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        idle.out = idle.out.saturating_sub(1);
        // A broken connection is dropped; the next caller connects again.
        if let Some(c) = client.filter(|c| !c.is_closed()) {
            idle.clients.push(c);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    /// Closing a blocking client blocks on its own runtime, which panics
    /// inside an async context (a server shutting down drops its pool
    /// there): the idle clients are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.inner.get_mut().unwrap_or_else(|p| p.into_inner()).clients);
        if !idle.is_empty() {
            let _ = std::thread::Builder::new().name("cf-host-pg-close".into()).spawn(move || drop(idle));
        }
    }
}

/// A connection out of the pool; back in on drop.
pub struct Conn<'a> {
    pool: &'a Pool,
    client: Option<postgres::Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.client.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("held until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.pool.give_back(self.client.take());
    }
}

/// Runs a blocking call where blocking is allowed: as is outside tokio or
/// on a blocking thread, through `block_in_place` on a multi-threaded
/// runtime's worker, on a scoped thread of its own on a current-thread
/// runtime.
pub fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(t) => t,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}
