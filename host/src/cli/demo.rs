//! `cf-host demo`: a simulated Prism Central collected through the wasm
//! guest into an embedded store; needs nothing external.

use super::collect::{collect_with_progress, exit_code, print_report};
use super::default_plugin;
use cf_host::job::JobSpec;
use cf_host::store::Store;
use cf_host::{Runtime, RuntimeConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Simulated VMs.
    #[arg(long, default_value_t = 200)]
    vms: usize,
    /// The collector component; defaults to the workspace's release build.
    #[arg(long, env = "CF_HOST_PLUGIN")]
    plugin: Option<PathBuf>,
    /// The embedded store; defaults to a fresh file in the temp directory.
    #[arg(long)]
    store: Option<PathBuf>,
}

pub async fn run(a: Args) -> Result<ExitCode, String> {
    demo(a.vms, a.plugin, a.store).await
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
