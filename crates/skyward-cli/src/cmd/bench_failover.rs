//! `skyward bench failover`: how long the control-plane core takes to
//! re-place the work of a lost site. A fleet of sites each runs its share
//! of work; one site is lost (its heartbeat times out), and the time from
//! that to every one of its workloads dispatched elsewhere is measured
//! (the core's own work: the re-placement cycle, in process, no I/O).
#![allow(clippy::disallowed_methods)] // wall-clock timing, at the edge

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::Serialize;
use skyward_core::{Command, Config, Core, Input, JobSpec, SiteSpec, WorkloadId};
use skyward_model::{AcceleratorRequest, RegionKey, Usd};
use std::time::Instant;

#[derive(Args)]
pub struct FailoverBenchArgs {
    /// Workloads running on the site that is lost (comma-separated sizes).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 100, 10_000])]
    pub lost: Vec<usize>,
    /// Sites besides the lost one (they have room for its work).
    #[arg(long, default_value_t = 20)]
    pub sites: usize,
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize)]
struct Row {
    lost_workloads: usize,
    sites: usize,
    /// From the loss to every workload dispatched elsewhere, ms.
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    redispatched: usize,
}

fn site(i: usize, accelerators: u32) -> SiteSpec {
    let regions = [
        ("aws", "us-east-1"),
        ("gcp", "us-central1"),
        ("azure", "eastus"),
        ("oci", "us-ashburn-1"),
    ];
    let (p, r) = regions[i % regions.len()];
    SiteSpec {
        name: format!("site-{i:03}"),
        region: RegionKey::new(p, r),
        accelerator: "H100".into(),
        accelerators,
        price_usd_per_accelerator_hour: Usd::from_dollars(2 + (i % 5) as i64),
        spot: false,
        prepaid: false,
    }
}

fn job(i: usize) -> JobSpec {
    JobSpec {
        name: format!("w{i}"),
        accelerators: vec![AcceleratorRequest {
            name: "H100".into(),
            count: 1,
        }],
        nodes: 1,
        priority: 0,
        providers: Vec::new(),
        regions: Vec::new(),
        residency: Vec::new(),
        compliance: Vec::new(),
        spot: skyward_model::SpotPolicy::Never,
        hours: None,
        max_runtime_ms: Some(3_600_000),
        preemptible: true,
        team: String::new(),
        recovery: Default::default(),
        no_variant: Vec::new(),
        throughput: Default::default(),
    }
}

/// One loss: returns (ms to re-place, workloads re-dispatched).
fn once(lost: usize, sites: usize) -> Result<(f64, usize), CliError> {
    let err = |e: skyward_core::Rejected| CliError::Internal(format!("{e:?}"));
    let mut core = Core::new(Config {
        workloads_max: lost * 2 + 10,
        heartbeat_timeout_ms: 10_000,
        cycle_min_gap_ms: 0,
        exact_options_max: 0,
        ..Config::default()
    });
    // The site that will be lost is the cheapest and holds all its work;
    // the others have room for it together.
    let cap = (lost as u32).max(1);
    let mut lost_site = site(0, cap);
    lost_site.price_usd_per_accelerator_hour = Usd::from_dollars(1);
    core.handle(
        0,
        Input::RegisterSite {
            spec: lost_site,
            running: vec![],
        },
    )
    .map_err(err)?;
    let each = (lost / sites.max(1) + 1) as u32 * 2;
    for i in 1..=sites {
        core.handle(
            0,
            Input::RegisterSite {
                spec: site(i, each),
                running: vec![],
            },
        )
        .map_err(err)?;
    }
    for i in 0..lost {
        core.handle(
            0,
            Input::Submit {
                id: WorkloadId(i as u64),
                spec: job(i),
            },
        )
        .map_err(err)?;
    }
    // Place, acknowledge and start everything on the cheap site.
    let mut now = 1;
    let mut placed = 0;
    while placed < lost {
        core.handle_timeout(now);
        let mut batch = Vec::new();
        while let Some(c) = core.poll_command() {
            if let Command::Dispatch {
                id, site, attempt, ..
            } = c
            {
                batch.push((id, site, attempt));
            }
        }
        if batch.is_empty() && now > 1_000 {
            return Err(CliError::Internal(format!(
                "only {placed} of {lost} placed at the start"
            )));
        }
        for (id, site, attempt) in batch {
            core.handle(
                now,
                Input::DispatchAcked {
                    id,
                    site: site.clone(),
                    attempt,
                },
            )
            .map_err(err)?;
            core.handle(now, Input::Started { id, site, attempt })
                .map_err(err)?;
            placed += 1;
        }
        now += 1;
    }
    // Everyone but the cheap site keeps beating; it goes silent.
    let names: Vec<String> = core.sites().into_iter().map(|s| s.0).collect();
    let silent_from = now;
    let lost_at = silent_from + 10_000;
    for t in [silent_from, lost_at - 1, lost_at] {
        for n in names.iter().filter(|n| *n != "site-000") {
            let _ = core.handle(t, Input::Heartbeat { site: n.clone() });
        }
    }
    while core.poll_command().is_some() {}
    let t0 = Instant::now();
    let mut redispatched = 0;
    let mut t = lost_at;
    // The loss, then cycles until every workload is dispatched again.
    while redispatched < lost {
        core.handle_timeout(t);
        while let Some(c) = core.poll_command() {
            if let Command::Dispatch { site, .. } = c {
                if site != "site-000" {
                    redispatched += 1;
                }
            }
        }
        t += 1;
        if t > lost_at + 100_000 {
            break;
        }
    }
    Ok((t0.elapsed().as_secs_f64() * 1000.0, redispatched))
}

