//! Nutanix Prism Central simulator — a **test double**, not a product part.
//!
//! # Layout
//!
//! - [`estate`]: the deterministic simulated estate (clusters with the Prism
//!   Central pseudo-cluster, hosts, VMs, subnets, images).
//! - [`lazy`]: lists rendered on demand (VMs, alerts, VM recovery points):
//!   an entity from its index, with only what changed since held, so an
//!   estate of a million VMs costs memory in proportion to its changes.
//! - [`render`]: a VM of the v3 and v4 VM lists written as JSON bytes from
//!   its index, without a tree: list pages are each entity's text one
//!   after the other; the trees ([`estate::vm_entity`], [`v4::vm`]) stay
//!   the definition and the tests' oracle, the bytes equal to theirs.
//! - this module: a real HTTP/1.1 server (axum) on a caller-given listener
//!   implementing the Prism Central v3 list endpoints
//!   (`POST /api/nutanix/v3/{vms,clusters,hosts,subnets,images}/list`) with
//!   HTTP Basic auth, `offset`/`length` pagination (length 1-500, default 20)
//!   and `metadata.total_matches`, v3 error bodies
//!   (`{state: "ERROR", code, message_list: [{message, reason, details}]}`,
//!   `details` on a 4xx), and fault switches ([`Faults`]): fixed or random
//!   latency, a requests-per-second limit answering 429, a 5xx rate, 429
//!   with `Retry-After` every Nth call, truncated bodies, failures (any
//!   status, in the API's own error shape) pinned to given pages, a VM list
//!   that changes while it is read, v4 lists the gateway does not serve, and
//!   lists cut short without any error (`cut_lists`).
//! - [`v4`]: v4 lists at each revision of [`SimConfig::v4_revisions`] (`v4.0` by
//!   default, as pc.2024.3); other revisions and unknown paths get the
//!   gateway's 404 (`{"message": "The requested URL was not found"}`), v4
//!   services' errors are `ErrorResponse`s with `AppMessage`s, as
//!   Nutanix's v4 SDK models them.
//! - [`v2`]: Prism Element mode ([`SimConfig::prism_element`]): the
//!   v2.0 API of one cluster (`cluster`, `hosts`, `vms` with disks and
//!   NICs, `storage_containers`; `offset`/`length` and `page`/`count`
//!   paging), no v4, a v3 cluster list without Prism Central.
//! - [`tls`]: optional HTTPS with a certificate from a throwaway CA, as an
//!   untrusted Prism certificate would be.
//! - v4 volume groups (`/api/volumes/v4.0/config/volume-groups`, disks and
//!   attachments as sub-resources); [`SimConfig::v3_absent`] makes a v3 list
//!   answer 404, as on a Prism Central that dropped it.
//! - [`network`]: VPCs, floating IPs, route tables, virtual switches, Flow
//!   security policies, address and service groups (v4 lists; v3 lists
//!   rendered from them, but for route tables and virtual switches).
//! - v4-only storage containers (`/api/clustermgmt/v4.0/config/storage-containers`;
//!   the v3 list answers 404 for them, as Prism Central has none).
//! - data protection ([`dataprotection`]): v3 protection rules, VM recovery
//!   points and recovery plans; v4 protection policies (datapolicies) and
//!   recovery points (dataprotection); recovery plans through v3 only, as
//!   datapolicies v4.0 has no list of them.
//! - v4-only compute extras and operations ([`operations`]): VM templates
//!   (vmm), alerts (monitoring), LCM entities (lifecycle); their v3 lists
//!   answer 404, as Prism Central has none.
//! - change filters for incremental collection: v3 `filter:
//!   last_update_time=ge=T` (or `=gt=`) and v4 `$filter=updateTime ge T`
//!   plus `$select=extId` on the VM list; tests change the estate between
//!   runs with [`SimState::update_vm`], [`SimState::remove_vm`] and
//!   [`SimState::add_vm`].
//! - control endpoints for tests and demos: `PUT /_sim/faults` (JSON
//!   [`Faults`]), `GET /_sim/stats` (requests per kind).
//!
//! - `main.rs`: the standalone binary (`prism-sim --port --vms --clusters
//!   --tls --v3-only --v4-revisions --prism-element --latency-ms
//!   --latency-jitter-ms --rps-limit`).
//!
//! Used by the integration tests, the benchmarks and by `cf-host demo`.

pub mod dataprotection;
pub mod estate;
pub mod lazy;
pub mod network;
pub mod operations;
pub mod render;
pub mod tls;
pub mod v2;
pub mod v4;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use estate::{Estate, EstateConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub const MAX_LENGTH: u64 = 500;
pub const DEFAULT_LENGTH: u64 = 20;

/// A failure pinned to one page of one list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PageFault {
    /// `vms`, `clusters`, ...
    pub kind: String,
    pub offset: u64,
    /// HTTP status to answer (e.g. 500, 503, 429); 0 = truncate the body
    /// instead; 200 = a page without entities that still reports the list's
    /// true total (a server losing a page silently).
    pub status: u16,
    /// How many times; `None` = every time.
    #[serde(default)]
    pub times: Option<u32>,
}

