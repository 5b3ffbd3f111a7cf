//! Options, secret and task options: parsing and validation.
//!
//! Every problem is reported as [`Error::InvalidArgument`] naming the field,
//! and never echoes a secret value.

use crate::console::Locations;
use crate::v3::Kind;
use crate::error::Error;
use serde_json::{Map, Value};

pub const DEFAULT_PORT: u16 = 9440;
pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// List pages read at once by default, and at most.
pub const DEFAULT_PAGE_CONCURRENCY: u32 = 8;
pub const MAX_PAGE_CONCURRENCY: u32 = 32;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 30_000;
/// Templates whose versions one run reads by default (one call each: vmm
/// v4.0 lists versions per template only), and the most an option may ask.
pub const DEFAULT_MAX_TEMPLATE_VERSION_CALLS: u32 = 100;
pub const MAX_TEMPLATE_VERSION_CALLS: u32 = 1_000;
/// Longest `Retry-After` the collector honours; longer values are capped.
pub const MAX_RETRY_AFTER_MS: u64 = 30_000;

/// Where and how to reach Prism Central.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` unless the secret's `host` names another scheme.
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn base_url(&self) -> String {
        if self.host.contains(':') {
            // IPv6 literal.
            format!("{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// How requests authenticate. The host adds the credential itself
/// (`http.send-authenticated`): the guest never holds the password or key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic from the secret's `username` and `password`.
    Basic,
    /// The secret's `api_key` in `X-ntnx-api-key`.
    ApiKey,
}

/// The header Prism Central reads an API key from.
pub const API_KEY_HEADER: &str = "X-ntnx-api-key";

impl From<Auth> for cloudforet_collector::Credential {
    /// What the host adds to each request.
    fn from(a: Auth) -> cloudforet_collector::Credential {
        match a {
            Auth::Basic => cloudforet_collector::Credential::Basic,
            Auth::ApiKey => cloudforet_collector::Credential::ApiKey(API_KEY_HEADER.to_string()),
        }
    }
}

/// The parsed secret: endpoint and which credential the host should add.
/// Secret values arrive replaced by the host (`[host-injected]`); only their
/// presence matters here.
#[derive(Clone)]
pub struct Secret {
    pub endpoint: Endpoint,
    /// For messages; empty with API-key auth.
    pub username: String,
    pub auth: Auth,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("auth", &self.auth)
            .finish()
    }
}

impl Secret {
    /// Parses the secret JSON: `host` (name, IP or `scheme://host[:port]`),
    /// optional `port` (number or numeric string, default 9440), and either
    /// `username` + `password` (Basic) or `api_key`.
    pub fn parse(json: &str) -> Result<Secret, Error> {
        let obj = parse_object(json, "secret")?;
        let host_raw = required_str(&obj, "host", "secret")?;
        let has = |k: &str| obj.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
        let (username, auth) = if has("api_key") && !has("password") {
            (obj.get("username").and_then(Value::as_str).unwrap_or_default().to_string(), Auth::ApiKey)
        } else {
            let username = required_str(&obj, "username", "secret")?.to_string();
            required_str(&obj, "password", "secret")?;
            (username, Auth::Basic)
        };

        let (scheme, rest) = match host_raw.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("https".to_string(), host_raw),
        };
        if scheme != "https" && scheme != "http" {
            return Err(Error::InvalidArgument(format!(
                "secret field 'host' has unsupported scheme '{scheme}' (use https or http)"
            )));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') || rest.contains('#') {
            return Err(Error::InvalidArgument(
                "secret field 'host' must be a host name, an IP address or scheme://host[:port], without path or user info"
                    .to_string(),
            ));
        }
        let (host, port_in_host) = split_host_port(rest)?;
        if host.is_empty() {
            return Err(Error::InvalidArgument("secret field 'host' is empty".to_string()));
        }
        let port = match obj.get("port") {
            None | Some(Value::Null) => port_in_host.unwrap_or(DEFAULT_PORT),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| Error::InvalidArgument("secret field 'port' must be 1-65535".to_string()))?,
            Some(Value::String(s)) if s.trim().is_empty() => port_in_host.unwrap_or(DEFAULT_PORT),
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Error::InvalidArgument("secret field 'port' must be 1-65535".to_string()))?,
            Some(_) => {
                return Err(Error::InvalidArgument("secret field 'port' must be a number".to_string()));
            }
        };
        Ok(Secret { endpoint: Endpoint { scheme, host: host.to_string(), port }, username, auth })
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), Error> {
    let bad_port = || Error::InvalidArgument("secret field 'host' has an invalid port".to_string());
    if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        let (h, after) = rest.split_once(']').ok_or_else(|| {
            Error::InvalidArgument("secret field 'host' has an unclosed IPv6 bracket".to_string())
        })?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((h, Some(p.parse().ok().filter(|p| *p != 0).ok_or_else(bad_port)?))),
            None if after.is_empty() => Ok((h, None)),
            None => Err(bad_port()),
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').ok_or_else(bad_port)?;
            Ok((h, Some(p.parse().ok().filter(|p| *p != 0).ok_or_else(bad_port)?)))
        }
        // Bare IPv6 literal without port.
        _ => Ok((s, None)),
    }
}

