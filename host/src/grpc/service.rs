//! [`PluginService`]: what every protocol's calls share. The version a call
//! runs on (registry resolution), the run context of a call, cancellation
//! by the shutdown, per-peer admission, and the pump that streams an
//! emitting guest call to its client ([`PluginService::stream_call`]).

use super::convert::{json_to_struct, status, struct_to_json};
use super::failures::{FailureLog, Recording};
use crate::testing::cassette::RecordedCall;
use crate::error::RunError;
use crate::host::state::{MemoryState, StateBackend};
use crate::record::Record;
use crate::registry::{Registry, RegistryError};
use crate::runtime::{CollectReport, Plugin, RunContext};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

/// Default port of CloudForet plugin containers.
pub const DEFAULT_PORT: u16 = 50051;
/// Records buffered between the guest and the gRPC stream.
pub const STREAM_BUFFER: usize = 256;

/// Which CloudForet plugin protocol a server speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// `spaceone.api.inventory.plugin` (Collector, Job): an inventory collector.
    #[default]
    Inventory,
    /// `spaceone.api.cost_analysis.plugin` (DataSource, Job, Cost): a cost
    /// data source (the component must export `cost-source`).
    CostAnalysis,
    /// `spaceone.api.monitoring.plugin` (DataSource, Metric): a monitoring
    /// data source (the component must export `metric-source`).
    Monitoring,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub protocol: Protocol,
    /// Port granted when `secret_data` names a host without a port.
    pub default_endpoint_port: u16,
    /// Tenant used for state when the call names none (`x_domain_id`).
    pub default_tenant: String,
    /// Wall-clock budget of a unary call (`init`, `verify`, `get_tasks`);
    /// CloudForet gives up on a plugin after 180 s.
    pub unary_deadline: Duration,
    /// On shutdown, how long calls in flight may run on before they are
    /// cancelled (new calls are refused at once).
    pub drain_timeout: Duration,
    /// A streaming call whose client reads nothing for this long is
    /// cancelled, and its sandbox slot released.
    pub stall_timeout: Duration,
    /// Calls of one peer (client address) running at once; more wait, up
    /// to [`ServeConfig::peer_queue`] of them, then are refused. 0: the
    /// default, three quarters of the sandbox pool, so one client never
    /// holds every slot.
    pub max_calls_per_peer: usize,
    /// Calls of one peer waiting for a slot before more are refused.
    pub peer_queue: usize,
    /// Largest request message (options, secret, task options); larger is
    /// an invalid argument.
    pub max_message_bytes: usize,
    /// Connections: how many, idle and header timeouts, streams each.
    pub conn: crate::net::ConnLimits,
    /// The CloudForet release at the other end (how records go on the wire).
    pub cloudforet: super::convert::CloudForet,
    /// Take the tenant from the `x_domain_id` metadata (a trusted gateway
    /// in front sets it); otherwise it is derived from the call's secret
    /// ([`crate::tenancy::TenantKey::derive`]) and the header is ignored.
    pub trust_tenant_header: bool,
    /// The key tenants are derived with (`None`: a random one).
    pub tenant_key: Option<crate::tenancy::TenantKey>,
    /// Keep each failed `collect` / `verify` run's exchange as a cassette
    /// (`--record-failures`; see [`super::failures`]).
    pub record_failures: Option<super::failures::RecordFailures>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            protocol: Protocol::Inventory,
            default_endpoint_port: 9440,
            default_tenant: "default".into(),
            unary_deadline: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            max_calls_per_peer: 0,
            peer_queue: 256,
            max_message_bytes: super::limit::DEFAULT_MAX_MESSAGE_BYTES,
            conn: crate::net::ConnLimits::default(),
            cloudforet: super::convert::CloudForet::Auto,
            trust_tenant_header: false,
            tenant_key: None,
            record_failures: None,
        }
    }
}

