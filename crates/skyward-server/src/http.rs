//! The HTTP API (`/v1/…`, OpenAPI 3.1 document at `/v1/openapi.json`),
//! `/healthz` and `/metrics`. Every error is JSON:
//! `{"error": {"code": "…", "message": "…", "field": "…"}}` with a stable
//! `code`; bodies are limited in size; nothing a client sends can make the
//! server panic or change stored data on an error.

use crate::auth::{self, Scope};
use crate::config::Site;
use crate::db::{Db, NewWorkload, SubmitOutcome};
use crate::metrics::Metrics;
use crate::runtime::{Query, QueueEntry};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use skyward_catalog::Catalog;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Page sizes.
pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1_000;
/// Log bytes returned per request.
pub const LOG_CHUNK_MAX: u64 = 1024 * 1024;
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
/// Tokens remembered after a lookup (valid ones only), and for how long:
/// a token revoked through another replica stops working within this.
const TOKEN_CACHE_MAX: usize = 10_000;
const TOKEN_CACHE_TTL_MS: i64 = 1_000;
/// Tokens listed at most.
const TOKENS_LISTED_MAX: i64 = 10_000;
/// /healthz gives the database this long before answering 503.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_millis(1_000);

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

pub struct SubmitJob {
    pub item: NewWorkload,
    /// The outcome and the time it was stored at.
    pub reply: oneshot::Sender<Result<(SubmitOutcome, i64), String>>,
}

pub struct App {
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub parser: skyward_spec::job::JobParser,
    pub sites: Vec<Site>,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub submit: mpsc::Sender<SubmitJob>,
    pub queries: mpsc::Sender<Query>,
    pub work_dir: PathBuf,
    /// The server's state directory: no workload path may point into it.
    pub state_dir: PathBuf,
    pub replica: String,
    /// Token hash → (token, when it was looked up).
    pub tokens: Mutex<HashMap<String, (crate::db::TokenRow, i64)>>,
    /// Secret values by name; names are what workloads reference, values
    /// are masked in logs served.
    pub secrets: Arc<BTreeMap<String, String>>,
    /// The commitments' live state the scheduler uses, while this replica
    /// leads.
    pub live: Arc<crate::commitments::Shared>,
    /// Remote agents' outboxes and inboxes, shared with the scheduler.
    pub agents: Arc<crate::agents::Hub>,
    /// Checkpoint stores (config) and what live workloads' hold.
    pub checkpoints: Arc<crate::checkpoints::Shared>,
    /// Gateways whose metrics the dashboard shows.
    pub gateways: Vec<crate::config::GatewayConfig>,
    /// Each gateway's reads over time (sampled by `sample_gateways`).
    pub gateway_traffic: Mutex<BTreeMap<String, skyward_app::gateway_view::Traffic>>,
    /// Ledger answers kept until the ledger changes.
    pub ledger_answers: crate::http_ledger::Answers,
}

/// Who is asking: a token's user (its name), team and scope.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: i64,
    pub name: String,
    pub team: String,
    pub scope: Scope,
    /// For an agent token: the site it acts for.
    pub site: Option<String>,
}

impl Principal {
    fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    /// A read or submit token sees its own team's workloads; admin all.
    fn sees(&self, row: &crate::db::WorkloadRow) -> bool {
        self.is_admin() || self.team == row.team
    }

    /// The submitter (same user in the same team) and admins see the
    /// values of a workload's `env`.
    fn owns(&self, row: &crate::db::WorkloadRow) -> bool {
        self.is_admin() || (self.team == row.team && self.name == row.submitted_by)
    }

    /// The team filter for lists: own team, or any (admin).
    fn team_filter(&self) -> Option<&str> {
        (!self.is_admin()).then_some(self.team.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub(crate) fn field(mut self, f: impl Into<String>) -> ApiError {
        self.field = Some(f.into());
        self
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        let mut r = json_response(self.status, &json!({ "error": body }));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // Refused before its body was read: this connection ends with
            // the answer, and the client is told so, so that it does not
            // send its next request on it.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn json_response(status: StatusCode, v: &impl Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(crate::ui::index))
        .route("/ui/{file}", get(crate::ui::asset))
        .route("/v1/whoami", get(whoami))
        .route("/v1/summary", get(summary))
        .route("/v1/gateways", get(gateways))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/workloads", post(submit).get(list))
        .route("/v1/workloads/{id}", get(show))
        .route("/v1/workloads/{id}/cancel", post(cancel))
        .route("/v1/workloads/{id}/logs", get(logs))
        .route("/v1/sites", get(sites))
        .route("/v1/sites/history", get(site_history))
        .route("/v1/sites/events", get(site_events))
        .route("/v1/profiles", get(profiles))
        .route("/v1/queue", get(queue))
        .route("/v1/usage", get(usage))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route(
            "/v1/contracts",
            axum::routing::put(crate::http_ledger::apply_contracts)
                .get(crate::http_ledger::current_contracts),
        )
        .route(
            "/v1/contracts/history",
            get(crate::http_ledger::contract_history),
        )
        .route(
            "/v1/contracts/{name}",
            get(crate::http_ledger::show_contract),
        )
        .route("/v1/commitments", get(crate::http_ledger::commitments))
        .route("/v1/agent/sync", post(crate::agents::sync))
        .route("/v1/drills", post(drill))
        .route("/v1/ledger/status", get(crate::http_ledger::ledger_status))
        .route(
            "/v1/ledger/burndown",
            get(crate::http_ledger::ledger_burndown),
        )
        .route(
            "/v1/ledger/utilisation",
            get(crate::http_ledger::ledger_utilisation),
        )
        .route(
            "/v1/ledger/analyze",
            get(crate::http_ledger::ledger_analyze),
        )
        .route(
            "/v1/ledger/recommend",
            get(crate::http_ledger::ledger_recommend),
        )
        .route(
            "/v1/ledger/options",
            get(crate::http_ledger::ledger_options),
        )
        .route(
            "/v1/ledger/backtest",
            get(crate::http_ledger::ledger_backtest),
        )
        .route(
            "/v1/ledger/breakdown",
            get(crate::http_ledger::ledger_breakdown),
        )
        .route(
            "/v1/ledger/inventory",
            get(crate::http_ledger::ledger_inventory),
        )
        .route("/v1/ledger/report", get(crate::http_ledger::ledger_report))
        .route(
            "/v1/ledger/imports",
            post(crate::http_ledger::ledger_import)
                .get(crate::http_ledger::ledger_imports)
                .layer(DefaultBodyLimit::disable()),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint (see /v1/openapi.json)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint (see /v1/openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            count_status,
        ))
        .with_state(app)
}

async fn count_status(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let r = next.run(req).await;
    app.metrics.http_status(r.status().as_u16());
    r
}

pub(crate) fn now_ms() -> i64 {
    crate::runtime::SystemClock.now_ms_i64()
}

fn invalid_token(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        format!("the bearer token is {why}"),
    )
}

/// Checks the bearer token (known, not revoked, not expired) and its
/// scope; returns who it is.
pub(crate) async fn authorize(
    app: &App,
    headers: &HeaderMap,
    need: Scope,
) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing 'Authorization: Bearer <token>' (create one with `skyward token create`)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| auth::well_formed(t))
        .ok_or_else(|| invalid_token("malformed, unknown or revoked"))?;
    let hash = auth::hash(token);
    let now = now_ms();
    let cached = app
        .tokens
        .lock()
        .ok()
        .and_then(|t| t.get(&hash).cloned())
        .filter(|(_, at)| now - at < TOKEN_CACHE_TTL_MS)
        .map(|(row, _)| row);
    let row = match cached {
        Some(c) => c,
        None => {
            let row = app
                .db
                .token_lookup(&hash)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| invalid_token("malformed, unknown or revoked"))?;
            if let Ok(mut t) = app.tokens.lock() {
                if t.len() >= TOKEN_CACHE_MAX {
                    t.clear();
                }
                t.insert(hash, (row.clone(), now));
            }
            row
        }
    };
    if row.revoked_at_ms.is_some() {
        return Err(invalid_token("revoked"));
    }
    if row.expires_at_ms.is_some_and(|e| e <= now) {
        return Err(invalid_token(
            "expired (create a new one with `skyward token create`)",
        ));
    }
    let scope = Scope::parse(&row.scope).unwrap_or(Scope::Read);
    if scope < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "token '{}' has scope '{}'; this needs '{}'",
                row.name,
                scope.as_str(),
                need.as_str()
            ),
        ));
    }
    Ok(Principal {
        token_id: row.id,
        site: Scope::agent_site(&row.scope).map(String::from),
        name: row.name,
        team: row.team,
        scope,
    })
}