pub fn run(a: &FailoverBenchArgs) -> Result<(), CliError> {
    if a.lost.is_empty()
        || a.lost.iter().any(|n| *n == 0 || *n > 1_000_000)
        || a.sites == 0
        || a.sites > 1_000
        || a.repeats == 0
        || a.repeats > 100
    {
        return Err(CliError::Input(
            "--lost 1..1e6 each, --sites 1..1000, --repeats 1..100".into(),
        ));
    }
    let mut rows = Vec::new();
    for &lost in &a.lost {
        let mut times = Vec::new();
        let mut moved = 0;
        for _ in 0..a.repeats {
            let (ms, n) = once(lost, a.sites)?;
            times.push(ms);
            moved = n;
        }
        times.sort_by(f64::total_cmp);
        rows.push(Row {
            lost_workloads: lost,
            sites: a.sites,
            median_ms: times[times.len() / 2],
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            redispatched: moved,
        });
        eprintln!("  {lost} lost: median {:.2} ms", times[times.len() / 2]);
    }
    match a.output {
        Output::Json => outln!("{}", json(&rows)?),
        Output::Table => {
            let mut t = Table::new(&[
                "LOST WORKLOADS>",
                "OTHER SITES>",
                "RE-PLACED>",
                "MEDIAN MS>",
                "RANGE MS>",
            ]);
            for r in &rows {
                t.row(vec![
                    r.lost_workloads.to_string(),
                    r.sites.to_string(),
                    r.redispatched.to_string(),
                    format!("{:.2}", r.median_ms),
                    format!("{:.2}–{:.2}", r.min_ms, r.max_ms),
                ]);
            }
            out!("{}", t.render());
            outln!("\nFrom the heartbeat timeout firing to every workload of the lost site dispatched elsewhere: the core's cycles, in process (the real server adds its store write and the sites' dispatch).");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct SlurmBenchArgs {
    /// Jobs to submit (one GPU each, `true`).
    #[arg(long, default_value_t = 100)]
    pub jobs: usize,
    /// The cluster's slurm.conf (default: Slurm's).
    #[arg(long, value_name = "FILE")]
    pub slurm_conf: Option<std::path::PathBuf>,
    /// Accelerators the executor may use at once (what the cluster has).
    #[arg(long, default_value_t = 4)]
    pub accelerators: u32,
    /// Submit through slurmrestd instead (`unix:/path/sock`), API v0.0.38;
    /// jobs then run as slurmrestd's user (nobody here).
    #[arg(long, value_name = "TARGET")]
    pub slurm_rest: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize)]
struct SlurmRow {
    jobs: usize,
    /// sbatch or slurmrestd.
    through: &'static str,
    /// Submissions per second through sbatch (the executor's dispatch:
    /// files written, sbatch run, record kept).
    submit_per_s: f64,
    submit_ms_p50: f64,
    submit_ms_p99: f64,
    /// From the first submission to the last job's end seen.
    all_done_s: f64,
}

/// `skyward bench slurm`: Slurm dispatch throughput through sbatch.
pub fn run_slurm(a: &SlurmBenchArgs) -> Result<(), CliError> {
    use skyward_executor::slurm::{Slurm, SlurmExecutor};
    if a.jobs == 0 || a.jobs > 100_000 {
        return Err(CliError::Input("--jobs 1..100000".into()));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let rest = a
        .slurm_rest
        .as_deref()
        .map(|t| skyward_executor::slurm_rest::SlurmRest::parse(t, "v0.0.38"))
        .transpose()
        .map_err(|m| CliError::Input(format!("--slurm-rest: {m}")))?;
    // Through slurmrestd's socket jobs run as its user: it gets the runs'
    // directories.
    let run_as = match &rest {
        Some(_) => {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
            skyward_executor::isolation::resolve_run_as(Some("nobody"))
                .map_err(|e| CliError::Io(e.to_string()))?
        }
        None => None,
    };
    let through = if rest.is_some() {
        "slurmrestd"
    } else {
        "sbatch"
    };
    let mut ex = SlurmExecutor::new(
        &format!("bench{}", std::process::id()),
        dir.path(),
        u32::MAX,
        Slurm {
            conf: a.slurm_conf.clone(),
            run_as,
            rest,
            accelerator: "H100".into(),
        },
    );
    let spec = skyward_executor::RunSpec {
        run: "true".into(),
        nodes: 1,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(a.jobs);
    for i in 0..a.jobs {
        let t = Instant::now();
        ex.dispatch(WorkloadId(i as u64), 1, 1, &spec)
            .map_err(|e| CliError::Io(e.to_string()))?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let submit_s = t0.elapsed().as_secs_f64();
    let mut done = 0;
    while done < a.jobs {
        for e in ex.poll() {
            if matches!(e, skyward_executor::ExecEvent::Finished { .. }) {
                done += 1;
            }
        }
        if t0.elapsed().as_secs() > 600 {
            return Err(CliError::Io(format!(
                "only {done} of {} jobs ended in 10 min",
                a.jobs
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    lat.sort_by(f64::total_cmp);
    let row = SlurmRow {
        jobs: a.jobs,
        through,
        submit_per_s: a.jobs as f64 / submit_s.max(1e-9),
        submit_ms_p50: lat[lat.len() / 2],
        submit_ms_p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        all_done_s: t0.elapsed().as_secs_f64(),
    };
    match a.output {
        Output::Json => outln!("{}", json(&row)?),
        Output::Table => outln!(
            "{} jobs: {:.0} submissions/s through {} (p50 {:.1} ms, p99 {:.1} ms each); all ended after {:.1} s",
            row.jobs,
            row.submit_per_s,
            row.through,
            row.submit_ms_p50,
            row.submit_ms_p99,
            row.all_done_s
        ),
    }
    Ok(())
}

#[derive(Args)]
pub struct AgentsBenchArgs {
    /// Agents syncing at once (each its own site).
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Runs each agent reports holding in every sync.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The skyward binary to run as the server (default: this one).
    #[arg(long, value_name = "FILE")]
    pub server_bin: Option<std::path::PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize)]
struct AgentsRow {
    agents: usize,
    runs_per_agent: usize,
    syncs_per_s: f64,
    runs_reported_per_s: f64,
    sync_ms_p50: f64,
    sync_ms_p99: f64,
    errors: u64,
    server_cpu_pct: f64,
    server_rss_mib: f64,
    load_average: f64,
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// `skyward bench agents`: how many agent syncs (heartbeats with their
/// runs) one server answers, and how fast.
pub fn run_agents(a: &AgentsBenchArgs) -> Result<(), CliError> {
    use skyward_server::agents::{Capacity, RunRef, SyncRequest};
    use skyward_server::client::Client;
    if a.agents == 0 || a.agents > 2_000 || a.runs > 100_000 || a.seconds == 0 || a.seconds > 600 {
        return Err(CliError::Input(
            "--agents 1..2000, --runs 0..100000, --seconds 1..600".into(),
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let mut cfg = String::from("sites:\n");
    for i in 0..a.agents {
        cfg.push_str(&format!(
            "  - name: edge-{i}\n    region: aws:us-east-1\n    accelerator: H100\n    accelerators: {}\n    price_usd_per_accelerator_hour: 2\n    executor: agent\n",
            a.runs.max(1)
        ));
    }
    cfg.push_str("scheduler:\n  heartbeat_timeout_ms: 60000\n");
    std::fs::write(dir.path().join("server.yaml"), cfg).map_err(|e| CliError::Io(e.to_string()))?;
    let exe = match &a.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| CliError::Io(e.to_string()))?,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CliError::Io(e.to_string()))?
        .port();
    let log = std::fs::File::create(dir.path().join("server.log"))
        .map_err(|e| CliError::Io(e.to_string()))?;
    let child = std::process::Command::new(exe)
        .args(["server", "--config"])
        .arg(dir.path().join("server.yaml"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .map_err(|e| CliError::Io(format!("cannot start the server: {e}")))?;
    let server = crate::cmd::bench_submit::ServerProc { child };
    let pid = server.child.id();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || !dir.path().join("data/admin.token").exists()
    {
        if Instant::now() > deadline {
            return Err(CliError::Io("the server did not start within 60 s".into()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let base = format!("http://127.0.0.1:{port}");
    let admin = std::fs::read_to_string(dir.path().join("data/admin.token"))
        .map_err(|e| CliError::Io(e.to_string()))?
        .trim()
        .to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let admin_c = Client::new(&base, Some(admin)).map_err(|e| CliError::Internal(e.to_string()))?;
    let mut tokens = Vec::new();
    for i in 0..a.agents {
        let body = serde_json::json!({"name": format!("agent-{i}"), "scope": "agent", "site": format!("edge-{i}")});
        let r = rt
            .block_on(admin_c.request(
                "POST",
                "/v1/tokens",
                Some(("application/json", body.to_string().into_bytes())),
                &[],
            ))
            .map_err(|e| CliError::Io(e.to_string()))?;
        let v = r.json().unwrap_or_default();
        tokens.push(v["token"].as_str().unwrap_or_default().to_string());
    }
    let seconds = a.seconds;
    let runs = a.runs;
    let cpu0 = proc_cpu_ticks(pid);
    let t0 = Instant::now();
    let results = rt.block_on(async move {
        let mut tasks = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let c = match Client::new(&base, Some(token)) {
                    Ok(c) => c,
                    Err(_) => return (Vec::new(), 1u64),
                };
                let running: Vec<RunRef> = (0..runs)
                    .map(|r| RunRef {
                        id: (i * 1_000_000 + r) as u64,
                        attempt: 1,
                    })
                    .collect();
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let (mut epoch, mut ack) = (None::<String>, 0u64);
                let end = Instant::now() + std::time::Duration::from_secs(seconds);
                while Instant::now() < end {
                    let req = SyncRequest {
                        site: format!("edge-{i}"),
                        capacity: Capacity {
                            region: "aws:us-east-1".into(),
                            accelerator: "H100".into(),
                            accelerators: runs.max(1) as u32,
                            spot: None,
                            price_basis: None,
                        },
                        epoch: epoch.clone(),
                        session: format!("bench-{i}"),
                        ack,
                        events: Vec::new(),
                        running: running.clone(),
                        logs: Vec::new(),
                        wait_ms: 0,
                    };
                    let body = serde_json::to_vec(&req).unwrap_or_default();
                    let t = Instant::now();
                    match c
                        .request(
                            "POST",
                            "/v1/agent/sync",
                            Some(("application/json", body)),
                            &[],
                        )
                        .await
                    {
                        Ok(r) if r.status == 200 => {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                            if let Ok(v) = serde_json::from_slice::<
                                skyward_server::agents::SyncResponse,
                            >(&r.body)
                            {
                                if epoch.as_deref() != Some(v.epoch.as_str()) {
                                    epoch = Some(v.epoch.clone());
                                    ack = 0;
                                }
                                ack = v
                                    .commands
                                    .iter()
                                    .map(|c| c.seq)
                                    .max()
                                    .unwrap_or(ack)
                                    .max(ack);
                            }
                        }
                        _ => {
                            errors += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                all.extend(l);
                errors += e;
            }
        }
        (all, errors)
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = proc_cpu_ticks(pid);
    let rss = crate::cmd::bench::peak_rss_mib_of(&pid.to_string());
    drop(server);
    let (mut lat, errors) = results;
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * q) as usize]
        }
    };
    let row = AgentsRow {
        agents: a.agents,
        runs_per_agent: a.runs,
        syncs_per_s: lat.len() as f64 / secs,
        runs_reported_per_s: lat.len() as f64 * a.runs as f64 / secs,
        sync_ms_p50: pct(0.5),
        sync_ms_p99: pct(0.99),
        errors,
        // Clock ticks are 1/100 s on Linux.
        server_cpu_pct: (cpu1.saturating_sub(cpu0)) as f64 / secs,
        server_rss_mib: rss,
        load_average: crate::cmd::bench_submit::load_average(),
    };
    match a.output {
        Output::Json => outln!("{}", json(&row)?),
        Output::Table => outln!(
            "{} agents × {} runs: {:.0} syncs/s ({:.0} runs reported/s), sync p50 {:.1} ms, p99 {:.1} ms, {} errors; server {:.0}% CPU, {:.0} MiB peak RSS; load {:.2}",
            row.agents,
            row.runs_per_agent,
            row.syncs_per_s,
            row.runs_reported_per_s,
            row.sync_ms_p50,
            row.sync_ms_p99,
            row.errors,
            row.server_cpu_pct,
            row.server_rss_mib,
            row.load_average
        ),
    }
    Ok(())
}
