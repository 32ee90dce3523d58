//! The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`): streamed upload,
//! download, one-level listing and deletion against the configured artifact store.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Value, json};
use steward_core::Error;
use steward_core::audit::{Audit, ContentHasher};
use steward_store::FileInfo;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::request::{Actor, Fields, REASON_HEADER};

/// `{"path", "is_dir", "file_size"?}`: `is_dir` always present (the client indexes it), size
/// omitted for directories and empty files, as MLflow does.
pub fn file_info_json(path: &str, fi: &FileInfo) -> Value {
    let mut v = json!({ "path": path, "is_dir": fi.is_dir });
    if let Some(size) = fi.file_size.filter(|s| *s > 0) {
        v["file_size"] = json!(size);
    }
    v
}

fn check_path(path: &str) -> Result<(), Error> {
    let decoded = url::form_urlencoded::parse(path.as_bytes()).map(|(k, v)| format!("{k}{v}")).collect::<String>();
    let bad = |p: &str| p.starts_with('/') || p.contains('\\') || p.contains('#') || p.split('/').any(|s| s == "..") || p.contains("://");
    if bad(path) || bad(&decoded) {
        return Err(Error::invalid("Invalid path"));
    }
    Ok(())
}

/// The audit context of a request handled without `Fields` (the artifact proxy).
fn audit_of(req_parts: &axum::http::request::Parts, payload_digest: String) -> Audit {
    let actor = req_parts.extensions.get::<Actor>().map(|a| a.0.clone()).unwrap_or_else(|| "anonymous".into());
    let reason = req_parts.headers.get(REASON_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned).filter(|r| !r.is_empty());
    Audit { actor, reason, payload_digest }
}

pub async fn upload(State(s): State<AppState>, Path(path): Path<String>, req: Request) -> ApiResult<Response> {
    check_path(&path)?;
    if path.ends_with('/') {
        return Err(Error::invalid("Artifact path must include a filename (cannot end with '/').").into());
    }
    let (parts, body) = req.into_parts();
    // The ledger records the uploaded content's SHA-256, computed as it streams through.
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(ContentHasher::default()));
    let h = hasher.clone();
    let stream = body.into_data_stream().map_ok(move |chunk| {
        h.lock().expect("hasher").update(&chunk);
        chunk
    });
    s.artifacts.put_stream(&path, stream).await?;
    let digest = std::mem::take(&mut *hasher.lock().expect("hasher")).finish();
    s.store.record_mutation(&audit_of(&parts, digest), "artifact.upload", "artifact", &path).await?;
    Ok(StatusCode::OK.into_response())
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" | "py" | "yaml" | "yml" | "csv" | "mlmodel" => "text/plain",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

pub async fn download(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    check_path(&path)?;
    let (size, stream) = match s.artifacts.get(&path).await {
        Ok(found) => found,
        Err(e) if e.code() == steward_core::ErrorCode::ResourceDoesNotExist => {
            if !s.artifacts.list(&path).await?.is_empty() {
                return Err(Error::invalid(format!("Artifact path refers to a directory, not a file: '{path}'")).into());
            }
            return Err(Error::not_found(format!("No such artifact: '{path}'")).into());
        }
        Err(e) => return Err(e.into()),
    };
    let body = Body::from_stream(stream.map_err(|e| std::io::Error::other(e.message().to_owned())));
    let filename = path.rsplit('/').next().unwrap_or("artifact").replace('"', "");
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Lists `sub` under an `mlflow-artifacts:/` root as `{root_uri, files}` with root-relative
/// paths (the shape of `artifacts/list` and the logged-model directory listing).
pub async fn list_under(s: &AppState, root: &str, sub: &str) -> Result<Value, ApiError> {
    let Some(rel_root) = root.strip_prefix("mlflow-artifacts:/") else {
        return Err(Error::invalid(format!(
            "artifacts live at '{root}', which this server does not proxy; read them from that location directly"
        ))
        .into());
    };
    let prefix = sub.trim_matches('/');
    check_path(prefix)?;
    let dir = if prefix.is_empty() { rel_root.to_owned() } else { format!("{}/{prefix}", rel_root.trim_end_matches('/')) };
    let files: Vec<Value> = s
        .artifacts
        .list(&dir)
        .await?
        .iter()
        .map(|fi| {
            let p = if prefix.is_empty() { fi.path.clone() } else { format!("{prefix}/{}", fi.path) };
            file_info_json(&p, fi)
        })
        .collect();
    let mut body = json!({ "root_uri": root });
    if !files.is_empty() {
        body["files"] = Value::Array(files);
    }
    Ok(body)
}

pub async fn list(State(s): State<AppState>, f: Fields) -> ApiResult<Json<Value>> {
    let path = f.opt_str("path")?.unwrap_or_default();
    check_path(&path)?;
    let files: Vec<Value> = s.artifacts.list(&path).await?.iter().map(|fi| file_info_json(&fi.path, fi)).collect();
    Ok(Json(if files.is_empty() { json!({}) } else { json!({ "files": files }) }))
}

pub async fn delete(State(s): State<AppState>, Path(path): Path<String>, req: Request) -> ApiResult<Json<Value>> {
    check_path(&path)?;
    s.artifacts.delete(&path).await.map_err(ApiError)?;
    let (parts, _) = req.into_parts();
    s.store.record_mutation(&audit_of(&parts, steward_core::audit::sha256_hex(b"")), "artifact.delete", "artifact", &path).await?;
    Ok(Json(json!({})))
}
