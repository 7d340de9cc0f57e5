//! Scalable solver: Lagrangian relaxation of the coupling rows, the
//! commitment terms and the count placed, a projected subgradient on the
//! multipliers, and primal repair + local search (single moves and
//! one-step ejections) for feasible plans.
//!
//! Placing workloads comes first (the skip penalty outweighs any cost), so
//! the solver proves two things separately:
//!
//! 1. **The most workloads any plan can place.** For row prices λ ≥ 0,
//!
//!    ```text
//!    U(λ) = Σ_r λ_r limit_r + Σ_w max(0, 1 − min_o Σ_r λ_r a_{o,r})
//!    ```
//!
//!    is at least the LP relaxation's maximum count (weak duality), so
//!    ⌊min U⌋ bounds every plan's count. When it equals the count placed,
//!    the count is proven maximal.
//! 2. **The cheapest cost of placing at least K workloads** (K = the count
//!    placed). For row prices λ ≥ 0, provider prices μ ∈ [0, 1] (μ_p is the
//!    share of a list dollar on p that costs money: 0 while the commitment
//!    is unspent, 1 past it; max(C, fS) = max_μ (1−μ)C + μfS) and a count
//!    price ν ≥ 0,
//!
//!    ```text
//!    L(λ, μ, ν) = Σ_w min(0 if skippable, min_o [Σ_p μ_p f_p s_{o,p} + Σ_r λ_r a_{o,r}] − ν)
//!                 + ν K + Σ_p (1 − μ_p) C_p − Σ_r λ_r limit_r
//!    ```
//!
//!    is a lower bound on it. Each workload's minimum is independent, so
//!    one evaluation is one pass over the options; the best L found is the
//!    reported bound, so the gap is proven whatever the convergence.
//!
//! The count price ν keeps the bound meaningful when capacity leaves
//! workloads out: a fixed skip penalty in the objective would subtract a
//! whole penalty per workload left out and take the bound to nothing.

// Loops index several parallel arrays (options, spend, usage) at once.
#![allow(clippy::needless_range_loop)]

use crate::cutting;
use crate::problem::{Choice, Problem, Solution};

/// Oracle calls per dual (count and cost), each one pass over the options.
pub const ITERATIONS_MAX: usize = 300;
pub const LOCAL_SEARCH_PASSES_MAX: usize = 30;
/// Entries of a row's list an ejection or replacement scans.
pub const SCAN_MAX: usize = 512;
/// Placed workloads an ejection looks at per blocked row.
pub const EJECT_CANDIDATES_MAX: usize = 48;
/// Up to this many workloads, the last phase also polishes the regret
/// and size-first repairs (on 300-workload tight fleets they found the
/// maximum count where the LP repair alone fell one short).
pub const EXTRA_REPAIRS_MAX: usize = 2_000;

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

#[derive(Clone)]
struct Duals {
    /// Row prices in scaled units (λ_r = lam[r] · scale[r]).
    lam: Vec<f64>,
    scale: Vec<f64>,
    mu: Vec<f64>,
    /// Count price in scaled units (ν = nu · nu_scale).
    nu: f64,
    nu_scale: f64,
}

