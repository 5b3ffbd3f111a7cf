//! Test collector guests against a mocked host.
//!
//! # Layout
//!
//! - [`Harness`]: the real runtime running a real `.wasm` guest, with every
//!   import mockable: HTTP answered by a [`cassette::Replayer`] (or any
//!   [`HttpTransport`]), `emit` captured in memory, `state` in memory (can be
//!   preset), `log` captured, the wall clock fixed. Egress policy and limits
//!   apply exactly as in production.
//! - [`Outcome`]: what a run did, with assertion helpers (counts per type,
//!   one resource's fields, requests per path, denials).
//! - [`cassette`]: the cassette format, replay with diffs, recording
//!   (`cf-host test --record`, and the bounded [`cassette::Tape`] of
//!   `serve --record-failures`).
//! - [`expect`]: expectation files for `cf-host test --expect`, and golden
//!   NDJSON comparison.
//! - [`cli`]: `cf-host test` (replay or record, report, pass/fail).
//!
//! ```no_run
//! use cf_host::testing::{Harness, cassette::{Cassette, Replayer}};
//! let h = Harness::load("guest_nutanix.wasm".as_ref()).unwrap();
//! let replay = Replayer::new(Cassette::load("tests/cassettes/v3-small".as_ref()).unwrap());
//! let out = h.replay_blocking(&h.call(), &replay);
//! assert_eq!(out.count("Compute/VirtualMachine"), 12);
//! assert_eq!(out.field("vm-uuid", "data.vcpus"), Some(serde_json::json!(4)));
//! ```

pub mod cassette;
pub mod cli;
pub mod conformance;
pub mod expect;

use crate::host::http::{HttpTransport, OutboundRequest, TransportFuture};
use crate::host::log::LogLine;
use crate::host::state::{MemoryState, Namespace, StateBackend};
use crate::record::{Record, ResourceType};
use crate::runtime::{CollectReport, Plugin, PluginMetadata, RunContext, Runtime, RuntimeConfig};
use crate::error::RunError;
use cassette::{RecordedCall, Replayer, Unmatched};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The guest's wall clock in harness runs: 2024-01-01T00:00:00Z.
pub const FIXED_CLOCK: Duration = Duration::from_secs(1_704_067_200);
/// Secret of replayed runs: the guest builds its URLs from it and the
/// egress grant is derived from it; the cassette ignores the origin.
pub const REPLAY_HOST: &str = "https://prism.cassette.invalid:9440";

/// A guest loaded in the real host runtime.
pub struct Harness {
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
}

/// One call's inputs.
#[derive(Clone, Debug)]
pub struct Call {
    pub tenant: String,
    pub options: Value,
    pub secret: Value,
    pub task_options: Value,
    /// State visible to the run (keys of its tenant and collector).
    pub state: BTreeMap<String, String>,
    /// What a `metric-data` call asks for.
    pub metric_query: Option<crate::runtime::MetricQuery>,
}

impl Call {
    pub fn options(mut self, v: Value) -> Call {
        self.options = v;
        self
    }

    pub fn secret(mut self, v: Value) -> Call {
        self.secret = v;
        self
    }

    pub fn task_options(mut self, v: Value) -> Call {
        self.task_options = v;
        self
    }

    pub fn state(mut self, key: &str, value: &str) -> Call {
        self.state.insert(key.into(), value.into());
        self
    }
}

/// Everything a run did.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<CollectReport, RunError>,
    pub records: Vec<Record>,
    pub logs: Vec<LogLine>,
    /// Requests that reached the transport (after the egress policy).
    pub requests: Vec<OutboundRequest>,
    /// Requests the cassette could not answer.
    pub unmatched: Vec<Unmatched>,
    /// Cassette interactions never used.
    pub unused: Vec<String>,
    /// Requests the egress policy refused (nothing was sent).
    pub denied: Vec<String>,
    /// The run's state afterwards.
    pub state: BTreeMap<String, String>,
}

