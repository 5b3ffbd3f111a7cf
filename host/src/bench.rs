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
//! - [`product_path`] (with the simulator): what a user runs, per size:
//!   `collect` into the embedded store (first run, unchanged, 1 % changed)
//!   and `serve` streaming to a gRPC client, beside the counting sink, with
//!   time, records/s, the ratio to the sink and peak resident memory.
//! - [`store_only`]: the embedded store alone with synthetic records, to
//!   sizes the in-process simulator cannot hold.
//! - [`paging`] (with the simulator): a Prism that takes a fixed time per
//!   page, collected with pages fetched one at a time and concurrently
//!   (the guest's `page_concurrency`), against the bound the concurrency
//!   allows.
//! - [`many_tenants`] (with simulators): many tenants, each with its own
//!   slow Prism, collected at once through one runtime, against one of
//!   them collected alone.
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
    // From the file, as `serve --plugin` and the plugins directory load: the
    // first load remembers the file's digest (a file changed within the last
    // second is not remembered), the second neither reads nor hashes it.
    for label in ["from its file, warm (remembers the digest)", "from its file, warm (digest remembered)"] {
        let cache = crate::registry::cache::PrecompileCache::new(cache_dir.clone())?;
        let registry = crate::registry::Registry::new(runtime.clone(), Some(cache));
        let started = Instant::now();
        registry.load_file(&cfg.plugin, None, true).map_err(|e| e.to_string())?;
        rows.push(row(format!("load a new version {label}"), started.elapsed().as_secs_f64() * 1000.0, "ms"));
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

/// A simulator of `vms` VMs in this process, its estate built and served
/// once before any clock starts.
#[cfg(feature = "simulator")]
async fn start_simulator(vms: usize) -> Result<prism_sim::Simulator, String> {
    use prism_sim::{estate::EstateConfig, SimConfig, Simulator};
    let sim = Simulator::start(SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, ..SimConfig::default() })
        .await
        .map_err(|e| format!("simulator: {e}"))?;
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
    Ok(sim)
}

/// One collection of a simulated estate through the guest into a counting
/// sink; returns (seconds, records).
#[cfg(feature = "simulator")]
async fn collect_simulated(runtime: &Runtime, plugin: &crate::Plugin, vms: usize) -> Result<(f64, u64), String> {
    let sim = start_simulator(vms).await?;
    collect_into_counter(runtime, plugin, &sim).await
}

/// The guest's collection of `sim` into a sink that counts and drops:
/// (seconds, records).
#[cfg(feature = "simulator")]
async fn collect_into_counter(runtime: &Runtime, plugin: &crate::Plugin, sim: &prism_sim::Simulator) -> Result<(f64, u64), String> {
    collect_counted(runtime, plugin, sim, "bench", json!({})).await
}

