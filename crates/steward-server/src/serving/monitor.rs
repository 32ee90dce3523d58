//! Monitors: each deployment with a monitor has its answered predictions judged in windows of a
//! fixed number of logged predictions against the reference profile — per-feature drift
//! (Evidently's tests), prediction drift, missing and out-of-range shares, dataset drift,
//! fairness by a protected attribute logged as context, latency and error rate — and its
//! labelled predictions judged in windows of the same size in the order their labels arrived
//! (accuracy, ROC AUC and the rest of `steward_stats::quality`, equalized odds); before labels
//! arrive, accuracy and ROC AUC are estimated per window from the scores (NannyML's CBPE,
//! calibrated on a labelled reference). Every metric is
//! stored as a time series; thresholds raise alerts, delivered to the monitor's webhook
//! (Slack-compatible) with retries and backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use steward_core::serving::{Alert, DEFAULT_REPEAT_MS, MonitorMetric, PredictionRecord, WindowKind};
use steward_core::{Error, Result};
use steward_stats::cbpe::{self, Isotonic};
use steward_stats::drift::{self, ColumnType, DriftOptions, StatTest, Values};
use steward_stats::profile::{ColumnProfile, Profile};
use steward_store::{Cursor, MetadataStore, Window};

/// How often monitors look for complete windows.
pub const TICK: Duration = Duration::from_millis(500);
/// How long after a prediction's time it is surely queued for the log (its time is taken just
/// before it is queued); a time window is judged once what was queued by then is committed.
const GRACE_MS: i64 = 2_000;
/// The most progress marks kept while the log writer lags; past it the oldest are dropped,
/// which only delays time windows.
const MAX_MARKS: usize = 4_096;
/// The most predictions a time window judges (the first ones); memory stays bounded.
pub const MAX_WINDOW_PREDICTIONS: usize = 50_000;
/// The most labelled reference rows a label-free quality estimate is calibrated on.
pub const MAX_REFERENCE_ROWS: usize = 100_000;
/// The fewest: a calibration check over ten folds needs a few rows in each.
const MIN_REFERENCE_ROWS: usize = 20;
const WEBHOOK_ATTEMPTS: i64 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// The reference profile (`steward data profile`): feature names, types and samples.
    pub reference: Profile,
    /// The profile of the model's own predictions on the reference data (the score, or the
    /// label when the model gives no score), for prediction drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_prediction: Option<ColumnProfile>,
    /// Logged predictions (one per answered request, whatever its row count) per window; also
    /// labelled predictions per quality window.
    #[serde(default = "default_window")]
    pub window_size: usize,
    /// Windows by time instead: each covers `window_seconds` of prediction time and is judged
    /// once it has closed (quality windows stay by count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    #[serde(default = "default_share")]
    pub drift_share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stattest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Which outputs are the predicted label and the score.
    #[serde(default)]
    pub outputs: Outputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualitySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_quality: Option<EstimatedQualitySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessSpec>,
    #[serde(default)]
    pub slo: Slo,
    /// How long a still-firing alert waits before it is notified again (default four hours, as
    /// Alertmanager's `repeat_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval_seconds: Option<u64>,
}

/// How to read a binary classifier's answer. By default the label is the output named `label`
/// (or `output_label`) and the score the output named `probabilities` (or `output_probability`,
/// `probability`): its column 1 when it has two columns, else its only value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_column: Option<usize>,
    /// The positive class (default 1): what the score is the probability of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<Value>,
}

/// Quality once labels arrive (feedback), for binary classifiers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// Score at or above which a row is predicted positive when the model gives no label.
    #[serde(default = "default_half")]
    pub threshold: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_roc_auc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy: Option<f64>,
}

/// Quality estimated from the scores before labels arrive, for binary classifiers: NannyML's
/// confidence-based performance estimation (`steward_stats::cbpe`). The model's scores on a
/// labelled reference (the probability of the positive class, as the deployed model gives it)
/// and the reference's labels calibrate the scores; each window then gets the expected accuracy
/// of the labels the model gave and the expected ROC AUC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimatedQualitySpec {
    pub reference_scores: Vec<f64>,
    pub reference_labels: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_roc_auc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy: Option<f64>,
    /// Fitted when the spec is parsed; `None` when the reference's scores need no calibration.
    #[serde(skip)]
    pub calibration: Option<Isotonic>,
}

impl EstimatedQualitySpec {
    fn check(&mut self, positive: &str) -> Result<()> {
        let (n, m) = (self.reference_scores.len(), self.reference_labels.len());
        if n != m {
            return Err(Error::invalid(format!("estimated_quality: {n} reference_scores but {m} reference_labels")));
        }
        if !(MIN_REFERENCE_ROWS..=MAX_REFERENCE_ROWS).contains(&n) {
            return Err(Error::invalid(format!("estimated_quality.reference_scores must hold {MIN_REFERENCE_ROWS} to {MAX_REFERENCE_ROWS} rows, got {n}")));
        }
        if let Some((i, s)) = self.reference_scores.iter().enumerate().find(|(_, s)| !(0.0..=1.0).contains(*s)) {
            return Err(Error::invalid(format!("estimated_quality.reference_scores[{i}] is {s}: scores must be probabilities of the positive class, within 0..1")));
        }
        let mut labels = Vec::with_capacity(n);
        for (i, v) in self.reference_labels.iter().enumerate() {
            let class = key(v).ok_or_else(|| Error::invalid(format!("estimated_quality.reference_labels[{i}] must be a class (number, string or boolean), got {v}")))?;
            labels.push(u8::from(class == positive));
        }
        let positives = labels.iter().filter(|l| **l == 1).count();
        if positives == 0 || positives == n {
            return Err(Error::invalid(format!(
                "estimated_quality.reference_labels must hold both the positive class '{positive}' and another, got {positives} positive of {n}"
            )));
        }
        share("estimated_quality.min_roc_auc", self.min_roc_auc)?;
        share("estimated_quality.min_accuracy", self.min_accuracy)?;
        self.calibration = cbpe::calibration(&self.reference_scores, &labels).map_err(|e| Error::invalid(format!("estimated_quality: {e}")))?;
        Ok(())
    }

