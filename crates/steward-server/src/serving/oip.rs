//! Open Inference Protocol v2 (KServe v2 / Triton) over REST: health, server and model
//! metadata, and `infer` with JSON tensors or the binary tensor extension that `tritonclient`
//! uses by default (`Inference-Header-Content-Length`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use steward_runtime::{DType, Tensor};

use super::tensors::{FlatData, element_count, flat_json, from_binary, parse_lenient, to_binary};
use super::{InferError, Routes};
use crate::AppState;

const HEADER_LENGTH: &str = "inference-header-content-length";

/// `{"error": message}` with the status the error calls for.
pub fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], json!({ "error": message }).to_string()).into_response()
}

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        let mut r = error(self.status(), self.message());
        if matches!(self, InferError::Overloaded(_)) {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

pub async fn server_metadata() -> Response {
    axum::Json(json!({ "name": "steward", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] })).into_response()
}

pub async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

pub async fn ready() -> Response {
    axum::Json(json!({ "ready": true })).into_response()
}

fn deployment(s: &AppState, name: &str) -> Result<std::sync::Arc<Routes>, InferError> {
    s.serving.routes(name).ok_or_else(|| InferError::UnknownDeployment(format!("deployment '{name}' does not exist")))
}

fn specs_json(specs: &[steward_runtime::TensorSpec]) -> Value {
    Value::Array(specs.iter().map(|t| json!({ "name": t.name, "datatype": t.datatype.name(), "shape": t.shape })).collect())
}

