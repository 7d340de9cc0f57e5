//! `skyward drill`: take a site, or a whole provider, out on purpose and
//! watch the work move: where each stopped run went, how long until it ran
//! again (the recovery time, RTO), and the work redone (the recovery
//! point, RPO): for a workload with a checkpoint store, from the checkpoint
//! the next attempt resumed from to the stopped run's end; without one,
//! all the stopped run had done. The API does the taking out
//! (`POST /v1/drills`); this follows each moved workload's status.
#![allow(clippy::disallowed_methods)] // wall-clock time to follow the drill, at the edge

use crate::cmd::client::{api_err, client_err, connect, Conn};
use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use skyward_server::runtime::DrillReport;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DrillArgs {
    /// The site to take out.
    #[arg(
        long,
        conflicts_with = "provider",
        required_unless_present = "provider"
    )]
    pub site: Option<String>,
    /// Take out every site of this provider (a cloud-wide outage).
    #[arg(long)]
    pub provider: Option<String>,
    /// How long the sites stay out (`60s`, `5m`).
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// How long to follow the moved work before reporting (`2m`).
    #[arg(long, default_value = "2m")]
    pub wait: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// One moved workload, as the drill saw it.
#[derive(Debug, Serialize)]
struct Moved {
    id: u64,
    from: String,
    /// Where its next attempt runs (None: not yet, or nowhere allowed).
    to: Option<String>,
    /// From the drill's start to the next attempt running, ms.
    recovery_ms: Option<u64>,
    /// How long the stopped run had run (redone without a checkpoint).
    ran_ms: u64,
    /// The work the next attempt redoes (RPO): from the checkpoint it
    /// resumed from, else all of `ran_ms`. None until it runs again.
    redone_ms: Option<u64>,
    /// The checkpoint the next attempt resumed from (`store` at `step`).
    resumed_from: Option<Value>,
    /// Its state when the report was made.
    state: String,
    /// Why it waits, when it does.
    waiting_for: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    sites: Vec<String>,
    started_at_ms: u64,
    until_ms: u64,
    moved: Vec<Moved>,
    resumed: usize,
    recovery_ms_median: Option<u64>,
    recovery_ms_max: Option<u64>,
    /// The most work any resumed workload redoes (the drill's RPO).
    redone_ms_max: Option<u64>,
}

