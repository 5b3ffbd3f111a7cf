//! Bindings for `cloudforet:collector@0.2.x`, generated from the frozen
//! 0.2.2 world (`wit/v0.2.2/`); guests built against 0.2.0 and 0.2.1 link
//! to them too, through wasmtime's semver-compatible lookup.
//!
//! The host implements its imports once, for the current world; each 0.2
//! import converts its arguments to the current types with the `From`
//! conversions here, delegates (`crate::host::legacy`), and converts the
//! answer back (a metric's unit object becomes its string; 0.2 has no
//! `send-many`). The exports' results convert up to the current types the
//! same way.

use super::v0_3 as cur;
use cloudforet::collector as old;
use cur::cloudforet::collector as new;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.2",
    world: "cloudforet:collector/full-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

plugin_pre!();

import_conversions!();

mod emit_and_costs {
    //! What 0.2 has beside the shared imports: emit's `ack` and the costs.
    use super::{new, old};
    use new::{costs as nc, emit as ne};
    use old::{costs as oc, emit as oe};

    same_record! {
        ne::Rejection => oe::Rejection { index, reason }
        oc::Cost => nc::Cost {
            cost, usage_quantity, usage_unit, provider, region_code, product, usage_type, resource, tags,
            additional_info, data, billed_date,
        }
    }

    impl From<ne::Ack> for oe::Ack {
        fn from(a: ne::Ack) -> oe::Ack {
            oe::Ack { flow: a.flow.into(), rejected: a.rejected.into_iter().map(Into::into).collect() }
        }
    }
}

mod export_results {
    //! Export results (0.2 → current).
    use super::cur::exports::cloudforet::collector::{collector as n, cost_source as nc, metric_source as nm};
    use super::exports::cloudforet::collector::{collector as o, cost_source as oc, metric_source as om};

    same_record! {
        o::PluginMetadata => n::PluginMetadata { supported_resource_types, supported_schedules, supported_features, options_schema }
        o::Task => n::Task { options }
        o::Summary => n::Summary { emitted, errors }
        oc::CostPeriod => nc::CostPeriod { start, end }
        om::MetricInfo => nm::MetricInfo { key, name, group, unit, metric_query }
        om::MetricData => nm::MetricData { labels, values }
    }

    impl From<oc::CostTask> for nc::CostTask {
        fn from(t: oc::CostTask) -> nc::CostTask {
            nc::CostTask { options: t.options, changed: t.changed.map(Into::into) }
        }
    }

    same_cases! {
        o::CollectorError => n {
            InvalidArgument(m), Unauthenticated(m), PermissionDenied(m), NotFound(m),
            Unavailable(m), Timeout(m), ResourceExhausted(m), Internal(m),
        }
    }
}