/// [`collect_into_counter`] as `tenant` with collector `options`.
#[cfg(feature = "simulator")]
async fn collect_counted(runtime: &Runtime, plugin: &crate::Plugin, sim: &prism_sim::Simulator, tenant: &str, options: serde_json::Value) -> Result<(f64, u64), String> {
    let ctx = runtime.context(tenant).secret(sim.secret()).options(options).egress_from_secret(9440).build().map_err(|e| e.to_string())?;
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

/// Resets this process's peak resident memory (`VmHWM`) to its current
/// resident memory (Linux `clear_refs` 5); false where the kernel refuses.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One measured phase of the product path.
#[derive(Clone, Debug)]
pub struct Phase {
    pub vms: usize,
    pub name: String,
    pub secs: f64,
    pub records: u64,
    /// Seconds of the counting sink at the same size (the ratio's base).
    pub sink_secs: Option<f64>,
    /// Resident memory when the phase started (KiB): the simulator's
    /// estate and what earlier phases left.
    pub rss_before_kib: u64,
    /// Peak resident memory during the phase (KiB).
    pub peak_kib: u64,
    /// created / updated / unchanged / errors, for the store's phases.
    pub counts: Option<crate::job::Counts>,
}

/// Renders phases as an aligned table.
pub fn render_phases(phases: &[Phase]) -> String {
    let width = phases.iter().map(|p| p.name.len()).max().unwrap_or(10).max(10);
    let mut out = format!(
        "{:>8}  {:<width$}  {:>9}  {:>8}  {:>9}  {:>7}  {:>10}  {:>9}  {}\n",
        "VMs", "phase", "time s", "records", "rec/s", "x sink", "peak MiB", "+MiB", "store counts (created/updated/unchanged/errors)"
    );
    for p in phases {
        let counts = p.counts.map(|c| format!("{}/{}/{}/{}", c.created, c.updated, c.unchanged, c.errors)).unwrap_or_default();
        out.push_str(&format!(
            "{:>8}  {:<width$}  {:>9.2}  {:>8}  {:>9.0}  {:>7}  {:>10.0}  {:>9.0}  {counts}\n",
            p.vms,
            p.name,
            p.secs,
            p.records,
            p.records as f64 / p.secs.max(1e-9),
            p.sink_secs.map(|b| format!("{:.2}", p.secs / b.max(1e-9))).unwrap_or_else(|| "-".into()),
            p.peak_kib as f64 / 1024.0,
            p.peak_kib.saturating_sub(p.rss_before_kib) as f64 / 1024.0,
        ));
    }
    out
}

/// What a user runs, at `vms` simulated VMs: the guest's collection into
/// a counting sink (the base), `cf-host collect` into a new embedded store
/// (first run), again with nothing changed, again with 1 % of the VMs
/// renamed in the simulator, and `cf-host serve` (`serve::run` in this
/// process, the guest loaded from `plugin_path`) streaming the same
/// collection to a tonic client of the plugin protocol. The store file
/// lives in `dir` and is removed afterwards.
///
/// The simulator runs in this process: its estate renders VMs on demand
/// and holds only the changed ones (the 1 % renamed), so the resident
/// memory is the host's; `+MiB` is the peak over the phase's starting
/// point.
#[cfg(feature = "simulator")]
pub async fn product_path(
    runtime: &Runtime,
    plugin: &crate::Plugin,
    plugin_path: &std::path::Path,
    vms: usize,
    dir: &std::path::Path,
    progress: impl Fn(&str),
) -> Result<Vec<Phase>, String> {
    use crate::job::{JobSpec, Counts};
    use crate::store::Store;
    progress(&format!("{vms} VMs: simulator"));
    let sim = start_simulator(vms).await?;
    let mut phases = Vec::new();
    let measure_start = || {
        reset_peak_rss();
        rss_kib().0
    };

    progress(&format!("{vms} VMs: counting sink"));
    let before = measure_start();
    let (sink_secs, sink_records) = collect_into_counter(runtime, plugin, &sim).await?;
    phases.push(Phase { vms, name: "collect into a counting sink".into(), secs: sink_secs, records: sink_records, sink_secs: Some(sink_secs), rss_before_kib: before, peak_kib: rss_kib().1, counts: None });
    progress(&phase_row(&phases));

    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = dir.join(format!("bench-{vms}-{}.db", std::process::id()));
    let store = Arc::new(Store::open(&db)?);
    let progress = &progress;
    let collect = |name: &'static str| {
        let store = store.clone();
        let sim = &sim;
        async move {
            progress(&format!("{vms} VMs: {name}"));
            let before = measure_start();
            let spec = JobSpec {
                tenant: "bench".into(),
                endpoint: sim.url(),
                secret: sim.secret(),
                options: json!({}),
                task_options: json!({}),
                out: None,
                costs: None,
            };
            let started = Instant::now();
            let report = crate::job::run(runtime, plugin, store, spec, |_| {}).await?;
            let secs = started.elapsed().as_secs_f64();
            if let Some(e) = report.error {
                return Err(format!("{name}: {e}"));
            }
            let counts: Counts = report.totals();
            Ok::<Phase, String>(Phase { vms, name: name.into(), secs, records: counts.total(), sink_secs: Some(sink_secs), rss_before_kib: before, peak_kib: rss_kib().1, counts: Some(counts) })
        }
    };
    phases.push(collect("collect into the store, first run").await?);
    progress(&phase_row(&phases));
    phases.push(collect("collect into the store, unchanged").await?);
    progress(&phase_row(&phases));
    // 1 %: the first VMs of the estate renamed, as a user's edit in Prism
    // (`SimState::update_vm`, which finds a VM from its uuid).
    let changed: Vec<String> = sim
        .state
        .estate()
        .vms
        .iter()
        .take(vms / 100)
        .filter_map(|v| v.pointer("/metadata/uuid").and_then(serde_json::Value::as_str).map(str::to_string))
        .collect();
    for uuid in &changed {
        sim.state.update_vm(uuid, &format!("renamed-{uuid}"), "2026-12-06T00:00:00Z");
    }
    phases.push(collect("collect into the store, 1 % changed").await?);
    progress(&phase_row(&phases));
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    progress(&format!("{vms} VMs: serve"));
    let before = measure_start();
    let (secs, records) = serve_stream(plugin_path, &sim).await?;
    phases.push(Phase { vms, name: "serve: gRPC collect stream to a client".into(), secs, records, sink_secs: Some(sink_secs), rss_before_kib: before, peak_kib: rss_kib().1, counts: None });
    Ok(phases)
}

