//! Savings plans and reserved capacity in a simulation: each provider's
//! on-demand usage is gathered per hour while the run goes, then settled
//! hour by hour by the ledger's rules (`skyward_ledger::status`, simulated
//! application): reserved capacity first, unit by unit on its region and
//! SKU, then the savings plans by instrument priority and name, each
//! covering on-demand list up to its hourly coverage. Covered usage is not
//! billed; each commitment's fee is paid every hour of its term, used or
//! not.
//!
//! The scenario refuses one of these beside a spend commitment on the same
//! provider (the order of the two, and what a plan's fee burns, differ by
//! deal), so what is covered was billed at list. The core does not see
//! them: the `skyward` policy places work on their provider at list price.

use crate::scenario::{year_index, Scenario, MS_PER_HOUR};
use serde::Serialize;
use skyward_core::Millis;
use skyward_ledger::contracts::{scale, Contract, Terms};
use skyward_ledger::Amount;

/// Usage gathered per hour for the providers that have hourly or
/// capacity commitments.
#[derive(Debug, Clone)]
pub struct Hourly {
    contracts: Vec<Contract>,
    /// Per site: its provider's index here (none for prepaid sites, whose
    /// use is paid for already, and providers without such commitments).
    site_provider: Vec<Option<usize>>,
    /// Per site: its (provider, region, SKU) cell, when a capacity
    /// commitment covers it.
    site_cell: Vec<Option<usize>>,
    /// (provider index, region, SKU) of each cell.
    cells: Vec<(usize, String, String)>,
    /// Per provider: its contracts' indices, in settling order.
    by_provider: Vec<Vec<usize>>,
    hours: usize,
    /// Per provider, per hour: on-demand list.
    list: Vec<Vec<Amount>>,
    /// Per cell, per hour: (list, accelerator-hours).
    cell_use: Vec<Vec<(Amount, f64)>>,
}

/// One hourly or capacity commitment over the run, to the horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourlyReport {
    pub name: String,
    pub provider: String,
    /// `savings-plan` or `capacity`.
    pub kind: String,
    /// The savings plan's instrument, or the reservation's region and SKU.
    pub what: String,
    pub start: String,
    pub end: String,
    /// Hours of its term within the horizon.
    pub hours: u64,
    pub fee_per_hour_usd: Amount,
    /// Fees paid to the horizon, used or not.
    pub committed_usd: Amount,
    /// The share of the fees that covered usage.
    pub used_usd: Amount,
    pub unused_usd: Amount,
    /// used ÷ committed, in percent.
    pub utilisation_pct: f64,
    /// On-demand list of the usage it covered.
    pub covered_list_usd: Amount,
    /// covered − committed: what it saved against on-demand (negative: it
    /// cost more than it covered).
    pub net_savings_usd: Amount,
}

/// What settling changes in each year: list covered (billed no more) and
/// fees paid.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub covered_by_year: Vec<Amount>,
    pub fees_by_year: Vec<Amount>,
    pub reports: Vec<HourlyReport>,
}

impl Hourly {
    /// None when the scenario has no hourly or capacity commitment.
    pub fn new(sc: &Scenario, horizon_ms: Millis) -> Option<Hourly> {
        let mut contracts: Vec<Contract> = sc
            .contracts
            .iter()
            .filter(|c| matches!(c.terms, Terms::Hourly(_) | Terms::Capacity(_)))
            .cloned()
            .collect();
        if contracts.is_empty() {
            return None;
        }
        // The ledger's order within an hour: capacity by name, then
        // savings plans by instrument priority and name.
        contracts.sort_by_key(order);
        let mut providers: Vec<String> = contracts.iter().map(|c| c.provider.clone()).collect();
        providers.sort();
        providers.dedup();
        let mut cells: Vec<(usize, String, String)> = Vec::new();
        for c in &contracts {
            if let Terms::Capacity(t) = &c.terms {
                let p = providers.iter().position(|x| *x == c.provider).unwrap_or(0);
                let key = (p, t.region.to_ascii_lowercase(), t.sku.to_ascii_lowercase());
                if !cells.contains(&key) {
                    cells.push(key);
                }
            }
        }
        let site_provider: Vec<Option<usize>> = sc
            .sites
            .iter()
            .map(|m| {
                if m.prepaid {
                    return None;
                }
                providers.iter().position(|p| *p == m.region.provider)
            })
            .collect();
        let site_cell = sc
            .sites
            .iter()
            .zip(&site_provider)
            .map(|(m, p)| {
                let p = (*p)?;
                cells.iter().position(|(cp, r, k)| {
                    *cp == p
                        && r.eq_ignore_ascii_case(&m.region.region)
                        && k.eq_ignore_ascii_case(&m.accelerator)
                })
            })
            .collect();
        let hours = horizon_ms.div_ceil(MS_PER_HOUR) as usize;
        let by_provider = providers
            .iter()
            .map(|p| {
                (0..contracts.len())
                    .filter(|i| contracts[*i].provider == *p)
                    .collect()
            })
            .collect();
        Some(Hourly {
            by_provider,
            list: vec![Vec::new(); providers.len()],
            cell_use: vec![Vec::new(); cells.len()],
            contracts,
            site_provider,
            site_cell,
            cells,
            hours,
        })
    }

