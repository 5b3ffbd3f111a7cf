//! Host implementations of the WIT imports: one module per interface, one
//! `impl <iface>::Host` each, on a context that holds only that capability,
//! and the linking of every supported world version.
//!
//! # Layout
//!
//! - [`http`], [`log`], [`emit`], [`costs`] (on the emit capability),
//!   [`state`], [`types`]: the current world's imports.
//! - [`legacy`]: the 0.1 and 0.2 imports, each converting to the current
//!   types and delegating.
//! - [`add_to_linker`]: links both versions for any store data that gives
//!   access to the capability contexts ([`Capabilities`]); the runtime's
//!   store state implements it.

pub mod costs;
pub mod emit;
pub mod http;
pub mod legacy;
pub mod log;
pub mod state;
pub mod types;

use crate::bindings::{v0_1, v0_2, v0_3};
use wasmtime::component::{HasSelf, Linker};

/// Store data that holds every capability context.
pub trait Capabilities: Send + 'static {
    fn http(&mut self) -> &mut http::HttpCtx;
    fn log(&mut self) -> &mut log::LogCtx;
    fn emit(&mut self) -> &mut emit::EmitCtx;
    fn state(&mut self) -> &mut state::StateCtx;
    fn types(&mut self) -> &mut types::TypesCtx;
}

/// Adds every supported world version's imports to `linker` (their instance
/// names differ by version, so they coexist).
pub fn add_to_linker<T: Capabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    {
        use v0_1::cloudforet::collector as c;
        c::types::add_to_linker::<_, HasSelf<types::TypesCtx>>(linker, T::types)?;
        c::http::add_to_linker::<_, HasSelf<http::HttpCtx>>(linker, T::http)?;
        c::log::add_to_linker::<_, HasSelf<log::LogCtx>>(linker, T::log)?;
        c::emit::add_to_linker::<_, HasSelf<emit::EmitCtx>>(linker, T::emit)?;
        c::state::add_to_linker::<_, HasSelf<state::StateCtx>>(linker, T::state)?;
    }
    // 0.2 and 0.3 have the same interfaces; costs go through the emit
    // capability (same channel, same limits).
    macro_rules! link {
        ($v:ident) => {{
            use $v::cloudforet::collector as c;
            c::types::add_to_linker::<_, HasSelf<types::TypesCtx>>(linker, T::types)?;
            c::http::add_to_linker::<_, HasSelf<http::HttpCtx>>(linker, T::http)?;
            c::log::add_to_linker::<_, HasSelf<log::LogCtx>>(linker, T::log)?;
            c::emit::add_to_linker::<_, HasSelf<emit::EmitCtx>>(linker, T::emit)?;
            c::costs::add_to_linker::<_, HasSelf<emit::EmitCtx>>(linker, T::emit)?;
            c::state::add_to_linker::<_, HasSelf<state::StateCtx>>(linker, T::state)?;
        }};
    }
    link!(v0_2);
    link!(v0_3);
    Ok(())
}