/// The last phase's row (a long run shows each phase as it finishes).
#[cfg(feature = "simulator")]
fn phase_row(phases: &[Phase]) -> String {
    let table = render_phases(phases.last().map(std::slice::from_ref).unwrap_or_default());
    format!("done: {}", table.lines().last().unwrap_or_default().trim())
}

/// `serve::run` in this process with the guest from `plugin_path`, and one
/// `collect` of `sim` read to its end by a tonic client: (seconds from the
/// call to the stream's end, resources received). The server is ready
/// (plugin compiled, listening) before the clock starts.
#[cfg(feature = "simulator")]
async fn serve_stream(plugin_path: &std::path::Path, sim: &prism_sim::Simulator) -> Result<(f64, u64), String> {
    use crate::grpc::convert::json_to_struct;
    use crate::grpc::pb::plugin::CollectRequest;
    use crate::serve::{Listeners, ServeOptions};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<std::net::SocketAddr>();
    let mut options = ServeOptions { plugin: Some(plugin_path.to_path_buf()), ..ServeOptions::default() };
    // The guest's CPU budget (120 s by default) is a limit, not what this
    // measures: at 1M VMs on a loaded machine the stream's guest ran past
    // it (2026-12-07), and the whole benchmark's table was lost.
    options.runtime.tenancy.default.limits.cpu = BENCH_CPU_BUDGET;
    let listeners = Listeners { grpc: listener, admin: None, metrics: None };
    let server = tokio::spawn(crate::serve::run(
        options,
        listeners,
        async move {
            let _ = stop_rx.await;
        },
        move |ready| {
            let _ = ready_tx.send(ready.grpc);
        },
    ));
    let addr = match ready_rx.await {
        Ok(addr) => addr,
        Err(_) => return Err(format!("serve did not start: {:?}", server.await)),
    };
    let url = format!("http://{addr}");
    let empty = json!({});
    let req = CollectRequest {
        options: empty.as_object().map(json_to_struct),
        secret_data: sim.secret().as_object().map(json_to_struct),
        filter: None,
        task_options: empty.as_object().map(json_to_struct),
    };
    let (took, got) = read_collect(&url, req, |_| true).await?;
    let _ = stop_tx.send(());
    server.await.map_err(|e| format!("serve: {e}"))??;
    Ok((took.as_secs_f64(), got))
}

/// The guest's CPU budget in the product path's phases.
pub const BENCH_CPU_BUDGET: Duration = Duration::from_secs(3_600);

/// One collection of [`paging`].
#[derive(Clone, Debug)]
pub struct PagingRow {
    pub vms: usize,
    /// Simulated time per list call (ms); 0 for the base.
    pub latency_ms: u64,
    /// The guest's `page_concurrency`.
    pub concurrency: u32,
    pub secs: f64,
    pub records: u64,
    /// List calls the simulator answered (pages and shift probes).
    pub calls: u64,
    /// The most list calls the simulator answered at once.
    pub peak_in_flight: u64,
    /// Calls answered 429 by the simulator's rate limit.
    pub throttled: u64,
    /// The bound: max(calls x latency / concurrency, the zero-latency time).
    pub bound_secs: f64,
}

