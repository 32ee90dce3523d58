//! The role matrix: every mutating endpoint × every role, with and without tokens, against
//! the real server with authentication on. No unauthorised request succeeds, every refusal
//! carries the right code, and every successful mutation leaves exactly one ledger entry
//! naming its actor.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_core::access::Role;
use steward_store::MetadataStore;

struct App {
    base: String,
    http: reqwest::Client,
    store: Arc<dyn MetadataStore>,
    tokens: HashMap<&'static str, String>,
}

const USERS: [(&str, Role); 6] = [
    ("vera", Role::Viewer),
    ("sam", Role::Scientist),
    ("sid", Role::Scientist),
    ("val", Role::Validator),
    ("vic", Role::Validator),
    ("ada", Role::Admin),
];

async fn spawn_app() -> App {
    let dir = std::env::temp_dir().join(format!("steward-access-{}", uuid::Uuid::new_v4().simple()));
    let s = support::spawn_secured(&format!("sqlite:///{}/steward.db", dir.display()), &dir, &USERS).await;
    App { base: s.base, http: reqwest::Client::new(), store: s.store, tokens: s.tokens }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Caller {
    Nobody,
    BadToken,
    User(&'static str),
    /// The user's token as the password of HTTP basic auth.
    Basic(&'static str),
}

impl App {
    async fn call(&self, caller: Caller, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, url);
        match caller {
            Caller::Nobody => {}
            Caller::BadToken => req = req.bearer_auth("stw_not_a_real_token"),
            Caller::User(u) => req = req.bearer_auth(&self.tokens[u]),
            Caller::Basic(u) => req = req.basic_auth(u, Some(&self.tokens[u])),
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn ok(&self, caller: Caller, method: Method, path: &str, body: Value) -> Value {
        let (status, v) = self.call(caller, method, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        v
    }
}

const API: &str = "/api/2.0/mlflow";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_endpoint_refuses_every_unauthorised_caller() {
    let app = spawn_app().await;
    let sam = Caller::User("sam");
    // Fixtures made by a scientist.
    let exp = app.ok(sam, Method::POST, &format!("{API}/experiments/create"), json!({"name": "fixtures"})).await["experiment_id"].as_str().unwrap().to_owned();
    let run = app.ok(sam, Method::POST, &format!("{API}/runs/create"), json!({"experiment_id": exp})).await["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    app.ok(sam, Method::POST, &format!("{API}/registered-models/create"), json!({"name": "credit"})).await;
    app.ok(sam, Method::POST, &format!("{API}/model-versions/create"), json!({"name": "credit", "source": "s3://bucket/m1"})).await;
    let lm = app.ok(sam, Method::POST, &format!("{API}/logged-models"), json!({"experiment_id": exp, "name": "clf"})).await["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let n = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || format!("n{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    // (method, path, body, admin only)
    let endpoints = |u: &str| -> Vec<(Method, String, Option<Value>, bool)> {
        vec![
            (Method::POST, format!("{API}/experiments/create"), Some(json!({"name": format!("e-{u}")})), false),
            (Method::POST, format!("{API}/experiments/set-experiment-tag"), Some(json!({"experiment_id": exp, "key": "k", "value": u})), false),
            (Method::POST, format!("{API}/experiments/delete-experiment-tag"), Some(json!({"experiment_id": exp, "key": "k"})), false),
            (Method::POST, format!("{API}/experiments/update"), Some(json!({"experiment_id": exp, "new_name": format!("fixtures-{u}")})), false),
            (Method::POST, format!("{API}/runs/create"), Some(json!({"experiment_id": exp})), false),
            (Method::POST, format!("{API}/runs/log-metric"), Some(json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1})), false),
            (Method::POST, format!("{API}/runs/log-parameter"), Some(json!({"run_id": run, "key": format!("p-{u}"), "value": "1"})), false),
            (Method::POST, format!("{API}/runs/set-tag"), Some(json!({"run_id": run, "key": "t", "value": u})), false),
            (Method::POST, format!("{API}/runs/delete-tag"), Some(json!({"run_id": run, "key": "t"})), false),
            (Method::POST, format!("{API}/runs/log-batch"), Some(json!({"run_id": run, "tags": [{"key": "b", "value": u}]})), false),
            (Method::POST, format!("{API}/runs/log-inputs"), Some(json!({"run_id": run, "datasets": [{"dataset": {"name": "d", "digest": "x1", "source_type": "local", "source": "f"}}]})), false),
            (Method::POST, format!("{API}/runs/update"), Some(json!({"run_id": run, "status": "RUNNING"})), false),
            (Method::POST, format!("{API}/runs/outputs"), Some(json!({"run_id": run, "models": [{"model_id": lm, "step": 1}]})), false),
            (Method::POST, format!("{API}/runs/delete"), Some(json!({"run_id": run})), false),
            (Method::POST, format!("{API}/runs/restore"), Some(json!({"run_id": run})), false),
            (Method::PUT, format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{u}.txt"), None, false),
            (Method::DELETE, format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{u}.txt"), None, false),
            (Method::POST, format!("{API}/registered-models/create"), Some(json!({"name": format!("m-{u}")})), false),
            (Method::PATCH, format!("{API}/registered-models/update"), Some(json!({"name": "credit", "description": u})), false),
            (Method::POST, format!("{API}/registered-models/set-tag"), Some(json!({"name": "credit", "key": "k", "value": u})), false),
            (Method::DELETE, format!("{API}/registered-models/delete-tag"), Some(json!({"name": "credit", "key": "k"})), false),
            (Method::POST, format!("{API}/model-versions/create"), Some(json!({"name": "credit", "source": format!("s3://bucket/{u}")})), false),
            (Method::PATCH, format!("{API}/model-versions/update"), Some(json!({"name": "credit", "version": "1", "description": u})), false),
            (Method::POST, format!("{API}/model-versions/set-tag"), Some(json!({"name": "credit", "version": "1", "key": "k", "value": u})), false),
            (Method::DELETE, format!("{API}/model-versions/delete-tag"), Some(json!({"name": "credit", "version": "1", "key": "k"})), false),
            (Method::POST, format!("{API}/model-versions/transition-stage"), Some(json!({"name": "credit", "version": "1", "stage": "Staging"})), false),
            (Method::POST, format!("{API}/registered-models/alias"), Some(json!({"name": "credit", "alias": "candidate", "version": "1"})), false),
            (Method::DELETE, format!("{API}/registered-models/alias"), Some(json!({"name": "credit", "alias": "candidate"})), false),
            (Method::POST, format!("{API}/logged-models"), Some(json!({"experiment_id": exp, "name": format!("lm-{u}")})), false),
            (Method::PATCH, format!("{API}/logged-models/{lm}/tags"), Some(json!({"tags": [{"key": "k", "value": u}]})), false),
            (Method::POST, format!("{API}/logged-models/{lm}/params"), Some(json!({"params": [{"key": format!("p-{u}"), "value": "1"}]})), false),
            (Method::PATCH, format!("{API}/logged-models/{lm}"), Some(json!({"model_id": lm, "status": "LOGGED_MODEL_READY"})), false),
            (Method::POST, "/api/steward/v1/users".into(), Some(json!({"name": format!("u-{u}"), "role": "viewer"})), true),
            (Method::POST, "/api/steward/v1/tokens".into(), Some(json!({"user": "vera", "label": u})), true),
        ]
    };

    let mut successes: HashMap<&str, usize> = HashMap::new();
    let callers = [
        Caller::Nobody,
        Caller::BadToken,
        Caller::User("vera"),
        Caller::User("sid"),
        Caller::Basic("val"),
        Caller::User("ada"),
    ];
    let before = app.store.ledger(0, 100_000).await.unwrap().len();
    for caller in callers {
        let tag = fresh();
        for (method, path, body, admin_only) in endpoints(&tag) {
            let (status, v) = app.call(caller, method.clone(), &path, body.clone()).await;
            let code = v["error_code"].as_str().unwrap_or("");
            match caller {
                Caller::Nobody | Caller::BadToken => {
                    assert_eq!((status, code), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"), "{caller:?} {method} {path}: {v}");
                }
                Caller::User("vera") => {
                    assert_eq!((status, code), (StatusCode::FORBIDDEN, "PERMISSION_DENIED"), "viewer {method} {path}: {v}");
                }
                Caller::User(u) | Caller::Basic(u) if admin_only && u != "ada" => {
                    assert_eq!((status, code), (StatusCode::FORBIDDEN, "PERMISSION_DENIED"), "{u} {method} {path}: {v}");
                }
                Caller::User(u) | Caller::Basic(u) => {
                    assert_eq!(status, StatusCode::OK, "{u} should be allowed {method} {path}: {v}");
                    *successes.entry(u).or_default() += 1;
                }
            }
        }
    }
    // Reads stay open to every authenticated role, and closed to strangers.
    let (status, _) = app.call(Caller::User("vera"), Method::POST, &format!("{API}/runs/search"), Some(json!({"experiment_ids": [exp]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.call(Caller::Nobody, Method::GET, &format!("{API}/experiments/get?experiment_id=0"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.call(Caller::Nobody, Method::GET, "/health", None).await;
    assert_eq!(status, StatusCode::OK);

    // Exactly one ledger entry per successful mutation, naming its actor.
    let entries = app.store.ledger(before as i64, 100_000).await.unwrap();
    let mut by_actor: HashMap<String, usize> = HashMap::new();
    for e in &entries {
        *by_actor.entry(e.actor.clone()).or_default() += 1;
    }
    for (u, n) in &successes {
        assert_eq!(by_actor.get(*u).copied().unwrap_or(0), *n, "ledger entries for {u}");
    }
    assert_eq!(entries.len(), successes.values().sum::<usize>(), "reads and refusals write nothing");
    assert_eq!(app.store.verify_ledger(&[]).await.unwrap().map_err(|b| b.seq), Ok(app.store.ledger(0, 100_000).await.unwrap().len() as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_needs_a_validator_who_did_not_create_the_version() {
    let app = spawn_app().await;
    app.ok(Caller::User("sam"), Method::POST, &format!("{API}/registered-models/create"), json!({"name": "credit"})).await;
    app.ok(Caller::User("sam"), Method::POST, &format!("{API}/model-versions/create"), json!({"name": "credit", "source": "s3://b/1"})).await;
    app.ok(Caller::User("val"), Method::POST, &format!("{API}/model-versions/create"), json!({"name": "credit", "source": "s3://b/2"})).await;
    let alias = |v: &str, a: &str| json!({"name": "credit", "alias": a, "version": v});
    let stage = |v: &str| json!({"name": "credit", "version": v, "stage": "production"});
    let path_alias = format!("{API}/registered-models/alias");
    let path_stage = format!("{API}/model-versions/transition-stage");

    let refused = [
        (Caller::User("sam"), path_alias.clone(), alias("1", "champion"), "only a validator or admin"),
        (Caller::User("sid"), path_alias.clone(), alias("1", "production"), "only a validator or admin"),
        (Caller::User("sam"), path_stage.clone(), stage("1"), "only a validator or admin"),
        (Caller::User("val"), path_alias.clone(), alias("2", "champion"), "four-eyes rule"),
        (Caller::User("val"), path_stage.clone(), stage("2"), "four-eyes rule"),
        (Caller::User("vera"), path_alias.clone(), alias("1", "champion"), "has role viewer"),
    ];
    for (caller, path, body, why) in refused {
        let (status, v) = app.call(caller, Method::POST, &path, Some(body.clone())).await;
        assert_eq!((status, v["error_code"].as_str()), (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED")), "{caller:?} {body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(why), "{caller:?} {body}: {v}");
    }
    // Unprotected aliases are a scientist's to set.
    app.ok(Caller::User("sam"), Method::POST, &path_alias, alias("1", "candidate")).await;
    // A second validator may promote either version; an admin too, but not their own.
    app.ok(Caller::User("val"), Method::POST, &path_alias, alias("1", "champion")).await;
    app.ok(Caller::User("vic"), Method::POST, &path_alias, alias("2", "champion")).await;
    app.ok(Caller::User("vic"), Method::POST, &path_stage, stage("2")).await;
    app.ok(Caller::User("ada"), Method::POST, &path_stage, stage("1")).await;
    let (status, v) = app.call(Caller::User("sam"), Method::DELETE, &path_alias, Some(json!({"name": "credit", "alias": "champion"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (_, mv) = app.call(Caller::User("vera"), Method::GET, &format!("{API}/registered-models/alias?name=credit&alias=champion"), None).await;
    assert_eq!(mv["model_version"]["version"], "2");
}
