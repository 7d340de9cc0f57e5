//! `skyward ledger …`: the commitment ledger's edge. Files and the
//! database are touched here; the arithmetic lives in `skyward-ledger`.
#![allow(clippy::disallowed_methods)] // wall-clock time for import records and progress, at the edge

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use skyward_ledger::aggregate::describe_partition;
use skyward_store::Store;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Import billing data (FOCUS 1.0–1.3 CSV) into the ledger database.
    Import(ImportArgs),
    /// List what has been imported.
    Imports(DbArgs),
    /// Where each commitment stands: burn-down, forecast, utilisation, coverage.
    Status(StatusArgs),
    /// Headline vs effective economics of a spend commitment (or a what-if one).
    Analyze(AnalyzeArgs),
    /// How much to commit: hourly commitments (AWS's, Azure's and Skyward's methods side by side), or a spend commitment under discount tiers.
    Recommend(RecommendArgs),
    /// Write synthetic FOCUS 1.3 billing data (for trying the ledger, and benchmarks).
    Generate(GenerateArgs),
    /// Write Skyward's own usage as FOCUS 1.3 rows (a plan run for a period).
    Export(ExportArgs),
    /// An HTML report with charts: burn-down per commitment, utilisation, recommendations.
    Report(ReportArgs),
    /// How each recommendation method would have done on the stored history
    /// (rolling origin: recommend at each month, realise on what followed).
    Backtest(BacktestArgs),
    /// Every commitment (contracts and those only in the data) by end date:
    /// what it costs, what renewing would cost, the gap its end would open.
    Inventory(StatusArgs),
    /// Usage cost by billing account, provider, service, region, SKU, SKU
    /// family or tag, with commitments shown back to the usage that used them.
    Breakdown(BreakdownArgs),
    /// Compare terms and payment options (1 or 3 years; no, partial or all
    /// upfront) by NPV, and laddering the purchase in tranches.
    Options(OptionsArgs),
}

#[derive(Args)]
pub struct OptionsArgs {
    /// Provider whose on-demand usage the commitment covers.
    #[arg(long)]
    pub provider: String,
    /// Options to compare, as YEARS:PAYMENT:DISCOUNT_PCT (PAYMENT none,
    /// partial or all), e.g. 1:none:28 3:all:52. Repeat or comma-separate.
    #[arg(long = "option", value_delimiter = ',', required = true)]
    pub options: Vec<String>,
    /// On-demand $/h to cover (default: Skyward's recommendation at the
    /// first option's discount).
    #[arg(long)]
    pub covers_usd_per_hour: Option<f64>,
    /// Yearly rate to discount cash flows, percent.
    #[arg(long, default_value_t = 8.0)]
    pub discount_rate_pct: f64,
    /// Also buy in N equal tranches, one every M months: NxM (e.g. 4x3).
    #[arg(long)]
    pub ladder: Option<String>,
    #[arg(long, default_value_t = 200)]
    pub scenarios: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Commitments owned (default: the stored contracts): usage they cover
    /// is not available to the new one.
    #[arg(long)]
    pub contracts: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct BreakdownArgs {
    /// account, provider, service, region, sku, sku-family or tag:KEY.
    #[arg(long)]
    pub by: String,
    /// First day (default: 30 days before --to), or `month`: month to
    /// date (from the first day of the month of --to's last day).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Day after the last (default: the day after the last imported charge).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this provider.
    #[arg(long)]
    pub provider: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct BacktestArgs {
    /// Provider whose on-demand usage to cover.
    #[arg(long)]
    pub provider: String,
    /// Discount of the hourly instrument, percent.
    #[arg(long)]
    pub discount_pct: f64,
    /// Hours each recommendation is realised over, in days.
    #[arg(long, default_value_t = 90)]
    pub horizon_days: u32,
    /// Days between origins.
    #[arg(long, default_value_t = 30)]
    pub step_days: u32,
    /// History before the first origin, days.
    #[arg(long, default_value_t = 60)]
    pub min_history_days: u32,
    #[arg(long, value_delimiter = ',', default_values_t = vec![7u32, 30, 60])]
    pub lookback_days: Vec<u32>,
    #[arg(long, default_value_t = 100)]
    pub scenarios: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Commitments owned (default: the stored contracts): the history is
    /// net of what they cover.
    #[arg(long)]
    pub contracts: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A contracts file (default: the contracts stored by `skyward contracts apply`).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    #[arg(long, value_name = "DATE")]
    pub at: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Focus,
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::Focus)]
    pub format: ExportFormat,
    /// The fleet whose plan to write as usage (its workloads run from --start for their hours).
    #[arg(long, value_name = "FLEET")]
    pub from_plan: PathBuf,
    /// When the plan's workloads start (YYYY-MM-DD or a UTC date-time).
    #[arg(long)]
    pub start: String,
    /// BillingAccountId to write.
    #[arg(long, default_value = "skyward")]
    pub account: String,
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Output file.
    #[arg(long, short = 'O', value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RecommendArgs {
    /// Provider whose on-demand usage to cover (aws, azure, gcp, …).
    #[arg(long)]
    pub provider: String,
    /// Discount of the hourly instrument, percent (e.g. 28 for a 1-year Compute SP).
    #[arg(long, required_unless_present = "discount_tiers")]
    pub discount_pct: Option<f64>,
    /// Size a spend commitment (EDP/PPA/MACC) instead, from a price sheet of
    /// MIN_COMMIT_USD:DISCOUNT_PCT tiers, e.g. 1e6:5,1e7:8,5e7:12.
    #[arg(long, value_delimiter = ',', conflicts_with = "discount_pct")]
    pub discount_tiers: Option<Vec<String>>,
    #[arg(long, default_value_t = 1)]
    pub term_years: u32,
    /// Lookback windows for the AWS and Azure methods, days.
    #[arg(long, value_delimiter = ',', default_values_t = vec![7u32, 30, 60])]
    pub lookback_days: Vec<u32>,
    /// Yearly demand growth for the scenarios, percent (default: measured
    /// year over year when there is more than a year of history, else none).
    #[arg(long)]
    pub growth_pct: Option<f64>,
    /// Demand scenarios for Skyward's method and for evaluating every method.
    #[arg(long, default_value_t = 200)]
    pub scenarios: usize,
    /// Commitments already owned (default: the stored contracts):
    /// recommendations are net of what they cover, and of their expiry
    /// (usage comes back when they end). Commitments whose rows are in the
    /// data are always netted.
    #[arg(long)]
    pub contracts: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Contract name in --contracts (omit with --what-if).
    pub contract: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// Analyze a proposed commitment instead: needs --provider, --commit-usd, --term-years, --discount-pct.
    #[arg(long)]
    pub what_if: bool,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub commit_usd: Option<f64>,
    #[arg(long)]
    pub term_years: Option<u32>,
    #[arg(long)]
    pub discount_pct: Option<f64>,
    /// Start of the what-if term (default: the day after the last imported charge).
    #[arg(long)]
    pub start: Option<String>,
    /// Annual discount rate for net present values, percent.
    #[arg(long, default_value_t = 8.0)]
    pub discount_rate_pct: f64,
    /// Yearly demand growth applied to the projection, percent.
    #[arg(long, default_value_t = 0.0)]
    pub growth_pct: f64,
    #[arg(long, value_name = "DATE")]
    pub at: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// First day (YYYY-MM-DD).
    #[arg(long, default_value = "2026-01-01")]
    pub start: String,
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Usage rows per SKU per hour (4 SKUs over 3 providers).
    #[arg(long, default_value_t = 2)]
    pub rows_per_hour: u32,
    /// Yearly demand growth, percent.
    #[arg(long, default_value_t = 20.0)]
    pub growth_pct: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output file.
    #[arg(long, short = 'O', value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    /// A contracts file (see examples/contracts.yaml; default: the contracts
    /// stored by `skyward contracts apply`; without any, the commitments
    /// found in the data).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// Status as of this date (YYYY-MM-DD; default: the day after the last imported charge).
    #[arg(long, value_name = "DATE")]
    pub at: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Clone)]
