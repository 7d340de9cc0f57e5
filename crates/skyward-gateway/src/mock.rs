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

use crate::body::GwBody;
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
        }
    }

    /// Requests must carry this key (`Authorization: Bearer`, or Azure's
    /// `api-key`).
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
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}}),
            ),
        }
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
        for i in 0..mode.chunks {
            if mode.fail_after_chunks == Some(i) {
                // Ends the body without [DONE]: a broken stream.
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
            let delta = if chat {
                json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]})
            } else {
                json!({"id": "mock-1", "object": "text_completion", "created": 0, "model": model, "choices": [{"index": 0, "text": format!("tok{i} "), "finish_reason": null}]})
            };
            if tx
                .send(Bytes::from(format!("data: {delta}\n\n")))
                .await
                .is_err()
            {
                self.stats.streams_abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if include_usage {
            let u = json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": mode.chunks, "total_tokens": prompt_tokens + u64::from(mode.chunks)}});
            if tx
                .send(Bytes::from(format!("data: {u}\n\n")))
                .await
                .is_err()
            {
                self.stats.streams_abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if tx
            .send(Bytes::from_static(b"data: [DONE]\n\n"))
            .await
            .is_ok()
        {
            self.stats.streams_completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.streams_abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}
