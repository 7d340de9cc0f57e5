//! The event loop: the real control-plane core on a simulated clock.
//!
//! A heap of timed events (time, then sequence number: ties break in the
//! order events were made) drives simulated sites and executors; the core
//! is driven exactly as the server's runtime drives it: `handle(now,
//! input)`, `handle_timeout` at `poll_timeout()`, and every command drained
//! and carried out. Only the sites are simulated:
//!
//! - a dispatch to a site that is up starts at once (`Started`) and ends
//!   when its remaining work is done (`Finished`, dated), unless a spot
//!   preemption (`Preempted`) or an outage cuts it first;
//! - an outage darkens a site: its runs die (work since their last
//!   checkpoint is lost), it was last heard at the outage's start
//!   (`Heartbeat`), and the control plane gives up on it after the
//!   detection time (`TakeOut`: its work is requeued elsewhere); when it
//!   comes back it registers afresh, running nothing (`RegisterSite`);
//! - price and capacity changes, and new chips, are re-registrations at
//!   their dates, as a server reloading its sites would do.
//!
//! Heartbeats are not simulated one by one (seven years of 15-second
//! heartbeats from 50 sites would be 700 million events): the core's
//! heartbeat timeout is set beyond the horizon, and loss is the outage's
//! detection above.
//!
//! Money follows the ledger's rules: a run's list cost is the core's
//! `RecordUsage`; it is spread over the days it ran; billed spend is list
//! less the discount of the spend contract that admits it; contract years
//! and shortfalls are `skyward_ledger::projection`'s; the `skyward`
//! policy's commitments' live state is `skyward_ledger::live` over the
//! simulated ledger, as the server's refresher computes it.
//!
//! Besides the report, a run can keep its day charges (FOCUS rows for the
//! ledger: `skyward simulate --focus`) and every dispatch (`--placements`)
//! with [`run_keeping`].
//!
//! Savings plans and reserved capacity (`kind: hourly` and `kind:
//! capacity` contracts) are settled hour by hour after the run (see
//! [`crate::hourly`]); a prepaid site is reserved capacity too, as a site.
//!
//! Not modelled yet (issue 15 continues): egress and latency costs, the
//! core steering work into savings plans' hourly coverage, and a run that
//! spans a price change is billed at the price when it ends (the core's
//! `RecordUsage`).

use crate::demand::{exponential, stream_rng, Arrivals, MS_PER_YEAR};
use crate::report::{self, Tally};
use crate::scenario::{year_index, Policy, Scenario, SiteModel, When, MS_PER_DAY, MS_PER_HOUR};
use skyward_core::{Command, Config, Core, Input, Millis, Record, SiteSpec, State, WorkloadId};
use skyward_ledger::contracts::{Contract, Terms};
use skyward_ledger::status::DayRow;
use skyward_ledger::Amount;
use skyward_model::rng::SplitMix64;
use skyward_model::Usd;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

/// The core's heartbeat timeout in the simulation: beyond any horizon
/// (see the module docs).
const HEARTBEAT_OFF_MS: Millis = 1_000 * 366 * 24 * MS_PER_HOUR;
/// Progress is reported every this many events.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Where a run is, for the caller's progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    pub policy: String,
    pub now_ms: Millis,
    pub horizon_ms: Millis,
    pub events: u64,
    pub workloads: u64,
    /// Workloads waiting now (a growing number: the fleet is overloaded).
    pub pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    SiteUpdate,
    OutageStart(u32),
    OutageEnd(u32),
    Detect(u32),
    Commitments,
    RunEnd { id: u64, attempt: u32 },
    Preempt { id: u64, attempt: u32 },
    Arrival(u32),
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    start_ms: Millis,
    end_ms: Millis,
    /// The fault it comes from: its sites are `Sim::fault_sites`.
    fault: u32,
}

#[derive(Debug)]
struct SimSite<'a> {
    model: &'a SiteModel,
    /// Whether the policy lets the core see it at all.
    in_policy: bool,
    /// The spec last registered with the core (None: not yet).
    registered: Option<SiteSpec>,
    /// Overlapping outages now covering it.
    down: u32,
    /// Whether the core has been told it is out in this outage.
    taken_out: bool,
    /// Runs on it now.
    runs: BTreeSet<u64>,
    /// Prepaid fees accrued to this time.
    accrued_to_ms: Millis,
}

#[derive(Debug, Clone)]
struct Run {
    site: u32,
    attempt: u32,
    started_ms: Millis,
    /// The whole work's duration on this site.
    full_ms: f64,
    accelerators: u32,
}

