#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Live commitments in the scheduling cycle: spend a commitment bills
//! anyway is free at the margin; past it, the discounted price competes.
//! Every figure below is computed by hand in the comments.

use skyward_core::{Command, Config, Core, Input, JobSpec, LiveCommitment, SiteSpec, WorkloadId};
use skyward_model::{AcceleratorRequest, RegionKey, SpotPolicy, Usd};

fn site(name: &str, p: &str, r: &str, n: u32, price: &str, spot: bool) -> Input {
    Input::RegisterSite {
        spec: SiteSpec {
            name: name.into(),
            region: RegionKey::new(p, r),
            accelerator: "H100".into(),
            accelerators: n,
            price_usd_per_accelerator_hour: Usd::parse(price).unwrap(),
            spot,
            prepaid: false,
        },
        running: vec![],
    }
}

/// One H100 for an hour, any provider, spot allowed.
fn flexible() -> JobSpec {
    JobSpec {
        name: "flex".into(),
        accelerators: vec![AcceleratorRequest::parse("H100:1").unwrap()],
        nodes: 1,
        priority: 0,
        providers: vec![],
        regions: vec![],
        residency: vec![],
        compliance: vec![],
        spot: SpotPolicy::Allowed,
        hours: None,
        max_runtime_ms: Some(3_600_000),
        preemptible: false,
        team: String::new(),
        recovery: Default::default(),
        no_variant: Vec::new(),
        throughput: Default::default(),
    }
}

fn commitment(free: &str) -> Input {
    Input::Commitments {
        live: vec![LiveCommitment {
            name: "azure-macc".into(),
            provider: "azure".into(),
            discount_pct: 20.0,
            free_usd: Usd::parse(free).unwrap(),
        }],
    }
}

fn dispatched(core: &mut Core) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some(c) = core.poll_command() {
        if let Command::Dispatch { id, site, .. } = c {
            out.push((id.0, site));
        }
    }
    out
}

fn submit(core: &mut Core, now: u64, ids: std::ops::Range<u64>) {
    for id in ids {
        core.handle(
            now,
            Input::Submit {
                id: WorkloadId(id),
                spec: flexible(),
            },
        )
        .unwrap();
    }
}

fn setup(free: &str) -> Core {
    let mut core = Core::new(Config::default());
    // Azure on-demand $10/h; AWS spot $3/h: AWS is cheaper at list, and
    // even after Azure's 20 % discount ($8/h).
    core.handle(0, site("azure", "azure", "eastus", 64, "10", false))
        .unwrap();
    core.handle(0, site("aws-spot", "aws", "us-east-1", 64, "3", true))
        .unwrap();
    core.handle(0, commitment(free)).unwrap();
    core
}

/// $25 of billed spend is due anyway on Azure: each one-hour job adds
/// 0.8 × $10 = $8 billed there, so the first three ($24) cost nothing;
/// the fourth would add max(25, 32) − 25 = $7 against $3 on AWS spot, so
/// it and the rest go to AWS.
#[test]
fn work_fills_the_unspent_commitment_then_goes_back_to_the_cheapest() {
    let mut core = setup("25");
    submit(&mut core, 0, 1..7);
    core.handle_timeout(0);
    let d = dispatched(&mut core);
    let on_azure: Vec<u64> = d
        .iter()
        .filter(|(_, s)| s == "azure")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(on_azure.len(), 3, "{d:?}");
    assert_eq!(d.len(), 6);
    let azure_id = WorkloadId(on_azure[0]);
    let why = core.placed_why(azure_id).unwrap().join("\n");
    assert!(
        why.contains("inside the unspent part of commitment 'azure-macc'"),
        "{why}"
    );
    let aws_id = d.iter().find(|(_, s)| s == "aws-spot").unwrap().0;
    let why = core.placed_why(WorkloadId(aws_id)).unwrap().join("\n");
    assert!(why.contains("runner-up: site azure"), "{why}");
    let report = core.last_cycle().unwrap();
    assert!(report.proven_optimal, "{report:?}");
    // 3 × $10 list on Azure → $24 billed < $25 due: $25; 3 × $3 on AWS.
    assert!((report.cost_usd - 34.0).abs() < 1e-6, "{report:?}");
}

/// The runs in flight use the commitment up: with the three Azure runs
/// still running (an hour each, $24 billed to come), a new job finds only
/// $1 free, which is less than the $8 it would add; AWS is cheaper.
#[test]
fn runs_in_flight_count_against_what_is_free() {
    let mut core = setup("25");
    submit(&mut core, 0, 1..4);
    core.handle_timeout(0);
    assert!(dispatched(&mut core).iter().all(|(_, s)| s == "azure"));
    submit(&mut core, 10, 10..11);
    core.handle_timeout(10);
    assert_eq!(dispatched(&mut core), vec![(10, "aws-spot".to_string())]);
}

