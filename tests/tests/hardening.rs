//! The server around the sandbox under hostile or careless clients: no
//! deadlock, bounded memory and connections, consistent errors.
//!
//! A test that could hang (a deadlock) runs its work on another thread and
//! fails when that thread does not answer in time, instead of hanging the
//! suite.

use cf_host::registry::cache::PrecompileCache;
use cf_host::registry::Registry;
use cf_host::{Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, temp_dir};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";

/// Runs `f` on its own thread; fails the test when it takes longer than
/// `within` (a deadlock would hold it forever).
fn within<T: Send + 'static>(what: &str, within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("{what} did not finish within {within:?}: deadlock?"))
}

fn registry(name: &str) -> Arc<Registry> {
    let dir = temp_dir(name);
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).unwrap());
    Arc::new(Registry::new(runtime, Some(PrecompileCache::new(dir.join("cache")).unwrap())))
}

/// Loading a version that is already loaded (a retried `plugins load`)
/// answers "unchanged" and leaves the registry usable; it used to hold the
/// registry's lock while taking it again.
#[test]
fn loading_the_same_build_twice_does_not_deadlock() {
    let reg = registry("same-build-twice");
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    let r = reg.clone();
    let (first, second, again_activated) = within("loading one build twice", Duration::from_secs(60), move || {
        let first = r.load_bytes("a", &bytes, None, None, false).unwrap();
        let second = r.load_bytes("b", &bytes, None, None, false).unwrap();
        let third = r.load_bytes("c", &bytes, None, None, true).unwrap();
        (first, second, third)
    });
    assert!(!first.unchanged && second.unchanged && again_activated.unchanged);
    assert!(second.live && again_activated.live, "the first version of a plugin is live");
    // The registry still answers.
    let r = reg.clone();
    let listed = within("listing after the reload", Duration::from_secs(5), move || r.list());
    assert_eq!(listed.len(), 1);
}

