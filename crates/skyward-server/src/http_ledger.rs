//! The ledger and the contracts over HTTP: the same use cases as the CLI
//! (`skyward_app`), on the control plane's database.
//!
//! - `PUT /v1/contracts` (admin): a contracts file (YAML) becomes the
//!   current version; `GET /v1/contracts[?version=N]`,
//!   `GET /v1/contracts/history`, `GET /v1/contracts/{name}` (read).
//! - `GET /v1/commitments` (read): the live state the scheduler prices
//!   placements with.
//! - `POST /v1/ledger/imports?name=FILE[&provider=P][&mode=auto|append|replace]`
//!   (admin): a FOCUS file as the body, streamed (not buffered) into the
//!   folder on a blocking thread, up to [`IMPORT_BYTES_MAX`];
//!   `GET /v1/ledger/imports` lists them.
//! - `GET /v1/ledger/status[?at=DATE]` (read).
//! - The ledger's questions (read), each `skyward_app`'s use case with its
//!   parameters as the query string (`skyward_app::query`):
//!   `GET /v1/ledger/analyze`, `/recommend`, `/options`, `/backtest`,
//!   `/breakdown`, `/inventory` (JSON) and `/report` (an HTML page). They
//!   run on blocking threads, [`QUESTIONS_AT_ONCE_MAX`] at once and
//!   [`QUESTIONS_WAITING_MAX`] waiting (429 past that), so a long backtest
//!   holds neither the scheduler nor the API.

use crate::auth::Scope;
use crate::http::{authorize, body_text, json_response, now_ms, params, ApiError, ApiResult, App};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use skyward_app::AppError;
use std::io::Read;
use std::sync::Arc;

/// Largest FOCUS file accepted through the API (streamed; memory is
/// bounded by the folded buckets, not by the file).
pub const IMPORT_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// After refusing a file mid-way, this much more of the body is read and
/// dropped, so a client still sending gets the refusal.
pub const DRAIN_AFTER_REFUSAL_BYTES: u64 = 256 * 1024 * 1024;

/// Imports folding at once (each holds up to a few hundred MiB of
/// buckets); more get 429.
pub const IMPORTS_AT_ONCE_MAX: usize = 2;

/// Ledger questions computed at once (recommend, options and backtest
/// draw up to 2,000 scenarios); others wait their turn.
pub const QUESTIONS_AT_ONCE_MAX: usize = 2;

/// Questions waiting for a turn; more get 429.
pub const QUESTIONS_WAITING_MAX: usize = 16;

static QUESTIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(QUESTIONS_AT_ONCE_MAX);
static QUESTIONS_WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Takes a turn to compute a question, waiting behind at most
/// [`QUESTIONS_WAITING_MAX`] others.
async fn question_turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    if let Ok(p) = QUESTIONS.try_acquire() {
        return Ok(p);
    }
    let _waiting = Waiting::enter()?;
    QUESTIONS.acquire().await.map_err(|_| questions_busy())
}

fn questions_busy() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "questions_busy",
        format!(
            "{QUESTIONS_AT_ONCE_MAX} ledger questions are being computed and {QUESTIONS_WAITING_MAX} wait; try again shortly"
        ),
    )
}

/// One question waiting (for a turn, or for the ledger's load), counted
/// for as long as it lives (a client that goes away while waiting drops
/// it); past [`QUESTIONS_WAITING_MAX`] a question is refused with 429.
struct Waiting;

impl Waiting {
    fn enter() -> Result<Waiting, ApiError> {
        use std::sync::atomic::Ordering;
        let before = QUESTIONS_WAITING.fetch_add(1, Ordering::AcqRel);
        let w = Waiting;
        if before >= QUESTIONS_WAITING_MAX {
            return Err(questions_busy());
        }
        Ok(w)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        QUESTIONS_WAITING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Reads a question's parameters; a wrong one is a 400 naming it.
fn question<Q: serde::de::DeserializeOwned>(q: Option<String>) -> Result<Q, ApiError> {
    skyward_app::query::from_query(q.as_deref().unwrap_or("")).map_err(|e| match e {
        AppError::Field { ref field, .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", e.to_string())
                .field(field.clone())
        }
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            other.to_string(),
        ),
    })
}

/// Answers a question on a blocking thread (its reads go through the
/// runtime's pool), at most [`QUESTIONS_AT_ONCE_MAX`] at once. A client
/// that goes away while waiting gives its turn up (the future is dropped
/// before it computes).
async fn answer<R, F>(app: &App, f: F) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: AsyncFnOnce(skyward_store::Store) -> Result<R, AppError> + Send + 'static,
{
    let _permit = question_turn().await?;
    let store = app.db.ledger();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f(store)))
        .await
        .map_err(ApiError::internal)?
        .map_err(app_err)
}

