//! `skyward simulate`: read a scenario, run its policies through the
//! simulator (`skyward-sim`), render the comparison.

use crate::error::{json, CliError};
use crate::table::{num, Table};
use crate::Output;
use skyward_app::sim_report::duration;
use skyward_sim::report::PolicyReport;
use skyward_sim::sweep::{Axis, SweepReport};
use skyward_sim::{Policy, Report};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The scenario file (see examples/scenario.yaml).
    scenario: PathBuf,
    /// Policies to compare instead of the scenario's: skyward,
    /// cheapest-per-task, single-cloud:PROVIDER (repeat or comma-separate).
    #[arg(long = "policy", value_delimiter = ',')]
    policies: Vec<String>,
    /// The seed every random input is drawn from: the same scenario and
    /// seed give the same report, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the grid of a knob's values (repeat for a product of knobs):
    /// growth=0,15,30 (%/year of every stream), demand=0.5,1,2 (× arrival
    /// rates), commit=50,100 (% of each spend commitment), price-change=-20,-10
    /// (%/year of every site).
    #[arg(long = "sweep", value_name = "KNOB=V1,V2,…")]
    sweeps: Vec<String>,
    /// Also write the comparison as one HTML page with charts (cost over
    /// the years, each commitment's burn) to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also write the policy's simulated usage as FOCUS 1.3 rows (one per
    /// site and day, list and billed cost), for `skyward ledger import`
    /// and any FinOps tool. One policy only: choose it with --policy.
    /// Refused when the scenario has savings plans or reservations (their
    /// hourly Used/Unused rows are not written yet).
    #[arg(long, value_name = "FILE", conflicts_with = "sweeps")]
    focus: Option<PathBuf>,
    /// Also write every dispatch the core made as CSV (workload, stream,
    /// site, attempt, at_s: seconds from the start), to audit where work
    /// went or replay it elsewhere. One policy only, like --focus.
    #[arg(long, value_name = "FILE", conflicts_with = "sweeps")]
    placements: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Reads a scenario and the trace files it names (relative to its
/// folder; `skyward_spec::scenario` bounds what it reads of each).
pub fn load(path: &std::path::Path) -> Result<skyward_sim::Scenario, CliError> {
    let (shown, text) = crate::cmd::contracts::read_file(path)?;
    let dir = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut read = |name: &str| -> Result<Box<dyn std::io::BufRead>, String> {
        let p = dir.join(name);
        let f = std::fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(format!("{}: is a folder, not a file", p.display()));
        }
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
    };
    Ok(skyward_spec::scenario::parse_with(
        &text, &shown, &mut read,
    )?)
}

pub fn run(a: &SimulateArgs) -> Result<(), CliError> {
    let sc = load(&a.scenario)?;
    let mut policies = Vec::new();
    for p in &a.policies {
        policies.push(Policy::parse(p).map_err(|m| CliError::Input(format!("--policy: {m}")))?);
    }
    let mut progress = progress_printer(a.quiet);
    if !a.sweeps.is_empty() {
        let mut axes = Vec::new();
        for s in &a.sweeps {
            axes.push(Axis::parse(s).map_err(|m| CliError::Input(format!("--sweep: {m}")))?);
        }
        let report = skyward_sim::sweep::sweep(&sc, &axes, &policies, a.seed, &mut progress)
            .map_err(CliError::Input)?;
        match a.output {
            Output::Json => outln!("{}", json(&report)?),
            Output::Table => render_sweep(&report),
        }
        return Ok(());
    }
    let report = if a.focus.is_none() && a.placements.is_none() {
        skyward_sim::simulate(&sc, &policies, a.seed, &mut progress)
    } else {
        let list = if policies.is_empty() {
            &sc.policies[..]
        } else {
            &policies[..]
        };
        let [policy] = list else {
            let flag = if a.focus.is_some() {
                "--focus"
            } else {
                "--placements"
            };
            return Err(CliError::Input(format!(
                "{flag} writes one policy's run; choose it with --policy (there are {}: {})",
                list.len(),
                list.iter().map(Policy::name).collect::<Vec<_>>().join(", ")
            )));
        };
        if let Some(c) = sc
            .contracts
            .iter()
            .find(|c| !matches!(c.terms, skyward_ledger::contracts::Terms::Spend(_)))
        {
            if a.focus.is_some() {
                return Err(CliError::Input(format!(
                    "--focus writes on-demand and spend-discounted rows only; the scenario's \
                     savings plan or reservation {} would need its hourly Used/Unused rows, \
                     which are not written yet",
                    c.name
                )));
            }
        }
        let keep = skyward_sim::run::Keep {
            charges: a.focus.is_some(),
            placements: a.placements.is_some(),
        };
        let kept = skyward_sim::run::run_keeping(&sc, policy, a.seed, keep, &mut progress);
        if let Some(path) = &a.focus {
            let rows: Vec<(&str, &skyward_ledger::status::DayRow)> = kept
                .charges
                .iter()
                .map(|c| (c.site.as_str(), &c.row))
                .collect();
            let n = crate::cmd::write_atomically(path, |w| {
                skyward_ledger::export::write_day_rows(w, &rows, "simulated")
            })?;
            eprintln!("wrote {n} FOCUS rows to {}", path.display());
        }
        if let Some(path) = &a.placements {
            let n =
                crate::cmd::write_atomically(path, |w| write_placements(w, &sc, &kept.placements))?;
            if kept.placements_dropped > 0 {
                eprintln!(
                    "warning: {} dispatches beyond the first {} not written",
                    kept.placements_dropped,
                    skyward_sim::run::PLACEMENTS_MAX
                );
            }
            eprintln!("wrote {n} dispatches to {}", path.display());
        }
        Report {
            scenario: sc.name.clone(),
            start: sc.start.date_string(),
            years: sc.years,
            seed: a.seed,
            traces: skyward_sim::TraceSource::of(&sc),
            policies: vec![kept.report],
        }
    };
    if let Some(path) = &a.html {
        std::fs::write(path, skyward_app::sim_report::html(&report))
            .map_err(|e| CliError::Io(format!("{}: cannot write: {e}", path.display())))?;
    }
    match a.output {
        Output::Json => outln!("{}", json(&report)?),
        Output::Table => render(&report),
    }
    Ok(())
}

