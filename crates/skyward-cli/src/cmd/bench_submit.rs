//! `skyward bench submit`: submissions per second through the HTTP API
//! with durable writes, on SQLite and (given a server) PostgreSQL, run
//! side by side in one invocation with the backends interleaved.
//!
//! The server is this binary (`skyward server`) in a child process with
//! the `skyward up` sites; the load comes from this process over loopback
//! (closed loop: `--concurrency` clients, each sending its next request
//! when the last is answered). Every request carries its own
//! Idempotency-Key, so the key check is part of the measured path. The
//! workloads never fit a site (a 2-node gang on 8-accelerator sites), so
//! they stay pending and the scheduler's cycles run beside the load.
#![allow(clippy::disallowed_methods)]

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::Serialize;
use skyward_server::client::Client;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct SubmitBenchArgs {
    /// Submissions per run.
    #[arg(long, default_value_t = 50_000)]
    pub requests: usize,
    /// Clients sending at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Runs per backend (interleaved; the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A PostgreSQL server URL to measure too (default:
    /// $SKYWARD_BENCH_DATABASE_URL); a scratch database is created there
    /// for each run and dropped after.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Run the server from another `skyward` binary (an older build, side
    /// by side with this one).
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<std::path::PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize, Clone)]
pub struct RunResult {
    pub backend: String,
    pub run: usize,
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_peak_rss_mib: f64,
    /// fsyncs a second this run's directory's disk took, measured just
    /// before the run (4 KiB writes, each followed by fdatasync).
    pub fsyncs_per_second: f64,
    /// Submissions per group commit (the writer's transactions).
    pub mean_commit_batch: f64,
    /// The scheduler's own transactions during the run.
    pub scheduler_commits: u64,
    /// 1-minute load average at the start and end of the run.
    pub load_start: f64,
    pub load_end: f64,
}

#[derive(Serialize)]
struct Summary {
    backend: String,
    runs: usize,
    median_per_second: f64,
    min_per_second: f64,
    max_per_second: f64,
    median_p50_ms: f64,
    median_p99_ms: f64,
    max_server_peak_rss_mib: f64,
    median_fsyncs_per_second: f64,
    median_commit_batch: f64,
    errors: usize,
}

const REQUESTS_MAX: usize = 10_000_000;
const CONCURRENCY_MAX: usize = 4_096;

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

