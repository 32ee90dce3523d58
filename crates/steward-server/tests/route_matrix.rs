//! The generated authorization matrix: every declared route × every method × every kind of
//! caller, against the real server with authentication on, on SQLite and on PostgreSQL. It
//! fails on any answer the route table does not allow: a success (or any handler reached) for
//! a caller without the route's permission, a method a path does not declare answered with
//! anything but 405, a 5xx, or a refused request that wrote to the ledger.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Executor;
use steward_core::access::{Perm, Role};
use steward_server::routes::{Route, table};
use steward_store::MetadataStore;

struct App {
    base: String,
    http: reqwest::Client,
    store: Arc<dyn MetadataStore>,
    tokens: BTreeMap<&'static str, String>,
}

const USERS: [(&str, Role); 4] = [("vera", Role::Viewer), ("sam", Role::Scientist), ("val", Role::Validator), ("ada", Role::Admin)];

async fn postgres_uri() -> String {
    sqlx::any::install_default_drivers();
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into());
    let name = format!("steward_matrix_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&format!("{base}/postgres")).await.unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {base}: {e}"));
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
    admin.close().await;
    format!("{base}/{name}")
}

async fn spawn_app(uri: &str, dir: &std::path::Path) -> App {
    let s = support::spawn_secured(uri, dir, &USERS).await;
    App { base: s.base, http: reqwest::Client::new(), store: s.store, tokens: s.tokens.into_iter().collect() }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Nobody,
    BadToken,
    User(&'static str, Role),
}

const CALLERS: [Caller; 6] = [
    Caller::Nobody,
    Caller::BadToken,
    Caller::User("vera", Role::Viewer),
    Caller::User("sam", Role::Scientist),
    Caller::User("val", Role::Validator),
    Caller::User("ada", Role::Admin),
];

/// A concrete path for a declared one. Parameters become `search` (the suffix the old
/// path-shape rule took for a read) or a value of the right type.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{version}" => "1",
            "{kind}" => "model-card",
            "{*path}" => "1/x/search",
            s if s.starts_with('{') => "search",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a declared path matches a concrete one, and how many literal segments it matched
/// (the router prefers a literal segment to a parameter, as this does).
fn matches(pattern: &str, url: &str) -> Option<usize> {
    let (p, u): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), url.split('/').collect());
    let mut literal = 0;
    for (i, seg) in p.iter().enumerate() {
        if seg.starts_with("{*") {
            return (u.len() > i).then_some(literal);
        }
        let other = u.get(i)?;
        if seg.starts_with('{') {
            continue;
        }
        if seg != other {
            return None;
        }
        literal += 1;
    }
    (p.len() == u.len()).then_some(literal)
}

