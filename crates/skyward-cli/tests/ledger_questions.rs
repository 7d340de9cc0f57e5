#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Every ledger question has one home (`skyward_app`): asked of a server
//! (`--server`, the API) it gets the same answer as asked of the same
//! database directly (`--db`), on SQLite and on PostgreSQL; and the API
//! refuses wrong parameters naming them.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::Value;
use std::process::Command;

const CONTRACTS: &str = "contracts:
  - name: edp
    kind: spend
    provider: aws
    start: 2026-01-01
    term_years: 1
    commit_usd: 2000000
    discount_pct: 10
  - name: sp
    kind: hourly
    provider: gcp
    instrument: gcp-flexible-cud
    start: 2026-02-01
    term_years: 1
    commit_usd_per_hour: 5
    discount_pct: 28
";

fn run(args: &[&str], token: &str) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("SKYWARD_TOKEN", token)
        .env_remove("SKYWARD_SERVER")
        .output()
        .unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn questions() -> Vec<Vec<&'static str>> {
    vec![
        vec!["analyze", "edp"],
        vec![
            "analyze",
            "--what-if",
            "--provider",
            "azure",
            "--commit-usd",
            "500000",
            "--term-years",
            "2",
            "--discount-pct",
            "12",
            "--growth-pct",
            "15",
        ],
        vec![
            "recommend",
            "--provider",
            "gcp",
            "--discount-pct",
            "28",
            "--scenarios",
            "40",
        ],
        vec![
            "recommend",
            "--provider",
            "aws",
            "--discount-tiers",
            "1e5:4,1e6:8",
            "--term-years",
            "2",
        ],
        vec![
            "options",
            "--provider",
            "gcp",
            "--option",
            "1:none:28,3:all:52",
            "--ladder",
            "4x3",
            "--scenarios",
            "30",
        ],
        vec![
            "backtest",
            "--provider",
            "aws",
            "--discount-pct",
            "20",
            "--horizon-days",
            "30",
            "--step-days",
            "30",
            "--min-history-days",
            "60",
            "--scenarios",
            "20",
            "--lookback-days",
            "7,30",
        ],
        vec!["breakdown", "--by", "provider"],
        vec![
            "breakdown",
            "--by",
            "region",
            "--provider",
            "aws",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
        ],
        vec!["inventory"],
        vec!["status"],
    ]
}

