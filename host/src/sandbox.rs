//! The sandbox runtime: engine, plugin loading, and one fresh store per call.
//!
//! - One [`Engine`] with the pooling allocator (sized from the maximum
//!   concurrency) and epoch interruption driven by a ticker thread.
//! - A [`Plugin`] is a compiled component plus its `InstancePre`, checked at
//!   load time against the world (imports satisfiable, `collector` exported).
//! - Every `init`/`verify`/`get_tasks`/`collect` call gets a new [`Store`]
//!   whose state ([`RunState`]) only aggregates per-capability contexts, with
//!   memory limits, a CPU budget (epoch ticks) and a wall-clock deadline in
//!   place before the guest runs. A semaphore in front of the pool makes a
//!   full pool queue instead of failing.

use crate::bindings::{Instance, PluginPre};
use crate::egress::EgressPolicy;
use crate::error::{LimitExceeded, LimitKind, RunError};
use crate::bindings::current::exports::cloudforet::collector::collector::CollectorError;
use crate::host::emit::{EmitCtx, Emits};
use crate::host::http::{Breakers, ClientPool, Credentials, HttpCtx, HttpTransport, ReqwestTransport, TlsConfig, INJECTED_SECRET_FIELDS};
use crate::host::log::{LogCtx, LogLine};
use crate::host::state::{MemoryState, Namespace, StateBackend, StateCtx};
use crate::host::types::TypesCtx;
use crate::limits::Limits;
use tracing::Instrument as _;
use crate::tenancy::{MemoryBudget, Tenancy, TenancyConfig, TenantSlot};
use crate::record::Record;
use crate::secret::Redactor;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Epoch tick: the granularity of CPU accounting and of yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of guest stdout/stderr kept (for panic messages).
const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// Host-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Sandboxes alive at once (pool size); more callers wait.
    pub max_concurrency: u32,
    /// Per-tenant limits, concurrency caps, memory budgets, networks.
    pub tenancy: TenancyConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { max_concurrency: 32, tenancy: TenancyConfig::default() }
    }
}

/// The store's state: one field per capability, nothing else.
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) http: HttpCtx,
    pub(crate) log: LogCtx,
    pub(crate) emit: EmitCtx,
    pub(crate) state: StateCtx,
    pub(crate) types: TypesCtx,
    limiter: MemoryLimiter,
    stderr: MemoryOutputPipe,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory (per run, and the tenant's total across its live
/// sandboxes), table growth and instance counts; a refused growth traps
/// with a [`LimitExceeded`] so the run ends with a clear error.
struct MemoryLimiter {
    max_memory: usize,
    /// Bytes this run holds in its tenant's budget.
    reserved: usize,
    tenant: Arc<MemoryBudget>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.reserved.saturating_sub(current).saturating_add(desired);
        if total > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded {
                kind: LimitKind::Memory,
                detail: format!("guest asked for {total} bytes of linear memory, limit is {}", self.max_memory),
            }));
        }
        let grow = desired.saturating_sub(current);
        self.tenant.reserve(grow).map_err(wasmtime::Error::new)?;
        self.reserved = self.reserved.saturating_add(grow);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.tenant.release(self.reserved);
    }
}

/// Per-component maxima (pool slots and store limits).
const MAX_CORE_INSTANCES: u32 = 16;
const MAX_MEMORIES: u32 = 2;
const MAX_TABLES: u32 = 8;

/// A loaded, admitted collector component.
#[derive(Clone)]
pub struct Plugin {
    pre: PluginPre,
    /// The `cloudforet:collector` world version the component exports.
    pub world: semver::Version,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Display name (file stem or given name).
    pub name: String,
    /// The guest imports `http.send-authenticated` (world 0.1.1+): the host
    /// injects credentials and the guest never receives them.
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
    #[error("{name} is not a collector this host can run: {reason}")]
    WrongWorld { name: String, reason: String },
}

impl From<LoadError> for RunError {
    fn from(e: LoadError) -> RunError {
        RunError::Load(e.to_string())
    }
}