/// Query parameters, each known and each once.
pub(crate) fn params(
    raw: Option<String>,
    known: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&k) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_parameter",
                format!(
                    "unknown query parameter '{}' (known: {})",
                    k.chars().take(64).collect::<String>(),
                    known.join(", ")
                ),
            )
            .field(k.chars().take(64).collect::<String>()));
        }
        let v = percent_decoded(v).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("'{k}' is not percent-encoded UTF-8"),
            )
            .field(k)
        })?;
        if out.insert(k.to_string(), v).is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("'{k}' given twice"),
            )
            .field(k));
        }
    }
    Ok(out)
}

/// `%XX` escapes decoded (as browsers and `encodeURIComponent` write
/// them); `+` is a space. None for a broken escape or bytes that are not
/// UTF-8.
fn percent_decoded(v: &str) -> Option<String> {
    if !v.contains(['%', '+']) {
        return Some(v.to_string());
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn num_param(p: &BTreeMap<String, String>, k: &str, max: u64) -> Result<Option<u64>, ApiError> {
    match p.get(k) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("'{k}' must be a whole number up to {max}"),
                )
                .field(k)
            }),
    }
}

fn page_limit(p: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    Ok(match num_param(p, "limit", PAGE_MAX as u64)? {
        Some(0) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("'limit' must be 1 to {PAGE_MAX}"),
            )
            .field("limit"))
        }
        Some(n) => n as usize,
        None => PAGE_DEFAULT,
    })
}

/// The stored workload if `who` may see it, or 404 naming it (another
/// team's workload is not said to exist).
async fn find_workload(
    app: &App,
    who: &Principal,
    id: i64,
) -> Result<crate::db::WorkloadRow, ApiError> {
    app.db
        .workload(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|row| who.sees(row))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "workload_not_found",
                format!("no workload {id}"),
            )
            .field("id")
        })
}

fn path_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "a workload id is a positive whole number",
        )
        .field("id")
    })
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    // A database that does not answer is a 503 now, not a hung probe.
    let db_ok = matches!(
        tokio::time::timeout(HEALTH_DB_TIMEOUT, app.db.leader()).await,
        Ok(Ok(_))
    );
    let leader = app
        .metrics
        .leader
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1;
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({"status": if db_ok {"ok"} else {"database unreachable"}, "leader": leader, "replica": app.replica}),
    )
}

/// Who the token is: the dashboard shows it and offers only what its
/// scope allows.
async fn whoami(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": who.name, "team": who.team, "scope": who.scope.as_str(), "site": who.site}),
    ))
}

/// Workloads per state (the caller's team's, or all for admin): the
/// dashboard's queue depth and totals, counted by the store.
async fn summary(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let counts = app
        .db
        .counts(who.team_filter())
        .await
        .map_err(ApiError::internal)?;
    let by_state: BTreeMap<String, i64> = counts.into_iter().collect();
    // Whether the ledger has anything to show (its questions refuse an
    // empty one), and its contracts' version.
    let charges = app
        .db
        .ledger_has_charges()
        .await
        .map_err(ApiError::internal)?;
    let (_, contracts, _) = app.db.ledger_version().await.map_err(ApiError::internal)?;
    let leader = app
        .metrics
        .leader
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1;
    Ok(json_response(
        StatusCode::OK,
        &json!({"workloads_by_state": by_state, "leader": leader, "replica": app.replica, "now_ms": now_ms(),
            "ledger": {"has_charges": charges, "contracts_version": contracts}}),
    ))
}

