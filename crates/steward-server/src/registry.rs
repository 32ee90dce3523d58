//! MLflow model-registry endpoints (`registered-models/*`, `model-versions/*`), MLflow 3
//! logged models and `runs/outputs`, with Steward's promotion rules: protected aliases and
//! the Production stage need a validator who did not create the version.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use steward_core::access::{PROTECTED_STAGE, Role, authorize_promotion, authorize_protected};
use steward_core::entities::Tag;
use steward_core::registry::{ModelVersion, NewModelVersion, canonical_stage, parse_version};
use steward_core::{Error, ErrorCode, Result};
use steward_store::{NewLoggedModel, RegistryQuery};

use crate::AppState;
use crate::error::ApiResult;
use crate::request::{Fields, value_i64};
use crate::wire;

type Answer = ApiResult<Json<Value>>;

fn ok() -> Answer {
    Ok(Json(json!({})))
}

fn version(f: &Fields) -> Result<i64> {
    let v = f.str("version")?;
    parse_version(&v).map_err(|_| Error::invalid(format!("Parameter 'version' must be an integer, got '{v}'.")))
}

fn registry_query(f: &Fields) -> Result<RegistryQuery> {
    Ok(RegistryQuery {
        filter: f.opt_str("filter")?.unwrap_or_default(),
        order_by: f.str_list("order_by")?,
        max_results: f.opt_i64("max_results")?,
        page_token: f.opt_str("page_token")?.unwrap_or_default(),
    })
}

/// On an authenticated server, refuses a promotion by anyone but a validator or admin who
/// did not create the version.
async fn check_promotion(s: &AppState, f: &Fields, name: &str, version: i64, target: &str) -> Result<()> {
    if let Some(p) = f.principal() {
        let mv = s.store.get_model_version(name, version).await?;
        authorize_promotion(p, &mv.created_by, target, name, &version.to_string())?;
    }
    Ok(())
}

pub(crate) fn is_protected(s: &AppState, alias: &str) -> bool {
    s.protected_aliases.iter().any(|a| a.eq_ignore_ascii_case(alias))
}

// ---- registered models ----

pub async fn create_registered_model(State(s): State<AppState>, f: Fields) -> Answer {
    let name = f.str("name")?;
    let rm = s.store.create_registered_model(f.audit(), &name, f.opt_str("description")?.as_deref(), &f.tags("tags")?).await?;
    Ok(Json(json!({ "registered_model": wire::registered_model(&rm) })))
}

pub async fn get_registered_model(State(s): State<AppState>, f: Fields) -> Answer {
    let rm = s.store.get_registered_model(&f.str("name")?).await?;
    Ok(Json(json!({ "registered_model": wire::registered_model(&rm) })))
}

pub async fn update_registered_model(State(s): State<AppState>, f: Fields) -> Answer {
    let rm = s.store.update_registered_model(f.audit(), &f.str("name")?, f.opt_str("description")?.as_deref()).await?;
    Ok(Json(json!({ "registered_model": wire::registered_model(&rm) })))
}

/// What marks a version as approved for production: the protected aliases it holds and the
/// Production stage.
fn marks(s: &AppState, mv: &ModelVersion) -> Vec<String> {
    let mut marks: Vec<String> = mv.aliases.iter().filter(|a| is_protected(s, a)).map(|a| format!("alias '{a}'")).collect();
    if mv.current_stage == PROTECTED_STAGE {
        marks.push("stage Production".into());
    }
    marks
}

/// Removing a mark indirectly (deleting, archiving, renaming what holds it) needs the rights
/// that setting it needs: a validator or admin who did not create the version.
fn check_marked(s: &AppState, f: &Fields, mv: &ModelVersion, action: &str) -> Result<()> {
    let (Some(p), marks) = (f.principal(), marks(s, mv)) else { return Ok(()) };
    if marks.is_empty() {
        return Ok(());
    }
    authorize_protected(p, &mv.created_by, action, &format!("{} version {} (it holds {})", mv.name, mv.version, marks.join(" and ")))
}

/// The versions of a model that carry a mark: those its protected aliases name and those in
/// the Production stage.
async fn marked_versions(s: &AppState, name: &str) -> Result<Vec<ModelVersion>> {
    let rm = s.store.get_registered_model(name).await?;
    let mut out = s.store.versions_in_stage(name, PROTECTED_STAGE).await?;
    for (alias, v) in rm.aliases.iter().filter(|(a, _)| is_protected(s, a)) {
        if !out.iter().any(|m| m.version == *v) {
            let mv = s.store.get_model_version(name, *v).await.map_err(|e| Error::internal(format!("alias '{alias}' names a missing version: {}", e.message())))?;
            out.push(mv);
        }
    }
    Ok(out)
}

