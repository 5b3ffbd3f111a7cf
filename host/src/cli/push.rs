//! `cf-host run` (push mode) and `cf-host register`.

use super::shutdown_signal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The push configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Run the tenants now, deliver, and exit (non-zero when a collection
    /// failed or records are left spooled). With --database: each tenant
    /// runs under its fleet lease (waiting while another replica holds it),
    /// outside the schedule (no slot is marked done).
    #[arg(long)]
    once: bool,
    /// Only these tenants (with --once; repeatable).
    #[arg(long = "tenant", requires = "once")]
    tenants: Vec<String>,
    /// Seconds between scheduler checks.
    #[arg(long, default_value_t = 60)]
    tick: u64,
    /// Fleet mode: share the schedule (each tenant's slot runs once across
    /// the replicas) and the tenants' run caps with the other `cf-host run`
    /// replicas in this PostgreSQL database (`postgres://…` or
    /// `host=/socket/dir user=… dbname=…`; overrides the file's `database`;
    /// TLS as libpq's `sslmode` and `sslrootcert`, as for `serve`).
    /// Give it through the environment: it may hold a password.
    #[arg(long, env = "CF_HOST_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

#[derive(clap::Args)]
pub struct RunsArgs {
    /// The push configuration (TOML): its store, or its `database`.
    #[arg(long)]
    config: PathBuf,
    /// Only this tenant's runs.
    #[arg(long)]
    tenant: Option<String>,
    /// How many runs (at most 1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Fleet mode: the replicas' PostgreSQL database (as `cf-host run`).
    #[arg(long, env = "CF_HOST_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

#[derive(clap::Args)]
pub struct RegisterArgs {
    /// The push configuration (TOML) with a [register] section.
    #[arg(long)]
    config: PathBuf,
}

pub async fn run(a: RunArgs) -> Result<ExitCode, String> {
    let mut config = cf_host::push_config::RunConfig::load(&a.config)?;
    if a.database.is_some() {
        config.database = a.database;
    }
    let runner = cf_host::push_config::Runner::new(config).await?;
    if a.once {
        let results = runner.run_all(&a.tenants).await?;
        print!("{}", cf_host::push_config::render(&results));
        let ok = results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.complete()));
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let fleet = match &runner.config.database {
        Some(url) => format!(", fleet database {}", cf_host::fleet::describe(url)),
        None => String::new(),
    };
    let store = match &runner.fleet {
        Some(_) => String::new(),
        None => format!(", store {}", runner.config.store.display()),
    };
    eprintln!("cf-host run: {} tenants{store}{fleet}", runner.config.tenants.len());
    runner.serve(std::time::Duration::from_secs(a.tick.max(1)), shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn runs(a: RunsArgs) -> Result<ExitCode, String> {
    let mut config = cf_host::push_config::RunConfig::load(&a.config)?;
    if a.database.is_some() {
        config.database = a.database;
    }
    let log = cf_host::push_config::run_log(&config).await?;
    let runs = tokio::task::spawn_blocking(move || log.runs(a.tenant.as_deref(), a.limit)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string_pretty(&runs).map_err(|e| e.to_string())?);
    Ok(ExitCode::SUCCESS)
}

pub async fn register(a: RegisterArgs) -> Result<ExitCode, String> {
    let config = cf_host::push_config::RunConfig::load(&a.config)?;
    let what = config.register.as_ref().ok_or("the configuration has no [register] section")?;
    let connector = cf_host::cloudforet::client::Connector::new(config.connector_config().await?)?;
    for line in cf_host::push_config::register(&connector, what).await? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
