//! The Slurm executor: each placed workload becomes one Slurm batch job
//! (a gang of N nodes is one N-node job; its accelerators are GRES
//! `gpu` per node), followed through Slurm's states, cancelled with
//! `scancel`, its log written where the local executor writes it
//! (`<root>/<id>/output.log`, so the server serves it the same way).
//!
//! It speaks the Slurm command line: `sbatch --parsable`, `squeue --json`
//! (Slurm 21.08 and later; the v0.0.38 fields Debian 12's 22.05 prints,
//! and the newer shapes) with `scontrol -o show job` where `--json` is
//! missing, and `scancel`. The parts that decide are pure and tested
//! against real output ([`parse_squeue_json`], [`parse_scontrol`],
//! [`outcome`], [`batch_script`]); [`SlurmExecutor`] is the edge.
//!
//! Fencing: every job carries `skyward:<site>:<workload>:<attempt>` as its
//! Slurm comment and a record in its directory. A dispatch of an attempt
//! not newer than one already seen is refused; after a restart
//! ([`SlurmExecutor::recover`]) jobs are found again by their records
//! and comments, so nothing is submitted twice. Slurm forgets ended jobs
//! `MinJobAge` seconds after they end (300 by default; without
//! accounting, `sacct` cannot tell either): a run that ended longer ago
//! than that while no server watched is reported lost and requeued. Keep
//! `MinJobAge` above the longest outage you expect, or run slurmdbd.

use crate::local::{DispatchError, ExecEvent, RunSpec};
use skyward_core::WorkloadId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Slurm is asked for its jobs' states at most this often.
pub const QUERY_EVERY_MS: u64 = 500;

/// Output of a Slurm command read at most (a `squeue --json` of a few
/// thousand jobs is a few MiB).
pub const OUTPUT_BYTES_MAX: usize = 64 << 20;

/// One Slurm job as `squeue` or `scontrol` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    pub job_id: u64,
    /// Slurm's state word: PENDING, RUNNING, COMPLETED, FAILED, …
    pub state: String,
    pub reason: String,
    /// The batch script's exit code, or None when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Unix seconds (None: not yet).
    pub start_s: Option<i64>,
    pub end_s: Option<i64>,
    pub comment: String,
    pub nodes: String,
}

/// What a job's state means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Pending (queued, configuring nodes, held).
    Waiting,
    Running,
    /// Ended by itself or by Slurm.
    Ended {
        success: bool,
        exit_code: Option<i32>,
        note: Option<String>,
    },
    /// The site lost it (a node failed, it was preempted, requeued by
    /// Slurm, or forgotten): the core requeues it elsewhere.
    Lost {
        why: String,
    },
}

/// The mapping from Slurm's job states (`man squeue`, JOB STATE CODES).
pub fn outcome(j: &SlurmJob) -> Outcome {
    let ended = |success: bool, note: Option<String>| Outcome::Ended {
        success,
        exit_code: match (j.exit_code, j.signal) {
            (_, Some(s)) => Some(128 + s),
            (c, None) => c,
        },
        note,
    };
    match j.state.as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUE_HOLD" | "SPECIAL_EXIT" | "RESV_DEL_HOLD" => {
            Outcome::Waiting
        }
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            Outcome::Running
        }
        "COMPLETED" => ended(j.exit_code == Some(0) && j.signal.is_none(), None),
        "FAILED" => ended(false, None),
        "TIMEOUT" => ended(
            false,
            Some("walltime exceeded; Slurm ended the job (TIMEOUT)".into()),
        ),
        "OUT_OF_MEMORY" => ended(false, Some("out of memory (Slurm OUT_OF_MEMORY)".into())),
        "DEADLINE" => ended(false, Some("Slurm deadline reached (DEADLINE)".into())),
        "CANCELLED" => ended(
            false,
            Some("cancelled in Slurm (scancel outside Skyward)".into()),
        ),
        "PREEMPTED" => Outcome::Lost {
            why: "preempted by Slurm".into(),
        },
        "NODE_FAIL" => Outcome::Lost {
            why: format!("node failure ({})", j.nodes),
        },
        "BOOT_FAIL" => Outcome::Lost {
            why: "nodes failed to boot".into(),
        },
        "REQUEUED" | "REQUEUE_FED" | "REVOKED" => Outcome::Lost {
            why: format!("Slurm {}", j.state.to_ascii_lowercase()),
        },
        other => Outcome::Lost {
            why: format!("unknown Slurm state {other}"),
        },
    }
}

/// A wait status as Slurm reports `exit_code` (v0.0.38: the raw status).
fn wait_status(v: i64) -> (Option<i32>, Option<i32>) {
    let v = v as i32;
    if v & 0x7f == 0 {
        (Some((v >> 8) & 0xff), None)
    } else {
        (None, Some(v & 0x7f))
    }
}

/// A number that newer Slurm versions wrap as `{"set": true, "number": N}`.
fn number(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::Object(o) => {
            if o.get("set").and_then(|s| s.as_bool()) == Some(false) {
                return None;
            }
            o.get("number").and_then(|n| n.as_i64())
        }
        _ => None,
    }
}

