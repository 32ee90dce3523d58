//! The model registry on SQL: registered models, versions, tags, aliases with their history,
//! MLflow 3 logged models and run outputs. Same transactions and ledger as tracking.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::audit::Audit;
use steward_core::entities::Tag;
use steward_core::registry::{
    self, LoggedModel, ModelVersion, NewModelVersion, RegisteredModel, RegistryEvent, canonical_stage, check_alias, check_model_name,
};
use steward_core::search::{self, Comparator, Entity, Operand, parse_filter};
use steward_core::validation::check_name;
use steward_core::{Error, Result};

use super::search::limit_and_offset;
use super::{Bind, tags_by_owner, LOGGED_MODEL_PARAMS, LOGGED_MODEL_TAGS, MODEL_TAGS, SqlStore, VERSION_TAGS, append, db_error, is_unique_violation, now_ms, page_after, parse_experiment_id, placeholders, require_active_run};
use crate::{NewLoggedModel, Page, RegistryQuery, RegistryStore};

type Tx = super::WriteTx;

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!("Model Version (name={name}, version={version}) not found"))
}

fn logged_model_not_found(id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{id}' not found."))
}

fn check_registry_tag(t: &Tag) -> Result<()> {
    check_name("key", &t.key)?;
    if t.key.chars().count() > 250 {
        return Err(Error::invalid("'key' exceeds the maximum length of 250 characters"));
    }
    if t.value.chars().count() > 100_000 {
        return Err(Error::invalid("'value' exceeds the maximum length of 100000 characters"));
    }
    Ok(())
}

const MV_COLUMNS: &str = "name, version, creation_time, last_updated_time, description, user_id, created_by, current_stage, source, run_id, run_link, model_id, status, status_message, content_digest";

fn mv_from_row(r: &AnyRow) -> ModelVersion {
    ModelVersion {
        name: r.get(0),
        version: r.get(1),
        creation_timestamp: r.get(2),
        last_updated_timestamp: r.get(3),
        description: r.get(4),
        user_id: r.get(5),
        created_by: r.get(6),
        current_stage: r.get(7),
        source: r.get(8),
        run_id: r.get(9),
        run_link: r.get(10),
        model_id: r.get(11),
        status: r.get(12),
        status_message: r.get(13),
        tags: vec![],
        aliases: vec![],
        content_digest: r.get(14),
    }
}

async fn require_model(tx: &mut Tx, name: &str) -> Result<()> {
    let found = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1").bind(name).fetch_optional(&mut **tx).await.map_err(db_error)?;
    found.map(|_| ()).ok_or_else(|| model_not_found(name))
}

async fn require_version(tx: &mut Tx, name: &str, version: i64) -> Result<ModelVersion> {
    let row = super::dyn_query(format!("SELECT {MV_COLUMNS} FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0"))
        .bind(name)
        .bind(version)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    row.map(|r| mv_from_row(&r)).ok_or_else(|| version_not_found(name, version))
}

async fn touch_model(tx: &mut Tx, name: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2").bind(now).bind(name).execute(&mut **tx).await.map_err(db_error)?;
    Ok(())
}

