//! The OpenAPI 3.1 document of Steward's own API (`/api/steward/v1/…`), generated from the
//! route table: each route's method, path and permission come from its declaration, and its
//! summary, query parameters, body and answer from the [`Doc`] declared beside it. Errors
//! share one shape (`{error_code, message}`) and the statuses of the one error table.

use serde_json::{Map, Value, json};
use steward_core::access::Perm;

use crate::routes::Route;

/// What the document says of a route beyond its method, path and permission.
#[derive(Clone, Copy)]
pub struct Doc {
    pub summary: &'static str,
    /// `(name, JSON type, description)`; all optional.
    pub query: &'static [(&'static str, &'static str, &'static str)],
    /// The JSON body's schema, if the route reads one.
    pub body: Option<fn() -> Value>,
    pub answer: Answer,
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doc").field("summary", &self.summary).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
pub enum Answer {
    /// `application/json` with this schema.
    Json(fn() -> Value),
    /// A text document in one of these media types.
    Text(&'static [&'static str]),
}

// ---- schema shorthands ----

fn string() -> Value {
    json!({ "type": "string" })
}
fn int() -> Value {
    json!({ "type": "integer" })
}
fn number() -> Value {
    // Non-finite metric values are written as null.
    json!({ "type": ["number", "null"] })
}
fn boolean() -> Value {
    json!({ "type": "boolean" })
}
fn any() -> Value {
    json!({})
}
fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}
fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}
/// An object with these properties, of which `required` must be present; others may be.
fn obj(props: &[(&str, Value)], required: &[&str]) -> Value {
    let p: Map<String, Value> = props.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    json!({ "type": "object", "properties": p, "required": required })
}
/// A request body: unknown fields are refused by the handlers, so they are not offered.
fn body(props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut v = obj(props, required);
    v["properties"]["steward_reason"] = json!({ "type": "string", "description": "why: recorded in the audit ledger" });
    v["additionalProperties"] = json!(false);
    v
}
fn one(key: &str, item: Value) -> Value {
    obj(&[(key, item)], &[key])
}
fn list(key: &str, item: Value) -> Value {
    one(key, array(item))
}
fn empty() -> Value {
    json!({ "type": "object" })
}

fn ledger_entry() -> Value {
    obj(
        &[("seq", int()), ("time", int()), ("actor", string()), ("action", string()), ("entity_kind", string()), ("entity_id", string()), ("reason", nullable("string")), ("payload_digest", string()), ("prev_hash", string()), ("hash", string())],
        &["seq", "time", "actor", "action", "entity_kind", "entity_id", "payload_digest", "prev_hash", "hash"],
    )
}
fn user() -> Value {
    obj(
        &[("name", string()), ("role", json!({ "enum": ["viewer", "scientist", "validator", "admin"] })), ("created_at", int()), ("disabled", boolean()), ("deleted_at", int())],
        &["name", "role", "created_at", "disabled"],
    )
}
fn token_info() -> Value {
    obj(&[("id", string()), ("user", string()), ("label", string()), ("created_at", int()), ("expires_at", int()), ("revoked_at", int())], &["id", "user", "label", "created_at"])
}
fn incident() -> Value {
    let analysis = obj(&[("source", string()), ("text", string()), ("created", int())], &["source", "text", "created"]);
    obj(
        &[("id", string()), ("deployment", string()), ("trigger", string()), ("kind", string()), ("evidence", any()), ("status", string()), ("opened", int()), ("analyses", array(analysis))],
        &["id", "deployment", "trigger", "kind", "status", "opened"],
    )
}
fn action() -> Value {
    obj(
        &[
            ("id", string()),
            ("incident_id", string()),
            ("deployment", string()),
            ("kind", string()),
            ("status", json!({ "enum": ["pending", "approved", "rejected", "running", "done", "failed"] })),
            ("reason", string()),
            ("requested", int()),
            ("decided_by", string()),
            ("decision_reason", string()),
            ("outcome", string()),
            ("updated", int()),
        ],
        &["id", "deployment", "kind", "status", "reason", "requested"],
    )
}
fn dataset_version() -> Value {
    obj(
        &[("name", string()), ("version", int()), ("fingerprint", string()), ("artifact_uri", string()), ("format", string()), ("rows", int()), ("schema", any()), ("profile", any()), ("creation_time", int()), ("created_by", string())],
        &["name", "version", "fingerprint", "artifact_uri", "format", "rows"],
    )
}
fn model_ref() -> Value {
    json!({ "type": "string", "description": "models:/NAME@ALIAS (follows the alias) or models:/NAME/VERSION (pinned)" })
}
fn challenger() -> Value {
    obj(&[("model", model_ref()), ("weight", json!({ "type": "integer", "minimum": 0, "maximum": 100 }))], &["model"])
}
fn max_rows() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": steward_core::serving::MAX_ROWS_CEILING })
}
fn deployment() -> Value {
    let route = obj(&[("role", json!({ "enum": ["champion", "challenger", "shadow"] })), ("model", string()), ("version", int()), ("weight", int())], &["role", "model", "version"]);
    obj(
        &[
            ("name", string()),
            ("model", string()),
            ("challenger", challenger()),
            ("shadow", string()),
            ("fallback", string()),
            ("model_ids", json!({ "type": "object", "additionalProperties": { "type": "string" } })),
            ("max_rows_per_request", int()),
            ("routes", array(route)),
            ("state", json!({ "enum": ["not loaded", "failed"] })),
            ("error", string()),
            ("creation_time", int()),
            ("last_updated_time", int()),
            ("created_by", string()),
        ],
        &["name", "model"],
    )
}
fn prediction() -> Value {
    obj(
        &[("id", string()), ("deployment", string()), ("model", string()), ("version", int()), ("route", string()), ("parent_id", string()), ("time", int()), ("latency_us", int()), ("inputs", any()), ("outputs", any()), ("context", any()), ("label", any())],
        &["id", "deployment", "model", "version", "route", "time", "latency_us"],
    )
}

