//! The `cf-host` command line: parses, then dispatches to one module per
//! command (`cli/`).

mod cli;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

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
enum Cmd {
    /// Run one collection in a sandbox into the embedded store.
    Collect(cli::collect::Args),
    /// Push mode: collect the configured tenants on their schedule and write
    /// the results into CloudForet through its APIs (see cf-host.push.example.toml).
    Run(cli::push::RunArgs),
    /// Publish the collector in CloudForet: its secret schema (identity
    /// Schema) and its repository plugin, as `[register]` in the push
    /// configuration says. Idempotent: creates, updates or leaves alone.
    Register(cli::push::RegisterArgs),
    /// Push mode's recorded runs, newest first, with their error resources
    /// (JSON). With --database: every replica's runs.
    Runs(cli::push::RunsArgs),
    /// Serve CloudForet's collector plugin protocol (gRPC) for a component.
    #[command(args_override_self = true)]
    Serve(cli::serve::Args),
    /// Manage the plugin registry of a running `cf-host serve` (admin API).
    Plugins(cli::plugins::Args),
    /// Test a collector component against a cassette (no network), or record
    /// one; or check its conformance (`--conformance`).
    ///
    /// Prints per-type counts, errors, requests and what the cassette lacked;
    /// exits non-zero when the run fails, a request is not in the cassette,
    /// an expectation is not met or the output differs from the golden file.
    Test(cli::test::Args),
    /// Create a collector project (rust, python or ts) that builds and passes
    /// its first `cf-host test`.
    New(cli::new::Args),
    /// Develop a collector: build it, run it against a cassette or the
    /// Prism simulator and print the result; again after every edit.
    ///
    /// Watches DIR (not target/ or node_modules/), rebuilds after each
    /// edit, swaps the new component in, and prints records by type,
    /// errors and the golden file's diff. A failed build prints the
    /// compiler's errors and keeps the last good component. `--once`:
    /// build and run once, then exit.
    Dev(cli::dev::Args),
    /// Measure the host: instantiation, concurrent sandboxes, end-to-end collections.
    Bench(cli::bench::Args),
    /// Collect a simulated Prism Central through the wasm guest; needs nothing external.
    Demo(cli::demo::Args),
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
    let code = match rt.block_on(dispatch(cli.cmd)) {
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

async fn dispatch(cmd: Cmd) -> Result<ExitCode, String> {
    match cmd {
        Cmd::Collect(a) => cli::collect::run(a).await,
        Cmd::Run(a) => cli::push::run(a).await,
        Cmd::Register(a) => cli::push::register(a).await,
        Cmd::Runs(a) => cli::push::runs(a).await,
        Cmd::Serve(a) => cli::serve::run(a).await,
        Cmd::Plugins(a) => cli::plugins::run(a).await,
        Cmd::Test(a) => cli::test::run(a).await,
        Cmd::New(a) => cli::new::run(a).await,
        Cmd::Dev(a) => cli::dev::run(a).await,
        Cmd::Bench(a) => cli::bench::run(a).await,
        Cmd::Demo(a) => cli::demo::run(a).await,
    }
}
