//! Tenants: per-tenant limits, concurrency caps with fair queuing, a memory
//! budget shared by a tenant's concurrent sandboxes, and the networks a
//! tenant's runs may reach by name.
//!
//! Scheduling: a run first takes a permit from its tenant's semaphore (at
//! most `max_concurrent_runs` of that tenant at once), then one from the
//! host-wide pool. Both queue first-come first-served, so a tenant with 50
//! collectors waiting holds at most its cap of pool slots and another
//! tenant's run gets the next free slot instead of waiting behind all 50.
//!
//! Who a tenant is (`serve`): CloudForet names no tenant to its plugins
//! (no `x_domain_id`; 2.x sends `token: NO_TOKEN`), so a call's tenant is
//! derived from what it does send, its secret: [`TenantKey::derive`] keys
//! an HMAC-SHA256 over the endpoint the secret names, who it authenticates
//! as and its credential with this host's tenant key. Two CloudForet
//! domains with different Prism accounts never share limits, state or
//! breakers; a caller without the same credentials cannot claim another's
//! tenant; and the id (`<label>/<16 hex>`) says nothing about the
//! credential without the key. The label is the configured tenant whose
//! `endpoints` name the secret's endpoint (its settings apply), else the
//! endpoint's host. Changing a credential makes a new tenant (its state,
//! e.g. an incremental cache, starts empty). `cf-host collect` and push
//! mode name their tenants explicitly (the operator's configuration).
//!
//! Configuration (`--tenants FILE`, JSON); every field is optional and
//! tenants inherit `default`:
//!
//! ```json
//! {
//!   "default": {"max_concurrent_runs": 8, "memory_total_mb": 1024,
//!               "limits": {"memory_mb": 256, "cpu_ms": 120000, "wall_clock_s": 3600,
//!                          "max_records": 2000000, "max_output_mb": 4096,
//!                          "max_http_response_mb": 64, "max_http_requests": 100000, "max_http_timeout_s": 300,
//!                          "max_handles": 10000, "max_log_lines": 10000,
//!                          "http_breaker_failures": 5, "http_breaker_open_s": 30,
//!                          "state_max_keys": 1000},
//!               "allow_networks": []},
//!   "tenants": {"acme": {"max_concurrent_runs": 2, "allow_networks": ["10.20.0.0/16"],
//!                        "endpoints": ["pc.acme.example", "10.20.0.5"]}}
//! }
//! ```
//!
//! A file that cannot be used is a [`TenancyError`]; a tenant's settings
//! that are refused, an [`InvalidTenant`] naming the [`TenantProblem`].

use crate::error::{LimitExceeded, LimitKind};
use crate::limits::Limits;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Resolved settings of one tenant.
#[derive(Clone, Debug)]
pub struct TenantConfig {
    pub limits: Limits,
    pub max_concurrent_runs: u32,
    /// Linear memory of all the tenant's live sandboxes together.
    pub memory_total_bytes: usize,
    /// Networks whose private/loopback/link-local addresses the tenant's
    /// endpoints may resolve to (explicit operator grant).
    pub allow_networks: Vec<IpNet>,
    /// Endpoint hosts whose callers get this tenant's settings (`serve`).
    pub endpoints: Vec<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            limits: Limits::default(),
            max_concurrent_runs: 8,
            memory_total_bytes: 1 << 30,
            allow_networks: Vec::new(),
            endpoints: Vec::new(),
        }
    }
}

