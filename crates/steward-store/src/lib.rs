//! Steward's stores: the metadata store (one async trait, SQLite and PostgreSQL backends)
//! and the artifact store (a local directory or any `object_store` URI).
//!
//! ```no_run
//! # async fn demo() -> steward_core::Result<()> {
//! let store = steward_store::open_metadata("sqlite:///steward-data/steward.db", "mlflow-artifacts:/").await?;
//! let who = steward_core::audit::Audit::new("alice", None, b"");
//! let id = store.create_experiment(&who, "credit", None, &[]).await?;
//! assert_eq!(store.get_experiment(&id).await?.name, "credit");
//! # Ok(()) }
//! ```

pub mod anchor;
pub mod artifacts;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use steward_core::Result;
use steward_core::access::{Principal, Role, TokenInfo, User};
use steward_core::anchor::Checkpoint;
use steward_core::audit::{Audit, Break, LedgerEntry};
use steward_core::entities::{
    Batch, DatasetInput, Experiment, Metric, NewRun, Run, RunInfo, RunMetric, RunUpdate, Tag, ViewType,
};
use steward_core::serving::{AgentAction, Alert, Deployment, Incident, DeploymentSpec, Feedback, MonitorMetric, MonitorState, PredictionRecord, RouteRole, WindowKind};
use steward_core::registry::{DatasetLineage, DatasetVersion, LoggedModel, ModelVersion, NewModelVersion, RegisteredModel, RegistryEvent};

pub use artifacts::{ArtifactStore, FileInfo};
pub use sql::{Backend, SqlStore};

/// One page of a search, with the token of the next page when there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// `experiments/search` arguments.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    pub filter: String,
    pub order_by: Vec<String>,
    pub view: ViewType,
    pub max_results: Option<i64>,
    pub page_token: String,
}

/// `runs/search` arguments.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub experiment_ids: Vec<String>,
    pub filter: String,
    pub order_by: Vec<String>,
    pub view: ViewType,
    pub max_results: Option<i64>,
    pub page_token: String,
}

/// `metrics/get-history-bulk-interval` arguments.
#[derive(Debug, Clone)]
pub struct IntervalQuery {
    pub run_ids: Vec<String>,
    pub metric_key: String,
    pub steps: Option<(i64, i64)>,
    pub max_results: i64,
}

/// The metadata store. Every method is one transaction: it either happens whole or not at
/// all, and every mutation appends its audit-ledger entry inside that same transaction. Timestamps that the caller does not give are taken from the store's clock.
/// `registered-models/search` and `model-versions/search` arguments.
#[derive(Debug, Clone, Default)]
pub struct RegistryQuery {
    pub filter: String,
    pub order_by: Vec<String>,
    pub max_results: Option<i64>,
    pub page_token: String,
}

/// `logged-models/create` arguments.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
}

