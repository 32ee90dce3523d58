//! Authentication for every request and the permission check every route carries: API tokens
//! as `Authorization: Bearer TOKEN` (what `MLFLOW_TRACKING_TOKEN` sends) or as the password of
//! HTTP basic auth (`MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`).
//!
//! In open mode (no users exist, loopback only) every caller is `anonymous` and may do
//! everything but manage users and tokens; promotions' role and four-eyes rules apply only
//! to authenticated principals. The first user closes open mode without a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use steward_core::access::{Perm, Principal, authorize};
use steward_core::{Error, ErrorCode};

use crate::AppState;
use crate::error::ApiError;
use crate::request::Actor;

/// Whether requests must authenticate, as the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No users exist: loopback callers are anonymous, until the first user is created.
    Open,
    Required,
}

/// How long an open server trusts its last "no users yet" answer. Users are created only by
/// the CLI on the server's machine (the API is closed to anonymous callers), writing to the
/// database directly, so the server must look; it looks at most this often.
pub const OPEN_RECHECK: Duration = Duration::from_secs(1);

/// Whether requests must authenticate now. An open server closes for good once a user exists
/// (a deleted user's tombstone counts): it opens again only if restarted on a store that
/// never had a user.
pub struct Gate {
    required: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the last look that found no users (0: never looked).
    open_checked: AtomicU64,
}

impl Gate {
    pub fn new(mode: AuthMode) -> Self {
        Gate { required: AtomicBool::new(mode == AuthMode::Required), started: Instant::now(), open_checked: AtomicU64::new(0) }
    }

    /// Whether anonymous callers are served. A store that cannot answer keeps the gate shut.
    async fn open(&self, store: &dyn steward_store::MetadataStore) -> bool {
        if self.required.load(Ordering::Acquire) {
            return false;
        }
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        let last = self.open_checked.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < OPEN_RECHECK.as_millis() as u64 {
            return true;
        }
        match store.has_users().await {
            Ok(false) => {
                self.open_checked.store(now, Ordering::Release);
                true
            }
            Ok(true) => {
                self.required.store(true, Ordering::Release);
                tracing::info!("a user exists: authentication is required from now on");
                false
            }
            Err(e) => {
                tracing::warn!("cannot tell whether users exist, so requiring authentication: {}", e.message());
                false
            }
        }
    }

    /// Whether the server requires authentication now (open mode has ended).
    pub fn is_required(&self) -> bool {
        self.required.load(Ordering::Acquire)
    }
}

/// Who is calling, as the auth layer found out; each route's [`enforce`] decides with it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An open server's anonymous caller.
    Open,
    /// No credentials.
    Nobody,
    /// Credentials that do not hold, and why.
    Refused(&'static str),
    User(Principal),
}

/// The header a pipeline started by a running agent action sends with its deployment change
/// (from `STEWARD_AGENT_ACTION`): it lends that action's deploy right to a scientist's token,
/// for the change the action may make (the handler checks both).
pub const AGENT_ACTION_HEADER: &str = "x-steward-agent-action";

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
    let value = req.headers().get(header::AUTHORIZATION)?;
    let Some((scheme, rest)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Some(Err("malformed Authorization header: expected 'Bearer TOKEN' or 'Basic CREDENTIALS'"));
    };
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

/// Works out who is calling and puts it into the request. It refuses nothing itself: the
/// route decides, so a public route answers whatever credentials come with it.
pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = if s.auth.open(s.store.as_ref()).await {
        Caller::Open
    } else {
        match credentials(&req) {
            None => Caller::Nobody,
            Some(Err(why)) => Caller::Refused(why),
            Some(Ok((token, claimed))) => match s.store.authenticate(&token).await {
                Ok(Some(p)) if claimed.as_deref().is_some_and(|u| u != p.name) => Caller::Refused("the token does not belong to the user name given"),
                Ok(Some(p)) => Caller::User(p),
                Ok(None) => Caller::Refused("invalid API token: unknown, revoked or expired, or its user is disabled"),
                Err(e) => return ApiError(e).into_response(),
            },
        }
    };
    let actor = match &caller {
        Caller::User(p) => {
            req.extensions_mut().insert::<Principal>(p.clone());
            p.name.clone()
        }
        _ => "anonymous".to_owned(),
    };
    req.extensions_mut().insert(Actor(actor));
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The permission check every route carries (the route table puts it there): `perm` against
/// the caller the auth layer found.
pub async fn enforce(perm: Perm, req: Request, next: Next) -> Response {
    if perm == Perm::Public {
        return next.run(req).await;
    }
    let caller = req.extensions().get::<Caller>().cloned().unwrap_or(Caller::Nobody);
    let verdict = match &caller {
        Caller::User(p) => {
            let lent = perm == Perm::DeployOrAgentAction && p.role.grants(Perm::Write) && req.headers().contains_key(AGENT_ACTION_HEADER);
            if lent { Ok(()) } else { authorize(p, perm) }
        }
        Caller::Open if perm == Perm::Admin => Err(Error::new(
            ErrorCode::PermissionDenied,
            "the user and token API is closed to anonymous callers: create the first user on the server's machine with `steward user create NAME --role admin` and `steward token create --user NAME`, then authenticate",
        )),
        Caller::Open => Ok(()),
        Caller::Nobody => {
            return unauthenticated(
                &req,
                "authentication required: send an API token as 'Authorization: Bearer TOKEN' (MLFLOW_TRACKING_TOKEN) or as the password of HTTP basic auth",
            );
        }
        Caller::Refused(why) => return unauthenticated(&req, why),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}
