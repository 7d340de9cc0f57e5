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

use crate::problem::{Choice, Problem, Solution};
use good_lp::{constraint, variable, Expression, ProblemVariables, Solution as _, SolverModel, Variable};

const SCALE: f64 = 1e-3;

#[derive(Debug)]
pub struct ExactError(pub String);

pub fn solve(pr: &Problem) -> Result<Solution, ExactError> {
    let mut vars = ProblemVariables::new();
    let x: Vec<Vec<Variable>> = pr.options.iter().map(|opts| opts.iter().map(|_| vars.add(variable().binary())).collect()).collect();
    let u: Vec<Option<Variable>> = pr.can_skip.iter().map(|&s| s.then(|| vars.add(variable().binary()))).collect();
    let contracted: Vec<bool> = pr.commit.iter().map(|c| *c > 0.0).collect();
    let z: Vec<Option<Variable>> =
        (0..pr.providers()).map(|p| contracted[p].then(|| vars.add(variable().min(pr.commit[p] * SCALE)))).collect();

    let mut objective = Expression::from(0.0);
    let mut provider_spend: Vec<Expression> = (0..pr.providers()).map(|_| Expression::from(0.0)).collect();
    for (w, opts) in pr.options.iter().enumerate() {
        for (o, opt) in opts.iter().enumerate() {
            for &(p, s) in &opt.spend {
                if contracted[p] {
                    provider_spend[p] += s * SCALE * x[w][o];
                } else {
                    objective += s * SCALE * x[w][o];
                }
            }
        }
        if let Some(uw) = u[w] {
            objective += pr.skip_penalty * SCALE * uw;
        }
    }
    for zp in z.iter().flatten() {
        objective += *zp;
    }
    let mut model = vars.minimise(objective.clone()).using(backend());
    for (w, xs) in x.iter().enumerate() {
        let mut sum: Expression = xs.iter().copied().sum();
        if let Some(uw) = u[w] {
            sum += uw;
        }
        model = model.with(constraint!(sum == 1.0));
    }
    let mut rows: Vec<Expression> = pr.row_limit.iter().map(|_| Expression::from(0.0)).collect();
    for (w, opts) in pr.options.iter().enumerate() {
        for (o, opt) in opts.iter().enumerate() {
            for &(r, a) in &opt.uses {
                rows[r] += a * x[w][o];
            }
        }
    }
    for (r, e) in rows.into_iter().enumerate() {
        model = model.with(constraint!(e <= pr.row_limit[r]));
    }
    for (p, zp) in z.iter().enumerate() {
        if let Some(zp) = zp {
            let spend = std::mem::replace(&mut provider_spend[p], Expression::from(0.0));
            model = model.with(constraint!(*zp >= pr.factor[p] * spend));
        }
    }
    let sol = model.solve().map_err(|e| ExactError(e.to_string()))?;
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
        return Err(ExactError("the MILP solution violates a constraint (solver tolerance)".into()));
    }
    // Branch and bound closed: the MILP optimum is the bound. It is never
    // reported above the plan's own (exactly recomputed) cost.
    let lb = milp_objective.min(ub);
    Ok(Solution {
        choice,
        upper_bound: ub,
        lower_bound: lb,
        method: if cfg!(feature = "highs") { "exact-milp (HiGHS)" } else { "exact-milp (microlp)" },
        iterations: 0,
        proven_optimal: true,
        row_price: vec![0.0; pr.row_limit.len()],
        provider_price: pr.factor.clone(),
    })
}

#[cfg(not(feature = "highs"))]
fn backend() -> impl good_lp::Solver {
    good_lp::microlp
}

#[cfg(feature = "highs")]
fn backend() -> impl good_lp::Solver {
    good_lp::highs
}
