#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The dashboard (`/`) through a real browser and through its API: a
//! `skyward server` with a ledger (contracts and a bill imported through
//! the CLI), Debian's Chromium driven by ChromeDriver. A user logs in with
//! a token, sees a submitted workload in the queue with its reasons,
//! cancels it, opens a commitment's burn-down; every page loads with no
//! console error, and every chart has data, a title and both axes with
//! their titles. With SKYWARD_UPDATE_SCREENSHOTS=1 the screenshots are
//! written to docs/dashboard/ (the README's pictures).

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};
use skyward_ledger::time::Timestamp;
use std::process::Command;
use webdriver::Browser;

const HEADER: &str = "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,RegionId,PricingCategory,ServiceName,CommitmentDiscountId,CommitmentDiscountStatus\n";

/// Days of Azure usage billed at $100 a day ($125 list), up to yesterday.
const HISTORY_DAYS: i64 = 120;
/// The last days also have a prepaid savings plan `sp-1` in the same
/// service: $30 a day used (covering $40 of list), $10 unused, billed
/// nothing (its purchase is elsewhere), so the burn-down is unchanged.
/// By hand: utilisation 30 / 40 = 75 %, coverage 40 / (40 + 125).
const PLAN_DAYS: i64 = 14;

fn today() -> i64 {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )
    .day()
}

fn bill(today: i64) -> String {
    let mut s = String::from(HEADER);
    for d in (today - HISTORY_DAYS)..today {
        let day = Timestamp(d * 86_400);
        let month = day.month_start().date_string();
        s.push_str(&format!(
            "{month}T00:00:00Z,{}T00:00:00Z,{}T00:00:00Z,Usage,100,100,125,Microsoft,eastus,Standard,Virtual Machines,,\n",
            day.date_string(),
            Timestamp((d + 1) * 86_400).date_string()
        ));
        if d >= today - PLAN_DAYS {
            for (effective, list, status) in [("30", "40", "Used"), ("10", "0", "Unused")] {
                s.push_str(&format!(
                    "{month}T00:00:00Z,{}T00:00:00Z,{}T00:00:00Z,Usage,0,{effective},{list},Microsoft,eastus,Committed,Virtual Machines,sp-1,{status}\n",
                    day.date_string(),
                    Timestamp((d + 1) * 86_400).date_string()
                ));
            }
        }
    }
    s
}

/// A one-year $50,000 Azure commitment that started 90 days ago, with a
/// $20,000 floor in its first year.
fn contracts(today: i64) -> String {
    let start = Timestamp((today - 90) * 86_400).date_string();
    format!(
        "contracts:\n  - name: azure-macc\n    kind: spend\n    provider: azure\n    start: {start}\n    term_months: 12\n    commit_usd: 50000\n    discount_pct: 20\n    floors:\n      - year: 1\n        commit_usd: 20000\n"
    )
}

