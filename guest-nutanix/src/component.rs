//! The WIT edge: converts between the generated bindings and the plain Rust
//! modules, with the host's imports as [`Transport`] and [`Sink`]. No logic
//! lives here.

use crate::collect;
use crate::config::{Auth, API_KEY_HEADER};
use crate::record::{self, Record};
use crate::{Error, Flow, HttpRequest, HttpResponse, Level, Method, Sink, State, Transport, TransportError};

wit_bindgen::generate!({
    path: "../wit",
    world: "full-plugin",
});

use crate::costs;
use cloudforet::collector::{costs as wit_costs, emit, http, log, state};
use exports::cloudforet::collector::collector::{
    CollectorError, Guest, PluginMetadata, Summary, Task,
};
use exports::cloudforet::collector::cost_source::{self, CostPeriod, CostTask};
use exports::cloudforet::collector::metric_source::{self, MetricData, MetricInfo};

struct Component;

export!(Component);

/// Free lists per size class in front of talc (instead of dlmalloc): the
/// component runs single-threaded, and the collection allocates per entity
/// and record (see `heap` and BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: crate::heap::SizeClasses<talc::wasm::WasmDynamicTalc> = crate::heap::SizeClasses::new(talc::wasm::new_wasm_dynamic_allocator());

/// Who this component is, for the host's registry: written into the
/// `cloudforet-plugin` custom section at build time.
const PLUGIN_INFO: &str = concat!(r#"{"name":"nutanix","version":""#, env!("CARGO_PKG_VERSION"), r#""}"#);

#[unsafe(link_section = "cloudforet-plugin")]
#[used]
static PLUGIN_SECTION: [u8; PLUGIN_INFO.len()] = section(PLUGIN_INFO);

const fn section<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

impl Guest for Component {
    fn init(options: String) -> Result<PluginMetadata, CollectorError> {
        let m = collect::init(&options).map_err(to_wit_error)?;
        Ok(PluginMetadata {
            supported_resource_types: m.supported_resource_types,
            supported_schedules: m.supported_schedules,
            supported_features: m.supported_features,
            options_schema: m.options_schema.to_string(),
        })
    }

    fn verify(options: String, secret: String) -> Result<(), CollectorError> {
        collect::verify(&mut HostHttp, &mut HostSink, &options, &secret).map_err(to_wit_error)
    }

    fn get_tasks(options: String, secret: String) -> Result<Vec<Task>, CollectorError> {
        let tasks = collect::get_tasks(&options, &secret).map_err(to_wit_error)?;
        Ok(tasks.into_iter().map(|t| Task { options: t.to_string() }).collect())
    }

    fn collect(options: String, secret: String, task_options: String) -> Result<Summary, CollectorError> {
        let s = collect::collect(&mut HostHttp, &mut HostSink, &mut HostState, &options, &secret, &task_options)
            .map_err(to_wit_error)?;
        Ok(Summary { emitted: s.emitted, errors: s.errors })
    }
}

impl cost_source::Guest for Component {
    fn init(options: String) -> Result<String, CollectorError> {
        costs::init(&options).map(|m| m.to_string()).map_err(to_wit_error)
    }

    fn get_tasks(
        options: String,
        _secret: String,
        start: Option<String>,
        last_synchronized_at: Option<String>,
    ) -> Result<Vec<CostTask>, CollectorError> {
        let tasks = costs::get_tasks(&options, start.as_deref(), last_synchronized_at.as_deref(), today()).map_err(to_wit_error)?;
        Ok(tasks
            .into_iter()
            .map(|t| CostTask {
                options: t.options().to_string(),
                changed: Some(CostPeriod { start: t.billed_date.clone(), end: Some(t.billed_date) }),
            })
            .collect())
    }

    fn get_data(options: String, secret: String, task_options: String) -> Result<u64, CollectorError> {
        let s = collect::cost_data(&mut HostHttp, &mut HostSink, &options, &secret, &task_options).map_err(to_wit_error)?;
        Ok(s.emitted)
    }
}

impl metric_source::Guest for Component {
    fn init(options: String) -> Result<String, CollectorError> {
        crate::metrics::init(&options).map(|m| m.to_string()).map_err(to_wit_error)
    }

    fn list_metrics(options: String, secret: String, query: String) -> Result<Vec<MetricInfo>, CollectorError> {
        let list = crate::metrics::list(&mut HostHttp, &options, &secret, &query).map_err(to_wit_error)?;
        Ok(list
            .into_iter()
            .map(|(m, q)| MetricInfo {
                key: m.key.to_string(),
                name: m.name.to_string(),
                group: m.group.to_string(),
                unit: crate::metrics::unit(m).to_string(),
                metric_query: q.to_string(),
            })
            .collect())
    }

    fn get_data(
        options: String,
        secret: String,
        metric_query: String,
        metric: String,
        start: String,
        end: String,
        period: Option<u32>,
        stat: Option<String>,
    ) -> Result<MetricData, CollectorError> {
        let s = crate::metrics::get_data(&mut HostHttp, &options, &secret, &metric_query, &metric, &start, &end, period, stat.as_deref())
            .map_err(to_wit_error)?;
        Ok(MetricData { labels: s.labels, values: serde_json::to_string(&s.values).unwrap_or_else(|_| "{}".into()) })
    }
}

/// Today (UTC) from the host's wall clock.
fn today() -> costs::Day {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs / 86_400) as costs::Day
}

