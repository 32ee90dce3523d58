//! Reading whole runs (info, latest metrics, params, tags, inputs, outputs): one statement per
//! search page or `get_run`, which selects the page's run ids and returns them, and the runs,
//! as JSON documents the database builds.
//!
//! A page of a thousand runs holds several thousand child rows; fetched as rows, each value is
//! copied out of SQLite and every row handed from sqlx's worker thread to the caller, and that
//! hand-off cost more than the queries themselves. Aggregated by the database, the page crosses
//! once, as one row, and serde reads it straight into tuples.

use std::collections::HashMap;

use sqlx::Row;
use steward_core::entities::{Dataset, DatasetInput, LifecycleStage, Metric, Param, Run, RunInfo, RunStatus, Tag};
use steward_core::{Error, Result};

use super::{Backend, Bind, SqlStore, db_error, loaded_value};

impl Backend {
    /// The aggregate of one JSON array per row, built from `items` (a column list), as JSON
    /// nested arrays embed (SQLite keeps the JSON subtype of a scalar subquery's result).
    fn json_rows(self, items: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_group_array(json_array({items}))"),
            Backend::Postgres => format!("json_agg(json_build_array({items}))"),
        }
    }

    /// A scalar subquery's JSON result as text.
    fn json_text(self, subquery: &str) -> String {
        match self {
            Backend::Sqlite => format!("({subquery})"),
            Backend::Postgres => format!("({subquery})::text"),
        }
    }

    /// A double as text that reads back to the same double: SQLite's JSON writes doubles with
    /// 15 significant digits, `quote` with as many as the value needs; PostgreSQL's float8
    /// output is exact at the `extra_float_digits` sqlx sets.
    fn exact_real(self, column: &str) -> String {
        match self {
            Backend::Sqlite => format!("quote({column})"),
            Backend::Postgres => format!("{column}::text"),
        }
    }
}

/// key, value (as text, see [`Backend::exact_real`]), timestamp, step, is_nan.
type MetricJson = (String, String, i64, i64, i64);
type KeyValueJson = (String, String);
/// name, digest, source_type, source, schema, profile, tags.
type InputJson = (String, String, String, String, Option<String>, Option<String>, Option<Vec<KeyValueJson>>);
/// model_id, step.
type OutputJson = (String, i64);
/// The run's columns, then its child lists (`null` where PostgreSQL aggregates nothing).
type RunJson = (
    String,
    String,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    String,
    String,
    Option<Vec<MetricJson>>,
    Option<Vec<KeyValueJson>>,
    Option<Vec<KeyValueJson>>,
    Option<Vec<InputJson>>,
    Option<Vec<OutputJson>>,
);

/// The statement reading a page of runs. `page` is a query yielding the runs' `id`s (and the
/// keys `order` sorts them by); the statement returns one row: the ids as a JSON array in
/// `order` (NULL without one) and the runs as a JSON array in no particular order.
fn page_sql(b: Backend, page: &str, order: Option<&str>) -> String {
    let list = |items: &str, from: &str| format!("(SELECT {} FROM {from})", b.json_rows(items));
    let metrics = list(
        &format!("m.key, {}, m.timestamp, m.step, m.is_nan", b.exact_real("m.value")),
        "latest_metrics m WHERE m.run_uuid = r.run_uuid",
    );
    let params = list("pa.key, pa.value", "params pa WHERE pa.run_uuid = r.run_uuid");
    let tags = list("t.key, t.value", "tags t WHERE t.run_uuid = r.run_uuid");
    let input_tags = list("it.key, it.value", "input_tags it WHERE it.run_uuid = i.run_uuid AND it.dataset_uuid = i.dataset_uuid");
    let inputs = list(
        &format!("d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile, {input_tags}"),
        "run_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid WHERE i.run_uuid = r.run_uuid",
    );
    let outputs = list("o.model_id, o.step", "run_outputs o WHERE o.run_uuid = r.run_uuid");
    let runs = b.json_text(&format!(
        "SELECT {} FROM page p JOIN runs r ON r.run_uuid = p.id",
        b.json_rows(&format!(
            "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage, \
             {metrics}, {params}, {tags}, {inputs}, {outputs}"
        ))
    ));
    let ids = match (order, b) {
        (None, _) => "NULL".to_owned(),
        (Some(order), Backend::Sqlite) => format!("(SELECT json_group_array(id ORDER BY {order}) FROM page)"),
        (Some(order), Backend::Postgres) => format!("(SELECT json_agg(id ORDER BY {order}) FROM page)::text"),
    };
    format!("WITH page AS MATERIALIZED ({page}) SELECT {ids}, {runs}")
}

fn key_values(list: Option<Vec<KeyValueJson>>) -> Vec<Tag> {
    let mut tags: Vec<Tag> = list.unwrap_or_default().into_iter().map(|(key, value)| Tag { key, value }).collect();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    tags
}

fn run_from_json(j: RunJson) -> Result<Run> {
    let (run_id, run_name, experiment_id, user_id, status, start_time, end_time, artifact_uri, stage, metrics, params, tags, inputs, outputs) = j;
    let mut metrics = metrics
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value, timestamp, step, is_nan)| {
            let value = value.parse::<f64>().map_err(|_| Error::internal(format!("stored value '{value}' of metric '{key}' is not a number")))?;
            Ok(Metric { key, value: loaded_value(value, is_nan), timestamp, step })
        })
        .collect::<Result<Vec<_>>>()?;
    metrics.sort_by(|a, b| a.key.cmp(&b.key));
    let mut dataset_inputs: Vec<DatasetInput> = inputs
        .unwrap_or_default()
        .into_iter()
        .map(|(name, digest, source_type, source, schema, profile, tags)| DatasetInput {
            tags: key_values(tags),
            dataset: Dataset { name, digest, source_type, source, schema, profile },
        })
        .collect();
    dataset_inputs.sort_by(|a, b| (&a.dataset.name, &a.dataset.digest).cmp(&(&b.dataset.name, &b.dataset.digest)));
    let mut model_outputs = outputs.unwrap_or_default();
    model_outputs.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Ok(Run {
        info: RunInfo {
            run_id,
            run_name,
            experiment_id: experiment_id.to_string(),
            user_id,
            status: RunStatus::parse(&status)?,
            start_time,
            end_time,
            artifact_uri,
            lifecycle_stage: LifecycleStage::parse(&stage)?,
        },
        metrics,
        params: key_values(params).into_iter().map(|t| Param { key: t.key, value: t.value }).collect(),
        tags: key_values(tags),
        dataset_inputs,
        model_outputs,
    })
}

fn read_json<T: serde::de::DeserializeOwned + Default>(text: Option<String>, what: &str) -> Result<T> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| Error::internal(format!("cannot read the loaded {what}: {e}"))),
        None => Ok(T::default()),
    }
}

impl SqlStore {
    /// Reads the runs `page` (a query with binds, see [`page_sql`]) selects: their ids in
    /// `order`, and the runs by id.
    pub(super) async fn runs_page(&self, page: &str, order: Option<&str>, binds: Vec<Bind>) -> Result<(Vec<String>, HashMap<String, Run>)> {
        let row = self.backend.query(page_sql(self.backend, page, order), binds).fetch_one(&self.read).await.map_err(db_error)?;
        let ids: Vec<String> = read_json(row.get(0), "run ids")?;
        let list: Vec<RunJson> = read_json(row.get(1), "runs")?;
        let mut runs = HashMap::with_capacity(list.len());
        for j in list {
            let run = run_from_json(j)?;
            runs.insert(run.info.run_id.clone(), run);
        }
        Ok((ids, runs))
    }
}