/// Without a commitment, or once the forecast says it will be met (free
/// is zero), everything goes to the cheapest site; a new forecast that
/// falls short again brings work back.
#[test]
fn placement_follows_the_forecast_both_ways() {
    let mut core = setup("0");
    submit(&mut core, 0, 1..3);
    core.handle_timeout(0);
    assert!(dispatched(&mut core).iter().all(|(_, s)| s == "aws-spot"));
    core.handle(1, commitment("1000")).unwrap();
    submit(&mut core, 1, 3..5);
    core.handle_timeout(1);
    assert!(dispatched(&mut core).iter().all(|(_, s)| s == "azure"));
}

/// A workload that may not use the committed provider is not moved there
/// (constraints before economics), and a non-spot job never lands on spot.
#[test]
fn constraints_hold_under_commitments() {
    let mut core = setup("1000");
    let mut aws_only = flexible();
    aws_only.providers = vec!["aws".into()];
    core.handle(
        0,
        Input::Submit {
            id: WorkloadId(1),
            spec: aws_only,
        },
    )
    .unwrap();
    let mut no_spot = flexible();
    no_spot.spot = SpotPolicy::Never;
    core.handle(0, commitment("0")).unwrap();
    core.handle(
        0,
        Input::Submit {
            id: WorkloadId(2),
            spec: no_spot,
        },
    )
    .unwrap();
    core.handle_timeout(0);
    let d = dispatched(&mut core);
    assert_eq!(
        d,
        vec![(1, "aws-spot".to_string()), (2, "azure".to_string())]
    );
}

fn reserved_site(n: u32) -> Input {
    Input::RegisterSite {
        spec: SiteSpec {
            name: "azure-reserved".into(),
            region: RegionKey::new("azure", "westus2"),
            accelerator: "H100".into(),
            accelerators: n,
            price_usd_per_accelerator_hour: Usd::parse("12").unwrap(),
            spot: false,
            prepaid: true,
        },
        running: vec![],
    }
}

/// Reserved capacity is paid either way: work goes there first even at a
/// higher hourly price, and says so in `skyward explain`'s words. Here: a
/// 2-accelerator reservation in Azure priced at $12/h, Azure on-demand
/// $10/h with $25 free under its commitment, AWS spot $3/h. Jobs take the
/// reservation (2, $0 each), then fill the $25 (3 × $8 = $24 billed),
/// then AWS spot (1). The cycle's cost is $25 + $3 = $28.
#[test]
fn reserved_capacity_is_used_first_and_costs_nothing_at_the_margin() {
    let mut core = setup("25");
    core.handle(0, reserved_site(2)).unwrap();
    submit(&mut core, 0, 1..7);
    core.handle_timeout(0);
    let d = dispatched(&mut core);
    let count = |site: &str| d.iter().filter(|(_, s)| s == site).count();
    assert_eq!(
        (count("azure-reserved"), count("azure"), count("aws-spot")),
        (2, 3, 1),
        "{d:?}"
    );
    let reserved = d.iter().find(|(_, s)| s == "azure-reserved").unwrap().0;
    let why = core.placed_why(WorkloadId(reserved)).unwrap().join("\n");
    assert!(
        why.contains("runs on prepaid reserved capacity 'azure-reserved': it adds $0.00"),
        "{why}"
    );
    assert!(!why.contains("azure-macc"), "{why}");
    let report = core.last_cycle().unwrap();
    assert!((report.cost_usd - 28.0).abs() < 1e-6, "{report:?}");
}

/// Runs on reserved capacity burn no commitment: with the reservation
/// busy (2 runs, $24 at its price), 3 new jobs still find the whole $25
/// free on Azure on-demand. Counted as Azure spend ($19.20 billed), only
/// $5.80 would be left and only one job would go there.
#[test]
fn runs_on_reserved_capacity_leave_the_commitment_free() {
    // Before the commitment is known, the reservation is the only free
    // capacity (no tie with Azure's free room).
    let mut core = setup("0");
    core.handle(0, reserved_site(2)).unwrap();
    submit(&mut core, 0, 1..3);
    core.handle_timeout(0);
    assert!(dispatched(&mut core)
        .iter()
        .all(|(_, s)| s == "azure-reserved"));
    core.handle(5, commitment("25")).unwrap();
    submit(&mut core, 10, 10..14);
    core.handle_timeout(10);
    let d = dispatched(&mut core);
    let on_azure = d.iter().filter(|(_, s)| s == "azure").count();
    assert_eq!(on_azure, 3, "{d:?}");
}
