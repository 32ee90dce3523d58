//! Tracking entities: experiments, runs, metrics, params, tags and dataset inputs.
//!
//! These are domain types, not wire types: the server crate converts them to MLflow's
//! JSON shapes.

use crate::error::{Error, Result};

/// Whether an experiment or run is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Active => "active",
            LifecycleStage::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(LifecycleStage::Active),
            "deleted" => Ok(LifecycleStage::Deleted),
            other => Err(Error::invalid(format!("invalid lifecycle stage '{other}'"))),
        }
    }
}

/// Which lifecycle stages a search returns (`ViewType` in MLflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ACTIVE_ONLY" | "1" => Ok(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
            "ALL" | "3" => Ok(ViewType::All),
            other => Err(Error::invalid(format!(
                "invalid view type '{other}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))),
        }
    }
    /// The lifecycle stages this view admits.
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}

/// A run's status, with MLflow's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Scheduled,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Killed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
    /// Accepts the name or MLflow's protobuf number.
    pub fn parse(s: &str) -> Result<Self> {
        let by_number = match s {
            "1" => Some(RunStatus::Running),
            "2" => Some(RunStatus::Scheduled),
            "3" => Some(RunStatus::Finished),
            "4" => Some(RunStatus::Failed),
            "5" => Some(RunStatus::Killed),
            _ => None,
        };
        by_number
            .or_else(|| RunStatus::ALL.into_iter().find(|st| st.as_str() == s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid run status '{s}': expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
                ))
            })
    }
    pub fn is_terminated(self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Failed | RunStatus::Killed)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub key: String,
    pub value: String,
}

/// One metric observation. `value` may be NaN or infinite, as in MLflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

impl Metric {
    /// MLflow's notion of "latest": the greatest `(step, timestamp, value)`, NaN lowest.
    pub fn is_later_than(&self, other: &Metric) -> bool {
        let a = (self.step, self.timestamp);
        let b = (other.step, other.timestamp);
        if a != b {
            return a > b;
        }
        match (self.value.is_nan(), other.value.is_nan()) {
            (true, _) => false,
            (false, true) => true,
            (false, false) => self.value > other.value,
        }
    }
}

/// A metric observation together with the run it belongs to (bulk history queries).
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetric {
    pub run_id: String,
    pub metric: Metric,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    /// Latest value of every metric key.
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
    pub dataset_inputs: Vec<DatasetInput>,
    /// `(model_id, step)` of the logged models the run produced.
    pub model_outputs: Vec<(String, i64)>,
}

/// The arguments of `runs/create`.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: String,
    pub user_id: String,
    pub run_name: Option<String>,
    pub start_time: i64,
    pub tags: Vec<Tag>,
}

/// The arguments of `runs/update`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// The arguments of `runs/log-batch`, already validated.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

/// The tag MLflow keeps in step with a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
/// The tag that names a run's parent.
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";
/// The tag MLflow records the logging user in.
pub const USER_TAG: &str = "mlflow.user";

#[cfg(test)]
mod tests {
    use super::*;

    fn m(step: i64, ts: i64, v: f64) -> Metric {
        Metric { key: "k".into(), value: v, timestamp: ts, step }
    }

    #[test]
    fn latest_metric_orders_by_step_then_time_then_value() {
        assert!(m(2, 0, 0.0).is_later_than(&m(1, 9, 9.0)));
        assert!(m(1, 2, 0.0).is_later_than(&m(1, 1, 9.0)));
        assert!(m(1, 1, 2.0).is_later_than(&m(1, 1, 1.0)));
        assert!(!m(1, 1, f64::NAN).is_later_than(&m(1, 1, 1.0)));
        assert!(m(1, 1, 1.0).is_later_than(&m(1, 1, f64::NAN)));
    }

    #[test]
    fn run_status_parses_names_and_numbers() {
        assert_eq!(RunStatus::parse("FINISHED").unwrap(), RunStatus::Finished);
        assert_eq!(RunStatus::parse("3").unwrap(), RunStatus::Finished);
        let err = RunStatus::parse("DONE").unwrap_err();
        assert!(err.message().contains("'DONE'"), "{err}");
    }
}