/// The file format: overrides over the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyFile {
    #[serde(default)]
    pub default: TenantOverrides,
    #[serde(default)]
    pub tenants: HashMap<String, TenantOverrides>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOverrides {
    pub max_concurrent_runs: Option<u32>,
    pub memory_total_mb: Option<u64>,
    #[serde(default)]
    pub limits: LimitOverrides,
    pub allow_networks: Option<Vec<String>>,
    /// Endpoint hosts (names or IPs, as secrets name them) of this tenant.
    pub endpoints: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub memory_mb: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub wall_clock_s: Option<u64>,
    pub max_records: Option<u64>,
    pub max_output_mb: Option<u64>,
    pub max_http_response_mb: Option<u64>,
    pub max_http_requests: Option<u32>,
    /// Upper bound of one HTTP request's timeout (blocked host calls are
    /// not interrupted by the CPU budget; this bounds them).
    pub max_http_timeout_s: Option<u64>,
    pub max_handles: Option<usize>,
    pub max_log_lines: Option<u32>,
    /// Consecutive failures of an origin that open the tenant's breaker
    /// for it (0: no breaker).
    pub http_breaker_failures: Option<u32>,
    pub http_breaker_open_s: Option<u64>,
    /// Requests of one run in flight at once (`send-many`).
    pub http_max_in_flight: Option<u32>,
    /// Requests of one run in flight to one origin at once.
    pub http_max_in_flight_per_origin: Option<u32>,
    /// Requests in one `send-many` batch.
    pub http_max_batch: Option<u32>,
    /// Batches of one run pending at once (`start-many`, world 0.3.1).
    pub http_max_pending: Option<u32>,
    /// Keys a collector may hold in the `state` interface per tenant and
    /// endpoint namespace (values up to 256 KiB each). guest-nutanix's
    /// incremental VM cache takes about one key per 60 VMs.
    pub state_max_keys: Option<usize>,
}

const MB: u64 = 1 << 20;

/// Why a tenant's settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantProblem {
    #[error("max_concurrent_runs must be at least 1")]
    NoRuns,
    /// The limit named (`memory_mb`, `cpu_ms`, ...) is 0.
    #[error("limits.{0} must be positive")]
    NotPositive(&'static str),
    #[error("allow_networks entry {entry:?}: {source}")]
    Network { entry: String, source: ipnet::AddrParseError },
    #[error("memory_total_mb is below limits.memory_mb: not one run could start")]
    BudgetBelowOneRun,
}

/// A tenant whose settings are refused: `who` is `default` or
/// `tenant "<name>"`.
#[derive(Debug, thiserror::Error)]
#[error("{who}: {problem}")]
pub struct InvalidTenant {
    pub who: String,
    pub problem: TenantProblem,
}

/// Why the tenants file, or the tenant key, cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("cannot read tenants file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("tenants file {} is not valid: {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("tenants file {}: {source}", path.display())]
    Invalid { path: PathBuf, source: InvalidTenant },
    #[error("no randomness for the tenant key: {0}")]
    NoRandomness(#[source] getrandom::Error),
}

/// The text, for callers that only report it.
impl From<TenancyError> for String {
    fn from(e: TenancyError) -> String {
        e.to_string()
    }
}

