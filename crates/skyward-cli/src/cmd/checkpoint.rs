//! `skyward checkpoint put|get|latest|list`: what a run calls to write
//! and read its numbered checkpoints in the store it was handed. The
//! location and credentials come from its environment
//! (`SKYWARD_CHECKPOINT_URI`, then `AWS_*`, `AZURE_STORAGE_*` or
//! `GOOGLE_*`, set by the server at dispatch), or `--uri`.
#![allow(clippy::disallowed_methods)] // a checkpoint's write time, at the edge

use crate::error::{json, CliError};
use crate::Output;
use clap::{Args, Subcommand};
use skyward_checkpoint::{CheckpointError, Store, StoreConfig};
use skyward_model::StoreUri;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Write checkpoint STEP from a file or a directory (its files, the
    /// manifest last, so that readers see it whole or not at all).
    Put {
        #[arg(long)]
        step: u64,
        path: PathBuf,
        #[command(flatten)]
        at: At,
    },
    /// Read a checkpoint into the directory DEST: --step, else (inside a
    /// run) the step the server handed it, else the newest listed.
    Get {
        #[arg(long)]
        step: Option<u64>,
        dest: PathBuf,
        #[command(flatten)]
        at: At,
    },
    /// Print the newest checkpoint's step (exit 3 when there is none).
    Latest {
        #[command(flatten)]
        at: At,
    },
    /// List the checkpoints in the store.
    List {
        #[command(flatten)]
        at: At,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Args)]
pub struct At {
    /// The store location (default: $SKYWARD_CHECKPOINT_URI, set in a run).
    #[arg(long)]
    pub uri: Option<String>,
}

fn open(at: &At) -> Result<Store, CliError> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let text = match &at.uri {
        Some(u) => u.clone(),
        None => env
            .get(skyward_checkpoint::store::ENV_URI)
            .cloned()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                CliError::Input(format!(
                    "no store: give --uri or run inside a workload with a checkpoint store ({} is not set)",
                    skyward_checkpoint::store::ENV_URI
                ))
            })?,
    };
    let uri = StoreUri::parse(&text).map_err(|m| CliError::Input(format!("--uri {text}: {m}")))?;
    Store::open(&StoreConfig::from_env(uri.clone(), &env), &uri).map_err(err)
}

fn err(e: CheckpointError) -> CliError {
    match e {
        CheckpointError::Config(m) => CliError::Input(m),
        CheckpointError::Io { .. } => CliError::Io(e.to_string()),
        other => CliError::Io(other.to_string()),
    }
}

/// Exit code of `latest` with no checkpoint (distinct from errors).
pub const NONE_EXIT: u8 = 3;

pub fn run(c: &CheckpointCommand) -> Result<Option<u8>, CliError> {
    let rt = crate::cmd::ledger::runtime()?;
    match c {
        CheckpointCommand::Put { step, path, at } => {
            let s = open(at)?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            // The attempt writing it, so the server can tell a live
            // attempt's checkpoints from a cut-off one's.
            let attempt = std::env::var("SKYWARD_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok());
            let m = rt
                .block_on(s.put(*step, path, now_ms, attempt))
                .map_err(err)?;
            eprintln!(
                "checkpoint {} written to {}: {} file(s), {} bytes",
                m.step,
                s.uri(),
                m.files.len(),
                m.bytes
            );
            Ok(None)
        }
        CheckpointCommand::Get { step, dest, at } => {
            let s = open(at)?;
            // Inside a run, the step the server handed it (what it recorded
            // as the newest), not whatever the store lists.
            let handed = std::env::var(skyward_checkpoint::store::ENV_STEP)
                .ok()
                .filter(|_| at.uri.is_none())
                .and_then(|v| v.parse::<u64>().ok());
            let step = match step.or(handed) {
                Some(n) => n,
                None => rt
                    .block_on(s.list())
                    .map_err(err)?
                    .newest()
                    .ok_or_else(|| CliError::Io(format!("{}: no checkpoint yet", s.uri())))?,
            };
            let m = rt.block_on(s.get(step, dest)).map_err(err)?;
            eprintln!(
                "checkpoint {} read from {} into {}: {} file(s), {} bytes",
                m.step,
                s.uri(),
                dest.display(),
                m.files.len(),
                m.bytes
            );
            Ok(None)
        }
        CheckpointCommand::Latest { at } => {
            let s = open(at)?;
            match rt.block_on(s.list()).map_err(err)?.newest() {
                Some(n) => {
                    println!("{n}");
                    Ok(None)
                }
                None => {
                    eprintln!("{}: no checkpoint yet", s.uri());
                    Ok(Some(NONE_EXIT))
                }
            }
        }
        CheckpointCommand::List { at, output } => {
            let s = open(at)?;
            let steps = rt.block_on(s.list()).map_err(err)?.steps;
            match output {
                Output::Json => crate::write_stdout(&json(
                    &serde_json::json!({"uri": s.uri(), "steps": steps}),
                )?),
                Output::Table => {
                    for n in steps {
                        println!("{n}");
                    }
                }
            }
            Ok(None)
        }
    }
}
