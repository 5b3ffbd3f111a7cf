//! Cassettes: recorded or hand-written HTTP interactions, replayed to a
//! guest instead of the network, and the recorder that writes them.
//!
//! File format (`<dir>/cassette.json`):
//!
//! ```json
//! {
//!   "version": 1,
//!   "match": "key",
//!   "options": {"page_size": 100},
//!   "interactions": [
//!     {"request": {"method": "POST", "path": "/api/nutanix/v3/vms/list", "body": {"kind": "vm", "offset": 0, "length": 500}},
//!      "response": {"status": 200, "headers": [["content-type", "application/json"]], "body": {"entities": []}}},
//!     {"request": {"method": "POST", "path": "/api/nutanix/v3/hosts/list"}, "failure": "timeout"}
//!   ]
//! }
//! ```
//!
//! - A request matches an interaction on method, path with query, and body
//!   (JSON bodies compare as JSON; an interaction without `body` matches any
//!   body). The origin is not compared: a replay runs against whatever host
//!   the run's secret names. Each interaction answers once, in file order
//!   among those that match; `"match": "ordered"` also requires the requests
//!   to come in file order.
//! - Bodies are stored as JSON when they parse, else as text
//!   (`"body_text"`, e.g. a truncated answer), else base64 (`"body_base64"`).
//! - `failure` instead of `response`: `"timeout"` or `"connection"`.
//! - Recorded cassettes never hold credentials: `Authorization`, cookies and
//!   API-key headers are replaced by `[redacted]` and secret values are
//!   redacted from URLs, headers, bodies and options.
//! - A cassette of a failed `serve` run (`serve --record-failures`) also
//!   holds the state the run read (`"state"`: key → value, which a replay
//!   presets), says which call it was (`"call": "verify"`; absent: `collect`), how
//!   the run failed (`"failure"`: the gRPC code and message, or the error
//!   resources of a run that finished), and, when the recording hit its
//!   byte budget, `"truncated"`: `{"max_bytes", "dropped"}`, the number of
//!   exchanges after the budget that were not kept.

use crate::host::http::{HttpTransport, InboundResponse, OutboundRequest, TransportFailure, TransportFuture, TransportLayer};
use crate::host::state::{BackendError, Namespace, PutError, StateBackend};
use crate::secret::Redactor;
use std::collections::{BTreeMap, HashSet};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const FILE_NAME: &str = "cassette.json";
const FORMAT_VERSION: u32 = 1;
const SENSITIVE_HEADERS: &[&str] = &["authorization", "cookie", "set-cookie", "x-ntnx-api-key", "proxy-authorization"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Any unused interaction with the same key answers.
    #[default]
    Key,
    /// Requests must come in the cassette's order.
    Ordered,
}

/// A body as stored: JSON, text or base64.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl StoredBody {
    pub fn from_bytes(bytes: &[u8]) -> StoredBody {
        if bytes.is_empty() {
            return StoredBody::default();
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Ok(v) => StoredBody { body: Some(v), ..StoredBody::default() },
                Err(_) => StoredBody { body_text: Some(text.to_string()), ..StoredBody::default() },
            },
            Err(_) => StoredBody {
                body_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                ..StoredBody::default()
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_none() && self.body_text.is_none() && self.body_base64.is_none()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        if let Some(v) = &self.body {
            return Ok(v.to_string().into_bytes());
        }
        if let Some(t) = &self.body_text {
            return Ok(t.clone().into_bytes());
        }
        if let Some(b) = &self.body_base64 {
            return base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| format!("invalid body_base64: {e}"));
        }
        Ok(Vec::new())
    }

    /// Whether a request body matches this stored one.
    fn matches(&self, bytes: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        if let Some(v) = &self.body {
            return serde_json::from_slice::<Value>(bytes).is_ok_and(|b| &b == v);
        }
        self.to_bytes().is_ok_and(|b| b == bytes)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub method: String,
    /// Path and query, e.g. `/api/nutanix/v3/vms/list`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: StoredBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: StoredBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredFailure {
    Timeout,
    Connection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub request: StoredRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<StoredResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StoredFailure>,
}

