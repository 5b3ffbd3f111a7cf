//! Bindings for `cloudforet:collector@0.1.x`, generated from the frozen
//! 0.1.1 world (`wit/v0.1.1/`); guests built against 0.1.0 link to them too,
//! through wasmtime's semver-compatible lookup (0.1.1 only added
//! `http.send-authenticated`).
//!
//! The host implements its imports once, for the current world; each 0.1
//! import converts its arguments to the current types with the `From`
//! conversions here, delegates (`crate::host::legacy`), and converts the
//! answer back (emit's `ack` becomes the bare `flow` 0.1 knows; a metric's
//! unit object becomes its string). The exports' results convert up to
//! the current types the same way.

use super::v0_3 as cur;
use cloudforet::collector as old;
use cur::cloudforet::collector as new;

wasmtime::component::bindgen!({
    path: "../wit/v0.1.1",
    world: "cloudforet:collector/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

import_conversions!();

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
