//! The plan: assembling solver output into exact money and explanations.

use crate::candidates::{self, Candidate, Filtering, Source, WorkloadCandidates};
use crate::context::{Context, RowKind};
use crate::problem::{Choice, Opt, Problem, Solution};
use crate::{exact, lagrange};
use serde::Serialize;
use skyward_catalog::Catalog;
use skyward_model::{Fleet, Pricing, Usd, Workload};
use std::collections::BTreeMap;

/// A gap at or below this is reported as proven optimal: the exact
/// solver's bound is its optimum less a relative 1e-7 tolerance.
pub const GAP_PROVEN_PCT: f64 = 2e-5;

/// Which solver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Lagrangian first; the exact MILP when the gap is open and the
    /// problem is small enough.
    Auto,
    Exact,
    Lagrangian,
}

/// Which workloads get an explanation (they cost time and memory on large
/// fleets, and only `explain` shows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainScope {
    None,
    All,
    Workload(String),
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub method: Method,
    pub explain: ExplainScope,
    /// Auto uses the MILP up to this many options (after pruning).
    pub exact_options_max: usize,
    /// Wall-clock limit on one MILP solve, seconds.
    pub exact_time_limit_s: f64,
    pub lagrangian: lagrange::Settings,
}

/// Auto mode's exact-solver threshold: microlp proves ~12,000 options
/// (about 2,000 workloads) in ~0.3 s; HiGHS about 2.5 times as many in the
/// same time (BENCHMARKS.md).
pub const EXACT_OPTIONS_MAX_DEFAULT: usize = if cfg!(feature = "highs") {
    30_000
} else {
    12_000
};

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            method: Method::Auto,
            explain: ExplainScope::All,
            exact_options_max: EXACT_OPTIONS_MAX_DEFAULT,
            exact_time_limit_s: 10.0,
            lagrangian: lagrange::Settings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Placed,
    Infeasible,
}

/// One option, described for people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct OptionView {
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub accelerator: String,
    pub pricing: Pricing,
    /// Reserved pool name, for reserved options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub hourly_usd: Usd,
    pub hours: f64,
    pub compute_usd: Usd,
    pub egress_usd: Usd,
    /// compute + egress at list price.
    pub list_cost_usd: Usd,
    /// What choosing this option costs the whole fleet, all else fixed
    /// (commitments and discounts applied): the figure the optimizer
    /// compares. None when it does not fit (see `blocked_by`).
    pub fleet_cost_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    pub chosen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub filtering: Filtering,
    /// The cheapest feasible options by list cost, and the chosen one.
    pub alternatives: Vec<OptionView>,
    /// Why the chosen option won, in sentences.
    pub why: Vec<String>,
    /// The speed each alternative was planned at, and where it comes from.
    pub speeds: Vec<SpeedView>,
}

