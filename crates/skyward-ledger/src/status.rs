//! `ledger status`: where each commitment stands at a date.
//!
//! Definitions (documented in the README's ledger section):
//! * burned (spend commitments): Σ BilledCost of eligible Usage, Purchase and
//!   Adjustment charges from the term start to the date; Tax and Credit do
//!   not burn a commitment.
//! * straight-line: commitment × elapsed share of the term.
//! * burn rate: mean daily burn over the trailing 30 days with data.
//! * forecast: the remaining days are drawn as 7-day blocks from the
//!   trailing 91 days (a seeded block bootstrap, 2,000 paths): P10/P50/P90
//!   of the burn at term end, the expected shortfall E[max(0, commit −
//!   burn)] and the probability of a shortfall. Deterministic: the seed is
//!   derived from the contract name.
//! * utilisation (hourly and capacity): used / committed; coverage:
//!   on-demand-equivalent spend covered / all eligible on-demand-equivalent
//!   spend (the AWS and Azure definitions).
//! * effective savings rate: 1 − Σ EffectiveCost / Σ ListCost of eligible
//!   usage.

use crate::amount::Amount;
use crate::contracts::{CapacityTerms, Contract, HourlyTerms, SpendTerms, Terms};
pub use crate::projection::{
    BLOCK_DAYS as FORECAST_BLOCK_DAYS, WINDOW_DAYS as FORECAST_WINDOW_DAYS,
};
use crate::time::{Timestamp, SECONDS_PER_DAY, SECONDS_PER_HOUR};
use serde::Serialize;
use std::collections::BTreeMap;

/// One stored daily bucket, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub day: i64,
    pub provider: String,
    pub billing_account: String,
    /// Canonical FOCUS Tags JSON ("" without tags).
    pub tags: String,
    pub region: String,
    pub service: String,
    pub sku: String,
    pub category: String,
    pub pricing_category: String,
    pub commitment_id: String,
    pub commitment_status: String,
    pub billed: Amount,
    pub effective: Amount,
    pub list: Amount,
}

impl DayRow {
    /// A usage bucket with only the fields most callers set.
    pub fn usage(day: i64, provider: &str, billed: Amount, list: Amount) -> DayRow {
        DayRow {
            day,
            provider: provider.to_string(),
            billing_account: String::new(),
            tags: String::new(),
            region: String::new(),
            service: String::new(),
            sku: String::new(),
            category: "Usage".into(),
            pricing_category: "Standard".into(),
            commitment_id: String::new(),
            commitment_status: String::new(),
            billed,
            effective: billed,
            list,
        }
    }
}

/// One stored hourly usage bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HourRow {
    pub hour: i64,
    pub provider: String,
    pub pricing_category: String,
    pub list: Amount,
    pub effective: Amount,
    pub region: String,
    pub sku: String,
    /// Instance-hours (PricingQuantity).
    pub quantity: Amount,
}