#[derive(Debug)]
struct Job {
    stream: u32,
    work_h: f64,
    /// Fraction of the work saved by checkpoints.
    progress: f64,
    /// Since when it has waited to (re)start.
    waiting_since_ms: Millis,
    started_once: bool,
    last_site: Option<u32>,
    run: Option<Run>,
}

/// One policy's run of a scenario.
pub fn run(
    sc: &Scenario,
    policy: &Policy,
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> report::PolicyReport {
    run_keeping(sc, policy, seed, Keep::default(), progress).report
}

/// One day's usage on one site, as the simulated ledger holds it: what
/// `skyward simulate --focus` writes as FOCUS rows. Prepaid (reserved)
/// sites bill nothing per use and have none; shortfalls are not charges
/// here but the ledger's own computation from these rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCharge {
    pub site: String,
    pub row: DayRow,
}

/// One dispatch the core made: workload `workload` (numbered from 1 in
/// arrival order over all streams) of stream `stream` sent to site `site`
/// (indices into the scenario's `demand` and `sites`: 24 bytes a
/// dispatch, so ten million fit in a quarter of a gigabyte) at `at_ms`
/// from the start, its `attempt`th.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub workload: u64,
    pub at_ms: Millis,
    pub stream: u16,
    pub site: u16,
    pub attempt: u32,
}

/// Dispatches a run keeps at most (`--placements` on a huge scenario).
pub const PLACEMENTS_MAX: usize = 10_000_000;

/// What a run keeps besides its report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    pub charges: bool,
    pub placements: bool,
}

/// A run's report and what it was asked to keep.
#[derive(Debug, Clone)]
pub struct Kept {
    pub report: report::PolicyReport,
    /// The day charges billed, in the order they were first billed.
    pub charges: Vec<DayCharge>,
    /// The first [`PLACEMENTS_MAX`] dispatches, in order.
    pub placements: Vec<Placement>,
    /// Dispatches beyond [`PLACEMENTS_MAX`], not kept.
    pub placements_dropped: u64,
    /// With the charges: the same summed per day over the sites the same
    /// spend contracts admit, as the live commitments read them.
    pub live_rows: Vec<DayRow>,
}