/// A gateway's metrics page read at most this long and this large.
const GATEWAY_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Every configured gateway's metrics, read now (at once) and summarised:
/// traffic, errors, added latency, tokens and cost per tenant and
/// deployment, breaker states. A gateway that does not answer is listed
/// with its error.
async fn gateways(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let reads = app.gateways.iter().cloned().map(|g| {
        tokio::spawn(async move {
            match read_gateway(&g).await {
                Ok(v) => json!({"name": g.name, "metrics_url": g.metrics_url, "view": v}),
                Err(e) => json!({"name": g.name, "metrics_url": g.metrics_url, "error": e}),
            }
        })
    });
    let mut items = Vec::new();
    for h in reads.collect::<Vec<_>>() {
        items.push(h.await.map_err(ApiError::internal)?);
    }
    if let Ok(t) = app.gateway_traffic.lock() {
        for item in items.iter_mut() {
            if let Some(tr) = item["name"].as_str().and_then(|n| t.get(n)) {
                item["traffic"] = json!({
                    "samples": tr.len(),
                    "intervals": tr.intervals(),
                    "unanswered_ms": tr.unanswered_ms(),
                });
            }
        }
    }
    Ok(json_response(StatusCode::OK, &json!({"items": items})))
}

/// One read of a gateway's `/metrics` page, as the dashboard shows it.
pub(crate) async fn read_gateway(
    g: &crate::config::GatewayConfig,
) -> Result<skyward_app::gateway_view::GatewayView, String> {
    let rest = g
        .metrics_url
        .strip_prefix("http://")
        .ok_or("not an http:// address")?;
    let (host, path) = rest.split_at(rest.find('/').ok_or("no path")?);
    let c = crate::client::Client::new(&format!("http://{host}"), None)
        .map_err(|e| e.to_string())?
        .with_timeout(GATEWAY_FETCH_TIMEOUT)
        // A larger page is refused while it is read, never held whole.
        .with_body_limit(GATEWAY_PAGE_BYTES_MAX);
    let r = c
        .request("GET", path, None, &[])
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("HTTP {}", r.status));
    }
    let text = std::str::from_utf8(&r.body).map_err(|_| "the page is not UTF-8")?;
    skyward_app::gateway_view::parse(text).map(|s| skyward_app::gateway_view::view(&s))
}

/// Reads each configured gateway every `sample_every` (one task per
/// gateway) into `app.gateway_traffic`, until shutdown.
pub(crate) fn sample_gateways(app: &Arc<App>, shutdown: &tokio::sync::watch::Receiver<bool>) {
    for g in app.gateways.clone() {
        let app = app.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(g.sample_every_ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let totals = read_gateway(&g)
                    .await
                    .ok()
                    .map(|v| skyward_app::gateway_view::Totals::of(&v));
                let at = crate::runtime::Clock::now_ms(&crate::SystemClock) as i64;
                if let Ok(mut t) = app.gateway_traffic.lock() {
                    t.entry(g.name.clone()).or_default().record(at, totals);
                }
            }
        });
    }
}

/// Largest gateway metrics page read.
const GATEWAY_PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The request body as text: content type checked, size refused from
/// Content-Length before any byte is read (so a client waiting on
/// `Expect: 100-continue` is told at once), and capped while reading.
pub(crate) async fn body_text(body: Body, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ![
            "application/json",
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            "text/plain",
            "",
        ]
        .contains(&ct.as_str())
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type '{ct}' is not accepted (application/json or application/yaml)"
                ),
            ));
        }
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {} KiB", BODY_BYTES_MAX / 1024),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|e| {
            let mut cur: &dyn std::error::Error = &e;
            loop {
                if cur.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                match cur.source() {
                    Some(next) => cur = next,
                    None => {
                        return ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_body",
                            format!("cannot read the body: {e}"),
                        )
                    }
                }
            }
        })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body is not UTF-8 text",
        )
    })
}

#[derive(Serialize)]
struct WorkloadView {
    id: i64,
    name: String,
    state: String,
    priority: i64,
    site: Option<String>,
    accelerators: i64,
    attempt: i64,
    submitted_at_ms: i64,
    since_ms: Option<i64>,
    updated_at_ms: i64,
    cancel_requested: bool,
    team: String,
    submitted_by: String,
    kind: String,
    exit_code: Option<i64>,
    end_note: Option<String>,
}

impl From<crate::db::WorkloadRow> for WorkloadView {
    fn from(r: crate::db::WorkloadRow) -> Self {
        WorkloadView {
            id: r.id,
            name: r.name,
            state: r.state,
            priority: r.priority,
            site: r.site,
            accelerators: r.accelerators,
            attempt: r.attempt,
            submitted_at_ms: r.submitted_at_ms,
            since_ms: r.since_ms,
            updated_at_ms: r.updated_at_ms,
            cancel_requested: r.cancel_requested,
            team: r.team,
            submitted_by: r.submitted_by,
            kind: r.kind,
            exit_code: r.exit_code,
            end_note: r.end_note,
        }
    }
}