impl TenantOverrides {
    fn apply(&self, base: &TenantConfig, who: &str) -> Result<TenantConfig, InvalidTenant> {
        let invalid = |problem| InvalidTenant { who: who.to_string(), problem };
        let mut c = base.clone();
        if let Some(n) = self.max_concurrent_runs {
            if n == 0 {
                return Err(invalid(TenantProblem::NoRuns));
            }
            c.max_concurrent_runs = n;
        }
        if let Some(mb) = self.memory_total_mb {
            c.memory_total_bytes = usize::try_from(mb.saturating_mul(MB)).unwrap_or(usize::MAX);
        }
        let l = &self.limits;
        let positive = |v: u64, name: &'static str| if v == 0 { Err(invalid(TenantProblem::NotPositive(name))) } else { Ok(v) };
        if let Some(v) = l.memory_mb {
            c.limits.memory_bytes = usize::try_from(positive(v, "memory_mb")?.saturating_mul(MB)).unwrap_or(usize::MAX);
        }
        if let Some(v) = l.cpu_ms {
            c.limits.cpu = Duration::from_millis(positive(v, "cpu_ms")?);
        }
        if let Some(v) = l.wall_clock_s {
            c.limits.wall_clock = Duration::from_secs(positive(v, "wall_clock_s")?);
        }
        if let Some(v) = l.max_records {
            c.limits.max_records = v;
        }
        if let Some(v) = l.max_output_mb {
            c.limits.max_output_bytes = v.saturating_mul(MB);
        }
        if let Some(v) = l.max_http_response_mb {
            c.limits.http.max_response_bytes = positive(v, "max_http_response_mb")?.saturating_mul(MB);
        }
        if let Some(v) = l.max_http_requests {
            c.limits.http.max_requests = v;
        }
        if let Some(v) = l.max_http_timeout_s {
            c.limits.http.max_timeout = Duration::from_secs(positive(v, "max_http_timeout_s")?);
            c.limits.http.default_timeout = c.limits.http.default_timeout.min(c.limits.http.max_timeout);
        }
        if let Some(v) = l.max_handles {
            c.limits.max_handles = v;
        }
        if let Some(v) = l.max_log_lines {
            c.limits.max_log_lines = v;
        }
        if let Some(v) = l.http_breaker_failures {
            c.limits.http.breaker_failures = v;
        }
        if let Some(v) = l.http_breaker_open_s {
            c.limits.http.breaker_open = Duration::from_secs(positive(v, "http_breaker_open_s")?);
        }
        let positive32 = |v: u32, name: &'static str| if v == 0 { Err(invalid(TenantProblem::NotPositive(name))) } else { Ok(v) };
        if let Some(v) = l.http_max_in_flight {
            c.limits.http.max_in_flight = positive32(v, "http_max_in_flight")?;
        }
        if let Some(v) = l.http_max_in_flight_per_origin {
            c.limits.http.max_in_flight_per_origin = positive32(v, "http_max_in_flight_per_origin")?;
        }
        if let Some(v) = l.http_max_batch {
            c.limits.http.max_batch = positive32(v, "http_max_batch")?;
        }
        if let Some(v) = l.http_max_pending {
            c.limits.http.max_pending = positive32(v, "http_max_pending")?;
        }
        if let Some(v) = l.state_max_keys {
            c.limits.state.max_keys = usize::try_from(positive(v as u64, "state_max_keys")?).unwrap_or(usize::MAX);
        }
        if let Some(nets) = &self.allow_networks {
            c.allow_networks = nets
                .iter()
                .map(|n| n.parse::<IpNet>().map_err(|source| invalid(TenantProblem::Network { entry: n.clone(), source })))
                .collect::<Result<_, _>>()?;
        }
        if let Some(hosts) = &self.endpoints {
            c.endpoints = hosts.iter().map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        }
        if c.memory_total_bytes < c.limits.memory_bytes {
            return Err(invalid(TenantProblem::BudgetBelowOneRun));
        }
        Ok(c)
    }
}

/// Settings of all tenants.
#[derive(Clone, Debug, Default)]
pub struct TenancyConfig {
    pub default: TenantConfig,
    pub tenants: HashMap<String, TenantConfig>,
}

impl TenancyConfig {
    pub fn from_file(file: &TenancyFile) -> Result<TenancyConfig, InvalidTenant> {
        let default = file.default.apply(&TenantConfig::default(), "default")?;
        let tenants = file
            .tenants
            .iter()
            .map(|(name, o)| o.apply(&default, &format!("tenant {name:?}")).map(|c| (name.clone(), c)))
            .collect::<Result<_, _>>()?;
        Ok(TenancyConfig { default, tenants })
    }

    pub fn load(path: &Path) -> Result<TenancyConfig, TenancyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenancyError::Read { path: path.to_path_buf(), source })?;
        let file: TenancyFile = serde_json::from_str(&text).map_err(|source| TenancyError::Parse { path: path.to_path_buf(), source })?;
        TenancyConfig::from_file(&file).map_err(|source| TenancyError::Invalid { path: path.to_path_buf(), source })
    }

    /// A tenant's settings: by its name, or (a derived `<label>/<key>` id)
    /// by its label.
    pub fn get(&self, tenant: &str) -> &TenantConfig {
        self.tenants
            .get(tenant)
            .or_else(|| tenant.split_once('/').and_then(|(label, _)| self.tenants.get(label)))
            .unwrap_or(&self.default)
    }

    /// The configured tenant whose `endpoints` name `host`.
    pub fn for_endpoint(&self, host: &str) -> Option<&str> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut names: Vec<&String> = self.tenants.iter().filter(|(_, c)| c.endpoints.contains(&host)).map(|(n, _)| n).collect();
        names.sort();
        names.first().map(|n| n.as_str())
    }
}

