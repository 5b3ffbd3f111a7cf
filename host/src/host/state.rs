//! `cloudforet:collector/state`: key/value state scoped to (tenant,
//! collector). The namespace is fixed by the host when the run starts; the
//! guest only names keys inside it, so it cannot reach another tenant's or
//! collector's state.
//!
//! A backend fails with a [`BackendError`] (a put also with
//! [`PutError::TooManyKeys`]); the interface hands the guest its text as
//! `state-error.unavailable`.

use crate::bindings::current::cloudforet::collector::state::{self, StateError};
use crate::limits::StateLimits;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whose state a run sees.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub tenant: String,
    pub collector: String,
}

/// Why a [`StateBackend`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A thread panicked holding the in-memory state.
    #[error("state lock poisoned")]
    Poisoned,
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] rusqlite::Error),
    /// Another backend's own failure.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Why [`StateBackend::put`] did not store a value.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The key is new and the namespace already holds this many keys.
    #[error("the namespace already holds its limit of {0} keys")]
    TooManyKeys(usize),
    /// The storage failed.
    #[error(transparent)]
    Unavailable(#[from] BackendError),
}

/// Storage behind the state interface.
pub trait StateBackend: Send + Sync {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, BackendError>;
    /// Sets `key` to `value` in one atomic step: a key that is not there
    /// yet is refused when the namespace already holds `max_keys` keys,
    /// and the check and the write see the same state (no other writer in
    /// between).
    fn put(&self, ns: &Namespace, key: &str, value: &str, max_keys: usize) -> Result<(), PutError>;
    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), BackendError>;
    fn count(&self, ns: &Namespace) -> Result<usize, BackendError>;
    /// Whether calls wait on I/O (a database): the state interface then
    /// runs them on tokio's blocking threads, off the async workers. An
    /// in-memory backend answers false and is called in place.
    fn blocks(&self) -> bool {
        false
    }
    /// Sets `key` without a key limit (presets, tests).
    fn set(&self, ns: &Namespace, key: &str, value: &str) -> Result<(), PutError> {
        self.put(ns, key, value, usize::MAX)
    }
}

/// In-memory state (the default when no store is configured).
#[derive(Default)]
pub struct MemoryState {
    map: Mutex<HashMap<Namespace, HashMap<String, String>>>,
}

impl MemoryState {
    /// Every key of one namespace (test harness).
    pub fn dump(&self, ns: &Namespace) -> std::collections::BTreeMap<String, String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(ns).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }
}

impl StateBackend for MemoryState {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, BackendError> {
        let m = self.map.lock().map_err(|_| BackendError::Poisoned)?;
        Ok(m.get(ns).and_then(|kv| kv.get(key).cloned()))
    }
    fn put(&self, ns: &Namespace, key: &str, value: &str, max_keys: usize) -> Result<(), PutError> {
        let mut m = self.map.lock().map_err(|_| BackendError::Poisoned)?;
        let kv = m.entry(ns.clone()).or_default();
        let held = kv.len();
        match kv.get_mut(key) {
            Some(v) => value.clone_into(v),
            None if held >= max_keys => return Err(PutError::TooManyKeys(max_keys)),
            None => {
                kv.insert(key.to_string(), value.to_string());
            }
        }
        Ok(())
    }
    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), BackendError> {
        let mut m = self.map.lock().map_err(|_| BackendError::Poisoned)?;
        if let Some(kv) = m.get_mut(ns) {
            kv.remove(key);
        }
        Ok(())
    }
    fn count(&self, ns: &Namespace) -> Result<usize, BackendError> {
        let m = self.map.lock().map_err(|_| BackendError::Poisoned)?;
        Ok(m.get(ns).map_or(0, HashMap::len))
    }
}

pub struct StateCtx {
    pub(crate) backend: Arc<dyn StateBackend>,
    pub(crate) namespace: Namespace,
    pub(crate) limits: StateLimits,
}

impl StateCtx {
    /// Runs `f` on the backend: in place for an in-memory backend, on
    /// tokio's blocking threads for one that waits on I/O.
    async fn call<T: Send + 'static>(&self, f: impl FnOnce(&dyn StateBackend, &Namespace) -> T + Send + 'static) -> Result<T, StateError> {
        if !self.backend.blocks() {
            return Ok(f(self.backend.as_ref(), &self.namespace));
        }
        let (backend, ns) = (self.backend.clone(), self.namespace.clone());
        tokio::task::spawn_blocking(move || f(backend.as_ref(), &ns))
            .await
            .map_err(|e| StateError::Unavailable(format!("state backend failed: {e}")))
    }
}

