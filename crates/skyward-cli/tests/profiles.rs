#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Speeds learned from runs (issue 17): runs report their throughput
//! with `skyward metric`; the server learns each class's speed per
//! accelerator and the next placement uses it.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};

/// H100 at $4 an accelerator-hour, A100 at $2. By the datasheet (dense
/// BF16: H100 989, A100 312 TFLOPS: accelerators.csv) a job runs 3.17×
/// longer on A100,
/// so it costs 2 × 3.17 = $6.34 there against $4 on H100.
const CONFIG: &str = "\
sites:
  - name: gpu
    region: aws:us-east-1
    accelerator: H100
    accelerators: 1
    price_usd_per_accelerator_hour: 4
  - name: old
    region: aws:us-west-2
    accelerator: A100
    accelerators: 1
    price_usd_per_accelerator_hour: 2
scheduler:
  cycle_ms: 20
  lease_ms: 2000
";

#[test]
fn a_job_as_fast_on_a100_as_on_h100_moves_to_a100_once_its_runs_say_so() {
    learned(None);
}

#[test]
fn speeds_are_learned_on_postgres_too() {
    learned(Some(&pg_database("profiles")));
}

fn learned(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir.path(), free_port(), database_url);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let report = format!("{BIN} metric 100 --unit tokens/s");
    let job = |accelerators: Value| json!({"name": "bench", "accelerators": accelerators, "hours": 1, "run": report});
    // 1. Nothing learned: the datasheet ratio puts it on H100.
    let first = submit(&rt, &c, job(json!(["H100:1", "A100:1"])));
    let v = wait_for(&rt, &c, first, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["site"], "gpu", "{v}");
    // Its placement note: the runner-up priced by the datasheet ratio,
    // 2 × 989 / 312 = $6.34.
    let note = |v: &Value| -> String {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["state"] == "dispatched")
            .unwrap()["note"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        note(&v).contains("site old (aws:us-west-2 A100) would cost the fleet $6.34"),
        "{v}"
    );
    // 2. The same job on A100 reports the same 100 tokens/s: it runs in
    // a third of the time the datasheet predicted there.
    let second = submit(&rt, &c, job(json!(["A100:1"])));
    wait_for(&rt, &c, second, 60, |v| {
        v["state"] == "succeeded"
            && v["speeds"]["basis"]
                .as_str()
                .is_some_and(|b| b.starts_with("learned from 2"))
    });
    // The profile, against the normal-normal update by hand: one report
    // each; each alternative's prior is the other's report scaled by the
    // datasheet (sd 0.5), its report has sd 0.15.
    let p = call(&rt, &c, "GET", "/v1/profiles", None, &[])
        .json()
        .unwrap();
    let item = &p["items"][0];
    assert_eq!(
        (item["class"].as_str(), item["unit"].as_str()),
        (Some("admin/bench"), Some("tokens/s")),
        "{p}"
    );
    let ratio: f64 = 989.0 / 312.0;
    let post = |prior: f64| {
        let precision = 1.0 / 0.25 + 1.0 / 0.0225;
        ((prior.ln() / 0.25 + 100f64.ln() / 0.0225) / precision).exp()
    };
    let est = |alt: &str| -> f64 {
        item["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["alternative"] == alt)
            .unwrap()["rate"]
            .as_f64()
            .unwrap()
    };
    assert!((est("H100:1") - post(100.0 * ratio)).abs() < 1e-6, "{p}");
    assert!((est("A100:1") - post(100.0 / ratio)).abs() < 1e-6, "{p}");
    // 3. Now A100 costs 2 × (H100 rate ÷ A100 rate) = 2 × 1.2 < $4.
    assert!(2.0 * est("H100:1") / est("A100:1") < 4.0);
    let third = submit(&rt, &c, job(json!(["H100:1", "A100:1"])));
    // (Its own report is stored just after its end.)
    let v = wait_for(&rt, &c, third, 60, |v| {
        v["state"] == "succeeded"
            && v["speeds"]["basis"]
                .as_str()
                .is_some_and(|b| b.starts_with("learned from 3"))
    });
    assert_eq!(v["site"], "old", "{v}");
    // Its dispatch keeps the speeds it was placed with (the class's
    // estimates after two reports, worked above), whatever runs report
    // later.
    let used = note(&v);
    assert!(
        used.contains(&format!("speeds used: A100:1 {:.1}", post(100.0 / ratio)))
            && used.contains(&format!("H100:1 {:.0}", post(100.0 * ratio))),
        "{used}"
    );
    assert!(
        v["speeds"]["basis"]
            .as_str()
            .unwrap()
            .starts_with("learned from 3"),
        "{v}"
    );
    // `skyward status ID` says which speeds and where from.
    let out = std::process::Command::new(BIN)
        .args(["status", &third.to_string(), "--server", &server.url()])
        .env("SKYWARD_TOKEN", server.admin_token())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("speeds       learned from 3")
            && text.contains("A100:1: ")
            && text.contains("measured, 2 report(s)"),
        "{text}"
    );
    // `plan` takes the same speeds from `skyward profiles --output json`:
    // a fleet file's workload of that class, on GCP us-central1 where the
    // catalog has both (a3-highgpu-1g, a2-highgpu-1g).
    let out = std::process::Command::new(BIN)
        .args(["profiles", "--output", "json", "--server", &server.url()])
        .env("SKYWARD_TOKEN", server.admin_token())
        .output()
        .unwrap();
    assert!(out.status.success());
    let profiles_file = dir.path().join("profiles.json");
    std::fs::write(&profiles_file, &out.stdout).unwrap();
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rate = |alt: &str| -> f64 {
        p["items"][0]["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["alternative"] == alt)
            .unwrap()["rate"]
            .as_f64()
            .unwrap()
    };
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../skyward-catalog/data/offerings.csv"
    ))
    .unwrap();
    let price = |sku: &str| -> f64 {
        csv.lines()
            .find(|l| l.starts_with(&format!("gcp,us-central1,{sku},")))
            .unwrap()
            .split(',')
            .nth(7)
            .unwrap()
            .parse()
            .unwrap()
    };
    std::fs::write(
        dir.path().join("fleet.yaml"),
        "workloads:\n  - name: bench\n    class: admin/bench\n    accelerators: [H100:1, A100:1]\n    hours: 10\n    regions: [gcp:us-central1]\n",
    )
    .unwrap();
    let plan = |profiles: bool| -> Value {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("plan").arg(dir.path().join("fleet.yaml"));
        cmd.args(["--output", "json"]);
        if profiles {
            cmd.arg("--profiles").arg(&profiles_file);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["placements"][0].clone()
    };
    // By the datasheet: A100 takes 10 × 989/312 h, dearer than 10 h of H100.
    let (h100, a100) = (price("a3-highgpu-1g"), price("a2-highgpu-1g"));
    assert!(10.0 * h100 < 10.0 * ratio * a100);
    let before = plan(false);
    assert_eq!(before["accelerator"], "H100:1", "{before}");
    // By the runs: A100 takes 10 × (H100 rate ÷ A100 rate) h, cheaper.
    let learned_hours = 10.0 * rate("H100:1") / rate("A100:1");
    assert!(learned_hours * a100 < 10.0 * h100);
    let after = plan(true);
    assert_eq!(after["accelerator"], "A100:1", "{after}");
    assert!(
        (after["hours"].as_f64().unwrap() - learned_hours).abs() < 1e-6,
        "{after} vs {learned_hours}"
    );
    // `explain` says where each speed came from.
    let out = std::process::Command::new(BIN)
        .arg("explain")
        .arg(dir.path().join("fleet.yaml"))
        .arg("bench")
        .arg("--profiles")
        .arg(&profiles_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("measured: 1 run report(s) of admin/bench")
            && text.contains("measured: 2 run report(s) of admin/bench"),
        "{text}"
    );
    // The CLI's table, and a read token of another team sees nothing.
    let out = std::process::Command::new(BIN)
        .args(["profiles", "--server", &server.url()])
        .env("SKYWARD_TOKEN", server.admin_token())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("admin/bench") && text.contains("A100:1") && text.contains("measured"),
        "{text}"
    );
    let other = token(
        &rt,
        &c,
        json!({"name": "o", "scope": "read", "team": "other"}),
    );
    let p = call(
        &rt,
        &server.client(Some(&other)),
        "GET",
        "/v1/profiles",
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(p["items"], json!([]), "{p}");
    // `skyward metric` refuses what is not a rate.
    for bad in ["0", "-1", "fast", "NaN"] {
        let out = std::process::Command::new(BIN)
            .args(["metric", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
    }
}
