//! `cf-host serve` over a real loopback socket with a tonic client: the
//! collect stream applies backpressure to the guest, a client that cancels
//! stops the guest, and health and version answer.

mod common;

use cf_host::grpc::convert::json_to_struct;
use cf_host::grpc::pb::core::server_info_client::ServerInfoClient;
use cf_host::grpc::pb::plugin::collector_client::CollectorClient;
use cf_host::grpc::pb::plugin::{resource_info, CollectRequest, InitRequest};
use common::{rt, simulator, Server};
use prism_sim::estate::EstateConfig;
use prism_sim::{Faults, SimConfig, Simulator};
use serde_json::{json, Value};
use std::time::Duration;
use tonic::transport::Channel;

fn connect(server: &Server) -> Channel {
    let url = format!("http://{}", server.addr);
    rt().block_on(async { Channel::from_shared(url).expect("url").connect().await.expect("connect") })
}

fn obj(v: Value) -> Option<prost_types::Struct> {
    v.as_object().map(json_to_struct)
}

fn vm_calls(sim: &Simulator) -> u64 {
    sim.state.calls_per_kind().get("vms").copied().unwrap_or(0)
}

fn collect_vms(sim: &Simulator, page_size: u64) -> CollectRequest {
    CollectRequest {
        options: obj(json!({"page_size": page_size})),
        secret_data: obj(sim.secret()),
        filter: None,
        task_options: obj(json!({"resource_kinds": ["vms"]})),
    }
}

#[test]
fn a_client_that_stops_reading_holds_the_guest_back() {
    let sim = simulator(SimConfig { estate: EstateConfig { vms: 20_000, ..EstateConfig::default() }, ..SimConfig::default() });
    let server = Server::start();
    let mut client = CollectorClient::new(connect(&server)).max_decoding_message_size(64 << 20);
    rt().block_on(async {
        let mut stream = client.collect(collect_vms(&sim, 100)).await.expect("collect").into_inner();
        let first = stream.message().await.expect("first item").expect("an item");
        assert_eq!(first.state, resource_info::State::Success as i32);
        // Not reading: the bounded buffers fill and the guest waits.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = vm_calls(&sim);
        assert!(held < 100, "the guest fetched {held} of 200 pages while the client read nothing");
        let mut vms = 1;
        while let Some(item) = stream.message().await.expect("stream item") {
            if item.resource_type == "inventory.CloudService" {
                vms += 1;
            }
        }
        // The first item was the type, not a VM.
        assert_eq!(vms - 1, 20_000, "every VM arrives once the client reads again");
        assert_eq!(vm_calls(&sim), 200);
    });
}

#[test]
fn cancelling_the_stream_stops_the_guest() {
    let sim = simulator(SimConfig { estate: EstateConfig { vms: 2_000, ..EstateConfig::default() }, ..SimConfig::default() });
    sim.set_faults(Faults { latency_ms: 100, ..Faults::default() });
    let mut server = Server::start();
    let channel = connect(&server);
    let mut client = CollectorClient::new(channel.clone());
    rt().block_on(async {
        let mut stream = client.collect(collect_vms(&sim, 50)).await.expect("collect").into_inner();
        stream.message().await.expect("first item").expect("an item");
        drop(stream);
        // Give in-flight work a moment to notice, then the count must stand still.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let after_cancel = vm_calls(&sim);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let later = vm_calls(&sim);
        assert_eq!(after_cancel, later, "the guest kept fetching after the client cancelled");
        assert!(later < 40, "the guest fetched all {later} pages although the client cancelled");
        // The server is unharmed and serves the next call.
        let info = client.init(InitRequest { options: obj(json!({})) }).await.expect("init after cancel");
        assert!(info.into_inner().metadata.is_some());
    });
    assert!(server.alive());
}

#[test]
fn health_and_version_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let server = Server::start();
    let channel = connect(&server);
    rt().block_on(async {
        let mut health = HealthClient::new(channel.clone());
        for service in ["", "spaceone.api.inventory.plugin.Collector", "spaceone.api.inventory.plugin.Job"] {
            let r = health.check(HealthCheckRequest { service: service.into() }).await.expect("health check");
            assert_eq!(r.into_inner().status, ServingStatus::Serving as i32, "{service:?}");
        }
        let unknown = health.check(HealthCheckRequest { service: "no.Such".into() }).await.unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        let v = ServerInfoClient::new(channel).get_version(()).await.expect("version").into_inner();
        assert_eq!(v.version, env!("CARGO_PKG_VERSION"));
    });
}
