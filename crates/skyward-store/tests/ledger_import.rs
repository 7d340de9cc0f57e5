#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ledger imports against real databases: a SQLite file and a fresh
//! PostgreSQL database (the server the test script starts), the same test
//! on each.

use proptest::prelude::*;
use skyward_ledger::aggregate::{Aggregates, Folder};
use skyward_ledger::focus::read;
use skyward_ledger::Amount;
use skyward_store::{sha256_hex, ImportMode, Store, StoreError};

const HEADER: &str = "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,RegionId,PricingCategory\n";

fn row(period: &str, day: u32, hour: u32, billed: &str) -> String {
    format!("{period}-01T00:00:00Z,{period}-{day:02}T{hour:02}:00:00Z,{period}-{day:02}T{:02}:00:00Z,Usage,{billed},{billed},{billed},AWS,us-east-1,Standard\n", hour + 1)
}

fn fold(text: &str) -> Aggregates {
    let mut f = Folder::default();
    read(text.as_bytes(), "t.csv", None, |c| f.add(&c)).unwrap();
    f.finish()
}

/// A SQLite file, then a fresh PostgreSQL database named after the test.
fn targets(tag: &str) -> Vec<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db/skyward.db");
    vec![(Some(dir), file), (None, pg_database(tag).into())]
}

