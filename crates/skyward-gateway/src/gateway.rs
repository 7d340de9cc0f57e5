//! The gateway's request path (I/O edge around [`crate::router`]). It
//! reads the clock (latency is what it measures), and its errors are
//! whole HTTP responses, built once where they arise.
#![allow(clippy::disallowed_methods, clippy::result_large_err)]

use crate::body::{GwBody, UpBody, UpError};
use crate::config::{GatewayConfig, Key, Model};
use crate::metrics::Metrics;
use crate::router::{self, Breaker, DeploymentState, Outcome, Rng, Window};
use crate::translate::{self, Wire};
use crate::usage::UsageRecord;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Largest request body (embeddings can be large).
pub const REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest non-streamed upstream answer.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Chunks buffered between upstream and client in a stream.
const STREAM_CHANNEL: usize = 64;

/// Pooled HTTP/1.1 client, plain or TLS (rustls with the Mozilla roots).
type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
/// A deployment's routing state, shared across configuration generations.
type SharedState = Arc<Mutex<DeploymentState>>;

/// One configuration generation. Requests hold the one they started with;
/// a reload swaps in a new one without touching them.
pub struct Live {
    pub cfg: GatewayConfig,
    models: HashMap<String, usize>,
    /// Per model, per deployment: shared with the next generation when
    /// the deployment keeps its name, so stats and in-flight counts carry
    /// across reloads.
    states: Vec<Vec<SharedState>>,
    keys: HashMap<String, usize>,
    /// Limits shared with other replicas (Redis), when configured: the
    /// same connections across reloads while `shared` stays the same.
    shared: Option<Arc<crate::shared::Shared>>,
    /// The clients to upstreams: the same pools across reloads while the
    /// trusted CA and `timeouts.connect_ms` stay the same.
    clients: Arc<Clients>,
}

#[derive(Default)]
struct KeyState {
    rpm: Window,
    tpm: Window,
    spent_usd: f64,
    /// Estimated cost of the key's requests in flight (see
    /// [`Reservation`]).
    reserved_usd: f64,
    /// For a monthly budget: the month `spent_usd` is of
    /// ([`crate::usage::month_of`]).
    month: Option<i64>,
}

impl KeyState {
    /// A monthly budget starts again in a new month.
    fn roll(&mut self, monthly: bool, month: i64) {
        if monthly && self.month != Some(month) {
            self.spent_usd = 0.0;
        }
        self.month = monthly.then_some(month);
    }
}

/// What a request in flight may cost its key, held against the key's
/// budget until the request ends (then its actual cost is charged), so
/// that concurrent requests cannot all pass a budget that covers few.
struct Reservation {
    gw: Arc<Gateway>,
    key: String,
    usd: f64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut ks = match self.gw.key_states.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if let Some(st) = ks.get_mut(&self.key) {
            st.reserved_usd = (st.reserved_usd - self.usd).max(0.0);
        }
    }
}

/// Completion tokens assumed for a request that does not give
/// `max_tokens` (or `max_completion_tokens`), for its reservation.
pub const COMPLETION_ESTIMATE_TOKENS: u64 = 512;

/// Dollars as people read them: cents for most amounts, more digits for
/// small ones ($0.00001 is not "$0.00").
pub fn usd(v: f64) -> String {
    if v.abs() >= 0.01 || v == 0.0 {
        format!("${v:.2}")
    } else {
        let s = format!("{v:.8}");
        let s = s.trim_end_matches('0');
        format!("${s}")
    }
}

pub struct Gateway {
    live: RwLock<Arc<Live>>,
    dep_states: Mutex<HashMap<(String, String), SharedState>>,
    /// By key name (a rotated key keeps its budget and windows).
    key_states: Mutex<HashMap<String, KeyState>>,
    pub metrics: Metrics,
    rng: Mutex<Rng>,
    usage: Option<mpsc::Sender<UsageRecord>>,
    epoch: Instant,
    inflight: Arc<std::sync::atomic::AtomicU64>,
    /// The buffer budget, in KiB (`max_buffered_mb`).
    buffers: Arc<tokio::sync::Semaphore>,
    /// OpenTelemetry traces, when configured.
    tracer: Option<crate::trace::Tracer>,
    /// The config file (the admin API writes its keys file beside it and
    /// loads the two again).
    pub(crate) config_path: Option<std::path::PathBuf>,
    /// One admin change at a time.
    pub(crate) admin_lock: tokio::sync::Mutex<()>,
}

/// The clients to upstreams, built from the roots trusted beside the
/// Mozilla ones (`upstream_ca_file`) and `timeouts.connect_ms`.
struct Clients {
    /// Pooled HTTP/1.1 or HTTP/2 (by ALPN): https upstreams.
    client: Upstream,
    /// HTTP/2 only: `h2c: true` deployments.
    client_h2c: Upstream,
    /// The own HTTP/1.1 client: `http://` deployments (not `h2c`).
    h1: crate::h1::Pool,
    extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    connect_ms: u64,
}

impl Clients {
    fn build(
        extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
        connect_ms: u64,
    ) -> Result<Clients, String> {
        let mut conn = HttpConnector::new();
        conn.enforce_http(false);
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_millis(connect_ms)));
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for c in &extra_roots {
            // Checked when read (crate::tls_files).
            let _ = roots.add(c.clone());
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS for upstreams: {e}"))?;
        let conn = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(conn);
        let client = Client::builder(TokioExecutor::new())
            .http1_max_buf_size(64 * 1024)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(conn.clone());
        // For `h2c: true` deployments: HTTP/2 from the first byte, many
        // requests on one connection.
        let client_h2c = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build(conn);
        Ok(Clients {
            client,
            client_h2c,
            h1: crate::h1::Pool::new(Duration::from_millis(connect_ms)),
            extra_roots,
            connect_ms,
        })
    }

    /// The pool a deployment's requests go through (hyper's).
    fn hyper_for(&self, d: &crate::config::Deployment) -> &Upstream {
        if d.h2c {
            &self.client_h2c
        } else {
            &self.client
        }
    }

    /// Sends a request to a deployment: `http://` ones through the own
    /// HTTP/1.1 client, `https://` and `h2c` ones through hyper's.
    async fn send(
        &self,
        d: &crate::config::Deployment,
        req: Request<Bytes>,
    ) -> Result<Response<UpBody>, UpError> {
        if !d.h2c && req.uri().scheme() == Some(&hyper::http::uri::Scheme::HTTP) {
            return Ok(self.h1.send(req).await?.map(UpBody::H1));
        }
        Ok(self
            .hyper_for(d)
            .request(req.map(Full::new))
            .await?
            .map(UpBody::Hyper))
    }
}

/// A request's hold on its key's shared budget; when it ends (dropped),
/// the hold goes and its tokens and cost are counted in Redis.
struct SharedHold {
    shared: Arc<crate::shared::Shared>,
    key: String,
    reserve_usd: f64,
    month: Option<i64>,
    /// (tokens, cost) once known.
    charged: Mutex<(u64, f64)>,
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        let (tokens, cost) = self.charged.lock().map(|c| *c).unwrap_or((0, 0.0));
        let (sh, key, reserve, month) = (
            self.shared.clone(),
            std::mem::take(&mut self.key),
            self.reserve_usd,
            self.month,
        );
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                sh.settle(&key, reserve, tokens, cost, month, now_unix_s())
                    .await;
            });
        }
    }
}

/// The span of the attempt under way (none when the request is not
/// traced).
struct Attempt {
    trace: Option<Arc<crate::trace::RequestTrace>>,
    span: usize,
}

impl Attempt {
    fn status(&self, code: u16) {
        if let Some(t) = &self.trace {
            t.attempt_status(self.span, code);
        }
    }

    fn end(&self, error: Option<&str>) {
        if let Some(t) = &self.trace {
            t.attempt_end(self.span, None, error);
        }
    }
}

/// One request in flight through the gateway; released when dropped
/// (for a stream, when the stream ends).
pub struct InflightGuard(Arc<std::sync::atomic::AtomicU64>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How long an upstream asks to be left alone: `retry-after-ms` (Azure
/// OpenAI's, milliseconds) first, then `Retry-After` in seconds or as an
/// HTTP date (RFC 9110 §10.2.3); at most an hour.
pub fn retry_after_ms(h: &hyper::HeaderMap, now: std::time::SystemTime) -> Option<u64> {
    let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let capped = |ms: f64| (ms.is_finite() && ms >= 0.0).then(|| ms.min(3_600_000.0) as u64);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Some(v) = capped(ms) {
            return Some(v);
        }
    }
    let v = text("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return capped(s * 1000.0);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .map(|d| d.as_millis().min(3_600_000) as u64)
            .unwrap_or(0),
    )
}

/// The upstream's rate-limit state (`x-ratelimit-*`) and its request ids
/// (`x-request-id`, Azure's `apim-request-id`, …) reach the client, as
/// OpenAI's clients read them; at most 32 such headers.
fn pass_upstream_headers(from: &hyper::HeaderMap, to: &mut hyper::HeaderMap) {
    for (name, value) in from
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            n.starts_with("x-ratelimit-")
                || n.starts_with("anthropic-ratelimit-")
                || n.ends_with("request-id")
                || n == "x-amzn-requestid"
        })
        .take(32)
    {
        to.insert(name.clone(), value.clone());
    }
}

/// Where a request for `path` (`/chat/completions`) goes on a deployment:
/// its URL, the path, then its query (Azure's `api-version`).
fn upstream_uri(d: &crate::config::Deployment, path: &str) -> String {
    // Pieces pushed, not format!: this runs for every request.
    let mut u = String::with_capacity(d.url.len() + path.len() + 1 + d.query.len());
    u.push_str(&d.url);
    u.push_str(path);
    if !d.query.is_empty() {
        u.push('?');
        u.push_str(&d.query);
    }
    u
}

