//! The one projection of a spend commitment that `status`, `analyze` and
//! the report all read, so they cannot disagree.
//!
//! * **What burns**: Σ BilledCost of eligible Usage, Purchase and
//!   Adjustment charges (Tax and Credit do not). Before the contract starts
//!   (a what-if), the eligible usage's ListCost × (1 − discount) stands in
//!   for it: what the same usage would burn under the deal.
//! * **Recurring purchases are a schedule, not noise.** Purchases are taken
//!   out of the history the bootstrap draws from. If two or more of the
//!   last three complete calendar months had purchases (or the data has one
//!   complete month and it and the current month both have), they recur:
//!   every future month gets the median monthly total, spread evenly over
//!   its days (the current month only what it has not yet had). One-off
//!   purchases are not repeated.
//! * **Everything else** (usage and adjustments) is drawn as 7-day blocks
//!   from the trailing 91 days with data, circularly (a block may wrap from
//!   the last day to the first), so every day of the window has the same
//!   weight whatever day the forecast is run: a plain block bootstrap
//!   draws the first and last days of its window 1/7 as often as the rest.
//!   Optional growth scales day k of the future by (1 + g)^(k/365).
//! * **Floors and the shortfall rule**: each path's burn is kept per
//!   contract year. Under `shortfall: yearly`, the gap to each year's floor
//!   is billed at that year's end (past years from the data) and counts
//!   toward the commitment; the gap to the total is billed at term end.
//!   Under `term-end`, only the gap to the total is billed; year gaps are
//!   reported but not paid.
//!
//! Deterministic: paths are seeded from the contract name.

use crate::amount::Amount;
use crate::contracts::{scale, Contract, ShortfallRule, SpendTerms};
use crate::status::DayRow;
use crate::time::Timestamp;
use serde::Serialize;
use skyward_model::rng::SplitMix64 as Rng;
use std::collections::BTreeMap;

pub const WINDOW_DAYS: i64 = 91;
pub const BLOCK_DAYS: usize = 7;
pub const PATHS: usize = 2_000;

fn burns(category: &str) -> bool {
    matches!(category, "Usage" | "Purchase" | "Adjustment")
}

/// Where the history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Billed eligible charges since the contract started.
    BurnSinceStart,
    /// Eligible usage before the start, at list × (1 − discount).
    ListBeforeStart,
}

/// One path's end of term.
#[derive(Debug, Clone, PartialEq)]
pub struct PathEnd {
    /// Organic burn over the whole term (to date + projected), shortfall
    /// payments excluded.
    pub burn: Amount,
    /// Shortfall paid under the contract's rule (yearly gaps + final gap).
    pub shortfall: Amount,
    /// Organic burn per contract year.
    pub year_burn: Vec<Amount>,
}

/// A contract year: [start, end) in days, and its floor if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Year {
    pub number: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    pub floor: Option<Amount>,
}

#[derive(Debug, Clone)]
pub struct Projection {
    pub basis: Basis,
    pub at_day: i64,
    /// Eligible burn from the start to the date.
    pub burned: Amount,
    pub years: Vec<Year>,
    /// Burn to date per contract year.
    pub burned_by_year: Vec<Amount>,
    /// Daily burn the bootstrap draws from (purchases excluded).
    pub history: Vec<Amount>,
    /// Recurring purchases projected per month, when they recur.
    pub recurring_per_month: Option<Amount>,
    /// Ratio of list to billed over the history (for the list-equivalent
    /// of a burn in `analyze`); 1 when unknown.
    pub list_per_burn: f64,
    /// Sorted by `burn`.
    pub ends: Vec<PathEnd>,
    /// For each checkpoint asked for (days from the date, ascending), the
    /// sorted cumulative burn of every path by then.
    pub at_checkpoints: Vec<Vec<Amount>>,
}