async fn record(tx: &mut Tx, audit: &Audit, name: &str, kind: &str, label: &str, version: Option<i64>, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO registry_history (name, kind, label, version, ts, actor) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(name)
        .bind(kind)
        .bind(label)
        .bind(version)
        .bind(now)
        .bind(&audit.actor)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Points `alias` at a version inside the caller's transaction: the alias, its history row and
/// its ledger entry.
pub(super) async fn set_alias_in(tx: &mut Tx, audit: &Audit, name: &str, alias: &str, version: i64) -> Result<()> {
    check_alias(alias)?;
    require_model(tx, name).await?;
    require_version(tx, name, version).await?;
    sqlx::query("INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    record(tx, audit, name, "alias", alias, Some(version), now_ms()).await?;
    append(tx, audit, "registered_model.set_alias", "registered_model", &format!("{name}@{alias}")).await?;
    Ok(())
}

/// Adds `{"name", "version"}` to the logged model's `mlflow.modelVersions` tag, as MLflow does.
async fn link_logged_model(tx: &mut Tx, model_id: &str, name: &str, version: i64) -> Result<()> {
    let row = sqlx::query("SELECT value FROM logged_model_tags WHERE model_id = $1 AND key = 'mlflow.modelVersions'")
        .bind(model_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    let mut links: Vec<serde_json::Value> = row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()).unwrap_or_default();
    links.push(serde_json::json!({"name": name, "version": version}));
    LOGGED_MODEL_TAGS.upsert(tx, vec![Bind::from(model_id)], "mlflow.modelVersions", &serde_json::Value::Array(links).to_string()).await
}

fn status_name(s: &str) -> Result<&'static str> {
    const NAMES: [&str; 4] = ["LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"];
    if let Ok(n) = s.parse::<usize>() {
        if let Some(name) = NAMES.get(n) {
            return Ok(name);
        }
    }
    NAMES.into_iter().find(|n| *n == s).ok_or_else(|| {
        Error::invalid(format!("invalid logged model status '{s}': expected one of {}", NAMES.join(", ")))
    })
}

impl SqlStore {
    /// Fills tags and aliases into versions loaded without them.
    async fn decorate_versions(&self, mut versions: Vec<ModelVersion>, with_aliases: bool) -> Result<Vec<ModelVersion>> {
        if versions.is_empty() {
            return Ok(versions);
        }
        let names: Vec<String> = {
            let mut n: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
            n.sort();
            n.dedup();
            n
        };
        let ph = placeholders(1, names.len());
        let binds: Vec<Bind> = names.iter().map(|n| Bind::Text(n.clone())).collect();
        let tags = self
            .backend
            .query(format!("SELECT name, version, key, value FROM model_version_tags WHERE name IN ({ph}) ORDER BY key"), binds.clone())
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        let mut by: HashMap<(String, i64), Vec<Tag>> = HashMap::new();
        for r in tags {
            by.entry((r.get(0), r.get(1))).or_default().push(Tag { key: r.get(2), value: r.get(3) });
        }
        let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
        if with_aliases {
            let rows = self
                .backend
                .query(format!("SELECT name, version, alias FROM registered_model_aliases WHERE name IN ({ph}) ORDER BY alias"), binds)
                .fetch_all(&self.read)
                .await
                .map_err(db_error)?;
            for r in rows {
                aliases.entry((r.get(0), r.get(1))).or_default().push(r.get(2));
            }
        }
        for v in &mut versions {
            let key = (v.name.clone(), v.version);
            v.tags = by.remove(&key).unwrap_or_default();
            v.aliases = aliases.remove(&key).unwrap_or_default();
        }
        Ok(versions)
    }

    async fn load_models(&self, names: &[String]) -> Result<Vec<RegisteredModel>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let ph = placeholders(1, names.len());
        let binds: Vec<Bind> = names.iter().map(|n| Bind::Text(n.clone())).collect();
        let fetch = |sql: String| self.rows(sql, binds.clone());
        let rows = fetch(format!("SELECT name, creation_time, last_updated_time, description, id FROM registered_models WHERE name IN ({ph})")).await?;
        let tags = fetch(format!("SELECT name, key, value FROM registered_model_tags WHERE name IN ({ph}) ORDER BY key")).await?;
        let aliases = fetch(format!("SELECT name, alias, version FROM registered_model_aliases WHERE name IN ({ph}) ORDER BY alias")).await?;
        // The newest live version per stage.
        let latest = fetch(format!(
            "SELECT {MV_COLUMNS} FROM model_versions m WHERE m.name IN ({ph}) AND m.deleted = 0 AND m.version = \
             (SELECT MAX(v.version) FROM model_versions v WHERE v.name = m.name AND v.current_stage = m.current_stage AND v.deleted = 0) \
             ORDER BY m.name, m.version"
        ))
        .await?;
        let latest = self.decorate_versions(latest.iter().map(mv_from_row).collect(), false).await?;
        let mut models: HashMap<String, RegisteredModel> = HashMap::new();
        for r in rows {
            let name: String = r.get(0);
            models.insert(
                name.clone(),
                RegisteredModel {
                    id: r.get(4),
                    name,
                    creation_timestamp: r.get(1),
                    last_updated_timestamp: r.get(2),
                    description: r.get(3),
                    latest_versions: vec![],
                    tags: vec![],
                    aliases: vec![],
                },
            );
        }
        for (name, list) in tags_by_owner::<String>(tags) {
            if let Some(m) = models.get_mut(&name) {
                m.tags = list;
            }
        }
        for r in aliases {
            if let Some(m) = models.get_mut(&r.get::<String, _>(0)) {
                m.aliases.push((r.get(1), r.get(2)));
            }
        }
        for v in latest {
            if let Some(m) = models.get_mut(&v.name) {
                m.latest_versions.push(v);
            }
        }
        Ok(names.iter().filter_map(|n| models.remove(n)).collect())
    }

    async fn load_logged_models(&self, ids: &[String]) -> Result<Vec<LoggedModel>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ph = placeholders(1, ids.len());
        let binds: Vec<Bind> = ids.iter().map(|n| Bind::Text(n.clone())).collect();
        let fetch = |sql: String| self.rows(sql, binds.clone());
        let rows = fetch(format!(
            "SELECT model_id, experiment_id, name, artifact_location, creation_time, last_updated_time, model_type, source_run_id, status, status_message FROM logged_models WHERE model_id IN ({ph})"
        ))
        .await?;
        let tags = fetch(format!("SELECT model_id, key, value FROM logged_model_tags WHERE model_id IN ({ph}) ORDER BY key")).await?;
        let params = fetch(format!("SELECT model_id, key, value FROM logged_model_params WHERE model_id IN ({ph}) ORDER BY key")).await?;
        let mut out: HashMap<String, LoggedModel> = HashMap::new();
        for r in rows {
            let id: String = r.get(0);
            let exp: i64 = r.get(1);
            out.insert(
                id.clone(),
                LoggedModel {
                    model_id: id,
                    experiment_id: exp.to_string(),
                    name: r.get(2),
                    artifact_location: r.get(3),
                    creation_timestamp: r.get(4),
                    last_updated_timestamp: r.get(5),
                    model_type: r.get(6),
                    source_run_id: r.get(7),
                    status: r.get(8),
                    status_message: r.get(9),
                    tags: vec![],
                    params: vec![],
                },
            );
        }
        for (id, list) in tags_by_owner::<String>(tags) {
            if let Some(m) = out.get_mut(&id) {
                m.tags = list;
            }
        }
        for (id, list) in tags_by_owner::<String>(params) {
            if let Some(m) = out.get_mut(&id) {
                m.params = list;
            }
        }
        Ok(ids.iter().filter_map(|i| out.remove(i)).collect())
    }

    async fn live_logged_model(&self, tx: &mut Tx, model_id: &str) -> Result<()> {
        let row = sqlx::query("SELECT 1 FROM logged_models WHERE model_id = $1").bind(model_id).fetch_optional(&mut **tx).await.map_err(db_error)?;
        row.map(|_| ()).ok_or_else(|| logged_model_not_found(model_id))
    }
}

