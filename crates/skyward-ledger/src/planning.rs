//! The ledger as seen by `skyward plan`: for each spend commitment, how far
//! behind its schedule it will be at the end of the plan's horizon. That
//! gap must be burned anyway ("use it or lose it"), so the plan treats it as
//! already paid: spend up to it costs nothing at the margin.
//!
//! schedule(t) = max(commitment × elapsed share of the term at t, the sum of
//! the floors of contract years that have ended by t); the gap is
//! max(0, schedule(at + horizon) − burned(at)), in billed (discounted)
//! dollars, like the plan's own `commit_usd`.

use crate::amount::Amount;
use crate::contracts::{Contract, Terms};
use crate::status::DayRow;
use crate::time::{Timestamp, SECONDS_PER_HOUR};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanCommitment {
    pub name: String,
    pub provider: String,
    pub discount_pct: f64,
    pub burned: Amount,
    /// Where the schedule says burn should be at the horizon's end.
    pub schedule_at_horizon: Amount,
    /// Behind schedule by the horizon's end: treated as already paid.
    pub due_in_horizon: Amount,
}

pub fn plan_commitments(
    contracts: &[Contract],
    at: Timestamp,
    horizon_hours: f64,
    days: &[DayRow],
) -> Vec<PlanCommitment> {
    let horizon_end = Timestamp(at.0 + (horizon_hours.max(0.0) * SECONDS_PER_HOUR as f64) as i64);
    contracts
        .iter()
        .filter_map(|c| {
            let Terms::Spend(t) = &c.terms else {
                return None;
            };
            if horizon_end <= c.start || at >= c.end {
                return None;
            }
            let end = horizon_end.min(c.end);
            let burned: Amount = days
                .iter()
                .filter(|r| {
                    r.provider == c.provider
                        && r.day >= c.start.day()
                        && r.day < at.day()
                        && matches!(r.category.as_str(), "Usage" | "Purchase" | "Adjustment")
                        && t.eligible.admits(&r.region, &r.service, &r.sku)
                })
                .map(|r| r.billed)
                .sum();
            let term = (c.end.0 - c.start.0).max(1);
            let straight = Amount(t.commit.0 * i128::from(end.0 - c.start.0) / i128::from(term));
            let floors: Amount = t
                .floors
                .iter()
                .filter(|f| c.start.plus_months(12 * i64::from(f.year)) <= end)
                .map(|f| f.commit)
                .sum();
            let schedule = straight.max(floors);
            Some(PlanCommitment {
                name: c.name.clone(),
                provider: c.provider.clone(),
                discount_pct: t.discount_pct,
                burned,
                schedule_at_horizon: schedule,
                due_in_horizon: (schedule - burned).max(Amount::ZERO),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::{Eligibility, Floor, ShortfallRule, SpendTerms};

    fn day_rows(per_day: &str, from: &str, n: i64) -> Vec<DayRow> {
        let d0 = Timestamp::parse(from).map(|t| t.day()).unwrap_or(0);
        let billed = Amount::parse(per_day).unwrap_or_default();
        (0..n)
            .map(|i| DayRow::usage(d0 + i, "aws", billed, Amount::ZERO))
            .collect()
    }

    #[test]
    fn behind_schedule_gap_by_hand() {
        let start = Timestamp::parse("2026-01-01").unwrap_or(Timestamp(0));
        let c = Contract {
            name: "edp".into(),
            provider: "aws".into(),
            start,
            end: start.plus_days(1000),
            terms: Terms::Spend(SpendTerms {
                commit: Amount::parse("1000000").unwrap_or_default(),
                discount_pct: 10.0,
                floors: vec![],
                shortfall: ShortfallRule::TermEnd,
                eligible: Eligibility::default(),
            }),
        };
        // 100 days at $500 burned; schedule at day 100 + 30-day horizon = 130,000.
        let at = start.plus_days(100);
        let p = plan_commitments(
            std::slice::from_ref(&c),
            at,
            30.0 * 24.0,
            &day_rows("500", "2026-01-01", 100),
        );
        assert_eq!(p[0].burned, Amount::parse("50000").unwrap_or_default());
        assert_eq!(
            p[0].schedule_at_horizon,
            Amount::parse("130000").unwrap_or_default()
        );
        assert_eq!(
            p[0].due_in_horizon,
            Amount::parse("80000").unwrap_or_default()
        );
        // Ahead of schedule: nothing due.
        let ahead = plan_commitments(
            std::slice::from_ref(&c),
            at,
            30.0 * 24.0,
            &day_rows("2000", "2026-01-01", 100),
        );
        assert_eq!(ahead[0].due_in_horizon, Amount::ZERO);
        // A floor ending inside the horizon raises the schedule.
        let mut f = c.clone();
        if let Terms::Spend(t) = &mut f.terms {
            t.floors = vec![Floor {
                year: 1,
                commit: Amount::parse("600000").unwrap_or_default(),
            }];
        }
        let at2 = start.plus_days(350);
        let p = plan_commitments(&[f], at2, 30.0 * 24.0, &day_rows("500", "2026-01-01", 350));
        assert_eq!(
            p[0].schedule_at_horizon,
            Amount::parse("600000").unwrap_or_default()
        );
        assert_eq!(
            p[0].due_in_horizon,
            Amount::parse("425000").unwrap_or_default()
        );
    }
}
