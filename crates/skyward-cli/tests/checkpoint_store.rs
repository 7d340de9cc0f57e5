#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Checkpoints across clouds through the binary, against real S3 and
//! Azure Blob protocol servers (moto, Azurite; scripts/objstore.sh): a
//! training-like run on the AWS site writes numbered checkpoints with
//! `skyward checkpoint put` to S3; the server records them and copies each
//! to Azure; an outage of AWS moves the work to the Azure site, which
//! resumes from the newest copy on its own side (S3 is reachable from AWS
//! only), and its own checkpoints are copied back.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};

fn config(dir: &std::path::Path) -> String {
    for (name, value) in [
        ("s3_id", "test".to_string()),
        ("s3_key", "test".to_string()),
        ("az_key", test_var("SKYWARD_TEST_AZURE_KEY")),
    ] {
        std::fs::write(dir.join(name), value).unwrap();
    }
    format!(
        "\
sites:
  - name: aws-a
    region: aws:us-east-1
    accelerator: H100
    accelerators: 2
    price_usd_per_accelerator_hour: 1
  - name: az-b
    region: azure:eastus
    accelerator: H100
    accelerators: 2
    price_usd_per_accelerator_hour: 5
scheduler:
  cycle_ms: 20
  lease_ms: 2000
  checkpoint_scan_ms: 200
secrets:
  s3_id: {{file: {d}/s3_id}}
  s3_key: {{file: {d}/s3_key}}
  az_key: {{file: {d}/az_key}}
object_stores:
  - uri: s3://skyward-test
    endpoint: {s3}
    region: us-east-1
    access_key_id_secret: s3_id
    secret_access_key_secret: s3_key
    reachable_from: [aws]
  - uri: az://skyward-test
    endpoint: {az}
    account: {acct}
    access_key_secret: az_key
    reachable_from: [azure]
",
        d = dir.display(),
        s3 = test_var("SKYWARD_TEST_S3_ENDPOINT"),
        az = test_var("SKYWARD_TEST_AZURE_ENDPOINT"),
        acct = test_var("SKYWARD_TEST_AZURE_ACCOUNT"),
    )
}

/// A training loop: resumes from the step it was handed, writes a
/// checkpoint every 0.3 s through the helper.
const TRAIN: &str = r#"set -e
step=${SKYWARD_CHECKPOINT_STEP:-0}
echo "resume step=$step store=$SKYWARD_CHECKPOINT_URI"
d=$(mktemp -d)
while [ "$step" -lt 3000 ]; do
  step=$((step + 1))
  echo "weights at step $step" > "$d/weights.txt"
  "$SKYWARD_BIN" checkpoint put --step "$step" "$d/weights.txt" 2>/dev/null
  sleep 0.3
done
"#;

