//! Slurm's REST API (slurmrestd), the other way the Slurm executor speaks
//! to a cluster: `POST /slurm/{v}/job/submit`, `GET /slurm/{v}/jobs`,
//! `DELETE /slurm/{v}/job/{id}`. Two shapes of the API are spoken: v0.0.38
//! (Slurm 22.05, Debian 12: environment as an object, `nodes` as
//! `[min, max]`, `gres`, `time_limit` in minutes) and v0.0.40 and later
//! (Slurm 23.11+: environment as `K=V` strings, `nodes` as text,
//! `tres_per_node`, numbers as `{set, number}`). Jobs come back in the
//! shape `squeue --json` prints, read by the same parser.
//!
//! The transport is plain HTTP/1.1, one request per connection, over a
//! UNIX socket (`unix:/run/slurmrestd.sock`, `rest_auth/local`: jobs run as
//! slurmrestd's user) or TCP (`http://host:6820`, with a JWT from
//! `$SLURM_JWT` and the user name in `X-SLURM-USER-NAME`). Answers are
//! bounded in size and time.

use crate::slurm::{parse_squeue_json, SlurmJob};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Largest answer read (a `jobs` listing of a busy cluster).
const ANSWER_BYTES_MAX: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// host:port
    Tcp(String),
}

/// A failed call: `connect` when slurmrestd could not be reached at all
/// (the executor then falls back to the Slurm commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub connect: bool,
    pub message: String,
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn fail(message: String) -> RestError {
    RestError {
        connect: false,
        message,
    }
}

/// Where slurmrestd listens and which API version to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmRest {
    pub endpoint: Endpoint,
    /// `v0.0.38`, `v0.0.40`, `v0.0.41`, `v0.0.42`…
    pub version: String,
    /// For TCP: the JWT (`X-SLURM-USER-TOKEN`) and user name.
    pub token: Option<(String, String)>,
}

/// The job to submit, as the executor builds it (the same request as the
/// batch script's `#SBATCH` lines).
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitJob {
    pub name: String,
    pub comment: String,
    pub nodes: u32,
    /// GPUs per node (GRES `gpu`).
    pub gpus_per_node: u32,
    pub standard_output: String,
    pub cwd: String,
    pub time_limit_minutes: Option<u64>,
    pub environment: BTreeMap<String, String>,
    /// The batch script (its `#SBATCH` lines are ignored by slurmrestd).
    pub script: String,
}