/// A JSON question: read scope, its parameters from the query string, its
/// answer computed by `f` (see [`answer`]) or kept from when the ledger
/// was last as it is (see [`Answers`]). `name` tells questions apart.
async fn json_question<Q, R, F>(
    name: &'static str,
    app: Arc<App>,
    headers: HeaderMap,
    q: Option<String>,
    f: F,
) -> ApiResult
where
    Q: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    F: AsyncFnOnce(skyward_store::Store, Q) -> Result<R, AppError> + Send + 'static,
{
    authorize(&app, &headers, Scope::Read).await?;
    let key = format!("{name}?{}", q.as_deref().unwrap_or(""));
    let q: Q = question(q)?;
    kept_answer(&app, key, async {
        answer(&app, async move |s| f(s, q).await).await
    })
    .await
}

/// Answers to ledger questions, kept until the ledger changes: an import,
/// a new contracts version or a run's usage (`Db::ledger_version`; a
/// replaced import is a new import). The dashboard asks the same
/// questions every few seconds, and each answer reads every daily bucket
/// and runs its forecast again; none depends on the clock or on who asks.
#[derive(Default)]
pub struct Answers {
    kept: std::sync::Mutex<std::collections::VecDeque<Kept>>,
    /// The contracts and data the questions read, at one version: loaded
    /// by the first question after a change while the others wait for it
    /// (one read of the store, not one per question).
    loaded: tokio::sync::Mutex<Option<Loaded>>,
}

type Loaded = ((i64, i64, i64), Arc<skyward_app::ledger::Loaded>);

/// The ledger as loaded at its version now: kept, or loaded once however
/// many questions ask at the same moment.
async fn loaded(app: &App) -> Result<Arc<skyward_app::ledger::Loaded>, ApiError> {
    let version = app.db.ledger_version().await.map_err(ApiError::internal)?;
    // Waiting for another question's load counts as waiting for a turn.
    let mut slot = match app.ledger_answers.loaded.try_lock() {
        Ok(s) => s,
        Err(_) => {
            let _waiting = Waiting::enter()?;
            app.ledger_answers.loaded.lock().await
        }
    };
    if let Some((v, l)) = slot.as_ref() {
        if *v == version {
            return Ok(l.clone());
        }
    }
    *slot = None;
    let l = Arc::new(
        answer(app, async move |s| {
            skyward_app::ledger::loaded(&s, None).await
        })
        .await?,
    );
    *slot = Some((version, l.clone()));
    Ok(l)
}

/// A question answered from the loaded ledger ([`loaded`]), computed on
/// a blocking thread in its turn like the others.
async fn answer_loaded<R, F>(app: &App, f: F) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: FnOnce(&skyward_app::ledger::Loaded) -> Result<R, AppError> + Send + 'static,
{
    let l = loaded(app).await?;
    let _permit = question_turn().await?;
    tokio::task::spawn_blocking(move || f(&l))
        .await
        .map_err(ApiError::internal)?
        .map_err(app_err)
}

/// (question with its parameters, the ledger's version, the answer).
type Kept = (String, (i64, i64, i64), bytes::Bytes);

/// Answers kept at most (the oldest goes first), and the largest kept.
pub const ANSWERS_MAX: usize = 64;
pub const ANSWER_BYTES_MAX: usize = 1 << 20;

impl Answers {
    /// The answer to `key` kept at `version`, if any.
    pub fn get(&self, key: &str, version: (i64, i64, i64)) -> Option<bytes::Bytes> {
        let kept = self.kept.lock().ok()?;
        kept.iter()
            .find(|(k, v, _)| k == key && *v == version)
            .map(|(_, _, b)| b.clone())
    }

    /// Keeps `body` as the answer to `key` at `version`, in place of any
    /// older one to the same question.
    pub fn put(&self, key: String, version: (i64, i64, i64), body: bytes::Bytes) {
        if body.len() > ANSWER_BYTES_MAX {
            return;
        }
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|(k, _, _)| *k != key);
            if kept.len() >= ANSWERS_MAX {
                kept.pop_front();
            }
            kept.push_back((key, version, body));
        }
    }
}

