//! MLflow's input limits and name rules, with MLflow's messages (`mlflow/utils/validation.py`).
//!
//! One deliberate difference: MLflow truncates over-long param and tag values by default
//! (`MLFLOW_TRUNCATE_LONG_VALUES`); Steward refuses them, because silently changing a
//! logged value is data loss in an audited system.

use crate::entities::{Batch, Metric, Param, Tag};
use crate::error::{Error, Result};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
pub const MAX_DATASETS_PER_BATCH: usize = 1000;
/// `SEARCH_MAX_RESULTS_THRESHOLD` for runs.
pub const SEARCH_RUNS_MAX_RESULTS: i64 = 50000;
pub const SEARCH_RUNS_DEFAULT_MAX_RESULTS: i64 = 1000;
pub const SEARCH_EXPERIMENTS_MAX_RESULTS: i64 = 50000;
pub const METRIC_HISTORY_MAX_RESULTS: i64 = 25000;

/// `invalid_value(path, value, message)` from MLflow; `value` is rendered as JSON.
pub fn invalid_value(path: &str, value: &str, message: &str) -> Error {
    let rendered = serde_json::Value::String(value.to_owned()).to_string();
    Error::invalid(format!("Invalid value {rendered} for parameter '{path}' supplied: {message}"))
}

/// `missing_value(path)` from MLflow.
pub fn missing_value(path: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{path}'."))
}

fn exceeds_maximum_length(what: &str, limit: usize) -> Error {
    Error::invalid(format!("'{what}' exceeds the maximum length of {limit} characters"))
}

fn check_length(what: &str, limit: usize, value: &str) -> Result<()> {
    // MLflow counts Python characters (code points), not bytes.
    if value.chars().count() > limit { Err(exceeds_maximum_length(what, limit)) } else { Ok(()) }
}

const BAD_CHARACTER: &str = "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).";

/// `posixpath.normpath`, enough to tell whether a name would resolve to another one.
fn normpath(name: &str) -> String {
    if name.is_empty() {
        return ".".into();
    }
    let absolute = name.starts_with('/');
    let leading = if absolute && name.starts_with("//") && !name.starts_with("///") { 2 } else if absolute { 1 } else { 0 };
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    let out = format!("{}{}", "/".repeat(leading), body);
    if out.is_empty() { ".".into() } else { out }
}

fn path_not_unique(name: &str) -> bool {
    let norm = normpath(name);
    norm != name || norm == "." || norm.starts_with("..") || norm.starts_with('/')
}

/// The shared name rule for metric, param and tag keys.
pub fn check_name(path: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'));
    if !ok_chars {
        return Err(invalid_value(path, name, BAD_CHARACTER));
    }
    if path_not_unique(name) {
        let msg = format!(
            "Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{}'",
            normpath(name)
        );
        return Err(invalid_value(path, name, &msg));
    }
    Ok(())
}

pub fn check_metric(path: &str, m: &Metric) -> Result<()> {
    check_name(&join(path, "name"), &m.key)?;
    if m.timestamp < 0 {
        return Err(Error::invalid(format!(
            "Invalid value {} for parameter '{}' supplied: metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
            m.timestamp,
            join(path, "timestamp"),
            m.key,
            m.value
        )));
    }
    check_length("Metric name", MAX_ENTITY_KEY_LENGTH, &m.key)
}

pub fn check_param(path: &str, p: &Param) -> Result<()> {
    check_name(&join(path, "key"), &p.key)?;
    check_length("Param key", MAX_ENTITY_KEY_LENGTH, &p.key)?;
    check_length("Param value", MAX_PARAM_VAL_LENGTH, &p.value)
}

pub fn check_run_tag(path: &str, t: &Tag) -> Result<()> {
    check_name(&join(path, "key"), &t.key)?;
    check_length(&join(path, "key"), MAX_ENTITY_KEY_LENGTH, &t.key)?;
    check_length(&join(path, "value"), MAX_TAG_VAL_LENGTH, &t.value)
}

pub fn check_experiment_tag(t: &Tag) -> Result<()> {
    check_name("key", &t.key)?;
    check_length("key", MAX_EXPERIMENT_TAG_KEY_LENGTH, &t.key)?;
    check_length("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, &t.value)
}

pub fn check_experiment_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("Invalid experiment name: '{name}'")));
    }
    check_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

fn check_batch_limit(what: &str, limit: usize, len: usize) -> Result<()> {
    if len > limit {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {limit} {what}. Got {len} {what}. Please split up {what} across multiple requests and try again."
        )));
    }
    Ok(())
}

/// Everything `runs/log-batch` checks before touching the store.
pub fn check_batch(batch: &Batch) -> Result<()> {
    check_batch_limit("metrics", MAX_METRICS_PER_BATCH, batch.metrics.len())?;
    check_batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, batch.params.len())?;
    check_batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, batch.tags.len())?;
    let total = batch.metrics.len() + batch.params.len() + batch.tags.len();
    check_batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, total)?;
    for (i, m) in batch.metrics.iter().enumerate() {
        check_metric(&format!("metrics[{i}]"), m)?;
    }
    for (i, p) in batch.params.iter().enumerate() {
        check_param(&format!("params[{i}]"), p)?;
    }
    for (i, t) in batch.tags.iter().enumerate() {
        check_run_tag(&format!("tags[{i}]"), t)?;
    }
    let mut seen = std::collections::HashSet::new();
    let dupes: Vec<&str> = batch.params.iter().filter(|p| !seen.insert(p.key.as_str())).map(|p| p.key.as_str()).collect();
    if !dupes.is_empty() {
        return Err(Error::invalid(format!(
            "Duplicate parameter keys have been submitted: {dupes:?}. Please ensure the request contains only one param value per param key."
        )));
    }
    Ok(())
}

/// `_RUN_ID_REGEX`: `^[a-zA-Z0-9][\w\-]{0,255}$`.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let mut chars = run_id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && run_id.chars().count() <= 256
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok { Ok(()) } else { Err(invalid_value("run_id", run_id, "not a valid run ID")) }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mlflow_rules() {
        for ok in ["acc", "val/acc", "a b", "a:b", "a-b.c_d", "ünïcode"] {
            check_name("key", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["a?b", "a\nb", "../x", "/abs", "a//b", "a/./b", ".", "a/"] {
            assert!(check_name("key", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_limits_name_the_entity_and_counts() {
        let batch = Batch {
            params: (0..101).map(|i| Param { key: format!("p{i}"), value: "v".into() }).collect(),
            ..Batch::default()
        };
        let err = check_batch(&batch).unwrap_err();
        assert!(err.message().contains("at most 100 params. Got 101 params"), "{err}");
    }

    #[test]
    fn over_long_param_value_is_refused() {
        let p = Param { key: "k".into(), value: "x".repeat(6001) };
        let err = check_param("", &p).unwrap_err();
        assert_eq!(err.message(), "'Param value' exceeds the maximum length of 6000 characters");
        check_param("", &Param { key: "k".into(), value: "x".repeat(6000) }).unwrap();
    }

    #[test]
    fn duplicate_params_in_one_batch_are_refused() {
        let p = Param { key: "k".into(), value: "v".into() };
        let batch = Batch { params: vec![p.clone(), p], ..Batch::default() };
        assert!(check_batch(&batch).unwrap_err().message().contains("Duplicate parameter keys"));
    }
}
