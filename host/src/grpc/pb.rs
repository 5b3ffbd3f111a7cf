//! Generated types and services of the inventory plugin protocol and of
//! `spaceone.api.core.v1` (the cost and monitoring protocols keep theirs in
//! their own modules).

#[expect(non_camel_case_types, reason = "CloudForet's rpc is named `collect`, so tonic names the stream type `collectStream`")]
pub mod plugin {
    tonic::include_proto!("spaceone.api.inventory.plugin");
}
pub mod core {
    tonic::include_proto!("spaceone.api.core.v1");
}
/// Descriptor set of the protocol, google/protobuf imports included.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cloudforet_descriptor.bin"));
