//! Push mode on many replicas (`cf-host run --database`): real `cf-host
//! run` processes on one real PostgreSQL server (started by the test on a
//! Unix socket, tests/src/postgres.rs), the mock CloudForet and one Prism
//! Central simulator per tenant (each with its own Prism Central uuid, so
//! tenants' cloud services are distinct), through the real guest.
//!
//! Each tenant's scheduled slot runs once across the replicas, nothing is
//! lost or duplicated; a replica killed with SIGKILL mid-run has its slot
//! taken over by another once its lease expires; a database that is down
//! at start is named in a clear error (without its password); one that
//! goes down mid-run stops the run (fail closed) and the next tick, once it
//! is back, runs the slot without anyone restarting anything.

mod common;
#[path = "support/mock_cloudforet.rs"]
mod mock_cloudforet;
#[path = "../../tests/src/postgres.rs"]
#[expect(dead_code, reason = "push runs need no server on a TCP port (fleet_tls.rs does)")]
mod postgres;

use mock_cloudforet::{MockCloudForet, APP_TOKEN};
use postgres::Postgres;
use prism_sim::estate::EstateConfig;
use prism_sim::{SimConfig, Simulator};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The tests start several hosts that each compile the guest: one test at a
/// time keeps a 2-core machine from timing out.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VMS: usize = 40;
/// Cloud services one tenant of [`VMS`] VMs holds: VMs, 8 images, 3
/// clusters, 12 hosts, 6 subnets.
const PER_TENANT: u64 = VMS as u64 + 8 + 3 + 12 + 6;

struct Setup {
    dir: PathBuf,
    pg: Postgres,
    cf: MockCloudForet,
    sims: Vec<Simulator>,
    tenants: Vec<String>,
    /// More `[cloudforet]` keys for the replicas' configurations.
    cf_extra: String,
    /// More keys for every `[[tenant]]`.
    tenant_extra: String,
    /// The UTC hours every tenant is due at.
    hours: Vec<u8>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A `cf-host run` process, killed when dropped.
struct Replica {
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn setup(tenants: usize) -> Setup {
    let dir = std::env::temp_dir().join(format!("cf-push-fleet-{}", cf_host::runtime::new_run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), format!("{APP_TOKEN}\n")).unwrap();
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let cf = MockCloudForet::start().await;
    let mut sims = Vec::new();
    let mut names = Vec::new();
    for k in 0..tenants {
        let sim = Simulator::start(SimConfig { estate: EstateConfig { vms: VMS, ..Default::default() }, ..Default::default() }).await.unwrap();
        sim.state.set_prism_central_uuid(&format!("00000000-0000-4000-8000-{k:012}"));
        std::fs::write(dir.join(format!("prism-{k}.json")), sim.secret().to_string()).unwrap();
        sims.push(sim);
        names.push(format!("t{k}"));
    }
    Setup { dir, pg, cf, sims, tenants: names, cf_extra: "deliver_timeout_secs = 30".into(), tenant_extra: String::new(), hours: (0..24).collect() }
}

impl Setup {
    /// Replica `i`'s configuration: its own embedded store, every tenant
    /// due every hour, a 2 s lease.
    fn config(&self, i: usize) -> PathBuf {
        let mut text = format!(
            r#"
store = "push-{i}.db"
plugin = "{plugin}"
lease_ttl_secs = 2
max_parallel_tenants = 2
[cloudforet]
endpoint = "{cf}"
token_file = "token"
notify_resource_type = "identity.Project"
notify_resource_id = "project-nutanix"
backoff_base_ms = 20
backoff_max_ms = 200
breaker_open_secs = 1
{extra}
"#,
            plugin = common::guest().display(),
            cf = self.cf.endpoint(),
            extra = self.cf_extra,
        );
        for (k, (name, sim)) in self.tenants.iter().zip(&self.sims).enumerate() {
            text.push_str(&format!(
                r#"
[[tenant]]
name = "{name}"
endpoint = "{prism}"
secret_file = "prism-{k}.json"
project_id = "project-{name}"
hours = [{hours}]
allow_networks = ["127.0.0.0/8"]
{extra}
"#,
                prism = sim.url(),
                hours = self.hours.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                extra = self.tenant_extra,
            ));
        }
        let path = self.dir.join(format!("run-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts replica `i` (`cf-host run --database … --tick 1`).
    fn replica(&self, i: usize) -> Replica {
        let log = self.dir.join(format!("replica-{i}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["run", "--tick", "1", "--config"])
            .arg(self.config(i))
            .args(["--database", &self.pg.url])
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Replica { child, log }
    }

    /// `cf-host run --once` as replica `i`, to its exit: its log.
    fn once(&self, i: usize) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["run", "--once", "--config"])
            .arg(self.config(i))
            .args(["--database", &self.pg.url])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "replica {i} --once failed:\n{log}");
        log
    }

    /// `cf-host runs` through replica `i` (its configuration, the shared
    /// database): the runs it lists, newest first.
    fn runs(&self, i: usize) -> Vec<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_cf-host"))
            .args(["runs", "--limit", "100", "--config"])
            .arg(self.config(i))
            .args(["--database", &self.pg.url])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "cf-host runs failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("cf-host runs: not JSON ({e}):\n{stdout}"))
    }

    /// Replica 0 alone with CloudForet slowed down, once its run has
    /// delivered a few records (well before the end).
    async fn replica_mid_run(&self) -> Replica {
        self.cf.inner.latency_ms.store(30, Ordering::Relaxed);
        let a = self.replica(0);
        let start = Instant::now();
        while self.cf.calls_of("CloudService.create") < 10 {
            assert!(start.elapsed() < Duration::from_secs(180), "replica 0 never started delivering:\n{}", a.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a
    }

    /// Every slot row: `(tenant, slot) -> (runs, done, replica)`.
    async fn slots(&self) -> BTreeMap<(String, i64), (i32, bool, String)> {
        let url = self.pg.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            let rows = c.query("SELECT tenant, slot, runs, done_at IS NOT NULL, replica FROM cf_push_slots", &[]).unwrap_or_default();
            rows.iter().map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4)))).collect()
        })
        .await
        .unwrap()
    }

    /// Waits until `done(slots)` holds (panics with the replicas' logs after
    /// `limit`).
    async fn wait_for(&self, what: &str, limit: Duration, replicas: &[&Replica], done: impl Fn(&BTreeMap<(String, i64), (i32, bool, String)>) -> bool) {
        let start = Instant::now();
        loop {
            if done(&self.slots().await) {
                return;
            }
            if start.elapsed() > limit {
                let logs: Vec<String> = replicas.iter().map(|r| r.log()).collect();
                panic!("{what}: not within {limit:?}; slots {:?}\n{}", self.slots().await, logs.join("\n-----\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Records in the shared outbox.
    async fn outbox_len(&self) -> i64 {
        let url = self.pg.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            c.query_one("SELECT count(*) FROM cf_outbox", &[]).map(|r| r.get(0)).unwrap_or(-1)
        })
        .await
        .unwrap()
    }

    /// Runs (notifications) per tenant, as the mock CloudForet saw them.
    fn runs_seen(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for n in &self.cf.db().notifications {
            *m.entry(tenant_of(n).unwrap_or_default()).or_insert(0) += 1;
        }
        m
    }

    /// Cloud services per account (tenant), with none duplicated.
    fn held(&self) -> BTreeMap<String, u64> {
        let (_, dups) = self.cf.cloud_service_counts();
        assert!(dups.is_empty(), "duplicated cloud services: {dups:?}");
        let mut m = BTreeMap::new();
        for c in self.cf.db().cloud_services.values() {
            *m.entry(c.account.clone()).or_insert(0) += 1;
        }
        m
    }

    fn expected_held(&self) -> BTreeMap<String, u64> {
        (0..self.tenants.len()).map(|k| (format!("00000000-0000-4000-8000-{k:012}"), PER_TENANT)).collect()
    }
}

/// The tenant tag of a completion notification.
fn tenant_of(n: &cf_host::cloudforet::pb::notification::v1::CreateNotificationRequest) -> Option<String> {
    use prost_types::value::Kind;
    let text = |v: Option<&prost_types::Value>| match v.and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    };
    let Some(Kind::ListValue(tags)) = n.message.as_ref()?.fields.get("tags")?.kind.as_ref() else {
        return None;
    };
    tags.values.iter().find_map(|t| match &t.kind {
        Some(Kind::StructValue(s)) if text(s.fields.get("key")).as_deref() == Some("tenant") => text(s.fields.get("value")),
        _ => None,
    })
}

fn all_done(tenants: &[String]) -> impl Fn(&BTreeMap<(String, i64), (i32, bool, String)>) -> bool + '_ {
    move |slots| tenants.iter().all(|t| slots.iter().any(|((tenant, _), (_, done, _))| tenant == t && *done))
}