/// Renders [`paging`] rows with each one's ratio to its bound.
pub fn render_paging(rows: &[PagingRow]) -> String {
    let mut out = format!(
        "{:>8}  {:>10}  {:>11}  {:>8}  {:>8}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}\n",
        "VMs", "latency ms", "concurrency", "time s", "records", "calls", "peak in f", "429s", "bound s", "x bound"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>8}  {:>10}  {:>11}  {:>8.2}  {:>8}  {:>6}  {:>9}  {:>9}  {:>8.2}  {:>8.2}\n",
            r.vms,
            r.latency_ms,
            r.concurrency,
            r.secs,
            r.records,
            r.calls,
            r.peak_in_flight,
            r.throttled,
            r.bound_secs,
            r.secs / r.bound_secs.max(1e-9)
        ));
    }
    out
}

/// A simulated Prism Central of `vms` VMs answering each list call after
/// `latency_ms` (and, when `rps_limit` is set, answering 429 with
/// `Retry-After` above that rate), collected through the guest into a
/// counting sink with pages of `page_size` (100: what v4 lists return at
/// most) once per `page_concurrency` in `concurrencies`, after a
/// collection without latency (the base of the bound). Issue #22's goal:
/// each run within 1.3 x max(calls x latency / concurrency, the
/// zero-latency time), no 429s while the limit is respected.
#[cfg(feature = "simulator")]
pub async fn paging(
    runtime: &Runtime,
    plugin: &crate::Plugin,
    vms: usize,
    latency_ms: u64,
    page_size: u32,
    concurrencies: &[u32],
    rps_limit: Option<f64>,
    progress: impl Fn(&str),
) -> Result<Vec<PagingRow>, String> {
    progress(&format!("{vms} VMs: simulator"));
    let sim = start_simulator(vms).await?;
    let calls = |sim: &prism_sim::Simulator| sim.state.calls_per_kind().values().sum::<u64>();
    let mut rows = Vec::new();
    // The base runs without the rate limit (at no latency it would exceed
    // any); the tenant differs per run, so no pace carries over.
    let measure = |latency_ms: u64, concurrency: u32, base: f64| {
        let sim = &sim;
        let progress = &progress;
        async move {
            progress(&format!("{vms} VMs: {latency_ms} ms per call, {concurrency} at once"));
            let rps_limit = if latency_ms == 0 { 0.0 } else { rps_limit.unwrap_or(0.0) };
            sim.set_faults(prism_sim::Faults { latency_ms, rps_limit, ..prism_sim::Faults::default() });
            sim.state.reset_peak_in_flight();
            let (calls0, throttled0) = (calls(sim), sim.state.throttled_calls());
            let (secs, records) = collect_counted(runtime, plugin, sim, &format!("bench-{latency_ms}-{concurrency}"), json!({"page_concurrency": concurrency, "page_size": page_size})).await?;
            let n = calls(sim) - calls0;
            let bound = (n as f64 * latency_ms as f64 / 1000.0 / f64::from(concurrency)).max(base);
            Ok::<PagingRow, String>(PagingRow {
                vms,
                latency_ms,
                concurrency,
                secs,
                records,
                calls: n,
                peak_in_flight: sim.state.peak_in_flight(),
                throttled: sim.state.throttled_calls() - throttled0,
                bound_secs: bound,
            })
        }
    };
    let base = measure(0, concurrencies.iter().copied().max().unwrap_or(1), 0.0).await?;
    let base_secs = base.secs;
    rows.push(PagingRow { bound_secs: base_secs, ..base });
    for &c in concurrencies {
        rows.push(measure(latency_ms, c, base_secs).await?);
    }
    Ok(rows)
}

/// [`many_tenants`]' figures.
#[derive(Clone, Debug)]
pub struct TenantsReport {
    pub tenants: usize,
    pub vms_each: usize,
    pub latency_ms: u64,
    /// One tenant's collection with nothing else running (s).
    pub alone_secs: f64,
    /// From the first start to the last end (s).
    pub wall_secs: f64,
    pub records: u64,
    /// Per-tenant wall times (s), p50 and p99.
    pub p50_secs: f64,
    pub p99_secs: f64,
    /// Peak resident memory of the process during the concurrent phase,
    /// and at its start (the simulators' estates), KiB.
    pub peak_kib: u64,
    pub rss_before_kib: u64,
    /// The runtime's sandbox pool (runs alive at once).
    pub pool: u32,
}

