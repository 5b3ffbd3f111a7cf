//! Macros the bindings modules share: `From` conversions between versions
//! whose records and variants have the same shape, and each 0.2+ version's
//! `Pre` / `Exports` (the export interfaces looked up per component).

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

/// `Pre` (a component linked for this version: `collector` required,
/// `cost-source` and `metric-source` when exported) and `Exports` (an
/// instance's exports, the optional ones looked up on first use), for a
/// module whose `bindgen!` generated the `full-plugin` world.
macro_rules! plugin_pre {
    () => {
        use exports::cloudforet::collector::{collector, cost_source, metric_source};
        use wasmtime::component::{Instance, InstancePre};
        use wasmtime::Store;

        /// A component of this version ready to instantiate: `collector`
        /// (required), `cost-source` and `metric-source` (when exported).
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

        /// An instance's exports. The optional ones are looked up on first
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
    };
}

/// The import conversions every older version shares with the current one
/// (http, log, state, emit's items), for a module with the aliases `old`
/// (its own `cloudforet::collector`) and `new` (the current one's).
macro_rules! import_conversions {
    () => {
        mod import_args {
            //! Import arguments (older → current) and answers (current → older).
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

            impl From<oe::Metric> for ne::Metric {
                fn from(m: oe::Metric) -> ne::Metric {
                    ne::Metric {
                        metric_id: m.metric_id,
                        name: m.name,
                        metric_type: m.metric_type.into(),
                        resource_type: m.resource_type,
                        namespace_id: m.namespace_id,
                        provider: m.provider,
                        unit: super::super::unit_string(m.unit),
                        query_options: m.query_options,
                        tags: m.tags,
                    }
                }
            }
        }
    };
}