pub struct DbArgs {
    /// Ledger database: a file (default: $SKYWARD_DB, else
    /// $XDG_DATA_HOME/skyward/skyward.db, else ~/.local/share/skyward/skyward.db;
    /// a server's own database file works too), or a postgres:// URL.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Ask a Skyward server instead (its database holds the ledger beside
    /// the work; it answers with its stored contracts).
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub server: Option<String>,
    /// API token for --server (default: $SKYWARD_TOKEN, else the admin
    /// token `skyward up` wrote).
    #[arg(long, value_name = "TOKEN", requires = "server")]
    pub token: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LedgerFormat {
    Focus,
}

#[derive(Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = LedgerFormat::Focus)]
    pub format: LedgerFormat,
    /// Provider for files without a ProviderName/ServiceProviderName column.
    #[arg(long)]
    pub provider: Option<String>,
    /// The file supersedes the billing periods (per provider and billing
    /// account) it has rows in (a newer export of them).
    #[arg(long, conflicts_with = "append")]
    pub replace: bool,
    /// The file is another part of an export already stored: add it up.
    /// Without either flag, a file whose rows are new adds up and a file
    /// whose rows are already stored is refused.
    #[arg(long)]
    pub append: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn db_path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SKYWARD_DB").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("skyward/skyward.db"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/skyward/skyward.db")),
        None => Err(CliError::Input(
            "no database location: pass --db PATH or set SKYWARD_DB".into(),
        )),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the runtime: {e}")))
}

impl DbArgs {
    /// The server client when --server is given.
    pub fn server_client(&self) -> Result<Option<skyward_server::client::Client>, CliError> {
        match &self.server {
            None => Ok(None),
            Some(url) => crate::cmd::client::connect_to(url, self.token.clone()).map(Some),
        }
    }
}

pub fn run(c: &LedgerCommand) -> Result<(), CliError> {
    match c {
        LedgerCommand::Import(a) => import(a),
        LedgerCommand::Imports(a) => imports(a),
        LedgerCommand::Status(a) => status(a),
        LedgerCommand::Generate(a) => generate(a).map(|_| ()),
        LedgerCommand::Analyze(a) => analyze(a),
        LedgerCommand::Recommend(a) => recommend(a),
        LedgerCommand::Export(a) => export(a),
        LedgerCommand::Report(a) => report(a),
        LedgerCommand::Backtest(a) => backtest(a),
        LedgerCommand::Inventory(a) => inventory(a),
        LedgerCommand::Breakdown(a) => breakdown(a),
        LedgerCommand::Options(a) => options(a),
    }
}

#[derive(Serialize)]
struct ImportReport {
    #[serde(flatten)]
    imported: skyward_app::ledger::Imported,
    /// Where it went: a database file or URL, or the server.
    db: String,
    rows_per_second: f64,
    peak_rss_mib: f64,
}

