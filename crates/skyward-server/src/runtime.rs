//! The runtime: drives the sans-IO core with real time, the store and the
//! local executors. One task per replica; it schedules only while it holds
//! the leadership lease.
//!
//! Each iteration: take in new submissions and cancel requests from the
//! store, feed executor events and heartbeats, fire the core's timers,
//! then drain the core's commands — all `Persist`/`RecordUsage` of a round
//! are committed in one fenced transaction *before* any `Dispatch` or
//! `CancelOnSite` of that round is carried out.

use crate::config::Site;
use crate::db::{Db, DbError, SiteRow, UsageRow, Write};
use crate::metrics::{Metrics, SiteGauge};
use skyward_core::{
    Command, Core, Input, JobSpec, Millis, Outcome, Record, Snapshot, State, WorkloadId,
};
use skyward_executor::{ExecEvent, Executor, LocalExecutor, RunAs, RunSpec};
use skyward_model::AcceleratorRequest;
use skyward_spec::job::JobRequest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// The runtime's clock. The server uses wall time; a simulator passes
/// its own (the core itself never reads one).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Submissions taken in per store read.
const INGEST_BATCH: i64 = 5_000;
/// The loop wakes at least this often (executor polling, other replicas'
/// submissions).
const IDLE_POLL_MS: u64 = 100;
/// New submissions are taken in at most this often. Each intake is a
/// transaction of the scheduler's; taking in after every group commit of
/// the writer would double the commits (and, on a disk with slow fsync,
/// halve the submissions a second). A submission waits for a cycle
/// anyway (`cycle_ms`, 1 s by default).
const INGEST_EVERY_MS: u64 = 50;
/// When submissions arrive slowly (an idle server), the next intake comes
/// as soon as a submission wakes the loop, this long after the last at
/// least: a lone submission starts in milliseconds, while a stream of them
/// is still taken in batches (each intake is a transaction).
const INGEST_IDLE_MS: u64 = 2;
/// Slowly: fewer than this many submissions a second, counted over
/// windows of [`INGEST_RATE_WINDOW_MS`].
const INGEST_IDLE_RATE_PER_S: u64 = 100;
const INGEST_RATE_WINDOW_MS: u64 = 1_000;

/// Questions the HTTP layer asks the scheduler (answered from the core).
pub enum Query {
    /// Pending workloads in scheduling order after a cursor, with reasons.
    Queue {
        after: Option<u64>,
        limit: usize,
        /// Only this team's workloads (positions stay global).
        team: Option<String>,
        reply: oneshot::Sender<Vec<QueueEntry>>,
    },
    Why {
        id: u64,
        reply: oneshot::Sender<Option<Vec<(String, u32)>>>,
    },
    /// Take sites out for a while (an outage drill).
    Drill {
        sites: Vec<String>,
        duration_ms: u64,
        reply: oneshot::Sender<Result<DrillReport, String>>,
    },
}

/// What a drill took out and what it moved (the runs stopped there; where
/// they go next is in each workload's status).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillReport {
    pub sites: Vec<String>,
    pub started_at_ms: u64,
    /// When the sites take work again.
    pub until_ms: u64,
    pub moved: Vec<DrillMoved>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillMoved {
    pub id: u64,
    pub from: String,
    pub attempt: u32,
    /// How long the stopped run had run (work at risk without a
    /// checkpoint).
    pub ran_ms: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueEntry {
    pub id: u64,
    pub name: String,
    pub team: String,
    pub priority: i32,
    pub position: usize,
    /// Reason → sites rejected for it in the last cycle.
    pub reasons: Vec<(String, u32)>,
}

pub struct Runtime {
    pub db: Db,
    pub sites: Vec<Site>,
    pub core_cfg: skyward_core::Config,
    pub work_dir: PathBuf,
    pub holder: String,
    pub lease_ms: u64,
    /// This replica is the only one (it holds the SQLite file's lock), so
    /// it may take over a dead predecessor's lease at once.
    pub exclusive: bool,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub clock: Arc<dyn Clock>,
    /// Who runs workloads (the server is root), and the cgroup tree that
    /// holds them, if any.
    pub run_as: Option<RunAs>,
    pub cgroup_root: Option<PathBuf>,
    /// Runs started by a version that kept them in `<state dir>/work`.
    pub legacy_work_dir: Option<PathBuf>,
    /// Secret values by name (from the config's `secrets:`).
    pub secrets: Arc<BTreeMap<String, String>>,
    /// The commitments' live state while this replica leads.
    pub live: Arc<crate::commitments::Shared>,
    /// Remote agents' outboxes and inboxes.
    pub agents: Arc<crate::agents::Hub>,
    /// Checkpoint stores: what each live workload's hold, for dispatch.
    pub checkpoints: Arc<crate::checkpoints::Shared>,
    /// How often the leader lists the stores of running workloads.
    pub checkpoint_scan_ms: u64,
    /// The server's main runtime (store I/O runs there, off the
    /// scheduler's thread).
    pub io: tokio::runtime::Handle,
}

/// How the scheduler reaches a site: an executor it drives itself, or a
/// remote agent through the hub.
enum Runner {
    Exec(Executor),
    Agent(crate::agents::AgentSite),
}

macro_rules! each_runner {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            Runner::Exec($e) => $body,
            Runner::Agent($e) => $body,
        }
    };
}

impl Runner {
    fn running(&self) -> Vec<WorkloadId> {
        each_runner!(self, e => e.running())
    }
    fn started(&self, id: WorkloadId) -> bool {
        each_runner!(self, e => e.started(id))
    }
    fn dispatch(
        &mut self,
        id: WorkloadId,
        attempt: u32,
        accelerators: u32,
        spec: &RunSpec,
    ) -> Result<Vec<ExecEvent>, skyward_executor::local::DispatchError> {
        each_runner!(self, e => e.dispatch(id, attempt, accelerators, spec))
    }
    /// Stops the run; true when it has stopped on return (an executor
    /// the scheduler drives), false when the stop is on its way (an
    /// agent's: [`Runner::stopped`] says when it has).
    fn cancel(&mut self, id: WorkloadId, attempt: u32) -> bool {
        match self {
            Runner::Exec(e) => {
                e.cancel(id, attempt);
                true
            }
            Runner::Agent(a) => {
                a.cancel(id, attempt);
                false
            }
        }
    }
    fn poll(&mut self) -> Vec<ExecEvent> {
        each_runner!(self, e => e.poll())
    }
    /// Runs told to stop that have stopped since the last call (after
    /// [`Runner::poll`]).
    fn stopped(&mut self) -> Vec<(WorkloadId, u32)> {
        match self {
            Runner::Exec(_) => Vec::new(),
            Runner::Agent(a) => a.take_stopped(),
        }
    }
    fn retire(&self, id: WorkloadId) {
        if let Runner::Exec(e) = self {
            e.retire(id);
        }
    }
    fn detach(&mut self) -> usize {
        each_runner!(self, e => e.detach())
    }
    /// When the site was last heard from, if that is news: a local
    /// executor now, an agent when it last synced.
    fn heard(&mut self, now: Millis) -> Option<Millis> {
        match self {
            Runner::Exec(_) => Some(now),
            Runner::Agent(a) => a.heard().map(|t| (t.max(0) as Millis).min(now)),
        }
    }
}