/// A version a deployment serves now cannot be deleted: the deployment would fail at its
/// next load. `version: None` means any version of the model.
fn refuse_if_served(s: &AppState, name: &str, version: Option<i64>, what: &str) -> Result<()> {
    for r in s.serving.all_routes() {
        for (role, model, v) in r.versions() {
            if model == name && version.is_none_or(|want| want == v) {
                return Err(Error::invalid(format!(
                    "cannot {what}: deployment '{}' serves {name} version {v} as {}; change or delete the deployment first",
                    r.spec.name,
                    role.as_str()
                )));
            }
        }
    }
    Ok(())
}

pub async fn rename_registered_model(State(s): State<AppState>, f: Fields) -> Answer {
    let name = f.str("name")?;
    for mv in marked_versions(&s, &name).await? {
        check_marked(&s, &f, &mv, "rename the model of")?;
    }
    let rm = s.store.rename_registered_model(f.audit(), &name, &f.str("new_name")?).await?;
    Ok(Json(json!({ "registered_model": wire::registered_model(&rm) })))
}

pub async fn delete_registered_model(State(s): State<AppState>, f: Fields) -> Answer {
    let name = f.str("name")?;
    for mv in marked_versions(&s, &name).await? {
        check_marked(&s, &f, &mv, "delete the model of")?;
    }
    refuse_if_served(&s, &name, None, &format!("delete model '{name}'"))?;
    s.store.delete_registered_model(f.audit(), &name).await?;
    ok()
}

pub async fn search_registered_models(State(s): State<AppState>, f: Fields) -> Answer {
    let page = s.store.search_registered_models(&registry_query(&f)?).await?;
    Ok(Json(wire::page("registered_models", page.items.iter().map(wire::registered_model).collect(), page.next_page_token)))
}

pub async fn latest_versions(State(s): State<AppState>, f: Fields) -> Answer {
    let versions = s.store.latest_versions(&f.str("name")?, &f.str_list("stages")?).await?;
    Ok(Json(wire::page("model_versions", versions.iter().map(wire::model_version).collect(), None)))
}

pub async fn set_registered_model_tag(State(s): State<AppState>, f: Fields) -> Answer {
    let tag = Tag { key: f.str("key")?, value: f.opt_str("value")?.unwrap_or_default() };
    s.store.set_registered_model_tag(f.audit(), &f.str("name")?, &tag).await?;
    ok()
}

pub async fn delete_registered_model_tag(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_registered_model_tag(f.audit(), &f.str("name")?, &f.str("key")?).await?;
    ok()
}

pub async fn set_alias(State(s): State<AppState>, f: Fields) -> Answer {
    let (name, alias, v) = (f.str("name")?, f.str("alias")?, version(&f)?);
    if is_protected(&s, &alias) {
        check_promotion(&s, &f, &name, v, &format!("protected alias '{alias}'")).await?;
    }
    s.store.set_alias(f.audit(), &name, &alias, v).await?;
    s.serving.registry_changed();
    ok()
}

pub async fn delete_alias(State(s): State<AppState>, f: Fields) -> Answer {
    let (name, alias) = (f.str("name")?, f.str("alias")?);
    if let Some(p) = f.principal().filter(|_| is_protected(&s, &alias)) {
        if p.role < Role::Validator {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                format!("only a validator or admin may remove protected alias '{alias}' of {name}; user '{}' has role {}", p.name, p.role.as_str()),
            )
            .into());
        }
    }
    s.store.delete_alias(f.audit(), &name, &alias).await?;
    s.serving.registry_changed();
    ok()
}

pub async fn get_by_alias(State(s): State<AppState>, f: Fields) -> Answer {
    let mv = s.store.version_by_alias(&f.str("name")?, &f.str("alias")?).await?;
    Ok(Json(json!({ "model_version": wire::model_version(&mv) })))
}

// ---- model versions ----

/// Where a new version's files are, from its `source`: a logged model (`models:/m-<id>`), a
/// run's artifacts (`runs:/<run>/<path>`), another version (`models:/<name>/<version>`), or
/// a plain URI kept as given.
async fn resolve_source(s: &AppState, mv: &mut NewModelVersion) -> Result<Option<String>> {
    let bad = |why: &str| Error::invalid(format!("Invalid model version source: '{}'. {why}", mv.source));
    if mv.source.split('/').any(|seg| seg == "..") {
        return Err(bad("Relative path references ('..') are not allowed."));
    }
    if let Some(rest) = mv.source.strip_prefix("models:/") {
        if !rest.contains('/') && rest.starts_with("m-") {
            let lm = s.store.get_logged_model(rest, false).await?;
            if mv.model_id.as_deref().is_some_and(|m| !m.is_empty() && m != lm.model_id) {
                return Err(bad("The model_id request parameter must identify the resource that contains the source."));
            }
            mv.model_id = Some(lm.model_id.clone());
            if mv.run_id.as_deref().unwrap_or("").is_empty() {
                mv.run_id = lm.source_run_id.clone().filter(|r| !r.is_empty());
            }
            return Ok(Some(lm.artifact_location));
        }
        if let Some((name, v)) = rest.split_once('/') {
            let v = parse_version(v).map_err(|_| bad("Expected models:/<name>/<version>."))?;
            let uri = s.store.download_uri(name, v).await?;
            return Ok(Some(uri));
        }
        return Err(bad("Expected models:/m-<id> or models:/<name>/<version>."));
    }
    if let Some(rest) = mv.source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let run = s.store.get_run(run_id).await?;
        if mv.run_id.as_deref().unwrap_or("").is_empty() {
            mv.run_id = Some(run_id.to_owned());
        }
        let base = run.info.artifact_uri.trim_end_matches('/').to_owned();
        return Ok(Some(if path.is_empty() { base } else { format!("{base}/{}", path.trim_matches('/')) }));
    }
    Ok(None)
}

