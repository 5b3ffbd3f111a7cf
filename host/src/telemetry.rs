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
    let filter = EnvFilter::try_new(log).unwrap_or_else(|_| EnvFilter::new("warn"));
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
