//! The admin API's routes.
//!
//! | method and path | role | body | answer |
//! |---|---|---|---|
//! | `GET /v1/plugins?page=&per_page=` | read | | `{"plugins": [VersionInfo], "page", "per_page", "total", "pages"}` |
//! | `POST /v1/plugins?digest=sha256:..&activate=true` | admin | the component bytes (its manifest, with signatures, as base64 JSON in `x-cf-plugin-manifest`) | `LoadReport` |
//! | `POST /v1/plugins/oci` | admin | `{"reference", "digest"?, "activate"?}` | `LoadReport` + `source` |
//! | `POST /v1/plugins/{name}/activate` | admin | `{"version"}` | `{"live"}` |
//! | `POST /v1/plugins/{name}/rollback` | admin | | `{"live"}` |
//! | `POST /v1/plugins/{name}/pin` | operate (admin without `tenant`) | `{"version", "tenant"?}` | `{}` |
//! | `POST /v1/plugins/{name}/unpin` | operate | `{"tenant"}` | `{}` |
//! | `POST /v1/plugins/{name}/unload` | admin | `{"version"}` | `{}` |
//! | `POST /v1/plugins/{name}/canary` | admin | `{"version", "percent"}` (0 ends it) | `{}` |
//! | `GET /v1/webhooks?page=&per_page=` | read | | `{"webhooks": [..], "page", ...}` |
//! | `POST /v1/webhooks` | admin | `{"url", "events"?, "secret"}` | the webhook (no secret) |
//! | `DELETE /v1/webhooks/{id}` | admin | | `{}` |
//!
//! Every request is authenticated from its headers before any body is
//! read ([`super::auth`]); a token scoped to a tenant acts for that tenant
//! only. Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`
//! and `X-RateLimit-Reset` (seconds); past the limit, `429` with
//! `Retry-After`. Every error, the framework's own included, is
//! `{"error": {"code", "message", "details", "request_id"}}`.
//!
//! Uploads stream to a temporary file with a size cap (checked against
//! `Content-Length` first), a few at a time.

use super::auth::{AuthError, AuthPolicy, Caller, Quota, RateLimiter, Role};
use crate::registry::identity::Manifest;
use crate::registry::oci::{self, OciError, OciOptions};
use crate::fleet::{RegistryFollower, SubmitError};
use crate::registry::ops::{Op, Outcome};
use crate::registry::{Registry, RegistryError};
use crate::webhook::Subscriptions;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Largest component accepted by upload, by default.
pub const MAX_UPLOAD_BYTES: u64 = 64 << 20;
/// Largest JSON body of the other routes.
const MAX_JSON_BYTES: usize = 64 << 10;
/// Header carrying an upload's manifest (base64 of its JSON).
pub const MANIFEST_HEADER: &str = "x-cf-plugin-manifest";

/// The admin API's settings.
pub struct AdminConfig {
    pub auth: AuthPolicy,
    /// Requests per caller per `rate_window`.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub max_upload_bytes: u64,
    /// Uploads (and OCI pulls) in progress at once; more are refused with
    /// 429 until one ends.
    pub max_concurrent_uploads: usize,
    /// Registered webhooks (`/v1/webhooks`).
    pub webhooks: Arc<Subscriptions>,
    /// Networks registered webhooks may reach although they are private,
    /// loopback or link-local (`--webhook-allow-network`).
    pub webhook_networks: Vec<ipnet::IpNet>,
    /// Fleet mode: changes go through the fleet's shared registry log, so
    /// every replica applies them.
    pub registry_sync: Option<Arc<RegistryFollower>>,
}

impl AdminConfig {
    /// Settings with the defaults around `auth`.
    pub fn new(auth: AuthPolicy) -> AdminConfig {
        AdminConfig {
            auth,
            rate_limit: 600,
            rate_window: Duration::from_secs(60),
            max_upload_bytes: MAX_UPLOAD_BYTES,
            max_concurrent_uploads: 2,
            webhooks: Arc::new(Subscriptions::in_memory(Vec::new())),
            webhook_networks: Vec::new(),
            registry_sync: None,
        }
    }

