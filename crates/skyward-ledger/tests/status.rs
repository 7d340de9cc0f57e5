#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ledger status figures computed by hand.

use skyward_ledger::contracts::{
    CapacityTerms, Contract, Eligibility, Floor, HourlyTerms, Instrument, ShortfallRule,
    SpendTerms, Terms,
};
use skyward_ledger::status::{status, ContractStatus, DayRow, HourRow};
use skyward_ledger::{Amount, Timestamp};

fn usd(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

fn day(d: &str) -> i64 {
    Timestamp::parse(d).unwrap().day()
}

fn row(d: &str, provider: &str, category: &str, billed: &str) -> DayRow {
    let mut r = DayRow::usage(day(d), provider, usd(billed), usd(billed));
    r.category = category.into();
    r.region = "us-east-1".into();
    r
}

fn spend(commit: &str, floors: Vec<Floor>) -> Contract {
    let start = Timestamp::parse("2026-01-01").unwrap();
    Contract {
        name: "edp".into(),
        provider: "aws".into(),
        start,
        end: start.plus_months(24),
        terms: Terms::Spend(SpendTerms {
            commit: usd(commit),
            discount_pct: 10.0,
            floors,
            shortfall: ShortfallRule::TermEnd,
            eligible: Eligibility::default(),
        }),
    }
}

#[test]
fn spend_burn_down_by_hand() {
    // $1,000/day of usage for the 100 days Jan 1 – Apr 10 2026, plus a tax
    // row and a credit (neither burns) and another provider (ignored).
    let mut days = Vec::new();
    for i in 0..100 {
        let d = Timestamp::parse("2026-01-01")
            .unwrap()
            .plus_days(i)
            .date_string();
        days.push(row(&d, "aws", "Usage", "1000"));
    }
    days.push(row("2026-02-01", "aws", "Tax", "5000"));
    days.push(row("2026-02-01", "aws", "Credit", "-3000"));
    days.push(row("2026-02-01", "gcp", "Usage", "99999"));
    let c = spend(
        "1000000",
        vec![Floor {
            year: 1,
            commit: usd("400000"),
        }],
    );
    let at = Timestamp::parse("2026-04-11").unwrap();
    let ContractStatus::Spend(s) = &status(&[c], at, &days, &[])[0] else {
        panic!()
    };
    assert_eq!(s.elapsed_days, 100);
    assert_eq!(s.term_days, 730);
    assert_eq!(s.burned, usd("100000"));
    assert_eq!(s.remaining, usd("900000"));
    // Straight line: 1,000,000 × 100 / 730 = 136,986.30…
    assert_eq!(s.straight_line.to_string(), "$136,986.30");
    assert_eq!(s.vs_straight_line.to_string(), "-$36,986.30");
    assert_eq!(s.burn_rate_per_day, usd("1000"));
    // 900,000 over the 630 days left.
    assert_eq!(s.required_per_day.to_string(), "$1,428.57");
    // Constant history: every path burns 1,000 × 630 more = 730,000.
    let f = s.forecast.as_ref().unwrap();
    assert_eq!(
        (f.p10, f.p50, f.p90),
        (usd("730000"), usd("730000"), usd("730000"))
    );
    assert_eq!(f.expected_shortfall, usd("270000"));
    assert_eq!(f.shortfall_probability, 1.0);
    let fl = &s.floors[0];
    assert_eq!(
        (fl.year, fl.burned_in_year, fl.remaining_to_floor),
        (1, usd("100000"), usd("300000"))
    );
    // Year 1 ends 2027-01-01: 265 more days at 1,000 = 365,000 → 35,000 short.
    assert_eq!(
        fl.forecast_in_year.as_ref().unwrap().expected_shortfall,
        usd("35000")
    );
}

#[test]
fn forecast_is_deterministic_and_ordered() {
    let mut days = Vec::new();
    for i in 0..120 {
        let d = Timestamp::parse("2026-01-01")
            .unwrap()
            .plus_days(i)
            .date_string();
        let v = 500 + (i * 7919 % 1000);
        days.push(row(&d, "aws", "Usage", &v.to_string()));
    }
    let at = Timestamp::parse("2026-05-01").unwrap();
    let a = status(&[spend("1000000", vec![])], at, &days, &[]);
    let b = status(&[spend("1000000", vec![])], at, &days, &[]);
    let (ContractStatus::Spend(x), ContractStatus::Spend(y)) = (&a[0], &b[0]) else {
        panic!()
    };
    let (fx, fy) = (x.forecast.as_ref().unwrap(), y.forecast.as_ref().unwrap());
    assert_eq!((fx.p10, fx.p50, fx.p90), (fy.p10, fy.p50, fy.p90));
    assert!(fx.p10 <= fx.p50 && fx.p50 <= fx.p90 && fx.p10 < fx.p90);
    assert!(
        fx.expected_shortfall >= Amount::ZERO && (0.0..=1.0).contains(&fx.shortfall_probability)
    );
}

fn hourly(
    name: &str,
    provider: &str,
    instrument: Instrument,
    commit: &str,
    pct: f64,
    id: Option<&str>,
) -> Contract {
    let start = Timestamp::parse("2026-01-01").unwrap();
    Contract {
        name: name.into(),
        provider: provider.into(),
        start,
        end: start.plus_months(12),
        terms: Terms::Hourly(HourlyTerms {
            instrument,
            commit_per_hour: usd(commit),
            discount_pct: pct,
            commitment_id: id.map(String::from),
        }),
    }
}

fn hour_rows(provider: &str, lists: &[&str]) -> Vec<HourRow> {
    let h0 = Timestamp::parse("2026-01-01").unwrap().hour();
    lists
        .iter()
        .enumerate()
        .map(|(i, l)| HourRow {
            hour: h0 + i as i64,
            provider: provider.into(),
            pricing_category: "Standard".into(),
            list: usd(l),
            effective: usd(l),
            region: "us-east-1".into(),
            sku: "m5".into(),
            quantity: usd("1"),
        })
        .collect()
}

#[test]
fn savings_plans_apply_in_aws_order_hour_by_hour() {
    // Four hours of on-demand spend: 100, 50, 0, 200.
    let hours = hour_rows("aws", &["100", "50", "0", "200"]);
    // EC2 Instance SP: $30/h at 40% off covers $50 of list per hour; applied first.
    // Compute SP: $45/h at 25% off covers $60 of list per hour; gets the rest.
    let ec2 = hourly(
        "ec2-sp",
        "aws",
        Instrument::AwsEc2InstanceSavingsPlan,
        "30",
        40.0,
        None,
    );
    let compute = hourly(
        "compute-sp",
        "aws",
        Instrument::AwsComputeSavingsPlan,
        "45",
        25.0,
        None,
    );
    let at = Timestamp::parse("2026-01-01T04:00:00Z").unwrap();
    let out = status(&[compute, ec2], at, &[], &hours);
    let get = |name: &str| match out
        .iter()
        .find(|s| matches!(s, ContractStatus::Hourly(h) if h.name == name))
    {
        Some(ContractStatus::Hourly(h)) => h.clone(),
        _ => panic!(),
    };
    let e = get("ec2-sp");
    // Covered list per hour: 50, 50, 0, 50 = 150 of 350; fee used 30+30+0+30 = 90 of 120.
    assert_eq!(
        (e.hours, e.committed, e.used, e.unused),
        (4, usd("120"), usd("90"), usd("30"))
    );
    assert_eq!(e.utilisation, Some(0.75));
    assert!((e.coverage.unwrap() - 150.0 / 350.0).abs() < 1e-12);
    assert_eq!(e.net_savings, Some(usd("30")));
    let c = get("compute-sp");
    // Left after EC2 SP: 50, 0, 0, 150 → covered 50, 0, 0, 60 = 110; fee used 37.5 + 45 = 82.5 of 180.
    assert_eq!((c.committed, c.used), (usd("180"), usd("82.5")));
    assert!((c.coverage.unwrap() - 110.0 / 350.0).abs() < 1e-12);
    assert_eq!(c.net_savings, Some(usd("-70")));
}

#[test]
fn gcp_flexible_cud_status_uses_the_discounted_fee() {
    // $50/h of on-demand-equivalent at 25% off: fee $37.50/h; two hours of $80 usage.
    let hours = hour_rows("gcp", &["80", "80"]);
    let cud = hourly("cud", "gcp", Instrument::GcpFlexibleCud, "50", 25.0, None);
    let at = Timestamp::parse("2026-01-01T02:00:00Z").unwrap();
    let ContractStatus::Hourly(h) = &status(&[cud], at, &[], &hours)[0] else {
        panic!()
    };
    assert_eq!(
        (h.fee_per_hour, h.committed, h.used),
        (usd("37.50"), usd("75"), usd("75"))
    );
    assert_eq!(h.coverage, Some(100.0 / 160.0));
    // Saved: $100 of list covered for $75.
    assert_eq!(h.net_savings, Some(usd("25")));
}

#[test]
fn focus_rows_give_actual_utilisation() {
    let mut used = row("2026-01-05", "aws", "Usage", "0");
    used.commitment_id = "sp-1".into();
    used.commitment_status = "Used".into();
    used.effective = usd("75");
    used.list = usd("100");
    let mut unused = used.clone();
    unused.commitment_status = "Unused".into();
    unused.effective = usd("25");
    unused.list = Amount::ZERO;
    let mut od = row("2026-01-05", "aws", "Usage", "100");
    od.effective = usd("100");
    let sp = hourly(
        "sp",
        "aws",
        Instrument::AwsComputeSavingsPlan,
        "100",
        25.0,
        Some("sp-1"),
    );
    let at = Timestamp::parse("2026-01-06").unwrap();
    let ContractStatus::Hourly(h) = &status(&[sp], at, &[used, unused, od], &[])[0] else {
        panic!()
    };
    assert_eq!(h.basis, "focus");
    assert_eq!(
        (h.used, h.unused, h.utilisation),
        (usd("75"), usd("25"), Some(0.75))
    );
    // Coverage (Cost Explorer): $100 on-demand-equivalent covered of
    // $100 covered + $100 on-demand; Unused rows are in neither.
    assert_eq!(h.coverage, Some(100.0 / 200.0));
}

#[test]
fn capacity_is_paid_whether_used_or_not() {
    let start = Timestamp::parse("2026-01-01").unwrap();
    let c = Contract {
        name: "gb200".into(),
        provider: "azure".into(),
        start,
        end: start.plus_months(36),
        terms: Terms::Capacity(CapacityTerms {
            region: "eastus".into(),
            sku: "ND_GB200_v6".into(),
            units: 72,
            rate_per_unit_hour: usd("42"),
            commitment_id: None,
        }),
    };
    let ContractStatus::Capacity(s) =
        &status(&[c], Timestamp::parse("2026-01-11").unwrap(), &[], &[])[0]
    else {
        panic!()
    };
    // 72 × $42 × 240 h.
    assert_eq!((s.hours, s.paid, s.used), (240, usd("725760"), None));
}

#[test]
fn aws_order_reserved_instances_then_ec2_instance_sp_then_compute_sp() {
    // One hour: 3 × p5.48xlarge at $55.04 ($165.12) and $100 of other usage.
    let h0 = Timestamp::parse("2026-01-01").unwrap().hour();
    let hours = vec![
        HourRow {
            hour: h0,
            provider: "aws".into(),
            pricing_category: "Standard".into(),
            list: usd("165.12"),
            effective: usd("165.12"),
            region: "us-east-1".into(),
            sku: "p5.48xlarge".into(),
            quantity: usd("3"),
        },
        HourRow {
            hour: h0,
            provider: "aws".into(),
            pricing_category: "Standard".into(),
            list: usd("100"),
            effective: usd("100"),
            region: "us-west-2".into(),
            sku: "m7i.large".into(),
            quantity: usd("40"),
        },
    ];
    let start = Timestamp::parse("2026-01-01").unwrap();
    let ri = Contract {
        name: "p5-ri".into(),
        provider: "aws".into(),
        start,
        end: start.plus_months(12),
        terms: Terms::Capacity(CapacityTerms {
            region: "us-east-1".into(),
            sku: "p5.48xlarge".into(),
            units: 2,
            rate_per_unit_hour: usd("35"),
            commitment_id: None,
        }),
    };
    // EC2 Instance SP covers $60 of list for $36; Compute SP covers $200 for $150.
    let ec2 = hourly(
        "ec2-sp",
        "aws",
        Instrument::AwsEc2InstanceSavingsPlan,
        "36",
        40.0,
        None,
    );
    let compute = hourly(
        "compute-sp",
        "aws",
        Instrument::AwsComputeSavingsPlan,
        "150",
        25.0,
        None,
    );
    let at = Timestamp::parse("2026-01-01T01:00:00Z").unwrap();
    let out = status(&[compute, ri, ec2], at, &[], &hours);
    let find = |name: &str| {
        out.iter()
            .find(|s| match s {
                ContractStatus::Hourly(h) => h.name == name,
                ContractStatus::Capacity(c) => c.name == name,
                ContractStatus::Spend(_) => false,
            })
            .unwrap()
            .clone()
    };
    // 1. The RI takes 2 of the 3 p5 instance-hours ($110.08 of list).
    let ContractStatus::Capacity(r) = find("p5-ri") else {
        panic!()
    };
    assert_eq!(
        (r.basis.as_ref(), r.paid, r.used, r.utilisation),
        ("simulated", usd("70"), Some(usd("70")), Some(1.0))
    );
    // 2. $155.04 is left ($55.04 p5 + $100); the EC2 Instance SP covers $60 of it.
    let ContractStatus::Hourly(e) = find("ec2-sp") else {
        panic!()
    };
    assert_eq!((e.used, e.net_savings), (usd("36"), Some(usd("24"))));
    // 3. The Compute SP gets the remaining $95.04 of its $200: uses $71.28 of $150.
    let ContractStatus::Hourly(c) = find("compute-sp") else {
        panic!()
    };
    assert_eq!((c.used, c.unused), (usd("71.28"), usd("78.72")));
    // Coverage as Cost Explorer defines it for Savings Plans: usage the RI
    // covered ($110.08) is in neither term: 95.04 / (265.12 − 110.08).
    assert!((c.coverage.unwrap() - 95.04 / 155.04).abs() < 1e-12);
}
