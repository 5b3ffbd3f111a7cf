//! The WIT edge: converts between the generated bindings and the plain Rust
//! modules, with the host's imports as [`Transport`] and [`Sink`]. No logic
//! lives here.

use crate::collect;
use crate::config::{Auth, API_KEY_HEADER};
use crate::record::Record;
use crate::{Error, Flow, HttpRequest, HttpResponse, Level, Method, Sink, Transport, TransportError};

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

use cloudforet::collector::{emit, http, log};
use exports::cloudforet::collector::collector::{
    CollectorError, Guest, PluginMetadata, Summary, Task,
};

struct Component;

export!(Component);

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
        let s = collect::collect(&mut HostHttp, &mut HostSink, &options, &secret, &task_options)
            .map_err(to_wit_error)?;
        Ok(Summary { emitted: s.emitted, errors: s.errors })
    }
}

fn to_wit_error(e: Error) -> CollectorError {
    match e {
        Error::InvalidArgument(m) => CollectorError::InvalidArgument(m),
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
        let sent = match req.auth {
            None => http::send(&wit_req),
            Some(Auth::Basic) => http::send_authenticated(&wit_req, &http::Credential::Basic),
            Some(Auth::ApiKey) => http::send_authenticated(&wit_req, &http::Credential::ApiKey(API_KEY_HEADER.to_string())),
        };
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

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// `emit.emit` and `log.log` as a [`Sink`].
struct HostSink;


impl Sink for HostSink {
    fn emit(&mut self, batch: Vec<Record>) -> Flow {
        let items: Vec<emit::Item> = batch.into_iter().map(to_item).collect();
        let ack = emit::emit(&items);
        // The host replaced each rejected item by an error resource; say so
        // in the guest's own log too (the first one is enough to debug).
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

fn to_item(r: Record) -> emit::Item {
    match r {
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
            data: c.data.to_string(),
            metadata: c.metadata.to_string(),
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
            metadata: t.metadata.to_string(),
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
    }
}
