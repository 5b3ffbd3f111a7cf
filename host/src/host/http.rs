//! `cloudforet:collector/http`: outbound HTTP backed by reqwest.
//!
//! Order of checks for every request: URL parse → egress policy → request
//! budget → header and body validation → I/O. Redirects are not followed by
//! reqwest; they are followed here, each target checked against the policy
//! again (a granted host cannot bounce the guest elsewhere). Response bodies
//! are read in chunks and cut off at the size limit.
//!
//! A circuit breaker per (tenant, origin) ([`Breakers`], shared by all runs
//! of a runtime) counts consecutive connection errors, timeouts and 5xx
//! answers; while open, requests to the origin fail at once with a
//! `connection` error, no I/O. Keyed by tenant so one tenant's guest cannot
//! open another tenant's breaker.

use crate::bindings::current::cloudforet::collector::http::{self, Credential, HttpError, Method, Request, Response};
use crate::egress::EgressPolicy;
use ipnet::IpNet;
use crate::limits::HttpLimits;
use crate::resilience::Breaker;
use crate::secret::{Credentials, Redactor};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// How a run verifies TLS. Prism ships self-signed certificates; accepting
/// them takes an explicit `verify_ssl: false` or a CA bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// `false` accepts any certificate (explicit opt-out).
    pub skip_verify: bool,
    /// Extra trusted roots (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

/// reqwest clients shared by runs (one connection pool per TLS setup and
/// set of allowed networks, so a connection checked under one policy is
/// never reused under a looser one's name).
#[derive(Clone, Default)]
pub struct ClientPool {
    clients: Arc<Mutex<HashMap<PoolKey, reqwest::Client>>>,
}

/// A pool per TLS setup and set of allowed networks.
type PoolKey = (TlsConfig, Vec<IpNet>);

/// Resolves host names for reqwest and drops every address the egress policy
/// blocks (loopback, private, link-local, ...), so a name can never lead the
/// connection to such an address unless the operator allowed its network.
struct PolicyResolver {
    policy: EgressPolicy,
}

/// A resolution refused by the egress policy (found in reqwest's error chain).
#[derive(Debug)]
pub struct BlockedByPolicy(pub String);

/// The policy's refusal in an error's chain, if that is why it failed.
pub fn blocked_by_policy<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedByPolicy> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(b) = c.downcast_ref::<BlockedByPolicy>() {
            return Some(b);
        }
        cur = c.source();
    }
    None
}

impl std::fmt::Display for BlockedByPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockedByPolicy {}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut denial = None;
            let allowed: Vec<std::net::SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check_addr(&host, a.ip()) {
                    Ok(()) => true,
                    Err(d) => {
                        denial.get_or_insert(d);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = denial.map_or_else(|| format!("{host} did not resolve"), |d| d.to_string());
                return Err(Box::new(BlockedByPolicy(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl ClientPool {
    /// The client for a TLS setup, resolving names under `networks` (the
    /// operator's explicitly allowed networks).
    pub fn client(&self, tls: &TlsConfig, networks: &[IpNet]) -> Result<reqwest::Client, String> {
        let key = (tls.clone(), networks.to_vec());
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let resolver = PolicyResolver { policy: EgressPolicy::deny_all().allow_networks(networks.iter().copied()) };
        let mut b = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(16)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cf-host/", env!("CARGO_PKG_VERSION")));
        if tls.skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &tls.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("invalid CA bundle: {e}"))?;
            if certs.is_empty() {
                return Err("invalid CA bundle: no certificate in it".into());
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| format!("cannot build HTTP client: {e}"))?;
        map.insert(key, client.clone());
        Ok(client)
    }
}

/// One request as the host performs it, after every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRequest {
    /// Upper-case method name (`GET`, `POST`, ...).
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl OutboundRequest {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One response, body complete and within the size limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a transport produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    Timeout,
    Connection(String),
    Tls(String),
    /// The body exceeded the limit (in bytes).
    TooLarge(u64),
    /// The address the host resolved to or connected to is blocked.
    Denied(String),
}

/// Future of a transport call.
pub type TransportFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<InboundResponse, TransportFailure>> + Send + 'a>>;

/// Performs one HTTP exchange (no redirects: the host follows them itself,
/// re-checking each target). The real one is reqwest; the test harness
/// plugs in cassettes and recorders. Policy, budget and header checks happen
/// before a transport is called, whatever it is.
pub trait HttpTransport: Send + Sync {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, timeout: Duration, max_body: u64) -> TransportFuture<'a>;
}

/// The product transport: reqwest with a shared connection pool; checks
/// the address it actually connected to against the run's policy.
pub struct ReqwestTransport {
    client: reqwest::Client,
    policy: EgressPolicy,
}

impl ReqwestTransport {
    pub fn new(client: reqwest::Client, policy: EgressPolicy) -> ReqwestTransport {
        ReqwestTransport { client, policy }
    }

    async fn exchange(&self, req: &OutboundRequest, timeout: Duration, max: u64) -> Result<InboundResponse, TransportFailure> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| TransportFailure::Connection(format!("invalid method {}", req.method)))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                headers.append(k, v);
            }
        }
        let mut rb = self.client.request(method, req.url.clone()).headers(headers).timeout(timeout);
        if let Some(b) = &req.body {
            rb = rb.body(b.clone());
        }
        let mut resp = rb.send().await.map_err(|e| map_reqwest_error(&e.without_url()))?;
        // The connected address, whatever DNS said: no rebinding past the policy.
        if let (Some(remote), Some(host)) = (resp.remote_addr(), req.url.host_str())
            && let Err(d) = self.policy.check_addr(host, remote.ip())
        {
            return Err(TransportFailure::Denied(d.to_string()));
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(TransportFailure::TooLarge(max));
        }
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > max {
                        return Err(TransportFailure::TooLarge(max));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(InboundResponse { status, headers, body }),
                Err(e) => return Err(map_reqwest_error(&e)),
            }
        }
    }
}

