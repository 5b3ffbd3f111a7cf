//! The component edge; see the crate docs for the attacks.

wit_bindgen::generate!({
    path: "../../wit/v0.2.0",
    world: "plugin",
});

use cloudforet::collector::{emit, http, state};
use exports::cloudforet::collector::collector::{CollectorError, Guest, PluginMetadata, Summary, Task};
use serde_json::Value;

struct Adversary;

export!(Adversary);

/// Identity for the host's registry. Tests make a "v2" of this component by
/// replacing `"version":"7.7.1"` in the file's bytes (the section, and so
/// the version this build stamps into records, changes with it).
#[unsafe(link_section = "cloudforet-plugin")]
#[used]
static PLUGIN_SECTION: [u8; 38] = *br#"{"name":"adversary","version":"7.7.1"}"#;

/// The version as this build says it (read from the text, so a patched
/// copy reports its own).
fn my_version() -> String {
    let info: Value = serde_json::from_slice(std::hint::black_box(&PLUGIN_SECTION)).unwrap_or(Value::Null);
    info["version"].as_str().unwrap_or("?").to_string()
}

fn arg<'a>(task: &'a Value, key: &str) -> &'a str {
    task.get(key).and_then(Value::as_str).unwrap_or("")
}

fn region(i: u64, pad: usize) -> emit::Item {
    emit::Item::Region(emit::Region {
        name: format!("region-{i}-{}", "x".repeat(pad)),
        region_code: format!("r{i}"),
        provider: "adversary".into(),
        tags: vec![],
    })
}

/// One pre-built CloudService of the `bulk` attack.
fn bulk_service(i: u64) -> emit::Item {
    let data = serde_json::json!({
        "uuid": format!("bulk-{i}"),
        "power_state": "ON",
        "vcpus": 4,
        "memory_mib": 8192,
        "disks": (0..2).map(|d| serde_json::json!({"index": d, "size_bytes": 53687091200u64, "adapter_type": "SCSI"})).collect::<Vec<_>>(),
        "nics": [{"mac_address": "50:6b:8d:00:00:01", "ip_addresses": ["10.0.0.1"], "subnet": "vlan-100"}],
        "description": "pre-built resource for the gRPC stream benchmark",
    });
    emit::Item::CloudService(emit::CloudService {
        name: format!("bulk-{i}"),
        provider: "bench".into(),
        cloud_service_group: "Compute".into(),
        cloud_service_type: "VirtualMachine".into(),
        account: Some("bench-account".into()),
        region_code: Some("bench-region".into()),
        instance_type: None,
        instance_size: None,
        ip_addresses: vec![],
        tags: vec![],
        reference: emit::Reference { resource_id: format!("bulk-{i}"), external_link: None },
        launched_at: None,
        data: data.to_string(),
        metadata: "{}".into(),
    })
}

impl Guest for Adversary {
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

