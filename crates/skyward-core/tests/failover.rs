#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Failover: where a workload goes after a site failed it, by its recovery
//! strategy (a table of cases worked by hand), how long it avoids the
//! failed place, when it is given up, and that all of it survives a
//! restart of the core.

use skyward_core::core::{FAILOVER_BACKOFF_MS, REASON_FAILOVER_BLOCKED};
use skyward_core::{
    Command, Config, Core, Input, JobSpec, Outcome, Record, SiteSpec, State, WorkloadId,
};
use skyward_model::{AcceleratorRequest, Recovery, RecoveryStrategy, RegionKey, Usd};

/// aws-east $2 (us-east-1), aws-east-b $3 (also us-east-1), aws-west $4
/// (us-west-2), gcp $6: a workload goes to the cheapest site it may use.
fn core() -> Core {
    let mut c = Core::new(Config {
        cycle_min_gap_ms: 0,
        ..Config::default()
    });
    for (name, p, r, price) in [
        ("aws-east", "aws", "us-east-1", 2),
        ("aws-east-b", "aws", "us-east-1", 3),
        ("aws-west", "aws", "us-west-2", 4),
        ("gcp", "gcp", "us-central1", 6),
    ] {
        c.handle(
            0,
            Input::RegisterSite {
                spec: SiteSpec {
                    name: name.into(),
                    region: RegionKey::new(p, r),
                    accelerator: "H100".into(),
                    accelerators: 8,
                    price_usd_per_accelerator_hour: Usd::from_dollars(price),
                    spot: false,
                    prepaid: false,
                },
                running: vec![],
            },
        )
        .unwrap();
    }
    c
}

fn job(strategy: RecoveryStrategy, max_restarts: Option<u32>) -> JobSpec {
    JobSpec {
        name: "train".into(),
        accelerators: vec![AcceleratorRequest::parse("H100:1").unwrap()],
        nodes: 1,
        priority: 0,
        providers: vec![],
        regions: vec![],
        residency: vec![],
        compliance: vec![],
        spot: skyward_model::SpotPolicy::Never,
        hours: None,
        max_runtime_ms: Some(3_600_000),
        preemptible: true,
        team: String::new(),
        recovery: Recovery {
            strategy,
            max_restarts,
        },
        no_variant: Vec::new(),
        throughput: Default::default(),
    }
}

/// Runs a cycle at `now` (the sites have just been heard from); the site
/// and attempt of the workload's dispatch.
fn place(core: &mut Core, now: u64) -> Option<(String, u32)> {
    for (name, _, _, _) in core.sites() {
        let _ = core.handle(now, Input::Heartbeat { site: name });
    }
    core.handle_timeout(now);
    let mut out = None;
    while let Some(c) = core.poll_command() {
        if let Command::Dispatch { site, attempt, .. } = c {
            out = Some((site, attempt));
        }
    }
    out
}

/// The site loses the run (a node died, a spot pool took it back).
fn lose(core: &mut Core, now: u64, site: &str, attempt: u32) {
    core.handle(
        now,
        Input::Started {
            id: WorkloadId(1),
            site: site.into(),
            attempt,
        },
    )
    .unwrap();
    core.handle(
        now,
        Input::Preempted {
            id: WorkloadId(1),
            site: site.into(),
            attempt,
        },
    )
    .unwrap();
}

/// Where each attempt goes, after the site of the one before lost it.
fn path(strategy: RecoveryStrategy, losses: usize) -> Vec<String> {
    let mut c = core();
    c.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: job(strategy, None),
        },
    )
    .unwrap();
    let mut sites = Vec::new();
    let mut now = 0;
    for _ in 0..=losses {
        let (site, attempt) = place(&mut c, now).expect("placed");
        sites.push(site.clone());
        now += 1_000;
        if sites.len() <= losses {
            lose(&mut c, now, &site, attempt);
        }
    }
    sites
}

#[test]
fn each_strategy_goes_where_it_should_after_a_loss() {
    use RecoveryStrategy::*;
    // same_site_first: back to the cheapest once; after a second loss
    // there it is avoided (10 minutes: the backoff doubled), so the next
    // cheapest; a site that failed it once is tried again.
    assert_eq!(
        path(SameSiteFirst, 3),
        ["aws-east", "aws-east", "aws-east-b", "aws-east-b"]
    );
    // next_region: the failed region is avoided: us-east-1's two sites
    // after the first loss, then us-west-2 too.
    assert_eq!(path(NextRegion, 2), ["aws-east", "aws-west", "gcp"]);
    // any_provider: the failed provider is avoided.
    assert_eq!(path(AnyProvider, 1), ["aws-east", "gcp"]);
}

