//! `skyward agent`: runs a site's work next to its cluster and talks to
//! the server **outbound** only (`POST /v1/agent/sync` in a loop; see
//! `skyward_server::agents` for the protocol). It survives server restarts
//! and network cuts: it reconnects with backoff, resends what was not
//! acknowledged, applies each command once (dispatches are fenced by
//! attempt), and keeps its runs going while cut off; the server stops
//! whatever it no longer owns when the agent comes back.
#![allow(clippy::disallowed_methods)] // wall-clock time for backoff, at the edge

use crate::error::CliError;
use clap::{Args, ValueEnum};
use skyward_core::WorkloadId;
use skyward_executor::{ExecEvent, Executor};
use skyward_server::agents::{
    Capacity, Cmd, LogChunk, RunRef, SyncRequest, SyncResponse, WireEvent,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The server to connect to (default: $SKYWARD_SERVER).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The site's agent token (`skyward token create --scope agent --site
    /// NAME`; default: $SKYWARD_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// The site: its name in the server's configuration, or
    /// PROVIDER:REGION/NAME (e.g. aws:us-east-1/hyperpod-a).
    #[arg(long)]
    pub site: String,
    /// The site's region, PROVIDER:REGION (when --site is only a name).
    #[arg(long)]
    pub region: Option<String>,
    /// Accelerator model of the cluster (e.g. H100).
    #[arg(long)]
    pub accelerator: String,
    /// Accelerators the cluster offers (at most what the server grants).
    #[arg(long)]
    pub accelerators: u32,
    /// How the cluster is paid: on-demand, spot or reserved (checked
    /// against the server's grant).
    #[arg(long, value_name = "BASIS")]
    pub price_basis: Option<String>,
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// For --executor local: start a run whose variant names an `image` in
    /// it with this docker-compatible runtime (podman, docker).
    #[arg(long, value_name = "COMMAND")]
    pub container_runtime: Option<String>,
    /// An argument for each `RUNTIME run` (repeat: --container-arg=--gpus
    /// --container-arg=all).
    #[arg(long = "container-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub container_args: Vec<String>,
    /// For --executor slurm: the cluster's slurm.conf (default: Slurm's).
    #[arg(long, value_name = "FILE")]
    pub slurm_conf: Option<PathBuf>,
    /// For --executor slurm: speak to slurmrestd first
    /// (`unix:/run/slurmrestd.sock`, or `http://host:6820` with a JWT in
    /// $SLURM_JWT); the Slurm commands when it cannot be reached. Through
    /// a UNIX socket jobs run as slurmrestd's user: give it as --run-as.
    #[arg(long, value_name = "TARGET")]
    pub slurm_rest: Option<String>,
    /// The REST API version to speak: v0.0.38 (Slurm 22.05) or later.
    #[arg(long, value_name = "VERSION", default_value = "v0.0.38")]
    pub slurm_rest_version: String,
    /// Where runs' directories and logs go (for Slurm: on a file system
    /// the nodes share). Default: $XDG_DATA_HOME/skyward/agent-<site>.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Run workloads as this user (default, as root: nobody).
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
}

/// Longest pause between attempts to reach the server.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a sync waits on the server for a command.
const WAIT_MS: u64 = 1_000;
/// Beyond its wait, how long a sync may take before the connection is
/// taken for dead (a sync carries up to a few MiB of events and logs).
const SYNC_MARGIN_MS: u64 = 4_000;
/// Log bytes sent per run per sync.
const LOG_SEND_MAX: u64 = 64 * 1024;

fn random_hex(n: usize) -> String {
    skyward_server::auth::generate()
        .unwrap_or_default()
        .chars()
        .skip(4)
        .take(n)
        .collect()
}

/// What an agent inside `skyward up` shares with the server around it:
/// the cgroup subtree its runs go in, and where runs of an older layout
/// are.
#[derive(Debug, Clone, Default)]
pub struct InProcess {
    pub cgroup_root: Option<PathBuf>,
    pub legacy_root: Option<PathBuf>,
}

pub fn run(a: &AgentArgs) -> Result<(), CliError> {
    run_with(a, &InProcess::default())
}

