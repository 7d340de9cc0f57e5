//! The commitments' live state, as the running scheduler prices them: one
//! function of (contract, burn to date, forecast), shared by the server and
//! (through the core's `LiveCommitment`) the simulator.
//!
//! A spend commitment bills its shortfall whatever is spent. If the
//! forecast (the median path of the one projection engine,
//! [`crate::projection`]) says the term will end short by S, then the
//! next S of billed spend on eligible usage costs nothing at the margin:
//! that is the commitment's **free** room. When the forecast says it will
//! be met, free is zero and the provider competes at its discounted list
//! price. As Skyward's own runs burn the commitment (their usage reaches
//! the ledger at each run's end), the forecast rises and free shrinks, so
//! placement moves back to the cheapest site by itself.
//!
//! Only spend commitments have a free room; hourly (savings plans) and
//! capacity commitments are left to `skyward plan` and the ledger's
//! reports for now. A contract outside its term is not live.

use crate::amount::Amount;
use crate::contracts::{Contract, Terms};
use crate::projection::project;
use crate::status::DayRow;
use crate::time::Timestamp;
use serde::Serialize;

/// Bootstrap paths of the live forecast (fewer than status's 2,000: it is
/// recomputed every few seconds; the median moves by well under 1 %).
pub const LIVE_PATHS: usize = 400;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCommitment {
    pub name: String,
    pub provider: String,
    pub discount_pct: f64,
    pub commit: Amount,
    /// Billed eligible spend since the term started, to `at`.
    pub burned: Amount,
    /// Median forecast of the term's organic burn.
    pub forecast_burn: Amount,
    /// Median forecast shortfall: billed spend that costs nothing at the
    /// margin.
    pub free: Amount,
    pub term_end: String,
}