/// Fault switches. All off by default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Faults {
    /// Added to every list call.
    #[serde(default)]
    pub latency_ms: u64,
    /// A random extra latency, 0 to this many ms, per list call.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// List calls per second the simulated Prism takes (a token bucket as
    /// deep as one second of calls); calls over it answer 429 with
    /// `Retry-After: 1`. 0 = no limit.
    #[serde(default)]
    pub rps_limit: f64,
    /// The VM list changes while it is read: every `every`th VM list call
    /// (v3 or v4) first removes `remove` VMs from the front of the list and
    /// adds `add` at its end.
    #[serde(default)]
    pub vm_churn: Option<VmChurn>,
    /// Probability (0-1) that a list call answers 500 (seeded, repeatable).
    #[serde(default)]
    pub error_rate: f64,
    /// Every Nth list call answers 429 (0 = never).
    #[serde(default)]
    pub rate_limit_every: u32,
    /// `Retry-After` seconds sent with 429s.
    #[serde(default)]
    pub retry_after_secs: u32,
    /// Every Nth list call gets a truncated 200 body (0 = never).
    #[serde(default)]
    pub truncate_every: u32,
    #[serde(default)]
    pub pages: Vec<PageFault>,
    /// v4 lists (`hosts`, ...) the gateway answers 404 for, as a Prism
    /// Central without that API does.
    #[serde(default)]
    pub v4_absent: Vec<String>,
    /// Lists (`vms`, ...) that answer, v3 and v4 alike, as if only their
    /// first N entities existed (`total_matches` N): a list cut short
    /// without any error, as a server that loses entities without saying
    /// so, or a wrong filter, would answer.
    #[serde(default)]
    pub cut_lists: BTreeMap<String, u64>,
}

impl SimState {
    /// The length a list is cut to (fault `cut_lists`), if it is.
    fn cut(&self, kind: &str) -> Option<usize> {
        let f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        f.cut_lists.get(kind).map(|n| usize::try_from(*n).unwrap_or(usize::MAX))
    }
}

/// VMs removed and added while the VM list is read (see [`Faults::vm_churn`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct VmChurn {
    pub every: u32,
    #[serde(default)]
    pub remove: u32,
    #[serde(default)]
    pub add: u32,
    /// How many times in all; `None` = on and on.
    #[serde(default)]
    pub times: Option<u32>,
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub estate: EstateConfig,
    pub username: String,
    pub password: String,
    pub faults: Faults,
    /// Serve HTTPS with a self-signed (throwaway-CA) certificate.
    pub tls: bool,
    /// Also offer the v4 REST APIs (a Prism Central pc.2024.3 or later);
    /// without, v4 paths answer 404 as older Prism Centrals do.
    pub v4: bool,
    /// v3 lists (`volume_groups`, ...) that answer 404, as on a Prism
    /// Central that dropped them.
    pub v3_absent: Vec<String>,
    /// The v4 revisions served (`v4.0`, `v4.1`, `v4.2`), every namespace
    /// alike; others answer the gateway's 404. pc.2024.3 serves `v4.0`.
    pub v4_revisions: Vec<String>,
    /// Behave as a Prism Element managed without Prism Central ([`v2`]):
    /// the v2.0 API of the estate's first cluster, no v4 API, a v3 cluster
    /// list of that cluster alone.
    pub prism_element: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            estate: EstateConfig::default(),
            username: "admin".into(),
            password: "nutanix/4u".into(),
            faults: Faults::default(),
            tls: false,
            v4: false,
            v3_absent: Vec::new(),
            v4_revisions: vec!["v4.0".into()],
            prism_element: false,
        }
    }
}

/// Shared server state.
pub struct SimState {
    /// The estate; tests change it between runs through the methods below.
    estate: std::sync::RwLock<Estate>,
    /// VMs added so far (for unique indexes of new VMs).
    added: AtomicU64,
    username: String,
    password: String,
    faults: Mutex<Faults>,
    calls: AtomicU64,
    rng: Mutex<u64>,
    per_kind: Mutex<BTreeMap<String, u64>>,
    /// v4 list calls per revision (`v4.0`, ...).
    per_revision: Mutex<BTreeMap<String, u64>>,
    unauthorized: AtomicU64,
    /// The rate limit's bucket: (tokens, when last filled).
    bucket: Mutex<(f64, std::time::Instant)>,
    /// Calls answered 429 by the rate limit.
    throttled: AtomicU64,
    /// VM list calls so far (for the churn).
    vm_calls: AtomicU64,
    churned: AtomicU64,
    /// List calls being answered now, and the most at once.
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    v4: bool,
    v3_absent: Vec<String>,
    v4_revisions: Vec<String>,
    prism_element: bool,
}

impl SimState {
    pub fn new(config: SimConfig) -> SimState {
        let mut estate = Estate::generate(config.estate);
        if config.prism_element {
            // Aplos on a Prism Element lists its own cluster alone.
            let pe = estate.clusters.iter().find(|c| !estate::is_prism_central(c)).cloned();
            estate.clusters = pe.into_iter().collect();
        }
        SimState {
            estate: std::sync::RwLock::new(estate),
            added: AtomicU64::new(0),
            username: config.username,
            password: config.password,
            faults: Mutex::new(config.faults),
            calls: AtomicU64::new(0),
            bucket: Mutex::new((0.0, std::time::Instant::now())),
            throttled: AtomicU64::new(0),
            vm_calls: AtomicU64::new(0),
            churned: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            rng: Mutex::new(0x2545F4914F6CDD1D),
            per_kind: Mutex::new(BTreeMap::new()),
            per_revision: Mutex::new(BTreeMap::new()),
            unauthorized: AtomicU64::new(0),
            v4: config.v4 && !config.prism_element,
            v3_absent: config.v3_absent,
            v4_revisions: config.v4_revisions,
            prism_element: config.prism_element,
        }
    }

