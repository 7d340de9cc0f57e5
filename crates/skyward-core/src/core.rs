//! The state machine.

use crate::assign;
use crate::held::{Held, Run};
use crate::queue::Queue;
use crate::types::{
    Avoid, Command, Failover, Input, JobSpec, LiveCommitment, Millis, Outcome, Record, SiteSpec,
    State, WorkloadId,
};
use serde::Serialize;
use skyward_catalog::accelerators::AcceleratorTable;
use skyward_catalog::regions::region_info;
use skyward_model::{SpotPolicy, Usd};
use skyward_placement::reasons;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Config {
    /// A scheduling cycle runs at most this often.
    pub cycle_ms: Millis,
    /// A dispatch not acknowledged by then is taken back and requeued.
    pub dispatch_timeout_ms: Millis,
    /// A site silent for this long is presumed lost; its work is requeued.
    pub heartbeat_timeout_ms: Millis,
    /// Workloads held (every state), and pending ones considered per cycle.
    pub workloads_max: usize,
    /// Commands waiting to be drained; more means the runtime is not
    /// draining, a programming error.
    pub commands_max: usize,
    /// The global step runs the exact MILP (with a time limit) on cycles
    /// with at most this many options whose gap the Lagrangian leaves
    /// open; 0 keeps every cycle deterministic.
    pub exact_options_max: usize,
    /// Teams' weights (fair share) and quotas; a team not listed has
    /// weight 1 and no quota.
    pub teams: BTreeMap<String, crate::policy::Team>,
    /// An event (a submission, a run's end, a site or commitments change)
    /// brings the next cycle forward to now, but cycles start at most this
    /// often: under load, the events between two cycles are handled
    /// together.
    pub cycle_min_gap_ms: Millis,
    /// How long a place that failed a workload is avoided after its first
    /// failure (doubling with each further one, up to the max).
    pub failover_backoff_ms: Millis,
    pub failover_backoff_max_ms: Millis,
    /// Keep why each placement went where it did (`placed_why`, what
    /// `skyward explain` shows). The simulator, which never shows them,
    /// turns it off: the words cost a tenth of a cycle.
    pub explain: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cycle_ms: 1_000,
            dispatch_timeout_ms: 30_000,
            heartbeat_timeout_ms: 15_000,
            workloads_max: 1_000_000,
            commands_max: 10_000_000,
            exact_options_max: 2_000,
            cycle_min_gap_ms: 5,
            teams: BTreeMap::new(),
            failover_backoff_ms: FAILOVER_BACKOFF_MS,
            failover_backoff_max_ms: FAILOVER_BACKOFF_MAX_MS,
            explain: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Duplicate(WorkloadId),
    Invalid(String),
    Full,
    UnknownWorkload(WorkloadId),
    UnknownSite(String),
    /// The input refers to a state the core has moved past (a late ack, a
    /// finish from a site the work was taken from); it changed nothing.
    Stale(String),
}

/// Site not-yet-known after a restart: its work waits for it to come back.
pub const REASON_SITE_DOWN: &str = "site down";
pub const REASON_SITE_FULL: &str = "site capacity in use";
/// The gang needs more accelerators than the site has at all.
pub const REASON_SITE_TOO_SMALL: &str = "gang larger than the site";
pub const REASON_SPOT_NOT_ALLOWED: &str = "spot site; the workload says spot: never";
pub const REASON_SPOT_REQUIRED: &str = "not a spot site; the workload says spot: required";
/// The site's free capacity is held for a waiting gang ahead in the
/// queue, and this run would not end before that gang can start.
pub const REASON_RESERVED: &str = "capacity held for a gang ahead in the queue";
/// The team's quota (`max_accelerators`) would be exceeded.
pub const REASON_TEAM_QUOTA: &str = "team quota reached";
/// The last cycle stopped judging this workload's filter after
/// [`FILTER_DEPTH_MAX`] of its workloads ahead could not start.
pub const REASON_QUEUE_DEPTH: &str =
    "behind workloads of the same kind that cannot start (judged as the queue moves)";
/// The site (its region, or its provider, by the workload's recovery
/// strategy) failed this workload lately and is avoided for a while.
pub const REASON_FAILOVER_BLOCKED: &str = "avoided after a failure there (recovery backoff)";

/// How long a failed site (region, provider) is avoided after a workload's
/// first failure by default ([`Config::failover_backoff_ms`]); it doubles
/// with each further failure, up to [`FAILOVER_BACKOFF_MAX_MS`].
pub const FAILOVER_BACKOFF_MS: Millis = 300_000;
pub const FAILOVER_BACKOFF_MAX_MS: Millis = 3_600_000;

/// A workload's last persisted state, for [`Core::restore_snapshots`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: WorkloadId,
    pub spec: JobSpec,
    pub state: State,
    /// Dispatches so far.
    pub attempt: u32,
    /// Sites that failed it and where it avoids.
    pub failover: Failover,
}

#[derive(Debug, Clone)]
struct Workload {
    spec: JobSpec,
    seq: u64,
    state: State,
    /// Dispatches so far (the fencing token of the current one).
    attempt: u32,
    /// Scheduling class: workloads with equal requirements share it.
    class: u32,
    /// Workloads whose sites pass the same checks share it (the class
    /// without walltime and team).
    filter: u32,
    /// Why it is still pending: reason → sites rejected for it (last
    /// cycle), shared by the workloads of a class.
    why: Why,
    /// When an unacknowledged dispatch is taken back (its key in
    /// `dispatch_deadlines`, so it can be removed without a scan).
    deadline: Option<Millis>,
    /// Why its current dispatch went where it did (empty when pending).
    placed_why: Vec<String>,
    /// Being stopped to make room for this workload (preemption): it is
    /// requeued when its site says it stopped.
    stopping_for: Option<WorkloadId>,
    /// Sites that failed it and where it avoids (persisted).
    failover: Failover,
}

impl Workload {
    fn avoiding(&self, now: Millis) -> bool {
        self.failover.avoid.iter().any(|(_, until)| *until > now)
    }

    fn avoids(&self, s: &SiteSpec, now: Millis) -> bool {
        self.failover.avoid.iter().any(|(a, until)| {
            *until > now
                && match a {
                    Avoid::Site(n) => *n == s.name,
                    Avoid::Region(r) => *r == s.region,
                    Avoid::Provider(p) => *p == s.region.provider,
                }
        })
    }
}

/// What makes two workloads interchangeable for placement (Nomad's
/// computed class): equal requirements get equal verdicts.
type ClassKey = (
    FilterKey,
    // Walltime (hours as bits, max runtime): backfill depends on it.
    (Option<u64>, Option<Millis>),
    // Team: its quota may leave it pending where another team's fits.
    String,
);

/// What decides which sites pass a workload's checks (capacity aside).
type FilterKey = (
    Vec<(String, u32)>,
    u32,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    // Spot policy; alternatives with no variant; learned rates (bits).
    (SpotPolicy, Vec<String>, Vec<(String, u64)>),
);

fn filter_key(spec: &JobSpec) -> FilterKey {
    (
        spec.accelerators
            .iter()
            .map(|a| (a.name.to_ascii_lowercase(), a.count))
            .collect(),
        spec.nodes,
        spec.providers.clone(),
        spec.regions.clone(),
        spec.residency.clone(),
        spec.compliance.clone(),
        (
            spec.spot,
            spec.no_variant
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            spec.throughput
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_bits()))
                .collect(),
        ),
    )
}

fn class_key(spec: &JobSpec) -> ClassKey {
    (
        filter_key(spec),
        (spec.hours.map(f64::to_bits), spec.max_runtime_ms),
        spec.team.clone(),
    )
}

/// How a run taken back ended, for its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// Not reported: billed to now (or to a lost site's last heartbeat).
    Unknown,
    /// The site's own record of its end.
    At(Millis),
    /// It never ran: no usage.
    NeverRan,
}

/// The sites in name order and their providers, kept between cycles
/// until a site registers or is removed.
#[derive(Debug, Clone, Default)]
struct SiteOrder {
    names: Vec<String>,
    /// Providers by name, then [`PREPAID`]: prepaid (reserved) sites are
    /// priced as one more "provider" whose spend costs nothing (using them
    /// adds no cost and burns no commitment).
    providers: Vec<String>,
    /// Each site's index in `providers`.
    site_provider: Vec<usize>,
}

impl SiteOrder {
    fn of(sites: &BTreeMap<String, Site>) -> SiteOrder {
        let mut providers: Vec<String> = sites
            .values()
            .filter_map(|s| s.spec.as_ref().map(|x| x.region.provider.clone()))
            .collect();
        providers.sort();
        providers.dedup();
        let prepaid = providers.len();
        let site_provider = sites
            .values()
            .map(|site| match site.spec.as_ref() {
                Some(x) if x.prepaid => prepaid,
                spec => spec
                    .and_then(|x| providers.iter().position(|p| *p == x.region.provider))
                    .unwrap_or(0),
            })
            .collect();
        providers.push(PREPAID.to_string());
        SiteOrder {
            names: sites.keys().cloned().collect(),
            providers,
            site_provider,
        }
    }
}

/// A site that passes every check of a class but capacity.
#[derive(Debug, Clone)]
struct ClassSite {
    site: usize,
    /// Accelerators the gang takes there, of the site's `capacity`.
    need: u32,
    capacity: u32,
    price: Usd,
    /// Hours relative to the first alternative (the walltime's scale).
    hours: f64,
}

/// One class's sites in a cycle.
#[derive(Debug, Clone, Default)]
struct ClassSites {
    ok: Vec<ClassSite>,
    /// Sites turned down, by reason.
    why: BTreeMap<&'static str, u32>,
}

/// Capacity held on a site for a waiting gang during one cycle.
#[derive(Debug, Clone)]
struct Reservation {
    /// When the gang can start (None: not known, a run there has no
    /// walltime).
    shadow: Option<Millis>,
    /// Accelerators free at that time beyond what the gang needs.
    spare: u32,
}

#[derive(Debug, Clone)]
struct Site {
    /// None until a site known from persisted work registers again.
    spec: Option<SiteSpec>,
    /// Region attributes, computed once at registration.
    geography: String,
    certifications: Vec<String>,
    used: u32,
    last_heartbeat: Millis,
    alive: bool,
}

