//! `skyward plan` and `skyward explain`.

use crate::error::{json, CliError};
use crate::table::{num, Table};
use crate::{load_catalog, Common, Output};
use clap::{Args, ValueEnum};
use skyward_catalog::Catalog;
use skyward_placement::{plan, ExplainScope, Method, Plan, PlanOptions, Status};
use skyward_spec::{Parsed, TaskDefaults};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Auto,
    Exact,
    Lagrangian,
}

/// Arguments `plan` and `explain` share.
#[derive(Args)]
pub struct SolveArgs {
    /// A Skyward fleet file, a server workload file (one workload or a
    /// `workloads:` list), or a SkyPilot task file.
    pub file: PathBuf,
    /// Solver: auto (Lagrangian, then exact MILP when small and the gap is open), exact, lagrangian.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,
    /// Wall-clock limit on the exact solver, seconds (the plan and its proven
    /// bound are still reported if it is hit).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub time_limit: f64,
    /// Hours for a SkyPilot task (which has no duration of its own).
    #[arg(long)]
    pub hours: Option<f64>,
    /// Speeds learned by a server (`skyward profiles --output json >
    /// FILE`): each workload's class (`class:`, else its name) takes them
    /// in place of the datasheet ratio or its own `throughput:`.
    #[arg(long, value_name = "FILE")]
    pub profiles: Option<PathBuf>,
}

