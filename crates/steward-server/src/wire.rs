//! MLflow's JSON shapes for tracking entities. Field names are MLflow's (snake_case), int64
//! values are JSON numbers, enums are strings, and unset or empty fields are omitted, as
//! protobuf's JSON printer does.

use serde_json::{Map, Value, json};
use steward_core::entities::{Dataset, DatasetInput, Experiment, Metric, Param, Run, RunInfo, RunMetric, Tag};

/// A metric value: a number, or MLflow's strings for the values JSON cannot hold.
pub fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// Inserts `key: value` unless the list is empty.
fn put_list(m: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        m.insert(key.into(), Value::Array(items));
    }
}

pub fn tags(tags: &[Tag]) -> Vec<Value> {
    tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect()
}

pub fn params(params: &[Param]) -> Vec<Value> {
    params.iter().map(|p| json!({"key": p.key, "value": p.value})).collect()
}

pub fn metric(m: &Metric) -> Value {
    json!({"key": m.key, "value": double(m.value), "timestamp": m.timestamp, "step": m.step})
}

pub fn run_metric(m: &RunMetric) -> Value {
    let mut v = metric(&m.metric);
    v["run_id"] = json!(m.run_id);
    v
}

pub fn experiment(e: &Experiment) -> Value {
    let mut m = Map::new();
    m.insert("experiment_id".into(), json!(e.experiment_id));
    m.insert("name".into(), json!(e.name));
    m.insert("artifact_location".into(), json!(e.artifact_location));
    m.insert("lifecycle_stage".into(), json!(e.lifecycle_stage.as_str()));
    m.insert("last_update_time".into(), json!(e.last_update_time));
    m.insert("creation_time".into(), json!(e.creation_time));
    put_list(&mut m, "tags", tags(&e.tags));
    Value::Object(m)
}

pub fn run_info(i: &RunInfo) -> Value {
    let mut m = Map::new();
    m.insert("run_id".into(), json!(i.run_id));
    m.insert("run_uuid".into(), json!(i.run_id));
    m.insert("run_name".into(), json!(i.run_name));
    m.insert("experiment_id".into(), json!(i.experiment_id));
    if !i.user_id.is_empty() {
        m.insert("user_id".into(), json!(i.user_id));
    }
    m.insert("status".into(), json!(i.status.as_str()));
    m.insert("start_time".into(), json!(i.start_time));
    if let Some(end) = i.end_time {
        m.insert("end_time".into(), json!(end));
    }
    m.insert("artifact_uri".into(), json!(i.artifact_uri));
    m.insert("lifecycle_stage".into(), json!(i.lifecycle_stage.as_str()));
    Value::Object(m)
}

fn dataset(d: &Dataset) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(d.name));
    m.insert("digest".into(), json!(d.digest));
    m.insert("source_type".into(), json!(d.source_type));
    m.insert("source".into(), json!(d.source));
    if let Some(s) = &d.schema {
        m.insert("schema".into(), json!(s));
    }
    if let Some(p) = &d.profile {
        m.insert("profile".into(), json!(p));
    }
    Value::Object(m)
}

fn dataset_input(d: &DatasetInput) -> Value {
    let mut m = Map::new();
    put_list(&mut m, "tags", tags(&d.tags));
    m.insert("dataset".into(), dataset(&d.dataset));
    Value::Object(m)
}

pub fn run(r: &Run) -> Value {
    let mut data = Map::new();
    put_list(&mut data, "metrics", r.metrics.iter().map(metric).collect());
    put_list(&mut data, "params", params(&r.params));
    put_list(&mut data, "tags", tags(&r.tags));
    let mut inputs = Map::new();
    put_list(&mut inputs, "dataset_inputs", r.dataset_inputs.iter().map(dataset_input).collect());
    json!({"info": run_info(&r.info), "data": data, "inputs": inputs})
}

/// `{"<key>": [...], "next_page_token": ...}` with both omitted when empty.
pub fn page(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut m = Map::new();
    put_list(&mut m, key, items);
    if let Some(t) = next {
        m.insert("next_page_token".into(), json!(t));
    }
    Value::Object(m)
}
