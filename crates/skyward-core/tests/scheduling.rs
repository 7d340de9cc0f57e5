#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The core's scheduling rules, driven directly (the harness layer).

use skyward_core::{Command, Config, Core, Input, JobSpec, Outcome, SiteSpec, State, WorkloadId};
use skyward_model::{AcceleratorRequest, RegionKey, Usd};

fn site(name: &str, p: &str, r: &str, acc: &str, n: u32, price: i64) -> Input {
    Input::RegisterSite {
        spec: SiteSpec {
            name: name.into(),
            region: RegionKey::new(p, r),
            accelerator: acc.into(),
            accelerators: n,
            price_usd_per_accelerator_hour: Usd::from_dollars(price),
            spot: false,
            prepaid: false,
        },
        running: vec![],
    }
}

fn job(acc: &str, nodes: u32, priority: i32) -> JobSpec {
    JobSpec {
        name: "j".into(),
        accelerators: vec![AcceleratorRequest::parse(acc).unwrap()],
        nodes,
        priority,
        providers: vec![],
        regions: vec![],
        residency: vec![],
        compliance: vec![],
        spot: skyward_model::SpotPolicy::Never,
        hours: None,
        max_runtime_ms: None,
        preemptible: false,
        team: String::new(),
        recovery: Default::default(),
        no_variant: Vec::new(),
        throughput: Default::default(),
    }
}

fn dispatches(core: &mut Core) -> Vec<(u64, String, u32)> {
    let mut out = Vec::new();
    while let Some(c) = core.poll_command() {
        if let Command::Dispatch {
            id,
            site,
            accelerators,
            ..
        } = c
        {
            out.push((id.0, site, accelerators));
        }
    }
    out
}

#[test]
fn priority_then_fifo_and_gangs_whole_on_the_cheapest_site() {
    let mut core = Core::new(Config::default());
    core.handle(0, site("cheap", "aws", "us-east-1", "H100", 16, 4))
        .unwrap();
    core.handle(0, site("dear", "gcp", "us-central1", "H100", 16, 9))
        .unwrap();
    // 1 and 2 have priority 0, 3 has priority 5; each needs 16 H100.
    for (id, p) in [(1, 0), (2, 0), (3, 5)] {
        core.handle(
            0,
            Input::Submit {
                id: WorkloadId(id),
                spec: job("H100:8", 2, p),
            },
        )
        .unwrap();
    }
    core.handle(
        0,
        Input::Submit {
            id: WorkloadId(4),
            spec: job("H100:8", 4, 9),
        },
    )
    .unwrap();
    core.handle_timeout(0);
    // 4 (32 H100) fits nowhere whole; 3 goes first to the cheapest site, then 1.
    assert_eq!(
        dispatches(&mut core),
        vec![(3, "cheap".into(), 16), (1, "dear".into(), 16)]
    );
    assert_eq!(core.state(WorkloadId(2)), Some(&State::Pending));
    let why = core.why_pending(WorkloadId(4)).unwrap();
    assert_eq!(
        why.get(skyward_core::core::REASON_SITE_TOO_SMALL),
        Some(&2),
        "{why:?}"
    );
    let why2 = core.why_pending(WorkloadId(2)).unwrap();
    assert_eq!(
        why2.get(skyward_core::core::REASON_SITE_FULL),
        Some(&2),
        "{why2:?}"
    );
    assert_eq!(
        core.poll_timeout(),
        Some(1_000),
        "next cycle after placements"
    );
}

#[test]
fn constraints_and_cancellation() {
    let mut core = Core::new(Config::default());
    core.handle(0, site("us", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    core.handle(0, site("eu", "gcp", "europe-west4", "H100", 8, 5))
        .unwrap();
    let mut eu = job("H100:8", 1, 0);
    eu.residency = vec!["eu".into()];
    core.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: eu,
        },
    )
    .unwrap();
    core.handle_timeout(0);
    assert_eq!(dispatches(&mut core), vec![(1, "eu".into(), 8)]);
    // Running, then cancelled: usage is recorded once and the site is told.
    core.handle(
        10,
        Input::Started {
            id: WorkloadId(1),
            site: "eu".into(),
            attempt: 1,
        },
    )
    .unwrap();
    core.handle(3_600_010, Input::Cancel { id: WorkloadId(1) })
        .unwrap();
    let cmds: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
    let usage: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::RecordUsage {
                accelerator_hours,
                cost_usd,
                ..
            } => Some((*accelerator_hours, *cost_usd)),
            _ => None,
        })
        .collect();
    assert_eq!(usage, vec![(8.0, Usd::from_dollars(40))]);
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::CancelOnSite { .. })));
    assert_eq!(
        core.state(WorkloadId(1)),
        Some(&State::Done(Outcome::Cancelled))
    );
    // Stale and unknown inputs change nothing and say why.
    assert!(core
        .handle(
            1,
            Input::Finished {
                id: WorkloadId(1),
                site: "eu".into(),
                attempt: 1,
                success: true,
                ended_at: None,
            }
        )
        .is_err());
    assert!(core
        .handle(1, Input::Cancel { id: WorkloadId(99) })
        .is_err());
    assert!(core
        .handle(
            1,
            Input::Submit {
                id: WorkloadId(1),
                spec: job("H100:8", 1, 0)
            }
        )
        .is_err());
}

