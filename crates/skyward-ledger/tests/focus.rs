#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! FOCUS parsing and invariants on the specification's own examples and the
//! public 1,000-row sample (from shared/data when present), and on small
//! fixtures shipped in the repo.

use skyward_ledger::focus::{commitment_checks, list_cost_mismatches, parse, ChargeCategory};
use skyward_ledger::Amount;
use std::path::PathBuf;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/focus");
    p.is_dir().then_some(p)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn spec_commitment_examples_balance() {
    // Shipped copies of two spec scenarios (the folder in shared/ has all).
    for name in ["cd_100pct_flex_2_resources.csv", "cd_0pct_no_flex.csv"] {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        let charges = parse(text.as_bytes(), name, Some("example")).unwrap();
        let checks = commitment_checks(&charges);
        assert_eq!(checks.len(), 1, "{name}");
        assert_eq!(checks[0].balanced, Some(true), "{name}: {:?}", checks[0]);
    }
    let full = parse(
        std::fs::read_to_string(fixture("cd_100pct_flex_2_resources.csv"))
            .unwrap()
            .as_bytes(),
        "x",
        Some("e"),
    )
    .unwrap();
    let c = &commitment_checks(&full)[0];
    assert_eq!(
        (c.purchase_billed, c.used_effective, c.unused_effective),
        (
            Amount::parse("2").unwrap(),
            Amount::parse("2").unwrap(),
            Amount::ZERO
        )
    );
    assert_eq!(c.utilisation, Some(1.0));
    let zero = parse(
        std::fs::read_to_string(fixture("cd_0pct_no_flex.csv"))
            .unwrap()
            .as_bytes(),
        "x",
        Some("e"),
    )
    .unwrap();
    assert_eq!(commitment_checks(&zero)[0].utilisation, Some(0.0));
    assert!(list_cost_mismatches(&full).is_empty() && list_cost_mismatches(&zero).is_empty());
}

#[test]
fn every_spec_example_in_shared_data_balances() {
    let Some(dir) = shared() else {
        eprintln!("skipped: shared/data not present");
        return;
    };
    let mut checked = 0;
    for e in std::fs::read_dir(dir.join("spec-examples")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse(
            text.as_bytes(),
            &path.display().to_string(),
            Some("example"),
        );
        // Two of the specification's purchase scenarios end a charge period
        // at hour 30 ('2023-02-01T30:00:00Z'): invalid, and rejected with
        // the real line and column.
        let invalid = [
            (
                "commitment_discount_purchase_scenario_2.csv",
                ":4: ChargePeriodEnd",
            ),
            (
                "commitment_discount_purchase_scenario_3.csv",
                ":5: ChargePeriodEnd",
            ),
        ];
        if let Some((_, at)) = invalid
            .iter()
            .find(|(n, _)| path.file_name().is_some_and(|f| f == *n))
        {
            let e = parsed.unwrap_err().to_string();
            assert!(e.contains(at) && e.contains("T30:00:00Z"), "{e}");
            continue;
        }
        let charges = parsed.unwrap();
        for c in commitment_checks(&charges) {
            if let Some(b) = c.balanced {
                assert!(b, "{}: {c:?}", path.display());
                checked += 1;
            }
        }
        // ListCost = ListUnitPrice × PricingQuantity holds everywhere but on
        // line 4 of the 1-resource flexibility scenario, where the spec
        // prices 0.333 of a $3.00 hour at $3.00: it must be flagged.
        let mismatches = list_cost_mismatches(&charges);
        if path.file_name().is_some_and(|n| n == "one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource.csv") {
            assert_eq!(mismatches, vec![4], "{}", path.display());
        } else {
            assert!(mismatches.is_empty(), "{}: {mismatches:?}", path.display());
        }
    }
    assert!(checked >= 4, "only {checked} balanced commitments found");
}

#[test]
fn public_sample_parses_and_sums_exactly() {
    let Some(dir) = shared() else {
        eprintln!("skipped: shared/data not present");
        return;
    };
    let text = std::fs::read_to_string(dir.join("focus-1.0-sample.csv")).unwrap();
    let charges = parse(text.as_bytes(), "focus-1.0-sample.csv", None).unwrap();
    assert_eq!(charges.len(), 1000);
    let providers: std::collections::BTreeSet<_> =
        charges.iter().map(|c| c.provider.as_str()).collect();
    assert_eq!(
        providers.into_iter().collect::<Vec<_>>(),
        vec!["AWS", "Microsoft", "Oracle"]
    );
    assert_eq!(
        charges
            .iter()
            .filter(|c| c.category == ChargeCategory::Credit)
            .count(),
        1
    );
    // The exact sum equals a decimal sum done independently (Python's
    // decimal over the same column gives this figure).
    let billed: Amount = charges.iter().map(|c| c.billed_cost).sum();
    assert_eq!(
        billed,
        Amount::parse(include_str!("fixtures/sample-billed-total.txt").trim()).unwrap()
    );
}

#[test]
fn malformed_rows_are_named_by_line_and_column() {
    let header = "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName,BillingCurrency,CommitmentDiscountStatus\n";
    let cases = [
        (
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,abc,1,AWS,USD,\n",
            ":2: BilledCost",
        ),
        (
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usagee,1,1,AWS,USD,\n",
            ":2: ChargeCategory",
        ),
        (
            "2024-13-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1,1,AWS,USD,\n",
            ":2: ChargePeriodStart",
        ),
        (
            "2024-01-01T02:00:00Z,2024-01-01T01:00:00Z,Usage,1,1,AWS,USD,\n",
            "ends before",
        ),
        (
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1,1,AWS,EUR,\n",
            "only USD",
        ),
        (
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1,,AWS,USD,\n",
            "EffectiveCost: required",
        ),
        (
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1,1,AWS,USD,Maybe\n",
            "not Used or Unused",
        ),
        ("2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1\n", ":2:"),
    ];
    for (row, frag) in cases {
        let text = format!("{header}{row}");
        let e = parse(text.as_bytes(), "bill.csv", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(frag) && e.contains("bill.csv"), "{row} -> {e}");
    }
    let e = parse(
        "ChargePeriodStart,ChargeCategory\n".as_bytes(),
        "b.csv",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ChargePeriodEnd"), "{e}");
    let e = parse(
        "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost\n".as_bytes(),
        "b.csv",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--provider"), "{e}");
}

#[test]
fn line_numbers_survive_crlf_and_blank_lines() {
    let header = "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName,ChargeDescription";
    let good = "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,1,1,AWS,\"two\r\n\r\nlines\"";
    let bad = "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,Usage,x,1,AWS,plain";
    for (sep, blank) in [("\n", ""), ("\r\n", ""), ("\n", "\n"), ("\r\n", "\r\n\r\n")] {
        // header (1), good row spanning 3 lines (2-4), blanks, bad row.
        let text = format!("{header}{sep}{good}{sep}{blank}{bad}{sep}");
        let blank_lines = blank.matches('\n').count();
        let want = format!("f.csv:{}: BilledCost", 5 + blank_lines);
        let e = parse(text.as_bytes(), "f.csv", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&want), "{sep:?}/{blank:?}: {e} (wanted {want})");
    }
    let ok = format!("{header}\r\n{good}\r\n");
    let c = parse(ok.as_bytes(), "f.csv", None).unwrap();
    assert_eq!(c[0].line, 2);
}
