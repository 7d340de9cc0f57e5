#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The live commitments the simulated core reads are computed from
//! charges summed over the sites that the same contracts admit. The
//! ledger's answer from those must equal its answer from one row per site
//! and day, at every point of a run.

use skyward_ledger::contracts::Terms;
use skyward_ledger::live::live;
use skyward_ledger::status::DayRow;
use skyward_ledger::Amount;
use skyward_sim::run::{live_classes, run_keeping, Keep};
use skyward_sim::Policy;

/// Two Azure contracts admit different regions and an AWS one admits H100
/// only, so the seven sites fall in three classes and two sites in none.
const YAML: &str = r#"
name: classes
start: 2026-01-01
years: 1
options: {cycle_min_gap_s: 10}
sites:
  - {name: az-east-a, provider: azure, region: eastus, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 7}
  - {name: az-east-b, provider: azure, region: eastus, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 7.5}
  - {name: az-west, provider: azure, region: westeurope, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 6.5}
  - {name: aws-h100-a, provider: aws, region: us-east-1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 6}
  - {name: aws-h100-b, provider: aws, region: us-west-2, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 6.2}
  - {name: aws-b200, provider: aws, region: us-east-1, accelerator: B200, accelerators: 8, price_usd_per_accelerator_hour: 9}
  - {name: gcp-h100, provider: gcp, region: us-central1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 5.5}
demand:
  - {name: jobs, kind: batch, arrivals_per_hour: 8, accelerators: [H100:2, B200:2], hours: {dist: exponential, mean: 3}}
contracts:
  - {name: macc, kind: spend, provider: azure, start: 2026-01-01, term_years: 1, commit_usd: 60000, discount_pct: 20}
  - {name: macc-east, kind: spend, provider: azure, start: 2026-02-01, term_years: 1, commit_usd: 30000, discount_pct: 25, eligible: {regions: eastus}}
  - {name: edp, kind: spend, provider: aws, start: 2026-01-01, term_years: 1, commit_usd: 90000, discount_pct: 15, eligible: {skus: H100}}
"#;

#[test]
fn live_commitments_from_summed_rows_equal_those_from_every_site() {
    let sc = skyward_spec::scenario::parse(YAML, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let contracts: Vec<_> = sc
        .contracts
        .iter()
        .filter(|c| matches!(c.terms, Terms::Spend(_)))
        .cloned()
        .collect();
    assert_eq!(
        live_classes(&sc, &contracts),
        vec![Some(0), Some(0), Some(1), Some(2), Some(2), None, None]
    );
    let keep = Keep {
        charges: true,
        placements: false,
    };
    let kept = run_keeping(&sc, &Policy::Skyward, 7, keep, &mut |_| {});
    let rows: Vec<DayRow> = kept.charges.iter().map(|c| c.row.clone()).collect();
    assert!(
        rows.len() > 2 * kept.live_rows.len(),
        "{} rows, {} summed",
        rows.len(),
        kept.live_rows.len()
    );
    let mut checked = 0;
    for day in (0..365).step_by(9) {
        for hour in [0, 13] {
            let at = sc.timestamp((day * 24 + hour) * 3_600_000);
            let full = live(&contracts, at, &rows);
            let summed = live(&contracts, at, &kept.live_rows);
            assert_eq!(full, summed, "day {day} hour {hour}");
            checked += full.iter().filter(|l| l.burned > Amount::ZERO).count();
        }
    }
    assert!(checked > 100, "only {checked} commitments had burned");
}