/// The answer to `key` at the ledger's version now: kept, or computed by
/// `compute` and kept. (The version is read first: an answer computed
/// while the ledger changed is kept under the older version, which no
/// later request asks for.)
async fn kept_answer<R: serde::Serialize>(
    app: &App,
    key: String,
    compute: impl std::future::Future<Output = Result<R, ApiError>>,
) -> ApiResult {
    let version = app.db.ledger_version().await.ok();
    let reply = |b: bytes::Bytes| {
        use axum::response::IntoResponse;
        (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            b,
        )
            .into_response()
    };
    if let Some(b) = version.and_then(|v| app.ledger_answers.get(&key, v)) {
        return Ok(reply(b));
    }
    let r = compute.await?;
    let body = bytes::Bytes::from(serde_json::to_vec(&r).map_err(ApiError::internal)?);
    if let Some(v) = version {
        app.ledger_answers.put(key, v, body.clone());
    }
    Ok(reply(body))
}

pub async fn ledger_analyze(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    json_question(
        "analyze",
        app,
        headers,
        q,
        async |s, q: skyward_app::analyze::AnalyzeQuery| {
            skyward_app::analyze::analyze(&s, &q, None).await
        },
    )
    .await
}

pub async fn ledger_recommend(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    json_question(
        "recommend",
        app,
        headers,
        q,
        async |s, q: skyward_app::recommend::RecommendQuery| {
            skyward_app::recommend::recommend(&s, &q, None).await
        },
    )
    .await
}

pub async fn ledger_options(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    json_question(
        "options",
        app,
        headers,
        q,
        async |s, q: skyward_app::recommend::OptionsQuery| {
            skyward_app::recommend::options(&s, &q, None).await
        },
    )
    .await
}

pub async fn ledger_backtest(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    json_question(
        "backtest",
        app,
        headers,
        q,
        async |s, q: skyward_app::recommend::BacktestQuery| {
            skyward_app::recommend::backtest(&s, &q, None).await
        },
    )
    .await
}

pub async fn ledger_breakdown(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    json_question(
        "breakdown",
        app,
        headers,
        q,
        async |s, q: skyward_app::breakdown::BreakdownQuery| {
            skyward_app::breakdown::breakdown(&s, &q).await
        },
    )
    .await
}

pub async fn ledger_inventory(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let key = format!("inventory?{}", q.as_deref().unwrap_or(""));
    let q: skyward_app::breakdown::AtQuery = question(q)?;
    kept_answer(&app, key, async {
        answer_loaded(&app, move |l| skyward_app::breakdown::inventory_of(l, &q)).await
    })
    .await
}

/// The ledger's HTML page (self-contained: inline SVG, no scripts).
pub async fn ledger_report(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let q: skyward_app::breakdown::AtQuery = question(q)?;
    let place = "this server's database".to_string();
    let html = answer(&app, async move |s| {
        skyward_app::report::page(&s, &q, None, &place).await
    })
    .await?;
    let mut r = axum::response::Response::new(Body::from(html));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page has no scripts; say so to the browser as well.
    r.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        ),
    );
    Ok(r)
}

fn app_err(e: AppError) -> ApiError {
    match &e {
        AppError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        AppError::Spec(s) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_contracts",
            e.to_string(),
        )
        .field(s.field.clone()),
        AppError::Store(s) if s.is_input() => {
            ApiError::new(StatusCode::CONFLICT, "import_conflict", e.to_string())
        }
        AppError::Field { field, .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
        )
        .field(field.clone()),
        AppError::Input(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
        ),
        AppError::Store(_) | AppError::Io(_) => ApiError::internal(e),
    }
}

/// A query value, percent-decoded; text people read back (no control
/// characters), at most 200 characters.
pub(crate) fn text_param(raw: &str, name: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => return Err(bad_param(name, "bad percent-encoding")),
                }
                i += 3;
            }
            b'%' => return Err(bad_param(name, "bad percent-encoding")),
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad_param(name, "not UTF-8"))?;
    if s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(bad_param(
            name,
            "at most 200 characters, no control characters",
        ));
    }
    Ok(s)
}

fn bad_param(name: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("{name}: {why}"),
    )
    .field(name)
}

