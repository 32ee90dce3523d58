//! The SQL metadata store: one implementation over sqlx's `Any` driver, run on SQLite (the
//! embedded default) or PostgreSQL.
//!
//! The two backends share every statement (both accept `$N` placeholders, `ON CONFLICT`,
//! `RETURNING` and window functions); they differ in connection setup, the write path, their
//! migrations (`migrations/<backend>/`) and the names of the JSON functions that build a page
//! of runs (`runs.rs`). SQLite gets a single-connection writer pool so
//! that writes are serialised in-process and never fight over the database lock, and a
//! separate reader pool that WAL lets run alongside it.

mod access;
mod agent;
mod datasets;
mod migrate;
mod names;
mod registry;
mod runs;
mod search;
mod serving;
mod writer;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use sqlx::Executor;
use writer::{WriteTx, Writer};
use steward_core::entities::{
    Batch, DatasetInput, Experiment, LifecycleStage, Metric, NewRun, Param, Run, RunInfo, RunMetric,
    RunUpdate, Tag, RUN_NAME_TAG,
};
use steward_core::anchor::Checkpoint;
use steward_core::audit::{self, Audit, Break, LedgerEntry};
use steward_core::search::{decode_page_token, encode_page_token};
use steward_core::validation;
use steward_core::{Error, ErrorCode, Result};

use crate::{ExperimentQuery, IntervalQuery, MetadataStore, Page, RunQuery};

/// Which database a [`SqlStore`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }

    /// A dynamic query with its binds. SQLite gets the `$N` placeholders rewritten to anonymous
    /// `?` in order of appearance: it looks named parameters up in a list on every bind, which
    /// makes a statement with thousands of values (a 1,000-metric batch, a page of 1,000
    /// runs) quadratic.
    pub(crate) fn query(self, sql: String, binds: Vec<Bind>) -> Query<'static> {
        match self {
            Backend::Postgres => bind_all(dyn_query(sql), binds),
            Backend::Sqlite => {
                let (sql, binds) = anonymize(&sql, binds);
                bind_all(dyn_query(sql), binds)
            }
        }
    }
}

/// `(…), (…)` placeholders `$1…` for a multi-row `VALUES` of `rows` × `cols` binds.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

/// Rewrites `$N` placeholders (outside string literals) to `?`, ordering the binds by
/// appearance; a placeholder used twice gets its value twice.
fn anonymize(sql: &str, binds: Vec<Bind>) -> (String, Vec<Bind>) {
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<usize> = Vec::with_capacity(binds.len());
    let mut in_literal = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if c == '$' && !in_literal && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut end = i + 1;
            while let Some((j, d)) = chars.peek().copied() {
                if !d.is_ascii_digit() {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            let n: usize = sql[i + 1..end].parse().expect("digits");
            order.push(n - 1);
            out.push('?');
        } else {
            out.push(c);
        }
    }
    // Each bind moves to its last use and is cloned only for earlier ones: a large value (a
    // prediction's inputs) is not copied.
    let mut last = vec![usize::MAX; binds.len()];
    for (k, &n) in order.iter().enumerate() {
        last[n] = k;
    }
    let mut slots: Vec<Option<Bind>> = binds.into_iter().map(Some).collect();
    let ordered = order
        .iter()
        .enumerate()
        .map(|(k, &n)| if last[n] == k { slots[n].take().expect("a bind's last use takes it") } else { slots[n].clone().expect("used before its last use") })
        .collect();
    (out, ordered)
}

pub struct SqlStore {
    read: AnyPool,
    write: Writer,
    backend: Backend,
    artifact_root: String,
}

/// A value to bind to a `$N` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    I64(i64),
    F64(f64),
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_owned())
    }
}

impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Text(v.clone())
    }
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::I64(v)
    }
}

/// A key/value side table (tags) whose rows belong to the row named by its `owner` columns.
pub(crate) struct KeyValues {
    table: &'static str,
    owner: &'static [&'static str],
}

pub(crate) const RUN_TAGS: KeyValues = KeyValues { table: "tags", owner: &["run_uuid"] };
pub(crate) const EXPERIMENT_TAGS: KeyValues = KeyValues { table: "experiment_tags", owner: &["experiment_id"] };
pub(crate) const INPUT_TAGS: KeyValues = KeyValues { table: "input_tags", owner: &["run_uuid", "dataset_uuid"] };
pub(crate) const MODEL_TAGS: KeyValues = KeyValues { table: "registered_model_tags", owner: &["name"] };
pub(crate) const VERSION_TAGS: KeyValues = KeyValues { table: "model_version_tags", owner: &["name", "version"] };
pub(crate) const LOGGED_MODEL_TAGS: KeyValues = KeyValues { table: "logged_model_tags", owner: &["model_id"] };
pub(crate) const LOGGED_MODEL_PARAMS: KeyValues = KeyValues { table: "logged_model_params", owner: &["model_id"] };