impl Outcome {
    /// Records per label (`Compute/VirtualMachine`, `Region`,
    /// `CloudServiceType`, error resources as `error:<group>/<type>`).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            let label = if r.is_error() { format!("error:{}", r.label()) } else { r.label() };
            *m.entry(label).or_insert(0) += 1;
        }
        m
    }

    pub fn count(&self, label: &str) -> u64 {
        self.counts().get(label).copied().unwrap_or(0)
    }

    /// Cloud services of one type (`VirtualMachine`, ...).
    pub fn services(&self, cloud_service_type: &str) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| {
                r.resource_type == ResourceType::CloudService
                    && r.resource().get("cloud_service_type").and_then(Value::as_str) == Some(cloud_service_type)
            })
            .collect()
    }

    /// The cloud service whose `reference.resource_id` is `id`.
    pub fn service(&self, id: &str) -> Option<&Record> {
        self.records.iter().find(|r| {
            r.resource_type == ResourceType::CloudService
                && r.resource().get("reference").and_then(|x| x.get("resource_id")).and_then(Value::as_str) == Some(id)
        })
    }

    /// A field of a cloud service by dotted path, e.g. `data.vcpus`.
    pub fn field(&self, id: &str, path: &str) -> Option<Value> {
        let r = self.service(id)?;
        let resource = Value::Object(r.resource_json());
        let mut v = &resource;
        for p in path.split('.') {
            v = match v {
                Value::Object(o) => o.get(p)?,
                Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v.clone())
    }

    /// Messages of the error resources.
    pub fn errors(&self) -> Vec<&str> {
        self.records.iter().filter(|r| r.is_error()).filter_map(|r| r.message.as_deref()).collect()
    }

    /// Requests to one method and path (query ignored).
    pub fn calls_to(&self, method: &str, path: &str) -> usize {
        self.requests.iter().filter(|r| r.method == method && r.url.path() == path).count()
    }

    /// Normalized NDJSON of the records (golden files): one record per line,
    /// `data`/`metadata` decoded, keys sorted.
    pub fn ndjson(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            out.push_str(&r.to_json_line());
            out.push('\n');
        }
        out
    }
}

/// Counts what reaches the real transport, in order.
struct Observed {
    inner: Arc<dyn HttpTransport>,
    seen: Mutex<Vec<OutboundRequest>>,
}

impl HttpTransport for Observed {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, timeout: Duration, max_body: u64) -> TransportFuture<'a> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push(req.clone());
        self.inner.perform(req, timeout, max_body)
    }
}

