#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! `skyward catalog fetch --provider azure` against a local HTTP server
//! that answers as the Azure Retail Prices API does (its JSON, its
//! `NextPageLink` paging, a 429 with `Retry-After`, a broken page), and
//! `skyward catalog diff`. No test needs the internet.

use assert_cmd::Command;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One meter as the API writes it (every field of its answer, values of
/// the kind it gives).
fn item(sku: &str, sku_name: &str, product: &str, kind: &str, price: f64, region: &str) -> Value {
    json!({
        "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
        "armRegionName": region, "location": "US East", "effectiveStartDate": "2024-06-01T00:00:00Z",
        "meterId": "00000000-0000-0000-0000-000000000000", "meterName": sku_name,
        "productId": "DZH318Z08M22", "skuId": "DZH318Z08M22/00ZR", "productName": product,
        "skuName": sku_name, "serviceName": "Virtual Machines", "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute", "unitOfMeasure": "1 Hour", "type": kind,
        "isPrimaryMeterRegion": true, "armSkuName": sku
    })
}

fn page(items: Vec<Value>, next: Option<String>) -> String {
    json!({"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
        "Items": items, "NextPageLink": next, "Count": 0})
    .to_string()
}

type Answer = (u16, Vec<(String, String)>, String);

/// Serves `answer(path with query, how many times asked before)` on a
/// free port; returns the port.
fn serve(answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (seen, answer) = (seen.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let n = {
                    let mut m = seen.lock().unwrap();
                    let e = m.entry(path.clone()).or_insert(0);
                    *e += 1;
                    *e - 1
                };
                let (status, headers, body) = answer(&path, n);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let _ = s.write_all(out.as_bytes());
            });
        }
    });
    port
}

fn skyward() -> Command {
    Command::cargo_bin("skyward").unwrap()
}

/// Two pages for eastus, the second throttled once. By hand: ND96isr H100
/// v5 $98.32 on demand and $39.328 spot; NC24ads A100 v4 $3.673 (its
/// Windows meter and a low-priority one left out); a D-series VM (no
/// accelerators) and a reservation left out; a price of 0 left out.
fn azure_pages(port: u16) -> impl Fn(&str, usize) -> Answer {
    move |path, n| {
        let base = format!("http://127.0.0.1:{port}/api/retail/prices");
        if path.contains("skip=1000") {
            if n == 0 {
                return (
                    429,
                    vec![("Retry-After".into(), "1".into())],
                    "{\"error\":\"throttled\"}".into(),
                );
            }
            return (
                200,
                vec![],
                page(
                    vec![
                        item(
                            "Standard_ND96isr_H100_v5",
                            "ND96isr H100 v5 Spot",
                            "NDisrH100v5 Series",
                            "Consumption",
                            39.328,
                            "eastus",
                        ),
                        item(
                            "Standard_D2s_v5",
                            "D2s v5",
                            "Dsv5 Series",
                            "Consumption",
                            0.096,
                            "eastus",
                        ),
                        item(
                            "Standard_ND96isr_H100_v5",
                            "ND96isr H100 v5",
                            "NDisrH100v5 Series",
                            "Reservation",
                            541_000.0,
                            "eastus",
                        ),
                        item(
                            "Standard_NC40ads_H100_v5",
                            "NC40ads H100 v5",
                            "NCadsH100v5 Series",
                            "Consumption",
                            0.0,
                            "eastus",
                        ),
                    ],
                    None,
                ),
            );
        }
        if path.starts_with("/api/retail/prices?$filter=") {
            return (
                200,
                vec![],
                page(
                    vec![
                        item(
                            "Standard_ND96isr_H100_v5",
                            "ND96isr H100 v5",
                            "NDisrH100v5 Series",
                            "Consumption",
                            98.32,
                            "eastus",
                        ),
                        item(
                            "Standard_NC24ads_A100_v4",
                            "NC24ads A100 v4",
                            "NCadsA100v4 Series",
                            "Consumption",
                            3.673,
                            "eastus",
                        ),
                        item(
                            "Standard_NC24ads_A100_v4",
                            "NC24ads A100 v4",
                            "NCadsA100v4 Series Windows",
                            "Consumption",
                            4.777,
                            "eastus",
                        ),
                        item(
                            "Standard_NC24ads_A100_v4",
                            "NC24ads A100 v4 Low Priority",
                            "NCadsA100v4 Series",
                            "Consumption",
                            0.7346,
                            "eastus",
                        ),
                        // A size the built-in extract lacks (a price for
                        // the test).
                        item(
                            "Standard_ND96isr_H200_v5",
                            "ND96isr H200 v5",
                            "NDisrH200v5 Series",
                            "Consumption",
                            100.0,
                            "eastus",
                        ),
                    ],
                    Some(format!("{base}?$filter=x&$skip=1000")),
                ),
            );
        }
        (404, vec![], "{}".into())
    }
}

