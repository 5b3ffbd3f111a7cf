//! The collector as the SDK sees it: [`Nutanix`] implements the SDK's
//! `Collector`, `CostSource` and `MetricSource` by delegating to the
//! modules of this crate; `export!` makes it the component's export and
//! names it `nutanix` in the registry. No logic lives here.

use crate::{collect, costs, metrics, Error};
use cloudforet_collector::{export, Collector, CostSource, CostTask, Io, Metadata, MetricData, MetricInfo, MetricQuery, MetricSource, Summary, Transport};
use serde_json::Value;

pub struct Nutanix;

impl Collector for Nutanix {
    fn init(options: &str) -> Result<Metadata, Error> {
        collect::init(options)
    }

    fn verify(io: &mut Io<'_>, options: &str, secret: &str) -> Result<(), Error> {
        collect::verify(&mut io.http, &mut io.sink, options, secret)
    }

    fn get_tasks(options: &str, secret: &str) -> Result<Vec<Value>, Error> {
        collect::get_tasks(options, secret)
    }

    fn collect(io: &mut Io<'_>, options: &str, secret: &str, task_options: &str) -> Result<Summary, Error> {
        collect::collect(&mut io.http, &mut io.sink, &mut io.state, options, secret, task_options)
    }
}

impl CostSource for Nutanix {
    fn init(options: &str) -> Result<Value, Error> {
        costs::init(options)
    }

    fn get_tasks(options: &str, _secret: &str, start: Option<&str>, last_synchronized_at: Option<&str>) -> Result<Vec<CostTask>, Error> {
        let tasks = costs::get_tasks(options, start, last_synchronized_at, today())?;
        Ok(tasks.into_iter().map(|t| CostTask { options: t.options(), changed: Some((t.billed_date.clone(), Some(t.billed_date))) }).collect())
    }

    fn get_data(io: &mut Io<'_>, options: &str, secret: &str, task_options: &str) -> Result<u64, Error> {
        collect::cost_data(&mut io.http, &mut io.sink, options, secret, task_options).map(|s| s.emitted)
    }
}

impl MetricSource for Nutanix {
    fn init(options: &str) -> Result<Value, Error> {
        metrics::init(options)
    }

    fn list_metrics(mut http: &mut dyn Transport, options: &str, secret: &str, query: &str) -> Result<Vec<MetricInfo>, Error> {
        let list = metrics::list(&mut http, options, secret, query)?;
        Ok(list
            .into_iter()
            .map(|(m, q)| MetricInfo { key: m.key.to_string(), name: m.name.to_string(), group: m.group.to_string(), unit: metrics::unit(m), metric_query: q })
            .collect())
    }

    fn get_data(mut http: &mut dyn Transport, options: &str, secret: &str, q: MetricQuery<'_>) -> Result<MetricData, Error> {
        let s = metrics::get_data(&mut http, options, secret, q.metric_query, q.metric, q.start, q.end, q.period, q.stat)?;
        Ok(MetricData { labels: s.labels, values: serde_json::to_value(&s.values).unwrap_or_else(|_| Value::Object(Default::default())) })
    }
}

/// Today (UTC) from the host's wall clock.
fn today() -> costs::Day {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs / 86_400) as costs::Day
}

export!(Nutanix, name = "nutanix");

#[cfg(test)]
mod tests {
    use super::*;
    use cloudforet_collector::testing::{MemState, MockHttp, VecSink};
    use cloudforet_collector::{HttpResponse, Record};

    const SECRET: &str = r#"{"host":"pc.example","username":"admin","password":"s3cret"}"#;

    /// The SDK's calls reach the collection: a Prism that rejects the
    /// credentials fails `collect` with the typed error and emits nothing
    /// but what went before; `init` answers the inventory metadata.
    #[test]
    fn the_sdk_calls_reach_the_collector() {
        let m = <Nutanix as Collector>::init("{}").unwrap();
        assert!(m.supported_resource_types.iter().any(|t| t == "inventory.CloudService"));
        let mut http = MockHttp::route(|_| Ok(HttpResponse { status: 401, headers: vec![], body: br#"{"message": "no"}"#.to_vec() }));
        let (mut sink, mut state) = (VecSink::default(), MemState::default());
        let mut io = Io { http: &mut http, sink: &mut sink, state: &mut state };
        let e = <Nutanix as Collector>::collect(&mut io, "{}", SECRET, "{}").unwrap_err();
        assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
        assert!(!http.sent.is_empty() && http.sent.iter().all(|r| r.auth == Some(cloudforet_collector::Credential::Basic)));
        assert!(!sink.records.iter().any(|r| matches!(r, Record::CloudService(_))));
        let tasks = <Nutanix as CostSource>::get_tasks(r#"{"rate_card": {"vcpu_hour": 0.01, "memory_gib_hour": 0.005, "disk_gib_month": 0.1}}"#, SECRET, Some("2026-11-01"), None).unwrap();
        assert!(!tasks.is_empty());
        assert!(tasks.iter().all(|t| t.changed.as_ref().is_some_and(|(s, e)| Some(s) == e.as_ref())), "one day per task");
    }
}
