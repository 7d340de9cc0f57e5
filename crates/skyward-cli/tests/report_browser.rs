#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The ledger report opened in a real browser: Debian's headless Chromium
//! (`scripts/chromium.sh` installs it; `scripts/test.sh` exports
//! SKYWARD_TEST_CHROMIUM). The page must load with no console errors and
//! nothing fetched, and every chart must carry its title and both axes
//! with their titles.

mod common;
use assert_cmd::Command;
use common::{example, ok};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn chromium() -> String {
    std::env::var("SKYWARD_TEST_CHROMIUM").unwrap_or_else(|_| {
        for b in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
            if std::path::Path::new(b).exists() {
                return b.to_string();
            }
        }
        panic!("no Chromium: run scripts/test.sh (it installs Debian's chromium), or set SKYWARD_TEST_CHROMIUM")
    })
}

/// Runs headless Chromium with `args` on `url`, killed after 90 s.
fn run_chromium(profile: &std::path::Path, args: &[&str], url: &str) -> (String, String) {
    // Output goes to files: a page larger than a pipe's buffer would block
    // Chromium while we wait for it to exit.
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read = |p: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    };
    (read(&out_path), read(&err_path))
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let csv = dir.path().join("focus.csv");
    ok(Command::cargo_bin("skyward").unwrap().args([
        "ledger",
        "generate",
        "--days",
        "150",
        "--rows-per-hour",
        "1",
        "-O",
        &csv.display().to_string(),
    ]));
    let skyward = || {
        let mut c = Command::cargo_bin("skyward").unwrap();
        c.env("SKYWARD_DB", &db);
        c
    };
    ok(skyward().args(["ledger", "import", &csv.display().to_string()]));
    let html = dir.path().join("report.html");
    ok(skyward().args([
        "ledger",
        "report",
        "--contracts",
        &example("contracts.yaml"),
        "--html",
        &html.display().to_string(),
    ]));
    let text = std::fs::read_to_string(&html).unwrap();
    // Nothing to fetch: no scripts, no external resources.
    for bad in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!text.contains(bad), "the report references {bad}");
    }
    let url = format!("file://{}", html.display());
    let profile = dir.path().join("chromium-profile");
    let (dom, log) = run_chromium(&profile, &["--dump-dom"], &url);
    assert!(
        dom.contains("Skyward ledger report"),
        "no page in the DOM: {log}"
    );
    for l in log.lines() {
        let l = l.to_ascii_lowercase();
        assert!(
            !(l.contains("console") && (l.contains("error") || l.contains("uncaught"))),
            "console error: {l}"
        );
        assert!(!l.contains("failed to load resource"), "{l}");
    }
    // Every chart, as the browser parsed it, has a title and two titled axes.
    let charts: Vec<&str> = dom.split("<svg").skip(1).collect();
    assert!(charts.len() >= 6, "{} charts", charts.len());
    for c in &charts {
        let c = &c[..c.find("</svg>").unwrap()];
        for part in [
            "class=\"chart-title\"",
            "class=\"axis x\"",
            "class=\"axis y\"",
            "class=\"axis-title x\"",
            "class=\"axis-title y\"",
            "class=\"tick y\"",
            "class=\"tick x\"",
        ] {
            assert!(
                c.contains(part),
                "a chart without {part}: {}",
                &c[..c.len().min(300)]
            );
        }
        // Axis titles say their units.
        let y = c.split("class=\"axis-title y\"").nth(1).unwrap();
        let y = &y[y.find('>').unwrap() + 1..y.find("</text>").unwrap()];
        assert!(
            y.contains('(') && y.contains(')'),
            "y axis title without a unit: {y}"
        );
    }
    // Ticks are round numbers (no $8.75M, $17.51M).
    for t in dom.split("class=\"tick y\"").skip(1) {
        let label = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
        let digits: String = label
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v: f64 = digits.parse().unwrap_or(0.0);
        let frac = (v * 100.0).round() as i64 % 100;
        assert!(
            [0, 25, 50, 75].contains(&frac),
            "tick {label} is not a round number"
        );
    }
    // The page renders to a picture.
    let png = dir.path().join("report.png");
    let (_, log) = run_chromium(
        &profile,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1900,2400",
            "--hide-scrollbars",
        ],
        &url,
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes: {log}");
    if let Ok(keep) = std::env::var("SKYWARD_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
