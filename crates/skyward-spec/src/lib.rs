//! The YAML edge. Two input shapes become one [`skyward_model::Fleet`]:
//!
//! * a Skyward fleet file (`workloads:`, `capacity:`, `quotas:`,
//!   `contracts:`, `settings:`), see [`fleet`];
//! * a SkyPilot task file (`resources:`, `num_nodes:`, `run:` …), one
//!   workload, see [`skypilot`].
//!
//! Parsing is two steps (TensorZero's shape): serde into `Raw*` structs
//! with `deny_unknown_fields`, then validation into model values. Every
//! error names the file, the line when it can be found, and the field path.

pub mod contracts;
pub mod error;
pub mod fleet;
pub mod job;
pub mod locate;
pub mod scenario;
pub mod skypilot;
pub mod text;
pub mod trace;
pub mod variants;

pub use error::SpecError;

use skyward_catalog::Catalog;
use skyward_model::Fleet;

/// Upper bound on a spec file's size.
pub const SPEC_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A parsed input and the notes to show the user (ignored SkyPilot fields,
/// defaults applied).
#[derive(Debug)]
pub struct Parsed {
    pub fleet: Fleet,
    pub notes: Vec<String>,
    pub format: InputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Fleet,
    SkyPilotTask,
    /// A server workload file (one workload, or a `workloads:` list of
    /// them): planned as a fleet of its workloads.
    Workloads,
}

/// A server workload as a fleet workload: what placement reads of it
/// (its run, setup, env and checkpoint are what the server runs, not
/// placed on). `hours` comes from the workload, else from `task.hours`.
fn job_workload(
    j: &job::JobRequest,
    task: &TaskDefaults,
) -> Result<skyward_model::Workload, String> {
    let hours = j
        .hours
        .or(task.hours)
        .ok_or("hours: needed to plan a workload that gives none (or pass --hours)")?;
    let hours = fleet::check_hours(hours).map_err(|m| format!("hours: {m}"))?;
    let accelerators = j
        .accelerators
        .iter()
        .map(|a| skyward_model::AcceleratorRequest::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| format!("accelerators: {m}"))?;
    let mut w = skyward_model::Workload::new(&j.name, j.kind, accelerators, j.nodes, hours);
    w.spot = j.spot;
    w.providers = j.providers.clone();
    w.regions = j.regions.clone();
    w.residency = j.residency.clone();
    w.compliance = j.compliance.clone();
    w.throughput = j.throughput.clone();
    w.speed_sources = j
        .throughput
        .keys()
        .map(|k| (k.clone(), "the workload file's throughput:".to_string()))
        .collect();
    w.risk_averse = j.risk_averse;
    w.no_variant = j.no_variant.clone();
    Ok(w)
}

/// Server workload files planned as a fleet: each workload's own checks
/// (its line and field), then what placement reads of it.
fn workloads_fleet(
    text: &str,
    file: &str,
    catalog: &Catalog,
    task: &TaskDefaults,
) -> Result<Parsed, SpecError> {
    let jobs = job::parse_file(text, file, catalog)?;
    jobs_fleet(&jobs, text, file, task)
}

fn jobs_fleet(
    jobs: &[job::JobRequest],
    text: &str,
    file: &str,
    task: &TaskDefaults,
) -> Result<Parsed, SpecError> {
    let mut fleet = skyward_model::Fleet::default();
    let several = jobs.len() > 1;
    for (i, j) in jobs.iter().enumerate() {
        let w = job_workload(j, task).map_err(|m| {
            let (key, msg) = m.split_once(": ").unwrap_or(("", &m));
            let field = if several {
                format!("workloads[{i}].{key}")
            } else {
                key.to_string()
            };
            let line = if several {
                locate::line_of(text, "workloads", i, Some(key))
                    .or_else(|| locate::line_of(text, "workloads", i, None))
            } else {
                locate::line_of_key(text, key).or(Some(1))
            };
            SpecError::at(file, line, &field, msg.to_string())
        })?;
        fleet.workloads.push(w);
    }
    Ok(Parsed {
        fleet,
        notes: vec![
            "a server workload file: planned as a fleet of its workloads (run, setup, env and checkpoints are what the server runs; placement does not read them)".into(),
        ],
        format: InputFormat::Workloads,
    })
}

/// Options for a SkyPilot task, which has no duration or kind of its own.
#[derive(Debug, Clone)]
pub struct TaskDefaults {
    pub hours: Option<f64>,
}

/// Parses either format, chosen by its top-level keys.
pub fn parse(
    text: &str,
    file: &str,
    catalog: &Catalog,
    task: &TaskDefaults,
) -> Result<Parsed, SpecError> {
    if text.len() > SPEC_BYTES_MAX {
        return Err(SpecError::at(
            file,
            None,
            "",
            format!("file is larger than {} MiB", SPEC_BYTES_MAX / (1024 * 1024)),
        ));
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    let mapping =
        match &value {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => {
                return Err(SpecError::at(file, None, "", "the file is empty".into()))
            }
            _ => return Err(SpecError::at(
                file,
                Some(1),
                "",
                "expected a mapping with `workloads:` (a fleet) or `resources:` (a SkyPilot task)"
                    .into(),
            )),
        };
    let has = |k: &str| mapping.contains_key(serde_yaml::Value::String(k.to_string()));
    if has("workloads") {
        match fleet::parse(text, file, catalog) {
            Ok(fleet) => Ok(Parsed {
                fleet,
                notes: Vec::new(),
                format: InputFormat::Fleet,
            }),
            // A server workload list (`run:`, `env:` … in each) plans
            // too; when it is not one either, the fleet's error stands.
            Err(e) => match job::parse_file(text, file, catalog) {
                Ok(jobs) => jobs_fleet(&jobs, text, file, task),
                Err(_) => Err(e),
            },
        }
    } else if has("accelerators") && !has("resources") {
        workloads_fleet(text, file, catalog, task)
    } else if has("resources") || has("run") || has("num_nodes") || has("setup") {
        let (fleet, notes) = skypilot::parse(text, file, catalog, task)?;
        Ok(Parsed {
            fleet,
            notes,
            format: InputFormat::SkyPilotTask,
        })
    } else {
        Err(SpecError::at(file, Some(1), "", "expected `workloads:` (a Skyward fleet) or `resources:` (a SkyPilot task) at the top level".into()))
    }
}
