//! Bindings for `cloudforet:collector@0.2.x`, the current world
//! (`wit/collector.wit`). The host's import implementations (`crate::host`)
//! are written against these types.

use crate::host::{emit::EmitCtx, http::HttpCtx, log::LogCtx, state::StateCtx, types::TypesCtx};
use crate::sandbox::RunState;
use wasmtime::component::{HasSelf, Linker};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// Adds this version's imports (`cloudforet:collector/*@0.2.0`) to `linker`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    use cloudforet::collector as c;
    c::types::add_to_linker::<_, HasSelf<TypesCtx>>(linker, |s| &mut s.types)?;
    c::http::add_to_linker::<_, HasSelf<HttpCtx>>(linker, |s| &mut s.http)?;
    c::log::add_to_linker::<_, HasSelf<LogCtx>>(linker, |s| &mut s.log)?;
    c::emit::add_to_linker::<_, HasSelf<EmitCtx>>(linker, |s| &mut s.emit)?;
    c::state::add_to_linker::<_, HasSelf<StateCtx>>(linker, |s| &mut s.state)
}
