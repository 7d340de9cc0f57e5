//! Synthetic FOCUS 1.3 billing data for demos and benchmarks: hourly usage
//! rows for several providers with weekly seasonality, growth and noise,
//! and an AWS Compute Savings Plan whose Used + Unused effective cost equals
//! its recurring purchases (the FOCUS invariant). Seeded: the same settings
//! give the same file.

use crate::amount::Amount;
use crate::contracts::scale;
use crate::time::{Timestamp, SECONDS_PER_HOUR};
use std::io::Write;

/// Teams on the usage rows' Tags.
const TEAMS: [&str; 3] = ["pretrain", "serving", "research"];

pub const HEADER: &str = "BillingAccountId,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeFrequency,PricingCategory,ServiceProviderName,RegionId,ServiceName,SkuId,ListUnitPrice,PricingQuantity,ListCost,ContractedCost,EffectiveCost,BilledCost,ConsumedQuantity,CommitmentDiscountId,CommitmentDiscountCategory,CommitmentDiscountStatus,Tags";

#[derive(Debug, Clone)]
pub struct GenSettings {
    pub start: Timestamp,
    pub days: u32,
    /// Usage rows per provider per hour.
    pub rows_per_hour: u32,
    /// Yearly growth of demand, percent.
    pub growth_pct: f64,
    pub seed: u64,
}

use skyward_model::rng::SplitMix64 as Rng;

/// (provider name as FOCUS writes it, region, service, SKU, list $/h, contract discount %)
pub const SKUS: &[(&str, &str, &str, &str, &str, f64)] = &[
    (
        "AWS",
        "us-east-1",
        "Amazon Elastic Compute Cloud",
        "p5.48xlarge",
        "55.04",
        12.0,
    ),
    (
        "AWS",
        "us-west-2",
        "Amazon Elastic Compute Cloud",
        "p4d.24xlarge",
        "21.957642",
        12.0,
    ),
    (
        "Microsoft",
        "eastus",
        "Virtual Machines",
        "Standard_ND96isr_H100_v5",
        "98.32",
        18.0,
    ),
    (
        "Google Cloud",
        "us-central1",
        "Compute Engine",
        "a3-highgpu-8g",
        "43.06615",
        0.0,
    ),
];

/// Savings plan in the data: $/hour fee, discount, id.
pub const SP_FEE_PER_HOUR: &str = "400";
pub const SP_DISCOUNT_PCT: f64 = 28.0;
pub const SP_ID: &str = "arn:aws:savingsplans::123456789012:savingsplan/skyward-demo";

/// Writes the file; returns the number of rows.
pub fn write_focus<W: Write>(
    mut w: W,
    s: &GenSettings,
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut rng = Rng::new(s.seed);
    writeln!(w, "{HEADER}")?;
    let mut rows = 0u64;
    let hours = i64::from(s.days) * 24;
    let fee = Amount::parse(SP_FEE_PER_HOUR).unwrap_or(Amount::ZERO);
    let covers = scale(fee, 1.0 / (1.0 - SP_DISCOUNT_PCT / 100.0));
    let mut last_month = None;
    for h in 0..hours {
        let t = Timestamp(s.start.0 + h * SECONDS_PER_HOUR);
        let t1 = Timestamp(t.0 + SECONDS_PER_HOUR);
        let (ms, me) = t.month_bounds();
        let (bps, bpe) = (ms.to_string(), me.to_string());
        let (ts, te) = (t.to_string(), t1.to_string());
        if last_month != Some(ms) {
            // The savings plan's recurring fee for the month, billed up front.
            let month_hours =
                ((me.0.min(s.start.0 + hours * SECONDS_PER_HOUR) - t.0) / SECONDS_PER_HOUR).max(0);
            let cost = Amount(fee.0 * i128::from(month_hours));
            writeln!(w, "1001,USD,{bps},{bpe},{ts},{},Purchase,Recurring,Committed,AWS,,Savings Plans for AWS Compute usage,ComputeSP,,,{c},{c},0,{c},,{SP_ID},Spend,,", me, c = cost.decimal())?;
            rows += 1;
            last_month = Some(ms);
        }
        let dow = (t.day() + 4).rem_euclid(7); // 0 = Sunday
        let weekly = if dow == 0 || dow == 6 { 0.75 } else { 1.0 };
        let growth = 1.0 + s.growth_pct / 100.0 * (h as f64 / 8_760.0);
        for (provider, region, service, sku, price, discount) in SKUS {
            let unit = Amount::parse(price).unwrap_or(Amount::ZERO);
            for r in 0..s.rows_per_hour {
                // Node-hours on this row: 0.25 to 4, scaled by season and growth.
                let q = ((0.25 + 3.75 * rng.unit()) * weekly * growth * 4.0).round() / 4.0;
                if q <= 0.0 {
                    continue;
                }
                let qty = Amount::from_usd_f64(q);
                let list = Amount(unit.0 * qty.0 / crate::amount::PICOS_PER_USD);
                let contracted = scale(list, 1.0 - discount / 100.0);
                // Two payer accounts, three teams (FOCUS Tags).
                let account = if r % 2 == 0 { "1001" } else { "1002" };
                let team = TEAMS[r as usize % TEAMS.len()];
                writeln!(
                    w,
                    "{account},USD,{bps},{bpe},{ts},{te},Usage,Usage-Based,Standard,{provider},{region},{service},{sku},{},{},{},{c},{c},{c},{},,,,\"{{\"\"team\"\":\"\"{team}\"\"}}\"",
                    unit.decimal(),
                    qty.decimal(),
                    list.decimal(),
                    qty.decimal(),
                    c = contracted.decimal()
                )?;
                rows += 1;
            }
        }
        // A steady baseline that the savings plan covers, and what it leaves unused.
        let baseline = scale(covers, (0.55 + 0.5 * rng.unit()) * weekly);
        let covered = baseline.min(covers);
        let used = Amount(fee.0 * covered.0 / covers.0.max(1));
        writeln!(w, "1001,USD,{bps},{bpe},{ts},{te},Usage,Usage-Based,Committed,AWS,us-east-1,Amazon Elastic Compute Cloud,ComputeSP-covered,,,{},0,{},0,,{SP_ID},Spend,Used,", covered.decimal(), used.decimal())?;
        rows += 1;
        if used < fee {
            writeln!(w, "1001,USD,{bps},{bpe},{ts},{te},Usage,Usage-Based,Committed,AWS,,Savings Plans for AWS Compute usage,ComputeSP-unused,,,0,0,{},0,,{SP_ID},Spend,Unused,", (fee - used).decimal())?;
            rows += 1;
        }
        if h % 24 == 23 {
            progress(rows);
        }
    }
    Ok(rows)
}
