//! Skyward's inference gateway: one OpenAI-compatible endpoint that routes
//! each request to a deployment of the model in one of several clouds.
//!
//! ```text
//! client ─▶ hyper (HTTP/1.1) ─▶ auth + key limits ─▶ router (pure: policy,
//!   breaker, limits, residency) ─▶ upstream (pooled hyper client) ─▶ body
//!   passed through, `model` mapped; SSE forwarded chunk by chunk
//!   └── usage ─▶ JSON lines (FOCUS for the ledger) + Prometheus
//! ```
//! The configuration file is watched; a valid change is swapped in for
//! new requests while requests in flight finish on the one they started.

pub mod body;
pub mod config;
pub mod eventstream;
pub mod gateway;
pub mod metrics;
pub mod mock;
pub mod router;
pub mod sigv4;
pub mod translate;
pub mod usage;

use crate::body::GwBody;
use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// One connection's use: how many requests it is serving (a response is
/// served until its body is written), or that it is being closed.
struct ConnUse {
    busy: AtomicUsize,
    close: tokio::sync::Notify,
}

const CLOSING: usize = usize::MAX;

impl ConnUse {
    /// A request starts; false when the connection is being closed.
    fn begin(&self) -> bool {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b != CLOSING).then_some(b + 1)
            })
            .is_ok()
    }

    /// Closes it if it serves nothing now (waiting for a request's
    /// headers, or idle between requests).
    fn close_if_idle(&self) -> bool {
        let idle = self
            .busy
            .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if idle {
            self.close.notify_one();
        }
        idle
    }
}

