//! The route table: every HTTP route Steward answers, declared once with the permission it
//! needs and the largest body it reads. The router is built from this table and nothing
//! else, and each route carries its own permission check (`auth::enforce`), so a route
//! cannot exist without one; a path no route matches is answered 404 and a method a path
//! does not declare 405, whoever asks. `table()` gives the declarations to the generated
//! route × role test and to the OpenAPI document.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use steward_core::access::Perm;

use crate::openapi::{self as o, Doc};
use crate::{AppState, artifacts, auth, documents, error, registry, serving, steward_api, tracking, ui};

/// The largest body a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// JSON API requests: 16 MiB (MLflow's log-batch is at most 1 MB; leave headroom).
    Json,
    /// Scoring requests (batches of tensors, CSV): 64 MiB.
    Scoring,
    /// Artifact uploads, streamed to the store in parts: no limit on the whole.
    Streamed,
}

impl BodyLimit {
    pub fn bytes(self) -> Option<usize> {
        match self {
            BodyLimit::Json => Some(crate::request::MAX_JSON_BODY),
            BodyLimit::Scoring => Some(crate::SCORING_BODY_LIMIT),
            BodyLimit::Streamed => None,
        }
    }
}

/// One declared route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// axum's path syntax: `{name}` for a segment, `{*path}` for the rest.
    pub path: String,
    pub perm: Perm,
    pub body: BodyLimit,
    /// What the OpenAPI document says of it (every route of Steward's own API has one).
    pub doc: Option<Doc>,
}

struct Table {
    router: Router<AppState>,
    routes: Vec<Route>,
}

impl Table {
    fn at<H, T>(mut self, method: Method, path: &str, perm: Perm, body: BodyLimit, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        assert!(
            !self.routes.iter().any(|r| r.method == method && r.path == path),
            "route {method} {path} is declared twice"
        );
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        let limit = match body.bytes() {
            Some(n) => DefaultBodyLimit::max(n),
            None => DefaultBodyLimit::disable(),
        };
        let endpoint = on(filter, handler)
            .route_layer(limit)
            .route_layer(axum::middleware::from_fn(move |req, next| auth::enforce(perm, req, next)));
        self.router = self.router.route(path, endpoint);
        self.routes.push(Route { method, path: path.to_owned(), perm, body, doc: None });
        self
    }

    /// Documents the route declared last.
    fn doc(mut self, doc: Doc) -> Self {
        self.routes.last_mut().expect("a route to document").doc = Some(doc);
        self
    }

    /// A JSON API route.
    fn api<H, T>(self, method: Method, path: &str, perm: Perm, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.at(method, path, perm, BodyLimit::Json, handler)
    }

    /// An MLflow route, answered under `/api/2.0/mlflow` and its UI twin `/ajax-api/2.0/mlflow`.
    fn mlflow<H, T>(self, method: Method, sub: &str, perm: Perm, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.api(method.clone(), &format!("/api/2.0/mlflow{sub}"), perm, handler.clone())
            .api(method, &format!("/ajax-api/2.0/mlflow{sub}"), perm, handler)
    }

    /// An MLflow artifact-proxy route, under `/api/2.0/mlflow-artifacts` and its UI twin.
    fn artifacts<H, T>(self, method: Method, sub: &str, perm: Perm, body: BodyLimit, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.at(method.clone(), &format!("/api/2.0/mlflow-artifacts{sub}"), perm, body, handler.clone())
            .at(method, &format!("/ajax-api/2.0/mlflow-artifacts{sub}"), perm, body, handler)
    }

    /// A scoring route: reads a model's answer, changes nothing but the prediction log.
    fn scoring<H, T>(self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.at(method, path, Perm::Read, BodyLimit::Scoring, handler)
    }
}

