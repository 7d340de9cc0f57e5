//! A `skyward server` process for tests through the binary, and small
//! helpers to talk to it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use serde_json::{json, Value};
use skyward_server::client::{Client, Reply};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_skyward");

/// `skyward up`'s sites, with quick cycles and a short lease.
pub fn test_config() -> String {
    format!(
        "{}scheduler:\n  cycle_ms: 20\n  lease_ms: 2000\n",
        skyward_server::config::UP_CONFIG
    )
}

/// The test's directory, passable for the run user (the tests run as
/// root; runs as nobody must reach the work directory below it).
fn open_to_runs(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
}

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    /// Runs' directories (outside the state directory `data`).
    pub work: PathBuf,
    pub config: PathBuf,
    pub database_url: Option<String>,
    /// Extra environment of the server process.
    pub env: Vec<(String, String)>,
    /// The address it listens on (clients here use 127.0.0.1).
    pub host: String,
    /// `skyward up` (built-in sites, in-process agents) instead of
    /// `skyward server --config`.
    pub up: bool,
}

impl Server {
    pub fn start(dir: &Path, port: u16, database_url: Option<&str>) -> Server {
        Server::start_with(dir, port, database_url, &[])
    }

    pub fn start_with(
        dir: &Path,
        port: u16,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Server {
        let config = dir.join("server.yaml");
        if !config.exists() {
            std::fs::write(&config, test_config()).unwrap();
        }
        // The run user (when the tests run as root) must reach the work
        // directory; the state directory stays the server's alone.
        open_to_runs(dir);
        let mut s = Server {
            child: None,
            port,
            data: dir.join("data"),
            work: dir.join("work"),
            config,
            database_url: database_url.map(String::from),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            host: "127.0.0.1".into(),
            up: false,
        };
        s.spawn();
        s
    }

    /// A server listening on every address (for clients in another
    /// network namespace).
    pub fn start_everywhere(dir: &Path, port: u16) -> Server {
        let config = dir.join("server.yaml");
        let mut s = Server {
            child: None,
            port,
            data: dir.join("data"),
            work: dir.join("work"),
            config,
            database_url: None,
            env: Vec::new(),
            host: "0.0.0.0".into(),
            up: false,
        };
        open_to_runs(dir);
        s.spawn();
        s
    }

    /// `skyward up` on its built-in sites.
    pub fn start_up(dir: &Path, port: u16) -> Server {
        open_to_runs(dir);
        let mut s = Server {
            child: None,
            port,
            data: dir.join("data"),
            work: dir.join("work"),
            config: dir.join("unused.yaml"),
            database_url: None,
            env: Vec::new(),
            host: "127.0.0.1".into(),
            up: true,
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        if self.up {
            cmd.arg("up");
        } else {
            cmd.args(["server", "--config"]).arg(&self.config);
        }
        cmd.args([
            "--listen",
            &format!("{}:{}", self.host, self.port),
            "--data-dir",
        ])
        .arg(&self.data)
        .arg("--work-dir")
        .arg(&self.work)
        .env_remove("SKYWARD_DATABASE_URL")
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_to(&self.data.with_extension("log")));
        if let Some(u) = &self.database_url {
            cmd.args(["--database-url", u]);
        }
        self.child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not listen within 30 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn admin_token(&self) -> String {
        let p = self.data.join("admin.token");
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url(), token.map(String::from)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A new directory under `parent` that runs (as another user) can write
/// to: where a test's workloads leave their marks.
pub fn writable_dir(parent: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = parent.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A child's output appended to the file `path`.
pub fn log_to(path: &Path) -> Stdio {
    Stdio::from(
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    )
}

/// Cancels a workload and waits until it is cancelled, so that no run of
/// it outlives the test.
pub fn cancel_and_wait(rt: &tokio::runtime::Runtime, c: &Client, id: i64) {
    call(
        rt,
        c,
        "POST",
        &format!("/v1/workloads/{id}/cancel"),
        None,
        &[],
    );
    wait_for(rt, c, id, 30, |v| v["state"] == "cancelled");
}

/// A variable the test script sets (a service it started), or a panic
/// saying how to run the suite.
pub fn test_var(k: &str) -> String {
    match std::env::var(k) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{k} is not set: run the suite with ./scripts/test.sh, which starts the services the tests need"),
    }
}

pub fn call(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
) -> Reply {
    rt.block_on(c.request(
        method,
        path,
        body.map(|b| ("application/json", b.as_bytes().to_vec())),
        headers,
    ))
    .unwrap()
}

pub fn cli(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("SKYWARD_SERVER", server.url())
        .env("SKYWARD_TOKEN", token)
        .env("SKYWARD_DATA_DIR", &server.data)
        .output()
        .unwrap()
}

/// Every item of a paged list, following `next_cursor`.
pub fn pages(rt: &tokio::runtime::Runtime, c: &Client, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cur) => format!("{path}&cursor={cur}"),
            None => path.to_string(),
        };
        let r = call(rt, c, "GET", &url, None, &[]);
        assert_eq!(r.status, 200, "{}", r.error_text());
        let v = r.json().unwrap();
        out.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
}

pub fn all_workloads(rt: &tokio::runtime::Runtime, c: &Client) -> Vec<Value> {
    pages(rt, c, "/v1/workloads?limit=1000")
}

pub fn state_of(rt: &tokio::runtime::Runtime, c: &Client, id: i64) -> String {
    let r = call(rt, c, "GET", &format!("/v1/workloads/{id}"), None, &[]);
    r.json().unwrap()["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn job(name: &str, acc: &str, run: &str) -> String {
    json!({"name": name, "accelerators": acc, "run": run}).to_string()
}

/// The PostgreSQL server `scripts/test.sh` started.
pub fn pg_url() -> String {
    match std::env::var("SKYWARD_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("SKYWARD_TEST_DATABASE_URL is not set: run the suite with ./scripts/test.sh, which starts PostgreSQL"),
    }
}

/// A fresh database on the test PostgreSQL server.
pub fn pg_database(tag: &str) -> String {
    let base = pg_url();
    let name = format!("skyward_{tag}_{}", std::process::id());
    let rt = super::rt();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => panic!("bad url {base}"),
    }
}

/// Submits a workload (JSON); its id.
pub fn submit(rt: &tokio::runtime::Runtime, c: &Client, body: Value) -> i64 {
    let r = call(rt, c, "POST", "/v1/workloads", Some(&body.to_string()), &[]);
    assert_eq!(r.status, 201, "{}", r.error_text());
    r.json().unwrap()["id"].as_i64().unwrap()
}

/// A new token (`{"name", "scope", …}`); its secret.
pub fn token(rt: &tokio::runtime::Runtime, c: &Client, body: Value) -> String {
    let r = call(rt, c, "POST", "/v1/tokens", Some(&body.to_string()), &[]);
    assert_eq!(r.status, 201, "{}", r.error_text());
    r.json().unwrap()["token"].as_str().unwrap().to_string()
}

/// A workload's view once `done` says so, within `secs`.
pub fn wait_for(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    id: i64,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = call(rt, c, "GET", &format!("/v1/workloads/{id}"), None, &[])
            .json()
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "workload {id}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
