//! Seeded random fleets over a catalog, for benchmarks and property tests.
//! Pure: one `u64` seed gives one fleet.

use skyward_catalog::Catalog;
use skyward_model::{
    AcceleratorRequest, Contract, DataSpec, Fleet, PlanSettings, Quota, RegionKey,
    ReservedCapacity, SpotPolicy, Usd, Workload, WorkloadKind,
};
use std::collections::BTreeMap;

/// The seeded generator (re-exported for the bench and tests).
pub type Rng = skyward_model::rng::SplitMix64;

/// Helpers over the generator used only here.
trait Pick {
    fn chance(&mut self, p: f64) -> bool;
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;
}

impl Pick for Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Accelerator alternative sets a lab would write.
const ALTERNATIVES: &[&[&str]] = &[
    &["H100:8", "H200:8", "B200:8"],
    &["H100:8"],
    &["H200:8", "H100:8"],
    &["B200:8", "GB200:4"],
    &["A100-80GB:8", "A100:8", "H100:8"],
    &["L4:1", "A10G:1", "T4:1"],
    &["L40S:4", "A100:4"],
    &["MI300X:8", "H100:8"],
    &["tpu-v5p-8:1", "tpu-v5litepod-8:1"],
    &["Trainium:16", "H100:8"],
    &["A10:1", "L4:1"],
];