/// SQL for a registry search: which rows, in which order, one page (+1).
struct Search {
    binds: Vec<Bind>,
    wheres: Vec<String>,
}

impl Search {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn compare(&mut self, column: &str, op: Comparator, value: &Operand, numeric: bool) -> Result<String> {
        Ok(match (value, op) {
            (Operand::List(items), Comparator::In | Comparator::NotIn) => {
                let ph: Vec<String> = items.iter().map(|i| self.bind(Bind::Text(i.clone()))).collect();
                format!("{column} {} ({})", op.as_str(), ph.join(", "))
            }
            (Operand::Number(n), op) if numeric => {
                let p = self.bind(Bind::I64(*n as i64));
                format!("{column} {} {p}", op.as_str())
            }
            (Operand::Text(t), op) if numeric => {
                let n: i64 = t.parse().map_err(|_| Error::invalid(format!("Invalid value for numeric attribute: '{t}'")))?;
                let p = self.bind(Bind::I64(n));
                format!("{column} {} {p}", op.as_str())
            }
            (Operand::Text(t), Comparator::ILike) => {
                let p = self.bind(Bind::Text(t.clone()));
                format!("LOWER({column}) LIKE LOWER({p})")
            }
            (Operand::Text(t), op) => {
                let p = self.bind(Bind::Text(t.clone()));
                format!("{column} {} {p}", op.as_str())
            }
            (other, op) => return Err(Error::invalid(format!("cannot compare {column} with {} {other:?}", op.as_str()))),
        })
    }
    /// `EXISTS` over a key/value table linked by `link`.
    fn kv(&mut self, table: &str, link: &str, key: &str, op: Comparator, value: &Operand) -> Result<String> {
        let k = self.bind(Bind::Text(key.to_owned()));
        let base = format!("SELECT 1 FROM {table} kv WHERE {link} AND kv.key = {k}");
        Ok(match op {
            Comparator::IsNull => format!("NOT EXISTS ({base})"),
            Comparator::IsNotNull => format!("EXISTS ({base})"),
            _ => {
                let cmp = self.compare("kv.value", op, value, false)?;
                format!("EXISTS ({base} AND {cmp})")
            }
        })
    }
}

/// The prompt tag the Python client adds to every registered-model search; Steward has no
/// prompts, so the clause is dropped as MLflow's server drops it.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