/// [`run`], keeping its day charges and its dispatches when asked.
pub fn run_keeping(
    sc: &Scenario,
    policy: &Policy,
    seed: u64,
    keep: Keep,
    progress: &mut dyn FnMut(&Progress),
) -> Kept {
    let mut sim = Sim::new(sc, policy, seed);
    sim.placements = keep.placements.then(Vec::new);
    sim.go(progress);
    let charges = if keep.charges {
        let mut site_of = vec![0u32; sim.rows.len()];
        for ((_, si), i) in &sim.row_index {
            site_of[*i] = *si;
        }
        site_of
            .iter()
            .zip(&sim.rows)
            .map(|(si, row)| DayCharge {
                site: sim.sites[*si as usize].model.name.clone(),
                row: row.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let placements = sim.placements.take().unwrap_or_default();
    let placements_dropped = sim.placements_dropped;
    let live_rows = if keep.charges {
        std::mem::take(&mut sim.live_rows)
    } else {
        Vec::new()
    };
    Kept {
        live_rows,
        report: sim.finish(),
        charges,
        placements,
        placements_dropped,
    }
}

struct Sim<'a> {
    sc: &'a Scenario,
    policy: Policy,
    seed: u64,
    core: Core,
    now: Millis,
    horizon_ms: Millis,
    heap: BinaryHeap<Reverse<(Millis, u64, Ev)>>,
    seq: u64,
    sites: Vec<SimSite<'a>>,
    site_index: BTreeMap<String, u32>,
    outages: Vec<Outage>,
    /// The sites each fault takes down.
    fault_sites: Vec<Vec<u32>>,
    update_times: Vec<Millis>,
    next_update: usize,
    arrivals: Vec<Arrivals>,
    jobs: BTreeMap<u64, Job>,
    next_id: u64,
    follow: VecDeque<Input>,
    done: Vec<WorkloadId>,
    spend_contracts: Vec<Contract>,
    rows: Vec<DayRow>,
    row_index: BTreeMap<(i64, u32), usize>,
    /// The same charges summed per day over sites that the same spend
    /// contracts admit (see [`live_classes`]): what the live commitments
    /// are computed from. The ledger's projection reads every row it is
    /// given; with one row per site and day it read 50 sites × 2,555 days
    /// at every refresh. Sums are exact, so its answer is the same.
    live_rows: Vec<DayRow>,
    live_index: BTreeMap<(i64, u32), usize>,
    /// Each site's class in `live_rows`, or none when no spend contract
    /// admits its usage.
    live_class: Vec<Option<u32>>,
    /// Savings plans' and reserved capacity's usage by hour, settled at
    /// the end.
    hourly: Option<crate::hourly::Hourly>,
    /// Per provider, per year: (list, billed).
    provider_usage: BTreeMap<String, Vec<(Amount, Amount)>>,
    /// Each stream's next arrival's work, drawn when it was scheduled.
    /// Each stream's next arrival: work hours, accelerators per node.
    next_work: Vec<(f64, Option<u32>)>,
    /// Where each scenario year starts, in ms.
    year_starts: Vec<Millis>,
    tally: Tally,
    events: u64,
    /// Dispatches, when kept (see [`run_keeping`]).
    placements: Option<Vec<Placement>>,
    placements_dropped: u64,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, policy: &Policy, seed: u64) -> Sim<'a> {
        let horizon_ms = sc.horizon_ms();
        let cfg = Config {
            cycle_min_gap_ms: sc.options.cycle_min_gap_ms,
            heartbeat_timeout_ms: HEARTBEAT_OFF_MS,
            // The MILP runs under a time limit: a cycle that used it would
            // depend on the machine's speed.
            exact_options_max: 0,
            // Nobody reads a simulated placement's explanation.
            explain: false,
            ..Config::default()
        };
        let sites: Vec<SimSite> = sc
            .sites
            .iter()
            .map(|m| SimSite {
                in_policy: match policy {
                    Policy::SingleCloud(p) => m.region.provider == *p,
                    _ => true,
                },
                model: m,
                registered: None,
                down: 0,
                taken_out: false,
                runs: BTreeSet::new(),
                accrued_to_ms: m.appears_ms(),
            })
            .collect();
        let site_index = sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.model.name.clone(), i as u32))
            .collect();
        let fault_sites = sc
            .faults
            .iter()
            .map(|f| {
                sc.sites
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| f.scope.covers(s))
                    .map(|(i, _)| i as u32)
                    .collect()
            })
            .collect();
        let outages = outages(sc, seed, horizon_ms);
        let update_times = update_times(sc, horizon_ms);
        let arrivals = sc
            .demand
            .iter()
            .map(|s| Arrivals::new(s, seed, horizon_ms))
            .collect();
        let spend_contracts: Vec<Contract> = sc
            .contracts
            .iter()
            .filter(|c| matches!(c.terms, Terms::Spend(_)))
            .cloned()
            .collect();
        let tally = Tally::new(sc, &spend_contracts);
        let live_class = live_classes(sc, &spend_contracts);
        Sim {
            sc,
            policy: policy.clone(),
            seed,
            core: Core::new(cfg),
            now: 0,
            horizon_ms,
            heap: BinaryHeap::new(),
            seq: 0,
            sites,
            site_index,
            outages,
            fault_sites,
            update_times,
            next_update: 0,
            arrivals,
            jobs: BTreeMap::new(),
            next_id: 1,
            follow: VecDeque::new(),
            done: Vec::new(),
            spend_contracts,
            rows: Vec::new(),
            row_index: BTreeMap::new(),
            live_rows: Vec::new(),
            live_index: BTreeMap::new(),
            live_class,
            hourly: crate::hourly::Hourly::new(sc, horizon_ms),
            provider_usage: BTreeMap::new(),
            next_work: vec![(0.0, None); sc.demand.len()],
            year_starts: sc.year_starts_ms(),
            tally,
            events: 0,
            placements: None,
            placements_dropped: 0,
        }
    }

    fn push(&mut self, at: Millis, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    fn go(&mut self, progress: &mut dyn FnMut(&Progress)) {
        if let Some(t) = self.update_times.first().copied() {
            self.push(t, Ev::SiteUpdate);
        }
        for i in 0..self.outages.len() {
            self.push(self.outages[i].start_ms, Ev::OutageStart(i as u32));
        }
        if self.policy == Policy::Skyward && !self.spend_contracts.is_empty() {
            self.push(0, Ev::Commitments);
        }
        for i in 0..self.arrivals.len() {
            self.next_arrival(i as u32);
        }
        loop {
            let ev_at = self.heap.peek().map(|Reverse((t, _, _))| *t);
            let core_at = self.core.poll_timeout();
            let next = match (ev_at, core_at) {
                (Some(e), Some(c)) => e.min(c),
                (Some(e), None) => e,
                (None, Some(c)) => c,
                (None, None) => break,
            };
            if next >= self.horizon_ms {
                break;
            }
            self.now = next;
            self.events += 1;
            if self.events.is_multiple_of(PROGRESS_EVERY) {
                progress(&Progress {
                    policy: self.policy.name(),
                    now_ms: self.now,
                    horizon_ms: self.horizon_ms,
                    events: self.events,
                    workloads: self.next_id - 1,
                    pending: self.core.pending_count() as u64,
                });
            }
            if core_at == Some(next) && ev_at.is_none_or(|e| e > next) {
                self.core.handle_timeout(next);
            } else if let Some(Reverse((_, _, ev))) = self.heap.pop() {
                self.on_event(ev);
            }
            self.drain();
        }
        self.now = self.horizon_ms;
        self.at_horizon();
        progress(&Progress {
            policy: self.policy.name(),
            now_ms: self.horizon_ms,
            horizon_ms: self.horizon_ms,
            events: self.events,
            workloads: self.next_id - 1,
            pending: self.core.pending_count() as u64,
        });
    }

    fn next_arrival(&mut self, stream: u32) {
        if self.next_id > self.sc.options.workloads_max {
            self.tally.truncated = true;
            return;
        }
        if let Some((at, hours, count)) = self.arrivals[stream as usize].next() {
            self.next_work[stream as usize] = (hours, count);
            self.push(at, Ev::Arrival(stream));
        }
    }

    fn year(&self, ms: Millis) -> usize {
        year_index(&self.year_starts, ms)
    }

    fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::Arrival(stream) => self.arrive(stream),
            Ev::RunEnd { id, attempt } => self.run_end(id, attempt),
            Ev::Preempt { id, attempt } => self.preempt(id, attempt),
            Ev::SiteUpdate => self.site_update(),
            Ev::OutageStart(o) => self.outage_start(o),
            Ev::OutageEnd(o) => self.outage_end(o),
            Ev::Detect(site) => self.detect(site),
            Ev::Commitments => self.refresh_commitments(),
        }
    }

    fn feed(&mut self, input: Input) {
        // A refused input changed nothing (a stop for a run the core has
        // already taken back is stale, as on the server).
        let _ = self.core.handle(self.now, input);
    }

    /// Carries out every command, feeding back what the sites answer,
    /// until the core is quiet.
    fn drain(&mut self) {
        loop {
            while let Some(c) = self.core.poll_command() {
                match c {
                    Command::Dispatch {
                        id,
                        site,
                        accelerators,
                        attempt,
                        ..
                    } => self.dispatch(id.0, &site, accelerators, attempt),
                    Command::CancelOnSite { id, site, attempt } => {
                        self.cancel_on_site(id.0, &site, attempt)
                    }
                    Command::Persist(Record::Transition {
                        id,
                        state: State::Done(_),
                        ..
                    }) => self.done.push(id),
                    Command::Persist(_) => {}
                    Command::RecordUsage {
                        site,
                        accelerator_hours,
                        cost_usd,
                        from,
                        to,
                        ..
                    } => self.usage(&site, accelerator_hours, cost_usd, from, to),
                }
            }
            match self.follow.pop_front() {
                Some(input) => self.feed(input),
                None => break,
            }
        }
        for id in std::mem::take(&mut self.done) {
            self.core.forget(id);
            self.jobs.remove(&id.0);
        }
    }

    fn arrive(&mut self, stream: u32) {
        let (hours, count) = self.next_work[stream as usize];
        let id = self.next_id;
        self.next_id += 1;
        let mut spec = self.sc.demand[stream as usize].job.clone();
        spec.hours = Some(walltime_hours(hours, self.sc.options.walltime_step_pct));
        if let Some(c) = count {
            // A trace's task asks for its own count on each alternative.
            for a in &mut spec.accelerators {
                a.count = c;
            }
        }
        self.jobs.insert(
            id,
            Job {
                stream,
                work_h: hours,
                progress: 0.0,
                waiting_since_ms: self.now,
                started_once: false,
                last_site: None,
                run: None,
            },
        );
        let year = self.year(self.now);
        self.tally.submitted(stream as usize, year);
        if self
            .core
            .handle(
                self.now,
                Input::Submit {
                    id: WorkloadId(id),
                    spec,
                },
            )
            .is_err()
        {
            self.tally.refused += 1;
            self.jobs.remove(&id);
        }
        self.next_arrival(stream);
    }

    fn dispatch(&mut self, id: u64, site: &str, accelerators: u32, attempt: u32) {
        let Some(&si) = self.site_index.get(site) else {
            return;
        };
        if self.sites[si as usize].down > 0 {
            // Dark: nothing answers; the dispatch times out in the core.
            return;
        }
        let now = self.now;
        // The core's walltime is the rounded-up estimate at the site's
        // relative speed; the truth is the work at that same speed (an
        // accelerator without a throughput figure runs at the first's).
        let accelerator = &self.sites[si as usize].model.accelerator;
        let scale = self
            .core
            .speed_scale(WorkloadId(id), accelerator)
            .unwrap_or(1.0);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Some(kept) = &mut self.placements {
            if kept.len() < PLACEMENTS_MAX {
                kept.push(Placement {
                    workload: id,
                    at_ms: now,
                    stream: u16::try_from(job.stream).unwrap_or(u16::MAX),
                    site: u16::try_from(si).unwrap_or(u16::MAX),
                    attempt,
                });
            } else {
                self.placements_dropped += 1;
            }
        }
        let full_ms = job.work_h * scale * MS_PER_HOUR as f64;
        let left_ms = ((1.0 - job.progress) * full_ms).round().max(1.0) as Millis;
        let stream = job.stream as usize;
        let waited = now - job.waiting_since_ms;
        let first = !job.started_once;
        let moved = job.last_site.is_some_and(|l| l != si);
        job.started_once = true;
        job.last_site = Some(si);
        job.run = Some(Run {
            site: si,
            attempt,
            started_ms: now,
            full_ms,
            accelerators,
        });
        self.sites[si as usize].runs.insert(id);
        let year = self.year(now);
        self.tally.started(stream, year, waited, first, moved);
        self.follow.push_back(Input::Started {
            id: WorkloadId(id),
            site: site.to_string(),
            attempt,
        });
        self.push(now + left_ms, Ev::RunEnd { id, attempt });
        let rate = self.sites[si as usize].model.preemptions_per_hour;
        if self.sites[si as usize].model.spot && rate > 0.0 {
            let mut rng = SplitMix64::new(
                self.seed ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ u64::from(attempt) << 48,
            );
            let after_ms = exponential(&mut rng, rate / MS_PER_HOUR as f64);
            if after_ms < left_ms as f64 {
                self.push(now + after_ms as Millis, Ev::Preempt { id, attempt });
            }
        }
    }

    /// Cuts a run short: what its checkpoints saved stays done, the rest
    /// is lost work.
    fn cut(&mut self, id: u64) -> Option<Run> {
        let now = self.now;
        let job = self.jobs.get_mut(&id)?;
        let run = job.run.take()?;
        let stream = job.stream as usize;
        let elapsed = (now - run.started_ms) as f64;
        let saved = match self.sc.demand[stream].checkpoint_interval_ms {
            Some(c) if c > 0 => (elapsed / c as f64).floor() * c as f64,
            _ => 0.0,
        };
        job.progress = (job.progress + saved / run.full_ms).min(1.0);
        job.waiting_since_ms = now;
        self.sites[run.site as usize].runs.remove(&id);
        let lost_h = (elapsed - saved) / MS_PER_HOUR as f64 * f64::from(run.accelerators);
        let year = self.year(now);
        self.tally.interrupted(stream, year, lost_h);
        Some(run)
    }

    fn run_end(&mut self, id: u64, attempt: u32) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(run) = job.run.take_if(|r| r.attempt == attempt) else {
            return;
        };
        let stream = job.stream as usize;
        self.sites[run.site as usize].runs.remove(&id);
        let year = self.year(self.now);
        self.tally.completed(stream, year);
        let site = self.sites[run.site as usize].model.name.clone();
        self.follow.push_back(Input::Finished {
            id: WorkloadId(id),
            site,
            attempt,
            success: true,
            ended_at: Some(self.now),
        });
    }

    fn preempt(&mut self, id: u64, attempt: u32) {
        let current = self
            .jobs
            .get(&id)
            .and_then(|j| j.run.as_ref())
            .is_some_and(|r| r.attempt == attempt);
        if !current {
            return;
        }
        if let Some(run) = self.cut(id) {
            let y = self.year(self.now);
            self.tally.preemptions[y] += 1;
            let site = self.sites[run.site as usize].model.name.clone();
            self.follow.push_back(Input::Preempted {
                id: WorkloadId(id),
                site,
                attempt,
            });
        }
    }

    fn cancel_on_site(&mut self, id: u64, site: &str, attempt: u32) {
        let current = self
            .jobs
            .get(&id)
            .and_then(|j| j.run.as_ref())
            .is_some_and(|r| {
                r.attempt == attempt && self.sites[r.site as usize].model.name == site
            });
        if current && self.cut(id).is_some() {
            self.follow.push_back(Input::Stopped {
                id: WorkloadId(id),
                site: site.to_string(),
                attempt,
            });
        }
    }

    fn usage(
        &mut self,
        site: &str,
        accelerator_hours: f64,
        cost_usd: Usd,
        from: Millis,
        to: Millis,
    ) {
        let Some(&si) = self.site_index.get(site) else {
            return;
        };
        let model = self.sites[si as usize].model;
        let year = self.year(from);
        let hours = &mut self.tally.years[year].accelerator_hours;
        match hours.get_mut(&model.accelerator) {
            Some(h) => *h += accelerator_hours,
            None => {
                hours.insert(model.accelerator.clone(), accelerator_hours);
            }
        }
        let list_total = Amount(i128::from(cost_usd.micros()) * 1_000_000);
        if let Some(h) = &mut self.hourly {
            h.add(si as usize, from, to, list_total, accelerator_hours);
        }
        spread(from, to, list_total, MS_PER_DAY, |t, _, list| {
            self.bill(si, t, list, model.prepaid)
        });
    }

    /// One day's piece of a run's usage: billed at the discount of the
    /// spend contract that admits it, which it burns.
    fn bill(&mut self, si: u32, at: Millis, list: Amount, prepaid: bool) {
        let year = self.year(at);
        self.tally.years[year].list += list;
        if prepaid {
            return;
        }
        let ts = self.sc.timestamp(at);
        let m = &self.sites[si as usize].model;
        let contract = self
            .spend_contracts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.start <= ts && ts < c.end && admits(c, m))
            .max_by(|a, b| discount(a.1).total_cmp(&discount(b.1)).then(b.0.cmp(&a.0)))
            .map(|(i, c)| (i, discount(c)));
        let billed = match contract {
            Some((_, d)) => skyward_ledger::contracts::scale(list, 1.0 - d / 100.0),
            None => list,
        };
        self.tally.years[year].billed += billed;
        let years = self.sc.years as usize;
        let p = self
            .provider_usage
            .entry(m.region.provider.clone())
            .or_insert_with(|| vec![(Amount::ZERO, Amount::ZERO); years]);
        p[year].0 += list;
        p[year].1 += billed;
        if let Some((ci, _)) = contract {
            self.tally.burn(ci, ts, billed);
        }
        let day = ts.day();
        let key = (day, si);
        match self.row_index.get(&key) {
            Some(&i) => {
                self.rows[i].billed += billed;
                self.rows[i].effective = self.rows[i].billed;
                self.rows[i].list += list;
            }
            None => {
                let mut row = DayRow::usage(day, &m.region.provider, billed, list);
                row.region = m.region.region.clone();
                row.service = "compute".into();
                row.sku = m.accelerator.clone();
                self.row_index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
        if let Some(class) = self.live_class[si as usize] {
            match self.live_index.get(&(day, class)) {
                Some(&i) => {
                    self.live_rows[i].billed += billed;
                    self.live_rows[i].effective = self.live_rows[i].billed;
                    self.live_rows[i].list += list;
                }
                None => {
                    // The first site of the class stands for all of it:
                    // every contract admits all of them or none.
                    let mut row = self.rows[self.row_index[&key]].clone();
                    row.billed = billed;
                    row.effective = billed;
                    row.list = list;
                    self.live_index.insert((day, class), self.live_rows.len());
                    self.live_rows.push(row);
                }
            }
        }
    }

    fn refresh_commitments(&mut self) {
        let at = self.sc.timestamp(self.now);
        let live = skyward_ledger::live::live(&self.spend_contracts, at, &self.live_rows);
        self.feed(Input::Commitments {
            live: skyward_core::LiveCommitment::from_ledger(&live),
        });
        let next = self.now + self.sc.options.commitments_refresh_ms.max(1);
        self.push(next, Ev::Commitments);
    }

    /// The site as it should be registered now.
    fn desired(&self, si: usize) -> Option<SiteSpec> {
        let s = &self.sites[si];
        let m = &s.model;
        if !s.in_policy || m.appears_ms() > self.now {
            return None;
        }
        let months = months_between(self.sc, m.appears_ms(), self.now);
        Some(SiteSpec {
            name: m.name.clone(),
            region: m.region.clone(),
            accelerator: m.accelerator.clone(),
            accelerators: m.capacity_at(self.now),
            price_usd_per_accelerator_hour: m.price_at(self.now, months),
            spot: m.spot,
            prepaid: m.prepaid,
        })
    }

    fn register(&mut self, si: usize, spec: SiteSpec) {
        let running = self.sites[si]
            .runs
            .iter()
            .map(|&id| WorkloadId(id))
            .collect();
        self.sites[si].registered = Some(spec.clone());
        self.feed(Input::RegisterSite { spec, running });
    }

    fn site_update(&mut self) {
        for si in 0..self.sites.len() {
            self.accrue(si);
            let Some(want) = self.desired(si) else {
                continue;
            };
            if self.sites[si].down == 0 && self.sites[si].registered.as_ref() != Some(&want) {
                self.register(si, want);
            }
        }
        self.next_update += 1;
        if let Some(t) = self.update_times.get(self.next_update).copied() {
            self.push(t, Ev::SiteUpdate);
        }
    }

    /// Prepaid capacity's fee to now, at the registered price and size.
    fn accrue(&mut self, si: usize) {
        let now = self.now;
        let s = &mut self.sites[si];
        let from = s.accrued_to_ms;
        if !s.model.prepaid || now <= from {
            s.accrued_to_ms = s.accrued_to_ms.max(now);
            return;
        }
        s.accrued_to_ms = now;
        let Some(spec) = s.registered.clone() else {
            return;
        };
        let hours = (now - from) as f64 / MS_PER_HOUR as f64 * f64::from(spec.accelerators);
        let fee = spec.price_usd_per_accelerator_hour.times(hours);
        let year = self.year(from);
        let fee = Amount(i128::from(fee.micros()) * 1_000_000);
        self.tally.years[year].prepaid += fee;
    }

    fn outage_start(&mut self, o: u32) {
        let outage = self.outages[o as usize];
        self.push(outage.end_ms, Ev::OutageEnd(o));
        for si in self.fault_sites[outage.fault as usize].clone() {
            let s = &mut self.sites[si as usize];
            s.down += 1;
            if s.down > 1 {
                continue;
            }
            s.taken_out = false;
            let runs: Vec<u64> = s.runs.iter().copied().collect();
            for id in runs {
                self.cut(id);
            }
            let y = self.year(self.now);
            self.tally.outages[y] += 1;
            if self.sites[si as usize].registered.is_some() {
                let name = self.sites[si as usize].model.name.clone();
                // Last heard now.
                self.feed(Input::Heartbeat { site: name });
                self.push(self.now + self.sc.options.detection_ms, Ev::Detect(si));
            }
        }
    }

    fn detect(&mut self, si: u32) {
        let s = &mut self.sites[si as usize];
        if s.down == 0 || s.taken_out || s.registered.is_none() {
            return;
        }
        s.taken_out = true;
        let name = s.model.name.clone();
        self.feed(Input::TakeOut { site: name });
    }

    fn outage_end(&mut self, o: u32) {
        let fault = self.outages[o as usize].fault as usize;
        for si in self.fault_sites[fault].clone() {
            let s = &mut self.sites[si as usize];
            s.down = s.down.saturating_sub(1);
            if s.down > 0 {
                continue;
            }
            // Back, running nothing (what it ran died with it).
            if let Some(spec) = self.desired(si as usize) {
                self.register(si as usize, spec);
            }
        }
    }

    fn at_horizon(&mut self) {
        for si in 0..self.sites.len() {
            self.accrue(si);
        }
        // Runs still going are billed to the horizon by the core's own
        // cancel. They are not cut short (no lost work): the sites forget
        // them first, so the cancel's stop finds nothing to cut.
        let mut running = Vec::new();
        for (id, job) in &mut self.jobs {
            if job.run.take().is_some() {
                running.push(*id);
            }
        }
        self.tally.running_at_horizon = running.len() as u64;
        for id in running {
            self.feed(Input::Cancel { id: WorkloadId(id) });
        }
        self.drain();
        self.tally.pending_at_horizon = self.core.pending_count() as u64;
    }

    fn finish(self) -> report::PolicyReport {
        let settled = self.hourly.as_ref().map(|h| h.settle(self.sc));
        report::build(
            self.sc,
            &self.policy,
            self.tally,
            &self.spend_contracts,
            &self.provider_usage,
            settled,
            self.events,
            self.next_id - 1,
        )
    }
}

