//! Collector components as wasm OCI artifacts: pull (the admin API's
//! `load --oci`, `serve --plugin-oci`) and push (`cf-host plugins push`).
//!
//! The pull is the server reaching out on an admin's word, so it runs under
//! an egress policy: registry names are resolved by the host, and an
//! address that is loopback, private, link-local (cloud metadata) or
//! otherwise special is refused unless it is in a network the operator
//! allowed (`--registry-allow-network`); the address actually connected is
//! checked again, and so is every redirect (blob downloads often redirect
//! to storage). It speaks the distribution API itself (manifest, token
//! flow, blob) for that reason. Push (the CLI, on the operator's machine)
//! uses the oci-client crate.
//!
//! Layout of an artifact, after the CNCF TAG Runtime "Wasm OCI Artifact"
//! layout: an OCI image manifest whose config has media type
//! `application/vnd.wasm.config.v0+json` and whose only layer is the
//! component, `application/wasm`. The plugin manifest (alias, description,
//! capabilities, digest) travels as the manifest annotation
//! [`MANIFEST_ANNOTATION`]; name and version also go into the standard
//! `org.opencontainers.image.*` annotations.
//!
//! Pulled bytes are hostile like any other component: the layer's size is
//! checked against [`OciOptions::max_bytes`] before and while downloading,
//! its sha256 against the descriptor (oci-client verifies it), a reference
//! by digest (`@sha256:..`) against the manifest, and the component then
//! goes through the registry's ordinary admission.

use super::identity::{self, Manifest};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciImageManifest, OCI_IMAGE_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;

/// Layer media type of a wasm component (CNCF layout).
pub const WASM_LAYER: &str = "application/wasm";
/// Config media type of a wasm artifact (CNCF layout).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Manifest annotation carrying the plugin manifest as JSON.
pub const MANIFEST_ANNOTATION: &str = "dev.cloudforet.plugin.manifest";

/// How the host talks to registries.
#[derive(Clone, Debug)]
pub struct OciOptions {
    /// Registries (`host:port`) reached over plain HTTP, like Docker's
    /// `insecure-registries`. Everything else is HTTPS.
    pub insecure: Vec<String>,
    /// Largest component layer accepted.
    pub max_bytes: u64,
    /// `CF_HOST_OCI_USERNAME` / `CF_HOST_OCI_PASSWORD`, else anonymous.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Networks a registry may resolve into although they are special
    /// (private, loopback, link-local, ...).
    pub allow_networks: Vec<ipnet::IpNet>,
}

impl Default for OciOptions {
    fn default() -> Self {
        OciOptions { insecure: Vec::new(), max_bytes: 64 << 20, username: None, password: None, allow_networks: Vec::new() }
    }
}

impl OciOptions {
    /// Options with credentials from `CF_HOST_OCI_USERNAME` and `CF_HOST_OCI_PASSWORD`.
    pub fn from_env(insecure: Vec<String>) -> OciOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        OciOptions { insecure, username: var("CF_HOST_OCI_USERNAME"), password: var("CF_HOST_OCI_PASSWORD"), ..OciOptions::default() }
    }

    fn auth(&self) -> RegistryAuth {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }

    fn client(&self) -> Client {
        let protocol = if self.insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(self.insecure.clone())
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        })
    }
}

/// Why a pull or push failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Bad reference, or the artifact is not a usable component.
    #[error("{0}")]
    Invalid(String),
    /// No such repository, tag or digest.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials.
    #[error("{0}")]
    Denied(String),
    /// The registry could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

