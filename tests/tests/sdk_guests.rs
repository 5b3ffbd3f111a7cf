//! Collectors written with the Python and TypeScript SDKs (`sdk/python`,
//! `sdk/ts`), built from source by this test into components and run in the
//! real host: the SDKs' own unit tests, the examples against the shared Prism
//! cassettes and golden file (the same ones for both languages), identity,
//! the Python and TypeScript projects `cf-host new` makes (built, their
//! first test, conformance), and a hot swap of the Python collector serving CloudForet's gRPC protocol
//! against the simulator. The Rust SDK's paging (`examples/rust-pages`,
//! built with cargo into `target/cf-sdk-rust/`) against the simulator:
//! its windows go as pending batches (`start-many`), in order.
//!
//! The tools come from the registries, pinned, into the target directory on
//! first use and reused while the pins are unchanged:
//! - `target/cf-sdk-py-venv`: componentize-py from `sdk/python/requirements.txt`
//!   (`python3` with `venv`, as the gRPC compatibility tests need);
//! - `target/cf-sdk-node/node_modules`: componentize-js, esbuild and
//!   TypeScript from `sdk/ts/package-lock.json` (`npm ci`; Node.js 20).
//!
//! Components are built into `target/cf-sdk/` and rebuilt when a source,
//! the SDK or a pin changes (a digest of the inputs beside each file).

use cf_host::error::{LimitKind, RunError};
use cf_host::grpc::convert::{json_to_struct, struct_to_json};
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::CollectRequest;
use cf_host::grpc::{PluginService, ServeConfig};
use cf_host::registry::cache::PrecompileCache;
use cf_host::registry::Registry;
use cf_host::testing::cassette::{Cassette, Replayer};
use cf_host::testing::expect::{golden_diff, Expect};
use cf_host::testing::{Harness, Outcome};
use cf_host::limits::{HttpLimits, Limits};
use cf_host::{ErrorCode, RunContext, Runtime, RuntimeConfig};
use cf_tests::{block_on, collect_all, temp_dir};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A tool environment under the target directory, (re)made when `pins`
/// changes: `make` fills `dir`; a marker holding the pins says it is done.
fn tool_env(dir: &Path, pins: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let marker = dir.join(".cf-pins");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(pins) {
        return dir.to_path_buf();
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("tool dir");
    make(dir);
    std::fs::write(&marker, pins).expect("pins marker");
    dir.to_path_buf()
}

/// The venv's python, with componentize-py.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let requirements = repo().join("sdk/python/requirements.txt");
        let pins = std::fs::read_to_string(&requirements).expect("sdk/python/requirements.txt");
        let venv = tool_env(&target_dir().join("cf-sdk-py-venv"), &pins, |venv| {
            run(Command::new("python3").args(["-m", "venv"]).arg(venv));
            run(Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements));
        });
        venv.join("bin/python")
    })
    .clone()
}

/// node_modules with componentize-js, esbuild and TypeScript.
fn node_modules() -> PathBuf {
    static NM: OnceLock<PathBuf> = OnceLock::new();
    NM.get_or_init(|| {
        let sdk = repo().join("sdk/ts");
        let lock = std::fs::read_to_string(sdk.join("package-lock.json")).expect("sdk/ts/package-lock.json");
        let manifest = std::fs::read_to_string(sdk.join("package.json")).expect("sdk/ts/package.json");
        let dir = tool_env(&target_dir().join("cf-sdk-node"), &format!("{manifest}{lock}"), |dir| {
            std::fs::write(dir.join("package.json"), &manifest).unwrap();
            std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir));
        });
        dir.join("node_modules")
    })
    .clone()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Lang {
    Python,
    Ts,
}

/// Every file below `dir` (sorted), into `h`.
fn hash_tree(h: &mut Sha256, dir: &Path) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.file_name().is_some_and(|n| n == "__pycache__" || n == "node_modules") {
            continue;
        }
        if p.is_dir() {
            hash_tree(h, &p);
        } else {
            h.update(p.to_string_lossy().as_bytes());
            h.update(std::fs::read(&p).expect("file"));
        }
    }
}

