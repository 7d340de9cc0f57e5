#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! `skyward drill` through the binary: a site taken out on purpose, its
//! work moved to the other provider (within every constraint), the time to
//! resume measured, the site back when the drill ends.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const CONFIG: &str = "\
sites:
  - name: aws-a
    region: aws:us-east-1
    accelerator: H100
    accelerators: 4
    price_usd_per_accelerator_hour: 1
  - name: gcp-b
    region: gcp:us-central1
    accelerator: H100
    accelerators: 4
    price_usd_per_accelerator_hour: 5
scheduler:
  cycle_ms: 20
  lease_ms: 2000
";

#[test]
fn a_drill_moves_the_work_and_the_site_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    // Two runs on the cheap site; one more that may only run on AWS.
    let a = submit(
        &rt,
        &c,
        json!({"name": "a", "accelerators": "H100:1", "run": "sleep 600"}),
    );
    let b = submit(
        &rt,
        &c,
        json!({"name": "b", "accelerators": "H100:1", "run": "sleep 600"}),
    );
    let pinned = submit(
        &rt,
        &c,
        json!({"name": "aws-only", "accelerators": "H100:1", "providers": ["aws"], "run": "sleep 600"}),
    );
    for id in [a, b, pinned] {
        wait_for(&rt, &c, id, 30, |v| {
            v["state"] == "running" && v["site"] == "aws-a"
        });
    }
    std::thread::sleep(Duration::from_millis(300));

    let out = Command::new(BIN)
        .args([
            "drill",
            "--site",
            "aws-a",
            "--duration",
            "4s",
            "--wait",
            "3s",
            "-o",
            "json",
        ])
        .env("SKYWARD_SERVER", server.url())
        .env("SKYWARD_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sites"], json!(["aws-a"]));
    let moved = r["moved"].as_array().unwrap();
    assert_eq!(moved.len(), 3, "{r}");
    for m in moved {
        assert_eq!(m["from"], "aws-a");
        assert!(m["ran_ms"].as_u64().unwrap() >= 300, "{m}");
        // No checkpoint store: whatever ran is redone.
        assert_eq!(m["resumed_from"], Value::Null, "{m}");
        if m["id"] == pinned {
            // Nothing else is allowed: it waits for the site, and says why.
            assert_eq!(m["to"], Value::Null, "{m}");
            assert_eq!(m["state"], "pending", "{m}");
            assert_eq!(
                m["waiting_for"], "provider not allowed (1 site), site down (1 site)",
                "{m}"
            );
        } else {
            assert_eq!(m["to"], "gcp-b", "{m}");
            let t = m["recovery_ms"].as_u64().unwrap();
            assert!(t < 2_000, "took {t} ms");
            assert_eq!(m["redone_ms"], m["ran_ms"], "{m}");
        }
    }
    assert_eq!(r["resumed"], 2);
    // The history says why the run moved.
    let v = wait_for(&rt, &c, a, 30, |_| true);
    let notes: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str().map(String::from))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n
                == "moved by an outage drill of aws-a; requeued, it resumes from its checkpoint"),
        "{notes:?}"
    );
    // The drill ends: the site takes work again (the pinned one first).
    wait_for(&rt, &c, pinned, 30, |v| {
        v["state"] == "running" && v["site"] == "aws-a"
    });

    // Who may drill, and what.
    let reader = {
        let r = call(
            &rt,
            &c,
            "POST",
            "/v1/tokens",
            Some(r#"{"name":"reader","scope":"read"}"#),
            &[],
        );
        server.client(Some(r.json().unwrap()["token"].as_str().unwrap()))
    };
    let post = |cl: &skyward_server::client::Client, body: Value| {
        call(&rt, cl, "POST", "/v1/drills", Some(&body.to_string()), &[])
    };
    assert_eq!(post(&reader, json!({"site": "aws-a"})).status, 403);
    for bad in [
        json!({"site": "nowhere"}),
        json!({"provider": "oracle"}),
        json!({"site": "aws-a", "provider": "aws"}),
        json!({"site": "aws-a", "duration": "forever"}),
        json!({"site": "aws-a", "duration": "30d"}),
    ] {
        let r = post(&c, bad.clone());
        assert_eq!(r.status, 422, "{bad}: {}", r.error_text());
    }
    assert_eq!(post(&c, json!({"site": "aws-a", "colour": 1})).status, 400);
    // Runs outlive a server (for the next one to adopt): stop them.
    for id in [a, b, pinned] {
        call(
            &rt,
            &c,
            "POST",
            &format!("/v1/workloads/{id}/cancel"),
            None,
            &[],
        );
        wait_for(&rt, &c, id, 30, |v| v["state"] == "cancelled");
    }
}
