//! Prometheus metrics for serving: per deployment, route and version, request and error
//! counters and a latency histogram, updated with atomics on the hot path; plus the prediction
//! log's queue depth and drops. Rendered in the text exposition format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Counters of one (deployment, route, model, version).
#[derive(Debug)]
pub struct RouteStats {
    pub deployment: String,
    pub route: &'static str,
    pub model: String,
    pub version: i64,
    requests: AtomicU64,
    bad_input: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_ns: AtomicU64,
    /// When the stats were made (stats of a route gone are dropped a while after).
    born: std::time::Instant,
}

impl RouteStats {
    pub fn observe(&self, seconds: f64) {
        self.requests.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add((seconds * 1e9) as u64, Relaxed);
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }

    pub fn bad_input(&self) {
        self.bad_input.fetch_add(1, Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
}

/// A route's counters at one moment; differences of two give what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    pub failures: u64,
    pub buckets: [u64; BUCKETS.len()],
}

impl Snapshot {
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut buckets = self.buckets;
        buckets.iter_mut().zip(&earlier.buckets).for_each(|(b, e)| *b = b.saturating_sub(*e));
        Snapshot { requests: self.requests.saturating_sub(earlier.requests), failures: self.failures.saturating_sub(earlier.failures), buckets }
    }

    /// The upper bound of the latency bucket holding the 95th percentile, in milliseconds (as
    /// Prometheus' histogram_quantile would bound it); 0 without requests.
    pub fn p95_ms(&self) -> f64 {
        let rank = (self.requests as f64 * 0.95).ceil() as u64;
        let mut seen = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            seen += n;
            if seen >= rank && rank > 0 {
                return b * 1000.0;
            }
        }
        if self.requests == 0 { 0.0 } else { BUCKETS[BUCKETS.len() - 1] * 1000.0 }
    }
}

impl RouteStats {
    pub fn snapshot(&self) -> Snapshot {
        let mut buckets = [0; BUCKETS.len()];
        buckets.iter_mut().zip(&self.buckets).for_each(|(b, a)| *b = a.load(Relaxed));
        Snapshot { requests: self.requests.load(Relaxed), failures: self.bad_input.load(Relaxed) + self.errors.load(Relaxed), buckets }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<Vec<Arc<RouteStats>>>,
    pub unknown_deployment: AtomicU64,
    /// Scoring requests refused because every turn was taken and the queue was full.
    pub overloaded: AtomicU64,
    pub log_dropped: AtomicU64,
    pub log_written: AtomicU64,
    pub log_failed: AtomicU64,
}

impl Metrics {
    /// The stats of a route, created on first use (when a version is loaded, not per request).
    pub fn route(&self, deployment: &str, route: &'static str, model: &str, version: i64) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().expect("metrics lock");
        if let Some(r) = routes.iter().find(|r| r.deployment == deployment && r.route == route && r.model == model && r.version == version) {
            return r.clone();
        }
        let r = Arc::new(RouteStats {
            deployment: deployment.to_owned(),
            route,
            model: model.to_owned(),
            version,
            requests: AtomicU64::new(0),
            bad_input: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: Default::default(),
            sum_ns: AtomicU64::new(0),
            born: std::time::Instant::now(),
        });
        routes.push(r.clone());
        r
    }

    /// Registers stats a route being installed counts into, if a resync dropped them meanwhile.
    pub fn keep(&self, stats: &Arc<RouteStats>) {
        let mut routes = self.routes.lock().expect("metrics lock");
        if !routes.iter().any(|r| Arc::ptr_eq(r, stats)) {
            routes.push(stats.clone());
        }
    }

    /// Drops the stats of routes that are not `live` and were made more than a minute ago (a
    /// route is made when its version loads, shortly before it is installed).
    pub fn retain_routes(&self, live: impl Fn(&Arc<RouteStats>) -> bool) {
        self.routes.lock().expect("metrics lock").retain(|r| live(r) || r.born.elapsed() < std::time::Duration::from_secs(60));
    }

    /// Per deployment, its (answered, failed) request totals, shadows left out.
    pub fn counters(&self) -> std::collections::HashMap<String, (u64, u64)> {
        let mut out: std::collections::HashMap<String, (u64, u64)> = Default::default();
        for r in self.routes.lock().expect("metrics lock").iter().filter(|r| r.route != "shadow") {
            let c = out.entry(r.deployment.clone()).or_default();
            c.0 += r.requests.load(Relaxed);
            c.1 += r.bad_input.load(Relaxed) + r.errors.load(Relaxed);
        }
        out
    }

    pub fn render(&self, queue_depth: usize, queue_capacity: usize) -> String {
        let routes = self.routes.lock().expect("metrics lock").clone();
        let mut out = String::with_capacity(4096);
        let labels = |r: &RouteStats| format!("deployment=\"{}\",route=\"{}\",model=\"{}\",version=\"{}\"", esc(&r.deployment), r.route, esc(&r.model), r.version);
        out.push_str("# HELP steward_requests_total Inference requests answered, per deployment route and model version.\n# TYPE steward_requests_total counter\n");
        for r in &routes {
            let _ = writeln!(out, "steward_requests_total{{{}}} {}", labels(r), r.requests.load(Relaxed));
        }
        out.push_str("# HELP steward_request_errors_total Inference requests that failed: kind=\"bad_input\" (4xx) or \"internal\" (5xx).\n# TYPE steward_request_errors_total counter\n");
        for r in &routes {
            let _ = writeln!(out, "steward_request_errors_total{{{},kind=\"bad_input\"}} {}", labels(r), r.bad_input.load(Relaxed));
            let _ = writeln!(out, "steward_request_errors_total{{{},kind=\"internal\"}} {}", labels(r), r.errors.load(Relaxed));
        }
        out.push_str("# HELP steward_request_duration_seconds Model evaluation latency of answered requests.\n# TYPE steward_request_duration_seconds histogram\n");
        for r in &routes {
            let l = labels(r);
            let mut cumulative = 0;
            for (b, c) in BUCKETS.iter().zip(&r.buckets) {
                cumulative += c.load(Relaxed);
                let _ = writeln!(out, "steward_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}");
            }
            let total = r.requests.load(Relaxed);
            let _ = writeln!(out, "steward_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {total}");
            let _ = writeln!(out, "steward_request_duration_seconds_sum{{{l}}} {}", r.sum_ns.load(Relaxed) as f64 / 1e9);
            let _ = writeln!(out, "steward_request_duration_seconds_count{{{l}}} {total}");
        }
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
        };
        gauge(&mut out, "steward_unknown_deployment_requests_total", "counter", "Inference requests naming no deployment.", self.unknown_deployment.load(Relaxed));
        gauge(&mut out, "steward_scoring_overloaded_total", "counter", "Scoring requests refused with 503: every turn taken and the queue full.", self.overloaded.load(Relaxed));
        gauge(&mut out, "steward_prediction_log_queue_depth", "gauge", "Prediction records waiting to be written.", queue_depth as u64);
        gauge(&mut out, "steward_prediction_log_queue_capacity", "gauge", "Bound of the prediction log queue.", queue_capacity as u64);
        gauge(&mut out, "steward_prediction_log_dropped_total", "counter", "Prediction records dropped because the queue was full.", self.log_dropped.load(Relaxed));
        gauge(&mut out, "steward_prediction_log_written_total", "counter", "Prediction records written to the store.", self.log_written.load(Relaxed));
        gauge(&mut out, "steward_prediction_log_failed_total", "counter", "Prediction records lost to store errors.", self.log_failed.load(Relaxed));
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