fn to_wit_error(e: Error) -> CollectorError {
    match e {
        Error::InvalidArgument(m) => CollectorError::InvalidArgument(m),
        Error::MissingParameter(m) => CollectorError::MissingParameter(m),
        Error::Unauthenticated(m) => CollectorError::Unauthenticated(m),
        Error::PermissionDenied(m) => CollectorError::PermissionDenied(m),
        Error::NotFound(m) => CollectorError::NotFound(m),
        Error::Unavailable(m) => CollectorError::Unavailable(m),
        Error::Timeout(m) => CollectorError::Timeout(m),
        Error::ResourceExhausted(m) => CollectorError::ResourceExhausted(m),
        Error::Internal(m) => CollectorError::Internal(m),
    }
}

/// `http.send` as a [`Transport`]; sleeping uses WASI clocks through std.
struct HostHttp;

impl Transport for HostHttp {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let (wit_req, credential) = outbound(req);
        let sent = match credential {
            None => http::send(&wit_req),
            Some(c) => http::send_authenticated(&wit_req, &c),
        };
        http_answer(sent)
    }

    fn send_many(&mut self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        let batch: Vec<http::Outbound> = reqs
            .into_iter()
            .map(|r| {
                let (request, credential) = outbound(r);
                http::Outbound { request, credential }
            })
            .collect();
        http::send_many(&batch).into_iter().map(http_answer).collect()
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// `emit.emit` and `log.log` as a [`Sink`].
struct HostSink;

/// The host's `state` import as [`State`].
struct HostState;

impl State for HostState {
    fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        state::get(key).map_err(state_error)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        state::set(key, value).map_err(state_error)
    }
    fn delete(&mut self, key: &str) -> Result<(), String> {
        state::delete(key).map_err(state_error)
    }
}

/// A request as the WIT's, with the credential the host adds.
fn outbound(req: HttpRequest) -> (http::Request, Option<http::Credential>) {
    let wit_req = http::Request {
        method: match req.method {
            Method::Get => http::Method::Get,
            Method::Post => http::Method::Post,
        },
        url: req.url,
        headers: req.headers,
        body: req.body,
        timeout_ms: req.timeout_ms,
    };
    let credential = req.auth.map(|a| match a {
        Auth::Basic => http::Credential::Basic,
        Auth::ApiKey => http::Credential::ApiKey(API_KEY_HEADER.to_string()),
    });
    (wit_req, credential)
}

fn http_answer(sent: Result<http::Response, http::HttpError>) -> Result<HttpResponse, TransportError> {
    match sent {
        Ok(r) => Ok(HttpResponse { status: r.status, headers: r.headers, body: r.body }),
        Err(e) => Err(match e {
            http::HttpError::Denied(m) => TransportError::Denied(m),
            http::HttpError::InvalidRequest(m) => TransportError::InvalidRequest(m),
            http::HttpError::Timeout => TransportError::Timeout,
            http::HttpError::Connection(m) => TransportError::Connection(m),
            http::HttpError::Tls(m) => TransportError::Tls(m),
            http::HttpError::TooLarge(n) => TransportError::TooLarge(n),
        }),
    }
}

fn state_error(e: state::StateError) -> String {
    match e {
        state::StateError::TooLarge(n) => format!("over the host's state limit of {n}"),
        state::StateError::Unavailable(m) => format!("state unavailable: {m}"),
    }
}


