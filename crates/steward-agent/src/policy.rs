//! Policies, as written in YAML per deployment: triggers (a metric condition over consecutive
//! monitor windows), the incident each opens and the actions it calls for, which actions need
//! a human's approval, and how a canary is stepped and judged. These are the retraining changes
//! "declared in advance" (EU AI Act Art. 43(4)).
//!
//! ```yaml
//! deployment: credit
//! triggers:
//!   - name: feature-drift
//!     metric: drift_score          # a monitor metric
//!     feature: any                 # any feature, one by name, or "" (the deployment)
//!     above: 0.2
//!     windows: 2                   # consecutive windows
//!     incident: data_drift
//!     actions: [retrain, notify]
//!   - {name: auc-floor, metric: roc_auc, below: 0.7, incident: performance_decay, actions: [retrain]}
//! approval: [promote]             # these wait for a human
//! retrain: {pipeline: examples/credit/pipeline.yaml}
//! canary:
//!   steps: [10, 50, 100]
//!   min_requests: 200
//!   max_error_rate_increase: 0.01
//!   max_latency_ratio: 1.5
//!   max_positive_rate_shift: 0.1
//!   min_adverse_impact_ratio: 0.8
//!   min_auc_delta: -0.01
//!   min_labelled_rows: 300         # wait for labels: quality is compared at every step
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canary::CanaryPolicy;

/// The most consecutive windows a trigger may ask for: the agent reads at most this many of
/// each series per tick.
pub const MAX_TRIGGER_WINDOWS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    DataDrift,
    ConceptDrift,
    PerformanceDecay,
    FairnessBreach,
    DataQuality,
    SloBreach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Run the deployment's retraining pipeline.
    Retrain,
    /// Put the newest challenger on the first canary step.
    StartCanary,
    Promote,
    Rollback,
    /// Send all traffic to the fallback (the last good version).
    Pause,
    Notify,
}

/// Which series of a metric a trigger watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    Any,
    Named(String),
}

impl Feature {
    pub fn matches(&self, feature: &str) -> bool {
        match self {
            Feature::Any => true,
            Feature::Named(n) => n == feature,
        }
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "any" { Feature::Any } else { Feature::Named(s) })
    }
}

fn deployment_wide() -> Feature {
    Feature::Named(String::new())
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Above(f64),
    Below(f64),
}

impl Condition {
    pub fn holds(&self, v: f64) -> bool {
        match self {
            Condition::Above(t) => v > *t,
            Condition::Below(t) => v < *t,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Above(t) => write!(f, "above {t}"),
            Condition::Below(t) => write!(f, "below {t}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    name: String,
    metric: String,
    #[serde(default = "deployment_wide")]
    feature: Feature,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default = "one")]
    windows: usize,
    incident: IncidentKind,
    #[serde(default)]
    actions: Vec<ActionKind>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawTrigger")]
pub struct Trigger {
    pub name: String,
    pub metric: String,
    pub feature: Feature,
    pub condition: Condition,
    pub windows: usize,
    pub incident: IncidentKind,
    pub actions: Vec<ActionKind>,
}

impl TryFrom<RawTrigger> for Trigger {
    type Error = String;

    fn try_from(r: RawTrigger) -> Result<Self, String> {
        let condition = match (r.above, r.below) {
            (Some(t), None) => Condition::Above(t),
            (None, Some(t)) => Condition::Below(t),
            _ => return Err(format!("trigger '{}' needs exactly one of 'above' and 'below'", r.name)),
        };
        if !(1..=MAX_TRIGGER_WINDOWS).contains(&r.windows) {
            return Err(format!("trigger '{}': windows must be within 1..{MAX_TRIGGER_WINDOWS} consecutive windows, got {}", r.name, r.windows));
        }
        Ok(Trigger { name: r.name, metric: r.metric, feature: r.feature, condition, windows: r.windows, incident: r.incident, actions: r.actions })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub deployment: String,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Actions that wait for a human's approval.
    #[serde(default)]
    pub approval: Vec<ActionKind>,
    #[serde(default)]
    pub canary: CanaryPolicy,
    /// What `retrain` runs.
    #[serde(default)]
    pub retrain: Option<Retrain>,
}

/// The retraining a policy declares: a pipeline spec (`steward pipeline run`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrain {
    pub pipeline: String,
}

impl Policy {
    pub fn needs_approval(&self, kind: ActionKind) -> bool {
        self.approval.contains(&kind)
    }
}
