//! Completion webhooks: after a collection, an HMAC-signed JSON `POST`
//! (`collection.finished` or `collection.failed`) to a URL the operator
//! configured, like the seed's webhook events.
//!
//! The body is the [`Event`]; headers:
//! - `X-CF-Event`: the event name;
//! - `X-CF-Delivery`: the run id (receivers de-duplicate on it);
//! - `X-CF-Timestamp`: Unix seconds;
//! - `X-CF-Signature`: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//!   so a receiver checks authenticity and refuses old replays.
//!
//! Delivery never changes a run's outcome: it is retried (3 attempts, 0.5 s
//! then 1 s apart) on connection errors and 5xx/429, and a failure is logged.
//! Events carry counts and the (already redacted) error, never secrets.
//!
//! Webhooks come from `--webhook-url` (one, with `CF_HOST_WEBHOOK_SECRET`)
//! and from the admin API (`/v1/webhooks`: [`Subscriptions`], each with its
//! own secret and events, kept in the store when there is one).
//!
//! A webhook registered through the API is guarded by an egress policy, as
//! registry pulls are: an admin token must not make the server post to
//! loopback, private or link-local addresses (cloud metadata at
//! 169.254.169.254). An IP-literal URL is checked when it is registered
//! and before each delivery, a name is resolved by the host (refused
//! addresses dropped), and the address connected is checked again. The
//! operator's `--webhook-allow-network` opens networks; the operator's own
//! `--webhook-url` is not guarded.
//!
//! Failures are a [`WebhookError`]: a refused URL, secret or event list,
//! a delivery that failed, or the store that keeps the subscriptions.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;

/// Why a webhook could not be made, registered or delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse.
    #[error("webhook URL {url:?}: {source}")]
    Url { url: String, source: url::ParseError },
    /// The URL is not http or https.
    #[error("webhook URL {0}: scheme must be http or https")]
    Scheme(url::Url),
    #[error("the webhook secret must be at least 16 characters")]
    ShortSecret,
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
    /// The event does not encode.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The receiver answered with a status that is not retried.
    #[error("webhook {url} answered HTTP {status}")]
    Refused { url: url::Url, status: reqwest::StatusCode },
    /// An attempt's passing failure: a 5xx or 429 answer.
    #[error("HTTP {0}")]
    Busy(reqwest::StatusCode),
    /// An attempt's passing failure: no connection.
    #[error("cannot reach webhook {url}: {source}")]
    Unreachable { url: url::Url, source: reqwest::Error },
    /// Every attempt failed for a passing reason; `last` is the last one's.
    #[error("webhook {url} failed after 3 attempts: {last}")]
    GaveUp { url: url::Url, last: Box<WebhookError> },
    #[error("events must name at least one event")]
    NoEvents,
    #[error("unknown event {0:?}; known: {known}", known = EVENTS.join(", "))]
    UnknownEvent(String),
    #[error("at most {MAX_SUBSCRIPTIONS} webhooks")]
    TooMany,
    /// The store keeping the subscriptions failed.
    #[error(transparent)]
    Store(#[from] KeepError),
    /// The egress policy of registered webhooks refused the destination.
    #[error("webhook {url}: egress policy: {reason}; allow its network with --webhook-allow-network")]
    Egress { url: url::Url, reason: String },
}

/// The text, for callers that only report it.
impl From<WebhookError> for String {
    fn from(e: WebhookError) -> String {
        e.to_string()
    }
}

/// Where and how to deliver.
#[derive(Clone)]
pub struct Webhook {
    pub url: url::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
    /// The egress policy of a webhook registered through the API (none
    /// for the operator's `--webhook-url`).
    policy: Option<crate::egress::EgressPolicy>,
}

/// The key never reaches logs.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

