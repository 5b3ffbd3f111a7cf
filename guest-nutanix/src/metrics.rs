//! Metrics: the monitoring data source (`metric-source` export) over Prism
//! Central's v4 VM stats (`GET /api/vmm/v4.0/ahv/stats/vms/{extId}` with
//! `$startTime`, `$endTime`, `$samplingInterval`, `$statType`, `$select`).
//!
//! - [`METRICS`]: what a VM offers (CPU and memory usage in percent, from
//!   Prism's parts per million; controller IOPS and bandwidth; bytes
//!   received and transmitted per sampling interval).
//! - `list`: every metric for the queried VMs (a JSON object keyed by VM
//!   uuid); each metric's `metric_query` names the same VMs.
//! - `get_data`: one stats call per VM (at most [`MAX_RESOURCES`]), retried
//!   like list pages; the answer's timestamps become the labels, one value
//!   per label and VM (`null` where a VM has none, e.g. powered off).

use crate::collect::{backoff_ms, retry_after_ms};
use crate::config::{Options, Secret};
use crate::{Error, HttpRequest, Method, Transport, TransportError};
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
    pub field: &'static str,
    pub unit: &'static str,
    pub scale: f64,
}

pub const METRICS: &[MetricDef] = &[
    MetricDef { key: "cpu_usage", name: "CPU Usage", group: "CPU", field: "hypervisorCpuUsagePpm", unit: "Percent", scale: 1e-4 },
    MetricDef { key: "memory_usage", name: "Memory Usage", group: "Memory", field: "memoryUsagePpm", unit: "Percent", scale: 1e-4 },
    MetricDef { key: "disk_iops", name: "Disk IOPS", group: "Disk", field: "controllerNumIops", unit: "Count/Second", scale: 1.0 },
    MetricDef {
        key: "disk_bandwidth",
        name: "Disk Bandwidth",
        group: "Disk",
        field: "controllerIoBandwidthKbps",
        unit: "KB/Second",
        scale: 1.0,
    },
    MetricDef {
        key: "network_received",
        name: "Network Received",
        group: "Network",
        field: "hypervisorNumReceivedBytes",
        unit: "Bytes",
        scale: 1.0,
    },
    MetricDef {
        key: "network_transmitted",
        name: "Network Transmitted",
        group: "Network",
        field: "hypervisorNumTransmittedBytes",
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

/// The VM uuids a query names (its keys), checked.
fn resources(query: &str, what: &str) -> Result<Vec<String>, Error> {
    let v: Value = serde_json::from_str(if query.trim().is_empty() { "{}" } else { query })
        .map_err(|e| Error::InvalidArgument(format!("{what} is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| Error::InvalidArgument(format!("{what} must be an object keyed by VM uuid")))?;
    if obj.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} names no VM")));
    }
    if obj.len() > MAX_RESOURCES {
        return Err(Error::InvalidArgument(format!("{what} names {} VMs; at most {MAX_RESOURCES} per call", obj.len())));
    }
    for id in obj.keys() {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::InvalidArgument(format!("{what}: {:?} is not a VM uuid", id.chars().take(70).collect::<String>())));
        }
    }
    Ok(obj.keys().cloned().collect())
}

/// `Metric.list`: every metric for the queried VMs.
pub fn list(options: &str, secret: &str, query: &str) -> Result<Vec<(&'static MetricDef, Value)>, Error> {
    Options::parse(options)?;
    Secret::parse(secret)?;
    let ids = resources(query, "query")?;
    let metric_query: Map<String, Value> = ids.into_iter().map(|id| (id, json!({}))).collect();
    Ok(METRICS.iter().map(|m| (m, Value::Object(metric_query.clone()))).collect())
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
    /// VM uuid → one value per label.
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
    let base = secret.endpoint.base_url();
    let mut per_vm: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for id in &ids {
        let url = format!(
            "{base}/api/vmm/v4.0/ahv/stats/vms/{id}?$startTime={start}&$endTime={end}&$samplingInterval={period}&$statType={stat}&$select=stats/{}",
            def.field
        );
        let body = call_json(t, &opts, &secret, Method::Get, &url, None)?;
        let mut points = BTreeMap::new();
        for s in body.pointer("/data/stats").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(ts), Some(v)) = (s.get("timestamp").and_then(Value::as_str), s.get(def.field).and_then(Value::as_f64)) {
                points.insert(ts.to_string(), v * def.scale);
            }
        }
        per_vm.insert(id.clone(), points);
    }
    let labels: Vec<String> = per_vm.values().flat_map(|p| p.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let values = per_vm.into_iter().map(|(id, p)| (id, labels.iter().map(|l| p.get(l).copied()).collect())).collect();
    Ok(Series { labels, values })
}