fn steps_in(v: &Value, scheme: &str) -> Vec<i64> {
    v["checkpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["store"].as_str().is_some_and(|s| s.starts_with(scheme)))
        .filter_map(|c| c["step"].as_i64())
        .collect()
}

#[test]
fn work_moves_to_the_other_cloud_and_resumes_from_its_replicated_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), config(dir.path())).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let admin = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&admin));
    let tag = format!("e2e-{}-{}", std::process::id(), free_port());
    let s3 = format!("s3://skyward-test/{tag}");
    let az = format!("az://skyward-test/{tag}");

    // Stores the operator did not configure are refused at submit.
    for (uri, field) in [
        ("s3://other-bucket/x".to_string(), "checkpoint.uri"),
        ("file:///etc/skyward".to_string(), "checkpoint.uri"),
    ] {
        let r = call(
            &rt,
            &c,
            "POST",
            "/v1/workloads",
            Some(&json!({"name": "x", "accelerators": "H100:1", "run": "true", "checkpoint": {"uri": uri}}).to_string()),
            &[],
        );
        assert_eq!(r.status, 422, "{uri}: {}", r.error_text());
        assert!(r.error_text().contains(field), "{}", r.error_text());
    }

    // Through `skyward submit FILE` too: what the CLI sends (a checkpoint
    // store, a max_runtime) the server reads back (it was refused with
    // "unknown field max_runtime_ms").
    let file = dir.path().join("other.yaml");
    std::fs::write(
        &file,
        format!("name: other\naccelerators: H100:1\nproviders: [gcp]\nrun: 'true'\nmax_runtime: 90m\ncheckpoint: {{uri: '{s3}-cli', every: 30m, replicate_to: ['{az}-cli']}}\n"),
    )
    .unwrap();
    let out = cli(&server, &admin, &["submit", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let id = submit(
        &rt,
        &c,
        json!({
            "name": "train",
            "accelerators": "H100:1",
            "run": TRAIN,
            "checkpoint": {"uri": s3, "every": "1s", "replicate_to": [az]},
            "recovery": {"strategy": "any_provider"},
        }),
    );
    // On the cheap AWS site, its checkpoints recorded and copied to Azure.
    let v = wait_for(&rt, &c, id, 60, |v| {
        v["site"] == "aws-a" && steps_in(v, "az://").iter().any(|s| *s >= 3)
    });
    assert_eq!(
        v["attempts"][0]["resumed_from"],
        json!({"store": s3, "step": null})
    );
    let points = v["recovery_points"].as_array().unwrap();
    let point = |p: &str| points.iter().find(|x| x["provider"] == p).unwrap().clone();
    assert_eq!(point("aws")["store"], json!(s3));
    assert_eq!(point("azure")["store"], json!(az));
    let copied = v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["store"] == json!(az))
        .unwrap()
        .clone();
    assert_eq!(copied["copied_from"], json!(s3));
    assert_eq!(copied["files"], 1);

    // AWS goes away (a drill through the binary): the work moves to
    // Azure, which cannot reach S3.
    let before_move = steps_in(&v, "az://").into_iter().max().unwrap();
    let out = cli(
        &server,
        &admin,
        &[
            "drill",
            "--provider",
            "aws",
            "--duration",
            "60s",
            "--wait",
            "60s",
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = wait_for(&rt, &c, id, 60, |v| {
        v["state"] == "running" && v["site"] == "az-b"
    });
    // The drill's report gives the recovery point from the checkpoint
    // resumed from (as the status does below), not the whole run.
    let moved = &report["moved"][0];
    assert_eq!(moved["to"], "az-b", "{report}");
    assert_eq!(
        moved["resumed_from"], v["attempts"][1]["resumed_from"],
        "{report}"
    );
    assert_eq!(
        moved["redone_ms"], v["attempts"][0]["redone_ms"],
        "{report}"
    );
    assert!(
        moved["redone_ms"].as_u64().unwrap() < moved["ran_ms"].as_u64().unwrap(),
        "{report}"
    );
    assert_eq!(report["redone_ms_max"], moved["redone_ms"]);
    let second = &v["attempts"][1];
    assert_eq!(second["site"], "az-b");
    let resumed = second["resumed_from"]["step"].as_i64().unwrap();
    assert_eq!(second["resumed_from"]["store"], json!(az));
    assert!(
        resumed >= before_move,
        "resumed from {resumed}, {before_move} was on Azure before the move"
    );
    // The work redone is counted from that checkpoint, not the whole run:
    // at most a checkpoint interval (0.3 s) and the replication lag.
    let first = &v["attempts"][0];
    let (redone, ran) = (
        first["redone_ms"].as_i64().unwrap_or(-1),
        first["ran_ms"].as_i64().unwrap(),
    );
    assert!(
        (0..=ran).contains(&redone) && redone <= 2_000,
        "redone {redone} ms of {ran} ms: {first}"
    );

    // The run was handed exactly that step and store.
    let want = format!("resume step={resumed} store={az}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = cli(&server, &admin, &["logs", &id.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains(&want) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log lacks '{want}':\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Its new checkpoints land on Azure and are copied back to S3.
    let v = wait_for(&rt, &c, id, 60, |v| {
        v["checkpoints"].as_array().into_iter().flatten().any(|c| {
            c["store"] == json!(s3)
                && c["copied_from"] == json!(az)
                && c["step"].as_i64().unwrap_or(0) > resumed
        })
    });
    // The status people read says the same.
    let out = cli(&server, &admin, &["status", &id.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("recovery point per provider"), "{text}");
    assert!(text.contains(&format!("step {resumed} in {az}")), "{text}");
    let _ = v;
    // Stopped before the test ends: a run left behind would spin on.
    cancel_and_wait(&rt, &c, id);
}