fn import(a: &ImportArgs) -> Result<(), CliError> {
    let shown = a.file.display().to_string();
    let t0 = Instant::now();
    let mode = if a.replace {
        skyward_store::ImportMode::Replace
    } else if a.append {
        skyward_store::ImportMode::Append
    } else {
        skyward_store::ImportMode::Auto
    };
    let rt = runtime()?;
    let (imported, place) = match a.db.server_client()? {
        Some(c) => {
            let mut path = format!(
                "/v1/ledger/imports?name={}&mode={}",
                percent(&shown),
                match mode {
                    skyward_store::ImportMode::Replace => "replace",
                    skyward_store::ImportMode::Append => "append",
                    skyward_store::ImportMode::Auto => "auto",
                }
            );
            if let Some(p) = &a.provider {
                path.push_str(&format!("&provider={}", percent(p)));
            }
            eprintln!("uploading {shown} to {} …", c.base());
            let r = rt
                .block_on(c.upload(
                    &path,
                    &a.file,
                    "text/csv",
                    std::time::Duration::from_secs(3_600),
                ))
                .map_err(crate::cmd::client::client_err)?;
            if r.status != 200 && r.status != 201 {
                return Err(crate::cmd::client::api_err(&r));
            }
            let imported: skyward_app::ledger::Imported = serde_json::from_slice(&r.body)
                .map_err(|e| CliError::Io(format!("the server's answer: {e}")))?;
            (imported, c.base().to_string())
        }
        None => {
            let db = db_path(a.db.db.as_deref())?;
            let f =
                std::fs::File::open(&a.file).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
            let folded = skyward_app::ledger::fold(f, &shown, a.provider.as_deref(), |rows| {
                eprintln!(
                    "  {rows} rows read ({:.0} rows/s) …",
                    rows as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                )
            })?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let imported = rt.block_on(async {
                let store = Store::open(&db).await?;
                Ok::<_, CliError>(skyward_app::ledger::store(&store, folded, mode, now).await?)
            })?;
            (imported, db.display().to_string())
        }
    };
    // Importing the same content again is a no-op, not a failure:
    // pipelines that re-run an import must not break.
    if imported.already_imported {
        eprintln!("{}", imported.message.clone().unwrap_or_default());
        if a.db.output == Output::Json {
            outln!(
                "{}",
                json(&serde_json::json!({"file": shown, "already_imported": true}))?
            );
        }
        return Ok(());
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let report = ImportReport {
        rows_per_second: (imported.rows as f64 / secs).round(),
        peak_rss_mib: crate::cmd::bench::peak_rss_mib(),
        db: place,
        imported,
    };
    let out = &report.imported;
    match a.db.output {
        Output::Json => outln!("{}", json(&report)?),
        Output::Table => {
            outln!(
                "imported {} rows from {} as import #{} into {} ({} buckets, {:.0} rows/s)",
                out.rows,
                shown,
                out.import_id.unwrap_or(0),
                report.db,
                out.buckets,
                report.rows_per_second
            );
            // A long list (years of monthly periods) shows its ends and
            // its count; `-o json` has every one.
            let describe = |ps: &[String]| {
                let all: Vec<String> = ps.iter().map(|p| describe_partition(p)).collect();
                if all.len() <= 6 {
                    return all.join(", ");
                }
                format!(
                    "{}, … {}, {} ({} billing periods)",
                    all[..2].join(", "),
                    all.len() - 3,
                    all[all.len() - 1],
                    all.len()
                )
            };
            outln!("periods: {}", describe(&out.partitions));
            if !out.replaced.is_empty() {
                outln!("replaced: {}", describe(&out.replaced));
            }
            if !out.appended.is_empty() {
                outln!(
                    "added as another part of: {} (none of its rows were stored)",
                    describe(&out.appended)
                );
            }
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            if out.warnings_total > out.warnings.len() as u64 {
                eprintln!(
                    "warning: … {} more",
                    out.warnings_total - out.warnings.len() as u64
                );
            }
            let unbalanced = out
                .commitments
                .iter()
                .filter(|c| c.balanced == Some(false))
                .count();
            if !out.commitments.is_empty() {
                outln!("{} commitment discounts seen; {} unbalanced (usage EffectiveCost ≠ purchase BilledCost)", out.commitments.len(), unbalanced);
            }
            if !out.list_cost_mismatch_lines.is_empty() {
                let shown_lines: Vec<String> = out
                    .list_cost_mismatch_lines
                    .iter()
                    .take(10)
                    .map(|l| l.to_string())
                    .collect();
                outln!("warning: {} rows where ListCost ≠ ListUnitPrice × PricingQuantity (lines {}{})", out.list_cost_mismatch_lines.len(), shown_lines.join(", "), if out.list_cost_mismatch_lines.len() > 10 { ", …" } else { "" });
            }
        }
    }
    Ok(())
}

/// Percent-encodes a query value.
pub fn percent(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn imports(a: &DbArgs) -> Result<(), CliError> {
    let rt = runtime()?;
    let (list, db): (Vec<skyward_store::ImportRecord>, String) = match a.server_client()? {
        Some(c) => {
            let v = crate::cmd::client::get(&rt, &c, "/v1/ledger/imports")?;
            (
                serde_json::from_value(v["items"].clone())
                    .map_err(|e| CliError::Io(format!("the server's answer: {e}")))?,
                c.base().to_string(),
            )
        }
        None => {
            let db = db_path(a.db.as_deref())?;
            let list = rt.block_on(async { Store::open(&db).await?.imports().await })?;
            (list, db.display().to_string())
        }
    };
    match a.output {
        Output::Json => outln!("{}", json(&list)?),
        Output::Table => {
            let mut t = Table::new(&["ID>", "FILE", "ROWS>", "BUCKETS>", "REPLACED", "SHA-256"]);
            for i in &list {
                t.row(vec![
                    i.id.to_string(),
                    i.file_name.clone(),
                    i.rows.to_string(),
                    i.buckets.to_string(),
                    i.replaced.clone(),
                    i.sha256[..16].to_string(),
                ]);
            }
            out!("{}", t.render());
            eprintln!("({} imports in {})", list.len(), db);
        }
    }
    Ok(())
}

pub fn load_contracts(path: &Path) -> Result<Vec<skyward_ledger::contracts::Contract>, CliError> {
    let (shown, text) = crate::cmd::contracts::read_file(path)?;
    Ok(skyward_spec::contracts::parse(&text, &shown)?)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "-".into())
}

/// The date a ledger command works at: `--at` when given, else the day
/// after the last imported charge (`skyward_app::ledger::resolve_at`),
/// naming the database when there is no data.
pub fn resolve_at(
    at: Option<&str>,
    last: Option<i64>,
    db: &Path,
) -> Result<skyward_ledger::Timestamp, CliError> {
    if at.is_none() && last.is_none() {
        return Err(CliError::Input(format!(
            "no billing data in {}: run `skyward ledger import FILE` first, or pass --at",
            db.display()
        )));
    }
    skyward_app::ledger::resolve_at(at, last).map_err(|e| CliError::Input(format!("--{e}")))
}

fn status(a: &StatusArgs) -> Result<(), CliError> {
    use skyward_ledger::status::ContractStatus;
    let rt = runtime()?;
    let (st, place) = match a.db.server_client()? {
        Some(c) => {
            if a.contracts.is_some() {
                return Err(CliError::Input(
                    "--contracts with --server: the server reads its stored contracts; store them with `skyward contracts apply FILE --server URL`".into(),
                ));
            }
            let mut path = "/v1/ledger/status".to_string();
            if let Some(at) = &a.at {
                path.push_str(&format!("?at={}", percent(at)));
            }
            let v = crate::cmd::client::get(&rt, &c, &path)?;
            let st: skyward_app::ledger::Status = serde_json::from_value(v)
                .map_err(|e| CliError::Io(format!("the server's answer: {e}")))?;
            (st, c.base().to_string())
        }
        None => {
            let db = db_path(a.db.db.as_deref())?;
            let given = match &a.contracts {
                Some(p) => Some((load_contracts(p)?, p.display().to_string())),
                None => None,
            };
            let st = rt.block_on(async {
                let store = Store::open(&db).await?;
                Ok::<_, CliError>(
                    skyward_app::ledger::status(&store, given, a.at.as_deref()).await?,
                )
            })?;
            (st, db.display().to_string())
        }
    };
    let skyward_app::ledger::Status {
        at,
        contracts_source: source,
        contracts: report,
        commitments_in_data: found,
        notes: spread_notes,
    } = st;
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"at": at, "contracts_source": source, "contracts": report, "commitments_in_data": found, "notes": spread_notes})
            )?
        ),
        Output::Table => {
            outln!(
                "Ledger status at {} ({}; {} commitments in the data; data in {})\n",
                at,
                if report.is_empty() {
                    source.clone()
                } else {
                    format!("{} contracts from {source}", report.len())
                },
                found.len(),
                place
            );
            if !found.is_empty() {
                let mut t = Table::new(&[
                    "COMMITMENT IN THE DATA",
                    "PROVIDER",
                    "SEEN",
                    "PURCHASED>",
                    "USED>",
                    "UNUSED>",
                    "UTILISATION>",
                    "COVERAGE>",
                    "NET SAVINGS>",
                    "CONTRACT",
                    "ENDS",
                ]);
                for f in &found {
                    t.row(vec![
                        f.commitment_id.clone(),
                        f.provider.clone(),
                        format!("{}..{}", f.first_seen, f.last_seen),
                        f.purchased.to_string(),
                        f.used.to_string(),
                        f.unused.to_string(),
                        pct(f.utilisation),
                        pct(f.coverage),
                        f.net_savings.to_string(),
                        f.contract.clone().unwrap_or_else(|| "-".into()),
                        f.ends.clone().unwrap_or_else(|| "not in the data".into()),
                    ]);
                }
                outln!("{}", t.render());
            }
            let mut spend = Table::new(&[
                "SPEND COMMITMENT",
                "PROVIDER",
                "TERM",
                "COMMITTED>",
                "BURNED>",
                "BURNED %>",
                "VS STRAIGHT LINE>",
                "BURN/DAY>",
                "NEEDED/DAY>",
                "P10 AT END>",
                "P50 AT END>",
                "P90 AT END>",
                "EXP. SHORTFALL>",
                "P(SHORT)>",
                "SAVINGS RATE>",
            ]);
            let mut hourly = Table::new(&[
                "HOURLY COMMITMENT",
                "PROVIDER",
                "INSTRUMENT",
                "BASIS",
                "HOURS>",
                "FEE/H>",
                "COMMITTED>",
                "USED>",
                "UNUSED>",
                "UTILISATION>",
                "COVERAGE>",
                "NET SAVINGS>",
            ]);
            let mut capacity = Table::new(&[
                "CAPACITY COMMITMENT",
                "PROVIDER",
                "REGION",
                "SKU",
                "BASIS",
                "UNITS>",
                "HOURS>",
                "PAID>",
                "USED>",
                "UTILISATION>",
            ]);
            let mut floors = Vec::new();
            for r in &report {
                match r {
                    ContractStatus::Spend(s) => {
                        let f = s.forecast.as_ref();
                        spend.row(vec![
                            s.name.clone(),
                            s.provider.clone(),
                            format!(
                                "{}..{} (day {}/{})",
                                s.start, s.end, s.elapsed_days, s.term_days
                            ),
                            s.committed.to_string(),
                            s.burned.to_string(),
                            format!("{:.1}%", s.burned_pct),
                            s.vs_straight_line.to_string(),
                            s.burn_rate_per_day.to_string(),
                            s.required_per_day.to_string(),
                            f.map(|x| x.p10.to_string()).unwrap_or_else(|| "-".into()),
                            f.map(|x| x.p50.to_string()).unwrap_or_else(|| "-".into()),
                            f.map(|x| x.p90.to_string()).unwrap_or_else(|| "-".into()),
                            f.map(|x| x.expected_shortfall.to_string())
                                .unwrap_or_else(|| "-".into()),
                            f.map(|x| format!("{:.0}%", 100.0 * x.shortfall_probability))
                                .unwrap_or_else(|| "-".into()),
                            s.effective_savings_rate
                                .map(|v| format!("{:.1}%", 100.0 * v))
                                .unwrap_or_else(|| "-".into()),
                        ]);
                        for fl in &s.floors {
                            floors.push(format!(
                                "floor  {}: year {} ({}..{}) floor {}, burned {}{}{}",
                                s.name,
                                fl.year,
                                fl.year_start,
                                fl.year_end,
                                fl.floor,
                                fl.burned_in_year,
                                if fl.closed {
                                    format!(", closed {} short", fl.remaining_to_floor)
                                } else {
                                    format!(", {} to go", fl.remaining_to_floor)
                                },
                                fl.forecast_in_year
                                    .as_ref()
                                    .filter(|_| !fl.closed)
                                    .map(|x| format!(
                                        "; year burn P50 {}, expected gap at year end {} (P(short) {:.0}%)",
                                        x.p50,
                                        x.expected_shortfall,
                                        100.0 * x.shortfall_probability
                                    ))
                                    .unwrap_or_default()
                            ));
                        }
                        if s.shortfall_rule == skyward_ledger::contracts::ShortfallRule::Yearly {
                            floors.push(format!(
                                "note  {}: shortfall: yearly — each year's gap to its floor is billed at the year's end and counts toward the commitment; EXP. SHORTFALL is their sum plus the gap left at term end",
                                s.name
                            ));
                        }
                        if let Some(m) = f.and_then(|x| x.recurring_purchases_per_month) {
                            floors.push(format!(
                                "note  {}: recurring purchases projected as a schedule of {m}/month (not drawn as noise)",
                                s.name
                            ));
                        }
                    }
                    ContractStatus::Hourly(h) => hourly.row(vec![
                        h.name.clone(),
                        h.provider.clone(),
                        h.instrument.as_str().to_string(),
                        h.basis.to_string(),
                        h.hours.to_string(),
                        h.fee_per_hour.to_string(),
                        h.committed.to_string(),
                        h.used.to_string(),
                        h.unused.to_string(),
                        pct(h.utilisation),
                        pct(h.coverage),
                        h.net_savings
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]),
                    ContractStatus::Capacity(c) => capacity.row(vec![
                        c.name.clone(),
                        c.provider.clone(),
                        c.region.clone(),
                        c.sku.clone(),
                        c.basis.to_string(),
                        c.units.to_string(),
                        c.hours.to_string(),
                        c.paid.to_string(),
                        c.used
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "unknown".into()),
                        pct(c.utilisation),
                    ]),
                }
            }
            for t in [&spend, &hourly, &capacity] {
                if !t.is_empty() {
                    outln!("{}", t.render());
                }
            }
            for f in floors {
                outln!("{f}");
            }
            let mut definitions: Vec<&str> = report
                .iter()
                .filter_map(|r| match r {
                    ContractStatus::Hourly(h) => Some(h.coverage_definition.as_ref()),
                    _ => None,
                })
                .collect();
            definitions.sort();
            definitions.dedup();
            for d in definitions {
                outln!("coverage  {d}");
            }
            for n in &spread_notes {
                outln!("note  {n}");
            }
        }
    }
    Ok(())
}