impl KeyValues {
    /// Sets `key` to `value` for the owner, replacing any earlier value.
    pub(crate) async fn upsert(&self, tx: &mut WriteTx, owner: Vec<Bind>, key: &str, value: &str) -> Result<()> {
        let cols = self.owner.join(", ");
        let sql = format!(
            "INSERT INTO {} ({cols}, key, value) VALUES ({}) ON CONFLICT ({cols}, key) DO UPDATE SET value = excluded.value",
            self.table,
            placeholders(1, self.owner.len() + 2)
        );
        let mut binds = owner;
        binds.extend([Bind::from(key), Bind::from(value)]);
        bind_all(dyn_query(sql), binds).execute(&mut **tx).await.map_err(db_error)?;
        Ok(())
    }

    /// Removes `key` from the owner; returns how many rows went (0 or 1).
    pub(crate) async fn delete(&self, tx: &mut WriteTx, owner: Vec<Bind>, key: &str) -> Result<u64> {
        let n = self.owner.len();
        let matches: Vec<String> = self.owner.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
        let sql = format!("DELETE FROM {} WHERE {} AND key = ${}", self.table, matches.join(" AND "), n + 1);
        let mut binds = owner;
        binds.push(Bind::from(key));
        Ok(bind_all(dyn_query(sql), binds).execute(&mut **tx).await.map_err(db_error)?.rows_affected())
    }
}

pub(crate) fn bind_all(mut q: Query<'_>, binds: Vec<Bind>) -> Query<'_> {
    for b in binds {
        q = match b {
            Bind::I64(v) => q.bind(v),
            Bind::F64(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
            Bind::OptText(v) => q.bind(v),
        };
    }
    q
}

pub(crate) fn dyn_query(sql: String) -> Query<'static> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

/// Groups `(owner, key, value)` rows into each owner's list of key/value pairs.
pub(crate) fn tags_by_owner<K>(rows: Vec<AnyRow>) -> HashMap<K, Vec<Tag>>
where
    K: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Eq + std::hash::Hash,
{
    let mut out: HashMap<K, Vec<Tag>> = HashMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(Tag { key: r.get(1), value: r.get(2) });
    }
    out
}

/// Placeholders `$start, $start+1, ...` for an `IN (...)` list of `n` values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The longest any statement may run on PostgreSQL before the server cancels it (migrations
/// excepted). A query that needs longer is refused rather than left to exhaust the database.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn db_error(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::PoolTimedOut => Error::new(ErrorCode::TemporarilyUnavailable, "the metadata store is busy; retry"),
        // query_canceled: the statement timeout cut it off.
        sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => Error::new(
            ErrorCode::TemporarilyUnavailable,
            format!("the query ran longer than the {} s statement timeout and was cancelled; narrow it (a more selective filter, fewer results)", STATEMENT_TIMEOUT.as_secs()),
        ),
        // Deadlock or serialization failure (PostgreSQL), busy (SQLite): nothing was written.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001" | "5" | "517")) => {
            Error::new(ErrorCode::TemporarilyUnavailable, format!("the metadata store is busy; retry ({d})"))
        }
        // A value PostgreSQL cannot store or read as its type: the caller's input, not a fault
        // (NUL in text, a number out of range, text where a number belongs).
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")) => {
            Error::invalid(format!("a value holds a character the store cannot keep (such as NUL, U+0000): {}", d.message()))
        }
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22003" | "22P02")) => Error::invalid(format!("a value is out of range or of the wrong type: {}", d.message())),
        _ => Error::internal(format!("metadata store error: {e}")),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn parse_experiment_id(id: &str) -> Result<i64> {
    id.parse::<i64>().map_err(|_| {
        Error::invalid(format!("Invalid experiment ID '{id}'. Experiment ID must be a valid integer."))
    })
}

fn experiment_not_found(id: &str) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}

fn run_not_found(id: &str) -> Error {
    Error::not_found(format!("Run with id={id} not found"))
}

/// Metric values as stored: NaN cannot live in a SQLite REAL, so it is kept as 0 + a flag.
fn stored_value(v: f64) -> (f64, i64) {
    if v.is_nan() { (0.0, 1) } else { (v, 0) }
}

/// The six values of a `(run_uuid, key, value, timestamp, step, is_nan)` row.
fn metric_binds(run_id: &str, m: &Metric) -> [Bind; 6] {
    let (v, nan) = stored_value(m.value);
    [Bind::Text(run_id.to_owned()), Bind::Text(m.key.clone()), Bind::F64(v), Bind::I64(m.timestamp), Bind::I64(m.step), Bind::I64(nan)]
}

fn loaded_value(v: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { v }
}

