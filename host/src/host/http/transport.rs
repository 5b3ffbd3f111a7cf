//! The transport under the guests' HTTP: reqwest clients pooled per TLS
//! setup and allowed networks, a resolver that drops addresses the egress
//! policy blocks, and the [`HttpTransport`] seam the test harness plugs
//! cassettes into. Everything here runs after the host's checks.

use crate::egress::EgressPolicy;
use ipnet::IpNet;
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

/// Wraps the transport a run's store builds (the product one, or the one
/// its context names) in another, e.g. a recorder keeping the run's
/// exchanges (`serve --record-failures`). The host's checks still come
/// first; the layer sees what the transport sees.
pub trait TransportLayer: Send + Sync {
    fn layer(&self, inner: Arc<dyn HttpTransport>) -> Arc<dyn HttpTransport>;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS failures are told by rustls's error type, also when wrapped in
    /// io::Errors as hyper-util and tokio-rustls wrap it.
    #[test]
    fn tls_errors_are_found_by_type() {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        let outer = std::io::Error::other(inner);
        assert!(holds::<rustls::Error>(&outer));
        assert!(!holds::<rustls::Error>(&std::io::Error::other("certificate tls handshake")), "words are not types");
    }
}