pub async fn create_model_version(State(s): State<AppState>, f: Fields) -> Answer {
    let mut mv = NewModelVersion {
        name: f.str("name")?,
        source: f.str("source")?,
        run_id: f.opt_str("run_id")?,
        run_link: f.opt_str("run_link")?,
        description: f.opt_str("description")?,
        tags: f.tags("tags")?,
        model_id: f.opt_str("model_id")?.filter(|m| !m.is_empty()),
        content_digest: None,
    };
    let storage = resolve_source(&s, &mut mv).await?;
    // The digest of the model file as registered: serving refuses the version if it changes.
    // Files not there yet (or not ONNX) get theirs when first served.
    let location = storage.as_deref().unwrap_or(&mv.source);
    if location.starts_with("mlflow-artifacts:/") {
        mv.content_digest = crate::serving::model_file(&s.artifacts, location, "").await.ok().map(|b| crate::serving::content_digest(&b));
    }
    let created = s.store.create_model_version(f.audit(), &mv, storage.as_deref()).await?;
    Ok(Json(json!({ "model_version": wire::model_version(&created) })))
}

pub async fn get_model_version(State(s): State<AppState>, f: Fields) -> Answer {
    let mv = s.store.get_model_version(&f.str("name")?, version(&f)?).await?;
    Ok(Json(json!({ "model_version": wire::model_version(&mv) })))
}

pub async fn update_model_version(State(s): State<AppState>, f: Fields) -> Answer {
    let mv = s.store.update_model_version(f.audit(), &f.str("name")?, version(&f)?, f.opt_str("description")?.as_deref()).await?;
    Ok(Json(json!({ "model_version": wire::model_version(&mv) })))
}

pub async fn transition_stage(State(s): State<AppState>, f: Fields) -> Answer {
    let (name, v) = (f.str("name")?, version(&f)?);
    let stage = canonical_stage(&f.str("stage")?)?;
    let archive = match f.json().and_then(|m| m.get("archive_existing_versions")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Error::invalid(format!("Invalid value {other} for parameter 'archive_existing_versions' supplied: expected a boolean")).into());
        }
    };
    if stage == PROTECTED_STAGE {
        check_promotion(&s, &f, &name, v, "stage Production").await?;
    } else {
        let mv = s.store.get_model_version(&name, v).await?;
        if mv.current_stage == PROTECTED_STAGE {
            check_marked(&s, &f, &mv, &format!("move to stage {stage}"))?;
        }
    }
    let mv = s.store.transition_stage(f.audit(), &name, v, stage, archive).await?;
    Ok(Json(json!({ "model_version": wire::model_version(&mv) })))
}

pub async fn delete_model_version(State(s): State<AppState>, f: Fields) -> Answer {
    let (name, v) = (f.str("name")?, version(&f)?);
    check_marked(&s, &f, &s.store.get_model_version(&name, v).await?, "delete")?;
    refuse_if_served(&s, &name, Some(v), &format!("delete {name} version {v}"))?;
    s.store.delete_model_version(f.audit(), &name, v).await?;
    ok()
}

pub async fn download_uri(State(s): State<AppState>, f: Fields) -> Answer {
    let uri = s.store.download_uri(&f.str("name")?, version(&f)?).await?;
    Ok(Json(json!({ "artifact_uri": uri })))
}

pub async fn search_model_versions(State(s): State<AppState>, f: Fields) -> Answer {
    let page = s.store.search_model_versions(&registry_query(&f)?).await?;
    Ok(Json(wire::page("model_versions", page.items.iter().map(wire::model_version).collect(), page.next_page_token)))
}

pub async fn set_model_version_tag(State(s): State<AppState>, f: Fields) -> Answer {
    let tag = Tag { key: f.str("key")?, value: f.opt_str("value")?.unwrap_or_default() };
    s.store.set_model_version_tag(f.audit(), &f.str("name")?, version(&f)?, &tag).await?;
    ok()
}