/// Builds `source` (relative to the repository) with its SDK into
/// `target/cf-sdk/<name>.wasm`, unless an identical build is there.
fn build(lang: Lang, source: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out_dir = target_dir().join("cf-sdk");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.wasm"));
    let mut h = Sha256::new();
    let sdk = repo().join(match lang {
        Lang::Python => "sdk/python",
        Lang::Ts => "sdk/ts",
    });
    for part in ["src", "bin", "wit", "requirements.txt", "package-lock.json"] {
        let p = sdk.join(part);
        if p.is_dir() {
            hash_tree(&mut h, &p);
        } else if p.exists() {
            h.update(std::fs::read(&p).unwrap());
        }
    }
    h.update(std::fs::read(repo().join(source)).expect("collector source"));
    h.update(extra.join(" ").as_bytes());
    let digest = format!("{:x}", h.finalize());
    let stamp = out.with_extension("wasm.inputs");
    if out.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return out;
    }
    let started = Instant::now();
    match lang {
        Lang::Python => run(Command::new(python())
            .arg(sdk.join("src/cloudforet_collector/build.py"))
            .arg(repo().join(source))
            .arg("-o")
            .arg(&out)
            .arg("-q")
            .args(extra)),
        Lang::Ts => run(Command::new("node")
            .arg(sdk.join("bin/cf-collector-build.mjs"))
            .arg(repo().join(source))
            .arg("-o")
            .arg(&out)
            .arg("--check")
            .args(extra)
            .env("CF_SDK_NODE_MODULES", node_modules())),
    };
    eprintln!("built {} in {:.1} s ({} bytes)", out.display(), started.elapsed().as_secs_f64(), std::fs::metadata(&out).unwrap().len());
    std::fs::write(&stamp, digest).unwrap();
    out
}

fn prism(lang: Lang) -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    static TS: OnceLock<PathBuf> = OnceLock::new();
    match lang {
        Lang::Python => PY.get_or_init(|| build(lang, "examples/python-prism/prism.py", "prism-py", &[])).clone(),
        Lang::Ts => TS.get_or_init(|| build(lang, "examples/ts-prism/prism.ts", "prism-ts", &[])).clone(),
    }
}

/// The Prism example of `lang`, loaded (compiled once per test binary).
fn harness(lang: Lang) -> &'static Harness {
    static PY: OnceLock<Harness> = OnceLock::new();
    static TS: OnceLock<Harness> = OnceLock::new();
    let cell = match lang {
        Lang::Python => &PY,
        Lang::Ts => &TS,
    };
    cell.get_or_init(|| Harness::load(&prism(lang)).expect("the component loads"))
}

fn cassette_dir(name: &str) -> PathBuf {
    repo().join("examples/prism-cassettes").join(name)
}

/// Replays a cassette with its recorded options; its expect.json and, when
/// it has one, its golden file hold; nothing outside the cassette was asked.
fn replay(lang: Lang, name: &str) -> Outcome {
    let cassette = Cassette::load(&cassette_dir(name)).expect("cassette");
    let h = harness(lang);
    let out = h.replay_blocking(&h.call_for(&cassette), &Replayer::new(cassette));
    let fails = Expect::load(&cassette_dir(name).join("expect.json")).expect("expect.json").check(&out);
    assert!(fails.is_empty(), "{lang:?} {name}:\n{}", fails.join("\n"));
    assert!(out.unmatched.is_empty() && out.denied.is_empty(), "{lang:?} {name}: {:?} {:?}", out.unmatched, out.denied);
    if let Ok(golden) = std::fs::read_to_string(cassette_dir(name).join("golden.ndjson")) {
        if let Some(diff) = golden_diff(&golden, &out.ndjson()) {
            panic!("{lang:?} {name}: output differs from the golden file:\n{diff}");
        }
    }
    out
}

fn cassettes_pass(lang: Lang) {
    let out = replay(lang, "v3-small");
    assert_eq!(out.services("VirtualMachine").len(), 12);
    assert_eq!(out.calls_to("POST", "/api/nutanix/v3/vms/list"), 3, "12 VMs in pages of 5");
    assert!(out.unused.is_empty());
    // The host authenticated every request; the guest saw no password.
    assert!(out.requests.iter().all(|r| r.header("authorization").is_some_and(|a| a.starts_with("Basic "))));

    let out = replay(lang, "unauthorized");
    let err = out.result.as_ref().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated);
    assert!(!err.to_string().contains("cassette-password"), "{err}");

    let out = replay(lang, "rate-limited");
    let retry = out.logs.iter().find(|l| l.message.contains("retrying")).expect("a retry is logged");
    assert!(retry.fields.contains(&("wait_ms".into(), "1000".into())), "Retry-After: 1 honoured: {retry:?}");

    for name in ["server-error-then-ok", "truncated-json"] {
        let out = replay(lang, name);
        assert_eq!(out.calls_to("POST", "/api/nutanix/v3/vms/list"), 2, "{name}: retried once");
    }
    let out = replay(lang, "lost-page");
    assert_eq!(out.errors(), vec!["vms list answered HTTP 503"]);
    let out = replay(lang, "vm-missing-fields");
    assert_eq!(out.errors(), vec!["malformed vm entity vm-no-status: missing field `status`"]);
}

