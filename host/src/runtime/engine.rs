//! The engine and the components it runs: the [`Runtime`] (one per
//! process: engine with the pooling allocator and epoch interruption, the
//! linker, HTTP client pools and breakers, the sandbox pool, tenancy,
//! metrics) and loading and admission of a [`Plugin`].

use super::store::{RunState, EPOCH_TICK, MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use super::context::{RunContext, RunContextBuilder};
use crate::bindings::PluginPre;
use crate::error::RunError;
use crate::host::http::{ClientPool, Origins};
use crate::limits::Limits;
use crate::tenancy::{Tenancy, TenancyConfig};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Host-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Sandboxes alive at once (pool size); more callers wait.
    pub max_concurrency: u32,
    /// Per-tenant limits, concurrency caps, memory budgets, networks.
    pub tenancy: TenancyConfig,
    /// Fleet mode: per-tenant run leases shared with the other replicas
    /// (a tenant's cap counts its runs on all of them).
    pub leases: Option<crate::fleet::leases::RunLeases>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { max_concurrency: 32, tenancy: TenancyConfig::default(), leases: None }
    }
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The host runtime: one per process.
pub struct Runtime {
    pub(super) engine: Engine,
    linker: Linker<RunState>,
    pub(super) clients: ClientPool,
    /// Guests' HTTP circuit breakers and paces, per (tenant, origin),
    /// across runs.
    pub(super) origins: Origins,
    pub(super) permits: Arc<Semaphore>,
    pub(super) tenancy: Tenancy,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    config: RuntimeConfig,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, String> {
        let n = config.max_concurrency.max(1);
        // Memory slots fit the largest per-run limit of any tenant.
        let max_memory = config
            .tenancy
            .tenants
            .values()
            .map(|t| t.limits.memory_bytes)
            .chain([config.tenancy.default.limits.memory_bytes])
            .max()
            .unwrap_or(256 << 20);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES))
            .total_memories(n.saturating_mul(MAX_MEMORIES))
            .total_tables(n.saturating_mul(MAX_TABLES))
            .total_stacks(n)
            .max_memory_size(max_memory)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES);
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `CF_HOST_PERFMAP=1`: name the guests' JIT code in
        // /tmp/perf-<pid>.map, so `perf report` shows guest functions
        // (profiling only; see BENCHMARKS.md).
        if std::env::var_os("CF_HOST_PERFMAP").is_some() {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg).map_err(|e| format!("cannot create the wasm engine: {e}"))?;

        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("linker: {e}"))?;
        crate::host::add_to_linker(&mut linker).map_err(|e| format!("linker: {e}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cf-host-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        }
        Ok(Runtime {
            engine,
            linker,
            clients: ClientPool::default(),
            origins: Origins::default(),
            permits: Arc::new(Semaphore::new(n as usize)),
            tenancy: Tenancy::new(config.tenancy.clone()),
            metrics: Arc::default(),
            config,
            _ticker: EpochTicker { stop },
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// A run context for `tenant`, with the tenant's limits.
    pub fn context(&self, tenant: impl Into<String>) -> RunContextBuilder {
        let tenant = tenant.into();
        let limits = self.limits_for(&tenant);
        RunContext::builder(tenant, limits)
    }

    /// The limits of a tenant's runs.
    pub fn limits_for(&self, tenant: &str) -> Limits {
        self.tenancy.config(tenant).limits.clone()
    }

    /// Linear memory a tenant's live sandboxes hold (bytes).
    pub fn tenant_memory_in_use(&self, tenant: &str) -> usize {
        self.tenancy.slot(tenant).memory.used()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads and admits a component file.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
        // Errors name the file; the plugin is named by its stem.
        let mut plugin = self.load_bytes(&path.display().to_string(), &bytes)?;
        plugin.name = name;
        Ok(plugin)
    }

    /// Loads and admits component bytes: header check, compile, link against
    /// the host's imports, check the `collector` export.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let component = self.compile(name, bytes)?;
        let digest = component_digest(bytes);
        let mut plugin = self.admit(name, &component, digest)?;
        plugin.version = crate::registry::identity::embedded(bytes).ok().flatten().map(|i| i.version);
        Ok(plugin)
    }

    /// Header checks and compilation (no linking yet).
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let name = name.to_string();
        if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
            return Err(LoadError::NotWasm { name });
        }
        // Core modules are version 1; components are layer 1 (0x0d 0x00 0x01 0x00).
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(LoadError::CoreModule { name });
        }
        Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid { name, reason: crate::error::one_line(&e) })
    }

    /// Links a compiled component against the host's imports and checks its
    /// `collector` export: after this it can run.
    pub fn admit(&self, name: &str, component: &Component, digest: String) -> Result<Plugin, LoadError> {
        let name = name.to_string();
        let (pre, world) = PluginPre::new(&self.engine, &self.linker, component)
            .map_err(|link| LoadError::WrongWorld { name: name.clone(), link })?;
        // From world 0.3 every request names its credential and the host
        // adds it (`outbound.credential`): such a guest never receives one,
        // whether or not it imports http at all.
        let injects_credentials =
            world >= semver::Version::new(0, 3, 0) || imports_function(&self.engine, component, "cloudforet:collector/http@", "send-authenticated");
        Ok(Plugin { pre, world, digest, name, version: None, injects_credentials })
    }
}

