//! `cf-host collect`: one collection in a sandbox into the embedded store.

use super::{load_tenancy, parse_object, webhook};
use cf_host::job::{self, JobReport, JobSpec};
use cf_host::secret::SecretSource;
use cf_host::store::Store;
use cf_host::{Runtime, RuntimeConfig};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The collector component (.wasm).
    #[arg(long)]
    plugin: PathBuf,
    /// Endpoint URL, e.g. https://prism.example.com:9440; the run may reach only this origin.
    #[arg(long)]
    endpoint: String,
    /// Secret JSON: a file path, `env:VAR`, or `-` for stdin.
    #[arg(long)]
    secret: String,
    /// Also write the records as NDJSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tenant (CloudForet domain or local id); scopes the store and state.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The embedded store (SQLite file).
    #[arg(long, env = "CF_HOST_STORE", default_value = "cf-host.db")]
    store: PathBuf,
    /// Collector options (JSON object).
    #[arg(long, default_value = "{}")]
    options: String,
    /// Task options (JSON object), e.g. {"resource_kinds":["vms"]}.
    #[arg(long, default_value = "{}")]
    task_options: String,
    /// Accept any TLS certificate (Prism's self-signed one). Explicit opt-out.
    #[arg(long)]
    no_verify_ssl: bool,
    /// Trust these extra root certificates (PEM file).
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Allow the endpoint's name to resolve into this private/loopback network (CIDR; repeatable).
    #[arg(long = "allow-network", value_name = "CIDR")]
    allow_networks: Vec<String>,
    /// POST collection.finished / collection.failed here when done,
    /// signed with CF_HOST_WEBHOOK_SECRET (HMAC-SHA256).
    #[arg(long, env = "CF_HOST_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Per-tenant limits, concurrency caps and networks (JSON; see the README).
    #[arg(long, env = "CF_HOST_TENANTS")]
    tenants: Option<PathBuf>,
    /// Collect costs instead of the inventory: the plugin's cost-source,
    /// priced by the `rate_card` option (one task per day).
    #[arg(long)]
    costs: bool,
    /// First day of the costs (YYYY-MM-DD or YYYY-MM; default: today),
    /// at most the rate card's backfill_days ago.
    #[arg(long, requires = "costs", value_name = "DATE")]
    costs_start: Option<String>,
}

pub async fn run(args: Args) -> Result<ExitCode, String> {
    let Args {
        plugin,
        endpoint,
        secret,
        out,
        tenant,
        store,
        options,
        task_options,
        no_verify_ssl,
        ca_bundle,
        allow_networks,
        tenants,
        webhook_url,
        costs,
        costs_start,
    } = args;
    let hook = webhook_url.as_deref().map(webhook).transpose()?;
    let mut options = parse_object("--options", &options)?;
    let task_options = parse_object("--task-options", &task_options)?;
    if no_verify_ssl {
        options["verify_ssl"] = Value::Bool(false);
    }
    if let Some(p) = ca_bundle {
        let pem = std::fs::read_to_string(&p).map_err(|e| format!("cannot read CA bundle {}: {e}", p.display()))?;
        options["ca_bundle"] = Value::String(pem);
    }
    let secret = SecretSource::parse(&secret).load().map_err(|e| e.to_string())?;
    let mut tenancy = load_tenancy(tenants.as_deref())?;
    if !allow_networks.is_empty() {
        let nets = allow_networks
            .iter()
            .map(|n| n.parse::<ipnet::IpNet>().map_err(|e| format!("--allow-network {n:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut t = tenancy.get(&tenant).clone();
        t.allow_networks.extend(nets);
        tenancy.tenants.insert(tenant.clone(), t);
    }
    let runtime = Runtime::new(RuntimeConfig { tenancy, ..RuntimeConfig::default() })?;
    let plugin = runtime.load_file(&plugin).map_err(|e| e.to_string())?;
    let store = Arc::new(Store::open(&store)?);
    let costs = costs.then_some(cf_host::job::CostWindow { start: costs_start });
    let spec = JobSpec { tenant, endpoint, secret, options, task_options, out: out.clone(), costs };
    let tenant_name = spec.tenant.clone();
    let report = collect_with_progress(&runtime, &plugin, store.clone(), spec).await?;
    print_report(&report, &plugin, store.path(), out.as_deref());
    if let Some(hook) = hook {
        let event = cf_host::webhook::Event::start(&report.run_id, &tenant_name, &plugin.name, plugin.short_digest());
        let tally = report.tally();
        let failure = report.error.as_ref().map(|e| (e.code().grpc_name(), e.to_string()));
        if let Err(e) = hook.deliver(&event.finish(report.elapsed, tally, failure)).await {
            eprintln!("warning: {e}");
        }
    }
    Ok(exit_code(&report))
}

pub async fn collect_with_progress(
    runtime: &Runtime,
    plugin: &cf_host::Plugin,
    store: Arc<Store>,
    spec: JobSpec,
) -> Result<JobReport, cf_host::job::JobError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} collecting: {pos} records stored")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(100));
        b
    });
    let b2 = bar.clone();
    let report = job::run(runtime, plugin, store, spec, move |n| {
        if let Some(b) = &b2 {
            b.set_position(n);
        }
    })
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report
}

pub fn print_report(report: &JobReport, plugin: &cf_host::Plugin, store: &Path, out: Option<&Path>) {
    if let Some(e) = report.error.as_ref().filter(|_| report.counts.is_empty()) {
        // Nothing was collected: the error is the whole story.
        eprintln!("error: collection failed: {e}");
        return;
    }
    println!(
        "Collected with {} ({}) in {:.2}s, run {}",
        plugin.name,
        plugin.short_digest(),
        report.elapsed.as_secs_f64(),
        report.run_id
    );
    print!("{}", job::render_table(report));
    if let Some(c) = &report.collect {
        println!("{} HTTP requests, {} records emitted by the guest", c.http_requests, c.guest_emitted);
    }
    println!("Store: {}", store.display());
    if let Some(o) = out {
        println!("NDJSON: {}", o.display());
    }
    if let Some(e) = &report.error {
        eprintln!("error: collection failed: {e}");
    }
}

pub fn exit_code(report: &JobReport) -> ExitCode {
    if report.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

