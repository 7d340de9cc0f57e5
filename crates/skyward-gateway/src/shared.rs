//! Limits shared by several gateway replicas through Redis: each key's
//! requests and tokens per minute (sliding over the last minute as the
//! local limits do: this minute's count plus the last minute's weighted by
//! how much of it is still within 60 s), its spend
//! (per month for a monthly budget) and the cost its requests in flight
//! hold, on every replica together. One pipelined round trip admits a
//! request; its charge is sent after it ends.
//!
//! When Redis cannot be reached (or answers late: `REDIS_WAIT`), the
//! gateway degrades to its own local limits for that request, counts it,
//! and leaves Redis alone for `DOWN_FOR` before trying again: limits are
//! then per replica, never absent, and requests are never failed for it.
//!
//! The client speaks RESP (Redis's protocol) itself: a handful of
//! commands over one connection.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// The longest a request waits for Redis before going on locally.
pub const REDIS_WAIT: Duration = Duration::from_millis(100);
/// How long Redis is left alone after it failed.
pub const DOWN_FOR: Duration = Duration::from_secs(1);
/// Connections to Redis at most: one round trip at a time on each, so
/// this many requests are checked at once (a Redis a millisecond away
/// still admits thousands a second).
pub const CONNECTIONS: usize = 8;

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

impl Reply {
    fn number(&self) -> f64 {
        match self {
            Reply::Int(n) => *n as f64,
            Reply::Bulk(Some(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// `redis://[:password@]host:port[/db]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub addr: String,
    pub password: Option<String>,
    pub db: Option<u32>,
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("'{url}' is not a redis:// URL"))?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, "")) => (h, None),
        Some((h, d)) => (
            h,
            Some(
                d.parse::<u32>()
                    .map_err(|_| format!("'{d}' is not a database number"))?,
            ),
        ),
        None => (hostpart, None),
    };
    if hostport.is_empty() {
        return Err(format!("'{url}' has no host"));
    }
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let password = auth.map(|a| a.rsplit_once(':').map(|(_, p)| p).unwrap_or(a).to_string());
    Ok(Target {
        addr,
        password: password.filter(|p| !p.is_empty()),
        db,
    })
}

