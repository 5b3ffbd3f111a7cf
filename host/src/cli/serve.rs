//! `cf-host serve`: the flags, turned into [`cf_host::serve::ServeOptions`]
//! and listeners, then [`cf_host::serve::run`] until SIGTERM.

use super::{load_tenancy, shutdown_signal, webhook};
use cf_host::admin::auth::AuthPolicy;
use cf_host::admin::AdminConfig;
use cf_host::serve::{Listeners, ServeOptions};
use cf_host::RuntimeConfig;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// A TOML file of these options (keys are the flag names, e.g.
    /// `drain-timeout = 60`; see cf-host.example.toml). The command line and
    /// environment variables override it.
    #[arg(long, env = "CF_HOST_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// Needs CF_HOST_ADMIN_TOKEN (16+ characters) or --admin-policy.
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
    /// Fleet mode: share guest state, tenant run caps and the tenant key
    /// with the other replicas in this PostgreSQL database
    /// (`postgres://user:password@host:port/db`, or `host=/socket/dir
    /// user=... dbname=...`). TLS as libpq's `sslmode` (default `prefer`;
    /// `require`, `verify-ca`, `verify-full` with `sslrootcert=<CA PEM>`).
    /// Give it through the environment: it may hold a password.
    #[arg(long, env = "CF_HOST_DATABASE", hide_env_values = true, conflicts_with = "store")]
    database: Option<String>,
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
    /// Connections open at once on each server (gRPC, admin, metrics);
    /// past it, newcomers wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a connection with no call in flight may stay quiet before it
    /// is closed.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Largest gRPC request (options, secret, task options), in MiB; larger
    /// is an invalid argument.
    #[arg(long, default_value_t = 4)]
    max_message_mb: usize,
    /// Seconds a collect stream may go unread before its run is cancelled
    /// and its sandbox released.
    #[arg(long, default_value_t = 60)]
    stream_stall_timeout: u64,
    /// Calls of one client address running at once (0: three quarters of
    /// the sandbox pool); more wait, up to the peer queue.
    #[arg(long, default_value_t = 0)]
    max_calls_per_peer: usize,
    /// Calls of one client address waiting before more are refused.
    #[arg(long, default_value_t = 256)]
    peer_queue: usize,
    /// Admin API tokens with roles and tenant scopes (JSON; see the README),
    /// beside CF_HOST_ADMIN_TOKEN.
    #[arg(long, env = "CF_HOST_ADMIN_POLICY")]
    admin_policy: Option<PathBuf>,
    /// Admin API requests per token per minute.
    #[arg(long, default_value_t = 600)]
    admin_rate_limit: u32,
    /// Largest component accepted by upload or OCI pull, in MiB.
    #[arg(long, default_value_t = 64)]
    max_upload_mb: u64,
    /// Uploads (and OCI pulls) at once through the admin API.
    #[arg(long, default_value_t = 2)]
    max_concurrent_uploads: usize,
    /// Networks (CIDR) a registry may resolve into although they are
    /// private, loopback or link-local (repeatable); others are refused.
    #[arg(long = "registry-allow-network", env = "CF_HOST_REGISTRY_ALLOW_NETWORKS", value_delimiter = ',', value_name = "CIDR")]
    registry_allow_networks: Vec<String>,
    /// Networks (CIDR) a webhook registered through the admin API may
    /// reach although they are private, loopback or link-local
    /// (repeatable); others are refused.
    #[arg(long = "webhook-allow-network", env = "CF_HOST_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',', value_name = "CIDR")]
    webhook_allow_networks: Vec<String>,
    /// The CloudForet release calling this plugin: 2, 1.12, or auto (a
    /// caller sending `token: NO_TOKEN`, as 2.x's inventory does, gets the
    /// 2.x form; others the form both read).
    #[arg(long, env = "CF_HOST_CLOUDFORET", value_enum, default_value_t = cf_host::grpc::convert::CloudForet::Auto)]
    cloudforet: cf_host::grpc::convert::CloudForet,
    /// Take each call's tenant from its `x_domain_id` metadata, for a
    /// trusted gateway in front that sets it. Without it the tenant is
    /// derived from the call's secret (endpoint, principal, credential).
    #[arg(long)]
    trust_tenant_header: bool,
    /// Follow symbolic links in the plugins directory (off: only regular
    /// files are read).
    #[arg(long)]
    plugins_follow_symlinks: bool,
    /// Keep each failed collect, verify or data source get_data run's HTTP
    /// exchange here as a redacted cassette (`DIR/<time>-<tenant>-<plugin>-<run>/cassette.json`)
    /// that `cf-host test` replays. Successful runs leave nothing.
    #[arg(long, env = "CF_HOST_RECORD_FAILURES", value_name = "DIR")]
    record_failures: Option<PathBuf>,
    /// Recorded failures kept; the oldest beyond it are deleted.
    #[arg(long, default_value_t = cf_host::grpc::failures::DEFAULT_MAX_KEPT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    record_failures_max: u64,
    /// MiB of one run's exchanges held in memory while failures are
    /// recorded; past it the rest is dropped and the cassette says
    /// `truncated`.
    #[arg(long, default_value_t = cf_host::grpc::failures::DEFAULT_MAX_RUN_BYTES >> 20, value_parser = clap::value_parser!(u64).range(1..))]
    record_failures_run_mb: u64,
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

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn networks(flag: &str, cidrs: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    cidrs.iter().map(|n| n.parse::<ipnet::IpNet>().map_err(|e| format!("{flag} {n:?}: {e}"))).collect()
}

