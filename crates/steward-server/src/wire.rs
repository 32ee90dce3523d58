//! MLflow's JSON shapes for tracking entities. Field names are MLflow's (snake_case), int64
//! values are JSON numbers, enums are strings, and unset or empty fields are omitted, as
//! protobuf's JSON printer does.

use serde_json::{Map, Value, json};
use steward_core::entities::{Dataset, DatasetInput, Experiment, Metric, Param, Run, RunInfo, RunMetric, Tag};
use steward_core::registry::{LoggedModel, ModelVersion, RegisteredModel, RegistryEvent};

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
    let mut outputs = Map::new();
    put_list(&mut outputs, "model_outputs", r.model_outputs.iter().map(|(id, step)| json!({"model_id": id, "step": step})).collect());
    json!({"info": run_info(&r.info), "data": data, "inputs": inputs, "outputs": outputs})
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

fn put_opt(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

pub fn model_version(v: &ModelVersion) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(v.name));
    m.insert("version".into(), json!(v.version.to_string()));
    m.insert("creation_timestamp".into(), json!(v.creation_timestamp));
    m.insert("last_updated_timestamp".into(), json!(v.last_updated_timestamp));
    put_opt(&mut m, "user_id", &v.user_id);
    m.insert("current_stage".into(), json!(v.current_stage));
    put_opt(&mut m, "description", &v.description);
    m.insert("source".into(), json!(v.source));
    put_opt(&mut m, "run_id", &v.run_id);
    m.insert("status".into(), json!(v.status));
    put_opt(&mut m, "status_message", &v.status_message);
    put_list(&mut m, "tags", tags(&v.tags));
    put_opt(&mut m, "run_link", &v.run_link);
    put_list(&mut m, "aliases", v.aliases.iter().map(|a| json!(a)).collect());
    Value::Object(m)
}

pub fn registered_model(r: &RegisteredModel) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    m.insert("creation_timestamp".into(), json!(r.creation_timestamp));
    m.insert("last_updated_timestamp".into(), json!(r.last_updated_timestamp));
    if let Some(d) = r.description.as_ref().filter(|d| !d.is_empty()) {
        m.insert("description".into(), json!(d));
    }
    put_list(&mut m, "latest_versions", r.latest_versions.iter().map(model_version).collect());
    put_list(&mut m, "tags", tags(&r.tags));
    put_list(&mut m, "aliases", r.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect());
    Value::Object(m)
}

pub fn logged_model(l: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(l.model_id));
    info.insert("experiment_id".into(), json!(l.experiment_id));
    info.insert("name".into(), json!(l.name));
    info.insert("creation_timestamp_ms".into(), json!(l.creation_timestamp));
    info.insert("last_updated_timestamp_ms".into(), json!(l.last_updated_timestamp));
    info.insert("artifact_uri".into(), json!(l.artifact_location));
    info.insert("status".into(), json!(l.status));
    put_opt(&mut info, "model_type", &l.model_type);
    put_opt(&mut info, "source_run_id", &l.source_run_id);
    put_opt(&mut info, "status_message", &l.status_message);
    put_list(&mut info, "tags", tags(&l.tags));
    let mut data = Map::new();
    put_list(&mut data, "params", tags(&l.params));
    json!({"info": info, "data": data})
}

pub fn registry_event(e: &RegistryEvent) -> Value {
    json!({"model": e.model, "kind": e.kind, "label": e.label, "version": e.version.map(|v| v.to_string()), "time": e.time, "actor": e.actor})
}
