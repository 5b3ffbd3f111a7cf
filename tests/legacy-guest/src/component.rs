//! The component edge (world 0.1.0).

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "plugin",
});

use base64::Engine as _;
use cloudforet::collector::{emit, http};
use exports::cloudforet::collector::collector::{CollectorError, Guest, PluginMetadata, Summary, Task};
use serde_json::Value;

struct Legacy;

export!(Legacy);

#[unsafe(link_section = "cloudforet-plugin")]
#[used]
static PLUGIN_SECTION: [u8; 35] = *br#"{"name":"legacy","version":"0.1.0"}"#;

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

impl Guest for Legacy {
    fn init(_options: String) -> Result<PluginMetadata, CollectorError> {
        Ok(PluginMetadata {
            supported_resource_types: vec!["inventory.Region".into()],
            supported_schedules: vec!["hours".into()],
            supported_features: vec![],
            options_schema: "{}".into(),
        })
    }

    fn verify(_options: String, _secret: String) -> Result<(), CollectorError> {
        Ok(())
    }

    fn get_tasks(_options: String, _secret: String) -> Result<Vec<Task>, CollectorError> {
        Ok(vec![Task { options: "{}".into() }])
    }

    fn collect(_options: String, secret: String, _task_options: String) -> Result<Summary, CollectorError> {
        let secret: Value = serde_json::from_str(&secret).map_err(|e| CollectorError::InvalidArgument(e.to_string()))?;
        let raw = format!("{}:{}", field(&secret, "username"), field(&secret, "password"));
        let req = http::Request {
            method: http::Method::Post,
            url: format!("{}/api/nutanix/v3/clusters/list", field(&secret, "host")),
            headers: vec![
                ("authorization".into(), format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))),
                ("content-type".into(), "application/json".into()),
            ],
            body: Some(br#"{"kind":"cluster","offset":0,"length":500}"#.to_vec()),
            timeout_ms: Some(10_000),
        };
        let resp = http::send(&req).map_err(|e| CollectorError::Unavailable(format!("{e:?}")))?;
        if resp.status == 401 {
            return Err(CollectorError::Unauthenticated("Prism rejected the credentials".into()));
        }
        let body: Value = serde_json::from_slice(&resp.body).map_err(|e| CollectorError::Internal(e.to_string()))?;
        let items: Vec<emit::Item> = body["entities"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.pointer("/status/name").and_then(Value::as_str))
            .map(|name| {
                emit::Item::Region(emit::Region {
                    name: name.to_string(),
                    region_code: name.to_string(),
                    provider: "nutanix".into(),
                    tags: vec![("world".into(), "0.1.0".into())],
                })
            })
            .collect();
        let n = items.len() as u64;
        emit::emit(&items);
        Ok(Summary { emitted: n, errors: 0 })
    }
}
