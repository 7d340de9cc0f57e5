#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Remote agents through the binary: a server and `skyward agent`
//! processes talking over real HTTP, the agent connecting outbound with
//! its site's token. A run goes through the agent and its log comes back;
//! when the agent dies mid-run the site is lost after the heartbeat
//! timeout and the work moves to another provider; when the agent comes
//! back it still holds the old run, which the server has it stop (never
//! reported as the live attempt). Hostile agents are refused.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `edge` is served by an agent (cheap, so work goes there first);
/// `azure-local` runs in the server itself.
const CONFIG: &str = "\
sites:
  - name: edge
    region: aws:us-east-1
    accelerator: H100
    accelerators: 2
    price_usd_per_accelerator_hour: 1
    executor: agent
  - name: azure-local
    region: azure:eastus
    accelerator: H100
    accelerators: 2
    price_usd_per_accelerator_hour: 100
scheduler:
  cycle_ms: 20
  lease_ms: 2000
  heartbeat_timeout_ms: 2000
  dispatch_timeout_ms: 5000
";

/// An agent process, killed when the test ends however it ends.
struct AgentProc(Child);

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for AgentProc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for AgentProc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A server on [`CONFIG`] in `dir`, a runtime, an admin client, and the
/// agent token of the `edge` site.
fn edge_server(
    dir: &Path,
) -> (
    Server,
    tokio::runtime::Runtime,
    skyward_server::client::Client,
    String,
) {
    std::fs::write(dir.join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir, free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let agent_token = token(
        &rt,
        &c,
        json!({"name": "edge-agent", "scope": "agent", "site": "edge"}),
    );
    (server, rt, c, agent_token)
}

fn agent(server: &Server, token: &str, work: &Path, log: &Path) -> AgentProc {
    AgentProc(agent_child(server, token, work, log))
}

fn agent_child(server: &Server, token: &str, work: &Path, log: &Path) -> Child {
    agent_command(&server.url(), token, work, log, None)
}

/// `skyward agent` for the `edge` site, its log appended to `log`; in the
/// network namespace `netns` when given (through nsenter).
fn agent_command(url: &str, token: &str, work: &Path, log: &Path, netns: Option<&str>) -> Child {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/var/run/netns/{ns}")).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args([
        "agent",
        "--server",
        url,
        "--site",
        "aws:us-east-1/edge",
        "--accelerator",
        "H100",
        "--accelerators",
        "2",
        "--work-dir",
    ])
    .arg(work)
    .env("SKYWARD_TOKEN", token)
    .env_remove("SKYWARD_SERVER")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log_to(log))
    .spawn()
    .unwrap()
}

