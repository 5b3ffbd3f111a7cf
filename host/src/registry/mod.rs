//! The component registry: collector versions by plugin name and semver
//! version, the live version per plugin, per-tenant pins, rollback, and
//! admission before anything goes live.
//!
//! # Layout
//!
//! - [`identity`]: name and version from the component's custom section and
//!   the manifest beside it.
//! - [`cache`]: the precompile cache.
//! - [`file`]: component files, and the memo of their digests that lets a
//!   warm load skip reading and hashing an unchanged file.
//! - [`watch`]: the plugins directory watcher.
//! - [`oci`]: pull and push of components as wasm OCI artifacts.
//! - [`signature`]: ed25519 signatures and the trusted-keys policy.
//! - [`snapshot`]: the desired state as a value (the fleet's compacted
//!   log), and [`Registry::restore`].
//!
//! Swaps are atomic: resolution and changes take one short lock, and a run
//! holds an `Arc` of the version it resolved, so runs in flight finish on the
//! version they started with while new runs get the new one. A version is
//! unloaded only when it is neither live, pinned nor in use. `cf-host dev`
//! reloads with [`Registry::reload_bytes`]: a new build of the same version
//! replaces the loaded one.

pub mod cache;
pub mod file;
pub mod identity;
pub mod oci;
pub mod ops;
pub mod signature;
pub mod snapshot;
pub mod watch;

use crate::runtime::{Plugin, Runtime};
use identity::Manifest;
pub use crate::options::Want;
use semver::Version;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a registry operation was refused; the registry is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The component failed admission (bytes, identity, digest, world).
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the registry's state (in use, live, ...).
    #[error("{0}")]
    Conflict(String),
}

impl RegistryError {
    /// Code for the admin API's error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Rejected(_) => "INVALID_ARGUMENT",
            RegistryError::NotFound(_) => "NOT_FOUND",
            RegistryError::Conflict(_) => "FAILED_PRECONDITION",
        }
    }
}

/// One loaded version.
pub struct Loaded {
    pub plugin: Arc<Plugin>,
    pub version: Version,
    pub manifest: Option<Manifest>,
    pub source: String,
    pub loaded_at: std::time::SystemTime,
    /// The trusted key whose signature it carries.
    pub signed_by: Option<String>,
}

#[derive(Default)]
struct Entry {
    versions: BTreeMap<Version, Loaded>,
    live: Option<Version>,
    /// Earlier live versions, most recent last (for rollback).
    history: Vec<Version>,
    pins: HashMap<String, Version>,
    canary: Option<Canary>,
}

/// A version that a share of the tenants gets instead of the live one.
#[derive(Clone, Debug)]
struct Canary {
    version: Version,
    percent: u8,
}

/// Which of 100 buckets a tenant falls in for `name`'s canary: stable, so a
/// tenant's collections do not flap between versions.
fn canary_bucket(name: &str, tenant: &str) -> u8 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{name}\0{tenant}").as_bytes());
    (u16::from_be_bytes([h[0], h[1]]) % 100) as u8
}

/// A version as listed by the admin API.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// The `cloudforet:collector` world version it was built against.
    pub world: String,
    pub live: bool,
    pub pinned_by: Vec<String>,
    /// Runs executing on it right now.
    pub in_use: usize,
    pub source: String,
    pub description: Option<String>,
    pub signed_by: Option<String>,
    /// Share of tenants (percent) routed to it as a canary.
    pub canary_percent: Option<u8>,
}

/// How a load went.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LoadReport {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub live: bool,
    /// The compilation came from the precompile cache.
    pub cached: bool,
    /// The same version with the same digest was already loaded.
    pub unchanged: bool,
    pub millis: u64,
    pub signed_by: Option<String>,
}

/// Refuses bytes whose `digest` (`sha256:<hex>`) is not `want` (with or
/// without its `sha256:` prefix, any case).
pub fn check_digest(source: &str, digest: &str, want: &str) -> Result<(), RegistryError> {
    let want_hex = want.strip_prefix("sha256:").unwrap_or(want).to_ascii_lowercase();
    if want_hex == digest.trim_start_matches("sha256:") {
        Ok(())
    } else {
        Err(RegistryError::Rejected(format!("{source}: digest mismatch: expected sha256:{want_hex}, the file is {digest}")))
    }
}