fn classify(reference: &str, what: &str, e: OciDistributionError) -> OciError {
    let mut msg = format!("{reference}: {what}: {e}");
    // reqwest's "error sending request" says little; its causes say why.
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound(msg),
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            OciError::Denied(msg)
        }
        OciDistributionError::ServerError { code: 404, .. } => OciError::NotFound(msg),
        OciDistributionError::ServerError { code: 401 | 403, .. } => OciError::Denied(msg),
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }) =>
        {
            OciError::NotFound(msg)
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(e.code, oci_client::errors::OciErrorCode::Unauthorized | oci_client::errors::OciErrorCode::Denied)
            }) =>
        {
            OciError::Denied(msg)
        }
        OciDistributionError::DigestError(_) | OciDistributionError::ManifestParsingError(_) | OciDistributionError::JsonError(_) => {
            OciError::Invalid(msg)
        }
        _ => OciError::Unavailable(msg),
    }
}

pub fn parse_reference(reference: &str) -> Result<Reference, OciError> {
    reference.parse::<Reference>().map_err(|e| OciError::Invalid(format!("{reference:?} is not an OCI reference: {e}")))
}

/// A component pulled from a registry.
#[derive(Debug)]
pub struct Pulled {
    /// The reference as given.
    pub reference: String,
    /// Digest of the OCI manifest (what `@sha256:..` pins).
    pub manifest_digest: String,
    /// The component.
    pub wasm: Vec<u8>,
    /// The plugin manifest from the annotation, if any.
    pub manifest: Option<Manifest>,
}

impl Pulled {
    /// The source string the registry records: `oci://<reference>@<digest>`.
    pub fn source(&self) -> String {
        let base = self.reference.split('@').next().unwrap_or(&self.reference);
        format!("oci://{base}@{}", self.manifest_digest)
    }
}

/// Pulls the component at `reference` (`registry/repository:tag` or `@sha256:..`).
pub async fn pull(reference: &str, opts: &OciOptions) -> Result<Pulled, OciError> {
    let image = parse_reference(reference)?;
    let puller = Puller::new(&image, opts)?;
    let (raw, manifest_digest) = puller.manifest(reference).await?;
    if let Some(want) = image.digest()
        && want != manifest_digest
    {
        return Err(OciError::Invalid(format!("{reference}: the registry sent a manifest with digest {manifest_digest}")));
    }
    let manifest: OciImageManifest = serde_json::from_slice(&raw)
        .map_err(|e| OciError::Invalid(format!("{reference}: not an OCI image manifest (an index or another artifact?): {e}")))?;
    let wasm_layers: Vec<_> =
        manifest.layers.iter().filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_MEDIA_TYPE).collect();
    let layer = match wasm_layers.as_slice() {
        [one] => *one,
        [] => {
            let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
            return Err(OciError::Invalid(format!(
                "{reference}: not a wasm artifact: no {WASM_LAYER} layer (layers: {})",
                if types.is_empty() { "none".to_string() } else { types.join(", ") }
            )));
        }
        more => {
            return Err(OciError::Invalid(format!("{reference}: {} wasm layers; a collector artifact has exactly one", more.len())));
        }
    };
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if size == 0 || size > opts.max_bytes {
        return Err(OciError::Invalid(format!(
            "{reference}: the component layer is {} bytes; accepted: 1 to {} bytes",
            layer.size, opts.max_bytes
        )));
    }
    let wasm = puller.blob(reference, &layer.digest, size).await?;
    let manifest_json = manifest.annotations.as_ref().and_then(|a| a.get(MANIFEST_ANNOTATION));
    let plugin_manifest = match manifest_json {
        Some(text) => Some(
            serde_json::from_str::<Manifest>(text)
                .map_err(|e| OciError::Invalid(format!("{reference}: annotation {MANIFEST_ANNOTATION} is not a valid plugin manifest: {e}")))?,
        ),
        None => None,
    };
    Ok(Pulled { reference: reference.to_string(), manifest_digest, wasm, manifest: plugin_manifest })
}

/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// One pull's HTTP: the registry's base URL, a client whose resolver drops
/// refused addresses, the policy, credentials and the token once issued.
struct Puller<'a> {
    base: url::Url,
    repository: String,
    client: reqwest::Client,
    policy: crate::egress::EgressPolicy,
    opts: &'a OciOptions,
    bearer: tokio::sync::Mutex<Option<String>>,
}