/// A Vertex AI deployment's OAuth token (None for other deployments):
/// minted from its service account on first use and again before it
/// expires (gcp_auth keeps it), within `wait`.
async fn google_token(
    d: &crate::config::Deployment,
    wait: Duration,
) -> Result<Option<String>, String> {
    use gcp_auth::TokenProvider;
    let Some(account) = d.google.as_ref().and_then(|g| g.account.as_ref()) else {
        return Ok(None);
    };
    match tokio::time::timeout(wait, account.token(&[crate::config::GOOGLE_SCOPE])).await {
        Ok(Ok(t)) => Ok(Some(t.as_str().to_string())),
        Ok(Err(e)) => Err(format!("no OAuth token for its service account: {e}")),
        Err(_) => Err(format!(
            "no OAuth token for its service account within {} ms",
            wait.as_millis()
        )),
    }
}

/// Anthropic's API version the translation is written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The deployment's credentials as its API takes them, for a request to
/// `uri` carrying `payload` (SigV4 signs both).
fn authorize(
    mut b: hyper::http::request::Builder,
    d: &crate::config::Deployment,
    method: &str,
    uri: &str,
    payload: &[u8],
) -> hyper::http::request::Builder {
    use crate::config::Auth;
    if d.api == crate::config::Api::Anthropic {
        b = b.header("anthropic-version", ANTHROPIC_VERSION);
    }
    match (d.auth, &d.api_key, &d.aws) {
        (Auth::Bearer, Some(k), _) => b.header(AUTHORIZATION, format!("Bearer {k}")),
        (Auth::ApiKey, Some(k), _) => b.header("api-key", k),
        (Auth::XApiKey, Some(k), _) => b.header("x-api-key", k),
        (Auth::SigV4, _, Some((creds, region))) => {
            let Ok(u) = uri.parse::<hyper::Uri>() else {
                return b;
            };
            // A signature is dated by the wall clock.
            let now = now_unix_s();
            let signed = crate::sigv4::sign(
                &crate::sigv4::Signable {
                    method,
                    host: u.authority().map(|a| a.as_str()).unwrap_or(""),
                    path: u.path(),
                    query: u.query().unwrap_or(""),
                    headers: &[],
                    payload,
                },
                creds,
                region,
                "bedrock",
                now,
            );
            for (n, v) in signed.headers {
                b = b.header(n, v);
            }
            b
        }
        _ => b,
    }
}

/// What the gateway reads of a request body; the rest passes as it came.
#[derive(serde::Deserialize)]
struct Head {
    model: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
}

/// A request's body is held up to this many times at once (the bytes, the
/// parsed JSON, the payload sent upstream).
const REQUEST_COPIES: u64 = 3;

/// Reads a refused request's body (`declared` bytes, at most 16 MiB)
/// and drops each chunk as it comes, for at most 10 s: no memory is held.
fn discard(mut body: Incoming, declared: u64) {
    if declared > REQUEST_BYTES_MAX as u64 {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let mut seen = 0u64;
            while let Some(Ok(f)) = body.frame().await {
                seen += f.data_ref().map(|d| d.len() as u64).unwrap_or(0);
                if seen > declared {
                    break;
                }
            }
        })
        .await;
    });
}

/// Why a body could not be read into the buffer budget.
enum ReadError {
    TooLarge,
    /// The gateway holds `max_buffered_mb` already.
    Full,
    Broken,
}

/// Reads a body whole, each chunk counted against the buffer budget
/// (`copies` times) before it is kept: the memory all requests hold
/// together stays under `max_buffered_mb`, however many are in flight.
async fn read_counted<B>(
    body: &mut B,
    limit: usize,
    budget: &Arc<tokio::sync::Semaphore>,
    copies: u64,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ReadError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    // Most bodies come in one frame, kept as it came; a second one
    // starts a copy.
    let mut first: Option<Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    let mut hold = BufferHold::new(budget.clone());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        let total = held + data.len();
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        if held == 0 {
            first = Some(data);
        } else {
            if let Some(f) = first.take() {
                buf.extend_from_slice(&f);
            }
            buf.extend_from_slice(&data);
        }
        if !hold.grow(total.saturating_mul(copies as usize)) {
            return Err(ReadError::Full);
        }
    }
    let whole = match first {
        Some(f) => f,
        None => buf.freeze(),
    };
    Ok((whole, hold.into_permit()))
}

/// A share of the buffer budget (`max_buffered_mb`): the most a body or a
/// stream has held at once, in KiB, kept until it is dropped.
struct BufferHold {
    budget: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    kib: u64,
}

impl BufferHold {
    fn new(budget: Arc<tokio::sync::Semaphore>) -> BufferHold {
        BufferHold {
            budget,
            permit: None,
            kib: 0,
        }
    }

    /// Holds `bytes` if more than held so far; false when the budget
    /// has no room for them.
    fn grow(&mut self, bytes: usize) -> bool {
        let need = (bytes as u64).div_ceil(1024);
        if need <= self.kib {
            return true;
        }
        let Ok(more) = u32::try_from(need - self.kib) else {
            return false;
        };
        match self.budget.clone().try_acquire_many_owned(more) {
            Ok(p) => {
                match self.permit.as_mut() {
                    Some(h) => h.merge(p),
                    None => self.permit = Some(p),
                }
                self.kib = need;
                true
            }
            Err(_) => false,
        }
    }

    fn into_permit(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permit
    }
}

fn buffers_full(max_mb: u64) -> Response<GwBody> {
    let mut r = openai_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "overloaded",
        &format!(
            "The gateway holds {max_mb} MiB of request and response bodies already (max_buffered_mb); try again shortly."
        ),
        None,
    );
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