pub const GENERATE_DAYS_MAX: u32 = 3_660;
pub const GENERATE_ROWS_PER_HOUR_MAX: u32 = 10_000;

pub fn generate(a: &GenerateArgs) -> Result<u64, CliError> {
    use skyward_ledger::generate::{write_focus, GenSettings};
    if a.days == 0
        || a.days > GENERATE_DAYS_MAX
        || a.rows_per_hour == 0
        || a.rows_per_hour > GENERATE_ROWS_PER_HOUR_MAX
    {
        return Err(CliError::Input(format!("--days must be 1..{GENERATE_DAYS_MAX} and --rows-per-hour 1..{GENERATE_ROWS_PER_HOUR_MAX}")));
    }
    if !(a.growth_pct.is_finite() && (-90.0..=1000.0).contains(&a.growth_pct)) {
        return Err(CliError::Input(
            "--growth-pct must be from -90 to 1000".into(),
        ));
    }
    let start = skyward_ledger::Timestamp::parse(&a.start)
        .map_err(|m| CliError::Input(format!("--start: {m}")))?;
    let shown = a.out.display().to_string();
    let tmp = a.out.with_extension("tmp-generate");
    let f =
        std::fs::File::create(&tmp).map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    let settings = GenSettings {
        start,
        days: a.days,
        rows_per_hour: a.rows_per_hour,
        growth_pct: a.growth_pct,
        seed: a.seed,
    };
    let t0 = Instant::now();
    let mut next = 1_000_000u64;
    let rows = write_focus(
        std::io::BufWriter::with_capacity(1 << 20, f),
        &settings,
        |n| {
            if n >= next {
                eprintln!(
                    "  {n} rows written ({:.0} rows/s) …",
                    n as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                );
                next += 1_000_000;
            }
        },
    )
    .map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    std::fs::rename(&tmp, &a.out).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    eprintln!(
        "wrote {rows} FOCUS rows ({} days from {}) to {shown}",
        a.days,
        start.date_string()
    );
    Ok(rows)
}