/// Why leading stopped.
enum Stop {
    Shutdown,
    LostLease,
}

fn to_job_spec(r: &JobRequest, team: &str) -> JobSpec {
    JobSpec {
        name: r.name.clone(),
        accelerators: r
            .accelerators
            .iter()
            .filter_map(|a| AcceleratorRequest::parse(a).ok())
            .collect(),
        nodes: r.nodes,
        priority: r.priority,
        providers: r.providers.clone(),
        regions: r.regions.clone(),
        residency: r.residency.clone(),
        compliance: r.compliance.clone(),
        spot: r.spot,
        hours: r.hours,
        max_runtime_ms: r.max_runtime_ms,
        preemptible: r.preemptible,
        team: team.to_string(),
        recovery: r.recovery,
        no_variant: r.no_variant.clone(),
        throughput: Default::default(),
    }
}

/// What to run; `secrets` holds the references (variable → secret
/// name) until dispatch resolves them.
fn to_run_spec(r: &JobRequest) -> RunSpec {
    RunSpec {
        setup: r.setup.clone(),
        run: r.run.clone(),
        env: r.env.clone(),
        secrets: r.secrets.clone(),
        checkpoint: r.checkpoint.clone(),
        nodes: r.nodes,
        walltime_ms: None,
    }
}

/// How much of a run's output is read for its throughput report.
const REPORT_SCAN_BYTES: u64 = 1 << 20;

/// The last `n` bytes of a file (None when it cannot be read).
fn read_tail(path: &std::path::Path, n: u64) -> Option<Vec<u8>> {
    let len = std::fs::metadata(path).ok()?.len();
    crate::http::read_chunk(path, len.saturating_sub(n), n)
        .ok()
        .map(|(_, bytes)| bytes)
}

/// Throughput reports by class: (alternative, rate), oldest first.
type Reports = BTreeMap<String, Vec<(String, f64)>>;
/// Reports of a class that estimates read (the newest): the same window
/// for placement and for what the API shows.
pub(crate) const REPORTS_PER_CLASS_MAX: usize = 1_000;

/// The class a workload's throughput reports are kept under: its team's
/// workloads of the same name.
pub(crate) fn class_of(team: &str, name: &str) -> String {
    format!("{team}/{name}")
}

fn prior_rate(
    alternative: &str,
    own: &BTreeMap<String, f64>,
    tflops: &skyward_catalog::accelerators::AcceleratorTable,
) -> Option<f64> {
    skyward_model::speed::prior_rate(alternative, own, |n| tflops.unit_tflops(n))
}

/// Speed estimates for `alternatives` from a class's `reports`, the prior
/// being the workload's own `throughput:` figures when it gives them (by
/// accelerator name), else the datasheet (dense BF16 TFLOPS × count).
pub(crate) fn estimates(
    reports: &[(String, f64)],
    alternatives: &[String],
    own: &BTreeMap<String, f64>,
    tflops: &skyward_catalog::accelerators::AcceleratorTable,
) -> Vec<skyward_model::speed::SpeedEstimate> {
    skyward_model::speed::estimate(reports, alternatives, |a| prior_rate(a, own, tflops))
}

/// The rates placement uses for `req`'s alternatives: learned from its
/// class's reports, with the workload's own `throughput:` (else the
/// datasheet) as the prior, one standard deviation down when it is
/// `risk_averse`; without a report, its `throughput:` as given; else
/// none (the core keeps the datasheet ratio).
fn learned_speeds(
    reports: &Reports,
    tflops: &skyward_catalog::accelerators::AcceleratorTable,
    class: &str,
    req: &JobRequest,
) -> BTreeMap<String, f64> {
    match reports.get(class) {
        Some(rs) => estimates(rs, &req.accelerators, &req.throughput, tflops)
            .into_iter()
            .map(|e| {
                let rate = if req.risk_averse {
                    e.rate * (-e.log_sd).exp()
                } else {
                    e.rate
                };
                (e.alternative, rate)
            })
            .collect(),
        None if !req.throughput.is_empty() => req
            .accelerators
            .iter()
            .filter_map(|a| Some((a.clone(), prior_rate(a, &req.throughput, tflops)?)))
            .collect(),
        None => BTreeMap::new(),
    }
}

/// What runs on an accelerator: the workload's run with the variant for
/// that accelerator over it (its setup, run and image replace the
/// workload's, its env is merged over the workload's), named in
/// `SKYWARD_VARIANT` (and the image in `SKYWARD_CONTAINER_IMAGE`: a local
/// site with a container runtime starts the run in it).
fn with_variant(
    mut run: RunSpec,
    variants: &BTreeMap<String, skyward_model::Variant>,
    accelerator: &str,
) -> RunSpec {
    let Some(key) = skyward_model::variant::variant_key(variants.keys(), accelerator) else {
        return run;
    };
    let Some(v) = variants.get(key) else {
        return run;
    };
    if let Some(s) = &v.setup {
        run.setup = Some(s.clone());
    }
    if let Some(r) = &v.run {
        run.run = r.clone();
    }
    run.env.extend(v.env.clone());
    run.env.insert("SKYWARD_VARIANT".into(), key.to_string());
    if let Some(i) = &v.image {
        run.env.insert("SKYWARD_CONTAINER_IMAGE".into(), i.clone());
    }
    run
}

/// How a run ended, kept until its end is stored.
type Ending = (Option<i32>, Option<String>);

/// An executor's report as the core's input (a lost run is a preemption:
/// the site no longer has it), and how the run ended, if it did.
fn exec_input(site: &str, e: ExecEvent) -> (Input, Option<(WorkloadId, Ending)>) {
    let input = skyward_executor::link::core_input(site, &e);
    match e {
        ExecEvent::Finished {
            id,
            exit_code,
            note,
            ..
        } => return (input, Some((id, (exit_code, note)))),
        ExecEvent::Lost {
            id,
            attempt,
            started: true,
        } => eprintln!(
            "skyward: workload {} attempt {attempt} on {site}: the run is gone without an exit code; requeued",
            id.0
        ),
        ExecEvent::Lost {
            id,
            attempt,
            started: false,
        } => eprintln!(
            "skyward: workload {} attempt {attempt} on {site}: recorded but never started; requeued, not billed",
            id.0
        ),
        ExecEvent::Acked { .. } | ExecEvent::Started { .. } => {}
    }
    (input, None)
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Dispatched { .. } => "dispatched",
        State::Running { .. } => "running",
        State::Done(Outcome::Succeeded) => "succeeded",
        State::Done(Outcome::Failed) => "failed",
        State::Done(Outcome::Cancelled) => "cancelled",
    }
}

fn state_from_row(
    state: &str,
    site: Option<String>,
    accelerators: u32,
    since: Option<i64>,
) -> Option<State> {
    match (state, site) {
        ("pending", _) => Some(State::Pending),
        ("dispatched", Some(site)) => Some(State::Dispatched { site, accelerators }),
        ("running", Some(site)) => Some(State::Running {
            site,
            accelerators,
            since: since.unwrap_or(0).max(0) as u64,
        }),
        _ => None,
    }
}

