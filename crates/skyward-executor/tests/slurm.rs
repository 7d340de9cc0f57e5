#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The Slurm executor against a real Slurm: the cluster `scripts/slurm.sh`
//! starts (slurmctld, two slurmd nodes n1 and n2 in their own network
//! namespaces, munge; two GRES gpus per node), which `scripts/test.sh`
//! starts for the suite.

use skyward_core::WorkloadId;
use skyward_executor::slurm::{Slurm, SlurmExecutor};
use skyward_executor::{ExecEvent, RunSpec};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm() -> Slurm {
    match std::env::var("SKYWARD_TEST_SLURM_CONF") {
        Ok(c) if !c.is_empty() => Slurm {
            conf: Some(PathBuf::from(c)),
            run_as: None,
            rest: None,
            accelerator: "H100".into(),
        },
        _ => panic!(
            "SKYWARD_TEST_SLURM_CONF is not set: run the suite with ./scripts/test.sh, which starts a Slurm cluster"
        ),
    }
}

/// Polls until `want` says the events so far are enough.
fn poll_until(
    ex: &mut SlurmExecutor,
    secs: u64,
    mut want: impl FnMut(&[ExecEvent]) -> bool,
) -> Vec<ExecEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        seen.extend(ex.poll());
        if want(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "waited {secs}s; events {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finished(events: &[ExecEvent]) -> Option<(bool, Option<i32>, Option<String>)> {
    events.iter().find_map(|e| match e {
        ExecEvent::Finished {
            success,
            exit_code,
            note,
            ..
        } => Some((*success, *exit_code, note.clone())),
        _ => None,
    })
}

/// Waits until Slurm (as `jobs` lists it) says the job was cancelled.
/// slurmd reports the end of a killed job when it gets to it: on a
/// machine loaded by the whole suite, once 30 s were not enough (the job
/// stayed COMPLETING), so the wait is generous; the check is that Slurm
/// ends it, not how fast.
fn wait_cancelled(jobs: impl Fn() -> Vec<skyward_executor::slurm::SlurmJob>, job: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = jobs().into_iter().find(|j| j.job_id == job).unwrap();
        if j.state == "CANCELLED" {
            return;
        }
        assert!(Instant::now() < deadline, "job {job} stayed {}", j.state);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spec(run: &str, nodes: u32) -> RunSpec {
    RunSpec {
        run: run.into(),
        nodes,
        ..RunSpec::default()
    }
}

/// How many jobs Slurm knows with this site's marker.
fn jobs_of(site: &str) -> usize {
    slurm()
        .jobs()
        .unwrap()
        .iter()
        .filter(|j| j.comment.starts_with(&format!("skyward:{site}:")))
        .count()
}

/// A 2-node gang is one Slurm job that really spans both nodes, each node
/// with its GPU (GRES) and its rank; the job's environment is the
/// workload's (secrets included) and never the server's.
#[test]
fn a_gang_spans_two_nodes_with_its_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = SlurmExecutor::new("gang", dir.path(), 4, slurm());
    // The server's own environment must not reach the job.
    std::env::set_var("SKYWARD_TOKEN", "server-secret-token");
    let mut s = spec(
        "echo \"node $(hostname) rank $SKYWARD_NODE_RANK gpus $CUDA_VISIBLE_DEVICES key ${API_KEY:-none} token ${SKYWARD_TOKEN:-none}\"",
        2,
    );
    s.setup = Some("echo setup on $(hostname)".into());
    s.secrets.insert("API_KEY".into(), "k-123".into());
    let acked = ex.dispatch(WorkloadId(1), 1, 2, &s).unwrap();
    assert_eq!(
        acked,
        vec![ExecEvent::Acked {
            id: WorkloadId(1),
            attempt: 1
        }]
    );
    assert_eq!(ex.used(), 2);
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert!(
        events.contains(&ExecEvent::Started {
            id: WorkloadId(1),
            attempt: 1
        }),
        "{events:?}"
    );
    assert_eq!(finished(&events), Some((true, Some(0), None)), "{events:?}");
    assert_eq!(ex.used(), 0);
    let log = std::fs::read_to_string(dir.path().join("1/output.log")).unwrap();
    // One line per node: its rank, one GPU of its two (which one depends
    // on what else runs there), the secret, and no server token.
    for (node, rank) in [("n1", 0), ("n2", 1)] {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("node {node} ")))
            .unwrap_or_else(|| panic!("no line of {node} in\n{log}"));
        let gpus = ["0", "1"]
            .iter()
            .any(|g| line == format!("node {node} rank {rank} gpus {g} key k-123 token none"));
        assert!(gpus, "{line}");
        assert!(log.contains(&format!("setup on {node}")), "{log}");
    }
}

