//! The benchmark itself, shared by the `normalize` and
//! `normalize-size-classes` benches (they differ in the allocator of the
//! native code: see their `main.rs`).

use cf_host::host::http::{HttpTransport, InboundResponse, OutboundRequest, TransportFuture};
use cf_host::runtime::{Runtime, RuntimeConfig};
use guest_nutanix::{Flow, HttpRequest, HttpResponse, Level, Sink, Transport, TransportError};
use prism_sim::estate::{Estate, EstateConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VMS: usize = 20_000;
const PAGE: usize = 500;
const RUNS: usize = 5;

/// `(path, offset)` → response body.
type Pages = HashMap<(String, u64), Vec<u8>>;

fn pages() -> Pages {
    let estate = Estate::generate(EstateConfig { vms: VMS, ..EstateConfig::default() });
    let mut out = HashMap::new();
    for (kind, singular) in [("clusters", "cluster"), ("vms", "vm")] {
        let all = estate.list(kind).map(|l| l.to_vec()).unwrap_or_default();
        for offset in (0..all.len().max(1)).step_by(PAGE) {
            let page: Vec<&Value> = all.iter().skip(offset).take(PAGE).collect();
            let body = json!({"api_version": "3.1",
                "metadata": {"kind": singular, "total_matches": all.len(), "length": page.len(), "offset": offset},
                "entities": page});
            out.insert((format!("/api/nutanix/v3/{kind}/list"), offset as u64), body.to_string().into_bytes());
        }
    }
    out
}

fn answer(pages: &Pages, path: &str, body: &[u8]) -> Option<Vec<u8>> {
    let offset = serde_json::from_slice::<Value>(body).ok()?.get("offset")?.as_u64()?;
    pages.get(&(path.to_string(), offset)).cloned()
}

struct Native<'a>(&'a Pages);

impl Transport for Native<'_> {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let path = req.url.split_once("9440").map(|(_, p)| p.to_string()).unwrap_or_default();
        match answer(self.0, &path, req.body.as_deref().unwrap_or_default()) {
            Some(body) => Ok(HttpResponse { status: 200, headers: vec![], body }),
            None => Err(TransportError::Connection(format!("no page for {path}"))),
        }
    }

    fn sleep_ms(&mut self, _ms: u64) {}
}

/// Counts records and renders each one's `data` and `metadata` as JSON
/// text, the form the component hands the host (the same work as its WIT
/// edge, so both sides produce the same output).
#[derive(Default)]
struct Count(u64, usize);

impl Sink for Count {
    fn emit(&mut self, batch: Vec<guest_nutanix::record::Record>) -> Flow {
        self.0 += batch.len() as u64;
        for r in batch {
            if let guest_nutanix::record::Record::CloudService(cs) = r {
                self.1 += guest_nutanix::record::json_text(&cs.data).len() + guest_nutanix::record::json_text(&cs.metadata).len();
            }
        }
        Flow::Proceed
    }

    fn log(&mut self, _: Level, _: &str, _: &[(&str, &str)]) {}
}

/// What the host does with each record a guest emits, done natively: the
/// record as the WIT item (data and metadata as JSON text), validated and
/// converted by the host's `record::from_item`, then dropped. The same
/// collection through this sink is a native collector linked into the host:
/// the wasm side's cost over it is the sandbox's.
#[derive(Default)]
struct HostChecks(u64);

impl Sink for HostChecks {
    fn emit(&mut self, batch: Vec<guest_nutanix::record::Record>) -> Flow {
        use cf_host::bindings::current::cloudforet::collector::emit;
        use guest_nutanix::record::{json_text, Record};
        for r in batch {
            let item = match r {
                Record::CloudService(c) => emit::Item::CloudService(emit::CloudService {
                    data: json_text(&c.data),
                    metadata: json_text(&c.metadata),
                    name: c.name,
                    provider: c.provider,
                    cloud_service_group: c.cloud_service_group,
                    cloud_service_type: c.cloud_service_type,
                    account: c.account,
                    region_code: c.region_code,
                    instance_type: c.instance_type,
                    instance_size: c.instance_size,
                    ip_addresses: c.ip_addresses,
                    tags: c.tags,
                    reference: emit::Reference { resource_id: c.resource_id, external_link: c.external_link },
                    launched_at: c.launched_at,
                }),
                Record::CloudServiceType(t) => emit::Item::CloudServiceType(emit::CloudServiceType {
                    metadata: json_text(&t.metadata),
                    name: t.name,
                    group: t.group,
                    provider: t.provider,
                    service_code: t.service_code,
                    is_primary: t.is_primary,
                    is_major: t.is_major,
                    labels: t.labels,
                    tags: t.tags,
                }),
                Record::Region(r) => emit::Item::Region(emit::Region { name: r.name, region_code: r.region_code, provider: r.provider, tags: r.tags }),
                // A VM list emits nothing else.
                other => panic!("unexpected record in the benchmark: {other:?}"),
            };
            assert!(cf_host::record::from_item(item).is_ok(), "the host rejected a record");
            self.0 += 1;
        }
        Flow::Proceed
    }

