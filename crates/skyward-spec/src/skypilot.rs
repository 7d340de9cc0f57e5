//! SkyPilot task files, as they are: one task becomes one workload.
//!
//! Mapped: `name`, `num_nodes`, `resources.accelerators` (string, dict or
//! list), `resources.any_of` and `resources.ordered` (each item an
//! alternative with its own `cloud`/`region`/`infra`), `cloud`, `region`,
//! `infra`, `use_spot`. Fields about running the task (`run`, `setup`,
//! `envs`, `workdir`, `file_mounts`, …) do not change placement and are
//! noted as ignored. Fields that would change placement in ways Skyward does
//! not model (`instance_type`, `zone`, …) are errors, so a plan never
//! silently means something else than the task.

use crate::error::SpecError;
use crate::fleet::{check_hours, Names};
use crate::locate::line_of_key;
use crate::TaskDefaults;
use serde_yaml::{Mapping, Value};
use skyward_catalog::Catalog;
use skyward_model::{
    AcceleratorRequest, AlternativeScope, Fleet, SpotPolicy, Workload, WorkloadKind,
};

const IGNORED_TOP: &[&str] = &[
    "run",
    "setup",
    "envs",
    "secrets",
    "workdir",
    "file_mounts",
    "config",
    "event_callback",
    "service",
    "volumes",
];
const IGNORED_RESOURCES: &[&str] = &[
    "cpus",
    "memory",
    "disk_size",
    "disk_tier",
    "ports",
    "image_id",
    "labels",
    "autostop",
    "network_tier",
    "job_recovery",
    "accelerator_args",
    "priority",
];
const REJECTED_RESOURCES: &[(&str, &str)] = &[
    (
        "instance_type",
        "Skyward places by accelerator; list the instance's accelerators instead (e.g. H100:8)",
    ),
    ("zone", "Skyward places by region; use `region:`"),
];

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    names: Names,
    notes: Vec<String>,
}

impl Ctx<'_> {
    /// An error at `field`; the line is the field's own, or its nearest
    /// parent's when the field itself is absent.
    fn err(&self, field: &str, msg: String) -> SpecError {
        let line = field
            .split('.')
            .rev()
            .map(|k| k.split('[').next().unwrap_or(k))
            .filter(|k| !k.is_empty())
            .find_map(|k| line_of_key(self.text, k));
        SpecError::at(self.file, line, field, msg)
    }
}

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// `H100:8`, `{H100: 8}`, `[H100:8, A100:8]`, `{H100: 8, A100: 8}`.
fn accelerators(ctx: &Ctx, v: &Value, field: &str) -> Result<Vec<AcceleratorRequest>, SpecError> {
    let mut out = Vec::new();
    let one = |ctx: &Ctx,
               name: &str,
               count: Option<&Value>|
     -> Result<AcceleratorRequest, SpecError> {
        let count = match count {
            None => 1,
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|c| (1..=1024).contains(c))
                .map(|c| c as u32)
                .ok_or_else(|| ctx.err(field, format!("{name}: count must be a whole number from 1 to 1024 (fractional GPUs are not supported)")))?,
            Some(other) => return Err(ctx.err(field, format!("{name}: count {other:?} is not a number"))),
        };
        let r = AcceleratorRequest::parse(&format!("{name}:{count}"))
            .map_err(|e| ctx.err(field, e.to_string()))?;
        let canon = ctx
            .names
            .accelerator(&r.name)
            .map_err(|e| ctx.err(field, e))?;
        Ok(AcceleratorRequest {
            name: canon,
            count: r.count,
        })
    };
    match v {
        Value::String(s) => {
            let r =
                AcceleratorRequest::parse(s).map_err(|e| ctx.err(field, format!("'{s}': {e}")))?;
            out.push(one(ctx, &r.name, Some(&Value::Number(r.count.into())))?);
        }
        Value::Mapping(m) => {
            for (k, c) in m {
                out.push(one(
                    ctx,
                    &key_str(k),
                    if c.is_null() { None } else { Some(c) },
                )?);
            }
        }
        Value::Sequence(items) => {
            for it in items {
                out.extend(accelerators(ctx, it, field)?);
            }
        }
        _ => {
            return Err(ctx.err(
                field,
                "expected MODEL:COUNT, a {MODEL: COUNT} mapping or a list".into(),
            ))
        }
    }
    Ok(out)
}

