#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]
//! Small hand-made catalogs and fleets for placement tests.

use skyward_catalog::{AcceleratorTable, Catalog, Network};
use skyward_model::{
    AcceleratorRequest, Contract, Fleet, Offering, PlanSettings, Quota, RegionKey,
    ReservedCapacity, Usd, Workload, WorkloadKind,
};

pub fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

pub fn offering(
    provider: &str,
    region: &str,
    sku: &str,
    accel: &str,
    count: u32,
    od: Option<&str>,
    spot: Option<&str>,
) -> Offering {
    Offering {
        region: RegionKey::new(provider, region),
        sku: sku.into(),
        accelerator: accel.into(),
        accelerator_count: count,
        vcpus: 96.0,
        memory_gib: 1024.0,
        on_demand_usd_per_hour: od.map(usd),
        spot_usd_per_hour: spot.map(usd),
        zones: 1,
        source: "test".into(),
    }
}

pub fn catalog(offerings: Vec<Offering>) -> Catalog {
    Catalog {
        offerings,
        accelerators: AcceleratorTable::builtin(),
        network: Network::builtin(),
        origin: "test".into(),
    }
}

/// A small multi-cloud catalog with round prices.
pub fn small_catalog() -> Catalog {
    catalog(vec![
        offering(
            "aws",
            "us-east-1",
            "p5.48xlarge",
            "H100",
            8,
            Some("40"),
            Some("12"),
        ),
        offering(
            "aws",
            "eu-west-1",
            "p5.48xlarge",
            "H100",
            8,
            Some("44"),
            None,
        ),
        offering(
            "gcp",
            "us-central1",
            "a3-highgpu-8g",
            "H100",
            8,
            Some("30"),
            Some("20"),
        ),
        offering(
            "gcp",
            "europe-west4",
            "a3-highgpu-8g",
            "H100",
            8,
            Some("36"),
            None,
        ),
        offering(
            "azure",
            "eastus",
            "Standard_ND96isr_H100_v5",
            "H100",
            8,
            Some("50"),
            None,
        ),
        offering(
            "lambda",
            "us-east-1",
            "gpu_8x_b200_sxm6",
            "B200",
            8,
            Some("60"),
            None,
        ),
        offering(
            "oci",
            "us-ashburn-1",
            "BM.GPU.A10.4",
            "A10",
            4,
            Some("8"),
            None,
        ),
    ])
}

pub fn workload(name: &str, accels: &[&str], nodes: u32, hours: f64) -> Workload {
    let accelerators: Vec<AcceleratorRequest> = accels
        .iter()
        .map(|a| AcceleratorRequest::parse(a).unwrap())
        .collect();
    Workload::new(name, WorkloadKind::Train, accelerators, nodes, hours)
}

pub fn fleet(workloads: Vec<Workload>) -> Fleet {
    Fleet {
        workloads,
        capacity: vec![],
        quotas: vec![],
        contracts: vec![],
        settings: PlanSettings::default(),
    }
}

pub fn pool(
    name: &str,
    provider: &str,
    region: &str,
    sku: &str,
    accel: &str,
    nodes: u32,
) -> ReservedCapacity {
    ReservedCapacity {
        name: name.into(),
        region: RegionKey::new(provider, region),
        sku: sku.into(),
        accelerator: AcceleratorRequest::parse(accel).unwrap(),
        nodes,
        hourly_usd: usd("35"),
    }
}

pub fn quota(provider: &str, region: Option<&str>, accel: &str, max: u32) -> Quota {
    Quota {
        provider: provider.into(),
        region: region.map(String::from),
        accelerator: accel.into(),
        max,
    }
}

pub fn contract(provider: &str, commit: i64, discount_pct: f64) -> Contract {
    Contract {
        name: format!("{provider}-commit"),
        provider: provider.into(),
        commit_usd: Usd::from_dollars(commit),
        discount_pct,
    }
}