#[test]
fn a_lost_site_gives_its_work_back() {
    let cfg = Config {
        heartbeat_timeout_ms: 1_000,
        ..Config::default()
    };
    let mut core = Core::new(cfg);
    core.handle(0, site("a", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    core.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: job("H100:8", 1, 0),
        },
    )
    .unwrap();
    core.handle_timeout(0);
    dispatches(&mut core);
    core.handle(
        5,
        Input::Started {
            id: WorkloadId(1),
            site: "a".into(),
            attempt: 1,
        },
    )
    .unwrap();
    assert_eq!(core.poll_timeout(), Some(1_000));
    core.handle_timeout(1_000);
    assert_eq!(core.state(WorkloadId(1)), Some(&State::Pending));
    // It comes back: the work is placed again, as attempt 2.
    core.handle(2_000, site("a", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    core.handle_timeout(2_000);
    let again: Vec<Command> = std::iter::from_fn(|| core.poll_command())
        .filter(|c| matches!(c, Command::Dispatch { .. }))
        .collect();
    assert!(
        matches!(again.as_slice(), [Command::Dispatch { attempt: 2, .. }]),
        "{again:?}"
    );
}

/// Costs as in `skyward plan`: a slower alternative needs more hours, so
/// a cheaper hourly price is not always the cheaper run; spot sites only
/// take work that allows spot, and work that requires spot only goes there.
#[test]
fn speed_scaled_cost_and_spot_policy() {
    let mut core = Core::new(Config::default());
    // A100 (312 dense BF16 TFLOPS) at $3/h vs H100 (989) at $6/h: the H100
    // run costs 6 × 1 = 6 per unit of work, the A100 run 3 × 989/312 ≈ 9.5.
    core.handle(0, site("a100", "aws", "us-east-1", "A100", 8, 3))
        .unwrap();
    core.handle(0, site("h100", "azure", "eastus", "H100", 8, 6))
        .unwrap();
    let mut spot_site = site("h100-spot", "gcp", "us-central1", "H100", 16, 2);
    if let Input::RegisterSite { spec, .. } = &mut spot_site {
        spec.spot = true;
    }
    core.handle(0, spot_site).unwrap();
    let mut either = job("H100:8", 1, 0);
    either
        .accelerators
        .push(AcceleratorRequest::parse("A100:8").unwrap());
    let mut spot_ok = job("H100:8", 1, 0);
    spot_ok.spot = skyward_model::SpotPolicy::Allowed;
    let mut spot_only = job("A100:8", 1, 0);
    spot_only.spot = skyward_model::SpotPolicy::Required;
    for (id, spec) in [(1, either), (2, spot_ok), (3, spot_only)] {
        core.handle(
            0,
            Input::Submit {
                id: WorkloadId(id),
                spec,
            },
        )
        .unwrap();
    }
    core.handle_timeout(0);
    assert_eq!(
        dispatches(&mut core),
        vec![(1, "h100".into(), 8), (2, "h100-spot".into(), 8)]
    );
    let why = core.why_pending(WorkloadId(3)).unwrap();
    assert_eq!(
        why.get(skyward_core::core::REASON_SPOT_REQUIRED),
        Some(&1),
        "{why:?}"
    );
    assert_eq!(
        why.get(skyward_placement::reasons::WRONG_ACCELERATOR),
        Some(&2),
        "{why:?}"
    );
}

/// Every pending workload gets its reasons in the cycle that leaves it
/// pending, whatever else that cycle placed.
#[test]
fn reasons_for_every_workload_a_cycle_leaves_pending() {
    let mut core = Core::new(Config::default());
    core.handle(0, site("aws", "aws", "us-east-1", "H100", 8, 7))
        .unwrap();
    core.handle(0, site("azure", "azure", "eastus", "H100", 8, 7))
        .unwrap();
    let mut eu = site("gcp", "gcp", "europe-west4", "H100", 8, 3);
    if let Input::RegisterSite { spec, .. } = &mut eu {
        spec.spot = true;
    }
    core.handle(0, eu).unwrap();
    let mut eu_train = job("H100:8", 1, 0);
    eu_train.residency = vec!["eu".into()];
    eu_train.spot = skyward_model::SpotPolicy::Allowed;
    let mut us = job("H100:4", 1, 5);
    us.residency = vec!["us".into()];
    let big = job("H100:8", 2, 0);
    let mut long = job("H100:2", 1, 0);
    long.providers = vec!["aws".into()];
    let mut eu_od = job("H100:1", 1, -1);
    eu_od.residency = vec!["eu".into()];
    for (i, (t, s)) in [(0, eu_train), (1, us), (2, big), (3, long), (4, eu_od)]
        .into_iter()
        .enumerate()
    {
        core.handle(
            t,
            Input::Submit {
                id: WorkloadId(i as u64 + 1),
                spec: s,
            },
        )
        .unwrap();
        core.handle_timeout(t);
    }
    for t in [5, 1_000, 2_000] {
        core.handle_timeout(t);
    }
    let why = core.why_pending(WorkloadId(5)).unwrap();
    assert!(!why.is_empty(), "{why:?}");
    // The gang (3) waits ahead of it: priority 0 before -1.
    assert_eq!(core.pending_position(WorkloadId(3)), Some(0));
    assert_eq!(core.pending_position(WorkloadId(5)), Some(1));
    assert_eq!(core.pending_position(WorkloadId(1)), None, "placed");
}

/// A core whose sites never time out (these tests step hours at a time
/// without heartbeats).
fn quiet_core() -> Core {
    Core::new(Config {
        heartbeat_timeout_ms: u64::MAX / 4,
        ..Config::default()
    })
}

fn submit(core: &mut Core, now: u64, id: u64, spec: JobSpec) {
    core.handle(
        now,
        Input::Submit {
            id: WorkloadId(id),
            spec,
        },
    )
    .unwrap();
}

fn with_hours(mut spec: JobSpec, hours: f64) -> JobSpec {
    spec.hours = Some(hours);
    spec
}

/// Starts every dispatch the core asks for at `now`.
fn start_all(core: &mut Core, now: u64) -> Vec<(u64, String, u32)> {
    let mut started = Vec::new();
    let mut cmds = Vec::new();
    while let Some(c) = core.poll_command() {
        cmds.push(c);
    }
    for c in cmds {
        if let Command::Dispatch {
            id,
            site,
            accelerators,
            attempt,
            ..
        } = c
        {
            core.handle(
                now,
                Input::Started {
                    id,
                    site: site.clone(),
                    attempt,
                },
            )
            .unwrap();
            started.push((id.0, site, accelerators));
        }
    }
    started
}

const HOUR_MS: u64 = 3_600_000;

/// Site "s" reports workload `id`'s run `attempt` finished well.
fn finish(core: &mut Core, now: u64, id: WorkloadId, attempt: u32, ended_at: Option<u64>) {
    core.handle(
        now,
        Input::Finished {
            id,
            site: "s".into(),
            attempt,
            success: true,
            ended_at,
        },
    )
    .unwrap();
}

#[test]
fn a_run_is_billed_to_its_own_end_not_to_when_the_core_heard_of_it() {
    // A 2 s run; the server hears of its end 30 s later (it was down).
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 36))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:8", 1, 0));
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 1_000).len(), 1);
    finish(&mut core, 32_000, WorkloadId(1), 1, Some(3_000));
    let usage: Vec<_> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|c| match c {
            Command::RecordUsage {
                from,
                to,
                cost_usd,
                accelerator_hours,
                ..
            } => Some((from, to, cost_usd, accelerator_hours)),
            _ => None,
        })
        .collect();
    // 2 s × 8 accelerators × $36/h = $0.16 exactly.
    assert_eq!(usage.len(), 1);
    let (from, to, cost, acc_h) = usage[0];
    assert_eq!((from, to), (1_000, 3_000));
    assert_eq!(cost, Usd::from_micros(160_000));
    assert!((acc_h - 16.0 / 3600.0).abs() < 1e-12);
    // An end the site dates before the start (clock skew) bills nothing
    // negative; one dated in the future bills no more than until now.
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 36))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:8", 1, 0));
    submit(&mut core, 0, 2, job("H100:8", 1, 0));
    core.handle_timeout(0);
    start_all(&mut core, 1_000);
    finish(&mut core, 5_000, WorkloadId(1), 1, Some(10));
    let spans: Vec<(u64, u64)> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|c| match c {
            Command::RecordUsage { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(spans, vec![(1_000, 1_000)]);
}

#[test]
fn a_waiting_gang_holds_capacity_against_later_lower_priority_work() {
    // The case: an 8-GPU gang (priority 0) waits for a site whose
    // other half runs a job without a walltime; a priority −3 job
    // submitted later must not take the half that frees first.
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:4", 1, 0)); // runs, no walltime
    submit(&mut core, 0, 2, job("H100:4", 1, 0)); // runs, no walltime
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0).len(), 2);
    submit(&mut core, 10, 3, job("H100:8", 1, 0)); // the gang
    core.handle_timeout(10);
    assert!(dispatches(&mut core).is_empty());
    // Job 1 ends; 4 free. A later low-priority 4-GPU job arrives.
    finish(&mut core, 20, WorkloadId(1), 1, None);
    submit(&mut core, 20, 4, job("H100:4", 1, -3));
    core.handle_timeout(20);
    assert!(
        dispatches(&mut core).is_empty(),
        "the low-priority job took capacity the gang waits for"
    );
    let why = core.why_pending(WorkloadId(4)).unwrap();
    assert_eq!(why.get(skyward_core::REASON_RESERVED), Some(&1));
    // Job 2 ends: the gang starts first, then the small one waits on it.
    finish(&mut core, 30, WorkloadId(2), 1, None);
    core.handle_timeout(30);
    assert_eq!(dispatches(&mut core), vec![(3, "s".into(), 8)]);
}

