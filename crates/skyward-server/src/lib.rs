//! Skyward's control-plane server. `skyward up` / `skyward server` start
//! it; the CLI's `submit`, `status`, `logs`, `cancel`, `sites`, `queue`,
//! `usage` talk to it through [`client`].
//!
//! ```text
//!  HTTP (axum) ──submit──▶ group-commit writer ──▶ store (SQLite | PostgreSQL)
//!      │  reads ◀──────────────────────────────────────┘   ▲ fenced writes
//!      └─queue/why──▶ runtime (leader only) ── core (sans-IO) ── local executors
//! ```

pub mod agents;
pub mod auth;
pub mod checkpoints;
pub mod client;
pub mod commitments;
pub mod config;
pub mod db;
pub mod http;
pub mod http_ledger;
pub mod metrics;
pub mod runtime;
pub mod ui;
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
    #[error(transparent)]
    Isolation(#[from] skyward_executor::isolation::IsolationError),
    #[error("work_dir {work}: must be outside the state directory {state} (workloads must not reach the server's state)")]
    WorkInsideState { work: String, state: String },
    #[error("secrets.{name}: {message}")]
    Secret { name: String, message: String },
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
        &db::NewToken {
            name: "admin (bootstrap)",
            sha256: &auth::hash(&token),
            scope: "admin",
            team: "admin",
            expires_at_ms: None,
        },
        SystemClock.now_ms_i64(),
    )
    .await?;
    Ok(Some(path))
}

/// Makes `path` readable by its owner only (a state file or directory).
fn private(path: &std::path::Path, mode: u32) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ServerError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Where runs' directories go: the configured `work_dir`, else
/// `<state dir>-work` beside the state directory, else (a root server
/// whose state sits where the run user cannot reach, such as under
/// /root) `/var/lib/skyward/<name>-<hash of the state path>-work`. Never
/// inside the state directory.
pub fn work_dir(
    cfg: &ServerConfig,
    run_as: Option<&skyward_executor::RunAs>,
) -> Result<PathBuf, ServerError> {
    use skyward_executor::isolation::check_reachable;
    let io = |p: &std::path::Path, e: std::io::Error| ServerError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let state = std::path::absolute(&cfg.data_dir).map_err(|e| io(&cfg.data_dir, e))?;
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "skyward".into());
    let chosen = match &cfg.work_dir {
        Some(w) => {
            let w = std::path::absolute(w).map_err(|e| io(w, e))?;
            if let Some(r) = run_as {
                check_reachable(&w, r)?;
            }
            w
        }
        None => {
            let beside = state.with_file_name(format!("{name}-work"));
            match run_as {
                Some(r) if check_reachable(&beside, r).is_err() => {
                    // One per state directory: two servers never share one.
                    let tag = &auth::hash(&state.display().to_string())[..12];
                    let fallback =
                        PathBuf::from("/var/lib/skyward").join(format!("{name}-{tag}-work"));
                    check_reachable(&fallback, r)?;
                    fallback
                }
                _ => beside,
            }
        }
    };
    if chosen.starts_with(&state) {
        return Err(ServerError::WorkInsideState {
            work: chosen.display().to_string(),
            state: state.display().to_string(),
        });
    }
    std::fs::create_dir_all(&chosen).map_err(|e| io(&chosen, e))?;
    // Others (the run user) may enter to reach their own run, not list.
    private(&chosen, if run_as.is_some() { 0o711 } else { 0o700 })?;
    Ok(chosen)
}

/// Largest secret value read from a file.
pub const SECRET_BYTES_MAX: u64 = 64 * 1024;

/// A small text file, refused if larger than `max` bytes (a path such as
/// /dev/zero must not hang or exhaust the server).
pub fn read_small(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB",
            max / 1024
        )));
    }
    Ok(text)
}

