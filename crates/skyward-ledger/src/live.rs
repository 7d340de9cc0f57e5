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

pub fn live(contracts: &[Contract], at: Timestamp, days: &[DayRow]) -> Vec<LiveCommitment> {
    contracts
        .iter()
        .filter_map(|c| {
            let Terms::Spend(t) = &c.terms else {
                return None;
            };
            if at < c.start || at >= c.end {
                return None;
            }
            let p = project(c, t, at, days, 0.0, LIVE_PATHS, &[]);
            let mut shortfalls: Vec<Amount> = p.ends.iter().map(|e| e.shortfall).collect();
            shortfalls.sort();
            let free = shortfalls
                .get(shortfalls.len() / 2)
                .copied()
                .unwrap_or(Amount::ZERO)
                .max(Amount::ZERO);
            Some(LiveCommitment {
                name: c.name.clone(),
                provider: c.provider.clone(),
                discount_pct: t.discount_pct,
                commit: t.commit,
                burned: p.burned,
                forecast_burn: p.burn_percentile(0.5),
                free,
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

    #[test]
    fn outside_its_term_a_contract_is_not_live() {
        let before = Timestamp::parse("2025-12-31").unwrap_or(Timestamp(0));
        let after = Timestamp::parse("2026-04-11").unwrap_or(Timestamp(0));
        assert!(live(&[contract("1")], before, &[]).is_empty());
        assert!(live(&[contract("1")], after, &[]).is_empty());
    }
}
