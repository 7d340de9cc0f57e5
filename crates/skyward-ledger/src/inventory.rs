//! The commitment inventory and calendar: every commitment (contracts, and
//! those seen only in the data), what it costs, when it ends, what renewing
//! it on the same terms would cost, and the gap its end would open.
//!
//! The gap is the monthly amount that stops being saved when it ends, at
//! its recent rate (30-day months):
//! * spend: the eligible list spend of the last 30 days × its discount;
//! * hourly: its net savings per hour so far (covered on-demand minus the
//!   fee) × 720;
//! * capacity: the on-demand-equivalent minus the rate of the units used,
//!   when the data has it; else unknown.

use crate::amount::Amount;
use crate::contracts::{scale, Contract, Terms};
use crate::status::{ContractStatus, DataCommitment, DayRow};
use crate::time::{Timestamp, SECONDS_PER_DAY};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Item {
    pub name: String,
    pub kind: String,
    pub provider: String,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Days from the date to the end (negative: ended).
    pub days_left: Option<i64>,
    /// Committed over the term (spend), or fee per hour × term hours.
    pub term_cost: Option<Amount>,
    /// Renewing on the same terms for the same length.
    pub renewal_cost: Option<Amount>,
    pub utilisation: Option<f64>,
    /// Savings per 30 days that stop when it ends.
    pub monthly_gap: Option<Amount>,
    /// "contract" or "data only".
    pub source: String,
}

const MONTH_HOURS: i128 = 720;

pub fn inventory(
    contracts: &[Contract],
    statuses: &[ContractStatus],
    found: &[DataCommitment],
    at: Timestamp,
    days: &[DayRow],
) -> Vec<Item> {
    let mut out = Vec::new();
    for (c, st) in contracts.iter().zip(statuses) {
        let term_hours = i128::from(((c.end.0 - c.start.0) / 3_600).max(0));
        let (kind, term_cost, utilisation, gap) = match (&c.terms, st) {
            (Terms::Spend(t), ContractStatus::Spend(s)) => {
                let from = at.day() - 30;
                let list: Amount = days
                    .iter()
                    .filter(|r| {
                        r.provider == c.provider
                            && r.category == "Usage"
                            && r.day >= from
                            && r.day < at.day()
                            && t.eligible.admits(&r.region, &r.service, &r.sku)
                    })
                    .map(|r| r.list)
                    .sum();
                let burned_share =
                    (t.commit > Amount::ZERO).then(|| s.burned.as_f64() / t.commit.as_f64());
                (
                    "spend".to_string(),
                    Some(t.commit),
                    burned_share,
                    Some(scale(list, t.discount_pct / 100.0)),
                )
            }
            (Terms::Hourly(t), ContractStatus::Hourly(h)) => {
                let fee = t.fee_per_hour();
                let gap = h
                    .net_savings
                    .filter(|_| h.hours > 0)
                    .map(|n| Amount(n.0 * MONTH_HOURS / i128::from(h.hours.max(1))));
                (
                    format!("hourly ({})", t.instrument.as_str()),
                    Some(Amount(fee.0 * term_hours)),
                    h.utilisation,
                    gap,
                )
            }
            (Terms::Capacity(t), ContractStatus::Capacity(k)) => (
                "capacity".to_string(),
                Some(Amount(
                    t.rate_per_unit_hour.0 * i128::from(t.units) * term_hours,
                )),
                k.utilisation,
                None,
            ),
            _ => continue,
        };
        out.push(Item {
            name: c.name.clone(),
            kind,
            provider: c.provider.clone(),
            start: Some(c.start.date_string()),
            end: Some(c.end.date_string()),
            days_left: Some((c.end.0 - at.0).div_euclid(SECONDS_PER_DAY)),
            term_cost,
            renewal_cost: term_cost,
            utilisation,
            monthly_gap: gap,
            source: "contract".into(),
        });
    }
    for f in found.iter().filter(|f| f.contract.is_none()) {
        let seen_days = Timestamp::parse(&f.last_seen)
            .ok()
            .zip(Timestamp::parse(&f.first_seen).ok())
            .map(|(l, s)| (l.day() - s.day() + 1).max(1))
            .unwrap_or(1);
        out.push(Item {
            name: f.commitment_id.clone(),
            kind: "seen in the data".into(),
            provider: f.provider.clone(),
            start: Some(f.first_seen.clone()),
            end: None,
            days_left: None,
            term_cost: None,
            renewal_cost: None,
            utilisation: f.utilisation,
            monthly_gap: Some(Amount(f.net_savings.0 * 30 / i128::from(seen_days))),
            source: "data only".into(),
        });
    }
    // The calendar: soonest end first, unknown ends last.
    out.sort_by(|a, b| {
        (a.days_left.is_none(), a.days_left, &a.name).cmp(&(
            b.days_left.is_none(),
            b.days_left,
            &b.name,
        ))
    });
    out
}
