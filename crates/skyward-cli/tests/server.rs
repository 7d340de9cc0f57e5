#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The control plane through the real binary: `skyward server` processes,
//! real HTTP, real SQLite (and PostgreSQL, started by `scripts/test.sh`),
//! real workload processes. Waits are bounded polls; nothing asserts on
//! timing.

mod common;
use common::server::*;
use common::{free_port, rt, wait_until};
use serde_json::{json, Value};
use skyward_server::client::Client;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The tour a new user takes: submit through the CLI, watch placement
/// across the named sites, read logs and queue reasons, cancel, and take
/// the usage to the ledger.
fn end_to_end(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), database_url);
    let token = server.admin_token();
    assert!(
        token.starts_with("sky_"),
        "admin token written: {}",
        server.log()
    );
    let rt = rt();
    let c = server.client(Some(&token));

    let file = dir.path().join("jobs.yaml");
    std::fs::write(
        &file,
        "workloads:
  - name: eu-train
    accelerators: H100:8
    residency: eu
    spot: allowed
    checkpoint: ckpt
    env: {GREETING: bonjour}
    run: echo \"$GREETING from $SKYWARD_SITE with $SKYWARD_ACCELERATORS\"; echo 1 > $SKYWARD_CHECKPOINT_DIR/step
  - name: us-serve
    accelerators: [H100:4]
    residency: us
    priority: 5
    setup: echo ready > setup.txt
    run: cat setup.txt
  - name: too-big
    accelerators: H100:8
    nodes: 2
    run: echo never
  - name: long
    accelerators: H100:2
    providers: aws
    run: echo started; sleep 60; echo never-ends
  - name: eu-on-demand
    accelerators: H100:1
    residency: eu
    priority: -1
    run: echo never
",
    )
    .unwrap();
    let out = cli(
        &server,
        &token,
        &["submit", file.to_str().unwrap(), "-o", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<i64> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    let (eu, us, big, long, eu_never_spot) = (ids[0], ids[1], ids[2], ids[3], ids[4]);

    wait_until("the two short workloads to succeed", 30, || {
        state_of(&rt, &c, eu) == "succeeded" && state_of(&rt, &c, us) == "succeeded"
    });
    wait_until("the long one to run", 30, || {
        state_of(&rt, &c, long) == "running"
    });
    let w = call(&rt, &c, "GET", &format!("/v1/workloads/{eu}"), None, &[])
        .json()
        .unwrap();
    assert_eq!(
        w["site"], "gcp:europe-west4",
        "EU residency: only the EU site"
    );
    let w = call(&rt, &c, "GET", &format!("/v1/workloads/{us}"), None, &[])
        .json()
        .unwrap();
    assert_eq!(
        w["site"], "aws:us-east-1",
        "US: the cheaper of the two US sites"
    );
    let states: Vec<&str> = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["submitted", "pending", "dispatched", "running", "succeeded"]
    );

    let logs = cli(&server, &token, &["logs", &eu.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "bonjour from gcp:europe-west4 with 8\n"
    );
    let logs = cli(&server, &token, &["logs", &us.to_string(), "--follow"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "ready\n");
    assert!(server
        .work
        .join(eu.to_string())
        .join("job/ckpt/step")
        .exists());

    // A workload submitted just after a cycle waits up to `cycle_ms` for
    // its first look; until then it has no reasons yet.
    let considered = |id: i64| {
        call(&rt, &c, "GET", &format!("/v1/workloads/{id}"), None, &[])
            .json()
            .unwrap()["pending_reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    };
    wait_until("a cycle to consider it", 10, || {
        considered(eu_never_spot) && considered(big)
    });
    // Why is it pending? Both on-demand sites are too small for the gang,
    // and the third is spot.
    let q = call(&rt, &c, "GET", "/v1/queue", None, &[]).json().unwrap();
    assert_eq!(q["items"][0]["id"].as_i64(), Some(big), "{q}");
    assert_eq!(q["items"][0]["position"], 1);
    let reasons: Vec<(String, i64)> = q["items"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_string(),
                r["sites"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("gang larger than the site".to_string(), 2),
            ("spot site; the workload says spot: never".to_string(), 1)
        ],
        "{q}"
    );
    // Spot policy: the only EU site is spot and this one says never.
    let w = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{eu_never_spot}"),
        None,
        &[],
    )
    .json()
    .unwrap();
    let reasons: Vec<&str> = w["pending_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"spot site; the workload says spot: never"),
        "{w}\nqueue: {}\nlog: {}",
        call(&rt, &c, "GET", "/v1/queue", None, &[]).json().unwrap(),
        server.log()
    );
    assert!(reasons.contains(&"region outside residency"), "{w}");
    let table = cli(&server, &token, &["queue"]);
    assert!(String::from_utf8_lossy(&table.stdout)
        .contains("gang larger than the site (2 site(s)); spot site"));

    // Cancel the running one: its process group is killed.
    let out = cli(&server, &token, &["cancel", &long.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the cancel", 30, || state_of(&rt, &c, long) == "cancelled");
    let pid: u32 =
        std::fs::read_to_string(server.work.join(long.to_string()).join(".skyward-pid-1"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    wait_until("the cancelled run's process to be gone", 10, || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    });
    let again = call(
        &rt,
        &c,
        "POST",
        &format!("/v1/workloads/{long}/cancel"),
        None,
        &[],
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.json().unwrap()["error"]["code"], "already_finished");

    // Pages: newest first, `limit` per page, `next_cursor` until the end.
    let seen: Vec<i64> = pages(&rt, &c, "/v1/workloads?limit=2")
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let v = call(&rt, &c, "GET", "/v1/workloads?state=succeeded", None, &[])
        .json()
        .unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2);

    // Sites, usage and the ledger.
    let sites = cli(&server, &token, &["sites", "-o", "json"]);
    let sites: Value = serde_json::from_slice(&sites.stdout).unwrap();
    assert_eq!(sites["items"].as_array().unwrap().len(), 3);
    let usage = call(&rt, &c, "GET", "/v1/usage", None, &[]).json().unwrap();
    let runs: Vec<i64> = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["workload_id"].as_i64().unwrap())
        .collect();
    assert_eq!(runs.len(), 3, "one record per run that started: {usage}");
    for id in [eu, us, long] {
        assert!(runs.contains(&id));
    }
    let focus = cli(&server, &token, &["usage", "--format", "focus"]);
    let csv = dir.path().join("usage.csv");
    std::fs::write(&csv, &focus.stdout).unwrap();
    let ledger = Command::new(BIN)
        .args(["ledger", "import"])
        .arg(&csv)
        .arg("--db")
        .arg(dir.path().join("ledger.db"))
        .output()
        .unwrap();
    assert!(
        ledger.status.success(),
        "ledger import of the usage: {}",
        String::from_utf8_lossy(&ledger.stderr)
    );

    let metrics =
        String::from_utf8_lossy(&call(&rt, &c, "GET", "/metrics", None, &[]).body).to_string();
    for m in [
        "skyward_queue_depth 2",
        "skyward_placements_total 3",
        "skyward_site_running_workloads{site=\"aws:us-east-1\",provider=\"aws\"}",
        "skyward_dispatch_latency_seconds_count 3",
        "skyward_accelerator_hours_total{provider=\"gcp\"}",
        "skyward_cost_usd_total{provider=\"aws\"}",
    ] {
        assert!(metrics.contains(m), "{m} in\n{metrics}");
    }
    let health = call(&rt, &c, "GET", "/healthz", None, &[]).json().unwrap();
    assert_eq!(health["leader"], true);

    // Every operation of the OpenAPI document exists (no 404/405).
    let doc: Value = call(&rt, &c, "GET", "/v1/openapi.json", None, &[])
        .json()
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let p = path.replace("{id}", &eu.to_string());
            let r = call(
                &rt,
                &server.client(None),
                &method.to_uppercase(),
                &p,
                None,
                &[],
            );
            assert!(
                r.status != 404 && r.status != 405,
                "{method} {path}: {}",
                r.status
            );
        }
    }
}

#[test]
fn end_to_end_on_sqlite() {
    end_to_end(None);
}

#[test]
fn end_to_end_on_postgres() {
    end_to_end(Some(&pg_database("e2e")));
}

/// No token, a bad token, a token of too small a scope, malformed and
/// hostile bodies: each a 4xx with a stable code, and the store unchanged.
#[test]
fn auth_and_hostile_input_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let ok = job("ok", "H100:1", "true");
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/workloads",
        Some(&ok),
        &[("idempotency-key", "k1".into())],
    );
    assert_eq!(r.status, 201, "{}", r.error_text());
    let first = r.json().unwrap()["id"].as_i64().unwrap();
    let before = all_workloads(&rt, &c).len();

    // Tokens: created by the CLI, printed once, stored hashed.
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "ci-reader",
            "--scope",
            "read",
            "--data-dir",
        ])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let db = std::fs::read(server.data.join("skyward.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&reader),
        "tokens are stored hashed"
    );

    let anon = server.client(None);
    let r = call(&rt, &anon, "GET", "/v1/workloads", None, &[]);
    assert_eq!(
        (r.status, r.json().unwrap()["error"]["code"].clone()),
        (401, json!("unauthenticated"))
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    for bad in ["sky_nope", "Basic abc", &format!("sky_{}", "0".repeat(64))] {
        let r = call(
            &rt,
            &Client::new(&server.url(), Some(bad.to_string())).unwrap(),
            "POST",
            "/v1/workloads",
            Some(&ok),
            &[],
        );
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(r.json().unwrap()["error"]["code"], "invalid_token");
    }
    let read = server.client(Some(&reader));
    assert_eq!(
        call(&rt, &read, "GET", "/v1/workloads", None, &[]).status,
        200
    );
    let r = call(&rt, &read, "POST", "/v1/workloads", Some(&ok), &[]);
    assert_eq!(
        (r.status, r.json().unwrap()["error"]["code"].clone()),
        (403, json!("insufficient_scope"))
    );
    let r = call(
        &rt,
        &read,
        "POST",
        &format!("/v1/workloads/{first}/cancel"),
        None,
        &[],
    );
    assert_eq!(r.status, 403);
    let r = call(
        &rt,
        &read,
        "POST",
        "/v1/tokens",
        Some(r#"{"name":"x","scope":"admin"}"#),
        &[],
    );
    assert_eq!(r.status, 403);

    // Hostile bodies and parameters.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        ("not yaml", "{name: [".into(), 422, "invalid_workload", None),
        (
            "not a mapping",
            "[1, 2]".into(),
            422,
            "invalid_workload",
            None,
        ),
        ("empty", String::new(), 422, "invalid_workload", None),
        (
            "unknown field",
            r#"{"name":"x","accelerators":"H100:1","run":"true","nodez":2}"#.into(),
            422,
            "invalid_workload",
            Some("nodez"),
        ),
        (
            "negative",
            r#"{"name":"x","accelerators":"H100:1","run":"true","nodes":-1}"#.into(),
            422,
            "invalid_workload",
            Some("nodes"),
        ),
        (
            "unknown accelerator",
            r#"{"name":"x","accelerators":"H1000:1","run":"true"}"#.into(),
            422,
            "invalid_workload",
            Some("accelerators"),
        ),
        (
            "no run",
            r#"{"name":"x","accelerators":"H100:1"}"#.into(),
            422,
            "invalid_workload",
            Some("run"),
        ),
        (
            "reserved env",
            r#"{"name":"x","accelerators":"H100:1","run":"true","env":{"SKYWARD_SITE":"x"}}"#
                .into(),
            422,
            "invalid_workload",
            Some("env"),
        ),
        ("deeply nested", deep, 422, "invalid_workload", None),
    ];
    for (what, body, status, code, field) in &cases {
        let r = call(&rt, &c, "POST", "/v1/workloads", Some(body), &[]);
        let v = r.json().unwrap_or(Value::Null);
        assert_eq!(r.status, *status, "{what}: {v}");
        assert_eq!(v["error"]["code"], *code, "{what}: {v}");
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], *f, "{what}: {v}");
        }
    }
    // Oversized: refused from its Content-Length, before a byte of body
    // is read (the client asked to wait for 100-continue).
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "POST /v1/workloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n", 2 * 1024 * 1024).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(head.contains("body_too_large"), "{head}");
    }
    let r = rt
        .block_on(c.request(
            "POST",
            "/v1/workloads",
            Some(("application/x-www-form-urlencoded", b"a=b".to_vec())),
            &[],
        ))
        .unwrap();
    assert_eq!(r.status, 415);
    let r = rt
        .block_on(c.request(
            "POST",
            "/v1/workloads",
            Some(("application/json", vec![0xff, 0xfe, 0x00])),
            &[],
        ))
        .unwrap();
    assert_eq!(r.status, 400);
    for (path, code) in [
        ("/v1/workloads?limit=0", "invalid_parameter"),
        ("/v1/workloads?limit=99999", "invalid_parameter"),
        ("/v1/workloads?bogus=1", "unknown_parameter"),
        ("/v1/workloads?state=weird", "invalid_parameter"),
        ("/v1/workloads/abc", "invalid_id"),
        ("/v1/workloads/-1", "invalid_id"),
        ("/v1/workloads/999999", "workload_not_found"),
        ("/v1/nothing", "not_found"),
    ] {
        let r = call(&rt, &c, "GET", path, None, &[]);
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
        assert_eq!(r.json().unwrap()["error"]["code"], code, "{path}");
    }
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/workloads",
        Some(&ok),
        &[("idempotency-key", "x".repeat(300))],
    );
    assert_eq!(
        r.json().unwrap()["error"]["code"],
        "invalid_idempotency_key"
    );

    // Idempotency: a retry returns the first workload; another body under
    // the same key is refused.
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/workloads",
        Some(&ok),
        &[("idempotency-key", "k1".into())],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.json().unwrap()["id"].as_i64(), Some(first));
    let r = call(
        &rt,
        &c,
        "POST",
        "/v1/workloads",
        Some(&job("other", "H100:1", "true")),
        &[("idempotency-key", "k1".into())],
    );
    assert_eq!(
        (r.status, r.json().unwrap()["error"]["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );

    assert_eq!(
        all_workloads(&rt, &c).len(),
        before,
        "nothing stored by any bad request"
    );
    // The server is alive and well after all that.
    assert_eq!(call(&rt, &c, "GET", "/healthz", None, &[]).status, 200);
    // A CLI error names the file and field, exit 2, nothing sent.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\naccelerators: H100:1\nrun: true\nenv: {1BAD: x}\n",
    )
    .unwrap();
    let out = cli(&server, &admin, &["submit", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:4: env:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all_workloads(&rt, &c).len(), before);
    // No secret in the server's log.
    assert!(!server.log().contains(&admin) && !server.log().contains(&reader));
}

/// `kill -9` the server again and again while a client submits hundreds
/// of workloads (retrying with the same Idempotency-Key until answered):
/// afterwards every acknowledged workload exists exactly once, every one
/// ran to success exactly once, and each run's usage is recorded once.
#[test]
fn kill_9_loses_nothing_and_runs_nothing_twice() {
    const N: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(dir.path(), port, None);
    let token = server.admin_token();
    let url = server.url();
    let submitter = std::thread::spawn(move || {
        let rt = rt();
        let c = Client::new(&url, Some(token)).unwrap();
        let mut acked: Vec<(usize, i64)> = Vec::new();
        let mut retries = 0;
        for i in 0..N {
            let body = job(
                &format!("w{i}"),
                "H100:1",
                "echo start-$SKYWARD_ATTEMPT; sleep 0.2; echo end",
            );
            loop {
                match rt.block_on(c.request(
                    "POST",
                    "/v1/workloads",
                    Some(("application/json", body.clone().into_bytes())),
                    &[("idempotency-key", format!("crash-{i}"))],
                )) {
                    Ok(r) if r.status == 201 || r.status == 200 => {
                        acked.push((i, r.json().unwrap()["id"].as_i64().unwrap()));
                        // Spread the submissions over a few seconds of kills.
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                    _ => {
                        retries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        (acked, retries)
    });
    let mut kills = 0;
    let mut seed = 0x9e37_79b9_u64;
    while !submitter.is_finished() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 400));
        server.kill9();
        kills += 1;
        server.spawn();
    }
    let (acked, retries) = submitter.join().unwrap();
    // A few more kills while the work runs, then let it finish.
    for _ in 0..3 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 300));
        server.kill9();
        kills += 1;
        server.spawn();
    }
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    wait_until("every workload to end", 120, || {
        all_workloads(&rt, &c)
            .iter()
            .all(|w| w["state"] == "succeeded" || w["state"] == "failed")
    });
    let all = all_workloads(&rt, &c);
    assert_eq!(acked.len(), N);
    assert_eq!(
        all.len(),
        N,
        "one workload per idempotency key (kills: {kills}, retries: {retries})"
    );
    let mut ids: Vec<i64> = acked.iter().map(|(_, id)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        N,
        "each acknowledged submission is its own workload"
    );
    for w in &all {
        let id = w["id"].as_i64().unwrap();
        assert!(ids.contains(&id));
        assert_eq!(w["state"], "succeeded", "{w}");
        let log =
            std::fs::read_to_string(server.work.join(id.to_string()).join("output.log")).unwrap();
        if log.matches("start-").count() != 1 {
            let detail = call(&rt, &c, "GET", &format!("/v1/workloads/{id}"), None, &[])
                .json()
                .unwrap();
            panic!(
                "workload {id} ran more than once: {log:?}\nhistory: {}\nserver log:\n{}",
                detail["events"],
                server.log()
            );
        }
        assert!(log.ends_with("end\n"), "workload {id}: {log:?}");
    }
    let mut usage: Vec<i64> = pages(&rt, &c, "/v1/usage?limit=7")
        .iter()
        .map(|u| u["workload_id"].as_i64().unwrap())
        .collect();
    usage.sort();
    assert_eq!(usage, ids, "usage recorded exactly once per workload");
    assert!(kills >= 3, "the server was killed {kills} times");
    eprintln!("kill -9: {kills} kills, {retries} client retries, {N} workloads, all exactly once");
}

/// Two replicas on one PostgreSQL database: one schedules; kill it and
/// the other takes over within a lease, with nothing lost.
#[test]
fn postgres_replicas_elect_one_leader() {
    let url = pg_database("leader");
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = Server::start(a_dir.path(), free_port(), Some(&url));
    let rt = rt();
    let ca = a.client(None);
    wait_until("a replica to lead", 20, || {
        call(&rt, &ca, "GET", "/healthz", None, &[]).json().unwrap()["leader"] == true
    });
    let b = Server::start(b_dir.path(), free_port(), Some(&url));
    let cb = b.client(None);
    std::thread::sleep(Duration::from_millis(1500));
    let leaders = |rt: &tokio::runtime::Runtime| -> Vec<bool> {
        [&ca, &cb]
            .iter()
            .map(|c| {
                rt.block_on(c.request("GET", "/healthz", None, &[]))
                    .ok()
                    .and_then(|r| r.json())
                    .map(|v| v["leader"] == true)
                    .unwrap_or(false)
            })
            .collect()
    };
    assert_eq!(leaders(&rt), vec![true, false], "exactly one leader");
    // The token from A's bootstrap works on B (same database).
    let token = a.admin_token();
    let cb = b.client(Some(&token));
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = call(
            &rt,
            &cb,
            "POST",
            "/v1/workloads",
            Some(&job(&format!("p{i}"), "H100:1", "echo hi")),
            &[("idempotency-key", format!("pg-{i}"))],
        );
        assert_eq!(r.status, 201, "{}", r.error_text());
        ids.push(r.json().unwrap()["id"].as_i64().unwrap());
    }
    wait_until("the leader to run what the follower took", 30, || {
        ids.iter().all(|id| state_of(&rt, &cb, *id) == "succeeded")
    });
    a.kill9();
    wait_until("the standby to take over", 30, || {
        call(&rt, &cb, "GET", "/healthz", None, &[]).json().unwrap()["leader"] == true
    });
    for i in 10..15 {
        let r = call(
            &rt,
            &cb,
            "POST",
            "/v1/workloads",
            Some(&job(&format!("p{i}"), "H100:1", "echo hi")),
            &[("idempotency-key", format!("pg-{i}"))],
        );
        ids.push(r.json().unwrap()["id"].as_i64().unwrap());
    }
    // A retried key answered by the new leader's replica is still one workload.
    let r = call(
        &rt,
        &cb,
        "POST",
        "/v1/workloads",
        Some(&job("p3", "H100:1", "echo hi")),
        &[("idempotency-key", "pg-3".into())],
    );
    assert_eq!(r.status, 200);
    wait_until("the new leader to run the rest", 30, || {
        ids.iter().all(|id| state_of(&rt, &cb, *id) == "succeeded")
    });
    assert_eq!(all_workloads(&rt, &cb).len(), 15);
}

