//! `skyward drill`: take a site, or a whole provider, out on purpose and
//! watch the work move: where each stopped run went, how long until it ran
//! again (the recovery time), and how long it had run (the work at risk of
//! being redone without a checkpoint). The API does the taking out
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
    let report = Report {
        sites: d.sites.clone(),
        started_at_ms: d.started_at_ms,
        until_ms: d.until_ms,
        resumed: times.len(),
        recovery_ms_median: times.get(times.len() / 2).copied(),
        recovery_ms_max: times.last().copied(),
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
                "TIME TO RESUME>",
                "RAN BEFORE (AT RISK)>",
                "STATE",
            ]);
            for m in &report.moved {
                t.row(vec![
                    m.id.to_string(),
                    m.from.clone(),
                    m.to.clone().unwrap_or_else(|| "-".into()),
                    ms(m.recovery_ms),
                    ms(Some(m.ran_ms)),
                    match (&m.waiting_for, m.state.as_str()) {
                        (Some(w), "pending") => format!("pending: {w}"),
                        _ => m.state.clone(),
                    },
                ]);
            }
            out!("{}", t.render());
            outln!(
                "\n{} of {} moved runs resumed elsewhere; time to resume median {}, max {}. The sites take work again when the drill ends.",
                report.resumed,
                report.moved.len(),
                ms(report.recovery_ms_median),
                ms(report.recovery_ms_max)
            );
            outln!("RAN BEFORE: how long each stopped run had run; without a checkpoint that work is redone.");
        }
    }
    Ok(())
}
