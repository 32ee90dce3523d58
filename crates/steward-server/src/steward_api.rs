//! Steward's own API under `/api/steward/v1`: the audit ledger (read and verify), users and
//! API tokens, the dataset registry and lineage.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use steward_core::Error;
use steward_core::access::Role;
use steward_core::audit::LedgerEntry;
use steward_core::registry::DatasetVersion;

use crate::AppState;
use crate::error::ApiResult;
use crate::request::Fields;

/// One ledger entry as JSON (the API's and `steward audit export`'s shape).
pub fn ledger_entry_json(e: &LedgerEntry) -> Value {
    json!({
        "seq": e.seq,
        "time": e.time,
        "actor": e.actor,
        "action": e.action,
        "entity_kind": e.entity_kind,
        "entity_id": e.entity_id,
        "reason": e.reason,
        "payload_digest": e.payload_digest,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// `GET /api/steward/v1/audit?after=SEQ&limit=N`: entries after `after`, oldest first.
pub async fn ledger(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let after = f.opt_i64("after")?.unwrap_or(0);
    let limit = f.opt_i64("limit")?.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(steward_core::Error::invalid(format!("limit must be between 1 and 10000, got {limit}")).into());
    }
    let entries = s.store.ledger(after, limit).await?;
    let next = entries.last().filter(|_| entries.len() as i64 == limit).map(|e| e.seq);
    Ok(Json(json!({ "entries": entries.iter().map(ledger_entry_json).collect::<Vec<_>>(), "next_after": next })))
}

/// `GET /api/steward/v1/audit/verify`: walks the chain.
pub async fn verify(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let checkpoints = s.checkpoints().await?;
    let anchored = checkpoints.iter().map(|c| c.seq).max();
    Ok(Json(match s.store.verify_ledger(&checkpoints).await? {
        Ok(n) => json!({ "intact": true, "entries": n, "checkpoints": checkpoints.len(), "anchored_through": anchored }),
        Err(b) => json!({ "intact": false, "broken_at": b.seq, "reason": b.reason, "checkpoints": checkpoints.len() }),
    }))
}

/// `POST /api/steward/v1/users {name, role}` (admin).
pub async fn create_user(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let name = f.str("name")?;
    let role = Role::parse(&f.str("role")?)?;
    s.store.create_user(f.audit(), &name, role).await?;
    let user = s.store.users().await?.into_iter().find(|u| u.name == name);
    Ok(Json(json!({ "user": user })))
}

/// `GET /api/steward/v1/users` (admin): every user, deleted ones included.
pub async fn users(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "users": s.store.users().await? })))
}

/// `PATCH /api/steward/v1/users/NAME {role?, disabled?}` (admin).
pub async fn update_user(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    known_fields(&f, &["role", "disabled"])?;
    let role = f.opt_str("role")?.map(|r| Role::parse(&r)).transpose()?;
    let disabled = f.opt_bool("disabled")?;
    if role.is_none() && disabled.is_none() {
        return Err(Error::invalid("nothing to change: give 'role' or 'disabled'").into());
    }
    Ok(Json(json!({ "user": s.store.update_user(f.audit(), &name, role, disabled).await? })))
}

/// `DELETE /api/steward/v1/users/NAME` (admin): revokes the user's tokens; the name stays taken.
pub async fn delete_user(State(s): State<AppState>, Path(name): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    s.store.delete_user(f.audit(), &name).await?;
    Ok(Json(json!({})))
}

/// `POST /api/steward/v1/tokens {user, label, expires_in_days?}` (admin): the clear token is
/// in this answer only.
pub async fn create_token(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    known_fields(&f, &["user", "label", "expires_in_days"])?;
    let user = f.str("user")?;
    let label = f.opt_str("label")?.unwrap_or_default();
    let expires_at = match f.opt_i64("expires_in_days")? {
        None => None,
        Some(d) if (1..=3650).contains(&d) => Some(crate::serving::now_ms() + d * 86_400_000),
        Some(d) => return Err(Error::invalid(format!("expires_in_days must be between 1 and 3650, got {d}")).into()),
    };
    let (token, info) = s.store.create_token(f.audit(), &user, &label, expires_at).await?;
    Ok(Json(json!({ "user": user, "token": token, "token_info": info })))
}

/// `GET /api/steward/v1/tokens?user=NAME` (admin): token records, never the tokens.
pub async fn tokens(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let user = f.opt_str("user")?;
    Ok(Json(json!({ "tokens": s.store.tokens(user.as_deref()).await? })))
}

/// `DELETE /api/steward/v1/tokens/ID` (admin): refused from the next request on.
pub async fn revoke_token(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "token": s.store.revoke_token(f.audit(), &id).await? })))
}

/// Refuses JSON fields a route does not know (`steward_reason` is always allowed).
fn known_fields(f: &Fields, known: &[&str]) -> Result<(), Error> {
    for key in f.json().into_iter().flat_map(|m| m.keys()) {
        if key != "steward_reason" && !known.contains(&key.as_str()) {
            return Err(Error::invalid(format!("unknown field '{key}' (fields: {})", known.join(", "))));
        }
    }
    Ok(())
}

