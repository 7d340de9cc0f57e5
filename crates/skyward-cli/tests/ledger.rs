#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `skyward ledger …` end to end through the binary, with a real SQLite file.

mod common;
use assert_cmd::Command;
use common::{example, json_ok, ok};
use serde_json::Value;

/// 40 days of seeded synthetic FOCUS data, written by the binary itself.
fn generated(dir: &std::path::Path) -> String {
    let path = dir.join("focus-40d.csv");
    ok(Command::cargo_bin("skyward").unwrap().args([
        "ledger",
        "generate",
        "--days",
        "40",
        "--rows-per-hour",
        "1",
        "-O",
        &path.display().to_string(),
    ]));
    path.display().to_string()
}

fn skyward(db: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("skyward").unwrap();
    c.env("SKYWARD_DB", db);
    c
}

#[test]
fn import_status_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let file = generated(dir.path());
    let v: Value = json_ok(skyward(&db).args(["ledger", "import", &file, "--output", "json"]));
    let rows = v["rows"].as_u64().unwrap();
    assert!(rows > 3_000);
    // The savings plan in the data balances: Used + Unused = purchases.
    let cd = &v["commitments"][0];
    assert_eq!(cd["balanced"], true, "{cd}");
    // Same file again: no-op, exit 0, nothing added.
    let again = skyward(&db)
        .args(["ledger", "import", &file])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already imported"));
    let list = skyward(&db)
        .args(["ledger", "imports", "--output", "json"])
        .output()
        .unwrap();
    let imports: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(imports.as_array().unwrap().len(), 1);

    let s: Value = json_ok(skyward(&db).args([
        "ledger",
        "status",
        "--contracts",
        &example("contracts.yaml"),
        "--output",
        "json",
    ]));
    assert_eq!(s["at"], "2026-02-10");
    let by = |name: &str| {
        s["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let edp = by("aws-edp");
    // burned + remaining = committed while under the commitment.
    let (b, r, c) = (
        edp["burned"].as_f64().unwrap(),
        edp["remaining"].as_f64().unwrap(),
        edp["committed"].as_f64().unwrap(),
    );
    assert!((b + r - c).abs() < 0.011, "{edp}");
    assert!(edp["forecast"]["p10"].as_f64().unwrap() <= edp["forecast"]["p90"].as_f64().unwrap());
    let sp = by("aws-compute-sp");
    assert_eq!(sp["basis"], "focus");
    let u = sp["utilisation"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&u));
    assert_eq!(by("gcp-flex-cud")["fee_per_hour"], 360.0);
    // analyze: a contract from the file, and a what-if.
    let an: Value = json_ok(skyward(&db).args([
        "ledger",
        "analyze",
        "aws-edp",
        "--contracts",
        &example("contracts.yaml"),
        "--output",
        "json",
    ]));
    assert_eq!(an["break_even_burn_pct"], 88.0);
    assert!(
        an["projected_list_spend_p10"].as_f64().unwrap()
            <= an["projected_list_spend_p90"].as_f64().unwrap()
    );
    let wi = skyward(&db)
        .args([
            "ledger",
            "analyze",
            "--what-if",
            "--provider",
            "aws",
            "--commit-usd",
            "1e12",
            "--term-years",
            "1",
            "--discount-pct",
            "10",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let wi: Value = serde_json::from_slice(&wi.stdout).unwrap();
    assert_eq!(wi["shortfall_probability"], 1.0, "{wi}");
    assert!(wi["expected_savings"].as_f64().unwrap() < 0.0);
    // recommend: every method, side by side, evaluated on the same scenarios.
    let rc: Value = json_ok(skyward(&db).args([
        "ledger",
        "recommend",
        "--provider",
        "aws",
        "--discount-pct",
        "28",
        "--scenarios",
        "20",
        "--output",
        "json",
    ]));
    let methods: Vec<&str> = rc["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "aws-cost-explorer",
            "aws-cost-explorer",
            "aws-cost-explorer",
            "azure",
            "azure",
            "azure",
            "skyward-saa"
        ]
    );
    for r in rc["recommendations"].as_array().unwrap() {
        let (cov, fee) = (
            r["covers_usd_per_hour"].as_f64().unwrap(),
            r["fee_usd_per_hour"].as_f64().unwrap(),
        );
        assert!((fee - 0.72 * cov).abs() < 0.01, "{r}");
    }
    // Spend commitment sizing under discount tiers: exactly one best option.
    let sp: Value = json_ok(skyward(&db).args([
        "ledger",
        "recommend",
        "--provider",
        "aws",
        "--discount-tiers",
        "1e5:3,1e6:8",
        "--term-years",
        "1",
        "--output",
        "json",
    ]));
    assert_eq!(
        sp["options"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["best"] == true)
            .count(),
        1
    );
    let bad_tiers = skyward(&db)
        .args([
            "ledger",
            "recommend",
            "--provider",
            "aws",
            "--discount-tiers",
            "lots:5",
        ])
        .output()
        .unwrap();
    assert_eq!(bad_tiers.status.code(), Some(2));
    let bad = skyward(&db)
        .args([
            "ledger",
            "recommend",
            "--provider",
            "nobody",
            "--discount-pct",
            "28",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    // plan --ledger: commitments behind schedule count as already paid, and the
    // plan with the ledger is never dearer than the one made without it.
    let pl: Value = json_ok(skyward(&db).args([
        "plan",
        &example("use-it-or-lose-it.yaml"),
        "--without-contracts",
        "--ledger",
        &example("contracts.yaml"),
        "--output",
        "json",
    ]));
    let ledger = &pl["ledger"];
    assert!(
        !ledger["commitments"].as_array().unwrap().is_empty(),
        "{ledger}"
    );
    assert!(
        ledger["baseline_under_ledger_usd"].as_f64().unwrap()
            >= pl["total_cost_usd"].as_f64().unwrap() - 0.01
    );
    // The HTML report: self-contained, one burn-down chart per spend commitment.
    let html = dir.path().join("report.html");
    ok(skyward(&db).args([
        "ledger",
        "report",
        "--contracts",
        &example("contracts.yaml"),
        "--html",
        &html.display().to_string(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.trim_end().ends_with("</html>"));
    assert_eq!(
        page.matches("burn-down over the term</text>").count(),
        2,
        "one full-term chart per spend commitment"
    );
    assert_eq!(
        page.matches("last 90 days and next 180</text>").count(),
        2,
        "one recent-window chart per spend commitment"
    );
    assert!(page.contains("daily utilisation") && page.contains("skyward-saa"));
    assert!(
        !page.contains("<script") && !page.contains("http://")
            || page.matches("http://").count()
                == page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    // Table output renders.
    let t = skyward(&db)
        .args([
            "ledger",
            "status",
            "--contracts",
            &example("contracts.yaml"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("aws-compute-savings-plan") && text.contains("P50 AT END"),
        "{text}"
    );
}

#[test]
fn bad_inputs_fail_cleanly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName\n2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,Usage,1,1,AWS\n2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,Usage,oops,1,AWS\n").unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &bad.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:3: BilledCost"), "{err}");
    // Nothing was stored: status has no data to report on.
    let st = skyward(&db)
        .args([
            "ledger",
            "status",
            "--contracts",
            &example("contracts.yaml"),
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("no billing data"));
    // A contracts file with an error names its line and field.
    let c = dir.path().join("c.yaml");
    std::fs::write(&c, "contracts:\n  - name: x\n    kind: hourly\n    provider: aws\n    start: 2026-01-01\n    term_years: 1\n    instrument: aws-magic-plan\n    commit_usd_per_hour: 5\n").unwrap();
    let out = skyward(&db)
        .args([
            "ledger",
            "status",
            "--contracts",
            &c.display().to_string(),
            "--at",
            "2026-02-01",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.yaml:7") && err.contains("contracts[0].instrument"),
        "{err}"
    );
    // An overlapping re-export is refused without --replace, exit 2.
    let good = generated(dir.path());
    assert!(skyward(&db)
        .args(["ledger", "import", &good])
        .output()
        .unwrap()
        .status
        .success());
    let copy = dir.path().join("re-export.csv");
    let mut text = std::fs::read_to_string(&good).unwrap();
    text.push('\n');
    std::fs::write(&copy, text).unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &copy.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));
    assert!(skyward(&db)
        .args(["ledger", "import", &copy.display().to_string(), "--replace"])
        .output()
        .unwrap()
        .status
        .success());
}

/// Issue 11, defect 9: hostile bytes exit 2 with a message naming the
/// problem, in bounded memory; a negative BilledCost on a Usage row is
/// imported with a warning naming its line.
#[test]
fn hostile_files_exit_2_and_odd_rows_warn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let header =
        "ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ProviderName\n";
    // A header, an unmatched quote, then 30 MB of text.
    let quote = dir.path().join("quote.csv");
    let mut text = format!("{header}2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,Usage,\"1,1,AWS\n");
    let filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit\n".repeat(550_000);
    text.push_str(&filler);
    std::fs::write(&quote, &text).unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &quote.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quote.csv") && err.contains("unterminated quote") && err.contains("line 2"),
        "{err}"
    );
    // Random bytes (a fixed xorshift stream): exit 2, not 1.
    let noise = dir.path().join("noise.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..5_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&noise, bytes).unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &noise.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("noise.bin"));
    // A negative BilledCost on a Usage row: imported, with a warning.
    let neg = dir.path().join("neg.csv");
    std::fs::write(&neg, format!("{header}2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,Usage,5,5,AWS\n2026-01-01T01:00:00Z,2026-01-01T02:00:00Z,Usage,-3,-3,AWS\n")).unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &neg.display().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ")
            && err.contains("neg.csv: line 3")
            && err.contains("negative BilledCost"),
        "{err}"
    );
}

#[test]
fn a_plan_exported_as_focus_imports_back_to_the_same_bill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("own.db");
    let csv = dir.path().join("own.csv");
    ok(skyward(&db).args([
        "ledger",
        "export",
        "--format",
        "focus",
        "--from-plan",
        &example("fleet.yaml"),
        "--start",
        "2026-06-01",
        "-O",
        &csv.display().to_string(),
    ]));
    ok(skyward(&db).args([
        "ledger",
        "import",
        &csv.display().to_string(),
        "--output",
        "json",
    ]));
    let plan = skyward(&db)
        .args(["plan", &example("fleet.yaml"), "--output", "json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    // What the plan says each provider is billed before commitments (the
    // discounted spend), plus the fees of its reserved pools over the
    // plan's horizon, is what the export bills, per provider.
    let c = dir.path().join("c.yaml");
    let mut yaml = String::from("contracts:\n");
    for p in plan["providers"].as_array().unwrap() {
        yaml.push_str(&format!("  - {{name: {n}, kind: spend, provider: {n}, start: 2026-06-01, term_months: 12, commit_usd: 1}}\n", n = p["provider"].as_str().unwrap()));
    }
    // Each pool as a capacity commitment read from its FOCUS rows.
    let pools = plan["reserved"].as_array().unwrap();
    assert!(!pools.is_empty());
    for r in pools {
        yaml.push_str(&format!(
            "  - {{name: pool-{n}, kind: capacity, provider: {p}, region: {g}, sku: {k}, units: {u}, rate_usd_per_unit_hour: {rate}, start: 2026-06-01, term_months: 12, commitment_id: {n}}}\n",
            n = r["name"].as_str().unwrap(),
            p = r["provider"].as_str().unwrap(),
            g = r["region"].as_str().unwrap(),
            k = r["sku"].as_str().unwrap(),
            u = r["nodes"],
            rate = r["prepaid_usd_per_hour"].as_f64().unwrap() / r["nodes"].as_f64().unwrap(),
        ));
    }
    std::fs::write(&c, yaml).unwrap();
    let st: Value = json_ok(skyward(&db).args([
        "ledger",
        "status",
        "--contracts",
        &c.display().to_string(),
        "--at",
        "2026-12-31",
        "--output",
        "json",
    ]));
    for p in plan["providers"].as_array().unwrap() {
        let name = p["provider"].as_str().unwrap();
        let burned = st["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()["burned"]
            .as_f64()
            .unwrap();
        let fees: f64 = pools
            .iter()
            .filter(|r| r["provider"] == name)
            .map(|r| {
                r["prepaid_usd_per_hour"].as_f64().unwrap()
                    * r["horizon_hours"].as_f64().unwrap().ceil()
            })
            .sum();
        let want = p["discounted_spend_usd"].as_f64().unwrap() + fees;
        assert!(
            (burned - want).abs() <= 0.02,
            "{name}: ledger {burned} vs plan {want}"
        );
    }
    // Issue 11, defect 10: the export carries Purchase, Used and Unused
    // rows, so a pool's utilisation read back is the plan's (was 100 %
    // always: reserved usage at EffectiveCost 0, no Unused rows).
    for r in pools {
        let name = format!("pool-{}", r["name"].as_str().unwrap());
        let s = st["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name.as_str())
            .unwrap();
        assert_eq!(s["basis"], "focus", "{s}");
        let got = s["utilisation"].as_f64().unwrap();
        let want = r["utilisation_over_horizon_pct"].as_f64().unwrap() / 100.0;
        assert!(
            want < 1.0,
            "the example should leave a pool partly idle: {r}"
        );
        assert!(
            (got - want).abs() < 1e-6,
            "{name}: ledger {got} vs plan {want}"
        );
    }
}

/// Issue 11: commitments are visible with no contracts file (from the
/// data), and contracts are stored, versioned objects.
#[test]
fn commitments_without_a_contracts_file_and_stored_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let file = generated(dir.path());
    ok(skyward(&db).args(["ledger", "import", &file]));
    let s: Value = json_ok(skyward(&db).args(["ledger", "status", "--output", "json"]));
    let found = s["commitments_in_data"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{s}");
    let sp = &found[0];
    assert!(sp["commitment_id"]
        .as_str()
        .unwrap()
        .contains("savingsplan"));
    let u = sp["utilisation"].as_f64().unwrap();
    assert!(u > 0.0 && u < 1.0, "{sp}");
    // used + unused = what was purchased (the generator balances them).
    let (used, unused, bought) = (
        sp["used"].as_f64().unwrap(),
        sp["unused"].as_f64().unwrap(),
        sp["purchased"].as_f64().unwrap(),
    );
    assert!(used + unused > 0.0 && bought > 0.0);
    // Apply, apply again (no new version), change, list, history.
    let v: Value = json_ok(skyward(&db).args([
        "contracts",
        "apply",
        &example("contracts.yaml"),
        "--output",
        "json",
    ]));
    assert_eq!(
        (v["version"].as_i64(), v["changed"].as_bool()),
        (Some(1), Some(true))
    );
    let v: Value = json_ok(skyward(&db).args([
        "contracts",
        "apply",
        &example("contracts.yaml"),
        "--output",
        "json",
    ]));
    assert_eq!(
        (v["version"].as_i64(), v["changed"].as_bool()),
        (Some(1), Some(false))
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "contracts:\n  - name: x\n    kind: spend\n").unwrap();
    let out = skyward(&db)
        .args(["contracts", "apply", &bad.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml"));
    let mut text = std::fs::read_to_string(example("contracts.yaml")).unwrap();
    text.push_str("\n# amended\n");
    let amended = dir.path().join("amended.yaml");
    std::fs::write(&amended, text).unwrap();
    let v: Value = json_ok(skyward(&db).args([
        "contracts",
        "apply",
        &amended.display().to_string(),
        "--output",
        "json",
    ]));
    assert_eq!(v["version"].as_i64(), Some(2));
    let h: Value = json_ok(skyward(&db).args(["contracts", "history", "--output", "json"]));
    assert_eq!(h.as_array().unwrap().len(), 2);
    let l: Value =
        json_ok(skyward(&db).args(["contracts", "list", "--at-version", "1", "--output", "json"]));
    assert_eq!(l["version"].as_i64(), Some(1));
    // Status reads the stored contracts when no file is given.
    let s: Value = json_ok(skyward(&db).args(["ledger", "status", "--output", "json"]));
    assert!(
        s["contracts_source"].as_str().unwrap().contains("v2"),
        "{}",
        s["contracts_source"]
    );
    assert_eq!(s["contracts"].as_array().unwrap().len(), 5);
    // The inventory: a calendar, soonest end first; renewal on the same
    // terms costs what the term cost; an hourly gap is its net savings per
    // hour × 720.
    let inv: Value = json_ok(skyward(&db).args(["ledger", "inventory", "--output", "json"]));
    let items = inv["commitments"].as_array().unwrap();
    let left: Vec<i64> = items
        .iter()
        .filter_map(|i| i["days_left"].as_i64())
        .collect();
    assert!(left.windows(2).all(|w| w[0] <= w[1]), "{left:?}");
    let cud = items.iter().find(|i| i["name"] == "gcp-flex-cud").unwrap();
    assert_eq!(cud["renewal_cost"], cud["term_cost"]);
    let st = s["contracts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gcp-flex-cud")
        .unwrap();
    let want = st["net_savings"].as_f64().unwrap() / st["hours"].as_f64().unwrap() * 720.0;
    assert!(
        (cud["monthly_gap"].as_f64().unwrap() - want).abs() < 0.01,
        "{cud} vs {want}"
    );
}

/// Issue 11: `ledger backtest` realises every method's recommendations on
/// the stored history and reports them against the hindsight optimum.
#[test]
fn backtest_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let path = dir.path().join("focus-160d.csv");
    ok(Command::cargo_bin("skyward").unwrap().args([
        "ledger",
        "generate",
        "--days",
        "160",
        "--rows-per-hour",
        "1",
        "-O",
        &path.display().to_string(),
    ]));
    ok(skyward(&db).args(["ledger", "import", &path.display().to_string()]));
    let v: Value = json_ok(skyward(&db).args([
        "ledger",
        "backtest",
        "--provider",
        "aws",
        "--discount-pct",
        "28",
        "--horizon-days",
        "30",
        "--step-days",
        "30",
        "--min-history-days",
        "60",
        "--scenarios",
        "20",
        "--output",
        "json",
    ]));
    let b = &v["backtest"];
    // Origins at days 60, 90, 120 (each with 30 days after it).
    assert_eq!(b["origins"], 3, "{b}");
    let methods = b["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 7);
    for m in methods {
        let (r, h) = (
            m["realised_savings"].as_f64().unwrap(),
            m["hindsight_savings"].as_f64().unwrap(),
        );
        // Nothing beats hindsight (same hours, best fixed commitment).
        assert!(r <= h + 0.01, "{m}");
        assert!((0.0..=1.0).contains(&m["band_coverage"].as_f64().unwrap()));
    }
    // Too little history: a clear error, exit 2.
    let out = skyward(&db)
        .args([
            "ledger",
            "backtest",
            "--provider",
            "aws",
            "--discount-pct",
            "28",
            "--min-history-days",
            "3000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs"));
}

/// Issue 11: breakdowns by account and tag, with the unused part of a
/// commitment shown back in proportion to the covered on-demand cost.
#[test]
fn breakdown_and_showback_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let csv = dir.path().join("tags.csv");
    let h = "BillingAccountId,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,ServiceName,SkuId,CommitmentDiscountId,CommitmentDiscountStatus,Tags\n";
    let rows = [
        // Team a: $100 on-demand-equivalent covered for $72.
        r#"111,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z,Usage,0,72,100,AWS,EC2,p5.48xlarge,sp-1,Used,"{""team"":""a""}""#,
        // Team b: $50 covered for $36, and $20 on-demand.
        r#"222,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z,Usage,0,36,50,AWS,EC2,p4d.24xlarge,sp-1,Used,"{""team"":""b"",""env"":""prod""}""#,
        r#"222,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z,Usage,20,20,20,AWS,EC2,p4d.24xlarge,,,"{""env"":""prod"",""team"":""b""}""#,
        // $30 of the plan unused.
        r#"111,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z,Usage,0,30,0,AWS,Savings Plans,ComputeSP,sp-1,Unused,"#,
    ];
    std::fs::write(&csv, format!("{h}{}\n", rows.join("\n"))).unwrap();
    ok(skyward(&db).args(["ledger", "import", &csv.display().to_string()]));
    let by = |dim: &str| -> Value {
        json_ok(skyward(&db).args([
            "ledger",
            "breakdown",
            "--by",
            dim,
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--output",
            "json",
        ]))
    };
    let v = by("tag:team");
    let g = |v: &Value, k: &str| {
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == k)
            .unwrap()
            .clone()
    };
    // Unused $30 split 100:50 → a $20, b $10.
    let (a, b) = (g(&v, "a"), g(&v, "b"));
    assert_eq!(
        (
            a["cost"].as_f64(),
            a["allocated_unused"].as_f64(),
            a["commitment_savings"].as_f64()
        ),
        (Some(92.0), Some(20.0), Some(8.0))
    );
    assert_eq!(
        (
            b["cost"].as_f64(),
            b["allocated_unused"].as_f64(),
            b["commitment_savings"].as_f64()
        ),
        (Some(66.0), Some(10.0), Some(4.0))
    );
    let total: f64 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["cost"].as_f64().unwrap())
        .sum();
    assert!(
        (total - 158.0).abs() < 1e-9,
        "groups add up to usage EffectiveCost: {total}"
    );
    // By account: the unused row's own account does not matter.
    let v = by("account");
    assert_eq!(g(&v, "111")["cost"].as_f64(), Some(92.0));
    assert_eq!(g(&v, "222")["cost"].as_f64(), Some(66.0));
    // SKU family: p5 and p4d.
    let v = by("sku-family");
    assert_eq!(g(&v, "p5")["list"].as_f64(), Some(100.0));
    assert_eq!(g(&v, "p4d")["list"].as_f64(), Some(70.0));
    // A bad dimension and bad Tags are input errors.
    let out = skyward(&db)
        .args(["ledger", "breakdown", "--by", "colour"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let bad = dir.path().join("badtags.csv");
    std::fs::write(
        &bad,
        format!(
            "{h}111,2026-03-02T00:00:00Z,2026-03-03T00:00:00Z,Usage,1,1,1,AWS,EC2,x,,,not json\n"
        ),
    )
    .unwrap();
    let out = skyward(&db)
        .args(["ledger", "import", &bad.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("badtags.csv:2: Tags"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 11: terms and payment options compared by NPV through the binary.
#[test]
fn options_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let file = generated(dir.path());
    ok(skyward(&db).args(["ledger", "import", &file]));
    let v: Value = json_ok(skyward(&db).args([
        "ledger",
        "options",
        "--provider",
        "aws",
        "--option",
        "1:none:28,3:all:50",
        "--ladder",
        "4x3",
        "--covers-usd-per-hour",
        "100",
        "--scenarios",
        "10",
        "--output",
        "json",
    ]));
    assert_eq!(v["horizon_years"], 3);
    let opts = v["options"].as_array().unwrap();
    assert_eq!(opts.len(), 4, "{v}");
    for o in opts {
        assert!(
            o["npv_p10"].as_f64().unwrap() <= o["npv_p90"].as_f64().unwrap(),
            "{o}"
        );
    }
    let out = skyward(&db)
        .args([
            "ledger",
            "options",
            "--provider",
            "aws",
            "--option",
            "2:sometimes:28",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2:sometimes:28"));
}
