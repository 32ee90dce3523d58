//! MLflow's JSON shapes for tracking entities. Field names are MLflow's (snake_case), int64
//! values are JSON numbers, enums are strings, and unset or empty fields are omitted, as
//! protobuf's JSON printer does.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use steward_core::entities::{Dataset, DatasetInput, Experiment, Metric, Param, Run, RunInfo, RunMetric, Tag};
use steward_core::registry::{LoggedModel, ModelVersion, RegisteredModel, RegistryEvent};

/// Inserts `key: value` unless the list is empty.
fn put_list(m: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        m.insert(key.into(), Value::Array(items));
    }
}

pub fn tags(tags: &[Tag]) -> Vec<Value> {
    tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect()
}

pub fn metric(m: &Metric) -> Value {
    serde_json::to_value(MetricView(m)).unwrap_or_default()
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

/// A run's info in MLflow's shape (`user_id` and `end_time` left out when unset).
struct InfoView<'a>(&'a RunInfo);

impl Serialize for InfoView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let i = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("run_id", &i.run_id)?;
        m.serialize_entry("run_uuid", &i.run_id)?;
        m.serialize_entry("run_name", &i.run_name)?;
        m.serialize_entry("experiment_id", &i.experiment_id)?;
        if !i.user_id.is_empty() {
            m.serialize_entry("user_id", &i.user_id)?;
        }
        m.serialize_entry("status", i.status.as_str())?;
        m.serialize_entry("start_time", &i.start_time)?;
        if let Some(end) = i.end_time {
            m.serialize_entry("end_time", &end)?;
        }
        m.serialize_entry("artifact_uri", &i.artifact_uri)?;
        m.serialize_entry("lifecycle_stage", i.lifecycle_stage.as_str())?;
        m.end()
    }
}

pub fn run_info(i: &RunInfo) -> Value {
    serde_json::to_value(InfoView(i)).unwrap_or_default()
}

/// A metric value: a number, or MLflow's strings for the values JSON cannot hold.
struct Double(f64);

impl Serialize for Double {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            f64::INFINITY => s.serialize_str("Infinity"),
            f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            v => s.serialize_f64(v),
        }
    }
}

struct MetricView<'a>(&'a Metric);

impl Serialize for MetricView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("key", &self.0.key)?;
        m.serialize_entry("value", &Double(self.0.value))?;
        m.serialize_entry("timestamp", &self.0.timestamp)?;
        m.serialize_entry("step", &self.0.step)?;
        m.end()
    }
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct OutputView<'a> {
    model_id: &'a str,
    step: i64,
}

/// Each item of a list through its view.
struct Each<'a, T, V>(&'a [T], fn(&'a T) -> V);

impl<'a, T, V: Serialize> Serialize for Each<'a, T, V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(self.1))
    }
}

/// `key: list` in a map unless the list is empty (protobuf's JSON printer leaves it out).
fn list_entry<'a, M: SerializeMap, T, V: Serialize>(m: &mut M, key: &str, items: &'a [T], view: fn(&'a T) -> V) -> std::result::Result<(), M::Error> {
    if items.is_empty() { Ok(()) } else { m.serialize_entry(key, &Each(items, view)) }
}

fn tag_view(t: &Tag) -> KeyValue<'_> {
    KeyValue { key: &t.key, value: &t.value }
}

struct DatasetInputView<'a>(&'a DatasetInput);

impl Serialize for DatasetInputView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        list_entry(&mut m, "tags", &self.0.tags, tag_view)?;
        m.serialize_entry("dataset", &DatasetView(&self.0.dataset))?;
        m.end()
    }
}

struct DatasetView<'a>(&'a Dataset);

impl Serialize for DatasetView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &d.name)?;
        m.serialize_entry("digest", &d.digest)?;
        m.serialize_entry("source_type", &d.source_type)?;
        m.serialize_entry("source", &d.source)?;
        if let Some(schema) = &d.schema {
            m.serialize_entry("schema", schema)?;
        }
        if let Some(profile) = &d.profile {
            m.serialize_entry("profile", profile)?;
        }
        m.end()
    }
}

/// A whole run in MLflow's shape, written by serde straight to the response: a page of a
/// thousand runs never becomes a tree of `Value`s.
struct RunView<'a>(&'a Run);

impl Serialize for RunView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("info", &InfoView(&r.info))?;
        m.serialize_entry("data", &RunData(r))?;
        m.serialize_entry("inputs", &RunInputs(r))?;
        m.serialize_entry("outputs", &RunOutputs(r))?;
        m.end()
    }
}

struct RunData<'a>(&'a Run);

impl Serialize for RunData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        list_entry(&mut m, "metrics", &self.0.metrics, MetricView)?;
        list_entry(&mut m, "params", &self.0.params, |p: &Param| KeyValue { key: &p.key, value: &p.value })?;
        list_entry(&mut m, "tags", &self.0.tags, tag_view)?;
        m.end()
    }
}