    /// Registered webhooks may also reach `networks`.
    pub fn allow_webhook_networks(mut self, networks: Vec<ipnet::IpNet>) -> AdminConfig {
        self.webhooks = Arc::new(Subscriptions::in_memory(networks.clone()));
        self.webhook_networks = networks;
        self
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    auth: Arc<AuthPolicy>,
    limiter: Arc<RateLimiter>,
    uploads: Arc<Semaphore>,
    max_upload_bytes: u64,
    oci: Arc<OciOptions>,
    webhooks: Arc<Subscriptions>,
    sync: Option<Arc<RegistryFollower>>,
}

/// The request's id (from `X-Request-Id`, else a new one).
#[derive(Clone)]
struct RequestId(String);

/// What a handler knows of its request: its id and its caller, set by the
/// layers before the handler runs.
struct Req {
    id: RequestId,
    caller: Caller,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Req {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Req, ApiError> {
        let id = parts.extensions.get::<RequestId>().cloned().unwrap_or_else(|| RequestId("req-?".into()));
        match parts.extensions.get::<Caller>().cloned() {
            Some(caller) => Ok(Req { id, caller }),
            None => Err(api_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "missing or wrong bearer token", &id)),
        }
    }
}

impl Req {
    /// The caller may act for every tenant (not a tenant-scoped token).
    fn everyone(caller: &Caller, id: &RequestId) -> Result<(), ApiError> {
        caller.may_act_for(None).map_err(|e| forbidden(e, id))
    }
}

/// An error answer with the envelope.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    request_id: String,
}

/// Marks an answer that already carries the envelope.
const ENVELOPE_HEADER: &str = "x-cf-envelope";

fn envelope(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "details": {}, "request_id": request_id}});
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(ENVELOPE_HEADER, HeaderValue::from_static("1"));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        envelope(self.status, self.code, &self.message, &self.request_id)
    }
}

fn api_error(status: StatusCode, code: &'static str, message: impl Into<String>, id: &RequestId) -> ApiError {
    ApiError { status, code, message: message.into(), request_id: id.0.clone() }
}

/// The code of an error status with no envelope of its own.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 411 | 415 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 405 => "NOT_FOUND",
        408 => "DEADLINE_EXCEEDED",
        409 => "FAILED_PRECONDITION",
        413 => "PAYLOAD_TOO_LARGE",
        429 => "RATE_LIMITED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// Outermost: a request id for every request, echoed in `X-Request-Id`,
/// and the envelope for every error answer that lacks one (the framework's
/// rejections: unknown routes, wrong methods, bad JSON, wrong content type).
async fn envelope_layer(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| crate::runtime::new_run_id().replace("run-", "req-"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let resp = next.run(req).await;
    let status = resp.status();
    let mut resp = if status.as_u16() >= 400 && !resp.headers().contains_key(ENVELOPE_HEADER) {
        let (parts, body) = resp.into_parts();
        // The framework's message: a short plain text.
        let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let message = match (status.as_u16(), text.trim()) {
            (404, "") => "no such route".to_string(),
            (405, "") => "method not allowed on this route".to_string(),
            (_, "") => status.canonical_reason().unwrap_or("error").to_string(),
            (_, t) => t.to_string(),
        };
        let mut r = envelope(status, code_of(status), &message, &id);
        for (k, v) in parts.headers.iter().filter(|(k, _)| k.as_str().starts_with("x-ratelimit") || *k == "retry-after") {
            r.headers_mut().insert(k.clone(), v.clone());
        }
        r
    } else {
        resp
    };
    resp.headers_mut().remove(ENVELOPE_HEADER);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn quota_headers(resp: &mut Response, q: &Quota) {
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(q.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(q.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(q.reset_s));
    if let Some(s) = q.retry_after_s {
        h.insert("retry-after", HeaderValue::from(s));
    }
}

/// Per route: authentication from the headers (before the body is read),
/// the caller's rate limit, then the route's role.
async fn gate(State((st, needs)): State<(AdminState, Role)>, mut req: Request, next: Next) -> Response {
    let id = req.extensions().get::<RequestId>().cloned().unwrap_or_else(|| RequestId("req-?".into()));
    let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let caller = st.auth.authenticate(bearer);
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_else(|| "?".into());
    let key = match &caller {
        Ok(c) => format!("token:{}", c.name),
        Err(_) => format!("peer:{peer}"),
    };
    let quota = st.limiter.take(&key, Instant::now());
    let mut resp = if let Some(after) = quota.retry_after_s {
        api_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", format!("too many requests; retry in {after} s"), &id).into_response()
    } else {
        match caller.and_then(|c| c.require(needs).map(|()| c)) {
            Err(e @ AuthError::Unauthenticated) => api_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", e.to_string(), &id).into_response(),
            Err(e) => api_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", e.to_string(), &id).into_response(),
            Ok(c) => {
                req.extensions_mut().insert(c);
                next.run(req).await
            }
        }
    };
    quota_headers(&mut resp, &quota);
    resp
}

fn registry_error(e: RegistryError, id: &RequestId) -> ApiError {
    let status = match e {
        RegistryError::Rejected(_) => StatusCode::BAD_REQUEST,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Conflict(_) => StatusCode::CONFLICT,
    };
    api_error(status, e.code(), e.to_string(), id)
}

/// Applies a change: here, or in fleet mode through the shared log (every
/// replica applies it; this one answers once it has).
async fn apply(st: &AdminState, op: Op, bytes: Option<Vec<u8>>, id: &RequestId) -> Result<Outcome, ApiError> {
    match &st.sync {
        Some(sync) => sync.submit(op, bytes).await.map_err(|e| match e {
            SubmitError::Registry(e) => registry_error(e, id),
            other => api_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", other.to_string(), id),
        }),
        None => {
            let registry = st.registry.clone();
            tokio::task::spawn_blocking(move || registry.apply(&op, bytes.as_deref()))
                .await
                .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), id))?
                .map_err(|e| registry_error(e, id))
        }
    }
}

