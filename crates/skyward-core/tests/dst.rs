#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic simulation of the core (TigerBeetle's VOPR, in small): one
//! seed drives submissions, cancellations, executor failures, preemptions,
//! site crashes and recoveries, and core restarts rebuilt from the persisted
//! records, under live commitments that change as it runs (the global
//! assignment then moves work towards them). Invariants are checked after every step; then faults stop, and
//! the run must settle. A failure prints its seed; rerun one seed with
//! `DST_SEED=… cargo test -p skyward-core --test dst`; run others with
//! `DST_SEED_START=… DST_SEEDS=…`.

use skyward_core::{
    Command, Config, Core, Input, JobSpec, LiveCommitment, Millis, Outcome, Record, SiteSpec,
    State, WorkloadId,
};
use skyward_model::rng::SplitMix64;
use skyward_model::{AcceleratorRequest, RegionKey, Usd};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Ev {
    ToCore(Input),
    ExecDispatch {
        id: WorkloadId,
        site: String,
        acc: u32,
        attempt: u32,
    },
    ExecCancel {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
    ExecEnd {
        id: WorkloadId,
        site: String,
        run: u64,
        attempt: u32,
        kind: End,
    },
    Heartbeats,
    Submit(WorkloadId),
    Cancel(WorkloadId),
    Crash(String),
    Recover(String),
    Restart,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Success,
    Failure,
    Preempted,
}

struct Exec {
    spec: SiteSpec,
    alive: bool,
    /// id → (accelerators, run number, attempt)
    running: BTreeMap<WorkloadId, (u32, u64, u32)>,
    /// Highest attempt cancelled per workload (fencing).
    fenced: BTreeMap<WorkloadId, u32>,
}

struct World {
    now: Millis,
    core: Core,
    cfg: Config,
    log: Vec<Record>,
    rng: SplitMix64,
    events: BTreeMap<(Millis, u64), Ev>,
    seq: u64,
    runs: u64,
    execs: BTreeMap<String, Exec>,
    submitted: BTreeSet<WorkloadId>,
    starts_accepted: BTreeMap<WorkloadId, u32>,
    usage: BTreeMap<WorkloadId, u32>,
    usage_keys: BTreeSet<(WorkloadId, Millis)>,
    faults: bool,
    steps: u64,
    /// Core → site messages arrive in the order sent (one connection per
    /// executor): the last delivery time per site.
    site_channel: BTreeMap<String, Millis>,
    /// The commitments last given (the runtime gives them again after a
    /// restart).
    commitments: Vec<LiveCommitment>,
    /// Every submitted spec (preemption is checked against them).
    specs: BTreeMap<WorkloadId, JobSpec>,
    preemptions: u64,
    /// The last site that lost each workload (its run preempted), and
    /// when the core was told: failover must avoid it (by strategy) for at
    /// least the first backoff.
    failed_at: BTreeMap<WorkloadId, (String, Millis)>,
    failovers_checked: u64,
    /// Site reports delivered twice.
    duplicates: u64,
}

fn sites() -> Vec<SiteSpec> {
    let s = |name: &str, p: &str, r: &str, acc: &str, n: u32, price: i64| SiteSpec {
        name: name.into(),
        region: RegionKey::new(p, r),
        accelerator: acc.into(),
        accelerators: n,
        price_usd_per_accelerator_hour: Usd::from_dollars(price),
        spot: false,
        prepaid: false,
    };
    vec![
        s("aws-east", "aws", "us-east-1", "H100", 64, 6),
        s("gcp-eu", "gcp", "europe-west4", "H100", 32, 5),
        s("azure-east", "azure", "eastus", "A100", 32, 3),
        s("oci-ash", "oci", "us-ashburn-1", "H100", 16, 4),
        SiteSpec {
            spot: true,
            ..s("gcp-spot", "gcp", "us-central1", "H100", 32, 2)
        },
        // Reserved capacity, paid either way: used first.
        SiteSpec {
            prepaid: true,
            ..s("aws-reserved", "aws", "us-west-2", "H100", 16, 9)
        },
    ]
}

impl World {
    fn new(seed: u64) -> World {
        let cfg = Config {
            cycle_ms: 500,
            dispatch_timeout_ms: 5_000,
            heartbeat_timeout_ms: 4_000,
            // The MILP's time limit is wall-clock: off, so a seed replays.
            exact_options_max: 0,
            // One team has a quota; "search" counts double in fair share.
            teams: [
                (
                    "ml".to_string(),
                    skyward_core::policy::Team {
                        weight: 1.0,
                        max_accelerators: Some(QUOTA_ML),
                    },
                ),
                (
                    "search".to_string(),
                    skyward_core::policy::Team {
                        weight: 2.0,
                        max_accelerators: None,
                    },
                ),
            ]
            .into(),
            // Failover backoffs on the simulation's scale: avoided places
            // open again well within the settling phase.
            failover_backoff_ms: 5_000,
            failover_backoff_max_ms: 40_000,
            ..Config::default()
        };
        let mut w = World {
            now: 0,
            core: Core::new(cfg.clone()),
            cfg,
            log: Vec::new(),
            rng: SplitMix64::new(seed),
            events: BTreeMap::new(),
            seq: 0,
            runs: 0,
            execs: sites()
                .into_iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        Exec {
                            spec: s,
                            alive: true,
                            running: BTreeMap::new(),
                            fenced: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            submitted: BTreeSet::new(),
            starts_accepted: BTreeMap::new(),
            usage: BTreeMap::new(),
            usage_keys: BTreeSet::new(),
            faults: true,
            steps: 0,
            site_channel: BTreeMap::new(),
            commitments: Vec::new(),
            specs: BTreeMap::new(),
            preemptions: 0,
            failed_at: BTreeMap::new(),
            failovers_checked: 0,
            duplicates: 0,
        };
        for s in sites() {
            w.at(
                0,
                Ev::ToCore(Input::RegisterSite {
                    spec: s,
                    running: Vec::new(),
                }),
            );
        }
        w.at(1_000, Ev::Heartbeats);
        for i in 0..60u64 {
            let t = w.rng.below(60_000) as Millis;
            w.at(t, Ev::Submit(WorkloadId(i)));
            if w.rng.below(10) == 0 {
                let later = t + w.rng.below(30_000) as Millis;
                w.at(later, Ev::Cancel(WorkloadId(i)));
            }
        }
        for _ in 0..4 {
            let t = w.rng.below(90_000) as Millis;
            let site = sites()[w.rng.below(4)].name.clone();
            w.at(t, Ev::Crash(site));
        }
        for _ in 0..3 {
            let t = w.rng.below(90_000) as Millis;
            w.at(t, Ev::Restart);
        }
        // Commitments forecast to fall short by random amounts, then met.
        for k in 0..4 {
            let t = w.rng.below(90_000) as Millis;
            let mut live = Vec::new();
            for p in ["aws", "azure", "gcp", "oci"] {
                if w.rng.below(2) == 0 {
                    live.push(LiveCommitment {
                        name: format!("{p}-{k}"),
                        provider: p.into(),
                        discount_pct: w.rng.below(40) as f64,
                        free_usd: Usd::from_dollars(
                            w.rng.below(if k == 3 { 1 } else { 400 }) as i64
                        ),
                    });
                }
            }
            w.at(t, Ev::ToCore(Input::Commitments { live }));
        }
        w
    }

    fn at(&mut self, t: Millis, e: Ev) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    fn spec(&mut self, id: WorkloadId) -> JobSpec {
        let choices: [&[&str]; 4] = [&["H100:8"], &["H100:8", "A100:8"], &["A100:4"], &["H100:4"]];
        let acc = choices[self.rng.below(4)]
            .iter()
            .map(|a| AcceleratorRequest::parse(a).unwrap())
            .collect();
        JobSpec {
            name: format!("job-{}", id.0),
            accelerators: acc,
            nodes: 1 + self.rng.below(4) as u32,
            priority: self.rng.below(3) as i32,
            providers: Vec::new(),
            regions: Vec::new(),
            residency: if self.rng.below(6) == 0 {
                vec!["eu".into()]
            } else {
                Vec::new()
            },
            compliance: Vec::new(),
            spot: match self.rng.below(4) {
                0 => skyward_model::SpotPolicy::Allowed,
                1 => skyward_model::SpotPolicy::Required,
                _ => skyward_model::SpotPolicy::Never,
            },
            // Half declare their work: reservations then know when the
            // runs ahead of a gang end, and backfill uses it.
            hours: (self.rng.below(2) == 0).then(|| (1 + self.rng.below(20)) as f64 / 1_000.0),
            max_runtime_ms: None,
            // Half may be preempted by higher-priority work.
            preemptible: self.rng.below(2) == 0,
            team: ["ml", "search", "infra"][self.rng.below(3)].to_string(),
            recovery: skyward_model::Recovery {
                strategy: [
                    skyward_model::RecoveryStrategy::SameSiteFirst,
                    skyward_model::RecoveryStrategy::SameSiteFirst,
                    skyward_model::RecoveryStrategy::NextRegion,
                    skyward_model::RecoveryStrategy::AnyProvider,
                ][self.rng.below(4)],
                max_restarts: (self.rng.below(4) == 0).then_some(2),
            },
        }
    }

    fn deliver(&mut self, input: Input) {
        if let Input::Started { id, .. } = &input {
            let id = *id;
            if self.core.handle(self.now, input).is_ok() {
                *self.starts_accepted.entry(id).or_insert(0) += 1;
            }
        } else if let Input::Preempted { id, site, .. } = &input {
            let id = *id;
            let before = self.failed_at.insert(id, (site.clone(), self.now));
            if self.core.handle(self.now, input).is_err() {
                match before {
                    Some(b) => self.failed_at.insert(id, b),
                    None => self.failed_at.remove(&id),
                };
            }
        } else {
            let _ = self.core.handle(self.now, input);
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(c) = self.core.poll_command() {
            let latency = 10 + self.rng.below(200) as Millis;
            match c {
                Command::Persist(r) => self.log.push(r),
                Command::Dispatch {
                    id,
                    site,
                    accelerators,
                    attempt,
                    ..
                } => {
                    self.check_failover(id, &site);
                    let t = self.in_order(&site, latency);
                    self.at(
                        t,
                        Ev::ExecDispatch {
                            id,
                            site,
                            acc: accelerators,
                            attempt,
                        },
                    );
                }
                Command::CancelOnSite { id, site, attempt } => {
                    let t = self.in_order(&site, latency);
                    self.at(t, Ev::ExecCancel { id, site, attempt });
                }
                Command::RecordUsage { id, from, .. } => {
                    assert!(
                        self.usage_keys.insert((id, from)),
                        "usage recorded twice for {id:?} from {from}"
                    );
                    *self.usage.entry(id).or_insert(0) += 1;
                }
            }
        }
    }

    fn in_order(&mut self, site: &str, latency: Millis) -> Millis {
        let last = self.site_channel.get(site).copied().unwrap_or(0);
        let t = (self.now + latency).max(last + 1);
        self.site_channel.insert(site.to_string(), t);
        t
    }

    fn step(&mut self) -> bool {
        let next_event = self.events.keys().next().copied();
        let next_timer = self.core.poll_timeout();
        let t = match (next_event, next_timer) {
            (Some((e, _)), Some(tt)) => e.min(tt),
            (Some((e, _)), None) => e,
            (None, Some(tt)) => tt,
            (None, None) => return false,
        };
        self.now = self.now.max(t);
        if next_timer.is_some_and(|tt| tt <= self.now)
            && next_event.is_none_or(|(e, _)| e > self.now || next_timer < Some(e))
        {
            self.core.handle_timeout(self.now);
            self.drain();
        } else if let Some(key) = next_event {
            let ev = self.events.remove(&key).unwrap();
            self.apply(ev);
        }
        self.steps += 1;
        // A preemption takes back only preemptible work, for strictly
        // higher-priority work.
        for (victim, by) in self.core.take_preemptions() {
            let (v, b) = (&self.specs[&victim], &self.specs[&by]);
            assert!(
                v.preemptible,
                "{victim:?} is not preemptible, taken back for {by:?}"
            );
            assert!(
                v.priority < b.priority,
                "{victim:?} (priority {}) taken back for {by:?} (priority {})",
                v.priority,
                b.priority
            );
            self.preemptions += 1;
        }
        self.check();
        true
    }

    fn apply(&mut self, ev: Ev) {
        if let Ok(t) = std::env::var("DST_TRACE") {
            let s = format!("{ev:?}");
            if s.contains(&format!("WorkloadId({t})"))
                || matches!(ev, Ev::Restart | Ev::Crash(_) | Ev::Recover(_))
            {
                eprintln!("{:>7} {s}", self.now);
            }
        }
        match ev {
            Ev::ToCore(i) => {
                if let Input::Commitments { live } = &i {
                    self.commitments = live.clone();
                }
                // A site's report may arrive twice (a resend after a lost
                // acknowledgement): the copy must change nothing.
                let report = matches!(
                    i,
                    Input::DispatchAcked { .. }
                        | Input::Started { .. }
                        | Input::Finished { .. }
                        | Input::Preempted { .. }
                        | Input::Stopped { .. }
                );
                if report && self.faults && self.rng.below(15) == 0 {
                    self.duplicates += 1;
                    let later = self.now + self.rng.below(5_000) as Millis;
                    self.at(later, Ev::ToCore(i.clone()));
                }
                self.deliver(i)
            }
            Ev::Submit(id) => {
                let spec = self.spec(id);
                self.specs.insert(id, spec.clone());
                // Persist before acknowledging, as the runtime must.
                self.log.push(Record::Submitted {
                    id,
                    spec: spec.clone(),
                    at: self.now,
                });
                self.submitted.insert(id);
                self.deliver(Input::Submit { id, spec });
            }
            Ev::Cancel(id) => self.deliver(Input::Cancel { id }),
            Ev::Heartbeats => {
                let alive: Vec<String> = self
                    .execs
                    .iter()
                    .filter(|(_, e)| e.alive)
                    .map(|(n, _)| n.clone())
                    .collect();
                for s in alive {
                    self.deliver(Input::Heartbeat { site: s });
                }
                let next = self.now + 1_000;
                self.at(next, Ev::Heartbeats);
            }
            Ev::ExecDispatch {
                id,
                site,
                acc,
                attempt,
            } => {
                let exec = self.execs.get_mut(&site).unwrap();
                let used: u32 = exec.running.values().map(|v| v.0).sum();
                let fenced = exec.fenced.get(&id).is_some_and(|f| *f >= attempt);
                if !exec.alive
                    || fenced
                    || used + acc > exec.spec.accelerators
                    || exec.running.contains_key(&id)
                {
                    return; // refused or lost: the core's dispatch timeout takes it back
                }
                self.runs += 1;
                let run = self.runs;
                exec.running.insert(id, (acc, run, attempt));
                let (a, b) = (self.rng.below(100) as Millis, self.rng.below(300) as Millis);
                self.at(
                    self.now + a,
                    Ev::ToCore(Input::DispatchAcked {
                        id,
                        site: site.clone(),
                        attempt,
                    }),
                );
                self.at(
                    self.now + a + b,
                    Ev::ToCore(Input::Started {
                        id,
                        site: site.clone(),
                        attempt,
                    }),
                );
                let dur = 2_000 + self.rng.below(20_000) as Millis;
                let kind = match self.rng.below(10) {
                    0 if self.faults => End::Failure,
                    1 if self.faults => End::Preempted,
                    _ => End::Success,
                };
                self.at(
                    self.now + a + b + dur,
                    Ev::ExecEnd {
                        id,
                        site,
                        run,
                        attempt,
                        kind,
                    },
                );
            }
            Ev::ExecCancel { id, site, attempt } => {
                let exec = self.execs.get_mut(&site).unwrap();
                let f = exec.fenced.entry(id).or_insert(0);
                *f = (*f).max(attempt);
                if exec.running.get(&id).is_some_and(|v| v.2 <= attempt) {
                    exec.running.remove(&id);
                    // A live site says so (the core requeues a run it is
                    // preempting only then).
                    if exec.alive {
                        let t = self.now + 1 + self.rng.below(50) as Millis;
                        self.at(t, Ev::ToCore(Input::Stopped { id, site, attempt }));
                    }
                }
            }
            Ev::ExecEnd {
                id,
                site,
                run,
                attempt,
                kind,
            } => {
                let exec = self.execs.get_mut(&site).unwrap();
                if exec.running.get(&id).map(|v| v.1) != Some(run) {
                    return;
                }
                exec.running.remove(&id);
                let input = match kind {
                    End::Success => Input::Finished {
                        id,
                        site,
                        attempt,
                        success: true,
                        ended_at: Some(self.now),
                    },
                    End::Failure => Input::Finished {
                        id,
                        site,
                        attempt,
                        success: false,
                        ended_at: Some(self.now),
                    },
                    End::Preempted => Input::Preempted { id, site, attempt },
                };
                let lat = self.rng.below(200) as Millis;
                self.at(self.now + lat, Ev::ToCore(input));
            }
            Ev::Crash(site) => {
                if !self.faults {
                    return;
                }
                let e = self.execs.get_mut(&site).unwrap();
                e.alive = false;
                e.running.clear();
                let back = self.now + 5_000 + self.rng.below(20_000) as Millis;
                self.at(back, Ev::Recover(site));
            }
            Ev::Recover(site) => {
                let e = self.execs.get_mut(&site).unwrap();
                e.alive = true;
                let spec = e.spec.clone();
                let running = e.running.keys().copied().collect();
                self.deliver(Input::RegisterSite { spec, running });
            }
            Ev::Restart => {
                if !self.faults {
                    return;
                }
                self.core = Core::restore(self.cfg.clone(), &self.log, self.now);
                let live = self.commitments.clone();
                self.deliver(Input::Commitments { live });
                let alive: Vec<(SiteSpec, Vec<WorkloadId>)> = self
                    .execs
                    .values()
                    .filter(|e| e.alive)
                    .map(|e| (e.spec.clone(), e.running.keys().copied().collect()))
                    .collect();
                for (spec, running) in alive {
                    self.deliver(Input::RegisterSite { spec, running });
                }
            }
        }
    }

    /// A dispatch after a loss goes where the workload's recovery
    /// strategy allows: not the lost region (next_region) or provider
    /// (any_provider) within the first backoff after it was told.
    fn check_failover(&mut self, id: WorkloadId, site: &str) {
        let (Some((lost, at)), Some(spec)) = (self.failed_at.get(&id), self.specs.get(&id)) else {
            return;
        };
        let (Some(from), Some(to)) = (self.execs.get(lost), self.execs.get(site)) else {
            return;
        };
        if self.now >= at + self.cfg.failover_backoff_ms {
            return;
        }
        self.failovers_checked += 1;
        match spec.recovery.strategy {
            skyward_model::RecoveryStrategy::NextRegion => assert_ne!(
                from.spec.region, to.spec.region,
                "{id:?} (next_region) went back to the region that lost it"
            ),
            skyward_model::RecoveryStrategy::AnyProvider => assert_ne!(
                from.spec.region.provider, to.spec.region.provider,
                "{id:?} (any_provider) went back to the provider that lost it"
            ),
            skyward_model::RecoveryStrategy::SameSiteFirst => {}
        }
    }

    fn check(&self) {
        // No accepted workload is ever lost.
        let known: BTreeSet<WorkloadId> = self.core.workload_ids().into_iter().collect();
        assert!(
            self.submitted.is_subset(&known),
            "lost workloads: {:?}",
            self.submitted.difference(&known).collect::<Vec<_>>()
        );
        // No team above its quota, in the core's books.
        let mut ml = 0;
        for (name, _, _, _) in self.core.sites() {
            for (id, state, _) in self.core.on_site(&name) {
                if let State::Dispatched { accelerators, .. }
                | State::Running { accelerators, .. } = state
                {
                    if self.specs.get(&id).is_some_and(|s| s.team == "ml") {
                        ml += accelerators;
                    }
                }
            }
        }
        assert!(ml <= QUOTA_ML, "team ml holds {ml} > {QUOTA_ML}");
        // Site capacity never exceeded, in the core's books and for real.
        for (name, used, cap, _) in self.core.sites() {
            assert!(
                cap == 0 || used <= cap,
                "core over capacity on {name}: {used} > {cap}"
            );
        }
        let mut running_on: BTreeMap<WorkloadId, &str> = BTreeMap::new();
        for (name, e) in &self.execs {
            let used: u32 = e.running.values().map(|v| v.0).sum();
            assert!(used <= e.spec.accelerators, "{name} over capacity");
            for id in e.running.keys() {
                // No workload runs on two sites at once.
                if let Some(other) = running_on.insert(*id, name) {
                    panic!("{id:?} runs on {other} and {name}");
                }
            }
        }
    }
}

fn run(seed: u64) {
    let mut w = World::new(seed);
    // Safety phase: faults on.
    while w.now < 120_000 && w.step() {
        assert!(w.steps < 200_000, "seed {seed}: no progress");
    }
    // Liveness phase: faults off, everything recovers, the run must settle.
    w.faults = false;
    let crashed: Vec<String> = w
        .execs
        .iter()
        .filter(|(_, e)| !e.alive)
        .map(|(n, _)| n.clone())
        .collect();
    for s in crashed {
        let t = w.now + 1;
        w.at(t, Ev::Recover(s));
    }
    let deadline = w.now + 600_000;
    while w.now < deadline && w.step() {}
    for id in &w.submitted {
        let state = w.core.state(*id).cloned();
        match state {
            Some(State::Done(_)) => {}
            Some(State::Pending) => {
                // Still pending only if no site can ever take it, and it says why.
                let why = w.core.why_pending(*id).unwrap();
                assert!(
                    !why.is_empty(),
                    "seed {seed}: {id:?} pending with no reason"
                );
                assert!(
                    why.keys()
                        .all(|r| *r != skyward_core::core::REASON_SITE_FULL
                            && *r != skyward_core::core::REASON_SITE_DOWN
                            && *r != skyward_core::REASON_RESERVED),
                    "seed {seed}: {id:?} stuck: {why:?}"
                );
            }
            other => panic!("seed {seed}: {id:?} did not settle: {other:?}"),
        }
        // Usage exactly once per run the core saw start.
        assert_eq!(
            w.usage.get(id).copied().unwrap_or(0),
            w.starts_accepted.get(id).copied().unwrap_or(0),
            "seed {seed}: usage of {id:?}"
        );
    }
    assert!(
        w.submitted
            .iter()
            .any(|id| w.core.state(*id) == Some(&State::Done(Outcome::Succeeded))),
        "seed {seed}: nothing ran"
    );
    PREEMPTIONS.fetch_add(w.preemptions, std::sync::atomic::Ordering::Relaxed);
    FAILOVERS.fetch_add(w.failovers_checked, std::sync::atomic::Ordering::Relaxed);
    DUPLICATES.fetch_add(w.duplicates, std::sync::atomic::Ordering::Relaxed);
}

const QUOTA_ML: u32 = 48;

static PREEMPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FAILOVERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DUPLICATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[test]
fn swarm() {
    let seeds: Vec<u64> = match std::env::var("DST_SEED") {
        Ok(s) => vec![s.parse().expect("DST_SEED must be a number")],
        Err(_) => {
            // DST_SEED_START picks fresh seeds (CI runs 0..300).
            let start: u64 = std::env::var("DST_SEED_START")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let n: u64 = std::env::var("DST_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(300);
            (start..start.saturating_add(n)).collect()
        }
    };
    let many = seeds.len() >= 100;
    for seed in seeds {
        let r = std::panic::catch_unwind(|| run(seed));
        if r.is_err() {
            panic!("DST failed for seed {seed}; reproduce with DST_SEED={seed}");
        }
    }
    // The swarm must exercise preemption, or its invariant checks nothing.
    if many {
        let n = PREEMPTIONS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n > 0, "no preemption in the swarm");
        eprintln!("{n} preemptions checked");
        let f = FAILOVERS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(f > 0, "no failover in the swarm");
        eprintln!("{f} dispatches after a loss checked against the recovery strategy");
        let d = DUPLICATES.load(std::sync::atomic::Ordering::Relaxed);
        assert!(d > 0, "no duplicated report in the swarm");
        eprintln!("{d} site reports delivered twice");
    }
}