#[derive(Debug, Clone)]
pub struct Core {
    cfg: Config,
    workloads: BTreeMap<WorkloadId, Workload>,
    pending: Queue,
    /// Pending work that no site could ever take at its last cycle (the
    /// wrong accelerator, residency, compliance, too big…: no reason that
    /// running work ending would lift), by class, in queue order. Cycles
    /// skip it until the sites change (a site registers or comes back),
    /// so a backlog nobody can place costs nothing per cycle. Still
    /// pending to every reader: its count, its position and its `why`.
    parked: BTreeMap<u32, BTreeSet<(i64, u64, WorkloadId)>>,
    sites: BTreeMap<String, Site>,
    /// The sites' names in order, shared by the cycles until a site is
    /// added or removed (then emptied, and rebuilt by the next cycle).
    site_order: Arc<SiteOrder>,
    /// Per filter, the sites that pass its checks, kept between cycles
    /// until the sites change.
    filter_sites: BTreeMap<u32, Arc<ClassSites>>,
    dispatch_deadlines: BTreeSet<(Millis, WorkloadId)>,
    commands: VecDeque<Command>,
    next_cycle: Option<Millis>,
    seq: u64,
    classes: BTreeMap<ClassKey, u32>,
    filters: BTreeMap<FilterKey, u32>,
    /// Workloads in memory per class and per filter (by id). A class or
    /// filter no workload has any more is dropped, and the ids renumbered,
    /// once they outnumber the workloads (see [`Core::compact`]): a
    /// server that sees a new walltime with every submission keeps
    /// memory bounded by its live work.
    class_refs: Vec<u32>,
    filter_refs: Vec<u32>,
    /// Per filter, each alternative's hours relative to the first (None:
    /// no throughput figure), as `skyward plan` scales them.
    class_hours: Vec<Vec<Option<f64>>>,
    accelerators: AcceleratorTable,
    commitments: Vec<LiveCommitment>,
    last_cycle: Option<CycleReport>,
    last_cycle_at: Option<Millis>,
    /// Preemptions since the runtime last took them: (taken back, for).
    preemptions: Vec<(WorkloadId, WorkloadId)>,
    /// Why the core itself ended workloads since the runtime last took
    /// them (restarts exhausted).
    notes: Vec<(WorkloadId, String)>,
    /// Why workloads were requeued after a site failed them, since the
    /// runtime last took them.
    requeue_notes: Vec<(WorkloadId, String)>,
    /// When places avoided after failures open again (a cycle then).
    avoid_ends: BTreeSet<Millis>,
    /// Pending workloads judged by all cycles so far (the queue's share of
    /// a cycle's work).
    ordered_total: u64,
    /// Workloads held (any state) that may be preempted.
    preemptible_held: usize,
    /// The work each site holds, kept as it changes.
    held: Held,
    /// Per filter, what `why_pending` says of work of that filter the last
    /// cycle stopped before judging: the reasons of work it found full and
    /// held everywhere it may go, or the depth reason.
    saturated: BTreeMap<u32, Why>,
    /// The reasons of work behind its filter's first [`FILTER_DEPTH_MAX`]
    /// that could not start.
    depth_why: Why,
}

fn usage_cost(site: &Site, accelerators: u32, from: Millis, to: Millis) -> (f64, Usd) {
    let hours = to.saturating_sub(from) as f64 / 3_600_000.0;
    let acc_hours = hours * f64::from(accelerators);
    let price = site
        .spec
        .as_ref()
        .map(|s| s.price_usd_per_accelerator_hour)
        .unwrap_or(Usd::ZERO);
    (acc_hours, price.times(acc_hours))
}

impl Core {
    pub fn new(cfg: Config) -> Core {
        Core {
            cfg,
            workloads: BTreeMap::new(),
            pending: Queue::default(),
            saturated: BTreeMap::new(),
            depth_why: Arc::new(BTreeMap::from([(REASON_QUEUE_DEPTH, 1)])),
            parked: BTreeMap::new(),
            site_order: Arc::default(),
            filter_sites: BTreeMap::new(),
            ordered_total: 0,
            preemptible_held: 0,
            held: Held::default(),
            sites: BTreeMap::new(),
            dispatch_deadlines: BTreeSet::new(),
            commands: VecDeque::new(),
            next_cycle: None,
            seq: 0,
            classes: BTreeMap::new(),
            filters: BTreeMap::new(),
            class_refs: Vec::new(),
            filter_refs: Vec::new(),
            class_hours: Vec::new(),
            accelerators: AcceleratorTable::builtin(),
            commitments: Vec::new(),
            last_cycle: None,
            last_cycle_at: None,
            preemptions: Vec::new(),
            notes: Vec::new(),
            requeue_notes: Vec::new(),
            avoid_ends: BTreeSet::new(),
        }
    }

