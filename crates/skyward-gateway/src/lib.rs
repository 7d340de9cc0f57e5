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

pub mod admin;
pub mod body;
pub mod config;
pub mod eventstream;
pub mod gateway;
pub mod h1;
pub mod metrics;
pub mod mock;
pub mod router;
pub mod shared;
pub mod sigv4;
pub mod trace;
pub mod translate;
pub mod usage;

use crate::body::GwBody;
use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use hyper::body::Incoming;
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
    tls: Option<watch::Receiver<tokio_rustls::TlsAcceptor>>,
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
        // The certificate of the moment: a renewed one serves the
        // connections that open after it was read.
        let tls = tls.as_ref().map(|rx| rx.borrow().clone());
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
            // HTTP/1.1, or HTTP/2: chosen by ALPN under TLS, by the
            // client's first bytes in clear text (h2c with prior
            // knowledge). Either is due within the header timeout, so a
            // client that sends nothing cannot hold its slot.
            let deadline = tokio::time::Instant::now() + header_timeout;
            let chosen = async {
                match tls {
                    None => {
                        let h2 = h2_preface(&stream, deadline).await?;
                        Some((Conn::Plain(stream), h2))
                    }
                    Some(acceptor) => {
                        let s = tokio::time::timeout_at(deadline, acceptor.accept(stream))
                            .await
                            .ok()?
                            .ok()?;
                        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                        Some((Conn::Tls(Box::new(s)), h2))
                    }
                }
            };
            let chosen = tokio::select! {
                c = chosen => c,
                _ = u.close.notified() => None,
            };
            if let Some((io, h2)) = chosen {
                let io = TokioIo::new(io);
                if h2 {
                    let conn = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .timer(hyper_util::rt::TokioTimer::new())
                    .max_concurrent_streams(256)
                    .max_header_list_size(64 * 1024)
                    .keep_alive_interval(Some(Duration::from_secs(30)))
                    .keep_alive_timeout(header_timeout)
                    .serve_connection(io, svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = &mut conn => {}
                        // Idle and asked to make room: nothing is in flight.
                        _ = u.close.notified() => {}
                    }
                } else {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .keep_alive(true)
                        .max_buf_size(64 * 1024)
                        .serve_connection(io, svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = &mut conn => {}
                        _ = u.close.notified() => {}
                    }
                }
            }
            if let Ok(mut c) = conns.lock() {
                c.remove(&id);
            }
        });
    }
}

/// A served connection: clear text or TLS.
enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// HTTP/2's connection preface, which an h2c client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a clear-text client opens with HTTP/2's preface, looking at
/// its first bytes without taking them (until they differ from the
/// preface, or all 24 match), by `deadline`; None when it sends nothing
/// in time or closes.
async fn h2_preface(s: &tokio::net::TcpStream, deadline: tokio::time::Instant) -> Option<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, s.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A preface sent in pieces: look again shortly (peek returns at
        // once while the bytes seen are still there).
        tokio::time::sleep(Duration::from_millis(5)).await;
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

/// The largest config, certificate or key file read (the config is
/// polled twice a second: a file grown past this is not read whole).
pub const WATCHED_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A file whole, when it is at most `WATCHED_FILE_BYTES_MAX` bytes.
fn read_bounded(p: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    std::fs::File::open(p)?
        .take(WATCHED_FILE_BYTES_MAX + 1)
        .read_to_end(&mut v)?;
    if v.len() as u64 > WATCHED_FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {WATCHED_FILE_BYTES_MAX} bytes"
        )));
    }
    Ok(v)
}