/// One alternative's speed as placement used it.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedView {
    pub alternative: String,
    /// Relative to the first alternative (2 = twice as fast).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_speed: Option<f64>,
    /// The workload's hours on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    /// The fleet file's `throughput:`, runs' reports, or the datasheet.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub workload: String,
    pub kind: skyward_model::WorkloadKind,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    pub replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    /// List cost: compute + egress, before contract discounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_usd: Option<Usd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(skip)]
    pub explanation: Option<Explanation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderSummary {
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub list_spend_usd: Usd,
    pub discount_pct: f64,
    pub discounted_spend_usd: Usd,
    pub commit_usd: Usd,
    /// What the provider bills: max(commitment, discounted spend).
    pub cost_usd: Usd,
    /// Commitment paid but not used.
    pub shortfall_usd: Usd,
    /// Share of the commitment burned by this plan, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commitment_used_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolSummary {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub nodes: u32,
    pub nodes_used: u64,
    /// Nodes in use at once (all placed workloads running together).
    pub utilisation_pct: f64,
    pub prepaid_usd_per_hour: Usd,
    pub idle_usd_per_hour: Usd,
    /// The plan's horizon: the longest placed workload's hours. A pool is
    /// held (and paid) for all of it.
    pub horizon_hours: f64,
    /// Σ nodes × hours of the workloads placed in the pool.
    pub node_hours_used: f64,
    /// node_hours_used ÷ (nodes × horizon_hours): what the pool's FOCUS
    /// export (Used and Unused rows) shows.
    pub utilisation_over_horizon_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotaSummary {
    pub quota: String,
    pub used: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SolverReport {
    pub method: String,
    pub proven_optimal: bool,
    /// Large path: simplex pivots of the LP, plus cutting-plane oracle
    /// calls where those ran; 0 for the exact MILP alone.
    pub iterations: usize,
    pub workloads: usize,
    pub options: usize,
    pub coupling_rows: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub catalog: String,
    /// What the fleet costs: uncontracted list spend plus, per contracted
    /// provider, max(commitment, discounted spend).
    pub total_cost_usd: Usd,
    /// Proven lower bound on `total_cost_usd` over every plan that places at
    /// least as many workloads.
    pub lower_bound_usd: Usd,
    pub gap_pct: f64,
    pub list_cost_usd: Usd,
    pub commitment_shortfall_usd: Usd,
    pub placed: usize,
    /// Proven: no plan places more workloads than this. Equal to `placed`
    /// when the count is proven maximal.
    pub max_placeable: usize,
    pub infeasible: usize,
    pub placements: Vec<Placement>,
    pub providers: Vec<ProviderSummary>,
    pub reserved: Vec<PoolSummary>,
    pub quotas: Vec<QuotaSummary>,
    pub solver: SolverReport,
    pub assumptions: Vec<String>,
}

struct Built {
    problem: Problem,
    /// Problem index → workload index.
    workload_of: Vec<usize>,
}

fn to_opt(c: &Candidate) -> Opt {
    let mut spend = vec![(c.provider as usize, c.compute_usd.as_f64())];
    if c.egress_usd > Usd::ZERO {
        if c.egress_provider == c.provider {
            spend[0].1 += c.egress_usd.as_f64();
        } else {
            spend.push((c.egress_provider as usize, c.egress_usd.as_f64()));
        }
    }
    Opt {
        spend,
        uses: c.uses.iter().map(|&(r, a)| (r, a as f64)).collect(),
    }
}

fn build(ctx: &Context, cands: &[WorkloadCandidates]) -> Built {
    let np = ctx.providers.len();
    let mut commit = vec![0.0; np];
    let mut factor = vec![1.0; np];
    for c in &ctx.fleet.contracts {
        if let Some(&p) = ctx.provider_index.get(&c.provider) {
            commit[p as usize] = c.commit_usd.as_f64();
            factor[p as usize] = (100.0 - c.discount_pct) / 100.0;
        }
    }
    let mut options = Vec::new();
    let mut can_skip = Vec::new();
    let mut workload_of = Vec::new();
    let mut penalty = 1.0;
    for (w, wc) in cands.iter().enumerate() {
        if wc.options.is_empty() {
            continue;
        }
        workload_of.push(w);
        can_skip.push(wc.options.iter().all(|c| !c.uses.is_empty()));
        penalty += wc
            .options
            .iter()
            .map(|c| c.list_cost_usd().as_f64())
            .fold(0.0, f64::max);
        options.push(wc.options.iter().map(to_opt).collect());
    }
    let row_limit = ctx.rows.iter().map(|r| r.limit as f64).collect();
    Built {
        problem: Problem {
            options,
            can_skip,
            skip_penalty: penalty,
            row_limit,
            commit,
            factor,
        },
        workload_of,
    }
}

fn solve(pr: &Problem, opts: &PlanOptions, notes: &mut Vec<String>) -> Solution {
    let small = pr.option_count() <= opts.exact_options_max;
    let run_exact = match opts.method {
        Method::Lagrangian => false,
        Method::Exact => true,
        Method::Auto => small,
    };
    let lag = lagrange::solve(pr, &opts.lagrangian);
    if lag.proven_optimal || !run_exact {
        if !lag.proven_optimal && opts.method == Method::Auto {
            notes.push(format!(
                "{} options is above the exact solver's limit of {}; the gap is proven by the Lagrangian bound",
                pr.option_count(),
                opts.exact_options_max
            ));
        }
        return lag;
    }
    match exact::solve(pr, opts.exact_time_limit_s, Some(&lag.choice)) {
        Ok(s) => {
            if !s.proven_optimal {
                notes.push(format!("the exact solver stopped at its {} s time limit without a proof; the bound is the Lagrangian one", opts.exact_time_limit_s));
            }
            combine(pr, lag, s)
        }
        Err(e) => {
            notes.push(format!(
                "exact solver failed ({}); kept the Lagrangian plan and bound",
                e.0
            ));
            lag
        }
    }
}

/// The better of two plans (more placed, then cheaper) with the best of
/// both proofs. A cost bound for plans placing at least K holds for plans
/// placing more, and the kept plan places at least as many as either.
fn combine(pr: &Problem, lag: Solution, exact: Solution) -> Solution {
    let exact_better = pr.is_feasible(&exact.choice) && exact.upper_bound <= lag.upper_bound;
    let cost_bound = lag.cost_bound.max(exact.cost_bound);
    let max_placeable = lag.max_placeable.min(exact.max_placeable);
    let lower_bound = lag.lower_bound.max(exact.lower_bound);
    let iterations = lag.iterations;
    let mut keep = if exact_better { exact } else { lag };
    keep.cost_bound = cost_bound.min(pr.cost(&keep.choice));
    keep.max_placeable = max_placeable;
    keep.lower_bound = lower_bound.min(keep.upper_bound);
    keep.iterations = iterations;
    keep.proven_optimal = keep.proven_optimal
        || (Problem::placed(&keep.choice) >= max_placeable
            && keep.upper_bound - keep.lower_bound <= 1e-9 * keep.upper_bound.abs().max(1.0));
    keep
}

/// Workloads per thread below which candidates are generated on one.
const PARALLEL_CHUNK_MIN: usize = 512;

/// Every workload's candidates, in fleet order. Each workload's are
/// independent and the context is read-only, so large fleets are split
/// across the machine's cores (at most 4); the result is the same as on
/// one thread, whatever the count.
fn generate_all(ctx: &Context, workloads: &[Workload]) -> Vec<WorkloadCandidates> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(workloads.len() / PARALLEL_CHUNK_MIN)
        .max(1);
    if threads == 1 {
        return workloads
            .iter()
            .map(|w| candidates::generate(ctx, w))
            .collect();
    }
    let chunk = workloads.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = workloads
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|w| candidates::generate(ctx, w))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(workloads.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // A panic in a worker is a bug; surface it as one.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// The solver-neutral problem a fleet becomes (for the solver benchmarks
/// and tests; `plan` builds it the same way).
pub fn problem_of(fleet: &Fleet, catalog: &Catalog) -> Problem {
    let ctx = Context::new(catalog, fleet);
    let cands = generate_all(&ctx, &fleet.workloads);
    build(&ctx, &cands).problem
}

pub fn plan(fleet: &Fleet, catalog: &Catalog, opts: &PlanOptions) -> Plan {
    let ctx = Context::new(catalog, fleet);
    let cands = generate_all(&ctx, &fleet.workloads);
    let built = build(&ctx, &cands);
    let mut notes = Vec::new();
    for (w, wc) in cands.iter().enumerate() {
        if wc.truncated {
            notes.push(format!(
                "{}: more than {} undominated options; the dearest were dropped",
                fleet.workloads[w].name,
                candidates::OPTIONS_PER_WORKLOAD_MAX
            ));
        }
    }
    let sol = if built.problem.options.is_empty() {
        Solution {
            choice: Vec::new(),
            upper_bound: built.problem.objective(&Vec::new()),
            lower_bound: built.problem.objective(&Vec::new()),
            method: "none (nothing to place)",
            iterations: 0,
            proven_optimal: true,
            cost_bound: 0.0,
            max_placeable: 0,
        }
    } else {
        solve(&built.problem, opts, &mut notes)
    };
    assemble(&ctx, &cands, &built, &sol, notes, &opts.explain)
}

fn sku_of(ctx: &Context, c: &Candidate) -> (String, Option<String>) {
    match c.source {
        Source::Offering(i) => (ctx.catalog.offerings[i].sku.clone(), None),
        Source::Pool(p) => (
            ctx.fleet.capacity[p].sku.clone(),
            Some(ctx.fleet.capacity[p].name.clone()),
        ),
    }
}

fn accelerator_of(w: &Workload, c: &Candidate) -> String {
    w.accelerators
        .get(c.alternative)
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn histogram(f: &Filtering, w: &Workload) -> Vec<String> {
    let mut out = Vec::new();
    let render = |map: &BTreeMap<&'static str, usize>| -> String {
        crate::reasons::ORDER
            .iter()
            .filter_map(|r| map.get(r).map(|n| (*r, *n)))
            .map(|(r, n)| match r {
                crate::reasons::RESIDENCY => format!("{n} {r} {}", w.residency.join("/")),
                crate::reasons::NO_VARIANT => {
                    format!("{n} no variant for {}", w.no_variant.join(", "))
                }
                crate::reasons::COMPLIANCE => format!("{n} {r} ({})", w.compliance.join(", ")),
                crate::reasons::LATENCY => format!("{n} {r} ({} ms)", w.latency_ms.unwrap_or(0.0)),
                _ => format!("{n} {r}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(format!(
        "{} offerings: {}",
        f.offerings_evaluated,
        render(&f.offerings_filtered)
    ));
    if f.pools_evaluated > 0 {
        out.push(format!(
            "{} reserved pools: {}",
            f.pools_evaluated,
            render(&f.pools_filtered)
        ));
    }
    out
}

struct FleetState {
    spend: Vec<f64>,
    usage: Vec<f64>,
}

/// A lower bound on the cost of an optimal plan that holds however many
/// workloads capacity leaves out. The optimum places at least as many
/// workloads as `choice` does (the skip penalty outweighs any cost), each
/// at no less than its cheapest option after discounts; and every
/// commitment is paid: a bill is Σ_p max(commit_p, (1 − d_p)·spend_p),
/// which is at least either sum.
pub fn placement_floor(pr: &Problem, choice: &Choice) -> f64 {
    let placed = choice.iter().filter(|c| c.is_some()).count();
    let mut cheapest: Vec<f64> = pr
        .options
        .iter()
        .map(|opts| {
            opts.iter()
                .map(|o| o.spend.iter().map(|&(p, s)| pr.factor[p] * s).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
        })
        .filter(|c| c.is_finite())
        .collect();
    cheapest.sort_by(f64::total_cmp);
    let discounted: f64 = cheapest.iter().take(placed).sum();
    let committed: f64 = pr.commit.iter().sum();
    discounted.max(committed)
}

fn assemble(
    ctx: &Context,
    cands: &[WorkloadCandidates],
    built: &Built,
    sol: &Solution,
    notes: Vec<String>,
    scope: &ExplainScope,
) -> Plan {
    let fleet = ctx.fleet;
    let pr = &built.problem;
    let mut chosen: Vec<Option<&Candidate>> = vec![None; fleet.workloads.len()];
    for (i, &w) in built.workload_of.iter().enumerate() {
        chosen[w] = sol
            .choice
            .get(i)
            .copied()
            .flatten()
            .and_then(|o| cands[w].options.get(o));
    }
    let choice_full: Choice = sol.choice.clone();
    let state = FleetState {
        spend: pr.spend(&choice_full),
        usage: pr.usage(&choice_full),
    };

    // Exact money per provider.
    let np = ctx.providers.len();
    let mut list = vec![Usd::ZERO; np];
    let mut row_used = vec![0u64; ctx.rows.len()];
    for c in chosen.iter().flatten() {
        list[c.provider as usize] += c.compute_usd;
        list[c.egress_provider as usize] += c.egress_usd;
        for &(r, a) in &c.uses {
            row_used[r] += a;
        }
    }
    let mut providers = Vec::new();
    let mut total = Usd::ZERO;
    let mut shortfall_total = Usd::ZERO;
    for (p, name) in ctx.providers.iter().enumerate() {
        let contract = fleet.contracts.iter().find(|c| c.provider == *name);
        let (discount, commit) = contract
            .map(|c| (c.discount_pct, c.commit_usd))
            .unwrap_or((0.0, Usd::ZERO));
        let discounted = if discount > 0.0 {
            list[p].discounted_pct(discount)
        } else {
            list[p]
        };
        let cost = discounted.max(commit);
        let shortfall = (commit - discounted).max(Usd::ZERO);
        total += cost;
        shortfall_total += shortfall;
        if list[p] > Usd::ZERO || contract.is_some() {
            providers.push(ProviderSummary {
                provider: name.clone(),
                contract: contract.map(|c| c.name.clone()),
                list_spend_usd: list[p],
                discount_pct: discount,
                discounted_spend_usd: discounted,
                commit_usd: commit,
                cost_usd: cost,
                shortfall_usd: shortfall,
                commitment_used_pct: (commit > Usd::ZERO)
                    .then(|| 100.0 * discounted.as_f64().min(commit.as_f64()) / commit.as_f64()),
            });
        }
    }

    let mut placements = Vec::with_capacity(fleet.workloads.len());
    for (w, wl) in fleet.workloads.iter().enumerate() {
        let wc = &cands[w];
        let wanted = match scope {
            ExplainScope::None => false,
            ExplainScope::All => true,
            ExplainScope::Workload(name) => *name == wl.name,
        };
        let explanation = wanted.then(|| explain(ctx, wl, wc, chosen[w], built, &state));
        let mut p = Placement {
            workload: wl.name.clone(),
            kind: wl.kind,
            status: Status::Infeasible,
            provider: None,
            region: None,
            sku: None,
            accelerator: None,
            nodes: None,
            replicas: wl.replicas,
            pricing: None,
            pool: None,
            hourly_usd: None,
            hours: None,
            cost_usd: None,
            compute_usd: None,
            egress_usd: None,
            reasons: Vec::new(),
            explanation,
        };
        match chosen[w] {
            Some(c) => {
                let key = &ctx.regions[c.region as usize];
                let (sku, pool) = sku_of(ctx, c);
                p.status = Status::Placed;
                p.provider = Some(key.provider.clone());
                p.region = Some(key.region.clone());
                p.sku = Some(sku);
                p.pool = pool;
                p.accelerator = Some(accelerator_of(wl, c));
                p.nodes = Some(wl.nodes);
                p.pricing = Some(c.pricing);
                p.hourly_usd = Some(c.hourly_usd);
                p.hours = Some((c.hours * 1e6).round() / 1e6);
                p.cost_usd = Some(c.list_cost_usd());
                p.compute_usd = Some(c.compute_usd);
                p.egress_usd = Some(c.egress_usd);
            }
            None if wc.options.is_empty() => {
                p.reasons = histogram(&wc.filtering, wl);
                p.reasons.insert(
                    0,
                    "no offering or reserved pool satisfies every hard constraint".into(),
                );
            }
            None => {
                let rows: Vec<String> = wc
                    .options
                    .iter()
                    .flat_map(|c| c.uses.iter().map(|(r, _)| *r))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|r| {
                        format!(
                            "{} ({} of {} in use)",
                            ctx.rows[r].name, row_used[r], ctx.rows[r].limit
                        )
                    })
                    .collect();
                p.reasons.push(format!(
                    "every feasible option needs capacity that other workloads hold: {}",
                    rows.join("; ")
                ));
            }
        }
        placements.push(p);
    }

    let horizon_hours = placements
        .iter()
        .filter_map(|p| p.hours)
        .fold(0.0f64, f64::max);
    let reserved = fleet
        .capacity
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let node_hours_used: f64 = fleet
                .workloads
                .iter()
                .zip(&placements)
                .filter(|(_, p)| p.pool.as_deref() == Some(c.name.as_str()))
                .map(|(w, p)| f64::from(w.nodes_total()) * p.hours.unwrap_or(0.0))
                .sum();
            let used = row_used[ctx.pool_row(i)];
            let prepaid = c.hourly_usd.times_int(i64::from(c.nodes));
            let idle = c.hourly_usd.times_int(i64::from(c.nodes) - used as i64);
            PoolSummary {
                name: c.name.clone(),
                provider: c.region.provider.clone(),
                region: c.region.region.clone(),
                sku: c.sku.clone(),
                nodes: c.nodes,
                nodes_used: used,
                utilisation_pct: 100.0 * used as f64 / f64::from(c.nodes.max(1)),
                prepaid_usd_per_hour: prepaid,
                idle_usd_per_hour: idle,
                horizon_hours,
                node_hours_used,
                utilisation_over_horizon_pct: if horizon_hours > 0.0 && c.nodes > 0 {
                    100.0 * node_hours_used / (f64::from(c.nodes) * horizon_hours)
                } else {
                    0.0
                },
            }
        })
        .collect();
    let quotas = ctx
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.kind, RowKind::Quota(_)))
        .map(|(i, r)| QuotaSummary {
            quota: r.name.trim_start_matches("quota ").to_string(),
            used: row_used[i],
            max: r.limit,
        })
        .collect();

    // The solver's cost bound holds for every plan placing at least as
    // many workloads; the placement floor backs it up when the solver had
    // none (an exact solve stopped by its time limit).
    let lb_f = sol.cost_bound.max(placement_floor(pr, &sol.choice));
    // Floored to the micro-dollar: the bound never rounds up. A bound a
    // micro-dollar short of the plan's exact cost is that cost (the bound
    // is summed in floats, the cost in integers).
    let mut lb_usd = Usd::from_f64_rounded((lb_f * 1e6).floor() / 1e6)
        .unwrap_or(Usd::ZERO)
        .max(Usd::ZERO)
        .min(total);
    if (total - lb_usd).micros() <= 1 {
        lb_usd = total;
    }
    let gap_pct = if total > Usd::ZERO {
        100.0 * (total - lb_usd).as_f64() / total.as_f64()
    } else {
        0.0
    };
    let placed_by_solver = Problem::placed(&sol.choice);
    let count_proven = placed_by_solver >= sol.max_placeable;
    let placed = placements
        .iter()
        .filter(|p| p.status == Status::Placed)
        .count();
    let list_cost: Usd = list.iter().copied().sum();
    Plan {
        catalog: ctx.catalog.origin.clone(),
        total_cost_usd: total,
        lower_bound_usd: lb_usd,
        gap_pct: (gap_pct * 1e4).round() / 1e4,
        list_cost_usd: list_cost,
        commitment_shortfall_usd: shortfall_total,
        placed,
        max_placeable: sol.max_placeable.max(placed),
        infeasible: placements.len() - placed,
        placements,
        providers,
        reserved,
        quotas,
        solver: SolverReport {
            method: sol.method.to_string(),
            // Optimal within the solvers' tolerance (a relative 1e-7, and
            // float error).
            proven_optimal: count_proven && gap_pct <= GAP_PROVEN_PCT,
            iterations: sol.iterations,
            workloads: pr.options.len(),
            options: pr.option_count(),
            coupling_rows: ctx.rows.len(),
            notes,
        },
        assumptions: vec![
            "all workloads run at once: capacity, quotas and replicas are concurrent counts".into(),
            format!("spot hours carry +{}% for preemptions and restarts from checkpoints", ctx.fleet.settings.spot_overhead_pct),
            "hours on an alternative scale by dense BF16 throughput per node (or `throughput:`), for serving too: a slower replica needs more replica-hours for the same traffic".into(),
            "egress is billed by the data's provider and counts toward that provider's spend".into(),
            "a contract's discount applies to all of the provider's spend; its cost is max(commitment, discounted spend)".into(),
            "reserved capacity is prepaid: using it adds no cost; quotas do not count it".into(),
        ],
    }
}