struct Leading<'a> {
    rt: &'a Runtime,
    term: i64,
    core: Core,
    runs: BTreeMap<WorkloadId, RunSpec>,
    /// Workloads with variants: how each runs on each stack.
    variants: BTreeMap<WorkloadId, BTreeMap<String, skyward_model::Variant>>,
    /// Each live workload's class (`team/name`), and the alternative its
    /// current run is on (`H100:8`).
    classes: BTreeMap<WorkloadId, String>,
    ran_on: BTreeMap<WorkloadId, String>,
    /// Throughput reports by class, and the datasheet figures they are
    /// scaled by.
    reports: Reports,
    tflops: skyward_catalog::accelerators::AcceleratorTable,
    /// Reports read from runs that succeeded, not stored yet.
    new_reports: Vec<crate::db::ThroughputReport>,
    submitted_at: BTreeMap<WorkloadId, Millis>,
    dispatched_at: BTreeMap<WorkloadId, Millis>,
    executors: BTreeMap<String, Runner>,
    site_info: BTreeMap<String, Site>,
    endings: BTreeMap<WorkloadId, Ending>,
    /// Each live workload's team, interned (few teams, many workloads).
    teams: BTreeMap<WorkloadId, Arc<str>>,
    team_names: BTreeSet<Arc<str>>,
    /// The commitments' live state, from the background refresher.
    live: watch::Receiver<crate::commitments::LiveState>,
    /// Asks the refresher for a prompt update (a run's usage was stored).
    live_kick: Arc<Notify>,
    _live_task: AbortOnDrop,
    /// Submissions a second over the last full window (low: the server
    /// is idle), and the current window: (start, submissions so far).
    intake_rate: u64,
    intake_window: (Millis, u64),
    /// A dispatch was carried out this round: poll the executors again at
    /// once for its start.
    dispatched_now: bool,
    /// Runs being stopped to make room: workload → the one it makes room
    /// for (the note of its requeue says so).
    preempted_for: BTreeMap<WorkloadId, WorkloadId>,
    /// Sites taken out by a drill, until when (no heartbeat before then).
    drills: BTreeMap<String, Millis>,
    /// Workloads moved by a drill (the note of their requeue says so).
    drilled: BTreeMap<WorkloadId, String>,
    /// When each site was last heard from (a heartbeat).
    last_heard: BTreeMap<String, Millis>,
    /// Whether each site was up at the last look, and its runs then:
    /// a change is a health event.
    was_up: BTreeMap<String, crate::metrics::SiteLook>,
    /// Health events not stored yet.
    site_events: Vec<crate::db::SiteEvent>,
    /// Workloads with checkpoint stores.
    ckpt: BTreeMap<WorkloadId, skyward_model::CheckpointStore>,
    /// The variables of a dispatch's checkpoint store, from its round's
    /// writes to its act.
    resume_env: BTreeMap<WorkloadId, BTreeMap<String, String>>,
    _ckpt_task: AbortOnDrop,
}

/// Stops the refresher when leading ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runtime {
    /// Runs until `shutdown` turns true: waits for the lease, leads while
    /// it holds it, waits again if it loses it.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        mut queries: mpsc::Receiver<Query>,
    ) -> Result<(), DbError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let now = self.clock.now_ms() as i64;
            let attempt = if self.exclusive {
                self.db
                    .take_lead(&self.holder, now, self.lease_ms as i64)
                    .await
                    .map(Some)
            } else {
                self.db
                    .try_lead(&self.holder, now, self.lease_ms as i64)
                    .await
            };
            let term = match attempt {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("skyward: leader election: {e}");
                    None
                }
            };
            match term {
                Some(term) => {
                    self.metrics.leader.store(1, Ordering::Relaxed);
                    eprintln!("skyward: {} leads (term {term})", self.holder);
                    let stop = self.lead(term, &mut shutdown, &mut queries).await;
                    self.metrics.leader.store(0, Ordering::Relaxed);
                    match stop {
                        Ok(Stop::Shutdown) => {
                            let _ = self.db.release(&self.holder).await;
                            return Ok(());
                        }
                        Ok(Stop::LostLease) => eprintln!("skyward: lost the lease; standing by"),
                        Err(e) => eprintln!("skyward: scheduler stopped: {e}; standing by"),
                    }
                }
                None => {
                    // Standby: answer queries with nothing (the leader has
                    // the queue), and try again in a third of a lease.
                    let wait = tokio::time::sleep(Duration::from_millis(self.lease_ms / 3));
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            _ = shutdown.changed() => return Ok(()),
                            q = queries.recv() => match q {
                                Some(Query::Queue { reply, .. }) => { let _ = reply.send(Vec::new()); }
                                Some(Query::Why { reply, .. }) => { let _ = reply.send(None); }
                                Some(Query::Drill { reply, .. }) => { let _ = reply.send(Err("this replica does not schedule now; ask the leader".into())); }
                                None => return Ok(()),
                            },
                        }
                    }
                }
            }
        }
    }

    async fn lead(
        &self,
        term: i64,
        shutdown: &mut watch::Receiver<bool>,
        queries: &mut mpsc::Receiver<Query>,
    ) -> Result<Stop, DbError> {
        let now = self.clock.now_ms();
        let rows = self.db.live_workloads().await?;
        let mut snaps = Vec::with_capacity(rows.len());
        let mut runs = BTreeMap::new();
        let mut variants = BTreeMap::new();
        let mut classes = BTreeMap::new();
        let tflops = skyward_catalog::accelerators::AcceleratorTable::builtin();
        let mut reports: Reports = BTreeMap::new();
        for r in self.db.reports(None, crate::db::REPORTS_KEPT).await? {
            reports
                .entry(r.class)
                .or_default()
                .push((r.alternative, r.rate));
        }
        for v in reports.values_mut() {
            let extra = v.len().saturating_sub(REPORTS_PER_CLASS_MAX);
            v.drain(..extra);
        }
        let mut ckpt = BTreeMap::new();
        let mut submitted_at = BTreeMap::new();
        let mut teams = BTreeMap::new();
        let mut team_names = BTreeSet::new();
        for r in rows {
            let req: JobRequest = serde_json::from_str(&r.spec_json)
                .map_err(|e| DbError::Corrupt(format!("workload {}: {e}", r.id)))?;
            let id = WorkloadId(r.id as u64);
            let state = state_from_row(
                &r.state,
                r.site.clone(),
                r.accelerators.max(0) as u32,
                r.since_ms,
            )
            .ok_or_else(|| {
                DbError::Corrupt(format!(
                    "workload {}: state {} without a site",
                    r.id, r.state
                ))
            })?;
            runs.insert(id, to_run_spec(&req));
            if !req.variants.is_empty() {
                variants.insert(id, req.variants.clone());
            }
            if let Some(c) = &req.checkpoint_store {
                self.checkpoints.watch(id.0, c.clone());
                if r.attempt > 0 {
                    self.checkpoints.attempt(id.0, r.attempt as u32);
                }
                ckpt.insert(id, c.clone());
            }
            teams.insert(id, intern(&mut team_names, &r.team));
            submitted_at.insert(id, r.submitted_at_ms.max(0) as u64);
            // A failover state that does not read is dropped (the worst
            // is a retry where it failed lately), not a failed restart.
            let failover = r
                .failover_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default();
            let class = class_of(&r.team, &req.name);
            let mut spec = to_job_spec(&req, &r.team);
            spec.throughput = learned_speeds(&reports, &tflops, &class, &req);
            classes.insert(id, class);
            snaps.push(Snapshot {
                id,
                spec,
                state,
                attempt: r.attempt.max(0) as u32,
                failover,
            });
        }
        let restored = snaps.len();
        let mut core = Core::restore_snapshots(self.core_cfg.clone(), snaps, now);
        // The commitments as they stand, before the first cycle.
        let state = crate::commitments::live_state(&self.db, now).await?;
        let _ = core.handle(
            now,
            Input::Commitments {
                live: crate::commitments::to_core(&state.commitments),
            },
        );
        let live_kick = Arc::new(Notify::new());
        let (mut live, task) = crate::commitments::spawn_refresher(
            self.db.clone(),
            self.clock.clone(),
            live_kick.clone(),
            self.live.clone(),
        );
        live.mark_unchanged();
        // What the stores held when the last leader saw them; then the
        // scans keep it current.
        crate::checkpoints::load(&self.db, &self.checkpoints).await?;
        let ckpt_task = self.io.spawn(crate::checkpoints::scan_forever(
            self.db.clone(),
            self.checkpoints.clone(),
            self.clock.clone(),
            self.checkpoint_scan_ms,
        ));
        let mut l = Leading {
            ckpt,
            resume_env: BTreeMap::new(),
            _ckpt_task: AbortOnDrop(ckpt_task),
            rt: self,
            term,
            core,
            runs,
            variants,
            classes,
            reports,
            tflops,
            ran_on: BTreeMap::new(),
            new_reports: Vec::new(),
            submitted_at,
            dispatched_at: BTreeMap::new(),
            executors: BTreeMap::new(),
            site_info: BTreeMap::new(),
            endings: BTreeMap::new(),
            teams,
            team_names,
            live,
            live_kick,
            _live_task: AbortOnDrop(task),
            intake_rate: 0,
            intake_window: (0, 0),
            dispatched_now: false,
            preempted_for: BTreeMap::new(),
            drills: BTreeMap::new(),
            drilled: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            was_up: BTreeMap::new(),
            site_events: Vec::new(),
        };
        // Sites register with the runs they still have; runs that ended or
        // vanished while no scheduler watched are settled.
        let rows: Vec<SiteRow> = self.sites.iter().map(site_row).collect();
        self.db.sites_store(&rows, now as i64).await?;
        for site in &self.sites {
            l.register(now, site.clone());
        }
        // Sites that left the configuration but still have work: their runs
        // are stopped, billed at the site's last price and requeued.
        let configured: Vec<&str> = self.sites.iter().map(|s| s.spec.name.as_str()).collect();
        for row in self.db.sites_stored().await? {
            if configured.contains(&row.name.as_str()) || l.core.on_site(&row.name).is_empty() {
                continue;
            }
            let Some(site) = site_from_row(&row) else {
                continue;
            };
            let name = row.name.clone();
            let n = l.core.on_site(&name).len();
            eprintln!(
                "skyward: site {name} is no longer configured; stopping its {n} run(s) and requeueing them"
            );
            l.register(now, site);
            let _ = l.core.handle(now, Input::RemoveSite { site: name.clone() });
            l.flush(now).await?;
            if let Some(mut ex) = l.executors.remove(&name) {
                // Whatever is left there is stopped too.
                for id in ex.running() {
                    ex.cancel(id, u32::MAX);
                }
            }
        }
        eprintln!(
            "skyward: restored {restored} live workloads; {} sites registered",
            self.sites.len()
        );
        let result = l.main_loop(shutdown, queries).await;
        self.live.set(None);
        // Runs go on without us; the next leader adopts them.
        let mut detached = 0;
        for ex in l.executors.values_mut() {
            detached += ex.detach();
        }
        if detached > 0 {
            eprintln!("skyward: {detached} runs keep going; the next server adopts them");
        }
        result
    }
}

