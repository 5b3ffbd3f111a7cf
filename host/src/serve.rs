//! `cf-host serve` as a library function: [`run`] wires the runtime, the
//! registry (plugins from files, a watched directory and OCI registries),
//! the gRPC plugin server, the admin API and the metrics endpoint on the
//! listeners it is given, until a shutdown future resolves. The CLI binds
//! the listeners from its flags; tests bind loopback ports and call it in
//! process.

use crate::grpc::{PluginService, ServeConfig};
use crate::registry::cache::PrecompileCache;
use crate::registry::identity::Manifest;
use crate::registry::oci::OciOptions;
use crate::registry::signature::TrustPolicy;
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What `serve` runs.
#[derive(Default)]
pub struct ServeOptions {
    pub runtime: RuntimeConfig,
    pub grpc: ServeConfig,
    /// A component to load and make live.
    pub plugin: Option<PathBuf>,
    /// Load every component here and watch it (hot swap).
    pub plugins_dir: Option<crate::registry::watch::WatchedDir>,
    /// Pull and load these wasm OCI artifacts at start; the first one is
    /// live unless `plugin` is given.
    pub plugin_oci: Vec<String>,
    /// The plugin name served (default: the `plugin` component's, else
    /// `nutanix`).
    pub name: Option<String>,
    /// Precompile cache directory; `None`: no cache.
    pub cache_dir: Option<PathBuf>,
    pub trust: TrustPolicy,
    pub oci: OciOptions,
    pub webhook: Option<crate::webhook::Webhook>,
    /// Keep the state interface's data in this SQLite file (memory otherwise).
    pub store: Option<PathBuf>,
    /// Fleet mode: the PostgreSQL database shared with the other replicas
    /// (guest state, tenant run leases, the tenant key). Excludes `store`.
    pub database: Option<String>,
    /// The admin API's settings, when `listeners.admin` is given.
    pub admin: Option<crate::admin::AdminConfig>,
    /// Connection limits of the admin and metrics servers.
    pub conn: crate::net::ConnLimits,
}

