//! Scalable solver: the LP relaxation solved exactly ([`crate::gub`]) and
//! its plan rounded, a Lagrangian bound at the LP's prices (or at prices
//! found by cutting planes when the LP is not solved), and repairs,
//! ejections and local search for feasible plans.
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
//!    one evaluation is one pass over the options, and the bound is
//!    evaluated here from the prices, whoever found them: any prices in
//!    range give a valid bound, so no solver tolerance can make it false.
//!    The LP's optimal duals maximise L (LP duality), so at them L is the
//!    LP's value; the count price is then set to the best one for the
//!    count the final plan places.
//!
//! The count price ν keeps the bound meaningful when capacity leaves
//! workloads out: a fixed skip penalty in the objective would subtract a
//! whole penalty per workload left out and take the bound to nothing.

// Loops index several parallel arrays (options, spend, usage) at once.
#![allow(clippy::needless_range_loop)]

use crate::cutting;
use crate::gub;
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
/// Simplex pivots allowed per workload before the LP plan gives up.
pub const LP_PIVOTS_PER_WORKLOAD: usize = 4;
/// The LP's price of a workload short of the count, in units of the
/// dearest option.
const SHORTFALL_PRICE: f64 = 1e3;
/// Coupling rows (with contracts and the count) up to which the LP is
/// solved by the GUB simplex, whose working basis is dense.
pub const LP_ROWS_MAX: usize = 400;
/// Above this many workloads the LP starts from a sample's prices
/// ([`sampled_start`]), of this many workloads.
pub const LP_SAMPLE: usize = 10_000;
/// Workloads up to which the LP's plan is polished with pair moves too.
/// Above, they cost more than they gain: at 100,000 tight workloads they
/// took 2.2 s of 7.6 s and closed the gap from 0.0205 % to 0.0184 %; at
/// 10,000 (seed 42) ~0.2 s of ~0.8 s, for 0.26 % against 0.40 %.
pub const PAIR_MOVES_MAX: usize = 5_000;
/// Ejection search widths (in multiples of SCAN_MAX and
/// EJECT_CANDIDATES_MAX) tried in turn to restore a count.
const RESCUE_EFFORTS: [usize; 3] = [4, 16, 64];

