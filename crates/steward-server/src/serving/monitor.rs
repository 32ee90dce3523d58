//! Monitors: each deployment with a monitor has its answered predictions judged in windows of a
//! fixed number of rows against the reference profile — per-feature drift (Evidently's tests),
//! missing shares, dataset drift, latency — stored as time series; a dataset drift raises an
//! alert, delivered to the monitor's webhook (Slack-compatible) with retries and backoff.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::serving::{Alert, MonitorMetric, PredictionRecord};
use steward_core::{Error, Result};
use steward_stats::drift::{self, ColumnType, DriftOptions, StatTest, Values};
use steward_stats::profile::Profile;
use steward_store::MetadataStore;

/// How often monitors look for complete windows.
pub const TICK: Duration = Duration::from_millis(500);
const WEBHOOK_ATTEMPTS: i64 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorSpec {
    /// The reference profile (`steward data profile`): feature names, types and samples.
    pub reference: Profile,
    /// Logged predictions (one per answered request, whatever its row count) per window.
    pub window_size: usize,
    #[serde(default = "default_share")]
    pub drift_share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stattest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

fn default_share() -> f64 {
    0.5
}

impl MonitorSpec {
    pub fn parse(v: Value) -> Result<Self> {
        let spec: MonitorSpec = serde_json::from_value(v).map_err(|e| Error::invalid(format!("monitor spec: {e}")))?;
        if spec.window_size < 10 {
            return Err(Error::invalid(format!("window_size must be at least 10 predictions, got {}", spec.window_size)));
        }
        if spec.reference.columns.is_empty() {
            return Err(Error::invalid("the reference profile has no columns"));
        }
        if !(0.0..=1.0).contains(&spec.drift_share) {
            return Err(Error::invalid(format!("drift_share must be within 0..1, got {}", spec.drift_share)));
        }
        if let Some(t) = &spec.stattest {
            StatTest::parse(t).map_err(|e| Error::invalid(e.to_string()))?;
        }
        if let Some(url) = &spec.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::invalid(format!("webhook_url must be an http(s) URL, got '{url}'")));
        }
        Ok(spec)
    }

    fn options(&self) -> DriftOptions {
        DriftOptions { stattest: self.stattest.as_deref().and_then(|t| StatTest::parse(t).ok()), threshold: self.threshold, drift_share: Some(self.drift_share) }
    }
}

/// One feature's values in a window: numbers (NaN missing) or labels (`None` missing).
enum Column {
    Numbers(Vec<f64>),
    Labels(Vec<Option<String>>),
}

/// Pulls the profile's features out of logged inputs: an input named like the feature, or
/// column j of a single `[rows, k]` input for the profile's j-th feature.
fn features(spec: &MonitorSpec, records: &[PredictionRecord]) -> Vec<Column> {
    let cols = &spec.reference.columns;
    let mut out: Vec<Column> = cols
        .iter()
        .map(|c| if c.column_type == ColumnType::Numerical { Column::Numbers(Vec::new()) } else { Column::Labels(Vec::new()) })
        .collect();
    for r in records {
        let Ok(Value::Object(inputs)) = serde_json::from_str::<Value>(&r.inputs) else { continue };
        let single = (inputs.len() == 1).then(|| inputs.values().next()).flatten();
        for (j, c) in cols.iter().enumerate() {
            let (data, stride, offset) = match inputs.get(&c.name) {
                Some(t) => (t.get("data").and_then(Value::as_array), 1, 0),
                None => match single {
                    Some(t) => {
                        let width = t.get("shape").and_then(Value::as_array).and_then(|s| s.get(1)).and_then(Value::as_u64).unwrap_or(1) as usize;
                        (t.get("data").and_then(Value::as_array), width.max(1), j)
                    }
                    None => (None, 1, 0),
                },
            };
            let Some(data) = data else { continue };
            for v in data.iter().skip(offset).step_by(stride) {
                match &mut out[j] {
                    Column::Numbers(x) => x.push(v.as_f64().unwrap_or(f64::NAN)),
                    Column::Labels(x) => x.push(match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    }),
                }
            }
        }
    }
    out
}

fn metric(deployment: &str, window: (i64, i64), name: &str, feature: &str, value: f64) -> MonitorMetric {
    MonitorMetric { deployment: deployment.to_owned(), window_start: window.0, window_end: window.1, metric: name.to_owned(), feature: feature.to_owned(), value }
}

