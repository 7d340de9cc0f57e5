//! `skyward bench dashboard`: what the dashboard's pages cost a server
//! holding many workloads and a large ledger. A `skyward up` server (this
//! binary, in a child process) is filled through its API with
//! `--workloads` submissions (two-node gangs that never fit, so all of
//! them wait: the deepest queue for the queue page) and a FOCUS bill of
//! `--ledger-rows` rows (`ledger generate`'s data) with a spend contract;
//! then each page's data requests are sent as the page sends them (at
//! once) `--repeats` times. Reported per request and per page: median,
//! 95th percentile and worst, in milliseconds; the first render's
//! critical path (page, then its script and styles, then the login check,
//! then the ledger summary, then the overview's data); and the page weight, raw and gzipped.
#![allow(clippy::disallowed_methods)]

use crate::cmd::bench_submit::{admin_client, percentile, start_server_bin};
use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::Serialize;
use skyward_server::client::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DashboardBenchArgs {
    /// Workloads stored before measuring.
    #[arg(long, default_value_t = 100_000)]
    pub workloads: usize,
    /// FOCUS rows imported into the server's ledger before measuring.
    #[arg(long, default_value_t = 5_000_000)]
    pub ledger_rows: u64,
    /// Times each page's requests are sent (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

const WORKLOADS_MAX: usize = 2_000_000;
const LEDGER_ROWS_MAX: u64 = 50_000_000;

#[derive(Serialize)]
struct Timing {
    what: String,
    median_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    bytes: usize,
}

#[derive(Serialize)]
struct Report {
    workloads: usize,
    ledger_rows: u64,
    import_s: f64,
    fill_s: f64,
    repeats: usize,
    load_start: f64,
    load_end: f64,
    /// Per data request.
    requests: Vec<Timing>,
    /// Per page: its requests sent at once, until the last answers.
    pages: Vec<Timing>,
    /// Just after each change of the ledger (a new contracts version):
    /// per request and per page, the overview and the commitments page.
    after_change_requests: Vec<Timing>,
    after_change_pages: Vec<Timing>,
    /// Median of: the page, then its script and styles at once, then
    /// `/v1/whoami`, then `/v1/summary`, then the overview's data at once.
    first_render_critical_path_ms: f64,
    page_weight_bytes: usize,
    page_weight_gzip_bytes: usize,
    server_peak_rss_mib: f64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn summary(what: &str, mut v: Vec<f64>, bytes: usize) -> Timing {
    v.sort_by(f64::total_cmp);
    Timing {
        what: what.to_string(),
        median_ms: percentile(&v, 0.5),
        p95_ms: percentile(&v, 0.95),
        max_ms: v.last().copied().unwrap_or(0.0),
        bytes,
    }
}

/// Sends every path at once; (each one's ms and bytes, all of them's ms).
async fn at_once(c: &Client, paths: &[String]) -> Result<(Vec<(f64, usize)>, f64), CliError> {
    let t = Instant::now();
    let handles: Vec<_> = paths
        .iter()
        .map(|p| {
            let (c, p) = (c.clone(), p.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = c
                    .request("GET", &p, None, &[])
                    .await
                    .map_err(|e| CliError::Io(e.to_string()))?;
                if r.status >= 400 {
                    return Err(CliError::Io(format!("GET {p}: {}", r.error_text())));
                }
                Ok((ms(t), r.body.len()))
            })
        })
        .collect();
    let mut each = Vec::with_capacity(handles.len());
    for h in handles {
        each.push(h.await.map_err(|e| CliError::Internal(e.to_string()))??);
    }
    Ok((each, ms(t)))
}

fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        return 0;
    };
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(bytes);
    }
    child
        .wait_with_output()
        .map(|o| o.stdout.len())
        .unwrap_or(0)
}