/// Reads each configured secret's value (from the server's environment or
/// a file) once, at start.
pub fn resolve_secrets(
    cfg: &ServerConfig,
) -> Result<std::collections::BTreeMap<String, String>, ServerError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, src) in &cfg.secrets {
        let err = |m: String| ServerError::Secret {
            name: name.clone(),
            message: m,
        };
        let value = match src {
            config::SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| err(format!("environment variable {var} is not set")))?,
            config::SecretSource::File(p) => read_small(p, SECRET_BYTES_MAX)
                .map_err(|e| err(format!("{}: {e}", p.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        };
        if value.is_empty() {
            return Err(err("the value is empty".into()));
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
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
    scheduler: tokio::sync::oneshot::Receiver<Result<(), DbError>>,
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
    // The state directory is the server's alone.
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| ServerError::Io {
        path: cfg.data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    private(&cfg.data_dir, 0o700)?;
    let run_as = skyward_executor::isolation::resolve_run_as(cfg.run_as.as_deref())?;
    let work_dir = work_dir(&cfg, run_as.as_ref())?;
    let secrets = Arc::new(resolve_secrets(&cfg)?);
    // One cgroup subtree per work directory: servers sharing a machine
    // never touch each other's runs.
    let cgroup_root = skyward_executor::isolation::cgroup_root(
        &auth::hash(&work_dir.display().to_string())[..16],
    );
    match &run_as {
        Some(r) => eprintln!(
            "skyward: workloads run as '{}' (uid {}) in {}{}",
            r.user,
            r.uid,
            work_dir.display(),
            match &cgroup_root {
                Some(c) => format!(", each in its own cgroup under {}", c.display()),
                None => ", held by process group (no writable cgroup v2: a run that calls setsid can outlive its end)".into(),
            }
        ),
        None => eprintln!(
            "skyward: workloads run as this server's own user in {}: they can read whatever it can, including {}; start the server as root to run them as an unprivileged user (run_as)",
            work_dir.display(),
            cfg.data_dir.display()
        ),
    }
    // One server per SQLite file: a second one would double-schedule.
    let lock = match &target {
        Target::Sqlite(path) => Some(lock_file(path)?),
        Target::Postgres(_) => None,
    };
    let db = Db::open(&target).await?;
    if let Target::Sqlite(path) = &target {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            private(std::path::Path::new(&p), 0o600)?;
        }
    }
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
    tokio::spawn(writer(db.clone(), submit_rx, wake.clone(), metrics.clone()));
    let scheduler_secrets = secrets.clone();
    // Runs an earlier version started inside the state directory are
    // followed where they are (never started there again).
    let legacy_work_dir = Some(cfg.data_dir.join("work")).filter(|d| d.is_dir());
    let sites = cfg.sites.clone();
    let core_cfg = cfg.core.clone();
    let sched_work_dir = work_dir.clone();
    let holder = replica.clone();
    let lease_ms = cfg.lease_ms;
    let exclusive = lock.is_some();
    let sched_metrics = metrics.clone();
    let sched_wake = wake.clone();
    // The agents' hub: its epoch is this server instance (agents start
    // their acknowledgements over when it changes).
    let agents = Arc::new(agents::Hub::new(work_dir.clone(), replica.clone()));
    let sched_agents = agents.clone();
    let live = Arc::new(commitments::Shared::default());
    let sched_live = live.clone();
    let checkpoints = Arc::new(checkpoints::Shared::new(checkpoints::resolve(
        &cfg.object_stores,
        &secrets,
    )));
    let sched_checkpoints = checkpoints.clone();
    let checkpoint_scan_ms = cfg.checkpoint_scan_ms;
    // Store listings and copies run on this runtime, not the scheduler's
    // thread.
    let io = tokio::runtime::Handle::current();
    // The scheduler has its own thread, runtime and connection pool: no
    // flood of requests can starve it of CPU or connections and cost it
    // the lease.
    let make_runtime = move |sched_db: Db| Runtime {
        db: sched_db,
        sites,
        core_cfg,
        work_dir: sched_work_dir,
        holder,
        lease_ms,
        exclusive,
        metrics: sched_metrics,
        wake: sched_wake,
        clock: Arc::new(SystemClock),
        run_as,
        cgroup_root,
        legacy_work_dir,
        secrets: scheduler_secrets,
        live: sched_live.clone(),
        agents: sched_agents.clone(),
        checkpoints: sched_checkpoints.clone(),
        checkpoint_scan_ms,
        io: io.clone(),
    };
    let scheduler = spawn_scheduler(target.clone(), make_runtime, shutdown_rx.clone(), query_rx)?;
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
        state_dir: std::path::absolute(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone()),
        replica: replica.clone(),
        tokens: std::sync::Mutex::new(Default::default()),
        secrets,
        live,
        agents,
        checkpoints,
        gateways: cfg.gateways.clone(),
        gateway_traffic: Default::default(),
        ledger_answers: Default::default(),
    });
    http::sample_gateways(&app, &shutdown_rx);
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

/// Runs the scheduler on a thread of its own with a current-thread
/// runtime; its result arrives on the returned channel.
fn spawn_scheduler(
    target: Target,
    make: impl FnOnce(Db) -> Runtime + Send + 'static,
    shutdown: watch::Receiver<bool>,
    queries: mpsc::Receiver<runtime::Query>,
) -> Result<tokio::sync::oneshot::Receiver<Result<(), DbError>>, ServerError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Io {
            path: "scheduler runtime".into(),
            message: e.to_string(),
        })?;
    std::thread::Builder::new()
        .name("skyward-scheduler".into())
        .spawn(move || {
            let r = rt.block_on(async move {
                let db = Db::open(&target).await?;
                make(db).run(shutdown, queries).await
            });
            let _ = tx.send(r);
        })
        .map_err(|e| ServerError::Io {
            path: "scheduler thread".into(),
            message: e.to_string(),
        })?;
    Ok(rx)
}

/// Group commit: every submission waiting is stored in one transaction,
/// then all are answered; then the scheduler is woken.
async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<SubmitJob>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
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
                metrics
                    .submit_commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn small_files_are_read_and_endless_ones_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "hf_value\n").unwrap();
        assert_eq!(read_small(&p, 64).unwrap(), "hf_value\n");
        let e = read_small(std::path::Path::new("/dev/zero"), SECRET_BYTES_MAX).unwrap_err();
        assert!(e.to_string().contains("larger than 64 KiB"), "{e}");
    }
}
