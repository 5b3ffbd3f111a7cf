//! Metrics: the monitoring data source (`metric-source` export) over Prism
//! Central's v4 VM stats (`GET /api/vmm/v4.0/ahv/stats/vms/{extId}` with
//! `$startTime`, `$endTime`, `$samplingInterval`, `$statType`, `$select`).
//!
//! - [`METRICS`]: what a VM offers (CPU and memory usage in percent, from
//!   Prism's parts per million; controller IOPS and bandwidth; bytes
//!   received and transmitted per sampling interval).
//! - `list`: every metric for the queried resources (a JSON object keyed by
//!   VM, host or cluster uuid; hosts and clusters are told apart through the
//!   v4 cluster and host lists); each metric's `metric_query` names the
//!   resources it applies to, with what each is (`{"type": "host",
//!   "cluster": uuid}`, `{"type": "cluster"}`, `{}` for a VM).
//! - hosts and clusters read the clustermgmt stats
//!   (`/api/clustermgmt/v4.0/stats/clusters/{cluster}[/hosts/{host}]`,
//!   each field a list of `{timestamp, value}`); network metrics are VMs' only.
//! - `get_data`: one stats call per VM (at most [`MAX_RESOURCES`]), retried
//!   like list pages; the answer's timestamps become the labels, one value
//!   per label and VM (`null` where a VM has none, e.g. powered off).
//! - each call finds the v4 revision of a namespace (`vmm`, `clustermgmt`)
//!   on its first request there, newest first, as collections do.

use crate::config::{Options, Secret};
use crate::prism::{json_body, CallError, Client, Quiet, Request};
use crate::v4;
use crate::{Error, Transport};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// VMs one `get_data` call may ask for.
pub const MAX_RESOURCES: usize = 100;

/// A metric: key, name, group, v4 stats field, unit, scale of the raw value.
#[derive(Debug)]
pub struct MetricDef {
    pub key: &'static str,
    pub name: &'static str,
    pub group: &'static str,
    /// The v4 VM stats field.
    pub field: &'static str,
    /// The clustermgmt stats field of hosts and clusters, if they have it.
    pub node_field: Option<&'static str>,
    pub unit: &'static str,
    pub scale: f64,
}

pub const METRICS: &[MetricDef] = &[
    MetricDef {
        key: "cpu_usage",
        name: "CPU Usage",
        group: "CPU",
        field: "hypervisorCpuUsagePpm",
        node_field: Some("hypervisorCpuUsagePpm"),
        unit: "Percent",
        scale: 1e-4,
    },
    MetricDef {
        key: "memory_usage",
        name: "Memory Usage",
        group: "Memory",
        field: "memoryUsagePpm",
        node_field: Some("aggregateHypervisorMemoryUsagePpm"),
        unit: "Percent",
        scale: 1e-4,
    },
    MetricDef {
        key: "disk_iops",
        name: "Disk IOPS",
        group: "Disk",
        field: "controllerNumIops",
        node_field: Some("controllerNumIops"),
        unit: "Count/Second",
        scale: 1.0,
    },
    MetricDef {
        key: "disk_bandwidth",
        name: "Disk Bandwidth",
        group: "Disk",
        field: "controllerIoBandwidthKbps",
        node_field: Some("controllerIoBandwidthKbps"),
        unit: "KB/Second",
        scale: 1.0,
    },
    MetricDef {
        key: "network_received",
        name: "Network Received",
        group: "Network",
        field: "hypervisorNumReceivedBytes",
        node_field: None,
        unit: "Bytes",
        scale: 1.0,
    },
    MetricDef {
        key: "network_transmitted",
        name: "Network Transmitted",
        group: "Network",
        field: "hypervisorNumTransmittedBytes",
        node_field: None,
        unit: "Bytes",
        scale: 1.0,
    },
];

/// `DataSource.init`'s metadata.
pub fn init(options: &str) -> Result<Value, Error> {
    Options::parse(options)?;
    Ok(json!({
        "supported_resource_type": ["inventory.CloudService"],
        "supported_stat": ["AVERAGE", "MAX", "MIN", "SUM"],
        "required_keys": ["reference.resource_id"],
    }))
}

/// What a queried id is, which decides its stats endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Vm,
    Host { cluster: String },
    Cluster,
}

impl Target {
    /// The `metric_query` value that names this target again in `get_data`.
    fn hint(&self) -> Value {
        match self {
            Target::Vm => json!({}),
            Target::Host { cluster } => json!({"type": "host", "cluster": cluster}),
            Target::Cluster => json!({"type": "cluster"}),
        }
    }

