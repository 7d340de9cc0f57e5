#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Issue 9, through the real binary: what a submitted job can reach,
//! secrets, ownership, token lifecycle, hostile bodies, and runs that are
//! billed, stopped and explained correctly. Each test reproduces a
//! reported defect. Waits are bounded polls; nothing asserts on timing.

mod common;
use common::server::*;
use common::{free_port, rt, wait_until};
use serde_json::{json, Value};
use skyward_server::client::Client;
use std::process::Command;
use std::time::Duration;

const ENDED: [&str; 3] = ["succeeded", "failed", "cancelled"];

fn is_root() -> bool {
    skyward_executor::isolation::current_uid() == Some(0)
}

/// A token made through the API by `admin`: (id, token).
fn make_token(
    rt: &tokio::runtime::Runtime,
    admin: &Client,
    name: &str,
    scope: &str,
    team: &str,
    expires: Option<&str>,
) -> (i64, String) {
    let mut body = json!({"name": name, "scope": scope, "team": team});
    if let Some(e) = expires {
        body["expires"] = json!(e);
    }
    let r = call(
        rt,
        admin,
        "POST",
        "/v1/tokens",
        Some(&body.to_string()),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.error_text());
    let v = r.json().unwrap();
    (
        v["id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn submit(rt: &tokio::runtime::Runtime, c: &Client, body: &Value) -> i64 {
    let r = call(rt, c, "POST", "/v1/workloads", Some(&body.to_string()), &[]);
    assert_eq!(r.status, 201, "{}", r.error_text());
    r.json().unwrap()["id"].as_i64().unwrap()
}

fn show(rt: &tokio::runtime::Runtime, c: &Client, id: i64) -> Value {
    let r = call(rt, c, "GET", &format!("/v1/workloads/{id}"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.error_text());
    r.json().unwrap()
}

fn wait_ended(rt: &tokio::runtime::Runtime, c: &Client, id: i64) -> Value {
    wait_until(&format!("workload {id} to end"), 60, || {
        ENDED.contains(&state_of(rt, c, id).as_str())
    });
    show(rt, c, id)
}

fn log_of(rt: &tokio::runtime::Runtime, c: &Client, id: i64) -> String {
    let r = call(rt, c, "GET", &format!("/v1/workloads/{id}/logs"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.error_text());
    String::from_utf8_lossy(&r.body).to_string()
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .map(|s| !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
        .unwrap_or(false)
}

fn read_when_there(path: &std::path::Path) -> String {
    wait_until(&format!("{}", path.display()), 30, || {
        std::fs::read_to_string(path).is_ok_and(|t| !t.trim().is_empty())
    });
    std::fs::read_to_string(path).unwrap()
}

/// #1 and #5: a job submitted with a submit token printed the admin token
/// (`cat ../../admin.token`), which a read token then used to make tokens.
/// Now the job runs outside the state directory (as `nobody` when the
/// server is root), sees none of the server's environment, and the state
/// files are the server's alone.
#[test]
fn a_job_cannot_reach_the_servers_state_environment_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        free_port(),
        None,
        &[("SKYWARD_TEST_SERVER_ONLY", "server-env-sentinel")],
    );
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let (_, mallory) = make_token(&rt, &c, "mallory", "submit", "default", None);
    let (_, rita) = make_token(&rt, &c, "rita", "read", "default", None);
    let data = server.data.display().to_string();
    let run = format!(
        "cat ../../admin.token; cat ../admin.token; cat {data}/admin.token; head -c 16 {data}/skyward.db; ls {data}; echo uid=$(id -u); env"
    );
    let id = submit(
        &rt,
        &server.client(Some(&mallory)),
        &json!({"name": "exfil", "accelerators": "H100:1", "run": run}),
    );
    wait_ended(&rt, &c, id);
    let log = log_of(&rt, &server.client(Some(&rita)), id);
    assert!(!log.contains(&admin), "the admin token leaked: {log}");
    assert!(!log.contains("SQLite format"), "the database leaked: {log}");
    assert!(
        !log.contains("server-env-sentinel"),
        "the server's environment leaked: {log}"
    );
    // Whatever looks like a token in the log opens nothing.
    for word in log.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if word.starts_with("sky_") && word.len() == 68 {
            let r = call(
                &rt,
                &server.client(Some(word)),
                "POST",
                "/v1/tokens",
                Some(r#"{"name": "x", "scope": "admin"}"#),
                &[],
            );
            assert_ne!(r.status, 201);
        }
    }
    if is_root() {
        assert!(log.contains("uid=65534"), "not run as nobody: {log}");
    }
    // State: directory 0700, database and token 0600; runs elsewhere.
    assert_eq!(mode(&server.data), 0o700);
    assert_eq!(mode(&server.data.join("skyward.db")), 0o600);
    assert_eq!(mode(&server.data.join("admin.token")), 0o600);
    assert!(!server.work.starts_with(&server.data));
    let script = server.work.join(id.to_string()).join("run-1.sh");
    assert_eq!(
        mode(&script) & 0o007,
        0,
        "run scripts are not world-readable"
    );
    assert!(
        server.log().contains("workloads run as"),
        "{}",
        server.log()
    );
}

/// #2, #3 and #4: secrets by reference, never shown; workloads belong to
/// a team and a user; tokens expire and are revoked at once.
#[test]
fn teams_own_their_workloads_secrets_stay_secret_and_tokens_end() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hf_s3cr3t_value_9f8e7d";
    std::fs::write(
        dir.path().join("server.yaml"),
        format!(
            "{}secrets:\n  hf: {{env: SKYWARD_TEST_HF}}\n",
            test_config()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        free_port(),
        None,
        &[("SKYWARD_TEST_HF", secret)],
    );
    let rt = rt();
    let admin = server.client(Some(&server.admin_token()));
    let (_, alice) = make_token(&rt, &admin, "alice", "submit", "team-a", None);
    let (carol_id, carol) = make_token(&rt, &admin, "carol", "read", "team-a", None);
    let (_, bob) = make_token(&rt, &admin, "bob", "submit", "team-b", None);
    let (alice, carol, bob) = (
        server.client(Some(&alice)),
        server.client(Some(&carol)),
        server.client(Some(&bob)),
    );
    let id = submit(
        &rt,
        &alice,
        &json!({"name": "train", "accelerators": "H100:1",
                "env": {"MODEL": "llama", "NOTE": "private-note"},
                "secrets": {"HF_TOKEN": "hf"},
                "run": "echo token=$HF_TOKEN model=$MODEL"}),
    );
    let w = wait_ended(&rt, &alice, id);
    assert_eq!(w["state"], "succeeded", "{w}");
    assert_eq!(
        (w["team"].as_str(), w["submitted_by"].as_str()),
        (Some("team-a"), Some("alice"))
    );
    // The owner sees its env; the reference, never the value.
    assert_eq!(w["spec"]["env"]["NOTE"], "private-note");
    assert_eq!(w["spec"]["secrets"]["HF_TOKEN"], "hf");
    assert!(!w.to_string().contains(secret));
    // A teammate sees the workload, not its env values, and the log
    // without the secret.
    let seen = show(&rt, &carol, id);
    assert_eq!(seen["spec"]["env"]["NOTE"], "***");
    assert_eq!(seen["spec"]["env"]["MODEL"], "***");
    assert_eq!(log_of(&rt, &carol, id), "token=*** model=llama\n");
    // Another team does not see it exists.
    for (method, path) in [
        ("GET", format!("/v1/workloads/{id}")),
        ("GET", format!("/v1/workloads/{id}/logs")),
        ("POST", format!("/v1/workloads/{id}/cancel")),
    ] {
        let r = call(&rt, &bob, method, &path, None, &[]);
        assert_eq!(r.status, 404, "{method} {path}");
    }
    assert!(all_workloads(&rt, &bob).iter().all(|w| w["id"] != id));
    assert!(all_workloads(&rt, &admin).iter().any(|w| w["id"] == id));
    let r = call(&rt, &bob, "GET", "/v1/workloads?team=team-a", None, &[]);
    assert_eq!(r.status, 403);
    let usage = call(&rt, &bob, "GET", "/v1/usage", None, &[])
        .json()
        .unwrap();
    assert!(usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["workload_id"] != id));
    let usage = call(&rt, &carol, "GET", "/v1/usage", None, &[])
        .json()
        .unwrap();
    assert!(usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["workload_id"] == id));
    // The secret is nowhere on disk or in the server's log.
    let db = std::fs::read(server.data.join("skyward.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(secret));
    assert!(!server.log().contains(secret));
    // An unknown secret is refused, naming the field.
    let r = call(
        &rt,
        &alice,
        "POST",
        "/v1/workloads",
        Some(&json!({"name": "x", "accelerators": "H100:1", "secrets": {"T": "nope"}, "run": "true"}).to_string()),
        &[],
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json().unwrap()["error"]["field"], "secrets.T");

    // Revocation: carol's token is cached from the calls above; it stops
    // working at the next request.
    let r = call(
        &rt,
        &admin,
        "POST",
        &format!("/v1/tokens/{carol_id}/revoke"),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.error_text());
    let r = call(&rt, &carol, "GET", "/v1/workloads", None, &[]);
    assert_eq!(r.status, 401);
    assert!(r.error_text().contains("revoked"), "{}", r.error_text());
    // Expiry.
    let (_, brief) = make_token(&rt, &admin, "brief", "read", "team-a", Some("1s"));
    let brief = server.client(Some(&brief));
    assert_eq!(
        call(&rt, &brief, "GET", "/v1/workloads", None, &[]).status,
        200
    );
    std::thread::sleep(Duration::from_millis(1_300));
    let r = call(&rt, &brief, "GET", "/v1/workloads", None, &[]);
    assert_eq!(r.status, 401);
    assert!(r.error_text().contains("expired"), "{}", r.error_text());
    // The CLI: create with a team and an expiry, list, revoke.
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "dave",
            "--scope",
            "read",
            "--team",
            "team-b",
            "--expires",
            "30d",
            "-o",
            "json",
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
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dave = server.client(made["token"].as_str());
    assert_eq!(
        call(&rt, &dave, "GET", "/v1/workloads", None, &[]).status,
        200
    );
    let admin_token = server.admin_token();
    let out = cli(
        &server,
        &admin_token,
        &["token", "revoke", &made["id"].to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        call(&rt, &dave, "GET", "/v1/workloads", None, &[]).status,
        401
    );
    let out = cli(&server, &admin_token, &["token", "list", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let by_name = |n: &str| items.iter().find(|t| t["name"] == n).unwrap().clone();
    assert!(by_name("carol")["revoked_at_ms"].is_i64());
    assert!(by_name("dave")["revoked_at_ms"].is_i64());
    assert_eq!(by_name("dave")["team"], "team-b");
    assert!(by_name("alice")["revoked_at_ms"].is_null());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sky_"),
        "token values listed"
    );
}

/// #6 and #7: deep nesting (100k levels, a 200 KB body) took 45 s to
/// reject and cost the leader its lease; names could hide
/// right-to-left overrides and zero-width characters.
#[test]
fn hostile_bodies_are_refused_at_once_and_the_scheduler_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    wait_until("leadership", 30, || {
        call(&rt, &c, "GET", "/healthz", None, &[]).json().unwrap()["leader"] == true
    });
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let body = if i % 2 == 0 {
                deep.clone()
            } else {
                deep_obj.clone()
            };
            let url = server.url();
            let token = admin.clone();
            std::thread::spawn(move || {
                let rt = common::rt();
                let c = Client::new(&url, Some(token)).unwrap();
                call(&rt, &c, "POST", "/v1/workloads", Some(&body), &[]).status
            })
        })
        .collect();
    for t in threads {
        let status = t.join().unwrap();
        assert!((400..500).contains(&status), "{status}");
    }
    let h = call(&rt, &c, "GET", "/healthz", None, &[]).json().unwrap();
    assert_eq!(h["leader"], true, "{h}");
    assert!(!server.log().contains("lost the lease"), "{}", server.log());
    // The scheduler still runs work.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "after", "accelerators": "H100:1", "run": "true"}),
    );
    assert_eq!(wait_ended(&rt, &c, id)["state"], "succeeded");
    for name in ["evil\u{202e}gpj.exe", "a\u{200b}b", "x\u{2066}y"] {
        let r = call(
            &rt,
            &c,
            "POST",
            "/v1/workloads",
            Some(&json!({"name": name, "accelerators": "H100:1", "run": "true"}).to_string()),
            &[],
        );
        assert_eq!(r.status, 422, "{name:?}");
        assert_eq!(r.json().unwrap()["error"]["field"], "name");
        let r = call(
            &rt,
            &c,
            "POST",
            "/v1/tokens",
            Some(&json!({"name": name, "scope": "read"}).to_string()),
            &[],
        );
        assert_eq!(r.status, 422, "{name:?}");
    }
}

/// #8, #9, #11, #12, #13, #15 on one server.
#[test]
fn runs_are_billed_to_their_end_stopped_whole_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));

    // #12: an offset past the end is an empty page, not a 500.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "echo", "accelerators": "H100:1", "run": "echo hello"}),
    );
    wait_ended(&rt, &c, id);
    let r = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{id}/logs?offset=17592186044416"),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.error_text());
    assert!(r.body.is_empty());
    assert_eq!(r.header("skyward-next-offset"), Some("6"));

    // #13: exit codes in the API; a finished workload keeps its
    // accelerators; a failed setup says so in the log.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "three", "accelerators": "H100:8", "run": "exit 3"}),
    );
    let w = wait_ended(&rt, &c, id);
    assert_eq!(
        (
            w["state"].as_str(),
            w["exit_code"].as_i64(),
            w["accelerators"].as_i64()
        ),
        (Some("failed"), Some(3), Some(8)),
        "{w}"
    );
    assert_eq!(
        w["events"].as_array().unwrap().last().unwrap()["exit_code"],
        3
    );
    let id = submit(
        &rt,
        &c,
        &json!({"name": "bad-setup", "accelerators": "H100:1", "setup": "exit 4", "run": "echo never"}),
    );
    assert_eq!(wait_ended(&rt, &c, id)["exit_code"], 4);
    let log = log_of(&rt, &c, id);
    assert!(
        log.contains("setup failed with exit code 4") && !log.contains("never"),
        "{log}"
    );

    // #15: a gang's nodes get their own devices and ranks; walltime ends a run.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "gang", "accelerators": "H100:4", "nodes": 2, "regions": ["aws:us-east-1"],
                "run": "echo rank=$SKYWARD_NODE_RANK of=$SKYWARD_NUM_NODES cuda=$CUDA_VISIBLE_DEVICES master=$MASTER_ADDR"}),
    );
    assert_eq!(wait_ended(&rt, &c, id)["state"], "succeeded");
    let mut lines: Vec<String> = log_of(&rt, &c, id).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "rank=0 of=2 cuda=0,1,2,3 master=127.0.0.1".to_string(),
            "rank=1 of=2 cuda=4,5,6,7 master=127.0.0.1".to_string()
        ]
    );
    let id = submit(
        &rt,
        &c,
        &json!({"name": "long", "accelerators": "H100:1", "max_runtime": "2s", "run": "echo start; sleep 60; echo never"}),
    );
    let w = wait_ended(&rt, &c, id);
    assert_eq!(w["state"], "failed");
    assert!(
        w["end_note"]
            .as_str()
            .unwrap_or("")
            .contains("walltime of 2s exceeded"),
        "{w}"
    );
    assert!(log_of(&rt, &c, id).contains("walltime of 2s exceeded"));

    // #11: an absolute checkpoint directory.
    let ckpt = dir.path().join("shared-ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ckpt, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let id = submit(
        &rt,
        &c,
        &json!({"name": "ckpt", "accelerators": "H100:1", "checkpoint": ckpt.join("a").display().to_string(),
                "run": "echo step > $SKYWARD_CHECKPOINT_DIR/step && echo saved"}),
    );
    let w = wait_ended(&rt, &c, id);
    assert_eq!(w["state"], "succeeded", "{w} {}", log_of(&rt, &c, id));
    assert_eq!(log_of(&rt, &c, id), "saved\n");
    assert!(ckpt.join("a/step").exists());
    // A checkpoint inside the server's state is refused.
    let r = call(&rt, &c, "POST", "/v1/workloads",
        Some(&json!({"name": "x", "accelerators": "H100:1", "checkpoint": server.data.join("x").display().to_string(), "run": "true"}).to_string()), &[]);
    assert_eq!(r.status, 422);

    // #9: kill -9 of the tracked pid: the workload fails, and nothing it
    // started keeps running or logging.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "orphan", "accelerators": "H100:8", "regions": ["aws:us-east-1"],
                "run": "sleep 300 & echo $! > child.pid; while :; do echo tick; sleep 0.2; done"}),
    );
    let wd = server.work.join(id.to_string());
    let child = read_when_there(&wd.join("job/child.pid"));
    let wrapper = read_when_there(&wd.join(".skyward-pid-1"));
    assert!(Command::new("kill")
        .args(["-s", "KILL", wrapper.trim()])
        .status()
        .unwrap()
        .success());
    let w = wait_ended(&rt, &c, id);
    assert_eq!(w["state"], "failed");
    assert!(!alive(&child), "the job's child kept running");
    let size = std::fs::metadata(wd.join("output.log")).unwrap().len();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        std::fs::metadata(wd.join("output.log")).unwrap().len(),
        size,
        "the log kept growing"
    );

    // #8: a 2 s run whose server is down from 1 s in until well after it
    // ended is billed 2 s, not until the restart.
    let id = submit(
        &rt,
        &c,
        &json!({"name": "billed", "accelerators": "H100:8", "regions": ["aws:us-east-1"], "run": "sleep 2"}),
    );
    wait_until("running", 30, || state_of(&rt, &c, id) == "running");
    std::thread::sleep(Duration::from_millis(1_000));
    server.kill9();
    std::thread::sleep(Duration::from_millis(6_000));
    server.spawn();
    // A new client: the old one's pooled connection died with the server.
    let c = server.client(Some(&admin));
    let w = wait_ended(&rt, &c, id);
    assert_eq!(w["state"], "succeeded");
    let usage = pages(&rt, &c, "/v1/usage?limit=1000");
    let u = usage.iter().find(|u| u["workload_id"] == id).unwrap();
    let billed_ms = u["to_ms"].as_i64().unwrap() - u["from_ms"].as_i64().unwrap();
    assert!(
        (1_900..4_000).contains(&billed_ms),
        "a 2 s run billed {billed_ms} ms (the server was down 6 s)"
    );
    // Cost by hand: 8 accelerators × $6.88/h (p5.48xlarge / 8) × the span.
    let expected = (6_880_000.0 * 8.0 * billed_ms as f64 / 3_600_000.0).round() as i64;
    assert!(
        (u["cost_micro_usd"].as_i64().unwrap() - expected).abs() <= 1,
        "{u}"
    );
}

