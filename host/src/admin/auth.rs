//! Who may call the admin API, and how often: bearer tokens with a role and
//! an optional tenant scope ([`AuthPolicy`], from `CF_HOST_ADMIN_TOKEN` and
//! a policy file), and a token bucket per caller ([`RateLimiter`]). Pure:
//! no I/O but reading the policy file.
//!
//! Policy file (`--admin-policy FILE`, JSON):
//!
//! ```json
//! {"tokens": [
//!   {"name": "ci",      "role": "admin",   "token_sha256": "<hex of sha256(token)>"},
//!   {"name": "oncall",  "role": "operate", "token_env": "ONCALL_ADMIN_TOKEN"},
//!   {"name": "acme-ro", "role": "read",    "token_env": "ACME_TOKEN", "tenant": "acme"}
//! ]}
//! ```
//!
//! Roles are ordered: `read` (list) < `operate` (pins) < `admin`
//! (loading, activation, rollback, canaries, unloading, webhooks). A token
//! scoped to a tenant may act for that tenant only (its pins), never on
//! what every tenant shares.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Operate,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Acts for this tenant only.
    pub tenant: Option<String>,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or wrong bearer token")]
    Unauthenticated,
    #[error("token {name:?} has role {has}; this needs {needs}")]
    Role { name: String, has: &'static str, needs: &'static str },
    #[error("token {name:?} acts for tenant {tenant:?} only")]
    Tenant { name: String, tenant: String },
}

struct Entry {
    /// sha256 of the token: the policy never keeps the token itself.
    digest: [u8; 32],
    caller: Caller,
}

/// The tokens the API accepts.
#[derive(Default)]
pub struct AuthPolicy {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    token_sha256: Option<String>,
    token_env: Option<String>,
    tenant: Option<String>,
}

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AuthPolicy {
    /// One token with the admin role (`CF_HOST_ADMIN_TOKEN`).
    pub fn single(token: &str) -> Result<AuthPolicy, String> {
        let mut p = AuthPolicy::default();
        p.add("admin", token, Role::Admin, None)?;
        Ok(p)
    }

    fn add(&mut self, name: &str, token: &str, role: Role, tenant: Option<String>) -> Result<(), String> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!("admin token {name:?} must be at least {MIN_TOKEN_LEN} characters"));
        }
        self.entries.push(Entry { digest: digest(token), caller: Caller { name: name.to_string(), role, tenant } });
        Ok(())
    }

    /// Adds the tokens of a policy file.
    pub fn load_file(mut self, path: &Path) -> Result<AuthPolicy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read admin policy {}: {e}", path.display()))?;
        let file: PolicyFile = serde_json::from_str(&text).map_err(|e| format!("admin policy {} is not valid: {e}", path.display()))?;
        for t in file.tokens {
            match (&t.token_sha256, &t.token_env) {
                (Some(hex), None) => {
                    let bytes = decode_hex(hex).filter(|b| b.len() == 32).ok_or_else(|| {
                        format!("admin policy {}: token {:?}: token_sha256 must be 64 hex digits", path.display(), t.name)
                    })?;
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&bytes);
                    self.entries.push(Entry { digest: d, caller: Caller { name: t.name, role: t.role, tenant: t.tenant } });
                }
                (None, Some(var)) => {
                    let token = std::env::var(var)
                        .map_err(|_| format!("admin policy {}: token {:?}: ${var} is not set", path.display(), t.name))?;
                    self.add(&t.name, &token, t.role, t.tenant)?;
                }
                _ => {
                    return Err(format!(
                        "admin policy {}: token {:?} needs exactly one of token_sha256 and token_env",
                        path.display(),
                        t.name
                    ))
                }
            }
        }
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a bearer token stands for. Every entry is compared, in
    /// constant time each, so timing tells nothing about which matched.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, AuthError> {
        let Some(token) = bearer else { return Err(AuthError::Unauthenticated) };
        let d = digest(token);
        let mut found = None;
        for e in &self.entries {
            let same = e.digest.iter().zip(&d).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
            if same && found.is_none() {
                found = Some(e.caller.clone());
            }
        }
        found.ok_or(AuthError::Unauthenticated)
    }
}

impl Caller {
    /// The caller may do what `needs` allows.
    pub fn require(&self, needs: Role) -> Result<(), AuthError> {
        if self.role >= needs {
            Ok(())
        } else {
            Err(AuthError::Role { name: self.name.clone(), has: self.role.name(), needs: needs.name() })
        }
    }

