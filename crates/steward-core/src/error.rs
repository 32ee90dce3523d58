//! The one table that maps every Steward error to its wire code and HTTP status.
//!
//! Codes and statuses are MLflow's (`mlflow/protos/databricks.proto` and
//! `mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS`) so that the unmodified `mlflow` client
//! raises the `MlflowException` its users expect. Steward's own API answers with the same
//! shape.

use std::fmt;

/// Who is at fault is encoded in the code: 4xx codes are the caller's, 5xx are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    PermissionDenied,
    Unauthenticated,
    BadRequest,
    EndpointNotFound,
    MethodNotAllowed,
    RequestTooLarge,
    ResourceConflict,
    RequestLimitExceeded,
    TemporarilyUnavailable,
    NotImplemented,
    InvalidState,
    InternalError,
}

/// `(code, wire name, HTTP status)`: the single source of truth for both directions.
const TABLE: &[(ErrorCode, &str, u16)] = &[
    (ErrorCode::InvalidParameterValue, "INVALID_PARAMETER_VALUE", 400),
    (ErrorCode::ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS", 400),
    (ErrorCode::ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST", 404),
    (ErrorCode::PermissionDenied, "PERMISSION_DENIED", 403),
    (ErrorCode::Unauthenticated, "UNAUTHENTICATED", 401),
    (ErrorCode::BadRequest, "BAD_REQUEST", 400),
    (ErrorCode::EndpointNotFound, "ENDPOINT_NOT_FOUND", 404),
    (ErrorCode::MethodNotAllowed, "METHOD_NOT_ALLOWED", 405),
    (ErrorCode::RequestTooLarge, "REQUEST_TOO_LARGE", 413),
    (ErrorCode::ResourceConflict, "RESOURCE_CONFLICT", 409),
    (ErrorCode::RequestLimitExceeded, "REQUEST_LIMIT_EXCEEDED", 429),
    (ErrorCode::TemporarilyUnavailable, "TEMPORARILY_UNAVAILABLE", 503),
    (ErrorCode::NotImplemented, "NOT_IMPLEMENTED", 501),
    (ErrorCode::InvalidState, "INVALID_STATE", 500),
    (ErrorCode::InternalError, "INTERNAL_ERROR", 500),
];

impl ErrorCode {
    fn row(self) -> &'static (ErrorCode, &'static str, u16) {
        TABLE
            .iter()
            .find(|(code, _, _)| *code == self)
            .expect("every ErrorCode has a row in TABLE")
    }

    /// The wire name, e.g. `RESOURCE_DOES_NOT_EXIST`.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The HTTP status MLflow answers with for this code.
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    /// Parses a wire name back into a code (used by clients and tests).
    pub fn parse(name: &str) -> Option<ErrorCode> {
        TABLE.iter().find(|(_, n, _)| *n == name).map(|(c, _, _)| *c)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Steward error: a code from [`TABLE`] and a message that names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
    pub fn code(&self) -> ErrorCode {
        self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for (code, name, _) in TABLE {
            assert_eq!(code.as_str(), *name);
            assert_eq!(ErrorCode::parse(name), Some(*code));
        }
    }

    #[test]
    fn statuses_follow_mlflow() {
        assert_eq!(ErrorCode::InvalidParameterValue.http_status(), 400);
        assert_eq!(ErrorCode::ResourceAlreadyExists.http_status(), 400);
        assert_eq!(ErrorCode::ResourceDoesNotExist.http_status(), 404);
        assert_eq!(ErrorCode::PermissionDenied.http_status(), 403);
        assert_eq!(ErrorCode::Unauthenticated.http_status(), 401);
        assert_eq!(ErrorCode::InternalError.http_status(), 500);
    }
}
