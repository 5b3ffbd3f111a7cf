//! Compiles CloudForet's plugin protocol (host/proto) with protox, a pure
//! Rust protobuf compiler, so building needs no `protoc`. The descriptor set
//! (with google/protobuf imports) is kept for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/spaceone/api/inventory/plugin/collector.proto",
        "proto/spaceone/api/inventory/plugin/job.proto",
        "proto/spaceone/api/core/v1/server_info.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(protos)?
        .file_descriptor_set();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("cloudforet_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
