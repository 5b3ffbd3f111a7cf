//! Bindings for `cloudforet:collector@0.1.x` (generated from the current
//! 0.1.1 WIT): the project's one `bindgen!` site. Guests built against the
//! frozen 0.1.0 world link against these too, through wasmtime's
//! semver-compatible lookup (0.1.1 only added `http.send-authenticated`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});