/// Fleet cost of giving workload `w` option `c`, everything else fixed.
fn fleet_cost(
    ctx: &Context,
    built: &Built,
    state: &FleetState,
    current: Option<&Candidate>,
    c: &Candidate,
) -> Result<f64, Vec<String>> {
    let pr = &built.problem;
    let mut spend = state.spend.clone();
    let mut usage = state.usage.clone();
    if let Some(cur) = current {
        let o = to_opt(cur);
        for (p, s) in o.spend {
            spend[p] -= s;
        }
        for (r, a) in o.uses {
            usage[r] -= a;
        }
    }
    let o = to_opt(c);
    let blocked: Vec<String> = o
        .uses
        .iter()
        .filter(|(r, a)| usage[*r] + a > pr.row_limit[*r] + 1e-9)
        .map(|(r, _)| {
            format!(
                "{} has {} of {} free",
                ctx.rows[*r].name,
                (pr.row_limit[*r] - usage[*r]).max(0.0),
                pr.row_limit[*r]
            )
        })
        .collect();
    if !blocked.is_empty() {
        return Err(blocked);
    }
    Ok(o.spend
        .iter()
        .map(|&(p, s)| pr.provider_cost(p, spend[p] + s) - pr.provider_cost(p, spend[p]))
        .sum())
}