/// Reads `squeue --json` (or `scontrol show job --json`): the v0.0.38
/// shape (Slurm 21.08–23.02: `job_state` a word, `exit_code` a wait
/// status, times as numbers) and the later one (`job_state` a list,
/// `exit_code` an object, numbers wrapped).
pub fn parse_squeue_json(text: &str) -> Result<Vec<SlurmJob>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("squeue --json: {e}"))?;
    if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
        if let Some(e) = errs.first() {
            return Err(format!("squeue --json: {e}"));
        }
    }
    let jobs = v
        .get("jobs")
        .and_then(|j| j.as_array())
        .ok_or("squeue --json: no 'jobs' list")?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let Some(job_id) = j.get("job_id").and_then(number) else {
            continue;
        };
        let state = match j.get("job_state") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(a)) => {
                a.first().and_then(|s| s.as_str()).unwrap_or("").to_string()
            }
            _ => String::new(),
        };
        let (exit_code, signal) = match j.get("exit_code") {
            Some(serde_json::Value::Object(o)) => {
                let code = o.get("return_code").and_then(number);
                let sig = o
                    .get("signal")
                    .and_then(|s| s.get("id"))
                    .and_then(number)
                    .filter(|s| *s > 0);
                match sig {
                    Some(s) => (None, Some(s as i32)),
                    None => (code.map(|c| c as i32), None),
                }
            }
            Some(other) => match number(other) {
                Some(w) => wait_status(w),
                None => (None, None),
            },
            None => (None, None),
        };
        let time = |k: &str| j.get(k).and_then(number).filter(|t| *t > 0);
        let text = |k: &str| j.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string();
        let reason = text("state_reason");
        out.push(SlurmJob {
            job_id: job_id.max(0) as u64,
            state,
            reason,
            exit_code,
            signal,
            start_s: time("start_time"),
            end_s: time("end_time"),
            comment: text("comment"),
            nodes: text("nodes"),
        });
    }
    Ok(out)
}

/// Reads one line of `scontrol -o show job` (where `--json` is missing).
pub fn parse_scontrol(line: &str) -> Option<SlurmJob> {
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for part in line.split_whitespace() {
        if let Some((k, v)) = part.split_once('=') {
            fields.entry(k).or_insert(v);
        }
    }
    let job_id = fields.get("JobId")?.parse().ok()?;
    let (exit_code, signal) = match fields.get("ExitCode").and_then(|e| e.split_once(':')) {
        Some((c, s)) => match (c.parse::<i32>(), s.parse::<i32>()) {
            (Ok(c), Ok(0)) => (Some(c), None),
            (Ok(_), Ok(s)) => (None, Some(s)),
            _ => (None, None),
        },
        None => (None, None),
    };
    let time = |k: &str| {
        fields
            .get(k)
            .and_then(|t| parse_slurm_time(t))
            .filter(|t| *t > 0)
    };
    // The comment may hold spaces; ours never do.
    let text = |k: &str| {
        fields
            .get(k)
            .filter(|v| **v != "(null)")
            .unwrap_or(&"")
            .to_string()
    };
    Some(SlurmJob {
        job_id,
        state: text("JobState"),
        reason: text("Reason"),
        exit_code,
        signal,
        start_s: time("StartTime"),
        end_s: time("EndTime"),
        comment: text("Comment"),
        nodes: text("NodeList"),
    })
}

/// `2026-12-01T05:20:54` as Unix seconds, read as UTC (Slurm prints the
/// controller's local time; run it in UTC, as servers are).
fn parse_slurm_time(t: &str) -> Option<i64> {
    let (date, time) = t.split_once('T')?;
    let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
    let h: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    if d.len() != 3 || h.len() != 3 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, dd) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2])
}

/// The comment that names a job's workload and attempt.
pub fn marker(site: &str, id: WorkloadId, attempt: u32) -> String {
    format!("skyward:{site}:{}:{attempt}", id.0)
}

/// The workload and attempt of a job of `site`, from its comment.
pub fn parse_marker(comment: &str, site: &str) -> Option<(WorkloadId, u32)> {
    let rest = comment.strip_prefix("skyward:")?.strip_prefix(site)?;
    let rest = rest.strip_prefix(':')?;
    let (id, attempt) = rest.split_once(':')?;
    Some((WorkloadId(id.parse().ok()?), attempt.parse().ok()?))
}

/// What `sbatch` gets for one run: the batch script (one task per node,
/// each running the node script with `srun`).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub script: String,
    /// The script each node runs (setup, then run).
    pub node_script: String,
}