/// Three replicas, four tenants all due: each tenant's slot runs exactly
/// once (one notification per slot, the slot started once), and CloudForet
/// holds every cloud service once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_run_each_tenant_once_per_slot() {
    let _serial = SERIAL.lock().await;
    let s = setup(4).await;
    let replicas: Vec<Replica> = (0..3).map(|i| s.replica(i)).collect();
    let refs: Vec<&Replica> = replicas.iter().collect();
    s.wait_for("every tenant's slot done", Duration::from_secs(240), &refs, all_done(&s.tenants)).await;
    // A few more ticks of all three: nobody runs a done slot again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let slots = s.slots().await;
    for ((tenant, slot), (runs, done, _)) in &slots {
        assert!(*done && *runs == 1, "{tenant} slot {slot}: runs {runs}, done {done}");
    }
    for t in &s.tenants {
        let n = slots.keys().filter(|(tenant, _)| tenant == t).count() as u64;
        // One slot per tenant, two if the test crossed an hour.
        assert!(n == 1 || n == 2, "{t}: {n} slots");
        assert_eq!(s.runs_seen().get(t), Some(&n), "{t} ran once per slot: {:?}", s.runs_seen());
    }
    assert_eq!(s.held(), s.expected_held());
    assert_eq!(s.cf.calls_of("CloudService.create") as u64, PER_TENANT * s.tenants.len() as u64, "each created once");
    let ran_on: std::collections::BTreeSet<&String> = slots.values().map(|(_, _, r)| r).collect();
    eprintln!("slots ran on {} replica(s): {ran_on:?}", ran_on.len());
}

