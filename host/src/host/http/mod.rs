//! `cloudforet:collector/http`: outbound HTTP backed by reqwest.
//!
//! # Layout
//! - this module: the per-run [`HttpCtx`] and the WIT functions (`send`,
//!   `send-authenticated`, `send-many`): the host's checks, redirects,
//!   concurrency caps, counting.
//! - [`transport`]: reqwest clients, the policy-checking resolver, the
//!   [`HttpTransport`] seam (cassettes plug in there) and
//!   [`TransportLayer`] (recorders wrap the run's transport there).
//! - [`origins`]: per (tenant, origin) circuit breakers and paces, shared
//!   by a runtime's runs.
//!
//! Order of checks for every request (each request of a batch, each
//! redirect hop): URL parse → egress policy → header and body validation →
//! request budget → the origin's breaker and pace → I/O. Redirects are not
//! followed by reqwest; they are followed here, each target checked against
//! the policy again (a granted host cannot bounce the guest elsewhere).
//! Response bodies are read in chunks and cut off at the size limit.

mod origins;
mod transport;

pub use origins::{MAX_ORIGINS, MAX_RETRY_AFTER, Origins};
pub use transport::{
    BlockedByPolicy, ClientPool, HttpTransport, InboundResponse, OutboundRequest, ReqwestTransport, TlsConfig, TransportFailure,
    TransportFuture, TransportLayer, blocked_by_policy,
};

use crate::bindings::current::cloudforet::collector::http::{self, Credential, HttpError, Method, Outbound, Request, Response};
use crate::egress::EgressPolicy;
use crate::limits::HttpLimits;
use crate::secret::{Credentials, Redactor};
use origins::health;
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use url::Url;

/// Per-run HTTP capability.
pub struct HttpCtx {
    pub(crate) transport: Arc<dyn HttpTransport>,
    pub(crate) policy: EgressPolicy,
    pub(crate) limits: HttpLimits,
    pub(crate) redactor: Arc<Redactor>,
    /// Requests sent (each redirect hop counts).
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
    /// The runtime's breakers and paces, and the tenant whose entries this
    /// run uses.
    pub(crate) origins: Origins,
    pub(crate) tenant: String,
    /// The last egress refusal (`origin: reason`), for the run's error.
    pub(crate) last_denial: Option<String>,
}

/// What one exchange did beside its answer, applied to the run's counts
/// once the call's exchanges are done.
#[derive(Default)]
struct Notes {
    circuit_refused: bool,
    denial: Option<String>,
    budget_exhausted: bool,
}

/// What the requests of one call share while they run concurrently.
struct Shared {
    /// The run's request count.
    requests: AtomicU32,
    /// Response bytes the call's answers may still hold.
    bytes_left: AtomicU64,
    /// The run's concurrency cap.
    in_flight: Semaphore,
    /// Per-origin caps, made as origins come up (at most the batch's hops).
    per_origin: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Shared {
    fn new(ctx: &HttpCtx) -> Shared {
        Shared {
            requests: AtomicU32::new(ctx.requests),
            bytes_left: AtomicU64::new(ctx.limits.max_response_bytes),
            in_flight: Semaphore::new(ctx.limits.max_in_flight.max(1) as usize),
            per_origin: Mutex::new(HashMap::new()),
        }
    }

    fn origin_gate(&self, origin: &str, limits: &HttpLimits) -> Arc<Semaphore> {
        let mut map = self.per_origin.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(origin.to_string()).or_insert_with(|| Arc::new(Semaphore::new(limits.max_in_flight_per_origin.max(1) as usize))).clone()
    }

    /// Takes one request from the run's budget; `false` when spent.
    fn take_request(&self, max: u32) -> bool {
        self.requests.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// Keeps a body of `n` bytes within the call's total; `false` if over.
    fn keep_bytes(&self, n: u64) -> bool {
        self.bytes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(n)).is_ok()
    }
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
        let mut answers = self.perform(vec![Outbound { request: req, credential: None }]).await?;
        Ok(answers.pop().unwrap_or_else(|| Err(HttpError::Connection("no answer".into()))))
    }

