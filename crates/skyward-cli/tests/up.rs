#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! `skyward up` serves its built-in sites through agents that run in the
//! same process and speak the remote agents' protocol (`POST
//! /v1/agent/sync` with a token of scope `agent:<site>`): the sites say
//! `executor: agent` and are up, work runs through them, and after a
//! `kill -9` the new process's agents adopt the run that went on (it runs
//! once); the agent tokens of the last start are revoked.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};

#[test]
fn up_runs_its_sites_through_in_process_agents_and_adopts_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_up(dir.path(), free_port());
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let sites_up = |c: &skyward_server::client::Client| -> Vec<Value> {
        call(&rt, c, "GET", "/v1/sites", None, &[]).json().unwrap()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sites = sites_up(&c);
        if !sites.is_empty() && sites.iter().all(|s| s["up"] == true) {
            assert!(sites.iter().all(|s| s["executor"] == "agent"), "{sites:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sites never all up: {sites:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let marks = writable_dir(dir.path(), "marks");
    let id = submit(
        &rt,
        &c,
        json!({"name": "w", "accelerators": "H100:1",
               "run": format!("touch {}/$SKYWARD_ATTEMPT-$$; sleep 3; echo done on $SKYWARD_SITE", marks.display())}),
    );
    wait_for(&rt, &c, id, 30, |v| v["state"] == "running");
    server.kill9();
    server.spawn();
    let c = server.client(Some(&admin));
    let v = wait_for(&rt, &c, id, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["attempt"], 1, "{v}");
    let runs: Vec<_> = std::fs::read_dir(&marks).unwrap().collect();
    assert_eq!(runs.len(), 1, "the run started more than once");
    let logs = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{id}/logs"),
        None,
        &[],
    );
    assert!(
        String::from_utf8_lossy(&logs.body).contains("done on "),
        "{}",
        String::from_utf8_lossy(&logs.body)
    );
    // The agents' tokens: one live per site, the last start's revoked.
    let tokens = call(&rt, &c, "GET", "/v1/tokens", None, &[])
        .json()
        .unwrap();
    let agent_tokens: Vec<&Value> = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["scope"].as_str().is_some_and(|s| s.starts_with("agent:")))
        .collect();
    let live = agent_tokens
        .iter()
        .filter(|t| t["revoked_at_ms"].is_null())
        .count();
    assert_eq!((agent_tokens.len(), live), (6, 3), "{agent_tokens:?}");
}