pub(crate) struct ServerProc {
    pub(crate) child: Child,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fdatasyncs a second on the disk holding `dir`: 4 KiB appended and
/// synced, for about a second (at most 2,000 of them).
pub fn fsync_rate(dir: &std::path::Path) -> f64 {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return 0.0;
    };
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut n = 0u32;
    while n < 2_000 && started.elapsed() < Duration::from_secs(1) {
        if f.write_all(&block).is_err() || f.sync_data().is_err() {
            break;
        }
        n += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if secs > 0.0 {
        f64::from(n) / secs
    } else {
        0.0
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// A counter's value in a Prometheus text page.
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// A client of the server `start_server_bin` started in `dir`, with the
/// admin token it wrote.
pub(crate) fn admin_client(dir: &std::path::Path, port: u16) -> Result<Client, CliError> {
    let token = std::fs::read_to_string(dir.join("data/admin.token"))
        .map_err(|e| CliError::Io(format!("admin token: {e}")))?
        .trim()
        .to_string();
    Client::new(&format!("http://127.0.0.1:{port}"), Some(token))
        .map_err(|e| CliError::Internal(e.to_string()))
}

pub(crate) fn start_server_bin(
    dir: &std::path::Path,
    database_url: Option<&str>,
    bin: Option<&std::path::Path>,
) -> Result<(ServerProc, u16), CliError> {
    let exe = match bin {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| CliError::Io(format!("cannot find this program: {e}")))?,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CliError::Io(e.to_string()))?
        .port();
    let log =
        std::fs::File::create(dir.join("server.log")).map_err(|e| CliError::Io(e.to_string()))?;
    let mut cmd = Command::new(exe);
    // A root server runs workloads as another user, who must reach the
    // work directory (the state directory stays 0700).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
    }
    cmd.args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join("data"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .env_remove("SKYWARD_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if let Some(u) = database_url {
        cmd.args(["--database-url", u]);
    }
    let child = cmd
        .spawn()
        .map_err(|e| CliError::Io(format!("cannot start the server: {e}")))?;
    let proc_ = ServerProc { child };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(CliError::Io(format!(
                "the server did not start within 60 s:\n{log}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((proc_, port))
}

fn one_run(
    backend: &str,
    run: usize,
    a: &SubmitBenchArgs,
    database_url: Option<&str>,
) -> Result<RunResult, CliError> {
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let fsyncs_per_second = fsync_rate(dir.path());
    let load_start = load_average();
    let (server, port) = start_server_bin(dir.path(), database_url, a.server_bin.as_deref())?;
    let client = admin_client(dir.path(), port)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let next = Arc::new(AtomicUsize::new(0));
    let n = a.requests;
    let started = Instant::now();
    let progress_every = (n / 10).max(1);
    let result = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let client = client.clone();
            let next = next.clone();
            let backend = backend.to_string();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if i > 0 && i.is_multiple_of(progress_every) {
                        eprintln!("  {backend} run {}: {i}/{n} submitted", run + 1);
                    }
                    let body = format!("{{\"name\":\"bench-{i}\",\"accelerators\":\"H100:8\",\"nodes\":2,\"run\":\"true\"}}");
                    let t0 = Instant::now();
                    let r = client.request("POST", "/v1/workloads", Some(("application/json", body.into_bytes())), &[("idempotency-key", format!("bench-{run}-{i}"))]).await;
                    lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    match r {
                        Ok(r) if r.status == 201 => {}
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::with_capacity(n);
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                lat.extend(l);
                errors += e;
            }
        }
        (lat, errors)
    });
    let seconds = started.elapsed().as_secs_f64();
    let (mut lat, errors) = result;
    lat.sort_by(f64::total_cmp);
    let rss = crate::cmd::bench::peak_rss_mib_of(&server.child.id().to_string());
    let page = rt
        .block_on(client.request("GET", "/metrics", None, &[]))
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .unwrap_or_default();
    let commits = counter(&page, "skyward_submit_commits_total");
    let stored = counter(&page, "skyward_submissions_total");
    let scheduler_commits = counter(&page, "skyward_scheduler_commits_total");
    drop(server);
    Ok(RunResult {
        backend: backend.into(),
        run: run + 1,
        requests: n,
        errors,
        seconds,
        per_second: (n - errors) as f64 / seconds,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        server_peak_rss_mib: rss,
        fsyncs_per_second,
        mean_commit_batch: if commits > 0 {
            stored as f64 / commits as f64
        } else {
            0.0
        },
        scheduler_commits,
        load_start,
        load_end: load_average(),
    })
}

pub fn run(a: &SubmitBenchArgs) -> Result<(), CliError> {
    if a.requests == 0 || a.requests > REQUESTS_MAX {
        return Err(CliError::Input(format!("--requests: 1 to {REQUESTS_MAX}")));
    }
    if a.concurrency == 0 || a.concurrency > CONCURRENCY_MAX {
        return Err(CliError::Input(format!(
            "--concurrency: 1 to {CONCURRENCY_MAX}"
        )));
    }
    if a.runs == 0 || a.runs > 100 {
        return Err(CliError::Input("--runs: 1 to 100".into()));
    }
    let pg = a.postgres.clone().or_else(|| {
        std::env::var("SKYWARD_BENCH_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let mut backends: Vec<&str> = vec!["sqlite"];
    if pg.is_some() {
        backends.push("postgres");
    } else {
        eprintln!(
            "(PostgreSQL not measured: pass --postgres URL or set SKYWARD_BENCH_DATABASE_URL)"
        );
    }
    let pg_rt = crate::cmd::ledger::runtime()?;
    let mut results = Vec::new();
    for run in 0..a.runs {
        for backend in &backends {
            eprintln!(
                "{backend} run {}/{}: {} submissions, {} clients",
                run + 1,
                a.runs,
                a.requests,
                a.concurrency
            );
            let r = match (*backend, &pg) {
                ("postgres", Some(url)) => {
                    let name = format!("skyward_bench_{}_{run}", std::process::id());
                    let db_url = pg_rt
                        .block_on(skyward_server::db::create_postgres_database(url, &name))
                        .map_err(|e| CliError::Io(e.to_string()))?;
                    let r = one_run(backend, run, a, Some(&db_url));
                    let _ = pg_rt.block_on(skyward_server::db::drop_postgres_database(url, &name));
                    r?
                }
                _ => one_run(backend, run, a, None)?,
            };
            eprintln!(
                "  {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; disk {:.0} fsyncs/s, {:.1} submissions per commit, {} scheduler commits, load {:.2}→{:.2}, server RSS {:.0} MiB",
                r.per_second, r.p50_ms, r.p99_ms, r.errors, r.fsyncs_per_second, r.mean_commit_batch, r.scheduler_commits, r.load_start, r.load_end, r.server_peak_rss_mib
            );
            results.push(r);
        }
    }
    let summaries: Vec<Summary> = backends
        .iter()
        .map(|b| {
            let rs: Vec<&RunResult> = results.iter().filter(|r| r.backend == *b).collect();
            let rates: Vec<f64> = rs.iter().map(|r| r.per_second).collect();
            Summary {
                backend: b.to_string(),
                runs: rs.len(),
                median_per_second: median(rates.clone()),
                min_per_second: rates.iter().copied().fold(f64::INFINITY, f64::min),
                max_per_second: rates.iter().copied().fold(0.0, f64::max),
                median_p50_ms: median(rs.iter().map(|r| r.p50_ms).collect()),
                median_p99_ms: median(rs.iter().map(|r| r.p99_ms).collect()),
                max_server_peak_rss_mib: rs
                    .iter()
                    .map(|r| r.server_peak_rss_mib)
                    .fold(0.0, f64::max),
                median_fsyncs_per_second: median(rs.iter().map(|r| r.fsyncs_per_second).collect()),
                median_commit_batch: median(rs.iter().map(|r| r.mean_commit_batch).collect()),
                errors: rs.iter().map(|r| r.errors).sum(),
            }
        })
        .collect();
    match a.output {
        Output::Json => outln!(
            "{}",
            json(&serde_json::json!({"runs": results, "summary": summaries}))?
        ),
        Output::Table => {
            outln!("{} submissions per run, {} clients, durable commits (SQLite synchronous=FULL; PostgreSQL defaults)", a.requests, a.concurrency);
            let mut t = Table::new(&[
                "backend",
                "runs>",
                "median/s>",
                "min–max/s",
                "p50 ms>",
                "p99 ms>",
                "server RSS MiB>",
                "disk fsyncs/s>",
                "per commit>",
                "errors>",
            ]);
            for s in &summaries {
                t.row(vec![
                    s.backend.clone(),
                    s.runs.to_string(),
                    format!("{:.0}", s.median_per_second),
                    format!("{:.0}–{:.0}", s.min_per_second, s.max_per_second),
                    format!("{:.2}", s.median_p50_ms),
                    format!("{:.2}", s.median_p99_ms),
                    format!("{:.0}", s.max_server_peak_rss_mib),
                    format!("{:.0}", s.median_fsyncs_per_second),
                    format!("{:.1}", s.median_commit_batch),
                    s.errors.to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    if summaries.iter().any(|s| s.errors > 0) {
        return Err(CliError::Io("some submissions failed (see errors)".into()));
    }
    Ok(())
}

#[derive(Args)]
pub struct StartBenchArgs {
    /// Workloads submitted, one at a time (each waits for the last to
    /// start).
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Run the server from another `skyward` binary (an older build, side
    /// by side with this one).
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<std::path::PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize)]
struct StartResult {
    requests: usize,
    /// Submission stored → run started, by the server's own clock.
    p50_ms: f64,
    p99_ms: f64,
    min_ms: f64,
    max_ms: f64,
    /// Submit call answered (201) → run started, as the client saw it.
    client_p50_ms: f64,
    fsyncs_per_second: f64,
    load_start: f64,
    load_end: f64,
}

/// Submit-to-start on an idle `skyward up` (its local sites have free
/// capacity): each workload (`true` on one H100) is submitted when the
/// last one has started; the latency is the server's submission time to
/// its `running` event.
pub fn start_latency(a: &StartBenchArgs) -> Result<(), CliError> {
    if a.requests == 0 || a.requests > 100_000 {
        return Err(CliError::Input("--requests: 1 to 100000".into()));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let fsyncs_per_second = fsync_rate(dir.path());
    let load_start = load_average();
    let (server, port) = start_server_bin(dir.path(), None, a.server_bin.as_deref())?;
    let client = admin_client(dir.path(), port)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let mut server_ms = Vec::with_capacity(a.requests);
    let mut client_ms = Vec::with_capacity(a.requests);
    rt.block_on(async {
        for i in 0..a.requests {
            let body =
                format!("{{\"name\":\"start-{i}\",\"accelerators\":\"H100:1\",\"run\":\"true\"}}");
            let r = client
                .request(
                    "POST",
                    "/v1/workloads",
                    Some(("application/json", body.into_bytes())),
                    &[("idempotency-key", format!("start-{i}"))],
                )
                .await
                .map_err(|e| CliError::Io(e.to_string()))?;
            let answered = Instant::now();
            if r.status != 201 {
                return Err(CliError::Io(r.error_text()));
            }
            let id = r.json().and_then(|v| v["id"].as_i64()).unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let w = client
                    .request("GET", &format!("/v1/workloads/{id}"), None, &[])
                    .await
                    .map_err(|e| CliError::Io(e.to_string()))?;
                let v = w.json().unwrap_or_default();
                let started = v["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| e["state"] == "running")
                    .and_then(|e| e["at_ms"].as_i64());
                if let Some(at) = started {
                    client_ms.push(answered.elapsed().as_secs_f64() * 1e3);
                    let submitted = v["submitted_at_ms"].as_i64().unwrap_or(at);
                    server_ms.push((at - submitted) as f64);
                    break;
                }
                if Instant::now() > deadline {
                    return Err(CliError::Io(format!(
                        "workload {id} did not start within 30 s: {}",
                        v["state"]
                    )));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(())
    })?;
    drop(server);
    server_ms.sort_by(f64::total_cmp);
    client_ms.sort_by(f64::total_cmp);
    let r = StartResult {
        requests: a.requests,
        p50_ms: percentile(&server_ms, 0.5),
        p99_ms: percentile(&server_ms, 0.99),
        min_ms: server_ms.first().copied().unwrap_or(0.0),
        max_ms: server_ms.last().copied().unwrap_or(0.0),
        client_p50_ms: percentile(&client_ms, 0.5),
        fsyncs_per_second,
        load_start,
        load_end: load_average(),
    };
    match a.output {
        Output::Json => outln!("{}", json(&r)?),
        Output::Table => {
            let mut t = Table::new(&[
                "REQUESTS>",
                "P50 MS>",
                "P99 MS>",
                "MIN MS>",
                "MAX MS>",
                "CLIENT P50 MS>",
                "FSYNC/S>",
                "LOAD>",
            ]);
            t.row(vec![
                r.requests.to_string(),
                format!("{:.0}", r.p50_ms),
                format!("{:.0}", r.p99_ms),
                format!("{:.0}", r.min_ms),
                format!("{:.0}", r.max_ms),
                format!("{:.1}", r.client_p50_ms),
                format!("{:.0}", r.fsyncs_per_second),
                format!("{:.1}–{:.1}", r.load_start, r.load_end),
            ]);
            out!("{}", t.render());
        }
    }
    Ok(())
}
