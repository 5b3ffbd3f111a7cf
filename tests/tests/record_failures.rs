//! `cf-host serve --record-failures DIR`: a real gRPC client against a real
//! `serve` (in process, loopback) running the real guest against the Prism
//! simulator. A failed run leaves exactly one redacted cassette, a
//! successful one none; the secret is in no byte of DIR; `cf-host test`
//! (its library entry) and the testing API replay the cassette to the same
//! failure; the bound deletes the oldest.

use cf_host::grpc::convert::json_to_struct;
use cf_host::grpc::failures::RecordFailures;
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::{CollectRequest, ResourceInfo, VerifyRequest};
use cf_host::testing::cassette::{Cassette, RecordedCall};
use cf_host::testing::expect::Expect;
use cf_host::testing::Harness;
use cf_tests::{block_on, guest_wasm, temp_dir};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, PageFault, SimConfig, Simulator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PASSWORD: &str = "recfail-Pa55/w0rd!xq";
const WRONG_PASSWORD: &str = "wrong-Pa55/w0rd!zz";
/// The forms of both passwords that must appear nowhere: as is, percent-
/// encoded, base64 alone and as the Basic value of `admin:<password>`.
const NEEDLES: &[&str] = &[
    PASSWORD,
    "recfail-Pa55%2Fw0rd%21xq",
    "cmVjZmFpbC1QYTU1L3cwcmQheHE",
    "YWRtaW46cmVjZmFpbC1QYTU1L3cwcmQheHE",
    WRONG_PASSWORD,
    "d3JvbmctUGE1NS93MHJkIXp6",
    "YWRtaW46d3JvbmctUGE1NS93MHJkIXp6",
];

struct Fixture {
    sim: Simulator,
    served: cf_tests::Served,
    dir: PathBuf,
}

fn fixture(name: &str, max_kept: usize) -> Fixture {
    fixture_for(name, max_kept, cf_host::grpc::Protocol::Inventory)
}

fn fixture_for(name: &str, max_kept: usize, protocol: cf_host::grpc::Protocol) -> Fixture {
    let sim = block_on(Simulator::start(SimConfig {
        estate: EstateConfig { vms: 6, clusters: 1, ..EstateConfig::default() },
        username: "admin".into(),
        password: PASSWORD.into(),
        // Metrics are v4 stats.
        v4: protocol == cf_host::grpc::Protocol::Monitoring,
        ..SimConfig::default()
    }))
    .expect("simulator");
    let dir = temp_dir(name).join("failures");
    let served = block_on(cf_tests::serve({
        let mut o = cf_host::serve::ServeOptions { plugin: Some(guest_wasm()), ..Default::default() };
        o.runtime.max_concurrency = 4;
        // The simulator listens on loopback.
        o.runtime.tenancy.default.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        o.grpc.record_failures = Some(RecordFailures { max_kept, ..RecordFailures::new(&dir) });
        o.grpc.protocol = protocol;
        o
    }));
    Fixture { sim, served, dir }
}

impl Fixture {
    fn secret(&self, password: &str) -> Value {
        json!({"host": self.sim.url(), "username": "admin", "password": password})
    }

    async fn client(&self) -> CollectorClient<tonic::transport::Channel> {
        CollectorClient::connect(self.served.grpc.clone()).await.expect("connect")
    }

