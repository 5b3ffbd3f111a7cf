//! The Prism Central client every request goes through: collection, cost
//! data and metrics alike.
//!
//! - [`Client::call`]: one request with the retry policy. 429 (honouring
//!   `Retry-After`), 5xx, timeouts, connection errors and unparsable (e.g.
//!   truncated) bodies are retried with exponential back-off; 401, 403 and
//!   the host's refusals end the whole call ([`CallError::Fatal`]); a 404 is
//!   the caller's to interpret ([`CallError::NotFound`], the gateway's or a
//!   service's); any other answer loses the request ([`CallError::Failed`]).
//!   Error bodies are understood ([`crate::server_error`]); every message
//!   names the request (method and path), the HTTP status and what the
//!   server said.
//! - the mapping of HTTP statuses to the guest's [`Error`]: 400, 422 and
//!   other 4xx → invalid argument; 401 → unauthenticated; 403 → permission
//!   denied; 404 → not found; 409 and 412 → unavailable, not retried (a
//!   read refused for the server's current state, a conflict or an unmet
//!   precondition, is no fault of the request and may pass in a later run,
//!   but not seconds later); 429 and 5xx → unavailable after the retries
//!   (a 429 spends one of [`MAX_THROTTLED_RETRIES`], anything else one of
//!   option `max_retries`); timeouts → timeout.
//! - paging: v3 lists (`POST`, `offset`/`length`, until `total_matches`),
//!   v4 lists (`GET`, `$page`/`$limit`, until `totalAvailableResults` or a
//!   short page: [`Client::page`], [`Client::get_all`]) and the v3 groups
//!   API (`group_member_offset`/`group_member_count`: [`Client::groups`]),
//!   Prism Element v2.0 lists (`GET`, `offset`/`length` or `page`/`count`:
//!   [`crate::v2`]);
//!   [`total_keeps_changing`] bounds a list whose total keeps moving.

use crate::config::{self, Options, Secret};
use crate::server_error::{self, Source};
use crate::v3::{Item, Kind, ListPage};
use crate::v4;
use crate::{Error, HttpRequest, HttpResponse, Level, Method, Started, Transport, TransportError};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where the client reports its retries.
pub trait Log {
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);
}

/// Retries go unreported (the monitoring calls have no log of their own).
pub struct Quiet;

impl Log for Quiet {
    fn log(&mut self, _level: Level, _message: &str, _fields: &[(&str, &str)]) {}
}

/// The REST API a list is read through (how it pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    V3,
    V4,
    /// Prism Element v2.0 ([`crate::v2`]).
    V2,
}

/// Why a request failed, after its retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The whole call must fail (credentials, permissions, host policy).
    Fatal(Error),
    /// This request is lost; the collection may go on.
    Failed(Error),
    /// HTTP 404 (never retried): from the gateway (no such API here), or
    /// from the service (it answered, and does not know what was asked).
    NotFound { gateway: bool, message: String },
}

impl CallError {
    /// As the guest's error.
    pub fn into_error(self) -> Error {
        match self {
            CallError::Fatal(e) | CallError::Failed(e) => e,
            CallError::NotFound { message, .. } => Error::NotFound(message),
        }
    }
}

/// What one answer means for its request.
enum Verdict<P> {
    Done(Result<P, CallError>),
    /// Worth another try, after the wait the server asked for (if any).
    Retry(Error, Option<u64>),
}

/// Logs one retry of `req`.
fn log_retry(log: &mut dyn Log, req: &Request, attempt: u32, wait: u64, err: &Error) {
    let at = req.at();
    let offset = req.offset.map(|o| o.to_string()).unwrap_or_default();
    let (attempt_s, wait_s) = (attempt.to_string(), wait.to_string());
    let what: &str = match req.kind {
        Some(k) => k.plural(),
        None => &at,
    };
    let mut fields = vec![("kind", what)];
    if req.offset.is_some() {
        fields.push(("offset", offset.as_str()));
    }
    fields.extend([("attempt", attempt_s.as_str()), ("wait_ms", wait_s.as_str()), ("reason", err.message())]);
    log.log(Level::Warn, if req.kind.is_some() { "retrying list call" } else { "retrying call" }, &fields);
}

