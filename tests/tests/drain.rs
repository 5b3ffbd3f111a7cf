//! Graceful shutdown of the gRPC server: calls in flight finish during the
//! drain, and are cancelled (their guests stopped) when it times out.

use cf_host::grpc::convert::json_to_struct;
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::CollectRequest;
use cf_host::grpc::{PluginService, ServeConfig};
use cf_host::registry::Registry;
use cf_host::{Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), String>>,
    runtime: Arc<Runtime>,
}

async fn start(drain: Duration) -> Server {
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).unwrap());
    let registry = Arc::new(Registry::new(runtime.clone(), None));
    registry.load_file(&adversary_wasm(), None, true).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServeConfig { drain_timeout: drain, ..ServeConfig::default() };
    let service = PluginService::new(registry, "adversary", config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(cf_host::grpc::serve(listener, service, async {
        let _ = rx.await;
    }));
    Server { url, stop: Some(tx), done, runtime }
}

/// Starts a collection of `n` stamped records (5 per batch, 5 ms apart).
async fn long_collect(url: &str, n: u64) -> tonic::Streaming<cf_host::grpc::pb::plugin::ResourceInfo> {
    let mut client = CollectorClient::connect(url.to_string()).await.unwrap();
    let req = CollectRequest {
        options: None,
        secret_data: None,
        filter: None,
        task_options: json!({"attack": "stamp", "n": n}).as_object().map(json_to_struct),
    };
    client.collect(req).await.unwrap().into_inner()
}

/// Reads the stream to its end: (records, the error it ended with).
async fn drain_stream(stream: &mut tonic::Streaming<cf_host::grpc::pb::plugin::ResourceInfo>) -> (u64, Option<tonic::Status>) {
    let mut n = 0;
    loop {
        match stream.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

#[test]
fn calls_in_flight_finish_during_the_drain() {
    block_on(async {
        let mut s = start(Duration::from_secs(30)).await;
        let mut stream = long_collect(&s.url, 200).await;
        assert!(stream.message().await.unwrap().is_some(), "the run has started");
        s.stop.take().unwrap().send(()).unwrap();
        let (n, error) = drain_stream(&mut stream).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(n + 1, 200, "every record of the run in flight arrived");
        let r = tokio::time::timeout(Duration::from_secs(10), s.done).await.expect("the server stops once drained");
        assert_eq!(r.unwrap(), Ok(()));
        assert_eq!(s.runtime.metrics().active_sandboxes(), 0);
    });
}

#[test]
fn calls_still_running_at_the_drain_timeout_are_cancelled() {
    block_on(async {
        let mut s = start(Duration::from_millis(300)).await;
        let mut stream = long_collect(&s.url, 4000).await;
        assert!(stream.message().await.unwrap().is_some(), "the run has started");
        let stopped_at = Instant::now();
        s.stop.take().unwrap().send(()).unwrap();
        let (n, error) = drain_stream(&mut stream).await;
        assert!(n + 1 < 4000, "the run was cut short ({n} records)");
        let error = error.expect("the stream ends with an error");
        assert_eq!(error.code(), tonic::Code::Unavailable);
        assert!(error.message().contains("shutting down"), "{error:?}");
        let r = tokio::time::timeout(Duration::from_secs(10), s.done).await.expect("the server stops");
        assert_eq!(r.unwrap(), Ok(()));
        let took = stopped_at.elapsed();
        assert!(took < Duration::from_secs(3), "stopped {took:?} after the signal (drain timeout 300 ms, the run needs ~4 s)");
        // The cancelled guest is gone: no sandbox left running.
        let started = Instant::now();
        while s.runtime.metrics().active_sandboxes() != 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "sandbox still active");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
