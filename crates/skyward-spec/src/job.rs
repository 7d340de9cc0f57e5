//! A workload to *run* (`skyward submit`, `POST /v1/workloads`): the
//! workload format of a fleet file (`name`, `accelerators`, `nodes`,
//! `providers`, `regions`, `residency`, `compliance`, optional `hours`)
//! plus `priority`, `run`, `setup`, `env`, `secrets` (references to the
//! server's secrets), `checkpoint` and `max_runtime`.
//!
//! A file holds one workload (a mapping) or several (`workloads:` list).
//! JSON is accepted too (it is YAML), so the HTTP API and the CLI share
//! this one parser and its errors.

use crate::error::SpecError;
use crate::fleet::{check_hours, placement_fields, Names, OneOrMany, NODES_MAX};
use crate::locate::{line_of, line_of_key};
use serde::{Deserialize, Serialize};
use skyward_catalog::Catalog;
use skyward_model::{SpotPolicy, WorkloadKind};
use std::collections::BTreeMap;

/// Bounds on one workload to run.
pub const NAME_CHARS_MAX: usize = 128;
pub const SCRIPT_BYTES_MAX: usize = 64 * 1024;
pub const ENV_VARS_MAX: usize = 256;
pub const ENV_VALUE_BYTES_MAX: usize = 16 * 1024;
pub const PRIORITY_ABS_MAX: i32 = 1_000_000;
/// Workloads per submitted file.
pub const JOBS_PER_FILE_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    accelerators: OneOrMany,
    #[serde(default)]
    nodes: Option<u32>,
    #[serde(default)]
    hours: Option<f64>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    spot: Option<SpotPolicy>,
    #[serde(default)]
    providers: Option<OneOrMany>,
    #[serde(default)]
    regions: Option<OneOrMany>,
    #[serde(default)]
    residency: Option<OneOrMany>,
    #[serde(default)]
    compliance: Option<OneOrMany>,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    setup: Option<String>,
    #[serde(default)]
    env: Option<BTreeMap<String, EnvValue>>,
    /// A directory (`ckpt`), a store location (`s3://bucket/path`), or
    /// `{uri, every, replicate_to}`.
    #[serde(default)]
    checkpoint: Option<RawCheckpoint>,
    #[serde(default)]
    preemptible: Option<bool>,
    #[serde(default)]
    max_runtime: Option<EnvValue>,
    #[serde(default)]
    secrets: Option<BTreeMap<String, String>>,
    #[serde(default)]
    recovery: Option<skyward_model::Recovery>,
    /// How it runs on each stack or accelerator (`variants: {nvidia:
    /// {run: …}, trainium: {run: …}}`).
    #[serde(default)]
    variants: Option<BTreeMap<String, crate::variants::RawVariant>>,
    /// Relative throughput per accelerator (`{H100: 3, A100: 1}`): the
    /// prior in place of the datasheet ratio.
    #[serde(default)]
    throughput: Option<BTreeMap<String, f64>>,
    /// Place with learned speeds one standard deviation below their
    /// estimate (prefers what runs have measured).
    #[serde(default)]
    risk_averse: Option<bool>,
}

/// `env` values may be written as numbers or booleans in YAML.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum EnvValue {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl EnvValue {
    fn into_string(self) -> String {
        match self {
            EnvValue::S(s) => s,
            EnvValue::I(i) => i.to_string(),
            EnvValue::F(f) => f.to_string(),
            EnvValue::B(b) => b.to_string(),
        }
    }
}

#[derive(Debug)]
enum RawCheckpoint {
    Text(String),
    Store(RawCheckpointStore),
}