/// Builds the batch and node scripts. `dir` is the run's directory on a
/// file system the nodes share; `per_node` accelerators (of model
/// `accelerator`) as GRES `gpu`.
pub fn batch_script(
    site: &str,
    id: WorkloadId,
    attempt: u32,
    dir: &Path,
    per_node: u32,
    accelerator: &str,
    spec: &RunSpec,
) -> Batch {
    let nodes = spec.nodes.max(1);
    let d = dir.display();
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!("#SBATCH --job-name=skyward-{}\n", id.0));
    s.push_str(&format!(
        "#SBATCH --comment={}\n",
        marker(site, id, attempt)
    ));
    s.push_str(&format!(
        "#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node=1\n"
    ));
    if per_node > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{per_node}\n"));
    }
    s.push_str(&format!(
        "#SBATCH --output={d}/output.log\n#SBATCH --open-mode=append\n#SBATCH --chdir={d}/job\n"
    ));
    if let Some(w) = spec.walltime_ms {
        // Slurm counts whole minutes.
        s.push_str(&format!("#SBATCH --time={}\n", w.div_ceil(60_000).max(1)));
    }
    s.push_str("#SBATCH --export=ALL\n#SBATCH --no-requeue\n");
    // When one rank fails, srun stops the others (SIGTERM) and returns
    // the highest code of all, 143, which hides the cause. Each rank
    // leaves its own code in `exit-<attempt>-<rank>`, and the job ends
    // with the first rank's (in rank order) that is not a signal's; else
    // the first signal's other than the SIGTERM srun sends (a rank that
    // was killed, 137); else srun's own code.
    let node = crate::local::sh_quote(&dir.join(format!("node-{attempt}.sh")));
    let exits = crate::local::sh_quote(&dir.join(format!("exit-{attempt}")));
    s.push_str(&format!(
        "srun --kill-on-bad-exit=1 --ntasks-per-node=1 sh -c 'sh \"$0\"; c=$?; echo $c > \"$1-${{SLURM_NODEID:-0}}\"; exit $c' {node} {exits}\n"
    ));
    s.push_str(&format!(
        "rc=$?\ni=0\nwhile [ $i -lt {nodes} ]; do\n  c=$(cat {exits}-$i 2>/dev/null)\n  case \"$c\" in\n    [1-9]|[1-9][0-9]|1[01][0-9]|12[0-7]) exit \"$c\" ;;\n  esac\n  i=$((i + 1))\ndone\ni=0\nwhile [ $i -lt {nodes} ]; do\n  c=$(cat {exits}-$i 2>/dev/null)\n  case \"$c\" in\n    143) ;;\n    12[89]|1[3-9][0-9]|2[0-4][0-9]|25[0-5]) exit \"$c\" ;;\n  esac\n  i=$((i + 1))\ndone\nexit $rc\n"
    ));
    let mut n = String::from("#!/bin/sh\nexport SKYWARD_NODE_RANK=\"${SLURM_NODEID:-0}\"\n");
    // Slurm sets CUDA_VISIBLE_DEVICES for a node's GRES gpus; another
    // stack's variable (NEURON_RT_VISIBLE_CORES, …) names the same
    // devices, unless Slurm (or the node's prolog) set it already.
    for v in crate::local::device_vars(accelerator) {
        if *v != "CUDA_VISIBLE_DEVICES" {
            n.push_str(&format!(
                ": \"${{{v}:=${{CUDA_VISIBLE_DEVICES:-${{SLURM_STEP_GPUS:-$SLURM_JOB_GPUS}}}}}}\"; export {v}\n"
            ));
        }
    }
    if let Some(setup) = &spec.setup {
        n.push_str("{\n");
        n.push_str(setup);
        n.push_str("\n} || exit $?\n");
    }
    n.push_str(&spec.run);
    n.push('\n');
    Batch {
        script: s,
        node_script: n,
    }
}

/// The Slurm commands, with the cluster's configuration file.
#[derive(Debug, Clone, Default)]
pub struct Slurm {
    /// `SLURM_CONF` for the commands (None: Slurm's default).
    pub conf: Option<PathBuf>,
    /// Submit (and cancel) as this user, so jobs run with its rights and
    /// not the server's (None: as the server's own user).
    pub run_as: Option<crate::RunAs>,
    /// slurmrestd, when the cluster runs it: spoken first; the commands
    /// are the fallback when it cannot be reached. Through a UNIX socket
    /// jobs run as slurmrestd's user (make `run_as` that user).
    pub rest: Option<crate::slurm_rest::SlurmRest>,
    /// The site's accelerator model: a run on Trainium, TPU, AMD or
    /// Gaudi gets its stack's device variable from the GPUs (GRES) Slurm
    /// gave the node, when Slurm does not set it itself.
    pub accelerator: String,
}