async fn submit(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Submit).await?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().filter(|k| {
                !k.is_empty()
                    && k.len() <= IDEMPOTENCY_KEY_CHARS_MAX
                    && k.bytes().all(|b| b.is_ascii_graphic())
            });
            Some(k.ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid_idempotency_key", format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters")).field("Idempotency-Key"))?.to_string())
        }
    };
    let text = body_text(body, &headers).await?;
    let job = app.parser.parse_one(&text, "body").map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workload",
            match e.line {
                Some(l) => format!("line {l}: {}", e.message),
                None => e.message.clone(),
            },
        );
        if !e.field.is_empty() {
            err = err.field(e.field);
        }
        err
    })?;
    for (var, name) in &job.secrets {
        if !app.secrets.contains_key(name) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_secret",
                format!("secret '{name}' is not configured on this server (its config's secrets:)"),
            )
            .field(format!("secrets.{var}")));
        }
    }
    if let Some(c) = &job.checkpoint_store {
        crate::checkpoints::check_workload(&app.checkpoints.stores, c).map_err(|(field, m)| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_store", m).field(field)
        })?;
    }
    if let Some(c) = job.checkpoint.as_deref().filter(|c| c.starts_with('/')) {
        if std::path::Path::new(c).starts_with(&app.state_dir) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workload",
                "checkpoint: a path inside the server's state directory is not allowed",
            )
            .field("checkpoint"));
        }
    }
    let spec_json = serde_json::to_string(&job).map_err(ApiError::internal)?;
    let (reply, rx) = oneshot::channel();
    let item = NewWorkload {
        name: job.name.clone(),
        request_sha256: auth::hash(&spec_json),
        spec_json,
        priority: job.priority,
        idempotency_key: key,
        submitted_by: who.name.clone(),
        team: who.team.clone(),
        kind: job.kind.to_string(),
    };
    app.submit
        .send(SubmitJob { item, reply })
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        })?;
    let outcome = rx
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("not stored: {e}"),
            )
        })?;
    let (outcome, stored_at_ms) = outcome;
    let (view, status, replayed) = match outcome {
        SubmitOutcome::Created(id) => (
            WorkloadView {
                id,
                name: job.name.clone(),
                state: "submitted".into(),
                priority: i64::from(job.priority),
                site: None,
                accelerators: 0,
                attempt: 0,
                submitted_at_ms: stored_at_ms,
                since_ms: None,
                updated_at_ms: stored_at_ms,
                cancel_requested: false,
                team: who.team.clone(),
                submitted_by: who.name.clone(),
                kind: job.kind.to_string(),
                exit_code: None,
                end_note: None,
            },
            StatusCode::CREATED,
            false,
        ),
        SubmitOutcome::Existing(id) => {
            let row = app
                .db
                .workload(id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::internal("stored workload not found"))?;
            (WorkloadView::from(row), StatusCode::OK, true)
        }
        SubmitOutcome::KeyReused(id) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!("this Idempotency-Key was used for workload {id} with a different request"),
            )
            .field("Idempotency-Key"))
        }
    };
    let id = view.id;
    if replayed {
        app.metrics
            .submissions_replayed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        app.metrics
            .submissions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut r = json_response(status, &view);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/workloads/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let p = params(q, &["state", "limit", "cursor", "team", "provider", "kind"])?;
    let kind = p.get("kind").map(String::as_str);
    if let Some(k) = kind {
        const KINDS: &[&str] = &["train", "batch", "serve"];
        if !KINDS.contains(&k) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("unknown kind (known: {})", KINDS.join(", ")),
            )
            .field("kind"));
        }
    }
    // A provider: the workloads placed on its sites (now or last).
    let sites: Option<Vec<String>> = match p.get("provider") {
        None => None,
        Some(pv) => {
            let known: std::collections::BTreeSet<&str> = app
                .sites
                .iter()
                .map(|s| s.spec.region.provider.as_str())
                .collect();
            if !known.contains(pv.as_str()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!(
                        "no site of provider '{}' (known: {})",
                        pv.chars().take(64).collect::<String>(),
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                )
                .field("provider"));
            }
            Some(
                app.sites
                    .iter()
                    .filter(|s| s.spec.region.provider == *pv)
                    .map(|s| s.spec.name.clone())
                    .collect(),
            )
        }
    };
    let team = match (who.team_filter(), p.get("team")) {
        (Some(own), Some(t)) if t != own => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("token '{}' sees team '{own}' only", who.name),
            )
            .field("team"))
        }
        (Some(own), _) => Some(own.to_string()),
        (None, t) => t.cloned(),
    };
    let limit = page_limit(&p)?;
    let cursor = num_param(&p, "cursor", i64::MAX as u64)?.map(|c| c as i64);
    let state = p.get("state").map(String::as_str);
    if let Some(s) = state {
        const STATES: &[&str] = &[
            "submitted",
            "pending",
            "dispatched",
            "running",
            "succeeded",
            "failed",
            "cancelled",
        ];
        if !STATES.contains(&s) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("unknown state (known: {})", STATES.join(", ")),
            )
            .field("state"));
        }
    }
    let rows = app
        .db
        .list(
            state,
            team.as_deref(),
            kind,
            sites.as_deref(),
            cursor,
            limit as i64 + 1,
        )
        .await
        .map_err(ApiError::internal)?;
    let rows: Vec<WorkloadView> = rows.into_iter().map(WorkloadView::from).collect();
    Ok(page(rows, limit, |w| w.id.to_string()))
}

/// A page of a list read with `limit + 1` rows: the extra row only says
/// there is a next page, whose cursor is the last item's.
fn page<T: Serialize>(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Response {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(cursor) } else { None };
    json_response(StatusCode::OK, &json!({"items": rows, "next_cursor": next}))
}

async fn ask<T>(app: &App, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    app.queries.send(make(tx)).await.ok()?;
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .ok()?
        .ok()
}

/// One run of a workload, from its history: where, how long, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub site: Option<String>,
    pub dispatched_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// Started to ended: work done on this attempt (redone by the next one
    /// without a checkpoint, when it was requeued).
    pub ran_ms: Option<i64>,
    /// requeued, succeeded, failed, cancelled; None while it runs.
    pub ended: Option<String>,
    pub exit_code: Option<i64>,
    /// Why it ended, when not by itself.
    pub note: Option<String>,
    /// The checkpoint store it was handed, and the checkpoint it resumed
    /// from (None: it started over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<ResumedFrom>,
    /// For a requeued attempt of a workload with a checkpoint store: the
    /// work the next attempt redoes, from the checkpoint it resumed from
    /// (when this attempt wrote it) to this attempt's end; its whole run
    /// when the next one started over or from an older checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redone_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResumedFrom {
    pub store: String,
    pub step: Option<i64>,
}

/// The work each requeued attempt's successor redoes (see
/// [`AttemptView::redone_ms`]), from the checkpoints recorded.
pub fn redone(tries: &mut [AttemptView], rows: &[crate::db::CheckpointRow]) {
    for i in 0..tries.len().saturating_sub(1) {
        let (this, next) = (&tries[i], &tries[i + 1]);
        if this.ended.as_deref() != Some("requeued") {
            continue;
        }
        let (Some(started), Some(ended), Some(ran)) =
            (this.started_at_ms, this.ended_at_ms, this.ran_ms)
        else {
            continue;
        };
        let Some(r) = next.resumed_from.as_ref() else {
            continue;
        };
        let written = r.step.and_then(|step| {
            rows.iter()
                .find(|c| c.store == r.store && c.step == step)
                .map(|c| c.written_at_ms)
        });
        let redone = match (r.step, written) {
            // Resumed from a checkpoint this attempt wrote: what came after.
            (Some(_), Some(w)) if w >= started => (ended - w).clamp(0, ran),
            // From an older checkpoint, or started over: all of it.
            (Some(_), Some(_)) | (None, _) => ran,
            // A checkpoint no longer among the newest recorded: unknown.
            (Some(_), None) => continue,
        };
        tries[i].redone_ms = Some(redone);
    }
}

