//! The gRPC server: the protocol's services, health, reflection and the
//! graceful shutdown, on a listener, until a shutdown future resolves.

use super::cost;
use super::inventory::ServerInfo;
use super::monitoring;
use super::pb;
use super::pb::plugin::collector_server::CollectorServer;
use super::pb::plugin::job_server::JobServer;
use super::service::{PluginService, Protocol};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest gRPC message sent.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

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
            // Health's descriptor is in the protocol's set, under its
            // canonical file name (not tonic-health's bare `health.proto`).
            .register_encoded_file_descriptor_set(descriptor)
    };
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let config = service.config.clone();
    let incoming = crate::net::incoming(listener, config.conn.clone());
    let drain = config.drain_timeout;
    let cancel = service.cancel.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // tonic's own decoding limit stays above ours (which answers first, as
    // an invalid argument); records sent are bounded by the run's output
    // limits.
    let decode = config.max_message_bytes.saturating_add(1024);
    macro_rules! limited {
        ($server:expr) => {
            $server.max_decoding_message_size(decode).max_encoding_message_size(MAX_MESSAGE_BYTES)
        };
    }
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(config.conn.max_streams_per_connection)
        .http2_max_pending_accept_reset_streams(Some(64))
        .http2_max_header_list_size(16 << 10)
        .layer(crate::net::ActivityLayer)
        .layer(super::limit::MessageLimitLayer { max_bytes: config.max_message_bytes });
    let router = match protocol {
        Protocol::Inventory => builder.add_service(limited!(CollectorServer::new(service.clone()))).add_service(limited!(JobServer::new(service))),
        Protocol::CostAnalysis => builder
            .add_service(limited!(DataSourceServer::new(service.clone())))
            .add_service(limited!(CostJobServer::new(service.clone())))
            .add_service(limited!(CostServer::new(service))),
        Protocol::Monitoring => builder
            .add_service(limited!(MonDataSourceServer::new(service.clone())))
            .add_service(limited!(MetricServer::new(service))),
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