/// SIGKILL of the replica running a tenant: the slot stays open until its
/// lease expires, then another replica runs it; nothing lost, nothing
/// duplicated, the slot done once (started twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_slot_is_taken_over_after_its_lease_expires() {
    let _serial = SERIAL.lock().await;
    let s = setup(1).await;
    let mut a = s.replica_mid_run().await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed_at = s.cf.calls_of("CloudService.create") as u64;
    let slots = s.slots().await;
    let ((_, slot), (runs, done, replica)) = slots.iter().next().expect("the slot started");
    assert_eq!((*runs, *done), (1, false), "killed mid-run");
    assert!(replica.ends_with(&format!(":{}", a.child.id())), "replica 0 held it: {replica}");
    assert!(killed_at < PER_TENANT, "killed before the end ({killed_at} creates)");
    let slot = *slot;

    let (b, c) = (s.replica(1), s.replica(2));
    s.wait_for("the slot taken over", Duration::from_secs(240), &[&b, &c], |m| m.values().any(|(_, done, _)| *done)).await;
    let slots = s.slots().await;
    let (runs, done, by) = &slots[&("t0".to_string(), slot)];
    assert_eq!((*runs, *done), (2, true), "{slots:?}");
    assert!(!by.ends_with(&format!(":{}", a.child.id())), "another replica finished it: {by}");
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(s.held(), s.expected_held(), "nothing lost");
    assert_eq!(s.cf.calls_of("CloudService.create") as u64, PER_TENANT, "nothing created twice");
    assert_eq!(s.runs_seen().get("t0"), Some(&1), "one run finished");

    // The killed replica's run is not left RUNNING: another replica closes
    // it as abandoned once its lease is gone; the run that took over is
    // listed beside it, ended.
    let start = Instant::now();
    let runs = loop {
        let runs = s.runs(2);
        if runs.iter().all(|r| r["status"] != "RUNNING") {
            break runs;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "a run left RUNNING: {runs:#?}\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let killed = format!(":{}", a.child.id());
    let (dead, alive): (Vec<_>, Vec<_>) = runs.iter().partition(|r| r["replica"].as_str().is_some_and(|p| p.ends_with(&killed)));
    assert_eq!((dead.len(), alive.len()), (1, 1), "{runs:#?}");
    assert_eq!(dead[0]["status"], "FAILURE", "{runs:#?}");
    assert_eq!(dead[0]["summary"]["abandoned"], true, "{runs:#?}");
    assert!(dead[0]["finished_at"].is_string(), "{runs:#?}");
    assert_eq!(alive[0]["status"], "SUCCESS", "{runs:#?}");
    assert!(alive[0]["summary"]["error"].is_null() && alive[0]["summary"]["spooled"] == 0, "{runs:#?}");
}

/// A run's record is the fleet's: a run made on replica 0, whose
/// collection met a failing list (an error resource), is listed through
/// replica 1 (its own configuration, its own embedded store) with its
/// status, summary and error resources; replica 1's embedded store holds
/// nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_made_on_one_replica_is_listed_with_its_errors_through_another() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(1).await;
    s.tenant_extra = "options = { max_retries = 0 }".into();
    s.sims[0].set_faults(prism_sim::Faults {
        pages: vec![prism_sim::PageFault { kind: "images".into(), offset: 0, status: 500, times: None }],
        ..Default::default()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_cf-host"))
        .args(["run", "--once", "--config"])
        .arg(s.config(0))
        .args(["--database", &s.pg.url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(log.contains("t0: ") && log.contains(" 1 errors"), "{log}");

    let runs = s.runs(1);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["tenant"], "t0");
    assert_ne!(run["status"], "RUNNING", "{run:#}");
    assert!(run["finished_at"].is_string(), "{run:#}");
    assert!(run["replica"].as_str().is_some_and(|r| r.contains(':')), "{run:#}");
    assert_eq!(run["summary"]["errors"], 1, "{run:#}");
    assert_eq!(run["errors_total"], 1, "{run:#}");
    assert_eq!(run["errors"][0]["label"], "Storage/Image", "{run:#}");
    assert!(run["errors"][0]["message"].as_str().is_some_and(|m| m.contains("images list failed") && m.contains("HTTP 500")), "{run:#}");
    assert_eq!(s.runs(1), s.runs(0), "every replica lists the same runs");
    // Without the database, replica 1 has nothing: the record is not local.
    let out = Command::new(env!("CARGO_BIN_EXE_cf-host")).args(["runs", "--config"]).arg(s.config(1)).env_remove("CF_HOST_DATABASE").output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

/// Unfinished slots are taken over whatever their age, and a tenant
/// catches up once: after a fleet outage of two days that left two slots
/// of a tenant started and not done (50 and 30 hours ago), a replica runs
/// the latest of them (the tenant is not due in the current hour) and
/// closes the older as superseded by it, without running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_unfinished_slot_is_taken_over_once_and_older_ones_are_superseded() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(1).await;
    let now = chrono::Utc::now();
    s.hours = vec![(chrono::Timelike::hour(&now) as u8 + 12) % 24];
    let current = cf_host::push_config::slot_of(now);
    let (older, old) = (current - 50, current - 30);
    let (url, sink) = (s.pg.url.clone(), format!("cloudforet:{}", s.cf.endpoint()));
    let superseded = move || {
        // The schema, as a replica makes it; then the slots a dead fleet left.
        cf_host::fleet::Fleet::connect(&url).unwrap();
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        for (slot, hours) in [(older, 50.0f64), (old, 30.0)] {
            c.execute(
                "INSERT INTO cf_push_slots (sink, tenant, slot, runs, replica, started_at) VALUES ($1, 't0', $2, 1, 'gone:1', now() - $3 * interval '1 hour')",
                &[&sink, &slot, &hours],
            )
            .unwrap();
        }
        move |url: &str| -> BTreeMap<i64, Option<i64>> {
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
            c.query("SELECT slot, superseded_by FROM cf_push_slots", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
        }
    };
    let superseded_by = tokio::task::spawn_blocking(superseded).await.unwrap();
    let a = s.replica(0);
    s.wait_for("the latest unfinished slot taken over", Duration::from_secs(120), &[&a], |m| {
        m.get(&("t0".to_string(), old)).is_some_and(|(_, done, _)| *done)
    })
    .await;
    // A few more ticks: nothing else runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let slots = s.slots().await;
    assert_eq!(slots.len(), 2, "no slot of the current hour: {slots:?}");
    assert_eq!(slots[&("t0".to_string(), old)].0, 2, "the latest open slot ran again once: {slots:?}");
    assert_eq!(slots[&("t0".to_string(), older)].0, 1, "the older one did not run: {slots:?}");
    assert!(slots[&("t0".to_string(), older)].1, "the older one is closed: {slots:?}");
    let url = s.pg.url.clone();
    let by = tokio::task::spawn_blocking(move || superseded_by(&url)).await.unwrap();
    assert_eq!(by, BTreeMap::from([(older, Some(old)), (old, None)]));
    assert_eq!(s.runs_seen().get("t0"), Some(&1), "one run: {:?}", s.runs_seen());
    assert_eq!(s.held(), s.expected_held());
}

/// A database that is down at start: a clear error naming it (host,
/// port, database, user), never its password; nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_is_named_without_its_password() {
    let _serial = SERIAL.lock().await;
    let s = setup(1).await;
    let config = s.config(0);
    for (url, named) in [
        ("host=/tmp/cf-no-such-db port=5432 user=cf password=hunter2-secret dbname=cf", "(/tmp/cf-no-such-db port 5432 database cf user cf)"),
        ("postgres://cf:hunter2-secret@127.0.0.1:9/cfdb", "(127.0.0.1 port 9 database cfdb user cf)"),
    ] {
        let out = tokio::task::spawn_blocking({
            let config = config.clone();
            move || Command::new(env!("CARGO_BIN_EXE_cf-host")).args(["run", "--once", "--config"]).arg(&config).args(["--database", url]).output().unwrap()
        })
        .await
        .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("fleet database unavailable {named}")), "{stderr}");
        assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "{stdout}{stderr}");
    }
    // The file's `database` key, without the flag: the same.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("database = \"host=/tmp/cf-no-such-db user=cf password=hunter2-secret dbname=cf\"\n{text}")).unwrap();
    let out = tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_cf-host")).args(["run", "--once", "--config"]).arg(&config).env_remove("CF_HOST_DATABASE").output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("fleet database unavailable (/tmp/cf-no-such-db port 5432 database cf user cf)"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(s.cf.calls_of("CloudService.create"), 0);
}