/// The attempts of a workload from its events (in order).
pub fn attempts(events: &[crate::db::EventRow]) -> Vec<AttemptView> {
    let mut out: Vec<AttemptView> = Vec::new();
    for e in events {
        match e.state.as_str() {
            "dispatched" => out.push(AttemptView {
                attempt: e.attempt,
                site: e.site.clone(),
                dispatched_at_ms: e.at_ms,
                started_at_ms: None,
                ended_at_ms: None,
                ran_ms: None,
                ended: None,
                exit_code: None,
                note: None,
                resumed_from: None,
                redone_ms: None,
            }),
            "running" => {
                if let Some(a) = out.last_mut().filter(|a| a.ended.is_none()) {
                    a.started_at_ms = Some(e.at_ms);
                }
            }
            state @ ("pending" | "succeeded" | "failed" | "cancelled") => {
                if let Some(a) = out.last_mut().filter(|a| a.ended.is_none()) {
                    a.ended_at_ms = Some(e.at_ms);
                    a.ran_ms = a.started_at_ms.map(|s| (e.at_ms - s).max(0));
                    a.ended = Some(
                        if state == "pending" {
                            "requeued"
                        } else {
                            state
                        }
                        .to_string(),
                    );
                    a.exit_code = e.exit_code;
                    a.note = e.note.clone();
                }
            }
            _ => {}
        }
    }
    out
}

/// Longest outage a drill may rehearse.
pub const DRILL_MS_MAX: u64 = 86_400_000;

/// `POST /v1/drills` (admin): take a site, or every site of a provider,
/// out for a while; its work moves elsewhere. The answer lists the runs
/// stopped; each workload's status shows where it went and when.
async fn drill(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    authorize(&app, &headers, Scope::Admin).await?;
    let text = body_text(body, &headers).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[serde(default)]
        site: Option<String>,
        #[serde(default)]
        provider: Option<String>,
        /// `60s`, `5m` (default 60 s).
        #[serde(default)]
        duration: Option<String>,
    }
    let bad = |m: String, field: &'static str| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_drill", m).field(field)
    };
    let req: Req = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "expected {{\"site\": …}} or {{\"provider\": …}}, and \"duration\": \"60s\": {e}"
            ),
        )
    })?;
    let sites: Vec<String> = match (&req.site, &req.provider) {
        (Some(s), None) => {
            if !app.sites.iter().any(|x| x.spec.name == *s) {
                return Err(bad(format!("no site '{s}'"), "site"));
            }
            vec![s.clone()]
        }
        (None, Some(p)) => {
            let p = p.to_ascii_lowercase();
            let v: Vec<String> = app
                .sites
                .iter()
                .filter(|x| x.spec.region.provider == p)
                .map(|x| x.spec.name.clone())
                .collect();
            if v.is_empty() {
                return Err(bad(format!("no site of provider '{p}'"), "provider"));
            }
            v
        }
        _ => {
            return Err(bad(
                "give a site or a provider (one of them)".into(),
                "site",
            ))
        }
    };
    let duration_ms = match &req.duration {
        None => 60_000,
        Some(d) => skyward_spec::job::parse_duration_ms(d).map_err(|m| bad(m, "duration"))?,
    };
    if duration_ms == 0 || duration_ms > DRILL_MS_MAX {
        return Err(bad("from 1 ms to 24 hours".into(), "duration"));
    }
    let report = ask(&app, |reply| crate::runtime::Query::Drill {
        sites,
        duration_ms,
        reply,
    })
    .await
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "scheduler_busy",
            "the scheduler did not answer in time; retry",
        )
    })?
    .map_err(|m| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_leader", m))?;
    Ok(json_response(StatusCode::CREATED, &report))
}

async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let id = path_id(&id)?;
    let row = find_workload(&app, &who, id).await?;
    let mut spec: Value = serde_json::from_str(&row.spec_json).unwrap_or(Value::Null);
    if !who.owns(&row) {
        // Teammates see the workload, not the values it was given.
        if let Some(env) = spec.get_mut("env").and_then(Value::as_object_mut) {
            for v in env.values_mut() {
                *v = Value::String("***".into());
            }
        }
        if let Some(vs) = spec.get_mut("variants").and_then(Value::as_object_mut) {
            for variant in vs.values_mut() {
                if let Some(env) = variant.get_mut("env").and_then(Value::as_object_mut) {
                    for v in env.values_mut() {
                        *v = Value::String("***".into());
                    }
                }
            }
        }
    }
    let events = app.db.events(id, 1_000).await.map_err(ApiError::internal)?;
    let reasons = if row.state == "pending" || row.state == "submitted" {
        ask(&app, |reply| Query::Why {
            id: id as u64,
            reply,
        })
        .await
        .flatten()
    } else {
        None
    };
    let parsed = serde_json::from_str::<skyward_spec::job::JobRequest>(&row.spec_json).ok();
    let store_spec: Option<skyward_model::CheckpointStore> =
        parsed.as_ref().and_then(|j| j.checkpoint_store.clone());
    // The speeds placement uses for its alternatives, and where from.
    let speeds = match &parsed {
        Some(j) => {
            let class = crate::runtime::class_of(&row.team, &j.name);
            let rs = app
                .db
                .reports(Some(&class), crate::runtime::REPORTS_PER_CLASS_MAX as i64)
                .await
                .map_err(ApiError::internal)?;
            let prior = if j.throughput.is_empty() {
                "datasheet ratios (dense BF16 TFLOPS × count)"
            } else {
                "the workload's own throughput: figures"
            };
            let mut basis = if rs.is_empty() {
                format!("{prior} (no run of this class reported its throughput)")
            } else {
                format!("learned from {} throughput report(s) of runs of this class, {prior} for the rest", rs.len())
            };
            if j.risk_averse && !rs.is_empty() {
                basis.push_str("; risk-averse: each rate one sd below its estimate");
            }
            json!({"class": class, "basis": basis, "estimates": profile_of(&app, &rs, &j.accelerators, &j.throughput)})
        }
        None => Value::Null,
    };
    let mut v = serde_json::to_value(WorkloadView::from(row)).map_err(ApiError::internal)?;
    v["spec"] = spec;
    let mut tries = attempts(&events);
    if let Some(c) = &store_spec {
        for (attempt, store, step) in app.db.resumes_of(id).await.map_err(ApiError::internal)? {
            if let Some(a) = tries.iter_mut().find(|a| a.attempt == attempt) {
                a.resumed_from = Some(ResumedFrom { store, step });
            }
        }
        let rows = app
            .db
            .checkpoints_of(id, 200)
            .await
            .map_err(ApiError::internal)?;
        redone(&mut tries, &rows);
        let mut newest: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows {
            let e = newest
                .entry(r.store.clone())
                .or_insert(r.step.max(0) as u64);
            *e = (*e).max(r.step.max(0) as u64);
        }
        let providers: Vec<String> = app
            .sites
            .iter()
            .map(|s| s.spec.region.provider.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let states = app.checkpoints.states_from(c, &newest);
        v["recovery_points"] = json!(skyward_checkpoint::recovery_points(&providers, &states)
            .into_iter()
            .map(|(provider, r)| json!({
                "provider": provider,
                "store": r.as_ref().map(|r| r.store.clone()),
                "step": r.and_then(|r| r.step),
            }))
            .collect::<Vec<_>>());
        v["checkpoints"] = serde_json::to_value(rows.iter().take(20).collect::<Vec<_>>())
            .map_err(ApiError::internal)?;
    }
    v["attempts"] = serde_json::to_value(tries).map_err(ApiError::internal)?;
    v["speeds"] = speeds;
    v["events"] = serde_json::to_value(events).map_err(ApiError::internal)?;
    v["pending_reasons"] = match reasons {
        Some(r) => json!(r
            .into_iter()
            .map(|(reason, sites)| json!({"reason": reason, "sites": sites}))
            .collect::<Vec<_>>()),
        None => Value::Null,
    };
    Ok(json_response(StatusCode::OK, &v))
}