#[test]
fn small_jobs_backfill_only_when_they_end_before_the_gang_can_start() {
    // Site of 8. Job 1 (4 GPUs, 10 h walltime) runs. The gang (8 GPUs)
    // can start at 10 h. A 4-GPU job of 2 h fits before; one of 12 h does
    // not; a job with no walltime does not either.
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    submit(&mut core, 0, 1, with_hours(job("H100:4", 1, 0), 10.0));
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0).len(), 1);
    // (Submitted after the cycles' minimum gap, so they get a cycle.)
    submit(&mut core, 10, 2, job("H100:8", 1, 5)); // gang, ahead of all below
    submit(&mut core, 10, 3, with_hours(job("H100:4", 1, 0), 12.0));
    submit(&mut core, 10, 4, job("H100:4", 1, 0));
    submit(&mut core, 10, 5, with_hours(job("H100:4", 1, 0), 2.0));
    core.handle_timeout(10);
    let d: Vec<_> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|c| match c {
            Command::Dispatch {
                id, walltime_ms, ..
            } => Some((id.0, walltime_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(d, vec![(5, Some(2 * HOUR_MS))]);
    assert_eq!(
        core.why_pending(WorkloadId(3))
            .unwrap()
            .get(skyward_core::REASON_RESERVED),
        Some(&1)
    );
}

/// Events bring the next cycle forward (a submission does not wait for
/// `cycle_ms`), but cycles come at most every `cycle_min_gap_ms`, so a
/// burst is placed together.
#[test]
fn events_trigger_cycles_batched_by_the_minimum_gap() {
    let mut core = Core::new(Config {
        cycle_ms: 1_000,
        cycle_min_gap_ms: 5,
        heartbeat_timeout_ms: u64::MAX / 4,
        ..Config::default()
    });
    core.handle(0, site("s", "aws", "us-east-1", "H100", 64, 4))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:1", 1, 0));
    submit(&mut core, 0, 2, job("A100:8", 1, 0)); // fits nowhere: stays queued
    assert_eq!(core.poll_timeout(), Some(0));
    core.handle_timeout(0);
    assert_eq!(dispatches(&mut core).len(), 1);
    // A submission 2 ms later is considered at 5 ms (the gap), not at
    // 1,000 ms (the periodic cycle); three more in between join it.
    submit(&mut core, 2, 3, job("H100:1", 1, 0));
    assert_eq!(core.poll_timeout(), Some(5));
    for id in 4..7 {
        submit(&mut core, 3, id, job("H100:1", 1, 0));
    }
    core.handle_timeout(4);
    assert!(dispatches(&mut core).is_empty());
    core.handle_timeout(5);
    assert_eq!(dispatches(&mut core).len(), 4);
}

#[test]
fn a_stream_of_small_jobs_cannot_starve_a_big_gang() {
    // Same priority, FIFO: the gang came first. Small 2-GPU jobs of 1 h
    // keep arriving; the site has 8. Without a reservation they would
    // keep the site busy forever.
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    submit(&mut core, 0, 1, with_hours(job("H100:2", 1, 0), 1.0));
    core.handle_timeout(0);
    start_all(&mut core, 0);
    submit(&mut core, 1, 2, with_hours(job("H100:8", 1, 0), 1.0));
    let mut next_id = 3;
    let mut gang_started_at = None;
    for step in 1..=20u64 {
        let now = step * HOUR_MS / 2;
        for _ in 0..3 {
            submit(
                &mut core,
                now,
                next_id,
                with_hours(job("H100:2", 1, 0), 1.0),
            );
            next_id += 1;
        }
        // End whatever reached its walltime.
        for (id, state, attempt) in core.on_site("s") {
            if let State::Running { since, .. } = state {
                if since + HOUR_MS <= now {
                    core.handle(
                        now,
                        Input::Finished {
                            id,
                            site: "s".into(),
                            attempt,
                            success: true,
                            ended_at: Some(since + HOUR_MS),
                        },
                    )
                    .unwrap();
                }
            }
        }
        core.handle_timeout(now);
        for (id, _, _) in start_all(&mut core, now) {
            if id == 2 {
                gang_started_at.get_or_insert(now);
            }
        }
    }
    // Job 1 ends at 1 h; the gang starts then.
    assert_eq!(gang_started_at, Some(HOUR_MS));
}

#[test]
fn a_removed_site_stops_its_runs_bills_them_at_its_price_and_requeues_them() {
    let mut core = quiet_core();
    core.handle(0, site("old", "aws", "us-east-1", "H100", 8, 36))
        .unwrap();
    core.handle(0, site("new", "gcp", "us-central1", "H100", 8, 50))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:8", 1, 0));
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0), vec![(1, "old".into(), 8)]);
    core.handle(HOUR_MS / 2, Input::RemoveSite { site: "old".into() })
        .unwrap();
    let cmds: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
    let usage: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::RecordUsage {
                site,
                accelerators,
                cost_usd,
                ..
            } => Some((site.clone(), *accelerators, *cost_usd)),
            _ => None,
        })
        .collect();
    // Half an hour × 8 × $36 = $144.
    assert_eq!(usage, vec![("old".into(), 8, Usd::from_dollars(144))]);
    assert!(cmds.iter().any(|c| matches!(c,
        Command::CancelOnSite { id, site, attempt: 1 } if id.0 == 1 && site == "old")));
    assert_eq!(core.state(WorkloadId(1)), Some(&State::Pending));
    assert!(core.sites().iter().all(|(n, ..)| n != "old"));
    core.handle_timeout(HOUR_MS / 2);
    assert_eq!(dispatches(&mut core), vec![(1, "new".into(), 8)]);
}

