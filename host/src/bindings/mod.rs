//! Generated bindings, one module per supported, mutually incompatible WIT
//! world version (the current one is `wit/collector.wit`; frozen versions
//! live beside it in `wit/v*/`). Semver-compatible versions (0.1.0 and
//! 0.1.1) share a module: the host implements the newest and wasmtime links
//! older guests of the same line to it.

pub mod v0_1;

pub use v0_1 as current;