impl HttpTransport for ReqwestTransport {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, timeout: Duration, max_body: u64) -> TransportFuture<'a> {
        Box::pin(self.exchange(req, timeout, max_body))
    }
}

fn map_reqwest_error(e: &reqwest::Error) -> TransportFailure {
    if e.is_timeout() {
        return TransportFailure::Timeout;
    }
    // The source chain, outermost first; reqwest's outer layers only say
    // "error sending request", the cause is at the end. The cause's type
    // says what failed: the policy's refusal, or rustls's.
    let mut causes = Vec::new();
    let mut tls = false;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BlockedByPolicy>() {
            return TransportFailure::Denied(b.0.clone());
        }
        tls |= holds::<rustls::Error>(s);
        causes.push(s.to_string());
        src = s.source();
    }
    let tail = causes.len().saturating_sub(2);
    let msg = causes[tail..].join(": ");
    if tls { TransportFailure::Tls(msg) } else { TransportFailure::Connection(msg) }
}

/// Whether `e` is an `E`, or wraps one in `io::Error`s: tokio-rustls wraps
/// rustls's error in an io::Error (hyper-util in another), and
/// `io::Error::source` skips the error it wraps.
fn holds<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    for _ in 0..16 {
        let Some(c) = cur else { return false };
        if c.downcast_ref::<E>().is_some() {
            return true;
        }
        cur = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn std::error::Error + 'static));
    }
    false
}

/// Circuit breakers of guests' outbound HTTP, one per (tenant, origin),
/// shared by a runtime's runs. The table is bounded: past
/// [`MAX_BREAKERS`], breakers that know nothing (closed, no failures) are
/// dropped, then the least recently used.
#[derive(Clone, Default)]
pub struct Breakers {
    map: Arc<Mutex<HashMap<(String, String), (Breaker, std::time::Instant)>>>,
}

/// Breakers kept at most.
pub const MAX_BREAKERS: usize = 4096;

/// What a breaker learns from one exchange.
enum Health {
    Up,
    Down,
    /// Says nothing about the endpoint (TLS setup, size limit, policy).
    Unknown,
}