pub async fn model_metadata(State(s): State<AppState>, Path(params): Path<Vec<(String, String)>>) -> Response {
    let name = &params[0].1;
    match deployment(&s, name) {
        Ok(r) => {
            let sig = r.champion.runtime.signature();
            axum::Json(json!({
                "name": name,
                "versions": r.versions().iter().map(|v| v.2.to_string()).collect::<Vec<_>>(),
                "platform": "onnx",
                "inputs": specs_json(&sig.inputs),
                "outputs": specs_json(&sig.outputs),
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn model_ready(State(s): State<AppState>, Path(params): Path<Vec<(String, String)>>) -> Response {
    match deployment(&s, &params[0].1) {
        Ok(_) => axum::Json(json!({ "name": params[0].1, "ready": true })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn bad(m: impl Into<String>) -> InferError {
    InferError::BadInput(m.into())
}

/// The routing key: the `X-Steward-Routing-Key` header or a `routing_key` request parameter.
pub fn routing_key(headers: &HeaderMap, parameters: Option<&Map<String, Value>>) -> Option<String> {
    headers
        .get("x-steward-routing-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parameters.and_then(|p| p.get("routing_key")).and_then(|v| v.as_str()).map(str::to_owned))
}

/// An inference request as read from its JSON: each input's `data` straight into numbers
/// (`FlatData`), the rest as JSON values, checked below with errors naming the field.
#[derive(serde::Deserialize)]
struct Request {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    inputs: Option<Vec<Input>>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    outputs: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Input {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    shape: Option<Value>,
    #[serde(default)]
    datatype: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    data: Option<FlatData>,
}

fn parse_inputs(inputs: Option<Vec<Input>>, mut binary: &[u8]) -> Result<Vec<Tensor>, InferError> {
    let inputs = inputs.ok_or_else(|| bad("the request has no 'inputs' list"))?;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let name = input.name.as_ref().and_then(Value::as_str).ok_or_else(|| bad(format!("inputs[{i}] has no 'name'")))?;
        let datatype = input.datatype.as_ref().and_then(Value::as_str).ok_or_else(|| bad(format!("input '{name}' has no 'datatype'")))?;
        let dtype = DType::parse(datatype).ok_or_else(|| bad(format!("input '{name}' has datatype {datatype}; Steward takes BOOL, INT32, INT64, FP32, FP64 and BYTES")))?;
        let shape: Vec<usize> = input
            .shape
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("input '{name}' has no valid 'shape' (a list of non-negative integers)")))?;
        let size = input.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
        let data = match size {
            Some(size) => {
                let size = size.as_u64().ok_or_else(|| bad(format!("input '{name}': binary_data_size is not a number")))? as usize;
                let (bytes, rest) = binary.split_at_checked(size).ok_or_else(|| bad(format!("input '{name}' announces {size} bytes of binary data; the body has {}", binary.len())))?;
                binary = rest;
                from_binary(name, dtype, &shape, bytes)?
            }
            None => {
                let flat = input.data.ok_or_else(|| bad(format!("input '{name}' has neither 'data' nor binary data")))?;
                let n = element_count(name, &shape)?;
                if flat.len() != n {
                    return Err(bad(format!("input '{name}' has {} values; shape {shape:?} needs {n}", flat.len())));
                }
                flat.typed(name, dtype)?
            }
        };
        out.push(Tensor::new(name, shape, data));
    }
    if !binary.is_empty() {
        return Err(bad(format!("{} bytes of binary data belong to no input", binary.len())));
    }
    Ok(out)
}

pub async fn infer(State(s): State<AppState>, Path(params): Path<Vec<(String, String)>>, req: axum::extract::Request) -> Response {
    let name = params.into_iter().next().map(|p| p.1).unwrap_or_default();
    let serving = s.serving.clone();
    serving.score(req, move |headers, body| infer_inner(&s, &name, &headers, body)).await
}

/// Reads the request into tensors, then lets the body go (a large one is most of the memory
/// the request holds) before inference, the answer and the log record are made.
fn infer_inner(s: &AppState, name: &str, headers: &HeaderMap, body: bytes::Bytes) -> Result<super::Scored, InferError> {
    let (req, inputs) = read_request(headers, &body)?;
    drop(body);
    answer(s, name, headers, req, inputs)
}

fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<(Request, Vec<Tensor>), InferError> {
    let (head, binary) = match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let n: usize = v.to_str().ok().and_then(|v| v.parse().ok()).ok_or_else(|| bad("Inference-Header-Content-Length is not a number"))?;
            body.split_at_checked(n).ok_or_else(|| bad(format!("Inference-Header-Content-Length {n} exceeds the body ({} bytes)", body.len())))?
        }
        None => (body, &[][..]),
    };
    let req: Request = parse_lenient(head).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad(format!("the request is not an inference request (a JSON object with an 'inputs' list): {e}")),
        _ => bad(format!("the request is not valid JSON: {e}")),
    })?;
    let mut req = req;
    let inputs = parse_inputs(req.inputs.take(), binary)?;
    Ok((req, inputs))
}

fn answer(s: &AppState, name: &str, headers: &HeaderMap, req: Request, inputs: Vec<Tensor>) -> Result<super::Scored, InferError> {
    let parameters = req.parameters.as_ref().and_then(Value::as_object);
    let key = routing_key(headers, parameters);
    let context = parameters.and_then(|p| p.get("context")).map(Value::to_string);
    let reasons = reason_count(parameters.and_then(|p| p.get("reason_codes")))?;
    let mut answer = s.serving.infer(name, key.as_deref(), inputs, context, reasons)?;
    let logged = answer.logged.take();

    let all_binary = parameters.and_then(|p| p.get("binary_data_output")).and_then(Value::as_bool).unwrap_or(false);
    let wanted: Vec<(&Tensor, bool)> = match req.outputs.as_ref().and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|o| {
                let n = o.get("name").and_then(Value::as_str).ok_or_else(|| bad("an entry of 'outputs' has no 'name'"))?;
                let t = answer.outputs.iter().find(|t| t.name == n).ok_or_else(|| {
                    bad(format!("'{n}' is not an output of this model, which has {}", answer.outputs.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")))
                })?;
                let binary = o.get("parameters").and_then(|p| p.get("binary_data")).and_then(Value::as_bool).unwrap_or(all_binary);
                Ok((t, binary))
            })
            .collect::<Result<_, InferError>>()?,
        None => answer.outputs.iter().map(|t| (t, all_binary)).collect(),
    };
    let mut blobs = Vec::new();
    let outputs: Vec<Value> = wanted
        .iter()
        .map(|(t, binary)| {
            let mut o = json!({ "name": t.name, "datatype": t.data.dtype().name(), "shape": t.shape });
            if *binary {
                let start = blobs.len();
                to_binary(&t.data, &mut blobs);
                o["parameters"] = json!({ "binary_data_size": blobs.len() - start });
            } else {
                o["data"] = flat_json(&t.data);
            }
            o
        })
        .collect();
    let mut resp = json!({
        "model_name": name,
        "model_version": answer.version.to_string(),
        "outputs": outputs,
        "parameters": { "prediction_id": answer.prediction_id, "route": answer.route.as_str(), "model": answer.model },
    });
    if let Some(id) = &req.id {
        resp["id"] = id.clone();
    }
    if let Some(codes) = &answer.reason_codes {
        resp["parameters"]["reason_codes"] = json!(codes);
    }
    let head = resp.to_string();
    let mut response = if wanted.iter().any(|w| w.1) {
        let head_len = head.len();
        let mut body = head.into_bytes();
        body.extend_from_slice(&blobs);
        let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
        r.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(head_len));
        r
    } else {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], head).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&answer.prediction_id) {
        response.headers_mut().insert("x-steward-prediction-id", v);
    }
    Ok((response, logged))
}

/// `reason_codes`: `true` for the default number per row, or a number (0 for none).
pub fn reason_count(v: Option<&Value>) -> Result<usize, InferError> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(0),
        Some(Value::Bool(true)) => Ok(steward_train::explain::DEFAULT_REASONS),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n <= 100).map(|n| n as usize).ok_or_else(|| bad(format!("reason_codes must be true, false or a count up to 100, got {n}"))),
        Some(other) => Err(bad(format!("reason_codes must be true, false or a count up to 100, got {other}"))),
    }
}
