//! Steward's serving API: deployments (create, list, get, update, delete), ground-truth
//! feedback, logged predictions, and the Prometheus `/metrics` page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use steward_core::Error;
use steward_core::serving::{Challenger, DeploymentSpec, Feedback, ModelRef, PredictionRecord};

use crate::AppState;
use crate::error::ApiResult;
use crate::request::Fields;

fn model_ref(path: &str, v: &Value) -> Result<ModelRef, Error> {
    let s = v.as_str().ok_or_else(|| Error::invalid(format!("'{path}' must be a model URI such as models:/NAME@ALIAS")))?;
    ModelRef::parse(s)
}

/// Applies the body's fields to a spec: `model`, `challenger` ({model, weight} or null to
/// remove), `shadow` (a model URI or null).
fn apply(spec: &mut DeploymentSpec, body: &Map<String, Value>) -> Result<(), Error> {
    for key in body.keys() {
        if !matches!(key.as_str(), "name" | "model" | "challenger" | "shadow" | "steward_reason" | "steward_agent_action") {
            return Err(Error::invalid(format!("unknown deployment field '{key}' (fields: name, model, challenger, shadow)")));
        }
    }
    if let Some(m) = body.get("model") {
        spec.model = model_ref("model", m)?;
    }
    match body.get("challenger") {
        None => {}
        Some(Value::Null) => spec.challenger = None,
        Some(Value::Object(c)) => {
            let model = model_ref("challenger.model", c.get("model").unwrap_or(&Value::Null))?;
            let weight = match c.get("weight") {
                None => 10,
                Some(w) => w.as_u64().filter(|w| *w <= 100).ok_or_else(|| Error::invalid(format!("'challenger.weight' must be a percentage 0-100, got {w}")))? as u32,
            };
            spec.challenger = Some(Challenger { model, weight });
        }
        Some(other) => return Err(Error::invalid(format!("'challenger' must be an object {{model, weight}} or null, got {other}"))),
    }
    match body.get("shadow") {
        None => {}
        Some(Value::Null) => spec.shadow = None,
        Some(v) => spec.shadow = Some(model_ref("shadow", v)?),
    }
    Ok(())
}

fn body(f: &Fields) -> Map<String, Value> {
    f.json().cloned().unwrap_or_default()
}

pub async fn create(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let name = f.str("name")?;
    let body = body(&f);
    let model = model_ref("model", body.get("model").ok_or_else(|| Error::invalid("missing value for required parameter 'model'"))?)?;
    let mut spec = DeploymentSpec { name, model, challenger: None, shadow: None, fallback: None };
    apply(&mut spec, &body)?;
    spec.validate()?;
    // Load before storing: a deployment that cannot serve is refused, not recorded.
    let routes = s.serving.build(&spec).await?;
    let stored = s.store.put_deployment(f.audit(), &spec, true).await?;
    let routes = s.serving.install_synced(routes).await;
    Ok(Json(json!({ "deployment": routes.json(Some(&stored)) })))
}

pub async fn update(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let mut spec = s.store.get_deployment(&name).await?.spec;
    let body = body(&f);
    if body.get("name").and_then(Value::as_str).is_some_and(|n| n != name) {
        return Err(Error::invalid("a deployment cannot be renamed").into());
    }
    let before = spec.model.clone();
    apply(&mut spec, &body)?;
    if spec.model != before {
        spec.fallback = serving_champion(&s, &name).or(Some(before));
    }
    spec.validate()?;
    let routes = s.serving.build(&spec).await?;
    let stored = s.store.put_deployment(&as_override(&s, &name, f.audit(), &body).await?, &spec, false).await?;
    let routes = s.serving.install_synced(routes).await;
    Ok(Json(json!({ "deployment": routes.json(Some(&stored)) })))
}

/// The audit record of a change to a deployment an agent policy governs. Made on behalf of a
/// running agent action (the pipeline a `retrain` started names it in `steward_agent_action`),
/// it is recorded as that action's; made by a person, as a manual override of the policy.
async fn as_override(s: &AppState, name: &str, audit: &steward_core::audit::Audit, body: &Map<String, Value>) -> Result<steward_core::audit::Audit, Error> {
    let mut audit = audit.clone();
    let given = audit.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    if let Some(id) = body.get("steward_agent_action") {
        let id = id.as_str().ok_or_else(|| Error::invalid("'steward_agent_action' must be an action id"))?;
        let action = s.store.actions(Some("running")).await?.into_iter().find(|a| a.id == id && a.deployment == name);
        let a = action.ok_or_else(|| Error::invalid(format!("steward_agent_action '{id}' is not a running agent action on deployment '{name}'")))?;
        audit.reason = Some(format!("agent action {} ({}){given}", a.id, a.kind));
    } else if audit.actor != "agent" && s.policies.iter().any(|p| p.deployment == name) {
        audit.reason = Some(format!("manual override of the agent's policy for '{name}'{given}"));
    }
    Ok(audit)
}

/// The version a deployment's champion route serves now, pinned.
pub fn serving_champion(s: &AppState, name: &str) -> Option<ModelRef> {
    s.serving.routes(name).map(|r| ModelRef::Version { name: r.champion.model.clone(), version: r.champion.version })
}

/// `POST /api/steward/v1/deployments/NAME/stop` with `{"reason": ...}`: the stop switch. All
/// traffic goes to the fallback (the last good version) from the next request on; the
/// challenger is removed. The reason is recorded with the ledger entry.
pub async fn stop(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let reason = f.str("reason")?;
    let mut spec = s.store.get_deployment(&name).await?.spec;
    let fallback = spec.fallback.clone().ok_or_else(|| Error::invalid(format!("deployment '{name}' has no fallback version: it has only ever had one champion")))?;
    spec.model = fallback;
    spec.fallback = None;
    spec.challenger = None;
    let routes = s.serving.build(&spec).await?;
    let audit = steward_core::audit::Audit::new(f.audit().actor.clone(), Some(format!("stop switch: {reason}")), reason.as_bytes());
    let stored = s.store.put_deployment(&as_override(&s, &name, &audit, &body(&f)).await?, &spec, false).await?;
    let routes = s.serving.install_synced(routes).await;
    Ok(Json(json!({ "deployment": routes.json(Some(&stored)) })))
}

