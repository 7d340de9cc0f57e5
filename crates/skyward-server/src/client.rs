//! A small HTTP/1.1 client for the API (the CLI and the benchmarks use it).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8470";
/// Largest response read.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server URL '{0}' is not http://host:port")]
    Url(String),
    #[error("cannot reach the Skyward server at {server}: {message} (start one with `skyward up`, or set --server / SKYWARD_SERVER)")]
    Connect { server: String, message: String },
    #[error("the server at {server} did not answer within {seconds} s")]
    Timeout { server: String, seconds: u64 },
    #[error("reading the response: {0}")]
    Body(String),
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    /// Largest response body read (an error past it).
    body_max: usize,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// "code: message (field)" of a JSON error body, or the raw text.
    pub fn error_text(&self) -> String {
        match self.json() {
            Some(v) if v.get("error").is_some() => {
                let e = &v["error"];
                let mut s = format!(
                    "{}: {}",
                    e["code"].as_str().unwrap_or("error"),
                    e["message"].as_str().unwrap_or("")
                );
                if let Some(f) = e["field"].as_str() {
                    s.push_str(&format!(" (field: {f})"));
                }
                s
            }
            _ => format!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(500)
                    .collect::<String>()
            ),
        }
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(ClientError::Url(base));
        }
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(conn);
        Ok(Client {
            base,
            token,
            inner,
            timeout: Duration::from_secs(60),
            body_max: RESPONSE_BYTES_MAX,
        })
    }

    /// The same client reading at most `bytes` of each response body
    /// (a page read from another service is bounded before it is held).
    pub fn with_body_limit(mut self, bytes: usize) -> Client {
        self.body_max = bytes.min(RESPONSE_BYTES_MAX);
        self
    }

    /// The same client with another limit on each request (a long poll
    /// needs its wait plus a margin; a dead connection is given up then).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
    ) -> Result<Reply, ClientError> {
        let uri = format!("{}{}", self.base, path);
        let mut b = hyper::Request::builder().method(method).uri(&uri);
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let req = match body {
            Some((ct, bytes)) => b
                .header("content-type", ct)
                .body(Full::new(Bytes::from(bytes))),
            None => b.body(Full::new(Bytes::new())),
        }
        .map_err(|_| ClientError::Url(uri.clone()))?;
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limited = http_body_util::Limited::new(resp.into_body(), self.body_max);
        let body = limited
            .collect()
            .await
            .map_err(|e| ClientError::Body(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl Client {
    /// Sends within the timeout; connection failures name the root cause.
    async fn send(
        &self,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        tokio::time::timeout(self.timeout, self.inner.request(req))
            .await
            .map_err(|_| ClientError::Timeout {
                server: self.base.clone(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| ClientError::Connect {
                server: self.base.clone(),
                message: root_cause(&e),
            })
    }

    /// Sends a request and waits only for the first body chunk (time to
    /// first token of a stream); returns the status. The rest is dropped.
    pub async fn first_chunk(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<u16, ClientError> {
        let uri = format!("{}{}", self.base, path);
        let req = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ClientError::Url(uri.clone()))?;
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let mut b = resp.into_body();
        loop {
            match b.frame().await {
                Some(Ok(f)) if f.data_ref().is_some_and(|d| !d.is_empty()) => return Ok(status),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Body(e.to_string())),
                None => return Ok(status),
            }
        }
    }
}

/// A request body fed chunk by chunk (a file streamed from disk).
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// Chunk size of a streamed upload.
const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

impl Client {
    /// Sends a file as the body, streamed from disk (never whole in
    /// memory), and waits up to `timeout` for the answer.
    pub async fn upload(
        &self,
        path: &str,
        file: &std::path::Path,
        content_type: &str,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        use std::io::Read;
        let mut f = std::fs::File::open(file)
            .map_err(|e| ClientError::Body(format!("{}: {e}", file.display())))?;
        let len = f.metadata().map(|m| m.len()).ok();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        // A blocking thread reads the file; the channel bounds memory.
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; UPLOAD_CHUNK_BYTES];
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        let uri = format!("{}{}", self.base, path);
        let mut b = hyper::Request::builder()
            .method("POST")
            .uri(&uri)
            .header("content-type", content_type);
        if let Some(n) = len {
            b = b.header("content-length", n);
        }
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b
            .body(ChannelBody { rx })
            .map_err(|_| ClientError::Url(uri.clone()))?;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(5)));
        let client: HyperClient<HttpConnector, ChannelBody> =
            HyperClient::builder(TokioExecutor::new()).build(conn);
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| ClientError::Timeout {
                server: self.base.clone(),
                seconds: timeout.as_secs(),
            })?
            .map_err(|e| ClientError::Connect {
                server: self.base.clone(),
                message: root_cause(&e),
            })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = http_body_util::Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| ClientError::Body(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