/// What a run is allowed to do and whom it belongs to.
#[derive(Clone)]
pub struct RunContext {
    pub tenant: String,
    pub run_id: String,
    pub options: Value,
    pub secret: Value,
    pub egress: EgressPolicy,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub state: Arc<dyn StateBackend>,
    /// Collector name for the state namespace (defaults to the plugin name).
    pub collector: Option<String>,
    /// Where guest log lines are also captured, if anywhere.
    pub log_capture: Option<Arc<Mutex<Vec<LogLine>>>>,
    /// Performs the run's HTTP exchanges instead of reqwest (test harness:
    /// cassettes, recorders). Egress policy and limits apply all the same.
    pub http_transport: Option<Arc<dyn HttpTransport>>,
    /// Where egress denials are also recorded (`origin: reason`), if anywhere.
    pub egress_denials: Option<Arc<Mutex<Vec<String>>>>,
    /// The guest's wall clock stands still at this time (since the Unix
    /// epoch), for reproducible tests.
    pub fixed_wall_clock: Option<Duration>,
}

/// A WASI wall clock that always reads the same time.
struct FixedWallClock(Duration);

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

impl RunContext {
    /// A context with defaults: no egress, empty secret, in-memory state.
    pub fn new(tenant: impl Into<String>, limits: Limits) -> RunContext {
        RunContext {
            tenant: tenant.into(),
            run_id: new_run_id(),
            options: Value::Object(Default::default()),
            secret: Value::Object(Default::default()),
            egress: EgressPolicy::deny_all(),
            tls: TlsConfig::default(),
            limits,
            state: Arc::new(MemoryState::default()),
            collector: None,
            log_capture: None,
            http_transport: None,
            egress_denials: None,
            fixed_wall_clock: None,
        }
    }
}

