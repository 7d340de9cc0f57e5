//! An exact LP solver for "one choice per workload" problems with few
//! coupling rows: the primal simplex with generalized upper bounds
//! (Dantzig and Van Slyke, 1967).
//!
//! ```text
//! min  Σ_j c_j x_j + Σ_k e_k z_k
//! s.t. Σ_j a_{i,j} x_j + Σ_k g_{i,k} z_k ≤ b_i    i < m   (coupling rows)
//!      Σ_{j ∈ S_w} x_j (+ u_w) = 1                 every set w
//!      x, u, z ≥ 0
//! ```
//!
//! Each set (a workload: its options, and u_w when it may be left out)
//! keeps one basic "key" variable that absorbs its convexity row, so the
//! working basis is only m × m, whatever the number of workloads. Its
//! inverse is kept dense and updated in place (product form) when a pivot
//! replaces a column, or when a set's key changes under its other basics
//! (one replacement per changed column); it is rebuilt from an LU
//! factorisation every `REFACTOR_EVERY` pivots, or when an update would
//! divide by next to nothing. Pricing scans one block of sets per pivot.
//! A basic solution has at most m sets that are split
//! between options; every other set sits whole on its key. That is what
//! makes the LP worth solving for a plan: round the few split workloads and
//! the plan is within their cost of the LP's, and the LP's duals give the
//! Lagrangian bound at its maximum.
//!
//! Deterministic (fixed pivoting rules, no clock). Bounded: at most
//! `iterations_max` pivots; the caller falls back on another method when
//! the limit is hit or the basis turns singular.

// Dense linear algebra indexes several arrays together.
#![allow(clippy::needless_range_loop)]

/// One column: cost and its entries in the coupling rows.
#[derive(Debug, Clone)]
pub struct Column {
    pub cost: f64,
    pub coefs: Vec<(usize, f64)>,
}

#[derive(Debug, Clone)]
pub struct Lp {
    pub rows: usize,
    pub b: Vec<f64>,
    /// Per set, its columns; a set that may be left out has a free
    /// (cost 0, no coefficient) choice besides them.
    pub sets: Vec<Vec<Column>>,
    pub skippable: Vec<bool>,
    /// Columns outside any set (z ≥ 0).
    pub free: Vec<Column>,
}

/// A variable of the LP.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Var {
    /// Set w, column j.
    Opt(usize, usize),
    /// Set w left out.
    Skip(usize),
    Slack(usize),
    Free(usize),
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per set, its split: (Some(column) or None for left out, share > 0).
    pub shares: Vec<Vec<(Option<usize>, f64)>>,
    /// Duals of the coupling rows (≤ 0 for a minimisation).
    pub duals: Vec<f64>,
    pub objective: f64,
    pub pivots: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The start breaks a row.
    InfeasibleStart,
    IterationLimit,
    Singular,
    Unbounded,
}

const TOL: f64 = 1e-9;
const PIVOT_TOL: f64 = 1e-9;

