//! The HTTP API against the real server on a loopback port with a fresh SQLite file: bad
//! input gets MLflow's error code and status (never a 500), and rejected batches leave nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

struct App {
    base: String,
    http: reqwest::Client,
}

async fn spawn_app() -> App {
    let dir = std::env::temp_dir().join(format!("steward-api-{}", uuid::Uuid::new_v4().simple()));
    let store = steward_store::open_metadata(&format!("sqlite:///{}/steward.db", dir.display()), "mlflow-artifacts:/")
        .await
        .unwrap();
    let artifacts = steward_store::ArtifactStore::open(dir.join("artifacts").to_str().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(steward_server::serve(listener, steward_server::AppState::new(store, artifacts), std::future::pending()));
    App { base, http: reqwest::Client::new() }
}

impl App {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self.http.post(format!("{}/api/2.0/mlflow/{path}", self.base)).json(&body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn post_raw(&self, path: &str, content_type: &str, body: &'static str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/2.0/mlflow/{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.http.get(format!("{}/api/2.0/mlflow/{path}", self.base)).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn new_run(&self) -> String {
        let (status, body) = self.post("runs/create", json!({"experiment_id": "0", "start_time": 1})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["run"]["info"]["run_id"].as_str().unwrap().to_owned()
    }
}

fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, mentions: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error_code"], code, "{}", got.1);
    let message = got.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "message {message:?} should mention {mentions:?}");
}

#[tokio::test]
async fn malformed_bodies_and_wrong_content_types_are_refused() {
    let app = spawn_app().await;
    assert_error(&app.post_raw("experiments/create", "application/json", "{\"name\": ").await, 400, "INVALID_PARAMETER_VALUE", "Malformed JSON");
    assert_error(&app.post_raw("experiments/create", "text/plain", "{\"name\": \"x\"}").await, 400, "INVALID_PARAMETER_VALUE", "Content-Type");
    assert_error(&app.post_raw("experiments/create", "application/json", "[1, 2]").await, 400, "INVALID_PARAMETER_VALUE", "JSON object");
    let missing_type = app
        .http
        .post(format!("{}/api/2.0/mlflow/experiments/create", app.base))
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing_type.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_types_missing_fields_and_unknown_ids_name_the_problem() {
    let app = spawn_app().await;
    let run = app.new_run().await;
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        ("experiments/create", json!({}), 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("experiments/create", json!({"name": 7}), 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("experiments/create", json!({"name": "x", "tags": {"a": 1}}), 400, "INVALID_PARAMETER_VALUE", "'tags'"),
        ("experiments/delete", json!({"experiment_id": "404"}), 404, "RESOURCE_DOES_NOT_EXIST", "404"),
        ("experiments/delete", json!({"experiment_id": "abc"}), 400, "INVALID_PARAMETER_VALUE", "abc"),
        ("runs/log-metric", json!({"run_id": run, "key": "m", "value": "high", "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE", "'value'"),
        ("runs/log-metric", json!({"run_id": run, "key": "m", "value": 1.0}), 400, "INVALID_PARAMETER_VALUE", "'timestamp'"),
        ("runs/log-metric", json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": "two"}), 400, "INVALID_PARAMETER_VALUE", "'step'"),
        ("runs/log-metric", json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": -5}), 400, "INVALID_PARAMETER_VALUE", "timestamp"),
        ("runs/log-metric", json!({"run_id": "0123abc", "key": "m", "value": 1.0, "timestamp": 1}), 404, "RESOURCE_DOES_NOT_EXIST", "0123abc"),
        ("runs/log-parameter", json!({"run_id": run, "value": "x"}), 400, "INVALID_PARAMETER_VALUE", "'key'"),
        ("runs/log-parameter", json!({"run_id": run, "key": "bad?key", "value": "x"}), 400, "INVALID_PARAMETER_VALUE", "bad?key"),
        ("runs/log-parameter", json!({"run_id": run, "key": "k".repeat(251), "value": "x"}), 400, "INVALID_PARAMETER_VALUE", "250"),
        ("runs/log-parameter", json!({"run_id": run, "key": "long", "value": "v".repeat(6001)}), 400, "INVALID_PARAMETER_VALUE", "6000"),
        ("runs/set-tag", json!({"run_id": run, "key": "long", "value": "v".repeat(8001)}), 400, "INVALID_PARAMETER_VALUE", "8000"),
        ("runs/set-tag", json!({"key": "k", "value": "v"}), 400, "INVALID_PARAMETER_VALUE", "'run_id'"),
        ("runs/update", json!({"run_id": run, "status": "DONE"}), 400, "INVALID_PARAMETER_VALUE", "DONE"),
        ("runs/search", json!({"experiment_ids": ["0"], "filter": "metrics.a > 1 OR metrics.b < 2"}), 400, "INVALID_PARAMETER_VALUE", "OR"),
        ("runs/search", json!({"experiment_ids": ["0"], "max_results": 50001}), 400, "INVALID_PARAMETER_VALUE", "50000"),
        ("runs/search", json!({"experiment_ids": ["0"], "page_token": "garbage!"}), 400, "INVALID_PARAMETER_VALUE", "page token"),
        ("runs/search", json!({"experiment_ids": "0"}), 400, "INVALID_PARAMETER_VALUE", "'experiment_ids'"),
        ("runs/log-batch", json!({"run_id": run, "metrics": {"k": 1}}), 400, "INVALID_PARAMETER_VALUE", "'metrics'"),
        ("runs/log-batch", json!({"run_id": run, "metrics": [{"key": "m", "value": 1}]}), 400, "INVALID_PARAMETER_VALUE", "metrics[0].timestamp"),
        ("runs/delete-tag", json!({"run_id": run, "key": "absent"}), 404, "RESOURCE_DOES_NOT_EXIST", "absent"),
    ];
    for (path, body, status, code, mention) in cases {
        let got = app.post(path, body.clone()).await;
        assert!(got.0.as_u16() == status && got.1["error_code"] == code, "{path} {body}: got {} {}", got.0, got.1);
        let message = got.1["message"].as_str().unwrap_or_default();
        assert!(message.contains(mention), "{path}: message {message:?} should mention {mention:?}");
    }
    assert_error(&app.get("runs/get?run_id=feedbeef").await, 404, "RESOURCE_DOES_NOT_EXIST", "feedbeef");
    assert_error(&app.get("runs/get").await, 400, "INVALID_PARAMETER_VALUE", "'run_id'");
    assert_error(&app.get("experiments/get-by-name?experiment_name=nope").await, 404, "RESOURCE_DOES_NOT_EXIST", "nope");
    assert_error(&app.get("metrics/get-history?run_id=x1&metric_key=m").await, 404, "RESOURCE_DOES_NOT_EXIST", "x1");
    assert_error(&app.get("no/such/endpoint").await, 404, "ENDPOINT_NOT_FOUND", "no/such/endpoint");
}

#[tokio::test]
async fn oversize_and_refused_batches_leave_nothing_behind() {
    let app = spawn_app().await;
    let run = app.new_run().await;
    let metrics: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "timestamp": i, "step": i})).collect();
    assert_error(&app.post("runs/log-batch", json!({"run_id": run, "metrics": metrics})).await, 400, "INVALID_PARAMETER_VALUE", "at most 1000 metrics");
    let params: Vec<Value> = (0..101).map(|i| json!({"key": format!("p{i}"), "value": "v"})).collect();
    assert_error(&app.post("runs/log-batch", json!({"run_id": run, "params": params})).await, 400, "INVALID_PARAMETER_VALUE", "at most 100 params");
    let tags: Vec<Value> = (0..101).map(|i| json!({"key": format!("t{i}"), "value": "v"})).collect();
    assert_error(&app.post("runs/log-batch", json!({"run_id": run, "tags": tags})).await, 400, "INVALID_PARAMETER_VALUE", "at most 100 tags");

    assert_eq!(app.post("runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.1"})).await.0, StatusCode::OK);
    let changed = json!({
        "run_id": run,
        "metrics": [{"key": "auc", "value": 0.9, "timestamp": 5, "step": 0}],
        "params": [{"key": "depth", "value": "4"}, {"key": "lr", "value": "0.2"}],
        "tags": [{"key": "stage", "value": "x"}],
    });
    assert_error(&app.post("runs/log-batch", changed).await, 400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed");
    let long_tag = json!({
        "run_id": run,
        "metrics": [{"key": "auc", "value": 0.9, "timestamp": 5, "step": 0}],
        "tags": [{"key": "stage", "value": "v".repeat(8001)}],
    });
    assert_error(&app.post("runs/log-batch", long_tag).await, 400, "INVALID_PARAMETER_VALUE", "8000");

    let (_, body) = app.get(&format!("runs/get?run_id={run}")).await;
    let data = &body["run"]["data"];
    assert!(data.get("metrics").is_none(), "{data}");
    assert_eq!(data["params"], json!([{"key": "lr", "value": "0.1"}]));
    let tags: Vec<&str> = data["tags"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(tags, vec!["mlflow.runName"]);
    let (_, history) = app.get(&format!("metrics/get-history?run_id={run}&metric_key=m")).await;
    assert_eq!(history, json!({}));
}

#[tokio::test]
async fn junk_never_gets_a_server_error() {
    let app = spawn_app().await;
    let run = app.new_run().await;
    let endpoints = [
        "experiments/create", "experiments/search", "experiments/update", "experiments/delete", "experiments/restore",
        "experiments/set-experiment-tag", "experiments/delete-experiment-tag", "runs/create", "runs/update",
        "runs/delete", "runs/restore", "runs/search", "runs/log-metric", "runs/log-parameter", "runs/set-tag",
        "runs/delete-tag", "runs/log-batch", "runs/log-inputs",
    ];
    let junk = vec![
        json!({}),
        json!({"run_id": null, "experiment_id": null}),
        json!({"run_id": 12, "experiment_id": 12, "key": 1, "value": [], "name": {}}),
        json!({"run_id": run, "experiment_id": "0", "key": "", "value": null, "metrics": [1, 2], "params": "x", "tags": [{}]}),
        json!({"run_id": run, "experiment_ids": [{}], "max_results": "many", "order_by": "x", "filter": 3}),
        json!({"run_id": run, "datasets": [{"dataset": "x"}], "status": 99, "end_time": "soon", "start_time": 1.5e300}),
        json!({"run_id": run, "experiment_id": "0", "filter": "metrics.`unterminated > 1", "order_by": ["params.x sideways"]}),
        json!({"run_id": "../../etc", "experiment_id": "-1", "new_name": "", "key": "a/../b", "value": "v"}),
    ];
    for path in endpoints {
        for body in &junk {
            let (status, answer) = app.post(path, body.clone()).await;
            assert!(status.as_u16() < 500, "{path} {body} -> {status} {answer}");
            if !status.is_success() {
                assert!(answer["error_code"].is_string() && answer["message"].is_string(), "{path} {body} -> {answer}");
            }
        }
    }
}

#[tokio::test]
async fn artifact_proxy_round_trips_and_refuses_traversal() {
    let app = spawn_app().await;
    let base = format!("{}/api/2.0/mlflow-artifacts/artifacts", app.base);
    let put = app.http.put(format!("{base}/0/r1/artifacts/dir/a.txt")).body("hello").send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let got = app.http.get(format!("{base}/0/r1/artifacts/dir/a.txt")).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.text().await.unwrap(), "hello");
    let listing: Value = app.http.get(format!("{base}?path=0/r1/artifacts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listing, json!({"files": [{"path": "dir", "is_dir": true}]}));
    let missing = app.http.get(format!("{base}/0/r1/artifacts/nope.txt")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    for evil in ["0/../../etc/passwd", "0/%2e%2e/%2e%2e/etc/passwd"] {
        let resp = app.http.get(format!("{base}/{evil}")).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{evil}: {}", resp.status());
        let resp = app.http.put(format!("{base}/{evil}")).body("x").send().await.unwrap();
        assert!(resp.status().is_client_error(), "{evil}: {}", resp.status());
    }
    let deleted = app.http.delete(format!("{base}/0/r1/artifacts/dir")).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let listing: Value = app.http.get(format!("{base}?path=0/r1/artifacts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listing, json!({}));
}

#[tokio::test]
async fn health_version_and_server_info_answer() {
    let app = spawn_app().await;
    assert_eq!(app.http.get(format!("{}/health", app.base)).send().await.unwrap().text().await.unwrap(), "OK");
    assert_eq!(app.http.get(format!("{}/version", app.base)).send().await.unwrap().text().await.unwrap(), "3.17.2");
    let info: Value = app.http.get(format!("{}/api/3.0/mlflow/server-info", app.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["store_type"], "SqlStore");
    let ajax = app.http.get(format!("{}/ajax-api/2.0/mlflow/experiments/get?experiment_id=0", app.base)).send().await.unwrap();
    assert_eq!(ajax.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_ledger_is_readable_and_verifiable_over_http() {
    let app = spawn_app().await;
    app.new_run().await;
    let resp = app
        .http
        .post(format!("{}/api/2.0/mlflow/experiments/create", app.base))
        .header("x-steward-reason", "ticket RISK-42")
        .json(&json!({"name": "audited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let get = |q: &'static str| {
        let url = format!("{}/api/steward/v1/{q}", app.base);
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = get("audit?after=0&limit=2").await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_after"], 2);
    let rest = get("audit?after=2").await;
    let entry = &rest["entries"][0];
    assert_eq!((entry["seq"].as_i64(), entry["action"].as_str()), (Some(3), Some("experiment.create")));
    assert_eq!((entry["actor"].as_str(), entry["reason"].as_str()), (Some("anonymous"), Some("ticket RISK-42")));
    assert_eq!(entry["prev_hash"], first["entries"][1]["hash"]);
    assert_eq!(get("audit/verify").await, json!({"intact": true, "entries": 3, "checkpoints": 0, "anchored_through": null}));
    let bad = app.http.get(format!("{}/api/steward/v1/audit?limit=0", app.base)).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