fn export(a: &ExportArgs) -> Result<(), CliError> {
    use skyward_ledger::export::{write_focus, Commitment, Pricing as P, UsageRecord};
    use skyward_model::Pricing;
    let start = skyward_ledger::Timestamp::parse(&a.start)
        .map_err(|m| CliError::Input(format!("--start: {m}")))?;
    if a.account.is_empty() || a.account.contains([',', '"', '\n']) {
        return Err(CliError::Input(
            "--account must be non-empty, without commas or quotes".into(),
        ));
    }
    let catalog = skyward_catalog::Catalog::load(a.catalog.as_deref())?;
    let shown = a.from_plan.display().to_string();
    let text =
        std::fs::read_to_string(&a.from_plan).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    let parsed = skyward_spec::parse(
        &text,
        &shown,
        &catalog,
        &skyward_spec::TaskDefaults { hours: None },
    )?;
    let fleet = parsed.fleet;
    let opts = skyward_placement::PlanOptions {
        explain: skyward_placement::ExplainScope::None,
        ..Default::default()
    };
    let plan = skyward_placement::plan(&fleet, &catalog, &opts);
    let to_amount =
        |u: skyward_model::Usd| skyward_ledger::Amount(i128::from(u.micros()) * 1_000_000);
    let mut records = Vec::new();
    for (w, pl) in fleet.workloads.iter().zip(&plan.placements) {
        let (Some(provider), Some(region), Some(sku), Some(pricing), Some(hours)) =
            (&pl.provider, &pl.region, &pl.sku, pl.pricing, pl.hours)
        else {
            continue;
        };
        let nodes = w.nodes_total().max(1);
        let per_node = match (&pl.pool, pricing) {
            // Reserved usage is listed at the SKU's on-demand price (what it
            // would have cost), else at the pool's rate when the catalog has
            // no on-demand price for it.
            (Some(pool), Pricing::Reserved) => catalog
                .by_sku(sku)
                .iter()
                .find(|o| &o.region.provider == provider && &o.region.region == region)
                .and_then(|o| o.on_demand_usd_per_hour)
                .or_else(|| {
                    fleet
                        .capacity
                        .iter()
                        .find(|c| &c.name == pool)
                        .map(|c| c.hourly_usd)
                })
                .unwrap_or(skyward_model::Usd::ZERO),
            _ => skyward_model::Usd::from_micros(
                pl.hourly_usd.unwrap_or_default().micros() / i64::from(nodes),
            ),
        };
        let discount = fleet
            .contracts
            .iter()
            .find(|c| &c.provider == provider)
            .map(|c| c.discount_pct)
            .unwrap_or(0.0);
        records.push(UsageRecord {
            provider: provider.clone(),
            region: region.clone(),
            sku: sku.clone(),
            resource: w.name.clone(),
            start,
            hours,
            nodes,
            list_per_node_hour: to_amount(per_node),
            pricing: match pricing {
                Pricing::OnDemand => P::OnDemand,
                Pricing::Spot => P::Spot,
                Pricing::Reserved => P::Reserved(pl.pool.clone().unwrap_or_default()),
            },
            discount_pct: discount,
            egress: to_amount(pl.egress_usd.unwrap_or_default()),
            egress_discount_pct: fleet
                .contracts
                .iter()
                .find(|c| Some(&c.provider) == w.data.as_ref().map(|d| &d.region.provider))
                .map(|c| c.discount_pct)
                .unwrap_or(0.0),
            egress_provider: w
                .data
                .as_ref()
                .map(|d| d.region.provider.clone())
                .unwrap_or_else(|| provider.clone()),
        });
    }
    // Every pool is held (and paid) over the plan's horizon: the longest
    // placed workload's hours.
    let horizon_hours = plan
        .reserved
        .first()
        .map(|r| r.horizon_hours)
        .unwrap_or(0.0)
        .ceil()
        .clamp(0.0, skyward_ledger::export::RECORD_HOURS_MAX) as u32;
    let commitments: Vec<Commitment> = fleet
        .capacity
        .iter()
        .map(|c| Commitment {
            id: c.name.clone(),
            provider: c.region.provider.clone(),
            region: c.region.region.clone(),
            sku: c.sku.clone(),
            units: c.nodes,
            rate_per_unit_hour: to_amount(c.hourly_usd),
        })
        .collect();
    let tmp = a.out.with_extension("tmp-export");
    let f =
        std::fs::File::create(&tmp).map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    let rows = write_focus(
        std::io::BufWriter::with_capacity(1 << 20, f),
        &records,
        &commitments,
        start,
        horizon_hours,
        &a.account,
    )
    .map_err(|e| CliError::Io(format!("{}: {e}", a.out.display())))?;
    std::fs::rename(&tmp, &a.out).map_err(|e| CliError::Io(format!("{}: {e}", a.out.display())))?;
    eprintln!(
        "wrote {rows} FOCUS rows for {} placed workloads of {shown} (list {}) to {}",
        records.len(),
        plan.list_cost_usd,
        a.out.display()
    );
    Ok(())
}