// ---- the routes' documents ----

pub const LEDGER: Doc = Doc {
    summary: "Audit ledger entries after `after`, oldest first",
    query: &[("after", "integer", "sequence number to start after (default 0)"), ("limit", "integer", "1..10000 (default 1000)")],
    body: None,
    answer: Answer::Json(|| obj(&[("entries", array(ledger_entry())), ("next_after", nullable("integer"))], &["entries", "next_after"])),
};
pub const VERIFY: Doc = Doc {
    summary: "Verify the ledger's hash chain and its end against the signed checkpoints",
    query: &[],
    body: None,
    answer: Answer::Json(|| {
        obj(
            &[("intact", boolean()), ("entries", int()), ("checkpoints", int()), ("anchored_through", nullable("integer")), ("broken_at", int()), ("reason", string())],
            &["intact", "checkpoints"],
        )
    }),
};
pub const HISTORY: Doc = Doc {
    summary: "Every alias and stage change of a registered model, oldest first",
    query: &[],
    body: None,
    answer: Answer::Json(|| {
        let event = obj(&[("model", string()), ("kind", string()), ("label", string()), ("version", nullable("string")), ("time", int()), ("actor", string())], &["model", "kind", "label", "time", "actor"]);
        obj(&[("name", string()), ("events", array(event))], &["name", "events"])
    }),
};
pub const ALIAS_AT: Doc = Doc {
    summary: "The version an alias pointed to at a moment (now without `at`)",
    query: &[("at", "integer", "milliseconds since the epoch")],
    body: None,
    answer: Answer::Json(|| obj(&[("name", string()), ("alias", string()), ("at", nullable("integer")), ("version", nullable("string"))], &["name", "alias", "version"])),
};
pub const MODEL_LINEAGE: Doc = Doc {
    summary: "A model version's run, input datasets and serving deployments",
    query: &[],
    body: None,
    answer: Answer::Json(|| {
        obj(&[("model_version", empty()), ("inputs", array(empty())), ("dataset_versions", array(dataset_version())), ("deployments", array(empty()))], &["model_version", "inputs", "dataset_versions", "deployments"])
    }),
};
pub const DOCUMENT: Doc = Doc {
    summary: "A model version's document (validation-report, model-card, annex-iv) built from Steward's records",
    query: &[("format", "string", "html (default) or md")],
    body: None,
    answer: Answer::Text(&["text/html", "text/markdown"]),
};
pub const INCIDENTS: Doc = Doc {
    summary: "The agent's incidents with their evidence and analyses, oldest first",
    query: &[("deployment", "string", "only this deployment's")],
    body: None,
    answer: Answer::Json(|| list("incidents", incident())),
};
pub const ACTIONS: Doc = Doc {
    summary: "The agent's actions; `status=pending` is the approval queue",
    query: &[("status", "string", "pending, approved, rejected, running, done or failed")],
    body: None,
    answer: Answer::Json(|| list("actions", action())),
};
pub const DECIDE: Doc = Doc {
    summary: "Approve or reject a pending agent action (four eyes on promotions)",
    query: &[],
    body: Some(|| body(&[("decision", json!({ "enum": ["approve", "reject"] })), ("reason", string())], &["decision", "reason"])),
    answer: Answer::Json(|| one("action", action())),
};
pub const REGISTER_DATASET: Doc = Doc {
    summary: "Register a dataset version (the same content under the same name is the existing version)",
    query: &[],
    body: Some(|| {
        body(
            &[("name", string()), ("fingerprint", string()), ("artifact_uri", string()), ("format", json!({ "enum": ["csv", "parquet"] })), ("rows", int()), ("schema", nullable("object")), ("profile", nullable("object"))],
            &["name", "fingerprint", "artifact_uri", "format", "rows"],
        )
    }),
    answer: Answer::Json(|| obj(&[("dataset_version", dataset_version()), ("created", boolean())], &["dataset_version", "created"])),
};
pub const DATASET_VERSIONS: Doc = Doc { summary: "Every version of a dataset, oldest first", query: &[], body: None, answer: Answer::Json(|| list("versions", dataset_version())) };
pub const DATASET_LINEAGE: Doc = Doc {
    summary: "The runs that took a dataset version as input, their model versions and deployments",
    query: &[],
    body: None,
    answer: Answer::Json(|| obj(&[("dataset_version", dataset_version()), ("runs", array(string())), ("model_versions", array(empty()))], &["dataset_version", "runs", "model_versions"])),
};
pub const USERS: Doc = Doc { summary: "Every user, deleted ones (tombstones) included", query: &[], body: None, answer: Answer::Json(|| list("users", user())) };
pub const CREATE_USER: Doc = Doc {
    summary: "Create a user",
    query: &[],
    body: Some(|| body(&[("name", string()), ("role", json!({ "enum": ["viewer", "scientist", "validator", "admin"] }))], &["name", "role"])),
    answer: Answer::Json(|| one("user", user())),
};
pub const UPDATE_USER: Doc = Doc {
    summary: "Change a user's role, or disable or enable them",
    query: &[],
    body: Some(|| body(&[("role", json!({ "enum": ["viewer", "scientist", "validator", "admin"] })), ("disabled", boolean())], &[])),
    answer: Answer::Json(|| one("user", user())),
};
pub const DELETE_USER: Doc = Doc { summary: "Delete a user: their tokens are revoked, their name stays taken", query: &[], body: None, answer: Answer::Json(empty) };
pub const TOKENS: Doc = Doc {
    summary: "Token records (never the tokens)",
    query: &[("user", "string", "only this user's")],
    body: None,
    answer: Answer::Json(|| list("tokens", token_info())),
};
pub const CREATE_TOKEN: Doc = Doc {
    summary: "Issue an API token; the token is in this answer only",
    query: &[],
    body: Some(|| body(&[("user", string()), ("label", string()), ("expires_in_days", json!({ "type": "integer", "minimum": 1, "maximum": 3650 }))], &["user"])),
    answer: Answer::Json(|| obj(&[("user", string()), ("token", string()), ("token_info", token_info())], &["user", "token", "token_info"])),
};
pub const REVOKE_TOKEN: Doc = Doc { summary: "Revoke a token by id, from the next request on", query: &[], body: None, answer: Answer::Json(|| one("token", token_info())) };
pub const DEPLOYMENTS: Doc = Doc { summary: "Every deployment with the versions its routes serve", query: &[], body: None, answer: Answer::Json(|| list("deployments", deployment())) };
pub const CREATE_DEPLOYMENT: Doc = Doc {
    summary: "Deploy an approved version (a protected alias, or a version holding one) under a name",
    query: &[],
    body: Some(|| body(&[("name", string()), ("model", model_ref()), ("challenger", challenger()), ("shadow", model_ref()), ("max_rows_per_request", max_rows())], &["name", "model"])),
    answer: Answer::Json(|| one("deployment", deployment())),
};
pub const DEPLOYMENT: Doc = Doc { summary: "A deployment and the versions its routes serve", query: &[], body: None, answer: Answer::Json(|| one("deployment", deployment())) };
pub const UPDATE_DEPLOYMENT: Doc = Doc {
    summary: "Change what a deployment serves: champion, challenger (null removes), shadow (null removes)",
    query: &[],
    body: Some(|| {
        body(
            &[("name", string()), ("model", model_ref()), ("challenger", json!({ "oneOf": [challenger(), { "type": "null" }] })), ("shadow", json!({ "oneOf": [model_ref(), { "type": "null" }] })),
                ("max_rows_per_request", json!({ "oneOf": [max_rows(), { "type": "null" }] })),
            ],
            &[],
        )
    }),
    answer: Answer::Json(|| one("deployment", deployment())),
};
pub const DELETE_DEPLOYMENT: Doc = Doc { summary: "Take a deployment out of service", query: &[], body: None, answer: Answer::Json(empty) };
pub const STOP: Doc = Doc {
    summary: "The stop switch: all traffic to the fallback version from the next request",
    query: &[],
    body: Some(|| body(&[("reason", string())], &["reason"])),
    answer: Answer::Json(|| one("deployment", deployment())),
};
pub const PREDICTIONS: Doc = Doc {
    summary: "A deployment's prediction log, oldest first",
    query: &[("since", "integer", "milliseconds since the epoch"), ("max_results", "integer", "1..50000 (default 1000)")],
    body: None,
    answer: Answer::Json(|| list("predictions", prediction())),
};
pub const PUT_MONITOR: Doc = Doc {
    summary: "Start or replace a deployment's monitor",
    query: &[],
    body: Some(|| {
        let mut b = body(&[("reference", json!({ "type": "object" })), ("window_size", int()), ("window_seconds", int()), ("drift_share", json!({ "type": "number" })), ("webhook_url", string())], &["reference"]);
        b["additionalProperties"] = json!(true);
        b["description"] = json!("a monitor spec: reference profile, windows, drift settings, webhook, outputs, quality, estimated quality (CBPE: reference_scores, reference_labels, min_roc_auc, min_accuracy), fairness, SLO thresholds");
        b
    }),
    answer: Answer::Json(|| one("monitor", empty())),
};
pub const DELETE_MONITOR: Doc = Doc { summary: "Stop a deployment's monitor", query: &[], body: None, answer: Answer::Json(empty) };
pub const MONITOR_METRICS: Doc = Doc {
    summary: "A monitor's metric time series, oldest first (window end, metric, feature), a page at a time",
    query: &[
        ("metric", "string", "only this metric"),
        ("max_results", "integer", "rows per page, 1..50000 (default 10000)"),
        ("page_token", "string", "the previous answer's next_page_token (absent: the first page)"),
    ],
    body: None,
    answer: Answer::Json(|| {
        let mut v = list("metrics", obj(&[("deployment", string()), ("window_start", int()), ("window_end", int()), ("metric", string()), ("feature", string()), ("value", number())], &["deployment", "window_start", "window_end", "metric", "feature", "value"]));
        v["properties"]["next_page_token"] = json!({ "type": "string", "description": "present when more rows remain: pass it as page_token for the next page" });
        v
    }),
};
pub const ALERTS: Doc = Doc {
    summary: "Alerts (one per condition: firing while it holds, resolved when it ends), newest first",
    query: &[("deployment", "string", "only this deployment's"), ("max_results", "integer", "1..10000 (default 100)")],
    body: None,
    answer: Answer::Json(|| {
        list(
            "alerts",
            obj(
                &[
                    ("id", string()),
                    ("deployment", string()),
                    ("time", int()),
                    ("kind", string()),
                    ("value", number()),
                    ("threshold", number()),
                    ("message", string()),
                    ("delivered", boolean()),
                    ("attempts", int()),
                    ("status", json!({ "enum": ["firing", "resolved"] })),
                    ("last_seen", int()),
                    ("notified_at", int()),
                    ("resolved_at", int()),
                ],
                &["id", "deployment", "time", "kind", "message", "delivered", "attempts", "status", "last_seen"],
            ),
        )
    }),
};
pub const FEEDBACK: Doc = Doc {
    summary: "Ground-truth labels for logged predictions, all or none",
    query: &[],
    body: Some(|| body(&[("feedback", json!({ "type": "array", "minItems": 1, "items": obj(&[("prediction_id", string()), ("label", json!({ "type": ["number", "string", "boolean", "array"], "description": "one value for a one-row request, or one per row" }))], &["prediction_id", "label"]) }))], &["feedback"])),
    answer: Answer::Json(|| one("recorded", int())),
};
pub const PREDICTION: Doc = Doc { summary: "One logged prediction with its label, if any", query: &[], body: None, answer: Answer::Json(|| one("prediction", prediction())) };
pub const OPENAPI: Doc = Doc { summary: "This document", query: &[], body: None, answer: Answer::Json(|| json!({ "type": "object", "required": ["openapi", "paths"] })) };