pub fn run(a: &DashboardBenchArgs) -> Result<(), CliError> {
    if a.workloads > WORKLOADS_MAX {
        return Err(CliError::Input(format!(
            "--workloads: 0 to {WORKLOADS_MAX}"
        )));
    }
    if a.ledger_rows > LEDGER_ROWS_MAX {
        return Err(CliError::Input(format!(
            "--ledger-rows: 0 to {LEDGER_ROWS_MAX}"
        )));
    }
    if a.repeats == 0 || a.repeats > 1_000 {
        return Err(CliError::Input("--repeats: 1 to 1000".into()));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::Io(e.to_string()))?;
    let load_start = crate::cmd::bench_submit::load_average();
    let (server, port) = start_server_bin(dir.path(), None, None)?;
    let client = admin_client(dir.path(), port)?.with_timeout(Duration::from_secs(3_600));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;

    // 1. Workloads, 64 at a time.
    let t_fill = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let n = a.workloads;
    let errors = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (client, next) = (client.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return errors;
                    }
                    if i > 0 && i.is_multiple_of((n / 10).max(1)) {
                        eprintln!("  {i}/{n} workloads submitted");
                    }
                    let body = format!("{{\"name\":\"dash-{i}\",\"accelerators\":\"H100:8\",\"nodes\":2,\"run\":\"true\"}}");
                    match client.request("POST", "/v1/workloads", Some(("application/json", body.into_bytes())), &[]).await {
                        Ok(r) if r.status == 201 => {}
                        _ => errors += 1,
                    }
                }
            }));
        }
        let mut e = 0;
        for t in tasks {
            e += t.await.unwrap_or(1);
        }
        e
    });
    if errors > 0 {
        return Err(CliError::Io(format!("{errors} submissions failed")));
    }
    let fill_s = t_fill.elapsed().as_secs_f64();

    // 2. A year of FOCUS rows and a contract over it.
    let start = skyward_ledger::Timestamp::parse("2025-01-01T00:00:00Z")
        .map_err(|m| CliError::Internal(m.to_string()))?;
    let mut import_s = 0.0;
    let mut ledger_rows = 0;
    if a.ledger_rows > 0 {
        let per_hour = 365 * 24 * skyward_ledger::generate::SKUS.len() as u64;
        let settings = skyward_ledger::generate::GenSettings {
            start,
            days: 365,
            rows_per_hour: a.ledger_rows.div_ceil(per_hour).max(1) as u32,
            growth_pct: 20.0,
            seed: 1,
        };
        let file = dir.path().join("bill.csv");
        let f = std::fs::File::create(&file).map_err(|e| CliError::Io(e.to_string()))?;
        eprintln!("  writing {} FOCUS rows …", a.ledger_rows);
        ledger_rows = skyward_ledger::generate::write_focus(
            std::io::BufWriter::with_capacity(1 << 20, f),
            &settings,
            |_| {},
        )
        .map_err(|e| CliError::Io(e.to_string()))?;
        eprintln!("  importing {ledger_rows} rows through the API …");
        let t = Instant::now();
        let r = rt
            .block_on(client.upload(
                "/v1/ledger/imports?name=bench-bill.csv",
                &file,
                "text/csv",
                Duration::from_secs(3_600),
            ))
            .map_err(|e| CliError::Io(e.to_string()))?;
        if r.status >= 300 {
            return Err(CliError::Io(format!("import: {}", r.error_text())));
        }
        import_s = t.elapsed().as_secs_f64();
        let contracts = "contracts:\n  - name: aws-edp\n    kind: spend\n    provider: aws\n    start: 2025-01-01\n    term_months: 36\n    commit_usd: 90000000\n    discount_pct: 12\n    floors:\n      - year: 1\n        commit_usd: 25000000\n";
        let r = rt
            .block_on(client.request(
                "PUT",
                "/v1/contracts",
                Some(("application/yaml", contracts.as_bytes().to_vec())),
                &[],
            ))
            .map_err(|e| CliError::Io(e.to_string()))?;
        if r.status >= 300 {
            return Err(CliError::Io(format!("contracts: {}", r.error_text())));
        }
    }

    // 3. The pages' requests, as app.js sends them.
    let some_id = n.max(1) / 2;
    // Each page's requests after `/v1/summary` (which the overview, the
    // commitments and the admin pages ask first, to know whether the
    // ledger has anything: timed on its own as the last "page").
    let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let pages: Vec<(&str, Vec<String>)> = vec![
        (
            "overview",
            q(&[
                "/v1/sites",
                "/v1/commitments",
                "/v1/ledger/status",
                "/v1/ledger/burndown",
                "/v1/ledger/breakdown?by=provider&from=month",
            ]),
        ),
        (
            "workloads",
            q(&["/v1/workloads?limit=50", "/v1/queue?limit=50", "/v1/sites"]),
        ),
        // A filter that matches nothing: the store reads every row.
        (
            "workloads (state=succeeded)",
            q(&[
                "/v1/workloads?limit=50&state=succeeded",
                "/v1/queue?limit=50",
                "/v1/sites",
            ]),
        ),
        (
            "workloads (provider=aws)",
            q(&[
                "/v1/workloads?limit=50&provider=aws",
                "/v1/queue?limit=50",
                "/v1/sites",
            ]),
        ),
        (
            "workloads (oldest page)",
            q(&[
                "/v1/workloads?limit=50&cursor=51",
                "/v1/queue?limit=50",
                "/v1/sites",
            ]),
        ),
        (
            "workload",
            vec![
                format!("/v1/workloads/{some_id}"),
                format!("/v1/workloads/{some_id}/logs?offset=4503599627370496&limit=1"),
                format!("/v1/workloads/{some_id}/logs?offset=0&limit=65536"),
            ],
        ),
        (
            "sites",
            q(&[
                "/v1/sites",
                "/v1/sites/history",
                "/v1/sites/events?limit=50",
            ]),
        ),
        (
            "commitments",
            q(&[
                "/v1/ledger/status",
                "/v1/ledger/burndown",
                "/v1/ledger/inventory",
                "/v1/ledger/utilisation",
                "/v1/commitments",
            ]),
        ),
        ("admin", q(&["/v1/tokens", "/v1/contracts"])),
        ("summary", q(&["/v1/summary"])),
    ];
    let mut per_request: std::collections::BTreeMap<String, (Vec<f64>, usize)> = Default::default();
    let mut per_page: Vec<(String, Vec<f64>)> = pages
        .iter()
        .map(|(p, _)| (p.to_string(), Vec::new()))
        .collect();
    let mut first_render = Vec::new();
    let anon = Client::new(&format!("http://127.0.0.1:{port}"), None)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let mut weight = (0usize, 0usize);
    for rep in 0..a.repeats {
        for (i, (_, paths)) in pages.iter().enumerate() {
            let (each, all) = rt.block_on(at_once(&client, paths))?;
            per_page[i].1.push(all);
            for (p, (t, bytes)) in paths.iter().zip(each) {
                let e = per_request.entry(p.clone()).or_default();
                e.0.push(t);
                e.1 = bytes;
            }
        }
        // The first render's critical path, from a browser with nothing cached.
        let t = Instant::now();
        let page = rt.block_on(at_once(&anon, &["/".to_string()]))?;
        let assets = rt.block_on(at_once(
            &anon,
            &["/ui/app.js".to_string(), "/ui/app.css".to_string()],
        ))?;
        rt.block_on(at_once(&client, &["/v1/whoami".to_string()]))?;
        rt.block_on(at_once(&client, &["/v1/summary".to_string()]))?;
        rt.block_on(at_once(&client, &pages[0].1))?;
        first_render.push(ms(t));
        if rep == 0 {
            let raw = page.0[0].1 + assets.0.iter().map(|x| x.1).sum::<usize>();
            let mut all = Vec::new();
            for f in skyward_server::ui::FILES {
                all.extend_from_slice(f.2.as_bytes());
            }
            weight = (raw, gzip_len(&all));
        }
    }
    first_render.sort_by(f64::total_cmp);
    // After each change of the ledger (a new contracts version), the
    // overview's and then the commitments page's requests at once: the
    // answers computed afresh, as a user sees them after an import.
    let mut after_req: std::collections::BTreeMap<String, (Vec<f64>, usize)> = Default::default();
    let mut after_page: Vec<(String, Vec<f64>)> = Vec::new();
    if ledger_rows > 0 {
        for name in ["overview", "commitments"] {
            let paths = &pages
                .iter()
                .find(|(p, _)| *p == name)
                .ok_or_else(|| CliError::Internal(name.into()))?
                .1;
            let mut all = Vec::new();
            for k in 0..a.repeats {
                let contracts = format!("contracts:\n  - name: aws-edp\n    kind: spend\n    provider: aws\n    start: 2025-01-01\n    term_months: 36\n    commit_usd: {}\n    discount_pct: 12\n", 90_000_001 + k + if name == "overview" { 0 } else { 1_000 });
                let r = rt
                    .block_on(client.request(
                        "PUT",
                        "/v1/contracts",
                        Some(("application/yaml", contracts.into_bytes())),
                        &[],
                    ))
                    .map_err(|e| CliError::Io(e.to_string()))?;
                if r.status >= 300 {
                    return Err(CliError::Io(format!("contracts: {}", r.error_text())));
                }
                let (each, t) = rt.block_on(at_once(&client, paths))?;
                all.push(t);
                for (p, (t, bytes)) in paths.iter().zip(each) {
                    let e = after_req.entry(format!("{p} ({name})")).or_default();
                    e.0.push(t);
                    e.1 = bytes;
                }
            }
            after_page.push((name.to_string(), all));
        }
    }
    let rss = crate::cmd::bench::peak_rss_mib_of(&server.child.id().to_string());
    drop(server);
    let report = Report {
        workloads: n,
        ledger_rows,
        import_s,
        fill_s,
        repeats: a.repeats,
        load_start,
        load_end: crate::cmd::bench_submit::load_average(),
        requests: per_request
            .into_iter()
            .map(|(p, (v, b))| summary(&p, v, b))
            .collect(),
        pages: per_page
            .into_iter()
            .map(|(p, v)| summary(&p, v, 0))
            .collect(),
        after_change_requests: after_req
            .into_iter()
            .map(|(p, (v, b))| summary(&p, v, b))
            .collect(),
        after_change_pages: after_page
            .into_iter()
            .map(|(p, v)| summary(&p, v, 0))
            .collect(),
        first_render_critical_path_ms: percentile(&first_render, 0.5),
        page_weight_bytes: weight.0,
        page_weight_gzip_bytes: weight.1,
        server_peak_rss_mib: rss,
    };
    match a.output {
        Output::Json => println!("{}", json(&report)?),
        Output::Table => {
            println!(
                "{} workloads (stored in {:.1} s), {} ledger rows (imported in {:.1} s); {} repeats; load {:.2} → {:.2}; server peak RSS {:.0} MiB",
                report.workloads, report.fill_s, report.ledger_rows, report.import_s, report.repeats, report.load_start, report.load_end, report.server_peak_rss_mib
            );
            for (title, rows) in [
                ("request", &report.requests),
                ("page", &report.pages),
                (
                    "request, just after a ledger change",
                    &report.after_change_requests,
                ),
                (
                    "page, just after a ledger change",
                    &report.after_change_pages,
                ),
            ] {
                if rows.is_empty() {
                    continue;
                }
                let mut t = Table::new(&[title, "median ms>", "p95 ms>", "max ms>", "bytes>"]);
                for r in rows {
                    t.row(vec![
                        r.what.clone(),
                        format!("{:.1}", r.median_ms),
                        format!("{:.1}", r.p95_ms),
                        format!("{:.1}", r.max_ms),
                        if r.bytes > 0 {
                            r.bytes.to_string()
                        } else {
                            "-".into()
                        },
                    ]);
                }
                print!("{}", t.render());
            }
            println!(
                "first render, critical path (page → script and styles → login check → summary → overview data): median {:.1} ms",
                report.first_render_critical_path_ms
            );
            println!(
                "page weight: {} bytes, {} gzipped (every asset; no fonts, no libraries)",
                report.page_weight_bytes, report.page_weight_gzip_bytes
            );
        }
    }
    Ok(())
}