fn view(
    ctx: &Context,
    w: &Workload,
    c: &Candidate,
    fc: Result<f64, Vec<String>>,
    chosen: bool,
) -> OptionView {
    let key = &ctx.regions[c.region as usize];
    let (sku, pool) = sku_of(ctx, c);
    let (fleet_cost_usd, blocked_by) = match fc {
        Ok(v) => (Usd::from_f64_rounded(v), Vec::new()),
        Err(b) => (None, b),
    };
    OptionView {
        provider: key.provider.clone(),
        region: key.region.clone(),
        sku,
        accelerator: accelerator_of(w, c),
        pricing: c.pricing,
        pool,
        hourly_usd: c.hourly_usd,
        hours: (c.hours * 1e6).round() / 1e6,
        compute_usd: c.compute_usd,
        egress_usd: c.egress_usd,
        list_cost_usd: c.list_cost_usd(),
        fleet_cost_usd,
        blocked_by,
        chosen,
    }
}

fn explain(
    ctx: &Context,
    w: &Workload,
    wc: &WorkloadCandidates,
    chosen: Option<&Candidate>,
    built: &Built,
    state: &FleetState,
) -> Explanation {
    let mut alts: Vec<OptionView> = Vec::new();
    let mut shown: Vec<&Candidate> = wc.top.iter().collect();
    if let Some(c) = chosen {
        if !shown.contains(&c) {
            shown.push(c);
        }
    }
    // Reserved pools the workload could use but that are not in the top
    // list (at list price they cost 0, yet may be blocked), up to three, so
    // prepaid capacity is always visible.
    for c in &wc.options {
        if shown.len() >= candidates::TOP_K + 3 {
            break;
        }
        if c.pricing == Pricing::Reserved && !shown.iter().any(|s| s.source == c.source) {
            shown.push(c);
        }
    }
    for c in &shown {
        let fc = fleet_cost(ctx, built, state, chosen, c);
        alts.push(view(ctx, w, c, fc, Some(*c) == chosen));
    }
    alts.sort_by(|a, b| {
        let ka = a.fleet_cost_usd.map(|u| u.micros()).unwrap_or(i64::MAX);
        let kb = b.fleet_cost_usd.map(|u| u.micros()).unwrap_or(i64::MAX);
        (!a.chosen, ka, a.list_cost_usd).cmp(&(!b.chosen, kb, b.list_cost_usd))
    });
    let why = why(ctx, w, &alts);
    let speeds = (0..w.accelerators.len())
        .map(|i| {
            let f = candidates::hours_factor(ctx, w, i);
            SpeedView {
                alternative: w.accelerators[i].to_string(),
                relative_speed: f.filter(|f| *f > 0.0).map(|f| 1.0 / f),
                hours: f.map(|f| w.hours * f),
                source: candidates::speed_source(ctx, w, i),
            }
        })
        .collect();
    Explanation {
        filtering: wc.filtering.clone(),
        alternatives: alts,
        why,
        speeds,
    }
}

