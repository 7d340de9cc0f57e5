#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Preemption through the binary: a low-priority run with a checkpoint
//! (preemptible by default) holds the only site; a higher-priority
//! workload takes its place. The run is stopped, requeued with a note
//! saying why, and starts again (attempt 2) once the site has room. A run
//! marked `preemptible: false` is never stopped for another.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = "\
sites:
  - name: only
    region: aws:us-east-1
    accelerator: H100
    accelerators: 8
scheduler:
  cycle_ms: 20
  lease_ms: 2000
";

#[test]
fn higher_priority_work_preempts_a_checkpointed_run_and_never_a_protected_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));

    let low = submit(
        &rt,
        &c,
        json!({"name": "low", "accelerators": "H100:8", "run": "sleep 60", "checkpoint": "ckpt", "priority": 0}),
    );
    wait_for(&rt, &c, low, 30, |v| v["state"] == "running");
    let high = submit(
        &rt,
        &c,
        json!({"name": "high", "accelerators": "H100:8", "run": "sleep 1", "priority": 10}),
    );
    wait_for(&rt, &c, high, 30, |v| v["state"] == "succeeded");
    // The low one was stopped and requeued with a note, then ran again.
    let v = wait_for(&rt, &c, low, 30, |v| {
        v["state"] == "running" && v["attempt"] == 2
    });
    let requeue = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state"] == "pending" && e["note"].is_string())
        .unwrap_or_else(|| panic!("no requeue note: {v}"));
    assert!(
        requeue["note"]
            .as_str()
            .unwrap()
            .contains(&format!("preempted to make room for workload {high}")),
        "{requeue}"
    );
    let metrics =
        String::from_utf8(call(&rt, &c, "GET", "/metrics", None, &[]).body.to_vec()).unwrap();
    assert!(metrics.contains("skyward_preemptions_total 1"), "{metrics}");
    // Its first run was billed (once), to when it was stopped.
    let usage = call(&rt, &c, "GET", "/v1/usage?limit=1000", None, &[])
        .json()
        .unwrap();
    let low_runs = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["workload_id"] == low)
        .count();
    assert_eq!(low_runs, 1, "{usage}");
    let r = call(
        &rt,
        &c,
        "POST",
        &format!("/v1/workloads/{low}/cancel"),
        None,
        &[],
    );
    assert!(matches!(r.status, 200 | 202), "{}", r.error_text());
    wait_for(&rt, &c, low, 30, |v| v["state"] == "cancelled");

    // A protected run is never stopped: the higher-priority work waits.
    let keep = submit(
        &rt,
        &c,
        json!({"name": "keep", "accelerators": "H100:8", "run": "sleep 60", "checkpoint": "ckpt", "preemptible": false}),
    );
    wait_for(&rt, &c, keep, 30, |v| v["state"] == "running");
    let urgent = submit(
        &rt,
        &c,
        json!({"name": "urgent", "accelerators": "H100:8", "run": "true", "priority": 10}),
    );
    std::thread::sleep(Duration::from_millis(1_500));
    let k = call(&rt, &c, "GET", &format!("/v1/workloads/{keep}"), None, &[])
        .json()
        .unwrap();
    assert_eq!(
        (k["state"].as_str(), k["attempt"].as_i64()),
        (Some("running"), Some(1)),
        "{k}"
    );
    let u = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{urgent}"),
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(u["state"], "pending", "{u}");
    call(
        &rt,
        &c,
        "POST",
        &format!("/v1/workloads/{keep}/cancel"),
        None,
        &[],
    );
    wait_for(&rt, &c, urgent, 30, |v| v["state"] == "succeeded");
}