fn order_clause(spec: &str, allowed: &[(&str, &str)]) -> Result<String> {
    let mut parts = spec.split_whitespace();
    let key = parts.next().unwrap_or("").trim_start_matches("attribute.");
    let dir = match parts.next().map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => "ASC",
        Some("DESC") => "DESC",
        Some(_) => return Err(Error::invalid(format!("Invalid ordering key in order_by clause '{spec}'."))),
    };
    if parts.next().is_some() {
        return Err(Error::invalid(format!("Invalid order_by clause '{spec}'. Could not be parsed.")));
    }
    let column = allowed.iter().find(|(k, _)| *k == key).map(|(_, c)| *c).ok_or_else(|| {
        let keys: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
        Error::invalid(format!("Invalid order by key '{key}' specified. Valid keys are '{keys:?}'"))
    })?;
    Ok(format!("{column} {dir}"))
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(&self, audit: &Audit, name: &str, description: Option<&str>, tags: &[Tag]) -> Result<RegisteredModel> {
        check_model_name(name)?;
        for t in tags {
            check_registry_tag(t)?;
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let res = sqlx::query("INSERT INTO registered_models (name, creation_time, last_updated_time, description, created_by, id) VALUES ($1, $2, $2, $3, $4, $5)")
            .bind(name)
            .bind(now)
            .bind(description.filter(|d| !d.is_empty()).map(str::to_owned))
            .bind(&audit.actor)
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::already_exists(format!("Registered Model (name={name}) already exists."))),
            Err(e) => return Err(db_error(e)),
        }
        for t in tags {
            MODEL_TAGS.upsert(&mut tx, vec![Bind::from(name)], &t.key, &t.value).await?;
        }
        append(&mut tx, audit, "registered_model.create", "registered_model", name).await?;
        tx.commit().await?;
        self.get_registered_model(name).await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.load_models(&[name.to_owned()]).await?.pop().ok_or_else(|| model_not_found(name))
    }

    async fn versions_in_stage(&self, name: &str, stage: &str) -> Result<Vec<ModelVersion>> {
        let rows = super::dyn_query(format!("SELECT {MV_COLUMNS} FROM model_versions WHERE name = $1 AND current_stage = $2 AND deleted = 0 ORDER BY version"))
            .bind(name)
            .bind(stage)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        self.decorate_versions(rows.iter().map(mv_from_row).collect(), true).await
    }

    async fn get_registered_model_by_id(&self, id: &str) -> Result<RegisteredModel> {
        let row = sqlx::query("SELECT name FROM registered_models WHERE id = $1").bind(id).fetch_optional(&self.read).await.map_err(db_error)?;
        let name: String = row.ok_or_else(|| Error::not_found(format!("no registered model has id '{id}': it was deleted")))?.get(0);
        self.get_registered_model(&name).await
    }

    async fn record_content_digest(&self, audit: &Audit, name: &str, version: i64, digest: &str) -> Result<String> {
        let mut tx = self.begin().await?;
        let mv = require_version(&mut tx, name, version).await?;
        if let Some(known) = mv.content_digest {
            return Ok(known);
        }
        sqlx::query("UPDATE model_versions SET content_digest = $1 WHERE name = $2 AND version = $3").bind(digest).bind(name).bind(version).execute(&mut *tx).await.map_err(db_error)?;
        append(&mut tx, audit, "model_version.content_digest", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await?;
        Ok(digest.to_owned())
    }

    async fn update_registered_model(&self, audit: &Audit, name: &str, description: Option<&str>) -> Result<RegisteredModel> {
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        sqlx::query("UPDATE registered_models SET description = $1, last_updated_time = $2 WHERE name = $3")
            .bind(description.filter(|d| !d.is_empty()).map(str::to_owned))
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "registered_model.update", "registered_model", name).await?;
        tx.commit().await?;
        self.get_registered_model(name).await
    }

    async fn rename_registered_model(&self, audit: &Audit, name: &str, new_name: &str) -> Result<RegisteredModel> {
        check_model_name(new_name)?;
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        if name != new_name {
            let taken = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1").bind(new_name).fetch_optional(&mut *tx).await.map_err(db_error)?;
            if taken.is_some() {
                return Err(Error::already_exists(format!("Registered Model (name={new_name}) already exists.")));
            }
            for table in ["registered_models", "registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases", "registry_history"] {
                super::dyn_query(format!("UPDATE {table} SET name = $1 WHERE name = $2"))
                    .bind(new_name)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            let now = now_ms();
            touch_model(&mut tx, new_name, now).await?;
            sqlx::query("UPDATE model_versions SET last_updated_time = $1 WHERE name = $2").bind(now).bind(new_name).execute(&mut *tx).await.map_err(db_error)?;
            // Deployments follow the model, not the name: their references move with it.
            super::serving::rename_in_deployments(&mut tx, name, new_name).await?;
        }
        append(&mut tx, audit, "registered_model.rename", "registered_model", new_name).await?;
        tx.commit().await?;
        self.get_registered_model(new_name).await
    }

    async fn delete_registered_model(&self, audit: &Audit, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        let now = now_ms();
        // The history of where its aliases pointed stays: an alias removal is recorded for each.
        let aliases = sqlx::query("SELECT alias FROM registered_model_aliases WHERE name = $1").bind(name).fetch_all(&mut *tx).await.map_err(db_error)?;
        for a in aliases {
            record(&mut tx, audit, name, "alias", &a.get::<String, _>(0), None, now).await?;
        }
        for table in ["registered_model_aliases", "model_version_tags", "model_versions", "registered_model_tags", "registered_models"] {
            super::dyn_query(format!("DELETE FROM {table} WHERE name = $1")).bind(name).execute(&mut *tx).await.map_err(db_error)?;
        }
        append(&mut tx, audit, "registered_model.delete", "registered_model", name).await?;
        tx.commit().await
    }

    async fn search_registered_models(&self, q: &RegistryQuery) -> Result<Page<RegisteredModel>> {
        let (limit, offset) = limit_and_offset(q.max_results, 100, 1000, &q.page_token)?;
        let filter = parse_filter(&q.filter, &search::REGISTERED_MODELS)?;
        let mut s = Search { binds: vec![], wheres: vec!["1 = 1".into()] };
        for c in filter.clauses.iter().filter(|c| !(c.entity == Entity::Tag && c.key == PROMPT_TAG)) {
            let w = match c.entity {
                Entity::Tag => s.kv("registered_model_tags", "kv.name = m.name", &c.key, c.op, &c.value)?,
                _ => s.compare("m.name", c.op, &c.value, false)?,
            };
            s.wheres.push(w);
        }
        let allowed = [("name", "m.name"), ("timestamp", "m.last_updated_time"), ("last_updated_timestamp", "m.last_updated_time")];
        let mut orders = q.order_by.iter().map(|o| order_clause(o, &allowed)).collect::<Result<Vec<_>>>()?;
        orders.push("m.name ASC".into());
        let l = s.bind(Bind::I64(limit + 1));
        let o = s.bind(Bind::I64(offset as i64));
        let sql = format!("SELECT m.name FROM registered_models m WHERE {} ORDER BY {} LIMIT {l} OFFSET {o}", s.wheres.join(" AND "), orders.join(", "));
        let rows = self.backend.query(sql, s.binds).fetch_all(&self.read).await.map_err(db_error)?;
        let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let next = page_after(&mut names, limit, offset);
        Ok(Page { items: self.load_models(&names).await?, next_page_token: next })
    }

    async fn set_registered_model_tag(&self, audit: &Audit, name: &str, tag: &Tag) -> Result<()> {
        check_registry_tag(tag)?;
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        MODEL_TAGS.upsert(&mut tx, vec![Bind::from(name)], &tag.key, &tag.value).await?;
        append(&mut tx, audit, "registered_model.set_tag", "registered_model", name).await?;
        tx.commit().await
    }

    async fn delete_registered_model_tag(&self, audit: &Audit, name: &str, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        MODEL_TAGS.delete(&mut tx, vec![Bind::from(name)], key).await?;
        append(&mut tx, audit, "registered_model.delete_tag", "registered_model", name).await?;
        tx.commit().await
    }

    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(name).await?;
        let wanted: Vec<&str> = if stages.is_empty() { registry::STAGES.to_vec() } else { stages.iter().map(|s| canonical_stage(s)).collect::<Result<_>>()? };
        let picked: Vec<ModelVersion> = model.latest_versions.into_iter().filter(|v| wanted.contains(&v.current_stage.as_str())).collect();
        self.decorate_versions(picked, true).await
    }

    async fn create_model_version(&self, audit: &Audit, mv: &NewModelVersion, storage_location: Option<&str>) -> Result<ModelVersion> {
        check_model_name(&mv.name)?;
        if mv.source.is_empty() {
            return Err(steward_core::validation::missing_value("source"));
        }
        for t in &mv.tags {
            check_registry_tag(t)?;
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        require_model(&mut tx, &mv.name).await?;
        // Numbers are never reused: deleted versions keep their row.
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = $1")
            .bind(&mv.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?
            .get(0);
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, created_by, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message, deleted, content_digest) \
             VALUES ($1, $2, $3, $3, $4, NULL, $5, 'None', $6, $7, $8, $9, $10, 'READY', NULL, 0, $11)",
        )
        .bind(&mv.name)
        .bind(next)
        .bind(now)
        .bind(mv.description.clone().unwrap_or_default())
        .bind(&audit.actor)
        .bind(&mv.source)
        .bind(storage_location.map(str::to_owned))
        .bind(mv.run_id.clone().unwrap_or_default())
        .bind(mv.run_link.clone().unwrap_or_default())
        .bind(mv.model_id.clone())
        .bind(mv.content_digest.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for t in &mv.tags {
            VERSION_TAGS.upsert(&mut tx, vec![Bind::from(&mv.name), Bind::from(next)], &t.key, &t.value).await?;
        }
        if let Some(model_id) = &mv.model_id {
            link_logged_model(&mut tx, model_id, &mv.name, next).await?;
        }
        touch_model(&mut tx, &mv.name, now).await?;
        record(&mut tx, audit, &mv.name, "stage", "None", Some(next), now).await?;
        append(&mut tx, audit, "model_version.create", "model_version", &format!("{}/{next}", mv.name)).await?;
        tx.commit().await?;
        self.get_model_version(&mv.name, next).await
    }

    async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let row = super::dyn_query(format!("SELECT {MV_COLUMNS} FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0"))
            .bind(name)
            .bind(version)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or_else(|| version_not_found(name, version))?;
        Ok(self.decorate_versions(vec![mv_from_row(&row)], true).await?.remove(0))
    }

    async fn update_model_version(&self, audit: &Audit, name: &str, version: i64, description: Option<&str>) -> Result<ModelVersion> {
        let mut tx = self.begin().await?;
        require_version(&mut tx, name, version).await?;
        sqlx::query("UPDATE model_versions SET description = $1, last_updated_time = $2 WHERE name = $3 AND version = $4")
            .bind(description.map(str::to_owned))
            .bind(now_ms())
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "model_version.update", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await?;
        self.get_model_version(name, version).await
    }

    async fn transition_stage(&self, audit: &Audit, name: &str, version: i64, stage: &str, archive_existing: bool) -> Result<ModelVersion> {
        let stage = canonical_stage(stage)?;
        if archive_existing && !matches!(stage, "Staging" | "Production") {
            return Err(Error::invalid(format!(
                "Model version transition cannot archive existing model versions because '{stage}' is not an Active stage. Valid stages are ['Staging', 'Production']"
            )));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        require_version(&mut tx, name, version).await?;
        if archive_existing {
            let others = sqlx::query("SELECT version FROM model_versions WHERE name = $1 AND current_stage = $2 AND version != $3 AND deleted = 0")
                .bind(name)
                .bind(stage)
                .bind(version)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
            for r in others {
                let v: i64 = r.get(0);
                sqlx::query("UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1 WHERE name = $2 AND version = $3")
                    .bind(now)
                    .bind(name)
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                record(&mut tx, audit, name, "stage", "Archived", Some(v), now).await?;
            }
        }
        sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_time = $2 WHERE name = $3 AND version = $4")
            .bind(stage)
            .bind(now)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        touch_model(&mut tx, name, now).await?;
        record(&mut tx, audit, name, "stage", stage, Some(version), now).await?;
        append(&mut tx, audit, "model_version.transition_stage", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await?;
        self.get_model_version(name, version).await
    }

    async fn delete_model_version(&self, audit: &Audit, name: &str, version: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        require_version(&mut tx, name, version).await?;
        let aliases = sqlx::query("SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        for a in aliases {
            record(&mut tx, audit, name, "alias", &a.get::<String, _>(0), None, now).await?;
        }
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND version = $2").bind(name).bind(version).execute(&mut *tx).await.map_err(db_error)?;
        sqlx::query("UPDATE model_versions SET deleted = 1, current_stage = 'Deleted_Internal', last_updated_time = $1 WHERE name = $2 AND version = $3")
            .bind(now)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        touch_model(&mut tx, name, now).await?;
        append(&mut tx, audit, "model_version.delete", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await
    }

    async fn download_uri(&self, name: &str, version: i64) -> Result<String> {
        let row = sqlx::query("SELECT COALESCE(storage_location, source) FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0")
            .bind(name)
            .bind(version)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or_else(|| version_not_found(name, version))?;
        Ok(row.get(0))
    }

    async fn search_model_versions(&self, q: &RegistryQuery) -> Result<Page<ModelVersion>> {
        let (limit, offset) = limit_and_offset(q.max_results, 200_000, 200_000, &q.page_token)?;
        let filter = parse_filter(&q.filter, &search::MODEL_VERSIONS)?;
        let mut s = Search { binds: vec![], wheres: vec!["v.deleted = 0".into()] };
        for c in filter.clauses.iter().filter(|c| !(c.entity == Entity::Tag && c.key == PROMPT_TAG)) {
            let w = match (c.entity, c.key.as_str()) {
                (Entity::Tag, _) => s.kv("model_version_tags", "kv.name = v.name AND kv.version = v.version", &c.key, c.op, &c.value)?,
                (_, "version_number") => s.compare("v.version", c.op, &c.value, true)?,
                (_, "run_id") => s.compare("v.run_id", c.op, &c.value, false)?,
                (_, "source_path") => s.compare("v.source", c.op, &c.value, false)?,
                _ => s.compare("v.name", c.op, &c.value, false)?,
            };
            s.wheres.push(w);
        }
        let allowed = [
            ("name", "v.name"),
            ("version_number", "v.version"),
            ("creation_timestamp", "v.creation_time"),
            ("last_updated_timestamp", "v.last_updated_time"),
            ("timestamp", "v.last_updated_time"),
        ];
        let mut orders = q.order_by.iter().map(|o| order_clause(o, &allowed)).collect::<Result<Vec<_>>>()?;
        if orders.is_empty() {
            orders.push("v.last_updated_time DESC".into());
        }
        orders.push("v.name ASC".into());
        orders.push("v.version DESC".into());
        let l = s.bind(Bind::I64(limit + 1));
        let o = s.bind(Bind::I64(offset as i64));
        let sql = format!(
            "SELECT {} FROM model_versions v WHERE {} ORDER BY {} LIMIT {l} OFFSET {o}",
            MV_COLUMNS.split(", ").map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", "),
            s.wheres.join(" AND "),
            orders.join(", ")
        );
        let rows = self.backend.query(sql, s.binds).fetch_all(&self.read).await.map_err(db_error)?;
        let mut versions: Vec<ModelVersion> = rows.iter().map(mv_from_row).collect();
        let next = page_after(&mut versions, limit, offset);
        Ok(Page { items: self.decorate_versions(versions, false).await?, next_page_token: next })
    }

    async fn set_model_version_tag(&self, audit: &Audit, name: &str, version: i64, tag: &Tag) -> Result<()> {
        check_registry_tag(tag)?;
        let mut tx = self.begin().await?;
        require_version(&mut tx, name, version).await?;
        VERSION_TAGS.upsert(&mut tx, vec![Bind::from(name), Bind::from(version)], &tag.key, &tag.value).await?;
        append(&mut tx, audit, "model_version.set_tag", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await
    }

    async fn delete_model_version_tag(&self, audit: &Audit, name: &str, version: i64, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        require_version(&mut tx, name, version).await?;
        VERSION_TAGS.delete(&mut tx, vec![Bind::from(name), Bind::from(version)], key).await?;
        append(&mut tx, audit, "model_version.delete_tag", "model_version", &format!("{name}/{version}")).await?;
        tx.commit().await
    }

    async fn set_alias(&self, audit: &Audit, name: &str, alias: &str, version: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        set_alias_in(&mut tx, audit, name, alias, version).await?;
        tx.commit().await
    }

    async fn delete_alias(&self, audit: &Audit, name: &str, alias: &str) -> Result<()> {
        check_alias(alias)?;
        let mut tx = self.begin().await?;
        require_model(&mut tx, name).await?;
        let removed = sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if removed > 0 {
            record(&mut tx, audit, name, "alias", alias, None, now_ms()).await?;
        }
        append(&mut tx, audit, "registered_model.delete_alias", "registered_model", &format!("{name}@{alias}")).await?;
        tx.commit().await
    }

    async fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.get_registered_model(name).await?;
        if alias.eq_ignore_ascii_case("latest") {
            let row = sqlx::query("SELECT MAX(version) FROM model_versions WHERE name = $1 AND deleted = 0")
                .bind(name)
                .fetch_one(&self.read)
                .await
                .map_err(db_error)?;
            let v: Option<i64> = row.get(0);
            let v = v.ok_or_else(|| Error::not_found(format!("Latest version not found for model {name}.")))?;
            return self.get_model_version(name, v).await;
        }
        let row = sqlx::query("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::invalid(format!("Registered model alias {alias} not found.")))?;
        self.get_model_version(name, row.get(0)).await
    }

    async fn registry_history(&self, name: &str) -> Result<Vec<RegistryEvent>> {
        let rows = sqlx::query("SELECT name, kind, label, version, ts, actor FROM registry_history WHERE name = $1 ORDER BY ts, id")
            .bind(name)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| RegistryEvent { model: r.get(0), kind: r.get(1), label: r.get(2), version: r.get(3), time: r.get(4), actor: r.get(5) })
            .collect())
    }

    async fn alias_at(&self, name: &str, alias: &str, time: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT version FROM registry_history WHERE name = $1 AND kind = 'alias' AND label = $2 AND ts <= $3 ORDER BY ts DESC, id DESC LIMIT 1")
            .bind(name)
            .bind(alias)
            .bind(time)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?;
        Ok(row.and_then(|r| r.get::<Option<i64>, _>(0)))
    }

    async fn create_logged_model(&self, audit: &Audit, m: &NewLoggedModel) -> Result<LoggedModel> {
        let exp = parse_experiment_id(&m.experiment_id)?;
        if let Some(name) = &m.name {
            if name.is_empty() || name.contains(['/', ':', '.', '%', '"', '\'']) {
                return Err(Error::invalid(format!(
                    "Invalid model name ('{name}') provided. Model name must be a non-empty string and cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")"
                )));
            }
        }
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let now = now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = $1")
            .bind(exp)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::not_found(format!("No Experiment with id={exp} exists")))?;
        let stage: String = row.get(0);
        if stage != "active" {
            return Err(Error::invalid(format!("The experiment {exp} must be in the 'active' state. Current state is {stage}.")));
        }
        let location: String = row.get(1);
        let artifact_location = format!("{}/models/{model_id}/artifacts", location.trim_end_matches('/'));
        let name = m.name.clone().unwrap_or_else(super::names::random_run_name);
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_time, last_updated_time, model_type, source_run_id, status, status_message, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 'LOGGED_MODEL_PENDING', NULL, 'active')",
        )
        .bind(&model_id)
        .bind(exp)
        .bind(&name)
        .bind(&artifact_location)
        .bind(now)
        .bind(m.model_type.clone().unwrap_or_default())
        .bind(m.source_run_id.clone().unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for (table, items) in [(&LOGGED_MODEL_TAGS, &m.tags), (&LOGGED_MODEL_PARAMS, &m.params)] {
            for t in items.iter() {
                table.upsert(&mut tx, vec![Bind::from(&model_id)], &t.key, &t.value).await?;
            }
        }
        append(&mut tx, audit, "logged_model.create", "logged_model", &model_id).await?;
        tx.commit().await?;
        self.get_logged_model(&model_id, false).await
    }

    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        let row = sqlx::query("SELECT lifecycle_stage FROM logged_models WHERE model_id = $1")
            .bind(model_id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or_else(|| logged_model_not_found(model_id))?;
        let stage: String = row.get(0);
        if stage != "active" && !allow_deleted {
            return Err(logged_model_not_found(model_id));
        }
        self.load_logged_models(&[model_id.to_owned()]).await?.pop().ok_or_else(|| logged_model_not_found(model_id))
    }

    async fn finalize_logged_model(&self, audit: &Audit, model_id: &str, status: &str) -> Result<LoggedModel> {
        let status = status_name(status)?;
        let mut tx = self.begin().await?;
        self.live_logged_model(&mut tx, model_id).await?;
        sqlx::query("UPDATE logged_models SET status = $1, last_updated_time = $2 WHERE model_id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "logged_model.finalize", "logged_model", model_id).await?;
        tx.commit().await?;
        self.get_logged_model(model_id, true).await
    }

    async fn set_logged_model_tags(&self, audit: &Audit, model_id: &str, tags: &[Tag]) -> Result<()> {
        let mut tx = self.begin().await?;
        self.live_logged_model(&mut tx, model_id).await?;
        for t in tags {
            LOGGED_MODEL_TAGS.upsert(&mut tx, vec![Bind::from(model_id)], &t.key, &t.value).await?;
        }
        append(&mut tx, audit, "logged_model.set_tags", "logged_model", model_id).await?;
        tx.commit().await
    }

    async fn delete_logged_model_tag(&self, audit: &Audit, model_id: &str, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        self.live_logged_model(&mut tx, model_id).await?;
        if LOGGED_MODEL_TAGS.delete(&mut tx, vec![Bind::from(model_id)], key).await? == 0 {
            return Err(Error::not_found(format!("No tag with key '{key}' found for model with ID '{model_id}'.")));
        }
        append(&mut tx, audit, "logged_model.delete_tag", "logged_model", model_id).await?;
        tx.commit().await
    }

    async fn log_logged_model_params(&self, audit: &Audit, model_id: &str, params: &[Tag]) -> Result<()> {
        let mut tx = self.begin().await?;
        self.live_logged_model(&mut tx, model_id).await?;
        for p in params {
            let existing = sqlx::query("SELECT value FROM logged_model_params WHERE model_id = $1 AND key = $2")
                .bind(model_id)
                .bind(&p.key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            match existing.map(|r| r.get::<String, _>(0)) {
                Some(old) if old != p.value => {
                    return Err(Error::invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for model ID='{model_id}'. Attempted logging new value '{}'.",
                        p.key, p.value
                    )));
                }
                Some(_) => {}
                None => {
                    sqlx::query("INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3)")
                        .bind(model_id)
                        .bind(&p.key)
                        .bind(&p.value)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
            }
        }
        append(&mut tx, audit, "logged_model.log_params", "logged_model", model_id).await?;
        tx.commit().await
    }

    async fn delete_logged_model(&self, audit: &Audit, model_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        self.live_logged_model(&mut tx, model_id).await?;
        sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_time = $1 WHERE model_id = $2")
            .bind(now_ms())
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "logged_model.delete", "logged_model", model_id).await?;
        tx.commit().await
    }

    async fn search_logged_models(&self, experiment_ids: &[String], filter: &str, max_results: Option<i64>, page_token: &str) -> Result<Page<LoggedModel>> {
        // MLflow sets no upper bound here.
        let (limit, offset) = limit_and_offset(max_results, 50, i64::MAX - 1, page_token)?;
        let exps: Vec<i64> = experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<_>>()?;
        if exps.is_empty() {
            return Ok(Page { items: vec![], next_page_token: None });
        }
        let parsed = parse_filter(filter, &search::LOGGED_MODELS)?;
        let mut s = Search { binds: vec![], wheres: vec!["l.lifecycle_stage = 'active'".into()] };
        let ph: Vec<String> = exps.iter().map(|e| s.bind(Bind::I64(*e))).collect();
        s.wheres.push(format!("l.experiment_id IN ({})", ph.join(", ")));
        for c in &parsed.clauses {
            let w = match (c.entity, c.key.as_str()) {
                (Entity::Tag, _) => s.kv("logged_model_tags", "kv.model_id = l.model_id", &c.key, c.op, &c.value)?,
                (Entity::Param, _) => s.kv("logged_model_params", "kv.model_id = l.model_id", &c.key, c.op, &c.value)?,
                (_, "creation_timestamp") => s.compare("l.creation_time", c.op, &c.value, true)?,
                (_, "last_updated_timestamp") => s.compare("l.last_updated_time", c.op, &c.value, true)?,
                (_, key @ ("name" | "model_id" | "source_run_id" | "model_type" | "status")) => s.compare(&format!("l.{key}"), c.op, &c.value, false)?,
                (_, key) => return Err(Error::invalid(format!("Invalid attribute key '{key}' for logged models"))),
            };
            s.wheres.push(w);
        }
        let l = s.bind(Bind::I64(limit + 1));
        let o = s.bind(Bind::I64(offset as i64));
        let sql = format!(
            "SELECT l.model_id FROM logged_models l WHERE {} ORDER BY l.creation_time DESC, l.model_id ASC LIMIT {l} OFFSET {o}",
            s.wheres.join(" AND ")
        );
        let rows = self.backend.query(sql, s.binds).fetch_all(&self.read).await.map_err(db_error)?;
        let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let next = page_after(&mut ids, limit, offset);
        Ok(Page { items: self.load_logged_models(&ids).await?, next_page_token: next })
    }

    async fn log_outputs(&self, audit: &Audit, run_id: &str, models: &[(String, i64)]) -> Result<()> {
        let mut tx = self.begin().await?;
        require_active_run(&mut tx, run_id).await?;
        for (model_id, step) in models {
            self.live_logged_model(&mut tx, model_id).await?;
            sqlx::query("INSERT INTO run_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step")
                .bind(run_id)
                .bind(model_id)
                .bind(*step)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        append(&mut tx, audit, "run.log_outputs", "run", run_id).await?;
        tx.commit().await
    }
}
