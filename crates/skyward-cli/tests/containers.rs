#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! Variants' images started for real (issue 17): a local site with a
//! container runtime (podman with runc, from `scripts/podman.sh`, and an
//! image built there from busybox) runs a variant that names an image in
//! that image, as the run's user, with its variables and its directory;
//! a cancel stops the container (not only the runtime's client), also
//! after a restart with the runtime gone from the configuration; a
//! workload without an image still runs on the host (and a workload with
//! one, on a site without a runtime, says so in its log).

mod common;

use common::server::*;
use common::{free_port, rt};
use serde_json::json;

/// Containers of `label` that the runtime still has (running or not).
fn containers(runtime: &str, label: &str) -> String {
    let out = std::process::Command::new(runtime)
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_variant_s_image_is_where_its_run_runs() {
    let runtime = test_var("SKYWARD_TEST_CONTAINER_RUNTIME");
    let image = test_var("SKYWARD_TEST_CONTAINER_IMAGE");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("server.yaml"),
        format!(
            "sites:\n  - name: boxed\n    region: aws:us-east-1\n    accelerator: H100\n    accelerators: 4\n    price_usd_per_accelerator_hour: 1\n    container_runtime: {runtime}\n    container_args: [--pull, never]\nscheduler:\n  cycle_ms: 20\n"
        ),
    )
    .unwrap();
    let mut server = Server::start(dir.path(), free_port(), None);
    let rt = rt();
    let c = server.client(Some(&server.admin_token()));
    // The host has /etc/debian_version; the busybox image has no /etc/debian_version.
    let probe = "if [ -e /etc/debian_version ]; then echo where=host; else echo where=container; fi; \
                 echo uid=$(id -u) cuda=$CUDA_VISIBLE_DEVICES rank=$SKYWARD_NODE_RANK greeting=$GREETING variant=$SKYWARD_VARIANT; \
                 echo kept > \"$SKYWARD_CHECKPOINT_DIR/step\"";
    let id = submit(
        &rt,
        &c,
        json!({"name": "boxed", "accelerators": "H100:2", "env": {"GREETING": "hello"},
               "variants": {"nvidia": {"run": probe, "image": image}}}),
    );
    let v = wait_for(&rt, &c, id, 60, |v| {
        matches!(v["state"].as_str(), Some("succeeded" | "failed"))
    });
    let log = String::from_utf8_lossy(
        &call(
            &rt,
            &c,
            "GET",
            &format!("/v1/workloads/{id}/logs"),
            None,
            &[],
        )
        .body,
    )
    .to_string();
    assert_eq!(v["state"], "succeeded", "{v}\n{log}");
    // As root the server runs workloads as nobody (65534): in the
    // container too.
    let uid = if is_root() { "65534" } else { "" };
    assert!(
        log.contains("where=container")
            && log.contains("cuda=0,1 rank=0 greeting=hello variant=nvidia")
            && (uid.is_empty() || log.contains(&format!("uid={uid}"))),
        "{log}"
    );
    // What it wrote in its checkpoint directory is on the host.
    let step = server
        .work
        .join(id.to_string())
        .join("job/checkpoints/step");
    assert_eq!(std::fs::read_to_string(&step).unwrap(), "kept\n");
    // A long run in its container: a cancel stops the container itself.
    let long = submit(
        &rt,
        &c,
        json!({"name": "long", "accelerators": "H100:1",
               "variants": {"nvidia": {"run": "echo started; sleep 600", "image": image}}}),
    );
    wait_for(&rt, &c, long, 60, |v| v["state"] == "running");
    let label = format!("skyward.run=boxed.{long}.1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while containers(&runtime, &label).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no container for {label}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The server is killed and comes back with the runtime gone from the
    // site's configuration: the run it adopts is still stopped through the
    // runtime it was started with.
    server.kill9();
    let config = std::fs::read_to_string(dir.path().join("server.yaml")).unwrap();
    let without: String = config
        .lines()
        .filter(|l| !l.contains("container_"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("server.yaml"), without).unwrap();
    server.spawn();
    let c = server.client(Some(&server.admin_token()));
    cancel_and_wait(&rt, &c, long);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !containers(&runtime, &label).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled run's container still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No image: on the host, as before.
    let host = submit(
        &rt,
        &c,
        json!({"name": "host", "accelerators": "H100:1", "run": "if [ -e /etc/debian_version ]; then echo where=host; fi"}),
    );
    wait_for(&rt, &c, host, 60, |v| v["state"] == "succeeded");
    let log = String::from_utf8_lossy(
        &call(
            &rt,
            &c,
            "GET",
            &format!("/v1/workloads/{host}/logs"),
            None,
            &[],
        )
        .body,
    )
    .to_string();
    assert!(log.contains("where=host"), "{log}");
    // An image on a site that no longer has a runtime: on the host, and
    // the log says the image was not started.
    let unboxed = submit(
        &rt,
        &c,
        json!({"name": "unboxed", "accelerators": "H100:1",
               "variants": {"nvidia": {"run": "if [ -e /etc/debian_version ]; then echo where=host; fi", "image": image}}}),
    );
    wait_for(&rt, &c, unboxed, 60, |v| v["state"] == "succeeded");
    let log = String::from_utf8_lossy(
        &call(
            &rt,
            &c,
            "GET",
            &format!("/v1/workloads/{unboxed}/logs"),
            None,
            &[],
        )
        .body,
    )
    .to_string();
    assert!(
        log.contains("where=host")
            && log.contains(&format!(
                "image {image} not started (the site has no container_runtime)"
            )),
        "{log}"
    );
}

/// Whether the tests run as root (the server then runs workloads as
/// nobody).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