    async fn send_authenticated(&mut self, req: Request, credential: Credential) -> wasmtime::Result<Result<Response, HttpError>> {
        let mut answers = self.perform(vec![Outbound { request: req, credential: Some(credential) }]).await?;
        Ok(answers.pop().unwrap_or_else(|| Err(HttpError::Connection("no answer".into()))))
    }

    async fn send_many(&mut self, batch: Vec<Outbound>) -> wasmtime::Result<Vec<Result<Response, HttpError>>> {
        let max = self.limits.max_batch as usize;
        if batch.len() > max {
            let why = format!("a batch of {} requests is over the host's limit of {max}; nothing was sent", batch.len());
            *self.outcomes.entry("refused").or_insert(0) += batch.len() as u64;
            return Ok(batch.iter().map(|_| Err(HttpError::InvalidRequest(why.clone()))).collect());
        }
        self.perform(batch).await
    }
}

impl HttpCtx {
    /// The requests of one call, concurrently within the run's caps; the
    /// answers in order. The run's counts are updated once all are done.
    async fn perform(&mut self, batch: Vec<Outbound>) -> wasmtime::Result<Vec<Result<Response, HttpError>>> {
        let shared = Shared::new(self);
        let this = &*self;
        let exchanges = batch.into_iter().map(|o| {
            let shared = &shared;
            async move {
                let header = match o.credential.as_ref().map(|c| credential_header(&this.credentials, c)).transpose() {
                    Ok(h) => h,
                    Err(e) => return (Err(e), Notes::default()),
                };
                this.exchange(shared, o.request, header).await
            }
        });
        let done = futures::future::join_all(exchanges).await;
        self.requests = shared.requests.load(Ordering::SeqCst);
        Ok(done.into_iter().map(|(r, notes)| self.count(r, notes)).collect())
    }