/// Solves the LP from the basis where every set sits whole on `start[w]`
/// (None: left out) and every row's slack, or the free column that can
/// carry its excess, is basic. `start` must satisfy the rows, given that
/// free columns may grow: each row over its limit needs a free column
/// with a negative coefficient in it, and only there.
pub fn solve(lp: &Lp, start: &[Option<usize>], iterations_max: usize) -> Result<Outcome, Failure> {
    let m = lp.rows;
    let n = lp.sets.len();
    let mut key: Vec<Var> = (0..n)
        .map(|w| match start[w] {
            Some(j) => Var::Opt(w, j),
            None => Var::Skip(w),
        })
        .collect();
    // Initial basis: slacks, or a free column for a row over its limit.
    let mut key_sum = vec![0.0; m];
    for w in 0..n {
        if let Some(j) = start[w] {
            for &(i, a) in &lp.sets[w][j].coefs {
                key_sum[i] += a;
            }
        } else if !lp.skippable[w] {
            return Err(Failure::InfeasibleStart);
        }
    }
    let mut basis: Vec<Var> = Vec::with_capacity(m);
    for i in 0..m {
        if key_sum[i] <= lp.b[i] + TOL * (1.0 + lp.b[i].abs()) {
            basis.push(Var::Slack(i));
        } else {
            let f = lp
                .free
                .iter()
                .position(|c| c.coefs.len() == 1 && c.coefs[0].0 == i && c.coefs[0].1 < 0.0);
            match f {
                Some(k) => basis.push(Var::Free(k)),
                None => return Err(Failure::InfeasibleStart),
            }
        }
    }
    // Nonkey basics per set (few): set → positions in `basis`.
    let mut pivots = 0;
    let mut bmat = vec![0.0; m * m];
    let mut lu = Lu::new(m);
    let (mut col, mut rhs, mut cb) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let (mut xb, mut pi, mut alpha) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let mut sets_touched: Vec<usize> = Vec::with_capacity(m + 1);

    let flat = Flat::new(lp);
    let block = n
        .div_ceil(PRICING_BLOCKS)
        .clamp(PRICING_BLOCK, PRICING_BLOCK_MAX);
    let mut next_block = 0;
    // The working basis's inverse, updated in place after a pivot that
    // replaces one column, rebuilt after one that changes a set's key
    // under other basics, and every REFACTOR_EVERY pivots for accuracy.
    let mut inv = vec![0.0; m * m];
    let mut stale = true;
    let mut since_refactor = 0;
    loop {
        if stale || since_refactor >= REFACTOR_EVERY {
            for (p, v) in basis.iter().enumerate() {
                transformed(lp, &key, *v, &mut col);
                for i in 0..m {
                    bmat[i * m + p] = col[i];
                }
            }
            if !lu.factor(&bmat) {
                return Err(Failure::Singular);
            }
            for j in 0..m {
                col.fill(0.0);
                col[j] = 1.0;
                lu.solve(&col, &mut alpha);
                for i in 0..m {
                    inv[i * m + j] = alpha[i];
                }
            }
            stale = false;
            since_refactor = 0;
        }
        for i in 0..m {
            rhs[i] = lp.b[i] - key_sum[i];
            let v = basis[i];
            cb[i] = cost(lp, v) - set_of(v).map_or(0.0, |w| cost(lp, key[w]));
        }
        multiply(&inv, &rhs, &mut xb);
        pi.fill(0.0);
        for i in 0..m {
            let c = cb[i];
            if c != 0.0 {
                for j in 0..m {
                    pi[j] += c * inv[i * m + j];
                }
            }
        }

        // Partial pricing: the most negative reduced cost in the next
        // block of sets that has one; optimal when a whole round of
        // blocks has none.
        let mut best: Option<(f64, Var)> = None;
        let consider = |d: f64, v: Var, best: &mut Option<(f64, Var)>| {
            if d < -TOL && best.is_none_or(|(bd, _)| d < bd) {
                *best = Some((d, v));
            }
        };
        for i in 0..m {
            consider(-pi[i], Var::Slack(i), &mut best);
        }
        for k in 0..lp.free.len() {
            consider(priced_free(lp, &pi, k), Var::Free(k), &mut best);
        }
        let blocks = n.div_ceil(block).max(1);
        let mut scanned = 0;
        while best.is_none() && scanned < blocks {
            scanned += 1;
            let lo = next_block * block;
            let hi = (lo + block).min(n);
            next_block = (next_block + 1) % blocks;
            for w in lo..hi {
                let kj = match key[w] {
                    Var::Opt(_, j) => Some(j),
                    _ => None,
                };
                let base = kj.map_or(0.0, |j| flat.priced(&pi, flat.start[w] + j));
                for j in 0..flat.start[w + 1] - flat.start[w] {
                    if Some(j) != kj {
                        let d = flat.priced(&pi, flat.start[w] + j) - base;
                        consider(d, Var::Opt(w, j), &mut best);
                    }
                }
                if lp.skippable[w] && kj.is_some() {
                    consider(-base, Var::Skip(w), &mut best);
                }
            }
        }
        let Some((_, entering)) = best else {
            return Ok(finish(lp, &key, &basis, &xb, pi.clone(), pivots));
        };
        if basis.contains(&entering) {
            // A basic variable's reduced cost is zero up to rounding.
            return Ok(finish(lp, &key, &basis, &xb, pi.clone(), pivots));
        }
        if pivots >= iterations_max {
            return Err(Failure::IterationLimit);
        }
        pivots += 1;

        // Ratio test. Basics move by −t·alpha; each key by +t·rate.
        transformed(lp, &key, entering, &mut col);
        multiply(&inv, &col, &mut alpha);
        let w_in = set_of(entering);
        // Smallest ratio; among ties (degenerate steps), the largest pivot.
        let mut leave: Option<(f64, f64, Leaving)> = None;
        let mut offer = |ratio: f64, piv: f64, l: Leaving| {
            let better = match &leave {
                None => true,
                Some((r, pv, _)) => ratio < *r - TOL || (ratio <= *r + TOL && piv > *pv),
            };
            if better {
                leave = Some((ratio, piv, l));
            }
        };
        for p in 0..m {
            if alpha[p] > PIVOT_TOL {
                offer(xb[p].max(0.0) / alpha[p], alpha[p], Leaving::Basic(p));
            }
        }
        // Keys whose set has basics, or the entering one's set.
        sets_touched.clear();
        sets_touched.extend(basis.iter().filter_map(|v| set_of(*v)));
        if let Some(w) = w_in {
            sets_touched.push(w);
        }
        sets_touched.sort_unstable();
        sets_touched.dedup();
        for &w in &sets_touched {
            let mut value = 1.0;
            let mut rate = if Some(w) == w_in { -1.0 } else { 0.0 };
            for p in 0..m {
                if set_of(basis[p]) == Some(w) {
                    value -= xb[p];
                    rate += alpha[p];
                }
            }
            if rate < -PIVOT_TOL {
                offer(value.max(0.0) / -rate, -rate, Leaving::Key(w));
            }
        }
        let Some((_, _, leaving)) = leave else {
            return Err(Failure::Unbounded);
        };
        since_refactor += 1;
        match leaving {
            Leaving::Basic(p) => {
                basis[p] = entering;
                replace_column(&mut inv, &alpha, p);
            }
            Leaving::Key(w) => {
                let old = key[w];
                // Another basic of the set becomes its key; else the
                // entering variable (then of the same set) does, and the
                // working basis is unchanged.
                if let Some(p) = (0..m).find(|&p| set_of(basis[p]) == Some(w)) {
                    key[w] = basis[p];
                    basis[p] = entering;
                    // The set's basics' columns (and p's) change: one
                    // column replacement each, or a rebuild if one of
                    // them would pivot on next to nothing.
                    for q in 0..m {
                        if q != p && set_of(basis[q]) != Some(w) {
                            continue;
                        }
                        transformed(lp, &key, basis[q], &mut col);
                        multiply(&inv, &col, &mut alpha);
                        if alpha[q].abs() < 1e-7 {
                            stale = true;
                            break;
                        }
                        replace_column(&mut inv, &alpha, q);
                    }
                } else {
                    key[w] = entering;
                }
                for &(i, a) in coefs(lp, old) {
                    key_sum[i] -= a;
                }
                for &(i, a) in coefs(lp, key[w]) {
                    key_sum[i] += a;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Leaving {
    Basic(usize),
    Key(usize),
}

fn set_of(v: Var) -> Option<usize> {
    match v {
        Var::Opt(w, _) | Var::Skip(w) => Some(w),
        _ => None,
    }
}

/// Pivots between two rebuilds of the basis inverse.
const REFACTOR_EVERY: usize = 50;
/// Sets priced per block: about n / PRICING_BLOCKS, at least PRICING_BLOCK
/// and at most PRICING_BLOCK_MAX.
const PRICING_BLOCKS: usize = 64;
const PRICING_BLOCK: usize = 64;
/// At most this many sets per block: with n / 64 sets (1,560 at 100,000
/// workloads) a pivot cost 142 µs and the LP 4.2 s; with 256, 33 µs and
/// 2.0 s (more pivots, each much cheaper).
const PRICING_BLOCK_MAX: usize = 256;

/// The set columns in flat arrays, for the pricing loop.
struct Flat {
    /// Set w's columns are start[w]..start[w + 1].
    start: Vec<usize>,
    cost: Vec<f64>,
    /// Column j's entries are entries[at[j]..at[j + 1]].
    at: Vec<usize>,
    entries: Vec<(u32, f64)>,
}

impl Flat {
    fn new(lp: &Lp) -> Flat {
        let mut f = Flat {
            start: vec![0],
            cost: Vec::new(),
            at: vec![0],
            entries: Vec::new(),
        };
        for set in &lp.sets {
            for c in set {
                f.cost.push(c.cost);
                f.entries
                    .extend(c.coefs.iter().map(|&(i, a)| (i as u32, a)));
                f.at.push(f.entries.len());
            }
            f.start.push(f.cost.len());
        }
        f
    }

    fn priced(&self, pi: &[f64], j: usize) -> f64 {
        let mut d = self.cost[j];
        for &(i, a) in &self.entries[self.at[j]..self.at[j + 1]] {
            d -= pi[i as usize] * a;
        }
        d
    }
}

const NO_COEFS: &[(usize, f64)] = &[];

fn coefs(lp: &Lp, v: Var) -> &[(usize, f64)] {
    match v {
        Var::Opt(w, j) => &lp.sets[w][j].coefs,
        Var::Free(k) => &lp.free[k].coefs,
        Var::Skip(_) | Var::Slack(_) => NO_COEFS,
    }
}

fn cost(lp: &Lp, v: Var) -> f64 {
    match v {
        Var::Opt(w, j) => lp.sets[w][j].cost,
        Var::Free(k) => lp.free[k].cost,
        Var::Skip(_) | Var::Slack(_) => 0.0,
    }
}

/// c_k − π·g_k for a free column.
fn priced_free(lp: &Lp, pi: &[f64], k: usize) -> f64 {
    let c = &lp.free[k];
    c.cost - c.coefs.iter().map(|&(i, a)| pi[i] * a).sum::<f64>()
}

/// The column of `v` in the working basis: a_v, less its set's key's.
fn transformed(lp: &Lp, key: &[Var], v: Var, col: &mut [f64]) {
    col.fill(0.0);
    if let Var::Slack(i) = v {
        col[i] = 1.0;
    }
    for &(i, a) in coefs(lp, v) {
        col[i] += a;
    }
    if let Some(w) = set_of(v) {
        for &(i, a) in coefs(lp, key[w]) {
            col[i] -= a;
        }
    }
}

fn finish(
    lp: &Lp,
    key: &[Var],
    basis: &[Var],
    xb: &[f64],
    duals: Vec<f64>,
    pivots: usize,
) -> Outcome {
    let choice = |v: Var| match v {
        Var::Opt(_, j) => Some(j),
        _ => None,
    };
    let mut shares: Vec<Vec<(Option<usize>, f64)>> = (0..lp.sets.len())
        .map(|w| vec![(choice(key[w]), 1.0)])
        .collect();
    let mut objective = 0.0;
    for (p, v) in basis.iter().enumerate() {
        let x = xb[p].max(0.0);
        objective += cost(lp, *v) * x;
        if let Some(w) = set_of(*v) {
            if x > 0.0 {
                shares[w][0].1 -= x;
                shares[w].push((choice(*v), x));
            }
        }
    }
    for (w, s) in shares.iter_mut().enumerate() {
        objective += cost(lp, key[w]) * s[0].1.max(0.0);
        s.retain(|x| x.1 > 1e-12);
        s.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    Outcome {
        shares,
        duals,
        objective,
        pivots,
    }
}

/// The inverse after the basis's column p is replaced by one whose
/// representation in the old basis is `alpha` (product-form update).
fn replace_column(inv: &mut [f64], alpha: &[f64], p: usize) {
    let m = alpha.len();
    let piv = alpha[p];
    for j in 0..m {
        inv[p * m + j] /= piv;
    }
    for i in 0..m {
        let f = alpha[i];
        if i != p && f != 0.0 {
            for j in 0..m {
                inv[i * m + j] -= f * inv[p * m + j];
            }
        }
    }
}

/// y = A x for a dense m × m row-major A.
fn multiply(a: &[f64], x: &[f64], y: &mut [f64]) {
    let m = x.len();
    for i in 0..m {
        let row = &a[i * m..(i + 1) * m];
        y[i] = row.iter().zip(x).map(|(r, v)| r * v).sum();
    }
}

/// Dense LU with partial pivoting.
struct Lu {
    m: usize,
    a: Vec<f64>,
    perm: Vec<usize>,
}

impl Lu {
    fn new(m: usize) -> Lu {
        Lu {
            m,
            a: vec![0.0; m * m],
            perm: (0..m).collect(),
        }
    }

    fn factor(&mut self, b: &[f64]) -> bool {
        let m = self.m;
        self.a.copy_from_slice(b);
        for i in 0..m {
            self.perm[i] = i;
        }
        let scale = b.iter().fold(0.0f64, |s, x| s.max(x.abs())).max(1e-300);
        for k in 0..m {
            let (p, big) = (k..m)
                .map(|i| (i, self.a[i * m + k].abs()))
                .fold((k, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            if big <= 1e-11 * scale {
                return false;
            }
            if p != k {
                for j in 0..m {
                    self.a.swap(k * m + j, p * m + j);
                }
                self.perm.swap(k, p);
            }
            let d = self.a[k * m + k];
            for i in k + 1..m {
                let f = self.a[i * m + k] / d;
                self.a[i * m + k] = f;
                if f != 0.0 {
                    for j in k + 1..m {
                        self.a[i * m + j] -= f * self.a[k * m + j];
                    }
                }
            }
        }
        true
    }

    /// y with B y = r.
    fn solve(&self, r: &[f64], y: &mut [f64]) {
        let m = self.m;
        for i in 0..m {
            y[i] = r[self.perm[i]];
        }
        for i in 0..m {
            for j in 0..i {
                y[i] -= self.a[i * m + j] * y[j];
            }
        }
        for i in (0..m).rev() {
            for j in i + 1..m {
                y[i] -= self.a[i * m + j] * y[j];
            }
            y[i] /= self.a[i * m + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(cost: f64, coefs: &[(usize, f64)]) -> Column {
        Column {
            cost,
            coefs: coefs.to_vec(),
        }
    }

    /// Two jobs, each $5 on a pool of 10 units where it takes 8, or $9
    /// elsewhere.
    fn two_jobs_on_a_pool() -> Lp {
        let set = vec![col(5.0, &[(0, 8.0)]), col(9.0, &[])];
        Lp {
            rows: 1,
            b: vec![10.0],
            sets: vec![set.clone(), set],
            skippable: vec![false, false],
            free: vec![],
        }
    }

    /// Two jobs on a pool (above). By hand: x1 + x2 ≤ 1.25 on the pool, cost 18 − 4·1.25 =
    /// 13; the pool's dual is −$4 per 8 units.
    #[test]
    fn two_jobs_sharing_a_pool_split_as_computed_by_hand() {
        let lp = two_jobs_on_a_pool();
        let out = solve(&lp, &[Some(1), Some(1)], 100).unwrap();
        assert!((out.objective - 13.0).abs() < 1e-9, "{}", out.objective);
        assert!((out.duals[0] + 0.5).abs() < 1e-9, "{:?}", out.duals);
        // One job whole on the pool, the other split 1/4 on it.
        let mut on_pool: Vec<f64> = out
            .shares
            .iter()
            .map(|s| s.iter().filter(|x| x.0 == Some(0)).map(|x| x.1).sum())
            .collect();
        on_pool.sort_by(f64::total_cmp);
        assert!((on_pool[0] - 0.25).abs() < 1e-9 && (on_pool[1] - 1.0).abs() < 1e-9);
    }

    /// A commitment of $4 on a provider whose option spends $10 (free at
    /// the margin up to the commitment, then $1 per $1), against $3
    /// elsewhere. By hand: cost = max(0, 10x − 4) + 3(1 − x), least at
    /// x = 0.4: $1.80. The start (x = 1) overspends, so the excess column
    /// starts basic.
    #[test]
    fn a_commitment_is_used_up_to_its_value() {
        let lp = Lp {
            rows: 1,
            b: vec![4.0],
            sets: vec![vec![col(0.0, &[(0, 10.0)]), col(3.0, &[])]],
            skippable: vec![false],
            free: vec![col(1.0, &[(0, -1.0)])],
        };
        let out = solve(&lp, &[Some(0)], 100).unwrap();
        assert!((out.objective - 1.8).abs() < 1e-9, "{}", out.objective);
        let x0: f64 = out.shares[0]
            .iter()
            .filter(|s| s.0 == Some(0))
            .map(|s| s.1)
            .sum();
        assert!((x0 - 0.4).abs() < 1e-9, "{x0}");
    }

    /// Leaving out is free, but a count row (−1 per placed, ≤ −K) asks for
    /// at least one of three; the cheapest whole job wins.
    #[test]
    fn a_count_row_places_the_cheapest() {
        let sets = [7.0, 2.0, 4.0]
            .iter()
            .map(|c| vec![col(*c, &[(0, -1.0)])])
            .collect();
        let lp = Lp {
            rows: 1,
            b: vec![-1.0],
            sets,
            skippable: vec![true; 3],
            free: vec![col(1e3, &[(0, -1.0)])],
        };
        let out = solve(&lp, &[None, None, None], 100).unwrap();
        assert!((out.objective - 2.0).abs() < 1e-9, "{}", out.objective);
        assert_eq!(out.shares[1], vec![(Some(0), 1.0)]);
        assert_eq!(out.shares[0], vec![(None, 1.0)]);
    }

    #[test]
    fn a_start_over_a_row_without_an_excess_column_is_refused() {
        let lp = Lp {
            rows: 1,
            b: vec![1.0],
            sets: vec![vec![col(1.0, &[(0, 2.0)])]],
            skippable: vec![false],
            free: vec![],
        };
        assert_eq!(
            solve(&lp, &[Some(0)], 100).unwrap_err(),
            Failure::InfeasibleStart
        );
        // And a set that cannot be left out must start on a column.
        assert_eq!(
            solve(&lp, &[None], 100).unwrap_err(),
            Failure::InfeasibleStart
        );
    }

    #[test]
    fn the_pivot_limit_is_reported() {
        let lp = two_jobs_on_a_pool();
        assert_eq!(
            solve(&lp, &[Some(1), Some(1)], 0).unwrap_err(),
            Failure::IterationLimit
        );
    }
}