fn run_limited(mut c: Command, what: &str) -> Result<String, String> {
    use std::io::Read;
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("{what}: {e}"))?;
    let mut out = Vec::new();
    if let Some(o) = child.stdout.take() {
        o.take(OUTPUT_BYTES_MAX as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let mut err = Vec::new();
    if let Some(e) = child.stderr.take() {
        let _ = e.take(64 << 10).read_to_end(&mut err);
    }
    let status = child.wait().map_err(|e| format!("{what}: {e}"))?;
    if out.len() > OUTPUT_BYTES_MAX {
        return Err(format!(
            "{what}: more than {OUTPUT_BYTES_MAX} bytes of output"
        ));
    }
    if !status.success() {
        return Err(format!(
            "{what}: {} ({})",
            String::from_utf8_lossy(&err).trim(),
            status
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

impl Slurm {
    /// A Slurm command with a clean environment: the server's own
    /// variables (tokens among them) never reach a job.
    fn command(&self, prog: &str) -> Command {
        let mut c = match &self.run_as {
            // As the local executor does: setpriv drops to the user with
            // no supplementary groups.
            Some(who) => {
                let mut c = Command::new(&who.setpriv);
                c.arg(format!("--reuid={}", who.uid))
                    .arg(format!("--regid={}", who.gid))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(prog);
                c
            }
            None => Command::new(prog),
        };
        c.env_clear();
        c.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        );
        if let Some(conf) = &self.conf {
            c.env("SLURM_CONF", conf);
        }
        c
    }

    /// Submits the job: through slurmrestd when it is configured and
    /// answers, else `sbatch` with the script file.
    pub fn submit_job(
        &self,
        script: &Path,
        env: &BTreeMap<String, String>,
        job: &crate::slurm_rest::SubmitJob,
    ) -> Result<u64, String> {
        if let Some(r) = &self.rest {
            match r.submit(job) {
                Ok(id) => return Ok(id),
                Err(e) if e.connect => {
                    eprintln!("skyward: {e}; submitting with sbatch instead");
                }
                Err(e) => return Err(e.message),
            }
        }
        self.submit(script, env)
    }

    /// Submits a batch script; the job's environment is `env` (and PATH).
    pub fn submit(&self, script: &Path, env: &BTreeMap<String, String>) -> Result<u64, String> {
        let mut c = self.command("sbatch");
        c.arg("--parsable").arg(script);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run_limited(c, "sbatch")?;
        // `--parsable`: "id" or "id;cluster".
        out.trim()
            .split(';')
            .next()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("sbatch: no job id in '{}'", out.trim()))
    }

    /// Every job Slurm still knows (pending, running and recently ended).
    pub fn jobs(&self) -> Result<Vec<SlurmJob>, String> {
        if let Some(r) = &self.rest {
            match r.jobs() {
                Ok(j) => return Ok(j),
                Err(e) if e.connect => {}
                Err(e) => return Err(e.message),
            }
        }
        let mut c = self.command("squeue");
        c.args(["--json", "--states=all"]);
        match run_limited(c, "squeue --json") {
            Ok(text) => parse_squeue_json(&text),
            Err(json_err) => {
                // Older Slurm, or no JSON plugin: scontrol's one-line form.
                let mut c = self.command("scontrol");
                c.args(["-o", "show", "job"]);
                match run_limited(c, "scontrol show job") {
                    Ok(text) => Ok(text.lines().filter_map(parse_scontrol).collect()),
                    Err(e) if e.contains("No jobs in the system") => Ok(Vec::new()),
                    Err(e) => Err(format!("{json_err}; {e}")),
                }
            }
        }
    }

    pub fn cancel(&self, job_id: u64) -> Result<(), String> {
        if let Some(r) = &self.rest {
            match r.cancel(job_id) {
                Ok(()) => return Ok(()),
                Err(e) if e.connect => {}
                Err(e) => return Err(e.message),
            }
        }
        let mut c = self.command("scancel");
        c.arg(job_id.to_string());
        run_limited(c, "scancel").map(|_| ())
    }
}

struct Job {
    attempt: u32,
    job_id: u64,
    need: u32,
    started: bool,
}

/// The record of a run in its directory, for recovery.
fn record_path(dir: &Path) -> PathBuf {
    dir.join("slurm-run")
}

/// `site attempt job_id accelerators` (site names have no spaces).
fn write_record(
    dir: &Path,
    site: &str,
    attempt: u32,
    job_id: u64,
    need: u32,
) -> std::io::Result<()> {
    let tmp = dir.join("slurm-run.tmp");
    std::fs::write(&tmp, format!("{site} {attempt} {job_id} {need}\n"))?;
    std::fs::rename(tmp, record_path(dir))
}

/// A run of `site` on record in `dir`: (attempt, job id, accelerators).
fn read_record(dir: &Path, site: &str) -> Option<(u32, u64, u32)> {
    let text = std::fs::read_to_string(record_path(dir)).ok()?;
    let mut it = text.split_whitespace();
    if it.next()? != site {
        return None;
    }
    let mut n = it.map(str::parse::<u64>);
    let (a, j, c) = (n.next()?.ok()?, n.next()?.ok()?, n.next()?.ok()?);
    Some((u32::try_from(a).ok()?, j, u32::try_from(c).ok()?))
}

/// Runs placed work as Slurm jobs on one cluster (see the module docs).
pub struct SlurmExecutor {
    site: String,
    root: PathBuf,
    capacity: u32,
    slurm: Slurm,
    jobs: BTreeMap<WorkloadId, Job>,
    fenced: BTreeMap<WorkloadId, u32>,
    last_query_ms: Option<u64>,
}

fn now_ms() -> u64 {
    #[allow(clippy::disallowed_methods)] // the executor is an edge
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SlurmExecutor {
    /// `root` must be on a file system the cluster's nodes share (runs'
    /// directories and logs go there).
    pub fn new(site: &str, root: &Path, capacity: u32, slurm: Slurm) -> SlurmExecutor {
        SlurmExecutor {
            site: site.to_string(),
            root: root.to_path_buf(),
            capacity,
            slurm,
            jobs: BTreeMap::new(),
            fenced: BTreeMap::new(),
            last_query_ms: None,
        }
    }

    pub fn used(&self) -> u32 {
        self.jobs.values().map(|j| j.need).sum()
    }

    pub fn running(&self) -> Vec<WorkloadId> {
        self.jobs.keys().copied().collect()
    }

    /// Each run held, with its attempt.
    pub fn attempts(&self) -> Vec<(WorkloadId, u32)> {
        self.jobs.iter().map(|(id, j)| (*id, j.attempt)).collect()
    }

    pub fn started(&self, id: WorkloadId) -> bool {
        self.jobs.get(&id).is_some_and(|j| j.started)
    }

    pub fn workdir(&self, id: WorkloadId) -> PathBuf {
        self.root.join(format!("{}", id.0))
    }

    /// The Slurm job of a workload's current run.
    pub fn job_id(&self, id: WorkloadId) -> Option<u64> {
        self.jobs.get(&id).map(|j| j.job_id)
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
        let spawn = |m: String| DispatchError::Spawn(id, m);
        // Slurm's own variables are Slurm's to set.
        crate::local::check_env(id, spec, |k| !k.starts_with("SLURM"))?;
        let dir = self.workdir(id);
        if dir.display().to_string().contains(char::is_whitespace) {
            return Err(spawn(format!(
                "{}: a run directory for Slurm has no spaces",
                dir.display()
            )));
        }
        let nodes = spec.nodes.max(1);
        let per_node = accelerators.div_ceil(nodes);
        let b = batch_script(
            &self.site,
            id,
            attempt,
            &dir,
            per_node,
            &self.slurm.accelerator,
            spec,
        );
        let checkpoints = match &spec.checkpoint {
            Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
            Some(c) => dir.join("job").join(c),
            None => dir.join("job").join("checkpoints"),
        };
        let io = |p: &Path, e: std::io::Error| spawn(format!("{}: {e}", p.display()));
        std::fs::create_dir_all(&checkpoints).map_err(|e| io(&checkpoints, e))?;
        let script = dir.join(format!("batch-{attempt}.sh"));
        let node = dir.join(format!("node-{attempt}.sh"));
        std::fs::write(&script, &b.script).map_err(|e| io(&script, e))?;
        std::fs::write(&node, &b.node_script).map_err(|e| io(&node, e))?;
        if let Some(who) = &self.slurm.run_as {
            // The job writes its log and checkpoints as that user.
            let mut owned = vec![dir.clone(), dir.join("job"), script.clone(), node.clone()];
            let mut c = checkpoints.clone();
            while c.starts_with(dir.join("job")) && c != dir.join("job") {
                owned.push(c.clone());
                if !c.pop() {
                    break;
                }
            }
            for p in owned {
                std::os::unix::fs::chown(&p, Some(who.uid), Some(who.gid))
                    .map_err(|e| io(&p, e))?;
            }
        }
        let mut env = spec.env.clone();
        env.extend(spec.secrets.clone());
        env.insert("SKYWARD_WORKLOAD_ID".into(), id.0.to_string());
        env.insert("SKYWARD_ATTEMPT".into(), attempt.to_string());
        env.insert("SKYWARD_NODES".into(), nodes.to_string());
        env.insert(
            "SKYWARD_CHECKPOINT_DIR".into(),
            checkpoints.display().to_string(),
        );
        env.insert("HOME".into(), dir.join("job").display().to_string());
        // `$SKYWARD_BIN checkpoint …` inside the job (the nodes share this
        // path, as they share the run's directory).
        if let Ok(exe) = std::env::current_exe() {
            env.insert("SKYWARD_BIN".into(), exe.display().to_string());
        }
        let mut rest_env = env.clone();
        rest_env
            .entry("PATH".into())
            .or_insert_with(|| std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
        let job = crate::slurm_rest::SubmitJob {
            name: format!("skyward-{}", id.0),
            comment: marker(&self.site, id, attempt),
            nodes,
            gpus_per_node: per_node,
            standard_output: dir.join("output.log").display().to_string(),
            cwd: dir.join("job").display().to_string(),
            time_limit_minutes: spec.walltime_ms.map(|w| w.div_ceil(60_000).max(1)),
            environment: rest_env,
            script: b.script.clone(),
        };
        let job_id = self.slurm.submit_job(&script, &env, &job).map_err(spawn)?;
        // The record first: a crash now finds the job again on recovery.
        if let Err(e) = write_record(&dir, &self.site, attempt, job_id, accelerators) {
            let _ = self.slurm.cancel(job_id);
            return Err(io(&dir, e));
        }
        self.jobs.insert(
            id,
            Job {
                attempt,
                job_id,
                need: accelerators,
                started: false,
            },
        );
        // Ask Slurm at the next poll.
        self.last_query_ms = None;
        Ok(vec![ExecEvent::Acked { id, attempt }])
    }

    /// Cancels the run if it is this attempt or older; remembers the fence.
    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) {
        let f = self.fenced.entry(id).or_insert(0);
        *f = (*f).max(attempt);
        if self.jobs.get(&id).is_some_and(|j| j.attempt <= attempt) {
            if let Some(job) = self.jobs.remove(&id) {
                let _ = self.slurm.cancel(job.job_id);
                self.retire(id);
            }
        }
    }

    /// Reports starts and ends since the last poll (asking Slurm at most
    /// every [`QUERY_EVERY_MS`]). When Slurm does not answer, nothing is
    /// reported: runs are neither ended nor lost for it.
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        if self.jobs.is_empty() {
            return Vec::new();
        }
        let now = now_ms();
        if self
            .last_query_ms
            .is_some_and(|t| now.saturating_sub(t) < QUERY_EVERY_MS)
        {
            return Vec::new();
        }
        self.last_query_ms = Some(now);
        let Ok(all) = self.slurm.jobs() else {
            return Vec::new();
        };
        self.apply(&all)
    }

    fn apply(&mut self, all: &[SlurmJob]) -> Vec<ExecEvent> {
        let by_id: BTreeMap<u64, &SlurmJob> = all.iter().map(|j| (j.job_id, j)).collect();
        let mut out = Vec::new();
        let ids: Vec<WorkloadId> = self.jobs.keys().copied().collect();
        for id in ids {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let attempt = job.attempt;
            // The job id must still be this run's: a controller that lost
            // its state after a crash hands ids out again.
            let seen = by_id
                .get(&job.job_id)
                .filter(|j| j.comment.is_empty() || j.comment == marker(&self.site, id, attempt));
            let ends = |f: &mut BTreeMap<WorkloadId, u32>| {
                let e = f.entry(id).or_insert(0);
                *e = (*e).max(attempt);
            };
            let o = match seen {
                Some(j) => outcome(j),
                None => Outcome::Lost {
                    why: "Slurm no longer knows the job".into(),
                },
            };
            match o {
                Outcome::Waiting => {}
                Outcome::Running => {
                    if !job.started {
                        job.started = true;
                        out.push(ExecEvent::Started { id, attempt });
                    }
                }
                Outcome::Ended {
                    success,
                    exit_code,
                    note,
                } => {
                    let started = job.started;
                    self.jobs.remove(&id);
                    ends(&mut self.fenced);
                    if !started {
                        out.push(ExecEvent::Started { id, attempt });
                    }
                    out.push(ExecEvent::Finished {
                        id,
                        attempt,
                        success,
                        exit_code,
                        ended_at_ms: seen.and_then(|j| j.end_s).map(|s| (s.max(0) as u64) * 1000),
                        note,
                    });
                }
                Outcome::Lost { why } => {
                    let started = job.started || seen.is_some_and(|j| j.start_s.is_some());
                    let dir = self.workdir(id);
                    append_log(&dir, &format!("skyward: lost on {}: {why}\n", self.site));
                    self.jobs.remove(&id);
                    ends(&mut self.fenced);
                    self.retire(id);
                    out.push(ExecEvent::Lost {
                        id,
                        attempt,
                        started,
                    });
                }
            }
        }
        out
    }

    /// Marks a run of this site as settled (its end is stored): recovery
    /// skips it.
    pub fn retire(&self, id: WorkloadId) {
        let dir = self.workdir(id);
        if read_record(&dir, &self.site).is_some() {
            let _ = std::fs::rename(record_path(&dir), dir.join("slurm-run.done"));
        }
    }

    /// After a restart: the runs on record are found again in Slurm.
    /// Those still pending or running are adopted (no new job), those that
    /// ended are reported with how they ended, those Slurm forgot are
    /// reported lost.
    pub fn recover(&mut self) -> Vec<ExecEvent> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        for e in entries.flatten() {
            let Some(id) = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
                .map(WorkloadId)
            else {
                continue;
            };
            if let Some((attempt, job_id, need)) = read_record(&e.path(), &self.site) {
                self.jobs.insert(
                    id,
                    Job {
                        attempt,
                        job_id,
                        need,
                        started: false,
                    },
                );
            }
        }
        if self.jobs.is_empty() {
            return Vec::new();
        }
        let Ok(all) = self.slurm.jobs() else {
            // Slurm does not answer: keep them all and ask again at the
            // next poll.
            return Vec::new();
        };
        // A job the record names but under another site or attempt is not
        // ours to follow.
        let ours = |j: &&SlurmJob| parse_marker(&j.comment, &self.site).is_some();
        let all: Vec<SlurmJob> = all.iter().filter(ours).cloned().collect();
        self.last_query_ms = Some(now_ms());
        self.apply(&all)
    }

    /// Leaves the jobs running (Slurm keeps them) and forgets them here:
    /// the next server finds them on record.
    pub fn detach(&mut self) -> usize {
        let n = self.jobs.len();
        self.jobs.clear();
        n
    }
}

fn append_log(dir: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("output.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Real output of `squeue --json --states=all` from Slurm 22.05.8
    /// (Debian 12), two one-node-or-two jobs in each state.
    const SQUEUE_22_05: &str = include_str!("../fixtures/squeue-22.05.json");

    fn by_id(jobs: &[SlurmJob], id: u64) -> &SlurmJob {
        jobs.iter().find(|j| j.job_id == id).unwrap()
    }

    #[test]
    fn squeue_json_of_slurm_22_05_is_read() {
        let jobs = parse_squeue_json(SQUEUE_22_05).unwrap();
        assert_eq!(jobs.len(), 7);
        // `exit 3` on two nodes: wait status 768.
        let failed = by_id(&jobs, 1);
        assert_eq!(
            (
                failed.state.as_str(),
                failed.exit_code,
                failed.nodes.as_str()
            ),
            ("FAILED", Some(3), "n[1-2]")
        );
        assert_eq!(failed.end_s.unwrap() - failed.start_s.unwrap(), 1);
        assert_eq!(by_id(&jobs, 3).exit_code, Some(7));
        let ok = by_id(&jobs, 2);
        assert_eq!(
            outcome(ok),
            Outcome::Ended {
                success: true,
                exit_code: Some(0),
                note: None
            }
        );
        assert_eq!(outcome(by_id(&jobs, 4)), Outcome::Running);
        let pending = by_id(&jobs, 5);
        assert_eq!(
            (outcome(pending), pending.start_s),
            (Outcome::Waiting, None)
        );
        assert!(matches!(
            outcome(by_id(&jobs, 7)),
            Outcome::Ended { success: false, .. }
        ));
    }

    #[test]
    fn the_newer_json_shape_is_read_too() {
        let text = r#"{"jobs": [
          {"job_id": 12, "job_state": ["TIMEOUT"], "state_reason": "TimeLimit",
           "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "number": 0},
                         "signal": {"id": {"set": true, "number": 15}, "name": "TERM"}},
           "start_time": {"set": true, "number": 100}, "end_time": {"set": true, "number": 160},
           "comment": "skyward:slurm-a:42:3", "nodes": "n1"},
          {"job_id": 13, "job_state": ["PENDING"], "exit_code": {"status": ["PENDING"],
           "return_code": {"set": false, "number": 0}}, "start_time": {"set": false, "number": 0}}
        ], "errors": []}"#;
        let jobs = parse_squeue_json(text).unwrap();
        assert_eq!(
            jobs[0],
            SlurmJob {
                job_id: 12,
                state: "TIMEOUT".into(),
                reason: "TimeLimit".into(),
                exit_code: None,
                signal: Some(15),
                start_s: Some(100),
                end_s: Some(160),
                comment: "skyward:slurm-a:42:3".into(),
                nodes: "n1".into(),
            }
        );
        assert!(matches!(
            outcome(&jobs[0]),
            Outcome::Ended { success: false, exit_code: Some(143), note: Some(n) } if n.contains("walltime")
        ));
        assert_eq!(jobs[1].start_s, None);
        assert_eq!(
            parse_marker(&jobs[0].comment, "slurm-a"),
            Some((WorkloadId(42), 3))
        );
        assert_eq!(parse_marker(&jobs[0].comment, "slurm"), None);
        assert!(parse_squeue_json("{\"errors\": [{\"error\": \"x\"}], \"jobs\": []}").is_err());
        assert!(parse_squeue_json("not json").is_err());
    }

    #[test]
    fn scontrol_one_line_form_is_read() {
        // Real `scontrol -o show job` of Slurm 22.05 (cut).
        let line = "JobId=3 JobName=wrap UserId=root(0) GroupId=root(0) Priority=4294901757 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 ExitCode=7:0 RunTime=00:00:00 StartTime=2026-12-01T05:20:54 EndTime=2026-12-01T05:20:54 NodeList=n[1-2] Comment=skyward:a:9:1";
        let j = parse_scontrol(line).unwrap();
        assert_eq!(j.job_id, 3);
        assert_eq!(
            (j.state.as_str(), j.exit_code, j.signal),
            ("FAILED", Some(7), None)
        );
        // 2026-12-01T05:20:54Z = 1796102454 (the same job's squeue --json).
        assert_eq!(j.start_s, Some(1_796_102_454));
        assert_eq!(j.comment, "skyward:a:9:1");
        let killed =
            parse_scontrol("JobId=4 JobState=CANCELLED ExitCode=0:9 StartTime=Unknown").unwrap();
        assert_eq!(
            (killed.exit_code, killed.signal, killed.start_s),
            (None, Some(9), None)
        );
        assert!(parse_scontrol("garbage").is_none());
    }

    #[test]
    fn every_state_has_a_meaning() {
        let j = |state: &str| SlurmJob {
            job_id: 1,
            state: state.into(),
            reason: String::new(),
            exit_code: Some(0),
            signal: None,
            start_s: Some(1),
            end_s: Some(2),
            comment: String::new(),
            nodes: "n1".into(),
        };
        for (state, want) in [
            ("PENDING", "waiting"),
            ("CONFIGURING", "waiting"),
            ("RUNNING", "running"),
            ("COMPLETING", "running"),
            ("COMPLETED", "ended"),
            ("FAILED", "ended"),
            ("CANCELLED", "ended"),
            ("TIMEOUT", "ended"),
            ("OUT_OF_MEMORY", "ended"),
            ("PREEMPTED", "lost"),
            ("NODE_FAIL", "lost"),
            ("BOOT_FAIL", "lost"),
            ("REQUEUED", "lost"),
            ("SOMETHING_NEW", "lost"),
        ] {
            let got = match outcome(&j(state)) {
                Outcome::Waiting => "waiting",
                Outcome::Running => "running",
                Outcome::Ended { .. } => "ended",
                Outcome::Lost { .. } => "lost",
            };
            assert_eq!(got, want, "{state}");
        }
    }

    /// After a controller lost its state, the run's job id may belong to
    /// another job: its end is not the run's; the run is lost.
    #[test]
    fn a_reused_job_id_is_not_taken_for_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = SlurmExecutor::new("a", dir.path(), 4, Slurm::default());
        ex.jobs.insert(
            WorkloadId(7),
            Job {
                attempt: 2,
                job_id: 40,
                need: 1,
                started: true,
            },
        );
        let other = SlurmJob {
            job_id: 40,
            state: "COMPLETED".into(),
            reason: String::new(),
            exit_code: Some(0),
            signal: None,
            start_s: Some(1),
            end_s: Some(2),
            comment: "skyward:b:9:1".into(),
            nodes: "n1".into(),
        };
        assert_eq!(
            ex.apply(std::slice::from_ref(&other)),
            vec![ExecEvent::Lost {
                id: WorkloadId(7),
                attempt: 2,
                started: true
            }]
        );
        // Its own comment: its end.
        ex.jobs.insert(
            WorkloadId(7),
            Job {
                attempt: 3,
                job_id: 40,
                need: 1,
                started: true,
            },
        );
        let own = SlurmJob {
            comment: marker("a", WorkloadId(7), 3),
            ..other
        };
        assert!(matches!(
            ex.apply(&[own]).as_slice(),
            [ExecEvent::Finished { success: true, .. }]
        ));
    }

    #[test]
    fn another_stack_s_device_variable_names_slurm_s_gpus() {
        let spec = RunSpec {
            run: "x".into(),
            ..RunSpec::default()
        };
        let node = |acc: &str| {
            batch_script("s", WorkloadId(1), 1, Path::new("/w"), 2, acc, &spec).node_script
        };
        assert!(node("Trainium2").contains(
            ": \"${NEURON_RT_VISIBLE_CORES:=${CUDA_VISIBLE_DEVICES:-${SLURM_STEP_GPUS:-$SLURM_JOB_GPUS}}}\"; export NEURON_RT_VISIBLE_CORES\n"
        ));
        assert!(node("MI300X").contains("export ROCR_VISIBLE_DEVICES\n"));
        assert!(node("MI300X").contains("export HIP_VISIBLE_DEVICES\n"));
        // NVIDIA: Slurm's own CUDA_VISIBLE_DEVICES, nothing added.
        assert!(!node("H100").contains("VISIBLE"));
    }

    #[test]
    fn the_batch_script_asks_for_the_gang_and_its_gpus() {
        let spec = RunSpec {
            setup: Some("pip install x".into()),
            run: "python train.py".into(),
            nodes: 2,
            walltime_ms: Some(90_001),
            ..RunSpec::default()
        };
        let b = batch_script(
            "hpc",
            WorkloadId(7),
            2,
            Path::new("/shared/w/7"),
            4,
            "H100",
            &spec,
        );
        for line in [
            "#SBATCH --nodes=2",
            "#SBATCH --gres=gpu:4",
            "#SBATCH --comment=skyward:hpc:7:2",
            "#SBATCH --output=/shared/w/7/output.log",
            "#SBATCH --time=2",
            "srun --kill-on-bad-exit=1 --ntasks-per-node=1 sh -c 'sh \"$0\"; c=$?; echo $c > \"$1-${SLURM_NODEID:-0}\"; exit $c' '/shared/w/7/node-2.sh' '/shared/w/7/exit-2'",
            "while [ $i -lt 2 ]; do",
        ] {
            assert!(
                b.script.lines().any(|l| l == line),
                "{line} in\n{}",
                b.script
            );
        }
        assert!(b
            .node_script
            .contains("pip install x\n} || exit $?\npython train.py"));
    }
}
