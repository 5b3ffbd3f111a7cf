//! `cloudforet:collector/http`: outbound HTTP backed by reqwest.
//!
//! # Layout
//! - this module: the per-run [`HttpCtx`] and the WIT functions (`send`,
//!   `send-authenticated`, `send-many`, and since 0.3.1 `start-many`,
//!   `finish-many` and the `pending` resource): the host's checks,
//!   redirects, concurrency caps, counting. What a run's requests share
//!   (its caps, request count, the bytes held for the guest) is one
//!   `Run`, which the tasks of pending batches hold too.
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
//!
//! A pending batch (`start-many`) is a tokio task performing the batch
//! with the same code as `send-many`; the run keeps at most
//! [`HttpLimits::max_pending`] of them (one more ends the run with a
//! handle limit, nothing sent). Dropping one (by the guest, or at the
//! run's end) aborts its task: requests not sent are not sent, those in
//! flight are cancelled, and the slots and bytes they held are given back.
//! Its requests are counted for metrics then: those answered by their
//! outcome, the others as `aborted` (each once: the batch's [`Tally`]
//! closes when it is dropped).

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
use std::collections::{BTreeMap, HashMap};
use crate::error::{LimitExceeded, LimitKind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use wasmtime::component::Resource;
use url::Url;

/// Per-run HTTP capability.
pub struct HttpCtx {
    pub(crate) transport: Arc<dyn HttpTransport>,
    pub(crate) policy: EgressPolicy,
    pub(crate) limits: HttpLimits,
    pub(crate) redactor: Arc<Redactor>,
    /// Where denials are also recorded (test harness).
    pub(crate) denials: Option<Arc<Mutex<Vec<String>>>>,
    /// What `send-authenticated` may add, from the run's secret.
    pub(crate) credentials: Credentials,
    /// Requests by outcome (`2xx`..`5xx`, `error`, `denied`,
    /// `circuit_open`, `refused`, `aborted`) for metrics.
    pub(crate) outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// The runtime's breakers and paces, and the tenant whose entries this
    /// run uses.
    pub(crate) origins: Origins,
    pub(crate) tenant: String,
    /// The last egress refusal (`origin: reason`), for the run's error.
    pub(crate) last_denial: Option<String>,
    /// What the run's requests share, made on the first request.
    pub(crate) flight: Flight,
}

/// A run's requests in progress: the [`Run`] they share and the pending
/// batches (`start-many`) the guest holds.
#[derive(Default)]
pub struct Flight {
    run: Option<Arc<Run>>,
    /// At most [`HttpLimits::max_pending`], by handle.
    pending: HashMap<u32, PendingBatch>,
    next_handle: u32,
}

/// One answer as a request's task gives it: the answer, what happened
/// beside it, and the bytes of its body held in the run's allowance.
type Done = (Result<Response, HttpError>, Notes, Option<Held>);

/// A batch performed by a task of its own (`start-many`). Dropping it
/// aborts the task.
struct PendingBatch {
    task: tokio::task::JoinHandle<Vec<Done>>,
    /// The outcomes of its requests as they are answered.
    tally: Arc<Tally>,
    /// Requests in the batch.
    len: u64,
}

impl Drop for PendingBatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PendingBatch {
    /// Cancels the batch (the guest will not take its answers): the
    /// outcome of each request, those not answered yet `aborted`.
    fn cancel(self) -> BTreeMap<&'static str, u64> {
        self.task.abort();
        let mut counts = self.tally.close();
        let answered: u64 = counts.values().sum();
        if let Some(aborted) = self.len.checked_sub(answered).filter(|n| *n > 0) {
            *counts.entry("aborted").or_insert(0) += aborted;
        }
        counts
    }
}

/// The outcome classes of a pending batch's requests, noted as each is
/// answered, until the batch is cancelled ([`Tally::close`]): after that
/// nothing more is noted, so a request counts once, answered or aborted.
#[derive(Default)]
struct Tally(Mutex<(bool, BTreeMap<&'static str, u64>)>);

impl Tally {
    fn note(&self, class: &'static str) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !t.0 {
            *t.1.entry(class).or_insert(0) += 1;
        }
    }

    /// Closes the tally; what it noted.
    fn close(&self) -> BTreeMap<&'static str, u64> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.0 = true;
        std::mem::take(&mut t.1)
    }
}

