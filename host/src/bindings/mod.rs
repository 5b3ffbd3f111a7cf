//! Generated bindings, one module per supported, mutually incompatible WIT
//! world version, in the manner of Zed's extension host: the current world is
//! `wit/collector.wit` ([`v0_3`], aliased [`current`]); frozen versions live
//! beside it in `wit/v*/` and each has a module here ([`v0_2`] from the
//! frozen 0.2.2, [`v0_1`] from the frozen 0.1.1; each also serves the older
//! guests of its line through wasmtime's semver-compatible lookup), with the
//! `From` conversions of its types to the current ones. Each module holds its
//! version's one `bindgen!`.
//!
//! The host implements the imports once, against [`current`] (in
//! `crate::host`, which also links every version and implements an older
//! version's imports by converting with the `From` conversions here and
//! delegating). [`PluginPre`] and [`Instance`] pick the version a component
//! was built for and present its exports with the current types.
//!
//! This module is a leaf: it names nothing else of the crate. It is generic
//! over the store's data `T`, which the runtime chooses.
//!
//! # Layout
//!
//! - [`v0_3`]: `cloudforet:collector@0.3.x` (current; `cost-source` and
//!   `metric-source` optional).
//! - [`v0_2`]: `cloudforet:collector@0.2.x`: bindings and conversions.
//! - [`v0_1`]: `cloudforet:collector@0.1.x`: bindings and conversions.
//! - `macros`: the conversion macros and each version's `Pre` / `Exports`.

#[macro_use]
mod macros;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

pub use v0_3 as current;

use current::exports::cloudforet::collector::collector as cur;
use current::exports::cloudforet::collector::cost_source as cost;
use current::exports::cloudforet::collector::metric_source as metric;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// Name of the exported instance every collector has, without its version.
const COLLECTOR_EXPORT: &str = "cloudforet:collector/collector@";

/// World lines this host serves, oldest first.
pub const SUPPORTED: &[&str] = &["0.1", "0.2", "0.3"];

/// A metric unit as CloudForet takes it, from the JSON text older worlds
/// sent: a JSON string is that string; an object (`{"x": .., "y": ..}`)
/// gives its `y` (the measured value's unit), else its `x`, else its first
/// string; anything else stays as written.
pub fn unit_string(json: String) -> String {
    fn text(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(m) => m.get("y").or_else(|| m.get("x")).or_else(|| m.values().find(|v| v.is_string())).and_then(text),
            _ => None,
        }
    }
    serde_json::from_str(&json).ok().as_ref().and_then(text).unwrap_or(json)
}

/// A list converted element by element.
pub struct List<B>(pub Vec<B>);

impl<A, B: From<A>> From<Vec<A>> for List<B> {
    fn from(v: Vec<A>) -> List<B> {
        List(v.into_iter().map(Into::into).collect())
    }
}

/// A component linked for the world version it was built against.
pub enum PluginPre<T: 'static> {
    V0_1(v0_1::PluginPre<T>),
    V0_2(v0_2::Pre<T>),
    V0_3(v0_3::Pre<T>),
}

impl<T: 'static> Clone for PluginPre<T> {
    fn clone(&self) -> Self {
        match self {
            PluginPre::V0_1(p) => PluginPre::V0_1(p.clone()),
            PluginPre::V0_2(p) => PluginPre::V0_2(p.clone()),
            PluginPre::V0_3(p) => PluginPre::V0_3(p.clone()),
        }
    }
}

/// Why a component cannot be linked as a collector.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// It exports no `cloudforet:collector/collector`, or one whose version
    /// is not semver.
    #[error("{0}")]
    NotACollector(String),
    /// Built for a world line this host does not serve.
    #[error("it is built for world cloudforet:collector@{world}; this host supports {}", SUPPORTED.iter().map(|s| format!("{s}.x")).collect::<Vec<_>>().join(", "))]
    Unsupported { world: semver::Version },
    /// wasmtime refused to link it (missing imports, wrong types).
    #[error(transparent)]
    Link(wasmtime::Error),
}

/// A running instance, its exports presented with the current types.
pub enum Instance {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Exports),
    V0_3(v0_3::Exports),
}