pub fn run(a: &DrillArgs) -> Result<(), CliError> {
    let wait = skyward_spec::job::parse_duration_ms(&a.wait)
        .map_err(|m| CliError::Input(format!("--wait: {m}")))?;
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let mut body = serde_json::json!({"duration": a.duration});
    match (&a.site, &a.provider) {
        (Some(s), _) => body["site"] = Value::from(s.clone()),
        (None, Some(p)) => body["provider"] = Value::from(p.clone()),
        (None, None) => return Err(CliError::Input("--site or --provider".into())),
    }
    let r = rt
        .block_on(c.request(
            "POST",
            "/v1/drills",
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        ))
        .map_err(client_err)?;
    if r.status != 201 {
        return Err(api_err(&r));
    }
    let d: DrillReport = serde_json::from_slice(&r.body)
        .map_err(|e| CliError::Io(format!("the server's answer: {e}")))?;
    if a.conn.output == Output::Table {
        eprintln!(
            "drill: {} out for {}; {} runs stopped; following them for up to {} …",
            d.sites.join(", "),
            a.duration,
            d.moved.len(),
            a.wait
        );
    }
    let deadline = Instant::now() + Duration::from_millis(wait);
    let mut moved: Vec<Moved> = d
        .moved
        .iter()
        .map(|m| Moved {
            id: m.id,
            from: m.from.clone(),
            to: None,
            recovery_ms: None,
            ran_ms: m.ran_ms,
            redone_ms: None,
            resumed_from: None,
            state: "pending".into(),
            waiting_for: None,
        })
        .collect();
    loop {
        let mut open = 0;
        for (m, orig) in moved.iter_mut().zip(&d.moved) {
            if m.recovery_ms.is_some() {
                continue;
            }
            let v = crate::cmd::client::get(&rt, &c, &format!("/v1/workloads/{}", m.id))?;
            let state = v["state"].as_str().unwrap_or("").to_string();
            let attempt = v["attempt"].as_u64().unwrap_or(0) as u32;
            m.state = state.clone();
            match state.as_str() {
                "running" if attempt > orig.attempt => {
                    m.to = v["site"].as_str().map(String::from);
                    m.recovery_ms = v["since_ms"]
                        .as_u64()
                        .map(|t| t.saturating_sub(d.started_at_ms));
                    let tries = v["attempts"].as_array().cloned().unwrap_or_default();
                    let of = |n: u64| tries.iter().find(|t| t["attempt"].as_u64() == Some(n));
                    // The status counts it from the checkpoint resumed
                    // from; a workload without a store redoes it all.
                    m.redone_ms = of(u64::from(orig.attempt))
                        .and_then(|t| t["redone_ms"].as_u64())
                        .or(Some(m.ran_ms));
                    m.resumed_from = of(u64::from(attempt))
                        .map(|t| t["resumed_from"].clone())
                        .filter(|r| !r.is_null());
                }
                "succeeded" | "failed" | "cancelled" => {
                    m.to = v["site"].as_str().map(String::from);
                }
                _ => {
                    open += 1;
                    m.waiting_for = v["pending_reasons"].as_array().map(|rs| {
                        rs.iter()
                            .map(|r| {
                                format!(
                                    "{} ({} site{})",
                                    r["reason"].as_str().unwrap_or("?"),
                                    r["sites"],
                                    if r["sites"] == 1 { "" } else { "s" }
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                }
            }
        }
        if open == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut times: Vec<u64> = moved.iter().filter_map(|m| m.recovery_ms).collect();
    times.sort_unstable();
    let redone_ms_max = moved.iter().filter_map(|m| m.redone_ms).max();
    let report = Report {
        sites: d.sites.clone(),
        started_at_ms: d.started_at_ms,
        until_ms: d.until_ms,
        resumed: times.len(),
        recovery_ms_median: times.get(times.len() / 2).copied(),
        recovery_ms_max: times.last().copied(),
        redone_ms_max,
        moved,
    };
    match a.conn.output {
        Output::Json => outln!("{}", json(&report)?),
        Output::Table => {
            let ms = |v: Option<u64>| match v {
                Some(x) if x < 1_000 => format!("{x} ms"),
                Some(x) => format!("{:.1} s", x as f64 / 1000.0),
                None => "-".into(),
            };
            let mut t = Table::new(&[
                "WORKLOAD>",
                "FROM",
                "TO",
                "TIME TO RESUME (RTO)>",
                "RAN BEFORE>",
                "WORK REDONE (RPO)>",
                "RESUMED FROM",
                "STATE",
            ]);
            for m in &report.moved {
                t.row(vec![
                    m.id.to_string(),
                    m.from.clone(),
                    m.to.clone().unwrap_or_else(|| "-".into()),
                    ms(m.recovery_ms),
                    ms(Some(m.ran_ms)),
                    ms(m.redone_ms),
                    match &m.resumed_from {
                        Some(r) => match r["step"].as_u64() {
                            Some(step) => {
                                format!("{} step {step}", r["store"].as_str().unwrap_or("?"))
                            }
                            None => format!("{} (nothing yet)", r["store"].as_str().unwrap_or("?")),
                        },
                        None if m.redone_ms.is_some() => "no checkpoint".into(),
                        None => "-".into(),
                    },
                    match (&m.waiting_for, m.state.as_str()) {
                        (Some(w), "pending") => format!("pending: {w}"),
                        _ => m.state.clone(),
                    },
                ]);
            }
            out!("{}", t.render());
            outln!(
                "\n{} of {} moved runs resumed elsewhere; time to resume median {}, max {}; work redone at most {}. The sites take work again when the drill ends.",
                report.resumed,
                report.moved.len(),
                ms(report.recovery_ms_median),
                ms(report.recovery_ms_max),
                ms(report.redone_ms_max)
            );
            outln!("WORK REDONE: from the checkpoint the next attempt resumed from to the stopped run's end; without a checkpoint, all it had run.");
        }
    }
    Ok(())
}
