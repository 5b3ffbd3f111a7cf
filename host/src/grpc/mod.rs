//! CloudForet's collector plugin protocol over gRPC (tonic): what
//! `cf-host serve` exposes so a CloudForet inventory service can use the
//! host as a collector plugin.
//!
//! Services: `spaceone.api.inventory.plugin.Collector` (init, verify,
//! collect), `spaceone.api.inventory.plugin.Job` (get_tasks),
//! `spaceone.api.core.v1.ServerInfo` (get_version), `grpc.health.v1.Health`,
//! and server reflection (v1alpha, which CloudForet's client requires, and
//! v1). Every call runs the guest in a fresh sandbox. The `token` metadata
//! is ignored, as a plugin does.
//!
//! With [`Protocol::CostAnalysis`] the server speaks the cost data source
//! plugin protocol instead ([`cost`]), with [`Protocol::Monitoring`] the
//! monitoring data source protocol ([`monitoring`]).

pub mod convert;
pub mod cost;
pub mod monitoring;

use crate::egress::EgressPolicy;
use crate::host::http::TlsConfig;
use crate::host::state::{MemoryState, StateBackend};
use crate::record::Record;
use crate::registry::{Registry, RegistryError, Want};
use crate::sandbox::{Plugin, RunContext};
use convert::{json_to_struct, resource_info, status, struct_to_json};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Generated protocol types and services.
pub mod pb {
    #[expect(non_camel_case_types, reason = "CloudForet's rpc is named `collect`, so tonic names the stream type `collectStream`")]
    pub mod plugin {
        tonic::include_proto!("spaceone.api.inventory.plugin");
    }
    pub mod core {
        tonic::include_proto!("spaceone.api.core.v1");
    }
    /// Descriptor set of the protocol, google/protobuf imports included.
    pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cloudforet_descriptor.bin"));
}

use pb::plugin::collector_server::{Collector, CollectorServer};
use pb::plugin::job_server::{Job, JobServer};
use pb::plugin::{CollectRequest, GetTaskRequest, InitRequest, PluginInfo, ResourceInfo, TaskInfo, TasksInfo, VerifyRequest};

/// Default port of CloudForet plugin containers.
pub const DEFAULT_PORT: u16 = 50051;
/// Largest gRPC message accepted or sent.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
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
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            protocol: Protocol::Inventory,
            default_endpoint_port: 9440,
            default_tenant: "default".into(),
            unary_deadline: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// The plugin service: one plugin name in the registry; each call runs on
/// the version the registry resolves for it (live, the tenant's pin, or the
/// version the options name).
#[derive(Clone)]
pub struct PluginService {
    registry: Arc<Registry>,
    name: String,
    state: Arc<dyn StateBackend>,
    config: ServeConfig,
    /// Set when the drain timed out: every call still running stops.
    cancel: Arc<tokio::sync::watch::Sender<bool>>,
    /// Told when a collection ends.
    webhook: Option<crate::webhook::Webhook>,
}

/// What a call cancelled by the shutdown answers.
fn shutting_down() -> Status {
    Status::unavailable("ERROR_UNAVAILABLE: the plugin server is shutting down; the call was cancelled")
}

impl PluginService {
    pub fn new(registry: Arc<Registry>, name: impl Into<String>, config: ServeConfig) -> PluginService {
        let (cancel, _) = tokio::sync::watch::channel(false);
        PluginService {
            registry,
            name: name.into(),
            state: Arc::new(MemoryState::default()),
            config,
            cancel: Arc::new(cancel),
            webhook: None,
        }
    }

