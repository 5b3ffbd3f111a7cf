//! The admin API: manage the component registry of a running host over a
//! local HTTP endpoint (`cf-host serve --admin-bind`), and the metrics
//! endpoint (`--metrics-bind`).
//!
//! # Layout
//!
//! - [`auth`]: tokens with roles and tenant scopes; rate limits (pure).
//! - [`server`]: the routes, the error envelope, uploads.
//! - [`client`]: `cf-host plugins ...`, the API's client.
//! - [`metrics`]: `GET /metrics`.

pub mod auth;
pub mod client;
pub mod metrics;
pub mod server;

pub use client::Client;
pub use server::{router, serve, AdminConfig, MANIFEST_HEADER, MAX_UPLOAD_BYTES};