/// The same build uploaded twice through the admin API: both answer, and
/// the admin API and registry keep answering afterwards.
#[test]
fn uploading_the_same_build_twice_answers_both() {
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    block_on(async {
        let reg = registry("upload-twice");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", listener.local_addr().unwrap());
        let r = reg.clone();
        tokio::spawn(async move { cf_host::admin::serve(listener, r, cf_tests::admin_config(TOKEN), Default::default(), Default::default(), std::future::pending()).await });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        for attempt in 0..3 {
            let resp = client
                .post(format!("{admin}/v1/plugins?activate=true"))
                .bearer_auth(TOKEN)
                .body(bytes.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("upload {attempt} got no answer: {e}"));
            assert_eq!(resp.status().as_u16(), 200, "upload {attempt}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["unchanged"], attempt > 0, "{body}");
        }
        let resp = client.get(format!("{admin}/v1/plugins")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    });
}

/// Two copies of one build in the plugins directory at start: the watcher's
/// first scan loads both (the second is unchanged) and returns, so a server
/// can start listening.
#[test]
fn two_copies_of_a_build_in_the_plugins_dir_load_at_start() {
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    let dir = temp_dir("plugins-dir-copies");
    std::fs::write(dir.join("one.wasm"), &bytes).unwrap();
    std::fs::write(dir.join("two.wasm"), &bytes).unwrap();
    // Old enough to count as settled.
    std::thread::sleep(Duration::from_millis(300));
    let reg = registry("plugins-dir-copies-reg");
    let r = reg.clone();
    within("the plugins directory's first scan", Duration::from_secs(60), move || {
        block_on(async move {
            let handle = cf_host::registry::watch::watch(r, dir).await.unwrap();
            drop(handle);
        })
    });
    let r = reg.clone();
    let live = within("the registry after the scan", Duration::from_secs(5), move || r.live("adversary"));
    assert_eq!(live.map(|v| v.to_string()).as_deref(), Some("7.7.1"));
}

/// What a served host runs on: the adversary component, the defaults, and
/// `change` on top.
fn options(change: impl FnOnce(&mut cf_host::serve::ServeOptions)) -> cf_host::serve::ServeOptions {
    let mut o = cf_host::serve::ServeOptions { plugin: Some(adversary_wasm()), ..Default::default() };
    o.runtime.max_concurrency = 4;
    change(&mut o);
    o
}

async fn collector(grpc: &str) -> cf_host::grpc::pb::plugin::collector_client::CollectorClient<tonic::transport::Channel> {
    cf_host::grpc::pb::plugin::collector_client::CollectorClient::connect(grpc.to_string()).await.expect("connect")
}

fn collect_request(task: serde_json::Value) -> cf_host::grpc::pb::plugin::CollectRequest {
    cf_host::grpc::pb::plugin::CollectRequest {
        options: None,
        secret_data: None,
        filter: None,
        task_options: task.as_object().map(cf_host::grpc::convert::json_to_struct),
    }
}

/// A collect stream nobody reads is cancelled after the stall timeout: its
/// sandbox is released (the pool serves others again) and the stall is
/// counted.
#[test]
fn an_unread_stream_is_cancelled_and_releases_its_sandbox() {
    block_on(async {
        let s = cf_tests::serve(options(|o| {
            o.runtime.max_concurrency = 1;
            o.grpc.stall_timeout = Duration::from_millis(500);
        }))
        .await;
        let mut c = collector(&s.grpc).await;
        // Opened, never read: 100k records cannot fit the buffers.
        let _stalled = c.collect(collect_request(serde_json::json!({"attack": "bulk", "n": 100000}))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cf_tests::metric(&s, "cf_host_sandboxes_active").await, 1.0, "the stalled run holds the only slot");
        // Another caller gets the one sandbox once the stall is detected.
        let mut other = collector(&s.grpc).await;
        let started = std::time::Instant::now();
        let mut stream = tokio::time::timeout(Duration::from_secs(10), other.collect(collect_request(serde_json::json!({"attack": "collect-ok", "n": 3}))))
            .await
            .expect("served within the stall timeout")
            .unwrap()
            .into_inner();
        let mut n = 0;
        while stream.message().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(cf_tests::metric(&s, "cf_host_stream_stalls_total").await, 1.0);
    });
}

/// One client address runs at most its share of the calls; past its queue
/// it is refused at once with RESOURCE_EXHAUSTED.
#[test]
fn one_peer_cannot_take_every_slot() {
    block_on(async {
        let s = cf_tests::serve(options(|o| {
            o.grpc.max_calls_per_peer = 1;
            o.grpc.peer_queue = 0;
        }))
        .await;
        let mut c = collector(&s.grpc).await;
        // A long run, read once: it holds the peer's one slot.
        let mut held = c.collect(collect_request(serde_json::json!({"attack": "bulk", "n": 10000000}))).await.unwrap().into_inner();
        held.message().await.unwrap().expect("the first record");
        let e = collector(&s.grpc).await.collect(collect_request(serde_json::json!({"attack": "collect-ok"}))).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().starts_with("ERROR_QUOTA_EXCEEDED: 127.0.0.1 has 1 calls running"), "{}", e.message());
        drop(held);
        // Freed: served again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = collector(&s.grpc).await.collect(collect_request(serde_json::json!({"attack": "collect-ok"}))).await;
        assert!(r.is_ok(), "{r:?}");
    });
}

/// Requests the plugin protocols cannot accept are the caller's mistake:
/// INVALID_ARGUMENT with an `ERROR_*` code CloudForet's client parses.
#[test]
fn oversize_malformed_and_over_deep_requests_are_invalid_arguments() {
    block_on(async {
        let s = cf_tests::serve(options(|o| o.grpc.max_message_bytes = 64 << 10)).await;
        let mut c = collector(&s.grpc).await;
        // 200 KiB of options against a 64 KiB limit.
        let big = serde_json::json!({"blob": "x".repeat(200 << 10)});
        let mut req = collect_request(serde_json::json!({}));
        req.options = big.as_object().map(cf_host::grpc::convert::json_to_struct);
        let e = c.collect(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().starts_with("ERROR_INVALID_ARGUMENT: the request is larger than 65536 bytes"), "{}", e.message());
        // Structs nested past prost's recursion limit.
        let mut v = prost_types::Value { kind: Some(prost_types::value::Kind::NullValue(0)) };
        for _ in 0..150 {
            let s = prost_types::Struct { fields: [("a".to_string(), v)].into_iter().collect() };
            v = prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(s)) };
        }
        let mut req = collect_request(serde_json::json!({}));
        req.options = Some(prost_types::Struct { fields: [("deep".to_string(), v)].into_iter().collect() });
        let e = c.collect(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().starts_with("ERROR_INVALID_ARGUMENT: the message is not a valid CollectRequest"), "{}", e.message());
        // Bytes that are no protobuf at all, through a raw gRPC call.
        let e = raw_unary(&s.grpc, "/spaceone.api.inventory.plugin.Collector/verify", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).await;
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().starts_with("ERROR_INVALID_ARGUMENT: "), "{}", e.message());
        // A non-string plugin_version and a CA bundle that is no PEM.
        for (options, key) in [(serde_json::json!({"plugin_version": 1.5}), "plugin_version"), (serde_json::json!({"ca_bundle": "no pem"}), "ca_bundle")] {
            let mut req = collect_request(serde_json::json!({"attack": "collect-ok"}));
            req.options = options.as_object().map(cf_host::grpc::convert::json_to_struct);
            let e = c.collect(req).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{key}: {}", e.message());
            assert!(e.message().starts_with(&format!("ERROR_INVALID_ARGUMENT: option {key} ")), "{}", e.message());
        }
    });
}

