//! The registry's desired state as a value ([`NameState`]): what the
//! fleet's compacted log keeps instead of the ops that led to it
//! (`fleet::registry_log`), and how a registry is brought to it
//! ([`Registry::restore`]).

use super::identity::Manifest;
use super::{Canary, Registry, RegistryError};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One loaded version: enough to load it again from its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    pub version: String,
    pub digest: String,
    pub source: String,
    pub manifest: Option<Manifest>,
}

/// A plugin name's whole state: its loaded versions, the live one, the
/// rollback history, pins and canary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameState {
    pub name: String,
    pub versions: Vec<VersionState>,
    pub live: Option<String>,
    /// Earlier live versions, most recent last.
    pub history: Vec<String>,
    pub pins: BTreeMap<String, String>,
    /// Version and percent.
    pub canary: Option<(String, u8)>,
}

impl Registry {
    /// Every name's state, by name (versions in order).
    pub fn desired_state(&self) -> Vec<NameState> {
        let entries = self.lock();
        let mut out: Vec<NameState> = entries
            .iter()
            .map(|(name, e)| NameState {
                name: name.clone(),
                versions: e
                    .versions
                    .iter()
                    .map(|(v, l)| VersionState { version: v.to_string(), digest: l.plugin.digest.clone(), source: l.source.clone(), manifest: l.manifest.clone() })
                    .collect(),
                live: e.live.as_ref().map(Version::to_string),
                history: e.history.iter().map(Version::to_string).collect(),
                pins: e.pins.iter().map(|(t, v)| (t.clone(), v.to_string())).collect(),
                canary: e.canary.as_ref().map(|c| (c.version.to_string(), c.percent)),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The digest of `name@version` when it is loaded.
    pub fn loaded_digest(&self, name: &str, version: &str) -> Option<String> {
        let v = Version::parse(version).ok()?;
        self.lock().get(name).and_then(|e| e.versions.get(&v)).map(|l| l.plugin.digest.clone())
    }

    /// Sets `state.name`'s live version, history, pins and canary, as far
    /// as their versions are loaded here (one that is not is left out, and
    /// a live version that is not keeps the current one). Loads and
    /// unloads nothing: the caller loads `state.versions` first.
    pub fn restore(&self, state: &NameState) -> Result<(), RegistryError> {
        let parse = |v: &str| Version::parse(v).map_err(|e| RegistryError::Rejected(format!("version {v:?} is not semver: {e}")));
        let mut entries = self.lock();
        let entry = entries.entry(state.name.clone()).or_default();
        let loaded = |v: &Version| entry.versions.contains_key(v);
        let live = state.live.as_deref().map(parse).transpose()?;
        let mut history = Vec::with_capacity(state.history.len());
        for v in &state.history {
            let v = parse(v)?;
            if loaded(&v) {
                history.push(v);
            }
        }
        let mut pins = std::collections::HashMap::new();
        for (tenant, v) in &state.pins {
            let v = parse(v)?;
            if loaded(&v) {
                pins.insert(tenant.clone(), v);
            }
        }
        let canary = match &state.canary {
            Some((v, percent)) => Some(Canary { version: parse(v)?, percent: *percent }).filter(|c| loaded(&c.version)),
            None => None,
        };
        match live {
            Some(v) if loaded(&v) => entry.live = Some(v),
            Some(_) => {}
            None => entry.live = None,
        }
        entry.history = history;
        entry.pins = pins;
        entry.canary = canary;
        Ok(())
    }
}
