//! Fleet mode (`--database`): replicas sharing a real PostgreSQL server
//! (started by the test on a Unix socket, [`cf_tests::postgres`]). Each
//! replica is its own [`Fleet`] (its own connection pool) or its own
//! in-process `cf-host serve`.

use cf_host::fleet::Fleet;
use cf_host::grpc::convert::{json_to_struct, struct_to_json};
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::CollectRequest;
use cf_host::host::state::{Namespace, PutError, StateBackend};
use cf_host::serve::ServeOptions;
use cf_host::tenancy::{TenancyConfig, TenancyFile};
use cf_tests::postgres::Postgres;
use cf_tests::{admin_config, block_on, guest_wasm, serve};
use prism_sim::estate::{uuid, EstateConfig};
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fleet(pg: &Postgres) -> Fleet {
    Fleet::connect(&pg.url).expect("the fleet database")
}

/// What one replica writes another reads, and the key limit holds across
/// replicas writing at once (the count and the write are one step).
#[test]
fn state_is_shared_and_its_key_limit_holds_across_replicas() {
    let pg = Postgres::start();
    let (a, b) = (fleet(&pg).state(), fleet(&pg).state());
    let ns = Namespace { tenant: "acme/1".into(), collector: "nutanix".into() };
    a.put(&ns, "cache", "v1", 100).unwrap();
    assert_eq!(b.get(&ns, "cache").unwrap().as_deref(), Some("v1"));
    b.put(&ns, "cache", "v2", 100).unwrap();
    assert_eq!(a.get(&ns, "cache").unwrap().as_deref(), Some("v2"));
    let other = Namespace { tenant: "other/1".into(), collector: "nutanix".into() };
    assert_eq!(a.get(&other, "cache").unwrap(), None, "namespaces stay apart");
    a.delete(&ns, "cache").unwrap();
    assert_eq!(b.get(&ns, "cache").unwrap(), None);

    // 2 replicas x 4 threads x 10 new keys against a limit of 25.
    let stores: Vec<Arc<dyn StateBackend>> = vec![Arc::new(a), Arc::new(b)];
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, st) in stores.iter().cycle().take(8).enumerate() {
            let (ns, refused) = (&ns, &refused);
            s.spawn(move || {
                for k in 0..10 {
                    match st.put(ns, &format!("k{i}-{k}"), "x", 25) {
                        Ok(()) => {}
                        Err(PutError::TooManyKeys(25)) => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(stores[0].count(&ns).unwrap(), 25);
    assert_eq!(refused.into_inner(), 80 - 25);
}

/// A tenant's cap counts its leases on every replica; another tenant is not
/// held up; a dead replica's lease ends when it expires.
#[test]
fn run_leases_cap_a_tenant_across_replicas_and_expire() {
    let pg = Postgres::start();
    let replicas: Vec<_> = (0..3).map(|_| fleet(&pg).leases()).collect();
    let long = Duration::from_secs(600);
    let taken = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, r) in replicas.iter().cycle().take(12).enumerate() {
            let taken = &taken;
            s.spawn(move || {
                if r.try_acquire("acme", 2, &format!("run-{i}"), long).unwrap() {
                    taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(taken.into_inner(), 2, "12 concurrent attempts, a cap of 2");
    assert_eq!(replicas[1].held("acme").unwrap(), 2);
    assert!(replicas[2].try_acquire("other", 1, "o-1", long).unwrap(), "another tenant has its own cap");

    // A replica that dies holding a lease: the others wait until it expires.
    assert!(replicas[0].try_acquire("solo", 1, "dead-run", Duration::from_millis(300)).unwrap());
    assert!(!replicas[1].try_acquire("solo", 1, "next", long).unwrap());
    std::thread::sleep(Duration::from_millis(400));
    assert!(replicas[1].try_acquire("solo", 1, "next", long).unwrap(), "the dead replica's lease expired");
    replicas[2].release("next").unwrap();
    assert_eq!(replicas[0].held("solo").unwrap(), 0);
}

/// A database that goes down fails calls closed with a clear error; once
/// it is back, the same replica works again without being restarted.
#[test]
fn a_database_that_goes_down_fails_closed_and_recovers() {
    let pg = Postgres::start();
    let f = fleet(&pg);
    let (state, leases) = (f.state(), f.leases());
    let ns = Namespace { tenant: "t".into(), collector: "c".into() };
    state.put(&ns, "k", "v", 10).unwrap();
    pg.stop();
    let e = state.get(&ns, "k").unwrap_err().to_string();
    assert!(e.contains("fleet database unavailable"), "{e}");
    assert!(matches!(state.put(&ns, "k2", "v", 10), Err(PutError::Unavailable(_))));
    let e = leases.try_acquire("t", 1, "r", Duration::from_secs(1)).unwrap_err().to_string();
    assert!(e.contains("fleet database unavailable"), "{e}");
    let e = Fleet::connect(&pg.url).err().expect("no database, no fleet").to_string();
    assert!(e.contains("fleet database unavailable"), "{e}");
    pg.start_server();
    assert_eq!(state.get(&ns, "k").unwrap().as_deref(), Some("v"), "nothing lost, nothing half-written");
    assert_eq!(state.get(&ns, "k2").unwrap(), None);
    assert!(leases.try_acquire("t", 1, "r", Duration::from_secs(1)).unwrap());

    // Idle connections that died with a restarted server are replaced, not
    // handed out: the first call after the restart works.
    state.put(&ns, "idle", "1", 10).unwrap();
    pg.stop();
    pg.start_server();
    assert_eq!(state.get(&ns, "idle").unwrap().as_deref(), Some("1"));
}

fn sim(faults: Faults) -> Simulator {
    let estate = EstateConfig { vms: 230, ..EstateConfig::default() };
    block_on(Simulator::start(SimConfig { estate, faults, ..SimConfig::default() })).expect("simulator starts")
}

fn replica(pg: &Postgres, tenancy: Option<Value>) -> ServeOptions {
    let mut o = ServeOptions { plugin: Some(guest_wasm()), database: Some(pg.url.clone()), ..ServeOptions::default() };
    if let Some(t) = tenancy {
        let file: TenancyFile = serde_json::from_value(t).unwrap();
        o.runtime.tenancy = TenancyConfig::from_file(&file).unwrap();
    }
    o
}

/// A gRPC collection of the simulator's VMs through `grpc`: the VM count.
async fn collect(grpc: &str, sim: &Simulator, options: Value) -> Result<usize, tonic::Status> {
    let mut client = CollectorClient::connect(grpc.to_string()).await.expect("connects");
    let req = CollectRequest {
        options: options.as_object().map(json_to_struct),
        secret_data: sim.secret().as_object().map(json_to_struct),
        filter: None,
        task_options: None,
    };
    let mut stream = client.collect(req).await?.into_inner();
    let mut vms = 0;
    while let Some(item) = stream.message().await? {
        if struct_to_json(item.resource)["cloud_service_type"] == "VirtualMachine" {
            vms += 1;
        }
    }
    Ok(vms)
}

fn calls_since(sim: &Simulator, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    sim.state.calls_per_kind().into_iter().filter(|(k, n)| before.get(k) != Some(n)).collect()
}

/// Two `cf-host serve` replicas on one database: the tenant CloudForet
/// calls through either has the same id (the tenant key is shared), so an
/// incremental collection whose next run lands on the other replica finds
/// its cache and stays incremental.
#[test]
fn an_incremental_collection_stays_incremental_on_another_replica() {
    let pg = Postgres::start();
    let sim = sim(Faults::default());
    block_on(async {
        let (a, b) = (serve(replica(&pg, None)).await, serve(replica(&pg, None)).await);
        let options = json!({"incremental": true, "resource_kinds": ["vms"]});
        let before = sim.state.calls_per_kind();
        assert_eq!(collect(&a.grpc, &sim, options.clone()).await.unwrap(), 230);
        assert!(calls_since(&sim, &before).contains_key("vms"), "the first run is full");

        assert!(sim.state.update_vm(&uuid("vm", 3), "renamed-vm", "2030-01-01T00:00:00Z"));
        let before = sim.state.calls_per_kind();
        assert_eq!(collect(&b.grpc, &sim, options).await.unwrap(), 230);
        let calls = calls_since(&sim, &before);
        assert!(!calls.contains_key("vms") && calls.contains_key("vms?filter"), "replica B read only the changes: {calls:?}");
    });
}

/// Three replicas, a tenant capped at one run: collections sent to all
/// three at once run one after another (never two leases at a time), and
/// all complete.
#[test]
fn a_tenants_cap_holds_across_three_serving_replicas() {
    let pg = Postgres::start();
    let sim = sim(Faults { latency_ms: 150, ..Faults::default() });
    let cap = json!({"default": {"max_concurrent_runs": 1}});
    let url = pg.url.clone();
    block_on(async {
        let replicas = [serve(replica(&pg, Some(cap.clone()))).await, serve(replica(&pg, Some(cap.clone()))).await, serve(replica(&pg, Some(cap))).await];
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let sampler = tokio::task::spawn_blocking(move || {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("test client");
            let (mut max, mut seen) = (0i64, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 = db.query_one("SELECT count(*) FROM cf_run_leases", &[]).unwrap().get(0);
                max = max.max(n);
                seen += usize::from(n > 0);
                std::thread::sleep(Duration::from_millis(10));
            }
            let left: i64 = db.query_one("SELECT count(*) FROM cf_run_leases", &[]).unwrap().get(0);
            (max, seen, left)
        });
        let started = Instant::now();
        let runs = replicas.iter().map(|r| collect(&r.grpc, &sim, json!({"resource_kinds": ["vms"], "page_size": 100})));
        let results = futures::future::join_all(runs).await;
        let took = started.elapsed();
        // Leases are released off the call's path: give them a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(results.iter().all(|r| r.as_ref().ok() == Some(&230)), "{results:?}");
        let (max, seen, left) = sampler.await.unwrap();
        assert!(seen > 0, "leases were taken");
        assert_eq!(max, 1, "never two runs of the tenant at once across the replicas");
        assert_eq!(left, 0, "every lease released");
        eprintln!("3 collections, one at a time across 3 replicas: {took:?}");
    });
}

const TOKEN: &str = "fleet-admin-token-0123456789";

/// The live version of `nutanix` on a replica, from its admin API.
async fn live_on(admin: &str) -> Option<String> {
    let r = reqwest::Client::new().get(format!("{admin}/v1/plugins")).bearer_auth(TOKEN).send().await.ok()?;
    let body: Value = r.json().await.ok()?;
    body["plugins"].as_array()?.iter().find(|p| p["name"] == "nutanix" && p["live"] == true).and_then(|p| p["version"].as_str()).map(String::from)
}

async fn admin_post(admin: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{admin}{path}")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The guest as another version (its identity section says so).
fn guest_as(version: &str) -> Vec<u8> {
    let (from, to) = (br#""name":"nutanix","version":"0.1.0""#.as_slice(), format!(r#""name":"nutanix","version":"{version}""#));
    assert_eq!(from.len(), to.len());
    let mut out = std::fs::read(guest_wasm()).unwrap();
    let mut n = 0;
    for i in 0..out.len().saturating_sub(from.len()) {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to.as_bytes());
            n += 1;
        }
    }
    assert!(n >= 1, "the identity section is patched");
    out
}

/// Three replicas serving under load: a new version uploaded to one goes
/// live on all three within 2 s, a rollback sent to another rolls back all
/// three, a refused change is refused alike, and no collection fails.
#[test]
fn an_admin_change_on_one_replica_reaches_every_replica() {
    let pg = Postgres::start();
    let sim = sim(Faults::default());
    block_on(async {
        let with_admin = || {
            let mut o = replica(&pg, None);
            o.admin = Some(admin_config(TOKEN));
            o
        };
        let replicas = [serve(with_admin()).await, serve(with_admin()).await, serve(with_admin()).await];
        let admins: Vec<String> = replicas.iter().map(|r| r.admin.clone().expect("admin API")).collect();
        for a in &admins {
            assert_eq!(live_on(a).await.as_deref(), Some("0.1.0"));
        }

        // Collections on every replica while the version changes.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = replicas
            .iter()
            .map(|r| {
                let (grpc, stop, sim_secret) = (r.grpc.clone(), stop.clone(), sim.secret());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut client = CollectorClient::connect(grpc.clone()).await.expect("connects");
                        let req = CollectRequest {
                            options: json!({"resource_kinds": ["vms"]}).as_object().map(json_to_struct),
                            secret_data: sim_secret.as_object().map(json_to_struct),
                            filter: None,
                            task_options: None,
                        };
                        let r: Result<usize, tonic::Status> = async {
                            let mut s = client.collect(req).await?.into_inner();
                            let mut n = 0;
                            while s.message().await?.is_some() {
                                n += 1;
                            }
                            Ok(n)
                        }
                        .await;
                        match r {
                            Ok(_) => ok += 1,
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;

        // The upload returns once every replica has the version loaded
        // and it is live here; watch when each replica switches.
        let v2 = guest_as("0.1.1");
        let started = Instant::now();
        let watch = {
            let admins = admins.clone();
            tokio::spawn(async move {
                let mut switched: Vec<Option<Duration>> = vec![None; admins.len()];
                while switched.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(120) {
                    for (i, a) in admins.iter().enumerate() {
                        if switched[i].is_none() && live_on(a).await.as_deref() == Some("0.1.1") {
                            switched[i] = Some(started.elapsed());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                switched
            })
        };
        let r = reqwest::Client::new().post(format!("{}/v1/plugins?activate=true", admins[0])).bearer_auth(TOKEN).body(v2).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!((status, body["version"].as_str(), body["live"].as_bool()), (200, Some("0.1.1"), Some(true)), "{body}");
        let switched: Vec<Duration> = watch.await.unwrap().into_iter().map(|t| t.expect("every replica serves 0.1.1")).collect();
        let spread = *switched.iter().max().unwrap() - *switched.iter().min().unwrap();
        assert!(spread < Duration::from_secs(2), "switched at {switched:?}");
        eprintln!("upload + activate on one replica: switched at {switched:?} (spread {spread:?})");

        // A rollback through another replica.
        let (status, body) = admin_post(&admins[2], "/v1/plugins/nutanix/rollback", json!({})).await;
        assert_eq!((status, body["live"].as_str()), (200, Some("0.1.0")), "{body}");
        let started = Instant::now();
        loop {
            let mut all = true;
            for a in &admins {
                all &= live_on(a).await.as_deref() == Some("0.1.0");
            }
            if all {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "rollback did not reach every replica");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Refused alike: a version nobody loaded.
        let (status, body) = admin_post(&admins[1], "/v1/plugins/nutanix/activate", json!({"version": "9.9.9"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in load {
            let (ok, failed) = l.await.unwrap();
            assert!(ok > 0 && failed.is_empty(), "collections during the swaps: {ok} ok, failed: {failed:?}");
        }

        // A replica that starts later applies the log before it serves.
        let late = serve(with_admin()).await;
        assert_eq!(live_on(late.admin.as_deref().unwrap()).await.as_deref(), Some("0.1.0"));
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/v1/plugins", late.admin.as_deref().unwrap()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let versions: Vec<&str> = listed["plugins"].as_array().unwrap().iter().filter_map(|p| p["version"].as_str()).collect();
        assert!(versions.contains(&"0.1.1"), "the uploaded version is loaded on the late replica too: {versions:?}");
    });
}

/// A replica does not start without its database, and says why; one whose
/// database goes away refuses collections `UNAVAILABLE` (no guest runs
/// without its lease) and serves again once the database is back.
#[test]
fn a_replica_without_its_database_refuses_clearly_and_recovers() {
    let pg = Postgres::start();
    let sim = sim(Faults::default());
    block_on(async {
        let nowhere = ServeOptions { plugin: Some(guest_wasm()), database: Some("host=/nonexistent-cf-host-socket user=cf dbname=cf".into()), ..ServeOptions::default() };
        let listeners = cf_host::serve::Listeners { grpc: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), admin: None, metrics: None };
        let e = cf_host::serve::run(nowhere, listeners, std::future::ready(()), |_| panic!("must not start")).await.unwrap_err();
        assert!(e.contains("fleet database unavailable"), "{e}");

        let r = serve(replica(&pg, None)).await;
        let options = json!({"resource_kinds": ["vms"]});
        assert_eq!(collect(&r.grpc, &sim, options.clone()).await.unwrap(), 230);
        pg.stop();
        let status = collect(&r.grpc, &sim, options.clone()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("fleet database unavailable"), "{status:?}");
        pg.start_server();
        assert_eq!(collect(&r.grpc, &sim, options).await.unwrap(), 230, "served again without a restart");
    });
}

/// p-th percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Fleet mode's figures for BENCHMARKS.md (issue #25; never asserted):
///
/// - throughput: `CF_FLEET_BENCH_TENANTS` tenants (default 24), each its own
///   simulated Prism Central of `CF_FLEET_BENCH_VMS` VMs (default 1000)
///   answering each call after 50 ms, collected at once over gRPC through
///   one replica without a database, one replica on PostgreSQL, and three
///   replicas on PostgreSQL (tenants dealt round-robin); every run takes
///   its tenant's lease in the database;
/// - guest state: one tenant's incremental collection of
///   `CF_FLEET_BENCH_STATE_VMS` VMs (default 20000; about 1.5 KB of cache
///   per VM), the first run writing the cache and the second reading it,
///   with the state in SQLite (`--store`) and in PostgreSQL.
///
/// `cargo test --release -p cf-tests --test fleet -- --ignored --nocapture fleet_bench`
#[test]
#[ignore = "a benchmark: prints the figures of BENCHMARKS.md"]
fn fleet_bench() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (tenants, vms, state_vms) = (env("CF_FLEET_BENCH_TENANTS", 24), env("CF_FLEET_BENCH_VMS", 1000), env("CF_FLEET_BENCH_STATE_VMS", 20_000));
    let pg = Postgres::start();
    let sims: Vec<Simulator> = (0..tenants)
        .map(|_| {
            let estate = EstateConfig { vms, ..EstateConfig::default() };
            block_on(Simulator::start(SimConfig { estate, faults: Faults { latency_ms: 50, ..Faults::default() }, ..SimConfig::default() })).expect("simulator")
        })
        .collect();
    let options = json!({"resource_kinds": ["vms"], "page_size": 100});
    let mut out = String::from("setup                                   wall s   VMs/s    tenant p50 s   tenant p99 s\n");
    block_on(async {
        for (label, replicas, db) in [("1 replica, no database", 1, false), ("1 replica on PostgreSQL", 1, true), ("3 replicas on PostgreSQL", 3, true)] {
            let mut served = Vec::new();
            for _ in 0..replicas {
                let mut o = if db { replica(&pg, None) } else { ServeOptions { plugin: Some(guest_wasm()), ..ServeOptions::default() } };
                o.runtime.max_concurrency = 64;
                served.push(serve(o).await);
            }
            // One collection first (connections, code warm), not timed.
            collect(&served[0].grpc, &sims[0], options.clone()).await.expect("warm-up");
            let started = Instant::now();
            let runs = sims.iter().enumerate().map(|(i, s)| {
                let (grpc, options) = (served[i % replicas].grpc.clone(), options.clone());
                async move {
                    let t = Instant::now();
                    let n = collect(&grpc, s, options).await.expect("collects");
                    (t.elapsed(), n)
                }
            });
            let results = futures::future::join_all(runs).await;
            let wall = started.elapsed();
            assert!(results.iter().all(|(_, n)| *n == vms), "every tenant's VMs");
            let mut times: Vec<Duration> = results.iter().map(|(t, _)| *t).collect();
            times.sort();
            out.push_str(&format!(
                "{label:<38}  {:>6.2}  {:>6.0}  {:>13.2}  {:>13.2}\n",
                wall.as_secs_f64(),
                (tenants * vms) as f64 / wall.as_secs_f64(),
                pct(&times, 0.5).as_secs_f64(),
                pct(&times, 0.99).as_secs_f64()
            ));
        }
        drop(sims);

        out.push_str(&format!("\nincremental collection of {state_vms} VMs      first run s   second run s   state rows   second run read\n"));
        let sim = block_on_sim(state_vms);
        let incremental = json!({"incremental": true, "resource_kinds": ["vms"], "page_size": 100});
        let dir = cf_tests::temp_dir("fleet-bench-store");
        // The cache takes about one state key per 60 VMs.
        let keys = json!({"default": {"limits": {"state_max_keys": state_vms / 40 + 100}}});
        for (label, db) in [("state in SQLite (--store)", false), ("state in PostgreSQL (--database)", true)] {
            let mut o = if db {
                replica(&pg, Some(keys.clone()))
            } else {
                let mut o = replica(&pg, Some(keys.clone()));
                o.database = None;
                o.store = Some(dir.join("state.sqlite"));
                o
            };
            o.runtime.max_concurrency = 4;
            let r = serve(o).await;
            let t = Instant::now();
            assert_eq!(collect(&r.grpc, &sim, incremental.clone()).await.expect("first run"), state_vms);
            let first = t.elapsed();
            let (t, before) = (Instant::now(), sim.state.calls_per_kind());
            assert_eq!(collect(&r.grpc, &sim, incremental.clone()).await.expect("second run"), state_vms);
            let second = t.elapsed();
            let read = if calls_since(&sim, &before).contains_key("vms") { "all VMs" } else { "changes only" };
            let rows = if db {
                let url = pg.url.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("client");
                    c.query_one("SELECT count(*) FROM cf_state", &[]).unwrap().get::<_, i64>(0).to_string()
                })
                .await
                .unwrap()
            } else {
                "-".to_string()
            };
            out.push_str(&format!("{label:<38}  {:>11.2}  {:>13.2}  {rows:>10}   {read}\n", first.as_secs_f64(), second.as_secs_f64()));
        }
    });
    println!("{out}");
}

/// A simulator of `vms` VMs without latency (started outside the runtime).
fn block_on_sim(vms: usize) -> Simulator {
    let estate = EstateConfig { vms, ..EstateConfig::default() };
    std::thread::spawn(move || block_on(Simulator::start(SimConfig { estate, ..SimConfig::default() })).expect("simulator")).join().unwrap()
}

/// A webhook registered through one replica's admin API is fired by the
/// collections of another replica, and removing it through a third stops
/// it everywhere within the reload interval.
#[test]
fn a_webhook_registered_on_one_replica_fires_on_every_replica() {
    use axum::http::StatusCode;
    let pg = Postgres::start();
    let sim = sim(Faults::default());
    block_on(async {
        let got: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let loopback = vec!["127.0.0.0/8".parse().unwrap()];
        let with_admin = || {
            let mut o = replica(&pg, None);
            o.admin = Some(admin_config(TOKEN).allow_webhook_networks(loopback.clone()));
            o
        };
        let (a, b, c) = (serve(with_admin()).await, serve(with_admin()).await, serve(with_admin()).await);
        let (status, hook) = admin_post(a.admin.as_deref().unwrap(), "/v1/webhooks", json!({"url": hook_url, "secret": "fleet-webhook-secret-0123"})).await;
        assert_eq!(status, 200, "{hook}");
        let id = hook["id"].as_str().expect("the webhook's id").to_string();

        // Replica B reads the registrations within the reload interval.
        let until = Instant::now() + cf_host::fleet::webhooks::RELOAD * 3;
        loop {
            assert_eq!(collect(&b.grpc, &sim, json!({"resource_kinds": ["vms"]})).await.unwrap(), 230);
            tokio::time::sleep(Duration::from_millis(300)).await;
            if got.lock().unwrap().iter().any(|e| e["event"] == "collection.finished") {
                break;
            }
            assert!(Instant::now() < until, "replica B never fired the webhook registered on A");
        }

        // Removed through C: no replica fires it after the reload interval.
        let client = reqwest::Client::new();
        let r = client.delete(format!("{}/v1/webhooks/{id}", c.admin.as_deref().unwrap())).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        tokio::time::sleep(cf_host::fleet::webhooks::RELOAD * 2).await;
        let before = got.lock().unwrap().len();
        for r in [&a, &b, &c] {
            assert_eq!(collect(&r.grpc, &sim, json!({"resource_kinds": ["vms"]})).await.unwrap(), 230);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(got.lock().unwrap().len(), before, "a removed webhook was fired");

        // The fleet holds at most MAX_SUBSCRIPTIONS, whatever each replica
        // has read so far: rows written elsewhere count at once.
        let url = pg.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("test client");
            for i in 0..cf_host::webhook::MAX_SUBSCRIPTIONS {
                db.execute(
                    "INSERT INTO cf_webhooks (id, url, events, secret, created_at) VALUES ($1, 'http://127.0.0.1:9/hook', '[\"collection.failed\"]', 'fleet-webhook-secret-0123', 0)",
                    &[&format!("wh-test-{i}")],
                )
                .unwrap();
            }
        })
        .await
        .unwrap();
        let (status, refused) = admin_post(a.admin.as_deref().unwrap(), "/v1/webhooks", json!({"url": hook_url, "secret": "fleet-webhook-secret-0123"})).await;
        assert_ne!(status, 200, "{refused}");
        assert!(refused.to_string().contains("webhooks"), "{refused}");
    });
}

/// Registry log compaction: many ops, then the log replaced by a snapshot
/// of the desired state; a replica that starts afterwards, and one that fell
/// behind the snapshot (it had loaded a version unloaded since), reach the
/// state of the replica that applied the whole log; the component nothing
/// loads any more is deleted, and the log goes on after the snapshot.
#[test]
fn a_compacted_registry_log_brings_every_replica_to_the_same_state() {
    use cf_host::registry::cache::PrecompileCache;
    use cf_host::registry::ops::Op;
    use cf_host::registry::Registry;

    let pg = Postgres::start();
    let db = fleet(&pg);
    let runtime = Arc::new(cf_host::Runtime::new(cf_host::RuntimeConfig::default()).expect("runtime"));
    let cache = cf_tests::temp_dir("compaction-cache");
    let registry = || Arc::new(Registry::new(runtime.clone(), Some(PrecompileCache::new(cache.clone()).expect("cache"))));
    let follow = |name: &str| {
        let r = registry();
        let (f, guard) = db.as_replica(name).follow_registry(r.clone()).expect("follows");
        (r, f, guard)
    };
    let (reg_a, a, _ga) = follow("a");
    let (reg_b, b, _gb) = follow("b");
    let (reg_d, d, guard_d) = follow("d");
    let count = |sql: &str| -> i64 { postgres::Client::connect(&pg.url, postgres::NoTls).unwrap().query_one(sql, &[]).unwrap().get(0) };
    let load = |version: &str, activate: bool| {
        let bytes = guest_as(version);
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        (Op::Load { source: format!("nutanix-{version}.wasm"), digest, manifest: None, activate }, Some(bytes))
    };
    let op = |name: &str, version: &str| (name.to_string(), version.to_string());
    block_on(async {
        let submit = |(o, bytes): (Op, Option<Vec<u8>>)| a.submit(o, bytes);
        for v in ["0.2.0", "0.3.0", "0.4.0"] {
            submit(load(v, true)).await.expect("load and activate");
        }
        submit((Op::Rollback { name: "nutanix".into() }, None)).await.expect("rollback to 0.3.0");
        let (n, v) = op("nutanix", "0.4.0");
        submit((Op::Canary { name: n, version: v, percent: 20 }, None)).await.expect("canary");
        let (n, v) = op("nutanix", "0.2.0");
        submit((Op::Pin { name: n, version: v, tenant: Some("t1".into()) }, None)).await.expect("pin");
        // Loaded everywhere (d too), then d stops following.
        submit(load("0.5.0", false)).await.expect("load");
        while d.applied() < a.applied() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(guard_d);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let d_at = d.applied();
        let (n, v) = op("nutanix", "0.5.0");
        submit((Op::Unload { name: n, version: v }, None)).await.expect("unload");
        for _ in 0..40 {
            let (n, v) = op("nutanix", "0.3.0");
            submit((Op::Pin { name: n.clone(), version: v, tenant: Some("t2".into()) }, None)).await.expect("pin");
            submit((Op::Unpin { name: n, tenant: "t2".into() }, None)).await.expect("unpin");
        }
        assert_eq!(d.applied(), d_at, "d no longer follows");
        while b.applied() < a.applied() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // b has told the fleet it applied everything.
    let b_reported = Instant::now();
    while count(&format!("SELECT count(*) FROM cf_replicas WHERE replica = 'b' AND applied >= {}", a.applied())) == 0 {
        assert!(b_reported.elapsed() < Duration::from_secs(10), "b reports what it applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(count("SELECT count(*) FROM cf_registry_ops") > 80);
    assert_eq!(count("SELECT count(*) FROM cf_components"), 4);

    // d is live: nothing is compacted until it has applied everything or
    // stops counting as live.
    assert_eq!(a.compact().expect("compaction"), None, "a live replica is behind");
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    c.execute("UPDATE cf_replicas SET seen_at = now() - interval '1 hour' WHERE replica = 'd'", &[]).unwrap();
    let upto = a.compact().expect("compaction").expect("compacted");
    assert_eq!(upto, a.applied());
    assert_eq!(count("SELECT count(*) FROM cf_registry_ops"), 0, "the ops up to the snapshot are gone");
    assert_eq!(count("SELECT count(*) FROM cf_components"), 3, "0.5.0's bytes are gone, the loaded versions' stay");
    assert_eq!(a.compact().expect("compaction"), None, "nothing new to compact");

    let want = reg_a.desired_state();
    assert_eq!(want.len(), 1);
    let nutanix = &want[0];
    assert_eq!((nutanix.live.as_deref(), nutanix.canary.clone()), (Some("0.3.0"), Some(("0.4.0".to_string(), 20))));
    assert_eq!(nutanix.history, ["0.2.0"]);
    assert_eq!(nutanix.pins, BTreeMap::from([("t1".to_string(), "0.2.0".to_string())]));
    assert_eq!(nutanix.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["0.2.0", "0.3.0", "0.4.0"]);
    assert_eq!(reg_b.desired_state(), want, "b applied the whole log");

    // A replica that starts now reads the snapshot.
    let (reg_c, c_follower, _gc) = follow("c");
    assert_eq!(c_follower.applied(), upto);
    assert_eq!(reg_c.desired_state(), want);
    // The one that fell behind loads it too, and unloads 0.5.0.
    assert!(reg_d.loaded_digest("nutanix", "0.5.0").is_some());
    d.catch_up().expect("catches up");
    assert_eq!(d.applied(), upto);
    assert_eq!(reg_d.desired_state(), want, "a replica behind the snapshot converges");

    // The log goes on after the snapshot, for everyone.
    block_on(async {
        let (n, v) = op("nutanix", "0.4.0");
        a.submit(Op::Pin { name: n, version: v, tenant: Some("t3".into()) }, None).await.expect("pin");
        while b.applied() < a.applied() || c_follower.applied() < a.applied() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let want = reg_a.desired_state();
    assert_eq!(want[0].pins.get("t3").map(String::as_str), Some("0.4.0"));
    let (reg_e, _e, _ge) = follow("e");
    for (who, r) in [("b", &reg_b), ("c", &reg_c), ("e", &reg_e)] {
        assert_eq!(r.desired_state(), want, "{who}");
    }
    std::fs::remove_dir_all(&cache).ok();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