impl App {
    async fn call(&self, caller: Caller, method: Method, path: &str) -> (StatusCode, Value) {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        match caller {
            Caller::Nobody => {}
            Caller::BadToken => req = req.bearer_auth("stw_not_a_real_token"),
            Caller::User(u, _) => req = req.bearer_auth(&self.tokens[u]),
        }
        if method != Method::GET {
            req = req.header("content-type", "application/json").body("{}");
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

fn allowed(caller: Caller, perm: Perm) -> bool {
    match caller {
        _ if perm == Perm::Public => true,
        Caller::Nobody | Caller::BadToken => false,
        Caller::User(_, role) => role.grants(perm),
    }
}

async fn walk_the_matrix(uri: &str) {
    let dir = std::env::temp_dir().join(format!("steward-matrix-{}", uuid::Uuid::new_v4().simple()));
    let app = spawn_app(uri, &dir).await;
    let routes = table();
    let before = app.store.ledger(0, 100_000).await.unwrap().len();
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut paths: Vec<&str> = routes.iter().map(|r| r.path.as_str()).collect();
    paths.dedup();
    for path in paths {
        let url = concrete(path);
        // The path the router takes for this URL: a literal route beats a parameter.
        let best = routes.iter().filter_map(|r| matches(&r.path, &url).map(|n| (n, r.path.as_str()))).max_by_key(|(n, _)| *n).map(|(_, p)| p);
        let declared: Vec<&Route> = routes.iter().filter(|r| Some(r.path.as_str()) == best).collect();
        for method in METHODS {
            let route = declared.iter().find(|r| r.method == method);
            for caller in CALLERS {
                cases += 1;
                let (status, body) = app.call(caller, method.clone(), &url).await;
                let code = body["error_code"].as_str().unwrap_or("");
                let verdict = match route {
                    None if status == StatusCode::METHOD_NOT_ALLOWED => Ok(()),
                    None => Err("a method the table does not declare must be 405"),
                    Some(_) if status.is_server_error() => Err("5xx"),
                    Some(r) if allowed(caller, r.perm) => {
                        // Reached the handler: whatever it answers, it is not the route's refusal.
                        let refused = status == StatusCode::UNAUTHORIZED || body["message"].as_str().is_some_and(|m| m.contains(" and may not "));
                        if refused { Err("refused a caller the table allows") } else { Ok(()) }
                    }
                    Some(_) => match caller {
                        Caller::Nobody | Caller::BadToken if (status, code) == (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED") => Ok(()),
                        Caller::User(..) if (status, code) == (StatusCode::FORBIDDEN, "PERMISSION_DENIED") => Ok(()),
                        _ => Err("answered a caller the table does not allow"),
                    },
                };
                if let Err(why) = verdict {
                    failures.push(format!("{why}: {caller:?} {method} {url} ({}) -> {status} {body}", route.map_or("undeclared", |r| r.perm.as_str())));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases broke the table:\n{}", failures.len(), failures.join("\n"));
    assert!(cases > 1000, "the matrix walked only {cases} cases");
    // Some requests with empty bodies are valid writes (an upload, a run in the default
    // experiment); those are the writers'. Nothing refused wrote: no entry names the viewer or
    // an anonymous caller.
    let written = app.store.ledger(before as i64, 100_000).await.unwrap();
    let strays: Vec<_> = written.iter().filter(|e| !["sam", "val", "ada"].contains(&e.actor.as_str())).map(|e| format!("{} {} {}", e.actor, e.action, e.entity_id)).collect();
    assert!(strays.is_empty(), "ledger entries by callers who may not write: {strays:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_method_and_role_answers_as_the_table_says_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("steward-matrix-db-{}", uuid::Uuid::new_v4().simple()));
    walk_the_matrix(&format!("sqlite:///{}/steward.db", dir.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_method_and_role_answers_as_the_table_says_on_postgres() {
    walk_the_matrix(&postgres_uri().await).await;
}

#[test]
fn every_route_is_declared_once_and_nothing_is_public_that_holds_data() {
    let routes = table();
    let public: Vec<String> = routes.iter().filter(|r| r.perm == Perm::Public).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        public,
        [
            "GET /",
            "GET /ui/app.js",
            "GET /ui/app.css",
            "GET /health",
            "GET /version",
            "GET /api/3.0/mlflow/server-info",
            "GET /ajax-api/3.0/mlflow/server-info",
            "GET /metrics",
            "GET /api/steward/v1/openapi.json",
            "GET /v2/health/live",
            "GET /v2/health/ready"
        ]
    );
    // Every route of Steward's own API is in its OpenAPI document.
    let undocumented: Vec<String> = routes.iter().filter(|r| r.path.starts_with("/api/steward/v1") && r.doc.is_none()).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
    let doc = steward_server::openapi::document(&routes);
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.iter().filter(|r| r.path.starts_with("/api/steward/v1")).count());
    // Everything that changes what production serves needs the deploy right.
    for r in routes.iter().filter(|r| r.path.starts_with("/api/steward/v1/deployments") && r.method != Method::GET) {
        assert!(matches!(r.perm, Perm::Deploy | Perm::DeployOrAgentAction), "{} {} is {:?}", r.method, r.path, r.perm);
    }
}
