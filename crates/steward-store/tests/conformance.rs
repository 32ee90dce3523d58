//! The metadata-store conformance suite: every behaviour test runs unchanged on SQLite (a
//! fresh file) and on PostgreSQL (a fresh database on the machine's server, named by
//! `STEWARD_TEST_POSTGRES_URL`, default `postgresql://postgres@127.0.0.1:5432`).

use std::sync::Arc;

use sqlx::Executor;
use steward_core::entities::{
    Batch, Dataset, DatasetInput, LifecycleStage, Metric, NewRun, Param, RunStatus, RunUpdate, Tag, ViewType,
};
use steward_core::ErrorCode;
use steward_core::audit::Audit;
use steward_store::{ExperimentQuery, IntervalQuery, MetadataStore, RunQuery, SqlStore};

type Store = Arc<dyn MetadataStore>;

const ROOT: &str = "mlflow-artifacts:/";

async fn sqlite() -> Store {
    let dir = std::env::temp_dir().join(format!("steward-conf-{}", uuid::Uuid::new_v4().simple()));
    let uri = format!("sqlite:///{}/steward.db", dir.display());
    Arc::new(SqlStore::open(&uri, ROOT).await.expect("open sqlite"))
}

fn postgres_base() -> String {
    std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into())
}

async fn postgres() -> Store {
    sqlx::any::install_default_drivers();
    let base = postgres_base();
    let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {base} for the conformance suite: {e}"));
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
    admin.close().await;
    Arc::new(SqlStore::open(&format!("{base}/{name}"), ROOT).await.expect("open postgres"))
}

fn who() -> Audit {
    Audit::new("alice", None, b"{}")
}

fn new_run(exp: &str) -> NewRun {
    NewRun { experiment_id: exp.into(), user_id: "alice".into(), start_time: 1000, ..NewRun::default() }
}

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric { key: key.into(), value, timestamp, step }
}

fn param(key: &str, value: &str) -> Param {
    Param { key: key.into(), value: value.into() }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag { key: key.into(), value: value.into() }
}

async fn run_ids(store: &Store, q: RunQuery) -> Vec<String> {
    store.search_runs(&q).await.unwrap().items.into_iter().map(|r| r.info.run_id).collect()
}

fn query(exp: &str, filter: &str) -> RunQuery {
    RunQuery { experiment_ids: vec![exp.into()], filter: filter.into(), ..RunQuery::default() }
}

// ---- behaviours ----

async fn default_experiment_exists(store: Store) {
    let e = store.get_experiment("0").await.unwrap();
    assert_eq!(e.name, "Default");
    assert_eq!(e.artifact_location, "mlflow-artifacts:/0");
    assert_eq!(store.get_experiment_by_name("Default").await.unwrap().experiment_id, "0");
    let err = store.delete_experiment(&who(), "0").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameterValue);
}

async fn experiments_are_created_named_uniquely_and_renamed(store: Store) {
    let id = store.create_experiment(&who(), "credit", None, &[tag("team", "risk")]).await.unwrap();
    assert_eq!(id, "1");
    let e = store.get_experiment(&id).await.unwrap();
    assert_eq!((e.name.as_str(), e.artifact_location.as_str()), ("credit", "mlflow-artifacts:/1"));
    assert_eq!(e.tags, vec![tag("team", "risk")]);
    let dup = store.create_experiment(&who(), "credit", None, &[]).await.unwrap_err();
    assert_eq!(dup.code(), ErrorCode::ResourceAlreadyExists);
    assert!(dup.message().contains("credit"), "{dup}");
    store.rename_experiment(&who(), &id, "credit-v2").await.unwrap();
    assert_eq!(store.get_experiment_by_name("credit-v2").await.unwrap().experiment_id, id);
    let missing = store.get_experiment_by_name("credit").await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::ResourceDoesNotExist);
    assert_eq!(store.get_experiment("999").await.unwrap_err().code(), ErrorCode::ResourceDoesNotExist);
    assert_eq!(store.get_experiment("abc").await.unwrap_err().code(), ErrorCode::InvalidParameterValue);
    let custom = store.create_experiment(&who(), "elsewhere", Some("s3://bucket/x"), &[]).await.unwrap();
    assert_eq!(store.get_experiment(&custom).await.unwrap().artifact_location, "s3://bucket/x");
}

async fn deleting_an_experiment_deletes_its_runs_and_restore_brings_them_back(store: Store) {
    let id = store.create_experiment(&who(), "e", None, &[]).await.unwrap();
    let run = store.create_run(&who(), new_run(&id)).await.unwrap();
    store.delete_experiment(&who(), &id).await.unwrap();
    assert_eq!(store.get_experiment(&id).await.unwrap().lifecycle_stage, LifecycleStage::Deleted);
    assert_eq!(store.get_run(&run.info.run_id).await.unwrap().info.lifecycle_stage, LifecycleStage::Deleted);
    let err = store.create_run(&who(), new_run(&id)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameterValue);
    // A deleted experiment still holds its name.
    assert_eq!(store.create_experiment(&who(), "e", None, &[]).await.unwrap_err().code(), ErrorCode::ResourceAlreadyExists);
    store.restore_experiment(&who(), &id).await.unwrap();
    assert_eq!(store.get_run(&run.info.run_id).await.unwrap().info.lifecycle_stage, LifecycleStage::Active);
}