async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Submit).await?;
    let id = path_id(&id)?;
    let current = find_workload(&app, &who, id).await?;
    if ["succeeded", "failed", "cancelled"].contains(&current.state.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("workload {id} already ended ({})", current.state),
        ));
    }
    let row = app
        .db
        .request_cancel(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("workload vanished"))?;
    app.wake.notify_one();
    Ok(json_response(
        StatusCode::ACCEPTED,
        &WorkloadView::from(row),
    ))
}

async fn logs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let id = path_id(&id)?;
    let p = params(q, &["offset", "limit"])?;
    let offset = num_param(&p, "offset", u64::MAX / 2)?.unwrap_or(0);
    let limit = num_param(&p, "limit", LOG_CHUNK_MAX)?.unwrap_or(LOG_CHUNK_MAX);
    let row = find_workload(&app, &who, id).await?;
    let mut path = app.work_dir.join(id.to_string()).join("output.log");
    let legacy = app
        .state_dir
        .join("work")
        .join(id.to_string())
        .join("output.log");
    if !path.exists() && legacy.exists() {
        // A run started by a version that kept runs in the state directory.
        path = legacy;
    }
    let (start, mut chunk) = tokio::task::spawn_blocking(move || read_chunk(&path, offset, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let next = start + chunk.len() as u64;
    // A secret the run printed is not served (best effort: a value cut by
    // a chunk boundary is not recognised).
    let referenced: Vec<&String> =
        serde_json::from_str::<skyward_spec::job::JobRequest>(&row.spec_json)
            .map(|r| r.secrets.into_values().collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .filter_map(|name| app.secrets.get(name))
            .collect();
    for value in referenced.into_iter().filter(|v| v.len() >= 4) {
        chunk = mask(&chunk, value.as_bytes());
    }
    let finished = ["succeeded", "failed", "cancelled"].contains(&row.state.as_str());
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(chunk),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&next.to_string()) {
        r.headers_mut().insert("skyward-next-offset", v);
    }
    r.headers_mut().insert(
        "skyward-finished",
        HeaderValue::from_static(if finished { "true" } else { "false" }),
    );
    if let Ok(v) = HeaderValue::from_str(&row.state) {
        r.headers_mut().insert("skyward-state", v);
    }
    Ok(r)
}

/// Up to `limit` bytes of the log from `offset`, and the offset they
/// start at: an offset past the end gives an empty chunk at the end (the
/// file system would refuse some such seeks outright).
pub(crate) fn read_chunk(
    path: &std::path::Path,
    offset: u64,
    limit: u64,
) -> std::io::Result<(u64, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if offset >= len {
        return Ok((len, Vec::new()));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(limit).read_to_end(&mut buf)?;
    Ok((offset, buf))
}

/// `text` with every occurrence of `secret` replaced by `***`.
fn mask(text: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(secret) {
            out.extend_from_slice(b"***");
            i += secret.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

async fn sites(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let gauges = app
        .metrics
        .sites
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    let items: Vec<Value> = app
        .sites
        .iter()
        .map(|s| {
            let g = gauges.iter().find(|g| g.site == s.spec.name);
            let info = skyward_catalog::regions::region_info(
                &s.spec.region.provider,
                &s.spec.region.region,
            );
            json!({
                "name": s.spec.name,
                "provider": s.spec.region.provider,
                "region": s.spec.region.region,
                "geography": info.geography,
                "compliance": info.compliance,
                "accelerator": s.spec.accelerator,
                "accelerators": s.spec.accelerators,
                "accelerators_used": g.map(|g| g.accelerators_used),
                "running": g.map(|g| g.running),
                "up": g.map(|g| g.alive),
                "last_heartbeat_ms": g.and_then(|g| g.last_heartbeat_ms),
                "price_basis": s.price_basis.as_str(),
                "price_usd_per_accelerator_hour": s.spec.price_usd_per_accelerator_hour.as_f64(),
                "price_source": s.price_source,
                "executor": match &s.executor {
                    crate::config::SiteExecutor::Local => "local",
                    crate::config::SiteExecutor::Slurm { .. } => "slurm",
                    crate::config::SiteExecutor::Agent => "agent",
                },
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"items": items, "leader": app.metrics.leader.load(std::sync::atomic::Ordering::Relaxed) == 1}),
    ))
}

/// Speed profiles of one class from its reports: the estimate per
/// alternative reported on, datasheet ratios included.
/// (As placement estimates them: `runtime::estimates` over the newest
/// `REPORTS_PER_CLASS_MAX` reports.)
fn profile_of(
    app: &App,
    reports: &[crate::db::ThroughputReport],
    alternatives: &[String],
    own: &BTreeMap<String, f64>,
) -> Vec<skyward_model::speed::SpeedEstimate> {
    let skip = reports
        .len()
        .saturating_sub(crate::runtime::REPORTS_PER_CLASS_MAX);
    let pairs: Vec<(String, f64)> = reports[skip..]
        .iter()
        .map(|r| (r.alternative.clone(), r.rate))
        .collect();
    crate::runtime::estimates(&pairs, alternatives, own, &app.catalog.accelerators)
}

/// `GET /v1/profiles[?class=team/name]`: what runs reported and the
/// speed estimated per class and alternative (a token sees its team's
/// classes; admin all).
async fn profiles(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let p = params(q, &["class"])?;
    let class = p
        .get("class")
        .map(|c| crate::http_ledger::text_param(c, "class"))
        .transpose()?;
    let rows = app
        .db
        .reports(class.as_deref(), crate::db::REPORTS_KEPT)
        .await
        .map_err(ApiError::internal)?;
    let mut by: BTreeMap<String, Vec<crate::db::ThroughputReport>> = BTreeMap::new();
    for r in rows {
        if who
            .team_filter()
            .is_some_and(|t| !r.class.starts_with(&format!("{t}/")))
        {
            continue;
        }
        by.entry(r.class.clone()).or_default().push(r);
    }
    let items: Vec<Value> = by
        .into_iter()
        .map(|(class, rs)| {
            let mut alts: Vec<String> = rs.iter().map(|r| r.alternative.clone()).collect();
            alts.sort();
            alts.dedup();
            let unit = rs.last().map(|r| r.unit.clone()).unwrap_or_default();
            json!({"class": class, "unit": unit, "reports": rs.len(), "estimates": profile_of(&app, &rs, &alts, &BTreeMap::new())})
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "items": items })))
}

/// `GET /v1/sites/events`: sites' health history, newest first: lost
/// (and why), back, and outage drills.
async fn site_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let p = params(q, &["site", "limit", "cursor"])?;
    if let Some(s) = p.get("site") {
        if !app.sites.iter().any(|x| x.spec.name == *s) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("no site '{}'", s.chars().take(64).collect::<String>()),
            )
            .field("site"));
        }
    }
    let limit = page_limit(&p)?;
    let cursor = num_param(&p, "cursor", i64::MAX as u64)?.map(|c| c as i64);
    let rows = app
        .db
        .site_events(p.get("site").map(String::as_str), cursor, limit as i64 + 1)
        .await
        .map_err(ApiError::internal)?;
    Ok(page(rows, limit, |e| e.id.to_string()))
}