    /// A score as a probability: calibrated when the reference called for it.
    fn probability(&self, score: f64) -> f64 {
        self.calibration.as_ref().map_or(score, |c| c.predict(score))
    }
}

/// Group fairness by a protected attribute that callers send as context
/// (`{"context": {"age_band": "18-25"}}`, or one value per row), not as a model input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessSpec {
    pub attribute: String,
    /// The predicted label that is the favourable outcome (default: the positive class). For a
    /// default-risk model whose positive class is "defaults", that is 0: approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favorable: Option<Value>,
    /// Alert when a group's favourable rate over the highest group's falls below this.
    #[serde(default = "default_four_fifths")]
    pub min_ratio: f64,
    /// Groups with fewer rows in a window are left out of that window's comparison.
    #[serde(default = "default_min_group_rows")]
    pub min_group_rows: usize,
}

/// Service and data-quality thresholds; each alerts when crossed in a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missing_share: Option<f64>,
}

fn default_share() -> f64 {
    0.5
}
fn default_window() -> usize {
    500
}
fn default_half() -> f64 {
    0.5
}
fn default_four_fifths() -> f64 {
    0.8
}
fn default_min_group_rows() -> usize {
    30
}

fn share(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => Err(Error::invalid(format!("{name} must be within 0..1, got {x}"))),
        _ => Ok(()),
    }
}

impl MonitorSpec {
    pub fn parse(v: Value) -> Result<Self> {
        let mut spec: MonitorSpec = serde_json::from_value(v).map_err(|e| Error::invalid(format!("monitor spec: {e}")))?;
        if spec.window_size < 10 {
            return Err(Error::invalid(format!("window_size must be at least 10 predictions, got {}", spec.window_size)));
        }
        if spec.reference.columns.is_empty() {
            return Err(Error::invalid("the reference profile has no columns"));
        }
        if spec.window_seconds == Some(0) {
            return Err(Error::invalid("window_seconds must be at least 1"));
        }
        share("drift_share", Some(spec.drift_share))?;
        if let Some(t) = &spec.stattest {
            StatTest::parse(t).map_err(|e| Error::invalid(e.to_string()))?;
        }
        if let Some(url) = &spec.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::invalid(format!("webhook_url must be an http(s) URL, got '{url}'")));
        }
        if let Some(q) = &spec.quality {
            share("quality.threshold", Some(q.threshold))?;
            share("quality.min_roc_auc", q.min_roc_auc)?;
            share("quality.min_accuracy", q.min_accuracy)?;
        }
        let positive = spec.positive();
        if let Some(e) = &mut spec.estimated_quality {
            e.check(&positive)?;
        }
        if let Some(f) = &spec.fairness {
            if f.attribute.is_empty() {
                return Err(Error::invalid("fairness.attribute must name a context attribute"));
            }
            share("fairness.min_ratio", Some(f.min_ratio))?;
        }
        share("slo.max_error_rate", spec.slo.max_error_rate)?;
        share("slo.max_missing_share", spec.slo.max_missing_share)?;
        if let Some(ms) = spec.slo.max_latency_p95_ms
            && !(ms > 0.0)
        {
            return Err(Error::invalid(format!("slo.max_latency_p95_ms must be positive, got {ms}")));
        }
        for v in [spec.outputs.positive.as_ref(), spec.fairness.as_ref().and_then(|f| f.favorable.as_ref())].into_iter().flatten() {
            if key(v).is_none() {
                return Err(Error::invalid(format!("a class must be a number, string or boolean, got {v}")));
            }
        }
        Ok(spec)
    }

    fn options(&self) -> DriftOptions {
        DriftOptions { stattest: self.stattest.as_deref().and_then(|t| StatTest::parse(t).ok()), threshold: self.threshold, drift_share: Some(self.drift_share) }
    }

    fn positive(&self) -> String {
        self.outputs.positive.as_ref().and_then(key).unwrap_or_else(|| "1".into())
    }
}

/// A class as a comparable key: integral numbers without a fraction, booleans as 1/0.
pub fn key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// One answer read as a binary classifier's: per row, the predicted class and the score.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answered {
    pub labels: Vec<Option<String>>,
    pub scores: Vec<Option<f64>>,
}

impl Answered {
    pub fn rows(&self) -> usize {
        self.labels.len().max(self.scores.len())
    }
}

fn tensor<'a>(outputs: &'a Map<String, Value>, named: Option<&String>, defaults: &[&str]) -> Option<&'a Value> {
    match named {
        Some(n) => outputs.get(n),
        None => defaults.iter().find_map(|d| outputs.get(*d)),
    }
}

/// Reads logged outputs (`{name: {"shape": [...], "data": [...]}}`) as labels and scores.
pub fn answered(outputs: &Outputs, logged: &Value, threshold: f64) -> Answered {
    let Some(map) = logged.as_object() else { return Answered::default() };
    let mut out = Answered::default();
    if let Some(t) = tensor(map, outputs.score.as_ref(), &["probabilities", "output_probability", "probability"]) {
        let data = t.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let shape: Vec<u64> = t.get("shape").and_then(Value::as_array).map(|s| s.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        let width = if shape.len() >= 2 { shape[1..].iter().product::<u64>() as usize } else { 1 };
        let column = outputs.score_column.unwrap_or(if width == 2 { 1 } else { 0 });
        if width > 0 && column < width {
            out.scores = data.iter().skip(column).step_by(width).map(Value::as_f64).collect();
        }
    }
    match tensor(map, outputs.label.as_ref(), &["label", "output_label"]) {
        Some(t) => out.labels = t.get("data").and_then(Value::as_array).map(|d| d.iter().map(key).collect()).unwrap_or_default(),
        None => {
            out.labels = out.scores.iter().map(|s| s.map(|s| if s >= threshold { "1".to_owned() } else { "0".to_owned() })).collect();
        }
    }
    out
}

/// A per-row value given once for the whole request or as a list of one per row.
fn per_row(v: Option<&Value>, rows: usize) -> Vec<Option<String>> {
    match v {
        Some(Value::Array(items)) if items.len() == rows => items.iter().map(key).collect(),
        Some(v) if !v.is_array() => vec![key(v); rows],
        _ => vec![None; rows],
    }
}

fn groups(spec: &FairnessSpec, record: &PredictionRecord, rows: usize) -> Vec<Option<String>> {
    let context: Option<Value> = record.context.as_deref().and_then(|c| serde_json::from_str(c).ok());
    per_row(context.as_ref().and_then(|c| c.get(&spec.attribute)), rows)
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

/// A window's (first, last) time: records in commit order are not in time order.
fn span(times: impl Iterator<Item = i64>) -> (i64, i64) {
    times.fold(None, |acc: Option<(i64, i64)>, t| Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))))).unwrap_or((0, 0))
}