/// Splits an MLflow-style database URI into the backend and a URL sqlx understands.
fn parse_uri(uri: &str) -> Result<(Backend, String)> {
    if uri.starts_with("postgresql://") || uri.starts_with("postgres://") {
        let url = uri.replacen("postgresql+psycopg2://", "postgresql://", 1);
        return Ok((Backend::Postgres, url));
    }
    // SQLAlchemy's convention: sqlite:///relative and sqlite:////absolute.
    let path = if let Some(rest) = uri.strip_prefix("sqlite:///") {
        rest.to_owned()
    } else if let Some(rest) = uri.strip_prefix("sqlite://") {
        rest.to_owned()
    } else if let Some(rest) = uri.strip_prefix("sqlite:") {
        rest.to_owned()
    } else if uri.contains("://") {
        return Err(Error::invalid(format!(
            "unsupported backend store URI '{uri}': expected sqlite:///PATH, postgresql://USER@HOST:PORT/DB or a file path"
        )));
    } else {
        uri.to_owned()
    };
    if path.is_empty() {
        return Err(Error::invalid(format!("backend store URI '{uri}' names no database file")));
    }
    let path = std::path::Path::new(&path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    let abs = std::path::absolute(path).map_err(|e| Error::internal(format!("bad path {}: {e}", path.display())))?;
    Ok((Backend::Sqlite, format!("sqlite://{}?mode=rwc", abs.display())))
}

const SQLITE_PRAGMAS: [&str; 6] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA busy_timeout = 10000",
    // FULL: an acknowledged write survives power loss, not only a process crash.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    // MLflow's LIKE is case-sensitive; ILIKE is the case-insensitive one.
    "PRAGMA case_sensitive_like = ON",
    // Reads map the database file instead of copying each page into every reader
    // connection's own page cache (256 MiB of address space; larger files read the rest).
    "PRAGMA mmap_size = 268435456",
];

impl SqlStore {
    pub async fn open(uri: &str, artifact_root: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let (backend, url) = parse_uri(uri)?;
        let options = AnyConnectOptions::from_str(&url).map_err(|e| Error::invalid(format!("bad backend store URI '{uri}': {e}")))?;
        let connect = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        match backend {
                            Backend::Sqlite => {
                                for pragma in SQLITE_PRAGMAS {
                                    conn.execute(pragma).await?;
                                }
                            }
                            Backend::Postgres => {
                                conn.execute(sqlx::AssertSqlSafe(format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis()))).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let (read, write) = match backend {
            Backend::Sqlite => {
                let write = connect(1).connect_with(options.clone()).await.map_err(|e| open_error(uri, e))?;
                let read = connect(8).connect_with(options).await.map_err(|e| open_error(uri, e))?;
                (read, write)
            }
            Backend::Postgres => {
                let pool = connect(16).connect_with(options).await.map_err(|e| open_error(uri, e))?;
                (pool.clone(), pool)
            }
        };
        migrate::run(&write, backend).await?;
        let write = match backend {
            // The pool has exactly one connection; the group keeps it for good.
            Backend::Sqlite => Writer::Group(writer::Group::start(write.acquire().await.map_err(db_error)?)),
            Backend::Postgres => Writer::Pool(write),
        };
        let store = SqlStore { read, write, backend, artifact_root: artifact_root.trim_end_matches('/').to_owned() };
        store.ensure_default_experiment().await?;
        Ok(store)
    }

    /// Runs a read query (with its binds) on the reader pool.
    async fn rows(&self, sql: String, binds: Vec<Bind>) -> Result<Vec<AnyRow>> {
        self.backend.query(sql, binds).fetch_all(&self.read).await.map_err(db_error)
    }

    async fn begin(&self) -> Result<WriteTx> {
        self.write.begin().await
    }

    fn experiment_artifact_location(&self, id: i64) -> String {
        format!("{}/{id}", self.artifact_root)
    }

    async fn ensure_default_experiment(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM experiments WHERE experiment_id = 0")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            let now = now_ms();
            sqlx::query(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', $1, 'active', $2, $2)",
            )
            .bind(self.experiment_artifact_location(0))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let system = Audit::new("steward", Some("default experiment created at first start".into()), b"");
            append(&mut tx, &system, "experiment.create", "experiment", "0").await?;
        }
        tx.commit().await
    }

    async fn load_experiments(&self, ids: &[i64]) -> Result<Vec<Experiment>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ph = placeholders(1, ids.len());
        let binds: Vec<Bind> = ids.iter().map(|i| Bind::I64(*i)).collect();
        let rows = self.backend.query(format!(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments WHERE experiment_id IN ({ph})"
            ),
            binds.clone(),
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        let tag_rows = self.backend.query(format!("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({ph}) ORDER BY key"),
            binds,
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        let mut tags = tags_by_owner::<i64>(tag_rows);
        let mut by_id: HashMap<i64, Experiment> = HashMap::new();
        for r in rows {
            let id: i64 = r.get(0);
            let stage: String = r.get(3);
            by_id.insert(
                id,
                Experiment {
                    experiment_id: id.to_string(),
                    name: r.get(1),
                    artifact_location: r.get(2),
                    lifecycle_stage: LifecycleStage::parse(&stage)?,
                    creation_time: r.get(4),
                    last_update_time: r.get(5),
                    tags: tags.remove(&id).unwrap_or_default(),
                },
            );
        }
        // Keep the caller's order (it carries the search's ORDER BY).
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

fn open_error(uri: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::TemporarilyUnavailable, format!("cannot open metadata store '{uri}': {e}"))
}

/// Reads a run's lifecycle stage inside a write transaction; refuses unknown runs.
async fn run_stage(tx: &mut WriteTx, run_id: &str) -> Result<String> {
    let row = sqlx::query("SELECT lifecycle_stage FROM runs WHERE run_uuid = $1")
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .ok_or_else(|| run_not_found(run_id))?;
    Ok(row.get(0))
}

async fn require_active_run(tx: &mut WriteTx, run_id: &str) -> Result<()> {
    let stage = run_stage(tx, run_id).await?;
    if stage != "active" {
        return Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {stage}."
        )));
    }
    Ok(())
}