/// A unary gRPC call with `body` as the message bytes; answers its status.
async fn raw_unary(grpc: &str, path: &'static str, body: Vec<u8>) -> tonic::Status {
    #[derive(Clone, Default)]
    struct Raw;
    impl tonic::codec::Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
    impl tonic::codec::Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }
    impl tonic::codec::Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            let n = bytes::Buf::remaining(src);
            Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
        }
    }
    let channel = tonic::transport::Channel::from_shared(grpc.to_string()).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    client
        .unary(tonic::Request::new(body), http::uri::PathAndQuery::from_static(path), Raw)
        .await
        .err()
        .expect("refused")
}

/// Connections past the cap wait in the backlog; idle ones are closed
/// after the idle timeout, so the waiting ones (and a health check) are
/// served.
#[test]
fn idle_connections_are_closed_and_the_cap_holds() {
    block_on(async {
        let s = cf_tests::serve(options(|o| {
            o.grpc.conn.max_connections = 4;
            o.grpc.conn.idle_timeout = Duration::from_millis(800);
        }))
        .await;
        let addr = s.grpc.trim_start_matches("http://").to_string();
        // Four connections that never speak.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let channel = tonic::transport::Channel::from_shared(s.grpc.clone()).unwrap().connect_timeout(Duration::from_secs(10));
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.connect().await.unwrap());
        let r = tokio::time::timeout(Duration::from_secs(10), health.check(tonic_health::pb::HealthCheckRequest { service: String::new() })).await;
        assert!(r.expect("served once the idle ones were closed").is_ok());
        assert!(started.elapsed() >= Duration::from_millis(500), "it waited for a slot: {:?}", started.elapsed());
        // The idle ones were closed by the server (after its HTTP/2 preface).
        for mut c in idle {
            let mut buf = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut c, &mut buf)).await;
            assert!(r.is_ok(), "closed by the server");
        }
    });
}

/// A half-sent HTTP/1.1 request to the admin API is cut off after the
/// header timeout instead of holding its connection.
#[test]
fn a_half_sent_admin_request_is_cut_off() {
    block_on(async {
        let s = cf_tests::serve(options(|o| {
            o.admin = Some(cf_tests::admin_config(TOKEN));
            o.conn.header_timeout = Duration::from_millis(500);
        }))
        .await;
        let addr = s.admin.as_deref().unwrap().trim_start_matches("http://").to_string();
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut c, b"GET /v1/plugins HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut c, &mut buf)).await;
        assert!(r.is_ok(), "the server closed the connection");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    });
}

/// An admin answer: status, headers, JSON body.
async fn admin_call(method: reqwest::Method, url: String, token: Option<&str>, body: Option<serde_json::Value>) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut rb = client.request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn assert_envelope(status: u16, body: &serde_json::Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["request_id"].as_str().is_some_and(|m| m.starts_with("req-")), "{body}");
}

