//! The calls into a guest (`init`, `verify`, `get_tasks`, `collect`, the
//! cost and metric data source calls): each runs in a fresh store under
//! the run's limits, after a permit from the tenant's queue and one from
//! the pool; and what each call answers.

use super::context::RunContext;
use super::engine::{Plugin, Runtime};
use super::store::{map_trap, new_store, RunState, StoreParts};
use crate::bindings::current::exports::cloudforet::collector::collector::CollectorError;
use crate::bindings::Instance;
use crate::error::{LimitExceeded, LimitKind, RunError};
use crate::host::emit::Emits;
use crate::record::Record;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument as _;
use wasmtime::Store;

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
    _permits: (tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit, Option<crate::fleet::leases::Lease>),
}

impl Runtime {
    /// Counts a finished call by its outcome.
    fn count_run<T>(&self, call: &'static str, plugin: &Plugin, r: &Result<T, RunError>) {
        let outcome = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code().grpc_name().to_string(),
        };
        self.metrics.add("cf_host_runs_total", vec![("call", call.into()), ("plugin", plugin.name.clone()), ("outcome", outcome)], 1.0);
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
        // Fleet mode: the tenant's cap across every replica.
        let lease = match &self.config().leases {
            Some(leases) => match leases.acquire(&ctx.tenant, tenant.config.max_concurrent_runs, &ctx.run_id, ctx.limits.wall_clock).await {
                Ok(l) => Some(l),
                Err(e) => return (Err(RunError::Shared(e.to_string())), None),
            },
            None => None,
        };
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return (Err(RunError::Host("runtime is shutting down".into())), None),
        };
        let mut store = match new_store(self.store_parts(plugin), ctx, &tenant, sink) {
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
        // Batches the guest left pending end with the run; their requests
        // are counted (those not answered as `aborted`).
        store.data_mut().http.cancel_pending();
        self.observe(call_name, started.elapsed(), &result, store.data());
        (result, Some(Finished { store, _permits: (tenant_permit, permit, lease) }))
    }

    fn store_parts<'a>(&'a self, plugin: &'a Plugin) -> StoreParts<'a> {
        StoreParts { engine: &self.engine, clients: &self.clients, origins: &self.origins, plugin: (&plugin.name, plugin.short_digest()) }
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
            // The request budget ends a run after this point (in the
            // caller), as a limit.
            _ => st.emit.limit_hit.as_ref().map(|l| l.kind).or(st.http.budget_exhausted().then_some(LimitKind::HttpRequests)),
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
        let mut store = new_store(self.store_parts(plugin), ctx, &tenant, tx)?;
        plugin.pre.instantiate_async(&mut store).await.map_err(|e| map_trap(&e, store.data()))?;
        let elapsed = started.elapsed();
        drop(store);
        Ok(elapsed)
    }

    async fn init_call(&self, plugin: &Plugin, ctx: &RunContext) -> Result<PluginMetadata, RunError> {
        let (tx, _rx) = mpsc::channel(1);
        let options = ctx.options.to_string();
        let (r, store) = self
            .run("init", plugin, ctx, tx, async |b, s| b.init(s, &options).await)
            .await;
        let m = r?.map_err(|e| guest_error(e, store.as_ref(), ctx))?;
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
        let (options, secret) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials));
        let (r, store) = self
            .run("verify", plugin, ctx, tx, async |b, s| b.verify(s, &options, &secret).await)
            .await;
        r?.map_err(|e| guest_error(e, store.as_ref(), ctx))
    }

    async fn get_tasks_call(&self, plugin: &Plugin, ctx: &RunContext) -> Result<Vec<Value>, RunError> {
        let (tx, _rx) = mpsc::channel(1);
        let (options, secret) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials));
        let (r, store) = self
            .run("get_tasks", plugin, ctx, tx, async |b, s| b.get_tasks(s, &options, &secret).await)
            .await;
        let tasks = r?.map_err(|e| guest_error(e, store.as_ref(), ctx))?;
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
        let (options, secret, task) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials), task_options.to_string());
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
        if st.http.budget_exhausted() {
            return Err(RunError::Limit(LimitExceeded {
                kind: LimitKind::HttpRequests,
                detail: format!("more than {} HTTP requests", st.http.limits.max_requests),
            }));
        }
        let guest_emitted = r?.map_err(|e| guest_error(e, Some(&finished), ctx))?;
        Ok(CollectReport {
            records: st.emit.records,
            errors: st.emit.errors,
            http_requests: st.http.requests(),
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
            let (r, store) = self.run(name, plugin, ctx, tx, async |b, s| call(b, s).await.transpose()).await;
            r?.ok_or_else(|| RunError::Host(format!("{} vanished", role.export())))?.map_err(|e| guest_error(e, store.as_ref(), ctx))
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
        let (options, secret) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials));
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
        let (options, secret, query) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials), query.to_string());
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
        let (options, secret, query) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials), q.metric_query.to_string());
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
                let (options, secret, task) = (ctx.options.to_string(), ctx.secret.for_guest(plugin.injects_credentials), task_options.to_string());
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
            crate::error::ErrorCode::InvalidArgument,
            format!("{} is not a {} (it does not export cloudforet:collector/{})", plugin.name, self.what(), self.export()),
        ))
    }
}

/// A guest's own error as a run error, redacted. A refusal the guest
/// reports after the host's egress policy refused one of its requests is
/// the policy's (named with the destination), not the endpoint's.
fn guest_error(e: CollectorError, finished: Option<&Finished>, ctx: &RunContext) -> RunError {
    let denial = finished.and_then(|f| f.store.data().http.last_denial.clone());
    match (e, denial) {
        (CollectorError::PermissionDenied(m), Some(d)) => {
            redacted(RunError::Egress(format!("the host's egress policy refused {d} (the collector said: {m})")), ctx)
        }
        (e, _) => redacted(RunError::from_collector(e), ctx),
    }
}

fn redacted(e: RunError, ctx: &RunContext) -> RunError {
    let r = ctx.secret.redactor();
    match e {
        RunError::Collector(code, m) => RunError::Collector(code, r.redact_owned(m)),
        RunError::Trap(m) => RunError::Trap(r.redact_owned(m)),
        RunError::Egress(m) => RunError::Egress(r.redact_owned(m)),
        other => other,
    }
}