/// The cells `idx` of each row.
fn columns<'a, const N: usize>(
    rows: impl IntoIterator<Item = &'a Vec<String>>,
    idx: [usize; N],
) -> Vec<[&'a str; N]> {
    rows.into_iter()
        .map(|r| idx.map(|i| r[i].as_str()))
        .collect()
}

fn offerings(file: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn azure_prices_are_fetched_page_by_page_through_throttling() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        // The answer needs its own port for the next-page link: bind,
        // then serve with it.
        let cell: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
        let c = cell.clone();
        let port = serve(move |p, n| azure_pages(c.load(Ordering::SeqCst) as u16)(p, n));
        cell.store(port as usize, Ordering::SeqCst);
        port
    };
    let endpoint = format!("http://127.0.0.1:{port}/api/retail/prices");
    let out = dir.path().join("catalog.csv");
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "azure",
            "--regions",
            "eastus",
            "--endpoint",
            &endpoint,
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = offerings(&out);
    let eastus: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[0] == "azure" && r[1] == "eastus")
        .collect();
    let cells = columns(eastus.iter().copied(), [2, 3, 4, 7, 8]);
    assert_eq!(
        cells,
        vec![
            ["Standard_NC24ads_A100_v4", "A100-80GB", "1", "3.673", ""],
            ["Standard_ND96isr_H100_v5", "H100", "8", "98.32", "39.328"],
            ["Standard_ND96isr_H200_v5", "H200", "8", "100", ""],
        ],
        "{eastus:?}"
    );
    assert!(
        eastus[0][10].contains("Azure Retail Prices API") && eastus[0][10].contains("fetched 20"),
        "{eastus:?}"
    );
    // Other regions and providers as in the built-in catalog.
    assert!(rows.iter().any(|r| r[0] == "aws"));
    assert!(rows.iter().any(|r| r[0] == "azure" && r[1] == "eastus2"));
    let prov: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("catalog.csv.provenance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(prov["pages"], 2, "{prov}");
    assert_eq!(prov["items_read"], 9, "{prov}");
    assert_eq!(prov["throttled_retries"], 1, "{prov}");
    assert_eq!(prov["offerings_kept"], 3, "{prov}");
    let d = &prov["items_dropped"];
    assert_eq!(d["Windows (license included)"], 1, "{prov}");
    assert_eq!(d["low priority (retired; spot replaces it)"], 1, "{prov}");
    assert_eq!(
        d["VM size without accelerators, or one the catalog does not know"], 1,
        "{prov}"
    );
    assert_eq!(d["price 0 (not a price)"], 1, "{prov}");
    // (The reservation is not asked for: the filter asks for
    // Consumption; one that comes anyway is left out.)
    assert_eq!(
        d["not pay-as-you-go (reservation, dev/test or savings plan)"], 1,
        "{prov}"
    );
    // `--catalog` uses it: plan sees the fetched spot price.
    let o = skyward()
        .args([
            "catalog",
            "show",
            "Standard_ND96isr_H100_v5",
            "--output",
            "json",
            "--catalog",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("39.328"));

    // diff against the built-in extract: ND96isr's new spot price (none
    // before) is a change; NC40ads H100 v5 (price 0 here) is removed.
    let old = dir.path().join("old.csv");
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "azure",
            "--regions",
            "eastus",
            "--endpoint",
            &endpoint,
            "--only",
            "--out",
        ])
        .arg(&old)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The older catalog: the same rows with the on-demand price 10 % lower.
    let text = std::fs::read_to_string(&old)
        .unwrap()
        .replace(",98.32,", ",88.488,");
    std::fs::write(&old, text).unwrap();
    let o = skyward()
        .args(["catalog", "diff", "--output", "json"])
        .arg(&old)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    let changed = d["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{d}");
    assert_eq!(changed[0]["sku"], "Standard_ND96isr_H100_v5");
    assert_eq!(changed[0]["pricing"], "on-demand");
    // (98.32 − 88.488) / 88.488 = +11.11 %
    assert!(
        (changed[0]["change_pct"].as_f64().unwrap() - 100.0 * (98.32 - 88.488) / 88.488).abs()
            < 1e-9,
        "{d}"
    );
    assert_eq!(d["unchanged"], 2, "{d}");
    assert!(d["removed"].as_array().unwrap().is_empty(), "{d}");
    assert!(
        d["added"].as_array().unwrap().len() > 100,
        "the other providers are added"
    );
    let o = skyward()
        .args(["catalog", "diff"])
        .arg(&old)
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("+11.1%") && text.contains("2 unchanged, 1 price change(s)"),
        "{text}"
    );
    // Each file's dates, from its rows: the fetch's day for the fetched
    // Azure rows, the built-in extract's for the rest.
    let fetched = std::fs::read_to_string(&old).unwrap();
    let day = fetched
        .split("fetched ")
        .nth(1)
        .map(|s| &s[..10])
        .unwrap()
        .to_string();
    let lines: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(
        lines[0],
        format!("old: {} (prices as of azure {day})", old.display()),
        "{text}"
    );
    assert!(
        lines[1].contains(&format!("azure 2026-11-26…{day}"))
            && lines[1].contains("aws 2026-11-26,"),
        "{text}"
    );
}

