//! Keeping a workload away from the server: the identity it runs under,
//! the cgroup that holds every process it starts, and the check that its
//! work area is reachable by that identity and nothing more.
//!
//! A submitted workload is code run by a stranger. When the server runs
//! as root, each run drops to an unprivileged user (`nobody` unless the
//! config's `run_as` says otherwise) through `setpriv`, with no
//! supplementary groups and `no_new_privs`, so it cannot read the
//! server's state directory (mode 0700), its database or its tokens.
//! When the server is not root it cannot change identity: runs share its
//! user, and only the layout (a work area outside the state directory)
//! separates them; the server says so when it starts.

use std::fs;
use std::path::{Path, PathBuf};

/// An unprivileged identity for runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// The `setpriv` binary (util-linux).
    pub setpriv: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsolationError {
    #[error("run_as '{0}': no such user in /etc/passwd")]
    NoSuchUser(String),
    #[error("run_as '{0}': that is root; runs must not have the server's rights")]
    Root(String),
    #[error("run_as '{user}' needs the server to start as root (it runs as uid {uid}); drop run_as to run workloads as the server's own user")]
    NotRoot { user: String, uid: u32 },
    #[error("setpriv (util-linux) is not installed: it is how a root server runs workloads as '{0}'; install util-linux")]
    NoSetpriv(String),
    #[error("{path}: user '{user}' cannot reach this work directory ({why}); give --work-dir a directory whose parents it can enter")]
    Unreachable {
        path: String,
        user: String,
        why: String,
    },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// The effective uid of this process (from /proc; no libc call).
pub fn current_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// (uid, gid) of `user` from an /etc/passwd text.
pub fn lookup_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? != user {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn find_setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Who runs workloads: `requested` (the config's `run_as`), else
/// `nobody` when the server is root, else nobody else (the server's own
/// user; None).
pub fn resolve_run_as(requested: Option<&str>) -> Result<Option<RunAs>, IsolationError> {
    let uid = current_uid().unwrap_or(u32::MAX);
    let user = match (requested, uid == 0) {
        (Some(u), true) => u.to_string(),
        (None, true) => "nobody".to_string(),
        (Some(u), false) => {
            return Err(IsolationError::NotRoot {
                user: u.to_string(),
                uid,
            })
        }
        (None, false) => return Ok(None),
    };
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| IsolationError::Io {
        path: "/etc/passwd".into(),
        message: e.to_string(),
    })?;
    let (run_uid, run_gid) =
        lookup_user(&passwd, &user).ok_or_else(|| IsolationError::NoSuchUser(user.clone()))?;
    if run_uid == 0 {
        return Err(IsolationError::Root(user));
    }
    let setpriv = find_setpriv().ok_or_else(|| IsolationError::NoSetpriv(user.clone()))?;
    Ok(Some(RunAs {
        user,
        uid: run_uid,
        gid: run_gid,
        setpriv,
    }))
}

/// Whether `who` can enter `dir` and each of its parents, by their mode
/// bits and owners (root needs no check).
pub fn check_reachable(dir: &Path, who: &RunAs) -> Result<(), IsolationError> {
    use std::os::unix::fs::MetadataExt;
    let abs = std::path::absolute(dir).map_err(|e| IsolationError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    for p in abs.ancestors() {
        let Ok(m) = fs::metadata(p) else {
            continue; // created later, by us, with the right mode
        };
        let mode = m.mode();
        let ok = if m.uid() == who.uid {
            mode & 0o100 != 0
        } else if m.gid() == who.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(IsolationError::Unreachable {
                path: abs.display().to_string(),
                user: who.user.clone(),
                why: format!("{} is mode {:o}", p.display(), mode & 0o7777),
            });
        }
    }
    Ok(())
}

/// Where this server's runs get their cgroups: `skyward/<tag>` under our
/// own cgroup v2 group, if the unified hierarchy is mounted and writable
/// (root, or a delegated subtree). `tag` keeps two servers on one machine
/// apart (the server passes one derived from its work directory, stable
/// across restarts). None otherwise: runs are then held by their process
/// group only (a process that calls setsid escapes it; the server says
/// so).
pub fn cgroup_root(tag: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    // "… mount-point … - cgroup2 …"
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let base = mount
        .join(rel.trim_start_matches('/'))
        .join("skyward")
        .join(tag);
    fs::create_dir_all(&base).ok()?;
    // Writable: a probe group can be made and removed.
    let probe = base.join(".probe");
    let _ = fs::remove_dir(&probe);
    fs::create_dir(&probe).ok()?;
    let usable = probe.join("cgroup.procs").exists();
    let _ = fs::remove_dir(&probe);
    usable.then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_read_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(lookup_user(passwd, "nobody"), Some((65534, 65534)));
        assert_eq!(lookup_user(passwd, "nobod"), None);
        assert_eq!(lookup_user("broken", "broken"), None);
    }

    #[test]
    fn a_parent_closed_to_the_run_user_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        let who = RunAs {
            user: "nobody".into(),
            uid: 65534,
            gid: 65534,
            setpriv: PathBuf::from("/usr/bin/setpriv"),
        };
        let e = check_reachable(&inner, &who).unwrap_err();
        assert!(e.to_string().contains("mode 700"), "{e}");
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o711)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        // The temp root's own parents (/tmp) are open.
        assert!(check_reachable(&inner, &who).is_ok());
    }
}