impl Harness {
    /// Loads a guest component into a fresh runtime (default limits).
    pub fn load(wasm: &Path) -> Result<Harness, String> {
        let runtime = Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() })?;
        let plugin = runtime.load_file(wasm).map_err(|e| e.to_string())?;
        Ok(Harness { runtime: Arc::new(runtime), plugin: Arc::new(plugin) })
    }

    /// A guest already loaded in `runtime` (e.g. resolved from a registry).
    pub fn new(runtime: Arc<Runtime>, plugin: Arc<Plugin>) -> Harness {
        Harness { runtime, plugin }
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// A call with empty options and the replay secret.
    pub fn call(&self) -> Call {
        Call {
            tenant: "test".into(),
            options: json!({}),
            secret: json!({"host": REPLAY_HOST, "username": "cassette", "password": "cassette-password"}),
            task_options: json!({}),
            state: BTreeMap::new(),
            metric_query: None,
        }
    }

    /// A call with the options, task options, state and endpoint a cassette
    /// was recorded with.
    pub fn call_for(&self, cassette: &cassette::Cassette) -> Call {
        let mut call = self.call();
        if let Some(o) = &cassette.options {
            call.options = o.clone();
        }
        if let Some(t) = &cassette.task_options {
            call.task_options = t.clone();
        }
        if let (Some(endpoint), Value::Object(secret)) = (&cassette.endpoint, &mut call.secret) {
            secret.extend(endpoint.clone());
        }
        call.state.extend(cassette.state.clone());
        call.metric_query = cassette.metric_query.clone().or(call.metric_query);
        call
    }

    /// Runs `collect` with `http` answering every request that passes the
    /// egress policy (granted from the call's secret).
    pub async fn collect(&self, call: &Call, http: Arc<dyn HttpTransport>) -> Outcome {
        self.run(RecordedCall::Collect, call, http).await
    }

    /// Runs `verify` as [`Harness::collect`] runs `collect` (the outcome's
    /// report is empty when it succeeds).
    pub async fn verify(&self, call: &Call, http: Arc<dyn HttpTransport>) -> Outcome {
        self.run(RecordedCall::Verify, call, http).await
    }

    async fn run(&self, kind: RecordedCall, call: &Call, http: Arc<dyn HttpTransport>) -> Outcome {
        let observed = Arc::new(Observed { inner: http.clone(), seen: Mutex::new(Vec::new()) });
        let state = Arc::new(MemoryState::default());
        let ns = Namespace { tenant: call.tenant.clone(), collector: self.plugin.name.clone() };
        for (k, v) in &call.state {
            // The preset is the test's own input: a failure here is a bug in the test.
            state.set(&ns, k, v).expect("preset state");
        }
        let logs = Arc::new(Mutex::new(Vec::new()));
        let denials = Arc::new(Mutex::new(Vec::new()));
        let ctx = self
            .runtime
            .context(call.tenant.clone())
            .options(call.options.clone())
            .secret(call.secret.clone())
            .egress_from_secret(9440)
            .state(state.clone())
            .log_capture(logs.clone())
            .http_transport(observed.clone())
            .fixed_wall_clock(FIXED_CLOCK)
            .egress_denials(denials.clone())
            .build();
        let ctx = match ctx {
            Ok(c) => c,
            Err(e) => {
                let result = Err(RunError::from(e));
                return Outcome { result, records: Vec::new(), logs: Vec::new(), requests: Vec::new(), unmatched: Vec::new(), unused: Vec::new(), denied: Vec::new(), state: state.dump(&ns) };
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(16);
        let collecting = async {
            let mut records = Vec::new();
            while let Some(batch) = rx.recv().await {
                records.extend(batch);
            }
            records
        };
        let run = async {
            match kind {
                RecordedCall::Collect => self.runtime.collect(&self.plugin, &ctx, &call.task_options, tx).await,
                RecordedCall::Verify => {
                    drop(tx);
                    self.runtime.verify(&self.plugin, &ctx).await.map(|()| CollectReport::default())
                }
                RecordedCall::CostData => self.runtime.cost_data(&self.plugin, &ctx, &call.task_options, tx).await,
                RecordedCall::MetricData => {
                    drop(tx);
                    match &call.metric_query {
                        Some(q) => self.runtime.metric_data(&self.plugin, &ctx, q).await.map(|_| CollectReport::default()),
                        None => Err(RunError::Input("a metric-data call needs its metric query (the cassette has none)".into())),
                    }
                }
            }
        };
        let (result, records) = tokio::join!(run, collecting);
        let logs = logs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let denied = denials.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let requests = observed.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Outcome { result, records, logs, requests, unmatched: Vec::new(), unused: Vec::new(), denied, state: state.dump(&ns) }
    }

    /// Runs `init` with the call's options.
    pub async fn init(&self, call: &Call) -> Result<PluginMetadata, RunError> {
        let ctx = self.plain_context(call)?;
        self.runtime.init(&self.plugin, &ctx).await
    }

    /// Runs `get-tasks` with the call's options and secret.
    pub async fn get_tasks(&self, call: &Call) -> Result<Vec<Value>, RunError> {
        let ctx = self.plain_context(call)?;
        self.runtime.get_tasks(&self.plugin, &ctx).await
    }

    /// A context for the calls that send no requests (`init`, `get-tasks`).
    fn plain_context(&self, call: &Call) -> Result<RunContext, RunError> {
        self.runtime
            .context(call.tenant.clone())
            .options(call.options.clone())
            .secret(call.secret.clone())
            .egress_from_secret(9440)
            .fixed_wall_clock(FIXED_CLOCK)
            .build()
            .map_err(RunError::from)
    }

    /// Runs the cassette's call (`collect` unless it says `verify`) against
    /// it; the outcome lists the requests it could not answer (with diffs)
    /// and the interactions never used.
    pub async fn replay(&self, call: &Call, replayer: &Arc<Replayer>) -> Outcome {
        let mut out = self.run(replayer.call(), call, replayer.clone()).await;
        out.unmatched = replayer.unmatched();
        out.unused = replayer.unused();
        out
    }

    /// [`Harness::replay`] for plain `#[test]`s.
    pub fn replay_blocking(&self, call: &Call, replayer: &Arc<Replayer>) -> Outcome {
        tokio_runtime().block_on(self.replay(call, replayer))
    }

    /// [`Harness::collect`] on a runtime of its own, for plain `#[test]`s.
    pub fn collect_blocking(&self, call: &Call, http: Arc<dyn HttpTransport>) -> Outcome {
        tokio_runtime().block_on(self.collect(call, http))
    }
}

/// One shared runtime for blocking callers.
pub fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for the test harness")
    })
}
