//! Credential injection (world 0.1.1) and world versioning: guests that ask
//! the host to authenticate never receive the secret's credentials; a guest
//! built against the frozen world 0.1.0 still runs, beside 0.1.1 guests, in
//! the same host.

use cf_host::egress::EgressPolicy;
use cf_host::{RunContext, Runtime, RuntimeConfig};
use cf_tests::{adversary_wasm, block_on, collect_all, guest_wasm, legacy_wasm, reported};
use prism_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

fn ctx(runtime: &Runtime, secret: Value) -> RunContext {
    let mut c = RunContext::new("t", runtime.limits_for("t"));
    c.egress = EgressPolicy::for_secret(&secret, 9440);
    c.secret = secret;
    c
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
fn a_guest_of_the_frozen_0_1_0_world_runs_beside_0_1_1_guests() {
    let runtime = Runtime::new(RuntimeConfig { max_concurrency: 4, ..RuntimeConfig::default() }).expect("runtime");
    let legacy = runtime.load_file(&legacy_wasm()).expect("a 0.1.0 guest loads on the 0.1.1 host");
    let nutanix = runtime.load_file(&guest_wasm()).expect("guest");
    assert!(!legacy.injects_credentials, "0.1.0 guests build their own auth and keep receiving the secret");
    assert!(nutanix.injects_credentials);
    let sim = block_on(Simulator::start(SimConfig::default())).expect("simulator");
    block_on(async {
        let c = ctx(&runtime, sim.secret());
        let (all, clusters) = (json!({}), json!({"resource_kinds": ["clusters"]}));
        let (old, new) = tokio::join!(collect_all(&runtime, &legacy, &c, &all), collect_all(&runtime, &nutanix, &c, &clusters));
        // The simulator lists 3 clusters and the Prism Central pseudo-cluster.
        let (r, records) = old;
        assert_eq!(r.expect("legacy collect").records, 4);
        assert!(records.iter().all(|r| r.resource["tags"]["world"] == "0.1.0"), "{records:?}");
        let (r, records) = new;
        assert_eq!(r.expect("0.1.1 collect").records, 7, "type + 3 regions + 3 clusters");
        assert_eq!(records.len(), 7);
    });
}