/// A component file opened and read for loading ([`Registry::read_file`]).
pub struct FileRead {
    file: file::ComponentFile,
    facts: file::Facts,
    /// `None` when the facts were remembered.
    bytes: Option<Vec<u8>>,
}

impl FileRead {
    pub fn facts(&self) -> &file::Facts {
        &self.facts
    }

    /// Whether the facts came from the memo (the file was not read).
    pub fn remembered(&self) -> bool {
        self.bytes.is_none()
    }
}

/// The bytes of a build being admitted.
enum Content<'a> {
    Bytes(&'a [u8]),
    /// A file whose facts were remembered: read only to compile.
    File(&'a file::ComponentFile),
}

impl Content<'_> {
    /// The bytes, which must have `digest`.
    fn bytes(&self, digest: &str) -> Result<std::borrow::Cow<'_, [u8]>, RegistryError> {
        match self {
            Content::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Content::File(f) => {
                let bytes = f.read().map_err(|e| RegistryError::Rejected(e.to_string()))?;
                check_digest(&f.path().display().to_string(), &crate::runtime::component_digest(&bytes), digest)?;
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }
}

/// How a build is admitted.
struct Admission<'a> {
    manifest: Option<Manifest>,
    expected_digest: Option<&'a str>,
    /// Make it live.
    activate: bool,
    /// A build with another digest takes the place of the loaded build of
    /// its version instead of being refused.
    replace: bool,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    cache: Option<cache::PrecompileCache>,
    trust: signature::TrustPolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, cache: Option<cache::PrecompileCache>) -> Registry {
        Registry { runtime, cache, trust: signature::TrustPolicy::default(), entries: Mutex::new(HashMap::new()) }
    }

    /// Checks signatures at admission against `trust`.
    pub fn with_trust(mut self, trust: signature::TrustPolicy) -> Registry {
        self.trust = trust;
        self
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The precompile cache, if any.
    pub fn cache(&self) -> Option<&cache::PrecompileCache> {
        self.cache.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads a component file (and `<file>.json` manifest if present).
    pub fn load_file(&self, path: &Path, expected_digest: Option<&str>, activate: bool) -> Result<LoadReport, RegistryError> {
        let file = file::ComponentFile::open(path, file::DEFAULT_MAX_BYTES).map_err(|e| RegistryError::Rejected(e.to_string()))?;
        let manifest_path = path.with_extension("json");
        let manifest = if manifest_path.exists() {
            Some(Manifest::load(&manifest_path).map_err(RegistryError::Rejected)?)
        } else {
            None
        };
        let read = self.read_file(file)?;
        self.load_read(read, manifest, expected_digest, activate)
    }

    /// What an opened component file's bytes determine: remembered by the
    /// precompile cache's memo for a file loaded before and unchanged since
    /// (the bytes are then not read), otherwise read and computed.
    pub fn read_file(&self, file: file::ComponentFile) -> Result<FileRead, RegistryError> {
        let memo = self.cache.as_ref().map(|c| c.memo());
        if let Some(facts) = memo.and_then(|m| m.get(&file)) {
            return Ok(FileRead { file, facts, bytes: None });
        }
        let read_at = std::time::SystemTime::now();
        let bytes = file.read().map_err(|e| RegistryError::Rejected(e.to_string()))?;
        let facts = file::Facts::of(&bytes);
        if let Some(memo) = memo {
            memo.put(&file, &facts, read_at);
        }
        Ok(FileRead { file, facts, bytes: Some(bytes) })
    }

    /// Loads a file read with [`Registry::read_file`], as
    /// [`Registry::load_bytes`] does bytes.
    pub fn load_read(
        &self,
        read: FileRead,
        manifest: Option<Manifest>,
        expected_digest: Option<&str>,
        activate: bool,
    ) -> Result<LoadReport, RegistryError> {
        let source = read.file.path().display().to_string();
        let content = match &read.bytes {
            Some(bytes) => Content::Bytes(bytes),
            None => Content::File(&read.file),
        };
        self.admit(&source, read.facts, content, Admission { manifest, expected_digest, activate, replace: false })
    }

    /// Admission, then registration: digest, identity, compile (or cache),
    /// link against the host, and only then insert (and make live when
    /// `activate`). Any failure leaves the registry unchanged.
    pub fn load_bytes(
        &self,
        source: &str,
        bytes: &[u8],
        manifest: Option<Manifest>,
        expected_digest: Option<&str>,
        activate: bool,
    ) -> Result<LoadReport, RegistryError> {
        self.admit(source, file::Facts::of(bytes), Content::Bytes(bytes), Admission { manifest, expected_digest, activate, replace: false })
    }

    /// The development reload (`cf-host dev`): admission as in
    /// [`Registry::load_bytes`], then the build goes live even when it keeps
    /// the version of a loaded build with another digest, which it replaces
    /// (runs in flight finish on the build they resolved). Any failure
    /// leaves the registry unchanged, the last good build live.
    pub fn reload_bytes(&self, source: &str, bytes: &[u8]) -> Result<LoadReport, RegistryError> {
        let how = Admission { manifest: None, expected_digest: None, activate: true, replace: true };
        self.admit(source, file::Facts::of(bytes), Content::Bytes(bytes), how)
    }

    /// [`Registry::load_bytes`], [`Registry::reload_bytes`] and
    /// [`Registry::load_read`]: `facts` are those of `content`.
    fn admit(&self, source: &str, facts: file::Facts, content: Content<'_>, how: Admission<'_>) -> Result<LoadReport, RegistryError> {
        let Admission { manifest, expected_digest, activate, replace } = how;
        let started = Instant::now();
        let file::Facts { digest, identity: embedded } = facts;
        let hex = digest.trim_start_matches("sha256:").to_string();
        for want in expected_digest.into_iter().chain(manifest.as_ref().and_then(|m| m.digest.as_deref())) {
            check_digest(source, &digest, want)?;
        }
        let embedded = embedded.map_err(|e| RegistryError::Rejected(format!("{source}: {e}")))?;
        let (name, version) =
            identity::resolve(embedded.as_ref(), manifest.as_ref()).map_err(|e| RegistryError::Rejected(format!("{source}: {e}")))?;
        let signatures = manifest.as_ref().map_or(&[][..], |m| m.signatures.as_slice());
        let signed_by =
            self.trust.check(&name, &version, &digest, signatures).map_err(|e| RegistryError::Rejected(format!("{source}: {e}")))?;

        // The digest is copied out and the guard dropped at the end of this
        // statement: `activate_if` below locks again.
        let existing = self.lock().get(&name).and_then(|e| e.versions.get(&version)).map(|l| l.plugin.digest.clone());
        if let Some(existing) = existing.filter(|existing| !replace || *existing == digest) {
            if existing != digest {
                return Err(RegistryError::Conflict(format!(
                    "{name}@{version} is already loaded with digest {existing}; a different build needs a new version"
                )));
            }
            let live = self.activate_if(&name, &version, activate)?;
            return Ok(LoadReport {
                name,
                version: version.to_string(),
                digest,
                live,
                cached: true,
                unchanged: true,
                millis: started.elapsed().as_millis() as u64,
                signed_by,
            });
        }

        let engine = self.runtime.engine();
        let (component, cached) = match self.cache.as_ref().and_then(|c| c.get(engine, &hex)) {
            Some(c) => (c, true),
            None => {
                let bytes = content.bytes(&digest)?;
                let c = self.runtime.compile(source, &bytes).map_err(|e| RegistryError::Rejected(e.to_string()))?;
                if let Some(cache) = &self.cache {
                    cache.put(engine, &hex, &c);
                }
                (c, false)
            }
        };
        let mut plugin =
            self.runtime.admit(source, &component, digest.clone()).map_err(|e| RegistryError::Rejected(e.to_string()))?;
        plugin.name = name.clone();
        plugin.version = Some(version.to_string());
        {
            let mut entries = self.lock();
            let entry = entries.entry(name.clone()).or_default();
            if entry.versions.contains_key(&version) && !replace {
                return Err(RegistryError::Conflict(format!("{name}@{version} was loaded concurrently")));
            }
            entry.versions.insert(
                version.clone(),
                Loaded {
                    plugin: Arc::new(plugin),
                    version: version.clone(),
                    manifest,
                    source: source.to_string(),
                    loaded_at: std::time::SystemTime::now(),
                    signed_by: signed_by.clone(),
                },
            );
        }
        let live = self.activate_if(&name, &version, activate)?;
        tracing::info!(plugin = %name, %version, %digest, live, cached, signed_by = signed_by.as_deref().unwrap_or("-"), "plugin version loaded");
        Ok(LoadReport {
            name,
            version: version.to_string(),
            digest,
            live,
            cached,
            unchanged: false,
            millis: started.elapsed().as_millis() as u64,
            signed_by,
        })
    }

    /// Makes `version` live when asked, or when the plugin has no live
    /// version yet. Returns whether it is live. One lock for the check and
    /// the switch, so two first loads cannot both go live.
    fn activate_if(&self, name: &str, version: &Version, activate: bool) -> Result<bool, RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        if activate || entry.live.is_none() {
            switch_live(entry, name, version)?;
            return Ok(true);
        }
        Ok(entry.live.as_ref() == Some(version))
    }

    /// Makes a loaded version the live one (new runs get it at once).
    pub fn activate(&self, name: &str, version: &Version) -> Result<(), RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        switch_live(entry, name, version)
    }

    /// Returns to the previous live version at once.
    pub fn rollback(&self, name: &str) -> Result<Version, RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        while let Some(prev) = entry.history.pop() {
            if entry.versions.contains_key(&prev) {
                entry.live = Some(prev.clone());
                // Back to a known state: no canary either.
                entry.canary = None;
                tracing::info!(plugin = %name, version = %prev, "rolled back");
                return Ok(prev);
            }
        }
        Err(RegistryError::Conflict(format!("{name} has no earlier version to roll back to")))
    }

    /// Pins a tenant (or, with `None`, every tenant without a pin of its
    /// own, by making it live) to a version.
    pub fn pin(&self, name: &str, version: &Version, tenant: Option<&str>) -> Result<(), RegistryError> {
        let Some(tenant) = tenant else { return self.activate(name, version) };
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        if !entry.versions.contains_key(version) {
            return Err(RegistryError::NotFound(format!("{name}@{version} is not loaded")));
        }
        entry.pins.insert(tenant.to_string(), version.clone());
        Ok(())
    }

    /// Routes `percent` of the tenants (those without a pin; the same tenants
    /// every time) to `version` instead of the live one; 0 ends the canary.
    /// Activating the canary version promotes it; a rollback ends it.
    pub fn canary(&self, name: &str, version: &Version, percent: u8) -> Result<(), RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        if percent == 0 {
            entry.canary = None;
            return Ok(());
        }
        if percent > 100 {
            return Err(RegistryError::Rejected(format!("canary percent must be 0 to 100, got {percent}")));
        }
        if !entry.versions.contains_key(version) {
            return Err(RegistryError::NotFound(format!("{name}@{version} is not loaded")));
        }
        if entry.live.as_ref() == Some(version) {
            return Err(RegistryError::Conflict(format!("{name}@{version} is already live")));
        }
        entry.canary = Some(Canary { version: version.clone(), percent });
        tracing::info!(plugin = %name, %version, percent, "canary set");
        Ok(())
    }

    pub fn unpin(&self, name: &str, tenant: &str) -> Result<(), RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        entry.pins.remove(tenant).map(|_| ()).ok_or_else(|| RegistryError::NotFound(format!("tenant {tenant} has no pin on {name}")))
    }

    /// Unloads a version that is not live, not pinned and not running.
    pub fn unload(&self, name: &str, version: &Version) -> Result<(), RegistryError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        let loaded = entry.versions.get(version).ok_or_else(|| RegistryError::NotFound(format!("{name}@{version} is not loaded")))?;
        if entry.live.as_ref() == Some(version) {
            return Err(RegistryError::Conflict(format!("{name}@{version} is live: activate or roll back to another version first")));
        }
        if entry.canary.as_ref().is_some_and(|c| c.version == *version) {
            return Err(RegistryError::Conflict(format!("{name}@{version} is the canary: end the canary first")));
        }
        let pinned: Vec<&String> = entry.pins.iter().filter(|(_, v)| *v == version).map(|(t, _)| t).collect();
        if !pinned.is_empty() {
            return Err(RegistryError::Conflict(format!("{name}@{version} is pinned by tenants {pinned:?}")));
        }
        let in_use = Arc::strong_count(&loaded.plugin) - 1;
        if in_use > 0 {
            return Err(RegistryError::Conflict(format!("{name}@{version} is running in {in_use} runs; try again when they end")));
        }
        entry.versions.remove(version);
        entry.history.retain(|v| v != version);
        Ok(())
    }

    /// The version a call of `tenant` runs on. A pin applies to the tenant
    /// it names, and to the tenants derived under that label
    /// (`<label>/<key>`, see [`crate::tenancy`]).
    pub fn resolve(&self, name: &str, tenant: &str, want: &Want) -> Result<Arc<Plugin>, RegistryError> {
        let entries = self.lock();
        let entry = entries.get(name).ok_or_else(|| not_found(name))?;
        let label = tenant.split_once('/').map(|(l, _)| l);
        let version = match want {
            Want::Live => entry.pins.get(tenant).or_else(|| label.and_then(|l| entry.pins.get(l))).or_else(|| match &entry.canary {
                Some(c) if canary_bucket(name, tenant) < c.percent => Some(&c.version),
                _ => entry.live.as_ref(),
            }),
            Want::Exact(v) => Some(v),
            Want::Compatible(req) => entry.versions.keys().rev().find(|v| req.matches(v)),
        }
        .ok_or_else(|| RegistryError::NotFound(format!("no version of {name} matches {want:?}")))?;
        entry
            .versions
            .get(version)
            .map(|l| l.plugin.clone())
            .ok_or_else(|| RegistryError::NotFound(format!("{name}@{version} is not loaded")))
    }

    /// The live version of a plugin.
    pub fn live(&self, name: &str) -> Option<Version> {
        self.lock().get(name).and_then(|e| e.live.clone())
    }

    /// Plugin names.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.lock().keys().cloned().collect();
        n.sort();
        n
    }

    pub fn list(&self) -> Vec<VersionInfo> {
        let entries = self.lock();
        let mut out = Vec::new();
        for (name, e) in entries.iter() {
            for (v, l) in &e.versions {
                let mut pinned_by: Vec<String> = e.pins.iter().filter(|(_, pv)| *pv == v).map(|(t, _)| t.clone()).collect();
                pinned_by.sort();
                out.push(VersionInfo {
                    name: name.clone(),
                    version: v.to_string(),
                    digest: l.plugin.digest.clone(),
                    world: l.plugin.world.to_string(),
                    live: e.live.as_ref() == Some(v),
                    pinned_by,
                    in_use: Arc::strong_count(&l.plugin) - 1,
                    source: l.source.clone(),
                    description: l.manifest.as_ref().and_then(|m| m.description.clone()),
                    signed_by: l.signed_by.clone(),
                    canary_percent: e.canary.as_ref().filter(|c| c.version == *v).map(|c| c.percent),
                });
            }
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }
}