/// Waits until the server says `site` is up (its agent has synced).
fn site_up(rt: &tokio::runtime::Runtime, c: &skyward_server::client::Client, site: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = call(rt, c, "GET", "/v1/sites", None, &[]).json().unwrap();
        let up = v["items"]
            .as_array()
            .or(v.as_array())
            .into_iter()
            .flatten()
            .any(|x| x["name"] == site && x["up"] == true);
        if up {
            return;
        }
        assert!(Instant::now() < deadline, "site {site} never came up: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i64) -> bool {
    // A zombie has no command line left.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// A server starts before its agents: work that may run only on an agent
/// site waits ("site down") until the agent connects, then runs there on
/// its first attempt. It was sent to the silent site at once, lost there a
/// heartbeat timeout later, and kept away by the failover backoff.
#[test]
fn a_site_takes_no_work_before_its_agent_connects() {
    let dir = tempfile::tempdir().unwrap();
    let (server, rt, c, agent_token) = edge_server(dir.path());
    let id = submit(
        &rt,
        &c,
        json!({"name": "aws-only", "accelerators": "H100:1", "providers": ["aws"], "run": "echo ran"}),
    );
    // Longer than the heartbeat timeout (2 s): nothing is sent anywhere.
    std::thread::sleep(Duration::from_millis(3_000));
    let v = wait_for(&rt, &c, id, 5, |_| true);
    assert_eq!(v["state"], "pending", "{v}");
    assert!(v["attempts"].as_array().is_none_or(|a| a.is_empty()), "{v}");
    let work = dir.path().join("agent-work");
    let log = dir.path().join("agent.log");
    let mut a = agent(&server, &agent_token, &work, &log);
    let v = wait_for(&rt, &c, id, 30, |v| v["state"] == "succeeded");
    assert_eq!(
        (v["site"].as_str(), v["attempt"].as_i64()),
        (Some("edge"), Some(1)),
        "{v}"
    );
    let _ = a.kill();
    let _ = a.wait();
}

/// A run that writes far more than one sync carries (64 KiB) just
/// before it ends: its end reaches the server with the last of its
/// output, so the log is whole and the throughput report on its last line
/// is learned (it was lost: the end went with the first chunk, the agent
/// retired the run and the rest was never sent).
#[test]
fn an_agent_run_s_whole_output_and_its_report_arrive_before_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (server, rt, c, agent_token) = edge_server(dir.path());
    let work = dir.path().join("agent-work");
    let log = dir.path().join("agent.log");
    let _a = agent(&server, &agent_token, &work, &log);
    site_up(&rt, &c, "edge");
    // 5,000 lines of 100 bytes (500,000 bytes), then the report line.
    let run = format!(
        "i=0; while [ $i -lt 5000 ]; do printf '%099d\\n' $i; i=$((i+1)); done; {BIN} metric 42.5 --unit tokens/s"
    );
    let id = submit(
        &rt,
        &c,
        json!({"name": "chatty", "accelerators": "H100:1", "providers": ["aws"], "run": run}),
    );
    let v = wait_for(&rt, &c, id, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["site"], "edge", "{v}");
    let text =
        std::fs::read_to_string(server.work.join(id.to_string()).join("output.log")).unwrap();
    assert!(
        text.starts_with(&format!("{:099}\n", 0))
            && text.contains(&format!("{:099}\n", 4999))
            && text
                .trim_end()
                .ends_with("##skyward-metric throughput=42.5 unit=tokens/s"),
        "{} bytes, ends {:?}",
        text.len(),
        &text[text.len().saturating_sub(200)..]
    );
    assert!(text.len() >= 500_000, "{}", text.len());
    let p: Value = call(&rt, &c, "GET", "/v1/profiles", None, &[])
        .json()
        .unwrap();
    assert_eq!(p["items"][0]["class"], "admin/chatty", "{p}");
    assert!(
        (p["items"][0]["estimates"][0]["rate"].as_f64().unwrap() - 42.5).abs() < 1e-9,
        "{p}"
    );
    assert_eq!(
        p["items"][0]["estimates"][0]["alternative"], "H100:1",
        "{p}"
    );
}

#[test]
fn work_runs_through_an_agent_and_fails_over_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (server, rt, c, agent_token) = edge_server(dir.path());
    // Where runs leave their pid (runs may be another user).
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pids, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let work = dir.path().join("agent-work");
    let agent_log = dir.path().join("agent.log");
    let mut first = agent(&server, &agent_token, &work, &agent_log);
    site_up(&rt, &c, "edge");

    // A run through the agent; its log comes back to the server.
    let hello = submit(
        &rt,
        &c,
        json!({"name": "hello", "accelerators": "H100:1", "run": "echo hello from $SKYWARD_SITE attempt $SKYWARD_ATTEMPT"}),
    );
    let v = wait_for(&rt, &c, hello, 60, |v| {
        v["state"] == "succeeded" || v["state"] == "failed"
    });
    assert_eq!(
        (v["state"].as_str(), v["site"].as_str()),
        (Some("succeeded"), Some("edge")),
        "{v}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = call(
            &rt,
            &c,
            "GET",
            &format!("/v1/workloads/{hello}/logs"),
            None,
            &[],
        );
        if String::from_utf8_lossy(&logs.body).contains("hello from edge attempt 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log never came back: {}",
            String::from_utf8_lossy(&logs.body)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A long run on the edge; the agent dies (kill -9) while it runs. The
    // first attempt waits forever; the next one ends at once.
    let pid_file = |attempt: u32| pids.join(format!("{attempt}"));
    let run = format!(
        "echo $$ > {}/$SKYWARD_ATTEMPT; if [ \"$SKYWARD_ATTEMPT\" = 1 ]; then exec sleep 600; fi; echo resumed on $SKYWARD_SITE",
        pids.display()
    );
    let moving = submit(
        &rt,
        &c,
        json!({"name": "moving", "accelerators": "H100:1", "run": run}),
    );
    wait_for(&rt, &c, moving, 60, |v| {
        v["state"] == "running" && v["site"] == "edge"
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pid_file(1).exists() {
        assert!(Instant::now() < deadline, "the first attempt never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let old_pid: i64 = std::fs::read_to_string(pid_file(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A second run there, allowed no restart.
    let fragile = submit(
        &rt,
        &c,
        json!({"name": "fragile", "accelerators": "H100:1", "run": "sleep 600", "recovery": {"max_restarts": 0}}),
    );
    wait_for(&rt, &c, fragile, 60, |v| {
        v["state"] == "running" && v["site"] == "edge"
    });
    let cut = Instant::now();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(alive(old_pid), "the run should outlive its agent");

    // The edge is silent: after the heartbeat timeout (2 s) the work moves
    // to the other provider and ends there.
    let v = wait_for(&rt, &c, moving, 60, |v| v["state"] == "succeeded");
    let rto = cut.elapsed();
    assert_eq!(v["site"], "azure-local", "{v}");
    eprintln!("failover: the workload ended on the other provider {rto:?} after the agent died (heartbeat timeout 2 s)");
    assert!(rto < Duration::from_secs(10), "took {rto:?}");
    // Its history: attempt 1 on the edge, requeued because the site
    // failed it, with the work it had done; attempt 2 to the end.
    let attempts = state_attempts(&rt, &c, moving);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["site"], "edge");
    assert_eq!(attempts[0]["ended"], "requeued");
    assert_eq!(
        attempts[0]["note"],
        "lost on edge: the site failed it (failure 1); placed again by its recovery strategy"
    );
    assert!(attempts[0]["ran_ms"].as_i64().unwrap() > 0);
    assert_eq!(
        (attempts[1]["site"].as_str(), attempts[1]["ended"].as_str()),
        (Some("azure-local"), Some("succeeded"))
    );
    let out = Command::new(BIN)
        .args(["status", &moving.to_string()])
        .env("SKYWARD_SERVER", server.url())
        .env("SKYWARD_TOKEN", server.admin_token())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attempts:") && text.contains("of work on runs that were requeued"),
        "{text}"
    );
    // The one allowed no restart is given up, and says why.
    let v = wait_for(&rt, &c, fragile, 30, |v| v["state"] == "failed");
    assert_eq!(
        v["end_note"], "gave up after 1 failures (recovery.max_restarts 0); the last on edge",
        "{v}"
    );
    let status = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{moving}"),
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(status["attempt"], 2, "{status}");

    // The agent comes back, still holding attempt 1: the server has it
    // stop that run, and the workload's outcome stays attempt 2's.
    let mut second = agent(&server, &agent_token, &work, &agent_log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(old_pid) {
        assert!(
            Instant::now() < deadline,
            "the stale run {old_pid} was not stopped; agent log:\n{}",
            std::fs::read_to_string(&agent_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let v = wait_for(&rt, &c, moving, 5, |_| true);
    assert_eq!(
        (v["state"].as_str(), v["site"].as_str()),
        (Some("succeeded"), Some("azure-local")),
        "{v}"
    );
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(log.contains("connected"), "{log}");
    // Revoked: the agent is refused and stops (its runs go on).
    let list = call(&rt, &c, "GET", "/v1/tokens", None, &[])
        .json()
        .unwrap();
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "edge-agent")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = call(
        &rt,
        &c,
        "POST",
        &format!("/v1/tokens/{id}/revoke"),
        None,
        &[],
    );
    assert!(r.status < 300, "{}", r.error_text());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent kept going after its token was revoked"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(log.contains("revoked"), "{log}");
}

#[test]
fn hostile_agents_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let edge = token(
        &rt,
        &c,
        json!({"name": "edge-agent", "scope": "agent", "site": "edge"}),
    );
    let reader = token(&rt, &c, json!({"name": "reader", "scope": "read"}));
    // An agent token is for a site served by an agent, and only with one.
    for bad in [
        json!({"name": "x", "scope": "agent", "site": "azure-local"}),
        json!({"name": "x", "scope": "agent"}),
        json!({"name": "x", "scope": "read", "site": "edge"}),
    ] {
        let r = call(&rt, &c, "POST", "/v1/tokens", Some(&bad.to_string()), &[]);
        assert_eq!(r.status, 422, "{bad}: {}", r.error_text());
    }
    // An agent token reaches nothing else.
    let as_agent = server.client(Some(&edge));
    assert_eq!(
        call(&rt, &as_agent, "GET", "/v1/workloads", None, &[]).status,
        403
    );

    // A workload that runs on the other site.
    let pinned = submit(
        &rt,
        &c,
        json!({"name": "pinned", "accelerators": "H100:1", "providers": ["azure"], "run": "sleep 3"}),
    );
    wait_for(&rt, &c, pinned, 30, |v| v["state"] == "running");

    let sync = |cl: &skyward_server::client::Client, body: Value| {
        call(
            &rt,
            cl,
            "POST",
            "/v1/agent/sync",
            Some(&body.to_string()),
            &[],
        )
    };
    let base = json!({
        "site": "edge",
        "session": "s1",
        "capacity": {"region": "aws:us-east-1", "accelerator": "H100", "accelerators": 2},
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    let code = |r: &skyward_server::client::Reply| {
        r.json().unwrap_or(Value::Null)["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let anon = server.client(None);
    assert_eq!(sync(&anon, base.clone()).status, 401);
    let r = sync(&server.client(Some(&reader)), base.clone());
    assert_eq!((r.status, code(&r).as_str()), (403, "wrong_site"));
    let r = sync(&as_agent, with(&|b| b["site"] = json!("azure-local")));
    assert_eq!((r.status, code(&r).as_str()), (403, "wrong_site"));
    let r = sync(
        &as_agent,
        with(&|b| b["capacity"]["accelerators"] = json!(64)),
    );
    assert_eq!(
        (r.status, code(&r).as_str()),
        (403, "capacity_not_granted"),
        "{}",
        r.error_text()
    );
    let r = sync(
        &as_agent,
        with(&|b| b["capacity"]["region"] = json!("aws:eu-west-1")),
    );
    assert_eq!((r.status, code(&r).as_str()), (403, "capacity_not_granted"));
    let r = sync(
        &as_agent,
        with(&|b| b["capacity"]["price_basis"] = json!("spot")),
    );
    assert_eq!(
        (r.status, code(&r).as_str()),
        (403, "capacity_not_granted"),
        "{}",
        r.error_text()
    );
    let r = sync(&as_agent, with(&|b| b["capacity"]["spot"] = json!(true)));
    assert_eq!((r.status, code(&r).as_str()), (403, "capacity_not_granted"));
    let r = sync(&as_agent, with(&|b| b["surprise"] = json!(1)));
    assert_eq!(r.status, 400);
    // A report for a workload it was never given: taken (acknowledged) but
    // ignored; the workload runs on, where it runs.
    let r = sync(
        &as_agent,
        with(&|b| {
            b["events"] = json!([
                {"seq": 1, "kind": "finished", "id": pinned, "attempt": 1, "success": false, "exit_code": 9},
                {"seq": 2, "kind": "started", "id": 424242, "attempt": 1}
            ])
        }),
    );
    assert_eq!(r.status, 200, "{}", r.error_text());
    std::thread::sleep(Duration::from_millis(300));
    let v = wait_for(&rt, &c, pinned, 30, |v| {
        v["state"] == "succeeded" || v["state"] == "failed"
    });
    assert_eq!(
        (v["state"].as_str(), v["site"].as_str()),
        (Some("succeeded"), Some("azure-local")),
        "{v}"
    );
    assert!(
        server.log().contains("which is not its to run; ignored"),
        "{}",
        server.log()
    );
    // Nor may it write another site's workload's log.
    let log = server.work.join(pinned.to_string()).join("output.log");
    let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let r = sync(
        &as_agent,
        with(&|b| b["logs"] = json!([{"id": pinned, "offset": len, "data": "INJECTED\n"}])),
    );
    assert_eq!(r.status, 200, "{}", r.error_text());
    assert!(!std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("INJECTED"));
    // A replayed old message changes nothing either.
    let r = sync(
        &as_agent,
        with(&|b| {
            b["events"] = json!([{"seq": 1, "kind": "finished", "id": pinned, "attempt": 1}])
        }),
    );
    assert_eq!(r.status, 200);
    let v = wait_for(&rt, &c, pinned, 5, |_| true);
    assert_eq!(v["state"], "succeeded");
}

/// A network namespace with a veth link to this host: a site's own
/// network, which the test can cut and heal.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    /// A second link, to the object stores only: a partition that cuts
    /// the site from the control plane while its cloud's storage stays
    /// reachable (the agent's link is cut, this one is not).
    store_if: String,
    store_ip: String,
}

impl Netns {
    fn new() -> Netns {
        let tag = std::process::id() % 200 + 20;
        let name = format!("skyag{tag}");
        let host_if = format!("skyh{tag}");
        let host_ip = format!("10.3.{tag}.1");
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = Command::new("ip").args(["link", "del", &host_if]).status();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("10.3.{tag}.2/30"),
            "dev",
            "eth0",
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "eth0", "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        let store_if = format!("skys{tag}");
        let store_ip = format!("10.4.{tag}.1");
        let _ = Command::new("ip").args(["link", "del", &store_if]).status();
        ip(&[
            "link", "add", &store_if, "type", "veth", "peer", "name", "eth1", "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{store_ip}/30"), "dev", &store_if]);
        ip(&["link", "set", &store_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("10.4.{tag}.2/30"),
            "dev",
            "eth1",
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "eth1", "up"]);
        Netns {
            name,
            host_if,
            host_ip,
            store_if,
            store_ip,
        }
    }

    fn link(&self, up: bool) {
        let st = Command::new("ip")
            .args(["link", "set", &self.host_if, if up { "up" } else { "down" }])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// The `edge` site's agent, living in the namespace: it reaches the server
/// over the link only.
fn agent_in(net: &Netns, server: &Server, agent_token: &str, work: &Path, log: &Path) -> AgentProc {
    AgentProc(agent_command(
        &format!("http://{}:{}", net.host_ip, server.port),
        agent_token,
        work,
        log,
        Some(&net.name),
    ))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.store_if])
            .status();
    }
}

/// The issue's partition: the agent's network is cut (not a kill: the
/// agent and its run go on). The work resumes on the other provider; when
/// the link heals, the agent reconnects and the old run is stopped,
/// never reported as the live attempt.
#[test]
fn a_network_cut_moves_the_work_and_healing_stops_the_old_run() {
    let net = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start_everywhere(dir.path(), free_port());
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let agent_token = token(
        &rt,
        &c,
        json!({"name": "edge-agent", "scope": "agent", "site": "edge"}),
    );
    let pids = writable_dir(dir.path(), "pids");
    let work = dir.path().join("agent-work");
    let log = dir.path().join("agent.log");
    let mut agent = agent_in(&net, &server, &agent_token, &work, &log);
    site_up(&rt, &c, "edge");
    let run = format!(
        "echo $$ > {}/$SKYWARD_ATTEMPT; if [ \"$SKYWARD_ATTEMPT\" = 1 ]; then exec sleep 600; fi; echo resumed",
        pids.display()
    );
    let id = submit(
        &rt,
        &c,
        json!({"name": "cut", "accelerators": "H100:1", "run": run}),
    );
    wait_for(&rt, &c, id, 60, |v| {
        v["state"] == "running" && v["site"] == "edge"
    });
    let first = pids.join("1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.exists() {
        assert!(Instant::now() < deadline, "attempt 1 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let old_pid: i64 = std::fs::read_to_string(&first)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // Cut the link: the agent and its run go on, unheard.
    let cut = Instant::now();
    net.link(false);
    let v = wait_for(&rt, &c, id, 60, |v| v["state"] == "succeeded");
    let rto = cut.elapsed();
    eprintln!("partition: resumed and ended on the other provider {rto:?} after the cut");
    assert_eq!(v["site"], "azure-local", "{v}");
    assert!(
        alive(old_pid),
        "a cut is not a kill: the old run should still be running"
    );
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent should keep trying"
    );

    // The cut outlasts the agent's patience: it gives the dead connection
    // up and retries with backoff.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("lost the server")
    {
        assert!(Instant::now() < deadline, "the agent never noticed the cut");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Heal: the agent reconnects and is told to stop the old run.
    net.link(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(old_pid) {
        assert!(
            Instant::now() < deadline,
            "the old run was not stopped after the link healed; agent log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The outcome is the second attempt's, and nothing ever said the first
    // ended there.
    let v = wait_for(&rt, &c, id, 5, |_| true);
    assert_eq!(
        (v["state"].as_str(), v["site"].as_str()),
        (Some("succeeded"), Some("azure-local")),
        "{v}"
    );
    let events = v["events"].as_array().unwrap();
    assert!(
        !events
            .iter()
            .any(|e| e["site"] == "edge" && (e["state"] == "succeeded" || e["state"] == "failed")),
        "{events:?}"
    );
    let agent_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        agent_log.matches("connected to").count() >= 2,
        "the agent should have reconnected: {agent_log}"
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

fn state_attempts(
    rt: &tokio::runtime::Runtime,
    c: &skyward_server::client::Client,
    id: i64,
) -> Vec<Value> {
    call(rt, c, "GET", &format!("/v1/workloads/{id}"), None, &[])
        .json()
        .unwrap()["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `kill -9` of the server while a lost site's work is failing over: the
/// restarted server finds the work where it was, loses the silent site
/// again and moves the work once; it runs once on the other provider.
#[test]
fn a_server_killed_during_a_failover_moves_the_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rt, c, agent_token) = edge_server(dir.path());
    let marks = writable_dir(dir.path(), "marks");
    let work = dir.path().join("agent-work");
    let log = dir.path().join("agent.log");
    let mut a = agent(&server, &agent_token, &work, &log);
    site_up(&rt, &c, "edge");
    // Each attempt leaves a mark; attempt 1 waits, the others end at once.
    let run = format!(
        "echo $$ > {}/$SKYWARD_ATTEMPT-$SKYWARD_SITE; if [ \"$SKYWARD_ATTEMPT\" = 1 ]; then exec sleep 600; fi",
        marks.display()
    );
    let id = submit(
        &rt,
        &c,
        json!({"name": "w", "accelerators": "H100:1", "run": run}),
    );
    wait_for(&rt, &c, id, 60, |v| {
        v["state"] == "running" && v["site"] == "edge"
    });
    // The agent dies; before its site is declared lost (2 s), so does the
    // server.
    a.kill().unwrap();
    a.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    server.kill9();
    server.spawn();
    let c = server.client(Some(&server.admin_token()));
    let v = wait_for(&rt, &c, id, 60, |v| {
        v["state"] == "succeeded" || v["state"] == "failed"
    });
    assert_eq!(
        (v["state"].as_str(), v["site"].as_str()),
        (Some("succeeded"), Some("azure-local")),
        "{v}"
    );
    let mut made: Vec<String> = std::fs::read_dir(&marks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["1-edge", "2-azure-local"], "each attempt once");
    let attempts = state_attempts(&rt, &c, id);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    // The dead agent's run is an orphan now (no agent will stop it).
    let pid = std::fs::read_to_string(marks.join("1-edge")).unwrap();
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
}

/// The store endpoints of scripts/objstore.sh as seen from a site's
/// namespace (the stores listen on every address of this host).
fn via(endpoint: &str, host_ip: &str) -> String {
    endpoint.replace("127.0.0.1", host_ip)
}

/// Cancels, however the test ends, the Slurm jobs whose comment starts
/// with `marker` (a failed test would leave its job running on the shared
/// cluster).
struct SlurmJobsOf {
    conf: String,
    marker: String,
}

impl Drop for SlurmJobsOf {
    fn drop(&mut self) {
        let Ok(out) = Command::new("squeue")
            .args(["--noheader", "--format=%i %k"])
            .env("SLURM_CONF", &self.conf)
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((job, comment)) = line.trim().split_once(' ') {
                if comment.starts_with(&self.marker) {
                    let _ = Command::new("scancel")
                        .arg(job)
                        .env("SLURM_CONF", &self.conf)
                        .status();
                }
            }
        }
    }
}

/// The issue's partition with checkpoints, across two agents: a training
/// run on the AWS site (a local agent in its own network namespace) writes
/// a checkpoint every 0.5 s to S3 (moto), which the server copies to Azure
/// Blob (Azurite). The site is cut from the control plane (the agent and
/// the run go on, and still reach S3): the work resumes on the Azure site,
/// a Slurm cluster behind its own agent (`--executor slurm`, the job on a
/// slurmd node in its own namespace), from the newest copy on its own side
/// within two heartbeat timeouts and a cycle, redoing at most the
/// checkpoint interval plus the replication lag. The checkpoints the
/// cut-off run goes on writing are never recorded, copied or resumed
/// from; when the link heals, the old run is stopped.
#[test]
fn a_cut_site_s_work_resumes_in_the_other_cloud_from_its_replicated_checkpoint() {
    let net = Netns::new();
    let slurm_conf = test_var("SKYWARD_TEST_SLURM_CONF");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s3_key"), "test").unwrap();
    std::fs::write(
        dir.path().join("az_key"),
        test_var("SKYWARD_TEST_AZURE_KEY"),
    )
    .unwrap();
    // The stores over the site's second link, which the cut leaves up:
    // the cut-off run goes on writing checkpoints to S3.
    let s3_endpoint = via(&test_var("SKYWARD_TEST_S3_ENDPOINT"), &net.store_ip);
    let az_endpoint = via(&test_var("SKYWARD_TEST_AZURE_ENDPOINT"), &net.store_ip);
    // The Azure site is a Slurm cluster's agent, not the server's own.
    let sites = CONFIG.replace(
        "  - name: azure-local\n    region: azure:eastus\n    accelerator: H100\n    accelerators: 2\n    price_usd_per_accelerator_hour: 100\n",
        "  - name: azure-slurm\n    region: azure:eastus\n    accelerator: H100\n    accelerators: 2\n    price_usd_per_accelerator_hour: 100\n    executor: agent\n",
    );
    assert_ne!(sites, CONFIG);
    let config = format!(
        "{sites}  checkpoint_scan_ms: 100
secrets:
  s3_key: {{file: {d}/s3_key}}
  az_key: {{file: {d}/az_key}}
object_stores:
  - uri: s3://skyward-test
    endpoint: {s3_endpoint}
    access_key_id_secret: s3_key
    secret_access_key_secret: s3_key
    reachable_from: [aws]
  - uri: az://skyward-test
    endpoint: {az_endpoint}
    account: {acct}
    access_key_secret: az_key
    reachable_from: [azure]
",
        d = dir.path().display(),
        acct = test_var("SKYWARD_TEST_AZURE_ACCOUNT"),
    );
    std::fs::write(dir.path().join("server.yaml"), config).unwrap();
    let server = Server::start_everywhere(dir.path(), free_port());
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let agent_token = token(
        &rt,
        &c,
        json!({"name": "edge-agent", "scope": "agent", "site": "edge"}),
    );
    let pids = writable_dir(dir.path(), "pids");
    let log = dir.path().join("agent.log");
    let mut agent = agent_in(
        &net,
        &server,
        &agent_token,
        &dir.path().join("agent-work"),
        &log,
    );
    site_up(&rt, &c, "edge");
    let slurm_token = token(
        &rt,
        &c,
        json!({"name": "slurm-agent", "scope": "agent", "site": "azure-slurm"}),
    );
    let slurm_work = writable_dir(dir.path(), "slurm-work");
    let _jobs = SlurmJobsOf {
        conf: slurm_conf.clone(),
        marker: "skyward:azure-slurm:".into(),
    };
    let mut slurm_agent = AgentProc(
        Command::new(BIN)
            .args([
                "agent",
                "--server",
                &server.url(),
                "--site",
                "azure:eastus/azure-slurm",
                "--accelerator",
                "H100",
                "--accelerators",
                "2",
                "--executor",
                "slurm",
                "--slurm-conf",
                &slurm_conf,
                "--work-dir",
            ])
            .arg(&slurm_work)
            .env("SKYWARD_TOKEN", &slurm_token)
            .env_remove("SKYWARD_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_to(&dir.path().join("slurm-agent.log")))
            .spawn()
            .unwrap(),
    );
    site_up(&rt, &c, "azure-slurm");
    let tag = format!("cut-{}-{}", std::process::id(), free_port());
    let (s3, az) = (
        format!("s3://skyward-test/{tag}"),
        format!("az://skyward-test/{tag}"),
    );
    let run = format!(
        r#"echo $$ > {pids}/$SKYWARD_ATTEMPT
step=${{SKYWARD_CHECKPOINT_STEP:-0}}
echo "attempt $SKYWARD_ATTEMPT resumes from step $step in $SKYWARD_CHECKPOINT_URI"
d=$(mktemp -d)
while [ "$step" -lt 3000 ]; do
  step=$((step + 1))
  echo "attempt $SKYWARD_ATTEMPT: weights at step $step" > "$d/w"
  "$SKYWARD_BIN" checkpoint put --step "$step" "$d/w" 2>/dev/null || true
  # Once the work has moved (the test says so), the cut-off first attempt
  # writes faster: its steps run ahead of the second attempt's, so the
  # server would take them as the newest.
  if [ "$SKYWARD_ATTEMPT" = 1 ] && [ -e {pids}/moved ]; then sleep 0.1; else sleep 0.5; fi
done"#,
        pids = pids.display()
    );
    let id = submit(
        &rt,
        &c,
        json!({"name": "train", "accelerators": "H100:1", "run": run,
               "checkpoint": {"uri": s3, "every": "1s", "replicate_to": [az]},
               "recovery": {"strategy": "any_provider"}}),
    );
    let steps = |v: &Value, store: &str| -> Vec<(i64, i64)> {
        v["checkpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["store"] == json!(store))
            .map(|c| {
                (
                    c["step"].as_i64().unwrap(),
                    c["recorded_at_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    wait_for(&rt, &c, id, 60, |v| {
        v["site"] == "edge" && steps(v, &az).iter().any(|(s, _)| *s >= 4)
    });
    let old_pid: i64 = std::fs::read_to_string(pids.join("1"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // Cut the site's network: it can reach neither the server nor S3.
    let cut = Instant::now();
    net.link(false);
    let v = wait_for(&rt, &c, id, 60, |v| {
        v["state"] == "running" && v["site"] == "azure-slurm"
    });
    let rto = cut.elapsed();
    // The newest step the first attempt wrote to S3 (not a copy of one the
    // second attempt, already running, wrote on Azure).
    let on_s3 = v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["store"] == json!(s3) && c["copied_from"].is_null())
        .filter_map(|c| c["step"].as_i64())
        .max()
        .unwrap();
    let second = v["attempts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(second["resumed_from"]["store"], json!(az), "{second}");
    let resumed = second["resumed_from"]["step"].as_i64().unwrap();
    // Replication lag of the checkpoints copied before the cut.
    let s3_at: std::collections::BTreeMap<i64, i64> = steps(&v, &s3).into_iter().collect();
    let lags: Vec<i64> = steps(&v, &az)
        .into_iter()
        .filter_map(|(s, t)| s3_at.get(&s).map(|t0| t - t0))
        .collect();
    let lag_max = lags.iter().copied().max().unwrap_or(0);
    let redone_ms = (on_s3 - resumed) * 500;
    eprintln!(
        "partition with checkpoints: RTO {rto:?}; resumed from step {resumed}, the last recorded on S3 was {on_s3} (work redone {redone_ms} ms); replication lag max {lag_max} ms over {} copies",
        lags.len()
    );
    // RTO ≤ 2 × heartbeat timeout (2 s) + placement; 1 s of slack for a
    // loaded machine.
    assert!(rto <= Duration::from_millis(2 * 2000 + 1000), "RTO {rto:?}");
    // Work redone ≤ checkpoint interval + replication lag (+ one scan).
    assert!(
        redone_ms <= 500 + lag_max + 100,
        "redone {redone_ms} ms, lag {lag_max} ms"
    );
    // The new attempt was handed that step.
    let want = format!("attempt 2 resumes from step {resumed} in {az}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(&server, &admin, &["logs", &id.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log lacks '{want}':\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    std::fs::write(pids.join("moved"), "").unwrap();
    // The cut-off run goes on writing to S3 (it reaches it): give it time
    // to write past the step the work moved at, and the server time to
    // scan them.
    let out = Command::new(BIN)
        .args(["checkpoint", "latest", "--uri", &s3])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", test_var("SKYWARD_TEST_S3_ENDPOINT"))
        .output()
        .unwrap();
    let _ = out;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(BIN)
            .args(["checkpoint", "latest", "--uri", &s3])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", test_var("SKYWARD_TEST_S3_ENDPOINT"))
            .output()
            .unwrap();
        let newest: i64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if newest >= on_s3 + 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut-off run wrote nothing more to S3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let v = wait_for(&rt, &c, id, 5, |_| true);
    let recorded: Vec<Value> = v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ck| {
            ck["store"] == json!(s3)
                && ck["step"].as_i64().unwrap() > on_s3
                && ck["copied_from"].is_null()
        })
        .cloned()
        .collect();
    assert!(
        recorded.is_empty(),
        "the cut-off run's checkpoints were recorded: {recorded:?}"
    );

    // Heal: the old run is stopped.
    assert!(alive(old_pid), "a cut is not a kill");
    net.link(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(old_pid) {
        assert!(
            Instant::now() < deadline,
            "the old run was not stopped after the link healed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The new attempt's checkpoints come back to S3 as copies of Azure's.
    let v = wait_for(&rt, &c, id, 30, |v| {
        v["checkpoints"].as_array().into_iter().flatten().any(|c| {
            c["store"] == json!(s3)
                && c["copied_from"] == json!(az)
                && c["step"].as_i64().unwrap() > on_s3
        })
    });
    for ck in v["checkpoints"].as_array().unwrap() {
        let step = ck["step"].as_i64().unwrap();
        if ck["store"] == json!(s3) && step > on_s3 {
            assert_eq!(
                ck["copied_from"],
                json!(az),
                "a step the cut-off run wrote was recorded: {ck}"
            );
        }
    }
    assert_eq!(v["site"], "azure-slurm");
    // It ran as a Slurm job of that cluster.
    let jobs = Command::new("squeue")
        .args(["--noheader", "--format=%k"])
        .env("SLURM_CONF", &slurm_conf)
        .output()
        .unwrap();
    let marker = format!("skyward:azure-slurm:{id}:2");
    assert!(
        String::from_utf8_lossy(&jobs.stdout)
            .lines()
            .any(|l| l.trim() == marker),
        "no Slurm job {marker}: {}",
        String::from_utf8_lossy(&jobs.stdout)
    );
    // Stopped before the test ends: a run left behind would spin on.
    cancel_and_wait(&rt, &c, id);
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = slurm_agent.kill();
    let _ = slurm_agent.wait();
}
