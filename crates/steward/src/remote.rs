//! Talking to a running Steward server from the CLI: JSON requests with the caller's token,
//! and fetching a registered model's ONNX file through the registry and the artifact proxy.

use anyhow::{Context as _, bail};
use serde_json::Value;
use steward_core::serving::ModelRef;

/// Sends a request (with `MLFLOW_TRACKING_TOKEN` as bearer token when set); an unsuccessful
/// answer becomes an error carrying the server's message.
async fn answered(req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
    let req = match std::env::var("MLFLOW_TRACKING_TOKEN") {
        Ok(token) => req.bearer_auth(token),
        Err(_) => req,
    };
    let resp = req.send().await.context("contacting the steward server")?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<Value>(&text) {
            Ok(body) => body.get("message").or_else(|| body.get("error")).and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| body.to_string()),
            Err(_) => text,
        };
        bail!("{message} (HTTP {})", status.as_u16());
    }
    Ok(resp)
}

/// Sends a request and returns its JSON body, or the server's error message.
pub async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    Ok(answered(req).await?.json().await.unwrap_or(Value::Null))
}

/// Sends a request and returns its body as text (a document), or the server's error message.
pub async fn send_text(req: reqwest::RequestBuilder) -> anyhow::Result<String> {
    Ok(answered(req).await?.text().await?)
}

pub fn base(tracking_uri: &str) -> anyhow::Result<String> {
    let base = tracking_uri.trim_end_matches('/').to_owned();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        bail!("--tracking-uri must be an http(s) URL of a running steward server, got '{base}'");
    }
    Ok(base)
}

/// The bytes of the `.onnx` file of a registered version (`models:/NAME@ALIAS` or
/// `models:/NAME/VERSION`), read through the server.
pub async fn fetch_model(tracking_uri: &str, uri: &str) -> anyhow::Result<Vec<u8>> {
    let base = base(tracking_uri)?;
    let http = reqwest::Client::new();
    let model = ModelRef::parse(uri)?;
    let api = format!("{base}/api/2.0/mlflow");
    let (name, version) = match &model {
        ModelRef::Alias { name, alias } => {
            let v = send(http.get(format!("{api}/registered-models/alias")).query(&[("name", name), ("alias", alias)])).await?;
            (name.clone(), v["model_version"]["version"].as_str().context("the alias answer has no version")?.to_owned())
        }
        ModelRef::Version { name, version } => (name.clone(), version.to_string()),
    };
    let v = send(http.get(format!("{api}/model-versions/get-download-uri")).query(&[("name", &name), ("version", &version)])).await?;
    let location = v["artifact_uri"].as_str().context("no artifact_uri for the version")?;
    let Some(rel) = location.strip_prefix("mlflow-artifacts:/") else {
        bail!("{uri} lives at '{location}', which is not behind this server's artifact proxy");
    };
    let rel = rel.trim_matches('/');
    let listing = send(http.get(format!("{base}/api/2.0/mlflow-artifacts/artifacts")).query(&[("path", rel)])).await?;
    let file = listing["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| !f["is_dir"].as_bool().unwrap_or(false))
        .filter_map(|f| f["path"].as_str())
        .filter(|p| p.ends_with(".onnx"))
        .min_by_key(|p| (!p.ends_with("model.onnx"), p.to_string()))
        .with_context(|| format!("{uri} (version {version}) has no .onnx file"))?
        .to_owned();
    let file = file.rsplit('/').next().unwrap_or(&file);
    let mut req = http.get(format!("{base}/api/2.0/mlflow-artifacts/artifacts/{rel}/{file}"));
    if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("downloading {uri}: HTTP {}", resp.status().as_u16());
    }
    Ok(resp.bytes().await?.to_vec())
}