    /// A collect call read to its end: what it streamed, and the error it
    /// ended with.
    async fn collect(&self, secret: Value, options: Value) -> (Vec<ResourceInfo>, Option<tonic::Status>) {
        let req = CollectRequest {
            options: options.as_object().map(json_to_struct),
            secret_data: secret.as_object().map(json_to_struct),
            filter: None,
            task_options: None,
        };
        let mut stream = match self.client().await.collect(req).await {
            Ok(r) => r.into_inner(),
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut got = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(m)) => got.push(m),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    async fn verify(&self, secret: Value) -> Result<(), tonic::Status> {
        let req = VerifyRequest { options: None, secret_data: secret.as_object().map(json_to_struct) };
        self.client().await.verify(req).await.map(|_| ())
    }

    /// The recorded failures' directory names, oldest first.
    fn recorded(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Waits until the recorded failures are no longer `before` (a cassette
    /// is written off the call's path, just after it ends).
    async fn recorded_after(&self, before: &[String]) -> Vec<String> {
        let started = std::time::Instant::now();
        loop {
            let now = self.recorded();
            if now != before {
                return now;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no failure recorded in {}", self.dir.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).expect("file")));
        }
    }
    out
}

fn assert_no_secret(dir: &Path) {
    let files = all_bytes(dir);
    assert!(!files.is_empty(), "nothing under {}", dir.display());
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        for needle in NEEDLES {
            assert!(!text.contains(needle), "{} holds {needle:?}", path.display());
        }
        // Not in any case either (base64 is case-sensitive, the rest is not).
        assert!(!text.to_ascii_lowercase().contains(&PASSWORD.to_ascii_lowercase()), "{}", path.display());
    }
}

/// A collection with a page of VMs failing (500, no retries) is recorded
/// once, redacted; a successful one leaves nothing; the cassette replays
/// through `cf-host test` and the testing API to the same failure.
#[test]
fn a_failed_collection_is_recorded_redacted_and_replays_to_the_same_failure() {
    let f = fixture("recfail-collect", 100);
    let (ok, failed) = block_on(async {
        let ok = f.collect(f.secret(PASSWORD), json!({})).await;
        // The failing one comes second: had the first been recorded, it
        // would be there by the time the second is.
        f.sim.set_faults(Faults {
            pages: vec![PageFault { kind: "vms".into(), offset: 0, status: 500, times: None }],
            ..Faults::default()
        });
        let failed = f.collect(f.secret(PASSWORD), json!({"max_retries": 0})).await;
        (ok, failed)
    });
    assert!(ok.1.is_none(), "the first collection succeeds: {:?}", ok.1);
    assert!(ok.0.iter().all(|r| r.state != 5), "no error resources in the first collection");
    assert!(ok.0.len() > 6, "{} records", ok.0.len());

    let names = block_on(f.recorded_after(&[]));
    assert_eq!(names.len(), 1, "one failed run, one cassette: {names:?}");
    let name = &names[0];
    assert!(name.contains("-127.0.0.1_"), "the tenant, file-safe: {name}");
    // Nothing else is written, the successful run included.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.recorded(), names);
    assert_no_secret(&f.dir);

    let cassette = Cassette::load(&f.dir.join(name)).expect("a valid cassette");
    assert_eq!(cassette.call, Some(RecordedCall::Collect));
    assert_eq!(cassette.options, Some(json!({"max_retries": 0})));
    assert!(cassette.truncated.is_none());
    assert!(cassette.interactions.iter().any(|i| i.response.as_ref().is_some_and(|r| r.status == 500)), "the 500 is in it");
    let auth: Vec<&str> = cassette
        .interactions
        .iter()
        .flat_map(|i| &i.request.headers)
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(!auth.is_empty() && auth.iter().all(|v| *v == "[redacted]"), "{auth:?}");
    let failure = cassette.failure.clone().expect("the failure");
    // What was recorded is what the client saw.
    match &failed.1 {
        Some(status) => {
            let code = failure.code.as_deref().expect("a failed run's code");
            let message = failure.message.as_deref().unwrap_or_default();
            assert!(status.message().ends_with(message) && !message.is_empty(), "{} vs {message}", status.message());
            let seen = match status.code() {
                tonic::Code::Unavailable => "UNAVAILABLE",
                tonic::Code::Internal => "INTERNAL",
                tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
                tonic::Code::Unauthenticated => "UNAUTHENTICATED",
                other => panic!("unexpected failure {other:?}: {status:?}"),
            };
            assert_eq!(code, seen, "{status:?}");
        }
        None => {
            let errors = failed.0.iter().filter(|r| r.state == 5).count() as u64;
            assert!(errors > 0, "a run that lost a page and did not fail streams error resources");
            assert_eq!(failure.error_resources, Some(errors));
        }
    }

    // The testing API: the cassette's options, the same failure.
    let harness = Harness::load(&guest_wasm()).expect("guest loads");
    let replayer = cf_host::testing::cassette::Replayer::new(cassette.clone());
    let out = block_on(harness.replay(&harness.call_for(&cassette), &replayer));
    // The deletion guard's counts of the first run were read: the replay
    // starts with them (and names the same endpoint, which keys them).
    assert!(cassette.state.keys().any(|k| k.starts_with("deletion-guard/")), "{:?}", cassette.state);
    assert_eq!(cassette.endpoint.as_ref().and_then(|e| e.get("host")), Some(&json!(f.sim.url())));
    let misses = Expect::reproducing(&failure).check(&out);
    assert!(misses.is_empty(), "the replay differs: {misses:?}");
    assert!(out.unmatched.is_empty() && out.unused.is_empty(), "{:?} {:?}", out.unmatched, out.unused);

    // `cf-host test PLUGIN --cassette DIR/<one>` passes: it reproduced the
    // recorded failure, taking the options from the cassette.
    let args = cf_host::testing::cli::TestArgs {
        plugin: guest_wasm(),
        cassette: f.dir.join(name),
        expect: None,
        golden: None,
        update_golden: false,
        record: None,
        options: None,
        task_options: None,
    };
    assert_eq!(block_on(cf_host::testing::cli::run(args)), Ok(true));
}

/// A verify refused by Prism (401) is recorded as a verify; replaying it
/// gives UNAUTHENTICATED again; neither password is written anywhere.
#[test]
fn a_failed_verify_is_recorded_and_replays_to_unauthenticated() {
    let f = fixture("recfail-verify", 100);
    block_on(f.verify(f.secret(PASSWORD))).expect("the right password verifies");
    let e = block_on(f.verify(f.secret(WRONG_PASSWORD))).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let names = block_on(f.recorded_after(&[]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.recorded(), names, "one cassette, for the failed verify");
    assert_eq!(names.len(), 1);
    assert_no_secret(&f.dir);

    let cassette = Cassette::load(&f.dir.join(&names[0])).unwrap();
    assert_eq!(cassette.call, Some(RecordedCall::Verify));
    let failure = cassette.failure.clone().unwrap();
    assert_eq!(failure.code.as_deref(), Some("UNAUTHENTICATED"));
    assert!(cassette.interactions.iter().any(|i| i.response.as_ref().is_some_and(|r| r.status == 401)));

    let harness = Harness::load(&guest_wasm()).unwrap();
    let replayer = cf_host::testing::cassette::Replayer::new(cassette.clone());
    let out = block_on(harness.replay(&harness.call_for(&cassette), &replayer));
    assert_eq!(out.result.as_ref().err().map(|e| e.code().grpc_name()), Some("UNAUTHENTICATED"), "{:?}", out.result);
    assert!(out.unmatched.is_empty(), "{:?}", out.unmatched);
}

/// With `--record-failures-max 2`, a third failure deletes the oldest.
#[test]
fn the_bound_deletes_the_oldest_failure() {
    let f = fixture("recfail-bound", 2);
    let mut seen: Vec<String> = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..3 {
        block_on(f.verify(f.secret(WRONG_PASSWORD))).unwrap_err();
        let now = block_on(f.recorded_after(&seen));
        let new: Vec<&String> = now.iter().filter(|n| !seen.contains(n)).collect();
        assert_eq!(new.len(), 1, "{now:?} after {seen:?}");
        firsts.push(new[0].clone());
        seen = now;
    }
    assert_eq!(seen, firsts[1..].to_vec(), "the two newest are kept");
    assert!(!f.dir.join(&firsts[0]).exists());
}

/// The data sources' `get_data` calls are runs too: a cost collection and a
/// metric query with the wrong password are each recorded (the cost call
/// with its task options, the metric call with its query), redacted, and
/// replay to UNAUTHENTICATED; with the right password nothing is recorded.
#[test]
fn failed_cost_and_metric_calls_are_recorded_and_replay() {
    use cf_host::grpc::cost::pb::cost_client::CostClient;
    use cf_host::grpc::cost::pb::GetDataRequest;
    use cf_host::grpc::monitoring::pb::metric_client::MetricClient;
    use cf_host::grpc::monitoring::pb::MetricDataRequest;
    use cf_host::grpc::Protocol;
    let harness = Harness::load(&guest_wasm()).unwrap();

    let f = fixture_for("recfail-cost", 100, Protocol::CostAnalysis);
    let task = json!({"billed_date": "2026-11-23"});
    let cost = |password: &'static str| {
        let (f, task) = (&f, task.clone());
        async move {
            let mut client = CostClient::connect(f.served.grpc.clone()).await.expect("connect");
            let options = json!({"rate_card": {"currency": "EUR", "vcpu_hour": 0.02, "memory_gib_hour": 0.005, "disk_gib_month": 0.1}});
            let req = GetDataRequest {
                options: options.as_object().map(json_to_struct),
                secret_data: f.secret(password).as_object().map(json_to_struct),
                task_options: task.as_object().map(json_to_struct),
                ..Default::default()
            };
            let mut stream = client.get_data(req).await?.into_inner();
            let mut lines = 0;
            while let Some(m) = stream.message().await? {
                lines += m.results.len();
            }
            Ok::<usize, tonic::Status>(lines)
        }
    };
    assert!(block_on(cost(PASSWORD)).expect("the right password collects costs") > 0);
    let e = block_on(cost(WRONG_PASSWORD)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let names = block_on(f.recorded_after(&[]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.recorded(), names, "one cassette, for the failed cost call");
    assert_no_secret(&f.dir);
    let cassette = Cassette::load(&f.dir.join(&names[0])).unwrap();
    assert_eq!(cassette.call, Some(RecordedCall::CostData));
    assert_eq!(cassette.task_options, Some(task.clone()));
    let out = block_on(harness.replay(&harness.call_for(&cassette), &cf_host::testing::cassette::Replayer::new(cassette.clone())));
    assert_eq!(out.result.as_ref().err().map(|e| e.code().grpc_name()), Some("UNAUTHENTICATED"), "{:?}", out.result);
    assert!(out.unmatched.is_empty(), "{:?}", out.unmatched);

    let f = fixture_for("recfail-metric", 100, Protocol::Monitoring);
    let vm = prism_sim::estate::vm_facts(&EstateConfig { vms: 6, clusters: 1, ..EstateConfig::default() }, 0).uuid;
    let query = json!({vm: {}});
    let metric = |password: &'static str| {
        let (f, query) = (&f, query.clone());
        async move {
            let mut client = MetricClient::connect(f.served.grpc.clone()).await.expect("connect");
            let req = MetricDataRequest {
                options: None,
                secret_data: f.secret(password).as_object().map(json_to_struct),
                metric_query: query.as_object().map(json_to_struct),
                metric: "cpu_usage".into(),
                start: "2026-11-23T10:00:00Z".into(),
                end: "2026-11-23T11:00:00Z".into(),
                period: 600,
                stat: "AVERAGE".into(),
                ..Default::default()
            };
            client.get_data(req).await.map(|_| ())
        }
    };
    block_on(metric(PASSWORD)).expect("the right password reads metrics");
    let e = block_on(metric(WRONG_PASSWORD)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let names = block_on(f.recorded_after(&[]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.recorded(), names, "one cassette, for the failed metric call");
    assert_no_secret(&f.dir);
    let cassette = Cassette::load(&f.dir.join(&names[0])).unwrap();
    assert_eq!(cassette.call, Some(RecordedCall::MetricData));
    let q = cassette.metric_query.clone().expect("the query is kept");
    assert_eq!((q.metric.as_str(), &q.metric_query, q.period), ("cpu_usage", &query, Some(600)));
    let out = block_on(harness.replay(&harness.call_for(&cassette), &cf_host::testing::cassette::Replayer::new(cassette.clone())));
    assert_eq!(out.result.as_ref().err().map(|e| e.code().grpc_name()), Some("UNAUTHENTICATED"), "{:?}", out.result);
    assert!(out.unmatched.is_empty(), "{:?}", out.unmatched);
}