    /// The current estate (read-locked).
    pub fn estate(&self) -> std::sync::RwLockReadGuard<'_, Estate> {
        self.estate.read().unwrap_or_else(|p| p.into_inner())
    }

    fn estate_mut(&self) -> std::sync::RwLockWriteGuard<'_, Estate> {
        self.estate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Renames the VM with `uuid` and sets its `last_update_time` to `at`
    /// (as a user's edit in Prism would); false if there is no such VM.
    pub fn update_vm(&self, uuid: &str, name: &str, at: &str) -> bool {
        self.estate_mut().vms.edit(uuid, |vm| {
            vm["status"]["name"] = json!(name);
            vm["spec"]["name"] = json!(name);
            vm["metadata"]["last_update_time"] = json!(at);
        })
    }

    /// Gives the Prism Central pseudo-cluster of the v3 cluster list
    /// another uuid: the collector's `account`, so several simulators
    /// stand for distinct Prism Centrals (v3 only; v4 answers are
    /// unchanged).
    pub fn set_prism_central_uuid(&self, uuid: &str) {
        let mut e = self.estate_mut();
        if let Some(pc) = e.clusters.first_mut() {
            pc["metadata"]["uuid"] = json!(uuid);
        }
    }

    /// Deletes the VM with `uuid`; false if there is no such VM.
    pub fn remove_vm(&self, uuid: &str) -> bool {
        self.estate_mut().vms.remove(uuid)
    }

    /// Creates a VM whose `creation_time` and `last_update_time` are `at`;
    /// returns its uuid.
    pub fn add_vm(&self, at: &str) -> String {
        let mut e = self.estate_mut();
        let i = e.config.vms + self.added.fetch_add(1, Ordering::Relaxed) as usize;
        let mut vm = estate::vm_entity(&e.config, i);
        vm["metadata"]["creation_time"] = json!(at);
        vm["metadata"]["last_update_time"] = json!(at);
        let uuid = vm["metadata"]["uuid"].as_str().unwrap_or_default().to_string();
        e.vms.push(vm);
        uuid
    }

    /// Makes the networking `n` VPCs (and as many policies, groups,
    /// switches and route tables, `2n` floating IPs) and adds each VPC's
    /// overlay subnet to the subnet list (see [`network`]).
    pub fn add_vpc_networking(&self, n: usize) {
        let mut e = self.estate_mut();
        e.network = network::Network::generate(&e.config, n);
        let overlay = e.network.overlay_subnets.clone();
        e.subnets.extend(overlay);
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// Authorized list calls per kind (`vms`, ...; v4 calls as `v4/vms`).
    pub fn calls_per_kind(&self) -> BTreeMap<String, u64> {
        self.per_kind.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Authorized v4 list calls per revision served (`v4.0`, ...).
    pub fn calls_per_revision(&self) -> BTreeMap<String, u64> {
        self.per_revision.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn unauthorized_calls(&self) -> u64 {
        self.unauthorized.load(Ordering::Relaxed)
    }

    /// List calls answered 429 by [`Faults::rps_limit`].
    pub fn throttled_calls(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// The most list calls answered at once so far.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Relaxed)
    }

    /// Starts [`Self::peak_in_flight`] again from the calls in flight now.
    pub fn reset_peak_in_flight(&self) {
        self.peak_in_flight.store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Counts a list call in flight until the guard is dropped.
    fn flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    /// Whether the rate limit takes one more call now.
    fn admit(&self, rps: f64) -> bool {
        if rps <= 0.0 {
            return true;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let depth = rps.max(1.0);
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rps).min(depth);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Applies [`Faults::vm_churn`] before a VM list call.
    fn churn(&self, churn: Option<&VmChurn>) {
        let n = self.vm_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(c) = churn.filter(|c| c.every > 0 && n.is_multiple_of(u64::from(c.every))) else { return };
        if c.times.is_some_and(|t| self.churned.load(Ordering::SeqCst) >= u64::from(t)) {
            return;
        }
        self.churned.fetch_add(1, Ordering::SeqCst);
        {
            self.estate_mut().vms.remove_front(c.remove as usize);
        }
        for _ in 0..c.add {
            self.add_vm("2024-06-01T00:00:00Z");
        }
    }

    fn next_random(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        // xorshift64*
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A list call in flight (see [`SimState::flight`]).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A v3 error answer: the envelope, with `details` on a 4xx (what Prism
/// puts there: which field is wrong).
fn v3_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let mut entry = json!({"message": message, "reason": reason});
    if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
        entry["details"] = json!({"request": [format!("{reason}: {message}")]});
    }
    let body = json!({
        "api_version": "3.1",
        "code": status.as_u16(),
        "message_list": [entry],
        "state": "ERROR"
    });
    (status, Json(body)).into_response()
}

/// The gateway's 404 for a path no service serves.
async fn gateway_404() -> Response {
    (StatusCode::NOT_FOUND, Json(v4::gateway_not_found())).into_response()
}

fn authorized(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{}:{}", state.username, state.password).as_bytes()
}

#[derive(Deserialize)]
struct ListRequest {
    kind: Option<String>,
    offset: Option<Value>,
    length: Option<Value>,
    /// FIQL; the simulator understands `last_update_time=gt=T` and `=ge=T`
    /// (`YYYY-MM-DDTHH:MM:SSZ`) on the VM list.
    filter: Option<String>,
}

/// `last_update_time=gt=T` / `=ge=T`: (seconds since the epoch, inclusive).
fn v3_updated_since(filter: &str) -> Result<(i64, bool), String> {
    let (inclusive, at) = if let Some(at) = filter.strip_prefix("last_update_time=ge=") {
        (true, at)
    } else if let Some(at) = filter.strip_prefix("last_update_time=gt=") {
        (false, at)
    } else {
        return Err(format!("unsupported filter '{filter}'"));
    };
    v4::parse_utc(at).map(|t| (t, inclusive)).ok_or_else(|| format!("filter time '{at}' is not YYYY-MM-DDTHH:MM:SSZ"))
}

/// Whether `entity` (v3 shape) was updated at or after / after `since`.
pub(crate) fn updated_since(entity: &Value, since: (i64, bool)) -> bool {
    let t = entity.pointer("/metadata/last_update_time").and_then(Value::as_str).and_then(v4::parse_utc);
    t.is_some_and(|t| if since.1 { t >= since.0 } else { t > since.0 })
}

fn singular(kind: &str) -> String {
    match kind.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => kind.strip_suffix('s').unwrap_or(kind).to_string(),
    }
}

async fn list(State(state): State<Arc<SimState>>, Path(kind): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return v3_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED", "Authentication required.");
    }
    let _flight = state.flight();
    if kind == "vms" {
        let churn = state.faults.lock().unwrap_or_else(|p| p.into_inner()).vm_churn.clone();
        state.churn(churn.as_ref());
    }
    let (latency, fault, body) = match list_page(&state, &kind, &body) {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    faulty(fault, body, v3_error)
}

/// A list answer before its latency: (latency ms, decided fault, body).
type Answer = (u64, Option<(u16, u32)>, JsonBody);

/// The page a v3 list call asks for, with its decided latency and fault
/// (synchronous: the estate's lock is not held across the latency).
#[expect(clippy::result_large_err, reason = "the error is the HTTP answer itself")]
fn list_page(state: &SimState, kind: &str, body: &[u8]) -> Result<Answer, Response> {
    let estate = state.estate();
    let absent = matches!(kind, "storage_containers" | "vm_templates" | "alerts" | "lcm_entities")
        || crate::network::V4_ONLY.contains(&kind)
        || state.v3_absent.iter().any(|k| k == kind);
    let Some(entities) = estate.list(kind).filter(|_| !absent) else {
        return Err(v3_error(StatusCode::NOT_FOUND, "ENTITY_NOT_FOUND", &format!("kind {kind} not found")));
    };
    let req: ListRequest = serde_json::from_slice(body)
        .map_err(|e| v3_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &format!("request body is not valid JSON: {e}")))?;
    if let Some(k) = &req.kind
        && *k != singular(kind) {
            return Err(v3_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", &format!("kind '{k}' does not match /{kind}/list")));
        }
    let filter = req.filter.as_deref().filter(|f| !f.is_empty());
    let filtered: Vec<Value>;
    let entities = match filter {
        None => entities,
        Some(f) if kind == "vms" => {
            let since = v3_updated_since(f).map_err(|e| v3_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &e))?;
            filtered = entities.iter().filter(|e| updated_since(e, since)).collect();
            lazy::Entities::Stored(&filtered)
        }
        Some(_) => {
            return Err(v3_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &format!("the simulator filters only the VM list, not {kind}")));
        }
    };
    let as_u64 = |v: &Option<Value>, default: u64| -> Result<u64, String> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| format!("{v} is not a non-negative integer")),
        }
    };
    let offset = as_u64(&req.offset, 0).map_err(|e| v3_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", &format!("offset: {e}")))?;
    let length = match as_u64(&req.length, DEFAULT_LENGTH) {
        Ok(l) if (1..=MAX_LENGTH).contains(&l) => l,
        Ok(l) => {
            return Err(v3_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", &format!("length {l} is out of range 1-{MAX_LENGTH}")));
        }
        Err(e) => return Err(v3_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", &format!("length: {e}"))),
    };
    // A one-entity read past the start is a collector checking that the
    // list did not shift between its pages: counted apart.
    let counted_as = match (filter.is_some(), length == 1 && offset > 0) {
        (true, _) => format!("{kind}?filter"),
        (false, true) => format!("{kind}?probe"),
        (false, false) => kind.to_string(),
    };
    let (latency, fault) = state.decide_fault(kind, &counted_as, offset);
    let total = state.cut(kind).map_or(entities.len(), |n| n.min(entities.len())) as u64;
    let start = offset.min(total) as usize;
    let end = (offset + length).min(total) as usize;
    // The entities' text written one after the other (a VM straight from
    // its index, see [`render`]), without a tree per entity.
    let mut text = Vec::new();
    let length = if crate::network::is_network(kind) {
        let page: Vec<Value> = entities.range(start, end).iter().filter_map(|e| crate::network::v3_entity(kind, e)).collect();
        lazy::Entities::Stored(&page).write_range(0, page.len(), &mut text)
    } else {
        entities.write_range(start, end, &mut text)
    };
    let metadata = json!({"kind": singular(kind), "total_matches": total, "length": length, "offset": offset});
    let mut body = Vec::with_capacity(text.len() + 128);
    body.extend_from_slice(br#"{"api_version":"3.1","metadata":"#);
    let _ = serde_json::to_writer(&mut body, &metadata);
    body.extend_from_slice(br#","entities":["#);
    body.extend_from_slice(&text);
    body.extend_from_slice(b"]}");
    Ok((latency, fault, JsonBody(body)))
}

impl SimState {
    /// Counts a call and decides its fault (under the lock; applied by the caller).
    /// `kind` is what page faults name (`vms`, ...), `counted_as` the key in
    /// [`SimState::calls_per_kind`].
    fn decide_fault(&self, kind: &str, counted_as: &str, offset: u64) -> (u64, Option<(u16, u32)>) {
        let state = self;
        let n = state.calls.fetch_add(1, Ordering::Relaxed) + 1;
        *state.per_kind.lock().unwrap_or_else(|p| p.into_inner()).entry(counted_as.to_string()).or_default() += 1;
        let mut f = state.faults.lock().unwrap_or_else(|p| p.into_inner());
        let mut fault: Option<(u16, u32)> = None;
        let jitter = if f.latency_jitter_ms > 0 { (state.next_random() * (f.latency_jitter_ms + 1) as f64) as u64 } else { 0 };
        let latency = f.latency_ms + jitter;
        if !state.admit(f.rps_limit) {
            return (latency, Some((429, 1)));
        }
        if let Some(pf) = f.pages.iter_mut().find(|p| p.kind == kind && p.offset == offset && p.times != Some(0)) {
            if let Some(t) = pf.times.as_mut() {
                *t -= 1;
            }
            fault = Some((pf.status, f.retry_after_secs));
        } else if f.rate_limit_every > 0 && n.is_multiple_of(u64::from(f.rate_limit_every)) {
            fault = Some((429, f.retry_after_secs));
        } else if f.truncate_every > 0 && n.is_multiple_of(u64::from(f.truncate_every)) {
            fault = Some((0, 0));
        } else if f.error_rate > 0.0 && state.next_random() < f.error_rate {
            fault = Some((500, 0));
        }
        (latency, fault)
    }
}

/// The answer of a list call: `body`, or the decided fault in the API's error style.
fn faulty(fault: Option<(u16, u32)>, body: impl Into<JsonBody>, error: impl Fn(StatusCode, &str, &str) -> Response) -> Response {
    let JsonBody(mut bytes) = body.into();
    match fault {
        Some((429, retry_after)) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "Too many requests, slow down.");
            r.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
            r
        }
        Some((0, _)) => {
            bytes.truncate(bytes.len() / 2);
            (StatusCode::OK, [("content-type", "application/json")], bytes).into_response()
        }
        Some((200, _)) => {
            let mut page: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            // v3 pages carry `entities` (and a `length`), v4 pages `data`.
            for key in ["entities", "data"] {
                if let Some(list) = page.get_mut(key).and_then(Value::as_array_mut) {
                    list.clear();
                }
            }
            // Groups answers carry theirs per group.
            for group in page.get_mut("group_results").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(list) = group.get_mut("entity_results").and_then(Value::as_array_mut) {
                    list.clear();
                }
            }
            if let Some(length) = page.pointer_mut("/metadata/length") {
                *length = json!(0);
            }
            (StatusCode::OK, [("content-type", "application/json")], serde_json::to_vec(&page).unwrap_or_default()).into_response()
        }
        Some((status, _)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_client_error() {
                error(status, "INJECTED_REFUSAL", "Injected fault: the simulated Prism refused this page.")
            } else {
                error(status, "INTERNAL_ERROR", "Injected fault: the simulated Prism failed this page.")
            }
        }
        None => (StatusCode::OK, [("content-type", "application/json")], bytes).into_response(),
    }
}

/// A serialized JSON answer body.
struct JsonBody(Vec<u8>);

impl From<Value> for JsonBody {
    fn from(v: Value) -> JsonBody {
        JsonBody(serde_json::to_vec(&v).unwrap_or_default())
    }
}

/// API key accepted in `X-ntnx-api-key` by the v4 endpoints.
pub const API_KEY: &str = "sim-api-key-0123456789";

/// A v4 service's error answer (an `ErrorResponse`; `code` is the
/// service's own, e.g. `VMM-40401`, its prefix naming the namespace).
fn v4_error(status: StatusCode, code: &str, message: &str) -> Response {
    let namespace = match code.split('-').next().unwrap_or_default() {
        "VMM" => "vmm",
        "CLU" => "clustermgmt",
        "VOL" => "volumes",
        "NET" => "networking",
        _ => "prism",
    };
    let group = match status.as_u16() {
        401 => "AUTHENTICATION",
        404 => "ENTITY_NOT_FOUND",
        429 => "RATE_LIMITED",
        400..=499 => "INVALID_REQUEST",
        _ => "INTERNAL_ERROR",
    };
    (status, Json(v4::error(namespace, code, group, message))).into_response()
}

/// What every v4 call checks first: v4 offered at all (404 as an older
/// Prism Central answers), then the API key or Basic credentials (401).
fn v4_gate(state: &SimState, headers: &HeaderMap) -> Option<Response> {
    if !state.v4 {
        return Some((StatusCode::NOT_FOUND, Json(v4::gateway_not_found())).into_response());
    }
    let by_key = headers.get("x-ntnx-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY);
    if !by_key && !authorized(state, headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Some(v4_error(StatusCode::UNAUTHORIZED, "AUTH-401", "Authentication required."));
    }
    None
}

/// `GET` on a v4 list endpoint: `$page` (0-based), `$limit` (1-100, default 50).
async fn v4_list(
    state: Arc<SimState>,
    revision: String,
    list: &'static str,
    object_type: &'static str,
    headers: HeaderMap,
    query: std::collections::HashMap<String, String>,
) -> Response {
    if let Some(refused) = v4_gate(&state, &headers) {
        return refused;
    }
    if state.faults.lock().unwrap_or_else(|p| p.into_inner()).v4_absent.iter().any(|l| l == list) {
        // Counted (as `v4/<list>?absent`), so tests can see it was asked once.
        *state.per_kind.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("v4/{list}?absent")).or_default() += 1;
        return (StatusCode::NOT_FOUND, Json(v4::gateway_not_found())).into_response();
    }
    *state.per_revision.lock().unwrap_or_else(|p| p.into_inner()).entry(revision).or_default() += 1;
    let _flight = state.flight();
    if list == "vms" {
        let churn = state.faults.lock().unwrap_or_else(|p| p.into_inner()).vm_churn.clone();
        state.churn(churn.as_ref());
    }
    let num = |k: &str, default: u64| -> Result<u64, String> {
        match query.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| format!("{k}={v} is not a non-negative integer")),
        }
    };
    let page = match num("$page", 0) {
        Ok(p) => p,
        Err(e) => return v4_error(StatusCode::BAD_REQUEST, "PRISM-40001", &e),
    };
    let limit = match num("$limit", 50) {
        Ok(l) if (1..=100).contains(&l) => l,
        Ok(l) => return v4_error(StatusCode::BAD_REQUEST, "PRISM-40002", &format!("$limit={l} is out of range 1-100")),
        Err(e) => return v4_error(StatusCode::BAD_REQUEST, "PRISM-40001", &e),
    };
    let q = match v4::ListQuery::parse(list, query.get("$filter").map(String::as_str), query.get("$select").map(String::as_str)) {
        Ok(q) => v4::ListQuery { cut: state.cut(list), ..q },
        Err(e) => return v4_error(StatusCode::BAD_REQUEST, "PRISM-40003", &e),
    };
    let counted_as = match (&q.updated_since, q.ext_id_only) {
        (Some(_), _) => format!("v4/{list}?filter"),
        (None, true) => format!("v4/{list}?select"),
        (None, false) if limit == 1 && page > 0 => format!("v4/{list}?probe"),
        (None, false) => format!("v4/{list}"),
    };
    let (latency, fault) = state.decide_fault(list, &counted_as, page * limit);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let body = JsonBody(v4::page_body(&state.estate(), list, object_type, page, limit, &q));
    faulty(fault, body, v4_error)
}