/// The database stops mid-run: the run stops (its heartbeat cannot renew
/// the lease: fail closed), the replica keeps going, and once the database
/// is back the next tick runs the slot to the end. Nothing lost, nothing
/// duplicated, no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_mid_run_stops_the_run_and_the_next_tick_recovers() {
    let _serial = SERIAL.lock().await;
    let s = setup(1).await;
    let mut a = s.replica_mid_run().await;
    tokio::task::block_in_place(|| s.pg.stop());
    // The heartbeat (every 0.67 s) fails: the run stops sending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped_at = s.cf.calls_of("CloudService.create");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.cf.calls_of("CloudService.create"), stopped_at, "the run stopped with its database:\n{}", a.log());
    assert!((stopped_at as u64) < PER_TENANT, "stopped before the end ({stopped_at} creates)");
    assert!(a.child.try_wait().unwrap().is_none(), "the replica keeps running:\n{}", a.log());
    assert!(a.log().contains("fleet database unavailable"), "{}", a.log());

    tokio::task::block_in_place(|| s.pg.start_server());
    s.wait_for("the slot run again once the database is back", Duration::from_secs(120), &[&a], |m| m.values().any(|(_, done, _)| *done)).await;
    let slots = s.slots().await;
    let (runs, done, _) = slots.values().next().unwrap();
    assert_eq!((*runs, *done), (2, true), "{slots:?}");
    assert_eq!(s.held(), s.expected_held(), "nothing lost");
    assert_eq!(s.cf.calls_of("CloudService.create") as u64, PER_TENANT, "nothing created twice");
    assert_eq!(s.runs_seen().get("t0"), Some(&1));
    assert!(a.child.try_wait().unwrap().is_none());
}

/// The database hangs mid-run (frozen: connections open, no answer):
/// nothing is sent meanwhile (the heartbeat's renewal does not answer, the
/// lease's guard ends), and once the database answers again the slot is
/// run to the end: nothing lost, nothing created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_mid_run_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let s = setup(1).await;
    let mut a = s.replica_mid_run().await;
    tokio::task::block_in_place(|| s.pg.pause());
    let paused = Instant::now();
    // The guard ends at most 2/3 of the 2 s TTL after the last renewal.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped_at = s.cf.calls_of("CloudService.create");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = s.cf.calls_of("CloudService.create");
    tokio::task::block_in_place(|| s.pg.resume());
    assert_eq!(after, stopped_at, "nothing sent while the database hung ({:?} after the pause):\n{}", paused.elapsed(), a.log());
    assert!((stopped_at as u64) < PER_TENANT, "stopped before the end ({stopped_at} creates)");
    s.wait_for("the slot run again once the database answers", Duration::from_secs(120), &[&a], |m| m.values().any(|(_, done, _)| *done)).await;
    let slots = s.slots().await;
    let (runs, done, _) = slots.values().next().unwrap();
    assert_eq!((*runs, *done), (2, true), "{slots:?}");
    assert_eq!(s.held(), s.expected_held(), "nothing lost");
    assert_eq!(s.cf.calls_of("CloudService.create") as u64, PER_TENANT, "nothing created twice");
    assert!(a.child.try_wait().unwrap().is_none());
}