/// The model registry half of the metadata store (same transactions, same ledger).
#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn create_registered_model(&self, audit: &Audit, name: &str, description: Option<&str>, tags: &[Tag]) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    /// The model with this immutable id, under whatever name it has now.
    async fn get_registered_model_by_id(&self, id: &str) -> Result<RegisteredModel>;
    async fn update_registered_model(&self, audit: &Audit, name: &str, description: Option<&str>) -> Result<RegisteredModel>;
    async fn rename_registered_model(&self, audit: &Audit, name: &str, new_name: &str) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, audit: &Audit, name: &str) -> Result<()>;
    async fn search_registered_models(&self, query: &RegistryQuery) -> Result<Page<RegisteredModel>>;
    async fn set_registered_model_tag(&self, audit: &Audit, name: &str, tag: &Tag) -> Result<()>;
    async fn delete_registered_model_tag(&self, audit: &Audit, name: &str, key: &str) -> Result<()>;
    /// Every live version of a model in `stage`, oldest first.
    async fn versions_in_stage(&self, name: &str, stage: &str) -> Result<Vec<ModelVersion>>;
    /// The newest version in each of `stages` (all stages when empty).
    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>>;

    /// Creates the next version. `storage_location` is where its files are (resolved by the
    /// caller from a logged model), `None` meaning `source` itself.
    async fn create_model_version(&self, audit: &Audit, mv: &NewModelVersion, storage_location: Option<&str>) -> Result<ModelVersion>;
    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion>;
    /// Records the digest of a version's model file if none is recorded yet (a version
    /// registered before its files were uploaded); returns the digest on record.
    async fn record_content_digest(&self, audit: &Audit, name: &str, version: i64, digest: &str) -> Result<String>;
    async fn update_model_version(&self, audit: &Audit, name: &str, version: i64, description: Option<&str>) -> Result<ModelVersion>;
    async fn transition_stage(&self, audit: &Audit, name: &str, version: i64, stage: &str, archive_existing: bool) -> Result<ModelVersion>;
    async fn delete_model_version(&self, audit: &Audit, name: &str, version: i64) -> Result<()>;
    async fn download_uri(&self, name: &str, version: i64) -> Result<String>;
    async fn search_model_versions(&self, query: &RegistryQuery) -> Result<Page<ModelVersion>>;
    async fn set_model_version_tag(&self, audit: &Audit, name: &str, version: i64, tag: &Tag) -> Result<()>;
    async fn delete_model_version_tag(&self, audit: &Audit, name: &str, version: i64, key: &str) -> Result<()>;

    async fn set_alias(&self, audit: &Audit, name: &str, alias: &str, version: i64) -> Result<()>;
    async fn delete_alias(&self, audit: &Audit, name: &str, alias: &str) -> Result<()>;
    async fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
    /// Every alias and stage change of a model, oldest first.
    async fn registry_history(&self, name: &str) -> Result<Vec<RegistryEvent>>;
    /// The version `alias` pointed to at `time` (ms), if any.
    async fn alias_at(&self, name: &str, alias: &str, time: i64) -> Result<Option<i64>>;

    async fn create_logged_model(&self, audit: &Audit, model: &NewLoggedModel) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel>;
    async fn finalize_logged_model(&self, audit: &Audit, model_id: &str, status: &str) -> Result<LoggedModel>;
    async fn set_logged_model_tags(&self, audit: &Audit, model_id: &str, tags: &[Tag]) -> Result<()>;
    async fn delete_logged_model_tag(&self, audit: &Audit, model_id: &str, key: &str) -> Result<()>;
    async fn log_logged_model_params(&self, audit: &Audit, model_id: &str, params: &[Tag]) -> Result<()>;
    async fn delete_logged_model(&self, audit: &Audit, model_id: &str) -> Result<()>;
    async fn search_logged_models(&self, experiment_ids: &[String], filter: &str, max_results: Option<i64>, page_token: &str) -> Result<Page<LoggedModel>>;
    /// `runs/outputs`: the models a run produced.
    async fn log_outputs(&self, audit: &Audit, run_id: &str, models: &[(String, i64)]) -> Result<()>;
}

/// Deployments and the prediction log (same store, same ledger for deployment changes).
#[async_trait]
pub trait ServingStore: Send + Sync {
    /// Creates (`create`) or replaces a deployment's spec.
    async fn put_deployment(&self, audit: &Audit, spec: &DeploymentSpec, create: bool) -> Result<Deployment>;
    async fn get_deployment(&self, name: &str) -> Result<Deployment>;
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;
    async fn delete_deployment(&self, audit: &Audit, name: &str) -> Result<()>;
    /// A promotion as one transaction: the registry alias `alias` of `model` moves to
    /// `version` (in the alias history) and the deployment's spec is replaced, each with its
    /// ledger entry, both carrying the same reason.
    async fn promote(&self, audit: &Audit, spec: &DeploymentSpec, model: &str, alias: &str, version: i64) -> Result<Deployment>;
    /// Appends prediction records, all or none.
    async fn log_predictions(&self, records: Vec<PredictionRecord>) -> Result<()>;
    /// Records ground truth; every prediction id must exist. All or none.
    async fn record_feedback(&self, feedback: &[Feedback]) -> Result<()>;
    /// One prediction with its feedback label, if any.
    async fn get_prediction(&self, id: &str) -> Result<(PredictionRecord, Option<serde_json::Value>)>;
    /// A deployment's predictions with `time >= since`, oldest first, at most `limit`.
    async fn predictions(&self, deployment: &str, since: i64, limit: i64) -> Result<Vec<PredictionRecord>>;
    /// The predictions of one route of a deployment with `time >= since`, oldest first (time,
    /// id), at most `limit`: the route is chosen before the limit, so other routes' traffic
    /// cannot crowd it out.
    async fn predictions_of_route(&self, deployment: &str, route: RouteRole, since: i64, limit: i64) -> Result<Vec<PredictionRecord>>;
}