/// A dispatch the site never started (the server died between recording
/// the run and starting it) is requeued and not billed, even if the core
/// had marked it running.
#[test]
fn a_run_that_never_started_is_requeued_unbilled() {
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    submit(&mut core, 0, 1, job("H100:8", 1, 0));
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0).len(), 1);
    core.handle(
        HOUR_MS,
        Input::NeverStarted {
            id: WorkloadId(1),
            site: "s".into(),
            attempt: 1,
        },
    )
    .unwrap();
    let cmds: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::RecordUsage { .. })),
        "{cmds:?}"
    );
    assert_eq!(core.state(WorkloadId(1)), Some(&State::Pending));
    assert_eq!(core.sites()[0].1, 0, "its accelerators are free again");
    core.handle_timeout(HOUR_MS);
    assert!(matches!(
        std::iter::from_fn(|| core.poll_command()).find(|c| matches!(c, Command::Dispatch { .. })),
        Some(Command::Dispatch { attempt: 2, .. })
    ));
}

/// Preemption by hand: a site of 8 runs two priority-0 jobs of 4 (one
/// preemptible, started later; one not). A priority-5 job of 4 waits only
/// for capacity: the core asks the site to stop the preemptible one (the
/// non-preemptible one is never asked), requeues it when the site says it
/// stopped, bills its run, and the next cycle starts the priority-5 job.
#[test]
fn higher_priority_work_preempts_only_preemptible_work_once_it_stopped() {
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    let mut keep = job("H100:4", 1, 0);
    keep.preemptible = false;
    submit(&mut core, 0, 1, keep);
    core.handle_timeout(0);
    start_all(&mut core, 0);
    let mut victim = job("H100:4", 1, 0);
    victim.preemptible = true;
    submit(&mut core, 100, 2, victim);
    core.handle_timeout(100);
    start_all(&mut core, 100);
    submit(&mut core, 3_600_100, 3, job("H100:4", 1, 5));
    core.handle_timeout(3_600_100);
    let cmds: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
    let cancels: Vec<u64> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::CancelOnSite { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![2], "{cmds:?}");
    assert!(!cmds.iter().any(|c| matches!(c, Command::Dispatch { .. })));
    assert_eq!(
        core.take_preemptions(),
        vec![(WorkloadId(2), WorkloadId(3))]
    );
    // Still running until the site says it stopped: no double run.
    assert!(matches!(
        core.state(WorkloadId(2)),
        Some(State::Running { .. })
    ));
    core.handle(
        3_600_200,
        Input::Stopped {
            id: WorkloadId(2),
            site: "s".into(),
            attempt: 1,
        },
    )
    .unwrap();
    assert_eq!(core.state(WorkloadId(2)), Some(&State::Pending));
    let usage: Vec<(u64, u64, u64)> = std::iter::from_fn(|| core.poll_command())
        .filter_map(|c| match c {
            Command::RecordUsage { id, from, to, .. } => Some((id.0, from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(usage, vec![(2, 100, 3_600_200)]);
    core.handle_timeout(3_600_300);
    assert_eq!(dispatches(&mut core), vec![(3, "s".into(), 4)]);
    // A second priority-5 job finds nothing preemptible left.
    submit(&mut core, 3_600_400, 4, job("H100:4", 1, 5));
    core.handle_timeout(3_600_400);
    assert!(!std::iter::from_fn(|| core.poll_command())
        .any(|c| matches!(c, Command::CancelOnSite { .. } | Command::Dispatch { .. })));
    assert!(core.take_preemptions().is_empty());
}

fn team_job(acc: &str, team: &str) -> JobSpec {
    JobSpec {
        team: team.into(),
        recovery: Default::default(),
        ..job(acc, 1, 0)
    }
}

/// Fair share by hand: a site of 8; team a queued four 2-GPU jobs before
/// team b's two. Turn by turn by share (equal weights): a1 (a 2), b5
/// (b 2), a2 (a 4), b6 (b 4): the site is full. FIFO alone would have
/// given team a all 8.
#[test]
fn teams_take_turns_by_fair_share() {
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    for id in 1..=4 {
        submit(&mut core, 0, id, team_job("H100:2", "a"));
    }
    for id in 5..=6 {
        submit(&mut core, 0, id, team_job("H100:2", "b"));
    }
    core.handle_timeout(0);
    let mut ids: Vec<u64> = dispatches(&mut core).into_iter().map(|d| d.0).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 5, 6]);
}

/// A team's quota: team a may hold 4 accelerators. Of its three 2-GPU
/// jobs two run; the third waits with "team quota reached" while team b's
/// job, behind it in the queue, runs.
#[test]
fn a_team_never_exceeds_its_quota() {
    let mut core = Core::new(Config {
        heartbeat_timeout_ms: u64::MAX / 4,
        teams: [(
            "a".to_string(),
            skyward_core::policy::Team {
                weight: 1.0,
                max_accelerators: Some(4),
            },
        )]
        .into(),
        ..Config::default()
    });
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    for id in 1..=3 {
        submit(&mut core, 0, id, team_job("H100:2", "a"));
    }
    submit(&mut core, 0, 4, team_job("H100:2", "b"));
    core.handle_timeout(0);
    let mut ids: Vec<u64> = dispatches(&mut core).into_iter().map(|d| d.0).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 4]);
    let why = core.why_pending(WorkloadId(3)).unwrap();
    assert_eq!(
        why.get(skyward_core::REASON_TEAM_QUOTA),
        Some(&1),
        "{why:?}"
    );
}

