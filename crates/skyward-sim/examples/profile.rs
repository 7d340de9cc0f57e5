//! Runs one scenario file under one policy with nothing else around it, for
//! profiling the simulator and the core (`perf record` on this binary
//! builds far faster than on the whole CLI):
//!
//! ```text
//! cargo run --release -p skyward-sim --example profile -- SCENARIO.yaml skyward
//! ```
//!
//! With `SKYWARD_PROFILE_JSON=FILE` it also writes the policy's report as
//! JSON, to check that a change to the core or the simulator leaves what a
//! run says byte for byte the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// An edge program: it measures its own wall time.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(policy)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: profile SCENARIO.yaml POLICY [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(3).map_or(1, |s| s.parse().expect("seed"));
    let text = std::fs::read_to_string(path).expect("read scenario");
    let dir = std::path::Path::new(path)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let sc = skyward_spec::scenario::parse_with(&text, path, &mut |f: &str| {
        let file = std::fs::File::open(dir.join(f)).map_err(|e| e.to_string())?;
        Ok(Box::new(std::io::BufReader::new(file)) as Box<dyn std::io::BufRead>)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let policy = skyward_sim::Policy::parse(policy).expect("policy");
    let t = Instant::now();
    let mut last = u64::MAX;
    let r = skyward_sim::run(&sc, &policy, seed, &mut |p| {
        let pct = p.now_ms * 100 / p.horizon_ms.max(1);
        if pct / 5 != last {
            last = pct / 5;
            eprintln!(
                "{pct:>3}%  {:>6.1} s  {} workloads  {} pending  {} events",
                t.elapsed().as_secs_f64(),
                p.workloads,
                p.pending,
                p.events
            );
        }
    });
    let s = t.elapsed().as_secs_f64();
    if let Ok(out) = std::env::var("SKYWARD_PROFILE_JSON") {
        let json = serde_json::to_string_pretty(&r).expect("report as JSON");
        std::fs::write(&out, json).expect("write the report");
    }
    println!(
        "{}: {:.2} s, {} events ({:.0}/s)",
        r.policy,
        s,
        r.events,
        r.events as f64 / s
    );
}