/// Bytes of an answer held for the guest, given back to the run's
/// allowance when the answer is handed over or dropped.
struct Held {
    run: Arc<Run>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.run.bytes_left.fetch_add(self.bytes, Ordering::SeqCst);
    }
}

/// What one exchange did beside its answer, applied to the run's counts
/// once the call's exchanges are done.
#[derive(Default)]
struct Notes {
    circuit_refused: bool,
    /// Refused with its whole batch, over the batch limit.
    batch_refused: bool,
    denial: Option<String>,
}

/// What a run's requests share, whichever call sent them (`send`,
/// `send-many`, a pending batch's task): the run's settings, its caps, its
/// request count, and the response bytes it may still hold for the guest.
pub(crate) struct Run {
    transport: Arc<dyn HttpTransport>,
    policy: EgressPolicy,
    limits: HttpLimits,
    redactor: Arc<Redactor>,
    denials: Option<Arc<Mutex<Vec<String>>>>,
    credentials: Credentials,
    origins: Origins,
    tenant: String,
    /// Requests sent (each redirect hop counts).
    requests: AtomicU32,
    /// Set when the request budget ran out; the run ends with a limit error.
    budget_exhausted: AtomicBool,
    /// Response bytes the answers not yet handed to the guest may still
    /// hold (all calls and pending batches together).
    bytes_left: AtomicU64,
    /// The run's concurrency cap.
    in_flight: Semaphore,
    /// Per-origin caps, made as origins come up; those not in use are
    /// dropped once [`MAX_ORIGINS`] are kept.
    per_origin: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Run {
    fn origin_gate(&self, origin: &str) -> Arc<Semaphore> {
        let mut map = self.per_origin.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ORIGINS && !map.contains_key(origin) {
            map.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        let cap = self.limits.max_in_flight_per_origin.max(1) as usize;
        map.entry(origin.to_string()).or_insert_with(|| Arc::new(Semaphore::new(cap))).clone()
    }

    /// Takes one request from the run's budget; `false` when spent.
    fn take_request(&self, max: u32) -> bool {
        self.requests.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// Holds a body of `n` bytes within the run's allowance; `None` if
    /// over.
    fn keep_bytes(self: &Arc<Self>, n: u64) -> Option<Held> {
        self.bytes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(n)).ok()?;
        Some(Held { run: self.clone(), bytes: n })
    }

    /// The requests of one batch, concurrently within the run's caps; the
    /// answers in order. Each outcome is noted in `tally` (a pending
    /// batch's) as it comes.
    async fn perform(self: Arc<Self>, batch: Vec<Outbound>, tally: Option<Arc<Tally>>) -> Vec<Done> {
        let (this, tally) = (&self, tally.as_deref());
        let exchanges = batch.into_iter().map(|o| async move {
            let done = match o.credential.as_ref().map(|c| credential_header(&this.credentials, c)).transpose() {
                Ok(header) => this.exchange(o.request, header).await,
                Err(e) => (Err(e), Notes::default(), None),
            };
            if let Some(t) = tally {
                t.note(class(&done.0, &done.1));
            }
            done
        });
        futures::future::join_all(exchanges).await
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
        if let Some(refused) = self.refuse_oversized(&batch) {
            return Ok(self.count_all(refused));
        }
        self.perform(batch).await
    }

    async fn start_many(&mut self, batch: Vec<Outbound>) -> wasmtime::Result<Resource<http::Pending>> {
        let max = self.limits.max_pending as usize;
        if self.flight.pending.len() >= max {
            return Err(wasmtime::Error::new(LimitExceeded {
                kind: LimitKind::Handles,
                detail: format!("guest held more than {max} pending HTTP batches"),
            }));
        }
        let handle = self.flight.next_handle;
        self.flight.next_handle = handle.checked_add(1).ok_or_else(|| {
            wasmtime::Error::new(LimitExceeded { kind: LimitKind::Handles, detail: "guest started more than 2^32 HTTP batches".into() })
        })?;
        let tally = Arc::new(Tally::default());
        let len = batch.len() as u64;
        let task = match self.refuse_oversized(&batch) {
            Some(refused) => {
                refused.iter().for_each(|(r, notes, _)| tally.note(class(r, notes)));
                tokio::spawn(std::future::ready(refused))
            }
            None => tokio::spawn(self.run().perform(batch, Some(tally.clone()))),
        };
        self.flight.pending.insert(handle, PendingBatch { task, tally, len });
        Ok(Resource::new_own(handle))
    }

    async fn finish_many(&mut self, batch: Resource<http::Pending>) -> wasmtime::Result<Vec<Result<Response, HttpError>>> {
        let Some(mut pending) = self.flight.pending.remove(&batch.rep()) else {
            return Err(wasmtime::Error::msg("unknown pending HTTP batch"));
        };
        let done = (&mut pending.task).await.map_err(|e| wasmtime::Error::msg(format!("a pending HTTP batch failed: {e}")))?;
        Ok(self.count_all(done))
    }
}

impl http::HostPending for HttpCtx {
    async fn ready(&mut self, batch: Resource<http::Pending>) -> wasmtime::Result<bool> {
        match self.flight.pending.get(&batch.rep()) {
            Some(p) => Ok(p.task.is_finished()),
            None => Err(wasmtime::Error::msg("unknown pending HTTP batch")),
        }
    }

    async fn drop(&mut self, batch: Resource<http::Pending>) -> wasmtime::Result<()> {
        if let Some(pending) = self.flight.pending.remove(&batch.rep()) {
            self.count_cancelled(pending);
        }
        Ok(())
    }
}

impl HttpCtx {
    /// Requests sent by the run so far (each redirect hop counts).
    pub(crate) fn requests(&self) -> u32 {
        self.flight.run.as_ref().map_or(0, |r| r.requests.load(Ordering::SeqCst))
    }

    /// Whether the request budget ran out; the run ends with a limit error.
    pub(crate) fn budget_exhausted(&self) -> bool {
        self.flight.run.as_ref().is_some_and(|r| r.budget_exhausted.load(Ordering::SeqCst))
    }

    /// Pending batches the guest holds.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.flight.pending.len()
    }

    /// The run is over: cancels the pending batches the guest still holds
    /// and counts their requests (those not answered as `aborted`).
    pub(crate) fn cancel_pending(&mut self) {
        for (_, pending) in std::mem::take(&mut self.flight.pending) {
            self.count_cancelled(pending);
        }
    }

    /// Cancels a pending batch and counts its requests.
    fn count_cancelled(&mut self, pending: PendingBatch) {
        for (class, n) in pending.cancel() {
            *self.outcomes.entry(class).or_insert(0) += n;
        }
    }

    /// What the run's requests share, made on the first request.
    fn run(&mut self) -> Arc<Run> {
        if let Some(r) = &self.flight.run {
            return r.clone();
        }
        let run = Arc::new(Run {
            transport: self.transport.clone(),
            policy: self.policy.clone(),
            limits: self.limits.clone(),
            redactor: self.redactor.clone(),
            denials: self.denials.clone(),
            credentials: self.credentials.clone(),
            origins: self.origins.clone(),
            tenant: self.tenant.clone(),
            requests: AtomicU32::new(0),
            budget_exhausted: AtomicBool::new(false),
            bytes_left: AtomicU64::new(self.limits.max_response_bytes),
            in_flight: Semaphore::new(self.limits.max_in_flight.max(1) as usize),
            per_origin: Mutex::new(HashMap::new()),
        });
        self.flight.run = Some(run.clone());
        run
    }

    /// A batch larger than the host's limit: refused whole (an answer per
    /// request, counted `refused` when handed over), nothing sent.
    fn refuse_oversized(&self, batch: &[Outbound]) -> Option<Vec<Done>> {
        let max = self.limits.max_batch as usize;
        if batch.len() <= max {
            return None;
        }
        let why = format!("a batch of {} requests is over the host's limit of {max}; nothing was sent", batch.len());
        let refused = || (Err(HttpError::InvalidRequest(why.clone())), Notes { batch_refused: true, ..Notes::default() }, None);
        Some(batch.iter().map(|_| refused()).collect())
    }

    /// The requests of one call, concurrently within the run's caps; the
    /// answers in order. The run's counts are updated once all are done.
    async fn perform(&mut self, batch: Vec<Outbound>) -> wasmtime::Result<Vec<Result<Response, HttpError>>> {
        let done = self.run().perform(batch, None).await;
        Ok(self.count_all(done))
    }

    /// Answers handed to the guest: counted, and their bytes no longer
    /// held by the host.
    fn count_all(&mut self, done: Vec<Done>) -> Vec<Result<Response, HttpError>> {
        done.into_iter().map(|(r, notes, _held)| self.count(r, notes)).collect()
    }

    fn count(&mut self, r: Result<Response, HttpError>, notes: Notes) -> Result<Response, HttpError> {
        *self.outcomes.entry(class(&r, &notes)).or_insert(0) += 1;
        if let Some(d) = notes.denial {
            self.last_denial = Some(d);
        }
        r
    }
}

/// A request's outcome class for `cf_host_http_requests_total` (bounded:
/// `1xx`..`5xx`, `error`, `denied`, `circuit_open`, `refused`; `aborted`
/// is a cancelled pending batch's, [`PendingBatch::cancel`]).
fn class(r: &Result<Response, HttpError>, notes: &Notes) -> &'static str {
    match r {
        Err(_) if notes.batch_refused => "refused",
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
    }
}