async fn experiment_tags_are_set_and_deleted(store: Store) {
    let id = store.create_experiment(&who(), "e", None, &[]).await.unwrap();
    store.set_experiment_tag(&who(), &id, &tag("a", "1")).await.unwrap();
    store.set_experiment_tag(&who(), &id, &tag("a", "2")).await.unwrap();
    assert_eq!(store.get_experiment(&id).await.unwrap().tags, vec![tag("a", "2")]);
    store.delete_experiment_tag(&who(), &id, "a").await.unwrap();
    assert!(store.get_experiment(&id).await.unwrap().tags.is_empty());
    assert_eq!(store.delete_experiment_tag(&who(), &id, "a").await.unwrap_err().code(), ErrorCode::ResourceDoesNotExist);
}

async fn experiment_search_filters_orders_and_pages(store: Store) {
    for name in ["alpha", "beta", "gamma", "Alphabet"] {
        let id = store.create_experiment(&who(), name, None, &[]).await.unwrap();
        if name.starts_with('a') || name.starts_with('A') {
            store.set_experiment_tag(&who(), &id, &tag("kind", "greek")).await.unwrap();
        }
    }
    let names = |q: ExperimentQuery| {
        let store = store.clone();
        async move { store.search_experiments(&q).await.unwrap().items.into_iter().map(|e| e.name).collect::<Vec<_>>() }
    };
    let q = |filter: &str| ExperimentQuery { filter: filter.into(), order_by: vec!["name ASC".into()], ..ExperimentQuery::default() };
    assert_eq!(names(q("name LIKE 'alpha%'")).await, vec!["alpha"]);
    assert_eq!(names(q("name ILIKE 'alpha%'")).await, vec!["Alphabet", "alpha"]);
    assert_eq!(names(q("tags.kind = 'greek'")).await, vec!["Alphabet", "alpha"]);
    let page1 = store
        .search_experiments(&ExperimentQuery { max_results: Some(2), order_by: vec!["name".into()], ..ExperimentQuery::default() })
        .await
        .unwrap();
    assert_eq!(page1.items.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["Alphabet", "Default"]);
    let page2 = store
        .search_experiments(&ExperimentQuery {
            max_results: Some(2),
            order_by: vec!["name".into()],
            page_token: page1.next_page_token.unwrap(),
            ..ExperimentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page2.items.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["alpha", "beta"]);
    assert!(page2.next_page_token.is_some());
    let beta = store.get_experiment_by_name("beta").await.unwrap().experiment_id;
    store.delete_experiment(&who(), &beta).await.unwrap();
    let deleted = ExperimentQuery { view: ViewType::DeletedOnly, ..ExperimentQuery::default() };
    assert_eq!(names(deleted).await, vec!["beta"]);
}

async fn runs_are_created_named_updated_deleted_and_restored(store: Store) {
    let run = store
        .create_run(&who(), NewRun { run_name: Some("first".into()), tags: vec![tag("k", "v")], ..new_run("0") })
        .await
        .unwrap();
    assert_eq!(run.info.run_name, "first");
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(run.info.artifact_uri, format!("mlflow-artifacts:/0/{}/artifacts", run.info.run_id));
    assert!(run.tags.contains(&tag("mlflow.runName", "first")));
    let unnamed = store.create_run(&who(), new_run("0")).await.unwrap();
    assert!(!unnamed.info.run_name.is_empty());
    let id = run.info.run_id.clone();
    let info = store
        .update_run(&who(), &id, RunUpdate { status: Some(RunStatus::Finished), end_time: Some(2000), run_name: Some("renamed".into()) })
        .await
        .unwrap();
    assert_eq!((info.status, info.end_time, info.run_name.as_str()), (RunStatus::Finished, Some(2000), "renamed"));
    assert!(store.get_run(&id).await.unwrap().tags.contains(&tag("mlflow.runName", "renamed")));
    store.delete_run(&who(), &id).await.unwrap();
    assert_eq!(store.get_run(&id).await.unwrap().info.lifecycle_stage, LifecycleStage::Deleted);
    let refused = store.log_batch(&who(), &id, &Batch { params: vec![param("a", "1")], ..Batch::default() }).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidParameterValue);
    assert!(refused.message().contains("must be in the 'active' state"), "{refused}");
    store.restore_run(&who(), &id).await.unwrap();
    assert_eq!(store.get_run(&id).await.unwrap().info.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(store.get_run("nope").await.unwrap_err().code(), ErrorCode::ResourceDoesNotExist);
    assert_eq!(store.create_run(&who(), new_run("42")).await.unwrap_err().code(), ErrorCode::ResourceDoesNotExist);
}

async fn params_cannot_change_and_a_refused_batch_leaves_nothing(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    store.log_batch(&who(), &id, &Batch { params: vec![param("lr", "0.1")], ..Batch::default() }).await.unwrap();
    // Same value again is fine.
    store.log_batch(&who(), &id, &Batch { params: vec![param("lr", "0.1")], ..Batch::default() }).await.unwrap();
    let batch = Batch {
        metrics: vec![metric("auc", 0.8, 10, 0)],
        params: vec![param("depth", "3"), param("lr", "0.2")],
        tags: vec![tag("t", "x")],
    };
    let err = store.log_batch(&who(), &id, &batch).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameterValue);
    assert!(err.message().contains("key='lr' was already logged with value='0.1'"), "{err}");
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.params, vec![param("lr", "0.1")]);
    assert!(run.metrics.is_empty());
    assert!(!run.tags.iter().any(|t| t.key == "t"));
    let history = store.metric_history(&id, "auc", None, "").await.unwrap();
    assert!(history.items.is_empty());
    // An invalid entry anywhere in a batch also rejects the whole batch.
    let bad = Batch { metrics: vec![metric("ok", 1.0, 1, 0), metric("../bad", 1.0, 1, 0)], ..Batch::default() };
    assert_eq!(store.log_batch(&who(), &id, &bad).await.unwrap_err().code(), ErrorCode::InvalidParameterValue);
    assert!(store.get_run(&id).await.unwrap().metrics.is_empty());
}

