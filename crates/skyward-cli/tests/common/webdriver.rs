//! A small W3C WebDriver client over the API's own HTTP client, for
//! driving Debian's Chromium through ChromeDriver (`scripts/chromium.sh`
//! installs both; `scripts/test.sh` exports their paths). The browser
//! tests include it with `#[path]`; `common` does not, so the other test
//! binaries do not build it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use serde_json::{json, Value};
use skyward_server::client::{Client, Reply};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: Client,
    session: String,
    rt: tokio::runtime::Runtime,
}

fn var_or(k: &str, fallback: &str) -> String {
    match std::env::var(k) {
        Ok(v) if !v.is_empty() => v,
        _ if Path::new(fallback).exists() => fallback.to_string(),
        _ => panic!("{k} is not set and {fallback} is missing: run the suite with ./scripts/test.sh, which installs Chromium and ChromeDriver"),
    }
}

impl Browser {
    /// ChromeDriver on `port`, one headless Chromium session with its
    /// console log kept, a window `width` × `height`.
    pub fn start(profile: &Path, port: u16, width: u32, height: u32) -> Browser {
        let driver_bin = var_or("SKYWARD_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = var_or("SKYWARD_TEST_CHROMIUM", "/usr/bin/chromium");
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rt = crate::common::rt();
        let http = Client::new(&format!("http://127.0.0.1:{port}"), None)
            .unwrap()
            .with_timeout(Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = rt.block_on(http.request("GET", "/status", None, &[])) {
                if r.json().is_some_and(|v| v["value"]["ready"] == true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-quic",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r = rt
            .block_on(http.request(
                "POST",
                "/session",
                Some(("application/json", caps.to_string().into_bytes())),
                &[],
            ))
            .unwrap();
        let v = r.json().unwrap_or(Value::Null);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver,
            http,
            session,
            rt,
        }
    }

    /// One request of this session: `path` below `/session/{id}`.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let url = format!("/session/{}{path}", self.session);
        self.rt
            .block_on(self.http.request(
                method,
                &url,
                body.map(|b| ("application/json", b.to_string().into_bytes())),
                &[],
            ))
            .unwrap()
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.send(method, path, body);
        let v = r.json().unwrap_or(Value::Null);
        assert!(r.status < 300, "{method} {path}: {} {v}", r.status);
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The element `css` selects, waiting up to `secs` for it.
    pub fn find(&self, css: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.send(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if r.status == 200 {
                if let Some(id) = r
                    .json()
                    .and_then(|v| v["value"][ELEMENT].as_str().map(String::from))
                {
                    return id;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no element '{css}' after {secs} s at {}; page: {}",
                self.url(),
                self.eval("return document.body.innerText.slice(0, 2000);", json!([]))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exists(&self, css: &str) -> bool {
        self.eval(
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        ) == true
    }

    /// Runs `script`; None when it throws (an element not there yet).
    pub fn try_eval(&self, script: &str, args: Value) -> Option<Value> {
        let r = self.send(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        );
        (r.status == 200).then(|| r.json().map(|v| v["value"].clone()))?
    }

    /// Waits up to `secs` for `script` to return true (a script that
    /// throws counts as not yet).
    pub fn wait(&self, what: &str, secs: u64, script: &str, args: Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.try_eval(script, args.clone()) != Some(Value::Bool(true)) {
            assert!(
                Instant::now() < deadline,
                "{what}: not after {secs} s; page: {}",
                self.eval("return document.body.innerText.slice(0, 3000);", json!([]))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks what `css` selects; found again if the page redrew it
    /// between finding and clicking (the live refresh replaces elements).
    pub fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let id = self.find(css, 20);
            let r = self.send("POST", &format!("/element/{id}/click"), Some(json!({})));
            if r.status < 300 {
                return;
            }
            let stale = r
                .json()
                .is_some_and(|v| v["value"]["error"] == "stale element reference");
            assert!(
                stale && Instant::now() < deadline,
                "click {css}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css, 20);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The page as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64_decode(b64.as_str().unwrap_or(""))
    }

    /// The console's entries since the last call (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_string(),
                            e["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("/session/{}", self.session);
        let _ = self
            .rt
            .block_on(self.http.request("DELETE", &url, None, &[]));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
