//! Skyward's simulator: years of demand, prices, new chips, spot and
//! outages, run through the real control-plane core (`skyward-core`, and
//! the placement engine it uses) on a simulated clock, with money by the
//! ledger's rules (`skyward-ledger`). Pure and deterministic: the same
//! scenario and seed give the same report, byte for byte; no clock, no
//! I/O, no global randomness (STYLE.md; Armada's simulator's leaks are the
//! lesson).
//!
//! - [`scenario`]: the validated scenario (the YAML edge is
//!   `skyward-spec::scenario`);
//! - [`demand`]: arrivals and work sizes, as iterators;
//! - [`run`]: the event loop driving the core;
//! - [`report`]: tallies and the report per year and in total;
//! - [`sweep`]: the scenario over a grid of knobs.

pub mod demand;
pub mod hourly;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sweep;

pub use report::PolicyReport;
pub use run::{run, Progress};
pub use scenario::{Policy, Scenario};

use serde::Serialize;

/// Every policy's run of a scenario, on the same seeded inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    pub start: String,
    pub years: u32,
    pub seed: u64,
    /// The recorded traces the streams replay, for the report's sources.
    pub traces: Vec<TraceSource>,
    pub policies: Vec<PolicyReport>,
}

/// A replayed trace, as a report names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSource {
    pub stream: String,
    pub file: String,
    pub format: String,
    /// Tasks replayed per pass.
    pub tasks: u64,
    /// Rows not replayed, by reason.
    pub dropped: Vec<(String, u64)>,
}

impl TraceSource {
    /// The traces `sc`'s streams replay, in stream order.
    pub fn of(sc: &Scenario) -> Vec<TraceSource> {
        sc.demand
            .iter()
            .filter_map(|d| {
                let t = d.trace.as_ref()?;
                Some(TraceSource {
                    stream: d.name.clone(),
                    file: t.source.clone(),
                    format: t.format.clone(),
                    tasks: t.records.len() as u64,
                    dropped: t.dropped.clone(),
                })
            })
            .collect()
    }
}

/// Runs each policy in turn (the scenario's, or `policies` when given).
pub fn simulate(
    sc: &Scenario,
    policies: &[Policy],
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Report {
    let list = if policies.is_empty() {
        &sc.policies[..]
    } else {
        policies
    };
    Report {
        scenario: sc.name.clone(),
        start: sc.start.date_string(),
        years: sc.years,
        seed,
        traces: TraceSource::of(sc),
        policies: list.iter().map(|p| run(sc, p, seed, progress)).collect(),
    }
}
