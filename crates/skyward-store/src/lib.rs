//! The commitment ledger's store: imports, charges and contracts, on SQLite
//! (a local file, the default) or PostgreSQL, through sqlx `Any`, with
//! versioned migrations per backend embedded in the binary
//! (`migrations/` for SQLite, `migrations/postgres/`).
//!
//! The same tables live in the control plane's store: `skyward server`
//! runs [`ledger_migrator`] beside its own migrations on its database
//! and hands its pool to [`Store::from_pool`], so work and money are one
//! database (and a run's usage is written in the transaction that records
//! its end). A standalone file keeps its own numbering (1–4); in a shared
//! database the ledger's migrations are numbered from
//! [`SHARED_VERSION_BASE`] so they never collide with the control
//! plane's. The SQL that differs between backends is in [`Backend`].
//!
//! Ledger imports are all-or-nothing: the whole file is parsed and folded
//! first, then written in one transaction. Idempotency:
//! * the same file content (SHA-256) is never imported twice;
//! * data is partitioned by provider × billing account × billing period.
//!   A file whose rows fall in a partition already stored is compared with
//!   it by row fingerprints (see `skyward_ledger::aggregate::Fingerprints`):
//!   - none of its rows stored (≤ 2 %): another part of a multi-part export,
//!     it adds up;
//!   - half or more of its rows stored: a re-export, refused unless the
//!     import says `Replace` (which supersedes the partition);
//!   - in between, or no way to tell (data imported before fingerprints,
//!     a tiny file against a sampled one): refused, asking for `Append` or
//!     `Replace`.
//!
//!   Nothing is double-counted or deleted by accident.

use serde::Serialize;
use sha2::{Digest, Sha256};
use skyward_ledger::aggregate::{describe_partition, Aggregates, Fingerprints, FINGERPRINT_SAMPLE};
use skyward_ledger::status::{DayRow, HourRow};
use skyward_ledger::Amount;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::{Any, Executor, Row};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

/// Rows per multi-row INSERT (SQLite allows 32,766 bound parameters,
/// PostgreSQL 65,535).
const INSERT_BATCH_ROWS: usize = 1_500;

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `IN (…)` over a JSON array parameter of text values.
    fn in_text_list(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("IN (SELECT value FROM json_each({param}))"),
            Backend::Postgres => format!("IN (SELECT jsonb_array_elements_text({param}::jsonb))"),
        }
    }

    /// `IN (…)` over a JSON array parameter of 64-bit integers.
    fn in_int_list(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("IN (SELECT value FROM json_each({param}))"),
            Backend::Postgres => {
                format!("IN (SELECT (jsonb_array_elements_text({param}::jsonb))::bigint)")
            }
        }
    }

    /// The provider part of a partition key (`provider|account|period`).
    fn partition_provider(self) -> &'static str {
        match self {
            Backend::Sqlite => "substr(partition, 1, instr(partition, '|') - 1)",
            Backend::Postgres => "split_part(partition, '|', 1)",
        }
    }
}

/// The runs' own charges (`skyward_ledger::runs`) count only for days no
/// imported bill of their provider covers: the bill has the same usage.
/// (Only where the runs have records at all: a standalone ledger reads
/// without the clause.)
const RUNS_NOT_SUPERSEDED_DAILY: &str = "NOT (billing_account = 'skyward:runs' AND EXISTS (SELECT 1 FROM charges_daily o WHERE o.provider = charges_daily.provider AND o.day = charges_daily.day AND o.billing_account <> 'skyward:runs'))";
const RUNS_NOT_SUPERSEDED_HOURLY: &str = "NOT (partition LIKE '%|skyward:runs|%' AND EXISTS (SELECT 1 FROM charges_daily o WHERE o.provider = usage_hourly.provider AND o.day = usage_hourly.hour / 24 AND o.billing_account <> 'skyward:runs'))";

/// Where the ledger's migrations start in a database shared with the
/// control plane.
pub const SHARED_VERSION_BASE: i64 = 1000;

const SQLITE_STEPS: [(&str, &str); 4] = [
    ("ledger", include_str!("../migrations/0001_ledger.sql")),
    (
        "hourly sku",
        include_str!("../migrations/0002_hourly_sku.sql"),
    ),
    (
        "accounts parts",
        include_str!("../migrations/0003_accounts_parts.sql"),
    ),
    (
        "contracts",
        include_str!("../migrations/0004_contracts.sql"),
    ),
];

