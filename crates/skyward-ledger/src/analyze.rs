//! `ledger analyze`: what a spend commitment is really worth.
//!
//! For a commitment C at discount d, with list (on-demand) spend L over the
//! term, the provider bills max(C, (1 − d)·L) against L without the deal:
//!
//! * headline savings: the contract as sold, all of C used: C·d/(1 − d);
//! * break-even: savings L − max(C, (1 − d)L) ≥ 0 exactly when L ≥ C, that
//!   is when at least (1 − d) of the commitment is burned;
//! * expected economics: the burn B is projected path by path by
//!   [`crate::projection`], the engine `status` uses (same paths, same
//!   purchases and adjustments, same floors and shortfall rule, so the two
//!   agree on every shared figure); the list spend of a path is what was
//!   listed to date plus its projected burn at the history's list/billed
//!   ratio (1/(1 − d) for a contract not started). Per path: cost = B +
//!   the shortfall the rule bills; savings = L − cost. Reported: their
//!   means, the shortfall probability, the effective discount
//!   E[savings]/E[L], and the net present value at a discount rate, with
//!   discount savings accruing evenly over the remaining term and each
//!   shortfall paid when billed (year ends under `yearly`, term end).

use crate::amount::Amount;
use crate::contracts::{scale, Contract, ShortfallRule, SpendTerms, Terms};
use crate::projection::{project, Basis};
use crate::status::DayRow;
use crate::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Analysis {
    pub name: String,
    pub provider: String,
    pub start: String,
    pub end: String,
    pub at: String,
    pub committed: Amount,
    pub discount_pct: f64,
    pub discount_rate_pct: f64,
    pub growth_pct: f64,
    /// C·d/(1 − d): the savings if exactly the commitment is used.
    pub headline_savings: Amount,
    /// The commitment's payments discounted to the start (spread evenly).
    pub commitment_npv: Amount,
    /// List spend at which the deal breaks even (= the commitment).
    pub break_even_list_spend: Amount,
    /// Share of the commitment that must be burned to break even.
    pub break_even_burn_pct: f64,
    pub list_spend_to_date: Amount,
    pub shortfall_rule: ShortfallRule,
    pub basis: Basis,
    /// Eligible burn to date and its projection at term end (the figures
    /// `status` shows).
    pub burned: Amount,
    pub projected_burn_p50: Amount,
    pub recurring_purchases_per_month: Option<Amount>,
    pub projected_list_spend_p10: Amount,
    pub projected_list_spend_p50: Amount,
    pub projected_list_spend_p90: Amount,
    pub expected_shortfall: Amount,
    pub shortfall_probability: f64,
    pub expected_savings: Amount,
    /// Probability that the deal costs more than paying list price.
    pub loss_probability: f64,
    /// E[savings] / E[list spend]: the discount really obtained.
    pub effective_discount_pct: Option<f64>,
    pub expected_savings_npv: Amount,
    pub history_days: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnalyzeError {
    #[error("contract '{0}' is not a spend commitment; analyze covers spend commitments (status shows hourly and capacity ones)")]
    NotSpend(String),
    #[error(
        "no eligible usage for '{0}' in the ledger to project from; import billing data first"
    )]
    NoHistory(String),
}

/// Mean discount factor of a flow spread evenly over [from_years, to_years].
fn mean_discount_factor(rate: f64, from_years: f64, to_years: f64) -> f64 {
    if to_years <= from_years {
        return 1.0 / (1.0 + rate).powf(from_years);
    }
    if rate == 0.0 {
        return 1.0;
    }
    let k = (1.0 + rate).ln();
    ((-k * from_years).exp() - (-k * to_years).exp()) / (k * (to_years - from_years))
}