/// Every admin answer, the framework's rejections included, is the error
/// envelope; authentication comes before the body is read or checked.
#[test]
fn every_admin_error_is_the_envelope_and_auth_comes_first() {
    use reqwest::Method;
    block_on(async {
        let s = cf_tests::serve(options(|o| o.admin = Some(cf_tests::admin_config(TOKEN)))).await;
        let a = s.admin.clone().unwrap();
        // Unknown route, wrong method.
        let (st, _, b) = admin_call(Method::GET, format!("{a}/v1/nothing"), Some(TOKEN), None).await;
        assert_envelope(st, &b, 404, "NOT_FOUND");
        let (st, _, b) = admin_call(Method::DELETE, format!("{a}/v1/plugins"), Some(TOKEN), None).await;
        assert_envelope(st, &b, 405, "NOT_FOUND");
        // A bad body without a token is 401, not 400.
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/activate"), None, Some(serde_json::json!({"nope": 1}))).await;
        assert_envelope(st, &b, 401, "UNAUTHENTICATED");
        // With a token, the body's problem, named.
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/activate"), Some(TOKEN), Some(serde_json::json!({"nope": 1}))).await;
        assert_envelope(st, &b, 400, "INVALID_ARGUMENT");
        assert!(b["error"]["message"].as_str().unwrap().contains("the body must be"), "{b}");
        let r = reqwest::Client::new().post(format!("{a}/v1/plugins/adversary/activate")).bearer_auth(TOKEN).body("{").send().await.unwrap();
        let (st, b) = (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap());
        assert_envelope(st, &b, 400, "INVALID_ARGUMENT");
        // An upload declared too large is refused before it is read.
        let r = reqwest::Client::new()
            .post(format!("{a}/v1/plugins"))
            .bearer_auth(TOKEN)
            .header("content-length", (1u64 << 40).to_string())
            .body(vec![0u8; 16])
            .send()
            .await;
        if let Ok(r) = r {
            let (st, b) = (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap_or_default());
            assert_envelope(st, &b, 413, "PAYLOAD_TOO_LARGE");
        }
    });
}

/// Without a token, an upload is refused from its headers: the server
/// answers while the client is still sending (no 256 MiB read first).
#[test]
fn an_unauthenticated_upload_is_refused_before_its_body() {
    block_on(async {
        let s = cf_tests::serve(options(|o| o.admin = Some(cf_tests::admin_config(TOKEN)))).await;
        let addr = s.admin.as_deref().unwrap().trim_start_matches("http://").to_string();
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!("POST /v1/plugins HTTP/1.1\r\nHost: x\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\r\n", 200u64 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut c, head.as_bytes()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut c, &[0u8; 4096]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut c, &mut buf)).await.expect("answered").unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("UNAUTHENTICATED"), "{answer}");
    });
}

