//! `--otlp-endpoint`: the `cf-host` binary exports its spans over OTLP/gRPC.
//! A fake OpenTelemetry collector (the generated `TraceService` server, on
//! a loopback port) receives them: one `run` span per sandbox call with the
//! tenant, plugin, run id, call and outcome, and the guest's log lines as
//! its events. The password in the secret appears nowhere in what was
//! exported. Needs the guest component built.

mod common;

use common::{guest, rt, simulator};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prism_sim::SimConfig;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    /// The raw requests, to search for what must not be there.
    dumps: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(&self, request: tonic::Request<ExportTraceServiceRequest>) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        self.dumps.lock().unwrap().push(format!("{req:?}"));
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[test]
fn spans_of_each_sandbox_call_go_to_the_otlp_collector() {
    let collector = Collector::default();
    let listener = rt().block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = TraceServiceServer::new(collector.clone());
    rt().spawn(tonic::transport::Server::builder().add_service(server).serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));

    let sim = simulator(SimConfig::default());
    let dir = std::env::temp_dir().join(format!("cf-host-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.json");
    std::fs::write(&secret, r#"{"username": "admin", "password": "nutanix/4u"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(["collect", "--plugin", guest().to_str().unwrap(), "--endpoint", &sim.url(), "--secret", secret.to_str().unwrap()])
        .args(["--store", dir.join("s.db").to_str().unwrap(), "--tenant", "acme"])
        .args(["--otlp-endpoint", &format!("http://{addr}")])
        .env("CF_HOST_LOG", "error")
        .output()
        .expect("cf-host runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let spans = collector.spans.lock().unwrap().clone();
    let runs: Vec<BTreeMap<String, String>> = spans.iter().filter(|s| s.name == "run").map(attributes).collect();
    let calls: Vec<&str> = runs.iter().map(|a| a["call"].as_str()).collect();
    assert!(calls.contains(&"collect"), "a run span per sandbox call: {calls:?}");
    let collect = runs.iter().find(|a| a["call"] == "collect").unwrap();
    assert_eq!(collect["tenant"], "acme");
    assert_eq!(collect["plugin"], "guest_nutanix");
    assert_eq!(collect["outcome"], "OK");
    assert!(collect["digest"].starts_with("sha256:") && !collect["run"].is_empty(), "{collect:?}");
    // The guest's log lines are the span's events.
    let span = spans.iter().find(|s| s.name == "run" && attributes(s)["call"] == "collect").unwrap();
    assert!(span.events.iter().any(|e| e.name.contains("cluster list read")), "{:?}", span.events.iter().map(|e| &e.name).collect::<Vec<_>>());
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    let dumps = collector.dumps.lock().unwrap().join("\n");
    assert!(!dumps.contains("nutanix/4u"), "the password is not exported");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(["--otlp-endpoint", "collector:4317", "plugins", "list"])
        .env("CF_HOST_LOG", "error")
        .output()
        .expect("cf-host runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--otlp-endpoint \"collector:4317\" must be an http:// or https:// URL"), "{err}");
}
