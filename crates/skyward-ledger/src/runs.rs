//! The runs Skyward starts, as ledger charges: the control plane writes
//! these in the transaction that records a run's end, so the ledger sees
//! its own work at once (no FOCUS file in between).
//!
//! A run becomes one `Usage` bucket per UTC day and per hour it covered,
//! the amounts split by time and adding up exactly to the run's figures
//! (the last piece takes the remainder). Its billing account is
//! [`RUNS_ACCOUNT`]; its partition `provider|skyward:runs|YYYY-MM-01`; its
//! tags name the workload and team (`ledger breakdown --by
//! tag:skyward.team` is showback of the runs).
//!
//! A provider's own bill supersedes these records: once a FOCUS import
//! holds charges of that provider for a day, the runs' buckets of that day
//! are not read (they would count the same usage twice). That rule lives
//! in the store's reads.

use crate::time::Timestamp;
use serde::Serialize;

/// The billing account of the runs' own records.
pub const RUNS_ACCOUNT: &str = "skyward:runs";
pub const RUNS_SERVICE: &str = "Skyward runs";

/// One run's usage as the control plane records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunUsage {
    pub workload: i64,
    pub attempt: i64,
    pub team: String,
    pub provider: String,
    pub region: String,
    pub accelerator: String,
    /// The site's price basis: on-demand, spot, reserved, committed.
    pub basis: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub accelerator_hours: f64,
    /// At the site's price.
    pub list_micro_usd: i64,
    /// After the provider's commitment discount, if any.
    pub billed_micro_usd: i64,
}

/// One bucket of a run: a day or an hour (index since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub index: i64,
    pub billed_nanos: i64,
    pub list_nanos: i64,
    pub quantity_nanos: i64,
}

/// FOCUS PricingCategory of a site's price basis.
pub fn pricing_category(basis: &str) -> &'static str {
    match basis {
        "spot" => "Dynamic",
        "reserved" | "committed" => "Committed",
        _ => "Standard",
    }
}

/// What a run is billed, micro-dollars: reserved capacity's fee was
/// billed when it was bought (as FOCUS bills a reservation's usage:
/// BilledCost 0, EffectiveCost the amortised fee), so its runs add
/// nothing and burn no spend commitment; other usage is billed at list
/// less the provider's commitment discount.
pub fn billed_micro_usd(basis: &str, list_micro_usd: i64, discount_pct: f64) -> i64 {
    if basis == "reserved" {
        return 0;
    }
    let d = if discount_pct.is_finite() {
        discount_pct.clamp(0.0, 100.0)
    } else {
        0.0
    };
    (list_micro_usd as f64 * (100.0 - d) / 100.0).round() as i64
}

/// A piece's EffectiveCost: the amortised fee for reserved capacity (its
/// list, at the contracted rate), else what it is billed.
pub fn effective_nanos(basis: &str, p: &Piece) -> i64 {
    if basis == "reserved" {
        p.list_nanos
    } else {
        p.billed_nanos
    }
}

/// The partition of a run's piece on `day`.
pub fn partition(provider: &str, day: i64) -> String {
    let month = Timestamp(day * crate::time::SECONDS_PER_DAY).month_start();
    format!("{provider}|{RUNS_ACCOUNT}|{}", month.date_string())
}

/// Canonical tags JSON (keys sorted).
pub fn tags(run: &RunUsage) -> String {
    let esc = |s: &str| {
        s.chars()
            .flat_map(|c| match c {
                '"' => "\\\"".chars().collect::<Vec<_>>(),
                '\\' => "\\\\".chars().collect(),
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
                c => vec![c],
            })
            .collect::<String>()
    };
    format!(
        "{{\"skyward.team\":\"{}\",\"skyward.workload\":\"{}\"}}",
        esc(&run.team),
        run.workload
    )
}

