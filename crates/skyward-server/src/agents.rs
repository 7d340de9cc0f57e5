//! Remote agents: a site whose work runs next to a cluster the server
//! cannot reach. The agent (`skyward agent`) connects **outbound** and
//! calls `POST /v1/agent/sync` in a loop: each call carries what it has
//! seen since the last (its runs' events, with its own sequence numbers,
//! the runs it holds, new log bytes) and acknowledges the commands it
//! applied; the answer holds the commands after that acknowledgement
//! (dispatches and cancels, each with its fencing attempt) and
//! acknowledges the agent's events. Either side may be cut off or restart:
//!
//! - Commands stay in the site's outbox until acknowledged, and carry the
//!   server instance's `epoch`: an agent that meets a new epoch starts
//!   its acknowledgements over. Commands lost with a server restart are
//!   taken back by the core's dispatch timeout.
//! - Events stay with the agent until acknowledged; the server takes each
//!   sequence number once.
//! - Dispatches carry the attempt: the agent's executor refuses a stale
//!   one, and the server stops any run the agent holds that it no longer
//!   owns (a newer attempt runs elsewhere, or it was cancelled), so work
//!   cut off with its site never runs twice as the live attempt.
//! - A site is heard from while its agent syncs; one silent past the
//!   heartbeat timeout is lost and its work requeued by the core.
//!
//! The site is declared in the server's configuration (`executor: agent`):
//! that is the grant. An agent token (`skyward token create --scope agent
//! --site NAME`) acts for that site only, and an agent that claims another
//! region, accelerator or more accelerators than granted is refused.

use crate::http::{authorize, body_text, json_response, now_ms, ApiError, ApiResult, App};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use skyward_core::WorkloadId;
use skyward_executor::link::{Link as RunLink, Note};
use skyward_executor::{ExecEvent, RunSpec};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Commands kept for a site whose agent does not collect them (older ones
/// are dropped; the core takes unacknowledged dispatches back anyway).
pub const OUTBOX_MAX: usize = 10_000;
/// Events, running runs and log chunks one sync may carry.
pub const SYNC_ITEMS_MAX: usize = 10_000;
/// Log bytes one sync may carry per run.
pub const LOG_CHUNK_MAX: usize = 256 * 1024;
/// Longest a sync waits for a command.
pub const WAIT_MS_MAX: u64 = 25_000;

/// What an agent says its site is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// `provider:region`.
    pub region: String,
    pub accelerator: String,
    pub accelerators: u32,
    /// Spot capacity (only for work that allows spot); must match the
    /// grant when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<bool>,
    /// on-demand, spot or reserved; must match the grant when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_basis: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    pub id: u64,
    pub attempt: u32,
}

/// One of the agent's runs' events (an `ExecEvent` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    /// The agent's own sequence number (from 1).
    pub seq: u64,
    /// acked, started, finished, lost.
    pub kind: String,
    pub id: u64,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For `lost`: whether it had started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

impl WireEvent {
    pub fn from_exec(seq: u64, e: &ExecEvent) -> WireEvent {
        let base = |kind: &str, id: WorkloadId, attempt: u32| WireEvent {
            seq,
            kind: kind.into(),
            id: id.0,
            attempt,
            success: None,
            exit_code: None,
            ended_at_ms: None,
            note: None,
            started: None,
        };
        match e {
            ExecEvent::Acked { id, attempt } => base("acked", *id, *attempt),
            ExecEvent::Started { id, attempt } => base("started", *id, *attempt),
            ExecEvent::Finished {
                id,
                attempt,
                success,
                exit_code,
                ended_at_ms,
                note,
            } => WireEvent {
                success: Some(*success),
                exit_code: *exit_code,
                ended_at_ms: *ended_at_ms,
                note: note.clone(),
                ..base("finished", *id, *attempt)
            },
            ExecEvent::Lost {
                id,
                attempt,
                started,
            } => WireEvent {
                started: Some(*started),
                ..base("lost", *id, *attempt)
            },
        }
    }

