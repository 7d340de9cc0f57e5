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
    /// First day (default: 30 days before --to).
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
    /// Commitments already owned: recommendations are net of what they
    /// cover, and of their expiry (usage comes back when they end).
    /// Commitments whose rows are in the data are always netted.
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
    /// the work): import, imports, status and `skyward contracts`.
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

/// Commands that read a local database only refuse --server, saying
/// which do take it.
fn local_only(db: &DbArgs, what: &str) -> Result<(), CliError> {
    if db.server.is_some() {
        return Err(CliError::Input(format!(
            "`skyward ledger {what}` reads a ledger database directly (--db FILE, or --db postgres://…, which may be a server's own database); --server works with import, imports and status, and with `skyward contracts`"
        )));
    }
    Ok(())
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
        LedgerCommand::Analyze(a) => local_only(&a.db, "analyze")?,
        LedgerCommand::Recommend(a) => local_only(&a.db, "recommend")?,
        LedgerCommand::Report(a) => local_only(&a.db, "report")?,
        LedgerCommand::Backtest(a) => local_only(&a.db, "backtest")?,
        LedgerCommand::Inventory(a) => local_only(&a.db, "inventory")?,
        LedgerCommand::Breakdown(a) => local_only(&a.db, "breakdown")?,
        LedgerCommand::Options(a) => local_only(&a.db, "options")?,
        _ => {}
    }
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
            let describe = |ps: &[String]| {
                ps.iter()
                    .map(|p| describe_partition(p))
                    .collect::<Vec<_>>()
                    .join(", ")
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

/// Everything `status` and `report` read (`skyward_app::ledger::load`).
pub use skyward_app::ledger::LedgerData;

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

/// The ledger data for `contracts`, from the database at `db`.
pub fn load_for(
    contracts: &[skyward_ledger::contracts::Contract],
    db: &Path,
) -> Result<LedgerData, CliError> {
    runtime()?.block_on(async {
        let store = Store::open(db).await?;
        Ok(skyward_app::ledger::load(&store, contracts).await?)
    })
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

fn analyze(a: &AnalyzeArgs) -> Result<(), CliError> {
    use skyward_ledger::contracts::{Contract, Eligibility, ShortfallRule, SpendTerms, Terms};
    if !(a.discount_rate_pct.is_finite() && (0.0..=100.0).contains(&a.discount_rate_pct)) {
        return Err(CliError::Input(
            "--discount-rate-pct must be from 0 to 100".into(),
        ));
    }
    if !(a.growth_pct.is_finite() && (-90.0..=1000.0).contains(&a.growth_pct)) {
        return Err(CliError::Input(
            "--growth-pct must be from -90 to 1000".into(),
        ));
    }
    let db = db_path(a.db.db.as_deref())?;
    let rt = runtime()?;
    let (days, last) = rt.block_on(async {
        let store = Store::open(&db).await?;
        Ok::<_, skyward_store::StoreError>((
            store.daily(None, i64::MAX).await?,
            store.last_day().await?,
        ))
    })?;
    let default_at = resolve_at(None, last, &db)?;
    let contract = if a.what_if {
        let need = |v: Option<f64>, flag: &str| {
            v.ok_or_else(|| CliError::Input(format!("--what-if needs {flag}")))
        };
        let commit = need(a.commit_usd, "--commit-usd")?;
        let discount = need(a.discount_pct, "--discount-pct")?;
        let years = a
            .term_years
            .ok_or_else(|| CliError::Input("--what-if needs --term-years".into()))?;
        let provider = a
            .provider
            .clone()
            .ok_or_else(|| CliError::Input("--what-if needs --provider".into()))?
            .to_ascii_lowercase();
        let valid = commit.is_finite()
            && commit > 0.0
            && commit <= 1e15
            && discount.is_finite()
            && (0.0..100.0).contains(&discount)
            && (1..=20).contains(&years);
        if !valid {
            return Err(CliError::Input(
                "--commit-usd must be positive, --discount-pct in [0, 100), --term-years 1..20"
                    .into(),
            ));
        }
        let start = match &a.start {
            Some(s) => skyward_ledger::Timestamp::parse(s)
                .map_err(|m| CliError::Input(format!("--start: {m}")))?,
            None => default_at,
        };
        Contract {
            name: format!("what-if {provider} ${commit} {years}y {discount}%"),
            provider,
            start,
            end: start.plus_months(12 * i64::from(years)),
            terms: Terms::Spend(SpendTerms {
                commit: skyward_ledger::Amount::parse(&format!("{commit}"))
                    .map_err(|m| CliError::Input(format!("--commit-usd: {m}")))?,
                discount_pct: discount,
                floors: Vec::new(),
                shortfall: ShortfallRule::TermEnd,
                eligible: Eligibility::default(),
            }),
        }
    } else {
        let name = a
            .contract
            .as_ref()
            .ok_or_else(|| CliError::Input("which contract? give its name, or --what-if".into()))?;
        let (all, source) = crate::cmd::contracts::contracts_for(a.contracts.as_deref(), &db)?;
        all.into_iter().find(|c| c.name == *name).ok_or_else(|| {
            CliError::Input(format!("{source}: no contract named '{name}' (give --contracts FILE or run `skyward contracts apply FILE`)"))
        })?
    };
    let at = resolve_at(a.at.as_deref(), last, &db)?;
    let r =
        skyward_ledger::analyze::analyze(&contract, at, &days, a.discount_rate_pct, a.growth_pct)
            .map_err(|e| CliError::Input(e.to_string()))?;
    match a.db.output {
        Output::Json => outln!("{}", json(&r)?),
        Output::Table => {
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
                            "yearly: each year's gap to its floor is billed at the year's end"
                                .to_string()
                        }
                    },
                ),
                (
                    "projected list spend P10 / P50 / P90",
                    format!(
                        "{} / {} / {}",
                        r.projected_list_spend_p10,
                        r.projected_list_spend_p50,
                        r.projected_list_spend_p90
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
                            skyward_ledger::projection::Basis::BurnSinceStart => {
                                "burn since the start"
                            }
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
    }
    Ok(())
}

fn recommend(a: &RecommendArgs) -> Result<(), CliError> {
    use skyward_ledger::recommend::RecommendInput;
    if let Some(tiers) = &a.discount_tiers {
        return recommend_spend(a, tiers);
    }
    let discount_pct = a.discount_pct.unwrap_or(0.0);
    if !(discount_pct.is_finite() && discount_pct > 0.0 && discount_pct < 100.0) {
        return Err(CliError::Input(
            "--discount-pct must be above 0 and below 100".into(),
        ));
    }
    if !(1..=5).contains(&a.term_years)
        || a.lookback_days.is_empty()
        || a.lookback_days.iter().any(|d| !(1..=366).contains(d))
    {
        return Err(CliError::Input(
            "--term-years must be 1..5 and --lookback-days 1..366 each".into(),
        ));
    }
    let growth = a.growth_pct.unwrap_or(0.0);
    if !((1..=2_000).contains(&a.scenarios)
        && growth.is_finite()
        && (-90.0..=1000.0).contains(&growth))
    {
        return Err(CliError::Input(
            "--scenarios must be 1..2000 and --growth-pct -90..1000".into(),
        ));
    }
    let provider = a.provider.to_ascii_lowercase();
    let db = db_path(a.db.db.as_deref())?;
    let contracts = match &a.contracts {
        Some(p) => load_contracts(p)?,
        None => Vec::new(),
    };
    let netted = netted_history(&provider, &contracts, &db)?;
    let skipped = &netted.not_netted;
    let (hourly, existing) = (&netted.net, &netted.existing);
    let input = RecommendInput {
        hourly,
        existing,
        discount_pct,
        term_hours: a.term_years as usize * 8_760,
        lookbacks_days: &a.lookback_days,
        growth_pct: a.growth_pct,
        scenarios: a.scenarios,
        seed: a.seed,
    };
    let owned: Vec<serde_json::Value> = existing
        .iter()
        .map(|e| {
            let recent = &e.covered[e.covered.len().saturating_sub(30 * 24)..];
            let c = contracts.iter().find(|c| c.name == e.name);
            serde_json::json!({
                "name": e.name,
                "covers_usd_per_hour_recent_mean": recent.iter().sum::<f64>() / recent.len().max(1) as f64,
                "ends": c.map(|c| c.end.date_string()),
                "expires_within_term": e.expires_after_hours.is_some_and(|h| h < a.term_years as usize * 8_760),
            })
        })
        .collect();
    let (recs, model) = skyward_ledger::recommend::recommend_with_model(&input);
    let mean = hourly.iter().sum::<f64>() / hourly.len() as f64;
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"provider": provider, "history_hours": hourly.len(), "mean_on_demand_usd_per_hour": mean, "discount_pct": a.discount_pct, "term_years": a.term_years, "demand_model": model, "demand_model_description": model.describe(), "net_of": owned, "not_netted": skipped, "recommendations": recs})
            )?
        ),
        Output::Table => {
            outln!(
                "Hourly commitment for {provider}: {} hours of on-demand history (mean {}/h), {}% discount, {}-year term, {} scenarios{}\n",
                hourly.len(),
                skyward_ledger::Amount::from_usd_f64(mean),
                discount_pct,
                a.term_years,
                a.scenarios,
                format!("; {}", model.describe())
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
            for r in &recs {
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
            outln!("Net of commitments whose rows are in the data (their usage is not on-demand).");
            for o in &owned {
                outln!(
                    "Net of {}: covered {}/h over the last 30 days{}; ends {}{}",
                    o["name"].as_str().unwrap_or(""),
                    skyward_ledger::Amount::from_usd_f64(
                        o["covers_usd_per_hour_recent_mean"].as_f64().unwrap_or(0.0)
                    ),
                    "",
                    o["ends"].as_str().unwrap_or("?"),
                    if o["expires_within_term"].as_bool().unwrap_or(false) {
                        " (within the term: its usage comes back into the scenarios then)"
                    } else {
                        ""
                    }
                );
            }
            if !skipped.is_empty() {
                outln!(
                    "Not netted (capacity commitments without rows in the data): {}",
                    skipped.join(", ")
                );
            }
        }
    }
    Ok(())
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

fn report(a: &ReportArgs) -> Result<(), CliError> {
    use crate::report::{band_points, esc, money_short, status_rows, table, Chart, Series, STYLE};
    use skyward_ledger::contracts::Terms;
    use skyward_ledger::status::{band, burn_series, status as compute, ContractStatus};
    use std::fmt::Write as _;
    let db = db_path(a.db.db.as_deref())?;
    let (contracts, source) = crate::cmd::contracts::contracts_for(a.contracts.as_deref(), &db)?;
    let LedgerData {
        days,
        hours,
        last,
        imports,
        spread_notes,
    } = load_for(&contracts, &db)?;
    let at = resolve_at(a.at.as_deref(), last, &db)?;
    let now = at.day();
    let status = compute(&contracts, at, &days, &hours);
    let found = skyward_ledger::status::data_commitments(&contracts, at, &days);
    let inventory = skyward_ledger::inventory::inventory(&contracts, &status, &found, at, &days);
    let opt =
        |v: Option<skyward_ledger::Amount>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let pct1 = |v: Option<f64>| {
        v.map(|x| format!("{:.1}%", 100.0 * x))
            .unwrap_or_else(|| "-".into())
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Skyward ledger report {}</title><style>{STYLE}</style></head><body><h1>Skyward ledger report</h1><p>As of <b>{}</b>; {} contracts ({}); {} commitments in the data; {} imports ({} rows) in {}.</p>",
        at.date_string(),
        at.date_string(),
        contracts.len(),
        esc(&source),
        found.len(),
        imports.len(),
        imports.iter().map(|i| i.rows).sum::<i64>(),
        esc(&db.display().to_string())
    );
    for n in &spread_notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", esc(n));
    }
    html.push_str("<h2>Status</h2>");
    html.push_str(&status_rows(&status));
    html.push_str("<h2>Inventory and calendar</h2>");
    let rows: Vec<Vec<String>> = inventory
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.kind.clone(),
                i.provider.clone(),
                i.start.clone().unwrap_or_default(),
                i.end.clone().unwrap_or_else(|| "not in the data".into()),
                i.days_left
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(i.term_cost),
                opt(i.renewal_cost),
                pct1(i.utilisation),
                opt(i.monthly_gap),
            ]
        })
        .collect();
    html.push_str(&table(
        &[
            "commitment",
            "kind",
            "provider",
            "start",
            "ends",
            "days left>",
            "term cost>",
            "renewal (same terms)>",
            "utilisation / burned>",
            "gap if it ends ($/30 days)>",
        ],
        &rows,
    ));
    html.push_str("<p class=\"note\">Gap: the savings per 30 days that stop when it ends, at its recent rate (spend: last 30 days of eligible list spend × discount; hourly: net savings per hour so far × 720).</p>");
    for (c, st) in contracts.iter().zip(&status) {
        if let (Terms::Spend(t), ContractStatus::Spend(s)) = (&c.terms, st) {
            let (d0, d1) = (c.start.day(), c.end.day());
            let actual: Vec<(i64, f64)> = burn_series(c, at, &days)
                .into_iter()
                .map(|(d, v)| (d, v.as_f64()))
                .collect();
            let here = now.clamp(d0, d1);
            let b = band(c, at, &days, 7);
            let (area, p50) = band_points(here, &b);
            // Floors: by the end of year k, Σ floors of years 1..k, over the
            // whole term (years without a floor add nothing).
            let mut floor_pts = vec![(d0, 0.0)];
            let mut cum = 0.0;
            let mut k = 0i64;
            loop {
                let ye = c.start.plus_months(12 * (k + 1)).min(c.end).day();
                cum += t
                    .floors
                    .iter()
                    .find(|f| i64::from(f.year) == k + 1)
                    .map(|f| f.commit.as_f64())
                    .unwrap_or(0.0);
                floor_pts.push((ye, cum));
                k += 1;
                if ye >= d1 || k > 100 {
                    break;
                }
            }
            let make = |x0: i64, x1: i64, title: String| {
                let in_view = |v: &[(i64, f64)]| {
                    v.iter()
                        .filter(|(d, _)| *d >= x0 && *d <= x1)
                        .map(|x| x.1)
                        .fold(0.0, f64::max)
                };
                let line_at =
                    |d: i64| t.commit.as_f64() * (d - d0) as f64 / (d1 - d0).max(1) as f64;
                let mut series = vec![
                    Series {
                        name: "commitment".into(),
                        points: vec![(x0, t.commit.as_f64()), (x1, t.commit.as_f64())],
                        color: "#c0392b",
                        dash: true,
                    },
                    Series {
                        name: "straight line".into(),
                        points: vec![(x0, line_at(x0)), (x1, line_at(x1))],
                        color: "#888888",
                        dash: true,
                    },
                ];
                if !t.floors.is_empty() {
                    series.push(Series {
                        name: "floors (cumulative)".into(),
                        points: floor_pts.clone(),
                        color: "#e67e22",
                        dash: false,
                    });
                }
                series.push(Series {
                    name: "burned".into(),
                    points: actual.clone(),
                    color: "#1f5fa8",
                    dash: false,
                });
                series.push(Series {
                    name: "forecast P50".into(),
                    points: p50.clone(),
                    color: "#4a90d9",
                    dash: true,
                });
                let band_max = area
                    .iter()
                    .filter(|(d, _, _)| *d >= x0 && *d <= x1)
                    .map(|x| x.2)
                    .fold(0.0, f64::max);
                // The commitment sets the scale of the whole term; a recent
                // window is scaled to what it shows.
                let full = x0 == d0 && x1 == d1;
                let y_max = if full {
                    [t.commit.as_f64(), band_max, s.burned.as_f64()]
                        .into_iter()
                        .fold(1.0, f64::max)
                } else {
                    [in_view(&actual), band_max, line_at(x1), in_view(&p50)]
                        .into_iter()
                        .fold(1.0, f64::max)
                } * 1.05;
                Chart {
                    title,
                    x0,
                    x1,
                    y_max,
                    series,
                    band: area.clone(),
                    band_name: "forecast P10–P90".into(),
                    y_is_pct: false,
                    x_title: "date (UTC)".into(),
                    y_title: "cumulative eligible burn (USD)".into(),
                    hline: None,
                    now: Some(here),
                }
            };
            let full = make(
                d0,
                d1,
                format!("{} ({}): burn-down over the term", c.name, c.provider),
            );
            let recent = make(
                (here - 90).max(d0),
                (here + 180).min(d1).max(here + 1),
                format!("{}: last 90 days and next 180", c.name),
            );
            let _ = write!(
                html,
                "<h2>{}</h2><div class=\"pair\">{}{}</div><p class=\"note\">Burned {} of {} ({:.1}%); straight line {}; forecast at term end P10 {} / P50 {} / P90 {}; expected shortfall {} (P {:.0}%, rule: {}).</p>",
                esc(&c.name),
                full.svg(),
                recent.svg(),
                s.burned,
                s.committed,
                s.burned_pct,
                s.straight_line,
                s.forecast.as_ref().map(|f| money_short(f.p10.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| money_short(f.p50.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| money_short(f.p90.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| f.expected_shortfall.to_string()).unwrap_or_else(|| "-".into()),
                s.forecast.as_ref().map(|f| 100.0 * f.shortfall_probability).unwrap_or(0.0),
                match t.shortfall {
                    skyward_ledger::contracts::ShortfallRule::TermEnd => "term-end",
                    skyward_ledger::contracts::ShortfallRule::Yearly => "yearly",
                },
            );
        }
    }
    // Every commitment seen in the data: utilisation, coverage, unused cost.
    for f in &found {
        let d = skyward_ledger::status::commitment_days(&f.provider, &f.commitment_id, &days);
        if d.len() < 2 {
            continue;
        }
        let (x0, x1) = (d[0].day, d[d.len() - 1].day.max(d[0].day + 1));
        let name = f
            .contract
            .clone()
            .unwrap_or_else(|| f.commitment_id.clone());
        let util = Chart {
            title: format!("{name}: daily utilisation"),
            x0,
            x1,
            y_max: 100.0,
            series: vec![Series {
                name: "utilisation (Used ÷ Used + Unused)".into(),
                points: d
                    .iter()
                    .filter_map(|x| x.utilisation().map(|u| (x.day, 100.0 * u)))
                    .collect(),
                color: "#27ae60",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "date (UTC)".into(),
            y_title: "utilisation (%)".into(),
            hline: Some((100.0, "100 %".into())),
            now: None,
        };
        let cov = Chart {
            title: format!("{name}: daily coverage"),
            x0,
            x1,
            y_max: 100.0,
            series: vec![Series {
                name: "coverage (covered ÷ covered + on-demand)".into(),
                points: d
                    .iter()
                    .filter_map(|x| x.coverage().map(|u| (x.day, 100.0 * u)))
                    .collect(),
                color: "#8e44ad",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "date (UTC)".into(),
            y_title: "coverage (%)".into(),
            hline: Some((100.0, "100 %".into())),
            now: None,
        };
        let unused_pts: Vec<(i64, f64)> = d.iter().map(|x| (x.day, x.unused.as_f64())).collect();
        let unused = Chart {
            title: format!("{name}: unused commitment per day"),
            x0,
            x1,
            y_max: unused_pts.iter().map(|x| x.1).fold(1.0, f64::max) * 1.05,
            series: vec![Series {
                name: "unused (EffectiveCost of Unused rows)".into(),
                points: unused_pts,
                color: "#c0392b",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: false,
            x_title: "date (UTC)".into(),
            y_title: "unused cost (USD per day)".into(),
            hline: None,
            now: None,
        };
        let _ = write!(
            html,
            "<h2>{}</h2><div class=\"pair\">{}{}{}</div><p class=\"note\">Utilisation {}, coverage {}, unused {}, net savings {} over {}..{}.</p>",
            esc(&name),
            util.svg(),
            cov.svg(),
            unused.svg(),
            pct1(f.utilisation),
            pct1(f.coverage),
            f.unused,
            f.net_savings,
            f.first_seen,
            f.last_seen
        );
    }
    // Effective savings rate over time, per provider with usage.
    let providers: std::collections::BTreeSet<&str> = days
        .iter()
        .filter(|r| r.category == "Usage")
        .map(|r| r.provider.as_str())
        .collect();
    let mut rate_series = Vec::new();
    let colors = [
        "#1f5fa8", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085",
    ];
    for (k, p) in providers.iter().enumerate() {
        let pts: Vec<(i64, f64)> = skyward_ledger::status::savings_rate_weekly(p, &days)
            .into_iter()
            .map(|(w, r)| (w, 100.0 * r.max(0.0)))
            .collect();
        if pts.len() > 1 {
            rate_series.push(Series {
                name: (*p).to_string(),
                points: pts,
                color: colors[k % colors.len()],
                dash: false,
            });
        }
    }
    if !rate_series.is_empty() {
        let x0 = rate_series
            .iter()
            .filter_map(|s| s.points.first().map(|p| p.0))
            .min()
            .unwrap_or(0);
        let x1 = rate_series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0))
            .max()
            .unwrap_or(1);
        let y_max = rate_series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.1;
        let chart = Chart {
            title: "Effective savings rate by week (1 − effective cost ÷ list cost of usage)"
                .into(),
            x0,
            x1: x1.max(x0 + 1),
            y_max,
            series: rate_series,
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "week starting (UTC)".into(),
            y_title: "effective savings rate (%)".into(),
            hline: None,
            now: None,
        };
        let _ = write!(html, "<h2>Effective savings rate</h2>{}", chart.svg());
    }
    // Recommendations for each provider with an hourly commitment.
    let mut done = std::collections::BTreeSet::new();
    for c in &contracts {
        let Terms::Hourly(h) = &c.terms else { continue };
        if !done.insert(c.provider.clone()) {
            continue;
        }
        let netted =
            skyward_ledger::recommend::net_for_provider(&c.provider, &hours, &days, &contracts);
        if netted.gross.is_empty() {
            continue;
        }
        let input = skyward_ledger::recommend::RecommendInput {
            hourly: &netted.net,
            existing: &netted.existing,
            discount_pct: h.discount_pct,
            term_hours: 8_760,
            lookbacks_days: &[7, 30, 60],
            growth_pct: None,
            scenarios: 100,
            seed: 7,
        };
        let (recs, model) = skyward_ledger::recommend::recommend_with_model(&input);
        let rows: Vec<Vec<String>> = recs
            .iter()
            .map(|r| {
                vec![
                    r.method.clone(),
                    r.lookback_days
                        .map(|d| format!("{d} days"))
                        .unwrap_or_else(|| "scenarios".into()),
                    r.covers_usd_per_hour.to_string(),
                    r.fee_usd_per_hour.to_string(),
                    r.expected_term_savings.to_string(),
                    r.savings_p10.to_string(),
                    r.savings_p90.to_string(),
                    format!("{:.0}%", 100.0 * r.loss_probability),
                    format!("{:.1}%", 100.0 * r.expected_utilisation),
                    format!("{:.0}%", r.hours_underused_pct),
                ]
            })
            .collect();
        let _ = write!(
            html,
            "<h2>Recommended hourly commitment: {} ({}% discount, 1 year)</h2>{}",
            esc(&c.provider),
            h.discount_pct,
            table(
                &[
                    "method",
                    "lookback",
                    "covers $/h>",
                    "fee $/h>",
                    "expected savings>",
                    "savings P10>",
                    "savings P90>",
                    "P(loss)>",
                    "utilisation>",
                    "hours under-used>",
                ],
                &rows
            )
        );
        let names: Vec<String> = netted.existing.iter().map(|e| esc(&e.name)).collect();
        let _ = write!(
            html,
            "<p class=\"note\">Risk: savings P10–P90 and P(loss) over 100 demand scenarios ({}). Net of what existing commitments cover{}; usage a commitment covers comes back into the scenarios when it expires.</p>",
            esc(&model.describe()),
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
        );
    }
    html.push_str("<p class=\"note\">Generated by skyward ledger report: one self-contained page (inline SVG, no scripts, nothing fetched). Forecast bands: the status projection (circular 7-day blocks of the last 91 days of burn, recurring purchases as a schedule; 500 paths).</p></body></html>\n");
    let tmp = a.html.with_extension("tmp-report");
    std::fs::write(&tmp, html).map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &a.html)
        .map_err(|e| CliError::Io(format!("{}: {e}", a.html.display())))?;
    eprintln!("wrote {}", a.html.display());
    Ok(())
}

fn breakdown(a: &BreakdownArgs) -> Result<(), CliError> {
    use skyward_ledger::breakdown::{breakdown as compute, Dimension};
    let dim = Dimension::parse(&a.by).map_err(|m| CliError::Input(format!("--by: {m}")))?;
    let db = db_path(a.db.db.as_deref())?;
    let (days, last) = runtime()?.block_on(async {
        let store = Store::open(&db).await?;
        let last = store.last_day().await?;
        let provider = a.provider.as_deref().map(str::to_ascii_lowercase);
        Ok::<_, skyward_store::StoreError>((
            store.daily_detailed(provider.as_deref(), i64::MAX).await?,
            last,
        ))
    })?;
    let to = resolve_at(a.to.as_deref(), last, &db)?;
    let from = match &a.from {
        Some(d) => skyward_ledger::Timestamp::parse(d)
            .map_err(|m| CliError::Input(format!("--from: {m}")))?,
        None => to.plus_days(-30),
    };
    if from >= to {
        return Err(CliError::Input("--from must be before --to".into()));
    }
    let groups = compute(&days, &dim, from.day(), to.day());
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"by": a.by, "from": from.date_string(), "to": to.date_string(), "rule": SHOWBACK_RULE, "groups": groups})
            )?
        ),
        Output::Table => {
            outln!(
                "Usage by {} from {} to {} (exclusive)\n",
                a.by,
                from.date_string(),
                to.date_string()
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
            for g in &groups {
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
            outln!("\n{SHOWBACK_RULE}");
        }
    }
    Ok(())
}

fn options(a: &OptionsArgs) -> Result<(), CliError> {
    use skyward_ledger::options::{ladder, npv_paths, value, Payment, Term, MONTH_HOURS};
    let mut terms = Vec::new();
    for o in &a.options {
        let parts: Vec<&str> = o.split(':').collect();
        let parsed = match parts.as_slice() {
            [y, p, d] => match (y.parse::<u32>(), Payment::parse(p), d.parse::<f64>()) {
                (Ok(years @ 1..=5), Some(payment), Ok(discount_pct))
                    if discount_pct.is_finite() && discount_pct > 0.0 && discount_pct < 100.0 =>
                {
                    Some(Term {
                        years,
                        payment,
                        discount_pct,
                    })
                }
                _ => None,
            },
            _ => None,
        };
        terms.push(parsed.ok_or_else(|| {
            CliError::Input(format!(
                "--option '{o}': YEARS:PAYMENT:DISCOUNT_PCT with YEARS 1..5, PAYMENT none|partial|all, DISCOUNT_PCT in (0, 100)"
            ))
        })?);
    }
    if !(a.discount_rate_pct.is_finite()
        && (0.0..=100.0).contains(&a.discount_rate_pct)
        && (1..=2_000).contains(&a.scenarios))
    {
        return Err(CliError::Input(
            "--discount-rate-pct 0..100 and --scenarios 1..2000".into(),
        ));
    }
    let ladder_spec = match &a.ladder {
        None => None,
        Some(l) => {
            let (n, m) = l
                .split_once('x')
                .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
                .filter(|(n, m)| (2..=24).contains(n) && (1..=12).contains(m))
                .ok_or_else(|| {
                    CliError::Input(format!(
                        "--ladder '{l}': NxM, N 2..24 tranches every M 1..12 months"
                    ))
                })?;
            Some((n, m))
        }
    };
    let provider = a.provider.to_ascii_lowercase();
    let db = db_path(a.db.db.as_deref())?;
    let (contracts, _) = crate::cmd::contracts::contracts_for(a.contracts.as_deref(), &db)?;
    let netted = netted_history(&provider, &contracts, &db)?;
    let horizon_years = terms.iter().map(|t| t.years).max().unwrap_or(1) as usize;
    let horizon = horizon_years * 12 * MONTH_HOURS;
    let model = skyward_ledger::recommend::demand_model(&netted.net, None);
    let releases = skyward_ledger::recommend::releases(&netted.existing, horizon);
    let count = a
        .scenarios
        .min(skyward_ledger::recommend::SCENARIO_HOURS_MAX / horizon)
        .max(1);
    let scen = skyward_ledger::recommend::model_scenarios(
        &netted.net,
        &model,
        &releases,
        horizon,
        count,
        a.seed,
    );
    let covers = match a.covers_usd_per_hour {
        Some(c) if c.is_finite() && c > 0.0 && c < 1e9 => c,
        Some(_) => {
            return Err(CliError::Input(
                "--covers-usd-per-hour must be above 0".into(),
            ))
        }
        None => {
            let pooled: Vec<f64> = scen.iter().flatten().copied().collect();
            skyward_ledger::recommend::best_covers(&pooled, terms[0].discount_pct / 100.0)
        }
    };
    let label = |t: &Term| {
        format!(
            "{} year{}, {}, {}% off",
            t.years,
            if t.years == 1 { "" } else { "s" },
            match t.payment {
                Payment::NoUpfront => "no upfront",
                Payment::PartialUpfront => "partial upfront",
                Payment::AllUpfront => "all upfront",
            },
            t.discount_pct
        )
    };
    let mut vals = Vec::new();
    for t in &terms {
        vals.push(value(
            label(t),
            npv_paths(&scen, covers, t, &ladder(1, 1), a.discount_rate_pct),
        ));
        if let Some((n, m)) = ladder_spec {
            vals.push(value(
                format!(
                    "{} — laddered: {n} tranches, one every {m} months",
                    label(t)
                ),
                npv_paths(&scen, covers, t, &ladder(n, m), a.discount_rate_pct),
            ));
        }
    }
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"provider": provider, "covers_usd_per_hour": covers, "horizon_years": horizon_years, "discount_rate_pct": a.discount_rate_pct, "scenarios": scen.len(), "demand_model": model.describe(), "options": vals})
            )?
        ),
        Output::Table => {
            outln!(
                "Covering {}/h of {provider} on-demand, compared over {horizon_years} year(s) (shorter terms renewed), cash flows discounted at {}%/year, {} scenarios\n",
                skyward_ledger::Amount::from_usd_f64(covers),
                a.discount_rate_pct,
                scen.len()
            );
            let mut t = Table::new(&[
                "OPTION",
                "EXPECTED NPV>",
                "NPV P10>",
                "NPV P90>",
                "P(NPV < 0)>",
            ]);
            for v in &vals {
                t.row(vec![
                    v.label.clone(),
                    skyward_ledger::Amount::from_usd_f64(v.expected_npv).to_string(),
                    skyward_ledger::Amount::from_usd_f64(v.npv_p10).to_string(),
                    skyward_ledger::Amount::from_usd_f64(v.npv_p90).to_string(),
                    format!("{:.0}%", 100.0 * v.loss_probability),
                ]);
            }
            out!("{}", t.render());
            outln!("\nNPV: on-demand spend avoided minus what the commitment is paid, month by month. {}.", model.describe());
        }
    }
    Ok(())
}