async fn latest_metric_and_history_follow_mlflow(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    let batch = Batch {
        metrics: vec![
            metric("loss", 3.0, 100, 0),
            metric("loss", 2.0, 101, 1),
            metric("loss", 5.0, 99, 2),
            metric("loss", 1.0, 100, 1),
            metric("weird", f64::NAN, 1, 0),
            metric("big", f64::INFINITY, 1, 0),
        ],
        ..Batch::default()
    };
    store.log_batch(&who(), &id, &batch).await.unwrap();
    // A later step wins even with an earlier timestamp.
    store.log_batch(&who(), &id, &Batch { metrics: vec![metric("loss", 9.0, 1, 1)], ..Batch::default() }).await.unwrap();
    let run = store.get_run(&id).await.unwrap();
    let latest = |k: &str| run.metrics.iter().find(|m| m.key == k).cloned().unwrap();
    assert_eq!(latest("loss"), metric("loss", 5.0, 99, 2));
    assert!(latest("weird").value.is_nan());
    assert_eq!(latest("big").value, f64::INFINITY);
    let history = store.metric_history(&id, "loss", None, "").await.unwrap();
    let points: Vec<(i64, i64, f64)> = history.items.iter().map(|m| (m.timestamp, m.step, m.value)).collect();
    assert_eq!(points, vec![(1, 1, 9.0), (99, 2, 5.0), (100, 0, 3.0), (100, 1, 1.0), (101, 1, 2.0)]);
    let page = store.metric_history(&id, "loss", Some(2), "").await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = store.metric_history(&id, "loss", Some(10), &page.next_page_token.unwrap()).await.unwrap();
    assert_eq!(rest.items.len(), 3);
    assert!(rest.next_page_token.is_none());
    // Logging the identical point twice keeps one.
    store.log_batch(&who(), &id, &Batch { metrics: vec![metric("loss", 9.0, 1, 1)], ..Batch::default() }).await.unwrap();
    assert_eq!(store.metric_history(&id, "loss", None, "").await.unwrap().items.len(), 5);
}

async fn a_loaded_run_reads_back_exactly_what_was_logged(store: Store) {
    // Runs are loaded as a JSON document the database builds: every double must come back bit
    // for bit, and text with quotes, backslashes, control characters and non-ASCII unchanged.
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    let values = [0.1 + 0.2, 1.0 / 3.0, 1e-300, 5e-324, f64::MAX, -f64::MAX, f64::NEG_INFINITY, 123456789.123456789, 2f64.powi(60)];
    let metrics: Vec<Metric> = values.iter().enumerate().map(|(i, v)| metric(&format!("m{i}"), *v, i64::MAX - i as i64, -(i as i64))).collect();
    let odd = "quote \" backslash \\ tab \t newline \n nul-free \u{1} é 漢字 🦀 '; DROP TABLE runs; --";
    let batch = Batch { metrics, params: vec![param("odd", odd)], tags: vec![tag("odd", odd), tag("empty", "")] };
    store.log_batch(&who(), &id, &batch).await.unwrap();
    let output = store.get_run(&id).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        let m = output.metrics.iter().find(|m| m.key == format!("m{i}")).unwrap();
        assert_eq!(m.value.to_bits(), v.to_bits(), "metric m{i}: logged {v:e}, read {:e}", m.value);
        assert_eq!((m.timestamp, m.step), (i64::MAX - i as i64, -(i as i64)));
    }
    assert_eq!(output.params, vec![param("odd", odd)]);
    assert_eq!(output.tags.iter().filter(|t| t.key != "mlflow.runName").cloned().collect::<Vec<_>>(), vec![tag("empty", ""), tag("odd", odd)]);
    let keys: Vec<&str> = output.metrics.iter().map(|m| m.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "metrics come back ordered by key");
    let found = store.search_runs(&query("0", "params.odd LIKE '%DROP TABLE%'")).await.unwrap().items;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], output);
}