/// By hand rather than `untagged`, so that a wrong field in the mapping
/// is named instead of "did not match any variant".
impl<'de> Deserialize<'de> for RawCheckpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(RawCheckpoint::Text(s)),
            v @ serde_yaml::Value::Mapping(_) => serde_yaml::from_value(v)
                .map(RawCheckpoint::Store)
                .map_err(|e| D::Error::custom(format!("checkpoint: {e}"))),
            _ => Err(D::Error::custom(
                "checkpoint: expected a directory, a store location (s3://bucket/path) or {uri, every, replicate_to}",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpointStore {
    uri: String,
    #[serde(default)]
    every: Option<EnvValue>,
    #[serde(default)]
    replicate_to: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    workloads: Vec<RawJob>,
}

/// A validated workload to run; also its canonical stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub name: String,
    /// train (default) | batch | serve: what the dashboard and the list
    /// filter on. Left out of the stored form when `train`, so requests
    /// stored before it existed hash the same.
    #[serde(default = "kind_train", skip_serializing_if = "is_train")]
    pub kind: WorkloadKind,
    /// Alternatives per node, canonical names (`H100:8`).
    pub accelerators: Vec<String>,
    pub nodes: u32,
    pub priority: i32,
    /// never (default) | allowed | required, as in a fleet file.
    #[serde(default = "spot_never")]
    pub spot: SpotPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residency: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance: Vec<String>,
    /// The command (empty when every variant that runs has its own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Checkpoint directory, relative to the workload's directory (kept
    /// across attempts), or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Checkpoints in object storage (`checkpoint: {uri: s3://…, every:
    /// 30m, replicate_to: [az://…]}`): each attempt gets the store it
    /// can reach with the newest checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_store: Option<skyward_model::CheckpointStore>,
    /// Whether higher-priority work may stop it to take its capacity (it
    /// is requeued and resumes from its checkpoint). Default: whether it
    /// has a `checkpoint` (work without one would start over).
    #[serde(default)]
    pub preemptible: bool,
    /// Walltime on any accelerator (`max_runtime: 90m`); without it the
    /// walltime is `hours` on the accelerator the run gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_ms: Option<u64>,
    /// Environment variable → name of a secret the server holds (its
    /// config's `secrets:`). Only the reference is stored or shown; the
    /// value reaches the run's environment and nothing else.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// After a site fails it: where the next attempt may go, and how many
    /// restarts it gets (`recovery: {strategy: next_region, max_restarts: 3}`).
    #[serde(default, skip_serializing_if = "skyward_model::Recovery::is_default")]
    pub recovery: skyward_model::Recovery,
    /// How it runs on each stack or accelerator; empty: `run` everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, skyward_model::Variant>,
    /// Alternatives its variants give no way to run on (never placed
    /// there): kept for the explanation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_variant: Vec<String>,
    /// Relative throughput per accelerator name, given by the workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throughput: BTreeMap<String, f64>,
    /// Learned speeds taken one standard deviation below their estimate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub risk_averse: bool,
}

/// Longest walltime a workload may ask for.
pub const MAX_RUNTIME_MS_MAX: u64 = 366 * 24 * 3_600_000;
/// Secrets one workload may reference.
pub const SECRETS_MAX: usize = 64;
/// Deepest nesting accepted in a workload document (JSON or YAML).
pub const NESTING_DEPTH_MAX: usize = 64;

/// `90s`, `45m`, `2h`, `1.5h`, `7d` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit_ms) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1_000.0),
        Some((i, 'm')) => (&t[..i], 60_000.0),
        Some((i, 'h')) => (&t[..i], 3_600_000.0),
        Some((i, 'd')) => (&t[..i], 86_400_000.0),
        _ => {
            return Err(format!(
                "'{t}' needs a unit: s, m, h or d (for example 90m or 2h)"
            ))
        }
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{t}' is not a duration (for example 90m or 2h)"))?;
    let ms = n * unit_ms;
    if !ms.is_finite() || ms < 1_000.0 || ms > MAX_RUNTIME_MS_MAX as f64 {
        return Err(format!("'{t}' must be between 1s and 366d"));
    }
    Ok(ms.round() as u64)
}

impl JobRequest {
    /// The workload as a body `POST /v1/workloads` (this module's parser)
    /// reads back to the same request: durations as text (`max_runtime:
    /// 5400s`) and the checkpoint store as `checkpoint: {uri, every,
    /// replicate_to}`, not as the stored form's fields.
    pub fn to_wire(&self) -> serde_json::Value {
        fn secs(ms: u64) -> String {
            if ms.is_multiple_of(1000) {
                format!("{}s", ms / 1000)
            } else {
                format!("{}.{:03}s", ms / 1000, ms % 1000)
            }
        }
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            // Worked out from `variants` when read back.
            o.remove("no_variant");
            if let Some(ms) = o.remove("max_runtime_ms").and_then(|m| m.as_u64()) {
                o.insert("max_runtime".into(), secs(ms).into());
            }
            if let Some(c) = o.remove("checkpoint_store") {
                let mut w = serde_json::Map::new();
                w.insert("uri".into(), c["uri"].clone());
                if let Some(ms) = c["every_ms"].as_u64() {
                    w.insert("every".into(), secs(ms).into());
                }
                if let Some(r) = c.get("replicate_to") {
                    w.insert("replicate_to".into(), r.clone());
                }
                o.insert("checkpoint".into(), w.into());
            }
        }
        v
    }
}