async fn experiment_stage(tx: &mut WriteTx, id: i64, shown: &str) -> Result<String> {
    let row = sqlx::query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .ok_or_else(|| experiment_not_found(shown))?;
    Ok(row.get(0))
}

async fn upsert_run_tags(tx: &mut WriteTx, run_id: &str, tags: &[Tag]) -> Result<()> {
    for t in tags {
        RUN_TAGS.upsert(tx, vec![Bind::from(run_id)], &t.key, &t.value).await?;
        if t.key == RUN_NAME_TAG {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(&t.value)
                .bind(run_id)
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
    }
    Ok(())
}

#[async_trait]
impl MetadataStore for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn create_experiment(&self, audit: &Audit, name: &str, artifact_location: Option<&str>, tags: &[Tag]) -> Result<String> {
        validation::check_experiment_name(name)?;
        for t in tags {
            validation::check_experiment_tag(t)?;
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.get(0),
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::already_exists(format!("Experiment(name={name}) already exists")));
            }
            Err(e) => return Err(db_error(e)),
        };
        if artifact_location.is_none_or(str::is_empty) {
            sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(self.experiment_artifact_location(id))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for t in tags {
            EXPERIMENT_TAGS.upsert(&mut tx, vec![Bind::from(id)], &t.key, &t.value).await?;
        }
        append(&mut tx, audit, "experiment.create", "experiment", &id.to_string()).await?;
        tx.commit().await?;
        Ok(id.to_string())
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        self.load_experiments(&[id]).await?.pop().ok_or_else(|| experiment_not_found(experiment_id))
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found(format!("Could not find experiment with name '{name}'")))?;
        let id: i64 = row.get(0);
        self.load_experiments(&[id]).await?.pop().ok_or_else(|| experiment_not_found(&id.to_string()))
    }

    async fn search_experiments(&self, query: &ExperimentQuery) -> Result<Page<Experiment>> {
        let (sql, binds, limit, offset) = search::experiments_sql(query)?;
        let rows = self.backend.query(sql, binds).fetch_all(&self.read).await.map_err(db_error)?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let next = page_after(&mut ids, limit, offset);
        Ok(Page { items: self.load_experiments(&ids).await?, next_page_token: next })
    }

    async fn rename_experiment(&self, audit: &Audit, experiment_id: &str, new_name: &str) -> Result<()> {
        validation::check_experiment_name(new_name)?;
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.begin().await?;
        let stage = experiment_stage(&mut tx, id, experiment_id).await?;
        if stage != "active" {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment. Experiment {experiment_id} is in lifecycle stage {stage}"
            )));
        }
        let res = sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(new_name)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {
                append(&mut tx, audit, "experiment.rename", "experiment", experiment_id).await?;
                tx.commit().await
            }
            Err(e) if is_unique_violation(&e) => {
                Err(Error::already_exists(format!("Experiment(name={new_name}) already exists")))
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn delete_experiment(&self, audit: &Audit, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(audit, experiment_id, LifecycleStage::Deleted).await
    }

    async fn restore_experiment(&self, audit: &Audit, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(audit, experiment_id, LifecycleStage::Active).await
    }

    async fn set_experiment_tag(&self, audit: &Audit, experiment_id: &str, tag: &Tag) -> Result<()> {
        validation::check_experiment_tag(tag)?;
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.begin().await?;
        require_active_experiment(&mut tx, id, experiment_id).await?;
        EXPERIMENT_TAGS.upsert(&mut tx, vec![Bind::from(id)], &tag.key, &tag.value).await?;
        append(&mut tx, audit, "experiment.set_tag", "experiment", experiment_id).await?;
        tx.commit().await
    }

    async fn delete_experiment_tag(&self, audit: &Audit, experiment_id: &str, key: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.begin().await?;
        require_active_experiment(&mut tx, id, experiment_id).await?;
        if EXPERIMENT_TAGS.delete(&mut tx, vec![Bind::from(id)], key).await? == 0 {
            return Err(Error::not_found(format!("No tag with name: {key} in experiment with id {experiment_id}")));
        }
        append(&mut tx, audit, "experiment.delete_tag", "experiment", experiment_id).await?;
        tx.commit().await
    }

    async fn create_run(&self, audit: &Audit, run: NewRun) -> Result<Run> {
        for (i, t) in run.tags.iter().enumerate() {
            validation::check_run_tag(&format!("tags[{i}]"), t)?;
        }
        let exp_id = parse_experiment_id(&run.experiment_id)?;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let tag_name = run.tags.iter().find(|t| t.key == RUN_NAME_TAG).map(|t| t.value.clone());
        if let (Some(given), Some(tagged)) = (&run.run_name, &tag_name) {
            if given != tagged {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{given}', mlflow.runName='{tagged}')."
                )));
            }
        }
        let run_name = run.run_name.filter(|n| !n.is_empty()).or(tag_name).unwrap_or_else(names::random_run_name);
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = $1")
            .bind(exp_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| experiment_not_found(&run.experiment_id))?;
        let stage: String = row.get(0);
        if stage != "active" {
            return Err(Error::invalid(format!(
                "The experiment {exp_id} must be in the 'active' state. Current state is {stage}."
            )));
        }
        let location: String = row.get(1);
        let artifact_uri = format!("{}/{run_id}/artifacts", location.trim_end_matches('/'));
        sqlx::query(
            "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')",
        )
        .bind(&run_id)
        .bind(&run_name)
        .bind(exp_id)
        .bind(&run.user_id)
        .bind(run.start_time)
        .bind(&artifact_uri)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut tags: Vec<Tag> = run.tags.into_iter().filter(|t| t.key != RUN_NAME_TAG).collect();
        tags.push(Tag { key: RUN_NAME_TAG.into(), value: run_name });
        upsert_run_tags(&mut tx, &run_id, &tags).await?;
        append(&mut tx, audit, "run.create", "run", &run_id).await?;
        tx.commit().await?;
        self.get_run(&run_id).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let (_, mut runs) = self.runs_page("SELECT run_uuid AS id FROM runs WHERE run_uuid = $1", None, vec![Bind::Text(run_id.to_owned())]).await?;
        runs.remove(run_id).ok_or_else(|| run_not_found(run_id))
    }

    async fn update_run(&self, audit: &Audit, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let mut tx = self.begin().await?;
        require_active_run(&mut tx, run_id).await?;
        if let Some(status) = update.status {
            sqlx::query("UPDATE runs SET status = $1 WHERE run_uuid = $2")
                .bind(status.as_str())
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if let Some(end) = update.end_time {
            sqlx::query("UPDATE runs SET end_time = $1 WHERE run_uuid = $2").bind(end).bind(run_id).execute(&mut *tx).await.map_err(db_error)?;
        }
        if let Some(name) = update.run_name.filter(|n| !n.is_empty()) {
            upsert_run_tags(&mut tx, run_id, &[Tag { key: RUN_NAME_TAG.into(), value: name }]).await?;
        }
        append(&mut tx, audit, "run.update", "run", run_id).await?;
        tx.commit().await?;
        Ok(self.get_run(run_id).await?.info)
    }

    async fn delete_run(&self, audit: &Audit, run_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        run_stage(&mut tx, run_id).await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 WHERE run_uuid = $2")
            .bind(now_ms())
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "run.delete", "run", run_id).await?;
        tx.commit().await
    }

    async fn restore_run(&self, audit: &Audit, run_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        run_stage(&mut tx, run_id).await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "run.restore", "run", run_id).await?;
        tx.commit().await
    }

    async fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>> {
        let page = search::runs_sql(query)?;
        let (mut ids, mut runs) = self.runs_page(&page.sql, Some(&page.order), page.binds).await?;
        let next = page_after(&mut ids, page.limit, page.offset);
        let items = ids.iter().filter_map(|id| runs.remove(id)).collect();
        Ok(Page { items, next_page_token: next })
    }

    async fn log_batch(&self, audit: &Audit, run_id: &str, batch: &Batch) -> Result<()> {
        validation::check_batch(batch)?;
        let mut tx = self.begin().await?;
        require_active_run(&mut tx, run_id).await?;

        if !batch.params.is_empty() {
            let ph = placeholders(2, batch.params.len());
            let mut binds = vec![Bind::Text(run_id.to_owned())];
            binds.extend(batch.params.iter().map(|p| Bind::Text(p.key.clone())));
            let existing = self.backend.query(format!("SELECT key, value FROM params WHERE run_uuid = $1 AND key IN ({ph})"), binds)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
            let existing: HashMap<String, String> = existing.iter().map(|r| (r.get(0), r.get(1))).collect();
            for p in &batch.params {
                if let Some(old) = existing.get(&p.key).filter(|old| **old != p.value) {
                    return Err(Error::invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                        p.key, p.value
                    )));
                }
            }
            let new: Vec<&Param> = batch.params.iter().filter(|p| !existing.contains_key(&p.key)).collect();
            if !new.is_empty() {
                let values = value_rows(new.len(), 3);
                let binds = new
                    .iter()
                    .flat_map(|p| [Bind::Text(run_id.to_owned()), Bind::Text(p.key.clone()), Bind::Text(p.value.clone())])
                    .collect();
                self.backend.query(format!("INSERT INTO params (run_uuid, key, value) VALUES {values}"), binds)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
        }

        if !batch.metrics.is_empty() {
            let values = value_rows(batch.metrics.len(), 6);
            let mut binds = Vec::with_capacity(batch.metrics.len() * 6);
            let mut latest: HashMap<&str, &Metric> = HashMap::new();
            for m in &batch.metrics {
                binds.extend(metric_binds(run_id, m));
                let slot = latest.entry(&m.key).or_insert(m);
                if m.is_later_than(slot) {
                    *slot = m;
                }
            }
            self.backend.query(format!(
                    "INSERT INTO metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES {values} ON CONFLICT DO NOTHING"
                ),
                binds,
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            // One multi-row upsert; a fixed key order keeps concurrent batches on one run from
            // deadlocking on PostgreSQL.
            let mut latest: Vec<&Metric> = latest.into_values().collect();
            latest.sort_by(|a, b| a.key.cmp(&b.key));
            let values = value_rows(latest.len(), 6);
            let mut binds = Vec::with_capacity(latest.len() * 6);
            for m in &latest {
                binds.extend(metric_binds(run_id, m));
            }
            // Replace the stored latest value only with a later one, as MLflow does: greater
            // (step, timestamp), then greater value, NaN lowest.
            self.backend.query(format!(
                    "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES {values} \
                     ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan \
                     WHERE excluded.step > latest_metrics.step \
                        OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                        OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp AND excluded.is_nan = 0 \
                            AND (latest_metrics.is_nan = 1 OR excluded.value > latest_metrics.value))"
                ),
                binds,
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }

        upsert_run_tags(&mut tx, run_id, &batch.tags).await?;
        append(&mut tx, audit, "run.log_batch", "run", run_id).await?;
        tx.commit().await
    }

    async fn delete_tag(&self, audit: &Audit, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        require_active_run(&mut tx, run_id).await?;
        if RUN_TAGS.delete(&mut tx, vec![Bind::from(run_id)], key).await? == 0 {
            return Err(Error::not_found(format!("No tag with name: {key} in run with id {run_id}")));
        }
        append(&mut tx, audit, "run.delete_tag", "run", run_id).await?;
        tx.commit().await
    }

    async fn log_inputs(&self, audit: &Audit, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        check_inputs(inputs)?;
        let mut tx = self.begin().await?;
        require_active_run(&mut tx, run_id).await?;
        let exp: i64 = sqlx::query("SELECT experiment_id FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?
            .get(0);
        for input in inputs {
            let d = &input.dataset;
            let existing = sqlx::query("SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3")
                .bind(exp)
                .bind(&d.name)
                .bind(&d.digest)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            let dataset_uuid: String = match existing {
                Some(r) => r.get(0),
                None => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    sqlx::query(
                        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, dataset_schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(exp)
                    .bind(&d.name)
                    .bind(&d.digest)
                    .bind(&d.source_type)
                    .bind(&d.source)
                    .bind(d.schema.clone())
                    .bind(d.profile.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    id
                }
            };
            sqlx::query("INSERT INTO run_inputs (run_uuid, dataset_uuid) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(&dataset_uuid)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            for t in &input.tags {
                INPUT_TAGS.upsert(&mut tx, vec![Bind::from(run_id), Bind::from(&dataset_uuid)], &t.key, &t.value).await?;
            }
        }
        append(&mut tx, audit, "run.log_inputs", "run", run_id).await?;
        tx.commit().await
    }

    async fn metric_history(&self, run_id: &str, key: &str, max_results: Option<i64>, page_token: &str) -> Result<Page<Metric>> {
        let offset = decode_page_token(page_token)?;
        self.get_run(run_id).await?;
        let limit = max_results.unwrap_or(validation::METRIC_HISTORY_MAX_RESULTS).clamp(1, validation::METRIC_HISTORY_MAX_RESULTS);
        let rows = sqlx::query(
            "SELECT value, timestamp, step, is_nan FROM metrics WHERE run_uuid = $1 AND key = $2 ORDER BY timestamp, step, value LIMIT $3 OFFSET $4",
        )
        .bind(run_id)
        .bind(key)
        .bind(limit + 1)
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        let mut items: Vec<Metric> = rows
            .iter()
            .map(|r| Metric { key: key.to_owned(), value: loaded_value(r.get(0), r.get(3)), timestamp: r.get(1), step: r.get(2) })
            .collect();
        let next = page_after(&mut items, limit, offset);
        Ok(Page { items, next_page_token: next })
    }

    async fn metric_history_interval(&self, query: &IntervalQuery) -> Result<Vec<RunMetric>> {
        let max = query.max_results.max(1);
        for run_id in &query.run_ids {
            self.get_run(run_id).await?;
        }
        let mut out = Vec::new();
        for run_id in &query.run_ids {
            let mut binds = vec![Bind::Text(run_id.clone()), Bind::Text(query.metric_key.clone())];
            let mut range = String::new();
            if let Some((start, end)) = query.steps {
                range = " AND step >= $3 AND step <= $4".into();
                binds.extend([Bind::I64(start), Bind::I64(end)]);
            }
            let max_ph = binds.len() + 1;
            binds.push(Bind::I64(max));
            // Evenly sampled rows (first row of each of `max` NTILE buckets) plus the last row,
            // as MLflow samples.
            let sql = format!(
                "SELECT value, timestamp, step, is_nan FROM ( \
                   SELECT value, timestamp, step, is_nan, ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY step, timestamp, value, is_nan) AS rn FROM ( \
                     SELECT value, timestamp, step, is_nan, NTILE(CAST(${max_ph} AS INTEGER)) OVER (ORDER BY step, timestamp, value, is_nan) AS bucket \
                     FROM metrics WHERE run_uuid = $1 AND key = $2{range}) b) r \
                 WHERE rn = 1 ORDER BY step, timestamp, value, is_nan"
            );
            let rows = self.backend.query(sql, binds.clone()).fetch_all(&self.read).await.map_err(db_error)?;
            let mut sampled: Vec<(i64, i64, f64, i64)> = rows.iter().map(|r| (r.get(2), r.get(1), r.get(0), r.get(3))).collect();
            binds.pop();
            let last_sql = format!(
                "SELECT value, timestamp, step, is_nan FROM metrics WHERE run_uuid = $1 AND key = $2{range} ORDER BY step DESC, timestamp DESC, value DESC, is_nan DESC LIMIT 1"
            );
            if let Some(r) = self.backend.query(last_sql, binds).fetch_optional(&self.read).await.map_err(db_error)? {
                let last = (r.get(2), r.get(1), r.get(0), r.get(3));
                if sampled.last() != Some(&last) {
                    if sampled.len() as i64 >= max {
                        sampled.pop();
                    }
                    sampled.push(last);
                }
            }
            out.extend(sampled.into_iter().map(|(step, timestamp, value, nan)| RunMetric {
                run_id: run_id.clone(),
                metric: Metric { key: query.metric_key.clone(), value: loaded_value(value, nan), timestamp, step },
            }));
        }
        Ok(out)
    }

    async fn record_mutation(&self, audit: &Audit, action: &str, entity_kind: &str, entity_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        append(&mut tx, audit, action, entity_kind, entity_id).await?;
        tx.commit().await
    }

    async fn ledger(&self, after: i64, limit: i64) -> Result<Vec<LedgerEntry>> {
        self.ledger_page(after, limit.clamp(1, 10_000)).await
    }

    async fn ledger_of_entity(&self, entity_id: &str, prefix: Option<&str>, after: i64, limit: i64) -> Result<Vec<LedgerEntry>> {
        // Compared in byte order (the order of the `audit_ledger_by_entity` index): a prefix is
        // the range [prefix, its successor), so `%`, `_` or any other character in it is literal.
        let id = self.backend.byte_order("entity_id");
        let mut binds = vec![Bind::I64(after), Bind::from(entity_id)];
        let mut matches = format!("{id} = $2");
        if let Some(p) = prefix {
            binds.push(Bind::from(p));
            match prefix_successor(p) {
                Some(end) => {
                    binds.push(Bind::Text(end));
                    matches = format!("({matches} OR ({id} >= $3 AND {id} < $4))");
                }
                None => matches = format!("({matches} OR {id} >= $3)"),
            }
        }
        binds.push(Bind::I64(limit.clamp(1, 10_000)));
        let sql = format!("SELECT {LEDGER_COLUMNS} FROM audit_ledger WHERE seq > $1 AND {matches} ORDER BY seq LIMIT ${}", binds.len());
        let rows = self.rows(sql, binds).await?;
        Ok(rows.iter().map(ledger_entry_from_row).collect())
    }

    async fn verify_ledger(&self, checkpoints: &[Checkpoint]) -> Result<std::result::Result<i64, Break>> {
        let Some((head_seq, head_hash)) = self.ledger_head().await? else {
            return Ok(Err(Break { seq: 0, reason: "the ledger's head record (table audit_head, row 1) is missing: it was deleted, so the ledger's end cannot be checked".into() }));
        };
        let mut verifier = audit::Verifier::default();
        let attested: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        let mut hashes = HashMap::new();
        let mut after = i64::MIN;
        loop {
            let page = self.ledger_page(after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = verifier.push(e) {
                    return Ok(Err(b));
                }
                if attested.contains(&e.seq) {
                    hashes.insert(e.seq, e.hash.clone());
                }
            }
        }
        let count = match verifier.finish(Some((head_seq, head_hash.as_str()))) {
            Ok(n) => n,
            Err(b) => return Ok(Err(b)),
        };
        Ok(steward_core::anchor::check(checkpoints, count, |seq| hashes.get(&seq).cloned()).map(|()| count))
    }

    async fn ledger_head(&self) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&self.read).await.map_err(db_error)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}

impl SqlStore {
    async fn ledger_page(&self, after: i64, limit: i64) -> Result<Vec<LedgerEntry>> {
        let rows = dyn_query(format!("SELECT {LEDGER_COLUMNS} FROM audit_ledger WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(ledger_entry_from_row).collect())
    }

    async fn set_experiment_stage(&self, audit: &Audit, experiment_id: &str, stage: LifecycleStage) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        if id == 0 && stage == LifecycleStage::Deleted {
            return Err(Error::invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment."));
        }
        let mut tx = self.begin().await?;
        let current = experiment_stage(&mut tx, id, experiment_id).await?;
        if stage == LifecycleStage::Active && current == "active" {
            return Err(Error::invalid(format!(
                "Cannot restore an active experiment. Experiment {experiment_id} is in lifecycle stage {current}"
            )));
        }
        let now = now_ms();
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // Runs follow their experiment, as in MLflow.
        let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
        sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(deleted_time)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let action = if stage == LifecycleStage::Deleted { "experiment.delete" } else { "experiment.restore" };
        append(&mut tx, audit, action, "experiment", experiment_id).await?;
        tx.commit().await
    }
}

async fn require_active_experiment(tx: &mut WriteTx, id: i64, shown: &str) -> Result<()> {
    let stage = experiment_stage(tx, id, shown).await?;
    if stage != "active" {
        return Err(Error::invalid(format!(
            "The experiment {shown} must be in the 'active' state. Current state is {stage}."
        )));
    }
    Ok(())
}

fn check_inputs(inputs: &[DatasetInput]) -> Result<()> {
    use validation::*;
    if inputs.len() > MAX_DATASETS_PER_BATCH {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {MAX_DATASETS_PER_BATCH} datasets. Got {} datasets.",
            inputs.len()
        )));
    }
    let long = |what: &str, limit: usize, v: &str| -> Result<()> {
        if v.chars().count() > limit {
            Err(Error::invalid(format!("'{what}' exceeds the maximum length of {limit} characters")))
        } else {
            Ok(())
        }
    };
    for (i, input) in inputs.iter().enumerate() {
        let d = &input.dataset;
        for (field, value) in [("name", &d.name), ("digest", &d.digest), ("source_type", &d.source_type), ("source", &d.source)] {
            if value.is_empty() {
                return Err(missing_value(&format!("datasets[{i}].dataset.{field}")));
            }
        }
        long("dataset.name", MAX_DATASET_NAME_SIZE, &d.name)?;
        long("dataset.digest", MAX_DATASET_DIGEST_SIZE, &d.digest)?;
        long("dataset.source", MAX_DATASET_SOURCE_SIZE, &d.source)?;
        long("dataset.schema", MAX_DATASET_SCHEMA_SIZE, d.schema.as_deref().unwrap_or(""))?;
        long("dataset.profile", MAX_DATASET_PROFILE_SIZE, d.profile.as_deref().unwrap_or(""))?;
        for t in &input.tags {
            long("input_tag.key", MAX_INPUT_TAG_KEY_SIZE, &t.key)?;
            long("input_tag.value", MAX_INPUT_TAG_VALUE_SIZE, &t.value)?;
        }
    }
    Ok(())
}