pub async fn apply_contracts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    let who = authorize(&app, &headers, Scope::Admin).await?;
    let p = params(q, &["name"])?;
    let name = match p.get("name") {
        Some(n) => text_param(n, "name")?,
        None => "contracts.yaml".to_string(),
    };
    let text = body_text(body, &headers).await?;
    let by = format!("{} (token {})", who.name, who.token_id);
    let applied =
        skyward_app::contracts::apply(&app.db.ledger(), &name, &text, &by, now_ms() / 1000)
            .await
            .map_err(app_err)?;
    if applied.changed {
        // The scheduler's live state follows at its next refresh.
        app.wake.notify_one();
    }
    Ok(json_response(
        if applied.changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &applied,
    ))
}

pub async fn current_contracts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let p = params(q, &["version"])?;
    let version = match p.get("version") {
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad_param("version", "a positive whole number"))?,
        ),
        None => None,
    };
    match skyward_app::contracts::current(&app.db.ledger(), version)
        .await
        .map_err(app_err)?
    {
        Some(c) => Ok(json_response(StatusCode::OK, &c)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_contracts",
            match version {
                Some(v) => format!("no contracts version {v}"),
                None => "no contracts applied (PUT /v1/contracts, or `skyward contracts apply FILE --server URL`)".into(),
            },
        )),
    }
}

pub async fn contract_history(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let h = skyward_app::contracts::history(&app.db.ledger())
        .await
        .map_err(app_err)?;
    Ok(json_response(StatusCode::OK, &json!({ "items": h })))
}

pub async fn show_contract(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(bad_param(
            "name",
            "at most 200 characters, no control characters",
        ));
    }
    let s = skyward_app::contracts::show(&app.db.ledger(), &name)
        .await
        .map_err(app_err)?;
    Ok(json_response(StatusCode::OK, &s))
}

/// The scheduler's own copy when this replica leads (`source:
/// scheduler`), else computed from the store now (`source: store`).
pub async fn commitments(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let (state, source) = match app.live.get() {
        Some(s) => (s, "scheduler"),
        None => (
            crate::commitments::live_state(&app.db, now_ms().max(0) as u64)
                .await
                .map_err(ApiError::internal)?,
            "store",
        ),
    };
    let mut v = serde_json::to_value(&state).map_err(ApiError::internal)?;
    v["source"] = json!(source);
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn ledger_status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    at_question(app, headers, q, "status", |l, at| {
        skyward_app::ledger::status_of(l, at).map(|s| json!(s))
    })
    .await
}

/// A question with only an `at` date over the loaded ledger: computed
/// like the others (on a blocking thread, a bounded number at once) and
/// kept until the ledger changes.
async fn at_question<F>(
    app: Arc<App>,
    headers: HeaderMap,
    q: Option<String>,
    name: &str,
    f: F,
) -> ApiResult
where
    F: FnOnce(&skyward_app::ledger::Loaded, Option<&str>) -> Result<serde_json::Value, AppError>
        + Send
        + 'static,
{
    authorize(&app, &headers, Scope::Read).await?;
    let at = at_param(q)?;
    let key = format!("{name}?{}", at.as_deref().unwrap_or(""));
    kept_answer(&app, key, async {
        answer_loaded(&app, move |l| f(l, at.as_deref())).await
    })
    .await
}

/// The one parameter of the status and the burn-down: `at`, a date.
fn at_param(q: Option<String>) -> Result<Option<String>, ApiError> {
    let p = params(q, &["at"])?;
    p.get("at").map(|a| text_param(a, "at")).transpose()
}

/// Every spend commitment's burn-down (burned by day, floors, forecast
/// band): the dashboard's charts, the report's figures.
pub async fn ledger_burndown(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    at_question(app, headers, q, "burndown", |l, at| {
        let (at, items) = skyward_app::ledger::burndown_of(l, at)?;
        Ok(json!({"at": at, "items": items}))
    })
    .await
}

/// `GET /v1/ledger/utilisation`: day by day utilisation and coverage of
/// the commitments seen in the data, and each provider's weekly effective
/// savings rate (the dashboard's commitments-over-time charts).
pub async fn ledger_utilisation(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    at_question(app, headers, q, "utilisation", |l, at| {
        let (at, u) = skyward_app::ledger::use_over_time_of(l, at)?;
        let mut v = json!(u);
        v["at"] = json!(at);
        Ok(v)
    })
    .await
}

pub async fn ledger_imports(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    authorize(&app, &headers, Scope::Read).await?;
    let items = app
        .db
        .ledger()
        .imports()
        .await
        .map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, &json!({ "items": items })))
}

static IMPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(IMPORTS_AT_ONCE_MAX);