/// Makes `version` the entry's live version; the caller holds the lock.
fn switch_live(entry: &mut Entry, name: &str, version: &Version) -> Result<(), RegistryError> {
    if !entry.versions.contains_key(version) {
        return Err(RegistryError::NotFound(format!("{name}@{version} is not loaded")));
    }
    if entry.live.as_ref() == Some(version) {
        return Ok(());
    }
    if let Some(prev) = entry.live.replace(version.clone()) {
        entry.history.push(prev);
    }
    if entry.canary.as_ref().is_some_and(|c| c.version == *version) {
        entry.canary = None; // promoted
    }
    tracing::info!(plugin = %name, %version, "live version switched");
    Ok(())
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound(format!("no plugin named {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_buckets_are_stable_and_spread() {
        let buckets: Vec<u8> = (0..1000).map(|i| canary_bucket("nutanix", &format!("tenant-{i}"))).collect();
        assert_eq!(buckets, (0..1000).map(|i| canary_bucket("nutanix", &format!("tenant-{i}"))).collect::<Vec<_>>());
        let under_10 = buckets.iter().filter(|b| **b < 10).count();
        assert!((60..=140).contains(&under_10), "about 10% of tenants in a 10% canary: {under_10}");
        assert!(buckets.iter().all(|b| *b < 100));
    }
}
