#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Variants per stack through the server (issue 17): a workload that runs
//! with CUDA on H100 or with the Neuron SDK on Trainium2 is placed only
//! on sites its variants cover, and what runs there is that variant's
//! command with that stack's device variable; an alternative with no
//! variant is a reason the workload waits.

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::{json, Value};

const CONFIG: &str = "\
sites:
  - name: gpu
    region: aws:us-east-1
    accelerator: H100
    accelerators: 2
    price_usd_per_accelerator_hour: 4
  - name: trn
    region: aws:us-east-2
    accelerator: Trainium2
    accelerators: 1
    price_usd_per_accelerator_hour: 1
scheduler:
  cycle_ms: 20
  lease_ms: 2000
";

fn log(rt: &tokio::runtime::Runtime, c: &skyward_server::client::Client, id: i64) -> String {
    let r = call(rt, c, "GET", &format!("/v1/workloads/{id}/logs"), None, &[]);
    String::from_utf8_lossy(&r.body).to_string()
}

#[test]
fn each_stack_runs_its_own_variant_with_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let variants = json!({
        "nvidia": {"run": "echo \"variant=$SKYWARD_VARIANT cuda=$CUDA_VISIBLE_DEVICES image=$SKYWARD_CONTAINER_IMAGE common=$COMMON\"", "image": "nvcr.io/nvidia/pytorch:24.05-py3"},
        "neuron": {"setup": "echo neuron-setup", "run": "echo \"variant=$SKYWARD_VARIANT neuron=$NEURON_RT_VISIBLE_CORES flags=$NEURON_CC_FLAGS common=$COMMON\"; sleep 2", "env": {"NEURON_CC_FLAGS": "--model-type transformer", "COMMON": "overridden"}}
    });
    // Cheapest first: Trainium2 ($1) runs the Neuron variant; with the
    // Trainium2 site full, the next goes to H100 with the CUDA one.
    let first = submit(
        &rt,
        &c,
        json!({"name": "a", "accelerators": ["H100:1", "Trainium2:1"], "env": {"COMMON": "top"}, "variants": variants}),
    );
    wait_for(&rt, &c, first, 60, |v| v["state"] == "running");
    let second = submit(
        &rt,
        &c,
        json!({"name": "b", "accelerators": ["H100:1", "Trainium2:1"], "env": {"COMMON": "top"}, "variants": variants}),
    );
    for id in [first, second] {
        wait_for(&rt, &c, id, 60, |v| v["state"] == "succeeded");
    }
    let a: Value = call(&rt, &c, "GET", &format!("/v1/workloads/{first}"), None, &[])
        .json()
        .unwrap();
    assert_eq!(a["site"], "trn", "{a}");
    let text = log(&rt, &c, first);
    assert!(
        text.contains("neuron-setup")
            && text.contains(
                "variant=neuron neuron=0 flags=--model-type transformer common=overridden"
            ),
        "{text}"
    );
    let b: Value = call(
        &rt,
        &c,
        "GET",
        &format!("/v1/workloads/{second}"),
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(b["site"], "gpu", "{b}");
    let text = log(&rt, &c, second);
    assert!(
        text.contains("variant=nvidia cuda=0 image=nvcr.io/nvidia/pytorch:24.05-py3 common=top"),
        "{text}"
    );
    assert!(!text.contains("neuron-setup"), "{text}");

    // A variant for Trainium only, asking for two Trainium2 (the site has
    // one): it waits; the H100 site is no place for it ("no variant"),
    // and the spec says which alternative has none.
    let waits = submit(
        &rt,
        &c,
        json!({"name": "w", "accelerators": ["H100:1", "Trainium2:2"], "variants": {"trainium": {"run": "echo never"}}}),
    );
    let v = wait_for(&rt, &c, waits, 30, |v| {
        v["state"] == "pending" && v["pending_reasons"].is_array()
    });
    let reasons = v["pending_reasons"].to_string();
    assert!(
        reasons.contains("no variant for the accelerator's stack"),
        "{v}"
    );
    assert_eq!(v["spec"]["no_variant"], json!(["H100"]), "{v}");
    // A teammate sees a variant's variables masked, as the workload's own.
    let reader = token(
        &rt,
        &c,
        json!({"name": "peer", "scope": "read", "team": "admin"}),
    );
    let seen: Value = call(
        &rt,
        &server.client(Some(&reader)),
        "GET",
        &format!("/v1/workloads/{first}"),
        None,
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(
        seen["spec"]["variants"]["neuron"]["env"]["NEURON_CC_FLAGS"], "***",
        "{seen}"
    );

    // Refused at submission, naming the field: a variant for no
    // alternative, an unknown stack.
    for (body, field) in [
        (
            json!({"name": "x", "accelerators": "H100:1", "variants": {"tpu": {"run": "x"}}}),
            "variants",
        ),
        (
            json!({"name": "x", "accelerators": "H100:1", "variants": {"cuda12": {"run": "x"}}}),
            "variants.cuda12",
        ),
    ] {
        let r = call(
            &rt,
            &c,
            "POST",
            "/v1/workloads",
            Some(&body.to_string()),
            &[],
        );
        assert_eq!(r.status, 422, "{}", r.error_text());
        assert!(
            r.error_text().contains(&format!("(field: {field})")),
            "{}",
            r.error_text()
        );
    }
}

/// The README's walkthrough, `examples/stacks/`, as a new user runs it:
/// its server config and job files through the binary. The CUDA/Neuron
/// job goes to Trainium2 first (cheaper and, by the datasheet, faster),
/// which reports 150 tokens/s; pinned once to H100, the class reports
/// 1000 there; the same job submitted again then goes to H100.
#[test]
fn the_stacks_walkthrough_moves_the_job_once_runs_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/stacks");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("server.yaml"), dir.path().join("server.yaml")).unwrap();
    let server = Server::start(dir.path(), free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    let submit_file = |name: &str| -> i64 {
        let out = std::process::Command::new(BIN)
            .args(["submit", "--output", "json", "--server", &server.url()])
            .arg(root.join(name))
            .env("SKYWARD_TOKEN", server.admin_token())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["id"].as_i64().unwrap_or_else(|| panic!("{v}"))
    };
    let first = submit_file("train.yaml");
    let v = wait_for(&rt, &c, first, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["site"], "trn2", "{v}");
    assert!(
        log(&rt, &c, first).contains(
            "Neuron on trn2: NEURON_RT_VISIBLE_CORES=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15, flags --model-type transformer"
        ),
        "{}",
        log(&rt, &c, first)
    );
    let second = submit_file("train-h100.yaml");
    let v = wait_for(&rt, &c, second, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["site"], "h100", "{v}");
    // Wait until both reports are kept (a run's report is stored just
    // after its end).
    let p = wait_until_value(|| {
        let p: Value = call(&rt, &c, "GET", "/v1/profiles", None, &[])
            .json()
            .unwrap();
        (p["items"][0]["reports"] == 2).then_some(p)
    });
    // By hand: each alternative's prior is the other's report scaled by
    // the datasheet (H100:8 = 8 × 989, Trainium2:16 = 16 × 667 TFLOPS),
    // sd 0.5; its own report sd 0.15.
    let ratio = (8.0 * 989.0) / (16.0 * 667.0);
    let post = |prior: f64, report: f64| {
        let precision = 1.0 / 0.25 + 1.0 / 0.0225;
        ((prior.ln() / 0.25 + report.ln() / 0.0225) / precision).exp()
    };
    let (h, t) = (post(150.0 * ratio, 1000.0), post(1000.0 / ratio, 150.0));
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
    assert!(
        (rate("H100:8") - h).abs() < 1e-6 && (rate("Trainium2:16") - t).abs() < 1e-6,
        "{p}"
    );
    // $32 an hour ÷ H100's rate against $24 ÷ Trainium2's: H100 is cheaper now.
    assert!(32.0 / h < 24.0 / t);
    let third = submit_file("train.yaml");
    let v = wait_for(&rt, &c, third, 60, |v| v["state"] == "succeeded");
    assert_eq!(v["site"], "h100", "{v}");
    assert!(log(&rt, &c, third)
        .contains("CUDA on h100: CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7, 100 steps"));
}

fn wait_until_value(mut f: impl FnMut() -> Option<Value>) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
