//! `cloudforet:collector/http`: outbound HTTP backed by reqwest.
//!
//! Order of checks for every request: URL parse → egress policy → request
//! budget → header and body validation → I/O. Redirects are not followed by
//! reqwest; they are followed here, each target checked against the policy
//! again (a granted host cannot bounce the guest elsewhere). Response bodies
//! are read in chunks and cut off at the size limit.

use crate::bindings::current::cloudforet::collector::http::{self, HttpError, Method, Request, Response};
use crate::egress::EgressPolicy;
use crate::limits::HttpLimits;
use crate::secret::Redactor;
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

impl TlsConfig {
    /// Reads `verify_ssl` (bool, or "true"/"false") and `ca_bundle` (PEM
    /// text) from a run's options.
    pub fn from_options(options: &serde_json::Value) -> Result<TlsConfig, String> {
        use serde_json::Value;
        let skip_verify = match options.get("verify_ssl") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => !b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => false,
            Some(_) => return Err("option verify_ssl must be true or false".into()),
        };
        let ca_pem = match options.get("ca_bundle") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
            Some(_) => return Err("option ca_bundle must be a PEM string".into()),
        };
        Ok(TlsConfig { skip_verify, ca_pem })
    }
}

/// reqwest clients shared by all runs (one connection pool per TLS setup).
#[derive(Clone, Default)]
pub struct ClientPool {
    clients: Arc<Mutex<HashMap<TlsConfig, reqwest::Client>>>,
}

impl ClientPool {
    pub fn client(&self, tls: &TlsConfig) -> Result<reqwest::Client, String> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(tls) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
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
        map.insert(tls.clone(), client.clone());
        Ok(client)
    }
}

/// Per-run HTTP capability.
pub struct HttpCtx {
    pub(crate) client: reqwest::Client,
    pub(crate) policy: EgressPolicy,
    pub(crate) limits: HttpLimits,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) requests: u32,
    /// Set when the request budget ran out; the run ends with a limit error.
    pub(crate) budget_exhausted: bool,
}

/// Headers the guest may not set: the host owns framing and routing.
const FORBIDDEN_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "proxy-authorization"];

impl HttpCtx {
    fn build_headers(&self, headers: &[(String, String)]) -> Result<HeaderMap, HttpError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("invalid header name '{}'", k.escape_debug())))?;
            if FORBIDDEN_HEADERS.contains(&name.as_str()) {
                return Err(HttpError::InvalidRequest(format!("header '{name}' is set by the host")));
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| HttpError::InvalidRequest(format!("invalid value for header '{name}'")))?;
            map.append(name, value);
        }
        Ok(map)
    }

    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, HttpError> {
        let max = self.limits.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(HttpError::TooLarge(max));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > max {
                        return Err(HttpError::TooLarge(max));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(self.map_error(&e)),
            }
        }
    }

    fn map_error(&self, e: &reqwest::Error) -> HttpError {
        if e.is_timeout() {
            return HttpError::Timeout;
        }
        // The source chain, outermost first; reqwest's outer layers only say
        // "error sending request", the cause is at the end.
        let mut causes = Vec::new();
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = src {
            causes.push(s.to_string());
            src = s.source();
        }
        let lower = causes.join(": ").to_ascii_lowercase();
        let tail = causes.len().saturating_sub(2);
        let msg = self.redactor.redact_owned(causes[tail..].join(": "));
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            HttpError::Tls(msg)
        } else {
            HttpError::Connection(msg)
        }
    }
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

impl http::Host for HttpCtx {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let mut url = match Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return Ok(Err(HttpError::InvalidRequest(format!("invalid URL: {e}")))),
        };
        if let Err(denial) = self.policy.check(&url) {
            tracing::warn!(origin = %crate::host::origin_of(&url), reason = %denial, "egress denied");
            return Ok(Err(HttpError::Denied(denial.to_string())));
        }
        let mut headers = match self.build_headers(&req.headers) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let mut body = req.body;
        if body.as_ref().is_some_and(|b| b.len() as u64 > self.limits.max_request_bytes) {
            return Ok(Err(HttpError::InvalidRequest(format!(
                "request body over the host limit of {} bytes",
                self.limits.max_request_bytes
            ))));
        }
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.limits.default_timeout)
            .min(self.limits.max_timeout);
        let mut method = method(req.method);
        let mut redirects = 0;
        loop {
            if self.requests >= self.limits.max_requests {
                self.budget_exhausted = true;
                return Ok(Err(HttpError::Denied(format!(
                    "run exceeded its budget of {} HTTP requests",
                    self.limits.max_requests
                ))));
            }
            self.requests += 1;
            let mut rb = self.client.request(method.clone(), url.clone()).headers(headers.clone()).timeout(timeout);
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => return Ok(Err(self.map_error(&e.without_url()))),
            };
            let status = resp.status();
            if status.is_redirection()
                && let Some(loc) = resp.headers().get(reqwest::header::LOCATION) {
                    redirects += 1;
                    if redirects > self.limits.max_redirects {
                        return Ok(Err(HttpError::Connection(format!("more than {} redirects", self.limits.max_redirects))));
                    }
                    let Some(next) = loc.to_str().ok().and_then(|l| url.join(l).ok()) else {
                        return Ok(Err(HttpError::Connection("redirect with an invalid Location".into())));
                    };
                    if let Err(denial) = self.policy.check(&next) {
                        tracing::warn!(origin = %crate::host::origin_of(&next), reason = %denial, "redirect target denied");
                        return Ok(Err(HttpError::Denied(format!("redirect target: {denial}"))));
                    }
                    if next.origin() != url.origin() {
                        headers.remove(reqwest::header::AUTHORIZATION);
                        headers.remove(reqwest::header::COOKIE);
                    }
                    if status == reqwest::StatusCode::SEE_OTHER
                        || ((status == reqwest::StatusCode::MOVED_PERMANENTLY || status == reqwest::StatusCode::FOUND)
                            && method == reqwest::Method::POST)
                    {
                        method = reqwest::Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            let headers_out: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                .collect();
            let body = match self.read_body(resp).await {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
            return Ok(Ok(Response { status: status.as_u16(), headers: headers_out, body }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tls_options() {
        assert_eq!(TlsConfig::from_options(&json!({})).unwrap(), TlsConfig::default());
        assert!(TlsConfig::from_options(&json!({"verify_ssl": false})).unwrap().skip_verify);
        assert!(TlsConfig::from_options(&json!({"verify_ssl": "false"})).unwrap().skip_verify);
        assert!(!TlsConfig::from_options(&json!({"verify_ssl": true})).unwrap().skip_verify);
        assert!(TlsConfig::from_options(&json!({"verify_ssl": 0})).is_err());
        assert!(TlsConfig::from_options(&json!({"ca_bundle": 5})).is_err());
        assert_eq!(TlsConfig::from_options(&json!({"ca_bundle": "PEM"})).unwrap().ca_pem.as_deref(), Some(&b"PEM"[..]));
    }

}