/// The plugin service: one plugin name in the registry; each call runs on
/// the version the registry resolves for it (live, the tenant's pin, or the
/// version the options name).
#[derive(Clone)]
pub struct PluginService {
    pub(super) registry: Arc<Registry>,
    name: String,
    state: Arc<dyn StateBackend>,
    pub(super) config: ServeConfig,
    /// Set when the drain timed out: every call still running stops.
    pub(super) cancel: Arc<tokio::sync::watch::Sender<bool>>,
    /// Told when a collection ends: `--webhook-url`, and the webhooks
    /// registered through the admin API.
    pub(super) webhook: Option<crate::webhook::Webhook>,
    pub(super) subscriptions: Option<Arc<crate::webhook::Subscriptions>>,
    peers: Arc<Peers>,
    /// Where failed runs are recorded (`--record-failures`).
    failures: Option<Arc<FailureLog>>,
}

/// What a call cancelled by the shutdown answers.
pub(super) fn shutting_down() -> Status {
    Status::unavailable("ERROR_UNAVAILABLE: the plugin server is shutting down; the call was cancelled")
}

/// How a streamed call ended.
pub(super) enum StreamEnd {
    Finished(CollectReport),
    Failed(RunError),
    /// The client cancelled or went away.
    ClientGone,
    /// The client read nothing for the stall timeout.
    Stalled,
    /// The shutdown's drain timed out.
    Shutdown,
}

impl StreamEnd {
    /// How the run itself ended, when it did; `None` when the client or
    /// the shutdown cut it short.
    pub(super) fn outcome(&self) -> Option<Result<&CollectReport, &RunError>> {
        match self {
            StreamEnd::Finished(report) => Some(Ok(report)),
            StreamEnd::Failed(e) => Some(Err(e)),
            StreamEnd::ClientGone | StreamEnd::Stalled | StreamEnd::Shutdown => None,
        }
    }

    /// `(code, message)` of an unsuccessful end, as webhooks report it.
    pub(super) fn failure(&self) -> Option<(&'static str, String)> {
        match self {
            StreamEnd::Finished(_) => None,
            StreamEnd::Failed(e) => Some((e.code().grpc_name(), e.to_string())),
            StreamEnd::ClientGone => Some(("CANCELLED", "the client closed the stream".into())),
            StreamEnd::Stalled => Some(("CANCELLED", "the client read nothing for the stall timeout".into())),
            StreamEnd::Shutdown => Some(("UNAVAILABLE", "the plugin server shut down".into())),
        }
    }
}

impl PluginService {
    pub fn new(registry: Arc<Registry>, name: impl Into<String>, mut config: ServeConfig) -> PluginService {
        let (cancel, _) = tokio::sync::watch::channel(false);
        if config.tenant_key.is_none() {
            // Without randomness a fixed key still isolates tenants from
            // each other; only its ids become predictable.
            config.tenant_key = Some(crate::tenancy::TenantKey::random().unwrap_or_else(|e| {
                tracing::warn!("{e}; tenants are derived with a fixed key");
                crate::tenancy::TenantKey::from_bytes([0; 32])
            }));
        }
        let pool = registry.runtime().config().max_concurrency as usize;
        let per_peer = match config.max_calls_per_peer {
            0 => (pool * 3).div_ceil(4).max(1),
            n => n,
        };
        PluginService {
            failures: config.record_failures.clone().map(FailureLog::new),
            registry,
            name: name.into(),
            state: Arc::new(MemoryState::default()),
            peers: Arc::new(Peers { max: per_peer, queue: config.peer_queue, map: Mutex::default() }),
            config,
            cancel: Arc::new(cancel),
            webhook: None,
            subscriptions: None,
        }
    }

    /// Persist the state interface's data in `state` (e.g. the store).
    pub fn with_state(mut self, state: Arc<dyn StateBackend>) -> PluginService {
        self.state = state;
        self
    }

    /// Sends `collection.finished` / `collection.failed` for every collect call.
    pub fn with_webhook(mut self, webhook: crate::webhook::Webhook) -> PluginService {
        self.webhook = Some(webhook);
        self
    }

    /// Sends each collection's event to the webhooks registered here too.
    pub fn with_subscriptions(mut self, subs: Arc<crate::webhook::Subscriptions>) -> PluginService {
        self.subscriptions = Some(subs);
        self
    }