/// Collector options (`options` of every call).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Entities per list call, 1-500.
    pub page_size: u32,
    /// Retries of one page after 5xx/timeouts/truncated bodies (429s have
    /// their own budget, `prism::MAX_THROTTLED_RETRIES`).
    pub max_retries: u32,
    /// List pages read at once once a list's total is known (the host caps
    /// it too).
    pub page_concurrency: u32,
    pub request_timeout_ms: u32,
    /// Kinds to collect; all by default.
    pub kinds: Vec<Kind>,
    /// CloudForet's `task_filter` (Job.get_tasks), when the host passed one.
    pub task_filter: TaskFilter,
    /// Which Prism Central REST API to use.
    pub api_version: ApiChoice,
    /// Read the usage of VMs, hosts and clusters (v3 groups API) into their
    /// data, and emit the inventory Namespace and Metric records over it.
    pub usage: bool,
    /// Incremental VM collection (see [`crate::incremental`]); `None` = off.
    pub incremental: Option<Incremental>,
    /// Where the types' icons are served (`<url>/<file>.svg`); `None`:
    /// each icon travels inline as a `data:` URL.
    pub icon_base_url: Option<String>,
    /// The Regions' map tags, per cluster.
    pub region_locations: Locations,
    /// The deletion guard (see [`crate::guard`]); `None` = off.
    pub deletion_guard: Option<DeletionGuard>,
    /// Kind `vm_templates`: at most this many templates have their versions
    /// read (one call each); the others keep their active version only,
    /// with a warning. 0 reads none.
    pub max_template_version_calls: u32,
}

/// Option `deletion_guard`: a kind whose count drops by more than
/// `max_drop` (a share) against its last successful run, or to zero,
/// becomes an error resource so CloudForet deletes nothing this run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeletionGuard {
    pub max_drop: f64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard { max_drop: DEFAULT_MAX_DROP }
    }
}

/// The share of a kind that may disappear in one run by default.
pub const DEFAULT_MAX_DROP: f64 = 0.5;

/// Option `incremental`: fetch only the VMs changed since the last run and
/// re-emit the others from the guest's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incremental {
    /// A full collection every this many runs (1 = always full), so names
    /// cached VMs carry (hosts, subnets, categories) cannot stay stale.
    pub full_every: u32,
    /// Seconds before the newest change seen that the next run's change
    /// filter starts, so a VM changed while the list was read is not missed.
    pub overlap_s: u32,
}

impl Default for Incremental {
    fn default() -> Self {
        Incremental { full_every: 24, overlap_s: 3_600 }
    }
}