    /// The caller may act for `tenant` (`None`: for every tenant).
    pub fn may_act_for(&self, tenant: Option<&str>) -> Result<(), AuthError> {
        match (&self.tenant, tenant) {
            (None, _) => Ok(()),
            (Some(own), Some(t)) if own == t => Ok(()),
            (Some(own), _) => Err(AuthError::Tenant { name: self.name.clone(), tenant: own.clone() }),
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Requests per caller: a token bucket each (`limit` requests, refilled
/// over `window`).
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A request's place in its caller's budget, for the `X-RateLimit-*`
/// headers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_s: u64,
    /// Refused: seconds until the next request may pass.
    pub retry_after_s: Option<u64>,
}

/// Callers tracked at most; idle full buckets are dropped first.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter { limit: limit.max(1), window, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `key`'s bucket.
    pub fn take(&self, key: &str, now: Instant) -> Quota {
        let rate = f64::from(self.limit) / self.window.as_secs_f64().max(0.001);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let full = self.limit as f64;
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < full);
            if buckets.len() >= MAX_BUCKETS {
                // Still full of active callers: the oldest goes.
                if let Some(k) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| k.clone()) {
                    buckets.remove(&k);
                }
            }
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: f64::from(self.limit), at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(f64::from(self.limit));
        b.at = now;
        let refused = b.tokens < 1.0;
        if !refused {
            b.tokens -= 1.0;
        }
        let reset_s = ((f64::from(self.limit) - b.tokens) / rate).ceil() as u64;
        Quota {
            limit: self.limit,
            remaining: b.tokens.floor() as u32,
            reset_s,
            retry_after_s: refused.then(|| ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AuthPolicy {
        let mut p = AuthPolicy::single("admin-token-0123456789").unwrap();
        p.add("ro", "read-token-0123456789", Role::Read, None).unwrap();
        p.add("acme", "acme-token-0123456789", Role::Operate, Some("acme".into())).unwrap();
        p
    }

    #[test]
    fn tokens_map_to_callers_and_roles_are_ordered() {
        let p = policy();
        assert_eq!(p.authenticate(None), Err(AuthError::Unauthenticated));
        assert_eq!(p.authenticate(Some("nope-nope-nope-nope")), Err(AuthError::Unauthenticated));
        let ro = p.authenticate(Some("read-token-0123456789")).unwrap();
        assert_eq!(ro.name, "ro");
        assert!(ro.require(Role::Read).is_ok());
        assert!(matches!(ro.require(Role::Operate), Err(AuthError::Role { needs: "operate", .. })));
        let admin = p.authenticate(Some("admin-token-0123456789")).unwrap();
        assert!(admin.require(Role::Admin).is_ok() && admin.may_act_for(None).is_ok());
        let acme = p.authenticate(Some("acme-token-0123456789")).unwrap();
        assert!(acme.may_act_for(Some("acme")).is_ok());
        assert!(acme.may_act_for(Some("other")).is_err());
        assert!(acme.may_act_for(None).is_err(), "a scoped token never acts for everyone");
        assert!(AuthPolicy::single("short").is_err());
    }

    #[test]
    fn policy_files_hold_digests_or_env_names() {
        let dir = std::env::temp_dir().join(format!("cf-admin-policy-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hex: String = digest("file-token-0123456789").iter().map(|b| format!("{b:02x}")).collect();
        let f = dir.join("p.json");
        std::fs::write(&f, format!(r#"{{"tokens": [{{"name": "ci", "role": "operate", "token_sha256": "{hex}", "tenant": "t"}}]}}"#)).unwrap();
        let p = AuthPolicy::default().load_file(&f).unwrap();
        let c = p.authenticate(Some("file-token-0123456789")).unwrap();
        assert_eq!((c.name.as_str(), c.role, c.tenant.as_deref()), ("ci", Role::Operate, Some("t")));
        std::fs::write(&f, r#"{"tokens": [{"name": "x", "role": "admin"}]}"#).unwrap();
        assert!(AuthPolicy::default().load_file(&f).err().unwrap().contains("exactly one of"));
        std::fs::write(&f, r#"{"tokens": [{"name": "x", "role": "root", "token_env": "X"}]}"#).unwrap();
        assert!(AuthPolicy::default().load_file(&f).is_err(), "unknown role");
        std::fs::write(&f, r#"{"tokens": [{"name": "x", "role": "admin", "token_sha256": "abc"}]}"#).unwrap();
        assert!(AuthPolicy::default().load_file(&f).err().unwrap().contains("64 hex digits"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn buckets_refill_over_the_window() {
        let r = RateLimiter::new(3, Duration::from_secs(3));
        let t0 = Instant::now();
        let q: Vec<Quota> = (0..4).map(|_| r.take("a", t0)).collect();
        assert_eq!(q.iter().map(|q| q.remaining).collect::<Vec<_>>(), vec![2, 1, 0, 0]);
        assert_eq!(q[3].retry_after_s, Some(1));
        assert!(q[..3].iter().all(|q| q.retry_after_s.is_none()));
        assert_eq!(r.take("b", t0).remaining, 2, "callers have their own buckets");
        let later = r.take("a", t0 + Duration::from_millis(1100));
        assert!(later.retry_after_s.is_none(), "one token back after a second");
        assert_eq!(later.limit, 3);
    }

    #[test]
    fn the_bucket_table_is_bounded() {
        let r = RateLimiter::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_BUCKETS + 500) {
            r.take(&format!("caller-{i}"), t0);
        }
        assert!(r.buckets.lock().unwrap().len() <= MAX_BUCKETS);
    }
}
