#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The scheduler's cycle against the batch planner on the same snapshot.
//!
//! Each random snapshot (sites with free capacity in several providers,
//! live commitments, pending gangs with walltimes) is given to the core,
//! and written as a fleet and catalog for `skyward_placement::plan`
//! (each site an offering; its free capacity a quota; a reserved site a
//! reserved pool; each live commitment a contract due within the
//! horizon). The planner reaches the
//! problem by another road (catalog filters, candidate generation,
//! dominance pruning, its own solver settings). Where the planner proves
//! its plan optimal and places everything, the cycle must cost the same
//! to the cent.

use skyward_catalog::Catalog;
use skyward_core::{Command, Config, Core, Input, JobSpec, LiveCommitment, SiteSpec, WorkloadId};
use skyward_model::{
    AcceleratorRequest, Contract, Fleet, Offering, Quota, RegionKey, ReservedCapacity, SpotPolicy,
    Usd, Workload, WorkloadKind,
};
use skyward_placement::{plan, PlanOptions, Status};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const REGIONS: &[(&str, &str)] = &[
    ("aws", "us-east-1"),
    ("aws", "us-west-2"),
    ("azure", "eastus"),
    ("azure", "westus2"),
    ("gcp", "us-central1"),
    ("gcp", "us-east4"),
    ("oci", "us-ashburn-1"),
];

struct Snapshot {
    /// (region, free accelerators, price, prepaid)
    sites: Vec<(RegionKey, u32, Usd, bool)>,
    commitments: Vec<LiveCommitment>,
    /// (gang nodes of one H100 each, walltime hours)
    jobs: Vec<(u32, u32)>,
}

fn snapshot(seed: u64) -> Snapshot {
    let mut r = Rng(seed);
    let n_sites = 2 + r.below(4) as usize;
    let mut idx: Vec<usize> = (0..REGIONS.len()).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, r.below(i as u64 + 1) as usize);
    }
    let sites: Vec<(RegionKey, u32, Usd, bool)> = idx[..n_sites]
        .iter()
        .map(|&i| {
            let (p, reg) = REGIONS[i];
            (
                RegionKey::new(p, reg),
                4 + r.below(20) as u32,
                // $2.00 to $9.75 per accelerator-hour in quarters.
                Usd::from_micros(2_000_000 + 250_000 * r.below(32) as i64),
                // One site in six is reserved capacity, paid either way.
                r.below(6) == 0,
            )
        })
        .collect();
    let mut providers: Vec<String> = sites.iter().map(|s| s.0.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    let mut commitments = Vec::new();
    for p in &providers {
        if r.below(2) == 0 {
            commitments.push(LiveCommitment {
                name: format!("{p}-commit"),
                provider: p.clone(),
                discount_pct: [0.0, 10.0, 15.0, 25.0][r.below(4) as usize],
                free_usd: Usd::from_dollars(r.below(120) as i64),
            });
        }
    }
    let capacity: u32 = sites.iter().map(|s| s.1).sum();
    let mut jobs = Vec::new();
    let mut used = 0;
    // Up to about 80 % of the free capacity, so everything fits but
    // capacity still couples the choices.
    loop {
        let nodes = 1 + r.below(4) as u32;
        if used + nodes > capacity * 4 / 5 || jobs.len() >= 24 {
            break;
        }
        used += nodes;
        jobs.push((nodes, 1 + r.below(6) as u32));
    }
    Snapshot {
        sites,
        commitments,
        jobs,
    }
}

fn site_name(k: &RegionKey) -> String {
    format!("{}-{}", k.provider, k.region)
}

fn cycle(s: &Snapshot) -> (Vec<(u64, String)>, f64, bool) {
    let mut core = Core::new(Config::default());
    for (k, n, price, prepaid) in &s.sites {
        core.handle(
            0,
            Input::RegisterSite {
                spec: SiteSpec {
                    name: site_name(k),
                    region: k.clone(),
                    accelerator: "H100".into(),
                    accelerators: *n,
                    price_usd_per_accelerator_hour: *price,
                    spot: false,
                    prepaid: *prepaid,
                },
                running: vec![],
            },
        )
        .unwrap();
    }
    core.handle(
        0,
        Input::Commitments {
            live: s.commitments.clone(),
        },
    )
    .unwrap();
    for (i, (nodes, hours)) in s.jobs.iter().enumerate() {
        core.handle(
            0,
            Input::Submit {
                id: WorkloadId(i as u64),
                spec: JobSpec {
                    name: format!("j{i}"),
                    accelerators: vec![AcceleratorRequest::parse("H100:1").unwrap()],
                    nodes: *nodes,
                    priority: 0,
                    providers: vec![],
                    regions: vec![],
                    residency: vec![],
                    compliance: vec![],
                    spot: SpotPolicy::Never,
                    hours: None,
                    max_runtime_ms: Some(u64::from(*hours) * 3_600_000),
                    preemptible: false,
                    team: String::new(),
                    recovery: Default::default(),
                    no_variant: Vec::new(),
                    throughput: Default::default(),
                },
            },
        )
        .unwrap();
    }
    core.handle_timeout(0);
    let mut placed = Vec::new();
    while let Some(c) = core.poll_command() {
        if let Command::Dispatch { id, site, .. } = c {
            placed.push((id.0, site));
        }
    }
    let r = core.last_cycle().cloned().unwrap();
    (placed, r.cost_usd, r.proven_optimal)
}