pub(crate) fn openai_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response<GwBody> {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    let mut r = Response::new(GwBody::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The wall clock in Unix milliseconds: the gateway's one reading of it
/// for dates (usage records, signatures, tokens, budget months, the
/// shared limits' windows).
pub(crate) fn now_unix_ms() -> i64 {
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The same, in Unix seconds.
pub(crate) fn now_unix_s() -> i64 {
    now_unix_ms().div_euclid(1000)
}

impl Gateway {
    pub fn new(
        cfg: GatewayConfig,
        usage: Option<mpsc::Sender<UsageRecord>>,
    ) -> Result<Gateway, String> {
        Gateway::with_roots(cfg, usage, Vec::new())
    }

    /// A gateway whose https upstreams may also present certificates
    /// issued by `extra_roots` (beside the Mozilla roots). HTTP/2 is
    /// offered to https upstreams by ALPN, HTTP/1.1 otherwise.
    pub fn with_roots(
        cfg: GatewayConfig,
        usage: Option<mpsc::Sender<UsageRecord>>,
        extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    ) -> Result<Gateway, String> {
        let clients = Arc::new(Clients::build(extra_roots, cfg.timeouts.connect_ms)?);
        let gw = Gateway {
            live: RwLock::new(Arc::new(Live {
                cfg: cfg.clone(),
                models: HashMap::new(),
                states: Vec::new(),
                keys: HashMap::new(),
                shared: None,
                clients,
            })),
            dep_states: Mutex::new(HashMap::new()),
            key_states: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            rng: Mutex::new(Rng::new(0x5eed_cafe)),
            usage,
            epoch: Instant::now(),
            inflight: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            buffers: Arc::new(tokio::sync::Semaphore::new(
                (cfg.max_buffered_mb.saturating_mul(1024)).min(u32::MAX as u64 / 2) as usize,
            )),
            tracer: None,
            config_path: None,
            admin_lock: tokio::sync::Mutex::new(()),
        };
        gw.apply(cfg);
        Ok(gw)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// What each key has spent (this month for a monthly budget).
    pub fn spent_by_key(&self) -> HashMap<String, f64> {
        match self.key_states.lock() {
            Ok(m) => m.iter().map(|(k, s)| (k.clone(), s.spent_usd)).collect(),
            Err(_) => HashMap::new(),
        }
    }

    /// The config file it was loaded from (for the admin API).
    pub fn with_config_path(mut self, p: std::path::PathBuf) -> Gateway {
        self.config_path = Some(p);
        self
    }

    /// Traces each request (see `crate::trace`).
    pub fn with_tracer(mut self, t: crate::trace::Tracer) -> Gateway {
        self.tracer = Some(t);
        self
    }

    /// Sends queued spans to the OTLP endpoint in batches until the queue
    /// closes; a failed export drops its batch (counted).
    pub async fn export_spans(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Value>,
        endpoint: String,
        service: String,
    ) {
        let Some(counters) = self.tracer.as_ref().map(|t| t.counters.clone()) else {
            return;
        };
        loop {
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + Duration::from_secs(1);
            while batch.len() < crate::trace::BATCH_SPANS_MAX {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(sp)) => batch.push(sp),
                    Ok(None) | Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            let body = crate::trace::export_body(&service, batch).to_string();
            let req = Request::builder()
                .method(Method::POST)
                .uri(&endpoint)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)));
            let ok = match req {
                Ok(req) => matches!(
                    tokio::time::timeout(Duration::from_secs(5), self.live().clients.client.request(req)).await,
                    Ok(Ok(r)) if r.status().is_success()
                ),
                Err(_) => false,
            };
            let c = if ok {
                &counters.exported
            } else {
                &counters.failed_exports
            };
            c.fetch_add(if ok { n } else { 1 }, std::sync::atomic::Ordering::Relaxed);
            if !ok {
                counters
                    .dropped
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    pub fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swaps in a new configuration; requests in flight keep theirs.
    pub fn apply(&self, cfg: GatewayConfig) {
        self.apply_trusting(cfg, None);
    }

    /// The same, trusting `extra_roots` for upstreams beside the Mozilla
    /// roots (`None`: the roots trusted now). True when that or the
    /// connect timeout changed, and new upstream clients (and connection
    /// pools) serve the requests that start after.
    pub fn apply_trusting(
        &self,
        cfg: GatewayConfig,
        extra_roots: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    ) -> bool {
        let mut dep_states = match self.dep_states.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        let mut keep = HashMap::new();
        let mut states = Vec::new();
        let mut models = HashMap::new();
        for (mi, m) in cfg.models.iter().enumerate() {
            models.insert(m.name.clone(), mi);
            let mut v = Vec::new();
            for d in &m.deployments {
                let k = (m.name.clone(), d.name.clone());
                let s = dep_states.get(&k).cloned().unwrap_or_default();
                keep.insert(k, s.clone());
                v.push(s);
            }
            states.push(v);
        }
        *dep_states = keep;
        let keys = cfg
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.sha256.clone(), i))
            .collect();
        // Redis as before when `shared` did not change; else a new client
        // (or none).
        let before = self.live();
        let shared = match (&cfg.shared, &before.cfg.shared, &before.shared) {
            (Some(now), Some(was), Some(sh)) if now == was => Some(sh.clone()),
            (Some(now), _, _) => Some(Arc::new(crate::shared::Shared::new(
                now.target.clone(),
                &now.prefix,
            ))),
            (None, _, _) => None,
        };
        // The upstream clients as before unless what they are built from
        // changed.
        let was = &before.clients;
        let roots = extra_roots.unwrap_or_else(|| was.extra_roots.clone());
        let connect_ms = cfg.timeouts.connect_ms;
        let (clients, rebuilt) = if roots == was.extra_roots && connect_ms == was.connect_ms {
            (was.clone(), false)
        } else {
            match Clients::build(roots, connect_ms) {
                Ok(c) => (Arc::new(c), true),
                Err(e) => {
                    eprintln!("skyward gateway: upstream clients not rebuilt, keeping the running ones: {e}");
                    (was.clone(), false)
                }
            }
        };
        let live = Arc::new(Live {
            cfg,
            models,
            states,
            keys,
            shared,
            clients,
        });
        match self.live.write() {
            Ok(mut l) => *l = live,
            Err(p) => *p.into_inner() = live,
        }
        rebuilt
    }

    /// Live gauges for /metrics: breaker state, in flight, EWMA per deployment.
    pub fn gauges(&self) -> String {
        use std::fmt::Write;
        let live = self.live();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP skyward_gateway_deployment_up 0 while its circuit is open.\n# TYPE skyward_gateway_deployment_up gauge");
        let mut rows = Vec::new();
        for (m, states) in live.cfg.models.iter().zip(&live.states) {
            for (d, s) in m.deployments.iter().zip(states) {
                if let Ok(s) = s.lock() {
                    rows.push((
                        m.name.clone(),
                        d.name.clone(),
                        !matches!(s.breaker, router::BreakerState::Open { .. }),
                        s.inflight,
                        s.ewma_ms,
                    ));
                }
            }
        }
        for (m, d, up, _, _) in &rows {
            let _ = writeln!(
                o,
                "skyward_gateway_deployment_up{{model=\"{m}\",deployment=\"{d}\"}} {}",
                u8::from(*up)
            );
        }
        let _ = writeln!(o, "# HELP skyward_gateway_inflight Requests in flight per deployment.\n# TYPE skyward_gateway_inflight gauge");
        for (m, d, _, n, _) in &rows {
            let _ = writeln!(
                o,
                "skyward_gateway_inflight{{model=\"{m}\",deployment=\"{d}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# HELP skyward_gateway_latency_ewma_seconds Peak-EWMA latency per deployment.\n# TYPE skyward_gateway_latency_ewma_seconds gauge");
        for (m, d, _, _, e) in &rows {
            let _ = writeln!(
                o,
                "skyward_gateway_latency_ewma_seconds{{model=\"{m}\",deployment=\"{d}\"}} {}",
                e / 1000.0
            );
        }
        if let Some(sh) = &self.live().shared {
            let _ = writeln!(o, "# HELP skyward_gateway_shared_limits_fallbacks_total Requests admitted under this replica's own limits because Redis could not answer.\n# TYPE skyward_gateway_shared_limits_fallbacks_total counter\nskyward_gateway_shared_limits_fallbacks_total {}", sh.fallbacks.load(std::sync::atomic::Ordering::Relaxed));
        }
        if let Some(t) = &self.tracer {
            let c = &t.counters;
            let r = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(o, "# HELP skyward_gateway_trace_spans_total Spans sent to the OTLP endpoint, and dropped (queue full or export failed).\n# TYPE skyward_gateway_trace_spans_total counter\nskyward_gateway_trace_spans_total{{result=\"exported\"}} {}\nskyward_gateway_trace_spans_total{{result=\"dropped\"}} {}", r(&c.exported), r(&c.dropped));
            let _ = writeln!(o, "# HELP skyward_gateway_trace_export_failures_total OTLP export requests that failed.\n# TYPE skyward_gateway_trace_export_failures_total counter\nskyward_gateway_trace_export_failures_total {}", r(&c.failed_exports));
        }
        o
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        self.route(req).await
    }

    /// One round of active health checks: `GET <base><path>` per deployment.
    pub async fn check_health(&self) {
        let live = self.live();
        let b = Breaker {
            failures: live.cfg.breaker.failures,
            cooldown_ms: live.cfg.breaker.cooldown_ms,
        };
        let timeout = Duration::from_millis(live.cfg.timeouts.connect_ms.max(100) * 2);
        for (mi, m) in live.cfg.models.iter().enumerate() {
            for (di, d) in m.deployments.iter().enumerate() {
                // Bedrock's runtime endpoint has nothing to GET: its
                // deployments are watched by their answers only.
                if d.api == crate::config::Api::Bedrock {
                    continue;
                }
                let uri = upstream_uri(d, &live.cfg.health.path);
                let rb = Request::builder().method(Method::GET).uri(&uri);
                let mut rb = authorize(rb, d, "GET", &uri, b"");
                if d.google.is_some() {
                    match google_token(d, timeout).await {
                        Ok(Some(t)) => rb = rb.header(AUTHORIZATION, format!("Bearer {t}")),
                        _ => continue,
                    }
                }
                let Ok(req) = rb.body(Full::new(Bytes::new())) else {
                    continue;
                };
                let ok = matches!(
                    tokio::time::timeout(timeout, live.clients.hyper_for(d).request(req)).await,
                    Ok(Ok(r)) if r.status().is_success()
                );
                if let Some(s) = live.states.get(mi).and_then(|v| v.get(di)) {
                    let now = self.now_ms();
                    if let Ok(mut g) = s.lock() {
                        g.health(now, ok, &b);
                    }
                }
            }
        }
    }

    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let suffix = match (&method, path.as_str()) {
            (&Method::POST, "/v1/chat/completions") => "/chat/completions",
            (&Method::POST, "/v1/completions") => "/completions",
            (&Method::POST, "/v1/embeddings") => "/embeddings",
            (&Method::GET, "/v1/models") => return self.local(self.models(&req, None)),
            (&Method::GET, p) if p.starts_with("/v1/models/") => {
                let id = p.trim_start_matches("/v1/models/").to_string();
                return self.local(self.models(&req, Some(&id)));
            }
            (&Method::GET, "/healthz") => {
                return Response::new(GwBody::full("{\"status\":\"ok\"}"))
            }
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(GwBody::full(self.metrics.render(&self.gauges())));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return r;
            }
            (&Method::GET, "/skyward/usage") => return self.local(self.usage_summary(&req)),
            (_, p) if p == "/skyward/admin/keys" || p.starts_with("/skyward/admin/keys/") => {
                return self.local(self.admin_keys(req).await)
            }
            (_, "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings" | "/v1/models") => {
                return self.local(openai_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    "method_not_allowed",
                    &format!("{method} is not allowed on {path}"),
                    None,
                ))
            }
            _ => {
                return self.local(openai_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "not_found",
                    &format!("unknown endpoint {path}"),
                    None,
                ))
            }
        };
        match self.proxy(req, suffix).await {
            Ok(r) => r,
            Err(r) => self.local(r),
        }
    }

    fn local(&self, r: Response<GwBody>) -> Response<GwBody> {
        self.metrics.local(r.status().as_u16());
        r
    }

    fn authenticate(
        &self,
        live: &Live,
        req: &Request<Incoming>,
    ) -> Result<Option<usize>, Response<GwBody>> {
        if live.cfg.keys.is_empty() {
            return Ok(None);
        }
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| {
                let (scheme, rest) = v.trim_start().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest)
            })
            .map(str::trim);
        let Some(token) = token else {
            return Err(openai_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "missing_api_key",
                "You didn't provide an API key (Authorization: Bearer <key>).",
                None,
            ));
        };
        match live.keys.get(&crate::config::sha256_hex(token)) {
            Some(i) => Ok(Some(*i)),
            None => Err(openai_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key provided.",
                None,
            )),
        }
    }

    /// `GET /v1/models`, or one model (`GET /v1/models/{id}`, a 404 in
    /// OpenAI's form when the key may not use it or it does not exist).
    fn models(&self, req: &Request<Incoming>, one: Option<&str>) -> Response<GwBody> {
        let live = self.live();
        let key = match self.authenticate(&live, req) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let key = key.and_then(|k| live.cfg.keys.get(k));
        let tags: &[String] = key.map(|k| k.tags.as_slice()).unwrap_or(&[]);
        let data: Vec<Value> = live
            .cfg
            .models
            .iter()
            .filter(|m| key.is_none_or(|k| k.may_use(&m.name)))
            .filter(|m| m.deployments.iter().any(|d| router::allowed(d, tags)))
            .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": "skyward"}))
            .collect();
        let body = match one {
            None => json!({"object": "list", "data": data}),
            Some(id) => match data.into_iter().find(|m| m["id"] == id) {
                Some(m) => m,
                None => {
                    return openai_error(
                        StatusCode::NOT_FOUND,
                        "invalid_request_error",
                        "model_not_found",
                        &format!(
                            "The model `{}` does not exist or you do not have access to it.",
                            id.chars().take(200).collect::<String>()
                        ),
                        Some("model"),
                    )
                }
            },
        };
        let mut r = Response::new(GwBody::full(body.to_string()));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }

    /// `GET /skyward/usage`: the caller's own tenant's usage (every
    /// tenant's only when the gateway has no keys at all).
    fn usage_summary(&self, req: &Request<Incoming>) -> Response<GwBody> {
        let live = self.live();
        let tenant = match self.authenticate(&live, req) {
            Ok(k) => k
                .and_then(|i| live.cfg.keys.get(i))
                .map(|k| k.tenant.clone()),
            Err(r) => return r,
        };
        let rows: Vec<Value> = self
            .metrics
            .usage
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((t, _), _)| tenant.as_ref().is_none_or(|mine| mine == t))
                    .map(|((t, d), u)| json!({"tenant": t, "deployment": d, "requests": u.requests, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd}))
                    .collect()
            })
            .unwrap_or_default();
        let mut r = Response::new(GwBody::full(json!({"items": rows}).to_string()));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }

    /// Key limits and budget, checked before any upstream is touched.
    /// With a budget, the request's estimated cost is reserved: a request
    /// is admitted while the budget is not spent and either nothing else
    /// of the key is in flight or the spend, the reservations and its own
    /// estimate fit in the budget.
    fn admit_key(
        self: &Arc<Self>,
        key: &Key,
        now_ms: u64,
        estimate_usd: f64,
    ) -> Result<Option<Reservation>, Response<GwBody>> {
        let mut ks = match self.key_states.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let st = ks.entry(key.name.clone()).or_default();
        st.roll(key.budget_monthly, crate::usage::month_of(now_unix_s()));
        let mut reserve = None;
        if let Some(b) = key.budget_usd {
            let spent = st.spent_usd >= b;
            let crowded =
                st.reserved_usd > 0.0 && st.spent_usd + st.reserved_usd + estimate_usd > b;
            if spent || crowded {
                let why = if spent {
                    format!("is spent ({})", usd(st.spent_usd))
                } else {
                    format!(
                        "is taken by requests in flight ({} spent, {} held for requests in flight, this one may cost {})",
                        usd(st.spent_usd),
                        usd(st.reserved_usd),
                        usd(estimate_usd)
                    )
                };
                let mut r = openai_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    "insufficient_quota",
                    &format!("Budget of {} for key '{}' {why}.", usd(b), key.name),
                    None,
                );
                if !spent {
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                }
                return Err(r);
            }
            reserve = Some(estimate_usd);
        }
        let limited = |kind: &str, what: String| {
            let mut r = openai_error(
                StatusCode::TOO_MANY_REQUESTS,
                kind,
                "rate_limit_exceeded",
                &format!("Rate limit reached for key '{}': {what}.", key.name),
                None,
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        };
        if let Some(rpm) = key.limits.rpm {
            if st.rpm.level(now_ms) >= rpm as f64 {
                return Err(limited("requests", format!("{rpm} requests per minute")));
            }
        }
        if let Some(tpm) = key.limits.tpm {
            if st.tpm.level(now_ms) >= tpm as f64 {
                return Err(limited("tokens", format!("{tpm} tokens per minute")));
            }
        }
        st.rpm.add(now_ms, 1);
        Ok(reserve.map(|usd| {
            st.reserved_usd += usd;
            Reservation {
                gw: self.clone(),
                key: key.name.clone(),
                usd,
            }
        }))
    }

    /// Spend already recorded per key name and month (from the usage log
    /// at start): a monthly budget counts this month's only.
    pub fn restore_spend(&self, spent: &crate::usage::SpentByMonth) {
        let live = self.live();
        let month = crate::usage::month_of(now_unix_s());
        if let Ok(mut ks) = self.key_states.lock() {
            for k in &live.cfg.keys {
                let v: f64 = spent
                    .iter()
                    .filter(|((name, m), _)| *name == k.name && (!k.budget_monthly || *m == month))
                    .map(|(_, v)| v)
                    .sum();
                let st = ks.entry(k.name.clone()).or_default();
                st.spent_usd = v;
                st.month = k.budget_monthly.then_some(month);
            }
        }
    }

    fn charge_key(&self, name: &str, now_ms: u64, tokens: u64, cost: f64) {
        if let Ok(mut ks) = self.key_states.lock() {
            let st = ks.entry(name.to_string()).or_default();
            // A charge after the month turned counts in the new month.
            let monthly = st.month.is_some();
            st.roll(monthly, crate::usage::month_of(now_unix_s()));
            st.tpm.add(now_ms, tokens);
            st.spent_usd += cost;
        }
    }

    fn pick(
        &self,
        live: &Live,
        mi: usize,
        tags: &[String],
        tried: &[usize],
    ) -> Result<usize, Vec<(router::Skip, usize)>> {
        let model = &live.cfg.models[mi];
        let mut guards: Vec<_> = live.states[mi]
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            })
            .collect();
        let mut refs: Vec<&mut DeploymentState> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut rng = match self.rng.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        router::pick(model, &mut refs, tags, tried, self.now_ms(), &mut rng)
    }

    /// An attempt's outcome: to the router, and to its span.
    fn attempt_done(&self, live: &Live, mi: usize, di: usize, at: &Attempt, outcome: Outcome) {
        at.end(match outcome {
            Outcome::Success { .. } | Outcome::Neutral => None,
            Outcome::RateLimited { .. } => Some("rate_limited"),
            Outcome::Rejected => Some("rejected"),
            Outcome::Failure => Some("failure"),
        });
        self.finish(live, mi, di, outcome);
    }

    fn finish(&self, live: &Live, mi: usize, di: usize, outcome: Outcome) {
        let b = Breaker {
            failures: live.cfg.breaker.failures,
            cooldown_ms: live.cfg.breaker.cooldown_ms,
        };
        if let Some(s) = live.states.get(mi).and_then(|v| v.get(di)) {
            let now = self.now_ms();
            match s.lock() {
                Ok(mut g) => g.finish(now, outcome, &b),
                Err(p) => p.into_inner().finish(now, outcome, &b),
            }
        }
    }

    async fn proxy(
        self: &Arc<Self>,
        req: Request<Incoming>,
        suffix: &'static str,
    ) -> Result<Response<GwBody>, Response<GwBody>> {
        let mut trace = None;
        let r = self.proxy_traced(req, suffix, &mut trace).await;
        if let Some(t) = trace {
            // A stream's end sets it again, as it ends.
            let (Ok(r) | Err(r)) = &r;
            t.status(r.status().as_u16());
        }
        r
    }

    /// `trace_slot` gets the request's trace once its model is known.
    async fn proxy_traced(
        self: &Arc<Self>,
        req: Request<Incoming>,
        suffix: &'static str,
        trace_slot: &mut Option<Arc<crate::trace::RequestTrace>>,
    ) -> Result<Response<GwBody>, Response<GwBody>> {
        // Read only when tracing: the request's other headers go unread.
        let traceparent = self
            .tracer
            .as_ref()
            .and_then(|_| req.headers().get("traceparent"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let live = self.live();
        let key_idx = self.authenticate(&live, &req)?;
        let n = self
            .inflight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _guard = InflightGuard(self.inflight.clone());
        if n >= live.cfg.max_inflight {
            let mut r = openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "overloaded",
                &format!(
                    "The gateway has {} requests in flight; try again shortly.",
                    live.cfg.max_inflight
                ),
                None,
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return Err(r);
        }
        let key: Option<&Key> = key_idx.and_then(|k| live.cfg.keys.get(k));
        let too_large = || {
            let mut r = openai_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                &format!(
                    "Request body is larger than {} MiB.",
                    REQUEST_BYTES_MAX >> 20
                ),
                None,
            );
            // Its body is not read: the connection ends with the answer.
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            r
        };
        // Refused from its Content-Length before a byte is read.
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > REQUEST_BYTES_MAX as u64) {
            return Err(too_large());
        }
        // Refused at once when its declared size does not fit the buffer
        // budget now; else counted chunk by chunk as it comes.
        let max_mb = live.cfg.max_buffered_mb;
        if let Some(n) = declared {
            let kib = (n * REQUEST_COPIES).div_ceil(1024);
            if kib > self.buffers.available_permits() as u64 {
                // The client is still sending: its body is read and thrown
                // away beside the answer, so it gets the 503 rather than a
                // broken pipe, and the connection stays usable.
                discard(req.into_body(), n);
                return Err(buffers_full(max_mb));
            }
        }
        let mut req_body = req.into_body();
        let read = read_counted(
            &mut req_body,
            REQUEST_BYTES_MAX,
            &self.buffers,
            REQUEST_COPIES,
        )
        .await;
        if matches!(read, Err(ReadError::Full)) {
            // As above: the rest is read and thrown away beside the 503.
            discard(req_body, declared.unwrap_or(REQUEST_BYTES_MAX as u64));
        } else {
            drop(req_body);
        }
        let (bytes, _held) = read.map_err(|e| match e {
            ReadError::TooLarge => too_large(),
            ReadError::Full => buffers_full(max_mb),
            ReadError::Broken => openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_body",
                "Could not read the request body.",
                None,
            ),
        })?;
        // The gateway's own time starts once the client has sent its
        // request: a slow upload is the client's, not added latency.
        let t0 = Instant::now();
        let body_len = bytes.len();
        // The fields the gateway reads, the whole body checked as JSON
        // without building it: most requests go upstream as they came.
        let not_object = || {
            openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                "The request body must be a JSON object.",
                None,
            )
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                    not_object()
                } else {
                    openai_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_json",
                        "We could not parse the JSON body of your request: it is not JSON.",
                        None,
                    )
                },
            );
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(|e| {
            openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                &format!("We could not parse the JSON body of your request: {e}"),
                None,
            )
        })?;
        // The whole body as a value, built only when it must change.
        let mut parsed: Option<Value> = None;
        let model_name = head
            .model
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                openai_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "missing_model",
                    "you must provide a model parameter",
                    Some("model"),
                )
            })?;
        let operation = match suffix {
            "/chat/completions" => "chat",
            "/completions" => "text_completion",
            _ => "embeddings",
        };
        *trace_slot = self
            .tracer
            .as_ref()
            .and_then(|t| t.start(traceparent.as_deref(), operation, &model_name));
        let trace = trace_slot.clone();
        if let (Some(t), Some(k)) = (&trace, key) {
            t.set("skyward.tenant", json!(k.tenant));
            t.set("skyward.key", json!(k.name));
        }
        let allowed = key.is_none_or(|k| k.may_use(&model_name));
        let Some(&mi) = live.models.get(&model_name).filter(|_| allowed) else {
            // A model the key may not use is answered as OpenAI answers
            // one it does not know: nothing said of the others' models.
            return Err(openai_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                &format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    model_name.chars().take(200).collect::<String>()
                ),
                Some("model"),
            ));
        };
        let stream = head
            .stream
            .as_ref()
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Streamed usage is exact only when the upstream sends it: ask for
        // it, and take its chunk out again if the client did not ask.
        let client_usage = head
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let strip_usage = stream && !client_usage && suffix != "/embeddings";
        // The body as a value, built on first need.
        fn whole<'a>(
            parsed: &'a mut Option<Value>,
            bytes: &[u8],
        ) -> Result<&'a mut Value, serde_json::Error> {
            if parsed.is_none() {
                *parsed = Some(serde_json::from_slice(bytes)?);
            }
            Ok(parsed.get_or_insert(Value::Null))
        }
        if strip_usage {
            if let Some(obj) = whole(&mut parsed, &bytes)
                .map_err(|_| not_object())?
                .as_object_mut()
            {
                let opts = obj.entry("stream_options").or_insert_with(|| json!({}));
                if !opts.is_object() {
                    *opts = json!({});
                }
                if let Some(o) = opts.as_object_mut() {
                    o.insert("include_usage".into(), Value::Bool(true));
                }
            }
        }
        let tags: &[String] = key.map(|k| k.tags.as_slice()).unwrap_or(&[]);
        let prompt_estimate = (body_len as u64 / 4).max(1);
        let model: &Model = &live.cfg.models[mi];
        // The most this request may cost: its prompt and the completion it
        // asks for at most, at the dearest of the model's deployments.
        let completion_estimate = [&head.max_completion_tokens, &head.max_tokens]
            .iter()
            .find_map(|v| v.as_ref().and_then(Value::as_u64))
            .unwrap_or(COMPLETION_ESTIMATE_TOKENS);
        let estimate_usd = model
            .deployments
            .iter()
            .map(|d| {
                prompt_estimate as f64 * d.input_usd_per_mtok / 1e6
                    + completion_estimate as f64 * d.output_usd_per_mtok / 1e6
            })
            .fold(0.0, f64::max);
        // Limits shared with the other replicas first (Redis); when Redis
        // cannot answer, this replica's own limits alone.
        let mut shared_hold: Option<Arc<SharedHold>> = None;
        if let (Some(sh), Some(k)) = (&live.shared, key) {
            let month = k
                .budget_monthly
                .then(|| crate::usage::month_of(now_unix_s()));
            let ask = crate::shared::Ask {
                key: &k.name,
                rpm: k.limits.rpm,
                tpm: k.limits.tpm,
                budget_usd: k.budget_usd,
                month,
                reserve_usd: if k.budget_usd.is_some() {
                    estimate_usd
                } else {
                    0.0
                },
                unix_ms: now_unix_ms(),
            };
            match sh.admit(&ask).await {
                Ok(crate::shared::Admission::Admitted) => {
                    shared_hold = Some(Arc::new(SharedHold {
                        shared: sh.clone(),
                        key: k.name.clone(),
                        reserve_usd: ask.reserve_usd,
                        month,
                        charged: Mutex::new((0, 0.0)),
                    }));
                }
                Ok(crate::shared::Admission::RateLimited(what)) => {
                    let mut r = openai_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "requests",
                        "rate_limit_exceeded",
                        &format!(
                            "Rate limit reached for key '{}': {what}, on all replicas together.",
                            k.name
                        ),
                        None,
                    );
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    return Err(r);
                }
                Ok(crate::shared::Admission::OverBudget { spent_usd }) => {
                    let mut r = openai_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "insufficient_quota",
                        "insufficient_quota",
                        &format!(
                            "Budget of {} for key '{}' is spent or held by requests in flight on all replicas together ({} spent).",
                            usd(k.budget_usd.unwrap_or(0.0)),
                            k.name,
                            usd(spent_usd)
                        ),
                        None,
                    );
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    return Err(r);
                }
                Err(e) => {
                    let n = sh
                        .fallbacks
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n.is_power_of_two() {
                        eprintln!("skyward gateway: shared limits unavailable ({e}); this replica's own limits apply ({} requests so far)", n + 1);
                    }
                }
            }
        }
        let reservation = match key {
            Some(k) => self
                .admit_key(k, self.now_ms(), estimate_usd)?
                .map(Arc::new),
            None => None,
        };
        // Deployments behind a translated API (Anthropic, Bedrock) serve
        // chat completions only: for anything else they are not asked.
        let mut tried: Vec<usize> = Vec::new();
        if suffix != "/chat/completions" {
            tried.extend(
                model
                    .deployments
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.api.wire().is_some())
                    .map(|(i, _)| i),
            );
            if tried.len() == model.deployments.len() {
                return Err(openai_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "unsupported_endpoint",
                    &format!(
                        "`{model_name}` is served through {} only, which answers chat completions, not {suffix}.",
                        model.deployments[0].api.as_str()
                    ),
                    None,
                ));
            }
        }
        let mut last_error: Option<Response<GwBody>> = None;
        let mut upstream_wait = Duration::ZERO;
        // total_ms bounds the whole request, every attempt included: an
        // answer not back by then is not asked of another deployment.
        let total = Duration::from_millis(live.cfg.timeouts.total_ms);
        let deadline = t0 + total;
        // One timer for that deadline, armed once and shared by every
        // wait bounded by it (a timer per wait costs per request).
        let expiry = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::pin!(expiry);
        let retries = &model.retries;
        // Whether a failure of this class goes on to another deployment.
        let go_on = |f: crate::config::Failure| retries.on.contains(&f);
        for attempt in 0..=retries.max {
            if Instant::now() >= deadline {
                break;
            }
            let di = match self.pick(&live, mi, tags, &tried) {
                Ok(d) => d,
                Err(skips) => {
                    if let Some(e) = last_error {
                        return Err(e);
                    }
                    let why: Vec<String> = skips
                        .iter()
                        .map(|(s, n)| format!("{n} {}", s.as_str()))
                        .collect();
                    let residency_only = skips.iter().all(|(s, _)| *s == router::Skip::Residency);
                    let (status, code) = if residency_only {
                        (StatusCode::FORBIDDEN, "model_not_allowed")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "no_deployment_available")
                    };
                    let mut r = openai_error(
                        status,
                        "server_error",
                        code,
                        &format!(
                            "No deployment of `{model_name}` can take this request: {}.",
                            why.join(", ")
                        ),
                        None,
                    );
                    if !residency_only {
                        r.headers_mut()
                            .insert("retry-after", HeaderValue::from_static("1"));
                    }
                    return Err(r);
                }
            };
            if attempt > 0 {
                self.metrics
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // The first failover goes to another deployment at once; later
            // ones back off exponentially, with jitter.
            if attempt > 1 {
                let base = retries
                    .backoff_ms
                    .saturating_mul(1 << (attempt - 2).min(16))
                    .min(retries.max_backoff_ms);
                let jitter = self.rng.lock().map(|mut r| r.unit()).unwrap_or(0.5);
                let wait = (base as f64 * (0.5 + 0.5 * jitter)) as u64;
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
            tried.push(di);
            let dep = &model.deployments[di];
            let wire = dep.api.wire();
            let (span, traceparent) = trace
                .as_ref()
                .map(|t| t.attempt(dep, operation, attempt + 1))
                .unwrap_or((usize::MAX, String::new()));
            let at = Attempt {
                trace: trace.clone(),
                span,
            };
            // The request in the deployment's own API.
            // As it came when nothing in it changes (same model name,
            // nothing added): the client's bytes.
            let as_it_came = wire.is_none() && parsed.is_none() && dep.upstream_model == model_name;
            let body = if as_it_came {
                None
            } else {
                Some(whole(&mut parsed, &bytes).map_err(|_| not_object())?)
            };
            let translated = match (wire, body) {
                (_, None) => Ok((upstream_uri(dep, suffix), None)),
                (None, Some(body)) => {
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert("model".into(), Value::String(dep.upstream_model.clone()));
                    }
                    Ok((upstream_uri(dep, suffix), Some(serde_json::to_vec(body))))
                }
                (Some(Wire::Anthropic), Some(body)) => {
                    translate::chat_to_anthropic(body, &dep.upstream_model)
                        .map(|b| (upstream_uri(dep, "/messages"), Some(serde_json::to_vec(&b))))
                }
                (Some(Wire::Bedrock), Some(body)) => translate::chat_to_converse(body).map(|b| {
                    let action = if stream {
                        "converse-stream"
                    } else {
                        "converse"
                    };
                    let path = format!(
                        "/model/{}/{action}",
                        crate::sigv4::uri_encode(&dep.upstream_model, false)
                    );
                    (upstream_uri(dep, &path), Some(serde_json::to_vec(&b)))
                }),
            };
            let (uri, up_body) = translated.map_err(|e| {
                openai_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "unsupported_parameter",
                    &format!(
                        "Deployment {} ({} API) cannot take this request: {}: {}.",
                        dep.name,
                        dep.api.as_str(),
                        e.param,
                        e.message
                    ),
                    Some(&e.param),
                )
            })?;
            // The client's bytes as they came, its body with the model
            // mapped, or its translation.
            let payload: Bytes = match up_body {
                None => bytes.clone(),
                Some(Ok(p)) => Bytes::from(p),
                Some(Err(e)) => {
                    return Err(openai_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "internal",
                        &e.to_string(),
                        None,
                    ))
                }
            };
            let b = Request::builder()
                .method(Method::POST)
                .header(CONTENT_TYPE, "application/json");
            let b = authorize(b, dep, "POST", &uri, &payload);
            // The URL's own buffer becomes the request's URI, not a copy.
            let mut b = b.uri(uri);
            if !traceparent.is_empty() {
                b = b.header("traceparent", &traceparent);
            }
            if dep.google.is_some() {
                let left = deadline.saturating_duration_since(Instant::now());
                match google_token(dep, left.min(Duration::from_secs(10))).await {
                    Ok(Some(t)) => b = b.header(AUTHORIZATION, format!("Bearer {t}")),
                    Ok(None) => {}
                    Err(e) => {
                        // The gateway cannot authenticate to this deployment
                        // now: another one is asked.
                        eprintln!("skyward gateway: deployment {}: {e}", dep.name);
                        self.attempt_done(&live, mi, di, &at, Outcome::Failure);
                        last_error = Some(openai_error(
                            StatusCode::BAD_GATEWAY,
                            "server_error",
                            "upstream_auth",
                            &format!("Deployment {}: {e}.", dep.name),
                            None,
                        ));
                        if !go_on(crate::config::Failure::Connect) {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Ok(up_req) = b.body(payload) else {
                return Err(openai_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal",
                    "bad upstream URL",
                    None,
                ));
            };
            let sent = Instant::now();
            let ttft = Duration::from_millis(live.cfg.timeouts.ttft_ms);
            let left = deadline.saturating_duration_since(sent);
            // A stream's headers come with its first chunk: TTFT bounds
            // them, and another deployment can still be asked. A whole
            // answer's headers come only when it is complete: only the
            // request's total bounds them.
            let wait = if stream { ttft.min(left) } else { left };
            let sending = live.clients.send(dep, up_req);
            let answer = if wait < left {
                tokio::time::timeout(wait, sending).await.ok()
            } else {
                until(expiry.as_mut(), sending).await
            };
            let resp = match answer.ok_or(()) {
                Ok(Ok(r)) => r,
                failed => {
                    let class = if matches!(failed, Ok(Err(_))) {
                        crate::config::Failure::Connect
                    } else {
                        crate::config::Failure::Timeout
                    };
                    let (status, code, message) = match failed {
                        Ok(Err(e)) => (
                            StatusCode::BAD_GATEWAY,
                            "upstream_unreachable",
                            format!(
                                "Deployment {} could not be reached: {}",
                                dep.name,
                                root_cause(&e)
                            ),
                        ),
                        _ => (
                            StatusCode::GATEWAY_TIMEOUT,
                            "upstream_timeout",
                            format!(
                                "Deployment {} did not answer within {} ms{}.",
                                dep.name,
                                wait.as_millis(),
                                if wait == ttft {
                                    " (timeouts.ttft_ms)"
                                } else {
                                    " (what was left of timeouts.total_ms)"
                                }
                            ),
                        ),
                    };
                    upstream_wait += sent.elapsed();
                    self.attempt_done(&live, mi, di, &at, Outcome::Failure);
                    self.metrics
                        .response(&model_name, &dep.name, status.as_u16());
                    last_error = Some(openai_error(status, "server_error", code, &message, None));
                    if !go_on(class) {
                        break;
                    }
                    continue;
                }
            };
            let status = resp.status();
            at.status(status.as_u16());
            self.metrics
                .response(&model_name, &dep.name, status.as_u16());
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                #[allow(clippy::disallowed_methods)] // an HTTP date is wall-clock
                let now = std::time::SystemTime::now();
                let retry_after_ms = retry_after_ms(resp.headers(), now);
                let (parts, body_in) = resp.into_parts();
                let text = error_text(expiry.as_mut(), body_in, 1 << 20).await;
                upstream_wait += sent.elapsed();
                let outcome = if status == StatusCode::TOO_MANY_REQUESTS {
                    Outcome::RateLimited {
                        retry_after_ms: retry_after_ms.unwrap_or(1_000),
                    }
                } else {
                    Outcome::Failure
                };
                self.attempt_done(&live, mi, di, &at, outcome);
                let mut r = in_openai_form(wire, parts.status, &parts.headers, text);
                if let Some(ra) = parts.headers.get("retry-after") {
                    r.headers_mut().insert("retry-after", ra.clone());
                }
                last_error = Some(r);
                let class = if status == StatusCode::TOO_MANY_REQUESTS {
                    crate::config::Failure::RateLimited
                } else {
                    crate::config::Failure::ServerError
                };
                if !go_on(class) {
                    break;
                }
                continue;
            }
            if matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
            ) {
                // The deployment refuses the gateway itself (its key, its
                // deployment or model name): broken for every client. Its
                // breaker opens at once, the operator is told, and the
                // request goes elsewhere; the client never sees a 401 its
                // own key did not cause.
                let (_, body_in) = resp.into_parts();
                let text = error_text(expiry.as_mut(), body_in, 4 << 10).await;
                upstream_wait += sent.elapsed();
                self.attempt_done(&live, mi, di, &at, Outcome::Rejected);
                let said: String = String::from_utf8_lossy(&text)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(300)
                    .collect();
                eprintln!(
                    "skyward gateway: ALERT: deployment {} of {model_name} refused the gateway ({}): check its key and its deployment name; its breaker is open for {} ms. It said: {said}",
                    dep.name,
                    status.as_u16(),
                    live.cfg.breaker.cooldown_ms
                );
                self.metrics.rejected(&model_name, &dep.name);
                last_error = Some(openai_error(
                    StatusCode::BAD_GATEWAY,
                    "server_error",
                    "upstream_rejected",
                    &format!(
                        "Deployment {} refused the gateway's credentials or does not exist ({}).",
                        dep.name,
                        status.as_u16()
                    ),
                    None,
                ));
                if !go_on(crate::config::Failure::Rejected) {
                    break;
                }
                continue;
            }
            if !status.is_success() {
                // The client's own error (400, 413, 422 …): as is.
                let (parts, body_in) = resp.into_parts();
                let text = error_text(expiry.as_mut(), body_in, 1 << 20).await;
                self.attempt_done(&live, mi, di, &at, Outcome::Neutral);
                return Ok(in_openai_form(wire, parts.status, &parts.headers, text));
            }
            let ctx = Served {
                key_name: key.map(|k| k.name.clone()),
                model: model_name.clone(),
                mi,
                di,
                tenant: key
                    .as_ref()
                    .map(|k| k.tenant.clone())
                    .unwrap_or_else(|| "anonymous".into()),
                _reservation: reservation.clone(),
                shared_hold: shared_hold.clone(),
                strip_usage,
                prompt_estimate,
                attempts: attempt + 1,
                wire,
                trace: trace.clone(),
                span,
            };
            if stream {
                match self
                    .clone()
                    .stream(live.clone(), ctx, resp, t0, sent, upstream_wait)
                    .await
                {
                    Ok(r) => return Ok(r),
                    Err(e) => {
                        // No first chunk in time (or the stream failed
                        // before it).
                        last_error = Some(e);
                        if !go_on(crate::config::Failure::Timeout) {
                            break;
                        }
                        continue;
                    }
                }
            }
            let (parts, mut body_in) = resp.into_parts();
            let (whole, whole_held) = match until(
                expiry.as_mut(),
                read_counted(&mut body_in, RESPONSE_BYTES_MAX, &self.buffers, 1),
            )
            .await
            {
                Some(Ok(c)) => c,
                Some(Err(ReadError::Full)) => {
                    // Not the deployment's fault: the gateway is full.
                    upstream_wait += sent.elapsed();
                    self.attempt_done(&live, mi, di, &at, Outcome::Neutral);
                    return Err(buffers_full(live.cfg.max_buffered_mb));
                }
                _ => {
                    upstream_wait += sent.elapsed();
                    self.attempt_done(&live, mi, di, &at, Outcome::Failure);
                    last_error = Some(openai_error(
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        "upstream_body",
                        &format!("Deployment {} failed while sending its answer.", dep.name),
                        None,
                    ));
                    if !go_on(crate::config::Failure::Connect) {
                        break;
                    }
                    continue;
                }
            };
            let waited = sent.elapsed();
            upstream_wait += waited;
            // A translated answer becomes a chat completion; one that does
            // not parse is the deployment's failure.
            let whole = match wire {
                None => whole,
                Some(w) => {
                    let v: Option<Value> = serde_json::from_slice(&whole).ok();
                    let chat = v.as_ref().and_then(|v| match w {
                        Wire::Anthropic => {
                            translate::anthropic_to_chat(v, &model_name, now_unix_s())
                        }
                        Wire::Bedrock => translate::converse_to_chat(
                            v,
                            &model_name,
                            now_unix_s(),
                            parts
                                .headers
                                .get("x-amzn-requestid")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("bedrock"),
                        ),
                    });
                    match chat {
                        Some(c) => Bytes::from(c.to_string()),
                        None => {
                            self.attempt_done(&live, mi, di, &at, Outcome::Failure);
                            last_error = Some(openai_error(
                                StatusCode::BAD_GATEWAY,
                                "server_error",
                                "upstream_body",
                                &format!(
                                    "Deployment {} answered in a form its {} API does not have.",
                                    dep.name,
                                    dep.api.as_str()
                                ),
                                None,
                            ));
                            if !go_on(crate::config::Failure::ServerError) {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };
            let (prompt, completion, estimated) = usage_of(&whole)
                .map(|(p, c)| (p, c, false))
                .unwrap_or((prompt_estimate, 0, true));
            self.attempt_done(
                &live,
                mi,
                di,
                &at,
                Outcome::Success {
                    latency_ms: waited.as_secs_f64() * 1e3,
                    tokens: prompt + completion,
                },
            );
            self.metrics.upstream.observe_s(waited.as_secs_f64());
            self.record(
                &live,
                &ctx,
                status.as_u16(),
                prompt,
                completion,
                estimated,
                waited.as_secs_f64() * 1e3,
                None,
            );
            let mut r = Response::new(match whole_held {
                Some(p) => GwBody::Held(Some(whole), p),
                None => GwBody::full(whole),
            });
            *r.status_mut() = parts.status;
            r.headers_mut().insert(
                CONTENT_TYPE,
                parts
                    .headers
                    .get(CONTENT_TYPE)
                    .filter(|_| wire.is_none())
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("application/json")),
            );
            r.headers_mut().insert(
                "x-skyward-deployment",
                HeaderValue::from_str(&dep.name).unwrap_or(HeaderValue::from_static("?")),
            );
            pass_upstream_headers(&parts.headers, r.headers_mut());
            let added = t0.elapsed().saturating_sub(upstream_wait);
            self.metrics.added.observe_s(added.as_secs_f64());
            return Ok(r);
        }
        Err(last_error.unwrap_or_else(|| {
            openai_error(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                &format!(
                    "No answer within timeouts.total_ms ({} ms).",
                    total.as_millis()
                ),
                None,
            )
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        live: &Live,
        ctx: &Served,
        status: u16,
        prompt: u64,
        completion: u64,
        estimated: bool,
        latency_ms: f64,
        ttft_ms: Option<f64>,
    ) {
        let dep = &live.cfg.models[ctx.mi].deployments[ctx.di];
        let cost = prompt as f64 * dep.input_usd_per_mtok / 1e6
            + completion as f64 * dep.output_usd_per_mtok / 1e6;
        self.metrics
            .usage(&ctx.tenant, &dep.name, prompt, completion, cost);
        if let Some(h) = &ctx.shared_hold {
            if let Ok(mut c) = h.charged.lock() {
                *c = (prompt + completion, cost);
            }
        }
        if let Some(t) = &ctx.trace {
            t.usage(prompt, completion);
            t.set("skyward.deployment", json!(dep.name));
            t.set("skyward.cost_usd", json!(cost));
        }
        if let Some(name) = &ctx.key_name {
            self.charge_key(name, self.now_ms(), prompt + completion, cost);
        }
        if let Some(tx) = &self.usage {
            let rec = UsageRecord {
                unix_s: now_unix_s(),
                tenant: ctx.tenant.clone(),
                key: ctx.key_name.clone(),
                model: ctx.model.clone(),
                deployment: dep.name.clone(),
                provider: dep.provider.clone(),
                region: dep.region.clone(),
                capacity: dep.capacity.as_str().into(),
                prompt_tokens: prompt,
                completion_tokens: completion,
                estimated,
                input_usd_per_mtok: dep.input_usd_per_mtok,
                output_usd_per_mtok: dep.output_usd_per_mtok,
                cost_usd: cost,
                status,
                latency_ms,
                ttft_ms,
                attempts: ctx.attempts,
            };
            let _ = tx.try_send(rec);
        }
    }

    /// Streams an upstream SSE answer to the client chunk by chunk. The
    /// first chunk must come within the TTFT timeout (else the next
    /// deployment is tried: the client has seen nothing yet); after that,
    /// a failure or stall is sent to the client as an error event in the
    /// OpenAI format, never a silent truncation; a client that goes away
    /// drops the upstream request.
    async fn stream(
        self: Arc<Self>,
        live: Arc<Live>,
        ctx: Served,
        resp: Response<UpBody>,
        t0: Instant,
        sent: Instant,
        upstream_before: Duration,
    ) -> Result<Response<GwBody>, Response<GwBody>> {
        let (parts, mut body_in) = resp.into_parts();
        let ttft = Duration::from_millis(live.cfg.timeouts.ttft_ms);
        let dep_name = live.cfg.models[ctx.mi].deployments[ctx.di].name.clone();
        let first = match tokio::time::timeout(ttft, next_data(&mut body_in)).await {
            Ok(Ok(Some(b))) => b,
            _ => {
                self.finish(&live, ctx.mi, ctx.di, Outcome::Failure);
                if let Some(t) = &ctx.trace {
                    t.attempt_end(ctx.span, None, Some("timeout"));
                }
                return Err(openai_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "server_error",
                    "upstream_timeout",
                    &format!(
                        "Deployment {dep_name} sent no first token within {} ms.",
                        ttft.as_millis()
                    ),
                    None,
                ));
            }
        };
        let first_at = sent.elapsed();
        self.metrics.upstream.observe_s(first_at.as_secs_f64());
        let (tx, rx) = mpsc::channel::<Bytes>(STREAM_CHANNEL);
        let mut r = Response::new(GwBody::Channel(rx));
        *r.status_mut() = parts.status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            parts
                .headers
                .get(CONTENT_TYPE)
                .filter(|_| ctx.wire.is_none())
                .cloned()
                .unwrap_or(HeaderValue::from_static("text/event-stream")),
        );
        r.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-cache"));
        r.headers_mut().insert(
            "x-skyward-deployment",
            HeaderValue::from_str(&dep_name).unwrap_or(HeaderValue::from_static("?")),
        );
        pass_upstream_headers(&parts.headers, r.headers_mut());
        let gw = self.clone();
        let total = Duration::from_millis(live.cfg.timeouts.total_ms);
        let added = t0.elapsed().saturating_sub(upstream_before + first_at);
        self.metrics.added.observe_s(added.as_secs_f64());
        // The stream stays in flight until it ends.
        self.inflight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let held = InflightGuard(self.inflight.clone());
        let request_id = parts
            .headers
            .get("x-amzn-requestid")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("skyward")
            .to_string();
        let max_mb = live.cfg.max_buffered_mb;
        tokio::spawn(async move {
            let _held = held;
            let mut sse = SseScan::default();
            // A provider's own stream becomes OpenAI's chunks first.
            let mut tr = ctx.wire.map(|w| {
                translate::ChatStream::new(
                    w,
                    &ctx.model,
                    now_unix_s(),
                    &format!("chatcmpl-{request_id}"),
                )
            });
            let mut failed: Option<String> = None;
            let to_openai = |tr: &mut Option<translate::ChatStream>,
                             b: Bytes,
                             failed: &mut Option<String>|
             -> Bytes {
                match tr.as_mut() {
                    None => b,
                    Some(t) => match t.feed(&b) {
                        Ok(out) => Bytes::from(out),
                        Err(e) => {
                            *failed = Some(format!("the upstream stream failed: {e}"));
                            Bytes::new()
                        }
                    },
                }
            };
            let first = to_openai(&mut tr, first, &mut failed);
            sse.feed(&first);
            let mut filter = UsageFilter::new(ctx.strip_usage);
            let out = filter.pass(&first);
            // What the stream holds of unfinished lines and messages
            // counts in max_buffered_mb, at its largest until it ends.
            let mut hold = BufferHold::new(gw.buffers.clone());
            let mut check = |sse: &SseScan,
                             filter: &UsageFilter,
                             tr: &Option<translate::ChatStream>,
                             failed: &mut Option<String>| {
                if filter.too_long {
                    *failed = Some(format!(
                        "an event line of over {} MiB",
                        translate::STREAM_LINE_BYTES_MAX >> 20
                    ));
                } else if !hold.grow(
                    sse.buffered() + filter.buffered() + tr.as_ref().map_or(0, |t| t.buffered()),
                ) {
                    *failed = Some(format!(
                        "the gateway holds {max_mb} MiB of bodies already (max_buffered_mb) and cannot hold this stream's unfinished event"
                    ));
                }
            };
            check(&sse, &filter, &tr, &mut failed);
            let mut client_gone = !out.is_empty() && tx.send(out).await.is_err();
            while !client_gone && failed.is_none() {
                let left = total.saturating_sub(sent.elapsed());
                // A client that leaves while the upstream pauses is seen at
                // once: its request ends as the client's (499), not as a
                // stall of the deployment.
                let next = tokio::select! {
                    n = tokio::time::timeout(ttft.min(left), next_data(&mut body_in)) => n,
                    _ = tx.closed() => {
                        client_gone = true;
                        break;
                    }
                };
                match next {
                    Ok(Ok(Some(b))) => {
                        let b = to_openai(&mut tr, b, &mut failed);
                        sse.feed(&b);
                        let out = filter.pass(&b);
                        check(&sse, &filter, &tr, &mut failed);
                        if failed.is_some() {
                            break;
                        }
                        client_gone = !out.is_empty() && tx.send(out).await.is_err();
                    }
                    Ok(Ok(None)) => {
                        if let Some(t) = tr.as_mut() {
                            let tail = Bytes::from(t.finish());
                            sse.feed(&tail);
                            let out = filter.pass(&tail);
                            if !out.is_empty() && tx.send(out).await.is_err() {
                                client_gone = true;
                                break;
                            }
                        }
                        let rest = filter.finish();
                        if !rest.is_empty() {
                            client_gone = tx.send(rest).await.is_err();
                        }
                        if !sse.done {
                            failed = Some("the upstream stream ended before [DONE]".into());
                        }
                        break;
                    }
                    Ok(Err(e)) => {
                        failed = Some(format!("the upstream stream failed: {e}"));
                        break;
                    }
                    Err(_) => {
                        failed = Some(format!(
                            "the upstream stream stalled for {} ms",
                            ttft.min(left).as_millis()
                        ));
                        break;
                    }
                }
            }
            drop(body_in);
            let outcome = if client_gone {
                Outcome::Neutral
            } else if let Some(msg) = &failed {
                let ev = json!({"error": {"message": format!("Deployment {dep_name}: {msg}."), "type": "server_error", "param": null, "code": "upstream_stream_error"}});
                let _ = tx.send(Bytes::from(format!("data: {ev}\n\n"))).await;
                Outcome::Failure
            } else {
                Outcome::Success {
                    latency_ms: first_at.as_secs_f64() * 1e3,
                    tokens: sse.prompt.unwrap_or(ctx.prompt_estimate)
                        + sse.completion.unwrap_or(sse.content_chunks),
                }
            };
            gw.finish(&live, ctx.mi, ctx.di, outcome);
            let (prompt, completion, estimated) = match (sse.prompt, sse.completion) {
                (Some(p), Some(c)) => (p, c, false),
                _ => (ctx.prompt_estimate, sse.content_chunks, true),
            };
            let status = if failed.is_some() {
                502
            } else if client_gone {
                499
            } else {
                200
            };
            if let Some(t) = &ctx.trace {
                t.attempt_end(ctx.span, None, failed.as_ref().map(|_| "stream_error"));
                t.status(status);
            }
            gw.record(
                &live,
                &ctx,
                status,
                prompt,
                completion,
                estimated,
                sent.elapsed().as_secs_f64() * 1e3,
                Some(first_at.as_secs_f64() * 1e3),
            );
        });
        Ok(r)
    }
}

struct Served {
    key_name: Option<String>,
    model: String,
    mi: usize,
    di: usize,
    tenant: String,
    prompt_estimate: u64,
    attempts: u32,
    /// The gateway asked for the stream's usage chunk: not the client's.
    strip_usage: bool,
    /// Held until the request ends (a stream's end included).
    _reservation: Option<Arc<Reservation>>,
    /// The provider API whose answers are translated (None: OpenAI's).
    wire: Option<Wire>,
    /// The request's trace and this attempt's span in it.
    trace: Option<Arc<crate::trace::RequestTrace>>,
    span: usize,
    /// Its hold on the key's shared limits (charged when it ends).
    shared_hold: Option<Arc<SharedHold>>,
}

/// An upstream's error answer as the client gets it: as is from an
/// OpenAI-form API, else in OpenAI's error shape.
fn in_openai_form(
    wire: Option<Wire>,
    status: StatusCode,
    headers: &hyper::HeaderMap,
    text: Bytes,
) -> Response<GwBody> {
    let (body, ct) = match wire {
        None => (
            text,
            headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json")),
        ),
        Some(w) => {
            let aws = headers
                .get("x-amzn-errortype")
                .and_then(|h| h.to_str().ok());
            (
                Bytes::from(translate::error_to_openai(w, status.as_u16(), &text, aws).to_string()),
                HeaderValue::from_static("application/json"),
            )
        }
    };
    let mut r = Response::new(GwBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, ct);
    r
}

/// The next data chunk of a body (trailers skipped).
async fn next_data<B>(body: &mut B) -> Result<Option<Bytes>, B::Error>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    if !d.is_empty() {
                        return Ok(Some(d));
                    }
                }
            }
        }
    }
}

