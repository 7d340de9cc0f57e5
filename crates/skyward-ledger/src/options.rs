//! Terms, payment options and laddering of an hourly commitment, compared
//! by net present value over the same demand scenarios.
//!
//! A commitment covering q $/h of on-demand spend at discount d costs
//! f = (1 − d)·q per hour. Its cash flows, month by month (730 h):
//! * saved: Σ min(x_h, Q_h) over the month's hours (on-demand not paid),
//!   where Q_h is the coverage of every tranche active at hour h, shared in
//!   proportion to each tranche's size;
//! * paid: all upfront, f × term hours at its start; partial upfront, half
//!   of that at the start and the rest monthly; no upfront, f × 730 monthly.
//!
//! Every option is compared over the same horizon (the longest term): a
//! shorter term is renewed on the same terms when it ends. Flows are
//! discounted monthly at the yearly `discount_rate_pct`. Reported per
//! option: the expected NPV, its P10 and P90, and the probability it is
//! negative.

use serde::Serialize;

pub const MONTH_HOURS: usize = 730;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payment {
    NoUpfront,
    PartialUpfront,
    AllUpfront,
}

impl Payment {
    pub fn parse(s: &str) -> Option<Payment> {
        match s {
            "none" | "no-upfront" => Some(Payment::NoUpfront),
            "partial" | "partial-upfront" => Some(Payment::PartialUpfront),
            "all" | "all-upfront" => Some(Payment::AllUpfront),
            _ => None,
        }
    }
}

/// One way to buy: term, payment, discount.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Term {
    pub years: u32,
    pub payment: Payment,
    pub discount_pct: f64,
}

/// A purchase: `share` of the coverage, bought `start_month` months from now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tranche {
    pub start_month: usize,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Valuation {
    pub label: String,
    pub expected_npv: f64,
    pub npv_p10: f64,
    pub npv_p90: f64,
    pub loss_probability: f64,
}

/// Payments of one tranche, per month of the horizon (renewed at term end).
fn payments(t: &Term, fee_per_hour: f64, start: usize, months: usize) -> Vec<f64> {
    let mut out = vec![0.0; months];
    let term_months = t.years as usize * 12;
    let mut s = start;
    while s < months {
        let total = fee_per_hour * (term_months * MONTH_HOURS) as f64;
        let upfront = match t.payment {
            Payment::AllUpfront => total,
            Payment::PartialUpfront => total / 2.0,
            Payment::NoUpfront => 0.0,
        };
        out[s] += upfront;
        let monthly = (total - upfront) / term_months as f64;
        for m in out.iter_mut().skip(s).take(term_months) {
            *m += monthly;
        }
        s += term_months;
    }
    out
}

/// NPV of one schedule (tranches of the same term) on each scenario.
pub fn npv_paths(
    scenarios: &[Vec<f64>],
    covers: f64,
    term: &Term,
    tranches: &[Tranche],
    discount_rate_pct: f64,
) -> Vec<f64> {
    let months = scenarios.iter().map(|s| s.len()).max().unwrap_or(0) / MONTH_HOURS;
    if months == 0 {
        return Vec::new();
    }
    let d = term.discount_pct / 100.0;
    let r_month = (1.0 + discount_rate_pct / 100.0).powf(1.0 / 12.0);
    let factor: Vec<f64> = (0..months).map(|m| r_month.powi(-(m as i32))).collect();
    let mut paid = vec![0.0; months];
    for tr in tranches {
        let fee = (1.0 - d) * covers * tr.share;
        for (p, x) in paid
            .iter_mut()
            .zip(payments(term, fee, tr.start_month, months))
        {
            *p += x;
        }
    }
    // Coverage active in each month (tranches start on month boundaries and
    // renew, so once bought they stay).
    let active: Vec<f64> = (0..months)
        .map(|m| {
            covers
                * tranches
                    .iter()
                    .filter(|t| t.start_month <= m)
                    .map(|t| t.share)
                    .sum::<f64>()
        })
        .collect();
    scenarios
        .iter()
        .map(|s| {
            (0..months)
                .map(|m| {
                    let q = active[m];
                    let saved: f64 = s[m * MONTH_HOURS..(m + 1) * MONTH_HOURS]
                        .iter()
                        .map(|x| x.min(q))
                        .sum();
                    (saved - paid[m]) * factor[m]
                })
                .sum()
        })
        .collect()
}

pub fn value(label: String, mut npv: Vec<f64>) -> Valuation {
    npv.sort_by(f64::total_cmp);
    let n = npv.len().max(1);
    let pct = |p: f64| {
        npv.get(((n - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Valuation {
        label,
        expected_npv: npv.iter().sum::<f64>() / n as f64,
        npv_p10: pct(0.1),
        npv_p90: pct(0.9),
        loss_probability: npv.iter().filter(|v| **v < 0.0).count() as f64 / n as f64,
    }
}

/// `count` equal tranches, one every `every_months` (the first now).
pub fn ladder(count: usize, every_months: usize) -> Vec<Tranche> {
    let k = count.max(1);
    (0..k)
        .map(|i| Tranche {
            start_month: i * every_months,
            share: 1.0 / k as f64,
        })
        .collect()
}