#[test]
fn python_sdk_unit_tests() {
    let out = run(Command::new(python()).args(["-m", "unittest", "discover", "-s"]).arg(repo().join("sdk/python/tests")));
    assert!(out.contains("\nOK"), "{out}");
}

#[test]
fn ts_sdk_unit_tests() {
    let out = run(Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .arg(repo().join("sdk/ts/test/sdk.test.mjs"))
        .env("CF_SDK_NODE_MODULES", node_modules()));
    assert!(out.contains("fail 0"), "{out}");
}

#[test]
fn python_prism_passes_the_cassettes_and_golden_file() {
    cassettes_pass(Lang::Python);
}

#[test]
fn ts_prism_passes_the_same_cassettes_and_golden_file() {
    cassettes_pass(Lang::Ts);
}

#[test]
fn hello_collectors_are_short_and_run() {
    for (lang, source, name) in [(Lang::Python, "examples/python-hello/hello.py", "hello-py"), (Lang::Ts, "examples/ts-hello/hello.ts", "hello-ts")] {
        let lines = std::fs::read_to_string(repo().join(source)).unwrap().lines().count();
        assert!(lines <= 40, "{source} has {lines} lines; the goal is a hello collector of at most 40");
        let h = Harness::load(&build(lang, source, name, &[])).expect("loads");
        let call = h.call().options(json!({"greeting": "hi"}));
        let out = h.collect_blocking(&call, Replayer::new(Cassette::new(Vec::new())));
        assert!(out.result.is_ok(), "{source}: {:?}", out.result);
        assert_eq!(out.count("CloudServiceType"), 1, "{source}");
        assert_eq!(out.field("hello-1", "data.text"), Some(json!("hi")), "{source}");
    }
}

#[test]
fn identity_is_embedded_for_the_registry() {
    for (lang, name) in [(Lang::Python, "prism-py"), (Lang::Ts, "prism-ts")] {
        let bytes = std::fs::read(prism(lang)).unwrap();
        let id = cf_host::registry::identity::embedded(&bytes).unwrap().expect("a cloudforet-plugin section");
        assert_eq!((id.name.as_str(), id.version.as_str()), (name, "0.1.0"));
    }
}

/// One gRPC collection of the simulator: (VMs, records) or the error.
async fn grpc_collect(grpc: &str, secret: &Value) -> Result<(usize, usize), String> {
    let mut client = CollectorClient::connect(grpc.to_string()).await.map_err(|e| e.to_string())?;
    let req = CollectRequest {
        options: json!({"page_size": 100}).as_object().map(json_to_struct),
        secret_data: secret.as_object().map(json_to_struct),
        filter: None,
        task_options: None,
    };
    let mut stream = client.collect(req).await.map_err(|e| e.to_string())?.into_inner();
    let (mut vms, mut n) = (0, 0);
    while let Some(item) = stream.message().await.map_err(|e| e.to_string())? {
        n += 1;
        if struct_to_json(item.resource)["cloud_service_type"] == "VirtualMachine" {
            vms += 1;
        }
    }
    Ok((vms, n))
}