fn encode(cmds: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        out.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for a in c {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

async fn read_reply(s: &mut BufStream<TcpStream>) -> Result<Reply, String> {
    let mut line = Vec::new();
    let n = s
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 || line.len() < 3 || line.len() > 64 * 1024 {
        return Err("Redis closed the connection or answered out of form".into());
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    match line[0] {
        b'+' => Ok(Reply::Simple(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => body
            .parse()
            .map(Reply::Int)
            .map_err(|_| "bad integer".into()),
        b'$' => {
            let len: i64 = body.parse().map_err(|_| "bad length".to_string())?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            if len > 1 << 20 {
                return Err("a reply of over 1 MiB".into());
            }
            let mut b = vec![0u8; len as usize + 2];
            s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            b.truncate(len as usize);
            Ok(Reply::Bulk(Some(b)))
        }
        _ => Err("a reply this client does not read".into()),
    }
}

/// Sends `cmds` in one pipeline and reads their replies.
async fn exchange(
    s: &mut BufStream<TcpStream>,
    cmds: &[Vec<String>],
) -> Result<Vec<Reply>, String> {
    s.write_all(&encode(cmds))
        .await
        .map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(cmds.len());
    for _ in cmds {
        out.push(read_reply(s).await?);
    }
    Ok(out)
}

/// What Redis says of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Admitted,
    /// Over its requests or tokens per minute, on all replicas together.
    RateLimited(&'static str),
    /// Its budget is spent, or held by requests in flight.
    OverBudget {
        spent_usd: f64,
    },
}

/// A key's limits as Redis checks them.
pub struct Ask<'a> {
    pub key: &'a str,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd: Option<f64>,
    /// The month of a monthly budget.
    pub month: Option<i64>,
    pub reserve_usd: f64,
    /// Now, in ms since the epoch: where in its minute the request falls.
    pub unix_ms: i64,
}

pub struct Shared {
    target: Target,
    prefix: String,
    conns: Vec<tokio::sync::Mutex<Option<BufStream<TcpStream>>>>,
    next: AtomicU64,
    down_until: Mutex<Option<tokio::time::Instant>>,
    /// Requests that went on under local limits only.
    pub fallbacks: AtomicU64,
}

impl Shared {
    pub fn new(target: Target, prefix: &str) -> Shared {
        Shared {
            target,
            prefix: prefix.to_string(),
            conns: (0..CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicU64::new(0),
            down_until: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn k(&self, parts: &[&str]) -> String {
        let mut s = self.prefix.clone();
        for p in parts {
            s.push(':');
            s.push_str(p);
        }
        s
    }

    /// Sends `cmds` in one pipeline; their replies, or why not.
    pub async fn run(&self, cmds: Vec<Vec<String>>) -> Result<Vec<Reply>, String> {
        if let Ok(d) = self.down_until.lock() {
            if d.is_some_and(|t| tokio::time::Instant::now() < t) {
                return Err("Redis was unreachable a moment ago".into());
            }
        }
        // The wait for a free connection counts in REDIS_WAIT too. The
        // connection is taken out of its slot while in use and put back
        // only after a whole exchange: one cut off mid-reply (an error,
        // or the wait running out) is dropped, never reused.
        let attempt = async {
            let mut g = match self.conns.iter().find_map(|c| c.try_lock().ok()) {
                Some(g) => g,
                None => {
                    let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
                    self.conns[i % self.conns.len()].lock().await
                }
            };
            let mut conn = match g.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            let r = exchange(&mut conn, &cmds).await;
            if r.is_ok() {
                *g = Some(conn);
            }
            r
        };
        let r = tokio::time::timeout(REDIS_WAIT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", REDIS_WAIT.as_millis())));
        if r.is_err() {
            if let Ok(mut d) = self.down_until.lock() {
                *d = Some(tokio::time::Instant::now() + DOWN_FOR);
            }
        }
        r
    }

    async fn connect(&self) -> Result<BufStream<TcpStream>, String> {
        let tcp = TcpStream::connect(&self.target.addr)
            .await
            .map_err(|e| format!("{}: {e}", self.target.addr))?;
        let _ = tcp.set_nodelay(true);
        let mut s = BufStream::new(tcp);
        let mut hello = Vec::new();
        if let Some(p) = &self.target.password {
            hello.push(vec!["AUTH".to_string(), p.clone()]);
        }
        if let Some(db) = self.target.db {
            hello.push(vec!["SELECT".to_string(), db.to_string()]);
        }
        if !hello.is_empty() {
            for r in exchange(&mut s, &hello).await? {
                if let Reply::Error(e) = r {
                    return Err(e);
                }
            }
        }
        Ok(s)
    }

    fn spent_key(&self, key: &str, month: Option<i64>) -> String {
        match month {
            Some(m) => self.k(&["spent", key, &m.to_string()]),
            None => self.k(&["spent", key]),
        }
    }

    /// Checks a request against the key's shared limits and, when
    /// admitted, counts it and holds its estimated cost. Err: Redis is
    /// not available (go on with local limits).
    pub async fn admit(&self, a: &Ask<'_>) -> Result<Admission, String> {
        let m = a.unix_ms.div_euclid(60_000);
        let (minute, last) = (m.to_string(), (m - 1).to_string());
        let rpm = self.k(&["rpm", a.key, &minute]);
        let tpm = self.k(&["tpm", a.key, &minute]);
        let (rpm_last, tpm_last) = (
            self.k(&["rpm", a.key, &last]),
            self.k(&["tpm", a.key, &last]),
        );
        // The share of the last minute still within 60 s of now.
        let last_weight = 1.0 - a.unix_ms.rem_euclid(60_000) as f64 / 60_000.0;
        let spent = self.spent_key(a.key, a.month);
        let held = self.k(&["held", a.key]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let reserve = format!("{:.9}", a.reserve_usd);
        let r = self
            .run(vec![
                s(&["INCR", &rpm]),
                s(&["EXPIRE", &rpm, "120"]),
                s(&["GET", &tpm]),
                s(&["GET", &spent]),
                s(&["INCRBYFLOAT", &held, &reserve]),
                s(&["EXPIRE", &held, "3600"]),
                s(&["GET", &rpm_last]),
                s(&["GET", &tpm_last]),
            ])
            .await?;
        if let Some(Reply::Error(e)) = r.iter().find(|x| matches!(x, Reply::Error(_))) {
            return Err(e.clone());
        }
        let (n, tokens, spent_usd, held_after) =
            (r[0].number(), r[2].number(), r[3].number(), r[4].number());
        // Before this request, as the local window counts.
        let requests = (n - 1.0) + r[6].number() * last_weight;
        let tokens = tokens + r[7].number() * last_weight;
        let verdict = if a.rpm.is_some_and(|l| requests >= l as f64) {
            Admission::RateLimited("requests per minute")
        } else if a.tpm.is_some_and(|l| tokens >= l as f64) {
            Admission::RateLimited("tokens per minute")
        } else if let Some(b) = a.budget_usd {
            let held_before = held_after - a.reserve_usd;
            // As locally: admitted while the budget is not spent, and
            // either nothing else is in flight or everything fits.
            if spent_usd >= b || (held_before > 1e-12 && spent_usd + held_after > b) {
                Admission::OverBudget { spent_usd }
            } else {
                Admission::Admitted
            }
        } else {
            Admission::Admitted
        };
        if verdict != Admission::Admitted {
            // Not admitted: neither counted nor held.
            let _ = self
                .run(vec![
                    s(&["DECR", &rpm]),
                    s(&["INCRBYFLOAT", &held, &format!("{:.9}", -a.reserve_usd)]),
                ])
                .await;
        }
        Ok(verdict)
    }

    /// A request ended: its hold goes, its tokens and cost are counted.
    pub async fn settle(
        &self,
        key: &str,
        reserve_usd: f64,
        tokens: u64,
        cost_usd: f64,
        month: Option<i64>,
        unix_s: i64,
    ) {
        let minute = (unix_s / 60).to_string();
        let tpm = self.k(&["tpm", key, &minute]);
        let spent = self.spent_key(key, month);
        let held = self.k(&["held", key]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        // The cost lands before the hold goes, so another replica never
        // sees neither.
        let mut cmds = Vec::new();
        if tokens > 0 || cost_usd > 0.0 {
            cmds.push(s(&["INCRBY", &tpm, &tokens.to_string()]));
            cmds.push(s(&["EXPIRE", &tpm, "120"]));
            cmds.push(s(&["INCRBYFLOAT", &spent, &format!("{cost_usd:.9}")]));
        }
        cmds.push(s(&["INCRBYFLOAT", &held, &format!("{:.9}", -reserve_usd)]));
        let _ = self.run(cmds).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6380").unwrap(),
            Target {
                addr: "127.0.0.1:6380".into(),
                password: None,
                db: None
            }
        );
        let t = parse_url("redis://:s3cret@cache.internal/2").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.password.as_deref(), t.db),
            ("cache.internal:6379", Some("s3cret"), Some(2))
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("redis:///1").is_err());
        assert!(parse_url("redis://h/x").is_err());
    }

    /// Requests per minute slide as the local limits do: a burst at the
    /// end of one minute still counts at the start of the next (fixed
    /// windows let 3 + 3 through within a second), by the share of it
    /// still within 60 s. Against the Redis `scripts/test.sh` starts.
    #[test]
    fn shared_requests_per_minute_slide_over_the_minute_boundary() {
        let url = std::env::var("SKYWARD_TEST_REDIS_URL").unwrap_or_default();
        assert!(
            !url.is_empty(),
            "SKYWARD_TEST_REDIS_URL is not set: run the suite with ./scripts/test.sh (scripts/redis.sh starts Redis)"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        #[allow(clippy::disallowed_methods)]
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let sh = Shared::new(parse_url(&url).unwrap(), &format!("slide-{nonce}"));
        // Minute 1000 of the epoch, at its 59th second and into the next.
        let at = |s: f64| (60_000.0 * 1000.0 + s * 1000.0) as i64;
        let admitted = |unix_ms: i64, n: usize| -> usize {
            (0..n)
                .filter(|_| {
                    let ask = Ask {
                        key: "k",
                        rpm: Some(3),
                        tpm: None,
                        budget_usd: None,
                        month: None,
                        reserve_usd: 0.0,
                        unix_ms,
                    };
                    rt.block_on(sh.admit(&ask)).unwrap() == Admission::Admitted
                })
                .count()
        };
        // 59 s: 3 of 5 (the limit).
        assert_eq!(admitted(at(59.0), 5), 3);
        // 60.5 s: the last minute's 3 weigh 3 × (1 − 0.5/60) = 2.975, so
        // one more (2.975 < 3), then 3.975 ≥ 3. Fixed windows: 3.
        assert_eq!(admitted(at(60.5), 5), 1);
        // 100 s: 3 × (1 − 40/60) = 1 and this minute's 1: one more (2 < 3).
        assert_eq!(admitted(at(100.0), 5), 1);
        // 120 s: the 59 s burst is two minutes back and gone; the last
        // minute's 2 weigh 2 × 1 = 2: one more.
        assert_eq!(admitted(at(120.0), 5), 1);
    }

    #[test]
    fn commands_in_resp() {
        // As the Redis protocol specification writes `LLEN mylist`.
        assert_eq!(
            encode(&[vec!["LLEN".into(), "mylist".into()]]),
            b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n"
        );
    }
}