/// Takes out of an SSE stream the usage-only chunk (`"choices": []` with a
/// `usage`) that the gateway asked for and the client did not; everything
/// else passes as it came, whole lines at a time.
struct UsageFilter {
    on: bool,
    partial: Vec<u8>,
    /// A line outgrew `STREAM_LINE_BYTES_MAX`: the stream is broken.
    too_long: bool,
    /// The blank line that ends a dropped event goes too.
    skip_blank: bool,
}

impl UsageFilter {
    fn new(on: bool) -> UsageFilter {
        UsageFilter {
            on,
            partial: Vec::new(),
            too_long: false,
            skip_blank: false,
        }
    }

    fn pass(&mut self, b: &Bytes) -> Bytes {
        if !self.on {
            return b.clone();
        }
        let mut out = Vec::with_capacity(b.len());
        let mut rest: &[u8] = b;
        // Line by line (whole slices, not byte by byte); a line begun in
        // an earlier chunk is finished from `partial`.
        while let Some(nl) = rest.iter().position(|&c| c == b'\n') {
            let (head, tail) = rest.split_at(nl + 1);
            rest = tail;
            let joined;
            let line: &[u8] = if self.partial.is_empty() {
                head
            } else {
                self.partial.extend_from_slice(head);
                joined = std::mem::take(&mut self.partial);
                &joined
            };
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if self.skip_blank && body.is_empty() {
                self.skip_blank = false;
                continue;
            }
            self.skip_blank = false;
            if is_usage_only(body) {
                self.skip_blank = true;
                continue;
            }
            out.extend_from_slice(line);
        }
        if self.partial.len() + rest.len() > translate::STREAM_LINE_BYTES_MAX {
            self.too_long = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(rest);
        }
        Bytes::from(out)
    }