impl SlurmRest {
    /// `unix:/path/to/socket` or `http://host:port`; the version `v0.0.N`.
    pub fn parse(target: &str, version: &str) -> Result<SlurmRest, String> {
        let endpoint = if let Some(p) = target.strip_prefix("unix:") {
            if !p.starts_with('/') {
                return Err(format!("'{target}': unix: needs an absolute socket path"));
            }
            Endpoint::Unix(PathBuf::from(p))
        } else if let Some(h) = target.strip_prefix("http://") {
            let h = h.trim_end_matches('/');
            if h.is_empty() || h.contains('/') {
                return Err(format!("'{target}': expected http://host:port"));
            }
            Endpoint::Tcp(if h.contains(':') {
                h.to_string()
            } else {
                format!("{h}:6820")
            })
        } else {
            return Err(format!(
                "'{target}': expected unix:/path/to/socket or http://host:port"
            ));
        };
        let n = version
            .strip_prefix("v0.0.")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (38..=99).contains(n))
            .ok_or_else(|| {
                format!("'{version}': expected v0.0.38 or later (v0.0.40, v0.0.41, …)")
            })?;
        let token = match &endpoint {
            Endpoint::Tcp(_) => match std::env::var("SLURM_JWT") {
                Ok(t) if !t.is_empty() => {
                    Some((std::env::var("USER").unwrap_or_else(|_| "root".into()), t))
                }
                _ => None,
            },
            Endpoint::Unix(_) => None,
        };
        Ok(SlurmRest {
            endpoint,
            version: format!("v0.0.{n}"),
            token,
        })
    }

    fn legacy(&self) -> bool {
        self.version == "v0.0.38" || self.version == "v0.0.39"
    }

    /// The body of `POST /slurm/{v}/job/submit` (pure).
    pub fn submit_body(&self, j: &SubmitJob) -> serde_json::Value {
        use serde_json::json;
        let nodes = j.nodes.max(1);
        let mut job = json!({
            "name": j.name,
            "comment": j.comment,
            "tasks": nodes,
            "tasks_per_node": 1,
            "standard_output": j.standard_output,
            "current_working_directory": j.cwd,
            "requeue": false,
        });
        if self.legacy() {
            job["nodes"] = json!([nodes, nodes]);
            job["environment"] = json!(j.environment);
            if j.gpus_per_node > 0 {
                job["gres"] = json!(format!("gpu:{}", j.gpus_per_node));
            }
            if let Some(m) = j.time_limit_minutes {
                job["time_limit"] = json!(m);
            }
        } else {
            job["nodes"] = json!(nodes.to_string());
            job["environment"] = json!(j
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>());
            if j.gpus_per_node > 0 {
                job["tres_per_node"] = json!(format!("gres/gpu:{}", j.gpus_per_node));
            }
            if let Some(m) = j.time_limit_minutes {
                job["time_limit"] = json!({"set": true, "infinite": false, "number": m});
            }
        }
        json!({"script": j.script, "job": job})
    }

    pub fn submit(&self, j: &SubmitJob) -> Result<u64, RestError> {
        let body = self.submit_body(j).to_string();
        let v = self.call(
            "POST",
            &format!("/slurm/{}/job/submit", self.version),
            Some(&body),
        )?;
        v["job_id"].as_u64().ok_or_else(|| {
            fail(format!(
                "slurmrestd: no job id in the answer: {}",
                cut(&v.to_string())
            ))
        })
    }

    pub fn jobs(&self) -> Result<Vec<SlurmJob>, RestError> {
        let text = self.call_text("GET", &format!("/slurm/{}/jobs", self.version), None)?;
        parse_squeue_json(&text).map_err(fail)
    }

    pub fn cancel(&self, job_id: u64) -> Result<(), RestError> {
        self.call(
            "DELETE",
            &format!("/slurm/{}/job/{job_id}", self.version),
            None,
        )
        .map(|_| ())
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<serde_json::Value, RestError> {
        let text = self.call_text(method, path, body)?;
        serde_json::from_str(&text).map_err(|e| fail(format!("slurmrestd {method} {path}: {e}")))
    }

    /// One request; the body of a 2xx answer whose `errors` list is
    /// empty, else an error with Slurm's own words.
    fn call_text(&self, method: &str, path: &str, body: Option<&str>) -> Result<String, RestError> {
        let connect = |message: String| RestError {
            connect: true,
            message,
        };
        let what = format!("slurmrestd {method} {path}");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: slurmrestd\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if let Some((user, token)) = &self.token {
            req.push_str(&format!(
                "X-SLURM-USER-NAME: {user}\r\nX-SLURM-USER-TOKEN: {token}\r\n"
            ));
        }
        let body = body.unwrap_or("");
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        let raw = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p)
                    .map_err(|e| connect(format!("{what}: {}: {e}", p.display())))?;
                exchange(s, &req, &what).map_err(fail)?
            }
            Endpoint::Tcp(h) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(h)
                    .map_err(|e| connect(format!("{what}: {h}: {e}")))?
                    .next()
                    .ok_or_else(|| connect(format!("{what}: {h}: no address")))?;
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .map_err(|e| connect(format!("{what}: {h}: {e}")))?;
                exchange(s, &req, &what).map_err(fail)?
            }
        };
        let (status, text) = parse_answer(&raw).map_err(|e| fail(format!("{what}: {e}")))?;
        // Slurm reports its own failures in `errors`, sometimes with 200.
        let errors = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["errors"].as_array().cloned())
            .unwrap_or_default();
        let said: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                e["error"]
                    .as_str()
                    .or(e["description"].as_str())
                    .map(str::to_string)
            })
            .collect();
        if !(200..300).contains(&status) || !said.is_empty() {
            return Err(fail(format!(
                "{what}: HTTP {status}: {}",
                if said.is_empty() {
                    cut(&text)
                } else {
                    said.join("; ")
                }
            )));
        }
        Ok(text)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

