//! The control plane's durable state, on SQLite (a file, zero setup) or
//! PostgreSQL (several replicas). One code path through sqlx's `Any`
//! driver; the SQL is the common subset (`$n` parameters, `RETURNING`,
//! `ON CONFLICT DO NOTHING`), and each backend has its own versioned
//! migrations (`migrations/sqlite`, `migrations/postgres`).
//!
//! Every mutation is a row before it is an acknowledgement: a submission
//! (or a cancel request) is committed, then acknowledged; the scheduler
//! picks it up from the table. So any replica can accept work, and a
//! crash between commit and scheduling loses nothing.
//!
//! The scheduler's own writes are fenced by its leadership lease: each
//! batch first renews the lease row under the leader's term, in the same
//! transaction, so a deposed leader's late writes fail instead of landing.

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {target}: {message}")]
    Open { target: String, message: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("this replica is no longer the leader")]
    NotLeader,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// `postgres://…` / `postgresql://…`, or a SQLite file path
    /// (`sqlite://path` accepted too).
    pub fn parse(text: &str) -> Target {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Target::Postgres(text.to_string())
        } else {
            Target::Sqlite(PathBuf::from(
                text.strip_prefix("sqlite://").unwrap_or(text),
            ))
        }
    }

    /// For messages: never the password.
    pub fn redacted(&self) -> String {
        match self {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(url) => redact_url(url),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => {
            let user = auth.split(':').next().unwrap_or("");
            if auth.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => url.to_string(),
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct NewWorkload {
    pub name: String,
    pub spec_json: String,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    pub request_sha256: String,
    pub submitted_by: String,
    pub team: String,
    /// train | batch | serve.
    pub kind: String,
}

/// Throughput reports kept (the newest).
pub const REPORTS_KEPT: i64 = 100_000;

/// A run's reported throughput: its class (`team/name`), the alternative
/// it ran on (`H100:8`), the rate in its unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThroughputReport {
    pub class: String,
    pub alternative: String,
    pub rate: f64,
    pub unit: String,
    pub at_ms: i64,
    pub workload_id: i64,
}

/// Site health events kept (the newest).
pub const SITE_EVENTS_KEPT: i64 = 100_000;

/// A site's health event to store: `down` (lost or taken out), `up`
/// (heard again), `drill` (an outage rehearsal started).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteEvent {
    pub at_ms: i64,
    pub site: String,
    pub event: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteEventRow {
    pub id: i64,
    pub at_ms: i64,
    pub site: String,
    pub event: String,
    pub detail: String,
}

/// A token to store: only its hash.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub scope: &'a str,
    pub team: &'a str,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    Created(i64),
    /// Same key, same request: the first submission's id.
    Existing(i64),
    /// Same key, different request.
    KeyReused(i64),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadRow {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub priority: i64,
    pub site: Option<String>,
    pub accelerators: i64,
    pub attempt: i64,
    pub submitted_at_ms: i64,
    pub since_ms: Option<i64>,
    pub updated_at_ms: i64,
    pub cancel_requested: bool,
    pub team: String,
    pub submitted_by: String,
    /// train | batch | serve.
    pub kind: String,
    /// The run's exit code (the last attempt's), once it ended.
    pub exit_code: Option<i64>,
    /// Why it ended, when not by itself (walltime, a removed site…).
    pub end_note: Option<String>,
    #[serde(skip)]
    pub spec_json: String,
    /// The core's failover state (`skyward_core::Failover`) as JSON.
    #[serde(skip)]
    pub failover_json: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    pub at_ms: i64,
    pub state: String,
    pub site: Option<String>,
    pub attempt: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A checkpoint as recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckpointRow {
    #[serde(skip)]
    pub workload_id: i64,
    pub store: String,
    pub step: i64,
    pub bytes: i64,
    pub files: i64,
    pub written_at_ms: i64,
    pub recorded_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
}

fn checkpoint_row(r: &sqlx::any::AnyRow) -> Result<CheckpointRow, DbError> {
    Ok(CheckpointRow {
        workload_id: r.try_get(0)?,
        store: r.try_get(1)?,
        step: r.try_get(2)?,
        bytes: r.try_get(3)?,
        files: r.try_get(4)?,
        written_at_ms: r.try_get(5)?,
        recorded_at_ms: r.try_get(6)?,
        copied_from: r.try_get(7)?,
    })
}

/// A token as stored (never its value).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub team: String,
    pub scope: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// A site as last configured (so its work can be accounted for after it
/// leaves the configuration).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteRow {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub accelerator: String,
    pub accelerators: i64,
    pub price_micro_usd_per_accelerator_hour: i64,
    pub spot: bool,
    pub price_basis: String,
    /// `local`, or `slurm:<slurm.conf>` (see migration 0003).
    pub executor: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageRow {
    pub id: i64,
    pub workload_id: i64,
    pub attempt: i64,
    pub site: String,
    pub provider: String,
    pub region: String,
    pub accelerator: String,
    pub accelerators: i64,
    pub price_basis: String,
    pub price_micro_usd_per_accelerator_hour: i64,
    pub accelerator_hours: f64,
    pub cost_micro_usd: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One write of the scheduler, applied in order within a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Transition {
        id: i64,
        state: &'static str,
        site: Option<String>,
        accelerators: i64,
        /// A new dispatch: the attempt counter goes up.
        new_attempt: bool,
        since_ms: Option<i64>,
        at_ms: i64,
        /// For an end: the run's exit code and why it ended.
        exit_code: Option<i64>,
        note: Option<String>,
    },
    /// A workload's failover state (JSON), after a site failed it.
    Failover { id: i64, json: String },
    /// The store (and checkpoint) an attempt was handed at dispatch.
    Resume {
        id: i64,
        attempt: i64,
        store: String,
        step: Option<i64>,
    },
    /// A run's usage, and the same as ledger charges (one transaction).
    Usage {
        row: UsageRow,
        team: String,
        /// After the provider's commitment discount.
        billed_micro_usd: i64,
    },
}

#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// The `imports` record the runs' own ledger charges belong to.
    runs_import_id: i64,
    pub target: Target,
    /// SQLite: writers of this process take turns here, so none waits in
    /// SQLite's busy handler (which sleeps in steps of up to 100 ms).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// The `imports` record of the runs' own charges, created once.
async fn runs_import(pool: &AnyPool) -> Result<i64, DbError> {
    let find = || sqlx::query("SELECT id FROM imports WHERE sha256 = $1").bind(RUNS_IMPORT_SHA);
    if let Some(r) = find().fetch_optional(pool).await? {
        return Ok(r.try_get(0)?);
    }
    sqlx::query(
        "INSERT INTO imports (file_name, sha256, format, rows, buckets, replaced, imported_at) VALUES ($1, $2, 'skyward', 0, 0, '', 0) ON CONFLICT DO NOTHING",
    )
    .bind("runs started by Skyward")
    .bind(RUNS_IMPORT_SHA)
    .execute(pool)
    .await?;
    Ok(find().fetch_one(pool).await?.try_get(0)?)
}

/// Not a file's hash: the key of the runs' own `imports` record.
const RUNS_IMPORT_SHA: &str = "skyward:runs";

/// One turn per SQLite file in this process (the server opens it through
/// more than one pool: the request path's and the scheduler's).
fn write_turn_for(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static TURNS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let turns = TURNS.get_or_init(Default::default);
    match turns.lock() {
        Ok(mut t) => t.entry(path.to_path_buf()).or_default().clone(),
        Err(_) => Arc::default(),
    }
}

/// A write transaction and, on SQLite, this process's write turn, held
/// until the transaction ends.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

fn workload_row(r: &AnyRow) -> Result<WorkloadRow, sqlx::Error> {
    Ok(WorkloadRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        state: r.try_get("state")?,
        priority: r.try_get("priority")?,
        site: r.try_get("site")?,
        accelerators: r.try_get("accelerators")?,
        attempt: r.try_get("attempt")?,
        submitted_at_ms: r.try_get("submitted_at_ms")?,
        since_ms: r.try_get("since_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        team: r.try_get("team")?,
        submitted_by: r.try_get("submitted_by")?,
        kind: r.try_get("kind")?,
        exit_code: r.try_get("exit_code")?,
        end_note: r.try_get("end_note")?,
        spec_json: r.try_get("spec")?,
        failover_json: r.try_get("failover")?,
    })
}

const WORKLOAD_COLUMNS: &str = "id, name, state, priority, site, accelerators, attempt, submitted_at_ms, since_ms, updated_at_ms, cancel_requested, team, submitted_by, kind, exit_code, end_note, spec, failover";

fn token_row(r: &AnyRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        team: r.try_get("team")?,
        scope: r.try_get("scope")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, team, scope, created_at_ms, expires_at_ms, revoked_at_ms";

impl Db {
    pub async fn open(target: &Target) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let open_err = |m: String| DbError::Open {
            target: target.redacted(),
            message: m,
        };
        let (url, max) = match target {
            Target::Sqlite(path) => {
                let path = &std::path::absolute(path).map_err(|e| open_err(e.to_string()))?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| open_err(e.to_string()))?;
                }
                (format!("sqlite://{}?mode=rwc", path.display()), 4)
            }
            Target::Postgres(url) => (url.clone(), 8),
        };
        let is_sqlite = matches!(target, Target::Sqlite(_));
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets readers run beside the writer; FULL makes
                        // every commit durable before it is acknowledged.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        // Work and money in one database: the control plane's migrations,
        // then the ledger's (numbered from 1000, so neither set sees the
        // other's versions as its own).
        let own = if is_sqlite {
            &SQLITE_MIGRATIONS
        } else {
            &POSTGRES_MIGRATIONS
        };
        let own = sqlx::migrate::Migrator {
            migrations: own.migrations.clone(),
            ignore_missing: true,
            locking: own.locking,
            no_tx: own.no_tx,
        };
        own.run(&pool)
            .await
            .map_err(|e| DbError::Migrate(e.to_string()))?;
        let backend = if is_sqlite {
            skyward_store::Backend::Sqlite
        } else {
            skyward_store::Backend::Postgres
        };
        skyward_store::ledger_migrator(backend, skyward_store::SHARED_VERSION_BASE)
            .run(&pool)
            .await
            .map_err(|e| DbError::Migrate(e.to_string()))?;
        let runs_import_id = runs_import(&pool).await?;
        let write_turn = match target {
            Target::Sqlite(p) => Some(write_turn_for(
                &std::path::absolute(p).unwrap_or_else(|_| p.clone()),
            )),
            Target::Postgres(_) => None,
        };
        Ok(Db {
            pool,
            runs_import_id,
            target: target.clone(),
            write_turn,
        })
    }

    /// A write transaction. On SQLite it takes the write lock at BEGIN
    /// (IMMEDIATE), so it waits its turn (busy_timeout) instead of failing
    /// when it would upgrade from reading while another writer commits.
    async fn begin_write(&self) -> Result<WriteTx, DbError> {
        let turn = match &self.write_turn {
            Some(t) => Some(t.clone().lock_owned().await),
            None => None,
        };
        let tx = if self.is_postgres() {
            self.pool.begin().await?
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    /// What the commitments' live state reads, as one comparable value:
    /// the latest import, contracts version and run usage.
    pub async fn ledger_version(&self) -> Result<(i64, i64, i64), DbError> {
        let r = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM imports), (SELECT COALESCE(MAX(version), 0) FROM contract_sets), (SELECT COALESCE(MAX(id), 0) FROM usage)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }

    /// Whether the ledger holds any charge (a bill's or a run's): its
    /// questions refuse an empty one.
    pub async fn ledger_has_charges(&self) -> Result<bool, DbError> {
        let r =
            sqlx::query("SELECT COUNT(*) FROM (SELECT 1 FROM charges_daily LIMIT 1) AS any_charge")
                .fetch_one(&self.pool)
                .await?;
        Ok(r.try_get::<i64, _>(0)? > 0)
    }

    /// The ledger in this database (imports, charges, contracts), on the
    /// same pool.
    pub fn ledger(&self) -> skyward_store::Store {
        let backend = if self.is_postgres() {
            skyward_store::Backend::Postgres
        } else {
            skyward_store::Backend::Sqlite
        };
        skyward_store::Store::from_pool(self.pool.clone(), backend)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.target, Target::Postgres(_))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores submissions in one transaction (group commit). Idempotency
    /// keys are checked inside it, so a retry racing its original still
    /// yields one workload.
    pub async fn submit_batch(
        &self,
        items: &[NewWorkload],
        now_ms: i64,
    ) -> Result<Vec<SubmitOutcome>, DbError> {
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(items.len());
        for w in items {
            if let Some(key) = &w.idempotency_key {
                let existing = sqlx::query(
                    "SELECT id, request_sha256 FROM workloads WHERE idempotency_key = $1",
                )
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    let id: i64 = row.try_get("id")?;
                    let sha: String = row.try_get("request_sha256")?;
                    out.push(if sha == w.request_sha256 {
                        SubmitOutcome::Existing(id)
                    } else {
                        SubmitOutcome::KeyReused(id)
                    });
                    continue;
                }
            }
            let row = sqlx::query(
                "INSERT INTO workloads (name, spec, priority, submitted_at_ms, idempotency_key, request_sha256, submitted_by, state, updated_at_ms, team, kind) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $8, $9, $10) RETURNING id",
            )
            .bind(w.name.as_str())
            .bind(w.spec_json.as_str())
            .bind(i64::from(w.priority))
            .bind(now_ms)
            .bind(w.idempotency_key.as_deref())
            .bind(w.request_sha256.as_str())
            .bind(w.submitted_by.as_str())
            .bind(now_ms)
            .bind(w.team.as_str())
            .bind(w.kind.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let id: i64 = row.try_get("id")?;
            sqlx::query("INSERT INTO events (workload_id, at_ms, state, site, attempt) VALUES ($1, $2, 'submitted', NULL, 0)")
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            out.push(SubmitOutcome::Created(id));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Submissions the scheduler has not taken in yet, oldest first.
    pub async fn new_submissions(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT id, spec, team FROM workloads WHERE state = 'submitted' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("spec")?, r.try_get("team")?)))
            .collect()
    }

    /// Workloads whose cancel was requested but which have not ended.
    pub async fn cancel_requests(&self) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query(
            "SELECT id FROM workloads WHERE cancel_requested = 1 AND state IN ('submitted', 'pending', 'dispatched', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(DbError::from))
            .collect()
    }

    /// Records a cancel request; the scheduler acts on it. None if there
    /// is no such workload.
    pub async fn request_cancel(&self, id: i64) -> Result<Option<WorkloadRow>, DbError> {
        sqlx::query("UPDATE workloads SET cancel_requested = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.workload(id).await
    }

    /// Applies the scheduler's writes in one transaction, fenced by its
    /// lease: fails with [`DbError::NotLeader`] (nothing written) if
    /// `holder` no longer holds `term`.
    pub async fn apply(
        &self,
        holder: &str,
        term: i64,
        now_ms: i64,
        writes: &[Write],
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let fenced = sqlx::query(
            "UPDATE leader SET holder = holder WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at_ms > $3",
        )
        .bind(holder)
        .bind(term)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() != 1 {
            return Err(DbError::NotLeader);
        }
        for w in writes {
            match w {
                Write::Transition {
                    id,
                    state,
                    site,
                    accelerators,
                    new_attempt,
                    since_ms,
                    at_ms,
                    exit_code,
                    note,
                } => {
                    // An ended workload keeps the site and accelerators of
                    // its last run.
                    let ended = matches!(*state, "succeeded" | "failed" | "cancelled");
                    sqlx::query(
                        "UPDATE workloads SET state = $1, site = COALESCE($2, site), accelerators = CASE WHEN $3 = 1 THEN accelerators ELSE $4 END, attempt = attempt + $5, since_ms = $6, updated_at_ms = $7, exit_code = CASE WHEN $8 = 1 THEN $9 ELSE exit_code END, end_note = CASE WHEN $10 = 1 THEN $11 ELSE end_note END WHERE id = $12",
                    )
                    .bind(*state)
                    .bind(site.as_deref())
                    .bind(i64::from(ended && *accelerators == 0))
                    .bind(*accelerators)
                    .bind(i64::from(*new_attempt))
                    .bind(*since_ms)
                    .bind(*at_ms)
                    .bind(i64::from(ended))
                    .bind(*exit_code)
                    .bind(i64::from(ended))
                    .bind(note.as_deref())
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO events (workload_id, at_ms, state, site, attempt, exit_code, note) VALUES ($1, $2, $3, $4, (SELECT attempt FROM workloads WHERE id = $5), $6, $7)")
                        .bind(*id)
                        .bind(*at_ms)
                        .bind(*state)
                        .bind(site.as_deref())
                        .bind(*id)
                        .bind(*exit_code)
                        .bind(note.as_deref())
                        .execute(&mut *tx)
                        .await?;
                }
                Write::Resume {
                    id,
                    attempt,
                    store,
                    step,
                } => {
                    sqlx::query(
                        "INSERT INTO resumes (workload_id, attempt, store, step) VALUES ($1, $2, $3, $4) ON CONFLICT (workload_id, attempt) DO NOTHING",
                    )
                    .bind(*id)
                    .bind(*attempt)
                    .bind(store.as_str())
                    .bind(*step)
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Failover { id, json } => {
                    sqlx::query("UPDATE workloads SET failover = $1 WHERE id = $2")
                        .bind(json.as_str())
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                Write::Usage {
                    row: u,
                    team,
                    billed_micro_usd,
                } => {
                    let inserted = sqlx::query(
                        "INSERT INTO usage (workload_id, attempt, site, provider, region, accelerator, accelerators, price_basis, price_micro_usd_per_accelerator_hour, accelerator_hours, cost_micro_usd, from_ms, to_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
                    )
                    .bind(u.workload_id)
                    .bind(u.attempt)
                    .bind(u.site.as_str())
                    .bind(u.provider.as_str())
                    .bind(u.region.as_str())
                    .bind(u.accelerator.as_str())
                    .bind(u.accelerators)
                    .bind(u.price_basis.as_str())
                    .bind(u.price_micro_usd_per_accelerator_hour)
                    .bind(u.accelerator_hours)
                    .bind(u.cost_micro_usd)
                    .bind(u.from_ms)
                    .bind(u.to_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    // Once per run: a usage row stored before (a replayed
                    // round) adds no charges.
                    if inserted == 1 {
                        self.ledger_charges(&mut tx, u, team, *billed_micro_usd)
                            .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A run's usage as ledger charges: one bucket per UTC day in
    /// `charges_daily` and per hour in `usage_hourly`
    /// (`skyward_ledger::runs`), in the caller's transaction.
    async fn ledger_charges(
        &self,
        tx: &mut WriteTx,
        u: &UsageRow,
        team: &str,
        billed_micro_usd: i64,
    ) -> Result<(), DbError> {
        use skyward_ledger::runs;
        let run = runs::RunUsage {
            workload: u.workload_id,
            attempt: u.attempt,
            team: team.to_string(),
            provider: u.provider.clone(),
            region: u.region.clone(),
            accelerator: u.accelerator.clone(),
            basis: u.price_basis.clone(),
            from_ms: u.from_ms,
            to_ms: u.to_ms,
            accelerator_hours: u.accelerator_hours,
            list_micro_usd: u.cost_micro_usd,
            billed_micro_usd,
        };
        let category = runs::pricing_category(&run.basis);
        let tags = runs::tags(&run);
        for d in runs::pieces(&run, 86_400_000) {
            sqlx::query(
                "INSERT INTO charges_daily (import_id, partition, day, provider, billing_account, region, service, sku, category, pricing_category, commitment_id, commitment_status, billed_nanos, effective_nanos, list_nanos, contracted_nanos, rows, tags) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Usage', $9, '', '', $10, $11, $12, $13, 1, $14)",
            )
            .bind(self.runs_import_id)
            .bind(runs::partition(&run.provider, d.index))
            .bind(d.index)
            .bind(run.provider.as_str())
            .bind(runs::RUNS_ACCOUNT)
            .bind(run.region.as_str())
            .bind(runs::RUNS_SERVICE)
            .bind(run.accelerator.as_str())
            .bind(category)
            .bind(d.billed_nanos)
            .bind(runs::effective_nanos(&run.basis, &d))
            .bind(d.list_nanos)
            .bind(d.list_nanos)
            .bind(tags.as_str())
            .execute(&mut *tx.tx)
            .await?;
        }
        for h in runs::pieces(&run, 3_600_000) {
            sqlx::query(
                "INSERT INTO usage_hourly (import_id, partition, hour, provider, pricing_category, region, sku, quantity_nanos, billed_nanos, effective_nanos, list_nanos, rows) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)",
            )
            .bind(self.runs_import_id)
            .bind(runs::partition(&run.provider, h.index.div_euclid(24)))
            .bind(h.index)
            .bind(run.provider.as_str())
            .bind(category)
            .bind(run.region.as_str())
            .bind(run.accelerator.as_str())
            .bind(h.quantity_nanos)
            .bind(h.billed_nanos)
            .bind(runs::effective_nanos(&run.basis, &h))
            .bind(h.list_nanos)
            .execute(&mut *tx.tx)
            .await?;
        }
        Ok(())
    }

    /// Workloads the scheduler must hold after a restart (not ended,
    /// already taken in), in id order.
    pub async fn live_workloads(&self) -> Result<Vec<WorkloadRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE state IN ('pending', 'dispatched', 'running') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| workload_row(r).map_err(DbError::from))
            .collect()
    }

    pub async fn workload(&self, id: i64) -> Result<Option<WorkloadRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(workload_row)
            .transpose()
            .map_err(DbError::from)
    }

    pub async fn events(&self, id: i64, limit: i64) -> Result<Vec<EventRow>, DbError> {
        let rows = sqlx::query(
            "SELECT at_ms, state, site, attempt, exit_code, note FROM events WHERE workload_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    at_ms: r.try_get("at_ms")?,
                    state: r.try_get("state")?,
                    site: r.try_get("site")?,
                    attempt: r.try_get("attempt")?,
                    exit_code: r.try_get("exit_code")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    /// Records a checkpoint found (or copied) in a store; a second record
    /// of the same one changes nothing.
    pub async fn checkpoint_record(&self, c: &CheckpointRow) -> Result<bool, DbError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO checkpoints (workload_id, store, step, bytes, files, written_at_ms, recorded_at_ms, copied_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (workload_id, store, step) DO NOTHING",
        )
        .bind(c.workload_id)
        .bind(c.store.as_str())
        .bind(c.step)
        .bind(c.bytes)
        .bind(c.files)
        .bind(c.written_at_ms)
        .bind(c.recorded_at_ms)
        .bind(c.copied_from.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// A workload's newest checkpoints, newest first.
    pub async fn checkpoints_of(&self, id: i64, limit: i64) -> Result<Vec<CheckpointRow>, DbError> {
        let rows = sqlx::query(
            "SELECT workload_id, store, step, bytes, files, written_at_ms, recorded_at_ms, copied_from FROM checkpoints WHERE workload_id = $1 ORDER BY step DESC, store LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_row).collect()
    }

    /// The newest checkpoint of each store of each workload still live
    /// (what a leader starts from).
    pub async fn checkpoints_newest_live(&self) -> Result<Vec<(i64, String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT c.workload_id, c.store, MAX(c.step) FROM checkpoints c JOIN workloads w ON w.id = c.workload_id WHERE w.state NOT IN ('succeeded', 'failed', 'cancelled') GROUP BY c.workload_id, c.store",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// The store and checkpoint each attempt of a workload was handed.
    pub async fn resumes_of(&self, id: i64) -> Result<Vec<(i64, String, Option<i64>)>, DbError> {
        let rows = sqlx::query(
            "SELECT attempt, store, step FROM resumes WHERE workload_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Workloads by id, newest first, after the cursor (an id), optionally
    /// in one state, of one team, of one kind, and on one of `sites`
    /// (placed there now or last).
    pub async fn list(
        &self,
        state: Option<&str>,
        team: Option<&str>,
        kind: Option<&str>,
        sites: Option<&[String]>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WorkloadRow>, DbError> {
        // One placeholder per site ($9, $10, …): the site names come from
        // the server's config, never from the request.
        let on_sites = match sites {
            Some([]) => " AND 1 = 0".to_string(),
            Some(s) => format!(
                " AND site IN ({})",
                (0..s.len())
                    .map(|i| format!("${}", i + 9))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE ($1 = '' OR state = $2) AND ($3 = '' OR team = $4) AND ($7 = '' OR kind = $8) AND id < $5{on_sites} ORDER BY id DESC LIMIT $6"
        );
        let mut q = sqlx::query(&sql)
            .bind(state.unwrap_or(""))
            .bind(state.unwrap_or(""))
            .bind(team.unwrap_or(""))
            .bind(team.unwrap_or(""))
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit)
            .bind(kind.unwrap_or(""))
            .bind(kind.unwrap_or(""));
        for s in sites.unwrap_or_default() {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| workload_row(r).map_err(DbError::from))
            .collect()
    }

    /// Appends sites' health events (lost, back, drill) and keeps the
    /// newest [`SITE_EVENTS_KEPT`].
    pub async fn site_events_add(&self, events: &[SiteEvent]) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO site_events (at_ms, site, event, detail) VALUES ($1, $2, $3, $4)",
            )
            .bind(e.at_ms)
            .bind(e.site.as_str())
            .bind(e.event)
            .bind(e.detail.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM site_events WHERE id <= (SELECT MAX(id) FROM site_events) - $1")
            .bind(SITE_EVENTS_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a run's throughput report; keeps the newest
    /// [`REPORTS_KEPT`].
    pub async fn report_add(&self, r: &ThroughputReport) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO throughput_reports (class, alternative, rate, unit, at_ms, workload_id) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(r.class.as_str())
            .bind(r.alternative.as_str())
            .bind(r.rate)
            .bind(r.unit.as_str())
            .bind(r.at_ms)
            .bind(r.workload_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM throughput_reports WHERE id <= (SELECT MAX(id) FROM throughput_reports) - $1")
            .bind(REPORTS_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` throughput reports, oldest first, of one class
    /// if given.
    pub async fn reports(
        &self,
        class: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ThroughputReport>, DbError> {
        let rows = sqlx::query(
            "SELECT class, alternative, rate, unit, at_ms, workload_id FROM throughput_reports WHERE ($1 = '' OR class = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(class.unwrap_or(""))
        .bind(class.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .rev()
            .map(|r| {
                Ok(ThroughputReport {
                    class: r.try_get(0)?,
                    alternative: r.try_get(1)?,
                    rate: r.try_get(2)?,
                    unit: r.try_get(3)?,
                    at_ms: r.try_get(4)?,
                    workload_id: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Sites' health events, newest first, before the cursor (an id), of
    /// one site if given.
    pub async fn site_events(
        &self,
        site: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<SiteEventRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, site, event, detail FROM site_events WHERE ($1 = '' OR site = $2) AND id < $3 ORDER BY id DESC LIMIT $4",
        )
        .bind(site.unwrap_or(""))
        .bind(site.unwrap_or(""))
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SiteEventRow {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    site: r.try_get("site")?,
                    event: r.try_get("event")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// How many workloads are in each state, of one team's if given (the
    /// dashboard's queue depth and totals).
    pub async fn counts(&self, team: Option<&str>) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM workloads WHERE ($1 = '' OR team = $2) GROUP BY state ORDER BY state",
        )
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Usage records after `after_id`, of one team's workloads if given.
    pub async fn usage(
        &self,
        team: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<UsageRow>, DbError> {
        let rows = sqlx::query(
            "SELECT u.id, u.workload_id, u.attempt, u.site, u.provider, u.region, u.accelerator, u.accelerators, u.price_basis, u.price_micro_usd_per_accelerator_hour, u.accelerator_hours, u.cost_micro_usd, u.from_ms, u.to_ms FROM usage u JOIN workloads w ON w.id = u.workload_id WHERE u.id > $1 AND ($2 = '' OR w.team = $3) ORDER BY u.id LIMIT $4",
        )
        .bind(after_id)
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    id: r.try_get("id")?,
                    workload_id: r.try_get("workload_id")?,
                    attempt: r.try_get("attempt")?,
                    site: r.try_get("site")?,
                    provider: r.try_get("provider")?,
                    region: r.try_get("region")?,
                    accelerator: r.try_get("accelerator")?,
                    accelerators: r.try_get("accelerators")?,
                    price_basis: r.try_get("price_basis")?,
                    price_micro_usd_per_accelerator_hour: r
                        .try_get("price_micro_usd_per_accelerator_hour")?,
                    accelerator_hours: r.try_get("accelerator_hours")?,
                    cost_micro_usd: r.try_get("cost_micro_usd")?,
                    from_ms: r.try_get("from_ms")?,
                    to_ms: r.try_get("to_ms")?,
                })
            })
            .collect()
    }

    pub async fn token_create(&self, t: &NewToken<'_>, now_ms: i64) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO tokens (name, sha256, scope, created_at_ms, team, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(t.name)
        .bind(t.sha256)
        .bind(t.scope)
        .bind(now_ms)
        .bind(t.team)
        .bind(t.expires_at_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The token with this hash, revoked or expired ones included (the
    /// caller decides).
    pub async fn token_lookup(&self, sha256: &str) -> Result<Option<TokenRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE sha256 = $1"
        ))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(token_row)
            .transpose()
            .map_err(DbError::from)
    }

    /// Every token (never their values), oldest first.
    pub async fn token_list(&self, limit: i64) -> Result<Vec<TokenRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| token_row(r).map_err(DbError::from))
            .collect()
    }

    /// Revokes the token with this id (if not already); returns it.
    pub async fn token_revoke(&self, id: i64, now_ms: i64) -> Result<Option<TokenRow>, DbError> {
        sqlx::query("UPDATE tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(token_row)
            .transpose()
            .map_err(DbError::from)
    }

    /// Remembers the configured sites (their last spec and price).
    pub async fn sites_store(&self, sites: &[SiteRow], now_ms: i64) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        for s in sites {
            sqlx::query(
                "INSERT INTO sites (name, provider, region, accelerator, accelerators, price_micro_usd_per_accelerator_hour, spot, price_basis, updated_at_ms, executor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (name) DO UPDATE SET provider = excluded.provider, region = excluded.region, accelerator = excluded.accelerator, accelerators = excluded.accelerators, \
                 price_micro_usd_per_accelerator_hour = excluded.price_micro_usd_per_accelerator_hour, spot = excluded.spot, price_basis = excluded.price_basis, updated_at_ms = excluded.updated_at_ms, executor = excluded.executor",
            )
            .bind(s.name.as_str())
            .bind(s.provider.as_str())
            .bind(s.region.as_str())
            .bind(s.accelerator.as_str())
            .bind(s.accelerators)
            .bind(s.price_micro_usd_per_accelerator_hour)
            .bind(i64::from(s.spot))
            .bind(s.price_basis.as_str())
            .bind(now_ms)
            .bind(s.executor.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every site ever configured, by name.
    pub async fn sites_stored(&self) -> Result<Vec<SiteRow>, DbError> {
        let rows = sqlx::query(
            "SELECT name, provider, region, accelerator, accelerators, price_micro_usd_per_accelerator_hour, spot, price_basis, executor FROM sites ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SiteRow {
                    name: r.try_get("name")?,
                    provider: r.try_get("provider")?,
                    region: r.try_get("region")?,
                    accelerator: r.try_get("accelerator")?,
                    accelerators: r.try_get("accelerators")?,
                    price_micro_usd_per_accelerator_hour: r
                        .try_get("price_micro_usd_per_accelerator_hour")?,
                    spot: r.try_get::<i64, _>("spot")? != 0,
                    price_basis: r.try_get("price_basis")?,
                    executor: r.try_get("executor")?,
                })
            })
            .collect()
    }

    pub async fn token_count(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Takes or renews the scheduling lease. Returns the term held, or
    /// None if another live holder has it.
    pub async fn try_lead(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, DbError> {
        // Renew our own unexpired lease under the same term.
        let renewed = sqlx::query(
            "UPDATE leader SET expires_at_ms = $1 WHERE id = 1 AND holder = $2 AND expires_at_ms > $3",
        )
        .bind(now_ms + lease_ms)
        .bind(holder)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if renewed.rows_affected() != 1 {
            // Take an expired (or released) lease with a new term.
            let taken = sqlx::query(
                "UPDATE leader SET holder = $1, term = term + 1, expires_at_ms = $2 WHERE id = 1 AND expires_at_ms <= $3",
            )
            .bind(holder)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() != 1 {
                return Ok(None);
            }
        }
        let row = sqlx::query("SELECT holder, term FROM leader WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let h: String = row.try_get("holder")?;
        let term: i64 = row.try_get("term")?;
        Ok((h == holder).then_some(term))
    }

    /// Takes the lease whoever holds it, under a new term. Only for a
    /// replica that knows it is alone (it holds the SQLite file's lock):
    /// a previous holder is a dead process of this same machine.
    pub async fn take_lead(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<i64, DbError> {
        sqlx::query(
            "UPDATE leader SET holder = $1, term = term + 1, expires_at_ms = $2 WHERE id = 1",
        )
        .bind(holder)
        .bind(now_ms + lease_ms)
        .execute(&self.pool)
        .await?;
        let (_, term, _) = self.leader().await?;
        Ok(term)
    }

    /// Gives the lease up (clean shutdown), so a standby takes over at once.
    pub async fn release(&self, holder: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE leader SET expires_at_ms = 0 WHERE id = 1 AND holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (holder, term, expires) of the lease.
    pub async fn leader(&self) -> Result<(String, i64, i64), DbError> {
        let row = sqlx::query("SELECT holder, term, expires_at_ms FROM leader WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            row.try_get("holder")?,
            row.try_get("term")?,
            row.try_get("expires_at_ms")?,
        ))
    }
}

/// The default SQLite file under a data directory.
pub fn default_sqlite(data_dir: &Path) -> Target {
    Target::Sqlite(data_dir.join("skyward.db"))
}

/// Creates database `name` on the PostgreSQL server of `url` and returns
/// the URL that points at it (benchmarks and tests use scratch databases).
pub async fn create_postgres_database(url: &str, name: &str) -> Result<String, DbError> {
    use sqlx::Connection;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(DbError::Open {
            target: name.into(),
            message: "database names here are [a-z0-9_]".into(),
        });
    }
    let open_err = |e: sqlx::Error| DbError::Open {
        target: redact_url(url),
        message: e.to_string(),
    };
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(open_err)?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (head, tail) = url.split_once("://").ok_or_else(|| DbError::Open {
        target: redact_url(url),
        message: "not a URL".into(),
    })?;
    let (hostpart, query) = match tail.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (tail, None),
    };
    let host = hostpart.split_once('/').map_or(hostpart, |(h, _)| h);
    Ok(match query {
        Some(q) => format!("{head}://{host}/{name}?{q}"),
        None => format!("{head}://{host}/{name}"),
    })
}

pub async fn drop_postgres_database(url: &str, name: &str) -> Result<(), DbError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}
