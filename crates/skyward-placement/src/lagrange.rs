//! Scalable solver: Lagrangian relaxation of the coupling rows and the
//! commitment terms, a projected subgradient on the multipliers, and a
//! primal repair + local search for feasible plans.
//!
//! For any row prices λ ≥ 0 and provider prices μ ∈ [0, 1] (μ_p is the
//! share of a list dollar on p that costs money: 0 while the commitment is
//! unspent, 1 past it), using max(C, fS) = max_μ (1−μ)C + μfS,
//!
//! ```text
//!   L(λ, μ) = Σ_w min_o [ Σ_p μ_p f_p s_{o,p} + Σ_r λ_r a_{o,r} ]
//!             + Σ_p (1 − μ_p) C_p − Σ_r λ_r limit_r
//! ```
//!
//! is a lower bound on the optimum; each workload's minimum is independent,
//! so one evaluation costs one pass over the options. The best L found is
//! the reported bound, so the gap is proven whatever the convergence.

// Loops index several parallel arrays (options, spend, usage) at once.
#![allow(clippy::needless_range_loop)]

use crate::problem::{Choice, Problem, Solution};

pub const ITERATIONS_MAX: usize = 400;
pub const LOCAL_SEARCH_PASSES_MAX: usize = 30;

#[derive(Debug, Clone)]
pub struct Settings {
    pub iterations_max: usize,
    /// Stop when (UB − LB) ≤ gap_target · UB.
    pub gap_target: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            iterations_max: ITERATIONS_MAX,
            gap_target: 1e-5,
        }
    }
}

struct Duals {
    /// Row prices in scaled units (λ_r = lam[r] · scale[r]).
    lam: Vec<f64>,
    scale: Vec<f64>,
    mu: Vec<f64>,
}

impl Duals {
    fn row_price(&self, r: usize) -> f64 {
        self.lam[r] * self.scale[r]
    }
}

fn reduced_cost(pr: &Problem, d: &Duals, w: usize, o: usize) -> f64 {
    let opt = &pr.options[w][o];
    let mut c = 0.0;
    for &(p, s) in &opt.spend {
        c += d.mu[p] * pr.factor[p] * s;
    }
    for &(r, a) in &opt.uses {
        c += d.row_price(r) * a;
    }
    c
}

/// Subproblem: every workload's cheapest option at these prices.
fn relax(pr: &Problem, d: &Duals) -> (f64, Choice) {
    let mut total = 0.0;
    let mut choice = Vec::with_capacity(pr.options.len());
    for w in 0..pr.options.len() {
        let mut best = if pr.can_skip[w] {
            pr.skip_penalty
        } else {
            f64::INFINITY
        };
        let mut arg = None;
        for o in 0..pr.options[w].len() {
            let rc = reduced_cost(pr, d, w, o);
            if rc < best {
                best = rc;
                arg = Some(o);
            }
        }
        total += best;
        choice.push(arg);
    }
    for p in 0..pr.providers() {
        total += (1.0 - d.mu[p]) * pr.commit[p];
    }
    for (r, l) in pr.row_limit.iter().enumerate() {
        total -= d.row_price(r) * l;
    }
    (total, choice)
}

/// Greedy repair: workloads in order of regret, each to its cheapest
/// option (at these prices) that still fits.
fn repair(pr: &Problem, d: &Duals) -> Choice {
    let n = pr.options.len();
    let mut ranked: Vec<Vec<(f64, usize)>> = Vec::with_capacity(n);
    let mut regret: Vec<(f64, usize)> = Vec::with_capacity(n);
    for w in 0..n {
        let mut v: Vec<(f64, usize)> = (0..pr.options[w].len())
            .map(|o| (reduced_cost(pr, d, w, o), o))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let r = match (v.first(), v.get(1)) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => f64::INFINITY,
        };
        regret.push((r, w));
        ranked.push(v);
    }
    regret.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let order: Vec<usize> = regret.iter().map(|&(_, w)| w).collect();
    place_in_order(pr, &order, &ranked)
}

