//! The local executor: each dispatched workload runs as a process group
//! on this machine, within the site's accelerator capacity, in a work
//! area outside the server's state (see [`crate::isolation`]).
//!
//! Layout of one workload (`<root>/<id>/`, owned by the server):
//! - `skyward-run`: site, attempt, accelerators, start time, walltime,
//!   devices and cgroup, written before the process starts;
//! - `.skyward-pid-N`: the wrapper's pid, written by it first;
//! - `.skyward-exit-N`: the exit code, written atomically when the run
//!   ends; its modification time is the run's end, which is what usage is
//!   billed to;
//! - `output.log`: stdout and stderr of every node, opened by the server
//!   and handed to the run as a file descriptor;
//! - `setup-N.sh`, `run-N.sh`, `node-N.sh`: the scripts (readable by the
//!   run's user, writable by no one else);
//! - `job/`: the run's working directory and `$HOME`, owned by the run's
//!   user; `job/checkpoints/` (or the workload's `checkpoint:`) is kept
//!   across attempts.
//!
//! Each node of a gang is a process of the run, with its devices
//! (`CUDA_VISIBLE_DEVICES` or the accelerator's equivalent) and its rank
//! (`SKYWARD_NODE_RANK`, `SKYWARD_NUM_NODES`, `SKYWARD_MASTER_ADDR`/
//! `PORT`, and the names torchrun and `torch.distributed` read:
//! `MASTER_ADDR`, `MASTER_PORT`, `NODE_RANK`, `PET_NNODES`,
//! `PET_NODE_RANK`, `PET_NPROC_PER_NODE`, `PET_MASTER_ADDR`,
//! `PET_MASTER_PORT`). The environment is cleared first: a run sees only
//! a base `PATH`, `HOME`, its workload's `env` and `secrets`, and the
//! `SKYWARD_*` variables, never the server's own environment.
//!
//! When a run ends in any way (its wrapper exits or is killed, its
//! walltime is over, it is cancelled), its whole process group and its
//! cgroup (which also holds descendants that left the group) are killed
//! before its capacity is given back.
//!
//! Fencing: a dispatch whose attempt is not newer than one already seen
//! cancelled for that workload is refused; a cancel stops the run only if
//! its attempt is not older than the run's.
//!
//! Runs outlive the control plane. A restarted server calls
//! [`LocalExecutor::recover`]: runs still alive are adopted, runs that
//! ended while it was down are reported finished with their real exit
//! code and end time, and runs that vanished without an exit code are
//! reported lost (the core requeues them). So a `kill -9` of the server
//! neither loses work nor runs it twice, nor bills the time it was down.

use crate::isolation::RunAs;
use skyward_core::WorkloadId;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What to run (the workload spec's `setup`, `run`, `env`, with its
/// secrets resolved, its gang size and walltime).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSpec {
    pub setup: Option<String>,
    pub run: String,
    pub env: BTreeMap<String, String>,
    /// Secret values by variable name: in the run's environment only.
    pub secrets: BTreeMap<String, String>,
    /// Checkpoint directory: relative to the run's `job/` directory, or
    /// absolute; `checkpoints` by default.
    pub checkpoint: Option<String>,
    /// Nodes of the gang (one process each); 0 is taken as 1.
    pub nodes: u32,
    /// The run is ended when it has run this long.
    pub walltime_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Acked {
        id: WorkloadId,
        attempt: u32,
    },
    Started {
        id: WorkloadId,
        attempt: u32,
    },
    Finished {
        id: WorkloadId,
        attempt: u32,
        success: bool,
        /// The wrapper's exit code (128 + signal for a node killed by a
        /// signal); None if the wrapper itself was killed.
        exit_code: Option<i32>,
        /// When the run ended (Unix ms), from its exit file, else when it
        /// was seen gone.
        ended_at_ms: Option<u64>,
        /// Why it ended, when not by itself ("walltime of 2h exceeded").
        note: Option<String>,
    },
    /// A run found gone without an exit code after a restart: the site
    /// lost it. `started`: a process of it ran (its pid was recorded);
    /// false when it never started (recorded, then the server died before
    /// starting it), which is not billed.
    Lost {
        id: WorkloadId,
        attempt: u32,
        started: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DispatchError {
    #[error("site {site}: {need} accelerators requested, {free} free")]
    NoCapacity { site: String, need: u32, free: u32 },
    #[error("workload {0:?}: attempt {1} is stale (a newer one was cancelled or runs)")]
    Stale(WorkloadId, u32),
    #[error("workload {0:?}: cannot start: {1}")]
    Spawn(WorkloadId, String),
}

/// How runs are held apart from the server and each other.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run as this user (the server is root); None: as the server's user.
    pub run_as: Option<RunAs>,
    /// A cgroup v2 directory under which each run gets its own group.
    pub cgroup_root: Option<PathBuf>,
    /// The site's accelerator model: which device variable runs get.
    pub accelerator: String,
    /// Where an earlier version kept runs (`<state dir>/work`): runs
    /// found there at recovery are adopted and followed in place, so an
    /// upgrade neither loses nor reruns them. New runs never go there.
    pub legacy_root: Option<PathBuf>,
    /// Starts a run whose variant names an `image` in that image (each
    /// node a container); None: on the host.
    pub container: Option<Container>,
}

/// A container runtime with a docker-compatible command line (`podman`,
/// `docker`): `RUNTIME run --rm … IMAGE /bin/sh node.sh`, stopped with
/// `RUNTIME kill` by label. The run's directory is mounted at the same
/// path; the run's user is the container's user (`--user`), the devices
/// and anything else the site needs come from `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The command (a name on the base PATH, or an absolute path).
    pub runtime: String,
    /// Arguments added to `run` (`--gpus all`, `--device /dev/neuron0`).
    pub args: Vec<String>,
}