/// `sha256:<hex>` of bytes.
fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes))
}

impl<'a> Puller<'a> {
    fn new(image: &Reference, opts: &'a OciOptions) -> Result<Puller<'a>, OciError> {
        let registry = image.resolve_registry();
        let scheme = if opts.insecure.iter().any(|r| r == image.registry() || r == registry) { "http" } else { "https" };
        let base = url::Url::parse(&format!("{scheme}://{registry}/"))
            .map_err(|e| OciError::Invalid(format!("registry {registry:?} is not a host name: {e}")))?;
        let policy = crate::egress::EgressPolicy::deny_all().allow_networks(opts.allow_networks.iter().copied());
        let client = crate::host::http::ClientPool::default()
            .client(&crate::host::http::TlsConfig::default(), &opts.allow_networks)
            .map_err(OciError::Unavailable)?;
        Ok(Puller { base, repository: image.repository().to_string(), client, policy, opts, bearer: Default::default() })
    }

    async fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String), OciError> {
        let image = parse_reference(reference)?;
        let tag = image.digest().or(image.tag()).unwrap_or("latest");
        let url = self.url(&format!("v2/{}/manifests/{tag}", self.repository))?;
        let body = self.get(reference, "manifest", url, Some(OCI_IMAGE_MEDIA_TYPE), MAX_MANIFEST_BYTES).await?;
        let digest = sha256(&body);
        Ok((body, digest))
    }