/// One request.
pub struct Request {
    pub method: Method,
    /// Path and query, from the endpoint's base URL on.
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// The list it reads (for messages and logs), if it reads one.
    pub kind: Option<Kind>,
    /// The list offset it reads (for logs).
    pub offset: Option<u64>,
}

impl Request {
    pub fn get(path: String) -> Request {
        Request { method: Method::Get, path, body: None, kind: None, offset: None }
    }

    pub fn post(path: String, body: &Value) -> Request {
        Request { method: Method::Post, path, body: Some(body.to_string().into_bytes()), kind: None, offset: None }
    }

    /// The same request (method, path and body).
    pub fn same_as(&self, other: &Request) -> bool {
        self.method == other.method && self.path == other.path && self.body == other.body
    }

    /// `METHOD /path` (no query), for messages.
    fn at(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path.split('?').next().unwrap_or_default())
    }
}

/// What a list call asks for beyond a page.
pub enum Query {
    All,
    /// Entities changed at or after this time (incremental collection).
    ChangedSince(String),
    /// Only ids (v4 `$select=extId`).
    IdsOnly,
}

/// One page, whichever API.
pub struct Page {
    pub total: Option<u64>,
    pub entities: Vec<Item>,
}

/// Prism Central's REST APIs at one endpoint, with the collector's options.
pub struct Client<'a, T> {
    transport: &'a mut T,
    pub opts: Options,
    pub secret: Secret,
    /// Requests read ahead of their turn (see [`Client::read_ahead`]).
    ahead: Vec<Ahead>,
    /// Whether a request went out yet.
    sent_any: bool,
    /// Batches of requests read ahead that the host is performing while
    /// the collection goes on ([`Client::start_ahead`]), oldest first, at
    /// most [`MAX_STARTED`], each with its number.
    started: Vec<(u64, Started)>,
    next_started: u64,
}

/// Batches started ahead at once (the host allows 4 pending batches a
/// run by default): the window in flight and the next one.
pub const MAX_STARTED: usize = 2;

/// A request the collection will make later: still to send, being
/// performed by the host, or sent and its first answer kept until the
/// request's turn comes.
struct Ahead {
    req: HttpRequest,
    answer: Answer,
}

enum Answer {
    NotSent,
    /// In the started batch of this number.
    Started(u64),
    Kept(Result<HttpResponse, TransportError>),
}

/// The same request: method, URL and body.
fn same(a: &HttpRequest, b: &HttpRequest) -> bool {
    a.method == b.method && a.url == b.url && a.body == b.body
}

impl<'a, T: Transport> Client<'a, T> {
    pub fn new(transport: &'a mut T, opts: Options, secret: Secret) -> Self {
        Client { transport, opts, secret, ahead: Vec::new(), sent_any: false, started: Vec::new(), next_started: 0 }
    }

    /// Requests the collection will make later, in the order it will make
    /// them (the first pages of the kinds to come, a v4 list's other
    /// revisions): sent with [`Client::fetch_ahead`], or with a later batch
    /// that has room for them under option `page_concurrency` (one round
    /// trip under the host's per-origin cap), but not with the run's first
    /// request (after an outage it is the host breaker's one probe, and
    /// requests beside it would be refused) nor with requests sent again
    /// (the origin failed or was busy). When a request's turn comes
    /// ([`Client::call_many`]), its kept answer is its first attempt, judged
    /// and retried as if it had just come; a request not sent yet goes
    /// with its batch. Nothing is read ahead with `page_concurrency: 1`
    /// (one request at a time).
    pub fn read_ahead(&mut self, reqs: &[Request]) {
        if self.opts.page_concurrency <= 1 {
            return;
        }
        for req in reqs {
            let req = self.http_request(req);
            if !self.ahead.iter().any(|a| same(&a.req, &req)) {
                self.ahead.push(Ahead { req, answer: Answer::NotSent });
            }
        }
    }

