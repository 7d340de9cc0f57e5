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
use skyward_placement::generate::{fleet, tight_fleet, GenSettings};
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
    /// Ledger: generate a year of hourly FOCUS rows, import them, time `status`.
    Ledger(LedgerBenchArgs),
    /// Control-plane core: one scheduling cycle over many pending workloads.
    Core(CoreBenchArgs),
    /// Control-plane core: re-placing the work of a lost site (1, 100 and
    /// 10,000 workloads by default).
    Failover(crate::cmd::bench_failover::FailoverBenchArgs),
    /// Slurm dispatch throughput through sbatch (needs a cluster).
    Slurm(crate::cmd::bench_failover::SlurmBenchArgs),
    /// Agent syncs (heartbeats with their runs) one server answers.
    Agents(crate::cmd::bench_failover::AgentsBenchArgs),
    /// Control-plane server: submissions per second through the HTTP API
    /// (SQLite, and PostgreSQL when given), durable writes.
    Submit(crate::cmd::bench_submit::SubmitBenchArgs),
    /// Control-plane server: submit-to-start latency on an idle server with
    /// free capacity (from the server's own timestamps).
    Start(crate::cmd::bench_submit::StartBenchArgs),
    /// Inference gateway: added latency against direct and nginx, highest
    /// sustained rate, CPU per request, memory, streaming TTFT.
    Gateway(crate::cmd::bench_gateway::GatewayBenchArgs),
    /// Simulator: 7 years, 10 million workloads, 50 sites by default, each
    /// policy timed in its own process (wall time, events/s, peak memory).
    Simulate(crate::cmd::bench_simulate::SimulateBenchArgs),
    /// Dashboard: each page's data requests and the first render's
    /// critical path at 100,000 stored workloads and 5 million ledger rows;
    /// page weight.
    Dashboard(crate::cmd::bench_dashboard::DashboardBenchArgs),
    /// One timed simulator run (used by `bench simulate`).
    #[command(hide = true)]
    SimulateOne(crate::cmd::bench_simulate::SimulateOneArgs),
    /// The open-loop load generator `bench gateway` runs (pinned).
    #[command(hide = true)]
    GatewayLoad(crate::cmd::bench_gateway::LoadArgs),
}

