//! The WIT edge (wasm32 only): the host's imports as [`Transport`],
//! [`Sink`] and [`State`], and the conversions [`crate::export!`] uses to
//! make a [`Collector`] (and [`CostSource`], [`MetricSource`]) the
//! component's exports. No collector logic lives here.

use crate::bindings::cloudforet::collector::{emit, http, log, state};
use crate::bindings::exports::cloudforet::collector::collector as wit;
use crate::io::{Begun, Credential, HttpRequest, HttpResponse, Io, Level, Method, Sink, Started, State, Transport, TransportError};
use crate::plugin::{Collector, Metadata};
use crate::record::{self, Record};
use crate::{Error, Flow};

pub use crate::bindings::cloudforet::collector::types::CollectorError;

/// The collector error as the WIT's.
pub fn to_wit_error(e: Error) -> CollectorError {
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

/// Runs `f` with the host's imports as its [`Io`].
pub fn with_host<R>(f: impl FnOnce(&mut Io<'_>) -> R) -> R {
    f(&mut Io { http: &mut HostHttp, sink: &mut HostSink, state: &mut HostState })
}

pub fn init<C: Collector>(options: String) -> Result<wit::PluginMetadata, CollectorError> {
    let Metadata { supported_resource_types, supported_schedules, supported_features, options_schema } = C::init(&options).map_err(to_wit_error)?;
    Ok(wit::PluginMetadata { supported_resource_types, supported_schedules, supported_features, options_schema: options_schema.to_string() })
}

pub fn verify<C: Collector>(options: String, secret: String) -> Result<(), CollectorError> {
    with_host(|io| C::verify(io, &options, &secret)).map_err(to_wit_error)
}

pub fn get_tasks<C: Collector>(options: String, secret: String) -> Result<Vec<wit::Task>, CollectorError> {
    let tasks = C::get_tasks(&options, &secret).map_err(to_wit_error)?;
    Ok(tasks.into_iter().map(|t| wit::Task { options: t.to_string() }).collect())
}

pub fn collect<C: Collector>(options: String, secret: String, task_options: String) -> Result<wit::Summary, CollectorError> {
    let s = with_host(|io| C::collect(io, &options, &secret, &task_options)).map_err(to_wit_error)?;
    Ok(wit::Summary { emitted: s.emitted, errors: s.errors })
}

#[cfg(feature = "cost")]
pub mod cost {
    use super::{to_wit_error, with_host, CollectorError};
    use crate::bindings::exports::cloudforet::collector::cost_source as wit;
    use crate::plugin::CostSource;

    pub fn init<C: CostSource>(options: String) -> Result<String, CollectorError> {
        C::init(&options).map(|m| m.to_string()).map_err(to_wit_error)
    }

    pub fn get_tasks<C: CostSource>(options: String, secret: String, start: Option<String>, last: Option<String>) -> Result<Vec<wit::CostTask>, CollectorError> {
        let tasks = C::get_tasks(&options, &secret, start.as_deref(), last.as_deref()).map_err(to_wit_error)?;
        Ok(tasks
            .into_iter()
            .map(|t| wit::CostTask { options: t.options.to_string(), changed: t.changed.map(|(start, end)| wit::CostPeriod { start, end }) })
            .collect())
    }

    pub fn get_data<C: CostSource>(options: String, secret: String, task_options: String) -> Result<u64, CollectorError> {
        with_host(|io| C::get_data(io, &options, &secret, &task_options)).map_err(to_wit_error)
    }
}

#[cfg(feature = "metrics")]
pub mod metrics {
    use super::{to_wit_error, CollectorError, HostHttp};
    use crate::bindings::exports::cloudforet::collector::metric_source as wit;
    use crate::plugin::{MetricQuery, MetricSource};

    pub fn init<C: MetricSource>(options: String) -> Result<String, CollectorError> {
        C::init(&options).map(|m| m.to_string()).map_err(to_wit_error)
    }

    pub fn list_metrics<C: MetricSource>(options: String, secret: String, query: String) -> Result<Vec<wit::MetricInfo>, CollectorError> {
        let list = C::list_metrics(&mut HostHttp, &options, &secret, &query).map_err(to_wit_error)?;
        Ok(list
            .into_iter()
            .map(|m| wit::MetricInfo { key: m.key, name: m.name, group: m.group, unit: m.unit.to_string(), metric_query: m.metric_query.to_string() })
            .collect())
    }

    #[expect(clippy::too_many_arguments, reason = "the WIT call's parameters")]
    pub fn get_data<C: MetricSource>(
        options: String,
        secret: String,
        metric_query: String,
        metric: String,
        start: String,
        end: String,
        period: Option<u32>,
        stat: Option<String>,
    ) -> Result<wit::MetricData, CollectorError> {
        let q = MetricQuery { metric_query: &metric_query, metric: &metric, start: &start, end: &end, period, stat: stat.as_deref() };
        let d = C::get_data(&mut HostHttp, &options, &secret, q).map_err(to_wit_error)?;
        Ok(wit::MetricData { labels: d.labels, values: d.values.to_string() })
    }
}

/// `http.send`, `send-authenticated` and `send-many` as a [`Transport`];
/// sleeping uses WASI clocks through std.
pub struct HostHttp;

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
        http::send_many(&outbounds(reqs)).into_iter().map(http_answer).collect()
    }

    fn start_many(&mut self, reqs: Vec<HttpRequest>) -> Started {
        Started(Begun::Host(http::start_many(&outbounds(reqs))))
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A batch as the WIT's.
fn outbounds(reqs: Vec<HttpRequest>) -> Vec<http::Outbound> {
    reqs.into_iter()
        .map(|r| {
            let (request, credential) = outbound(r);
            http::Outbound { request, credential }
        })
        .collect()
}

/// A request as the WIT's, with the credential the host adds.
fn outbound(req: HttpRequest) -> (http::Request, Option<http::Credential>) {
    let wit_req = http::Request {
        method: match req.method {
            Method::Get => http::Method::Get,
            Method::Head => http::Method::Head,
            Method::Post => http::Method::Post,
            Method::Put => http::Method::Put,
            Method::Patch => http::Method::Patch,
            Method::Delete => http::Method::Delete,
        },
        url: req.url,
        headers: req.headers,
        body: req.body,
        timeout_ms: req.timeout_ms,
    };
    let credential = req.auth.map(|a| match a {
        Credential::Basic => http::Credential::Basic,
        Credential::Bearer => http::Credential::Bearer,
        Credential::ApiKey(header) => http::Credential::ApiKey(header),
    });
    (wit_req, credential)
}

pub(crate) fn http_answer(sent: Result<http::Response, http::HttpError>) -> Result<HttpResponse, TransportError> {
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

/// The host's `state` import as [`State`].
pub struct HostState;

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

fn state_error(e: state::StateError) -> String {
    match e {
        state::StateError::TooLarge(n) => format!("over the host's state limit of {n}"),
        state::StateError::Unavailable(m) => format!("state unavailable: {m}"),
    }
}

/// `emit.emit` (and `costs.emit`, world `cost-plugin`) and `log.log` as a
/// [`Sink`].
pub struct HostSink;

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
            flow = emit_costs(lines);
        }
        flow
    }

    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        log::log(level, message, &fields);
    }
}

#[cfg(feature = "cost")]
fn emit_costs(lines: Vec<Record>) -> Flow {
    use crate::bindings::cloudforet::collector::costs as wit_costs;
    let lines: Vec<wit_costs::Cost> = lines
        .into_iter()
        .filter_map(|r| {
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
        })
        .collect();
    answer(wit_costs::emit(&lines))
}

/// Without the `costs` import (feature `cost` off) a cost line cannot
/// leave the component: the call is told to stop, and the log says why.
#[cfg(not(feature = "cost"))]
fn emit_costs(lines: Vec<Record>) -> Flow {
    log::log(log::Level::Error, &format!("{} cost line(s) dropped: the component was built without feature `cost`", lines.len()), &[]);
    Flow::Stop
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
        Record::Region(r) => emit::Item::Region(emit::Region { name: r.name, region_code: r.region_code, provider: r.provider, tags: r.tags }),
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