/// The same through slurmrestd (v0.0.38, Slurm 22.05's): the 2-node gang
/// is one job on both nodes with their GPUs, its exit code comes back, a
/// cancel stops a job. The Slurm commands are not used (their slurm.conf
/// does not exist). Jobs run as slurmrestd's user (nobody), so the
/// executor hands the run's directory to it.
#[test]
fn through_slurmrestd_a_gang_runs_ends_and_is_cancelled() {
    let target = std::env::var("SKYWARD_TEST_SLURMRESTD")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("SKYWARD_TEST_SLURMRESTD is not set: run the suite with ./scripts/test.sh (scripts/slurm.sh starts slurmrestd)"));
    let rest = skyward_executor::slurm_rest::SlurmRest::parse(&target, "v0.0.38").unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let nobody = skyward_executor::isolation::resolve_run_as(Some("nobody")).unwrap();
    let s = Slurm {
        conf: Some(PathBuf::from("/nonexistent/slurm.conf")),
        run_as: nobody,
        rest: Some(rest),
        accelerator: "H100".into(),
    };
    let mut ex = SlurmExecutor::new("rest", dir.path(), 4, s);
    // Rank 0 fails; rank 1 is still running and is stopped by Slurm
    // because of it (SIGTERM, 143): the job's exit code is rank 0's 3.
    // Rank 0 fails 2 s in, so that rank 1 has written its line: failing at
    // once, Slurm sometimes stopped rank 1 before its echo.
    let run = spec("echo \"node $(hostname) rank $SKYWARD_NODE_RANK gpus $CUDA_VISIBLE_DEVICES uid $(id -u)\"; [ $SKYWARD_NODE_RANK = 0 ] && sleep 2 && exit 3; sleep 30", 2);
    ex.dispatch(WorkloadId(1), 1, 2, &run).unwrap();
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert_eq!(
        finished(&events),
        Some((false, Some(3), None)),
        "{events:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("1/output.log")).unwrap();
    for (node, rank) in [("n1", 0), ("n2", 1)] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("node {node} rank {rank} gpus "))
                    && l.ends_with("uid 65534")),
            "{log}"
        );
    }
    // Cancel through the API: the job ends CANCELLED in Slurm.
    ex.dispatch(WorkloadId(2), 1, 1, &spec("sleep 600", 1))
        .unwrap();
    let job = ex.job_id(WorkloadId(2)).unwrap();
    poll_until(&mut ex, 60, |e| {
        e.iter().any(|x| matches!(x, ExecEvent::Started { .. }))
    });
    ex.cancel(WorkloadId(2), 1);
    assert_eq!(ex.used(), 0);
    let rest = skyward_executor::slurm_rest::SlurmRest::parse(&target, "v0.0.38").unwrap();
    wait_cancelled(|| rest.jobs().unwrap(), job);
}

/// When one rank of a gang fails, Slurm stops the others (SIGTERM, so
/// srun alone would say 143): the exit code reported is the failing
/// rank's own, whichever rank it is.
#[test]
fn a_gang_reports_the_exit_code_of_the_rank_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let site = format!("bad{}", std::process::id());
    let mut ex = SlurmExecutor::new(&site, dir.path(), 4, slurm());
    for (id, failing) in [(1, 1), (2, 0)] {
        let run = format!("[ $SKYWARD_NODE_RANK = {failing} ] && exit 42; sleep 30");
        ex.dispatch(WorkloadId(id), 1, 2, &spec(&run, 2)).unwrap();
        let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
        assert_eq!(
            finished(&events),
            Some((false, Some(42), None)),
            "rank {failing} failing: {events:?}"
        );
    }
    // A gang that a signal stops on its own still says so.
    ex.dispatch(WorkloadId(3), 1, 2, &spec("kill -KILL $$", 2))
        .unwrap();
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert_eq!(
        finished(&events),
        Some((false, Some(137), None)),
        "{events:?}"
    );
}