/// Work no site can ever take (EU-only, no EU site) is judged once, then
/// set aside: later cycles do not put it in order again (a growing
/// backlog of it made every cycle slower), yet it stays pending to every
/// reader, and a site that can take it brings it back at once.
#[test]
fn unplaceable_work_is_set_aside_until_the_sites_change() {
    let mut core = quiet_core();
    core.handle(0, site("aws", "aws", "us-east-1", "H100", 16, 4))
        .unwrap();
    let mut eu = job("H100:1", 1, 0);
    eu.residency = vec!["eu".into()];
    for i in 1..=1_000 {
        submit(&mut core, 0, i, eu.clone());
    }
    core.handle_timeout(0);
    assert_eq!(core.pending_count(), 1_000);
    let first = core.ordered_total();
    assert_eq!(first, 1_000, "the first cycle orders the whole queue");
    // Ten more cycles, each woken by a US workload that runs.
    let mut now = 0;
    for i in 0..10 {
        now += 60_000;
        submit(&mut core, now, 2_000 + i, job("H100:1", 1, 0));
        core.handle_timeout(now);
        assert_eq!(
            start_all(&mut core, now).len(),
            1,
            "{:?}",
            core.why_pending(WorkloadId(2_000 + i))
        );
    }
    assert_eq!(
        core.ordered_total() - first,
        10,
        "later cycles order only the new work"
    );
    assert_eq!(core.pending_count(), 1_000);
    assert_eq!(core.pending_position(WorkloadId(1)), Some(0));
    assert_eq!(core.pending_position(WorkloadId(1_000)), Some(999));
    // The queue as the API pages it shows the set-aside work in order.
    assert_eq!(
        core.pending_page(None, 3),
        [WorkloadId(1), WorkloadId(2), WorkloadId(3)]
    );
    assert_eq!(
        core.pending_page(Some(WorkloadId(998)), 5),
        [WorkloadId(999), WorkloadId(1_000)]
    );
    let why = core.why_pending(WorkloadId(500)).unwrap();
    assert!(why.contains_key("region outside residency"), "{why:?}");
    // Cancelling a set-aside workload works as for any pending one.
    core.handle(now, Input::Cancel { id: WorkloadId(1) })
        .unwrap();
    assert_eq!(core.pending_count(), 999);
    assert_eq!(core.pending_position(WorkloadId(2)), Some(0));
    // An EU site arrives: the backlog is placed in queue order.
    now += 60_000;
    core.handle(now, site("eu", "gcp", "europe-west4", "H100", 8, 3))
        .unwrap();
    core.handle_timeout(now);
    let placed = start_all(&mut core, now);
    let ids: Vec<u64> = placed.iter().map(|p| p.0).collect();
    assert_eq!(ids, (2..=9).collect::<Vec<u64>>());
    assert!(placed.iter().all(|p| p.1 == "eu"));
    assert_eq!(core.pending_count(), 991);
}