/// Scope from `cloud`, `region` and `infra` (`aws/us-east-1`).
fn scope(ctx: &Ctx, m: &Mapping, prefix: &str) -> Result<AlternativeScope, SpecError> {
    let get = |k: &str| {
        m.get(Value::String(k.into()))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut s = AlternativeScope::default();
    let mut provider = None;
    if let Some(c) = get("cloud") {
        provider = Some(
            ctx.names
                .provider(&c)
                .map_err(|e| ctx.err(&format!("{prefix}cloud"), e))?,
        );
    }
    let mut region = get("region");
    if let Some(infra) = get("infra") {
        let mut parts = infra.split('/');
        let p = parts.next().unwrap_or("");
        if p == "k8s" || p == "kubernetes" || p == "ssh" {
            return Err(ctx.err(
                &format!("{prefix}infra"),
                format!("'{infra}': Kubernetes and SSH pools are not sites Skyward knows yet"),
            ));
        }
        if p != "*" {
            provider = Some(
                ctx.names
                    .provider(p)
                    .map_err(|e| ctx.err(&format!("{prefix}infra"), e))?,
            );
        }
        if let Some(r) = parts.next().filter(|r| *r != "*") {
            region = Some(r.to_string());
        }
        if parts.next().is_some() {
            return Err(ctx.err(
                &format!("{prefix}infra"),
                "zones are not supported; give cloud/region".into(),
            ));
        }
    }
    if let Some(p) = provider {
        s.providers.push(p);
    }
    if let Some(r) = region {
        let entry = match s.providers.first() {
            Some(p) => format!("{p}:{r}"),
            None => r,
        };
        s.regions.push(
            ctx.names
                .region_entry(&entry)
                .map_err(|e| ctx.err(&format!("{prefix}region"), e))?,
        );
    }
    Ok(s)
}

fn check_resource_keys(ctx: &mut Ctx, m: &Mapping, prefix: &str) -> Result<(), SpecError> {
    let known = [
        "accelerators",
        "cloud",
        "region",
        "infra",
        "use_spot",
        "any_of",
        "ordered",
    ];
    for k in m.keys() {
        let k = key_str(k);
        if known.contains(&k.as_str()) {
            continue;
        }
        if let Some((_, why)) = REJECTED_RESOURCES.iter().find(|(r, _)| *r == k) {
            return Err(ctx.err(&format!("{prefix}{k}"), format!("not supported: {why}")));
        }
        if IGNORED_RESOURCES.contains(&k.as_str()) {
            ctx.notes.push(format!(
                "{prefix}{k}: ignored (does not change placement in Skyward)"
            ));
            continue;
        }
        return Err(ctx.err(
            &format!("{prefix}{k}"),
            format!("unknown SkyPilot resources field '{k}'"),
        ));
    }
    Ok(())
}

pub fn parse(
    text: &str,
    file: &str,
    catalog: &Catalog,
    defaults: &TaskDefaults,
) -> Result<(Fleet, Vec<String>), SpecError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    let mut ctx = Ctx {
        file,
        text,
        names: Names::new(catalog),
        notes: Vec::new(),
    };
    let Value::Mapping(top) = &doc else {
        return Err(ctx.err("", "a SkyPilot task is a mapping".into()));
    };
    for k in top.keys() {
        let k = key_str(k);
        match k.as_str() {
            "name" | "num_nodes" | "resources" => {}
            _ if IGNORED_TOP.contains(&k.as_str()) => {
                ctx.notes.push(format!("{k}: not used for placement"))
            }
            _ => return Err(ctx.err(&k, format!("unknown SkyPilot task field '{k}'"))),
        }
    }
    let name = match top.get(Value::String("name".into())) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(ctx.err("name", "must be a non-empty string".into())),
        None => "task".to_string(),
    };
    let nodes = match top.get(Value::String("num_nodes".into())) {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(crate::fleet::NODES_MAX)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                ctx.err(
                    "num_nodes",
                    format!(
                        "must be a whole number from 1 to {}",
                        crate::fleet::NODES_MAX
                    ),
                )
            })?,
    };
    let empty = Mapping::new();
    let res = match top.get(Value::String("resources".into())) {
        None | Some(Value::Null) => &empty,
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(ctx.err("resources", "must be a mapping".into())),
    };
    check_resource_keys(&mut ctx, res, "resources.")?;
    let base = scope(&ctx, res, "resources.")?;
    let spot = match res.get(Value::String("use_spot".into())) {
        None => SpotPolicy::Never,
        Some(Value::Bool(true)) => SpotPolicy::Required,
        Some(Value::Bool(false)) => SpotPolicy::Never,
        Some(_) => return Err(ctx.err("resources.use_spot", "must be true or false".into())),
    };

    let mut accels = Vec::new();
    let mut scopes = Vec::new();
    if let Some(v) = res.get(Value::String("accelerators".into())) {
        for a in accelerators(&ctx, v, "resources.accelerators")? {
            accels.push(a);
            scopes.push(AlternativeScope::default());
        }
    }
    for list_key in ["any_of", "ordered"] {
        let Some(v) = res.get(Value::String(list_key.into())) else {
            continue;
        };
        let Value::Sequence(items) = v else {
            return Err(ctx.err(
                &format!("resources.{list_key}"),
                "must be a list of resource mappings".into(),
            ));
        };
        if list_key == "ordered" {
            ctx.notes.push("resources.ordered: treated like any_of; Skyward chooses by total cost, not by list order".into());
        }
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("resources.{list_key}[{i}].");
            let Value::Mapping(m) = item else {
                return Err(ctx.err(&prefix, "must be a mapping".into()));
            };
            check_resource_keys(&mut ctx, m, &prefix)?;
            if m.contains_key(Value::String("use_spot".into())) {
                ctx.notes.push(format!("{prefix}use_spot: per-alternative spot is not modelled; the task-level use_spot applies"));
            }
            let sc = scope(&ctx, m, &prefix)?;
            let Some(av) = m.get(Value::String("accelerators".into())) else {
                return Err(ctx.err(
                    &format!("{prefix}accelerators"),
                    "each alternative needs accelerators (Skyward places accelerator workloads)"
                        .into(),
                ));
            };
            for a in accelerators(&ctx, av, &format!("{prefix}accelerators"))? {
                accels.push(a);
                scopes.push(sc.clone());
            }
        }
    }
    if accels.is_empty() {
        return Err(ctx.err(
            "resources.accelerators",
            "the task names no accelerators; Skyward places accelerator workloads".into(),
        ));
    }
    let hours = match defaults.hours {
        Some(h) => check_hours(h).map_err(|m| ctx.err("hours", format!("--hours {m}")))?,
        None => {
            ctx.notes.push(
                "hours: a SkyPilot task has no duration; planned for 1 hour (pass --hours N)"
                    .into(),
            );
            1.0
        }
    };
    let mut workload = Workload::new(&name, WorkloadKind::Batch, accels, nodes, hours);
    workload.alternative_scopes = scopes;
    workload.spot = spot;
    workload.providers = base.providers;
    workload.regions = base.regions;
    Ok((
        Fleet {
            workloads: vec![workload],
            ..Fleet::default()
        },
        ctx.notes,
    ))
}