fn metric(deployment: &str, window: (i64, i64), name: &str, feature: &str, value: f64) -> MonitorMetric {
    MonitorMetric { deployment: deployment.to_owned(), window_start: window.0, window_end: window.1, metric: name.to_owned(), feature: feature.to_owned(), value }
}

fn alert(deployment: &str, time: i64, kind: &str, value: f64, threshold: f64, message: String) -> Alert {
    Alert {
        id: uuid::Uuid::new_v4().simple().to_string(),
        deployment: deployment.to_owned(),
        time,
        kind: kind.to_owned(),
        value,
        threshold,
        message,
        delivered: false,
        attempts: 0,
        status: "firing".into(),
        last_seen: time,
        notified_at: time,
        resolved_at: None,
    }
}

/// The alert kinds a window of answered predictions judges (and so can resolve).
const PREDICTION_KINDS: &[&str] = &["data_drift", "prediction_drift", "estimated_quality", "fairness", "latency", "error_rate", "data_quality"];
/// The alert kinds a window of labelled predictions judges.
const LABEL_KINDS: &[&str] = &["quality"];

/// Each record's answer, read with the spec's outputs and threshold.
pub fn answers(spec: &MonitorSpec, records: &[PredictionRecord]) -> Vec<Answered> {
    let threshold = spec.quality.as_ref().map_or(0.5, |q| q.threshold);
    records.iter().map(|r| answered(&spec.outputs, &serde_json::from_str(&r.outputs).unwrap_or(Value::Null), threshold)).collect()
}

/// The decisions of a window: the share predicted positive and, with a fairness spec, the
/// selection rate by group, the demographic parity difference and the adverse impact ratio
/// (alerting under the four-fifths rule). The agent judges each canary route with it too.
pub fn decisions(deployment: &str, spec: &MonitorSpec, records: &[PredictionRecord], answers: &[Answered]) -> (Vec<MonitorMetric>, Vec<Alert>) {
    let window = span(records.iter().map(|r| r.time));
    let n = records.len();
    let (mut metrics, mut alerts) = (Vec::new(), Vec::new());
    let positive = spec.positive();
    let labels: Vec<&str> = answers.iter().flat_map(|a| a.labels.iter().flatten().map(String::as_str)).collect();
    if !labels.is_empty() {
        metrics.push(metric(deployment, window, "positive_rate", "", labels.iter().filter(|l| **l == positive).count() as f64 / labels.len() as f64));
    }
    if let Some(f) = &spec.fairness {
        let favorable = f.favorable.as_ref().and_then(key).unwrap_or_else(|| positive.clone());
        let (mut selected, mut group) = (Vec::new(), Vec::new());
        for (r, a) in records.iter().zip(answers) {
            for (label, g) in a.labels.iter().zip(groups(f, r, a.labels.len())) {
                if let (Some(l), Some(g)) = (label, g) {
                    selected.push(u8::from(*l == favorable));
                    group.push(g);
                }
            }
        }
        if let Some(fair) = fairness(&selected, None, &group, f) {
            for (g, rates) in &fair.groups {
                metrics.push(metric(deployment, window, "selection_rate", g, rates.selection_rate));
            }
            metrics.push(metric(deployment, window, "demographic_parity_difference", "", fair.demographic_parity_difference));
            if fair.adverse_impact_ratio.is_finite() {
                metrics.push(metric(deployment, window, "adverse_impact_ratio", "", fair.adverse_impact_ratio));
            }
            if fair.four_fifths_violated {
                let rates: Vec<String> = fair.groups.iter().map(|(g, r)| format!("{g} {:.3}", r.selection_rate)).collect();
                let message = format!(
                    "Fairness on deployment '{deployment}': adverse impact ratio by '{}' is {:.3}, below {} (favourable rates: {}) over the last {n} predictions",
                    f.attribute,
                    fair.adverse_impact_ratio,
                    f.min_ratio,
                    rates.join(", ")
                );
                alerts.push(alert(deployment, window.1, "fairness", fair.adverse_impact_ratio, f.min_ratio, message));
            }
        }
    }
    (metrics, alerts)
}