/// Option `api_version`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiChoice {
    /// v4 where Prism offers it (per kind), v3 otherwise.
    #[default]
    Auto,
    V3,
    V4,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: MAX_PAGE_SIZE,
            max_retries: DEFAULT_MAX_RETRIES,
            page_concurrency: DEFAULT_PAGE_CONCURRENCY,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            kinds: Kind::DEFAULT.to_vec(),
            task_filter: TaskFilter::default(),
            api_version: ApiChoice::Auto,
            usage: false,
            incremental: None,
            icon_base_url: None,
            region_locations: Locations::default(),
            deletion_guard: Some(DeletionGuard::default()),
            max_template_version_calls: DEFAULT_MAX_TEMPLATE_VERSION_CALLS,
        }
    }
}

impl Options {
    /// Parses options. Unknown keys are ignored: CloudForet passes host-level
    /// options (`verify_ssl`, `ca_bundle`, ...) in the same object.
    pub fn parse(json: &str) -> Result<Options, Error> {
        let obj = parse_object(json, "options")?;
        let mut o = Options::default();
        if let Some(v) = opt_u64(&obj, "page_size", "options")? {
            if !(1..=u64::from(MAX_PAGE_SIZE)).contains(&v) {
                return Err(Error::InvalidArgument(format!(
                    "options field 'page_size' must be 1-{MAX_PAGE_SIZE}, got {v}"
                )));
            }
            o.page_size = v as u32;
        }
        if let Some(v) = opt_u64(&obj, "max_retries", "options")? {
            if v > 10 {
                return Err(Error::InvalidArgument(format!(
                    "options field 'max_retries' must be 0-10, got {v}"
                )));
            }
            o.max_retries = v as u32;
        }
        if let Some(v) = opt_u64(&obj, "page_concurrency", "options")? {
            if !(1..=u64::from(MAX_PAGE_CONCURRENCY)).contains(&v) {
                return Err(Error::InvalidArgument(format!(
                    "options field 'page_concurrency' must be 1-{MAX_PAGE_CONCURRENCY}, got {v}"
                )));
            }
            o.page_concurrency = v as u32;
        }
        if let Some(v) = opt_u64(&obj, "request_timeout_ms", "options")? {
            if !(100..=600_000).contains(&v) {
                return Err(Error::InvalidArgument(format!(
                    "options field 'request_timeout_ms' must be 100-600000, got {v}"
                )));
            }
            o.request_timeout_ms = v as u32;
        }
        if let Some(kinds) = parse_kinds(&obj, "resource_kinds", "options")? {
            o.kinds = kinds;
        }
        if let Some(v) = opt_u64(&obj, "max_template_version_calls", "options")? {
            if v > u64::from(MAX_TEMPLATE_VERSION_CALLS) {
                return Err(Error::InvalidArgument(format!(
                    "options field 'max_template_version_calls' must be 0-{MAX_TEMPLATE_VERSION_CALLS}, got {v}"
                )));
            }
            o.max_template_version_calls = v as u32;
        }
        o.task_filter = TaskFilter::parse(&obj)?;
        o.usage = match obj.get("usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(Error::InvalidArgument(format!("options field 'usage' must be true or false, got {other}"))),
        };
        o.incremental = match obj.get("incremental") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(Incremental::default()),
            Some(Value::Object(m)) => {
                let mut inc = Incremental::default();
                for key in m.keys() {
                    if key != "full_every" && key != "overlap_s" {
                        return Err(Error::InvalidArgument(format!(
                            "options field 'incremental' has an unknown key '{key}' (expected full_every, overlap_s)"
                        )));
                    }
                }
                if let Some(v) = opt_u64(m, "full_every", "options field 'incremental'")? {
                    if !(1..=1_000).contains(&v) {
                        return Err(Error::InvalidArgument(format!("options field 'incremental.full_every' must be 1-1000, got {v}")));
                    }
                    inc.full_every = v as u32;
                }
                if let Some(v) = opt_u64(m, "overlap_s", "options field 'incremental'")? {
                    if v > 7 * 86_400 {
                        return Err(Error::InvalidArgument(format!("options field 'incremental.overlap_s' must be 0-604800, got {v}")));
                    }
                    inc.overlap_s = v as u32;
                }
                Some(inc)
            }
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "options field 'incremental' must be true, false or {{\"full_every\": runs, \"overlap_s\": seconds}}, got {other}"
                )));
            }
        };
        o.icon_base_url = match obj.get("icon_base_url") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) if u.trim().is_empty() => None,
            Some(Value::String(u)) => {
                let u = u.trim();
                let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
                if !scheme_ok || u.contains(['?', '#', ' ', '"', '<', '>']) {
                    return Err(Error::InvalidArgument(format!(
                        "options field 'icon_base_url' must be an http(s) URL without query or fragment, got {u:?}"
                    )));
                }
                Some(u.trim_end_matches('/').to_string())
            }
            Some(other) => return Err(Error::InvalidArgument(format!("options field 'icon_base_url' must be a URL string, got {other}"))),
        };
        o.region_locations = Locations::parse(obj.get("region_locations"))?;
        o.deletion_guard = match obj.get("deletion_guard") {
            None | Some(Value::Null) | Some(Value::Bool(true)) => Some(DeletionGuard::default()),
            Some(Value::Bool(false)) => None,
            Some(Value::Object(m)) => {
                if let Some(key) = m.keys().find(|k| *k != "max_drop") {
                    return Err(Error::InvalidArgument(format!("options field 'deletion_guard' has an unknown key '{key}' (expected max_drop)")));
                }
                let max_drop = match m.get("max_drop") {
                    None | Some(Value::Null) => DEFAULT_MAX_DROP,
                    Some(v) => v.as_f64().filter(|d| (0.0..=1.0).contains(d)).ok_or_else(|| {
                        Error::InvalidArgument(format!("options field 'deletion_guard.max_drop' must be a share between 0 and 1, got {v}"))
                    })?,
                };
                Some(DeletionGuard { max_drop })
            }
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "options field 'deletion_guard' must be true, false or {{\"max_drop\": share}}, got {other}"
                )));
            }
        };
        o.api_version = match obj.get("api_version") {
            None | Some(Value::Null) => ApiChoice::Auto,
            Some(Value::String(v)) if v == "auto" => ApiChoice::Auto,
            Some(Value::String(v)) if v == "v3" => ApiChoice::V3,
            Some(Value::String(v)) if v == "v4" => ApiChoice::V4,
            Some(other) => {
                return Err(Error::InvalidArgument(format!("options field 'api_version' must be \"auto\", \"v3\" or \"v4\", got {other}")));
            }
        };
        Ok(o)
    }
}

