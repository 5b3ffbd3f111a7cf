//! Prometheus metrics of the host, in the text exposition format
//! (`cf-host serve --metrics-bind`, `GET /metrics`).
//!
//! - `cf_host_runs_total{call,plugin,outcome}`: finished calls; `outcome` is
//!   `ok` or the gRPC code name of the error.
//! - `cf_host_run_seconds_sum` / `_count{call}`: call durations.
//! - `cf_host_records_total{resource_type}`: records emitted.
//! - `cf_host_http_requests_total{status}`: guest HTTP requests by status
//!   class (`2xx`, ..., `error`, `denied`, `circuit_open`, `refused`: in a
//!   `send-many` or `start-many` batch over the host's cap; `aborted`: in a
//!   `start-many` batch dropped, or left pending at the run's end, before
//!   its answer came, whether cut off in flight or never sent; a request
//!   of such a batch answered before counts by its answer).
//! - `cf_host_limit_hits_total{limit}`: runs ended by a host limit (the
//!   request budget included).
//! - `cf_host_stream_stalls_total`: streams cancelled because the client
//!   read nothing.
//! - `cf_host_sandboxes_active`: sandboxes alive now.
//! - `cf_host_plugin_live{plugin,version}`: 1 for each live plugin version
//!   (from the registry, when served).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

/// An extra series: name, labels, value.
pub type Series = (String, Labels, f64);

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), f64>>,
    active: AtomicI64,
    started: std::sync::atomic::AtomicU64,
}

impl Metrics {
    pub fn add(&self, name: &'static str, labels: Labels, v: f64) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((name, labels)).or_insert(0.0) += v;
    }

    /// Counts one active sandbox until the guard is dropped.
    pub fn sandbox_guard(&self) -> ActiveSandbox<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        ActiveSandbox(&self.active)
    }

    /// Sandboxes started since the process started.
    pub fn runs_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Sandboxes running right now.
    pub fn active_sandboxes(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }

    /// A counter's value (tests and the bench).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter()
            .filter(|((n, l), _)| *n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|(_, v)| *v)
            .sum()
    }

    /// The exposition text; `extra` lines (e.g. live versions) are appended.
    pub fn render(&self, extra: &[Series]) -> String {
        let mut out = String::new();
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, labels), v) in c.iter() {
            if *name != last {
                let kind = if name.ends_with("_total") || name.ends_with("_sum") || name.ends_with("_count") { "counter" } else { "gauge" };
                let _ = writeln!(out, "# TYPE {name} {kind}");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", render_labels(labels));
        }
        let _ = writeln!(out, "# TYPE cf_host_sandboxes_active gauge");
        let _ = writeln!(out, "cf_host_sandboxes_active {}", self.active.load(Ordering::Relaxed));
        if !extra.is_empty() {
            let _ = writeln!(out, "# TYPE cf_host_plugin_live gauge");
        }
        for (name, labels, v) in extra {
            let _ = writeln!(out, "{name}{} {v}", render_labels(labels));
        }
        out
    }
}

fn render_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// One running sandbox, counted while it lives.
pub struct ActiveSandbox<'a>(&'a AtomicI64);

impl Drop for ActiveSandbox<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let m = Metrics::default();
        m.add("cf_host_runs_total", vec![("call", "collect".into()), ("outcome", "ok".into())], 1.0);
        m.add("cf_host_runs_total", vec![("call", "collect".into()), ("outcome", "ok".into())], 1.0);
        m.add("cf_host_records_total", vec![("resource_type", "inventory.\"Region\"".into())], 3.0);
        let active = m.sandbox_guard();
        let text = m.render(&[("cf_host_plugin_live".into(), vec![("plugin", "nutanix".into())], 1.0)]);
        assert!(text.contains("# TYPE cf_host_runs_total counter\ncf_host_runs_total{call=\"collect\",outcome=\"ok\"} 2\n"), "{text}");
        assert!(text.contains(r#"cf_host_records_total{resource_type="inventory.\"Region\""} 3"#), "{text}");
        assert!(text.contains("cf_host_sandboxes_active 1"));
        assert!(text.contains("cf_host_plugin_live{plugin=\"nutanix\"} 1"));
        assert_eq!(m.get("cf_host_runs_total", &[("outcome", "ok")]), 2.0);
        drop(active);
        assert_eq!(m.active_sandboxes(), 0);
    }
}

