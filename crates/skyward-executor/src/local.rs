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
//!
//! Runs outlive the control plane. Each run leaves files in its directory:
//! `run.json`-like `skyward-run` (site, attempt, accelerators) written
//! before the process starts, `.skyward-pid-N` written by the run's shell
//! as its first act, and `.skyward-exit-N` (the exit code) written
//! atomically when it ends. A restarted server calls [`LocalExecutor::recover`]:
//! runs still alive are adopted, runs that ended while it was down are
//! reported finished with their real exit code, and runs that vanished
//! without an exit code are reported lost (the core requeues them). So a
//! `kill -9` of the server neither loses work nor runs it twice.

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
    /// Checkpoint directory: relative to the workload's directory, or
    /// absolute; `checkpoints` by default.
    pub checkpoint: Option<String>,
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
    /// A run found gone without an exit code after a restart (killed from
    /// outside, or it never started): the site lost it.
    Lost {
        id: WorkloadId,
        attempt: u32,
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
    /// None for a run adopted after a restart (not our child).
    child: Option<Child>,
    pid: u32,
    attempt: u32,
    accelerators: u32,
}

const RUN_FILE: &str = "skyward-run";
const RUN_DONE_FILE: &str = "skyward-run.done";

fn exit_file(dir: &Path, attempt: u32) -> PathBuf {
    dir.join(format!(".skyward-exit-{attempt}"))
}

fn pid_file(dir: &Path, attempt: u32) -> PathBuf {
    dir.join(format!(".skyward-pid-{attempt}"))
}

