//! Steward's serving API: deployments (create, list, get, update, delete), ground-truth
//! feedback, logged predictions, and the Prometheus `/metrics` page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use steward_core::access::Perm;
use steward_core::audit::Audit;
use steward_core::serving::{AgentAction, Challenger, DeploymentSpec, Feedback, ModelRef, PredictionRecord};
use steward_core::{Error, ErrorCode};

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
        if !matches!(key.as_str(), "name" | "model" | "challenger" | "shadow" | "max_rows_per_request" | "steward_reason") {
            return Err(Error::invalid(format!("unknown deployment field '{key}' (fields: name, model, challenger, shadow, max_rows_per_request)")));
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
    match body.get("max_rows_per_request") {
        None => {}
        Some(Value::Null) => spec.max_rows_per_request = None,
        Some(v) => spec.max_rows_per_request = Some(v.as_u64().ok_or_else(|| Error::invalid(format!("'max_rows_per_request' must be a positive whole number, got {v}")))?),
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
    let mut spec = DeploymentSpec { name, model, challenger: None, shadow: None, fallback: None, model_ids: Default::default(), max_rows_per_request: None };
    apply(&mut spec, &body)?;
    spec.validate()?;
    govern(&s, &f, None, &spec).await?;
    s.serving.bind(&mut spec).await?;
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
    let before = spec.clone();
    apply(&mut spec, &body)?;
    if spec.model != before.model {
        spec.fallback = serving_champion(&s, &name).or(Some(before.model.clone()));
    }
    spec.validate()?;
    let action = govern(&s, &f, Some(&before), &spec).await?;
    s.serving.bind(&mut spec).await?;
    let routes = s.serving.build(&spec).await?;
    let stored = s.store.put_deployment(&as_override(&s, &name, f.audit(), action.as_ref()), &spec, false).await?;
    let routes = s.serving.install_synced(routes).await;
    Ok(Json(json!({ "deployment": routes.json(Some(&stored)) })))
}

/// The audit record of a change to a deployment an agent policy governs. Made on behalf of a
/// running agent action (the pipeline a `retrain` started names it), it is recorded as that
/// action's; made by a person, as a manual override of the policy.
fn as_override(s: &AppState, name: &str, audit: &Audit, action: Option<&AgentAction>) -> Audit {
    let mut audit = audit.clone();
    let given = audit.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    if let Some(a) = action {
        audit.reason = Some(format!("agent action {} ({}){given}", a.id, a.kind));
    } else if audit.actor != "agent" && s.policies.iter().any(|p| p.deployment == name) {
        audit.reason = Some(format!("manual override of the agent's policy for '{name}'{given}"));
    }
    audit
}

fn denied(message: String) -> Error {
    Error::new(ErrorCode::PermissionDenied, message)
}

/// The running agent action a request says it acts for (`X-Steward-Agent-Action`), checked:
/// it must be running, and on this deployment.
async fn claimed_action(s: &AppState, f: &Fields, name: &str) -> Result<Option<AgentAction>, Error> {
    let Some(id) = f.agent_action() else { return Ok(None) };
    let running = s.store.actions(Some("running")).await?;
    let action = running.into_iter().find(|a| a.id == id && a.deployment == name);
    action.map(Some).ok_or_else(|| Error::invalid(format!("agent action '{id}' is not a running agent action on deployment '{name}'")))
}

/// What a deployment change must satisfy beyond its route's permission, for an authenticated
/// caller (an open server has no principals to judge; the agent acts in-process):
///
/// * a caller without the deploy right (a scientist's pipeline lent it by a running agent
///   action) may only add a challenger, pinned, at no more than the policy's first canary step;
/// * the champion serves only an approved version: one following a protected alias, one
///   holding a protected alias now, or the deployment's own fallback (a previous champion);
/// * every route names a pinned version or a protected alias, never an alias anyone with
///   write access could move;
/// * four eyes: a caller may not put a version they created on the challenger or shadow route.
///
/// Returns the agent action the change is made for, if any.
async fn govern(s: &AppState, f: &Fields, before: Option<&DeploymentSpec>, after: &DeploymentSpec) -> Result<Option<AgentAction>, Error> {
    let action = claimed_action(s, f, &after.name).await?;
    let Some(p) = f.principal() else { return Ok(action) };
    if !p.role.grants(Perm::Deploy) {
        let (Some(before), Some(a)) = (before, &action) else {
            return Err(denied(format!("user '{}' has role {} and may not change what a deployment serves", p.name, p.role.as_str())));
        };
        let first = s.policies.iter().find(|pol| pol.deployment == after.name).and_then(|pol| pol.canary.steps.first().copied()).unwrap_or(10);
        let only_challenger = DeploymentSpec { challenger: before.challenger.clone(), ..after.clone() } == *before;
        let within = after.challenger.as_ref().is_some_and(|c| matches!(c.model, ModelRef::Version { .. }) && c.weight <= u32::from(first));
        if !(only_challenger && within && before.challenger.is_none()) {
            return Err(denied(format!(
                "agent action {} ({}) lets user '{}' add a challenger, pinned to a version, at no more than {first}% (the policy's first canary step), and nothing else",
                a.id, a.kind, p.name
            )));
        }
        return Ok(action);
    }
    let protected = |alias: &str| crate::registry::is_protected(s, alias);
    let routes = [Some((&after.model, "champion")), after.challenger.as_ref().map(|c| (&c.model, "challenger")), after.shadow.as_ref().map(|m| (m, "shadow"))];
    for (m, role) in routes.into_iter().flatten() {
        if let ModelRef::Alias { alias, .. } = m
            && !protected(alias)
        {
            return Err(denied(format!(
                "the {role} cannot follow {m}: alias '{alias}' is not protected, so anyone with write access could move it; pin a version (models:/{}/N) or use a protected alias ({})",
                m.model_name(),
                s.protected_aliases.join(", ")
            )));
        }
    }
    let champion_changed = before.is_none_or(|b| b.model != after.model);
    let is_fallback = before.is_some_and(|b| b.fallback.as_ref() == Some(&after.model));
    if champion_changed && !is_fallback && let ModelRef::Version { name, version } = &after.model {
        let mv = s.store.get_model_version(name, *version).await?;
        if !mv.aliases.iter().any(|a| protected(a)) {
            return Err(denied(format!(
                "{} cannot serve as champion: version {version} of '{name}' holds no protected alias ({}); a validator who did not create it must set one first (four-eyes), or the agent must promote it",
                after.model,
                s.protected_aliases.join(", ")
            )));
        }
    }
    let changed = |now: Option<&ModelRef>, then: Option<&ModelRef>| now.filter(|m| Some(*m) != then).cloned();
    let newly = [
        changed(after.challenger.as_ref().map(|c| &c.model), before.and_then(|b| b.challenger.as_ref().map(|c| &c.model))).map(|m| (m, "challenger")),
        changed(after.shadow.as_ref(), before.and_then(|b| b.shadow.as_ref())).map(|m| (m, "shadow")),
    ];
    for (m, role) in newly.into_iter().flatten() {
        if let ModelRef::Version { name, version } = &m {
            let mv = s.store.get_model_version(name, *version).await?;
            if mv.created_by == p.name {
                return Err(denied(format!("four-eyes rule: user '{}' created {name} version {version} and may not put it on the {role} route; another validator must", p.name)));
            }
        }
    }
    Ok(action)
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
    s.serving.bind(&mut spec).await?;
    let routes = s.serving.build(&spec).await?;
    let audit = steward_core::audit::Audit::new(f.audit().actor.clone(), Some(format!("stop switch: {reason}")), reason.as_bytes());
    let stored = s.store.put_deployment(&as_override(&s, &name, &audit, None), &spec, false).await?;
    let routes = s.serving.install_synced(routes).await;
    Ok(Json(json!({ "deployment": routes.json(Some(&stored)) })))
}

/// A stored deployment with no live routes: not loaded yet, or failed to load (why, how many
/// times in a row, and when it is tried again).
fn not_serving(s: &AppState, d: &steward_core::serving::Deployment) -> Value {
    match s.serving.load_error(&d.spec.name) {
        Some((error, failures, retry)) => {
            json!({ "name": d.spec.name, "model": d.spec.model.to_string(), "state": "failed", "error": error, "failures": failures, "retry_in_ms": retry.as_millis() as u64 })
        }
        None => json!({ "name": d.spec.name, "model": d.spec.model.to_string(), "state": "not loaded" }),
    }
}

pub async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let stored = s.store.list_deployments().await?;
    let out: Vec<Value> = stored
        .iter()
        .map(|d| match s.serving.routes(&d.spec.name) {
            Some(r) => r.json(Some(d)),
            None => not_serving(&s, d),
        })
        .collect();
    Ok(Json(json!({ "deployments": out })))
}