/// Exit codes come back from Slurm; a stale attempt and a gang larger than
/// what is free are refused without a job.
#[test]
fn exit_codes_fencing_and_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let site = format!("codes{}", std::process::id());
    let mut ex = SlurmExecutor::new(&site, dir.path(), 2, slurm());
    ex.dispatch(WorkloadId(5), 3, 1, &spec("exit 7", 1))
        .unwrap();
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert_eq!(
        finished(&events),
        Some((false, Some(7), None)),
        "{events:?}"
    );
    // Attempt 2 is older than the 3 already run: refused.
    assert!(ex.dispatch(WorkloadId(5), 2, 1, &spec("true", 1)).is_err());
    // More than the site's 2 accelerators.
    assert!(ex.dispatch(WorkloadId(6), 1, 3, &spec("true", 1)).is_err());
    assert!(ex.dispatch(WorkloadId(7), 1, 1, &spec("true", 1)).is_ok());
    // A variable Slurm owns cannot be set by a workload.
    let mut bad = spec("true", 1);
    bad.env.insert("SLURM_JOB_ID".into(), "1".into());
    assert!(ex.dispatch(WorkloadId(8), 1, 1, &bad).is_err());
    // Nor more variables than any run may have (sbatch's environment).
    let mut many = spec("true", 1);
    for i in 0..10_000 {
        many.env.insert(format!("V{i}"), "x".into());
    }
    assert!(ex.dispatch(WorkloadId(10), 1, 1, &many).is_err());
    assert_eq!(jobs_of(&site), 2, "a refused dispatch submitted a job");
    poll_until(&mut ex, 60, |e| finished(e).is_some());
}

/// A cancelled run is cancelled in Slurm (scancel), and its capacity is
/// free at once.
#[test]
fn cancel_stops_the_slurm_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = SlurmExecutor::new("cancel", dir.path(), 2, slurm());
    ex.dispatch(WorkloadId(9), 1, 1, &spec("sleep 300", 1))
        .unwrap();
    let job = ex.job_id(WorkloadId(9)).unwrap();
    poll_until(&mut ex, 60, |e| {
        e.iter().any(|x| matches!(x, ExecEvent::Started { .. }))
    });
    ex.cancel(WorkloadId(9), 1);
    assert_eq!(ex.used(), 0);
    wait_cancelled(|| slurm().jobs().unwrap(), job);
    // The fence holds: attempt 1 cannot come back.
    assert!(ex.dispatch(WorkloadId(9), 1, 1, &spec("true", 1)).is_err());
}

/// A server that restarts finds its runs again in Slurm: a running job is
/// adopted (no second job), and its end is reported; one that ended while
/// it was down is reported with its exit code.
#[test]
fn recovery_adopts_running_jobs_and_reports_ended_ones() {
    let dir = tempfile::tempdir().unwrap();
    let site = format!("recover-{}", std::process::id());
    let mut first = SlurmExecutor::new(&site, dir.path(), 2, slurm());
    first
        .dispatch(WorkloadId(11), 1, 1, &spec("sleep 3", 1))
        .unwrap();
    poll_until(&mut first, 60, |e| {
        e.iter().any(|x| matches!(x, ExecEvent::Started { .. }))
    });
    // Submitted, then the server goes away before it hears of it again.
    first
        .dispatch(WorkloadId(12), 1, 1, &spec("exit 4", 1))
        .unwrap();
    assert_eq!(first.detach(), 2);
    drop(first);
    std::thread::sleep(Duration::from_secs(1));

    let mut second = SlurmExecutor::new(&site, dir.path(), 2, slurm());
    let mut events = second.recover();
    // Each run is found again: still running (adopted), or reported
    // ended. (Which one depends on how soon Slurm ran `exit 4`: under
    // load, not within the second the server was away.)
    let running = second.running();
    for id in [WorkloadId(11), WorkloadId(12)] {
        let ended = events
            .iter()
            .any(|e| matches!(e, ExecEvent::Finished { id: i, .. } if *i == id));
        assert!(
            running.contains(&id) != ended,
            "{id:?}: {running:?} {events:?}"
        );
    }
    assert_eq!(jobs_of(&site), 2, "a job was submitted again");
    events.extend(poll_until(&mut second, 60, |e| {
        e.iter()
            .filter(|x| matches!(x, ExecEvent::Finished { .. }))
            .count()
            + events
                .iter()
                .filter(|x| matches!(x, ExecEvent::Finished { .. }))
                .count()
            >= 2
    }));
    let end = |id: u64| {
        events.iter().find_map(|e| match e {
            ExecEvent::Finished {
                id: i,
                success,
                exit_code,
                ..
            } if i.0 == id => Some((*success, *exit_code)),
            _ => None,
        })
    };
    assert_eq!(end(11), Some((true, Some(0))), "{events:?}");
    assert_eq!(end(12), Some((false, Some(4))), "{events:?}");
    // Settled runs are not found again.
    second.retire(WorkloadId(11));
    second.retire(WorkloadId(12));
    let mut third = SlurmExecutor::new(&site, dir.path(), 2, slurm());
    assert!(third.recover().is_empty());
    assert!(third.running().is_empty());
}

