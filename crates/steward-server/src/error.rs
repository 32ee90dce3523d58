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
