//! A hostile guest (`tests/adversary`) against the host's limits and
//! policies, and many well-behaved tenants collecting at the same time.
//! Every attack must end its own run with a clear typed error and leave the
//! host and the other tenants untouched.

use cf_host::error::{LimitKind, RunError};
use cf_host::host::state::MemoryState;
use cf_host::record::Record;
use cf_host::runtime::CollectReport;
use cf_host::tenancy::{TenancyConfig, TenancyFile};
use cf_host::{Plugin, RunContext, Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, collect_all, guest_wasm, reported};
use prism_sim::estate::EstateConfig;
use prism_sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tenant "evil" has tight limits; "loopback-ok" may resolve names to
/// loopback; "greedy" may run 2 at once; everyone else gets the defaults.
fn tenancy() -> TenancyConfig {
    let file: TenancyFile = serde_json::from_value(json!({
        "tenants": {
            "evil": {"limits": {"memory_mb": 64, "cpu_ms": 300, "wall_clock_s": 20, "max_output_mb": 4, "max_handles": 200,
                                "max_http_response_mb": 1, "max_http_timeout_s": 1}},
            "bomber": {"limits": {"memory_mb": 64, "cpu_ms": 2000}},
            "loopback-ok": {"allow_networks": ["127.0.0.0/8"]},
            "greedy": {"max_concurrent_runs": 2, "limits": {"cpu_ms": 400}},
            "polite": {"limits": {"cpu_ms": 400}},
            "frugal": {"limits": {"max_http_requests": 0}}
        }
    }))
    .expect("tenancy file");
    TenancyConfig::from_file(&file).expect("tenancy config")
}

struct Host {
    runtime: Runtime,
    adversary: Plugin,
    nutanix: Plugin,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig { max_concurrency: 16, tenancy: tenancy(), ..RuntimeConfig::default() }).expect("runtime");
        let adversary = runtime.load_file(&adversary_wasm()).expect("adversary loads");
        let nutanix = runtime.load_file(&guest_wasm()).expect("guest loads");
        Host { runtime, adversary, nutanix }
    })
}

fn ctx(tenant: &str, secret: Value) -> RunContext {
    let h = host();
    h.runtime.context(tenant).secret(secret).egress_from_secret(9440).build().unwrap()
}

async fn attack(ctx: &RunContext, task: Value) -> (Result<CollectReport, RunError>, Vec<Record>) {
    collect_all(&host().runtime, &host().adversary, ctx, &task).await
}

fn limit_kind(r: &Result<CollectReport, RunError>) -> Option<LimitKind> {
    match r {
        Err(RunError::Limit(l)) => Some(l.kind),
        _ => None,
    }
}