/// The shared copy of a team's name.
fn intern(names: &mut BTreeSet<Arc<str>>, name: &str) -> Arc<str> {
    match names.get(name) {
        Some(n) => n.clone(),
        None => {
            let n: Arc<str> = Arc::from(name);
            names.insert(n.clone());
            n
        }
    }
}

/// A configured site as the store remembers it.
fn site_row(s: &Site) -> SiteRow {
    SiteRow {
        name: s.spec.name.clone(),
        provider: s.spec.region.provider.clone(),
        region: s.spec.region.region.clone(),
        accelerator: s.spec.accelerator.clone(),
        accelerators: i64::from(s.spec.accelerators),
        price_micro_usd_per_accelerator_hour: s.spec.price_usd_per_accelerator_hour.micros(),
        spot: s.spec.spot,
        price_basis: s.price_basis.as_str().to_string(),
        executor: s.executor.as_stored(),
    }
}

fn site_from_row(r: &SiteRow) -> Option<Site> {
    let basis = match r.price_basis.as_str() {
        "spot" => crate::config::PriceBasis::Spot,
        "reserved" => crate::config::PriceBasis::Reserved,
        _ => crate::config::PriceBasis::OnDemand,
    };
    Some(Site {
        spec: skyward_core::SiteSpec {
            name: r.name.clone(),
            region: skyward_model::RegionKey::new(&r.provider, &r.region),
            accelerator: r.accelerator.clone(),
            accelerators: u32::try_from(r.accelerators).ok()?,
            price_usd_per_accelerator_hour: skyward_model::Usd::from_micros(
                r.price_micro_usd_per_accelerator_hour,
            ),
            spot: r.spot,
            prepaid: basis == crate::config::PriceBasis::Reserved,
        },
        price_basis: basis,
        price_source: "last configured".into(),
        container: None,
        executor: crate::config::SiteExecutor::from_stored(&r.executor),
    })
}