impl Duals {
    fn row_price(&self, r: usize) -> f64 {
        self.lam[r] * self.scale[r]
    }
    fn count_price(&self) -> f64 {
        self.nu * self.nu_scale
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

fn cheapest(pr: &Problem, d: &Duals, w: usize) -> (f64, Option<usize>) {
    let mut best = (f64::INFINITY, None);
    for o in 0..pr.options[w].len() {
        let rc = reduced_cost(pr, d, w, o);
        if rc < best.0 {
            best = (rc, Some(o));
        }
    }
    best
}

/// The Lagrangian subproblem: L(λ, μ, ν) for plans placing at least
/// `count`, and the relaxed choice.
fn relax(pr: &Problem, d: &Duals, count: usize) -> (f64, Choice) {
    let nu = d.count_price();
    let mut total = 0.0;
    let mut choice = Vec::with_capacity(pr.options.len());
    for w in 0..pr.options.len() {
        let (best, arg) = cheapest(pr, d, w);
        let v = best - nu;
        if pr.can_skip[w] && v >= 0.0 {
            choice.push(None);
        } else {
            total += v;
            choice.push(arg);
        }
    }
    total += nu * count as f64;
    for p in 0..pr.providers() {
        total += (1.0 - d.mu[p]) * pr.commit[p];
    }
    for (r, l) in pr.row_limit.iter().enumerate() {
        total -= d.row_price(r) * l;
    }
    (total, choice)
}

/// Proven count bound (see the module notes) and the row prices that
/// give it, per row (λ_r, in "workloads per unit of the row"). Stops as
/// soon as the bound reaches `target` (a count already placed): then that
/// count is proven maximal.
pub fn count_bound(pr: &Problem, target: usize, iterations: usize) -> (usize, Vec<f64>) {
    let n = pr.options.len();
    let rows = pr.row_limit.len();
    if rows == 0 || target >= n {
        return (n, vec![0.0; rows]);
    }
    // λ_r = t_r / (largest amount one option takes from r).
    let mut amax = vec![0.0f64; rows];
    let mut amin = vec![f64::INFINITY; rows];
    for opts in &pr.options {
        for opt in opts {
            for &(r, a) in &opt.uses {
                amax[r] = amax[r].max(a);
                if a > 0.0 {
                    amin[r] = amin[r].min(a);
                }
            }
        }
    }
    let s: Vec<f64> = amax
        .iter()
        .map(|a| if *a > 0.0 { 1.0 / a } else { 0.0 })
        .collect();
    let hi: Vec<f64> = (0..rows)
        .map(|r| {
            if amin[r].is_finite() {
                1.5 * amax[r] / amin[r]
            } else {
                0.0
            }
        })
        .collect();
    let u_of = |t: &[f64]| -> (f64, Vec<f64>) {
        let mut u = 0.0;
        let mut g = vec![0.0; rows];
        for r in 0..rows {
            u += t[r] * s[r] * pr.row_limit[r];
            g[r] = pr.row_limit[r] * s[r];
        }
        for opts in &pr.options {
            let mut m = (f64::INFINITY, usize::MAX);
            for (o, opt) in opts.iter().enumerate() {
                let v: f64 = opt.uses.iter().map(|&(r, a)| t[r] * s[r] * a).sum();
                if v < m.0 {
                    m = (v, o);
                }
            }
            if m.0 < 1.0 {
                u += 1.0 - m.0;
                for &(r, a) in &opts[m.1].uses {
                    g[r] -= a * s[r];
                }
            }
        }
        (u, g)
    };
    let proven = |u: f64| ((u + 1e-6).floor().max(0.0) as usize).min(n);
    let mut oracle = |t: &[f64]| {
        let (u, g) = u_of(t);
        (-u, g.iter().map(|x| -x).collect())
    };
    let zero = vec![0.0; rows];
    let out = cutting::maximise(
        &cutting::Region {
            lo: &zero,
            hi: &hi,
            start: &zero,
            step: &vec![0.5; rows],
        },
        iterations,
        1e-7,
        &mut oracle,
        &|best| proven(-best) <= target,
    );
    let prices = (0..rows).map(|r| out.best_point[r] * s[r]).collect();
    (proven(-out.best_value), prices)
}

/// A plan being improved: the choice with its row use and provider spend.
struct State {
    choice: Choice,
    used: Vec<f64>,
    spend: Vec<f64>,
}

impl State {
    fn new(pr: &Problem, choice: Choice) -> State {
        State {
            used: pr.usage(&choice),
            spend: pr.spend(&choice),
            choice,
        }
    }
    fn take(&mut self, pr: &Problem, w: usize) {
        if let Some(o) = self.choice[w].take() {
            for &(p, s) in &pr.options[w][o].spend {
                self.spend[p] -= s;
            }
            for &(r, a) in &pr.options[w][o].uses {
                self.used[r] -= a;
            }
        }
    }
    fn put(&mut self, pr: &Problem, w: usize, o: usize) {
        debug_assert!(self.choice[w].is_none());
        for &(p, s) in &pr.options[w][o].spend {
            self.spend[p] += s;
        }
        for &(r, a) in &pr.options[w][o].uses {
            self.used[r] += a;
        }
        self.choice[w] = Some(o);
    }
    fn fits(&self, pr: &Problem, w: usize, o: usize) -> bool {
        pr.options[w][o]
            .uses
            .iter()
            .all(|&(r, a)| self.used[r] + a <= pr.row_limit[r] + 1e-9)
    }
    /// What adding option o of w (not placed) adds to the bill.
    fn added_cost(&self, pr: &Problem, w: usize, o: usize) -> f64 {
        pr.options[w][o]
            .spend
            .iter()
            .map(|&(p, s)| {
                pr.provider_cost(p, self.spend[p] + s) - pr.provider_cost(p, self.spend[p])
            })
            .sum()
    }
    /// Placed workloads per row (a snapshot; entries may go stale).
    fn by_row(&self, pr: &Problem) -> Vec<Vec<usize>> {
        let mut v = vec![Vec::new(); pr.row_limit.len()];
        for (w, c) in self.choice.iter().enumerate() {
            if let Some(o) = c {
                for &(r, _) in &pr.options[w][*o].uses {
                    v[r].push(w);
                }
            }
        }
        v
    }
}

/// The single row an option is blocked on, if exactly one.
fn blocked_row(pr: &Problem, st: &State, w: usize, o: usize) -> Option<usize> {
    let mut found = None;
    for &(r, a) in &pr.options[w][o].uses {
        if st.used[r] + a > pr.row_limit[r] + 1e-9 {
            if found.is_some() {
                return None;
            }
            found = Some(r);
        }
    }
    found
}

/// Tries to make room for option `o` of the unplaced workload `w` by
/// moving one placed workload off the row that blocks it. `accept` sees
/// the cost change of the move of the other workload plus w's new cost
/// and decides; with `cheapest` the cheapest acceptable move is taken,
/// otherwise the first. On success the state holds both moves.
fn eject(
    pr: &Problem,
    st: &mut State,
    by_row: &[Vec<usize>],
    w: usize,
    o: usize,
    accept: &dyn Fn(f64) -> bool,
    cheapest: bool,
) -> bool {
    let Some(r) = blocked_row(pr, st, w, o) else {
        return false;
    };
    let mut best: Option<(f64, usize, usize)> = None;
    let mut tried = 0;
    // Every entry scanned counts (stale and too-small ones too), so the
    // work per attempt is bounded whatever the row's length.
    for &v in by_row[r].iter().take(SCAN_MAX) {
        if v == w {
            continue;
        }
        let Some(cur) = st.choice[v] else { continue };
        let Some(&(_, a_v)) = pr.options[v][cur].uses.iter().find(|x| x.0 == r) else {
            continue;
        };
        let need = st.used[r]
            + pr.options[w][o]
                .uses
                .iter()
                .find(|x| x.0 == r)
                .map_or(0.0, |x| x.1)
            - pr.row_limit[r];
        if a_v + 1e-9 < need {
            continue;
        }
        tried += 1;
        if tried > EJECT_CANDIDATES_MAX || (best.is_some() && !cheapest) {
            break;
        }
        st.take(pr, v);
        let removed: f64 = -st.added_cost(pr, v, cur);
        if st.fits(pr, w, o) {
            let add_w = st.added_cost(pr, w, o);
            st.put(pr, w, o);
            for o2 in 0..pr.options[v].len() {
                if o2 == cur || !st.fits(pr, v, o2) {
                    continue;
                }
                let delta = removed + add_w + st.added_cost(pr, v, o2);
                if accept(delta) && best.is_none_or(|b| delta < b.0) {
                    best = Some((delta, v, o2));
                }
            }
            st.take(pr, w);
        }
        st.put(pr, v, cur);
    }
    // The cheapest acceptable ejection, applied.
    let Some((_, v, o2)) = best else {
        return false;
    };
    st.take(pr, v);
    st.put(pr, w, o);
    st.put(pr, v, o2);
    true
}

/// Places more workloads by ejections, smallest first, cheapest option
/// first. Returns whether the count rose.
fn augment(pr: &Problem, st: &mut State, size: &[f64]) -> bool {
    let mut unplaced: Vec<usize> = (0..pr.options.len())
        .filter(|&w| st.choice[w].is_none())
        .collect();
    if unplaced.is_empty() {
        return false;
    }
    unplaced.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
    let mut by_row = st.by_row(pr);
    let mut gained = false;
    for w in unplaced {
        let mut order: Vec<(f64, usize)> = (0..pr.options[w].len())
            .map(|o| (st.added_cost(pr, w, o), o))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, o) in &order {
            if st.fits(pr, w, o) {
                st.put(pr, w, o);
            } else if !eject(pr, st, &by_row, w, o, &|_| true, true) {
                continue;
            }
            for &(r, _) in &pr.options[w][o].uses {
                by_row[r].push(w);
            }
            gained = true;
            break;
        }
    }
    gained
}

/// Lowers the cost by pair moves: a placed workload takes a cheaper option
/// that is blocked, and one workload on the blocking row moves elsewhere,
/// when the two together save money. Bounded passes.
fn swap_improve(pr: &Problem, st: &mut State) -> bool {
    let mut by_row = st.by_row(pr);
    let mut improved = false;
    for _ in 0..2 {
        let mut any = false;
        for w in 0..pr.options.len() {
            let Some(cur) = st.choice[w] else { continue };
            st.take(pr, w);
            let current = st.added_cost(pr, w, cur);
            let mut moved = false;
            let mut cheaper: Vec<(f64, usize)> = (0..pr.options[w].len())
                .filter(|&o| o != cur)
                .map(|o| (st.added_cost(pr, w, o), o))
                .filter(|(c, _)| *c < current - 1e-6 * (1.0 + current.abs()))
                .collect();
            cheaper.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, o) in cheaper.iter().take(4) {
                let limit = current;
                if !st.fits(pr, w, o)
                    && eject(
                        pr,
                        st,
                        &by_row,
                        w,
                        o,
                        &|delta| delta < limit - 1e-6 * (1.0 + limit.abs()),
                        false,
                    )
                {
                    for &(r, _) in &pr.options[w][o].uses {
                        by_row[r].push(w);
                    }
                    moved = true;
                    break;
                }
            }
            if !moved {
                st.put(pr, w, cur);
            } else {
                any = true;
            }
        }
        improved |= any;
        if !any {
            break;
        }
        by_row = st.by_row(pr);
    }
    improved
}