/// The run split into buckets of `unit_ms` (a day: 86,400,000; an hour:
/// 3,600,000) aligned on the epoch; every amount adds up exactly. A run
/// of zero length is one piece at its start.
pub fn pieces(run: &RunUsage, unit_ms: i64) -> Vec<Piece> {
    let unit = unit_ms.max(1);
    let (from, to) = (run.from_ms, run.to_ms.max(run.from_ms));
    let total_ms = to - from;
    let billed = i128::from(run.billed_micro_usd) * 1000;
    let list = i128::from(run.list_micro_usd) * 1000;
    let qty = (run.accelerator_hours.max(0.0) * 1e9)
        .round()
        .min(i64::MAX as f64) as i128;
    let first = from.div_euclid(unit);
    let last = if total_ms == 0 {
        first
    } else {
        (to - 1).div_euclid(unit)
    };
    let mut out = Vec::with_capacity((last - first + 1).max(1) as usize);
    let (mut b_done, mut l_done, mut q_done) = (0i128, 0i128, 0i128);
    for index in first..=last {
        let end = ((index + 1) * unit).min(to);
        let (b, l, q) = if index == last || total_ms == 0 {
            (billed - b_done, list - l_done, qty - q_done)
        } else {
            let upto = i128::from(end - from);
            let share = |x: i128| x * upto / i128::from(total_ms);
            (
                share(billed) - b_done,
                share(list) - l_done,
                share(qty) - q_done,
            )
        };
        b_done += b;
        l_done += l;
        q_done += q;
        let clamp = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        out.push(Piece {
            index,
            billed_nanos: clamp(b),
            list_nanos: clamp(l),
            quantity_nanos: clamp(q),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from_ms: i64, to_ms: i64, billed: i64) -> RunUsage {
        RunUsage {
            workload: 7,
            attempt: 1,
            team: "ml \"core\"".into(),
            provider: "azure".into(),
            region: "eastus".into(),
            accelerator: "H100".into(),
            basis: "on-demand".into(),
            from_ms,
            to_ms,
            accelerator_hours: 3.0,
            list_micro_usd: billed,
            billed_micro_usd: billed,
        }
    }

    /// 23:00 to 02:00 across midnight, $3: one hour before midnight, two
    /// after, by hand $1 and $2; by hour, $1 each.
    #[test]
    fn a_run_across_midnight_splits_by_time_exactly() {
        let day = 86_400_000;
        let r = run(day - 3_600_000, day + 7_200_000, 3_000_000);
        let d = pieces(&r, day);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].index, d[0].billed_nanos), (0, 1_000_000_000));
        assert_eq!((d[1].index, d[1].billed_nanos), (1, 2_000_000_000));
        assert_eq!(d[0].quantity_nanos + d[1].quantity_nanos, 3_000_000_000);
        let h = pieces(&r, 3_600_000);
        assert_eq!(h.len(), 3);
        assert!(h.iter().all(|p| p.billed_nanos == 1_000_000_000));
    }

    /// Thirds of a micro-dollar: the pieces still add up to the run.
    #[test]
    fn remainders_go_to_the_last_piece() {
        let r = run(0, 3 * 3_600_000, 1);
        let h = pieces(&r, 3_600_000);
        assert_eq!(h.iter().map(|p| p.billed_nanos).sum::<i64>(), 1_000);
        assert_eq!(h[0].billed_nanos, 333);
        assert_eq!(h[2].billed_nanos, 334);
        assert_eq!(pieces(&run(5, 5, 9), 3_600_000).len(), 1);
    }

    #[test]
    fn partition_tags_and_categories() {
        let r = run(0, 1, 1);
        assert_eq!(partition("azure", 45), "azure|skyward:runs|1970-02-01");
        assert_eq!(
            tags(&r),
            r#"{"skyward.team":"ml \"core\"","skyward.workload":"7"}"#
        );
        assert_eq!(pricing_category("spot"), "Dynamic");
        assert_eq!(pricing_category("committed"), "Committed");
        // $10 at list under a 20 % commitment: $8 billed; reserved
        // capacity is billed nothing per use.
        assert_eq!(billed_micro_usd("on-demand", 10_000_000, 20.0), 8_000_000);
        assert_eq!(billed_micro_usd("spot", 10_000_000, f64::NAN), 10_000_000);
        assert_eq!(billed_micro_usd("reserved", 10_000_000, 20.0), 0);
        let p = Piece {
            index: 0,
            billed_nanos: 0,
            list_nanos: 7,
            quantity_nanos: 1,
        };
        assert_eq!(effective_nanos("reserved", &p), 7);
        assert_eq!(effective_nanos("on-demand", &p), 0);
        assert_eq!(pricing_category("on-demand"), "Standard");
    }
}