    fn filter_of(&mut self, spec: &JobSpec) -> u32 {
        let key = filter_key(spec);
        let n = self.filter_refs.len() as u32;
        let filter = *self.filters.entry(key).or_insert(n);
        if filter == n {
            self.filter_refs.push(0);
            let table = &self.accelerators;
            let first = spec.accelerators.first();
            let hours = spec
                .accelerators
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if i == 0 {
                        return Some(1.0);
                    }
                    let f = first?;
                    if let (Some(r), Some(t)) = (
                        spec.throughput.get(&f.to_string()),
                        spec.throughput.get(&a.to_string()),
                    ) {
                        return (*t > 0.0).then(|| r / t);
                    }
                    let r = table.unit_tflops(&f.name)? * f64::from(f.count);
                    let t = table.unit_tflops(&a.name)? * f64::from(a.count);
                    (t > 0.0).then(|| r / t)
                })
                .collect();
            self.class_hours.push(hours);
        }
        self.filter_refs[filter as usize] += 1;
        filter
    }

    fn class_of(&mut self, spec: &JobSpec) -> u32 {
        let key = class_key(spec);
        let n = self.class_refs.len() as u32;
        let class = *self.classes.entry(key).or_insert(n);
        if class == n {
            self.class_refs.push(0);
        }
        self.class_refs[class as usize] += 1;
        class
    }

    /// Drops the classes and filters no workload in memory has, once they
    /// outnumber the workloads, and renumbers the rest (in their old
    /// order, so cycles see the same order as before). Amortized: each
    /// pass is paid for by as many workloads forgotten since the last.
    fn compact(&mut self) {
        let live = self.workloads.len();
        if self.class_refs.len() > 2 * live + COMPACT_SLACK {
            let (classes, remap, refs) =
                renumber(std::mem::take(&mut self.classes), &self.class_refs);
            self.classes = classes;
            self.class_refs = refs;
            for w in self.workloads.values_mut() {
                w.class = remap[w.class as usize];
            }
            self.parked = std::mem::take(&mut self.parked)
                .into_iter()
                .map(|(c, set)| (remap[c as usize], set))
                .collect();
        }
        if self.filter_refs.len() > 2 * live + COMPACT_SLACK {
            let (filters, remap, refs) =
                renumber(std::mem::take(&mut self.filters), &self.filter_refs);
            self.filters = filters;
            self.filter_refs = refs;
            for w in self.workloads.values_mut() {
                w.filter = remap[w.filter as usize];
            }
            let mut hours = vec![Vec::new(); self.filter_refs.len()];
            for (old, h) in std::mem::take(&mut self.class_hours)
                .into_iter()
                .enumerate()
            {
                if let Some(slot) = remap.get(old).and_then(|n| hours.get_mut(*n as usize)) {
                    *slot = h;
                }
            }
            self.class_hours = hours;
            self.filter_sites = std::mem::take(&mut self.filter_sites)
                .into_iter()
                .filter(|(f, _)| remap[*f as usize] != u32::MAX)
                .map(|(f, s)| (remap[f as usize], s))
                .collect();
            self.saturated = std::mem::take(&mut self.saturated)
                .into_iter()
                .filter(|(f, _)| remap[*f as usize] != u32::MAX)
                .map(|(f, s)| (remap[f as usize], s))
                .collect();
            self.pending.remap_filters(&remap);
        }
    }

    /// Rebuilds the core from persisted records after a restart at `now`.
    /// Work that was dispatched or running stays assigned to its site; a
    /// site that does not come back within the heartbeat timeout has its
    /// work requeued like any lost site.
    pub fn restore(cfg: Config, records: &[Record], now: Millis) -> Core {
        let mut snaps: Vec<Snapshot> = Vec::new();
        let mut index: BTreeMap<WorkloadId, usize> = BTreeMap::new();
        for r in records {
            match r {
                Record::Submitted { id, spec, .. } => {
                    index.insert(*id, snaps.len());
                    snaps.push(Snapshot {
                        id: *id,
                        spec: spec.as_ref().clone(),
                        state: State::Pending,
                        attempt: 0,
                        failover: Failover::default(),
                    });
                }
                Record::Transition { id, state, .. } => {
                    if let Some(s) = index.get(id).and_then(|i| snaps.get_mut(*i)) {
                        if matches!(state, State::Dispatched { .. }) {
                            s.attempt += 1;
                        }
                        s.state = state.clone();
                    }
                }
                Record::Failover { id, failover, .. } => {
                    if let Some(s) = index.get(id).and_then(|i| snaps.get_mut(*i)) {
                        s.failover = failover.clone();
                    }
                }
            }
        }
        Core::restore_snapshots(cfg, snaps, now)
    }

    /// Rebuilds the core from each workload's last persisted state, in
    /// submission order (the runtime's store keeps these as rows).
    pub fn restore_snapshots(cfg: Config, snapshots: Vec<Snapshot>, now: Millis) -> Core {
        let mut core = Core::new(cfg);
        for snap in snapshots {
            core.seq += 1;
            let class = core.class_of(&snap.spec);
            let filter = core.filter_of(&snap.spec);
            core.preemptible_held += usize::from(snap.spec.preemptible);
            core.workloads.insert(
                snap.id,
                Workload {
                    spec: snap.spec,
                    seq: core.seq,
                    state: snap.state,
                    attempt: snap.attempt,
                    class,
                    filter,
                    why: Arc::default(),
                    deadline: None,
                    placed_why: Vec::new(),
                    stopping_for: None,
                    failover: snap.failover,
                },
            );
        }
        let ends: Vec<Millis> = core
            .workloads
            .values()
            .filter(|w| matches!(w.state, State::Pending))
            .flat_map(|w| w.failover.avoid.iter().map(|(_, t)| *t))
            .filter(|t| *t > now)
            .collect();
        core.avoid_ends.extend(ends);
        let mut dispatched = Vec::new();
        for (id, w) in &core.workloads {
            match &w.state {
                State::Pending => {
                    core.pending.insert(
                        (-i64::from(w.spec.priority), w.seq, *id),
                        &w.spec.team,
                        w.filter,
                    );
                }
                State::Dispatched { site, accelerators }
                | State::Running {
                    site, accelerators, ..
                } => {
                    let s = core.sites.entry(site.clone()).or_insert(Site {
                        spec: None,
                        geography: String::new(),
                        certifications: Vec::new(),
                        used: 0,
                        last_heartbeat: now,
                        alive: true,
                    });
                    s.used += accelerators;
                    if matches!(w.state, State::Dispatched { .. }) {
                        dispatched.push(*id);
                    }
                }
                State::Done(_) => {}
            }
        }
        for id in dispatched {
            core.set_deadline(id, now + core.cfg.dispatch_timeout_ms);
        }
        let held: Vec<WorkloadId> = core
            .workloads
            .iter()
            .filter(|(_, w)| matches!(w.state, State::Dispatched { .. } | State::Running { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            core.hold(id);
        }
        core.wake(now);
        core
    }

    fn set_deadline(&mut self, id: WorkloadId, at: Millis) {
        if let Some(w) = self.workloads.get_mut(&id) {
            if let Some(old) = w.deadline.replace(at) {
                self.dispatch_deadlines.remove(&(old, id));
            }
            self.dispatch_deadlines.insert((at, id));
        }
    }

    fn clear_deadline(&mut self, id: WorkloadId) {
        if let Some(t) = self.workloads.get_mut(&id).and_then(|w| w.deadline.take()) {
            self.dispatch_deadlines.remove(&(t, id));
        }
    }

    fn emit(&mut self, c: Command) {
        assert!(
            self.commands.len() < self.cfg.commands_max,
            "commands are not being drained"
        );
        self.commands.push_back(c);
    }

    /// A site registered, came back, was lost or removed: what cycles
    /// keep about the sites is dropped, and parked work is judged again
    /// at the next cycle.
    fn sites_changed(&mut self) {
        self.site_order = Arc::default();
        self.filter_sites.clear();
        for (_, set) in std::mem::take(&mut self.parked) {
            for key in set {
                if let Some(w) = self.workloads.get(&key.2) {
                    self.pending.insert(key, &w.spec.team, w.filter);
                }
            }
        }
    }

    /// Something changed: a cycle soon (now, or `cycle_min_gap_ms` after
    /// the last one), unless one is due sooner.
    fn wake(&mut self, now: Millis) {
        if self.pending.is_empty() {
            return;
        }
        let at = self
            .last_cycle_at
            .map_or(now, |t| (t + self.cfg.cycle_min_gap_ms).max(now));
        self.next_cycle = Some(self.next_cycle.map_or(at, |c| c.min(at)));
    }

    fn transition(&mut self, id: WorkloadId, state: State, now: Millis) {
        let mut was_on = None;
        if let Some(w) = self.workloads.get_mut(&id) {
            if let State::Dispatched { site, .. } | State::Running { site, .. } = &w.state {
                was_on = Some(site.clone());
            }
            let key = (-i64::from(w.spec.priority), w.seq, id);
            if matches!(w.state, State::Pending)
                && !self.pending.remove(&key, &w.spec.team, w.filter)
            {
                if let Some(set) = self.parked.get_mut(&w.class) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.parked.remove(&w.class);
                    }
                }
            }
            if matches!(state, State::Pending) {
                // Back in the queue: judged again at the next cycle.
                self.pending.insert(key, &w.spec.team, w.filter);
            } else {
                w.why = Arc::default();
            }
            if matches!(state, State::Pending | State::Done(_)) {
                w.placed_why = Vec::new();
                w.stopping_for = None;
            }
            w.state = state.clone();
        }
        if let Some(site) = was_on {
            self.held.remove(&site, id);
        }
        self.hold(id);
        self.emit(Command::Persist(Record::Transition { id, state, at: now }));
    }

    /// Indexes `id` as held by its site if it is dispatched or running,
    /// with its walltime on the site's accelerator as known now.
    fn hold(&mut self, id: WorkloadId) {
        let Some(w) = self.workloads.get(&id) else {
            return;
        };
        let (site, accelerators, since) = match &w.state {
            State::Dispatched { site, accelerators } => (site, *accelerators, None),
            State::Running {
                site,
                accelerators,
                since,
            } => (site, *accelerators, Some(*since)),
            _ => return,
        };
        let accelerator = self
            .sites
            .get(site)
            .and_then(|s| s.spec.as_ref())
            .map(|s| s.accelerator.as_str())
            .unwrap_or("");
        let run = Run {
            accelerators,
            since,
            walltime_ms: self.walltime_ms(w, accelerator),
        };
        let site = site.clone();
        self.held.add(&site, id, run);
    }

    /// Takes work back from a site: releases capacity, records usage of a
    /// run that had started (to `end`), and requeues or ends it.
    fn take_back(
        &mut self,
        id: WorkloadId,
        now: Millis,
        then: State,
        cancel_on_site: bool,
        end: RunEnd,
    ) {
        let Some(w) = self.workloads.get(&id) else {
            return;
        };
        let (site_name, accelerators, since) = match &w.state {
            State::Dispatched { site, accelerators } => (site.clone(), *accelerators, None),
            State::Running {
                site,
                accelerators,
                since,
            } => (site.clone(), *accelerators, Some(*since)),
            _ => return,
        };
        if let Some(site) = self.sites.get_mut(&site_name) {
            site.used = site.used.saturating_sub(accelerators);
        }
        let since = since.filter(|_| end != RunEnd::NeverRan);
        if let Some(from) = since {
            // The run's own end when the site recorded it; else the last
            // time a lost site was heard from; else now.
            let to = if let RunEnd::At(end) = end {
                end.clamp(from, now.max(from))
            } else if self.sites.get(&site_name).is_some_and(|s| !s.alive) {
                self.sites
                    .get(&site_name)
                    .map(|s| s.last_heartbeat.max(from))
                    .unwrap_or(now)
            } else {
                now
            };
            let (acc_hours, cost) = self
                .sites
                .get(&site_name)
                .map(|s| usage_cost(s, accelerators, from, to))
                .unwrap_or((0.0, Usd::ZERO));
            let attempt = self.workloads.get(&id).map(|w| w.attempt).unwrap_or(0);
            self.emit(Command::RecordUsage {
                id,
                site: site_name.clone(),
                attempt,
                accelerators,
                accelerator_hours: acc_hours,
                cost_usd: cost,
                from,
                to,
            });
        }
        if cancel_on_site {
            let attempt = self.workloads.get(&id).map(|w| w.attempt).unwrap_or(0);
            self.emit(Command::CancelOnSite {
                id,
                site: site_name,
                attempt,
            });
        }
        self.clear_deadline(id);
        self.transition(id, then, now);
        self.wake(now);
    }

    pub fn handle(&mut self, now: Millis, input: Input) -> Result<(), Rejected> {
        match input {
            Input::Commitments { live } => {
                self.commitments = live;
                self.wake(now);
                Ok(())
            }
            Input::Submit { id, spec } => {
                if self.workloads.contains_key(&id) {
                    return Err(Rejected::Duplicate(id));
                }
                if spec.accelerators.is_empty() || spec.nodes == 0 {
                    return Err(Rejected::Invalid(
                        "a workload needs accelerators and at least one node".into(),
                    ));
                }
                if self.workloads.len() >= self.cfg.workloads_max {
                    return Err(Rejected::Full);
                }
                self.seq += 1;
                let class = self.class_of(&spec);
                let filter = self.filter_of(&spec);
                self.pending.insert(
                    (-i64::from(spec.priority), self.seq, id),
                    &spec.team,
                    filter,
                );
                self.preemptible_held += usize::from(spec.preemptible);
                self.workloads.insert(
                    id,
                    Workload {
                        spec,
                        seq: self.seq,
                        state: State::Pending,
                        attempt: 0,
                        class,
                        filter,
                        why: Arc::default(),
                        deadline: None,
                        placed_why: Vec::new(),
                        stopping_for: None,
                        failover: Failover::default(),
                    },
                );
                self.emit(Command::Persist(Record::Transition {
                    id,
                    state: State::Pending,
                    at: now,
                }));
                self.wake(now);
                Ok(())
            }
            Input::Cancel { id } => {
                let state = self
                    .workloads
                    .get(&id)
                    .map(|w| w.state.clone())
                    .ok_or(Rejected::UnknownWorkload(id))?;
                match state {
                    State::Pending => self.transition(id, State::Done(Outcome::Cancelled), now),
                    State::Dispatched { .. } | State::Running { .. } => self.take_back(
                        id,
                        now,
                        State::Done(Outcome::Cancelled),
                        true,
                        RunEnd::Unknown,
                    ),
                    State::Done(_) => {}
                }
                Ok(())
            }
            Input::RegisterSite { spec, running } => {
                let name = spec.name.clone();
                let info = region_info(&spec.region.provider, &spec.region.region);
                let site = self.sites.entry(name.clone()).or_insert(Site {
                    spec: None,
                    geography: String::new(),
                    certifications: Vec::new(),
                    used: 0,
                    last_heartbeat: now,
                    alive: true,
                });
                site.geography = info.geography;
                site.certifications = info.compliance;
                site.spec = Some(spec);
                site.alive = true;
                site.last_heartbeat = now;
                self.sites_changed();
                // Walltimes of the work it holds, on its accelerator now.
                for id in self.held.on(&name) {
                    self.held.remove(&name, id);
                    self.hold(id);
                }
                // Reconcile: work the core saw start there but the site no
                // longer runs was lost (the site restarted); take it back.
                // An unacknowledged dispatch may still be on its way, so it
                // is left to the dispatch timeout, whose cancel the site
                // receives after the dispatch itself.
                let gone: Vec<WorkloadId> = self
                    .held
                    .on(&name)
                    .into_iter()
                    .filter(|id| {
                        !running.contains(id)
                            && self.workloads.get(id).is_some_and(
                                |w| matches!(&w.state, State::Running { site, .. } if *site == name),
                            )
                    })
                    .collect();
                for id in gone {
                    self.take_back(id, now, State::Pending, true, RunEnd::Unknown);
                }
                self.next_cycle = Some(self.next_cycle.map_or(now, |c| c.min(now)));
                Ok(())
            }
            Input::Heartbeat { site } => {
                let s = self
                    .sites
                    .get_mut(&site)
                    .ok_or(Rejected::UnknownSite(site))?;
                s.last_heartbeat = now;
                if !s.alive {
                    s.alive = true;
                    self.sites_changed();
                    self.wake(now);
                }
                Ok(())
            }
            Input::DispatchAcked { id, site, attempt } => {
                match self.workloads.get(&id).map(|w| (&w.state, w.attempt)) {
                    Some((State::Dispatched { site: s, .. }, a)) if *s == site && a == attempt => {
                        self.clear_deadline(id);
                        Ok(())
                    }
                    Some(_) => Err(Rejected::Stale(format!("ack for {id:?} from {site}"))),
                    None => Err(Rejected::UnknownWorkload(id)),
                }
            }
            Input::Started { id, site, attempt } => match self
                .workloads
                .get(&id)
                .map(|w| (w.state.clone(), w.attempt))
            {
                Some((
                    State::Dispatched {
                        site: s,
                        accelerators,
                    },
                    a,
                )) if s == site && a == attempt => {
                    self.clear_deadline(id);
                    self.transition(
                        id,
                        State::Running {
                            site,
                            accelerators,
                            since: now,
                        },
                        now,
                    );
                    Ok(())
                }
                Some(_) => Err(Rejected::Stale(format!("start of {id:?} on {site}"))),
                None => Err(Rejected::UnknownWorkload(id)),
            },
            Input::Finished {
                id,
                site,
                attempt,
                success,
                ended_at,
            } => match self
                .workloads
                .get(&id)
                .map(|w| (w.state.clone(), w.attempt))
            {
                Some((State::Running { site: s, .. }, a)) if s == site && a == attempt => {
                    let outcome = if success {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    };
                    self.take_back(
                        id,
                        now,
                        State::Done(outcome),
                        false,
                        ended_at.map_or(RunEnd::Unknown, RunEnd::At),
                    );
                    Ok(())
                }
                Some(_) => Err(Rejected::Stale(format!("finish of {id:?} on {site}"))),
                None => Err(Rejected::UnknownWorkload(id)),
            },
            Input::Preempted { id, site, attempt } => {
                self.take_back_from(now, id, &site, attempt, RunEnd::Unknown)?;
                self.failed_by(id, &site, now);
                Ok(())
            }
            Input::Stopped { id, site, attempt } => {
                // Whether or not this core asked (a restart forgets that
                // it was preempting it), the run is gone: requeue it.
                match self.workloads.get(&id).map(|w| (&w.state, w.attempt)) {
                    Some((
                        State::Running { site: s, .. } | State::Dispatched { site: s, .. },
                        a,
                    )) if *s == site && a == attempt => {
                        self.take_back(id, now, State::Pending, false, RunEnd::Unknown);
                        Ok(())
                    }
                    Some(_) => Err(Rejected::Stale(format!("stop of {id:?} on {site}"))),
                    None => Err(Rejected::UnknownWorkload(id)),
                }
            }
            // Nothing of it ran: requeued, not billed.
            Input::NeverStarted { id, site, attempt } => {
                self.take_back_from(now, id, &site, attempt, RunEnd::NeverRan)
            }
            Input::TakeOut { site } => {
                let s = self
                    .sites
                    .get_mut(&site)
                    .ok_or_else(|| Rejected::UnknownSite(site.clone()))?;
                s.alive = false;
                self.sites_changed();
                let on_site: Vec<WorkloadId> = self
                    .on_site(&site)
                    .into_iter()
                    .map(|(id, _, _)| id)
                    .collect();
                for id in on_site {
                    self.take_back(id, now, State::Pending, true, RunEnd::Unknown);
                }
                Ok(())
            }
            Input::RemoveSite { site } => {
                if !self.sites.contains_key(&site) {
                    return Err(Rejected::UnknownSite(site));
                }
                let on_site: Vec<WorkloadId> = self
                    .on_site(&site)
                    .into_iter()
                    .map(|(id, _, _)| id)
                    .collect();
                for id in on_site {
                    self.take_back(id, now, State::Pending, true, RunEnd::Unknown);
                }
                self.sites.remove(&site);
                self.sites_changed();
                Ok(())
            }
        }
    }

    /// A site gives back a dispatch or run of this attempt; stale reports
    /// change nothing.
    fn take_back_from(
        &mut self,
        now: Millis,
        id: WorkloadId,
        site: &str,
        attempt: u32,
        end: RunEnd,
    ) -> Result<(), Rejected> {
        match self.workloads.get(&id).map(|w| (&w.state, w.attempt)) {
            Some((State::Running { site: s, .. }, a))
            | Some((State::Dispatched { site: s, .. }, a))
                if s == site && a == attempt =>
            {
                self.take_back(id, now, State::Pending, false, end);
                Ok(())
            }
            Some(_) => Err(Rejected::Stale(format!("return of {id:?} from {site}"))),
            None => Err(Rejected::UnknownWorkload(id)),
        }
    }

    /// Fires whatever is due at `now`: lost sites, unacknowledged
    /// dispatches, the scheduling cycle.
    pub fn handle_timeout(&mut self, now: Millis) {
        let lost: Vec<String> = self
            .sites
            .iter()
            .filter(|(_, s)| s.alive && s.last_heartbeat + self.cfg.heartbeat_timeout_ms <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in lost {
            if let Some(s) = self.sites.get_mut(&name) {
                s.alive = false;
                self.sites_changed();
            }
            let on_site: Vec<WorkloadId> = self.held.on(&name);
            for id in on_site {
                self.take_back(id, now, State::Pending, true, RunEnd::Unknown);
                self.failed_by(id, &name, now);
            }
        }
        let due: Vec<WorkloadId> = self
            .dispatch_deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            let site = match self.workloads.get(&id).map(|w| &w.state) {
                Some(State::Dispatched { site, .. } | State::Running { site, .. }) => {
                    Some(site.clone())
                }
                _ => None,
            };
            self.take_back(id, now, State::Pending, true, RunEnd::Unknown);
            if let Some(site) = site {
                self.failed_by(id, &site, now);
            }
        }
        // A place a workload avoided after a failure is open again: look
        // at the queue again.
        let reopened = self.avoid_ends.range(..=now).count();
        if reopened > 0 {
            self.avoid_ends = self.avoid_ends.split_off(&(now + 1));
            self.wake(now);
        }
        if self.next_cycle.is_some_and(|t| t <= now) {
            self.next_cycle = None;
            self.schedule(now);
        }
    }

    /// The next time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let hb = self
            .sites
            .values()
            .filter(|s| s.alive)
            .map(|s| s.last_heartbeat + self.cfg.heartbeat_timeout_ms)
            .min();
        let dd = self.dispatch_deadlines.iter().next().map(|(t, _)| *t);
        let av = self.avoid_ends.iter().next().copied();
        [self.next_cycle, hb, dd, av].into_iter().flatten().min()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Hours on `accelerator` per hour of the workload's first
    /// alternative (its relative speed, as walltimes are scaled): the
    /// simulator runs work at this speed.
    pub fn speed_scale(&self, id: WorkloadId, accelerator: &str) -> Option<f64> {
        self.scale_of(self.workloads.get(&id)?, accelerator)
    }

    fn scale_of(&self, w: &Workload, accelerator: &str) -> Option<f64> {
        let alt = w
            .spec
            .accelerators
            .iter()
            .position(|a| a.name.eq_ignore_ascii_case(accelerator))?;
        self.class_hours
            .get(w.filter as usize)
            .and_then(|h| h.get(alt).copied().flatten())
    }

    /// The run's walltime on `accelerator`: `max_runtime_ms`, else
    /// `hours` scaled by that alternative's relative speed.
    fn walltime_ms(&self, w: &Workload, accelerator: &str) -> Option<Millis> {
        match w.spec.max_runtime_ms {
            Some(m) => Some(m),
            None => walltime_at(&w.spec, self.scale_of(w, accelerator)?),
        }
    }

    /// When the work now on `site` ends, by its walltime: (end,
    /// accelerators), with `None` for a run without one (it may never
    /// end).
    fn site_ends(&self, site: &str, now: Millis) -> SiteEnds {
        self.held
            .by_site
            .get(site)
            .map(|h| h.ends(now))
            .unwrap_or_default()
    }

    /// The reservation a gang needing `need` accelerators would hold on
    /// `site`: when enough of it frees up by the walltimes of what runs
    /// there (EASY backfill's shadow time; `None` if that depends on a run
    /// without a walltime), and how many accelerators will be spare then.
    fn reservation(
        &self,
        s: &Site,
        used: u32,
        need: u32,
        now: Millis,
        ends: &[(Option<Millis>, u32)],
    ) -> Option<Reservation> {
        let cap = s.spec.as_ref()?.accelerators;
        let mut ends = ends.to_vec();
        ends.sort_by_key(|(t, _)| t.unwrap_or(Millis::MAX));
        let mut free = cap.saturating_sub(used);
        let mut shadow = Some(now);
        let mut it = ends.iter().peekable();
        while free < need {
            match it.next() {
                Some((Some(t), acc)) => {
                    free += acc;
                    shadow = Some(*t);
                }
                _ => {
                    shadow = None;
                    break;
                }
            }
        }
        // Runs ending at that same moment free their share then too.
        if let Some(t) = shadow {
            while let Some((Some(t2), acc)) = it.peek() {
                if *t2 != t {
                    break;
                }
                free += acc;
                it.next();
            }
        }
        let spare = match shadow {
            Some(_) => free.saturating_sub(need),
            // Unknown: nothing spare is promised.
            None => 0,
        };
        Some(Reservation { shadow, spare })
    }

    /// The sites (by index) that pass every check of `w`'s class but
    /// capacity, with what it needs there, and how many sites each other
    /// check turned down.
    fn class_sites(&self, w: &Workload, sites: &[Option<&Site>]) -> ClassSites {
        let hours = self
            .class_hours
            .get(w.filter as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut out = ClassSites::default();
        for (si, site) in sites.iter().enumerate() {
            let Some(site) = site else {
                continue;
            };
            match site_verdict(&w.spec, hours, site, false) {
                Ok((need, price, h)) => {
                    let spec = site.spec.as_ref();
                    out.ok.push(ClassSite {
                        site: si,
                        need,
                        capacity: spec.map_or(0, |s| s.accelerators),
                        price,
                        hours: h,
                    });
                }
                Err(r) => *out.why.entry(r).or_insert(0) += 1,
            }
        }
        out
    }

    /// Billed dollars per provider that commitments charge anyway, less
    /// what the runs in flight will still spend there (each to its
    /// walltime; a run without one is counted for [`HOURS_UNKNOWN`]), with
    /// each provider's 1 − discount. Providers in `providers` order.
    fn commitment_room(&mut self, providers: &[String], now: Millis) -> (Vec<f64>, Vec<f64>) {
        let mut free = vec![0.0; providers.len()];
        let mut factor = vec![1.0; providers.len()];
        let index = |p: &str| providers.iter().position(|x| x == p);
        for c in &self.commitments {
            if let Some(p) = index(&c.provider) {
                free[p] += c.free_usd.as_f64();
                factor[p] = (100.0 - c.discount_pct.clamp(0.0, 100.0)) / 100.0;
            }
        }
        if self.commitments.is_empty() {
            return (free, factor);
        }
        // List dollars still to come per provider, site by site from the
        // held sums (not a pass over the workloads).
        let mut to_come = vec![0.0; providers.len()];
        for (name, held) in &mut self.held.by_site {
            let Some(spec) = self.sites.get(name).and_then(|s| s.spec.as_ref()) else {
                continue;
            };
            if spec.prepaid {
                continue;
            }
            let Some(p) = index(&spec.region.provider) else {
                continue;
            };
            let (acc_hours, unknown_acc) = held.remaining(now);
            let acc_hours = acc_hours + unknown_acc as f64 * HOURS_UNKNOWN;
            to_come[p] += spec.price_usd_per_accelerator_hour.as_f64() * acc_hours;
        }
        for p in 0..providers.len() {
            free[p] = (free[p] - factor[p] * to_come[p]).max(0.0);
        }
        (free, factor)
    }

    /// One scheduling cycle, in two steps.
    ///
    /// 1. **Who starts** (the queue policy): pending work in priority order
    ///    (FIFO within a priority), each gang whole on a site that takes it
    ///    now, at the lowest marginal cost given the commitments. A gang
    ///    that fits on a site only once running work ends holds a
    ///    reservation there (the site where it can start soonest); work
    ///    behind it may use that site only if, by its walltime, it ends
    ///    before the gang can start, or fits in what the gang leaves spare
    ///    (EASY backfill), so small jobs never starve a big gang.
    /// 2. **Where** ([`crate::assign`]): the admitted workloads, and those
    ///    that waited only for capacity, are placed together by the global
    ///    assignment over the sites' free capacity and the commitments'
    ///    live state; the step-1 placement is its starting point and
    ///    fallback, so the cycle never does worse than the greedy order.
    fn schedule(&mut self, now: Millis) {
        self.last_cycle_at = Some(now);
        // Accelerators each team holds now (dispatched or running), for
        // fair shares and quotas: from the held work, needed only when
        // teams are configured or more than one team waits.
        let one_team = self.pending.one_team();
        let mut team_used: BTreeMap<String, u32> = BTreeMap::new();
        if !self.cfg.teams.is_empty() || !one_team {
            for h in self.held.by_site.values() {
                for (id, run) in &h.runs {
                    if let Some(w) = self.workloads.get(id) {
                        *team_used.entry(w.spec.team.clone()).or_insert(0) += run.accelerators;
                    }
                }
            }
        }
        // Priority, then teams in turn by fair share, FIFO within a team.
        // With one team that is the queue's own order, walked lazily below
        // (the cycle may stop early); else the whole queue is ordered.
        let fair: Vec<WorkloadId> = if one_team {
            Vec::new()
        } else {
            let queued: Vec<crate::policy::Queued<'_>> = self
                .pending
                .keys
                .iter()
                .take(self.cfg.workloads_max)
                .filter_map(|(_, _, id)| {
                    self.workloads.get(id).map(|w| crate::policy::Queued {
                        id: *id,
                        priority: w.spec.priority,
                        team: w.spec.team.as_str(),
                        need: w
                            .spec
                            .accelerators
                            .iter()
                            .map(|a| a.count)
                            .min()
                            .unwrap_or(0)
                            .saturating_mul(w.spec.nodes),
                    })
                })
                .collect();
            crate::policy::fair_order(&queued, &team_used, &self.cfg.teams)
        };
        // The cycle's market: sites in name order, providers by name.
        if self.site_order.providers.is_empty() || self.site_order.names.len() != self.sites.len() {
            self.site_order = Arc::new(SiteOrder::of(&self.sites));
        }
        let site_order = self.site_order.clone();
        let (site_names, providers, site_provider) = (
            &site_order.names,
            &site_order.providers,
            &site_order.site_provider,
        );
        let prepaid = providers.len() - 1;
        let site_free: Vec<u32> = self
            .sites
            .values()
            .map(|s| match (&s.spec, s.alive) {
                (Some(x), true) => x.accelerators.saturating_sub(s.used),
                _ => 0,
            })
            .collect();
        let (mut free_usd, mut factor) = self.commitment_room(&providers[..prepaid], now);
        free_usd.push(0.0);
        factor.push(0.0);
        // List spend this cycle has put on each provider so far (step 1).
        let mut spent = vec![0.0; providers.len()];
        let marginal = |p: usize, spent: &[f64], list: f64| -> f64 {
            let before = (factor[p] * spent[p]).max(free_usd[p]);
            let after = (factor[p] * (spent[p] + list)).max(free_usd[p]);
            after - before
        };

        // Step 1.
        // Capacity only shrinks during a cycle, and reservations only
        // restrict, so a class that fits nowhere stays that way until the
        // next one.
        let mut hopeless: BTreeMap<u32, Why> = BTreeMap::new();
        // Hopeless for good (until the sites change): parked after step 1.
        let mut to_park: Vec<(u32, WorkloadId)> = Vec::new();
        // Per filter, the sites that pass every check but capacity, judged
        // once per cycle (the checks are the class's, not the workload's).
        // (Taken for the walk and put back after it: no copy per cycle.)
        let mut by_class: BTreeMap<u32, Arc<ClassSites>> = std::mem::take(&mut self.filter_sites);
        let site_refs: Vec<Option<&Site>> = self.sites.values().map(Some).collect();
        // Accelerators in use per site, step 1's admissions included.
        let mut used: Vec<u32> = site_refs.iter().map(|s| s.map_or(0, |s| s.used)).collect();
        // Per site index: the reservation held there for a waiting gang.
        let mut reserved: Vec<Option<Reservation>> = site_refs.iter().map(|_| None).collect();
        // When each site's runs end (computed once, at the first gang that
        // must wait). Step 1's own placements are not in it: their
        // capacity counts as held until the next cycle, which only ever
        // makes a reservation later, never lets work jump ahead of a gang.
        let mut ends_by_site: Vec<Option<SiteEnds>> = site_refs.iter().map(|_| None).collect();
        // (workload, site index, accelerators, walltime) in queue order.
        let mut admitted: Vec<(WorkloadId, usize, u32, Option<Millis>)> = Vec::new();
        // Waited only for capacity: the global step may find them room.
        let mut waiting: Vec<WorkloadId> = Vec::new();
        // Why each workload left pending is pending, set after the loop.
        let mut whys: Vec<(WorkloadId, Why)> = Vec::new();
        // Filters every one of whose sites is full and held for a waiting
        // gang: no later workload of one can start, or hold a site, this
        // cycle (capacity only shrinks and reservations only grow within
        // it), and each gets the same reasons.
        let mut saturated: BTreeMap<u32, Why> = BTreeMap::new();
        // Per filter, the shortest work (hours; no fixed walltime, no team
        // quota, not avoiding sites) that could not start and held no
        // site, with its reasons. Work of the filter at least as long
        // cannot start either: a site full for one is full for all, one
        // held for a gang is held for any run that ends no sooner, and
        // every site it could hold is held already (capacity only shrinks
        // and holds only grow within a cycle). Judged with the same
        // reasons, without a pass over the sites.
        let mut longer_blocked: BTreeMap<u32, (f64, Why)> = BTreeMap::new();
        // With one team, the filters' own queues merged in scheduling
        // order, so that a filter done with can be dropped unread.
        let mut heads: BinaryHeap<Reverse<(crate::queue::Key, usize)>> = BinaryHeap::new();
        let mut filter_queues: Vec<(
            u32,
            std::collections::btree_set::Iter<'_, crate::queue::Key>,
        )> = Vec::new();
        if one_team {
            for (f, mut queue) in self.pending.by_filter() {
                if let Some(k) = queue.next() {
                    heads.push(Reverse((*k, filter_queues.len())));
                    filter_queues.push((f, queue));
                }
            }
        }
        let mut eager = fair.into_iter();
        let mut scanned = 0u64;
        // Per filter, workloads judged this cycle that did not start.
        let mut blocked: BTreeMap<u32, usize> = BTreeMap::new();
        // The filter judged last and the admissions before it.
        let mut last: Option<(u32, usize)> = None;
        // A filter is done with for this cycle once FILTER_DEPTH_MAX of its
        // workloads could not start, or once it is saturated (full and held
        // everywhere it may go: capacity only shrinks and reservations only
        // grow within a cycle) and the global step has its fill of waiting
        // work. Its later workloads keep the reasons they were last given
        // (`why_pending` gives work never judged its filter's). A cycle
        // then costs the filters and the sites, not the queue's length.
        let done = |f: u32,
                    blocked: &BTreeMap<u32, usize>,
                    saturated: &BTreeMap<u32, Why>,
                    waiting: usize| {
            blocked.get(&f).is_some_and(|n| *n >= FILTER_DEPTH_MAX)
                || (waiting >= WAITING_PER_CYCLE_MAX && saturated.contains_key(&f))
        };
        loop {
            if let Some((f, n)) = last.take() {
                if admitted.len() == n {
                    *blocked.entry(f).or_insert(0) += 1;
                }
            }
            if admitted.len() >= ADMITTED_PER_CYCLE_MAX {
                break;
            }
            let id = if one_team {
                let Some(Reverse((key, q))) = heads.pop() else {
                    break;
                };
                let (f, queue) = &mut filter_queues[q];
                if done(*f, &blocked, &saturated, waiting.len()) {
                    continue;
                }
                if let Some(k) = queue.next() {
                    heads.push(Reverse((*k, q)));
                }
                key.2
            } else {
                let Some(id) = eager.next() else {
                    break;
                };
                id
            };
            let Some(w) = self.workloads.get(&id) else {
                continue;
            };
            if !one_team && done(w.filter, &blocked, &saturated, waiting.len()) {
                continue;
            }
            scanned += 1;
            last = Some((w.filter, admitted.len()));
            // A workload avoiding sites after failures is judged alone
            // (its class peers may go where it may not).
            let avoiding = w.avoiding(now);
            if let Some(why) = hopeless.get(&w.class).filter(|_| !avoiding) {
                let why = why.clone();
                if parkable(&why) {
                    to_park.push((w.class, id));
                    // Set aside: it leaves the queue, so it blocks nothing.
                    last = None;
                }
                if waiting.len() < WAITING_PER_CYCLE_MAX && why.contains_key(REASON_SITE_FULL) {
                    waiting.push(id);
                }
                whys.push((id, why));
                continue;
            }
            if let Some(why) = saturated.get(&w.filter).filter(|_| !avoiding) {
                if waiting.len() < WAITING_PER_CYCLE_MAX {
                    waiting.push(id);
                }
                whys.push((id, why.clone()));
                continue;
            }
            let quota = self
                .cfg
                .teams
                .get(&w.spec.team)
                .and_then(|t| t.max_accelerators);
            // Judged like a shorter workload of its filter that could not
            // start: see `longer_blocked`.
            let by_length = !avoiding && quota.is_none() && w.spec.max_runtime_ms.is_none();
            if let Some((_, why)) = longer_blocked
                .get(&w.filter)
                .filter(|(h, _)| by_length && w.spec.hours.unwrap_or(f64::INFINITY) >= *h)
            {
                if waiting.len() < WAITING_PER_CYCLE_MAX && why.contains_key(REASON_SITE_FULL) {
                    waiting.push(id);
                }
                whys.push((id, why.clone()));
                continue;
            }
            let sites = by_class
                .entry(w.filter)
                .or_insert_with(|| Arc::new(self.class_sites(w, &site_refs)))
                .clone();
            let held = team_used.get(&w.spec.team).copied().unwrap_or(0);
            // Rejections beyond the class's: (blocked, full, reserved, quota).
            let mut n = [0u32; 4];
            // (marginal cost, list cost, site index, need, walltime)
            let mut best: Option<(f64, f64, usize, u32, Option<Millis>)> = None;
            // Sites that would take it once capacity frees: (cost, site, need).
            let mut full: Vec<(f64, usize, u32)> = Vec::new();
            for c in &sites.ok {
                let si = c.site;
                let walltime = walltime_at(&w.spec, c.hours);
                if avoiding
                    && site_refs[si]
                        .and_then(|s| s.spec.as_ref())
                        .is_some_and(|s| w.avoids(s, now))
                {
                    n[0] += 1;
                    continue;
                }
                if used[si].saturating_add(c.need) > c.capacity {
                    full.push((list_usd(c.price, c.need, c.hours), si, c.need));
                    n[1] += 1;
                    continue;
                }
                if let Some(r) = &reserved[si] {
                    let ends_before =
                        matches!((r.shadow, walltime), (Some(sh), Some(t)) if now + t <= sh);
                    if !ends_before && c.need > r.spare {
                        n[2] += 1;
                        continue;
                    }
                }
                if quota.is_some_and(|max| held.saturating_add(c.need) > max) {
                    n[3] += 1;
                    continue;
                }
                let list = list_usd(c.price, c.need, work_hours(walltime, c.hours));
                let cost = marginal(site_provider[si], &spent, list);
                if best
                    .as_ref()
                    .is_none_or(|(bc, bl, bi, _, _)| (cost, list, si) < (*bc, *bl, *bi))
                {
                    best = Some((cost, list, si, c.need, walltime));
                }
            }
            match best {
                Some((_, list, si, need, walltime_ms)) => {
                    if let Some(r) = &mut reserved[si] {
                        let ends_before =
                            matches!((r.shadow, walltime_ms), (Some(sh), Some(t)) if now + t <= sh);
                        if !ends_before {
                            r.spare -= need;
                        }
                    }
                    used[si] += need;
                    spent[site_provider[si]] += list;
                    *team_used.entry(w.spec.team.clone()).or_insert(0) += need;
                    admitted.push((id, si, need, walltime_ms));
                }
                None => {
                    // Hold the site where it can start soonest (known
                    // times first, then cost, then name).
                    let pick = full
                        .iter()
                        .filter(|(_, si, _)| reserved[*si].is_none())
                        .filter_map(|(cost, si, need)| {
                            let e = ends_by_site[*si]
                                .get_or_insert_with(|| self.site_ends(&site_names[*si], now));
                            self.reservation(site_refs[*si]?, used[*si], *need, now, e)
                                .map(|r| {
                                    ((r.shadow.unwrap_or(Millis::MAX), cost.to_bits(), *si), r)
                                })
                        })
                        .min_by(|a, b| a.0.cmp(&b.0));
                    let picked = pick.is_some();
                    if let Some(((_, _, si), r)) = pick {
                        reserved[si] = Some(r);
                    }
                    let mut why = sites.why.clone();
                    for (k, reason) in [
                        REASON_FAILOVER_BLOCKED,
                        REASON_SITE_FULL,
                        REASON_RESERVED,
                        REASON_TEAM_QUOTA,
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        if n[k] > 0 {
                            *why.entry(reason).or_insert(0) += n[k];
                        }
                    }
                    if why.contains_key(REASON_SITE_FULL) && waiting.len() < WAITING_PER_CYCLE_MAX {
                        waiting.push(id);
                    }
                    let why = Arc::new(why);
                    if !avoiding {
                        if parkable(&why) {
                            to_park.push((w.class, id));
                            // Set aside: it leaves the queue, so it blocks nothing.
                            last = None;
                        }
                        hopeless.insert(w.class, why.clone());
                        if by_length && !picked && !parkable(&why) {
                            let hours = w.spec.hours.unwrap_or(f64::INFINITY);
                            match longer_blocked.get_mut(&w.filter) {
                                Some(e) if e.0 <= hours => {}
                                Some(e) => *e = (hours, why.clone()),
                                None => {
                                    longer_blocked.insert(w.filter, (hours, why.clone()));
                                }
                            }
                        }
                        if !sites.ok.is_empty()
                            && n[1] as usize == sites.ok.len()
                            && sites.ok.iter().all(|c| reserved[c.site].is_some())
                        {
                            saturated.insert(w.filter, why.clone());
                        }
                    }
                    whys.push((id, why));
                }
            }
        }
        drop(site_refs);
        self.ordered_total += scanned;
        for (f, n) in &blocked {
            if *n >= FILTER_DEPTH_MAX && !saturated.contains_key(f) {
                saturated.insert(*f, self.depth_why.clone());
            }
        }
        self.saturated = saturated;
        self.filter_sites = by_class;
        for (id, why) in whys {
            if let Some(w) = self.workloads.get_mut(&id) {
                w.why = why;
            }
        }
        for (class, id) in to_park {
            if let Some(w) = self.workloads.get(&id) {
                let key = (-i64::from(w.spec.priority), w.seq, id);
                if self.pending.remove(&key, &w.spec.team, w.filter) {
                    self.parked.entry(class).or_default().insert(key);
                }
            }
        }
        let admitted_full = admitted.len() >= ADMITTED_PER_CYCLE_MAX;
        let reserved: BTreeMap<&str, Reservation> = reserved
            .into_iter()
            .enumerate()
            .filter_map(|(si, r)| Some((site_names[si].as_str(), r?)))
            .collect();

        // Step 2.
        let mut items: Vec<assign::Item> = Vec::new();
        let mut start: Vec<Option<usize>> = Vec::new();
        let mut ids: Vec<WorkloadId> = Vec::new();
        let candidates = admitted
            .iter()
            .map(|(id, si, _, _)| (*id, Some(*si)))
            .chain(waiting.iter().map(|id| (*id, None)));
        let greedy_need: BTreeMap<WorkloadId, u32> = admitted
            .iter()
            .map(|(id, _, need, _)| (*id, *need))
            .collect();
        for (id, greedy_site) in candidates {
            let Some(w) = self.workloads.get(&id) else {
                continue;
            };
            // A team with a quota keeps step 1's totals: its admitted work
            // may move only to sites where it takes no more, and its
            // waiting work is not offered.
            let quota = self
                .cfg
                .teams
                .get(&w.spec.team)
                .is_some_and(|t| t.max_accelerators.is_some());
            if quota && greedy_site.is_none() {
                continue;
            }
            let Some(sites) = self.filter_sites.get(&w.filter) else {
                continue;
            };
            let avoiding = w.avoiding(now);
            let mut offers = Vec::new();
            let mut first = None;
            for c in &sites.ok {
                let (si, need, walltime) = (c.site, c.need, walltime_at(&w.spec, c.hours));
                let name = &site_names[si];
                if avoiding
                    && self
                        .sites
                        .get(name)
                        .and_then(|s| s.spec.as_ref())
                        .is_some_and(|s| w.avoids(s, now))
                {
                    continue;
                }
                if need > site_free[si] {
                    continue;
                }
                if quota && greedy_need.get(&id).is_some_and(|g| need > *g) {
                    continue;
                }
                if greedy_site != Some(si) {
                    // A site held for a waiting gang takes only work that
                    // ends before the gang can start (or what step 1 put
                    // in its spare room).
                    if let Some(r) = reserved.get(name.as_str()) {
                        let ends_before =
                            matches!((r.shadow, walltime), (Some(sh), Some(t)) if now + t <= sh);
                        if !ends_before {
                            continue;
                        }
                    }
                }
                if greedy_site == Some(si) {
                    first = Some(offers.len());
                }
                offers.push(assign::Offer {
                    site: si,
                    need,
                    list_usd: list_usd(c.price, need, work_hours(walltime, c.hours)),
                });
            }
            if offers.is_empty() || (greedy_site.is_some() && first.is_none()) {
                continue;
            }
            items.push(assign::Item {
                must: greedy_site.is_some(),
                offers,
            });
            start.push(first);
            ids.push(id);
        }
        if items.is_empty() {
            self.preempt(site_names, now);
            return;
        }
        let market = assign::Market {
            site_provider: site_provider.clone(),
            site_free,
            free_usd,
            factor,
        };
        let plan = assign::assign(&items, &market, &start, self.cfg.exact_options_max);
        self.last_cycle = Some(CycleReport {
            at: now,
            considered: items.len(),
            placed: plan.choice.iter().filter(|c| c.is_some()).count(),
            cost_usd: plan.cost_usd,
            bound_usd: plan.bound_usd,
            method: plan.method,
            proven_optimal: plan.proven_optimal,
        });
        let pr_spend = {
            let mut s = vec![0.0; providers.len()];
            for (it, c) in items.iter().zip(&plan.choice) {
                if let Some(o) = c.and_then(|o| it.offers.get(o)) {
                    s[site_provider[o.site]] += o.list_usd;
                }
            }
            s
        };
        let mut placed_any = false;
        for ((id, it), c) in ids.iter().zip(&items).zip(&plan.choice) {
            let Some(o) = c.and_then(|o| it.offers.get(o)) else {
                continue;
            };
            let site = site_names[o.site].clone();
            let mut why = if self.cfg.explain {
                self.why_here(
                    it,
                    o,
                    site_names,
                    providers,
                    site_provider,
                    &pr_spend,
                    &market.free_usd,
                    &market.factor,
                )
            } else {
                Vec::new()
            };
            // The speeds this placement used, kept with it (a class's
            // speeds change as its runs report).
            if let Some(w) = self.workloads.get(id) {
                if self.cfg.explain && !w.spec.throughput.is_empty() {
                    why.push(skyward_placement::reasons::why::speeds_used(
                        &w.spec.throughput,
                    ));
                }
            }
            let walltime_ms = self
                .sites
                .get(&site)
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| {
                    self.workloads
                        .get(id)
                        .and_then(|w| self.walltime_ms(w, &s.accelerator))
                });
            if let Some(s) = self.sites.get_mut(&site) {
                s.used += o.need;
                let cap = s.spec.as_ref().map(|x| x.accelerators).unwrap_or(0);
                assert!(
                    s.used <= cap,
                    "site {site} over capacity: {} > {cap}",
                    s.used
                );
            }
            let attempt = match self.workloads.get_mut(id) {
                Some(w) => {
                    w.attempt += 1;
                    w.placed_why = why;
                    w.attempt
                }
                None => 0,
            };
            self.transition(
                *id,
                State::Dispatched {
                    site: site.clone(),
                    accelerators: o.need,
                },
                now,
            );
            self.set_deadline(*id, now + self.cfg.dispatch_timeout_ms);
            self.emit(Command::Dispatch {
                id: *id,
                site,
                accelerators: o.need,
                attempt,
                walltime_ms,
            });
            placed_any = true;
        }
        self.preempt(site_names, now);
        // Nothing new can fit until something changes (an input wakes us);
        // after a placement, look again next cycle; a cycle that stopped
        // at its batch limit goes on at once.
        if placed_any && !self.pending.is_empty() {
            let next = if admitted_full {
                now + self.cfg.cycle_min_gap_ms
            } else {
                now + self.cfg.cycle_ms
            };
            self.next_cycle = Some(self.next_cycle.map_or(next, |c| c.min(next)));
        }
    }

    /// Why a workload went to `chosen`, in `skyward explain`'s words: the
    /// commitment that made it free or cheaper, and the runner-up at its
    /// fleet cost (what moving it there would change the bill by).
    #[allow(clippy::too_many_arguments)]
    fn why_here(
        &self,
        item: &assign::Item,
        chosen: &assign::Offer,
        site_names: &[String],
        providers: &[String],
        site_provider: &[usize],
        spend: &[f64],
        free_usd: &[f64],
        factor: &[f64],
    ) -> Vec<String> {
        use skyward_placement::reasons::why;
        let cost = |p: usize, s: f64| (factor[p] * s).max(free_usd[p]);
        let p0 = site_provider[chosen.site];
        // The fleet cost of this workload at an offer, the rest held.
        let without = spend[p0] - chosen.list_usd;
        let fleet_cost = |o: &assign::Offer| -> f64 {
            let p = site_provider[o.site];
            let base = if p == p0 { without } else { spend[p] };
            cost(p, base + o.list_usd) - cost(p, base)
        };
        let usd = |x: f64| Usd::from_f64_rounded(x).unwrap_or(Usd::ZERO);
        let mut out = Vec::new();
        let chosen_fc = fleet_cost(chosen);
        if providers.get(p0).is_some_and(|p| p == PREPAID) {
            out.push(why::prepaid(&site_names[chosen.site], usd(chosen_fc)));
        }
        if let Some(c) = self
            .commitments
            .iter()
            .find(|c| providers.get(p0).is_some_and(|p| *p == c.provider))
        {
            if chosen_fc < chosen.list_usd - 5e-7 {
                if usd(chosen_fc) == Usd::ZERO {
                    out.push(why::inside_commitment(
                        usd(chosen.list_usd),
                        &c.name,
                        c.free_usd,
                    ));
                } else {
                    out.push(why::discounted(
                        &c.name,
                        c.discount_pct,
                        c.free_usd,
                        usd(chosen_fc),
                        usd(chosen.list_usd),
                    ));
                }
            }
        }
        let label = |o: &assign::Offer| {
            let name = &site_names[o.site];
            match self.sites.get(name).and_then(|s| s.spec.as_ref()) {
                Some(s) => format!(
                    "site {name} ({}:{} {}{})",
                    s.region.provider,
                    s.region.region,
                    s.accelerator,
                    if s.spot { " spot" } else { "" }
                ),
                None => format!("site {name}"),
            }
        };
        let others: Vec<(f64, &assign::Offer)> = item
            .offers
            .iter()
            .filter(|o| o.site != chosen.site)
            .map(|o| (fleet_cost(o), o))
            .collect();
        if let Some((fc, o)) = others
            .iter()
            .filter(|(_, o)| o.list_usd < chosen.list_usd)
            .min_by(|a, b| a.1.list_usd.total_cmp(&b.1.list_usd))
        {
            if *fc >= chosen_fc {
                out.push(why::cheaper_but_costs_more(
                    &label(o),
                    usd(o.list_usd),
                    usd(*fc),
                    usd(chosen_fc),
                ));
            }
        }
        match others.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
            Some((fc, o)) => out.push(why::runner_up(
                &label(o),
                usd(*fc),
                usd(*fc) - usd(chosen_fc),
            )),
            None => out.push(why::NO_OTHER.into()),
        }
        if out.len() == 1 {
            out.insert(0, why::CHEAPEST.into());
        }
        out
    }

    /// Preemption, after a cycle's placements: a pending workload that
    /// waits only for capacity may take it from running work of strictly
    /// lower priority that is preemptible (never from work that is not),
    /// on a site that satisfies all its constraints. The victims are the
    /// fewest runs that make room, lowest priority first, then the most
    /// recently started (the least work lost). They are asked to stop
    /// (`CancelOnSite`); when the site says they stopped
    /// (`Input::Stopped`), they are billed and requeued (they resume from
    /// their checkpoints), and the cycle that follows places the preemptor. At most
    /// [`PREEMPTORS_PER_CYCLE_MAX`] workloads preempt per cycle. See
    /// [`crate::policy::victims`] for the choice on one site.
    fn preempt(&mut self, site_names: &[String], now: Millis) {
        // Nothing held may be stopped: no pass over the workloads.
        if self.preemptible_held == 0 {
            return;
        }
        let waiting: Vec<WorkloadId> = self
            .pending
            .keys
            .iter()
            .map(|(_, _, id)| *id)
            .filter(|id| {
                self.workloads
                    .get(id)
                    .is_some_and(|w| w.why.contains_key(REASON_SITE_FULL))
            })
            .take(PREEMPTORS_PER_CYCLE_MAX)
            .collect();
        if waiting.is_empty() {
            return;
        }
        // One pass: each site's runs that may be stopped, the workloads
        // whose room is already being made, and what each team holds.
        let mut runs_on: BTreeMap<&str, Vec<crate::policy::Run>> = BTreeMap::new();
        let mut awaited: BTreeSet<WorkloadId> = BTreeSet::new();
        let mut held: BTreeMap<&str, u32> = BTreeMap::new();
        for rid in self.held.ids() {
            let Some(r) = self.workloads.get(&rid) else {
                continue;
            };
            if let Some(by) = r.stopping_for {
                awaited.insert(by);
            }
            match &r.state {
                State::Running {
                    site,
                    accelerators,
                    since,
                } => {
                    *held.entry(r.spec.team.as_str()).or_insert(0) += accelerators;
                    if r.stopping_for.is_none() {
                        runs_on
                            .entry(site.as_str())
                            .or_default()
                            .push(crate::policy::Run {
                                id: rid,
                                priority: r.spec.priority,
                                preemptible: r.spec.preemptible,
                                accelerators: *accelerators,
                                since: *since,
                            });
                    }
                }
                State::Dispatched { accelerators, .. } => {
                    *held.entry(r.spec.team.as_str()).or_insert(0) += accelerators;
                }
                _ => {}
            }
        }
        let mut chosen: Vec<(WorkloadId, String, WorkloadId)> = Vec::new();
        let mut stopped: BTreeSet<WorkloadId> = BTreeSet::new();
        for id in waiting {
            let Some(w) = self.workloads.get(&id) else {
                continue;
            };
            // Its room is already being made: wait for those runs to stop.
            if awaited.contains(&id) {
                continue;
            }
            let hours = self
                .class_hours
                .get(w.filter as usize)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let quota = self
                .cfg
                .teams
                .get(&w.spec.team)
                .and_then(|t| t.max_accelerators);
            let team_held = held.get(w.spec.team.as_str()).copied().unwrap_or(0);
            // (victims' accelerators, victims' count, site, victims)
            let mut best: Option<(u32, usize, &str, Vec<WorkloadId>)> = None;
            for name in site_names {
                let Some(site) = self.sites.get(name) else {
                    continue;
                };
                if site.spec.as_ref().is_some_and(|s| w.avoids(s, now)) {
                    continue;
                }
                let Ok((need, _, _)) = site_verdict(&w.spec, hours, site, false) else {
                    continue;
                };
                if quota.is_some_and(|max| team_held.saturating_add(need) > max) {
                    continue;
                }
                let cap = site.spec.as_ref().map(|s| s.accelerators).unwrap_or(0);
                let free = cap.saturating_sub(site.used);
                let running: Vec<crate::policy::Run> = runs_on
                    .get(name.as_str())
                    .map(|v| {
                        v.iter()
                            .filter(|r| !stopped.contains(&r.id))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(v) = crate::policy::victims(w.spec.priority, need, free, &running) {
                    let taken: u32 = running
                        .iter()
                        .filter(|r| v.contains(&r.id))
                        .map(|r| r.accelerators)
                        .sum();
                    if best
                        .as_ref()
                        .is_none_or(|b| (taken, v.len(), name.as_str()) < (b.0, b.1, b.2))
                    {
                        best = Some((taken, v.len(), name.as_str(), v));
                    }
                }
            }
            if let Some((_, _, site, victims)) = best {
                for v in victims {
                    stopped.insert(v);
                    chosen.push((v, site.to_string(), id));
                }
            }
        }
        for (v, site, by) in chosen {
            let attempt = match self.workloads.get_mut(&v) {
                Some(w) => {
                    w.stopping_for = Some(by);
                    w.attempt
                }
                None => continue,
            };
            self.emit(Command::CancelOnSite {
                id: v,
                site,
                attempt,
            });
            self.preemptions.push((v, by));
        }
    }

    /// Preemptions since the last call: (workload taken back, the
    /// workload it made room for).
    pub fn take_preemptions(&mut self) -> Vec<(WorkloadId, WorkloadId)> {
        std::mem::take(&mut self.preemptions)
    }

    /// Workloads the core ended itself since the last call, and why.
    pub fn take_notes(&mut self) -> Vec<(WorkloadId, String)> {
        std::mem::take(&mut self.notes)
    }

    /// Workloads requeued because a site failed them since the last call,
    /// and what their history should say.
    pub fn take_requeue_notes(&mut self) -> Vec<(WorkloadId, String)> {
        std::mem::take(&mut self.requeue_notes)
    }

    /// A site failed a workload just requeued from it (lost with the site,
    /// its run gone, its dispatch never acknowledged): by its recovery
    /// strategy, the site, its region or its provider is avoided for a
    /// backoff that doubles with each failure; past `max_restarts` it is
    /// given up (failed).
    fn failed_by(&mut self, id: WorkloadId, site: &str, now: Millis) {
        let spec = self.sites.get(site).and_then(|s| s.spec.clone());
        let Some(w) = self.workloads.get_mut(&id) else {
            return;
        };
        if !matches!(w.state, State::Pending) {
            return;
        }
        let f = &mut w.failover;
        f.failures += 1;
        let twice_here = f.last_failed_site.as_deref() == Some(site);
        f.last_failed_site = Some(site.to_string());
        let backoff = self
            .cfg
            .failover_backoff_ms
            .saturating_mul(1 << (f.failures - 1).min(10))
            .min(
                self.cfg
                    .failover_backoff_max_ms
                    .max(self.cfg.failover_backoff_ms),
            );
        f.avoid.retain(|(_, until)| *until > now);
        let avoid = match (w.spec.recovery.strategy, &spec) {
            (skyward_model::RecoveryStrategy::SameSiteFirst, _) if twice_here => {
                Some(Avoid::Site(site.to_string()))
            }
            (skyward_model::RecoveryStrategy::SameSiteFirst, _) => None,
            (skyward_model::RecoveryStrategy::NextRegion, Some(s)) => {
                Some(Avoid::Region(s.region.clone()))
            }
            (skyward_model::RecoveryStrategy::AnyProvider, Some(s)) => {
                Some(Avoid::Provider(s.region.provider.clone()))
            }
            (_, None) => Some(Avoid::Site(site.to_string())),
        };
        if let Some(a) = avoid {
            f.avoid.push((a, now.saturating_add(backoff)));
            self.avoid_ends.insert(now.saturating_add(backoff));
        }
        let (failures, failover) = (f.failures, f.clone());
        self.requeue_notes.push((
            id,
            format!(
                "lost on {site}: the site failed it (failure {failures}); placed again by its recovery strategy"
            ),
        ));
        self.emit(Command::Persist(Record::Failover {
            id,
            failover,
            at: now,
        }));
        let max = self
            .workloads
            .get(&id)
            .and_then(|w| w.spec.recovery.max_restarts);
        if let Some(max) = max {
            if failures > max {
                let note = format!(
                    "gave up after {failures} failures (recovery.max_restarts {max}); the last on {site}"
                );
                self.transition(id, State::Done(Outcome::Failed), now);
                self.notes.push((id, note));
            }
        }
    }

    /// How many times sites failed a workload (since this core started).
    pub fn failures(&self, id: WorkloadId) -> u32 {
        self.workloads
            .get(&id)
            .map(|w| w.failover.failures)
            .unwrap_or(0)
    }

    /// The last cycle's global step: what it considered and placed, its
    /// cost and proven bound.
    pub fn last_cycle(&self) -> Option<&CycleReport> {
        self.last_cycle.as_ref()
    }

    /// Pending workloads judged by all cycles so far: work parked as
    /// unplaceable is not, until the sites change, nor work behind its
    /// filter's depth or a saturated filter.
    pub fn ordered_total(&self) -> u64 {
        self.ordered_total
    }

    /// Why a dispatched or running workload went where it is.
    pub fn placed_why(&self, id: WorkloadId) -> Option<&[String]> {
        self.workloads
            .get(&id)
            .filter(|w| !w.placed_why.is_empty())
            .map(|w| w.placed_why.as_slice())
    }

    /// The commitments' live state as last given.
    pub fn commitments(&self) -> &[LiveCommitment] {
        &self.commitments
    }

    pub fn state(&self, id: WorkloadId) -> Option<&State> {
        self.workloads.get(&id).map(|w| &w.state)
    }

    /// Why a pending workload is pending: reason → sites rejected for it.
    pub fn why_pending(&self, id: WorkloadId) -> Option<&BTreeMap<&'static str, u32>> {
        self.workloads
            .get(&id)
            .filter(|w| matches!(w.state, State::Pending))
            .map(|w| match self.saturated.get(&w.filter) {
                Some(why) if w.why.is_empty() => why.as_ref(),
                _ => w.why.as_ref(),
            })
    }

    /// (site, accelerators in use, capacity, alive).
    pub fn sites(&self) -> Vec<(String, u32, u32, bool)> {
        self.sites
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    s.used,
                    s.spec.as_ref().map(|x| x.accelerators).unwrap_or(0),
                    s.alive,
                )
            })
            .collect()
    }

    pub fn workload_ids(&self) -> Vec<WorkloadId> {
        self.workloads.keys().copied().collect()
    }

    /// Workload classes and filters the core keeps (see `class_refs`).
    pub fn classes_held(&self) -> (usize, usize) {
        (self.class_refs.len(), self.filter_refs.len())
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len() + self.parked.values().map(BTreeSet::len).sum::<usize>()
    }

    /// Work the core believes is dispatched to or running on `site`:
    /// (workload, state, attempt), in id order.
    pub fn on_site(&self, site: &str) -> Vec<(WorkloadId, State, u32)> {
        self.held
            .on(site)
            .into_iter()
            .filter_map(|id| {
                let w = self.workloads.get(&id)?;
                Some((id, w.state.clone(), w.attempt))
            })
            .collect()
    }

    /// Drops a finished workload from memory once the runtime has
    /// persisted its end (the store keeps it); memory stays bounded by
    /// live work. Returns false (and keeps it) if it has not ended.
    pub fn forget(&mut self, id: WorkloadId) -> bool {
        if self
            .workloads
            .get(&id)
            .is_some_and(|w| matches!(w.state, State::Done(_)))
        {
            if let Some(w) = self.workloads.remove(&id) {
                self.preemptible_held -= usize::from(w.spec.preemptible);
                self.class_refs[w.class as usize] -= 1;
                self.filter_refs[w.filter as usize] -= 1;
                self.compact();
            }
            true
        } else {
            false
        }
    }

    /// Pending workloads in scheduling order (priority, then FIFO), after
    /// `after` (exclusive), at most `limit`; parked work in its place.
    pub fn pending_page(&self, after: Option<WorkloadId>, limit: usize) -> Vec<WorkloadId> {
        use std::ops::Bound;
        let from = match after.and_then(|a| {
            self.workloads
                .get(&a)
                .map(|w| (-i64::from(w.spec.priority), w.seq, a))
        }) {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        // The first `limit` of each ordered set, merged.
        let mut keys: Vec<(i64, u64, WorkloadId)> = std::iter::once(&self.pending.keys)
            .chain(self.parked.values())
            .flat_map(|set| set.range((from, Bound::Unbounded)).take(limit).copied())
            .collect();
        keys.sort_unstable();
        keys.into_iter().take(limit).map(|(_, _, id)| id).collect()
    }

    /// How many pending workloads come before this one in scheduling
    /// order (None if it is not pending). Counts; allocates nothing.
    pub fn pending_position(&self, id: WorkloadId) -> Option<usize> {
        let w = self
            .workloads
            .get(&id)
            .filter(|w| matches!(w.state, State::Pending))?;
        let key = (-i64::from(w.spec.priority), w.seq, id);
        Some(
            self.pending.keys.range(..key).count()
                + self
                    .parked
                    .values()
                    .map(|s| s.range(..key).count())
                    .sum::<usize>(),
        )
    }

    /// A workload's spec.
    pub fn spec(&self, id: WorkloadId) -> Option<&JobSpec> {
        self.workloads.get(&id).map(|w| &w.spec)
    }
}