impl Container {
    /// A runtime as configured: a command name or absolute path, and at
    /// most 64 arguments of at most 1,024 characters. The error names
    /// which is wrong (`runtime: …`, `args: …`).
    pub fn new(runtime: String, args: Vec<String>) -> Result<Container, String> {
        let ok = !runtime.is_empty()
            && runtime.len() <= 256
            && !runtime.starts_with('-')
            && runtime
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !ok {
            return Err(
                "runtime: a command name or absolute path (podman, docker, /usr/bin/podman)".into(),
            );
        }
        if args.len() > 64 || args.iter().any(|a| a.len() > 1024 || a.contains('\0')) {
            return Err("args: at most 64 arguments of at most 1,024 characters".into());
        }
        Ok(Container { runtime, args })
    }
}

/// The image a run asks for (its variant's `image`), if it is one a
/// container runtime may be given: no leading `-`, no spaces or shell
/// characters, at most 512 characters.
pub fn run_image(spec: &RunSpec) -> Option<&str> {
    let i = spec.env.get("SKYWARD_CONTAINER_IMAGE")?.as_str();
    let ok = !i.is_empty()
        && i.len() <= 512
        && !i.starts_with('-')
        && i.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    ok.then_some(i)
}

/// One run's containers: what each node's `RUNTIME run` gets.
struct ContainerRun {
    runtime: String,
    args: Vec<String>,
    image: String,
    label: String,
    /// The run's directory (absolute), mounted at the same path.
    dir: PathBuf,
    /// Directories mounted at the same path (the run's, and an absolute
    /// checkpoint directory outside it).
    mounts: Vec<PathBuf>,
    /// Variables passed from the wrapper's environment (`-e NAME`).
    env: Vec<String>,
}

impl ContainerRun {
    /// One node's `RUNTIME run`, its node script started in the image as
    /// the run's user, with `vars` (the node's own) and the run's
    /// variables passed by name.
    fn command(&self, attempt: u32, vars: &[&str], run_as: Option<&RunAs>) -> String {
        let q = |s: &str| sh_quote(Path::new(s));
        let mut c = format!(
            "{} run --rm --label {} --network host",
            q(&self.runtime),
            q(&self.label)
        );
        if let Some(r) = run_as {
            c.push_str(&format!(" --user {}:{}", r.uid, r.gid));
        }
        for m in &self.mounts {
            let m = sh_quote(m);
            c.push_str(&format!(" -v {m}:{m}"));
        }
        c.push_str(&format!(" -w {}", sh_quote(&self.dir.join(JOB_DIR))));
        for n in self
            .env
            .iter()
            .map(String::as_str)
            .chain(vars.iter().copied())
        {
            c.push_str(&format!(" -e {}", q(n)));
        }
        for a in &self.args {
            c.push_str(&format!(" {}", q(a)));
        }
        c.push_str(&format!(
            " {} /bin/sh {}",
            q(&self.image),
            sh_quote(&self.dir.join(format!("node-{attempt}.sh")))
        ));
        c
    }
}

/// The label a run's containers carry (`skyward.run=<site>.<id>.<attempt>`).
fn container_label(site: &str, id: WorkloadId, attempt: u32) -> String {
    let safe: String = site
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("skyward.run={safe}.{}.{attempt}", id.0)
}

struct Job {
    /// None for a run adopted after a restart (not our child).
    child: Option<Child>,
    pid: u32,
    attempt: u32,
    accelerators: u32,
    devices: Vec<u32>,
    started_ms: u64,
    walltime_ms: Option<u64>,
    cgroup: Option<PathBuf>,
    /// The run's directory (under the root, or the legacy root).
    dir: PathBuf,
    /// The runtime and label of its containers, if it may have some.
    containers: Option<(String, String)>,
}

const RUN_FILE: &str = "skyward-run";
const RUN_DONE_FILE: &str = "skyward-run.done";
const JOB_DIR: &str = "job";
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn exit_file(dir: &Path, attempt: u32) -> PathBuf {
    dir.join(format!(".skyward-exit-{attempt}"))
}

fn pid_file(dir: &Path, attempt: u32) -> PathBuf {
    dir.join(format!(".skyward-pid-{attempt}"))
}

/// The executor is an edge: run start, walltime and end are wall times.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn mtime_ms(path: &Path) -> Option<u64> {
    let t = fs::metadata(path).ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Writes a file only the server can read, through a temporary file and
/// a rename: a reader sees the whole file or none.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, path)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// How long a run may go without writing its pid before it counts as
/// never started.
const PID_GRACE_MS: u64 = 10_000;
/// How long a cgroup may take to empty after it is killed.
const CGROUP_DRAIN_MS: u64 = 2_000;