async fn bulk_interval_samples_evenly_and_keeps_the_last_point(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    let metrics = (0..100).map(|s| metric("acc", s as f64, 1000 + s, s)).collect();
    store.log_batch(&who(), &id, &Batch { metrics, ..Batch::default() }).await.unwrap();
    let q = |max: i64, steps: Option<(i64, i64)>| IntervalQuery { run_ids: vec![id.clone()], metric_key: "acc".into(), steps, max_results: max };
    let steps = |v: Vec<steward_core::entities::RunMetric>| v.into_iter().map(|m| m.metric.step).collect::<Vec<_>>();
    assert_eq!(steps(store.metric_history_interval(&q(5, None)).await.unwrap()), vec![0, 20, 40, 60, 99]);
    assert_eq!(steps(store.metric_history_interval(&q(1, None)).await.unwrap()), vec![99]);
    assert_eq!(steps(store.metric_history_interval(&q(500, Some((10, 12)))).await.unwrap()), vec![10, 11, 12]);
}

async fn run_search_supports_the_filter_grammar(store: Store) {
    let exp = store.create_experiment(&who(), "search", None, &[]).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        let run = store
            .create_run(&who(), NewRun { run_name: Some(format!("run-{i}")), start_time: 1000 + i, ..new_run(&exp) })
            .await
            .unwrap();
        let id = run.info.run_id;
        let mut batch = Batch {
            metrics: vec![metric("auc", 0.5 + i as f64 / 10.0, 1, 0)],
            params: vec![param("model", if i % 2 == 0 { "gbm" } else { "logit" })],
            tags: vec![tag("owner", if i < 3 { "Alice" } else { "bob" })],
        };
        if i == 5 {
            batch.metrics.clear();
            batch.params.push(param("special key", "yes"));
        }
        store.log_batch(&who(), &id, &batch).await.unwrap();
        ids.push(id);
    }
    store.update_run(&who(), &ids[1], RunUpdate { status: Some(RunStatus::Failed), ..RunUpdate::default() }).await.unwrap();
    let cases: Vec<(&str, Vec<usize>)> = vec![
        ("", vec![5, 4, 3, 2, 1, 0]),
        ("metrics.auc > 0.65", vec![4, 3, 2]),
        ("metrics.auc >= 0.6 AND params.model = 'gbm'", vec![4, 2]),
        ("params.model != 'gbm'", vec![5, 3, 1]),
        ("tags.owner LIKE 'A%'", vec![2, 1, 0]),
        ("tags.owner LIKE 'a%'", vec![]),
        ("tags.owner ILIKE 'a%'", vec![2, 1, 0]),
        ("attributes.status = 'FAILED'", vec![1]),
        ("status != 'FAILED'", vec![5, 4, 3, 2, 0]),
        ("params.`special key` = 'yes'", vec![5]),
        ("params.`special key` IS NULL", vec![4, 3, 2, 1, 0]),
        ("params.`special key` IS NOT NULL", vec![5]),
        ("attributes.run_name = 'run-3'", vec![3]),
        ("tags.`mlflow.runName` = 'run-4'", vec![4]),
        ("attributes.start_time >= 1004", vec![5, 4]),
    ];
    for (filter, want) in cases {
        let want: Vec<String> = want.iter().map(|i| ids[*i].clone()).collect();
        assert_eq!(run_ids(&store, query(&exp, filter)).await, want, "filter {filter:?}");
    }
    let in_filter = format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[3]);
    assert_eq!(run_ids(&store, query(&exp, &in_filter)).await, vec![ids[3].clone(), ids[0].clone()]);
    let bad = store.search_runs(&query(&exp, "metrics.auc > 0.5 OR metrics.auc < 0.1")).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidParameterValue);
}

async fn run_search_orders_and_pages(store: Store) {
    let exp = store.create_experiment(&who(), "order", None, &[]).await.unwrap();
    let mut ids = Vec::new();
    for (i, auc) in [Some(0.7), None, Some(0.9), Some(f64::NAN), Some(0.8)].into_iter().enumerate() {
        let id = store.create_run(&who(), NewRun { start_time: 1000 + i as i64, ..new_run(&exp) }).await.unwrap().info.run_id;
        if let Some(v) = auc {
            store.log_batch(&who(), &id, &Batch { metrics: vec![metric("auc", v, 1, 0)], ..Batch::default() }).await.unwrap();
        }
        ids.push(id);
    }
    let ordered = |order: &str| {
        let q = RunQuery { order_by: vec![order.into()], ..query(&exp, "") };
        let store = store.clone();
        async move { run_ids(&store, q).await }
    };
    let pick = |idx: &[usize]| idx.iter().map(|i| ids[*i].clone()).collect::<Vec<_>>();
    // Values, then NaN, then runs without the metric, in either direction.
    assert_eq!(ordered("metrics.auc DESC").await, pick(&[2, 4, 0, 3, 1]));
    assert_eq!(ordered("metrics.auc ASC").await, pick(&[0, 4, 2, 3, 1]));
    assert_eq!(ordered("attributes.start_time ASC").await, pick(&[0, 1, 2, 3, 4]));
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = store
            .search_runs(&RunQuery { max_results: Some(2), page_token: token.clone(), order_by: vec!["metrics.auc DESC".into()], ..query(&exp, "") })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|r| r.info.run_id));
        match page.next_page_token {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(seen, pick(&[2, 4, 0, 3, 1]));
    let err = store.search_runs(&RunQuery { max_results: Some(50001), ..query(&exp, "") }).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameterValue);
}