/// Lowers the cost at the same count: an unplaced workload takes the
/// place of a dearer placed one on the row that blocks it (the dearer one
/// is left out). Gangs that free more capacity than they take let
/// `augment` place more afterwards. Bounded passes.
fn replace_improve(pr: &Problem, st: &mut State, size: &[f64]) -> bool {
    let mut improved = false;
    for _ in 0..3 {
        let mut any = false;
        let by_row = st.by_row(pr);
        let mut unplaced: Vec<usize> = (0..pr.options.len())
            .filter(|&w| st.choice[w].is_none() && pr.can_skip[w])
            .collect();
        unplaced.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
        for w in unplaced {
            if st.choice[w].is_some() {
                continue;
            }
            let mut best: Option<(f64, usize, usize)> = None;
            for o in 0..pr.options[w].len() {
                let Some(r) = blocked_row(pr, st, w, o) else {
                    continue;
                };
                let a_w = pr.options[w][o]
                    .uses
                    .iter()
                    .find(|x| x.0 == r)
                    .map_or(0.0, |x| x.1);
                let need = st.used[r] + a_w - pr.row_limit[r];
                let mut tried = 0;
                for &v in by_row[r].iter().take(SCAN_MAX) {
                    let Some(cur) = st.choice[v] else { continue };
                    if v == w || !pr.can_skip[v] {
                        continue;
                    }
                    let Some(&(_, a_v)) = pr.options[v][cur].uses.iter().find(|x| x.0 == r) else {
                        continue;
                    };
                    if a_v + 1e-9 < need {
                        continue;
                    }
                    tried += 1;
                    if tried > 4 * EJECT_CANDIDATES_MAX {
                        break;
                    }
                    st.take(pr, v);
                    let saving = st.added_cost(pr, v, cur);
                    let fits = st.fits(pr, w, o);
                    let add = st.added_cost(pr, w, o);
                    st.put(pr, v, cur);
                    let gain = saving - add;
                    if fits && gain > 1e-6 * (1.0 + saving.abs()) && best.is_none_or(|b| gain > b.0)
                    {
                        best = Some((gain, v, o));
                    }
                }
            }
            if let Some((_, v, o)) = best {
                st.take(pr, v);
                st.put(pr, w, o);
                any = true;
            }
        }
        if !any {
            break;
        }
        improved = true;
    }
    improved
}