    pub fn to_exec(&self) -> Option<ExecEvent> {
        let (id, attempt) = (WorkloadId(self.id), self.attempt);
        Some(match self.kind.as_str() {
            "acked" => ExecEvent::Acked { id, attempt },
            "started" => ExecEvent::Started { id, attempt },
            "finished" => ExecEvent::Finished {
                id,
                attempt,
                success: self.success.unwrap_or(false),
                exit_code: self.exit_code,
                ended_at_ms: self.ended_at_ms,
                note: self.note.as_ref().map(|n| n.chars().take(1000).collect()),
            },
            "lost" => ExecEvent::Lost {
                id,
                attempt,
                started: self.started.unwrap_or(true),
            },
            _ => return None,
        })
    }
}

/// New output of a run, from `offset` (bytes) in its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    pub id: u64,
    /// The run's attempt: offsets count from the start of that attempt's
    /// own log (0: an agent that does not say, whose offsets are the
    /// server's).
    #[serde(default)]
    pub attempt: u32,
    pub offset: u64,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub site: String,
    pub capacity: Capacity,
    /// The server instance the agent's `ack` refers to.
    #[serde(default)]
    pub epoch: Option<String>,
    /// The agent process (new at each start): its events are numbered
    /// from 1 within it.
    pub session: String,
    /// The last command applied.
    #[serde(default)]
    pub ack: u64,
    #[serde(default)]
    pub events: Vec<WireEvent>,
    /// Every run the agent holds now: running, or ended with an end not
    /// yet acknowledged.
    #[serde(default)]
    pub running: Vec<RunRef>,
    #[serde(default)]
    pub logs: Vec<LogChunk>,
    /// How long to wait for a command when there is none (ms).
    #[serde(default)]
    pub wait_ms: u64,
}

/// What to run (a `RunSpec` on the wire; secrets resolved).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRun {
    #[serde(default)]
    pub setup: Option<String>,
    pub run: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub checkpoint: Option<String>,
    pub nodes: u32,
    #[serde(default)]
    pub walltime_ms: Option<u64>,
}

impl WireRun {
    pub fn from_spec(s: &RunSpec) -> WireRun {
        WireRun {
            setup: s.setup.clone(),
            run: s.run.clone(),
            env: s.env.clone(),
            secrets: s.secrets.clone(),
            checkpoint: s.checkpoint.clone(),
            nodes: s.nodes,
            walltime_ms: s.walltime_ms,
        }
    }

