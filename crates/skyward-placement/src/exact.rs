//! Exact solver: the assignment as a MILP through `good_lp`. The default
//! build uses microlp (pure Rust); `--features highs` uses HiGHS.
//!
//! ```text
//! min  Σ_{p uncontracted} Σ s_{o,p} x_o + Σ_{p contracted} z_p + M Σ u_w
//! s.t. Σ_o x_{w,o} + u_w = 1                 every workload
//!      Σ a_{o,r} x_o ≤ limit_r               every row
//!      z_p ≥ C_p,  z_p ≥ f_p Σ s_{o,p} x_o   every contracted provider
//!      x, u binary
//! ```
//!
//! Dollars are scaled to thousands inside the model to keep the simplex
//! well conditioned.
//!
//! Branch and bound can take long on unlucky instances, so the solve has a
//! time limit and starts from a known plan (the Lagrangian one). If the limit
//! is hit, the solver's incumbent is returned without an optimality proof and
//! the caller keeps its own bound. This is the one place where the result
//! can depend on machine speed; within the limit it does not.

use crate::problem::{Choice, Problem, Solution};
use good_lp::solvers::{WithInitialSolution, WithMipGap, WithTimeLimit};
use good_lp::{
    constraint, variable, Constraint, Expression, ProblemVariables, Solution as _, SolutionStatus,
    SolverModel, Variable,
};

const SCALE: f64 = 1e-3;

#[derive(Debug)]
pub struct ExactError(pub String);

/// The model both solves share: variables, objective and constraints.
struct Model {
    vars: ProblemVariables,
    /// Per workload, per option: chosen (1) or not.
    x: Vec<Vec<Variable>>,
    /// Per workload that may be left out: left out (1) or not.
    u: Vec<Option<Variable>>,
    /// Per contracted provider: its bill, scaled.
    z: Vec<Option<Variable>>,
    objective: Expression,
    constraints: Vec<Constraint>,
}

/// Builds the model of the module notes. `integral`: binaries, else the
/// LP relaxation (x, u in [0, 1]). `min_count`: instead of a skip
/// penalty, a constraint that at least that many are placed.
fn model(pr: &Problem, integral: bool, min_count: Option<usize>) -> Model {
    let share = || {
        if integral {
            variable().binary()
        } else {
            variable().min(0.0).max(1.0)
        }
    };
    let mut vars = ProblemVariables::new();
    let x: Vec<Vec<Variable>> = pr
        .options
        .iter()
        .map(|opts| opts.iter().map(|_| vars.add(share())).collect())
        .collect();
    let u: Vec<Option<Variable>> = pr
        .can_skip
        .iter()
        .map(|&s| s.then(|| vars.add(share())))
        .collect();
    let contracted: Vec<bool> = pr.commit.iter().map(|c| *c > 0.0).collect();
    let z: Vec<Option<Variable>> = (0..pr.providers())
        .map(|p| contracted[p].then(|| vars.add(variable().min(pr.commit[p] * SCALE))))
        .collect();

    let mut objective = Expression::from(0.0);
    let mut provider_spend: Vec<Expression> =
        (0..pr.providers()).map(|_| Expression::from(0.0)).collect();
    let mut rows: Vec<Expression> = pr.row_limit.iter().map(|_| Expression::from(0.0)).collect();
    let mut constraints = Vec::new();
    for (w, opts) in pr.options.iter().enumerate() {
        for (o, opt) in opts.iter().enumerate() {
            for &(p, s) in &opt.spend {
                if contracted[p] {
                    provider_spend[p] += s * SCALE * x[w][o];
                } else {
                    // No commitment: cost = factor · spend, linear. A
                    // discount-only contract (commit 0) still discounts.
                    objective += pr.factor[p] * s * SCALE * x[w][o];
                }
            }
            for &(r, a) in &opt.uses {
                rows[r] += a * x[w][o];
            }
        }
        let mut sum: Expression = x[w].iter().copied().sum();
        if let Some(uw) = u[w] {
            sum += uw;
            if min_count.is_none() {
                objective += pr.skip_penalty * SCALE * uw;
            }
        }
        constraints.push(constraint!(sum == 1.0));
    }
    for zp in z.iter().flatten() {
        objective += *zp;
    }
    for (r, e) in rows.into_iter().enumerate() {
        constraints.push(constraint!(e <= pr.row_limit[r]));
    }
    for (p, zp) in z.iter().enumerate() {
        if let Some(zp) = zp {
            let spend = std::mem::replace(&mut provider_spend[p], Expression::from(0.0));
            constraints.push(constraint!(*zp >= pr.factor[p] * spend));
        }
    }
    if let Some(k) = min_count {
        let placed: Expression = x.iter().flatten().copied().sum();
        constraints.push(constraint!(placed >= k as f64));
    }
    Model {
        vars,
        x,
        u,
        z,
        objective,
        constraints,
    }
}