    /// Sends the requests read ahead and not sent yet, as one batch (the
    /// host queues what is over its in-flight caps), at most
    /// [`config::MAX_PAGE_CONCURRENCY`] (the largest batch a window can
    /// be); the rest go with later batches.
    pub fn fetch_ahead(&mut self) {
        self.send_with_ahead(Vec::new(), config::MAX_PAGE_CONCURRENCY as usize, true);
    }

    /// `reqs` read ahead ([`Client::read_ahead`]) and sent at once
    /// without waiting for their answers: the host performs them while the
    /// collection goes on (world 0.3.1 `start-many`), and their answers are
    /// kept when their turn comes, or when another batch must be finished
    /// first. Requests read ahead of other lists and not sent yet go with
    /// them, up to option `page_concurrency` in all. At most
    /// [`MAX_STARTED`] batches are started at once (the oldest is finished
    /// first). Nothing is read ahead with `page_concurrency: 1`, nor with
    /// the run's first request.
    pub fn start_ahead(&mut self, reqs: &[Request]) {
        if self.opts.page_concurrency <= 1 || !self.sent_any {
            return;
        }
        self.read_ahead(reqs);
        let own: Vec<HttpRequest> = reqs.iter().map(|r| self.http_request(r)).collect();
        let waiting = |a: &Ahead| matches!(a.answer, Answer::NotSent);
        let mut pick: Vec<usize> = (0..self.ahead.len()).filter(|&i| waiting(&self.ahead[i]) && own.iter().any(|r| same(r, &self.ahead[i].req))).collect();
        let room = (self.opts.page_concurrency as usize).saturating_sub(pick.len());
        let others: Vec<usize> = (0..self.ahead.len()).filter(|&i| waiting(&self.ahead[i]) && !pick.contains(&i)).take(room).collect();
        pick.extend(others);
        if pick.is_empty() {
            return;
        }
        while self.started.len() >= MAX_STARTED {
            let oldest = self.started[0].0;
            self.finish_started(oldest);
        }
        let n = self.next_started;
        self.next_started += 1;
        let batch = pick.iter().map(|&i| self.ahead[i].req.clone()).collect();
        for &i in &pick {
            self.ahead[i].answer = Answer::Started(n);
        }
        self.started.push((n, self.transport.start_many(batch)));
    }

    /// Waits for the started batch `n` and keeps its answers with their
    /// requests (those forgotten meanwhile are dropped).
    fn finish_started(&mut self, n: u64) {
        let Some(at) = self.started.iter().position(|(m, _)| *m == n) else { return };
        let (_, started) = self.started.remove(at);
        let answers = self.transport.finish_many(started);
        let mut answers = answers.into_iter();
        for a in self.ahead.iter_mut().filter(|a| matches!(a.answer, Answer::Started(m) if m == n)) {
            a.answer = Answer::Kept(answers.next().unwrap_or_else(|| Err(TransportError::Connection("the host gave no answer".into()))));
        }
    }

    /// Drops what was read ahead for `reqs` (requests whose turn will not
    /// come, such as a v4 list's revisions older than the one it found);
    /// a started batch nothing is kept for any more is dropped, which
    /// cancels what the host has not answered yet.
    pub fn forget_ahead(&mut self, reqs: &[Request]) {
        let reqs: Vec<HttpRequest> = reqs.iter().map(|r| self.http_request(r)).collect();
        self.ahead.retain(|a| !reqs.iter().any(|r| same(&a.req, r)));
        let ahead = &self.ahead;
        self.started.retain(|(n, _)| ahead.iter().any(|a| matches!(a.answer, Answer::Started(m) if m == *n)));
    }

    /// `req`'s answer if it was read ahead (waiting for its started batch
    /// if need be); a request read ahead but not sent yet is sent now,
    /// with its batch.
    fn take_ahead(&mut self, req: &HttpRequest) -> Option<Result<HttpResponse, TransportError>> {
        let at = self.ahead.iter().position(|a| same(&a.req, req))?;
        if let Answer::Started(n) = self.ahead[at].answer {
            self.finish_started(n);
        }
        // Finishing keeps the entries in place: `at` still names it.
        match self.ahead.remove(at).answer {
            Answer::Kept(a) => Some(a),
            Answer::NotSent | Answer::Started(_) => None,
        }
    }

