//! Bindings for `cloudforet:collector@0.3.x`, the current world
//! (`wit/collector.wit`). The host's import implementations are written
//! against these types; older versions convert to them.
//!
//! Generated for `full-plugin`, the largest world, so every export interface
//! has bindings; a component must export `collector` and may export
//! `cost-source` and `metric-source` ([`Pre`] looks each up by itself).
//! The host's implementations of these imports live in `crate::host`, which
//! also links them; this module only holds what is generated from the WIT.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/full-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

plugin_pre!();