/// One call answered with JSON, with the collector's retry policy (429 with
/// `Retry-After`, 5xx, timeouts, connection errors); 404 is an entity or
/// API Prism does not know.
pub(crate) fn call_json<T: Transport>(t: &mut T, opts: &Options, secret: &Secret, method: Method, url: &str, body: Option<Vec<u8>>) -> Result<Value, Error> {
    let base = secret.endpoint.base_url();
    let mut attempt = 0;
    loop {
        let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        let req = HttpRequest {
            method,
            url: url.to_string(),
            headers,
            body: body.clone(),
            timeout_ms: Some(opts.request_timeout_ms),
            auth: Some(secret.auth),
        };
        let (err, wait) = match t.send(req) {
            Err(TransportError::Denied(m)) => return Err(Error::PermissionDenied(format!("egress denied by host policy: {m}"))),
            Err(TransportError::InvalidRequest(m)) => return Err(Error::Internal(format!("host rejected the request: {m}"))),
            Err(TransportError::Tls(m)) => return Err(Error::Unavailable(format!("TLS to {base} failed: {m}"))),
            Err(TransportError::TooLarge(n)) => return Err(Error::ResourceExhausted(format!("answer larger than the host limit of {n} bytes"))),
            Err(TransportError::Timeout) => (Error::Timeout(format!("{base} did not answer within {} ms", opts.request_timeout_ms)), None),
            Err(TransportError::Connection(m)) => (Error::Unavailable(format!("cannot reach {base}: {m}")), None),
            Ok(r) => match r.status {
                200..=299 => match serde_json::from_slice(&r.body) {
                    Ok(v) => return Ok(v),
                    Err(e) => (Error::Unavailable(format!("invalid or truncated JSON from {base}: {e}")), None),
                },
                401 => return Err(Error::Unauthenticated(format!("Prism rejected the credentials: {}", crate::v4::describe_error_body(&r.body)))),
                403 => return Err(Error::PermissionDenied(format!("may not read {}: {}", url.split('?').next().unwrap_or(url), crate::v4::describe_error_body(&r.body)))),
                404 => return Err(Error::NotFound(format!("nothing at {}: {}", url.split('?').next().unwrap_or(url), crate::v4::describe_error_body(&r.body)))),
                429 => (Error::Unavailable("rate limited (HTTP 429)".into()), Some(retry_after_ms(r.header("retry-after")))),
                s if s >= 500 => (Error::Unavailable(format!("HTTP {s}: {}", crate::v4::describe_error_body(&r.body))), None),
                s => return Err(Error::Internal(format!("HTTP {s}: {}", crate::v4::describe_error_body(&r.body)))),
            },
        };
        if attempt >= opts.max_retries {
            return Err(err);
        }
        t.sleep_ms(wait.unwrap_or_else(|| backoff_ms(attempt)));
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpResponse;

    const SECRET: &str = r#"{"host":"pc.example","username":"admin","password":"s3cret"}"#;

    /// Answers every stats call from `answer(url)`; records the URLs.
    struct Stats<F: FnMut(&str) -> Result<HttpResponse, TransportError>> {
        answer: F,
        urls: Vec<String>,
        slept: Vec<u64>,
    }

    impl<F: FnMut(&str) -> Result<HttpResponse, TransportError>> Transport for Stats<F> {
        fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
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

    #[test]
    fn list_offers_every_metric_for_the_queried_vms() {
        let l = list("{}", SECRET, r#"{"vm-1": {}, "vm-2": {}}"#).unwrap();
        assert_eq!(
            l.iter().map(|(m, _)| m.key).collect::<Vec<_>>(),
            ["cpu_usage", "memory_usage", "disk_iops", "disk_bandwidth", "network_received", "network_transmitted"]
        );
        assert_eq!(l[0].1, json!({"vm-1": {}, "vm-2": {}}));
        assert_eq!(unit(l[0].0), json!({"x": "Timestamp", "y": "Percent"}));
        assert!(err(list("{}", SECRET, "{}")).contains("names no VM"));
        assert!(err(list("{}", SECRET, r#"{"../x": {}}"#)).contains("is not a VM uuid"));
        let many: Map<String, Value> = (0..101).map(|i| (format!("vm-{i}"), json!({}))).collect();
        assert!(err(list("{}", SECRET, &Value::Object(many).to_string())).contains("at most 100"));
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
        };
        let s = get_data(&mut t, "{}", SECRET, r#"{"vm-1": {}}"#, "network_received", "2026-11-23T10:00:00Z", "2026-11-23T10:10:00Z", None, None).unwrap();
        assert_eq!(s.values["vm-1"], [Some(4096.0)]);
        assert!(t.urls[0].ends_with("&$select=stats/hypervisorNumReceivedBytes"), "{}", t.urls[0]);
    }

    #[test]
    fn get_data_checks_its_input_and_retries_like_lists() {
        let q = r#"{"vm-1": {}}"#;
        let (a, b) = ("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z");
        let mut never = Stats { answer: |_: &str| panic!("no request expected"), urls: vec![], slept: vec![] };
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
        };
        let s = get_data(&mut flaky, "{}", SECRET, q, "disk_iops", a, b, None, None).unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(flaky.slept, [250, 500]);
        let mut gone = Stats { answer: |_: &str| Ok(HttpResponse { status: 404, headers: vec![], body: vec![] }), urls: vec![], slept: vec![] };
        assert!(matches!(get_data(&mut gone, "{}", SECRET, q, "disk_iops", a, b, None, None), Err(Error::NotFound(_))));
    }
}