/// A broken page, an endless throttle, a link to another host, a 500:
/// each stops the fetch with an error naming the page, and nothing is
/// written (an existing catalog is left as it was).
#[test]
fn a_bad_answer_stops_the_fetch_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("catalog.csv");
    std::fs::write(&out, "kept as it was\n").unwrap();
    type Server = Box<dyn Fn(&str, usize) -> Answer + Send + Sync>;
    let cases: Vec<(&str, Server)> = vec![
        (
            "page 1",
            Box::new(|_: &str, _| (200, vec![], "<html>maintenance</html>".to_string())),
        ),
        (
            "no \"Items\" list",
            Box::new(|_: &str, _| (200, vec![], "{\"items\": []}".to_string())),
        ),
        (
            "HTTP 429 after 6 attempts",
            Box::new(|_: &str, _| {
                (
                    429,
                    vec![("Retry-After".into(), "0".into())],
                    "{}".to_string(),
                )
            }),
        ),
        (
            "HTTP 500",
            Box::new(|_: &str, _| (500, vec![], "oops".to_string())),
        ),
        (
            "leaves 127.0.0.1",
            Box::new(|_: &str, _| {
                (
                    200,
                    vec![],
                    page(
                        vec![],
                        Some("https://evil.example/api/retail/prices?$skip=1000".into()),
                    ),
                )
            }),
        ),
        (
            "Items[0]: \"retailPrice\"",
            Box::new(|_: &str, _| {
                (
                    200,
                    vec![],
                    "{\"Items\": [{\"currencyCode\": \"USD\"}], \"NextPageLink\": null}"
                        .to_string(),
                )
            }),
        ),
    ];
    for (want, answer) in cases {
        let port = serve(answer);
        let o = skyward()
            .args([
                "catalog",
                "fetch",
                "--provider",
                "azure",
                "--endpoint",
                &format!("http://127.0.0.1:{port}/api/retail/prices"),
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{want}: succeeded");
        assert!(
            err.contains(want) && err.contains("nothing written"),
            "{want}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "kept as it was\n",
            "{want}"
        );
        assert!(
            !dir.path().join("catalog.csv.provenance.json").exists(),
            "{want}"
        );
    }
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "azure",
            "--regions",
            "east us",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("regions"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An EC2 product as the bulk offer file writes it.
fn product(
    sku: &str,
    family: &str,
    itype: &str,
    os: &str,
    tenancy: &str,
    sw: &str,
    capacity: &str,
) -> Value {
    json!({"sku": sku, "productFamily": family, "attributes": {
        "servicecode": "AmazonEC2", "location": "US East (N. Virginia)", "locationType": "AWS Region",
        "instanceType": itype, "currentGeneration": "Yes", "instanceFamily": "GPU instance",
        "vcpu": "192", "memory": "2048 GiB", "tenancy": tenancy, "operatingSystem": os,
        "licenseModel": "No License required", "usagetype": format!("USE1-BoxUsage:{itype}"),
        "operation": "RunInstances", "capacitystatus": capacity, "preInstalledSw": sw,
        "regionCode": "us-east-1", "servicename": "Amazon Elastic Compute Cloud"}})
}

fn on_demand(sku: &str, usd: &str) -> Value {
    json!({format!("{sku}.JRTCKXETXF"): {"offerTermCode": "JRTCKXETXF", "sku": sku,
        "effectiveDate": "2024-12-01T00:00:00Z", "termAttributes": {},
        "priceDimensions": {format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
            "rateCode": format!("{sku}.JRTCKXETXF.6YS6EN2CT7"), "description": "per On Demand Linux Instance Hour",
            "beginRange": "0", "endRange": "Inf", "unit": "Hrs", "pricePerUnit": {"USD": usd}, "appliesTo": []}}}})
}

/// The region index, then us-east-1's offer file (throttled once). By
/// hand: p5.48xlarge $98.32 (its Windows, dedicated and reserved-capacity
/// products left out), p4d.24xlarge $32.7726; t3.micro unknown, a
/// storage product not an instance.
#[test]
fn aws_prices_come_from_the_region_index_and_the_offer_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = serve(|path: &str, n| {
        if path == "/offers/v1.0/aws/AmazonEC2/current/region_index.json" {
            return (200, vec![], json!({"formatVersion": "v1.0", "disclaimer": "x", "publicationDate": "2024-12-01T00:00:00Z",
                "regions": {
                    "us-east-1": {"regionCode": "us-east-1", "currentVersionUrl": "/offers/v1.0/aws/AmazonEC2/20241201000000/us-east-1/index.json"},
                    "eu-west-1": {"regionCode": "eu-west-1", "currentVersionUrl": "/offers/v1.0/aws/AmazonEC2/20241201000000/eu-west-1/index.json"}}}).to_string());
        }
        if path == "/offers/v1.0/aws/AmazonEC2/20241201000000/us-east-1/index.json" {
            if n == 0 {
                return (
                    503,
                    vec![("Retry-After".into(), "1".into())],
                    "SlowDown".into(),
                );
            }
            let mut terms = serde_json::Map::new();
            for (sku, usd) in [
                ("A1", "98.3200000000"),
                ("A2", "113.1200000000"),
                ("A3", "120.0000000000"),
                ("A4", "98.3200000000"),
                ("A5", "99.0000000000"),
                ("B1", "32.7726000000"),
                ("C1", "0.0104000000"),
            ] {
                terms.insert(sku.into(), on_demand(sku, usd));
            }
            return (200, vec![], json!({"formatVersion": "v1.0", "offerCode": "AmazonEC2", "version": "20241201000000",
                "products": {
                    "A1": product("A1", "Compute Instance", "p5.48xlarge", "Linux", "Shared", "NA", "Used"),
                    "A2": product("A2", "Compute Instance", "p5.48xlarge", "Windows", "Shared", "NA", "Used"),
                    "A3": product("A3", "Compute Instance", "p5.48xlarge", "Linux", "Dedicated", "NA", "Used"),
                    "A4": product("A4", "Compute Instance", "p5.48xlarge", "Linux", "Shared", "NA", "UnusedCapacityReservation"),
                    // A second product of the same type (another usage
                    // type): the lower price stands; both count as read.
                    "A5": product("A5", "Compute Instance", "p5.48xlarge", "Linux", "Shared", "NA", "Used"),
                    "B1": product("B1", "Compute Instance", "p4d.24xlarge", "Linux", "Shared", "NA", "Used"),
                    "C1": product("C1", "Compute Instance", "t3.micro", "Linux", "Shared", "NA", "Used"),
                    "D1": {"sku": "D1", "productFamily": "Storage", "attributes": {"volumeType": "gp3"}}},
                "terms": {"OnDemand": terms, "Reserved": {"A1": {"A1.X": {"priceDimensions": {}}}}}}).to_string());
        }
        (404, vec![], "NoSuchKey".into())
    });
    let out = dir.path().join("aws.csv");
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "aws",
            "--regions",
            "us-east-1",
            "--only",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = offerings(&out);
    let cells = columns(&rows, [1, 2, 3, 7, 8]);
    assert_eq!(
        cells,
        vec![
            ["us-east-1", "p4d.24xlarge", "A100", "32.7726", ""],
            ["us-east-1", "p5.48xlarge", "H100", "98.32", ""],
        ]
    );
    let prov: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("aws.csv.provenance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            prov["pages"].as_u64(),
            prov["throttled_retries"].as_u64(),
            prov["items_read"].as_u64()
        ),
        // Every product of the file (8); it read 7 when two kept products
        // of one type counted once.
        (Some(2), Some(1), Some(8)),
        "{prov}"
    );
    let d = &prov["items_dropped"];
    assert_eq!(d["not Linux on shared tenancy without pre-installed software (or not capacity status Used)"], 3, "{prov}");
    assert_eq!(
        d["instance type without accelerators, or one the catalog does not know"], 1,
        "{prov}"
    );
    assert_eq!(d["not a compute instance"], 1, "{prov}");
    // A region the index does not list is refused, naming it.
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "aws",
            "--regions",
            "mars-1",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--out",
        ])
        .arg(dir.path().join("x.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("'mars-1' is not in the EC2 price list"),
        "{err}"
    );
    assert!(!dir.path().join("x.csv").exists());
}