    /// Resolves once the server cancels the calls still running.
    fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.cancel.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Runs a unary call unless the shutdown cancels it first.
    async fn unless_cancelled<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        tokio::select! {
            r = call => r,
            () = self.cancelled() => Err(shutting_down()),
        }
    }

    /// The version this call runs on; the call keeps it until it ends.
    fn plugin(&self, ctx: &RunContext) -> Result<Arc<Plugin>, Status> {
        let want = Want::from_options(&ctx.options).map_err(|e| Status::invalid_argument(format!("ERROR_INVALID_ARGUMENT: {e}")))?;
        self.registry.resolve(&self.name, &ctx.tenant, &want).map_err(|e| match e {
            RegistryError::NotFound(m) => Status::not_found(format!("ERROR_NOT_FOUND: {m}")),
            other => Status::failed_precondition(format!("ERROR_PLUGIN: {other}")),
        })
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

    /// `verify` of a data source protocol: `collector.verify`, for a plugin
    /// that exports the `role`'s interface (else INVALID_ARGUMENT saying so).
    /// `DataSource.init` of the cost and monitoring protocols: the
    /// component's data source metadata for `role`.
    async fn init_data_source(&self, req: &Request<impl Send>, options: Option<prost_types::Struct>, role: crate::sandbox::Role) -> Result<Option<prost_types::Struct>, Status> {
        let ctx = self.unary_context(req, struct_to_json(options), json!({}))?;
        let plugin = self.plugin(&ctx)?;
        let m = self.unless_cancelled(async { self.registry.runtime().source_init(role, &plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        Ok(m.as_object().map(json_to_struct))
    }

    async fn verify_data_source(
        &self,
        req: &Request<impl Send>,
        options: Option<prost_types::Struct>,
        secret: Option<prost_types::Struct>,
        role: crate::sandbox::Role,
    ) -> Result<(), Status> {
        let ctx = self.unary_context(req, struct_to_json(options), struct_to_json(secret))?;
        let plugin = self.plugin(&ctx)?;
        role.check(&plugin).map_err(|e| status(&e))?;
        self.unless_cancelled(async { self.registry.runtime().verify(&plugin, &ctx).await.map_err(|e| status(&e)) }).await
    }

    /// A run context for a unary call: the run's wall clock is capped.
    fn unary_context<T>(&self, req: &Request<T>, options: Value, secret: Value) -> Result<RunContext, Status> {
        let mut ctx = self.context(req, options, secret)?;
        ctx.limits.wall_clock = ctx.limits.wall_clock.min(self.config.unary_deadline);
        Ok(ctx)
    }

    fn context<T>(&self, req: &Request<T>, options: Value, secret: Value) -> Result<RunContext, Status> {
        let tenant = req
            .metadata()
            .get("x_domain_id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.config.default_tenant)
            .to_string();
        let tls = TlsConfig::from_options(&options)
            .map_err(|e| Status::invalid_argument(format!("ERROR_INVALID_ARGUMENT: {e}")))?;
        let mut ctx = RunContext::new(tenant.clone(), self.registry.runtime().limits_for(&tenant));
        ctx.egress = EgressPolicy::for_secret(&secret, self.config.default_endpoint_port);
        ctx.options = options;
        ctx.secret = secret;
        ctx.tls = tls;
        ctx.state = self.state.clone();
        Ok(ctx)
    }
}

#[tonic::async_trait]
impl Collector for PluginService {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<PluginInfo>, Status> {
        let options = struct_to_json(req.get_ref().options.clone());
        let ctx = self.unary_context(&req, options, json!({}))?;
        let plugin = self.plugin(&ctx)?;
        let m = self.unless_cancelled(async { self.registry.runtime().init(&plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        let metadata = json!({
            "supported_resource_type": m.supported_resource_types,
            "supported_schedules": m.supported_schedules,
            "supported_features": m.supported_features,
            "filter_format": [],
            "options_schema": m.options_schema,
        });
        let metadata = metadata.as_object().map(json_to_struct);
        Ok(Response::new(PluginInfo { metadata }))
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let ctx = self.unary_context(&req, options, secret)?;
        let plugin = self.plugin(&ctx)?;
        self.unless_cancelled(async { self.registry.runtime().verify(&plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        Ok(Response::new(()))
    }

    type collectStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<ResourceInfo, Status>> + Send>>;

    async fn collect(&self, req: Request<CollectRequest>) -> Result<Response<Self::collectStream>, Status> {
        let r = req.get_ref();
        let (options, secret) = (struct_to_json(r.options.clone()), struct_to_json(r.secret_data.clone()));
        let task_options = struct_to_json(r.task_options.clone());
        let ctx = self.context(&req, options, secret)?;
        let plugin = self.plugin(&ctx)?;
        let (out_tx, out_rx) = mpsc::channel::<Result<ResourceInfo, Status>>(STREAM_BUFFER);
        let (rec_tx, mut rec_rx) = mpsc::channel::<Vec<Record>>(4);
        let runtime = self.registry.runtime().clone();
        let run_id = ctx.run_id.clone();
        let cancelled = self.cancelled();
        let hook = self.webhook.clone().map(|w| {
            let event = crate::webhook::Event::start(&run_id, &ctx.tenant, &plugin.name, plugin.short_digest());
            (w, event, Arc::new(std::sync::Mutex::new(crate::webhook::Tally::default())))
        });
        let counted = hook.as_ref().map(|(_, _, c)| c.clone());
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let client_gone = out_tx.clone();
            let forward_tx = out_tx.clone();
            let forward = async move {
                while let Some(batch) = rec_rx.recv().await {
                    for r in batch {
                        if let Some(c) = &counted {
                            c.lock().unwrap_or_else(|p| p.into_inner()).add(&r);
                        }
                        if forward_tx.send(Ok(resource_info(r))).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let run = async { futures::join!(runtime.collect(&plugin, &ctx, &task_options, rec_tx), forward).0 };
            let failure: Option<(&str, String)> = tokio::select! {
                // The client cancelled or went away: dropping the run future
                // cancels the guest at once.
                _ = client_gone.closed() => {
                    tracing::info!(run = %run_id, "collect stream closed by the client; run cancelled");
                    Some(("CANCELLED", "the client closed the stream".to_string()))
                }
                () = cancelled => {
                    tracing::warn!(run = %run_id, "collect cancelled by the shutdown (drain timeout)");
                    let _ = out_tx.send(Err(shutting_down())).await;
                    Some(("UNAVAILABLE", "the plugin server shut down".to_string()))
                }
                result = run => {
                    match result {
                        Ok(report) => {
                            tracing::info!(run = %run_id, records = report.records, errors = report.errors, "collect finished");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(run = %run_id, error = %e, "collect failed");
                            let _ = out_tx.send(Err(status(&e))).await;
                            Some((e.code().grpc_name(), e.to_string()))
                        }
                    }
                }
            };
            if let Some((webhook, event, counts)) = hook {
                let tally = std::mem::take(&mut *counts.lock().unwrap_or_else(|p| p.into_inner()));
                webhook.spawn(event.finish(started.elapsed(), tally, failure));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

#[tonic::async_trait]
impl Job for PluginService {
    async fn get_tasks(&self, req: Request<GetTaskRequest>) -> Result<Response<TasksInfo>, Status> {
        let r = req.get_ref();
        let mut options = struct_to_json(r.options.clone());
        let secret = struct_to_json(r.secret_data.clone());
        // The task filter reaches the collector inside its options.
        if let (Some(f), Value::Object(o)) = (&r.task_filter, &mut options) {
            let filter = json!({
                "providers": f.providers, "cloud_service_groups": f.cloud_service_groups,
                "cloud_service_types": f.cloud_service_types, "region_codes": f.region_codes, "resources": f.resources,
            });
            o.insert("task_filter".into(), filter);
        }
        let ctx = self.unary_context(&req, options, secret)?;
        let plugin = self.plugin(&ctx)?;
        let tasks =
            self.unless_cancelled(async { self.registry.runtime().get_tasks(&plugin, &ctx).await.map_err(|e| status(&e)) }).await?;
        let tasks = tasks
            .iter()
            .map(|t| TaskInfo { task_options: t.as_object().map(json_to_struct) })
            .collect();
        Ok(Response::new(TasksInfo { tasks }))
    }
}

struct ServerInfo;

#[tonic::async_trait]
impl pb::core::server_info_server::ServerInfo for ServerInfo {
    async fn get_version(&self, _: Request<()>) -> Result<Response<pb::core::VersionInfo>, Status> {
        Ok(Response::new(pb::core::VersionInfo { version: env!("CARGO_PKG_VERSION").to_string() }))
    }
}

/// Serves the plugin protocol on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    service: PluginService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use cost::pb::{cost_server::CostServer, data_source_server::DataSourceServer, job_server::JobServer as CostJobServer};
    use monitoring::pb::{data_source_server::DataSourceServer as MonDataSourceServer, metric_server::MetricServer};
    let protocol = service.config.protocol;
    let (health, health_service) = tonic_health::server::health_reporter();
    // The services this protocol serves, as health reports them.
    let services: Vec<&'static str> = {
        use tonic::server::NamedService;
        match protocol {
            Protocol::Inventory => vec![<CollectorServer<PluginService> as NamedService>::NAME, <JobServer<PluginService> as NamedService>::NAME],
            Protocol::CostAnalysis => vec![
                <DataSourceServer<PluginService> as NamedService>::NAME,
                <CostJobServer<PluginService> as NamedService>::NAME,
                <CostServer<PluginService> as NamedService>::NAME,
            ],
            Protocol::Monitoring => vec![<MonDataSourceServer<PluginService> as NamedService>::NAME, <MetricServer<PluginService> as NamedService>::NAME],
        }
    };
    let serving = |on: bool| {
        let (health, services) = (health.clone(), services.clone());
        async move {
            let status = if on { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            for name in services {
                health.set_service_status(name, status).await;
            }
        }
    };
    serving(true).await;
    let descriptor = match protocol {
        Protocol::Inventory => pb::DESCRIPTOR_SET,
        Protocol::CostAnalysis => cost::pb::DESCRIPTOR_SET,
        Protocol::Monitoring => monitoring::pb::DESCRIPTOR_SET,
    };
    // Like CloudForet's Python servers, reflection lists the plugin's
    // services and health, not itself.
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.include_reflection_service(false)
            .register_encoded_file_descriptor_set(descriptor)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let drain = service.config.drain_timeout;
    let cancel = service.cancel.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    let router = match protocol {
        Protocol::Inventory => builder
            .add_service(
                CollectorServer::new(service.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                JobServer::new(service)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
        Protocol::CostAnalysis => builder
            .add_service(
                DataSourceServer::new(service.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                CostJobServer::new(service.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                CostServer::new(service)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
        Protocol::Monitoring => builder
            .add_service(
                MonDataSourceServer::new(service.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                MetricServer::new(service)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
    };
    let server = router
        .add_service(pb::core::server_info_server::ServerInfoServer::new(ServerInfo))
        .add_service(health_service)
        .add_service(reflection_v1alpha)
        .add_service(reflection_v1)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    // Serve until the shutdown signal, then drain: health says NOT_SERVING,
    // no new connection is accepted, calls in flight run on for up to
    // `drain_timeout`; whatever still runs then is cancelled (dropping the
    // server drops its streams, which stops their guests).
    tokio::select! {
        r = &mut server => return r.map_err(|e| format!("gRPC server failed: {e}")),
        () = shutdown => {}
    }
    serving(false).await;
    let _ = stop_tx.send(());
    tracing::info!(drain_timeout_s = drain.as_secs_f64(), "shutting down: draining calls in flight");
    match tokio::time::timeout(drain, &mut server).await {
        Ok(r) => r.map_err(|e| format!("gRPC server failed: {e}")),
        Err(_) => {
            tracing::warn!(drain_timeout_s = drain.as_secs_f64(), "calls still running after the drain timeout are cancelled");
            let _ = cancel.send(true);
            // Cancelled calls end their streams at once; give the server a
            // moment to close their connections.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut server).await;
            Ok(())
        }
    }
}
