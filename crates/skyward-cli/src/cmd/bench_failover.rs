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
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Serialize)]
struct SlurmRow {
    jobs: usize,
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
    let mut ex = SlurmExecutor::new(
        &format!("bench{}", std::process::id()),
        dir.path(),
        u32::MAX,
        Slurm {
            conf: a.slurm_conf.clone(),
            run_as: None,
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
        submit_per_s: a.jobs as f64 / submit_s.max(1e-9),
        submit_ms_p50: lat[lat.len() / 2],
        submit_ms_p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        all_done_s: t0.elapsed().as_secs_f64(),
    };
    match a.output {
        Output::Json => outln!("{}", json(&row)?),
        Output::Table => outln!(
            "{} jobs: {:.0} submissions/s through sbatch (p50 {:.1} ms, p99 {:.1} ms each); all ended after {:.1} s",
            row.jobs,
            row.submit_per_s,
            row.submit_ms_p50,
            row.submit_ms_p99,
            row.all_done_s
        ),
    }
    Ok(())
}
