//! A caller that names a new tenant on every call cannot grow the host's
//! per-tenant tables (tenancy slots, guest HTTP breakers): 100k distinct
//! tenants, each run making a failing HTTP request (a breaker entry), and
//! the resident memory stays flat. Alone in its binary, so no other test's
//! allocations move the figure.

use cf_tests::{adversary_wasm, block_on};
use std::time::Duration;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hundred_thousand_tenants_keep_memory_flat() {
    let runtime = std::sync::Arc::new(cf_host::Runtime::new(cf_host::RuntimeConfig { max_concurrency: 8, ..Default::default() }).unwrap());
    let plugin = std::sync::Arc::new(runtime.load_file(&adversary_wasm()).unwrap());
    // A loopback port nothing listens on: every request fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}/");
    let run = |from: usize, to: usize| {
        let (runtime, plugin, url) = (runtime.clone(), plugin.clone(), url.clone());
        block_on(async move {
            let mut tasks = Vec::new();
            for lane in 0..8 {
                let (runtime, plugin, url) = (runtime.clone(), plugin.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    for i in (from + lane..to).step_by(8) {
                        let ctx = runtime
                            .context(format!("tenant-{i}"))
                            .secret(serde_json::json!({"host": url}))
                            .egress_from_secret(80)
                            .build()
                            .unwrap();
                        let (tx, _rx) = tokio::sync::mpsc::channel(1);
                        let r = runtime.collect(&plugin, &ctx, &serde_json::json!({"attack": "http", "url": url}), tx).await;
                        let msg = cf_tests::reported(&r);
                        assert!(msg.starts_with("http-err"), "{msg}");
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    };
    // Warm-up: pools, caches and the tables at their bound.
    run(0, 20_000);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    run(20_000, 100_000);
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    let grown_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!("RSS {before} KiB -> {after} KiB over 80k new tenants ({grown_mib:.1} MiB)");
    // With unbounded tables this grew about 50 MiB (measured); bounded,
    // about 1 MiB of allocator noise.
    assert!(grown_mib < 12.0, "RSS grew {grown_mib:.1} MiB over 80k new tenants");
}