const SHOWBACK_RULE: &str = "Showback: a commitment's fee reaches the usage it covered as that usage's EffectiveCost; its unused cost is allocated in proportion to the on-demand-equivalent cost (ListCost) each group had covered by it. Groups add up to the period's usage EffectiveCost.";

fn inventory(a: &StatusArgs) -> Result<(), CliError> {
    let db = db_path(a.db.db.as_deref())?;
    let (contracts, source) = crate::cmd::contracts::contracts_for(a.contracts.as_deref(), &db)?;
    let LedgerData {
        days, hours, last, ..
    } = load_for(&contracts, &db)?;
    let at = resolve_at(a.at.as_deref(), last, &db)?;
    let status = skyward_ledger::status::status(&contracts, at, &days, &hours);
    let found = skyward_ledger::status::data_commitments(&contracts, at, &days);
    let items = skyward_ledger::inventory::inventory(&contracts, &status, &found, at, &days);
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"at": at.date_string(), "contracts_source": source, "commitments": items})
            )?
        ),
        Output::Table => {
            outln!(
                "Commitments at {} by end date ({} from {source} and the data)\n",
                at.date_string(),
                items.len()
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
            for i in &items {
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

/// A provider's on-demand history from the store, net of `contracts`
/// (see `recommend::net_for_provider`); an input error when it has none.
fn netted_history(
    provider: &str,
    contracts: &[skyward_ledger::contracts::Contract],
    db: &Path,
) -> Result<skyward_ledger::recommend::Netted, CliError> {
    let (rows, days) = runtime()?.block_on(async {
        let store = Store::open(db).await?;
        let rows = store.hourly_on_demand(&[provider.to_string()], &[]).await?;
        let days = if contracts.is_empty() {
            Vec::new()
        } else {
            store.daily(Some(provider), i64::MAX).await?
        };
        Ok::<_, skyward_store::StoreError>((rows, days))
    })?;
    let netted = skyward_ledger::recommend::net_for_provider(provider, &rows, &days, contracts);
    if netted.gross.is_empty() {
        return Err(CliError::Input(format!(
            "no on-demand usage for provider '{provider}' in {}",
            db.display()
        )));
    }
    Ok(netted)
}

fn backtest(a: &BacktestArgs) -> Result<(), CliError> {
    if !(a.discount_pct.is_finite() && a.discount_pct > 0.0 && a.discount_pct < 100.0) {
        return Err(CliError::Input(
            "--discount-pct must be above 0 and below 100".into(),
        ));
    }
    if !((1..=1_100).contains(&a.horizon_days)
        && (1..=366).contains(&a.step_days)
        && (7..=3_660).contains(&a.min_history_days)
        && (1..=1_000).contains(&a.scenarios)
        && !a.lookback_days.is_empty()
        && a.lookback_days.iter().all(|d| (1..=366).contains(d)))
    {
        return Err(CliError::Input(
            "--horizon-days 1..1100, --step-days 1..366, --min-history-days 7..3660, --scenarios 1..1000, --lookback-days 1..366 each".into(),
        ));
    }
    let provider = a.provider.to_ascii_lowercase();
    let db = db_path(a.db.db.as_deref())?;
    let (contracts, _) = crate::cmd::contracts::contracts_for(a.contracts.as_deref(), &db)?;
    let netted = netted_history(&provider, &contracts, &db)?;
    let need = (a.min_history_days + a.horizon_days) as usize * 24;
    if netted.net.len() < need {
        return Err(CliError::Input(format!(
            "{} hours of on-demand history for '{provider}' in {}; a backtest needs --min-history-days + --horizon-days = {need} hours",
            netted.net.len(),
            db.display()
        )));
    }
    let t0 = Instant::now();
    let b = skyward_ledger::backtest::backtest(&skyward_ledger::backtest::BacktestInput {
        hourly: &netted.net,
        first_hour: netted.first_hour,
        discount_pct: a.discount_pct,
        horizon_hours: a.horizon_days as usize * 24,
        step_hours: a.step_days as usize * 24,
        min_history_hours: a.min_history_days as usize * 24,
        lookbacks_days: &a.lookback_days,
        scenarios: a.scenarios,
        seed: a.seed,
    });
    let secs = t0.elapsed().as_secs_f64();
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"provider": provider, "history_hours": netted.net.len(), "seconds": secs, "backtest": b})
            )?
        ),
        Output::Table => {
            outln!(
                "Backtest for {provider}: {} origins every {} days, each recommendation realised over the next {} days ({} hours of history; {:.1} s)\n",
                b.origins,
                a.step_days,
                a.horizon_days,
                netted.net.len(),
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

fn recommend_spend(a: &RecommendArgs, tiers_text: &[String]) -> Result<(), CliError> {
    let mut tiers = Vec::new();
    for t in tiers_text {
        let (c, d) = t.split_once(':').ok_or_else(|| {
            CliError::Input(format!(
                "--discount-tiers: '{t}' is not MIN_COMMIT_USD:DISCOUNT_PCT"
            ))
        })?;
        let c: f64 = c
            .trim()
            .parse()
            .map_err(|_| CliError::Input(format!("--discount-tiers: '{c}' is not an amount")))?;
        let d: f64 = d
            .trim()
            .parse()
            .map_err(|_| CliError::Input(format!("--discount-tiers: '{d}' is not a percentage")))?;
        if !(c.is_finite()
            && (0.0..=1e15).contains(&c)
            && d.is_finite()
            && (0.0..100.0).contains(&d))
        {
            return Err(CliError::Input(format!(
                "--discount-tiers: '{t}': amount 0..1e15, discount 0..100"
            )));
        }
        tiers.push((
            skyward_ledger::Amount::parse(&format!("{c}")).map_err(CliError::Input)?,
            d,
        ));
    }
    let growth = a.growth_pct.unwrap_or(0.0);
    if !((1..=10).contains(&a.term_years)
        && growth.is_finite()
        && (-90.0..=1000.0).contains(&growth))
    {
        return Err(CliError::Input(
            "--term-years must be 1..10 and --growth-pct -90..1000".into(),
        ));
    }
    let provider = a.provider.to_ascii_lowercase();
    let db = db_path(a.db.db.as_deref())?;
    let rt = runtime()?;
    let days = rt.block_on(async {
        Store::open(&db)
            .await?
            .daily(Some(&provider), i64::MAX)
            .await
    })?;
    let mut daily: std::collections::BTreeMap<i64, skyward_ledger::Amount> =
        std::collections::BTreeMap::new();
    for r in days.iter().filter(|r| r.category == "Usage") {
        *daily.entry(r.day).or_insert(skyward_ledger::Amount::ZERO) += r.list;
    }
    let (Some((&d0, _)), Some((&d1, _))) = (daily.iter().next(), daily.iter().next_back()) else {
        return Err(CliError::Input(format!(
            "no usage for provider '{provider}' in {}",
            db.display()
        )));
    };
    let from = (d1 - 90).max(d0);
    let history: Vec<skyward_ledger::Amount> = (from..=d1)
        .map(|d| {
            daily
                .get(&d)
                .copied()
                .unwrap_or(skyward_ledger::Amount::ZERO)
        })
        .collect();
    let term_days = i64::from(a.term_years) * 365;
    let paths = skyward_ledger::status::paths(
        &format!("spend/{provider}/{}", a.seed),
        &history,
        skyward_ledger::Amount::ZERO,
        term_days,
        growth,
    );
    let options = skyward_ledger::recommend::recommend_spend(&paths, &tiers);
    let p50 = paths.get(paths.len() / 2).copied().unwrap_or_default();
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"provider": provider, "term_years": a.term_years, "growth_pct": growth, "history_days": history.len(), "projected_list_spend_p50": p50, "options": options})
            )?
        ),
        Output::Table => {
            outln!(
                "Spend commitment for {provider}: {} days of history, projected list spend over {} years P50 {}{}\n",
                history.len(),
                a.term_years,
                p50,
                if growth != 0.0 { format!(" ({growth}%/year growth)") } else { String::new() }
            );
            let mut t = Table::new(&[
                "",
                "COMMIT>",
                "DISCOUNT>",
                "EXPECTED SAVINGS>",
                "EXPECTED SHORTFALL>",
                "P(SHORTFALL)>",
            ]);
            for o in &options {
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
            outln!("\n* the commitment with the greatest expected savings over {} demand paths (seeded bootstrap of the last 91 days).", paths.len());
        }
    }
    Ok(())
}
