#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The local executor with real processes. Waits are bounded loops; no
//! test asserts on timing.

use skyward_core::WorkloadId;
use skyward_executor::local::DispatchError;
use skyward_executor::{ExecEvent, LocalExecutor, RunSpec};
use std::time::Duration;

fn wait_finished(ex: &mut LocalExecutor) -> Vec<ExecEvent> {
    for _ in 0..1_000 {
        let ev = ex.poll();
        if !ev.is_empty() {
            return ev;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no process finished within 10 s");
}

fn run(cmd: &str) -> RunSpec {
    RunSpec {
        run: cmd.into(),
        ..RunSpec::default()
    }
}

#[test]
fn runs_with_environment_logs_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = LocalExecutor::new("local:us-east-1", dir.path(), 16);
    let mut spec = run("echo \"id=$SKYWARD_WORKLOAD_ID site=$SKYWARD_SITE acc=$SKYWARD_ACCELERATORS attempt=$SKYWARD_ATTEMPT model=$MODEL\"; test -d \"$SKYWARD_CHECKPOINT_DIR\" && echo ckpt-ok; cat setup.txt");
    spec.setup = Some("echo prepared > setup.txt".into());
    spec.env.insert("MODEL".into(), "llama".into());
    let ev = ex.dispatch(WorkloadId(7), 1, 8, &spec).unwrap();
    assert_eq!(
        ev,
        vec![
            ExecEvent::Acked {
                id: WorkloadId(7),
                attempt: 1
            },
            ExecEvent::Started {
                id: WorkloadId(7),
                attempt: 1
            }
        ]
    );
    assert_eq!(ex.used(), 8);
    assert_eq!(
        wait_finished(&mut ex),
        vec![ExecEvent::Finished {
            id: WorkloadId(7),
            attempt: 1,
            success: true
        }]
    );
    assert_eq!(ex.used(), 0);
    let log = std::fs::read_to_string(ex.workdir(WorkloadId(7)).join("output.log")).unwrap();
    assert!(
        log.contains("id=7 site=local:us-east-1 acc=8 attempt=1 model=llama"),
        "{log}"
    );
    assert!(log.contains("ckpt-ok") && log.contains("prepared"), "{log}");
}

#[test]
fn failures_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = LocalExecutor::new("s", dir.path(), 8);
    ex.dispatch(WorkloadId(1), 1, 1, &run("echo oops >&2; exit 3"))
        .unwrap();
    assert_eq!(
        wait_finished(&mut ex),
        vec![ExecEvent::Finished {
            id: WorkloadId(1),
            attempt: 1,
            success: false
        }]
    );
    assert!(
        std::fs::read_to_string(ex.workdir(WorkloadId(1)).join("output.log"))
            .unwrap()
            .contains("oops")
    );
    // A failing setup fails the run before it starts.
    let mut spec = run("echo should-not-run");
    spec.setup = Some("false".into());
    ex.dispatch(WorkloadId(2), 1, 1, &spec).unwrap();
    assert_eq!(
        wait_finished(&mut ex),
        vec![ExecEvent::Finished {
            id: WorkloadId(2),
            attempt: 1,
            success: false
        }]
    );
    assert!(
        !std::fs::read_to_string(ex.workdir(WorkloadId(2)).join("output.log"))
            .unwrap()
            .contains("should-not-run")
    );
}

#[test]
fn capacity_fencing_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = LocalExecutor::new("s", dir.path(), 8);
    // A long job that spawns a child of its own: a cancel must stop both.
    ex.dispatch(WorkloadId(1), 1, 8, &run("sleep 300 & sleep 300; wait"))
        .unwrap();
    assert!(matches!(
        ex.dispatch(WorkloadId(2), 1, 1, &run("true")),
        Err(DispatchError::NoCapacity {
            need: 1,
            free: 0,
            ..
        })
    ));
    assert_eq!(ex.running(), vec![WorkloadId(1)]);
    // An older attempt's cancel arrives after attempt 2 was dispatched: it must not stop attempt 2.
    ex.cancel(WorkloadId(1), 0);
    assert_eq!(ex.running(), vec![WorkloadId(1)]);
    ex.cancel(WorkloadId(1), 1);
    assert!(ex.running().is_empty());
    assert_eq!(ex.used(), 0);
    assert!(
        ex.poll().is_empty(),
        "a cancelled run is not reported as finished"
    );
    // Attempt 1 is fenced now; attempt 2 may run.
    assert!(matches!(
        ex.dispatch(WorkloadId(1), 1, 1, &run("true")),
        Err(DispatchError::Stale(_, 1))
    ));
    ex.dispatch(WorkloadId(1), 2, 1, &run("true")).unwrap();
    assert_eq!(
        wait_finished(&mut ex),
        vec![ExecEvent::Finished {
            id: WorkloadId(1),
            attempt: 2,
            success: true
        }]
    );
    // No `sleep 300` of attempt 1 survives the cancel.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ps -eo args | grep -c '^sleep 300$' || true")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "orphaned processes left behind"
    );
}

