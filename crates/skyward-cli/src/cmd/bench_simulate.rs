//! `skyward bench simulate`: the simulator's throughput on a generated
//! fleet (by default the target: 7 years, 10 million workloads,
//! 50 sites, outages and spot preemptions), each policy run in its own
//! child process so that its peak memory is its own.
//!
//! The scenario is generated as a scenario file and read through the same
//! parser as `skyward simulate` (`--write-scenario` keeps it). Wall-clock
//! time is measured here, at the edge.
#![allow(clippy::disallowed_methods)]

use crate::cmd::bench::{median, peak_rss_mib};
use crate::cmd::bench_submit::load_average;
use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Args)]
pub struct SimulateBenchArgs {
    /// Workloads the scenario's demand draws, in expectation.
    #[arg(long, default_value_t = 10_000_000)]
    pub workloads: u64,
    #[arg(long, default_value_t = 50)]
    pub sites: usize,
    #[arg(long, default_value_t = 7)]
    pub years: u32,
    /// Policies to time (comma-separated).
    #[arg(long = "policy", value_delimiter = ',', default_values_t = vec!["skyward".to_string(), "cheapest-per-task".to_string()])]
    pub policies: Vec<String>,
    /// Timed runs per policy (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the generated scenario in this file (default: a temporary
    /// one, removed).
    #[arg(long)]
    pub write_scenario: Option<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct SimulateOneArgs {
    #[arg(long)]
    pub scenario: PathBuf,
    #[arg(long)]
    pub policy: String,
    #[arg(long)]
    pub seed: u64,
}

/// One timed run, as the child reports it.
#[derive(Serialize, Deserialize, Clone)]
pub struct OneRun {
    pub policy: String,
    pub wall_s: f64,
    pub events: u64,
    pub workloads: u64,
    pub peak_rss_mib: f64,
}

#[derive(Serialize)]
struct PolicyResult {
    policy: String,
    runs: Vec<OneRun>,
    wall_median_s: f64,
    wall_min_s: f64,
    wall_max_s: f64,
    events_per_s_median: f64,
    peak_rss_mib_max: f64,
    /// The 1-minute load average before each run.
    load_before: Vec<f64>,
}

const WORKLOADS_MAX: u64 = 50_000_000;
const SITES_MAX: usize = 10_000;
const REPEATS_MAX: usize = 100;

/// Providers and regions the generated sites cycle through: the first
/// three regions of each are in the US, the last two in the EU.
const REGIONS: [(&str, [&str; 5]); 4] = [
    (
        "aws",
        [
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "eu-west-1",
            "eu-central-1",
        ],
    ),
    (
        "azure",
        [
            "eastus",
            "westus2",
            "southcentralus",
            "westeurope",
            "northeurope",
        ],
    ),
    (
        "gcp",
        [
            "us-central1",
            "us-east4",
            "us-west1",
            "europe-west4",
            "europe-west1",
        ],
    ),
    (
        "oci",
        [
            "us-ashburn-1",
            "us-phoenix-1",
            "us-chicago-1",
            "eu-frankfurt-1",
            "eu-amsterdam-1",
        ],
    ),
];

/// The generated scenario: `sites` sites over four providers (one in
/// five spot, B200 sites arriving in year 2), three streams (train gangs,
/// single-accelerator batch that may use spot, EU-resident serving) whose
/// arrivals grow 20 % a year and add up to `workloads` in expectation,
/// capacity bought each year for the demand at that year's end at 75 %
/// load (so the load runs from 62.5 % to 75 % over a year), a provider-wide outage
/// a year per provider, a two-day regional outage in year 2, and spend
/// commitments on AWS and Azure.
pub fn scenario_yaml(workloads: u64, sites: usize, years: u32) -> String {
    let growth = 0.20_f64;
    let hours_per_year = 8_766.0;
    // Expected arrivals over the horizon at a start rate r0 growing
    // continuously to (1 + g) a year: r0 · ((1 + g)^Y − 1) / ln(1 + g).
    let integral = ((1.0 + growth).powi(years as i32) - 1.0) / (1.0 + growth).ln();
    let r0 = workloads as f64 / (integral * hours_per_year);
    // Shares of arrivals and their mean accelerator-hours: train 20 %
    // (8 × 2 nodes, lognormal median 3 h, σ 1: mean 4.95 h), batch 75 %
    // (1 accelerator, exponential mean 2 h), serve 5 % (8 for 8 h, in
    // the EU).
    let (train, batch, serve) = (0.2 * r0, 0.75 * r0, 0.05 * r0);
    let busy0 = train * 16.0 * 3.0 * 0.5_f64.exp() + batch * 2.0 + serve * 64.0;
    // Sized for 75 % load at the first year's end (demand then is 1 + g
    // times the start's), by the sites there then (B200 sites arrive
    // later, as headroom): on-demand sites take 9 shares, spot 3. Sized
    // for the start instead, the load reached 90 % by each year's end,
    // nearer 100 % of what 16-accelerator gangs can pack, and the queue
    // of the 10M scenario grew without bound.
    let shares: f64 = (0..sites)
        .filter(|i| !is_b200(*i) || years == 1)
        .map(|i| if i % 5 == 4 { 3.0 } else { 9.0 })
        .sum();
    let per_share = busy0 / 0.75 / shares.max(1.0);
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Generated by `skyward bench simulate --workloads {workloads} --sites {sites} --years {years}`."
    );
    let _ = writeln!(y, "name: bench-{workloads}-{sites}");
    let _ = writeln!(y, "start: 2026-01-01\nyears: {years}");
    let _ = writeln!(y, "options:\n  cycle_min_gap_s: 10\nsites:");
    let base_price = [("H100", 6.88), ("H200", 7.90), ("B200", 14.24)];
    for i in 0..sites {
        let (provider, regions) = REGIONS[i % REGIONS.len()];
        let region = regions[(i / REGIONS.len()) % regions.len()];
        let spot = i % 5 == 4;
        let (acc, price) = base_price[(i / 7) % base_price.len()];
        debug_assert_eq!(acc == "B200", is_b200(i));
        let provider_factor = 1.0 + 0.12 * (i % REGIONS.len()) as f64;
        let share = if spot { 3.0 } else { 9.0 };
        // At least two of the largest gangs (2 nodes × 8) fit.
        let cap0 = ((per_share * share * (1.0 + growth)).round() as u64).max(32);
        let _ = writeln!(y, "  - name: s{i:03}-{provider}-{region}-{acc}");
        let _ = writeln!(
            y,
            "    provider: {provider}\n    region: {region}\n    accelerator: {acc}"
        );
        // B200 sites arrive in year 2 with what the others have by then.
        let first = if acc == "B200" && years > 1 { 1 } else { 0 };
        if first > 0 {
            let _ = writeln!(y, "    from: 2027-01-01");
        }
        let cap_at = |k: u32| (cap0 as f64 * (1.0 + growth).powi(k as i32)).round() as u64;
        let _ = writeln!(y, "    accelerators: {}", cap_at(first));
        if years > first + 1 {
            let _ = writeln!(y, "    capacity:");
            for k in first + 1..years {
                let _ = writeln!(
                    y,
                    "      - {{from: {}-01-01, accelerators: {}}}",
                    2026 + k,
                    cap_at(k)
                );
            }
        }
        if spot {
            let _ = writeln!(
                y,
                "    spot: true\n    preemptions_per_hour: 0.05\n    price_usd_per_accelerator_hour: {:.2}",
                price * provider_factor * 0.3
            );
        } else {
            let _ = writeln!(
                y,
                "    price_usd_per_accelerator_hour: {:.2}\n    price_change_pct_per_year: -15",
                price * provider_factor
            );
        }
    }
    let _ = writeln!(
        y,
        "demand:
  - name: train
    kind: train
    arrivals_per_hour: {train}
    growth_pct_per_year: 20
    accelerators: [H100:8, H200:8, B200:8]
    nodes: 2
    hours: {{dist: lognormal, median: 3, sigma: 1}}
    checkpoint_every_hours: 1
    priority: 10
  - name: batch
    kind: batch
    arrivals_per_hour: {batch}
    growth_pct_per_year: 20
    daily_amplitude_pct: 30
    accelerators: [H100:1, H200:1, B200:1]
    hours: {{dist: exponential, mean: 2}}
    spot: allowed
    checkpoint_every_hours: 0.5
  - name: serve
    kind: serve
    arrivals_per_hour: {serve}
    growth_pct_per_year: 20
    accelerators: [H100:8, H200:8]
    residency: eu
    hours: 8
    slo_start_minutes: 10
    priority: 20"
    );
    let _ = writeln!(y, "faults:");
    for (p, regions) in REGIONS.iter().take(sites.min(REGIONS.len())) {
        let _ = writeln!(y, "  - provider: {p}\n    per_year: 1\n    mean_hours: 6");
        if *p == "aws" && years > 1 {
            let _ = writeln!(
                y,
                "  - region: aws:{}\n    at: 2027-03-01\n    hours: 48",
                regions[0]
            );
        }
    }
    // Commitments near a fifth of each provider's expected list spend.
    let spend_year0 = busy0 * hours_per_year * 8.0 / REGIONS.len() as f64;
    let commit = (spend_year0 * integral * 0.2 / 1e6).round().max(1.0) * 1e6;
    let _ = writeln!(y, "contracts:");
    for (p, disc) in [("aws", 15), ("azure", 20)] {
        let _ = writeln!(
            y,
            "  - name: {p}-commit
    kind: spend
    provider: {p}
    start: 2026-01-01
    term_years: {years}
    commit_usd: {commit:.0}
    discount_pct: {disc}
    shortfall: term-end"
        );
    }
    y
}