/// Appends one ledger entry inside the caller's transaction. The head row is updated first:
/// on PostgreSQL its row lock orders concurrent appenders; on SQLite writes are already
/// serialised by the single writer connection.
async fn append(tx: &mut WriteTx, audit: &Audit, action: &str, kind: &str, id: &str) -> Result<i64> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    let mut entry = LedgerEntry {
        seq: head.get(0),
        time: now_ms(),
        actor: audit.actor.clone(),
        action: action.to_owned(),
        entity_kind: kind.to_owned(),
        entity_id: id.to_owned(),
        reason: audit.reason.clone(),
        payload_digest: audit.payload_digest.clone(),
        prev_hash: head.get(1),
        hash: String::new(),
    };
    entry.hash = audit::entry_hash(&entry);
    sqlx::query(
        "INSERT INTO audit_ledger (seq, ts, actor, action, entity_kind, entity_id, reason, payload_digest, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(entry.seq)
    .bind(entry.time)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.entity_kind)
    .bind(&entry.entity_id)
    .bind(entry.reason.clone())
    .bind(&entry.payload_digest)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&entry.hash).execute(&mut **tx).await.map_err(db_error)?;
    Ok(entry.seq)
}

fn ledger_entry_from_row(r: &AnyRow) -> LedgerEntry {
    LedgerEntry {
        seq: r.get(0),
        time: r.get(1),
        actor: r.get(2),
        action: r.get(3),
        entity_kind: r.get(4),
        entity_id: r.get(5),
        reason: r.get(6),
        payload_digest: r.get(7),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

const LEDGER_COLUMNS: &str = "seq, ts, actor, action, entity_kind, entity_id, reason, payload_digest, prev_hash, hash";

impl Backend {
    /// A text column compared in byte (code point) order, whatever the database's collation:
    /// SQLite's default collation (BINARY) is; PostgreSQL's is the database's unless told "C".
    pub(crate) fn byte_order(self, column: &str) -> String {
        match self {
            Backend::Sqlite => column.to_owned(),
            Backend::Postgres => format!("{column} COLLATE \"C\""),
        }
    }
}

/// The least string greater than every string that starts with `prefix`, in byte order (the
/// prefix with its last character moved to the next one): `None` when there is none (an empty
/// prefix, or one made of the last code point only).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Trims a fetched `limit + 1` rows to `limit` and returns the next page's token if the
/// extra row was there.
fn page_after<T>(items: &mut Vec<T>, limit: i64, offset: u64) -> Option<String> {
    if items.len() as i64 > limit {
        items.truncate(limit as usize);
        Some(encode_page_token(offset + limit as u64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_anonymous_in_appearance_order() {
        let binds = vec![Bind::I64(1), Bind::Text("two".into()), Bind::F64(3.0)];
        let (sql, ordered) = anonymize("SELECT '$1' WHERE b = $2 AND a = $1 AND c = $3 AND d = $2", binds);
        assert_eq!(sql, "SELECT '$1' WHERE b = ? AND a = ? AND c = ? AND d = ?");
        let shown: Vec<String> = ordered.iter().map(|b| format!("{b:?}")).collect();
        assert_eq!(shown, vec!["Text(\"two\")", "I64(1)", "F64(3.0)", "Text(\"two\")"]);
    }

    #[test]
    fn value_rows_number_every_bind() {
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