    /// Sends `batch` and, after it, up to `room` requests read ahead and
    /// not sent yet (none with the run's first request; an empty `batch`
    /// carries them only for [`Client::fetch_ahead`], `alone`); the
    /// answers of `batch`, those of the others kept.
    fn send_with_ahead(&mut self, mut batch: Vec<HttpRequest>, room: usize, alone: bool) -> Vec<Result<HttpResponse, TransportError>> {
        let own = batch.len();
        let carries = if own == 0 { alone } else { self.sent_any };
        let extra: Vec<usize> =
            if carries { (0..self.ahead.len()).filter(|&i| matches!(self.ahead[i].answer, Answer::NotSent)).take(room).collect() } else { Vec::new() };
        if own + extra.len() == 0 {
            return Vec::new();
        }
        self.sent_any = true;
        batch.extend(extra.iter().map(|&i| self.ahead[i].req.clone()));
        let mut answers = self.transport.send_many(batch);
        for (&i, answer) in extra.iter().zip(answers.drain(own.min(answers.len())..)) {
            self.ahead[i].answer = Answer::Kept(answer);
        }
        answers
    }

    /// `scheme://host:port` of Prism.
    pub fn base_url(&self) -> String {
        self.secret.endpoint.base_url()
    }

    /// One request with retries; a 2xx body goes through `parse`, and one
    /// that does not parse is retried like a 5xx.
    pub fn call<P>(&mut self, log: &mut dyn Log, req: &Request, parse: impl Fn(&[u8]) -> Result<P, String>) -> Result<P, CallError> {
        let answer = self.call_many(log, std::slice::from_ref(req), parse).pop();
        answer.unwrap_or_else(|| Err(CallError::Failed(Error::Internal("the host gave no answer".into()))))
    }