#[test]
fn a_python_collector_is_hot_swapped_while_serving_cloudforet() {
    let v1 = std::fs::read(prism(Lang::Python)).unwrap();
    let v2 = std::fs::read(build(Lang::Python, "examples/python-prism/prism.py", "prism-py-0.2.0", &["--version", "0.2.0"])).unwrap();
    block_on(async {
        let sim = Simulator::start(SimConfig { estate: EstateConfig { vms: 300, clusters: 3, ..EstateConfig::default() }, ..SimConfig::default() })
            .await
            .expect("simulator");
        let dir = temp_dir("sdk-hotswap");
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).unwrap());
        let registry = Arc::new(Registry::new(runtime, Some(PrecompileCache::new(dir.join("cache")).unwrap())));
        let _watch = cf_host::registry::watch::watch(registry.clone(), plugins.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(cf_host::grpc::serve(listener, PluginService::new(registry.clone(), "prism-py", ServeConfig::default()), std::future::pending()));

        let wait_live = |version: &'static str| {
            let registry = registry.clone();
            async move {
                let started = Instant::now();
                while registry.live("prism-py").map(|v| v.to_string()).as_deref() != Some(version) {
                    assert!(started.elapsed() < Duration::from_secs(180), "{version} not live; live: {:?}", registry.live("prism-py"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        std::fs::write(plugins.join("prism-py.wasm"), &v1).unwrap();
        wait_live("0.1.0").await;
        assert_eq!(grpc_collect(&grpc, &sim.secret()).await, Ok((300, 300 + 3 + 2 + 3)), "VMs, clusters, types, regions");

        // The next build of the collector dropped beside it goes live.
        std::fs::write(plugins.join("prism-py-0.2.0.wasm"), &v2).unwrap();
        wait_live("0.2.0").await;
        assert_eq!(grpc_collect(&grpc, &sim.secret()).await, Ok((300, 308)));
    });
}

/// Prism v3 list pages of a generated estate, answered from memory (no
/// network, no simulator server): what the normalization figures read.
/// Pages of the bench's page size are rendered up front; other reads (the
/// Rust guest's one-entity shift checks) when asked.
struct Pages {
    pages: std::collections::HashMap<(String, u64), Vec<u8>>,
    lists: std::collections::HashMap<String, (String, Vec<Value>)>,
}

/// A v3 list body: `entities` at `offset` of a list of `total`.
fn v3_page(kind: &str, entities: &[Value], offset: usize, total: usize) -> Vec<u8> {
    let metadata = json!({"kind": kind, "total_matches": total, "length": entities.len(), "offset": offset});
    json!({"api_version": "3.1", "metadata": metadata, "entities": entities}).to_string().into_bytes()
}

impl Pages {
    fn new(vms: usize, page: usize) -> Pages {
        let estate = prism_sim::estate::Estate::generate(EstateConfig { vms, ..EstateConfig::default() });
        let (mut pages, mut lists) = (std::collections::HashMap::new(), std::collections::HashMap::new());
        for (kind, singular) in [("clusters", "cluster"), ("vms", "vm")] {
            let all = estate.list(kind).map(|l| l.to_vec()).unwrap_or_default();
            let path = format!("/api/nutanix/v3/{kind}/list");
            for offset in (0..all.len().max(1)).step_by(page) {
                let entities: Vec<Value> = all.iter().skip(offset).take(page).cloned().collect();
                pages.insert((path.clone(), offset as u64), v3_page(singular, &entities, offset, all.len()));
            }
            lists.insert(path, (singular.to_string(), all.to_vec()));
        }
        Pages { pages, lists }
    }

    /// The body for a v3 list read: pre-rendered, sliced from the estate,
    /// or an empty list (the VMs' categories, hosts and subnets: a read that
    /// failed would be retried with back-off, and time that).
    fn answer(&self, path: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        if let Some(body) = self.pages.get(&(path.to_string(), offset)) {
            return Some(body.clone());
        }
        match self.lists.get(path) {
            Some((kind, all)) => {
                let at = (offset as usize).min(all.len());
                let entities = &all[at..all.len().min(at.saturating_add(length as usize))];
                Some(v3_page(kind, entities, at, all.len()))
            }
            None => {
                let kind = path.strip_prefix("/api/nutanix/v3/")?.strip_suffix("s/list")?;
                Some(v3_page(kind, &[], 0, 0))
            }
        }
    }
}

impl cf_host::host::http::HttpTransport for Pages {
    fn perform<'a>(
        &'a self,
        req: &'a cf_host::host::http::OutboundRequest,
        _: Duration,
        _: u64,
    ) -> cf_host::host::http::TransportFuture<'a> {
        let query = serde_json::from_slice::<Value>(req.body.as_deref().unwrap_or_default()).unwrap_or_default();
        let body = query["offset"].as_u64().and_then(|o| self.answer(req.url.path(), o, query["length"].as_u64().unwrap_or(20)));
        Box::pin(async move {
            body.map(|body| cf_host::host::http::InboundResponse { status: 200, headers: vec![], body })
                .ok_or_else(|| cf_host::host::http::TransportFailure::Connection("no such page".into()))
        })
    }
}

/// The three languages on one workload, for BENCHMARKS.md (never asserted):
/// component size, compile, cold and warm registry loads, instantiation,
/// one `init` call in a fresh sandbox, and normalization of the same Prism
/// v3 VM and cluster pages (`CF_SDK_BENCH_VMS`, default 5000; in memory).
///
/// `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo test -p cf-tests --test sdk_guests -- --ignored --nocapture sdk_bench`
/// (the host's own crates optimized like its dependencies; needs guest-nutanix
/// built as for the other tests).
#[test]
#[ignore = "a benchmark: prints the figures of BENCHMARKS.md"]
fn sdk_bench() {
    let vms: usize = std::env::var("CF_SDK_BENCH_VMS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let pages = Arc::new(Pages::new(vms, 500));
    let components = [("Rust (guest-nutanix)", cf_tests::guest_wasm()), ("Python (prism-py)", prism(Lang::Python)), ("TypeScript (prism-ts)", prism(Lang::Ts))];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, value: String| match rows.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(value),
        None => rows.push((name.to_string(), vec![value])),
    };
    for (label, path) in &components {
        eprintln!("bench: {label}");
        let bytes = std::fs::read(path).unwrap();
        row("component size (MB)", format!("{:.2}", bytes.len() as f64 / 1e6));
        let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).unwrap());
        let started = Instant::now();
        runtime.compile(label, &bytes).expect("compiles");
        row("compile (cold, ms)", format!("{:.0}", ms(started.elapsed())));
        let cache_dir = temp_dir("sdk-bench-cache");
        let load = || {
            let registry = Registry::new(runtime.clone(), Some(PrecompileCache::new(cache_dir.clone()).unwrap()));
            let started = Instant::now();
            registry.load_bytes("bench", &bytes, None, None, true).expect("loads");
            started.elapsed()
        };
        row("registry load, cold: compile + cache (ms)", format!("{:.0}", ms(load())));
        let warm = (0..5).map(|_| load()).min().unwrap();
        row("registry load, warm: precompile cache (ms)", format!("{:.2}", ms(warm)));
        // From the file, as `serve --plugin` and the plugins directory load:
        // the first load remembers the file's digest, the next ones neither
        // read nor hash it.
        let load_file = || {
            let registry = Registry::new(runtime.clone(), Some(PrecompileCache::new(cache_dir.clone()).unwrap()));
            let started = Instant::now();
            registry.load_file(path, None, true).expect("loads");
            started.elapsed()
        };
        load_file();
        let warm_file = (0..5).map(|_| load_file()).min().unwrap();
        row("registry load from its file, warm: digest remembered (ms)", format!("{:.2}", ms(warm_file)));
        // Where a warm load goes: the digest, the identity scan, mapping the
        // cached compilation, linking against the host (best of 5 each).
        let best = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let started = Instant::now();
                    f();
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let digest = cf_host::runtime::component_digest(&bytes);
        let hex = digest.trim_start_matches("sha256:").to_string();
        row("  of which sha256 of the file (ms)", format!("{:.2}", ms(best(&mut || drop(cf_host::runtime::component_digest(&bytes))))));
        row("  of which identity scan (ms)", format!("{:.2}", ms(best(&mut || drop(cf_host::registry::identity::embedded(&bytes))))));
        let cache = PrecompileCache::new(cache_dir.clone()).unwrap();
        row("  of which deserialize (ms)", format!("{:.2}", ms(best(&mut || drop(cache.get(runtime.engine(), &hex).expect("cached"))))));
        let component = cache.get(runtime.engine(), &hex).unwrap();
        row("  of which link and admit (ms)", format!("{:.2}", ms(best(&mut || drop(runtime.admit(label, &component, digest.clone()).expect("admits"))))));
        let cwasm = std::fs::read_dir(&cache_dir).unwrap().filter_map(|e| e.ok()).map(|e| e.metadata().map_or(0, |m| m.len())).max().unwrap_or(0);
        row("compiled size in the cache (MB)", format!("{:.1}", cwasm as f64 / 1e6));
        let plugin = runtime.load_bytes(label, &bytes).expect("admits");
        let ctx = runtime
            .context("bench")
            .options(json!({"api_version": "v3", "page_size": 500}))
            .secret(json!({"host": "https://pc.bench:9440", "username": "u", "password": "p"}))
            .egress_from_secret(9440)
            .http_transport(pages.clone())
            .build()
            .unwrap();
        block_on(async {
            let mut times = Vec::new();
            for _ in 0..500 {
                times.push(runtime.instantiate_only(&plugin, &ctx).await.unwrap());
            }
            times.sort();
            row("instantiate p50 (µs)", format!("{:.0}", times[times.len() / 2].as_secs_f64() * 1e6));
            row("instantiate p99 (µs)", format!("{:.0}", times[times.len() * 99 / 100].as_secs_f64() * 1e6));
            let mut inits = Vec::new();
            for _ in 0..50 {
                let started = Instant::now();
                runtime.init(&plugin, &ctx).await.unwrap();
                inits.push(started.elapsed());
            }
            inits.sort();
            row("init call in a fresh sandbox, p50 (ms)", format!("{:.2}", ms(inits[inits.len() / 2])));
            let task = json!({"resource_kinds": ["clusters", "vms"]});
            let mut best = Duration::MAX;
            let mut records = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let (r, all) = cf_tests::collect_all(&runtime, &plugin, &ctx, &task).await;
                let took = started.elapsed();
                r.unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(all.iter().all(|r| !r.is_error()), "{label}: error resources");
                records = all.len();
                best = best.min(took);
            }
            row(&format!("collect {vms} VMs + clusters, in memory (ms, best of 3)"), format!("{:.0}", ms(best)));
            row("  records", records.to_string());
            row("  records/s", format!("{:.0}", records as f64 / best.as_secs_f64()));
        });
        let _ = std::fs::remove_dir_all(&cache_dir);
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut table = format!("{:<width$}  {:>22}  {:>18}  {:>22}\n", "figure", components[0].0, components[1].0, components[2].0);
    for (name, values) in &rows {
        table.push_str(&format!("{name:<width$}  {:>22}  {:>18}  {:>22}\n", values[0], values.get(1).map_or("", |s| s), values.get(2).map_or("", |s| s)));
    }
    println!("{table}");
}

