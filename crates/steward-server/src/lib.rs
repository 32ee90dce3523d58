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
pub mod anchor;
pub mod documents;
pub mod reasoner;
mod artifacts;
mod auth;
mod error;
pub mod memory;
pub mod openapi;
mod registry;
mod request;
pub mod routes;
pub mod serving;
mod ui;
mod steward_api;
mod tracking;
mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::{Json, Router};
use serde_json::json;
use steward_store::{ArtifactStore, Backend, MetadataStore};

pub use auth::{AGENT_ACTION_HEADER, AuthMode, Caller, OPEN_RECHECK};
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
    /// Whether requests must authenticate (open mode ends when the first user exists).
    pub auth: Arc<auth::Gate>,
    /// Aliases only validators and admins may set, never on their own versions.
    pub protected_aliases: Arc<Vec<String>>,
    /// Live deployments, the prediction log and serving metrics.
    pub serving: Arc<serving::Serving>,
    /// The agent's policies (shown in model documents as the declared retraining changes).
    pub policies: Arc<Vec<steward_agent::Policy>>,
    /// Signs the ledger's head outside the database (none: the ledger's end is not anchored).
    pub anchor: Option<Arc<anchor::Anchor>>,
}

impl AppState {
    /// An open server (no authentication) with the default protected aliases.
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Self {
        AppState {
            serving: serving::Serving::new(store.clone(), artifacts.clone()),
            store,
            artifacts,
            auth: Arc::new(auth::Gate::new(AuthMode::Open)),
            protected_aliases: Arc::new(steward_core::access::DEFAULT_PROTECTED_ALIASES.iter().map(|a| a.to_string()).collect()),
            policies: Arc::new(Vec::new()),
            anchor: None,
        }
    }

    /// Durable prediction logging: a prediction is answered only once its record is committed.
    pub fn with_durable_predictions(self) -> Self {
        self.serving.log.set_durable(true);
        self
    }

    /// The hosts (or `host:port`) monitors may post alerts to; none by default.
    pub fn with_webhook_allow(self, hosts: Vec<String>) -> Self {
        self.serving.set_webhook_allow(hosts);
        self
    }

    pub fn with_anchor(mut self, anchor: Arc<anchor::Anchor>) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// The ledger's signed checkpoints (empty without an anchor), for verification.
    pub async fn checkpoints(&self) -> steward_core::Result<Vec<steward_core::anchor::Checkpoint>> {
        match &self.anchor {
            Some(a) => a.checkpoints().await,
            None => Ok(Vec::new()),
        }
    }

    pub fn with_policies(mut self, policies: Vec<steward_agent::Policy>) -> Self {
        self.policies = Arc::new(policies);
        self
    }

    pub fn with_auth(mut self, auth: AuthMode) -> Self {
        self.auth = Arc::new(auth::Gate::new(auth));
        self
    }

    pub fn with_protected_aliases(mut self, aliases: Vec<String>) -> Self {
        self.protected_aliases = Arc::new(aliases);
        self
    }
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

async fn health() -> &'static str {
    "OK"
}

async fn version() -> &'static str {
    MLFLOW_COMPAT_VERSION
}

/// The whole HTTP application: the route table's routes, each checking its own permission,
/// behind the layer that works out who is calling.
pub fn router(state: AppState) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::layer))
        .layer(axum::middleware::from_fn(error::json_refusals))
        .with_state(state)
}

/// How long a connection may take to send a request's headers — and how long an idle
/// connection (a fresh one, or a kept-alive one between requests) stays open. A slow or
/// silent client holds a connection no longer than this.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves until `shutdown` resolves, then finishes in-flight requests and signs the ledger's
/// final head. Connections speak HTTP/1.1 (keep-alive) and are closed when their headers do
/// not arrive within [`HEADER_READ_TIMEOUT`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with another header-read (and idle) timeout.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    memory::configure();
    state.serving.start();
    if let Some(a) = &state.anchor {
        a.start(state.store.clone());
    }
    let (store, anchor) = (state.store.clone(), state.anchor.clone());
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: back off instead of spinning, keep serving.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    if let Some(a) = anchor {
        match a.checkpoint_now(store.as_ref()).await {
            Ok(Some(c)) => tracing::info!(seq = c.seq, "ledger checkpoint signed at shutdown"),
            Ok(None) => {}
            Err(e) => tracing::error!("ledger checkpoint at shutdown: {}", e.message()),
        }
    }
    Ok(())
}