fn why(ctx: &Context, w: &Workload, alts: &[OptionView]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(win) = alts.iter().find(|a| a.chosen) else {
        return out;
    };
    let label = |a: &OptionView| format!("{}:{} {} {}", a.provider, a.region, a.sku, a.pricing);
    let win_fc = win.fleet_cost_usd.unwrap_or(Usd::ZERO);
    if win.pricing == Pricing::Reserved {
        out.push(crate::reasons::why::prepaid(
            &win.pool.clone().unwrap_or_default(),
            win_fc,
        ));
    }
    if let Some(contract) = ctx
        .fleet
        .contracts
        .iter()
        .find(|c| c.provider == win.provider)
    {
        if win.pricing != Pricing::Reserved && win_fc < win.list_cost_usd {
            if win_fc == Usd::ZERO {
                out.push(crate::reasons::why::inside_commitment(
                    win.list_cost_usd,
                    &contract.name,
                    contract.commit_usd,
                ));
            } else {
                out.push(crate::reasons::why::discounted(
                    &contract.name,
                    contract.discount_pct,
                    contract.commit_usd,
                    win_fc,
                    win.list_cost_usd,
                ));
            }
        }
    }
    // One line per distinct cheaper offer (same provider, SKU and price in
    // several regions is one line).
    let mut cheaper_list: Vec<&OptionView> = Vec::new();
    for a in alts
        .iter()
        .filter(|a| !a.chosen && a.list_cost_usd < win.list_cost_usd)
    {
        if !cheaper_list.iter().any(|b| {
            b.provider == a.provider
                && b.sku == a.sku
                && b.list_cost_usd == a.list_cost_usd
                && b.blocked_by.is_empty() == a.blocked_by.is_empty()
        }) {
            cheaper_list.push(a);
        }
    }
    for a in cheaper_list.iter().take(2) {
        match (&a.fleet_cost_usd, a.blocked_by.is_empty()) {
            (_, false) => out.push(crate::reasons::why::cheaper_but_blocked(
                &label(a),
                a.list_cost_usd,
                &a.blocked_by.join("; "),
            )),
            (Some(fc), true) if *fc >= win_fc => {
                out.push(crate::reasons::why::cheaper_but_costs_more(
                    &label(a),
                    a.list_cost_usd,
                    *fc,
                    win_fc,
                ))
            }
            _ => {}
        }
    }
    let runner = alts
        .iter()
        .filter(|a| !a.chosen && a.fleet_cost_usd.is_some())
        .min_by_key(|a| a.fleet_cost_usd);
    match runner {
        Some(r) => {
            let diff = r.fleet_cost_usd.unwrap_or(Usd::ZERO) - win_fc;
            out.push(crate::reasons::why::runner_up(
                &label(r),
                r.fleet_cost_usd.unwrap_or(Usd::ZERO),
                diff,
            ));
        }
        None => out.push(crate::reasons::why::NO_OTHER.into()),
    }
    if out.len() == 1 && w.accelerators.len() > 1 {
        out.insert(
            0,
            crate::reasons::why::cheapest_across(w.accelerators.len()),
        );
    } else if out.len() == 1 {
        out.insert(0, crate::reasons::why::CHEAPEST.into());
    }
    out
}