/// Sites' use over the last day, sampled by this replica while it leads
/// (every 10 s at most): the dashboard's sites-over-time charts.
async fn site_history(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let h = app
        .metrics
        .site_history
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    Ok(json_response(StatusCode::OK, &h))
}

async fn queue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let p = params(q, &["limit", "cursor"])?;
    let limit = page_limit(&p)?;
    let cursor = num_param(&p, "cursor", u64::MAX)?;
    let leader = app
        .metrics
        .leader
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1;
    let items: Vec<QueueEntry> = ask(&app, |reply| Query::Queue {
        after: cursor,
        limit: limit + 1,
        team: who.team_filter().map(String::from),
        reply,
    })
    .await
    .unwrap_or_default();
    let more = items.len() > limit;
    let items: Vec<QueueEntry> = items.into_iter().take(limit).collect();
    let next = if more {
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let items: Vec<Value> = items
        .into_iter()
        .map(|e| json!({"id": e.id, "name": e.name, "team": e.team, "priority": e.priority, "position": e.position, "reasons": e.reasons.into_iter().map(|(r, n)| json!({"reason": r, "sites": n})).collect::<Vec<_>>()}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next, "leader": leader}),
    ))
}

async fn usage(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Read).await?;
    let team = who.team_filter();
    let p = params(q, &["limit", "cursor", "format"])?;
    let cursor = num_param(&p, "cursor", i64::MAX as u64)?.unwrap_or(0) as i64;
    match p.get("format").map(String::as_str) {
        None | Some("json") => {
            let limit = page_limit(&p)?;
            let rows = app
                .db
                .usage(team, cursor, limit as i64 + 1)
                .await
                .map_err(ApiError::internal)?;
            Ok(page(rows, limit, |u| u.id.to_string()))
        }
        Some("focus") => {
            // The whole history as FOCUS 1.3 rows, for `skyward ledger import`.
            let mut records = Vec::new();
            let mut after = 0;
            loop {
                let rows = app
                    .db
                    .usage(team, after, 10_000)
                    .await
                    .map_err(ApiError::internal)?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                records.extend(rows.iter().map(crate::usage::to_ledger_record));
                if records.len() > 5_000_000 {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "too_large",
                        "more than 5,000,000 usage records; page through format=json",
                    ));
                }
            }
            let mut out = Vec::new();
            // Usage only: reserved pools' fees are not known to the server.
            skyward_ledger::export::write_focus(
                &mut out,
                &records,
                &[],
                skyward_ledger::Timestamp(0),
                0,
                "skyward",
            )
            .map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv")], out).into_response())
        }
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "format is json or focus",
        )
        .field("format")),
    }
}

