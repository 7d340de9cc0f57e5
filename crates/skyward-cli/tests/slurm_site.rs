#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! A site that is a real Slurm cluster (`executor: slurm`), through the
//! binary: a 2-node gang runs as one Slurm job across both nodes, its log
//! comes back through `skyward logs`, a cancel reaches Slurm, and a
//! server killed with `kill -9` while a job runs finds it again instead
//! of running it twice. The cluster is `scripts/slurm.sh`'s (started by
//! `scripts/test.sh`).

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::Value;
use skyward_executor::slurm::Slurm;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn slurm_conf() -> String {
    match std::env::var("SKYWARD_TEST_SLURM_CONF") {
        Ok(c) if !c.is_empty() => c,
        _ => panic!(
            "SKYWARD_TEST_SLURM_CONF is not set: run the suite with ./scripts/test.sh, which starts a Slurm cluster"
        ),
    }
}

fn config(site: &str) -> String {
    format!(
        "sites:
  - name: {site}
    region: aws:us-east-1
    accelerator: H100
    accelerators: 4
    executor: slurm
    slurm_conf: {}
scheduler:
  cycle_ms: 20
  lease_ms: 2000
",
        slurm_conf()
    )
}

fn wait_state(
    rt: &tokio::runtime::Runtime,
    c: &skyward_server::client::Client,
    id: i64,
    want: &[&str],
    secs: u64,
) -> Value {
    wait_for(rt, c, id, secs, |v| want.iter().any(|w| v["state"] == *w))
}

/// The Slurm jobs of a site, by its marker comment.
fn jobs_of(site: &str) -> Vec<skyward_executor::slurm::SlurmJob> {
    Slurm {
        conf: Some(PathBuf::from(slurm_conf())),
        run_as: None,
        rest: None,
        accelerator: "H100".into(),
    }
    .jobs()
    .unwrap()
    .into_iter()
    .filter(|j| j.comment.starts_with(&format!("skyward:{site}:")))
    .collect()
}