fn pg_database(tag: &str) -> String {
    let base = match std::env::var("SKYWARD_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("SKYWARD_TEST_DATABASE_URL is not set: run the suite with ./scripts/test.sh, which starts PostgreSQL"),
    };
    let name = format!("skyward_store_{tag}_{}", std::process::id());
    rt().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => panic!("bad url {base}"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn same_file_twice_is_refused_and_changes_nothing() {
    for (_dir, target) in targets("same_file_twice_is_r") {
        rt().block_on(async {
            let store = Store::open(&target).await.unwrap();
            let text = format!(
                "{HEADER}{}{}",
                row("2024-09", 1, 0, "1.25"),
                row("2024-09", 1, 1, "0.00000080000")
            );
            let agg = fold(&text);
            let out = store
                .import(
                    "a.csv",
                    &sha256_hex(text.as_bytes()),
                    "focus",
                    &agg,
                    ImportMode::Auto,
                    0,
                )
                .await
                .unwrap();
            assert_eq!(out.rows, 2);
            let before = store.totals().await.unwrap();
            assert_eq!(before.0, Amount::parse("1.2500008").unwrap());
            let e = store
                .import(
                    "a-copy.csv",
                    &sha256_hex(text.as_bytes()),
                    "focus",
                    &agg,
                    ImportMode::Auto,
                    1,
                )
                .await
                .unwrap_err();
            assert!(
                matches!(e, StoreError::AlreadyImported { id: 1, .. }),
                "{e}"
            );
            assert_eq!(store.totals().await.unwrap(), before);
            assert_eq!(store.imports().await.unwrap().len(), 1);
        });
    }
}

#[test]
fn overlapping_periods_need_replace() {
    for (_dir, target) in targets("overlapping_periods_") {
        rt().block_on(async {
            let store = Store::open(&target).await.unwrap();
            let v1 = format!("{HEADER}{}", row("2024-09", 1, 0, "10"));
            let v2 = format!(
                "{HEADER}{}{}",
                row("2024-09", 1, 0, "10"),
                row("2024-09", 2, 0, "5")
            );
            let oct = format!("{HEADER}{}", row("2024-10", 1, 0, "7"));
            store
                .import(
                    "v1.csv",
                    &sha256_hex(v1.as_bytes()),
                    "focus",
                    &fold(&v1),
                    ImportMode::Auto,
                    0,
                )
                .await
                .unwrap();
            // A disjoint period adds up.
            store
                .import(
                    "oct.csv",
                    &sha256_hex(oct.as_bytes()),
                    "focus",
                    &fold(&oct),
                    ImportMode::Auto,
                    0,
                )
                .await
                .unwrap();
            assert_eq!(
                store.totals().await.unwrap().0,
                Amount::parse("17").unwrap()
            );
            // A re-export of September is refused without --replace…
            let e = store
                .import(
                    "v2.csv",
                    &sha256_hex(v2.as_bytes()),
                    "focus",
                    &fold(&v2),
                    ImportMode::Auto,
                    0,
                )
                .await
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("aws account (none) billing period 2024-09-01")
                    && e.is_input(),
                "{e}"
            );
            assert_eq!(
                store.totals().await.unwrap().0,
                Amount::parse("17").unwrap()
            );
            // …and supersedes it with --replace (no double count).
            let out = store
                .import(
                    "v2.csv",
                    &sha256_hex(v2.as_bytes()),
                    "focus",
                    &fold(&v2),
                    ImportMode::Replace,
                    0,
                )
                .await
                .unwrap();
            assert_eq!(out.replaced, vec!["aws||2024-09-01".to_string()]);
            assert_eq!(
                store.totals().await.unwrap().0,
                Amount::parse("22").unwrap()
            );
        });
    }
}

#[test]
fn data_survives_reopening() {
    for (_dir, path) in targets("reopen") {
        rt().block_on(async {
            let text = format!("{HEADER}{}", row("2024-09", 3, 5, "3.5"));
            {
                let store = Store::open(&path).await.unwrap();
                store
                    .import(
                        "a.csv",
                        &sha256_hex(text.as_bytes()),
                        "focus",
                        &fold(&text),
                        ImportMode::Auto,
                        0,
                    )
                    .await
                    .unwrap();
            }
            let store = Store::open(&path).await.unwrap();
            let rows = store.daily(Some("aws"), i64::MAX).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].billed, Amount::parse("3.5").unwrap());
            assert!(store.daily(Some("gcp"), i64::MAX).await.unwrap().is_empty());
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, ..ProptestConfig::default() })]

    /// Import is idempotent and exact: what is stored sums to the decimal sum
    /// of the file, and importing it again changes nothing.
    #[test]
    fn import_is_exact_and_idempotent(cents in prop::collection::vec(0u64..10_000_000, 1..200)) {
        let mut text = HEADER.to_string();
        let mut expected = Amount::ZERO;
        for (i, c) in cents.iter().enumerate() {
            let amount = format!("{}.{:02}", c / 100, c % 100);
            expected += Amount::parse(&amount).unwrap();
            text.push_str(&row("2024-09", 1 + (i % 28) as u32, (i % 24) as u32, &amount));
        }
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("p.db")).await.unwrap();
            let agg = fold(&text);
            store.import("p.csv", &sha256_hex(text.as_bytes()), "focus", &agg, ImportMode::Auto, 0).await.unwrap();
            let (billed, effective, rows) = store.totals().await.unwrap();
            assert_eq!(billed, expected);
            assert_eq!(effective, expected);
            assert_eq!(rows as usize, cents.len());
            assert!(store.import("p.csv", &sha256_hex(text.as_bytes()), "focus", &agg, ImportMode::Auto, 0).await.is_err());
            assert_eq!(store.totals().await.unwrap().0, expected);
        });
    }
}

const ACCOUNT_HEADER: &str = "BillingAccountId,BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,RegionId,PricingCategory,ResourceId\n";

/// `n` hourly rows of one account, resources `first..first + n`.
fn account_rows(account: &str, first: usize, n: usize, billed: &str) -> String {
    let mut s = ACCOUNT_HEADER.to_string();
    for i in first..first + n {
        let (day, hour) = (1 + (i / 24) % 28, i % 24);
        s.push_str(&format!("{account},2024-09-01T00:00:00Z,2024-09-{day:02}T{hour:02}:00:00Z,2024-09-{day:02}T{hour:02}:59:59Z,Usage,{billed},{billed},{billed},AWS,us-east-1,Standard,i-{i}\n"));
    }
    s
}

