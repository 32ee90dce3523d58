//! The row-oriented scoring protocols: KServe v1 (`/v1/models/NAME:predict` with `instances`
//! or `inputs`) and MLflow's scoring server (`/deployments/NAME/invocations` with
//! `dataframe_split`, `dataframe_records`, `instances`, `inputs`, or a CSV body).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use steward_runtime::frame::{Cell, Frame};
use steward_runtime::{Signature, Tensor};
use steward_train::explain::Reason;

use super::oip::routing_key;
use super::tensors::{RowRecords, RowValues, from_nested, parse_json};
use super::{Answer, InferError};
use crate::AppState;

fn bad(m: impl Into<String>) -> InferError {
    InferError::BadInput(m.into())
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => Cell::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Cell::Text(s.clone()),
        other => Cell::Text(other.to_string()),
    }
}

fn records(v: &[Value]) -> Result<Frame, InferError> {
    let mut names: Vec<String> = Vec::new();
    for (i, r) in v.iter().enumerate() {
        let o = r.as_object().ok_or_else(|| bad(format!("record {i} is not an object")))?;
        for k in o.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let rows = v.iter().map(|r| names.iter().map(|n| r.get(n).map_or(Cell::Null, cell)).collect()).collect();
    Ok(Frame::from_rows(names, rows)?)
}

/// `instances`: rows as objects (one key per column or input) or as arrays (the rows of a
/// single-input model).
fn instances(sig: &Signature, v: &Value) -> Result<Vec<Tensor>, InferError> {
    let rows = v.as_array().ok_or_else(|| bad("'instances' must be a list of rows"))?;
    if rows.first().is_some_and(Value::is_object) {
        return Ok(records(rows)?.to_inputs(sig)?);
    }
    match sig.inputs.as_slice() {
        [only] => Ok(vec![from_nested(&only.name, only.datatype, v)?]),
        _ => Err(bad("this model has several inputs: send 'instances' as objects keyed by input name")),
    }
}

/// `inputs`: a tensor per input name, or the single input's tensor.
fn tensor_inputs(sig: &Signature, v: &Value) -> Result<Vec<Tensor>, InferError> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(name, value)| {
                let spec = sig.inputs.iter().find(|s| &s.name == name).ok_or_else(|| {
                    bad(format!("'{name}' is not an input of this model, which takes {}", sig.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")))
                })?;
                from_nested(name, spec.datatype, value)
            })
            .collect(),
        _ => instances(sig, v),
    }
}

fn signature(s: &AppState, name: &str) -> Result<Signature, InferError> {
    Ok(limits(s, name)?.0)
}

/// The champion's signature and the deployment's row limit per request.
fn limits(s: &AppState, name: &str) -> Result<(Signature, usize), InferError> {
    let routes = s.serving.routes(name).ok_or_else(|| InferError::UnknownDeployment(format!("deployment '{name}' does not exist")))?;
    Ok((routes.champion.runtime.signature().clone(), routes.spec.max_rows()))
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, InferError> {
    let v = parse_json(body)?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad("the request must be a JSON object")),
    }
}

fn with_id(mut r: Response, answer: &Answer) -> Response {
    if let Ok(v) = HeaderValue::from_str(&answer.prediction_id) {
        r.headers_mut().insert("x-steward-prediction-id", v);
    }
    r
}

/// An answer's predictions: a value per row (a single-output model's KServe v1 answer), or an
/// object per row with every output.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Predictions<'a> {
    PerRow(RowValues<'a>),
    Records(RowRecords<'a>),
}

/// An answer's body, written straight from the outputs (see [`RowRecords`]).
#[derive(serde::Serialize)]
struct Answered<'a> {
    predictions: Predictions<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_codes: Option<&'a Vec<Vec<Reason>>>,
}

fn json_response(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], crate::memory::body(bytes)).into_response(),
        Err(e) => InferError::Internal(format!("the answer could not be encoded: {e}")).into_response(),
    }
}