/// A team's name: letters, digits, '.', '_', '-'; 1 to 64.
pub fn valid_team(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

async fn create_token(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    authorize(&app, &headers, Scope::Admin).await?;
    let text = body_text(body, &headers).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        name: String,
        scope: String,
        #[serde(default)]
        team: Option<String>,
        /// A duration (`30d`, `12h`).
        #[serde(default)]
        expires: Option<String>,
        /// For scope `agent`: the site it acts for.
        #[serde(default)]
        site: Option<String>,
    }
    let req: Req = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {{\"name\": …, \"scope\": \"read|submit|admin|agent\", \"site\": … (agent), \"team\": …, \"expires\": \"30d\"}}: {e}"),
        )
    })?;
    let scope = Scope::parse(&req.scope).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scope",
            "scope is read, submit, admin or agent",
        )
        .field("scope")
    })?;
    let stored_scope = crate::auth::stored_scope(scope, req.site.as_deref(), |s| {
        app.sites
            .iter()
            .any(|x| x.spec.name == s && x.executor == crate::config::SiteExecutor::Agent)
    })
    .map_err(|m| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_site", m).field("site")
    })?;
    if req.name.is_empty() || req.name.len() > 128 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name must be 1 to 128 printable characters",
        )
        .field("name"));
    }
    if let Some(problem) = skyward_spec::text::name_problem(&req.name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            format!("name {problem}"),
        )
        .field("name"));
    }
    let team = req.team.unwrap_or_else(|| "default".into());
    if !valid_team(&team) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_team",
            "team is 1 to 64 letters, digits, '.', '_' or '-'",
        )
        .field("team"));
    }
    let now = now_ms();
    let expires_at_ms = match &req.expires {
        None => None,
        Some(e) => Some(
            now + skyward_spec::job::parse_duration_ms(e).map_err(|m| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_expires", m)
                    .field("expires")
            })? as i64,
        ),
    };
    let token = auth::generate().map_err(ApiError::internal)?;
    let hash = auth::hash(&token);
    let id = app
        .db
        .token_create(
            &crate::db::NewToken {
                name: &req.name,
                sha256: &hash,
                scope: &stored_scope,
                team: &team,
                expires_at_ms,
            },
            now,
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": id, "name": req.name, "team": team, "scope": stored_scope, "expires_at_ms": expires_at_ms, "token": token}),
    ))
}

async fn list_tokens(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Admin).await?;
    let rows = app
        .db
        .token_list(TOKENS_LISTED_MAX)
        .await
        .map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, &json!({ "items": rows })))
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Admin).await?;
    let id = id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "a token id is a positive whole number (see `skyward token list`)",
        )
        .field("id")
    })?;
    let row = app
        .db
        .token_revoke(id, now_ms())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "token_not_found",
                format!("no token {id}"),
            )
            .field("id")
        })?;
    // At once on this replica; other replicas within the cache's TTL.
    if let Ok(mut t) = app.tokens.lock() {
        t.retain(|_, (r, _)| r.id != id);
    }
    if who.token_id == id {
        eprintln!("skyward: token {id} ('{}') revoked itself", row.name);
    }
    Ok(json_response(StatusCode::OK, &row))
}

#[cfg(test)]
mod attempt_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::db::EventRow;

    fn ev(at: i64, state: &str, site: Option<&str>, attempt: i64, note: Option<&str>) -> EventRow {
        EventRow {
            at_ms: at,
            state: state.into(),
            site: site.map(String::from),
            attempt,
            exit_code: None,
            note: note.map(String::from),
        }
    }

    /// Submitted, run on edge and lost after 40 s, run on azure to the end:
    /// two attempts, the first requeued with its 40 s of work.
    #[test]
    fn work_redone_counts_from_the_checkpoint_resumed_from() {
        let a = |attempt, started, ended, resumed: Option<(&str, Option<i64>)>| AttemptView {
            attempt,
            site: Some("s".into()),
            dispatched_at_ms: started,
            started_at_ms: Some(started),
            ended_at_ms: ended,
            ran_ms: ended.map(|e| e - started),
            ended: ended.map(|_| "requeued".to_string()),
            exit_code: None,
            note: None,
            resumed_from: resumed.map(|(store, step)| ResumedFrom {
                store: store.into(),
                step,
            }),
            redone_ms: None,
        };
        let ck = |store: &str, step, written| crate::db::CheckpointRow {
            workload_id: 1,
            store: store.into(),
            step,
            bytes: 1,
            files: 1,
            written_at_ms: written,
            recorded_at_ms: written,
            copied_from: None,
        };
        // Attempt 1 ran 1,000 → 61,000 and wrote step 5 at 50,000; attempt
        // 2 resumed from it: 11 s redone. Attempt 2 ran 70,000 → 80,000 and
        // attempt 3 resumed from step 5 again (written before attempt 2
        // started): all 10 s redone. Attempt 3 → 4 started over: all 5 s.
        let mut t = vec![
            a(1, 1_000, Some(61_000), Some(("s3://b", None))),
            a(2, 70_000, Some(80_000), Some(("az://b", Some(5)))),
            a(3, 90_000, Some(95_000), Some(("az://b", Some(5)))),
            a(4, 99_000, None, Some(("s3://b", None))),
        ];
        redone(&mut t, &[ck("az://b", 5, 50_000)]);
        let got: Vec<Option<i64>> = t.iter().map(|x| x.redone_ms).collect();
        assert_eq!(got, vec![Some(11_000), Some(10_000), Some(5_000), None]);
    }

    #[test]
    fn attempts_are_read_from_the_history() {
        let events = vec![
            ev(0, "pending", None, 0, None),
            ev(10, "dispatched", Some("edge"), 1, Some("cheapest")),
            ev(20, "running", Some("edge"), 1, None),
            ev(40_020, "pending", None, 1, Some("lost on edge")),
            ev(40_030, "dispatched", Some("azure"), 2, None),
            ev(40_040, "running", Some("azure"), 2, None),
            EventRow {
                exit_code: Some(0),
                ..ev(50_040, "succeeded", Some("azure"), 2, None)
            },
        ];
        let a = attempts(&events);
        assert_eq!(a.len(), 2);
        assert_eq!(
            (
                a[0].site.as_deref(),
                a[0].ran_ms,
                a[0].ended.as_deref(),
                a[0].note.as_deref()
            ),
            (
                Some("edge"),
                Some(40_000),
                Some("requeued"),
                Some("lost on edge")
            )
        );
        assert_eq!(
            (
                a[1].site.as_deref(),
                a[1].ran_ms,
                a[1].ended.as_deref(),
                a[1].exit_code
            ),
            (Some("azure"), Some(10_000), Some("succeeded"), Some(0))
        );
        // Still running: no end yet.
        let a = attempts(&events[..3]);
        assert_eq!(
            (a[0].started_at_ms, a[0].ended.as_deref()),
            (Some(20), None)
        );
    }
}