/// CloudForet's `TaskFilter`, passed by the host inside the options as
/// `task_filter`. An empty list does not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub providers: Vec<String>,
    pub cloud_service_groups: Vec<String>,
    pub cloud_service_types: Vec<String>,
    pub region_codes: Vec<String>,
    /// Resource types (`inventory.CloudService`, ...).
    pub resources: Vec<String>,
}

impl TaskFilter {
    fn parse(options: &Map<String, Value>) -> Result<TaskFilter, Error> {
        let obj = match options.get("task_filter") {
            None | Some(Value::Null) => return Ok(TaskFilter::default()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(Error::InvalidArgument("options field 'task_filter' must be an object".to_string())),
        };
        let list = |field: &str| -> Result<Vec<String>, Error> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            Error::InvalidArgument(format!("task_filter field '{field}' must be a list of strings"))
                        })
                    })
                    .collect(),
                Some(_) => Err(Error::InvalidArgument(format!("task_filter field '{field}' must be a list of strings"))),
            }
        };
        Ok(TaskFilter {
            providers: list("providers")?,
            cloud_service_groups: list("cloud_service_groups")?,
            cloud_service_types: list("cloud_service_types")?,
            region_codes: list("region_codes")?,
            resources: list("resources")?,
        })
    }

    /// Whether a kind of the given CloudForet group and type passes the filter.
    pub fn admits(&self, provider: &str, group: &str, ty: &str) -> bool {
        let ok = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        ok(&self.providers, provider)
            && ok(&self.cloud_service_groups, group)
            && ok(&self.cloud_service_types, ty)
            && ok(&self.resources, "inventory.CloudService")
    }
}