/// #10: a site removed from the configuration while a run is on it: the
/// run is stopped (not orphaned), billed at that site's price with its
/// accelerators, and the workload runs elsewhere.
#[test]
fn a_removed_site_stops_and_bills_its_runs_and_they_move() {
    let dir = tempfile::tempdir().unwrap();
    let config = |sites: &str| format!("{sites}scheduler:\n  cycle_ms: 20\n  lease_ms: 2000\n");
    let both = "sites:\n  - {name: old, region: aws:us-east-1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 2.5}\n  - {name: new, region: azure:eastus, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 9}\n";
    let only_new = "sites:\n  - {name: new, region: azure:eastus, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 9}\n";
    std::fs::write(dir.path().join("server.yaml"), config(both)).unwrap();
    let mut server = Server::start(dir.path(), free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let id = submit(
        &rt,
        &c,
        &json!({"name": "mover", "accelerators": "H100:8", "run": "echo on $SKYWARD_SITE; exec sleep 300"}),
    );
    wait_until("running on old", 30, || {
        show(&rt, &c, id)["site"] == "old" && state_of(&rt, &c, id) == "running"
    });
    let wrapper = read_when_there(&server.work.join(id.to_string()).join(".skyward-pid-1"));
    server.kill9();
    std::fs::write(&server.config, config(only_new)).unwrap();
    server.spawn();
    let c = server.client(Some(&server.admin_token()));
    wait_until("running on new", 30, || {
        show(&rt, &c, id)["site"] == "new" && state_of(&rt, &c, id) == "running"
    });
    assert!(!alive(&wrapper), "the run on the removed site kept going");
    let usage = pages(&rt, &c, "/v1/usage?limit=1000");
    let u = usage
        .iter()
        .find(|u| u["workload_id"] == id && u["attempt"] == 1)
        .expect("the first attempt is billed");
    assert_eq!(u["site"], "old");
    assert_eq!(u["accelerators"], 8);
    assert_eq!(u["price_micro_usd_per_accelerator_hour"], 2_500_000);
    let span = u["to_ms"].as_i64().unwrap() - u["from_ms"].as_i64().unwrap();
    let expected = (2_500_000.0 * 8.0 * span as f64 / 3_600_000.0).round() as i64;
    assert!(
        span > 0 && (u["cost_micro_usd"].as_i64().unwrap() - expected).abs() <= 1,
        "{u}"
    );
    assert!(
        server.log().contains("no longer configured"),
        "{}",
        server.log()
    );
    let r = call(
        &rt,
        &c,
        "POST",
        &format!("/v1/workloads/{id}/cancel"),
        None,
        &[],
    );
    assert_eq!(r.status, 202);
    assert_eq!(wait_ended(&rt, &c, id)["state"], "cancelled");
}

/// #14: a priority −3 job submitted after a waiting 8-GPU gang started
/// before it. Now the gang holds the site; the small job waits behind it.
#[test]
fn a_waiting_gang_is_not_overtaken_by_lower_priority_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let aws = json!(["aws:us-east-1"]);
    let first = submit(
        &rt,
        &c,
        &json!({"name": "half", "accelerators": "H100:4", "regions": aws, "run": "sleep 2"}),
    );
    wait_until("the first half running", 30, || {
        state_of(&rt, &c, first) == "running"
    });
    let gang = submit(
        &rt,
        &c,
        &json!({"name": "gang", "accelerators": "H100:8", "regions": aws, "run": "sleep 1"}),
    );
    std::thread::sleep(Duration::from_millis(200));
    let low = submit(
        &rt,
        &c,
        &json!({"name": "low", "accelerators": "H100:4", "priority": -3, "regions": aws, "run": "true"}),
    );
    wait_ended(&rt, &c, low);
    let started = |id: i64| {
        show(&rt, &c, id)["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["state"] == "dispatched")
            .map(|e| e["at_ms"].as_i64().unwrap())
            .unwrap()
    };
    assert!(
        started(gang) <= started(low),
        "the low-priority job overtook the gang"
    );
    let q = show(&rt, &c, gang);
    assert_eq!(q["state"], "succeeded", "{q}");
}

/// A TCP proxy to `upstream` that can stop passing bytes (the sockets stay
/// open): a database that hangs rather than refuses.
struct Blackhole {
    port: u16,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Blackhole {
    fn start(upstream: String) -> Blackhole {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = blocked.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while b.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Blackhole { port, blocked }
    }

    fn block(&self, on: bool) {
        self.blocked.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// #13: during a database outage /healthz hung for more than 5 s; it
/// must answer 503 at once (within its 1 s budget).
#[test]
fn healthz_answers_503_when_the_database_hangs() {
    let url = pg_database("outage");
    let (head, tail) = url.split_once('@').unwrap();
    let (hostport, rest) = tail.split_once('/').unwrap();
    let proxy = Blackhole::start(hostport.to_string());
    let via_proxy = format!("{head}@127.0.0.1:{}/{rest}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), Some(&via_proxy));
    let rt = rt();
    let anon = server.client(None);
    wait_until("healthy", 30, || {
        call(&rt, &anon, "GET", "/healthz", None, &[]).status == 200
    });
    proxy.block(true);
    let started = std::time::Instant::now();
    let r = call(&rt, &anon, "GET", "/healthz", None, &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.error_text());
    assert_eq!(r.json().unwrap()["status"], "database unreachable");
    // Bounded by its own budget (1 s), far from the 5 s it hung before.
    assert!(took < Duration::from_secs(4), "{took:?}");
    proxy.block(false);
    wait_until("healthy again", 30, || {
        call(&rt, &anon, "GET", "/healthz", None, &[]).status == 200
    });
}

/// #5: a database URL with its password given on the command line shows
/// in /proc/<pid>/cmdline. It can come from a file (or the environment),
/// and the command line says why not to use it.
#[test]
fn the_database_url_comes_from_a_file_and_a_password_on_the_command_line_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    let url_file = dir.path().join("db.url");
    std::fs::write(&url_file, format!("{}\n", db.display())).unwrap();
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "ci", "--database-url-file"])
        .arg(&url_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the URL in the file was used");
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "ci", "--database-url-file"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url-file"));
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "ci",
            "--database-url",
            "postgres://skyward:hunter2@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("visible to every user"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is not echoed: {err}"
    );
}
