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

/// A spec file's text (contracts, scenario), bounded to the spec size limit;
/// errors name it.
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

/// The store or server a contracts command works on.
enum Place {
    Local(PathBuf),
    Server(Box<skyward_server::client::Client>),
}

impl Place {
    fn of(db: &DbArgs) -> Result<Place, CliError> {
        Ok(match db.server_client()? {
            Some(c) => Place::Server(Box::new(c)),
            None => Place::Local(db_path(db.db.as_deref())?),
        })
    }
    fn name(&self) -> String {
        match self {
            Place::Local(p) => p.display().to_string(),
            Place::Server(c) => c.base().to_string(),
        }
    }
}

fn server_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| CliError::Io(format!("the server's answer: {e}")))
}

fn apply(a: &ApplyArgs) -> Result<(), CliError> {
    let (shown, text) = read_file(&a.file)?;
    // Validated here too, so a bad file fails the same way on both paths.
    let parsed = skyward_spec::contracts::parse(&text, &shown)?;
    let place = Place::of(&a.db)?;
    let rt = runtime()?;
    let applied: skyward_app::contracts::Applied = match &place {
        Place::Server(c) => {
            if a.by.is_some() {
                return Err(CliError::Input(
                    "--by with --server: the server records the token's user".into(),
                ));
            }
            if text.len() > skyward_server::http::BODY_BYTES_MAX {
                return Err(CliError::Input(format!(
                    "{shown}: a server takes contracts files up to {} KiB",
                    skyward_server::http::BODY_BYTES_MAX / 1024
                )));
            }
            let r = rt
                .block_on(c.request(
                    "PUT",
                    &format!("/v1/contracts?name={}", crate::cmd::ledger::percent(&shown)),
                    Some(("application/yaml", text.into_bytes())),
                    &[],
                ))
                .map_err(crate::cmd::client::client_err)?;
            if r.status != 200 && r.status != 201 {
                return Err(crate::cmd::client::api_err(&r));
            }
            server_json(r.json().unwrap_or_default())?
        }
        Place::Local(db) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let by =
                a.by.clone()
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_default();
            rt.block_on(async {
                let store = Store::open(db).await?;
                Ok::<_, CliError>(
                    skyward_app::contracts::apply(&store, &shown, &text, &by, now).await?,
                )
            })?
        }
    };
    let (version, changed) = (applied.version, applied.changed);
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"version": version, "changed": changed, "contracts": parsed.len(), "db": place.name()})
            )?
        ),
        Output::Table => {
            if changed {
                outln!(
                    "applied {} contracts from {shown} as version {version} in {}",
                    parsed.len(),
                    place.name()
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

/// A version of the contracts as the server or the store gives it.
#[derive(serde::Deserialize)]
struct CurrentView {
    version: i64,
    file_name: String,
    applied_at: i64,
    contracts: serde_json::Value,
    #[serde(default)]
    text: String,
}

fn list(a: &ListArgs) -> Result<(), CliError> {
    let place = Place::of(&a.db)?;
    let rt = runtime()?;
    let missing = || {
        CliError::Input(match a.at_version {
            Some(v) => format!("no contracts version {v} in {}", place.name()),
            None => format!(
                "no contracts in {}: run `skyward contracts apply FILE`",
                place.name()
            ),
        })
    };
    // Both paths give the same JSON; the table re-reads the terms from it.
    let (view, contracts): (CurrentView, Vec<Contract>) = match &place {
        Place::Server(c) => {
            let path = match a.at_version {
                Some(v) => format!("/v1/contracts?version={v}"),
                None => "/v1/contracts".into(),
            };
            let r = rt
                .block_on(c.request("GET", &path, None, &[]))
                .map_err(crate::cmd::client::client_err)?;
            if r.status == 404 {
                return Err(missing());
            }
            if r.status != 200 {
                return Err(crate::cmd::client::api_err(&r));
            }
            let v: CurrentView = server_json(r.json().unwrap_or_default())?;
            // The stored text is the truth: the table reads the terms
            // from it, as the server did.
            let contracts = skyward_spec::contracts::parse(
                &v.text,
                &format!("contracts v{} ({})", v.version, v.file_name),
            )?;
            (v, contracts)
        }
        Place::Local(db) => {
            let cur = rt
                .block_on(async {
                    let store = Store::open(db).await?;
                    Ok::<_, CliError>(skyward_app::contracts::current(&store, a.at_version).await?)
                })?
                .ok_or_else(missing)?;
            let v = CurrentView {
                version: cur.version,
                file_name: cur.file_name.clone(),
                applied_at: cur.applied_at,
                contracts: serde_json::to_value(&cur.contracts)
                    .map_err(|e| CliError::Internal(e.to_string()))?,
                text: String::new(),
            };
            (v, cur.contracts)
        }
    };
    let shown = format!("contracts v{} ({})", view.version, view.file_name);
    match a.db.output {
        Output::Json => outln!(
            "{}",
            json(
                &serde_json::json!({"version": view.version, "file_name": view.file_name, "applied_at": view.applied_at, "contracts": view.contracts})
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
                skyward_ledger::Timestamp(view.applied_at).date_string()
            );
            outln!("{}", t.render());
        }
    }
    Ok(())
}
fn history(a: &DbArgs) -> Result<(), CliError> {
    let place = Place::of(a)?;
    let rt = runtime()?;
    let sets: Vec<skyward_store::ContractSet> = match &place {
        Place::Server(c) => {
            let v = crate::cmd::client::get(&rt, c, "/v1/contracts/history")?;
            server_json(v["items"].clone())?
        }
        Place::Local(db) => rt.block_on(async {
            let store = Store::open(db).await?;
            Ok::<_, CliError>(skyward_app::contracts::history(&store).await?)
        })?,
    };
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
                    s.sha256.chars().take(16).collect(),
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
    let place = Place::of(&a.db)?;
    let rt = runtime()?;
    let v: serde_json::Value = match &place {
        Place::Server(c) => crate::cmd::client::get(
            &rt,
            c,
            &format!("/v1/contracts/{}", crate::cmd::ledger::percent(&a.name)),
        )?,
        Place::Local(db) => {
            let shown = rt.block_on(async {
                let store = Store::open(db).await?;
                Ok::<_, CliError>(skyward_app::contracts::show(&store, &a.name).await?)
            })?;
            serde_json::to_value(&shown).map_err(|e| CliError::Internal(e.to_string()))?
        }
    };
    match a.db.output {
        Output::Json => outln!("{}", json(&v)?),
        Output::Table => {
            let c = &v["contract"];
            let date = |x: &serde_json::Value| {
                x.as_i64()
                    .map(|t| skyward_ledger::Timestamp(t).date_string())
                    .unwrap_or_default()
            };
            outln!(
                "{} ({}, {}..{})",
                c["name"].as_str().unwrap_or(""),
                c["provider"].as_str().unwrap_or(""),
                date(&c["start"]),
                date(&c["end"])
            );
            outln!(
                "{}",
                serde_json::to_string_pretty(&c["terms"]).unwrap_or_default()
            );
            outln!("");
            let mut t = Table::new(&["VERSION>", "CHANGE", "APPLIED", "BY", "FILE"]);
            for h in v["history"].as_array().into_iter().flatten() {
                let text = |k: &str| h[k].as_str().unwrap_or("").to_string();
                t.row(vec![
                    h["version"].to_string(),
                    text("change"),
                    text("applied_at"),
                    text("applied_by"),
                    text("file_name"),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}