pub async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let stored = s.store.list_deployments().await?;
    let out: Vec<Value> = stored
        .iter()
        .map(|d| match s.serving.routes(&d.spec.name) {
            Some(r) => r.json(Some(d)),
            None => json!({ "name": d.spec.name, "model": d.spec.model.to_string(), "state": "not loaded" }),
        })
        .collect();
    Ok(Json(json!({ "deployments": out })))
}

pub async fn get(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let d = s.store.get_deployment(&name).await?;
    let body = match s.serving.routes(&name) {
        Some(r) => r.json(Some(&d)),
        None => json!({ "name": d.spec.name, "model": d.spec.model.to_string(), "state": "not loaded" }),
    };
    Ok(Json(json!({ "deployment": body })))
}

pub async fn delete(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    s.store.delete_deployment(&as_override(&s, &name, f.audit(), &body(&f)).await?, &name).await?;
    s.serving.remove(&name).await;
    Ok(Json(json!({})))
}

/// `POST /api/steward/v1/feedback` with `{"feedback": [{"prediction_id": ..., "label": ...}]}`.
pub async fn feedback(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let items = f.objects("feedback")?;
    if items.is_empty() {
        return Err(Error::invalid("'feedback' must list at least one {prediction_id, label}").into());
    }
    let feedback = items
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let id = o.get("prediction_id").and_then(Value::as_str).ok_or_else(|| Error::invalid(format!("feedback[{i}] has no 'prediction_id'")))?;
            let label = o.get("label").filter(|l| !l.is_null()).ok_or_else(|| Error::invalid(format!("feedback[{i}] has no 'label'")))?;
            Ok(Feedback { prediction_id: id.to_owned(), label: label.clone() })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    s.store.record_feedback(&feedback).await?;
    Ok(Json(json!({ "recorded": feedback.len() })))
}

/// A logged prediction as the API shows it: its JSON fields parsed, its label if known.
fn record_json(record: &PredictionRecord, label: Option<Value>) -> Result<Value, Error> {
    let mut out = serde_json::to_value(record).map_err(|e| Error::internal(e.to_string()))?;
    for field in ["inputs", "outputs", "context"] {
        if let Some(Value::String(text)) = out.get(field) {
            out[field] = serde_json::from_str(text).unwrap_or(Value::Null);
        }
    }
    if let Some(label) = label {
        out["label"] = label;
    }
    Ok(out)
}

pub async fn prediction(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (record, label) = s.store.get_prediction(&id).await?;
    Ok(Json(json!({ "prediction": record_json(&record, label)? })))
}

/// `GET /api/steward/v1/deployments/NAME/predictions?since=MS&max_results=N`: the prediction
/// log of a deployment, oldest first (shadow records included, with their `parent_id`).
pub async fn predictions(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let since = f.opt_i64("since")?.unwrap_or(0);
    let limit = f.opt_i64("max_results")?.unwrap_or(1000);
    if !(1..=50_000).contains(&limit) {
        return Err(Error::invalid(format!("max_results must be between 1 and 50000, got {limit}")).into());
    }
    let records = s.store.predictions(&name, since, limit).await?;
    let out = records.iter().map(|r| record_json(r, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "predictions": out })))
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    let text = s.serving.metrics.render(s.serving.log.depth(), s.serving.log.capacity());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `PUT /api/steward/v1/deployments/NAME/monitor`: starts (or replaces) the deployment's
/// monitor (`monitor::MonitorSpec`: reference profile, window size, drift settings, webhook,
/// prediction reference, outputs, quality, fairness, SLO thresholds); predictions from now on
/// are judged.
pub async fn put_monitor(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let mut body = Value::Object(body(&f));
    if let Some(o) = body.as_object_mut() {
        o.remove("steward_reason");
    }
    let spec = super::monitor::MonitorSpec::parse(body)?;
    let text = serde_json::to_string(&spec).map_err(|e| Error::internal(e.to_string()))?;
    s.store.put_monitor(f.audit(), &name, &text, super::now_ms()).await?;
    let features: Vec<&str> = spec.reference.columns.iter().map(|c| c.name.as_str()).collect();
    Ok(Json(json!({ "monitor": { "deployment": name, "window_size": spec.window_size, "window_seconds": spec.window_seconds, "drift_share": spec.drift_share, "features": features, "webhook_url": spec.webhook_url,
        "prediction_drift": spec.reference_prediction.is_some(), "quality": spec.quality.is_some(), "fairness": spec.fairness.is_some() } })))
}

pub async fn delete_monitor(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    s.store.delete_monitor(f.audit(), &name).await?;
    Ok(Json(json!({})))
}

/// `GET .../monitor/metrics?metric=drift_share`: the monitor's time series.
pub async fn monitor_metrics(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let metric = f.opt_str("metric")?;
    let series = s.store.monitor_metrics(&name, metric.as_deref()).await?;
    Ok(Json(json!({ "metrics": series })))
}

/// `GET /api/steward/v1/alerts?deployment=NAME&max_results=N`, newest first.
pub async fn alerts(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let deployment = f.opt_str("deployment")?;
    let limit = f.opt_i64("max_results")?.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!({ "alerts": s.store.alerts(deployment.as_deref(), limit).await? })))
}
