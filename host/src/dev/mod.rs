//! `cf-host dev`: the edit → result loop of a collector project. Builds
//! it, loads the component into a registry (the reload replaces the live
//! build in place: [`Registry::reload_bytes`]), runs `collect` against a
//! cassette or the built-in Prism simulator through the test harness, and
//! prints the result: records by type, errors, requests, the diff against
//! a golden file. Then it watches the sources and does it again after
//! each edit.
//!
//! # Layout
//!
//! - [`project`]: the language, the build command, the component path;
//!   the build itself.
//! - [`watch`]: which changes are edits of the sources; the watcher.
//! - this module: the loop. Bursts of saves are one edit (quiet for
//!   [`DEBOUNCE`]); an edit during a build is followed by one more build
//!   (no edit is lost, no stale result shown); a failed build prints the
//!   compiler's output and the last good build stays loaded; one runtime
//!   and a precompile cache (under the target directory) serve every
//!   reload, so a build seen before (an undo) loads without compiling.

pub mod project;
pub mod watch;

use crate::registry::cache::PrecompileCache;
use crate::registry::watch::DEBOUNCE;
use crate::registry::{Registry, Want};
use crate::runtime::{Plugin, Runtime, RuntimeConfig};
use crate::scaffold::Lang;
use crate::testing::cassette::{Cassette, Replayer};
use crate::testing::{Harness, Outcome};
use project::{BuildError, Built, Project, ProjectError};
use serde_json::Value;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use watch::{SourceWatch, WatchError};

/// Compilations kept in the precompile cache (one per distinct build).
const CACHE_KEEP: usize = 16;
/// Records listed by name after each run.
const LISTED: usize = 20;

/// What `cf-host dev` was asked to do.
#[derive(Clone, Debug)]
pub struct DevArgs {
    /// The project directory.
    pub dir: PathBuf,
    /// Its language; default: from its files.
    pub lang: Option<Lang>,
    /// A build command line replacing the language's (`sh -c`).
    pub build: Option<String>,
    /// The component the build makes, relative to `dir`.
    pub component: Option<PathBuf>,
    /// What `collect` runs against; default: the project's `cassette/`.
    pub against: Option<Against>,
    /// Collector options (a cassette's own by default).
    pub options: Option<Value>,
    pub task_options: Option<Value>,
    /// Compare the records with this golden NDJSON file.
    pub golden: Option<PathBuf>,
    /// Build and run once, then exit (no watching).
    pub once: bool,
}

/// What the collector runs against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Against {
    /// A cassette directory or file.
    Cassette(PathBuf),
    /// The built-in Prism Central simulator with this many VMs.
    Simulator { vms: usize },
}

/// Why `cf-host dev` could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Cassette(String),
    #[error("no --cassette or --sim given, and {0} has no cassette/ directory")]
    NothingToRunAgainst(PathBuf),
    #[error("cannot start the Prism simulator: {0}")]
    Simulator(String),
    #[error("this cf-host was built without the `simulator` feature, which --sim needs")]
    NoSimulator,
}

/// What the collector runs against, ready.
enum Source {
    Cassette { path: PathBuf, cassette: Cassette },
    #[cfg(feature = "simulator")]
    Simulator { sim: prism_sim::Simulator, endpoint: url::Url, vms: usize },
}

impl Source {
    async fn open(against: Option<&Against>, project: &Project) -> Result<Source, DevError> {
        let against = match against {
            Some(a) => a.clone(),
            None => {
                let default = project.dir.join("cassette");
                if !default.exists() {
                    return Err(DevError::NothingToRunAgainst(project.dir.clone()));
                }
                Against::Cassette(default)
            }
        };
        match against {
            Against::Cassette(path) => {
                let cassette = Cassette::load(&path).map_err(DevError::Cassette)?;
                Ok(Source::Cassette { path, cassette })
            }
            Against::Simulator { vms } => Source::simulator(vms).await,
        }
    }

    #[cfg(feature = "simulator")]
    async fn simulator(vms: usize) -> Result<Source, DevError> {
        use prism_sim::{estate::EstateConfig, SimConfig, Simulator};
        let config = SimConfig { estate: EstateConfig { vms, ..EstateConfig::default() }, v4: true, ..SimConfig::default() };
        let sim = Simulator::start(config).await.map_err(|e| DevError::Simulator(e.to_string()))?;
        let endpoint = url::Url::parse(&sim.url()).map_err(|e| DevError::Simulator(e.to_string()))?;
        Ok(Source::Simulator { sim, endpoint, vms })
    }

