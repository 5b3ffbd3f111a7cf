//! What a collector talks to, as plain Rust traits: outbound HTTP
//! ([`Transport`]), records and logs out ([`Sink`]) and its key/value
//! [`State`]. In the component they are the host's imports; natively they
//! are whatever a test supplies (see [`crate::testing`]), so a collector's
//! logic builds and is tested without wasm.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::record::Record;

/// HTTP methods; mirrors WIT `http.method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A credential the host adds to a request from the run's secret, so it
/// never enters the sandbox; mirrors WIT `http.credential`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Basic` from the secret's `username` and `password`.
    Basic,
    /// `Authorization: Bearer` from the secret's `token`.
    Bearer,
    /// The secret's `api_key` in the named header.
    ApiKey(String),
}

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u32>,
    /// The credential the host adds (the guest never holds it).
    pub auth: Option<Credential>,
}

impl HttpRequest {
    /// A `GET` of `url` with no headers.
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest { method: Method::Get, url: url.into(), headers: Vec::new(), body: None, timeout_ms: None, auth: None }
    }

    /// A `POST` of a JSON body.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(serde_json::to_vec(body).unwrap_or_default()),
            timeout_ms: None,
            auth: None,
        }
    }

    /// The same request with a header added.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same request with the host adding `credential`.
    pub fn credential(mut self, credential: Credential) -> HttpRequest {
        self.auth = Some(credential);
        self
    }
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Transport failures; mirrors WIT `http-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    Denied(String),
    InvalidRequest(String),
    Timeout,
    Connection(String),
    Tls(String),
    TooLarge(u64),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Denied(m) => write!(f, "egress denied by host policy: {m}"),
            TransportError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            TransportError::Timeout => write!(f, "request timed out"),
            TransportError::Connection(m) => write!(f, "connection failed: {m}"),
            TransportError::Tls(m) => write!(f, "TLS failed: {m}"),
            TransportError::TooLarge(n) => write!(f, "response larger than the host limit of {n} bytes"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Outbound HTTP plus waiting (for retry back-off).
pub trait Transport {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
    /// Requests the host may perform concurrently; the answers in order.
    /// One after another unless the transport can do better (the host's
    /// `send-many`, world 0.3).
    fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        reqs.into_iter().map(|r| self.send(r)).collect()
    }
    /// Starts requests and returns at once; [`Transport::finish_many`]
    /// gives their answers, in order. The host's `start-many` (world
    /// 0.3.1) performs them while the guest goes on; a transport that
    /// cannot do better sends them when they are finished (the default).
    fn start_many(&mut self, reqs: Vec<HttpRequest>) -> Started {
        Started::deferred(reqs)
    }
    /// The answers of a batch [`Transport::start_many`] began, waiting for
    /// those not come yet. Dropping a [`Started`] instead cancels it.
    fn finish_many(&mut self, started: Started) -> Vec<Result<HttpResponse, TransportError>> {
        finish_deferred(self, started)
    }
    fn sleep_ms(&mut self, ms: u64);
}

/// A batch [`Transport::start_many`] began. Dropping it cancels what the
/// host has not answered yet.
pub struct Started(pub(crate) Begun);

pub(crate) enum Begun {
    /// Answered already.
    Answered(Vec<Result<HttpResponse, TransportError>>),
    /// To be sent when finished.
    Deferred(Vec<HttpRequest>),
    /// Being performed by the host.
    #[cfg(target_arch = "wasm32")]
    Host(crate::bindings::cloudforet::collector::http::Pending),
}

impl Started {
    /// A batch whose answers are known already.
    pub fn answered(answers: Vec<Result<HttpResponse, TransportError>>) -> Started {
        Started(Begun::Answered(answers))
    }

    /// A batch sent only when it is finished.
    pub fn deferred(reqs: Vec<HttpRequest>) -> Started {
        Started(Begun::Deferred(reqs))
    }

    /// The requests of a batch not sent yet ([`Started::deferred`]).
    pub fn requests(&self) -> Option<&[HttpRequest]> {
        match &self.0 {
            Begun::Deferred(r) => Some(r),
            _ => None,
        }
    }
}

/// [`Transport::finish_many`] of a transport that starts nothing itself:
/// a deferred batch goes out now through `send_many`, answered ones are
/// given as they are. Test doubles that override `finish_many` call it.
pub fn finish_deferred<T: Transport + ?Sized>(t: &mut T, started: Started) -> Vec<Result<HttpResponse, TransportError>> {
    match started.0 {
        Begun::Answered(a) => a,
        Begun::Deferred(reqs) => t.send_many(reqs),
        #[cfg(target_arch = "wasm32")]
        Begun::Host(p) => crate::bindings::cloudforet::collector::http::finish_many(p).into_iter().map(crate::guest::http_answer).collect(),
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(req)
    }
    fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        (**self).send_many(reqs)
    }
    fn start_many(&mut self, reqs: Vec<HttpRequest>) -> Started {
        (**self).start_many(reqs)
    }
    fn finish_many(&mut self, started: Started) -> Vec<Result<HttpResponse, TransportError>> {
        (**self).finish_many(started)
    }
    fn sleep_ms(&mut self, ms: u64) {
        (**self).sleep_ms(ms)
    }
}

/// Log levels; mirrors WIT `log.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Whether the consumer wants more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Proceed,
    Stop,
}

/// Where records and logs go.
pub trait Sink {
    /// Hands a batch to the host, which checks each record (a rejected one
    /// becomes an error resource) and answers whether to go on.
    fn emit(&mut self, batch: Vec<Record>) -> Flow;
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn emit(&mut self, batch: Vec<Record>) -> Flow {
        (**self).emit(batch)
    }
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        (**self).log(level, message, fields)
    }
}

/// The collector's key/value state (WIT `state`), scoped by the host to
/// this tenant and collector.
pub trait State {
    fn get(&mut self, key: &str) -> Result<Option<String>, String>;
    fn set(&mut self, key: &str, value: &str) -> Result<(), String>;
    fn delete(&mut self, key: &str) -> Result<(), String>;
}

impl<S: State + ?Sized> State for &mut S {
    fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        (**self).get(key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        (**self).set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), String> {
        (**self).delete(key)
    }
}

/// Typed values in [`State`], as JSON text.
pub trait StateExt: State {
    /// The value at `key`; `Ok(None)` when absent, an error when it is not a
    /// `T` (an older format: the caller decides whether to start over).
    fn get_json<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.get(key)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| format!("state {key:?} is not the expected JSON: {e}")),
        }
    }

    fn set_json<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), String> {
        let text = serde_json::to_string(value).map_err(|e| format!("state {key:?} cannot be written as JSON: {e}"))?;
        self.set(key, &text)
    }
}

impl<S: State + ?Sized> StateExt for S {}

/// No state: every `get` finds nothing and writes fail (a collector that
/// caches then always runs full).
pub struct NoState;

impl State for NoState {
    fn get(&mut self, _key: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn set(&mut self, _key: &str, _value: &str) -> Result<(), String> {
        Err("no state".into())
    }
    fn delete(&mut self, _key: &str) -> Result<(), String> {
        Ok(())
    }
}

/// What a call can reach: the host's imports in the component, doubles in
/// tests.
pub struct Io<'a> {
    pub http: &'a mut dyn Transport,
    pub sink: &'a mut dyn Sink,
    pub state: &'a mut dyn State,
}

impl Io<'_> {
    /// Emits `records` in one batch.
    pub fn emit(&mut self, records: Vec<Record>) -> Flow {
        self.sink.emit(records)
    }

    pub fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.sink.log(level, message, fields)
    }
}
