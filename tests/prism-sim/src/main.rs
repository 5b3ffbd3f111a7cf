//! `prism-sim`: run the Prism Central simulator (a test double) standalone.
//!
//! `prism-sim [--port 9440] [--vms 200] [--clusters 3]` serves plain HTTP on
//! 127.0.0.1 until Ctrl-C. Credentials: admin / nutanix/4u.

use prism_sim::{estate::EstateConfig, serve, SimConfig, SimState};
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
        println!("usage: prism-sim [--port 9440] [--vms 200] [--clusters 3]");
        return;
    }
    let run = async {
        let port = arg(&args, "--port")?.unwrap_or(9440);
        let mut estate = EstateConfig::default();
        estate.vms = arg(&args, "--vms")?.unwrap_or(estate.vms);
        estate.clusters = arg(&args, "--clusters")?.unwrap_or(estate.clusters).max(1);
        let config = SimConfig { estate, ..SimConfig::default() };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        println!(
            "prism-sim (simulator) on http://{} as {} / {}",
            listener.local_addr().map_err(|e| e.to_string())?,
            config.username,
            config.password
        );
        let state = Arc::new(SimState::new(config));
        serve(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
    };
    if let Err(e) = run.await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