fn read_exit_code(dir: &Path, attempt: u32) -> Option<i32> {
    fs::read_to_string(exit_file(dir, attempt))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Upper bound on environment variables a workload may set.
pub const ENV_MAX: usize = 1_000;
/// How the workload's variables travel to its nodes (see `dispatch`).
const ENV_PREFIX: &str = "SKYWARD_ENV_";

/// A shell variable name: safe to write into a script as it is.
/// The environment a run may be given, as every executor checks it: at
/// most [`ENV_MAX`] variables, each a variable name that `allowed` accepts.
pub(crate) fn check_env(
    id: WorkloadId,
    spec: &RunSpec,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), DispatchError> {
    if spec.env.len() + spec.secrets.len() > ENV_MAX {
        return Err(DispatchError::Spawn(
            id,
            format!("more than {ENV_MAX} environment variables"),
        ));
    }
    if let Some(bad) = spec
        .env
        .keys()
        .chain(spec.secrets.keys())
        .find(|k| !is_env_name(k) || !allowed(k))
    {
        return Err(DispatchError::Spawn(
            id,
            format!("'{bad}' is not an environment variable a run may set"),
        ));
    }
    Ok(())
}

pub(crate) fn is_env_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The variables that tell a run which devices are its own.
pub fn device_vars(accelerator: &str) -> &'static [&'static str] {
    let a = accelerator.to_ascii_lowercase();
    if a.starts_with("mi") || a.contains("radeon") {
        &["ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"]
    } else if a.starts_with("tpu") {
        &["TPU_VISIBLE_CHIPS"]
    } else if a.starts_with("trainium") || a.starts_with("inferentia") {
        &["NEURON_RT_VISIBLE_CORES"]
    } else if a.contains("gaudi") {
        &["HABANA_VISIBLE_DEVICES"]
    } else {
        &["CUDA_VISIBLE_DEVICES"]
    }
}

/// One run's line in `skyward-run`.
#[derive(Debug, Clone, PartialEq)]
struct RunRecord {
    site: String,
    attempt: u32,
    accelerators: u32,
    started_ms: u64,
    walltime_ms: Option<u64>,
    devices: Vec<u32>,
    cgroup: Option<PathBuf>,
    /// The container runtime its nodes run in (stopped through it even
    /// if the site's configuration changes meanwhile).
    container_runtime: Option<String>,
}

impl RunRecord {
    fn to_line(&self) -> String {
        let devices: Vec<String> = self.devices.iter().map(u32::to_string).collect();
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            self.site,
            self.attempt,
            self.accelerators,
            self.started_ms,
            self.walltime_ms.map_or("-".into(), |w| w.to_string()),
            if devices.is_empty() {
                "-".into()
            } else {
                devices.join(",")
            },
            self.cgroup
                .as_ref()
                .map_or("-".into(), |c| c.display().to_string()),
            self.container_runtime.as_deref().unwrap_or("-"),
        )
    }

    /// Reads a line written by this or an earlier version (which had only
    /// the first three fields).
    fn parse(text: &str) -> Option<RunRecord> {
        let mut f = text.trim_end_matches('\n').split('\t');
        let site = f.next()?.to_string();
        let attempt = f.next()?.parse().ok()?;
        let accelerators = f.next()?.parse().ok()?;
        let started_ms = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let walltime_ms = f.next().and_then(|v| v.parse().ok());
        let devices = f
            .next()
            .filter(|v| *v != "-")
            .map(|v| v.split(',').filter_map(|d| d.parse().ok()).collect())
            .unwrap_or_default();
        let cgroup = f.next().filter(|v| *v != "-").map(PathBuf::from);
        let container_runtime = f.next().filter(|v| *v != "-").map(String::from);
        Some(RunRecord {
            container_runtime,
            site,
            attempt,
            accelerators,
            started_ms,
            walltime_ms,
            devices,
            cgroup,
        })
    }
}

pub struct LocalExecutor {
    site: String,
    root: PathBuf,
    capacity: u32,
    opts: Options,
    jobs: BTreeMap<WorkloadId, Job>,
    fenced: BTreeMap<WorkloadId, u32>,
}

impl LocalExecutor {
    /// `root` holds one directory per workload (`<root>/<id>/`).
    pub fn new(site: &str, root: &Path, capacity: u32) -> LocalExecutor {
        LocalExecutor::with_options(site, root, capacity, Options::default())
    }

    pub fn with_options(site: &str, root: &Path, capacity: u32, opts: Options) -> LocalExecutor {
        LocalExecutor {
            site: site.to_string(),
            root: root.to_path_buf(),
            capacity,
            opts,
            jobs: BTreeMap::new(),
            fenced: BTreeMap::new(),
        }
    }

    pub fn used(&self) -> u32 {
        self.jobs.values().map(|j| j.accelerators).sum()
    }

    /// Workloads running here (reported when the site registers).
    pub fn running(&self) -> Vec<WorkloadId> {
        self.jobs.keys().copied().collect()
    }

    /// Whether a process of this workload's run is known to have started
    /// (its pid is recorded); a run adopted before it wrote its pid is not,
    /// until [`LocalExecutor::poll`] reports its start.
    /// Each run held, with its attempt.
    pub fn attempts(&self) -> Vec<(WorkloadId, u32)> {
        self.jobs.iter().map(|(id, j)| (*id, j.attempt)).collect()
    }

    pub fn started(&self, id: WorkloadId) -> bool {
        self.jobs.get(&id).is_some_and(|j| j.pid != 0)
    }

    /// The workload's directory: where its current run is, else where a
    /// new run would go.
    pub fn workdir(&self, id: WorkloadId) -> PathBuf {
        match self.jobs.get(&id) {
            Some(j) => j.dir.clone(),
            None => self.root.join(format!("{}", id.0)),
        }
    }

    /// The lowest free device indices, `n` of them.
    fn free_devices(&self, n: u32) -> Vec<u32> {
        let taken: BTreeSet<u32> = self
            .jobs
            .values()
            .flat_map(|j| j.devices.iter().copied())
            .collect();
        (0..self.capacity)
            .filter(|d| !taken.contains(d))
            .take(n as usize)
            .collect()
    }