/// The live state at `now` (any time of day). The forecast draws future
/// days from complete days only: today's rows so far count as burned, and
/// the rest of today is expected at the history's mean day times the share
/// of the day still to come. (Drawing today's partial day as a sample
/// would read a quiet morning as a quiet day, and overstate the room.)
pub fn live(contracts: &[Contract], now: Timestamp, days: &[DayRow]) -> Vec<LiveCommitment> {
    let today = now.day();
    let midnight = Timestamp(today * crate::time::SECONDS_PER_DAY);
    let elapsed = (now.0 - midnight.0) as f64 / crate::time::SECONDS_PER_DAY as f64;
    contracts
        .iter()
        .filter_map(|c| {
            let Terms::Spend(t) = &c.terms else {
                return None;
            };
            if now < c.start || now >= c.end {
                return None;
            }
            let p = project(c, t, midnight, days, 0.0, LIVE_PATHS, &[]);
            // Today so far, and what the rest of today should add.
            let today_burn: Amount = days
                .iter()
                .filter(|r| {
                    r.day == today
                        && r.provider == c.provider
                        && matches!(r.category.as_str(), "Usage" | "Purchase" | "Adjustment")
                        && t.eligible.admits(&r.region, &r.service, &r.sku)
                })
                .map(|r| r.billed)
                .sum();
            let mean_day = if p.history.is_empty() {
                0.0
            } else {
                p.history.iter().map(|a| a.as_f64()).sum::<f64>() / p.history.len() as f64
            };
            // The paths drew a whole day for today; the day really holds
            // what it burned plus the rest at the mean rate.
            let delta = today_burn.as_f64() - elapsed * mean_day;
            let commit = t.commit.as_f64();
            let mut shortfalls: Vec<f64> = p
                .ends
                .iter()
                .map(|e| {
                    if e.shortfall > Amount::ZERO {
                        (e.shortfall.as_f64() - delta).max(0.0)
                    } else {
                        (commit - e.burn.as_f64() - delta).max(0.0)
                    }
                })
                .collect();
            shortfalls.sort_by(f64::total_cmp);
            let free = shortfalls
                .get(shortfalls.len() / 2)
                .copied()
                .unwrap_or(0.0)
                .max(0.0);
            let money = |x: f64| Amount::from_usd_f64(x.max(0.0));
            Some(LiveCommitment {
                name: c.name.clone(),
                provider: c.provider.clone(),
                discount_pct: t.discount_pct,
                commit: t.commit,
                burned: p.burned + today_burn,
                forecast_burn: money(p.burn_percentile(0.5).as_f64() + delta),
                free: money(free),
                term_end: c.end.date_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::{Eligibility, ShortfallRule, SpendTerms};

    fn contract(commit: &str) -> Contract {
        let start = Timestamp::parse("2026-01-01").unwrap_or(Timestamp(0));
        Contract {
            name: "macc".into(),
            provider: "azure".into(),
            start,
            end: start.plus_days(100),
            terms: Terms::Spend(SpendTerms {
                commit: Amount::parse(commit).unwrap_or_default(),
                discount_pct: 20.0,
                floors: vec![],
                shortfall: ShortfallRule::TermEnd,
                eligible: Eligibility::default(),
            }),
        }
    }

    fn days(per_day: &str, n: i64) -> Vec<DayRow> {
        let d0 = Timestamp::parse("2026-01-01").map(|t| t.day()).unwrap_or(0);
        let billed = Amount::parse(per_day).unwrap_or_default();
        (0..n)
            .map(|i| DayRow::usage(d0 + i, "azure", billed, billed))
            .collect()
    }

    /// A steady $100/day for 50 of 100 days: the forecast is $10,000 for
    /// the term (every bootstrap path of a constant series is constant).
    /// Against $12,000, $2,000 is free; against $9,000, nothing.
    #[test]
    fn free_is_the_median_forecast_shortfall_by_hand() {
        let at = Timestamp::parse("2026-02-20").unwrap_or(Timestamp(0));
        let l = live(&[contract("12000")], at, &days("100", 50));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].burned, Amount::parse("5000").unwrap_or_default());
        assert_eq!(
            l[0].forecast_burn,
            Amount::parse("10000").unwrap_or_default()
        );
        assert_eq!(l[0].free, Amount::parse("2000").unwrap_or_default());
        let met = live(&[contract("9000")], at, &days("100", 50));
        assert_eq!(met[0].free, Amount::ZERO);
    }

    /// One $600 day among the $100 days: $5,500 burned; the bootstrap
    /// draws the remaining 50 days from the 50 seen, so the spike comes
    /// back once on the median path: $5,500 more, $11,000 in all, $1,000
    /// free (the steady series left $2,000).
    #[test]
    fn burning_shrinks_the_room() {
        let at = Timestamp::parse("2026-02-20").unwrap_or(Timestamp(0));
        let mut d = days("100", 50);
        d[10].billed = Amount::parse("600").unwrap_or_default();
        let l = live(&[contract("12000")], at, &d);
        assert_eq!(l[0].burned, Amount::parse("5500").unwrap_or_default());
        assert_eq!(l[0].free, Amount::parse("1000").unwrap_or_default());
    }

    /// At noon, the steady series' day so far decides: $50 burned (half
    /// a $100 day) changes nothing ($2,000 free, as at midnight); a quiet
    /// morning ($0) leaves $50 more room; a busy one ($300 by noon) $250
    /// less. Burned counts today's rows.
    #[test]
    fn today_so_far_counts_as_burned_and_the_rest_at_the_mean_day() {
        let noon = Timestamp::parse("2026-02-20T12:00:00Z").unwrap_or(Timestamp(0));
        let today = noon.day();
        let with_today = |amount: &str| {
            let mut d = days("100", 50);
            let a = Amount::parse(amount).unwrap_or_default();
            d.push(DayRow::usage(today, "azure", a, a));
            live(&[contract("12000")], noon, &d)
        };
        let typical = with_today("50");
        assert_eq!(typical[0].burned, Amount::parse("5050").unwrap_or_default());
        assert_eq!(typical[0].free, Amount::parse("2000").unwrap_or_default());
        assert_eq!(
            typical[0].forecast_burn,
            Amount::parse("10000").unwrap_or_default()
        );
        assert_eq!(
            with_today("0")[0].free,
            Amount::parse("2050").unwrap_or_default()
        );
        assert_eq!(
            with_today("300")[0].free,
            Amount::parse("1750").unwrap_or_default()
        );
    }

    #[test]
    fn outside_its_term_a_contract_is_not_live() {
        let before = Timestamp::parse("2025-12-31").unwrap_or(Timestamp(0));
        let after = Timestamp::parse("2026-04-11").unwrap_or(Timestamp(0));
        assert!(live(&[contract("1")], before, &[]).is_empty());
        assert!(live(&[contract("1")], after, &[]).is_empty());
    }
}
