//! A collector built against the frozen world `cloudforet:collector@0.1.0`
//! (`wit/v0.1.0`), as guests released before 0.1.1 were: it builds its own
//! Basic auth header from the secret's password. The tests load it next to
//! 0.1.1 guests in one host to prove older guests keep running.
//!
//! `collect` lists Prism clusters (one page) and emits one region per
//! cluster; the region's tag `world` says `0.1.0`.

#[cfg(target_arch = "wasm32")]
mod component;