    /// A run's on-demand usage on site `si` from `from` to `to`: spread
    /// over the hours it ran in exact amounts (the last piece takes the
    /// remainder), as the days are.
    pub fn add(
        &mut self,
        si: usize,
        from: Millis,
        to: Millis,
        list: Amount,
        accelerator_hours: f64,
    ) {
        let Some(p) = self.site_provider.get(si).copied().flatten() else {
            return;
        };
        let cell = self.site_cell.get(si).copied().flatten();
        let hours = self.hours;
        if self.list[p].is_empty() {
            self.list[p] = vec![Amount::ZERO; hours];
        }
        if let Some(c) = cell {
            if self.cell_use[c].is_empty() {
                self.cell_use[c] = vec![(Amount::ZERO, 0.0); hours];
            }
        }
        let span = (to - from).max(1) as f64;
        crate::run::spread(from, to, list, MS_PER_HOUR, |t, piece_end, piece| {
            let h = (t / MS_PER_HOUR) as usize;
            if h < hours {
                self.list[p][h] += piece;
                if let Some(c) = cell {
                    let u = &mut self.cell_use[c][h];
                    u.0 += piece;
                    u.1 += accelerator_hours * (piece_end - t) as f64 / span;
                }
            }
        });
    }

    /// Settles every hour of the horizon.
    pub fn settle(&self, sc: &Scenario) -> Settlement {
        let starts = sc.year_starts_ms();
        let years = sc.years as usize;
        let mut s = Settlement {
            covered_by_year: vec![Amount::ZERO; years],
            fees_by_year: vec![Amount::ZERO; years],
            reports: Vec::new(),
        };
        // Per contract: (hours, committed, used, covered list).
        let mut acc = vec![(0u64, Amount::ZERO, Amount::ZERO, Amount::ZERO); self.contracts.len()];
        let mut cells: Vec<(Amount, f64)> = Vec::with_capacity(self.cells.len());
        for h in 0..self.hours {
            let at_ms = h as Millis * MS_PER_HOUR;
            let at = sc.timestamp(at_ms);
            let y = year_index(&starts, at_ms).min(years.saturating_sub(1));
            // (list, accelerator-hours) left in each cell this hour.
            cells.clear();
            cells.extend(
                self.cell_use
                    .iter()
                    .map(|u| u.get(h).copied().unwrap_or((Amount::ZERO, 0.0))),
            );
            for (p, mine) in self.by_provider.iter().enumerate() {
                let all = self.list[p].get(h).copied().unwrap_or(Amount::ZERO);
                let mut covered = Amount::ZERO;
                for &ci in mine {
                    let c = &self.contracts[ci];
                    if at < c.start || at >= c.end {
                        continue;
                    }
                    let a = &mut acc[ci];
                    a.0 += 1;
                    match &c.terms {
                        Terms::Capacity(t) => {
                            let fee = capacity_fee(t);
                            a.1 += fee;
                            s.fees_by_year[y] += fee;
                            let mut units_left = f64::from(t.units);
                            for (i, (cp, region, sku)) in self.cells.iter().enumerate() {
                                let (list, qty) = &mut cells[i];
                                if *cp != p
                                    || units_left <= 0.0
                                    || *qty <= 0.0
                                    || !region.eq_ignore_ascii_case(&t.region)
                                    || !sku.eq_ignore_ascii_case(&t.sku)
                                {
                                    continue;
                                }
                                let take = qty.min(units_left);
                                let part = if take >= *qty {
                                    *list
                                } else {
                                    scale(*list, take / *qty)
                                };
                                *list = *list - part;
                                *qty -= take;
                                units_left -= take;
                                covered += part;
                                a.2 += scale(t.rate_per_unit_hour, take);
                                a.3 += part;
                            }
                        }
                        Terms::Hourly(t) => {
                            let fee = t.fee_per_hour();
                            let covers = t.covers_list_per_hour();
                            a.1 += fee;
                            s.fees_by_year[y] += fee;
                            let cov = (all - covered).min(covers).max(Amount::ZERO);
                            covered += cov;
                            if covers > Amount::ZERO {
                                a.2 += Amount(fee.0 * cov.0 / covers.0);
                            }
                            a.3 += cov;
                        }
                        Terms::Spend(_) => {}
                    }
                }
                s.covered_by_year[y] += covered;
            }
        }
        for (c, (hours, committed, used, covered)) in self.contracts.iter().zip(acc) {
            let (kind, what, fee) = match &c.terms {
                Terms::Hourly(t) => (
                    "savings-plan",
                    t.instrument.as_str().to_string(),
                    t.fee_per_hour(),
                ),
                Terms::Capacity(t) => (
                    "capacity",
                    format!("{} × {} in {}", t.units, t.sku, t.region),
                    capacity_fee(t),
                ),
                Terms::Spend(_) => continue,
            };
            s.reports.push(HourlyReport {
                name: c.name.clone(),
                provider: c.provider.clone(),
                kind: kind.into(),
                what,
                start: c.start.date_string(),
                end: c.end.date_string(),
                hours,
                fee_per_hour_usd: fee,
                committed_usd: committed,
                used_usd: used,
                unused_usd: committed - used,
                utilisation_pct: if committed > Amount::ZERO {
                    used.as_f64() / committed.as_f64() * 100.0
                } else {
                    0.0
                },
                covered_list_usd: covered,
                net_savings_usd: covered - committed,
            });
        }
        s
    }
}

/// What a reservation costs an hour, used or not.
fn capacity_fee(t: &skyward_ledger::contracts::CapacityTerms) -> Amount {
    Amount(t.rate_per_unit_hour.0 * i128::from(t.units))
}

/// Capacity by name, then savings plans by instrument priority and name.
fn order(c: &Contract) -> (u8, String) {
    match &c.terms {
        Terms::Capacity(_) => (0, c.name.clone()),
        Terms::Hourly(t) => (t.instrument.priority(), c.name.clone()),
        Terms::Spend(_) => (u8::MAX, c.name.clone()),
    }
}
