//! Turns domain errors into MLflow-shaped HTTP error responses:
//! `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}` with the status from
//! `steward_core::error`'s table.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use steward_core::{Error, ErrorCode};

/// The error every handler returns.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error_code = %code, message = %self.0.message(), "request failed");
        }
        let body = serde_json::json!({ "error_code": code.as_str(), "message": self.0.message() });
        (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

/// The answer for paths no route matches.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::new(ErrorCode::EndpointNotFound, format!("no endpoint at {}", uri.path())))
}

/// Gives the refusals the framework makes itself — a path parameter of the wrong type, a body
/// over the route's limit, a method the path does not take — the error shape every other
/// refusal has (`{error_code, message}`), keeping their status (405, 413) or answering 400.
pub async fn json_refusals(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("none");
            Error::new(ErrorCode::MethodNotAllowed, format!("{path} does not take {method}; it takes {allowed}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => Error::new(ErrorCode::RequestTooLarge, format!("the body sent to {path} is larger than it accepts: {text}")),
        _ => Error::new(ErrorCode::BadRequest, if text.is_empty() { format!("bad request to {path}") } else { text }),
    };
    let mut out = ApiError(error).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    out
}
