//! Hot swap through the registry, the plugins directory and the admin API,
//! under continuous gRPC load; bad components rejected with the old version
//! still serving; CloudForet's version / upgrade_mode and tenant pins; the
//! development reload (`reload_bytes`: a new build of the same version).
//!
//! Versions: the adversary test component is `adversary@7.7.1`; a "v2" is
//! the same file with `"version":"7.7.1"` replaced by `"version":"7.7.2"`
//! (its identity section and the version it stamps into records change
//! together).

use cf_host::grpc::convert::{json_to_struct, struct_to_json};
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::CollectRequest;
use cf_host::grpc::{PluginService, ServeConfig};
use cf_host::registry::cache::PrecompileCache;
use cf_host::registry::identity::Manifest;
use cf_host::registry::oci::{self, OciError, OciOptions};
use cf_host::registry::signature::{PrivateKey, TrustPolicy};
use cf_host::registry::Registry;
use cf_host::{Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, temp_dir, OciRegistry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token-0123456789";

/// The test registry listens on loopback, which pulls refuse unless allowed.
fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap()]
}

fn version_of(bytes: &[u8], version: &str) -> Vec<u8> {
    let (from, to) = (br#""version":"7.7.1""#.as_slice(), format!(r#""version":"{version}""#));
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to.as_bytes());
            n += 1;
        }
        i += 1;
    }
    assert!(n >= 2, "identity and stamp both patched");
    out
}