#[derive(Debug, Clone)]
pub struct Settings {
    pub iterations_max: usize,
    /// Stop when (UB − LB) ≤ gap_target · UB.
    pub gap_target: f64,
    /// Solve the LP relaxation exactly (GUB simplex) for the bound and
    /// the plan; without it (or if it gives up), cutting planes bound the
    /// cost and the plan comes from repairs at their prices.
    pub lp: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            iterations_max: ITERATIONS_MAX,
            gap_target: 1e-5,
            lp: true,
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

/// The count price ν that maximises L(λ, μ, ν) for plans placing at
/// least `k`, the other prices fixed. L is concave and piecewise linear in
/// ν with slope k − (workloads whose cheapest reduced cost is below ν, or
/// that cannot be left out): the best ν is the reduced cost at which that
/// count reaches k.
fn best_count_price(pr: &Problem, d: &Duals, k: usize) -> f64 {
    let mut forced = 0usize;
    let mut costs: Vec<f64> = Vec::with_capacity(pr.options.len());
    for w in 0..pr.options.len() {
        if pr.can_skip[w] {
            costs.push(cheapest(pr, d, w).0);
        } else {
            forced += 1;
        }
    }
    let need = k.saturating_sub(forced);
    if need == 0 {
        return 0.0;
    }
    costs.sort_by(f64::total_cmp);
    costs
        .get(need - 1)
        .copied()
        .filter(|c| c.is_finite())
        .unwrap_or(0.0)
        .max(0.0)
}

/// Workloads grouped by the row use of their options (each option's
/// uses, deduplicated and sorted): (how many, the distinct uses), in
/// order of first appearance.
type UseClass = (f64, Vec<Vec<(usize, f64)>>);

fn count_classes(pr: &Problem) -> Vec<UseClass> {
    let mut index: std::collections::HashMap<Vec<Vec<(usize, u64)>>, usize> =
        std::collections::HashMap::new();
    let mut classes: Vec<UseClass> = Vec::new();
    for opts in &pr.options {
        let mut key: Vec<Vec<(usize, u64)>> = opts
            .iter()
            .map(|o| {
                let mut u: Vec<(usize, u64)> =
                    o.uses.iter().map(|&(r, a)| (r, a.to_bits())).collect();
                u.sort_unstable();
                u
            })
            .collect();
        key.sort_unstable();
        key.dedup();
        if let Some(&i) = index.get(&key) {
            classes[i].0 += 1.0;
        } else {
            let uses = key
                .iter()
                .map(|u| u.iter().map(|&(r, a)| (r, f64::from_bits(a))).collect())
                .collect();
            index.insert(key, classes.len());
            classes.push((1.0, uses));
        }
    }
    classes
}

/// Proven count bound (see the module notes) and the row prices that
/// give it, per row (λ_r, in "workloads per unit of the row"). It is
/// computed before any plan, so it runs to convergence (or `iterations`).
pub fn count_bound(pr: &Problem, iterations: usize) -> (usize, Vec<f64>) {
    let n = pr.options.len();
    let rows = pr.row_limit.len();
    if rows == 0 {
        return (n, vec![0.0; rows]);
    }
    // Costs play no part here, so workloads whose options use the same
    // rows by the same amounts are one class, counted once with a weight
    // (a 100,000-workload fleet has a few hundred classes).
    let classes = count_classes(pr);
    // λ_r = t_r / (largest amount one option takes from r).
    let mut amax = vec![0.0f64; rows];
    let mut amin = vec![f64::INFINITY; rows];
    for (_, opts) in &classes {
        for uses in opts {
            for &(r, a) in uses {
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
        for (weight, opts) in &classes {
            let mut m = (f64::INFINITY, usize::MAX);
            for (o, uses) in opts.iter().enumerate() {
                let v: f64 = uses.iter().map(|&(r, a)| t[r] * s[r] * a).sum();
                if v < m.0 {
                    m = (v, o);
                }
            }
            if m.0 < 1.0 {
                u += weight * (1.0 - m.0);
                for &(r, a) in &opts[m.1] {
                    g[r] -= weight * a * s[r];
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
        &|_| false,
    );
    let prices = (0..rows).map(|r| out.best_point[r] * s[r]).collect();
    (proven(-out.best_value), prices)
}

/// A plan being improved: the choice with its row use and provider spend.
pub(crate) struct State {
    pub(crate) choice: Choice,
    pub(crate) used: Vec<f64>,
    spend: Vec<f64>,
}

impl State {
    pub(crate) fn new(pr: &Problem, choice: Choice) -> State {
        State {
            used: pr.usage(&choice),
            spend: pr.spend(&choice),
            choice,
        }
    }
    pub(crate) fn take(&mut self, pr: &Problem, w: usize) {
        if let Some(o) = self.choice[w].take() {
            for &(p, s) in &pr.options[w][o].spend {
                self.spend[p] -= s;
            }
            for &(r, a) in &pr.options[w][o].uses {
                self.used[r] -= a;
            }
        }
    }
    pub(crate) fn put(&mut self, pr: &Problem, w: usize, o: usize) {
        debug_assert!(self.choice[w].is_none());
        for &(p, s) in &pr.options[w][o].spend {
            self.spend[p] += s;
        }
        for &(r, a) in &pr.options[w][o].uses {
            self.used[r] += a;
        }
        self.choice[w] = Some(o);
    }
    pub(crate) fn fits(&self, pr: &Problem, w: usize, o: usize) -> bool {
        pr.options[w][o]
            .uses
            .iter()
            .all(|&(r, a)| self.used[r] + a <= pr.row_limit[r] + 1e-9)
    }
    /// What adding option o of w (not placed) adds to the bill.
    pub(crate) fn added_cost(&self, pr: &Problem, w: usize, o: usize) -> f64 {
        pr.options[w][o]
            .spend
            .iter()
            .map(|&(p, s)| {
                pr.provider_cost(p, self.spend[p] + s) - pr.provider_cost(p, self.spend[p])
            })
            .sum()
    }
    /// Placed workloads per row (a snapshot; entries may go stale).
    pub(crate) fn by_row(&self, pr: &Problem) -> Vec<Vec<usize>> {
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
pub(crate) fn blocked_row(pr: &Problem, st: &State, w: usize, o: usize) -> Option<usize> {
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

/// How an ejection searches: the cheapest acceptable move or the first,
/// over `effort` times the usual number of candidates.
#[derive(Clone, Copy)]
struct Search {
    cheapest: bool,
    effort: usize,
}

/// Tries to make room for option `o` of the unplaced workload `w` by
/// moving one placed workload off the row that blocks it. `accept` sees
/// the cost change of the move of the other workload plus w's new cost
/// and decides; `search` says how. On success the state holds both moves.
fn eject(
    pr: &Problem,
    st: &mut State,
    by_row: &[Vec<usize>],
    (w, o): (usize, usize),
    accept: &dyn Fn(f64) -> bool,
    search: Search,
) -> bool {
    let Search { cheapest, effort } = search;
    let Some(r) = blocked_row(pr, st, w, o) else {
        return false;
    };
    let need = st.used[r] + pr.options[w][o].use_of(r).unwrap_or(0.0) - pr.row_limit[r];
    let mut best: Option<(f64, usize, usize)> = None;
    let mut tried = 0;
    // Every entry scanned counts (stale and too-small ones too), so the
    // work per attempt is bounded whatever the row's length.
    for &v in by_row[r].iter().take(SCAN_MAX * effort) {
        if v == w {
            continue;
        }
        let Some(cur) = st.choice[v] else { continue };
        let Some(a_v) = pr.options[v][cur].use_of(r) else {
            continue;
        };
        if a_v + 1e-9 < need {
            continue;
        }
        tried += 1;
        if tried > EJECT_CANDIDATES_MAX * effort || (best.is_some() && !cheapest) {
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
/// first, until `target` are placed. Returns whether the count rose.
pub(crate) fn augment(
    pr: &Problem,
    st: &mut State,
    size: &[f64],
    effort: usize,
    target: usize,
) -> bool {
    let mut unplaced: Vec<usize> = (0..pr.options.len())
        .filter(|&w| st.choice[w].is_none())
        .collect();
    let mut placed = pr.options.len() - unplaced.len();
    if placed >= target {
        return false;
    }
    unplaced.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
    let mut by_row = st.by_row(pr);
    let mut gained = false;
    for w in unplaced {
        if placed >= target {
            break;
        }
        let mut order: Vec<(f64, usize)> = (0..pr.options[w].len())
            .map(|o| (st.added_cost(pr, w, o), o))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, o) in &order {
            if st.fits(pr, w, o) {
                st.put(pr, w, o);
            } else if !eject(
                pr,
                st,
                &by_row,
                (w, o),
                &|_| true,
                Search {
                    cheapest: true,
                    effort,
                },
            ) {
                continue;
            }
            for &(r, _) in &pr.options[w][o].uses {
                by_row[r].push(w);
            }
            gained = true;
            placed += 1;
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
                        (w, o),
                        &|delta| delta < limit - 1e-6 * (1.0 + limit.abs()),
                        Search {
                            cheapest: false,
                            effort: 1,
                        },
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
                let need = st.used[r] + pr.options[w][o].use_of(r).unwrap_or(0.0) - pr.row_limit[r];
                let mut tried = 0;
                for &v in by_row[r].iter().take(SCAN_MAX) {
                    let Some(cur) = st.choice[v] else { continue };
                    if v == w || !pr.can_skip[v] {
                        continue;
                    }
                    let Some(a_v) = pr.options[v][cur].use_of(r) else {
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
                let a = pr.options[v][o].use_of(r)?;
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

/// A workload's options with their reduced costs at these prices,
/// cheapest first (ties by index).
fn ranked_options(pr: &Problem, d: &Duals, w: usize) -> Vec<(f64, usize)> {
    let mut v: Vec<(f64, usize)> = (0..pr.options[w].len())
        .map(|o| (reduced_cost(pr, d, w, o), o))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

/// Greedy repair: workloads in order of regret, each to its cheapest
/// option (at these prices) that still fits.
fn repair(pr: &Problem, d: &Duals) -> Choice {
    let n = pr.options.len();
    let mut ranked: Vec<Vec<(f64, usize)>> = Vec::with_capacity(n);
    let mut regret: Vec<(f64, usize)> = Vec::with_capacity(n);
    for w in 0..n {
        let v = ranked_options(pr, d, w);
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
        let v = ranked_options(pr, d, w);
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

/// The LP relaxation for plans placing at least `count`, solved exactly
/// from the plan `start` by the GUB simplex ([`crate::gub`]): its plan
/// made integral (workloads the LP places whole keep their option, the
/// few it splits go where they still fit, largest share first), the duals
/// at the LP's optimum in this module's terms, and the number of pivots.
/// `None` when the simplex gives up (pivot limit, singular basis).
fn lp_plan(
    pr: &Problem,
    d: &Duals,
    count: usize,
    start: &Choice,
    size: &[f64],
) -> Option<(Choice, Duals, usize)> {
    let n = pr.options.len();
    let rows = pr.row_limit.len();
    let contracted: Vec<usize> = (0..pr.providers())
        .filter(|&p| pr.commit[p] > 0.0)
        .collect();
    let nc = contracted.len();
    let count_row = rows + nc;
    let mut contract_row = vec![usize::MAX; pr.providers()];
    for (i, &p) in contracted.iter().enumerate() {
        contract_row[p] = rows + i;
    }
    // Dollars in units of the dearest option, to keep the basis well scaled.
    let cs = d.nu_scale.max(1.0);
    let sets: Vec<Vec<gub::Column>> = pr
        .options
        .iter()
        .map(|opts| {
            opts.iter()
                .map(|opt| {
                    let mut cost = 0.0;
                    let mut coefs: Vec<(usize, f64)> = opt.uses.clone();
                    for &(p, s) in &opt.spend {
                        if contract_row[p] == usize::MAX {
                            cost += pr.factor[p] * s / cs;
                        } else {
                            coefs.push((contract_row[p], pr.factor[p] * s / cs));
                        }
                    }
                    coefs.push((count_row, -1.0));
                    gub::Column { cost, coefs }
                })
                .collect()
        })
        .collect();
    let mut b = pr.row_limit.clone();
    b.extend(contracted.iter().map(|&p| pr.commit[p] / cs));
    b.push(-(count as f64));
    let lp = gub::Lp {
        rows: count_row + 1,
        b,
        sets,
        skippable: pr.can_skip.clone(),
        // Each contract's spend past its commitment, and the count's
        // shortfall at a price no plan's placement reaches, so that the
        // start may place fewer than `count`.
        free: (0..nc)
            .map(|i| gub::Column {
                cost: 1.0,
                coefs: vec![(rows + i, -1.0)],
            })
            .chain(std::iter::once(gub::Column {
                cost: SHORTFALL_PRICE,
                coefs: vec![(count_row, -1.0)],
            }))
            .collect(),
    };
    let out = gub::solve(&lp, start, LP_PIVOTS_PER_WORKLOAD * n + 1_000).ok()?;
    let mut duals = d.clone();
    for r in 0..rows {
        duals.lam[r] = (-out.duals[r] * cs).max(0.0) / duals.scale[r];
    }
    for (i, &p) in contracted.iter().enumerate() {
        duals.mu[p] = (-out.duals[rows + i]).clamp(0.0, 1.0);
    }
    duals.nu = (-out.duals[count_row] * cs).max(0.0) / duals.nu_scale;
    // Each workload's options: those the LP uses, by share, then the
    // rest by reduced cost. Two orders: whole workloads first, then the
    // split ones by their largest share; or the split ones first. Those the
    // LP leaves out come last, to make up for any that no longer fit.
    let mut whole: Vec<usize> = Vec::with_capacity(n);
    let mut split: Vec<(f64, usize)> = Vec::new();
    let mut out_of_lp: Vec<usize> = Vec::new();
    let mut lists: Vec<Vec<(f64, usize)>> = Vec::with_capacity(n);
    for w in 0..n {
        let sh = &out.shares[w];
        let mut l: Vec<(f64, usize)> = sh.iter().filter_map(|&(o, x)| o.map(|o| (-x, o))).collect();
        let rest: Vec<(f64, usize)> = ranked_options(pr, &duals, w)
            .into_iter()
            .filter(|r| !l.iter().any(|x| x.1 == r.1))
            .collect();
        if l.is_empty() {
            out_of_lp.push(w);
        } else if sh.len() == 1 {
            whole.push(w);
        } else {
            split.push((sh[0].1, w));
        }
        l.extend(rest);
        lists.push(l);
    }
    split.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let split: Vec<usize> = split.iter().map(|s| s.1).collect();
    out_of_lp.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
    let whole_first: Vec<usize> = whole
        .iter()
        .chain(&split)
        .chain(&out_of_lp)
        .copied()
        .collect();
    let split_first: Vec<usize> = split
        .iter()
        .chain(&whole)
        .chain(&out_of_lp)
        .copied()
        .collect();
    let a = place_in_order(pr, &whole_first, &lists);
    let b = place_in_order(pr, &split_first, &lists);
    let c = if pr.objective(&b) < pr.objective(&a) {
        b
    } else {
        a
    };
    Some((c, duals, out.pivots))
}

/// A start for the LP of a large fleet: the LP of an evenly spaced sample
/// of `LP_SAMPLE` workloads, with every limit, commitment and the count
/// scaled to the sample's share, gives prices close to the whole LP's;
/// the whole fleet repaired at those prices starts the simplex near its
/// optimum (from the greedy plan it takes several pivots per workload).
fn sampled_start(pr: &Problem, d: &Duals, target: usize) -> Option<Choice> {
    let n = pr.options.len();
    let step = n.div_ceil(LP_SAMPLE);
    let picked: Vec<usize> = (0..n).step_by(step).collect();
    let share = picked.len() as f64 / n as f64;
    let sub = Problem {
        options: picked.iter().map(|&w| pr.options[w].clone()).collect(),
        can_skip: picked.iter().map(|&w| pr.can_skip[w]).collect(),
        skip_penalty: pr.skip_penalty,
        row_limit: pr.row_limit.iter().map(|l| l * share).collect(),
        commit: pr.commit.iter().map(|c| c * share).collect(),
        factor: pr.factor.clone(),
    };
    let count = (target as f64 * share).floor() as usize;
    let (_, prices, _) = lp_plan(&sub, d, count, &repair(&sub, d), &sizes(&sub))?;
    Some(repair_lp(pr, &prices))
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
    let ranked: Vec<Vec<(f64, usize)>> = (0..n).map(|w| ranked_options(pr, d, w)).collect();
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

/// The primal pipeline on one candidate plan: local search, ejections and
/// repacking for count (while fewer than `target`, the proven maximum,
/// are placed), replacements and pair moves for cost, local search again.
fn polish(pr: &Problem, c: Choice, size: &[f64], pairs: bool, target: usize) -> Choice {
    polish_with(pr, c, size, pairs, target, false)
}

/// `polish`, with `chains`: if one ejection leaves the plan short, chains
/// of them next (crate::chain), before the moves below change the plan.
fn polish_with(
    pr: &Problem,
    mut c: Choice,
    size: &[f64],
    pairs: bool,
    target: usize,
    chains: bool,
) -> Choice {
    local_search(pr, &mut c);
    let mut st = State::new(pr, c);
    let short = |st: &State| Problem::placed(&st.choice) < target;
    let mut gained = augment(pr, &mut st, size, 1, target);
    if chains && short(&st) {
        gained |= crate::chain::restore_count(pr, &mut st, size, target);
    }
    for _ in 0..4 {
        if !short(&st) || !repack(pr, &mut st, size) {
            break;
        }
        augment(pr, &mut st, size, 1, target);
        gained = true;
    }
    if replace_improve(pr, &mut st, size) {
        augment(pr, &mut st, size, 1, target);
        gained = true;
    }
    let swapped = pairs && swap_improve(pr, &mut st);
    let mut c = st.choice;
    if gained || swapped {
        local_search(pr, &mut c);
    }
    c
}
fn rescue_count(pr: &Problem, c: Choice, size: &[f64], target: usize) -> Choice {
    // Chains of ejections, and swaps of smaller workloads for larger ones
    // (crate::chain), reach counts single ejections cannot, but look less
    // at cost: single ejections searched wider and wider come first where
    // they succeed. Large fleets start with the chains and search only
    // the narrowest width (the wide searches took 0.4 s at 10,000
    // workloads and failed where chains succeeded); small ones try both
    // orders and keep the better plan.
    let rescue = |c: Choice, chains_first: bool, efforts: &[usize]| {
        let mut st = State::new(pr, c);
        let short = |st: &State| Problem::placed(&st.choice) < target;
        if chains_first {
            crate::chain::restore_count(pr, &mut st, size, target);
        }
        for &effort in efforts {
            if !short(&st) {
                break;
            }
            augment(pr, &mut st, size, effort, target);
            if repack(pr, &mut st, size) {
                augment(pr, &mut st, size, effort, target);
            }
        }
        if short(&st) {
            crate::chain::restore_count(pr, &mut st, size, target);
        }
        let mut c = st.choice;
        local_search(pr, &mut c);
        c
    };
    if pr.options.len() > EXTRA_REPAIRS_MAX {
        return rescue(c, true, &RESCUE_EFFORTS[..1]);
    }
    cheaper(
        pr,
        rescue(c.clone(), false, &RESCUE_EFFORTS),
        rescue(c, true, &RESCUE_EFFORTS),
    )
}

/// The plan with the lower penalised objective (more placed first); `a`
/// on a tie.
fn cheaper(pr: &Problem, a: Choice, b: Choice) -> Choice {
    if pr.objective(&b) < pr.objective(&a) {
        b
    } else {
        a
    }
}

/// Keeps `c` if it is feasible and better (penalised objective: more
/// placed first, then cheaper).
fn improve(
    pr: &Problem,
    c: Choice,
    size: &[f64],
    pairs: bool,
    target: usize,
    ub: &mut f64,
    best: &mut Choice,
) -> bool {
    let c = polish(pr, c, size, pairs, target);
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

/// The Lagrangian dual for plans placing at least `count`, over y = (row
/// prices, contracted providers' μ, count price ν), maximised by cutting
/// planes from `d`: the best L found and the oracle calls. `d` ends at the
/// best point; relaxed plans that happen to be feasible are collected.
fn cost_dual(
    pr: &Problem,
    d: &mut Duals,
    count: usize,
    settings: &Settings,
    cost_now: f64,
    relaxed_feasible: &mut Vec<Choice>,
) -> (f64, usize) {
    let rows = pr.row_limit.len();
    let contracted: Vec<usize> = (0..pr.providers())
        .filter(|&p| pr.commit[p] > 0.0)
        .collect();
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
    to_duals(&out.best_point, d);
    (out.best_value, out.iterations)
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

    // 1. The most any plan can place: the LP's maximum, rounded down.
    let (mut max_placeable, count_prices) = count_bound(pr, settings.iterations_max);
    let target = max_placeable;
    let first = repair(pr, &d);
    let small = n <= EXTRA_REPAIRS_MAX;

    // 2. Cost: the LP relaxation for plans placing that many, solved
    // exactly (GUB simplex) from the greedy plan. Its duals maximise the
    // Lagrangian (module notes), and its plan, made integral and
    // polished, is the main candidate.
    let lp = if settings.lp && rows <= LP_ROWS_MAX {
        let start = if n > 2 * LP_SAMPLE {
            sampled_start(pr, &d, target).filter(|c| pr.is_feasible(c))
        } else {
            None
        };
        lp_plan(pr, &d, target, start.as_ref().unwrap_or(&first), &size)
    } else {
        None
    };
    // The greedy plan fits every row and leaves out only what may be.
    let mut best_choice = first.clone();
    let mut ub = pr.objective(&first);
    let mut iterations = 0;
    // Prices whose Lagrangian bounds the cost: the LP's, the cutting
    // planes'.
    let mut priced: Vec<Duals> = Vec::new();
    let solved_lp = lp.is_some();
    if let Some((rounded, duals, pivots)) = lp {
        iterations = pivots;
        let finish = |c: Choice, chains: bool| {
            let c = polish_with(pr, c, &size, n <= PAIR_MOVES_MAX, target, chains);
            if Problem::placed(&c) < target {
                rescue_count(pr, c, &size, target)
            } else {
                c
            }
        };
        let mut c = finish(rounded.clone(), false);
        // Still short: chains straight after the first ejections, while
        // the plan is still the LP's (later moves can close the paths).
        if Problem::placed(&c) < target {
            c = cheaper(pr, c, finish(rounded, true));
        }
        if pr.is_feasible(&c) && pr.objective(&c) < ub {
            ub = pr.objective(&c);
            best_choice = c;
        }
        priced.push(duals);
    }
    // Without the LP, if its plan is short of the count, or on small
    // fleets where it is cheap: plans made for count (ejections and
    // repacking while short), then cutting planes, whose prices away from
    // the LP's optimum give repairs other plans to start from.
    if !solved_lp || small || Problem::placed(&best_choice) < target {
        improve(pr, first, &size, false, target, &mut ub, &mut best_choice);
        improve(
            pr,
            repair_by_size(pr, &d, &size),
            &size,
            false,
            target,
            &mut ub,
            &mut best_choice,
        );
        if Problem::placed(&best_choice) < target {
            let c = repair_for_count(pr, &count_prices, &size, nu_scale);
            improve(pr, c, &size, false, target, &mut ub, &mut best_choice);
        }
    }
    if !solved_lp || small {
        let mut relaxed_feasible = Vec::new();
        let count = Problem::placed(&best_choice);
        let (_, calls) = cost_dual(
            pr,
            &mut d,
            count,
            settings,
            pr.cost(&best_choice),
            &mut relaxed_feasible,
        );
        iterations += calls;
        for x in relaxed_feasible {
            improve(pr, x, &size, false, target, &mut ub, &mut best_choice);
        }
        priced.push(d);
    }

    // 3. More plans at each set of prices, polished; the best is kept.
    // On large fleets the LP's plan is enough (polishing another would be
    // most of the time).
    for d in priced.iter().rev() {
        if small || !solved_lp {
            improve(
                pr,
                repair_lp(pr, d),
                &size,
                true,
                target,
                &mut ub,
                &mut best_choice,
            );
        }
        if small {
            improve(
                pr,
                repair(pr, d),
                &size,
                true,
                target,
                &mut ub,
                &mut best_choice,
            );
            improve(
                pr,
                repair_by_size(pr, d, &size),
                &size,
                true,
                target,
                &mut ub,
                &mut best_choice,
            );
        }
    }
    if small || !solved_lp {
        // Polishing is not idempotent: a second pass still finds moves.
        let again = polish(pr, best_choice.clone(), &size, true, target);
        if pr.objective(&again) < ub && pr.is_feasible(&again) {
            ub = pr.objective(&again);
            best_choice = again;
        }
    }

    // The bound for plans placing as many as this one: each set of
    // prices with the count price that is best for that count. If the
    // plan places fewer than the LP was solved for, the LP for its count
    // (from the plan itself) gives the prices whose bound is that LP's
    // value. (Not above 2 × LP_SAMPLE workloads, where it would take as
    // long as the first LP: there the first LP's prices bound it.)
    let placed = Problem::placed(&best_choice);
    if solved_lp && placed < target && n <= 2 * LP_SAMPLE && pr.is_feasible(&best_choice) {
        let base = priced.first().cloned();
        if let Some((_, duals, pivots)) =
            base.and_then(|d| lp_plan(pr, &d, placed, &best_choice, &size))
        {
            iterations += pivots;
            priced.push(duals);
        }
    }
    let lb = priced
        .iter_mut()
        .map(|d| {
            d.nu = best_count_price(pr, d, placed) / d.nu_scale;
            relax(pr, d, placed).0
        })
        .fold(f64::NEG_INFINITY, f64::max);
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