impl Leading<'_> {
    /// A site registers with the runs it still has; runs that ended or
    /// vanished while no scheduler watched are settled.
    fn register(&mut self, now: Millis, site: Site) {
        let rt = self.rt;
        let name = site.spec.name.clone();
        let mut ex = match &site.executor {
            crate::config::SiteExecutor::Agent => {
                let mut a =
                    crate::agents::AgentSite::new(rt.agents.clone(), &name, site.spec.accelerators);
                // What the core believes runs there is followed until the
                // agent says otherwise (or the site is lost for silence).
                for (id, state, attempt) in self.core.on_site(&name) {
                    let (accelerators, started) = match state {
                        State::Running { accelerators, .. } => (accelerators, true),
                        State::Dispatched { accelerators, .. } => (accelerators, false),
                        _ => continue,
                    };
                    a.adopt(id, attempt, accelerators, started);
                }
                Runner::Agent(a)
            }
            crate::config::SiteExecutor::Local => {
                Runner::Exec(Executor::Local(LocalExecutor::with_options(
                    &name,
                    &rt.work_dir,
                    site.spec.accelerators,
                    skyward_executor::Options {
                        run_as: rt.run_as.clone(),
                        cgroup_root: rt.cgroup_root.clone(),
                        accelerator: site.spec.accelerator.clone(),
                        legacy_root: rt.legacy_work_dir.clone(),
                        container: site.container.clone(),
                    },
                )))
            }
            crate::config::SiteExecutor::Slurm { conf, rest } => Runner::Exec(Executor::Slurm(
                skyward_executor::slurm::SlurmExecutor::new(
                    &name,
                    &rt.work_dir,
                    site.spec.accelerators,
                    skyward_executor::slurm::Slurm {
                        conf: conf.clone(),
                        run_as: rt.run_as.clone(),
                        rest: rest.clone(),
                        accelerator: site.spec.accelerator.clone(),
                    },
                ),
            )),
        };
        let recovered = match &mut ex {
            Runner::Exec(e) => e.recover(),
            Runner::Agent(_) => Vec::new(),
        };
        let running = ex.running();
        // The site still knows the runs that ended while we were down:
        // register them as its own, then report how they ended (else the
        // core would take them back as lost and run them again).
        let mut known = running.clone();
        known.extend(recovered.iter().filter_map(|e| match e {
            ExecEvent::Finished { id, .. } => Some(*id),
            _ => None,
        }));
        let _ = self.core.handle(
            now,
            Input::RegisterSite {
                spec: site.spec.clone(),
                running: known,
            },
        );
        // An agent site with nothing on it whose agent has not synced yet
        // takes no work until it does (else work sent there waits a
        // heartbeat timeout, fails there and is kept away by the backoff).
        // With runs on it (a restart), its agent gets the heartbeat
        // timeout to come back.
        if let Runner::Agent(a) = &ex {
            if !a.ever_heard() && self.core.on_site(&name).is_empty() {
                let _ = self.core.handle(now, Input::TakeOut { site: name.clone() });
            }
        }
        for (id, state, attempt) in self.core.on_site(&name) {
            let dispatched = matches!(state, State::Dispatched { .. });
            let ended = recovered.iter().find(|e| {
                matches!(e, ExecEvent::Finished { id: i, attempt: a, .. } if *i == id && *a == attempt)
            });
            if !running.contains(&id) && ended.is_none() {
                // Gone from the site: lost, requeued.
                let _ = self.core.handle(
                    now,
                    Input::Preempted {
                        id,
                        site: name.clone(),
                        attempt,
                    },
                );
                continue;
            }
            // A run adopted before it wrote its pid has not started yet:
            // the executor reports its start when the pid appears.
            if dispatched && (ended.is_some() || ex.started(id)) {
                let _ = self.core.handle(
                    now,
                    Input::Started {
                        id,
                        site: name.clone(),
                        attempt,
                    },
                );
            }
            if let Some(e) = ended {
                self.feed(now, &name, e.clone());
            }
        }
        self.executors.insert(name.clone(), ex);
        self.site_info.insert(name, site);
    }

    /// Hands an executor's report to the core, keeping how a run ended.
    fn feed(&mut self, now: Millis, site: &str, e: ExecEvent) {
        let (input, ending) = exec_input(site, e);
        if let Some((id, ending)) = ending {
            self.endings.insert(id, ending);
        }
        let _ = self.core.handle(now, input);
    }

    async fn main_loop(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        queries: &mut mpsc::Receiver<Query>,
    ) -> Result<Stop, DbError> {
        let rt = self.rt;
        let mut last_renew = rt.clock.now_ms();
        let mut last_ingest = 0;
        loop {
            let started = rt.clock.now_ms();
            self.flush(started).await?;
            let now = rt.clock.now_ms();
            if now.saturating_sub(last_renew) >= rt.lease_ms / 3 {
                match rt
                    .db
                    .try_lead(&rt.holder, now as i64, rt.lease_ms as i64)
                    .await?
                {
                    Some(t) if t == self.term => last_renew = now,
                    _ => return Ok(Stop::LostLease),
                }
            }
            let gap = if self.intake_rate < INGEST_IDLE_RATE_PER_S {
                INGEST_IDLE_MS
            } else {
                INGEST_EVERY_MS
            };
            if now.saturating_sub(last_ingest) >= gap {
                let taken = self.ingest(now).await? as u64;
                let (start, rows) = self.intake_window;
                let elapsed = now.saturating_sub(start);
                if elapsed >= INGEST_RATE_WINDOW_MS {
                    self.intake_rate = (rows + taken) * 1000 / elapsed.max(1);
                    self.intake_window = (now, 0);
                } else {
                    self.intake_window = (start, rows + taken);
                    // A burst inside the window counts at once.
                    self.intake_rate = self
                        .intake_rate
                        .max((rows + taken) * 1000 / INGEST_RATE_WINDOW_MS);
                }
                last_ingest = now;
            }
            if self.live.has_changed().unwrap_or(false) {
                let live = crate::commitments::to_core(&self.live.borrow_and_update().commitments);
                let _ = self.core.handle(now, Input::Commitments { live });
            }
            let mut events = Vec::new();
            let mut stopped = Vec::new();
            self.drills.retain(|_, until| *until > now);
            for (name, ex) in self.executors.iter_mut() {
                if self.drills.contains_key(name) {
                    // Taken out by a drill: not heard from until it ends.
                    let _ = ex.heard(now);
                } else if let Some(at) = ex.heard(now) {
                    self.last_heard.insert(name.clone(), at);
                    let _ = self
                        .core
                        .handle(at, Input::Heartbeat { site: name.clone() });
                }
                events.extend(ex.poll().into_iter().map(|e| (name.clone(), e)));
                stopped.extend(ex.stopped().into_iter().map(|s| (name.clone(), s)));
            }
            for (name, e) in events {
                self.feed(now, &name, e);
            }
            for (site, (id, attempt)) in stopped {
                let _ = self.core.handle(now, Input::Stopped { id, site, attempt });
            }
            self.core.handle_timeout(now);
            self.flush(now).await?;
            // What the agents reported is stored: acknowledge it.
            for ex in self.executors.values() {
                if let Runner::Agent(a) = ex {
                    a.commit();
                }
            }
            self.publish();
            if !self.site_events.is_empty() {
                rt.db.site_events_add(&self.site_events).await?;
                self.site_events.clear();
            }
            for r in std::mem::take(&mut self.new_reports) {
                rt.db.report_add(&r).await?;
            }
            rt.metrics.cycle_us_last.store(
                rt.clock.now_ms().saturating_sub(started) * 1000,
                Ordering::Relaxed,
            );
            let mut wait_ms = self
                .core
                .poll_timeout()
                .map(|t| t.saturating_sub(rt.clock.now_ms()))
                .unwrap_or(IDLE_POLL_MS)
                .min(IDLE_POLL_MS);
            if std::mem::take(&mut self.dispatched_now) {
                wait_ms = wait_ms.min(1);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                _ = rt.wake.notified() => {}
                _ = shutdown.changed() => return Ok(Stop::Shutdown),
                q = queries.recv() => match q {
                    Some(Query::Drill { sites, duration_ms, reply }) => {
                        let r = self.drill(&sites, duration_ms);
                        let _ = reply.send(r);
                    }
                    Some(q) => self.answer(q),
                    None => return Ok(Stop::Shutdown),
                },
            }
            if *shutdown.borrow() {
                return Ok(Stop::Shutdown);
            }
        }
    }

    /// A run that succeeded: the last throughput its output reports (in
    /// its last [`REPORT_SCAN_BYTES`]), kept for its class and stored after
    /// this round. A run that reports nothing teaches nothing.
    fn read_report(&mut self, id: WorkloadId, at: Millis) {
        let (Some(class), Some(alt)) = (self.classes.get(&id), self.ran_on.get(&id)) else {
            return;
        };
        let path = self.rt.work_dir.join(id.0.to_string()).join("output.log");
        let Some(tail) = read_tail(&path, REPORT_SCAN_BYTES) else {
            return;
        };
        let Some((rate, unit)) = skyward_model::speed::last_report(&tail) else {
            return;
        };
        let v = self.reports.entry(class.clone()).or_default();
        if v.len() >= REPORTS_PER_CLASS_MAX {
            v.remove(0);
        }
        v.push((alt.clone(), rate));
        self.new_reports.push(crate::db::ThroughputReport {
            class: class.clone(),
            alternative: alt.clone(),
            rate,
            unit,
            at_ms: at as i64,
            workload_id: id.0 as i64,
        });
    }

    /// Takes `sites` out for `duration_ms`: their runs are stopped and
    /// requeued (placed elsewhere under every constraint), and they take
    /// no work until the drill ends and they are heard from again.
    fn drill(&mut self, sites: &[String], duration_ms: u64) -> Result<DrillReport, String> {
        let now = self.rt.clock.now_ms();
        for s in sites {
            if !self.executors.contains_key(s) {
                return Err(format!("no site '{s}'"));
            }
        }
        let mut moved = Vec::new();
        for s in sites {
            for (id, state, attempt) in self.core.on_site(s) {
                let ran_ms = match state {
                    State::Running { since, .. } => now.saturating_sub(since),
                    _ => 0,
                };
                moved.push(DrillMoved {
                    id: id.0,
                    from: s.clone(),
                    attempt,
                    ran_ms,
                });
                self.drilled.insert(id, s.clone());
            }
            self.drills
                .insert(s.clone(), now.saturating_add(duration_ms));
            let runs = moved.iter().filter(|m| m.from == *s).count();
            self.site_events.push(crate::db::SiteEvent {
                at_ms: now as i64,
                site: s.clone(),
                event: "drill",
                detail: format!(
                    "outage drill: taken out for {}; {runs} run(s) there stopped and requeued",
                    skyward_executor::local::human_ms(duration_ms)
                ),
            });
            let _ = self.core.handle(now, Input::TakeOut { site: s.clone() });
            eprintln!(
                "skyward: drill: site {s} taken out for {}",
                skyward_executor::local::human_ms(duration_ms)
            );
        }
        self.rt.wake.notify_one();
        Ok(DrillReport {
            sites: sites.to_vec(),
            started_at_ms: now,
            until_ms: now.saturating_add(duration_ms),
            moved,
        })
    }

    fn answer(&self, q: Query) {
        match q {
            Query::Queue {
                after,
                limit,
                team,
                reply,
            } => {
                // Pages of the whole queue, filtered to the team, until the
                // page is full (bounded by the queue's length).
                let mut entries = Vec::new();
                let mut cursor = after.map(WorkloadId);
                let mut position = after
                    .and_then(|a| self.core.pending_position(WorkloadId(a)))
                    .map_or(0, |p| p + 1);
                'pages: loop {
                    let ids = self.core.pending_page(cursor, limit.max(256));
                    if ids.is_empty() {
                        break;
                    }
                    for id in ids {
                        cursor = Some(id);
                        position += 1;
                        let team_of = self
                            .teams
                            .get(&id)
                            .map(|t| t.to_string())
                            .unwrap_or_default();
                        if team.as_ref().is_some_and(|t| *t != team_of) {
                            continue;
                        }
                        entries.push(QueueEntry {
                            id: id.0,
                            name: self
                                .core
                                .spec(id)
                                .map(|s| s.name.clone())
                                .unwrap_or_default(),
                            team: team_of,
                            priority: self.core.spec(id).map(|s| s.priority).unwrap_or(0),
                            position,
                            reasons: self
                                .core
                                .why_pending(id)
                                .map(|w| w.iter().map(|(r, n)| (r.to_string(), *n)).collect())
                                .unwrap_or_default(),
                        });
                        if entries.len() >= limit {
                            break 'pages;
                        }
                    }
                }
                let _ = reply.send(entries);
            }
            // Handled by the loop (it changes the core).
            Query::Drill { reply, .. } => {
                let _ = reply.send(Err("a drill is taken by the scheduling loop".into()));
            }
            Query::Why { id, reply } => {
                let why = self
                    .core
                    .why_pending(WorkloadId(id))
                    .map(|w| w.iter().map(|(r, n)| (r.to_string(), *n)).collect());
                let _ = reply.send(why);
            }
        }
    }

    /// Takes in new submissions and cancel requests from the store.
    /// Returns how many it took in.
    async fn ingest(&mut self, now: Millis) -> Result<usize, DbError> {
        let rt = self.rt;
        let mut after = 0;
        let mut taken = 0;
        loop {
            let batch = rt.db.new_submissions(after, INGEST_BATCH).await?;
            let n = batch.len();
            taken += n;
            for (id, spec_json, team) in batch {
                after = id;
                let wid = WorkloadId(id as u64);
                let req: JobRequest = match serde_json::from_str(&spec_json) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("skyward: workload {id}: stored spec unreadable: {e}");
                        continue;
                    }
                };
                let class = class_of(&team, &req.name);
                let mut spec = to_job_spec(&req, &team);
                spec.throughput = learned_speeds(&self.reports, &self.tflops, &class, &req);
                match self.core.handle(now, Input::Submit { id: wid, spec }) {
                    Ok(()) => {
                        self.runs.insert(wid, to_run_spec(&req));
                        self.classes.insert(wid, class);
                        if !req.variants.is_empty() {
                            self.variants.insert(wid, req.variants.clone());
                        }
                        if let Some(c) = &req.checkpoint_store {
                            rt.checkpoints.watch(wid.0, c.clone());
                            self.ckpt.insert(wid, c.clone());
                        }
                        let team = intern(&mut self.team_names, &team);
                        self.teams.insert(wid, team);
                        self.submitted_at.insert(wid, now);
                    }
                    Err(skyward_core::Rejected::Full) => return Ok(taken),
                    Err(_) => {}
                }
            }
            // Persist the Pending transitions before reading again, so the
            // next read does not return these rows.
            self.flush(now).await?;
            if (n as i64) < INGEST_BATCH {
                break;
            }
        }
        for id in rt.db.cancel_requests().await? {
            let _ = self.core.handle(
                now,
                Input::Cancel {
                    id: WorkloadId(id as u64),
                },
            );
        }
        Ok(taken)
    }

    /// Drains the core: persists every write of a round, then acts.
    async fn flush(&mut self, now: Millis) -> Result<(), DbError> {
        let rt = self.rt;
        loop {
            let mut writes = Vec::new();
            let mut actions = Vec::new();
            let mut ended = Vec::new();
            let mut requeued: BTreeMap<WorkloadId, String> =
                self.core.take_requeue_notes().into_iter().collect();
            for (id, note) in self.core.take_notes() {
                self.endings.insert(id, (None, Some(note)));
            }
            for (victim, by) in self.core.take_preemptions() {
                rt.metrics.preemptions.fetch_add(1, Ordering::Relaxed);
                self.preempted_for.insert(victim, by);
            }
            while let Some(c) = self.core.poll_command() {
                match c {
                    Command::Persist(Record::Transition { id, state, at }) => {
                        let (site, accelerators, since) = match &state {
                            State::Dispatched { site, accelerators } => {
                                (Some(site.clone()), *accelerators, None)
                            }
                            State::Running {
                                site,
                                accelerators,
                                since,
                            } => (Some(site.clone()), *accelerators, Some(*since as i64)),
                            _ => (None, 0, None),
                        };
                        let mut exit_code = None;
                        let mut note = None;
                        match &state {
                            State::Done(o) => {
                                ended.push(id);
                                if let Some((code, why)) = self.endings.remove(&id) {
                                    exit_code = code.map(i64::from);
                                    note = why;
                                }
                                if *o == Outcome::Succeeded {
                                    self.read_report(id, at);
                                }
                                match o {
                                    Outcome::Succeeded => {
                                        rt.metrics.finished_ok.fetch_add(1, Ordering::Relaxed)
                                    }
                                    Outcome::Failed => {
                                        rt.metrics.finished_failed.fetch_add(1, Ordering::Relaxed)
                                    }
                                    Outcome::Cancelled => {
                                        rt.metrics.cancelled.fetch_add(1, Ordering::Relaxed)
                                    }
                                };
                            }
                            State::Pending if self.dispatched_at.remove(&id).is_some() => {
                                rt.metrics.requeued.fetch_add(1, Ordering::Relaxed);
                                note = requeued.remove(&id);
                                if let Some(site) = self.drilled.remove(&id) {
                                    note = Some(format!(
                                        "moved by an outage drill of {site}; requeued, it resumes from its checkpoint"
                                    ));
                                }
                                if let Some(by) = self.preempted_for.remove(&id) {
                                    note = Some(format!(
                                        "preempted to make room for workload {} (higher priority); requeued, it resumes from its checkpoint",
                                        by.0
                                    ));
                                }
                            }
                            // Why it went there, in explain's words (kept
                            // with the event, so any replica can answer).
                            State::Dispatched { .. } => {
                                note = self.core.placed_why(id).map(|w| w.join("\n"));
                            }
                            _ => {}
                        }
                        writes.push(Write::Transition {
                            id: id.0 as i64,
                            state: state_name(&state),
                            site,
                            accelerators: i64::from(accelerators),
                            new_attempt: matches!(state, State::Dispatched { .. }),
                            since_ms: since,
                            at_ms: at as i64,
                            exit_code,
                            note,
                        });
                    }
                    Command::Persist(Record::Submitted { .. }) => {}
                    Command::Persist(Record::Failover { id, failover, .. }) => {
                        if let Ok(json) = serde_json::to_string(&failover) {
                            writes.push(Write::Failover {
                                id: id.0 as i64,
                                json,
                            });
                        }
                    }
                    Command::RecordUsage {
                        id,
                        site,
                        attempt,
                        accelerators,
                        accelerator_hours,
                        cost_usd,
                        from,
                        to,
                    } => {
                        let info = self.site_info.get(&site);
                        let provider = info
                            .map(|s| s.spec.region.provider.clone())
                            .unwrap_or_default();
                        rt.metrics
                            .add_usage(&provider, accelerator_hours, cost_usd.micros());
                        let discount_pct = self
                            .core
                            .commitments()
                            .iter()
                            .find(|c| c.provider == provider)
                            .map(|c| c.discount_pct.clamp(0.0, 100.0))
                            .unwrap_or(0.0);
                        let billed_micro_usd = skyward_ledger::runs::billed_micro_usd(
                            info.map(|s| s.price_basis.as_str()).unwrap_or("on-demand"),
                            cost_usd.micros(),
                            discount_pct,
                        );
                        let team = self
                            .teams
                            .get(&id)
                            .map(|t| t.to_string())
                            .unwrap_or_default();
                        writes.push(Write::Usage {
                            team,
                            billed_micro_usd,
                            row: UsageRow {
                                id: 0,
                                workload_id: id.0 as i64,
                                attempt: i64::from(attempt),
                                region: info
                                    .map(|s| s.spec.region.region.clone())
                                    .unwrap_or_default(),
                                provider,
                                accelerator: info
                                    .map(|s| s.spec.accelerator.clone())
                                    .unwrap_or_default(),
                                accelerators: i64::from(accelerators),
                                price_basis: info
                                    .map(|s| s.price_basis.as_str().to_string())
                                    .unwrap_or_default(),
                                price_micro_usd_per_accelerator_hour: info
                                    .map(|s| s.spec.price_usd_per_accelerator_hour.micros())
                                    .unwrap_or(0),
                                site,
                                accelerator_hours,
                                cost_micro_usd: cost_usd.micros(),
                                from_ms: from as i64,
                                to_ms: to as i64,
                            },
                        });
                    }
                    Command::Dispatch {
                        id,
                        ref site,
                        attempt,
                        ..
                    } => {
                        // The checkpoint store this attempt uses, stored
                        // with its dispatch.
                        if let Some(spec) = self.ckpt.get(&id) {
                            rt.checkpoints.attempt(id.0, attempt);
                            let provider = self
                                .site_info
                                .get(site)
                                .map(|s| s.spec.region.provider.clone())
                                .unwrap_or_default();
                            match rt.checkpoints.resume(id.0, spec, &provider) {
                                Some((r, env)) => {
                                    writes.push(Write::Resume {
                                        id: id.0 as i64,
                                        attempt: i64::from(attempt),
                                        store: r.store,
                                        step: r.step.map(|s| s as i64),
                                    });
                                    self.resume_env.insert(id, env);
                                }
                                None => {
                                    eprintln!("skyward: workload {}: none of its checkpoint stores is reachable from {provider}; attempt {attempt} starts without one", id.0);
                                    self.resume_env.remove(&id);
                                }
                            }
                        }
                        actions.push(c);
                    }
                    other => actions.push(other),
                }
            }
            if writes.is_empty() && actions.is_empty() {
                return Ok(());
            }
            if !writes.is_empty() {
                rt.db
                    .apply(&rt.holder, self.term, rt.clock.now_ms() as i64, &writes)
                    .await?;
                if writes.iter().any(|w| matches!(w, Write::Usage { .. })) {
                    self.live_kick.notify_one();
                }
                rt.metrics.scheduler_commits.fetch_add(1, Ordering::Relaxed);
            }
            for id in ended {
                // Stored: the run's files may be settled now (each kind of
                // executor keeps its own record in the run's directory).
                for ex in self.executors.values() {
                    ex.retire(id);
                }
                self.core.forget(id);
                self.runs.remove(&id);
                self.variants.remove(&id);
                self.classes.remove(&id);
                self.ran_on.remove(&id);
                if self.ckpt.remove(&id).is_some() {
                    rt.checkpoints.unwatch(id.0);
                }
                self.resume_env.remove(&id);
                self.teams.remove(&id);
                self.endings.remove(&id);
                self.submitted_at.remove(&id);
                self.dispatched_at.remove(&id);
            }
            for a in actions {
                self.act(now, a);
            }
        }
    }

    fn act(&mut self, now: Millis, c: Command) {
        let rt = self.rt;
        match c {
            Command::Dispatch {
                id,
                site,
                accelerators,
                attempt,
                walltime_ms,
            } => {
                rt.metrics.placements.fetch_add(1, Ordering::Relaxed);
                self.dispatched_at.insert(id, now);
                self.dispatched_now = true;
                let Some(ex) = self.executors.get_mut(&site) else {
                    return;
                };
                let mut run = self.runs.get(&id).cloned().unwrap_or_default();
                if let (Some(v), Some(s)) = (self.variants.get(&id), self.site_info.get(&site)) {
                    run = with_variant(run, v, &s.spec.accelerator);
                }
                if let Some(s) = self.site_info.get(&site) {
                    let per_node = accelerators / run.nodes.max(1);
                    self.ran_on
                        .insert(id, format!("{}:{per_node}", s.spec.accelerator));
                }
                run.walltime_ms = walltime_ms;
                if let Some(env) = self.resume_env.remove(&id) {
                    run.env.extend(env);
                }
                let resolved = resolve_secrets(&run.secrets, &rt.secrets);
                let result = match resolved {
                    Ok(values) => {
                        run.secrets = values;
                        ex.dispatch(id, attempt, accelerators, &run)
                    }
                    Err(why) => Err(skyward_executor::local::DispatchError::Spawn(id, why)),
                };
                match result {
                    Ok(events) => {
                        for e in events {
                            if let ExecEvent::Started { id, .. } = &e {
                                let t = rt.clock.now_ms();
                                rt.metrics
                                    .dispatch_latency
                                    .observe_ms(t.saturating_sub(now));
                                if let Some(s) = self.submitted_at.get(id) {
                                    rt.metrics.start_latency.observe_ms(t.saturating_sub(*s));
                                }
                            }
                            self.feed(rt.clock.now_ms(), &site, e);
                        }
                    }
                    Err(skyward_executor::local::DispatchError::Spawn(_, why)) => {
                        eprintln!("skyward: workload {}: cannot start on {site}: {why}", id.0);
                        let t = rt.clock.now_ms();
                        self.endings
                            .insert(id, (None, Some(format!("could not start: {why}"))));
                        let _ = self.core.handle(
                            t,
                            Input::Started {
                                id,
                                site: site.clone(),
                                attempt,
                            },
                        );
                        let _ = self.core.handle(
                            t,
                            Input::Finished {
                                id,
                                site,
                                attempt,
                                success: false,
                                ended_at: None,
                            },
                        );
                    }
                    Err(e) => {
                        eprintln!("skyward: workload {}: {e}; requeued", id.0);
                        let _ = self
                            .core
                            .handle(rt.clock.now_ms(), Input::Preempted { id, site, attempt });
                    }
                }
            }
            Command::CancelOnSite { id, site, attempt } => {
                if let Some(ex) = self.executors.get_mut(&site) {
                    // A local executor stops the run before it returns:
                    // say so (a run being preempted is requeued now). An
                    // agent's run has stopped when the agent says so; a
                    // run preempted there is requeued only then, else it
                    // could run twice while the cancel is on its way.
                    if ex.cancel(id, attempt) {
                        let _ = self
                            .core
                            .handle(rt.clock.now_ms(), Input::Stopped { id, site, attempt });
                    }
                }
            }
            _ => {}
        }
    }

    /// Gauges for /metrics.
    fn publish(&mut self) {
        let rt = self.rt;
        rt.metrics
            .queue_depth
            .store(self.core.pending_count() as u64, Ordering::Relaxed);
        let gauges: Vec<SiteGauge> = self
            .core
            .sites()
            .into_iter()
            .map(|(name, used, cap, alive)| SiteGauge {
                provider: self
                    .site_info
                    .get(&name)
                    .map(|s| s.spec.region.provider.clone())
                    .unwrap_or_default(),
                running: self
                    .executors
                    .get(&name)
                    .map(|e| e.running().len() as u32)
                    .unwrap_or(0),
                last_heartbeat_ms: self.last_heard.get(&name).map(|t| *t as i64),
                site: name,
                accelerators_used: used,
                accelerators: cap,
                alive,
            })
            .collect();
        let drills = &self.drills;
        let events = crate::metrics::health_changes(
            &mut self.was_up,
            &gauges,
            rt.clock.now_ms() as i64,
            |s| drills.get(s).map(|t| *t as i64),
        );
        self.site_events.extend(events);
        if let Ok(mut h) = rt.metrics.site_history.lock() {
            h.record(
                rt.clock.now_ms() as i64,
                &gauges,
                rt.metrics.requeued.load(Ordering::Relaxed),
                rt.metrics.preemptions.load(Ordering::Relaxed),
            );
        }
        if let Ok(mut g) = rt.metrics.sites.lock() {
            *g = gauges;
        }
    }
}

