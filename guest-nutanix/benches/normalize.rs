//! Normalization throughput: the collector compiled natively versus the same
//! code compiled to wasm and run in the real host's sandbox (HTTP through the
//! egress policy, emit checks), on the same pre-rendered Prism v3 pages (no
//! network, no simulator server). Both sides render every record's data and
//! metadata as JSON text, as the component does for the host, count the
//! records and drop them.
//! Prints a table; the goal (wasm/native ≤ 1.3×) is recorded in
//! BENCHMARKS.md, never asserted.
//!
//! Needs the component built: `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.

use cf_host::host::http::{HttpTransport, InboundResponse, OutboundRequest, TransportFuture};
use cf_host::sandbox::{RunContext, Runtime, RuntimeConfig};
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
        let all = estate.list(kind).unwrap_or_default();
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

/// Runs `a` and `b` in turn `runs` times each, so both meet the same
/// machine noise, and keeps each one's best time.
fn best_of<A: FnMut() -> u64, B: FnMut() -> u64>(runs: usize, mut a: A, mut b: B) -> [(Duration, u64); 2] {
    let mut best = [(Duration::MAX, 0); 2];
    for _ in 0..runs {
        for (slot, f) in best.iter_mut().zip([&mut a as &mut dyn FnMut() -> u64, &mut b]) {
            let t = Instant::now();
            let n = f();
            *slot = (slot.0.min(t.elapsed()), n);
        }
    }
    best
}

fn main() {
    let pages = Arc::new(pages());
    let secret = r#"{"host":"https://pc.bench:9440","username":"u","password":"p"}"#;
    let task = r#"{"resource_kinds":["vms"]}"#;
    // The pages are v3 pages: no v4 probe.
    let options = r#"{"api_version":"v3"}"#;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = runtime.load_file(&target.join("wasm32-wasip2/release/guest_nutanix.wasm")).expect("build the component first");
    let mut ctx = RunContext::new("bench", runtime.limits_for("bench"));
    ctx.options = json!({"api_version": "v3"});
    ctx.secret = serde_json::from_str(secret).expect("secret");
    ctx.egress = cf_host::egress::EgressPolicy::for_secret(&ctx.secret, 9440);
    ctx.http_transport = Some(Arc::new(InHost(pages.clone())));
    let wasm_task = json!({"resource_kinds": ["vms"]});
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    // BENCH_SIDE=native|wasm runs only that side, for a profiler.
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let [(native, n_native), (wasm, n_wasm)] = best_of(
        RUNS,
        || {
            if side == "wasm" {
                return 0;
            }
            let mut sink = Count::default();
            guest_nutanix::collect::collect(&mut Native(&pages), &mut sink, &mut guest_nutanix::NoState, options, secret, task).expect("native collect");
            assert!(sink.1 > 0);
            sink.0
        },
        || {
            if side == "native" {
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
        },
    );
    if !side.is_empty() {
        return;
    }
    assert_eq!(n_native, n_wasm, "both produce the same records");

    let rate = |d: Duration, n: u64| n as f64 / d.as_secs_f64();
    println!("{:<44} {:>12} {:>14}", format!("normalization of {VMS} VMs (best of {RUNS})"), "time", "records/s");
    println!("{:<44} {:>10.1}ms {:>14.0}", "native (guest-nutanix as a Rust library)", native.as_secs_f64() * 1e3, rate(native, n_native));
    println!("{:<44} {:>10.1}ms {:>14.0}", "wasm component in the host (emit checks)", wasm.as_secs_f64() * 1e3, rate(wasm, n_wasm));
    println!("{:<44} {:>12.2}x", "wasm / native", wasm.as_secs_f64() / native.as_secs_f64());
}
