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
}

impl Server {
    /// Starts `cf-host serve --bind 127.0.0.1 --port 0` and reads the bound
    /// address from its first line of output.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// [`Server::start`] with more flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--no-cache"])
            .args(extra)
            .arg("--plugin")
            .arg(guest())
            .env("CF_HOST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cf-host starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read cf-host output");
        let addr = line
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("cf-host serve did not report its address; stdout: {line:?}; stderr: {err}");
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::stderr()));
        }
        Server { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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
