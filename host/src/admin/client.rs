//! `cf-host plugins ...`: the admin API's client.

use super::server::MANIFEST_HEADER;
use crate::registry::identity::Manifest;
use serde_json::{json, Value};

/// The `cf-host plugins` client.
pub struct Client {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Client, String> {
        let base = url::Url::parse(base).map_err(|e| format!("--admin {base:?} is not a URL: {e}"))?;
        let http = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
        Ok(Client { base, token: token.to_string(), http })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, bytes: Option<Vec<u8>>) -> Result<Value, String> {
        self.call_with(method, path, body, bytes, None).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bytes: Option<Vec<u8>>,
        manifest: Option<&Manifest>,
    ) -> Result<Value, String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let mut rb = self.http.request(method, url.clone()).bearer_auth(&self.token);
        if let Some(m) = manifest {
            use base64::Engine as _;
            let json = serde_json::to_vec(m).map_err(|e| e.to_string())?;
            rb = rb.header(MANIFEST_HEADER, base64::engine::general_purpose::STANDARD.encode(json));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(b) = bytes {
            rb = rb.header("content-type", "application/wasm").body(b);
        }
        let resp = rb.send().await.map_err(|e| format!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let e = &v["error"];
        Err(format!(
            "{}: {} (request {})",
            e["code"].as_str().unwrap_or(status.as_str()),
            e["message"].as_str().unwrap_or("no error message"),
            e["request_id"].as_str().unwrap_or("?")
        ))
    }

    fn split(plugin: &str) -> Result<(&str, &str), String> {
        plugin.split_once('@').ok_or_else(|| format!("{plugin:?}: expected NAME@VERSION, e.g. nutanix@1.2.0"))
    }

    pub async fn list(&self) -> Result<String, String> {
        // Every page.
        let mut plugins = Vec::new();
        for page in 1.. {
            let v = self.call(reqwest::Method::GET, &format!("v1/plugins?page={page}&per_page=200"), None, None).await?;
            plugins.extend(v["plugins"].as_array().cloned().unwrap_or_default());
            if page >= v["pages"].as_u64().unwrap_or(1) {
                break;
            }
        }
        let v = json!({"plugins": plugins});
        let mut out =
            format!("{:<16} {:<12} {:<7} {:<6} {:<8} {:<24} {}\n", "NAME", "VERSION", "WORLD", "LIVE", "IN USE", "PINNED BY", "DIGEST");
        for p in v["plugins"].as_array().into_iter().flatten() {
            let pinned: Vec<&str> = p["pinned_by"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            out.push_str(&format!(
                "{:<16} {:<12} {:<7} {:<6} {:<8} {:<24} {}\n",
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or(""),
                p["world"].as_str().unwrap_or(""),
                match (p["live"].as_bool(), p["canary_percent"].as_u64()) {
                    (Some(true), _) => "yes".to_string(),
                    (_, Some(pct)) => format!("{pct}%"),
                    _ => String::new(),
                },
                p["in_use"],
                pinned.join(","),
                p["digest"].as_str().unwrap_or("")
            ));
        }
        Ok(out)
    }

    pub async fn load(&self, file: &std::path::Path, digest: Option<&str>, activate: bool) -> Result<String, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let manifest_path = file.with_extension("json");
        let manifest = if manifest_path.exists() { Some(Manifest::load(&manifest_path)?) } else { None };
        let mut path = format!("v1/plugins?activate={activate}");
        if let Some(d) = digest {
            path.push_str(&format!("&digest={d}"));
        }
        let v = self.call_with(reqwest::Method::POST, &path, None, Some(bytes), manifest.as_ref()).await?;
        Ok(Client::loaded(&v))
    }

    fn loaded(v: &Value) -> String {
        format!(
            "loaded {}@{} ({}){}{}{}{}\n",
            v["name"].as_str().unwrap_or("?"),
            v["version"].as_str().unwrap_or("?"),
            v["digest"].as_str().unwrap_or("?"),
            v["source"].as_str().map(|s| format!(" from {s}")).unwrap_or_default(),
            v["signed_by"].as_str().map(|k| format!(", signed by {k}")).unwrap_or_default(),
            if v["live"].as_bool() == Some(true) { ", live" } else { "" },
            if v["unchanged"].as_bool() == Some(true) { ", already loaded" } else { "" }
        )
    }

    /// Has the server pull `reference` from its registry and load it.
    pub async fn load_oci(&self, reference: &str, digest: Option<&str>, activate: bool) -> Result<String, String> {
        let body = json!({"reference": reference, "digest": digest, "activate": activate});
        let v = self.call(reqwest::Method::POST, "v1/plugins/oci", Some(body), None).await?;
        Ok(Client::loaded(&v))
    }

    pub async fn canary(&self, plugin: &str, percent: u8) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        let body = json!({"version": version, "percent": percent});
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/canary"), Some(body), None).await?;
        Ok(if percent == 0 { format!("canary of {name} ended\n") } else { format!("{percent}% of tenants get {name}@{version}\n") })
    }

    pub async fn activate(&self, plugin: &str) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/activate"), Some(json!({"version": version})), None).await?;
        Ok(format!("{name}@{version} is live\n"))
    }

    pub async fn rollback(&self, name: &str) -> Result<String, String> {
        let v = self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/rollback"), None, None).await?;
        Ok(format!("{name}@{} is live\n", v["live"].as_str().unwrap_or("?")))
    }

    pub async fn pin(&self, plugin: &str, tenant: Option<&str>) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/pin"), Some(json!({"version": version, "tenant": tenant})), None).await?;
        Ok(match tenant {
            Some(t) => format!("tenant {t} pinned to {name}@{version}\n"),
            None => format!("{name}@{version} is live\n"),
        })
    }

    pub async fn unpin(&self, name: &str, tenant: &str) -> Result<String, String> {
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/unpin"), Some(json!({"tenant": tenant})), None).await?;
        Ok(format!("tenant {tenant} follows the live version of {name}\n"))
    }

    pub async fn unload(&self, plugin: &str) -> Result<String, String> {
        let (name, version) = Client::split(plugin)?;
        self.call(reqwest::Method::POST, &format!("v1/plugins/{name}/unload"), Some(json!({"version": version})), None).await?;
        Ok(format!("{name}@{version} unloaded\n"))
    }
}