/// Every submission with its own walltime is its own class. A server that
/// forgets finished work must forget their classes too: before, the
/// classes (each with a copy of the workload's strings) grew with every
/// workload ever submitted. After compactions, the kept classes still
/// mean what they meant: set-aside work keeps its place, and a workload
/// with two alternatives gets the same scaled walltime as before.
#[test]
fn classes_stay_bounded_by_live_work_when_every_walltime_differs() {
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "A100", 4, 2))
        .unwrap();
    let mut eu = job("H100:1", 1, 0);
    eu.residency = vec!["eu".into()];
    submit(&mut core, 0, 1, eu);
    let two = |hours: f64| {
        let mut j = with_hours(job("H100:1", 1, 0), hours);
        j.accelerators
            .push(skyward_model::AcceleratorRequest::parse("A100:1").unwrap());
        j
    };
    let walltime_of = |core: &mut Core, now: u64, id: u64| -> Option<u64> {
        let mut wall = None;
        let cmds: Vec<Command> = std::iter::from_fn(|| core.poll_command()).collect();
        for c in cmds {
            if let Command::Dispatch {
                id: d,
                site,
                attempt,
                walltime_ms,
                ..
            } = c
            {
                if d.0 == id {
                    wall = walltime_ms;
                }
                core.handle(
                    now,
                    Input::Started {
                        id: d,
                        site,
                        attempt,
                    },
                )
                .unwrap();
            }
        }
        wall
    };
    let mut now = 0;
    submit(&mut core, now, 2, two(1.0));
    core.handle_timeout(now);
    let before = walltime_of(&mut core, now, 2).expect("a walltime");
    let finish = |core: &mut Core, now: u64, id: u64| {
        core.handle(
            now,
            Input::Finished {
                id: WorkloadId(id),
                site: "s".into(),
                attempt: 1,
                success: true,
                ended_at: Some(now),
            },
        )
        .unwrap();
        while core.poll_command().is_some() {}
        assert!(core.forget(WorkloadId(id)));
    };
    now += 60_000;
    finish(&mut core, now, 2);
    for i in 0..5_000u64 {
        now += 60_000;
        let id = 10 + i;
        submit(
            &mut core,
            now,
            id,
            with_hours(job("A100:1", 1, 0), 1.0 + i as f64 / 1_000.0),
        );
        core.handle_timeout(now);
        walltime_of(&mut core, now, id);
        finish(&mut core, now, id);
    }
    let (classes, filters) = core.classes_held();
    // Live: the set-aside EU workload; at most twice that plus the slack.
    assert!(classes <= 2 + 1_024, "{classes} classes kept");
    assert!(filters <= 2 + 1_024, "{filters} filters kept");
    // The same two-alternative workload, after the compactions.
    now += 60_000;
    submit(&mut core, now, 9_000_000, two(1.0));
    core.handle_timeout(now);
    assert_eq!(walltime_of(&mut core, now, 9_000_000), Some(before));
    // The set-aside workload is still pending, and placed when it can be.
    assert_eq!(core.pending_position(WorkloadId(1)), Some(0));
    core.handle(now, site("eu", "gcp", "europe-west4", "H100", 8, 3))
        .unwrap();
    core.handle_timeout(now);
    assert_eq!(start_all(&mut core, now), vec![(1, "eu".into(), 1)]);
}

