//! How checkpoints are laid out in a store (pure).
//!
//! Under a workload's location, checkpoint N is the objects
//! `step-<N, 12 digits>/<relative path>` and, written last, the manifest
//! `step-<N>.json` listing them. A checkpoint exists once its manifest
//! does, so a reader (the server listing, an attempt resuming, a copy to
//! a replica) never sees half of one.

use serde::{Deserialize, Serialize};

/// The largest step number (12 digits, so names sort as numbers).
pub const STEP_MAX: u64 = 999_999_999_999;
/// Files in one checkpoint.
pub const FILES_MAX: usize = 10_000;
/// A manifest's size when read back.
pub const MANIFEST_BYTES_MAX: usize = 4 << 20;
/// A file's path inside a checkpoint.
pub const FILE_PATH_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub step: u64,
    pub files: Vec<FileEntry>,
    /// Sum of the files' sizes.
    pub bytes: u64,
    /// When the writer finished it (Unix ms), as the writer says.
    pub written_at_ms: u64,
    /// The attempt that wrote it (`SKYWARD_ATTEMPT`), when a run did: the
    /// server records only the live attempt's, so a run cut off from its
    /// site cannot slip in checkpoints after its work moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative, `/`-separated, no `.` or `..`.
    pub path: String,
    pub bytes: u64,
}

pub fn manifest_name(step: u64) -> String {
    format!("step-{step:012}.json")
}

pub fn data_dir(step: u64) -> String {
    format!("step-{step:012}")
}

/// The step of a manifest's object name (the last path segment), if it
/// is one.
pub fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?.strip_suffix(".json")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks a step number given by a person or a manifest.
pub fn check_step(step: u64) -> Result<(), String> {
    if step > STEP_MAX {
        Err(format!("step {step} is above {STEP_MAX}"))
    } else {
        Ok(())
    }
}

/// Checks a file path inside a checkpoint (it becomes a path on the
/// reader's disk: nothing may escape the destination).
pub fn check_file_path(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > FILE_PATH_BYTES_MAX {
        return Err(format!(
            "file path must be 1 to {FILE_PATH_BYTES_MAX} bytes"
        ));
    }
    if p.starts_with('/') || p.contains('\\') || p.chars().any(char::is_control) {
        return Err(format!(
            "file path '{}' must be relative, with '/' only and no control characters",
            p.escape_debug()
        ));
    }
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!(
            "file path '{p}' may not hold empty, '.' or '..' parts"
        ));
    }
    Ok(())
}

impl Manifest {
    /// Reads a manifest found at `step`'s name; refuses one that lies
    /// about its step, its total, or holds paths that could escape.
    pub fn parse(bytes: &[u8], step: u64) -> Result<Manifest, String> {
        if bytes.len() > MANIFEST_BYTES_MAX {
            return Err(format!("manifest larger than {MANIFEST_BYTES_MAX} bytes"));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("manifest: {e}"))?;
        if m.step != step {
            return Err(format!("manifest of step {step} says step {}", m.step));
        }
        if m.files.len() > FILES_MAX {
            return Err(format!("manifest lists more than {FILES_MAX} files"));
        }
        let mut total: u64 = 0;
        let mut seen = std::collections::BTreeSet::new();
        for f in &m.files {
            check_file_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(format!("manifest lists '{}' twice", f.path));
            }
            total = total
                .checked_add(f.bytes)
                .ok_or("manifest sizes overflow")?;
        }
        if total != m.bytes {
            return Err(format!(
                "manifest says {} bytes, its files add up to {total}",
                m.bytes
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_as_numbers() {
        assert_eq!(manifest_name(42), "step-000000000042.json");
        assert_eq!(step_of(&manifest_name(42)), Some(42));
        assert_eq!(step_of(&manifest_name(STEP_MAX)), Some(STEP_MAX));
        assert!(manifest_name(9) < manifest_name(10));
        for bad in [
            "step-42.json",
            "step-00000000004x.json",
            "step-000000000042",
            "x-000000000042.json",
        ] {
            assert_eq!(step_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let ok = br#"{"step":3,"files":[{"path":"a/b.pt","bytes":5}],"bytes":5,"written_at_ms":1}"#;
        assert_eq!(Manifest::parse(ok, 3).unwrap().files.len(), 1);
        assert!(Manifest::parse(ok, 4).unwrap_err().contains("says step 3"));
        for (m, want) in [
            (
                r#"{"step":3,"files":[{"path":"../x","bytes":5}],"bytes":5,"written_at_ms":1}"#,
                "'..'",
            ),
            (
                r#"{"step":3,"files":[{"path":"/etc/x","bytes":5}],"bytes":5,"written_at_ms":1}"#,
                "relative",
            ),
            (
                r#"{"step":3,"files":[{"path":"a","bytes":5}],"bytes":6,"written_at_ms":1}"#,
                "add up",
            ),
            (
                r#"{"step":3,"files":[{"path":"a","bytes":1},{"path":"a","bytes":1}],"bytes":2,"written_at_ms":1}"#,
                "twice",
            ),
            (
                r#"{"step":3,"files":[],"bytes":0,"written_at_ms":1,"x":1}"#,
                "unknown field",
            ),
            (
                r#"{"step":3,"files":[{"path":"a","bytes":18446744073709551615},{"path":"b","bytes":1}],"bytes":0,"written_at_ms":1}"#,
                "overflow",
            ),
        ] {
            let e = Manifest::parse(m.as_bytes(), 3).unwrap_err();
            assert!(e.contains(want), "{m}: {e}");
        }
    }
}
