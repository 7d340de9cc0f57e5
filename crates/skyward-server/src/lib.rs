//! Skyward's control-plane server. `skyward up` / `skyward server` start
//! it; the CLI's `submit`, `status`, `logs`, `cancel`, `sites`, `queue`,
//! `usage` talk to it through [`client`].
//!
//! ```text
//!  HTTP (axum) ──submit──▶ group-commit writer ──▶ store (SQLite | PostgreSQL)
//!      │  reads ◀──────────────────────────────────────┘   ▲ fenced writes
//!      └─queue/why──▶ runtime (leader only) ── core (sans-IO) ── local executors
//! ```

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod http;
pub mod metrics;
pub mod runtime;
pub mod usage;

use crate::config::ServerConfig;
use crate::db::{Db, DbError, Target};
use crate::http::{App, SubmitJob};
use crate::metrics::Metrics;
use crate::runtime::{Clock, Runtime, SystemClock};
use skyward_catalog::Catalog;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("another Skyward server is using {path} (one server per SQLite database; use PostgreSQL for several replicas)")]
    Busy { path: String },
}

/// Submissions waiting for the group-commit writer.
const SUBMIT_QUEUE_MAX: usize = 20_000;
/// Submissions per commit.
const SUBMIT_BATCH_MAX: usize = 2_000;

pub fn db_target(cfg: &ServerConfig) -> Target {
    match &cfg.database_url {
        Some(url) => Target::parse(url),
        None => db::default_sqlite(&cfg.data_dir),
    }
}

/// The first admin token of an empty database, written to
/// `<data_dir>/admin.token` (mode 0600) so the local CLI finds it.
pub async fn bootstrap_admin_token(
    db: &Db,
    data_dir: &std::path::Path,
) -> Result<Option<PathBuf>, ServerError> {
    if db.token_count().await? > 0 {
        return Ok(None);
    }
    let path = data_dir.join("admin.token");
    let io = |e: std::io::Error| ServerError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let token = auth::generate().map_err(io)?;
    std::fs::create_dir_all(data_dir).map_err(io)?;
    write_secret(&path, &format!("{token}\n")).map_err(io)?;
    db.token_create(
        "admin (bootstrap)",
        &auth::hash(&token),
        "admin",
        SystemClock.now_ms_i64(),
    )
    .await?;
    Ok(Some(path))
}

fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())
}

/// A running server.
pub struct Running {
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<Result<(), DbError>>,
    pub admin_token_file: Option<PathBuf>,
    pub replica: String,
    /// Held while the server runs (SQLite only).
    _lock: Option<std::fs::File>,
}

impl Running {
    /// Stops accepting requests, finishes in-flight ones, stops scheduling
    /// (runs keep going and are adopted next time) and releases the lease.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        if let Ok(r) = self.scheduler.await {
            r?;
        }
        Ok(())
    }
}

/// Opens the store, starts the writer, the scheduler and the HTTP server.
pub async fn start(cfg: ServerConfig, catalog: Arc<Catalog>) -> Result<Running, ServerError> {
    let target = db_target(&cfg);
    // One server per SQLite file: a second one would double-schedule.
    let lock = match &target {
        Target::Sqlite(path) => Some(lock_file(path)?),
        Target::Postgres(_) => None,
    };
    let db = Db::open(&target).await?;
    let admin_token_file = bootstrap_admin_token(&db, &cfg.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| ServerError::Listen {
            addr: cfg.listen.clone(),
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| ServerError::Listen {
        addr: cfg.listen.clone(),
        message: e.to_string(),
    })?;
    let replica = format!(
        "{}-{}-{}",
        hostname(),
        std::process::id(),
        &auth::generate()
            .unwrap_or_default()
            .get(4..12)
            .unwrap_or("0")
            .to_string()
    );
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(Notify::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (submit_tx, submit_rx) = mpsc::channel::<SubmitJob>(SUBMIT_QUEUE_MAX);
    let (query_tx, query_rx) = mpsc::channel(1_024);
    let work_dir = cfg.data_dir.join("work");
    std::fs::create_dir_all(&work_dir).map_err(|e| ServerError::Io {
        path: work_dir.display().to_string(),
        message: e.to_string(),
    })?;
    tokio::spawn(writer(db.clone(), submit_rx, wake.clone()));
    let runtime = Runtime {
        db: db.clone(),
        sites: cfg.sites.clone(),
        core_cfg: cfg.core.clone(),
        work_dir: work_dir.clone(),
        holder: replica.clone(),
        lease_ms: cfg.lease_ms,
        exclusive: lock.is_some(),
        metrics: metrics.clone(),
        wake: wake.clone(),
        clock: Arc::new(SystemClock),
    };
    let scheduler = tokio::spawn(runtime.run(shutdown_rx.clone(), query_rx));
    let app = Arc::new(App {
        db,
        parser: skyward_spec::job::JobParser::new(&catalog),
        catalog,
        sites: cfg.sites.clone(),
        metrics,
        wake,
        submit: submit_tx,
        queries: query_tx,
        work_dir,
        replica: replica.clone(),
        tokens: std::sync::Mutex::new(Default::default()),
    });
    let router = http::router(app);
    let mut stop = shutdown_rx;
    let http = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            eprintln!("skyward: http server: {e}");
        }
    });
    Ok(Running {
        addr,
        shutdown: shutdown_tx,
        http,
        scheduler,
        admin_token_file,
        replica,
        _lock: lock,
    })
}

/// Group commit: every submission waiting is stored in one transaction,
/// then all are answered; then the scheduler is woken.
async fn writer(db: Db, mut rx: mpsc::Receiver<SubmitJob>, wake: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < SUBMIT_BATCH_MAX {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let items: Vec<_> = batch.iter().map(|j| j.item.clone()).collect();
        // Another replica may store the same Idempotency-Key between our
        // check and our insert; the unique index refuses ours, and a retry
        // finds theirs.
        let mut tries = 0;
        let now = SystemClock.now_ms() as i64;
        let result = loop {
            tries += 1;
            match db.submit_batch(&items, now).await {
                Err(DbError::Sql(sqlx::Error::Database(e)))
                    if e.is_unique_violation() && tries < 3 =>
                {
                    continue
                }
                other => break other,
            }
        };
        match result {
            Ok(outcomes) => {
                for (job, o) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok((o, now)));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
        }
        wake.notify_one();
    }
}

/// Locks `<db>.lock` (an advisory lock the kernel drops when the process
/// dies, even by `kill -9`).
fn lock_file(db_path: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let path = db_path.with_extension("lock");
    let io = |m: String| ServerError::Io {
        path: path.display().to_string(),
        message: m,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(e.to_string()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Busy {
            path: db_path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e.to_string())),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}
