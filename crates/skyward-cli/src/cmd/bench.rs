//! `skyward bench plan`: seeded random fleets over the full built-in
//! catalog (quotas, reserved pools, two contracts), planned end to end.
//! Each size runs in a child process so its peak memory is its own.
//!
//! Wall-clock time is measured here, at the edge; the core never reads a
//! clock.
#![allow(clippy::disallowed_methods)]

use crate::cmd::plan::MethodArg;
use crate::error::{json, CliError};
use crate::table::Table;
use crate::{load_catalog, Common, Output};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use skyward_placement::generate::{fleet, GenSettings};
use skyward_placement::{plan, ExplainScope, Method, PlanOptions};
use std::process::Command;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Plan seeded random fleets of several sizes; report time, memory and gap.
    Plan(PlanBenchArgs),
    /// One size in this process (used by `bench plan`).
    #[command(hide = true)]
    PlanOne(PlanOneArgs),
}

#[derive(Args)]
pub struct PlanBenchArgs {
    /// Fleet sizes (workloads), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100usize, 200, 1000, 10000])]
    pub sizes: Vec<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Timed runs per size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Solver(s) to run, comma-separated; each size runs once per method.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![MethodArg::Auto])]
    pub method: Vec<MethodArg>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct PlanOneArgs {
    #[arg(long)]
    pub size: usize,
    #[arg(long)]
    pub seed: u64,
    #[arg(long)]
    pub repeats: usize,
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct OneResult {
    pub workloads: usize,
    pub seed: u64,
    pub times_ms: Vec<f64>,
    pub median_ms: f64,
    pub peak_rss_mib: f64,
    pub total_cost_usd: f64,
    pub lower_bound_usd: f64,
    pub gap_pct: f64,
    pub method: String,
    pub proven_optimal: bool,
    pub placed: usize,
    pub infeasible: usize,
    pub options: usize,
    pub coupling_rows: usize,
}

const SIZE_MAX: usize = 200_000;
const REPEATS_MAX: usize = 100;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn plan_one(a: &PlanOneArgs) -> Result<(), CliError> {
    let catalog = load_catalog(&a.common)?;
    let f = fleet(&catalog, a.seed, &GenSettings { workloads: a.size, coupling: true, constraints: true });
    let method = match a.method {
        MethodArg::Auto => Method::Auto,
        MethodArg::Exact => Method::Exact,
        MethodArg::Lagrangian => Method::Lagrangian,
    };
    let opts = PlanOptions { method, explain: ExplainScope::None, ..PlanOptions::default() };
    let mut times = Vec::with_capacity(a.repeats);
    let mut last = None;
    for _ in 0..a.repeats.max(1) {
        let t0 = Instant::now();
        let p = plan(&f, &catalog, &opts);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        last = Some(p);
    }
    let Some(p) = last else { return Err(CliError::Internal("no run".into())) };
    let mut sorted = times.clone();
    let r = OneResult {
        workloads: a.size,
        seed: a.seed,
        median_ms: median(&mut sorted),
        times_ms: times,
        peak_rss_mib: peak_rss_mib(),
        total_cost_usd: p.total_cost_usd.as_f64(),
        lower_bound_usd: p.lower_bound_usd.as_f64(),
        gap_pct: p.gap_pct,
        method: p.solver.method.clone(),
        proven_optimal: p.solver.proven_optimal,
        placed: p.placed,
        infeasible: p.infeasible,
        options: p.solver.options,
        coupling_rows: p.solver.coupling_rows,
    };
    println!("{}", json(&r)?);
    Ok(())
}

fn plan_bench(a: &PlanBenchArgs) -> Result<(), CliError> {
    if a.sizes.is_empty() || a.sizes.iter().any(|s| *s == 0 || *s > SIZE_MAX) {
        return Err(CliError::Input(format!("--sizes: each size must be from 1 to {SIZE_MAX}")));
    }
    if a.repeats == 0 || a.repeats > REPEATS_MAX {
        return Err(CliError::Input(format!("--repeats must be from 1 to {REPEATS_MAX}")));
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Io(format!("cannot find own executable: {e}")))?;
    let mut results = Vec::new();
    let runs: Vec<(usize, MethodArg)> = a.sizes.iter().flat_map(|s| a.method.iter().map(move |m| (*s, *m))).collect();
    for (i, (size, method)) in runs.iter().enumerate() {
        let m = format!("{method:?}").to_ascii_lowercase();
        eprintln!("[{}/{}] planning {} workloads x {} runs, method {m} (seed {}) …", i + 1, runs.len(), size, a.repeats, a.seed);
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "plan-one", "--size", &size.to_string(), "--seed", &a.seed.to_string(), "--repeats", &a.repeats.to_string(), "--method", &m, "--output", "json"]);
        if let Some(c) = &a.common.catalog {
            cmd.arg("--catalog").arg(c);
        }
        let out = cmd.output().map_err(|e| CliError::Io(format!("cannot run benchmark child: {e}")))?;
        if !out.status.success() {
            return Err(CliError::Internal(format!("benchmark child failed: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let r: OneResult = serde_json::from_slice(&out.stdout).map_err(|e| CliError::Internal(format!("benchmark child output: {e}")))?;
        eprintln!("      median {:.1} ms, peak RSS {:.1} MiB, gap {:.4}% ({})", r.median_ms, r.peak_rss_mib, r.gap_pct, r.method);
        results.push(r);
    }
    match a.common.output {
        Output::Json => println!("{}", json(&results)?),
        Output::Table => {
            let mut t = Table::new(&["WORKLOADS>", "MEDIAN MS>", "MIN MS>", "MAX MS>", "PEAK RSS MIB>", "GAP %>", "PROVEN OPTIMAL", "METHOD", "OPTIONS>", "PLACED>", "INFEASIBLE>"]);
            for r in &results {
                let min = r.times_ms.iter().copied().fold(f64::INFINITY, f64::min);
                let max = r.times_ms.iter().copied().fold(0.0, f64::max);
                t.row(vec![
                    r.workloads.to_string(),
                    format!("{:.1}", r.median_ms),
                    format!("{min:.1}"),
                    format!("{max:.1}"),
                    format!("{:.1}", r.peak_rss_mib),
                    format!("{:.4}", r.gap_pct),
                    if r.proven_optimal { "yes" } else { "no" }.into(),
                    r.method.clone(),
                    r.options.to_string(),
                    r.placed.to_string(),
                    r.infeasible.to_string(),
                ]);
            }
            print!("{}", t.render());
        }
    }
    Ok(())
}

pub fn run(b: &BenchCommand) -> Result<(), CliError> {
    match b {
        BenchCommand::Plan(a) => plan_bench(a),
        BenchCommand::PlanOne(a) => plan_one(a),
    }
}