/// This host's key for deriving tenants from secrets.
#[derive(Clone)]
pub struct TenantKey([u8; 32]);

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantKey(***)")
    }
}

impl TenantKey {
    /// A random key (a server without a store: its tenants' state lives in
    /// memory, and goes with the process anyway).
    pub fn random() -> Result<TenantKey, TenancyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(TenancyError::NoRandomness)?;
        Ok(TenantKey(k))
    }

    pub fn from_bytes(k: [u8; 32]) -> TenantKey {
        TenantKey(k)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The tenant of a call with `secret`, or `None` when the secret names
    /// no endpoint (nothing to isolate: no Prism is reached).
    pub fn derive(&self, config: &TenancyConfig, secret: &crate::secret::Secret, default_port: u16) -> Option<String> {
        use hmac::{Hmac, Mac};
        let endpoint = secret.endpoint(default_port)?;
        let origin = endpoint.origin().ascii_serialization();
        let host = endpoint.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let creds = secret.credentials();
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        // Length-prefixed parts: no two different inputs join the same.
        for part in [
            origin.as_str(),
            creds.username().unwrap_or(""),
            creds.password().unwrap_or(""),
            creds.api_key().unwrap_or(""),
            creds.token().unwrap_or(""),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let tag = mac.finalize().into_bytes();
        let hex: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
        let label = config.for_endpoint(&host).map_or(host, str::to_string);
        Some(format!("{label}/{hex}"))
    }
}

/// A tenant's shared linear-memory budget.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    max: usize,
}

impl MemoryBudget {
    pub fn new(max: usize) -> MemoryBudget {
        MemoryBudget { used: AtomicUsize::new(0), max }
    }

