//! A mock OpenAI upstream (`skyward mock-openai`) for tests and the
//! benchmark: chat completions, completions and embeddings in the OpenAI
//! format, SSE streams of N chunks (with a final `usage` chunk when
//! `stream_options.include_usage` is set), and faults injected at run
//! time through `POST /_mock/mode`: a status (429 with Retry-After, 5xx),
//! a delay before answering, a stall, a stream that breaks or stalls
//! after N chunks, or one that holds after N chunks until
//! `POST /_mock/release`. `GET /_mock/stats` counts requests, completed
//! streams and streams the client abandoned.
//!
//! It speaks Azure OpenAI's form too: `POST /openai/deployments/{name}/
//! chat/completions?api-version=…` (a 404 "Resource not found" without
//! the api-version), with the key in `api-key` (or an Entra bearer token).
//! With a key set (`--api-key`), requests without it get the provider's
//! 401.
//!
//! And Anthropic's Messages API (`POST /v1/messages`: `x-api-key`,
//! `anthropic-version`, its body rules, its SSE events) and Bedrock's
//! Converse (`POST /model/{id}/converse` and `/converse-stream`, answered
//! in AWS's binary event stream), where the key is the AWS secret the
//! SigV4 signature is checked with, as AWS checks it. Faults come in each
//! provider's own error shape.

use crate::body::GwBody;
use crate::gateway::now_unix_s;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mode {
    /// 200 answers normally; anything else is returned as an error.
    pub status: u16,
    pub retry_after_s: Option<u64>,
    /// `retry-after-ms` (Azure OpenAI's, in ms).
    pub retry_after_ms: Option<u64>,
    /// `retry_after_s` sent as an HTTP date instead of seconds.
    pub retry_after_http_date: bool,
    /// Before the answer (headers).
    pub delay_ms: u64,
    pub chunks: u32,
    pub chunk_delay_ms: u64,
    /// The stream ends without [DONE] after this many chunks.
    pub fail_after_chunks: Option<u32>,
    /// The stream stops sending (but stays open) after this many chunks.
    pub stall_after_chunks: Option<u32>,
    /// The stream waits for `POST /_mock/release` after this many chunks.
    pub hold_after_chunks: Option<u32>,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            status: 200,
            retry_after_s: None,
            retry_after_ms: None,
            retry_after_http_date: false,
            delay_ms: 0,
            chunks: 8,
            chunk_delay_ms: 0,
            fail_after_chunks: None,
            stall_after_chunks: None,
            hold_after_chunks: None,
        }
    }
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    /// Requests in Azure OpenAI's form.
    pub azure_requests: AtomicU64,
    /// Anthropic Messages requests.
    pub anthropic_requests: AtomicU64,
    /// Bedrock Converse / ConverseStream requests whose signature held.
    pub bedrock_requests: AtomicU64,
    /// Vertex AI requests with a valid OAuth token.
    pub vertex_requests: AtomicU64,
    /// OAuth tokens issued by `POST /token`.
    pub tokens_issued: AtomicU64,
    /// Requests that came over HTTP/2.
    pub http2_requests: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_abandoned: AtomicU64,
}

pub struct Mock {
    pub name: String,
    pub mode: Mutex<Mode>,
    pub stats: Stats,
    release: Notify,
    /// The key a request must carry (None: any or none).
    key: Option<String>,
    /// The `traceparent` headers received, newest last (at most 64).
    traceparents: Mutex<Vec<String>>,
    /// Google's OAuth token endpoint: the service account's RSA public
    /// key (PKCS#1 DER) its JWTs are checked with, and the tokens' life.
    google: Option<(Vec<u8>, u64)>,
    /// Tokens issued: token → expiry (Unix s).
    tokens: Mutex<std::collections::HashMap<String, i64>>,
}

