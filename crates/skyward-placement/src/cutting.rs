//! Maximising a concave piecewise-linear function of a few variables,
//! given by an oracle that returns its value and a supergradient: Kelley's
//! cutting planes kept stable by a box around the best point (Marsten's
//! boxstep). The master problem (maximise θ under the cuts, inside the
//! box) is a small LP: `dim + 1` variables and at most `CUTS_MAX` rows.
//!
//! Used for the Lagrangian duals in [`crate::lagrange`], which have one
//! variable per coupling row and contracted provider (tens), where the
//! plain subgradient method converges too slowly to prove a 1 % gap.

// The master indexes cuts and coordinates together.
#![allow(clippy::needless_range_loop)]

use good_lp::{
    constraint, variable, Expression, ProblemVariables, Solution, SolverModel, Variable,
};

pub const CUTS_MAX: usize = 60;

/// One cut: f(y) ≤ value + g·(y − at).
struct Cut {
    value: f64,
    at: Vec<f64>,
    g: Vec<f64>,
}

/// Where to search: the box [lo, hi], the start and the first trust
/// radius per coordinate.
pub struct Region<'a> {
    pub lo: &'a [f64],
    pub hi: &'a [f64],
    pub start: &'a [f64],
    pub step: &'a [f64],
}

/// f(y) and a supergradient at y.
pub type Oracle<'a> = &'a mut dyn FnMut(&[f64]) -> (f64, Vec<f64>);

pub struct Outcome {
    pub best_value: f64,
    pub best_point: Vec<f64>,
    pub iterations: usize,
}

/// Maximises `oracle` over the region's box from its start.
/// `oracle(y)` returns (f(y), a supergradient). Stops after `iterations`
/// oracle calls, when the model's predicted gain falls below `tolerance`
/// (absolute), or when `stop(best)` says so.
pub fn maximise(
    region: &Region,
    iterations: usize,
    tolerance: f64,
    oracle: Oracle,
    stop: &dyn Fn(f64) -> bool,
) -> Outcome {
    let Region {
        lo,
        hi,
        start,
        step,
    } = *region;
    let dim = start.len();
    let (v0, g0) = oracle(start);
    let mut cuts = vec![Cut {
        value: v0,
        at: start.to_vec(),
        g: g0,
    }];
    let mut center = start.to_vec();
    let mut center_value = v0;
    let mut radius: Vec<f64> = step.to_vec();
    let mut calls = 1;
    let scale = 1.0 / v0.abs().max(1.0);
    let mut nulls = 0;
    while calls < iterations && !stop(center_value) {
        let Some((y, predicted)) = master(&cuts, lo, hi, &center, &radius, scale) else {
            break;
        };
        let at_box: Vec<bool> = (0..dim)
            .map(|j| {
                let a = (center[j] - radius[j]).max(lo[j]);
                let b = (center[j] + radius[j]).min(hi[j]);
                ((y[j] - a).abs() <= 1e-9 * (1.0 + a.abs()) && a > lo[j])
                    || ((y[j] - b).abs() <= 1e-9 * (1.0 + b.abs()) && b < hi[j])
            })
            .collect();
        let hit_box = at_box.iter().any(|b| *b);
        let gain = predicted - center_value;
        if gain <= tolerance {
            if hit_box {
                for j in 0..dim {
                    if at_box[j] {
                        radius[j] *= 2.0;
                    }
                }
                continue;
            }
            break;
        }
        let (v, g) = oracle(&y);
        calls += 1;
        if v >= center_value + 0.1 * gain {
            center = y.clone();
            center_value = v;
            nulls = 0;
            for j in 0..dim {
                if at_box[j] {
                    radius[j] *= 2.0;
                }
            }
        } else {
            nulls += 1;
            if nulls >= 8 {
                for r in &mut radius {
                    *r *= 0.5;
                }
                nulls = 0;
            }
        }
        cuts.push(Cut { value: v, at: y, g });
        if cuts.len() > CUTS_MAX {
            // Drop the cut that is slackest at the centre.
            let slack = |c: &Cut| {
                c.value
                    + (0..dim)
                        .map(|j| c.g[j] * (center[j] - c.at[j]))
                        .sum::<f64>()
                    - center_value
            };
            if let Some(i) = (0..cuts.len() - 1)
                .max_by(|a, b| slack(&cuts[*a]).total_cmp(&slack(&cuts[*b])).then(b.cmp(a)))
            {
                cuts.remove(i);
            }
        }
    }
    Outcome {
        best_value: center_value,
        best_point: center,
        iterations: calls,
    }
}

/// max θ s.t. θ ≤ value_k + g_k·(y − at_k), y in the box ∩ [lo, hi].
/// Values are scaled by `scale` for the LP's conditioning.
fn master(
    cuts: &[Cut],
    lo: &[f64],
    hi: &[f64],
    center: &[f64],
    radius: &[f64],
    scale: f64,
) -> Option<(Vec<f64>, f64)> {
    let dim = center.len();
    let mut vars = ProblemVariables::new();
    let y: Vec<Variable> = (0..dim)
        .map(|j| {
            let a = (center[j] - radius[j]).max(lo[j]);
            let b = (center[j] + radius[j]).min(hi[j]);
            vars.add(variable().min(a).max(b.max(a)))
        })
        .collect();
    let theta = vars.add(variable());
    let mut model = vars.maximise(theta).using(good_lp::microlp);
    for c in cuts {
        let mut rhs = c.value;
        let mut e = Expression::from(0.0);
        for j in 0..dim {
            if c.g[j] != 0.0 {
                e += (c.g[j] * scale) * y[j];
                rhs -= c.g[j] * c.at[j];
            }
        }
        model = model.with(constraint!(theta - e <= rhs * scale));
    }
    let sol = model.solve().ok()?;
    let point: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(j, v)| sol.value(*v).clamp(lo[j], hi[j]))
        .collect();
    Some((point, sol.value(theta) / scale))
}