    pub fn to_spec(&self) -> RunSpec {
        RunSpec {
            setup: self.setup.clone(),
            run: self.run.clone(),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
            checkpoint: self.checkpoint.clone(),
            nodes: self.nodes,
            walltime_ms: self.walltime_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cmd {
    pub seq: u64,
    /// dispatch or cancel.
    pub kind: String,
    pub id: u64,
    pub attempt: u32,
    #[serde(default)]
    pub accelerators: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<WireRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncResponse {
    pub epoch: String,
    pub commands: Vec<Cmd>,
    /// The last of the agent's events taken.
    pub events_ack: u64,
    /// For each log chunk taken: where the run's log continues (the bytes
    /// the server has; a chunk that did not continue it was dropped).
    pub log_offsets: BTreeMap<u64, u64>,
}

#[derive(Default)]
struct Link {
    outbox: VecDeque<Cmd>,
    /// The agent's events received, handed to the scheduler, and stored
    /// by it (only the last are acknowledged: an event is dropped by the
    /// agent only once its effect is durable).
    events_seen: u64,
    events_taken: u64,
    events_committed: u64,
    inbox: Vec<ExecEvent>,
    /// The runs the agent said it holds at its last sync, if the
    /// scheduler has not looked at them yet.
    reported: Option<Vec<RunRef>>,
    /// Workloads dispatched to this site and not ended, with their
    /// attempt: the only runs whose logs the agent may write.
    owned: BTreeMap<u64, u32>,
    last_seen_ms: Option<i64>,
    /// The agent process whose events are counted (a new one starts its
    /// numbering over).
    agent_session: Option<String>,
}

/// The server's side of every agent: outboxes, inboxes and when each site
/// was last heard from. Shared by the HTTP handlers and the scheduler.
pub struct Hub {
    epoch: String,
    next_seq: Mutex<u64>,
    links: Mutex<BTreeMap<String, Link>>,
    notify: tokio::sync::Notify,
    work_dir: PathBuf,
}

impl Hub {
    pub fn new(work_dir: PathBuf, epoch: String) -> Hub {
        Hub {
            epoch,
            next_seq: Mutex::new(0),
            links: Mutex::new(BTreeMap::new()),
            notify: tokio::sync::Notify::new(),
            work_dir,
        }
    }

    fn push(&self, site: &str, mut cmd: Cmd) {
        let seq = match self.next_seq.lock() {
            Ok(mut n) => {
                *n += 1;
                *n
            }
            Err(_) => return,
        };
        cmd.seq = seq;
        if let Ok(mut links) = self.links.lock() {
            let l = links.entry(site.to_string()).or_default();
            if l.outbox.len() >= OUTBOX_MAX {
                l.outbox.pop_front();
            }
            l.outbox.push_back(cmd);
        }
        self.notify.notify_waiters();
    }

    /// When the site's agent last synced (Unix ms).
    pub fn last_seen_ms(&self, site: &str) -> Option<i64> {
        self.links
            .lock()
            .ok()
            .and_then(|l| l.get(site).and_then(|x| x.last_seen_ms))
    }

    /// The events received since the last take, and the runs the agent
    /// holds if it synced since (None: nothing new to judge by).
    fn take(&self, site: &str) -> (Vec<ExecEvent>, Option<Vec<RunRef>>) {
        match self.links.lock() {
            Ok(mut links) => {
                let l = links.entry(site.to_string()).or_default();
                l.events_taken = l.events_seen;
                (std::mem::take(&mut l.inbox), l.reported.take())
            }
            Err(_) => (Vec::new(), None),
        }
    }

    /// Which attempt of `id` runs (or was dispatched) on `site`, for its
    /// logs (None: none).
    fn set_owned(&self, site: &str, id: u64, attempt: Option<u32>) {
        if let Ok(mut links) = self.links.lock() {
            let l = links.entry(site.to_string()).or_default();
            match attempt {
                Some(a) => {
                    l.owned.insert(id, a);
                }
                None => {
                    l.owned.remove(&id);
                }
            }
        }
    }

    /// The scheduler stored what it took: acknowledge it to the agent.
    fn commit(&self, site: &str) {
        if let Ok(mut links) = self.links.lock() {
            if let Some(l) = links.get_mut(site) {
                l.events_committed = l.events_taken;
            }
        }
    }
}

/// The scheduler's handle on one agent site (what an executor is for a
/// local site): the pure [`RunLink`] that decides, and the hub that carries.
pub struct AgentSite {
    hub: Arc<Hub>,
    site: String,
    link: RunLink,
    /// Runs told to stop that the agent says have stopped, not yet taken.
    stopped: Vec<(WorkloadId, u32)>,
    /// The last sync passed on as a heartbeat.
    heard_ms: Option<i64>,
}

impl AgentSite {
    pub fn new(hub: Arc<Hub>, site: &str, capacity: u32) -> AgentSite {
        AgentSite {
            hub,
            site: site.to_string(),
            link: RunLink::new(capacity),
            stopped: Vec::new(),
            heard_ms: None,
        }
    }

    pub fn used(&self) -> u32 {
        self.link.used()
    }

    pub fn running(&self) -> Vec<WorkloadId> {
        self.link.running()
    }

    pub fn started(&self, id: WorkloadId) -> bool {
        self.link.held(id).is_some_and(|h| h.started)
    }

    /// When the agent last synced, if it has since the last call: a
    /// heartbeat dated when it was heard (so a silent site is lost one
    /// heartbeat timeout after its last sync, not later).
    pub fn heard(&mut self) -> Option<i64> {
        let t = self.hub.last_seen_ms(&self.site)?;
        if self.heard_ms.is_some_and(|h| h >= t) {
            return None;
        }
        self.heard_ms = Some(t);
        Some(t)
    }

    /// Whether its agent has synced with this server at all.
    pub fn ever_heard(&self) -> bool {
        self.hub.last_seen_ms(&self.site).is_some()
    }

    /// A run the core believes is here (a restart): followed until the
    /// agent says how it is.
    pub fn adopt(&mut self, id: WorkloadId, attempt: u32, accelerators: u32, started: bool) {
        self.link.adopt(id, attempt, accelerators, started);
        self.hub.set_owned(&self.site, id.0, Some(attempt));
    }

    pub fn dispatch(
        &mut self,
        id: WorkloadId,
        attempt: u32,
        accelerators: u32,
        spec: &RunSpec,
    ) -> Result<Vec<ExecEvent>, skyward_executor::local::DispatchError> {
        self.link.dispatch(&self.site, id, attempt, accelerators)?;
        self.hub.set_owned(&self.site, id.0, Some(attempt));
        self.hub.push(
            &self.site,
            Cmd {
                seq: 0,
                kind: "dispatch".into(),
                id: id.0,
                attempt,
                accelerators,
                run: Some(WireRun::from_spec(spec)),
            },
        );
        // The agent acknowledges it.
        Ok(Vec::new())
    }

    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) {
        if self.link.cancel(id, attempt) {
            self.hub.set_owned(&self.site, id.0, None);
        }
        self.push_cancel(id.0, attempt);
    }

    fn push_cancel(&self, id: u64, attempt: u32) {
        self.hub.push(
            &self.site,
            Cmd {
                seq: 0,
                kind: "cancel".into(),
                id,
                attempt,
                accelerators: 0,
                run: None,
            },
        );
    }

    /// Everything taken by [`AgentSite::poll`] is stored.
    pub fn commit(&self) {
        self.hub.commit(&self.site);
    }

    /// The agent's reports since the last poll, as the [`RunLink`] judges
    /// them: events of the site's own runs for the core, cancels for runs
    /// it holds but no longer owns, losses of runs it no longer holds.
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        let (events, reported) = self.hub.take(&self.site);
        let holds: Option<Vec<(WorkloadId, u32)>> =
            reported.map(|r| r.iter().map(|x| (WorkloadId(x.id), x.attempt)).collect());
        let r = self.link.reconcile(events, holds.as_deref());
        for id in &r.forgotten {
            self.hub.set_owned(&self.site, id.0, None);
        }
        for note in &r.notes {
            match note {
                Note::Ignored { id, attempt } => eprintln!(
                    "skyward: site {}: agent reported workload {} attempt {attempt}, which is not its to run; ignored",
                    self.site, id.0
                ),
                Note::Lost { id, attempt } => eprintln!(
                    "skyward: site {}: its agent no longer holds workload {} attempt {attempt}; lost",
                    self.site, id.0
                ),
                Note::Stopping { id, attempt } => eprintln!(
                    "skyward: site {}: agent holds workload {} attempt {attempt}, which it no longer owns; stopping it",
                    self.site, id.0
                ),
            }
        }
        for (id, attempt) in &r.cancels {
            self.push_cancel(id.0, *attempt);
        }
        self.stopped.extend(r.stopped);
        r.events
    }

    /// Runs told to stop that have stopped (their end, or the agent no
    /// longer holds them), since the last call.
    pub fn take_stopped(&mut self) -> Vec<(WorkloadId, u32)> {
        std::mem::take(&mut self.stopped)
    }

    pub fn detach(&mut self) -> usize {
        let ids = self.link.detach();
        for id in &ids {
            self.hub.set_owned(&self.site, id.0, None);
        }
        ids.len()
    }
}

fn refuse(status: StatusCode, code: &'static str, m: String) -> ApiError {
    ApiError::new(status, code, m)
}

/// Whether an agent may write this chunk: a workload dispatched to its
/// site, of the attempt dispatched there (a chunk naming another, an older
/// run's or a made-up one, is not written and starts no part of the log;
/// attempt 0, an agent that does not say, writes in the server's offsets).
fn may_write(owned: &BTreeMap<u64, u32>, c: &LogChunk) -> bool {
    owned
        .get(&c.id)
        .is_some_and(|a| c.attempt == 0 || c.attempt == *a)
}

/// Appends a chunk to the workload's log if it continues its attempt's
/// part; returns how much of the attempt's log the server has (in the
/// agent's offsets). A workload's log holds its attempts one after the
/// other, wherever each ran: an attempt's part starts where the log ended
/// when its first bytes came (kept in `.log-base-<attempt>`, so a restart
/// does not lose it).
fn append_log(dir: &std::path::Path, chunk: &LogChunk) -> u64 {
    use std::io::Write;
    let path = dir.join("output.log");
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let base_file = dir.join(format!(".log-base-{}", chunk.attempt));
    let base = if chunk.attempt == 0 {
        0
    } else {
        match std::fs::read_to_string(&base_file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            Some(b) if b <= len => b,
            // Its first bytes: its part starts here.
            _ if chunk.offset == 0 && !chunk.data.is_empty() => {
                if std::fs::create_dir_all(dir).is_err()
                    || std::fs::write(&base_file, len.to_string()).is_err()
                {
                    return 0;
                }
                len
            }
            // Nothing of it here yet: from its start.
            _ => return 0,
        }
    };
    let have = len - base;
    if chunk.offset != have || chunk.data.is_empty() {
        return have;
    }
    if std::fs::create_dir_all(dir).is_err() {
        return have;
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(chunk.data.as_bytes()))
    {
        Ok(()) => have + chunk.data.len() as u64,
        Err(_) => have,
    }
}

/// `POST /v1/agent/sync` (agent tokens, for their own site).
pub async fn sync(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    let who = authorize(&app, &headers, crate::auth::Scope::Agent).await?;
    let text = body_text(body, &headers).await?;
    let req: SyncRequest = serde_json::from_str(&text).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("a sync request: {e}"),
        )
    })?;
    if who.site.as_deref() != Some(req.site.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "wrong_site",
            format!(
                "token '{}' is {}; it cannot act for site '{}'",
                who.name,
                match &who.site {
                    Some(s) => format!("the agent token of site '{s}'"),
                    None => "not an agent token".into(),
                },
                req.site
            ),
        ));
    }
    let Some(site) = app.sites.iter().find(|s| s.spec.name == req.site) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "unknown_site",
            format!("no site '{}' in this server's configuration", req.site),
        ));
    };
    if site.executor != crate::config::SiteExecutor::Agent {
        return Err(refuse(
            StatusCode::CONFLICT,
            "not_an_agent_site",
            format!(
                "site '{}' is run by the server itself (its executor is not agent)",
                req.site
            ),
        ));
    }
    let granted = Capacity {
        region: site.spec.region.to_string(),
        accelerator: site.spec.accelerator.clone(),
        accelerators: site.spec.accelerators,
        spot: Some(site.spec.spot),
        price_basis: Some(site.price_basis.as_str().to_string()),
    };
    let c = &req.capacity;
    if !c.region.eq_ignore_ascii_case(&granted.region)
        || !c.accelerator.eq_ignore_ascii_case(&granted.accelerator)
        || c.accelerators > granted.accelerators
        || c.spot.is_some_and(|s| Some(s) != granted.spot)
        || c.price_basis
            .as_ref()
            .is_some_and(|b| Some(b) != granted.price_basis.as_ref())
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "capacity_not_granted",
            format!(
                "site '{}' is granted {} × {} in {} ({}); the agent claims {} × {} in {}{}",
                req.site,
                granted.accelerators,
                granted.accelerator,
                granted.region,
                granted.price_basis.as_deref().unwrap_or("on-demand"),
                c.accelerators,
                c.accelerator,
                c.region,
                c.price_basis
                    .as_ref()
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            ),
        ));
    }
    if req.events.len() > SYNC_ITEMS_MAX
        || req.running.len() > SYNC_ITEMS_MAX
        || req.logs.len() > SYNC_ITEMS_MAX
        || req.logs.iter().any(|l| l.data.len() > LOG_CHUNK_MAX)
    {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "sync_too_large",
            format!(
                "at most {SYNC_ITEMS_MAX} events, runs and log chunks, {LOG_CHUNK_MAX} bytes each"
            ),
        ));
    }
    if app.live.get().is_none() {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_leader",
            "this replica does not schedule now; retry (the leader takes agents)".into(),
        ));
    }
    let hub = app.agents.clone();
    let now = now_ms();
    // Logs first (outside the lock): only runs dispatched to this site.
    // Logs of the runs dispatched to this site only (an agent writes no
    // other workload's log); outside the lock.
    let owned: BTreeMap<u64, u32> = hub
        .links
        .lock()
        .map(|l| {
            l.get(&req.site)
                .map(|x| x.owned.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let log_offsets = {
        let work = hub.work_dir.clone();
        let logs: Vec<LogChunk> = req
            .logs
            .iter()
            .filter(|c| may_write(&owned, c))
            .cloned()
            .collect();
        tokio::task::spawn_blocking(move || {
            logs.iter()
                .map(|chunk| {
                    (
                        chunk.id,
                        append_log(&work.join(chunk.id.to_string()), chunk),
                    )
                })
                .collect::<BTreeMap<u64, u64>>()
        })
        .await
        .map_err(ApiError::internal)?
    };
    let take_commands = |hub: &Hub| -> Result<(Vec<Cmd>, u64), ApiError> {
        let mut links = hub
            .links
            .lock()
            .map_err(|_| ApiError::internal("agent hub poisoned"))?;
        let l = links.entry(req.site.clone()).or_default();
        l.last_seen_ms = Some(now_ms());
        if req.epoch.as_deref() == Some(hub.epoch.as_str()) {
            while l.outbox.front().is_some_and(|c| c.seq <= req.ack) {
                l.outbox.pop_front();
            }
        }
        Ok((l.outbox.iter().cloned().collect(), l.events_committed))
    };
    {
        let mut links = hub
            .links
            .lock()
            .map_err(|_| ApiError::internal("agent hub poisoned"))?;
        let l = links.entry(req.site.clone()).or_default();
        l.last_seen_ms = Some(now);
        // A new agent process numbers its events from 1 again.
        if l.agent_session.as_deref() != Some(req.session.as_str()) {
            l.events_seen = 0;
            l.events_taken = 0;
            l.events_committed = 0;
            l.agent_session = Some(req.session.clone());
        }

        for e in &req.events {
            if e.seq <= l.events_seen {
                continue;
            }
            match e.to_exec() {
                Some(x) => l.inbox.push(x),
                None => eprintln!(
                    "skyward: site {}: agent sent an event of unknown kind '{}'; ignored",
                    req.site, e.kind
                ),
            }
            l.events_seen = e.seq;
        }
        l.reported = Some(req.running.clone());
    }
    if !req.events.is_empty() || !req.running.is_empty() {
        app.wake.notify_one();
    }
    let (mut commands, mut events_ack) = take_commands(&hub)?;
    if commands.is_empty() && req.wait_ms > 0 {
        let wait = Duration::from_millis(req.wait_ms.min(WAIT_MS_MAX));
        let _ = tokio::time::timeout(wait, hub.notify.notified()).await;
        (commands, events_ack) = take_commands(&hub)?;
    }
    Ok(json_response(
        StatusCode::OK,
        &SyncResponse {
            epoch: hub.epoch.clone(),
            commands,
            events_ack,
            log_offsets,
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_and_runs_cross_the_wire_unchanged() {
        let events = [
            ExecEvent::Acked {
                id: WorkloadId(3),
                attempt: 2,
            },
            ExecEvent::Started {
                id: WorkloadId(3),
                attempt: 2,
            },
            ExecEvent::Finished {
                id: WorkloadId(3),
                attempt: 2,
                success: false,
                exit_code: Some(7),
                ended_at_ms: Some(1000),
                note: Some("walltime".into()),
            },
            ExecEvent::Lost {
                id: WorkloadId(4),
                attempt: 1,
                started: false,
            },
        ];
        for (i, e) in events.iter().enumerate() {
            let w = WireEvent::from_exec(i as u64 + 1, e);
            let back: WireEvent =
                serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
            assert_eq!(back.to_exec().as_ref(), Some(e));
        }
        let spec = RunSpec {
            setup: Some("s".into()),
            run: "r".into(),
            nodes: 2,
            walltime_ms: Some(5),
            ..RunSpec::default()
        };
        assert_eq!(WireRun::from_spec(&spec).to_spec(), spec);
    }

    /// A run the agent holds but does not own is told to stop, once; a
    /// report for a run it was never given changes nothing.
    #[test]
    fn the_server_stops_what_it_no_longer_owns_and_ignores_foreign_reports() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::new(dir.path().to_path_buf(), "e1".into()));
        let mut site = AgentSite::new(hub.clone(), "edge", 4);
        site.dispatch(WorkloadId(1), 2, 1, &RunSpec::default())
            .unwrap();
        {
            let mut links = hub.links.lock().unwrap();
            let l = links.get_mut("edge").unwrap();
            l.inbox.push(ExecEvent::Started {
                id: WorkloadId(9),
                attempt: 1,
            });
            l.inbox.push(ExecEvent::Started {
                id: WorkloadId(1),
                attempt: 2,
            });
            l.reported = Some(vec![
                RunRef { id: 1, attempt: 2 },
                RunRef { id: 1, attempt: 1 },
                RunRef { id: 5, attempt: 3 },
            ]);
        }
        let events = site.poll();
        assert_eq!(
            events,
            vec![ExecEvent::Started {
                id: WorkloadId(1),
                attempt: 2
            }]
        );
        assert!(site.started(WorkloadId(1)));
        let cancels = |hub: &Hub| -> Vec<(u64, u32)> {
            hub.links.lock().unwrap()["edge"]
                .outbox
                .iter()
                .filter(|c| c.kind == "cancel")
                .map(|c| (c.id, c.attempt))
                .collect()
        };
        assert_eq!(cancels(&hub), vec![(1, 1), (5, 3)]);
        // Reported again: not told twice.
        hub.links.lock().unwrap().get_mut("edge").unwrap().reported = Some(vec![
            RunRef { id: 5, attempt: 3 },
            RunRef { id: 1, attempt: 2 },
        ]);
        assert!(site.poll().is_empty());
        assert_eq!(cancels(&hub).len(), 2);
        // A stale dispatch and one beyond capacity are refused.
        assert!(site
            .dispatch(WorkloadId(1), 2, 1, &RunSpec::default())
            .is_err());
        assert!(site
            .dispatch(WorkloadId(2), 1, 4, &RunSpec::default())
            .is_err());
        // The agent no longer holds the started run (its machine lost it,
        // with no end to report): lost, so the core requeues it.
        hub.links.lock().unwrap().get_mut("edge").unwrap().reported = Some(vec![]);
        assert_eq!(
            site.poll(),
            vec![ExecEvent::Lost {
                id: WorkloadId(1),
                attempt: 2,
                started: true
            }]
        );
        assert_eq!(site.used(), 0);
    }

    /// Two attempts on two agents: each one's log counts from its own
    /// start, and the second follows the first in the workload's log.
    #[test]
    fn each_attempt_s_log_follows_the_last_wherever_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = |attempt: u32, offset: u64, data: &str| LogChunk {
            id: 1,
            attempt,
            offset,
            data: data.into(),
        };
        assert_eq!(append_log(dir.path(), &chunk(1, 0, "one\n")), 4);
        assert_eq!(append_log(dir.path(), &chunk(1, 4, "two\n")), 8);
        // Attempt 2, on another agent, starts its own log at 0.
        assert_eq!(append_log(dir.path(), &chunk(2, 0, "three\n")), 6);
        // A chunk that does not continue it: the agent is told where.
        assert_eq!(append_log(dir.path(), &chunk(2, 2, "ee\n")), 6);
        assert_eq!(append_log(dir.path(), &chunk(2, 6, "four\n")), 11);
        // A late copy of attempt 1's chunk is not appended again.
        append_log(dir.path(), &chunk(1, 4, "two\n"));
        // An attempt with no part yet is asked for its start.
        assert_eq!(append_log(dir.path(), &chunk(3, 5, "x")), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("output.log")).unwrap(),
            "one\ntwo\nthree\nfour\n"
        );
    }

    /// A hostile agent cannot write a log part for an attempt that is not
    /// the one dispatched to it (each would start a new part, and a file).
    #[test]
    fn only_the_dispatched_attempt_s_log_is_written() {
        let owned: BTreeMap<u64, u32> = [(7, 3)].into();
        let chunk = |id: u64, attempt: u32| LogChunk {
            id,
            attempt,
            offset: 0,
            data: "x".into(),
        };
        assert!(may_write(&owned, &chunk(7, 3)));
        assert!(may_write(&owned, &chunk(7, 0)));
        assert!(!may_write(&owned, &chunk(7, 2)));
        assert!(!may_write(&owned, &chunk(7, 4_000_000)));
        assert!(!may_write(&owned, &chunk(8, 3)));
    }

    /// A run told to stop (preempted for other work) has stopped only
    /// when the agent says so; until then the scheduler must not place it
    /// again.
    #[test]
    fn a_stop_is_reported_once_the_agent_no_longer_holds_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::new(dir.path().to_path_buf(), "e1".into()));
        let mut site = AgentSite::new(hub.clone(), "edge", 4);
        site.dispatch(WorkloadId(1), 1, 2, &RunSpec::default())
            .unwrap();
        site.cancel(WorkloadId(1), 1);
        let report = |held: Vec<RunRef>| {
            hub.links.lock().unwrap().get_mut("edge").unwrap().reported = Some(held);
        };
        report(vec![RunRef { id: 1, attempt: 1 }]);
        assert!(site.poll().is_empty());
        assert!(
            site.take_stopped().is_empty(),
            "stopped before the agent said so"
        );
        report(vec![]);
        assert!(site.poll().is_empty());
        assert_eq!(site.take_stopped(), vec![(WorkloadId(1), 1)]);
        assert!(site.take_stopped().is_empty());
    }

    /// Before the agent synced with this server, its silence says nothing
    /// about the runs the core believes are there.
    #[test]
    fn runs_are_not_judged_before_the_agent_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::new(dir.path().to_path_buf(), "e2".into()));
        let mut site = AgentSite::new(hub, "edge", 4);
        site.adopt(WorkloadId(3), 1, 2, true);
        assert!(site.poll().is_empty());
        assert_eq!(site.running(), vec![WorkloadId(3)]);
    }
}
