//! The imports of `cloudforet:collector@0.1.x`: each converts its arguments
//! to the current types (the `From` conversions of
//! [`crate::bindings::v0_1`]), calls the current implementation, and
//! converts the answer back (emit's `ack` becomes the bare `flow` 0.1 knows).

use super::{emit::EmitCtx, http::HttpCtx, log::LogCtx, state::StateCtx, types::TypesCtx};
use crate::bindings::v0_1::cloudforet::collector as old;
use crate::bindings::v0_2::cloudforet::collector as new;

impl old::types::Host for TypesCtx {}

impl old::http::Host for HttpCtx {
    async fn send(&mut self, req: old::http::Request) -> wasmtime::Result<Result<old::http::Response, old::http::HttpError>> {
        let r = new::http::Host::send(self, req.into()).await?;
        Ok(r.map(Into::into).map_err(Into::into))
    }

    async fn send_authenticated(
        &mut self,
        req: old::http::Request,
        credential: old::http::Credential,
    ) -> wasmtime::Result<Result<old::http::Response, old::http::HttpError>> {
        let r = new::http::Host::send_authenticated(self, req.into(), credential.into()).await?;
        Ok(r.map(Into::into).map_err(Into::into))
    }
}

impl old::log::Host for LogCtx {
    async fn log(&mut self, level: old::log::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        new::log::Host::log(self, level.into(), message, fields).await
    }
}

impl old::emit::Host for EmitCtx {
    async fn emit(&mut self, batch: Vec<old::emit::Item>) -> wasmtime::Result<old::emit::Flow> {
        let ack = new::emit::Host::emit(self, batch.into_iter().map(Into::into).collect()).await?;
        Ok(ack.flow.into())
    }
}

impl old::state::Host for StateCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, old::state::StateError>> {
        Ok(new::state::Host::get(self, key).await?.map_err(Into::into))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), old::state::StateError>> {
        Ok(new::state::Host::set(self, key, value).await?.map_err(Into::into))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), old::state::StateError>> {
        Ok(new::state::Host::delete(self, key).await?.map_err(Into::into))
    }
}
