//! Bindings for `cloudforet:collector@0.1.x`, generated from the frozen
//! 0.1.1 world (`wit/v0.1.1/`); guests built against 0.1.0 link to them too,
//! through wasmtime's semver-compatible lookup (0.1.1 only added
//! `http.send-authenticated`).
//!
//! The host implements its imports once, for the current world; each 0.1
//! import converts its arguments to the current types with the `From`
//! conversions here, delegates (`crate::host::legacy`), and converts the
//! answer back (emit's `ack` becomes the bare `flow` 0.1 knows). The
//! exports' results convert up to the current types the same way.

use super::v0_2 as cur;
use cloudforet::collector as old;
use cur::cloudforet::collector as new;

wasmtime::component::bindgen!({
    path: "../wit/v0.1.1",
    world: "cloudforet:collector/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// `From` for records whose fields have the same names in both versions.
macro_rules! same_record {
    ($($from:path => $to:ident :: $name:ident { $($f:ident),* $(,)? })*) => {$(
        impl From<$from> for $to::$name {
            fn from(x: $from) -> $to::$name {
                $to::$name { $($f: x.$f.into()),* }
            }
        }
    )*};
}

/// `From` for enums and variants whose cases have the same names; a case
/// with a payload converts it with `From`.
macro_rules! same_cases {
    ($($from:ident :: $name:ident => $to:ident { $($case:ident $( ( $p:ident ) )?),* $(,)? })*) => {$(
        impl From<$from::$name> for $to::$name {
            fn from(x: $from::$name) -> $to::$name {
                match x {
                    $($from::$name::$case $( ($p) )? => $to::$name::$case $( ($p.into()) )?),*
                }
            }
        }
    )*};
}

mod import_args {
    //! Import arguments (0.1 → current) and answers (current → 0.1).
    use super::{new, old};
    use new::{emit as ne, http as nh, log as nl, state as ns};
    use old::{emit as oe, http as oh, log as ol, state as os};

    same_record! {
        oh::Request => nh::Request { method, url, headers, body, timeout_ms }
        nh::Response => oh::Response { status, headers, body }
        oe::Reference => ne::Reference { resource_id, external_link }
        oe::CloudService => ne::CloudService {
            name, provider, cloud_service_group, cloud_service_type, account, region_code, instance_type,
            instance_size, ip_addresses, tags, reference, launched_at, data, metadata,
        }
        oe::CloudServiceType => ne::CloudServiceType {
            name, group, provider, service_code, is_primary, is_major, labels, tags, metadata,
        }
        oe::Region => ne::Region { name, region_code, provider, tags }
        oe::ErrorResource => ne::ErrorResource { message, provider, cloud_service_group, cloud_service_type, resource_type }
        oe::Namespace => ne::Namespace { namespace_id, name, category, resource_type, group, provider, icon, tags }
        oe::Metric => ne::Metric { metric_id, name, metric_type, resource_type, namespace_id, provider, unit, query_options, tags }
    }

    same_cases! {
        oh::Method => nh { Get, Head, Post, Put, Patch, Delete }
        oh::Credential => nh { Basic, Bearer, ApiKey(h) }
        nh::HttpError => oh { Denied(m), InvalidRequest(m), Timeout, Connection(m), Tls(m), TooLarge(n) }
        ol::Level => nl { Trace, Debug, Info, Warn, Error }
        ns::StateError => os { TooLarge(n), Unavailable(m) }
        oe::MetricType => ne { Counter, Gauge }
        oe::Item => ne {
            CloudService(x), CloudServiceType(x), Region(x), ErrorResource(x), Namespace(x), Metric(x),
        }
        ne::Flow => oe { Proceed, Stop }
    }
}

mod export_results {
    //! Export results (0.1 → current).
    use super::cur::exports::cloudforet::collector::collector as n;
    use super::exports::cloudforet::collector::collector as o;

    same_record! {
        o::PluginMetadata => n::PluginMetadata { supported_resource_types, supported_schedules, supported_features, options_schema }
        o::Task => n::Task { options }
        o::Summary => n::Summary { emitted, errors }
    }

    same_cases! {
        o::CollectorError => n {
            InvalidArgument(m), Unauthenticated(m), PermissionDenied(m), NotFound(m),
            Unavailable(m), Timeout(m), ResourceExhausted(m), Internal(m),
        }
    }
}

/// `get-tasks`' list, converted as a whole.
pub struct Tasks(pub Vec<cur::exports::cloudforet::collector::collector::Task>);

impl From<Vec<exports::cloudforet::collector::collector::Task>> for Tasks {
    fn from(v: Vec<exports::cloudforet::collector::collector::Task>) -> Tasks {
        Tasks(v.into_iter().map(Into::into).collect())
    }
}