impl Run {
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
    async fn exchange(self: &Arc<Self>, req: Request, credential: Option<(String, String)>) -> Done {
        let mut notes = Notes::default();
        let r = self.exchange_noting(req, credential, &mut notes).await;
        match r {
            Ok((resp, held)) => (Ok(resp), notes, Some(held)),
            Err(e) => (Err(e), notes, None),
        }
    }

    async fn exchange_noting(
        self: &Arc<Self>,
        req: Request,
        credential: Option<(String, String)>,
        notes: &mut Notes,
    ) -> Result<(Response, Held), HttpError> {
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
            let gate = self.origin_gate(&origin);
            // The origin's slot first: a request waiting for its origin
            // holds no slot of the run that another origin could use.
            let (Ok(_origin_slot), Ok(_run_slot)) = (gate.acquire().await, self.in_flight.acquire().await) else {
                return Err(HttpError::Connection("the host is shutting down".into()));
            };
            if !self.take_request(self.limits.max_requests) {
                self.budget_exhausted.store(true, Ordering::SeqCst);
                return Err(HttpError::Denied(format!("run exceeded its budget of {} HTTP requests", self.limits.max_requests)));
            }
            let start = match self.origins.admit(&self.tenant, &origin, &self.limits) {
                Ok(at) => at,
                Err(why) => {
                    // Refused without I/O: not a request sent.
                    self.requests.fetch_sub(1, Ordering::SeqCst);
                    notes.circuit_refused = true;
                    return Err(HttpError::Connection(why));
                }
            };
            tokio::time::sleep_until(start).await;
            let max_body = self.bytes_left.load(Ordering::SeqCst).min(self.limits.max_response_bytes);
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
            let Some(held) = self.keep_bytes(resp.body.len() as u64) else {
                return Err(HttpError::TooLarge(self.limits.max_response_bytes));
            };
            return Ok((Response { status: resp.status, headers: resp.headers, body: resp.body }, held));
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
        /// Requests answered (not cancelled while in flight).
        finished: AtomicUsize,
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
                self.finished.fetch_add(1, Ordering::SeqCst);
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
            denials: None,
            credentials: secret.credentials(),
            outcomes: Default::default(),
            origins: Origins::default(),
            tenant: "t".into(),
            last_denial: None,
            flight: Flight::default(),
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
            assert_eq!(h.requests(), 24);
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
            assert_eq!(h.requests(), 1);
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
            assert!(h.budget_exhausted());
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
            assert_eq!(h.requests(), 0);
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

    fn gets(origin: &str, n: usize) -> Vec<Outbound> {
        (0..n).map(|i| get(&format!("https://{origin}.example:9440/{i}"), None)).collect()
    }

    /// Statuses 200 + i for the paths `/i`, so the answers' order shows.
    fn numbered(n: u16) -> HashMap<String, (u16, Vec<(String, String)>)> {
        (0..n).map(|i| (format!("/{i}"), (200 + i, vec![]))).collect()
    }

    fn statuses(answers: &[Result<Response, HttpError>]) -> Vec<u16> {
        answers.iter().map(|a| a.as_ref().map_or(0, |r| r.status)).collect()
    }

    /// `start-many` returns at once; the batch goes on while the guest
    /// works, and `finish-many` gives the answers in order. Pending
    /// batches and `send-many` share the run's caps: two batches to one
    /// origin have no more in flight together than its cap.
    #[test]
    fn pending_batches_go_on_while_the_guest_works_within_the_runs_caps() {
        rt().block_on(async {
            let t = Arc::new(Recorder { latency: Duration::from_millis(100), answers: numbered(8), ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits { max_in_flight: 6, max_in_flight_per_origin: 4, ..HttpLimits::default() });
            let started = tokio::time::Instant::now();
            let p1 = h.start_many(gets("a", 8)).await.unwrap();
            let p2 = h.start_many(gets("a", 8)).await.unwrap();
            assert_eq!(started.elapsed(), Duration::ZERO, "start-many does not wait");
            assert!(!http::HostPending::ready(&mut h, Resource::new_borrow(p1.rep())).await.unwrap());
            // The guest works; meanwhile a `send-many` to the other origin
            // gets the run's 2 other slots only.
            let other = h.send_many(gets("b", 4)).await.unwrap();
            assert_eq!(statuses(&other), vec![200, 201, 202, 203]);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(http::HostPending::ready(&mut h, Resource::new_borrow(p1.rep())).await.unwrap());
            let before = tokio::time::Instant::now();
            let a1 = h.finish_many(p1).await.unwrap();
            let a2 = h.finish_many(p2).await.unwrap();
            assert_eq!(before.elapsed(), Duration::ZERO, "answered while the guest worked");
            let want: Vec<u16> = (200..208).collect();
            assert_eq!((statuses(&a1), statuses(&a2)), (want.clone(), want));
            assert_eq!(t.per_origin.lock().unwrap()["https://a.example:9440"].1, 4, "one origin cap for both batches");
            assert_eq!(t.peak.load(Ordering::SeqCst), 6, "one run cap for all calls");
            assert_eq!(h.requests(), 20);
            assert_eq!(h.outcomes.get("2xx"), Some(&20));
            assert_eq!(h.pending(), 0);
        });
    }

    /// A run holds at most `max_pending` batches: one more ends the run
    /// with a handle limit, nothing of it sent; a finished batch frees its
    /// place.
    #[test]
    fn pending_batches_are_capped() {
        rt().block_on(async {
            let t = Arc::new(Recorder { latency: Duration::from_millis(10), ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits { max_pending: 2, ..HttpLimits::default() });
            let p1 = h.start_many(gets("a", 1)).await.unwrap();
            let _p2 = h.start_many(gets("a", 1)).await.unwrap();
            let e = h.start_many(gets("b", 3)).await.unwrap_err();
            let limit = e.downcast_ref::<LimitExceeded>().expect("a limit");
            assert_eq!(limit.kind, LimitKind::Handles);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(t.seen.lock().unwrap().iter().all(|(_, r)| r.url.host_str() == Some("a.example")), "nothing of the refused batch sent");
            h.finish_many(p1).await.unwrap();
            assert!(h.start_many(gets("b", 1)).await.is_ok());
        });
    }

    /// A batch over the batch limit is refused whole through `start-many`
    /// too.
    #[test]
    fn an_oversized_pending_batch_is_refused_whole() {
        rt().block_on(async {
            let t = Arc::new(Recorder::default());
            let mut h = ctx(t.clone(), HttpLimits { max_batch: 3, ..HttpLimits::default() });
            let p = h.start_many(gets("a", 4)).await.unwrap();
            let answers = h.finish_many(p).await.unwrap();
            assert!(answers.iter().all(|a| matches!(a, Err(HttpError::InvalidRequest(m)) if m.contains("limit of 3"))));
            assert!(t.seen.lock().unwrap().is_empty());
            assert_eq!(h.outcomes, BTreeMap::from([("refused", 4)]), "counted once, as refused");
            // Dropped instead of finished: the same.
            let p = h.start_many(gets("a", 4)).await.unwrap();
            http::HostPending::drop(&mut h, p).await.unwrap();
            assert_eq!(h.outcomes, BTreeMap::from([("refused", 8)]));
        });
    }

    /// The requests of a pending batch the guest drops, or leaves pending
    /// at the run's end, are counted for metrics all the same: those
    /// answered by their outcome, those cut off (in flight or not sent
    /// yet) as `aborted`; each once.
    #[test]
    fn a_cancelled_pending_batchs_requests_are_counted() {
        rt().block_on(async {
            let answers = HashMap::from([("/1".to_string(), (404, vec![]))]);
            let t = Arc::new(Recorder { latency: Duration::from_millis(100), answers, ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits { max_in_flight: 2, ..HttpLimits::default() });
            // Dropped by the guest with 2 answered, 2 in flight, 2 waiting.
            let dropped = h.start_many(gets("a", 6)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            http::HostPending::drop(&mut h, dropped).await.unwrap();
            assert_eq!(h.outcomes, BTreeMap::from([("2xx", 1), ("4xx", 1), ("aborted", 4)]));
            assert_eq!(h.requests(), 4, "the request budget counts the 2 cut off in flight");
            // At the run's end, one batch answered but not taken and one
            // in flight.
            let answered = h.start_many(gets("b", 2)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(http::HostPending::ready(&mut h, Resource::new_borrow(answered.rep())).await.unwrap());
            let _cut = h.start_many(gets("b", 2)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            h.cancel_pending();
            assert_eq!(h.pending(), 0);
            // (`/1` answers 404 on every origin.)
            let want = BTreeMap::from([("2xx", 2), ("4xx", 2), ("aborted", 6)]);
            assert_eq!(h.outcomes, want);
            assert_eq!(h.requests(), 8);
            // Cancelled: nothing more is sent, answered or counted.
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!((t.seen.lock().unwrap().len(), t.finished.load(Ordering::SeqCst)), (8, 4));
            assert_eq!(h.outcomes, want);
        });
    }

    /// Answers held for the guest, of all pending batches together, stay
    /// within the response size limit; a dropped batch gives its bytes,
    /// and its slots, back, and what it had not sent is never sent.
    #[test]
    fn a_dropped_pending_cancels_and_gives_back_what_it_held() {
        rt().block_on(async {
            let t = Arc::new(Recorder { latency: Duration::from_millis(100), body: vec![b'x'; 400], ..Default::default() });
            let limits = HttpLimits { max_response_bytes: 1000, max_in_flight: 2, ..HttpLimits::default() };
            let mut h = ctx(t.clone(), limits);
            let held = h.start_many(gets("a", 2)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            // 800 bytes are held for the guest: 200 left.
            let answers = h.send_many(gets("a", 1)).await.unwrap();
            assert!(matches!(answers[0], Err(HttpError::TooLarge(1000))), "{answers:?}");
            http::HostPending::drop(&mut h, held).await.unwrap();
            let answers = h.send_many(gets("a", 2)).await.unwrap();
            assert_eq!(statuses(&answers), vec![200, 200], "the dropped batch's bytes are back");
            drop(answers);
            // A batch dropped with requests in flight and waiting.
            let sent = t.seen.lock().unwrap().len();
            let cut = h.start_many(gets("a", 6)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let finished = t.finished.load(Ordering::SeqCst);
            http::HostPending::drop(&mut h, cut).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(t.seen.lock().unwrap().len(), sent + 2, "the 4 waiting were never sent");
            assert_eq!(t.finished.load(Ordering::SeqCst), finished, "the 2 in flight were cancelled");
            // Their run slots are free: 2 requests in one round trip.
            let before = tokio::time::Instant::now();
            assert_eq!(statuses(&h.send_many(gets("a", 2)).await.unwrap()), vec![200, 200]);
            assert!(before.elapsed() < Duration::from_millis(150), "{:?}", before.elapsed());
            assert_eq!(h.pending(), 0);
        });
    }

    /// A run that ends (its store, and so its HTTP context, dropped) with
    /// batches pending cancels them.
    #[test]
    fn a_runs_end_cancels_its_pending_batches() {
        rt().block_on(async {
            let t = Arc::new(Recorder { latency: Duration::from_millis(100), ..Default::default() });
            let mut h = ctx(t.clone(), HttpLimits { max_in_flight: 2, ..HttpLimits::default() });
            let _p = h.start_many(gets("a", 6)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(h);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(t.seen.lock().unwrap().len(), 2);
            assert_eq!(t.finished.load(Ordering::SeqCst), 0);
        });
    }

    /// The request budget holds across pending batches.
    #[test]
    fn the_request_budget_holds_across_pending_batches() {
        rt().block_on(async {
            let t = Arc::new(Recorder::default());
            let mut h = ctx(t.clone(), HttpLimits { max_requests: 5, ..HttpLimits::default() });
            let p1 = h.start_many(gets("a", 4)).await.unwrap();
            let p2 = h.start_many(gets("b", 4)).await.unwrap();
            let mut answers = h.finish_many(p1).await.unwrap();
            answers.extend(h.finish_many(p2).await.unwrap());
            assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 5);
            assert_eq!(answers.iter().filter(|a| matches!(a, Err(HttpError::Denied(m)) if m.contains("budget of 5"))).count(), 3);
            assert_eq!(t.seen.lock().unwrap().len(), 5);
            assert!(h.budget_exhausted());
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
            assert_eq!(h.requests(), 2, "each hop counts");
        });
    }
}
