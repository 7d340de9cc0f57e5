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
pub mod gateway;
pub mod metrics;
pub mod mock;
pub mod router;
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

/// Serves HTTP/1.1 on `listener` until `shutdown` turns true; connections
/// already open finish what they are doing.
///
/// At most `max_connections` are served at once: past that the listener is
/// not polled and new connections wait in the kernel's backlog, so memory
/// stays bounded however hard clients push (nginx's `worker_connections`).
pub async fn serve_http<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<GwBody>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = shutdown.changed() => return,
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
        let h = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let h = h.clone();
                async move { Ok::<_, std::convert::Infallible>(h(req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
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
    Ok(config::parse(
        &text,
        &path.display().to_string(),
        &env_lookup,
    )?)
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
    tokio::spawn(serve_http(
        listener,
        move |req| g.clone().handle(req),
        rx.clone(),
        max_connections,
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