/// Renders [`many_tenants`] as rows.
pub fn render_tenants(r: &TenantsReport) -> String {
    let rows = [
        row(format!("{} tenants x {} VMs at {} ms/call: wall time", r.tenants, r.vms_each, r.latency_ms), r.wall_secs, "s"),
        row("total records/s", r.records as f64 / r.wall_secs.max(1e-9), "rec/s"),
        row("one tenant alone: wall time", r.alone_secs, "s"),
        row("per-tenant wall time p50", r.p50_secs, "s"),
        row("per-tenant wall time p99", r.p99_secs, "s"),
        row("per-tenant p99 / alone", r.p99_secs / r.alone_secs.max(1e-9), "x"),
        row("sandbox pool (runs at once)", f64::from(r.pool), "runs"),
        row("peak RSS (process, simulators included)", r.peak_kib as f64 / 1024.0, "MiB"),
        row("peak RSS over the simulators' estates", r.peak_kib.saturating_sub(r.rss_before_kib) as f64 / 1024.0, "MiB"),
    ];
    render(&rows)
}

/// `tenants` tenants, each with its own simulated Prism Central of
/// `vms_each` VMs answering each list call after `latency_ms`, collected
/// concurrently through one runtime (`pool`: its sandbox pool, for the report) (each tenant its own context, limits
/// and origin), after one of them collected alone. Per-tenant times run
/// from the collections' common start (a tenant queued behind the pool
/// counts its wait), as a user who scheduled them together sees them.
#[cfg(feature = "simulator")]
pub async fn many_tenants(runtime: &Runtime, pool: u32, plugin: &crate::Plugin, tenants: usize, vms_each: usize, latency_ms: u64, progress: impl Fn(&str)) -> Result<TenantsReport, String> {
    progress(&format!("{tenants} simulators of {vms_each} VMs"));
    let mut sims = Vec::with_capacity(tenants);
    for _ in 0..tenants {
        let sim = start_simulator(vms_each).await?;
        sim.set_faults(prism_sim::Faults { latency_ms, ..prism_sim::Faults::default() });
        sims.push(sim);
    }
    progress("one tenant alone");
    let (alone_secs, _) = collect_counted(runtime, plugin, &sims[0], "tenant-0", json!({})).await?;
    progress(&format!("{tenants} tenants at once"));
    reset_peak_rss();
    let rss_before_kib = rss_kib().0;
    let started = Instant::now();
    let runs = sims.iter().enumerate().map(|(i, sim)| async move {
        let r = collect_counted(runtime, plugin, sim, &format!("tenant-{i}"), json!({})).await;
        (started.elapsed().as_secs_f64(), r)
    });
    let results = futures::future::join_all(runs).await;
    let wall_secs = started.elapsed().as_secs_f64();
    let peak_kib = rss_kib().1;
    let mut times = Vec::with_capacity(tenants);
    let mut records = 0;
    for (i, (secs, r)) in results.into_iter().enumerate() {
        let (_, n) = r.map_err(|e| format!("tenant-{i}: {e}"))?;
        records += n;
        times.push(Duration::from_secs_f64(secs));
    }
    times.sort();
    Ok(TenantsReport {
        tenants,
        vms_each,
        latency_ms,
        alone_secs,
        wall_secs,
        records,
        p50_secs: percentile(&times, 0.50).as_secs_f64(),
        p99_secs: percentile(&times, 0.99).as_secs_f64(),
        peak_kib,
        rss_before_kib,
        pool,
    })
}

