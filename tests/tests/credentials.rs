//! Credential injection (world 0.1.1+) and world versioning: guests that ask
//! the host to authenticate never receive the secret's credentials; guests of
//! the frozen world 0.1.0 and of the current, incompatible 0.2.0 run side by
//! side in one host, each through its own bindings; an unsupported world is
//! refused at load with a clear error.

use cf_host::{RunContext, Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, collect_all, guest_wasm, legacy_wasm, reported};
use prism_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

fn ctx(runtime: &Runtime, secret: Value) -> RunContext {
    runtime.context("t").secret(secret).egress_from_secret(9440).build().unwrap()
}

#[test]
fn credentials_never_enter_the_sandbox_and_the_host_adds_them() {
    let runtime = Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).expect("runtime");
    let adversary = runtime.load_file(&adversary_wasm()).expect("adversary");
    assert!(adversary.injects_credentials, "it imports send-authenticated");
    let sim = block_on(Simulator::start(SimConfig::default())).expect("simulator");
    let list = format!("{}/api/nutanix/v3/clusters/list", sim.url());
    block_on(async {
        let mut secret = sim.secret();
        secret["token"] = json!("tok-very-secret");
        let c = ctx(&runtime, secret);
        let (r, _) = collect_all(&runtime, &adversary, &c, &json!({"attack": "echo-secret"})).await;
        let m = reported(&r);
        assert!(!m.contains("nutanix/4u") && !m.contains("tok-very-secret"), "a secret value reached the guest: {m}");
        assert!(m.contains(r#""password":"[host-injected]""#) && m.contains(r#""username":"admin""#), "{m}");

        // The host's Basic credential opens Prism; the guest never saw it.
        let (r, _) = collect_all(&runtime, &adversary, &c, &json!({"attack": "http-auth", "url": list})).await;
        assert_eq!(reported(&r), "http-ok 200");
        let mut wrong = sim.secret();
        wrong["password"] = json!("wrong");
        let (r, _) = collect_all(&runtime, &adversary, &ctx(&runtime, wrong), &json!({"attack": "http-auth", "url": list})).await;
        assert_eq!(reported(&r), "http-ok 401");
        // A secret without the credential's fields: a clear typed error.
        let no_password = json!({"host": sim.url(), "username": "admin"});
        let (r, _) = collect_all(&runtime, &adversary, &ctx(&runtime, no_password), &json!({"attack": "http-auth", "url": list})).await;
        let m = reported(&r);
        assert!(m.contains("InvalidRequest") && m.contains("no 'password'"), "{m}");
    });
}

#[test]
fn guests_of_incompatible_world_versions_run_side_by_side() {
    let runtime = Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).expect("runtime");
    let legacy = runtime.load_file(&legacy_wasm()).expect("a 0.1.0 guest loads");
    let nutanix = runtime.load_file(&guest_wasm()).expect("guest");
    let adversary = runtime.load_file(&adversary_wasm()).expect("adversary");
    assert_eq!((legacy.world.to_string(), nutanix.world.to_string()), ("0.1.0".into(), "0.3.1".into()));
    // The adversary is built against the frozen 0.2.0 world: it links to
    // the 0.2.1 imports through the semver-compatible lookup.
    assert_eq!(adversary.world.to_string(), "0.2.0");
    assert!(nutanix.is_cost_source() && !adversary.is_cost_source() && !legacy.is_cost_source());
    assert!(nutanix.is_metric_source() && !adversary.is_metric_source() && !legacy.is_metric_source());
    assert!(!legacy.injects_credentials, "0.1.0 guests build their own auth and keep receiving the secret");
    assert!(nutanix.injects_credentials);
    let sim = block_on(Simulator::start(SimConfig::default())).expect("simulator");
    block_on(async {
        let c = ctx(&runtime, sim.secret());
        let (all, clusters, invalid) = (json!({}), json!({"resource_kinds": ["clusters"]}), json!({"attack": "emit-invalid"}));
        let (old, new, acked) = tokio::join!(
            collect_all(&runtime, &legacy, &c, &all),
            collect_all(&runtime, &nutanix, &c, &clusters),
            collect_all(&runtime, &adversary, &c, &invalid),
        );
        // The simulator lists 3 clusters and the Prism Central pseudo-cluster.
        let (r, records) = old;
        assert_eq!(r.expect("0.1.0 collect").records, 4);
        assert!(records.iter().all(|r| r.resource()["tags"]["world"] == "0.1.0"), "{records:?}");
        let (r, records) = new;
        assert_eq!(r.expect("0.3.0 collect").records, 7, "type + 3 regions + 3 clusters");
        assert_eq!(records.len(), 7);
        // World 0.2: the ack names the rejected item; it was replaced, not lost.
        let (r, records) = acked;
        assert_eq!(reported(&r), "flow Flow::Proceed; rejected [1: field 'name' is empty]");
        assert_eq!(records.len(), 3);
        assert!(!records[0].is_error() && records[1].is_error() && !records[2].is_error(), "{records:?}");
        assert!(records[1].message.as_deref().unwrap_or("").contains("field 'name' is empty"), "{records:?}");
    });
}

#[test]
fn a_world_this_host_does_not_support_is_refused_at_load() {
    let runtime = Runtime::new(RuntimeConfig { max_concurrency: 1, ..RuntimeConfig::default() }).expect("runtime");
    let bytes = std::fs::read(adversary_wasm()).unwrap();
    // The same component claiming a future world: its export's version
    // patched in place (same length).
    let (from, to) = (b"cloudforet:collector/collector@0.2.0".as_slice(), b"cloudforet:collector/collector@0.4.0".as_slice());
    let mut patched = bytes.clone();
    let mut n = 0;
    for i in 0..patched.len().saturating_sub(from.len()) {
        if &patched[i..i + from.len()] == from {
            patched[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
    }
    assert!(n >= 1, "the export name is in the component");
    let e = runtime.load_bytes("future.wasm", &patched).err().expect("refused");
    assert_eq!(
        e.to_string(),
        "future.wasm is not a collector this host can run: it is built for world cloudforet:collector@0.4.0; this host supports 0.1.x, 0.2.x, 0.3.x"
    );
}
