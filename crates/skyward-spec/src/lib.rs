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
        let fleet = fleet::parse(text, file, catalog)?;
        Ok(Parsed {
            fleet,
            notes: Vec::new(),
            format: InputFormat::Fleet,
        })
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
