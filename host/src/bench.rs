//! `cf-host bench`: the host's performance figures as a table.
//!
//! - `instantiate`: a fresh store plus instantiation from the `InstancePre`
//!   with the pooling allocator (what every call pays before the guest runs),
//!   p50/p99/mean over many iterations.
//! - `sandboxes`: N sandboxes alive at once (the adversary test component's
//!   `hold` run, blocked in `emit` on a full channel): time to bring them all
//!   up, resident memory per live sandbox, and time to finish them all.
//! - `collect` (with the simulator): end-to-end collections of a simulated
//!   Prism Central through the guest into a sink, records per second. The
//!   simulator runs in the same process and on the same cores (its estate is
//!   built before timing), so peak RSS includes the simulated estate.
//!
//! Goals are recorded in BENCHMARKS.md; nothing here asserts them.

use crate::record::Record;
use crate::runtime::{Runtime, RuntimeConfig};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The collector component (guest-nutanix).
    pub plugin: PathBuf,
    /// The adversary test component (for `hold` sandboxes); skipped when absent.
    pub adversary: Option<PathBuf>,
    pub instantiations: usize,
    pub sandboxes: usize,
    /// Simulated VMs per end-to-end collection (empty: skip).
    pub vms: Vec<usize>,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

fn row(name: impl Into<String>, value: f64, unit: &'static str) -> Row {
    Row { name: name.into(), value, unit }
}