/// A run id: time-ordered and unique enough for logs and the store.
pub fn new_run_id() -> String {
    use std::sync::atomic::AtomicU64;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("run-{:x}-{:x}-{:x}", now.as_secs(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Answer of `init`.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginMetadata {
    pub supported_resource_types: Vec<String>,
    pub supported_schedules: Vec<String>,
    pub supported_features: Vec<String>,
    pub options_schema: Value,
}

/// What a finished `collect` reports (the records went to the sink).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    pub records: u64,
    pub errors: u64,
    pub http_requests: u32,
    pub suppressed_log_lines: u32,
    /// The guest's own count of what it emitted.
    pub guest_emitted: u64,
}

/// A finished run's store, holding its pool and tenant slots until it is
/// dropped (fields drop in order: the store, then the permits), so the next
/// run never finds the instance pool still occupied.
struct Finished {
    store: Store<RunState>,
    _permits: (tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit),
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
    engine: Engine,
    linker: Linker<RunState>,
    clients: ClientPool,
    /// Guests' HTTP circuit breakers, per (tenant, origin), across runs.
    breakers: Breakers,
    permits: Arc<Semaphore>,
    tenancy: Tenancy,
    metrics: Arc<crate::metrics::Metrics>,
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
        crate::bindings::add_to_linker(&mut linker).map_err(|e| format!("linker: {e}"))?;

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
            breakers: Breakers::default(),
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

    /// Counts a finished call by its outcome.
    fn count_run<T>(&self, call: &'static str, plugin: &Plugin, r: &Result<T, RunError>) {
        let outcome = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code().grpc_name().to_string(),
        };
        self.metrics.add("cf_host_runs_total", vec![("call", call.into()), ("plugin", plugin.name.clone()), ("outcome", outcome)], 1.0);
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
        self.admit(name, &component, digest)
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
        Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid { name, reason: one_line(&e) })
    }

    /// Links a compiled component against the host's imports and checks its
    /// `collector` export: after this it can run.
    pub fn admit(&self, name: &str, component: &Component, digest: String) -> Result<Plugin, LoadError> {
        let name = name.to_string();
        let (pre, world) =
            PluginPre::new(&self.engine, &self.linker, component).map_err(|reason| LoadError::WrongWorld { name: name.clone(), reason })?;
        let injects_credentials = imports_function(&self.engine, component, "cloudforet:collector/http@", "send-authenticated");
        Ok(Plugin { pre, world, digest, name, injects_credentials })
    }

    fn new_store(
        &self,
        plugin: &Plugin,
        ctx: &RunContext,
        tenant: &TenantSlot,
        sink: mpsc::Sender<Vec<Record>>,
    ) -> Result<Store<RunState>, RunError> {
        let redactor = Arc::new(Redactor::from_secret(&ctx.secret));
        // The operator's network grants for this tenant join the run's policy.
        let policy = ctx.egress.clone().allow_networks(tenant.config.allow_networks.iter().copied());
        let transport: Arc<dyn HttpTransport> = match &ctx.http_transport {
            Some(t) => t.clone(),
            None => Arc::new(ReqwestTransport::new(
                self.clients.client(&ctx.tls, policy.allowed_networks()).map_err(RunError::Load)?,
                policy.clone(),
            )),
        };
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdout(stderr.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(t) = ctx.fixed_wall_clock {
            wasi.wall_clock(FixedWallClock(t));
        }
        let wasi = wasi.build();
        let limits = &ctx.limits;
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_handles);
        let state = RunState {
            wasi,
            table,
            http: HttpCtx {
                transport,
                policy,
                limits: limits.http.clone(),
                redactor: redactor.clone(),
                requests: 0,
                budget_exhausted: false,
                denials: ctx.egress_denials.clone(),
                credentials: Credentials::from_secret(&ctx.secret),
                outcomes: Default::default(),
                breakers: self.breakers.clone(),
                tenant: ctx.tenant.clone(),
                circuit_refused: false,
            },
            log: LogCtx {
                tenant: ctx.tenant.clone(),
                plugin: plugin.name.clone(),
                version: plugin.short_digest().to_string(),
                run_id: ctx.run_id.clone(),
                redactor: redactor.clone(),
                max_lines: limits.max_log_lines,
                lines: 0,
                suppressed: 0,
                capture: ctx.log_capture.clone(),
            },
            emit: EmitCtx::new(sink, redactor, limits.max_records, limits.max_output_bytes),
            state: StateCtx {
                backend: ctx.state.clone(),
                namespace: Namespace {
                    tenant: ctx.tenant.clone(),
                    collector: ctx.collector.clone().unwrap_or_else(|| plugin.name.clone()),
                },
                limits: limits.state.clone(),
            },
            types: TypesCtx,
            limiter: MemoryLimiter {
                max_memory: limits.memory_bytes.min(tenant.config.limits.memory_bytes),
                reserved: 0,
                tenant: tenant.memory.clone(),
            },
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let budget = (limits.cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        let mut used: u64 = 0;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            used += 1;
            if used > budget {
                return Err(wasmtime::Error::new(LimitExceeded {
                    kind: LimitKind::Cpu,
                    detail: format!("guest ran longer than its CPU budget of {} ms", budget * EPOCH_TICK.as_millis() as u64),
                }));
            }
            // Yield to the async runtime every tick so sandboxes share threads
            // fairly. `yield_now` sends the task to the back of the queue; a
            // plain self-wake would be re-polled at once and starve others.
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        });
        Ok(store)
    }

    /// Runs `call` on a fresh instance, under the run's limits.
    async fn run<R>(
        &self,
        call_name: &'static str,
        plugin: &Plugin,
        ctx: &RunContext,
        sink: mpsc::Sender<Vec<Record>>,
        call: impl AsyncFnOnce(&Instance, &mut Store<RunState>) -> wasmtime::Result<R>,
    ) -> (Result<R, RunError>, Option<Finished>) {
        // The tenant's queue first, then the pool: a tenant never holds more
        // pool slots than its cap, whatever it has queued.
        let tenant = self.tenancy.slot(&ctx.tenant);
        let tenant_permit = match tenant.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return (Err(RunError::Host("runtime is shutting down".into())), None),
        };
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return (Err(RunError::Host("runtime is shutting down".into())), None),
        };
        let mut store = match self.new_store(plugin, ctx, &tenant, sink) {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        let wall = ctx.limits.wall_clock;
        let started = std::time::Instant::now();
        // Counts the sandbox as active until this future ends, also when it
        // is dropped mid-run (a cancelled stream cancels its run that way).
        let active = self.metrics.sandbox_guard();
        let span = tracing::info_span!(
            "run",
            call = call_name,
            tenant = %ctx.tenant,
            plugin = %plugin.name,
            digest = %plugin.short_digest(),
            run = %ctx.run_id,
            outcome = tracing::field::Empty,
        );
        let outcome = tokio::time::timeout(wall, async {
            let bindings = plugin.pre.instantiate_async(&mut store).await?;
            call(&bindings, &mut store).await
        })
        .instrument(span.clone())
        .await;
        let result = match outcome {
            Err(_) => Err(RunError::Limit(LimitExceeded {
                kind: LimitKind::WallClock,
                detail: format!("run took longer than {} s", wall.as_secs_f64()),
            })),
            Ok(Err(e)) => Err(map_trap(&e, store.data())),
            Ok(Ok(v)) => Ok(v),
        };
        span.record("outcome", match &result {
            Ok(_) => "OK",
            Err(e) => e.code().grpc_name(),
        });
        drop(active);
        self.observe(call_name, started.elapsed(), &result, store.data());
        (result, Some(Finished { store, _permits: (tenant_permit, permit) }))
    }

    fn observe<R>(&self, call: &'static str, took: Duration, result: &Result<R, RunError>, st: &RunState) {
        let m = &self.metrics;
        m.add("cf_host_run_seconds_sum", vec![("call", call.into())], took.as_secs_f64());
        m.add("cf_host_run_seconds_count", vec![("call", call.into())], 1.0);
        for (t, n) in &st.emit.per_type {
            m.add("cf_host_records_total", vec![("resource_type", (*t).into())], *n as f64);
        }
        for (class, n) in &st.http.outcomes {
            m.add("cf_host_http_requests_total", vec![("status", (*class).into())], *n as f64);
        }
        let limit = match result {
            Err(RunError::Limit(l)) => Some(l.kind),
            _ => st.emit.limit_hit.as_ref().map(|l| l.kind),
        };
        if let Some(kind) = limit {
            m.add("cf_host_limit_hits_total", vec![("limit", kind.to_string())], 1.0);
        }
    }

    /// Creates a fresh store and instantiates the plugin without calling it;
    /// returns how long that took (benchmarks).
    pub async fn instantiate_only(&self, plugin: &Plugin, ctx: &RunContext) -> Result<Duration, RunError> {
        let tenant = self.tenancy.slot(&ctx.tenant);
        let _permit = self.permits.acquire().await.map_err(|_| RunError::Host("runtime is shutting down".into()))?;
        let (tx, _rx) = mpsc::channel(1);
        let started = std::time::Instant::now();
        let mut store = self.new_store(plugin, ctx, &tenant, tx)?;
        plugin.pre.instantiate_async(&mut store).await.map_err(|e| map_trap(&e, store.data()))?;
        let elapsed = started.elapsed();
        drop(store);
        Ok(elapsed)
    }

    async fn init_call(&self, plugin: &Plugin, ctx: &RunContext) -> Result<PluginMetadata, RunError> {
        let (tx, _rx) = mpsc::channel(1);
        let options = ctx.options.to_string();
        let (r, _) = self
            .run("init", plugin, ctx, tx, async |b, s| b.init(s, &options).await)
            .await;
        let m = r?.map_err(|e| redacted(RunError::from_collector(e), ctx))?;
        let options_schema = serde_json::from_str(&m.options_schema)
            .map_err(|e| RunError::Trap(format!("guest returned an options schema that is not JSON: {e}")))?;
        Ok(PluginMetadata {
            supported_resource_types: m.supported_resource_types,
            supported_schedules: m.supported_schedules,
            supported_features: m.supported_features,
            options_schema,
        })
    }

    async fn verify_call(&self, plugin: &Plugin, ctx: &RunContext) -> Result<(), RunError> {
        let (tx, _rx) = mpsc::channel(1);
        let (options, secret) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret));
        let (r, _) = self
            .run("verify", plugin, ctx, tx, async |b, s| b.verify(s, &options, &secret).await)
            .await;
        r?.map_err(|e| redacted(RunError::from_collector(e), ctx))
    }

    async fn get_tasks_call(&self, plugin: &Plugin, ctx: &RunContext) -> Result<Vec<Value>, RunError> {
        let (tx, _rx) = mpsc::channel(1);
        let (options, secret) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret));
        let (r, _) = self
            .run("get_tasks", plugin, ctx, tx, async |b, s| b.get_tasks(s, &options, &secret).await)
            .await;
        let tasks = r?.map_err(|e| redacted(RunError::from_collector(e), ctx))?;
        tasks.into_iter().map(|t| json_object("task options", &t.options)).collect()
    }

    pub async fn init(&self, plugin: &Plugin, ctx: &RunContext) -> Result<PluginMetadata, RunError> {
        let r = self.init_call(plugin, ctx).await;
        self.count_run("init", plugin, &r);
        r
    }

    pub async fn verify(&self, plugin: &Plugin, ctx: &RunContext) -> Result<(), RunError> {
        let r = self.verify_call(plugin, ctx).await;
        self.count_run("verify", plugin, &r);
        r
    }

    /// Task options of each task.
    pub async fn get_tasks(&self, plugin: &Plugin, ctx: &RunContext) -> Result<Vec<Value>, RunError> {
        let r = self.get_tasks_call(plugin, ctx).await;
        self.count_run("get_tasks", plugin, &r);
        r
    }

    /// Runs a collection; records stream into `sink` as the guest emits them.
    /// Records sent before a failure stay sent.
    pub async fn collect(
        &self,
        plugin: &Plugin,
        ctx: &RunContext,
        task_options: &Value,
        sink: mpsc::Sender<Vec<Record>>,
    ) -> Result<CollectReport, RunError> {
        let r = self.collect_call(plugin, ctx, task_options, sink).await;
        self.count_run("collect", plugin, &r);
        r
    }

    async fn collect_call(
        &self,
        plugin: &Plugin,
        ctx: &RunContext,
        task_options: &Value,
        sink: mpsc::Sender<Vec<Record>>,
    ) -> Result<CollectReport, RunError> {
        let (options, secret, task) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret), task_options.to_string());
        self.emitting_call("collect", plugin, ctx, sink, async |b, s| {
            Ok(b.collect(s, &options, &secret, &task).await?.map(|summary| summary.emitted))
        })
        .await
    }

    /// A call whose output streams into `sink` (`collect`, cost `get-data`):
    /// limits hit while emitting, then the guest's own outcome; `call`
    /// answers the guest's count of what it emitted.
    async fn emitting_call(
        &self,
        call_name: &'static str,
        plugin: &Plugin,
        ctx: &RunContext,
        sink: mpsc::Sender<Vec<Record>>,
        call: impl AsyncFnOnce(&Instance, &mut Store<RunState>) -> wasmtime::Result<Result<u64, CollectorError>>,
    ) -> Result<CollectReport, RunError> {
        let (r, store) = self.run(call_name, plugin, ctx, sink, call).await;
        let Some(finished) = store else {
            return Err(r.err().unwrap_or_else(|| RunError::Host("no store".into())));
        };
        let st = finished.store.data();
        if let Some(limit) = &st.emit.limit_hit {
            return Err(RunError::Limit(limit.clone()));
        }
        if st.http.budget_exhausted {
            return Err(RunError::Limit(LimitExceeded {
                kind: LimitKind::HttpRequests,
                detail: format!("more than {} HTTP requests", st.http.limits.max_requests),
            }));
        }
        let guest_emitted = r?.map_err(|e| redacted(RunError::from_collector(e), ctx))?;
        Ok(CollectReport {
            records: st.emit.records,
            errors: st.emit.errors,
            http_requests: st.http.requests,
            suppressed_log_lines: st.log.suppressed,
            guest_emitted,
        })
    }

    /// A unary call of an optional export (`role`); `call` answers `None`
    /// when the export is missing, which the check before rules out.
    async fn role_call<T>(
        &self,
        name: &'static str,
        role: Role,
        plugin: &Plugin,
        ctx: &RunContext,
        call: impl AsyncFnOnce(&Instance, &mut Store<RunState>) -> Option<wasmtime::Result<Result<T, CollectorError>>>,
    ) -> Result<T, RunError> {
        let r = async {
            role.check(plugin)?;
            let (tx, _rx) = mpsc::channel(1);
            let (r, _) = self.run(name, plugin, ctx, tx, async |b, s| call(b, s).await.transpose()).await;
            r?.ok_or_else(|| RunError::Host(format!("{} vanished", role.export())))?.map_err(|e| redacted(RunError::from_collector(e), ctx))
        }
        .await;
        self.count_run(name, plugin, &r);
        r
    }

    /// `cost-source.init` or `metric-source.init`: the data source's
    /// metadata (a JSON object).
    pub async fn source_init(&self, role: Role, plugin: &Plugin, ctx: &RunContext) -> Result<Value, RunError> {
        let options = ctx.options.to_string();
        let text = match role {
            Role::Cost => self.role_call("cost_init", role, plugin, ctx, async |b, s| b.cost_init(s, &options).await).await?,
            Role::Metric => self.role_call("metric_init", role, plugin, ctx, async |b, s| b.metric_init(s, &options).await).await?,
        };
        json_object(&format!("{} metadata", role.what()), &text)
    }

    /// `cost-source.get-tasks`: the cost tasks.
    pub async fn cost_tasks(&self, plugin: &Plugin, ctx: &RunContext, start: Option<&str>, last: Option<&str>) -> Result<Vec<CostTask>, RunError> {
        let (options, secret) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret));
        let tasks = self
            .role_call("cost_tasks", Role::Cost, plugin, ctx, async |b, s| b.cost_tasks(s, &options, &secret, start, last).await)
            .await?;
        tasks
            .into_iter()
            .map(|t| Ok(CostTask { options: json_object("task options", &t.options)?, changed: t.changed.map(|p| (p.start, p.end)) }))
            .collect()
    }


    /// `metric-source.list-metrics` for the resources in `query`.
    pub async fn metric_list(&self, plugin: &Plugin, ctx: &RunContext, query: &Value) -> Result<Vec<MetricInfo>, RunError> {
        let (options, secret, query) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret), query.to_string());
        let list = self.role_call("metric_list", Role::Metric, plugin, ctx, async |b, s| b.metric_list(s, &options, &secret, &query).await).await?;
        list.into_iter()
            .map(|m| {
                Ok(MetricInfo {
                    key: m.key,
                    name: m.name,
                    group: m.group,
                    unit: json_object("a metric unit", &m.unit)?,
                    metric_query: json_object("a metric query", &m.metric_query)?,
                })
            })
            .collect()
    }

    /// `metric-source.get-data`.
    pub async fn metric_data(&self, plugin: &Plugin, ctx: &RunContext, q: &MetricQuery) -> Result<MetricData, RunError> {
        let (options, secret, query) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret), q.metric_query.to_string());
        let d = self
            .role_call("metric_data", Role::Metric, plugin, ctx, async |b, s| {
                b.metric_data(s, &options, &secret, &query, &q.metric, &q.start, &q.end, q.period, q.stat.as_deref()).await
            })
            .await?;
        Ok(MetricData { labels: d.labels, values: json_object("metric values", &d.values)? })
    }

    /// `cost-source.get-data`: costs stream into `sink` as the guest emits them.
    pub async fn cost_data(&self, plugin: &Plugin, ctx: &RunContext, task_options: &Value, sink: mpsc::Sender<Vec<Record>>) -> Result<CollectReport, RunError> {
        let r = match Role::Cost.check(plugin) {
            Ok(()) => {
                let (options, secret, task) = (ctx.options.to_string(), guest_secret(plugin, &ctx.secret), task_options.to_string());
                self.emitting_call("cost_data", plugin, ctx, sink, async |b, s| {
                    s.data_mut().emit.emits = Emits::Costs;
                    match b.cost_data(s, &options, &secret, &task).await {
                        Some(r) => r,
                        None => Err(wasmtime::Error::msg("cost-source vanished")),
                    }
                })
                .await
            }
            Err(e) => Err(e),
        };
        self.count_run("cost_data", plugin, &r);
        r
    }
}

