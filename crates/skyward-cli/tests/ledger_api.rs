#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The ledger and contracts endpoints against hostile and wrong input:
//! each refusal is a 4xx with a stable code, and nothing stored changes.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::Value;

const CONTRACTS: &str = "contracts:\n  - name: edp\n    kind: spend\n    provider: aws\n    start: 2026-01-01\n    term_years: 3\n    commit_usd: 3000000\n    discount_pct: 10\n";

const HEADER: &str = "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,BilledCost,EffectiveCost,ListCost,ProviderName,RegionId,PricingCategory\n";

fn rows(billed: &str) -> String {
    let mut s = String::from(HEADER);
    for h in 0..24 {
        s.push_str(&format!(
            "2026-10-01T00:00:00Z,2026-10-02T{h:02}:00:00Z,2026-10-02T{:02}:00:00Z,Usage,{billed},{billed},{billed},AWS,us-east-1,Standard\n",
            h + 1
        ));
    }
    s.replace("T24:00:00Z", "T23:59:59Z")
}

fn send(
    rt: &tokio::runtime::Runtime,
    c: &skyward_server::client::Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> skyward_server::client::Reply {
    rt.block_on(c.request(method, path, Some((ct, body)), &[]))
        .unwrap()
}

fn code(r: &skyward_server::client::Reply) -> String {
    r.json().unwrap_or(Value::Null)["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn hostile_input_to_the_ledger_and_contracts_endpoints_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let anon = server.client(None);
    // A read-only token.
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/tokens",
        Some(r#"{"name":"reader","scope":"read"}"#),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.error_text());
    let reader = server.client(Some(r.json().unwrap()["token"].as_str().unwrap()));

    // Contracts: who may apply, what is refused.
    let put = |cl: &skyward_server::client::Client, path: &str, ct: &str, body: &[u8]| {
        send(&rt, cl, "PUT", path, ct, body.to_vec())
    };
    assert_eq!(
        put(
            &anon,
            "/v1/contracts",
            "application/yaml",
            CONTRACTS.as_bytes()
        )
        .status,
        401
    );
    assert_eq!(
        put(
            &reader,
            "/v1/contracts",
            "application/yaml",
            CONTRACTS.as_bytes()
        )
        .status,
        403
    );
    let bad = put(
        &c,
        "/v1/contracts?name=x.yaml",
        "application/yaml",
        CONTRACTS
            .replace("kind: spend", "kind: nonsense")
            .as_bytes(),
    );
    assert_eq!(
        (bad.status, code(&bad).as_str()),
        (422, "invalid_contracts"),
        "{}",
        bad.error_text()
    );
    assert!(bad.error_text().contains("x.yaml"), "{}", bad.error_text());
    assert_eq!(
        put(&c, "/v1/contracts", "image/png", CONTRACTS.as_bytes()).status,
        415
    );
    // Over the body limit: 413 as soon as the length is read (a client
    // still writing the body may see the connection closed instead).
    match rt.block_on(c.request(
        "PUT",
        "/v1/contracts",
        Some(("application/yaml", vec![b'a'; 2 << 20])),
        &[],
    )) {
        Ok(r) => assert_eq!(r.status, 413),
        Err(e) => assert!(
            e.to_string().contains("Broken pipe") || e.to_string().contains("reset"),
            "{e}"
        ),
    }
    // The 413 says the connection closes (its body was never read), so
    // a client does not send its next request on it: before, the next
    // request through the same client failed now and then with
    // "connection closed before message completed".
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "PUT /v1/contracts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\n\r\n", 2 << 20).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
    }
    assert_eq!(
        put(&c, "/v1/contracts", "application/yaml", &[0xff, 0xfe, 0x00]).status,
        400
    );
    assert_eq!(
        put(
            &c,
            "/v1/contracts?name=a%01b",
            "application/yaml",
            CONTRACTS.as_bytes()
        )
        .status,
        400
    );
    assert_eq!(
        put(
            &c,
            "/v1/contracts?color=red",
            "application/yaml",
            CONTRACTS.as_bytes()
        )
        .status,
        400
    );
    let nothing = call(&rt, &c, "GET", "/v1/contracts", None, &[]);
    assert_eq!(
        (nothing.status, code(&nothing).as_str()),
        (404, "no_contracts")
    );
    let ok = put(
        &c,
        "/v1/contracts?name=deals.yaml",
        "application/yaml",
        CONTRACTS.as_bytes(),
    );
    assert_eq!(ok.status, 201, "{}", ok.error_text());
    let again = put(
        &c,
        "/v1/contracts?name=deals.yaml",
        "application/yaml",
        CONTRACTS.as_bytes(),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json().unwrap()["changed"], false);
    let hist = call(&rt, &reader, "GET", "/v1/contracts/history", None, &[])
        .json()
        .unwrap();
    assert_eq!(hist["items"].as_array().unwrap().len(), 1, "{hist}");
    assert!(
        hist["items"][0]["applied_by"]
            .as_str()
            .unwrap()
            .starts_with("admin"),
        "{hist}"
    );
    let cur = call(&rt, &reader, "GET", "/v1/contracts", None, &[])
        .json()
        .unwrap();
    assert_eq!(
        (cur["version"].as_i64(), cur["file_name"].as_str()),
        (Some(1), Some("deals.yaml"))
    );
    assert_eq!(
        call(&rt, &reader, "GET", "/v1/contracts/edp", None, &[]).status,
        200
    );
    assert_eq!(
        call(&rt, &reader, "GET", "/v1/contracts/nope", None, &[]).status,
        404
    );
    assert_eq!(
        call(&rt, &reader, "GET", "/v1/contracts?version=abc", None, &[]).status,
        400
    );
    assert_eq!(
        call(&rt, &reader, "GET", "/v1/contracts?version=9", None, &[]).status,
        404
    );

    // Imports: who may, what is refused, nothing stored on a refusal.
    let post = |cl: &skyward_server::client::Client, path: &str, body: &str| {
        send(&rt, cl, "POST", path, "text/csv", body.as_bytes().to_vec())
    };
    let imports = || {
        call(&rt, &c, "GET", "/v1/ledger/imports", None, &[])
            .json()
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let good = rows("1.25");
    assert_eq!(
        post(&reader, "/v1/ledger/imports?name=a.csv", &good).status,
        403
    );
    assert_eq!(post(&c, "/v1/ledger/imports", &good).status, 400);
    assert_eq!(
        post(&c, "/v1/ledger/imports?name=a.csv&mode=sideways", &good).status,
        400
    );
    assert_eq!(post(&c, "/v1/ledger/imports?name=a%ZZ", &good).status, 400);
    // A bad row on line 5: refused, naming the file and the line.
    let mut broken: Vec<String> = good.lines().map(String::from).collect();
    broken[4] = broken[4].replace("1.25,1.25", "lots,1.25");
    let r = post(
        &c,
        "/v1/ledger/imports?name=broken.csv",
        &(broken.join("\n") + "\n"),
    );
    assert_eq!(r.status, 422, "{}", r.error_text());
    assert!(
        r.error_text().contains("broken.csv") && r.error_text().contains('5'),
        "{}",
        r.error_text()
    );
    // An unterminated quote that never ends (bounded, refused).
    let r = post(
        &c,
        "/v1/ledger/imports?name=q.csv",
        &format!("{HEADER}\"{}", "x".repeat(3 << 20)),
    );
    assert_eq!(r.status, 422, "{}", r.error_text());
    let r = post(&c, "/v1/ledger/imports?name=empty.csv", HEADER);
    assert_eq!(r.status, 422, "{}", r.error_text());
    assert_eq!(
        imports(),
        1,
        "only the runs' own record: nothing stored by a refusal"
    );
    // The real thing, then the same again, then a re-export.
    let r = post(&c, "/v1/ledger/imports?name=a.csv", &good);
    assert_eq!(r.status, 201, "{}", r.error_text());
    assert_eq!(r.json().unwrap()["rows"], 24);
    let r = post(&c, "/v1/ledger/imports?name=a-copy.csv", &good);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["already_imported"], true);
    let r = post(&c, "/v1/ledger/imports?name=a2.csv", &rows("1.250"));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (409, "import_conflict"),
        "{}",
        r.error_text()
    );
    let r = post(
        &c,
        "/v1/ledger/imports?name=a2.csv&mode=replace",
        &rows("1.250"),
    );
    assert_eq!(r.status, 201, "{}", r.error_text());
    assert_eq!(imports(), 3);
    // The status through the API reads it.
    let st = call(&rt, &reader, "GET", "/v1/ledger/status", None, &[])
        .json()
        .unwrap();
    assert_eq!(st["contracts"][0]["name"], "edp", "{st}");
    assert_eq!(st["contracts"][0]["burned"].as_f64(), Some(30.0), "{st}");
    assert_eq!(
        call(
            &rt,
            &reader,
            "GET",
            "/v1/ledger/status?at=yesterday",
            None,
            &[]
        )
        .status,
        422
    );

    // The CLI through the server: imports listed; commands that read a
    // database directly refuse --server, saying which take it.
    let out = std::process::Command::new(BIN)
        .args(["ledger", "imports", "--server", &server.url(), "-o", "json"])
        .env("SKYWARD_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let out = std::process::Command::new(BIN)
        .args(["ledger", "analyze", "edp", "--server", &server.url()])
        .env("SKYWARD_TOKEN", &admin)
        .output()
        .unwrap();
    // Every ledger question works through a server now (it once refused).
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("edp (aws"));
}
