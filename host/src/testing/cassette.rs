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
//!   redacted from URLs and bodies.

use crate::host::http::{HttpTransport, InboundResponse, OutboundRequest, TransportFailure, TransportFuture};
use crate::secret::Redactor;
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
/// redacted, for a cassette.
pub struct Recorder {
    inner: Arc<dyn HttpTransport>,
    redactor: Redactor,
    interactions: Mutex<Vec<Interaction>>,
    origin: Mutex<Option<String>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn HttpTransport>, secret: &Value) -> Arc<Recorder> {
        Arc::new(Recorder {
            inner,
            redactor: Redactor::from_secret(secret),
            interactions: Mutex::new(Vec::new()),
            origin: Mutex::new(None),
        })
    }

    /// The cassette of everything recorded so far.
    pub fn cassette(&self) -> Cassette {
        let mut c = Cassette::new(self.interactions.lock().unwrap_or_else(|p| p.into_inner()).clone());
        c.recorded_from = self.origin.lock().unwrap_or_else(|p| p.into_inner()).clone();
        c
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
        self.origin.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| req.url.origin().ascii_serialization());
        self.interactions.lock().unwrap_or_else(|p| p.into_inner()).push(Interaction { request, response, failure });
    }
}

impl HttpTransport for Recorder {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, timeout: Duration, max_body: u64) -> TransportFuture<'a> {
        Box::pin(async move {
            let result = self.inner.perform(req, timeout, max_body).await;
            self.keep(req, &result);
            result
        })
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