/// A run without a walltime is counted for this many hours when it is
/// priced against a commitment (an hour of the first alternative, as
/// before walltimes existed).
pub const HOURS_UNKNOWN: f64 = 1.0;

/// Workloads a cycle starts at most; the rest wait for the next cycle,
/// which comes at once (a burst is placed in batches).
pub const ADMITTED_PER_CYCLE_MAX: usize = 4_096;

/// Workloads that may preempt in one cycle.
pub const PREEMPTORS_PER_CYCLE_MAX: usize = 16;

/// Workloads that waited only for capacity offered to the global step.
pub const WAITING_PER_CYCLE_MAX: usize = 64;

/// Workloads of one filter (same alternatives and constraints) a cycle
/// judges at most among those that cannot start; the rest of that filter
/// waits for a cycle in which the head of its queue moved. It bounds a
/// cycle over a long queue to the filters times this, whatever the queue's
/// length, at the price of deep backfill within a filter (Slurm bounds its
/// backfill the same way, by `bf_max_job_test`, over all partitions;
/// bounding each filter keeps one kind's backlog from hiding another's
/// work).
pub const FILTER_DEPTH_MAX: usize = 256;

/// The list cost of a gang: price × accelerators × hours.
/// The market's name for prepaid (reserved) capacity, after the real
/// providers (no provider is named with a leading space).
const PREPAID: &str = " prepaid";

