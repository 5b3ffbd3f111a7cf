//! A bounded soak of one `cf-host serve` process: for about a minute,
//! collects, cancelled collects, never-read streams, uploads, swaps and
//! rollbacks run together while a health check runs every 100 ms. Health
//! must answer within a second at p99 throughout, every worker must keep
//! finishing its requests (no deadlock), and once the load stops the
//! server's resident memory must come back within 10 % of where it stood
//! before the load.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The adversary component stamped with another version (same length).
fn version_of(bytes: &[u8], patch: u8) -> Vec<u8> {
    let (from, to) = (br#""version":"7.7.1""#.as_slice(), format!(r#""version":"7.7.{patch}""#));
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to.as_bytes());
        }
        i += 1;
    }
    out
}

fn request(task: Value) -> cf_host::grpc::pb::plugin::CollectRequest {
    cf_host::grpc::pb::plugin::CollectRequest { options: None, secret_data: None, filter: None, task_options: task.as_object().map(cf_host::grpc::convert::json_to_struct) }
}

async fn client(grpc: &str) -> Option<cf_host::grpc::pb::plugin::collector_client::CollectorClient<tonic::transport::Channel>> {
    cf_host::grpc::pb::plugin::collector_client::CollectorClient::connect(grpc.to_string()).await.ok()
}

#[test]
fn a_minute_of_mixed_load_keeps_health_fast_and_memory_flat() {
    let plugins = common::temp_dir("soak");
    let adversary = std::fs::read(common::adversary_wasm()).unwrap();
    std::fs::write(plugins.join("adversary.wasm"), &adversary).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let server = Server::spawn(&[
        "--name", "adversary", "--admin-bind", "127.0.0.1:0", "--plugins-dir", plugins.to_str().unwrap(),
        "--stream-stall-timeout", "2", "--max-concurrency", "16",
    ]);
    let grpc = format!("http://{}", server.addr);
    let admin = server.admin.clone().unwrap();
    let load = Duration::from_secs(std::env::var("CF_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60));
    common::block_on(async move {
        // Warm-up: pools, the first connections, and every version the load
        // swaps between, loaded once (a loaded version is kept: what the
        // load must not grow is everything else).
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        for patch in 2..=9 {
            let r = http.post(format!("{admin}/v1/plugins")).bearer_auth(Server::ADMIN_TOKEN).body(version_of(&adversary, patch)).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
        // Every sandbox slot of the pool once (16 at a time): the pool's
        // slots are a fixed reservation, touched once, not growth.
        for _ in 0..5 {
            let mut round = Vec::new();
            for _ in 0..16 {
                let grpc = grpc.clone();
                round.push(tokio::spawn(async move {
                    let mut c = client(&grpc).await.expect("connect");
                    let mut s = c.collect(request(json!({"attack": "collect-ok", "n": 200}))).await.unwrap().into_inner();
                    while s.message().await.unwrap().is_some() {}
                }));
            }
            for r in round {
                r.await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss_kib(server.pid());

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        // Collections read to the end.
        for _ in 0..4 {
            let (stop, done, grpc) = (stop.clone(), done.clone(), grpc.clone());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(mut c) = client(&grpc).await
                        && let Ok(s) = c.collect(request(json!({"attack": "collect-ok", "n": 200}))).await
                    {
                        let mut s = s.into_inner();
                        while let Ok(Some(_)) = s.message().await {}
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Collections cancelled after a few records.
        for _ in 0..2 {
            let (stop, done, grpc) = (stop.clone(), done.clone(), grpc.clone());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(mut c) = client(&grpc).await
                        && let Ok(s) = c.collect(request(json!({"attack": "bulk", "n": 1_000_000}))).await
                    {
                        let mut s = s.into_inner();
                        for _ in 0..10 {
                            let _ = s.message().await;
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Streams never read (the stall timeout ends them).
        {
            let (stop, done, grpc) = (stop.clone(), done.clone(), grpc.clone());
            workers.push(tokio::spawn(async move {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(mut c) = client(&grpc).await
                        && let Ok(s) = c.collect(request(json!({"attack": "bulk", "n": 1_000_000}))).await
                    {
                        held.push(s.into_inner());
                        if held.len() > 4 {
                            held.remove(0);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }));
        }
        // Uploads of new versions (going live), rollbacks, re-uploads.
        {
            let (stop, done, admin) = (stop.clone(), done.clone(), admin.clone());
            workers.push(tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
                let mut patch = 2u8;
                while !stop.load(Ordering::Relaxed) {
                    let body = version_of(&adversary, patch);
                    let r = http.post(format!("{admin}/v1/plugins?activate=true")).bearer_auth(Server::ADMIN_TOKEN).body(body).send().await;
                    assert!(r.is_ok_and(|r| r.status().is_success() || r.status().as_u16() == 429), "upload answered");
                    let r = http.post(format!("{admin}/v1/plugins/adversary/rollback")).bearer_auth(Server::ADMIN_TOKEN).send().await;
                    assert!(r.is_ok(), "rollback answered");
                    patch = if patch >= 9 { 2 } else { patch + 1 };
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            }));
        }
        // Health every 100 ms, timed.
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let health = {
            let (stop, latencies, grpc) = (stop.clone(), latencies.clone(), grpc.clone());
            tokio::spawn(async move {
                let channel = tonic::transport::Channel::from_shared(grpc).unwrap().connect_lazy();
                let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = tokio::time::timeout(Duration::from_secs(10), h.check(tonic_health::pb::HealthCheckRequest { service: String::new() })).await;
                    let took = started.elapsed();
                    assert!(matches!(r, Ok(Ok(_))), "health answered: {r:?}");
                    latencies.lock().unwrap().push(took);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // Progress is checked every 10 s: a deadlock stops it.
        let started = Instant::now();
        let mut last = 0;
        while started.elapsed() < load {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let now = done.load(Ordering::Relaxed);
            assert!(now > last, "no request finished in 10 s: deadlock?");
            last = now;
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            tokio::time::timeout(Duration::from_secs(30), w).await.expect("a worker ends").unwrap();
        }
        health.await.unwrap();

        let mut l = latencies.lock().unwrap().clone();
        l.sort();
        let p99 = l[(l.len() * 99 / 100).min(l.len() - 1)];
        eprintln!("soak: {} requests, {} health checks, health p99 {p99:?}", done.load(Ordering::Relaxed), l.len());
        assert!(p99 < Duration::from_secs(1), "health p99 {p99:?}");

        // After the load: memory back near where it stood.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = rss_kib(server.pid());
        eprintln!("soak: RSS {before} KiB before the load, {after} KiB after");
        assert!((after as f64) <= before as f64 * 1.10, "RSS {after} KiB after the load, {before} KiB before");
    });
    std::fs::remove_dir_all(plugins).ok();
}