pub fn load(path: &std::path::Path) -> Result<GatewayConfig, GatewayError> {
    let text = read_bounded(path)
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
        .map_err(|e| GatewayError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let mut cfg = config::parse(&text, &path.display().to_string(), &env_lookup)?;
    // Keys made through the admin API: appended to the config's own and
    // checked by the same rules.
    if let Some(admin) = &cfg.admin {
        let kf = path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&admin.keys_file);
        let managed = read_keys_file(&kf)?;
        if !managed.is_empty() {
            let bad = |message: String| GatewayError::Io {
                path: kf.display().to_string(),
                message,
            };
            let mut doc: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let map = doc
                .as_mapping_mut()
                .ok_or_else(|| bad("the config is not a mapping".into()))?;
            let keys = map
                .entry(serde_yaml::Value::from("keys"))
                .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
            let seq = keys
                .as_sequence_mut()
                .ok_or_else(|| bad("keys: is not a list".into()))?;
            let names: std::collections::BTreeSet<String> = managed
                .iter()
                .filter_map(|k| k.get("name").and_then(|n| n.as_str()).map(str::to_string))
                .collect();
            for k in managed {
                seq.push(serde_yaml::to_value(k).map_err(|e| bad(e.to_string()))?);
            }
            let merged = serde_yaml::to_string(&doc).map_err(|e| bad(e.to_string()))?;
            cfg = config::parse(
                &merged,
                &format!("{} with {}", path.display(), kf.display()),
                &env_lookup,
            )?;
            for k in &mut cfg.keys {
                k.managed = names.contains(&k.name);
            }
        }
    }
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

/// The listener's TLS (certificate chain and key, ALPN h2 then
/// http/1.1) and the extra roots for https upstreams, read from the files
/// the config names (relative to it). Errors name the config key.
pub fn tls_files(
    path: &std::path::Path,
    cfg: &GatewayConfig,
) -> Result<
    (
        Option<tokio_rustls::TlsAcceptor>,
        Vec<rustls_pki_types::CertificateDer<'static>>,
    ),
    GatewayError,
> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let bad = |key: &str, message: String| {
        GatewayError::Config(config::ConfigError {
            file: path.display().to_string(),
            key: key.to_string(),
            message,
        })
    };
    let certs = |key: &str, f: &str| -> Result<Vec<CertificateDer<'static>>, GatewayError> {
        let file = dir.join(f);
        let v: Result<Vec<_>, _> = CertificateDer::pem_file_iter(&file)
            .map_err(|e| bad(key, format!("{}: {e}", file.display())))?
            .collect();
        let v = v.map_err(|e| bad(key, format!("{}: {e}", file.display())))?;
        if v.is_empty() {
            return Err(bad(
                key,
                format!("{}: no PEM certificate in it", file.display()),
            ));
        }
        Ok(v)
    };
    let acceptor = match &cfg.tls {
        None => None,
        Some((cert_file, key_file)) => {
            let chain = certs("tls.cert_file", cert_file)?;
            let kf = dir.join(key_file);
            let key = PrivateKeyDer::from_pem_file(&kf)
                .map_err(|e| bad("tls.key_file", format!("{}: {e}", kf.display())))?;
            Some(acceptor(chain, key).map_err(|e| bad("tls.key_file", e))?)
        }
    };
    let roots = match &cfg.upstream_ca_file {
        None => Vec::new(),
        Some(f) => {
            let v = certs("upstream_ca_file", f)?;
            let mut store = rustls::RootCertStore::empty();
            for c in &v {
                store
                    .add(c.clone())
                    .map_err(|e| bad("upstream_ca_file", format!("{f}: {e}")))?;
            }
            v
        }
    };
    Ok((acceptor, roots))
}

/// The largest keys file read (about 40,000 keys).
pub const KEYS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The keys made through the admin API: `{"keys": [{name, tenant,
/// key_sha256, limits, budget_usd, budget_period, models, tags}]}`, none
/// when the file does not exist yet.
pub fn read_keys_file(p: &std::path::Path) -> Result<Vec<serde_json::Value>, GatewayError> {
    let bad = |message: String| GatewayError::Io {
        path: p.display().to_string(),
        message,
    };
    let text = match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(bad(e.to_string())),
        Ok(m) if m.len() > KEYS_FILE_BYTES_MAX => {
            return Err(bad(format!("larger than {KEYS_FILE_BYTES_MAX} bytes")))
        }
        Ok(_) => std::fs::read_to_string(p).map_err(|e| bad(e.to_string()))?,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    v.get("keys")
        .and_then(|k| k.as_array())
        .cloned()
        .ok_or_else(|| bad("no \"keys\" list in it".into()))
}

