//! `--sweep`: the same scenario run over a grid of one or more knobs
//! (demand growth, demand level, commitment size, price trend), so a
//! negotiator can read where the answer changes (a deal's break-even).

use crate::scenario::Scenario;
use crate::{simulate, Policy, Progress, Report};
use serde::Serialize;
use skyward_ledger::contracts::{scale, Terms};

/// Values one knob may take in a sweep, and points in a whole grid.
pub const VALUES_MAX: usize = 20;
pub const POINTS_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Knob {
    /// Every Poisson stream's growth, percent a year.
    Growth,
    /// Every stream's arrival rate times this factor.
    Demand,
    /// Every spend commitment (and its floors) at this percent of its size.
    Commit,
    /// Every site's price trend, percent a year.
    PriceChange,
}

impl Knob {
    pub fn name(self) -> &'static str {
        match self {
            Knob::Growth => "growth",
            Knob::Demand => "demand",
            Knob::Commit => "commit",
            Knob::PriceChange => "price-change",
        }
    }

    fn range(self) -> (f64, f64) {
        match self {
            Knob::Growth | Knob::PriceChange => (-100.0, 1000.0),
            Knob::Demand => (0.001, 1000.0),
            Knob::Commit => (0.0, 1000.0),
        }
    }
}

/// One knob and its values, from `KNOB=V1,V2,…`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    pub knob: Knob,
    pub values: Vec<f64>,
}

impl Axis {
    pub fn parse(text: &str) -> Result<Axis, String> {
        let (name, list) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}' is not KNOB=V1,V2,…"))?;
        let knob = match name.trim() {
            "growth" => Knob::Growth,
            "demand" => Knob::Demand,
            "commit" => Knob::Commit,
            "price-change" => Knob::PriceChange,
            other => {
                return Err(format!(
                    "unknown knob '{other}': growth (%/year), demand (× arrivals), \
                     commit (% of each commitment), price-change (%/year)"
                ))
            }
        };
        let (lo, hi) = knob.range();
        let mut values = Vec::new();
        for v in list.split(',') {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{}: '{}' is not a number", knob.name(), v.trim()))?;
            if !(x.is_finite() && (lo..=hi).contains(&x)) {
                return Err(format!("{}: {x} is outside {lo}..={hi}", knob.name()));
            }
            values.push(x);
        }
        if values.is_empty() || values.len() > VALUES_MAX {
            return Err(format!(
                "{}: give from 1 to {VALUES_MAX} values",
                knob.name()
            ));
        }
        Ok(Axis { knob, values })
    }
}

/// The scenario with one knob set.
pub fn apply(sc: &Scenario, knob: Knob, value: f64) -> Scenario {
    let mut sc = sc.clone();
    match knob {
        Knob::Growth => {
            for s in &mut sc.demand {
                s.growth_pct_per_year = value;
            }
        }
        Knob::Demand => {
            for s in &mut sc.demand {
                s.arrivals_per_hour *= value;
                if let Some(every) = s.every_ms.as_mut() {
                    *every = ((*every as f64 / value).round() as u64).max(1);
                }
            }
        }
        Knob::Commit => {
            for c in &mut sc.contracts {
                if let Terms::Spend(t) = &mut c.terms {
                    t.commit = scale(t.commit, value / 100.0);
                    for f in &mut t.floors {
                        f.commit = scale(f.commit, value / 100.0);
                    }
                }
            }
        }
        Knob::PriceChange => {
            for s in &mut sc.sites {
                s.price_change_pct_per_year = value;
            }
        }
    }
    sc
}

/// Whether a knob changes anything in this scenario (growth on a scenario
/// of regular streams only, or commit without contracts, does not).
pub fn applies(sc: &Scenario, knob: Knob) -> bool {
    match knob {
        Knob::Growth => sc.demand.iter().any(|s| s.every_ms.is_none()),
        Knob::Demand => true,
        Knob::Commit => !sc.contracts.is_empty(),
        Knob::PriceChange => !sc.sites.is_empty(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// (knob, value) in the order the axes were given.
    pub settings: Vec<(Knob, f64)>,
    pub report: Report,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub scenario: String,
    pub seed: u64,
    pub axes: Vec<Axis>,
    pub points: Vec<Point>,
}

/// Every point of the grid (the axes' product, first axis slowest), each
/// run on the same seed.
pub fn sweep(
    sc: &Scenario,
    axes: &[Axis],
    policies: &[Policy],
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SweepReport, String> {
    for a in axes {
        if !applies(sc, a.knob) {
            return Err(format!(
                "--sweep {}: changes nothing in this scenario",
                a.knob.name()
            ));
        }
    }
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    if total > POINTS_MAX {
        return Err(format!(
            "--sweep: {total} points; at most {POINTS_MAX} (fewer values or knobs)"
        ));
    }
    let mut points = Vec::with_capacity(total);
    for k in 0..total {
        let mut rest = k;
        let mut settings = vec![(Knob::Demand, 0.0); axes.len()];
        for (i, a) in axes.iter().enumerate().rev() {
            settings[i] = (a.knob, a.values[rest % a.values.len()]);
            rest /= a.values.len();
        }
        let mut point = sc.clone();
        for (knob, value) in &settings {
            point = apply(&point, *knob, *value);
        }
        points.push(Point {
            report: simulate(&point, policies, seed, progress),
            settings,
        });
    }
    Ok(SweepReport {
        scenario: sc.name.clone(),
        seed,
        axes: axes.to_vec(),
        points,
    })
}