async fn dataset_inputs_are_recorded_once(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    let input = DatasetInput {
        tags: vec![tag("mlflow.data.context", "training")],
        dataset: Dataset {
            name: "german".into(),
            digest: "abc123".into(),
            source_type: "local".into(),
            source: "{\"uri\": \"data.csv\"}".into(),
            schema: Some("{}".into()),
            profile: None,
        },
    };
    store.log_inputs(&who(), &id, std::slice::from_ref(&input)).await.unwrap();
    store.log_inputs(&who(), &id, std::slice::from_ref(&input)).await.unwrap();
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.dataset_inputs, vec![input]);
    let found = run_ids(&store, query("0", "dataset.digest = 'abc123' AND dataset.context = 'training'")).await;
    assert_eq!(found, vec![id]);
}

async fn concurrent_batches_all_land(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let metrics = (0..20).map(|k| metric(&format!("m{k}"), (t * 10 + i) as f64, t * 10 + i, t * 10 + i)).collect();
                store.log_batch(&who(), &id, &Batch { metrics, ..Batch::default() }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let history = store.metric_history(&id, "m7", None, "").await.unwrap();
    assert_eq!(history.items.len(), 160);
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.metrics.iter().find(|m| m.key == "m7").unwrap().step, 159);
}

async fn every_mutation_appends_one_chained_ledger_entry(store: Store) {
    let start = store.ledger(0, 10_000).await.unwrap().len();
    assert_eq!(start, 1, "the default experiment's creation is the first entry");
    let bob = Audit::new("bob", Some("quarterly retrain".into()), b"{\"name\": \"e\"}");
    let exp = store.create_experiment(&bob, "e", None, &[]).await.unwrap();
    let run = store.create_run(&who(), new_run(&exp)).await.unwrap().info.run_id;
    store.log_batch(&who(), &run, &Batch { params: vec![param("a", "1")], ..Batch::default() }).await.unwrap();
    // Refused mutations leave no entry.
    assert!(store.log_batch(&who(), &run, &Batch { params: vec![param("a", "2")], ..Batch::default() }).await.is_err());
    assert!(store.create_experiment(&who(), "e", None, &[]).await.is_err());
    store.delete_run(&who(), &run).await.unwrap();
    let entries = store.ledger(0, 10_000).await.unwrap();
    let summary: Vec<(i64, &str, &str, &str, &str)> = entries
        .iter()
        .map(|e| (e.seq, e.actor.as_str(), e.action.as_str(), e.entity_kind.as_str(), e.entity_id.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "steward", "experiment.create", "experiment", "0"),
            (2, "bob", "experiment.create", "experiment", exp.as_str()),
            (3, "alice", "run.create", "run", run.as_str()),
            (4, "alice", "run.log_batch", "run", run.as_str()),
            (5, "alice", "run.delete", "run", run.as_str()),
        ]
    );
    assert_eq!(entries[1].reason.as_deref(), Some("quarterly retrain"));
    assert_eq!(entries[1].payload_digest, steward_core::audit::sha256_hex(b"{\"name\": \"e\"}"));
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert_eq!(store.verify_ledger(&[]).await.unwrap(), Ok(5));
    assert_eq!(store.ledger(3, 1).await.unwrap()[0].seq, 4);
}

async fn concurrent_mutations_keep_one_unbroken_chain(store: Store) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let actor = Audit::new(format!("user{t}"), None, b"");
                store.create_experiment(&actor, &format!("e-{t}-{i}"), None, &[]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.verify_ledger(&[]).await.unwrap(), Ok(81));
}

async fn refused_batches_among_concurrent_ones_leave_nothing(store: Store) {
    let id = store.create_run(&who(), new_run("0")).await.unwrap().info.run_id;
    store.log_batch(&who(), &id, &Batch { params: vec![param("lr", "0.1")], ..Batch::default() }).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..12i64 {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = Batch { metrics: vec![metric(&format!("m{t}"), 1.0, t, t)], ..Batch::default() };
            if t % 3 == 0 {
                // Changes a logged param: the whole batch, its metric included, is refused.
                batch.params.push(param("lr", "0.9"));
            }
            (t, store.log_batch(&who(), &id, &batch).await.is_ok())
        }));
    }
    for task in tasks {
        let (t, ok) = task.await.unwrap();
        assert_eq!(ok, t % 3 != 0, "batch {t}");
    }
    let run = store.get_run(&id).await.unwrap();
    let mut keys: Vec<String> = run.metrics.iter().map(|m| m.key.clone()).collect();
    keys.sort();
    let mut want: Vec<String> = (0..12).filter(|t| t % 3 != 0).map(|t| format!("m{t}")).collect();
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(run.params, vec![param("lr", "0.1")]);
    assert!(store.verify_ledger(&[]).await.unwrap().is_ok());
}