    fn count(&mut self, r: Result<Response, HttpError>, notes: Notes) -> Result<Response, HttpError> {
        let class = match &r {
            Err(_) if notes.circuit_refused => "circuit_open",
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
        if let Some(d) = notes.denial {
            self.last_denial = Some(d);
        }
        self.budget_exhausted |= notes.budget_exhausted;
        r
    }

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

    /// Records an egress refusal; the line (`origin: reason`) for the run.
    fn deny(&self, url: &Url, reason: String, notes: &mut Notes) -> HttpError {
        let origin = origin_of(url);
        tracing::warn!(origin = %origin, reason = %reason, "egress denied");
        let line = format!("{origin}: {reason}");
        if let Some(d) = &self.denials {
            d.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
        }
        notes.denial = Some(line);
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

    /// One guest request: policy, header and body checks, then per hop the
    /// budget, the origin's breaker, pace and concurrency cap, and the
    /// transport, following redirects (each target re-checked; credentials
    /// and cookies dropped when the origin changes).
    async fn exchange(&self, shared: &Shared, req: Request, credential: Option<(String, String)>) -> (Result<Response, HttpError>, Notes) {
        let mut notes = Notes::default();
        let r = self.exchange_noting(shared, req, credential, &mut notes).await;
        (r, notes)
    }

    async fn exchange_noting(
        &self,
        shared: &Shared,
        req: Request,
        credential: Option<(String, String)>,
        notes: &mut Notes,
    ) -> Result<Response, HttpError> {
        let url = match Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return Err(HttpError::InvalidRequest(format!("invalid URL: {e}"))),
        };
        if let Err(denial) = self.policy.check(&url) {
            return Err(self.deny(&url, denial.to_string(), notes));
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
            let origin = origin_of(&out.url);
            let gate = shared.origin_gate(&origin, &self.limits);
            // The origin's slot first: a request waiting for its origin
            // holds no slot of the run that another origin could use.
            let (Ok(_origin_slot), Ok(_run_slot)) = (gate.acquire().await, shared.in_flight.acquire().await) else {
                return Err(HttpError::Connection("the host is shutting down".into()));
            };
            if !shared.take_request(self.limits.max_requests) {
                notes.budget_exhausted = true;
                return Err(HttpError::Denied(format!("run exceeded its budget of {} HTTP requests", self.limits.max_requests)));
            }
            let start = match self.origins.admit(&self.tenant, &origin, &self.limits) {
                Ok(at) => at,
                Err(why) => {
                    // Refused without I/O: not a request sent.
                    shared.requests.fetch_sub(1, Ordering::SeqCst);
                    notes.circuit_refused = true;
                    return Err(HttpError::Connection(why));
                }
            };
            tokio::time::sleep_until(start).await;
            let max_body = shared.bytes_left.load(Ordering::SeqCst).min(self.limits.max_response_bytes);
            let r = self.transport.perform(&out, timeout, max_body).await;
            self.origins.report(&self.tenant, &origin, &self.limits, health(&r, SystemTime::now()));
            let resp = match r {
                Ok(r) => r,
                Err(TransportFailure::TooLarge(_)) => return Err(HttpError::TooLarge(self.limits.max_response_bytes)),
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
                    return Err(self.deny(&next, format!("redirect target: {denial}"), notes));
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
            if !shared.keep_bytes(resp.body.len() as u64) {
                return Err(HttpError::TooLarge(self.limits.max_response_bytes));
            }
            return Ok(Response { status: resp.status, headers: resp.headers, body: resp.body });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::current::cloudforet::collector::http::Host as _;
    use std::sync::atomic::AtomicUsize;

    /// A transport that answers after `latency`, tracking how many
    /// requests are in flight per origin and overall, and when each began.
    #[derive(Default)]
    struct Recorder {
        latency: Duration,
        /// Status per path (200 when absent), and headers it adds.
        answers: HashMap<String, (u16, Vec<(String, String)>)>,
        body: Vec<u8>,
        now: AtomicUsize,
        peak: AtomicUsize,
        per_origin: Mutex<HashMap<String, (usize, usize)>>,
        seen: Mutex<Vec<(tokio::time::Instant, OutboundRequest)>>,
    }

    impl HttpTransport for Recorder {
        fn perform<'a>(&'a self, req: &'a OutboundRequest, _: Duration, max_body: u64) -> TransportFuture<'a> {
            Box::pin(async move {
                let origin = origin_of(&req.url);
                self.seen.lock().unwrap().push((tokio::time::Instant::now(), req.clone()));
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(n, Ordering::SeqCst);
                {
                    let mut m = self.per_origin.lock().unwrap();
                    let e = m.entry(origin.clone()).or_default();
                    e.0 += 1;
                    e.1 = e.1.max(e.0);
                }
                tokio::time::sleep(self.latency).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                self.per_origin.lock().unwrap().get_mut(&origin).unwrap().0 -= 1;
                if self.body.len() as u64 > max_body {
                    return Err(TransportFailure::TooLarge(max_body));
                }
                let (status, headers) = self.answers.get(req.url.path()).cloned().unwrap_or((200, vec![]));
                Ok(InboundResponse { status, headers, body: self.body.clone() })
            })
        }
    }

    fn ctx(transport: Arc<Recorder>, limits: HttpLimits) -> HttpCtx {
        let grants = ["https://a.example:9440", "https://b.example:9440"].iter().map(|g| crate::egress::Grant::parse(g).unwrap()).collect();
        let secret = crate::secret::Secret::new(serde_json::json!({"username": "admin", "password": "hunter2"})).unwrap();
        HttpCtx {
            transport,
            policy: EgressPolicy::new(grants),
            limits,
            redactor: secret.redactor().clone(),
            requests: 0,
            budget_exhausted: false,
            denials: None,
            credentials: secret.credentials(),
            outcomes: Default::default(),
            origins: Origins::default(),
            tenant: "t".into(),
            last_denial: None,
        }
    }

    fn get(url: &str, credential: Option<Credential>) -> Outbound {
        Outbound { request: Request { method: Method::Get, url: url.into(), headers: vec![], body: None, timeout_ms: None }, credential }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
    }

    /// A batch runs concurrently up to the run's cap and the per-origin
    /// cap, answers in order, and counts every request.
    #[test]
    fn a_batch_runs_within_the_run_and_origin_caps() {
        rt().block_on(async {
            let t = Arc::new(Recorder { latency: Duration::from_millis(100), ..Default::default() });
            let limits = HttpLimits { max_in_flight: 6, max_in_flight_per_origin: 4, ..HttpLimits::default() };
            let mut h = ctx(t.clone(), limits);
            let batch: Vec<Outbound> = (0..24)
                .map(|i| get(&format!("https://{}.example:9440/page/{i}", if i < 16 { "a" } else { "b" }), None))
                .collect();
            let started = tokio::time::Instant::now();
            let answers = h.send_many(batch).await.unwrap();
            let took = started.elapsed();
            assert_eq!(answers.len(), 24);
            assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status == 200)));
            let seen = t.seen.lock().unwrap();
            assert_eq!(seen.len(), 24);
            assert_eq!(t.peak.load(Ordering::SeqCst), 6, "the run's cap");
            let per_origin = t.per_origin.lock().unwrap();
            // a's 16 wait for its 4 slots without holding the run's; b
            // uses the run's other 2.
            assert_eq!(per_origin["https://a.example:9440"].1, 4, "{per_origin:?}");
            assert_eq!(per_origin["https://b.example:9440"].1, 2, "{per_origin:?}");
            // a: 16 requests 4 at a time, 100 ms each.
            assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(500), "{took:?}");
            assert_eq!(h.requests, 24);
            assert_eq!(h.outcomes.get("2xx"), Some(&24));
        });
    }