    #[cfg(not(feature = "simulator"))]
    async fn simulator(_vms: usize) -> Result<Source, DevError> {
        Err(DevError::NoSimulator)
    }

    fn describe(&self) -> String {
        match self {
            Source::Cassette { path, cassette } => format!("cassette {} ({} interactions)", path.display(), cassette.interactions.len()),
            #[cfg(feature = "simulator")]
            Source::Simulator { endpoint, vms, .. } => format!("the Prism Central simulator (test double) on {endpoint} with {vms} VMs"),
        }
    }

    /// One `collect` of the harness's guest.
    async fn collect(&self, harness: &Harness, options: Option<&Value>, task_options: Option<&Value>) -> Result<Outcome, String> {
        match self {
            Source::Cassette { cassette, .. } => {
                let mut call = harness.call_for(cassette);
                if let Some(o) = options {
                    call.options = o.clone();
                }
                if let Some(t) = task_options {
                    call.task_options = t.clone();
                }
                Ok(harness.replay(&call, &Replayer::new(cassette.clone())).await)
            }
            #[cfg(feature = "simulator")]
            Source::Simulator { sim, endpoint, .. } => {
                let empty = Value::Object(Default::default());
                let options = options.cloned().unwrap_or_else(|| empty.clone());
                let (transport, secret) = crate::testing::cli::live(endpoint, &sim.secret(), &options)?;
                let call = harness.call().secret(secret).options(options).task_options(task_options.cloned().unwrap_or(empty));
                Ok(harness.collect(&call, transport).await)
            }
        }
    }
}

/// The loop's state between builds.
struct Session {
    project: Project,
    source: Source,
    registry: Arc<Registry>,
    args: DevArgs,
    /// Builds so far.
    builds: u32,
    /// The build loaded now (`name version digest`).
    loaded: Option<String>,
}

/// Runs `cf-host dev` until `shutdown` (or after one build with `once`),
/// printing to stdout. Answers whether the last run passed (it ran, every
/// request was answered, the golden file matched); a stop by `shutdown`
/// is a pass.
pub async fn run(args: DevArgs, shutdown: impl Future<Output = ()>) -> Result<bool, DevError> {
    let project = Project::open(&args.dir, args.lang, args.build.clone(), args.component.clone())?;
    let source = Source::open(args.against.as_ref(), &project).await?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 2, ..RuntimeConfig::default() }).map_err(DevError::Runtime)?);
    let cache = match PrecompileCache::new(project.work_dir.join("cache")) {
        Ok(c) => Some(c),
        Err(e) => {
            println!("warning: no precompile cache: {e}");
            None
        }
    };
    let registry = Arc::new(Registry::new(runtime, cache));
    println!("cf-host dev: {} ({:?})", project.dir.display(), project.lang);
    println!("  build:     {}", project.build);
    println!("  component: {}", project.component.display());
    println!("  against:   {}", source.describe());
    let mut watch = if args.once { None } else { Some(SourceWatch::new(&project.dir)?) };
    let once = args.once;
    let mut session = Session { project, source, registry, args, builds: 0, loaded: None };
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tokio::pin!(shutdown);
    let mut edit_at = Instant::now();
    loop {
        session.builds += 1;
        let mut changed = false;
        let built = {
            let build = session.project.build(color);
            tokio::pin!(build);
            loop {
                tokio::select! {
                    r = &mut build => break r,
                    () = next_edit(&mut watch) => changed = true,
                    () = &mut shutdown => return Ok(stopped()),
                }
            }
        };
        if changed {
            println!("[build {}] the sources changed during the build: building again", session.builds);
        } else {
            let passed = tokio::select! {
                p = session.after_build(built, edit_at) => p,
                () = &mut shutdown => return Ok(stopped()),
            };
            if once {
                return Ok(passed);
            }
            println!("watching {} for changes (Ctrl-C to stop)", session.project.dir.display());
            tokio::select! {
                () = next_edit(&mut watch) => {}
                () = &mut shutdown => return Ok(stopped()),
            }
            edit_at = Instant::now();
        }
        // A burst of saves is one edit: wait until the sources are quiet.
        loop {
            tokio::select! {
                () = tokio::time::sleep(DEBOUNCE) => break,
                () = next_edit(&mut watch) => {}
                () = &mut shutdown => return Ok(stopped()),
            }
        }
        if let Some(w) = watch.as_mut() {
            w.watch_new_dirs()?;
        }
    }
}