    /// Requests the host performs concurrently (at most its caps at once),
    /// each with the retry policy of [`Client::call`]; the answers in
    /// order. The requests to retry go again together after the longest
    /// wait any of them was told.
    ///
    /// A failure (5xx, timeout, connection, unreadable body) spends one of
    /// option `max_retries`; a 429, which says when to come back, spends
    /// one of [`MAX_THROTTLED_RETRIES`] instead: a busy Prism slows the
    /// collection down (the host paces the origin) rather than losing its
    /// pages.
    pub fn call_many<P>(&mut self, log: &mut dyn Log, reqs: &[Request], parse: impl Fn(&[u8]) -> Result<P, String>) -> Vec<Result<P, CallError>> {
        let mut answers: Vec<Option<Result<P, CallError>>> = reqs.iter().map(|_| None).collect();
        // Per request: failures, and 429s.
        let mut spent: Vec<(u32, u32)> = vec![(0, 0); reqs.len()];
        let mut todo: Vec<usize> = (0..reqs.len()).collect();
        let mut retrying = false;
        while !todo.is_empty() {
            // Answers read ahead stand for their requests' first attempt.
            let mut sent: Vec<Option<Result<HttpResponse, TransportError>>> = Vec::with_capacity(todo.len());
            let mut batch = Vec::new();
            for &i in &todo {
                let req = self.http_request(&reqs[i]);
                let kept = self.take_ahead(&req);
                if kept.is_none() {
                    batch.push(req);
                }
                sent.push(kept);
            }
            // Room left under `page_concurrency` carries requests read
            // ahead, on a batch's first attempt.
            let room = if retrying { 0 } else { (self.opts.page_concurrency as usize).saturating_sub(batch.len()) };
            let mut fresh = self.send_with_ahead(batch, room, false).into_iter();
            let sent = sent.into_iter().map(|kept| kept.or_else(|| fresh.next()).unwrap_or_else(|| Err(TransportError::Connection("the host gave no answer".into()))));
            let mut again = Vec::new();
            let mut wait = 0;
            for (&i, sent) in todo.iter().zip(sent) {
                let (failures, throttled) = &mut spent[i];
                match self.judge(&reqs[i], sent, &parse) {
                    Verdict::Done(r) => answers[i] = Some(r),
                    Verdict::Retry(err, told) => {
                        let over = match told {
                            Some(_) => *throttled >= MAX_THROTTLED_RETRIES,
                            None => *failures >= self.opts.max_retries,
                        };
                        let n = *failures + *throttled + 1;
                        if over {
                            answers[i] = Some(Err(CallError::Failed(match err {
                                Error::Unavailable(m) => Error::Unavailable(format!("{m} (after {n} attempts)")),
                                Error::Timeout(m) => Error::Timeout(format!("{m} (after {n} attempts)")),
                                other => other,
                            })));
                            continue;
                        }
                        let w = told.unwrap_or_else(|| backoff_ms(*failures));
                        match told {
                            Some(_) => *throttled += 1,
                            None => *failures += 1,
                        }
                        wait = wait.max(w);
                        log_retry(log, &reqs[i], n, w, &err);
                        again.push(i);
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            self.transport.sleep_ms(wait);
            todo = again;
            retrying = true;
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(CallError::Failed(Error::Internal("the host gave no answer".into())))))
            .collect()
    }

    /// `req` as the transport sends it.
    fn http_request(&self, req: &Request) -> HttpRequest {
        let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
        if req.body.is_some() {
            headers.insert(0, ("Content-Type".into(), "application/json".into()));
        }
        HttpRequest {
            method: req.method,
            url: format!("{}{}", self.base_url(), req.path),
            headers,
            body: req.body.clone(),
            timeout_ms: Some(self.opts.request_timeout_ms),
            auth: Some(self.secret.auth.into()),
        }
    }

    /// What an answer to `req` means: done (a result), or worth another try.
    fn judge<P>(&self, req: &Request, sent: Result<HttpResponse, TransportError>, parse: &impl Fn(&[u8]) -> Result<P, String>) -> Verdict<P> {
        let base = self.base_url();
        let at = req.at();
        let user = &self.secret.username;
        let fatal = |e| Verdict::Done(Err(CallError::Fatal(e)));
        match sent {
            Err(TransportError::Denied(m)) => fatal(Error::PermissionDenied(format!("{at}: egress denied by host policy: {m}"))),
            Err(TransportError::InvalidRequest(m)) => fatal(Error::Internal(format!("{at}: host rejected the request: {m}"))),
            Err(TransportError::Tls(m)) => fatal(Error::Unavailable(format!(
                "{at}: TLS to {base} failed: {m} (for a self-signed Prism certificate set option verify_ssl=false or ca_bundle)"
            ))),
            Err(TransportError::TooLarge(n)) => Verdict::Done(Err(CallError::Failed(Error::ResourceExhausted(format!(
                "{at}: response larger than the host limit of {n} bytes (lower option page_size)"
            ))))),
            Err(TransportError::Timeout) => {
                Verdict::Retry(Error::Timeout(format!("{at}: {base} did not answer within {} ms", self.opts.request_timeout_ms)), None)
            }
            Err(TransportError::Connection(m)) => Verdict::Retry(Error::Unavailable(format!("{at}: cannot reach {base}: {m}")), None),
            Ok(resp) => {
                let status = resp.status;
                if (200..300).contains(&status) {
                    return match parse(&resp.body) {
                        Ok(p) => Verdict::Done(Ok(p)),
                        Err(e) => Verdict::Retry(Error::Unavailable(format!("{at}: HTTP {status} with an invalid answer: {e}")), None),
                    };
                }
                let said = server_error::parse(&resp.body);
                let text = format!("{at}: HTTP {status}: {}", said.message);
                let failed = |e| Verdict::Done(Err(CallError::Failed(e)));
                match status {
                    401 => fatal(Error::Unauthenticated(format!("Prism rejected the credentials of user '{user}': {text}"))),
                    403 => fatal(Error::PermissionDenied(format!("user '{user}' is not allowed: {text}"))),
                    404 => Verdict::Done(Err(CallError::NotFound { gateway: said.source == Source::Gateway, message: text })),
                    409 | 412 => failed(Error::Unavailable(text)),
                    429 => Verdict::Retry(Error::Unavailable(text), Some(retry_after_ms(resp.header("retry-after")))),
                    500..=599 => Verdict::Retry(Error::Unavailable(text), None),
                    400..=499 => failed(Error::InvalidArgument(text)),
                    _ => failed(Error::Internal(format!("{at}: unexpected HTTP {status}: {}", said.message))),
                }
            }
        }
    }

    /// One request answered with JSON; a 404 is [`Error::NotFound`].
    pub fn json(&mut self, log: &mut dyn Log, req: &Request) -> Result<Value, Error> {
        self.call(log, req, json_body).map_err(CallError::into_error)
    }

    /// Every item of a v4 list at `path` (no query), page by page: for the
    /// small lists read whole (clusters and hosts to tell resources apart, a
    /// volume group's parts). A 404 stays [`CallError::NotFound`], so the
    /// caller can tell the gateway's from a service's.
    pub fn get_all(&mut self, log: &mut dyn Log, path: &str) -> Result<Vec<Value>, CallError> {
        let limit = v4::MAX_LIMIT;
        let mut all = Vec::new();
        for page in 0..1_000u32 {
            let body = self.call(log, &Request::get(format!("{path}?$page={page}&$limit={limit}")), json_body)?;
            let items = body.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
            let n = items.len();
            all.extend(items);
            let total = body.pointer("/metadata/totalAvailableResults").and_then(Value::as_u64);
            if n < limit as usize || total.is_some_and(|t| all.len() as u64 >= t) {
                break;
            }
        }
        Ok(all)
    }

    /// One page of a list: v3 `POST` with `offset`/`length`, or v4 `GET`
    /// with `$page`/`$limit` (`path` overrides the kind's list path). A v3
    /// 404 is a lost page; a v4 404 stays [`CallError::NotFound`] (the API
    /// may not be offered).
    #[expect(clippy::too_many_arguments, reason = "a page is named by all of them")]
    pub fn page(&mut self, log: &mut dyn Log, kind: Kind, api: Api, path: Option<&str>, q: &Query, offset: u64, length: u32) -> Result<Page, CallError> {
        let page = self.pages(log, kind, api, path, q, &[(offset, length)]).pop();
        page.unwrap_or_else(|| Err(CallError::Failed(Error::Internal("the host gave no answer".into()))))
    }

    /// The pages of a list at (offset, length), fetched concurrently (see
    /// [`Client::call_many`]); the answers in the same order. A v4 offset
    /// is a multiple of its length.
    pub fn pages(&mut self, log: &mut dyn Log, kind: Kind, api: Api, path: Option<&str>, q: &Query, pages: &[(u64, u32)]) -> Vec<Result<Page, CallError>> {
        let reqs: Vec<Request> = pages.iter().map(|&(offset, length)| page_request(kind, api, path, q, offset, length)).collect();
        self.call_many(log, &reqs, |b| parse_page(api, b))
            .into_iter()
            .map(|r| match r {
                // v3 and v2.0 lists are always there: a 404 loses the page.
                Err(CallError::NotFound { message, .. }) if api != Api::V4 => Err(CallError::Failed(Error::NotFound(message))),
                other => other,
            })
            .collect()
    }

    /// Every entity of `kind` through the v3 groups API, page by page
    /// (`body` builds a page's request, `parse` reads one into its total
    /// and its entities): uuid → what `parse` made of it. A page that comes
    /// back empty before the total fails the whole read (never a short list).
    pub fn groups(
        &mut self,
        log: &mut dyn Log,
        kind: Kind,
        body: impl Fn(u64, u32) -> Value,
        parse: impl Fn(&Value) -> Result<(u64, BTreeMap<String, Value>), String>,
    ) -> Result<BTreeMap<String, Value>, Error> {
        let length = self.opts.page_size;
        let mut all = BTreeMap::new();
        let mut offset = 0u64;
        let mut pages = 0u64;
        loop {
            let page = self.json(log, &Request::post(GROUPS_PATH.to_string(), &body(offset, length)))?;
            let (total, got) = parse(&page).map_err(Error::Unavailable)?;
            pages += 1;
            let n = got.len() as u64;
            if n == 0 && offset < total {
                return Err(Error::Unavailable(format!(
                    "the groups API returned no {} at offset {offset} although total_entity_count is {total}",
                    kind.plural()
                )));
            }
            all.extend(got);
            offset += n;
            if n == 0 || offset >= total {
                return Ok(all);
            }
            if total_keeps_changing(pages, total, length) {
                return Err(Error::Unavailable(format!("the groups API's total_entity_count for {} keeps changing", kind.plural())));
            }
        }
    }
}

/// The request of one list page.
pub fn page_request(kind: Kind, api: Api, path: Option<&str>, q: &Query, offset: u64, length: u32) -> Request {
    let mut req = match api {
        Api::V3 => {
            let mut body = json!({"kind": kind.api_kind(), "offset": offset, "length": length});
            if let Query::ChangedSince(since) = q {
                body["filter"] = json!(crate::incremental::v3_filter(since));
            }
            Request::post(path.unwrap_or(kind.list_path()).to_string(), &body)
        }
        Api::V4 => {
            let path = path.or(v4::list_path(kind)).unwrap_or_default();
            let extra = match q {
                Query::All => String::new(),
                Query::ChangedSince(since) => format!("&$filter={}", percent_encode(&crate::incremental::v4_filter(since))),
                Query::IdsOnly => "&$select=extId".to_string(),
            };
            Request::get(format!("{path}?$page={}&$limit={length}{extra}", offset / u64::from(length.max(1))))
        }
        // No change filters nor id-only reads: v2.0 is always read whole.
        Api::V2 => Request::get(crate::v2::page_path(kind, path, offset, length)),
    };
    req.kind = Some(kind);
    req.offset = Some(offset);
    req
}

/// A 2xx body as JSON.
pub fn json_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body).map_err(|e| format!("invalid or truncated JSON: {e}"))
}