/// The contract years of a term (the last may be short).
pub fn years(c: &Contract, t: &SpendTerms) -> Vec<Year> {
    let mut out = Vec::new();
    let mut k = 0u32;
    loop {
        let start = c.start.plus_months(12 * i64::from(k));
        if start >= c.end || k > 100 {
            break;
        }
        let end = c.start.plus_months(12 * i64::from(k + 1)).min(c.end);
        out.push(Year {
            number: k + 1,
            start,
            end,
            floor: t.floors.iter().find(|f| f.year == k + 1).map(|f| f.commit),
        });
        k += 1;
    }
    out
}

/// The shortfall a path pays under `rule`.
pub fn shortfall(
    rule: ShortfallRule,
    commit: Amount,
    years: &[Year],
    year_burn: &[Amount],
) -> Amount {
    let burn: Amount = year_burn.iter().copied().sum();
    match rule {
        ShortfallRule::TermEnd => (commit - burn).max(Amount::ZERO),
        ShortfallRule::Yearly => {
            let gaps: Amount = years
                .iter()
                .zip(year_burn)
                .filter_map(|(y, b)| y.floor.map(|f| (f - *b).max(Amount::ZERO)))
                .sum();
            gaps + (commit - burn - gaps).max(Amount::ZERO)
        }
    }
}

/// Recurring monthly purchases seen before `at` (see the module docs).
fn recurring(purchases: &BTreeMap<i64, Amount>, first_day: i64, at: Timestamp) -> Option<Amount> {
    let this_month = at.month_start();
    let month_total = |from: Timestamp, to: Timestamp| -> Amount {
        purchases.range(from.day()..to.day()).map(|(_, a)| *a).sum()
    };
    let mut complete = Vec::new();
    for k in 1..=3 {
        let from = this_month.plus_months(-k);
        if from.day() < first_day {
            break;
        }
        complete.push(month_total(from, this_month.plus_months(-k + 1)));
    }
    let mut paid: Vec<Amount> = complete
        .iter()
        .copied()
        .filter(|a| *a > Amount::ZERO)
        .collect();
    let current = month_total(this_month, at);
    let recurs =
        paid.len() >= 2 || (complete.len() == 1 && paid.len() == 1 && current > Amount::ZERO);
    if !recurs {
        return None;
    }
    paid.sort();
    paid.get(paid.len() / 2).copied()
}

/// Projects a spend contract from the data at `at` (see the module docs).
pub fn project(
    c: &Contract,
    t: &SpendTerms,
    at: Timestamp,
    days: &[DayRow],
    growth_pct: f64,
    paths: usize,
    checkpoints: &[i64],
) -> Projection {
    project_with(c, t, at, days, growth_pct, paths, checkpoints, true)
}