trait Stream: Read + Write {
    fn timeouts(&self, d: Duration) -> std::io::Result<()>;
}
impl Stream for std::os::unix::net::UnixStream {
    fn timeouts(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
}
impl Stream for std::net::TcpStream {
    fn timeouts(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
}

fn exchange(mut s: impl Stream, req: &str, what: &str) -> Result<Vec<u8>, String> {
    s.timeouts(TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{what}: {e}"))?;
    let mut out = Vec::new();
    (&mut s)
        .take(ANSWER_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what}: {e}"))?;
    if out.len() > ANSWER_BYTES_MAX {
        return Err(format!(
            "{what}: answer larger than {ANSWER_BYTES_MAX} bytes"
        ));
    }
    Ok(out)
}

/// Status and body of an HTTP/1.1 answer read to its end (plain or
/// chunked).
pub fn parse_answer(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let l = l.to_ascii_lowercase();
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        } else if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let body = &raw[split + 4..];
    // Content-Length is honoured: slurmrestd 22.05 writes a stray
    // "Connection: Close" line after the body.
    let body = match (chunked, length) {
        (true, _) => dechunk(body)?,
        (false, Some(n)) if n <= body.len() => body[..n].to_vec(),
        (false, Some(n)) => return Err(format!("answer cut short: {} of {n} bytes", body.len())),
        (false, None) => body.to_vec(),
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> SubmitJob {
        SubmitJob {
            name: "skyward-7".into(),
            comment: "skyward:edge:7:2".into(),
            nodes: 2,
            gpus_per_node: 4,
            standard_output: "/shared/7/output.log".into(),
            cwd: "/shared/7/job".into(),
            time_limit_minutes: Some(90),
            environment: [("A".to_string(), "1".to_string())].into(),
            script: "#!/bin/sh\nsrun true\n".into(),
        }
    }

    /// The shapes of the two API generations, as their OpenAPI
    /// descriptions give them (v0.0.38 read off Slurm 22.05's own
    /// /openapi/v3; v0.0.40+ from SchedMD's published reference).
    #[test]
    fn each_api_version_gets_its_own_shape() {
        let old = SlurmRest::parse("unix:/run/s.sock", "v0.0.38").unwrap();
        let b = old.submit_body(&req());
        assert_eq!(b["job"]["nodes"], serde_json::json!([2, 2]));
        assert_eq!(b["job"]["environment"], serde_json::json!({"A": "1"}));
        assert_eq!(b["job"]["gres"], "gpu:4");
        assert_eq!(b["job"]["time_limit"], 90);
        assert_eq!(b["job"]["tasks"], 2);
        let new = SlurmRest::parse("http://head:6820", "v0.0.41").unwrap();
        let b = new.submit_body(&req());
        assert_eq!(b["job"]["nodes"], "2");
        assert_eq!(b["job"]["environment"], serde_json::json!(["A=1"]));
        assert_eq!(b["job"]["tres_per_node"], "gres/gpu:4");
        assert_eq!(
            b["job"]["time_limit"],
            serde_json::json!({"set": true, "infinite": false, "number": 90})
        );
        assert_eq!(b["script"], "#!/bin/sh\nsrun true\n");
        assert!(b["job"].get("gres").is_none());
    }

    #[test]
    fn targets_and_versions_are_checked() {
        assert_eq!(
            SlurmRest::parse("http://head", "v0.0.40").unwrap().endpoint,
            Endpoint::Tcp("head:6820".into())
        );
        for (t, v, want) in [
            ("unix:rel/sock", "v0.0.38", "absolute"),
            ("https://head", "v0.0.38", "expected unix:"),
            ("http://head/x", "v0.0.38", "host:port"),
            ("unix:/s", "v0.0.37", "v0.0.38 or later"),
            ("unix:/s", "0.0.40", "v0.0.38 or later"),
        ] {
            let e = SlurmRest::parse(t, v).unwrap_err();
            assert!(e.contains(want), "{t} {v}: {e}");
        }
    }

    #[test]
    fn answers_plain_and_chunked_are_read() {
        let (s, b) = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_str()), (200, "{}"));
        let (s, b) = parse_answer(
            b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_str()), (500, "{\"a\":1}"));
        // slurmrestd 22.05 as it really answers: a header line after the body.
        let (s, b) = parse_answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}Connection: Close\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_str()), (200, "{}"));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_answer(b"garbage").is_err());
        assert!(
            parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