/// Raises the count on a full row: a placed gang leaves it and smaller
/// unplaced workloads fill the room it frees, when at least two fit (the
/// gang itself may find room elsewhere). Bounded work per row.
fn repack(pr: &Problem, st: &mut State, size: &[f64]) -> bool {
    let rows = pr.row_limit.len();
    // Unplaced workloads by row they could use, smallest first.
    let mut waiting: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rows];
    let mut unplaced: Vec<usize> = (0..pr.options.len())
        .filter(|&w| st.choice[w].is_none())
        .collect();
    unplaced.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
    for &w in &unplaced {
        for (o, opt) in pr.options[w].iter().enumerate() {
            if let [(r, _)] = opt.uses[..] {
                if waiting[r].last().is_none_or(|x| x.0 != w) {
                    waiting[r].push((w, o));
                }
            }
        }
    }
    let mut gained = false;
    for r in 0..rows {
        if waiting[r].is_empty() {
            continue;
        }
        let mut placed_here: Vec<(f64, usize)> = st.by_row(pr)[r]
            .iter()
            .filter_map(|&v| {
                let o = st.choice[v]?;
                let a = pr.options[v][o].uses.iter().find(|x| x.0 == r)?.1;
                pr.can_skip[v].then_some((a, v))
            })
            .collect();
        placed_here.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, v) in placed_here.iter().take(EJECT_CANDIDATES_MAX) {
            let Some(cur) = st.choice[v] else { continue };
            st.take(pr, v);
            let mut added: Vec<usize> = Vec::new();
            for &(w, o) in waiting[r].iter().take(SCAN_MAX) {
                if st.choice[w].is_none() && w != v && st.fits(pr, w, o) {
                    st.put(pr, w, o);
                    added.push(w);
                }
            }
            // The gang may fit somewhere else.
            let mut elsewhere = false;
            for o2 in 0..pr.options[v].len() {
                if o2 != cur && st.fits(pr, v, o2) {
                    st.put(pr, v, o2);
                    elsewhere = true;
                    break;
                }
            }
            if added.len() + usize::from(elsewhere) >= 2 {
                gained = true;
            } else {
                if elsewhere {
                    st.take(pr, v);
                }
                for w in added {
                    st.take(pr, w);
                }
                st.put(pr, v, cur);
            }
        }
    }
    gained
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