    async fn blob(&self, reference: &str, digest: &str, size: u64) -> Result<Vec<u8>, OciError> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repository))?;
        let body = self.get(reference, "component layer", url, None, size).await?;
        if sha256(&body) != digest {
            return Err(OciError::Invalid(format!("{reference}: the component layer does not match its digest {digest}")));
        }
        Ok(body)
    }

    fn url(&self, path: &str) -> Result<url::Url, OciError> {
        self.base.join(path).map_err(|e| OciError::Invalid(format!("{path}: {e}")))
    }

    /// GET with the registry's auth (token flow on a 401), redirects
    /// followed under the policy, the body capped at `max` bytes.
    async fn get(&self, reference: &str, what: &str, url: url::Url, accept: Option<&str>, max: u64) -> Result<Vec<u8>, OciError> {
        let fail = |e: String| OciError::Unavailable(format!("{reference}: {what}: {e}"));
        let mut retried_auth = false;
        loop {
            let mut url = url.clone();
            let mut resp = None;
            for _ in 0..=MAX_REDIRECTS {
                let same_origin = url.origin() == self.base.origin();
                self.precheck(reference, &url)?;
                let mut rb = self.client.get(url.clone()).timeout(std::time::Duration::from_secs(120));
                if let Some(a) = accept {
                    rb = rb.header("accept", a);
                }
                // Credentials go to the registry only, never to a redirect target.
                if same_origin {
                    if let Some(t) = self.bearer.lock().await.clone() {
                        rb = rb.bearer_auth(t);
                    } else if let (Some(u), Some(p)) = (&self.opts.username, &self.opts.password) {
                        rb = rb.basic_auth(u, Some(p));
                    }
                }
                let r = rb.send().await.map_err(|e| self.refused(reference, &url, &e).unwrap_or_else(|| fail(causes(&e))))?;
                self.check_connected(reference, &url, &r)?;
                if r.status().is_redirection() {
                    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| fail("a redirect without Location".into()))?;
                    url = url.join(loc).map_err(|e| fail(format!("bad redirect {loc:?}: {e}")))?;
                    if url.scheme() != "https" && url.scheme() != "http" {
                        return Err(OciError::Denied(format!("{reference}: {what}: redirect to a {} URL refused", url.scheme())));
                    }
                    continue;
                }
                resp = Some(r);
                break;
            }
            let r = resp.ok_or_else(|| fail(format!("more than {MAX_REDIRECTS} redirects")))?;
            let status = r.status().as_u16();
            if status == 401 && !retried_auth {
                let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                if let Some(token) = self.token(reference, &challenge).await? {
                    *self.bearer.lock().await = Some(token);
                    retried_auth = true;
                    continue;
                }
            }
            return match status {
                200..=299 => read_capped(r, max).await.map_err(|e| match e {
                    Capped::TooLarge => OciError::Invalid(format!("{reference}: {what} is larger than {max} bytes")),
                    Capped::Broken(e) => fail(e),
                }),
                401 | 403 => Err(OciError::Denied(format!("{reference}: {what}: the registry answered HTTP {status}"))),
                404 => Err(OciError::NotFound(format!("{reference}: {what}: not found (HTTP 404)"))),
                _ => Err(fail(format!("the registry answered HTTP {status}"))),
            };
        }
    }

    /// A bearer token from the challenge's realm (`Bearer realm=..,
    /// service=.., scope=..`), or `None` for a Basic challenge.
    async fn token(&self, reference: &str, challenge: &str) -> Result<Option<String>, OciError> {
        let Some(params) = challenge.strip_prefix("Bearer ").or_else(|| challenge.strip_prefix("bearer ")) else { return Ok(None) };
        let field = |name: &str| {
            params.split(',').map(str::trim).find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('='))).map(|v| v.trim_matches('"').to_string())
        };
        let realm = field("realm").ok_or_else(|| OciError::Denied(format!("{reference}: a Bearer challenge without a realm")))?;
        let mut url = url::Url::parse(&realm).map_err(|e| OciError::Denied(format!("{reference}: token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = field("service") {
                q.append_pair("service", &s);
            }
            q.append_pair("scope", &field("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repository)));
        }
        self.precheck(reference, &url)?;
        let mut rb = self.client.get(url.clone()).timeout(std::time::Duration::from_secs(30));
        if let (Some(u), Some(p)) = (&self.opts.username, &self.opts.password) {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb
            .send()
            .await
            .map_err(|e| self.refused(reference, &url, &e).unwrap_or_else(|| OciError::Unavailable(format!("{reference}: token: {}", causes(&e)))))?;
        self.check_connected(reference, &url, &r)?;
        if !r.status().is_success() {
            return Err(OciError::Denied(format!("{reference}: the token service answered HTTP {}", r.status().as_u16())));
        }
        let body = read_capped(r, 1 << 20).await.map_err(|_| OciError::Denied(format!("{reference}: the token answer is unreadable")))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| OciError::Denied(format!("{reference}: the token answer is not JSON: {e}")))?;
        let token = v["token"].as_str().or(v["access_token"].as_str()).ok_or_else(|| OciError::Denied(format!("{reference}: the token answer has no token")))?;
        Ok(Some(token.to_string()))
    }

    /// The policy's refusal, when that is why a request failed.
    fn refused(&self, reference: &str, url: &url::Url, e: &reqwest::Error) -> Option<OciError> {
        crate::host::http::blocked_by_policy(e).map(|b| {
            OciError::Denied(format!(
                "{reference}: egress policy: {} is refused: {}; allow its network with --registry-allow-network",
                url.host_str().unwrap_or("?"),
                b.0
            ))
        })
    }

    /// An IP-literal host is checked before anything is sent (no name
    /// resolution happens for it).
    fn precheck(&self, reference: &str, url: &url::Url) -> Result<(), OciError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(a)) => std::net::IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => std::net::IpAddr::V6(a),
            _ => return Ok(()),
        };
        self.policy.check_addr(url.host_str().unwrap_or_default(), ip).map_err(|d| {
            OciError::Denied(format!("{reference}: egress policy: {d}; allow its network with --registry-allow-network"))
        })
    }

    /// The address actually connected must pass the policy too.
    fn check_connected(&self, reference: &str, url: &url::Url, r: &reqwest::Response) -> Result<(), OciError> {
        match (r.remote_addr(), url.host_str()) {
            (Some(addr), Some(host)) => self.policy.check_addr(host, addr.ip()).map_err(|d| {
                OciError::Denied(format!("{reference}: egress policy: {d}; allow its network with --registry-allow-network"))
            }),
            _ => Ok(()),
        }
    }
}

