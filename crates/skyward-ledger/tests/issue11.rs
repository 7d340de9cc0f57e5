#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ledger defects of issue 11, each against figures computed by hand.

use skyward_ledger::contracts::{Contract, HourlyTerms, Instrument, Terms};
use skyward_ledger::status::{status, ContractStatus, DayRow, HourRow, HourlyStatus};
use skyward_ledger::{Amount, Timestamp};

fn usd(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

fn ts(d: &str) -> Timestamp {
    Timestamp::parse(d).unwrap()
}

fn hourly_contract(
    name: &str,
    instrument: Instrument,
    per_hour: &str,
    id: Option<&str>,
) -> Contract {
    let (provider, pct) = match instrument {
        Instrument::GcpFlexibleCud => ("gcp", 25.0),
        Instrument::AzureSavingsPlan => ("azure", 20.0),
        _ => ("aws", 28.0),
    };
    Contract {
        name: name.into(),
        provider: provider.into(),
        start: ts("2026-03-01"),
        end: ts("2027-03-01"),
        terms: Terms::Hourly(HourlyTerms {
            instrument,
            commit_per_hour: usd(per_hour),
            discount_pct: pct,
            commitment_id: id.map(str::to_string),
        }),
    }
}

fn hourly_of(s: &ContractStatus) -> &HourlyStatus {
    match s {
        ContractStatus::Hourly(h) => h,
        other => panic!("not hourly: {other:?}"),
    }
}

fn covered_row(
    day: i64,
    id: &str,
    status_: &str,
    list: &str,
    effective: &str,
    service: &str,
) -> DayRow {
    let mut r = DayRow::usage(day, "aws", usd(effective), usd(list));
    r.service = service.into();
    r.commitment_id = id.into();
    r.commitment_status = status_.into();
    r.pricing_category = if status_ == "Used" {
        "Committed".into()
    } else {
        String::new()
    };
    r.effective = usd(effective);
    r
}

/// Defect 1: a savings plan whose rows are in the data must not also be
/// simulated on the on-demand usage the data leaves.
#[test]
fn a_plan_in_the_data_is_not_applied_again_by_the_simulation() {
    let d0 = ts("2026-03-01").day();
    // Ten days. The existing plan ($500/h fee) has its Used rows in the
    // data; $200/h of EC2 usage is left on-demand.
    let mut days = Vec::new();
    let mut hours = Vec::new();
    for d in 0..10 {
        days.push(covered_row(
            d0 + d,
            "sp-1",
            "Used",
            "16666.67",
            "12000",
            "EC2",
        ));
        let mut od = DayRow::usage(d0 + d, "aws", usd("4800"), usd("4800"));
        od.service = "EC2".into();
        days.push(od);
        for h in 0..24 {
            hours.push(HourRow {
                hour: (d0 + d) * 24 + h,
                provider: "aws".into(),
                pricing_category: "Standard".into(),
                list: usd("200"),
                effective: usd("200"),
                region: String::new(),
                sku: String::new(),
                quantity: usd("1"),
            });
        }
    }
    let existing = hourly_contract(
        "existing",
        Instrument::AwsComputeSavingsPlan,
        "500",
        Some("sp-1"),
    );
    let new = hourly_contract("new", Instrument::AwsComputeSavingsPlan, "100", None);
    let at = ts("2026-03-11");
    let both = status(&[existing, new.clone()], at, &days, &hours);
    let alone = status(&[new], at, &days, &hours);
    let (n, a) = (hourly_of(&both[1]), hourly_of(&alone[0]));
    assert_eq!(hourly_of(&both[0]).basis, "focus");
    // $100/h at 28 % covers 100 / 0.72 = $138.89/h of the $200/h left:
    // fully used, 240 h × $100 = $24,000 paid and used.
    assert_eq!(n.basis, "simulated");
    assert_eq!(n.hours, 240);
    assert_eq!(n.used, usd("24000"));
    assert_eq!(n.utilisation, Some(1.0));
    // Net: 240 × 138.888… − 24,000 = 9,333.33.
    assert_eq!(n.net_savings.unwrap().cents(), 933_333);
    // Coverage: 138.89 / 200.
    assert!((n.coverage.unwrap() - 100.0 / 0.72 / 200.0).abs() < 1e-9);
    // The existing plan changes nothing for the new one.
    assert_eq!((n.used, n.net_savings), (a.used, a.net_savings));
}

/// Defect 2: coverage is AWS Cost Explorer's, covered on-demand-equivalent
/// ÷ (covered + on-demand cost of eligible usage): not effective cost over
/// every usage row of the provider (Unused rows, S3).
#[test]
fn coverage_follows_the_cost_explorer_definition() {
    let d = ts("2026-03-01").day();
    let days = vec![
        // Covered: $1,000 on-demand-equivalent for $720; $80 unused.
        covered_row(d, "sp-1", "Used", "1000", "720", "EC2"),
        covered_row(d, "sp-1", "Unused", "0", "80", "EC2"),
        // On-demand EC2 the plan could have covered: $300.
        {
            let mut r = DayRow::usage(d, "aws", usd("300"), usd("300"));
            r.service = "EC2".into();
            r
        },
        // S3 is not eligible for a compute savings plan.
        {
            let mut r = DayRow::usage(d, "aws", usd("500"), usd("500"));
            r.service = "S3".into();
            r
        },
    ];
    let c = hourly_contract(
        "sp",
        Instrument::AwsComputeSavingsPlan,
        "33.33",
        Some("sp-1"),
    );
    let s = status(&[c], ts("2026-03-02"), &days, &[]);
    let h = hourly_of(&s[0]);
    // 1,000 / (1,000 + 300) = 76.92 %.
    assert!(
        (h.coverage.unwrap() - 1000.0 / 1300.0).abs() < 1e-12,
        "{:?}",
        h.coverage
    );
    assert!(h.coverage_definition.contains("Cost Explorer"));
    // Utilisation 720 / 800; net savings 1,000 − 800.
    assert!((h.utilisation.unwrap() - 0.9).abs() < 1e-12);
    assert_eq!(h.net_savings, Some(usd("200")));
}

fn hour_rows(agg: &skyward_ledger::aggregate::Aggregates) -> Vec<HourRow> {
    agg.hourly
        .iter()
        .map(|(k, v)| HourRow {
            hour: k.hour,
            provider: k.provider.clone(),
            pricing_category: k.pricing_category.clone(),
            list: v.list,
            effective: v.effective,
            region: k.region.clone(),
            sku: k.sku.clone(),
            quantity: v.quantity,
        })
        .collect()
}

fn fold(text: &str) -> skyward_ledger::aggregate::Aggregates {
    let mut f = skyward_ledger::aggregate::Folder::default();
    skyward_ledger::focus::read(text.as_bytes(), "t.csv", None, |c| f.add(&c)).unwrap();
    f.finish()
}

/// Defect 3: a row covering a day is spread over its 24 hours, not put in
/// its first hour.
#[test]
fn daily_rows_are_spread_over_their_hours() {
    let mut text = String::from(
        "BillingAccountId,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,PricingCategory\n",
    );
    for d in 1..=3 {
        text.push_str(&format!(
            "b1,2026-03-{d:02}T00:00:00Z,2026-03-{:02}T00:00:00Z,Usage,1200,1200,1200,Google Cloud,Standard\n",
            d + 1
        ));
    }
    // A row of $1,000 over one day: 24 pieces of 41.666… that add up exactly.
    text.push_str(
        "b1,2026-03-04T00:00:00Z,2026-03-05T00:00:00Z,Usage,1000,1000,1000,Google Cloud,Standard\n",
    );
    let agg = fold(&text);
    let hours = hour_rows(&agg);
    assert_eq!(hours.len(), 96);
    for h in &hours[..72] {
        assert_eq!(h.list, usd("50"));
    }
    let day4: Amount = hours[72..].iter().map(|h| h.list).sum();
    assert_eq!(day4, usd("1000"));
    assert!(agg.hourly.values().all(|s| s.spread_rows == 1));
    // Source rows are counted once.
    assert_eq!(agg.hourly.values().map(|s| s.rows).sum::<u64>(), 4);
    // $50/h flexible CUD at 25 %: fully used the first three days, saving
    // (50 − 37.50) × 72 = $900.
    let cud = Contract {
        start: ts("2026-03-01"),
        ..hourly_contract("cud", Instrument::GcpFlexibleCud, "50", None)
    };
    let s = status(&[cud], ts("2026-03-04"), &[], &hours);
    let h = hourly_of(&s[0]);
    assert_eq!(h.utilisation, Some(1.0));
    assert_eq!(h.net_savings, Some(usd("900")));
    // And the recommendation sees $50 every hour, not $1,200 once a day.
    let series = skyward_ledger::recommend::on_demand_series(&hours[..72], "gcp");
    assert_eq!(skyward_ledger::recommend::best_covers(&series, 0.25), 50.0);
}

/// A month-long row is spread over the days of its daily buckets too, and
/// a one-time purchase stays on its day.
#[test]
fn monthly_rows_spread_over_days_one_time_purchases_do_not() {
    let text = "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeFrequency,BilledCost,EffectiveCost,ProviderName\n\
2026-04-01T00:00:00Z,2026-05-01T00:00:00Z,Usage,Usage-Based,3000,3000,AWS\n\
2026-04-01T00:00:00Z,2026-05-01T00:00:00Z,Purchase,One-Time,900,0,AWS\n";
    let agg = fold(text);
    let usage: Vec<_> = agg
        .daily
        .iter()
        .filter(|(k, _)| k.category == "Usage")
        .collect();
    assert_eq!(usage.len(), 30);
    assert!(usage.iter().all(|(_, v)| v.billed == usd("100")));
    let purchase: Vec<_> = agg
        .daily
        .iter()
        .filter(|(k, _)| k.category == "Purchase")
        .collect();
    assert_eq!(purchase.len(), 1);
    assert_eq!(purchase[0].1.billed, usd("900"));
}

/// Defect 9: an unterminated quote is reported with its line once the field
/// passes 1 MiB, not after reading the whole input into one field.
#[test]
fn an_unterminated_quote_is_named_with_its_line() {
    let mut text = String::from(
        "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName\n\
2026-04-01T00:00:00Z,2026-04-02T00:00:00Z,Usage,1,1,AWS\n\
2026-04-01T00:00:00Z,2026-04-02T00:00:00Z,Usage,1,1,\"AWS\n",
    );
    for _ in 0..40_000 {
        text.push_str("2026-04-01T00:00:00Z,2026-04-02T00:00:00Z,Usage,1,1,AWS\n");
    }
    let e = skyward_ledger::focus::read(text.as_bytes(), "q.csv", None, |_| {}).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("unterminated quote") && m.contains("line 3"),
        "{m}"
    );
    assert!(matches!(
        e,
        skyward_ledger::focus::FocusError::Format { .. }
    ));
    // Quotes inside an unquoted field, and escaped quotes, are not openings.
    let ok = "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName,ServiceName\n\
2026-04-01T00:00:00Z,2026-04-02T00:00:00Z,Usage,1,1,AWS,a\"b\n\
2026-04-01T00:00:00Z,2026-04-02T00:00:00Z,Usage,1,1,AWS,\"say \"\"hi\"\"\"\n";
    assert_eq!(
        skyward_ledger::focus::parse(ok.as_bytes(), "ok.csv", None)
            .unwrap()
            .len(),
        2
    );
}
