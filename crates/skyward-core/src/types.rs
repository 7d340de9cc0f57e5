//! Inputs, commands and records of the core.

use serde::Serialize;
use skyward_model::{AcceleratorRequest, RegionKey, SpotPolicy, Usd};

/// Milliseconds on the caller's clock (real or simulated).
pub type Millis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadId(pub u64);

/// What a submitted workload asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    pub name: String,
    /// Alternatives per node, as in a fleet file.
    pub accelerators: Vec<AcceleratorRequest>,
    /// Gang size: all on one site, or not at all.
    pub nodes: u32,
    /// Higher first; FIFO within a priority.
    pub priority: i32,
    pub providers: Vec<String>,
    /// `region` or `provider:region`.
    pub regions: Vec<String>,
    pub residency: Vec<String>,
    pub compliance: Vec<String>,
    /// Whether spot sites may run it (as in a fleet file; default never).
    pub spot: SpotPolicy,
}

/// A place work runs: a provider region (or cluster) with capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteSpec {
    pub name: String,
    pub region: RegionKey,
    /// Accelerator model this site has (`H100`).
    pub accelerator: String,
    /// Accelerators on the site.
    pub accelerators: u32,
    pub price_usd_per_accelerator_hour: Usd,
    /// Spot capacity: only for work that allows spot.
    pub spot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Input {
    /// A submission the runtime has already persisted.
    Submit {
        id: WorkloadId,
        spec: JobSpec,
    },
    Cancel {
        id: WorkloadId,
    },
    /// A site (re-)registers, saying which workloads it is running: the
    /// core takes back any it believed were there (a site that restarted
    /// lost them).
    RegisterSite {
        spec: SiteSpec,
        running: Vec<WorkloadId>,
    },
    Heartbeat {
        site: String,
    },
    /// Executor messages carry the dispatch's attempt: one about an older
    /// attempt is stale and changes nothing.
    DispatchAcked {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
    Started {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
    Finished {
        id: WorkloadId,
        site: String,
        attempt: u32,
        success: bool,
    },
    /// The site took the capacity back (spot); the job resumes elsewhere
    /// from its checkpoint.
    Preempted {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum State {
    Pending,
    Dispatched {
        site: String,
        accelerators: u32,
    },
    Running {
        site: String,
        accelerators: u32,
        since: Millis,
    },
    Done(Outcome),
}

/// What the runtime persists, in order; [`crate::Core::restore`] rebuilds
/// the core from them after a restart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Record {
    Submitted {
        id: WorkloadId,
        spec: JobSpec,
        at: Millis,
    },
    Transition {
        id: WorkloadId,
        state: State,
        at: Millis,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Command {
    /// Start the workload on the site with this many accelerators.
    /// `attempt` is a fencing token: a site must refuse a dispatch whose
    /// attempt it has already seen cancelled.
    Dispatch {
        id: WorkloadId,
        site: String,
        accelerators: u32,
        attempt: u32,
    },
    /// Stop it there (cancelled, or the core gave up on the site).
    CancelOnSite {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
    /// Persist before acting on anything that depends on it.
    Persist(Record),
    /// Usage of one run, exactly once per run that started.
    RecordUsage {
        id: WorkloadId,
        site: String,
        /// The run's dispatch attempt: (id, attempt) is unique.
        attempt: u32,
        accelerators: u32,
        accelerator_hours: f64,
        cost_usd: Usd,
        from: Millis,
        to: Millis,
    },
}
