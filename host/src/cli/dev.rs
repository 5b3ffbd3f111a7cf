//! `cf-host dev [DIR]`: the edit → result loop of a collector project
//! (the logic is `cf_host::dev`).

use super::parse_object;
use cf_host::dev::{Against, DevArgs};
use cf_host::scaffold::{self, Lang};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The collector project (made by `cf-host new`).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Its language: rust, python or ts (default: from its files).
    #[arg(long)]
    lang: Option<String>,
    /// Build command line (run by `sh -c` in DIR) instead of the language's.
    #[arg(long)]
    build: Option<String>,
    /// The component the build makes, relative to DIR (with --build).
    #[arg(long)]
    component: Option<PathBuf>,
    /// Run against this cassette (default: DIR/cassette).
    #[arg(long, conflicts_with = "sim")]
    cassette: Option<PathBuf>,
    /// Run against the built-in Prism Central simulator (a test double).
    #[arg(long)]
    sim: bool,
    /// VMs of the simulated Prism Central.
    #[arg(long, default_value_t = 20, requires = "sim")]
    vms: usize,
    /// Collector options (JSON object); default: the cassette's.
    #[arg(long)]
    options: Option<String>,
    /// Task options (JSON object); default: the cassette's.
    #[arg(long)]
    task_options: Option<String>,
    /// Compare the records with this golden NDJSON file after each run.
    #[arg(long)]
    golden: Option<PathBuf>,
    /// Build and run once, then exit (non-zero when it failed).
    #[arg(long)]
    once: bool,
}

pub async fn run(a: Args) -> Result<ExitCode, String> {
    let lang = a.lang.map(|l| l.parse::<Lang>()).transpose().map_err(|e: scaffold::ScaffoldError| e.to_string())?;
    let against = match (a.cassette, a.sim) {
        (Some(c), _) => Some(Against::Cassette(c)),
        (None, true) => Some(Against::Simulator { vms: a.vms }),
        (None, false) => None,
    };
    let args = DevArgs {
        dir: a.dir,
        lang,
        build: a.build,
        component: a.component,
        against,
        options: a.options.map(|o| parse_object("--options", &o)).transpose()?,
        task_options: a.task_options.map(|o| parse_object("--task-options", &o)).transpose()?,
        golden: a.golden,
        once: a.once,
    };
    let passed = cf_host::dev::run(args, super::shutdown_signal()).await.map_err(|e| e.to_string())?;
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