/// One metric a monitoring data source offers.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    pub key: String,
    pub name: String,
    pub group: String,
    /// JSON object.
    pub unit: Value,
    /// JSON object, passed back to `metric_data`.
    pub metric_query: Value,
}

/// Time series per resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricData {
    pub labels: Vec<String>,
    /// JSON object: resource id → list of numbers.
    pub values: Value,
}

/// What `metric_data` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricQuery {
    /// JSON object keyed by resource id.
    pub metric_query: Value,
    pub metric: String,
    pub start: String,
    pub end: String,
    pub period: Option<u32>,
    pub stat: Option<String>,
}

fn json_object(what: &str, text: &str) -> Result<Value, RunError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(RunError::Trap(format!("guest returned {what} that is not a JSON object"))),
    }
}

/// A cost task as the guest planned it.
#[derive(Clone, Debug, PartialEq)]
pub struct CostTask {
    /// Handed back to `cost_data`.
    pub options: Value,
    /// The period whose costs the task replaces: start and end (included).
    pub changed: Option<(String, Option<String>)>,
}

/// The optional exports beside `collector`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Cost,
    Metric,
}

impl Role {
    fn export(self) -> &'static str {
        match self {
            Role::Cost => "cost-source",
            Role::Metric => "metric-source",
        }
    }

    /// What a component with this role is, in messages.
    fn what(self) -> &'static str {
        match self {
            Role::Cost => "cost data source",
            Role::Metric => "monitoring data source",
        }
    }

    /// The component exports the role's interface, or a typed error saying
    /// it does not.
    pub fn check(self, plugin: &Plugin) -> Result<(), RunError> {
        let has = match self {
            Role::Cost => plugin.pre.is_cost_source(),
            Role::Metric => plugin.pre.is_metric_source(),
        };
        if has {
            return Ok(());
        }
        Err(RunError::Collector(
            crate::ErrorCode::InvalidArgument,
            format!("{} is not a {} (it does not export cloudforet:collector/{})", plugin.name, self.what(), self.export()),
        ))
    }
}