/// A full fleet with a long queue: each cycle judges only as much of the
/// queue as can matter (the work the global step is offered, and enough
/// to find every waiting filter full and held everywhere), not all of it.
/// Before, every cycle put all 5,000 waiting workloads in order and
/// checked each against the sites, so a saturated fleet's cycles cost the
/// length of its queue. What it places, and in what order, is unchanged.
#[test]
fn a_full_fleet_judges_only_the_head_of_a_long_queue() {
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    // Fill the site with eight 10-hour runs.
    for i in 1..=8 {
        submit(&mut core, 0, i, with_hours(job("H100:1", 1, 0), 10.0));
    }
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0).len(), 8);
    // 5,000 waiting workloads, each with its own walltime (its own class).
    let mut now = 60_000;
    for i in 0..5_000u64 {
        submit(
            &mut core,
            now,
            100 + i,
            with_hours(job("H100:1", 1, 0), 1.0 + i as f64 / 10_000.0),
        );
    }
    let before = core.ordered_total();
    core.handle_timeout(now);
    assert!(start_all(&mut core, now).is_empty());
    let judged = core.ordered_total() - before;
    assert!(
        judged <= 100,
        "one cycle judged {judged} of 5,000 waiting workloads"
    );
    // Work a cycle stopped before judging still says why it waits.
    let why = core.why_pending(WorkloadId(100 + 4_999)).unwrap();
    assert_eq!(why.get(skyward_core::REASON_SITE_FULL), Some(&1), "{why:?}");
    assert_eq!(core.pending_position(WorkloadId(100 + 4_999)), Some(4_999));
    // Another arrival: again only the head of the queue.
    now += 60_000;
    submit(&mut core, now, 9_999, with_hours(job("H100:1", 1, 0), 3.0));
    let before = core.ordered_total();
    core.handle_timeout(now);
    assert!(core.ordered_total() - before <= 100);
    // A run ends: the head of the queue, in order, takes its place.
    now += 60_000;
    core.handle(
        now,
        Input::Finished {
            id: WorkloadId(1),
            site: "s".into(),
            attempt: 1,
            success: true,
            ended_at: Some(now),
        },
    )
    .unwrap();
    core.handle_timeout(now);
    assert_eq!(start_all(&mut core, now), vec![(100, "s".into(), 1)]);
    assert_eq!(core.pending_count(), 5_000);
}

