#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic simulation of the core (TigerBeetle's VOPR, in small): one
//! seed drives submissions, cancellations, executor failures, preemptions,
//! site crashes and recoveries, and core restarts rebuilt from the persisted
//! records, under live commitments that change as it runs (the global
//! assignment then moves work towards them). Every site is a remote agent
//! behind the server's [`Link`] (as `skyward agent` and `skyward up` are):
//! commands and reports travel with delays, reports are duplicated,
//! network partitions cut a site off while its runs go on (its reports
//! wait, its commands wait in the outbox) and heal. Workloads checkpoint
//! to stores that only some providers reach, replicated with a lag.
//! Invariants are checked after every step: never two live runs of one
//! workload once a partition has healed, no stale report taken as the
//! live attempt, every attempt within its workload's constraints, no
//! resume from a store its provider cannot reach. Then faults stop, and
//! the run must settle. A failure prints its seed; rerun one seed with
//! `DST_SEED=… cargo test -p skyward-core --test dst`; run others with
//! `DST_SEED_START=… DST_SEEDS=…`.

use skyward_checkpoint::{choose, sync_plan, Reach, StoreState};
use skyward_core::{
    Command, Config, Core, Input, JobSpec, LiveCommitment, Millis, Outcome, Record, SiteSpec,
    State, WorkloadId,
};
use skyward_executor::link::Link;
use skyward_executor::ExecEvent;
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
    /// A report from a site's agent reaches the server.
    FromAgent {
        site: String,
        event: ExecEvent,
    },
    /// An agent's sync: a heartbeat with the runs it holds.
    Sync {
        site: String,
        holds: Vec<(WorkloadId, u32)>,
    },
    Heartbeats,
    Partition(String),
    Heal(String),
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
    /// Since when its network works (None: cut off). Its runs go on
    /// either way.
    connected_since: Option<Millis>,
    /// Commands that reached a cut-off site (resent after the heal).
    inbox: Vec<Ev>,
    /// Reports made while cut off (sent after the heal).
    outbox: Vec<ExecEvent>,
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
    /// The server's view of each site.
    links: BTreeMap<String, Link>,
    /// Agent → server messages arrive in the order sent.
    agent_channel: BTreeMap<String, Millis>,
    /// The newest dispatch per workload: (site, attempt).
    latest: BTreeMap<WorkloadId, (String, u32)>,
    /// Stale reports the core was given (and refused).
    stale_refused: u64,
    /// Stale reports the link kept from the core.
    stale_ignored: u64,
    partitions: u64,
    /// Runs that were still going on a healed site and that it stopped.
    stopped_after_heal: u64,
    /// Each workload's checkpoint stores (primary first), and the step a
    /// run of it reaches (its progress; one step per second of running).
    stores: BTreeMap<WorkloadId, Vec<StoreState>>,
    /// When each run started making progress, and from which step.
    progress: BTreeMap<(WorkloadId, u32), (Millis, u64, String)>,
    resumes_checked: u64,
    /// `DST_TRACE`: the workload whose story is printed.
    trace: Option<String>,
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
                            connected_since: Some(0),
                            inbox: Vec::new(),
                            outbox: Vec::new(),
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
            links: sites()
                .into_iter()
                .map(|s| (s.name.clone(), Link::new(s.accelerators)))
                .collect(),
            agent_channel: BTreeMap::new(),
            latest: BTreeMap::new(),
            stale_refused: 0,
            stale_ignored: 0,
            partitions: 0,
            stopped_after_heal: 0,
            stores: BTreeMap::new(),
            progress: BTreeMap::new(),
            resumes_checked: 0,
            trace: std::env::var("DST_TRACE").ok(),
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
        // Partitions: the site and its runs go on, cut off from the
        // server (longer than the heartbeat timeout or not).
        for _ in 0..4 {
            let t = w.rng.below(90_000) as Millis;
            let site = sites()[w.rng.below(6)].name.clone();
            w.at(t, Ev::Partition(site));
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
            providers: if self.rng.below(8) == 0 {
                vec!["aws".into(), "gcp".into()]
            } else {
                Vec::new()
            },
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
            no_variant: Vec::new(),
            throughput: Default::default(),
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

    /// A site's report, passed on by its link: one of an attempt that is
    /// not the newest dispatched is refused by the core.
    fn deliver_report(&mut self, input: Input) {
        let (id, site, attempt) = match &input {
            Input::DispatchAcked { id, site, attempt }
            | Input::Started { id, site, attempt }
            | Input::Finished {
                id, site, attempt, ..
            }
            | Input::Preempted { id, site, attempt }
            | Input::NeverStarted { id, site, attempt } => (*id, site.clone(), *attempt),
            _ => return self.deliver(input),
        };
        if self.latest.get(&id) != Some(&(site.clone(), attempt)) {
            let r = self.core.handle(self.now, input.clone());
            assert!(
                r.is_err(),
                "stale report taken as the live attempt: {input:?}, newest {:?}",
                self.latest.get(&id)
            );
            self.stale_refused += 1;
            return self.drain();
        }
        self.deliver(input)
    }

    /// What the agent of `site` reports, judged by the server's link.
    fn report(
        &mut self,
        site: &str,
        events: Vec<ExecEvent>,
        holds: Option<Vec<(WorkloadId, u32)>>,
    ) {
        let r = self
            .links
            .get_mut(site)
            .unwrap()
            .reconcile(events, holds.as_deref());
        for (id, attempt) in r.cancels {
            let latency = 10 + self.rng.below(200) as Millis;
            self.send_agent(
                site,
                latency,
                Ev::ExecCancel {
                    id,
                    site: site.to_string(),
                    attempt,
                },
            );
        }
        self.stale_ignored += r
            .notes
            .iter()
            .filter(|n| matches!(n, skyward_executor::link::Note::Ignored { .. }))
            .count() as u64;
        for (id, attempt) in r.stopped {
            let site = site.to_string();
            self.deliver(Input::Stopped { id, site, attempt });
        }
        for e in r.events {
            let input = skyward_executor::link::core_input(site, &e);
            self.deliver_report(input);
        }
    }

    fn drain(&mut self) {
        // Inputs the runtime gives the core after acting on a command.
        let mut then = Vec::new();
        while let Some(c) = self.core.poll_command() {
            if let Some(t) = &self.trace {
                let s = format!("{c:?}");
                if s.contains(&format!("WorkloadId({t})")) && !s.starts_with("Persist") {
                    eprintln!("{:>7}   core: {s}", self.now);
                }
            }
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
                    self.check_constraints(id, &site);
                    self.latest.insert(id, (site.clone(), attempt));
                    self.resume(id, &site, attempt);
                    let link = self.links.get_mut(&site).unwrap();
                    match link.dispatch(&site, id, attempt, accelerators) {
                        Ok(()) => self.send_agent(
                            &site.clone(),
                            latency,
                            Ev::ExecDispatch {
                                id,
                                site,
                                acc: accelerators,
                                attempt,
                            },
                        ),
                        // As the runtime: requeued.
                        Err(_) => then.push(Input::Preempted { id, site, attempt }),
                    }
                }
                Command::CancelOnSite { id, site, attempt } => {
                    // The core hears that it stopped when the agent says
                    // so (through the link), not before.
                    if let Some(l) = self.links.get_mut(&site) {
                        l.cancel(id, attempt);
                    }
                    self.send_agent(&site.clone(), latency, Ev::ExecCancel { id, site, attempt });
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
        for i in then {
            self.deliver(i);
        }
    }

    /// A command on its way to a site's agent (in order per site).
    fn send_agent(&mut self, site: &str, latency: Millis, ev: Ev) {
        let t = self.in_order(site, latency);
        self.at(t, ev);
    }

    /// A report on its way from a site's agent (in order per site).
    fn send_server(&mut self, site: &str, delay: Millis, event: ExecEvent) {
        let last = self.agent_channel.get(site).copied().unwrap_or(0);
        let t = (self.now + delay).max(last + 1);
        self.agent_channel.insert(site.to_string(), t);
        self.at(
            t,
            Ev::FromAgent {
                site: site.to_string(),
                event,
            },
        );
    }

    fn connected(&self, site: &str) -> bool {
        self.execs[site].connected_since.is_some()
    }

    /// An attempt goes only where its workload may run (checked by hand
    /// here, not with the core's own filter).
    fn check_constraints(&self, id: WorkloadId, site: &str) {
        let (spec, s) = (&self.specs[&id], &self.execs[site].spec);
        assert!(
            spec.accelerators.iter().any(|a| a.name == s.accelerator),
            "{id:?} on {site}: {} is not among {:?}",
            s.accelerator,
            spec.accelerators
        );
        let eu = s.region.region.starts_with("europe-");
        assert!(
            spec.residency.is_empty() || eu,
            "{id:?} (EU only) on {site}"
        );
        assert!(
            spec.providers.is_empty() || spec.providers.contains(&s.region.provider),
            "{id:?} (providers {:?}) on {site}",
            spec.providers
        );
        match spec.spot {
            skyward_model::SpotPolicy::Required => assert!(s.spot, "{id:?} (spot only) on {site}"),
            skyward_model::SpotPolicy::Never => assert!(!s.spot, "{id:?} (no spot) on {site}"),
            skyward_model::SpotPolicy::Allowed => {}
        }
    }

    /// The checkpoint an attempt resumes from: the server's choice, which
    /// must be a store its provider reaches, holding the newest step of
    /// all the stores it reaches.
    fn resume(&mut self, id: WorkloadId, site: &str, attempt: u32) {
        let provider = self.execs[site].spec.region.provider.clone();
        let stores = &self.stores[&id];
        let from = match choose(&provider, stores) {
            Some(r) => {
                let store = stores.iter().find(|s| s.uri == r.store).unwrap();
                assert!(
                    store.reach.allows(&provider),
                    "{id:?} on {site} resumes from {}, which {provider} cannot reach",
                    r.store
                );
                let best = stores
                    .iter()
                    .filter(|s| s.reach.allows(&provider))
                    .filter_map(|s| s.newest)
                    .max();
                assert_eq!(r.step, best, "{id:?} on {site}: not the newest reachable");
                self.resumes_checked += 1;
                (r.step.unwrap_or(0), r.store)
            }
            None => {
                assert!(
                    stores.iter().all(|s| !s.reach.allows(&provider)),
                    "{id:?} on {site}: a reachable store was not chosen"
                );
                (0, String::new())
            }
        };
        self.progress
            .insert((id, attempt), (Millis::MAX, from.0, from.1));
    }

    /// Runs write a checkpoint each second of running to their store (a
    /// cut-off site reaches no store; only the live attempt's are
    /// recorded, as the server's scan does); stores catch up with each
    /// other with a lag.
    fn checkpoint(&mut self) {
        let now = self.now;
        for (name, e) in &self.execs {
            if e.connected_since.is_none() {
                continue;
            }
            for (id, (_, _, attempt)) in &e.running {
                if self.latest.get(id) != Some(&(name.clone(), *attempt)) {
                    continue;
                }
                let Some((since, from, store)) = self.progress.get(&(*id, *attempt)) else {
                    continue;
                };
                if *since == Millis::MAX || store.is_empty() {
                    continue;
                }
                let step = from + now.saturating_sub(*since) / 1_000;
                if let Some(s) = self
                    .stores
                    .get_mut(id)
                    .and_then(|v| v.iter_mut().find(|s| s.uri == *store))
                {
                    s.newest = s.newest.max(Some(step));
                }
            }
        }
        let ids: Vec<WorkloadId> = self.stores.keys().copied().collect();
        for id in ids {
            if self.rng.below(3) != 0 {
                continue; // replication lags
            }
            let plan = sync_plan(&self.stores[&id]);
            let stores = self.stores.get_mut(&id).unwrap();
            for c in plan {
                if let Some(s) = stores.iter_mut().find(|s| s.uri == c.to) {
                    s.newest = s.newest.max(Some(c.step));
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
        if let Some(t) = &self.trace {
            let s = format!("{ev:?}");
            if s.contains(&format!("WorkloadId({t})"))
                || matches!(
                    ev,
                    Ev::Restart | Ev::Crash(_) | Ev::Recover(_) | Ev::Partition(_) | Ev::Heal(_)
                )
            {
                eprintln!("{:>7} {s}", self.now);
            }
        }
        match ev {
            Ev::ToCore(i) => {
                if let Input::Commitments { live } = &i {
                    self.commitments = live.clone();
                }
                self.deliver(i)
            }
            Ev::FromAgent { site, event } => {
                if !self.connected(&site) {
                    // Not through: the agent sends it again after the heal.
                    self.execs.get_mut(&site).unwrap().outbox.push(event);
                    return;
                }
                // A report may arrive twice (a resend after a lost
                // acknowledgement): the copy must change nothing.
                if self.faults && self.rng.below(15) == 0 {
                    self.duplicates += 1;
                    // Out of band: it does not hold up what follows.
                    let later = self.now + 1 + self.rng.below(5_000) as Millis;
                    let copy = Ev::FromAgent {
                        site: site.clone(),
                        event: event.clone(),
                    };
                    self.at(later, copy);
                }
                self.report(&site, vec![event], None);
            }
            Ev::Sync { site, holds } => {
                if !self.connected(&site) || !self.execs[&site].alive {
                    return;
                }
                self.deliver(Input::Heartbeat { site: site.clone() });
                self.report(&site, Vec::new(), Some(holds));
            }
            Ev::Submit(id) => {
                let spec = self.spec(id);
                self.specs.insert(id, spec.clone());
                let stores = self.stores_for(id);
                self.stores.insert(id, stores);
                // Persist before acknowledging, as the runtime must.
                self.log.push(Record::Submitted {
                    id,
                    spec: Box::new(spec.clone()),
                    at: self.now,
                });
                self.submitted.insert(id);
                self.deliver(Input::Submit { id, spec });
            }
            Ev::Cancel(id) => self.deliver(Input::Cancel { id }),
            Ev::Heartbeats => {
                self.checkpoint();
                let syncing: Vec<(String, Vec<(WorkloadId, u32)>)> = self
                    .execs
                    .iter()
                    .filter(|(_, e)| e.alive && e.connected_since.is_some())
                    .map(|(n, e)| {
                        (
                            n.clone(),
                            e.running.iter().map(|(id, v)| (*id, v.2)).collect(),
                        )
                    })
                    .collect();
                for (site, holds) in syncing {
                    let t = {
                        let last = self.agent_channel.get(&site).copied().unwrap_or(0);
                        let t = (self.now + 1 + self.rng.below(100) as Millis).max(last + 1);
                        self.agent_channel.insert(site.clone(), t);
                        t
                    };
                    self.at(t, Ev::Sync { site, holds });
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
                if !self.connected(&site) {
                    let ev = Ev::ExecDispatch {
                        id,
                        site: site.clone(),
                        acc,
                        attempt,
                    };
                    self.execs.get_mut(&site).unwrap().inbox.push(ev);
                    return;
                }
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
                if let Some(p) = self.progress.get_mut(&(id, attempt)) {
                    p.0 = self.now + a + b;
                }
                self.send_server(&site, a, ExecEvent::Acked { id, attempt });
                self.send_server(&site, a + b, ExecEvent::Started { id, attempt });
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
                if !self.connected(&site) {
                    let ev = Ev::ExecCancel {
                        id,
                        site: site.clone(),
                        attempt,
                    };
                    self.execs.get_mut(&site).unwrap().inbox.push(ev);
                    return;
                }
                let healed = self.execs[&site]
                    .connected_since
                    .is_some_and(|t| t > 0 && self.now < t + GRACE_MS);
                let exec = self.execs.get_mut(&site).unwrap();
                let f = exec.fenced.entry(id).or_insert(0);
                *f = (*f).max(attempt);
                if exec.running.get(&id).is_some_and(|v| v.2 <= attempt) {
                    exec.running.remove(&id);
                    if healed {
                        self.stopped_after_heal += 1;
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
                let event = match kind {
                    End::Success | End::Failure => ExecEvent::Finished {
                        id,
                        attempt,
                        success: matches!(kind, End::Success),
                        exit_code: Some(if matches!(kind, End::Success) { 0 } else { 1 }),
                        ended_at_ms: Some(self.now),
                        note: None,
                    },
                    End::Preempted => ExecEvent::Lost {
                        id,
                        attempt,
                        started: true,
                    },
                };
                let lat = self.rng.below(200) as Millis;
                self.send_server(&site, lat, event);
            }
            Ev::Crash(site) => {
                if !self.faults {
                    return;
                }
                let e = self.execs.get_mut(&site).unwrap();
                e.alive = false;
                e.running.clear();
                // The agent's unsent reports die with it.
                e.outbox.clear();
                let back = self.now + 5_000 + self.rng.below(20_000) as Millis;
                self.at(back, Ev::Recover(site));
            }
            Ev::Recover(site) => {
                // The agent starts again with nothing and syncs: the link
                // finds what it lost.
                self.execs.get_mut(&site).unwrap().alive = true;
            }
            Ev::Partition(site) => {
                if !self.faults || !self.connected(&site) {
                    return;
                }
                self.partitions += 1;
                self.execs.get_mut(&site).unwrap().connected_since = None;
                let back = self.now + 1_000 + self.rng.below(12_000) as Millis;
                self.at(back, Ev::Heal(site));
            }
            Ev::Heal(site) => {
                if self.connected(&site) {
                    return;
                }
                let e = self.execs.get_mut(&site).unwrap();
                e.connected_since = Some(self.now);
                let (inbox, outbox) = (std::mem::take(&mut e.inbox), std::mem::take(&mut e.outbox));
                // The outbox's commands are sent again, in order; the
                // agent sends what it reported meanwhile.
                for ev in inbox {
                    let latency = 10 + self.rng.below(200) as Millis;
                    self.send_agent(&site, latency, ev);
                }
                for event in outbox {
                    let latency = 10 + self.rng.below(200) as Millis;
                    self.send_server(&site, latency, event);
                }
            }
            Ev::Restart => {
                if !self.faults {
                    return;
                }
                self.core = Core::restore(self.cfg.clone(), &self.log, self.now);
                let live = self.commitments.clone();
                self.deliver(Input::Commitments { live });
                // The server's links are rebuilt from what the core
                // believes runs where; the outboxes are lost with it.
                for s in sites() {
                    let mut link = Link::new(s.accelerators);
                    for (id, state, attempt) in self.core.on_site(&s.name) {
                        if let State::Dispatched { accelerators, .. }
                        | State::Running { accelerators, .. } = state
                        {
                            let started = matches!(state, State::Running { .. });
                            link.adopt(id, attempt, accelerators, started);
                        }
                    }
                    self.links.insert(s.name.clone(), link);
                    self.execs.get_mut(&s.name).unwrap().inbox.clear();
                }
                // Every configured site registers with the runs adopted;
                // the agents' syncs say the rest.
                for spec in sites() {
                    let running = self.links[&spec.name].running();
                    self.deliver(Input::RegisterSite { spec, running });
                }
            }
        }
    }

    /// A workload's stores: S3 (reached from AWS and OCI), Azure Blob
    /// (from anywhere), GCS (from GCP only); a primary and sometimes a
    /// replica.
    fn stores_for(&mut self, id: WorkloadId) -> Vec<StoreState> {
        let all = [
            ("s3", "aws", Reach::Only(vec!["aws".into(), "oci".into()])),
            ("az", "azure", Reach::All),
            ("gs", "gcp", Reach::Only(vec!["gcp".into()])),
        ];
        let first = self.rng.below(3);
        let mut out = vec![first];
        if self.rng.below(3) != 0 {
            out.push((first + 1 + self.rng.below(2)) % 3);
        }
        out.into_iter()
            .map(|i| StoreState {
                uri: format!("{}://ckpt/{}", all[i].0, id.0),
                home: Some(all[i].1.into()),
                reach: all[i].2.clone(),
                newest: None,
            })
            .collect()
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
        for id in &self.submitted {
            assert!(self.core.state(*id).is_some(), "lost workload {id:?}");
        }
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
        // The core's index of held work agrees with every workload's
        // state, and with each site's accelerators in use.
        let mut truth: BTreeMap<String, Vec<WorkloadId>> = BTreeMap::new();
        for id in &self.submitted {
            if let Some(State::Dispatched { site, .. } | State::Running { site, .. }) =
                self.core.state(*id)
            {
                truth.entry(site.clone()).or_default().push(*id);
            }
        }
        for (name, used, _, _) in self.core.sites() {
            let on: Vec<(WorkloadId, State, u32)> = self.core.on_site(&name);
            let mut ids: Vec<WorkloadId> = on.iter().map(|(id, _, _)| *id).collect();
            ids.sort();
            let mut want = truth.remove(&name).unwrap_or_default();
            want.sort();
            assert_eq!(ids, want, "held index of {name}");
            let acc: u32 = on
                .iter()
                .map(|(_, s, _)| match s {
                    State::Dispatched { accelerators, .. }
                    | State::Running { accelerators, .. } => *accelerators,
                    _ => 0,
                })
                .sum();
            assert_eq!(acc, used, "held accelerators on {name}");
        }
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
                // No workload runs on two sites at once, except while one
                // of them is cut off (the core gave its run up and placed
                // it again) and shortly after it heals, until the stop
                // gets there.
                if let Some(other) = running_on.insert(*id, name) {
                    let excused = |site: &str| {
                        self.execs[site]
                            .connected_since
                            .is_none_or(|t| t > 0 && self.now < t + GRACE_MS)
                    };
                    assert!(
                        excused(other) || excused(name),
                        "{id:?} runs on {other} and {name}"
                    );
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
    let cut: Vec<String> = w
        .execs
        .iter()
        .filter(|(_, e)| e.connected_since.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    for s in cut {
        let t = w.now + 1;
        w.at(t, Ev::Heal(s));
    }
    let deadline = w.now + 600_000;
    while w.now < deadline && w.step() {
        // Settled: everything ended and nothing runs anywhere.
        if w.steps.is_multiple_of(512)
            && w.execs.values().all(|e| e.running.is_empty())
            && w.submitted
                .iter()
                .all(|id| matches!(w.core.state(*id), Some(State::Done(_))))
        {
            break;
        }
    }
    if std::env::var("DST_TRACE").is_ok() {
        for id in &w.submitted {
            let st = w.core.state(*id);
            if !matches!(st, Some(State::Done(_))) {
                eprintln!("end: {id:?} {st:?} {:?}", w.core.why_pending(*id));
            }
        }
        for (name, e) in &w.execs {
            eprintln!(
                "end: site {name} alive {} connected {:?} core {:?}",
                e.alive,
                e.connected_since,
                w.core.sites().into_iter().find(|s| s.0 == *name)
            );
        }
    }
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
    PARTITIONS.fetch_add(w.partitions, std::sync::atomic::Ordering::Relaxed);
    STOPPED_AFTER_HEAL.fetch_add(w.stopped_after_heal, std::sync::atomic::Ordering::Relaxed);
    STALE_REFUSED.fetch_add(
        w.stale_refused + w.stale_ignored,
        std::sync::atomic::Ordering::Relaxed,
    );
    RESUMES.fetch_add(w.resumes_checked, std::sync::atomic::Ordering::Relaxed);
}

const QUOTA_ML: u32 = 48;
/// How long after a heal a run given up on may still go on (its stop on
/// the way): the resent outbox, or the next sync's judgement (one second)
/// and the cancel's trip.
const GRACE_MS: Millis = 2_500;

static PREEMPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FAILOVERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DUPLICATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PARTITIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static STOPPED_AFTER_HEAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static STALE_REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static RESUMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
        for (what, n) in [
            ("partitions", &PARTITIONS),
            ("runs stopped on a healed site", &STOPPED_AFTER_HEAL),
            (
                "stale reports refused (by the link or the core)",
                &STALE_REFUSED,
            ),
            ("resumes checked against the stores' reach", &RESUMES),
        ] {
            let n = n.load(std::sync::atomic::Ordering::Relaxed);
            assert!(n > 0, "no {what} in the swarm");
            eprintln!("{n} {what}");
        }
    }
}
