//! Steward's HTTP edge: the MLflow-compatible REST API (tracking and the artifact proxy),
//! health and version endpoints. The only crate that knows MLflow's wire format.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let store = steward_store::open_metadata("sqlite:///steward-data/steward.db", "mlflow-artifacts:/").await?;
//! let artifacts = steward_store::ArtifactStore::open("steward-data/artifacts")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! steward_server::serve(listener, steward_server::AppState::new(store, artifacts), std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod agent;
pub mod documents;
pub mod reasoner;
mod artifacts;
mod auth;
mod error;
mod registry;
mod request;
pub mod serving;
mod ui;
mod steward_api;
mod tracking;
mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde_json::json;
use steward_store::{ArtifactStore, Backend, MetadataStore};

pub use auth::AuthMode;
pub use error::ApiError;
pub use request::Actor;
pub use steward_api::ledger_entry_json;

/// The MLflow version whose REST API Steward speaks; `/version` reports it so that clients
/// gating features on the server version behave as with that MLflow.
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";

/// The largest scoring request body: 64 MiB.
pub const SCORING_BODY_LIMIT: usize = 64 << 20;

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: ArtifactStore,
    pub auth: AuthMode,
    /// Aliases only validators and admins may set, never on their own versions.
    pub protected_aliases: Arc<Vec<String>>,
    /// Live deployments, the prediction log and serving metrics.
    pub serving: Arc<serving::Serving>,
    /// The agent's policies (shown in model documents as the declared retraining changes).
    pub policies: Arc<Vec<steward_agent::Policy>>,
}

impl AppState {
    /// An open server (no authentication) with the default protected aliases.
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Self {
        AppState {
            serving: serving::Serving::new(store.clone(), artifacts.clone()),
            store,
            artifacts,
            auth: AuthMode::Open,
            protected_aliases: Arc::new(steward_core::access::DEFAULT_PROTECTED_ALIASES.iter().map(|a| a.to_string()).collect()),
            policies: Arc::new(Vec::new()),
        }
    }

    pub fn with_policies(mut self, policies: Vec<steward_agent::Policy>) -> Self {
        self.policies = Arc::new(policies);
        self
    }

    pub fn with_auth(mut self, auth: AuthMode) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_protected_aliases(mut self, aliases: Vec<String>) -> Self {
        self.protected_aliases = Arc::new(aliases);
        self
    }
}

fn tracking_routes() -> Router<AppState> {
    use registry::{self as r, log_outputs as runs_outputs};
    use tracking::*;
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route("/experiments/search", get(search_experiments).post(search_experiments))
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route("/experiments/delete-experiment-tag", post(delete_experiment_tag))
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/search", post(search_runs))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/metrics/get-history", get(get_metric_history))
        .route("/metrics/get-history-bulk-interval", get(get_metric_history_bulk_interval))
        .route("/artifacts/list", get(list_artifacts))
        .route("/runs/outputs", post(runs_outputs))
        .route("/registered-models/create", post(r::create_registered_model))
        .route("/registered-models/get", get(r::get_registered_model))
        .route("/registered-models/update", patch(r::update_registered_model))
        .route("/registered-models/rename", post(r::rename_registered_model))
        .route("/registered-models/delete", delete(r::delete_registered_model))
        .route("/registered-models/search", get(r::search_registered_models))
        .route("/registered-models/get-latest-versions", get(r::latest_versions).post(r::latest_versions))
        .route("/registered-models/set-tag", post(r::set_registered_model_tag))
        .route("/registered-models/delete-tag", delete(r::delete_registered_model_tag))
        .route("/registered-models/alias", post(r::set_alias).delete(r::delete_alias).get(r::get_by_alias))
        .route("/model-versions/create", post(r::create_model_version))
        .route("/model-versions/get", get(r::get_model_version))
        .route("/model-versions/update", patch(r::update_model_version))
        .route("/model-versions/transition-stage", post(r::transition_stage))
        .route("/model-versions/delete", delete(r::delete_model_version))
        .route("/model-versions/get-download-uri", get(r::download_uri))
        .route("/model-versions/search", get(r::search_model_versions))
        .route("/model-versions/set-tag", post(r::set_model_version_tag))
        .route("/model-versions/delete-tag", delete(r::delete_model_version_tag))
        .route("/logged-models", post(r::create_logged_model))
        .route("/logged-models/search", post(r::search_logged_models))
        .route("/logged-models/{id}", get(r::get_logged_model).patch(r::finalize_logged_model).delete(r::delete_logged_model))
        .route("/logged-models/{id}/tags", patch(r::set_logged_model_tags))
        .route("/logged-models/{id}/tags/{key}", delete(r::delete_logged_model_tag))
        .route("/logged-models/{id}/params", post(r::log_logged_model_params))
        .route("/logged-models/{id}/artifacts/directories", get(r::list_logged_model_artifacts))
        .layer(DefaultBodyLimit::max(request::MAX_JSON_BODY))
}