    /// From a `metric_query` value: `{}` (a VM, as older queries have it),
    /// `{"type": "vm" | "cluster"}` or `{"type": "host", "cluster": uuid}`.
    fn from_hint(v: &Value, id: &str, what: &str) -> Result<Target, Error> {
        let bad = |m: String| Error::InvalidArgument(format!("{what}: the value of {id} {m}"));
        let obj = v.as_object().ok_or_else(|| bad("is not an object".into()))?;
        match obj.get("type").map(|t| t.as_str()) {
            None | Some(Some("vm")) => Ok(Target::Vm),
            Some(Some("cluster")) => Ok(Target::Cluster),
            Some(Some("host")) => {
                let cluster = obj.get("cluster").and_then(Value::as_str).ok_or_else(|| bad("names a host without its cluster".into()))?;
                check_id(cluster, what)?;
                Ok(Target::Host { cluster: cluster.to_string() })
            }
            Some(_) => Err(bad("has a type other than vm, host or cluster".into())),
        }
    }
}

fn check_id(id: &str, what: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::InvalidArgument(format!("{what}: {:?} is not a uuid", id.chars().take(70).collect::<String>())));
    }
    Ok(())
}

/// The ids a query names (its keys) with their values, checked.
fn resources(query: &str, what: &str) -> Result<Map<String, Value>, Error> {
    let v: Value = serde_json::from_str(if query.trim().is_empty() { "{}" } else { query })
        .map_err(|e| Error::InvalidArgument(format!("{what} is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(Error::InvalidArgument(format!("{what} must be an object keyed by VM, host or cluster uuid")));
    };
    if obj.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} names no resource")));
    }
    if obj.len() > MAX_RESOURCES {
        return Err(Error::InvalidArgument(format!("{what} names {} resources; at most {MAX_RESOURCES} per call", obj.len())));
    }
    for id in obj.keys() {
        check_id(id, what)?;
    }
    Ok(obj)
}

const CLUSTERS_PATH: &str = "/api/clustermgmt/v4.0/config/clusters";
const HOSTS_PATH: &str = "/api/clustermgmt/v4.0/config/hosts";

