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
    /// Work in hours on the first accelerator alternative (scaled by
    /// relative speed on the others, as `skyward plan` does): the run's
    /// walltime unless `max_runtime_ms` is given.
    pub hours: Option<f64>,
    /// Walltime on any accelerator, overriding `hours`.
    pub max_runtime_ms: Option<Millis>,
    /// Higher-priority work may stop it to take its capacity (it is
    /// requeued, and resumes from its checkpoint).
    pub preemptible: bool,
    /// The team it belongs to: fair share and quotas are per team.
    pub team: String,
    /// After a site fails it: where the next attempt may go, and how many
    /// restarts it gets.
    pub recovery: skyward_model::Recovery,
    /// Accelerators among the alternatives its variants give no way to
    /// run on: no site of theirs takes it ("no variant …").
    pub no_variant: Vec<String>,
    /// Learned rates per alternative (`H100:8` → tokens/s or any unit,
    /// the same for all): hours scale by their ratio instead of the
    /// datasheet's when the first alternative and the other both have one.
    pub throughput: std::collections::BTreeMap<String, f64>,
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
    /// Reserved capacity paid for whether used or not: running on it
    /// costs nothing at the margin (it is used first), and its usage burns
    /// no spend commitment (its fee was billed when it was bought).
    pub prepaid: bool,
}

/// A commitment as the scheduler sees it now: how much more billed spend
/// on its provider it will charge anyway (the forecast shortfall: the
/// commitment less what is burned and forecast to burn by the term's end),
/// and its discount. From the ledger, by `skyward_ledger::live`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCommitment {
    pub name: String,
    pub provider: String,
    pub discount_pct: f64,
    /// Billed dollars that cost nothing at the margin.
    pub free_usd: Usd,
}

impl LiveCommitment {
    /// The scheduler's view of the ledger's live state
    /// (`skyward_ledger::live`): one conversion for the server and the
    /// simulator.
    pub fn from_ledger(live: &[skyward_ledger::live::LiveCommitment]) -> Vec<LiveCommitment> {
        live.iter()
            .map(|c| LiveCommitment {
                name: c.name.clone(),
                provider: c.provider.clone(),
                discount_pct: c.discount_pct,
                free_usd: Usd::from_micros(
                    (c.free.0 / 1_000_000).clamp(0, i128::from(i64::MAX)) as i64
                ),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Input {
    /// The commitments' live state (replaces the last one).
    Commitments {
        live: Vec<LiveCommitment>,
    },
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
        /// When the run ended by the site's own record (its exit file),
        /// if known: usage is billed to then, not to when the core heard
        /// of it (a server that was down hears late).
        ended_at: Option<Millis>,
    },
    /// The site is gone from the configuration: its runs are stopped
    /// (their usage recorded at its price) and requeued elsewhere, and it
    /// is forgotten.
    RemoveSite {
        site: String,
    },
    /// The site is taken out on purpose (an outage drill): as if it were
    /// lost, its work is stopped and requeued elsewhere, and it takes none
    /// until it is heard from again. Not counted as a failure of the
    /// workloads (no backoff, no restart used).
    TakeOut {
        site: String,
    },
    /// The site says this dispatch never started (no process of it ever
    /// ran, for example a server killed between recording the run and
    /// starting it): requeued, and nothing is billed for it.
    NeverStarted {
        id: WorkloadId,
        site: String,
        attempt: u32,
    },
    /// The site stopped a run the core asked it to stop (`CancelOnSite`):
    /// a run being preempted is requeued only now, so it never runs in two
    /// places at once (and a run the core still believes in after a
    /// restart is requeued too). About runs it has moved past (cancelled,
    /// already requeued) it changes nothing.
    Stopped {
        id: WorkloadId,
        site: String,
        attempt: u32,
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

/// Somewhere a workload avoids after a site failed it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Avoid {
    Site(String),
    Region(skyward_model::RegionKey),
    Provider(String),
}

/// A workload's failover state: kept with it, so a restart neither forgets
/// its restarts nor sends it back where it just failed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct Failover {
    /// Sites failed it this many times (losses, not its own exits).
    pub failures: u32,
    /// The last site that failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_site: Option<String>,
    /// Where it avoids, until when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid: Vec<(Avoid, Millis)>,
}

/// What the runtime persists, in order; [`crate::Core::restore`] rebuilds
/// the core from them after a restart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Record {
    Submitted {
        id: WorkloadId,
        /// Boxed: a spec is much larger than the other records.
        spec: Box<JobSpec>,
        at: Millis,
    },
    Transition {
        id: WorkloadId,
        state: State,
        at: Millis,
    },
    /// A site failed it: its failover state now.
    Failover {
        id: WorkloadId,
        failover: Failover,
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
        /// The run's walltime on this site's accelerator (from
        /// `max_runtime_ms`, else `hours` scaled by relative speed); the
        /// executor ends the run when it is over.
        walltime_ms: Option<Millis>,
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
