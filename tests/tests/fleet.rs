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
use cf_tests::{block_on, guest_wasm, serve};
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