/// Contracts a question is net of, named where they came from.
type Given = Option<(Vec<skyward_ledger::contracts::Contract>, String)>;

/// Asks a question (`skyward_app`'s `q`) of the server at `--server`
/// (`GET path?q`) or of the local store with `local`; with where the
/// answer came from. `--contracts FILE` works locally only: a server
/// answers with its stored contracts.
fn ask<Q, R>(
    db: &DbArgs,
    path: &str,
    q: &Q,
    contracts: Option<&Path>,
    local: impl AsyncFnOnce(&Store, Given) -> Result<R, skyward_app::AppError>,
) -> Result<(R, String), CliError>
where
    Q: Serialize,
    R: serde::de::DeserializeOwned,
{
    let rt = runtime()?;
    match db.server_client()? {
        Some(c) => {
            if contracts.is_some() {
                return Err(CliError::Input(
                    "--contracts with --server: the server answers with its stored contracts; store them with `skyward contracts apply FILE --server URL`".into(),
                ));
            }
            let query = skyward_app::query::to_query(q)?;
            let v = crate::cmd::client::get(&rt, &c, &format!("{path}?{query}"))?;
            let r = serde_json::from_value(v)
                .map_err(|e| CliError::Io(format!("the server's answer: {e}")))?;
            Ok((r, c.base().to_string()))
        }
        None => {
            let dbp = db_path(db.db.as_deref())?;
            let given = match contracts {
                Some(p) => Some((load_contracts(p)?, p.display().to_string())),
                None => None,
            };
            let r = rt.block_on(async {
                let store = Store::open(&dbp).await?;
                Ok::<_, CliError>(local(&store, given).await?)
            })?;
            Ok((r, dbp.display().to_string()))
        }
    }
}

fn analyze(a: &AnalyzeArgs) -> Result<(), CliError> {
    let q = skyward_app::analyze::AnalyzeQuery {
        contract: a.contract.clone(),
        what_if: a.what_if,
        provider: a.provider.clone(),
        commit_usd: a.commit_usd,
        term_years: a.term_years,
        discount_pct: a.discount_pct,
        start: a.start.clone(),
        discount_rate_pct: Some(a.discount_rate_pct),
        growth_pct: Some(a.growth_pct),
        at: a.at.clone(),
    };
    let (r, _) = ask(
        &a.db,
        "/v1/ledger/analyze",
        &q,
        a.contracts.as_deref(),
        async |store, given| skyward_app::analyze::analyze(store, &q, given).await,
    )?;
    match a.db.output {
        Output::Json => outln!("{}", json(&r)?),
        Output::Table => render_analysis(&r),
    }
    Ok(())
}

fn render_analysis(r: &skyward_ledger::analyze::Analysis) {
    outln!(
        "{} ({}, {}..{}, as of {})",
        r.name,
        r.provider,
        r.start,
        r.end,
        r.at
    );
    let rows: Vec<(&str, String)> = vec![
        ("commitment (nominal)", r.committed.to_string()),
        ("discount", format!("{}%", r.discount_pct)),
        (
            "headline savings (all of it used)",
            r.headline_savings.to_string(),
        ),
        (
            "commitment NPV",
            format!("{} at {}%/year", r.commitment_npv, r.discount_rate_pct),
        ),
        (
            "break-even",
            format!(
                "list spend of {} = burning {:.1}% of the commitment",
                r.break_even_list_spend, r.break_even_burn_pct
            ),
        ),
        ("list spend to date", r.list_spend_to_date.to_string()),
        (
            "burned / projected burn P50 at end",
            format!(
                "{} / {} (the figures `ledger status` shows)",
                r.burned, r.projected_burn_p50
            ),
        ),
        (
            "shortfall rule",
            match r.shortfall_rule {
                skyward_ledger::contracts::ShortfallRule::TermEnd => {
                    "term-end: the gap to the total is billed at the end".to_string()
                }
                skyward_ledger::contracts::ShortfallRule::Yearly => {
                    "yearly: each year's gap to its floor is billed at the year's end".to_string()
                }
            },
        ),
        (
            "projected list spend P10 / P50 / P90",
            format!(
                "{} / {} / {}",
                r.projected_list_spend_p10, r.projected_list_spend_p50, r.projected_list_spend_p90
            ),
        ),
        (
            "expected shortfall",
            format!(
                "{} (probability {:.0}%)",
                r.expected_shortfall,
                100.0 * r.shortfall_probability
            ),
        ),
        (
            "expected savings",
            format!(
                "{} (probability of a loss {:.0}%)",
                r.expected_savings,
                100.0 * r.loss_probability
            ),
        ),
        (
            "effective discount",
            r.effective_discount_pct
                .map(|v| format!("{v:.2}% (headline {}%)", r.discount_pct))
                .unwrap_or_else(|| "-".into()),
        ),
        ("expected savings NPV", r.expected_savings_npv.to_string()),
        (
            "projection basis",
            format!(
                "{} days of {}, {}%/year growth, 2,000 bootstrap paths{}",
                r.history_days,
                match r.basis {
                    skyward_ledger::projection::Basis::BurnSinceStart => "burn since the start",
                    skyward_ledger::projection::Basis::ListBeforeStart => {
                        "eligible list spend before the start at the deal's discount"
                    }
                },
                r.growth_pct,
                r.recurring_purchases_per_month
                    .map(|m| format!("; recurring purchases as a schedule of {m}/month"))
                    .unwrap_or_default()
            ),
        ),
    ];
    for (k, v) in rows {
        outln!("  {k:<38} {v}");
    }
}

fn recommend(a: &RecommendArgs) -> Result<(), CliError> {
    use skyward_app::recommend::Advice;
    let q = skyward_app::recommend::RecommendQuery {
        provider: a.provider.clone(),
        discount_pct: a.discount_pct,
        discount_tiers: a.discount_tiers.clone().unwrap_or_default(),
        term_years: Some(a.term_years),
        lookback_days: Some(a.lookback_days.clone()),
        growth_pct: a.growth_pct,
        scenarios: Some(a.scenarios),
        seed: Some(a.seed),
    };
    let (advice, _) = ask(
        &a.db,
        "/v1/ledger/recommend",
        &q,
        a.contracts.as_deref(),
        async |store, given| skyward_app::recommend::recommend(store, &q, given).await,
    )?;
    if a.db.output == Output::Json {
        outln!("{}", json(&advice)?);
        return Ok(());
    }
    match &advice {
        Advice::Hourly(h) => render_hourly(h),
        Advice::Spend(s) => render_spend(s),
    }
    Ok(())
}