/// Task options: the region codes (cluster names) a task is limited to;
/// `None` when it is not limited.
pub fn parse_task_regions(json: &str) -> Result<Option<Vec<String>>, Error> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    let obj = parse_object(json, "task_options")?;
    match obj.get("region_codes") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::InvalidArgument("task_options field 'region_codes' must be a list of strings".to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Error::InvalidArgument("task_options field 'region_codes' must be a list of strings".to_string())),
    }
}

/// Task options: which kinds this task collects. Empty object = all of the
/// options' kinds.
pub fn parse_task_kinds(json: &str) -> Result<Option<Vec<Kind>>, Error> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    let obj = parse_object(json, "task_options")?;
    parse_kinds(&obj, "resource_kinds", "task_options")
}

/// The JSON Schema returned by `init` as `options_schema`.
pub fn options_schema() -> Value {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
    serde_json::json!({
        "type": "object",
        "properties": {
            "page_size": {
                "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": MAX_PAGE_SIZE,
                "title": "Page size", "description": "Entities per list call (v4 calls take at most 100)."
            },
            "api_version": {
                "type": "string", "enum": ["auto", "v3", "v4"], "default": "auto",
                "title": "Prism API", "description": "auto: v4 where Prism Central offers it (per resource kind), v3 otherwise."
            },
            "max_retries": {
                "type": "integer", "minimum": 0, "maximum": 10, "default": DEFAULT_MAX_RETRIES,
                "title": "Retries", "description": "Retries of a page after 5xx, timeouts or truncated answers (a 429 is waited out up to 10 times more)."
            },
            "page_concurrency": {
                "type": "integer", "minimum": 1, "maximum": MAX_PAGE_CONCURRENCY, "default": DEFAULT_PAGE_CONCURRENCY,
                "title": "Pages at once", "description": "List pages read concurrently once a list's total is known (the host's per-origin cap applies too)."
            },
            "request_timeout_ms": {
                "type": "integer", "minimum": 100, "maximum": 600000, "default": DEFAULT_REQUEST_TIMEOUT_MS,
                "title": "Request timeout (ms)"
            },
            "usage": {
                "type": "boolean", "default": false,
                "title": "VM usage",
                "description": "Read the CPU, memory, disk and network usage of VMs, hosts and clusters (groups API) into each one's data, with CloudForet metric definitions over it."
            },
            "incremental": {
                "type": ["boolean", "object"], "default": false,
                "title": "Incremental VM collection",
                "description": "Fetch only the VMs changed since the last run (plus a list of all VM ids, so deletions are seen) and re-emit the others from the collector's state. true, or {\"full_every\": runs between full collections (default 24), \"overlap_s\": seconds of overlap of the change filter (default 3600)}.",
                "properties": {
                    "full_every": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 24},
                    "overlap_s": {"type": "integer", "minimum": 0, "maximum": 604800, "default": 3600}
                }
            },
            "icon_base_url": {
                "type": "string",
                "title": "Icon base URL",
                "description": "Where the console loads the resource type icons from (<url>/<type>.svg, the files of guest-nutanix/icons). Empty: each icon is sent inline (a data: URL), which needs no server."
            },
            "region_locations": {
                "type": "object",
                "title": "Cluster locations",
                "description": "Places clusters (regions) on the console's map: {\"<cluster name, uuid or *>\": {\"continent\": africa|europe|north_america|south_america|asia_pacific|middle_east, \"latitude\": deg, \"longitude\": deg}}."
            },
            "deletion_guard": {
                "type": ["boolean", "object"], "default": true,
                "title": "Deletion guard",
                "description": "A resource kind that shrinks by more than max_drop (share, default 0.5) since its last successful collection, or to none, is reported as an error instead, so CloudForet deletes nothing this run. false turns it off.",
                "properties": {"max_drop": {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_MAX_DROP}}
            },
            "rate_card": {
                "type": "object",
                "title": "Rate card (costs)",
                "description": "Prices of allocation for cost analysis: currency, vcpu_hour, memory_gib_hour, disk_gib_month, overrides per cluster (clusters) and per category Name:Value (categories), backfill_days."
            },
            "max_template_version_calls": {
                "type": "integer", "minimum": 0, "maximum": MAX_TEMPLATE_VERSION_CALLS, "default": DEFAULT_MAX_TEMPLATE_VERSION_CALLS,
                "title": "Template version calls",
                "description": "Kind vm_templates: the templates whose versions are read per run (one call each; Prism lists versions per template only). The others keep their active version, with a warning. 0 reads none."
            },
            "resource_kinds": {
                "type": "array", "items": {"type": "string", "enum": kinds}, "uniqueItems": true,
                "title": "Resource kinds", "description": "Kinds to collect; all when absent."
            },
            "verify_ssl": {
                "type": "boolean", "default": true,
                "title": "Verify TLS", "description": "Enforced by the host. Set false only for Prism's self-signed certificate."
            },
            "ca_bundle": {
                "type": "string",
                "title": "CA bundle (PEM)", "description": "Enforced by the host: extra trusted roots for Prism's certificate."
            }
        }
    })
}

