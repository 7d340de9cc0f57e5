//! `skyward contracts …`: commitments as stored, versioned objects in the
//! ledger database. `apply` validates a contracts file and stores it as the
//! new current version (the same content again changes nothing); the
//! ledger commands read the current version when no `--contracts FILE` is
//! given (a file still works for one-off what-ifs).

#![allow(clippy::disallowed_methods)] // the wall-clock time a version is applied, at the edge
use crate::cmd::ledger::{db_path, runtime, DbArgs};
use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::{Args, Subcommand};
use skyward_ledger::contracts::{Contract, Terms};
use skyward_store::Store;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum ContractsCommand {
    /// Validate a contracts file and store it as the current version.
    Apply(ApplyArgs),
    /// The current contracts (or `--version N`).
    List(ListArgs),
    /// Every applied version.
    History(DbArgs),
    /// One contract: its current terms and the versions that changed it.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    pub name: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct ApplyArgs {
    pub file: PathBuf,
    /// Who is applying it (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// An older version (see `skyward contracts history`).
    #[arg(long, value_name = "N")]
    pub at_version: Option<i64>,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(c: &ContractsCommand) -> Result<(), CliError> {
    match c {
        ContractsCommand::Apply(a) => apply(a),
        ContractsCommand::List(a) => list(a),
        ContractsCommand::History(a) => history(a),
        ContractsCommand::Show(a) => show(a),
    }
}

/// A contracts file's text, bounded to the spec size limit; errors name it.
pub fn read_file(path: &Path) -> Result<(String, String), CliError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    if meta.len() > skyward_spec::SPEC_BYTES_MAX as u64 {
        return Err(CliError::Input(format!(
            "{shown}: file is larger than {} MiB",
            skyward_spec::SPEC_BYTES_MAX >> 20
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    Ok((shown, text))
}

const NONE: &str =
    "no contracts given (pass --contracts FILE, or store them with `skyward contracts apply FILE`)";

/// The contracts a ledger command works on: `--contracts FILE` when given,
/// else the current stored version, else none. Also says where they came
/// from.
pub fn contracts_for(file: Option<&Path>, db: &Path) -> Result<(Vec<Contract>, String), CliError> {
    if let Some(p) = file {
        let contracts = crate::cmd::ledger::load_contracts(p)?;
        return Ok((contracts, p.display().to_string()));
    }
    if !db.exists() {
        return Ok((Vec::new(), NONE.into()));
    }
    let set = runtime()?.block_on(async { Store::open(db).await?.contract_set(None).await })?;
    match set {
        Some(s) => {
            let shown = format!("contracts v{} ({})", s.version, s.file_name);
            let parsed = skyward_spec::contracts::parse(&s.text, &shown)?;
            Ok((parsed, shown))
        }
        None => Ok((Vec::new(), NONE.into())),
    }
}

fn apply(a: &ApplyArgs) -> Result<(), CliError> {
    let (shown, text) = read_file(&a.file)?;
    let parsed = skyward_spec::contracts::parse(&text, &shown)?;
    let db = db_path(a.db.db.as_deref())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let by =
        a.by.clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default();
    if by.len() > 200 || by.chars().any(char::is_control) {
        return Err(CliError::Input(
            "--by: at most 200 characters, no control characters".into(),
        ));
    }
    let (version, changed) = runtime()?.block_on(async {
        Store::open(&db)
            .await?
            .apply_contracts(&shown, &text, parsed.len(), &by, now)
            .await
    })?;
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"version": version, "changed": changed, "contracts": parsed.len(), "db": db.display().to_string()})
            )?
        ),
        Output::Table => {
            if changed {
                outln!(
                    "applied {} contracts from {shown} as version {version} in {}",
                    parsed.len(),
                    db.display()
                );
            } else {
                outln!("{shown} is the current version ({version}) already; nothing changed");
            }
        }
    }
    Ok(())
}

fn term(c: &Contract) -> String {
    format!("{}..{}", c.start.date_string(), c.end.date_string())
}

