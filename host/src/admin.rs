//! The admin API: manage the component registry of a running host over a
//! local HTTP endpoint (`cf-host serve --admin-bind`), with a bearer token.
//! `cf-host plugins ...` is its client.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/plugins` | | `{"plugins": [VersionInfo]}` |
//! | `POST /v1/plugins?digest=sha256:..&activate=true` | the component bytes (its manifest, with signatures, as base64 JSON in `x-cf-plugin-manifest`) | `LoadReport` |
//! | `POST /v1/plugins/oci` | `{"reference", "digest"?, "activate"?}` | `LoadReport` + `source` |
//! | `POST /v1/plugins/{name}/activate` | `{"version"}` | `{"live"}` |
//! | `POST /v1/plugins/{name}/rollback` | | `{"live"}` |
//! | `POST /v1/plugins/{name}/pin` | `{"version", "tenant"?}` | `{}` |
//! | `POST /v1/plugins/{name}/unpin` | `{"tenant"}` | `{}` |
//! | `POST /v1/plugins/{name}/unload` | `{"version"}` | `{}` |
//! | `POST /v1/plugins/{name}/canary` | `{"version", "percent"}` (0 ends it) | `{}` |
//!
//! Every error is `{"error": {"code", "message", "details", "request_id"}}`.

use crate::registry::identity::Manifest;
use crate::registry::oci::{self, OciError, OciOptions};
use crate::registry::{Registry, RegistryError};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;

/// Largest component accepted by upload.
pub const MAX_UPLOAD_BYTES: usize = 256 << 20;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    token: Arc<str>,
    oci: Arc<OciOptions>,
}

/// An error answer with the envelope.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "details": {}, "request_id": self.request_id}});
        (self.status, Json(body)).into_response()
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(crate::sandbox::new_run_id)
        .replace("run-", "req-")
}

fn check(state: &AdminState, headers: &HeaderMap) -> Result<String, ApiError> {
    let id = request_id(headers);
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is a secret.
    let ok = given.is_some_and(|g| {
        let (a, b) = (g.as_bytes(), state.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if ok {
        Ok(id)
    } else {
        Err(ApiError { status: StatusCode::UNAUTHORIZED, code: "UNAUTHENTICATED", message: "missing or wrong bearer token".into(), request_id: id })
    }
}

fn registry_error(e: RegistryError, request_id: String) -> ApiError {
    let status = match e {
        RegistryError::Rejected(_) => StatusCode::BAD_REQUEST,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Conflict(_) => StatusCode::CONFLICT,
    };
    ApiError { status, code: e.code(), message: e.to_string(), request_id }
}

fn bad_request(message: String, request_id: String) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_ARGUMENT", message, request_id }
}

fn version(v: &str, id: &str) -> Result<semver::Version, ApiError> {
    semver::Version::parse(v).map_err(|e| bad_request(format!("version {v:?} is not semver: {e}"), id.to_string()))
}

async fn list(State(st): State<AdminState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    check(&st, &headers)?;
    Ok(Json(json!({"plugins": st.registry.list()})))
}

#[derive(Deserialize)]
struct UploadQuery {
    digest: Option<String>,
    #[serde(default)]
    activate: bool,
}

async fn upload(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let manifest = match headers.get(MANIFEST_HEADER) {
        Some(v) => Some(decode_manifest(v.as_bytes()).map_err(|e| bad_request(e, id.clone()))?),
        None => None,
    };
    let registry = st.registry.clone();
    let report = tokio::task::spawn_blocking(move || registry.load_bytes("upload", &body, manifest, q.digest.as_deref(), q.activate))
        .await
        .map_err(|e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: e.to_string(), request_id: id.clone() })?
        .map_err(|e| registry_error(e, id))?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

/// Header carrying an upload's manifest (base64 of its JSON).
pub const MANIFEST_HEADER: &str = "x-cf-plugin-manifest";

fn decode_manifest(b64: &[u8]) -> Result<Manifest, String> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("{MANIFEST_HEADER} is not base64: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("{MANIFEST_HEADER} is not a valid manifest: {e}"))
}

#[derive(Deserialize)]
struct OciBody {
    reference: String,
    digest: Option<String>,
    #[serde(default)]
    activate: bool,
}

fn oci_error(e: OciError, request_id: String) -> ApiError {
    let (status, code) = match e {
        OciError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        OciError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        OciError::Denied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        OciError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
    };
    ApiError { status, code, message: e.to_string(), request_id }
}

/// Pulls a wasm OCI artifact, then loads it like an upload.
async fn load_oci(State(st): State<AdminState>, headers: HeaderMap, body: Option<Json<OciBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else {
        return Err(bad_request("body must be {\"reference\": \"registry/repository:tag\"}".into(), id));
    };
    let pulled = oci::pull(&b.reference, &st.oci).await.map_err(|e| oci_error(e, id.clone()))?;
    let source = pulled.source();
    let registry = st.registry.clone();
    let src = source.clone();
    let report = tokio::task::spawn_blocking(move || {
        registry.load_bytes(&src, &pulled.wasm, pulled.manifest, b.digest.as_deref(), b.activate)
    })
    .await
    .map_err(|e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: e.to_string(), request_id: id.clone() })?
    .map_err(|e| registry_error(e, id))?;
    let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
    v["source"] = Value::String(source);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
    tenant: Option<String>,
}

#[derive(Deserialize)]
struct TenantBody {
    tenant: String,
}

async fn activate(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>, body: Option<Json<VersionBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else { return Err(bad_request("body must be {\"version\": \"x.y.z\"}".into(), id)) };
    let v = version(&b.version, &id)?;
    st.registry.activate(&name, &v).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({"live": v.to_string()})))
}