    fn collect(_options: String, secret: String, task_options: String) -> Result<Summary, CollectorError> {
        let task: Value = serde_json::from_str(&task_options).unwrap_or(Value::Null);
        match arg(&task, "attack") {
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 16 << 20];
                    chunk[0] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "emit-flood" => {
                let mut i = 0;
                loop {
                    let batch: Vec<emit::Item> = (0..100).map(|k| region(i + k, 10_000)).collect();
                    i += 100;
                    // Ignores the flow answer on purpose.
                    let _ = emit::emit(&batch);
                }
            }
            "panic" => panic!("adversary panics on purpose"),
            "http" => {
                let req = http::Request {
                    method: http::Method::Get,
                    url: arg(&task, "url").to_string(),
                    headers: vec![],
                    body: None,
                    timeout_ms: Some(5_000),
                };
                let msg = match http::send(&req) {
                    Ok(r) => format!("http-ok {}", r.status),
                    Err(e) => format!("http-err {e:?}"),
                };
                Err(CollectorError::Internal(msg))
            }
            "echo-secret" => Err(CollectorError::Internal(format!("secret {secret}"))),
            "http-auth" => {
                let req = http::Request {
                    method: http::Method::Post,
                    url: arg(&task, "url").to_string(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Some(br#"{"kind":"cluster","offset":0,"length":1}"#.to_vec()),
                    timeout_ms: Some(5_000),
                };
                let msg = match http::send_authenticated(&req, &http::Credential::Basic) {
                    Ok(r) => format!("http-ok {}", r.status),
                    Err(e) => format!("http-err {e:?}"),
                };
                Err(CollectorError::Internal(msg))
            }
            "state-read" => {
                let v = state::get(arg(&task, "key"));
                Err(CollectorError::Internal(format!("state {v:?}")))
            }
            "state-write" => {
                state::set(arg(&task, "key"), arg(&task, "value"))
                    .map_err(|e| CollectorError::Internal(format!("{e:?}")))?;
                Ok(Summary { emitted: 0, errors: 0 })
            }
            "handles" => {
                let mut keep = Vec::new();
                loop {
                    keep.push(wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000));
                }
            }
            "hold" => {
                // Two batches: the second waits until the host's consumer
                // reads the first (keeps the sandbox alive for benchmarks).
                emit::emit(&[region(0, 0)]);
                emit::emit(&[region(1, 0)]);
                Ok(Summary { emitted: 2, errors: 0 })
            }
            "stamp" => {
                // n records in small batches with pauses, each stamped with
                // this build's version: a run must be entirely one version.
                let n = task.get("n").and_then(Value::as_u64).unwrap_or(20);
                let version = my_version();
                let mut i = 0;
                while i < n {
                    let batch: Vec<emit::Item> = (i..(i + 5).min(n))
                        .map(|k| {
                            emit::Item::Region(emit::Region {
                                name: format!("stamped-{k}"),
                                region_code: format!("r{k}"),
                                provider: "adversary".into(),
                                tags: vec![("version".into(), version.clone())],
                            })
                        })
                        .collect();
                    i += batch.len() as u64;
                    emit::emit(&batch);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Ok(Summary { emitted: n, errors: 0 })
            }
            "emit-invalid" => {
                // Three items, the middle one invalid (empty required name):
                // world 0.2's ack names it; the report is the ack.
                let bad = emit::Item::Region(emit::Region {
                    name: String::new(),
                    region_code: "bad".into(),
                    provider: "adversary".into(),
                    tags: vec![],
                });
                let ack = emit::emit(&[region(0, 0), bad, region(2, 0)]);
                let rejected: Vec<String> = ack.rejected.iter().map(|r| format!("{}: {}", r.index, r.reason)).collect();
                Err(CollectorError::Internal(format!("flow {:?}; rejected [{}]", ack.flow, rejected.join("; "))))
            }
            "bulk" => {
                // n CloudServices in batches of 100, the same resources the
                // Python SDK plugin of the stream benchmark yields
                // (tests/python/sdk_bench_plugin/main.py).
                let n = task.get("n").and_then(Value::as_u64).unwrap_or(1);
                let mut i = 0;
                while i < n {
                    let batch: Vec<emit::Item> = (i..(i + 100).min(n)).map(bulk_service).collect();
                    i += batch.len() as u64;
                    if emit::emit(&batch).flow == emit::Flow::Stop {
                        break;
                    }
                }
                Ok(Summary { emitted: n, errors: 0 })
            }
            "collect-ok" => {
                let n = task.get("n").and_then(Value::as_u64).unwrap_or(1);
                let batch: Vec<emit::Item> = (0..n).map(|i| region(i, 0)).collect();
                emit::emit(&batch);
                Ok(Summary { emitted: n, errors: 0 })
            }
            other => Err(CollectorError::InvalidArgument(format!("unknown attack {other:?}"))),
        }
    }
}