/// A long backlog of one kind of work that cannot start costs a cycle
/// at most `FILTER_DEPTH_MAX` judgments, and hides neither another
/// kind's work behind it nor the reason its own deeper work waits. Site
/// "s" (8) runs a 10-hour job on 4 and holds the other 4 for an 8-GPU
/// gang; four depths' worth of one-GPU jobs of 20 hours or more (each its
/// own walltime)
/// cannot end before the gang starts, so none may take the held room.
/// A one-GPU job behind them that ends in 2 hours could, but lies deeper
/// than a cycle looks: it waits, saying so, until the queue moves. A job
/// for site "t" behind them all starts at once.
#[test]
fn a_kind_of_work_that_cannot_start_is_judged_only_to_a_depth_and_hides_no_other() {
    use skyward_core::FILTER_DEPTH_MAX;
    let mut core = quiet_core();
    core.handle(0, site("s", "aws", "us-east-1", "H100", 8, 4))
        .unwrap();
    core.handle(0, site("t", "aws", "us-west-2", "H200", 8, 5))
        .unwrap();
    let h100 = |hours: f64| {
        let mut j = with_hours(job("H100:1", 1, 0), hours);
        j.accelerators[0].count = 1;
        j
    };
    submit(&mut core, 0, 1, with_hours(job("H100:4", 1, 0), 10.0));
    core.handle_timeout(0);
    assert_eq!(start_all(&mut core, 0).len(), 1);
    let mut now = 60_000;
    submit(&mut core, now, 2, job("H100:8", 1, 5));
    let backlog = 4 * FILTER_DEPTH_MAX as u64;
    for i in 0..backlog {
        submit(&mut core, now, 100 + i, h100(20.0 + i as f64 / 100.0));
    }
    submit(&mut core, now, 5_000, h100(2.0));
    submit(&mut core, now, 6_000, with_hours(job("H200:1", 1, 0), 1.0));
    let before = core.ordered_total();
    core.handle_timeout(now);
    // The H200 job starts; the short H100 job, last of its kind, does not
    // (judged, it would backfill: see the next cycles).
    assert_eq!(start_all(&mut core, now), vec![(6_000, "t".into(), 1)]);
    let judged = core.ordered_total() - before;
    assert!(
        judged <= FILTER_DEPTH_MAX as u64 + 2,
        "one cycle judged {judged} of {} waiting workloads",
        backlog + 3
    );
    let why = core.why_pending(WorkloadId(5_000)).unwrap();
    assert!(
        why.contains_key(skyward_core::REASON_QUEUE_DEPTH),
        "{why:?}"
    );
    let why = core.why_pending(WorkloadId(100)).unwrap();
    assert_eq!(why.get(skyward_core::REASON_RESERVED), Some(&1), "{why:?}");
    // The queue moves: all but the last half depth of the long jobs are
    // cancelled, so the short one is within the depth and takes the
    // held room it ends in time for.
    let left = FILTER_DEPTH_MAX as u64 / 2;
    for i in 0..backlog - left {
        now += 1;
        core.handle(
            now,
            Input::Cancel {
                id: WorkloadId(100 + i),
            },
        )
        .unwrap();
    }
    now += 60_000;
    core.handle_timeout(now);
    assert_eq!(start_all(&mut core, now), vec![(5_000, "s".into(), 1)]);
    assert_eq!(core.pending_count(), left as usize + 1);
}
