#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Ledger imports against a real SQLite database file.

use proptest::prelude::*;
use skyward_ledger::aggregate::{Aggregates, Folder};
use skyward_ledger::focus::read;
use skyward_ledger::Amount;
use skyward_store::{sha256_hex, Store, StoreError};

const HEADER: &str = "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,RegionId,PricingCategory\n";

fn row(period: &str, day: u32, hour: u32, billed: &str) -> String {
    format!("{period}-01T00:00:00Z,{period}-{day:02}T{hour:02}:00:00Z,{period}-{day:02}T{:02}:00:00Z,Usage,{billed},{billed},{billed},AWS,us-east-1,Standard\n", hour + 1)
}

fn fold(text: &str) -> Aggregates {
    let mut f = Folder::default();
    read(text.as_bytes(), "t.csv", None, |c| f.add(&c)).unwrap();
    f.finish()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn same_file_twice_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db/skyward.db"))
            .await
            .unwrap();
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
                false,
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
                false,
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

#[test]
fn overlapping_periods_need_replace() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
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
                false,
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
                false,
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
                false,
                0,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("aws billing period 2024-09-01") && e.is_input(),
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
                true,
                0,
            )
            .await
            .unwrap();
        assert_eq!(out.replaced, vec!["aws|2024-09-01".to_string()]);
        assert_eq!(
            store.totals().await.unwrap().0,
            Amount::parse("22").unwrap()
        );
    });
}

#[test]
fn data_survives_reopening() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let text = format!("{HEADER}{}", row("2024-09", 3, 5, "3.5"));
        {
            let store = Store::open(&path).await.unwrap();
            store
                .import(
                    "a.csv",
                    &sha256_hex(text.as_bytes()),
                    "focus",
                    &fold(&text),
                    false,
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
            store.import("p.csv", &sha256_hex(text.as_bytes()), "focus", &agg, false, 0).await.unwrap();
            let (billed, effective, rows) = store.totals().await.unwrap();
            assert_eq!(billed, expected);
            assert_eq!(effective, expected);
            assert_eq!(rows as usize, cents.len());
            assert!(store.import("p.csv", &sha256_hex(text.as_bytes()), "focus", &agg, false, 0).await.is_err());
            assert_eq!(store.totals().await.unwrap().0, expected);
        });
    }
}