/// A lease whose renewal hangs: its guard stops being live and its work is
/// stopped (`SlowRenewal`) before the lease can expire in the database, so
/// a holder cut off from its database never acts alongside the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_renewal_hangs_stops_its_work_before_it_expires() {
    let _serial = SERIAL.lock().await;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.url.clone();
    let fleet = tokio::task::spawn_blocking(move || cf_host::fleet::Fleet::connect(&url)).await.unwrap().unwrap();
    let leases = fleet.push_leases();
    let ttl = Duration::from_millis(1500);
    let (last_live, last_step) = (std::sync::Mutex::new(None::<Instant>), std::sync::Mutex::new(None::<Instant>));
    let work = |guard: cf_host::fleet::push_leases::LeaseGuard| {
        let (last_live, last_step) = (&last_live, &last_step);
        async move {
            loop {
                *last_step.lock().unwrap() = Some(Instant::now());
                if guard.live() {
                    *last_live.lock().unwrap() = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let held = tokio::time::timeout(Duration::from_secs(10), leases.hold("cf", "t", ttl, work));
    // Two renewals (at 0.5 s and 1 s) go through, then the database hangs.
    let pause = async {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        tokio::task::block_in_place(|| pg.pause());
        Instant::now()
    };
    let (outcome, paused_at) = tokio::join!(held, pause);
    tokio::task::block_in_place(|| pg.resume());
    let ended = last_step.lock().unwrap().expect("the work ran");
    let outcome = outcome.expect("hold returned while the database hung");
    assert!(matches!(outcome, Err(cf_host::fleet::FleetError::SlowRenewal { .. })), "{:?}", outcome.map(|_| ()));
    // The last renewal went through by the pause: the lease lives in the
    // database until at least then + TTL.
    assert!(ended < paused_at + ttl, "the work went on {:?} after the pause", ended - paused_at);
    let last = last_live.lock().unwrap().expect("the guard was live");
    assert!(last < paused_at + ttl * 2 / 3, "the guard was live {:?} after the pause", last - paused_at);
}

/// The outbox in PostgreSQL: what a replica spooled while CloudForet was
/// down, and could not deliver before it was killed, is delivered by
/// another replica (from the shared outbox: the slot is not run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_outbox_is_delivered_by_another() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(1).await;
    s.cf_extra = "deliver_timeout_secs = 1\nattempts = 2".into();
    s.cf.stop().await;
    let mut a = s.replica(0);
    s.wait_for("the slot run with CloudForet down", Duration::from_secs(180), &[&a], |m| m.values().any(|(_, done, _)| *done)).await;
    let spooled = s.outbox_len().await;
    assert_eq!(spooled as u64, PER_TENANT + 8, "every record spooled in the shared outbox (with 5 types and 3 regions)");
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    s.cf.restart().await;
    let b = s.replica(1);
    let start = Instant::now();
    while s.outbox_len().await != 0 {
        assert!(start.elapsed() < Duration::from_secs(180), "the outbox not delivered:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.held(), s.expected_held(), "nothing lost");
    assert_eq!(s.cf.calls_of("CloudService.create") as u64, PER_TENANT, "nothing created twice");
    let slots = s.slots().await;
    assert!(slots.values().all(|(runs, done, _)| *runs == 1 && *done), "delivered from the outbox, not collected again: {slots:?}");
}

/// The PostgreSQL outbox answers as the embedded one, call for call.
#[test]
fn the_outbox_in_postgres_answers_as_the_embedded_one() {
    use cf_host::record::Record;
    use cf_host::run_log::RunLog;
    use cf_host::spool::Outbox;
    let vm = vm_record;
    let pg = Postgres::start();
    let dir = std::env::temp_dir().join(format!("cf-push-fleet-outbox-{}", cf_host::runtime::new_run_id()));
    let store = std::sync::Arc::new(cf_host::store::Store::open(&dir.join("a.db")).unwrap());
    let fleet = cf_host::fleet::Fleet::connect(&pg.url).unwrap();
    let shared = cf_host::spool::pg::PgOutbox::new(fleet.pool());
    let pg_runs = fleet.runs();
    let mut transcripts = Vec::new();
    for (outbox, runs) in [(&*store as &dyn Outbox, &*store as &dyn RunLog), (&shared as &dyn Outbox, &pg_runs as &dyn RunLog)] {
        let mut t: Vec<String> = Vec::new();
        let err = Record::host_error("boom".into(), "Compute", "VirtualMachine", "nutanix");
        t.push(format!("{:?}", outbox.spool("cf", "t", "r1", &[vm("a"), err, vm("b"), vm("c")]).unwrap()));
        let rows = outbox.spooled("cf", "t", 10).unwrap();
        t.push(format!("{:?}", rows.iter().map(|r| (&r.run_id, r.resource_type, &r.label, &r.key, &r.resource, r.attempts)).collect::<Vec<_>>()));
        t.push(format!("{:?} {:?} {:?}", outbox.spool_len("cf", None).unwrap(), outbox.spool_len("cf", Some("u")).unwrap(), outbox.spool_tenants("cf").unwrap()));
        outbox.attempt_failed(&rows[0], "down").unwrap();
        t.push(format!("{:?}", outbox.spooled("cf", "t", 1).unwrap()[0].attempts));
        outbox.delivered("cf", "t", &rows[0], "cs-a").unwrap();
        outbox.delivered("cf", "t", &rows[1], "cs-b").unwrap();
        outbox.refused("t", &rows[2], "ERROR_INVALID_ARGUMENT: bad").unwrap();
        t.push(format!("{:?} {:?} {:?}", outbox.spool_len("cf", None).unwrap(), outbox.pushed_count("cf", "t").unwrap(), runs.error_counts_of_run("r1").unwrap()));
        // Run 2 sees "a" only; "b" misses it and run 3.
        outbox.spool("cf", "t", "r2", &[vm("a")]).unwrap();
        let row = outbox.spooled("cf", "t", 10).unwrap().remove(0);
        outbox.delivered("cf", "t", &row, "cs-a").unwrap();
        t.push(format!("{:?}", outbox.missed_by("cf", "t", "r2", 2).unwrap()));
        t.push(format!("{:?}", outbox.missed_by("cf", "t", "r3", 2).unwrap()));
        outbox.forget_pushed("cf", "t", &serde_json::to_string(&["b", "nutanix", "VirtualMachine", "Compute", "pc"]).unwrap()).unwrap();
        t.push(format!("{:?}", outbox.pushed_count("cf", "t").unwrap()));
        t.push(format!("{:?}", outbox.cost_synced("cf", "t", "ds").unwrap()));
        outbox.set_cost_synced("cf", "t", "ds", "2026-11-20T00:00:00Z").unwrap();
        outbox.set_cost_synced("cf", "t", "ds", "2026-11-23T00:00:00Z").unwrap();
        t.push(format!("{:?} {:?}", outbox.cost_synced("cf", "t", "ds").unwrap(), outbox.cost_synced("cf", "u", "ds").unwrap()));
        // A chunk acknowledged out of order with two records of "d" (runs
        // r4, r5): the last spooled is the ledger's. Acknowledged again (a
        // retry), or as another tenant's, nothing changes.
        outbox.spool("cf", "t", "r4", &[vm("d"), vm("e")]).unwrap();
        outbox.spool("cf", "t", "r5", &[vm("d")]).unwrap();
        let rows = outbox.spooled("cf", "t", 10).unwrap();
        outbox.delivered_many("cf", "u", &[(&rows[0], "x")]).unwrap();
        t.push(format!("{:?}", outbox.spool_len("cf", None).unwrap()));
        outbox.delivered_many("cf", "t", &[(&rows[2], "cs-d5"), (&rows[0], "cs-d4"), (&rows[1], "cs-e")]).unwrap();
        t.push(format!("{:?} {:?}", outbox.spool_len("cf", None).unwrap(), outbox.missed_by("cf", "t", "r5", 1).unwrap()));
        outbox.delivered_many("cf", "t", &[(&rows[1], "stale"), (&rows[0], "stale")]).unwrap();
        t.push(format!("{:?}", outbox.missed_by("cf", "t", "r6", 2).unwrap()));
        transcripts.push(t);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert_eq!(transcripts[0][10], "3");
    let key = |id: &str| serde_json::to_string(&[id, "nutanix", "VirtualMachine", "Compute", "pc"]).unwrap();
    let ledger = |ids: &[(&str, &str)]| format!("{:?}", ids.iter().map(|(k, id)| (key(k), id.to_string())).collect::<Vec<_>>());
    assert_eq!(transcripts[0][11], format!("0 {}", ledger(&[("a", "cs-a"), ("e", "cs-e")])), "d last seen by r5, as cs-d5");
    assert_eq!(transcripts[0][12], ledger(&[("a", "cs-a"), ("e", "cs-e")]), "e's misses and id kept");
    // The transcript says something: each step as the embedded store answers it.
    assert_eq!(transcripts[0][2], r#"3 0 ["t"]"#);
    assert_eq!(transcripts[0][4], r#"0 2 {"Compute/VirtualMachine": 1}"#);
    assert_eq!(transcripts[0][7], "1");
    std::fs::remove_dir_all(dir).ok();
}

/// Guest state in the shared database: a tenant's incremental collection
/// whose next run lands on another replica (its own embedded store, empty)
/// finds the cache the first replica left and stays incremental: the
/// second run reads the changed VMs and the ids, not the full VM list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_cache_follows_the_tenant_to_another_replica() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(1).await;
    s.tenant_extra = "options = { incremental = true }".into();
    let sim = &s.sims[0];
    let calls = |before: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        sim.state.calls_per_kind().into_iter().filter(|(k, n)| *n > before.get(k).copied().unwrap_or(0)).collect()
    };

    let before = sim.state.calls_per_kind();
    s.once(0);
    let first = calls(&before);
    assert!(first.contains_key("vms") && !first.contains_key("vms?filter"), "the first run is full: {first:?}");

    assert!(sim.state.update_vm(&prism_sim::estate::uuid("vm", 3), "renamed-vm", "2030-01-01T00:00:00Z"));
    let before = sim.state.calls_per_kind();
    let log = s.once(1);
    let second = calls(&before);
    assert!(!second.contains_key("vms") && second.contains_key("vms?filter"), "replica 1's run is incremental: {second:?}\n{log}");
    assert_eq!(s.held(), s.expected_held(), "nothing lost");
    assert!(s.cf.db().cloud_services.values().any(|c| c.name == "renamed-vm"), "the change delivered");
}

/// Push mode's store in PostgreSQL against SQLite (issue #25, item 6): a
/// `cf-host run --once` of one tenant whose simulated Prism Central holds
/// `CF_PUSH_BENCH_VMS` VMs (100,000) into a fresh mock CloudForet, with
/// the outbox, ledger, runs and state in the embedded store (`store`) and
/// then in PostgreSQL (`--database`, on a Unix socket, `fsync=off`): wall
/// time and peak RSS of the `cf-host` process (GNU time), and the load
/// average around each run. `CF_PUSH_BENCH_BIN` runs another `cf-host`
/// binary (a release build) than the test's.
///
/// `cargo test --release -p cf-host --test push_fleet -- --ignored --nocapture push_store_bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints the figures of BENCHMARKS.md"]
async fn push_store_bench() {
    let _serial = SERIAL.lock().await;
    let vms: usize = std::env::var("CF_PUSH_BENCH_VMS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let bin = std::env::var("CF_PUSH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cf-host").to_string());
    let mut s = setup(0).await;
    s.cf_extra = "deliver_timeout_secs = 3600".into();
    let sim = Simulator::start(SimConfig { estate: EstateConfig { vms, ..Default::default() }, ..Default::default() }).await.unwrap();
    std::fs::write(s.dir.join("prism-0.json"), sim.secret().to_string()).unwrap();
    s.sims.push(sim);
    s.tenants.push("t0".into());
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ");
    let mut out = format!("push run of {vms} VMs          wall s   peak RSS MiB   cloud services   records/s   load before / after\n");
    for (label, db) in [("store in SQLite (store)", false), ("store in PostgreSQL (--database)", true)] {
        s.cf = MockCloudForet::start().await;
        let config = s.config(if db { 1 } else { 0 });
        let before = loadavg();
        let mut cmd = tokio::process::Command::new("/usr/bin/time");
        cmd.args(["-f", "%e %M", &bin, "run", "--once", "--config"]).arg(&config).env("RUST_LOG", "warn").env_remove("CF_HOST_DATABASE");
        if db {
            cmd.args(["--database", &s.pg.url]);
        }
        let run = cmd.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{label}: {}{stderr}", String::from_utf8_lossy(&run.stdout));
        let (wall, rss_kib) = stderr
            .lines()
            .last()
            .and_then(|l| l.split_once(' '))
            .and_then(|(w, r)| Some((w.parse::<f64>().ok()?, r.trim().parse::<f64>().ok()?)))
            .unwrap_or_else(|| panic!("no GNU time line: {stderr}"));
        let held: u64 = s.held().values().sum();
        assert!(held >= vms as u64, "{label}: {held} cloud services");
        out.push_str(&format!("{label:<32}  {wall:>7.1}  {:>13.0}  {held:>15}  {:>10.0}   {before} / {}\n", rss_kib / 1024.0, held as f64 / wall, loadavg()));
    }
    println!("{out}");
}


/// Push mode's deliverer on the shared outbox without a guest: records
/// spooled straight into PostgreSQL, delivered to the mock CloudForet by
/// `push::redeliver`; the database counts each statement that writes the
/// outbox (statement-level triggers into `probe_statements`).
struct Delivery {
    pg: Postgres,
    cf: MockCloudForet,
    fleet: cf_host::fleet::Fleet,
    sink: cf_host::push::Sink,
}

/// A cloud service as the guest emits one (`vm-007`), spooled under the
/// match key `[resource_id, provider, type, group, account]`.
fn vm_record(id: &str) -> cf_host::record::Record {
    let r = serde_json::json!({"name": id, "provider": "nutanix", "cloud_service_group": "Compute", "cloud_service_type": "VirtualMachine",
        "account": "pc", "reference": {"resource_id": id}, "data": {"n": 1}});
    cf_host::record::Record::from_resource(cf_host::record::ResourceType::CloudService, r.as_object().cloned().unwrap_or_default())
}

/// Runs `f` on a connection of its own to the test's database.
async fn sql<T: Send + 'static>(pg: &Postgres, f: impl FnOnce(&mut ::postgres::Client) -> T + Send + 'static) -> T {
    let url = pg.url.clone();
    tokio::task::spawn_blocking(move || f(&mut ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap())).await.unwrap()
}

async fn delivery() -> Delivery {
    use cf_host::cloudforet::client::{Connector, ConnectorConfig, Endpoints};
    use std::sync::Arc;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let cf = MockCloudForet::start().await;
    let url = pg.url.clone();
    let fleet = tokio::task::spawn_blocking(move || cf_host::fleet::Fleet::connect(&url)).await.unwrap().unwrap();
    sql(&pg, |c| {
        c.batch_execute(
            "CREATE TABLE probe_statements (op text NOT NULL);
             CREATE FUNCTION probe_statement() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN INSERT INTO probe_statements VALUES (TG_OP); RETURN NULL; END $$;
             CREATE TRIGGER probe_insert AFTER INSERT ON cf_outbox FOR EACH STATEMENT EXECUTE FUNCTION probe_statement();
             CREATE TRIGGER probe_delete AFTER DELETE ON cf_outbox FOR EACH STATEMENT EXECUTE FUNCTION probe_statement();",
        )
        .unwrap()
    })
    .await;
    let endpoints = Endpoints { identity: cf.endpoint(), inventory: cf.endpoint(), notification: None, secret: None, repository: None, cost_analysis: None };
    let mut config = ConnectorConfig::new(endpoints, cf_host::cloudforet::token::Auth::Token(APP_TOKEN.into()));
    config.backoff = cf_host::resilience::Backoff { base: Duration::from_millis(20), max: Duration::from_millis(200), attempts: 2 };
    let sink = cf_host::push::Sink {
        connector: Arc::new(Connector::new(config).unwrap()),
        runs: Arc::new(fleet.runs()),
        state: Arc::new(fleet.state()),
        outbox: Arc::new(cf_host::spool::pg::PgOutbox::new(fleet.pool())),
        name: "cf".into(),
        settings: cf_host::push::PushSettings { pause: Duration::from_millis(50), deliver_timeout: Duration::from_secs(5), ..Default::default() },
        webhook: None,
    };
    Delivery { pg, cf, fleet, sink }
}

impl Delivery {
    /// Spools `vm-000`.. `vm-{n-1}` as run `r1` (one batch); the record
    /// named by `nameless`, if any, without its name (CloudForet refuses it).
    fn spool(&self, n: usize, nameless: Option<usize>) {
        let batch: Vec<_> = (0..n)
            .map(|i| {
                let mut r = vm_record(&format!("vm-{i:03}"));
                if nameless == Some(i) {
                    r.resource_mut().insert("name".into(), serde_json::Value::String(String::new()));
                }
                r
            })
            .collect();
        assert_eq!(self.sink.outbox.spool("cf", "t", "r1", &batch).unwrap(), n);
    }

    /// Statements that inserted into or deleted from the outbox so far.
    async fn statements(&self, op: &'static str) -> i64 {
        sql(&self.pg, move |c| c.query_one("SELECT count(*) FROM probe_statements WHERE op = $1", &[&op]).unwrap().get(0)).await
    }

    /// The outbox and the ledger agree with each other and with
    /// CloudForet: no record both spooled and in the ledger, `all` records
    /// in one of them, every ledger row a cloud service CloudForet
    /// holds under its id, none held twice. Answers (spooled, in the
    /// ledger).
    async fn consistent(&self, all: i64) -> (i64, i64) {
        let (spooled, ledger, both, either, ids) = sql(&self.pg, |c| {
            let one = |c: &mut ::postgres::Client, q: &str| -> i64 { c.query_one(q, &[]).unwrap().get(0) };
            let spooled = one(c, "SELECT count(*) FROM cf_outbox");
            let ledger = one(c, "SELECT count(*) FROM cf_pushed");
            let both = one(c, "SELECT count(*) FROM cf_outbox o JOIN cf_pushed p USING (sink, tenant, resource_type, key)");
            let either = one(c, "SELECT count(*) FROM (SELECT key FROM cf_outbox UNION SELECT key FROM cf_pushed) k");
            let ids: Vec<String> = c.query("SELECT remote_id FROM cf_pushed", &[]).unwrap().iter().map(|r| r.get(0)).collect();
            (spooled, ledger, both, either, ids)
        })
        .await;
        assert_eq!(both, 0, "records both spooled and in the ledger");
        assert_eq!(either, all, "records neither spooled nor in the ledger");
        let (_, dups) = self.cf.cloud_service_counts();
        assert!(dups.is_empty(), "duplicated cloud services: {dups:?}");
        let db = self.cf.db();
        assert!(ids.iter().all(|id| db.cloud_services.contains_key(id)), "a ledger row for a cloud service CloudForet does not hold");
        (spooled, ledger)
    }
}

/// The outbox in PostgreSQL is written and acknowledged a chunk per
/// statement: 600 records spooled in one batch are 3 inserts (256 rows at
/// most each), and delivered in chunks of 256, each chunk's outbox deletes
/// and ledger rows one statement, one transaction: 3 deletes, not 600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_in_postgres_is_written_and_acknowledged_a_chunk_per_statement() {
    let _serial = SERIAL.lock().await;
    let d = delivery().await;
    d.spool(600, None);
    assert_eq!(d.statements("INSERT").await, 3, "600 records spooled in statements of 256 at most");
    let (delivered, error) = cf_host::push::redeliver(&d.sink, "t", None).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(delivered, 600);
    assert_eq!(d.statements("DELETE").await, 3, "one acknowledgement per chunk of 256");
    assert_eq!(d.consistent(600).await, (0, 600));
    assert_eq!(d.cf.calls_of("CloudService.create"), 600);
}

/// CloudForet refuses one record in the middle of a chunk: it alone
/// becomes an error resource of its run; the rest of the chunk is
/// acknowledged together (the refusal's own delete, then one per chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_mid_chunk_leaves_the_outbox_and_ledger_consistent() {
    use cf_host::run_log::RunLog;
    let _serial = SERIAL.lock().await;
    let d = delivery().await;
    d.spool(300, Some(99));
    let (delivered, error) = cf_host::push::redeliver(&d.sink, "t", None).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(delivered, 299);
    assert_eq!(d.consistent(299).await, (0, 299), "the refused record is neither");
    assert_eq!(d.cf.calls_of("CloudService.create"), 300, "299 taken, 1 refused");
    let runs = d.fleet.runs();
    let errors = runs.error_counts_of_run("r1").unwrap();
    assert_eq!(errors, BTreeMap::from([("Compute/VirtualMachine".to_string(), 1)]));
    let refused_in_ledger = sql(&d.pg, |c| c.query_one("SELECT count(*) FROM cf_pushed WHERE key LIKE '%\"vm-099\"%'", &[]).unwrap().get::<_, i64>(0)).await;
    assert_eq!(refused_in_ledger, 0);
    assert_eq!(d.statements("DELETE").await, 3, "the refusal, then one acknowledgement per chunk");
}

/// The database connection drops while a chunk is acknowledged (the
/// server ends the session as the ledger row of its 100th record is
/// written, after the chunk's deletes): the whole chunk stays spooled, no
/// ledger row without its delete; the next delivery upserts the chunk
/// again (unchanged: nothing created twice) and acknowledges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_acknowledgement_leaves_the_chunk_spooled_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let d = delivery().await;
    sql(&d.pg, |c| {
        c.batch_execute(
            r#"CREATE SEQUENCE probe_drops;
               CREATE FUNCTION probe_drop() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF NEW.key LIKE '%"vm-099"%' AND nextval('probe_drops') = 1 THEN
                       PERFORM pg_terminate_backend(pg_backend_pid());
                       PERFORM pg_sleep(10);
                   END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER probe_drop BEFORE INSERT ON cf_pushed FOR EACH ROW EXECUTE FUNCTION probe_drop();"#,
        )
        .unwrap()
    })
    .await;
    d.spool(300, None);
    let (delivered, error) = cf_host::push::redeliver(&d.sink, "t", None).await;
    assert!(matches!(error, Some(cf_host::push::DeliveryError::Spool(_))), "{error:?}");
    assert_eq!(delivered, 0);
    assert_eq!(d.cf.calls_of("CloudService.create"), 256, "the first chunk went out");
    assert_eq!(d.consistent(300).await, (300, 0), "nothing of the chunk acknowledged");
    let dropped: i64 = sql(&d.pg, |c| c.query_one("SELECT last_value FROM probe_drops", &[]).unwrap().get(0)).await;
    assert_eq!(dropped, 1, "the connection was dropped once");

    let (delivered, error) = cf_host::push::redeliver(&d.sink, "t", None).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(delivered, 300);
    assert_eq!(d.consistent(300).await, (0, 300));
    assert_eq!(d.cf.calls_of("CloudService.create"), 300, "nothing created twice");
    assert_eq!(d.statements("DELETE").await, 2, "one acknowledgement per chunk");
}

/// The tenant's lease is lost mid-chunk (another holder took it): the
/// deliverer stops sending, no record it did not deliver is acknowledged,
/// the outbox and ledger agree; the next holder delivers the rest and
/// what was sent but not acknowledged, without creating anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_mid_chunk_acknowledges_nothing_undelivered_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let d = delivery().await;
    d.spool(300, None);
    d.cf.inner.latency_ms.store(20, Ordering::Relaxed);
    let (leases, sink) = (d.fleet.push_leases(), &d.sink);
    let ttl = Duration::from_millis(1500);
    let held = leases.hold("cf", "t", ttl, |lease| async move { cf_host::push::redeliver(sink, "t", Some(&lease)).await });
    let steal = async {
        while d.cf.calls_of("CloudService.create") < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sql(&d.pg, |c| c.execute("UPDATE cf_push_leases SET holder = 'thief'", &[]).unwrap()).await
    };
    let (outcome, stolen) = tokio::join!(held, steal);
    assert_eq!(stolen, 1);
    // The work is dropped when the heartbeat finds the lease gone, or ends
    // itself at its next send: either way it stops short.
    match outcome {
        Err(cf_host::fleet::FleetError::LeaseLost(_)) => {}
        Ok(Some((_, Some(cf_host::push::DeliveryError::LeaseEnded)))) => {}
        other => panic!("{other:?}"),
    }
    // Calls in flight when the work was dropped land (20 ms); then none.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = d.cf.calls_of("CloudService.create");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.cf.calls_of("CloudService.create"), sent, "nothing sent after the lease was lost");
    assert!(sent < 256, "stopped within the first chunk ({sent} sent)");
    let (spooled, ledger) = d.consistent(300).await;
    assert!(ledger as usize <= sent && spooled + ledger == 300, "{spooled} spooled, {ledger} in the ledger, {sent} sent");

    sql(&d.pg, |c| c.execute("DELETE FROM cf_push_leases", &[]).unwrap()).await;
    d.cf.inner.latency_ms.store(0, Ordering::Relaxed);
    let (delivered, error) = leases.hold("cf", "t", ttl, |lease| async move { cf_host::push::redeliver(sink, "t", Some(&lease)).await }).await.unwrap().unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(delivered, spooled as u64);
    assert_eq!(d.consistent(300).await, (0, 300));
    assert_eq!(d.cf.calls_of("CloudService.create"), 300, "nothing created twice");
    assert!(d.statements("DELETE").await <= 3, "acknowledged a chunk at a time");
}
