//! Steward's own API under `/api/steward/v1`: the audit ledger (read and verify), users and
//! API tokens.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use steward_core::audit::LedgerEntry;

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
    Ok(Json(match s.store.verify_ledger().await? {
        Ok(n) => json!({ "intact": true, "entries": n }),
        Err(b) => json!({ "intact": false, "broken_at": b.seq, "reason": b.reason }),
    }))
}

/// `POST /api/steward/v1/users {name, role}` (admin).
pub async fn create_user(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let name = f.str("name")?;
    let role = steward_core::access::Role::parse(&f.str("role")?)?;
    s.store.create_user(f.audit(), &name, role).await?;
    Ok(Json(json!({ "user": { "name": name, "role": role.as_str() } })))
}

/// `POST /api/steward/v1/tokens {user, label}` (admin): the clear token is shown once.
pub async fn create_token(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let user = f.str("user")?;
    let label = f.opt_str("label")?.unwrap_or_default();
    let token = s.store.create_token(f.audit(), &user, &label).await?;
    Ok(Json(json!({ "user": user, "token": token })))
}
