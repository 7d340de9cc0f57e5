//! A fleet: the workloads to place and the world they are placed in
//! (reserved capacity, quotas, contracts). These are validated values; the
//! YAML edge (`skyward-spec`) builds them and reports errors with lines.

use crate::accel::AcceleratorRequest;
use crate::money::Usd;
use crate::region::RegionKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Train,
    Batch,
    Serve,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Train => "train",
            WorkloadKind::Batch => "batch",
            WorkloadKind::Serve => "serve",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpotPolicy {
    Never,
    Allowed,
    Required,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AlternativeScope {
    pub providers: Vec<String>,
    pub regions: Vec<String>,
}

/// Data the workload reads, which costs egress to move.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSpec {
    pub region: RegionKey,
    pub gb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub name: String,
    pub kind: WorkloadKind,
    /// Alternatives, per node; `hours` refers to the first.
    pub accelerators: Vec<AcceleratorRequest>,
    /// Per-alternative restrictions, aligned with `accelerators` (from a
    /// SkyPilot `any_of` item that names its own cloud or region). Empty
    /// lists restrict nothing beyond the workload's own allow-lists.
    pub alternative_scopes: Vec<AlternativeScope>,
    /// Gang size: all nodes in one region on one SKU.
    pub nodes: u32,
    /// Serve: copies of the node group (all in the chosen region).
    pub replicas: u32,
    /// Wall-clock hours on the first alternative.
    pub hours: f64,
    pub spot: SpotPolicy,
    /// Allow-list of providers; empty = any.
    pub providers: Vec<String>,
    /// Allow-list of regions: `region` (any provider) or `provider:region`.
    pub regions: Vec<String>,
    /// Allowed geographies; empty = any.
    pub residency: Vec<String>,
    /// Certifications every chosen region must hold.
    pub compliance: Vec<String>,
    pub max_hourly_usd: Option<Usd>,
    pub data: Option<DataSpec>,
    /// Serve: where requests come from.
    pub users: Vec<RegionKey>,
    /// Serve: RTT bound from every user origin to the chosen region.
    pub latency_ms: Option<f64>,
    /// Measured relative throughput per accelerator request name (Gavel
    /// style); overrides the spec-sheet ratio when given.
    pub throughput: BTreeMap<String, f64>,
    /// Where each `throughput` figure comes from, by accelerator name
    /// (for `explain`): the fleet file, or runs' reports of the class.
    pub speed_sources: BTreeMap<String, String>,
    /// The class whose learned speeds apply (`team/name`, as the server
    /// keeps them); `None`: the workload's name, if one class has it.
    pub class: Option<String>,
    /// Take each learned speed one standard deviation down.
    pub risk_averse: bool,
    /// Alternatives (accelerator names) the workload's `variants:` give
    /// no way to run on: never placed there ("no variant for …").
    pub no_variant: Vec<String>,
}

impl Workload {
    /// A workload with no optional constraint set: any provider, region and
    /// geography, no data, no latency bound.
    pub fn new(
        name: &str,
        kind: WorkloadKind,
        accelerators: Vec<AcceleratorRequest>,
        nodes: u32,
        hours: f64,
    ) -> Workload {
        Workload {
            name: name.to_string(),
            kind,
            alternative_scopes: vec![AlternativeScope::default(); accelerators.len()],
            accelerators,
            nodes,
            replicas: 1,
            hours,
            spot: SpotPolicy::Never,
            providers: Vec::new(),
            regions: Vec::new(),
            residency: Vec::new(),
            compliance: Vec::new(),
            max_hourly_usd: None,
            data: None,
            users: Vec::new(),
            latency_ms: None,
            throughput: BTreeMap::new(),
            speed_sources: BTreeMap::new(),
            class: None,
            risk_averse: false,
            no_variant: Vec::new(),
        }
    }

    /// Nodes held at once: gang size × replicas.
    pub fn nodes_total(&self) -> u32 {
        self.nodes.saturating_mul(self.replicas)
    }
}

/// Reserved capacity already held and prepaid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReservedCapacity {
    pub name: String,
    pub region: RegionKey,
    pub sku: String,
    pub accelerator: AcceleratorRequest,
    pub nodes: u32,
    /// Per node; reported, not charged again.
    pub hourly_usd: Usd,
}

/// A cap on accelerators in use at once (on-demand and spot; reserved
/// capacity is not counted against quotas).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quota {
    pub provider: String,
    /// None: every region of the provider together.
    pub region: Option<String>,
    pub accelerator: String,
    pub max: u32,
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(
                f,
                "{}:{} {} ≤ {}",
                self.provider, r, self.accelerator, self.max
            ),
            None => write!(f, "{} {} ≤ {}", self.provider, self.accelerator, self.max),
        }
    }
}

/// A spend commitment: `commit_usd` is due within the plan's horizon,
/// whatever is spent; all spend on the provider gets `discount_pct` off list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contract {
    pub name: String,
    pub provider: String,
    pub commit_usd: Usd,
    pub discount_pct: f64,
}

/// Knobs of the planner with documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSettings {
    /// Extra hours a spot workload needs for preemptions and restarts from
    /// checkpoints, in percent of its hours. Default 10.
    pub spot_overhead_pct: f64,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            spot_overhead_pct: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fleet {
    pub workloads: Vec<Workload>,
    pub capacity: Vec<ReservedCapacity>,
    pub quotas: Vec<Quota>,
    pub contracts: Vec<Contract>,
    pub settings: PlanSettings,
}
