#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Table tests of the filter chain and the cost scorer.

mod common;
use common::*;
use skyward_model::{Pricing, RegionKey, SpotPolicy, Usd, WorkloadKind};
use skyward_placement::candidates::generate;
use skyward_placement::context::Context;
use skyward_placement::reasons;

fn filtered(
    cat: &skyward_catalog::Catalog,
    f: &skyward_model::Fleet,
) -> (std::collections::BTreeMap<&'static str, usize>, usize) {
    let ctx = Context::new(cat, f);
    let c = generate(&ctx, &f.workloads[0]);
    (
        c.filtering.offerings_filtered.clone(),
        c.filtering.options_feasible,
    )
}

#[test]
fn filter_chain_table() {
    let cat = small_catalog();
    type Tweak = fn(&mut skyward_model::Workload);
    // (what the workload asks, reason expected, how many offerings it rejects, feasible options left)
    let cases: Vec<(&str, Tweak, &str, usize, usize)> = vec![
        (
            "wrong accelerator",
            |_w| {},
            reasons::WRONG_ACCELERATOR,
            2,
            5,
        ),
        (
            "provider allow-list",
            |w| w.providers = vec!["gcp".into()],
            reasons::PROVIDER_NOT_ALLOWED,
            3,
            2,
        ),
        (
            "region allow-list (bare name)",
            |w| w.regions = vec!["us-east-1".into()],
            reasons::REGION_NOT_ALLOWED,
            4,
            1,
        ),
        (
            "region allow-list (provider:region)",
            |w| w.regions = vec!["gcp:us-central1".into()],
            reasons::REGION_NOT_ALLOWED,
            4,
            1,
        ),
        (
            "residency eu",
            |w| w.residency = vec!["eu".into()],
            reasons::RESIDENCY,
            3,
            2,
        ),
        (
            "compliance fedramp-high",
            |w| w.compliance = vec!["fedramp-high".into()],
            reasons::COMPLIANCE,
            3,
            2,
        ),
        (
            "hourly cap",
            |w| w.max_hourly_usd = Some(Usd::from_dollars(35)),
            reasons::OVER_HOURLY_CAP,
            4,
            1,
        ),
        (
            "spot required",
            |w| w.spot = SpotPolicy::Required,
            reasons::NO_PRICE,
            3,
            2,
        ),
    ];
    for (name, tweak, reason, rejected, feasible) in cases {
        let mut w = workload("w", &["H100:8"], 1, 10.0);
        tweak(&mut w);
        let f = fleet(vec![w]);
        let (hist, n) = filtered(&cat, &f);
        assert_eq!(
            hist.get(reason).copied().unwrap_or(0),
            rejected,
            "{name}: {hist:?}"
        );
        assert_eq!(n, feasible, "{name}: feasible options");
    }
}

#[test]
fn latency_filter_uses_measured_rtt() {
    let cat = small_catalog();
    let mut w = workload("chat", &["H100:8"], 1, 10.0);
    w.kind = WorkloadKind::Serve;
    w.users = vec![RegionKey::new("azure", "westeurope")];
    w.latency_ms = Some(30.0);
    let f = fleet(vec![w]);
    let (hist, _) = filtered(&cat, &f);
    // Only the two European regions are within 30 ms of West Europe.
    assert_eq!(hist.get(reasons::LATENCY).copied(), Some(3), "{hist:?}");
}

#[test]
fn quota_and_pool_static_checks() {
    let cat = small_catalog();
    let mut f = fleet(vec![workload("big", &["H100:8"], 4, 10.0)]);
    f.quotas.push(quota("gcp", None, "H100", 16));
    f.capacity.push(pool(
        "small-pool",
        "aws",
        "us-east-1",
        "p5.48xlarge",
        "H100:8",
        2,
    ));
    let ctx = Context::new(&cat, &f);
    let c = generate(&ctx, &f.workloads[0]);
    assert_eq!(
        c.filtering
            .offerings_filtered
            .get(reasons::OVER_QUOTA)
            .copied(),
        Some(2)
    );
    assert_eq!(
        c.filtering
            .pools_filtered
            .get(reasons::POOL_TOO_SMALL)
            .copied(),
        Some(1)
    );
}

#[test]
fn scorer_costs_table() {
    let cat = small_catalog();
    // nodes × hours × price; spot adds the overhead; alternatives scale by BF16 throughput.
    let mut w = workload("w", &["H100:8", "B200:8"], 2, 100.0);
    w.spot = SpotPolicy::Allowed;
    let f = fleet(vec![w]);
    let ctx = Context::new(&cat, &f);
    let c = generate(&ctx, &f.workloads[0]);
    let find = |sku: &str, pricing: Pricing| {
        c.top.iter().chain(c.options.iter()).find(|o| {
        matches!(o.source, skyward_placement::candidates::Source::Offering(i) if cat.offerings[i].sku == sku) && o.pricing == pricing
    }).cloned()
    };
    // a3 spot: 20 $/h × 2 nodes × 100 h × 1.10 = 4,400
    let a3_spot = find("a3-highgpu-8g", Pricing::Spot).unwrap();
    assert_eq!(a3_spot.compute_usd, Usd::from_dollars(4_400));
    assert_eq!(a3_spot.hourly_usd, Usd::from_dollars(40));
    // B200: 60 $/h × 2 × 100 h × 989/2250 = 5,274.666…
    let b200 = generate(&ctx, &f.workloads[0])
        .options
        .into_iter()
        .chain(c.top.clone())
        .find(|o| o.alternative == 1);
    if let Some(b) = b200 {
        assert_eq!(b.compute_usd, Usd::from_micros(5_274_666_667));
    }
    let hours = skyward_placement::candidates::hours_factor(&ctx, &f.workloads[0], 1).unwrap();
    assert!((hours - 989.0 / 2250.0).abs() < 1e-12);
}

#[test]
fn egress_is_charged_from_the_data_region() {
    let cat = small_catalog();
    let mut w = workload("w", &["H100:8"], 1, 1.0);
    w.data = Some(skyward_model::DataSpec {
        region: RegionKey::new("aws", "us-east-1"),
        gb: 1000.0,
    });
    let f = fleet(vec![w]);
    let ctx = Context::new(&cat, &f);
    let c = generate(&ctx, &f.workloads[0]);
    for o in c.top.iter() {
        let key = &ctx.regions[o.region as usize];
        if key.provider == "aws" && key.region == "us-east-1" {
            assert_eq!(o.egress_usd, Usd::ZERO);
        } else {
            assert!(o.egress_usd > Usd::ZERO, "{key}");
        }
    }
}