/// A delivery's payload.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    /// `collection.finished` or `collection.failed`.
    pub event: &'static str,
    pub run_id: String,
    pub tenant: String,
    pub plugin: String,
    /// `sha256:` and 12 hex digits of the build that ran.
    pub plugin_digest: String,
    /// Unix seconds when the collection ended.
    pub finished_at: u64,
    pub duration_ms: u64,
    /// Records by label (`Compute/VirtualMachine`, `Region`, ...), error
    /// resources included.
    pub records: std::collections::BTreeMap<String, u64>,
    /// Error resources among them.
    pub errors: u64,
    /// Set on `collection.failed`: `{"code", "message"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// Records of a run as they are streamed: per label, and error resources.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub records: std::collections::BTreeMap<String, u64>,
    pub errors: u64,
}

impl Tally {
    pub fn add(&mut self, r: &crate::record::Record) {
        *self.records.entry(r.label()).or_default() += 1;
        if r.is_error() {
            self.errors += 1;
        }
    }
}

impl Event {
    /// An event for a run that is starting (completed by [`Event::finish`]).
    pub fn start(run_id: &str, tenant: &str, plugin: &str, plugin_digest: &str) -> Event {
        Event {
            event: "collection.finished",
            run_id: run_id.to_string(),
            tenant: tenant.to_string(),
            plugin: plugin.to_string(),
            plugin_digest: plugin_digest.to_string(),
            finished_at: 0,
            duration_ms: 0,
            records: Default::default(),
            errors: 0,
            error: None,
        }
    }

    /// The event of a run that ended; `failure` is `(code, message)`.
    pub fn finish(mut self, took: Duration, tally: Tally, failure: Option<(&str, String)>) -> Event {
        self.finished_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.duration_ms = took.as_millis() as u64;
        self.records = tally.records;
        self.errors = tally.errors;
        if let Some((code, message)) = failure {
            self.event = "collection.failed";
            self.error = Some(serde_json::json!({"code": code, "message": message}));
        }
        self
    }
}