    fn log(&mut self, _: Level, _: &str, _: &[(&str, &str)]) {}
}

struct InHost(Arc<Pages>);

impl HttpTransport for InHost {
    fn perform<'a>(&'a self, req: &'a OutboundRequest, _: Duration, _: u64) -> TransportFuture<'a> {
        let body = answer(&self.0, req.url.path(), req.body.as_deref().unwrap_or_default());
        Box::pin(async move {
            body.map(|body| InboundResponse { status: 200, headers: vec![], body })
                .ok_or_else(|| cf_host::host::http::TransportFailure::Connection("no page".into()))
        })
    }
}

/// Runs every side in turn `runs` times, so all meet the same machine
/// noise, and keeps each one's best time.
fn best_of<const N: usize>(runs: usize, mut sides: [&mut dyn FnMut() -> u64; N]) -> [(Duration, u64); N] {
    let mut best = [(Duration::MAX, 0); N];
    for _ in 0..runs {
        for (slot, f) in best.iter_mut().zip(sides.iter_mut()) {
            let t = Instant::now();
            let n = f();
            *slot = (slot.0.min(t.elapsed()), n);
        }
    }
    best
}

/// Runs the benchmark and prints its table; `allocator` names the global
/// allocator of the native code (the guest brings its own).
pub fn run(allocator: &str) {
    let pages = Arc::new(pages());
    let secret = r#"{"host":"https://pc.bench:9440","username":"u","password":"p"}"#;
    let task = r#"{"resource_kinds":["vms"]}"#;
    // The pages are v3 pages: no v4 probe; one page at a time (the pages
    // are answered from memory, so concurrency would only add the
    // 1-entity shift checks that the pre-rendered pages cannot answer).
    let options = r#"{"api_version":"v3","page_concurrency":1}"#;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = runtime.load_file(&target.join("wasm32-wasip2/release/guest_nutanix.wasm")).expect("build the component first");
    let secret_json: serde_json::Value = serde_json::from_str(secret).expect("secret");
    let ctx = runtime
        .context("bench")
        .options(json!({"api_version": "v3", "page_concurrency": 1}))
        .secret(secret_json)
        .egress_from_secret(9440)
        .http_transport(Arc::new(InHost(pages.clone())))
        .build()
        .expect("context");
    let wasm_task = json!({"resource_kinds": ["vms"]});
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    // BENCH_SIDE=native|checked|wasm runs only that side, for a profiler.
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let mut native = || {
        if !side.is_empty() && side != "native" {
            return 0;
        }
        let mut sink = Count::default();
        guest_nutanix::collect::collect(&mut Native(&pages), &mut sink, &mut guest_nutanix::NoState, options, secret, task).expect("native collect");
        assert!(sink.1 > 0);
        sink.0
    };
    let mut checked = || {
        if !side.is_empty() && side != "checked" {
            return 0;
        }
        let mut sink = HostChecks::default();
        guest_nutanix::collect::collect(&mut Native(&pages), &mut sink, &mut guest_nutanix::NoState, options, secret, task).expect("native collect");
        sink.0
    };
    let mut wasm = || {
        if !side.is_empty() && side != "wasm" {
            return 0;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<cf_host::record::Record>>(64);
        let drain = async {
            let mut n = 0u64;
            while let Some(batch) = rx.recv().await {
                n += batch.len() as u64;
            }
            n
        };
        let (r, n) = rt.block_on(async { tokio::join!(runtime.collect(&plugin, &ctx, &wasm_task, tx), drain) });
        r.expect("wasm collect");
        n
    };
    let [(native, n_native), (checked, n_checked), (wasm, n_wasm)] = best_of(RUNS, [&mut native, &mut checked, &mut wasm]);
    if !side.is_empty() {
        return;
    }
    assert!(n_native == n_wasm && n_checked == n_wasm, "every side produces the same records");

    let rate = |d: Duration, n: u64| n as f64 / d.as_secs_f64();
    println!("native code allocates with {allocator}");
    println!("{:<44} {:>12} {:>14}", format!("normalization of {VMS} VMs (best of {RUNS})"), "time", "records/s");
    println!("{:<44} {:>10.1}ms {:>14.0}", "native (guest-nutanix as a Rust library)", native.as_secs_f64() * 1e3, rate(native, n_native));
    println!("{:<44} {:>10.1}ms {:>14.0}", "native + the host's record checks", checked.as_secs_f64() * 1e3, rate(checked, n_checked));
    println!("{:<44} {:>10.1}ms {:>14.0}", "wasm component in the host (emit checks)", wasm.as_secs_f64() * 1e3, rate(wasm, n_wasm));
    println!("{:<44} {:>12.2}x", "wasm / native (the goal: <= 1.3x)", wasm.as_secs_f64() / native.as_secs_f64());
    println!("{:<44} {:>12.2}x", "wasm / (native + the host's record checks)", wasm.as_secs_f64() / checked.as_secs_f64());
}