impl Sink for HostSink {
    fn emit(&mut self, batch: Vec<Record>) -> Flow {
        // Costs go through `costs.emit`, everything else through `emit.emit`.
        let (lines, records): (Vec<Record>, Vec<Record>) = batch.into_iter().partition(|r| matches!(r, Record::Cost(_)));
        let mut flow = Flow::Proceed;
        if !records.is_empty() {
            let items: Vec<emit::Item> = records.into_iter().filter_map(to_item).collect();
            flow = answer(emit::emit(&items));
        }
        if !lines.is_empty() && flow == Flow::Proceed {
            let lines: Vec<wit_costs::Cost> = lines.into_iter().filter_map(to_cost).collect();
            flow = answer(wit_costs::emit(&lines));
        }
        flow
    }

    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        log::log(level, message, &fields);
    }
}

/// The flow of the host's answer to a batch. The host replaced each
/// rejected item by an error resource; the guest's own log says so too (the
/// first one is enough to debug).
fn answer(ack: emit::Ack) -> Flow {
    if let Some(first) = ack.rejected.first() {
        let count = ack.rejected.len().to_string();
        let index = first.index.to_string();
        log::log(
            log::Level::Warn,
            &format!("host rejected {count} record(s) of a batch: {}", first.reason),
            &[("count".into(), count), ("first_index".into(), index)],
        );
    }
    match ack.flow {
        emit::Flow::Proceed => Flow::Proceed,
        emit::Flow::Stop => Flow::Stop,
    }
}

fn to_cost(r: Record) -> Option<wit_costs::Cost> {
    let Record::Cost(c) = r else { return None };
    Some(wit_costs::Cost {
        cost: c.cost,
        usage_quantity: c.usage_quantity,
        usage_unit: c.usage_unit,
        provider: c.provider,
        region_code: c.region_code,
        product: c.product,
        usage_type: c.usage_type,
        resource: c.resource,
        tags: c.tags,
        additional_info: record::json_text(&c.additional_info),
        data: record::json_text(&c.data),
        billed_date: c.billed_date,
    })
}

fn to_item(r: Record) -> Option<emit::Item> {
    Some(match r {
        Record::CloudService(c) => emit::Item::CloudService(emit::CloudService {
            name: c.name,
            provider: c.provider,
            cloud_service_group: c.cloud_service_group,
            cloud_service_type: c.cloud_service_type,
            account: c.account,
            region_code: c.region_code,
            instance_type: c.instance_type,
            instance_size: c.instance_size,
            ip_addresses: c.ip_addresses,
            tags: c.tags,
            reference: emit::Reference { resource_id: c.resource_id, external_link: c.external_link },
            launched_at: c.launched_at,
            data: record::json_text(&c.data),
            metadata: record::json_text(&c.metadata),
        }),
        Record::CloudServiceType(t) => emit::Item::CloudServiceType(emit::CloudServiceType {
            name: t.name,
            group: t.group,
            provider: t.provider,
            service_code: t.service_code,
            is_primary: t.is_primary,
            is_major: t.is_major,
            labels: t.labels,
            tags: t.tags,
            metadata: record::json_text(&t.metadata),
        }),
        Record::Region(r) => emit::Item::Region(emit::Region {
            name: r.name,
            region_code: r.region_code,
            provider: r.provider,
            tags: r.tags,
        }),
        Record::Error(e) => emit::Item::ErrorResource(emit::ErrorResource {
            message: e.message,
            provider: e.provider,
            cloud_service_group: e.cloud_service_group,
            cloud_service_type: e.cloud_service_type,
            resource_type: e.resource_type,
        }),
        Record::Namespace(n) => emit::Item::Namespace(emit::Namespace {
            namespace_id: n.namespace_id,
            name: n.name,
            category: n.category,
            resource_type: n.resource_type,
            group: n.group,
            provider: n.provider,
            icon: n.icon,
            tags: n.tags,
        }),
        Record::Metric(m) => emit::Item::Metric(emit::Metric {
            metric_id: m.metric_id,
            name: m.name,
            metric_type: if m.gauge { emit::MetricType::Gauge } else { emit::MetricType::Counter },
            resource_type: m.resource_type,
            namespace_id: m.namespace_id,
            provider: m.provider,
            // CloudForet's unit string (world 0.3); an object form's `x`.
            unit: m.unit.as_str().or_else(|| m.unit.get("x").and_then(|x| x.as_str())).unwrap_or_default().to_string(),
            query_options: record::json_text(&m.query_options),
            tags: m.tags,
        }),
        Record::Cost(_) => return None,
    })
}