    /// Bytes of an unfinished line held.
    fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// What is left at the stream's end (a last line with no newline).
    fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.partial);
        if is_usage_only(&rest) {
            return Bytes::new();
        }
        Bytes::from(rest)
    }
}

fn is_usage_only(line: &[u8]) -> bool {
    let Some(data) = line.strip_prefix(b"data:") else {
        return false;
    };
    serde_json::from_slice::<Value>(data.trim_ascii()).is_ok_and(|v| {
        v.get("usage").is_some_and(Value::is_object)
            && v.get("choices")
                .and_then(Value::as_array)
                .is_some_and(|c| c.is_empty())
    })
}

/// Watches an SSE stream go by: content chunks, a `usage` object if the
/// upstream sends one, and `[DONE]`. Lines may be split across chunks.
#[derive(Default)]
struct SseScan {
    partial: Vec<u8>,
    content_chunks: u64,
    prompt: Option<u64>,
    completion: Option<u64>,
    done: bool,
}

impl SseScan {
    fn feed(&mut self, b: &[u8]) {
        const PARTIAL_MAX: usize = 1 << 20;
        for &c in b {
            if c == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            } else if self.partial.len() < PARTIAL_MAX {
                self.partial.push(c);
            }
        }
    }

    /// Bytes of an unfinished line held.
    fn buffered(&self) -> usize {
        self.partial.len()
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        if let Some((p, c)) = usage_of(data) {
            self.prompt = Some(p);
            self.completion = Some(c);
        }
        if data.windows(9).any(|w| w == b"\"content\"") || data.windows(6).any(|w| w == b"\"text\"")
        {
            self.content_chunks += 1;
        }
    }
}

