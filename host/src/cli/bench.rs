//! `cf-host bench`: the performance figures as a table.

use super::default_plugin;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The collector component; defaults to the workspace's release build.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// The adversary test component for the concurrent-sandbox figures;
    /// defaults to the workspace's release build (skipped if missing).
    #[arg(long)]
    adversary: Option<PathBuf>,
    #[arg(long, default_value_t = 2000)]
    instantiations: usize,
    /// Sandboxes alive at once.
    #[arg(long, default_value_t = 1000)]
    sandboxes: usize,
    /// Simulated VMs per end-to-end collection (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    vms: Vec<usize>,
    /// Skip the end-to-end collections.
    #[arg(long)]
    no_collect: bool,
    /// Instead: the gRPC stream against CloudForet's Python SDK, given
    /// the SDK's `spaceone` command (a venv with spaceone-inventory
    /// 2.0.dev247); N resources per stream.
    #[arg(long, value_name = "SPACEONE_CMD")]
    against_python_sdk: Option<PathBuf>,
    #[arg(long, default_value_t = 20_000)]
    stream_resources: u64,
    /// Instead: the product path at each `--vms` size: the collection into
    /// a counting sink, `collect` into the embedded store (first run,
    /// unchanged, 1 % changed) and `serve` streaming to a gRPC client.
    #[arg(long)]
    product: bool,
    /// Instead: the embedded store alone, with this many synthetic records
    /// (comma-separated sizes), first run, unchanged and 1 % changed.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    store_only: Vec<usize>,
    /// Instead: paging against a Prism answering each list call after
    /// `--page-latency-ms`, at each `--vms` size, once per
    /// `--page-concurrency`, after a run without latency.
    #[arg(long)]
    paging: bool,
    #[arg(long, default_value_t = 200)]
    page_latency_ms: u64,
    /// The guest's `page_size` for `--paging` (100: v4's largest page).
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// The guest's `page_concurrency` values to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    page_concurrency: Vec<u32>,
    /// The simulator's rate limit (list calls per second) for `--paging`;
    /// calls above it are answered 429 with `Retry-After`.
    #[arg(long)]
    rps_limit: Option<f64>,
    /// Instead: this many tenants, each with its own simulated Prism of
    /// `--vms-each` VMs at `--tenant-latency-ms` per call, collected at once
    /// through one runtime with a pool of `--pool` sandboxes.
    #[arg(long, value_name = "N")]
    tenants: Option<usize>,
    #[arg(long, default_value_t = 1000)]
    vms_each: usize,
    #[arg(long, default_value_t = 50)]
    tenant_latency_ms: u64,
    #[arg(long, default_value_t = 32)]
    pool: u32,
    /// Where the benchmark's store files go (removed after each size).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
}

pub async fn run(a: Args) -> Result<ExitCode, String> {
    let Args {
        plugin,
        adversary,
        instantiations,
        sandboxes,
        vms,
        no_collect,
        against_python_sdk,
        stream_resources,
        product,
        store_only,
        paging,
        page_latency_ms,
        page_size,
        page_concurrency,
        rps_limit,
        tenants,
        vms_each,
        tenant_latency_ms,
        pool,
        dir,
    } = a;
    if !store_only.is_empty() {
        let mut phases = Vec::new();
        for n in store_only {
            eprintln!("bench: store alone, {n} records ...");
            phases.extend(cf_host::bench::store_only(n, &dir)?);
        }
        print!("{}", cf_host::bench::render_phases(&phases));
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(not(feature = "simulator"))]
    if product || paging || tenants.is_some() {
        return Err("--product, --paging and --tenants need the simulator (the `simulator` feature)".into());
    }
    #[cfg(feature = "simulator")]
    if paging {
        let (_, runtime, loaded) = load(plugin, cf_host::RuntimeConfig::default().max_concurrency)?;
        let mut rows = Vec::new();
        for n in vms {
            let progress = |stage: &str| eprintln!("bench: {stage} ...");
            rows.extend(cf_host::bench::paging(&runtime, &loaded, n, page_latency_ms, page_size, &page_concurrency, rps_limit, progress).await?);
            eprint!("{}", cf_host::bench::render_paging(&rows));
        }
        print!("{}", cf_host::bench::render_paging(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(feature = "simulator")]
    if let Some(n) = tenants {
        let (_, runtime, loaded) = load(plugin, pool)?;
        let report = cf_host::bench::many_tenants(&runtime, pool, &loaded, n, vms_each, tenant_latency_ms, |stage| eprintln!("bench: {stage} ...")).await?;
        print!("{}", cf_host::bench::render_tenants(&report));
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(feature = "simulator")]
    if product {
        let (plugin, runtime, loaded) = load(plugin, cf_host::RuntimeConfig::default().max_concurrency)?;
        let mut phases = Vec::new();
        for n in vms {
            phases.extend(cf_host::bench::product_path(&runtime, &loaded, &plugin, n, &dir, |stage| eprintln!("bench: {stage} ...")).await?);
            // Each size as it finishes: a long run shows what it has.
            eprint!("{}", cf_host::bench::render_phases(&phases));
        }
        print!("{}", cf_host::bench::render_phases(&phases));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(spaceone) = against_python_sdk {
        let adversary = adversary.unwrap_or_else(|| default_plugin().with_file_name("cf_adversary.wasm"));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python");
        let rows = cf_host::bench::stream_vs_python_sdk(&adversary, &spaceone, &root, stream_resources).await?;
        print!("{}", cf_host::bench::render(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    let vms = if no_collect { Vec::new() } else { vms };
    let plugin = plugin.unwrap_or_else(default_plugin);
    let adversary = adversary.or_else(|| {
        let p = default_plugin().with_file_name("cf_adversary.wasm");
        p.exists().then_some(p)
    });
    let cfg = cf_host::bench::BenchConfig { plugin, adversary, instantiations, sandboxes, vms };
    let rows = cf_host::bench::run(&cfg, |stage| eprintln!("bench: {stage} ...")).await?;
    print!("{}", cf_host::bench::render(&rows));
    Ok(ExitCode::SUCCESS)
}

/// The runtime (a pool of `pool` sandboxes) with the collector loaded from
/// `plugin` (default: the workspace's release build).
#[cfg(feature = "simulator")]
fn load(plugin: Option<PathBuf>, pool: u32) -> Result<(PathBuf, cf_host::Runtime, cf_host::Plugin), String> {
    let plugin = plugin.unwrap_or_else(default_plugin);
    let mut config = cf_host::RuntimeConfig { max_concurrency: pool, ..cf_host::RuntimeConfig::default() };
    config.tenancy.default.limits.cpu = cf_host::bench::BENCH_CPU_BUDGET;
    let runtime = cf_host::Runtime::new(config)?;
    let loaded = runtime.load_file(&plugin).map_err(|e| e.to_string())?;
    Ok((plugin, runtime, loaded))
}