/// The body's chunks, read by the folder on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
    chunk: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

pub async fn ledger_import(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    use http_body_util::BodyExt;
    authorize(&app, &headers, Scope::Admin).await?;
    let p = params(q, &["name", "provider", "mode"])?;
    let name = match p.get("name") {
        Some(n) => text_param(n, "name")?,
        None => {
            return Err(bad_param(
                "name",
                "required: the file's name, for the record and for messages",
            ))
        }
    };
    let provider = match p.get("provider") {
        Some(v) => Some(text_param(v, "provider")?),
        None => None,
    };
    let mode = skyward_app::ledger::mode(p.get("mode").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad_param("mode", &e.to_string()))?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "a FOCUS file through the API is at most {} GiB; split it by billing period",
                IMPORT_BYTES_MAX >> 30
            ),
        )
    };
    if declared.is_some_and(|n| n > IMPORT_BYTES_MAX) {
        return Err(too_large());
    }
    let _permit = IMPORTS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "imports_busy",
            format!("{IMPORTS_AT_ONCE_MAX} imports are running; try again when one ends"),
        )
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let fold_name = name.clone();
    let folding = tokio::task::spawn_blocking(move || {
        skyward_app::ledger::fold(
            ChannelReader {
                rx,
                chunk: bytes::Bytes::new(),
            },
            &fold_name,
            provider.as_deref(),
            |_| {},
        )
    });
    let mut body = body;
    let mut total = 0u64;
    let mut over = false;
    let mut read_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                let Ok(data) = f.into_data() else { continue };
                total += data.len() as u64;
                if total > IMPORT_BYTES_MAX {
                    over = true;
                    let _ = tx.send(Err(std::io::Error::other("body too large"))).await;
                    break;
                }
                if tx.send(Ok(data)).await.is_err() {
                    // The folder stopped (a bad row): its error is the
                    // answer. Read on a little, so a client still sending
                    // gets it instead of a closed connection.
                    let mut drained = 0u64;
                    while drained < DRAIN_AFTER_REFUSAL_BYTES {
                        match body.frame().await {
                            Some(Ok(f)) => drained += f.data_ref().map_or(0, |d| d.len() as u64),
                            _ => break,
                        }
                    }
                    break;
                }
            }
            Err(e) => {
                read_error = Some(e.to_string());
                let _ = tx.send(Err(std::io::Error::other("body cut"))).await;
                break;
            }
        }
    }
    drop(tx);
    let folded = folding.await.map_err(ApiError::internal)?;
    if over {
        return Err(too_large());
    }
    if let Some(e) = read_error {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("cannot read the body: {e}"),
        ));
    }
    let folded = folded.map_err(app_err)?;
    let imported = skyward_app::ledger::store(&app.db.ledger(), folded, mode, now_ms() / 1000)
        .await
        .map_err(app_err)?;
    Ok(json_response(
        if imported.already_imported {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        &imported,
    ))
}

#[cfg(test)]
mod answers_tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_for_its_version_only_and_the_store_is_bounded() {
        let a = Answers::default();
        let v1 = (1, 1, 0);
        a.put("status?".into(), v1, bytes::Bytes::from_static(b"one"));
        assert_eq!(a.get("status?", v1).as_deref(), Some(&b"one"[..]));
        // Another version of the ledger, another question: not kept.
        assert_eq!(a.get("status?", (1, 1, 1)), None);
        assert_eq!(a.get("burndown?", v1), None);
        // A newer answer to the same question replaces the older one.
        a.put(
            "status?".into(),
            (2, 1, 0),
            bytes::Bytes::from_static(b"two"),
        );
        assert_eq!(a.get("status?", v1), None);
        assert_eq!(a.get("status?", (2, 1, 0)).as_deref(), Some(&b"two"[..]));
        // Bounded: the oldest question goes first; a huge answer is not kept.
        for i in 0..ANSWERS_MAX {
            a.put(format!("q{i}"), v1, bytes::Bytes::from_static(b"x"));
        }
        assert_eq!(a.get("status?", (2, 1, 0)), None);
        assert!(a.get("q0", v1).is_some() && a.get(&format!("q{}", ANSWERS_MAX - 1), v1).is_some());
        a.put(
            "big".into(),
            v1,
            bytes::Bytes::from(vec![0u8; ANSWER_BYTES_MAX + 1]),
        );
        assert_eq!(a.get("big", v1), None);
    }
}