/// The v3 groups API.
/// How many 429 answers one request may get before it fails: each says
/// when to come back, and the host holds the whole origin meanwhile, so
/// these are waits rather than failures (option `max_retries` counts
/// failures).
pub const MAX_THROTTLED_RETRIES: u32 = 10;

pub const GROUPS_PATH: &str = "/api/nutanix/v3/groups";

/// A 2xx list answer as a page.
pub fn parse_page(api: Api, body: &[u8]) -> Result<Page, String> {
    match api {
        Api::V3 => serde_json::from_slice::<ListPage>(body)
            .map(|p| Page { total: p.metadata.total_matches, entities: p.entities.into_iter().map(Item::Raw).collect() })
            .map_err(|e| format!("invalid or truncated JSON: {e}")),
        Api::V4 => v4::parse_page(body).map(|p| Page { total: p.total, entities: p.entities.into_iter().map(Item::Value).collect() }),
        Api::V2 => crate::v2::parse_page(body).map(|p| Page { total: p.total, entities: p.entities.into_iter().map(Item::Value).collect() }),
    }
}

/// A path segment: unreserved characters as they are, the rest as `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A list whose total keeps growing cannot keep the collector forever:
/// `pages` read so far against what `total` needs at `page_size`, with two
/// pages of slack.
pub fn total_keeps_changing(pages: u64, total: u64, page_size: u32) -> bool {
    pages > total / u64::from(page_size.max(1)) + 2
}