/// Spreads `total` over `from..to` in pieces that end at multiples of
/// `period_ms`, in exact amounts (each piece its share by time, the last
/// the remainder; a run of no time is one piece): `piece(start, end,
/// amount)`.
pub(crate) fn spread(
    from: Millis,
    to: Millis,
    total: Amount,
    period_ms: Millis,
    mut piece: impl FnMut(Millis, Millis, Amount),
) {
    let end = to.max(from + 1);
    let span = end - from;
    let mut given = Amount::ZERO;
    let mut t = from;
    while t < end {
        let piece_end = ((t / period_ms + 1) * period_ms).min(end);
        let amount = if piece_end >= end {
            total - given
        } else {
            Amount(total.0 * i128::from(piece_end - t) / i128::from(span))
        };
        given += amount;
        piece(t, piece_end, amount);
        t = piece_end;
    }
}

/// Whether spend contract `c` admits usage on site `m` (its provider, and
/// eligible by region, service and accelerator), whatever the date.
fn admits(c: &Contract, m: &SiteModel) -> bool {
    c.provider == m.region.provider
        && matches!(&c.terms, Terms::Spend(t)
            if t.eligible.admits(&m.region.region, "compute", &m.accelerator))
}

/// Sites grouped by which spend contracts admit their usage (the same
/// provider, and eligible by region, service and accelerator): each
/// site's class, or none when no contract admits it.
pub fn live_classes(sc: &Scenario, contracts: &[Contract]) -> Vec<Option<u32>> {
    let mut classes: Vec<(&str, Vec<bool>)> = Vec::new();
    sc.sites
        .iter()
        .map(|m| {
            let mask: Vec<bool> = contracts.iter().map(|c| admits(c, m)).collect();
            if !mask.contains(&true) {
                return None;
            }
            let key = (m.region.provider.as_str(), mask);
            let i = match classes.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    classes.push(key);
                    classes.len() - 1
                }
            };
            Some(i as u32)
        })
        .collect()
}