/// The store alone, without guest or simulator: `n` synthetic VM records
/// (`inventory.CloudService`, about 1 KB of `data` each) applied in
/// batches of 100 through [`crate::store::Store::apply`] into a new store
/// in `dir`, a first run, an unchanged run and a run with 1 % changed.
/// Their ids come in no order, as the simulator's uuids do, so match keys
/// land at random places in their index.
/// Only the `apply` calls are timed (building the records is not).
pub fn store_only(n: usize, dir: &std::path::Path) -> Result<Vec<Phase>, String> {
    use crate::record::ResourceType;
    use crate::store::{Outcome, Store};
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = dir.join(format!("bench-store-{n}-{}.db", std::process::id()));
    let store = Store::open(&db)?;
    let record = |i: usize, power: &str| {
        // Ids in no order, as uuids are: an odd multiplier is a bijection
        // modulo 2^48.
        let id = format!("00000000-0000-4000-8000-{:012x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xFFFF_FFFF_FFFF);
        let resource = json!({
            "name": format!("vm-{i:07}"), "provider": "nutanix", "cloud_service_group": "Compute",
            "cloud_service_type": "VirtualMachine", "account": "00000000-0000-4000-8000-pc0000000001",
            "region_code": "cluster-01", "ip_addresses": [format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)],
            "reference": {"resource_id": id, "external_link": format!("https://prism.example.com:9440/console/#/vm/{id}")},
            "tags": {"Environment": "Production", "Owner": format!("team-{}", i % 17)},
            "data": {
                "power_state": power, "num_sockets": 2, "num_vcpus_per_socket": 2, "memory_size_mib": 8192,
                "cluster": {"uuid": "00000000-0000-4000-8000-cluster00001", "name": "cluster-01"},
                "host": {"uuid": format!("00000000-0000-4000-8000-host{:08}", i % 64), "name": format!("host-{}", i % 64)},
                "disks": (0..3).map(|d| json!({"uuid": format!("{id}-disk-{d}"), "size_gib": 100 * (d + 1), "bus": "SCSI", "index": d})).collect::<Vec<_>>(),
                "nics": [{"mac_address": format!("50:6b:8d:{:02x}:{:02x}:{:02x}", i >> 16 & 255, i >> 8 & 255, i & 255), "subnet": "vlan-100", "ip": format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)}],
                "guest_os": "Linux", "machine_type": "PC", "boot_type": "UEFI", "description": "synthetic VM of the store benchmark",
                "categories": {"Environment": "Production", "AppType": "Web"},
            }
        });
        crate::record::Record::from_resource(ResourceType::CloudService, resource.as_object().cloned().unwrap_or_default())
    };
    let mut phases = Vec::new();
    for (name, changed_every) in [("store alone, first run", 0), ("store alone, unchanged", 0), ("store alone, 1 % changed", 100)] {
        reset_peak_rss();
        let before = rss_kib().0;
        let mut took = Duration::ZERO;
        let mut counts = crate::job::Counts::default();
        for start in (0..n).step_by(100) {
            let batch: Vec<_> = (start..(start + 100).min(n))
                .map(|i| record(i, if changed_every > 0 && i % changed_every == 0 { "OFF" } else { "ON" }))
                .collect();
            let t = Instant::now();
            let outcomes = store.apply("bench", name, &batch)?;
            took += t.elapsed();
            for o in outcomes {
                match o {
                    Outcome::Created => counts.created += 1,
                    Outcome::Updated => counts.updated += 1,
                    Outcome::Unchanged => counts.unchanged += 1,
                    Outcome::Error => counts.errors += 1,
                }
            }
        }
        let secs = took.as_secs_f64();
        phases.push(Phase { vms: n, name: name.into(), secs, records: n as u64, sink_secs: None, rss_before_kib: before, peak_kib: rss_kib().1, counts: Some(counts) });
    }
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(phases)
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

/// One `collect` of the adversary's `bulk` attack read to its end: (time,
/// cloud services).
async fn stream_once(url: &str, n: u64) -> Result<(Duration, u64), String> {
    use crate::grpc::convert::json_to_struct;
    use crate::grpc::pb::plugin::CollectRequest;
    let task = json!({"attack": "bulk", "n": n});
    let req = CollectRequest {
        options: Some(Default::default()),
        secret_data: Some(Default::default()),
        filter: None,
        task_options: task.as_object().map(json_to_struct),
    };
    read_collect(url, req, |item| item.resource_type == "inventory.CloudService").await
}

/// `collect` on the plugin server at `url` read to its end by a tonic
/// client: (time from the call to the stream's end, items that `counts`).
async fn read_collect(
    url: &str,
    req: crate::grpc::pb::plugin::CollectRequest,
    counts: impl Fn(&crate::grpc::pb::plugin::ResourceInfo) -> bool,
) -> Result<(Duration, u64), String> {
    use crate::grpc::pb::plugin::collector_client::CollectorClient;
    let mut client = CollectorClient::connect(url.to_string())
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .max_decoding_message_size(64 << 20);
    let started = Instant::now();
    let mut stream = client.collect(req).await.map_err(|e| format!("{url}: {e}"))?.into_inner();
    let mut got = 0u64;
    while let Some(item) = stream.message().await.map_err(|e| format!("{url}: {e}"))? {
        got += u64::from(counts(&item));
    }
    Ok((started.elapsed(), got))
}
