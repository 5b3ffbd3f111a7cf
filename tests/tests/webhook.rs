//! Completion webhooks from `cf-host serve`: a signed `collection.finished`
//! after a good run (retried through a receiver's 500), `collection.failed`
//! with the error after a bad one.

use axum::http::{HeaderMap, StatusCode};
use cf_host::grpc::convert::json_to_struct;
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::CollectRequest;
use cf_host::grpc::{PluginService, ServeConfig};
use cf_host::registry::Registry;
use cf_host::webhook::{sign, Webhook};
use cf_host::{Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "webhook-secret-0123456789";

type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver that answers 500 to its first `fail_first` deliveries.
async fn receiver(fail_first: usize) -> (String, Received) {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut all = seen.lock().unwrap();
                all.push((headers, body.to_vec()));
                if all.len() <= fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn collect(url: &str, task: Value) {
    let mut client = CollectorClient::connect(url.to_string()).await.unwrap();
    let req = CollectRequest { options: None, secret_data: None, filter: None, task_options: task.as_object().map(json_to_struct) };
    if let Ok(r) = client.collect(req).await {
        let mut stream = r.into_inner();
        while let Ok(Some(_)) = stream.message().await {}
    }
}

async fn wait_for(got: &Received, n: usize) {
    let started = Instant::now();
    while got.lock().unwrap().len() < n {
        assert!(started.elapsed() < Duration::from_secs(10), "{n} deliveries expected, got {}", got.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the signature headers and returns the event.
fn verified(headers: &HeaderMap, body: &[u8]) -> Value {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let ts: u64 = h("x-cf-timestamp").parse().expect("timestamp");
    assert_eq!(h("x-cf-signature"), sign(SECRET.as_bytes(), ts, body), "signature");
    assert_ne!(h("x-cf-signature"), sign(b"another-secret-0123456789", ts, body));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(h("x-cf-event"), event["event"].as_str().unwrap());
    assert_eq!(h("x-cf-delivery"), event["run_id"].as_str().unwrap());
    event
}

#[test]
fn collections_are_reported_to_a_signed_webhook() {
    block_on(async {
        let (hook_url, got) = receiver(1).await;
        let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 2, ..RuntimeConfig::default() }).unwrap());
        let registry = Arc::new(Registry::new(runtime, None));
        registry.load_file(&adversary_wasm(), None, true).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let service = PluginService::new(registry, "adversary", ServeConfig::default()).with_webhook(Webhook::new(&hook_url, SECRET).unwrap());
        tokio::spawn(cf_host::grpc::serve(listener, service, std::future::pending()));

        collect(&url, json!({"attack": "stamp", "n": 10})).await;
        // The first delivery got a 500 and was retried.
        wait_for(&got, 2).await;
        let (first, second) = {
            let all = got.lock().unwrap();
            (all[0].clone(), all[1].clone())
        };
        assert_eq!(first.1, second.1, "the retry sends the same event");
        let event = verified(&second.0, &second.1);
        assert_eq!(event["event"], "collection.finished");
        assert_eq!(event["records"], json!({"Region": 10}));
        assert_eq!((event["errors"].as_u64(), event["plugin"].as_str(), event["tenant"].as_str()), (Some(0), Some("adversary"), Some("default")));
        assert!(event["run_id"].as_str().unwrap().starts_with("run-") && event.get("error").is_none(), "{event}");
        assert!(event["plugin_digest"].as_str().unwrap().starts_with("sha256:"));

        collect(&url, json!({"attack": "panic"})).await;
        wait_for(&got, 3).await;
        let (headers, body) = got.lock().unwrap()[2].clone();
        let event = verified(&headers, &body);
        assert_eq!(event["event"], "collection.failed");
        assert!(event["error"]["code"].is_string() && event["error"]["message"].as_str().unwrap().contains("panic"), "{event}");
        assert!(!String::from_utf8_lossy(&body).contains(SECRET));
    });
}
