//! Authentication and coarse authorisation for every request: API tokens as
//! `Authorization: Bearer TOKEN` (what `MLFLOW_TRACKING_TOKEN` sends) or as the password of
//! HTTP basic auth (`MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`).
//!
//! In open mode (no users exist, loopback only) every caller is `anonymous` and nothing is
//! refused; promotions' role and four-eyes rules apply only to authenticated principals.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use steward_core::access::{Need, Principal, authorize};
use steward_core::{Error, ErrorCode};

use crate::AppState;
use crate::error::ApiError;
use crate::request::Actor;

/// Whether requests must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Open,
    Required,
}

fn is_public(path: &str) -> bool {
    // The UI's page, script and style carry no data: its views call the API with credentials.
    matches!(path, "/" | "/ui/app.js" | "/ui/app.css" | "/health" | "/version" | "/api/3.0/mlflow/server-info" | "/ajax-api/3.0/mlflow/server-info" | "/metrics" | "/v2/health/live" | "/v2/health/ready")
}

/// What a request needs, from its method and path: reads are GETs and the POSTs that only
/// read (searches, and `get-latest-versions`, which the client sends as a POST).
fn need(method: &Method, path: &str) -> Need {
    if path.starts_with("/api/steward/v1/users") || path.starts_with("/api/steward/v1/tokens") {
        return if method == Method::GET { Need::Read } else { Need::Admin };
    }
    // Scoring changes nothing but the prediction log: any authenticated caller may score.
    let scoring = path.starts_with("/v2/") || path.starts_with("/v1/models/") || (path.starts_with("/deployments/") && path.ends_with("/invocations"));
    if scoring || method == Method::GET || method == Method::HEAD || path.ends_with("/search") || path.ends_with("/get-latest-versions") {
        Need::Read
    } else {
        Need::Write
    }
}

/// 401 with MLflow's error body. The Basic challenge (`WWW-Authenticate`) is left out for
/// scripted browser requests (`X-Requested-With`, which the web UI sends): a browser would
/// otherwise put up its own password dialog instead of letting the page ask for a token.
fn unauthenticated(req: &Request, message: &str) -> Response {
    let mut resp = ApiError(Error::new(ErrorCode::Unauthenticated, message)).into_response();
    if !req.headers().contains_key("x-requested-with") {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"steward\""));
    }
    resp
}

/// `(token, claimed user)` from the Authorization header.
fn credentials(req: &Request) -> Option<Result<(String, Option<String>), &'static str>> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    Some(match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Ok((rest.trim().to_owned(), None)),
        "basic" => base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (p.to_owned(), Some(u.to_owned()))))
            .ok_or("malformed basic credentials"),
        _ => Err("unsupported authorization scheme: use Bearer or Basic"),
    })
}

pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if s.auth == AuthMode::Open || is_public(req.uri().path()) {
        req.extensions_mut().insert(Actor("anonymous".into()));
        return next.run(req).await;
    }
    let (token, claimed) = match credentials(&req) {
        None => {
            return unauthenticated(
                &req,
                "authentication required: send an API token as 'Authorization: Bearer TOKEN' (MLFLOW_TRACKING_TOKEN) or as the password of HTTP basic auth",
            );
        }
        Some(Err(why)) => return unauthenticated(&req, why),
        Some(Ok(c)) => c,
    };
    let principal = match s.store.authenticate(&token).await {
        Ok(Some(p)) => p,
        Ok(None) => return unauthenticated(&req, "invalid API token"),
        Err(e) => return ApiError(e).into_response(),
    };
    if claimed.as_deref().is_some_and(|u| u != principal.name) {
        return unauthenticated(&req, "the token does not belong to the user name given");
    }
    if let Err(e) = authorize(&principal, need(req.method(), req.uri().path())) {
        return ApiError(e).into_response();
    }
    req.extensions_mut().insert(Actor(principal.name.clone()));
    req.extensions_mut().insert::<Principal>(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_are_reads_and_user_management_is_admin() {
        assert_eq!(need(&Method::POST, "/api/2.0/mlflow/runs/search"), Need::Read);
        assert_eq!(need(&Method::GET, "/api/2.0/mlflow/runs/get"), Need::Read);
        assert_eq!(need(&Method::POST, "/api/2.0/mlflow/runs/create"), Need::Write);
        assert_eq!(need(&Method::PUT, "/api/2.0/mlflow-artifacts/artifacts/a"), Need::Write);
        assert_eq!(need(&Method::POST, "/api/steward/v1/users"), Need::Admin);
        assert_eq!(need(&Method::POST, "/api/2.0/mlflow/registered-models/get-latest-versions"), Need::Read);
        assert_eq!(need(&Method::POST, "/v2/models/fraud/infer"), Need::Read);
        assert_eq!(need(&Method::POST, "/deployments/fraud/invocations"), Need::Read);
        assert_eq!(need(&Method::POST, "/api/steward/v1/deployments"), Need::Write);
    }
}