/// Which generated sites are B200 (the chip that arrives in year 2).
fn is_b200(i: usize) -> bool {
    (i / 7) % 3 == 2
}

pub fn run(a: &SimulateBenchArgs) -> Result<(), CliError> {
    if a.workloads == 0 || a.workloads > WORKLOADS_MAX {
        return Err(CliError::Input(format!(
            "--workloads must be from 1 to {WORKLOADS_MAX}"
        )));
    }
    if a.sites == 0 || a.sites > SITES_MAX {
        return Err(CliError::Input(format!(
            "--sites must be from 1 to {SITES_MAX}"
        )));
    }
    if a.years == 0 || a.years > skyward_sim::scenario::YEARS_MAX {
        return Err(CliError::Input(format!(
            "--years must be from 1 to {}",
            skyward_sim::scenario::YEARS_MAX
        )));
    }
    if a.repeats == 0 || a.repeats > REPEATS_MAX {
        return Err(CliError::Input(format!(
            "--repeats must be from 1 to {REPEATS_MAX}"
        )));
    }
    for p in &a.policies {
        skyward_sim::Policy::parse(p).map_err(|m| CliError::Input(format!("--policy: {m}")))?;
    }
    let text = scenario_yaml(a.workloads, a.sites, a.years);
    let shown = "generated scenario".to_string();
    // Checked here so that a bad generation fails once, not per child.
    skyward_spec::scenario::parse(&text, &shown)?;
    let (path, _tmp) = match &a.write_scenario {
        Some(p) => (p.clone(), None),
        None => {
            let dir = tempfile::tempdir()
                .map_err(|e| CliError::Io(format!("cannot make a temporary folder: {e}")))?;
            (dir.path().join("scenario.yaml"), Some(dir))
        }
    };
    std::fs::write(&path, &text)
        .map_err(|e| CliError::Io(format!("{}: cannot write: {e}", path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Io(format!("cannot find own executable: {e}")))?;
    let mut results = Vec::new();
    let total = a.policies.len() * a.repeats;
    let mut k = 0;
    for p in &a.policies {
        let mut runs = Vec::new();
        let mut loads = Vec::new();
        for _ in 0..a.repeats {
            k += 1;
            let load = load_average();
            eprintln!(
                "[{k}/{total}] {p}: {} workloads, {} sites, {} years (load {load:.2}) …",
                a.workloads, a.sites, a.years
            );
            let out = Command::new(&exe)
                .args(["bench", "simulate-one", "--policy", p, "--seed"])
                .arg(a.seed.to_string())
                .arg("--scenario")
                .arg(&path)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| CliError::Io(format!("cannot run benchmark child: {e}")))?;
            if !out.status.success() {
                return Err(CliError::Internal(format!(
                    "benchmark child failed with {}",
                    out.status
                )));
            }
            let r: OneRun = serde_json::from_slice(&out.stdout)
                .map_err(|e| CliError::Internal(format!("benchmark child output: {e}")))?;
            eprintln!(
                "      {:.2} s, {} events ({:.0}/s), {} workloads, peak RSS {:.1} MiB",
                r.wall_s,
                r.events,
                r.events as f64 / r.wall_s.max(1e-9),
                r.workloads,
                r.peak_rss_mib
            );
            loads.push(load);
            runs.push(r);
        }
        let mut walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
        let mut rates: Vec<f64> = runs
            .iter()
            .map(|r| r.events as f64 / r.wall_s.max(1e-9))
            .collect();
        results.push(PolicyResult {
            policy: p.clone(),
            wall_min_s: walls.iter().copied().fold(f64::INFINITY, f64::min),
            wall_max_s: walls.iter().copied().fold(0.0, f64::max),
            wall_median_s: median(&mut walls),
            events_per_s_median: median(&mut rates),
            peak_rss_mib_max: runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
            load_before: loads,
            runs,
        });
    }
    match a.output {
        Output::Json => outln!("{}", json(&results)?),
        Output::Table => {
            let mut t = Table::new(&[
                "POLICY",
                "RUNS>",
                "WALL MEDIAN S>",
                "MIN S>",
                "MAX S>",
                "EVENTS>",
                "EVENTS/S>",
                "WORKLOADS>",
                "PEAK RSS MIB>",
                "LOAD BEFORE",
            ]);
            for r in &results {
                let first = r.runs.first();
                t.row(vec![
                    r.policy.clone(),
                    r.runs.len().to_string(),
                    format!("{:.2}", r.wall_median_s),
                    format!("{:.2}", r.wall_min_s),
                    format!("{:.2}", r.wall_max_s),
                    first.map_or(0, |x| x.events).to_string(),
                    format!("{:.0}", r.events_per_s_median),
                    first.map_or(0, |x| x.workloads).to_string(),
                    format!("{:.1}", r.peak_rss_mib_max),
                    r.load_before
                        .iter()
                        .map(|l| format!("{l:.2}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

/// One policy's run in this process, progress on stderr, the timing as
/// JSON on stdout.
pub fn run_one(a: &SimulateOneArgs) -> Result<(), CliError> {
    let sc = crate::cmd::simulate::load(&a.scenario)?;
    let policy = skyward_sim::Policy::parse(&a.policy)
        .map_err(|m| CliError::Input(format!("--policy: {m}")))?;
    let mut progress = crate::cmd::simulate::progress_printer(false);
    let t0 = Instant::now();
    let r = skyward_sim::run(&sc, &policy, a.seed, &mut progress);
    let wall_s = t0.elapsed().as_secs_f64();
    outln!(
        "{}",
        json(&OneRun {
            policy: r.policy.clone(),
            wall_s,
            events: r.events,
            workloads: r.workloads,
            peak_rss_mib: peak_rss_mib(),
        })?
    );
    Ok(())
}