/// Loads `bytes`: here (one digest, the registry's), or in fleet mode as
/// an op of the shared log, keyed by the digest checked here first.
async fn load(st: &AdminState, source: String, bytes: Vec<u8>, manifest: Option<Manifest>, expected: Option<String>, activate: bool, id: &RequestId) -> Result<Value, ApiError> {
    let report = match &st.sync {
        Some(_) => {
            let digest = crate::runtime::component_digest(&bytes);
            if let Some(want) = &expected {
                crate::registry::check_digest(&source, &digest, want).map_err(|e| registry_error(e, id))?;
            }
            match apply(st, Op::Load { source, digest, manifest, activate }, Some(bytes), id).await? {
                Outcome::Loaded(report) => report,
                _ => return Ok(Value::Null),
            }
        }
        None => {
            let registry = st.registry.clone();
            tokio::task::spawn_blocking(move || registry.load_bytes(&source, &bytes, manifest, expected.as_deref(), activate))
                .await
                .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), id))?
                .map_err(|e| registry_error(e, id))?
        }
    };
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

fn live(outcome: Outcome) -> Json<Value> {
    match outcome {
        Outcome::Live(v) => Json(json!({"live": v.to_string()})),
        _ => Json(json!({})),
    }
}

fn bad_request(message: impl Into<String>, id: &RequestId) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message, id)
}

fn forbidden(e: AuthError, id: &RequestId) -> ApiError {
    api_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", e.to_string(), id)
}

fn version(v: &str, id: &RequestId) -> Result<semver::Version, ApiError> {
    semver::Version::parse(v).map_err(|e| bad_request(format!("version {v:?} is not semver: {e}"), id))
}

/// A JSON body, required, with the envelope on every rejection.
fn body<T>(b: JsonBody<T>, example: &str, id: &RequestId) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| bad_request(format!("{}; the body must be {example}", e.body_text()), id))
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
}

/// Largest page.
const MAX_PER_PAGE: usize = 200;

impl Page {
    /// `items` cut to the page, and the page's fields for the answer.
    fn cut<T: serde::Serialize>(&self, key: &str, items: Vec<T>, id: &RequestId) -> Result<Value, ApiError> {
        let per_page = self.per_page.unwrap_or(50);
        let page = self.page.unwrap_or(1);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(bad_request(format!("per_page must be 1-{MAX_PER_PAGE}, got {per_page}"), id));
        }
        if page == 0 {
            return Err(bad_request("page starts at 1", id));
        }
        let total = items.len();
        let slice: Vec<T> = items.into_iter().skip((page - 1).saturating_mul(per_page)).take(per_page).collect();
        Ok(json!({key: slice, "page": page, "per_page": per_page, "total": total, "pages": total.div_ceil(per_page)}))
    }
}

async fn list(State(st): State<AdminState>, r: Req, Query(p): Query<Page>) -> Result<Json<Value>, ApiError> {
    let mut plugins = st.registry.list();
    // A tenant's token sees its own pins only.
    if let Some(t) = &r.caller.tenant {
        for v in &mut plugins {
            v.pinned_by.retain(|p| p == t);
        }
    }
    Ok(Json(p.cut("plugins", plugins, &r.id)?))
}