struct RunInputs<'a>(&'a Run);

impl Serialize for RunInputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        list_entry(&mut m, "dataset_inputs", &self.0.dataset_inputs, DatasetInputView)?;
        m.end()
    }
}

struct RunOutputs<'a>(&'a Run);

impl Serialize for RunOutputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        list_entry(&mut m, "model_outputs", &self.0.model_outputs, |(id, step): &(String, i64)| OutputView { model_id: id, step: *step })?;
        m.end()
    }
}

pub fn run(r: &Run) -> Value {
    serde_json::to_value(RunView(r)).unwrap_or_default()
}

/// A page of `runs/search`: `{"runs": [...], "next_page_token": ...}`, both left out when empty.
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_page_token: Option<String>,
}

impl Serialize for RunPage {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        list_entry(&mut m, "runs", &self.runs, RunView)?;
        if let Some(t) = &self.next_page_token {
            m.serialize_entry("next_page_token", t)?;
        }
        m.end()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::entities::{LifecycleStage, RunStatus};

    fn full_run() -> Run {
        Run {
            info: RunInfo {
                run_id: "abc".into(),
                run_name: "fox".into(),
                experiment_id: "7".into(),
                user_id: "alice".into(),
                status: RunStatus::Finished,
                start_time: 1_700_000_000_000,
                end_time: Some(1_700_000_000_500),
                artifact_uri: "file:///a/7/abc/artifacts".into(),
                lifecycle_stage: LifecycleStage::Active,
            },
            metrics: vec![
                Metric { key: "auc".into(), value: 0.30000000000000004, timestamp: 5, step: 2 },
                Metric { key: "bad".into(), value: f64::NAN, timestamp: 6, step: 0 },
                Metric { key: "big".into(), value: f64::NEG_INFINITY, timestamp: 7, step: -1 },
            ],
            params: vec![Param { key: "model".into(), value: "gbm".into() }],
            tags: vec![Tag { key: "mlflow.runName".into(), value: "fox \"quoted\"".into() }],
            dataset_inputs: vec![DatasetInput {
                tags: vec![Tag { key: "mlflow.data.context".into(), value: "training".into() }],
                dataset: Dataset {
                    name: "german".into(),
                    digest: "d1".into(),
                    source_type: "local".into(),
                    source: "{}".into(),
                    schema: Some("{\"a\":1}".into()),
                    profile: None,
                },
            }],
            model_outputs: vec![("m-1".into(), 3)],
        }
    }

    #[test]
    fn a_run_has_mlflows_shape_with_unset_fields_left_out() {
        let expected = json!({
            "info": {
                "run_id": "abc", "run_uuid": "abc", "run_name": "fox", "experiment_id": "7", "user_id": "alice",
                "status": "FINISHED", "start_time": 1_700_000_000_000i64, "end_time": 1_700_000_000_500i64,
                "artifact_uri": "file:///a/7/abc/artifacts", "lifecycle_stage": "active"
            },
            "data": {
                "metrics": [
                    {"key": "auc", "value": 0.30000000000000004, "timestamp": 5, "step": 2},
                    {"key": "bad", "value": "NaN", "timestamp": 6, "step": 0},
                    {"key": "big", "value": "-Infinity", "timestamp": 7, "step": -1}
                ],
                "params": [{"key": "model", "value": "gbm"}],
                "tags": [{"key": "mlflow.runName", "value": "fox \"quoted\""}]
            },
            "inputs": {"dataset_inputs": [{
                "tags": [{"key": "mlflow.data.context", "value": "training"}],
                "dataset": {"name": "german", "digest": "d1", "source_type": "local", "source": "{}", "schema": "{\"a\":1}"}
            }]},
            "outputs": {"model_outputs": [{"model_id": "m-1", "step": 3}]}
        });
        let full = full_run();
        assert_eq!(run(&full), expected);
        // The bytes a page is written as read back to the same document.
        let text = serde_json::to_string(&RunPage { runs: vec![full.clone()], next_page_token: Some("tok".into()) }).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"runs": [expected], "next_page_token": "tok"}));

        let bare = Run {
            info: RunInfo { user_id: String::new(), end_time: None, ..full.info.clone() },
            metrics: vec![],
            params: vec![],
            tags: vec![],
            dataset_inputs: vec![],
            model_outputs: vec![],
        };
        let expected = json!({
            "info": {
                "run_id": "abc", "run_uuid": "abc", "run_name": "fox", "experiment_id": "7",
                "status": "FINISHED", "start_time": 1_700_000_000_000i64,
                "artifact_uri": "file:///a/7/abc/artifacts", "lifecycle_stage": "active"
            },
            "data": {}, "inputs": {}, "outputs": {}
        });
        assert_eq!(run(&bare), expected);
        let text = serde_json::to_string(&RunPage { runs: vec![], next_page_token: None }).unwrap();
        assert_eq!(text, "{}");
    }
}