/// A monitor's position in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The commit sequence number of the last record judged (windows by count, label windows).
    Seq(i64),
    /// The start of the next window by time (milliseconds).
    Time(i64),
}

/// One judged monitor window, as `record_window` stores it.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub deployment: &'a str,
    pub kind: WindowKind,
    /// Where the cursor of this kind moves.
    pub cursor: Cursor,
    /// The window's end (prediction or label time): the alerts' clock.
    pub end: i64,
    /// The alert kinds this window judges: open alerts of these kinds that it did not raise
    /// are resolved.
    pub judged: &'a [&'a str],
    /// How long a firing alert waits before it is notified again.
    pub repeat_ms: i64,
}

/// Monitors: their specs and cursors, metric time series and alerts.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Answered (non-shadow) predictions made at `since` or later and committed after the
    /// sequence number `seq`, in commit order, each with its sequence number.
    async fn predictions_after(&self, deployment: &str, seq: i64, since: i64, limit: i64) -> Result<Vec<(i64, PredictionRecord)>>;

    /// Answered (non-shadow) predictions made at `start` or later and before `end` (no bound
    /// when `None`), in (time, id) order.
    async fn predictions_between(&self, deployment: &str, start: i64, end: Option<i64>, limit: i64) -> Result<Vec<PredictionRecord>>;

    /// Labelled answered predictions whose label was committed after the sequence number
    /// `seq`, in commit order: each with its label, the label's time and its sequence number.
    async fn labels_after(&self, deployment: &str, seq: i64, limit: i64) -> Result<Vec<(PredictionRecord, serde_json::Value, i64, i64)>>;

    /// Labelled predictions of one route made at `since` or later whose label arrived at
    /// `since` or later, in (feedback time, prediction id) order, at most `limit`: each with its
    /// label and the label's time. The route is chosen before the limit.
    async fn labelled_of_route(&self, deployment: &str, route: RouteRole, since: i64, limit: i64) -> Result<Vec<(PredictionRecord, serde_json::Value, i64)>>;

    /// Creates or replaces a deployment's monitor: its time windows start at `start_time`, its
    /// count and label windows with the next record committed (a replaced monitor starts over:
    /// its windows may now be of another kind or size).
    async fn put_monitor(&self, audit: &Audit, deployment: &str, spec: &str, start_time: i64) -> Result<()>;
    /// Every monitor with its spec and cursors.
    async fn monitors(&self) -> Result<Vec<MonitorState>>;
    async fn delete_monitor(&self, audit: &Audit, deployment: &str) -> Result<()>;
    /// Stores one judged window — its metrics, the conditions it raised, moving the
    /// deployment's alerts (opened, held, resolved: `steward_core::serving::alert_changes`) —
    /// and moves the cursor of its kind, atomically. Returns the alerts to notify (newly
    /// firing, firing again after the repeat interval, resolved), as stored.
    async fn record_window(&self, window: Window<'_>, metrics: &[MonitorMetric], raised: &[Alert]) -> Result<Vec<Alert>>;
    /// The latest `windows` windows of each of a deployment's series (one per metric and
    /// feature), oldest first (window end, metric, feature): what a policy's trigger over
    /// consecutive windows reads, however long the deployment has been monitored.
    async fn monitor_metrics_latest(&self, deployment: &str, windows: usize) -> Result<Vec<MonitorMetric>>;
    /// One page of a deployment's metric series (only `metric`, only `feature` when given) in
    /// (window end, metric, feature) order: the rows after the key `after` (the last row of the
    /// previous page), at most `limit`.
    async fn monitor_metrics_page(&self, deployment: &str, metric: Option<&str>, feature: Option<&str>, after: Option<(i64, &str, &str)>, limit: i64) -> Result<Vec<MonitorMetric>>;
    /// Alerts, newest first.
    async fn alerts(&self, deployment: Option<&str>, limit: i64) -> Result<Vec<Alert>>;
    async fn mark_alert(&self, id: &str, delivered: bool, attempts: i64) -> Result<()>;
}