/// Roles per route and tenant scopes, from a policy file.
#[test]
fn tokens_act_within_their_role_and_tenant() {
    use reqwest::Method;
    let dir = temp_dir("admin-policy");
    let policy = dir.join("policy.json");
    let hex = |t: &str| {
        use sha2::Digest as _;
        sha2::Sha256::digest(t.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (ro, ops, acme) = ("read-only-token-0123456789", "operator-token-0123456789", "acme-operator-token-0123456789");
    std::fs::write(
        &policy,
        serde_json::json!({"tokens": [
            {"name": "ro", "role": "read", "token_sha256": hex(ro)},
            {"name": "ops", "role": "operate", "token_sha256": hex(ops)},
            {"name": "acme", "role": "operate", "token_sha256": hex(acme), "tenant": "acme"},
        ]})
        .to_string(),
    )
    .unwrap();
    let auth = cf_host::admin::auth::AuthPolicy::single(TOKEN).unwrap().load_file(&policy).unwrap();
    block_on(async {
        let s = cf_tests::serve(options(|o| o.admin = Some(cf_host::admin::AdminConfig::new(auth)))).await;
        let a = s.admin.clone().unwrap();
        let pin = |tenant: Option<&str>| serde_json::json!({"version": "7.7.1", "tenant": tenant});
        // read: list yes, pin no.
        let (st, _, b) = admin_call(Method::GET, format!("{a}/v1/plugins"), Some(ro), None).await;
        assert_eq!(st, 200, "{b}");
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/pin"), Some(ro), Some(pin(Some("x")))).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
        // operate: pins any tenant, but pinning everyone (activation) and rollback are the admin's.
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/pin"), Some(ops), Some(pin(Some("x")))).await;
        assert_eq!(st, 200, "{b}");
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/pin"), Some(ops), Some(pin(None))).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/rollback"), Some(ops), None).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
        // A tenant-scoped token: its own tenant only.
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/pin"), Some(acme), Some(pin(Some("acme")))).await;
        assert_eq!(st, 200, "{b}");
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/pin"), Some(acme), Some(pin(Some("other")))).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/plugins/adversary/unpin"), Some(acme), Some(serde_json::json!({"tenant": "x"}))).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
        // It sees its own pins only.
        let (_, _, b) = admin_call(Method::GET, format!("{a}/v1/plugins"), Some(acme), None).await;
        assert_eq!(b["plugins"][0]["pinned_by"], serde_json::json!(["acme"]), "{b}");
        let (_, _, b) = admin_call(Method::GET, format!("{a}/v1/plugins"), Some(TOKEN), None).await;
        assert_eq!(b["plugins"][0]["pinned_by"], serde_json::json!(["acme", "x"]), "{b}");
        // Webhooks are the admin's.
        let hook = serde_json::json!({"url": "https://hooks.example.com/x", "secret": "0123456789abcdef"});
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/webhooks"), Some(ops), Some(hook)).await;
        assert_envelope(st, &b, 403, "PERMISSION_DENIED");
    });
}

/// Past its budget a token gets 429 RATE_LIMITED with Retry-After; every
/// answer carries the X-RateLimit headers.
#[test]
fn admin_requests_are_rate_limited_per_token() {
    use reqwest::Method;
    block_on(async {
        let mut config = cf_tests::admin_config(TOKEN);
        config.rate_limit = 3;
        let s = cf_tests::serve(options(|o| o.admin = Some(config))).await;
        let a = s.admin.clone().unwrap();
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (st, h, _) = admin_call(Method::GET, format!("{a}/v1/plugins"), Some(TOKEN), None).await;
            assert_eq!(st, 200);
            assert_eq!(h["x-ratelimit-limit"], "3");
            assert!(h.contains_key("x-ratelimit-reset"));
            remaining.push(h["x-ratelimit-remaining"].to_str().unwrap().to_string());
        }
        assert_eq!(remaining, ["2", "1", "0"]);
        let (st, h, b) = admin_call(Method::GET, format!("{a}/v1/plugins"), Some(TOKEN), None).await;
        assert_envelope(st, &b, 429, "RATE_LIMITED");
        assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    });
}

