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
}

#[derive(Args)]
pub struct ApplyArgs {
    pub file: PathBuf,
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
    }
}

fn read_file(path: &Path) -> Result<(String, String), CliError> {
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
        let (shown, text) = read_file(p)?;
        return Ok((skyward_spec::contracts::parse(&text, &shown)?, shown));
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
    let (version, changed) = runtime()?.block_on(async {
        Store::open(&db)
            .await?
            .apply_contracts(&shown, &text, parsed.len(), now)
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
            let mut t = Table::new(&["VERSION>", "FILE", "CONTRACTS>", "APPLIED", "SHA-256"]);
            for s in &sets {
                t.row(vec![
                    s.version.to_string(),
                    s.file_name.clone(),
                    s.contracts.to_string(),
                    skyward_ledger::Timestamp(s.applied_at).date_string(),
                    s.sha256[..16].to_string(),
                ]);
            }
            outln!("{}", t.render());
        }
    }
    Ok(())
}