impl Webhook {
    pub fn new(url: &str, secret: &str) -> Result<Webhook, WebhookError> {
        let (url, secret) = Self::checked(url, secret)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Webhook { url, secret, client, policy: None })
    }

    /// A webhook under the egress policy that allows only public addresses
    /// and `networks`: its client resolves names through the policy, and
    /// each delivery checks an IP-literal URL first ([`Subscriptions::add`]
    /// also refuses one when it is registered).
    pub fn guarded(url: &str, secret: &str, networks: &[ipnet::IpNet]) -> Result<Webhook, WebhookError> {
        let (url, secret) = Self::checked(url, secret)?;
        let policy = crate::egress::EgressPolicy::deny_all().allow_networks(networks.iter().copied());
        let client = crate::host::http::ClientPool::default()
            .client(&crate::host::http::TlsConfig::default(), networks)
            .map_err(|reason| WebhookError::Egress { url: url.clone(), reason })?;
        Ok(Webhook { url, secret, client, policy: Some(policy) })
    }

    fn checked(url: &str, secret: &str) -> Result<(url::Url, Vec<u8>), WebhookError> {
        let url = url::Url::parse(url).map_err(|source| WebhookError::Url { url: url.to_string(), source })?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(WebhookError::Scheme(url));
        }
        if secret.len() < 16 {
            return Err(WebhookError::ShortSecret);
        }
        Ok((url, secret.as_bytes().to_vec()))
    }

    /// The policy's verdict on `addr` for this webhook's host.
    fn check_addr(&self, addr: std::net::IpAddr) -> Result<(), WebhookError> {
        match &self.policy {
            Some(p) => p
                .check_addr(self.url.host_str().unwrap_or_default(), addr)
                .map_err(|d| WebhookError::Egress { url: self.url.clone(), reason: d.to_string() }),
            None => Ok(()),
        }
    }

    /// An IP-literal host is checked before anything is sent (no name
    /// resolution happens for it).
    fn precheck(&self) -> Result<(), WebhookError> {
        match self.url.host() {
            Some(url::Host::Ipv4(a)) => self.check_addr(a.into()),
            Some(url::Host::Ipv6(a)) => self.check_addr(a.into()),
            _ => Ok(()),
        }
    }

    /// `sha256=<hex>` over `"<timestamp>.<body>"`.
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> String {
        sign(&self.secret, timestamp, body)
    }

    /// Delivers `event`; returns the attempts made, or why it failed.
    pub async fn deliver(&self, event: &Event) -> Result<u32, WebhookError> {
        let body = serde_json::to_vec(event).map_err(WebhookError::Encode)?;
        self.precheck()?;
        let mut attempt = 1u32;
        loop {
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let sent = self
                .client
                .post(self.url.clone())
                .header("content-type", "application/json")
                .header("x-cf-event", event.event)
                .header("x-cf-delivery", &event.run_id)
                .header("x-cf-timestamp", ts.to_string())
                .header("x-cf-signature", self.signature(ts, &body))
                .body(body.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(r) = &sent
                && let Some(addr) = r.remote_addr()
            {
                self.check_addr(addr.ip())?;
            }
            if self.policy.is_some()
                && let Err(e) = &sent
                && let Some(refused) = crate::host::http::blocked_by_policy(e)
            {
                return Err(WebhookError::Egress { url: self.url.clone(), reason: refused.0.clone() });
            }
            let last = match sent {
                Ok(r) if r.status().is_success() => return Ok(attempt),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => WebhookError::Busy(r.status()),
                Ok(r) => return Err(WebhookError::Refused { url: self.url.clone(), status: r.status() }),
                Err(source) => WebhookError::Unreachable { url: self.url.clone(), source },
            };
            if attempt == 3 {
                return Err(WebhookError::GaveUp { url: self.url.clone(), last: Box::new(last) });
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// Delivers in the background, logging the outcome.
    pub fn spawn(&self, event: Event) {
        let hook = self.clone();
        tokio::spawn(async move {
            match hook.deliver(&event).await {
                Ok(n) => tracing::info!(run = %event.run_id, event = event.event, attempts = n, "webhook delivered"),
                Err(e) => tracing::warn!(run = %event.run_id, event = event.event, error = %e, "webhook not delivered"),
            }
        });
    }
}

/// Events a subscription can name.
pub const EVENTS: &[&str] = &["collection.finished", "collection.failed"];

/// A webhook registered through the admin API (its secret is never shown).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// Where subscriptions are kept across restarts (the embedded store
/// implements it, so this module does not depend on the store's types).
pub trait SubscriptionStore: Send + Sync {
    fn load(&self) -> Result<Vec<(Subscription, String)>, KeepError>;
    fn insert(&self, s: &Subscription, secret: &str) -> Result<(), KeepError>;
    fn delete(&self, id: &str) -> Result<bool, KeepError>;
}

/// A [`SubscriptionStore`] failed; the store's own error is the source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeepError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Webhooks registered through the admin API, and the one from
/// `--webhook-url`: every collection's event goes to each that wants it.
pub struct Subscriptions {
    store: Option<std::sync::Arc<dyn SubscriptionStore>>,
    hooks: std::sync::RwLock<Vec<(Subscription, Webhook)>>,
    /// Networks the webhooks may reach although they are special
    /// (`--webhook-allow-network`).
    networks: Vec<ipnet::IpNet>,
}

/// Subscriptions held at most.
pub const MAX_SUBSCRIPTIONS: usize = 100;

impl Subscriptions {
    /// Subscriptions kept in memory, whose webhooks may reach public
    /// addresses and `networks`.
    pub fn in_memory(networks: Vec<ipnet::IpNet>) -> Subscriptions {
        Subscriptions { store: None, hooks: Default::default(), networks }
    }

    /// The subscriptions kept in `store`. One the egress policy now refuses
    /// (its network no longer allowed) stays listed; its deliveries fail.
    pub fn open(store: std::sync::Arc<dyn SubscriptionStore>, networks: Vec<ipnet::IpNet>) -> Result<Subscriptions, WebhookError> {
        let mut hooks = Vec::new();
        for (s, secret) in store.load()? {
            let hook = Webhook::guarded(&s.url, &secret, &networks)?;
            hooks.push((s, hook));
        }
        Ok(Subscriptions { store: Some(store), hooks: std::sync::RwLock::new(hooks), networks })
    }

    /// Reads the store again (fleet mode: another replica may have added
    /// or removed a webhook); a webhook kept keeps its client. Blocking.
    pub fn reload(&self) -> Result<(), WebhookError> {
        let Some(store) = &self.store else { return Ok(()) };
        let kept = store.load()?;
        let mut hooks = self.hooks.write().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::with_capacity(kept.len().min(MAX_SUBSCRIPTIONS));
        for (s, secret) in kept.into_iter().take(MAX_SUBSCRIPTIONS) {
            match hooks.iter().position(|(h, _)| h.id == s.id) {
                Some(i) => fresh.push(hooks.swap_remove(i)),
                None => match Webhook::guarded(&s.url, &secret, &self.networks) {
                    Ok(hook) => fresh.push((s, hook)),
                    Err(e) => tracing::warn!(webhook = %s.id, error = %e, "a registered webhook is not usable here"),
                },
            }
        }
        *hooks = fresh;
        Ok(())
    }

    pub fn list(&self) -> Vec<Subscription> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(s, _)| s.clone()).collect()
    }

    /// Registers a webhook; `events` defaults to all.
    pub fn add(&self, url: &str, events: Option<Vec<String>>, secret: &str) -> Result<Subscription, WebhookError> {
        let hook = Webhook::guarded(url, secret, &self.networks)?;
        hook.precheck()?;
        let events = events.unwrap_or_else(|| EVENTS.iter().map(|e| e.to_string()).collect());
        if events.is_empty() {
            return Err(WebhookError::NoEvents);
        }
        if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(WebhookError::UnknownEvent(bad.clone()));
        }
        let id = format!("wh-{}", crate::runtime::new_run_id().trim_start_matches("run-"));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let s = Subscription { id, url: hook.url.to_string(), events, created_at: now };
        if self.hooks.read().unwrap_or_else(|p| p.into_inner()).len() >= MAX_SUBSCRIPTIONS {
            return Err(WebhookError::TooMany);
        }
        // The store (a database in fleet mode) is written without holding
        // the lock deliveries read.
        if let Some(store) = &self.store {
            store.insert(&s, secret)?;
        }
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).push((s.clone(), hook));
        Ok(s)
    }

    /// Removes a webhook; `false` when there is none with that id, here or
    /// in the store (in fleet mode another replica may have added it since
    /// this one last read the store).
    pub fn remove(&self, id: &str) -> Result<bool, WebhookError> {
        let stored = match &self.store {
            Some(store) => store.delete(id)?,
            None => false,
        };
        let mut hooks = self.hooks.write().unwrap_or_else(|p| p.into_inner());
        let here = hooks.iter().position(|(s, _)| s.id == id).map(|i| hooks.remove(i));
        Ok(here.is_some() || stored)
    }

    /// Delivers `event` in the background to every webhook that wants it.
    pub fn notify(&self, event: &Event) {
        for (s, hook) in self.hooks.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if s.events.iter().any(|e| e == event.event) {
                hook.spawn(event.clone());
            }
        }
    }
}

