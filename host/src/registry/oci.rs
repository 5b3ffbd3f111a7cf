//! Collector components as wasm OCI artifacts: pull (the admin API's
//! `load --oci`) and push (`cf-host plugins push`), with the oci-client crate.
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
use std::pin::Pin;
use std::task::{Context, Poll};

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
}

impl Default for OciOptions {
    fn default() -> Self {
        OciOptions { insecure: Vec::new(), max_bytes: 256 << 20, username: None, password: None }
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
    let client = opts.client();
    let auth = opts.auth();
    let (raw, manifest_digest) = client
        .pull_manifest_raw(&image, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .map_err(|e| classify(reference, "manifest", e))?;
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
    let mut out = Capped { buf: Vec::new(), max: size };
    client.pull_blob(&image, layer, &mut out).await.map_err(|e| classify(reference, "component layer", e))?;
    let manifest_json = manifest.annotations.as_ref().and_then(|a| a.get(MANIFEST_ANNOTATION));
    let plugin_manifest = match manifest_json {
        Some(text) => Some(
            serde_json::from_str::<Manifest>(text)
                .map_err(|e| OciError::Invalid(format!("{reference}: annotation {MANIFEST_ANNOTATION} is not a valid plugin manifest: {e}")))?,
        ),
        None => None,
    };
    Ok(Pulled { reference: reference.to_string(), manifest_digest, wasm: out.buf, manifest: plugin_manifest })
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

/// A `Vec` writer that refuses to grow past `max` bytes (a registry that
/// sends more than the descriptor said is cut off).
struct Capped {
    buf: Vec<u8>,
    max: u64,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.buf.len() as u64 + data.len() as u64 > self.max {
            return Poll::Ready(Err(std::io::Error::other(format!("the layer is larger than its descriptor's {} bytes", self.max))));
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capped_writer_refuses_more_than_the_descriptor() {
        use tokio::io::AsyncWriteExt;
        let mut w = Capped { buf: Vec::new(), max: 4 };
        w.write_all(b"abc").await.unwrap();
        assert!(w.write_all(b"de").await.is_err());
        assert_eq!(w.buf, b"abc");
    }

    #[test]
    fn references_are_checked() {
        assert!(matches!(parse_reference("Not A Reference!!"), Err(OciError::Invalid(_))));
        let r = parse_reference("127.0.0.1:5000/cf/nutanix:1.0.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "cf/nutanix");
        assert_eq!(r.tag(), Some("1.0.0"));
    }
}