pub async fn delete_model_version_tag(State(s): State<AppState>, f: Fields) -> Answer {
    s.store.delete_model_version_tag(f.audit(), &f.str("name")?, version(&f)?, &f.str("key")?).await?;
    ok()
}

// ---- logged models ----

pub async fn create_logged_model(State(s): State<AppState>, f: Fields) -> Answer {
    let m = NewLoggedModel {
        experiment_id: f.str("experiment_id")?,
        name: f.opt_str("name")?,
        model_type: f.opt_str("model_type")?,
        source_run_id: f.opt_str("source_run_id")?,
        params: f.tags("params")?,
        tags: f.tags("tags")?,
    };
    let lm = s.store.create_logged_model(f.audit(), &m).await?;
    Ok(Json(json!({ "model": wire::logged_model(&lm) })))
}

pub async fn get_logged_model(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    let allow_deleted = f.opt_str("allow_deleted")?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let lm = s.store.get_logged_model(&id, allow_deleted).await?;
    Ok(Json(json!({ "model": wire::logged_model(&lm) })))
}

pub async fn finalize_logged_model(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    let status = match f.json().and_then(|m| m.get("status")) {
        Some(Value::String(st)) => st.clone(),
        Some(v @ Value::Number(_)) => value_i64("status", v)?.to_string(),
        _ => return Err(steward_core::validation::missing_value("status").into()),
    };
    let lm = s.store.finalize_logged_model(f.audit(), &id, &status).await?;
    Ok(Json(json!({ "model": wire::logged_model(&lm) })))
}

pub async fn delete_logged_model(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    s.store.delete_logged_model(f.audit(), &id).await?;
    ok()
}

pub async fn set_logged_model_tags(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    s.store.set_logged_model_tags(f.audit(), &id, &f.tags("tags")?).await?;
    ok()
}

pub async fn delete_logged_model_tag(State(s): State<AppState>, Path((id, key)): Path<(String, String)>, f: Fields) -> Answer {
    s.store.delete_logged_model_tag(f.audit(), &id, &key).await?;
    ok()
}

pub async fn log_logged_model_params(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    s.store.log_logged_model_params(f.audit(), &id, &f.tags("params")?).await?;
    ok()
}

pub async fn search_logged_models(State(s): State<AppState>, f: Fields) -> Answer {
    let page = s
        .store
        .search_logged_models(
            &f.str_list("experiment_ids")?,
            &f.opt_str("filter")?.unwrap_or_default(),
            f.opt_i64("max_results")?,
            &f.opt_str("page_token")?.unwrap_or_default(),
        )
        .await?;
    Ok(Json(wire::page("models", page.items.iter().map(wire::logged_model).collect(), page.next_page_token)))
}

pub async fn list_logged_model_artifacts(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Answer {
    let lm = s.store.get_logged_model(&id, false).await?;
    let sub = f.opt_str("artifact_directory_path")?.unwrap_or_default();
    crate::artifacts::list_under(&s, &lm.artifact_location, &sub).await.map(Json)
}

pub async fn log_outputs(State(s): State<AppState>, f: Fields) -> Answer {
    let run_id = f.run_id()?;
    let mut models = Vec::new();
    for (i, o) in f.objects("models")?.iter().enumerate() {
        let id = crate::request::obj_str(&format!("models[{i}]"), o, "model_id")?
            .filter(|m| !m.is_empty())
            .ok_or_else(|| steward_core::validation::missing_value(&format!("models[{i}].model_id")))?;
        let step = match o.get("step") {
            None | Some(Value::Null) => 0,
            Some(v) => value_i64(&format!("models[{i}].step"), v)?,
        };
        models.push((id, step));
    }
    s.store.log_outputs(f.audit(), &run_id, &models).await?;
    ok()
}

// ---- Steward's registry history API ----

/// `GET /api/steward/v1/registry/models/{name}/history`: every alias and stage change.
pub async fn history(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    s.store.get_registered_model(&name).await?;
    let events = s.store.registry_history(&name).await?;
    Ok(Json(json!({ "name": name, "events": events.iter().map(wire::registry_event).collect::<Vec<_>>() })))
}

/// `GET /api/steward/v1/registry/models/{name}/aliases/{alias}?at=MS`: which version the alias
/// pointed to at a moment (now when `at` is absent).
pub async fn alias_at(State(s): State<AppState>, Path((name, alias)): Path<(String, String)>, f: Fields) -> Answer {
    let at = f.opt_i64("at")?.unwrap_or(i64::MAX);
    let version = s.store.alias_at(&name, &alias, at).await?;
    Ok(Json(json!({ "name": name, "alias": alias, "at": f.opt_i64("at")?, "version": version.map(|v| v.to_string()) })))
}