    /// Reserves `bytes` or explains why not.
    pub fn reserve(&self, bytes: usize) -> Result<(), LimitExceeded> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(bytes);
            if next > self.max {
                return Err(LimitExceeded {
                    kind: LimitKind::Memory,
                    detail: format!(
                        "the tenant's sandboxes together would use {next} bytes of linear memory, the tenant's total is {}",
                        self.max
                    ),
                });
            }
            match self.used.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn release(&self, bytes: usize) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Live per-tenant state: the run queue and the memory budget.
pub struct TenantSlot {
    pub config: TenantConfig,
    pub permits: Arc<Semaphore>,
    pub memory: Arc<MemoryBudget>,
}

/// Tenant slots kept before idle ones are dropped.
pub const MAX_IDLE_SLOTS: usize = 1024;

/// Tenants known to a runtime; slots are created on first use and dropped
/// again once idle (no run holds or waits for them, no memory reserved)
/// when more than [`MAX_IDLE_SLOTS`] are kept, so callers that pick a new
/// tenant per call cannot grow the table without bound.
pub struct Tenancy {
    config: TenancyConfig,
    slots: Mutex<HashMap<String, Arc<TenantSlot>>>,
}

impl Tenancy {
    pub fn new(config: TenancyConfig) -> Tenancy {
        Tenancy { config, slots: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self, tenant: &str) -> &TenantConfig {
        self.config.get(tenant)
    }

    pub fn slot(&self, tenant: &str) -> Arc<TenantSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_IDLE_SLOTS && !slots.contains_key(tenant) {
            // Only this table holds an idle slot: dropping it loses nothing
            // (a new one starts with the same config and a full queue).
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.memory.used() > 0);
        }
        slots
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let config = self.config.get(tenant).clone();
                Arc::new(TenantSlot {
                    permits: Arc::new(Semaphore::new(config.max_concurrent_runs as usize)),
                    memory: Arc::new(MemoryBudget::new(config.memory_total_bytes)),
                    config,
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<TenancyConfig, String> {
        let file: TenancyFile = serde_json::from_value(v).map_err(|e| e.to_string())?;
        TenancyConfig::from_file(&file).map_err(|e| e.to_string())
    }

    /// The problem of a file whose JSON is well formed but refused.
    fn problem(v: serde_json::Value) -> TenantProblem {
        let file: TenancyFile = serde_json::from_value(v).unwrap();
        TenancyConfig::from_file(&file).unwrap_err().problem
    }

    #[test]
    fn tenants_inherit_the_default_and_override_it() {
        let c = parse(json!({
            "default": {"max_concurrent_runs": 4, "limits": {"memory_mb": 64, "cpu_ms": 500}},
            "tenants": {"acme": {"max_concurrent_runs": 1, "allow_networks": ["10.0.0.0/8"], "limits": {"max_records": 10}}}
        }))
        .unwrap();
        let acme = c.get("acme");
        assert_eq!(acme.max_concurrent_runs, 1);
        assert_eq!(acme.limits.memory_bytes, 64 << 20, "inherited");
        assert_eq!(acme.limits.cpu, Duration::from_millis(500));
        assert_eq!(acme.limits.max_records, 10);
        assert_eq!(acme.allow_networks, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        let other = c.get("someone-else");
        assert_eq!(other.max_concurrent_runs, 4);
        assert!(other.allow_networks.is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(parse(json!({"default": {"max_concurrent_runs": 0}})).unwrap_err().contains("at least 1"));
        assert!(parse(json!({"tenants": {"a": {"allow_networks": ["10.0.0.0/33"]}}})).unwrap_err().contains("allow_networks"));
        assert!(parse(json!({"default": {"limits": {"memory_mb": 0}}})).unwrap_err().contains("memory_mb must be positive"));
        assert!(parse(json!({"default": {"memory_total_mb": 10, "limits": {"memory_mb": 20}}})).unwrap_err().contains("below"));
        assert!(parse(json!({"default": {"max_concurent_runs": 2}})).is_err(), "typos are refused");
        assert!(matches!(problem(json!({"default": {"max_concurrent_runs": 0}})), TenantProblem::NoRuns));
        assert!(matches!(problem(json!({"tenants": {"a": {"allow_networks": ["10.0.0.0/33"]}}})), TenantProblem::Network { .. }));
        assert!(matches!(problem(json!({"default": {"limits": {"memory_mb": 0}}})), TenantProblem::NotPositive("memory_mb")));
        assert!(matches!(problem(json!({"default": {"memory_total_mb": 10, "limits": {"memory_mb": 20}}})), TenantProblem::BudgetBelowOneRun));
    }

    /// The guests' HTTP circuit breaker settings: defaults, overrides (0
    /// failures turns it off), and an open period of 0 refused.
    #[test]
    fn breaker_settings_parse() {
        let c = parse(json!({"tenants": {"a": {"limits": {"http_breaker_failures": 0, "http_breaker_open_s": 7}}}})).unwrap();
        assert_eq!((c.get("a").limits.http.breaker_failures, c.get("a").limits.http.breaker_open), (0, Duration::from_secs(7)));
        assert_eq!((c.get("b").limits.http.breaker_failures, c.get("b").limits.http.breaker_open), (5, Duration::from_secs(30)));
        let e = parse(json!({"default": {"limits": {"http_breaker_open_s": 0}}})).unwrap_err();
        assert!(e.contains("http_breaker_open_s must be positive"), "{e}");
    }

    /// The caps of concurrent guest requests: defaults, overrides, and 0
    /// refused (a run that may send nothing at once cannot collect).
    #[test]
    fn concurrency_caps_parse() {
        let c = parse(json!({"tenants": {"a": {"limits": {"http_max_in_flight": 4, "http_max_in_flight_per_origin": 2, "http_max_batch": 32, "http_max_pending": 2}}}})).unwrap();
        let (a, b) = (&c.get("a").limits.http, &c.get("b").limits.http);
        assert_eq!((a.max_in_flight, a.max_in_flight_per_origin, a.max_batch), (4, 2, 32));
        assert_eq!((b.max_in_flight, b.max_in_flight_per_origin, b.max_batch), (16, 8, 128));
        assert_eq!((a.max_pending, b.max_pending), (2, 4));
        let c = parse(json!({"tenants": {"big": {"limits": {"state_max_keys": 5000}}}})).unwrap();
        assert_eq!((c.get("big").limits.state.max_keys, c.get("small").limits.state.max_keys), (5000, 1000));
        for key in ["http_max_in_flight", "http_max_in_flight_per_origin", "http_max_batch", "http_max_pending", "state_max_keys"] {
            let e = parse(json!({"default": {"limits": {key: 0}}})).unwrap_err();
            assert!(e.contains(&format!("{key} must be positive")), "{e}");
        }
    }

    #[test]
    fn tenants_are_derived_from_the_secret_and_cannot_be_claimed() {
        use crate::secret::Secret;
        let config = parse(json!({"tenants": {"acme": {"endpoints": ["PC.Acme.example"], "max_concurrent_runs": 1}}})).unwrap();
        let key = TenantKey::from_bytes([7; 32]);
        let t = |v: serde_json::Value| key.derive(&config, &Secret::new(v).unwrap(), 9440);
        let a = t(json!({"host": "pc.acme.example", "username": "u", "password": "p"})).unwrap();
        assert!(a.starts_with("acme/") && a.len() == "acme/".len() + 16, "{a}");
        assert_eq!(config.get(&a).max_concurrent_runs, 1, "the configured tenant's settings");
        assert_eq!(t(json!({"host": "pc.acme.example", "username": "u", "password": "p"})).unwrap(), a, "stable");
        for other in [
            json!({"host": "pc.acme.example", "username": "u", "password": "other"}),
            json!({"host": "pc.acme.example", "username": "v", "password": "p"}),
            json!({"host": "pc.acme.example", "port": 9441, "username": "u", "password": "p"}),
            json!({"host": "pc.acme.example", "api_key": "p"}),
        ] {
            assert_ne!(t(other.clone()).unwrap(), a, "{other}");
        }
        let b = t(json!({"host": "https://10.0.0.9", "username": "u", "password": "p"})).unwrap();
        assert!(b.starts_with("10.0.0.9/"), "{b}");
        assert_eq!(config.get(&b).max_concurrent_runs, 8, "no configured tenant: the default");
        assert_eq!(t(json!({"username": "u"})), None, "no endpoint, nothing to derive");
        let other_key = TenantKey::from_bytes([8; 32]);
        assert_ne!(other_key.derive(&config, &Secret::new(json!({"host": "pc.acme.example", "username": "u", "password": "p"})).unwrap(), 9440).unwrap(), a, "keyed");
    }

    #[test]
    fn idle_slots_are_dropped_and_busy_ones_kept() {
        let t = Tenancy::new(TenancyConfig::default());
        let busy = t.slot("busy");
        for i in 0..10 * MAX_IDLE_SLOTS {
            let _ = t.slot(&format!("caller-{i}"));
        }
        let n = t.slots.lock().unwrap().len();
        assert!(n <= MAX_IDLE_SLOTS + 1, "{n} slots kept");
        assert!(Arc::ptr_eq(&busy, &t.slot("busy")), "a slot in use is the same slot");
    }

    #[test]
    fn memory_budget_reserves_and_releases() {
        let b = MemoryBudget::new(100);
        b.reserve(60).unwrap();
        let e = b.reserve(50).unwrap_err();
        assert_eq!(e.kind, LimitKind::Memory);
        assert!(e.detail.contains("tenant's total is 100"), "{}", e.detail);
        b.release(60);
        b.reserve(100).unwrap();
        assert_eq!(b.used(), 100);
        b.release(1000);
        assert_eq!(b.used(), 0, "never below zero");
    }
}