async fn rollback(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let v = st.registry.rollback(&name).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({"live": v.to_string()})))
}

async fn pin(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>, body: Option<Json<VersionBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else { return Err(bad_request("body must be {\"version\": \"x.y.z\", \"tenant\": \"...\"}".into(), id)) };
    let v = version(&b.version, &id)?;
    st.registry.pin(&name, &v, b.tenant.as_deref()).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({})))
}

async fn unpin(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>, body: Option<Json<TenantBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else { return Err(bad_request("body must be {\"tenant\": \"...\"}".into(), id)) };
    st.registry.unpin(&name, &b.tenant).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({})))
}

async fn unload(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>, body: Option<Json<VersionBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else { return Err(bad_request("body must be {\"version\": \"x.y.z\"}".into(), id)) };
    let v = version(&b.version, &id)?;
    st.registry.unload(&name, &v).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct CanaryBody {
    version: String,
    percent: u8,
}

async fn canary(State(st): State<AdminState>, headers: HeaderMap, Path(name): Path<String>, body: Option<Json<CanaryBody>>) -> Result<Json<Value>, ApiError> {
    let id = check(&st, &headers)?;
    let Some(Json(b)) = body else { return Err(bad_request("body must be {\"version\": \"x.y.z\", \"percent\": 0-100}".into(), id)) };
    let v = version(&b.version, &id)?;
    st.registry.canary(&name, &v, b.percent).map_err(|e| registry_error(e, id))?;
    Ok(Json(json!({})))
}

pub fn router(registry: Arc<Registry>, token: &str, oci: OciOptions) -> Router {
    let state = AdminState { registry, token: Arc::from(token), oci: Arc::new(oci) };
    Router::new()
        .route("/v1/plugins", get(list).post(upload))
        .route("/v1/plugins/oci", post(load_oci))
        .route("/v1/plugins/{name}/activate", post(activate))
        .route("/v1/plugins/{name}/rollback", post(rollback))
        .route("/v1/plugins/{name}/pin", post(pin))
        .route("/v1/plugins/{name}/unpin", post(unpin))
        .route("/v1/plugins/{name}/unload", post(unload))
        .route("/v1/plugins/{name}/canary", post(canary))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    token: &str,
    oci: OciOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if token.len() < 16 {
        return Err("the admin token must be at least 16 characters".into());
    }
    axum::serve(listener, router(registry, token, oci)).with_graceful_shutdown(shutdown).await.map_err(|e| format!("admin API failed: {e}"))
}

/// The `cf-host plugins` client.
pub struct Client {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Client, String> {
        let base = url::Url::parse(base).map_err(|e| format!("--admin {base:?} is not a URL: {e}"))?;
        let http = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
        Ok(Client { base, token: token.to_string(), http })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, bytes: Option<Vec<u8>>) -> Result<Value, String> {
        self.call_with(method, path, body, bytes, None).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bytes: Option<Vec<u8>>,
        manifest: Option<&Manifest>,
    ) -> Result<Value, String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let mut rb = self.http.request(method, url.clone()).bearer_auth(&self.token);
        if let Some(m) = manifest {
            use base64::Engine as _;
            let json = serde_json::to_vec(m).map_err(|e| e.to_string())?;
            rb = rb.header(MANIFEST_HEADER, base64::engine::general_purpose::STANDARD.encode(json));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(b) = bytes {
            rb = rb.header("content-type", "application/wasm").body(b);
        }
        let resp = rb.send().await.map_err(|e| format!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let e = &v["error"];
        Err(format!(
            "{}: {} (request {})",
            e["code"].as_str().unwrap_or(status.as_str()),
            e["message"].as_str().unwrap_or("no error message"),
            e["request_id"].as_str().unwrap_or("?")
        ))
    }

    fn split(plugin: &str) -> Result<(&str, &str), String> {
        plugin.split_once('@').ok_or_else(|| format!("{plugin:?}: expected NAME@VERSION, e.g. nutanix@1.2.0"))
    }

    pub async fn list(&self) -> Result<String, String> {
        let v = self.call(reqwest::Method::GET, "v1/plugins", None, None).await?;
        let mut out =
            format!("{:<16} {:<12} {:<7} {:<6} {:<8} {:<24} {}\n", "NAME", "VERSION", "WORLD", "LIVE", "IN USE", "PINNED BY", "DIGEST");
        for p in v["plugins"].as_array().into_iter().flatten() {
            let pinned: Vec<&str> = p["pinned_by"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            out.push_str(&format!(
                "{:<16} {:<12} {:<7} {:<6} {:<8} {:<24} {}\n",
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or(""),
                p["world"].as_str().unwrap_or(""),
                match (p["live"].as_bool(), p["canary_percent"].as_u64()) {
                    (Some(true), _) => "yes".to_string(),
                    (_, Some(pct)) => format!("{pct}%"),
                    _ => String::new(),
                },
                p["in_use"],
                pinned.join(","),
                p["digest"].as_str().unwrap_or("")
            ));
        }
        Ok(out)
    }

    pub async fn load(&self, file: &std::path::Path, digest: Option<&str>, activate: bool) -> Result<String, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let manifest_path = file.with_extension("json");
        let manifest = if manifest_path.exists() { Some(Manifest::load(&manifest_path)?) } else { None };
        let mut path = format!("v1/plugins?activate={activate}");
        if let Some(d) = digest {
            path.push_str(&format!("&digest={d}"));
        }
        let v = self.call_with(reqwest::Method::POST, &path, None, Some(bytes), manifest.as_ref()).await?;
        Ok(Client::loaded(&v))
    }

    fn loaded(v: &Value) -> String {
        format!(
            "loaded {}@{} ({}){}{}{}{}\n",
            v["name"].as_str().unwrap_or("?"),
            v["version"].as_str().unwrap_or("?"),
            v["digest"].as_str().unwrap_or("?"),
            v["source"].as_str().map(|s| format!(" from {s}")).unwrap_or_default(),
            v["signed_by"].as_str().map(|k| format!(", signed by {k}")).unwrap_or_default(),
            if v["live"].as_bool() == Some(true) { ", live" } else { "" },
            if v["unchanged"].as_bool() == Some(true) { ", already loaded" } else { "" }
        )
    }

    /// Has the server pull `reference` from its registry and load it.
    pub async fn load_oci(&self, reference: &str, digest: Option<&str>, activate: bool) -> Result<String, String> {
        let body = json!({"reference": reference, "digest": digest, "activate": activate});
        let v = self.call(reqwest::Method::POST, "v1/plugins/oci", Some(body), None).await?;
        Ok(Client::loaded(&v))
    }

    pub async fn canary(&self, plugin: &str, percent: u8) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        let body = json!({"version": version, "percent": percent});
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/canary"), Some(body), None).await?;
        Ok(if percent == 0 { format!("canary of {name} ended\n") } else { format!("{percent}% of tenants get {name}@{version}\n") })
    }

    pub async fn activate(&self, plugin: &str) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/activate"), Some(json!({"version": version})), None).await?;
        Ok(format!("{name}@{version} is live\n"))
    }

    pub async fn rollback(&self, name: &str) -> Result<String, String> {
        let v = self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/rollback"), None, None).await?;
        Ok(format!("{name}@{} is live\n", v["live"].as_str().unwrap_or("?")))
    }

    pub async fn pin(&self, plugin: &str, tenant: Option<&str>) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/pin"), Some(json!({"version": version, "tenant": tenant})), None).await?;
        Ok(match tenant {
            Some(t) => format!("tenant {t} pinned to {name}@{version}\n"),
            None => format!("{name}@{version} is live\n"),
        })
    }

    pub async fn unpin(&self, name: &str, tenant: &str) -> Result<String, String> {
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/unpin"), Some(json!({"tenant": tenant})), None).await?;
        Ok(format!("tenant {tenant} follows the live version of {name}\n"))
    }

    pub async fn unload(&self, plugin: &str) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/unload"), Some(json!({"version": version})), None).await?;
        Ok(format!("{name}@{version} unloaded\n"))
    }
}

/// `GET /metrics`: the host's Prometheus metrics and the live plugin versions.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let live: Vec<crate::metrics::Series> = registry
                    .list()
                    .into_iter()
                    .filter(|v| v.live)
                    .map(|v| ("cf_host_plugin_live".to_string(), vec![("plugin", v.name), ("version", v.version)], 1.0))
                    .collect();
                let text = registry.runtime().metrics().render(&live);
                ([("content-type", "text/plain; version=0.0.4")], text)
            }
        }),
    )
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    axum::serve(listener, metrics_router(registry)).with_graceful_shutdown(shutdown).await.map_err(|e| format!("metrics endpoint failed: {e}"))
}