/// The agent loop; `inproc` for an agent that `skyward up` runs itself.
pub fn run_with(a: &AgentArgs, inproc: &InProcess) -> Result<(), CliError> {
    let (name, region) = match a.site.split_once('/') {
        Some((region, name)) => (name.to_string(), region.to_string()),
        None => (
            a.site.clone(),
            a.region.clone().ok_or_else(|| {
                CliError::Input(
                    "--region PROVIDER:REGION (or give --site as PROVIDER:REGION/NAME)".into(),
                )
            })?,
        ),
    };
    if let Some(p) = skyward_spec::text::name_problem(&name) {
        return Err(CliError::Input(format!("--site: the name {p}")));
    }
    if a.accelerators == 0 {
        return Err(CliError::Input("--accelerators: at least 1".into()));
    }
    let work = match &a.work_dir {
        Some(d) => d.clone(),
        None => crate::cmd::server::default_data_dir()?.with_file_name(format!("agent-{name}")),
    };
    std::fs::create_dir_all(&work).map_err(|e| CliError::Io(format!("{}: {e}", work.display())))?;
    let run_as = skyward_executor::isolation::resolve_run_as(a.run_as.as_deref())
        .map_err(|e| CliError::Input(e.to_string()))?;
    if run_as.is_some() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o711));
    }
    let container = match &a.container_runtime {
        Some(_) if a.executor != ExecutorKind::Local => {
            return Err(CliError::Input(
                "--container-runtime is for --executor local (a Slurm cluster starts images with its own plugin, such as Pyxis)".into(),
            ))
        }
        Some(r) => Some(
            skyward_executor::local::Container::new(r.clone(), a.container_args.clone())
                .map_err(|m| CliError::Input(format!("--container-{m}")))?,
        ),
        None if !a.container_args.is_empty() => {
            return Err(CliError::Input(
                "--container-arg needs --container-runtime".into(),
            ))
        }
        None => None,
    };
    let mut ex = match a.executor {
        ExecutorKind::Local => Executor::Local(skyward_executor::LocalExecutor::with_options(
            &name,
            &work,
            a.accelerators,
            skyward_executor::Options {
                run_as: run_as.clone(),
                cgroup_root: inproc.cgroup_root.clone(),
                accelerator: a.accelerator.clone(),
                legacy_root: inproc.legacy_root.clone(),
                container: container.clone(),
            },
        )),
        ExecutorKind::Slurm => Executor::Slurm(skyward_executor::slurm::SlurmExecutor::new(
            &name,
            &work,
            a.accelerators,
            skyward_executor::slurm::Slurm {
                conf: a.slurm_conf.clone(),
                run_as: run_as.clone(),
                rest: a
                    .slurm_rest
                    .as_deref()
                    .map(|t| {
                        skyward_executor::slurm_rest::SlurmRest::parse(t, &a.slurm_rest_version)
                    })
                    .transpose()
                    .map_err(|m| CliError::Input(format!("--slurm-rest: {m}")))?,
                accelerator: a.accelerator.clone(),
            },
        )),
    };
    // A sync waits at most WAIT_MS on the server: a connection silent for
    // much longer is dead (a cut link), and is given up for a new one.
    let client = crate::cmd::client::connect(&crate::cmd::client::Conn {
        server: a.server.clone(),
        token: a.token.clone(),
        output: crate::Output::Table,
    })?
    .with_timeout(Duration::from_millis(WAIT_MS + SYNC_MARGIN_MS));
    let rt = crate::cmd::ledger::runtime()?;
    if let Some(b) = &a.price_basis {
        if !matches!(b.as_str(), "on-demand" | "spot" | "reserved") {
            return Err(CliError::Input(format!(
                "--price-basis: '{b}' is not on-demand, spot or reserved"
            )));
        }
    }
    let capacity = Capacity {
        region: region.to_ascii_lowercase(),
        accelerator: a.accelerator.clone(),
        accelerators: a.accelerators,
        spot: a.price_basis.as_deref().map(|b| b == "spot"),
        price_basis: a.price_basis.clone(),
    };
    let session = random_hex(16);
    let mut state = AgentState::default();
    // Runs that outlived the last agent: adopted, and their ends reported.
    for e in ex.recover() {
        state.push(&e);
    }
    let recovered = ex.attempts();
    eprintln!(
        "skyward agent: site {name} ({} × {} in {}), {} executor, runs in {}; {} runs adopted; connecting to {}",
        a.accelerators,
        a.accelerator,
        capacity.region,
        match a.executor {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        },
        work.display(),
        recovered.len(),
        client.base()
    );
    let mut backoff = Duration::from_millis(100);
    let mut connected = false;
    loop {
        for e in ex.poll() {
            state.push(&e);
        }
        let mut running: BTreeSet<(u64, u32)> =
            ex.attempts().into_iter().map(|(id, a)| (id.0, a)).collect();
        // Runs whose end is not acknowledged yet are still held.
        for e in &state.pending {
            if matches!(e.kind.as_str(), "finished" | "lost") {
                running.insert((e.id, e.attempt));
            }
        }
        let (logs, behind) = state.logs(&work, &running);
        let req = SyncRequest {
            site: name.clone(),
            capacity: capacity.clone(),
            epoch: state.epoch.clone(),
            session: session.clone(),
            ack: state.ack,
            events: state.sendable(&behind),
            running: running
                .iter()
                .map(|(id, attempt)| RunRef {
                    id: *id,
                    attempt: *attempt,
                })
                .collect(),
            logs,
            wait_ms: if state.pending.is_empty() { WAIT_MS } else { 0 },
        };
        let body = serde_json::to_vec(&req).map_err(|e| CliError::Internal(e.to_string()))?;
        let reply = rt.block_on(client.request(
            "POST",
            "/v1/agent/sync",
            Some(("application/json", body)),
            &[],
        ));
        let resp: SyncResponse = match reply {
            Ok(r) if r.status == 200 => match serde_json::from_slice(&r.body) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("skyward agent: the server's answer: {e}");
                    std::thread::sleep(backoff);
                    continue;
                }
            },
            Ok(r) if matches!(r.status, 401 | 403 | 404 | 409 | 400 | 413 | 422) => {
                // The server refuses this agent (a revoked token, the
                // wrong site, capacity not granted): retrying will not
                // help. Runs keep going; a fixed agent adopts them.
                return Err(CliError::Input(format!(
                    "the server refused this agent ({}): {}",
                    r.status,
                    r.error_text()
                )));
            }
            other => {
                let why = match other {
                    Ok(r) => format!("{} {}", r.status, r.error_text()),
                    Err(e) => e.to_string(),
                };
                if connected {
                    eprintln!("skyward agent: lost the server ({why}); retrying");
                    connected = false;
                }
                std::thread::sleep(jitter(backoff));
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if !connected {
            eprintln!("skyward agent: connected to {}", client.base());
            connected = true;
        }
        backoff = Duration::from_millis(100);
        if state.epoch.as_deref() != Some(resp.epoch.as_str()) {
            // A new server instance: its commands are numbered afresh.
            state.epoch = Some(resp.epoch.clone());
            state.ack = 0;
        }
        // Ends the server stored: settled here too.
        let acked: Vec<WireEvent> = state
            .pending
            .iter()
            .filter(|e| e.seq <= resp.events_ack)
            .cloned()
            .collect();
        state.pending.retain(|e| e.seq > resp.events_ack);
        for e in acked {
            if matches!(e.kind.as_str(), "finished" | "lost") {
                ex.retire(WorkloadId(e.id));
                state.sent_logs.remove(&e.id);
            }
        }
        for c in &req.logs {
            // A chunk the server did not take (a run it no longer gives
            // this site): its end is not held back for it.
            if resp.log_offsets.get(&c.id).is_none_or(|o| *o == c.offset) {
                state.refused_logs.insert(c.id);
            }
        }
        for (id, off) in &resp.log_offsets {
            state.sent_logs.insert(*id, *off);
        }
        for cmd in resp.commands {
            if cmd.seq <= state.ack {
                continue;
            }
            apply(&mut ex, &mut state, &cmd);
            state.ack = cmd.seq;
        }
    }
}