/// The dataset registry and its lineage.
#[async_trait]
pub trait DatasetStore: Send + Sync {
    /// Registers a version; the same content under the same name is the existing version
    /// (`false`: not created).
    async fn register_dataset(&self, audit: &Audit, version: &DatasetVersion) -> Result<(DatasetVersion, bool)>;
    async fn get_dataset(&self, name: &str, version: i64) -> Result<DatasetVersion>;
    async fn dataset_versions(&self, name: &str) -> Result<Vec<DatasetVersion>>;
    /// Runs that logged this version as an input (by digest), and the model versions they made.
    async fn dataset_lineage(&self, version: &DatasetVersion) -> Result<DatasetLineage>;
    /// Registered versions with any of these MLflow digests.
    async fn datasets_by_digest(&self, digests: &[String]) -> Result<Vec<DatasetVersion>>;
}

/// The agent's incidents and actions (the approval queue).
#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn open_incident(&self, audit: &Audit, incident: &Incident) -> Result<()>;
    /// Incidents, oldest first.
    /// Stores an incident's written analysis from a source (`rules`, `llm:MODEL`); a second one
    /// from the same source is refused.
    async fn add_analysis(&self, audit: &Audit, incident_id: &str, source: &str, text: &str) -> Result<()>;
    async fn incidents(&self, deployment: Option<&str>) -> Result<Vec<Incident>>;
    /// A deployment's open incidents (with their analyses), oldest first.
    async fn open_incidents(&self, deployment: &str) -> Result<Vec<Incident>>;
    async fn add_action(&self, audit: &Audit, action: &AgentAction) -> Result<()>;
    /// Actions (with this status), oldest first.
    async fn actions(&self, status: Option<&str>) -> Result<Vec<AgentAction>>;
    /// A human's approval or rejection of a pending action.
    async fn decide_action(&self, audit: &Audit, id: &str, approve: bool, reason: &str) -> Result<AgentAction>;
    /// The agent's progress on an action: `running`, `done`, `failed` (with a note).
    async fn mark_action(&self, audit: &Audit, id: &str, status: &str, note: &str) -> Result<()>;
}

/// Users and API tokens.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates a user; a name ever used (even by a deleted user) is refused.
    async fn create_user(&self, audit: &Audit, name: &str, role: Role) -> Result<()>;
    /// Every user, deleted ones (tombstones) included, by name.
    async fn users(&self) -> Result<Vec<User>>;
    /// Changes a live user's role or disables/enables them.
    async fn update_user(&self, audit: &Audit, name: &str, role: Option<Role>, disabled: Option<bool>) -> Result<User>;
    /// Deletes a user: their tokens are revoked, their name stays taken.
    async fn delete_user(&self, audit: &Audit, name: &str) -> Result<()>;
    /// Issues a new API token for a live user, optionally expiring at `expires_at` (ms); the
    /// clear token is returned once and only its digest is kept.
    async fn create_token(&self, audit: &Audit, user: &str, label: &str, expires_at: Option<i64>) -> Result<(String, TokenInfo)>;
    /// Tokens (of one user), oldest first; never the tokens themselves.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>>;
    async fn revoke_token(&self, audit: &Audit, id: &str) -> Result<TokenInfo>;
    /// The principal a clear token belongs to, if the token is live (not revoked or expired)
    /// and its user is enabled.
    async fn authenticate(&self, token: &str) -> Result<Option<Principal>>;
    /// Whether any user exists or ever existed (then the server requires authentication).
    async fn has_users(&self) -> Result<bool>;
}