/// The v4 revision each namespace serves, found on its first request of a
/// call, newest first ([`v4::REVISIONS`]: the gateway's 404 moves on to the
/// next), and kept for the rest of the call.
#[derive(Default)]
struct Revisions(BTreeMap<String, &'static str>);

impl Revisions {
    /// `attempt` at `path` (written at `v4.0`) at the namespace's revision.
    fn first<T>(&mut self, path: &str, mut attempt: impl FnMut(&str) -> Result<T, CallError>) -> Result<T, Error> {
        let ns = v4::namespace(path).to_string();
        let candidates: Vec<&'static str> = match self.0.get(&ns) {
            Some(r) => vec![*r],
            None => v4::REVISIONS.to_vec(),
        };
        let mut last = String::new();
        for revision in candidates {
            match attempt(&v4::at_revision(path, revision)) {
                Ok(v) => {
                    self.0.insert(ns, revision);
                    return Ok(v);
                }
                Err(CallError::NotFound { gateway: true, message }) => last = message,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(Error::NotFound(format!("this Prism Central serves {path} at none of {} ({last})", v4::REVISIONS.join(", "))))
    }
}

/// Which of `ids` are clusters or hosts (with their cluster), from the v4
/// cluster and host lists; the rest are VMs.
fn targets<T: Transport>(c: &mut Client<'_, T>, ids: impl Iterator<Item = String>) -> Result<Vec<(String, Target)>, Error> {
    let mut nodes: BTreeMap<String, Target> = BTreeMap::new();
    let mut revisions = Revisions::default();
    for (path, hosts) in [(CLUSTERS_PATH, false), (HOSTS_PATH, true)] {
        for item in revisions.first(path, |at| c.get_all(&mut Quiet, at))? {
            let Some(id) = item.get("extId").and_then(Value::as_str) else { continue };
            let target = if hosts {
                match item.pointer("/cluster/uuid").and_then(Value::as_str) {
                    Some(c) => Target::Host { cluster: c.to_string() },
                    None => continue,
                }
            } else {
                Target::Cluster
            };
            nodes.insert(id.to_string(), target);
        }
    }
    Ok(ids.map(|id| {
        let target = nodes.get(&id).cloned().unwrap_or(Target::Vm);
        (id, target)
    })
    .collect())
}

/// `Metric.list`: every metric for the queried VMs, hosts and clusters
/// (hosts and clusters found in the v4 lists); each metric's `metric_query`
/// names the resources it applies to, with what each one is.
pub fn list<T: Transport>(t: &mut T, options: &str, secret: &str, query: &str) -> Result<Vec<(&'static MetricDef, Value)>, Error> {
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let ids = resources(query, "query")?;
    let targets = targets(&mut Client::new(t, opts, secret), ids.into_iter().map(|(id, _)| id))?;
    Ok(METRICS
        .iter()
        .filter_map(|m| {
            let q: Map<String, Value> =
                targets.iter().filter(|(_, target)| *target == Target::Vm || m.node_field.is_some()).map(|(id, target)| (id.clone(), target.hint())).collect();
            (!q.is_empty()).then_some((m, Value::Object(q)))
        })
        .collect())
}

pub fn unit(m: &MetricDef) -> Value {
    json!({"x": "Timestamp", "y": m.unit})
}

/// An RFC 3339 instant as Prism takes it (`2026-11-23T10:00:00Z`); checked
/// so nothing else reaches the URL.
fn instant(s: &str, what: &str) -> Result<String, Error> {
    let ok = s.len() >= 20
        && s.len() <= 35
        && crate::costs::parse_day(s, what).is_ok()
        && s.as_bytes().get(10) == Some(&b'T')
        && s.chars().all(|c| c.is_ascii_digit() || matches!(c, 'T' | 'Z' | ':' | '-' | '+' | '.'));
    if !ok {
        return Err(Error::InvalidArgument(format!("{what} {:?} is not an RFC 3339 time", s.chars().take(40).collect::<String>())));
    }
    Ok(s.replace('+', "%2B"))
}

fn stat_type(stat: Option<&str>) -> Result<&'static str, Error> {
    match stat.map(str::to_ascii_uppercase).as_deref() {
        None | Some("AVERAGE") | Some("AVG") => Ok("AVG"),
        Some("MAX") => Ok("MAX"),
        Some("MIN") => Ok("MIN"),
        Some("SUM") => Ok("SUM"),
        Some(other) => Err(Error::InvalidArgument(format!("stat {other:?} is not one of AVERAGE, MAX, MIN, SUM"))),
    }
}

/// The answer of `get_data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Vec<String>,
    /// Resource uuid → one value per label.
    pub values: BTreeMap<String, Vec<Option<f64>>>,
}