fn redacted(e: RunError, ctx: &RunContext) -> RunError {
    let r = Redactor::from_secret(&ctx.secret);
    match e {
        RunError::Collector(code, m) => RunError::Collector(code, r.redact_owned(m)),
        RunError::Trap(m) => RunError::Trap(r.redact_owned(m)),
        other => other,
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

/// The secret as the guest receives it: when the guest uses credential
/// injection, the values the host injects itself are replaced by
/// [`INJECTED_MARKER`] (the guest learns which credentials exist, never
/// their values).
fn guest_secret(plugin: &Plugin, secret: &Value) -> String {
    match secret {
        Value::Object(m) if plugin.injects_credentials => {
            let mut m = m.clone();
            for f in INJECTED_SECRET_FIELDS {
                if let Some(v) = m.get_mut(*f).filter(|v| !v.is_null()) {
                    *v = Value::String(INJECTED_MARKER.into());
                }
            }
            Value::Object(m).to_string()
        }
        other => other.to_string(),
    }
}

/// `sha256:<hex>` of a component's bytes: how the host names a build.
pub fn component_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What a guest sees in place of an injected credential.
pub const INJECTED_MARKER: &str = "[host-injected]";

pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Classifies an error that escaped a guest call.
fn map_trap(e: &wasmtime::Error, state: &RunState) -> RunError {
    for cause in e.chain() {
        if let Some(l) = cause.downcast_ref::<LimitExceeded>() {
            return RunError::Limit(l.clone());
        }
        if let Some(wasmtime::component::ResourceTableError::Full) = cause.downcast_ref::<wasmtime::component::ResourceTableError>() {
            return RunError::Limit(LimitExceeded {
                kind: LimitKind::Handles,
                detail: format!("guest held more than {} resource handles", state.table.max_capacity()),
            });
        }
    }
    let redactor = &state.emit.redactor;
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    // A Rust guest's panic message is the line after "panicked at".
    let panic = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let base = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => e.to_string(),
    };
    let msg = if panic.is_empty() { base } else { format!("{base} ({})", panic.trim()) };
    RunError::Trap(redactor.redact_owned(msg))
}