/// Every route, with its handler.
fn build() -> Table {
    use Method as M;
    use Perm::*;
    use registry as r;
    use serving::{api as d, oip, scoring};
    use steward_api as s;
    use tracking as t;
    let table = Table { router: Router::new(), routes: Vec::new() };
    table
        // The UI's files hold no data; its views call the API with the caller's credentials.
        .api(M::GET, "/", Public, ui::index)
        .api(M::GET, "/ui/app.js", Public, ui::script)
        .api(M::GET, "/ui/app.css", Public, ui::style)
        .api(M::GET, "/health", Public, crate::health)
        .api(M::GET, "/version", Public, crate::version)
        .api(M::GET, "/api/3.0/mlflow/server-info", Public, crate::server_info)
        .api(M::GET, "/ajax-api/3.0/mlflow/server-info", Public, crate::server_info)
        .api(M::GET, "/metrics", Public, d::metrics)
        // The contract of Steward's own API, generated from this table; it holds no data.
        .api(M::GET, "/api/steward/v1/openapi.json", Public, o::get)
        .doc(o::OPENAPI)
        // MLflow tracking.
        .mlflow(M::POST, "/experiments/create", Write, t::create_experiment)
        .mlflow(M::GET, "/experiments/get", Read, t::get_experiment)
        .mlflow(M::GET, "/experiments/get-by-name", Read, t::get_experiment_by_name)
        .mlflow(M::GET, "/experiments/search", Read, t::search_experiments)
        .mlflow(M::POST, "/experiments/search", Read, t::search_experiments)
        .mlflow(M::POST, "/experiments/update", Write, t::update_experiment)
        .mlflow(M::POST, "/experiments/delete", Write, t::delete_experiment)
        .mlflow(M::POST, "/experiments/restore", Write, t::restore_experiment)
        .mlflow(M::POST, "/experiments/set-experiment-tag", Write, t::set_experiment_tag)
        .mlflow(M::POST, "/experiments/delete-experiment-tag", Write, t::delete_experiment_tag)
        .mlflow(M::POST, "/runs/create", Write, t::create_run)
        .mlflow(M::GET, "/runs/get", Read, t::get_run)
        .mlflow(M::POST, "/runs/update", Write, t::update_run)
        .mlflow(M::POST, "/runs/delete", Write, t::delete_run)
        .mlflow(M::POST, "/runs/restore", Write, t::restore_run)
        .mlflow(M::POST, "/runs/search", Read, t::search_runs)
        .mlflow(M::POST, "/runs/log-metric", Write, t::log_metric)
        .mlflow(M::POST, "/runs/log-parameter", Write, t::log_param)
        .mlflow(M::POST, "/runs/set-tag", Write, t::set_tag)
        .mlflow(M::POST, "/runs/delete-tag", Write, t::delete_tag)
        .mlflow(M::POST, "/runs/log-batch", Write, t::log_batch)
        .mlflow(M::POST, "/runs/log-inputs", Write, t::log_inputs)
        .mlflow(M::POST, "/runs/outputs", Write, r::log_outputs)
        .mlflow(M::GET, "/metrics/get-history", Read, t::get_metric_history)
        .mlflow(M::GET, "/metrics/get-history-bulk-interval", Read, t::get_metric_history_bulk_interval)
        .mlflow(M::GET, "/artifacts/list", Read, t::list_artifacts)
        // MLflow model registry. Protected aliases, the Production stage and removing what
        // holds them are judged further by the handlers (role and four-eyes).
        .mlflow(M::POST, "/registered-models/create", Write, r::create_registered_model)
        .mlflow(M::GET, "/registered-models/get", Read, r::get_registered_model)
        .mlflow(M::PATCH, "/registered-models/update", Write, r::update_registered_model)
        .mlflow(M::POST, "/registered-models/rename", Write, r::rename_registered_model)
        .mlflow(M::DELETE, "/registered-models/delete", Write, r::delete_registered_model)
        .mlflow(M::GET, "/registered-models/search", Read, r::search_registered_models)
        .mlflow(M::GET, "/registered-models/get-latest-versions", Read, r::latest_versions)
        .mlflow(M::POST, "/registered-models/get-latest-versions", Read, r::latest_versions)
        .mlflow(M::POST, "/registered-models/set-tag", Write, r::set_registered_model_tag)
        .mlflow(M::DELETE, "/registered-models/delete-tag", Write, r::delete_registered_model_tag)
        .mlflow(M::POST, "/registered-models/alias", Write, r::set_alias)
        .mlflow(M::DELETE, "/registered-models/alias", Write, r::delete_alias)
        .mlflow(M::GET, "/registered-models/alias", Read, r::get_by_alias)
        .mlflow(M::POST, "/model-versions/create", Write, r::create_model_version)
        .mlflow(M::GET, "/model-versions/get", Read, r::get_model_version)
        .mlflow(M::PATCH, "/model-versions/update", Write, r::update_model_version)
        .mlflow(M::POST, "/model-versions/transition-stage", Write, r::transition_stage)
        .mlflow(M::DELETE, "/model-versions/delete", Write, r::delete_model_version)
        .mlflow(M::GET, "/model-versions/get-download-uri", Read, r::download_uri)
        .mlflow(M::GET, "/model-versions/search", Read, r::search_model_versions)
        .mlflow(M::POST, "/model-versions/set-tag", Write, r::set_model_version_tag)
        .mlflow(M::DELETE, "/model-versions/delete-tag", Write, r::delete_model_version_tag)
        .mlflow(M::POST, "/logged-models", Write, r::create_logged_model)
        .mlflow(M::POST, "/logged-models/search", Read, r::search_logged_models)
        .mlflow(M::GET, "/logged-models/{id}", Read, r::get_logged_model)
        .mlflow(M::PATCH, "/logged-models/{id}", Write, r::finalize_logged_model)
        .mlflow(M::DELETE, "/logged-models/{id}", Write, r::delete_logged_model)
        .mlflow(M::PATCH, "/logged-models/{id}/tags", Write, r::set_logged_model_tags)
        .mlflow(M::DELETE, "/logged-models/{id}/tags/{key}", Write, r::delete_logged_model_tag)
        .mlflow(M::POST, "/logged-models/{id}/params", Write, r::log_logged_model_params)
        .mlflow(M::GET, "/logged-models/{id}/artifacts/directories", Read, r::list_logged_model_artifacts)
        // MLflow's artifact proxy.
        .artifacts(M::GET, "/artifacts", Read, BodyLimit::Json, artifacts::list)
        .artifacts(M::GET, "/artifacts/{*path}", Read, BodyLimit::Json, artifacts::download)
        .artifacts(M::PUT, "/artifacts/{*path}", Write, BodyLimit::Streamed, artifacts::upload)
        .artifacts(M::DELETE, "/artifacts/{*path}", Write, BodyLimit::Json, artifacts::delete)
        // Steward's own API: the ledger, the registry's history, lineage and documents.
        .api(M::GET, "/api/steward/v1/audit", Read, s::ledger).doc(o::LEDGER)
        .api(M::GET, "/api/steward/v1/audit/verify", Read, s::verify).doc(o::VERIFY)
        .api(M::GET, "/api/steward/v1/registry/models/{name}/history", Read, registry::history).doc(o::HISTORY)
        .api(M::GET, "/api/steward/v1/registry/models/{name}/aliases/{alias}", Read, registry::alias_at).doc(o::ALIAS_AT)
        .api(M::GET, "/api/steward/v1/registry/models/{name}/versions/{version}/lineage", Read, s::model_lineage).doc(o::MODEL_LINEAGE)
        .api(M::GET, "/api/steward/v1/registry/models/{name}/versions/{version}/documents/{kind}", Read, documents::get).doc(o::DOCUMENT)
        // The agent: incidents and the approval queue.
        .api(M::GET, "/api/steward/v1/incidents", Read, s::incidents).doc(o::INCIDENTS)
        .api(M::GET, "/api/steward/v1/agent/actions", Read, s::agent_actions).doc(o::ACTIONS)
        .api(M::POST, "/api/steward/v1/agent/actions/{id}/decision", Approve, s::decide_action).doc(o::DECIDE)
        // Datasets.
        .api(M::POST, "/api/steward/v1/datasets", Write, s::register_dataset).doc(o::REGISTER_DATASET)
        .api(M::GET, "/api/steward/v1/datasets/{name}", Read, s::dataset_versions).doc(o::DATASET_VERSIONS)
        .api(M::GET, "/api/steward/v1/datasets/{name}/versions/{version}/lineage", Read, s::dataset_lineage).doc(o::DATASET_LINEAGE)
        // Users and tokens.
        .api(M::GET, "/api/steward/v1/users", Admin, s::users).doc(o::USERS)
        .api(M::POST, "/api/steward/v1/users", Admin, s::create_user).doc(o::CREATE_USER)
        .api(M::PATCH, "/api/steward/v1/users/{name}", Admin, s::update_user).doc(o::UPDATE_USER)
        .api(M::DELETE, "/api/steward/v1/users/{name}", Admin, s::delete_user).doc(o::DELETE_USER)
        .api(M::GET, "/api/steward/v1/tokens", Admin, s::tokens).doc(o::TOKENS)
        .api(M::POST, "/api/steward/v1/tokens", Admin, s::create_token).doc(o::CREATE_TOKEN)
        .api(M::DELETE, "/api/steward/v1/tokens/{id}", Admin, s::revoke_token).doc(o::REVOKE_TOKEN)
        // Deployments: what production serves.
        .api(M::GET, "/api/steward/v1/deployments", Read, d::list).doc(o::DEPLOYMENTS)
        .api(M::POST, "/api/steward/v1/deployments", Deploy, d::create).doc(o::CREATE_DEPLOYMENT)
        .api(M::GET, "/api/steward/v1/deployments/{name}", Read, d::get).doc(o::DEPLOYMENT)
        .api(M::PATCH, "/api/steward/v1/deployments/{name}", DeployOrAgentAction, d::update).doc(o::UPDATE_DEPLOYMENT)
        .api(M::DELETE, "/api/steward/v1/deployments/{name}", Deploy, d::delete).doc(o::DELETE_DEPLOYMENT)
        .api(M::POST, "/api/steward/v1/deployments/{name}/stop", Deploy, d::stop).doc(o::STOP)
        .api(M::GET, "/api/steward/v1/deployments/{name}/predictions", Read, d::predictions).doc(o::PREDICTIONS)
        .api(M::PUT, "/api/steward/v1/deployments/{name}/monitor", Deploy, d::put_monitor).doc(o::PUT_MONITOR)
        .api(M::DELETE, "/api/steward/v1/deployments/{name}/monitor", Deploy, d::delete_monitor).doc(o::DELETE_MONITOR)
        .api(M::GET, "/api/steward/v1/deployments/{name}/monitor/metrics", Read, d::monitor_metrics).doc(o::MONITOR_METRICS)
        .api(M::GET, "/api/steward/v1/alerts", Read, d::alerts).doc(o::ALERTS)
        // Ground truth is data, like the predictions it labels: anyone who may score may label.
        .api(M::POST, "/api/steward/v1/feedback", Read, d::feedback).doc(o::FEEDBACK)
        .api(M::GET, "/api/steward/v1/predictions/{id}", Read, d::prediction).doc(o::PREDICTION)
        // Scoring: Open Inference Protocol v2, KServe v1, MLflow's invocations.
        .api(M::GET, "/v2", Read, oip::server_metadata)
        .api(M::GET, "/v2/health/live", Public, oip::live)
        .api(M::GET, "/v2/health/ready", Public, oip::ready)
        .api(M::GET, "/v2/models/{name}", Read, oip::model_metadata)
        .api(M::GET, "/v2/models/{name}/ready", Read, oip::model_ready)
        .scoring(M::POST, "/v2/models/{name}/infer", oip::infer)
        .api(M::GET, "/v2/models/{name}/versions/{version}", Read, oip::model_metadata)
        .api(M::GET, "/v2/models/{name}/versions/{version}/ready", Read, oip::model_ready)
        .scoring(M::POST, "/v2/models/{name}/versions/{version}/infer", oip::infer)
        .api(M::GET, "/v1/models/{name}", Read, scoring::v1_model)
        .scoring(M::POST, "/v1/models/{name}", scoring::v1_predict)
        .scoring(M::POST, "/deployments/{name}/invocations", scoring::invocations)
}

/// Every declared route.
pub fn table() -> Vec<Route> {
    build().routes
}

/// The router: the table's routes, 404 for any other path.
pub fn router() -> Router<AppState> {
    build().router.fallback(error::not_found)
}