async fn incidents_keep_one_analysis_per_source(store: Store) {
    use steward_core::serving::Incident;
    let incident = |id: &str, deployment: &str| Incident { id: id.into(), deployment: deployment.into(), trigger: "t".into(), kind: "data_drift".into(), evidence: serde_json::json!({"metric": "drift_share"}), status: "open".into(), opened: 1, analyses: vec![] };
    store.open_incident(&who(), &incident("i1", "credit")).await.unwrap();
    store.open_incident(&who(), &incident("i2", "fraud")).await.unwrap();
    store.add_analysis(&who(), "i1", "rules", "drift on credit").await.unwrap();
    store.add_analysis(&who(), "i1", "llm:m", "advice").await.unwrap();
    assert_eq!(store.add_analysis(&who(), "i1", "rules", "again").await.unwrap_err().code(), ErrorCode::ResourceAlreadyExists);
    assert_eq!(store.add_analysis(&who(), "nope", "rules", "x").await.unwrap_err().code(), ErrorCode::ResourceDoesNotExist);
    let credit = store.incidents(Some("credit")).await.unwrap();
    let texts: Vec<(&str, &str)> = credit[0].analyses.iter().map(|a| (a.source.as_str(), a.text.as_str())).collect();
    assert_eq!(texts.len(), 2);
    assert!(texts.contains(&("rules", "drift on credit")) && texts.contains(&("llm:m", "advice")));
    assert!(store.incidents(None).await.unwrap().iter().find(|i| i.id == "i2").unwrap().analyses.is_empty());
    assert!(store.verify_ledger(&[]).await.unwrap().is_ok());
}

async fn tokens_expire_revoke_and_die_with_their_user(store: Store) {
    use steward_core::access::Role;
    store.create_user(&who(), "sam", Role::Scientist).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let (short, info) = store.create_token(&who(), "sam", "short", Some(now + 300)).await.unwrap();
    let (long, _) = store.create_token(&who(), "sam", "long", None).await.unwrap();
    assert_eq!(store.authenticate(&short).await.unwrap().map(|p| p.name), Some("sam".into()));
    let started = std::time::Instant::now();
    while store.authenticate(&short).await.unwrap().is_some() {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "an expired token still authenticates");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(store.authenticate(&long).await.unwrap().is_some());
    assert_eq!(store.create_token(&who(), "sam", "past", Some(now - 1)).await.unwrap_err().code(), ErrorCode::InvalidParameterValue);
    // Listing shows ids, never tokens; revoking is by id and once.
    let listed = store.tokens(Some("sam")).await.unwrap();
    // Both were made within the same millisecond possibly: the order among equal times is the id's.
    let mut labels: Vec<&str> = listed.iter().map(|t| t.label.as_str()).collect();
    labels.sort();
    assert_eq!(labels, ["long", "short"]);
    assert!(listed.windows(2).all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id)), "tokens are listed by creation time");
    assert!(listed.iter().all(|t| t.id.starts_with("tok_") && !short.contains(&t.id[4..])));
    let long_id = listed.iter().find(|t| t.label == "long").unwrap().id.clone();
    store.revoke_token(&who(), &long_id).await.unwrap();
    assert!(store.authenticate(&long).await.unwrap().is_none());
    assert_eq!(store.revoke_token(&who(), &long_id).await.unwrap_err().code(), ErrorCode::InvalidParameterValue);
    assert_eq!(info.expires_at, Some(now + 300));
    // Disabled users' tokens are refused until enabled; deleted users keep their name taken.
    let (fresh, _) = store.create_token(&who(), "sam", "fresh", None).await.unwrap();
    store.update_user(&who(), "sam", None, Some(true)).await.unwrap();
    assert!(store.authenticate(&fresh).await.unwrap().is_none());
    store.update_user(&who(), "sam", Some(Role::Validator), Some(false)).await.unwrap();
    assert_eq!(store.authenticate(&fresh).await.unwrap().map(|p| p.role), Some(Role::Validator));
    store.delete_user(&who(), "sam").await.unwrap();
    assert!(store.authenticate(&fresh).await.unwrap().is_none());
    assert_eq!(store.create_user(&who(), "sam", Role::Admin).await.unwrap_err().code(), ErrorCode::ResourceAlreadyExists);
    assert_eq!(store.create_token(&who(), "sam", "x", None).await.unwrap_err().code(), ErrorCode::InvalidParameterValue);
    assert!(store.has_users().await.unwrap(), "a tombstone keeps open mode closed");
    assert!(store.verify_ledger(&[]).await.unwrap().is_ok());
}

/// A logged one-row prediction of deployment `deployment` with empty inputs and outputs.
fn prediction(deployment: &str, id: &str, route: steward_core::serving::RouteRole, time: i64) -> steward_core::serving::PredictionRecord {
    steward_core::serving::PredictionRecord {
        id: id.into(),
        deployment: deployment.into(),
        model: "m".into(),
        version: 1,
        route,
        parent_id: None,
        time,
        latency_us: 1,
        inputs: "{}".into(),
        outputs: "{}".into(),
        context: None,
    }
}

