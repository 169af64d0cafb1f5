//! Prometheus metrics: names in one place, bounded label sets, text exposition.
//!
//! Labels are deployment names (from config), API names and closed outcome enums, never
//! free text. Names follow `switchyard_<name>_<unit>[_total]`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

pub const REQUESTS_TOTAL: &str = "switchyard_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "switchyard_request_duration_seconds";
pub const ATTEMPTS_TOTAL: &str = "switchyard_upstream_attempts_total";
pub const FAILOVERS_TOTAL: &str = "switchyard_failovers_total";
pub const CONTINUATIONS_TOTAL: &str = "switchyard_stream_continuations_total";
pub const MALFORMED_EVENTS_TOTAL: &str = "switchyard_upstream_malformed_events_total";
pub const TOKENS_TOTAL: &str = "switchyard_tokens_total";
pub const SPEND_DOLLARS_TOTAL: &str = "switchyard_spend_dollars_total";
pub const DEPLOYMENT_EJECTED: &str = "switchyard_deployment_ejected";
pub const DEPLOYMENT_IN_FLIGHT: &str = "switchyard_deployment_in_flight";

const HELP: &[(&str, &str, &str)] = &[
    (REQUESTS_TOTAL, "counter", "Requests by API and outcome."),
    (REQUEST_DURATION_SECONDS, "histogram", "Time from request to the end of the response."),
    (ATTEMPTS_TOTAL, "counter", "Upstream attempts by deployment and result."),
    (FAILOVERS_TOTAL, "counter", "Requests answered after at least one failed attempt."),
    (CONTINUATIONS_TOTAL, "counter", "Interrupted streams continued elsewhere, by result."),
    (MALFORMED_EVENTS_TOTAL, "counter", "Unparseable upstream stream events skipped."),
    (TOKENS_TOTAL, "counter", "Tokens by deployment and direction."),
    (SPEND_DOLLARS_TOTAL, "counter", "List-price spend by deployment and cloud."),
    (DEPLOYMENT_EJECTED, "gauge", "1 while a deployment is ejected by outlier detection."),
    (DEPLOYMENT_IN_FLIGHT, "gauge", "Attempts in flight per deployment."),
];

const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, Labels), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        if let Ok(mut values) = self.values.lock() {
            *values.entry((name, labels(pairs))).or_insert(0.0) += value;
        }
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        if let Ok(mut histograms) = self.histograms.lock() {
            let h = histograms.entry((name, labels(pairs))).or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            let v = value.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if v <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += v;
            h.count += 1;
        }
    }

    /// The value of one series, for tests.
    pub fn get(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> f64 {
        self.values.lock().ok().and_then(|v| v.get(&(name, labels(pairs))).copied()).unwrap_or(0.0)
    }

    /// Prometheus text exposition; `gauges` are point-in-time series added by the caller.
    pub fn render(&self, gauges: &[(&'static str, Labels, f64)]) -> String {
        let mut out = String::new();
        let values =
            self.values.lock().map(|v| v.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()).unwrap_or_default();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in values.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
            }
            for (n, l, v) in gauges.iter().filter(|(n, _, _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
            }
            if let Ok(histograms) = self.histograms.lock() {
                for ((n, l), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                    for (i, b) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(out, "{n}_bucket{} {}", fmt_labels(l, Some(&b.to_string())), h.counts[i]);
                    }
                    let _ = writeln!(out, "{n}_bucket{} {}", fmt_labels(l, Some("+Inf")), h.count);
                    let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(l, None), h.sum);
                    let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count);
                }
            }
        }
        out
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