/// Where `serve` listens.
pub struct Listeners {
    pub grpc: TcpListener,
    pub admin: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

/// What a server that is starting tells its caller once it is ready.
#[derive(Clone, Debug)]
pub struct Ready {
    pub name: String,
    /// The live version, if any.
    pub live: Option<String>,
    pub grpc: std::net::SocketAddr,
    pub admin: Option<std::net::SocketAddr>,
    pub metrics: Option<std::net::SocketAddr>,
    /// Components pulled from OCI registries at start: `name@version from source`.
    pub pulled: Vec<String>,
}

/// Loads the plugins, then serves until `shutdown` resolves and the calls
/// in flight have drained. `ready` hears the addresses once everything is
/// loaded and listening.
pub async fn run(
    o: ServeOptions,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&Ready),
) -> Result<(), String> {
    let fleet = match o.database.clone() {
        Some(url) => Some(
            tokio::task::spawn_blocking(move || crate::fleet::Fleet::connect(&url))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut runtime_config = o.runtime;
    if let Some(f) = &fleet {
        runtime_config.leases = Some(f.leases());
    }
    let runtime = Arc::new(Runtime::new(runtime_config)?);
    let cache = o.cache_dir.map(PrecompileCache::new).transpose()?;
    let registry = Arc::new(Registry::new(runtime, cache).with_trust(o.trust));
    let mut name = o.name.clone();
    if let Some(path) = &o.plugin {
        let report = load_named_file(&registry, path)?;
        name.get_or_insert(report);
    }
    let mut pulled = Vec::new();
    for (i, reference) in o.plugin_oci.iter().enumerate() {
        let p = crate::registry::oci::pull(reference, &o.oci).await.map_err(|e| e.to_string())?;
        let source = p.source();
        let report = registry.load_bytes(&source, &p.wasm, p.manifest, None, o.plugin.is_none() && i == 0).map_err(|e| e.to_string())?;
        pulled.push(format!("{}@{} from {source}", report.name, report.version));
        name.get_or_insert(report.name);
    }
    let name = name.unwrap_or_else(|| "nutanix".into());
    let _watch = match &o.plugins_dir {
        Some(dir) => Some(crate::registry::watch::watch_dir(registry.clone(), dir.clone()).await?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let store = o.store.as_deref().map(Store::open).transpose()?.map(Arc::new);
    let mut grpc = o.grpc;
    if let Some(r) = &grpc.record_failures {
        // A directory that cannot be made is the operator's to fix now, not
        // at the first failed run.
        std::fs::create_dir_all(&r.dir).map_err(|e| format!("--record-failures {}: {e}", r.dir.display()))?;
    }
    if let (Some(store), None) = (&store, &grpc.tenant_key) {
        // Tenants keep their ids, and so their state, across restarts.
        grpc.tenant_key = Some(crate::tenancy::TenantKey::from_bytes(store.host_key("tenant")?));
    }
    if let (Some(f), None) = (&fleet, &grpc.tenant_key) {
        // Every replica derives the same tenant ids, so a tenant finds its
        // state wherever its run lands.
        let f = f.clone();
        let key = tokio::task::spawn_blocking(move || f.host_key("tenant")).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        grpc.tenant_key = Some(crate::tenancy::TenantKey::from_bytes(key));
    }
    let mut service = PluginService::new(registry.clone(), name.clone(), grpc);
    if let Some(hook) = o.webhook {
        service = service.with_webhook(hook);
    }
    if let Some(store) = &store {
        service = service.with_state(store.clone());
    }
    if let Some(f) = &fleet {
        service = service.with_state(Arc::new(f.state()));
    }
    // Fleet mode: the registry follows the fleet's log (all of it before
    // serving), and admin changes go through it.
    let follower = match &fleet {
        Some(f) => {
            let (f, registry) = (f.clone(), registry.clone());
            Some(tokio::task::spawn_blocking(move || f.follow_registry(registry)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let mut admin_config = o.admin;
    if let (Some(config), Some((sync, _))) = (&mut admin_config, &follower) {
        config.registry_sync = Some(sync.clone());
    }
    // Fleet mode: the webhooks any replica registered, fired by every
    // replica (with or without its own admin API), read again every
    // `fleet::webhooks::RELOAD`.
    let fleet_webhooks = match &fleet {
        Some(f) => {
            let store: Arc<dyn crate::webhook::SubscriptionStore> = Arc::new(f.webhooks());
            let networks = admin_config.as_ref().map(|c| c.webhook_networks.clone()).unwrap_or_default();
            let subs = tokio::task::spawn_blocking(move || crate::webhook::Subscriptions::open(store, networks))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Some(Arc::new(subs))
        }
        None => None,
    };
    if let Some(config) = &mut admin_config {
        // Webhooks registered through the admin API live in the store when
        // there is one.
        if let Some(store) = &store {
            config.webhooks = Arc::new(crate::webhook::Subscriptions::open(store.clone(), config.webhook_networks.clone())?);
        }
        if let Some(subs) = &fleet_webhooks {
            config.webhooks = subs.clone();
        }
    }
    if let Some(subs) = admin_config.as_ref().map(|c| c.webhooks.clone()).or_else(|| fleet_webhooks.clone()) {
        service = service.with_subscriptions(subs);
    }
    let _reloading = fleet_webhooks.map(|subs| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::fleet::webhooks::RELOAD).await;
                let s = subs.clone();
                match tokio::task::spawn_blocking(move || s.reload()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "fleet webhooks not read again"),
                    Err(e) => tracing::warn!(error = %e, "fleet webhooks reload task failed"),
                }
            }
        })
        .abort_handle()
    }).map(AbortOnDrop);
    let addr = |l: &TcpListener| l.local_addr().map_err(|e| e.to_string());
    let info = Ready {
        name: name.clone(),
        live: registry.live(&name).map(|v| v.to_string()),
        grpc: addr(&listeners.grpc)?,
        admin: listeners.admin.as_ref().map(addr).transpose()?,
        metrics: listeners.metrics.as_ref().map(addr).transpose()?,
        pulled,
    };
    let admin = match (listeners.admin, admin_config) {
        (Some(l), Some(config)) => {
            let (registry, stop, oci, conn) = (registry.clone(), stopped(stop_rx.clone()), o.oci.clone(), o.conn.clone());
            Some(tokio::spawn(async move { crate::admin::serve(l, registry, config, oci, conn, stop).await }))
        }
        (Some(_), None) => return Err("the admin API needs its settings (a token)".into()),
        _ => None,
    };
    if let Some(l) = listeners.metrics {
        let (registry, stop, conn) = (registry.clone(), stopped(stop_rx.clone()), o.conn.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::admin::metrics::serve(l, registry, conn, stop).await {
                tracing::error!("{e}");
            }
        });
    }
    let trim = tokio::spawn(release_memory_when_idle(registry.runtime().metrics().clone()));
    ready(&info);
    let served = crate::grpc::serve(listeners.grpc, service, stopped(stop_rx)).await;
    trim.abort();
    served?;
    if let Some(a) = admin {
        a.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Once the sandboxes have all ended after some work, gives the memory the
/// allocator keeps for reuse back to the OS: a burst of load leaves the
/// process where it was before, not at its peak. Checked every few seconds;
/// glibc only (`malloc_trim`), elsewhere nothing to do.
async fn release_memory_when_idle(metrics: Arc<crate::metrics::Metrics>) {
    let mut ran = metrics.runs_started();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let now = metrics.runs_started();
        if now != ran && metrics.active_sandboxes() == 0 {
            ran = now;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only returns free memory to the OS; it
            // touches no memory the program holds.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// Aborts its task when the server it belongs to returns.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Loads `path` and makes it live; a component that names itself nowhere
/// (no identity section, no manifest) is named after its file, version
/// 0.0.0. Answers the plugin's name.
fn load_named_file(registry: &Registry, path: &std::path::Path) -> Result<String, String> {
    use crate::registry::file::{ComponentFile, DEFAULT_MAX_BYTES};
    let file = ComponentFile::open(path, DEFAULT_MAX_BYTES).map_err(|e| e.to_string())?;
    let read = registry.read_file(file).map_err(|e| e.to_string())?;
    let manifest_path = path.with_extension("json");
    let manifest = if manifest_path.exists() {
        Some(Manifest::load(&manifest_path)?)
    } else if matches!(read.facts().identity, Ok(None)) {
        let stem = path.file_stem().map(|s| s.to_string_lossy().replace(['.', ' '], "_")).unwrap_or_else(|| "plugin".into());
        Some(Manifest { alias: Some(stem), version: Some("0.0.0".into()), ..Manifest::default() })
    } else {
        None
    };
    let report = registry.load_read(read, manifest, None, true).map_err(|e| e.to_string())?;
    Ok(report.name)
}