/// `cf-host new --lang python|ts` (the library behind it): the project
/// builds with the command its README gives (the SDK's build tool, as
/// above) and passes its first test (its empty cassette and expect.json)
/// and the conformance checks, under its own name.
#[test]
fn new_python_and_ts_projects_build_and_pass_their_first_test() {
    use cf_host::scaffold::{self, Lang as New};
    for (lang, name) in [(New::Python, "py-scaffold"), (New::Ts, "ts-scaffold")] {
        let dir = temp_dir(name);
        scaffold::create(name, lang, &dir).expect("the project is written");
        let out = dir.join(scaffold::component_path(name, lang));
        match lang {
            New::Python => run(Command::new(python())
                .arg(repo().join("sdk/python/src/cloudforet_collector/build.py"))
                .arg("collector.py")
                .arg("-o")
                .arg(&out)
                .arg("-q")
                .current_dir(&dir)),
            _ => run(Command::new("node")
                .arg(repo().join("sdk/ts/bin/cf-collector-build.mjs"))
                .arg("collector.ts")
                .arg("-o")
                .arg(&out)
                .arg("--check")
                .current_dir(&dir)
                .env("CF_SDK_NODE_MODULES", node_modules())),
        };
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let source = if lang == New::Python { "collector.py" } else { "collector.ts" };
        assert!(readme.contains(&format!("{source} -o {name}.wasm")), "{readme}");

        let h = Harness::load(&out).expect("the component loads");
        let cassette = Cassette::load(&dir.join("cassette")).expect("its cassette");
        let outcome = h.replay_blocking(&h.call_for(&cassette), &Replayer::new(cassette));
        let fails = Expect::load(&dir.join("expect.json")).expect("its expect.json").check(&outcome);
        assert!(fails.is_empty(), "{name}: {}", fails.join("\n"));

        let args = cf_host::testing::conformance::ConformanceArgs { plugin: out.clone(), ..Default::default() };
        let report = block_on(cf_host::testing::conformance::run(&args)).expect("conformance runs");
        assert!(report.passed(), "{}", report.render());
        assert_eq!(report.get("identity").unwrap().detail, format!("{name} 0.1.0"));
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// `cargo ARGS` in the Rust project `dir` (its own workspace) into
/// `target/cf-sdk-rust/` (its own target directory: never waits for the
/// workspace's builds), offline first (the dependencies are in the
/// registry cache once the workspace's guests were built), then online.
fn cargo_rust(dir: &Path, args: &[&str]) -> String {
    let cargo = |offline: bool| {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.args(args).current_dir(dir).env("CARGO_TARGET_DIR", target_dir().join("cf-sdk-rust"));
        // Not the outer build's: the project is its own workspace.
        c.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
        if offline {
            c.arg("--offline");
        }
        c.output().unwrap_or_else(|e| panic!("cannot run cargo: {e}"))
    };
    let mut out = cargo(true);
    if !out.status.success() {
        out = cargo(false);
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cargo {args:?} in {} failed:\n{text}", dir.display());
    text
}

/// The Rust SDK's `Client::pages` in the real host: `examples/rust-pages`
/// (its own native test first) reads the simulator's 3,000 VMs at 100 a
/// page in windows of 4, each window started (`start-many`) while the
/// collector emits the one before, at most 2 pending. Every VM comes once,
/// in the list's order; more than one window was in flight at once (the
/// simulator's peak, 20 ms a page); with the host's cap on pending batches
/// at 1 the run ends with the handle limit (the windows really were
/// pending batches), at 2 (the SDK's cap) and the default 4 it completes.
#[test]
fn rust_sdk_pages_go_as_pending_batches_in_order() {
    let dir = repo().join("examples/rust-pages");
    let out = cargo_rust(&dir, &["test", "--quiet"]);
    assert!(out.contains("1 passed"), "{out}");
    cargo_rust(&dir, &["build", "--target", "wasm32-wasip2", "--release", "--quiet"]);
    let wasm = target_dir().join("cf-sdk-rust/wasm32-wasip2/release/rust_pages.wasm");
    let rt = Runtime::new(RuntimeConfig::default()).expect("host runtime");
    let plugin = rt.load_file(&wasm).expect("the component loads");
    let config = SimConfig { estate: EstateConfig { vms: 3_000, ..EstateConfig::default() }, faults: Faults { latency_ms: 20, ..Faults::default() }, ..SimConfig::default() };
    let sim = block_on(Simulator::start(config)).expect("simulator starts");
    let expected: Vec<String> = sim.state.estate().vms.iter().map(|v| v["metadata"]["uuid"].as_str().unwrap().to_string()).collect();
    let run = |max_pending: u32| {
        let http = HttpLimits { max_pending, ..HttpLimits::default() };
        let ctx = RunContext::builder("t1", Limits { http, ..Limits::default() })
            .endpoint(sim.url())
            .secret(sim.secret())
            .options(json!({"page_size": 100, "page_concurrency": 4}))
            .build()
            .expect("context");
        block_on(collect_all(&rt, &plugin, &ctx, &json!({})))
    };
    for max_pending in [2, 4] {
        sim.state.reset_peak_in_flight();
        let started = Instant::now();
        let (r, records) = run(max_pending);
        let took = started.elapsed();
        let report = r.unwrap_or_else(|e| panic!("max_pending {max_pending}: {e}"));
        let ids: Vec<String> = records.iter().map(|r| r.resource()["reference"]["resource_id"].as_str().unwrap_or_default().to_string()).collect();
        assert_eq!(ids, expected, "max_pending {max_pending}: every VM once, in the list's order");
        assert_eq!((report.records, report.guest_emitted, report.http_requests), (3_000, 3_000, 30), "each page asked once: {report:?}");
        let peak = sim.state.peak_in_flight();
        eprintln!("max_pending {max_pending}: 30 pages at 20 ms in {:.0} ms, at most {peak} in flight", took.as_secs_f64() * 1000.0);
        assert!(peak > 4, "max_pending {max_pending}: {peak} pages in flight at once; a window is 4");
    }
    match run(1).0 {
        Err(RunError::Limit(l)) => assert_eq!(l.kind, LimitKind::Handles, "{l}"),
        other => panic!("expected the handle limit with 1 pending batch allowed, got {other:?}"),
    }
}
