//! Bindings for `cloudforet:collector@0.2.x`, the current world
//! (`wit/collector.wit`, 0.2.2; 0.2.0 and 0.2.1 guests link to it through
//! wasmtime's semver-compatible lookup). The host's import implementations
//! are written against these types.
//!
//! Generated for `full-plugin`, the largest world, so every export interface
//! has bindings; a component must export `collector` and may export
//! `cost-source` and `metric-source` ([`Pre`] looks each up by itself).
//! The host's implementations of these imports live in `crate::host`, which
//! also links them; this module only holds what is generated from the WIT.

use exports::cloudforet::collector::{collector, cost_source, metric_source};
use wasmtime::component::{Instance, InstancePre};
use wasmtime::Store;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cloudforet:collector/full-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// A 0.2 component ready to instantiate: `collector` (required),
/// `cost-source` and `metric-source` (when exported).
pub struct Pre<T: 'static> {
    pre: InstancePre<T>,
    collector: collector::GuestIndices,
    cost_source: Option<cost_source::GuestIndices>,
    metric_source: Option<metric_source::GuestIndices>,
}

impl<T: 'static> Clone for Pre<T> {
    fn clone(&self) -> Self {
        Pre {
            pre: self.pre.clone(),
            collector: self.collector.clone(),
            cost_source: self.cost_source.clone(),
            metric_source: self.metric_source.clone(),
        }
    }
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
    pub fn cost_source<T: Send>(&self, store: &mut Store<T>) -> Option<wasmtime::Result<cost_source::Guest>> {
        Some(self.cost_source.as_ref()?.load(store, &self.instance))
    }

    /// `metric-source`, when exported.
    pub fn metric_source<T: Send>(&self, store: &mut Store<T>) -> Option<wasmtime::Result<metric_source::Guest>> {
        Some(self.metric_source.as_ref()?.load(store, &self.instance))
    }
}

impl<T: Send + 'static> Pre<T> {
    pub fn new(pre: InstancePre<T>) -> wasmtime::Result<Pre<T>> {
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

    pub async fn instantiate_async(&self, store: &mut Store<T>) -> wasmtime::Result<Exports> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let collector = self.collector.load(&mut *store, &instance)?;
        Ok(Exports { instance, collector, cost_source: self.cost_source.clone(), metric_source: self.metric_source.clone() })
    }
}