fn discount(c: &Contract) -> f64 {
    match &c.terms {
        Terms::Spend(t) => t.discount_pct,
        _ => 0.0,
    }
}

/// The walltime a user would give: the work rounded up to the next step
/// of a geometric grid (`step_pct` apart; 0: the work itself).
pub fn walltime_hours(work_h: f64, step_pct: f64) -> f64 {
    if step_pct <= 0.0 || work_h <= 0.0 {
        return work_h;
    }
    let base = 1.0 + step_pct / 100.0;
    let k = (work_h.ln() / base.ln()).ceil();
    let w = base.powf(k);
    // Rounding can land a hair under the work.
    if w < work_h {
        w * base
    } else {
        w
    }
}

/// Whole calendar months from `from_ms` to `to_ms`.
fn months_between(sc: &Scenario, from_ms: Millis, to_ms: Millis) -> u32 {
    let from = sc.timestamp(from_ms);
    let to = sc.timestamp(to_ms);
    let mut m = 0u32;
    while m < 12 * crate::scenario::YEARS_MAX && from.plus_months(i64::from(m) + 1) <= to {
        m += 1;
    }
    m
}

/// When sites change: their appearance, capacity and price steps, and each
/// month's start when a price follows a yearly path.
fn update_times(sc: &Scenario, horizon_ms: Millis) -> Vec<Millis> {
    let mut t: BTreeSet<Millis> = BTreeSet::new();
    t.insert(0);
    for s in &sc.sites {
        t.extend(s.capacity.iter().map(|c| c.0));
        t.extend(s.price_steps.iter().map(|c| c.0));
        if s.price_change_pct_per_year != 0.0 {
            let mut m = 1i64;
            loop {
                let at = sc.ms_at(sc.start.plus_months(m));
                if at >= horizon_ms {
                    break;
                }
                if at > s.appears_ms() {
                    t.insert(at);
                }
                m += 1;
            }
        }
    }
    t.into_iter().filter(|&x| x < horizon_ms).collect()
}