/// A checkpoint store from its parts; errors name the field.
fn checkpoint_store(
    uri: String,
    every: Option<EnvValue>,
    replicate_to: Option<Vec<String>>,
) -> Result<skyward_model::CheckpointStore, (String, String)> {
    use skyward_model::{checkpoint::REPLICAS_MAX, StoreUri};
    let primary = StoreUri::parse(&uri).map_err(|m| ("checkpoint.uri".to_string(), m))?;
    let every_ms = every
        .map(|v| parse_duration_ms(&v.into_string()))
        .transpose()
        .map_err(|m| ("checkpoint.every".to_string(), m))?;
    let replicas = replicate_to.unwrap_or_default();
    if replicas.len() > REPLICAS_MAX {
        return Err((
            "checkpoint.replicate_to".into(),
            format!("at most {REPLICAS_MAX} stores"),
        ));
    }
    let mut seen = vec![primary.clone()];
    let mut out = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let field = format!("checkpoint.replicate_to[{i}]");
        let u = StoreUri::parse(r).map_err(|m| (field.clone(), m))?;
        if let Some(o) = seen.iter().find(|o| o.contains(&u) || u.contains(o)) {
            return Err((
                field,
                format!("'{u}' overlaps '{o}': a replica must be a store of its own"),
            ));
        }
        seen.push(u.clone());
        out.push(u.to_string());
    }
    Ok(skyward_model::CheckpointStore {
        uri: primary.to_string(),
        every_ms,
        replicate_to: out,
    })
}

/// A secret's name: letters, digits, `.`, `_`, `-`; 1 to 128.
pub fn valid_secret_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn check_depth(text: &str, file: &str) -> Result<(), SpecError> {
    let depth = crate::text::nesting_depth(text);
    if depth > NESTING_DEPTH_MAX {
        return Err(SpecError::at(
            file,
            None,
            "",
            format!("nested {depth} levels deep; at most {NESTING_DEPTH_MAX} are accepted"),
        ));
    }
    Ok(())
}

fn kind_train() -> WorkloadKind {
    WorkloadKind::Train
}

fn is_train(k: &WorkloadKind) -> bool {
    *k == WorkloadKind::Train
}

fn spot_never() -> SpotPolicy {
    SpotPolicy::Never
}

/// Parses a file of one workload or a `workloads:` list.
pub fn parse_file(text: &str, file: &str, catalog: &Catalog) -> Result<Vec<JobRequest>, SpecError> {
    if text.len() > crate::SPEC_BYTES_MAX {
        return Err(SpecError::at(file, None, "", "file is too large".into()));
    }
    check_depth(text, file)?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    let has_list = matches!(&value, serde_yaml::Value::Mapping(m)
        if m.contains_key(serde_yaml::Value::String("workloads".into())));
    if has_list {
        let raw: RawJobs = serde_yaml::from_value(value)
            .map_err(|e| SpecError::at(file, None, "", strip_location(&e.to_string())))?;
        if raw.workloads.is_empty() {
            return Err(SpecError::at(
                file,
                line_of_key(text, "workloads"),
                "workloads",
                "list at least one workload".into(),
            ));
        }
        if raw.workloads.len() > JOBS_PER_FILE_MAX {
            return Err(SpecError::at(
                file,
                None,
                "workloads",
                format!("more than {JOBS_PER_FILE_MAX} workloads"),
            ));
        }
        let names = Names::new(catalog);
        raw.workloads
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                validate(r, &names).map_err(|(key, m)| {
                    SpecError::at(
                        file,
                        line_of(text, "workloads", i, Some(&key)),
                        &format!("workloads[{i}].{key}"),
                        m,
                    )
                })
            })
            .collect()
    } else {
        parse_one(text, file, catalog).map(|j| vec![j])
    }
}

/// Parses exactly one workload (the HTTP API's body).
pub fn parse_one(text: &str, file: &str, catalog: &Catalog) -> Result<JobRequest, SpecError> {
    JobParser::new(catalog).parse_one(text, file)
}