/// One Compute Engine SKU as the Cloud Billing Catalog API writes it
/// (every field of its answer; `units` is an int64 sent as a string).
fn gcp_sku(
    desc: &str,
    family: &str,
    group: &str,
    usage: &str,
    unit: &str,
    usd: (i64, i64),
    regions: &[&str],
) -> Value {
    json!({
        "name": "services/6F81-5844-456A/skus/0000-0000-0000", "skuId": "0000-0000-0000",
        "description": desc,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family,
                     "resourceGroup": group, "usageType": usage},
        "serviceRegions": regions,
        "pricingInfo": [{
            "effectiveTime": "2026-11-30T08:00:00.000Z", "summary": "",
            "pricingExpression": {
                "usageUnit": unit, "displayQuantity": 1, "usageUnitDescription": "hour",
                "baseUnit": "s", "baseUnitDescription": "second", "baseUnitConversionFactor": 3600,
                "tieredRates": [{"startUsageAmount": 0,
                    "unitPrice": {"currencyCode": "USD", "units": usd.0.to_string(), "nanos": usd.1}}]},
            "aggregationInfo": {"aggregationLevel": "ACCOUNT", "aggregationInterval": "DAILY", "aggregationCount": 1},
            "currencyConversionRate": 1}],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "MULTI_REGIONAL", "regions": regions}
    })
}