/// The bill of what the cycle dispatched, computed here from the
/// dispatches: Σ_p max(free_p, (1 − d_p) · list spend_p), where spend on
/// reserved capacity is paid already and adds nothing.
fn bill(s: &Snapshot, placed: &[(u64, String)]) -> f64 {
    let mut spend: std::collections::BTreeMap<String, f64> = Default::default();
    for (k, _, _, _) in &s.sites {
        spend.insert(k.provider.clone(), 0.0);
    }
    for (id, site) in placed {
        let (k, _, price, prepaid) = s.sites.iter().find(|x| site_name(&x.0) == *site).unwrap();
        if *prepaid {
            continue;
        }
        let (nodes, hours) = s.jobs[*id as usize];
        *spend.get_mut(&k.provider).unwrap() +=
            price.as_f64() * f64::from(nodes) * f64::from(hours);
    }
    spend
        .iter()
        .map(
            |(p, x)| match s.commitments.iter().find(|c| c.provider == *p) {
                Some(c) => ((100.0 - c.discount_pct) / 100.0 * x).max(c.free_usd.as_f64()),
                None => *x,
            },
        )
        .sum()
}

fn batch(s: &Snapshot, catalog: &Catalog) -> (f64, usize, bool) {
    let mut cat = Catalog {
        offerings: Vec::new(),
        accelerators: catalog.accelerators.clone(),
        network: catalog.network.clone(),
        origin: "snapshot".into(),
    };
    let mut fleet = Fleet::default();
    for (k, n, price, prepaid) in &s.sites {
        if *prepaid {
            // A reserved pool of one-H100 nodes (no on-demand offering
            // there: the site is the reservation).
            fleet.capacity.push(ReservedCapacity {
                name: site_name(k),
                region: k.clone(),
                sku: site_name(k),
                accelerator: AcceleratorRequest::parse("H100:1").unwrap(),
                nodes: *n,
                hourly_usd: *price,
            });
            continue;
        }
        cat.offerings.push(Offering {
            region: k.clone(),
            sku: site_name(k),
            accelerator: "H100".into(),
            accelerator_count: 1,
            vcpus: 8.0,
            memory_gib: 64.0,
            on_demand_usd_per_hour: Some(*price),
            spot_usd_per_hour: None,
            zones: 1,
            source: "snapshot".into(),
        });
        fleet.quotas.push(Quota {
            provider: k.provider.clone(),
            region: Some(k.region.clone()),
            accelerator: "H100".into(),
            max: *n,
        });
    }
    for c in &s.commitments {
        fleet.contracts.push(Contract {
            name: c.name.clone(),
            provider: c.provider.clone(),
            commit_usd: c.free_usd,
            discount_pct: c.discount_pct,
        });
    }
    for (i, (nodes, hours)) in s.jobs.iter().enumerate() {
        fleet.workloads.push(Workload::new(
            &format!("j{i}"),
            WorkloadKind::Train,
            vec![AcceleratorRequest::parse("H100:1").unwrap()],
            *nodes,
            f64::from(*hours),
        ));
    }
    let opts = PlanOptions {
        explain: skyward_placement::ExplainScope::None,
        ..PlanOptions::default()
    };
    let p = plan(&fleet, &cat, &opts);
    let placed = p
        .placements
        .iter()
        .filter(|x| x.status == Status::Placed)
        .count();
    (p.total_cost_usd.as_f64(), placed, p.solver.proven_optimal)
}

#[test]
fn the_cycle_costs_what_the_proven_batch_plan_costs() {
    let catalog = Catalog::builtin().unwrap();
    let mut compared = 0;
    let mut with_commitments = 0;
    let mut with_reserved = 0;
    for seed in 0..80 {
        let s = snapshot(seed);
        if s.jobs.is_empty() {
            continue;
        }
        let (placed, reported, _) = cycle(&s);
        let cost = bill(&s, &placed);
        assert!(
            (cost - reported).abs() < 1e-6,
            "seed {seed}: reported {reported}, billed {cost}"
        );
        let (batch_cost, batch_placed, proven) = batch(&s, &catalog);
        if !proven || batch_placed != s.jobs.len() {
            continue;
        }
        compared += 1;
        if !s.commitments.is_empty() {
            with_commitments += 1;
        }
        if s.sites.iter().any(|x| x.3) {
            with_reserved += 1;
        }
        assert_eq!(placed.len(), s.jobs.len(), "seed {seed}");
        assert!(
            (cost - batch_cost).abs() < 0.005,
            "seed {seed}: cycle ${cost:.4} vs proven batch plan ${batch_cost:.4}"
        );
    }
    assert!(compared >= 60, "only {compared} snapshots compared");
    assert!(with_commitments >= 20, "{with_commitments}");
    assert!(with_reserved >= 15, "{with_reserved}");
}
