//! Request fields, read the way MLflow reads them: query parameters for GET (repeated keys
//! for lists), a JSON object body for everything else. Accessors check types and name the
//! offending field in MLflow's words.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use serde_json::{Map, Value};
use steward_core::access::Principal;
use steward_core::audit::Audit;
use steward_core::entities::Tag;
use steward_core::validation::missing_value;
use steward_core::{Error, ErrorCode};

use crate::error::ApiError;

/// Largest JSON body accepted (MLflow's log-batch limit is 1 MB; leave headroom).
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// The fields of a request, with the audit context of whoever sent it.
pub struct Fields {
    data: Data,
    audit: Audit,
    principal: Option<Principal>,
    /// The running agent action a pipeline acts for (`X-Steward-Agent-Action`), unchecked.
    agent_action: Option<String>,
}

enum Data {
    Json(Map<String, Value>),
    Query(Vec<(String, String)>),
}

/// The authenticated caller, put into request extensions by the auth layer.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The header that carries a human reason for a mutation into the audit ledger.
pub const REASON_HEADER: &str = "x-steward-reason";

fn type_error(key: &str, value: &Value, want: &str) -> Error {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    };
    Error::invalid(format!(
        "Invalid value {value} for parameter '{key}' supplied: expected {want}. Hint: Value was of type '{kind}'. See the API docs for more information about request parameters."
    ))
}

/// A non-empty text header.
fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).filter(|r| !r.is_empty())
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let actor = req.extensions().get::<Actor>().map(|a| a.0.clone()).unwrap_or_else(|| "anonymous".into());
        let principal = req.extensions().get::<Principal>().cloned();
        let reason = header(req.headers(), REASON_HEADER);
        let agent_action = header(req.headers(), crate::auth::AGENT_ACTION_HEADER);
        if req.method() == Method::GET || req.method() == Method::DELETE && req.uri().query().is_some() {
            let query = req.uri().query().unwrap_or("");
            let pairs = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            return Ok(Fields { data: Data::Query(pairs), audit: Audit::new(actor, reason, query.as_bytes()), principal, agent_action });
        }
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            ApiError(Error::new(ErrorCode::InvalidParameterValue, format!("could not read the request body: {e}")))
        })?;
        let mut audit = Audit::new(actor, reason, &body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields { data: Data::Json(Map::new()), audit, principal, agent_action });
        }
        match content_type.as_deref().map(|c| c.split(';').next().unwrap_or("").trim()) {
            None => return Err(ApiError(Error::invalid("Bad Request. Content-Type header is missing."))),
            Some("application/json") => {}
            Some(other) => {
                return Err(ApiError(Error::invalid(format!(
                    "Bad Request. Content-Type must be one of ['application/json'], got '{other}'."
                ))));
            }
        }
        let mut value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError(Error::invalid(format!("Malformed JSON in request body: {e}"))))?;
        // Older clients double-encode their JSON as a string.
        if let Value::String(s) = &value {
            value = serde_json::from_str(s).map_err(|e| ApiError(Error::invalid(format!("Malformed JSON in request body: {e}"))))?;
        }
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("steward_reason").filter(|_| audit.reason.is_none()) {
                    audit.reason = Some(r.clone());
                }
                Ok(Fields { data: Data::Json(map), audit, principal, agent_action })
            }
            other => Err(ApiError(Error::invalid(format!("The request body must be a JSON object, got {other}")))),
        }
    }
}

impl Fields {
    /// Who sent this request, why, and the digest of what they sent.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The authenticated caller; `None` on an open server.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The agent action this request says it acts for (`X-Steward-Agent-Action`), not yet
    /// checked against the running actions.
    pub fn agent_action(&self) -> Option<&str> {
        self.agent_action.as_deref()
    }

    /// The top-level JSON fields (empty for query-string requests).
    pub fn json(&self) -> Option<&Map<String, Value>> {
        match &self.data {
            Data::Json(m) => Some(m),
            Data::Query(_) => None,
        }
    }

    fn get(&self, key: &str) -> Option<Value> {
        match &self.data {
            Data::Json(m) => m.get(key).filter(|v| !v.is_null()).cloned(),
            Data::Query(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| Value::String(v.clone())),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(type_error(key, &v, "a string")),
        }
    }

    /// A required, non-empty string.
    pub fn str(&self, key: &str) -> Result<String, Error> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(missing_value(key)),
        }
    }

    /// `run_id`, falling back to the legacy `run_uuid`.
    pub fn run_id(&self) -> Result<String, Error> {
        match self.opt_str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self.str("run_uuid").map_err(|_| missing_value("run_id")),
        }
    }

    /// An int64: a JSON integer or a string holding one (protobuf's JSON mapping).
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => value_i64(key, &v).map(Some),
        }
    }

    /// A boolean: JSON `true`/`false`, or the strings `true`/`false` in a query.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(v) => Err(type_error(key, &v, "a boolean")),
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64, Error> {
        self.opt_i64(key)?.ok_or_else(|| missing_value(key))
    }

    /// A repeated string field.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, Error> {
        match &self.data {
            Data::Query(pairs) => Ok(pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()),
            Data::Json(m) => match m.get(key) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        other => Err(type_error(key, other, "a list of strings")),
                    })
                    .collect(),
                Some(v) => Err(type_error(key, v, "a list of strings")),
            },
        }
    }

    /// A repeated message field, as JSON objects.
    pub fn objects(&self, key: &str) -> Result<Vec<Map<String, Value>>, Error> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(m),
                    other => Err(type_error(&format!("{key}[{i}]"), &other, "an object")),
                })
                .collect(),
            Some(v) => Err(type_error(key, &v, "a list")),
        }
    }

    /// A repeated `{key, value}` field.
    pub fn tags(&self, key: &str) -> Result<Vec<Tag>, Error> {
        self.objects(key)?
            .iter()
            .enumerate()
            .map(|(i, o)| tag_from(&format!("{key}[{i}]"), o))
            .collect()
    }
}

pub fn value_i64(key: &str, v: &Value) -> Result<i64, Error> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| type_error(key, v, "an integer (int64)"))
}

pub fn value_f64(key: &str, v: &Value) -> Result<f64, Error> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.trim().parse::<f64>().ok(),
        },
        _ => None,
    }
    .ok_or_else(|| type_error(key, v, "a double"))
}

pub fn obj_str(path: &str, o: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_error(&format!("{path}.{key}"), v, "a string")),
    }
}

pub fn tag_from(path: &str, o: &Map<String, Value>) -> Result<Tag, Error> {
    let key = obj_str(path, o, "key")?.filter(|k| !k.is_empty()).ok_or_else(|| missing_value(&format!("{path}.key")))?;
    let value = obj_str(path, o, "value")?.unwrap_or_default();
    Ok(Tag { key, value })
}