pub fn analyze(
    c: &Contract,
    at: Timestamp,
    days: &[DayRow],
    discount_rate_pct: f64,
    growth_pct: f64,
) -> Result<Analysis, AnalyzeError> {
    let Terms::Spend(t) = &c.terms else {
        return Err(AnalyzeError::NotSpend(c.name.clone()));
    };
    let SpendTerms {
        commit,
        discount_pct,
        ..
    } = t;
    let d = discount_pct / 100.0;
    let r = discount_rate_pct / 100.0;
    let (d0, d_end) = (c.start.day(), c.end.day());
    let d_at = at.day().clamp(d0, d_end);
    let p = project(
        c,
        t,
        at,
        days,
        growth_pct,
        crate::status::FORECAST_PATHS,
        &[],
    );
    if p.history.is_empty() && p.recurring_per_month.is_none() {
        return Err(AnalyzeError::NoHistory(c.name.clone()));
    }
    let to_date: Amount = days
        .iter()
        .filter(|x| {
            x.provider == c.provider
                && x.category == "Usage"
                && t.eligible.admits(&x.region, &x.service, &x.sku)
                && x.day >= d0
                && x.day < d_at
        })
        .map(|x| x.list)
        .sum();
    let list_of = |burn: Amount| to_date + scale(burn - p.burned, p.list_per_burn);
    let finals: Vec<Amount> = p.ends.iter().map(|e| list_of(e.burn)).collect();
    let n = finals.len().max(1) as i128;
    let pct = |q: f64| crate::status::percentile(&finals, q);
    let term_years = (d_end - d0) as f64 / 365.25;
    let now_years = (d_at - d0) as f64 / 365.25;
    let years_at = |day: i64| (day - d0) as f64 / 365.25;
    let (mut short_sum, mut save_sum, mut list_sum, mut short_pv) =
        (Amount::ZERO, Amount::ZERO, Amount::ZERO, 0.0f64);
    let (mut short_n, mut loss_n) = (0usize, 0usize);
    for (e, l) in p.ends.iter().zip(&finals) {
        let cost = e.burn + e.shortfall;
        short_sum += e.shortfall;
        save_sum += *l - cost;
        list_sum += *l;
        short_n += usize::from(e.shortfall > Amount::ZERO);
        loss_n += usize::from(cost > *l);
        // When each shortfall is billed: year gaps at their year ends
        // (yearly rule, years not yet closed), the rest at term end.
        let mut paid_early = Amount::ZERO;
        if t.shortfall == ShortfallRule::Yearly {
            for (y, b) in p.years.iter().zip(&e.year_burn) {
                if let Some(f) = y.floor {
                    let gap = (f - *b).max(Amount::ZERO);
                    let when = years_at(y.end.day()).max(now_years);
                    short_pv += gap.as_f64() / (1.0 + r).powf(when);
                    paid_early += gap;
                }
            }
        }
        short_pv +=
            (e.shortfall - paid_early).max(Amount::ZERO).as_f64() / (1.0 + r).powf(term_years);
    }
    let e_short = Amount(short_sum.0 / n);
    let e_save = Amount(save_sum.0 / n);
    let e_list = Amount(list_sum.0 / n);
    let e_discount = Amount(e_save.0 + e_short.0);
    let npv = scale(e_discount, mean_discount_factor(r, now_years, term_years))
        - Amount::from_usd_f64(short_pv / n as f64);
    Ok(Analysis {
        name: c.name.clone(),
        provider: c.provider.clone(),
        start: c.start.date_string(),
        end: c.end.date_string(),
        at: Timestamp(d_at * crate::time::SECONDS_PER_DAY).date_string(),
        committed: *commit,
        discount_pct: *discount_pct,
        discount_rate_pct,
        growth_pct,
        headline_savings: if d < 1.0 {
            scale(*commit, d / (1.0 - d))
        } else {
            Amount::ZERO
        },
        commitment_npv: scale(*commit, mean_discount_factor(r, 0.0, term_years)),
        break_even_list_spend: *commit,
        break_even_burn_pct: 100.0 * (1.0 - d),
        list_spend_to_date: to_date,
        shortfall_rule: t.shortfall,
        basis: p.basis,
        burned: p.burned,
        projected_burn_p50: p.burn_percentile(0.5),
        recurring_purchases_per_month: p.recurring_per_month,
        projected_list_spend_p10: pct(0.10),
        projected_list_spend_p50: pct(0.50),
        projected_list_spend_p90: pct(0.90),
        expected_shortfall: e_short,
        shortfall_probability: short_n as f64 / finals.len().max(1) as f64,
        expected_savings: e_save,
        loss_probability: loss_n as f64 / finals.len().max(1) as f64,
        effective_discount_pct: (e_list > Amount::ZERO)
            .then(|| 100.0 * e_save.as_f64() / e_list.as_f64()),
        expected_savings_npv: npv,
        history_days: p.history.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::{Eligibility, ShortfallRule};

    fn contract(commit: &str, pct: f64) -> Contract {
        let start = Timestamp::parse("2026-01-01").unwrap_or(Timestamp(0));
        Contract {
            name: "edp".into(),
            provider: "aws".into(),
            start,
            end: start.plus_months(12),
            terms: Terms::Spend(SpendTerms {
                commit: Amount::parse(commit).unwrap_or_default(),
                discount_pct: pct,
                floors: vec![],
                shortfall: ShortfallRule::TermEnd,
                eligible: Eligibility::default(),
            }),
        }
    }

    /// Usage at `per_day` list, billed at 80 % of it (the 20 % deal).
    fn flat_history(per_day: &str, days: i64) -> Vec<DayRow> {
        let d0 = Timestamp::parse("2026-01-01").unwrap_or(Timestamp(0)).day();
        let list = Amount::parse(per_day).unwrap_or_default();
        (0..days)
            .map(|i| DayRow::usage(d0 + i, "aws", scale(list, 0.8), list))
            .collect()
    }

    #[test]
    fn flat_usage_by_hand() {
        // 365-day term, $1,000/day list for 100 days → $365,000 list at term end.
        // Commit $400,000 at 20% off: burn 292,000 → shortfall 108,000;
        // cost 400,000 > list 365,000: the deal loses 35,000.
        let at = Timestamp::parse("2026-04-11").unwrap_or(Timestamp(0));
        let a = analyze(
            &contract("400000", 20.0),
            at,
            &flat_history("1000", 100),
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.projected_list_spend_p50,
            Amount::parse("365000").unwrap_or_default()
        );
        assert_eq!(
            a.expected_shortfall,
            Amount::parse("108000").unwrap_or_default()
        );
        assert_eq!(
            a.expected_savings,
            Amount::parse("-35000").unwrap_or_default()
        );
        assert_eq!((a.shortfall_probability, a.loss_probability), (1.0, 1.0));
        // Headline: 400,000 × 0.2/0.8 = 100,000; break-even at 80% burned.
        assert_eq!(
            a.headline_savings,
            Amount::parse("100000").unwrap_or_default()
        );
        assert_eq!(a.break_even_burn_pct, 80.0);
        // Commit $250,000 instead: burn 292,000 ≥ commit; savings = 20% of 365,000.
        let b = analyze(
            &contract("250000", 20.0),
            at,
            &flat_history("1000", 100),
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.expected_savings,
            Amount::parse("73000").unwrap_or_default()
        );
        assert_eq!(b.effective_discount_pct, Some(20.0));
        assert_eq!(b.expected_shortfall, Amount::ZERO);
    }

    #[test]
    fn npv_discounts_and_growth_raises_spend() {
        let at = Timestamp::parse("2026-04-11").unwrap_or(Timestamp(0));
        let flat = analyze(
            &contract("250000", 20.0),
            at,
            &flat_history("1000", 100),
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let disc = analyze(
            &contract("250000", 20.0),
            at,
            &flat_history("1000", 100),
            10.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(disc.expected_savings_npv < flat.expected_savings_npv);
        assert_eq!(flat.expected_savings_npv, flat.expected_savings);
        let grow = analyze(
            &contract("250000", 20.0),
            at,
            &flat_history("1000", 100),
            0.0,
            50.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(grow.projected_list_spend_p50 > flat.projected_list_spend_p50);
        assert!(analyze(&contract("1", 1.0), at, &[], 0.0, 0.0).is_err());
    }

    #[test]
    fn mean_discount_factor_table() {
        assert!((mean_discount_factor(0.0, 0.0, 7.0) - 1.0).abs() < 1e-12);
        // ∫0^1 1.1^-t dt = (1 − 1/1.1)/ln 1.1
        let want = (1.0 - 1.0 / 1.1) / 1.1f64.ln();
        assert!((mean_discount_factor(0.1, 0.0, 1.0) - want).abs() < 1e-12);
    }
}
