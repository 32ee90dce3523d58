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

pub mod artifacts;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use steward_core::Result;
use steward_core::access::{Principal, Role};
use steward_core::audit::{Audit, Break, LedgerEntry};
use steward_core::entities::{
    Batch, DatasetInput, Experiment, Metric, NewRun, Run, RunInfo, RunMetric, RunUpdate, Tag, ViewType,
};

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
#[async_trait]
pub trait MetadataStore: Send + Sync {
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
    /// Walks the whole ledger: the number of entries when intact, the first break otherwise.
    async fn verify_ledger(&self) -> Result<std::result::Result<i64, Break>>;

    async fn create_user(&self, audit: &Audit, name: &str, role: Role) -> Result<()>;
    /// Issues a new API token for a user; the clear token is returned once and only its
    /// digest is kept.
    async fn create_token(&self, audit: &Audit, user: &str, label: &str) -> Result<String>;
    /// The principal a clear token belongs to, if any.
    async fn authenticate(&self, token: &str) -> Result<Option<Principal>>;
    /// Whether any user exists (then the server requires authentication).
    async fn has_users(&self) -> Result<bool>;
}

/// Opens (and migrates) the metadata store named by a URI: `sqlite:///relative.db`,
/// `sqlite:////absolute.db`, a bare file path, or `postgresql://user@host:port/db`.
pub async fn open_metadata(uri: &str, default_artifact_root: &str) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(SqlStore::open(uri, default_artifact_root).await?))
}