impl Breakers {
    fn with<T>(&self, tenant: &str, origin: &str, limits: &HttpLimits, f: impl FnOnce(&mut Breaker) -> T) -> T {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_string(), origin.to_string());
        if map.len() >= MAX_BREAKERS && !map.contains_key(&key) {
            map.retain(|_, (b, _)| b.failures() > 0 || !matches!(b.state(), crate::resilience::BreakerState::Closed));
            if map.len() >= MAX_BREAKERS {
                let mut by_age: Vec<_> = map.iter().map(|(k, (_, at))| (*at, k.clone())).collect();
                by_age.sort();
                for (_, k) in by_age.into_iter().take(MAX_BREAKERS / 4) {
                    map.remove(&k);
                }
            }
        }
        let now = std::time::Instant::now();
        let (b, at) = map.entry(key).or_insert_with(|| (Breaker::new(limits.breaker_failures, limits.breaker_open), now));
        *at = now;
        f(b)
    }

    /// Breakers kept (tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Err` with the message a refused request gets.
    fn admit(&self, tenant: &str, origin: &str, limits: &HttpLimits) -> Result<(), String> {
        if limits.breaker_failures == 0 {
            return Ok(());
        }
        self.with(tenant, origin, limits, |b| {
            b.admit(std::time::Instant::now()).map_err(|wait| {
                format!(
                    "circuit open for {origin}: {} consecutive failures; the host sends nothing there for {} ms",
                    b.failures(),
                    wait.as_millis()
                )
            })
        })
    }

    fn report(&self, tenant: &str, origin: &str, limits: &HttpLimits, health: Health) {
        if limits.breaker_failures == 0 {
            return;
        }
        self.with(tenant, origin, limits, |b| match health {
            Health::Up => b.success(),
            Health::Down => {
                b.failure(std::time::Instant::now());
                if matches!(b.state(), crate::resilience::BreakerState::Open(_)) {
                    tracing::warn!(tenant, origin, failures = b.failures(), "HTTP circuit breaker open");
                }
            }
            Health::Unknown => {}
        });
    }
}

fn health(r: &Result<InboundResponse, TransportFailure>) -> Health {
    match r {
        // 501 is an answer about the method, not the endpoint's health.
        Ok(resp) if (500..600).contains(&resp.status) && resp.status != 501 => Health::Down,
        Ok(_) => Health::Up,
        Err(TransportFailure::Timeout | TransportFailure::Connection(_)) => Health::Down,
        Err(TransportFailure::Tls(_) | TransportFailure::TooLarge(_) | TransportFailure::Denied(_)) => Health::Unknown,
    }
}

/// Per-run HTTP capability.
pub struct HttpCtx {
    pub(crate) transport: Arc<dyn HttpTransport>,
    pub(crate) policy: EgressPolicy,
    pub(crate) limits: HttpLimits,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) requests: u32,
    /// Set when the request budget ran out; the run ends with a limit error.
    pub(crate) budget_exhausted: bool,
    /// Where denials are also recorded (test harness).
    pub(crate) denials: Option<Arc<Mutex<Vec<String>>>>,
    /// What `send-authenticated` may add, from the run's secret.
    pub(crate) credentials: Credentials,
    /// Requests by outcome (`2xx`..`5xx`, `error`, `denied`,
    /// `circuit_open`) for metrics.
    pub(crate) outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// The runtime's breakers and the tenant whose breakers this run uses.
    pub(crate) breakers: Breakers,
    pub(crate) tenant: String,
    /// Set when the last request was refused by an open breaker.
    pub(crate) circuit_refused: bool,
    /// The last egress refusal (`origin: reason`), for the run's error.
    pub(crate) last_denial: Option<String>,
}

/// The header to add for `credential`, or why the secret cannot provide it.
fn credential_header(creds: &Credentials, credential: &Credential) -> Result<(String, String), HttpError> {
    use base64::Engine as _;
    let missing = |f: &str| HttpError::InvalidRequest(format!("the secret has no '{f}' for this credential"));
    match credential {
        Credential::Basic => {
            let user = creds.username().ok_or_else(|| missing("username"))?;
            let pass = creds.password().ok_or_else(|| missing("password"))?;
            let raw = format!("{user}:{pass}");
            Ok(("authorization".into(), format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))))
        }
        Credential::Bearer => {
            let token = creds.token().ok_or_else(|| missing("token"))?;
            Ok(("authorization".into(), format!("Bearer {token}")))
        }
        Credential::ApiKey(name) => {
            let key = creds.api_key().ok_or_else(|| missing("api_key"))?;
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("invalid header name '{}'", name.escape_debug())))?;
            if FORBIDDEN_HEADERS.contains(&header.as_str()) {
                return Err(HttpError::InvalidRequest(format!("header '{header}' is set by the host")));
            }
            Ok((header.as_str().to_string(), key.to_string()))
        }
    }
}
/// `scheme://host:port` of a URL, for logs (never path or query).
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Headers the guest may not set: the host owns framing and routing.
const FORBIDDEN_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "proxy-authorization"];

