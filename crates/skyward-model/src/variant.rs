//! How a workload runs on each accelerator stack: CUDA on NVIDIA GPUs,
//! ROCm on AMD, the Neuron SDK on Trainium and Inferentia, JAX/XLA on TPUs.
//! A workload's `variants:` are keyed by a stack (`nvidia`, `trainium`…)
//! or by an accelerator's name (`H100`); an accelerator with no variant
//! is not a place the workload can run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An accelerator's software stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// CUDA.
    Nvidia,
    /// ROCm (AMD Instinct).
    Rocm,
    /// JAX/XLA on Google TPUs.
    Tpu,
    /// The Neuron SDK on AWS Trainium.
    Trainium,
    /// The Neuron SDK on AWS Inferentia.
    Inferentia,
    /// Intel Gaudi (SynapseAI).
    Gaudi,
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stack::Nvidia => "nvidia",
            Stack::Rocm => "rocm",
            Stack::Tpu => "tpu",
            Stack::Trainium => "trainium",
            Stack::Inferentia => "inferentia",
            Stack::Gaudi => "gaudi",
        })
    }
}

/// The stack of an accelerator, from its catalog name (`MI300X` → ROCm,
/// `tpu-v5p` → TPU, `Trainium2` → Trainium; NVIDIA otherwise).
pub fn stack_of(accelerator: &str) -> Stack {
    let a = accelerator.to_ascii_lowercase();
    if a.starts_with("mi") || a.contains("radeon") {
        Stack::Rocm
    } else if a.starts_with("tpu") {
        Stack::Tpu
    } else if a.starts_with("trainium") {
        Stack::Trainium
    } else if a.starts_with("inferentia") {
        Stack::Inferentia
    } else if a.contains("gaudi") {
        Stack::Gaudi
    } else {
        Stack::Nvidia
    }
}

/// Variant keys that name a stack, and the stacks each covers (`neuron`
/// covers Trainium and Inferentia; `cuda` and `amd` are other names).
pub const STACK_KEYS: &[(&str, &[Stack])] = &[
    ("nvidia", &[Stack::Nvidia]),
    ("cuda", &[Stack::Nvidia]),
    ("rocm", &[Stack::Rocm]),
    ("amd", &[Stack::Rocm]),
    ("tpu", &[Stack::Tpu]),
    ("trainium", &[Stack::Trainium]),
    ("inferentia", &[Stack::Inferentia]),
    ("neuron", &[Stack::Trainium, Stack::Inferentia]),
    ("gaudi", &[Stack::Gaudi]),
];

/// Whether `key` names a stack (case-insensitively).
pub fn is_stack_key(key: &str) -> bool {
    STACK_KEYS.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
}

/// How one stack (or accelerator) runs the workload: each field, when
/// given, replaces the workload's own (`env` is merged over it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A container image to run in (`nvcr.io/nvidia/pytorch:24.05-py3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The key of the variant `accelerator` runs, among `keys`: the one
/// naming the accelerator itself, else its stack's (`trainium` before
/// `neuron`, `nvidia` before `cuda`), else None: no variant.
pub fn variant_key<'a, I>(keys: I, accelerator: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a String> + Clone,
{
    if let Some(k) = keys
        .clone()
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(accelerator))
    {
        return Some(k.as_str());
    }
    let stack = stack_of(accelerator);
    for (name, stacks) in STACK_KEYS {
        if stacks.contains(&stack) {
            if let Some(k) = keys
                .clone()
                .into_iter()
                .find(|k| k.eq_ignore_ascii_case(name))
            {
                return Some(k.as_str());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accelerator_takes_its_own_variant_then_its_stacks() {
        let keys: Vec<String> = ["nvidia", "neuron", "H200", "trainium"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let k = |a: &str| variant_key(&keys, a);
        assert_eq!(k("H100"), Some("nvidia"));
        assert_eq!(k("h200"), Some("H200"));
        assert_eq!(k("Trainium2"), Some("trainium"));
        assert_eq!(k("Inferentia2"), Some("neuron"));
        assert_eq!(k("MI300X"), None);
        assert_eq!(k("tpu-v5p"), None);
        assert_eq!(stack_of("tpu-v5p"), Stack::Tpu);
        assert_eq!(stack_of("Radeon Pro V520"), Stack::Rocm);
        assert_eq!(stack_of("GB200"), Stack::Nvidia);
    }
}
