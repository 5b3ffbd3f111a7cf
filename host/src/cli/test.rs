//! `cf-host test`: a collector against a cassette (no network), or record
//! one; with `--conformance`, the conformance checks.

use super::parse_object;
use cf_host::secret::SecretSource;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The collector component (.wasm).
    plugin: PathBuf,
    /// Cassette directory (holds cassette.json) or file.
    #[arg(long, required_unless_present = "conformance")]
    cassette: Option<PathBuf>,
    /// Check that the component is a conforming collector (world, identity,
    /// init, collect against 404s or --cassette, records, typed errors) and
    /// print a report; exits non-zero if a check fails.
    #[arg(long, conflicts_with_all = ["expect", "golden", "record"])]
    conformance: bool,
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
}

pub async fn run(a: Args) -> Result<ExitCode, String> {
    let Args { plugin, cassette, conformance, expect, golden, update_golden, record, endpoint, secret, options, task_options } = a;
    let options = options.map(|o| parse_object("--options", &o)).transpose()?;
    let task_options = task_options.map(|o| parse_object("--task-options", &o)).transpose()?;
    if conformance {
        let args = cf_host::testing::conformance::ConformanceArgs { plugin, cassette, options, task_options };
        let report = cf_host::testing::conformance::run(&args).await.map_err(|e| e.to_string())?;
        print!("{}", report.render());
        return Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let cassette = cassette.ok_or("--cassette is required (or --conformance)")?;
    let record = match (record, endpoint, secret) {
        (true, Some(endpoint), Some(secret)) => {
            let url = url::Url::parse(&endpoint).map_err(|e| format!("--endpoint {endpoint:?} is not a URL: {e}"))?;
            Some((url, SecretSource::parse(&secret).load().map_err(|e| e.to_string())?))
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
        options,
        task_options,
    };
    let passed = cf_host::testing::cli::run(args).await?;
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