    /// Records `ctx`'s run when failed runs are recorded: its transport
    /// is wrapped; the recording decides at the end whether it is kept.
    pub(super) fn record(&self, ctx: &mut RunContext, plugin: &Plugin, call: RecordedCall, task_options: Option<&Value>) -> Option<Recording> {
        self.failures.as_ref().map(|f| f.start(ctx, plugin, call, task_options))
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Resolves once the server cancels the calls still running.
    pub(super) fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.cancel.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Runs a unary call unless the shutdown cancels it first.
    pub(super) async fn unless_cancelled<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        tokio::select! {
            r = call => r,
            () = self.cancelled() => Err(shutting_down()),
        }
    }

    /// The version this call runs on; the call keeps it until it ends.
    pub(super) fn plugin(&self, ctx: &RunContext) -> Result<Arc<Plugin>, Status> {
        self.registry.resolve(&self.name, &ctx.tenant, &ctx.want).map_err(|e| match e {
            RegistryError::NotFound(m) => Status::not_found(format!("ERROR_NOT_FOUND: {m}")),
            other => Status::failed_precondition(format!("ERROR_PLUGIN: {other}")),
        })
    }

    /// `DataSource.init` of the cost and monitoring protocols: the
    /// component's data source metadata for `role`.
    pub(super) async fn init_data_source(
        &self,
        req: &Request<impl Send>,
        options: Option<prost_types::Struct>,
        role: crate::runtime::Role,
    ) -> Result<Option<prost_types::Struct>, Status> {
        let (_slot, ctx, plugin) = self.unary(req, struct_to_json(options), serde_json::json!({})).await?;
        let m = self.unless_cancelled(async { self.registry.runtime().source_init(role, &plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        Ok(m.as_object().map(json_to_struct))
    }

    /// `DataSource.verify` of the cost and monitoring protocols:
    /// `collector.verify`, for a plugin that exports the `role`'s interface
    /// (else INVALID_ARGUMENT saying so).
    pub(super) async fn verify_data_source(
        &self,
        req: &Request<impl Send>,
        options: Option<prost_types::Struct>,
        secret: Option<prost_types::Struct>,
        role: crate::runtime::Role,
    ) -> Result<(), Status> {
        let (_slot, ctx, plugin) = self.unary(req, struct_to_json(options), struct_to_json(secret)).await?;
        role.check(&plugin).map_err(|e| status(&e))?;
        self.verify(ctx, &plugin).await
    }

    /// `verify` of a unary call's context (recorded when it fails and
    /// failed runs are recorded), unless the shutdown cancels it.
    pub(super) async fn verify(&self, mut ctx: RunContext, plugin: &Plugin) -> Result<(), Status> {
        let recording = self.record(&mut ctx, plugin, RecordedCall::Verify, None);
        self.unless_cancelled(async {
            let r = self.registry.runtime().verify(plugin, &ctx).await;
            Recording::unary_ended(recording, &r);
            r.map_err(|e| status(&e))
        })
        .await
    }

    /// A unary call: its peer slot (held until the call ends), its run
    /// context (the wall clock capped at the unary deadline) and the version
    /// it runs on.
    pub(super) async fn unary<T>(&self, req: &Request<T>, options: Value, secret: Value) -> Result<(PeerSlot, RunContext, Arc<Plugin>), Status> {
        let slot = self.admit(req).await?;
        let ctx = self.build_context(req, options, secret, Some(self.config.unary_deadline))?;
        let plugin = self.plugin(&ctx)?;
        Ok((slot, ctx, plugin))
    }

    /// A streaming call: as [`PluginService::unary`], under the run's own
    /// wall clock.
    pub(super) async fn streaming<T>(&self, req: &Request<T>, options: Value, secret: Value) -> Result<(PeerSlot, RunContext, Arc<Plugin>), Status> {
        let slot = self.admit(req).await?;
        let ctx = self.build_context(req, options, secret, None)?;
        let plugin = self.plugin(&ctx)?;
        Ok((slot, ctx, plugin))
    }

    /// The tenant of a call: see [`ServeConfig::trust_tenant_header`].
    fn tenant<T>(&self, req: &Request<T>, secret: &Value) -> String {
        if self.config.trust_tenant_header {
            let header = req.metadata().get("x_domain_id").and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty());
            return header.unwrap_or(&self.config.default_tenant).to_string();
        }
        let (Some(key), Ok(secret)) = (&self.config.tenant_key, crate::secret::Secret::new(secret.clone())) else {
            return self.config.default_tenant.clone();
        };
        key.derive(&self.registry.runtime().config().tenancy, &secret, self.config.default_endpoint_port)
            .unwrap_or_else(|| self.config.default_tenant.clone())
    }

    fn build_context<T>(&self, req: &Request<T>, options: Value, secret: Value, deadline: Option<Duration>) -> Result<RunContext, Status> {
        let tenant = self.tenant(req, &secret);
        let mut b = self
            .registry
            .runtime()
            .context(tenant)
            .options(options)
            .secret(secret)
            .egress_from_secret(self.config.default_endpoint_port)
            .state(self.state.clone());
        if let Some(d) = deadline {
            b = b.wall_clock_at_most(d);
        }
        b.build().map_err(|e| Status::invalid_argument(format!("ERROR_INVALID_ARGUMENT: {e}")))
    }

    /// Admits a call of the request's peer: its slot, held until the call
    /// ends. A peer past its running calls waits; past its queue, it is
    /// refused.
    async fn admit<T>(&self, req: &Request<T>) -> Result<PeerSlot, Status> {
        let peer = req
            .extensions()
            .get::<crate::net::PeerInfo>()
            .map(|p| p.remote.ip())
            .or_else(|| req.remote_addr().map(|a| a.ip()));
        self.peers.admit(peer).await
    }

    /// Runs an emitting guest call (`run` gets the records' sender) and
    /// streams what it emits: `messages` turns each batch into the
    /// protocol's messages. The run ends when the guest does, when the
    /// client cancels or reads nothing for the stall timeout, or when the
    /// shutdown cancels it; `ended` hears how. The peer's slot is held
    /// until then.
    pub(super) fn stream_call<M, R, F>(
        &self,
        slot: PeerSlot,
        run_id: &str,
        run: R,
        mut messages: impl FnMut(Vec<Record>) -> Vec<M> + Send + 'static,
        ended: impl FnOnce(&StreamEnd) + Send + 'static,
    ) -> ReceiverStream<Result<M, Status>>
    where
        M: Send + 'static,
        R: FnOnce(mpsc::Sender<Vec<Record>>) -> F,
        F: Future<Output = Result<CollectReport, RunError>> + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel::<Result<M, Status>>(STREAM_BUFFER);
        let (rec_tx, mut rec_rx) = mpsc::channel::<Vec<Record>>(4);
        let run = run(rec_tx);
        let cancelled = self.cancelled();
        let stall = self.config.stall_timeout;
        let metrics = self.registry.runtime().metrics().clone();
        let span = tracing::info_span!("stream", run = %run_id);
        let task = async move {
            let _slot = slot;
            let client_gone = out_tx.clone();
            let forward_tx = out_tx.clone();
            let forward = async move {
                while let Some(batch) = rec_rx.recv().await {
                    for m in messages(batch) {
                        match tokio::time::timeout(stall, forward_tx.send(Ok(m))).await {
                            Err(_) => return Err(StreamEnd::Stalled),
                            Ok(Err(_)) => return Err(StreamEnd::ClientGone),
                            Ok(Ok(())) => {}
                        }
                    }
                }
                Ok(())
            };
            let mut run = std::pin::pin!(run);
            let mut forward = std::pin::pin!(forward);
            let mut cancelled = std::pin::pin!(cancelled);
            let mut result = None;
            let end = loop {
                tokio::select! {
                    r = &mut run, if result.is_none() => result = Some(r),
                    f = &mut forward => break match f {
                        // Every batch was sent: the run has ended (or is
                        // ending: its sender is gone).
                        Ok(()) => match result.take() {
                            Some(r) => r,
                            None => (&mut run).await,
                        }
                        .map_or_else(StreamEnd::Failed, StreamEnd::Finished),
                        Err(end) => end,
                    },
                    _ = client_gone.closed() => break StreamEnd::ClientGone,
                    () = &mut cancelled => break StreamEnd::Shutdown,
                }
            };
            // Dropping the run future (at the end of this task) stops the
            // guest at once, whatever it was doing.
            match &end {
                StreamEnd::Finished(report) => tracing::info!(records = report.records, errors = report.errors, "stream finished"),
                StreamEnd::Failed(e) => {
                    tracing::warn!(error = %e, "stream failed");
                    let _ = out_tx.send(Err(status(e))).await;
                }
                StreamEnd::ClientGone => tracing::info!("stream closed by the client; run cancelled"),
                StreamEnd::Stalled => {
                    tracing::warn!(stall_timeout_s = stall.as_secs_f64(), "stream stalled: the client read nothing; run cancelled");
                    metrics.add("cf_host_stream_stalls_total", vec![], 1.0);
                    let _ = out_tx.try_send(Err(Status::deadline_exceeded(format!(
                        "ERROR_TIMEOUT: the client read nothing for {} s; the run was cancelled",
                        stall.as_secs()
                    ))));
                }
                StreamEnd::Shutdown => {
                    tracing::warn!("stream cancelled by the shutdown (drain timeout)");
                    let _ = out_tx.send(Err(shutting_down())).await;
                }
            }
            ended(&end);
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
        ReceiverStream::new(out_rx)
    }
}

/// Calls per peer address: a semaphore each, and how many wait.
struct Peers {
    max: usize,
    queue: usize,
    map: Mutex<HashMap<Option<IpAddr>, Arc<PeerState>>>,
}

struct PeerState {
    running: Arc<Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
}

/// A peer's slot for one call; frees it when dropped.
pub(super) struct PeerSlot {
    _permit: OwnedSemaphorePermit,
}

impl Peers {
    async fn admit(&self, peer: Option<IpAddr>) -> Result<PeerSlot, Status> {
        use std::sync::atomic::Ordering;
        let state = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            // Idle peers (nothing running or waiting) are forgotten, so the
            // table holds only peers with calls.
            if map.len() > 1024 {
                let max = self.max;
                map.retain(|_, s| s.running.available_permits() < max || s.waiting.load(Ordering::Relaxed) > 0);
            }
            map.entry(peer)
                .or_insert_with(|| Arc::new(PeerState { running: Arc::new(Semaphore::new(self.max)), waiting: Default::default() }))
                .clone()
        };
        if let Ok(p) = state.running.clone().try_acquire_owned() {
            return Ok(PeerSlot { _permit: p });
        }
        // Counted while waiting, also when the caller gives up (the
        // future is dropped).
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        let waiting = Waiting(&state.waiting);
        if state.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            drop(waiting);
            let who = peer.map_or_else(|| "this client".to_string(), |p| p.to_string());
            return Err(Status::resource_exhausted(format!(
                "ERROR_QUOTA_EXCEEDED: {who} has {} calls running and {} waiting; try again later",
                self.max, self.queue
            )));
        }
        let permit = state.running.clone().acquire_owned().await;
        drop(waiting);
        permit.map(|p| PeerSlot { _permit: p }).map_err(|_| Status::unavailable("ERROR_UNAVAILABLE: the server is shutting down"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_runs_its_share_queues_a_bounded_number_then_is_refused() {
        let peers = Peers { max: 2, queue: 1, map: Mutex::default() };
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        let s1 = peers.admit(a).await.unwrap();
        let _s2 = peers.admit(a).await.unwrap();
        // The third waits...
        let waiting = tokio::time::timeout(Duration::from_millis(50), peers.admit(a)).await;
        assert!(waiting.is_err(), "a third call of a peer with 2 running waits");
        // ... while another peer is admitted at once.
        let _other = tokio::time::timeout(Duration::from_millis(50), peers.admit(b)).await.unwrap().unwrap();
        // With one waiting, the next is refused.
        let peers = Arc::new(peers);
        let p2 = peers.clone();
        let queued = tokio::spawn(async move { p2.admit(a).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused = peers.admit(a).await.err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().starts_with("ERROR_QUOTA_EXCEEDED: 10.0.0.1"), "{}", refused.message());
        drop(s1);
        queued.await.unwrap().unwrap();
    }
}