/// Held by a response body: the request is served until it is dropped.
struct Serving(Option<Arc<ConnUse>>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(u) = &self.0 {
            u.busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A response body that keeps its connection counted as busy.
struct Served {
    body: GwBody,
    _serving: Serving,
}

impl hyper::body::Body for Served {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` turns true; connections
/// already open finish what they are doing.
///
/// At most `max_connections` are served at once: past that the listener is
/// not polled and new connections wait in the kernel's backlog, so memory
/// stays bounded however hard clients push (nginx's `worker_connections`).
/// Clients that send nothing cannot fill that cap: a connection must send
/// its request's headers within `header_timeout` of opening or of its last
/// response (also the keep-alive idle timeout), and when the cap is full
/// the oldest connection serving no request is closed to make room (as
/// nginx reuses idle keep-alive connections).
pub async fn serve_http<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
    header_timeout: Duration,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<GwBody>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let conns: Arc<std::sync::Mutex<std::collections::BTreeMap<u64, Arc<ConnUse>>>> =
        Arc::default();
    let mut next_id = 0u64;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) => {
                // Full: the oldest idle connection makes room.
                if let Ok(c) = conns.lock() {
                    let _ = c.values().any(|u| u.close_if_idle());
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => p,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: breathe, go on.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let u = Arc::new(ConnUse {
            busy: AtomicUsize::new(0),
            close: tokio::sync::Notify::new(),
        });
        if let Ok(mut c) = conns.lock() {
            c.insert(id, u.clone());
        }
        let h = handler.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc_use = u.clone();
            let svc = service_fn(move |req| {
                let h = h.clone();
                let u = svc_use.clone();
                async move {
                    if !u.begin() {
                        // Closed to make room as this request came in.
                        let mut r = Response::new(Served {
                            body: GwBody::full(&br#"{"error":{"message":"the gateway is closing this connection; retry","type":"server_error","code":"connection_closing"}}"#[..]),
                            _serving: Serving(None),
                        });
                        *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        r.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                        return Ok::<_, std::convert::Infallible>(r);
                    }
                    let serving = Serving(Some(u));
                    let resp = h(req).await;
                    Ok(resp.map(|body| Served {
                        body,
                        _serving: serving,
                    }))
                }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = &mut conn => {}
                // Idle and asked to make room: nothing is in flight.
                _ = u.close.notified() => {}
            }
            if let Ok(mut c) = conns.lock() {
                c.remove(&id);
            }
        });
    }
}

pub async fn bind(addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::Listen {
            addr: addr.to_string(),
            message: e.to_string(),
        })
}

pub fn env_lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

pub fn load(path: &std::path::Path) -> Result<GatewayConfig, GatewayError> {
    let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut cfg = config::parse(&text, &path.display().to_string(), &env_lookup)?;
    // Vertex AI deployments: their service-account keys are read now, so
    // a missing or bad key is the config's error, naming its key.
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    for m in &mut cfg.models {
        for d in &mut m.deployments {
            if let Some(g) = &mut d.google {
                let file = dir.join(&g.file);
                let bad = |message: String| {
                    GatewayError::Config(config::ConfigError {
                        file: path.display().to_string(),
                        key: g.key.clone(),
                        message,
                    })
                };
                let text = std::fs::metadata(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|m| {
                        if m.len() > 64 * 1024 {
                            Err("larger than 64 KiB: not a service-account key".into())
                        } else {
                            std::fs::read_to_string(&file).map_err(|e| e.to_string())
                        }
                    })
                    .map_err(|e| bad(format!("{}: {e}", file.display())))?;
                let account = gcp_auth::CustomServiceAccount::from_json(&text).map_err(|e| {
                    bad(format!(
                        "{}: not a Google service-account key: {e}",
                        file.display()
                    ))
                })?;
                g.account = Some(Arc::new(account));
            }
        }
    }
    Ok(cfg)
}

/// A running gateway.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Starts the gateway: listener, config watcher, usage writer, health checks.
pub async fn start(
    path: PathBuf,
    cfg: GatewayConfig,
    listen: Option<String>,
) -> Result<Running, GatewayError> {
    let addr = listen.unwrap_or_else(|| cfg.listen.clone());
    let listener = bind(&addr).await?;
    let local = listener.local_addr().map_err(|e| GatewayError::Listen {
        addr: addr.clone(),
        message: e.to_string(),
    })?;
    let mut spent = std::collections::BTreeMap::new();
    let usage_tx = match &cfg.usage_log {
        Some(p) => {
            let p = if std::path::Path::new(p).is_relative() {
                path.parent()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|| PathBuf::from(p))
            } else {
                PathBuf::from(p)
            };
            let (s, bad) = usage::spent_by_key(&p).map_err(|e| GatewayError::Io {
                path: p.display().to_string(),
                message: e.to_string(),
            })?;
            if bad > 0 {
                eprintln!(
                    "skyward gateway: {}: {bad} unreadable lines skipped",
                    p.display()
                );
            }
            spent = s;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| GatewayError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
            let (tx, rx) = mpsc::channel(65_536);
            tokio::spawn(write_usage(file, rx));
            Some(tx)
        }
        None => None,
    };
    let gw = Arc::new(Gateway::new(cfg, usage_tx));
    // Budgets count what was spent before this start, too.
    gw.restore_spend(&spent);
    let (shutdown, rx) = watch::channel(false);
    let g = gw.clone();
    let max_connections = gw.live().cfg.max_connections;
    let header_timeout = Duration::from_millis(gw.live().cfg.timeouts.client_header_ms);
    tokio::spawn(serve_http(
        listener,
        move |req| g.clone().handle(req),
        rx.clone(),
        max_connections,
        header_timeout,
    ));
    tokio::spawn(watch_config(path, gw.clone(), rx.clone()));
    tokio::spawn(health_checks(gw.clone(), rx));
    Ok(Running {
        addr: local,
        gateway: gw,
        shutdown,
    })
}

async fn write_usage(file: std::fs::File, mut rx: mpsc::Receiver<usage::UsageRecord>) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(file);
    while let Some(r) = rx.recv().await {
        let mut batch = vec![r];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
            if batch.len() >= 4_096 {
                break;
            }
        }
        for r in batch {
            if let Ok(line) = serde_json::to_string(&r) {
                let _ = writeln!(w, "{line}");
            }
        }
        let _ = w.flush();
    }
}

/// Polls the configuration file; a valid change is applied, an invalid one
/// is reported and the running configuration kept.
async fn watch_config(path: PathBuf, gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut last = std::fs::read(&path).ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
        let now = std::fs::read(&path).ok();
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        match load(&path) {
            Ok(cfg) => {
                let n = cfg.models.len();
                gw.apply(cfg);
                gw.metrics
                    .reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!("skyward gateway: reloaded {} ({n} models)", path.display());
            }
            Err(e) => {
                gw.metrics
                    .reload_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!("skyward gateway: not reloaded, keeping the running configuration: {e}");
            }
        }
    }
}

async fn health_checks(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let live = gw.live();
        let interval = live.cfg.health.interval_ms;
        let wait = if interval == 0 { 1_000 } else { interval };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = shutdown.changed() => return,
        }
        if interval == 0 {
            continue;
        }
        gw.check_health().await;
    }
}
