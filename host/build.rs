//! Compiles CloudForet's protos (host/proto) with protox, a pure Rust
//! protobuf compiler, so building needs no `protoc`:
//!
//! - the collector plugin protocol cf-host serves, and the cost and
//!   monitoring data source plugin protocols (`serve --protocol
//!   cost-analysis|monitoring`); their descriptor
//!   sets (with google/protobuf imports) are kept for gRPC server
//!   reflection, one per protocol;
//! - the public APIs the push connectors call (identity, inventory,
//!   notification, repository, secret, cost_analysis), kept out of that descriptor set: cf-host does not serve
//!   them, so reflection must not list them.

/// Compiles `protos`; with `descriptor`, they are a protocol cf-host
/// serves: the descriptor set is kept for reflection and the services use
/// the host's codec (`grpc::codec`: a message that does not decode is an
/// invalid argument).
/// Files served for reflection beside every protocol's own: health, under
/// its canonical file name (tonic-health serves the service itself).
const REFLECTION_EXTRAS: &[&str] = &["proto/grpc/health/v1/health.proto"];

fn compile(protos: &[&str], descriptor: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    for p in protos.iter().chain(REFLECTION_EXTRAS) {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = |files: &[&str]| -> Result<prost_types::FileDescriptorSet, Box<dyn std::error::Error>> {
        Ok(protox::Compiler::new(["proto"])?.include_imports(true).include_source_info(true).open_files(files)?.file_descriptor_set())
    };
    let mut build = tonic_prost_build::configure().build_client(true).build_server(true);
    if let Some(name) = descriptor {
        let files: Vec<&str> = protos.iter().chain(REFLECTION_EXTRAS).copied().collect();
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
        std::fs::write(out.join(name), prost::Message::encode_to_vec(&fds(&files)?))?;
        build = build.codec_path("crate::grpc::codec::Codec");
    }
    build.compile_fds(fds(protos)?)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/spaceone/api/core/v2/query.proto");
    compile(
        &[
            "proto/spaceone/api/inventory/plugin/collector.proto",
            "proto/spaceone/api/inventory/plugin/job.proto",
            "proto/spaceone/api/core/v1/server_info.proto",
        ],
        Some("cloudforet_descriptor.bin"),
    )?;
    compile(
        &[
            "proto/spaceone/api/cost_analysis/plugin/data_source.proto",
            "proto/spaceone/api/cost_analysis/plugin/job.proto",
            "proto/spaceone/api/cost_analysis/plugin/cost.proto",
            "proto/spaceone/api/core/v1/server_info.proto",
        ],
        Some("cost_descriptor.bin"),
    )?;
    compile(
        &[
            "proto/spaceone/api/monitoring/plugin/data_source.proto",
            "proto/spaceone/api/monitoring/plugin/metric.proto",
            "proto/spaceone/api/core/v1/server_info.proto",
        ],
        Some("monitoring_descriptor.bin"),
    )?;
    compile(
        &[
            "proto/spaceone/api/cost_analysis/v1/cost.proto",
            "proto/spaceone/api/identity/v2/endpoint.proto",
            "proto/spaceone/api/identity/v2/token.proto",
            "proto/spaceone/api/identity/v2/schema.proto",
            "proto/spaceone/api/inventory/v1/cloud_service.proto",
            "proto/spaceone/api/inventory/v1/cloud_service_type.proto",
            "proto/spaceone/api/inventory/v1/region.proto",
            "proto/spaceone/api/notification/v1/notification.proto",
            "proto/spaceone/api/repository/v1/plugin.proto",
            "proto/spaceone/api/secret/v1/secret.proto",
        ],
        None,
    )
}
