//! Skyward's own usage as FOCUS 1.3 rows, for other FinOps tools and for
//! `ledger import`. One row per usage record per hour (a partial last hour
//! is prorated); egress is one row at the start.
//!
//! Reserved capacity is written as the FOCUS specification's commitment
//! discounts are:
//! * each hour of the window, a **Purchase** row for the commitment's fee
//!   (units × rate; ChargeFrequency Recurring, BilledCost the fee,
//!   EffectiveCost 0);
//! * usage it covers is **Used**: BilledCost 0, EffectiveCost the amortised
//!   fee of the node-hours used, ListCost their on-demand price;
//! * what no workload used that hour is one **Unused** row with the
//!   amortised fee of the idle units as EffectiveCost.
//!
//! So Σ EffectiveCost of Used + Unused = Σ BilledCost of Purchases for every
//! commitment, and importing the export shows the utilisation the plan has.

use crate::amount::{Amount, PICOS_PER_USD};
use crate::contracts::scale;
use crate::status::DayRow;
use crate::time::{Timestamp, SECONDS_PER_DAY, SECONDS_PER_HOUR};
use std::io::Write;

pub const HEADER: &str = "BillingAccountId,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,ChargeFrequency,PricingCategory,ServiceProviderName,InvoiceIssuerName,RegionId,ServiceCategory,ServiceName,SkuId,ResourceId,ResourceName,ListUnitPrice,PricingQuantity,PricingUnit,ListCost,ContractedCost,EffectiveCost,BilledCost,ConsumedQuantity,ConsumedUnit,CommitmentDiscountId,CommitmentDiscountStatus";

/// Hours one record may span (ten years).
pub const RECORD_HOURS_MAX: f64 = 87_840.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Pricing {
    OnDemand,
    Spot,
    /// Capacity of a commitment (its id: the pool's name).
    Reserved(String),
}

/// Reserved capacity held over the export's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Commitment {
    pub id: String,
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub units: u32,
    pub rate_per_unit_hour: Amount,
}

/// One placement's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub resource: String,
    pub start: Timestamp,
    pub hours: f64,
    /// Node-hours consumed per wall-clock hour (nodes × replicas).
    pub nodes: u32,
    /// List (on-demand) price per node-hour.
    pub list_per_node_hour: Amount,
    pub pricing: Pricing,
    /// The provider's contract discount, applied to list for what is billed.
    pub discount_pct: f64,
    pub egress: Amount,
    /// Provider that bills the egress, and its contract discount.
    pub egress_provider: String,
    pub egress_discount_pct: f64,
}

