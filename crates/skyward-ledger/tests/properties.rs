#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Properties of the ledger that must hold for any input.

use proptest::prelude::*;
use skyward_ledger::contracts::{
    Contract, Eligibility, HourlyTerms, Instrument, ShortfallRule, SpendTerms, Terms,
};
use skyward_ledger::focus::parse;
use skyward_ledger::status::{status, ContractStatus, DayRow, HourRow};
use skyward_ledger::{Amount, Timestamp};

fn start() -> Timestamp {
    Timestamp::parse("2026-01-01").unwrap()
}

fn day_row(day: i64, cents: i64, category: &str) -> DayRow {
    let a = Amount(i128::from(cents) * 10_000_000_000);
    let mut r = DayRow::usage(start().day() + day, "aws", a, a);
    r.category = category.into();
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn spend_status_invariants(
        spend in prop::collection::vec((0i64..400, 0i64..5_000_000, prop::sample::select(vec!["Usage", "Purchase", "Tax", "Credit", "Adjustment"])), 0..300),
        commit_dollars in 1i64..1_000_000_000,
        months in 1u32..96,
        at_day in 0i64..3_000,
    ) {
        let days: Vec<DayRow> = spend.iter().map(|(d, c, k)| day_row(*d, *c, k)).collect();
        let c = Contract {
            name: "p".into(),
            provider: "aws".into(),
            start: start(),
            end: start().plus_months(i64::from(months)),
            terms: Terms::Spend(SpendTerms { commit: Amount(i128::from(commit_dollars) * 1_000_000_000_000), discount_pct: 10.0, floors: vec![], shortfall: ShortfallRule::TermEnd, eligible: Eligibility::default() }),
        };
        let ContractStatus::Spend(s) = &status(&[c], start().plus_days(at_day), &days, &[])[0] else { panic!() };
        // burned + remaining = committed while under it; remaining never negative.
        prop_assert!(s.remaining >= Amount::ZERO);
        if s.burned <= s.committed {
            prop_assert_eq!(s.burned + s.remaining, s.committed);
        } else {
            prop_assert_eq!(s.remaining, Amount::ZERO);
        }
        if let Some(f) = &s.forecast {
            prop_assert!(f.expected_shortfall >= Amount::ZERO);
            prop_assert!((0.0..=1.0).contains(&f.shortfall_probability));
            prop_assert!(f.p10 <= f.p50 && f.p50 <= f.p90);
            prop_assert!(f.expected_shortfall <= s.committed);
        }
    }

    #[test]
    fn hourly_utilisation_and_coverage_are_shares(
        usage in prop::collection::vec(0u32..100_000, 1..500),
        commit_cents in 1u32..10_000_000,
        discount in 1.0f64..80.0,
        gcp in any::<bool>(),
    ) {
        let h0 = start().hour();
        let hours: Vec<HourRow> = usage.iter().enumerate().map(|(i, c)| HourRow {
            hour: h0 + i as i64,
            provider: "aws".into(),
            pricing_category: "Standard".into(),
            list: Amount(i128::from(*c) * 10_000_000_000),
            effective: Amount::ZERO,
            region: "us-east-1".into(),
            sku: "m5".into(),
            quantity: Amount(1_000_000_000_000),
        }).collect();
        let c = Contract {
            name: "sp".into(),
            provider: "aws".into(),
            start: start(),
            end: start().plus_months(12),
            terms: Terms::Hourly(HourlyTerms {
                instrument: if gcp { Instrument::GcpFlexibleCud } else { Instrument::AwsComputeSavingsPlan },
                commit_per_hour: Amount(i128::from(commit_cents) * 10_000_000_000),
                discount_pct: discount,
                commitment_id: None,
            }),
        };
        let at = Timestamp(start().0 + usage.len() as i64 * 3_600);
        let ContractStatus::Hourly(h) = &status(&[c], at, &[], &hours)[0] else { panic!() };
        prop_assert!(h.used >= Amount::ZERO && h.unused >= Amount::ZERO);
        prop_assert_eq!(h.used + h.unused, h.committed);
        if let Some(u) = h.utilisation { prop_assert!((0.0..=1.0 + 1e-12).contains(&u)); }
        if let Some(cv) = h.coverage { prop_assert!((0.0..=1.0 + 1e-12).contains(&cv)); }
    }

    /// No input makes the FOCUS parser panic: it returns rows or errors.
    #[test]
    fn focus_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let _ = parse(bytes.as_slice(), "fuzz.csv", Some("aws"));
    }

    #[test]
    fn focus_parser_never_panics_on_near_valid_rows(fields in prop::collection::vec("[-0-9a-zA-Z:.,\"TZ ]{0,30}", 5)) {
        let text = format!("ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost\n{}\n", fields.join(","));
        let _ = parse(text.as_bytes(), "fuzz.csv", Some("aws"));
    }
}