fn list_usd(price: Usd, need: u32, hours: f64) -> f64 {
    price.as_f64() * f64::from(need) * hours
}

/// Hours a run is priced for: its walltime on the site, else the
/// relative hours of that alternative (an hour of the first).
fn work_hours(walltime_ms: Option<Millis>, relative_h: f64) -> f64 {
    match walltime_ms {
        Some(t) => t as f64 / 3_600_000.0,
        None => relative_h * HOURS_UNKNOWN,
    }
}

/// Why a workload waits: each reason with the sites it applies to.
type Why = Arc<BTreeMap<&'static str, u32>>;

/// When a site's runs end: (end by walltime, or None; accelerators).
type SiteEnds = Vec<(Option<Millis>, u32)>;

/// Classes and filters kept beyond twice the workloads before a
/// compaction (so a small core never compacts).
const COMPACT_SLACK: usize = 1_024;

/// Keeps the ids with references, renumbered densely in their old order:
/// (the map, old id → new id (`u32::MAX` if dropped), references by new id).
fn renumber<K: Ord>(map: BTreeMap<K, u32>, refs: &[u32]) -> (BTreeMap<K, u32>, Vec<u32>, Vec<u32>) {
    let mut remap = vec![u32::MAX; refs.len()];
    let mut kept = Vec::new();
    for (old, r) in refs.iter().enumerate() {
        if *r > 0 {
            remap[old] = kept.len() as u32;
            kept.push(*r);
        }
    }
    let map = map
        .into_iter()
        .filter_map(|(k, id)| {
            let new = *remap.get(id as usize)?;
            (new != u32::MAX).then_some((k, new))
        })
        .collect();
    (map, remap, kept)
}

