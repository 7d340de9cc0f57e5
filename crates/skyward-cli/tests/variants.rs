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