pub fn solve(
    pr: &Problem,
    time_limit_s: f64,
    warm: Option<&Choice>,
) -> Result<Solution, ExactError> {
    let Model {
        vars,
        x,
        u,
        z,
        objective,
        constraints,
    } = model(pr, true, None);
    let mut initial: Vec<(Variable, f64)> = Vec::new();
    if let Some(w) = warm.filter(|w| w.len() == pr.options.len()) {
        for (wi, xs) in x.iter().enumerate() {
            for (o, v) in xs.iter().enumerate() {
                initial.push((*v, if w[wi] == Some(o) { 1.0 } else { 0.0 }));
            }
            if let Some(uw) = u[wi] {
                initial.push((uw, if w[wi].is_none() { 1.0 } else { 0.0 }));
            }
        }
        let spend = pr.spend(w);
        for (p, zp) in z.iter().enumerate() {
            if let Some(zp) = zp {
                initial.push((*zp, pr.provider_cost(p, spend[p]) * SCALE));
            }
        }
    }
    #[cfg(not(feature = "highs"))]
    let model = vars.minimise(objective.clone()).using(good_lp::microlp);
    #[cfg(feature = "highs")]
    let model = vars.minimise(objective.clone()).using(good_lp::highs);
    // Gap 0: "optimal" must mean proven (HiGHS stops at 0.01% by default,
    // and good_lp does not expose its bound).
    let mut model = model
        .with_time_limit(time_limit_s.max(0.01))
        .with_mip_gap(0.0)
        .map_err(|e| ExactError(format!("{e:?}")))?;
    if !initial.is_empty() {
        model = model.with_initial_solution(initial);
    }
    for c in constraints {
        model = model.with(c);
    }
    let sol = model.solve().map_err(|e| ExactError(e.to_string()))?;
    let proven = matches!(sol.status(), SolutionStatus::Optimal);
    let mut choice: Choice = vec![None; pr.options.len()];
    for (w, xs) in x.iter().enumerate() {
        let mut best = (0.5, None);
        for (o, v) in xs.iter().enumerate() {
            let val = sol.value(*v);
            if val > best.0 {
                best = (val, Some(o));
            }
        }
        choice[w] = best.1;
    }
    let milp_objective = sol.eval(&objective) / SCALE;
    let ub = pr.objective(&choice);
    if !pr.is_feasible(&choice) {
        return Err(ExactError(
            "the MILP solution violates a constraint (solver tolerance)".into(),
        ));
    }
    // Branch and bound closed: the MILP optimum, less the solver's
    // tolerance (gap 0 is relative to float arithmetic with feasibility
    // tolerances, so a plan a few cents cheaper can exist), is the bound.
    // Without a proof there is no bound from here.
    let tolerance = 1e-7 * milp_objective.abs();
    let unplaced = choice.iter().filter(|c| c.is_none()).count();
    let lb = if proven {
        milp_objective.min(ub) - tolerance
    } else {
        f64::NEG_INFINITY
    };
    let cost_bound = if proven {
        (lb - pr.skip_penalty * unplaced as f64).min(pr.cost(&choice))
    } else {
        f64::NEG_INFINITY
    };
    Ok(Solution {
        choice,
        upper_bound: ub,
        lower_bound: lb,
        method: if cfg!(feature = "highs") {
            "exact-milp (HiGHS)"
        } else {
            "exact-milp (microlp)"
        },
        iterations: 0,
        proven_optimal: proven,
        cost_bound,
        max_placeable: if proven {
            pr.options.len() - unplaced
        } else {
            pr.options.len()
        },
    })
}

/// The LP relaxation (x, u in [0, 1]) with microlp: per workload, the
/// share on each option, and the LP objective in dollars. With
/// `min_count`, the cost of placing at least that many (no penalty);
/// without, the penalised objective. Tests use it as a bound computed by
/// another algorithm than the Lagrangian's.
pub fn solve_lp(
    pr: &Problem,
    min_count: Option<usize>,
) -> Result<(Vec<Vec<f64>>, f64), ExactError> {
    let m = model(pr, false, min_count);
    let mut lp = m.vars.minimise(m.objective.clone()).using(good_lp::microlp);
    for c in m.constraints {
        lp = lp.with(c);
    }
    let sol = lp.solve().map_err(|e| ExactError(e.to_string()))?;
    let shares =
        m.x.iter()
            .map(|xs| xs.iter().map(|v| sol.value(*v)).collect())
            .collect();
    Ok((shares, sol.eval(&m.objective) / SCALE))
}
