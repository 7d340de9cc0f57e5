#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The server side is timed in real seconds.
#![allow(clippy::disallowed_methods)]
//! The simulator says what the server would do: the same stream of work
//! through `skyward simulate` (the core on a simulated clock) and through
//! a real `skyward server` with local sites (the core on the wall clock,
//! real processes) lands on the same sites.
//!
//! The stream is small and fast: hours of a real lab compressed into
//! seconds, a task every 2 s running 3 to 7 s, on three sites of 2, 2 and
//! 4 accelerators. Arrivals fall on even seconds and (in the simulation)
//! ends on odd ones; a real run is made to end 0.4 s before its walltime,
//! so no two events the placements depend on are closer than about half
//! a second on either clock, and the server's own delays (process start,
//! HTTP, a cycle at most 5 ms after an event) cannot reorder them.

mod common;
use common::server::{call, state_of, Server};
use common::{free_port, rt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// (arrival s, accelerators, duration s), and where each must go, worked
/// by hand (cheapest site with room; a gang waits for the site that fits
/// it whole):
///   A  0 s  2 × 7 s  cheap                 (cheap full until 7)
///   B  2 s  1 × 3 s  mid                   (mid 1/2 until 5)
///   C  4 s  2 × 5 s  dear: cheap full, mid has 1 free
///   D  6 s  1 × 5 s  mid                   (B ended at 5)
///   E  8 s  2 × 5 s  cheap                 (A ended at 7)
///   F 10 s  4 × 5 s  dear: the only site of 4, free since C ended at 9
///   G 12 s  2 × 5 s  mid                   (D ended at 11; cheap busy)
///   H 14 s  4 × 5 s  dear, at 15 s when F ends (waits a second)
///   I 16 s  1 × 3 s  cheap                 (E ended at 13)
///   J 18 s  2 × 3 s  mid: cheap has 1 free (I), G ended at 17
const TASKS: [(u64, u32, u64, &str); 10] = [
    (0, 2, 7, "cheap"),
    (2, 1, 3, "mid"),
    (4, 2, 5, "dear"),
    (6, 1, 5, "mid"),
    (8, 2, 5, "cheap"),
    (10, 4, 5, "dear"),
    (12, 2, 5, "mid"),
    (14, 4, 5, "dear"),
    (16, 1, 3, "cheap"),
    (18, 2, 3, "mid"),
];

const SITES: [(&str, &str, &str, u32, f64); 3] = [
    ("cheap", "aws", "us-east-1", 2, 2.0),
    ("mid", "azure", "eastus", 2, 3.0),
    ("dear", "gcp", "us-central1", 4, 5.0),
];

/// The stream as the Alibaba GPU trace's format, for the simulator.
fn trace() -> String {
    let mut t = String::from("name,num_gpu,creation_time,scheduled_time,deletion_time\n");
    for (i, (at, n, d, _)) in TASKS.iter().enumerate() {
        t.push_str(&format!("task-{i},{n},{at},{at},{}\n", at + d));
    }
    t
}

fn scenario() -> String {
    let mut s = String::from(
        "name: sim-vs-server
start: 2026-01-01
years: 1
policies: [skyward]
# As the server: a cycle at most 5 ms after an event; walltimes are the work.
options: {cycle_min_gap_s: 0.005, walltime_step_pct: 0}
sites:
",
    );
    for (name, p, r, n, price) in SITES {
        s.push_str(&format!(
            "  - {{name: {name}, provider: {p}, region: {r}, accelerator: H100, accelerators: {n}, price_usd_per_accelerator_hour: {price}}}\n"
        ));
    }
    s.push_str(
        "demand:
  - name: tasks
    kind: batch
    trace: {file: tasks.csv, format: alibaba-openb}
    accelerators: H100:1
    until: 2026-01-02
",
    );
    s
}

fn server_config() -> String {
    let mut s = String::from("sites:\n");
    for (name, p, r, n, price) in SITES {
        s.push_str(&format!(
            "  - name: {name}\n    region: {p}:{r}\n    accelerator: H100\n    accelerators: {n}\n    price_usd_per_accelerator_hour: {price}\n"
        ));
    }
    s
}

#[test]
fn the_simulator_and_the_server_place_the_same_stream_on_the_same_sites() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator: its dispatches through `--placements`.
    std::fs::write(dir.path().join("tasks.csv"), trace()).unwrap();
    let sc = dir.path().join("scenario.yaml");
    std::fs::write(&sc, scenario()).unwrap();
    let placements = dir.path().join("placements.csv");
    common::ok(
        assert_cmd::Command::cargo_bin("skyward")
            .unwrap()
            .arg("simulate")
            .arg(&sc)
            .args(["--quiet", "--placements"])
            .arg(&placements),
    );
    let text = std::fs::read_to_string(&placements).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("workload,stream,site,attempt,at_s"));
    // The first pass over the trace (it replays hourly; later passes
    // start after this one is long done).
    let sim: Vec<(String, f64)> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| c[0].parse::<usize>().unwrap() <= TASKS.len())
        .map(|c| {
            assert_eq!(c[3], "1", "one attempt each: {c:?}");
            (c[2].to_string(), c[4].parse().unwrap())
        })
        .collect();
    let by_hand: Vec<&str> = TASKS.iter().map(|t| t.3).collect();
    let sim_sites: Vec<&str> = sim.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        sim_sites, by_hand,
        "the simulator against the hand-worked stream"
    );
    // H waited for F's end.
    assert_eq!(sim[7].1, 15.0, "{sim:?}");

    // The server: the same sites, local executors, real processes.
    let sdir = tempfile::tempdir().unwrap();
    std::fs::write(sdir.path().join("server.yaml"), server_config()).unwrap();
    let server = Server::start(sdir.path(), free_port(), None);
    let token = server.admin_token();
    let rt = rt();
    let c = server.client(Some(&token));
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for (i, (at, n, d, _)) in TASKS.iter().enumerate() {
        let due = t0 + Duration::from_secs(*at);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let body = json!({
            "name": format!("task-{i}"),
            "accelerators": format!("H100:{n}"),
            // The walltime is the work; the process ends a little before.
            "hours": *d as f64 / 3600.0,
            "run": format!("sleep {:.1}", *d as f64 - 0.4),
        });
        ids.push(common::server::submit(&rt, &c, body));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.iter().any(|id| state_of(&rt, &c, *id) != "succeeded") {
        assert!(
            Instant::now() < deadline,
            "not all succeeded: {:?}\n{}",
            ids.iter()
                .map(|id| state_of(&rt, &c, *id))
                .collect::<Vec<_>>(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut real = Vec::new();
    for id in &ids {
        let w: Value = call(&rt, &c, "GET", &format!("/v1/workloads/{id}"), None, &[])
            .json()
            .unwrap();
        let dispatched = w["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "dispatched")
            .count();
        assert_eq!(dispatched, 1, "one attempt each: {w}");
        real.push(w["site"].as_str().unwrap().to_string());
    }
    assert_eq!(real, sim_sites, "the server against the simulator");
}