async fn monitors_read_in_commit_order_and_never_skip_late_records(store: Store) {
    use steward_core::serving::{DeploymentSpec, Feedback, ModelRef, RouteRole, WindowKind};
    use steward_store::{Cursor, Window};
    let spec = DeploymentSpec {
        name: "late".into(),
        model: ModelRef::Version { name: "m".into(), version: 1 },
        challenger: None,
        shadow: None,
        fallback: None,
        model_ids: Default::default(),
        max_rows_per_request: None,
    };
    store.put_deployment(&who(), &spec, true).await.unwrap();
    let record = |id: &str, time: i64| prediction("late", id, RouteRole::Champion, time);
    // Logged before the monitor: not judged.
    store.log_predictions(vec![record("before", 5)]).await.unwrap();
    store.put_monitor(&who(), "late", "{}", 0).await.unwrap();
    let state = store.monitors().await.unwrap().into_iter().find(|m| m.deployment == "late").unwrap();
    // A record made at 100 is committed after one made at 200 (a lagging log queue).
    store.log_predictions(vec![record("b", 200)]).await.unwrap();
    store.log_predictions(vec![record("a", 100)]).await.unwrap();
    let read = store.predictions_after("late", state.cursor_seq, state.time_cursor, 10).await.unwrap();
    let ids: Vec<&str> = read.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"], "commit order, not prediction time");
    assert!(read[0].0 < read[1].0);
    // The window that judged "b" moves the cursor past it; "a", and "c" made even earlier but
    // committed later still, are next — a cursor by time would have passed both.
    let window = |seq| Window { deployment: "late", kind: WindowKind::Predictions, cursor: Cursor::Seq(seq), end: 200, judged: &[], repeat_ms: 1000 };
    store.record_window(window(read[0].0), &[], &[]).await.unwrap();
    store.log_predictions(vec![record("c", 50)]).await.unwrap();
    let state = store.monitors().await.unwrap().into_iter().find(|m| m.deployment == "late").unwrap();
    let next: Vec<String> = store.predictions_after("late", state.cursor_seq, state.time_cursor, 10).await.unwrap().into_iter().map(|(_, r)| r.id).collect();
    assert_eq!(next, ["a", "c"]);
    // Concurrent writers: every record numbered once, the numbers dense after the cursor.
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                store.log_predictions(vec![record(&format!("w{w}-{i}a"), 1000), record(&format!("w{w}-{i}b"), 1000)]).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let all = store.predictions_after("late", state.cursor_seq, 0, 1000).await.unwrap();
    assert_eq!(all.len(), 202);
    assert!(all.windows(2).all(|w| w[1].0 == w[0].0 + 1), "sequence numbers are dense and increasing");
    // Labels in the order they were committed; a label given again moves to the end.
    let label = |id: &str, v: i64| Feedback { prediction_id: id.into(), label: serde_json::json!(v) };
    store.record_feedback(&[label("b", 1), label("a", 0)]).await.unwrap();
    store.record_feedback(&[label("b", 0)]).await.unwrap();
    let labels: Vec<(String, serde_json::Value)> = store.labels_after("late", state.label_cursor_seq, 10).await.unwrap().into_iter().map(|(r, l, _, _)| (r.id, l)).collect();
    assert_eq!(labels, [("a".to_owned(), serde_json::json!(0)), ("b".to_owned(), serde_json::json!(0))]);
    // A replaced monitor starts over: nothing committed before is judged.
    store.put_monitor(&who(), "late", "{\"window_seconds\": 60}", 5_000).await.unwrap();
    let replaced = store.monitors().await.unwrap().into_iter().find(|m| m.deployment == "late").unwrap();
    assert_eq!(replaced.time_cursor, 5_000);
    assert!(store.predictions_after("late", replaced.cursor_seq, 0, 10).await.unwrap().is_empty());
    assert!(store.labels_after("late", replaced.label_cursor_seq, 10).await.unwrap().is_empty());
}