/// The alternative sets, each cut to the accelerators the catalog offers
/// (a set left empty is dropped).
fn available_sets(catalog: &Catalog, sets: &[&[&str]]) -> Vec<Vec<AcceleratorRequest>> {
    sets.iter()
        .map(|set| {
            set.iter()
                .filter_map(|a| AcceleratorRequest::parse(a).ok())
                .filter(|r| alternative_exists(catalog, r))
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

#[derive(Debug, Clone)]
pub struct GenSettings {
    pub workloads: usize,
    /// Include quotas, reserved pools and two contracts.
    pub coupling: bool,
    /// Include residency/compliance/latency/data constraints.
    pub constraints: bool,
}

fn alternative_exists(catalog: &Catalog, req: &AcceleratorRequest) -> bool {
    catalog
        .offerings
        .iter()
        .any(|o| o.accelerator.eq_ignore_ascii_case(&req.name) && o.accelerator_count == req.count)
}

pub fn fleet(catalog: &Catalog, seed: u64, s: &GenSettings) -> Fleet {
    let mut rng = Rng::new(seed);
    let sets = available_sets(catalog, ALTERNATIVES);
    let regions: Vec<RegionKey> = catalog.regions().into_iter().cloned().collect();
    let user_origins: Vec<RegionKey> = [
        "aws:us-east-1",
        "azure:westeurope",
        "gcp:europe-west4",
        "gcp:us-central1",
        "aws:us-west-2",
        "aws:ap-northeast-1",
    ]
    .iter()
    .filter_map(|r| RegionKey::parse(r))
    .collect();
    let mut workloads = Vec::with_capacity(s.workloads);
    for i in 0..s.workloads {
        let accelerators = rng.pick(&sets).clone();
        let kind = *rng.pick(&[
            WorkloadKind::Train,
            WorkloadKind::Train,
            WorkloadKind::Batch,
            WorkloadKind::Serve,
        ]);
        let (nodes, replicas) = match kind {
            WorkloadKind::Train => (*rng.pick(&[1, 2, 4, 8, 16, 32]), 1),
            WorkloadKind::Batch => (*rng.pick(&[1, 1, 2, 4]), 1),
            WorkloadKind::Serve => (1, *rng.pick(&[1, 2, 4, 8])),
        };
        let hours = *rng.pick(&[24.0, 72.0, 168.0, 336.0, 720.0]);
        let spot = match kind {
            WorkloadKind::Serve => SpotPolicy::Never,
            _ => *rng.pick(&[
                SpotPolicy::Never,
                SpotPolicy::Allowed,
                SpotPolicy::Allowed,
                SpotPolicy::Required,
            ]),
        };
        let mut w = Workload::new(&format!("w{i:05}"), kind, accelerators, nodes, hours);
        w.replicas = replicas;
        w.spot = spot;
        if s.constraints {
            if rng.chance(0.2) {
                w.residency = vec!["eu".into()];
            } else if rng.chance(0.25) {
                w.residency = vec!["us".into()];
            }
            if rng.chance(0.1) {
                w.compliance = vec!["hipaa".into()];
            }
            if rng.chance(0.15) {
                w.providers = vec![
                    rng.pick(&["aws", "gcp", "azure", "oci"]).to_string(),
                    rng.pick(&["aws", "gcp", "lambda"]).to_string(),
                ];
            }
            if kind == WorkloadKind::Serve && rng.chance(0.6) {
                w.users = vec![rng.pick(&user_origins).clone()];
                w.latency_ms = Some(*rng.pick(&[40.0, 60.0, 100.0]));
            }
            if kind != WorkloadKind::Serve && rng.chance(0.2) && !regions.is_empty() {
                w.data = Some(DataSpec {
                    region: rng.pick(&regions).clone(),
                    gb: *rng.pick(&[500.0, 5_000.0, 40_000.0]),
                });
            }
        }
        workloads.push(w);
    }
    let mut fleet = Fleet {
        workloads,
        settings: PlanSettings::default(),
        ..Fleet::default()
    };
    if s.coupling {
        let scale = (s.workloads as u32).max(10);
        let pools: &[(&str, &str, &str, &str, u32)] = &[
            ("aws-east-p5", "aws", "us-east-1", "p5.48xlarge", scale / 2),
            (
                "gcp-central-a3",
                "gcp",
                "us-central1",
                "a3-highgpu-8g",
                scale / 4,
            ),
            (
                "oci-gb200",
                "oci",
                "us-ashburn-1",
                "BM.GPU.GB200.4",
                scale / 4,
            ),
            (
                "azure-nd-h100",
                "azure",
                "eastus",
                "Standard_ND96isr_H100_v5",
                scale / 8,
            ),
        ];
        for (name, p, r, sku, nodes) in pools {
            let Some(o) = catalog
                .offerings
                .iter()
                .find(|o| o.region.provider == *p && o.region.region == *r && o.sku == *sku)
            else {
                continue;
            };
            fleet.capacity.push(ReservedCapacity {
                name: name.to_string(),
                region: o.region.clone(),
                sku: o.sku.clone(),
                accelerator: AcceleratorRequest {
                    name: o.accelerator.clone(),
                    count: o.accelerator_count,
                },
                nodes: (*nodes).max(2),
                hourly_usd: o.on_demand_usd_per_hour.unwrap_or(Usd::ZERO),
            });
        }
        let quotas: &[(&str, Option<&str>, &str, u32)] = &[
            ("gcp", Some("us-central1"), "H100", scale * 2),
            ("aws", None, "H100", scale * 4),
            ("lambda", None, "H100", scale),
            ("lambda", None, "B200", scale),
            ("oci", None, "MI300X", scale),
            ("aws", Some("us-east-1"), "L4", scale / 2 + 1),
            ("gcp", None, "tpu-v5p-8", scale / 4 + 1),
        ];
        for (p, r, a, max) in quotas {
            fleet.quotas.push(Quota {
                provider: p.to_string(),
                region: r.map(String::from),
                accelerator: a.to_string(),
                max: *max,
            });
        }
        fleet.contracts.push(Contract {
            name: "aws-edp".into(),
            provider: "aws".into(),
            commit_usd: Usd::from_dollars(i64::from(scale) * 40_000),
            discount_pct: 12.0,
        });
        fleet.contracts.push(Contract {
            name: "azure-macc".into(),
            provider: "azure".into(),
            commit_usd: Usd::from_dollars(i64::from(scale) * 15_000),
            discount_pct: 18.0,
        });
    }
    fleet
}

/// A tightly coupled fleet: every workload is a GPU gang that competes for
/// per-provider accelerator quotas (about 85 % of demand fits), two small
/// reserved pools, a discount-only contract and a commitment that is hard
/// to fill. Every option uses a limited row, so the count placed matters
/// as much as the cost: the shape where greedy placement is weakest.
pub fn tight_fleet(catalog: &Catalog, seed: u64, workloads: usize) -> Fleet {
    let mut rng = Rng::new(seed);
    const PROVIDERS: &[&str] = &["aws", "gcp", "azure", "lambda", "oci"];
    let sets = available_sets(
        catalog,
        &[
            &["H100:8"],
            &["H100:8", "H200:8"],
            &["H200:8", "H100:8"],
            &["A100-80GB:8", "H100:8"],
            &["B200:8", "H100:8"],
        ],
    );
    let mut list = Vec::with_capacity(workloads);
    // Demand in accelerators per (accelerator, provider) it could use,
    // weighted by how many places each workload may go.
    let mut demand: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut gpu_hours = 0.0;
    for i in 0..workloads {
        let accelerators = rng.pick(&sets).clone();
        let nodes = *rng.pick(&[1u32, 1, 2, 2, 3, 4, 8]);
        let hours = *rng.pick(&[24.0, 72.0, 168.0, 336.0]);
        let kind = *rng.pick(&[
            WorkloadKind::Train,
            WorkloadKind::Train,
            WorkloadKind::Batch,
        ]);
        let mut w = Workload::new(&format!("t{i:05}"), kind, accelerators, nodes, hours);
        if rng.chance(0.3) {
            w.spot = SpotPolicy::Allowed;
        }
        let mut allowed: Vec<&str> = PROVIDERS
            .iter()
            .copied()
            .filter(|_| rng.chance(0.6))
            .collect();
        if allowed.is_empty() {
            allowed.push(*rng.pick(PROVIDERS));
        }
        w.providers = allowed.iter().map(|p| p.to_string()).collect();
        let gpus = f64::from(nodes) * 8.0;
        gpu_hours += gpus * hours;
        let places = (allowed.len() * w.accelerators.len()) as f64;
        for a in &w.accelerators {
            for p in &allowed {
                *demand.entry((a.name.clone(), p.to_string())).or_default() += gpus / places;
            }
        }
        list.push(w);
    }
    let mut fleet = Fleet {
        workloads: list,
        settings: PlanSettings::default(),
        ..Fleet::default()
    };
    for ((accelerator, provider), gpus) in &demand {
        // 85 % of the demand that could land here, rounded to whole nodes.
        let max = ((gpus * 0.85 / 8.0).floor() as u32).max(1) * 8;
        fleet.quotas.push(Quota {
            provider: provider.clone(),
            region: None,
            accelerator: accelerator.clone(),
            max,
        });
    }
    let pool_nodes = (workloads as u32 / 40).max(2);
    for (name, p, r, sku) in [
        ("aws-east-p5", "aws", "us-east-1", "p5.48xlarge"),
        ("gcp-central-a3", "gcp", "us-central1", "a3-highgpu-8g"),
    ] {
        if let Some(o) = catalog
            .offerings
            .iter()
            .find(|o| o.region.provider == p && o.region.region == r && o.sku == sku)
        {
            fleet.capacity.push(ReservedCapacity {
                name: name.to_string(),
                region: o.region.clone(),
                sku: o.sku.clone(),
                accelerator: AcceleratorRequest {
                    name: o.accelerator.clone(),
                    count: o.accelerator_count,
                },
                nodes: pool_nodes,
                hourly_usd: o.on_demand_usd_per_hour.unwrap_or(Usd::ZERO),
            });
        }
    }
    // About $4 a GPU-hour at list; a fifth of all spend committed to
    // Azure, which most workloads could avoid.
    let list_estimate = gpu_hours * 4.0;
    fleet.contracts.push(Contract {
        name: "gcp-discount".into(),
        provider: "gcp".into(),
        commit_usd: Usd::ZERO,
        discount_pct: 25.0,
    });
    fleet.contracts.push(Contract {
        name: "azure-macc".into(),
        provider: "azure".into(),
        commit_usd: Usd::from_dollars((list_estimate * 0.2) as i64),
        discount_pct: 10.0,
    });
    fleet
}
