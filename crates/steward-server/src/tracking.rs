//! MLflow tracking endpoints (`/api/2.0/mlflow/experiments/*`, `runs/*`, `metrics/*`,
//! `artifacts/list`): parse MLflow's request fields, call the store, answer in MLflow's shapes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use steward_core::entities::{Batch, Dataset, DatasetInput, Metric, NewRun, Param, RunStatus, RunUpdate, Tag, ViewType};
use steward_core::validation::{self, missing_value};
use steward_core::{Error, Result};
use steward_store::{ExperimentQuery, IntervalQuery, RunQuery};

use crate::AppState;
use crate::error::ApiResult;
use crate::request::{Fields, obj_str, tag_from, value_f64, value_i64};
use crate::wire;

type Answer = ApiResult<Json<Value>>;

fn ok() -> Answer {
    Ok(Json(json!({})))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn view_type(f: &Fields, key: &str) -> Result<ViewType> {
    match f.opt_str(key) {
        Ok(None) => Ok(ViewType::default()),
        Ok(Some(s)) => ViewType::parse(&s),
        // Protobuf JSON also allows the enum's number.
        Err(_) => ViewType::parse(&f.i64(key)?.to_string()),
    }
}

fn positive_max_results(f: &Fields) -> Result<Option<i64>> {
    match f.opt_i64("max_results")? {
        Some(n) if n <= 0 => Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer."
        ))),
        other => Ok(other),
    }
}

// ---- experiments ----

pub async fn create_experiment(State(s): State<AppState>, f: Fields) -> Answer {
    let name = f.str("name")?;
    let location = f.opt_str("artifact_location")?.filter(|l| !l.is_empty());
    if let Some(loc) = &location {
        if loc.starts_with("runs:/") {
            return Err(Error::invalid(format!("Artifact location cannot be a runs:/ URI. Given: '{loc}'")).into());
        }
    }
    let tags = f.tags("tags")?;
    let id = s.store.create_experiment(f.audit(), &name, location.as_deref(), &tags).await?;
    Ok(Json(json!({ "experiment_id": id })))
}

pub async fn get_experiment(State(s): State<AppState>, f: Fields) -> Answer {
    let e = s.store.get_experiment(&f.str("experiment_id")?).await?;
    Ok(Json(json!({ "experiment": wire::experiment(&e) })))
}

pub async fn get_experiment_by_name(State(s): State<AppState>, f: Fields) -> Answer {
    let e = s.store.get_experiment_by_name(&f.str("experiment_name")?).await?;
    Ok(Json(json!({ "experiment": wire::experiment(&e) })))
}

pub async fn search_experiments(State(s): State<AppState>, f: Fields) -> Answer {
    let query = ExperimentQuery {
        filter: f.opt_str("filter")?.unwrap_or_default(),
        order_by: f.str_list("order_by")?,
        view: view_type(&f, "view_type")?,
        max_results: positive_max_results(&f)?,
        page_token: f.opt_str("page_token")?.unwrap_or_default(),
    };
    let page = s.store.search_experiments(&query).await?;
    Ok(Json(wire::page("experiments", page.items.iter().map(wire::experiment).collect(), page.next_page_token)))
}

pub async fn update_experiment(State(s): State<AppState>, f: Fields) -> Answer {
    let id = f.str("experiment_id")?;
    let name = f.str("new_name")?;
    s.store.rename_experiment(f.audit(), &id, &name).await?;
    ok()
}

pub async fn delete_experiment(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_experiment(f.audit(), &f.str("experiment_id")?).await?;
    ok()
}

pub async fn restore_experiment(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.restore_experiment(f.audit(), &f.str("experiment_id")?).await?;
    ok()
}

pub async fn set_experiment_tag(State(s): State<AppState>, f: Fields) -> Answer {
    let id = f.str("experiment_id")?;
    let tag = Tag { key: f.str("key")?, value: f.opt_str("value")?.unwrap_or_default() };
    s.store.set_experiment_tag(f.audit(), &id, &tag).await?;
    ok()
}

pub async fn delete_experiment_tag(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_experiment_tag(f.audit(), &f.str("experiment_id")?, &f.str("key")?).await?;
    ok()
}

// ---- runs ----