/// The version of `cloudforet:collector/collector` a component exports.
pub fn exported_world(engine: &Engine, component: &Component) -> Result<semver::Version, LinkError> {
    let name = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .find(|n| n.starts_with(COLLECTOR_EXPORT))
        .ok_or_else(|| LinkError::NotACollector(format!("it does not export {COLLECTOR_EXPORT}<version> (not a CloudForet collector component)")))?;
    let v = &name[COLLECTOR_EXPORT.len()..];
    semver::Version::parse(v).map_err(|e| LinkError::NotACollector(format!("it exports {name}, whose version is not semver: {e}")))
}

impl<T: Send + 'static> PluginPre<T> {
    /// Links `component` for its world version.
    pub fn new(engine: &Engine, linker: &Linker<T>, component: &Component) -> Result<(PluginPre<T>, semver::Version), LinkError> {
        let world = exported_world(engine, component)?;
        let line = format!("{}.{}", world.major, world.minor);
        if world.major != 0 || !SUPPORTED.contains(&line.as_str()) {
            return Err(LinkError::Unsupported { world });
        }
        let pre = linker.instantiate_pre(component).map_err(LinkError::Link)?;
        let pre = match line.as_str() {
            "0.1" => PluginPre::V0_1(v0_1::PluginPre::new(pre).map_err(LinkError::Link)?),
            "0.2" => PluginPre::V0_2(v0_2::Pre::new(pre).map_err(LinkError::Link)?),
            "0.3" => PluginPre::V0_3(v0_3::Pre::new(pre).map_err(LinkError::Link)?),
            _ => return Err(LinkError::Unsupported { world }),
        };
        Ok((pre, world))
    }

    /// Whether the component also exports `cost-source` (0.2.1 and later).
    pub fn is_cost_source(&self) -> bool {
        match self {
            PluginPre::V0_1(_) => false,
            PluginPre::V0_2(p) => p.is_cost_source(),
            PluginPre::V0_3(p) => p.is_cost_source(),
        }
    }

    /// Whether the component also exports `metric-source` (0.2.2 and later).
    pub fn is_metric_source(&self) -> bool {
        match self {
            PluginPre::V0_1(_) => false,
            PluginPre::V0_2(p) => p.is_metric_source(),
            PluginPre::V0_3(p) => p.is_metric_source(),
        }
    }

    pub async fn instantiate_async(&self, store: &mut Store<T>) -> wasmtime::Result<Instance> {
        Ok(match self {
            PluginPre::V0_1(p) => Instance::V0_1(p.instantiate_async(store).await?),
            PluginPre::V0_2(p) => Instance::V0_2(p.instantiate_async(store).await?),
            PluginPre::V0_3(p) => Instance::V0_3(p.instantiate_async(store).await?),
        })
    }
}

type Call<T> = wasmtime::Result<Result<T, cur::CollectorError>>;

/// An older version's answer with the current types.
fn up<A, B: From<A>, E>(r: wasmtime::Result<Result<A, E>>) -> Call<B>
where
    cur::CollectorError: From<E>,
{
    r.map(|r| r.map(B::from).map_err(cur::CollectorError::from))
}

impl Instance {
    pub async fn init<T: Send>(&self, store: &mut Store<T>, options: &String) -> Call<cur::PluginMetadata> {
        match self {
            Instance::V0_1(b) => up(b.cloudforet_collector_collector().call_init(store, options).await),
            Instance::V0_2(b) => up(b.collector.call_init(store, options).await),
            Instance::V0_3(b) => b.collector.call_init(store, options).await,
        }
    }

    pub async fn verify<T: Send>(&self, store: &mut Store<T>, options: &String, secret: &String) -> Call<()> {
        match self {
            Instance::V0_1(b) => up(b.cloudforet_collector_collector().call_verify(store, options, secret).await),
            Instance::V0_2(b) => up(b.collector.call_verify(store, options, secret).await),
            Instance::V0_3(b) => b.collector.call_verify(store, options, secret).await,
        }
    }