/// The guest call a cassette replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordedCall {
    #[default]
    Collect,
    Verify,
    /// The cost data source's `get_data` (`cost-source.get-data`, with the
    /// cassette's task options).
    CostData,
    /// The monitoring data source's `get_data` (`metric-source.get-data`,
    /// with the cassette's `metric_query`).
    MetricData,
}

impl RecordedCall {
    pub fn name(self) -> &'static str {
        match self {
            RecordedCall::Collect => "collect",
            RecordedCall::Verify => "verify",
            RecordedCall::CostData => "cost-data",
            RecordedCall::MetricData => "metric-data",
        }
    }
}

/// How the recorded run failed (`serve --record-failures`); a replay is
/// expected to fail the same way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedFailure {
    /// The gRPC code of the run's error (`UNAUTHENTICATED`, ...); absent
    /// when the run finished, with error resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The error's message (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Error resources of a run that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_resources: Option<u64>,
    pub run_id: String,
    pub tenant: String,
    /// `name@version (digest)` of the plugin that ran.
    pub plugin: String,
    /// When the run ended (RFC 3339, UTC).
    pub at: String,
}

impl RecordedFailure {
    /// `CODE: message`, or `N error resources`.
    pub fn describe(&self) -> String {
        match (&self.code, self.error_resources) {
            (Some(code), _) => format!("{code}: {}", self.message.as_deref().unwrap_or_default()),
            (None, Some(n)) => format!("{n} error resources"),
            (None, None) => "failed".to_string(),
        }
    }
}

/// A recording cut at its byte budget: the exchanges after it are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    pub max_bytes: u64,
    /// Exchanges not kept.
    pub dropped: u64,
    /// State keys read but not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub state_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    pub version: u32,
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// Where it was recorded (origin only), for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_from: Option<String>,
    /// The options the recording ran with; a replay uses them unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
    /// The task options the recording ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_options: Option<Value>,
    /// The call replayed (absent: `collect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<RecordedCall>,
    /// What a `metric-data` call asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_query: Option<crate::runtime::MetricQuery>,
    /// How the recorded run failed, if it was recorded for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RecordedFailure>,
    /// Set when the recording hit its byte budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
    /// The endpoint fields of the recorded run's secret (`host`, `port`;
    /// never a credential): a replay's secret names the same endpoint, so
    /// the guest builds the same URLs and state keys (nothing is sent
    /// there: the cassette answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<serde_json::Map<String, Value>>,
    /// The state the recorded run read (key → value as it was before the
    /// run wrote it); a replay starts with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state: BTreeMap<String, String>,
    pub interactions: Vec<Interaction>,
}

impl Cassette {
    pub fn new(interactions: Vec<Interaction>) -> Cassette {
        Cassette {
            version: FORMAT_VERSION,
            match_mode: MatchMode::Key,
            recorded_from: None,
            options: None,
            task_options: None,
            call: None,
            metric_query: None,
            failure: None,
            truncated: None,
            endpoint: None,
            state: BTreeMap::new(),
            interactions,
        }
    }

    /// Reads `<dir>/cassette.json` (or the file itself when `path` is one).
    pub fn load(path: &Path) -> Result<Cassette, String> {
        let file = cassette_file(path);
        let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read cassette {}: {e}", file.display()))?;
        let c: Cassette =
            serde_json::from_str(&text).map_err(|e| format!("cassette {} is not valid: {e}", file.display()))?;
        if c.version != FORMAT_VERSION {
            return Err(format!("cassette {} has version {}, this host reads version {FORMAT_VERSION}", file.display(), c.version));
        }
        for (i, it) in c.interactions.iter().enumerate() {
            if it.response.is_some() == it.failure.is_some() {
                return Err(format!("cassette {} interaction {i}: needs exactly one of response or failure", file.display()));
            }
            if !it.request.path.starts_with('/') {
                return Err(format!("cassette {} interaction {i}: path must start with '/'", file.display()));
            }
        }
        Ok(c)
    }

    /// Writes `<dir>/cassette.json`, creating the directory.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(FILE_NAME);
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&file, text + "\n").map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(file)
    }
}

fn cassette_file(path: &Path) -> PathBuf {
    if path.is_dir() { path.join(FILE_NAME) } else { path.to_path_buf() }
}

fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A request the cassette could not answer, with what came closest.
#[derive(Clone, Debug, PartialEq)]
pub struct Unmatched {
    /// `METHOD /path`.
    pub request: String,
    /// Why nothing matched, with a diff against the closest interaction.
    pub diff: String,
}

/// Replays a cassette as an [`HttpTransport`].
pub struct Replayer {
    cassette: Cassette,
    state: Mutex<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    used: Vec<bool>,
    unmatched: Vec<Unmatched>,
}

impl Replayer {
    pub fn new(cassette: Cassette) -> Arc<Replayer> {
        let used = vec![false; cassette.interactions.len()];
        Arc::new(Replayer { cassette, state: Mutex::new(ReplayState { used, unmatched: Vec::new() }) })
    }

    /// The call the cassette replays.
    pub fn call(&self) -> RecordedCall {
        self.cassette.call.unwrap_or_default()
    }

    pub fn unmatched(&self) -> Vec<Unmatched> {
        self.lock().unmatched.clone()
    }

    /// `METHOD /path` of every interaction never used.
    pub fn unused(&self) -> Vec<String> {
        let st = self.lock();
        self.cassette
            .interactions
            .iter()
            .zip(&st.used)
            .filter(|(_, used)| !**used)
            .map(|(i, _)| format!("{} {}", i.request.method, i.request.path))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, req: &OutboundRequest) -> Result<InboundResponse, TransportFailure> {
        let path = path_and_query(&req.url);
        let body = req.body.as_deref().unwrap_or_default();
        let mut st = self.lock();
        let key_matches = |i: &Interaction| i.request.method == req.method && i.request.path == path;
        let candidate = self
            .cassette
            .interactions
            .iter()
            .enumerate()
            .filter(|(n, _)| !st.used[*n])
            .find(|(_, i)| key_matches(i) && i.request.body.matches(body))
            .map(|(n, _)| n);
        let first_unused = st.used.iter().position(|u| !u);
        let chosen = match (self.cassette.match_mode, candidate) {
            (MatchMode::Ordered, Some(n)) if Some(n) != first_unused => None,
            (_, c) => c,
        };
        let Some(n) = chosen else {
            let diff = self.explain(req, &path, body, &st.used);
            let request = format!("{} {path}", req.method);
            st.unmatched.push(Unmatched { request: request.clone(), diff });
            return Err(TransportFailure::Connection(format!("cassette has no answer for {request}")));
        };
        st.used[n] = true;
        let it = &self.cassette.interactions[n];
        match (&it.response, it.failure) {
            (Some(r), _) => Ok(InboundResponse {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.to_bytes().map_err(TransportFailure::Connection)?,
            }),
            (None, Some(StoredFailure::Timeout)) => Err(TransportFailure::Timeout),
            (None, _) => Err(TransportFailure::Connection("connection reset (from the cassette)".into())),
        }
    }

    /// Why a request found no answer: the closest interaction and the
    /// differences.
    fn explain(&self, req: &OutboundRequest, path: &str, body: &[u8], used: &[bool]) -> String {
        let its = &self.cassette.interactions;
        let same_key: Vec<usize> =
            (0..its.len()).filter(|n| its[*n].request.method == req.method && its[*n].request.path == path).collect();
        if self.cassette.match_mode == MatchMode::Ordered
            && let Some(next) = used.iter().position(|u| !u)
        {
            let want = &its[next].request;
            if want.method != req.method || want.path != path {
                return format!("out of order: the cassette expects {} {} next", want.method, want.path);
            }
        }
        if same_key.is_empty() {
            let mut known: Vec<String> = its.iter().map(|i| format!("{} {}", i.request.method, i.request.path)).collect();
            known.dedup();
            return format!("no interaction for this method and path; the cassette has: {}", known.join(", "));
        }
        let free: Vec<usize> = same_key.iter().copied().filter(|n| !used[*n]).collect();
        let Some(&closest) = free.first() else {
            return format!("all {} interactions for this method and path were already used", same_key.len());
        };
        let want = &its[closest].request.body;
        let got = StoredBody::from_bytes(body);
        let lines = match (&want.body, &got.body) {
            (Some(w), Some(g)) => {
                let mut out = Vec::new();
                json_diff("body", w, g, &mut out);
                out
            }
            _ => vec![format!(
                "body: cassette {:?}, request {:?}",
                String::from_utf8_lossy(&want.to_bytes().unwrap_or_default()),
                String::from_utf8_lossy(body)
            )],
        };
        format!("closest interaction #{closest} differs:\n  {}", lines.join("\n  "))
    }
}