fn json_response(status: StatusCode, v: &Value) -> Response<GwBody> {
    let mut r = Response::new(GwBody::full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

impl Mock {
    pub fn new(name: &str, mode: Mode) -> Mock {
        Mock {
            name: name.to_string(),
            mode: Mutex::new(mode),
            stats: Stats::default(),
            release: Notify::new(),
            key: None,
            google: None,
            traceparents: Mutex::new(Vec::new()),
            tokens: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Serves Google's token endpoint (`POST /token`) for the service
    /// account whose public key (PKCS#1 DER) this is, tokens living
    /// `ttl_s`; Vertex AI's paths then need one of its tokens.
    pub fn with_google(mut self, public_key_der: Vec<u8>, ttl_s: u64) -> Mock {
        self.google = Some((public_key_der, ttl_s));
        self
    }

    /// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
    /// and the service account's signed JWT, checked as Google checks it.
    async fn token(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let Some((key, ttl_s)) = self.google.clone() else {
            return json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"}));
        };
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = Limited::new(req.into_body(), 64 << 10)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (form_decode(k), form_decode(v)))
            .collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let refuse = |why: &str| {
            json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_grant", "error_description": why}),
            )
        };
        if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}),
            );
        }
        let Some(jwt) = get("assertion") else {
            return refuse("Missing assertion.");
        };
        if let Err(why) = check_jwt(jwt, &key, &format!("http://{host}/token"), now_unix_s()) {
            return refuse(&why);
        }
        let n = self.stats.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("ya29.mock-{}-{n}", self.name);
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.clone(), now_unix_s() + ttl_s as i64);
        }
        json_response(
            StatusCode::OK,
            &json!({"access_token": token, "expires_in": ttl_s, "token_type": "Bearer"}),
        )
    }

    /// Whether a Vertex AI request carries a token this mock issued and
    /// that has not expired.
    fn google_authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(t) = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.tokens
            .lock()
            .map(|m| m.get(t).is_some_and(|exp| *exp > now_unix_s()))
            .unwrap_or(false)
    }

    /// Requests must carry this key (`Authorization: Bearer`, Azure's
    /// `api-key`, Anthropic's `x-api-key`); Bedrock's paths check their
    /// SigV4 signature with it as the secret.
    pub fn with_key(mut self, key: Option<String>) -> Mock {
        self.key = key.filter(|k| !k.is_empty());
        self
    }

    /// Whether the request carries the key (bearer always; `api-key` in
    /// Azure's form).
    fn authorized(&self, req: &Request<Incoming>, azure: bool) -> bool {
        let Some(want) = &self.key else {
            return true;
        };
        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        let bearer = h("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k == want);
        bearer || (azure && h("api-key").is_some_and(|k| k == want))
    }

    fn mode(&self) -> Mode {
        self.mode.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        if req.version() == hyper::Version::HTTP_2 {
            self.stats.http2_requests.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tp) = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            if let Ok(mut v) = self.traceparents.lock() {
                if v.len() == 64 {
                    v.remove(0);
                }
                v.push(tp.chars().take(64).collect());
            }
        }
        let mut r = self.route(req).await;
        if let Ok(v) = HeaderValue::from_str(&self.name) {
            r.headers_mut().insert("x-mock-name", v);
        }
        // As OpenAI's API does: a request id and the rate-limit state.
        let n = self.stats.requests.load(Ordering::Relaxed);
        if let Ok(v) = HeaderValue::from_str(&format!("req_{}_{n}", self.name)) {
            r.headers_mut().insert("x-request-id", v);
        }
        r.headers_mut().insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from(10_000u64.saturating_sub(n)),
        );
        r
    }

    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/_mock/stats") => json_response(
                StatusCode::OK,
                &json!({
                    "name": self.name,
                    "requests": self.stats.requests.load(Ordering::Relaxed),
                    "azure_requests": self.stats.azure_requests.load(Ordering::Relaxed),
                    "anthropic_requests": self.stats.anthropic_requests.load(Ordering::Relaxed),
                    "bedrock_requests": self.stats.bedrock_requests.load(Ordering::Relaxed),
                    "vertex_requests": self.stats.vertex_requests.load(Ordering::Relaxed),
                    "tokens_issued": self.stats.tokens_issued.load(Ordering::Relaxed),
                    "http2_requests": self.stats.http2_requests.load(Ordering::Relaxed),
                    "traceparents": self.traceparents.lock().map(|v| v.clone()).unwrap_or_default(),
                    "streams_completed": self.stats.streams_completed.load(Ordering::Relaxed),
                    "streams_abandoned": self.stats.streams_abandoned.load(Ordering::Relaxed),
                }),
            ),
            (Method::POST, "/_mock/mode") => {
                let body = Limited::new(req.into_body(), 1 << 16)
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                match serde_json::from_slice::<Mode>(&body) {
                    Ok(m) => {
                        if let Ok(mut cur) = self.mode.lock() {
                            *cur = m;
                        }
                        json_response(StatusCode::OK, &json!({"ok": true}))
                    }
                    Err(e) => {
                        json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}))
                    }
                }
            }
            (Method::POST, "/_mock/release") => {
                self.release.notify_waiters();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            (Method::GET, "/v1/models") => {
                // Health checks see the injected status too.
                let status = self.mode().status;
                if status != 200 {
                    let code =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return json_response(
                        code,
                        &json!({"error": {"message": "unhealthy", "type": "server_error"}}),
                    );
                }
                json_response(
                    StatusCode::OK,
                    &json!({"object": "list", "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": self.name}]}),
                )
            }
            (Method::POST, "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings") => {
                if !self.authorized(&req, false) {
                    return json_response(
                        StatusCode::UNAUTHORIZED,
                        &json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
                    );
                }
                self.complete(req, &path).await
            }
            (Method::POST, p) if p.starts_with("/openai/deployments/") => {
                // Azure OpenAI: /openai/deployments/{name}/{endpoint}.
                let rest = &p["/openai/deployments/".len()..];
                let endpoint = rest.split_once('/').map(|(_, e)| e).unwrap_or("");
                let versioned = req.uri().query().is_some_and(|q| {
                    q.split('&')
                        .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
                });
                let openai_path = match endpoint {
                    "chat/completions" => "/v1/chat/completions",
                    "completions" => "/v1/completions",
                    "embeddings" => "/v1/embeddings",
                    _ => "",
                };
                if !versioned || openai_path.is_empty() {
                    return json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": {"code": "404", "message": "Resource not found"}}),
                    );
                }
                if !self.authorized(&req, true) {
                    return json_response(
                        StatusCode::UNAUTHORIZED,
                        &json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
                    );
                }
                self.stats.azure_requests.fetch_add(1, Ordering::Relaxed);
                self.complete(req, openai_path).await
            }
            (Method::POST, "/v1/messages") => self.anthropic(req).await,
            (Method::POST, "/token") => self.token(req).await,
            (Method::POST, p)
                if p.starts_with("/v1/projects/") && p.contains("/endpoints/openapi/") =>
            {
                // Vertex AI's OpenAI-compatible endpoint.
                let endpoint = p.rsplit("/endpoints/openapi").next().unwrap_or("");
                let openai_path = match endpoint {
                    "/chat/completions" => "/v1/chat/completions",
                    "/embeddings" => "/v1/embeddings",
                    _ => "",
                };
                if openai_path.is_empty() {
                    return json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}}),
                    );
                }
                if self.google.is_some() && !self.google_authorized(&req) {
                    return json_response(
                        StatusCode::UNAUTHORIZED,
                        &json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "status": "UNAUTHENTICATED"}}),
                    );
                }
                self.stats.vertex_requests.fetch_add(1, Ordering::Relaxed);
                self.complete(req, openai_path).await
            }
            (Method::POST, p)
                if p.starts_with("/model/")
                    && (p.ends_with("/converse") || p.ends_with("/converse-stream")) =>
            {
                self.bedrock(req).await
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}}),
            ),
        }
    }

    /// Anthropic's Messages API: `x-api-key` and `anthropic-version`
    /// required, the body checked as Anthropic checks it (model,
    /// max_tokens, alternating user/assistant turns of typed blocks).
    async fn anthropic(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let err = |status: StatusCode, kind: &str, message: &str| {
            json_response(
                status,
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            )
        };
        if req.headers().get("anthropic-version").is_none() {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "anthropic-version: header is required",
            );
        }
        if let Some(want) = &self.key {
            let given = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
            if given != Some(want.as_str()) {
                return err(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "invalid x-api-key",
                );
            }
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mode = self.mode();
        let body = Limited::new(req.into_body(), 64 << 20)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Err(m) = check_anthropic(&v) {
            return err(StatusCode::BAD_REQUEST, "invalid_request_error", &m);
        }
        self.stats
            .anthropic_requests
            .fetch_add(1, Ordering::Relaxed);
        if mode.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.delay_ms)).await;
        }
        if mode.status != 200 {
            let status =
                StatusCode::from_u16(mode.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match mode.status {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                400 => "invalid_request_error",
                _ => "api_error",
            };
            let mut r = err(
                status,
                kind,
                &format!("mock {} says {}", self.name, mode.status),
            );
            if let Some(s) = mode.retry_after_s {
                r.headers_mut().insert("retry-after", HeaderValue::from(s));
            }
            return r;
        }
        let model = v["model"].as_str().unwrap_or("mock").to_string();
        let input_tokens = (body.len() as u64 / 4).max(1);
        // A forced tool choice is answered with a call of that tool.
        let tool = match v.pointer("/tool_choice/type").and_then(Value::as_str) {
            Some("tool") => v.pointer("/tool_choice/name").and_then(Value::as_str),
            Some("any") => v.pointer("/tools/0/name").and_then(Value::as_str),
            _ => None,
        }
        .map(str::to_string);
        if v.get("stream").and_then(Value::as_bool) == Some(true) {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            let me = self.clone();
            tokio::spawn(async move {
                let ev = |name: &str, data: Value| {
                    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
                };
                let mut events = vec![
                    ev(
                        "message_start",
                        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
                    ),
                    ev(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    ),
                    ev("ping", json!({"type": "ping"})),
                ];
                let first = events.len();
                for i in 0..mode.chunks {
                    events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("tok{i} ")}})));
                }
                events.push(ev(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ));
                let mut out_tokens = u64::from(mode.chunks);
                if let Some(t) = &tool {
                    events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_mock", "name": t, "input": {}}})));
                    events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"mock\": "}})));
                    events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "true}"}})));
                    events.push(ev(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": 1}),
                    ));
                    out_tokens += 5;
                }
                let stop = if tool.is_some() {
                    "tool_use"
                } else {
                    "end_turn"
                };
                events.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": out_tokens}})));
                events.push(ev("message_stop", json!({"type": "message_stop"})));
                let n = mode.chunks as usize;
                me.send_events(tx, &mode, events, first..first + n).await;
            });
            let mut r = Response::new(GwBody::Channel(rx));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r.headers_mut()
                .insert("request-id", HeaderValue::from_static("req_mock_anthropic"));
            return r;
        }
        let mut content =
            vec![json!({"type": "text", "text": "tok ".repeat(mode.chunks as usize)})];
        let mut out_tokens = u64::from(mode.chunks);
        if let Some(t) = &tool {
            content.push(
                json!({"type": "tool_use", "id": "toolu_mock", "name": t, "input": {"mock": true}}),
            );
            out_tokens += 5;
        }
        let mut r = json_response(
            StatusCode::OK,
            &json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": out_tokens}}),
        );
        r.headers_mut()
            .insert("request-id", HeaderValue::from_static("req_mock_anthropic"));
        r
    }

    /// Bedrock's Converse and ConverseStream: the SigV4 signature checked
    /// against the mock's key as the secret (when one is set), the body
    /// checked as Converse checks it, answers in Converse's JSON or its
    /// event stream.
    async fn bedrock(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let aws_err = |status: StatusCode, kind: &str, message: &str| {
            let mut r = json_response(status, &json!({"message": message}));
            if let Ok(h) = HeaderValue::from_str(&format!(
                "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            )) {
                r.headers_mut().insert("x-amzn-errortype", h);
            }
            r
        };
        let (parts, body_in) = req.into_parts();
        let body = Limited::new(body_in, 64 << 20)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if let Some(secret) = &self.key {
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            // AWS checks the request's date against its clock.
            let now = now_unix_s();
            if let Err(m) = crate::sigv4::verify(
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                &headers,
                &body,
                secret,
                now,
            ) {
                let kind = if m.starts_with("Missing") {
                    "MissingAuthenticationTokenException"
                } else {
                    "InvalidSignatureException"
                };
                return aws_err(StatusCode::FORBIDDEN, kind, &m);
            }
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mode = self.mode();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Err(m) = check_converse(&v) {
            return aws_err(StatusCode::BAD_REQUEST, "ValidationException", &m);
        }
        self.stats.bedrock_requests.fetch_add(1, Ordering::Relaxed);
        if mode.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.delay_ms)).await;
        }
        if mode.status != 200 {
            let status =
                StatusCode::from_u16(mode.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (kind, msg) = match mode.status {
                429 => (
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                ),
                503 => (
                    "ServiceUnavailableException",
                    "Bedrock is unable to process your request.",
                ),
                403 => (
                    "AccessDeniedException",
                    "You don't have access to the model with the specified model ID.",
                ),
                404 => (
                    "ResourceNotFoundException",
                    "The specified model was not found.",
                ),
                400 => ("ValidationException", "Malformed input request."),
                _ => (
                    "InternalServerException",
                    "The server encountered an internal error.",
                ),
            };
            let mut r = aws_err(status, kind, msg);
            if let Some(s) = mode.retry_after_s {
                r.headers_mut().insert("retry-after", HeaderValue::from(s));
            }
            return r;
        }
        let input_tokens = (body.len() as u64 / 4).max(1);
        let tool = match v.pointer("/toolConfig/toolChoice") {
            Some(c) if c.get("tool").is_some() => c.pointer("/tool/name").and_then(Value::as_str),
            Some(c) if c.get("any").is_some() => v
                .pointer("/toolConfig/tools/0/toolSpec/name")
                .and_then(Value::as_str),
            _ => None,
        }
        .map(str::to_string);
        let request_id = format!(
            "mock-{}-{}",
            self.name,
            self.stats.requests.load(Ordering::Relaxed)
        );
        let mut out_tokens = u64::from(mode.chunks);
        if tool.is_some() {
            out_tokens += 5;
        }
        let stop = if tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        let mut r = if parts.uri.path().ends_with("/converse-stream") {
            let ev = |t: &str, p: Value| {
                Bytes::from(crate::eventstream::encode(
                    &[
                        (":event-type", t),
                        (":content-type", "application/json"),
                        (":message-type", "event"),
                    ],
                    p.to_string().as_bytes(),
                ))
            };
            let mut events = vec![ev("messageStart", json!({"role": "assistant"}))];
            let first = events.len();
            for i in 0..mode.chunks {
                events.push(ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": format!("tok{i} ")}}),
                ));
            }
            events.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
            if let Some(t) = &tool {
                events.push(ev("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_mock", "name": t}}})));
                events.push(ev("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"mock\": true}"}}})));
                events.push(ev("contentBlockStop", json!({"contentBlockIndex": 1})));
            }
            events.push(ev("messageStop", json!({"stopReason": stop})));
            events.push(ev("metadata", json!({"usage": {"inputTokens": input_tokens, "outputTokens": out_tokens, "totalTokens": input_tokens + out_tokens}, "metrics": {"latencyMs": 1}})));
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            let me = self.clone();
            let n = mode.chunks as usize;
            tokio::spawn(async move { me.send_events(tx, &mode, events, first..first + n).await });
            let mut r = Response::new(GwBody::Channel(rx));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            r
        } else {
            let mut content = vec![json!({"text": "tok ".repeat(mode.chunks as usize)})];
            if let Some(t) = &tool {
                content.push(json!({"toolUse": {"toolUseId": "tooluse_mock", "name": t, "input": {"mock": true}}}));
            }
            json_response(
                StatusCode::OK,
                &json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                    "usage": {"inputTokens": input_tokens, "outputTokens": out_tokens, "totalTokens": input_tokens + out_tokens},
                    "metrics": {"latencyMs": 1}}),
            )
        };
        if let Ok(h) = HeaderValue::from_str(&request_id) {
            r.headers_mut().insert("x-amzn-requestid", h);
        }
        r
    }

    /// Sends a stream's events, in any provider's form; the mode's faults
    /// (a break, a stall, a hold, a delay) count the content events, those
    /// at `content` (the stream ends without its last events on a break).
    async fn send_events(
        self: Arc<Self>,
        tx: mpsc::Sender<Bytes>,
        mode: &Mode,
        events: Vec<Bytes>,
        content: std::ops::Range<usize>,
    ) {
        for (k, e) in events.into_iter().enumerate() {
            if content.contains(&k) {
                let i = (k - content.start) as u32;
                if mode.fail_after_chunks == Some(i) {
                    return;
                }
                if mode.stall_after_chunks == Some(i) {
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                    return;
                }
                if mode.hold_after_chunks == Some(i) {
                    tokio::select! {
                        _ = self.release.notified() => {}
                        _ = tx.closed() => {
                            self.stats.streams_abandoned.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                if mode.chunk_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(mode.chunk_delay_ms)).await;
                }
            }
            if tx.send(e).await.is_err() {
                self.stats.streams_abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.stats.streams_completed.fetch_add(1, Ordering::Relaxed);
    }

    async fn complete(self: &Arc<Self>, req: Request<Incoming>, path: &str) -> Response<GwBody> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mode = self.mode();
        let body = Limited::new(req.into_body(), 64 << 20)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if mode.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.delay_ms)).await;
        }
        if mode.status != 200 {
            let status =
                StatusCode::from_u16(mode.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = json_response(
                status,
                &json!({"error": {"message": format!("mock {} says {}", self.name, mode.status), "type": if mode.status == 429 { "requests" } else { "server_error" }, "code": if mode.status == 429 { "rate_limit_exceeded" } else { "server_error" }}}),
            );
            if let Some(s) = mode.retry_after_s {
                let v = if mode.retry_after_http_date {
                    #[allow(clippy::disallowed_methods)] // an HTTP date is wall-clock
                    let at = std::time::SystemTime::now() + Duration::from_secs(s);
                    httpdate::fmt_http_date(at)
                } else {
                    s.to_string()
                };
                if let Ok(h) = HeaderValue::from_str(&v) {
                    r.headers_mut().insert("retry-after", h);
                }
            }
            if let Some(ms) = mode.retry_after_ms {
                if let Ok(h) = HeaderValue::from_str(&ms.to_string()) {
                    r.headers_mut().insert("retry-after-ms", h);
                }
            }
            return r;
        }
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock")
            .to_string();
        let prompt_tokens = (body.len() as u64 / 4).max(1);
        if path == "/v1/embeddings" {
            return json_response(
                StatusCode::OK,
                &json!({"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3, 0.4]}], "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}),
            );
        }
        let chat = path == "/v1/chat/completions";
        if v.get("stream").and_then(Value::as_bool) == Some(true) {
            let include_usage = v
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            let me = self.clone();
            tokio::spawn(async move {
                me.stream(tx, mode, model, chat, include_usage, prompt_tokens)
                    .await
            });
            let mut r = Response::new(GwBody::Channel(rx));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            return r;
        }
        let n = u64::from(mode.chunks);
        let text = "tok ".repeat(mode.chunks as usize);
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
        } else {
            json!({"index": 0, "text": text, "finish_reason": "stop"})
        };
        json_response(
            StatusCode::OK,
            &json!({
                "id": "mock-1", "object": if chat { "chat.completion" } else { "text_completion" }, "created": 0, "model": model,
                "system_fingerprint": self.name, "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
            }),
        )
    }

    async fn stream(
        self: Arc<Self>,
        tx: mpsc::Sender<Bytes>,
        mode: Mode,
        model: String,
        chat: bool,
        include_usage: bool,
        prompt_tokens: u64,
    ) {
        let sse = |v: Value| Bytes::from(format!("data: {v}\n\n"));
        let mut events: Vec<Bytes> = (0..mode.chunks)
            .map(|i| {
                sse(if chat {
                    json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]})
                } else {
                    json!({"id": "mock-1", "object": "text_completion", "created": 0, "model": model, "choices": [{"index": 0, "text": format!("tok{i} "), "finish_reason": null}]})
                })
            })
            .collect();
        if include_usage {
            events.push(sse(json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": mode.chunks, "total_tokens": prompt_tokens + u64::from(mode.chunks)}})));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let n = mode.chunks as usize;
        self.send_events(tx, &mode, events, 0..n).await;
    }
}

/// What Anthropic's API refuses in a Messages request (its messages).
fn check_anthropic(v: &Value) -> Result<(), String> {
    if !v.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".into());
    }
    if !v.get("max_tokens").is_some_and(Value::is_u64) {
        return Err("max_tokens: Field required".into());
    }
    if let Some(t) = v.get("temperature").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&t) {
            return Err("temperature: Input should be less than or equal to 1".into());
        }
    }
    let msgs = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    for (i, m) in msgs.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ))
            }
        }
        if i > 0 && m.get("role") == msgs[i - 1].get("role") {
            return Err(format!(
                "messages.{i}: roles must alternate between \"user\" and \"assistant\""
            ));
        }
        match m.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text" | "image" | "tool_use" | "tool_result") => {}
                        _ => return Err(format!("messages.{i}.content.{j}.type: Input tag is not one of the expected tags")),
                    }
                }
            }
            _ => return Err(format!("messages.{i}.content: Field required")),
        }
    }
    if msgs
        .first()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        != Some("user")
    {
        return Err("messages: first message must use the \"user\" role".into());
    }
    Ok(())
}