fn same_answers(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), database_url);
    let admin = server.admin_token();
    let url = server.url();
    let db = match database_url {
        Some(u) => u.to_string(),
        None => server.data.join("skyward.db").display().to_string(),
    };
    // 180 days of generated billing over three providers, and contracts,
    // in through the API.
    let bill = dir.path().join("bill.csv");
    ok(run(
        &[
            "ledger",
            "generate",
            "--start",
            "2026-01-01",
            "--days",
            "180",
            "--rows-per-hour",
            "1",
            "-O",
            bill.to_str().unwrap(),
        ],
        &admin,
    ));
    ok(run(
        &["ledger", "import", bill.to_str().unwrap(), "--server", &url],
        &admin,
    ));
    let cfile = dir.path().join("contracts.yaml");
    std::fs::write(&cfile, CONTRACTS).unwrap();
    ok(run(
        &[
            "contracts",
            "apply",
            cfile.to_str().unwrap(),
            "--server",
            &url,
        ],
        &admin,
    ));

    for q in questions() {
        let ask = |place: &[&str]| -> Value {
            let mut args = vec!["ledger"];
            args.extend(&q);
            args.extend(place);
            args.extend(["-o", "json"]);
            let mut v: Value = serde_json::from_str(&ok(run(&args, &admin))).unwrap();
            // Wall-clock time is the one thing that differs.
            if let Some(o) = v.as_object_mut() {
                o.remove("seconds");
            }
            v
        };
        let remote = ask(&["--server", &url]);
        let local = ask(&["--db", &db]);
        assert_eq!(remote, local, "ledger {q:?}");
        assert!(
            !remote.as_object().map(|o| o.is_empty()).unwrap_or(true),
            "ledger {q:?}: {remote}"
        );
    }

    // The report: the same page, but for the line that says where the
    // data is.
    let (a, b) = (dir.path().join("a.html"), dir.path().join("b.html"));
    ok(run(
        &[
            "ledger",
            "report",
            "--html",
            a.to_str().unwrap(),
            "--server",
            &url,
        ],
        &admin,
    ));
    ok(run(
        &[
            "ledger",
            "report",
            "--html",
            b.to_str().unwrap(),
            "--db",
            &db,
        ],
        &admin,
    ));
    let remote = std::fs::read_to_string(&a).unwrap();
    let local = std::fs::read_to_string(&b).unwrap();
    assert!(remote.contains("<svg"), "no chart in the report");
    assert!(remote.contains("edp (aws): burn-down over the term"));
    let local = local.replace(&db.replace('&', "&amp;"), "this server's database");
    let differ = remote
        .bytes()
        .zip(local.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(remote.len().min(local.len()));
    assert!(
        remote == local,
        "the reports differ beyond where the data is, from byte {differ}: {:?} vs {:?}",
        &remote[differ.saturating_sub(80)..(differ + 80).min(remote.len())],
        &local[differ.saturating_sub(80)..(differ + 80).min(local.len())]
    );

    // A file of contracts is for a local what-if; a server uses its own.
    let o = run(
        &[
            "ledger",
            "inventory",
            "--contracts",
            cfile.to_str().unwrap(),
            "--server",
            &url,
        ],
        &admin,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stored contracts"));
    // A wrong value through the server is named as the flag's field.
    let o = run(
        &[
            "ledger",
            "recommend",
            "--provider",
            "gcp",
            "--discount-pct",
            "140",
            "--server",
            &url,
        ],
        &admin,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("discount_pct"), "{err}");
    let o = run(
        &[
            "ledger",
            "recommend",
            "--provider",
            "gcp",
            "--discount-pct",
            "140",
            "--db",
            &db,
        ],
        &admin,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--discount-pct: must be above 0"), "{err}");
}

#[test]
fn ledger_questions_get_the_same_answer_from_a_server_sqlite() {
    same_answers(None);
}

#[test]
fn ledger_questions_get_the_same_answer_from_a_server_postgres() {
    let url = pg_database("questions");
    same_answers(Some(&url));
}

#[test]
fn the_question_endpoints_refuse_wrong_parameters_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let anon = server.client(None);
    let get =
        |cl: &skyward_server::client::Client, path: &str| call(&rt, cl, "GET", path, None, &[]);
    let field = |r: &skyward_server::client::Reply| -> (u16, String, String) {
        let v = r.json().unwrap_or(Value::Null);
        (
            r.status,
            v["error"]["code"].as_str().unwrap_or("").to_string(),
            v["error"]["field"].as_str().unwrap_or("").to_string(),
        )
    };
    for path in [
        "/v1/ledger/analyze?contract=edp",
        "/v1/ledger/recommend?provider=aws&discount_pct=20",
        "/v1/ledger/options?provider=aws&options=1:none:20",
        "/v1/ledger/backtest?provider=aws&discount_pct=20",
        "/v1/ledger/breakdown?by=provider",
        "/v1/ledger/inventory",
        "/v1/ledger/report",
    ] {
        assert_eq!(get(&anon, path).status, 401, "{path}");
    }
    let cases: Vec<(&str, u16, &str, &str)> = vec![
        ("/v1/ledger/recommend?provider=aws&discount_pct=abc", 400, "invalid_parameter", "discount_pct"),
        ("/v1/ledger/recommend?provider=aws&discount_pct=NaN", 422, "invalid_input", "discount_pct"),
        ("/v1/ledger/recommend?provider=aws&discount_pct=20&scenarios=1000000", 422, "invalid_input", "scenarios"),
        ("/v1/ledger/recommend?provider=aws&discount_pct=20&lookback_days=7,x", 400, "invalid_parameter", "lookback_days"),
        ("/v1/ledger/recommend?provider=aws&discount_pct=20&colour=red", 400, "invalid_parameter", "colour"),
        ("/v1/ledger/recommend?provider=aws&provider=gcp&discount_pct=20", 400, "invalid_parameter", "provider"),
        ("/v1/ledger/recommend?provider=aws&discount_pct=20", 422, "invalid_input", "provider"),
        ("/v1/ledger/options?provider=aws&options=9:never:0", 422, "invalid_input", "options"),
        ("/v1/ledger/options?provider=aws&options=1:none:20&ladder=99x99", 422, "invalid_input", "ladder"),
        ("/v1/ledger/backtest?provider=aws&discount_pct=20&horizon_days=0", 422, "invalid_input", "horizon_days"),
        ("/v1/ledger/breakdown?by=colour", 422, "invalid_input", "by"),
        ("/v1/ledger/breakdown?by=provider&from=2026-13-45&to=2026-02-01", 422, "invalid_input", "from"),
        ("/v1/ledger/analyze?what_if=true&provider=aws&commit_usd=-5&term_years=1&discount_pct=5&start=2026-01-01", 422, "invalid_input", "commit_usd"),
        ("/v1/ledger/analyze?what_if=maybe", 400, "invalid_parameter", "what_if"),
        ("/v1/ledger/inventory?at=yesterday", 422, "invalid_input", "at"),
        ("/v1/ledger/report?at=%ZZ", 422, "invalid_input", "at"),
    ];
    for (path, status, code, f) in cases {
        let r = get(&c, path);
        let (s, got_code, got_field) = field(&r);
        assert_eq!(
            (s, got_code.as_str()),
            (status, code),
            "{path}: {}",
            r.error_text()
        );
        if !f.is_empty() {
            assert_eq!(got_field, f, "{path}: {}", r.error_text());
        }
    }
    // Nothing stored: questions about an empty ledger say so.
    let r = get(&c, "/v1/ledger/inventory");
    assert_eq!(r.status, 422, "{}", r.error_text());
    assert!(
        r.error_text().contains("no billing data"),
        "{}",
        r.error_text()
    );
    let long = format!("/v1/ledger/breakdown?by={}", "a".repeat(5000));
    assert_eq!(get(&c, &long).status, 400);
}