/// Writes the records, and each commitment's Purchase and Unused rows over
/// `[window_start, window_start + window_hours)`. Returns the rows written.
pub fn write_focus<W: Write>(
    mut w: W,
    records: &[UsageRecord],
    commitments: &[Commitment],
    window_start: Timestamp,
    window_hours: u32,
    account: &str,
) -> std::io::Result<u64> {
    writeln!(w, "{HEADER}")?;
    let mut rows = 0u64;
    // Node-hours used per (commitment, hour of the window).
    let mut used: std::collections::BTreeMap<(&str, i64), Amount> =
        std::collections::BTreeMap::new();
    for r in records {
        let hours = r.hours.clamp(0.0, RECORD_HOURS_MAX);
        let whole = hours.floor() as i64;
        let frac = hours - whole as f64;
        let (category, commitment, status) = match &r.pricing {
            Pricing::OnDemand => ("Standard", String::new(), ""),
            Pricing::Spot => ("Dynamic", String::new(), ""),
            Pricing::Reserved(pool) => ("Committed", pool.clone(), "Used"),
        };
        let rate = match &r.pricing {
            Pricing::Reserved(pool) => commitments
                .iter()
                .find(|c| &c.id == pool)
                .map(|c| c.rate_per_unit_hour),
            _ => None,
        };
        let steps = whole + i64::from(frac > 0.0);
        for k in 0..steps {
            let share = if k < whole { 1.0 } else { frac };
            let t0 = Timestamp(r.start.0 + k * SECONDS_PER_HOUR);
            let t1 = Timestamp(t0.0 + ((share * SECONDS_PER_HOUR as f64).round() as i64).max(1));
            let (ps, pe) = t0.month_bounds();
            let qty = Amount::from_usd_f64(share * f64::from(r.nodes));
            let list = Amount(r.list_per_node_hour.0 * qty.0 / PICOS_PER_USD);
            let (billed, effective) = match rate {
                Some(rate) => {
                    if let Pricing::Reserved(pool) = &r.pricing {
                        let hour = (t0.0 - window_start.0).div_euclid(SECONDS_PER_HOUR);
                        *used.entry((pool.as_str(), hour)).or_insert(Amount::ZERO) += qty;
                    }
                    (Amount::ZERO, Amount(rate.0 * qty.0 / PICOS_PER_USD))
                }
                // Reserved capacity whose commitment is not in this export:
                // prepaid elsewhere, nothing billed here.
                None if matches!(r.pricing, Pricing::Reserved(_)) => (Amount::ZERO, Amount::ZERO),
                None => {
                    let b = scale(list, 1.0 - r.discount_pct / 100.0);
                    (b, b)
                }
            };
            writeln!(
                w,
                "{account},USD,{ps},{pe},{t0},{t1},Usage,,{desc},Usage-Based,{category},{p},{p},{region},Compute,Compute,{sku},{res},{res},{lup},{q},Hours,{list},{c},{e},{b},{q},Hours,{commitment},{status}",
                desc = format!("{} on {}", r.resource, r.sku).replace(',', " "),
                p = r.provider,
                region = r.region,
                sku = r.sku,
                res = r.resource.replace(',', " "),
                lup = r.list_per_node_hour.decimal(),
                q = qty.decimal(),
                list = list.decimal(),
                c = if matches!(r.pricing, Pricing::Reserved(_)) { list } else { billed }.decimal(),
                e = effective.decimal(),
                b = billed.decimal(),
            )?;
            rows += 1;
        }
        if r.egress > Amount::ZERO {
            let (ps, pe) = r.start.month_bounds();
            let t1 = Timestamp(r.start.0 + SECONDS_PER_HOUR);
            let billed = scale(r.egress, 1.0 - r.egress_discount_pct / 100.0);
            writeln!(
                w,
                "{account},USD,{ps},{pe},{},{t1},Usage,,data transfer for {res},Usage-Based,Standard,{p},{p},,Networking,Data Transfer,egress,{res},{res},,,,{e},{b},{b},{b},,,,",
                r.start,
                res = r.resource.replace(',', " "),
                p = r.egress_provider,
                e = r.egress.decimal(),
                b = billed.decimal(),
            )?;
            rows += 1;
        }
    }
    for c in commitments {
        let units = Amount(i128::from(c.units) * PICOS_PER_USD);
        let fee = Amount(c.rate_per_unit_hour.0 * i128::from(c.units));
        let id = c.id.replace(',', " ");
        for k in 0..i64::from(window_hours) {
            let t0 = Timestamp(window_start.0 + k * SECONDS_PER_HOUR);
            let t1 = Timestamp(t0.0 + SECONDS_PER_HOUR);
            let (ps, pe) = t0.month_bounds();
            writeln!(
                w,
                "{account},USD,{ps},{pe},{t0},{t1},Purchase,,reserved capacity {id},Recurring,Committed,{p},{p},{region},Compute,Compute,{sku},{id},{id},{rate},{u},Hours,{fee},{fee},0,{fee},,,{id},",
                p = c.provider,
                region = c.region,
                sku = c.sku,
                rate = c.rate_per_unit_hour.decimal(),
                u = units.decimal(),
                fee = fee.decimal(),
            )?;
            rows += 1;
            let idle = (units
                - used
                    .get(&(c.id.as_str(), k))
                    .copied()
                    .unwrap_or(Amount::ZERO))
            .max(Amount::ZERO);
            if idle > Amount::ZERO {
                let cost = Amount(c.rate_per_unit_hour.0 * idle.0 / PICOS_PER_USD);
                writeln!(
                    w,
                    "{account},USD,{ps},{pe},{t0},{t1},Usage,,unused reserved capacity {id},Usage-Based,Committed,{p},{p},{region},Compute,Compute,{sku},{id},{id},{rate},{q},Hours,0,0,{cost},0,{q},Hours,{id},Unused",
                    p = c.provider,
                    region = c.region,
                    sku = c.sku,
                    rate = c.rate_per_unit_hour.decimal(),
                    q = idle.decimal(),
                    cost = cost.decimal(),
                )?;
                rows += 1;
            }
        }
    }
    Ok(rows)
}