/// `- cassette` / `+ request` lines for each JSON path whose values differ.
pub fn json_diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => json_diff(&format!("{path}.{k}"), wv, gv, out),
                    None => out.push(format!("- {path}.{k}: {wv}  (missing in the request)")),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push(format!("+ {path}.{k}: {gv}  (not in the cassette)"));
                }
            }
        }
        _ if want != got => {
            out.push(format!("- {path}: {want}"));
            out.push(format!("+ {path}: {got}"));
        }
        _ => {}
    }
}

impl HttpTransport for Replayer {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, _timeout: Duration, max_body: u64) -> TransportFuture<'a> {
        Box::pin(async move {
            let r = self.answer(req)?;
            if r.body.len() as u64 > max_body {
                return Err(TransportFailure::TooLarge(max_body));
            }
            Ok(r)
        })
    }
}

/// Performs requests through another transport and keeps each exchange,
/// redacted, on its [`Tape`], for a cassette.
pub struct Recorder {
    inner: Arc<dyn HttpTransport>,
    tape: Tape,
}

impl Recorder {
    /// A recorder keeping everything (`cf-host test --record`), redacting
    /// `secret`'s values.
    pub fn new(inner: Arc<dyn HttpTransport>, secret: &Value) -> Arc<Recorder> {
        Arc::new(Recorder { inner, tape: Tape::new(Arc::new(Redactor::from_secret(secret)), u64::MAX) })
    }

    /// The cassette of everything recorded so far.
    pub fn cassette(&self) -> Cassette {
        self.tape.cassette()
    }
}

impl HttpTransport for Recorder {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, timeout: Duration, max_body: u64) -> TransportFuture<'a> {
        Box::pin(async move {
            let result = self.inner.perform(req, timeout, max_body).await;
            self.tape.keep(req, &result);
            result
        })
    }
}

/// What a recording keeps: the exchanges, redacted, up to a byte budget
/// (the first exchanges that fit; the rest are counted, not kept). As a
/// [`TransportLayer`] it records whatever transport a run's store builds
/// (`serve --record-failures`). Clones share the recording.
#[derive(Clone)]
pub struct Tape {
    redactor: Arc<Redactor>,
    max_bytes: u64,
    kept: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    interactions: Vec<Interaction>,
    origin: Option<String>,
    state: BTreeMap<String, String>,
    /// Approximate bytes of what is kept.
    bytes: u64,
    dropped: u64,
    state_dropped: u64,
}

/// What an exchange costs the budget beyond its URL, headers and bodies.
const EXCHANGE_OVERHEAD: u64 = 128;