/// What Bedrock's Converse refuses (its ValidationException messages).
fn check_converse(v: &Value) -> Result<(), String> {
    let msgs = v
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null")?;
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant")) {
            return Err(format!("Value at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", i + 1));
        }
        if i > 0 && m.get("role") == msgs[i - 1].get("role") {
            return Err("A conversation must alternate between user and assistant roles.".into());
        }
        let blocks = m
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("Value at 'messages.{}.member.content' failed to satisfy constraint: Member must not be null", i + 1))?;
        for b in blocks {
            let kinds = ["text", "image", "toolUse", "toolResult", "document"]
                .iter()
                .filter(|k| b.get(**k).is_some())
                .count();
            if kinds != 1 || b.as_object().map(|o| o.len()) != Some(1) {
                return Err("Malformed input request: each content block takes exactly one of text, image, toolUse, toolResult, document".into());
            }
        }
    }
    if msgs[0].get("role").and_then(Value::as_str) != Some("user") {
        return Err("A conversation must start with a user message.".into());
    }
    Ok(())
}

/// Checks a service account's JWT as Google's token endpoint does: RS256
/// signed by the key, for this audience, asking for a scope, issued now
/// and for at most an hour.
pub fn check_jwt(
    jwt: &str,
    public_key_der: &[u8],
    audience: &str,
    now_s: i64,
) -> Result<(), String> {
    use base64::Engine;
    // Each part in base64url, padded or not (gcp_auth pads); the signature
    // is over the parts as sent.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unpad = |p: &str| p.trim_end_matches('=').to_string();
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: not three parts.".into());
    };
    let header: Value = b64
        .decode(unpad(h))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT header.")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256.".into());
    }
    let sig = b64
        .decode(unpad(sig))
        .map_err(|_| "Invalid JWT Signature.")?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(format!("{h}.{c}").as_bytes(), &sig)
    .map_err(|_| "Invalid JWT Signature.")?;
    let claims: Value = b64
        .decode(unpad(c))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT claims.")?;
    if claims["aud"] != audience {
        return Err(format!("Invalid JWT: aud must be {audience}."));
    }
    if !claims["iss"].as_str().is_some_and(|s| s.contains('@')) {
        return Err("Invalid JWT: iss must be the service account's email.".into());
    }
    if claims["scope"].as_str().is_none_or(str::is_empty) {
        return Err("Invalid JWT: no scope.".into());
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if exp <= now_s || iat > now_s + 300 || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".into());
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn form_decode(s: &str) -> String {
    crate::sigv4::percent_decode(&s.replace('+', " "))
}