#[async_trait]
pub trait MetadataStore: RegistryStore + ServingStore + MonitorStore + DatasetStore + AgentStore + AccessStore + Send + Sync {
    /// Which backend this is, for logs and `server-info`.
    fn backend(&self) -> Backend;

    async fn create_experiment(&self, audit: &Audit, name: &str, artifact_location: Option<&str>, tags: &[Tag]) -> Result<String>;
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;
    async fn search_experiments(&self, query: &ExperimentQuery) -> Result<Page<Experiment>>;
    async fn rename_experiment(&self, audit: &Audit, experiment_id: &str, new_name: &str) -> Result<()>;
    /// Soft-deletes the experiment and its runs.
    async fn delete_experiment(&self, audit: &Audit, experiment_id: &str) -> Result<()>;
    async fn restore_experiment(&self, audit: &Audit, experiment_id: &str) -> Result<()>;
    async fn set_experiment_tag(&self, audit: &Audit, experiment_id: &str, tag: &Tag) -> Result<()>;
    async fn delete_experiment_tag(&self, audit: &Audit, experiment_id: &str, key: &str) -> Result<()>;

    async fn create_run(&self, audit: &Audit, run: NewRun) -> Result<Run>;
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    async fn update_run(&self, audit: &Audit, run_id: &str, update: RunUpdate) -> Result<RunInfo>;
    async fn delete_run(&self, audit: &Audit, run_id: &str) -> Result<()>;
    async fn restore_run(&self, audit: &Audit, run_id: &str) -> Result<()>;
    async fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>>;
    /// Logs metrics, params and tags atomically; `log-metric`, `log-parameter` and `set-tag`
    /// are one-element batches.
    async fn log_batch(&self, audit: &Audit, run_id: &str, batch: &Batch) -> Result<()>;
    async fn delete_tag(&self, audit: &Audit, run_id: &str, key: &str) -> Result<()>;
    async fn log_inputs(&self, audit: &Audit, run_id: &str, inputs: &[DatasetInput]) -> Result<()>;
    async fn metric_history(&self, run_id: &str, key: &str, max_results: Option<i64>, page_token: &str) -> Result<Page<Metric>>;
    async fn metric_history_interval(&self, query: &IntervalQuery) -> Result<Vec<RunMetric>>;

    /// Ledger entries with `seq > after`, oldest first, at most `limit`.
    async fn ledger(&self, after: i64, limit: i64) -> Result<Vec<LedgerEntry>>;
    /// Ledger entries about one entity — its id is `entity_id`, or starts with `prefix` when one
    /// is given (a byte-order range: no character of it is a wildcard) — with `seq > after`,
    /// oldest first, at most `limit` (1..=10,000).
    async fn ledger_of_entity(&self, entity_id: &str, prefix: Option<&str>, after: i64, limit: i64) -> Result<Vec<LedgerEntry>>;
    /// Walks the whole ledger, and checks it against signed checkpoints of its head (each
    /// attested entry must be there with the attested hash): the number of entries when
    /// intact, the first break otherwise.
    async fn verify_ledger(&self, checkpoints: &[Checkpoint]) -> Result<std::result::Result<i64, Break>>;
    /// The ledger's head record (last sequence number and hash); `None` if the record is gone.
    async fn ledger_head(&self) -> Result<Option<(i64, String)>>;
    /// Records a mutation that happened outside the database (an artifact upload or
    /// deletion) as a ledger entry of its own.
    async fn record_mutation(&self, audit: &Audit, action: &str, entity_kind: &str, entity_id: &str) -> Result<()>;

}

/// Opens (and migrates) the metadata store named by a URI: `sqlite:///relative.db`,
/// `sqlite:////absolute.db`, a bare file path, or `postgresql://user@host:port/db`.
pub async fn open_metadata(uri: &str, default_artifact_root: &str) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(SqlStore::open(uri, default_artifact_root).await?))
}