/// A server that dies leaves its runs going; the next one adopts the live
/// ones and reports the ones that ended meanwhile with their exit code.
#[test]
fn runs_survive_the_executor_and_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("release");
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    // Workload 1 ends while nobody watches; 2 is still running at recovery.
    ex.dispatch(WorkloadId(1), 1, 1, &run("exit 3")).unwrap();
    let wait = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo done",
        marker.display()
    );
    ex.dispatch(WorkloadId(2), 4, 2, &run(&wait)).unwrap();
    // Workload 3 belongs to another site on the same root.
    let mut other = LocalExecutor::new("gcp:europe-west4", dir.path(), 16);
    other.dispatch(WorkloadId(3), 1, 1, &run("true")).unwrap();
    assert_eq!(ex.detach(), 2);
    drop(ex);
    // Let workload 1 end.
    let exit1 = dir.path().join("1").join(".skyward-exit-1");
    for _ in 0..1_000 {
        if exit1.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    let ev = ex.recover();
    assert_eq!(
        ev,
        vec![ExecEvent::Finished {
            id: WorkloadId(1),
            attempt: 1,
            success: false
        }]
    );
    assert_eq!(ex.running(), vec![WorkloadId(2)]);
    assert_eq!(ex.used(), 2);
    // Until the runtime has stored the end and retired the run, a crash
    // and recovery report it again (never lost); after, nothing new.
    let again = ex.recover();
    assert_eq!(again.len(), 1, "{again:?}");
    ex.retire(WorkloadId(1));
    assert!(ex.recover().is_empty());
    std::fs::write(&marker, "").unwrap();
    let ev = wait_finished(&mut ex);
    assert_eq!(
        ev,
        vec![ExecEvent::Finished {
            id: WorkloadId(2),
            attempt: 4,
            success: true
        }]
    );
    let log = std::fs::read_to_string(dir.path().join("2").join("output.log")).unwrap();
    assert_eq!(log, "done\n");
}

/// A run that vanished without an exit code (killed from outside) is lost.
#[test]
fn a_run_killed_while_unwatched_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    ex.dispatch(WorkloadId(5), 2, 1, &run("sleep 30")).unwrap();
    let pid_path = dir.path().join("5").join(".skyward-pid-2");
    // The pid file appears whole (written, then renamed).
    for _ in 0..1_000 {
        if pid_path.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ex.detach();
    let pid = std::fs::read_to_string(&pid_path)
        .unwrap()
        .trim()
        .to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    // Reap our (detached) child so it is not left a zombie that looks alive.
    drop(ex);
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    let mut ev = Vec::new();
    for _ in 0..1_000 {
        ev = ex.recover();
        if !ev.is_empty() || !ex.running().is_empty() {
            if ex.running().is_empty() {
                break;
            }
            ev = wait_finished(&mut ex);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        ev,
        vec![ExecEvent::Lost {
            id: WorkloadId(5),
            attempt: 2
        }]
    );
}

/// A run whose shell has not written its pid yet (a server that died right
/// after starting it) is adopted, not declared lost: it would run twice.
#[test]
fn a_run_without_its_pid_yet_is_adopted_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("go");
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    ex.dispatch(
        WorkloadId(9),
        1,
        1,
        &run(&format!(
            "while [ ! -e {} ]; do sleep 0.05; done",
            marker.display()
        )),
    )
    .unwrap();
    ex.detach();
    // As if the shell had not got to its first line.
    let pid_path = dir.path().join("9").join(".skyward-pid-1");
    for _ in 0..1_000 {
        if pid_path.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let saved = std::fs::read_to_string(&pid_path).unwrap();
    std::fs::remove_file(&pid_path).unwrap();
    let mut ex = LocalExecutor::new("aws:us-east-1", dir.path(), 16);
    assert!(ex.recover().is_empty());
    assert_eq!(ex.running(), vec![WorkloadId(9)]);
    // The pid shows up; the run is followed to its end.
    std::fs::write(&pid_path, saved).unwrap();
    assert!(ex.poll().is_empty());
    std::fs::write(&marker, "").unwrap();
    let ev = wait_finished(&mut ex);
    assert_eq!(
        ev,
        vec![ExecEvent::Finished {
            id: WorkloadId(9),
            attempt: 1,
            success: true
        }]
    );
}