fn render_hourly(h: &skyward_app::recommend::HourlyAdvice) {
    outln!(
        "Hourly commitment for {}: {} hours of on-demand history (mean {}/h), {}% discount, {}-year term, {} scenarios; {}\n",
        h.provider,
        h.history_hours,
        skyward_ledger::Amount::from_usd_f64(h.mean_on_demand_usd_per_hour),
        h.discount_pct,
        h.term_years,
        h.scenarios,
        h.demand_model_description
    );
    let mut t = Table::new(&[
        "METHOD",
        "LOOKBACK",
        "COVERS $/H>",
        "FEE $/H>",
        "LOOKBACK SAVINGS>",
        "EXPECTED TERM SAVINGS>",
        "P(LOSS)>",
        "UTILISATION>",
        "HOURS UNDERUSED>",
    ]);
    for r in &h.recommendations {
        t.row(vec![
            r.method.clone(),
            r.lookback_days
                .map(|d| format!("{d} days"))
                .unwrap_or_else(|| "scenarios".into()),
            r.covers_usd_per_hour.to_string(),
            r.fee_usd_per_hour.to_string(),
            r.lookback_savings
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.expected_term_savings.to_string(),
            format!("{:.0}%", 100.0 * r.loss_probability),
            format!("{:.1}%", 100.0 * r.expected_utilisation),
            format!("{:.1}%", r.hours_underused_pct),
        ]);
    }
    out!("{}", t.render());
    outln!("\ncovers: on-demand spend per hour the commitment pays for; fee: what it costs per hour (AWS and Azure quote this; GCP flexible CUDs quote covers).");
    outln!("Net of commitments whose rows are in the data (their usage is not on-demand), and of the contracts owned.");
    for o in &h.net_of {
        outln!(
            "Net of {}: covered {}/h over the last 30 days; ends {}{}",
            o.name,
            skyward_ledger::Amount::from_usd_f64(o.covers_usd_per_hour_recent_mean),
            o.ends.as_deref().unwrap_or("?"),
            if o.expires_within_term {
                " (within the term: its usage comes back into the scenarios then)"
            } else {
                ""
            }
        );
    }
    if !h.not_netted.is_empty() {
        outln!(
            "Not netted (capacity commitments without rows in the data): {}",
            h.not_netted.join(", ")
        );
    }
}

fn render_spend(s: &skyward_app::recommend::SpendAdvice) {
    outln!(
        "Spend commitment for {}: {} days of history, projected list spend over {} years P50 {}{}\n",
        s.provider,
        s.history_days,
        s.term_years,
        s.projected_list_spend_p50,
        if s.growth_pct != 0.0 {
            format!(" ({}%/year growth)", s.growth_pct)
        } else {
            String::new()
        }
    );
    let mut t = Table::new(&[
        "",
        "COMMIT>",
        "DISCOUNT>",
        "EXPECTED SAVINGS>",
        "EXPECTED SHORTFALL>",
        "P(SHORTFALL)>",
    ]);
    for o in &s.options {
        t.row(vec![
            if o.best { "*".into() } else { String::new() },
            o.commit_usd.to_string(),
            format!("{}%", o.discount_pct),
            o.expected_savings.to_string(),
            o.expected_shortfall.to_string(),
            format!("{:.0}%", 100.0 * o.shortfall_probability),
        ]);
    }
    out!("{}", t.render());
    outln!("\n* the commitment with the greatest expected savings over {} demand paths (seeded bootstrap of the last 91 days).", s.paths);
}

fn report(a: &ReportArgs) -> Result<(), CliError> {
    let q = skyward_app::breakdown::AtQuery { at: a.at.clone() };
    let rt = runtime()?;
    let html = match a.db.server_client()? {
        Some(c) => {
            if a.contracts.is_some() {
                return Err(CliError::Input(
                    "--contracts with --server: the server answers with its stored contracts; store them with `skyward contracts apply FILE --server URL`".into(),
                ));
            }
            let path = format!("/v1/ledger/report?{}", skyward_app::query::to_query(&q)?);
            let r = rt
                .block_on(c.request("GET", &path, None, &[]))
                .map_err(crate::cmd::client::client_err)?;
            if r.status != 200 {
                return Err(crate::cmd::client::api_err(&r));
            }
            r.body.to_vec()
        }
        None => {
            let db = db_path(a.db.db.as_deref())?;
            let given = match &a.contracts {
                Some(p) => Some((load_contracts(p)?, p.display().to_string())),
                None => None,
            };
            let place = db.display().to_string();
            rt.block_on(async {
                let store = Store::open(&db).await?;
                Ok::<_, CliError>(skyward_app::report::page(&store, &q, given, &place).await?)
            })?
            .into_bytes()
        }
    };
    let tmp = a.html.with_extension("tmp-report");
    std::fs::write(&tmp, html).map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &a.html)
        .map_err(|e| CliError::Io(format!("{}: {e}", a.html.display())))?;
    eprintln!("wrote {}", a.html.display());
    Ok(())
}

fn breakdown(a: &BreakdownArgs) -> Result<(), CliError> {
    let q = skyward_app::breakdown::BreakdownQuery {
        by: a.by.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        provider: a.provider.clone(),
    };
    let (b, _) = ask(&a.db, "/v1/ledger/breakdown", &q, None, async |store, _| {
        skyward_app::breakdown::breakdown(store, &q).await
    })?;
    match a.db.output {
        Output::Json => outln!("{}", json(&b)?),
        Output::Table => {
            outln!(
                "Usage by {} from {} to {} (exclusive)\n",
                b.by,
                b.from,
                b.to
            );
            let mut t = Table::new(&[
                "GROUP",
                "LIST>",
                "BILLED>",
                "USED FEES + ON-DEMAND>",
                "UNUSED SHOWN BACK>",
                "COST>",
                "SHARE>",
                "COMMITMENT SAVINGS>",
                "SAVINGS VS LIST>",
            ]);
            for g in &b.groups {
                t.row(vec![
                    g.key.clone(),
                    g.list.to_string(),
                    g.billed.to_string(),
                    g.effective.to_string(),
                    g.allocated_unused.to_string(),
                    g.cost.to_string(),
                    format!("{:.1}%", 100.0 * g.share),
                    g.commitment_savings.to_string(),
                    g.savings.to_string(),
                ]);
            }
            out!("{}", t.render());
            outln!("\n{}", b.rule);
        }
    }
    Ok(())
}