/// Writes a file the way a careful deployer does: a temp name, then rename.
fn drop_in(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

struct Setup {
    registry: Arc<Registry>,
    dir: std::path::PathBuf,
    grpc: String,
    admin: String,
    _watch: cf_host::registry::watch::WatchHandle,
}

async fn setup(name: &str) -> Setup {
    setup_with(name, OciOptions::default()).await
}

async fn setup_with(name: &str, oci: OciOptions) -> Setup {
    let dir = temp_dir(name);
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let runtime = Arc::new(Runtime::new(RuntimeConfig { max_concurrency: 16, ..RuntimeConfig::default() }).unwrap());
    let cache = PrecompileCache::new(dir.join("cache")).unwrap();
    let registry = Arc::new(Registry::new(runtime, Some(cache)));
    let watch = cf_host::registry::watch::watch(registry.clone(), plugins.clone()).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = format!("http://{}", listener.local_addr().unwrap());
    // Tenants as a trusted gateway names them (x_domain_id), for pins and
    // canaries by name.
    let service = PluginService::new(registry.clone(), "adversary", ServeConfig { trust_tenant_header: true, ..ServeConfig::default() });
    tokio::spawn(cf_host::grpc::serve(listener, service, std::future::pending()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let reg = registry.clone();
    tokio::spawn(async move { cf_host::admin::serve(listener, reg, cf_tests::admin_config(TOKEN), oci, Default::default(), std::future::pending()).await });
    Setup { registry, dir: plugins, grpc, admin, _watch: watch }
}

async fn wait_live(registry: &Registry, version: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while registry.live("adversary").map(|v| v.to_string()).as_deref() != Some(version) {
        assert!(started.elapsed() < within, "{version} not live within {within:?}; live: {:?}", registry.live("adversary"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// One collection through gRPC: (versions stamped, records) or the error.
async fn stamped_run(grpc: &str, options: Value, tenant: Option<&str>) -> Result<(Vec<String>, usize), String> {
    let mut client = CollectorClient::connect(grpc.to_string()).await.map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(CollectRequest {
        options: options.as_object().map(json_to_struct),
        secret_data: None,
        filter: None,
        task_options: json!({"attack": "stamp", "n": 20}).as_object().map(json_to_struct),
    });
    if let Some(t) = tenant {
        req.metadata_mut().insert("x_domain_id", t.parse().unwrap());
    }
    let mut stream = client.collect(req).await.map_err(|e| e.to_string())?.into_inner();
    let mut versions = Vec::new();
    let mut n = 0;
    while let Some(item) = stream.message().await.map_err(|e| e.to_string())? {
        n += 1;
        let resource = struct_to_json(item.resource);
        versions.push(resource["tags"]["version"].as_str().unwrap_or("?").to_string());
    }
    versions.sort();
    versions.dedup();
    Ok((versions, n))
}

async fn admin(base: &str, path: &str, body: Value) -> (u16, Value) {
    reqwest_post(base, path, body, Some(TOKEN)).await
}

async fn reqwest_post(base: &str, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut rb = client.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[test]
fn swapping_versions_under_load_loses_no_run() {
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    let v2 = version_of(&v1, "7.7.2");
    block_on(async {
        let s = setup("hotswap").await;
        drop_in(&s.dir, "adversary-7.7.1.wasm", &v1);
        wait_live(&s.registry, "7.7.1", Duration::from_secs(5)).await;

        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for _ in 0..6 {
            let (stop, results, grpc) = (stop.clone(), results.clone(), s.grpc.clone());
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = stamped_run(&grpc, json!({}), None).await;
                    results.lock().unwrap().push(r);
                }
            }));
        }

        tokio::time::sleep(Duration::from_millis(300)).await;
        // A new version appears in the directory and goes live (it is
        // compiled while 6 clients load the machine; the latency is a
        // benchmark figure, so the bound here only catches a swap that
        // never happens).
        drop_in(&s.dir, "adversary-7.7.2.wasm", &v2);
        let took = wait_live(&s.registry, "7.7.2", Duration::from_secs(10)).await;
        eprintln!("new version live {took:?} after the file appeared");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (status, body) = admin(&s.admin, "/v1/plugins/adversary/rollback", json!({})).await;
            assert_eq!((status, body["live"].as_str()), (200, Some("7.7.1")), "{body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (status, body) = admin(&s.admin, "/v1/plugins/adversary/activate", json!({"version": "7.7.2"})).await;
            assert_eq!((status, body["live"].as_str()), (200, Some("7.7.2")), "{body}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }

        let results = results.lock().unwrap();
        let mut per_version = BTreeMap::<String, usize>::new();
        for r in results.iter() {
            let (versions, n) = r.as_ref().unwrap_or_else(|e| panic!("a collection failed during swaps: {e}"));
            assert_eq!(*n, 20, "a truncated collection");
            assert_eq!(versions.len(), 1, "a run saw two versions: {versions:?}");
            *per_version.entry(versions[0].clone()).or_default() += 1;
        }
        eprintln!("runs per version: {per_version:?}");
        // Every run shows in the host's metrics.
        let metrics = s.registry.runtime().metrics();
        assert_eq!(metrics.get("cf_host_runs_total", &[("call", "collect"), ("outcome", "ok")]), results.len() as f64);
        assert_eq!(metrics.get("cf_host_records_total", &[("resource_type", "inventory.Region")]), 20.0 * results.len() as f64);
        assert!(per_version.get("7.7.1").is_some_and(|n| *n > 0) && per_version.get("7.7.2").is_some_and(|n| *n > 0), "{per_version:?}");
    });
}

#[test]
fn bad_components_are_rejected_and_the_old_version_keeps_serving() {
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    block_on(async {
        let s = setup("hotswap-bad").await;
        drop_in(&s.dir, "adversary-7.7.1.wasm", &v1);
        wait_live(&s.registry, "7.7.1", Duration::from_secs(5)).await;

        // Corrupt, half-copied, wrong world, digest mismatch.
        drop_in(&s.dir, "corrupt.wasm", b"\0asm\x0d\0\x01\0garbage garbage");
        let v3 = version_of(&v1, "7.7.3");
        drop_in(&s.dir, "half.wasm", &v3[..v3.len() / 2]);
        drop_in(&s.dir, "empty.json", br#"{"alias": "adversary", "version": "9.0.0"}"#);
        drop_in(&s.dir, "empty.wasm", b"\0asm\x0d\0\x01\0");
        let v4 = version_of(&v1, "7.7.4");
        drop_in(&s.dir, "v4.json", br#"{"digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}"#);
        drop_in(&s.dir, "v4.wasm", &v4);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let versions: Vec<String> = s.registry.list().into_iter().map(|v| v.version).collect();
        assert_eq!(versions, vec!["7.7.1"], "nothing bad was admitted");
        assert_eq!(s.registry.live("adversary").unwrap().to_string(), "7.7.1");
        let (versions, n) = stamped_run(&s.grpc, json!({}), None).await.unwrap();
        assert_eq!((versions, n), (vec!["7.7.1".to_string()], 20), "the old version keeps serving");

        // The same through the admin API, with the error envelope.
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/v1/plugins?digest=sha256:{}", s.admin, "ab".repeat(32)))
            .bearer_auth(TOKEN)
            .body(version_of(&v1, "7.7.5"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
        assert!(body["error"]["message"].as_str().unwrap().contains("digest mismatch"), "{body}");
        assert!(body["error"]["request_id"].as_str().is_some_and(|id| id.starts_with("req-")), "{body}");
        let (status, body) = reqwest_post(&s.admin, "/v1/plugins/adversary/rollback", json!({}), Some("wrong-token")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")));
        let (status, body) = admin(&s.admin, "/v1/plugins/adversary/unload", json!({"version": "7.7.1"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("FAILED_PRECONDITION")), "the live version stays");
        let (status, _) = admin(&s.admin, "/v1/plugins/nope/rollback", json!({})).await;
        assert_eq!(status, 404);
    });
}

#[test]
fn collect_options_and_pins_choose_the_version() {
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    block_on(async {
        let s = setup("hotswap-pins").await;
        drop_in(&s.dir, "a1.wasm", &v1);
        wait_live(&s.registry, "7.7.1", Duration::from_secs(5)).await;
        drop_in(&s.dir, "a2.wasm", &version_of(&v1, "7.7.2"));
        wait_live(&s.registry, "7.7.2", Duration::from_secs(5)).await;
        let v = |r: Result<(Vec<String>, usize), String>| r.unwrap().0;
        assert_eq!(v(stamped_run(&s.grpc, json!({}), None).await), vec!["7.7.2"]);
        // MANUAL pins the named version; AUTO follows the latest compatible.
        assert_eq!(v(stamped_run(&s.grpc, json!({"plugin_version": "7.7.1", "upgrade_mode": "MANUAL"}), None).await), vec!["7.7.1"]);
        assert_eq!(v(stamped_run(&s.grpc, json!({"plugin_version": "7.7.1", "upgrade_mode": "AUTO"}), None).await), vec!["7.7.2"]);
        let missing = stamped_run(&s.grpc, json!({"plugin_version": "9.9.9"}), None).await.unwrap_err();
        assert!(missing.contains("NotFound") || missing.contains("ERROR_NOT_FOUND"), "{missing}");
        // A tenant pinned to the old version keeps it; others get the live one.
        let (status, _) = admin(&s.admin, "/v1/plugins/adversary/pin", json!({"version": "7.7.1", "tenant": "acme"})).await;
        assert_eq!(status, 200);
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some("acme")).await), vec!["7.7.1"]);
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some("globex")).await), vec!["7.7.2"]);
        let (status, body) = admin(&s.admin, "/v1/plugins/adversary/unload", json!({"version": "7.7.1"})).await;
        assert_eq!(status, 409, "pinned: {body}");
        admin(&s.admin, "/v1/plugins/adversary/unpin", json!({"tenant": "acme"})).await;
        let (status, body) = admin(&s.admin, "/v1/plugins/adversary/unload", json!({"version": "7.7.1"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some("acme")).await), vec!["7.7.2"]);
    });
}

/// Pushes an arbitrary artifact with oci-client itself (for artifacts the
/// project's `push` refuses to make).
async fn push_raw(reference: &str, insecure: &str, layer_type: &str, layer: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![insecure.to_string()]),
        ..ClientConfig::default()
    });
    let image: oci_client::Reference = reference.parse().unwrap();
    let layers = [ImageLayer::new(layer, layer_type.to_string(), None)];
    let config = Config::new(b"{}".to_vec(), oci::WASM_CONFIG.to_string(), None);
    client.push(&image, &layers, config, &oci_client::secrets::RegistryAuth::Anonymous, None).await.unwrap();
}

#[test]
fn components_come_from_an_oci_registry() {
    let registry = OciRegistry::start("oci", &[]);
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    let v2 = version_of(&v1, "7.7.2");
    let opts = OciOptions { insecure: vec![registry.host.clone()], allow_networks: loopback(), ..OciOptions::default() };
    let repo = format!("{}/cloudforet/adversary", registry.host);
    block_on(async {
        // Pushed with the project's own code; the manifest rides along as an annotation.
        let manifest = Manifest { description: Some("adversary from OCI".into()), ..Manifest::default() };
        let p1 = oci::push(&format!("{repo}:7.7.1"), v1.clone(), Some(&manifest), &opts).await.unwrap();
        let p2 = oci::push(&format!("{repo}:7.7.2"), v2.clone(), None, &opts).await.unwrap();
        assert_ne!(p1.manifest_digest, p2.manifest_digest);

        let s = setup_with("oci", opts.clone()).await;
        let client = cf_host::admin::Client::new(&s.admin, TOKEN).unwrap();
        let out = client.load_oci(&format!("{repo}:7.7.1"), None, true).await.unwrap();
        assert!(out.starts_with(&format!("loaded adversary@7.7.1 ({})", p1.component_digest)), "{out}");
        assert!(out.contains(&format!("from oci://{repo}:7.7.1@{}", p1.manifest_digest)), "{out}");
        assert_eq!(stamped_run(&s.grpc, json!({}), None).await.unwrap(), (vec!["7.7.1".to_string()], 20));

        // Pinned by manifest digest, component digest checked, made live.
        let pinned = format!("{repo}@{}", p2.manifest_digest);
        client.load_oci(&pinned, Some(&p2.component_digest), true).await.unwrap();
        assert_eq!(stamped_run(&s.grpc, json!({}), None).await.unwrap(), (vec!["7.7.2".to_string()], 20));
        let listed = s.registry.list();
        assert_eq!(listed.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["7.7.1", "7.7.2"]);
        assert!(listed.iter().all(|v| v.source.starts_with("oci://") && v.world == "0.2.0"), "{listed:?}");
        assert_eq!(listed[0].description.as_deref(), Some("adversary from OCI"));

        // Rejections leave the registry as it was.
        let v3 = version_of(&v1, "7.7.3");
        oci::push(&format!("{repo}:7.7.3"), v3, None, &opts).await.unwrap();
        let e = client.load_oci(&format!("{repo}:7.7.3"), Some(&p1.component_digest), true).await.unwrap_err();
        assert!(e.starts_with("INVALID_ARGUMENT") && e.contains("digest mismatch"), "{e}");
        let e = client.load_oci(&format!("{repo}:9.9.9"), None, true).await.unwrap_err();
        assert!(e.starts_with("NOT_FOUND"), "{e}");
        let e = client.load_oci(&format!("{repo}@sha256:{}", "0".repeat(64)), None, true).await.unwrap_err();
        assert!(e.starts_with("NOT_FOUND"), "{e}");
        let e = client.load_oci("not a reference", None, true).await.unwrap_err();
        assert!(e.starts_with("INVALID_ARGUMENT"), "{e}");
        push_raw(&format!("{repo}:tarball"), &registry.host, "application/vnd.oci.image.layer.v1.tar", b"not wasm".to_vec()).await;
        let e = client.load_oci(&format!("{repo}:tarball"), None, true).await.unwrap_err();
        assert!(e.starts_with("INVALID_ARGUMENT") && e.contains("not a wasm artifact"), "{e}");
        push_raw(&format!("{repo}:garbage"), &registry.host, oci::WASM_LAYER, b"\0asm\x0d\0\x01\0garbage".to_vec()).await;
        let e = client.load_oci(&format!("{repo}:garbage"), None, true).await.unwrap_err();
        assert!(e.starts_with("INVALID_ARGUMENT"), "{e}");
        // Plain HTTP only to registries listed as insecure.
        let https_only = OciOptions { allow_networks: loopback(), ..OciOptions::default() };
        let e = oci::pull(&format!("{repo}:7.7.1"), &https_only).await.unwrap_err();
        assert!(matches!(e, OciError::Unavailable(_)), "{e:?}");
        // A loopback registry only when the operator allowed its network:
        // refused before anything is sent.
        let e = oci::pull(&format!("{repo}:7.7.1"), &OciOptions { insecure: vec![registry.host.clone()], ..OciOptions::default() }).await.unwrap_err();
        assert!(matches!(e, OciError::Denied(_)) && e.to_string().contains("egress policy") && e.to_string().contains("loopback"), "{e:?}");
        assert_eq!(s.registry.list().len(), 2, "nothing bad was admitted");
        assert_eq!(s.registry.live("adversary").unwrap().to_string(), "7.7.2");
        assert_eq!(stamped_run(&s.grpc, json!({}), None).await.unwrap(), (vec!["7.7.2".to_string()], 20));

        // Signatures travel in the manifest annotation; a host that requires
        // them loads the signed artifact and refuses the unsigned one.
        let key = PrivateKey::generate("release").unwrap();
        let v4 = version_of(&v1, "7.7.4");
        let digest = cf_host::runtime::component_digest(&v4);
        let version = "7.7.4".parse().unwrap();
        let signed = Manifest { signatures: vec![key.sign("adversary", &version, &digest)], ..Manifest::default() };
        oci::push(&format!("{repo}:7.7.4"), v4, Some(&signed), &opts).await.unwrap();
        let strict = Registry::new(s.registry.runtime().clone(), None).with_trust(TrustPolicy::parse(&key.public_line(), true).unwrap());
        let pulled = oci::pull(&format!("{repo}:7.7.4"), &opts).await.unwrap();
        let report = strict.load_bytes(&pulled.source(), &pulled.wasm, pulled.manifest, None, true).unwrap();
        assert_eq!(report.signed_by.as_deref(), Some("release"));
        let pulled = oci::pull(&format!("{repo}:7.7.1"), &opts).await.unwrap();
        let e = strict.load_bytes(&pulled.source(), &pulled.wasm, pulled.manifest, None, true).unwrap_err();
        assert!(e.to_string().contains("adversary@7.7.1 is not signed"), "{e}");
    });
}

#[test]
fn a_registry_with_auth_needs_the_credentials() {
    let password = "s3cret-registry-pass";
    let registry = OciRegistry::start("oci-auth", &[("ci", password)]);
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    let anonymous = OciOptions { insecure: vec![registry.host.clone()], allow_networks: loopback(), ..OciOptions::default() };
    let wrong = OciOptions { username: Some("ci".into()), password: Some("wrong".into()), ..anonymous.clone() };
    let right = OciOptions { username: Some("ci".into()), password: Some(password.into()), ..anonymous.clone() };
    let reference = format!("{}/cloudforet/adversary:7.7.1", registry.host);
    block_on(async {
        for opts in [&anonymous, &wrong] {
            let e = oci::push(&reference, v1.clone(), None, opts).await.unwrap_err();
            assert!(matches!(e, OciError::Denied(_)), "{e:?}");
        }
        let pushed = oci::push(&reference, v1.clone(), None, &right).await.unwrap();
        for opts in [&anonymous, &wrong] {
            let e = oci::pull(&reference, opts).await.unwrap_err();
            assert!(matches!(e, OciError::Denied(_)), "{e:?}");
            assert!(!e.to_string().contains(password), "{e}");
        }
        let pulled = oci::pull(&reference, &right).await.unwrap();
        assert_eq!(pulled.wasm, v1);
        assert_eq!(pulled.manifest_digest, pushed.manifest_digest);
        assert!(pulled.manifest.is_none());
    });
}

#[test]
fn a_canary_serves_a_stable_share_of_the_tenants() {
    let v1 = std::fs::read(adversary_wasm()).unwrap();
    block_on(async {
        let s = setup("hotswap-canary").await;
        s.registry.load_bytes("v1", &v1, None, None, true).unwrap();
        s.registry.load_bytes("v2", &version_of(&v1, "7.7.2"), None, None, false).unwrap();
        let (status, body) = admin(&s.admin, "/v1/plugins/adversary/canary", json!({"version": "7.7.2", "percent": 30})).await;
        assert_eq!(status, 200, "{body}");
        let tenants: Vec<String> = (0..200).map(|i| format!("tenant-{i}")).collect();
        let on_canary = |registry: &Registry| -> Vec<bool> {
            tenants
                .iter()
                .map(|t| registry.resolve("adversary", t, &cf_host::registry::Want::Live).unwrap().digest != s.registry.list()[0].digest)
                .collect()
        };
        let first = on_canary(&s.registry);
        let share = first.iter().filter(|c| **c).count();
        assert!((40..=80).contains(&share), "about 30% of 200 tenants on the canary: {share}");
        assert_eq!(on_canary(&s.registry), first, "the same tenants every time");
        let listed = s.registry.list();
        assert_eq!((listed[0].canary_percent, listed[1].canary_percent), (None, Some(30)));

        // Through gRPC: a canary tenant runs 7.7.2, another 7.7.1; a pin wins.
        let canary_tenant = &tenants[first.iter().position(|c| *c).unwrap()];
        let other_tenant = &tenants[first.iter().position(|c| !*c).unwrap()];
        let v = |r: Result<(Vec<String>, usize), String>| r.unwrap().0;
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some(canary_tenant)).await), vec!["7.7.2"]);
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some(other_tenant)).await), vec!["7.7.1"]);
        s.registry.pin("adversary", &"7.7.1".parse().unwrap(), Some(canary_tenant)).unwrap();
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some(canary_tenant)).await), vec!["7.7.1"]);
        s.registry.unpin("adversary", canary_tenant).unwrap();

        // Bad requests, the canary cannot be unloaded, activation promotes it.
        let (status, _) = admin(&s.admin, "/v1/plugins/adversary/canary", json!({"version": "7.7.2", "percent": 101})).await;
        assert_eq!(status, 400);
        let (status, _) = admin(&s.admin, "/v1/plugins/adversary/canary", json!({"version": "7.7.1", "percent": 10})).await;
        assert_eq!(status, 409, "the live version cannot be its own canary");
        let (status, _) = admin(&s.admin, "/v1/plugins/adversary/unload", json!({"version": "7.7.2"})).await;
        assert_eq!(status, 409);
        admin(&s.admin, "/v1/plugins/adversary/activate", json!({"version": "7.7.2"})).await;
        assert!(s.registry.list().iter().all(|v| v.canary_percent.is_none()), "promoted");
        assert_eq!(v(stamped_run(&s.grpc, json!({}), Some(other_tenant)).await), vec!["7.7.2"]);
        // A rollback is a return to a known state: no canary.
        s.registry.canary("adversary", &"7.7.1".parse().unwrap(), 50).unwrap();
        s.registry.rollback("adversary").unwrap();
        assert!(s.registry.list().iter().all(|v| v.canary_percent.is_none()));
        assert!(tenants.iter().all(|t| s.registry.resolve("adversary", t, &cf_host::registry::Want::Live).unwrap().digest == s.registry.list()[0].digest));
    });
}