/// A parser that keeps the catalog's names, for parsing many workloads
/// (the server builds one at start).
pub struct JobParser {
    names: Names,
}

impl JobParser {
    pub fn new(catalog: &Catalog) -> JobParser {
        JobParser {
            names: Names::new(catalog),
        }
    }

    /// One workload, YAML or JSON (a body starting with `{` is read as
    /// JSON, which is faster and reports the same fields).
    pub fn parse_one(&self, text: &str, file: &str) -> Result<JobRequest, SpecError> {
        check_depth(text, file)?;
        // JSON is YAML: a body that is not valid JSON (or not a valid
        // workload) is read again as YAML, whose errors name the field.
        let fast = if text.trim_start().starts_with('{') {
            serde_json::from_str::<RawJob>(text).ok()
        } else {
            None
        };
        let raw: RawJob = if let Some(raw) = fast {
            raw
        } else {
            let value: serde_yaml::Value =
                serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
            match &value {
                serde_yaml::Value::Mapping(_) => {}
                serde_yaml::Value::Null => {
                    return Err(SpecError::at(
                        file,
                        None,
                        "",
                        "empty: expected a workload".into(),
                    ))
                }
                _ => {
                    return Err(SpecError::at(
                        file,
                        Some(1),
                        "",
                        "expected a mapping (a workload with name, accelerators and run)".into(),
                    ))
                }
            }
            serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?
        };
        validate(raw, &self.names)
            .map_err(|(key, m)| SpecError::at(file, line_of_key(text, &key), &key, m))
    }
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A run's variables, checked: names, no SKYWARD_*, bounded sizes.
pub(crate) fn checked_env(
    raw: BTreeMap<String, EnvValue>,
) -> Result<BTreeMap<String, String>, String> {
    if raw.len() > ENV_VARS_MAX {
        return Err(format!("at most {ENV_VARS_MAX} variables"));
    }
    let mut env = BTreeMap::new();
    for (k, v) in raw {
        if !valid_env_name(&k) {
            return Err(format!(
                "'{k}' is not a variable name (letters, digits, _; not starting with a digit)"
            ));
        }
        if k.starts_with("SKYWARD_") {
            return Err(format!("'{k}': SKYWARD_* variables are set by Skyward"));
        }
        let v = v.into_string();
        if v.len() > ENV_VALUE_BYTES_MAX || v.contains('\0') {
            return Err(format!("'{k}': value too long or holds a NUL byte"));
        }
        env.insert(k, v);
    }
    Ok(env)
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate(w: RawJob, names: &Names) -> Result<JobRequest, (String, String)> {
    let e = |k: &str, m: String| (k.to_string(), m);
    let name = w.name.trim().to_string();
    if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
        return Err(e(
            "name",
            format!("must be 1 to {NAME_CHARS_MAX} characters"),
        ));
    }
    if let Some(problem) = crate::text::name_problem(&name) {
        return Err(e("name", problem));
    }
    let kind = match w.kind.as_deref() {
        None | Some("train") => WorkloadKind::Train,
        Some("batch") => WorkloadKind::Batch,
        Some("serve") => WorkloadKind::Serve,
        Some(k) => {
            return Err(e(
                "kind",
                format!(
                    "unknown kind '{}' (known: train, batch, serve)",
                    k.chars().take(64).collect::<String>()
                ),
            ))
        }
    };
    let place = placement_fields(
        names,
        w.accelerators,
        w.providers,
        w.regions,
        w.residency,
        w.compliance,
    )
    .map_err(|(k, m)| e(k, m))?;
    let accelerators: Vec<String> = place
        .accelerators
        .iter()
        .map(|a| format!("{}:{}", a.name, a.count))
        .collect();
    let nodes = w.nodes.unwrap_or(1);
    if nodes == 0 || nodes > NODES_MAX {
        return Err(e("nodes", format!("must be 1 to {NODES_MAX}")));
    }
    let hours = w
        .hours
        .map(check_hours)
        .transpose()
        .map_err(|m| e("hours", m))?;
    let priority = w.priority.unwrap_or(0);
    if priority.abs() > PRIORITY_ABS_MAX {
        return Err(e(
            "priority",
            format!("must be between -{PRIORITY_ABS_MAX} and {PRIORITY_ABS_MAX}"),
        ));
    }
    let variants = crate::variants::checked(w.variants.unwrap_or_default(), names)
        .map_err(|(k, m)| e(&k, m))?;
    let mut throughput = BTreeMap::new();
    for (k, v) in w.throughput.unwrap_or_default() {
        let name = names.accelerator(&k).map_err(|m| {
            e(
                &format!("throughput.{}", k.chars().take(64).collect::<String>()),
                m,
            )
        })?;
        if !v.is_finite() || v <= 0.0 {
            return Err(e(
                &format!("throughput.{name}"),
                "must be a positive relative throughput".into(),
            ));
        }
        throughput.insert(name, v);
    }
    let no_variant = crate::variants::no_variant(&variants, &accelerators);
    if !variants.is_empty()
        && accelerators.iter().all(|a| {
            no_variant
                .iter()
                .any(|n| a.rsplit_once(':').map_or(a.as_str(), |x| x.0) == n)
        })
    {
        return Err(e(
            "variants",
            format!(
                "no accelerator alternative has a variant (alternatives: {}; variant keys: {})",
                accelerators.join(", "),
                variants.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    // With variants, each alternative that runs needs a run: its
    // variant's, or the workload's.
    if w.run.is_none() && !variants.is_empty() {
        if let Some(a) = accelerators.iter().find(|a| {
            let name = a.rsplit_once(':').map_or(a.as_str(), |x| x.0);
            skyward_model::variant::variant_key(variants.keys(), name)
                .and_then(|k| variants.get(k))
                .is_some_and(|v| v.run.is_none())
        }) {
            return Err(e(
                "run",
                format!("required: the variant {a} runs has no run of its own"),
            ));
        }
    }
    let run_given = w.run.is_some();
    let run = match w.run {
        Some(r) => r,
        None if !variants.is_empty() => String::new(),
        None => return Err(e(
            "run",
            "required to submit: the command to run (a fleet file for `skyward plan` needs none)"
                .into(),
        )),
    };
    if (run_given && run.trim().is_empty()) || run.len() > SCRIPT_BYTES_MAX {
        return Err(e(
            "run",
            format!(
                "must be a non-empty command of at most {} KiB",
                SCRIPT_BYTES_MAX / 1024
            ),
        ));
    }
    if let Some(s) = &w.setup {
        if s.len() > SCRIPT_BYTES_MAX {
            return Err(e(
                "setup",
                format!("at most {} KiB", SCRIPT_BYTES_MAX / 1024),
            ));
        }
    }
    let env = checked_env(w.env.unwrap_or_default()).map_err(|m| e("env", m))?;
    let (checkpoint, checkpoint_store) = match w.checkpoint {
        None => (None, None),
        Some(RawCheckpoint::Text(c)) if c.contains("://") => (
            None,
            Some(checkpoint_store(c, None, None).map_err(|(k, m)| e(&k, m))?),
        ),
        Some(RawCheckpoint::Text(c)) => {
            if c.trim().is_empty()
                || c.len() > 4096
                || c.contains('\0')
                || c.split('/').any(|p| p == "..")
            {
                return Err(e(
                    "checkpoint",
                    "must be a directory path without '..' or a store location (s3://bucket/path)"
                        .into(),
                ));
            }
            (Some(c), None)
        }
        Some(RawCheckpoint::Store(r)) => (
            None,
            Some(
                checkpoint_store(r.uri, r.every, r.replicate_to.map(OneOrMany::into_vec))
                    .map_err(|(k, m)| e(&k, m))?,
            ),
        ),
    };
    let max_runtime_ms = w
        .max_runtime
        .map(|v| parse_duration_ms(&v.into_string()))
        .transpose()
        .map_err(|m| e("max_runtime", m))?;
    let raw_secrets = w.secrets.unwrap_or_default();
    if raw_secrets.len() > SECRETS_MAX {
        return Err(e("secrets", format!("at most {SECRETS_MAX} secrets")));
    }
    for (k, v) in &raw_secrets {
        if !valid_env_name(k) || k.starts_with("SKYWARD_") {
            return Err(e(
                &format!("secrets.{k}"),
                "the key is the environment variable the run sees (letters, digits, _; not SKYWARD_*)"
                    .into(),
            ));
        }
        if env.contains_key(k) {
            return Err(e(
                &format!("secrets.{k}"),
                format!("'{k}' is set in env too; give it in one place"),
            ));
        }
        if !valid_secret_name(v) {
            return Err(e(
                &format!("secrets.{k}"),
                "the value names a secret of the server (letters, digits, '.', '_', '-')".into(),
            ));
        }
    }
    let recovery = w.recovery.unwrap_or_default();
    if recovery
        .max_restarts
        .is_some_and(|m| m > skyward_model::recovery::MAX_RESTARTS_MAX)
    {
        return Err(e(
            "recovery.max_restarts",
            format!("at most {}", skyward_model::recovery::MAX_RESTARTS_MAX),
        ));
    }
    Ok(JobRequest {
        recovery,
        name,
        kind,
        variants,
        no_variant,
        throughput,
        risk_averse: w.risk_averse.unwrap_or(false),
        accelerators,
        nodes,
        priority,
        spot: w.spot.unwrap_or(SpotPolicy::Never),
        hours,
        providers: place.providers,
        regions: place.regions,
        residency: place.residency,
        compliance: place.compliance,
        run,
        setup: w.setup,
        env,
        preemptible: w
            .preemptible
            .unwrap_or(checkpoint.is_some() || checkpoint_store.is_some()),
        checkpoint,
        checkpoint_store,
        max_runtime_ms,
        secrets: raw_secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn one_workload_with_run_env_and_checkpoint() {
        let j = parse_one(
            "name: t\naccelerators: h100:8\npriority: 5\nrun: echo hi\nenv: {A: 1, B: x}\ncheckpoint: ckpt\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        assert_eq!(j.accelerators, vec!["H100:8"]);
        assert_eq!(j.priority, 5);
        assert_eq!(j.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(j.checkpoint.as_deref(), Some("ckpt"));
        // With a checkpoint, preemptible unless it says otherwise.
        assert!(j.preemptible);
    }

    #[test]
    fn checkpoint_stores_are_read_and_checked() {
        let j = parse_one(
            "name: t\naccelerators: H100:1\nrun: x\ncheckpoint: {uri: 's3://ckpt-aws/llama/', every: 30m, replicate_to: azure://ckpt-az/llama}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        let c = j.checkpoint_store.clone().unwrap();
        assert_eq!(c.uri, "s3://ckpt-aws/llama");
        assert_eq!(c.every_ms, Some(1_800_000));
        assert_eq!(c.replicate_to, vec!["az://ckpt-az/llama".to_string()]);
        assert!(j.preemptible && j.checkpoint.is_none());
        // The short form: a location alone.
        let j = parse_one(
            "name: t\naccelerators: H100:1\nrun: x\ncheckpoint: gs://ckpt-g/x\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        assert_eq!(j.checkpoint_store.unwrap().uri, "gs://ckpt-g/x");
        for (body, want) in [
            ("checkpoint: {uri: 'ftp://x/y'}", "checkpoint.uri"),
            (
                "checkpoint: {uri: 's3://ckpt/a', every: 5}",
                "checkpoint.every",
            ),
            (
                "checkpoint: {uri: 's3://ckpt/a', replicate_to: ['s3://ckpt/a/b']}",
                "overlaps",
            ),
            (
                "checkpoint: {uri: 's3://ckpt/a', replicate_to: ['az://c-1/x', 'nope']}",
                "checkpoint.replicate_to[1]",
            ),
            ("checkpoint: {uri: 's3://ckpt/a', evry: 5m}", "checkpoint"),
            ("checkpoint: 's3://A/x'", "checkpoint.uri"),
        ] {
            let text = format!("name: t\naccelerators: H100:1\nrun: x\n{body}\n");
            let err = parse_one(&text, "t.yaml", &cat()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    /// What `skyward submit` sends is read back by the server's parser to
    /// the same request (a file with `max_runtime` or a checkpoint store
    /// was refused: "unknown field max_runtime_ms").
    #[test]
    fn the_wire_form_reads_back_to_the_same_request() {
        let text = "workloads:\n  - name: a\n    accelerators: H100:8\n    nodes: 2\n    priority: 3\n    run: echo hi\n    setup: pip install x\n    env: {A: 1}\n    max_runtime: 1.5h\n    spot: allowed\n    regions: [us-east-1]\n    recovery: {strategy: next_region, max_restarts: 2}\n    checkpoint: {uri: 's3://ckpt-a/x', every: 90s, replicate_to: ['az://ckpt-b/x']}\n  - name: b\n    accelerators: [A100:1, H100:1]\n    run: x\n    checkpoint: ckpt\n    preemptible: false\n    max_runtime: 2.5s\n    hours: 1.5\n    residency: [eu]\n";
        for j in parse_file(text, "t.yaml", &cat()).unwrap() {
            let wire = j.to_wire().to_string();
            let back = parse_one(&wire, "wire", &cat()).unwrap_or_else(|e| panic!("{wire}: {e}"));
            assert_eq!(back, j, "{wire}");
        }
    }

    /// Variants per stack: checked field by field, the alternatives with
    /// none listed, the workload's run optional when each variant that
    /// runs has its own, and the wire form reads back the same.
    #[test]
    fn variants_per_stack_are_read_and_checked() {
        let text = "name: t\nkind: batch\naccelerators: [H100:8, Trainium2:16, MI300X:8]\nvariants:\n  nvidia: {setup: pip install torch, run: torchrun train.py, env: {NCCL_DEBUG: WARN}, image: 'nvcr.io/nvidia/pytorch:24.05-py3'}\n  neuron: {run: neuron_parallel_compile python train.py, env: {NEURON_CC_FLAGS: '--model-type transformer'}}\n";
        let j = parse_one(text, "t.yaml", &cat()).unwrap();
        assert_eq!(j.run, "");
        assert_eq!(j.kind, skyward_model::WorkloadKind::Batch);
        assert_eq!(j.variants.keys().collect::<Vec<_>>(), ["neuron", "nvidia"]);
        assert_eq!(j.no_variant, ["MI300X"]);
        assert_eq!(
            j.variants["nvidia"].image.as_deref(),
            Some("nvcr.io/nvidia/pytorch:24.05-py3")
        );
        let wire = j.to_wire().to_string();
        assert!(!wire.contains("no_variant"), "{wire}");
        assert_eq!(parse_one(&wire, "wire", &cat()).unwrap(), j, "{wire}");
        // An accelerator's own key is spelled as the catalog does.
        let j = parse_one(
            "name: t\naccelerators: [h100:1, A100:1]\nrun: x\nvariants: {h100: {env: {A: 1}}}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        assert_eq!(j.variants.keys().collect::<Vec<_>>(), ["H100"]);
        assert_eq!(j.no_variant, ["A100"]);
        for (body, want) in [
            ("accelerators: H100:1\nvariants: {cuda12: {run: x}}\n", "variants.cuda12: 'cuda12' is neither a stack"),
            ("accelerators: H100:1\nvariants: {nvidia: {run: x}, NVIDIA: {run: y}}\n", "given twice"),
            ("accelerators: H100:1\nvariants: {nvidia: {rnu: x}}\n", "rnu"),
            ("accelerators: H100:1\nvariants: {nvidia: {run: ' '}}\n", "variants.nvidia.run"),
            ("accelerators: H100:1\nvariants: {nvidia: {run: x, env: {SKYWARD_X: 1}}}\n", "variants.nvidia.env"),
            ("accelerators: H100:1\nvariants: {nvidia: {run: x, image: 'a b'}}\n", "variants.nvidia.image"),
            // An option where the image goes, or shell characters.
            ("accelerators: H100:1\nvariants: {nvidia: {run: x, image: --privileged}}\n", "variants.nvidia.image"),
            ("accelerators: H100:1\nvariants: {nvidia: {run: x, image: 'img;rm'}}\n", "variants.nvidia.image"),
            ("accelerators: H100:1\nvariants: {trainium: {run: x}}\n", "no accelerator alternative has a variant (alternatives: H100:1; variant keys: trainium)"),
            ("accelerators: [H100:1, Trainium2:1]\nvariants: {nvidia: {run: x}, trainium: {env: {A: 1}}}\n", "run: required: the variant Trainium2:1 runs has no run of its own"),
        ] {
            let text = format!("name: t\n{body}");
            let err = parse_one(&text, "t.yaml", &cat()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
        let many: String = (0..17)
            .map(|i| format!("  H100-{i}: {{run: x}}\n"))
            .collect();
        let err = parse_one(
            &format!("name: t\naccelerators: H100:1\nvariants:\n{many}"),
            "t.yaml",
            &cat(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("at most 16 variants"), "{err}");
    }

    #[test]
    fn recovery_is_read_and_checked() {
        let j = parse_one(
            "name: t\naccelerators: H100:1\nrun: x\nrecovery: {strategy: any_provider, max_restarts: 3}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        assert_eq!(
            j.recovery,
            skyward_model::Recovery {
                strategy: skyward_model::RecoveryStrategy::AnyProvider,
                max_restarts: Some(3)
            }
        );
        // Stored and read back the same; the default is not written.
        let back: JobRequest = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
        let plain = parse_one("name: t\naccelerators: H100:1\nrun: x\n", "t.yaml", &cat()).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("recovery"));
        for (bad, want) in [
            ("recovery: {strategy: sideways}", "sideways"),
            ("recovery: {max_restarts: 99999}", "recovery.max_restarts"),
            ("recovery: {retries: 2}", "retries"),
        ] {
            let e = parse_one(
                &format!("name: t\naccelerators: H100:1\nrun: x\n{bad}\n"),
                "t.yaml",
                &cat(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want) && e.contains("t.yaml"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let e = parse_one(
            "name: t\naccelerators: H100:8\nrun: x\nenv: {SKYWARD_SITE: a}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap_err();
        assert_eq!(e.field, "env");
        assert_eq!(e.line, Some(4));
        let e = parse_one("name: t\naccelerators: H100:8\n", "t.yaml", &cat()).unwrap_err();
        assert_eq!(e.field, "run");
        let e = parse_file("workloads:\n  - name: a\n    accelerators: H100:8\n    run: x\n  - name: b\n    accelerators: H10:8\n    run: x\n", "f.yaml", &cat()).unwrap_err();
        assert_eq!(e.field, "workloads[1].accelerators");
        assert_eq!(e.line, Some(6));
        let e = parse_one(
            "name: t\naccelerators: H100:8\nrun: x\nbogus: 1\n",
            "t.yaml",
            &cat(),
        )
        .unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
    }

    #[test]
    fn walltime_secrets_and_hostile_names() {
        let j = parse_one(
            "name: t\naccelerators: H100:8\nrun: x\nmax_runtime: 90m\nsecrets: {HF_TOKEN: hf-token}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap();
        assert_eq!(j.max_runtime_ms, Some(5_400_000));
        assert_eq!(
            j.secrets.get("HF_TOKEN").map(String::as_str),
            Some("hf-token")
        );
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert!(parse_duration_ms("90").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("400d").is_err());
        let e = parse_one(
            "name: t\naccelerators: H100:8\nrun: x\nenv: {A: 1}\nsecrets: {A: s}\n",
            "t.yaml",
            &cat(),
        )
        .unwrap_err();
        assert_eq!(e.field, "secrets.A");
        let e = parse_one(
            r#"{"name": "evil\u202egpj.exe", "accelerators": "H100:8", "run": "x"}"#,
            "body",
            &cat(),
        )
        .unwrap_err();
        assert_eq!(e.field, "name");
        let e = parse_one(
            r#"{"name": "a\u200bb", "accelerators": "H100:8", "run": "x"}"#,
            "body",
            &cat(),
        )
        .unwrap_err();
        assert_eq!(e.field, "name");
    }

    #[test]
    fn deep_nesting_is_refused_at_once() {
        // 100k levels (a 200 KB body): refused by the depth check, in
        // time linear in its size, before any parser recurses.
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_one(&body, "body", &cat()).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        let body = format!(
            "{{\"name\": \"t\", \"accelerators\": \"H100:8\", \"run\": \"x\", \"env\": {{\"A\": {}1{}}}}}",
            "[".repeat(65),
            "]".repeat(65)
        );
        assert!(parse_one(&body, "body", &cat())
            .unwrap_err()
            .message
            .contains("nested"));
        // A script indented deeply, or a long line of dashes, is not nesting.
        let yaml = format!(
            "name: t\naccelerators: H100:8\nrun: |\n  echo start\n  {}echo deep\n  # {}\n",
            " ".repeat(200),
            "-".repeat(200)
        );
        assert_eq!(parse_one(&yaml, "t.yaml", &cat()).unwrap().name, "t");
    }

    #[test]
    fn json_is_accepted() {
        let j = parse_one(
            r#"{"name":"t","accelerators":["H100:8"],"run":"true"}"#,
            "body",
            &cat(),
        )
        .unwrap();
        assert_eq!(j.nodes, 1);
    }
}
