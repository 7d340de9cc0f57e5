//! `ledger backtest`: how each recommendation method would have done.
//!
//! Rolling origin: at every `step` hours from `min_history` on, each
//! method recommends a commitment from the history up to that hour only
//! (the same [`crate::recommend::recommend`] the CLI runs, for a term of
//! `horizon` hours), and the recommendation is then realised on the
//! `horizon` hours that actually followed: realised savings
//! Σ min(x, q) − (1 − d)·q. The hindsight optimum is the best fixed
//! commitment for those hours ([`crate::recommend::best_covers`] on them).
//!
//! Per method it reports realised savings as a share of the hindsight
//! optimum (summed over origins), and calibration: how often the realised
//! savings fell inside the predicted P10–P90 band (80 % if calibrated), the
//! mean predicted probability of a loss against the share of origins that
//! lost, and predicted against realised hours with unused commitment.

use crate::amount::Amount;
use crate::recommend::{best_covers, recommend_with_model, savings, RecommendInput};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct BacktestInput<'a> {
    /// On-demand $/h, oldest first, no gaps.
    pub hourly: &'a [f64],
    /// Hour (since the epoch) of `hourly[0]`.
    pub first_hour: i64,
    pub discount_pct: f64,
    pub horizon_hours: usize,
    pub step_hours: usize,
    pub min_history_hours: usize,
    pub lookbacks_days: &'a [u32],
    pub scenarios: usize,
    pub seed: u64,
}

/// One method at one origin.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub origin_hour: i64,
    pub method: String,
    pub lookback_days: Option<u32>,
    pub covers_usd_per_hour: f64,
    pub predicted_savings: f64,
    pub predicted_p10: f64,
    pub predicted_p90: f64,
    pub predicted_loss_probability: f64,
    pub predicted_underused_pct: f64,
    pub realised_savings: f64,
    pub realised_underused_pct: f64,
    pub hindsight_savings: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MethodSummary {
    pub method: String,
    pub lookback_days: Option<u32>,
    pub origins: usize,
    pub realised_savings: Amount,
    pub hindsight_savings: Amount,
    /// Realised ÷ hindsight, percent (None when hindsight saves nothing).
    pub pct_of_hindsight: Option<f64>,
    /// Share of origins whose realised savings fell in the predicted
    /// P10–P90 band (0.8 if calibrated).
    pub band_coverage: f64,
    pub predicted_loss_probability: f64,
    pub realised_loss_share: f64,
    pub predicted_underused_pct: f64,
    pub realised_underused_pct: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Backtest {
    pub origins: usize,
    pub outcomes: Vec<Outcome>,
    pub methods: Vec<MethodSummary>,
    /// The demand model at the last origin (how scenarios were drawn).
    pub last_model: Option<String>,
}

/// Origins examined at most (bounded work on long histories).
pub const ORIGINS_MAX: usize = 400;

pub fn backtest(i: &BacktestInput) -> Backtest {
    let d = i.discount_pct / 100.0;
    let n = i.hourly.len();
    let step = i.step_hours.max(24);
    let mut outcomes = Vec::new();
    let mut origins = 0usize;
    let mut last_model = None;
    let mut o = i.min_history_hours.max(24);
    while o + i.horizon_hours <= n && origins < ORIGINS_MAX {
        let (past, future) = (&i.hourly[..o], &i.hourly[o..o + i.horizon_hours]);
        let (recs, model) = recommend_with_model(&RecommendInput {
            hourly: past,
            existing: &[],
            discount_pct: i.discount_pct,
            term_hours: i.horizon_hours,
            lookbacks_days: i.lookbacks_days,
            growth_pct: None,
            scenarios: i.scenarios,
            seed: i.seed ^ o as u64,
        });
        last_model = Some(model.describe());
        let best = best_covers(future, d);
        let hindsight = savings(future, best, d);
        for r in recs {
            let q = r.covers_usd_per_hour.as_f64();
            let under = if q > 0.0 {
                100.0 * future.iter().filter(|x| **x < q).count() as f64 / future.len() as f64
            } else {
                0.0
            };
            outcomes.push(Outcome {
                origin_hour: i.first_hour + o as i64,
                method: r.method,
                lookback_days: r.lookback_days,
                covers_usd_per_hour: q,
                predicted_savings: r.expected_term_savings.as_f64(),
                predicted_p10: r.savings_p10.as_f64(),
                predicted_p90: r.savings_p90.as_f64(),
                predicted_loss_probability: r.loss_probability,
                predicted_underused_pct: r.hours_underused_pct,
                realised_savings: savings(future, q, d),
                realised_underused_pct: under,
                hindsight_savings: hindsight,
            });
        }
        origins += 1;
        o += step;
    }
    let mut keys: Vec<(String, Option<u32>)> = Vec::new();
    for x in &outcomes {
        let k = (x.method.clone(), x.lookback_days);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let methods = keys
        .into_iter()
        .map(|(method, lookback)| {
            let xs: Vec<&Outcome> = outcomes
                .iter()
                .filter(|x| x.method == method && x.lookback_days == lookback)
                .collect();
            let k = xs.len().max(1) as f64;
            let realised: f64 = xs.iter().map(|x| x.realised_savings).sum();
            let hindsight: f64 = xs.iter().map(|x| x.hindsight_savings).sum();
            // A band of width zero (a commitment of 0) holds its realised 0.
            let inside = xs
                .iter()
                .filter(|x| {
                    x.realised_savings >= x.predicted_p10 - 1e-6
                        && x.realised_savings <= x.predicted_p90 + 1e-6
                })
                .count();
            MethodSummary {
                method,
                lookback_days: lookback,
                origins: xs.len(),
                realised_savings: Amount::from_usd_f64(realised),
                hindsight_savings: Amount::from_usd_f64(hindsight),
                pct_of_hindsight: (hindsight > 0.0).then(|| 100.0 * realised / hindsight),
                band_coverage: inside as f64 / k,
                predicted_loss_probability: xs
                    .iter()
                    .map(|x| x.predicted_loss_probability)
                    .sum::<f64>()
                    / k,
                realised_loss_share: xs.iter().filter(|x| x.realised_savings < 0.0).count() as f64
                    / k,
                predicted_underused_pct: xs.iter().map(|x| x.predicted_underused_pct).sum::<f64>()
                    / k,
                realised_underused_pct: xs.iter().map(|x| x.realised_underused_pct).sum::<f64>()
                    / k,
            }
        })
        .collect();
    Backtest {
        origins,
        outcomes,
        methods,
        last_model,
    }
}