/// Judges one window of answered predictions: its metrics, and the alerts they raise.
/// `error_rate` is the share of requests answered with an error since the previous window.
pub fn judge(deployment: &str, spec: &MonitorSpec, records: &[PredictionRecord], error_rate: Option<f64>) -> (Vec<MonitorMetric>, Vec<Alert>) {
    let window = span(records.iter().map(|r| r.time));
    let n = records.len();
    let options = spec.options();
    let mut metrics = Vec::new();
    let mut alerts = Vec::new();
    let mut columns = Vec::new();
    let mut worst_missing: Option<(f64, &str)> = None;
    metrics.push(metric(deployment, window, "predictions", "", n as f64));
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
        let missing = 1.0 - values.len() as f64 / total as f64;
        metrics.push(metric(deployment, window, "missing_share", &profile.name, missing));
        if worst_missing.is_none_or(|w| missing > w.0) {
            worst_missing = Some((missing, &profile.name));
        }
        if let (Values::Numeric(x), Some(lo), Some(hi)) = (&values, profile.min, profile.max)
            && !x.is_empty()
        {
            let outside = x.iter().filter(|v| **v < lo || **v > hi).count();
            metrics.push(metric(deployment, window, "out_of_range_share", &profile.name, outside as f64 / x.len() as f64));
        }
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
    if summary.dataset_drift {
        let drifted: Vec<String> = summary.columns.iter().filter(|c| c.drift).map(|c| format!("{} ({} {:.4})", c.name, c.stattest.name(), c.p_value.unwrap_or(c.statistic))).collect();
        let message = format!(
            "Data drift on deployment '{deployment}': {} of {} features drifted over the last {n} predictions: {}",
            summary.number_of_drifted_columns,
            summary.number_of_columns,
            drifted.join(", ")
        );
        alerts.push(alert(deployment, window.1, "data_drift", summary.share_of_drifted_columns, summary.drift_share, message));
    }

    let answers = answers(spec, records);
    if let Some(reference) = &spec.reference_prediction {
        let current = match reference.column_type {
            ColumnType::Numerical => Values::Numeric(answers.iter().flat_map(|a| a.scores.iter().flatten().copied()).filter(|v| v.is_finite()).collect()),
            ColumnType::Categorical => Values::Categorical(answers.iter().flat_map(|a| a.labels.iter().flatten().cloned()).collect()),
        };
        if !current.is_empty() {
            match drift::column_drift("prediction", reference.column_type, &reference.values(), &current, &options) {
                Ok(c) => {
                    let score = c.p_value.unwrap_or(c.statistic);
                    metrics.push(metric(deployment, window, "drift_score", "prediction", score));
                    metrics.push(metric(deployment, window, "prediction_drift", "", f64::from(u8::from(c.drift))));
                    if c.drift {
                        let message = format!("Prediction drift on deployment '{deployment}': {} {score:.4} (threshold {}) over the last {n} predictions", c.stattest.name(), c.threshold);
                        alerts.push(alert(deployment, window.1, "prediction_drift", score, c.threshold, message));
                    }
                }
                Err(e) => tracing::warn!(deployment, "prediction drift not computed: {e}"),
            }
        }
    }
    if let Some(e) = &spec.estimated_quality {
        let (m, a) = estimated(deployment, window, spec, e, &answers);
        metrics.extend(m);
        alerts.extend(a);
    }
    let (m, a) = decisions(deployment, spec, records, &answers);
    metrics.extend(m);
    alerts.extend(a);

    let mut latencies: Vec<i64> = records.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    if let Some(p95) = latencies.get((latencies.len() as f64 * 0.95).ceil() as usize - 1) {
        let ms = *p95 as f64 / 1000.0;
        metrics.push(metric(deployment, window, "latency_p95_ms", "", ms));
        if let Some(max) = spec.slo.max_latency_p95_ms
            && ms > max
        {
            alerts.push(alert(deployment, window.1, "latency", ms, max, format!("Latency on deployment '{deployment}': p95 {ms:.2} ms over the last {n} predictions, above {max} ms")));
        }
    }
    if let Some(rate) = error_rate {
        metrics.push(metric(deployment, window, "error_rate", "", rate));
        if let Some(max) = spec.slo.max_error_rate
            && rate > max
        {
            alerts.push(alert(deployment, window.1, "error_rate", rate, max, format!("Errors on deployment '{deployment}': {:.2}% of requests failed since the previous window, above {:.2}%", rate * 100.0, max * 100.0)));
        }
    }
    if let (Some(max), Some((worst, feature))) = (spec.slo.max_missing_share, worst_missing)
        && worst > max
    {
        alerts.push(alert(deployment, window.1, "data_quality", worst, max, format!("Data quality on deployment '{deployment}': {:.1}% of '{feature}' missing over the last {n} predictions, above {:.1}%", worst * 100.0, max * 100.0)));
    }
    (metrics, alerts)
}

/// A window's label-free quality: every row with a score, its calibrated probability, the
/// score itself (which orders the ROC curve) and whether the model labelled it positive.
fn estimated(deployment: &str, window: (i64, i64), spec: &MonitorSpec, e: &EstimatedQualitySpec, answers: &[Answered]) -> (Vec<MonitorMetric>, Vec<Alert>) {
    let (mut metrics, mut alerts) = (Vec::new(), Vec::new());
    let positive = spec.positive();
    let (mut probabilities, mut scores, mut predicted) = (Vec::new(), Vec::new(), Vec::new());
    for a in answers {
        for (i, s) in a.scores.iter().enumerate() {
            // A score outside 0..1 is not a probability: left out rather than failing the window.
            let Some(s) = s.filter(|s| (0.0..=1.0).contains(s)) else { continue };
            probabilities.push(e.probability(s));
            scores.push(s);
            predicted.push(u8::from(a.labels.get(i).cloned().flatten().is_some_and(|l| l == positive)));
        }
    }
    if scores.is_empty() {
        return (metrics, alerts);
    }
    let estimate = match cbpe::estimate_with(&probabilities, &scores, &predicted) {
        Ok(estimate) => estimate,
        Err(err) => {
            tracing::warn!(deployment, "quality not estimated: {err}");
            return (metrics, alerts);
        }
    };
    let n = estimate.rows;
    metrics.push(metric(deployment, window, "estimated_accuracy", "", estimate.accuracy));
    if let Some(auc) = estimate.roc_auc {
        metrics.push(metric(deployment, window, "estimated_roc_auc", "", auc));
        if let Some(min) = e.min_roc_auc
            && auc < min
        {
            alerts.push(alert(deployment, window.1, "estimated_quality", auc, min, format!("Estimated quality on deployment '{deployment}': ROC AUC {auc:.4} estimated over the last {n} rows (no labels yet), below {min}")));
        }
    }
    if let Some(min) = e.min_accuracy
        && estimate.accuracy < min
    {
        let accuracy = estimate.accuracy;
        alerts.push(alert(deployment, window.1, "estimated_quality", accuracy, min, format!("Estimated quality on deployment '{deployment}': accuracy {accuracy:.4} estimated over the last {n} rows (no labels yet), below {min}")));
    }
    (metrics, alerts)
}