#[derive(Deserialize)]
struct UploadQuery {
    digest: Option<String>,
    #[serde(default)]
    activate: bool,
}

/// A temporary file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn upload_slot(st: &AdminState, id: &RequestId) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    st.uploads.clone().try_acquire_owned().map_err(|_| {
        api_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "too many uploads in progress; retry when one ends", id)
    })
}

/// Streams the body into a temporary file, refusing it past `max` bytes.
async fn receive(body: Body, max: u64, id: &RequestId) -> Result<(TempFile, u64), ApiError> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let too_large = || api_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", format!("the component is larger than {max} bytes"), id);
    let path = std::env::temp_dir().join(format!("cf-host-upload-{}.wasm", crate::runtime::new_run_id()));
    let internal = |e: std::io::Error| api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", format!("cannot keep the upload: {e}"), id);
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    let temp = TempFile(path);
    let mut stream = body.into_data_stream();
    let mut n: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad_request(format!("the upload broke off: {e}"), id))?;
        n += chunk.len() as u64;
        if n > max {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok((temp, n))
}

async fn upload(
    State(st): State<AdminState>,
    Req { id, .. }: Req,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let manifest = match headers.get(MANIFEST_HEADER) {
        Some(v) => Some(decode_manifest(v.as_bytes()).map_err(|e| bad_request(e, &id))?),
        None => None,
    };
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_upload_bytes) {
        return Err(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the component is larger than {} bytes", st.max_upload_bytes),
            &id,
        ));
    }
    let _slot = upload_slot(&st, &id)?;
    let (file, _) = receive(body, st.max_upload_bytes, &id).await?;
    let bytes = tokio::fs::read(&file.0).await.map_err(|e| registry_error(RegistryError::Rejected(format!("cannot read the upload: {e}")), &id))?;
    drop(file);
    Ok(Json(load(&st, "upload".into(), bytes, manifest, q.digest, q.activate, &id).await?))
}

fn decode_manifest(b64: &[u8]) -> Result<Manifest, String> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("{MANIFEST_HEADER} is not base64: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("{MANIFEST_HEADER} is not a valid manifest: {e}"))
}

#[derive(Deserialize)]
struct OciBody {
    reference: String,
    digest: Option<String>,
    #[serde(default)]
    activate: bool,
}

fn oci_error(e: OciError, id: &RequestId) -> ApiError {
    let (status, code) = match e {
        OciError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        OciError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        OciError::Denied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        OciError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
    };
    api_error(status, code, e.to_string(), id)
}

/// Pulls a wasm OCI artifact, then loads it like an upload.
async fn load_oci(State(st): State<AdminState>, Req { id, .. }: Req, b: JsonBody<OciBody>) -> Result<Json<Value>, ApiError> {
    let b = body(b, "{\"reference\": \"registry/repository:tag\"}", &id)?;
    let _slot = upload_slot(&st, &id)?;
    let pulled = oci::pull(&b.reference, &st.oci).await.map_err(|e| oci_error(e, &id))?;
    let source = pulled.source();
    let mut v = load(&st, source.clone(), pulled.wasm, pulled.manifest, b.digest, b.activate, &id).await?;
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

async fn activate(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
    b: JsonBody<VersionBody>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    let b = body(b, "{\"version\": \"x.y.z\"}", &id)?;
    let v = version(&b.version, &id)?;
    Ok(live(apply(&st, Op::Activate { name, version: v.to_string() }, None, &id).await?))
}

async fn rollback(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    Ok(live(apply(&st, Op::Rollback { name }, None, &id).await?))
}

async fn pin(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
    b: JsonBody<VersionBody>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b, "{\"version\": \"x.y.z\", \"tenant\": \"...\"}", &id)?;
    caller.may_act_for(b.tenant.as_deref()).map_err(|e| forbidden(e, &id))?;
    if b.tenant.is_none() {
        // Pinning everyone is activating: the admin's.
        caller.require(Role::Admin).map_err(|e| forbidden(e, &id))?;
    }
    let v = version(&b.version, &id)?;
    apply(&st, Op::Pin { name, version: v.to_string(), tenant: b.tenant }, None, &id).await?;
    Ok(Json(json!({})))
}

async fn unpin(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
    b: JsonBody<TenantBody>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b, "{\"tenant\": \"...\"}", &id)?;
    caller.may_act_for(Some(&b.tenant)).map_err(|e| forbidden(e, &id))?;
    apply(&st, Op::Unpin { name, tenant: b.tenant }, None, &id).await?;
    Ok(Json(json!({})))
}