/// The signature a receiver recomputes.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, &[timestamp.to_string().as_bytes(), b".", body]))
}

fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_scheme() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = sign(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(s, format!("sha256={}", hmac_hex(b"Jefe", &[b"0.what do ya want for nothing?"])));
        assert_eq!(s.len(), "sha256=".len() + 64);
        assert_ne!(s, sign(b"Jefe", 1, b"what do ya want for nothing?"), "the timestamp is signed");
        assert_ne!(s, sign(b"Jefx", 0, b"what do ya want for nothing?"));
        assert!(matches!(Webhook::new("ftp://x", "0123456789abcdef"), Err(WebhookError::Scheme(_))));
        let short = Webhook::new("https://x", "short").unwrap_err();
        assert!(matches!(short, WebhookError::ShortSecret));
        assert!(short.to_string().contains("at least 16"));
        let hook = Webhook::new("https://hooks.example.com/cf", "0123456789abcdef").unwrap();
        assert!(!format!("{hook:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn subscriptions_check_their_input_and_are_bounded() {
        let subs = Subscriptions::in_memory(Vec::new());
        let a = subs.add("https://hooks.example.com/a", None, "0123456789abcdef").unwrap();
        assert_eq!(a.events, vec!["collection.finished", "collection.failed"]);
        let unknown = subs.add("https://x", Some(vec!["collection.exploded".into()]), "0123456789abcdef").unwrap_err();
        assert!(matches!(&unknown, WebhookError::UnknownEvent(e) if e == "collection.exploded"));
        assert!(unknown.to_string().contains("unknown event"));
        assert!(matches!(subs.add("https://x", Some(vec![]), "0123456789abcdef"), Err(WebhookError::NoEvents)));
        assert!(matches!(subs.add("ftp://x", None, "0123456789abcdef"), Err(WebhookError::Scheme(_))));
        assert!(matches!(subs.add("https://x", None, "short"), Err(WebhookError::ShortSecret)));
        assert!(!serde_json::to_string(&subs.list()).unwrap().contains("0123456789abcdef"), "the secret is never listed");
        assert!(subs.remove(&a.id).unwrap());
        assert!(!subs.remove(&a.id).unwrap());
        for i in 0..MAX_SUBSCRIPTIONS {
            subs.add(&format!("https://h/{i}"), None, "0123456789abcdef").unwrap();
        }
        let full = subs.add("https://h/x", None, "0123456789abcdef").unwrap_err();
        assert!(matches!(full, WebhookError::TooMany));
        assert!(full.to_string().contains("at most"));
    }

    /// Webhooks registered through the API reach public addresses only,
    /// unless the operator allowed the network: an IP literal is refused
    /// when registered, a name that resolves to a refused address when
    /// delivered, before anything is sent.
    #[test]
    fn registered_webhooks_are_under_the_egress_policy() {
        let secret = "0123456789abcdef";
        let subs = Subscriptions::in_memory(Vec::new());
        for url in ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/", "http://[::1]:8080/", "https://[fd00::1]/"] {
            let e = subs.add(url, None, secret).unwrap_err();
            assert!(matches!(e, WebhookError::Egress { .. }), "{url}: {e}");
            assert!(e.to_string().contains("--webhook-allow-network"), "{e}");
        }
        assert!(subs.list().is_empty());
        assert!(subs.add("https://93.184.215.14/hook", None, secret).is_ok(), "a public address is fine");
        // The operator allowed loopback: registered.
        let open = Subscriptions::in_memory(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(open.add("http://127.0.0.1:9/x", None, secret).is_ok());
        assert!(matches!(open.add("http://169.254.169.254/", None, secret), Err(WebhookError::Egress { .. })));
        // The operator's own --webhook-url is not guarded.
        assert!(Webhook::new("http://127.0.0.1:9/x", secret).is_ok());

        // A name resolving to loopback: refused at delivery, nothing sent.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let accepted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = accepted.clone();
            tokio::spawn(async move {
                if listener.accept().await.is_ok() {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
            let hook = Webhook::guarded(&format!("http://localhost:{port}/hook"), secret, &[]).unwrap();
            let e = hook.deliver(&Event::start("run-1", "t", "nutanix", "sha256:0")).await.unwrap_err();
            assert!(matches!(e, WebhookError::Egress { .. }), "{e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!accepted.load(std::sync::atomic::Ordering::SeqCst), "nothing reached the loopback receiver");
        });
    }
}