fn parse_kinds(obj: &Map<String, Value>, field: &str, what: &str) -> Result<Option<Vec<Kind>>, Error> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut kinds = Vec::new();
            for item in items {
                let name = item.as_str().ok_or_else(|| {
                    Error::InvalidArgument(format!("{what} field '{field}' must be a list of strings"))
                })?;
                let kind = Kind::from_plural(name).ok_or_else(|| {
                    let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
                    Error::InvalidArgument(format!(
                        "{what} field '{field}' has unknown kind '{name}' (known: {})",
                        known.join(", ")
                    ))
                })?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds.sort();
            Ok(Some(kinds))
        }
        Some(_) => Err(Error::InvalidArgument(format!("{what} field '{field}' must be a list of strings"))),
    }
}

fn parse_object(json: &str, what: &str) -> Result<Map<String, Value>, Error> {
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::InvalidArgument(format!("{what} must be a JSON object"))),
        // serde's message only carries line/column, never the input.
        Err(e) => Err(Error::InvalidArgument(format!("{what} is not valid JSON: {e}"))),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str, what: &str) -> Result<&'a str, Error> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) => Err(Error::InvalidArgument(format!("{what} field '{field}' is empty"))),
        Some(_) => Err(Error::InvalidArgument(format!("{what} field '{field}' must be a string"))),
        None => Err(Error::MissingParameter(format!("{what} field '{field}' is required"))),
    }
}