const POSTGRES_STEPS: [(&str, &str); 1] = [(
    "ledger",
    include_str!("../migrations/postgres/0001_ledger.sql"),
)];

/// The ledger's migrations for `backend`, numbered from `base` (0 for a
/// standalone SQLite file, [`SHARED_VERSION_BASE`] in a database shared
/// with the control plane, and always on PostgreSQL). Missing versions
/// (the other schema's) are ignored.
pub fn ledger_migrator(backend: Backend, base: i64) -> Migrator {
    let steps: &[(&str, &str)] = match backend {
        Backend::Sqlite => &SQLITE_STEPS,
        Backend::Postgres => &POSTGRES_STEPS,
    };
    let migrations: Vec<Migration> = steps
        .iter()
        .enumerate()
        .map(|(i, (name, sql))| {
            Migration::new(
                base + i as i64 + 1,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: String, message: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{file} was already imported (import #{id}, same content); nothing changed")]
    AlreadyImported { file: String, id: i64 },
    #[error("{file} re-exports periods already stored ({overlaps}); if it supersedes them, import again with --replace (nothing changed)")]
    Overlap { file: String, overlaps: String },
    #[error("{file} adds rows to periods already stored ({partitions}) and it cannot be told whether it is another part of the same export or a re-export: {detail}; import again with --append (another part: add it up) or --replace (supersedes them) (nothing changed)")]
    Ambiguous {
        file: String,
        partitions: String,
        detail: String,
    },
}

/// One applied version of the contracts.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ContractSet {
    pub version: i64,
    pub file_name: String,
    pub sha256: String,
    /// The file as applied (already validated by the caller).
    pub text: String,
    pub contracts: i64,
    pub applied_at: i64,
    pub applied_by: String,
}

/// How an import treats partitions already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Add new parts, refuse re-exports (decided by row fingerprints).
    Auto,
    /// Add up whatever is stored (another part of the same export).
    Append,
    /// Supersede the stored partitions the file touches.
    Replace,
}

/// Share of a file's fingerprints found stored at or above which it is a
/// re-export.
pub const REEXPORT_SHARE_MIN: f64 = 0.5;
/// Share at or below which it is another part of the export.
pub const NEW_PART_SHARE_MAX: f64 = 0.02;

impl StoreError {
    /// Errors the user can fix by changing the input or the flags.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            StoreError::AlreadyImported { .. }
                | StoreError::Overlap { .. }
                | StoreError::Ambiguous { .. }
        )
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `INSERT INTO table (cols) VALUES (…), (…)` for `rows` rows of `cols`
/// values, with each backend's positional placeholders: `?` for SQLite
/// (its `$N` are named parameters, looked up one by one: quadratic in a
/// 27,000-value batch), `$N` for PostgreSQL (sqlx's query builder writes
/// `?` for `Any`, which PostgreSQL does not read).
fn insert_sql(backend: Backend, table_and_columns: &str, rows: usize, cols: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("INSERT INTO {table_and_columns} VALUES ");
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            n += 1;
            let sep = if c == 0 { "" } else { ", " };
            let _ = match backend {
                Backend::Sqlite => write!(sql, "{sep}?"),
                Backend::Postgres => write!(sql, "{sep}${n}"),
            };
        }
        sql.push(')');
    }
    sql
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Incremental hashing for files read in chunks.
#[derive(Default)]
pub struct FileHash(Sha256);

impl FileHash {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ImportRecord {
    pub id: i64,
    pub file_name: String,
    pub sha256: String,
    pub format: String,
    pub rows: i64,
    pub buckets: i64,
    pub replaced: String,
    pub imported_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportOutcome {
    pub id: i64,
    pub rows: u64,
    pub buckets: usize,
    pub partitions: Vec<String>,
    pub replaced: Vec<String>,
    /// Stored partitions this file added to as another part of the export.
    pub appended: Vec<String>,
}

pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The share of a file's row fingerprints for partition `p` that are
/// already stored, over the fingerprints both sides are sure to keep; None
/// when there is nothing to compare (no stored fingerprints, or none of
/// the file's rows in the stored sample).
async fn stored_share(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, Any>,
    p: &str,
    new: Option<&Fingerprints>,
) -> Result<Option<f64>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    let meta = sqlx::query(
        "SELECT COUNT(*), COALESCE(MAX(sampled), 0) FROM partition_imports WHERE partition = $1",
    )
    .bind(p)
    .fetch_one(&mut **tx)
    .await?;
    let (imports, sampled): (i64, i64) = (meta.get(0), meta.get(1));
    if imports == 0 {
        return Ok(None);
    }
    let mut probe: Vec<u64> = new
        .hashes
        .iter()
        .copied()
        .filter(|h| sampled == 0 || h.is_multiple_of(FINGERPRINT_SAMPLE))
        .collect();
    probe.sort_unstable();
    probe.dedup();
    if probe.is_empty() {
        return Ok(None);
    }
    let mut found = 0i64;
    for chunk in probe.chunks(10_000) {
        let list = chunk
            .iter()
            .map(|h| (*h as i64).to_string())
            .collect::<Vec<_>>()
            .join(",");
        found += sqlx::query(&format!(
            "SELECT COUNT(DISTINCT f.hash) FROM partition_fingerprints f JOIN partition_imports p ON p.id = f.part_id WHERE p.partition = $1 AND f.hash {}",
            backend.in_int_list("$2")
        ))
        .bind(p)
        .bind(format!("[{list}]"))
        .fetch_one(&mut **tx)
        .await?
        .get::<i64, _>(0);
    }
    Ok(Some(found as f64 / probe.len() as f64))
}

impl Store {
    /// Opens (creating if needed) a ledger database and migrates it: a
    /// SQLite file path, or a `postgres://` URL.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let text = path.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Store::open_postgres(&text).await;
        }
        let shown = path.display().to_string();
        let open_err = |message: String| StoreError::Open {
            path: shown.clone(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        sqlx::any::install_default_drivers();
        let abs = std::path::absolute(path).map_err(|e| open_err(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
            .connect(&format!("sqlite://{}?mode=rwc", abs.display()))
            .await
            .map_err(|e| open_err(e.to_string()))?;
        // A control-plane database (it has the server's tables) numbers
        // the ledger's migrations from SHARED_VERSION_BASE.
        let shared = sqlx::query(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'workloads'",
        )
        .fetch_one(&pool)
        .await?
        .get::<i64, _>(0)
            > 0;
        let base = if shared { SHARED_VERSION_BASE } else { 0 };
        ledger_migrator(Backend::Sqlite, base)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// A ledger on PostgreSQL (alone, or inside the control plane's
    /// database).
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .map_err(|e| StoreError::Open {
                path: redact(url),
                message: e.to_string(),
            })?;
        ledger_migrator(Backend::Postgres, SHARED_VERSION_BASE)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Store {
            pool,
            backend: Backend::Postgres,
        })
    }

    /// The ledger inside a database someone else opened and migrated (the
    /// control plane's), sharing its pool.
    pub fn from_pool(pool: AnyPool, backend: Backend) -> Store {
        Store { pool, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the control plane's runs have their own record here (the
    /// `imports` row its charges belong to).
    async fn has_runs(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM imports WHERE sha256 = 'skyward:runs'")
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// A write transaction; on SQLite it takes the write lock at BEGIN, so
    /// it waits its turn instead of failing on a lock upgrade when other
    /// writers share the database.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn imports(&self) -> Result<Vec<ImportRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, file_name, sha256, format, rows, buckets, replaced, imported_at FROM imports ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| ImportRecord {
                id: r.get(0),
                file_name: r.get(1),
                sha256: r.get(2),
                format: r.get(3),
                rows: r.get(4),
                buckets: r.get(5),
                replaced: r.get(6),
                imported_at: r.get(7),
            })
            .collect())
    }

    /// Writes one folded file in one transaction (see the module docs).
    pub async fn import(
        &self,
        file_name: &str,
        sha256: &str,
        format: &str,
        agg: &Aggregates,
        mode: ImportMode,
        now_s: i64,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(row) = sqlx::query("SELECT id FROM imports WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Err(StoreError::AlreadyImported {
                file: file_name.to_string(),
                id: row.get(0),
            });
        }
        let partitions = agg.partitions();
        let mut existing: BTreeSet<String> = BTreeSet::new();
        for p in &partitions {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM charges_daily WHERE partition = $1")
                .bind(p)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
            if n > 0 {
                existing.insert(p.clone());
            }
        }
        let mut appended = Vec::new();
        if mode != ImportMode::Replace {
            let (mut reexports, mut unclear) = (Vec::new(), Vec::new());
            for p in &existing {
                if mode == ImportMode::Append {
                    appended.push(p.clone());
                    continue;
                }
                match stored_share(self.backend, &mut tx, p, agg.fingerprints.get(p)).await? {
                    Some(share) if share >= REEXPORT_SHARE_MIN => reexports.push(format!(
                        "{}: {:.0} % of its rows are stored",
                        describe_partition(p),
                        100.0 * share
                    )),
                    Some(share) if share <= NEW_PART_SHARE_MAX => appended.push(p.clone()),
                    Some(share) => unclear.push(format!(
                        "{}: {:.0} % of its rows are stored",
                        describe_partition(p),
                        100.0 * share
                    )),
                    None => unclear.push(format!(
                        "{}: too few rows to compare",
                        describe_partition(p)
                    )),
                }
            }
            if !reexports.is_empty() {
                return Err(StoreError::Overlap {
                    file: file_name.to_string(),
                    overlaps: reexports.join("; "),
                });
            }
            if !unclear.is_empty() {
                return Err(StoreError::Ambiguous {
                    file: file_name.to_string(),
                    partitions: existing
                        .iter()
                        .filter(|p| !appended.contains(p))
                        .map(|p| describe_partition(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                    detail: unclear.join("; "),
                });
            }
            existing.clear();
        }
        for p in &existing {
            sqlx::query("DELETE FROM partition_fingerprints WHERE part_id IN (SELECT id FROM partition_imports WHERE partition = $1)")
                .bind(p)
                .execute(&mut *tx)
                .await?;
            for table in ["charges_daily", "usage_hourly", "partition_imports"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE partition = $1"))
                    .bind(p)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let replaced: Vec<String> = existing.into_iter().collect();
        let id: i64 = sqlx::query(
            "INSERT INTO imports (file_name, sha256, format, rows, buckets, first_charge, last_charge, replaced, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(file_name)
        .bind(sha256)
        .bind(format)
        .bind(agg.rows as i64)
        .bind(agg.bucket_count() as i64)
        .bind(agg.first.map(|t| t.0))
        .bind(agg.last.map(|t| t.0))
        .bind(replaced.join(","))
        .bind(now_s)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let daily: Vec<_> = agg.daily.iter().collect();
        for chunk in daily.chunks(INSERT_BATCH_ROWS) {
            let sql = insert_sql(
                self.backend,
                "charges_daily (import_id, partition, day, provider, billing_account, region, service, sku, category, pricing_category, commitment_id, commitment_status, billed_nanos, effective_nanos, list_nanos, contracted_nanos, rows, tags)",
                chunk.len(),
                18,
            );
            let mut q = sqlx::query(&sql);
            for (k, s) in chunk {
                q = q
                    .bind(id)
                    .bind(&k.partition)
                    .bind(k.day)
                    .bind(&k.provider)
                    .bind(&k.billing_account)
                    .bind(&k.region)
                    .bind(&k.service)
                    .bind(&k.sku)
                    .bind(&k.category)
                    .bind(&k.pricing_category)
                    .bind(&k.commitment_id)
                    .bind(&k.commitment_status)
                    .bind(s.billed.nanos())
                    .bind(s.effective.nanos())
                    .bind(s.list.nanos())
                    .bind(s.contracted.nanos())
                    .bind(s.rows as i64)
                    .bind(&k.tags);
            }
            q.execute(&mut *tx).await?;
        }
        let hourly: Vec<_> = agg.hourly.iter().collect();
        for chunk in hourly.chunks(INSERT_BATCH_ROWS * 2 - 500) {
            let sql = insert_sql(
                self.backend,
                "usage_hourly (import_id, partition, hour, provider, pricing_category, region, sku, quantity_nanos, billed_nanos, effective_nanos, list_nanos, rows)",
                chunk.len(),
                12,
            );
            let mut q = sqlx::query(&sql);
            for (k, s) in chunk {
                q = q
                    .bind(id)
                    .bind(&k.partition)
                    .bind(k.hour)
                    .bind(&k.provider)
                    .bind(&k.pricing_category)
                    .bind(&k.region)
                    .bind(&k.sku)
                    .bind(s.quantity.nanos())
                    .bind(s.billed.nanos())
                    .bind(s.effective.nanos())
                    .bind(s.list.nanos())
                    .bind(s.rows as i64);
            }
            q.execute(&mut *tx).await?;
        }
        for (p, f) in &agg.fingerprints {
            let part_id: i64 = sqlx::query(
                "INSERT INTO partition_imports (partition, import_id, rows, sampled, usage_rows, spread_usage_rows) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(p)
            .bind(id)
            .bind(f.rows as i64)
            .bind(i64::from(f.sampled))
            .bind(f.usage_rows as i64)
            .bind(f.spread_usage_rows as i64)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            let mut hashes = f.hashes.clone();
            hashes.sort_unstable();
            hashes.dedup();
            for chunk in hashes.chunks(INSERT_BATCH_ROWS * 10) {
                let sql = insert_sql(
                    self.backend,
                    "partition_fingerprints (part_id, hash)",
                    chunk.len(),
                    2,
                );
                let mut q = sqlx::query(&sql);
                for h in chunk {
                    q = q.bind(part_id).bind(*h as i64);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ImportOutcome {
            id,
            rows: agg.rows,
            buckets: agg.bucket_count(),
            partitions: partitions.into_iter().collect(),
            replaced,
            appended,
        })
    }

    /// Daily buckets of one provider (all when None) up to `day_end`
    /// (exclusive), summed over billing accounts and tags (what status,
    /// analyze and recommendations read; far fewer rows). Sums in SQL are
    /// 64-bit nano-dollars: a day's bucket above $9.2B is an error, not a
    /// wrong figure.
    pub async fn daily(
        &self,
        provider: Option<&str>,
        day_end: i64,
    ) -> Result<Vec<DayRow>, StoreError> {
        self.daily_rows(provider, i64::MIN, day_end, false).await
    }

    /// [`Store::daily`] with billing account and tags kept (breakdowns).
    pub async fn daily_detailed(
        &self,
        provider: Option<&str>,
        day_end: i64,
    ) -> Result<Vec<DayRow>, StoreError> {
        self.daily_rows(provider, i64::MIN, day_end, true).await
    }

    /// [`Store::daily_detailed`] of the days from `day_start` (inclusive)
    /// to `day_end` (exclusive) only: a month's breakdown reads a month.
    pub async fn daily_detailed_between(
        &self,
        provider: Option<&str>,
        day_start: i64,
        day_end: i64,
    ) -> Result<Vec<DayRow>, StoreError> {
        self.daily_rows(provider, day_start, day_end, true).await
    }

    async fn daily_rows(
        &self,
        provider: Option<&str>,
        day_start: i64,
        day_end: i64,
        detailed: bool,
    ) -> Result<Vec<DayRow>, StoreError> {
        let (extra, group) = if detailed {
            ("billing_account, tags", ", billing_account, tags")
        } else {
            ("'', ''", "")
        };
        let runs_rule = if self.has_runs().await? {
            RUNS_NOT_SUPERSEDED_DAILY
        } else {
            "1 = 1"
        };
        let sql = format!(
            "SELECT day, provider, region, service, sku, category, pricing_category, commitment_id, commitment_status, CAST(SUM(billed_nanos) AS BIGINT), CAST(SUM(effective_nanos) AS BIGINT), CAST(SUM(list_nanos) AS BIGINT), {extra} \
             FROM charges_daily WHERE ($1 IS NULL OR provider = $1) AND day < $2 AND day >= $3 AND {runs_rule} \
             GROUP BY day, provider, region, service, sku, category, pricing_category, commitment_id, commitment_status{group} \
             ORDER BY day, provider, region, service, sku, category"
        );
        let rows = sqlx::query(&sql)
            .bind(provider)
            .bind(day_end)
            .bind(day_start)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| DayRow {
                day: r.get(0),
                provider: r.get(1),
                region: r.get(2),
                service: r.get(3),
                sku: r.get(4),
                category: r.get(5),
                pricing_category: r.get(6),
                commitment_id: r.get(7),
                commitment_status: r.get(8),
                billed: Amount::from_nanos(r.get(9)),
                effective: Amount::from_nanos(r.get(10)),
                list: Amount::from_nanos(r.get(11)),
                billing_account: r.get(12),
                tags: r.get(13),
            })
            .collect())
    }

    /// On-demand (Standard-priced) hourly usage of some providers, summed
    /// per hour in SQL. Region and SKU are kept only for the
    /// `(provider, region, sku)` cells that a capacity commitment can cover
    /// (compared case-insensitively); all other usage of an hour is one row.
    /// Much less to read than the raw buckets when only totals matter.
    pub async fn hourly_on_demand(
        &self,
        providers: &[String],
        cells: &[(String, String, String)],
    ) -> Result<Vec<HourRow>, StoreError> {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let providers_json = format!(
            "[{}]",
            providers
                .iter()
                .map(|p| quote(p))
                .collect::<Vec<_>>()
                .join(",")
        );
        let cells_json = format!(
            "[{}]",
            cells
                .iter()
                .map(|(p, r, k)| quote(&format!(
                    "{}|{}|{}",
                    p,
                    r.to_ascii_lowercase(),
                    k.to_ascii_lowercase()
                )))
                .collect::<Vec<_>>()
                .join(",")
        );
        // Totals per hour and provider, then (only when some capacity
        // commitment needs them) the cells' own rows, taken out of the
        // totals: two plain aggregations instead of one that tests every
        // row against the cells twice.
        let b = self.backend;
        let runs_rule = if self.has_runs().await? {
            RUNS_NOT_SUPERSEDED_HOURLY
        } else {
            "1 = 1"
        };
        let totals = sqlx::query(&format!(
            "SELECT hour, provider, CAST(SUM(list_nanos) AS BIGINT), CAST(SUM(effective_nanos) AS BIGINT), CAST(SUM(quantity_nanos) AS BIGINT), COUNT(*) \
             FROM usage_hourly \
             WHERE pricing_category IN ('Standard', '') AND provider {} AND {runs_rule} \
             GROUP BY hour, provider",
            b.in_text_list("$1")
        ))
        .bind(&providers_json)
        .fetch_all(&self.pool)
        .await?;
        let cell_rows = if cells.is_empty() {
            Vec::new()
        } else {
            let cell_providers = format!(
                "[{}]",
                cells
                    .iter()
                    .map(|(p, _, _)| quote(p))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            sqlx::query(&format!(
                "SELECT hour, provider, region, sku, CAST(SUM(list_nanos) AS BIGINT), CAST(SUM(effective_nanos) AS BIGINT), CAST(SUM(quantity_nanos) AS BIGINT), COUNT(*) \
                 FROM usage_hourly \
                 WHERE pricing_category IN ('Standard', '') AND provider {} \
                   AND provider {} \
                   AND (provider || '|' || lower(region) || '|' || lower(sku)) {} \
                   AND {runs_rule} \
                 GROUP BY hour, provider, region, sku",
                b.in_text_list("$1"),
                b.in_text_list("$3"),
                b.in_text_list("$2")
            ))
            .bind(&providers_json)
            .bind(&cells_json)
            .bind(cell_providers)
            .fetch_all(&self.pool)
            .await?
        };
        type Sum = (Amount, Amount, Amount, i64);
        let mut rest: std::collections::BTreeMap<(i64, String), Sum> = totals
            .iter()
            .map(|r| {
                (
                    (r.get::<i64, _>(0), r.get::<String, _>(1)),
                    (
                        Amount::from_nanos(r.get(2)),
                        Amount::from_nanos(r.get(3)),
                        Amount::from_nanos(r.get(4)),
                        r.get(5),
                    ),
                )
            })
            .collect();
        let mut out: Vec<HourRow> = Vec::with_capacity(rest.len() + cell_rows.len());
        for r in &cell_rows {
            let (hour, provider): (i64, String) = (r.get(0), r.get(1));
            let (list, effective, quantity, n) = (
                Amount::from_nanos(r.get(4)),
                Amount::from_nanos(r.get(5)),
                Amount::from_nanos(r.get(6)),
                r.get::<i64, _>(7),
            );
            if let Some(t) = rest.get_mut(&(hour, provider.clone())) {
                t.0 = t.0 - list;
                t.1 = t.1 - effective;
                t.2 = t.2 - quantity;
                t.3 -= n;
            }
            out.push(HourRow {
                hour,
                provider,
                pricing_category: "Standard".to_string(),
                region: r.get(2),
                sku: r.get(3),
                list,
                effective,
                quantity,
            });
        }
        out.extend(rest.into_iter().filter(|(_, t)| t.3 > 0).map(
            |((hour, provider), (list, effective, quantity, _))| HourRow {
                hour,
                provider,
                pricing_category: "Standard".to_string(),
                region: String::new(),
                sku: String::new(),
                list,
                effective,
                quantity,
            },
        ));
        out.sort_by(|a, b| {
            (a.hour, &a.provider, &a.region, &a.sku).cmp(&(b.hour, &b.provider, &b.region, &b.sku))
        });
        Ok(out)
    }

    /// Stores a validated contracts file as the new current version, unless
    /// it is the current one already. Returns (version, whether it changed).
    pub async fn apply_contracts(
        &self,
        file_name: &str,
        text: &str,
        contracts: usize,
        applied_by: &str,
        now_s: i64,
    ) -> Result<(i64, bool), StoreError> {
        let sha = sha256_hex(text.as_bytes());
        let mut tx = self.begin_write().await?;
        if let Some(r) =
            sqlx::query("SELECT version, sha256 FROM contract_sets ORDER BY version DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
        {
            if r.get::<String, _>(1) == sha {
                return Ok((r.get(0), false));
            }
        }
        let version: i64 = sqlx::query(
            "INSERT INTO contract_sets (file_name, sha256, text, contracts, applied_at, applied_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING version",
        )
        .bind(file_name)
        .bind(&sha)
        .bind(text)
        .bind(contracts as i64)
        .bind(now_s)
        .bind(applied_by)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        tx.commit().await?;
        Ok((version, true))
    }

    /// A version of the contracts (the current one when None).
    pub async fn contract_set(
        &self,
        version: Option<i64>,
    ) -> Result<Option<ContractSet>, StoreError> {
        let row = sqlx::query(
            "SELECT version, file_name, sha256, text, contracts, applied_at, applied_by FROM contract_sets WHERE ($1 IS NULL OR version = $1) ORDER BY version DESC LIMIT 1",
        )
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ContractSet {
            version: r.get(0),
            file_name: r.get(1),
            sha256: r.get(2),
            text: r.get(3),
            contracts: r.get(4),
            applied_at: r.get(5),
            applied_by: r.get(6),
        }))
    }

    /// Every version, oldest first, without its text (read one with
    /// [`Store::contract_set`]).
    pub async fn contract_history(&self) -> Result<Vec<ContractSet>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, file_name, sha256, contracts, applied_at, applied_by FROM contract_sets ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ContractSet {
                version: r.get(0),
                file_name: r.get(1),
                sha256: r.get(2),
                text: String::new(),
                contracts: r.get(3),
                applied_at: r.get(4),
                applied_by: r.get(5),
            })
            .collect())
    }

    /// Per provider: (usage rows imported, those longer than an hour, whose
    /// hourly figures are an even spread).
    pub async fn hourly_spread(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            &format!("SELECT {p} AS provider, CAST(SUM(usage_rows) AS BIGINT), CAST(SUM(spread_usage_rows) AS BIGINT) FROM partition_imports GROUP BY {p} ORDER BY provider", p = self.backend.partition_provider()),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The last day with usage (else with any charge), if any. Usage, not
    /// every charge: a monthly fee spread over its month reaches past the
    /// last day the data has seen.
    pub async fn last_day(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query(
            "SELECT COALESCE(MAX(CASE WHEN category = 'Usage' THEN day END), MAX(day)) FROM charges_daily",
        )
            .fetch_one(&self.pool)
            .await?
            .get(0))
    }

    /// Exact totals over everything stored: (billed, effective, rows).
    pub async fn totals(&self) -> Result<(Amount, Amount, i64), StoreError> {
        let rows = sqlx::query("SELECT billed_nanos, effective_nanos, rows FROM charges_daily")
            .fetch_all(&self.pool)
            .await?;
        let mut b = Amount::ZERO;
        let mut e = Amount::ZERO;
        let mut n = 0i64;
        for r in &rows {
            b += Amount::from_nanos(r.get(0));
            e += Amount::from_nanos(r.get(1));
            n += r.get::<i64, _>(2);
        }
        Ok((b, e, n))
    }
}
