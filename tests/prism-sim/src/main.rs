//! `prism-sim`: run the Prism Central simulator (a test double) standalone.
//!
//! `prism-sim [--port 9440] [--vms 200] [--clusters 3] [--tls] [--v3-only] [--v4-revisions v4.0,v4.1]
//! [--prism-element] [--latency-ms 0] [--latency-jitter-ms 0] [--rps-limit 0]` serves on
//! 127.0.0.1 until Ctrl-C; plain HTTP, or with `--tls` HTTPS with a
//! certificate from a throwaway CA (its PEM is written to a file and the path
//! printed, for `cf-host collect --ca-bundle`). Credentials: admin / nutanix/4u.

use prism_sim::{estate::EstateConfig, serve, serve_tls, tls::SelfSigned, SimConfig, SimState};
use std::sync::Arc;

fn arg(args: &[String], name: &str) -> Result<Option<usize>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: prism-sim [--port 9440] [--vms 200] [--clusters 3] [--tls] [--v3-only] [--v4-revisions v4.0,v4.1] \
             [--prism-element] [--latency-ms 0] [--latency-jitter-ms 0] [--rps-limit 0]"
        );
        return;
    }
    let run = async {
        let port = arg(&args, "--port")?.unwrap_or(9440);
        let mut estate = EstateConfig::default();
        estate.vms = arg(&args, "--vms")?.unwrap_or(estate.vms);
        estate.clusters = arg(&args, "--clusters")?.unwrap_or(estate.clusters).max(1);
        // The v4 APIs too, unless asked to behave like a pre-pc.2024.3 Prism.
        let mut config = SimConfig { estate, v4: !args.iter().any(|a| a == "--v3-only"), ..SimConfig::default() };
        // A Prism Element managed without Prism Central: its v2.0 API.
        config.prism_element = args.iter().any(|a| a == "--prism-element");
        config.faults.latency_ms = arg(&args, "--latency-ms")?.unwrap_or(0) as u64;
        config.faults.latency_jitter_ms = arg(&args, "--latency-jitter-ms")?.unwrap_or(0) as u64;
        config.faults.rps_limit = arg(&args, "--rps-limit")?.unwrap_or(0) as f64;
        if let Some(i) = args.iter().position(|a| a == "--v4-revisions") {
            let list = args.get(i + 1).ok_or("--v4-revisions needs a list such as v4.0,v4.1")?;
            config.v4_revisions = list.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
            if config.v4_revisions.iter().any(|r| !r.starts_with("v4.")) {
                return Err(format!("--v4-revisions takes revisions such as v4.0,v4.1, not {list}"));
            }
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let tls = if args.iter().any(|a| a == "--tls") { Some(SelfSigned::generate()?) } else { None };
        println!(
            "prism-sim (simulator) on {}://{} as {} / {}",
            if tls.is_some() { "https" } else { "http" },
            listener.local_addr().map_err(|e| e.to_string())?,
            config.username,
            config.password
        );
        if let Some(t) = &tls {
            let path = std::env::temp_dir().join(format!("prism-sim-ca-{port}.pem"));
            std::fs::write(&path, &t.ca_pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("CA certificate: {}", path.display());
        }
        let state = Arc::new(SimState::new(config));
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match &tls {
            Some(t) => serve_tls(listener, t, state, stop).await,
            None => serve(listener, state, stop).await,
        }
        .map_err(|e| e.to_string())
    };
    if let Err(e) = run.await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