async fn bounded_reads_take_only_what_they_need(store: Store) {
    use steward_core::serving::{DeploymentSpec, Feedback, Incident, ModelRef, MonitorMetric, PredictionRecord, RouteRole, WindowKind};
    use steward_store::{Cursor, Window};
    let spec = DeploymentSpec { name: "b".into(), model: ModelRef::Version { name: "m".into(), version: 1 }, challenger: None, shadow: None, fallback: None, model_ids: Default::default(), max_rows_per_request: None };
    store.put_deployment(&who(), &spec, true).await.unwrap();
    store.put_monitor(&who(), "b", "{}", 0).await.unwrap();
    // 20 prediction windows of two series and 5 label windows of one, at their own ends.
    let metric = |end: i64, name: &str, feature: &str| MonitorMetric { deployment: "b".into(), window_start: end - 1, window_end: end, metric: name.into(), feature: feature.into(), value: end as f64 };
    for w in 1..=20 {
        let window = Window { deployment: "b", kind: WindowKind::Predictions, cursor: Cursor::Seq(0), end: w * 10, judged: &[], repeat_ms: 1000 };
        store.record_window(window, &[metric(w * 10, "drift_share", ""), metric(w * 10, "drift_score", "x")], &[]).await.unwrap();
    }
    for w in 1..=5 {
        let window = Window { deployment: "b", kind: WindowKind::Labels, cursor: Cursor::Seq(0), end: w * 10 + 5, judged: &[], repeat_ms: 1000 };
        store.record_window(window, &[metric(w * 10 + 5, "roc_auc", "")], &[]).await.unwrap();
    }
    let latest = store.monitor_metrics_latest("b", 3).await.unwrap();
    let got: Vec<(i64, &str)> = latest.iter().map(|m| (m.window_end, m.metric.as_str())).collect();
    assert_eq!(got, [(35, "roc_auc"), (45, "roc_auc"), (55, "roc_auc"), (180, "drift_score"), (180, "drift_share"), (190, "drift_score"), (190, "drift_share"), (200, "drift_score"), (200, "drift_share")]);
    // Pages of 7 from the key of the last row: every row once, in order; filters in SQL.
    let (mut all, mut after): (Vec<MonitorMetric>, Option<(i64, String, String)>) = (Vec::new(), None);
    loop {
        let page = store.monitor_metrics_page("b", None, None, after.as_ref().map(|(e, m, f)| (*e, m.as_str(), f.as_str())), 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some((last.window_end, last.metric.clone(), last.feature.clone()));
        all.extend(page);
    }
    assert_eq!(all.len(), 45);
    assert!(all.windows(2).all(|w| (w[0].window_end, &w[0].metric, &w[0].feature) < (w[1].window_end, &w[1].metric, &w[1].feature)));
    assert_eq!(store.monitor_metrics_page("b", Some("drift_score"), Some("x"), None, 100).await.unwrap().len(), 20);
    assert_eq!(store.monitor_metrics_page("b", None, Some(""), None, 100).await.unwrap().len(), 25);
    // Open incidents of one deployment only.
    let incident = |id: &str, deployment: &str| Incident { id: id.into(), deployment: deployment.into(), trigger: "t".into(), kind: "data_drift".into(), evidence: serde_json::json!({}), status: "open".into(), opened: 1, analyses: vec![] };
    for (id, d) in [("x_1", "b"), ("x%1", "b"), ("x@a", "other"), ("x@b", "b"), ("xa", "b")] {
        store.open_incident(&who(), &incident(id, d)).await.unwrap();
    }
    let open: Vec<String> = store.open_incidents("b").await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(open.len(), 4);
    assert!(!open.contains(&"x@a".to_owned()));
    // The ledger by entity: the exact id and the prefix, where `_` and `%` are only characters.
    let entries: Vec<String> = store.ledger_of_entity("x_1", Some("x@"), 0, 100).await.unwrap().into_iter().map(|e| e.entity_id).collect();
    assert_eq!(entries, ["x_1", "x@a", "x@b"]);
    let entries: Vec<String> = store.ledger_of_entity("x%", Some("x%"), 0, 100).await.unwrap().into_iter().map(|e| e.entity_id).collect();
    assert_eq!(entries, ["x%1"]);
    // One route's predictions and labels, chosen before the limit: the champion's older
    // traffic and the shadow's cannot crowd the challenger out.
    let record = |id: &str, route: RouteRole, time: i64| prediction("b", id, route, time);
    let mut records: Vec<PredictionRecord> = (0..10).map(|i| record(&format!("c{i}"), RouteRole::Champion, i)).collect();
    records.extend((0..10).map(|i| record(&format!("s{i}"), RouteRole::Shadow, i)));
    records.extend((0..3).map(|i| record(&format!("n{i}"), RouteRole::Challenger, 100 + i)));
    store.log_predictions(records).await.unwrap();
    let challenger: Vec<String> = store.predictions_of_route("b", RouteRole::Challenger, 0, 2).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(challenger, ["n0", "n1"]);
    store.record_feedback(&(0..10).map(|i| Feedback { prediction_id: format!("c{i}"), label: serde_json::json!(1) }).chain([Feedback { prediction_id: "n2".into(), label: serde_json::json!(0) }]).collect::<Vec<_>>()).await.unwrap();
    let labelled: Vec<String> = store.labelled_of_route("b", RouteRole::Challenger, 0, 1).await.unwrap().into_iter().map(|l| l.0.id).collect();
    assert_eq!(labelled, ["n2"]);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::sqlite().await).await } )*
        }
        mod on_postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::postgres().await).await } )*
        }
    };
}

conformance!(
    default_experiment_exists,
    experiments_are_created_named_uniquely_and_renamed,
    deleting_an_experiment_deletes_its_runs_and_restore_brings_them_back,
    experiment_tags_are_set_and_deleted,
    experiment_search_filters_orders_and_pages,
    runs_are_created_named_updated_deleted_and_restored,
    params_cannot_change_and_a_refused_batch_leaves_nothing,
    latest_metric_and_history_follow_mlflow,
    a_loaded_run_reads_back_exactly_what_was_logged,
    bulk_interval_samples_evenly_and_keeps_the_last_point,
    run_search_supports_the_filter_grammar,
    run_search_orders_and_pages,
    dataset_inputs_are_recorded_once,
    concurrent_batches_all_land,
    every_mutation_appends_one_chained_ledger_entry,
    concurrent_mutations_keep_one_unbroken_chain,
    refused_batches_among_concurrent_ones_leave_nothing,
    incidents_keep_one_analysis_per_source,
    tokens_expire_revoke_and_die_with_their_user,
    monitors_read_in_commit_order_and_never_skip_late_records,
    bounded_reads_take_only_what_they_need,
);