/// Day buckets of usage (the simulator's ledger) as FOCUS 1.3 usage
/// rows, one per `(resource, row)`: the day as the charge period, the
/// row's region, service and SKU, list cost as ListCost and billed cost as
/// ContractedCost, EffectiveCost and BilledCost. Returns the rows written.
pub fn write_day_rows<W: Write>(
    mut w: W,
    rows: &[(&str, &DayRow)],
    account: &str,
) -> std::io::Result<u64> {
    writeln!(w, "{HEADER}")?;
    let clean = |s: &str| s.replace([',', '"', '\n', '\r'], " ");
    let mut n = 0u64;
    for (resource, r) in rows {
        let t0 = Timestamp(r.day * SECONDS_PER_DAY);
        let t1 = Timestamp(t0.0 + SECONDS_PER_DAY);
        let (ps, pe) = t0.month_bounds();
        let (p, region, sku, res) = (
            clean(&r.provider),
            clean(&r.region),
            clean(&r.sku),
            clean(resource),
        );
        let service = if r.service.is_empty() {
            "Compute".to_string()
        } else {
            clean(&r.service)
        };
        writeln!(
            w,
            "{account},USD,{ps},{pe},{t0},{t1},Usage,,{sku} on {res},Usage-Based,Standard,{p},{p},{region},Compute,{service},{sku},{res},{res},,,,{list},{b},{b},{b},,,,",
            account = clean(account),
            list = r.list.decimal(),
            b = r.billed.decimal(),
        )?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::focus::parse;

    /// Day rows read back by the FOCUS reader as the same charges.
    #[test]
    fn day_rows_round_trip_through_the_focus_reader() {
        let mut a = DayRow::usage(
            20_454, // 2026-01-01
            "aws",
            Amount::parse("80.25").unwrap_or_default(),
            Amount::parse("107").unwrap_or_default(),
        );
        a.region = "us-east-1".into();
        a.service = "compute".into();
        a.sku = "H100".into();
        let mut b = a.clone();
        b.day += 40;
        b.provider = "azure".into();
        let mut buf = Vec::new();
        let n = write_day_rows(&mut buf, &[("aws-h100", &a), ("az,1", &b)], "lab").unwrap_or(0);
        assert_eq!(n, 2);
        let charges = parse(buf.as_slice(), "sim.csv", None).unwrap_or_default();
        assert_eq!(charges.len(), 2);
        let c = &charges[0];
        assert_eq!(c.provider, "aws");
        assert_eq!(c.region.as_deref(), Some("us-east-1"));
        assert_eq!(c.sku.as_deref(), Some("H100"));
        assert_eq!(c.service.as_deref(), Some("compute"));
        assert_eq!(c.list_cost, Amount::parse("107").ok());
        assert_eq!(c.billed_cost, Amount::parse("80.25").unwrap_or_default());
        assert_eq!(
            c.charge_period_start,
            Timestamp::parse("2026-01-01T00:00:00Z").unwrap_or(Timestamp(0))
        );
        assert_eq!(
            c.charge_period_end,
            Timestamp::parse("2026-01-02T00:00:00Z").unwrap_or(Timestamp(0))
        );
        // 2026-02-10, in February's billing period.
        assert_eq!(charges[1].provider, "azure");
        assert_eq!(charges[1].charge_period_start.date_string(), "2026-02-10");
    }

    #[test]
    fn export_then_parse_round_trips_exactly() {
        let start = Timestamp::parse("2026-03-31T22:00:00Z").unwrap_or(Timestamp(0));
        let recs = vec![
            UsageRecord {
                provider: "aws".into(),
                region: "us-east-1".into(),
                sku: "p5.48xlarge".into(),
                resource: "train".into(),
                start,
                hours: 2.5,
                nodes: 4,
                list_per_node_hour: Amount::parse("55.04").unwrap_or_default(),
                pricing: Pricing::OnDemand,
                discount_pct: 10.0,
                egress: Amount::parse("90").unwrap_or_default(),
                egress_provider: "gcp".into(),
                egress_discount_pct: 0.0,
            },
            UsageRecord {
                provider: "azure".into(),
                region: "eastus".into(),
                sku: "ND".into(),
                resource: "serve".into(),
                start,
                hours: 1.0,
                nodes: 2,
                list_per_node_hour: Amount::parse("98.32").unwrap_or_default(),
                pricing: Pricing::Reserved("pool".into()),
                discount_pct: 0.0,
                egress: Amount::ZERO,
                egress_provider: "azure".into(),
                egress_discount_pct: 0.0,
            },
        ];
        let mut buf = Vec::new();
        let pool = Commitment {
            id: "pool".into(),
            provider: "azure".into(),
            region: "eastus".into(),
            sku: "ND".into(),
            units: 3,
            rate_per_unit_hour: Amount::parse("60").unwrap_or_default(),
        };
        let n = write_focus(&mut buf, &recs, &[pool], start, 1, "acct").unwrap_or(0);
        // 3 + 1 aws hours and egress, 1 reserved hour, 1 purchase, 1 unused.
        assert_eq!(n, 3 + 1 + 1 + 2);
        let charges = parse(buf.as_slice(), "export.csv", None).unwrap_or_default();
        assert_eq!(charges.len(), 7);
        // 2.5 h × 4 nodes × $55.04 = $550.40 list; 10% off billed.
        let aws_list: Amount = charges
            .iter()
            .filter(|c| c.provider == "aws")
            .filter_map(|c| c.list_cost)
            .sum();
        let aws_billed: Amount = charges
            .iter()
            .filter(|c| c.provider == "aws")
            .map(|c| c.billed_cost)
            .sum();
        assert_eq!(
            (aws_list, aws_billed),
            (
                Amount::parse("550.40").unwrap_or_default(),
                Amount::parse("495.36").unwrap_or_default()
            )
        );
        // The second hour crosses into April: two billing periods.
        let periods: std::collections::BTreeSet<_> = charges
            .iter()
            .filter_map(|c| c.billing_period_start)
            .collect();
        assert_eq!(periods.len(), 2);
        let egress: Vec<_> = charges.iter().filter(|c| c.provider == "gcp").collect();
        assert_eq!(
            egress[0].billed_cost,
            Amount::parse("90").unwrap_or_default()
        );
        let reserved: Vec<_> = charges.iter().filter(|c| c.provider == "azure").collect();
        assert_eq!(reserved[0].billed_cost, Amount::ZERO);
        assert_eq!(
            reserved[0].list_cost,
            Some(Amount::parse("196.64").unwrap_or_default())
        );
        // 2 of 3 units used for the hour at $60: $120 used, $60 unused, and
        // a $180 purchase: the FOCUS commitment invariant holds.
        let check = &crate::focus::commitment_checks(&charges)[0];
        assert_eq!(
            (
                check.used_effective,
                check.unused_effective,
                check.purchase_billed
            ),
            (
                Amount::parse("120").unwrap_or_default(),
                Amount::parse("60").unwrap_or_default(),
                Amount::parse("180").unwrap_or_default()
            )
        );
        assert_eq!(check.balanced, Some(true));
    }
}