/// Lists page; webhooks registered through the API are kept in the store
/// (a restarted server still has them) and hear each collection, signed.
#[test]
fn webhooks_are_registered_kept_and_delivered() {
    use reqwest::Method;
    let dir = temp_dir("webhooks");
    let store = dir.join("store.db");
    block_on(async {
        // A receiver for the deliveries.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(axum::http::HeaderMap, String)>(8);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body)).await;
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });

        // The receiver is on loopback: the operator allows it (registered
        // webhooks reach public addresses only by default).
        let s = cf_tests::serve(options(|o| {
            o.admin = Some(cf_tests::admin_config(TOKEN).allow_webhook_networks(vec!["127.0.0.0/8".parse().unwrap()]));
            o.store = Some(store.clone());
        }))
        .await;
        let a = s.admin.clone().unwrap();
        let secret = "webhook-secret-0123456789";
        // Cloud metadata stays refused.
        let (st, _, b) = admin_call(Method::POST, format!("{a}/v1/webhooks"), Some(TOKEN), Some(serde_json::json!({"url": "http://169.254.169.254/latest", "secret": secret}))).await;
        assert_envelope(st, &b, 400, "INVALID_ARGUMENT");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("egress policy"), "{b}");
        let (st, _, made) = admin_call(Method::POST, format!("{a}/v1/webhooks"), Some(TOKEN), Some(serde_json::json!({"url": hook_url, "secret": secret, "events": ["collection.finished"]}))).await;
        assert_eq!(st, 200, "{made}");
        assert!(made.get("secret").is_none(), "never shown: {made}");
        for i in 0..2 {
            let body = serde_json::json!({"url": format!("https://h.example.com/{i}"), "secret": secret});
            admin_call(Method::POST, format!("{a}/v1/webhooks"), Some(TOKEN), Some(body)).await;
        }
        let (_, _, page) = admin_call(Method::GET, format!("{a}/v1/webhooks?per_page=2&page=2"), Some(TOKEN), None).await;
        assert_eq!((page["total"].as_u64(), page["pages"].as_u64(), page["webhooks"].as_array().map(Vec::len)), (Some(3), Some(2), Some(1)), "{page}");
        let (st, _, b) = admin_call(Method::GET, format!("{a}/v1/webhooks?per_page=0"), Some(TOKEN), None).await;
        assert_envelope(st, &b, 400, "INVALID_ARGUMENT");

        // A collection is delivered, signed with the webhook's own secret.
        let mut stream = collector(&s.grpc).await.collect(collect_request(serde_json::json!({"attack": "collect-ok", "n": 2}))).await.unwrap().into_inner();
        while stream.message().await.unwrap().is_some() {}
        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").unwrap();
        let ts: u64 = headers["x-cf-timestamp"].to_str().unwrap().parse().unwrap();
        assert_eq!(headers["x-cf-signature"].to_str().unwrap(), cf_host::webhook::sign(secret.as_bytes(), ts, body.as_bytes()));
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((event["event"].as_str(), event["records"]["Region"].as_u64()), (Some("collection.finished"), Some(2)), "{event}");
        drop(s);

        // A new server on the same store has them; one is deleted.
        let s = cf_tests::serve(options(|o| {
            o.admin = Some(cf_tests::admin_config(TOKEN));
            o.store = Some(store.clone());
        }))
        .await;
        let a = s.admin.clone().unwrap();
        let (_, _, all) = admin_call(Method::GET, format!("{a}/v1/webhooks"), Some(TOKEN), None).await;
        assert_eq!(all["total"], 3, "{all}");
        let id = made["id"].as_str().unwrap();
        let (st, _, _) = admin_call(Method::DELETE, format!("{a}/v1/webhooks/{id}"), Some(TOKEN), None).await;
        assert_eq!(st, 200);
        let (st, _, b) = admin_call(Method::DELETE, format!("{a}/v1/webhooks/{id}"), Some(TOKEN), None).await;
        assert_envelope(st, &b, 404, "NOT_FOUND");
    });
}

/// A FIFO and a link to /dev/zero in the plugins directory are skipped at
/// once; the watcher's scan returns and the good component loads.
#[cfg(unix)]
#[test]
fn hostile_plugins_dir_entries_neither_block_nor_balloon() {
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    let dir = temp_dir("plugins-dir-hostile");
    std::fs::write(dir.join("good.wasm"), &bytes).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.wasm").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let reg = registry("plugins-dir-hostile-reg");
    let r = reg.clone();
    within("a scan over a FIFO and /dev/zero", Duration::from_secs(60), move || {
        block_on(async move {
            let handle = cf_host::registry::watch::watch(r, dir).await.unwrap();
            drop(handle);
        })
    });
    assert_eq!(reg.list().len(), 1, "only the regular file");
}

/// An empty password is the caller's mistake (INVALID_ARGUMENT naming the
/// field), not an internal error.
#[test]
fn an_empty_password_is_an_invalid_argument() {
    let sim = block_on(prism_sim::Simulator::start(prism_sim::SimConfig::default())).unwrap();
    let (rt, plugin) = cf_tests::host();
    let mut secret = sim.secret();
    secret["password"] = serde_json::json!("");
    let ctx = cf_tests::sim_context(&sim).secret(secret).build().unwrap();
    let e = block_on(rt.verify(plugin, &ctx)).unwrap_err();
    assert_eq!(e.code(), cf_host::ErrorCode::InvalidArgument, "{e}");
    assert!(e.message().contains("password"), "{e}");
    let status = cf_host::grpc::convert::status(&e);
    assert_eq!((status.code(), status.message()), (tonic::Code::InvalidArgument, "ERROR_INVALID_ARGUMENT: secret field 'password' is empty"));
}