fn list(a: &ListArgs) -> Result<(), CliError> {
    let db = db_path(a.db.db.as_deref())?;
    let set =
        runtime()?.block_on(async { Store::open(&db).await?.contract_set(a.at_version).await })?;
    let Some(set) = set else {
        return Err(CliError::Input(match a.at_version {
            Some(v) => format!("no contracts version {v} in {}", db.display()),
            None => format!(
                "no contracts in {}: run `skyward contracts apply FILE`",
                db.display()
            ),
        }));
    };
    let shown = format!("contracts v{} ({})", set.version, set.file_name);
    let contracts = skyward_spec::contracts::parse(&set.text, &shown)?;
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"version": set.version, "file_name": set.file_name, "applied_at": set.applied_at, "contracts": contracts})
            )?
        ),
        Output::Table => {
            let mut t = Table::new(&["CONTRACT", "KIND", "PROVIDER", "TERM", "COMMITMENT>"]);
            for c in &contracts {
                let (kind, size) = match &c.terms {
                    Terms::Spend(s) => {
                        ("spend", format!("{} at {}% off", s.commit, s.discount_pct))
                    }
                    Terms::Hourly(h) => {
                        (h.instrument.as_str(), format!("{}/h fee", h.fee_per_hour()))
                    }
                    Terms::Capacity(k) => (
                        "capacity",
                        format!("{} × {} at {}/h", k.units, k.sku, k.rate_per_unit_hour),
                    ),
                };
                t.row(vec![
                    c.name.clone(),
                    kind.to_string(),
                    c.provider.clone(),
                    term(c),
                    size,
                ]);
            }
            outln!(
                "{shown}, applied at {}\n",
                skyward_ledger::Timestamp(set.applied_at).date_string()
            );
            outln!("{}", t.render());
        }
    }
    Ok(())
}

fn history(a: &DbArgs) -> Result<(), CliError> {
    let db = db_path(a.db.as_deref())?;
    let sets = runtime()?.block_on(async { Store::open(&db).await?.contract_history().await })?;
    match a.output {
        Output::Json => outln!("{}", json(&sets)?),
        Output::Table => {
            let mut t = Table::new(&["VERSION>", "FILE", "CONTRACTS>", "APPLIED", "BY", "SHA-256"]);
            for s in &sets {
                t.row(vec![
                    s.version.to_string(),
                    s.file_name.clone(),
                    s.contracts.to_string(),
                    skyward_ledger::Timestamp(s.applied_at).date_string(),
                    s.applied_by.clone(),
                    s.sha256[..16].to_string(),
                ]);
            }
            outln!("{}", t.render());
        }
    }
    Ok(())
}

/// One contract across versions: the current terms, and each version in
/// which it appeared, changed or was removed (who and when).
fn show(a: &ShowArgs) -> Result<(), CliError> {
    let db = db_path(a.db.db.as_deref())?;
    // One version's text in memory at a time (each may be up to the spec
    // size limit, and there may be many versions).
    let rt = runtime()?;
    let store = rt.block_on(Store::open(&db))?;
    let versions = rt.block_on(store.contract_history())?;
    let mut changes = Vec::new();
    let mut last: Option<Contract> = None;
    for v in &versions {
        let Some(s) = rt.block_on(store.contract_set(Some(v.version)))? else {
            continue;
        };
        let shown = format!("contracts v{} ({})", s.version, s.file_name);
        let now = skyward_spec::contracts::parse(&s.text, &shown)?
            .into_iter()
            .find(|c| c.name == a.name);
        let what = match (&last, &now) {
            (None, Some(_)) => Some("added"),
            (Some(_), None) => Some("removed"),
            (Some(x), Some(y)) if x != y => Some("changed"),
            _ => None,
        };
        if let Some(what) = what {
            changes.push(serde_json::json!({
                "version": s.version,
                "change": what,
                "applied_at": skyward_ledger::Timestamp(s.applied_at).date_string(),
                "applied_by": s.applied_by,
                "file_name": s.file_name,
            }));
        }
        last = now;
    }
    let Some(current) = last else {
        let removed = changes
            .last()
            .map(|c| format!(" (removed in version {})", c["version"]))
            .unwrap_or_default();
        return Err(CliError::Input(format!(
            "no contract named '{}' in the current contracts of {}{removed}",
            a.name,
            db.display()
        )));
    };
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(&serde_json::json!({"contract": current, "history": changes}))?
        ),
        Output::Table => {
            outln!(
                "{} ({}, {})",
                current.name,
                current.provider,
                term(&current)
            );
            outln!(
                "{}",
                serde_json::to_string_pretty(&current.terms).unwrap_or_default()
            );
            outln!("");
            let mut t = Table::new(&["VERSION>", "CHANGE", "APPLIED", "BY", "FILE"]);
            for c in &changes {
                t.row(vec![
                    c["version"].to_string(),
                    c["change"].as_str().unwrap_or("").to_string(),
                    c["applied_at"].as_str().unwrap_or("").to_string(),
                    c["applied_by"].as_str().unwrap_or("").to_string(),
                    c["file_name"].as_str().unwrap_or("").to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}