pub async fn v1_model(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match signature(&s, &name) {
        Ok(_) => axum::Json(json!({ "name": name, "ready": true })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/models/NAME:predict`.
pub async fn v1_predict(State(s): State<AppState>, Path(target): Path<String>, req: axum::extract::Request) -> Response {
    let serving = s.serving.clone();
    serving.score(req, move |headers, body| {
        let name = target.strip_suffix(":predict").ok_or_else(|| InferError::UnknownDeployment(format!("no endpoint for '{target}': use /v1/models/NAME:predict")))?;
        let sig = signature(&s, name)?;
        let req = json_body(&body)?;
        let inputs = match (req.get("instances"), req.get("inputs")) {
            (Some(v), None) => instances(&sig, v)?,
            (None, Some(v)) => tensor_inputs(&sig, v)?,
            _ => return Err(bad("send exactly one of 'instances' and 'inputs'")),
        };
        let key = routing_key(&headers, req.get("parameters").and_then(Value::as_object));
        let reasons = super::oip::reason_count(req.get("parameters").and_then(|p| p.get("reason_codes")))?;
        let context = req.get("context").map(Value::to_string);
        drop((req, body)); // the inputs hold what is needed: free the request before inference
        let mut answer = s.serving.infer(name, key.as_deref(), inputs, context, reasons)?;
        let logged = answer.logged.take();
        let predictions = match answer.outputs.as_slice() {
            [only] => Predictions::PerRow(RowValues(only)),
            outputs => Predictions::Records(RowRecords(outputs)),
        };
        let body = json_response(&Answered { predictions, prediction_id: Some(&answer.prediction_id), model_version: Some(answer.version.to_string()), reason_codes: answer.reason_codes.as_ref() });
        Ok((with_id(body, &answer), logged))
    })
    .await
}

/// `POST /deployments/NAME/invocations`: MLflow's scoring protocol.
pub async fn invocations(State(s): State<AppState>, Path(name): Path<String>, req: axum::extract::Request) -> Response {
    let serving = s.serving.clone();
    serving.score(req, move |headers, body| {
        let (sig, max_rows) = limits(&s, &name)?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
        let (inputs, context, reasons) = if content_type.starts_with("text/csv") {
            (Frame::csv_inputs(&body[..], "the CSV body", &sig, max_rows)?, None, 0)
        } else if content_type.starts_with("application/json") {
            let req = json_body(&body)?;
            let fields = ["dataframe_split", "dataframe_records", "instances", "inputs"];
            let given: Vec<&str> = fields.iter().copied().filter(|f| req.contains_key(*f)).collect();
            let [field] = given.as_slice() else {
                return Err(bad(format!("send exactly one of {}; got {}", fields.join(", "), if given.is_empty() { "none".into() } else { given.join(", ") })));
            };
            let v = &req[*field];
            let inputs = match *field {
                "dataframe_split" => {
                    let columns: Vec<String> = v
                        .get("columns")
                        .and_then(Value::as_array)
                        .and_then(|c| c.iter().map(|n| n.as_str().map(str::to_owned)).collect())
                        .ok_or_else(|| bad("dataframe_split needs 'columns', a list of names"))?;
                    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| bad("dataframe_split needs 'data', a list of rows"))?;
                    let rows = data
                        .iter()
                        .enumerate()
                        .map(|(i, r)| r.as_array().map(|r| r.iter().map(cell).collect()).ok_or_else(|| bad(format!("dataframe_split row {i} is not a list"))))
                        .collect::<Result<Vec<_>, _>>()?;
                    Frame::from_rows(columns, rows)?.to_inputs(&sig)?
                }
                "dataframe_records" => records(v.as_array().ok_or_else(|| bad("dataframe_records must be a list of objects"))?)?.to_inputs(&sig)?,
                "instances" => instances(&sig, v)?,
                _ => tensor_inputs(&sig, v)?,
            };
            // MLflow's `params` carry inference parameters; `reason_codes` is Steward's.
            let reasons = super::oip::reason_count(req.get("params").and_then(|p| p.get("reason_codes")))?;
            (inputs, req.get("context").map(Value::to_string), reasons)
        } else {
            return Err(InferError::BadInput(format!("content type '{content_type}' is not supported: use application/json or text/csv")));
        };
        drop(body);
        let key = routing_key(&headers, None);
        let mut answer = s.serving.infer(&name, key.as_deref(), inputs, context, reasons)?;
        let logged = answer.logged.take();
        let body = json_response(&Answered { predictions: Predictions::Records(RowRecords(&answer.outputs)), prediction_id: None, model_version: None, reason_codes: answer.reason_codes.as_ref() });
        Ok((with_id(body, &answer), logged))
    })
    .await
}
