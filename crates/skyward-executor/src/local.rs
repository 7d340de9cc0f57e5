//! The local executor: each dispatched workload runs as a process group on
//! this machine, in its own working directory, with its output captured to
//! `output.log` there, within the site's accelerator capacity.
//!
//! Environment passed to the workload: `SKYWARD_WORKLOAD_ID`,
//! `SKYWARD_SITE`, `SKYWARD_ATTEMPT`, `SKYWARD_ACCELERATORS` (how many),
//! `SKYWARD_CHECKPOINT_DIR` (kept across attempts, so a preempted or moved
//! run resumes from it), plus the workload's own `env`.
//!
//! Fencing: a dispatch whose attempt is not newer than one already seen
//! cancelled for that workload is refused; a cancel stops the run only if
//! its attempt is not older than the run's.

use skyward_core::WorkloadId;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What to run (the workload spec's `setup`, `run` and `env`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSpec {
    pub setup: Option<String>,
    pub run: String,
    pub env: BTreeMap<String, String>,
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

struct Job {
    child: Child,
    attempt: u32,
    accelerators: u32,
}

/// Upper bound on environment variables a workload may set.
pub const ENV_MAX: usize = 1_000;

pub struct LocalExecutor {
    site: String,
    root: PathBuf,
    capacity: u32,
    jobs: BTreeMap<WorkloadId, Job>,
    fenced: BTreeMap<WorkloadId, u32>,
}

impl LocalExecutor {
    /// `root` holds one directory per workload (`<root>/<id>/`).
    pub fn new(site: &str, root: &Path, capacity: u32) -> LocalExecutor {
        LocalExecutor {
            site: site.to_string(),
            root: root.to_path_buf(),
            capacity,
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

    pub fn workdir(&self, id: WorkloadId) -> PathBuf {
        self.root.join(format!("{}", id.0))
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
        if spec.env.len() > ENV_MAX {
            return Err(DispatchError::Spawn(
                id,
                format!("more than {ENV_MAX} environment variables"),
            ));
        }
        let dir = self.workdir(id);
        let checkpoints = dir.join("checkpoints");
        fs::create_dir_all(&checkpoints)
            .map_err(|e| DispatchError::Spawn(id, format!("{}: {e}", checkpoints.display())))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("output.log"))
            .map_err(|e| DispatchError::Spawn(id, format!("output.log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| DispatchError::Spawn(id, e.to_string()))?;
        // setup, then run, in one shell: a failing setup fails the run.
        let script = match &spec.setup {
            Some(setup) => format!("set -e\n{setup}\nset +e\n{}", spec.run),
            None => spec.run.clone(),
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .envs(&spec.env)
            .env("SKYWARD_WORKLOAD_ID", id.0.to_string())
            .env("SKYWARD_SITE", &self.site)
            .env("SKYWARD_ATTEMPT", attempt.to_string())
            .env("SKYWARD_ACCELERATORS", accelerators.to_string())
            .env("SKYWARD_CHECKPOINT_DIR", &checkpoints);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so a cancel stops everything it spawned.
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| DispatchError::Spawn(id, e.to_string()))?;
        self.jobs.insert(
            id,
            Job {
                child,
                attempt,
                accelerators,
            },
        );
        Ok(vec![
            ExecEvent::Acked { id, attempt },
            ExecEvent::Started { id, attempt },
        ])
    }

    /// Stops the run if it is this attempt or older; remembers the fence.
    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) {
        let f = self.fenced.entry(id).or_insert(0);
        *f = (*f).max(attempt);
        if self.jobs.get(&id).is_some_and(|j| j.attempt <= attempt) {
            if let Some(mut job) = self.jobs.remove(&id) {
                kill_group(&mut job.child);
            }
        }
    }

    /// Reports runs that ended since the last poll.
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let ids: Vec<WorkloadId> = self.jobs.keys().copied().collect();
        for id in ids {
            let done = match self.jobs.get_mut(&id).map(|j| j.child.try_wait()) {
                Some(Ok(Some(status))) => Some(status.success()),
                Some(Err(_)) => Some(false),
                _ => None,
            };
            if let Some(success) = done {
                if let Some(job) = self.jobs.remove(&id) {
                    out.push(ExecEvent::Finished {
                        id,
                        attempt: job.attempt,
                        success,
                    });
                }
            }
        }
        out
    }
}

/// The process group of `pid`, from /proc (Linux), if readable.
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
}

/// Stops the run and everything it spawned. The group is signalled only
/// when /proc confirms the child leads its own group (it was started with
/// `process_group(0)`), and always with `--`: without it, procps `kill`
/// does not read `-PGID` as a group (it returns 0 and does nothing).
fn kill_group(child: &mut Child) {
    let pid = child.id();
    if pid > 1 && process_group(pid) == Some(pid) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for LocalExecutor {
    /// Nothing outlives the executor.
    fn drop(&mut self) {
        for job in self.jobs.values_mut() {
            kill_group(&mut job.child);
        }
    }
}