const GCP_KEY: &str = "AIzaTestKey_0123456789";

/// Two pages (the second throttled once). By hand:
/// - a2-highgpu-1g (1 A100, 12 vCPUs, 85 GiB) in us-central1:
///   2.933908 + 12 × 0.031611 + 85 × 0.004237 = $3.673385 an hour, the
///   price Google's GPU pricing page gives; spot 1.46695 + 12 × 0.00316 +
///   85 × 0.000424 = $1.54091.
/// - a3-highgpu-8g (8 H100, 208 vCPUs, 1,872 GiB): 8 × 11.06 + 208 ×
///   0.0275 + 1872 × 0.0037 = $101.1264; a3-highgpu-1g (26, 234):
///   11.06 + 0.715 + 0.8658 = $12.6408. No spot SKU for the A3 host: none.
/// - tpu-v6e-8: 8 chips × $2.70 = $21.60.
/// - In europe-west4 the A2 memory has no SKU: the five A100 types there
///   are left out.
fn gcp_pages(path: &str, n: usize) -> Answer {
    if !path.contains(&format!("key={GCP_KEY}")) {
        return (
            400,
            vec![],
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}).to_string(),
        );
    }
    let both = ["us-central1", "europe-west4"];
    let usc = ["us-central1"];
    if path.contains("pageToken=p%2F2") {
        if n == 0 {
            return (429, vec![("Retry-After".into(), "1".into())], "{}".into());
        }
        let skus = vec![
            gcp_sku(
                "Nvidia H100 80GB GPU running in Americas",
                "Compute",
                "GPU",
                "OnDemand",
                "h",
                (11, 60_000_000),
                &usc,
            ),
            gcp_sku(
                "A3 Instance Core running in Americas",
                "Compute",
                "CPU",
                "OnDemand",
                "h",
                (0, 27_500_000),
                &usc,
            ),
            gcp_sku(
                "A3 Instance Ram running in Americas",
                "Compute",
                "RAM",
                "OnDemand",
                "GiBy.h",
                (0, 3_700_000),
                &usc,
            ),
            gcp_sku(
                "TpuV6e running in Iowa",
                "Compute",
                "TPU",
                "OnDemand",
                "h",
                (2, 700_000_000),
                &usc,
            ),
            gcp_sku(
                "Nvidia Tesla T4 Virtual Workstation GPU running in Americas",
                "Compute",
                "GPU",
                "OnDemand",
                "h",
                (0, 550_000_000),
                &usc,
            ),
            gcp_sku(
                "A2 Instance Core running in EMEA",
                "Compute",
                "CPU",
                "OnDemand",
                "h",
                (0, 34_773_000),
                &["europe-west4"],
            ),
        ];
        return (
            200,
            vec![],
            json!({"skus": skus, "nextPageToken": ""}).to_string(),
        );
    }
    let skus = vec![
        gcp_sku(
            "Nvidia Tesla A100 GPU running in Americas",
            "Compute",
            "GPU",
            "OnDemand",
            "h",
            (2, 933_908_000),
            &both,
        ),
        gcp_sku(
            "A2 Instance Core running in Americas",
            "Compute",
            "CPU",
            "OnDemand",
            "h",
            (0, 31_611_000),
            &usc,
        ),
        gcp_sku(
            "A2 Instance Ram running in Americas",
            "Compute",
            "RAM",
            "OnDemand",
            "GiBy.h",
            (0, 4_237_000),
            &usc,
        ),
        gcp_sku(
            "Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in Americas",
            "Compute",
            "GPU",
            "Preemptible",
            "h",
            (1, 466_950_000),
            &usc,
        ),
        gcp_sku(
            "Spot Preemptible A2 Instance Core running in Americas",
            "Compute",
            "CPU",
            "Preemptible",
            "h",
            (0, 3_160_000),
            &usc,
        ),
        gcp_sku(
            "Spot Preemptible A2 Instance Ram running in Americas",
            "Compute",
            "RAM",
            "Preemptible",
            "GiBy.h",
            (0, 424_000),
            &usc,
        ),
        gcp_sku(
            "Commitment v1: A2 Cpu in Americas for 1 Year",
            "Compute",
            "CPU",
            "Commit1Yr",
            "h",
            (0, 19_915_000),
            &usc,
        ),
        gcp_sku(
            "Storage PD Capacity",
            "Storage",
            "PDStandard",
            "OnDemand",
            "GiBy.mo",
            (0, 40_000_000),
            &usc,
        ),
    ];
    (
        200,
        vec![],
        json!({"skus": skus, "nextPageToken": "p/2"}).to_string(),
    )
}

