//! Shared by the gRPC integration tests: the real `cf-host serve` process on
//! a loopback port, the Prism Central simulator (a test double) in-process,
//! and the CloudForet Python client environment.

#![expect(dead_code, reason = "each test binary uses a different part of these helpers")]

use prism_sim::{SimConfig, Simulator};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

#[path = "../../../tests/src/fixtures.rs"]
mod fixtures;

pub use fixtures::*;

/// The guest component (guest-nutanix's release build).
pub fn guest() -> PathBuf {
    guest_wasm()
}

/// One tokio runtime per test binary, for the simulators.
pub fn rt() -> &'static tokio::runtime::Runtime {
    runtime()
}

/// A simulator on `127.0.0.1:<free port>` (stopped when dropped).
pub fn simulator(config: SimConfig) -> Simulator {
    rt().block_on(Simulator::start(config)).expect("simulator starts")
}

/// `cf-host serve` running as a child process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The lines it printed while starting (serving, admin API, metrics).
    pub lines: Vec<String>,
    /// `http://host:port` of the admin API, when started with `--admin-bind`.
    pub admin: Option<String>,
    /// `http://host:port` of the metrics endpoint, with `--metrics-bind`.
    pub metrics: Option<String>,
}

impl Server {
    /// The admin API's token of every test server.
    pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

    /// `cf-host serve --bind 127.0.0.1 --port 0` for the guest.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// [`Server::start`] with more flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let guest = guest();
        let mut args = extra.to_vec();
        args.extend(["--plugin", guest.to_str().expect("a UTF-8 path")]);
        Server::spawn(&args)
    }

    /// `cf-host serve --bind 127.0.0.1 --port 0 --no-cache` with `args`;
    /// reads what it prints while starting: the serving line, then one line
    /// for each of `--admin-bind` and `--metrics-bind`.
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--no-cache"])
            .args(args)
            .env("CF_HOST_LOG", "warn")
            .env("CF_HOST_ADMIN_TOKEN", Server::ADMIN_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cf-host starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let extra = args.iter().filter(|a| ["--admin-bind", "--metrics-bind"].contains(a)).count();
        let mut lines = Vec::new();
        let mut read = |lines: &mut Vec<String>| {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).unwrap_or(0);
            lines.push(line);
            n > 0
        };
        while read(&mut lines) && !lines.last().is_some_and(|l| l.starts_with("cf-host serving")) {}
        for _ in 0..extra {
            read(&mut lines);
        }
        let after = |prefix: &str| {
            lines.iter().find(|l| l.starts_with(prefix)).and_then(|l| l.trim().rsplit(' ').next()).map(|a| format!("http://{a}"))
        };
        let serving = lines.iter().find(|l| l.starts_with("cf-host serving")).cloned().unwrap_or_default();
        let addr = serving.split(" on ").nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("cf-host serve did not report its address; stdout: {lines:?}; stderr: {err}");
        };
        let (admin, metrics) = (after("admin API on"), after("metrics on"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::stderr()));
        }
        Server { child, addr, lines, admin, metrics }
    }

    pub fn endpoint(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `cf-host plugins --admin <this server's admin API> ARGS`.
    pub fn plugins(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["plugins", "--admin", self.admin.as_deref().expect("started with --admin-bind")])
            .args(args)
            .env("CF_HOST_ADMIN_TOKEN", Server::ADMIN_TOKEN)
            .output()
            .expect("cf-host plugins runs")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter with CloudForet's packages (spaceone-core,
/// spaceone-api, grpcio, protobuf 3.x; see tests/python/requirements.txt).
///
/// `CF_HOST_PYTHON` names one; otherwise a venv is created once under the
/// target directory from PyPI and reused while the requirements are
/// unchanged.
pub fn python() -> PathBuf {
    match std::env::var_os("CF_HOST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => python_venv("cf-py-venv", "requirements.txt"),
    }
}

/// Runs tests/python/cf_client.py against `endpoint` with `calls`; returns
/// its JSON answer.
pub fn cf_client(endpoint: &str, calls: &serde_json::Value) -> serde_json::Value {
    let out = Command::new(python())
        .arg(python_dir().join("cf_client.py"))
        .arg(endpoint)
        .arg(calls.to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "cf_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cf_client.py printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `cargo build --target wasm32-wasip2 --release` in `dir` (a project of
/// `cf-host new --lang rust`), into `target`: offline first (wit-bindgen
/// is in the registry cache when the workspace's guests were built), then
/// online.
pub fn cargo_build(dir: &std::path::Path, target: &std::path::Path) -> std::process::Output {
    cargo_in(dir, target, &["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
}

/// `cargo ARGS` in `dir` (its own workspace) into `target`, offline first.
pub fn cargo_in(dir: &std::path::Path, target: &std::path::Path, args: &[&str]) -> std::process::Output {
    let build = |offline: bool| {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.args(args).current_dir(dir).env("CARGO_TARGET_DIR", target);
        // Not the outer build's: the project is its own workspace.
        c.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
        if offline {
            c.arg("--offline");
        }
        c.output().expect("cargo runs")
    };
    let o = build(true);
    if o.status.success() { o } else { build(false) }
}

/// `cf-host ARGS` in `dir`, run to its end (log level `error`).
pub fn cf_host_in(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(args)
        .current_dir(dir)
        .env("CF_HOST_LOG", "error")
        .output()
        .expect("cf-host runs")
}

/// A process's stdout, then its stderr.
pub fn output_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `cf-host new NAME --lang rust --dir probe` in `root`, then its first
/// build ([`cargo_build`]) into `target`; answers the project directory
/// and the component.
pub fn new_rust_project(root: &std::path::Path, name: &str, target: &std::path::Path) -> (PathBuf, PathBuf) {
    let o = cf_host_in(&["new", name, "--lang", "rust", "--dir", "probe"], root);
    assert!(o.status.success(), "{}", output_text(&o));
    let dir = root.join("probe");
    let o = cargo_build(&dir, target);
    assert!(o.status.success(), "the scaffold builds: {}", output_text(&o));
    (dir, target.join(format!("wasm32-wasip2/release/{}.wasm", name.replace('-', "_"))))
}