/// (prompt, completion) tokens from an OpenAI `usage` object.
fn usage_of(json_bytes: &[u8]) -> Option<(u64, u64)> {
    #[derive(serde::Deserialize)]
    struct U {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct W {
        usage: Option<U>,
    }
    let w: W = serde_json::from_slice(json_bytes).ok()?;
    let u = w.usage?;
    Some((
        u.prompt_tokens.unwrap_or(0),
        u.completion_tokens.unwrap_or(0),
    ))
}

/// `f`, unless `expiry` comes first (then None).
async fn until<F: std::future::Future>(
    expiry: std::pin::Pin<&mut tokio::time::Sleep>,
    f: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        r = f => Some(r),
        _ = expiry => None,
    }
}

/// An upstream's error answer, at most `max_bytes` of it, read until
/// `expiry`: an upstream that sends its error's headers and then stalls
/// does not hold the request past timeouts.total_ms.
async fn error_text(
    expiry: std::pin::Pin<&mut tokio::time::Sleep>,
    body: UpBody,
    max_bytes: usize,
) -> Bytes {
    until(expiry, Limited::new(body, max_bytes).collect())
        .await
        .and_then(|r| r.ok())
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(n) = cur.source() {
        cur = n;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_scan_counts_content_reads_usage_and_done_across_splits() {
        let mut s = SseScan::default();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"con");
        s.feed(b"tent\":\"b\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(s.content_chunks, 2);
        assert_eq!((s.prompt, s.completion), (Some(7), Some(2)));
        assert!(s.done);
    }

    #[test]
    fn the_usage_chunk_is_taken_out_however_the_stream_is_split() {
        let stream = b"data: {\"choices\":[{\"delta\":{}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
        let want = b"data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n".to_vec();
        for cut in 1..stream.len() {
            let mut f = UsageFilter::new(true);
            let mut got = f.pass(&Bytes::copy_from_slice(&stream[..cut])).to_vec();
            got.extend_from_slice(&f.pass(&Bytes::copy_from_slice(&stream[cut..])));
            got.extend_from_slice(&f.finish());
            assert_eq!(got, want, "cut at {cut}");
        }
        let mut off = UsageFilter::new(false);
        assert_eq!(
            off.pass(&Bytes::copy_from_slice(stream)).to_vec(),
            stream.to_vec()
        );
    }

    #[test]
    fn retry_after_in_each_of_its_forms() {
        let at = |secs: u64| std::time::UNIX_EPOCH + Duration::from_secs(secs);
        // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example) is 784111777.
        let now = at(784_111_777 - 5);
        let h = |pairs: &[(&str, &str)]| {
            let mut m = hyper::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        for (pairs, want) in [
            (vec![("retry-after-ms", "1500")], Some(1_500)),
            (vec![("retry-after", "2")], Some(2_000)),
            (vec![("retry-after", "0.25")], Some(250)),
            (
                vec![("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
                Some(5_000),
            ),
            (
                vec![("retry-after", "Sun, 06 Nov 1994 08:49:30 GMT")],
                Some(0),
            ),
            (
                vec![("retry-after-ms", "50"), ("retry-after", "9")],
                Some(50),
            ),
            (
                vec![("retry-after-ms", "soon"), ("retry-after", "3")],
                Some(3_000),
            ),
            (vec![("retry-after", "999999")], Some(3_600_000)),
            (vec![("retry-after", "-1")], None),
            (vec![("retry-after", "tomorrow")], None),
            (vec![], None),
        ] {
            assert_eq!(retry_after_ms(&h(&pairs), now), want, "{pairs:?}");
        }
    }
}
