//! Generated bindings, one module per supported WIT world version (the
//! current one is `wit/collector.wit`). When the world changes
//! incompatibly, the old WIT is frozen beside it and gets its own module here.

pub mod v0_1_0;

pub use v0_1_0 as current;