    pub async fn get_tasks<T: Send>(&self, store: &mut Store<T>, options: &String, secret: &String) -> Call<Vec<cur::Task>> {
        match self {
            Instance::V0_1(b) => up::<Vec<_>, List<_>, _>(b.cloudforet_collector_collector().call_get_tasks(store, options, secret).await).map(|r| r.map(|t| t.0)),
            Instance::V0_2(b) => up::<Vec<_>, List<_>, _>(b.collector.call_get_tasks(store, options, secret).await).map(|r| r.map(|t| t.0)),
            Instance::V0_3(b) => b.collector.call_get_tasks(store, options, secret).await,
        }
    }

    pub async fn collect<T: Send>(&self, store: &mut Store<T>, options: &String, secret: &String, task: &String) -> Call<cur::Summary> {
        match self {
            Instance::V0_1(b) => up(b.cloudforet_collector_collector().call_collect(store, options, secret, task).await),
            Instance::V0_2(b) => up(b.collector.call_collect(store, options, secret, task).await),
            Instance::V0_3(b) => b.collector.call_collect(store, options, secret, task).await,
        }
    }

    /// `cost-source.init`; `None` when the component is no cost data source.
    pub async fn cost_init<T: Send>(&self, store: &mut Store<T>, options: &String) -> Option<Call<String>> {
        Some(match self {
            Instance::V0_3(b) => match b.cost_source(store)? {
                Ok(g) => g.call_init(store, options).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.cost_source(store)? {
                Ok(g) => up(g.call_init(store, options).await),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }

    pub async fn cost_tasks<T: Send>(
        &self,
        store: &mut Store<T>,
        options: &String,
        secret: &String,
        start: Option<&str>,
        last_synchronized_at: Option<&str>,
    ) -> Option<Call<Vec<cost::CostTask>>> {
        Some(match self {
            Instance::V0_3(b) => match b.cost_source(store)? {
                Ok(g) => g.call_get_tasks(store, options, secret, start, last_synchronized_at).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.cost_source(store)? {
                Ok(g) => up::<Vec<_>, List<_>, _>(g.call_get_tasks(store, options, secret, start, last_synchronized_at).await).map(|r| r.map(|l| l.0)),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }

    pub async fn cost_data<T: Send>(&self, store: &mut Store<T>, options: &String, secret: &String, task: &String) -> Option<Call<u64>> {
        Some(match self {
            Instance::V0_3(b) => match b.cost_source(store)? {
                Ok(g) => g.call_get_data(store, options, secret, task).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.cost_source(store)? {
                Ok(g) => up(g.call_get_data(store, options, secret, task).await),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }

    /// `metric-source.init`; `None` when the component is no monitoring data source.
    pub async fn metric_init<T: Send>(&self, store: &mut Store<T>, options: &String) -> Option<Call<String>> {
        Some(match self {
            Instance::V0_3(b) => match b.metric_source(store)? {
                Ok(g) => g.call_init(store, options).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.metric_source(store)? {
                Ok(g) => up(g.call_init(store, options).await),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }

    pub async fn metric_list<T: Send>(&self, store: &mut Store<T>, options: &String, secret: &String, query: &String) -> Option<Call<Vec<metric::MetricInfo>>> {
        Some(match self {
            Instance::V0_3(b) => match b.metric_source(store)? {
                Ok(g) => g.call_list_metrics(store, options, secret, query).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.metric_source(store)? {
                Ok(g) => up::<Vec<_>, List<_>, _>(g.call_list_metrics(store, options, secret, query).await).map(|r| r.map(|l| l.0)),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }

    #[expect(clippy::too_many_arguments, reason = "the WIT function's parameters, one to one")]
    pub async fn metric_data<T: Send>(
        &self,
        store: &mut Store<T>,
        options: &String,
        secret: &String,
        query: &String,
        metric: &str,
        start: &str,
        end: &str,
        period: Option<u32>,
        stat: Option<&str>,
    ) -> Option<Call<metric::MetricData>> {
        Some(match self {
            Instance::V0_3(b) => match b.metric_source(store)? {
                Ok(g) => g.call_get_data(store, options, secret, query, metric, start, end, period, stat).await,
                Err(e) => Err(e),
            },
            Instance::V0_2(b) => match b.metric_source(store)? {
                Ok(g) => up(g.call_get_data(store, options, secret, query, metric, start, end, period, stat).await),
                Err(e) => Err(e),
            },
            Instance::V0_1(_) => return None,
        })
    }
}