/// Fairlearn's group metrics over the groups with enough rows; `None` when fewer than two
/// groups qualify.
fn fairness(selected: &[u8], truth: Option<&[u8]>, group: &[String], f: &FairnessSpec) -> Option<steward_stats::fairness::Fairness> {
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    group.iter().for_each(|g| *sizes.entry(g).or_default() += 1);
    let keep: Vec<usize> = (0..group.len()).filter(|i| sizes[group[*i].as_str()] >= f.min_group_rows).collect();
    if keep.iter().map(|i| group[*i].as_str()).collect::<std::collections::HashSet<_>>().len() < 2 {
        return None;
    }
    let pick = |v: &[u8]| keep.iter().map(|i| v[*i]).collect::<Vec<u8>>();
    let truth = truth.map_or_else(|| vec![0; keep.len()], pick);
    let groups: Vec<String> = keep.iter().map(|i| group[*i].clone()).collect();
    steward_stats::fairness::fairness(&pick(selected), &truth, &groups, f.min_ratio).ok()
}

/// Judges one window of labelled predictions (in label order): quality against the labels,
/// and equalized odds by the fairness attribute.
pub fn judge_labels(deployment: &str, spec: &MonitorSpec, labelled: &[(PredictionRecord, Value, i64)]) -> (Vec<MonitorMetric>, Vec<Alert>) {
    let window = span(labelled.iter().map(|l| l.2));
    let (mut metrics, mut alerts) = (Vec::new(), Vec::new());
    let Some(q) = &spec.quality else { return (metrics, alerts) };
    let positive = spec.positive();
    let (mut truth, mut scores, mut predicted, mut group) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (record, label, _) in labelled {
        let a = answered(&spec.outputs, &serde_json::from_str(&record.outputs).unwrap_or(Value::Null), q.threshold);
        let rows = a.rows();
        let groups = spec.fairness.as_ref().map_or_else(|| vec![None; rows], |f| groups(f, record, rows));
        for (i, y) in per_row(Some(label), rows).into_iter().enumerate() {
            let (Some(y), Some(Some(s))) = (y, a.scores.get(i)) else { continue };
            truth.push(u8::from(y == positive));
            scores.push(*s);
            predicted.push(u8::from(a.labels.get(i).cloned().flatten().is_some_and(|l| l == positive)));
            group.push(groups[i].clone());
        }
    }
    metrics.push(metric(deployment, window, "labelled_rows", "", truth.len() as f64));
    let Ok(quality) = steward_stats::quality::classification(&truth, &scores, q.threshold) else { return (metrics, alerts) };
    // The accuracy of the labels the model gave (its own threshold), not of the score cut.
    let accuracy = predicted.iter().zip(&truth).filter(|(p, y)| p == y).count() as f64 / truth.len() as f64;
    metrics.push(metric(deployment, window, "accuracy", "", accuracy));
    for (name, v) in [("precision", Some(quality.precision)), ("recall", Some(quality.recall)), ("f1", Some(quality.f1)), ("roc_auc", quality.roc_auc), ("brier", Some(quality.brier)), ("log_loss", Some(quality.log_loss)), ("ks", quality.ks), ("gini", quality.gini)] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            metrics.push(metric(deployment, window, name, "", v));
        }
    }
    let n = truth.len();
    if let (Some(min), Some(auc)) = (q.min_roc_auc, quality.roc_auc)
        && auc < min
    {
        alerts.push(alert(deployment, window.1, "quality", auc, min, format!("Quality on deployment '{deployment}': ROC AUC {auc:.4} over the last {n} labelled rows, below {min}")));
    }
    if let Some(min) = q.min_accuracy
        && accuracy < min
    {
        alerts.push(alert(deployment, window.1, "quality", accuracy, min, format!("Quality on deployment '{deployment}': accuracy {accuracy:.4} over the last {n} labelled rows, below {min}")));
    }
    if let Some(f) = &spec.fairness {
        let (mut p, mut y, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            if let Some(grp) = &group[i] {
                p.push(predicted[i]);
                y.push(truth[i]);
                g.push(grp.clone());
            }
        }
        if let Some(fair) = fairness(&p, Some(&y), &g, f) {
            metrics.push(metric(deployment, window, "equalized_odds_difference", "", fair.equalized_odds_difference));
            metrics.push(metric(deployment, window, "equal_opportunity_difference", "", fair.equal_opportunity_difference));
        }
    }
    (metrics, alerts)
}

/// Failed and answered request counts of every deployment, as the serving counters have them.
pub type Counters = HashMap<String, (u64, u64)>;

/// What the monitor loop keeps between ticks: each deployment's request counts as of its last
/// window, and each monitor's parsed spec with the text it was parsed from — parsed again only
/// when the text changes, since parsing reads the reference samples and fits a calibration.
#[derive(Default)]
pub struct TickState {
    seen: Counters,
    /// `None`: the text does not parse (logged once, not parsed again until it changes).
    specs: HashMap<String, (String, Option<Arc<MonitorSpec>>)>,
    /// (a time, how many records the log had queued by GRACE_MS after it), oldest first.
    marks: std::collections::VecDeque<(i64, u64)>,
    settled: i64,
}

impl TickState {
    /// A time before which every prediction made is committed (or was refused by the log):
    /// the latest mark whose queued records have all been written. `log` is the prediction
    /// log's (queued, settled) record counts.
    fn settled(&mut self, now: i64, log: (u64, u64)) -> i64 {
        self.marks.push_back((now - GRACE_MS, log.0));
        if self.marks.len() > MAX_MARKS {
            self.marks.pop_front();
        }
        while let Some(&(time, queued)) = self.marks.front()
            && queued <= log.1
        {
            self.settled = self.settled.max(time);
            self.marks.pop_front();
        }
        self.settled
    }
}

/// Judges every complete window waiting on every monitor. `counters` gives each deployment's
/// (answered, failed) request totals.
/// Statistics (and parsing a spec with its reference samples) run on the blocking pool, never
/// on the async runtime that answers requests.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::internal(format!("a monitor computation failed: {e}")))
}

async fn judged_off_runtime(deployment: &str, spec: &Arc<MonitorSpec>, records: Vec<PredictionRecord>, error_rate: Option<f64>) -> Result<(Vec<MonitorMetric>, Vec<Alert>)> {
    let (d, s) = (deployment.to_owned(), spec.clone());
    off_runtime(move || judge(&d, &s, &records, error_rate)).await
}