fn opt_u64(obj: &Map<String, Value>, field: &str, what: &str) -> Result<Option<u64>, Error> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            // CloudForet Structs carry numbers as doubles: accept 500.0.
            let v = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
            v.map(Some)
                .ok_or_else(|| Error::InvalidArgument(format!("{what} field '{field}' must be a non-negative integer")))
        }
        Some(_) => Err(Error::InvalidArgument(format!("{what} field '{field}' must be a non-negative integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, Error>) -> String {
        match r.unwrap_err() {
            Error::InvalidArgument(m) => m,
            Error::MissingParameter(m) => {
                assert!(m.ends_with("is required"), "only a missing field is missing-parameter: {m}");
                m
            }
            other => panic!("expected invalid-argument or missing-parameter, got {other:?}"),
        }
    }

    #[test]
    fn secret_defaults_to_https_9440() {
        let s = Secret::parse(r#"{"host":"pc.example.com","username":"admin","password":"pw"}"#).unwrap();
        assert_eq!(s.endpoint.base_url(), "https://pc.example.com:9440");
        assert_eq!(s.auth, Auth::Basic);
        let k = Secret::parse(r#"{"host":"pc","api_key":"[host-injected]"}"#).unwrap();
        assert_eq!(k.auth, Auth::ApiKey);
    }

    /// The secret schema `cf-host register` publishes (schema/secret.json)
    /// describes exactly what `Secret::parse` reads, and what it requires.
    #[test]
    fn the_published_secret_schema_matches_the_parser() {
        let schema: Value = serde_json::from_str(include_str!("../schema/secret.json")).unwrap();
        let mut props: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        props.sort_unstable();
        assert_eq!(props, ["api_key", "host", "password", "port", "username"]);
        assert_eq!(schema["required"], serde_json::json!(["host"]));
        let full = r#"{"host":"pc.example.com","port":"9441","username":"u","password":"p"}"#;
        assert_eq!(Secret::parse(full).unwrap().endpoint.port, 9441);
        assert_eq!(err(Secret::parse(r#"{"port":"9440","api_key":"k"}"#)), "secret field 'host' is required");
        let pattern = schema["properties"]["port"]["pattern"].as_str().unwrap();
        assert_eq!(pattern, "^[0-9]{1,5}$", "ports are digits, as the parser's string ports");
    }

    #[test]
    fn secret_url_host_and_string_port() {
        let s = Secret::parse(r#"{"host":"http://127.0.0.1:8080/","username":"a","password":"b"}"#).unwrap();
        assert_eq!(s.endpoint, Endpoint { scheme: "http".into(), host: "127.0.0.1".into(), port: 8080 });
        let s = Secret::parse(r#"{"host":"10.1.1.1","port":"9441","username":"a","password":"b"}"#).unwrap();
        assert_eq!(s.endpoint.port, 9441);
        let s = Secret::parse(r#"{"host":"[fd00::1]:9440","username":"a","password":"b"}"#).unwrap();
        assert_eq!(s.endpoint.base_url(), "https://[fd00::1]:9440");
    }

    #[test]
    fn secret_errors_name_the_field_not_the_value() {
        assert_eq!(err(Secret::parse(r#"{"host":"h","password":"hunter2"}"#)), "secret field 'username' is required");
        assert_eq!(err(Secret::parse(r#"{"host":"h","username":"u","password":""}"#)), "secret field 'password' is empty");
        assert!(err(Secret::parse(r#"{"host":"ftp://h","username":"u","password":"p"}"#)).contains("scheme 'ftp'"));
        assert!(err(Secret::parse(r#"{"host":"h/x","username":"u","password":"p"}"#)).contains("without path"));
        assert!(err(Secret::parse(r#"{"host":"u:hunter2@h","username":"u","password":"p"}"#)).contains("user info"));
        assert_eq!(err(Secret::parse(r#"{"host":"h","port":70000,"username":"u","password":"p"}"#)), "secret field 'port' must be 1-65535");
        assert_eq!(err(Secret::parse("[1,2]")), "secret must be a JSON object");
        let m = err(Secret::parse(r#"{"password":"hunter2""#));
        assert!(m.starts_with("secret is not valid JSON") && !m.contains("hunter2"), "{m}");
        let dbg = format!("{:?}", Secret::parse(r#"{"host":"h","username":"u","password":"hunter2"}"#).unwrap());
        assert!(!dbg.contains("hunter2"));
    }

    #[test]
    fn options_parse_and_validate() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        assert_eq!(Options::parse("{}").unwrap(), Options::default());
        let o = Options::parse(r#"{"page_size":100.0,"max_retries":0,"resource_kinds":["vms","clusters","vms"],"verify_ssl":false}"#).unwrap();
        assert_eq!(o.page_size, 100);
        assert_eq!(o.max_retries, 0);
        assert_eq!(o.kinds, vec![Kind::Cluster, Kind::Vm]);
        assert!(err(Options::parse(r#"{"page_size":501}"#)).contains("1-500"));
        assert!(err(Options::parse(r#"{"page_size":0}"#)).contains("1-500"));
        assert!(err(Options::parse(r#"{"page_size":"x"}"#)).contains("non-negative integer"));
        assert!(err(Options::parse(r#"{"resource_kinds":["vms","disks"]}"#)).contains("unknown kind 'disks'"));
        assert_eq!(Options::parse(r#"{"max_template_version_calls":0}"#).unwrap().max_template_version_calls, 0);
        assert_eq!(Options::default().max_template_version_calls, DEFAULT_MAX_TEMPLATE_VERSION_CALLS);
        assert!(matches!(Options::parse(r#"{"max_template_version_calls":1001}"#), Err(Error::InvalidArgument(_))));
        assert!(matches!(Options::parse(r#"{"max_template_version_calls":-1}"#), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn console_and_guard_options() {
        let o = Options::parse(r#"{"icon_base_url": "https://cf.example/icons/", "deletion_guard": {"max_drop": 0.25},
            "region_locations": {"*": {"continent": "europe", "latitude": 1, "longitude": 2}}}"#).unwrap();
        assert_eq!(o.icon_base_url.as_deref(), Some("https://cf.example/icons"));
        assert_eq!(o.deletion_guard, Some(DeletionGuard { max_drop: 0.25 }));
        assert_eq!(o.region_locations.of("any", None).unwrap().continent, "europe");
        let d = Options::default();
        assert_eq!((d.icon_base_url, d.deletion_guard), (None, Some(DeletionGuard { max_drop: DEFAULT_MAX_DROP })));
        assert_eq!(Options::parse(r#"{"deletion_guard": false}"#).unwrap().deletion_guard, None);
        assert!(err(Options::parse(r#"{"icon_base_url": "ftp://x"}"#)).contains("icon_base_url"));
        assert!(err(Options::parse(r#"{"icon_base_url": "https://x/?a=1"}"#)).contains("icon_base_url"));
        assert!(err(Options::parse(r#"{"deletion_guard": {"max_drop": 2}}"#)).contains("max_drop"));
        assert!(err(Options::parse(r#"{"deletion_guard": {"share": 0.1}}"#)).contains("unknown key"));
        assert!(err(Options::parse(r#"{"region_locations": {"a": {"continent": "atlantis", "latitude": 0, "longitude": 0}}}"#)).contains("continent"));
    }

    #[test]
    fn task_filter() {
        let o = Options::parse(r#"{"task_filter": {"cloud_service_groups": ["Compute"], "providers": ["nutanix"]}}"#).unwrap();
        assert!(o.task_filter.admits("nutanix", "Compute", "VirtualMachine"));
        assert!(!o.task_filter.admits("nutanix", "Storage", "Image"));
        assert!(!o.task_filter.admits("aws", "Compute", "VirtualMachine"));
        assert!(Options::parse("{}").unwrap().task_filter.admits("nutanix", "Storage", "Image"));
        let only_regions = Options::parse(r#"{"task_filter": {"resources": ["inventory.Region"]}}"#).unwrap();
        assert!(!only_regions.task_filter.admits("nutanix", "Compute", "Host"));
        assert!(Options::parse(r#"{"task_filter": []}"#).is_err());
        assert!(Options::parse(r#"{"task_filter": {"region_codes": "a"}}"#).is_err());
        assert_eq!(parse_task_regions(r#"{"region_codes": ["c1"]}"#).unwrap(), Some(vec!["c1".to_string()]));
        assert_eq!(parse_task_regions("{}").unwrap(), None);
        assert!(parse_task_regions(r#"{"region_codes": [1]}"#).is_err());
    }

    #[test]
    fn task_kinds() {
        assert_eq!(parse_task_kinds("").unwrap(), None);
        assert_eq!(parse_task_kinds("{}").unwrap(), None);
        assert_eq!(parse_task_kinds(r#"{"resource_kinds":["hosts"]}"#).unwrap(), Some(vec![Kind::Host]));
        assert!(parse_task_kinds(r#"{"resource_kinds":"hosts"}"#).is_err());
    }

    #[test]
    fn schema_lists_every_kind() {
        let s = options_schema();
        let kinds = s["properties"]["resource_kinds"]["items"]["enum"].as_array().unwrap();
        assert_eq!(kinds.len(), Kind::ALL.len());
    }
}
