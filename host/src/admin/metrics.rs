//! `GET /metrics` (`--metrics-bind`): the host's Prometheus metrics and the
//! live plugin versions.

use crate::registry::Registry;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// `GET /metrics`: the host's Prometheus metrics and the live plugin versions.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let live: Vec<crate::metrics::Series> = registry
                    .list()
                    .into_iter()
                    .filter(|v| v.live)
                    .map(|v| ("cf_host_plugin_live".to_string(), vec![("plugin", v.name), ("version", v.version)], 1.0))
                    .collect();
                let text = registry.runtime().metrics().render(&live);
                ([("content-type", "text/plain; version=0.0.4")], text)
            }
        }),
    )
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    conn: crate::net::ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    crate::net::serve_http(listener, router(registry), conn, shutdown)
        .await
        .map_err(|e| format!("metrics endpoint failed: {e}"))
}