fn options(a: &OptionsArgs) -> Result<(), CliError> {
    let q = skyward_app::recommend::OptionsQuery {
        provider: a.provider.clone(),
        options: a.options.clone(),
        covers_usd_per_hour: a.covers_usd_per_hour,
        discount_rate_pct: Some(a.discount_rate_pct),
        ladder: a.ladder.clone(),
        scenarios: Some(a.scenarios),
        seed: Some(a.seed),
    };
    let (o, _) = ask(
        &a.db,
        "/v1/ledger/options",
        &q,
        a.contracts.as_deref(),
        async |store, given| skyward_app::recommend::options(store, &q, given).await,
    )?;
    match a.db.output {
        Output::Json => outln!("{}", json(&o)?),
        Output::Table => {
            outln!(
                "Covering {}/h of {} on-demand, compared over {} year(s) (shorter terms renewed), cash flows discounted at {}%/year, {} scenarios\n",
                skyward_ledger::Amount::from_usd_f64(o.covers_usd_per_hour),
                o.provider,
                o.horizon_years,
                o.discount_rate_pct,
                o.scenarios
            );
            let mut t = Table::new(&[
                "OPTION",
                "EXPECTED NPV>",
                "NPV P10>",
                "NPV P90>",
                "P(NPV < 0)>",
            ]);
            for v in &o.options {
                t.row(vec![
                    v.label.clone(),
                    skyward_ledger::Amount::from_usd_f64(v.expected_npv).to_string(),
                    skyward_ledger::Amount::from_usd_f64(v.npv_p10).to_string(),
                    skyward_ledger::Amount::from_usd_f64(v.npv_p90).to_string(),
                    format!("{:.0}%", 100.0 * v.loss_probability),
                ]);
            }
            out!("{}", t.render());
            outln!("\nNPV: on-demand spend avoided minus what the commitment is paid, month by month. {}.", o.demand_model);
        }
    }
    Ok(())
}

fn inventory(a: &StatusArgs) -> Result<(), CliError> {
    let q = skyward_app::breakdown::AtQuery { at: a.at.clone() };
    let (inv, _) = ask(
        &a.db,
        "/v1/ledger/inventory",
        &q,
        a.contracts.as_deref(),
        async |store, given| skyward_app::breakdown::inventory(store, &q, given).await,
    )?;
    match a.db.output {
        Output::Json => outln!("{}", json(&inv)?),
        Output::Table => {
            outln!(
                "Commitments at {} by end date ({} from {} and the data)\n",
                inv.at,
                inv.commitments.len(),
                inv.contracts_source
            );
            let mut t = Table::new(&[
                "COMMITMENT",
                "KIND",
                "PROVIDER",
                "ENDS",
                "DAYS LEFT>",
                "TERM COST>",
                "RENEWAL (SAME TERMS)>",
                "UTILISATION>",
                "GAP IF IT ENDS /30 DAYS>",
            ]);
            let opt = |v: Option<skyward_ledger::Amount>| {
                v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
            };
            for i in &inv.commitments {
                t.row(vec![
                    i.name.clone(),
                    i.kind.clone(),
                    i.provider.clone(),
                    i.end.clone().unwrap_or_else(|| "not in the data".into()),
                    i.days_left
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    opt(i.term_cost),
                    opt(i.renewal_cost),
                    pct(i.utilisation),
                    opt(i.monthly_gap),
                ]);
            }
            out!("{}", t.render());
            outln!("\nGap: savings per 30 days that stop when it ends, at its recent rate. Utilisation of a spend commitment: the share burned.");
        }
    }
    Ok(())
}

/// The backtest's answer, and how long it took to get (measured here).
#[derive(Serialize)]
struct TimedBacktest {
    #[serde(flatten)]
    report: skyward_app::recommend::BacktestReport,
    seconds: f64,
}

fn backtest(a: &BacktestArgs) -> Result<(), CliError> {
    let q = skyward_app::recommend::BacktestQuery {
        provider: a.provider.clone(),
        discount_pct: a.discount_pct,
        horizon_days: Some(a.horizon_days),
        step_days: Some(a.step_days),
        min_history_days: Some(a.min_history_days),
        lookback_days: Some(a.lookback_days.clone()),
        scenarios: Some(a.scenarios),
        seed: Some(a.seed),
    };
    let t0 = Instant::now();
    let (report, _) = ask(
        &a.db,
        "/v1/ledger/backtest",
        &q,
        a.contracts.as_deref(),
        async |store, given| skyward_app::recommend::backtest(store, &q, given).await,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(&TimedBacktest {
                report,
                seconds: secs
            })?
        ),
        Output::Table => {
            let b = &report.backtest;
            outln!(
                "Backtest for {}: {} origins every {} days, each recommendation realised over the next {} days ({} hours of history; {:.1} s)\n",
                report.provider,
                b.origins,
                report.step_days,
                report.horizon_days,
                report.history_hours,
                secs
            );
            let mut t = Table::new(&[
                "METHOD",
                "LOOKBACK",
                "REALISED SAVINGS>",
                "HINDSIGHT OPTIMUM>",
                "% OF HINDSIGHT>",
                "IN P10-P90>",
                "P(LOSS) PREDICTED>",
                "LOSSES REALISED>",
                "UNDERUSED PREDICTED>",
                "UNDERUSED REALISED>",
            ]);
            for m in &b.methods {
                t.row(vec![
                    m.method.clone(),
                    m.lookback_days
                        .map(|d| format!("{d} days"))
                        .unwrap_or_else(|| "scenarios".into()),
                    m.realised_savings.to_string(),
                    m.hindsight_savings.to_string(),
                    m.pct_of_hindsight
                        .map(|v| format!("{v:.1}%"))
                        .unwrap_or_else(|| "-".into()),
                    format!("{:.0}%", 100.0 * m.band_coverage),
                    format!("{:.0}%", 100.0 * m.predicted_loss_probability),
                    format!("{:.0}%", 100.0 * m.realised_loss_share),
                    format!("{:.0}% of hours", m.predicted_underused_pct),
                    format!("{:.0}% of hours", m.realised_underused_pct),
                ]);
            }
            out!("{}", t.render());
            outln!("\nIN P10-P90: share of origins whose realised savings fell in the predicted band (80% if calibrated).");
            if let Some(m) = &b.last_model {
                outln!("Demand model at the last origin: {m}.");
            }
        }
    }
    Ok(())
}