/// The next edit of the sources; never, without a watcher.
async fn next_edit(watch: &mut Option<SourceWatch>) {
    match watch {
        Some(w) => {
            if w.events.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn stopped() -> bool {
    println!("stopped");
    true
}

impl Session {
    /// Reports a build; loads and runs a good one. Answers whether it passed.
    async fn after_build(&mut self, built: Result<Built, BuildError>, edit_at: Instant) -> bool {
        let n = self.builds;
        let keeping = || match &self.loaded {
            Some(l) => format!("the last good build stays loaded ({l})"),
            None => "nothing is loaded yet".to_string(),
        };
        let built = match built {
            Ok(b) => b,
            Err(BuildError::Failed { status, output }) => {
                print!("{output}");
                if !output.ends_with('\n') && !output.is_empty() {
                    println!();
                }
                println!("[build {n}] FAILED ({status}); {}", keeping());
                return false;
            }
            Err(e) => {
                println!("[build {n}] FAILED: {e}; {}", keeping());
                return false;
            }
        };
        println!("[build {n}] ok in {}", secs(built.elapsed));
        let loading = Instant::now();
        let (registry, component) = (self.registry.clone(), self.project.component.clone());
        let loaded = tokio::task::spawn_blocking(move || reload(&registry, &component)).await;
        let (plugin, cached) = match loaded.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(p) => p,
            Err(e) => {
                println!("[load {n}] FAILED: {e}; {}", keeping());
                return false;
            }
        };
        let load_time = loading.elapsed();
        let what = format!("{} {} {}", plugin.name, plugin.version.as_deref().unwrap_or("-"), plugin.short_digest());
        println!("[load {n}] {what} in {}{}", secs(load_time), if cached { " (precompiled)" } else { "" });
        self.loaded = Some(what);

        let running = Instant::now();
        let harness = Harness::new(self.registry.runtime().clone(), plugin);
        let outcome = match self.source.collect(&harness, self.args.options.as_ref(), self.args.task_options.as_ref()).await {
            Ok(o) => o,
            Err(e) => {
                println!("[run {n}] FAILED: {e}");
                return false;
            }
        };
        let run_time = running.elapsed();
        let (report, passed) = self.report(&outcome);
        print!("{report}");
        println!(
            "[run {n}] {} edit→result {} (build {}, load {}, run {})",
            if passed { "PASS" } else { "FAIL" },
            secs(edit_at.elapsed()),
            secs(built.elapsed),
            secs(load_time),
            secs(run_time)
        );
        passed
    }

    /// The result as `cf-host test` prints it, the records by name, the
    /// golden file's verdict; and whether it passed.
    fn report(&self, outcome: &Outcome) -> (String, bool) {
        let mut out = String::new();
        crate::testing::cli::render(&mut out, outcome);
        let listed: Vec<_> = outcome.records.iter().filter(|r| !r.is_error()).collect();
        for r in listed.iter().take(LISTED) {
            let resource = r.resource();
            let name = resource.get("name").and_then(Value::as_str).unwrap_or("-");
            let id = resource.get("reference").and_then(|x| x.get("resource_id")).and_then(Value::as_str);
            let _ = writeln!(out, "  record {} {name}{}", r.label(), id.map(|i| format!(" ({i})")).unwrap_or_default());
        }
        if listed.len() > LISTED {
            let _ = writeln!(out, "  ... and {} more records", listed.len() - LISTED);
        }
        let mut passed = outcome.result.is_ok() && outcome.unmatched.is_empty();
        if let Some(path) = &self.args.golden {
            match crate::testing::cli::golden_check(path, &outcome.ndjson()) {
                Ok(None) => {
                    let _ = writeln!(out, "Golden: matches {}", path.display());
                }
                Ok(Some(diff)) => {
                    passed = false;
                    let _ = writeln!(out, "Golden: differs from {}:\n  {}", path.display(), diff.replace('\n', "\n  "));
                }
                Err(e) => {
                    passed = false;
                    let _ = writeln!(out, "Golden: {e}");
                }
            }
        }
        (out, passed)
    }
}

/// Loads the component into the registry in place of the build before
/// it; answers the live build and whether its compilation was cached.
fn reload(registry: &Registry, component: &std::path::Path) -> Result<(Arc<Plugin>, bool), String> {
    let bytes = std::fs::read(component).map_err(|e| format!("cannot read {}: {e}", component.display()))?;
    let report = registry.reload_bytes(&component.display().to_string(), &bytes).map_err(|e| e.to_string())?;
    let plugin = registry.resolve(&report.name, "dev", &Want::Live).map_err(|e| e.to_string())?;
    if let Some(cache) = registry.cache() {
        cache.prune(CACHE_KEEP);
    }
    Ok((plugin, report.cached))
}

/// `1.23s` or `45ms`.
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.2}s", d.as_secs_f64()) }
}