fn run_ok(server: &Server, token: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("SKYWARD_TOKEN", token)
        .env("SKYWARD_SERVER", server.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A server with the built-in sites, a ledger and two workloads: one that
/// ran (`hello`), one that can never start (`too-big`, two 8-GPU nodes).
fn setup(dir: &std::path::Path, database_url: Option<&str>) -> (Server, String, i64, i64) {
    let server = Server::start(dir, free_port(), database_url);
    let admin = server.admin_token();
    let today = today();
    let c_file = dir.join("contracts.yaml");
    std::fs::write(&c_file, contracts(today)).unwrap();
    run_ok(
        &server,
        &admin,
        &[
            "contracts",
            "apply",
            c_file.to_str().unwrap(),
            "--server",
            &server.url(),
        ],
    );
    let b_file = dir.join("azure.csv");
    std::fs::write(&b_file, bill(today)).unwrap();
    run_ok(
        &server,
        &admin,
        &[
            "ledger",
            "import",
            b_file.to_str().unwrap(),
            "--server",
            &server.url(),
        ],
    );
    let rt = rt();
    let c = server.client(Some(&admin));
    let hello = submit(
        &rt,
        &c,
        json!({"name": "hello", "accelerators": "H100:1", "run": "echo hello from the dashboard test"}),
    );
    wait_for(&rt, &c, hello, 60, |v| v["state"] == "succeeded");
    let big = submit(
        &rt,
        &c,
        json!({"name": "too-big", "kind": "batch", "accelerators": "H100:8", "nodes": 2, "run": "echo never"}),
    );
    wait_for(&rt, &c, big, 30, |v| v["state"] == "pending");
    (server, admin, hello, big)
}

/// The endpoints the dashboard reads, each checked on its own.
#[test]
fn the_dashboard_api_answers_with_the_tokens_scope() {
    dashboard_api(None);
}

#[test]
fn the_dashboard_api_answers_with_the_tokens_scope_on_postgres() {
    dashboard_api(Some(&pg_database("dashboard")));
}

fn dashboard_api(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, hello, big) = setup(dir.path(), database_url);
    let rt = rt();
    let c = server.client(Some(&admin));
    let reader = token(
        &rt,
        &c,
        json!({"name": "viewer", "scope": "read", "team": "other"}),
    );

    // The page and its files: no token needed, nothing inline allowed.
    let anon = server.client(None);
    let page = call(&rt, &anon, "GET", "/", None, &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let body = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        body.contains("/ui/app.js") && body.contains("/ui/app.css"),
        "{body}"
    );
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "nothing from elsewhere: {body}"
    );
    let mut total = page.body.len();
    for f in ["/ui/app.js", "/ui/app.css"] {
        let r = call(&rt, &anon, "GET", f, None, &[]);
        assert_eq!(r.status, 200, "{f}");
        total += r.body.len();
        // Revalidation: the same tag answers 304 with no body.
        let tag = r.header("etag").unwrap().to_string();
        let again = call(&rt, &anon, "GET", f, None, &[("if-none-match", tag)]);
        assert_eq!(again.status, 304, "{f}");
        assert!(again.body.is_empty());
    }
    // Page weight: well under the 500 KB target even uncompressed.
    assert!(total < 100_000, "{total} bytes");
    assert_eq!(
        call(&rt, &anon, "GET", "/ui/secrets.txt", None, &[]).status,
        404
    );
    assert_eq!(
        call(&rt, &anon, "GET", "/ui/..%2Fconfig.yaml", None, &[]).status,
        404
    );
    // The data is not: every endpoint wants a token.
    for p in ["/v1/whoami", "/v1/summary", "/v1/ledger/burndown"] {
        assert_eq!(call(&rt, &anon, "GET", p, None, &[]).status, 401, "{p}");
    }

    // whoami: who the token is.
    let who = call(&rt, &c, "GET", "/v1/whoami", None, &[])
        .json()
        .unwrap();
    assert_eq!(who["scope"], "admin", "{who}");
    let rc = server.client(Some(&reader));
    let who = call(&rt, &rc, "GET", "/v1/whoami", None, &[])
        .json()
        .unwrap();
    assert_eq!(
        (
            who["name"].as_str(),
            who["scope"].as_str(),
            who["team"].as_str()
        ),
        (Some("viewer"), Some("read"), Some("other"))
    );

    // provider: the workloads placed on that provider's sites. `hello`
    // ran on one site; `too-big` never ran (on no provider's list).
    let site = call(&rt, &c, "GET", &format!("/v1/workloads/{hello}"), None, &[])
        .json()
        .unwrap()["site"]
        .as_str()
        .unwrap()
        .to_string();
    let provider = site.split(':').next().unwrap().to_string();
    let other = if provider == "azure" { "aws" } else { "azure" };
    let ids = |q: &str| -> Vec<i64> {
        let v = call(&rt, &c, "GET", &format!("/v1/workloads?{q}"), None, &[])
            .json()
            .unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&format!("provider={provider}")), vec![hello]);
    assert_eq!(ids(&format!("provider={other}")), Vec::<i64>::new());
    assert_eq!(
        ids(&format!("provider={provider}&state=pending")),
        Vec::<i64>::new()
    );
    assert_eq!(ids(""), vec![big, hello]);
    // kind: kept from the submission (train when not given), filtered on
    // the server; a percent-encoded value is decoded (`%62` is `b`).
    assert_eq!(ids("kind=batch"), vec![big]);
    assert_eq!(ids("kind=%62atch"), vec![big]);
    assert_eq!(ids("kind=train"), vec![hello]);
    assert_eq!(ids("kind=serve"), Vec::<i64>::new());
    assert_eq!(ids("kind=batch&state=succeeded"), Vec::<i64>::new());
    let one = call(&rt, &c, "GET", &format!("/v1/workloads/{big}"), None, &[])
        .json()
        .unwrap();
    assert_eq!(one["kind"], "batch", "{one}");
    for (q, field) in [
        ("kind=gpu", "kind"),
        ("kind=%zzx", "kind"),
        ("team=%C3", "team"),
    ] {
        let bad = call(&rt, &c, "GET", &format!("/v1/workloads?{q}"), None, &[]);
        assert_eq!(bad.status, 400, "{q}: {}", bad.error_text());
        assert!(
            bad.error_text().contains(&format!("(field: {field})")),
            "{q}: {}",
            bad.error_text()
        );
    }
    let bad = call(&rt, &c, "GET", "/v1/workloads?provider=ibm", None, &[]);
    assert_eq!(bad.status, 400, "{}", bad.error_text());
    assert!(
        bad.error_text().contains("(field: provider)")
            && bad.error_text().contains("known: aws, azure, gcp"),
        "{}",
        bad.error_text()
    );

    // sites/history: the sites in /v1/sites' order, each with the
    // capacity the built-in `up` config gives it (8), sampled 10 s apart
    // at most.
    let h = call(&rt, &c, "GET", "/v1/sites/history", None, &[])
        .json()
        .unwrap();
    let names: Vec<Value> = call(&rt, &c, "GET", "/v1/sites", None, &[]).json().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(h["sites"].as_array().unwrap(), &names, "{h}");
    let samples = h["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{h}");
    for s in samples {
        assert_eq!(s["capacity"], json!([8, 8, 8]), "{h}");
    }
    for w in samples.windows(2) {
        assert!(
            w[1]["at_ms"].as_i64().unwrap() - w[0]["at_ms"].as_i64().unwrap() >= 10_000,
            "{h}"
        );
    }
    assert_eq!(
        call(
            &rt,
            &server.client(None),
            "GET",
            "/v1/sites/history",
            None,
            &[]
        )
        .status,
        401
    );

    // Heartbeats: every local site was heard from just now.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let sites = call(&rt, &c, "GET", "/v1/sites", None, &[]).json().unwrap();
    for s in sites["items"].as_array().unwrap() {
        let t = s["last_heartbeat_ms"].as_i64().unwrap_or(0);
        assert!((now_ms() - t).abs() < 30_000, "{s}");
    }
    // Health history: none yet; a 2-second drill of one site is recorded
    // (drill, down with why, up again with how long), stored, newest
    // first, and filtered by site.
    let events = |q: &str| -> Value {
        let r = call(&rt, &c, "GET", &format!("/v1/sites/events{q}"), None, &[]);
        assert_eq!(r.status, 200, "{}", r.error_text());
        r.json().unwrap()
    };
    assert_eq!(events("")["items"], json!([]));
    let target = names[1].as_str().unwrap().to_string();
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/drills",
        Some(&json!({"site": target, "duration": "2s"}).to_string()),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.error_text());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        let v = events("");
        if v["items"].as_array().unwrap().len() >= 3 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let kinds: Vec<(&str, &str)> = got["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["site"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![(&*target, "up"), (&*target, "down"), (&*target, "drill")],
        "{got}"
    );
    let items = got["items"].as_array().unwrap();
    assert!(
        items[1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("taken out by an outage drill"),
        "{got}"
    );
    assert!(
        items[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("back: heard again after"),
        "{got}"
    );
    let down_ms = items[0]["at_ms"].as_i64().unwrap() - items[1]["at_ms"].as_i64().unwrap();
    assert!((1_900..15_000).contains(&down_ms), "{down_ms} {got}");
    // The CLI's table of the same.
    let table = run_ok(&server, &admin, &["sites", "--events", "--site", &target]);
    assert!(
        table.contains("drill")
            && table.contains("taken out by an outage drill")
            && table.contains("back: heard again"),
        "{table}"
    );
    let table = run_ok(&server, &admin, &["sites"]);
    assert!(
        table.contains("heard") && table.contains("s ago"),
        "{table}"
    );
    let other = names[0].as_str().unwrap();
    assert_eq!(events(&format!("?site={other}"))["items"], json!([]));
    assert_eq!(
        events(&format!("?site={target}&limit=1"))["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = call(&rt, &c, "GET", "/v1/sites/events?site=nowhere", None, &[]);
    assert_eq!(bad.status, 400, "{}", bad.error_text());
    assert!(
        bad.error_text().contains("(field: site)"),
        "{}",
        bad.error_text()
    );
    assert_eq!(
        call(
            &rt,
            &server.client(None),
            "GET",
            "/v1/sites/events",
            None,
            &[]
        )
        .status,
        401
    );

    // summary: counts per state, by the store; a read token of another
    // team sees none of this team's work.
    let s = call(&rt, &c, "GET", "/v1/summary", None, &[])
        .json()
        .unwrap();
    assert_eq!(s["workloads_by_state"]["succeeded"], 1, "{s}");
    assert_eq!(s["workloads_by_state"]["pending"], 1, "{s}");
    assert_eq!(s["ledger"]["has_charges"], true, "{s}");
    let s = call(&rt, &rc, "GET", "/v1/summary", None, &[])
        .json()
        .unwrap();
    assert_eq!(s["workloads_by_state"], json!({}), "{s}");

    // burndown, against the hand computation: the contract started 90
    // days ago and the bill has $100 billed every day up to yesterday, so
    // 90 days are in its term and $9,000 burned by yesterday; the
    // straight line and the floors are the contract's own figures. Today
    // adds `hello`'s own run when it ran on Azure (placement prefers the
    // commitment forecast to fall short once the scheduler has its live
    // state): at most its list cost.
    let runs = call(&rt, &c, "GET", "/v1/usage", None, &[]).json().unwrap();
    let today_run_usd: f64 = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["provider"] == "azure")
        .map(|u| u["cost_micro_usd"].as_f64().unwrap() / 1e6)
        .sum();
    let b = call(&rt, &c, "GET", "/v1/ledger/burndown", None, &[])
        .json()
        .unwrap();
    let item = &b["items"][0];
    assert_eq!(item["name"], "azure-macc", "{b}");
    assert_eq!(item["committed_usd"], 50_000.0, "{b}");
    let burned = item["burned"].as_array().unwrap();
    let yesterday = burned
        .iter()
        .find(|p| p[0].as_i64() == Some(today() - 1))
        .unwrap();
    assert_eq!(yesterday[1].as_f64().unwrap(), 9_000.0, "{b}");
    let last = burned.last().unwrap()[1].as_f64().unwrap();
    assert!(
        (9_000.0..=9_000.0 + today_run_usd + 1e-6).contains(&last),
        "{last} {today_run_usd} {b}"
    );
    // Twelve months from 90 days ago: 365 days (366 over a 29 February).
    let term = item["end_day"].as_i64().unwrap() - item["start_day"].as_i64().unwrap();
    assert!((365..=366).contains(&term), "{term}");
    assert_eq!(item["start_day"].as_i64(), Some(today() - 90), "{b}");
    let floors = item["floors"].as_array().unwrap();
    assert_eq!(floors.first().unwrap()[1].as_f64(), Some(0.0), "{b}");
    assert_eq!(floors.last().unwrap()[1].as_f64(), Some(20_000.0), "{b}");
    let band = item["forecast"].as_array().unwrap();
    assert!(!band.is_empty(), "{b}");
    for p in band {
        let (p10, p50, p90) = (
            p[1].as_f64().unwrap(),
            p[2].as_f64().unwrap(),
            p[3].as_f64().unwrap(),
        );
        assert!(p10 <= p50 && p50 <= p90 && p10 >= 9_000.0 - 1e-6, "{p}");
    }
    // The status and the burn-down agree on what is burned.
    let st = call(&rt, &c, "GET", "/v1/ledger/status", None, &[])
        .json()
        .unwrap();
    // The status's amounts are to the cent.
    let st_burned = st["contracts"][0]["burned"].as_f64().unwrap();
    assert!(
        (st_burned - last).abs() < 0.005,
        "{st_burned} vs {last}: {st}"
    );
    // Spend this month (the overview's): from the first of the month of
    // the last charge; Azure's bill is $100 a day to yesterday, plus any
    // run of today that landed on Azure.
    let m = call(
        &rt,
        &c,
        "GET",
        "/v1/ledger/breakdown?by=provider&from=month",
        None,
        &[],
    )
    .json()
    .unwrap();
    let month_start = Timestamp(today() * 86_400).month_start();
    assert_eq!(
        m["from"].as_str(),
        Some(month_start.date_string().as_str()),
        "{m}"
    );
    let azure = m["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "azure")
        .map(|g| {
            g["billed"]
                .as_f64()
                .or_else(|| g["billed"].as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .unwrap_or(0.0);
    let by_hand = 100.0 * (today() - month_start.day()) as f64;
    assert!(
        azure >= by_hand - 1e-6 && azure <= by_hand + today_run_usd + 1e-6,
        "{azure} vs {by_hand} (+{today_run_usd}): {m}"
    );

    // Utilisation and coverage over time, against the bill's figures by
    // hand: sp-1 on each of its 14 days 75 % used and covering 40 of
    // 165; Azure's weekly savings rate 1 - 100/125 = 20 % before it.
    let u = call(&rt, &c, "GET", "/v1/ledger/utilisation", None, &[])
        .json()
        .unwrap();
    let sp = &u["commitments"][0];
    assert_eq!(
        (sp["commitment_id"].as_str(), sp["provider"].as_str()),
        (Some("sp-1"), Some("azure")),
        "{u}"
    );
    let days = sp["days"].as_array().unwrap();
    assert_eq!(days.len() as i64, PLAN_DAYS, "{u}");
    assert_eq!(days[0]["day"].as_i64(), Some(today() - PLAN_DAYS), "{u}");
    for d in days {
        assert!(
            (d["utilisation"].as_f64().unwrap() - 0.75).abs() < 1e-9,
            "{d}"
        );
        assert!(
            (d["coverage"].as_f64().unwrap() - 40.0 / 165.0).abs() < 1e-9,
            "{d}"
        );
        assert_eq!(d["unused_usd"].as_f64(), Some(10.0), "{d}");
    }
    // (The runs' own usage is in the ledger too, under their provider.)
    let rate = u["savings_rate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == "azure")
        .unwrap();
    let first = rate["weeks"][0][1].as_f64().unwrap();
    assert!((first - 0.2).abs() < 1e-9, "{u}");
    let bad = call(&rt, &c, "GET", "/v1/ledger/utilisation?at=soon", None, &[]);
    assert_eq!(bad.status, 422, "{}", bad.error_text());
    assert_eq!(
        call(
            &rt,
            &server.client(None),
            "GET",
            "/v1/ledger/utilisation",
            None,
            &[]
        )
        .status,
        401
    );

    // A bad date is refused naming the parameter (422, as for the status);
    // an unknown parameter is a 400.
    let bad = call(
        &rt,
        &c,
        "GET",
        "/v1/ledger/burndown?at=yesterday",
        None,
        &[],
    );
    assert_eq!(bad.status, 422, "{}", bad.error_text());
    assert!(
        bad.error_text().contains("(field: at)"),
        "{}",
        bad.error_text()
    );
    let bad = call(&rt, &c, "GET", "/v1/ledger/burndown?limit=3", None, &[]);
    assert_eq!(bad.status, 400, "{}", bad.error_text());

    // Answers are kept until the ledger changes, and no longer: a new
    // contracts version is in the very next answers.
    for _ in 0..2 {
        let s = call(&rt, &c, "GET", "/v1/ledger/status", None, &[])
            .json()
            .unwrap();
        assert_eq!(
            s["contracts"][0]["committed"].as_f64(),
            Some(50_000.0),
            "{s}"
        );
    }
    let yaml = contracts(today()).replace("commit_usd: 50000", "commit_usd: 60000");
    let r = call(
        &rt,
        &c,
        "PUT",
        "/v1/contracts?name=v2.yaml",
        Some(&yaml),
        &[],
    );
    assert!(r.status < 300, "{}", r.error_text());
    let s = call(&rt, &c, "GET", "/v1/ledger/status", None, &[])
        .json()
        .unwrap();
    assert_eq!(
        s["contracts"][0]["committed"].as_f64(),
        Some(60_000.0),
        "{s}"
    );
    let b = call(&rt, &c, "GET", "/v1/ledger/burndown", None, &[])
        .json()
        .unwrap();
    assert_eq!(
        b["items"][0]["committed_usd"].as_f64(),
        Some(60_000.0),
        "{b}"
    );
    let inv = call(&rt, &c, "GET", "/v1/ledger/inventory", None, &[])
        .json()
        .unwrap();
    assert!(inv.to_string().contains("azure-macc"), "{inv}");
}

/// What each chart in the page is: title, axes, axis titles, data.
const CHARTS: &str = "return Array.from(document.querySelectorAll('svg.chart')).map(c => ({
  title: (c.querySelector('title') || {}).textContent || '',
  x: !!c.querySelector('.axis-x line'), y: !!c.querySelector('.axis-y line'),
  xTitle: (c.querySelector('.axis-x .axis-title') || {}).textContent || '',
  yTitle: (c.querySelector('.axis-y .axis-title') || {}).textContent || '',
  points: Number(c.getAttribute('data-points')),
  marks: c.querySelectorAll('.mark').length }));";

fn check_charts(b: &Browser, page: &str, at_least: usize) -> Vec<Value> {
    let charts = b.eval(CHARTS, json!([]));
    let charts = charts.as_array().cloned().unwrap_or_default();
    assert!(
        charts.len() >= at_least,
        "{page}: {} charts, want {at_least}; console: {:?}; page: {}",
        charts.len(),
        b.console(),
        b.eval(
            "return document.getElementById('main').innerHTML.slice(0, 3000);",
            json!([])
        )
    );
    for c in &charts {
        assert!(!c["title"].as_str().unwrap_or("").is_empty(), "{page}: {c}");
        assert!(c["x"] == true && c["y"] == true, "{page}: axes {c}");
        assert!(
            !c["xTitle"].as_str().unwrap_or("").is_empty(),
            "{page}: {c}"
        );
        assert!(
            !c["yTitle"].as_str().unwrap_or("").is_empty(),
            "{page}: {c}"
        );
        assert!(c["points"].as_u64().unwrap_or(0) > 0, "{page}: no data {c}");
        assert!(c["marks"].as_u64().unwrap_or(0) > 0, "{page}: no marks {c}");
    }
    charts
}

fn shots_dir(fallback: &std::path::Path) -> std::path::PathBuf {
    match std::env::var("SKYWARD_UPDATE_SCREENSHOTS") {
        Ok(v) if v == "1" => {
            let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard");
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        _ => fallback.to_path_buf(),
    }
}

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    common::wait_until(&format!("a listener on {port}"), 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// The gateway page: a real `skyward gateway run` in front of the mock
/// upstream, three chat completions through it, and a server configured
/// with the gateway's metrics page. The tokens the dashboard shows are
/// the ones the client was told it used, summed by hand here.
#[test]
fn the_gateway_page_shows_what_went_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (mock_port, gw_port) = (free_port(), free_port());
    let _mock = Proc(
        Command::new(BIN)
            .args([
                "gateway",
                "mock",
                "--listen",
                &format!("127.0.0.1:{mock_port}"),
                "--name",
                "ptu",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(mock_port);
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "listen: 127.0.0.1:{gw_port}\nmodels:\n  gpt:\n    deployments:\n      - {{name: azure-ptu, provider: azure, region: eastus, url: 'http://127.0.0.1:{mock_port}/v1', capacity: payg, price: {{input_per_mtok: 2, output_per_mtok: 8}}}}\nkeys:\n  - {{name: team-a, key_env: DASH_GW_KEY, tenant: research}}\n"
        ),
    )
    .unwrap();
    let _gw = Proc(
        Command::new(BIN)
            .args(["gateway", "run", "--config"])
            .arg(dir.path().join("gateway.yaml"))
            .env("DASH_GW_KEY", "key-a")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(gw_port);
    let rt = rt();
    let gw = skyward_server::client::Client::new(
        &format!("http://127.0.0.1:{gw_port}"),
        Some("key-a".into()),
    )
    .unwrap();
    let (mut prompt, mut completion) = (0u64, 0u64);
    for i in 0..3 {
        let body = json!({"model": "gpt", "messages": [{"role": "user", "content": format!("hello {i}")}]}).to_string();
        let r = call(&rt, &gw, "POST", "/v1/chat/completions", Some(&body), &[]);
        assert_eq!(r.status, 200, "{}", r.error_text());
        let u = &r.json().unwrap()["usage"];
        prompt += u["prompt_tokens"].as_u64().unwrap();
        completion += u["completion_tokens"].as_u64().unwrap();
    }
    assert!(prompt > 0 && completion > 0);
    // The cost at the deployment's prices: $2 and $8 per million tokens.
    let cost = (prompt as f64 * 2.0 + completion as f64 * 8.0) / 1e6;

    let sdir = dir.path().join("server");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::write(
        sdir.join("server.yaml"),
        format!("{}gateways:\n  - name: main\n    metrics_url: http://127.0.0.1:{gw_port}/metrics\n    sample_every: 1s\n  - name: gone\n    metrics_url: http://127.0.0.1:{}/metrics\n    sample_every: 1s\n", test_config(), free_port()),
    )
    .unwrap();
    let server = Server::start(&sdir, free_port(), None);
    let admin = server.admin_token();
    let c = server.client(Some(&admin));
    let v = call(&rt, &c, "GET", "/v1/gateways", None, &[])
        .json()
        .unwrap();
    let main = &v["items"][0];
    assert_eq!(main["name"], "main", "{v}");
    let usage = &main["view"]["usage"][0];
    assert_eq!(
        (usage["tenant"].as_str(), usage["deployment"].as_str()),
        (Some("research"), Some("azure-ptu")),
        "{v}"
    );
    assert_eq!(usage["prompt_tokens"].as_f64(), Some(prompt as f64), "{v}");
    assert_eq!(
        usage["completion_tokens"].as_f64(),
        Some(completion as f64),
        "{v}"
    );
    assert!(
        (usage["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{v} vs {cost}"
    );
    let dep = &main["view"]["deployments"][0];
    assert_eq!(
        (dep["up"].as_bool(), dep["responses"]["200"].as_f64()),
        (Some(true), Some(3.0)),
        "{v}"
    );
    assert_eq!(
        main["view"]["added_latency"]["count"].as_f64(),
        Some(3.0),
        "{v}"
    );
    // A gateway that does not answer is listed with why, not an error page.
    assert!(
        v["items"][1]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    // Nothing billed and nothing run: the ledger is empty, and the
    // dashboard is told so rather than asking questions it refuses.
    let s = call(&rt, &c, "GET", "/v1/summary", None, &[])
        .json()
        .unwrap();
    assert_eq!(s["ledger"]["has_charges"], false, "{s}");
    // No token, nothing.
    assert_eq!(
        call(&rt, &server.client(None), "GET", "/v1/gateways", None, &[]).status,
        401
    );

    // Traffic over time: the server reads the gateway every second. Once
    // it has read it, four more completions; the intervals between reads
    // add up to those four requests, their tokens and their cost (at $2
    // and $8 per million), summed by hand from what the client was told.
    let traffic = |v: &Value, k: &str| -> Value {
        v["items"][k.parse::<usize>().unwrap()]["traffic"].clone()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v = call(&rt, &c, "GET", "/v1/gateways", None, &[])
            .json()
            .unwrap();
        let t = traffic(&v, "0");
        let answered = t["samples"].as_u64().unwrap_or(0) as usize
            > t["unanswered_ms"].as_array().map_or(0, Vec::len);
        if answered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never read: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (mut tokens, mut cost4) = (0u64, 0.0);
    for i in 0..4 {
        let body = json!({"model": "gpt", "messages": [{"role": "user", "content": format!("again {i}")}]}).to_string();
        let r = call(&rt, &gw, "POST", "/v1/chat/completions", Some(&body), &[]);
        assert_eq!(r.status, 200, "{}", r.error_text());
        let u = &r.json().unwrap()["usage"];
        let (p, q) = (
            u["prompt_tokens"].as_u64().unwrap(),
            u["completion_tokens"].as_u64().unwrap(),
        );
        tokens += p + q;
        prompt += p;
        cost4 += (p as f64 * 2.0 + q as f64 * 8.0) / 1e6;
    }
    let sums = |t: &Value| -> (f64, f64, f64) {
        let mut s = (0.0, 0.0, 0.0);
        for i in t["intervals"].as_array().unwrap() {
            let secs = (i["to_ms"].as_f64().unwrap() - i["from_ms"].as_f64().unwrap()) / 1000.0;
            s.0 += i["requests_per_s"].as_f64().unwrap() * secs;
            s.1 += i["tokens_per_s"].as_f64().unwrap() * secs;
            s.2 += i["cost_usd_per_hour"].as_f64().unwrap() * secs / 3600.0;
        }
        s
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let v = loop {
        let v = call(&rt, &c, "GET", "/v1/gateways", None, &[])
            .json()
            .unwrap();
        if (sums(&traffic(&v, "0")).0 - 4.0).abs() < 1e-6 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (requests, tokens_seen, cost_seen) = sums(&traffic(&v, "0"));
    assert!((requests - 4.0).abs() < 1e-6, "{v}");
    assert!(
        (tokens_seen - tokens as f64).abs() < 1e-6,
        "{tokens_seen} vs {tokens}: {v}"
    );
    assert!(
        (cost_seen - cost4).abs() < 1e-9,
        "{cost_seen} vs {cost4}: {v}"
    );
    // The gateway that never answers: every read is a gap.
    let gone = traffic(&v, "1");
    assert!(gone["intervals"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(
        gone["unanswered_ms"].as_array().unwrap().len() as u64,
        gone["samples"].as_u64().unwrap(),
        "{v}"
    );

    let b = Browser::start(&dir.path().join("profile"), free_port(), 1280, 900);
    let base = server.url();
    b.goto(&format!("{base}/"));
    b.type_into("#token", &admin);
    b.click("#login");
    b.wait(
        "overview",
        30,
        "return document.getElementById('main').dataset.loaded === 'overview';",
        json!([]),
    );
    open(&b, &base, "#/gateway", "gateway");
    let charts = check_charts(&b, "gateway", 5);
    for title in ["Requests over time", "Tokens and cost over time"] {
        assert!(
            charts.iter().any(|c| c["title"] == title),
            "{title}: {charts:?}"
        );
    }
    let text = b
        .eval(
            "return document.getElementById('main').innerText;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "research",
        "azure-ptu",
        "closed",
        "Not answering",
        &prompt.to_string(),
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    shoot(&b, "gateway", &shots_dir(dir.path()));
    let errors: Vec<(String, String)> = b
        .console()
        .into_iter()
        .filter(|(l, _)| l == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

fn shoot(b: &Browser, name: &str, out: &std::path::Path) {
    let png = b.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "{name}: {} bytes",
        png.len()
    );
    std::fs::write(out.join(format!("{name}.png")), png).unwrap();
}

/// Opens `hash` and waits until that very route has rendered (`loaded`
/// names its page).
fn open(b: &Browser, base: &str, hash: &str, loaded: &str) {
    b.goto(&format!("{base}/{hash}"));
    b.wait(
        &format!("page {hash}"),
        30,
        "const m = document.getElementById('main'); return m.dataset.loaded === arguments[0] && m.dataset.route === arguments[1];",
        json!([loaded, hash]),
    );
}

#[test]
fn a_user_logs_in_sees_the_queue_cancels_and_reads_the_burn_down_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, hello, big) = setup(dir.path(), None);
    let rt = rt();
    let c = server.client(Some(&admin));
    let reader = token(
        &rt,
        &c,
        json!({"name": "viewer", "scope": "read", "team": "admin"}),
    );
    let shots = shots_dir(dir.path());
    let profile = dir.path().join("chromium-profile");
    let b = Browser::start(&profile, free_port(), 1280, 1300);
    let base = server.url();

    // A wrong token is refused at the login, with the server's reason.
    b.goto(&format!("{base}/"));
    b.type_into("#token", "sky_not_a_real_token");
    b.click("#login");
    b.wait("a refused login says why", 20, "const e = document.querySelector('.login .error'); return !!e && e.textContent.length > 0;", json!([]));
    assert!(!b.exists("#nav:not([hidden])"));
    // The browser logs the refused request itself, and nothing else.
    let refused = b.console();
    assert!(
        refused
            .iter()
            .all(|(_, m)| m.contains("/v1/whoami") && m.contains("401")),
        "{refused:?}"
    );

    // Log in as admin: the overview.
    b.type_into("#token", &admin);
    b.click("#login");
    b.wait(
        "overview",
        30,
        "return document.getElementById('main').dataset.loaded === 'overview';",
        json!([]),
    );
    let who = b.eval(
        "return document.getElementById('who').textContent;",
        json!([]),
    );
    assert!(who.as_str().unwrap().contains("admin"), "{who}");
    let charts = check_charts(&b, "overview", 2);
    assert!(
        charts
            .iter()
            .any(|c| c["title"].as_str().unwrap().contains("azure-macc")),
        "{charts:?}"
    );
    shoot(&b, "overview", &shots);

    // The queue shows the waiting workload with its reasons; cancel it.
    open(&b, &base, "#/workloads", "workloads");
    let row = format!("button.cancel[data-id='{big}']");
    b.find(&row, 20);
    let queue_text = b.eval(
        "return document.querySelector('#queue-h').parentElement.innerText;",
        json!([]),
    );
    assert!(
        queue_text.as_str().unwrap().contains("too-big"),
        "{queue_text}"
    );
    check_charts(&b, "workloads", 0);
    shoot(&b, "workloads", &shots);
    b.click(&row);
    b.wait("cancel asks to confirm", 10, "const x = document.querySelector(arguments[0]); return !!x && x.textContent === 'Confirm cancel';", json!([row]));
    b.click(&row);
    wait_for(&rt, &c, big, 30, |v| v["state"] == "cancelled");
    // The page shows it without a reload (the live refresh).
    b.wait(
        "the cancelled state appears without reload",
        30,
        "return Array.from(document.querySelectorAll('tr')).some(r => r.innerText.includes('too-big') && r.innerText.includes('cancelled'));",
        json!([]),
    );

    // Filtered by provider on the server: only what ran there.
    open(&b, &base, "#/workloads?provider=gcp", "workloads");
    let listed = b.eval(
        "return document.querySelector('#all-h').parentElement.innerText;",
        json!([]),
    );
    assert!(
        listed.as_str().unwrap().contains("No workloads match."),
        "{listed}"
    );
    // By kind, chosen in the form: only the batch workload is listed.
    open(&b, &base, "#/workloads", "workloads");
    b.eval(
        "const s = document.querySelector('select[name=kind]'); s.value = 'batch'; s.form.requestSubmit(); return true;",
        json!([]),
    );
    b.wait(
        "the kind filter lists the batch workload only",
        20,
        "const t = document.querySelector('#all-h'); const m = document.getElementById('main'); if (!t || !(m.dataset.route || '').includes('kind=batch') || m.dataset.loaded !== 'workloads') return false; const rows = Array.from(t.parentElement.querySelectorAll('tbody tr')); return rows.length === 1 && rows[0].innerText.includes('too-big') && rows[0].innerText.includes('batch');",
        json!([]),
    );

    // A workload's page: its attempts and its log.
    open(&b, &base, &format!("#/workloads/{hello}"), "workloads");
    b.wait("the log", 20, "return document.querySelector('pre.log').textContent.includes('hello from the dashboard test');", json!([]));
    let text = b
        .eval(
            "return document.getElementById('main').innerText;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("succeeded")
            && text.contains("Attempts")
            && text.contains("Speeds")
            && text.contains("No run of this class has reported its throughput"),
        "{text}"
    );
    shoot(&b, "workload", &shots);

    // A long log shows its end: `seq 1 30000` writes 168,894 bytes; the
    // page shows the last 64 KB, which end with 30000.
    let long = submit(
        &rt,
        &c,
        json!({"name": "long-log", "accelerators": "H100:1", "run": "seq 1 30000"}),
    );
    wait_for(&rt, &c, long, 60, |v| v["state"] == "succeeded");
    open(&b, &base, &format!("#/workloads/{long}"), "workloads");
    b.wait(
        "the log's tail",
        20,
        "const t = document.querySelector('pre.log').textContent; return t.trimEnd().endsWith('\\n30000') && !t.startsWith('1\\n');",
        json!([]),
    );
    let note = b.eval(
        "return document.getElementById('main').innerText;",
        json!([]),
    );
    assert!(
        note.as_str()
            .unwrap()
            .contains("The last 64 KB of 168894 bytes"),
        "{note}"
    );

    // Use over time needs two samples, 10 s apart.
    common::wait_until("two samples of the sites", 30, || {
        call(&rt, &c, "GET", "/v1/sites/history", None, &[])
            .json()
            .unwrap()["samples"]
            .as_array()
            .is_some_and(|s| s.len() >= 2)
    });
    open(&b, &base, "#/sites", "sites");
    let charts = check_charts(&b, "sites", 4);
    assert!(
        charts
            .iter()
            .any(|c| c["title"] == "Accelerators in use over time"),
        "{charts:?}"
    );
    // An outage rehearsed from the page (admin): a confirming second
    // click; the site's drill, down and back appear in its history.
    b.click("#drill");
    b.wait(
        "the drill asks to confirm",
        10,
        "return document.getElementById('drill').textContent.startsWith('Confirm');",
        json!([]),
    );
    b.eval(
        "document.querySelector('#drill-form input[name=duration]').value = '2s'; return true;",
        json!([]),
    );
    b.click("#drill");
    b.wait(
        "the drill, the site down and back in the history",
        40,
        "const t = document.querySelector('#events-h'); if (!t) return false; const x = t.parentElement.innerText; return x.includes('outage drill') && x.includes('back: heard again');",
        json!([]),
    );
    let said = b.eval(
        "return document.getElementById('drill-result').innerText;",
        json!([]),
    );
    assert!(said.as_str().unwrap().contains("Drill started"), "{said}");
    shoot(&b, "sites", &shots);

    // The commitment's burn-down: its straight line, floors and band.
    open(&b, &base, "#/commitments", "commitments");
    let charts = check_charts(&b, "commitments", 4);
    // Utilisation and coverage over time: sp-1's 14 days, and the weekly
    // savings rate (each chart checked for title, axes and data above).
    for title in [
        "Commitment utilisation by day",
        "Commitment coverage by day",
        "Effective savings rate by week",
    ] {
        let c = charts
            .iter()
            .find(|c| c["title"] == title)
            .unwrap_or_else(|| panic!("{title}: {charts:?}"));
        if title.starts_with("Commitment") {
            assert_eq!(c["points"].as_i64(), Some(PLAN_DAYS), "{c}");
        }
    }
    assert!(
        charts[0]["title"]
            .as_str()
            .unwrap()
            .contains("azure-macc: burn-down")
            || charts[0]["title"]
                .as_str()
                .unwrap()
                .contains("azure-macc (azure): burn-down"),
        "{charts:?}"
    );
    // How much to commit next, asked from the page.
    b.type_into("input[name=provider]", "azure");
    b.click("#recommend");
    b.wait(
        "the recommendation",
        60,
        "const r = document.getElementById('recommendation'); return !!r && (r.innerText.includes('Recommendations and their risk') || r.innerText.includes('Refused'));",
        json!([]),
    );
    let rec = b.eval(
        "return document.getElementById('recommendation').innerText;",
        json!([]),
    );
    assert!(
        rec.as_str()
            .unwrap()
            .contains("Recommendations and their risk"),
        "{rec}"
    );
    let legend = b.eval(
        "return document.querySelector('svg.chart .legend').textContent;",
        json!([]),
    );
    for name in ["burned", "straight line", "floors", "forecast P10–P90"] {
        assert!(legend.as_str().unwrap().contains(name), "{name}: {legend}");
    }
    shoot(&b, "commitments", &shots);

    // No gateway configured: the page says how to add one.
    open(&b, &base, "#/gateway", "gateway");
    let text = b.eval(
        "return document.getElementById('main').innerText;",
        json!([]),
    );
    assert!(
        text.as_str().unwrap().contains("No gateway configured"),
        "{text}"
    );

    // Admin: a token made from the page works, is shown once, and stops
    // working when revoked from the page; contracts applied from the page
    // become the next version.
    open(&b, &base, "#/admin", "admin");
    b.type_into("input[name=name]", "from-the-page");
    b.eval(
        "document.querySelector('select[name=scope]').value = 'read';",
        json!([]),
    );
    b.type_into("input[name=team]", "admin");
    b.click("#create-token");
    b.wait("the new token", 20, "const c = document.getElementById('new-token'); return !!c && c.textContent.startsWith('sky_');", json!([]));
    let made = b
        .eval(
            "return document.getElementById('new-token').textContent;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    let who = call(
        &rt,
        &server.client(Some(&made)),
        "GET",
        "/v1/whoami",
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(
        (who["name"].as_str(), who["scope"].as_str()),
        (Some("from-the-page"), Some("read")),
        "{who}"
    );
    let id = call(&rt, &c, "GET", "/v1/tokens", None, &[])
        .json()
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "from-the-page")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let revoke = format!("button[data-token='{id}']");
    b.click(&revoke);
    b.wait("revoke asks to confirm", 10, "const x = document.querySelector(arguments[0]); return !!x && x.textContent === 'Confirm revoke';", json!([revoke]));
    b.click(&revoke);
    b.wait(
        "the page shows it revoked",
        20,
        "return Array.from(document.querySelectorAll('tr')).some(r => r.innerText.includes('from-the-page') && r.innerText.includes('revoked'));",
        json!([]),
    );
    common::wait_until("the token to stop working", 20, || {
        call(
            &rt,
            &server.client(Some(&made)),
            "GET",
            "/v1/whoami",
            None,
            &[],
        )
        .status
            == 401
    });
    let yaml = contracts(today()).replace("commit_usd: 50000", "commit_usd: 60000");
    // As typed: the value changes and the page hears an input event (the
    // live refresh must not throw the edit away).
    b.eval(
        "const t = document.querySelector('textarea[name=contracts]'); t.value = arguments[0]; t.dispatchEvent(new Event('input', { bubbles: true }));",
        json!([yaml]),
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let kept = b.eval(
        "return document.querySelector('textarea[name=contracts]').value;",
        json!([]),
    );
    assert!(
        kept.as_str().unwrap().contains("commit_usd: 60000"),
        "an edit survives the live refresh: {kept}"
    );
    b.click("#apply-contracts");
    b.wait("applied", 20, "const a = document.getElementById('applied'); return !!a && a.innerText.includes('Applied as version 2');", json!([]));
    let cur = call(&rt, &c, "GET", "/v1/contracts", None, &[])
        .json()
        .unwrap();
    assert_eq!(cur["version"], 2, "{cur}");
    assert!(
        cur["text"].as_str().unwrap().contains("commit_usd: 60000"),
        "{cur}"
    );
    shoot(&b, "admin", &shots);

    // No page logged an error.
    let errors: Vec<(String, String)> = b
        .console()
        .into_iter()
        .filter(|(l, _)| l == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // A read token sees the work but is offered no cancel.
    b.click("#logout");
    b.find("#token", 10);
    b.type_into("#token", &reader);
    b.click("#login");
    open(&b, &base, "#/workloads", "workloads");
    b.wait(
        "the list",
        20,
        "return document.body.innerText.includes('hello');",
        json!([]),
    );
    assert!(!b.exists("button.cancel"), "a read token is offered cancel");
    assert!(
        !b.exists("#nav a[data-page=admin]:not([hidden])"),
        "a read token is offered admin"
    );

    // Narrow window: the page still fits (no horizontal scroll of the body).
    let narrow = Browser::start(&dir.path().join("narrow-profile"), free_port(), 380, 800);
    narrow.goto(&format!("{base}/"));
    narrow.type_into("#token", &admin);
    narrow.click("#login");
    narrow.wait(
        "overview (narrow)",
        30,
        "return document.getElementById('main').dataset.loaded === 'overview';",
        json!([]),
    );
    let overflow = narrow.eval(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        json!([]),
    );
    assert!(
        overflow.as_i64().unwrap_or(99) <= 1,
        "horizontal overflow {overflow}"
    );
    shoot(&narrow, "overview-narrow", &shots);
    let errors: Vec<(String, String)> = narrow
        .console()
        .into_iter()
        .filter(|(l, _)| l == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