impl state::Host for StateCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        Ok(self.call(move |b, ns| b.get(ns, &key)).await.and_then(|r| r.map_err(unavailable)))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        if value.len() > self.limits.max_value_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_value_bytes as u64)));
        }
        let max_keys = self.limits.max_keys;
        let put = self.call(move |b, ns| b.put(ns, &key, &value, max_keys)).await;
        Ok(match put {
            Ok(Ok(())) => Ok(()),
            Ok(Err(PutError::TooManyKeys(n))) => Err(StateError::TooLarge(n as u64)),
            Ok(Err(PutError::Unavailable(e))) => Err(unavailable(e)),
            Err(e) => Err(e),
        })
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        Ok(self.call(move |b, ns| b.delete(ns, &key)).await.and_then(|r| r.map_err(unavailable)))
    }
}

/// What the guest is told of a backend failure: its text.
fn unavailable(e: BackendError) -> StateError {
    StateError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A backend whose `get` waits until a task on the async runtime
    /// opens it: called on the runtime's only thread, it would wait alone.
    struct Gate {
        open: Mutex<mpsc::Receiver<()>>,
        blocks: bool,
    }

    impl StateBackend for Gate {
        fn get(&self, _: &Namespace, _: &str) -> Result<Option<String>, BackendError> {
            let open = self.open.lock().map_err(|_| BackendError::Poisoned)?;
            open.recv_timeout(Duration::from_secs(5))
                .map(|()| Some("v".into()))
                .map_err(|_| BackendError::Other("the async thread was blocked".into()))
        }
        fn put(&self, _: &Namespace, _: &str, _: &str, _: usize) -> Result<(), PutError> {
            Ok(())
        }
        fn delete(&self, _: &Namespace, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
        fn count(&self, _: &Namespace) -> Result<usize, BackendError> {
            Ok(0)
        }
        fn blocks(&self) -> bool {
            self.blocks
        }
    }

    fn ctx(backend: Arc<dyn StateBackend>) -> StateCtx {
        StateCtx { backend, namespace: Namespace { tenant: "t".into(), collector: "c".into() }, limits: StateLimits::default() }
    }

    /// Only the async task can open the gate: the call succeeds only when
    /// the backend runs off the runtime's thread.
    fn get_through_gate(blocks: bool) -> Result<Option<String>, StateError> {
        let (tx, rx) = mpsc::channel();
        let mut ctx = ctx(Arc::new(Gate { open: Mutex::new(rx), blocks }));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::spawn(async move {
                let _ = tx.send(());
            });
            state::Host::get(&mut ctx, "k".into()).await.unwrap()
        })
    }

    #[test]
    fn a_blocking_backend_runs_off_the_async_threads() {
        assert!(matches!(get_through_gate(true), Ok(Some(v)) if v == "v"));
    }

    #[test]
    fn an_in_memory_backend_is_called_in_place() {
        // The gate test's control: called in place, the gate stays shut.
        assert!(matches!(get_through_gate(false), Err(StateError::Unavailable(e)) if e.contains("blocked")));
    }

    #[test]
    fn set_refuses_a_new_key_over_the_limit_and_replaces_held_ones() {
        let mut ctx = ctx(Arc::new(MemoryState::default()));
        ctx.limits.max_keys = 2;
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for k in ["a", "b"] {
                assert!(state::Host::set(&mut ctx, k.into(), "1".into()).await.unwrap().is_ok());
            }
            assert!(matches!(state::Host::set(&mut ctx, "c".into(), "1".into()).await.unwrap(), Err(StateError::TooLarge(2))));
            assert!(state::Host::set(&mut ctx, "a".into(), "2".into()).await.unwrap().is_ok());
            assert!(matches!(state::Host::get(&mut ctx, "a".into()).await.unwrap(), Ok(Some(v)) if v == "2"));
            assert!(matches!(state::Host::get(&mut ctx, "c".into()).await.unwrap(), Ok(None)));
        });
    }
}