    pub fn dispatch(
        &mut self,
        id: WorkloadId,
        attempt: u32,
        accelerators: u32,
        spec: &RunSpec,
    ) -> Result<Vec<ExecEvent>, DispatchError> {
        if self.fenced.get(&id).is_some_and(|f| *f >= attempt)
            || self.jobs.get(&id).is_some_and(|j| j.attempt >= attempt)
        {
            return Err(DispatchError::Stale(id, attempt));
        }
        // A newer attempt replaces an older run of the same workload here.
        if let Some(old) = self.jobs.get(&id).map(|j| j.attempt) {
            self.cancel(id, old);
        }
        let free = self.capacity.saturating_sub(self.used());
        if accelerators > free {
            return Err(DispatchError::NoCapacity {
                site: self.site.clone(),
                need: accelerators,
                free,
            });
        }
        check_env(id, spec, |_| true)?;
        let nodes = spec.nodes.max(1);
        let devices = self.free_devices(accelerators);
        let dir = self.root.join(format!("{}", id.0));
        let spawn_err = |what: &Path, e: std::io::Error| {
            DispatchError::Spawn(id, format!("{}: {e}", what.display()))
        };
        let job_dir = self.prepare_dirs(&dir).map_err(|(p, e)| spawn_err(&p, e))?;
        let checkpoints = match &spec.checkpoint {
            Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
            Some(c) => job_dir.join(c),
            None => job_dir.join("checkpoints"),
        };
        let log_path = dir.join("output.log");
        let log = {
            use std::os::unix::fs::OpenOptionsExt;
            File::options()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&log_path)
                .map_err(|e| spawn_err(&log_path, e))?
        };
        let err = log
            .try_clone()
            .map_err(|e| DispatchError::Spawn(id, e.to_string()))?;
        self.write_scripts(&dir, attempt, spec)
            .map_err(|(p, e)| spawn_err(&p, e))?;
        let image = run_image(spec);
        if image.is_none() && spec.env.contains_key("SKYWARD_CONTAINER_IMAGE") {
            return Err(DispatchError::Spawn(
                id,
                "the variant's image is not an image reference a container runtime may be given"
                    .into(),
            ));
        }
        // The run's environment (besides PATH and the node's own
        // variables): the wrapper's, and what each container is given.
        let mut run_env: Vec<(String, std::ffi::OsString)> = vec![
            ("HOME".into(), job_dir.clone().into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        // The workload's own variables reach the wrapper (which may be
        // root) only under a prefix no program reads (LD_PRELOAD or PATH
        // given by a workload must not act before the identity drops);
        // each node's script exports them under their names.
        run_env.extend(
            spec.env
                .iter()
                .chain(&spec.secrets)
                .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), v.into())),
        );
        for (k, v) in [
            ("SKYWARD_WORKLOAD_ID", id.0.to_string()),
            ("SKYWARD_SITE", self.site.clone()),
            ("SKYWARD_ATTEMPT", attempt.to_string()),
            ("SKYWARD_ACCELERATORS", (accelerators / nodes).to_string()),
            ("SKYWARD_ACCELERATORS_TOTAL", accelerators.to_string()),
            ("SKYWARD_NUM_NODES", nodes.to_string()),
        ] {
            run_env.push((k.into(), v.into()));
        }
        run_env.push(("SKYWARD_CHECKPOINT_DIR".into(), checkpoints.clone().into()));
        run_env.push(("SKYWARD_JOB_DIR".into(), job_dir.clone().into()));
        if let Some(r) = &self.opts.run_as {
            run_env.push(("USER".into(), r.user.clone().into()));
            run_env.push(("LOGNAME".into(), r.user.clone().into()));
        }
        let container = match (&self.opts.container, image) {
            (Some(c), Some(image)) => {
                let abs = fs::canonicalize(&dir).map_err(|e| spawn_err(&dir, e))?;
                let env = run_env.iter().map(|(k, _)| k.clone()).collect();
                let mut mounts = vec![abs.clone()];
                if checkpoints.is_absolute() && !checkpoints.starts_with(&abs) {
                    fs::create_dir_all(&checkpoints).map_err(|e| spawn_err(&checkpoints, e))?;
                    mounts.push(checkpoints.clone());
                }
                Some(ContainerRun {
                    runtime: c.runtime.clone(),
                    args: c.args.clone(),
                    image: image.to_string(),
                    label: container_label(&self.site, id, attempt),
                    dir: abs,
                    mounts,
                    env,
                })
            }
            (None, Some(image)) => {
                use std::io::Write;
                let _ = writeln!(
                    &log,
                    "skyward: site {} starts runs on the host; image {image} not started (the site has no container_runtime)",
                    self.site
                );
                None
            }
            _ => None,
        };
        let cgroup = self.make_cgroup(id, attempt);
        let record = RunRecord {
            site: self.site.clone(),
            attempt,
            accelerators,
            started_ms: now_ms(),
            walltime_ms: spec.walltime_ms,
            devices: devices.clone(),
            cgroup: cgroup.clone(),
            container_runtime: container.as_ref().map(|c| c.runtime.clone()),
        };
        let run_path = dir.join(RUN_FILE);
        write_private(&run_path, &record.to_line()).map_err(|e| spawn_err(&run_path, e))?;
        let wrapper = self.wrapper(
            attempt,
            nodes,
            &devices,
            cgroup.as_deref(),
            container.as_ref(),
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(wrapper)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .env_clear()
            .env("PATH", BASE_PATH)
            .envs(run_env);
        // The `skyward` binary running this executor, for `$SKYWARD_BIN
        // checkpoint put|get|latest` inside the run (on the host only: it
        // is not in a container's image).
        if let Ok(exe) = std::env::current_exe() {
            cmd.env("SKYWARD_BIN", exe);
        }
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so a cancel stops everything it
            // spawned, and a server that dies does not take it along.
            cmd.process_group(0);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = &cgroup {
                    let _ = fs::remove_dir(cg);
                }
                return Err(DispatchError::Spawn(id, e.to_string()));
            }
        };
        self.jobs.insert(
            id,
            Job {
                pid: child.id(),
                child: Some(child),
                attempt,
                accelerators,
                devices,
                started_ms: record.started_ms,
                walltime_ms: spec.walltime_ms,
                cgroup,
                dir,
                containers: container.map(|c| (c.runtime, c.label)),
            },
        );
        Ok(vec![
            ExecEvent::Acked { id, attempt },
            ExecEvent::Started { id, attempt },
        ])
    }

    /// The workload's directory (the server's) and its `job/` directory
    /// (the run's user's). Returns the latter.
    fn prepare_dirs(&self, dir: &Path) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| (p, e)
        };
        fs::create_dir_all(dir).map_err(at(dir))?;
        // The run's user may enter (to reach job/) but not list or write.
        let mode = if self.opts.run_as.is_some() {
            0o711
        } else {
            0o700
        };
        set_mode(dir, mode).map_err(at(dir))?;
        let job_dir = dir.join(JOB_DIR);
        match fs::symlink_metadata(&job_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // Not ours: something replaced the directory.
                fs::remove_file(&job_dir).map_err(at(&job_dir))?;
                fs::create_dir(&job_dir).map_err(at(&job_dir))?;
            }
            Err(_) => fs::create_dir(&job_dir).map_err(at(&job_dir))?,
        }
        if let Some(r) = &self.opts.run_as {
            std::os::unix::fs::chown(&job_dir, Some(r.uid), Some(r.gid)).map_err(at(&job_dir))?;
        }
        set_mode(&job_dir, 0o700).map_err(at(&job_dir))?;
        Ok(job_dir)
    }

    /// `setup-N.sh`, `run-N.sh` and `node-N.sh` in the workload's
    /// directory: readable by the run's user (group), writable by no run.
    fn write_scripts(
        &self,
        dir: &Path,
        attempt: u32,
        spec: &RunSpec,
    ) -> Result<(), (PathBuf, std::io::Error)> {
        let setup_path = dir.join(format!("setup-{attempt}.sh"));
        let run_path = dir.join(format!("run-{attempt}.sh"));
        // Runs as the run's user: the workload's variables take their own
        // names only now.
        let mut node = String::from(
            "/bin/mkdir -p \"$SKYWARD_CHECKPOINT_DIR\" || { echo \"skyward: cannot create the checkpoint directory $SKYWARD_CHECKPOINT_DIR\" >&2; exit 1; }\n",
        );
        for k in spec.env.keys().chain(spec.secrets.keys()) {
            node.push_str(&format!(
                "export {k}=\"${ENV_PREFIX}{k}\"; unset {ENV_PREFIX}{k}\n"
            ));
        }
        if let Some(setup) = &spec.setup {
            self.write_script(&setup_path, &format!("{setup}\n"))?;
            node.push_str(&format!(
                "/bin/sh -e {}\nrc=$?\nif [ $rc -ne 0 ]; then echo \"skyward: setup failed with exit code $rc on node $SKYWARD_NODE_RANK; the run did not start\" >&2; exit $rc; fi\n",
                sh_quote(&setup_path)
            ));
        }
        self.write_script(&run_path, &format!("{}\n", spec.run))?;
        node.push_str(&format!("exec /bin/sh {}\n", sh_quote(&run_path)));
        self.write_script(&dir.join(format!("node-{attempt}.sh")), &node)
    }

    fn write_script(&self, path: &Path, text: &str) -> Result<(), (PathBuf, std::io::Error)> {
        let at = |e| (path.to_path_buf(), e);
        write_private(path, text).map_err(at)?;
        if let Some(r) = &self.opts.run_as {
            std::os::unix::fs::chown(path, None, Some(r.gid)).map_err(at)?;
            set_mode(path, 0o640).map_err(at)?;
        }
        Ok(())
    }

    /// A cgroup for this run, if cgroups are available to us.
    fn make_cgroup(&self, id: WorkloadId, attempt: u32) -> Option<PathBuf> {
        let root = self.opts.cgroup_root.as_ref()?;
        let safe: String = self
            .site
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cg = root.join(format!("{safe}.{}.{attempt}", id.0));
        match fs::create_dir(&cg) {
            Ok(()) => Some(cg),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(cg),
            Err(_) => None,
        }
    }

    /// The wrapper: records its pid, enters the run's cgroup, starts one
    /// process per node (as the run's user) with its devices and rank,
    /// waits for all, and records the first failing exit code.
    fn wrapper(
        &self,
        attempt: u32,
        nodes: u32,
        devices: &[u32],
        cgroup: Option<&Path>,
        container: Option<&ContainerRun>,
    ) -> String {
        let mut w = format!(
            "echo $$ > .skyward-pid-{attempt}.tmp && /bin/mv -f .skyward-pid-{attempt}.tmp .skyward-pid-{attempt}\n"
        );
        if let Some(cg) = cgroup {
            w.push_str(&format!(
                "echo $$ > {} 2>/dev/null\n",
                sh_quote(&cg.join("cgroup.procs"))
            ));
        }
        let drop = match &self.opts.run_as {
            Some(r) => format!(
                "{} --reuid={} --regid={} --clear-groups --no-new-privs -- ",
                sh_quote(&r.setpriv),
                r.uid,
                r.gid
            ),
            None => String::new(),
        };
        let port = free_port();
        let per_node = (devices.len() as u32 / nodes.max(1)) as usize;
        let (nodes_s, per_node_s) = (nodes.to_string(), per_node.to_string());
        w.push_str("cd job || exit 1\n");
        for rank in 0..nodes {
            let mine: Vec<String> = devices
                .iter()
                .skip(rank as usize * per_node)
                .take(per_node)
                .map(u32::to_string)
                .collect();
            let list = mine.join(",");
            let (rank_s, port_s) = (rank.to_string(), port.to_string());
            let mut node_vars: Vec<(&str, &str)> = vec![
                ("SKYWARD_NODE_RANK", &rank_s),
                ("NODE_RANK", &rank_s),
                ("PET_NODE_RANK", &rank_s),
                ("PET_NNODES", &nodes_s),
                ("PET_NPROC_PER_NODE", &per_node_s),
                ("SKYWARD_MASTER_ADDR", "127.0.0.1"),
                ("SKYWARD_MASTER_PORT", &port_s),
                ("MASTER_ADDR", "127.0.0.1"),
                ("MASTER_PORT", &port_s),
                ("PET_MASTER_ADDR", "127.0.0.1"),
                ("PET_MASTER_PORT", &port_s),
                ("SKYWARD_DEVICES", &list),
            ];
            node_vars.extend(
                device_vars(&self.opts.accelerator)
                    .iter()
                    .map(|v| (*v, list.as_str())),
            );
            let vars = node_vars
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let launch = match container {
                None => format!("{drop}/bin/sh ../node-{attempt}.sh"),
                Some(c) => {
                    let names: Vec<&str> = node_vars.iter().map(|(k, _)| *k).collect();
                    c.command(attempt, &names, self.opts.run_as.as_ref())
                }
            };
            if nodes == 1 {
                w.push_str(&format!("{vars} {launch} < /dev/null &\np{rank}=$!\n"));
            } else {
                // Each node's code is left in a file as it ends, written
                // whole then renamed: the loop below must never read the
                // file created but still empty (it read as a failure, 1).
                w.push_str(&format!(
                    "( {vars} {launch} < /dev/null; echo $? > ../.skyward-rank-{attempt}-{rank}.tmp && /bin/mv -f ../.skyward-rank-{attempt}-{rank}.tmp ../.skyward-rank-{attempt}-{rank} ) &\n"
                ));
            }
        }
        w.push_str("rc=0\n");
        if nodes == 1 {
            w.push_str("wait $p0; rc=$?\n");
        } else {
            // A gang is all or nothing: the first node to fail ends it with
            // its code (the executor then stops the others, as Slurm's
            // --kill-on-bad-exit does), rather than waiting for nodes that
            // may wait forever for the one that is gone.
            w.push_str(&format!(
                "while :; do\n  ended=0\n  for r in $(seq 0 {last}); do\n    f=../.skyward-rank-{attempt}-$r\n    [ -e \"$f\" ] || continue\n    ended=$((ended + 1))\n    c=$(cat \"$f\")\n    [ \"$c\" = 0 ] || {{ rc=${{c:-1}}; break 2; }}\n  done\n  [ $ended -eq {nodes} ] && break\n  sleep 0.1\ndone\n",
                last = nodes - 1
            ));
        }
        w.push_str(&format!(
            "cd ..\necho $rc > .skyward-exit-{attempt}.tmp && /bin/mv -f .skyward-exit-{attempt}.tmp .skyward-exit-{attempt}\nexit $rc\n"
        ));
        w
    }

    /// Stops the run if it is this attempt or older; remembers the fence.
    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) {
        let f = self.fenced.entry(id).or_insert(0);
        *f = (*f).max(attempt);
        if self.jobs.get(&id).is_some_and(|j| j.attempt <= attempt) {
            if let Some(mut job) = self.jobs.remove(&id) {
                stop(&mut job);
                retire_in(&job.dir);
            }
        }
    }

    /// Reports runs that ended since the last poll, and ends those past
    /// their walltime. Everything a run started is stopped before its end
    /// is reported (so its capacity is really free).
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let now = now_ms();
        let ids: Vec<WorkloadId> = self.jobs.keys().copied().collect();
        for id in ids {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let dir = job.dir.clone();
            let mut event = job_end(id, job, &dir);
            if event.is_none() {
                if let Some(w) = job.walltime_ms {
                    if now.saturating_sub(job.started_ms) >= w {
                        let note = format!("walltime of {} exceeded; run stopped", human_ms(w));
                        append_log(&dir, &format!("skyward: {note}\n"));
                        event = Some(ExecEvent::Finished {
                            id,
                            attempt: job.attempt,
                            success: false,
                            exit_code: None,
                            ended_at_ms: Some(now),
                            note: Some(note),
                        });
                    }
                }
            }
            if let Some(e @ ExecEvent::Started { .. }) = event {
                // Still running: only its start is news.
                out.push(e);
                continue;
            }
            if let Some(e) = event {
                if let Some(mut job) = self.jobs.remove(&id) {
                    stop(&mut job);
                }
                // A finished run stays on file until the runtime has stored
                // its end ([`LocalExecutor::retire`]): a crash before that
                // finds it again on recovery instead of running it twice.
                if matches!(e, ExecEvent::Lost { .. }) {
                    retire_in(&dir);
                }
                out.push(e);
            }
        }
        out
    }

    /// Marks a workload's run file as settled, so recovery skips it. The
    /// runtime calls this once it has stored the run's end.
    pub fn retire(&self, id: WorkloadId) {
        retire_in(&self.root.join(format!("{}", id.0)));
        if let Some(legacy) = &self.opts.legacy_root {
            retire_in(&legacy.join(format!("{}", id.0)));
        }
    }

    /// After a restart: adopts this site's runs that are still alive and
    /// reports those that ended (or vanished) while nobody watched.
    /// Returns the events to feed the core after the site registers; the
    /// adopted runs are in [`LocalExecutor::running`].
    pub fn recover(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let mut dirs: Vec<(u64, PathBuf)> = [Some(&self.root), self.opts.legacy_root.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|root| fs::read_dir(root).ok())
            .flat_map(|entries| {
                entries.flatten().filter_map(|e| {
                    let id: u64 = e.file_name().to_str()?.parse().ok()?;
                    Some((id, e.path()))
                })
            })
            .collect();
        dirs.sort();
        for (raw_id, dir) in dirs {
            let id = WorkloadId(raw_id);
            if self.jobs.contains_key(&id) {
                continue;
            }
            let Some(rec) = fs::read_to_string(dir.join(RUN_FILE))
                .ok()
                .and_then(|t| RunRecord::parse(&t))
            else {
                continue;
            };
            if rec.site != self.site {
                continue;
            }
            let attempt = rec.attempt;
            let mut job = Job {
                child: None,
                pid: 0,
                attempt,
                accelerators: rec.accelerators,
                devices: rec.devices.clone(),
                started_ms: rec.started_ms,
                walltime_ms: rec.walltime_ms,
                cgroup: rec.cgroup.clone(),
                dir: dir.clone(),
                // Stopped through the runtime it was started with, as
                // recorded (the site's configuration may have changed).
                containers: rec
                    .container_runtime
                    .clone()
                    .map(|r| (r, container_label(&self.site, id, attempt))),
            };
            if let Some(e) = ended_by_file(id, attempt, &dir) {
                // Stragglers of a run that ended are stopped too.
                stop(&mut job);
                out.push(e);
                continue;
            }
            let pid = fs::read_to_string(pid_file(&dir, attempt))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            // No pid yet: the run may be starting this very moment (its
            // shell writes the pid first thing). Until the grace period is
            // over it is adopted with an unknown pid, not declared lost.
            let young =
                now_ms().saturating_sub(mtime_ms(&dir.join(RUN_FILE)).unwrap_or(0)) < PID_GRACE_MS;
            let pid = match pid {
                None if young => Some(0),
                other => other,
            };
            match pid {
                Some(pid) if pid == 0 || leads_group(pid) => {
                    job.pid = pid;
                    self.jobs.insert(id, job);
                }
                // It may have ended between the two looks: its exit code
                // is written before it exits.
                _ => match ended_by_file(id, attempt, &dir) {
                    Some(e) => {
                        stop(&mut job);
                        out.push(e);
                    }
                    None => {
                        job.pid = pid.unwrap_or(0);
                        stop(&mut job);
                        out.push(ExecEvent::Lost {
                            id,
                            attempt,
                            started: pid.is_some(),
                        });
                        retire_in(&dir);
                    }
                },
            }
        }
        out
    }

    /// Forgets every run without stopping it (a server shutting down or
    /// stepping down: the runs go on and are adopted by the next
    /// [`LocalExecutor::recover`]). Our own children are handed to a
    /// reaper so none is left a zombie.
    pub fn detach(&mut self) -> usize {
        let n = self.jobs.len();
        for (_, job) in std::mem::take(&mut self.jobs) {
            if let Some(child) = job.child {
                crate::reaper::reap_later(child);
            }
        }
        n
    }
}