    /// Each request of a batch gets every check `send` applies: the
    /// egress policy, headers, credentials from the secret; one refusal
    /// does not fail the others.
    #[test]
    fn every_request_of_a_batch_is_checked() {
        rt().block_on(async {
            let t = Arc::new(Recorder::default());
            let mut h = ctx(t.clone(), HttpLimits::default());
            let mut bad_header = get("https://a.example:9440/h", None);
            bad_header.request.headers.push(("Host".into(), "evil".into()));
            let batch = vec![
                get("https://a.example:9440/ok", Some(Credential::Basic)),
                get("https://evil.example/steal", Some(Credential::Basic)),
                bad_header,
                get("https://b.example:9440/token", Some(Credential::Bearer)),
                get("not a url", None),
            ];
            let answers = h.send_many(batch).await.unwrap();
            assert!(answers[0].is_ok());
            assert!(matches!(&answers[1], Err(HttpError::Denied(_))), "{:?}", answers[1]);
            assert!(matches!(&answers[2], Err(HttpError::InvalidRequest(m)) if m.contains("set by the host")));
            assert!(matches!(&answers[3], Err(HttpError::InvalidRequest(m)) if m.contains("'token'")), "{:?}", answers[3]);
            assert!(matches!(&answers[4], Err(HttpError::InvalidRequest(_))));
            let seen = t.seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "only the good request went out");
            assert!(seen[0].1.header("authorization").is_some_and(|v| v.starts_with("Basic ")));
            assert_eq!(h.requests, 1);
            assert!(h.last_denial.as_deref().is_some_and(|d| d.starts_with("https://evil.example")));
            assert_eq!((h.outcomes.get("denied"), h.outcomes.get("error")), (Some(&1), Some(&3)));
        });
    }

    /// The request budget holds across a batch: past it, requests are
    /// refused without I/O and the run is marked for the limit error.
    #[test]
    fn the_request_budget_holds_across_a_batch() {
        rt().block_on(async {
            let t = Arc::new(Recorder::default());
            let mut h = ctx(t.clone(), HttpLimits { max_requests: 5, ..HttpLimits::default() });
            let answers = h.send_many((0..8).map(|i| get(&format!("https://a.example:9440/{i}"), None)).collect()).await.unwrap();
            assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 5);
            assert_eq!(answers.iter().filter(|a| matches!(a, Err(HttpError::Denied(m)) if m.contains("budget of 5"))).count(), 3);
            assert_eq!(t.seen.lock().unwrap().len(), 5);
            assert!(h.budget_exhausted);
        });
    }

    /// A batch over the host's limit is refused whole, nothing sent.
    #[test]
    fn an_oversized_batch_is_refused_whole() {
        rt().block_on(async {
            let t = Arc::new(Recorder::default());
            let mut h = ctx(t.clone(), HttpLimits { max_batch: 3, ..HttpLimits::default() });
            let answers = h.send_many((0..4).map(|i| get(&format!("https://a.example:9440/{i}"), None)).collect()).await.unwrap();
            assert_eq!(answers.len(), 4);
            assert!(answers.iter().all(|a| matches!(a, Err(HttpError::InvalidRequest(m)) if m.contains("limit of 3"))));
            assert!(t.seen.lock().unwrap().is_empty());
            assert_eq!(h.requests, 0);
            assert_eq!(h.outcomes.get("refused"), Some(&4), "counted for cf_host_http_requests_total");
        });
    }

    /// The answers of one call together stay within the response size
    /// limit: the host never holds more than that for the guest.
    #[test]
    fn a_batchs_answers_stay_within_the_response_limit() {
        rt().block_on(async {
            let t = Arc::new(Recorder { body: vec![b'x'; 400], ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits { max_response_bytes: 1000, max_in_flight: 1, ..HttpLimits::default() });
            let answers = h.send_many((0..4).map(|i| get(&format!("https://a.example:9440/{i}"), None)).collect()).await.unwrap();
            assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 2);
            assert!(answers[2..].iter().all(|a| matches!(a, Err(HttpError::TooLarge(1000)))), "{answers:?}");
        });
    }

    /// A 429 with `Retry-After` holds the origin for the whole run (and
    /// the tenant's other runs), then paces it; the other origin goes on.
    #[test]
    fn retry_after_slows_the_whole_origin() {
        rt().block_on(async {
            let answers = HashMap::from([("/busy".to_string(), (429, vec![("Retry-After".to_string(), "2".to_string())]))]);
            let t = Arc::new(Recorder { latency: Duration::from_millis(10), answers, ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits::default());
            let first = h.send_many(vec![get("https://a.example:9440/busy", None)]).await.unwrap();
            assert_eq!(first[0].as_ref().unwrap().status, 429, "the guest sees the answer");
            let after_429 = tokio::time::Instant::now();
            let batch = (0..4).map(|i| get(&format!("https://a.example:9440/{i}"), None)).chain([get("https://b.example:9440/x", None)]).collect();
            let answers = h.send_many(batch).await.unwrap();
            assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status == 200)));
            let seen = t.seen.lock().unwrap();
            let starts: Vec<_> = seen[1..].iter().filter(|(_, r)| r.url.host_str() == Some("a.example")).map(|(at, _)| *at).collect();
            let b_start = seen.iter().find(|(_, r)| r.url.host_str() == Some("b.example")).unwrap().0;
            assert!(b_start < after_429 + Duration::from_millis(100), "another origin is not held");
            assert!(starts.iter().all(|s| *s >= after_429 + Duration::from_millis(1990)), "held by Retry-After");
            let mut gaps: Vec<_> = starts.windows(2).map(|w| w[1] - w[0]).collect();
            gaps.sort();
            assert!(gaps[0] >= Duration::from_millis(500), "then paced: {gaps:?}");
            drop(seen);
            assert!(h.origins.rate("t", "https://a.example:9440").is_some());
            assert!(h.origins.rate("t", "https://b.example:9440").is_none());
        });
    }

    /// `send` and `send-authenticated` are one-request batches: same
    /// checks, and a redirect to another origin drops the credential.
    #[test]
    fn a_redirect_elsewhere_drops_the_credential() {
        rt().block_on(async {
            let answers = HashMap::from([(
                "/moved".to_string(),
                (302, vec![("Location".to_string(), "https://b.example:9440/here".to_string())]),
            )]);
            let t = Arc::new(Recorder { answers, ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits::default());
            let r = h.send_authenticated(get("https://a.example:9440/moved", None).request, Credential::Basic).await.unwrap();
            assert_eq!(r.unwrap().status, 200);
            let seen = t.seen.lock().unwrap();
            assert_eq!(seen.len(), 2);
            assert!(seen[0].1.header("authorization").is_some());
            assert!(seen[1].1.header("authorization").is_none());
            assert_eq!(h.requests, 2, "each hop counts");
        });
    }
}