fn jitter(d: Duration) -> Duration {
    let r = random_hex(2);
    let frac = u64::from_str_radix(&r, 16).unwrap_or(128) as f64 / 255.0;
    d.mul_f64(0.75 + 0.5 * frac)
}

fn apply(ex: &mut Executor, state: &mut AgentState, cmd: &Cmd) {
    let id = WorkloadId(cmd.id);
    match (cmd.kind.as_str(), &cmd.run) {
        ("dispatch", Some(run)) => {
            match ex.dispatch(id, cmd.attempt, cmd.accelerators, &run.to_spec()) {
                Ok(events) => {
                    for e in events {
                        state.push(&e);
                    }
                }
                Err(skyward_executor::local::DispatchError::Stale(..)) => {
                    // Already applied (a resent command), or superseded.
                }
                Err(e) => {
                    eprintln!("skyward agent: workload {}: {e}", cmd.id);
                    state.push(&ExecEvent::Acked {
                        id,
                        attempt: cmd.attempt,
                    });
                    state.push(&ExecEvent::Started {
                        id,
                        attempt: cmd.attempt,
                    });
                    state.push(&ExecEvent::Finished {
                        id,
                        attempt: cmd.attempt,
                        success: false,
                        exit_code: None,
                        ended_at_ms: None,
                        note: Some(format!("could not start: {e}")),
                    });
                }
            }
        }
        ("cancel", _) => ex.cancel(id, cmd.attempt),
        (other, _) => eprintln!("skyward agent: unknown command '{other}'; ignored"),
    }
}