#[expect(clippy::too_many_arguments, reason = "the WIT function's parameters, one to one")]
pub fn get_data<T: Transport>(
    t: &mut T,
    options: &str,
    secret: &str,
    metric_query: &str,
    metric: &str,
    start: &str,
    end: &str,
    period: Option<u32>,
    stat: Option<&str>,
) -> Result<Series, Error> {
    let opts = Options::parse(options)?;
    let secret = Secret::parse(secret)?;
    let def = METRICS
        .iter()
        .find(|m| m.key == metric)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown metric {metric:?} (known: {})", METRICS.iter().map(|m| m.key).collect::<Vec<_>>().join(", "))))?;
    let ids = resources(metric_query, "metric_query")?;
    let (start, end) = (instant(start, "start")?, instant(end, "end")?);
    let period = period.unwrap_or(300);
    if !(30..=86_400).contains(&period) {
        return Err(Error::InvalidArgument(format!("period {period} is not 30-86400 seconds")));
    }
    let stat = stat_type(stat)?;
    let mut c = Client::new(t, opts, secret);
    let mut revisions = Revisions::default();
    let mut get = |path: &str, query: &str| revisions.first(path, |at| c.call(&mut Quiet, &Request::get(format!("{at}?{query}")), json_body));
    let window = format!("$startTime={start}&$endTime={end}&$samplingInterval={period}&$statType={stat}");
    let mut per_vm: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (id, hint) in &ids {
        let target = Target::from_hint(hint, id, "metric_query")?;
        let mut points = BTreeMap::new();
        if target == Target::Vm {
            let body = get(&format!("/api/vmm/v4.0/ahv/stats/vms/{id}"), &format!("{window}&$select=stats/{}", def.field))?;
            for s in body.pointer("/data/stats").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(ts), Some(v)) = (s.get("timestamp").and_then(Value::as_str), s.get(def.field).and_then(Value::as_f64)) {
                    points.insert(ts.to_string(), v * def.scale);
                }
            }
        } else {
            let field = def.node_field.ok_or_else(|| Error::InvalidArgument(format!("metric {} is offered for VMs only, and {id} is a host or cluster", def.key)))?;
            let path = match &target {
                Target::Host { cluster } => format!("/api/clustermgmt/v4.0/stats/clusters/{cluster}/hosts/{id}"),
                _ => format!("/api/clustermgmt/v4.0/stats/clusters/{id}"),
            };
            let body = get(&path, &format!("{window}&$select={field}"))?;
            // clustermgmt stats: each field a list of {timestamp, value}.
            for s in body.pointer(&format!("/data/{field}")).and_then(Value::as_array).into_iter().flatten() {
                if let (Some(ts), Some(v)) = (s.get("timestamp").and_then(Value::as_str), s.get("value").and_then(Value::as_f64)) {
                    points.insert(ts.to_string(), v * def.scale);
                }
            }
        }
        per_vm.insert(id.clone(), points);
    }
    let labels: Vec<String> = per_vm.values().flat_map(|p| p.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let values = per_vm.into_iter().map(|(id, p)| (id, labels.iter().map(|l| p.get(l).copied()).collect())).collect();
    Ok(Series { labels, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HttpRequest, HttpResponse, TransportError};

    const SECRET: &str = r#"{"host":"pc.example","username":"admin","password":"s3cret"}"#;

    /// A Prism Central serving the v4 revision `REVISION` (`v4.0` unless a
    /// test says otherwise): other revisions get the gateway's 404 (counted
    /// in `probes`); every other call is answered from `answer(url)`, its
    /// URL recorded.
    struct Stats<F: FnMut(&str) -> Result<HttpResponse, TransportError>> {
        answer: F,
        urls: Vec<String>,
        slept: Vec<u64>,
        revision: &'static str,
        probes: Vec<String>,
    }

    impl<F: FnMut(&str) -> Result<HttpResponse, TransportError>> Transport for Stats<F> {
        fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
            if crate::v4::REVISIONS.iter().any(|r| *r != self.revision && req.url.contains(&format!("/{r}/"))) {
                self.probes.push(req.url);
                return Ok(HttpResponse { status: 404, headers: vec![], body: br#"{"message":"The requested URL was not found"}"#.to_vec() });
            }
            self.urls.push(req.url.clone());
            (self.answer)(&req.url)
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
        }
    }

    fn ok(body: Value) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() })
    }

    fn err(r: Result<impl std::fmt::Debug, Error>) -> String {
        match r.unwrap_err() {
            Error::InvalidArgument(m) => m,
            other => panic!("{other:?}"),
        }
    }

    /// A Prism with cluster c-1 and its host h-1 (the lists `targets` reads).
    fn nodes(url: &str) -> Result<HttpResponse, TransportError> {
        if url.contains("/config/clusters?") {
            ok(json!({"data": [{"extId": "c-1", "name": "pe-1"}]}))
        } else if url.contains("/config/hosts?") {
            ok(json!({"data": [{"extId": "h-1", "cluster": {"uuid": "c-1", "name": "pe-1"}}]}))
        } else {
            ok(json!({"data": {"stats": []}}))
        }
    }

    #[test]
    fn list_offers_every_metric_for_the_queried_resources() {
        let mut t = Stats { answer: nodes, urls: vec![], slept: vec![], revision: "v4.0", probes: vec![] };
        let l = list(&mut t, "{}", SECRET, r#"{"vm-1": {}, "vm-2": {}}"#).unwrap();
        assert_eq!(
            l.iter().map(|(m, _)| m.key).collect::<Vec<_>>(),
            ["cpu_usage", "memory_usage", "disk_iops", "disk_bandwidth", "network_received", "network_transmitted"]
        );
        assert_eq!(l[0].1, json!({"vm-1": {}, "vm-2": {}}));
        assert_eq!(unit(l[0].0), json!({"x": "Timestamp", "y": "Percent"}));
        // Hosts and clusters are told apart, and get no network metrics.
        let l = list(&mut t, "{}", SECRET, r#"{"vm-1": {}, "h-1": {}, "c-1": {}}"#).unwrap();
        assert_eq!(l[0].1, json!({"vm-1": {}, "h-1": {"type": "host", "cluster": "c-1"}, "c-1": {"type": "cluster"}}));
        let net = l.iter().find(|(m, _)| m.key == "network_received").unwrap();
        assert_eq!(net.1, json!({"vm-1": {}}));
        let only_nodes = list(&mut t, "{}", SECRET, r#"{"c-1": {}}"#).unwrap();
        assert!(only_nodes.iter().all(|(m, _)| m.node_field.is_some()), "no metric with an empty query");
        assert!(err(list(&mut t, "{}", SECRET, "{}")).contains("names no resource"));
        assert!(err(list(&mut t, "{}", SECRET, r#"{"../x": {}}"#)).contains("is not a uuid"));
        let many: Map<String, Value> = (0..101).map(|i| (format!("vm-{i}"), json!({}))).collect();
        assert!(err(list(&mut t, "{}", SECRET, &Value::Object(many).to_string())).contains("at most 100"));
    }

    #[test]
    fn get_data_reads_host_and_cluster_stats_by_the_query_hint() {
        let mut t = Stats {
            answer: |url: &str| {
                ok(json!({"data": {"aggregateHypervisorMemoryUsagePpm": [
                    {"timestamp": "2026-11-23T10:00:00Z", "value": 500000}, {"timestamp": "2026-11-23T10:05:00Z", "value": 600000}],
                    "extId": if url.contains("/hosts/") { "h-1" } else { "c-1" }}}))
            },
            urls: vec![],
            slept: vec![],
            revision: "v4.0",
            probes: vec![],
        };
        let q = r#"{"h-1": {"type": "host", "cluster": "c-1"}, "c-1": {"type": "cluster"}}"#;
        let s = get_data(&mut t, "{}", SECRET, q, "memory_usage", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None).unwrap();
        assert_eq!(s.values["h-1"], [Some(50.0), Some(60.0)]);
        assert_eq!(s.values["c-1"], [Some(50.0), Some(60.0)]);
        assert!(t.urls.iter().any(|u| u.contains("/api/clustermgmt/v4.0/stats/clusters/c-1/hosts/h-1?") && u.ends_with("&$select=aggregateHypervisorMemoryUsagePpm")), "{:?}", t.urls);
        assert!(t.urls.iter().any(|u| u.contains("/api/clustermgmt/v4.0/stats/clusters/c-1?")), "{:?}", t.urls);
        // Network is VMs' only; bad hints are refused by name.
        assert!(err(get_data(&mut t, "{}", SECRET, q, "network_received", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None)).contains("offered for VMs only"));
        for (bad, says) in [
            (r#"{"h-1": {"type": "host"}}"#, "without its cluster"),
            (r#"{"h-1": {"type": "switch"}}"#, "other than vm, host or cluster"),
            (r#"{"h-1": {"type": "host", "cluster": "../c"}}"#, "is not a uuid"),
            (r#"{"h-1": 7}"#, "is not an object"),
        ] {
            assert!(err(get_data(&mut t, "{}", SECRET, bad, "cpu_usage", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None)).contains(says), "{bad}");
        }
    }

    #[test]
    fn get_data_aligns_the_series_of_every_vm() {
        let mut t = Stats {
            answer: |url: &str| {
                if url.contains("/vm-1?") {
                    ok(json!({"data": {"stats": [
                        {"timestamp": "2026-11-23T10:05:00Z", "hypervisorCpuUsagePpm": 250000},
                        {"timestamp": "2026-11-23T10:00:00Z", "hypervisorCpuUsagePpm": 125000}]}}))
                } else {
                    ok(json!({"data": {"stats": []}}))
                }
            },
            urls: vec![],
            slept: vec![],
            revision: "v4.0",
            probes: vec![],
        };
        let s = get_data(&mut t, "{}", SECRET, r#"{"vm-1": {}, "vm-2": {}}"#, "cpu_usage", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00+01:00", Some(300), Some("max")).unwrap();
        assert_eq!(s.labels, ["2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z"]);
        assert_eq!(s.values["vm-1"], [Some(12.5), Some(25.0)]);
        assert_eq!(s.values["vm-2"], [None, None], "no stats (powered off): nulls");
        assert_eq!(
            t.urls[0],
            "https://pc.example:9440/api/vmm/v4.0/ahv/stats/vms/vm-1?$startTime=2026-11-23T10:00:00Z&$endTime=2026-11-23T10:10:00%2B01:00&$samplingInterval=300&$statType=MAX&$select=stats/hypervisorCpuUsagePpm"
        );
        // Network bytes come unscaled, from their own stats field.
        let mut t = Stats {
            answer: |_: &str| ok(json!({"data": {"stats": [{"timestamp": "2026-11-23T10:00:00Z", "hypervisorNumReceivedBytes": 4096, "hypervisorCpuUsagePpm": 1}]}})),
            urls: vec![],
            slept: vec![],
            revision: "v4.0",
            probes: vec![],
        };
        let s = get_data(&mut t, "{}", SECRET, r#"{"vm-1": {}}"#, "network_received", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None).unwrap();
        assert_eq!(s.values["vm-1"], [Some(4096.0)]);
        assert!(t.urls[0].ends_with("&$select=stats/hypervisorNumReceivedBytes"), "{}", t.urls[0]);
    }

    /// A Prism Central serving v4.1 (not v4.0): stats and lists are read
    /// at v4.1, each namespace probed once a call (newest first).
    #[test]
    fn calls_use_the_revision_each_namespace_serves() {
        let mut t = Stats { answer: nodes, urls: vec![], slept: vec![], revision: "v4.1", probes: vec![] };
        let l = list(&mut t, "{}", SECRET, r#"{"vm-1": {}, "h-1": {}}"#).unwrap();
        assert_eq!(l[0].1, json!({"vm-1": {}, "h-1": {"type": "host", "cluster": "c-1"}}));
        assert_eq!(t.probes.len(), 1, "clustermgmt probed once at v4.2: {:?}", t.probes);
        assert!(t.urls.iter().all(|u| u.contains("/api/clustermgmt/v4.1/")), "{:?}", t.urls);
        let mut t = Stats { answer: |_: &str| ok(json!({"data": {"stats": []}})), urls: vec![], slept: vec![], revision: "v4.1", probes: vec![] };
        get_data(&mut t, "{}", SECRET, r#"{"vm-1": {}, "vm-2": {}}"#, "cpu_usage", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None).unwrap();
        assert_eq!(t.probes, ["https://pc.example:9440/api/vmm/v4.2/ahv/stats/vms/vm-1?$startTime=2026-11-23T10:00:00Z&$endTime=2026-11-23T10:10:00Z&$samplingInterval=300&$statType=AVG&$select=stats/hypervisorCpuUsagePpm"]);
        assert!(t.urls.len() == 2 && t.urls.iter().all(|u| u.contains("/api/vmm/v4.1/ahv/stats/vms/")), "the second VM without a probe: {:?}", t.urls);
        // A Prism Central serving none: not found, saying what was tried.
        let mut t = Stats { answer: |_: &str| ok(json!({})), urls: vec![], slept: vec![], revision: "v9.9", probes: vec![] };
        let e = get_data(&mut t, "{}", SECRET, r#"{"vm-1": {}}"#, "cpu_usage", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None).unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.contains("at none of v4.2, v4.1, v4.0")), "{e:?}");
    }

    #[test]
    fn get_data_checks_its_input_and_retries_like_lists() {
        let q = r#"{"vm-1": {}}"#;
        let (a, b) = ("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z");
        let mut never = Stats { answer: |_: &str| panic!("no request expected"), urls: vec![], slept: vec![], revision: "v4.0", probes: vec![] };
        assert!(err(get_data(&mut never, "{}", SECRET, q, "cpu", a, b, None, None)).contains("unknown metric \"cpu\""));
        assert!(err(get_data(&mut never, "{}", SECRET, q, "cpu_usage", "yesterday", b, None, None)).contains("start \"yesterday\""));
        assert!(err(get_data(&mut never, "{}", SECRET, q, "cpu_usage", a, "2026-11-23T11:00:00Z&x=1", None, None)).contains("end"));
        assert!(err(get_data(&mut never, "{}", SECRET, q, "cpu_usage", a, b, Some(5), None)).contains("period 5"));
        assert!(err(get_data(&mut never, "{}", SECRET, q, "cpu_usage", a, b, None, Some("p99"))).contains("stat \"P99\""));
        let mut calls = 0;
        let mut flaky = Stats {
            answer: |_: &str| {
                calls += 1;
                if calls < 3 { Ok(HttpResponse { status: 503, headers: vec![], body: vec![] }) } else { ok(json!({"data": {"stats": []}})) }
            },
            urls: vec![],
            slept: vec![],
            revision: "v4.0",
            probes: vec![],
        };
        let s = get_data(&mut flaky, "{}", SECRET, q, "disk_iops", a, b, None, None).unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(flaky.slept, [250, 500]);
        let mut gone = Stats { answer: |_: &str| Ok(HttpResponse { status: 404, headers: vec![], body: vec![] }), urls: vec![], slept: vec![], revision: "v4.0", probes: vec![] };
        assert!(matches!(get_data(&mut gone, "{}", SECRET, q, "disk_iops", a, b, None, None), Err(Error::NotFound(_))));
    }
}