pub const FORECAST_PATHS: usize = 2_000;
pub const BURN_RATE_WINDOW_DAYS: i64 = 30;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Forecast {
    /// Burn at term end, percentiles over the bootstrap paths.
    pub p10: Amount,
    pub p50: Amount,
    pub p90: Amount,
    pub expected_shortfall: Amount,
    pub shortfall_probability: f64,
    pub paths: usize,
    pub history_days: i64,
    /// What the history is: burn since the start, or list spend before it
    /// at the deal's discount.
    pub basis: crate::projection::Basis,
    /// Recurring purchases projected as a monthly schedule, if any.
    pub recurring_purchases_per_month: Option<Amount>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FloorStatus {
    pub year: u32,
    pub year_start: String,
    pub year_end: String,
    pub floor: Amount,
    pub burned_in_year: Amount,
    pub remaining_to_floor: Amount,
    /// The year is over: its burn is final.
    pub closed: bool,
    /// The year's burn (P10–P90) and its gap to the floor.
    pub forecast_in_year: Option<Forecast>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SpendStatus {
    pub name: String,
    pub provider: String,
    pub start: String,
    pub end: String,
    pub at: String,
    pub elapsed_days: i64,
    pub term_days: i64,
    pub committed: Amount,
    pub burned: Amount,
    pub remaining: Amount,
    pub burned_pct: f64,
    pub straight_line: Amount,
    /// burned − straight-line: positive is ahead of schedule.
    pub vs_straight_line: Amount,
    pub burn_rate_per_day: Amount,
    /// What must be burned per remaining day to meet the commitment.
    pub required_per_day: Amount,
    /// How a shortfall is billed: at term end, or each year to its floor.
    pub shortfall_rule: crate::contracts::ShortfallRule,
    /// Every contract year with a floor.
    pub floors: Vec<FloorStatus>,
    pub forecast: Option<Forecast>,
    pub list_spend: Amount,
    pub effective_spend: Amount,
    pub effective_savings_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HourlyStatus {
    pub name: String,
    pub provider: String,
    pub instrument: crate::contracts::Instrument,
    /// "focus" (the provider's Used/Unused rows) or "simulated" (applied to
    /// imported on-demand usage hour by hour).
    pub basis: std::borrow::Cow<'static, str>,
    pub hours: i64,
    pub fee_per_hour: Amount,
    pub committed: Amount,
    pub used: Amount,
    pub unused: Amount,
    pub utilisation: Option<f64>,
    /// Covered on-demand-equivalent cost ÷ (covered + on-demand cost of
    /// the usage it could cover); see `coverage_definition`.
    pub coverage: Option<f64>,
    /// Which provider definition `coverage` follows.
    pub coverage_definition: std::borrow::Cow<'static, str>,
    /// Covered on-demand spend minus the fee.
    pub net_savings: Option<Amount>,
}

/// The provider's name for the coverage ratio an instrument reports. All
/// three are the same ratio: on-demand-equivalent cost covered ÷ (covered +
/// on-demand cost of eligible usage); usage covered by other commitments is
/// in neither term.
pub fn coverage_definition(instrument: crate::contracts::Instrument) -> &'static str {
    use crate::contracts::Instrument as I;
    match instrument {
        I::AwsEc2InstanceSavingsPlan | I::AwsComputeSavingsPlan => {
            "AWS Cost Explorer Savings Plans coverage: covered on-demand-equivalent / (covered + on-demand cost of eligible usage)"
        }
        I::AzureSavingsPlan => {
            "Azure benefit coverage: covered pay-as-you-go-equivalent / (covered + pay-as-you-go cost of eligible usage)"
        }
        I::GcpFlexibleCud => {
            "Google Cloud CUD coverage: covered on-demand-equivalent / (covered + on-demand cost of eligible usage)"
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CapacityStatus {
    pub name: String,
    /// "focus" (Used/Unused rows), "simulated" (applied to imported
    /// on-demand usage of its SKU and region) or "unknown".
    pub basis: std::borrow::Cow<'static, str>,
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub units: u32,
    pub hours: i64,
    pub paid: Amount,
    pub used: Option<Amount>,
    pub unused: Option<Amount>,
    pub utilisation: Option<f64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ContractStatus {
    Spend(Box<SpendStatus>),
    Hourly(HourlyStatus),
    Capacity(CapacityStatus),
}

fn burns(category: &str) -> bool {
    matches!(category, "Usage" | "Purchase" | "Adjustment")
}

use skyward_model::rng::SplitMix64 as Rng;

/// The p-th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[Amount], p: f64) -> Amount {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(Amount::ZERO)
}

/// The block bootstrap behind every forecast: `paths` futures of
/// `days_left` days drawn as 7-day blocks of `history` (day k scaled by
/// (1 + growth)^(k / 365)), each starting from `already`. Returns, for each
/// checkpoint (days from now, ascending, at most `days_left`), the sorted
/// totals by then. One draw per block, so equal seeds give equal paths
/// whatever the checkpoints.
fn bootstrap(
    rng: &mut Rng,
    history: &[Amount],
    already: Amount,
    days_left: i64,
    growth_pct: f64,
    checkpoints: &[i64],
    paths: usize,
) -> Vec<Vec<Amount>> {
    let mut out: Vec<Vec<Amount>> = vec![Vec::with_capacity(paths); checkpoints.len()];
    if history.is_empty() {
        return out;
    }
    let left = days_left.max(0) as usize;
    let n = history.len();
    let block = FORECAST_BLOCK_DAYS.min(n);
    let growth: Vec<f64> = if growth_pct == 0.0 {
        Vec::new()
    } else {
        (0..left)
            .map(|k| (1.0 + growth_pct / 100.0).powf(k as f64 / 365.0))
            .collect()
    };
    for _ in 0..paths {
        let mut total = already;
        let mut next = 0usize;
        while next < checkpoints.len() && checkpoints[next] <= 0 {
            out[next].push(total);
            next += 1;
        }
        let mut k = 0usize;
        while k < left {
            // Circular blocks: every day of the history is drawn equally
            // often (see `projection`).
            let start = rng.below(n);
            for d in (0..block.min(left - k)).map(|j| &history[(start + j) % n]) {
                total += match growth.get(k) {
                    Some(g) => crate::contracts::scale(*d, *g),
                    None => *d,
                };
                k += 1;
                while next < checkpoints.len() && checkpoints[next] == k as i64 {
                    out[next].push(total);
                    next += 1;
                }
            }
        }
    }
    for v in &mut out {
        v.sort();
    }
    out
}

/// Sorted totals at term end of [`FORECAST_PATHS`] bootstrap paths.
pub fn paths(
    name: &str,
    history: &[Amount],
    already: Amount,
    days_left: i64,
    growth_pct: f64,
) -> Vec<Amount> {
    let mut rng = Rng::from_name(name);
    bootstrap(
        &mut rng,
        history,
        already,
        days_left,
        growth_pct,
        &[days_left.max(0)],
        FORECAST_PATHS,
    )
    .pop()
    .unwrap_or_default()
}

/// One point of a forecast band: days from now, and the P10/P50/P90 of the
/// cumulative total by then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandPoint {
    pub day_offset: i64,
    pub p10: Amount,
    pub p50: Amount,
    pub p90: Amount,
}

/// Paths used for a band (fewer than for the end-of-term figures: the band
/// is for looking at).
pub const BAND_PATHS: usize = 500;

/// The forecast band of a spend contract over time, every `step_days`
/// (and at term end): the same projection as `status` (recurring purchases
/// as a schedule), on [`BAND_PATHS`] paths.
pub fn band(c: &Contract, at: Timestamp, days: &[DayRow], step_days: i64) -> Vec<BandPoint> {
    let Terms::Spend(t) = &c.terms else {
        return Vec::new();
    };
    let days_left = c.end.day() - at.day().clamp(c.start.day(), c.end.day());
    if days_left <= 0 {
        return Vec::new();
    }
    let step = step_days.max(1);
    let checkpoints: Vec<i64> = (1..=days_left / step)
        .map(|k| k * step)
        .chain((days_left % step != 0).then_some(days_left))
        .collect();
    let p = crate::projection::project(c, t, at, days, 0.0, BAND_PATHS, &checkpoints);
    if p.history.is_empty() && p.recurring_per_month.is_none() {
        return Vec::new();
    }
    checkpoints
        .iter()
        .zip(&p.at_checkpoints)
        .map(|(&off, v)| BandPoint {
            day_offset: off,
            p10: percentile(v, 0.1),
            p50: percentile(v, 0.5),
            p90: percentile(v, 0.9),
        })
        .collect()
}

/// The end-of-term figures of a projection (None when there is nothing to
/// project from).
fn forecast_of(p: &crate::projection::Projection) -> Option<Forecast> {
    if p.history.is_empty() && p.recurring_per_month.is_none() {
        return None;
    }
    Some(Forecast {
        p10: p.burn_percentile(0.10),
        p50: p.burn_percentile(0.50),
        p90: p.burn_percentile(0.90),
        expected_shortfall: p.expected_shortfall(),
        shortfall_probability: p.shortfall_probability(),
        paths: p.ends.len(),
        history_days: p.history.len() as i64,
        basis: p.basis,
        recurring_purchases_per_month: p.recurring_per_month,
    })
}

fn spend_status(c: &Contract, t: &SpendTerms, at: Timestamp, days: &[DayRow]) -> SpendStatus {
    let (d0, d_end) = (c.start.day(), c.end.day());
    let d_at = at.day().clamp(d0, d_end);
    let mut daily: BTreeMap<i64, Amount> = BTreeMap::new();
    let (mut list, mut effective) = (Amount::ZERO, Amount::ZERO);
    for r in days.iter().filter(|r| {
        r.provider == c.provider
            && r.day >= d0
            && r.day < d_at
            && t.eligible.admits(&r.region, &r.service, &r.sku)
    }) {
        if burns(&r.category) {
            *daily.entry(r.day).or_insert(Amount::ZERO) += r.billed;
        }
        if r.category == "Usage" {
            list += r.list;
            effective += r.effective;
        }
    }
    let burned: Amount = daily.values().copied().sum();
    let elapsed = d_at - d0;
    let term = (d_end - d0).max(1);
    let straight = Amount(t.commit.0 * i128::from(elapsed) / i128::from(term));
    let last_day = daily.keys().next_back().copied().unwrap_or(d_at - 1);
    let first_day = daily.keys().next().copied().unwrap_or(d0);
    let rate_from = (last_day - BURN_RATE_WINDOW_DAYS + 1).max(first_day);
    let rate_days = (last_day - rate_from + 1).max(1);
    let rate_sum: Amount = (rate_from..=last_day)
        .map(|d| daily.get(&d).copied().unwrap_or(Amount::ZERO))
        .sum();
    let days_left = d_end - d_at;
    let remaining = (t.commit - burned).max(Amount::ZERO);
    let p = crate::projection::project(c, t, at, days, 0.0, FORECAST_PATHS, &[]);
    let fc = forecast_of(&p);
    let floors: Vec<FloorStatus> = p
        .years
        .iter()
        .enumerate()
        .filter_map(|(i, y)| {
            let floor = y.floor?;
            let in_year = p.burned_by_year.get(i).copied().unwrap_or_default();
            let mut burns: Vec<Amount> = p
                .ends
                .iter()
                .map(|e| e.year_burn.get(i).copied().unwrap_or_default())
                .collect();
            burns.sort();
            Some(FloorStatus {
                year: y.number,
                year_start: y.start.date_string(),
                year_end: y.end.date_string(),
                floor,
                burned_in_year: in_year,
                remaining_to_floor: (floor - in_year).max(Amount::ZERO),
                closed: y.end.day() <= d_at,
                forecast_in_year: fc.as_ref().and_then(|f| {
                    let (gap, prob) = p.floor_gaps(i)?;
                    Some(Forecast {
                        p10: percentile(&burns, 0.10),
                        p50: percentile(&burns, 0.50),
                        p90: percentile(&burns, 0.90),
                        expected_shortfall: gap,
                        shortfall_probability: prob,
                        ..f.clone()
                    })
                }),
            })
        })
        .collect();
    SpendStatus {
        name: c.name.clone(),
        provider: c.provider.clone(),
        start: c.start.date_string(),
        end: c.end.date_string(),
        at: Timestamp(d_at * SECONDS_PER_DAY).date_string(),
        elapsed_days: elapsed,
        term_days: term,
        committed: t.commit,
        burned,
        remaining,
        burned_pct: if t.commit > Amount::ZERO {
            100.0 * burned.as_f64() / t.commit.as_f64()
        } else {
            0.0
        },
        straight_line: straight,
        vs_straight_line: burned - straight,
        burn_rate_per_day: Amount(rate_sum.0 / i128::from(rate_days)),
        required_per_day: if days_left > 0 {
            Amount(remaining.0 / i128::from(days_left))
        } else {
            remaining
        },
        shortfall_rule: t.shortfall,
        floors,
        forecast: fc,
        list_spend: list,
        effective_spend: effective,
        effective_savings_rate: (list > Amount::ZERO)
            .then(|| 1.0 - effective.as_f64() / list.as_f64()),
    }
}

/// One hour's on-demand usage that reserved capacity can cover:
/// (region, SKU, list, instance-hours).
type HourCells = Vec<(String, String, Amount, Amount)>;

/// What the simulation found for a capacity commitment.
#[derive(Debug, Clone, Copy, Default)]
struct CapacityUse {
    unit_hours_used: Amount,
    hours: i64,
}

/// Applies a provider's commitments to its on-demand usage hour by hour, in
/// AWS's order: reserved capacity first (instance-hours of its SKU in its
/// region, up to its units), then EC2 Instance Savings Plans, then Compute
/// Savings Plans (other instruments alongside the latter), each on what the
/// earlier ones left. The caller passes only commitments without their own
/// rows in the data; the usage here is what the data leaves on-demand.
fn simulate(
    provider_contracts: &[&Contract],
    at: Timestamp,
    hours: &[HourRow],
) -> (
    BTreeMap<String, HourlyStatus>,
    BTreeMap<String, CapacityUse>,
) {
    let provider = provider_contracts
        .first()
        .map(|c| c.provider.as_str())
        .unwrap_or("");
    let caps_all: Vec<&CapacityTerms> = provider_contracts
        .iter()
        .filter_map(|c| match &c.terms {
            Terms::Capacity(t) => Some(t),
            _ => None,
        })
        .collect();
    // hour → (on-demand list, cells that some capacity commitment can
    // cover: (region, sku, list, instance-hours)). Rows no capacity
    // commitment matches only add to the total.
    let mut usage: BTreeMap<i64, (Amount, HourCells)> = BTreeMap::new();
    for h in hours.iter().filter(|h| {
        h.provider == provider && matches!(h.pricing_category.as_str(), "Standard" | "")
    }) {
        let e = usage
            .entry(h.hour)
            .or_insert_with(|| (Amount::ZERO, Vec::new()));
        e.0 += h.list;
        if caps_all
            .iter()
            .any(|t| t.region.eq_ignore_ascii_case(&h.region) && t.sku.eq_ignore_ascii_case(&h.sku))
        {
            match e.1.iter_mut().find(|c| c.0 == h.region && c.1 == h.sku) {
                Some(c) => {
                    c.2 += h.list;
                    c.3 += h.quantity;
                }
                None => {
                    e.1.push((h.region.clone(), h.sku.clone(), h.list, h.quantity))
                }
            }
        }
    }
    let mut hourly: Vec<(&Contract, &HourlyTerms)> = provider_contracts
        .iter()
        .filter_map(|c| match &c.terms {
            Terms::Hourly(t) => Some((*c, t)),
            _ => None,
        })
        .collect();
    hourly.sort_by(|a, b| {
        (a.1.instrument.priority(), &a.0.name).cmp(&(b.1.instrument.priority(), &b.0.name))
    });
    let mut capacity: Vec<(&Contract, &CapacityTerms)> = provider_contracts
        .iter()
        .filter_map(|c| match &c.terms {
            Terms::Capacity(t) => Some((*c, t)),
            _ => None,
        })
        .collect();
    capacity.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut hourly_out = BTreeMap::new();
    let mut capacity_out: BTreeMap<String, CapacityUse> = BTreeMap::new();
    let Some(&first) = usage.keys().next() else {
        return (hourly_out, capacity_out);
    };
    let h_at = at.0.div_euclid(SECONDS_PER_HOUR);
    // Per hourly contract: (used fee, covered list, eligible list, hours).
    let mut acc: Vec<(Amount, Amount, Amount, i64)> =
        vec![(Amount::ZERO, Amount::ZERO, Amount::ZERO, 0); hourly.len()];
    let h_start = provider_contracts
        .iter()
        .map(|c| c.start.hour())
        .min()
        .unwrap_or(first)
        .max(first);
    let h_end = provider_contracts
        .iter()
        .map(|c| c.end.hour())
        .max()
        .unwrap_or(h_at)
        .min(h_at);
    for h in h_start..h_end {
        let (all, mut cells) = usage.get(&h).cloned().unwrap_or_default();
        let mut reserved = Amount::ZERO;
        for (c, t) in &capacity {
            if h < c.start.hour() || h >= c.end.hour() {
                continue;
            }
            let u = capacity_out.entry(c.name.clone()).or_default();
            u.hours += 1;
            let mut units_left = Amount(i128::from(t.units) * crate::amount::PICOS_PER_USD);
            for (region, sku, list, qty) in cells.iter_mut() {
                if units_left <= Amount::ZERO
                    || *qty <= Amount::ZERO
                    || !region.eq_ignore_ascii_case(&t.region)
                    || !sku.eq_ignore_ascii_case(&t.sku)
                {
                    continue;
                }
                let take = (*qty).min(units_left);
                let covered = Amount(list.0 * take.0 / qty.0);
                *list = *list - covered;
                *qty = *qty - take;
                units_left = units_left - take;
                reserved += covered;
                u.unit_hours_used += take;
            }
        }
        let mut left = all - reserved;
        for (i, (c, t)) in hourly.iter().enumerate() {
            if h < c.start.hour() || h >= c.end.hour() {
                continue;
            }
            let fee = t.fee_per_hour();
            let covers = t.covers_list_per_hour();
            let cov = left.min(covers);
            left = left - cov;
            let a = &mut acc[i];
            a.1 += cov;
            // What a savings plan can cover: on-demand usage not taken by
            // reserved capacity (AWS counts RI-covered usage in neither
            // term of Savings Plans coverage).
            a.2 += all - reserved;
            a.3 += 1;
            if covers > Amount::ZERO {
                a.0 += Amount(fee.0 * cov.0 / covers.0);
            }
        }
    }
    for ((c, t), (used, covered, eligible, n)) in hourly.into_iter().zip(acc) {
        let fee = t.fee_per_hour();
        let committed = Amount(fee.0 * i128::from(n));
        hourly_out.insert(
            c.name.clone(),
            HourlyStatus {
                name: c.name.clone(),
                provider: c.provider.clone(),
                instrument: t.instrument,
                basis: "simulated".into(),
                hours: n,
                fee_per_hour: fee,
                committed,
                used,
                unused: committed - used,
                utilisation: (committed > Amount::ZERO).then(|| used.as_f64() / committed.as_f64()),
                coverage: (eligible > Amount::ZERO).then(|| covered.as_f64() / eligible.as_f64()),
                coverage_definition: coverage_definition(t.instrument).into(),
                net_savings: Some(covered - committed),
            },
        );
    }
    (hourly_out, capacity_out)
}

/// A commitment's own Used/Unused rows between its start and the date.
#[derive(Debug, Clone, Copy)]
struct FocusUse {
    used: Amount,
    unused: Amount,
    /// On-demand-equivalent (ListCost) of the usage it covered.
    covered_list: Amount,
    /// On-demand (Standard-priced, uncovered) list cost of usage in the
    /// services the commitment covered: what it could also have covered.
    on_demand_eligible_list: Amount,
}

fn focus_commitment(c: &Contract, id: &str, at: Timestamp, days: &[DayRow]) -> Option<FocusUse> {
    commitment_use(
        &c.provider,
        id,
        c.start.day(),
        c.end.day().min(at.day()),
        days,
    )
}

/// A commitment's Used/Unused rows in days `d0..d1`.
fn commitment_use(provider: &str, id: &str, d0: i64, d1: i64, days: &[DayRow]) -> Option<FocusUse> {
    let rows: Vec<&DayRow> = days
        .iter()
        .filter(|r| r.commitment_id == id && r.day >= d0 && r.day < d1)
        .collect();
    if rows.is_empty() {
        return None;
    }
    let sum = |status: &str, f: fn(&DayRow) -> Amount| -> Amount {
        rows.iter()
            .filter(|r| r.commitment_status == status)
            .map(|r| f(r))
            .sum()
    };
    let services: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.commitment_status == "Used")
        .map(|r| r.service.as_str())
        .collect();
    let on_demand_eligible_list: Amount = days
        .iter()
        .filter(|r| {
            r.provider == provider
                && r.category == "Usage"
                && r.commitment_id.is_empty()
                && matches!(r.pricing_category.as_str(), "Standard" | "")
                && r.day >= d0
                && r.day < d1
                && services.contains(r.service.as_str())
        })
        .map(|r| r.list)
        .sum();
    Some(FocusUse {
        used: sum("Used", |r| r.effective),
        unused: sum("Unused", |r| r.effective),
        covered_list: sum("Used", |r| r.list),
        on_demand_eligible_list,
    })
}

/// A commitment found in the billing data (its CommitmentDiscountId), with
/// or without a contract for it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DataCommitment {
    pub commitment_id: String,
    pub provider: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Σ BilledCost of its Purchase rows.
    pub purchased: Amount,
    pub used: Amount,
    pub unused: Amount,
    pub utilisation: Option<f64>,
    pub coverage: Option<f64>,
    /// Covered on-demand-equivalent minus what it cost (used + unused).
    pub net_savings: Amount,
    /// The contract naming it (`commitment_id`), if any.
    pub contract: Option<String>,
    /// From the contract; FOCUS cost and usage rows carry no end date.
    pub ends: Option<String>,
}

/// Every CommitmentDiscountId in the data before `at`, with its figures
/// over all the days it was seen (coverage as in [`status`]).
pub fn data_commitments(
    contracts: &[Contract],
    at: Timestamp,
    days: &[DayRow],
) -> Vec<DataCommitment> {
    let mut seen: BTreeMap<(&str, &str), (i64, i64, Amount)> = BTreeMap::new();
    for r in days
        .iter()
        .filter(|r| !r.commitment_id.is_empty() && r.day < at.day())
    {
        let e = seen
            .entry((r.provider.as_str(), r.commitment_id.as_str()))
            .or_insert((r.day, r.day, Amount::ZERO));
        e.0 = e.0.min(r.day);
        e.1 = e.1.max(r.day);
        if r.category == "Purchase" {
            e.2 += r.billed;
        }
    }
    seen.into_iter()
        .map(|((provider, id), (first, last, purchased))| {
            let u = commitment_use(provider, id, first, last + 1, days);
            let contract = contracts.iter().find(|c| match &c.terms {
                Terms::Hourly(t) => t.commitment_id.as_deref() == Some(id),
                Terms::Capacity(t) => t.commitment_id.as_deref() == Some(id),
                Terms::Spend(_) => false,
            });
            let (used, unused, covered, od) = u
                .map(|f| (f.used, f.unused, f.covered_list, f.on_demand_eligible_list))
                .unwrap_or_default();
            DataCommitment {
                commitment_id: id.to_string(),
                provider: provider.to_string(),
                first_seen: Timestamp(first * SECONDS_PER_DAY).date_string(),
                last_seen: Timestamp(last * SECONDS_PER_DAY).date_string(),
                purchased,
                used,
                unused,
                utilisation: (used + unused > Amount::ZERO)
                    .then(|| used.as_f64() / (used + unused).as_f64()),
                coverage: (covered + od > Amount::ZERO)
                    .then(|| covered.as_f64() / (covered + od).as_f64()),
                net_savings: covered - used - unused,
                contract: contract.map(|c| c.name.clone()),
                ends: contract.map(|c| c.end.date_string()),
            }
        })
        .collect()
}

pub fn status(
    contracts: &[Contract],
    at: Timestamp,
    days: &[DayRow],
    hours: &[HourRow],
) -> Vec<ContractStatus> {
    // Commitments whose own Used/Unused rows are in the data are read from
    // them; only the others are simulated, on the usage the data leaves
    // on-demand (Standard-priced), so nothing is covered twice.
    let actual: BTreeMap<&str, FocusUse> = contracts
        .iter()
        .filter_map(|c| {
            let id = match &c.terms {
                Terms::Hourly(t) => t.commitment_id.as_deref(),
                Terms::Capacity(t) => t.commitment_id.as_deref(),
                Terms::Spend(_) => None,
            }?;
            Some((c.name.as_str(), focus_commitment(c, id, at, days)?))
        })
        .collect();
    let mut by_provider: BTreeMap<&str, Vec<&Contract>> = BTreeMap::new();
    for c in contracts.iter().filter(|c| {
        matches!(c.terms, Terms::Hourly(_) | Terms::Capacity(_))
            && !actual.contains_key(c.name.as_str())
    }) {
        by_provider.entry(c.provider.as_str()).or_default().push(c);
    }
    let mut simulated: BTreeMap<String, HourlyStatus> = BTreeMap::new();
    let mut capacity_use: BTreeMap<String, CapacityUse> = BTreeMap::new();
    for cs in by_provider.values() {
        let (h, c) = simulate(cs, at, hours);
        simulated.extend(h);
        capacity_use.extend(c);
    }
    contracts
        .iter()
        .map(|c| match &c.terms {
            Terms::Spend(t) => ContractStatus::Spend(Box::new(spend_status(c, t, at, days))),
            Terms::Hourly(t) => match actual.get(c.name.as_str()) {
                Some(f) => {
                    let committed = f.used + f.unused;
                    let eligible = f.covered_list + f.on_demand_eligible_list;
                    ContractStatus::Hourly(HourlyStatus {
                        name: c.name.clone(),
                        provider: c.provider.clone(),
                        instrument: t.instrument,
                        basis: "focus".into(),
                        hours: ((c.end.min(at).0 - c.start.0) / SECONDS_PER_HOUR).max(0),
                        fee_per_hour: t.fee_per_hour(),
                        committed,
                        used: f.used,
                        unused: f.unused,
                        utilisation: (committed > Amount::ZERO)
                            .then(|| f.used.as_f64() / committed.as_f64()),
                        coverage: (eligible > Amount::ZERO)
                            .then(|| f.covered_list.as_f64() / eligible.as_f64()),
                        coverage_definition: coverage_definition(t.instrument).into(),
                        net_savings: Some(f.covered_list - committed),
                    })
                }
                None => ContractStatus::Hourly(simulated.remove(&c.name).unwrap_or(HourlyStatus {
                    name: c.name.clone(),
                    provider: c.provider.clone(),
                    instrument: t.instrument,
                    basis: "simulated".into(),
                    hours: 0,
                    fee_per_hour: t.fee_per_hour(),
                    committed: Amount::ZERO,
                    used: Amount::ZERO,
                    unused: Amount::ZERO,
                    utilisation: None,
                    coverage: None,
                    coverage_definition: coverage_definition(t.instrument).into(),
                    net_savings: None,
                })),
            },
            Terms::Capacity(t) => ContractStatus::Capacity(capacity_status(
                c,
                t,
                at,
                actual.get(c.name.as_str()).copied(),
                capacity_use.get(&c.name).copied(),
            )),
        })
        .collect()
}

fn capacity_status(
    c: &Contract,
    t: &CapacityTerms,
    at: Timestamp,
    actual: Option<FocusUse>,
    simulated: Option<CapacityUse>,
) -> CapacityStatus {
    let hours = ((c.end.min(at).0 - c.start.0) / SECONDS_PER_HOUR).max(0);
    let paid = Amount(t.rate_per_unit_hour.0 * i128::from(t.units) * i128::from(hours));
    let (basis, used, unused) = match (actual, simulated) {
        (Some(f), _) => ("focus", Some(f.used), Some(f.unused)),
        (None, Some(s)) if s.hours > 0 => {
            // Value of the instance-hours used, at the reserved rate.
            let used =
                Amount(t.rate_per_unit_hour.0 * s.unit_hours_used.0 / crate::amount::PICOS_PER_USD);
            let held = Amount(t.rate_per_unit_hour.0 * i128::from(t.units) * i128::from(s.hours));
            ("simulated", Some(used), Some(held - used))
        }
        _ => ("unknown", None, None),
    };
    CapacityStatus {
        basis: basis.into(),
        name: c.name.clone(),
        provider: c.provider.clone(),
        region: t.region.clone(),
        sku: t.sku.clone(),
        units: t.units,
        hours,
        paid,
        used,
        unused,
        utilisation: match (used, unused) {
            (Some(u), Some(n)) if u + n > Amount::ZERO => Some(u.as_f64() / (u + n).as_f64()),
            _ => None,
        },
    }
}

/// Cumulative eligible burn per day of a spend contract up to `at` (for
/// charts): (day, cumulative burned).
pub fn burn_series(c: &Contract, at: Timestamp, days: &[DayRow]) -> Vec<(i64, Amount)> {
    let Terms::Spend(t) = &c.terms else {
        return Vec::new();
    };
    let (d0, d_at) = (c.start.day(), at.day().clamp(c.start.day(), c.end.day()));
    let mut daily: BTreeMap<i64, Amount> = BTreeMap::new();
    for r in days.iter().filter(|r| {
        r.provider == c.provider
            && r.day >= d0
            && r.day < d_at
            && burns(&r.category)
            && t.eligible.admits(&r.region, &r.service, &r.sku)
    }) {
        *daily.entry(r.day).or_insert(Amount::ZERO) += r.billed;
    }
    let mut total = Amount::ZERO;
    (d0..d_at)
        .map(|d| {
            total += daily.get(&d).copied().unwrap_or(Amount::ZERO);
            (d, total)
        })
        .collect()
}

#[cfg(test)]
mod band_tests {
    use super::*;
    use crate::contracts::{Eligibility, ShortfallRule};

    #[test]
    fn band_of_a_constant_history_is_a_line() {
        let start = Timestamp::parse("2026-01-01").unwrap_or(Timestamp(0));
        let c = Contract {
            name: "x".into(),
            provider: "aws".into(),
            start,
            end: start.plus_days(95),
            terms: Terms::Spend(SpendTerms {
                commit: Amount::parse("1000").unwrap_or_default(),
                discount_pct: 0.0,
                floors: vec![],
                shortfall: ShortfallRule::TermEnd,
                eligible: Eligibility::default(),
            }),
        };
        // $10/day for the first 30 days: $300 burned; 65 days left.
        let ten = Amount::parse("10").unwrap_or_default();
        let days: Vec<DayRow> = (0..30)
            .map(|i| DayRow::usage(start.day() + i, "aws", ten, ten))
            .collect();
        let b = band(&c, start.plus_days(30), &days, 30);
        let offs: Vec<i64> = b.iter().map(|p| p.day_offset).collect();
        assert_eq!(offs, vec![30, 60, 65]);
        for p in &b {
            let want =
                Amount::parse("300").unwrap_or_default() + Amount(ten.0 * i128::from(p.day_offset));
            assert_eq!((p.p10, p.p50, p.p90), (want, want, want));
        }
    }
}

/// One day of a commitment seen in the data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CommitmentDay {
    pub day: i64,
    pub used: Amount,
    pub unused: Amount,
    /// On-demand-equivalent of the usage it covered.
    pub covered_list: Amount,
    /// On-demand cost of uncovered usage in the services it covers.
    pub on_demand_list: Amount,
}

impl CommitmentDay {
    pub fn utilisation(&self) -> Option<f64> {
        let c = self.used + self.unused;
        (c > Amount::ZERO).then(|| self.used.as_f64() / c.as_f64())
    }
    /// Coverage as in [`status`] (the providers' definition).
    pub fn coverage(&self) -> Option<f64> {
        let e = self.covered_list + self.on_demand_list;
        (e > Amount::ZERO).then(|| self.covered_list.as_f64() / e.as_f64())
    }
}

/// Day by day figures of one commitment id of `provider`.
pub fn commitment_days(provider: &str, id: &str, days: &[DayRow]) -> Vec<CommitmentDay> {
    let services: std::collections::BTreeSet<&str> = days
        .iter()
        .filter(|r| r.commitment_id == id && r.commitment_status == "Used")
        .map(|r| r.service.as_str())
        .collect();
    let mut by: BTreeMap<i64, CommitmentDay> = BTreeMap::new();
    for r in days
        .iter()
        .filter(|r| r.provider == provider && r.category == "Usage")
    {
        let covered_here = r.commitment_id == id;
        let on_demand = r.commitment_id.is_empty()
            && matches!(r.pricing_category.as_str(), "Standard" | "")
            && services.contains(r.service.as_str());
        if !covered_here && !on_demand {
            continue;
        }
        let e = by.entry(r.day).or_insert(CommitmentDay {
            day: r.day,
            used: Amount::ZERO,
            unused: Amount::ZERO,
            covered_list: Amount::ZERO,
            on_demand_list: Amount::ZERO,
        });
        if covered_here {
            match r.commitment_status.as_str() {
                "Used" => {
                    e.used += r.effective;
                    e.covered_list += r.list;
                }
                "Unused" => e.unused += r.effective,
                _ => {}
            }
        } else {
            e.on_demand_list += r.list;
        }
    }
    // Only the days the commitment was in force (it has rows).
    by.into_values()
        .filter(|d| d.used + d.unused > Amount::ZERO || d.covered_list > Amount::ZERO)
        .collect()
}

/// A provider's effective savings rate by week (1 − Σ EffectiveCost ÷ Σ
/// ListCost of its usage): (first day of the week, rate).
pub fn savings_rate_weekly(provider: &str, days: &[DayRow]) -> Vec<(i64, f64)> {
    let mut by: BTreeMap<i64, (Amount, Amount)> = BTreeMap::new();
    for r in days
        .iter()
        .filter(|r| r.provider == provider && r.category == "Usage")
    {
        let week = r.day - (r.day + 3).rem_euclid(7);
        let e = by.entry(week).or_insert((Amount::ZERO, Amount::ZERO));
        e.0 += r.effective;
        e.1 += r.list;
    }
    by.into_iter()
        .filter(|(_, (_, l))| *l > Amount::ZERO)
        .map(|(w, (e, l))| (w, 1.0 - e.as_f64() / l.as_f64()))
        .collect()
}
