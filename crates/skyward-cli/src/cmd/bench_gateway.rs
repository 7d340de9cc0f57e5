//! `skyward bench gateway`: the gateway's added latency, side by side
//! with going direct to the upstream and with nginx as a plain reverse
//! proxy (the floor), at the same open-loop rates, in interleaved rounds.
//!
//! Processes: the mock upstream, the gateway and nginx share core 0
//! (`taskset`); the load generator runs on core 1 in its own process
//! (`skyward bench gateway-load`). The load is open loop: request i is due
//! at start + i/rate and its latency is measured from that intended time,
//! so a stalled server is not hidden by a generator that waits for it
//! (coordinated omission).
#![allow(clippy::disallowed_methods)]

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::{Deserialize, Serialize};
use skyward_server::client::Client;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct GatewayBenchArgs {
    /// Request rates (per second) for the latency comparison.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    pub rates: Vec<u32>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Interleaved rounds (direct, gateway, nginx each time).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Upstream delays to run (ms): 0 and 50 by default.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    pub delays_ms: Vec<u64>,
    /// Rates tried for the highest sustained rate (0 ms upstream), in
    /// order: a rate that fails is tried once more before the ladder stops,
    /// and the gap to the last rate that held is then halved until it is
    /// within 5 % (and no finer than a twentieth of the first rate).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2500,5000,7500,10000,12500,15000,17500,20000"
    )]
    pub max_rates: Vec<u32>,
    /// LiteLLM's proxy as a reference row (`pip install
    /// 'litellm[proxy]==1.74.9'`, then the path of its `litellm`
    /// program): one worker on core 0 in front of the same mock upstream,
    /// measured at `--litellm-rates` beside direct, and its highest
    /// sustained rate from 25/s up.
    #[arg(long, value_name = "PATH")]
    pub litellm: Option<std::path::PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "25,100")]
    pub litellm_rates: Vec<u32>,
    /// Streamed chunks for the time-to-first-token comparison.
    #[arg(long, default_value_t = 20)]
    pub stream_chunks: u32,
    /// The load generator: Skyward's own (`builtin`), or oha from its
    /// path (`cargo install oha`), run with a fixed rate (`-q`), latency
    /// correction (from each request's intended time) and 64 connections.
    #[arg(long, default_value = "builtin", value_name = "builtin|PATH")]
    pub load_generator: String,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct LoadArgs {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub rate: u32,
    #[arg(long)]
    pub seconds: f64,
    #[arg(long, default_value_t = false)]
    pub stream: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct LoadResult {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub achieved_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * q).round() as usize]
}

/// The load generator (run pinned, in its own process). A pacer thread
/// wakes at each request's due time (sleeping until ~100 µs before it, then
/// spinning, since tokio's timer has 1 ms granularity) and hands the
/// request to a one-worker runtime; latency counts from the due time.
pub fn load(a: &LoadArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let client = Client::new(&a.url, None).map_err(|e| CliError::Input(e.to_string()))?;
    let n = (f64::from(a.rate) * a.seconds).round() as u64;
    let body: &'static str = if a.stream {
        r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hello"}]}"#
    } else {
        r#"{"model":"bench","messages":[{"role":"user","content":"hello"}]}"#
    };
    let stream = a.stream;
    // Warm the connection pool a little (not measured).
    rt.block_on(async {
        for _ in 0..50 {
            let _ = client
                .request(
                    "POST",
                    "/v1/chat/completions",
                    Some(("application/json", body.as_bytes().to_vec())),
                    &[],
                )
                .await;
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, f64)>();
    let start = Instant::now() + Duration::from_millis(5);
    let handle = rt.handle().clone();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(a.rate));
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > Duration::from_micros(150) {
                std::thread::sleep(left - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
        let c = client.clone();
        let tx = tx.clone();
        handle.spawn(async move {
            let r = if stream {
                c.first_chunk("POST", "/v1/chat/completions", body.as_bytes().to_vec())
                    .await
            } else {
                c.request(
                    "POST",
                    "/v1/chat/completions",
                    Some(("application/json", body.as_bytes().to_vec())),
                    &[],
                )
                .await
                .map(|r| r.status)
            };
            let ms = due.elapsed().as_secs_f64() * 1e3;
            let _ = tx.send((matches!(r, Ok(200)), ms));
        });
    }
    drop(tx);
    let (mut lat, errors) = rt.block_on(async move {
        let mut lat = Vec::with_capacity(n as usize);
        let mut errors = 0u64;
        while let Some((ok, ms)) = rx.recv().await {
            if ok {
                lat.push(ms);
            } else {
                errors += 1;
            }
        }
        (lat, errors)
    });
    let wall = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let r = LoadResult {
        sent: n,
        ok: lat.len() as u64,
        errors,
        achieved_per_s: lat.len() as f64 / wall.max(1e-9),
        p50_ms: pct(&lat, 0.5),
        p90_ms: pct(&lat, 0.9),
        p99_ms: pct(&lat, 0.99),
        p999_ms: pct(&lat, 0.999),
    };
    outln!("{}", json(&r)?);
    Ok(())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx's master: stopped with SIGTERM, so that it stops its workers
/// before it exits (a SIGKILL left them running after the bench); killed
/// if it has not exited within 5 s.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        term_then_kill(&mut self.0, &pid, false);
    }
}