/// The dispatches as CSV; returns the rows written.
fn write_placements(
    w: &mut dyn Write,
    sc: &skyward_sim::Scenario,
    placements: &[skyward_sim::run::Placement],
) -> std::io::Result<u64> {
    let clean = |s: &str| s.replace([',', '\n', '\r', '"'], " ");
    let streams: Vec<String> = sc.demand.iter().map(|d| clean(&d.name)).collect();
    let sites: Vec<String> = sc.sites.iter().map(|s| clean(&s.name)).collect();
    fn name(names: &[String], i: u16) -> &str {
        names.get(usize::from(i)).map_or("", String::as_str)
    }
    writeln!(w, "workload,stream,site,attempt,at_s")?;
    for p in placements {
        writeln!(
            w,
            "{},{},{},{},{:.3}",
            p.workload,
            name(&streams, p.stream),
            name(&sites, p.site),
            p.attempt,
            p.at_ms as f64 / 1000.0
        )?;
    }
    Ok(placements.len() as u64)
}

/// Progress on stderr: one line redrawn on a terminal, a line per tenth
/// of the horizon otherwise; nothing when `quiet`.
pub fn progress_printer(quiet: bool) -> impl FnMut(&skyward_sim::Progress) {
    let tty = std::io::stderr().is_terminal();
    let mut last_tenth = u64::MAX;
    move |p: &skyward_sim::Progress| {
        if quiet {
            return;
        }
        let pct = p.now_ms as f64 / p.horizon_ms.max(1) as f64 * 100.0;
        let line = format!(
            "simulate: {:<20} {:>5.1}%  day {:>5}  {} workloads  {} pending  {} events",
            p.policy,
            pct,
            p.now_ms / skyward_sim::scenario::MS_PER_DAY,
            p.workloads,
            p.pending,
            p.events
        );
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if p.now_ms >= p.horizon_ms {
                let _ = writeln!(err);
            }
        } else {
            let tenth = (pct / 10.0) as u64;
            if tenth != last_tenth {
                last_tenth = tenth;
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

/// One row per point and policy: how the answer moves along the grid.
fn render_sweep(r: &SweepReport) {
    outln!("{}: sweep, seed {}", r.scenario, r.seed);
    outln!("");
    let mut headers: Vec<&str> = r.axes.iter().map(|a| a.knob.name()).collect();
    headers.extend([
        "policy",
        "cost",
        "list",
        "shortfall",
        "eff. discount",
        "delay p95",
        "unfinished",
    ]);
    let mut t = Table::new(&headers);
    for p in &r.points {
        for q in &p.report.policies {
            let mut row: Vec<String> = p.settings.iter().map(|(_, v)| num(*v)).collect();
            row.extend([
                q.policy.clone(),
                usd(q.total.cost_usd),
                usd(q.total.list_usd),
                usd(q.total.shortfall_usd),
                format!("{:.1}%", q.total.effective_discount_pct),
                duration(q.total.delay_s.p95),
                (q.pending_at_horizon + q.running_at_horizon).to_string(),
            ]);
            t.row(row);
        }
    }
    out!("{}", t.render());
}

fn usd(a: skyward_ledger::Amount) -> String {
    a.to_string()
}

fn render(r: &Report) {
    outln!(
        "{}: {} years from {}, seed {}",
        r.scenario,
        r.years,
        r.start,
        r.seed
    );
    for line in skyward_app::sim_report::trace_lines(r) {
        outln!("{line}");
    }
    outln!("");
    let mut t = Table::new(&[
        "policy",
        "cost",
        "list",
        "billed",
        "shortfall",
        "prepaid",
        "eff. discount",
        "delay p50",
        "delay p95",
        "lost acc-h",
        "failovers",
        "unfinished",
    ]);
    for p in &r.policies {
        let x = &p.total;
        t.row(vec![
            p.policy.clone(),
            usd(x.cost_usd),
            usd(x.list_usd),
            usd(x.billed_usd),
            usd(x.shortfall_usd),
            usd(x.prepaid_usd),
            format!("{:.1}%", x.effective_discount_pct),
            duration(x.delay_s.p50),
            duration(x.delay_s.p95),
            num(x.lost_accelerator_hours.round()),
            x.failovers.to_string(),
            (p.pending_at_horizon + p.running_at_horizon).to_string(),
        ]);
    }
    out!("{}", t.render());
    for p in &r.policies {
        render_policy(p);
    }
}

fn render_policy(p: &PolicyReport) {
    outln!("");
    outln!(
        "== {} ({} workloads, {} events; {} running and {} pending at the horizon{}{})",
        p.policy,
        p.workloads,
        p.events,
        p.running_at_horizon,
        p.pending_at_horizon,
        if p.refused > 0 {
            format!("; {} refused, queue full", p.refused)
        } else {
            String::new()
        },
        if p.truncated {
            "; arrivals stopped at workloads_max"
        } else {
            ""
        }
    );
    let mut t = Table::new(&[
        "year",
        "from",
        "cost",
        "list",
        "billed",
        "shortfall",
        "eff. discount",
        "accelerator-hours",
        "delay p50",
        "delay p95",
        "preempted",
        "outages",
        "lost acc-h",
    ]);
    for y in &p.years {
        let hours = y
            .accelerator_hours
            .iter()
            .map(|(k, v)| format!("{k} {}", num(v.round())))
            .collect::<Vec<_>>()
            .join(", ");
        t.row(vec![
            y.year.to_string(),
            y.from.clone(),
            usd(y.cost_usd),
            usd(y.list_usd),
            usd(y.billed_usd),
            usd(y.shortfall_usd),
            format!("{:.1}%", y.effective_discount_pct),
            hours,
            duration(y.delay_s.p50),
            duration(y.delay_s.p95),
            y.preemptions.to_string(),
            y.outages.to_string(),
            num(y.lost_accelerator_hours.round()),
        ]);
    }
    out!("{}", t.render());
    if !p.contracts.is_empty() {
        let mut t = Table::new(&[
            "contract",
            "provider",
            "term",
            "commit",
            "burned",
            "shortfall",
            "headline",
            "effective",
            "status",
        ]);
        for c in &p.contracts {
            t.row(vec![
                c.name.clone(),
                c.provider.clone(),
                format!("{}..{}", c.start, c.end),
                usd(c.commit_usd),
                usd(c.burned_usd),
                usd(c.shortfall_usd),
                format!("{}%", num(c.discount_pct)),
                format!("{:.1}%", c.effective_discount_pct),
                c.status.clone(),
            ]);
        }
        out!("{}", t.render());
    }
    if !p.hourly.is_empty() {
        let mut t = Table::new(&[
            "commitment",
            "provider",
            "kind",
            "what",
            "term",
            "fee/h",
            "paid",
            "used",
            "utilisation",
            "covered (list)",
            "net savings",
        ]);
        for h in &p.hourly {
            t.row(vec![
                h.name.clone(),
                h.provider.clone(),
                h.kind.clone(),
                h.what.clone(),
                format!("{}..{}", h.start, h.end),
                usd(h.fee_per_hour_usd),
                usd(h.committed_usd),
                usd(h.used_usd),
                format!("{:.1}%", h.utilisation_pct),
                usd(h.covered_list_usd),
                usd(h.net_savings_usd),
            ]);
        }
        out!("{}", t.render());
    }
    let mut t = Table::new(&[
        "stream",
        "kind",
        "submitted",
        "completed",
        "delay p50",
        "delay p95",
        "delay p99",
        "SLO misses",
        "interrupted",
        "lost acc-h",
    ]);
    for s in &p.streams {
        t.row(vec![
            s.name.clone(),
            s.kind.as_str().to_string(),
            s.submitted.to_string(),
            s.completed.to_string(),
            duration(s.delay_s.p50),
            duration(s.delay_s.p95),
            duration(s.delay_s.p99),
            s.slo_misses.to_string(),
            s.interruptions.to_string(),
            num(s.lost_accelerator_hours.round()),
        ]);
    }
    out!("{}", t.render());
}