fn artifact_routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(artifacts::list))
        .route("/artifacts/{*path}", get(artifacts::download).put(artifacts::upload).delete(artifacts::delete))
        // Uploads stream to the store; their size is not bounded by a body limit.
        .layer(DefaultBodyLimit::disable())
}

async fn server_info(axum::extract::State(s): axum::extract::State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "store_type": "SqlStore",
        "steward_backend": match s.store.backend() { Backend::Sqlite => "sqlite", Backend::Postgres => "postgresql" },
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": { "gateway": false },
    }))
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/app.css", get(ui::style))
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .nest("/api/2.0/mlflow", tracking_routes())
        .nest("/ajax-api/2.0/mlflow", tracking_routes())
        .route("/api/steward/v1/audit", get(steward_api::ledger))
        .route("/api/steward/v1/audit/verify", get(steward_api::verify))
        .nest("/api/2.0/mlflow-artifacts", artifact_routes())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifact_routes())
        .route("/api/steward/v1/registry/models/{name}/history", get(registry::history))
        .route("/api/steward/v1/registry/models/{name}/aliases/{alias}", get(registry::alias_at))
        .route("/api/steward/v1/registry/models/{name}/versions/{version}/lineage", get(steward_api::model_lineage))
        .route("/api/steward/v1/registry/models/{name}/versions/{version}/documents/{kind}", get(documents::get))
        .route("/api/steward/v1/incidents", get(steward_api::incidents))
        .route("/api/steward/v1/agent/actions", get(steward_api::agent_actions))
        .route("/api/steward/v1/agent/actions/{id}/decision", axum::routing::post(steward_api::decide_action))
        .route("/api/steward/v1/datasets", axum::routing::post(steward_api::register_dataset))
        .route("/api/steward/v1/datasets/{name}", get(steward_api::dataset_versions))
        .route("/api/steward/v1/datasets/{name}/versions/{version}/lineage", get(steward_api::dataset_lineage))
        .route("/api/steward/v1/users", axum::routing::post(steward_api::create_user))
        .route("/api/steward/v1/deployments", get(serving::api::list).post(serving::api::create))
        .route("/api/steward/v1/deployments/{name}", get(serving::api::get).patch(serving::api::update).delete(serving::api::delete))
        .route("/api/steward/v1/deployments/{name}/predictions", get(serving::api::predictions))
        .route("/api/steward/v1/deployments/{name}/stop", post(serving::api::stop))
        .route("/api/steward/v1/deployments/{name}/monitor", axum::routing::put(serving::api::put_monitor).delete(serving::api::delete_monitor))
        .route("/api/steward/v1/deployments/{name}/monitor/metrics", get(serving::api::monitor_metrics))
        .route("/api/steward/v1/alerts", get(serving::api::alerts))
        .route("/api/steward/v1/feedback", post(serving::api::feedback))
        .route("/api/steward/v1/predictions/{id}", get(serving::api::prediction))
        .route("/metrics", get(serving::api::metrics))
        .route("/v2", get(serving::oip::server_metadata))
        .route("/v2/health/live", get(serving::oip::live))
        .route("/v2/health/ready", get(serving::oip::ready))
        .route("/v2/models/{name}", get(serving::oip::model_metadata))
        .route("/v2/models/{name}/ready", get(serving::oip::model_ready))
        .route("/v2/models/{name}/infer", post(serving::oip::infer))
        .route("/v2/models/{name}/versions/{version}", get(serving::oip::model_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(serving::oip::model_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(serving::oip::infer))
        .route("/v1/models/{name}", get(serving::scoring::v1_model).post(serving::scoring::v1_predict))
        .route("/deployments/{name}/invocations", post(serving::scoring::invocations))
        .route("/api/steward/v1/tokens", axum::routing::post(steward_api::create_token))
        .fallback(error::not_found)
        // Scoring bodies (batches of tensors) may exceed axum's 2 MiB default; routes with a
        // limit of their own (the MLflow API, artifact uploads) keep it.
        .layer(DefaultBodyLimit::max(SCORING_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::layer))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.serving.start();
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