/// Each workload in `order` on its first option in `ranked` order that
/// still fits the limited rows.
fn place_in_order(pr: &Problem, order: &[usize], ranked: &[Vec<(f64, usize)>]) -> Choice {
    let mut used = vec![0.0; pr.row_limit.len()];
    let mut choice: Choice = vec![None; pr.options.len()];
    for &w in order {
        for &(_, o) in &ranked[w] {
            let opt = &pr.options[w][o];
            if opt
                .uses
                .iter()
                .all(|&(r, a)| used[r] + a <= pr.row_limit[r] + 1e-9)
            {
                for &(r, a) in &opt.uses {
                    used[r] += a;
                }
                choice[w] = Some(o);
                break;
            }
        }
    }
    choice
}

/// First-improvement local search on the true objective: move one workload
/// at a time to the option that lowers the total most and still fits.
/// A repair that packs for count: workloads by the smallest share of the
/// limited rows any of their options takes, each on its best option (by
/// reduced cost) that still fits. Taking the smallest first places the
/// most when capacity is short (the regret order can spend a quota on one
/// big gang that three small ones would have shared); local search then
/// works on the cost.
fn repair_by_size(pr: &Problem, d: &Duals) -> Choice {
    let n = pr.options.len();
    let share = |w: usize, o: usize| -> f64 {
        pr.options[w][o]
            .uses
            .iter()
            .map(|&(r, a)| a / pr.row_limit[r].max(1e-9))
            .sum()
    };
    let mut order: Vec<(f64, usize)> = (0..n)
        .map(|w| {
            let s = (0..pr.options[w].len())
                .map(|o| share(w, o))
                .fold(f64::INFINITY, f64::min);
            (s, w)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let ranked: Vec<Vec<(f64, usize)>> = (0..n)
        .map(|w| {
            let mut v: Vec<(f64, usize)> = (0..pr.options[w].len())
                .map(|o| (reduced_cost(pr, d, w, o), o))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v
        })
        .collect();
    let order: Vec<usize> = order.iter().map(|&(_, w)| w).collect();
    place_in_order(pr, &order, &ranked)
}

pub fn local_search(pr: &Problem, choice: &mut Choice) {
    let mut spend = pr.spend(choice);
    let mut used = pr.usage(choice);
    for _ in 0..LOCAL_SEARCH_PASSES_MAX {
        let mut improved = false;
        for w in 0..pr.options.len() {
            let current = choice[w];
            if let Some(o) = current {
                for &(p, s) in &pr.options[w][o].spend {
                    spend[p] -= s;
                }
                for &(r, a) in &pr.options[w][o].uses {
                    used[r] -= a;
                }
            }
            let delta = |o: Option<usize>| -> f64 {
                match o {
                    None => pr.skip_penalty,
                    Some(o) => pr.options[w][o]
                        .spend
                        .iter()
                        .map(|&(p, s)| {
                            pr.provider_cost(p, spend[p] + s) - pr.provider_cost(p, spend[p])
                        })
                        .sum(),
                }
            };
            let fits = |o: usize| {
                pr.options[w][o]
                    .uses
                    .iter()
                    .all(|&(r, a)| used[r] + a <= pr.row_limit[r] + 1e-9)
            };
            let mut best = current;
            let mut best_cost = if current.is_none() && !pr.can_skip[w] {
                f64::INFINITY
            } else {
                delta(current)
            };
            if pr.can_skip[w] && pr.skip_penalty < best_cost - 1e-9 {
                best = None;
                best_cost = pr.skip_penalty;
            }
            for o in 0..pr.options[w].len() {
                if Some(o) == current || !fits(o) {
                    continue;
                }
                let c = delta(Some(o));
                if c < best_cost - 1e-6 * (1.0 + best_cost.abs()) {
                    best = Some(o);
                    best_cost = c;
                }
            }
            if best != current {
                improved = true;
            }
            choice[w] = best;
            if let Some(o) = best {
                for &(p, s) in &pr.options[w][o].spend {
                    spend[p] += s;
                }
                for &(r, a) in &pr.options[w][o].uses {
                    used[r] += a;
                }
            }
        }
        if !improved {
            break;
        }
    }
}

/// Polishes a candidate plan by local search and keeps it if it is
/// feasible and cheaper than the best so far.
fn improve(pr: &Problem, mut c: Choice, ub: &mut f64, best: &mut Choice) {
    local_search(pr, &mut c);
    let v = pr.objective(&c);
    if v < *ub && pr.is_feasible(&c) {
        *ub = v;
        *best = c;
    }
}

pub fn solve(pr: &Problem, settings: &Settings) -> Solution {
    let rows = pr.row_limit.len();
    let mut scale = vec![1.0; rows];
    for opts in &pr.options {
        for opt in opts {
            let list: f64 = opt.spend.iter().map(|x| x.1).sum();
            for &(r, a) in &opt.uses {
                if a > 0.0 {
                    scale[r] = f64::max(scale[r], list / a);
                }
            }
        }
    }
    // Start from list prices (μ = 1) and no row prices; then set each
    // provider's μ by whether that relaxed plan overspends its commitment.
    let mut d = Duals {
        lam: vec![0.0; rows],
        scale,
        mu: vec![1.0; pr.providers()],
    };
    let (_, first) = relax(pr, &d);
    let s0 = pr.spend(&first);
    for p in 0..pr.providers() {
        if pr.commit[p] > 0.0 && pr.factor[p] * s0[p] < pr.commit[p] {
            d.mu[p] = 0.0;
        }
    }
    let mut best_choice = repair(pr, &d);
    local_search(pr, &mut best_choice);
    let mut ub = pr.objective(&best_choice);
    improve(pr, repair_by_size(pr, &d), &mut ub, &mut best_choice);
    let mut lb = f64::NEG_INFINITY;
    let mut best_duals = (d.lam.clone(), d.mu.clone());
    let mut theta = 1.0;
    let mut since_improve = 0;
    let mut iterations = 0;
    for it in 0..settings.iterations_max {
        iterations = it + 1;
        let (l, x) = relax(pr, &d);
        if !lb.is_finite() || l > lb + 1e-9 * (1.0 + lb.abs()) {
            lb = l;
            best_duals = (d.lam.clone(), d.mu.clone());
            since_improve = 0;
        } else {
            since_improve += 1;
            if since_improve >= 10 {
                theta *= 0.5;
                since_improve = 0;
            }
        }
        if pr.is_feasible(&x) {
            improve(pr, x.clone(), &mut ub, &mut best_choice);
        } else if it % 10 == 9 {
            improve(pr, repair(pr, &d), &mut ub, &mut best_choice);
            improve(pr, repair_by_size(pr, &d), &mut ub, &mut best_choice);
        }
        if ub - lb <= settings.gap_target * ub.abs().max(1.0) || theta < 1e-6 {
            break;
        }
        // Subgradient, in dollars on every coordinate.
        let usage = pr.usage(&x);
        let spend = pr.spend(&x);
        let g_rows: Vec<f64> = (0..rows)
            .map(|r| (usage[r] - pr.row_limit[r]) * d.scale[r])
            .collect();
        let g_prov: Vec<f64> = (0..pr.providers())
            .map(|p| {
                if pr.commit[p] > 0.0 {
                    pr.factor[p] * spend[p] - pr.commit[p]
                } else {
                    0.0
                }
            })
            .collect();
        let norm2: f64 = g_rows.iter().chain(&g_prov).map(|g| g * g).sum();
        if norm2 <= 0.0 {
            break;
        }
        let step = theta * (ub - l).max(1e-9 * ub.abs().max(1.0)) / norm2;
        for r in 0..rows {
            // A row price moves in scaled units: λ_r = lam·scale, so
            // dL/dlam = (usage − limit)·scale = g_rows[r].
            d.lam[r] = (d.lam[r] + step * g_rows[r]).max(0.0);
        }
        for p in 0..pr.providers() {
            if pr.commit[p] > 0.0 {
                d.mu[p] = (d.mu[p] + step * g_prov[p]).clamp(0.0, 1.0);
            }
        }
    }
    // A last repair at the best multipliers.
    d.lam = best_duals.0;
    d.mu = best_duals.1;
    improve(pr, repair(pr, &d), &mut ub, &mut best_choice);
    improve(pr, repair_by_size(pr, &d), &mut ub, &mut best_choice);
    let lb = lb.min(ub);
    Solution {
        choice: best_choice,
        upper_bound: ub,
        lower_bound: lb,
        method: "lagrangian",
        iterations,
        proven_optimal: ub - lb <= 1e-9 * ub.abs().max(1.0),
    }
}