/// The fleet file, with a server's learned speeds applied when asked.
fn load_solve(a: &SolveArgs, catalog: &Catalog) -> Result<Parsed, CliError> {
    let mut parsed = load(&a.file, a.hours, catalog)?;
    if let Some(path) = &a.profiles {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
        if meta.len() > skyward_app::profiles::PROFILES_BYTES_MAX as u64 {
            return Err(CliError::Input(format!(
                "{shown}: larger than {} MiB",
                skyward_app::profiles::PROFILES_BYTES_MAX >> 20
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
        let profiles = skyward_app::profiles::parse(&bytes, &shown)?;
        let applied =
            skyward_app::profiles::apply(&mut parsed.fleet, &profiles, &catalog.accelerators)?;
        for ap in &applied {
            let speeds: Vec<String> = ap
                .speeds
                .iter()
                .map(|s| format!("{} {:.4} {}", s.alternative, s.rate, ap.unit))
                .collect();
            parsed.notes.push(format!(
                "workload {}: speeds learned by class {} ({})",
                ap.workload,
                ap.class,
                speeds.join(", ")
            ));
        }
    }
    Ok(parsed)
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub solve: SolveArgs,
    /// Plan as if the fleet had no spend contracts (to see what they change).
    #[arg(long)]
    pub without_contracts: bool,
    /// Also write the plan as an SVG chart to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Read the ledger: spend commitments in this contracts file that are
    /// behind schedule count as already paid (replacing the fleet's own
    /// `contracts:` for those providers).
    #[arg(long, value_name = "CONTRACTS")]
    pub ledger: Option<PathBuf>,
    /// Ledger database (with --ledger; default as for `skyward ledger`).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Ledger date (with --ledger; default: the day after the last imported charge).
    #[arg(long, value_name = "DATE")]
    pub at: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub solve: SolveArgs,
    /// The workload to explain.
    pub workload: String,
    #[command(flatten)]
    pub common: Common,
}

fn load(file: &PathBuf, hours: Option<f64>, catalog: &Catalog) -> Result<Parsed, CliError> {
    let shown = file.display().to_string();
    let meta = std::fs::metadata(file).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    if meta.len() > skyward_spec::SPEC_BYTES_MAX as u64 {
        return Err(CliError::Input(format!(
            "{shown}: file is larger than {} MiB",
            skyward_spec::SPEC_BYTES_MAX >> 20
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Input(format!("{shown}: not UTF-8 text")))?;
    Ok(skyward_spec::parse(
        &text,
        &shown,
        catalog,
        &TaskDefaults { hours },
    )?)
}

fn options(
    m: MethodArg,
    time_limit_s: f64,
    explain: ExplainScope,
) -> Result<PlanOptions, CliError> {
    if !(time_limit_s.is_finite() && time_limit_s > 0.0 && time_limit_s <= 86_400.0) {
        return Err(CliError::Input(
            "--time-limit must be a number of seconds above 0 and at most 86400".into(),
        ));
    }
    Ok(PlanOptions {
        explain,
        exact_time_limit_s: time_limit_s,
        method: match m {
            MethodArg::Auto => Method::Auto,
            MethodArg::Exact => Method::Exact,
            MethodArg::Lagrangian => Method::Lagrangian,
        },
        ..PlanOptions::default()
    })
}

pub fn run_plan(a: &PlanArgs) -> Result<(), CliError> {
    let catalog = load_catalog(&a.common)?;
    let parsed = load_solve(&a.solve, &catalog)?;
    for n in &parsed.notes {
        eprintln!("note: {n}");
    }
    let mut fleet = parsed.fleet;
    if a.without_contracts {
        fleet.contracts.clear();
    }
    let opts = options(a.solve.method, a.solve.time_limit, ExplainScope::None)?;
    let ledger = match &a.ledger {
        Some(file) => Some(apply_ledger(
            &mut fleet,
            file,
            a.db.as_deref(),
            a.at.as_deref(),
            &catalog,
            &opts,
        )?),
        None => None,
    };
    let p = plan(&fleet, &catalog, &opts);
    if let Some(path) = &a.svg {
        let picture = crate::svg::render(&p, &a.solve.file.display().to_string());
        std::fs::write(path, picture)
            .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    match a.common.output {
        Output::Json => {
            let mut v = serde_json::to_value(&p).map_err(|e| CliError::Internal(e.to_string()))?;
            if let (Some(l), Some(obj)) = (&ledger, v.as_object_mut()) {
                obj.insert(
                    "ledger".into(),
                    serde_json::to_value(l.report(&p))
                        .map_err(|e| CliError::Internal(e.to_string()))?,
                );
            }
            outln!("{}", json(&v)?);
        }
        Output::Table => {
            out!("{}", render_plan(&p, &a.solve.file.display().to_string()));
            if let Some(l) = &ledger {
                out!("{}", l.render(&p));
            }
        }
    }
    Ok(())
}

/// What the ledger changed in a plan.
pub struct LedgerEffect {
    at: String,
    commitments: Vec<skyward_ledger::planning::PlanCommitment>,
    replaced: Vec<String>,
    baseline: Plan,
    /// The baseline's placements, billed under the ledger's commitments:
    /// what ignoring the ledger would really cost.
    baseline_under_ledger: skyward_model::Usd,
}

#[derive(serde::Serialize)]
struct LedgerReport<'a> {
    at: &'a str,
    commitments: &'a [skyward_ledger::planning::PlanCommitment],
    replaced_fleet_contracts: &'a [String],
    baseline_total_cost_usd: skyward_model::Usd,
    baseline_under_ledger_usd: skyward_model::Usd,
    moved: Vec<Moved>,
}

#[derive(serde::Serialize)]
struct Moved {
    workload: String,
    from: String,
    to: String,
}

fn where_(pl: &skyward_placement::Placement) -> String {
    match pl.status {
        Status::Placed => format!(
            "{}:{} {} {}",
            opt(&pl.provider),
            opt(&pl.region),
            opt(&pl.sku),
            opt(&pl.pricing)
        ),
        Status::Infeasible => "infeasible".into(),
    }
}

impl LedgerEffect {
    fn moved(&self, p: &Plan) -> Vec<Moved> {
        p.placements
            .iter()
            .zip(&self.baseline.placements)
            .filter_map(|(now, before)| {
                let (a, b) = (where_(before), where_(now));
                (a != b).then(|| Moved {
                    workload: now.workload.clone(),
                    from: a,
                    to: b,
                })
            })
            .collect()
    }

    fn report(&self, p: &Plan) -> LedgerReport<'_> {
        LedgerReport {
            at: &self.at,
            commitments: &self.commitments,
            replaced_fleet_contracts: &self.replaced,
            baseline_total_cost_usd: self.baseline.total_cost_usd,
            baseline_under_ledger_usd: self.baseline_under_ledger,
            moved: self.moved(p),
        }
    }

    fn render(&self, p: &Plan) -> String {
        let mut s = format!(
            "\nLedger at {} (spend commitments behind schedule count as already paid):\n",
            self.at
        );
        let mut t = Table::new(&[
            "CONTRACT",
            "PROVIDER",
            "BURNED>",
            "SCHEDULE AT HORIZON>",
            "TREATED AS PAID>",
            "DISCOUNT>",
        ]);
        for c in &self.commitments {
            t.row(vec![
                c.name.clone(),
                c.provider.clone(),
                c.burned.to_string(),
                c.schedule_at_horizon.to_string(),
                c.due_in_horizon.to_string(),
                format!("{}%", num(c.discount_pct)),
            ]);
        }
        s.push_str(&t.render());
        for r in &self.replaced {
            let _ = writeln!(
                s,
                "note: the fleet's own contract for {r} was replaced by the ledger's"
            );
        }
        let moved = self.moved(p);
        let _ = writeln!(
            s,
            "Shift: {} of {} workloads placed differently than without the ledger. With the ledger the fleet costs {} (commitments behind schedule included); the plan made without it would cost {} under the same commitments: {} saved.",
            moved.len(),
            p.placements.len(),
            p.total_cost_usd,
            self.baseline_under_ledger,
            self.baseline_under_ledger - p.total_cost_usd
        );
        for m in moved.iter().take(20) {
            let _ = writeln!(s, "  {}: {} -> {}", m.workload, m.from, m.to);
        }
        s
    }
}

fn apply_ledger(
    fleet: &mut skyward_model::Fleet,
    contracts_file: &std::path::Path,
    db: Option<&std::path::Path>,
    at: Option<&str>,
    catalog: &Catalog,
    opts: &PlanOptions,
) -> Result<LedgerEffect, CliError> {
    use crate::cmd::ledger::{db_path, load_contracts, runtime};
    let contracts = load_contracts(contracts_file)?;
    let db = db_path(db)?;
    let rt = runtime()?;
    let (days, last) = rt.block_on(async {
        let store = skyward_store::Store::open(&db).await?;
        Ok::<_, skyward_store::StoreError>((
            store.daily(None, i64::MAX).await?,
            store.last_day().await?,
        ))
    })?;
    let at = crate::cmd::ledger::resolve_at(at, last, &db)?;
    let horizon = fleet.workloads.iter().map(|w| w.hours).fold(0.0, f64::max);
    let baseline = plan(fleet, catalog, opts);
    let commitments = skyward_ledger::planning::plan_commitments(&contracts, at, horizon, &days);
    let mut replaced = Vec::new();
    for c in &commitments {
        if fleet.contracts.iter().any(|k| k.provider == c.provider) {
            replaced.push(c.provider.clone());
            fleet.contracts.retain(|k| k.provider != c.provider);
        }
        let micros = c.due_in_horizon.0 / 1_000_000;
        fleet.contracts.push(skyward_model::Contract {
            name: c.name.clone(),
            provider: c.provider.clone(),
            commit_usd: skyward_model::Usd::from_micros(i64::try_from(micros).unwrap_or(i64::MAX)),
            discount_pct: c.discount_pct,
        });
    }
    // Bill the baseline's per-provider list spend under the new contracts.
    let mut under = skyward_model::Usd::ZERO;
    let mut seen = std::collections::BTreeSet::new();
    for pr in &baseline.providers {
        seen.insert(pr.provider.clone());
        under += match fleet.contracts.iter().find(|k| k.provider == pr.provider) {
            Some(k) => pr
                .list_spend_usd
                .discounted_pct(k.discount_pct)
                .max(k.commit_usd),
            None => pr.list_spend_usd,
        };
    }
    for k in fleet
        .contracts
        .iter()
        .filter(|k| !seen.contains(&k.provider))
    {
        under += k.commit_usd;
    }
    Ok(LedgerEffect {
        at: at.date_string(),
        commitments,
        replaced,
        baseline,
        baseline_under_ledger: under,
    })
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn render_plan(p: &Plan, file: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan for {file}: {} placed, {} infeasible",
        p.placed, p.infeasible
    );
    let _ = writeln!(s, "Catalog: {}\n", p.catalog);
    let mut t = Table::new(&[
        "WORKLOAD",
        "KIND",
        "PROVIDER",
        "REGION",
        "SKU",
        "ACCELERATORS",
        "NODES>",
        "PRICING",
        "$/HOUR>",
        "HOURS>",
        "COST>",
    ]);
    for pl in p.placements.iter().filter(|x| x.status == Status::Placed) {
        let nodes = if pl.replicas > 1 {
            format!("{}x{}", pl.replicas, pl.nodes.unwrap_or(0))
        } else {
            opt(&pl.nodes)
        };
        let pricing = match (&pl.pricing, &pl.pool) {
            (Some(pr), Some(pool)) => format!("{pr} ({pool})"),
            (pr, _) => opt(pr),
        };
        t.row(vec![
            pl.workload.clone(),
            pl.kind.to_string(),
            opt(&pl.provider),
            opt(&pl.region),
            opt(&pl.sku),
            opt(&pl.accelerator),
            nodes,
            pricing,
            opt(&pl.hourly_usd),
            pl.hours.map(num).unwrap_or_default(),
            opt(&pl.cost_usd),
        ]);
    }
    if !t.is_empty() {
        s.push_str(&t.render());
    }
    let infeasible: Vec<_> = p
        .placements
        .iter()
        .filter(|x| x.status == Status::Infeasible)
        .collect();
    if !infeasible.is_empty() {
        let _ = writeln!(s, "\nInfeasible:");
        for pl in infeasible {
            let _ = writeln!(s, "  {}:", pl.workload);
            for r in &pl.reasons {
                let _ = writeln!(s, "    - {r}");
            }
        }
    }
    let _ = writeln!(s, "\nProviders:");
    let mut t = Table::new(&[
        "PROVIDER",
        "CONTRACT",
        "LIST SPEND>",
        "DISCOUNT>",
        "DISCOUNTED>",
        "COMMITMENT>",
        "BILLED>",
        "SHORTFALL>",
        "COMMIT USED>",
    ]);
    for pr in &p.providers {
        t.row(vec![
            pr.provider.clone(),
            opt(&pr.contract),
            pr.list_spend_usd.to_string(),
            format!("{}%", num(pr.discount_pct)),
            pr.discounted_spend_usd.to_string(),
            pr.commit_usd.to_string(),
            pr.cost_usd.to_string(),
            pr.shortfall_usd.to_string(),
            pr.commitment_used_pct
                .map(|v| format!("{v:.1}%"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    s.push_str(&t.render());
    if !p.reserved.is_empty() {
        let _ = writeln!(s, "\nReserved capacity (prepaid):");
        let mut t = Table::new(&[
            "POOL",
            "PROVIDER",
            "REGION",
            "SKU",
            "NODES>",
            "USED>",
            "UTILISATION>",
            "PREPAID $/H>",
            "IDLE $/H>",
        ]);
        for r in &p.reserved {
            t.row(vec![
                r.name.clone(),
                r.provider.clone(),
                r.region.clone(),
                r.sku.clone(),
                r.nodes.to_string(),
                r.nodes_used.to_string(),
                format!("{:.1}%", r.utilisation_pct),
                r.prepaid_usd_per_hour.to_string(),
                r.idle_usd_per_hour.to_string(),
            ]);
        }
        s.push_str(&t.render());
    }
    if !p.quotas.is_empty() {
        let _ = writeln!(s, "\nQuotas (accelerators in use at once):");
        let mut t = Table::new(&["QUOTA", "USED>", "MAX>"]);
        for q in &p.quotas {
            t.row(vec![q.quota.clone(), q.used.to_string(), q.max.to_string()]);
        }
        s.push_str(&t.render());
    }
    let _ = writeln!(
        s,
        "\nTotal cost:   {}  (list {}, commitment shortfall {})",
        p.total_cost_usd, p.list_cost_usd, p.commitment_shortfall_usd
    );
    let _ = writeln!(
        s,
        "Lower bound:  {}  gap {:.4}%  [{}{}; {} workloads, {} options after pruning, {} coupling rows]",
        p.lower_bound_usd,
        p.gap_pct,
        p.solver.method,
        if p.solver.proven_optimal { ", proven optimal" } else { "" },
        p.solver.workloads,
        p.solver.options,
        p.solver.coupling_rows
    );
    if p.max_placeable > p.placed {
        let _ = writeln!(
            s,
            "Placed:       {} of {} workloads; no plan places more than {} (the count is not proven maximal)",
            p.placed,
            p.placements.len(),
            p.max_placeable
        );
    } else if p.infeasible > 0 {
        let _ = writeln!(
            s,
            "Placed:       {} of {} workloads, the proven maximum",
            p.placed,
            p.placements.len()
        );
    }
    for n in &p.solver.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

pub fn run_explain(a: &ExplainArgs) -> Result<(), CliError> {
    let catalog = load_catalog(&a.common)?;
    let parsed = load_solve(&a.solve, &catalog)?;
    for n in &parsed.notes {
        eprintln!("note: {n}");
    }
    if !parsed.fleet.workloads.iter().any(|w| w.name == a.workload) {
        let names: Vec<&str> = parsed
            .fleet
            .workloads
            .iter()
            .map(|w| w.name.as_str())
            .take(20)
            .collect();
        return Err(CliError::Input(format!(
            "{}: no workload named '{}' (workloads: {})",
            a.solve.file.display(),
            a.workload,
            names.join(", ")
        )));
    }
    let p = plan(
        &parsed.fleet,
        &catalog,
        &options(
            a.solve.method,
            a.solve.time_limit,
            ExplainScope::Workload(a.workload.clone()),
        )?,
    );
    let Some(pl) = p.placements.iter().find(|x| x.workload == a.workload) else {
        return Err(CliError::Internal("workload missing from plan".into()));
    };
    let Some(ex) = &pl.explanation else {
        return Err(CliError::Internal("no explanation recorded".into()));
    };
    match a.common.output {
        Output::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                placement: &'a skyward_placement::Placement,
                explanation: &'a skyward_placement::plan::Explanation,
            }
            outln!(
                "{}",
                json(&Out {
                    placement: pl,
                    explanation: ex
                })?
            );
        }
        Output::Table => {
            let w = parsed.fleet.workloads.iter().find(|w| w.name == a.workload);
            let mut s = String::new();
            if let Some(w) = w {
                let accels: Vec<String> = w.accelerators.iter().map(|x| x.to_string()).collect();
                let _ = writeln!(
                    s,
                    "Workload {} ({}, {} node(s){}, {} h on {}; alternatives: {})",
                    w.name,
                    w.kind,
                    w.nodes,
                    if w.replicas > 1 {
                        format!(" x {} replicas", w.replicas)
                    } else {
                        String::new()
                    },
                    num(w.hours),
                    accels.first().cloned().unwrap_or_default(),
                    accels.join(", ")
                );
            }
            match pl.status {
                Status::Placed => {
                    let _ = writeln!(
                        s,
                        "Placed on {}:{} {} ({}), {} for {} h = {}",
                        opt(&pl.provider),
                        opt(&pl.region),
                        opt(&pl.sku),
                        opt(&pl.pricing),
                        opt(&pl.hourly_usd),
                        pl.hours.map(num).unwrap_or_default(),
                        opt(&pl.cost_usd)
                    );
                }
                Status::Infeasible => {
                    let _ = writeln!(s, "Infeasible:");
                    for r in &pl.reasons {
                        let _ = writeln!(s, "  - {r}");
                    }
                }
            }
            let f = &ex.filtering;
            let no_variant = w.map(|w| w.no_variant.join(", ")).unwrap_or_default();
            let _ = writeln!(s, "\nCandidates:");
            let mut hist =
                |title: String, map: &std::collections::BTreeMap<&'static str, usize>| {
                    let _ = writeln!(s, "  {title}");
                    for r in skyward_placement::reasons::ORDER {
                        if let Some(n) = map.get(r) {
                            if *r == skyward_placement::reasons::NO_VARIANT {
                                let _ = writeln!(s, "    {n:>6}  no variant for {no_variant}");
                            } else {
                                let _ = writeln!(s, "    {n:>6}  {r}");
                            }
                        }
                    }
                };
            hist(
                format!("{} offerings evaluated:", f.offerings_evaluated),
                &f.offerings_filtered,
            );
            if f.pools_evaluated > 0 {
                hist(
                    format!("{} reserved pools evaluated:", f.pools_evaluated),
                    &f.pools_filtered,
                );
            }
            let _ = writeln!(
                s,
                "  {} feasible options; {} kept for the global assignment (the rest dominated)",
                f.options_feasible, f.options_kept
            );
            if !ex.alternatives.is_empty() {
                let _ = writeln!(s, "\nAlternatives (fleet cost: what choosing it costs the whole fleet, commitments counted):");
                let mut t = Table::new(&[
                    "",
                    "PROVIDER",
                    "REGION",
                    "SKU",
                    "ACCELERATORS",
                    "PRICING",
                    "$/HOUR>",
                    "HOURS>",
                    "COMPUTE>",
                    "EGRESS>",
                    "LIST>",
                    "FLEET COST>",
                ]);
                for o in &ex.alternatives {
                    t.row(vec![
                        if o.chosen { "*".into() } else { String::new() },
                        o.provider.clone(),
                        o.region.clone(),
                        o.pool
                            .as_ref()
                            .map(|p| format!("{} ({p})", o.sku))
                            .unwrap_or_else(|| o.sku.clone()),
                        o.accelerator.clone(),
                        o.pricing.to_string(),
                        o.hourly_usd.to_string(),
                        num(o.hours),
                        o.compute_usd.to_string(),
                        o.egress_usd.to_string(),
                        o.list_cost_usd.to_string(),
                        o.fleet_cost_usd
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "blocked".into()),
                    ]);
                }
                s.push_str(&t.render());
                for o in ex.alternatives.iter().filter(|o| !o.blocked_by.is_empty()) {
                    let _ = writeln!(
                        s,
                        "  blocked {}:{} {}: {}",
                        o.provider,
                        o.region,
                        o.sku,
                        o.blocked_by.join("; ")
                    );
                }
            }
            if ex.speeds.len() > 1 {
                let _ = writeln!(s, "\nSpeeds (hours on each alternative scale by them):");
                let mut t = Table::new(&["ALTERNATIVE", "RELATIVE SPEED>", "HOURS>", "SOURCE"]);
                for v in &ex.speeds {
                    t.row(vec![
                        v.alternative.clone(),
                        v.relative_speed
                            .map(|x| format!("{x:.3}"))
                            .unwrap_or_else(|| "-".into()),
                        v.hours.map(num).unwrap_or_else(|| "-".into()),
                        v.source.clone(),
                    ]);
                }
                s.push_str(&t.render());
            }
            if !ex.why.is_empty() {
                let _ = writeln!(s, "\nWhy:");
                for y in &ex.why {
                    let _ = writeln!(s, "  - {y}");
                }
            }
            out!("{s}");
        }
    }
    Ok(())
}
