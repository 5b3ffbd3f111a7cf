//! The imports of the older worlds, `cloudforet:collector@0.1.x` and
//! `@0.2.x`: each converts its arguments to the current types (the `From`
//! conversions of [`crate::bindings::v0_1`] and [`crate::bindings::v0_2`]),
//! calls the current implementation, and converts the answer back (0.1's
//! emit gets the bare `flow` of the `ack`).

use super::{emit::EmitCtx, http::HttpCtx, log::LogCtx, state::StateCtx, types::TypesCtx};
use crate::bindings::v0_3::cloudforet::collector as new;

/// The imports an older version shares with the current one (types, http,
/// log, state), each delegating, for the version whose generated
/// `cloudforet::collector` is `$old`.
macro_rules! delegate_shared {
    ($old:path) => {
        const _: () = {
            use $old as old;

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
        };
    };
}

delegate_shared!(crate::bindings::v0_1::cloudforet::collector);
delegate_shared!(crate::bindings::v0_2::cloudforet::collector);

mod v0_1 {
    use super::{new, EmitCtx};
    use crate::bindings::v0_1::cloudforet::collector as old;

    impl old::emit::Host for EmitCtx {
        async fn emit(&mut self, batch: Vec<old::emit::Item>) -> wasmtime::Result<old::emit::Flow> {
            let ack = new::emit::Host::emit(self, batch.into_iter().map(Into::into).collect()).await?;
            Ok(ack.flow.into())
        }
    }
}

mod v0_2 {
    use super::{new, EmitCtx};
    use crate::bindings::v0_2::cloudforet::collector as old;

    impl old::emit::Host for EmitCtx {
        async fn emit(&mut self, batch: Vec<old::emit::Item>) -> wasmtime::Result<old::emit::Ack> {
            let ack = new::emit::Host::emit(self, batch.into_iter().map(Into::into).collect()).await?;
            Ok(ack.into())
        }
    }

    impl old::costs::Host for EmitCtx {
        async fn emit(&mut self, batch: Vec<old::costs::Cost>) -> wasmtime::Result<old::emit::Ack> {
            let ack = new::costs::Host::emit(self, batch.into_iter().map(Into::into).collect()).await?;
            Ok(ack.into())
        }
    }
}