#[derive(Default)]
struct AgentState {
    epoch: Option<String>,
    /// The last command applied.
    ack: u64,
    next_seq: u64,
    /// Events not yet acknowledged, oldest first.
    pending: Vec<WireEvent>,
    /// How much of each run's log the server has.
    sent_logs: BTreeMap<u64, u64>,
    /// Runs whose log chunks the server did not take.
    refused_logs: BTreeSet<u64>,
}

impl AgentState {
    fn push(&mut self, e: &ExecEvent) {
        self.next_seq += 1;
        self.pending.push(WireEvent::from_exec(self.next_seq, e));
    }

    /// The events to send: in order, up to the first end of a run whose
    /// log is `behind` (not all in this sync). An end is acknowledged as
    /// stored, and the run retired here, so it goes with the last of its
    /// output: the server reads the run's throughput report, and the
    /// output's tail, once the end arrives.
    fn sendable(&self, behind: &BTreeSet<u64>) -> Vec<WireEvent> {
        self.pending
            .iter()
            .take_while(|e| {
                !(matches!(e.kind.as_str(), "finished" | "lost")
                    && behind.contains(&e.id)
                    && !self.refused_logs.contains(&e.id))
            })
            .take(skyward_server::agents::SYNC_ITEMS_MAX)
            .cloned()
            .collect()
    }

    /// New log bytes of the runs held, from where the server's copy ends,
    /// and the runs whose log has more than this sync carries.
    fn logs(
        &self,
        work: &std::path::Path,
        running: &BTreeSet<(u64, u32)>,
    ) -> (Vec<LogChunk>, BTreeSet<u64>) {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        let mut behind = BTreeSet::new();
        for &(id, attempt) in running {
            // From where the server's copy ends (it says so after each
            // chunk; a new run's is empty).
            let from = self.sent_logs.get(&id).copied().unwrap_or(0);
            let path = work.join(id.to_string()).join("output.log");
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len <= from || f.seek(SeekFrom::Start(from)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            let _ = f.take(LOG_SEND_MAX.min(len - from)).read_to_end(&mut buf);
            // Whole UTF-8 characters only: the rest goes next time.
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.to_string(),
                Err(e) => String::from_utf8_lossy(&buf[..e.valid_up_to()]).into_owned(),
            };
            if from + (text.len() as u64) < len {
                behind.insert(id);
            }
            if !text.is_empty() {
                out.push(LogChunk {
                    id,
                    attempt,
                    offset: from,
                    data: text,
                });
            }
        }
        (out, behind)
    }
}