impl HttpCtx {
    fn check_headers(&self, headers: Vec<(String, String)>) -> Result<Vec<(String, String)>, HttpError> {
        for (k, v) in &headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("invalid header name '{}'", k.escape_debug())))?;
            if FORBIDDEN_HEADERS.contains(&name.as_str()) {
                return Err(HttpError::InvalidRequest(format!("header '{name}' is set by the host")));
            }
            HeaderValue::from_str(v).map_err(|_| HttpError::InvalidRequest(format!("invalid value for header '{name}'")))?;
        }
        Ok(headers)
    }

    fn deny(&mut self, url: &Url, reason: String) -> HttpError {
        let origin = origin_of(url);
        tracing::warn!(origin = %origin, reason = %reason, "egress denied");
        let line = format!("{origin}: {reason}");
        if let Some(d) = &self.denials {
            d.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
        }
        self.last_denial = Some(line);
        HttpError::Denied(reason)
    }

    fn failure(&self, f: TransportFailure) -> HttpError {
        match f {
            TransportFailure::Timeout => HttpError::Timeout,
            TransportFailure::TooLarge(n) => HttpError::TooLarge(n),
            TransportFailure::Tls(m) => HttpError::Tls(self.redactor.redact_owned(m)),
            TransportFailure::Connection(m) => HttpError::Connection(self.redactor.redact_owned(m)),
            TransportFailure::Denied(m) => {
                tracing::warn!(reason = %m, "egress denied after resolution");
                if let Some(d) = &self.denials {
                    d.lock().unwrap_or_else(|p| p.into_inner()).push(m.clone());
                }
                HttpError::Denied(m)
            }
        }
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

impl http::Host for HttpCtx {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let r = self.exchange(req, None).await;
        self.count(&r);
        Ok(r)
    }

    async fn send_authenticated(&mut self, req: Request, credential: Credential) -> wasmtime::Result<Result<Response, HttpError>> {
        let header = match credential_header(&self.credentials, &credential) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let r = self.exchange(req, Some(header)).await;
        self.count(&r);
        Ok(r)
    }
}

