//! `skyward submit | status | logs | cancel | sites | queue | usage`: the
//! API's client side. Tables for people, `--output json` for scripts.
#![allow(clippy::disallowed_methods)]

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::{Args, ValueEnum};
use serde_json::Value;
use skyward_server::client::{Client, ClientError, Reply, DEFAULT_SERVER};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct Conn {
    /// Server URL (default: $SKYWARD_SERVER, else http://127.0.0.1:8470).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// API token (default: $SKYWARD_TOKEN, else the admin token `skyward up`
    /// wrote in its data directory).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Workload file(s): one workload, or a `workloads:` list.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Idempotency key (each workload of a file gets KEY-<n>): resubmitting
    /// with the same key never creates a second workload. Without it, a
    /// random key is used for the automatic retries.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct StatusArgs {
    /// A workload id; without it, the most recent workloads.
    pub id: Option<u64>,
    /// Only workloads in this state.
    #[arg(long)]
    pub state: Option<String>,
    /// Only workloads of this kind (train, batch, serve).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this team's workloads.
    #[arg(long)]
    pub team: Option<String>,
    /// Only workloads placed (now or last) on this provider's sites.
    #[arg(long)]
    pub provider: Option<String>,
    /// How many (most recent first).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct IdArgs {
    pub id: u64,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct LogsArgs {
    pub id: u64,
    /// Keep printing new output until the workload ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct SitesArgs {
    /// The sites' health history instead, newest first: lost (and why),
    /// back, outage drills.
    #[arg(long)]
    pub events: bool,
    /// With --events: one site's only.
    #[arg(long, requires = "events")]
    pub site: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    Table,
    Json,
    /// FOCUS 1.3 CSV for `skyward ledger import`.
    Focus,
}

#[derive(Args)]
pub struct UsageArgs {
    #[arg(long, value_enum)]
    pub format: Option<UsageFormat>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub conn: Conn,
}

/// A client for an explicit server URL, with the token as `connect`
/// finds it.
pub fn connect_to(url: &str, token: Option<String>) -> Result<Client, CliError> {
    connect(&Conn {
        server: Some(url.to_string()),
        token,
        output: Output::Table,
    })
}

pub fn connect(c: &Conn) -> Result<Client, CliError> {
    let server = c
        .server
        .clone()
        .or_else(|| {
            std::env::var("SKYWARD_SERVER")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let token = c
        .token
        .clone()
        .or_else(|| {
            std::env::var("SKYWARD_TOKEN")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| {
            crate::cmd::server::default_token_file()
                .and_then(|p| crate::cmd::server::read_token_file(&p))
        });
    Client::new(&server, token).map_err(|e| CliError::Input(e.to_string()))
}

pub fn client_err(e: ClientError) -> CliError {
    match e {
        ClientError::Url(_) => CliError::Input(e.to_string()),
        _ => CliError::Io(e.to_string()),
    }
}

/// A 4xx is the caller's to fix (exit 2); anything else exit 1.
pub fn api_err(r: &Reply) -> CliError {
    if (400..500).contains(&r.status) {
        CliError::Input(r.error_text())
    } else {
        CliError::Io(r.error_text())
    }
}

pub fn get(rt: &tokio::runtime::Runtime, c: &Client, path: &str) -> Result<Value, CliError> {
    let r = rt
        .block_on(c.request("GET", path, None, &[]))
        .map_err(client_err)?;
    if r.status != 200 {
        return Err(api_err(&r));
    }
    r.json()
        .ok_or_else(|| CliError::Io("the server's answer is not JSON".into()))
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn random_key() -> String {
    skyward_server::auth::generate()
        .map(|t| format!("cli-{}", &t[4..36]))
        .unwrap_or_else(|_| format!("cli-{}", std::process::id()))
}

pub fn submit(a: &SubmitArgs) -> Result<(), CliError> {
    let catalog = skyward_catalog::Catalog::builtin()?;
    // Validate every file locally first: nothing is sent if one is wrong.
    let mut jobs = Vec::new();
    for f in &a.files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::Io(format!("{}: {e}", f.display())))?;
        for j in skyward_spec::job::parse_file(&text, &f.display().to_string(), &catalog)? {
            jobs.push(j);
        }
    }
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let mut results = Vec::new();
    let base_key = a.idempotency_key.clone();
    for (i, job) in jobs.iter().enumerate() {
        let key = match &base_key {
            Some(k) if jobs.len() == 1 => k.clone(),
            Some(k) => format!("{k}-{i}"),
            None => random_key(),
        };
        let body =
            serde_json::to_vec(&job.to_wire()).map_err(|e| CliError::Internal(e.to_string()))?;
        // Retries reuse the key: a submit that was stored but whose answer
        // was lost is answered from the key, not stored twice.
        let mut attempt = 0;
        let reply = loop {
            attempt += 1;
            match rt.block_on(c.request(
                "POST",
                "/v1/workloads",
                Some(("application/json", body.clone())),
                &[("idempotency-key", key.clone())],
            )) {
                Ok(r) if r.status >= 500 && attempt < 4 => {}
                Ok(r) => break r,
                Err(ClientError::Connect { .. }) | Err(ClientError::Timeout { .. })
                    if attempt < 4 => {}
                Err(e) => return Err(client_err(e)),
            }
            std::thread::sleep(Duration::from_millis(250 * (1 << attempt)));
        };
        if reply.status != 201 && reply.status != 200 {
            return Err(api_err(&reply));
        }
        results.push(reply.json().unwrap_or(Value::Null));
    }
    match a.conn.output {
        Output::Json => outln!("{}", json(&results)?),
        Output::Table => {
            let mut t = Table::new(&["id>", "name", "priority>", "state"]);
            for r in &results {
                t.row(vec![
                    s(&r["id"]),
                    s(&r["name"]),
                    s(&r["priority"]),
                    s(&r["state"]),
                ]);
            }
            out!("{}", t.render());
            eprintln!(
                "submitted {} workload(s) to {}; follow with `skyward status` and `skyward queue`",
                results.len(),
                c.base()
            );
        }
    }
    Ok(())
}

fn ms_to_text(ms: &Value) -> String {
    match ms.as_i64() {
        Some(m) => skyward_ledger::time::Timestamp(m.div_euclid(1000)).to_string(),
        None => "-".into(),
    }
}

pub fn status(a: &StatusArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    match a.id {
        Some(id) => {
            let v = get(&rt, &c, &format!("/v1/workloads/{id}"))?;
            match a.conn.output {
                Output::Json => outln!("{}", json(&v)?),
                Output::Table => {
                    outln!("workload {} ({})", s(&v["id"]), s(&v["name"]));
                    outln!("  state        {}", s(&v["state"]));
                    if !v["exit_code"].is_null() || !v["end_note"].is_null() {
                        outln!(
                            "  ended        exit code {}{}",
                            s(&v["exit_code"]),
                            v["end_note"]
                                .as_str()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        );
                    }
                    outln!(
                        "  team         {} (submitted by {})",
                        s(&v["team"]),
                        s(&v["submitted_by"])
                    );
                    outln!("  site         {}", s(&v["site"]));
                    if let Some(basis) = v["speeds"]["basis"].as_str() {
                        outln!("  speeds       {basis}");
                        for e in v["speeds"]["estimates"].as_array().into_iter().flatten() {
                            outln!(
                                "               {}: {:.4} ({}, {} report(s), ±{:.0}%)",
                                s(&e["alternative"]),
                                e["rate"].as_f64().unwrap_or(0.0),
                                s(&e["source"]),
                                s(&e["reports"]),
                                100.0 * (e["log_sd"].as_f64().unwrap_or(0.0).exp() - 1.0)
                            );
                        }
                    }
                    outln!("  accelerators {}", s(&v["accelerators"]));
                    outln!("  attempt      {}", s(&v["attempt"]));
                    outln!("  priority     {}", s(&v["priority"]));
                    outln!("  submitted    {}", ms_to_text(&v["submitted_at_ms"]));
                    outln!(
                        "  asks for     {} × {} node(s)",
                        v["spec"]["accelerators"]
                            .as_array()
                            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" or "))
                            .unwrap_or_default(),
                        s(&v["spec"]["nodes"])
                    );
                    if let Some(reasons) = v["pending_reasons"].as_array() {
                        outln!("  pending because:");
                        if reasons.is_empty() {
                            outln!("    not yet considered by a scheduling cycle");
                        }
                        for r in reasons {
                            outln!("    {} ({} site(s))", s(&r["reason"]), s(&r["sites"]));
                        }
                    }
                    // Why its last dispatch went where it did (the
                    // scheduler's explanation, in explain's words).
                    let placed = v["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .rev()
                        .find(|e| e["state"] == "dispatched" && e["note"].is_string());
                    if let Some(e) = placed {
                        outln!("  placed on {} because:", s(&e["site"]));
                        for line in e["note"].as_str().unwrap_or("").lines() {
                            outln!("    {line}");
                        }
                    }
                    let attempts = v["attempts"].as_array().cloned().unwrap_or_default();
                    if attempts.len() > 1 || attempts.iter().any(|a| a["ended"] == "requeued") {
                        // Where each run went and how it ended (failover,
                        // preemption, drills), and the work each one did.
                        outln!("  attempts:");
                        let mut t = Table::new(&[
                            "ATTEMPT>",
                            "SITE",
                            "RESUMED FROM",
                            "RAN>",
                            "ENDED",
                            "WHY",
                        ]);
                        for a in &attempts {
                            let ran = a["ran_ms"]
                                .as_i64()
                                .map(duration_text)
                                .unwrap_or_else(|| "-".into());
                            let r = &a["resumed_from"];
                            let resumed = if r.is_object() {
                                match r["step"].as_i64() {
                                    Some(n) => format!("step {n} in {}", s(&r["store"])),
                                    None => format!("start ({})", s(&r["store"])),
                                }
                            } else {
                                "-".into()
                            };
                            t.row(vec![
                                s(&a["attempt"]),
                                s(&a["site"]),
                                resumed,
                                ran,
                                a["ended"].as_str().unwrap_or("running").to_string(),
                                s(&a["note"]),
                            ]);
                        }
                        for line in t.render().lines() {
                            outln!("    {line}");
                        }
                        let with_checkpoints: Vec<i64> = attempts
                            .iter()
                            .filter_map(|a| a["redone_ms"].as_i64())
                            .collect();
                        let redone: i64 = attempts
                            .iter()
                            .filter(|a| a["ended"] == "requeued")
                            .filter_map(|a| a["ran_ms"].as_i64())
                            .sum();
                        if !with_checkpoints.is_empty() {
                            outln!(
                                "    {} of work redone (from the checkpoint each next attempt resumed from), of {} run on requeued attempts",
                                duration_text(with_checkpoints.iter().sum()),
                                duration_text(redone)
                            );
                        } else if redone > 0 {
                            outln!(
                                "    {} of work on runs that were requeued (redone unless a checkpoint kept it)",
                                duration_text(redone)
                            );
                        }
                    }
                    if let Some(points) = v["recovery_points"].as_array() {
                        // Where an attempt on each provider would resume.
                        outln!("  recovery point per provider:");
                        for p in points {
                            let at = match (p["store"].as_str(), p["step"].as_i64()) {
                                (Some(st), Some(n)) => format!("step {n} in {st}"),
                                (Some(st), None) => format!("no checkpoint yet ({st})"),
                                _ => "no store reachable: starts over".into(),
                            };
                            outln!("    {:<10} {at}", s(&p["provider"]));
                        }
                    }
                    let mut t = Table::new(&["time", "state", "site", "attempt>", "exit>", "note"]);
                    for e in v["events"].as_array().into_iter().flatten() {
                        let note = if e["state"] == "dispatched" {
                            e["note"]
                                .as_str()
                                .and_then(|n| n.lines().next())
                                .unwrap_or("")
                                .to_string()
                        } else {
                            s(&e["note"])
                        };
                        t.row(vec![
                            ms_to_text(&e["at_ms"]),
                            s(&e["state"]),
                            s(&e["site"]),
                            s(&e["attempt"]),
                            s(&e["exit_code"]),
                            note,
                        ]);
                    }
                    outln!("  history:");
                    for line in t.render().lines() {
                        outln!("    {line}");
                    }
                }
            }
        }
        None => {
            let mut path = format!("/v1/workloads?limit={}", a.limit.clamp(1, 1000));
            for (name, value) in [
                ("state", &a.state),
                ("kind", &a.kind),
                ("team", &a.team),
                ("provider", &a.provider),
            ] {
                if let Some(v) = value {
                    path.push_str(&format!("&{name}={}", skyward_app::query::encode_value(v)));
                }
            }
            let v = get(&rt, &c, &path)?;
            match a.conn.output {
                Output::Json => outln!("{}", json(&v)?),
                Output::Table => {
                    let mut t = Table::new(&[
                        "id>",
                        "name",
                        "team",
                        "kind",
                        "state",
                        "exit>",
                        "site",
                        "acc>",
                        "attempt>",
                        "submitted",
                    ]);
                    for w in v["items"].as_array().into_iter().flatten() {
                        t.row(vec![
                            s(&w["id"]),
                            s(&w["name"]),
                            s(&w["team"]),
                            s(&w["kind"]),
                            s(&w["state"]),
                            s(&w["exit_code"]),
                            s(&w["site"]),
                            s(&w["accelerators"]),
                            s(&w["attempt"]),
                            ms_to_text(&w["submitted_at_ms"]),
                        ]);
                    }
                    if t.is_empty() {
                        outln!("no workloads");
                    } else {
                        out!("{}", t.render());
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn cancel(a: &IdArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let r = rt
        .block_on(c.request("POST", &format!("/v1/workloads/{}/cancel", a.id), None, &[]))
        .map_err(client_err)?;
    if r.status != 202 {
        return Err(api_err(&r));
    }
    let v = r.json().unwrap_or(Value::Null);
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => outln!(
            "cancel of workload {} requested (was {})",
            a.id,
            s(&v["state"])
        ),
    }
    Ok(())
}

pub fn logs(a: &LogsArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let mut offset: u64 = 0;
    loop {
        let r = rt
            .block_on(c.request(
                "GET",
                &format!("/v1/workloads/{}/logs?offset={offset}", a.id),
                None,
                &[],
            ))
            .map_err(client_err)?;
        if r.status != 200 {
            return Err(api_err(&r));
        }
        if !r.body.is_empty() {
            crate::write_stdout(&String::from_utf8_lossy(&r.body));
        }
        offset = r
            .header("skyward-next-offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(offset + r.body.len() as u64);
        let finished = r.header("skyward-finished") == Some("true");
        if !a.follow || (finished && r.body.is_empty()) {
            if a.follow {
                eprintln!(
                    "[workload {} {}]",
                    a.id,
                    r.header("skyward-state").unwrap_or("ended")
                );
            }
            return Ok(());
        }
        if r.body.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[derive(Args)]
pub struct ProfilesArgs {
    /// One class only (`team/name`).
    #[arg(long)]
    pub class: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct MetricArgs {
    /// The run's throughput (steps/s, tokens/s or samples/s: the same unit
    /// for every run of a class).
    pub throughput: String,
    #[arg(long, default_value = "")]
    pub unit: String,
}

/// `skyward metric`: the report line, on the run's own output.
pub fn metric(a: &MetricArgs) -> Result<(), CliError> {
    let v: f64 = a
        .throughput
        .trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x > 0.0)
        .ok_or_else(|| {
            CliError::Input(format!(
                "throughput: '{}' is not a positive number",
                a.throughput.chars().take(64).collect::<String>()
            ))
        })?;
    if a.unit.len() > 32 || !a.unit.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CliError::Input(
            "--unit: at most 32 printable characters, no spaces (for example tokens/s)".into(),
        ));
    }
    let unit = if a.unit.is_empty() {
        String::new()
    } else {
        format!(" unit={}", a.unit)
    };
    outln!(
        "{}throughput={v}{unit}",
        skyward_model::speed::REPORT_PREFIX
    );
    Ok(())
}

/// `skyward profiles`: `GET /v1/profiles` as a table.
pub fn profiles(a: &ProfilesArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let mut path = "/v1/profiles".to_string();
    if let Some(k) = &a.class {
        path.push_str(&format!("?class={}", skyward_app::query::encode_value(k)));
    }
    let v = get(&rt, &c, &path)?;
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let mut t = Table::new(&[
                "class",
                "alternative",
                "reports>",
                "rate>",
                "±1 sd",
                "unit",
                "source",
            ]);
            for p in v["items"].as_array().into_iter().flatten() {
                for e in p["estimates"].as_array().into_iter().flatten() {
                    let rate = e["rate"].as_f64().unwrap_or(0.0);
                    let sd = e["log_sd"].as_f64().unwrap_or(0.0);
                    t.row(vec![
                        s(&p["class"]),
                        s(&e["alternative"]),
                        s(&e["reports"]),
                        format!("{rate:.4}"),
                        format!("{:.4}–{:.4}", rate * (-sd).exp(), rate * sd.exp()),
                        s(&p["unit"]),
                        s(&e["source"]),
                    ]);
                }
            }
            if t.is_empty() {
                outln!(
                    "no run has reported its throughput yet (`skyward metric N --unit U` in a run)"
                );
            } else {
                out!("{}", t.render());
            }
        }
    }
    Ok(())
}

/// `skyward commitments`: `GET /v1/commitments` as a table.
pub fn commitments(a: &Conn) -> Result<(), CliError> {
    let c = connect(a)?;
    let rt = crate::cmd::ledger::runtime()?;
    let v = get(&rt, &c, "/v1/commitments")?;
    match a.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let usd = |x: &Value| {
                x.as_f64()
                    .and_then(skyward_model::Usd::from_f64_rounded)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "-".into())
            };
            match v["contracts_version"].as_i64() {
                Some(n) => outln!(
                    "live commitments from contracts v{n}, forecast from {} ({})",
                    s(&v["forecast_from"]),
                    if v["source"] == "scheduler" {
                        "what the scheduler uses now"
                    } else {
                        "computed from the store; this replica does not schedule"
                    }
                ),
                None => outln!(
                    "no contracts applied: placement is by price alone (`skyward contracts apply FILE --server URL`)"
                ),
            }
            if let Some(e) = v["error"].as_str() {
                outln!("warning: the stored contracts do not parse: {e}");
            }
            let mut t = Table::new(&[
                "commitment",
                "provider",
                "committed>",
                "burned>",
                "forecast P50>",
                "free now>",
                "discount>",
                "ends",
            ]);
            for x in v["commitments"].as_array().into_iter().flatten() {
                t.row(vec![
                    s(&x["name"]),
                    s(&x["provider"]),
                    usd(&x["commit"]),
                    usd(&x["burned"]),
                    usd(&x["forecast_burn"]),
                    usd(&x["free"]),
                    format!("{}%", s(&x["discount_pct"])),
                    s(&x["term_end"]),
                ]);
            }
            out!("{}", t.render());
            outln!("free now: billed spend on the provider that costs nothing at the margin (the forecast shortfall); placement fills it first, then competes at the discounted price");
        }
    }
    Ok(())
}

pub fn sites(a: &SitesArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    if a.events {
        let mut path = format!("/v1/sites/events?limit={}", a.limit.clamp(1, 1000));
        if let Some(s) = &a.site {
            path.push_str(&format!("&site={}", skyward_app::query::encode_value(s)));
        }
        let v = get(&rt, &c, &path)?;
        match a.conn.output {
            Output::Json => outln!("{}", json(&v)?),
            Output::Table => {
                let mut t = Table::new(&["time", "site", "event", "what happened"]);
                for e in v["items"].as_array().into_iter().flatten() {
                    t.row(vec![
                        ms_to_text(&e["at_ms"]),
                        s(&e["site"]),
                        s(&e["event"]),
                        s(&e["detail"]),
                    ]);
                }
                if t.is_empty() {
                    outln!("no site has gone down or been drilled");
                } else {
                    out!("{}", t.render());
                }
            }
        }
        return Ok(());
    }
    let v = get(&rt, &c, "/v1/sites")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let mut t = Table::new(&[
                "site",
                "provider",
                "region",
                "geo",
                "accelerator",
                "used>",
                "capacity>",
                "running>",
                "$/acc-h>",
                "basis",
                "up",
                "heard",
            ]);
            for x in v["items"].as_array().into_iter().flatten() {
                t.row(vec![
                    s(&x["name"]),
                    s(&x["provider"]),
                    s(&x["region"]),
                    s(&x["geography"]),
                    s(&x["accelerator"]),
                    s(&x["accelerators_used"]),
                    s(&x["accelerators"]),
                    s(&x["running"]),
                    x["price_usd_per_accelerator_hour"]
                        .as_f64()
                        .map(|p| format!("{p:.2}"))
                        .unwrap_or("-".into()),
                    s(&x["price_basis"]),
                    match x["up"].as_bool() {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "?".into(),
                    },
                    match x["last_heartbeat_ms"].as_i64() {
                        Some(t) => format!(
                            "{} ago",
                            skyward_executor::local::human_ms(
                                now_ms.saturating_sub(t).max(0) as u64
                            )
                        ),
                        None => "never".into(),
                    },
                ]);
            }
            out!("{}", t.render());
            if v["leader"] == Value::Bool(false) {
                eprintln!(
                    "note: this replica is not scheduling; usage columns come from the leader"
                );
            }
        }
    }
    Ok(())
}

pub fn queue(a: &ListArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let v = get(
        &rt,
        &c,
        &format!("/v1/queue?limit={}", a.limit.clamp(1, 1000)),
    )?;
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let mut t = Table::new(&["pos>", "id>", "name", "priority>", "why pending"]);
            for x in v["items"].as_array().into_iter().flatten() {
                let why: Vec<String> = x["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{} ({} site(s))", s(&r["reason"]), s(&r["sites"])))
                    .collect();
                t.row(vec![
                    s(&x["position"]),
                    s(&x["id"]),
                    s(&x["name"]),
                    s(&x["priority"]),
                    if why.is_empty() {
                        "waiting for the next cycle".into()
                    } else {
                        why.join("; ")
                    },
                ]);
            }
            if t.is_empty() {
                outln!("the queue is empty");
            } else {
                out!("{}", t.render());
            }
            if v["leader"] == Value::Bool(false) {
                eprintln!("note: this replica is not the leader; ask the leader for the queue");
            }
        }
    }
    Ok(())
}

