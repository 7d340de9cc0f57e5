//! A scenario, validated (the YAML edge is `skyward-spec::scenario`):
//! sites with capacity and prices over time, demand streams, faults,
//! contracts, and the policies to compare. Times are milliseconds from the
//! scenario's start (the core's clock); the start date places them on the
//! calendar for contracts and years.

use serde::Serialize;
use skyward_core::{JobSpec, Millis};
use skyward_ledger::contracts::Contract;
use skyward_ledger::Timestamp;
use skyward_model::{RegionKey, Usd};

pub const MS_PER_HOUR: Millis = 3_600_000;
pub const MS_PER_DAY: Millis = 24 * MS_PER_HOUR;
/// Years a scenario may cover.
pub const YEARS_MAX: u32 = 30;
pub const SITES_MAX: usize = 10_000;
pub const STREAMS_MAX: usize = 1_000;
pub const FAULTS_MAX: usize = 100_000;
/// Savings plans and reservations a scenario may have: each is settled for
/// every hour of the horizon, and each reserved region and SKU keeps its
/// usage per hour (at 30 years, 263,000 hours).
pub const HOURLY_CONTRACTS_MAX: usize = 32;
/// Outages a scenario may expect over its horizon (scheduled ones and each
/// rate × years): they are drawn before the run.
pub const OUTAGES_MAX: f64 = 1_000_000.0;
/// A workload's work is at most 100 years: drawn work is clamped to it
/// (a long tail would otherwise overflow the millisecond clock).
pub const WORK_HOURS_MAX: f64 = 876_600.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// The first day (midnight UTC).
    pub start: Timestamp,
    pub years: u32,
    pub sites: Vec<SiteModel>,
    pub demand: Vec<Stream>,
    pub faults: Vec<Fault>,
    pub contracts: Vec<Contract>,
    /// Run in this order on the same seeded inputs.
    pub policies: Vec<Policy>,
    pub options: Options,
}

impl Scenario {
    /// The end of the horizon, in ms from the start: `years` calendar
    /// years after the start date.
    pub fn horizon_ms(&self) -> Millis {
        self.ms_at(self.start.plus_months(12 * i64::from(self.years)))
    }

    /// A calendar time as ms from the start (0 before it).
    pub fn ms_at(&self, t: Timestamp) -> Millis {
        (t.0 - self.start.0).max(0) as Millis * 1000
    }

    /// A time on the simulated clock on the calendar (second resolution).
    pub fn timestamp(&self, ms: Millis) -> Timestamp {
        Timestamp(self.start.0 + (ms / 1000) as i64)
    }

    /// Where each scenario year starts, in ms: years are calendar years
    /// from the start date, like contract years.
    pub fn year_starts_ms(&self) -> Vec<Millis> {
        (0..self.years)
            .map(|y| self.ms_at(self.start.plus_months(12 * i64::from(y))))
            .collect()
    }
}

/// The scenario year (0-based) `ms` falls in, from
/// [`Scenario::year_starts_ms`].
pub fn year_index(starts: &[Millis], ms: Millis) -> usize {
    starts.partition_point(|&s| s <= ms).saturating_sub(1)
}

/// Knobs of the simulated control plane; the defaults are the server's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Scheduling cycles start at most this often (the core's
    /// `cycle_min_gap_ms`; the server's default is 5 ms). Years of demand
    /// run faster with a coarser gap, as a server so configured would.
    pub cycle_min_gap_ms: Millis,
    /// How long after a site goes dark the control plane gives up on it
    /// (the server's heartbeat timeout).
    pub detection_ms: Millis,
    /// How often the `skyward` policy's commitments' live state is
    /// recomputed from the simulated ledger.
    pub commitments_refresh_ms: Millis,
    /// Walltimes are the work rounded up to this many percent (users'
    /// estimates are coarser than the truth; runs end at the truth).
    pub walltime_step_pct: f64,
    /// Workloads a run may submit in all (bounds time and memory).
    pub workloads_max: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cycle_min_gap_ms: 5,
            detection_ms: 15_000,
            commitments_refresh_ms: 7 * MS_PER_DAY,
            walltime_step_pct: 5.0,
            workloads_max: 50_000_000,
        }
    }
}

/// A place work runs, as it changes over the horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteModel {
    pub name: String,
    pub region: RegionKey,
    pub accelerator: String,
    /// Accelerators from each time on (the first entry's time is when the
    /// site appears: a new chip generation arrives then), ascending.
    pub capacity: Vec<(Millis, u32)>,
    /// List price when the site appears.
    pub price_usd_per_accelerator_hour: Usd,
    /// The price moves by this much a year (−20: falls 20 % a year),
    /// compounded and applied at each month's start.
    pub price_change_pct_per_year: f64,
    /// Prices set from a time on, replacing the path (a step change).
    pub price_steps: Vec<(Millis, Usd)>,
    pub spot: bool,
    /// Spot preemptions per run-hour (each run's time to preemption is
    /// exponential with this rate).
    pub preemptions_per_hour: f64,
    /// Reserved capacity paid for anyway: running there is free at the
    /// margin and burns no commitment.
    pub prepaid: bool,
}

impl SiteModel {
    pub fn appears_ms(&self) -> Millis {
        self.capacity.first().map_or(0, |c| c.0)
    }

    pub fn capacity_at(&self, ms: Millis) -> u32 {
        self.capacity
            .iter()
            .take_while(|(t, _)| *t <= ms)
            .last()
            .map_or(0, |c| c.1)
    }

