//! Host implementations of the WIT imports: one module per interface, one
//! `impl <iface>::Host` each, on a context that holds only that capability.
//! [`crate::sandbox::RunState`] aggregates them.

pub mod costs;
pub mod emit;
pub mod http;
pub mod log;
pub mod state;
pub mod types;

/// `scheme://host:port` of a URL, for logs (never path or query).
pub(crate) fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}