/// Writes through a temporary file and a rename: a reader sees the whole
/// file or none.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// How long a run may go without writing its pid before it counts as
/// never started.
const PID_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Age of a run's file (from its modification time); zero if unknown, so
/// an unreadable run is given the benefit of the doubt.
fn run_age(dir: &Path) -> std::time::Duration {
    fs::metadata(dir.join(RUN_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

fn read_exit_code(dir: &Path, attempt: u32) -> Option<i32> {
    fs::read_to_string(exit_file(dir, attempt))
        .ok()
        .and_then(|t| t.trim().parse().ok())
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
        let spawn_err = |what: &Path, e: std::io::Error| {
            DispatchError::Spawn(id, format!("{}: {e}", what.display()))
        };
        let checkpoints = match &spec.checkpoint {
            Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
            Some(c) => dir.join(c),
            None => dir.join("checkpoints"),
        };
        fs::create_dir_all(&checkpoints).map_err(|e| spawn_err(&checkpoints, e))?;
        let log_path = dir.join("output.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| spawn_err(&log_path, e))?;
        let err = log
            .try_clone()
            .map_err(|e| DispatchError::Spawn(id, e.to_string()))?;
        // setup, then run, in one script: a failing setup fails the run.
        let script = match &spec.setup {
            Some(setup) => format!("set -e\n{setup}\nset +e\n{}\n", spec.run),
            None => format!("{}\n", spec.run),
        };
        let script_path = dir.join(format!("run-{attempt}.sh"));
        fs::write(&script_path, script).map_err(|e| spawn_err(&script_path, e))?;
        let run_path = dir.join(RUN_FILE);
        write_atomic(
            &run_path,
            &format!("{}\t{attempt}\t{accelerators}\n", self.site),
        )
        .map_err(|e| spawn_err(&run_path, e))?;
        // The wrapper records its pid first and its exit code last, so a
        // restarted server can adopt or account for the run.
        let wrapper = format!(
            "echo $$ > .skyward-pid-{attempt}.tmp && mv .skyward-pid-{attempt}.tmp .skyward-pid-{attempt}\n/bin/sh run-{attempt}.sh\nrc=$?\necho $rc > .skyward-exit-{attempt}.tmp && mv .skyward-exit-{attempt}.tmp .skyward-exit-{attempt}\nexit $rc\n"
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(wrapper)
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
            // Its own process group, so a cancel stops everything it
            // spawned, and a server that dies does not take it along.
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| DispatchError::Spawn(id, e.to_string()))?;
        self.jobs.insert(
            id,
            Job {
                pid: child.id(),
                child: Some(child),
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
                kill_group(&mut job);
                self.retire(id);
            }
        }
    }

    /// Reports runs that ended since the last poll.
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let ids: Vec<WorkloadId> = self.jobs.keys().copied().collect();
        for id in ids {
            let dir = self.workdir(id);
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let event = match &mut job.child {
                Some(child) => match child.try_wait() {
                    Ok(Some(status)) => Some(ExecEvent::Finished {
                        id,
                        attempt: job.attempt,
                        success: status.success(),
                    }),
                    Err(_) => Some(ExecEvent::Finished {
                        id,
                        attempt: job.attempt,
                        success: false,
                    }),
                    Ok(None) => None,
                },
                None if job.pid == 0 => {
                    // Adopted before its shell wrote its pid.
                    if let Some(pid) = fs::read_to_string(pid_file(&dir, job.attempt))
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok())
                    {
                        job.pid = pid;
                        None
                    } else if let Some(rc) = read_exit_code(&dir, job.attempt) {
                        Some(ExecEvent::Finished {
                            id,
                            attempt: job.attempt,
                            success: rc == 0,
                        })
                    } else if run_age(&dir) >= PID_GRACE {
                        Some(ExecEvent::Lost {
                            id,
                            attempt: job.attempt,
                        })
                    } else {
                        None
                    }
                }
                None => match read_exit_code(&dir, job.attempt) {
                    Some(rc) => Some(ExecEvent::Finished {
                        id,
                        attempt: job.attempt,
                        success: rc == 0,
                    }),
                    None if !leads_group(job.pid) => {
                        // The exit code may have landed just now.
                        match read_exit_code(&dir, job.attempt) {
                            Some(rc) => Some(ExecEvent::Finished {
                                id,
                                attempt: job.attempt,
                                success: rc == 0,
                            }),
                            None => Some(ExecEvent::Lost {
                                id,
                                attempt: job.attempt,
                            }),
                        }
                    }
                    None => None,
                },
            };
            if let Some(e) = event {
                self.jobs.remove(&id);
                // A finished run stays on file until the runtime has stored
                // its end ([`LocalExecutor::retire`]): a crash before that
                // finds it again on recovery instead of running it twice.
                if matches!(e, ExecEvent::Lost { .. }) {
                    self.retire(id);
                }
                out.push(e);
            }
        }
        out
    }

    /// Marks a workload's run file as settled, so recovery skips it. The
    /// runtime calls this once it has stored the run's end.
    pub fn retire(&self, id: WorkloadId) {
        let dir = self.workdir(id);
        let _ = fs::rename(dir.join(RUN_FILE), dir.join(RUN_DONE_FILE));
    }

    /// After a restart: adopts this site's runs that are still alive and
    /// reports those that ended (or vanished) while nobody watched.
    /// Returns the events to feed the core after the site registers; the
    /// adopted runs are in [`LocalExecutor::running`].
    pub fn recover(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.root) else {
            return out;
        };
        let mut dirs: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let id: u64 = e.file_name().to_str()?.parse().ok()?;
                Some((id, e.path()))
            })
            .collect();
        dirs.sort();
        for (raw_id, dir) in dirs {
            let id = WorkloadId(raw_id);
            if self.jobs.contains_key(&id) {
                continue;
            }
            let Ok(text) = fs::read_to_string(dir.join(RUN_FILE)) else {
                continue;
            };
            let mut f = text.trim_end().split('\t');
            let (Some(site), Some(Ok(attempt)), Some(Ok(accelerators))) = (
                f.next(),
                f.next().map(str::parse::<u32>),
                f.next().map(str::parse::<u32>),
            ) else {
                continue;
            };
            if site != self.site {
                continue;
            }
            if let Some(rc) = read_exit_code(&dir, attempt) {
                out.push(ExecEvent::Finished {
                    id,
                    attempt,
                    success: rc == 0,
                });
                continue;
            }
            let pid = fs::read_to_string(pid_file(&dir, attempt))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            // No pid yet: the run may be starting this very moment (its
            // shell writes the pid first thing). Until the grace period is
            // over it is adopted with an unknown pid, not declared lost.
            let pid = match pid {
                None if run_age(&dir) < PID_GRACE => Some(0),
                other => other,
            };
            match pid {
                Some(pid) if pid == 0 || leads_group(pid) => {
                    self.jobs.insert(
                        id,
                        Job {
                            child: None,
                            pid,
                            attempt,
                            accelerators,
                        },
                    );
                }
                // It may have ended between the two looks: its exit code
                // is written before it exits.
                _ => match read_exit_code(&dir, attempt) {
                    Some(rc) => out.push(ExecEvent::Finished {
                        id,
                        attempt,
                        success: rc == 0,
                    }),
                    None => {
                        out.push(ExecEvent::Lost { id, attempt });
                        self.retire(id);
                    }
                },
            }
        }
        out
    }

    /// Forgets every run without stopping it (a server shutting down: the
    /// runs go on and are adopted by the next [`LocalExecutor::recover`]).
    pub fn detach(&mut self) -> usize {
        let n = self.jobs.len();
        self.jobs.clear();
        n
    }
}

/// Whether `pid` is a live process leading its own process group (what a
/// run's shell is); a zombie does not count.
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
fn kill_group(job: &mut Job) {
    let pid = job.pid;
    if pid > 1 && process_group(pid) == Some(pid) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(child) = &mut job.child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for LocalExecutor {
    /// Nothing outlives the executor.
    fn drop(&mut self) {
        for job in self.jobs.values_mut() {
            kill_group(job);
        }
    }
}