pub async fn get(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let d = s.store.get_deployment(&name).await?;
    let body = match s.serving.routes(&name) {
        Some(r) => r.json(Some(&d)),
        None => not_serving(&s, &d),
    };
    Ok(Json(json!({ "deployment": body })))
}

pub async fn delete(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    s.store.delete_deployment(&as_override(&s, &name, f.audit(), None), &name).await?;
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
/// prediction reference, outputs, quality, estimated quality, fairness, SLO thresholds);
/// predictions from now on are judged. With estimated quality the answer says whether the
/// reference's scores called for calibration.
pub async fn put_monitor(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let mut body = Value::Object(body(&f));
    if let Some(o) = body.as_object_mut() {
        o.remove("steward_reason");
    }
    // Parsing fits the estimated-quality calibration (up to 100,000 reference rows): off the runtime.
    let spec = tokio::task::spawn_blocking(move || super::monitor::MonitorSpec::parse(body)).await.map_err(|e| Error::internal(format!("reading the monitor spec failed: {e}")))??;
    if let Some(url) = &spec.webhook_url {
        super::monitor::webhook_allowed(url, &s.serving.webhook_allow())?;
    }
    let text = serde_json::to_string(&spec).map_err(|e| Error::internal(e.to_string()))?;
    s.store.put_monitor(f.audit(), &name, &text, super::now_ms()).await?;
    let features: Vec<&str> = spec.reference.columns.iter().map(|c| c.name.as_str()).collect();
    Ok(Json(json!({ "monitor": { "deployment": name, "window_size": spec.window_size, "window_seconds": spec.window_seconds, "drift_share": spec.drift_share, "features": features, "webhook_url": spec.webhook_url,
        "prediction_drift": spec.reference_prediction.is_some(), "quality": spec.quality.is_some(), "fairness": spec.fairness.is_some(),
        "estimated_quality": spec.estimated_quality.as_ref().map(|e| json!({ "reference_rows": e.reference_scores.len(), "calibrated": e.calibration.is_some() })) } })))
}

pub async fn delete_monitor(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    s.store.delete_monitor(f.audit(), &name).await?;
    Ok(Json(json!({})))
}

/// `monitor/metrics` pages: the default page holds every window of a filtered series a client
/// reads in one go (and many windows of all series); no page holds more than the maximum.
const MONITOR_METRICS_DEFAULT_RESULTS: i64 = 10_000;
const MONITOR_METRICS_MAX_RESULTS: i64 = 50_000;

/// `GET .../monitor/metrics?metric=drift_share&max_results=N&page_token=T`: the monitor's time
/// series, oldest window first ((window end, metric, feature) order), a page at a time: the
/// answer has a `next_page_token` when more rows remain. `max_results` and bad tokens are
/// refused as the searches refuse them.
pub async fn monitor_metrics(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let metric = f.opt_str("metric")?;
    let limit = f.opt_i64("max_results")?.unwrap_or(MONITOR_METRICS_DEFAULT_RESULTS);
    if limit > MONITOR_METRICS_MAX_RESULTS {
        return Err(Error::invalid(format!(
            "Invalid value for request parameter max_results. It must be at most {MONITOR_METRICS_MAX_RESULTS}, but got value {limit}"
        ))
        .into());
    }
    if limit < 1 {
        return Err(Error::invalid(format!("Invalid value for request parameter max_results. It must be at least 1, but got value {limit}")).into());
    }
    let after = decode_metric_token(&f.opt_str("page_token")?.unwrap_or_default())?;
    let key = after.as_ref().map(|(end, metric, feature)| (*end, metric.as_str(), feature.as_str()));
    // One row past the page says whether another page follows.
    let mut series = s.store.monitor_metrics_page(&name, metric.as_deref(), None, key, limit + 1).await?;
    let next = if series.len() as i64 > limit {
        series.truncate(limit as usize);
        series.last().map(|m| encode_metric_token(m.window_end, &m.metric, &m.feature))
    } else {
        None
    };
    let mut out = json!({ "metrics": series });
    if let Some(token) = next {
        out["next_page_token"] = json!(token);
    }
    Ok(Json(out))
}

/// A `monitor/metrics` page token: base64 of the JSON key of the page's last row, `{"window_end":
/// MS, "metric": NAME, "feature": NAME}` (the next page starts after it).
fn encode_metric_token(window_end: i64, metric: &str, feature: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(json!({ "window_end": window_end, "metric": metric, "feature": feature }).to_string())
}

/// Decodes a `monitor/metrics` page token; the empty token is the first page. A token that is
/// not one is refused with the searches' error.
fn decode_metric_token(token: &str) -> Result<Option<(i64, String, String)>, Error> {
    use base64::Engine as _;
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(format!("Invalid page token, could not base64-decode or parse '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
    let key: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let end = key.get("window_end").and_then(Value::as_i64).ok_or_else(bad)?;
    let metric = key.get("metric").and_then(Value::as_str).ok_or_else(bad)?;
    let feature = key.get("feature").and_then(Value::as_str).ok_or_else(bad)?;
    Ok(Some((end, metric.to_owned(), feature.to_owned())))
}

/// `GET /api/steward/v1/alerts?deployment=NAME&max_results=N`, newest first.
pub async fn alerts(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let deployment = f.opt_str("deployment")?;
    let limit = f.opt_i64("max_results")?.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!({ "alerts": s.store.alerts(deployment.as_deref(), limit).await? })))
}