#[derive(Args)]
pub struct CoreBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub pending: usize,
    #[arg(long, default_value_t = 50)]
    pub sites: usize,
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct LedgerBenchArgs {
    /// Days of data (365 for a year).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Usage rows per SKU per hour (143 gives ~5 million rows a year).
    #[arg(long, default_value_t = 143)]
    pub rows_per_hour: u32,
    /// Timed `status` runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Days of hourly history for the timed `backtest` (1,095: three years;
    /// 0 skips it).
    #[arg(long, default_value_t = 1_095)]
    pub backtest_days: u32,
    /// Keep the generated file and database in this folder (default: a temporary one, removed).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
    /// Fleet shape: `mixed` (the whole catalog, loose coupling) or `tight`
    /// (GPU gangs competing for quotas that fit ~85 % of demand).
    #[arg(long, value_enum, default_value_t = FleetShape::Mixed)]
    pub fleet: FleetShape,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetShape {
    Mixed,
    Tight,
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
    #[arg(long, value_enum, default_value_t = FleetShape::Mixed)]
    pub fleet: FleetShape,
    /// Also write the solver's problem (options, rows, contracts) as JSON,
    /// for checking against another solver (scripts/plan-vs-highs.py).
    #[arg(long)]
    pub export: Option<std::path::PathBuf>,
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
    /// Proven: no plan places more.
    pub max_placeable: usize,
    pub infeasible: usize,
    pub options: usize,
    pub coupling_rows: usize,
}

const SIZE_MAX: usize = 200_000;
const REPEATS_MAX: usize = 100;

pub fn median(v: &mut [f64]) -> f64 {
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

pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// VmHWM of a process (`self` or a pid), in MiB; 0 if unreadable.
pub fn peak_rss_mib_of(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn plan_one(a: &PlanOneArgs) -> Result<(), CliError> {
    let catalog = load_catalog(&a.common)?;
    let f = match a.fleet {
        FleetShape::Mixed => fleet(
            &catalog,
            a.seed,
            &GenSettings {
                workloads: a.size,
                coupling: true,
                constraints: true,
            },
        ),
        FleetShape::Tight => tight_fleet(&catalog, a.seed, a.size),
    };
    if let Some(path) = &a.export {
        let pr = skyward_placement::plan::problem_of(&f, &catalog);
        std::fs::write(path, json(&pr)?)
            .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    }
    let method = match a.method {
        MethodArg::Auto => Method::Auto,
        MethodArg::Exact => Method::Exact,
        MethodArg::Lagrangian => Method::Lagrangian,
    };
    let opts = PlanOptions {
        method,
        explain: ExplainScope::None,
        ..PlanOptions::default()
    };
    let mut times = Vec::with_capacity(a.repeats);
    let mut last = None;
    for _ in 0..a.repeats.max(1) {
        let t0 = Instant::now();
        let p = plan(&f, &catalog, &opts);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        last = Some(p);
    }
    let Some(p) = last else {
        return Err(CliError::Internal("no run".into()));
    };
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
        max_placeable: p.max_placeable,
        infeasible: p.infeasible,
        options: p.solver.options,
        coupling_rows: p.solver.coupling_rows,
    };
    outln!("{}", json(&r)?);
    Ok(())
}

fn plan_bench(a: &PlanBenchArgs) -> Result<(), CliError> {
    if a.sizes.is_empty() || a.sizes.iter().any(|s| *s == 0 || *s > SIZE_MAX) {
        return Err(CliError::Input(format!(
            "--sizes: each size must be from 1 to {SIZE_MAX}"
        )));
    }
    if a.repeats == 0 || a.repeats > REPEATS_MAX {
        return Err(CliError::Input(format!(
            "--repeats must be from 1 to {REPEATS_MAX}"
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Io(format!("cannot find own executable: {e}")))?;
    let mut results = Vec::new();
    let runs: Vec<(usize, MethodArg)> = a
        .sizes
        .iter()
        .flat_map(|s| a.method.iter().map(move |m| (*s, *m)))
        .collect();
    for (i, (size, method)) in runs.iter().enumerate() {
        let m = format!("{method:?}").to_ascii_lowercase();
        eprintln!(
            "[{}/{}] planning {} workloads ({:?} fleet) x {} runs, method {m} (seed {}) …",
            i + 1,
            runs.len(),
            size,
            a.fleet,
            a.repeats,
            a.seed
        );
        let mut cmd = Command::new(&exe);
        cmd.args([
            "bench",
            "plan-one",
            "--size",
            &size.to_string(),
            "--seed",
            &a.seed.to_string(),
            "--repeats",
            &a.repeats.to_string(),
            "--method",
            &m,
            "--fleet",
            if a.fleet == FleetShape::Tight {
                "tight"
            } else {
                "mixed"
            },
            "--output",
            "json",
        ]);
        if let Some(c) = &a.common.catalog {
            cmd.arg("--catalog").arg(c);
        }
        let out = cmd
            .output()
            .map_err(|e| CliError::Io(format!("cannot run benchmark child: {e}")))?;
        if !out.status.success() {
            return Err(CliError::Internal(format!(
                "benchmark child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let r: OneResult = serde_json::from_slice(&out.stdout)
            .map_err(|e| CliError::Internal(format!("benchmark child output: {e}")))?;
        eprintln!(
            "      median {:.1} ms, peak RSS {:.1} MiB, gap {:.4}% ({})",
            r.median_ms, r.peak_rss_mib, r.gap_pct, r.method
        );
        results.push(r);
    }
    match a.common.output {
        Output::Json => outln!("{}", json(&results)?),
        Output::Table => {
            let mut t = Table::new(&[
                "WORKLOADS>",
                "MEDIAN MS>",
                "MIN MS>",
                "MAX MS>",
                "PEAK RSS MIB>",
                "GAP %>",
                "PROVEN OPTIMAL",
                "METHOD",
                "OPTIONS>",
                "PLACED>",
                "MAX PLACEABLE>",
                "INFEASIBLE>",
            ]);
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
                    r.max_placeable.to_string(),
                    r.infeasible.to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

pub fn run(b: &BenchCommand) -> Result<(), CliError> {
    match b {
        BenchCommand::Plan(a) => plan_bench(a),
        BenchCommand::PlanOne(a) => plan_one(a),
        BenchCommand::Ledger(a) => ledger_bench(a),
        BenchCommand::Core(a) => core_bench(a),
        BenchCommand::Failover(a) => crate::cmd::bench_failover::run(a),
        BenchCommand::Slurm(a) => crate::cmd::bench_failover::run_slurm(a),
        BenchCommand::Agents(a) => crate::cmd::bench_failover::run_agents(a),
        BenchCommand::Submit(a) => crate::cmd::bench_submit::run(a),
        BenchCommand::Start(a) => crate::cmd::bench_submit::start_latency(a),
        BenchCommand::Gateway(a) => crate::cmd::bench_gateway::run(a),
        BenchCommand::GatewayLoad(a) => crate::cmd::bench_gateway::load(a),
        BenchCommand::Simulate(a) => crate::cmd::bench_simulate::run(a),
        BenchCommand::Dashboard(a) => crate::cmd::bench_dashboard::run(a),
        BenchCommand::SimulateOne(a) => crate::cmd::bench_simulate::run_one(a),
    }
}

#[derive(Serialize)]
struct LedgerBenchResult {
    rows: u64,
    file_mib: f64,
    generate_s: f64,
    import_s: f64,
    import_rows_per_s: f64,
    buckets: i64,
    db_mib: f64,
    status_ms: Vec<f64>,
    status_median_ms: f64,
    import_peak_rss_mib: f64,
    backtest_hours: u64,
    backtest_s: Vec<f64>,
    backtest_median_s: f64,
}

fn ledger_bench(a: &LedgerBenchArgs) -> Result<(), CliError> {
    use crate::cmd::ledger;
    if a.repeats == 0 || a.repeats > REPEATS_MAX {
        return Err(CliError::Input(format!(
            "--repeats must be from 1 to {REPEATS_MAX}"
        )));
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| CliError::Io(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("skyward-bench-ledger-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).map_err(|e| CliError::Io(e.to_string()))?;
            tmp.clone()
        }
    };
    let csv = dir.join("focus.csv");
    let db = dir.join("ledger.db");
    for f in [&db, &dir.join("ledger.db-wal"), &dir.join("ledger.db-shm")] {
        let _ = std::fs::remove_file(f);
    }
    let contracts = dir.join("contracts.yaml");
    std::fs::write(&contracts, BENCH_CONTRACTS).map_err(|e| CliError::Io(e.to_string()))?;
    eprintln!(
        "[1/3] generating {} days x {} rows/SKU/hour …",
        a.days, a.rows_per_hour
    );
    let t0 = Instant::now();
    let rows = ledger::generate(&ledger::GenerateArgs {
        start: "2026-01-01".into(),
        days: a.days,
        rows_per_hour: a.rows_per_hour,
        growth_pct: 20.0,
        seed: 7,
        out: csv.clone(),
    })?;
    let generate_s = t0.elapsed().as_secs_f64();
    let file_mib = std::fs::metadata(&csv)
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);
    eprintln!("[2/3] importing {rows} rows ({file_mib:.0} MiB) …");
    let exe = std::env::current_exe().map_err(|e| CliError::Io(e.to_string()))?;
    let t1 = Instant::now();
    let out = Command::new(&exe)
        .args(["ledger", "import"])
        .arg(&csv)
        .arg("--db")
        .arg(&db)
        .args(["--output", "json"])
        .output()
        .map_err(|e| CliError::Io(e.to_string()))?;
    let import_s = t1.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(CliError::Internal(format!(
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| CliError::Internal(e.to_string()))?;
    eprintln!("[3/3] timing status x {} …", a.repeats);
    let mut times = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        let o = Command::new(&exe)
            .args(["ledger", "status", "--contracts"])
            .arg(&contracts)
            .arg("--db")
            .arg(&db)
            .args(["--output", "json"])
            .output()
            .map_err(|e| CliError::Io(e.to_string()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if !o.status.success() {
            return Err(CliError::Internal(format!(
                "status failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )));
        }
    }
    // Backtest over `backtest_days` of hourly history (one row per SKU per
    // hour), in its own database.
    let (mut bt_times, mut bt_hours) = (Vec::new(), 0u64);
    if a.backtest_days > 0 {
        let bt_csv = dir.join("backtest.csv");
        let bt_db = dir.join("backtest.db");
        for f in [
            &bt_db,
            &dir.join("backtest.db-wal"),
            &dir.join("backtest.db-shm"),
        ] {
            let _ = std::fs::remove_file(f);
        }
        eprintln!(
            "[4/4] backtest over {} days of hourly history x {} …",
            a.backtest_days, a.repeats
        );
        ledger::generate(&ledger::GenerateArgs {
            start: "2024-01-01".into(),
            days: a.backtest_days,
            rows_per_hour: 1,
            growth_pct: 20.0,
            seed: 11,
            out: bt_csv.clone(),
        })?;
        let imp = Command::new(&exe)
            .args(["ledger", "import"])
            .arg(&bt_csv)
            .arg("--db")
            .arg(&bt_db)
            .output()
            .map_err(|e| CliError::Io(e.to_string()))?;
        if !imp.status.success() {
            return Err(CliError::Internal(format!(
                "backtest import failed: {}",
                String::from_utf8_lossy(&imp.stderr)
            )));
        }
        for _ in 0..a.repeats {
            let t = Instant::now();
            let o = Command::new(&exe)
                .args([
                    "ledger",
                    "backtest",
                    "--provider",
                    "aws",
                    "--discount-pct",
                    "28",
                    "--db",
                ])
                .arg(&bt_db)
                .args(["--output", "json"])
                .output()
                .map_err(|e| CliError::Io(e.to_string()))?;
            bt_times.push(t.elapsed().as_secs_f64());
            if !o.status.success() {
                return Err(CliError::Internal(format!(
                    "backtest failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                )));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&o.stdout).map_err(|e| CliError::Internal(e.to_string()))?;
            bt_hours = v["history_hours"].as_u64().unwrap_or(0);
        }
    }
    let mut bt_sorted = bt_times.clone();
    let mut sorted = times.clone();
    let r = LedgerBenchResult {
        backtest_hours: bt_hours,
        backtest_median_s: if bt_sorted.is_empty() {
            0.0
        } else {
            median(&mut bt_sorted)
        },
        backtest_s: bt_times,
        rows,
        file_mib,
        generate_s,
        import_s,
        import_rows_per_s: rows as f64 / import_s,
        buckets: report["buckets"].as_i64().unwrap_or(0),
        db_mib: std::fs::metadata(&db)
            .map(|m| m.len() as f64 / 1048576.0)
            .unwrap_or(0.0),
        status_median_ms: median(&mut sorted),
        status_ms: times,
        import_peak_rss_mib: report["peak_rss_mib"].as_f64().unwrap_or(0.0),
    };
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match a.output {
        Output::Json => outln!("{}", json(&r)?),
        Output::Table => {
            let mut t = Table::new(&[
                "ROWS>",
                "FILE MIB>",
                "IMPORT S>",
                "IMPORT ROWS/S>",
                "IMPORT PEAK RSS MIB>",
                "BUCKETS>",
                "DB MIB>",
                "STATUS MEDIAN MS>",
                "STATUS MIN MS>",
                "STATUS MAX MS>",
                "BACKTEST HOURS>",
                "BACKTEST MEDIAN S>",
            ]);
            t.row(vec![
                r.rows.to_string(),
                format!("{:.0}", r.file_mib),
                format!("{:.2}", r.import_s),
                format!("{:.0}", r.import_rows_per_s),
                format!("{:.1}", r.import_peak_rss_mib),
                r.buckets.to_string(),
                format!("{:.1}", r.db_mib),
                format!("{:.1}", r.status_median_ms),
                format!(
                    "{:.1}",
                    r.status_ms.iter().copied().fold(f64::INFINITY, f64::min)
                ),
                format!("{:.1}", r.status_ms.iter().copied().fold(0.0, f64::max)),
                r.backtest_hours.to_string(),
                format!("{:.2}", r.backtest_median_s),
            ]);
            out!("{}", t.render());
        }
    }
    Ok(())
}

const BENCH_CONTRACTS: &str = "contracts:
  - {name: aws-edp, kind: spend, provider: aws, start: 2026-01-01, term_months: 84, commit_usd: 38000000000, discount_pct: 12}
  - {name: azure-macc, kind: spend, provider: azure, start: 2026-01-01, term_months: 84, commit_usd: 50000000000, discount_pct: 18}
  - {name: aws-compute-sp, kind: hourly, provider: aws, instrument: aws-compute-savings-plan, start: 2026-01-01, term_years: 3, commit_usd_per_hour: 400, discount_pct: 28, commitment_id: 'arn:aws:savingsplans::123456789012:savingsplan/skyward-demo'}
  - {name: gcp-cud, kind: hourly, provider: gcp, instrument: gcp-flexible-cud, start: 2026-01-01, term_years: 1, commit_usd_per_hour: 500, discount_pct: 28}
  - {name: azure-gb200, kind: capacity, provider: azure, region: eastus, sku: Standard_ND128isr_NDR_GB200_v6, units: 72, rate_usd_per_unit_hour: 42, start: 2026-01-01, term_months: 36}
";

#[derive(Serialize)]
struct CoreBenchResult {
    pending: usize,
    sites: usize,
    /// Cycles over full sites (every pending workload gets a reason).
    cycle_ms: Vec<f64>,
    cycle_median_ms: f64,
    dispatched_first_cycle: usize,
    /// The first cycle (empty sites: the global assignment places what
    /// fits), and its report: cost, proven bound, method.
    first_cycle_ms: f64,
    first_cycle_times_ms: Vec<f64>,
    first_cycle: Option<skyward_core::core::CycleReport>,
    /// Cycles after some runs end (a fifth of the sites get room back):
    /// the global step re-solves only what the freed room can take.
    refill_ms: Vec<f64>,
    refill_median_ms: f64,
    refill_placed: Vec<usize>,
    /// Gap of each refill cycle's plan to its proven bound, percent.
    refill_gap_pct: Vec<f64>,
    peak_rss_mib: f64,
}

/// A cycle over `pending` workloads and `sites` sites that are full, so
/// every cycle considers every pending workload against every site (the
/// worst case); plus the first cycle, which places what fits.
fn core_bench(a: &CoreBenchArgs) -> Result<(), CliError> {
    use skyward_core::{Config, Core, Input, JobSpec, SiteSpec, WorkloadId};
    use skyward_model::rng::SplitMix64;
    use skyward_model::{AcceleratorRequest, RegionKey, Usd};
    if a.pending == 0
        || a.pending > 2_000_000
        || a.sites == 0
        || a.sites > 10_000
        || a.repeats == 0
        || a.repeats > REPEATS_MAX
    {
        return Err(CliError::Input(
            "--pending 1..2e6, --sites 1..10000, --repeats 1..100".into(),
        ));
    }
    let mut rng = SplitMix64::new(a.seed);
    let regions = [
        ("aws", "us-east-1"),
        ("aws", "eu-west-1"),
        ("gcp", "us-central1"),
        ("gcp", "europe-west4"),
        ("azure", "eastus"),
        ("oci", "us-ashburn-1"),
        ("lambda", "us-east-1"),
    ];
    let models = ["H100", "H200", "A100", "B200", "L4"];
    let mut core = Core::new(Config {
        workloads_max: a.pending + 10,
        ..Config::default()
    });
    for i in 0..a.sites {
        let (p, r) = regions[i % regions.len()];
        let spec = SiteSpec {
            name: format!("site-{i:03}"),
            region: RegionKey::new(p, r),
            accelerator: models[i % models.len()].to_string(),
            accelerators: 64,
            price_usd_per_accelerator_hour: Usd::from_dollars(2 + (i % 7) as i64),
            spot: false,
            prepaid: false,
        };
        core.handle(
            0,
            Input::RegisterSite {
                spec,
                running: vec![],
            },
        )
        .map_err(|e| CliError::Internal(format!("{e:?}")))?;
    }
    for i in 0..a.pending {
        let m = models[rng.below(models.len())];
        let spec = JobSpec {
            name: format!("w{i}"),
            accelerators: vec![AcceleratorRequest {
                name: m.to_string(),
                count: 8,
            }],
            nodes: 1 + rng.below(4) as u32,
            priority: rng.below(5) as i32,
            providers: Vec::new(),
            regions: Vec::new(),
            residency: if rng.below(5) == 0 {
                vec!["eu".into()]
            } else {
                Vec::new()
            },
            compliance: Vec::new(),
            hours: None,
            max_runtime_ms: None,
            preemptible: false,
            team: String::new(),
            spot: skyward_model::SpotPolicy::Never,
            recovery: Default::default(),
            no_variant: Vec::new(),
            throughput: Default::default(),
        };
        core.handle(
            0,
            Input::Submit {
                id: WorkloadId(i as u64),
                spec,
            },
        )
        .map_err(|e| CliError::Internal(format!("{e:?}")))?;
    }
    // Two providers with commitments forecast to fall short, so the
    // global step prices with live commitments.
    core.handle(
        0,
        Input::Commitments {
            live: vec![
                skyward_core::LiveCommitment {
                    name: "azure-macc".into(),
                    provider: "azure".into(),
                    discount_pct: 18.0,
                    free_usd: Usd::from_dollars(20_000),
                },
                skyward_core::LiveCommitment {
                    name: "gcp-cud".into(),
                    provider: "gcp".into(),
                    discount_pct: 28.0,
                    free_usd: Usd::from_dollars(5_000),
                },
            ],
        },
    )
    .map_err(|e| CliError::Internal(format!("{e:?}")))?;
    while core.poll_command().is_some() {}
    // First cycle: places what fits, leaving every site full. Timed on
    // `repeats` copies of the same core (the last one goes on).
    let mut first_times = Vec::new();
    for _ in 1..a.repeats {
        let mut copy = core.clone();
        let t0 = Instant::now();
        copy.handle_timeout(0);
        first_times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let t0 = Instant::now();
    core.handle_timeout(0);
    first_times.push(t0.elapsed().as_secs_f64() * 1e3);
    let first_cycle_ms = median(&mut first_times.clone());
    let first_cycle = core.last_cycle().cloned();
    // Everything dispatched starts at once: (id, site, attempt).
    let mut running: Vec<(WorkloadId, String, u32)> = Vec::new();
    let take_dispatches =
        |core: &mut Core, running: &mut Vec<(WorkloadId, String, u32)>, t: u64| {
            let mut n = 0;
            let mut new = Vec::new();
            while let Some(c) = core.poll_command() {
                if let skyward_core::Command::Dispatch {
                    id, site, attempt, ..
                } = c
                {
                    new.push((id, site, attempt));
                    n += 1;
                }
            }
            for (id, site, attempt) in new {
                let _ = core.handle(
                    t,
                    Input::Started {
                        id,
                        site: site.clone(),
                        attempt,
                    },
                );
                running.push((id, site, attempt));
            }
            while core.poll_command().is_some() {}
            n
        };
    let dispatched = take_dispatches(&mut core, &mut running, 0);
    eprintln!(
        "first cycle: {dispatched} placed in {first_cycle_ms:.0} ms; timing {} cycles after runs end …",
        a.repeats
    );
    let mut refill_ms = Vec::new();
    let mut refill_placed = Vec::new();
    let mut refill_gap_pct = Vec::new();
    let mut t_refill = 0;
    for _ in 0..a.repeats {
        t_refill += 1_000;
        for i in 0..a.sites {
            let _ = core.handle(
                t_refill,
                Input::Heartbeat {
                    site: format!("site-{i:03}"),
                },
            );
        }
        // A fifth of the sites: their oldest run ends.
        for j in (0..a.sites).step_by(5) {
            let name = format!("site-{j:03}");
            if let Some(k) = running.iter().position(|r| r.1 == name) {
                let (id, site, attempt) = running.remove(k);
                let _ = core.handle(
                    t_refill,
                    Input::Finished {
                        id,
                        site,
                        attempt,
                        success: true,
                        ended_at: None,
                    },
                );
            }
        }
        while core.poll_command().is_some() {}
        let t0 = Instant::now();
        core.handle_timeout(t_refill + a.sites as u64);
        refill_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Some(r) = core.last_cycle() {
            refill_gap_pct.push(if r.cost_usd > 0.0 {
                100.0 * (r.cost_usd - r.bound_usd).max(0.0) / r.cost_usd
            } else {
                0.0
            });
        }
        refill_placed.push(take_dispatches(
            &mut core,
            &mut running,
            t_refill + a.sites as u64,
        ));
    }
    eprintln!(
        "first cycle dispatched {dispatched}; timing {} full cycles over {} pending …",
        a.repeats,
        core.pending_count()
    );
    let mut times = Vec::new();
    let mut t_ms = t_refill + 10_000;
    for _ in 0..a.repeats {
        t_ms += 1_000;
        // Keep sites alive and force a cycle.
        for i in 0..a.sites {
            let _ = core.handle(
                t_ms,
                Input::Heartbeat {
                    site: format!("site-{i:03}"),
                },
            );
        }
        let _ = core.handle(
            t_ms,
            Input::Submit {
                id: WorkloadId(u64::MAX - t_ms),
                spec: JobSpec {
                    name: "kick".into(),
                    accelerators: vec![AcceleratorRequest {
                        name: "H100".into(),
                        count: 8,
                    }],
                    nodes: 100,
                    priority: 0,
                    providers: vec![],
                    regions: vec![],
                    residency: vec![],
                    compliance: vec![],
                    hours: None,
                    max_runtime_ms: None,
                    preemptible: false,
                    team: String::new(),
                    spot: skyward_model::SpotPolicy::Never,
                    recovery: Default::default(),
                    no_variant: Vec::new(),
                    throughput: Default::default(),
                },
            },
        );
        let t0 = Instant::now();
        core.handle_timeout(t_ms);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        while core.poll_command().is_some() {}
    }
    let mut sorted = times.clone();
    let mut refill_sorted = refill_ms.clone();
    let r = CoreBenchResult {
        pending: core.pending_count(),
        sites: a.sites,
        cycle_median_ms: median(&mut sorted),
        cycle_ms: times,
        dispatched_first_cycle: dispatched,
        first_cycle_ms,
        first_cycle_times_ms: first_times,
        first_cycle,
        refill_median_ms: median(&mut refill_sorted),
        refill_ms,
        refill_placed,
        refill_gap_pct,
        peak_rss_mib: peak_rss_mib(),
    };
    match a.output {
        Output::Json => outln!("{}", json(&r)?),
        Output::Table => {
            let range = |v: &[f64]| {
                format!(
                    "{:.1}–{:.1}",
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    v.iter().copied().fold(0.0, f64::max)
                )
            };
            let mut t = Table::new(&[
                "CYCLE",
                "MEDIAN MS>",
                "RANGE MS>",
                "PLACED>",
                "GAP TO BOUND>",
            ]);
            let first_gap = r
                .first_cycle
                .as_ref()
                .map(|c| {
                    format!(
                        "{:.3} % ({})",
                        if c.cost_usd > 0.0 {
                            100.0 * (c.cost_usd - c.bound_usd).max(0.0) / c.cost_usd
                        } else {
                            0.0
                        },
                        c.method
                    )
                })
                .unwrap_or_default();
            t.row(vec![
                "first (empty sites, global assignment)".into(),
                format!("{:.1}", r.first_cycle_ms),
                range(&r.first_cycle_times_ms),
                r.dispatched_first_cycle.to_string(),
                first_gap,
            ]);
            t.row(vec![
                "after runs end (a fifth of sites freed)".into(),
                format!("{:.1}", r.refill_median_ms),
                range(&r.refill_ms),
                format!("{:?}", r.refill_placed),
                format!(
                    "max {:.3} %",
                    r.refill_gap_pct.iter().copied().fold(0.0, f64::max)
                ),
            ]);
            t.row(vec![
                "full sites (reasons for all)".into(),
                format!("{:.1}", r.cycle_median_ms),
                range(&r.cycle_ms),
                "0".into(),
                "-".into(),
            ]);
            outln!(
                "{} pending over {} sites; peak RSS {:.0} MiB",
                r.pending,
                r.sites,
                r.peak_rss_mib
            );
            out!("{}", t.render());
        }
    }
    Ok(())
}
