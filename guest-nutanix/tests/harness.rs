//! The built guest component in the real host runtime, every import mocked
//! by the host's test harness: HTTP from cassettes (recorded from the
//! simulator, or hand-written for error paths), emit/log/state captured.
//!
//! Needs the component: `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.

use cf_host::testing::cassette::{Cassette, Replayer};
use cf_host::testing::expect::{golden_diff, Expect};
use cf_host::testing::{Call, Harness, Outcome};
use cf_host::ErrorCode;
use serde_json::json;
use std::path::PathBuf;
use std::sync::OnceLock;

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let wasm = target.join("wasm32-wasip2/release/guest_nutanix.wasm");
        assert!(wasm.exists(), "build the component first: cargo build -p guest-nutanix --target wasm32-wasip2 --release");
        Harness::load(&wasm).expect("guest loads")
    })
}

fn cassette_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cassettes").join(name)
}

/// Replays a cassette with the options it was recorded with.
fn replay(name: &str) -> Outcome {
    let cassette = Cassette::load(&cassette_dir(name)).expect("cassette");
    let h = harness();
    let call: Call = h.call_for(&cassette);
    h.replay_blocking(&call, &Replayer::new(cassette))
}

/// The cassette's expect.json holds.
fn check(name: &str, out: &Outcome) {
    let expect = Expect::load(&cassette_dir(name).join("expect.json")).expect("expect.json");
    let fails = expect.check(out);
    assert!(fails.is_empty(), "{name}:\n{}", fails.join("\n"));
}

#[test]
fn v3_estate_recorded_from_the_simulator() {
    let out = replay("v3-small");
    check("v3-small", &out);
    assert_eq!(out.services("VirtualMachine").len(), 12);
    assert_eq!(out.field("96f84ebe-ca3a-47f9-8000-000000000001", "data.vcpus"), Some(json!(4)));
    // The first page alone, then the other two together with a 1-entity
    // read that checks the list did not shift between them.
    assert_eq!(out.calls_to("POST", "/api/nutanix/v3/vms/list"), 4, "12 VMs in pages of 5");
    assert!(out.denied.is_empty() && out.unmatched.is_empty() && out.unused.is_empty());
    // Normalization is pinned by the golden file (update with
    // `cf-host test ... --golden ... --update-golden` when a change is intended).
    let golden = std::fs::read_to_string(cassette_dir("v3-small").join("golden.ndjson")).expect("golden.ndjson");
    if let Some(diff) = golden_diff(&golden, &out.ndjson()) {
        panic!("normalized output changed:\n{diff}");
    }
    // Every request carried the credentials the host was given.
    assert!(out.requests.iter().all(|r| r.header("authorization").is_some_and(|a| a.starts_with("Basic "))));
}

#[test]
fn unauthorized_fails_the_run_without_leaking_the_password() {
    let out = replay("unauthorized");
    check("unauthorized", &out);
    let err = out.result.as_ref().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated);
    assert!(!err.to_string().contains("cassette-password"), "{err}");
    assert!(out.records.is_empty());
}

#[test]
fn server_error_then_success_is_retried() {
    let out = replay("server-error-then-ok");
    check("server-error-then-ok", &out);
    assert!(out.logs.iter().any(|l| l.message.contains("retrying") && l.level == "warn"), "{:?}", out.logs);
}

#[test]
fn rate_limit_is_retried_after_the_servers_delay() {
    let out = replay("rate-limited");
    check("rate-limited", &out);
    let retry = out.logs.iter().find(|l| l.message.contains("retrying")).expect("a retry is logged");
    assert!(retry.fields.contains(&("wait_ms".into(), "1000".into())), "Retry-After: 1 honoured: {retry:?}");
}

#[test]
fn truncated_json_is_retried() {
    let out = replay("truncated-json");
    check("truncated-json", &out);
}

#[test]
fn empty_lists_give_types_and_no_services() {
    let out = replay("empty-lists");
    check("empty-lists", &out);
    assert!(out.unused.is_empty(), "ordered cassette fully used");
}

#[test]
fn vm_missing_optional_fields_is_still_collected() {
    let out = replay("vm-missing-fields");
    check("vm-missing-fields", &out);
    assert_eq!(out.errors(), vec!["malformed vm entity vm-no-status: missing field `status`"]);
}

#[test]
fn a_request_outside_the_cassette_is_reported_with_a_diff() {
    let cassette = Cassette::load(&cassette_dir("v3-small")).expect("cassette");
    // Other page size than recorded (through v3 only): the bodies differ.
    let call = harness().call().options(json!({"page_size": 7, "api_version": "v3"}));
    let out = harness().replay_blocking(&call, &Replayer::new(cassette));
    let first = out.unmatched.first().expect("unmatched requests");
    assert_eq!(first.request, "POST /api/nutanix/v3/clusters/list");
    assert!(first.diff.contains("- body.length: 5") && first.diff.contains("+ body.length: 7"), "{}", first.diff);
    assert!(!Expect::default().check(&out).is_empty());
}

/// Full collections of the SDK-shaped simulator (every kind, through v4
/// and through v3), recorded as cassettes: each matches its golden file and
/// expectations, every request was recorded and every recording used, and
/// the VMs' disks (CD-ROMs too) and addresses (learned ones too) are the
/// same through both APIs.
#[test]
fn full_v4_and_v3_collections_of_the_sdk_shaped_simulator() {
    let mut vms = Vec::new();
    for name in ["v4-sdk-shaped", "v3-sdk-shaped"] {
        let out = replay(name);
        check(name, &out);
        assert!(out.result.is_ok(), "{name}: {:?}", out.result);
        assert!(out.denied.is_empty() && out.unmatched.is_empty() && out.unused.is_empty(), "{name}: every request recorded, every recording used");
        let golden = std::fs::read_to_string(cassette_dir(name).join("golden.ndjson")).expect("golden.ndjson");
        if let Some(diff) = golden_diff(&golden, &out.ndjson()) {
            panic!("{name}: normalized output changed:\n{diff}");
        }
        let by_id: std::collections::BTreeMap<String, (serde_json::Value, serde_json::Value)> = out
            .services("VirtualMachine")
            .iter()
            .map(|r| {
                let v = r.resource_json();
                let disks: Vec<serde_json::Value> = v["data"]["disks"].as_array().unwrap().iter().map(|d| json!([d["uuid"], d["device_type"], d["size_bytes"]])).collect();
                (v["reference"]["resource_id"].as_str().unwrap().to_string(), (json!(disks), v["ip_addresses"].clone()))
            })
            .collect();
        vms.push(by_id);
    }
    assert_eq!(vms[0], vms[1], "the same disks and addresses through v4 and v3");
    let cdroms = vms[0].values().flat_map(|(d, _)| d.as_array().unwrap().clone()).filter(|d| d[1] == "CDROM").count();
    assert_eq!(cdroms, 3, "VMs 1, 5 and 9 have a CD-ROM drive");
}