impl Tape {
    pub fn new(redactor: Arc<Redactor>, max_bytes: u64) -> Tape {
        Tape { redactor, max_bytes, kept: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cassette of everything kept so far; `truncated` when some was not.
    pub fn cassette(&self) -> Cassette {
        let k = self.lock();
        let mut c = Cassette::new(k.interactions.clone());
        c.recorded_from = k.origin.clone();
        c.truncated = (k.dropped > 0 || k.state_dropped > 0).then_some(Truncated {
            max_bytes: self.max_bytes,
            dropped: k.dropped,
            state_dropped: k.state_dropped,
        });
        c.state = k.state.clone();
        c
    }

    /// `inner`, keeping on this tape the value of each key the run reads
    /// before it writes it: the state a replay must start with.
    pub fn state_layer(&self, inner: Arc<dyn StateBackend>) -> Arc<dyn StateBackend> {
        Arc::new(ReadState { inner, tape: self.clone(), written: Mutex::new(Some(HashSet::new())) })
    }

    fn keep_state(&self, key: &str, value: &str) {
        let mut k = self.lock();
        let key = self.redactor.redact(key).into_owned();
        if k.state.contains_key(&key) {
            return;
        }
        let size = EXCHANGE_OVERHEAD + key.len() as u64 + value.len() as u64;
        if k.bytes.saturating_add(size) > self.max_bytes {
            k.state_dropped += 1;
            return;
        }
        k.bytes += size;
        let value = self.redactor.redact(value).into_owned();
        k.state.insert(key, value);
    }

    /// Redacts every string of a JSON value (options kept in a cassette).
    pub fn redact_json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.redactor.redact(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_json(x)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (self.redactor.redact(k).into_owned(), self.redact_json(x))).collect()),
            other => other.clone(),
        }
    }

    /// Redacts a text (an error message kept in a cassette).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                let v = if SENSITIVE_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                    "[redacted]".to_string()
                } else {
                    self.redactor.redact(v).into_owned()
                };
                (k.to_ascii_lowercase(), v)
            })
            .collect()
    }

    fn body(&self, bytes: &[u8]) -> StoredBody {
        match std::str::from_utf8(bytes) {
            Ok(text) => StoredBody::from_bytes(self.redactor.redact(text).as_bytes()),
            Err(_) => StoredBody::from_bytes(bytes),
        }
    }

    fn keep(&self, req: &OutboundRequest, result: &Result<InboundResponse, TransportFailure>) {
        let header_bytes = |h: &[(String, String)]| h.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        let size = EXCHANGE_OVERHEAD
            + req.url.as_str().len() as u64
            + header_bytes(&req.headers)
            + req.body.as_ref().map_or(0, |b| b.len() as u64)
            + result.as_ref().map_or(0, |r| header_bytes(&r.headers) + r.body.len() as u64);
        {
            // Past the budget once, nothing more is kept: the kept
            // exchanges stay the run's first ones, without gaps.
            let mut k = self.lock();
            if k.dropped > 0 || k.bytes.saturating_add(size) > self.max_bytes {
                k.dropped += 1;
                return;
            }
            k.bytes += size;
        }
        let request = StoredRequest {
            method: req.method.clone(),
            path: self.redactor.redact(&path_and_query(&req.url)).into_owned(),
            headers: self.headers(&req.headers),
            body: self.body(req.body.as_deref().unwrap_or_default()),
        };
        let (response, failure) = match result {
            Ok(r) => (
                Some(StoredResponse {
                    status: r.status,
                    headers: self
                        .headers(&r.headers)
                        .into_iter()
                        .filter(|(k, _)| k == "content-type" || k == "retry-after" || k == "location")
                        .collect(),
                    body: self.body(&r.body),
                }),
                None,
            ),
            Err(TransportFailure::Timeout) => (None, Some(StoredFailure::Timeout)),
            Err(_) => (None, Some(StoredFailure::Connection)),
        };
        let mut k = self.lock();
        k.origin.get_or_insert_with(|| req.url.origin().ascii_serialization());
        k.interactions.push(Interaction { request, response, failure });
    }
}

/// A run's state seen through a [`Tape`]: reads are kept, until the run
/// writes the key.
struct ReadState {
    inner: Arc<dyn StateBackend>,
    tape: Tape,
    /// Keys the run wrote; `None` once more than [`MAX_WRITTEN`] were
    /// (then no more reads are kept).
    written: Mutex<Option<HashSet<String>>>,
}

/// Keys written by one run that a recording tracks.
const MAX_WRITTEN: usize = 4096;

impl ReadState {
    fn wrote(&self, key: &str) {
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = w.as_mut() {
            if set.len() >= MAX_WRITTEN && !set.contains(key) {
                *w = None;
            } else {
                set.insert(key.to_string());
            }
        }
    }
}

impl StateBackend for ReadState {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<String>, BackendError> {
        let v = self.inner.get(ns, key)?;
        let unwritten = self.written.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|w| !w.contains(key));
        if let Some(v) = &v
            && unwritten
        {
            self.tape.keep_state(key, v);
        }
        Ok(v)
    }

    fn put(&self, ns: &Namespace, key: &str, value: &str, max_keys: usize) -> Result<(), PutError> {
        let r = self.inner.put(ns, key, value, max_keys);
        if r.is_ok() {
            self.wrote(key);
        }
        r
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<(), BackendError> {
        self.wrote(key);
        self.inner.delete(ns, key)
    }

    fn count(&self, ns: &Namespace) -> Result<usize, BackendError> {
        self.inner.count(ns)
    }

    fn blocks(&self) -> bool {
        self.inner.blocks()
    }
}

