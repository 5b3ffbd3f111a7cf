//! One run's wasmtime store: its state ([`RunState`], one field per
//! capability), the memory limiter, the CPU budget, and how an error that
//! escaped the guest is classified ([`map_trap`]).

use super::context::RunContext;
use crate::error::{LimitExceeded, LimitKind, RunError};
use crate::host::emit::EmitCtx;
use crate::host::http::{ClientPool, HttpCtx, HttpTransport, Origins, ReqwestTransport};
use crate::host::log::LogCtx;
use crate::host::state::{Namespace, StateCtx};
use crate::host::types::TypesCtx;
use crate::record::Record;
use crate::tenancy::{MemoryBudget, TenantSlot};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Epoch tick: the granularity of CPU accounting and of yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of guest stdout/stderr kept (for panic messages).
const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// Per-component maxima (pool slots and store limits).
pub(crate) const MAX_CORE_INSTANCES: u32 = 16;
pub(crate) const MAX_MEMORIES: u32 = 2;
pub(crate) const MAX_TABLES: u32 = 8;

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

impl crate::host::Capabilities for RunState {
    fn http(&mut self) -> &mut HttpCtx {
        &mut self.http
    }
    fn log(&mut self) -> &mut LogCtx {
        &mut self.log
    }
    fn emit(&mut self) -> &mut EmitCtx {
        &mut self.emit
    }
    fn state(&mut self) -> &mut StateCtx {
        &mut self.state
    }
    fn types(&mut self) -> &mut TypesCtx {
        &mut self.types
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

/// What a store needs from the runtime beside the run's context.
pub(crate) struct StoreParts<'a> {
    pub engine: &'a Engine,
    pub clients: &'a ClientPool,
    pub origins: &'a Origins,
    /// The plugin's name and short digest, for logs.
    pub plugin: (&'a str, &'a str),
}

/// A fresh store for one call of `ctx`'s run, every limit in place.
pub(crate) fn new_store(
    parts: StoreParts<'_>,
    ctx: &RunContext,
    tenant: &TenantSlot,
    sink: mpsc::Sender<Vec<Record>>,
) -> Result<Store<RunState>, RunError> {
    let redactor = ctx.secret.redactor().clone();
    // The operator's network grants for this tenant join the run's policy.
    let policy = ctx.egress.clone().allow_networks(tenant.config.allow_networks.iter().copied());
    let transport: Arc<dyn HttpTransport> = match &ctx.http_transport {
        Some(t) => t.clone(),
        None => Arc::new(ReqwestTransport::new(
            parts.clients.client(&ctx.tls, policy.allowed_networks()).map_err(RunError::Host)?,
            policy.clone(),
        )),
    };
    let transport = match &ctx.http_layer {
        Some(l) => l.layer(transport),
        None => transport,
    };
    let stderr = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
    let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
    wasi.stdout(stderr.clone()).stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    if let Some(t) = ctx.fixed_wall_clock {
        wasi.wall_clock(FixedWallClock(t));
    }
    let wasi = wasi.build();
    let limits = &ctx.limits;
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.max_handles);
    let (plugin, digest) = parts.plugin;
    let state = RunState {
        wasi,
        table,
        http: HttpCtx {
            transport,
            policy,
            limits: limits.http.clone(),
            redactor: redactor.clone(),
            denials: ctx.egress_denials.clone(),
            credentials: ctx.secret.credentials(),
            outcomes: Default::default(),
            origins: parts.origins.clone(),
            tenant: ctx.tenant.clone(),
            last_denial: None,
            flight: Default::default(),
        },
        log: LogCtx {
            tenant: ctx.tenant.clone(),
            plugin: plugin.to_string(),
            version: digest.to_string(),
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
            namespace: Namespace { tenant: ctx.tenant.clone(), collector: ctx.collector.clone().unwrap_or_else(|| plugin.to_string()) },
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
    let mut store = Store::new(parts.engine, state);
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

/// Classifies an error that escaped a guest call: a host limit the guest
/// ran into, or a trap (with a Rust guest's panic message when it printed
/// one), redacted.
pub(crate) fn map_trap(e: &wasmtime::Error, state: &RunState) -> RunError {
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
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    RunError::Trap(state.emit.redactor.redact_owned(trap_message(e, &stderr)))
}

/// The trap's message, with the panic message a Rust guest printed (the
/// line after "panicked at") when there is one.
fn trap_message(e: &wasmtime::Error, stderr: &str) -> String {
    let panic = stderr.lines().skip_while(|l| !l.contains("panicked at")).take(2).collect::<Vec<_>>().join(" ");
    let base = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => e.to_string(),
    };
    if panic.is_empty() { base } else { format!("{base} ({})", panic.trim()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_messages_carry_the_panic() {
        let e = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        let stderr = "noise\nthread '<unnamed>' panicked at src/lib.rs:1:1:\nboom: index out of bounds\nnote: run with RUST_BACKTRACE\n";
        let m = trap_message(&e, stderr);
        assert!(m.starts_with(&wasmtime::Trap::UnreachableCodeReached.to_string()), "{m}");
        assert!(m.ends_with("(thread '<unnamed>' panicked at src/lib.rs:1:1: boom: index out of bounds)"), "{m}");
        assert_eq!(trap_message(&wasmtime::Error::msg("plain"), ""), "plain");
    }

    #[test]
    fn the_limiter_refuses_growth_past_the_run_and_the_tenant() {
        let tenant = Arc::new(MemoryBudget::new(3 << 20));
        let mut a = MemoryLimiter { max_memory: 2 << 20, reserved: 0, tenant: tenant.clone() };
        assert!(a.memory_growing(0, 1 << 20, None).unwrap());
        let e = a.memory_growing(1 << 20, 3 << 20, None).unwrap_err();
        assert_eq!(e.downcast_ref::<LimitExceeded>().unwrap().kind, LimitKind::Memory);
        let mut b = MemoryLimiter { max_memory: 4 << 20, reserved: 0, tenant: tenant.clone() };
        assert!(b.memory_growing(0, 2 << 20, None).unwrap());
        let e = b.memory_growing(2 << 20, 3 << 20, None).unwrap_err().to_string();
        assert!(e.contains("tenant's total"), "{e}");
        assert_eq!(tenant.used(), 3 << 20);
        drop(a);
        drop(b);
        assert_eq!(tenant.used(), 0, "released when the stores go");
    }
}