impl HttpCtx {
    fn count(&mut self, r: &Result<Response, HttpError>) {
        let class = match r {
            Err(_) if std::mem::take(&mut self.circuit_refused) => "circuit_open",
            Ok(resp) => match resp.status {
                100..=199 => "1xx",
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            Err(HttpError::Denied(_)) => "denied",
            Err(_) => "error",
        };
        *self.outcomes.entry(class).or_insert(0) += 1;
    }

    /// One guest request: policy, budget and header checks, then the
    /// transport, following redirects (each target re-checked; credentials
    /// and cookies dropped when the origin changes).
    async fn exchange(&mut self, req: Request, credential: Option<(String, String)>) -> Result<Response, HttpError> {
        let url = match Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return Err(HttpError::InvalidRequest(format!("invalid URL: {e}"))),
        };
        if let Err(denial) = self.policy.check(&url) {
            return Err(self.deny(&url, denial.to_string()));
        }
        let mut headers = self.check_headers(req.headers)?;
        let injected = credential.as_ref().map(|(name, _)| name.clone());
        if let Some((name, value)) = credential {
            // The host's credential replaces whatever the guest put there.
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            headers.push((name, value));
        }
        if req.body.as_ref().is_some_and(|b| b.len() as u64 > self.limits.max_request_bytes) {
            return Err(HttpError::InvalidRequest(format!(
                "request body over the host limit of {} bytes",
                self.limits.max_request_bytes
            )));
        }
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.limits.default_timeout)
            .min(self.limits.max_timeout);
        let mut out = OutboundRequest { method: method_name(req.method).to_string(), url, headers, body: req.body };
        let mut redirects = 0;
        loop {
            if self.requests >= self.limits.max_requests {
                self.budget_exhausted = true;
                return Err(HttpError::Denied(format!(
                    "run exceeded its budget of {} HTTP requests",
                    self.limits.max_requests
                )));
            }
            let origin = origin_of(&out.url);
            if let Err(why) = self.breakers.admit(&self.tenant, &origin, &self.limits) {
                self.circuit_refused = true;
                return Err(HttpError::Connection(why));
            }
            self.requests += 1;
            let r = self.transport.perform(&out, timeout, self.limits.max_response_bytes).await;
            self.breakers.report(&self.tenant, &origin, &self.limits, health(&r));
            let resp = match r {
                Ok(r) => r,
                Err(f) => return Err(self.failure(f)),
            };
            let location = resp.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.clone());
            if (300..400).contains(&resp.status)
                && let Some(loc) = location
            {
                redirects += 1;
                if redirects > self.limits.max_redirects {
                    return Err(HttpError::Connection(format!("more than {} redirects", self.limits.max_redirects)));
                }
                let Some(next) = out.url.join(&loc).ok() else {
                    return Err(HttpError::Connection("redirect with an invalid Location".into()));
                };
                if let Err(denial) = self.policy.check(&next) {
                    return Err(self.deny(&next, format!("redirect target: {denial}")));
                }
                if next.origin() != out.url.origin() {
                    out.headers.retain(|(k, _)| {
                        !k.eq_ignore_ascii_case("authorization")
                            && !k.eq_ignore_ascii_case("cookie")
                            && injected.as_deref().is_none_or(|i| !k.eq_ignore_ascii_case(i))
                    });
                }
                if resp.status == 303 || ((resp.status == 301 || resp.status == 302) && out.method == "POST") {
                    out.method = "GET".into();
                    out.body = None;
                }
                out.url = next;
                continue;
            }
            return Ok(Response { status: resp.status, headers: resp.headers, body: resp.body });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a breaker counts (5xx but 501, timeouts, connection errors),
    /// what it ignores (TLS, size, policy), per tenant, and off at 0.
    #[test]
    fn breakers_count_failures_per_tenant_and_can_be_off() {
        let resp = |status| Ok(InboundResponse { status, headers: vec![], body: vec![] });
        assert!(matches!(health(&resp(503)), Health::Down));
        assert!(matches!(health(&resp(501)), Health::Up));
        assert!(matches!(health(&resp(404)), Health::Up));
        assert!(matches!(health(&Err(TransportFailure::Timeout)), Health::Down));
        assert!(matches!(health(&Err(TransportFailure::Tls("x".into()))), Health::Unknown));
        assert!(matches!(health(&Err(TransportFailure::Denied("x".into()))), Health::Unknown));

        let limits = HttpLimits { breaker_failures: 2, breaker_open: Duration::from_secs(60), ..HttpLimits::default() };
        let b = Breakers::default();
        let o = "https://pc:9440";
        b.report("t1", o, &limits, Health::Down);
        b.report("t1", o, &limits, Health::Unknown);
        assert!(b.admit("t1", o, &limits).is_ok(), "one failure, and an unknown that does not count");
        b.report("t1", o, &limits, Health::Down);
        let refused = b.admit("t1", o, &limits).unwrap_err();
        assert!(refused.starts_with("circuit open for https://pc:9440: 2 consecutive failures"), "{refused}");
        assert!(b.admit("t2", o, &limits).is_ok(), "another tenant's breaker");
        assert!(b.admit("t1", "https://other:9440", &limits).is_ok(), "another origin's breaker");
        let off = HttpLimits { breaker_failures: 0, ..limits };
        for _ in 0..5 {
            b.report("t3", o, &off, Health::Down);
        }
        assert!(b.admit("t3", o, &off).is_ok());
    }

    /// TLS failures are told by rustls's error type, also when wrapped in
    /// io::Errors as hyper-util and tokio-rustls wrap it.
    #[test]
    fn tls_errors_are_found_by_type() {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        let outer = std::io::Error::other(inner);
        assert!(holds::<rustls::Error>(&outer));
        assert!(!holds::<rustls::Error>(&std::io::Error::other("certificate tls handshake")), "words are not types");
    }

    /// A caller with a new tenant per call cannot grow the table: breakers
    /// that know nothing go first, an open one stays.
    #[test]
    fn the_breaker_table_is_bounded() {
        let limits = HttpLimits { breaker_failures: 1, breaker_open: Duration::from_secs(600), ..HttpLimits::default() };
        let b = Breakers::default();
        b.report("bad", "https://down:9440", &limits, Health::Down);
        for i in 0..3 * MAX_BREAKERS {
            let t = format!("tenant-{i}");
            let _ = b.admit(&t, "https://pc:9440", &limits);
            b.report(&t, "https://pc:9440", &limits, Health::Up);
        }
        assert!(b.len() <= MAX_BREAKERS, "{}", b.len());
        assert!(b.admit("bad", "https://down:9440", &limits).is_err(), "the open breaker was kept");
    }
}