#[test]
fn a_slurm_site_runs_gangs_cancels_and_survives_a_server_kill() {
    let dir = tempfile::tempdir().unwrap();
    let site = format!("hpc{}", std::process::id());
    std::fs::write(dir.path().join("server.yaml"), config(&site)).unwrap();
    let mut server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));

    // A 2-node gang, one H100 per node: one Slurm job on n1 and n2.
    let gang = submit(
        &rt,
        &c,
        serde_json::json!({
            "name": "gang",
            "accelerators": "H100:1",
            "nodes": 2,
            "run": "echo \"rank $SKYWARD_NODE_RANK on $(hostname) with GPU $CUDA_VISIBLE_DEVICES\"",
        }),
    );
    let v = wait_state(&rt, &c, gang, &["succeeded", "failed"], 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["site"], site.as_str());
    let logs = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{gang}/logs"),
        None,
        &[],
    );
    let text = String::from_utf8_lossy(&logs.body).to_string();
    assert!(
        text.contains("rank 0 on n1 with GPU") && text.contains("rank 1 on n2 with GPU"),
        "{text}"
    );
    let jobs = jobs_of(&site);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].state.as_str(), jobs[0].nodes.as_str()),
        ("COMPLETED", "n[1-2]")
    );

    // A failing run: its exit code comes back from Slurm.
    let failing = submit(
        &rt,
        &c,
        serde_json::json!({"name": "fails", "accelerators": "H100:1", "run": "exit 3"}),
    );
    let v = wait_state(&rt, &c, failing, &["failed", "succeeded"], 60);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{v}"
    );

    // Cancel reaches Slurm.
    let long = submit(
        &rt,
        &c,
        serde_json::json!({"name": "long", "accelerators": "H100:1", "run": "sleep 300"}),
    );
    wait_state(&rt, &c, long, &["running"], 60);
    let r = call(
        &rt,
        &c,
        "POST",
        &format!("/v1/workloads/{long}/cancel"),
        None,
        &[],
    );
    assert!(r.status < 300, "{}", r.error_text());
    wait_state(&rt, &c, long, &["cancelled"], 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !jobs_of(&site)
        .iter()
        .any(|j| j.comment.contains(&format!(":{long}:")) && j.state == "CANCELLED")
    {
        assert!(Instant::now() < deadline, "{:?}", jobs_of(&site));
        std::thread::sleep(Duration::from_millis(100));
    }

    // kill -9 of the server while a job runs: the next server adopts it
    // (no second Slurm job) and reports its end.
    let adopted = submit(
        &rt,
        &c,
        serde_json::json!({"name": "survivor", "accelerators": "H100:1", "run": "sleep 4; echo done"}),
    );
    wait_state(&rt, &c, adopted, &["running"], 60);
    server.kill9();
    std::thread::sleep(Duration::from_millis(500));
    server.spawn();
    let c = server.client(Some(&admin));
    let v = wait_state(&rt, &c, adopted, &["succeeded", "failed"], 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let runs = jobs_of(&site)
        .into_iter()
        .filter(|j| j.comment.contains(&format!(":{adopted}:")))
        .count();
    assert_eq!(runs, 1, "the job ran twice");
}

/// A Slurm site that speaks slurmrestd (`slurm_rest:`): the gang runs as
/// one job on both nodes and succeeds, though the site's slurm.conf does
/// not exist (so no Slurm command could have submitted it); its jobs run
/// as slurmrestd's user (nobody, the server's run_as here).
#[test]
fn a_slurm_site_speaks_slurmrestd() {
    let target = test_var("SKYWARD_TEST_SLURMRESTD");
    let dir = tempfile::tempdir().unwrap();
    let site = format!("rest{}", std::process::id());
    std::fs::write(
        dir.path().join("server.yaml"),
        format!(
            "sites:\n  - name: {site}\n    region: aws:us-east-1\n    accelerator: H100\n    accelerators: 4\n    executor: slurm\n    slurm_conf: /nonexistent/slurm.conf\n    slurm_rest: {target}\nscheduler:\n  cycle_ms: 20\n  lease_ms: 2000\n"
        ),
    )
    .unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let gang = submit(
        &rt,
        &c,
        serde_json::json!({
            "name": "gang",
            "accelerators": "H100:1",
            "nodes": 2,
            "run": "echo \"rank $SKYWARD_NODE_RANK on $(hostname) uid $(id -u)\"",
        }),
    );
    let v = wait_state(&rt, &c, gang, &["succeeded", "failed"], 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let logs = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{gang}/logs"),
        None,
        &[],
    );
    let text = String::from_utf8_lossy(&logs.body).to_string();
    assert!(
        text.contains("rank 0 on n1 uid 65534") && text.contains("rank 1 on n2 uid 65534"),
        "{text}"
    );
}

#[test]
fn a_slurm_site_is_checked_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        ("executor: pbs", "unknown executor 'pbs'"),
        (
            "executor: slurm\n    slurm_conf: relative/slurm.conf",
            "absolute path",
        ),
        (
            "slurm_conf: /etc/slurm/slurm.conf",
            "only for executor: slurm",
        ),
        (
            "executor: slurm\n    slurm_rest: ftp://head",
            "expected unix:",
        ),
        ("slurm_rest: unix:/run/s.sock", "only for executor: slurm"),
        (
            "executor: slurm\n    slurm_rest: unix:/run/s.sock\n    slurm_rest_version: v1",
            "v0.0.38 or later",
        ),
        (
            "executor: slurm\n    slurm_rest_version: v0.0.40",
            "give slurm_rest too",
        ),
    ];
    for (extra, want) in bad {
        let cfg = format!(
            "sites:\n  - name: x\n    region: aws:us-east-1\n    accelerator: H100\n    accelerators: 4\n    {extra}\n"
        );
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, cfg).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["server", "--config"])
            .arg(&path)
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.contains("sites[0]"),
            "{extra}: {err}"
        );
    }
}