/// The admin API's settings: tokens from CF_HOST_ADMIN_TOKEN and the
/// policy file.
fn admin_config(o: &Args) -> Result<AdminConfig, String> {
    let mut auth = match std::env::var("CF_HOST_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => AuthPolicy::single(&t)?,
        None => AuthPolicy::default(),
    };
    if let Some(p) = &o.admin_policy {
        auth = auth.load_file(p)?;
    }
    if auth.is_empty() {
        return Err("--admin-bind needs CF_HOST_ADMIN_TOKEN or --admin-policy".into());
    }
    let mut c = AdminConfig::new(auth).allow_webhook_networks(networks("--webhook-allow-network", &o.webhook_allow_networks)?);
    c.rate_limit = o.admin_rate_limit;
    c.max_upload_bytes = o.max_upload_mb.saturating_mul(1 << 20);
    c.max_concurrent_uploads = o.max_concurrent_uploads;
    Ok(c)
}

pub async fn run(o: Args) -> Result<ExitCode, String> {
    if let Some(c) = &o.config {
        tracing::info!(config = %c.display(), "configuration file applied");
    }
    let conn = cf_host::net::ConnLimits {
        max_connections: o.max_connections,
        idle_timeout: Duration::from_secs(o.idle_timeout.max(1)),
        ..cf_host::net::ConnLimits::default()
    };
    let mut oci = cf_host::registry::oci::OciOptions::from_env(o.insecure_registries.clone());
    oci.allow_networks = networks("--registry-allow-network", &o.registry_allow_networks)?;
    oci.max_bytes = o.max_upload_mb.saturating_mul(1 << 20);
    let trust = match &o.trusted_keys {
        Some(path) => cf_host::registry::signature::TrustPolicy::load(path, o.require_signatures)?,
        None => cf_host::registry::signature::TrustPolicy::default(),
    };
    let admin = o.admin_bind.is_some().then(|| admin_config(&o)).transpose()?;
    let options = ServeOptions {
        runtime: RuntimeConfig { max_concurrency: o.max_concurrency, tenancy: load_tenancy(o.tenants.as_deref())?, leases: None },
        grpc: cf_host::grpc::ServeConfig {
            protocol: o.protocol,
            default_endpoint_port: o.default_endpoint_port,
            drain_timeout: Duration::from_secs(o.drain_timeout),
            stall_timeout: Duration::from_secs(o.stream_stall_timeout.max(1)),
            max_calls_per_peer: o.max_calls_per_peer,
            peer_queue: o.peer_queue,
            max_message_bytes: o.max_message_mb.max(1) << 20,
            conn: conn.clone(),
            cloudforet: o.cloudforet,
            trust_tenant_header: o.trust_tenant_header,
            record_failures: o.record_failures.clone().map(|dir| cf_host::grpc::failures::RecordFailures {
                dir,
                max_kept: usize::try_from(o.record_failures_max).unwrap_or(usize::MAX),
                max_run_bytes: o.record_failures_run_mb.saturating_mul(1 << 20),
            }),
            ..cf_host::grpc::ServeConfig::default()
        },
        plugin: o.plugin.clone(),
        plugins_dir: o.plugins_dir.clone().map(|d| cf_host::registry::watch::WatchedDir { path: d, follow_symlinks: o.plugins_follow_symlinks, max_bytes: o.max_upload_mb.saturating_mul(1 << 20) }),
        plugin_oci: o.plugin_oci.clone(),
        name: o.name.clone(),
        cache_dir: if o.no_cache { None } else { o.cache_dir.clone().or_else(default_cache_dir) },
        trust,
        oci,
        webhook: o.webhook_url.as_deref().map(webhook).transpose()?,
        store: o.store.clone(),
        database: o.database.clone(),
        admin,
        conn,
    };
    let listeners = Listeners {
        grpc: listen(o.bind.as_deref(), o.port).await?,
        admin: match &o.admin_bind {
            Some(a) => Some(bind(a).await?),
            None => None,
        },
        metrics: match &o.metrics_bind {
            Some(a) => Some(bind(a).await?),
            None => None,
        },
    };
    cf_host::serve::run(options, listeners, shutdown_signal(), |ready| {
        for p in &ready.pulled {
            println!("loaded {p}");
        }
        let live = ready.live.as_deref().unwrap_or("(no version yet)");
        println!("cf-host serving {}@{live} on {} (gRPC, plaintext h2c)", ready.name, ready.grpc);
        if let Some(a) = ready.admin {
            println!("admin API on {a}");
        }
        if let Some(m) = ready.metrics {
            println!("metrics on {m}");
        }
    })
    .await?;
    println!("cf-host stopped");
    Ok(ExitCode::SUCCESS)
}