#[test]
fn the_avoided_place_comes_back_after_the_backoff_and_waiting_says_why() {
    let mut c = core();
    c.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: JobSpec {
                providers: vec!["aws".into()],
                ..job(RecoveryStrategy::AnyProvider, None)
            },
        },
    )
    .unwrap();
    let (site, attempt) = place(&mut c, 0).unwrap();
    assert_eq!(site, "aws-east");
    lose(&mut c, 1_000, &site, attempt);
    // Only AWS is allowed and AWS is avoided: it waits, and says why.
    assert_eq!(place(&mut c, 2_000), None);
    let why = c.why_pending(WorkloadId(1)).unwrap();
    assert_eq!(why.get(REASON_FAILOVER_BLOCKED), Some(&3), "{why:?}");
    assert_eq!(place(&mut c, 1_000 + FAILOVER_BACKOFF_MS - 1), None);
    // The backoff is over: back to the cheapest.
    let (site, _) = place(&mut c, 1_000 + FAILOVER_BACKOFF_MS).unwrap();
    assert_eq!(site, "aws-east");
}

#[test]
fn max_restarts_gives_up_with_a_note() {
    let mut c = core();
    c.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: job(RecoveryStrategy::NextRegion, Some(1)),
        },
    )
    .unwrap();
    let (site, attempt) = place(&mut c, 0).unwrap();
    lose(&mut c, 1_000, &site, attempt);
    let (site, attempt) = place(&mut c, 2_000).unwrap();
    assert_eq!(c.failures(WorkloadId(1)), 1);
    lose(&mut c, 3_000, &site, attempt);
    assert_eq!(c.state(WorkloadId(1)), Some(&State::Done(Outcome::Failed)));
    let notes = c.take_notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].1,
        "gave up after 2 failures (recovery.max_restarts 1); the last on aws-west"
    );
    assert_eq!(place(&mut c, 4_000), None);
}

/// The records the runtime persists bring the failover state back: a
/// restarted core still avoids the failed region and counts the restarts.
#[test]
fn failover_survives_a_restart() {
    let mut c = core();
    let mut records = Vec::new();
    let keep = |c: &mut Core, records: &mut Vec<Record>| {
        let mut placed = None;
        while let Some(cmd) = c.poll_command() {
            match cmd {
                Command::Persist(r) => records.push(r),
                Command::Dispatch { site, attempt, .. } => placed = Some((site, attempt)),
                _ => {}
            }
        }
        placed
    };
    // The runtime persists submissions itself (the core records what
    // happens to them).
    let spec = job(RecoveryStrategy::NextRegion, Some(3));
    records.push(Record::Submitted {
        id: WorkloadId(1),
        spec: Box::new(spec.clone()),
        at: 0,
    });
    c.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec,
        },
    )
    .unwrap();
    c.handle_timeout(0);
    let (site, attempt) = keep(&mut c, &mut records).unwrap();
    assert_eq!(site, "aws-east");
    lose(&mut c, 1_000, &site, attempt);
    keep(&mut c, &mut records);
    assert!(records
        .iter()
        .any(|r| matches!(r, Record::Failover { failover, .. } if failover.failures == 1)));

    let mut again = Core::restore(
        Config {
            cycle_min_gap_ms: 0,
            ..Config::default()
        },
        &records,
        2_000,
    );
    for (name, p, r, price) in [
        ("aws-east", "aws", "us-east-1", 2),
        ("aws-east-b", "aws", "us-east-1", 3),
        ("aws-west", "aws", "us-west-2", 4),
    ] {
        again
            .handle(
                2_000,
                Input::RegisterSite {
                    spec: SiteSpec {
                        name: name.into(),
                        region: RegionKey::new(p, r),
                        accelerator: "H100".into(),
                        accelerators: 8,
                        price_usd_per_accelerator_hour: Usd::from_dollars(price),
                        spot: false,
                        prepaid: false,
                    },
                    running: vec![],
                },
            )
            .unwrap();
    }
    assert_eq!(again.failures(WorkloadId(1)), 1);
    let (site, _) = place(&mut again, 3_000).unwrap();
    assert_eq!(
        site, "aws-west",
        "the restarted core forgot to avoid us-east-1"
    );
}
