//! The `cf-host` command line.

use cf_host::job::{self, JobReport, JobSpec};
use cf_host::secret::SecretSource;
use cf_host::store::Store;
use cf_host::{Runtime, RuntimeConfig};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "cf-host", version, about = "WASM plugin host for CloudForet inventory collectors", args_override_self = true)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `warn,guest=debug`.
    #[arg(long, global = true, env = "CF_HOST_LOG", default_value = "warn")]
    log: String,
    /// Export spans (one per sandbox call, with tenant, plugin and run) over
    /// OTLP/gRPC to this OpenTelemetry collector, e.g. `http://otel:4317`.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum PluginsAction {
    /// Versions loaded, live, pinned, in use.
    List,
    /// Upload a component, or have the server pull one from an OCI registry
    /// (--oci); it goes live with --activate (or when it is the first version).
    Load {
        #[arg(required_unless_present = "oci", conflicts_with = "oci")]
        file: Option<PathBuf>,
        /// Pull this wasm OCI artifact (registry/repository:tag or @sha256:..) instead.
        #[arg(long)]
        oci: Option<String>,
        /// Expected sha256 digest (sha256:<hex>); refused on mismatch.
        #[arg(long)]
        digest: Option<String>,
        #[arg(long)]
        activate: bool,
    },
    /// Make NAME@VERSION the live version.
    Activate { plugin: String },
    /// Route a share of the tenants (the same ones each time) to NAME@VERSION;
    /// --percent 0 ends the canary, activate promotes it, rollback ends it.
    Canary {
        plugin: String,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
    },
    /// Return NAME to its previous live version.
    Rollback { name: String },
    /// Pin a tenant (or, without --tenant, everyone) to NAME@VERSION.
    Pin {
        plugin: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a tenant's pin on NAME.
    Unpin {
        name: String,
        #[arg(long)]
        tenant: String,
    },
    /// Unload NAME@VERSION (refused while live, pinned or running).
    Unload { plugin: String },
    /// Create an ed25519 signing key: writes <DIR>/<KEY_ID>.key (keep it
    /// secret) and prints the line to add to the host's --trusted-keys file.
    Keygen {
        key_id: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Sign a component: adds a signature over its name, version and digest
    /// to the manifest beside it (<file>.json), which travels with it
    /// (plugins directory, load, push).
    Sign {
        file: PathBuf,
        /// Private key file from keygen.
        #[arg(long)]
        key: PathBuf,
    },
    /// Push a component (and the manifest beside it, if any) to an OCI
    /// registry as a wasm artifact. Talks to the registry, not to the server;
    /// credentials from CF_HOST_OCI_USERNAME / CF_HOST_OCI_PASSWORD.
    Push {
        file: PathBuf,
        /// registry/repository:tag, e.g. registry.example.com/cloudforet/nutanix:1.2.0
        reference: String,
        /// Plain HTTP to this registry (host:port), e.g. a local test registry.
        #[arg(long)]
        insecure: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file of these options (keys are the flag names, e.g.
    /// `drain-timeout = 60`; see cf-host.example.toml). The command line and
    /// environment variables override it.
    #[arg(long, env = "CF_HOST_CONFIG")]
    config: Option<PathBuf>,
    /// The collector component (.wasm); or use --plugins-dir.
    #[arg(long, env = "CF_HOST_PLUGIN", required_unless_present_any = ["plugins_dir", "plugin_oci"])]
    plugin: Option<PathBuf>,
    /// Load every component in this directory and watch it: a new
    /// version dropped in goes live (hot swap).
    #[arg(long, env = "CF_HOST_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
    /// Plugin name to serve (default: the --plugin component's, else nutanix).
    #[arg(long)]
    name: Option<String>,
    /// Precompile cache directory (default: $XDG_CACHE_HOME/cf-host or ~/.cache/cf-host).
    #[arg(long, env = "CF_HOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled components.
    #[arg(long)]
    no_cache: bool,
    /// Serve the admin API (plugin registry) on this address, e.g. 127.0.0.1:50052.
    /// Needs CF_HOST_ADMIN_TOKEN (16+ characters).
    #[arg(long)]
    admin_bind: Option<String>,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 0.0.0.0:9090.
    #[arg(long)]
    metrics_bind: Option<String>,
    /// The plugin protocol: inventory (a collector), cost-analysis (a cost
    /// data source; the component must export cost-source) or monitoring (a
    /// metric data source; the component must export metric-source).
    #[arg(long, env = "CF_HOST_PROTOCOL", value_enum, default_value_t = cf_host::grpc::Protocol::Inventory)]
    protocol: cf_host::grpc::Protocol,
    /// Port to listen on, on all interfaces ([::], or 0.0.0.0 without IPv6).
    #[arg(long, env = "SPACEONE_PORT", default_value_t = cf_host::grpc::DEFAULT_PORT)]
    port: u16,
    /// Listen address instead of all interfaces, e.g. 127.0.0.1.
    #[arg(long)]
    bind: Option<String>,
    /// Port granted when secret_data names a host without a port.
    #[arg(long, default_value_t = 9440)]
    default_endpoint_port: u16,
    /// Keep the state interface's data in this SQLite file (in memory otherwise).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Per-tenant limits, concurrency caps and networks (JSON; see the README).
    #[arg(long, env = "CF_HOST_TENANTS")]
    tenants: Option<PathBuf>,
    /// Sandboxes alive at once; more calls queue.
    #[arg(long, default_value_t = 32)]
    max_concurrency: u32,
    /// Pull and load these wasm OCI artifacts at start (repeatable); the
    /// first one is live.
    #[arg(long = "plugin-oci", env = "CF_HOST_PLUGIN_OCI", value_delimiter = ',')]
    plugin_oci: Vec<String>,
    /// Trusted public keys for plugin signatures (lines `<key-id> <base64>`,
    /// from `cf-host plugins keygen`): a signature present must verify.
    #[arg(long, env = "CF_HOST_TRUSTED_KEYS")]
    trusted_keys: Option<PathBuf>,
    /// Refuse components without a signature by a trusted key.
    #[arg(long, requires = "trusted_keys")]
    require_signatures: bool,
    /// POST collection.finished / collection.failed here after every collect
    /// call, signed with CF_HOST_WEBHOOK_SECRET (HMAC-SHA256; see the README).
    #[arg(long, env = "CF_HOST_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// On SIGTERM/Ctrl-C: seconds calls in flight may run on before they are
    /// cancelled (new calls are refused at once).
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Registries (host:port) reached over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", env = "CF_HOST_INSECURE_REGISTRIES", value_delimiter = ',')]
    insecure_registries: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one collection in a sandbox into the embedded store.
    Collect {
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
    },
    /// Push mode: collect the configured tenants on their schedule and write
    /// the results into CloudForet through its APIs (see cf-host.push.example.toml).
    Run {
        /// The push configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Run the tenants now, deliver, and exit (non-zero when a collection
        /// failed or records are left spooled).
        #[arg(long)]
        once: bool,
        /// Only these tenants (with --once; repeatable).
        #[arg(long = "tenant", requires = "once")]
        tenants: Vec<String>,
        /// Seconds between scheduler checks.
        #[arg(long, default_value_t = 60)]
        tick: u64,
    },
    /// Publish the collector in CloudForet: its secret schema (identity
    /// Schema) and its repository plugin, as `[register]` in the push
    /// configuration says. Idempotent: creates, updates or leaves alone.
    Register {
        /// The push configuration (TOML) with a [register] section.
        #[arg(long)]
        config: PathBuf,
    },
    /// Serve CloudForet's collector plugin protocol (gRPC) for a component.
    #[command(args_override_self = true)]
    Serve(ServeArgs),
    /// Manage the plugin registry of a running `cf-host serve` (admin API).
    Plugins {
        /// Admin API URL.
        #[arg(long, env = "CF_HOST_ADMIN_URL", default_value = "http://127.0.0.1:50052")]
        admin: String,
        /// Bearer token of the admin API (not needed by push).
        #[arg(long, env = "CF_HOST_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        action: PluginsAction,
    },
    /// Test a collector component against a cassette (no network), or record one.
    ///
    /// Prints per-type counts, errors, requests and what the cassette lacked;
    /// exits non-zero when the run fails, a request is not in the cassette,
    /// an expectation is not met or the output differs from the golden file.
    Test {
        /// The collector component (.wasm).
        plugin: PathBuf,
        /// Cassette directory (holds cassette.json) or file.
        #[arg(long)]
        cassette: PathBuf,
        /// Expectations (JSON): counts, errors, resource fields, requests, error_code.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Compare the records (normalized NDJSON) with this golden file.
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Write the golden file instead of comparing.
        #[arg(long, requires = "golden")]
        update_golden: bool,
        /// Record: run against --endpoint with --secret and write the cassette.
        #[arg(long, requires = "endpoint", requires = "secret")]
        record: bool,
        /// Live endpoint to record from, e.g. https://prism.example.com:9440.
        #[arg(long)]
        endpoint: Option<String>,
        /// Secret JSON for recording: a file path, `env:VAR`, or `-`.
        #[arg(long)]
        secret: Option<String>,
        /// Collector options (JSON object); a replay defaults to the cassette's.
        #[arg(long)]
        options: Option<String>,
        /// Task options (JSON object); a replay defaults to the cassette's.
        #[arg(long)]
        task_options: Option<String>,
    },
    /// Measure the host: instantiation, concurrent sandboxes, end-to-end collections.
    Bench {
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
    },
    /// Collect a simulated Prism Central through the wasm guest; needs nothing external.
    Demo {
        /// Simulated VMs.
        #[arg(long, default_value_t = 200)]
        vms: usize,
        /// The collector component; defaults to the workspace's release build.
        #[arg(long, env = "CF_HOST_PLUGIN")]
        plugin: Option<PathBuf>,
        /// The embedded store; defaults to a fresh file in the temp directory.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    use clap::CommandFactory;
    let args = match cf_host::config_file::expand(std::env::args_os().collect(), &Cli::command()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = {
        let _in_runtime = rt.enter();
        match cf_host::telemetry::init(&cli.log, cli.otlp_endpoint.as_deref(), std::io::stderr().is_terminal()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let code = match rt.block_on(run(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    {
        let _in_runtime = rt.enter();
        telemetry.shutdown();
    }
    code
}

fn load_tenancy(path: Option<&Path>) -> Result<cf_host::tenancy::TenancyConfig, String> {
    match path {
        Some(p) => cf_host::tenancy::TenancyConfig::load(p),
        None => Ok(cf_host::tenancy::TenancyConfig::default()),
    }
}

fn parse_object(what: &str, text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{what} must be a JSON object")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

async fn run(cmd: Cmd) -> Result<ExitCode, String> {
    match cmd {
        Cmd::Collect {
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
        } => {
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
            let secret = SecretSource::parse(&secret).load()?;
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
                let mut tally = cf_host::webhook::Tally::default();
                for (label, c) in &report.counts {
                    tally.records.insert(label.clone(), c.created + c.updated + c.unchanged + c.errors);
                    tally.errors += c.errors;
                }
                let failure = report.error.as_ref().map(|e| (e.code().grpc_name(), e.to_string()));
                if let Err(e) = hook.deliver(&event.finish(report.elapsed, tally, failure)).await {
                    eprintln!("warning: {e}");
                }
            }
            Ok(exit_code(&report))
        }
        Cmd::Serve(args) => serve(args).await,
        Cmd::Run { config, once, tenants, tick } => {
            let runner = cf_host::push_config::Runner::new(cf_host::push_config::RunConfig::load(&config)?)?;
            if once {
                let results = runner.run_all(&tenants).await?;
                print!("{}", cf_host::push_config::render(&results));
                let ok = results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.complete()));
                return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            eprintln!("cf-host run: {} tenants, store {}", runner.config.tenants.len(), runner.sink.store.path().display());
            runner.serve(std::time::Duration::from_secs(tick.max(1)), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Register { config } => {
            let config = cf_host::push_config::RunConfig::load(&config)?;
            let what = config.register.as_ref().ok_or("the configuration has no [register] section")?;
            let connector = cf_host::cloudforet::client::Connector::new(config.connector_config()?)?;
            for line in cf_host::push_config::register(&connector, what).await? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plugins { action: PluginsAction::Push { file, reference, insecure }, .. } => {
            print!("{}", push(&file, &reference, insecure).await?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plugins { action: PluginsAction::Keygen { key_id, dir }, .. } => {
            print!("{}", keygen(&key_id, &dir)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plugins { action: PluginsAction::Sign { file, key }, .. } => {
            print!("{}", sign(&file, &key)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plugins { admin, token, action } => {
            let token = token.ok_or("the admin API needs --token or CF_HOST_ADMIN_TOKEN")?;
            let client = cf_host::admin::Client::new(&admin, &token)?;
            let out = match action {
                PluginsAction::List => client.list().await?,
                PluginsAction::Load { oci: Some(reference), digest, activate, .. } => {
                    client.load_oci(&reference, digest.as_deref(), activate).await?
                }
                PluginsAction::Load { file: Some(file), digest, activate, .. } => client.load(&file, digest.as_deref(), activate).await?,
                PluginsAction::Load { .. } => return Err("load needs a FILE or --oci REFERENCE".into()),
                PluginsAction::Push { .. } | PluginsAction::Keygen { .. } | PluginsAction::Sign { .. } => {
                    unreachable!("handled above: they do not talk to the admin API")
                }
                PluginsAction::Activate { plugin } => client.activate(&plugin).await?,
                PluginsAction::Canary { plugin, percent } => client.canary(&plugin, percent).await?,
                PluginsAction::Rollback { name } => client.rollback(&name).await?,
                PluginsAction::Pin { plugin, tenant } => client.pin(&plugin, tenant.as_deref()).await?,
                PluginsAction::Unpin { name, tenant } => client.unpin(&name, &tenant).await?,
                PluginsAction::Unload { plugin } => client.unload(&plugin).await?,
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Test { plugin, cassette, expect, golden, update_golden, record, endpoint, secret, options, task_options } => {
            let record = match (record, endpoint, secret) {
                (true, Some(endpoint), Some(secret)) => {
                    let url = url::Url::parse(&endpoint).map_err(|e| format!("--endpoint {endpoint:?} is not a URL: {e}"))?;
                    Some((url, SecretSource::parse(&secret).load()?))
                }
                (false, Some(_), _) | (false, _, Some(_)) => {
                    return Err("--endpoint and --secret are for --record; a replay needs only the cassette".into());
                }
                _ => None,
            };
            let args = cf_host::testing::cli::TestArgs {
                plugin,
                cassette,
                expect,
                golden,
                update_golden,
                record,
                options: options.map(|o| parse_object("--options", &o)).transpose()?,
                task_options: task_options.map(|o| parse_object("--task-options", &o)).transpose()?,
            };
            let passed = cf_host::testing::cli::run(args).await?;
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Cmd::Bench { adversary, against_python_sdk: Some(spaceone), stream_resources, .. } => {
            let adversary = adversary.unwrap_or_else(|| default_plugin().with_file_name("cf_adversary.wasm"));
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python");
            let rows = cf_host::bench::stream_vs_python_sdk(&adversary, &spaceone, &root, stream_resources).await?;
            print!("{}", cf_host::bench::render(&rows));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { plugin, adversary, instantiations, sandboxes, vms, no_collect, .. } => {
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
        Cmd::Demo { vms, plugin, store } => demo(vms, plugin, store).await,
    }
}


/// The webhook for `--webhook-url`, keyed by `CF_HOST_WEBHOOK_SECRET`.
fn webhook(url: &str) -> Result<cf_host::webhook::Webhook, String> {
    let secret = std::env::var("CF_HOST_WEBHOOK_SECRET").map_err(|_| "--webhook-url needs CF_HOST_WEBHOOK_SECRET (16+ characters)".to_string())?;
    cf_host::webhook::Webhook::new(url, &secret)
}

/// `cf-host plugins keygen`.
fn keygen(key_id: &str, dir: &std::path::Path) -> Result<String, String> {
    use cf_host::registry::signature::PrivateKey;
    let key = PrivateKey::generate(key_id)?;
    let path = dir.join(format!("{key_id}.key"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, key.to_file_text().as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("private key: {} (keep it secret)\ntrusted-keys line:\n{}", path.display(), key.public_line()))
}

/// `cf-host plugins sign`: adds a signature to `<file>.json`.
fn sign(file: &std::path::Path, key: &std::path::Path) -> Result<String, String> {
    use cf_host::registry::{identity, signature::PrivateKey};
    let key = PrivateKey::load(key)?;
    let wasm = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let manifest_path = file.with_extension("json");
    let mut manifest = if manifest_path.exists() { identity::Manifest::load(&manifest_path)? } else { identity::Manifest::default() };
    let embedded = identity::embedded(&wasm)?;
    let (name, version) = identity::resolve(embedded.as_ref(), Some(&manifest))?;
    let digest = cf_host::sandbox::component_digest(&wasm);
    manifest.signatures.retain(|s| s.key_id != key.key_id);
    manifest.signatures.push(key.sign(&name, &version, &digest));
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&manifest_path, text).map_err(|e| format!("cannot write {}: {e}", manifest_path.display()))?;
    Ok(format!("signed {name}@{version} ({digest}) with {} into {}\n", key.key_id, manifest_path.display()))
}

/// `cf-host plugins push`: the component and its manifest (`<file>.json`) to a registry.
async fn push(file: &std::path::Path, reference: &str, insecure: bool) -> Result<String, String> {
    use cf_host::registry::{identity::Manifest, oci};
    let wasm = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let manifest_path = file.with_extension("json");
    let manifest = if manifest_path.exists() { Some(Manifest::load(&manifest_path)?) } else { None };
    let parsed = oci::parse_reference(reference).map_err(|e| e.to_string())?;
    let insecure = if insecure { vec![parsed.registry().to_string()] } else { Vec::new() };
    let pushed = oci::push(reference, wasm, manifest.as_ref(), &oci::OciOptions::from_env(insecure)).await.map_err(|e| e.to_string())?;
    Ok(format!(
        "pushed {reference}\n  manifest {}\n  component {}\n  {}\n",
        pushed.manifest_digest, pushed.component_digest, pushed.manifest_url
    ))
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("cf-host"))
}

async fn listen(addr: Option<&str>, port: u16) -> Result<tokio::net::TcpListener, String> {
    match addr {
        Some(addr) => {
            let addr = if addr.contains(':') && !addr.starts_with('[') { format!("[{addr}]") } else { addr.to_string() };
            tokio::net::TcpListener::bind(format!("{addr}:{port}")).await.map_err(|e| format!("cannot listen on {addr}:{port}: {e}"))
        }
        None => match tokio::net::TcpListener::bind(("::", port)).await {
            Ok(l) => Ok(l),
            // No IPv6 on this machine: all IPv4 interfaces.
            Err(_) => tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| format!("cannot listen on port {port}: {e}")),
        },
    }
}

async fn serve(o: ServeArgs) -> Result<ExitCode, String> {
    if let Some(c) = &o.config {
        tracing::info!(config = %c.display(), "configuration file applied");
    }
    let runtime_config = RuntimeConfig { max_concurrency: o.max_concurrency, tenancy: load_tenancy(o.tenants.as_deref())? };
    let cache_dir = if o.no_cache { None } else { o.cache_dir.clone().or_else(default_cache_dir) };
    let oci = cf_host::registry::oci::OciOptions::from_env(o.insecure_registries.clone());
    use cf_host::grpc::{PluginService, ServeConfig};
    use cf_host::registry::{cache::PrecompileCache, identity::Manifest, Registry};
    let runtime = Arc::new(Runtime::new(runtime_config)?);
    let cache = cache_dir.map(PrecompileCache::new).transpose()?;
    let trust = match &o.trusted_keys {
        Some(path) => cf_host::registry::signature::TrustPolicy::load(path, o.require_signatures)?,
        None => cf_host::registry::signature::TrustPolicy::default(),
    };
    let registry = Arc::new(Registry::new(runtime, cache).with_trust(trust));
    let mut name = o.name.clone();
    if let Some(path) = &o.plugin {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let unnamed = matches!(cf_host::registry::identity::embedded(&bytes), Ok(None)) && !path.with_extension("json").exists();
        let report = if unnamed {
            // A component without an embedded identity or manifest: named after its file.
            let stem = path.file_stem().map(|s| s.to_string_lossy().replace(['.', ' '], "_")).unwrap_or_else(|| "plugin".into());
            let manifest = Manifest { alias: Some(stem), version: Some("0.0.0".into()), ..Manifest::default() };
            registry.load_bytes(&path.display().to_string(), &bytes, Some(manifest), None, true)
        } else {
            registry.load_file(path, None, true)
        }
        .map_err(|e| e.to_string())?;
        name.get_or_insert(report.name);
    }
    for (i, reference) in o.plugin_oci.iter().enumerate() {
        let pulled = cf_host::registry::oci::pull(reference, &oci).await.map_err(|e| e.to_string())?;
        let source = pulled.source();
        let report =
            registry.load_bytes(&source, &pulled.wasm, pulled.manifest, None, o.plugin.is_none() && i == 0).map_err(|e| e.to_string())?;
        println!("loaded {}@{} from {source}", report.name, report.version);
        name.get_or_insert(report.name);
    }
    let name = name.unwrap_or_else(|| "nutanix".into());
    let _watch = match &o.plugins_dir {
        Some(dir) => Some(cf_host::registry::watch::watch(registry.clone(), dir.clone()).await?),
        None => None,
    };
    let listener = listen(o.bind.as_deref(), o.port).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let config = ServeConfig {
        protocol: o.protocol,
        default_endpoint_port: o.default_endpoint_port,
        drain_timeout: std::time::Duration::from_secs(o.drain_timeout),
        ..ServeConfig::default()
    };
    let mut service = PluginService::new(registry.clone(), name.clone(), config);
    if let Some(url) = &o.webhook_url {
        service = service.with_webhook(webhook(url)?);
    }
    if let Some(p) = o.store {
        service = service.with_state(Arc::new(Store::open(&p)?));
    }
    let live = registry.live(&name).map_or_else(|| "(no version yet)".to_string(), |v| v.to_string());
    println!("cf-host serving {name}@{live} on {addr} (gRPC, plaintext h2c)");
    let admin = match o.admin_bind {
        Some(bind) => {
            let token = std::env::var("CF_HOST_ADMIN_TOKEN").map_err(|_| "--admin-bind needs CF_HOST_ADMIN_TOKEN".to_string())?;
            let l = tokio::net::TcpListener::bind(&bind).await.map_err(|e| format!("cannot listen on {bind}: {e}"))?;
            println!("admin API on {}", l.local_addr().map_err(|e| e.to_string())?);
            let (registry, stop) = (registry.clone(), stopped(stop_rx.clone()));
            let oci = oci.clone();
            Some(tokio::spawn(async move { cf_host::admin::serve(l, registry, &token, oci, stop).await }))
        }
        None => None,
    };
    if let Some(bind) = o.metrics_bind {
        let l = tokio::net::TcpListener::bind(&bind).await.map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        println!("metrics on {}", l.local_addr().map_err(|e| e.to_string())?);
        let (registry, stop) = (registry.clone(), stopped(stop_rx.clone()));
        tokio::spawn(async move {
            if let Err(e) = cf_host::admin::serve_metrics(l, registry, stop).await {
                tracing::error!("{e}");
            }
        });
    }
    cf_host::grpc::serve(listener, service, stopped(stop_rx)).await?;
    if let Some(a) = admin {
        a.await.map_err(|e| e.to_string())??;
    }
    println!("cf-host stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM (how Kubernetes stops a plugin container).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn collect_with_progress(
    runtime: &Runtime,
    plugin: &cf_host::Plugin,
    store: Arc<Store>,
    spec: JobSpec,
) -> Result<JobReport, String> {
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

fn print_report(report: &JobReport, plugin: &cf_host::Plugin, store: &Path, out: Option<&Path>) {
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

fn exit_code(report: &JobReport) -> ExitCode {
    if report.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The guest built by `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.
fn default_plugin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("wasm32-wasip2").join("release").join("guest_nutanix.wasm")
}

#[cfg(feature = "simulator")]
async fn demo(vms: usize, plugin: Option<PathBuf>, store: Option<PathBuf>) -> Result<ExitCode, String> {
    use prism_sim::{estate::EstateConfig, SimConfig, Simulator};
    let plugin_path = plugin.unwrap_or_else(default_plugin);
    if !plugin_path.exists() {
        return Err(format!(
            "guest component not found at {}; build it with: cargo build -p guest-nutanix --target wasm32-wasip2 --release",
            plugin_path.display()
        ));
    }
    let store_path = match store {
        Some(p) => p,
        None => {
            let p = std::env::temp_dir().join("cf-host-demo").join("store.db");
            for suffix in ["", "-wal", "-shm"] {
                let f = PathBuf::from(format!("{}{suffix}", p.display()));
                if f.exists() {
                    std::fs::remove_file(&f).map_err(|e| format!("cannot reset demo store {}: {e}", f.display()))?;
                }
            }
            p
        }
    };
    let started = std::time::Instant::now();
    let sim = Simulator::start(SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, v4: true, ..SimConfig::default() })
        .await
        .map_err(|e| format!("cannot start the Prism simulator: {e}"))?;
    println!("Prism Central simulator (test double) on {} with {vms} VMs", sim.url());
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let plugin = runtime.load_file(&plugin_path).map_err(|e| e.to_string())?;
    println!("Loaded {} ({}) in {:.2}s", plugin_path.display(), plugin.digest, started.elapsed().as_secs_f64());
    let store = Arc::new(Store::open(&store_path)?);
    let spec = JobSpec {
        tenant: "demo".into(),
        endpoint: sim.url(),
        secret: sim.secret(),
        options: Value::Object(Default::default()),
        task_options: Value::Object(Default::default()),
        out: None,
        costs: None,
    };
    let report = collect_with_progress(&runtime, &plugin, store.clone(), spec).await?;
    print_report(&report, &plugin, store.path(), None);
    Ok(exit_code(&report))
}

#[cfg(not(feature = "simulator"))]
async fn demo(_: usize, _: Option<PathBuf>, _: Option<PathBuf>) -> Result<ExitCode, String> {
    Err("this cf-host was built without the `simulator` feature; the demo needs it".into())
}