/// Judges one window: its metrics, and the alerts they raise.
pub fn judge(deployment: &str, spec: &MonitorSpec, records: &[PredictionRecord]) -> (Vec<MonitorMetric>, Vec<Alert>) {
    let window = (records.first().map_or(0, |r| r.time), records.last().map_or(0, |r| r.time));
    let options = spec.options();
    let mut metrics = Vec::new();
    let mut columns = Vec::new();
    for (profile, current) in spec.reference.columns.iter().zip(features(spec, records)) {
        let (values, total) = match current {
            Column::Numbers(x) => {
                let n = x.len();
                (Values::Numeric(x.into_iter().filter(|v| v.is_finite()).collect()), n)
            }
            Column::Labels(x) => {
                let n = x.len();
                (Values::Categorical(x.into_iter().flatten().collect()), n)
            }
        };
        if total == 0 {
            continue;
        }
        metrics.push(metric(deployment, window, "missing_share", &profile.name, 1.0 - values.len() as f64 / total as f64));
        if values.is_empty() {
            continue;
        }
        match drift::column_drift(&profile.name, profile.column_type, &profile.values(), &values, &options) {
            Ok(c) => {
                metrics.push(metric(deployment, window, "drift_score", &profile.name, c.p_value.unwrap_or(c.statistic)));
                metrics.push(metric(deployment, window, "drift_detected", &profile.name, f64::from(u8::from(c.drift))));
                columns.push(c);
            }
            Err(e) => tracing::warn!(deployment, feature = %profile.name, "drift not computed: {e}"),
        }
    }
    let summary = drift::dataset_drift(columns, &options);
    metrics.push(metric(deployment, window, "drift_share", "", summary.share_of_drifted_columns));
    metrics.push(metric(deployment, window, "dataset_drift", "", f64::from(u8::from(summary.dataset_drift))));
    let mut latencies: Vec<i64> = records.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    if let Some(p95) = latencies.get((latencies.len() as f64 * 0.95).ceil() as usize - 1) {
        metrics.push(metric(deployment, window, "latency_p95_ms", "", *p95 as f64 / 1000.0));
    }
    let mut alerts = Vec::new();
    if summary.dataset_drift {
        let drifted: Vec<String> = summary.columns.iter().filter(|c| c.drift).map(|c| format!("{} ({} {:.4})", c.name, c.stattest.name(), c.p_value.unwrap_or(c.statistic))).collect();
        alerts.push(Alert {
            id: uuid::Uuid::new_v4().simple().to_string(),
            deployment: deployment.to_owned(),
            time: window.1,
            kind: "data_drift".into(),
            value: summary.share_of_drifted_columns,
            threshold: summary.drift_share,
            message: format!(
                "Data drift on deployment '{deployment}': {} of {} features drifted over the last {} predictions: {}",
                summary.number_of_drifted_columns,
                summary.number_of_columns,
                records.len(),
                drifted.join(", ")
            ),
            delivered: false,
            attempts: 0,
        });
    }
    (metrics, alerts)
}

/// Judges every complete window waiting on every monitor.
pub async fn tick(store: &Arc<dyn MetadataStore>, http: &reqwest::Client) -> Result<()> {
    for (deployment, spec, mut time, mut id) in store.monitors().await? {
        let spec = match serde_json::from_str::<Value>(&spec).map_err(|e| Error::internal(e.to_string())).and_then(MonitorSpec::parse) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(deployment, "unreadable monitor spec: {}", e.message());
                continue;
            }
        };
        loop {
            let records = store.predictions_after(&deployment, time, &id, spec.window_size as i64).await?;
            if records.len() < spec.window_size {
                break;
            }
            let (metrics, alerts) = judge(&deployment, &spec, &records);
            let last = records.last().expect("a full window");
            store.record_window(&deployment, (last.time, &last.id), &metrics, &alerts).await?;
            (time, id) = (last.time, last.id.clone());
            if let Some(url) = &spec.webhook_url {
                for alert in alerts {
                    tokio::spawn(deliver(store.clone(), http.clone(), url.clone(), alert));
                }
            }
        }
    }
    Ok(())
}

/// Posts an alert as a Slack-compatible message (`text`, plus the alert itself), retrying with
/// exponential backoff; records the outcome.
async fn deliver(store: Arc<dyn MetadataStore>, http: reqwest::Client, url: String, alert: Alert) {
    let body = json!({ "text": alert.message, "alert": alert });
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let ok = http.post(&url).json(&body).timeout(Duration::from_secs(10)).send().await.is_ok_and(|r| r.status().is_success());
        if ok || attempt == WEBHOOK_ATTEMPTS {
            if let Err(e) = store.mark_alert(&alert.id, ok, attempt).await {
                tracing::error!("recording alert delivery failed: {}", e.message());
            }
            if !ok {
                tracing::warn!(alert = %alert.id, url, "webhook delivery failed after {attempt} attempts");
            }
            return;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}
