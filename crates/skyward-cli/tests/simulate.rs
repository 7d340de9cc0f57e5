#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `skyward simulate` through the real binary: the comparison, JSON for
//! scripts, byte-identical reruns, and hostile scenario files refused
//! with the file, line and field.

mod common;
use assert_cmd::Command;
use common::ok;
use serde_json::Value;

const SCENARIO: &str = "name: two-clouds
start: 2026-01-01
years: 1
policies: [skyward, cheapest-per-task]
options: {cycle_min_gap_s: 10}
sites:
  - {name: aws-h100, provider: aws, region: us-east-1, accelerator: H100, accelerators: 128, price_usd_per_accelerator_hour: 6.88}
  - {name: azure-h100, provider: azure, region: eastus, accelerator: H100, accelerators: 128, price_usd_per_accelerator_hour: 12.29}
demand:
  - {name: train, kind: train, arrivals_per_hour: 0.2, accelerators: H100:8, hours: {dist: exponential, mean: 8}, checkpoint_every_hours: 1}
faults:
  - {region: aws:us-east-1, at: 2026-06-01, hours: 24}
contracts:
  - {name: macc, kind: spend, provider: azure, start: 2026-01-01, term_years: 1, commit_usd: 500000, discount_pct: 20}
";

fn skyward() -> Command {
    Command::cargo_bin("skyward").unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn simulate_compares_policies_in_tables_and_json_and_reruns_identically() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "s.yaml", SCENARIO);
    let table = ok(skyward().args(["simulate", &file]));
    let text = String::from_utf8_lossy(&table.stdout);
    for want in [
        "policy",
        "skyward",
        "cheapest-per-task",
        "macc",
        "train",
        "eff. discount",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    // Progress went to stderr, not into the table.
    assert!(String::from_utf8_lossy(&table.stderr).contains("100.0%"));
    let run = |seed: &str| {
        let out = skyward()
            .args(["simulate", &file, "--seed", seed, "--quiet", "-o", "json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stderr.is_empty());
        out.stdout
    };
    let a = run("5");
    assert_eq!(a, run("5"), "same seed, same bytes");
    let v: Value = serde_json::from_slice(&a).unwrap();
    let policies = v["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0]["policy"], "skyward");
    assert!(policies[0]["total"]["submitted"].as_u64().unwrap() > 1000);
    assert_eq!(policies[0]["total"]["outages"], 1);
    // One policy on the command line replaces the scenario's.
    let out = skyward()
        .args([
            "simulate",
            &file,
            "--policy",
            "single-cloud:azure",
            "--quiet",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policies"].as_array().unwrap().len(), 1);
    assert_eq!(v["policies"][0]["policy"], "single-cloud:azure");
    assert!(
        v["policies"][0]["total"]["accelerator_hours"]["H100"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // A sweep: one row per point and policy, JSON with the settings.
    let out = ok(skyward().args([
        "simulate",
        &file,
        "--sweep",
        "commit=50,200",
        "--policy",
        "skyward",
        "--quiet",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("commit") && text.contains("200"), "{text}");
    let out = skyward()
        .args([
            "simulate",
            &file,
            "--sweep",
            "commit=50,200",
            "--policy",
            "skyward",
            "--quiet",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(
        points[1]["settings"][0],
        serde_json::json!(["commit", 200.0])
    );
    for bad in ["speed=1", "commit=", "demand=0", "growth=2000"] {
        let out = skyward()
            .args(["simulate", &file, "--sweep", bad, "--quiet"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--sweep"),
            "{bad}"
        );
    }
}

#[test]
fn bad_scenarios_are_refused_naming_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            SCENARIO.replace(
                "hours: {dist: exponential, mean: 8}",
                "hours: {dist: exponential, mean: 8}, nodez: 2",
            ),
            "nodez",
        ),
        (
            SCENARIO.replace(
                "accelerator: H100, accelerators: 128, price_usd_per_accelerator_hour: 12.29",
                "accelerator: H1000, accelerators: 128, price_usd_per_accelerator_hour: 12.29",
            ),
            "sites[1].accelerator",
        ),
        (SCENARIO.replace("years: 1", "years: 0"), "years"),
        (
            SCENARIO.replace("at: 2026-06-01", "at: 2031-06-01"),
            "faults[0].at",
        ),
        (
            SCENARIO.replace("region: aws:us-east-1", "region: gcp:us-central1"),
            "faults[0].region",
        ),
        (
            SCENARIO.replace(
                "policies: [skyward, cheapest-per-task]",
                "policies: [cheapest]",
            ),
            "policies[0]",
        ),
        (SCENARIO.replace("mean: 8", "mean: -8"), "demand[0].hours"),
        (
            SCENARIO.replace("arrivals_per_hour: 0.2", "arrivals_per_hour: .nan"),
            "demand[0].arrivals_per_hour",
        ),
        (
            SCENARIO.replace("kind: spend", "kind: hourly"),
            "contracts[0]",
        ),
        // Ignored silently before: growth on a regular stream, an empty
        // arrival window.
        (
            SCENARIO.replace(
                "arrivals_per_hour: 0.2",
                "every_hours: 5, growth_pct_per_year: 30",
            ),
            "demand[0].growth_pct_per_year",
        ),
        (
            SCENARIO.replace(
                "arrivals_per_hour: 0.2",
                "arrivals_per_hour: 0.2, from: 2026-06-01, until: 2026-03-01",
            ),
            "demand[0].until",
        ),
        // Millions of outages expected: refused before they are drawn.
        (
            SCENARIO.replace(
                "  - {region: aws:us-east-1, at: 2026-06-01, hours: 24}",
                &"  - {provider: aws, per_year: 10000, mean_hours: 1}\n".repeat(200),
            ),
            "faults",
        ),
        ("{{{".to_string(), "s.yaml"),
    ];
    for (text, field) in cases {
        let file = write(&dir, "s.yaml", &text);
        let out = skyward()
            .args(["simulate", &file, "--quiet"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {err}");
        assert!(err.contains("s.yaml"), "{field}: {err}");
        assert!(err.contains(field), "{field}: {err}");
        assert!(out.stdout.is_empty());
    }
    let file = write(&dir, "s.yaml", SCENARIO);
    let out = skyward()
        .args(["simulate", &file, "--policy", "fastest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
    let out = skyward()
        .args([
            "simulate",
            &dir.path().join("missing.yaml").display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Streams replaying the two published trace formats, worked by hand.
///
/// Alibaba `openb` rows: a 1-GPU task of 600 s created at 0, a 2-GPU task
/// of 600 s created at 600 s (scheduled at 660 s), a CPU-only task and a
/// task never scheduled (both dropped). The trace spans an hour (a pass
/// never starts sooner), so with `scale: 2` each hour brings 4
/// workloads and 2 × (1/6 × 1 + 1/6 × 2) = 1 H100-hour.
///
/// Azure LLM requests: 15,000 tokens in the first 5-minute window, 6,000
/// in the second; a replica serves 10 tokens/s, 3,000 a window, so the
/// windows ask for 5 and 2 replicas of one A100 for 5 minutes. The two
/// windows replay back to back, 6 times an hour: 42 workloads and
/// 6 × 7 × 5/60 = 3.5 A100-hours an hour.
///
/// Arrivals run for January (744 hours): 744 × 4 + 744 × 42 = 34,224
/// workloads, 744 H100-hours ($2: $1,488) and 2,604 A100-hours ($1:
/// $2,604).
#[test]
fn traces_replay_as_worked_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "openb.csv",
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,1000,1024,1,1000,,LS,Succeeded,0,600,0
p1,1000,1024,2,1000,,LS,Succeeded,600,1260,660
p2,1000,1024,0,0,,LS,Succeeded,1200,1800,1200
p3,1000,1024,1,1000,,BE,Pending,1500,2000,
",
    );
    write(
        &dir,
        "llm.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:00:00.0000000,10000,2000
2023-11-16 18:04:59.9990000,2000,1000
2023-11-16 18:05:00.0000000,5000,1000
",
    );
    let scenario = "name: traces
start: 2026-01-01
years: 1
policies: [cheapest-per-task]
options: {cycle_min_gap_s: 10}
sites:
  - {name: h100, provider: aws, region: us-east-1, accelerator: H100, accelerators: 16, price_usd_per_accelerator_hour: 2}
  - {name: a100, provider: aws, region: us-west-2, accelerator: A100, accelerators: 16, price_usd_per_accelerator_hour: 1}
demand:
  - name: gpu-tasks
    kind: batch
    trace: {file: openb.csv, format: alibaba-openb, scale: 2}
    accelerators: H100:1
    until: 2026-02-01
  - name: chat
    kind: serve
    trace: {file: llm.csv, format: azure-llm, tokens_per_second_per_replica: 10, window_minutes: 5}
    accelerators: A100:1
    until: 2026-02-01
";
    let file = write(&dir, "s.yaml", scenario);
    let out = ok(skyward().args(["simulate", &file, "--quiet", "-o", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["policies"][0];
    assert_eq!(p["workloads"], 34_224);
    let hours = &p["total"]["accelerator_hours"];
    assert!(
        (hours["H100"].as_f64().unwrap() - 744.0).abs() < 1e-6,
        "{hours}"
    );
    assert!(
        (hours["A100"].as_f64().unwrap() - 2_604.0).abs() < 1e-6,
        "{hours}"
    );
    // Within a cent: 34,224 runs are billed from fractional hours.
    let list = p["total"]["list_usd"].as_f64().unwrap();
    assert!((list - 4_092.0).abs() <= 0.011, "{}", p["total"]);
    // The report names each trace and what it did not replay: p2 has no
    // GPU, p3 was never scheduled; the three requests all count.
    let t = &v["traces"];
    assert_eq!(t[0]["file"], "openb.csv", "{t}");
    assert_eq!(t[0]["tasks"], 2, "{t}");
    assert_eq!(
        t[0]["dropped"],
        serde_json::json!([["no GPU", 1], ["never scheduled", 1]]),
        "{t}"
    );
    assert_eq!(t[1]["format"], "azure-llm", "{t}");
    assert_eq!(t[1]["dropped"], serde_json::json!([]), "{t}");
    let table = skyward()
        .args(["simulate", &file, "--quiet"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("stream gpu-tasks replays openb.csv (alibaba-openb): 2 tasks per pass; rows not replayed: 1 no GPU, 1 never scheduled"),
        "{text}"
    );

    // A bad row in a trace is refused naming the trace file and line; so
    // are a missing file, an unknown format and a generator's fields.
    write(
        &dir,
        "bad.csv",
        "name,num_gpu,creation_time,deletion_time,scheduled_time\np0,1,0,600,0\np1,lots,0,600,0\n",
    );
    for (trace, needle) in [
        ("{file: bad.csv, format: alibaba-openb}", "bad.csv:3"),
        ("{file: nowhere.csv, format: alibaba-openb}", "nowhere.csv"),
        ("{file: openb.csv, format: google}", "unknown trace format"),
        (
            "{file: llm.csv, format: azure-llm}",
            "tokens_per_second_per_replica",
        ),
        (
            "{file: openb.csv, format: alibaba-openb, scale: -1}",
            "scale",
        ),
    ] {
        let text = scenario.replace("{file: openb.csv, format: alibaba-openb, scale: 2}", trace);
        let bad = write(&dir, "bad.yaml", &text);
        let out = skyward()
            .args(["simulate", &bad, "--quiet"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{trace}: {err}");
        assert!(err.contains(needle), "{trace}: {err}");
    }
    let text = scenario.replace(
        "    accelerators: H100:1\n",
        "    accelerators: H100:1\n    hours: 3\n",
    );
    let bad = write(&dir, "bad.yaml", &text);
    let out = skyward()
        .args(["simulate", &bad, "--quiet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("demand[0].hours"), "{err}");
}

/// `--html`: one self-contained page with a chart of cost over the years
/// and one per commitment, each with a title, axis titles and a line per
/// policy, and the delay table.
#[test]
fn simulate_writes_an_html_report_with_charts() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "s.yaml", SCENARIO);
    let html = dir.path().join("r.html");
    ok(skyward()
        .args(["simulate", &file, "--quiet", "--html"])
        .arg(&html));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "cost, the one commitment and the delays"
    );
    for needle in [
        "Cumulative cost by policy",
        "macc (azure): burn against the commitment",
        "cumulative cost (USD)",
        "cumulative burn (USD)",
        "skyward",
        "cheapest-per-task",
        "Queueing delay per stream",
        "Queueing delay by stream: p50, p95 and p99 per policy",
        "stream and percentile",
        "queueing delay (",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    // The delay chart: a bar per policy for each of the one stream's
    // three percentiles, each titled with its policy and percentile.
    assert_eq!(page.matches("class=\"bar\"").count(), 6);
    for policy in ["skyward", "cheapest-per-task"] {
        for pct in ["p50", "p95", "p99"] {
            let t = format!("<title>{policy} train {pct}: ");
            assert!(page.contains(&t), "missing {t}");
        }
    }
    // Each chart draws a line per policy (plus the straight line).
    assert!(
        page.matches("<polyline").count() >= 5,
        "{}",
        page.matches("<polyline").count()
    );
    assert!(
        !page.contains("<script") && !page.contains("<link"),
        "self-contained"
    );
}

/// Seven years of one 8-accelerator, 10-hour job a day on one AWS site at
/// $2 an accelerator-hour, under a $500,000 commitment at 10 % off with
/// $55,000 yearly floors. By hand:
///   a day lists 8 × 10 × $2 = $160 and bills $144;
///   2026–2032 has 2,557 days (2028 and 2032 are leap years):
///   list $409,120, billed (burned) $368,208;
///   year-end gaps: 5 × (55,000 − 365 × 144) + 2 × (55,000 − 366 × 144)
///   = 5 × $2,440 + 2 × $2,296 = $16,792, within the total shortfall of
///   500,000 − 368,208 = $131,792.
const SEVEN_YEARS: &str = "name: seven-years
start: 2026-01-01
years: 7
policies: [skyward]
sites:
  - {name: aws-h100, provider: aws, region: us-east-1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 2}
demand:
  - {name: daily, kind: train, every_hours: 24, accelerators: H100:8, hours: 10}
";

const SEVEN_YEAR_CONTRACT: &str = "contracts:
  - name: edp
    kind: spend
    provider: aws
    start: 2026-01-01
    term_years: 7
    commit_usd: 500000
    discount_pct: 10
    shortfall: yearly
    floors: [{year: 1, commit_usd: 55000}, {year: 2, commit_usd: 55000}, {year: 3, commit_usd: 55000}, {year: 4, commit_usd: 55000}, {year: 5, commit_usd: 55000}, {year: 6, commit_usd: 55000}, {year: 7, commit_usd: 55000}]
";

/// Runs `skyward simulate --focus`, imports the FOCUS file into a fresh
/// ledger (only the charges before `before` when given), and returns the
/// simulation's report and `ledger analyze NAME` (at `at` when given).
fn simulate_then_analyze(
    dir: &tempfile::TempDir,
    scenario: &str,
    contracts: &str,
    name: &str,
    before: Option<&str>,
    at: Option<&str>,
) -> (Value, Value) {
    let sc = write(dir, "sc.yaml", scenario);
    let focus = dir.path().join("sim.csv");
    let out = ok(skyward()
        .args(["simulate", &sc, "--quiet", "-o", "json", "--focus"])
        .arg(&focus));
    let sim: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut file = focus.clone();
    if let Some(before) = before {
        // ChargePeriodStart is the fifth column.
        let text = std::fs::read_to_string(&focus).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, l)| *i == 0 || l.split(',').nth(4).is_some_and(|t| t < before))
            .map(|(_, l)| l)
            .collect();
        file = dir.path().join("before.csv");
        std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    }
    let db = dir
        .path()
        .join(format!("ledger-{}.db", before.unwrap_or("all")));
    let imp = ok(skyward()
        .env("SKYWARD_DB", &db)
        .args(["ledger", "import"])
        .arg(&file));
    // Years of monthly billing periods are counted, not all listed.
    let said = String::from_utf8_lossy(&imp.stdout);
    assert!(said.lines().all(|l| l.len() < 400), "{said}");
    let months = if before.is_some() { 36 } else { 84 };
    assert!(
        said.contains(&format!("({months} billing periods)")),
        "{said}"
    );
    let contracts = write(dir, "contracts.yaml", contracts);
    let mut cmd = skyward();
    cmd.env("SKYWARD_DB", &db).args([
        "ledger",
        "analyze",
        name,
        "--contracts",
        &contracts,
        "-o",
        "json",
    ]);
    if let Some(at) = at {
        cmd.args(["--at", at]);
    }
    let out = ok(&mut cmd);
    (sim, serde_json::from_slice(&out.stdout).unwrap())
}

fn contract<'a>(sim: &'a Value, name: &str) -> &'a Value {
    sim["policies"][0]["contracts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

/// The simulated shortfall against `skyward ledger analyze` on the same
/// usage, through FOCUS: at the term's end (the ledger's own burn and
/// rule), and three years in (the ledger's projection of the remaining
/// four years from the history so far), both against the hand figures.
#[test]
fn seven_year_shortfall_matches_ledger_analyze_and_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!("{SEVEN_YEARS}{SEVEN_YEAR_CONTRACT}");
    let (sim, end) = simulate_then_analyze(
        &dir,
        &scenario,
        SEVEN_YEAR_CONTRACT,
        "edp",
        None,
        Some("2033-01-01"),
    );
    let c = contract(&sim, "edp");
    let total = &sim["policies"][0]["total"];
    assert_eq!(total["list_usd"].as_f64(), Some(409_120.0), "{total}");
    assert_eq!(c["burned_usd"].as_f64(), Some(368_208.0), "{c}");
    assert_eq!(c["shortfall_usd"].as_f64(), Some(131_792.0), "{c}");
    // Each year's gap at its end (2028 and 2032 are leap years); the last
    // year's is charged with the rest of the total, $115,000.
    let by_year: Vec<f64> = sim["policies"][0]["years"]
        .as_array()
        .unwrap()
        .iter()
        .map(|y| y["shortfall_usd"].as_f64().unwrap())
        .collect();
    assert_eq!(
        by_year,
        [
            2_440.0,
            2_440.0,
            2_296.0,
            2_440.0,
            2_440.0,
            2_440.0,
            2_296.0 + 115_000.0
        ],
        "{sim}"
    );
    assert_eq!(end["burned"].as_f64(), Some(368_208.0), "{end}");
    assert_eq!(end["expected_shortfall"].as_f64(), Some(131_792.0), "{end}");
    assert_eq!(end["shortfall_probability"].as_f64(), Some(1.0), "{end}");
    // Three years in: 2026–2028 burned 1,096 days × $144 = $157,824; the
    // ledger projects the other 1,461 days at the same rate.
    let dir = tempfile::tempdir().unwrap();
    let (_, mid) = simulate_then_analyze(
        &dir,
        &scenario,
        SEVEN_YEAR_CONTRACT,
        "edp",
        Some("2029-01-01"),
        None,
    );
    assert_eq!(mid["at"], "2029-01-01", "{mid}");
    assert_eq!(mid["burned"].as_f64(), Some(157_824.0), "{mid}");
    assert_eq!(mid["projected_burn_p50"].as_f64(), Some(368_208.0), "{mid}");
    assert_eq!(mid["expected_shortfall"].as_f64(), Some(131_792.0), "{mid}");
}

/// `--focus` writes one policy's usage: with two it says which to choose;
/// an unwritable path is an error naming it, with nothing left behind.
#[test]
fn focus_output_needs_one_policy_and_a_writable_path() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(&dir, "sc.yaml", SCENARIO);
    let out = skyward()
        .args(["simulate", &sc, "--quiet", "--focus"])
        .arg(dir.path().join("x.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--policy") && err.contains("skyward, cheapest-per-task"),
        "{err}"
    );
    assert!(!dir.path().join("x.csv").exists());
    let bad = dir.path().join("no-such-dir").join("x.csv");
    let out = skyward()
        .args(["simulate", &sc, "--quiet", "--policy", "skyward", "--focus"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the scenario"
    );
}

/// A savings plan and a reservation through the binary: their own table
/// (paid, used, covered, net savings), the same in JSON and in the HTML
/// report; `--focus`, which cannot write their hourly rows yet, refuses
/// and writes nothing.
#[test]
fn savings_plans_and_reservations_show_in_the_tables_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "plans.yaml",
        &SCENARIO.replace(
            "  - {name: macc, kind: spend, provider: azure, start: 2026-01-01, term_years: 1, commit_usd: 500000, discount_pct: 20}\n",
            "  - {name: sp, kind: hourly, provider: aws, instrument: aws-compute-savings-plan, start: 2026-01-01, term_years: 1, commit_usd_per_hour: 20, discount_pct: 25}\n  - {name: ri, kind: capacity, provider: azure, region: eastus, sku: H100, units: 8, rate_usd_per_unit_hour: 7, start: 2026-01-01, term_months: 6}\n",
        ),
    );
    let out = ok(skyward().args(["simulate", &file, "--quiet"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "savings-plan",
        "aws-compute-savings-plan",
        "capacity",
        "8 × H100 in eastus",
        "net savings",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let out = ok(skyward().args(["simulate", &file, "--quiet", "-o", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sp = &v["policies"][0]["hourly"];
    assert_eq!(sp.as_array().map(Vec::len), Some(2), "{sp}");
    // The reservation pays 8 × $7 for each hour of its six months (181 days,
    // 4,344 hours), used or not: $243,264; the plan $20 for each of 8,760.
    let ri = sp
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "ri")
        .unwrap();
    assert_eq!(ri["hours"], 4_344);
    assert_eq!(ri["committed_usd"].as_f64(), Some(243_264.0));
    let plan = sp
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "sp")
        .unwrap();
    assert_eq!(plan["committed_usd"].as_f64(), Some(175_200.0));
    let html = dir.path().join("r.html");
    ok(skyward().args([
        "simulate",
        &file,
        "--quiet",
        "--html",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Savings plans and reserved capacity"),
        "no table"
    );
    let focus = dir.path().join("f.csv");
    let out = skyward()
        .args([
            "simulate",
            &file,
            "--quiet",
            "--policy",
            "skyward",
            "--focus",
            focus.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--focus") && err.contains("sp"), "{err}");
    assert!(!focus.exists());
}