/// The outage schedule, the same for every policy: scheduled ones, and
/// each rate's Poisson process from its own generator.
fn outages(sc: &Scenario, seed: u64, horizon_ms: Millis) -> Vec<Outage> {
    let mut out = Vec::new();
    for (i, f) in sc.faults.iter().enumerate() {
        let fault = i as u32;
        match f.when {
            When::At { at_ms, duration_ms } => {
                if at_ms < horizon_ms {
                    out.push(Outage {
                        start_ms: at_ms,
                        end_ms: at_ms + duration_ms.max(1),
                        fault,
                    });
                }
            }
            When::Rate {
                per_year,
                mean_duration_ms,
            } => {
                if per_year <= 0.0 {
                    continue;
                }
                let mut rng = stream_rng(seed, &format!("fault {i}"));
                let mut t = 0.0f64;
                loop {
                    t += exponential(&mut rng, per_year / MS_PER_YEAR);
                    if t >= horizon_ms as f64 {
                        break;
                    }
                    let d = exponential(&mut rng, 1.0 / mean_duration_ms.max(1) as f64);
                    out.push(Outage {
                        start_ms: t as Millis,
                        end_ms: t as Millis + (d as Millis).max(1),
                        fault,
                    });
                }
            }
        }
    }
    out.sort_by_key(|o| o.start_ms);
    out
}