async fn unload(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
    b: JsonBody<VersionBody>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    let b = body(b, "{\"version\": \"x.y.z\"}", &id)?;
    let v = version(&b.version, &id)?;
    apply(&st, Op::Unload { name, version: v.to_string() }, None, &id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct CanaryBody {
    version: String,
    percent: u8,
}

async fn canary(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(name): Path<String>,
    b: JsonBody<CanaryBody>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    let b = body(b, "{\"version\": \"x.y.z\", \"percent\": 0-100}", &id)?;
    let v = version(&b.version, &id)?;
    apply(&st, Op::Canary { name, version: v.to_string(), percent: b.percent }, None, &id).await?;
    Ok(Json(json!({})))
}

async fn list_webhooks(State(st): State<AdminState>, Req { id, .. }: Req, Query(p): Query<Page>) -> Result<Json<Value>, ApiError> {
    Ok(Json(p.cut("webhooks", st.webhooks.list(), &id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    url: String,
    events: Option<Vec<String>>,
    secret: String,
}

async fn add_webhook(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    b: JsonBody<WebhookBody>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    let b = body(b, "{\"url\": \"https://...\", \"events\": [\"collection.finished\"], \"secret\": \"16+ characters\"}", &id)?;
    // The store is blocking (a database in fleet mode).
    let hooks = st.webhooks.clone();
    let hook = tokio::task::spawn_blocking(move || hooks.add(&b.url, b.events, &b.secret))
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), &id))?
        .map_err(|e| bad_request(e, &id))?;
    Ok(Json(serde_json::to_value(hook).unwrap_or(Value::Null)))
}

async fn delete_webhook(
    State(st): State<AdminState>,
    Req { id, caller }: Req,
    Path(hook): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Req::everyone(&caller, &id)?;
    let hooks = st.webhooks.clone();
    let gone = {
        let hook = hook.clone();
        tokio::task::spawn_blocking(move || hooks.remove(&hook)).await.map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), &id))?
    };
    match gone {
        Ok(true) => Ok(Json(json!({}))),
        Ok(false) => Err(api_error(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no webhook {hook:?}"), &id)),
        Err(e) => Err(api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e, &id)),
    }
}

/// The routes with their roles.
pub fn router(registry: Arc<Registry>, config: AdminConfig, oci: OciOptions) -> Router {
    let st = AdminState {
        registry,
        auth: Arc::new(config.auth),
        limiter: Arc::new(RateLimiter::new(config.rate_limit, config.rate_window)),
        uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1))),
        max_upload_bytes: config.max_upload_bytes,
        oci: Arc::new(oci),
        webhooks: config.webhooks,
        sync: config.registry_sync,
    };
    let needs = |role: Role, m: MethodRouter<AdminState>| m.route_layer(middleware::from_fn_with_state((st.clone(), role), gate));
    Router::new()
        .route("/v1/plugins", needs(Role::Read, get(list)).merge(needs(Role::Admin, post(upload).layer(DefaultBodyLimit::disable()))))
        .route("/v1/plugins/oci", needs(Role::Admin, post(load_oci)))
        .route("/v1/plugins/{name}/activate", needs(Role::Admin, post(activate)))
        .route("/v1/plugins/{name}/rollback", needs(Role::Admin, post(rollback)))
        .route("/v1/plugins/{name}/pin", needs(Role::Operate, post(pin)))
        .route("/v1/plugins/{name}/unpin", needs(Role::Operate, post(unpin)))
        .route("/v1/plugins/{name}/unload", needs(Role::Admin, post(unload)))
        .route("/v1/plugins/{name}/canary", needs(Role::Admin, post(canary)))
        .route("/v1/webhooks", needs(Role::Read, get(list_webhooks)).merge(needs(Role::Admin, post(add_webhook))))
        .route("/v1/webhooks/{id}", needs(Role::Admin, axum::routing::delete(delete_webhook)))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .with_state(st)
        .layer(middleware::from_fn(envelope_layer))
}

/// Serves the admin API on `listener` until `shutdown` resolves, with the
/// connection limits of [`crate::net`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    config: AdminConfig,
    oci: OciOptions,
    conn: crate::net::ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if config.auth.is_empty() {
        return Err("the admin API needs at least one token".into());
    }
    crate::net::serve_http(listener, router(registry, config, oci), conn, shutdown)
        .await
        .map_err(|e| format!("admin API failed: {e}"))
}