#[test]
fn gcp_prices_join_gpu_core_and_memory_skus_across_pages() {
    let dir = tempfile::tempdir().unwrap();
    let port = serve(gcp_pages);
    let endpoint = format!("http://127.0.0.1:{port}/v1/services/6F81-5844-456A/skus");
    let out = dir.path().join("gcp.csv");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{GCP_KEY}\n")).unwrap();
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "gcp",
            "--endpoint",
            &endpoint,
        ])
        .arg("--api-key-file")
        .arg(&key_file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(!stdout.contains(GCP_KEY) && !stderr.contains(GCP_KEY));
    let rows = offerings(&out);
    let mut gcp: Vec<[String; 6]> = rows
        .iter()
        .filter(|r| r[0] == "gcp")
        .map(|r| [1, 2, 3, 4, 7, 8].map(|i| r[i].clone()))
        .collect();
    gcp.sort();
    let mut want: Vec<[String; 6]> = [
        ("a2-highgpu-1g", "A100", "1", "3.673385", "1.54091"),
        ("a2-highgpu-2g", "A100", "2", "7.34677", "3.08182"),
        ("a2-highgpu-4g", "A100", "4", "14.69354", "6.16364"),
        ("a2-highgpu-8g", "A100", "8", "29.38708", "12.32728"),
        // 96 vCPUs, 1,360 GiB: 16 × 2.933908 + 3.034656 + 5.76232.
        ("a2-megagpu-16g", "A100", "16", "55.739504", "24.3512"),
        ("a3-highgpu-1g", "H100", "1", "12.6408", ""),
        ("a3-highgpu-2g", "H100", "2", "25.2816", ""),
        ("a3-highgpu-4g", "H100", "4", "50.5632", ""),
        ("a3-highgpu-8g", "H100", "8", "101.1264", ""),
    ]
    .iter()
    .map(|(t, a, n, od, sp)| ["us-central1", t, a, n, od, sp].map(str::to_string))
    .collect();
    // Every v6e slice the catalog knows: chips × $2.70.
    for chips in [1u32, 4, 8, 16, 32, 64, 128, 256] {
        let name = format!("tpu-v6e-{chips}");
        let usd = format!("{}", (chips as f64 * 2.7 * 1e6).round() / 1e6);
        want.push([
            "us-central1".into(),
            name.clone(),
            name,
            "1".into(),
            usd,
            String::new(),
        ]);
    }
    want.sort();
    assert_eq!(gcp, want);
    let prov: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("gcp.csv.provenance.json")).unwrap(),
    )
    .unwrap();
    assert!(!prov.to_string().contains(GCP_KEY), "{prov}");
    assert_eq!(prov["pages"], 2, "{prov}");
    assert_eq!(prov["items_read"], 14, "{prov}");
    assert_eq!(prov["throttled_retries"], 1, "{prov}");
    assert_eq!(prov["offerings_kept"], 17, "{prov}");
    let d = &prov["items_dropped"];
    assert_eq!(d["committed-use or other non-on-demand usage"], 1, "{prov}");
    assert_eq!(d["not compute (storage, network, licence)"], 1, "{prov}");
    assert_eq!(
        d["not the cores, memory, GPU or TPU of a machine type the catalog knows"], 1,
        "{prov}"
    );
    // europe-west4: the A100 and the A2 cores are priced, not the memory:
    // the five A100 types (and nothing else) left out there.
    assert_eq!(
        d["machine type in a region where its GPU is priced but its cores or memory are not (counted per type and region)"],
        5,
        "{prov}"
    );
    // Every other GCP machine type of the built-in catalog (counted from
    // its file: distinct type and accelerator) has no accelerator SKU here.
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../skyward-catalog/data/offerings.csv"
    ))
    .unwrap();
    let types: std::collections::BTreeSet<(String, String)> = csv
        .lines()
        .filter(|l| l.starts_with("gcp,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), f[3].to_string())
        })
        .collect();
    assert_eq!(
        d["catalog machine type whose accelerator no fetched SKU prices (counted per type; TPU v2-v4 are in the Cloud TPU service)"],
        types.len() as u64 - 17,
        "{prov}"
    );
    // A wrong key: the API's 400 with its message, the key not shown,
    // nothing written.
    let bad = dir.path().join("bad.csv");
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "gcp",
            "--endpoint",
            &endpoint,
        ])
        .env("SKYWARD_GCP_API_KEY", "AIzaWrongKey")
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("HTTP 400")
            && err.contains("API key not valid")
            && err.contains("key=REDACTED"),
        "{err}"
    );
    assert!(!err.contains("AIzaWrongKey"), "{err}");
    assert!(!bad.exists());
    // No key at all: said before anything is fetched.
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "gcp",
            "--endpoint",
            &endpoint,
        ])
        .env_remove("SKYWARD_GCP_API_KEY")
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("SKYWARD_GCP_API_KEY"),
        "{err}"
    );
    // A page token that comes back again would never end: refused.
    let port = serve(|_: &str, _| {
        (
            200,
            vec![],
            json!({"skus": [], "nextPageToken": "same"}).to_string(),
        )
    });
    let o = skyward()
        .args([
            "catalog",
            "fetch",
            "--provider",
            "gcp",
            "--endpoint",
            &format!("http://127.0.0.1:{port}/v1/services/6F81-5844-456A/skus"),
        ])
        .env("SKYWARD_GCP_API_KEY", GCP_KEY)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("same nextPageToken")
            && err.contains("nothing written"),
        "{err}"
    );
    assert!(!bad.exists());
}