impl TransportLayer for Tape {
    fn layer(&self, inner: Arc<dyn HttpTransport>) -> Arc<dyn HttpTransport> {
        Arc::new(Recorder { inner, tape: self.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(method: &str, url: &str, body: Option<Value>) -> OutboundRequest {
        OutboundRequest {
            method: method.into(),
            url: url::Url::parse(url).unwrap(),
            headers: vec![("Authorization".into(), "Basic c2VjcmV0".into())],
            body: body.map(|b| b.to_string().into_bytes()),
        }
    }

    fn interaction(path: &str, body: Value, status: u16) -> Interaction {
        Interaction {
            request: StoredRequest { method: "POST".into(), path: path.into(), headers: vec![], body: StoredBody { body: Some(body), ..Default::default() } },
            response: Some(StoredResponse { status, headers: vec![], body: StoredBody::from_bytes(b"{\"ok\":true}") }),
            failure: None,
        }
    }

    #[test]
    fn replays_by_key_once_each_in_order_of_the_file() {
        let c = Cassette::new(vec![
            interaction("/list", json!({"offset": 0}), 500),
            interaction("/list", json!({"offset": 0}), 200),
            interaction("/list", json!({"offset": 2}), 200),
        ]);
        let r = Replayer::new(c);
        let a = |body| r.answer(&req("POST", "https://any.host:9440/list", Some(body)));
        assert_eq!(a(json!({"offset": 2})).unwrap().status, 200);
        assert_eq!(a(json!({"offset": 0})).unwrap().status, 500);
        assert_eq!(a(json!({"offset": 0})).unwrap().status, 200);
        assert!(a(json!({"offset": 0})).is_err());
        let un = r.unmatched();
        assert_eq!(un.len(), 1);
        assert!(un[0].diff.contains("already used"), "{}", un[0].diff);
        assert!(r.unused().is_empty());
    }

    #[test]
    fn unmatched_requests_get_a_clear_diff() {
        let r = Replayer::new(Cassette::new(vec![interaction("/list", json!({"offset": 0, "length": 500}), 200)]));
        assert!(r.answer(&req("POST", "https://h/list", Some(json!({"offset": 0, "length": 100})))).is_err());
        assert!(r.answer(&req("GET", "https://h/other", None)).is_err());
        let un = r.unmatched();
        assert_eq!(un[0].request, "POST /list");
        assert!(un[0].diff.contains("- body.length: 500") && un[0].diff.contains("+ body.length: 100"), "{}", un[0].diff);
        assert!(un[1].diff.contains("the cassette has: POST /list"), "{}", un[1].diff);
        assert_eq!(r.unused(), vec!["POST /list"]);
    }

    #[test]
    fn ordered_mode_rejects_out_of_order_requests() {
        let mut c = Cassette::new(vec![interaction("/a", json!({}), 200), interaction("/b", json!({}), 200)]);
        c.match_mode = MatchMode::Ordered;
        let r = Replayer::new(c);
        assert!(r.answer(&req("POST", "https://h/b", Some(json!({})))).is_err());
        assert!(r.unmatched()[0].diff.contains("expects POST /a next"));
        assert!(r.answer(&req("POST", "https://h/a", Some(json!({})))).is_ok());
        assert!(r.answer(&req("POST", "https://h/b", Some(json!({})))).is_ok());
    }

    #[test]
    fn bodies_round_trip_as_json_text_or_base64() {
        for bytes in [&b"{\"a\":1}"[..], b"{\"entities\": [{\"sta", b"\xff\x00binary", b""] {
            let stored = StoredBody::from_bytes(bytes);
            let back = stored.to_bytes().unwrap();
            if stored.body.is_some() {
                assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), serde_json::from_slice::<Value>(bytes).unwrap());
            } else {
                assert_eq!(back, bytes);
            }
        }
        assert!(StoredBody::from_bytes(b"{\"entities\": [{\"sta").body_text.is_some());
        assert!(StoredBody::from_bytes(b"\xff").body_base64.is_some());
    }

    #[test]
    fn recorder_redacts_credentials() {
        struct Echo;
        impl HttpTransport for Echo {
            fn perform<'a>(&'a self, req: &'a OutboundRequest, _: Duration, _: u64) -> TransportFuture<'a> {
                let body = req.body.clone().unwrap_or_default();
                Box::pin(async move {
                    Ok(InboundResponse { status: 200, headers: vec![("Set-Cookie".into(), "s=1".into())], body })
                })
            }
        }
        let secret = json!({"username": "admin", "password": "hunter2-secret"});
        let rec = Recorder::new(Arc::new(Echo), &secret);
        let r = req("POST", "https://pc:9440/list", Some(json!({"note": "pw hunter2-secret"})));
        futures::executor::block_on(rec.perform(&r, Duration::from_secs(1), 1 << 20)).unwrap();
        let text = serde_json::to_string(&rec.cassette()).unwrap();
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("[redacted]"));
        assert_eq!(rec.cassette().recorded_from.as_deref(), Some("https://pc:9440"));
    }