/// With `run_as`, the job runs as that user, not as the server's.
#[test]
fn jobs_run_as_the_configured_user() {
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let who = skyward_executor::isolation::resolve_run_as(Some("nobody"))
        .unwrap()
        .unwrap();
    let mut s = slurm();
    s.run_as = Some(who.clone());
    let mut ex = SlurmExecutor::new("runas", dir.path(), 2, s);
    ex.dispatch(WorkloadId(21), 1, 1, &spec("echo uid $(id -u)", 1))
        .unwrap();
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert_eq!(finished(&events), Some((true, Some(0), None)), "{events:?}");
    let log = std::fs::read_to_string(dir.path().join("21/output.log")).unwrap();
    assert!(log.contains(&format!("uid {}", who.uid)), "{log}");
}

/// A cluster of its own (`scripts/slurm.sh`), stopped when dropped: the
/// crash test must not break the shared one.
struct OwnCluster {
    conf: String,
    dir: PathBuf,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let out = Command::new("scripts/slurm.sh")
            .current_dir(root)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .to_string()
        };
        OwnCluster {
            conf: var("SKYWARD_TEST_SLURM_CONF"),
            dir: PathBuf::from(var("SKYWARD_TEST_SLURM_DIR")),
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("scripts/slurm.sh")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// `kill -9` of slurmctld while a job runs (on a cluster of its own): the
/// executor reports nothing while Slurm does not answer (no false loss),
/// and once the controller is back, an honest end: the job's real end if
/// the controller had saved it, else (a controller that lost its state
/// forgets the job, or hands its id to another) no success for it.
#[test]
fn a_controller_crash_loses_nothing() {
    let cluster = OwnCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let own = Slurm {
        conf: Some(PathBuf::from(&cluster.conf)),
        run_as: None,
        rest: None,
        accelerator: "H100".into(),
    };
    let mut ex = SlurmExecutor::new("crash", dir.path(), 2, own);
    ex.dispatch(WorkloadId(31), 1, 1, &spec("sleep 10; echo survived", 1))
        .unwrap();
    poll_until(&mut ex, 60, |e| {
        e.iter().any(|x| matches!(x, ExecEvent::Started { .. }))
    });
    std::thread::sleep(Duration::from_secs(3));
    let pid = std::fs::read_to_string(cluster.dir.join("slurmctld.pid"))
        .unwrap()
        .trim()
        .to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    // Slurm is down: polls say nothing, and the run is still held.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        let events = ex.poll();
        assert!(events.is_empty(), "{events:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ex.running(), vec![WorkloadId(31)]);
    let st = Command::new("scripts/slurm.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["restart-controller"])
        .arg(&cluster.dir)
        .status()
        .unwrap();
    assert!(st.success());
    let events = poll_until(&mut ex, 60, |e| {
        e.iter()
            .any(|x| matches!(x, ExecEvent::Finished { .. } | ExecEvent::Lost { .. }))
    });
    let ends = events
        .iter()
        .filter(|x| matches!(x, ExecEvent::Finished { .. } | ExecEvent::Lost { .. }))
        .count();
    assert_eq!(ends, 1, "{events:?}");
    let log = std::fs::read_to_string(dir.path().join("31/output.log")).unwrap_or_default();
    match finished(&events) {
        // Success only if the job really ran to its end.
        Some((true, _, _)) => assert!(log.contains("survived"), "{log}"),
        Some((false, _, note)) => assert!(note.is_some(), "{events:?}"),
        None => {} // lost: requeued by the core
    }
    eprintln!("after the controller crash: {events:?}");
}

/// A Trainium site on Slurm: its runs get NEURON_RT_VISIBLE_CORES naming
/// the devices Slurm gave the node (the GRES gpus, which Slurm names in
/// CUDA_VISIBLE_DEVICES), as a local Trainium site's runs do.
#[test]
fn a_neuron_site_s_runs_get_their_devices_in_neuron_s_variable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Slurm {
        accelerator: "Trainium2".into(),
        ..slurm()
    };
    let mut ex = SlurmExecutor::new("trn", dir.path(), 4, s);
    ex.dispatch(
        WorkloadId(41),
        1,
        2,
        &spec(
            "echo \"neuron=$NEURON_RT_VISIBLE_CORES cuda=$CUDA_VISIBLE_DEVICES\"",
            1,
        ),
    )
    .unwrap();
    let events = poll_until(&mut ex, 60, |e| finished(e).is_some());
    assert_eq!(finished(&events), Some((true, Some(0), None)), "{events:?}");
    let log = std::fs::read_to_string(dir.path().join("41/output.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.starts_with("neuron="))
        .unwrap_or_else(|| panic!("{log}"));
    let (neuron, cuda) = line
        .strip_prefix("neuron=")
        .unwrap()
        .split_once(" cuda=")
        .unwrap();
    // Two devices, both named the same way.
    assert_eq!(neuron.split(',').count(), 2, "{line}");
    assert_eq!(neuron, cuda, "{line}");
}