#[test]
fn an_endless_loop_is_stopped_at_its_cpu_budget() {
    let started = Instant::now();
    let (r, _) = block_on(attack(&ctx("evil", json!({})), json!({"attack": "spin"})));
    assert_eq!(limit_kind(&r), Some(LimitKind::Cpu), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("CPU budget of 300 ms"));
    // Stopped, not merely slowed down: well before the 20 s wall clock.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

#[test]
fn a_memory_bomb_is_trapped_at_its_limit() {
    // A tenant of its own, so no other test's sandbox counts in its budget.
    let (r, _) = block_on(attack(&ctx("bomber", json!({})), json!({"attack": "memory"})));
    assert_eq!(limit_kind(&r), Some(LimitKind::Memory), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("limit is 67108864"));
    assert_eq!(host().runtime.tenant_memory_in_use("bomber"), 0, "the budget is released with the sandbox");
}

#[test]
fn an_emit_flood_is_stopped_at_the_output_limit() {
    let (r, records) = block_on(attack(&ctx("evil", json!({})), json!({"attack": "emit-flood"})));
    assert_eq!(limit_kind(&r), Some(LimitKind::Output), "{r:?}");
    let bytes: usize = records.iter().map(Record::approx_size).sum();
    assert!(bytes <= 4 << 20, "at most the limit reached the sink: {bytes}");
}

#[test]
fn a_panic_is_a_clean_error() {
    let (r, _) = block_on(attack(&ctx("evil", json!({})), json!({"attack": "panic"})));
    match r {
        Err(RunError::Trap(m)) => assert!(m.contains("adversary panics on purpose"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hoarding_handles_is_stopped_at_the_handle_limit() {
    let (r, _) = block_on(attack(&ctx("evil", json!({})), json!({"attack": "handles"})));
    assert_eq!(limit_kind(&r), Some(LimitKind::Handles), "{r:?}");
}

/// A tiny HTTP server on loopback answering every request with `answer`,
/// then `chunks` × 64 KiB of body bytes.
async fn fixed_server(answer: &'static str, chunks: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(answer.as_bytes()).await;
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..chunks {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn ssrf_attempts_are_denied_before_any_io() {
    block_on(async {
        let ok = fixed_server("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n", 0).await;
        let redirect = fixed_server("HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/latest\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", 0).await;
        let granted = |port: u16| json!({"host": format!("http://127.0.0.1:{port}"), "username": "u", "password": "p"});

        // The granted IP-literal endpoint is explicit: allowed.
        let (r, _) = attack(&ctx("evil", granted(ok)), json!({"attack": "http", "url": format!("http://127.0.0.1:{ok}/")})).await;
        assert_eq!(reported(&r), "http-ok 204");

        // Cloud metadata, other loopback ports: not granted.
        for url in ["http://169.254.169.254/latest/meta-data/", &format!("http://127.0.0.1:{redirect}/"), "http://[::1]/"] {
            let (r, _) = attack(&ctx("evil", granted(ok)), json!({"attack": "http", "url": url})).await;
            let m = reported(&r);
            assert!(m.contains("Denied") && m.contains("not granted"), "{url}: {m}");
        }

        // A redirect from the granted host to a private address: refused.
        let (r, _) = attack(&ctx("evil", granted(redirect)), json!({"attack": "http", "url": format!("http://127.0.0.1:{redirect}/")})).await;
        let m = reported(&r);
        assert!(m.contains("Denied") && m.contains("redirect target") && m.contains("10.0.0.1"), "{m}");

        // A granted host name that resolves to loopback: refused at resolution…
        let by_name = json!({"host": format!("http://localhost:{ok}"), "username": "u", "password": "p"});
        let (r, _) = attack(&ctx("evil", by_name.clone()), json!({"attack": "http", "url": format!("http://localhost:{ok}/")})).await;
        let m = reported(&r);
        assert!(m.contains("Denied") && m.contains("loopback"), "{m}");
        // …unless the operator allowed that network for the tenant.
        let (r, _) = attack(&ctx("loopback-ok", by_name), json!({"attack": "http", "url": format!("http://localhost:{ok}/")})).await;
        assert_eq!(reported(&r), "http-ok 204");
    });
}

#[test]
fn a_hostile_endpoint_cannot_flood_or_stall_the_host() {
    block_on(async {
        // 2 MiB without a length, then silence; and one that never answers.
        let flood = fixed_server("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 32).await;
        let stall = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((sock, _)) = listener.accept().await {
                    held.push(sock);
                }
            });
            port
        };
        let run = |port: u16| {
            let secret = json!({"host": format!("http://127.0.0.1:{port}"), "username": "u", "password": "p"});
            attack_owned(ctx("evil", secret), json!({"attack": "http", "url": format!("http://127.0.0.1:{port}/")}))
        };
        let (r, _) = run(flood).await;
        assert_eq!(reported(&r), "http-err HttpError::TooLarge(1048576)");
        let started = Instant::now();
        let (r, _) = run(stall).await;
        assert_eq!(reported(&r), "http-err HttpError::Timeout");
        assert!(started.elapsed() < Duration::from_secs(10), "bounded by the 1 s cap: {:?}", started.elapsed());
    });
}

/// A run past its request budget ends as a limit, and the host's metrics
/// count it as one (the budget is checked after the guest returns).
#[test]
fn the_request_budget_ends_the_run_and_counts_as_a_limit_hit() {
    block_on(async {
        let port = fixed_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 0).await;
        let secret = json!({"host": format!("http://127.0.0.1:{port}"), "username": "u", "password": "p"});
        let hits = || host().runtime.metrics().get("cf_host_limit_hits_total", &[("limit", "HTTP requests")]);
        let before = hits();
        let (r, _) = attack_owned(ctx("frugal", secret), json!({"attack": "http", "url": format!("http://127.0.0.1:{port}/")})).await;
        assert_eq!(limit_kind(&r), Some(LimitKind::HttpRequests), "{r:?}");
        assert_eq!(hits() - before, 1.0);
    });
}

async fn attack_owned(ctx: RunContext, task: Value) -> (Result<CollectReport, RunError>, Vec<Record>) {
    attack(&ctx, task).await
}

#[test]
fn a_run_never_sees_another_tenants_state() {
    block_on(async {
        let state = Arc::new(MemoryState::default());
        let with_state = |tenant: &str| {
            let mut c = ctx(tenant, json!({}));
            c.state = state.clone();
            c
        };
        let (r, _) = attack(&with_state("alice"), json!({"attack": "state-write", "key": "cursor", "value": "alice-secret"})).await;
        assert!(r.is_ok(), "{r:?}");
        let (r, _) = attack(&with_state("mallory"), json!({"attack": "state-read", "key": "cursor"})).await;
        assert_eq!(reported(&r), "state Ok(None)", "another tenant's key is invisible");
        let (r, _) = attack(&with_state("alice"), json!({"attack": "state-read", "key": "cursor"})).await;
        assert_eq!(reported(&r), "state Ok(Some(\"alice-secret\"))");
    });
}

#[test]
fn a_greedy_tenant_cannot_starve_another() {
    // A runtime of its own (3 pool slots), so other tests do not queue here.
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 3, tenancy: tenancy(), ..RuntimeConfig::default() }).expect("runtime"));
    let plugin = Arc::new(runtime.load_file(&adversary_wasm()).expect("adversary loads"));
    // And its own threads, so the order reflects the host's queuing, not
    // other tests' tasks.
    let threads = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    threads.block_on(async {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spawn = |tenant: &'static str, label: String, task: Value| {
            let (runtime, plugin, order) = (runtime.clone(), plugin.clone(), order.clone());
            tokio::spawn(async move {
                let c = runtime.context(tenant).build().unwrap();
                let (tx, mut rx) = tokio::sync::mpsc::channel(8);
                let drain = async { while rx.recv().await.is_some() {} };
                let (r, ()) = tokio::join!(runtime.collect(&plugin, &c, &task, tx), drain);
                order.lock().unwrap().push(label);
                r
            })
        };
        // 8 long runs (400 ms of CPU each) of the greedy tenant (cap 2), queued first.
        let greedy: Vec<_> = (0..8).map(|i| spawn("greedy", format!("greedy-{i}"), json!({"attack": "spin"}))).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Then one short run of another tenant.
        let polite = spawn("polite", "polite".into(), json!({"attack": "collect-ok", "n": 3})).await.unwrap();
        assert_eq!(polite.map(|r| r.records), Ok(3));
        for g in greedy {
            assert_eq!(limit_kind(&g.await.unwrap()), Some(LimitKind::Cpu));
        }
        let order = order.lock().unwrap().clone();
        // The greedy tenant holds at most 2 of the 3 slots, so the short run
        // starts at once and is done before any greedy run; without the cap
        // it would wait for a greedy run to end.
        assert_eq!(order[0], "polite", "{order:?}");
    });
}