/// A Prism Element's v2.0 error answer.
fn v2_error(status: StatusCode, _reason: &str, message: &str) -> Response {
    (status, Json(v2::error_body(status.as_u16(), message))).into_response()
}

/// `GET /PrismGateway/services/rest/v2.0/cluster` (Prism Element mode).
async fn v2_cluster(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if !state.prism_element {
        return gateway_404().await;
    }
    if !authorized(&state, &headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return v2_error(StatusCode::UNAUTHORIZED, "", "Authentication required.");
    }
    let (latency, fault) = state.decide_fault("cluster", "v2/cluster", 0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let body = v2::cluster(&state.estate());
    faulty(fault, body, v2_error)
}

/// `GET /PrismGateway/services/rest/v2.0/{vms,hosts,storage_containers,networks,images}/`
/// (Prism Element mode): `vms`, `networks` and `images` by
/// `offset`/`length`, the others by `page` (1-based)/`count`; counted as `v2/<list>` (one-entity reads past the
/// start as `v2/<list>?probe`).
async fn v2_list(State(state): State<Arc<SimState>>, Path(list): Path<String>, headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    if !state.prism_element || !v2::LISTS.contains(&list.as_str()) {
        return gateway_404().await;
    }
    if !authorized(&state, &headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return v2_error(StatusCode::UNAUTHORIZED, "", "Authentication required.");
    }
    let _flight = state.flight();
    let num = |k: &str, default: u64| -> Result<u64, String> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| format!("{k}={v} is not a non-negative integer")),
        }
    };
    let paged = v2::paged(&list);
    let window = if paged {
        match (num("page", 1), num("count", 20)) {
            (Ok(p), Ok(c)) if p >= 1 && (1..=1000).contains(&c) => Ok(((p - 1) * c, c)),
            (Ok(_), Ok(c)) => Err(format!("page must be 1 or more and count 1-1000 (count={c})")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        match (num("offset", 0), num("length", 20)) {
            (Ok(o), Ok(l)) if (1..=1000).contains(&l) => Ok((o, l)),
            (Ok(_), Ok(l)) => Err(format!("length must be 1-1000, got {l}")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    let (first, count) = match window {
        Ok(w) => w,
        Err(e) => return v2_error(StatusCode::BAD_REQUEST, "", &e),
    };
    let counted_as = if count == 1 && first > 0 { format!("v2/{list}?probe") } else { format!("v2/{list}") };
    let (latency, fault) = state.decide_fault(&list, &counted_as, first);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let body = {
        let estate = state.estate();
        let sizes = q.get("include_vm_disk_sizes").is_some_and(|v| v == "true");
        let mut body = v2::page(&v2::entities_with(&estate, &list, sizes), first, count, paged);
        if matches!(list.as_str(), "networks" | "images") {
            // Their metadata: the two totals only.
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("count");
            }
        }
        body
    };
    faulty(fault, body, v2_error)
}

/// `GET /api/vmm/v4.0/ahv/stats/vms/{extId}` with `$startTime`, `$endTime`
/// (`YYYY-MM-DDTHH:MM:SSZ`), `$samplingInterval` (seconds, 30 or more),
/// optional `$statType` and `$select`.
async fn v4_vm_stats(
    State(state): State<Arc<SimState>>,
    Path(ext_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = v4_gate(&state, &headers) {
        return refused;
    }
    let (start, end, interval) = match stats_window(&q) {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let (latency, fault) = state.decide_fault("stats", "v4/stats", 0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match v4::vm_stats(&state.estate(), &ext_id, start, end, interval, q.get("$select").map(String::as_str)) {
        Some(body) => faulty(fault, body, v4_error),
        None => v4_error(StatusCode::NOT_FOUND, "VMM-40401", &format!("VM {ext_id} not found")),
    }
}

/// The sampling window of a v4 stats call: `$startTime`, `$endTime`,
/// `$samplingInterval` (seconds, 30 or more; default 300).
#[expect(clippy::result_large_err, reason = "the error is the HTTP answer itself")]
fn stats_window(q: &std::collections::HashMap<String, String>) -> Result<(i64, i64, i64), Response> {
    let time = |k: &str| q.get(k).and_then(|v| v4::parse_utc(v));
    let (Some(start), Some(end)) = (time("$startTime"), time("$endTime")) else {
        return Err(v4_error(StatusCode::BAD_REQUEST, "VMM-40001", "$startTime and $endTime are required (YYYY-MM-DDTHH:MM:SSZ)"));
    };
    let interval = match q.get("$samplingInterval").map(|v| v.parse::<i64>()) {
        None => 300,
        Some(Ok(i)) if i >= 30 => i,
        _ => return Err(v4_error(StatusCode::BAD_REQUEST, "VMM-40002", "$samplingInterval must be 30 seconds or more")),
    };
    if end <= start {
        return Err(v4_error(StatusCode::BAD_REQUEST, "VMM-40003", "$endTime must be after $startTime"));
    }
    Ok((start, end, interval))
}

/// `GET /api/clustermgmt/v4.0/stats/clusters/{cluster}[/hosts/{host}]`.
async fn v4_node_stats(state: Arc<SimState>, cluster: String, host: Option<String>, headers: HeaderMap, q: std::collections::HashMap<String, String>) -> Response {
    if let Some(refused) = v4_gate(&state, &headers) {
        return refused;
    }
    let (start, end, interval) = match stats_window(&q) {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let (latency, fault) = state.decide_fault("stats", if host.is_some() { "v4/host-stats" } else { "v4/cluster-stats" }, 0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match v4::node_stats(&state.estate(), &cluster, host.as_deref(), start, end, interval, q.get("$select").map(String::as_str)) {
        Some(body) => faulty(fault, body, v4_error),
        None => v4_error(StatusCode::NOT_FOUND, "CLU-40401", &format!("no cluster {cluster}{}", host.map(|h| format!(" with host {h}")).unwrap_or_default())),
    }
}

/// `GET /api/volumes/v4.0/config/volume-groups/{extId}/{disks|vm-attachments|external-iscsi-attachments}`,
/// paged like every v4 list.
async fn v4_volume_group_part(
    State(state): State<Arc<SimState>>,
    Path((ext_id, part)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = v4_gate(&state, &headers) {
        return refused;
    }
    let page: u64 = q.get("$page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let limit: u64 = q.get("$limit").and_then(|l| l.parse().ok()).filter(|l| (1..=100).contains(l)).unwrap_or(50);
    let (latency, fault) = state.decide_fault(&format!("volume_groups/{part}"), &format!("v4/volume_groups/{part}"), page * limit);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let items = {
        let estate = state.estate();
        let vg = estate.volume_groups.iter().find(|v| v.pointer("/metadata/uuid").and_then(Value::as_str) == Some(ext_id.as_str()));
        match vg.map(|vg| v4::volume_group_part(vg, &part)) {
            Some(Some(items)) => items,
            Some(None) => return v4_error(StatusCode::NOT_FOUND, "VOL-40402", &format!("no such part {part}")),
            None => return v4_error(StatusCode::NOT_FOUND, "VOL-40401", &format!("volume group {ext_id} not found")),
        }
    };
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip((page * limit) as usize).take(limit as usize).collect();
    faulty(fault, json!({"data": data, "metadata": {"totalAvailableResults": total}}), v4_error)
}

/// `GET /api/vmm/v4.0/content/templates/{extId}/versions`: a template's
/// versions (`vmm.v4.content.TemplateVersionSpec`), paged like every v4
/// list, counted as `v4/vm_templates/versions`.
async fn v4_template_versions(
    State(state): State<Arc<SimState>>,
    Path(ext_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = v4_gate(&state, &headers) {
        return refused;
    }
    let page: u64 = q.get("$page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let limit: u64 = match q.get("$limit").map(|l| l.parse::<u64>()) {
        None => 50,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => return v4_error(StatusCode::BAD_REQUEST, "VMM-40002", "$limit must be 1-100"),
    };
    let (latency, fault) = state.decide_fault("vm_templates/versions", "v4/vm_templates/versions", page * limit);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let versions = {
        let estate = state.estate();
        match operations::template_versions(&estate.vm_templates, &ext_id, estate.now) {
            Some(v) => v,
            None => return v4_error(StatusCode::NOT_FOUND, "VMM-40401", &format!("template {ext_id} not found")),
        }
    };
    faulty(fault, v4::template_versions_page(versions, page, limit), v4_error)
}

/// `POST /api/nutanix/v3/groups` for entity types `mh_vm`, `host` and
/// `cluster`: each entity's latest usage (as strings, as Prism answers; a
/// VM's are its v4 stats of bucket 0, none for powered-off VMs; hosts' and
/// clusters' from [`v4::node_usage`]), paged by `group_member_offset` /
/// `group_member_count`. Clusters are the Prism Element ones.
async fn v3_groups(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return v3_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED", "Authentication required.");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return v3_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "request body is not valid JSON");
    };
    let entity_type = req["entity_type"].as_str().unwrap_or_default().to_string();
    if !matches!(entity_type.as_str(), "mh_vm" | "host" | "cluster") {
        return v3_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", "the simulator groups only entity types mh_vm, host and cluster");
    }
    let offset = req["group_member_offset"].as_u64().unwrap_or(0) as usize;
    let count = req["group_member_count"].as_u64().unwrap_or(10).clamp(1, 1000) as usize;
    let counted_as = if entity_type == "mh_vm" { "groups".to_string() } else { format!("groups/{entity_type}") };
    let (latency, fault) = state.decide_fault("groups", &counted_as, offset as u64);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let attributes: Vec<&str> = req["group_member_attributes"].as_array().into_iter().flatten().filter_map(|a| a["attribute"].as_str()).collect();
    let vm_field = |a: &str| match a {
        "hypervisor_cpu_usage_ppm" => Some("hypervisorCpuUsagePpm"),
        "memory_usage_ppm" => Some("memoryUsagePpm"),
        "controller_num_iops" => Some("controllerNumIops"),
        "controller_io_bandwidth_kBps" => Some("controllerIoBandwidthKbps"),
        "hypervisor_num_received_bytes" => Some("hypervisorNumReceivedBytes"),
        "hypervisor_num_transmitted_bytes" => Some("hypervisorNumTransmittedBytes"),
        _ => None,
    };
    let estate = state.estate();
    let all = match entity_type.as_str() {
        "mh_vm" => lazy::Entities::Lazy(&estate.vms),
        "host" => lazy::Entities::Stored(&estate.hosts),
        _ => lazy::Entities::Stored(estate.clusters.get(1..).unwrap_or_default()),
    };
    let entities: Vec<Value> = all
        .range(offset, offset.saturating_add(count))
        .iter()
        .enumerate()
        .map(|(i, e)| (offset + i, e))
        .map(|(i, e)| {
            let on = entity_type != "mh_vm" || e.pointer("/status/resources/power_state").and_then(Value::as_str) == Some("ON");
            let data: Vec<Value> = attributes
                .iter()
                .map(|a| {
                    let v = match entity_type.as_str() {
                        "mh_vm" => vm_field(a).filter(|_| on).and_then(|f| v4::vm_stat(i, f, 0)),
                        t => v4::node_usage(t, i, a),
                    };
                    let values = v.map(|v| json!([{"values": [format!("{v}")], "time": 1_700_000_000_000_000u64}])).unwrap_or(json!([]));
                    json!({"name": a, "values": values})
                })
                .collect();
            json!({"entity_id": e.pointer("/metadata/uuid"), "data": data})
        })
        .collect();
    let body = json!({"entity_type": entity_type, "filtered_entity_count": all.len(), "total_entity_count": all.len(),
                      "group_results": [{"entity_results": entities, "total_entity_count": all.len()}]});
    drop(estate);
    faulty(fault, body, v3_error)
}

/// `POST /api/nutanix/v3/categories/{name}/list`: the values of one key.
async fn v3_category_values(State(state): State<Arc<SimState>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return v3_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED", "Authentication required.");
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let values = state.estate().category_values(&name);
    if values.is_empty() {
        return v3_error(StatusCode::NOT_FOUND, "ENTITY_NOT_FOUND", &format!("category {name} not found"));
    }
    let offset = req["offset"].as_u64().unwrap_or(0) as usize;
    let length = req["length"].as_u64().unwrap_or(20).clamp(1, MAX_LENGTH) as usize;
    let (latency, fault) = state.decide_fault("category_values", "category_values", offset as u64);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let page: Vec<Value> = values.iter().skip(offset).take(length).cloned().collect();
    let body = json!({"api_version": "3.1", "metadata": {"kind": "category", "total_matches": values.len(), "offset": offset, "length": page.len()}, "entities": page});
    faulty(fault, body, v3_error)
}

async fn put_faults(State(state): State<Arc<SimState>>, Json(f): Json<Faults>) -> StatusCode {
    state.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({
        "calls": state.calls_per_kind(),
        "unauthorized": state.unauthorized_calls(),
        "throttled": state.throttled_calls(),
        "peak_in_flight": state.peak_in_flight(),
    }))
}

pub fn router(state: Arc<SimState>) -> Router {
    let mut router = Router::new();
    // Every v4 path at each revision served (the paths are written at v4.0).
    let revisions = state.v4_revisions.clone();
    let at = |path: &str, rev: &str| path.replacen("/v4.0/", &format!("/{rev}/"), 1);
    for rev in &revisions {
        for &(path, list, object_type) in v4::ENDPOINTS.iter().chain(network::ENDPOINTS) {
            let rev = rev.clone();
            router = router.route(
                &at(path, &rev),
                get(move |State(state): State<Arc<SimState>>, headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
                    v4_list(state, rev.clone(), list, object_type, headers, q)
                }),
            );
        }
        router = router
            .route(&at("/api/volumes/v4.0/config/volume-groups/{ext_id}/{part}", rev), get(v4_volume_group_part))
            .route(&at("/api/vmm/v4.0/ahv/stats/vms/{ext_id}", rev), get(v4_vm_stats))
            .route(&at("/api/vmm/v4.0/content/templates/{ext_id}/versions", rev), get(v4_template_versions))
            .route(
                &at("/api/clustermgmt/v4.0/stats/clusters/{cluster}", rev),
                get(|State(state): State<Arc<SimState>>, Path(cluster): Path<String>, headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
                    v4_node_stats(state, cluster, None, headers, q)
                }),
            )
            .route(
                &at("/api/clustermgmt/v4.0/stats/clusters/{cluster}/hosts/{host}", rev),
                get(
                    |State(state): State<Arc<SimState>>,
                     Path((cluster, host)): Path<(String, String)>,
                     headers: HeaderMap,
                     Query(q): Query<std::collections::HashMap<String, String>>| { v4_node_stats(state, cluster, Some(host), headers, q) },
                ),
            );
    }
    router
        .route("/api/nutanix/v3/{kind}/list", post(list))
        .route("/api/nutanix/v3/groups", post(v3_groups))
        .route("/PrismGateway/services/rest/v2.0/cluster", get(v2_cluster))
        .route("/PrismGateway/services/rest/v2.0/cluster/", get(v2_cluster))
        .route("/PrismGateway/services/rest/v2.0/{list}", get(v2_list))
        .route("/PrismGateway/services/rest/v2.0/{list}/", get(v2_list))
        .route("/api/nutanix/v3/categories/{name}/list", post(v3_category_values))
        .route("/_sim/faults", put(put_faults))
        .route("/_sim/stats", get(stats))
        .fallback(gateway_404)
        .with_state(state)
}

/// Serves plain HTTP on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: Arc<SimState>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Serves HTTPS on `listener` with `tls` until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: &tls::SelfSigned,
    state: Arc<SimState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener { tcp: listener, acceptor: tokio_rustls::TlsAcceptor::from(tls.config.clone()) };
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// A simulator running in the background on `127.0.0.1:<free port>`;
/// stopped when dropped.
pub struct Simulator {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    /// PEM of the CA that issued the TLS certificate (TLS mode only).
    pub ca_pem: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tls = if config.tls { Some(tls::SelfSigned::generate().map_err(std::io::Error::other)?) } else { None };
        let state = Arc::new(SimState::new(config));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            let result = match &tls {
                Some(t) => serve_tls(listener, t, s, shutdown).await,
                None => serve(listener, s, shutdown).await,
            };
            if let Err(e) = result {
                tracing::error!("prism simulator stopped: {e}");
            }
        });
        Ok(Simulator { addr, state, ca_pem, stop: Some(tx) })
    }

    /// `http://127.0.0.1:<port>`, or `https://` in TLS mode.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The secret JSON a collector needs for this simulator.
    pub fn secret(&self) -> Value {
        json!({"host": self.url(), "username": self.state.username, "password": self.state.password})
    }

    pub fn set_faults(&self, f: Faults) {
        self.state.set_faults(f);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