pub fn usage(a: &UsageArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let format = a.format.unwrap_or(match a.conn.output {
        Output::Json => UsageFormat::Json,
        Output::Table => UsageFormat::Table,
    });
    if format == UsageFormat::Focus {
        let r = rt
            .block_on(c.request("GET", "/v1/usage?format=focus", None, &[]))
            .map_err(client_err)?;
        if r.status != 200 {
            return Err(api_err(&r));
        }
        crate::write_stdout(&String::from_utf8_lossy(&r.body));
        return Ok(());
    }
    // Page through everything (bounded by --limit per page).
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/usage?limit={}", a.limit.clamp(1, 1000));
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={cur}"));
        }
        let v = get(&rt, &c, &path)?;
        items.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    match format {
        UsageFormat::Json | UsageFormat::Focus => outln!("{}", json(&items)?),
        UsageFormat::Table => {
            let mut t = Table::new(&[
                "workload>",
                "attempt>",
                "site",
                "accelerator",
                "acc>",
                "acc-hours>",
                "cost $>",
                "basis",
            ]);
            let mut hours = 0.0;
            let mut cost = 0i64;
            for u in &items {
                hours += u["accelerator_hours"].as_f64().unwrap_or(0.0);
                cost += u["cost_micro_usd"].as_i64().unwrap_or(0);
                t.row(vec![
                    s(&u["workload_id"]),
                    s(&u["attempt"]),
                    s(&u["site"]),
                    s(&u["accelerator"]),
                    s(&u["accelerators"]),
                    format!("{:.4}", u["accelerator_hours"].as_f64().unwrap_or(0.0)),
                    format!(
                        "{:.4}",
                        u["cost_micro_usd"].as_i64().unwrap_or(0) as f64 / 1e6
                    ),
                    s(&u["price_basis"]),
                ]);
            }
            out!("{}", t.render());
            outln!(
                "{} run(s), {hours:.4} accelerator-hours, ${:.4}",
                items.len(),
                cost as f64 / 1e6
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct TokenRevokeArgs {
    /// The token's id (see `skyward token list`).
    pub id: u64,
    #[command(flatten)]
    pub conn: Conn,
}

/// `skyward token list`: every token, never their values (admin).
pub fn token_list(a: &TokenListArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let v = get(&rt, &c, "/v1/tokens")?;
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let mut t = Table::new(&[
                "id>", "name", "team", "scope", "created", "expires", "revoked",
            ]);
            for k in v["items"].as_array().into_iter().flatten() {
                t.row(vec![
                    s(&k["id"]),
                    s(&k["name"]),
                    s(&k["team"]),
                    s(&k["scope"]),
                    ms_to_text(&k["created_at_ms"]),
                    ms_to_text(&k["expires_at_ms"]),
                    ms_to_text(&k["revoked_at_ms"]),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

/// `skyward token revoke ID`: the token stops working at once.
pub fn token_revoke(a: &TokenRevokeArgs) -> Result<(), CliError> {
    let c = connect(&a.conn)?;
    let rt = crate::cmd::ledger::runtime()?;
    let r = rt
        .block_on(c.request("POST", &format!("/v1/tokens/{}/revoke", a.id), None, &[]))
        .map_err(client_err)?;
    if r.status != 200 {
        return Err(api_err(&r));
    }
    let v = r
        .json()
        .ok_or_else(|| CliError::Io("the server's answer is not JSON".into()))?;
    match a.conn.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => outln!(
            "revoked token {} '{}' (team {}, scope {})",
            s(&v["id"]),
            s(&v["name"]),
            s(&v["team"]),
            s(&v["scope"])
        ),
    }
    Ok(())
}

/// `1h 2m`, `3m 4s`, `5.2s`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}