#[test]
fn a_new_build_of_a_loaded_version_is_refused_but_a_dev_reload_replaces_it() {
    use cf_host::registry::{RegistryError, Want};
    let registry = Registry::new(Arc::new(Runtime::new(RuntimeConfig::default()).unwrap()), None);
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    // The same identity, another digest: an empty custom section `x-dev` appended.
    let mut rebuilt = bytes.clone();
    rebuilt.extend_from_slice(&[0, 6, 5, b'x', b'-', b'd', b'e', b'v']);
    let first = registry.load_bytes("first", &bytes, None, None, true).unwrap();
    let held = registry.resolve(&first.name, "t", &Want::Live).unwrap();

    let e = registry.load_bytes("rebuilt", &rebuilt, None, None, true).unwrap_err();
    assert!(matches!(&e, RegistryError::Conflict(m) if m.contains("a different build needs a new version")), "{e}");
    assert_eq!(registry.resolve(&first.name, "t", &Want::Live).unwrap().digest, first.digest, "a refusal changes nothing");

    let second = registry.reload_bytes("rebuilt", &rebuilt).unwrap();
    assert!(second.live && !second.unchanged, "{second:?}");
    assert_eq!((second.name.as_str(), second.version.as_str()), (first.name.as_str(), first.version.as_str()));
    assert_ne!(second.digest, first.digest);
    assert_eq!(registry.resolve(&first.name, "t", &Want::Live).unwrap().digest, second.digest, "new runs get the new build");
    assert_eq!(held.digest, first.digest, "a run in flight keeps its build");
    let listed = registry.list();
    assert_eq!(listed.len(), 1, "the new build took the old one's place: {listed:?}");
    assert_eq!(listed[0].digest, second.digest);
    assert!(registry.reload_bytes("rebuilt", &rebuilt).unwrap().unchanged, "the same build again");
    assert!(registry.reload_bytes("junk", b"not wasm").is_err());
    assert_eq!(registry.resolve(&first.name, "t", &Want::Live).unwrap().digest, second.digest, "a failed reload keeps the last good build");
}