/// `POST /api/steward/v1/datasets` with `{name, fingerprint, artifact_uri, format, rows,
/// schema, profile}`: a new version of the dataset, or the existing one with that content
/// (`created: false`).
pub async fn register_dataset(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let body = f.json().cloned().unwrap_or_default();
    let format = f.str("format")?;
    if format != "csv" && format != "parquet" {
        return Err(steward_core::Error::invalid(format!("format must be csv or parquet, got '{format}'")).into());
    }
    let version = DatasetVersion {
        name: f.str("name")?,
        version: 0,
        fingerprint: f.str("fingerprint")?,
        artifact_uri: f.str("artifact_uri")?,
        format,
        rows: f.i64("rows")?,
        schema: body.get("schema").cloned().unwrap_or(Value::Null),
        profile: body.get("profile").cloned().unwrap_or(Value::Null),
        creation_time: 0,
        created_by: String::new(),
    };
    let (stored, created) = s.store.register_dataset(f.audit(), &version).await?;
    Ok(Json(json!({ "dataset_version": stored, "created": created })))
}

/// `GET /api/steward/v1/datasets/NAME`: every version, oldest first.
pub async fn dataset_versions(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "versions": s.store.dataset_versions(&name).await? })))
}

/// The deployments whose routes serve this version now.
fn serving(s: &AppState, model: &str, version: i64) -> Vec<Value> {
    s.serving
        .all_routes()
        .iter()
        .flat_map(|r| r.serving(model, version).into_iter().map(|role| json!({ "deployment": r.spec.name, "role": role.as_str() })))
        .collect()
}

/// `GET /api/steward/v1/datasets/NAME/versions/V/lineage`: the runs that took this version as
/// input, the model versions they produced, and the deployments serving those.
pub async fn dataset_lineage(State(s): State<AppState>, Path((name, version)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    let d = s.store.get_dataset(&name, version).await?;
    let lineage = s.store.dataset_lineage(&d).await?;
    let versions: Vec<Value> = lineage
        .model_versions
        .iter()
        .map(|(m, v)| json!({ "name": m, "version": v.to_string(), "deployments": serving(&s, m, *v) }))
        .collect();
    Ok(Json(json!({ "dataset_version": d, "runs": lineage.runs, "model_versions": versions })))
}

/// `GET /api/steward/v1/registry/models/NAME/versions/V/lineage`: the version's run, the
/// datasets that run took as input (with the registered versions they match), and the
/// deployments serving it.
pub async fn model_lineage(State(s): State<AppState>, Path((name, version)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    let mv = s.store.get_model_version(&name, version).await?;
    let run_id = mv.run_id.clone().filter(|r| !r.is_empty());
    let mut inputs = Vec::new();
    let mut registered = Vec::new();
    if let Some(run) = &run_id {
        let r = s.store.get_run(run).await?;
        let digests: Vec<String> = r.dataset_inputs.iter().map(|i| i.dataset.digest.clone()).collect();
        inputs = r.dataset_inputs.iter().map(|i| json!({ "name": i.dataset.name, "digest": i.dataset.digest, "source": i.dataset.source })).collect();
        registered = s.store.datasets_by_digest(&digests).await?;
    }
    Ok(Json(json!({
        "model_version": { "name": name, "version": version.to_string(), "run_id": run_id },
        "inputs": inputs,
        "dataset_versions": registered,
        "deployments": serving(&s, &name, version),
    })))
}

/// `GET /api/steward/v1/incidents?deployment=NAME`: the agent's incidents, oldest first.
pub async fn incidents(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let deployment = f.opt_str("deployment")?;
    Ok(Json(json!({ "incidents": s.store.incidents(deployment.as_deref()).await? })))
}

/// `GET /api/steward/v1/agent/actions?status=pending`: the agent's actions; `pending` ones are
/// the approval queue.
pub async fn agent_actions(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let status = f.opt_str("status")?;
    Ok(Json(json!({ "actions": s.store.actions(status.as_deref()).await? })))
}

/// `POST /api/steward/v1/agent/actions/ID/decision` with `{"decision": "approve"|"reject",
/// "reason": ...}`: a validator's or admin's decision on a pending action (the route needs the
/// approve right; an open server lets its loopback callers decide). Approving a promotion follows the
/// four-eyes rule: not by the challenger version's creator.
pub async fn decide_action(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult<Json<Value>> {
    let approve = match f.str("decision")?.as_str() {
        "approve" => true,
        "reject" => false,
        other => return Err(steward_core::Error::invalid(format!("decision must be 'approve' or 'reject', got '{other}'")).into()),
    };
    let reason = f.str("reason")?;
    // Four eyes: approving a promotion is promoting, which the challenger's creator may not do.
    if approve
        && let Some(p) = f.principal()
        && let Some(a) = s.store.actions(Some("pending")).await?.into_iter().find(|a| a.id == id && a.kind == "promote")
        && let Some(challenger) = s.serving.routes(&a.deployment).and_then(|r| r.challenger.clone())
    {
        let mv = s.store.get_model_version(&challenger.model, challenger.version).await?;
        steward_core::access::authorize_promotion(p, &mv.created_by, &format!("the promotion on deployment '{}'", a.deployment), &challenger.model, &challenger.version.to_string())?;
    }
    Ok(Json(json!({ "action": s.store.decide_action(f.audit(), &id, approve, &reason).await? })))
}