/// A loaded, admitted collector component.
#[derive(Clone)]
pub struct Plugin {
    pub(super) pre: PluginPre<RunState>,
    /// The `cloudforet:collector` world version the component exports.
    pub world: semver::Version,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Display name (file stem or given name).
    pub name: String,
    /// Its version (semver) when it names one (identity section or
    /// manifest); the registry sets it.
    pub version: Option<String>,
    /// The host injects credentials and the guest never receives them: it
    /// imports `http.send-authenticated` (world 0.1.1+) or is built for
    /// world 0.3+ (every request names its credential).
    pub injects_credentials: bool,
}

impl Plugin {
    /// `sha256:` and the first 12 hex digits, for logs and reports.
    pub fn short_digest(&self) -> &str {
        &self.digest[..self.digest.len().min(19)]
    }

    /// Whether the component is also a cost data source (exports
    /// `cost-source`, world 0.2.1+).
    pub fn is_cost_source(&self) -> bool {
        self.pre.is_cost_source()
    }

    /// Whether the component is also a monitoring data source (exports
    /// `metric-source`, world 0.2.2+).
    pub fn is_metric_source(&self) -> bool {
        self.pre.is_metric_source()
    }
}

/// Why a plugin could not be loaded. One line each.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{name} is not a WebAssembly file (no \\0asm header)")]
    NotWasm { name: String },
    #[error("{name} is a core WebAssembly module, not a component: build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule { name: String },
    #[error("{name} is not a valid component: {reason}")]
    Invalid { name: String, reason: String },
    /// Not a collector, built for a world line this host does not serve,
    /// or importing what the host does not provide (told apart by `link`'s
    /// variant).
    #[error("{name} is not a collector this host can run: {}", link_reason(.link))]
    WrongWorld { name: String, link: crate::bindings::LinkError },
}

impl From<LoadError> for RunError {
    fn from(e: LoadError) -> RunError {
        RunError::Load(e.to_string())
    }
}


/// A link error as one line.
fn link_reason(e: &crate::bindings::LinkError) -> String {
    match e {
        crate::bindings::LinkError::Link(e) => crate::error::one_line(e),
        other => other.to_string(),
    }
}

/// Whether the component imports `function` from an instance whose name
/// starts with `instance_prefix` (any version).
fn imports_function(engine: &Engine, component: &Component, instance_prefix: &str, function: &str) -> bool {
    use wasmtime::component::types::ComponentItem;
    component.component_type().imports(engine).any(|(name, item)| {
        name.starts_with(instance_prefix)
            && matches!(item.ty, ComponentItem::ComponentInstance(inst) if inst.exports(engine).any(|(f, _)| f == function))
    })
}

/// `sha256:<hex>` of a component's bytes: how the host names a build.
pub fn component_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}