/// Marks the run file in `dir` as settled.
fn retire_in(dir: &Path) {
    let _ = fs::rename(dir.join(RUN_FILE), dir.join(RUN_DONE_FILE));
}

/// The end of a run as its files and its process say, if it ended.
fn job_end(id: WorkloadId, job: &mut Job, dir: &Path) -> Option<ExecEvent> {
    let attempt = job.attempt;
    match &mut job.child {
        Some(child) => match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(ended_by_file(id, attempt, dir).unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                ExecEvent::Finished {
                    id,
                    attempt,
                    success: false,
                    exit_code: status.code().or(status.signal().map(|s| 128 + s)),
                    ended_at_ms: Some(now_ms()),
                    note: Some("the run's wrapper was killed".into()),
                }
            })),
            Err(_) => Some(ExecEvent::Finished {
                id,
                attempt,
                success: false,
                exit_code: None,
                ended_at_ms: Some(now_ms()),
                note: Some("the run's process could not be waited for".into()),
            }),
        },
        None if job.pid == 0 => {
            // Adopted before its shell wrote its pid: it starts now.
            if let Some(pid) = fs::read_to_string(pid_file(dir, attempt))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                job.pid = pid;
                Some(ExecEvent::Started { id, attempt })
            } else if let Some(e) = ended_by_file(id, attempt, dir) {
                Some(e)
            } else if now_ms().saturating_sub(mtime_ms(&dir.join(RUN_FILE)).unwrap_or(0))
                >= PID_GRACE_MS
            {
                Some(ExecEvent::Lost {
                    id,
                    attempt,
                    started: false,
                })
            } else {
                None
            }
        }
        None => match ended_by_file(id, attempt, dir) {
            Some(e) => Some(e),
            // The exit code may have landed just now.
            None if !leads_group(job.pid) => {
                Some(ended_by_file(id, attempt, dir).unwrap_or(ExecEvent::Lost {
                    id,
                    attempt,
                    started: true,
                }))
            }
            None => None,
        },
    }
}

