//! The process's tracing: the log on stderr (`--log` filter) and, with an
//! OTLP endpoint (`--otlp-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT`), the
//! spans exported over OTLP/gRPC to an OpenTelemetry collector.
//!
//! Exported are the `info` spans and events of the host and of guests: one
//! `run` span per sandbox call (tenant, plugin, digest, run id, call, and
//! its outcome), with the guest's log lines as its events. The exporter runs
//! in a batch processor on its own thread; [`Telemetry::shutdown`] flushes
//! it when the command ends. Without an endpoint nothing is exported and no
//! connection is made.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What [`init`] set up; flush it with [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. Must run inside the tokio runtime (the
/// gRPC exporter's channel lives on it).
pub fn init(log: &str, otlp_endpoint: Option<&str>, ansi: bool) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(scoped_filter(log)).map_err(|e| format!("--log {log:?} is not a log filter: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(filter);
    let Some(endpoint) = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        tracing_subscriber::registry().with(fmt).try_init().map_err(|e| e.to_string())?;
        return Ok(Telemetry { provider: None });
    };
    let url = url::Url::parse(endpoint).map_err(|e| format!("--otlp-endpoint {endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("--otlp-endpoint {endpoint:?} must be an http:// or https:// URL of an OTLP/gRPC collector"));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("cf-host").build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cf-host"))
        .with_filter(EnvFilter::new("info,h2=off,hyper=off,tonic=off,tower=off,reqwest=off,opentelemetry=off"));
    tracing_subscriber::registry().with(fmt).with(otel).try_init().map_err(|e| e.to_string())?;
    Ok(Telemetry { provider: Some(provider) })
}

/// The host's own log targets: a bare level in `--log` applies to these.
pub const OWN_TARGETS: &[&str] = &["cf_host", "guest", "prism_sim"];

/// `--log` as the filter applies it: a bare level (`trace`, `debug`, ...)
/// is for the host's own targets ([`OWN_TARGETS`]), while dependencies
/// (wasmtime, cranelift, hyper, h2, ...) stay at `warn` unless a directive
/// names them (`warn,cranelift=debug`). Directives naming a target, and
/// span filters, pass unchanged.
pub fn scoped_filter(log: &str) -> String {
    let mut out = vec!["warn".to_string()];
    for d in log.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare_level = !d.contains('=') && !d.contains('[') && !d.contains(':');
        if bare_level {
            out.extend(OWN_TARGETS.iter().map(|t| format!("{t}={d}")));
        } else {
            out.push(d.to_string());
        }
    }
    out.join(",")
}

impl Telemetry {
    /// Exports what is still buffered (a short-lived command's spans).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: OTLP span export did not finish: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_levels_are_for_the_hosts_own_targets() {
        assert_eq!(scoped_filter("trace"), "warn,cf_host=trace,guest=trace,prism_sim=trace");
        assert_eq!(scoped_filter("info,cranelift=debug"), "warn,cf_host=info,guest=info,prism_sim=info,cranelift=debug");
        assert_eq!(scoped_filter("guest=debug"), "warn,guest=debug");
        assert_eq!(scoped_filter(""), "warn");
        let f = EnvFilter::try_new(scoped_filter("trace")).unwrap().to_string();
        assert!(f.contains("cf_host=trace") && !f.contains("wasmtime"), "{f}");
        assert!(EnvFilter::try_new(scoped_filter("cf_host=loud")).is_err(), "a bad level is an error, not warn");
    }
}
