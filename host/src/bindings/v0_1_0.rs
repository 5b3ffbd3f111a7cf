//! Bindings for `cloudforet:collector@0.1.0`: the project's one `bindgen!` site.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});
