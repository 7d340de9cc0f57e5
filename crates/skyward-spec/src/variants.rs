//! `variants:` of a workload (job or fleet file): how it runs on each
//! stack or accelerator, checked field by field.

use crate::fleet::Names;
use crate::job::{checked_env, EnvValue, SCRIPT_BYTES_MAX};
use serde::Deserialize;
use skyward_model::variant::{is_stack_key, variant_key, STACK_KEYS};
use skyward_model::Variant;
use std::collections::BTreeMap;

/// Variants one workload may give.
pub const VARIANTS_MAX: usize = 16;
/// Longest container image reference.
pub const IMAGE_CHARS_MAX: usize = 512;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariant {
    #[serde(default)]
    setup: Option<String>,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    env: Option<BTreeMap<String, EnvValue>>,
    #[serde(default)]
    image: Option<String>,
}

/// The variants, checked: each key a stack (`nvidia`, `rocm`, `tpu`,
/// `trainium`, `inferentia`, `neuron`, `gaudi`, or `cuda`/`amd`) or an
/// accelerator the catalog knows (kept as the catalog spells it); errors
/// name `variants.KEY.field`.
pub(crate) fn checked(
    raw: BTreeMap<String, RawVariant>,
    names: &Names,
) -> Result<BTreeMap<String, Variant>, (String, String)> {
    if raw.len() > VARIANTS_MAX {
        return Err((
            "variants".into(),
            format!("at most {VARIANTS_MAX} variants"),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, v) in raw {
        let shown: String = key.chars().take(64).collect();
        let field = |f: &str| format!("variants.{shown}.{f}");
        let key = if is_stack_key(&key) {
            key.to_ascii_lowercase()
        } else {
            names.accelerator(&key).map_err(|_| {
                (
                    format!("variants.{shown}"),
                    format!(
                        "'{shown}' is neither a stack ({}) nor an accelerator in the catalog",
                        STACK_KEYS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?
        };
        if out.contains_key(&key) {
            return Err((
                format!("variants.{shown}"),
                format!("'{key}' is given twice"),
            ));
        }
        for (f, text) in [("setup", &v.setup), ("run", &v.run)] {
            if let Some(t) = text {
                if t.len() > SCRIPT_BYTES_MAX || (f == "run" && t.trim().is_empty()) {
                    return Err((
                        field(f),
                        format!(
                            "must be a non-empty command of at most {} KiB",
                            SCRIPT_BYTES_MAX / 1024
                        ),
                    ));
                }
            }
        }
        if let Some(i) = &v.image {
            // What a container runtime may be given as its image argument:
            // registry/name:tag@digest characters, not an option.
            if i.is_empty()
                || i.chars().count() > IMAGE_CHARS_MAX
                || i.starts_with('-')
                || !i
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
            {
                return Err((
                    field("image"),
                    format!("an image reference (registry/name:tag or @digest) of 1 to {IMAGE_CHARS_MAX} characters, not starting with -"),
                ));
            }
        }
        let env = checked_env(v.env.unwrap_or_default()).map_err(|m| (field("env"), m))?;
        out.insert(
            key,
            Variant {
                setup: v.setup,
                run: v.run,
                env,
                image: v.image,
            },
        );
    }
    Ok(out)
}

/// The alternatives (`NAME:COUNT` or names) no variant covers, by name;
/// none when there are no variants.
pub fn no_variant(variants: &BTreeMap<String, Variant>, alternatives: &[String]) -> Vec<String> {
    if variants.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for a in alternatives {
        let name = a.rsplit_once(':').map_or(a.as_str(), |x| x.0);
        if variant_key(variants.keys(), name).is_none() && !out.iter().any(|x| x == name) {
            out.push(name.to_string());
        }
    }
    out
}
