//! What a run measured: streaming tallies while it runs, then the report
//! per year and in total (money exact, in the ledger's amounts).

use crate::scenario::{year_index, Kind, Scenario};
use serde::Serialize;
use skyward_ledger::contracts::{Contract, Terms};
use skyward_ledger::projection::{self, Year};
use skyward_ledger::{Amount, Timestamp};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct YearTally {
    pub list: Amount,
    pub billed: Amount,
    pub prepaid: Amount,
    pub shortfall: Amount,
    pub accelerator_hours: BTreeMap<String, f64>,
    pub lost_accelerator_hours: f64,
    pub interruptions: u64,
    pub failovers: u64,
    pub submitted: u64,
    pub completed: u64,
    pub delays_s: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct StreamTally {
    pub submitted: u64,
    pub started: u64,
    pub completed: u64,
    pub delays_s: Vec<f32>,
    pub slo_misses: u64,
    pub interruptions: u64,
    pub lost_accelerator_hours: f64,
}

/// Streaming aggregates of one run.
#[derive(Debug, Clone)]
pub struct Tally {
    pub years: Vec<YearTally>,
    pub streams: Vec<StreamTally>,
    slo_ms: Vec<Option<u64>>,
    pub preemptions: Vec<u64>,
    pub outages: Vec<u64>,
    /// Per spend contract: its years and the burn of each.
    contract_years: Vec<Vec<Year>>,
    pub burn: Vec<Vec<Amount>>,
    pub truncated: bool,
    pub refused: u64,
    pub running_at_horizon: u64,
    pub pending_at_horizon: u64,
}

impl Tally {
    pub fn new(sc: &Scenario, spend: &[Contract]) -> Tally {
        let n = sc.years as usize;
        let contract_years: Vec<Vec<Year>> = spend
            .iter()
            .map(|c| match &c.terms {
                Terms::Spend(t) => projection::years(c, t),
                _ => Vec::new(),
            })
            .collect();
        Tally {
            years: vec![YearTally::default(); n],
            streams: vec![StreamTally::default(); sc.demand.len()],
            slo_ms: sc.demand.iter().map(|s| s.slo_start_ms).collect(),
            preemptions: vec![0; n],
            outages: vec![0; n],
            burn: contract_years
                .iter()
                .map(|y| vec![Amount::ZERO; y.len()])
                .collect(),
            contract_years,
            truncated: false,
            refused: 0,
            running_at_horizon: 0,
            pending_at_horizon: 0,
        }
    }

    pub fn submitted(&mut self, stream: usize, year: usize) {
        self.streams[stream].submitted += 1;
        self.years[year].submitted += 1;
    }

    /// A run started after waiting `waited_ms` (since its submission, or
    /// since it was cut short); `moved`: elsewhere than its last run.
    pub fn started(
        &mut self,
        stream: usize,
        year: usize,
        waited_ms: u64,
        first: bool,
        moved: bool,
    ) {
        let s = &mut self.streams[stream];
        s.started += 1;
        if first {
            let d = (waited_ms as f64 / 1000.0) as f32;
            s.delays_s.push(d);
            self.years[year].delays_s.push(d);
        }
        if moved {
            self.years[year].failovers += 1;
        }
        if self.slo_ms[stream].is_some_and(|slo| waited_ms > slo) {
            s.slo_misses += 1;
        }
    }

    pub fn interrupted(&mut self, stream: usize, year: usize, lost_h: f64) {
        self.streams[stream].interruptions += 1;
        self.streams[stream].lost_accelerator_hours += lost_h;
        self.years[year].interruptions += 1;
        self.years[year].lost_accelerator_hours += lost_h;
    }

    pub fn completed(&mut self, stream: usize, year: usize) {
        self.streams[stream].completed += 1;
        self.years[year].completed += 1;
    }

    /// Billed spend burning contract `ci` at `at`.
    pub fn burn(&mut self, ci: usize, at: Timestamp, billed: Amount) {
        let years = &self.contract_years[ci];
        if let Some(y) = years.iter().position(|y| y.start <= at && at < y.end) {
            self.burn[ci][y] += billed;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f32>) -> Percentiles {
        v.sort_by(f32::total_cmp);
        let n = v.len();
        let at = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            // Nearest rank.
            let k = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            f64::from(v[k])
        };
        Percentiles {
            count: n as u64,
            mean: if n == 0 {
                0.0
            } else {
                v.iter().map(|x| f64::from(*x)).sum::<f64>() / n as f64
            },
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v.last().map_or(0.0, |x| f64::from(*x)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearReport {
    /// 1-based; 0 for the whole horizon.
    pub year: u32,
    pub from: String,
    pub to: String,
    /// Usage at list prices (prepaid capacity's included).
    pub list_usd: Amount,
    /// Usage as billed: list less each spend contract's discount.
    pub billed_usd: Amount,
    /// Prepaid capacity's, savings plans' and reservations' fees, used or
    /// not.
    pub prepaid_usd: Amount,
    /// Spend commitments' shortfalls charged in the year.
    pub shortfall_usd: Amount,
    /// What was paid: billed + prepaid + shortfall.
    pub cost_usd: Amount,
    /// 1 − cost ÷ list, in percent.
    pub effective_discount_pct: f64,
    pub accelerator_hours: BTreeMap<String, f64>,
    pub lost_accelerator_hours: f64,
    pub preemptions: u64,
    pub outages: u64,
    /// Runs cut short (preemption, outage, stopped for higher priority).
    pub interruptions: u64,
    /// Runs that started on another site than the one they were cut
    /// short on.
    pub failovers: u64,
    pub submitted: u64,
    pub completed: u64,
    /// Queueing delay (submission to first start), seconds.
    pub delay_s: Percentiles,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractReport {
    pub name: String,
    pub provider: String,
    pub start: String,
    pub end: String,
    pub commit_usd: Amount,
    /// The headline.
    pub discount_pct: f64,
    /// Burn (billed eligible spend) per contract year, to the horizon.
    pub burn_by_year_usd: Vec<Amount>,
    pub floors_usd: Vec<Option<Amount>>,
    pub burned_usd: Amount,
    /// Shortfall charged within the horizon.
    pub shortfall_usd: Amount,
    /// 1 − (billed + shortfall) ÷ list of the provider's usage in the term
    /// (to the horizon), in percent: the discount actually had.
    pub effective_discount_pct: f64,
    /// met, short, or in-term (the term runs past the horizon).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamReport {
    pub name: String,
    pub kind: Kind,
    pub submitted: u64,
    pub started: u64,
    pub completed: u64,
    pub delay_s: Percentiles,
    pub slo_misses: u64,
    pub interruptions: u64,
    pub lost_accelerator_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub total: YearReport,
    pub years: Vec<YearReport>,
    pub contracts: Vec<ContractReport>,
    /// Savings plans and reserved capacity, settled hour by hour.
    pub hourly: Vec<crate::hourly::HourlyReport>,
    pub streams: Vec<StreamReport>,
    pub workloads: u64,
    pub events: u64,
    /// Running when the horizon came (billed to it).
    pub running_at_horizon: u64,
    pub pending_at_horizon: u64,
    /// Submissions the core refused (its queue was full).
    pub refused: u64,
    /// The scenario's `workloads_max` stopped arrivals early.
    pub truncated: bool,
}

fn pct_off(cost: Amount, list: Amount) -> f64 {
    if list.0 <= 0 {
        return 0.0;
    }
    (1.0 - cost.as_f64() / list.as_f64()) * 100.0
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    sc: &Scenario,
    policy: &crate::scenario::Policy,
    mut tally: Tally,
    spend: &[Contract],
    provider_usage: &BTreeMap<String, Vec<(Amount, Amount)>>,
    settled: Option<crate::hourly::Settlement>,
    events: u64,
    workloads: u64,
) -> PolicyReport {
    // Savings plans and reserved capacity: what they covered is billed no
    // more, and their fees are paid used or not.
    let settled = settled.unwrap_or_default();
    for (y, yt) in tally.years.iter_mut().enumerate() {
        if let Some(c) = settled.covered_by_year.get(y) {
            yt.billed = yt.billed - *c;
        }
        if let Some(f) = settled.fees_by_year.get(y) {
            yt.prepaid += *f;
        }
    }
    let horizon = sc.start.plus_months(12 * i64::from(sc.years));
    let starts = sc.year_starts_ms();
    let year_of_ts = |t: Timestamp| year_index(&starts, sc.ms_at(t));
    // Shortfalls, charged when they fall due within the horizon.
    let mut contracts = Vec::new();
    for (ci, c) in spend.iter().enumerate() {
        let Terms::Spend(t) = &c.terms else {
            continue;
        };
        let years = &tally.contract_years[ci];
        let burns = tally.burn[ci].clone();
        let mut charged = Amount::ZERO;
        if t.shortfall == skyward_ledger::contracts::ShortfallRule::Yearly {
            for (y, b) in years.iter().zip(&burns) {
                if let Some(f) = y.floor.filter(|_| y.end <= horizon) {
                    let gap = (f - *b).max(Amount::ZERO);
                    charged += gap;
                    let at = year_of_ts(Timestamp(y.end.0 - 1));
                    tally.years[at].shortfall += gap;
                }
            }
        }
        let burned: Amount = burns.iter().copied().sum();
        let ended = c.end <= horizon;
        if ended {
            let total = projection::shortfall(t.shortfall, t.commit, years, &burns);
            let rest = (total - charged).max(Amount::ZERO);
            charged += rest;
            let at = year_of_ts(Timestamp(c.end.0 - 1));
            tally.years[at].shortfall += rest;
        }
        let (list, billed) = provider_usage
            .get(&c.provider)
            .map(|v| {
                v.iter()
                    .enumerate()
                    .filter(|(y, _)| {
                        let from = sc.start.plus_months(12 * *y as i64);
                        from < c.end && from.plus_months(12) > c.start
                    })
                    .fold((Amount::ZERO, Amount::ZERO), |(l, b), (_, (x, y))| {
                        (l + *x, b + *y)
                    })
            })
            .unwrap_or((Amount::ZERO, Amount::ZERO));
        contracts.push(ContractReport {
            name: c.name.clone(),
            provider: c.provider.clone(),
            start: c.start.date_string(),
            end: c.end.date_string(),
            commit_usd: t.commit,
            discount_pct: t.discount_pct,
            burn_by_year_usd: burns,
            floors_usd: years.iter().map(|y| y.floor).collect(),
            burned_usd: burned,
            shortfall_usd: charged,
            effective_discount_pct: pct_off(billed + charged, list),
            status: if !ended {
                "in-term".into()
            } else if charged > Amount::ZERO {
                "short".into()
            } else {
                "met".into()
            },
        });
    }
    let mut years = Vec::new();
    for (y, yt) in tally.years.iter_mut().enumerate() {
        let from = sc.start.plus_months(12 * y as i64);
        years.push(year_report(
            y as u32 + 1,
            from,
            from.plus_months(12),
            yt,
            tally.preemptions[y],
            tally.outages[y],
        ));
    }
    let total = total_report(sc, &years, &tally);
    let streams = tally
        .streams
        .into_iter()
        .zip(&sc.demand)
        .map(|(t, s)| StreamReport {
            name: s.name.clone(),
            kind: s.kind,
            submitted: t.submitted,
            started: t.started,
            completed: t.completed,
            delay_s: Percentiles::of(t.delays_s),
            slo_misses: t.slo_misses,
            interruptions: t.interruptions,
            lost_accelerator_hours: t.lost_accelerator_hours,
        })
        .collect();
    PolicyReport {
        policy: policy.name(),
        total,
        years,
        contracts,
        hourly: settled.reports,
        streams,
        workloads,
        events,
        running_at_horizon: tally.running_at_horizon,
        pending_at_horizon: tally.pending_at_horizon,
        refused: tally.refused,
        truncated: tally.truncated,
    }
}

fn year_report(
    year: u32,
    from: Timestamp,
    to: Timestamp,
    yt: &mut YearTally,
    preemptions: u64,
    outages: u64,
) -> YearReport {
    let cost = yt.billed + yt.prepaid + yt.shortfall;
    YearReport {
        year,
        from: from.date_string(),
        to: to.date_string(),
        list_usd: yt.list,
        billed_usd: yt.billed,
        prepaid_usd: yt.prepaid,
        shortfall_usd: yt.shortfall,
        cost_usd: cost,
        effective_discount_pct: pct_off(cost, yt.list),
        accelerator_hours: yt.accelerator_hours.clone(),
        lost_accelerator_hours: yt.lost_accelerator_hours,
        preemptions,
        outages,
        interruptions: yt.interruptions,
        failovers: yt.failovers,
        submitted: yt.submitted,
        completed: yt.completed,
        delay_s: Percentiles::of(std::mem::take(&mut yt.delays_s)),
    }
}

fn total_report(sc: &Scenario, years: &[YearReport], tally: &Tally) -> YearReport {
    let sum = |f: fn(&YearReport) -> Amount| years.iter().map(f).sum::<Amount>();
    let mut hours: BTreeMap<String, f64> = BTreeMap::new();
    for y in years {
        for (k, v) in &y.accelerator_hours {
            *hours.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let delays: Vec<f32> = tally
        .streams
        .iter()
        .flat_map(|s| s.delays_s.iter().copied())
        .collect();
    let list = sum(|y| y.list_usd);
    let cost = sum(|y| y.cost_usd);
    YearReport {
        year: 0,
        from: sc.start.date_string(),
        to: sc.start.plus_months(12 * i64::from(sc.years)).date_string(),
        list_usd: list,
        billed_usd: sum(|y| y.billed_usd),
        prepaid_usd: sum(|y| y.prepaid_usd),
        shortfall_usd: sum(|y| y.shortfall_usd),
        cost_usd: cost,
        effective_discount_pct: pct_off(cost, list),
        accelerator_hours: hours,
        lost_accelerator_hours: years.iter().map(|y| y.lost_accelerator_hours).sum(),
        preemptions: years.iter().map(|y| y.preemptions).sum(),
        outages: years.iter().map(|y| y.outages).sum(),
        interruptions: years.iter().map(|y| y.interruptions).sum(),
        failovers: years.iter().map(|y| y.failovers).sum(),
        submitted: years.iter().map(|y| y.submitted).sum(),
        completed: years.iter().map(|y| y.completed).sum(),
        delay_s: Percentiles::of(delays),
    }
}