/// The shipped examples parse: the workload file and the server config.
#[test]
fn examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = skyward_catalog::Catalog::builtin().unwrap();
    let text = std::fs::read_to_string(root.join("examples/jobs.yaml")).unwrap();
    let jobs = skyward_spec::job::parse_file(&text, "jobs.yaml", &catalog).unwrap();
    assert_eq!(jobs.len(), 4);
    let text = std::fs::read_to_string(root.join("examples/variants.yaml")).unwrap();
    let job = skyward_spec::job::parse_one(&text, "variants.yaml", &catalog).unwrap();
    assert_eq!(
        job.variants.keys().map(String::as_str).collect::<Vec<_>>(),
        ["nvidia", "trainium"]
    );
    assert_eq!(job.no_variant, ["tpu-v5p-8"]);
    let text = std::fs::read_to_string(root.join("examples/server.yaml")).unwrap();
    let cfg = skyward_server::config::parse(&text, "server.yaml", &catalog).unwrap();
    assert_eq!(cfg.sites.len(), 4);
    assert_eq!(cfg.sites[1].spec.name, "aws-reserved");
    // The two-clouds walkthrough: agent sites, a store per cloud, and a
    // workload whose stores the server accepts.
    let text = std::fs::read_to_string(root.join("examples/two-clouds/server.yaml")).unwrap();
    let cfg = skyward_server::config::parse(&text, "server.yaml", &catalog).unwrap();
    assert_eq!((cfg.sites.len(), cfg.object_stores.len()), (2, 2));
    let text = std::fs::read_to_string(root.join("examples/two-clouds/train.yaml")).unwrap();
    let job = skyward_spec::job::parse_one(&text, "train.yaml", &catalog).unwrap();
    let stores = skyward_server::checkpoints::resolve(&cfg.object_stores, &Default::default());
    skyward_server::checkpoints::check_workload(&stores, job.checkpoint_store.as_ref().unwrap())
        .unwrap();
}