/// The LP's plan at these prices, made integral: workloads the relaxation
/// places (cheapest reduced cost below the count price) first, by regret;
/// then the rest by how little they miss it.
fn repair_lp(pr: &Problem, d: &Duals) -> Choice {
    let n = pr.options.len();
    let nu = d.count_price();
    let mut ranked: Vec<Vec<(f64, usize)>> = Vec::with_capacity(n);
    let mut key: Vec<(bool, f64, usize)> = Vec::with_capacity(n);
    for w in 0..n {
        let mut v: Vec<(f64, usize)> = (0..pr.options[w].len())
            .map(|o| (reduced_cost(pr, d, w, o), o))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let best = v.first().map_or(f64::INFINITY, |x| x.0);
        let inside = best < nu || !pr.can_skip[w];
        let k = if inside {
            -(v.get(1).map_or(f64::INFINITY, |x| x.0) - best)
        } else {
            best - nu
        };
        key.push((!inside, k, w));
        ranked.push(v);
    }
    key.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let order: Vec<usize> = key.iter().map(|k| k.2).collect();
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

/// Each workload's smallest share of the limited rows over its options.
fn sizes(pr: &Problem) -> Vec<f64> {
    (0..pr.options.len())
        .map(|w| {
            pr.options[w]
                .iter()
                .map(|o| {
                    o.uses
                        .iter()
                        .map(|&(r, a)| a / pr.row_limit[r].max(1e-9))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// A repair that packs for count: workloads by the smallest share of the
/// limited rows any of their options takes, each on its best option (by
/// reduced cost) that still fits. Taking the smallest first places the
/// most when capacity is short (the regret order can spend a quota on one
/// big gang that three small ones would have shared); local search then
/// works on the cost.
fn repair_by_size(pr: &Problem, d: &Duals, size: &[f64]) -> Choice {
    let n = pr.options.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
    let ranked: Vec<Vec<(f64, usize)>> = (0..n)
        .map(|w| {
            let mut v: Vec<(f64, usize)> = (0..pr.options[w].len())
                .map(|o| (reduced_cost(pr, d, w, o), o))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v
        })
        .collect();
    place_in_order(pr, &order, &ranked)
}

/// First-improvement local search on the true objective: move one workload
/// at a time to the option that lowers the total most and still fits.
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

/// The primal pipeline on one candidate plan: local search, ejections for
/// count, pair moves for cost, local search again.
fn polish(pr: &Problem, mut c: Choice, size: &[f64], pairs: bool) -> Choice {
    local_search(pr, &mut c);
    let mut st = State::new(pr, c);
    let mut gained = augment(pr, &mut st, size);
    for _ in 0..4 {
        if !repack(pr, &mut st, size) {
            break;
        }
        augment(pr, &mut st, size);
        gained = true;
    }
    if replace_improve(pr, &mut st, size) {
        augment(pr, &mut st, size);
        gained = true;
    }
    let swapped = pairs && swap_improve(pr, &mut st);
    let mut c = st.choice;
    if gained || swapped {
        local_search(pr, &mut c);
    }
    c
}

/// Keeps `c` if it is feasible and better (penalised objective: more
/// placed first, then cheaper).
fn improve(
    pr: &Problem,
    c: Choice,
    size: &[f64],
    pairs: bool,
    ub: &mut f64,
    best: &mut Choice,
) -> bool {
    let c = polish(pr, c, size, pairs);
    let v = pr.objective(&c);
    if v < *ub - 1e-9 * ub.abs().max(1.0) && pr.is_feasible(&c) {
        *ub = v;
        *best = c;
        return true;
    }
    false
}

/// Count first: workloads in order of how little contended capacity their
/// cheapest option takes at the count prices, each on the option that
/// takes least (then the cheapest).
fn repair_for_count(pr: &Problem, prices: &[f64], size: &[f64], cost_scale: f64) -> Choice {
    let n = pr.options.len();
    let mut key = Vec::with_capacity(n);
    let ranked: Vec<Vec<(f64, usize)>> = (0..n)
        .map(|w| {
            let mut v: Vec<(f64, usize)> = pr.options[w]
                .iter()
                .enumerate()
                .map(|(o, opt)| {
                    let taken: f64 = opt.uses.iter().map(|&(r, a)| prices[r] * a).sum();
                    let list: f64 = opt.spend.iter().map(|&(p, s)| pr.factor[p] * s).sum();
                    (taken + 1e-3 * list / cost_scale, o)
                })
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            key.push((v.first().map_or(f64::INFINITY, |x| x.0), size[w], w));
            v
        })
        .collect();
    key.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    let order: Vec<usize> = key.iter().map(|k| k.2).collect();
    place_in_order(pr, &order, &ranked)
}

pub fn solve(pr: &Problem, settings: &Settings) -> Solution {
    let rows = pr.row_limit.len();
    let n = pr.options.len();
    let np = pr.providers();
    let size = sizes(pr);
    let mut scale = vec![1.0; rows];
    let mut nu_scale = 1.0f64;
    for opts in &pr.options {
        for opt in opts {
            let list: f64 = opt.spend.iter().map(|x| x.1).sum();
            nu_scale = nu_scale.max(list);
            for &(r, a) in &opt.uses {
                if a > 0.0 {
                    scale[r] = f64::max(scale[r], list / a);
                }
            }
        }
    }
    let contracted: Vec<usize> = (0..np).filter(|&p| pr.commit[p] > 0.0).collect();
    // Start from list prices (μ = 1), no row prices and a count price
    // above any option; then set each provider's μ by whether that relaxed
    // plan overspends its commitment.
    let mut d = Duals {
        lam: vec![0.0; rows],
        scale,
        mu: vec![1.0; np],
        nu: 1.0,
        nu_scale,
    };
    let (_, first) = relax(pr, &d, 0);
    let s0 = pr.spend(&first);
    for &p in &contracted {
        if pr.factor[p] * s0[p] < pr.commit[p] {
            d.mu[p] = 0.0;
        }
    }

    // 1. Count: the most any plan can place, and a plan that places it.
    // Count first: each candidate is polished for count (ejections and
    // repacking); pair moves for cost come after the dual, on the last.
    let mut best_choice = polish(pr, repair(pr, &d), &size, false);
    let mut ub = pr.objective(&best_choice);
    improve(
        pr,
        repair_by_size(pr, &d, &size),
        &size,
        false,
        &mut ub,
        &mut best_choice,
    );
    let (mut max_placeable, count_prices) =
        count_bound(pr, Problem::placed(&best_choice), settings.iterations_max);
    if Problem::placed(&best_choice) < max_placeable {
        let c = repair_for_count(pr, &count_prices, &size, nu_scale);
        improve(pr, c, &size, false, &mut ub, &mut best_choice);
    }
    let count = Problem::placed(&best_choice);

    // 2. Cost: the Lagrangian dual for plans placing at least `count`,
    // over y = (row prices, contracted providers' μ, count price ν).
    let dim = rows + contracted.len() + 1;
    let mut lo = vec![0.0; dim];
    let mut hi = vec![1e6; dim];
    let mut start = vec![0.0; dim];
    for (i, &p) in contracted.iter().enumerate() {
        lo[rows + i] = 0.0;
        hi[rows + i] = 1.0;
        start[rows + i] = d.mu[p];
    }
    start[dim - 1] = 1.0;
    let to_duals = |y: &[f64], d: &mut Duals| {
        d.lam.copy_from_slice(&y[..rows]);
        for (i, &p) in contracted.iter().enumerate() {
            d.mu[p] = y[rows + i];
        }
        d.nu = y[dim - 1];
    };
    let mut work = d.clone();
    let mut relaxed_feasible: Vec<Choice> = Vec::new();
    let mut oracle = |y: &[f64]| -> (f64, Vec<f64>) {
        to_duals(y, &mut work);
        let (l, x) = relax(pr, &work, count);
        let usage = pr.usage(&x);
        let spend = pr.spend(&x);
        let mut g = vec![0.0; dim];
        for r in 0..rows {
            g[r] = (usage[r] - pr.row_limit[r]) * work.scale[r];
        }
        for (i, &p) in contracted.iter().enumerate() {
            g[rows + i] = pr.factor[p] * spend[p] - pr.commit[p];
        }
        g[dim - 1] = (count as f64 - Problem::placed(&x) as f64) * work.nu_scale;
        if relaxed_feasible.len() < 4 && Problem::placed(&x) >= count && pr.is_feasible(&x) {
            relaxed_feasible.push(x);
        }
        (l, g)
    };
    let cost_now = pr.cost(&best_choice);
    let tolerance = 2e-5 * cost_now.abs().max(1.0);
    let out = cutting::maximise(
        &cutting::Region {
            lo: &lo,
            hi: &hi,
            start: &start,
            step: &vec![0.5; dim],
        },
        settings.iterations_max,
        tolerance,
        &mut oracle,
        &|best| cost_now - best <= settings.gap_target * cost_now.abs().max(1.0),
    );
    let mut lb = out.best_value;
    let iterations = out.iterations;
    to_duals(&out.best_point, &mut d);

    // 3. Plans at the best prices, polished; the best is kept.
    for x in std::mem::take(&mut relaxed_feasible) {
        improve(pr, x, &size, false, &mut ub, &mut best_choice);
    }
    improve(
        pr,
        repair_lp(pr, &d),
        &size,
        true,
        &mut ub,
        &mut best_choice,
    );
    if n <= EXTRA_REPAIRS_MAX {
        // Small enough to afford two more starts from the same prices.
        improve(pr, repair(pr, &d), &size, true, &mut ub, &mut best_choice);
        improve(
            pr,
            repair_by_size(pr, &d, &size),
            &size,
            true,
            &mut ub,
            &mut best_choice,
        );
    }
    let again = polish(pr, best_choice.clone(), &size, true);
    if pr.objective(&again) < ub && pr.is_feasible(&again) {
        ub = pr.objective(&again);
        best_choice = again;
    }

    let placed = Problem::placed(&best_choice);
    if placed != count {
        // More placed than the count the bound was for: L grows with K.
        lb += d.count_price() * (placed as f64 - count as f64);
    }
    if max_placeable < placed {
        max_placeable = placed;
    }
    let cost = pr.cost(&best_choice);
    // Float sums over many options: shave a relative 1e-9 so rounding
    // cannot lift the bound above the optimum.
    let cost_bound = (lb - 1e-9 * lb.abs()).min(cost);
    let unplaced = (n - placed) as f64;
    let count_proven = placed >= max_placeable;
    let proven = count_proven && cost - cost_bound <= 4e-9 * cost.abs().max(1.0);
    Solution {
        choice: best_choice,
        upper_bound: ub,
        lower_bound: if count_proven {
            cost_bound + pr.skip_penalty * unplaced
        } else {
            f64::NEG_INFINITY
        },
        method: "lagrangian",
        iterations,
        proven_optimal: proven,
        cost_bound,
        max_placeable,
    }
}