/// Secret values for a run's references; an unknown name fails the run
/// (it must not start without what it asked for).
fn resolve_secrets(
    refs: &BTreeMap<String, String>,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    refs.iter()
        .map(|(var, name)| {
            values
                .get(name)
                .map(|v| (var.clone(), v.clone()))
                .ok_or_else(|| {
                    format!("secret '{name}' (for {var}) is not configured on this server")
                })
        })
        .collect()
}

impl SystemClock {
    pub fn now_ms_i64(&self) -> i64 {
        self.now_ms() as i64
    }
}

#[cfg(test)]
mod speed_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job(extra: &str) -> JobRequest {
        let cat = skyward_catalog::Catalog::builtin().unwrap();
        skyward_spec::job::parse_one(
            &format!("name: b\naccelerators: [H100:1, A100:1]\nrun: x\n{extra}"),
            "t.yaml",
            &cat,
        )
        .unwrap()
    }

    /// By hand, with one H100 report of 100 and nothing on A100: the
    /// datasheet prior gives A100 100 × 312/989 (sd 0.5), the job's own
    /// `throughput: {H100: 2, A100: 1}` gives 50; risk-averse takes each
    /// one sd down (× e^-0.15 and × e^-0.5); with no report at all, the
    /// job's own figures are used as given, and without them nothing.
    #[test]
    fn placement_speeds_come_from_reports_the_jobs_prior_and_its_risk() {
        let tf = skyward_catalog::accelerators::AcceleratorTable::builtin();
        let mut reports = Reports::new();
        reports.insert("t/b".into(), vec![("H100:1".into(), 100.0)]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
        let s = learned_speeds(&reports, &tf, "t/b", &job(""));
        assert!(
            close(s["H100:1"], 100.0) && close(s["A100:1"], 100.0 * 312.0 / 989.0),
            "{s:?}"
        );
        let s = learned_speeds(
            &reports,
            &tf,
            "t/b",
            &job("throughput: {H100: 2, A100: 1}\n"),
        );
        assert!(close(s["A100:1"], 50.0), "{s:?}");
        let s = learned_speeds(&reports, &tf, "t/b", &job("risk_averse: true\n"));
        assert!(close(s["H100:1"], 100.0 * (-0.15f64).exp()), "{s:?}");
        assert!(
            close(s["A100:1"], 100.0 * 312.0 / 989.0 * (-0.5f64).exp()),
            "{s:?}"
        );
        let s = learned_speeds(
            &Reports::new(),
            &tf,
            "t/b",
            &job("throughput: {H100: 2, A100: 1}\n"),
        );
        assert_eq!(
            s,
            BTreeMap::from([("H100:1".to_string(), 2.0), ("A100:1".to_string(), 1.0)])
        );
        assert!(learned_speeds(&Reports::new(), &tf, "t/b", &job("")).is_empty());
    }
}