/// A program that may start children of its own (LiteLLM's proxy): run in
/// its own process group, which is sent SIGTERM, then SIGKILL after 5 s
/// (its children may outlive it).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        term_then_kill(&mut self.0, &group, true);
    }
}

/// SIGTERM to `target` (a pid, or `-pgid` for a process group), up to 5 s
/// for `child` to exit, then SIGKILL to `target` if it has not, or in any
/// case with `kill_anyway`.
fn term_then_kill(child: &mut Child, target: &str, kill_anyway: bool) {
    let _ = Command::new("kill").args(["-TERM", "--", target]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut exited = false;
    while !exited && Instant::now() < deadline {
        exited = matches!(child.try_wait(), Ok(Some(_)));
        if !exited {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if !exited || kill_anyway {
        let _ = Command::new("kill").args(["-KILL", "--", target]).status();
    }
    let _ = child.wait();
}

/// LiteLLM's proxy with one worker on core 0, in front of the mock on
/// `mock_port`; ready once it answers a chat completion (it takes ~10 s
/// to start).
fn start_litellm(program: &Path, dir: &Path, mock_port: u16) -> Result<(Group, u16), CliError> {
    use std::os::unix::process::CommandExt;
    let port = free_port()?;
    let cfg = dir.join("litellm.yaml");
    std::fs::write(
        &cfg,
        format!("model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: none\n"),
    )
    .map_err(|e| CliError::Io(e.to_string()))?;
    let log =
        std::fs::File::create(dir.join("litellm.log")).map_err(|e| CliError::Io(e.to_string()))?;
    let child = pinned(0, program)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            "1",
        ])
        .env("LITELLM_TELEMETRY", "False")
        .env("LITELLM_LOG", "ERROR")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| CliError::Io(format!("cannot start {}: {e}", program.display())))?;
    let proc = Group(child);
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answered = rt.block_on(client.request(
            "POST",
            "/v1/chat/completions",
            Some((
                "application/json",
                br#"{"model":"bench","messages":[{"role":"user","content":"hello"}]}"#.to_vec(),
            )),
            &[],
        ));
        if matches!(answered, Ok(ref r) if r.status == 200) {
            return Ok((proc, port));
        }
        if Instant::now() > deadline {
            let said = std::fs::read_to_string(dir.join("litellm.log")).unwrap_or_default();
            let tail: String = said.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(CliError::Io(format!(
                "LiteLLM ({}) did not answer within 120 s: {tail}",
                program.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One step of the highest-sustained-rate search: under 0.1 % errors, the
/// rate achieved (97 %), and latency not running away (p99 ≤ 50 ms).
fn sustains(r: &LoadResult, rate: u32) -> bool {
    (r.errors as f64) < 0.001 * r.sent as f64
        && r.achieved_per_s >= 0.97 * f64::from(rate)
        && r.p99_ms <= 50.0
}

/// The highest rate `port` sustains (see [`search_highest`]).
fn highest_sustained(
    generator: &str,
    name: &str,
    port: u16,
    ladder: &[u32],
    seconds: f64,
) -> Result<(u32, Vec<(u32, bool)>), CliError> {
    search_highest(ladder, |rate, again| {
        eprintln!(
            "highest sustained rate: {name} at {rate}/s{}",
            if again { " (again)" } else { "" }
        );
        let r = run_load(generator, port, rate, seconds, false)?;
        Ok(sustains(&r, rate))
    })
}

/// Up the ladder, a failed rate measured twice before it counts as
/// failed, then the gap between the last rate that held and the first that
/// failed halved down to 5 % (no finer than a twentieth of the ladder's
/// first rate). `measure(rate, again)` says whether one run held. Returns
/// the highest rate that held (0 if none) and every run (rate, held).
fn search_highest(
    ladder: &[u32],
    mut measure: impl FnMut(u32, bool) -> Result<bool, CliError>,
) -> Result<(u32, Vec<(u32, bool)>), CliError> {
    let mut tried = Vec::new();
    let mut holds = |rate: u32| -> Result<bool, CliError> {
        for again in [false, true] {
            let ok = measure(rate, again)?;
            tried.push((rate, ok));
            if ok {
                return Ok(true);
            }
        }
        Ok(false)
    };
    let mut best = 0u32;
    let mut failed = None;
    for &r in ladder {
        if holds(r)? {
            best = r;
        } else {
            failed = Some(r);
            break;
        }
    }
    if let Some(mut hi) = failed {
        let floor = (ladder.first().copied().unwrap_or(20) / 20).max(1);
        let step = |b: u32| (b / 20).max(floor);
        while hi > best && hi - best > step(best) {
            let mid = best + (hi - best) / 2;
            if holds(mid)? {
                best = mid;
            } else {
                hi = mid;
            }
        }
    }
    Ok((best, tried))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_lands_within_5_percent_below_the_capacity() {
        // A server that holds up to 7,300/s, and LiteLLM's 60/s.
        for (ladder, cap) in [
            (&[2500u32, 5000, 7500, 10000][..], 7300u32),
            (&[25, 50, 100, 200][..], 60),
            (&[2500, 5000][..], 9000),
        ] {
            let (best, tried) = search_highest(ladder, |r, _| Ok(r <= cap)).unwrap();
            let top = *ladder.last().unwrap();
            if cap >= top {
                assert_eq!(best, top);
            } else {
                assert!(
                    best <= cap && f64::from(best) >= 0.95 * f64::from(cap) - 1.0,
                    "{best} for {cap}"
                );
            }
            assert!(
                tried.len() <= 2 * (ladder.len() + 8),
                "{} runs",
                tried.len()
            );
        }
    }

    #[test]
    fn one_bad_run_does_not_end_the_ladder_but_two_do() {
        // 7,500/s fails once then holds; 10,000/s fails twice.
        let mut seen = std::collections::BTreeMap::<u32, u32>::new();
        let (best, _) = search_highest(&[5000, 7500, 10000], |r, _| {
            let n = seen.entry(r).or_default();
            *n += 1;
            Ok(r <= 5000 || (r <= 9000 && *n > 1))
        })
        .unwrap();
        assert!((8550..=9000).contains(&best), "{best}");
        // Nothing holds: 0, after the first rung and the bisection below it.
        let (best, _) = search_highest(&[2500, 5000], |_, _| Ok(false)).unwrap();
        assert_eq!(best, 0);
    }
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::Io(e.to_string()))
}

fn pinned(core: u32, program: &Path) -> Command {
    if Path::new("/usr/bin/taskset").exists() {
        let mut c = Command::new("/usr/bin/taskset");
        c.arg("-c").arg(core.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn wait_port(port: u16) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(CliError::Io(format!(
                "nothing listens on port {port} after 30 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// utime + stime of a process and its children's threads, in µs.
fn cpu_us(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks * 10_000 // USER_HZ = 100
}

fn rss_mib(pid: u32) -> f64 {
    crate::cmd::bench::peak_rss_mib_of(&pid.to_string())
}

struct Stack {
    _mock: Proc,
    gateway: Proc,
    nginx: Option<(Nginx, u32)>,
    mock_port: u16,
    gw_port: u16,
    nginx_port: u16,
    _dir: tempfile::TempDir,
}

fn nginx_worker_pid(master: u32) -> u32 {
    // The one worker is the master's child.
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(master)
}

fn start_stack(delay_ms: u64, chunks: u32) -> Result<Stack, CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::Io(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let (mock_port, gw_port, nginx_port) = (free_port()?, free_port()?, free_port()?);
    let mock = pinned(0, &exe)
        .args([
            "gateway",
            "mock",
            "--listen",
            &format!("127.0.0.1:{mock_port}"),
            "--name",
            "upstream",
            "--threads",
            "1",
            "--delay-ms",
            &delay_ms.to_string(),
            "--chunks",
            &chunks.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::Io(format!("cannot start the mock: {e}")))?;
    let mock = Proc(mock);
    wait_port(mock_port)?;
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{gw_port}\nmodels:\n  bench:\n    deployments:\n      - {{name: upstream, provider: aws, region: us-east-1, url: 'http://127.0.0.1:{mock_port}/v1'}}\n")).map_err(|e| CliError::Io(e.to_string()))?;
    let gateway = pinned(0, &exe)
        .args(["gateway", "run", "--threads", "1", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::Io(format!("cannot start the gateway: {e}")))?;
    let gateway = Proc(gateway);
    wait_port(gw_port)?;
    let nginx_bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let nginx = match nginx_bin {
        Some(bin) => {
            let conf = dir.path().join("nginx.conf");
            let d = dir.path().display();
            std::fs::write(&conf, format!(
                "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{ worker_connections 8192; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  upstream up {{ server 127.0.0.1:{mock_port}; keepalive 512; }}\n  server {{\n    listen 127.0.0.1:{nginx_port} backlog=8192;\n    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }}\n  }}\n}}\n"
            )).map_err(|e| CliError::Io(e.to_string()))?;
            let child = pinned(0, Path::new(bin))
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| CliError::Io(format!("cannot start nginx: {e}")))?;
            let pid = child.id();
            wait_port(nginx_port)?;
            std::thread::sleep(Duration::from_millis(100));
            Some((Nginx(child), nginx_worker_pid(pid)))
        }
        None => {
            eprintln!("(nginx not installed: `apt-get install nginx-light` to compare with it)");
            None
        }
    };
    Ok(Stack {
        _mock: mock,
        gateway,
        nginx,
        mock_port,
        gw_port,
        nginx_port,
        _dir: dir,
    })
}

fn run_load(
    generator: &str,
    port: u16,
    rate: u32,
    seconds: f64,
    stream: bool,
) -> Result<LoadResult, CliError> {
    if generator != "builtin" {
        return run_oha(generator, port, rate, seconds, stream);
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Io(e.to_string()))?;
    let mut c = pinned(1, &exe);
    c.args([
        "bench",
        "gateway-load",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--rate",
        &rate.to_string(),
        "--seconds",
        &seconds.to_string(),
    ]);
    if stream {
        c.arg("--stream");
    }
    let out = c
        .output()
        .map_err(|e| CliError::Io(format!("cannot run the load generator: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Io(format!(
            "load generator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::Internal(format!("load generator output: {e}")))
}

/// One measurement with oha on core 1: p50…p99.9 of the whole request
/// (or, for streams, of the first byte), from oha's JSON report.
fn run_oha(
    oha: &str,
    port: u16,
    rate: u32,
    seconds: f64,
    stream: bool,
) -> Result<LoadResult, CliError> {
    let body = if stream {
        r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hello"}]}"#
    } else {
        r#"{"model":"bench","messages":[{"role":"user","content":"hello"}]}"#
    };
    let out = pinned(1, Path::new(oha))
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
            "-c",
            "64",
            "-q",
            &rate.to_string(),
            "-z",
            &format!("{}ms", (seconds * 1000.0).round() as u64),
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        ])
        .output()
        .map_err(|e| CliError::Io(format!("cannot run {oha}: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Io(format!(
            "{oha} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::Internal(format!("oha's report: {e}")))?;
    let count = |k: &str| -> u64 {
        v[k].as_object()
            .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0)
    };
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    let sent = count("statusCodeDistribution") + count("errorDistribution");
    let p = if stream {
        &v["firstBytePercentiles"]
    } else {
        &v["latencyPercentiles"]
    };
    let ms = |k: &str| p[k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok(LoadResult {
        sent,
        ok,
        errors: sent - ok,
        achieved_per_s: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p90_ms: ms("p90"),
        p99_ms: ms("p99"),
        p999_ms: ms("p99.9"),
    })
}

#[derive(Serialize, Clone)]
struct Row {
    delay_ms: u64,
    rate: u32,
    target: String,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    added_p50_ms: f64,
    added_p90_ms: f64,
    added_p99_ms: f64,
    added_p999_ms: f64,
    errors: u64,
    sent: u64,
}

/// LiteLLM's reference rows: at each of `--litellm-rates`, beside direct
/// in the same rounds, and its highest sustained rate.
fn litellm_rows(
    a: &GatewayBenchArgs,
    program: &Path,
    stack: &Stack,
    rows: &mut Vec<Row>,
    extra: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), CliError> {
    eprintln!("starting LiteLLM ({})", program.display());
    let (proc, port) = start_litellm(program, stack._dir.path(), stack.mock_port)?;
    for &rate in &a.litellm_rates {
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for round in 0..a.rounds {
            eprintln!(
                "upstream 0 ms, {rate}/s, round {}/{}: direct, litellm",
                round + 1,
                a.rounds
            );
            direct.push(run_load(
                &a.load_generator,
                stack.mock_port,
                rate,
                a.seconds,
                false,
            )?);
            through.push(run_load(&a.load_generator, port, rate, a.seconds, false)?);
        }
        rows.push(Row::of(0, rate, "litellm", &through, &direct));
    }
    let (best, tried) = highest_sustained(
        &a.load_generator,
        "litellm",
        port,
        &[25, 50, 100, 200, 400, 800],
        a.seconds.min(5.0),
    )?;
    let rss = rss_mib(proc.0.id());
    extra.insert("litellm".into(), serde_json::json!({"program": program.display().to_string(), "max_sustained_per_s": best, "rss_mib": rss, "tried": tried_json(&tried)}));
    Ok(())
}

impl Row {
    /// A target's row from its rounds: medians over rounds, and the added
    /// latency per round (target minus the direct run of the same round),
    /// its median.
    fn of(delay_ms: u64, rate: u32, target: &str, rs: &[LoadResult], direct: &[LoadResult]) -> Row {
        let med = |f: fn(&LoadResult) -> f64| median(rs.iter().map(f).collect());
        let added = |f: fn(&LoadResult) -> f64| {
            median(rs.iter().zip(direct).map(|(r, d)| f(r) - f(d)).collect())
        };
        Row {
            delay_ms,
            rate,
            target: target.to_string(),
            p50_ms: med(|r| r.p50_ms),
            p90_ms: med(|r| r.p90_ms),
            p99_ms: med(|r| r.p99_ms),
            p999_ms: med(|r| r.p999_ms),
            added_p50_ms: added(|r| r.p50_ms),
            added_p90_ms: added(|r| r.p90_ms),
            added_p99_ms: added(|r| r.p99_ms),
            added_p999_ms: added(|r| r.p999_ms),
            errors: rs.iter().map(|r| r.errors).sum(),
            sent: rs.iter().map(|r| r.sent).sum(),
        }
    }
}

/// Each run of a highest-sustained-rate search, for the JSON report.
fn tried_json(tried: &[(u32, bool)]) -> Vec<serde_json::Value> {
    tried
        .iter()
        .map(|(r, ok)| serde_json::json!({"rate": r, "held": ok}))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    pct(&v, 0.5)
}

pub fn run(a: &GatewayBenchArgs) -> Result<(), CliError> {
    if a.rates.is_empty() || a.rounds == 0 || !(a.seconds > 0.0 && a.seconds <= 600.0) {
        return Err(CliError::Input(
            "--rates, --rounds ≥ 1 and 0 < --seconds ≤ 600 are needed".into(),
        ));
    }
    if let Some(p) = &a.litellm {
        if !p.is_file() {
            return Err(CliError::Input(format!(
                "--litellm {}: no such program (pip install 'litellm[proxy]==1.74.9' puts it in the environment's bin/)",
                p.display()
            )));
        }
    }
    if a.litellm.is_some() && !a.delays_ms.contains(&0) {
        return Err(CliError::Input(
            "--litellm is measured with the 0 ms upstream: add 0 to --delays-ms".into(),
        ));
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut extra = serde_json::Map::new();
    for &delay in &a.delays_ms {
        let stack = start_stack(delay, 8)?;
        let mut targets = vec![("direct", stack.mock_port), ("gateway", stack.gw_port)];
        if stack.nginx.is_some() {
            targets.push(("nginx", stack.nginx_port));
        }
        for &rate in &a.rates {
            let mut per: std::collections::BTreeMap<&str, Vec<LoadResult>> = Default::default();
            for round in 0..a.rounds {
                for (name, port) in &targets {
                    eprintln!(
                        "upstream {delay} ms, {rate}/s, round {}/{}: {name}",
                        round + 1,
                        a.rounds
                    );
                    per.entry(name).or_default().push(run_load(
                        &a.load_generator,
                        *port,
                        rate,
                        a.seconds,
                        false,
                    )?);
                }
            }
            let direct = per.get("direct").cloned().unwrap_or_default();
            for (name, _) in &targets {
                let rs = per.get(name).cloned().unwrap_or_default();
                rows.push(Row::of(delay, rate, name, &rs, &direct));
            }
        }
        if delay == 0 {
            extra.insert("rss_after_comparison_mib".into(), serde_json::json!({"gateway": rss_mib(stack.gateway.0.id()), "nginx": stack.nginx.as_ref().map(|(_, w)| rss_mib(*w))}));
            // CPU per request at the highest comparison rate, and the
            // highest rate sustained with < 0.1 % errors.
            let rate = a.rates.iter().copied().max().unwrap_or(1000);
            let mut cpu = serde_json::Map::new();
            let mut procs = vec![("gateway", stack.gateway.0.id(), stack.gw_port)];
            if let Some((_, w)) = &stack.nginx {
                procs.push(("nginx", *w, stack.nginx_port));
            }
            for (name, pid, port) in &procs {
                let before = cpu_us(*pid);
                let r = run_load(&a.load_generator, *port, rate, a.seconds, false)?;
                let used = cpu_us(*pid).saturating_sub(before);
                cpu.insert(name.to_string(), serde_json::json!({"rate": rate, "cpu_us_per_request": used as f64 / r.sent.max(1) as f64}));
            }
            extra.insert("cpu".into(), serde_json::Value::Object(cpu));
            let mut max = serde_json::Map::new();
            let mut found = std::collections::BTreeMap::new();
            for (name, pid, port) in &procs {
                let (best, tried) = highest_sustained(
                    &a.load_generator,
                    name,
                    *port,
                    &a.max_rates,
                    a.seconds.min(5.0),
                )?;
                found.insert(*name, best);
                max.insert(name.to_string(), serde_json::json!({"max_sustained_per_s": best, "peak_rss_mib_after_ramp": rss_mib(*pid), "tried": tried_json(&tried)}));
            }
            if let (Some(&g), Some(&n)) = (found.get("gateway"), found.get("nginx")) {
                if n > 0 {
                    max.insert(
                        "gateway_over_nginx".into(),
                        (f64::from(g) / f64::from(n)).into(),
                    );
                }
            }
            extra.insert("max".into(), serde_json::Value::Object(max));
            if let Some(program) = &a.litellm {
                litellm_rows(a, program, &stack, &mut rows, &mut extra)?;
            }
        }
    }
    // Streaming: time to first chunk, direct against through the gateway.
    let stack = start_stack(0, a.stream_chunks)?;
    let mut ttft = serde_json::Map::new();
    let mut direct = Vec::new();
    let mut through = Vec::new();
    for _ in 0..a.rounds {
        direct.push(run_load(
            &a.load_generator,
            stack.mock_port,
            500,
            a.seconds,
            true,
        )?);
        through.push(run_load(
            &a.load_generator,
            stack.gw_port,
            500,
            a.seconds,
            true,
        )?);
    }
    let d50 = median(direct.iter().map(|r| r.p50_ms).collect());
    let g50 = median(through.iter().map(|r| r.p50_ms).collect());
    let d99 = median(direct.iter().map(|r| r.p99_ms).collect());
    let g99 = median(through.iter().map(|r| r.p99_ms).collect());
    ttft.insert("direct_p50_ms".into(), d50.into());
    ttft.insert("gateway_p50_ms".into(), g50.into());
    ttft.insert("added_p50_ms".into(), (g50 - d50).into());
    ttft.insert("added_p99_ms".into(), (g99 - d99).into());
    extra.insert("stream_ttft".into(), serde_json::Value::Object(ttft));
    match a.output {
        Output::Json => outln!(
            "{}",
            json(&serde_json::json!({"latency": rows, "other": extra}))?
        ),
        Output::Table => {
            let mut t = Table::new(&[
                "upstream",
                "rate/s>",
                "target",
                "p50 ms>",
                "p90 ms>",
                "p99 ms>",
                "p99.9 ms>",
                "+p50 ms>",
                "+p99 ms>",
                "+p99.9 ms>",
                "errors>",
            ]);
            for r in &rows {
                t.row(vec![
                    format!("{} ms", r.delay_ms),
                    r.rate.to_string(),
                    r.target.clone(),
                    format!("{:.3}", r.p50_ms),
                    format!("{:.3}", r.p90_ms),
                    format!("{:.3}", r.p99_ms),
                    format!("{:.3}", r.p999_ms),
                    format!("{:+.3}", r.added_p50_ms),
                    format!("{:+.3}", r.added_p99_ms),
                    format!("{:+.3}", r.added_p999_ms),
                    format!("{}/{}", r.errors, r.sent),
                ]);
            }
            out!("{}", t.render());
            // Capacity at a glance: each target's highest sustained rate,
            // CPU per request and memory.
            let mut c = Table::new(&[
                "target",
                "highest sustained/s>",
                "of nginx's>",
                "CPU µs/request>",
                "RSS MiB>",
            ]);
            let max = &extra.get("max").cloned().unwrap_or_default();
            let nginx = max["nginx"]["max_sustained_per_s"].as_f64();
            let mut line = |name: &str, v: &serde_json::Value, rss: &serde_json::Value| {
                let best = v["max_sustained_per_s"].as_f64();
                c.row(vec![
                    name.to_string(),
                    best.map(|b| format!("{b:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    match (best, nginx) {
                        (Some(b), Some(n)) if n > 0.0 => format!("{:.0} %", 100.0 * b / n),
                        _ => "-".into(),
                    },
                    extra
                        .get("cpu")
                        .and_then(|cpu| cpu[name]["cpu_us_per_request"].as_f64())
                        .map(|u| format!("{u:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    rss.as_f64()
                        .map(|r| format!("{r:.1}"))
                        .unwrap_or_else(|| "-".into()),
                ]);
            };
            for name in ["gateway", "nginx"] {
                if max.get(name).is_some() {
                    line(name, &max[name], &max[name]["peak_rss_mib_after_ramp"]);
                }
            }
            if let Some(l) = extra.get("litellm") {
                line("litellm", l, &l["rss_mib"]);
            }
            out!("{}", c.render());
            if let Some(t) = extra.get("stream_ttft") {
                outln!(
                    "stream, first chunk added by the gateway: p50 {:+.3} ms, p99 {:+.3} ms",
                    t["added_p50_ms"].as_f64().unwrap_or(f64::NAN),
                    t["added_p99_ms"].as_f64().unwrap_or(f64::NAN)
                );
            }
            outln!("(every run of the search: -o json, under other.max)");
        }
    }
    Ok(())
}
