//! The global assignment problem, solver-neutral.
//!
//! Choose one option per workload (or leave it unplaced, only where every
//! option uses a limited row) to minimise
//!
//! ```text
//!   Σ_p cost_p(S_p) + penalty · unplaced,
//!   cost_p(S) = max(commit_p, factor_p · S)   (factor = 1 − discount)
//! ```
//!
//! where `S_p` is the list spend on provider p (compute on the chosen
//! provider, egress on the data's provider), subject to Σ uses ≤ limit on
//! every row (quotas in accelerators, reserved pools in nodes). A provider
//! without a contract has commit 0 and factor 1. `cost_p` is convex and
//! piecewise linear: below the commitment, spend is free at the margin.

/// One option in solver terms.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Opt {
    /// (provider, list $) — one or two entries.
    pub spend: Vec<(usize, f64)>,
    /// (row, amount).
    pub uses: Vec<(usize, f64)>,
}

impl Opt {
    /// What the option takes from `row`, if it uses it.
    pub fn use_of(&self, row: usize) -> Option<f64> {
        self.uses.iter().find(|u| u.0 == row).map(|u| u.1)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub options: Vec<Vec<Opt>>,
    pub can_skip: Vec<bool>,
    pub skip_penalty: f64,
    pub row_limit: Vec<f64>,
    pub commit: Vec<f64>,
    pub factor: Vec<f64>,
}

/// A choice per workload: Some(option index) or None (unplaced).
pub type Choice = Vec<Option<usize>>;

impl Problem {
    pub fn providers(&self) -> usize {
        self.commit.len()
    }

    pub fn provider_cost(&self, p: usize, spend: f64) -> f64 {
        (self.factor[p] * spend).max(self.commit[p])
    }

    pub fn spend(&self, choice: &Choice) -> Vec<f64> {
        let mut s = vec![0.0; self.providers()];
        for (w, c) in choice.iter().enumerate() {
            if let Some(o) = c {
                for &(p, v) in &self.options[w][*o].spend {
                    s[p] += v;
                }
            }
        }
        s
    }

    pub fn usage(&self, choice: &Choice) -> Vec<f64> {
        let mut u = vec![0.0; self.row_limit.len()];
        for (w, c) in choice.iter().enumerate() {
            if let Some(o) = c {
                for &(r, a) in &self.options[w][*o].uses {
                    u[r] += a;
                }
            }
        }
        u
    }

    pub fn objective(&self, choice: &Choice) -> f64 {
        let s = self.spend(choice);
        let unplaced = choice.iter().filter(|c| c.is_none()).count() as f64;
        (0..self.providers())
            .map(|p| self.provider_cost(p, s[p]))
            .sum::<f64>()
            + self.skip_penalty * unplaced
    }

    /// True when every row holds and only skippable workloads are unplaced.
    pub fn is_feasible(&self, choice: &Choice) -> bool {
        let u = self.usage(choice);
        u.iter().zip(&self.row_limit).all(|(a, l)| *a <= *l + 1e-9)
            && choice
                .iter()
                .enumerate()
                .all(|(w, c)| c.is_some() || self.can_skip[w])
    }

    pub fn option_count(&self) -> usize {
        self.options.iter().map(Vec::len).sum()
    }
}

/// What a solver returns.
#[derive(Debug, Clone)]
pub struct Solution {
    pub choice: Choice,
    /// Objective of `choice` (with penalties).
    pub upper_bound: f64,
    /// Proven lower bound on the objective (with penalties).
    pub lower_bound: f64,
    pub method: &'static str,
    pub iterations: usize,
    pub proven_optimal: bool,
    /// Proven lower bound on the cost (no penalties) of every plan that
    /// places at least as many workloads as `choice`.
    pub cost_bound: f64,
    /// Proven: no plan places more workloads than this.
    pub max_placeable: usize,
}

impl Problem {
    pub fn placed(choice: &Choice) -> usize {
        choice.iter().filter(|c| c.is_some()).count()
    }

    /// Cost without penalties.
    pub fn cost(&self, choice: &Choice) -> f64 {
        let s = self.spend(choice);
        (0..self.providers())
            .map(|p| self.provider_cost(p, s[p]))
            .sum()
    }
}