    /// Answers every request with `size` bytes.
    struct Sized(usize);

    impl HttpTransport for Sized {
        fn perform<'a>(&'a self, _: &'a OutboundRequest, _: Duration, _: u64) -> TransportFuture<'a> {
            let body = vec![b'x'; self.0];
            Box::pin(async move { Ok(InboundResponse { status: 200, headers: vec![], body }) })
        }
    }

    #[test]
    fn a_tape_keeps_the_first_exchanges_within_its_budget_and_says_so() {
        let secret = json!({"username": "admin", "password": "hunter2-secret"});
        let tape = Tape::new(Arc::new(Redactor::from_secret(&secret)), 2_000);
        let http = tape.layer(Arc::new(Sized(700)));
        for n in 0..4 {
            let r = req("GET", &format!("https://pc:9440/item/{n}"), None);
            futures::executor::block_on(http.perform(&r, Duration::from_secs(1), 1 << 20)).unwrap();
        }
        let c = tape.cassette();
        assert_eq!(c.interactions.iter().map(|i| i.request.path.as_str()).collect::<Vec<_>>(), vec!["/item/0", "/item/1"]);
        assert_eq!(c.truncated, Some(Truncated { max_bytes: 2_000, dropped: 2, state_dropped: 0 }));
        assert!(Recorder::new(Arc::new(Sized(700)), &secret).cassette().truncated.is_none());
    }

    #[test]
    fn a_tape_keeps_the_state_read_before_the_run_wrote_it() {
        let secret = json!({"password": "hunter2-secret"});
        let tape = Tape::new(Arc::new(Redactor::from_secret(&secret)), 1 << 20);
        let inner = Arc::new(crate::host::state::MemoryState::default());
        let ns = Namespace { tenant: "t".into(), collector: "c".into() };
        inner.set(&ns, "old", "1").unwrap();
        inner.set(&ns, "leak", "pw hunter2-secret").unwrap();
        inner.set(&ns, "rewritten", "before").unwrap();
        let state = tape.state_layer(inner);
        state.put(&ns, "rewritten", "during", 100).unwrap();
        assert_eq!(state.get(&ns, "rewritten").unwrap().as_deref(), Some("during"));
        assert_eq!(state.get(&ns, "old").unwrap().as_deref(), Some("1"));
        assert_eq!(state.get(&ns, "leak").unwrap().as_deref(), Some("pw hunter2-secret"));
        assert_eq!(state.get(&ns, "missing").unwrap(), None);
        let kept = tape.cassette().state;
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["leak", "old"], "not the key the run wrote first");
        assert!(!kept["leak"].contains("hunter2-secret"), "{kept:?}");
    }

    #[test]
    fn load_rejects_bad_cassettes() {
        let dir = std::env::temp_dir().join(format!("cf-cassette-{}", std::process::id()));
        let mut c = Cassette::new(vec![interaction("/a", json!({}), 200)]);
        c.save(&dir).unwrap();
        assert_eq!(Cassette::load(&dir).unwrap(), c);
        c.interactions[0].failure = Some(StoredFailure::Timeout);
        c.save(&dir).unwrap();
        assert!(Cassette::load(&dir).unwrap_err().contains("exactly one of response or failure"));
        std::fs::write(dir.join(FILE_NAME), "{").unwrap();
        assert!(Cassette::load(&dir).unwrap_err().contains("is not valid"));
        assert!(Cassette::load(&dir.join("missing")).unwrap_err().contains("cannot read cassette"));
        std::fs::remove_dir_all(dir).ok();
    }
}