/// A warm load of a component file loaded before neither reads nor hashes
/// it (its digest is remembered beside the precompile cache); any change to
/// the file, or compiled code that is gone, and it is read again.
#[test]
fn a_warm_load_of_an_unchanged_file_remembers_its_digest() {
    use cf_host::registry::file::{ComponentFile, DEFAULT_MAX_BYTES};
    let dir = temp_dir("file-memo");
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let registry = || Registry::new(runtime.clone(), Some(PrecompileCache::new(dir.join("cache")).unwrap()));
    let path = dir.join("adversary.wasm");
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let open = || ComponentFile::open(&path, DEFAULT_MAX_BYTES).unwrap();

    // Just written: not remembered, whatever the loads (a write in the same
    // timestamp tick would not change the file's stamp).
    let first = registry().load_file(&path, None, true).unwrap();
    assert!(!registry().read_file(open()).unwrap().remembered(), "a file that just changed is read");
    std::thread::sleep(cf_host::registry::file::SETTLED + Duration::from_millis(100));
    let read = registry().read_file(open()).unwrap();
    assert!(!read.remembered(), "the first load of a settled file reads it");
    assert_eq!(read.facts().digest, first.digest);

    let read = registry().read_file(open()).unwrap();
    assert!(read.remembered(), "an unchanged file is not read again");
    let warm = registry().load_read(read, None, None, true).unwrap();
    assert!(warm.cached, "{warm:?}");
    assert_eq!((warm.digest.as_str(), warm.version.as_str()), (first.digest.as_str(), first.version.as_str()));

    // The compiled code is gone: the remembered file is read to compile it.
    for e in std::fs::read_dir(dir.join("cache")).unwrap().filter_map(|e| e.ok()) {
        if e.path().extension().is_some_and(|x| x == "cwasm") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let recompiled = registry().load_file(&path, None, true).unwrap();
    assert!(!recompiled.cached, "{recompiled:?}");
    assert_eq!(recompiled.digest, first.digest);

    // Another build in place, of the same size: read, hashed, a new version.
    let other = version_of(&bytes, "7.7.2");
    assert_eq!(other.len(), bytes.len());
    std::fs::write(&path, &other).unwrap();
    let read = registry().read_file(open()).unwrap();
    assert!(!read.remembered(), "a rewritten file is read again");
    let changed = registry().load_read(read, None, None, true).unwrap();
    assert_eq!(changed.version, "7.7.2");
    assert_ne!(changed.digest, first.digest);
}