/// [`project`], summing blocks by prefix sums when `block_sums` and there
/// is no growth, or day by day (the tests compare the two).
#[allow(clippy::too_many_arguments)]
fn project_with(
    c: &Contract,
    t: &SpendTerms,
    at: Timestamp,
    days: &[DayRow],
    growth_pct: f64,
    paths: usize,
    checkpoints: &[i64],
    block_sums: bool,
) -> Projection {
    let (d0, d_end) = (c.start.day(), c.end.day());
    let d_at = at.day().clamp(d0, d_end);
    // Data is read up to the date asked; the schedule runs from the date
    // within the term.
    let asked = at;
    let at = Timestamp(d_at * crate::time::SECONDS_PER_DAY);
    let years = years(c, t);
    let eligible =
        |r: &&DayRow| r.provider == c.provider && t.eligible.admits(&r.region, &r.service, &r.sku);
    // Burn since the start, split into purchases and the rest.
    let (mut organic, mut purchases, mut list, mut billed) =
        (BTreeMap::new(), BTreeMap::new(), Amount::ZERO, Amount::ZERO);
    for r in days
        .iter()
        .filter(eligible)
        .filter(|r| r.day >= d0 && r.day < d_at && burns(&r.category))
    {
        let into = if r.category == "Purchase" {
            &mut purchases
        } else {
            &mut organic
        };
        *into.entry(r.day).or_insert(Amount::ZERO) += r.billed;
        if r.category == "Usage" {
            list += r.list;
            billed += r.billed;
        }
    }
    let d = match &c.terms {
        crate::contracts::Terms::Spend(s) => s.discount_pct / 100.0,
        _ => 0.0,
    };
    let mut basis = Basis::BurnSinceStart;
    if organic.is_empty() && purchases.is_empty() {
        // Not started, or nothing yet: what the eligible usage before the
        // date would burn under the deal.
        basis = Basis::ListBeforeStart;
        for r in days
            .iter()
            .filter(eligible)
            .filter(|r| r.category == "Usage" && r.day < asked.day())
        {
            *organic.entry(r.day).or_insert(Amount::ZERO) += scale(r.list, 1.0 - d);
            list += r.list;
            billed += scale(r.list, 1.0 - d);
        }
    }
    let mut burned_by_year = vec![Amount::ZERO; years.len()];
    let year_of = |day: i64| {
        years
            .iter()
            .position(|y| day >= y.start.day() && day < y.end.day())
    };
    if basis == Basis::BurnSinceStart {
        for (day, a) in organic.iter().chain(purchases.iter()) {
            if let Some(i) = year_of(*day) {
                burned_by_year[i] += *a;
            }
        }
    }
    let burned: Amount = burned_by_year.iter().copied().sum();
    let first = organic
        .keys()
        .next()
        .copied()
        .into_iter()
        .chain(purchases.keys().next().copied())
        .min();
    let last = organic
        .keys()
        .next_back()
        .copied()
        .into_iter()
        .chain(purchases.keys().next_back().copied())
        .max();
    let history: Vec<Amount> = match (first, last) {
        (Some(f), Some(l)) => {
            let from = (l - WINDOW_DAYS + 1).max(f);
            (from..=l)
                .map(|x| organic.get(&x).copied().unwrap_or(Amount::ZERO))
                .collect()
        }
        _ => Vec::new(),
    };
    let recurring_per_month = first.and_then(|f| recurring(&purchases, f, at));
    // The scheduled purchases of each future day.
    let days_left = (d_end - d_at).max(0) as usize;
    let mut schedule = vec![Amount::ZERO; days_left];
    if let Some(m) = recurring_per_month {
        let this_month = at.month_start();
        let had: Amount = purchases
            .range(this_month.day()..d_at)
            .map(|(_, a)| *a)
            .sum();
        let mut month = this_month;
        while month.day() < d_end {
            let next = month.plus_months(1);
            let (from, to) = (month.day().max(d_at), next.day().min(d_end));
            let due = if month == this_month {
                (m - had).max(Amount::ZERO)
            } else {
                m
            };
            // Spread over the month's remaining days (a term ending inside
            // the month takes only its days' share).
            let n = i128::from((next.day() - month.day().max(d_at)).max(1));
            for day in from..to {
                let i = i128::from(day - from);
                schedule[(day - d_at) as usize] += Amount(due.0 * (i + 1) / n - due.0 * i / n);
            }
            month = next;
        }
    }
    let growth: Vec<f64> = if growth_pct == 0.0 {
        Vec::new()
    } else {
        (0..days_left)
            .map(|k| (1.0 + growth_pct / 100.0).powf(k as f64 / 365.0))
            .collect()
    };
    let future_year: Vec<Option<usize>> =
        (0..days_left).map(|k| year_of(d_at + k as i64)).collect();
    let mut rng = Rng::from_name(&c.name);
    let n = history.len();
    let block = BLOCK_DAYS.min(n.max(1));
    // The history twice over, so a block that wraps needs no modulo; with
    // growth, each day's growth applies to what it draws.
    let doubled: Vec<Amount> = history.iter().chain(history.iter()).copied().collect();
    // Future days in runs of one contract year: (end offset, year).
    let mut segments: Vec<(usize, Option<usize>)> = Vec::new();
    for (k, y) in future_year.iter().enumerate() {
        match segments.last_mut() {
            Some((end, last)) if *last == *y => *end = k + 1,
            _ => segments.push((k + 1, *y)),
        }
    }
    // Without growth a block's days add up to a difference of prefix sums:
    // a path costs one step per block, year end and checkpoint instead of
    // one per day (the sums are exact, so the answer is the same).
    let prefix = |v: &mut dyn Iterator<Item = Amount>| {
        let mut acc = Amount::ZERO;
        std::iter::once(Amount::ZERO)
            .chain(v.map(|a| {
                acc += a;
                acc
            }))
            .collect::<Vec<Amount>>()
    };
    let block_sums = block_sums && growth.is_empty();
    let (doubled_sums, schedule_sums) = if block_sums {
        (
            prefix(&mut doubled.iter().copied()),
            prefix(&mut schedule.iter().copied()),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let mut ends = Vec::with_capacity(paths);
    let mut at_checkpoints: Vec<Vec<Amount>> = vec![Vec::with_capacity(paths); checkpoints.len()];
    for _ in 0..paths {
        let mut year_burn = burned_by_year.clone();
        let mut total = burned;
        let mut next = 0usize;
        while next < checkpoints.len() && checkpoints[next] <= 0 {
            at_checkpoints[next].push(total);
            next += 1;
        }
        let mut k = 0usize;
        let mut seg = 0usize;
        let mut seg_from = total;
        while k < days_left {
            let start = if n > 0 { rng.below(n) } else { 0 };
            let take = block.min(days_left - k);
            let (from, end) = (k, k + take);
            while k < end {
                // One day, or with block sums up to the next year end or
                // checkpoint in the block.
                let mut stop = k + 1;
                if block_sums {
                    stop = end.min(segments[seg].0);
                    if let Some(&c) = checkpoints.get(next) {
                        if c > k as i64 && (c as usize) < stop {
                            stop = c as usize;
                        }
                    }
                    total += schedule_sums[stop] - schedule_sums[k];
                    if n > 0 {
                        total += doubled_sums[start + stop - from] - doubled_sums[start + k - from];
                    }
                } else {
                    total += schedule[k];
                    if n > 0 {
                        let h = doubled[start + k - from];
                        total += if growth.is_empty() {
                            h
                        } else {
                            scale(h, growth[k])
                        };
                    }
                }
                k = stop;
                if k == segments[seg].0 {
                    if let Some(y) = segments[seg].1 {
                        year_burn[y] += total - seg_from;
                    }
                    seg_from = total;
                    seg += 1;
                }
                while next < checkpoints.len() && checkpoints[next] == k as i64 {
                    at_checkpoints[next].push(total);
                    next += 1;
                }
            }
        }
        let burn: Amount = year_burn.iter().copied().sum();
        ends.push(PathEnd {
            burn,
            shortfall: shortfall(t.shortfall, t.commit, &years, &year_burn),
            year_burn,
        });
    }
    ends.sort_by_key(|e| e.burn);
    for v in &mut at_checkpoints {
        v.sort();
    }
    Projection {
        at_checkpoints,
        basis,
        at_day: d_at,
        burned,
        years,
        burned_by_year,
        history,
        recurring_per_month,
        list_per_burn: if billed > Amount::ZERO {
            list.as_f64() / billed.as_f64()
        } else if d < 1.0 {
            1.0 / (1.0 - d)
        } else {
            1.0
        },
        ends,
    }
}

impl Projection {
    /// The p-th percentile (nearest rank) of the term's organic burn.
    pub fn burn_percentile(&self, p: f64) -> Amount {
        self.ends
            .get(((self.ends.len().max(1) - 1) as f64 * p).round() as usize)
            .map(|e| e.burn)
            .unwrap_or(Amount::ZERO)
    }

    pub fn expected_shortfall(&self) -> Amount {
        mean(self.ends.iter().map(|e| e.shortfall), self.ends.len())
    }

    pub fn shortfall_probability(&self) -> f64 {
        share(
            self.ends
                .iter()
                .filter(|e| e.shortfall > Amount::ZERO)
                .count(),
            self.ends.len(),
        )
    }

    /// Per year with a floor: (expected gap, P(gap > 0)) over the paths.
    pub fn floor_gaps(&self, year: usize) -> Option<(Amount, f64)> {
        let floor = self.years.get(year)?.floor?;
        let gaps = self.ends.iter().map(|e| {
            (floor - e.year_burn.get(year).copied().unwrap_or_default()).max(Amount::ZERO)
        });
        let short = self
            .ends
            .iter()
            .filter(|e| e.year_burn.get(year).copied().unwrap_or_default() < floor)
            .count();
        Some((mean(gaps, self.ends.len()), share(short, self.ends.len())))
    }
}

fn mean(it: impl Iterator<Item = Amount>, n: usize) -> Amount {
    let s: Amount = it.sum();
    Amount(s.0 / n.max(1) as i128)
}

fn share(k: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        k as f64 / n as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::contracts::{Eligibility, Floor, ShortfallRule, Terms};
    use skyward_model::rng::SplitMix64;

    /// Summing a block's days by prefix sums gives every path the same
    /// burn, year by year and at every checkpoint, as adding day by day:
    /// random histories (with gaps and monthly purchases), terms of one to
    /// seven years with floors, dates inside and before the term, and
    /// checkpoints that fall inside blocks, on year ends and past the end.
    #[test]
    fn block_sums_equal_day_by_day() {
        let mut rng = SplitMix64::new(11);
        for case in 0..60 {
            let start = Timestamp::parse("2026-01-01").unwrap();
            let years = 1 + rng.below(7) as i64;
            let c = Contract {
                name: format!("c{case}"),
                provider: "aws".into(),
                start,
                end: start.plus_months(12 * years),
                terms: Terms::Spend(SpendTerms {
                    commit: Amount::from_usd_f64(100_000.0 * years as f64),
                    discount_pct: 10.0,
                    floors: vec![Floor {
                        year: 1,
                        commit: Amount::from_usd_f64(20_000.0),
                    }],
                    shortfall: if case % 2 == 0 {
                        ShortfallRule::TermEnd
                    } else {
                        ShortfallRule::Yearly
                    },
                    eligible: Eligibility::default(),
                }),
            };
            let Terms::Spend(t) = &c.terms else {
                unreachable!()
            };
            let d0 = start.day() - 30;
            let history_days = 1 + rng.below(700) as i64;
            let mut days = Vec::new();
            for d in 0..history_days {
                if rng.below(5) == 0 {
                    continue;
                }
                let a = Amount::from_usd_f64(rng.below(50_000) as f64 / 100.0);
                days.push(DayRow::usage(d0 + d, "aws", a, a));
                if (d0 + d) % 30 == 0 && case % 3 == 0 {
                    let mut p =
                        DayRow::usage(d0 + d, "aws", Amount::from_usd_f64(900.0), Amount::ZERO);
                    p.category = "Purchase".into();
                    days.push(p);
                }
            }
            let at = Timestamp(
                (d0 + rng.below(history_days as usize + 40) as i64) * crate::time::SECONDS_PER_DAY,
            );
            let checkpoints: Vec<i64> = (0..rng.below(6))
                .map(|_| rng.below(400 * years as usize) as i64 - 5)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let fast = project_with(&c, t, at, &days, 0.0, 50, &checkpoints, true);
            let slow = project_with(&c, t, at, &days, 0.0, 50, &checkpoints, false);
            assert_eq!(fast.ends, slow.ends, "case {case}");
            assert_eq!(fast.at_checkpoints, slow.at_checkpoints, "case {case}");
            assert!(
                fast.ends.iter().any(|e| e.burn > fast.burned)
                    || fast.history.is_empty()
                    || fast.at_day == c.end.day()
            );
        }
    }
}