/// 250 ms, 500 ms, 1 s, 2 s ... capped at 8 s (the SDK's back-off).
pub use cloudforet_collector::client::backoff_ms;

/// `Retry-After` in seconds (HTTP dates are not used by Prism; they fall
/// back to 1 s), capped at [`config::MAX_RETRY_AFTER_MS`].
pub fn retry_after_ms(header: Option<&str>) -> u64 {
    cloudforet_collector::client::retry_after_ms(header, config::MAX_RETRY_AFTER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 entities at 100 per page take 10 pages; two more are slack,
    /// the 13th page means the total keeps moving.
    #[test]
    fn a_total_that_keeps_changing_is_bounded() {
        assert!(!total_keeps_changing(12, 1000, 100));
        assert!(total_keeps_changing(13, 1000, 100));
        assert!(!total_keeps_changing(2, 0, 100));
        assert!(total_keeps_changing(3, 0, 0), "a zero page size cannot divide by zero");
    }

    #[test]
    fn backoff_and_retry_after() {
        assert_eq!((0..7).map(backoff_ms).collect::<Vec<_>>(), vec![250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(retry_after_ms(Some("3")), 3000);
        assert_eq!(retry_after_ms(Some("0.5")), 500);
        assert_eq!(retry_after_ms(Some("86400")), config::MAX_RETRY_AFTER_MS);
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), 1000);
        assert_eq!(retry_after_ms(Some("-1")), 1000);
        assert_eq!(retry_after_ms(None), 1000);
    }

    /// Answers `statuses` in turn (429s with `Retry-After: 0`), then 200.
    struct Statuses(Vec<u16>, usize);

    impl Transport for Statuses {
        fn send(&mut self, _: HttpRequest) -> Result<HttpResponse, crate::TransportError> {
            let status = self.0.get(self.1).copied().unwrap_or(200);
            self.1 += 1;
            let headers = if status == 429 { vec![("retry-after".to_string(), "0".to_string())] } else { vec![] };
            Ok(HttpResponse { status, headers, body: b"{}".to_vec() })
        }
        fn sleep_ms(&mut self, _: u64) {}
    }

    fn get_with(statuses: Vec<u16>, options: &str) -> (Result<Value, Error>, usize) {
        let mut t = Statuses(statuses, 0);
        let opts = Options::parse(options).unwrap();
        let secret = Secret::parse(r#"{"host":"pc.example","username":"u","password":"p"}"#).unwrap();
        let mut c = Client::new(&mut t, opts, secret);
        let r = c.json(&mut Quiet, &Request::get("/api/x".into()));
        (r, t.1)
    }

    #[test]
    fn a_429_spends_its_own_budget_not_max_retries() {
        // max_retries 0: one 5xx loses the request, ten 429s do not.
        let (r, calls) = get_with(vec![500], r#"{"max_retries":0}"#);
        assert!(matches!(r, Err(Error::Unavailable(ref m)) if m.ends_with("(after 1 attempts)")), "{r:?}");
        assert_eq!(calls, 1);
        let (r, calls) = get_with(vec![429; MAX_THROTTLED_RETRIES as usize], r#"{"max_retries":0}"#);
        assert_eq!(r, Ok(serde_json::json!({})));
        assert_eq!(calls, MAX_THROTTLED_RETRIES as usize + 1);
        // One 429 more than the budget fails, naming every attempt.
        let (r, calls) = get_with(vec![429; MAX_THROTTLED_RETRIES as usize + 1], r#"{"max_retries":0}"#);
        assert!(matches!(r, Err(Error::Unavailable(ref m)) if m.contains("HTTP 429") && m.ends_with("(after 11 attempts)")), "{r:?}");
        assert_eq!(calls, MAX_THROTTLED_RETRIES as usize + 1);
        // Both budgets together: 429s between failures.
        let (r, _) = get_with(vec![429, 500, 429, 500, 429], r#"{"max_retries":2}"#);
        assert_eq!(r, Ok(serde_json::json!({})));
        let (r, calls) = get_with(vec![429, 500, 429, 500, 429, 500], r#"{"max_retries":2}"#);
        assert!(matches!(r, Err(Error::Unavailable(ref m)) if m.ends_with("(after 6 attempts)")), "{r:?}");
        assert_eq!(calls, 6);
    }
}
