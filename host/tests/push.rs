//! Push mode (`cf-host run`) against a mock CloudForet (tonic servers from
//! the same protos, over loopback; a test double) and the Prism Central
//! simulator, through the real guest component: every record arrives once,
//! reruns upsert instead of duplicating, vanished resources are deleted,
//! and nothing is lost or duplicated when CloudForet goes down mid-run, the
//! process restarts with records spooled, tokens expire or are revoked, or
//! Prism answers 429.

mod common;
#[path = "support/mock_cloudforet.rs"]
mod mock_cloudforet;

use cf_host::push::PushReport;
use cf_host::push_config::{RunConfig, Runner};
use mock_cloudforet::{MockCloudForet, APP_TOKEN, USER};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Setup {
    dir: PathBuf,
    config: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Writes a push configuration for `sim` → `cloudforet`; `extra` goes into
/// `[cloudforet]`.
fn setup(sim: &Simulator, cloudforet: &str, auth: &str, extra: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("cf-push-test-{}", cf_host::runtime::new_run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prism.json"), sim.secret().to_string()).unwrap();
    let extra = if extra.contains("deliver_timeout_secs") { extra.to_string() } else { format!("{extra}\ndeliver_timeout_secs = 30") };
    let text = format!(
        r#"
store = "push.db"
plugin = "{plugin}"
[cloudforet]
endpoint = "{cf}"
{auth}
notify_resource_type = "identity.Project"
notify_resource_id = "project-nutanix"
backoff_base_ms = 20
backoff_max_ms = 200
breaker_open_secs = 1
{extra}
[[tenant]]
name = "acme"
endpoint = "{prism}"
secret_file = "prism.json"
project_id = "project-nutanix"
allow_networks = ["127.0.0.0/8"]
"#,
        plugin = common::guest().display(),
        cf = cloudforet,
        prism = sim.url(),
    );
    let config = dir.join("run.toml");
    std::fs::write(&config, text).unwrap();
    Setup { dir, config }
}

fn token_auth() -> String {
    "token_file = \"token\"\n".to_string()
}

fn write_token(s: &Setup) {
    std::fs::write(s.dir.join("token"), format!("{APP_TOKEN}\n")).unwrap();
}

async fn sim(vms: usize, faults: Faults) -> Simulator {
    Simulator::start(SimConfig { estate: EstateConfig { vms, ..Default::default() }, faults, ..Default::default() }).await.unwrap()
}

async fn run_once(config: &Path) -> PushReport {
    let runner = Runner::new(RunConfig::load(config).unwrap()).await.unwrap();
    let mut results = runner.run_all(&[]).await.unwrap();
    assert_eq!(results.len(), 1);
    results.remove(0).1.unwrap()
}

/// Records per label a run emitted, as the guest's report counts them.
fn emitted(r: &PushReport) -> BTreeMap<String, u64> {
    r.counts.iter().map(|(k, c)| (k.clone(), c.total())).collect()
}

/// What the mock holds, by the same labels.
fn held(cf: &MockCloudForet) -> BTreeMap<String, u64> {
    let (mut m, dups) = cf.cloud_service_counts();
    assert!(dups.is_empty(), "duplicated cloud services: {dups:?}");
    let db = cf.db();
    m.insert("CloudServiceType".into(), db.types.len() as u64);
    m.insert("Region".into(), db.regions.len() as u64);
    m
}

/// 40 VMs, 3 clusters, 12 hosts, 6 subnets, 8 images, 5 types, 3 regions.
fn expected(vms: u64) -> BTreeMap<String, u64> {
    [
        ("Compute/VirtualMachine", vms),
        ("Storage/Image", 8),
        ("Cluster/Cluster", 3),
        ("Compute/Host", 12),
        ("Networking/Subnet", 6),
        ("CloudServiceType", 5),
        ("Region", 3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_every_record_once_upserts_reruns_and_deletes_what_vanished() {
    let prism = sim(40, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "delete_after_missed = 1");
    write_token(&s);

    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    assert_eq!(held(&cf), expected(40));
    assert_eq!(emitted(&r), expected(40), "the report counts what the guest emitted");
    let t = r.totals();
    assert_eq!((t.created, t.updated, t.unchanged, t.errors), (77, 0, 0, 0));
    {
        let db = cf.db();
        assert_eq!(db.auth_refused, 0);
        assert!(db.cloud_services.values().all(|c| c.project_id == "project-nutanix" && c.data.is_some()));
        let vm = db.cloud_services.values().find(|c| c.cloud_service_type == "VirtualMachine").unwrap();
        assert!(vm.data.as_ref().unwrap().fields.contains_key("power_state"), "{vm:?}");
        let n = &db.notifications;
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].topic.as_str(), n[0].notification_type, n[0].resource_id.as_str()), ("cf-host.collection.finished", 3, "project-nutanix"));
    }

    // The same estate again: nothing written, nothing duplicated.
    let creates = cf.calls_of("CloudService.create");
    let r = run_once(&s.config).await;
    let t = r.totals();
    assert_eq!((t.created, t.updated, t.unchanged, r.deleted), (0, 0, 77, 0), "{r:?}");
    assert_eq!(cf.calls_of("CloudService.create"), creates);
    assert_eq!(cf.calls_of("CloudService.update"), 0);
    assert_eq!(held(&cf), expected(40));

    // 10 VMs are gone: after one complete run without them they are deleted.
    let smaller = sim(30, Faults::default()).await;
    std::fs::write(s.dir.join("prism.json"), smaller.secret().to_string()).unwrap();
    let text = std::fs::read_to_string(&s.config).unwrap().replace(&prism.url(), &smaller.url());
    std::fs::write(&s.config, text).unwrap();
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.deleted, 10);
    assert_eq!(held(&cf), expected(30));
    assert_eq!(cf.db().deleted.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudforet_down_mid_run_loses_and_duplicates_nothing() {
    let prism = sim(120, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    cf.inner.latency_ms.store(3, Ordering::Relaxed);
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "");
    write_token(&s);
    let config = s.config.clone();
    let run = tokio::spawn(async move { run_once(&config).await });
    // Down once part of the records went in; back 2 s later.
    while cf.calls_of("CloudService.create") < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cf.stop().await;
    let during = cf.calls_of("CloudService.create");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cf.restart().await;
    let r = run.await.unwrap();
    assert!(during < 157, "the outage began before the end ({during} creates)");
    assert!(r.elapsed >= Duration::from_millis(1500), "the run waited out the outage: {:?}", r.elapsed);
    assert!(r.complete(), "{r:?}");
    assert_eq!(held(&cf), expected(120));
    assert_eq!(emitted(&r), expected(120));
    assert_eq!(r.totals().errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spooled_while_cloudforet_is_down_are_delivered_after_a_restart() {
    let prism = sim(40, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "deliver_timeout_secs = 1\nattempts = 2");
    write_token(&s);
    cf.stop().await;
    let r = run_once(&s.config).await;
    assert!(r.error.is_none(), "the collection itself succeeded: {r:?}");
    assert!(!r.complete());
    assert_eq!(r.spooled, 77, "{r:?}");
    assert!(matches!(r.delivery_error, Some(cf_host::push::DeliveryError::Unavailable(_))), "{r:?}");
    assert!(r.delivery_error.as_ref().map(ToString::to_string).unwrap_or_default().contains("unavailable"), "{r:?}");
    assert_eq!(r.deleted, 0);

    // A new process on the same store delivers them once CloudForet is back.
    cf.restart().await;
    let runner = Runner::new(RunConfig::load(&s.config).unwrap()).await.unwrap();
    let redelivered = runner.redeliver().await.unwrap();
    assert_eq!(redelivered.get("acme"), Some(&(77, None)));
    assert_eq!(runner.sink.outbox.spool_len(&runner.sink.name, None).unwrap(), 0);
    assert_eq!(held(&cf), expected(40));
    drop(runner);
    // And the next run finds them all: unchanged, nothing duplicated.
    let r = run_once(&s.config).await;
    assert_eq!(r.totals().unchanged, 77, "{r:?}");
    assert_eq!(held(&cf), expected(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_and_revoked_mid_run_are_renewed() {
    let prism = sim(60, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    cf.inner.token_lifetime_secs.store(2, Ordering::Relaxed);
    cf.inner.latency_ms.store(4, Ordering::Relaxed);
    cf.inner.revoke_every.store(41, Ordering::Relaxed);
    let auth = format!("user_id = \"{}\"\npassword_env = \"CF_PUSH_TEST_PASSWORD\"\ndomain_id = \"domain-test\"", USER.0);
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("CF_PUSH_TEST_PASSWORD", USER.1) };
    let s = setup(&prism, &cf.endpoint(), &auth, "concurrency = 2");
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    assert_eq!(held(&cf), expected(60));
    let db = cf.db();
    assert!(db.issued >= 1 && db.granted >= 3, "issued {} granted {}", db.issued, db.granted);
    assert!(db.auth_refused > 0, "revocations were answered UNAUTHENTICATED and renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prism_429s_and_unavailable_answers_give_exact_counts() {
    let prism = sim(80, Faults { rate_limit_every: 3, retry_after_secs: 0, ..Default::default() }).await;
    let cf = MockCloudForet::start().await;
    cf.inner.unavailable_next.store(3, Ordering::Relaxed);
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "");
    write_token(&s);
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    assert_eq!(held(&cf), expected(80));
    assert_eq!(r.totals().created, 117);
    assert!(prism.state.calls_per_kind().values().sum::<u64>() > 5);
}

/// `cf-host <command> --config FILE` as a child process.
async fn cf_host(args: &[&str], config: &Path) -> std::process::Output {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cf-host")).args(&args).arg("--config").arg(&config).output().unwrap()
    })
    .await
    .unwrap()
}

/// `cf-host run --once --config FILE` as a child process.
async fn cf_run(config: &Path) -> std::process::Output {
    cf_host(&["run", "--once"], config).await
}

/// Rewrites the configuration file.
fn edit(s: &Setup, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, f(text)).unwrap();
}

/// A `[register]` section publishing guest-nutanix's secret schema and a plugin.
fn register_section(image: &str, labels: &str) -> String {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-nutanix/schema/secret.json");
    format!(
        r#"
[register.schema]
schema_id = "nutanix-prism-central"
name = "Nutanix Prism Central"
schema_file = "{}"
provider = "nutanix"
tags = {{ managed_by = "cf-host" }}
[register.plugin]
name = "plugin-nutanix-inven-collector"
image = "{image}"
provider = "nutanix"
capability = {{ supported_schema = ["nutanix-prism-central"] }}
labels = [{labels}]
"#,
        schema.display()
    )
}

fn text_of(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `cf-host register` publishes the secret schema and the plugin, and
/// running it again changes nothing; a changed label is an update, a
/// changed image is refused with the reason. A tenant's `secret_id` is read
/// from the secret service at each run; an encrypted one is refused
/// without its data ever being shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_publishes_schema_and_plugin_and_secret_ids_come_from_cloudforet() {
    let prism = sim(10, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "");
    write_token(&s);
    edit(&s, |t| format!("{}{}", t.replace("secret_file = \"prism.json\"", "secret_id = \"secret-prism\""), register_section("cloudforet/cf-host:1.0", "\"Nutanix\"")));

    let out = cf_host(&["register"], &s.config).await;
    let (stdout, stderr) = text_of(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let plugin_id = {
        let db = cf.db();
        let schema = &db.schemas["nutanix-prism-central"];
        assert_eq!((schema.schema_type, schema.provider.as_str()), (3, "nutanix"), "SECRET");
        let fields = &schema.schema.as_ref().unwrap().fields;
        assert!(fields["properties"].kind.as_ref().is_some_and(|k| matches!(k, prost_types::value::Kind::StructValue(p) if p.fields.contains_key("api_key"))));
        assert_eq!(db.plugins.len(), 1);
        let p = db.plugins.values().next().unwrap();
        assert_eq!((p.image.as_str(), p.resource_type.as_str(), p.registry_type), ("cloudforet/cf-host:1.0", "inventory.Collector", 1));
        p.plugin_id.clone()
    };
    assert_eq!(stdout, format!("schema nutanix-prism-central: created\nplugin {plugin_id}: created\n"));
    let out = cf_host(&["register"], &s.config).await;
    assert_eq!(text_of(&out).0, format!("schema nutanix-prism-central: unchanged\nplugin {plugin_id}: unchanged\n"));
    edit(&s, |t| t.replace("labels = [\"Nutanix\"]", "labels = [\"Nutanix\", \"AHV\"]"));
    let out = cf_host(&["register"], &s.config).await;
    assert_eq!(text_of(&out).0, format!("schema nutanix-prism-central: unchanged\nplugin {plugin_id}: updated\n"));
    assert_eq!(cf.db().plugins[&plugin_id].labels.as_ref().unwrap().values.len(), 2);
    edit(&s, |t| t.replace("cloudforet/cf-host:1.0", "cloudforet/cf-host:2.0"));
    let out = cf_host(&["register"], &s.config).await;
    let (_, stderr) = text_of(&out);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("plugin {plugin_id} is registered with image 'cloudforet/cf-host:1.0', not 'cloudforet/cf-host:2.0'")), "{stderr}");
    assert_eq!(cf.db().plugins.len(), 1, "no second plugin");

    // The tenant's secret lives in CloudForet.
    let secret = cf_host::grpc::convert::json_to_struct(prism.secret().as_object().unwrap());
    cf.db().secrets.insert("secret-prism".into(), (false, secret.clone()));
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.totals().created, 47);
    assert_eq!(cf.calls_of("Secret.get_data"), 1);
    // Encrypted data cannot be used; the error says so and shows no secret.
    cf.db().secrets.insert("secret-prism".into(), (true, secret));
    let out = cf_run(&s.config).await;
    let (stdout, stderr) = text_of(&out);
    assert!(!out.status.success());
    assert!(stdout.contains("acme: failed: tenant 'acme': secret secret-prism:") && stdout.contains("is encrypted"), "{stdout}");
    let password = prism.secret()["password"].as_str().unwrap().to_string();
    assert!(!stdout.contains(&password) && !stderr.contains(&password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_run_once_reports_and_fails_on_a_refused_token() {
    let prism = sim(10, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "");
    write_token(&s);
    let out = cf_run(&s.config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("acme: 47 created, 0 updated, 0 unchanged, 0 errors"), "{stdout}");

    // A wrong token: the run fails, says why, and does not show the token.
    std::fs::write(s.dir.join("token"), "wrong-token-value").unwrap();
    let out = cf_run(&s.config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains("delivery stopped: CloudForet refused the connector") && stdout.contains("ERROR_AUTHENTICATE_FAILURE"), "{stdout}");
    assert!(!stdout.contains("wrong-token-value") && !stderr.contains("wrong-token-value"));
}

/// CloudForet's own stubs on the other end: a server built with the real
/// spaceone-api Python package (`add_CloudServiceServicer_to_server`, ...;
/// tests/python/cf_api_server.py) takes cf-host's identity, inventory,
/// notification, repository and secret calls, proving the hand-written
/// protos wire-compatible.
/// tests/python/cf_api_server.py in `dir`, with one secret (`secret-prism`,
/// the simulator's): the child (stopped by closing its stdin), its port and
/// its state file.
async fn api_server(prism: &Simulator, dir: &Path) -> (std::process::Child, u16, std::path::PathBuf) {
    use std::io::{BufRead, BufReader};
    std::fs::create_dir_all(dir).unwrap();
    let state_file = dir.join("state.json");
    let secrets_file = dir.join("secrets.json");
    std::fs::write(&secrets_file, serde_json::json!({"secret-prism": prism.secret()}).to_string()).unwrap();
    let python = tokio::task::spawn_blocking(common::python).await.unwrap();
    let mut server = std::process::Command::new(python)
        .arg(common::python_dir().join("cf_api_server.py"))
        .arg(&state_file)
        .arg(&secrets_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the server printed {line:?}"));
    (server, port, state_file)
}

/// Given only identity, the other services' endpoints come from identity's
/// `Endpoint.list` (spaceone-api's own stubs answer it); one configured
/// explicitly keeps its setting; the run delivers to what was discovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_discovered_from_identity() {
    let prism = sim(12, Faults::default()).await;
    let dir = std::env::temp_dir().join(format!("cf-push-discover-{}", cf_host::runtime::new_run_id()));
    let (mut server, port, state_file) = api_server(&prism, &dir).await;
    let auth = format!("user_id = \"{}\"\npassword_env = \"CF_PUSH_DISCOVER_PASSWORD\"\ndomain_id = \"domain-py\"", USER.0);
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("CF_PUSH_DISCOVER_PASSWORD", USER.1) };
    let s = setup(&prism, &format!("http://127.0.0.1:{port}"), &auth, "secret = \"http://127.0.0.1:1\"");
    edit(&s, |t| t.replacen("endpoint = \"http://", "identity = \"http://", 1));
    let config = RunConfig::load(&s.config).unwrap();
    let e = config.endpoints().await.unwrap();
    let here = format!("http://127.0.0.1:{port}");
    assert_eq!((e.inventory.as_str(), e.notification.as_deref(), e.cost_analysis.as_deref()), (here.as_str(), Some(here.as_str()), Some(here.as_str())));
    assert_eq!(e.secret.as_deref(), Some("http://127.0.0.1:1"), "the configured one wins");
    let report = run_once(&s.config).await;
    drop(server.stdin.take());
    let _ = server.wait();
    assert!(report.complete(), "{report:?}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let calls: Vec<&str> = state["calls"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
    assert!(calls.contains(&"Endpoint.list"), "{calls:?}");
    assert!(state["cloud_services"].as_object().is_some_and(|m| !m.is_empty()), "delivered to the discovered inventory");
    // Without identity to ask, a clear error.
    edit(&s, |t| t.replacen(&format!("identity = \"http://127.0.0.1:{port}\""), "identity = \"http://127.0.0.1:1\"", 1));
    let e = RunConfig::load(&s.config).unwrap().endpoints().await.unwrap_err();
    assert!(matches!(e, cf_host::push_config::ConfigError::Discover { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.starts_with("cannot discover CloudForet's endpoints from identity http://127.0.0.1:1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_speak_to_a_server_built_on_the_real_spaceone_api_stubs() {
    let prism = sim(12, Faults::default()).await;
    let dir = std::env::temp_dir().join(format!("cf-push-py-{}", cf_host::runtime::new_run_id()));
    let (mut server, port, state_file) = api_server(&prism, &dir).await;
    let auth = format!("user_id = \"{}\"\npassword_env = \"CF_PUSH_PY_PASSWORD\"\ndomain_id = \"domain-py\"", USER.0);
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("CF_PUSH_PY_PASSWORD", USER.1) };
    let s = setup(&prism, &format!("http://127.0.0.1:{port}"), &auth, "");
    edit(&s, |t| {
        let tenant = t.replace("secret_file = \"prism.json\"", "secret_id = \"secret-prism\"")
            + "cost_data_source_id = \"ds-py\"\noptions = { rate_card = { vcpu_hour = 0.5, memory_gib_hour = 0.25, disk_gib_month = 3.0 } }\n";
        format!("{tenant}{}", register_section("cloudforet/cf-host:1.0", "\"Nutanix\""))
    });

    let runner = Runner::new(RunConfig::load(&s.config).unwrap()).await.unwrap();
    let register = runner.config.register.as_ref().unwrap();
    let published = cf_host::push_config::register(&runner.sink.connector, register).await.unwrap();
    let republished = cf_host::push_config::register(&runner.sink.connector, register).await.unwrap();
    drop(runner);
    let first = run_once(&s.config).await;
    let second = run_once(&s.config).await;
    drop(server.stdin.take());
    let _ = server.wait();
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    assert!(published[0] == "schema nutanix-prism-central: created" && published[1].ends_with(": created"), "{published:?}");
    assert!(republished.iter().all(|l| l.ends_with(": unchanged")), "read back through the stubs: {republished:?}");
    let schema = &state["schemas"]["nutanix-prism-central"];
    assert_eq!((schema["schema_type"].as_str(), schema["provider"].as_str()), (Some("SECRET"), Some("nutanix")));
    assert!(schema["schema"]["properties"]["api_key"].is_object(), "{schema}");
    let plugins = state["plugins"].as_object().unwrap();
    assert_eq!(plugins.len(), 1);
    let plugin = plugins.values().next().unwrap();
    assert_eq!((plugin["image"].as_str(), plugin["resource_type"].as_str()), (Some("cloudforet/cf-host:1.0"), Some("inventory.Collector")));
    assert_eq!((plugin["registry_type"].as_str(), plugin["labels"].clone()), (Some("DOCKER_HUB"), serde_json::json!(["Nutanix"])));
    assert_eq!(plugin["capability"]["supported_schema"], serde_json::json!(["nutanix-prism-central"]));

    assert!(first.complete(), "{first:?}");
    let lines = first.costs.as_ref().map_or(0, |c| c.lines);
    assert!(lines >= 12, "every VM has at least a disk line: {first:?}");
    assert_eq!(first.totals().created, 49 + lines, "{first:?}");
    assert_eq!(second.totals().unchanged, 49 + lines, "read back through the stubs, nothing differs: {second:?}");
    let costs = state["costs"].as_object().unwrap();
    assert_eq!(costs.len() as u64, lines);
    let vcpu = costs.values().find(|c| c["usage_type"] == "vCPU").unwrap();
    assert_eq!((vcpu["data_source_id"].as_str(), vcpu["provider"].as_str()), (Some("ds-py"), Some("nutanix")));
    assert!(vcpu["cost"].as_f64().is_some_and(|c| c > 0.0) && vcpu["additional_info"]["Usage Unit"] == "vCPU-Hour", "{vcpu}");
    let services = state["cloud_services"].as_object().unwrap();
    assert_eq!(services.len(), 12 + 3 + 12 + 6 + 8);
    assert_eq!(state["types"].as_object().unwrap().len(), 5);
    assert_eq!(state["regions"].as_object().unwrap().len(), 3);
    let vm = services.values().find(|c| c["cloud_service_type"] == "VirtualMachine" && c["name"] == "vm-0000").unwrap();
    assert_eq!(vm["provider"], "nutanix");
    assert_eq!(vm["cloud_service_group"], "Compute");
    assert_eq!(vm["project_id"], "project-nutanix");
    assert!(vm["reference"]["resource_id"].as_str().is_some_and(|s| s.len() == 36), "{vm}");
    assert!(vm["data"]["power_state"].is_string() && vm["data"]["num_sockets"].is_number(), "{vm}");
    assert_eq!(vm["data"]["cluster"]["name"], "cluster-a", "{vm}");
    assert!(vm["region_code"].as_str().is_some_and(|c| c.len() == 36), "coded by the cluster's uuid: {vm}");
    assert_eq!(vm["tags"]["Environment"], "Production", "{vm}");
    let n = state["notifications"].as_array().unwrap();
    assert_eq!(n.len(), 2);
    assert_eq!(n[0]["notification_type"], "SUCCESS");
    assert_eq!(n[0]["resource_type"], "identity.Project");
    assert!(n[0]["message"]["title"].as_str().unwrap().contains("acme"));
    let calls: Vec<&str> = state["calls"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
    assert_eq!(calls.iter().filter(|c| **c == "Token.issue").count(), 3, "one per connector");
    assert_eq!(calls.iter().filter(|c| **c == "Secret.get_data").count(), 2, "the secret is read at every run");
    assert!(!calls.contains(&"CloudService.update"));
}

/// Costs: with a cost data source the run also collects the guest's cost
/// lines (VM allocation × the `rate_card` option) and writes them with
/// `Cost.create`; the next run covers the days since this one and leaves
/// equal lines alone, a changed rate replaces the lines it changes (costs
/// cannot be updated: delete, then create), and nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_are_pushed_once_per_line_and_replaced_when_rates_change() {
    use chrono::Datelike;
    let estate = EstateConfig { vms: 40, ..Default::default() };
    let prism = sim(40, Faults::default()).await;
    let cf = MockCloudForet::start().await;
    let s = setup(&prism, &cf.endpoint(), &token_auth(), "");
    write_token(&s);
    let rates = "options = { rate_card = { currency = \"EUR\", vcpu_hour = 0.5, memory_gib_hour = 0.25, disk_gib_month = 3.0 } }";
    edit(&s, |t| format!("{t}cost_data_source_id = \"ds-nutanix\"\n{rates}\n"));

    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    let on = (0..40).filter(|i| prism_sim::estate::vm_facts(&estate, *i).powered_on).count() as u64;
    assert_eq!(r.costs.as_ref().map(|c| (c.tasks, c.lines)), Some((1, on * 3 + (40 - on))), "{r:?}");
    let today = chrono::Utc::now().date_naive();
    let month_days = {
        let first = today.with_day(1).unwrap();
        let next = if first.month() == 12 { first.with_year(first.year() + 1).unwrap().with_month(1).unwrap() } else { first.with_month(first.month() + 1).unwrap() };
        (next - first).num_days() as f64
    };
    let expected: f64 = (0..40)
        .map(|i| prism_sim::estate::vm_facts(&estate, i))
        .map(|f| {
            let disk = f.disks_gib.iter().sum::<u64>() as f64 / month_days * 3.0;
            let running = f64::from(f.sockets * f.vcpus_per_socket) * 24.0 * 0.5 + f.memory_mib as f64 / 1024.0 * 24.0 * 0.25;
            disk + if f.powered_on { running } else { 0.0 }
        })
        .sum();
    {
        let db = cf.db();
        assert_eq!(db.costs.len() as u64, on * 3 + (40 - on));
        let total: f64 = db.costs.values().map(|c| c.cost).sum();
        assert!((total - expected).abs() < 1e-6, "{total} != {expected}");
        let day = today.format("%Y-%m-%d").to_string();
        assert!(db.costs.values().all(|c| c.data_source_id == "ds-nutanix" && c.project_id == "project-nutanix" && c.billed_date == day));
        let vcpu = db.costs.values().find(|c| c.usage_type == "vCPU").unwrap();
        let info = &vcpu.additional_info.as_ref().unwrap().fields;
        assert!(info.contains_key("Usage Unit") && info.contains_key("VM Name"), "{info:?}");
    }
    let created = cf.calls_of("Cost.create");

    // Again: the same lines, nothing written.
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    let unchanged: u64 = r.counts.iter().filter(|(k, _)| k.starts_with("Cost/")).map(|(_, c)| c.unchanged).sum();
    assert_eq!(unchanged, on * 3 + (40 - on));
    assert_eq!(cf.calls_of("Cost.create"), created);

    // A new vCPU rate: the vCPU lines are replaced, the rest stay.
    edit(&s, |t| t.replace("vcpu_hour = 0.5", "vcpu_hour = 0.75"));
    let r = run_once(&s.config).await;
    assert!(r.complete(), "{r:?}");
    let c = |k: &str| r.counts.get(k).cloned().unwrap_or_default();
    assert_eq!((c("Cost/vCPU").updated, c("Cost/Memory").unchanged, c("Cost/Disk").unchanged), (on, on, 40));
    assert_eq!(cf.db().costs.len() as u64, on * 3 + (40 - on), "replaced, not duplicated");
    assert_eq!(cf.calls_of("Cost.delete") as u64, on);

    // Last synchronized three days ago: the next run covers those days too,
    // and remembers this one.
    {
        let runner = Runner::new(RunConfig::load(&s.config).unwrap()).await.unwrap();
        let then = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
        runner.sink.outbox.set_cost_synced(&runner.sink.name, "acme", "ds-nutanix", &then).unwrap();
    }
    let r = run_once(&s.config).await;
    assert_eq!(r.costs.as_ref().map(|c| c.tasks), Some(4), "{r:?}");
    assert_eq!(cf.db().costs.len() as u64, 4 * (on * 3 + (40 - on)));
    {
        let runner = Runner::new(RunConfig::load(&s.config).unwrap()).await.unwrap();
        let synced = runner.sink.outbox.cost_synced(&runner.sink.name, "acme", "ds-nutanix").unwrap().unwrap();
        assert!(synced.starts_with(&today.format("%Y-%m-%d").to_string()), "{synced}");
    }

    // A broken rate card fails the costs, not the inventory; the
    // notification says so.
    edit(&s, |t| t.replace("vcpu_hour = 0.75", "vcpu_hour = -1"));
    let r = run_once(&s.config).await;
    assert!(r.error.is_none() && !r.complete(), "{r:?}");
    let e = r.cost_error.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("rate_card.vcpu_hour must be a number of at least 0"), "{e}");
    assert_eq!(r.totals().unchanged, 77, "the inventory went in");
    let db = cf.db();
    let last = db.notifications.last().unwrap();
    assert_eq!(last.notification_type, 4, "WARNING");
    let message = cf_host::grpc::convert::struct_to_json(last.message.clone());
    assert_eq!(message["title"], "Costs failed for acme (inventory collected)");
}