fn causes(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.join(": ")
}

enum Capped {
    TooLarge,
    Broken(String),
}

/// The whole body, or `TooLarge` past `max` bytes (checked against the
/// declared length first).
async fn read_capped(mut r: reqwest::Response, max: u64) -> Result<Vec<u8>, Capped> {
    if r.content_length().is_some_and(|n| n > max) {
        return Err(Capped::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| Capped::Broken(causes(&e)))? {
        if buf.len() as u64 + chunk.len() as u64 > max {
            return Err(Capped::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Where a push went.
#[derive(Debug)]
pub struct Pushed {
    pub manifest_url: String,
    /// Digest of the pushed OCI manifest: pull `<repository>@<digest>` to pin it.
    pub manifest_digest: String,
    /// sha256 of the component itself (what `--digest` checks at load).
    pub component_digest: String,
}

/// Pushes a component (and its plugin manifest, as an annotation) to `reference`.
pub async fn push(reference: &str, wasm: Vec<u8>, manifest: Option<&Manifest>, opts: &OciOptions) -> Result<Pushed, OciError> {
    let image = parse_reference(reference)?;
    let embedded = identity::embedded(&wasm).map_err(|e| OciError::Invalid(format!("not a component: {e}")))?;
    let (name, version) = identity::resolve(embedded.as_ref(), manifest).map_err(OciError::Invalid)?;
    let layer = ImageLayer::new(wasm, WASM_LAYER.to_string(), None);
    let component_digest = layer.sha256_digest();
    let config = serde_json::json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [component_digest],
    });
    let config = Config::new(serde_json::to_vec(&config).unwrap_or_default(), WASM_CONFIG.to_string(), None);
    let mut annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), name),
        ("org.opencontainers.image.version".to_string(), version.to_string()),
    ]);
    if let Some(m) = manifest {
        if let Some(d) = &m.description {
            annotations.insert("org.opencontainers.image.description".into(), d.clone());
        }
        let json = serde_json::to_string(m).map_err(|e| OciError::Invalid(e.to_string()))?;
        annotations.insert(MANIFEST_ANNOTATION.into(), json);
    }
    let oci_manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
    let body = serde_json::to_vec(&oci_manifest).map_err(|e| OciError::Invalid(e.to_string()))?;
    let manifest_digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&body));

    let client = opts.client();
    let auth = opts.auth();
    client.store_auth_if_needed(image.resolve_registry(), &auth).await;
    client
        .auth(&image, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| classify(reference, "authentication", e))?;
    client
        .push_blob(&image, &layer.data, &component_digest)
        .await
        .map_err(|e| classify(reference, "component layer", e))?;
    client
        .push_blob(&image, &config.data, &oci_manifest.config.digest)
        .await
        .map_err(|e| classify(reference, "config", e))?;
    let content_type = reqwest::header::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    let manifest_url = client
        .push_manifest_raw(&image, body, content_type)
        .await
        .map_err(|e| classify(reference, "manifest", e))?;
    Ok(Pushed { manifest_url, manifest_digest, component_digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked() {
        assert!(matches!(parse_reference("Not A Reference!!"), Err(OciError::Invalid(_))));
        let r = parse_reference("127.0.0.1:5000/cf/nutanix:1.0.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "cf/nutanix");
        assert_eq!(r.tag(), Some("1.0.0"));
    }
}