/// Renders rows as an aligned table.
pub fn render(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(10).max(10);
    let mut out = format!("{:<width$}  {:>14}  unit\n", "benchmark", "value");
    for r in rows {
        let v = if r.value >= 100.0 { format!("{:.0}", r.value) } else { format!("{:.2}", r.value) };
        out.push_str(&format!("{:<width$}  {v:>14}  {}\n", r.name, r.unit));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Resident and peak resident memory of this process (KiB).
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn run(cfg: &BenchConfig, progress: impl Fn(&str)) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let sandboxes = cfg.sandboxes.max(1);
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: sandboxes as u32, ..RuntimeConfig::default() })?);
    let started = Instant::now();
    let plugin = runtime.load_file(&cfg.plugin).map_err(|e| e.to_string())?;
    rows.push(row("load + compile guest-nutanix", started.elapsed().as_secs_f64() * 1000.0, "ms"));

    progress("load cold / warm");
    let bytes = std::fs::read(&cfg.plugin).map_err(|e| format!("cannot read {}: {e}", cfg.plugin.display()))?;
    let cache_dir = std::env::temp_dir().join(format!("cf-host-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    for label in ["cold (compile, fill cache)", "warm (precompile cache)"] {
        let cache = crate::registry::cache::PrecompileCache::new(cache_dir.clone())?;
        let registry = crate::registry::Registry::new(runtime.clone(), Some(cache));
        let started = Instant::now();
        registry.load_bytes("bench", &bytes, None, None, true).map_err(|e| e.to_string())?;
        rows.push(row(format!("load a new version, {label}"), started.elapsed().as_secs_f64() * 1000.0, "ms"));
    }
    let _ = std::fs::remove_dir_all(&cache_dir);

    progress("instantiate");
    let ctx = runtime.context("bench").build().map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(cfg.instantiations);
    for _ in 0..cfg.instantiations {
        times.push(runtime.instantiate_only(&plugin, &ctx).await.map_err(|e| e.to_string())?);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>().as_secs_f64() / times.len().max(1) as f64;
    rows.push(row("instantiate p50 (store + instance)", percentile(&times, 0.5).as_secs_f64() * 1e6, "µs"));
    rows.push(row("instantiate p99", percentile(&times, 0.99).as_secs_f64() * 1e6, "µs"));
    rows.push(row("instantiate mean", mean * 1e6, "µs"));

    if let Some(adv) = &cfg.adversary {
        progress("sandboxes");
        let adversary = Arc::new(runtime.load_file(adv).map_err(|e| e.to_string())?);
        let (rss_before, _) = rss_kib();
        let started = Instant::now();
        let mut receivers = Vec::with_capacity(sandboxes);
        let mut runs = Vec::with_capacity(sandboxes);
        for i in 0..sandboxes {
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Record>>(1);
            receivers.push(rx);
            let (runtime, adversary) = (runtime.clone(), adversary.clone());
            runs.push(tokio::spawn(async move {
                // One tenant per sandbox: tenant caps (8 by default) do not hold runs back.
                let ctx = runtime.context(format!("tenant-{i}")).build()?;
                runtime.collect(&adversary, &ctx, &json!({"attack": "hold"}), tx).await
            }));
        }
        // Every sandbox has emitted its first batch and waits on the second.
        while receivers.iter().any(|r| r.is_empty()) {
            if started.elapsed() > Duration::from_secs(300) {
                return Err("sandboxes did not all start within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let up = started.elapsed();
        let (rss_live, _) = rss_kib();
        let drained = Instant::now();
        let drains: Vec<_> = receivers
            .into_iter()
            .map(|mut rx| tokio::spawn(async move { while rx.recv().await.is_some() {} }))
            .collect();
        let mut failed = 0;
        for r in runs {
            if !matches!(r.await, Ok(Ok(_))) {
                failed += 1;
            }
        }
        for d in drains {
            let _ = d.await;
        }
        if failed > 0 {
            return Err(format!("{failed} of {sandboxes} sandbox runs failed"));
        }
        rows.push(row(format!("{sandboxes} sandboxes alive: time to start all"), up.as_secs_f64() * 1000.0, "ms"));
        rows.push(row("memory per live sandbox (RSS delta / N)", rss_live.saturating_sub(rss_before) as f64 / sandboxes as f64, "KiB"));
        rows.push(row(format!("{sandboxes} sandboxes: time to finish all"), drained.elapsed().as_secs_f64() * 1000.0, "ms"));
    }

    #[cfg(feature = "simulator")]
    for &vms in &cfg.vms {
        progress(&format!("collect {vms} VMs"));
        let (secs, records) = collect_simulated(&runtime, &plugin, vms).await?;
        rows.push(row(format!("collect {vms} VMs: wall time"), secs, "s"));
        rows.push(row(format!("collect {vms} VMs: records/s"), records as f64 / secs, "rec/s"));
    }
    let (_, peak) = rss_kib();
    rows.push(row("peak RSS of the benchmark process", peak as f64 / 1024.0, "MiB"));
    Ok(rows)
}

/// One collection of a simulated estate through the guest into a counting
/// sink; returns (seconds, records).
#[cfg(feature = "simulator")]
async fn collect_simulated(runtime: &Runtime, plugin: &crate::Plugin, vms: usize) -> Result<(f64, u64), String> {
    use prism_sim::{estate::EstateConfig, SimConfig, Simulator};
    let sim = Simulator::start(SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, ..SimConfig::default() })
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    // The simulator builds its estate on first use: do that before the clock
    // starts, so the figure is the collection's, not the test double's.
    let warm = reqwest::Client::new()
        .post(format!("{}/api/nutanix/v3/vms/list", sim.url()))
        .basic_auth("admin", Some("nutanix/4u"))
        .json(&json!({"kind": "vm", "offset": 0, "length": 1}))
        .send()
        .await
        .map_err(|e| format!("simulator warm-up: {e}"))?;
    if !warm.status().is_success() {
        return Err(format!("simulator warm-up answered {}", warm.status()));
    }
    let ctx = runtime.context("bench").secret(sim.secret()).egress_from_secret(9440).build().map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(64);
    let started = Instant::now();
    let drain = async {
        let mut n = 0u64;
        while let Some(b) = rx.recv().await {
            n += b.len() as u64;
        }
        n
    };
    let task = json!({});
    let (r, n) = tokio::join!(runtime.collect(plugin, &ctx, &task, tx), drain);
    r.map_err(|e| e.to_string())?;
    Ok((started.elapsed().as_secs_f64(), n))
}

/// The gRPC `collect` stream of `cf-host serve` (the adversary component's
/// `bulk` attack, through the real sandbox, emit checks and stream) against
/// a plugin written with CloudForet's own Python SDK
/// (`spaceone-inventory` `CollectorPluginServer`, in
/// `tests/python/sdk_bench_plugin`) yielding the same `n` pre-built
/// CloudServices. One tonic client reads both streams; best of 3 each.
/// `spaceone` is the SDK's command (`<venv>/bin/spaceone`), `source_root`
/// the directory holding `sdk_bench_plugin`.
pub async fn stream_vs_python_sdk(adversary: &std::path::Path, spaceone: &std::path::Path, source_root: &std::path::Path, n: u64) -> Result<Vec<Row>, String> {
    use crate::grpc::{PluginService, ServeConfig};
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() })?);
    let registry = Arc::new(crate::registry::Registry::new(runtime, None));
    registry.load_file(adversary, None, true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let ours = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let service = PluginService::new(registry, "adversary", ServeConfig::default());
    tokio::spawn(crate::grpc::serve(listener, service, std::future::pending()));

    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = std::process::Command::new(spaceone)
        .args(["run", "plugin-server", "sdk_bench_plugin", "-s"])
        .arg(source_root)
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spaceone.display()))?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _python = Kill(child);
    let theirs = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the Python SDK plugin server did not start within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rows = Vec::new();
    let mut rates = Vec::new();
    for (label, url) in [("cf-host (wasm guest)", &ours), ("CloudForet Python SDK", &theirs)] {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let (took, got) = stream_once(url, n).await?;
            if got != n {
                return Err(format!("{label} streamed {got} resources, expected {n}"));
            }
            best = best.min(took);
        }
        rows.push(row(format!("gRPC collect stream of {n}, {label}"), best.as_secs_f64(), "s"));
        rates.push(n as f64 / best.as_secs_f64());
        rows.push(row(format!("  resources/s, {label}"), n as f64 / best.as_secs_f64(), "res/s"));
    }
    rows.push(row("cf-host / Python SDK (resources/s)", rates[0] / rates[1], "x"));
    Ok(rows)
}

/// One `collect` read to its end: (time, resources).
async fn stream_once(url: &str, n: u64) -> Result<(Duration, u64), String> {
    use crate::grpc::convert::json_to_struct;
    use crate::grpc::pb::plugin::{collector_client::CollectorClient, CollectRequest};
    let mut client = CollectorClient::connect(url.to_string())
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .max_decoding_message_size(64 << 20);
    let task = json!({"attack": "bulk", "n": n});
    let req = CollectRequest {
        options: Some(Default::default()),
        secret_data: Some(Default::default()),
        filter: None,
        task_options: task.as_object().map(json_to_struct),
    };
    let started = Instant::now();
    let mut stream = client.collect(req).await.map_err(|e| format!("{url}: {e}"))?.into_inner();
    let mut got = 0u64;
    while let Some(item) = stream.message().await.map_err(|e| format!("{url}: {e}"))? {
        if item.resource_type == "inventory.CloudService" {
            got += 1;
        }
    }
    Ok((started.elapsed(), got))
}