pub async fn tick(store: &Arc<dyn MetadataStore>, http: &reqwest::Client, webhooks: &[String], counters: &Counters, log: (u64, u64), kept: &mut TickState) -> Result<()> {
    let settled = kept.settled(super::now_ms(), log);
    let monitors = store.monitors().await?;
    kept.specs.retain(|d, _| monitors.iter().any(|m| &m.deployment == d));
    let seen = &mut kept.seen;
    for state in monitors {
        let deployment = state.deployment;
        let cached = match kept.specs.get(&deployment) {
            Some((text, spec)) if *text == state.spec => spec.clone(),
            _ => {
                let text = state.spec.clone();
                let parsed = off_runtime(move || serde_json::from_str::<Value>(&text).map_err(|e| Error::internal(e.to_string())).and_then(MonitorSpec::parse)).await?;
                let spec = parsed.map(Arc::new).map_err(|e| tracing::error!(deployment, "unreadable monitor spec: {}", e.message())).ok();
                kept.specs.insert(deployment.clone(), (state.spec, spec.clone()));
                spec
            }
        };
        let Some(spec) = cached else { continue };
        let mut raised = Vec::new();
        let repeat_ms = spec.repeat_interval_seconds.map_or(DEFAULT_REPEAT_MS, |s| (s as i64).saturating_mul(1000));
        let mut error_rate = || {
            let now = counters.get(&deployment).copied().unwrap_or_default();
            let before = seen.insert(deployment.clone(), now).unwrap_or_default();
            let (answered, failed) = (now.0.saturating_sub(before.0), now.1.saturating_sub(before.1));
            (answered + failed > 0).then(|| failed as f64 / (answered + failed) as f64)
        };
        match spec.window_seconds {
            // In commit order: a prediction committed late still lands in the next window.
            None => {
                let mut seq = state.cursor_seq;
                loop {
                    let mut numbered = store.predictions_after(&deployment, seq, state.time_cursor, spec.window_size as i64).await?;
                    if numbered.len() < spec.window_size {
                        break;
                    }
                    seq = numbered.last().expect("a full window").0;
                    let records: Vec<PredictionRecord> = numbered.drain(..).map(|(_, r)| r).collect();
                    let end = records.iter().map(|r| r.time).max().unwrap_or_default();
                    let (metrics, alerts) = judged_off_runtime(&deployment, &spec, records, error_rate()).await?;
                    raised.extend(store.record_window(Window { deployment: &deployment, kind: WindowKind::Predictions, cursor: Cursor::Seq(seq), end, judged: PREDICTION_KINDS, repeat_ms }, &metrics, &alerts).await?);
                }
            }
            // By prediction time, each window judged once every prediction made before its end
            // is committed (`settled`); the cursor is the next window's start.
            Some(seconds) => {
                let width = seconds as i64 * 1000;
                let mut time = state.time_cursor;
                while time + width <= settled {
                    let end = time + width;
                    let records = store.predictions_between(&deployment, time, Some(end), MAX_WINDOW_PREDICTIONS as i64).await?;
                    let empty = records.is_empty();
                    let (metrics, alerts) = if empty { (Vec::new(), Vec::new()) } else { judged_off_runtime(&deployment, &spec, records, error_rate()).await? };
                    // An empty stretch is skipped to the window of the next prediction.
                    let next = match empty {
                        true => match store.predictions_between(&deployment, end, None, 1).await?.first() {
                            Some(r) => end + (r.time - end) / width * width,
                            None => end + (settled - end).max(0) / width * width,
                        },
                        false => end,
                    };
                    // An empty stretch judges nothing: it neither raises nor resolves.
                    let judged = if empty { &[][..] } else { PREDICTION_KINDS };
                    raised.extend(store.record_window(Window { deployment: &deployment, kind: WindowKind::Predictions, cursor: Cursor::Time(next), end, judged, repeat_ms }, &metrics, &alerts).await?);
                    time = next.max(end);
                }
            }
        }
        if spec.quality.is_some() {
            let mut seq = state.label_cursor_seq;
            loop {
                let numbered = store.labels_after(&deployment, seq, spec.window_size as i64).await?;
                if numbered.len() < spec.window_size {
                    break;
                }
                seq = numbered.last().expect("a full window").3;
                let labelled: Vec<(PredictionRecord, Value, i64)> = numbered.into_iter().map(|(r, label, time, _)| (r, label, time)).collect();
                let end = labelled.iter().map(|l| l.2).max().unwrap_or_default();
                let (d, sp) = (deployment.clone(), spec.clone());
                let (metrics, alerts) = off_runtime(move || judge_labels(&d, &sp, &labelled)).await?;
                raised.extend(store.record_window(Window { deployment: &deployment, kind: WindowKind::Labels, cursor: Cursor::Seq(seq), end, judged: LABEL_KINDS, repeat_ms }, &metrics, &alerts).await?);
            }
        }
        if let Some(url) = &spec.webhook_url {
            // Checked again at delivery: the allow-list may have changed since the monitor was made.
            let allowed = webhook_allowed(url, webhooks);
            for alert in raised {
                match &allowed {
                    Ok(()) => drop(tokio::spawn(deliver(store.clone(), http.clone(), url.clone(), alert))),
                    Err(e) => {
                        tracing::warn!(alert = %alert.id, "alert not delivered: {}", e.message());
                        store.mark_alert(&alert.id, false, 0).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether a webhook URL's host (or `host:port`) is in the server's allow-list: alerts are
/// posted only to hosts an operator named (`--webhook-allow`), never to whatever address a
/// writer types (a request forgery into the server's network).
pub fn webhook_allowed(url: &str, allow: &[String]) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| Error::invalid(format!("webhook_url '{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(format!("webhook_url must be an http(s) URL, got '{url}'")));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let with_port = parsed.port_or_known_default().map(|p| format!("{host}:{p}")).unwrap_or_else(|| host.clone());
    if allow.iter().any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&with_port)) {
        return Ok(());
    }
    let listed = if allow.is_empty() { "the allow-list is empty".to_owned() } else { format!("it allows {}", allow.join(", ")) };
    Err(Error::invalid(format!("webhook host '{host}' is not allowed by this server ({listed}; an operator adds hosts with --webhook-allow)")))
}

/// Posts an alert as a Slack-compatible message (`text`, plus `status` — firing or resolved —
/// and the alert itself), retrying with exponential backoff; records the outcome.
async fn deliver(store: Arc<dyn MetadataStore>, http: reqwest::Client, url: String, alert: Alert) {
    let text = match (alert.status.as_str(), alert.last_seen > alert.time) {
        ("resolved", _) => format!("Resolved: {} (firing since {})", alert.message, steward_core::schedule::iso8601(alert.time)),
        (_, true) => format!("Still firing: {} (since {})", alert.message, steward_core::schedule::iso8601(alert.time)),
        _ => alert.message.clone(),
    };
    let body = json!({ "text": text, "status": alert.status, "alert": alert });
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

#[cfg(test)]
mod tests {
    use steward_core::serving::RouteRole;

    #[test]
    fn webhooks_go_only_to_allowed_hosts() {
        let allow = vec!["hooks.slack.com".to_owned(), "127.0.0.1:9000".to_owned()];
        assert!(super::webhook_allowed("https://hooks.slack.com/services/T0/B0/x", &allow).is_ok());
        assert!(super::webhook_allowed("http://127.0.0.1:9000/hook", &allow).is_ok());
        let other_port = super::webhook_allowed("http://127.0.0.1:8080/hook", &allow).unwrap_err();
        assert_eq!(other_port.message(), "webhook host '127.0.0.1' is not allowed by this server (it allows hooks.slack.com, 127.0.0.1:9000; an operator adds hosts with --webhook-allow)");
        let metadata = super::webhook_allowed("http://169.254.169.254/latest/meta-data", &[]).unwrap_err();
        assert!(metadata.message().contains("the allow-list is empty"), "{}", metadata.message());
        assert!(super::webhook_allowed("file:///etc/passwd", &allow).unwrap_err().message().contains("http(s)"));
    }
    use steward_stats::profile::ColumnProfiler;

    use super::*;

    fn spec(extra: Value) -> MonitorSpec {
        let mut p = ColumnProfiler::new("x", ColumnType::Numerical);
        (0..500).for_each(|i| p.push_number(Some(f64::from(i % 50))));
        let mut v = json!({ "reference": Profile { rows: 500, columns: vec![p.finish()] }, "window_size": 10 });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        MonitorSpec::parse(v).unwrap()
    }

    /// One logged one-row answer: feature x, label, P(1), the group as context.
    fn record(i: usize, x: f64, label: i64, p1: f64, group: &str, latency_us: i64) -> PredictionRecord {
        PredictionRecord {
            id: format!("{i:04}"),
            deployment: "d".into(),
            model: "m".into(),
            version: 1,
            route: RouteRole::Champion,
            parent_id: None,
            time: i as i64,
            latency_us,
            inputs: json!({ "x": { "shape": [1], "data": [x] } }).to_string(),
            outputs: json!({ "label": { "shape": [1], "data": [label] }, "probabilities": { "shape": [1, 2], "data": [1.0 - p1, p1] } }).to_string(),
            context: Some(json!({ "group": group }).to_string()),
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.kind.as_str()).collect()
    }

    fn value(metrics: &[MonitorMetric], name: &str, feature: &str) -> Option<f64> {
        metrics.iter().find(|m| m.metric == name && m.feature == feature).map(|m| m.value)
    }

    #[test]
    fn reads_labels_and_scores_as_converters_write_them() {
        let logged = json!({ "label": { "shape": [2], "data": [1, 0] }, "probabilities": { "shape": [2, 2], "data": [0.2, 0.8, 0.7, 0.3] } });
        let a = answered(&Outputs::default(), &logged, 0.5);
        assert_eq!(a.labels, vec![Some("1".into()), Some("0".into())]);
        assert_eq!(a.scores, vec![Some(0.8), Some(0.3)]);
        // No label output: the score at the threshold decides.
        let only_scores = json!({ "probabilities": { "shape": [2, 2], "data": [0.2, 0.8, 0.7, 0.3] } });
        assert_eq!(answered(&Outputs::default(), &only_scores, 0.25).labels, vec![Some("1".into()), Some("1".into())]);
        // Named outputs and a one-column score.
        let custom = Outputs { label: Some("decision".into()), score: Some("pd".into()), ..Default::default() };
        let logged = json!({ "decision": { "shape": [1], "data": ["approve"] }, "pd": { "shape": [1, 1], "data": [0.1] } });
        let a = answered(&custom, &logged, 0.5);
        assert_eq!((a.labels, a.scores), (vec![Some("approve".into())], vec![Some(0.1)]));
    }

    #[test]
    fn fairness_alert_when_a_group_is_favoured_less_than_four_fifths() {
        let s = spec(json!({ "fairness": { "attribute": "group", "favorable": 0, "min_group_rows": 5 } }));
        // Group A approved (label 0) 9 times in 10, group B 5 in 10: ratio 5/9.
        let records: Vec<_> = (0..20).map(|i| record(i, i as f64 * 2.5, i64::from(if i < 10 { i == 0 } else { i >= 15 }), 0.5, if i < 10 { "A" } else { "B" }, 100)).collect();
        let (metrics, alerts) = judge("d", &s, &records, None);
        assert_eq!(value(&metrics, "selection_rate", "A"), Some(0.9));
        assert_eq!(value(&metrics, "selection_rate", "B"), Some(0.5));
        assert!((value(&metrics, "adverse_impact_ratio", "").unwrap() - 5.0 / 9.0).abs() < 1e-12);
        assert_eq!(kinds(&alerts), vec!["fairness"]);
        // Equal rates: no alert; a group below min_group_rows is left out.
        let records: Vec<_> = (0..24).map(|i| record(i, i as f64 * 50.0 / 24.0, i64::from(i % 2 == 0), 0.5, if i < 20 { if i % 4 < 2 { "A" } else { "B" } } else { "C" }, 100)).collect();
        let (metrics, alerts) = judge("d", &s, &records, None);
        assert_eq!(value(&metrics, "selection_rate", "C"), None);
        assert!(kinds(&alerts).is_empty(), "{alerts:?}");
    }

    #[test]
    fn latency_error_and_missing_thresholds_alert() {
        let s = spec(json!({ "slo": { "max_error_rate": 0.1, "max_latency_p95_ms": 5.0, "max_missing_share": 0.2 } }));
        let calm: Vec<_> = (0..20).map(|i| record(i, i as f64 * 2.5, 0, 0.2, "A", 1_000)).collect();
        let (metrics, alerts) = judge("d", &s, &calm, Some(0.05));
        assert_eq!(value(&metrics, "latency_p95_ms", ""), Some(1.0));
        assert_eq!(value(&metrics, "error_rate", ""), Some(0.05));
        assert!(alerts.is_empty(), "{alerts:?}");
        let mut bad: Vec<_> = (0..20).map(|i| record(i, i as f64 * 2.5, 0, 0.2, "A", if i < 2 { 1_000 } else { 9_000 })).collect();
        for r in &mut bad[..5] {
            r.inputs = json!({ "x": { "shape": [1], "data": [null] } }).to_string();
        }
        let (metrics, alerts) = judge("d", &s, &bad, Some(0.5));
        assert_eq!(value(&metrics, "missing_share", "x"), Some(0.25));
        let mut k = kinds(&alerts);
        k.sort_unstable();
        assert_eq!(k, vec!["data_quality", "error_rate", "latency"]);
    }

    #[test]
    fn quality_from_labels_matches_the_stats_crate_and_alerts_below_the_floor() {
        let s = spec(json!({ "quality": { "min_roc_auc": 0.9 }, "fairness": { "attribute": "group", "min_group_rows": 1 } }));
        let scores = [0.9, 0.8, 0.35, 0.6, 0.2, 0.1, 0.7, 0.4, 0.55, 0.3];
        let truth = [1u8, 1, 1, 0, 0, 0, 1, 0, 0, 1];
        let labelled: Vec<_> = (0..10)
            .map(|i| (record(i, 1.0, i64::from(scores[i] >= 0.5), scores[i], if i % 2 == 0 { "A" } else { "B" }, 100), json!(truth[i]), 1000 + i as i64))
            .collect();
        let (metrics, alerts) = judge_labels("d", &s, &labelled);
        let want = steward_stats::quality::classification(&truth, &scores, 0.5).unwrap();
        assert_eq!(value(&metrics, "roc_auc", ""), want.roc_auc);
        assert_eq!(value(&metrics, "accuracy", ""), Some(want.accuracy));
        assert_eq!(value(&metrics, "labelled_rows", ""), Some(10.0));
        assert!(value(&metrics, "equalized_odds_difference", "").is_some());
        assert!(want.roc_auc.unwrap() < 0.9);
        assert_eq!(kinds(&alerts), vec!["quality"]);
        assert_eq!((metrics[0].window_start, metrics[0].window_end), (1000, 1009));
    }

    #[test]
    fn quality_is_estimated_before_labels_and_a_floor_alerts() {
        // A reference whose scores are calibrated as they are: P(1) = score.
        let scores: Vec<f64> = (0..200).map(|i| (f64::from(i) + 0.5) / 200.0).collect();
        let labels: Vec<u8> = scores.iter().enumerate().map(|(i, s)| u8::from(((i * 7919) % 200) as f64 / 200.0 < *s)).collect();
        let s = spec(json!({ "estimated_quality": { "reference_scores": scores, "reference_labels": labels, "min_accuracy": 0.8 } }));
        let calibration = s.estimated_quality.as_ref().unwrap().calibration.clone();
        // Live answers near the boundary: each is right about as often as its score says.
        let p1 = [0.55, 0.6, 0.45, 0.4, 0.65, 0.35, 0.5, 0.58, 0.42, 0.62];
        let records: Vec<_> = (0..10).map(|i| record(i, 10.0, i64::from(p1[i] >= 0.5), p1[i], "A", 100)).collect();
        let (metrics, alerts) = judge("d", &s, &records, None);
        let calibrated: Vec<f64> = p1.iter().map(|p| calibration.as_ref().map_or(*p, |c| c.predict(*p))).collect();
        let predicted: Vec<u8> = p1.iter().map(|p| u8::from(*p >= 0.5)).collect();
        let want = steward_stats::cbpe::estimate_with(&calibrated, &p1, &predicted).unwrap();
        assert_eq!(value(&metrics, "estimated_accuracy", ""), Some(want.accuracy));
        assert_eq!(value(&metrics, "estimated_roc_auc", ""), want.roc_auc);
        assert!(want.accuracy < 0.8);
        let estimated: Vec<&Alert> = alerts.iter().filter(|a| a.kind == "estimated_quality").collect();
        assert_eq!(estimated.len(), 1, "{alerts:?}");
        assert!(estimated[0].message.contains("no labels yet"), "{}", estimated[0].message);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let base = || json!({ "reference": { "rows": 1, "columns": [{ "name": "x", "type": "numerical", "count": 1, "missing": 0, "sample": [1.0] }] }, "window_size": 10 });
        for (extra, needle) in [
            (json!({ "quality": { "min_roc_auc": 1.5 } }), "quality.min_roc_auc"),
            (json!({ "fairness": { "attribute": "" } }), "fairness.attribute"),
            (json!({ "slo": { "max_latency_p95_ms": -1 } }), "slo.max_latency_p95_ms"),
            (json!({ "slo": { "max_eror_rate": 0.1 } }), "max_eror_rate"),
            (json!({ "outputs": { "positive": [1] } }), "class"),
            (json!({ "estimated_quality": { "reference_scores": vec![0.5; 30], "reference_labels": vec![1; 29] } }), "30 reference_scores but 29 reference_labels"),
            (json!({ "estimated_quality": { "reference_scores": vec![0.5; 30], "reference_labels": vec![1; 30] } }), "both the positive class '1' and another"),
            (json!({ "estimated_quality": { "reference_scores": vec![0.5; 5], "reference_labels": [1, 0, 1, 0, 1] } }), "20 to 100000 rows, got 5"),
            (json!({ "estimated_quality": { "reference_scores": (0..30).map(|i| f64::from(i) - 2.0).collect::<Vec<_>>(), "reference_labels": (0..30).map(|i| i % 2).collect::<Vec<_>>() } }), "reference_scores[0] is -2: scores must be probabilities"),
        ] {
            let mut v = base();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let e = MonitorSpec::parse(v).unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {}", e.message());
        }
    }
}
