//! The optional language-model reasoner: one client for the Anthropic Messages API
//! (`POST {url}/v1/messages`) and any OpenAI-compatible chat endpoint (`POST
//! {url}/chat/completions`: OpenAI, a local vLLM or Ollama), configured by URL, model and key.
//! It is given the structured incident (`steward_agent::reason::prompt`) and returns text that is
//! stored with the incident as advice; nothing it says reaches `decide`.

use std::time::Duration;

use serde_json::{Value, json};
use steward_agent::reason::Prompt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    OpenAi,
}

impl Api {
    pub fn parse(s: &str) -> Option<Api> {
        match s {
            "anthropic" => Some(Api::Anthropic),
            "openai" => Some(Api::OpenAi),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LlmReasoner {
    pub api: Api,
    /// Anthropic: the API root (`https://api.anthropic.com`); OpenAI-compatible: the base URL
    /// including its version (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`).
    pub url: String,
    pub model: String,
    pub key: Option<String>,
    pub http: reqwest::Client,
}

const MAX_TOKENS: u32 = 800;

impl LlmReasoner {
    pub fn new(api: Api, url: &str, model: &str, key: Option<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap_or_default();
        Self { api, url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), key, http }
    }

    /// `llm:MODEL`: where its analyses say they came from.
    pub fn source(&self) -> String {
        format!("llm:{}", self.model)
    }

    /// Asks for the analysis; the error names what went wrong (status and the service's message).
    pub async fn ask(&self, p: &Prompt) -> Result<String, String> {
        let request = match self.api {
            Api::Anthropic => {
                let r = self
                    .http
                    .post(format!("{}/v1/messages", self.url))
                    .header("anthropic-version", "2023-06-01")
                    .json(&json!({ "model": self.model, "max_tokens": MAX_TOKENS, "system": p.system, "messages": [{ "role": "user", "content": p.user }] }));
                match &self.key {
                    Some(k) => r.header("x-api-key", k),
                    None => r,
                }
            }
            Api::OpenAi => {
                let r = self.http.post(format!("{}/chat/completions", self.url)).json(&json!({
                    "model": self.model,
                    "max_tokens": MAX_TOKENS,
                    "messages": [{ "role": "system", "content": p.system }, { "role": "user", "content": p.user }],
                }));
                match &self.key {
                    Some(k) => r.bearer_auth(k),
                    None => r,
                }
            }
        };
        let response = request.send().await.map_err(|e| format!("contacting {}: {e}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("{}: the answer is not JSON ({e})", self.url))?;
        if !status.is_success() {
            let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
            return Err(format!("{} answered HTTP {}: {message}", self.url, status.as_u16()));
        }
        let text = match self.api {
            Api::Anthropic => body["content"].as_array().into_iter().flatten().filter(|c| c["type"] == "text").filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n"),
            Api::OpenAi => body.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default().to_owned(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("{} answered without text", self.url));
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

    /// A local stand-in that speaks both APIs as the real services do.
    async fn stand_in() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/v1/messages",
                post(|State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    seen.lock().unwrap().push(("anthropic".into(), headers, body));
                    Json(json!({ "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "end_turn",
                        "content": [{ "type": "text", "text": "Drift is real; " }, { "type": "text", "text": "retraining fits." }] }))
                }),
            )
            .route(
                "/v1/chat/completions",
                post(|State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    seen.lock().unwrap().push(("openai".into(), headers, body));
                    Json(json!({ "id": "c1", "object": "chat.completion", "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": " Check the feed. " } }] }))
                }),
            )
            .route("/broken/v1/messages", post(|| async { (axum::http::StatusCode::UNAUTHORIZED, Json(json!({ "type": "error", "error": { "type": "authentication_error", "message": "invalid x-api-key" } }))) }))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    #[tokio::test]
    async fn both_apis_are_spoken_as_the_services_expect() {
        let (url, seen) = stand_in().await;
        let p = Prompt { system: "sys".into(), user: "{\"incident\": 1}".into() };
        let anthropic = LlmReasoner::new(Api::Anthropic, &url, "claude-test", Some("k1".into()));
        assert_eq!(anthropic.ask(&p).await.unwrap(), "Drift is real; \nretraining fits.");
        let openai = LlmReasoner::new(Api::OpenAi, &format!("{url}/v1/"), "gpt-test", Some("k2".into()));
        assert_eq!(openai.ask(&p).await.unwrap(), "Check the feed.");
        let seen = seen.lock().unwrap();
        let (_, h, body) = &seen[0];
        assert_eq!((h["x-api-key"].to_str().unwrap(), h["anthropic-version"].to_str().unwrap()), ("k1", "2023-06-01"));
        assert_eq!(body, &json!({ "model": "claude-test", "max_tokens": MAX_TOKENS, "system": "sys", "messages": [{ "role": "user", "content": "{\"incident\": 1}" }] }));
        let (_, h, body) = &seen[1];
        assert_eq!(h["authorization"].to_str().unwrap(), "Bearer k2");
        assert_eq!(body["messages"], json!([{ "role": "system", "content": "sys" }, { "role": "user", "content": "{\"incident\": 1}" }]));
        assert_eq!(body["model"], "gpt-test");
        let broken = LlmReasoner::new(Api::Anthropic, &format!("{url}/broken"), "m", None);
        assert_eq!(broken.ask(&p).await.unwrap_err(), format!("{url}/broken answered HTTP 401: invalid x-api-key"));
    }
}