async fn put(
    store: &Store,
    name: &str,
    text: &str,
    mode: ImportMode,
) -> Result<skyward_store::ImportOutcome, StoreError> {
    store
        .import(
            name,
            &sha256_hex(text.as_bytes()),
            "focus",
            &fold(text),
            mode,
            0,
        )
        .await
}

/// Issue 11, defect 4: a second billing account of the same provider and
/// month is not an overlap, and replacing one account leaves the other.
#[test]
fn two_billing_accounts_of_one_month_add_up_and_replace_separately() {
    for (_dir, target) in targets("two_billing_accounts") {
        rt().block_on(async {
            let store = Store::open(&target).await.unwrap();
            let a = account_rows("111", 0, 10, "1");
            let b = account_rows("222", 0, 10, "2");
            put(&store, "a.csv", &a, ImportMode::Auto).await.unwrap();
            let out = put(&store, "b.csv", &b, ImportMode::Auto).await.unwrap();
            assert!(out.appended.is_empty() && out.replaced.is_empty());
            assert_eq!(
                store.totals().await.unwrap().0,
                Amount::parse("30").unwrap()
            );
            // A restated export of account 222: replaces 222 only.
            let b2 = account_rows("222", 0, 10, "3");
            let out = put(&store, "b2.csv", &b2, ImportMode::Replace)
                .await
                .unwrap();
            assert_eq!(out.replaced, vec!["aws|222|2024-09-01".to_string()]);
            assert_eq!(
                store.totals().await.unwrap().0,
                Amount::parse("40").unwrap()
            );
        });
    }
}

/// Issue 11, defect 4: the parts of a multi-part export add up, with no
/// flag; a re-export of a part is refused, and changes nothing.
#[test]
fn parts_of_one_export_add_up_and_a_re_export_is_refused() {
    for (_dir, target) in targets("parts_of_one_export_") {
        rt().block_on(async {
        let store = Store::open(&target).await.unwrap();
        // Large enough that fingerprints are sampled (one in 32).
        let part1 = account_rows("111", 0, 6_000, "1");
        let part2 = account_rows("111", 6_000, 6_000, "1");
        put(&store, "part-00001.csv", &part1, ImportMode::Auto).await.unwrap();
        let out = put(&store, "part-00002.csv", &part2, ImportMode::Auto).await.unwrap();
        assert_eq!(out.appended, vec!["aws|111|2024-09-01".to_string()]);
        assert_eq!(store.totals().await.unwrap().0, Amount::parse("12000").unwrap());
        // A re-export of part 1 with one row changed: refused.
        let mut again = part1.clone();
        again.push_str("111,2024-09-01T00:00:00Z,2024-09-02T00:00:00Z,2024-09-02T00:59:59Z,Usage,5,5,5,AWS,us-east-1,Standard,i-new\n");
        let e = put(&store, "part-00001-v2.csv", &again, ImportMode::Auto).await.unwrap_err();
        assert!(matches!(e, StoreError::Overlap { .. }) && e.is_input(), "{e}");
        assert!(e.to_string().contains("aws account 111 billing period 2024-09-01"), "{e}");
        assert_eq!(store.totals().await.unwrap().0, Amount::parse("12000").unwrap());
        // A small file against the sampled partition cannot be told apart:
        // refused with both ways out named; --append adds it up.
        let small = account_rows("111", 20_000, 3, "1");
        let e = put(&store, "small.csv", &small, ImportMode::Auto).await;
        match e {
            Err(e @ StoreError::Ambiguous { .. }) => {
                assert!(e.to_string().contains("--append") && e.to_string().contains("--replace"))
            }
            // Unless one of its three rows is in the sample and new.
            Ok(out) => assert_eq!(out.appended.len(), 1),
            Err(e) => panic!("{e}"),
        }
        put(&store, "small-forced.csv", &account_rows("111", 30_000, 3, "1"), ImportMode::Append)
            .await
            .unwrap();
    });
    }
}