/// Writes the keys file whole and durably: a temporary file, fsync,
/// rename, fsync of the directory. A crash leaves the old file or the new.
pub fn write_keys_file(p: &std::path::Path, keys: &[serde_json::Value]) -> Result<(), String> {
    use std::io::Write;
    let dir = p.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("keys")
    ));
    let body =
        serde_json::to_vec_pretty(&serde_json::json!({"keys": keys})).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&body).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    drop(f);
    std::fs::rename(&tmp, p).map_err(|e| format!("{}: {e}", p.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A TLS acceptor offering h2 then http/1.1 by ALPN.
pub fn acceptor(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let mut sc = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the key does not go with the certificate: {e}"))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(sc)))
}

/// A TLS acceptor from PEM files (the mock's `--tls-cert`/`--tls-key`).
pub fn acceptor_from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    let chain: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect();
    let chain = chain.map_err(|e| format!("{}: {e}", cert.display()))?;
    let k = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    acceptor(chain, k)
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
    let (acceptor, roots) = tls_files(&path, &cfg)?;
    let tracing = cfg.tracing.clone();
    let mut gw =
        Gateway::with_roots(cfg, usage_tx, roots).map_err(|message| GatewayError::Listen {
            addr: addr.clone(),
            message,
        })?;
    let mut spans = None;
    if let Some(t) = &tracing {
        let (tracer, rx) = trace::tracer(t.sample_ratio);
        gw = gw.with_tracer(tracer);
        spans = Some(rx);
    }
    let gw = Arc::new(gw.with_config_path(path.clone()));
    if let (Some(t), Some(rx)) = (tracing, spans) {
        tokio::spawn(gw.clone().export_spans(rx, t.otlp_endpoint, t.service_name));
    }
    // Budgets count what was spent before this start, too.
    gw.restore_spend(&spent);
    let (shutdown, rx) = watch::channel(false);
    let g = gw.clone();
    let max_connections = gw.live().cfg.max_connections;
    let header_timeout = Duration::from_millis(gw.live().cfg.timeouts.client_header_ms);
    let (tls_tx, tls_rx) = match acceptor {
        Some(a) => {
            let (tx, rx) = watch::channel(a);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    tokio::spawn(serve_http(
        listener,
        move |req| g.clone().handle(req),
        rx.clone(),
        max_connections,
        header_timeout,
        tls_rx,
    ));
    tokio::spawn(watch_config(path, gw.clone(), rx.clone(), tls_tx));
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

/// The listener's certificate and key files as they are now (`None`
/// without TLS or when one cannot be read).
fn tls_bytes(path: &std::path::Path, cfg: &GatewayConfig) -> Option<(Vec<u8>, Vec<u8>)> {
    let (cert, key) = cfg.tls.as_ref()?;
    Some((beside(path, cert)?, beside(path, key)?))
}

/// The bytes of the private CA trusted for upstreams, if the config names
/// one and it can be read.
fn ca_bytes(path: &std::path::Path, cfg: &GatewayConfig) -> Option<Vec<u8>> {
    beside(path, cfg.upstream_ca_file.as_ref()?)
}

/// A file the config names, relative to the config's own directory.
fn beside(config: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let dir = config.parent().unwrap_or(std::path::Path::new("."));
    read_bounded(&dir.join(name)).ok()
}

/// Applies `cfg` trusting `roots` for upstreams, and says so when the
/// upstream clients were built again.
fn apply_trusting(
    gw: &Gateway,
    cfg: GatewayConfig,
    roots: Vec<rustls_pki_types::CertificateDer<'static>>,
) {
    if gw.apply_trusting(cfg, Some(roots)) {
        eprintln!(
            "skyward gateway: new connections to upstreams use the CA of upstream_ca_file and timeouts.connect_ms as they now are"
        );
    }
}

/// Polls the configuration file; a valid change is applied, an invalid one
/// is reported and the running configuration kept. With TLS on, it polls
/// the certificate and key files too: a renewed pair that goes together
/// serves the connections opened from then on (a pair caught half written
/// is refused, and taken once the other file follows). The CA trusted for
/// upstreams (`upstream_ca_file`) is polled the same way.
async fn watch_config(
    path: PathBuf,
    gw: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<watch::Sender<tokio_rustls::TlsAcceptor>>,
) {
    let mut last = read_bounded(&path).ok();
    let mut last_tls = tls_bytes(&path, &gw.live().cfg);
    let mut last_ca = ca_bytes(&path, &gw.live().cfg);
    // Why the file could not be read last time, said once until it changes.
    let mut unreadable: Option<String> = None;
    let count = |ok: bool| {
        let c = if ok {
            &gw.metrics.reloads
        } else {
            &gw.metrics.reload_errors
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
        let now = match read_bounded(&path) {
            Ok(b) => {
                unreadable = None;
                Some(b)
            }
            Err(e) => {
                let why = e.to_string();
                if unreadable.as_deref() != Some(why.as_str()) {
                    count(false);
                    eprintln!(
                        "skyward gateway: not reloaded, keeping the running configuration: {}: {why}",
                        path.display()
                    );
                    unreadable = Some(why);
                }
                None
            }
        };
        if now.is_some() && now != last {
            last = now;
            let loaded = load(&path).and_then(|cfg| {
                let (acceptor, roots) = tls_files(&path, &cfg)?;
                Ok((cfg, acceptor, roots))
            });
            match loaded {
                Ok((cfg, acceptor, roots)) => {
                    let n = cfg.models.len();
                    if cfg.tls.is_some() != tls.is_some() {
                        eprintln!("skyward gateway: tls is {} in {} but was {} at start: turning TLS on or off takes a restart", if cfg.tls.is_some() { "on" } else { "off" }, path.display(), if tls.is_some() { "on" } else { "off" });
                    }
                    last_tls = tls_bytes(&path, &cfg);
                    last_ca = ca_bytes(&path, &cfg);
                    apply_trusting(&gw, cfg, roots);
                    if let (Some(tx), Some(a)) = (&tls, acceptor) {
                        tx.send_replace(a);
                    }
                    count(true);
                    eprintln!("skyward gateway: reloaded {} ({n} models)", path.display());
                }
                Err(e) => {
                    count(false);
                    eprintln!(
                        "skyward gateway: not reloaded, keeping the running configuration: {e}"
                    );
                }
            }
            continue;
        }
        let live = gw.live();
        let cfg = &live.cfg;
        // A renewed upstream CA, the configuration unchanged.
        let now_ca = ca_bytes(&path, cfg);
        if now_ca.is_some() && now_ca != last_ca {
            last_ca = now_ca;
            match tls_files(&path, cfg) {
                Ok((_, roots)) => {
                    count(true);
                    apply_trusting(&gw, cfg.clone(), roots);
                }
                Err(e) => {
                    count(false);
                    eprintln!(
                        "skyward gateway: upstream CA not reloaded, keeping the running one: {e}"
                    );
                }
            }
        }
        // A renewed certificate, the configuration unchanged.
        let Some(tx) = &tls else { continue };
        let now_tls = tls_bytes(&path, cfg);
        if now_tls.is_none() || now_tls == last_tls {
            continue;
        }
        last_tls = now_tls;
        match tls_files(&path, cfg) {
            Ok((Some(a), _)) => {
                tx.send_replace(a);
                count(true);
                eprintln!("skyward gateway: reloaded the TLS certificate and key; new connections use them");
            }
            Ok((None, _)) => {}
            Err(e) => {
                count(false);
                eprintln!(
                    "skyward gateway: TLS certificate not reloaded, keeping the running one: {e}"
                );
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