pub async fn create_run(State(s): State<AppState>, f: Fields) -> Answer {
    let run = NewRun {
        experiment_id: f.opt_str("experiment_id")?.filter(|e| !e.is_empty()).unwrap_or_else(|| "0".into()),
        user_id: f.opt_str("user_id")?.unwrap_or_default(),
        run_name: f.opt_str("run_name")?,
        start_time: f.opt_i64("start_time")?.unwrap_or_else(now_ms),
        tags: f.tags("tags")?,
    };
    let run = s.store.create_run(f.audit(), run).await?;
    Ok(Json(json!({ "run": wire::run(&run) })))
}

pub async fn get_run(State(s): State<AppState>, f: Fields) -> Answer {
    let run = s.store.get_run(&f.run_id()?).await?;
    Ok(Json(json!({ "run": wire::run(&run) })))
}

pub async fn update_run(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let status = match f.opt_str("status") {
        Ok(None) => None,
        Ok(Some(st)) => Some(RunStatus::parse(&st)?),
        Err(_) => Some(RunStatus::parse(&f.i64("status")?.to_string())?),
    };
    let update = RunUpdate { status, end_time: f.opt_i64("end_time")?, run_name: f.opt_str("run_name")? };
    let info = s.store.update_run(f.audit(), &run_id, update).await?;
    Ok(Json(json!({ "run_info": wire::run_info(&info) })))
}

pub async fn delete_run(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_run(f.audit(), &f.run_id()?).await?;
    ok()
}

pub async fn restore_run(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.restore_run(f.audit(), &f.run_id()?).await?;
    ok()
}

pub async fn search_runs(State(s): State<AppState>, f: Fields) -> ApiResult<Json<wire::RunPage>> {
    let query = RunQuery {
        experiment_ids: f.str_list("experiment_ids")?,
        filter: f.opt_str("filter")?.unwrap_or_default(),
        order_by: f.str_list("order_by")?,
        view: view_type(&f, "run_view_type")?,
        max_results: positive_max_results(&f)?,
        page_token: f.opt_str("page_token")?.unwrap_or_default(),
    };
    let page = s.store.search_runs(&query).await?;
    Ok(Json(wire::RunPage { runs: page.items, next_page_token: page.next_page_token }))
}

fn metric_from(path: &str, o: &serde_json::Map<String, Value>) -> Result<Metric> {
    let field = |k: &str| format!("{path}{}{k}", if path.is_empty() { "" } else { "." });
    let key = obj_str(path, o, "key")?.filter(|k| !k.is_empty()).ok_or_else(|| missing_value(&field("key")))?;
    let value = o.get("value").filter(|v| !v.is_null()).ok_or_else(|| missing_value(&field("value")))?;
    let timestamp = o.get("timestamp").filter(|v| !v.is_null()).ok_or_else(|| missing_value(&field("timestamp")))?;
    Ok(Metric {
        value: value_f64(&field("value"), value)?,
        timestamp: value_i64(&field("timestamp"), timestamp)?,
        step: match o.get("step").filter(|v| !v.is_null()) {
            Some(v) => value_i64(&field("step"), v)?,
            None => 0,
        },
        key,
    })
}

fn fields_object(f: &Fields, keys: &[&str]) -> serde_json::Map<String, Value> {
    // Single-entity endpoints carry the entity's fields at top level.
    let mut o = serde_json::Map::new();
    if let Some(m) = f.json() {
        for k in keys {
            if let Some(v) = m.get(*k) {
                o.insert((*k).into(), v.clone());
            }
        }
    }
    o
}

pub async fn log_metric(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let metric = metric_from("", &fields_object(&f, &["key", "value", "timestamp", "step"]))?;
    validation::check_metric("", &metric)?;
    s.store.log_batch(f.audit(), &run_id, &Batch { metrics: vec![metric], ..Batch::default() }).await?;
    ok()
}

pub async fn log_param(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let param = Param { key: f.str("key")?, value: f.opt_str("value")?.unwrap_or_default() };
    s.store.log_batch(f.audit(), &run_id, &Batch { params: vec![param], ..Batch::default() }).await?;
    ok()
}

