//! Bindings for `cloudforet:collector@0.2.x`, the current world
//! (`wit/collector.wit`, 0.2.2; 0.2.0 and 0.2.1 guests link to it through
//! wasmtime's semver-compatible lookup). The host's import implementations
//! (`crate::host`) are written against these types.
//!
//! Generated for `full-plugin`, the largest world, so every export interface
//! has bindings; a component must export `collector` and may export
//! `cost-source` and `metric-source` ([`Pre`] looks each up by itself).

use crate::host::{emit::EmitCtx, http::HttpCtx, log::LogCtx, state::StateCtx, types::TypesCtx};
use crate::sandbox::RunState;
use exports::cloudforet::collector::{collector, cost_source, metric_source};
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};
use wasmtime::Store;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/full-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// Adds this version's imports (`cloudforet:collector/*@0.2.2`) to `linker`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    use cloudforet::collector as c;
    c::types::add_to_linker::<_, HasSelf<TypesCtx>>(linker, |s| &mut s.types)?;
    c::http::add_to_linker::<_, HasSelf<HttpCtx>>(linker, |s| &mut s.http)?;
    c::log::add_to_linker::<_, HasSelf<LogCtx>>(linker, |s| &mut s.log)?;
    c::emit::add_to_linker::<_, HasSelf<EmitCtx>>(linker, |s| &mut s.emit)?;
    // Costs go through the emit capability: same channel, same limits.
    c::costs::add_to_linker::<_, HasSelf<EmitCtx>>(linker, |s| &mut s.emit)?;
    c::state::add_to_linker::<_, HasSelf<StateCtx>>(linker, |s| &mut s.state)
}

/// A 0.2 component ready to instantiate: `collector` (required),
/// `cost-source` and `metric-source` (when exported).
#[derive(Clone)]
pub struct Pre {
    pre: InstancePre<RunState>,
    collector: collector::GuestIndices,
    cost_source: Option<cost_source::GuestIndices>,
    metric_source: Option<metric_source::GuestIndices>,
}

/// A 0.2 instance's exports. The optional ones are looked up on first
/// use, so instantiating for a collector call costs what it did before
/// they existed.
pub struct Exports {
    instance: Instance,
    pub collector: collector::Guest,
    cost_source: Option<cost_source::GuestIndices>,
    metric_source: Option<metric_source::GuestIndices>,
}

impl Exports {
    /// `cost-source`, when exported.
    pub fn cost_source(&self, store: &mut Store<RunState>) -> Option<wasmtime::Result<cost_source::Guest>> {
        Some(self.cost_source.as_ref()?.load(store, &self.instance))
    }

    /// `metric-source`, when exported.
    pub fn metric_source(&self, store: &mut Store<RunState>) -> Option<wasmtime::Result<metric_source::Guest>> {
        Some(self.metric_source.as_ref()?.load(store, &self.instance))
    }
}

impl Pre {
    pub fn new(pre: InstancePre<RunState>) -> wasmtime::Result<Pre> {
        let collector = collector::GuestIndices::new(&pre)?;
        let cost_source = cost_source::GuestIndices::new(&pre).ok();
        let metric_source = metric_source::GuestIndices::new(&pre).ok();
        Ok(Pre { pre, collector, cost_source, metric_source })
    }

    /// Whether the component is also a monitoring data source.
    pub fn is_metric_source(&self) -> bool {
        self.metric_source.is_some()
    }

    /// Whether the component is also a cost data source.
    pub fn is_cost_source(&self) -> bool {
        self.cost_source.is_some()
    }

    pub async fn instantiate_async(&self, store: &mut Store<RunState>) -> wasmtime::Result<Exports> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let collector = self.collector.load(&mut *store, &instance)?;
        Ok(Exports { instance, collector, cost_source: self.cost_source.clone(), metric_source: self.metric_source.clone() })
    }
}
