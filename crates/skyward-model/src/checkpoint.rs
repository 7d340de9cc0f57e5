//! Where a workload keeps its checkpoints: an object-store location
//! (`s3://bucket/path`, `az://container/path`, `gs://bucket/path`,
//! `file:///abs/path`), how often it writes one, and the stores of other
//! providers its checkpoints are copied to.

use serde::{Deserialize, Serialize};

/// Bounds on a checkpoint location.
pub const STORE_URI_BYTES_MAX: usize = 1024;
/// Replicas one workload may ask for.
pub const REPLICAS_MAX: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStore {
    /// Canonical location (see [`StoreUri`]).
    pub uri: String,
    /// How often the workload writes one, as it declared (`every: 30m`):
    /// the work an attempt may redo, for status and drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// Other stores each checkpoint is copied to, canonical.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicate_to: Vec<String>,
}

impl CheckpointStore {
    /// The primary store, then the replicas.
    pub fn stores(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.uri.as_str()).chain(self.replicate_to.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    S3,
    Azure,
    Gcs,
    File,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Azure => "az",
            Scheme::Gcs => "gs",
            Scheme::File => "file",
        }
    }
    /// The provider whose cloud holds such a store (no egress from it).
    pub fn home_provider(self) -> Option<&'static str> {
        match self {
            Scheme::S3 => Some("aws"),
            Scheme::Azure => Some("azure"),
            Scheme::Gcs => Some("gcp"),
            Scheme::File => None,
        }
    }
}

/// A parsed location: scheme, bucket (container; empty for `file`) and
/// path inside it (no leading or trailing `/`; for `file` the absolute
/// directory without its leading `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreUri {
    pub scheme: Scheme,
    pub bucket: String,
    pub path: String,
}

impl StoreUri {
    /// Parses and checks a location; the error says what is wrong.
    pub fn parse(s: &str) -> Result<StoreUri, String> {
        if s.len() > STORE_URI_BYTES_MAX {
            return Err(format!("longer than {STORE_URI_BYTES_MAX} bytes"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("holds whitespace or control characters".into());
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(
                "expected s3://BUCKET/PATH, az://CONTAINER/PATH, gs://BUCKET/PATH or file:///DIR"
                    .into(),
            );
        };
        let scheme = match scheme {
            "s3" => Scheme::S3,
            "az" | "azure" => Scheme::Azure,
            "gs" => Scheme::Gcs,
            "file" => Scheme::File,
            other => return Err(format!("unknown scheme '{other}' (s3, az, gs or file)")),
        };
        if scheme == Scheme::File {
            let Some(dir) = rest.strip_prefix('/') else {
                return Err("a file:// location needs an absolute directory (file:///dir)".into());
            };
            let path = clean_path(dir)?;
            if path.is_empty() {
                return Err("file:/// needs a directory below /".into());
            }
            return Ok(StoreUri {
                scheme,
                bucket: String::new(),
                path,
            });
        }
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(scheme, bucket)?;
        Ok(StoreUri {
            scheme,
            bucket: bucket.to_string(),
            path: clean_path(path)?,
        })
    }

    /// Whether `other` is this location or inside it.
    pub fn contains(&self, other: &StoreUri) -> bool {
        self.scheme == other.scheme
            && self.bucket == other.bucket
            && (self.path.is_empty()
                || other.path == self.path
                || other.path.starts_with(&format!("{}/", self.path)))
    }
}

impl std::fmt::Display for StoreUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scheme {
            Scheme::File => write!(f, "file:///{}", self.path),
            s if self.path.is_empty() => write!(f, "{}://{}", s.as_str(), self.bucket),
            s => write!(f, "{}://{}/{}", s.as_str(), self.bucket, self.path),
        }
    }
}

fn check_bucket(scheme: Scheme, b: &str) -> Result<(), String> {
    let ok_len = (3..=63).contains(&b.len());
    let ok_chars = b.bytes().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.' || c == b'_'
    });
    let ok_ends = b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        let what = if scheme == Scheme::Azure {
            "container"
        } else {
            "bucket"
        };
        Err(format!(
            "{what} '{b}': 3 to 63 lower-case letters, digits, '-', '.' or '_', starting and ending with a letter or digit"
        ))
    }
}

/// Segments without empty parts, `.` or `..`.
fn clean_path(p: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" => continue,
            "." | ".." => return Err("a path may not hold '.' or '..'".into()),
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_to_canonical_form() {
        let u = StoreUri::parse("s3://ckpt-aws/runs//llama/").unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.path.as_str()),
            (Scheme::S3, "ckpt-aws", "runs/llama")
        );
        assert_eq!(u.to_string(), "s3://ckpt-aws/runs/llama");
        assert_eq!(
            StoreUri::parse("azure://ckpt").unwrap().to_string(),
            "az://ckpt"
        );
        assert_eq!(
            StoreUri::parse("file:///var/ckpt/x").unwrap().to_string(),
            "file:///var/ckpt/x"
        );
        assert_eq!(
            StoreUri::parse("s3://ckpt").unwrap().scheme.home_provider(),
            Some("aws")
        );
    }

    #[test]
    fn bad_locations_say_why() {
        for (s, want) in [
            ("ckpt/x", "expected s3://"),
            ("ftp://x/y", "unknown scheme 'ftp'"),
            ("s3://A/x", "bucket 'A'"),
            ("s3://ab/x", "bucket 'ab'"),
            ("az://-x-/y", "container '-x-'"),
            ("s3://ckpt/../x", "'..'"),
            ("file://rel/dir", "absolute"),
            ("file:///", "below /"),
            ("s3://ckpt/a b", "whitespace"),
        ] {
            let e = StoreUri::parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn containment_is_by_whole_segments() {
        let root = StoreUri::parse("s3://ckpt").unwrap();
        let a = StoreUri::parse("s3://ckpt/a").unwrap();
        let ab = StoreUri::parse("s3://ckpt/a/b").unwrap();
        let a2 = StoreUri::parse("s3://ckpt/ab").unwrap();
        assert!(root.contains(&ab) && a.contains(&ab) && a.contains(&a));
        assert!(!a.contains(&a2) && !ab.contains(&a));
        assert!(!root.contains(&StoreUri::parse("az://ckpt/a").unwrap()));
    }
}
