//! Shared fixtures for the end-to-end tests (`tests/tests/*.rs`).
//!
//! # Layout
//!
//! - `fixtures` (also included by `host/tests/common`): what both suites
//!   share: component paths, one tokio runtime, temp dirs, Python venvs.
//! - this module: the host-level fixtures: the host runtime with the real
//!   guest loaded (compiled once, [`host`]), run contexts through the
//!   production builder ([`sim_context`]), collections gathered
//!   ([`collect_all`]), a `cf-host serve` in process ([`serve`]) and its
//!   metrics, the admin API's configuration, a real OCI registry.
//! - [`postgres`]: a real PostgreSQL server on a Unix socket (fleet mode).
//!
//! `host/tests` holds the tests of the `cf-host` binary and its servers
//! seen from outside (CLI, soak, admin); `tests/tests` the end-to-end
//! tests of the runtime with real guests, simulators and CloudForet's own
//! packages.
//!
//! The components must be built first:
//! `cargo build -p guest-nutanix -p cf-adversary -p cf-legacy-guest --target wasm32-wasip2 --release`
//! (the README's test command does it).

use cf_host::error::RunError;
use cf_host::record::Record;
use cf_host::runtime::CollectReport;
use cf_host::{Plugin, RunContext, Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::sync::OnceLock;

mod fixtures;
pub mod kinds;
pub mod postgres;

pub use fixtures::*;

/// The host runtime with the guest loaded.
pub fn host() -> &'static (Runtime, Plugin) {
    static HOST: OnceLock<(Runtime, Plugin)> = OnceLock::new();
    HOST.get_or_init(|| {
        let rt = Runtime::new(RuntimeConfig::default()).expect("host runtime");
        let plugin = rt.load_file(&guest_wasm()).expect("guest loads");
        (rt, plugin)
    })
}

/// A run context of tenant `t1` for a collection of `sim`: the simulator's
/// endpoint is the only grant and joins its secret (built through the
/// production builder; add options, state, ... before `build`).
pub fn sim_context(sim: &prism_sim::Simulator) -> cf_host::RunContextBuilder {
    host().0.context("t1").endpoint(sim.url()).secret(sim.secret())
}

/// The admin API's settings with one admin token.
pub fn admin_config(token: &str) -> cf_host::admin::AdminConfig {
    cf_host::admin::AdminConfig::new(cf_host::admin::auth::AuthPolicy::single(token).expect("a token of 16+ characters"))
}

/// Runs `collect` and gathers every record the run emitted.
pub async fn collect_all(
    runtime: &Runtime,
    plugin: &Plugin,
    ctx: &RunContext,
    task: &serde_json::Value,
) -> (Result<CollectReport, RunError>, Vec<Record>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(8);
    let drain = async {
        let mut all = Vec::new();
        while let Some(b) = rx.recv().await {
            all.extend(b);
        }
        all
    };
    tokio::join!(runtime.collect(plugin, ctx, task, tx), drain)
}

/// A test guest's report, which it returns as its collector error message.
pub fn reported(r: &Result<CollectReport, RunError>) -> String {
    match r {
        Err(RunError::Collector(_, m)) => m.clone(),
        other => panic!("expected the guest's report, got {other:?}"),
    }
}

/// A real OCI registry (Debian's `docker-registry`, the CNCF distribution
/// registry) on a loopback port, storing into a temp dir; killed on drop.
/// With `users`, it requires HTTP Basic auth from an htpasswd file.
pub struct OciRegistry {
    child: std::process::Child,
    /// `127.0.0.1:<port>`, as used in references.
    pub host: String,
}

impl OciRegistry {
    pub fn start(name: &str, users: &[(&str, &str)]) -> OciRegistry {
        let bin = ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("docker-registry is missing: install the Debian package docker-registry (the README's test command does)");
        let dir = temp_dir(name);
        // A free port: the registry takes its address from the config file.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.join("data").display()
        );
        if !users.is_empty() {
            let htpasswd: String = users
                .iter()
                .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 5).expect("bcrypt")))
                .collect();
            std::fs::write(dir.join("htpasswd"), htpasswd).expect("htpasswd");
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: cf-tests\n    path: {}\n", dir.join("htpasswd").display()));
        }
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).expect("log file"))
            .spawn()
            .expect("start docker-registry");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "docker-registry did not listen on {host}; see {}", dir.display());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        OciRegistry { child, host }
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `cf-host serve` running in this process ([`cf_host::serve::run`]) on
/// loopback ports; stopped when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>` of the gRPC server.
    pub grpc: String,
    pub admin: Option<String>,
    pub metrics: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts [`cf_host::serve::run`] with `options`, an admin API when
/// `options.admin` is set, and a metrics endpoint; answers once it listens.
pub async fn serve(options: cf_host::serve::ServeOptions) -> Served {
    let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port") };
    let url = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().expect("bound"));
    let grpc = bind().await;
    let admin = match options.admin.is_some() {
        true => Some(bind().await),
        false => None,
    };
    let metrics = bind().await;
    let mut served = Served { grpc: url(&grpc), admin: admin.as_ref().map(url), metrics: Some(url(&metrics)), stop: None };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = cf_host::serve::Listeners { grpc, admin, metrics: Some(metrics) };
    tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        let r = cf_host::serve::run(options, listeners, stop, move |_| {
            let _ = ready_tx.send(());
        })
        .await;
        if let Err(e) = r {
            eprintln!("serve failed: {e}");
        }
    });
    ready_rx.await.expect("the server starts");
    served.stop = Some(stop_tx);
    served
}

/// `GET /metrics` of a served host, and one series' value (0 when absent).
pub async fn metric(served: &Served, series: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", served.metrics.as_deref().expect("metrics endpoint")))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}