fn error_shape() -> Value {
    obj(&[("error_code", string()), ("message", string())], &["error_code", "message"])
}

fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "version" => json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX }),
        "kind" => json!({ "enum": ["validation-report", "model-card", "annex-iv"] }),
        _ => json!({ "type": "string", "minLength": 1 }),
    };
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn operation(route: &Route, doc: &Doc) -> Value {
    let mut params: Vec<Value> = route.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).map(path_parameter).collect();
    params.extend(doc.query.iter().map(|(name, ty, description)| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })));
    let answer = match doc.answer {
        Answer::Json(schema) => json!({ "description": "OK", "content": { "application/json": { "schema": schema() } } }),
        Answer::Text(types) => json!({ "description": "OK", "content": types.iter().map(|t| ((*t).to_owned(), json!({ "schema": { "type": "string" } }))).collect::<Map<_, _>>() }),
    };
    let error = |what: &str| json!({ "description": what, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut responses = json!({
        "200": answer,
        "400": error("the request is invalid (the message names the field or value)"),
        "404": error("no such resource or endpoint"),
        "405": error("the path does not take this method"),
        "413": error("the body is larger than the route accepts"),
    });
    if route.perm != Perm::Public {
        responses["401"] = error("no credentials, or ones that do not hold");
        responses["403"] = error("the caller's role lacks the permission, or a governance rule refuses the change");
    }
    let mut op = json!({
        "summary": doc.summary,
        "operationId": format!("{}{}", route.method.as_str().to_lowercase(), route.path.replace(['/', '{', '}', '-'], "_")),
        "parameters": params,
        "responses": responses,
        "x-steward-permission": route.perm.as_str(),
    });
    if route.perm != Perm::Public {
        op["security"] = json!([{ "bearer": [] }, { "basic": [] }]);
    }
    if let Some(schema) = doc.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema() } } });
    }
    op
}

/// The document for every documented route.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let Some(doc) = &r.doc else { continue };
        let entry = paths.entry(r.path.clone()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_lowercase()] = operation(r, doc);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Steward API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Steward's own API: the audit ledger, registry history, lineage and documents, deployments, monitors, the agent's incidents and approval queue, users and tokens. Every operation states the permission it needs (x-steward-permission): read (every role), write (scientist and up), deploy and approve (validator and up), admin. MLflow's REST API is served beside it under /api/2.0/mlflow.",
        },
        "paths": paths,
        "components": {
            "schemas": { "Error": error_shape() },
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "an API token (stw_…)" },
                "basic": { "type": "http", "scheme": "basic", "description": "user name and API token as the password" },
            },
        },
    })
}

/// `GET /api/steward/v1/openapi.json`.
pub async fn get() -> axum::Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    axum::Json(DOC.get_or_init(|| document(&crate::routes::table())).clone())
}