#[test]
fn many_tenants_collect_correctly_while_attacks_run() {
    let sim = block_on(Simulator::start(SimConfig {
        estate: EstateConfig { vms: 30, clusters: 2, hosts_per_cluster: 2, subnets_per_cluster: 1, images: 2, volume_groups_per_cluster: 0, projects: 0, gpus: false },
        ..SimConfig::default()
    }))
    .expect("simulator");
    let secret = sim.secret();
    let rss_before = cf_host::bench::rss_kib().0;
    let report = block_on(async {
        let mut tasks = Vec::new();
        for attack_name in ["spin", "memory", "emit-flood", "panic", "handles"] {
            tasks.push(tokio::spawn(async move {
                let (r, _) = attack(&ctx("evil", json!({})), json!({"attack": attack_name})).await;
                (format!("evil:{attack_name}"), r.map(|rep| rep.records).map_err(|e| e.to_string()))
            }));
        }
        for t in 0..100 {
            let secret = secret.clone();
            tasks.push(tokio::spawn(async move {
                let tenant = format!("tenant-{t}");
                let c = ctx(&tenant, secret);
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(8);
                let drain = async {
                    let mut n = 0;
                    while let Some(b) = rx.recv().await {
                        n += b.len() as u64;
                    }
                    n
                };
                let task = json!({});
                let (r, n) = tokio::join!(host().runtime.collect(&host().nutanix, &c, &task, tx), drain);
                (tenant, r.map(|rep| { assert_eq!(rep.records, n); n }).map_err(|e| e.to_string()))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    // 30 VMs + 2 clusters + 4 hosts + 2 subnets + 2 images + 5 types + 2 regions.
    let expected = 30 + 2 + 4 + 2 + 2 + 5 + 2;
    for (who, r) in &report {
        if who.starts_with("evil:") {
            assert!(r.is_err(), "{who} must fail: {r:?}");
        } else {
            assert_eq!(r, &Ok(expected), "{who}");
        }
    }
    let rss_after = cf_host::bench::rss_kib().0;
    eprintln!("RSS before {rss_before} KiB, after 100 tenants + 5 attacks {rss_after} KiB");
    // Bounded: a 64 MiB memory bomb and a flood ran; what stays is far less
    // than what they tried to take (a leak per run would show here).
    assert!(rss_after.saturating_sub(rss_before) < 512 * 1024, "RSS grew by {} KiB", rss_after.saturating_sub(rss_before));
    // Bounded: the attacks' memory went back to the pool.
    for t in ["tenant-0", "tenant-99"] {
        assert_eq!(host().runtime.tenant_memory_in_use(t), 0, "{t}");
    }
}