    /// The list price at `ms`: the last step at or before it, else the
    /// path from the site's appearance, in whole months.
    pub fn price_at(&self, ms: Millis, months_since_appearing: u32) -> Usd {
        if let Some((_, p)) = self.price_steps.iter().take_while(|(t, _)| *t <= ms).last() {
            return *p;
        }
        if self.price_change_pct_per_year == 0.0 {
            return self.price_usd_per_accelerator_hour;
        }
        let factor = (1.0 + self.price_change_pct_per_year / 100.0)
            .max(0.0)
            .powf(f64::from(months_since_appearing) / 12.0);
        self.price_usd_per_accelerator_hour.times(factor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Train,
    Batch,
    Serve,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Train => "train",
            Kind::Batch => "batch",
            Kind::Serve => "serve",
        }
    }
}

/// A distribution of work hours (on the stream's first accelerator).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    Fixed {
        hours: f64,
    },
    Exponential {
        mean_hours: f64,
    },
    Uniform {
        min_hours: f64,
        max_hours: f64,
    },
    /// exp(N(ln median, sigma²)).
    LogNormal {
        median_hours: f64,
        sigma: f64,
    },
}

impl Dist {
    pub fn mean_hours(&self) -> f64 {
        match *self {
            Dist::Fixed { hours } => hours,
            Dist::Exponential { mean_hours } => mean_hours,
            Dist::Uniform {
                min_hours,
                max_hours,
            } => (min_hours + max_hours) / 2.0,
            Dist::LogNormal {
                median_hours,
                sigma,
            } => median_hours * (sigma * sigma / 2.0).exp(),
        }
    }
}

/// A recorded trace a stream replays: its tasks back to back over the
/// horizon, each copied `scale` × growth times on average.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The file it came from, for reports.
    pub source: String,
    /// Tasks in arrival order.
    pub records: Vec<TraceRecord>,
    /// The trace's length: the replay starts over after it.
    pub span_ms: Millis,
    /// Copies of each task at the start (growth applies on top).
    pub scale: f64,
    /// The trace's format, as the scenario names it.
    pub format: String,
    /// Rows not replayed, by reason (no GPU, never scheduled…).
    pub dropped: Vec<(String, u64)>,
}

/// One recorded task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRecord {
    /// From the trace's start.
    pub at_ms: Millis,
    pub hours: f64,
    /// Accelerators per node it asked for (None: the stream's).
    pub count: Option<u32>,
}

/// A stream of workloads from a generator or a replayed trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stream {
    pub name: String,
    pub kind: Kind,
    /// Mean arrivals per hour at the start.
    pub arrivals_per_hour: f64,
    /// Instead of Poisson arrivals: one every this long from `from_ms`
    /// (no growth or seasonality), for scenarios worked by hand.
    pub every_ms: Option<Millis>,
    /// The rate grows by this much a year (compounded continuously
    /// between year ends: the rate a year in is exactly 1 + g).
    pub growth_pct_per_year: f64,
    /// Daily and weekly seasonality: the rate swings ± this share of its
    /// level (a sine peaking at 14:00 UTC and on Wednesdays).
    pub daily_amplitude_pct: f64,
    pub weekly_amplitude_pct: f64,
    /// Arrivals only in [from, until).
    pub from_ms: Millis,
    pub until_ms: Option<Millis>,
    /// What each workload asks for, as the server's workload file says it
    /// (`hours` is set per workload from `hours` below).
    pub job: JobSpec,
    pub hours: Dist,
    /// Work since the last checkpoint is lost when a run is cut short;
    /// None: all of it.
    pub checkpoint_interval_ms: Option<Millis>,
    /// A serving workload not (re)started within this long misses its
    /// SLO.
    pub slo_start_ms: Option<Millis>,
    /// Replayed instead of generated (`arrivals_per_hour`, seasonality
    /// and `hours` then do not apply; growth does).
    #[serde(skip)]
    pub trace: Option<std::sync::Arc<Trace>>,
}

/// What an outage takes down.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Site(String),
    Region { provider: String, region: String },
    Provider(String),
}

impl Scope {
    pub fn covers(&self, s: &SiteModel) -> bool {
        match self {
            Scope::Site(n) => *n == s.name,
            Scope::Region { provider, region } => {
                *provider == s.region.provider && *region == s.region.region
            }
            Scope::Provider(p) => *p == s.region.provider,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Once, at a time, for a duration.
    At { at_ms: Millis, duration_ms: Millis },
    /// A Poisson process with exponential durations.
    Rate {
        per_year: f64,
        mean_duration_ms: Millis,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub scope: Scope,
    pub when: When,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Policy {
    /// Global placement with the commitments' live state, failover.
    Skyward,
    /// Each task at the cheapest allowed list price, failover by
    /// avoiding what failed, commitments unseen (SkyPilot's way).
    CheapestPerTask,
    /// Only this provider's sites.
    SingleCloud(String),
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s.trim() {
            "skyward" => Ok(Policy::Skyward),
            "cheapest-per-task" => Ok(Policy::CheapestPerTask),
            other => match other.strip_prefix("single-cloud:") {
                Some(p) if !p.trim().is_empty() => {
                    Ok(Policy::SingleCloud(p.trim().to_ascii_lowercase()))
                }
                _ => Err(format!(
                    "unknown policy '{other}': skyward, cheapest-per-task or single-cloud:PROVIDER"
                )),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            Policy::Skyward => "skyward".into(),
            Policy::CheapestPerTask => "cheapest-per-task".into(),
            Policy::SingleCloud(p) => format!("single-cloud:{p}"),
        }
    }
}