/// A run's end from its exit file: code and the file's time.
fn ended_by_file(id: WorkloadId, attempt: u32, dir: &Path) -> Option<ExecEvent> {
    let rc = read_exit_code(dir, attempt)?;
    Some(ExecEvent::Finished {
        id,
        attempt,
        success: rc == 0,
        exit_code: Some(rc),
        ended_at_ms: mtime_ms(&exit_file(dir, attempt)),
        note: None,
    })
}

fn append_log(dir: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = File::options().append(true).open(dir.join("output.log")) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A path as one shell word.
pub(crate) fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// `5400000` → `1h30m`.
pub fn human_ms(ms: u64) -> String {
    let s = ms / 1_000;
    let (d, h, m, sec) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, u) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    if out.is_empty() {
        out = format!("{ms}ms");
    }
    out
}

/// A TCP port free on loopback now (for a gang's rendezvous).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(29_500)
}

/// Whether `pid` is a live process leading its own process group (what a
/// run's wrapper is); a zombie does not count.
fn leads_group(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let mut f = after.split_whitespace();
    let state = f.next();
    let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
    state != Some("Z") && pgrp == Some(pid)
}

fn kill_pids(pids: &[String]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--"])
        .args(pids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops the run and everything it spawned: its cgroup (which also holds
/// processes that left the group with setsid), then its process group
/// (always with `--`: without it, procps `kill` does not read `-PGID` as
/// a group), then our child; waits (bounded) for the cgroup to empty and
/// removes it.
fn stop(job: &mut Job) {
    let pid = job.pid;
    // Its containers first: they are the runtime's children, not in the
    // run's process group or cgroup.
    if let Some((runtime, label)) = &job.containers {
        let rt = sh_quote(Path::new(runtime));
        let _ = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "ids=$(timeout 20 {rt} ps -aq --filter label={l}) && [ -n \"$ids\" ] && {{ timeout 20 {rt} kill $ids; timeout 20 {rt} rm -f $ids; }}",
                l = sh_quote(Path::new(label))
            ))
            .env_clear()
            .env("PATH", BASE_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(cg) = &job.cgroup {
        if fs::write(cg.join("cgroup.kill"), "1").is_err() {
            let pids: Vec<String> = fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
            kill_pids(&pids);
        }
    }
    // The group outlives its leader while any member lives, and its id is
    // not reused meanwhile.
    if pid > 1 && (job.child.is_some() || leads_group(pid) || group_has_members(pid)) {
        kill_pids(&[format!("-{pid}")]);
    }
    if let Some(child) = &mut job.child {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(cg) = &job.cgroup {
        let deadline = now_ms() + CGROUP_DRAIN_MS;
        loop {
            let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
            if procs.trim().is_empty() || now_ms() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = fs::remove_dir(cg);
    }
}

/// Whether any process is in process group `pgid` (a scan of /proc).
fn group_has_members(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = &stat[stat.rfind(')')? + 1..];
                let mut f = after.split_whitespace();
                let state = f.next()?;
                let pgrp: u32 = f.nth(1)?.parse().ok()?;
                Some(state != "Z" && pgrp == pgid)
            })
            .unwrap_or(false)
    })
}

impl Drop for LocalExecutor {
    /// Nothing outlives the executor (the runtime detaches first when
    /// runs should go on).
    fn drop(&mut self) {
        for job in self.jobs.values_mut() {
            stop(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_records_round_trip_and_read_the_old_format() {
        let r = RunRecord {
            site: "aws:us-east-1".into(),
            attempt: 3,
            accelerators: 16,
            started_ms: 1_700_000_000_000,
            walltime_ms: Some(7_200_000),
            devices: (0..16).collect(),
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/skyward/a.1.3")),
            container_runtime: Some("/usr/bin/podman".into()),
        };
        assert_eq!(RunRecord::parse(&r.to_line()), Some(r));
        // A line of the version before containers: no runtime.
        let before = RunRecord::parse("aws:us-east-1\t3\t16\t1\t-\t0,1\t-\n").unwrap();
        assert_eq!(before.container_runtime, None);
        assert_eq!(before.devices, [0, 1]);
        let old = RunRecord::parse("gcp:europe-west4\t2\t8\n").unwrap();
        assert_eq!((old.attempt, old.accelerators), (2, 8));
        assert_eq!(old.walltime_ms, None);
        assert!(old.devices.is_empty());
        assert_eq!(RunRecord::parse("x\ty\n"), None);
    }

    #[test]
    fn device_variables_follow_the_accelerator_stack() {
        assert_eq!(device_vars("H100"), ["CUDA_VISIBLE_DEVICES"]);
        assert_eq!(
            device_vars("MI300X"),
            ["ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"]
        );
        assert_eq!(device_vars("tpu-v5e"), ["TPU_VISIBLE_CHIPS"]);
        assert_eq!(device_vars("Trainium2"), ["NEURON_RT_VISIBLE_CORES"]);
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_ms(5_400_000), "1h30m");
        assert_eq!(human_ms(2_000), "2s");
        assert_eq!(human_ms(90_061_000), "1d1h1m1s");
    }
}
