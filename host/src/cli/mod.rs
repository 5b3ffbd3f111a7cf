//! The `cf-host` commands, one module each; `main.rs` parses and
//! dispatches. What they share: reading JSON arguments, the tenants file,
//! the shutdown signal, default paths.

pub mod bench;
pub mod collect;
pub mod demo;
pub mod dev;
pub mod new;
pub mod plugins;
pub mod push;
pub mod serve;
pub mod test;

use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn load_tenancy(path: Option<&Path>) -> Result<cf_host::tenancy::TenancyConfig, String> {
    match path {
        Some(p) => Ok(cf_host::tenancy::TenancyConfig::load(p)?),
        None => Ok(cf_host::tenancy::TenancyConfig::default()),
    }
}

/// A JSON object given on the command line (`--options '{...}'`).
pub fn parse_object(what: &str, text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{what} must be a JSON object")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

/// The webhook for `--webhook-url`, keyed by `CF_HOST_WEBHOOK_SECRET`.
pub fn webhook(url: &str) -> Result<cf_host::webhook::Webhook, String> {
    let secret = std::env::var("CF_HOST_WEBHOOK_SECRET").map_err(|_| "--webhook-url needs CF_HOST_WEBHOOK_SECRET (16+ characters)".to_string())?;
    Ok(cf_host::webhook::Webhook::new(url, &secret)?)
}

/// The guest built by `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.
pub fn default_plugin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("wasm32-wasip2").join("release").join("guest_nutanix.wasm")
}

/// Ctrl-C or SIGTERM (how Kubernetes stops a plugin container).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
