//! `cloudforet:collector/state`: key/value state scoped to (tenant,
//! collector). The namespace is fixed by the host when the run starts; the
//! guest only names keys inside it, so it cannot reach another tenant's or
//! collector's state.

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

/// Storage behind the state interface.
pub trait StateBackend: Send + Sync {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, String>;
    fn set(&self, ns: &Namespace, key: &str, value: &str) -> Result<(), String>;
    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), String>;
    fn count(&self, ns: &Namespace) -> Result<usize, String>;
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
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, String> {
        let m = self.map.lock().map_err(|_| "state lock poisoned".to_string())?;
        Ok(m.get(ns).and_then(|kv| kv.get(key).cloned()))
    }
    fn set(&self, ns: &Namespace, key: &str, value: &str) -> Result<(), String> {
        let mut m = self.map.lock().map_err(|_| "state lock poisoned".to_string())?;
        m.entry(ns.clone()).or_default().insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), String> {
        let mut m = self.map.lock().map_err(|_| "state lock poisoned".to_string())?;
        if let Some(kv) = m.get_mut(ns) {
            kv.remove(key);
        }
        Ok(())
    }
    fn count(&self, ns: &Namespace) -> Result<usize, String> {
        let m = self.map.lock().map_err(|_| "state lock poisoned".to_string())?;
        Ok(m.get(ns).map_or(0, HashMap::len))
    }
}

pub struct StateCtx {
    pub(crate) backend: Arc<dyn StateBackend>,
    pub(crate) namespace: Namespace,
    pub(crate) limits: StateLimits,
}

impl state::Host for StateCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        Ok(self.backend.get(&self.namespace, &key).map_err(StateError::Unavailable))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        if value.len() > self.limits.max_value_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_value_bytes as u64)));
        }
        let exists = match self.backend.get(&self.namespace, &key) {
            Ok(v) => v.is_some(),
            Err(e) => return Ok(Err(StateError::Unavailable(e))),
        };
        if !exists {
            match self.backend.count(&self.namespace) {
                Ok(n) if n >= self.limits.max_keys => {
                    return Ok(Err(StateError::TooLarge(self.limits.max_keys as u64)));
                }
                Ok(_) => {}
                Err(e) => return Ok(Err(StateError::Unavailable(e))),
            }
        }
        Ok(self.backend.set(&self.namespace, &key, &value).map_err(StateError::Unavailable))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), StateError>> {
        if key.len() > self.limits.max_key_bytes {
            return Ok(Err(StateError::TooLarge(self.limits.max_key_bytes as u64)));
        }
        Ok(self.backend.delete(&self.namespace, &key).map_err(StateError::Unavailable))
    }
}