pub async fn set_tag(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let tag = Tag { key: f.str("key")?, value: f.opt_str("value")?.unwrap_or_default() };
    s.store.log_batch(f.audit(), &run_id, &Batch { tags: vec![tag], ..Batch::default() }).await?;
    ok()
}

pub async fn delete_tag(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_tag(f.audit(), &f.run_id()?, &f.str("key")?).await?;
    ok()
}

pub async fn log_batch(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let metrics = f
        .objects("metrics")?
        .iter()
        .enumerate()
        .map(|(i, o)| metric_from(&format!("metrics[{i}]"), o))
        .collect::<Result<Vec<_>>>()?;
    let params = f
        .objects("params")?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let path = format!("params[{i}]");
            let t = tag_from(&path, o)?;
            Ok(Param { key: t.key, value: t.value })
        })
        .collect::<Result<Vec<_>>>()?;
    let tags = f.tags("tags")?;
    s.store.log_batch(f.audit(), &run_id, &Batch { metrics, params, tags }).await?;
    ok()
}

pub async fn log_inputs(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let mut inputs = Vec::new();
    for (i, o) in f.objects("datasets")?.iter().enumerate() {
        let path = format!("datasets[{i}]");
        let tags = match o.get("tags") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(j, t)| match t {
                    Value::Object(m) => tag_from(&format!("{path}.tags[{j}]"), m),
                    _ => Err(Error::invalid(format!("Invalid value for parameter '{path}.tags[{j}]': expected an object"))),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(Error::invalid(format!("Invalid value for parameter '{path}.tags': expected a list")).into()),
        };
        let Some(Value::Object(d)) = o.get("dataset") else {
            return Err(missing_value(&format!("{path}.dataset")).into());
        };
        let dpath = format!("{path}.dataset");
        let text = |k: &str| obj_str(&dpath, d, k).map(Option::unwrap_or_default);
        inputs.push(DatasetInput {
            tags,
            dataset: Dataset {
                name: text("name")?,
                digest: text("digest")?,
                source_type: text("source_type")?,
                source: text("source")?,
                schema: obj_str(&dpath, d, "schema")?,
                profile: obj_str(&dpath, d, "profile")?,
            },
        });
    }
    s.store.log_inputs(f.audit(), &run_id, &inputs).await?;
    ok()
}

// ---- metrics ----

pub async fn get_metric_history(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let key = f.str("metric_key")?;
    let page = s
        .store
        .metric_history(&run_id, &key, positive_max_results(&f)?, &f.opt_str("page_token")?.unwrap_or_default())
        .await?;
    Ok(Json(wire::page("metrics", page.items.iter().map(wire::metric).collect(), page.next_page_token)))
}

pub async fn get_metric_history_bulk_interval(State(s): State<AppState>, f: Fields) -> Answer {
    let run_ids = f.str_list("run_ids")?;
    if run_ids.is_empty() {
        return Err(missing_value("run_ids").into());
    }
    if run_ids.len() > 100 {
        return Err(Error::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {} run_ids.",
            run_ids.len()
        ))
        .into());
    }
    let metric_key = f.str("metric_key")?;
    let max_results = f.opt_i64("max_results")?.unwrap_or(2500);
    if !(1..=2500).contains(&max_results) {
        return Err(Error::invalid("max_results must be between 1 and 2500.").into());
    }
    let steps = match (f.opt_i64("start_step")?, f.opt_i64("end_step")?) {
        (None, None) => None,
        (Some(a), Some(b)) if a <= b => Some((a, b)),
        (Some(a), Some(b)) => {
            return Err(Error::invalid(format!(
                "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
            ))
            .into());
        }
        _ => return Err(Error::invalid("If either start step or end step are specified, both must be specified.").into()),
    };
    let metrics = s.store.metric_history_interval(&IntervalQuery { run_ids, metric_key, steps, max_results }).await?;
    Ok(Json(wire::page("metrics", metrics.iter().map(wire::run_metric).collect(), None)))
}

// ---- artifacts/list ----

pub async fn list_artifacts(State(s): State<AppState>, f: Fields) -> Answer {
    let run = s.store.get_run(&f.run_id()?).await?;
    let path = f.opt_str("path")?.unwrap_or_default();
    crate::artifacts::list_under(&s, &run.info.artifact_uri, &path).await.map(Json)
}