/// Every read and every contract operation gives the same answer on both
/// backends for the same imports (two accounts, two providers, hourly and
/// daily rows, a re-export refused, a replace).
#[test]
fn every_operation_agrees_on_both_backends() {
    let mut seen: Vec<String> = Vec::new();
    for (_dir, target) in targets("agree") {
        let out = rt().block_on(async {
            let store = Store::open(&target).await.unwrap();
            let mut log = Vec::new();
            let a = account_rows("111", 0, 300, "1.5");
            let b = account_rows("222", 0, 200, "0.25");
            let gcp = format!(
                "{HEADER}{}",
                row("2024-10", 2, 3, "7").replace("AWS", "Google Cloud")
            );
            for (name, text) in [("a.csv", &a), ("b.csv", &b), ("gcp.csv", &gcp)] {
                let r = store
                    .import(
                        name,
                        &sha256_hex(text.as_bytes()),
                        "focus",
                        &fold(text),
                        ImportMode::Auto,
                        5,
                    )
                    .await;
                log.push(format!(
                    "{name}: {:?}",
                    r.map(|o| (o.rows, o.buckets, o.partitions, o.appended))
                ));
            }
            let again = a.replace("1.5", "1.50");
            let r = store
                .import(
                    "a2.csv",
                    &sha256_hex(again.as_bytes()),
                    "focus",
                    &fold(&again),
                    ImportMode::Auto,
                    6,
                )
                .await;
            log.push(format!(
                "re-export: {}",
                r.err().map(|e| e.to_string()).unwrap_or_default()
            ));
            let r = store
                .import(
                    "a2.csv",
                    &sha256_hex(again.as_bytes()),
                    "focus",
                    &fold(&again),
                    ImportMode::Replace,
                    7,
                )
                .await
                .unwrap();
            log.push(format!("replace: {:?}", r.replaced));
            log.push(format!("{:?}", store.daily(None, i64::MAX).await.unwrap()));
            log.push(format!(
                "{:?}",
                store.daily(Some("aws"), i64::MAX).await.unwrap()
            ));
            log.push(format!(
                "{:?}",
                store.daily_detailed(None, i64::MAX).await.unwrap()
            ));
            log.push(format!(
                "{:?}",
                store
                    .hourly_on_demand(
                        &["aws".to_string(), "gcp".to_string()],
                        &[("aws".into(), "US-EAST-1".into(), "".into())]
                    )
                    .await
                    .unwrap()
            ));
            log.push(format!("{:?}", store.hourly_spread().await.unwrap()));
            log.push(format!("{:?}", store.last_day().await.unwrap()));
            log.push(format!("{:?}", store.totals().await.unwrap()));
            let imports: Vec<_> = store
                .imports()
                .await
                .unwrap()
                .into_iter()
                .map(|i| (i.id, i.file_name, i.rows, i.buckets, i.replaced))
                .collect();
            log.push(format!("{imports:?}"));
            let v1 = store
                .apply_contracts("c.yaml", "contracts: []\n", 0, "ann", 10)
                .await
                .unwrap();
            let same = store
                .apply_contracts("c.yaml", "contracts: []\n", 0, "bob", 11)
                .await
                .unwrap();
            let v2 = store
                .apply_contracts("c.yaml", "contracts: [x]\n", 1, "bob", 12)
                .await
                .unwrap();
            log.push(format!("{v1:?} {same:?} {v2:?}"));
            let cur = store.contract_set(None).await.unwrap().unwrap();
            let old = store.contract_set(Some(v1.0)).await.unwrap().unwrap();
            log.push(format!(
                "{} {} {} {}",
                cur.version, cur.text, cur.applied_by, old.text
            ));
            let hist: Vec<_> = store
                .contract_history()
                .await
                .unwrap()
                .into_iter()
                .map(|h| (h.version, h.applied_by, h.contracts, h.applied_at))
                .collect();
            log.push(format!("{hist:?}"));
            log.join("\n")
        });
        seen.push(out);
    }
    assert!(
        seen[0].contains("re-export:") && seen[0].contains("re-exports"),
        "{}",
        seen[0]
    );
    assert_eq!(seen[0], seen[1], "SQLite and PostgreSQL differ");
}