/// The global step of the last cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleReport {
    pub at: Millis,
    pub considered: usize,
    pub placed: usize,
    pub cost_usd: f64,
    pub bound_usd: f64,
    pub method: &'static str,
    pub proven_optimal: bool,
}

/// A run's walltime at `scale` times its hours on the first alternative:
/// `max_runtime_ms`, else the scaled hours (None: no hours given).
fn walltime_at(spec: &JobSpec, scale: f64) -> Option<Millis> {
    match spec.max_runtime_ms {
        Some(m) => Some(m),
        None => Some((spec.hours? * scale * 3_600_000.0).ceil() as Millis),
    }
}

/// Whether a workload rejected everywhere for these reasons stays so
/// until the sites change: no reason is one that work ending, a quota
/// freeing or a failover block expiring would lift.
fn parkable(why: &BTreeMap<&'static str, u32>) -> bool {
    ![
        REASON_SITE_FULL,
        REASON_RESERVED,
        REASON_TEAM_QUOTA,
        REASON_FAILOVER_BLOCKED,
    ]
    .iter()
    .any(|r| why.contains_key(r))
}

/// Can this site take the gang? (accelerators needed, price per
/// accelerator-hour, hours relative to the first alternative)
fn site_verdict(
    spec: &JobSpec,
    hours: &[Option<f64>],
    site: &Site,
    check_used: bool,
) -> Result<(u32, Usd, f64), &'static str> {
    let Some(s) = &site.spec else {
        return Err(REASON_SITE_DOWN);
    };
    if !site.alive {
        return Err(REASON_SITE_DOWN);
    }
    let Some((alt, req)) = spec
        .accelerators
        .iter()
        .enumerate()
        .find(|(_, a)| a.name.eq_ignore_ascii_case(&s.accelerator))
    else {
        return Err(reasons::WRONG_ACCELERATOR);
    };
    if spec
        .no_variant
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&s.accelerator))
    {
        return Err(reasons::NO_VARIANT);
    }
    let key = &s.region;
    if !spec.providers.is_empty()
        && !spec
            .providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&key.provider))
    {
        return Err(reasons::PROVIDER_NOT_ALLOWED);
    }
    if !spec.regions.is_empty()
        && !spec
            .regions
            .iter()
            .any(|r| *r == key.region || *r == key.to_string())
    {
        return Err(reasons::REGION_NOT_ALLOWED);
    }
    if !spec.residency.is_empty() && !spec.residency.contains(&site.geography) {
        return Err(reasons::RESIDENCY);
    }
    let certified = |c: &String| {
        site.certifications
            .iter()
            .any(|x| x.eq_ignore_ascii_case(c))
            || (c.eq_ignore_ascii_case("fedramp-moderate")
                && site.certifications.iter().any(|x| x == "fedramp-high"))
    };
    if !spec.compliance.iter().all(certified) {
        return Err(reasons::COMPLIANCE);
    }
    match (spec.spot, s.spot) {
        (SpotPolicy::Never, true) => return Err(REASON_SPOT_NOT_ALLOWED),
        (SpotPolicy::Required, false) => return Err(REASON_SPOT_REQUIRED),
        _ => {}
    }
    let Some(h) = hours.get(alt).copied().flatten() else {
        return Err(reasons::NO_SPEED);
    };
    let need = req.count.saturating_mul(spec.nodes);
    if need > s.accelerators {
        return Err(REASON_SITE_TOO_SMALL);
    }
    if check_used && site.used + need > s.accelerators {
        return Err(REASON_SITE_FULL);
    }
    Ok((need, s.price_usd_per_accelerator_hour, h))
}
