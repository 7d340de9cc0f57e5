//! Accelerators: their specs and how a workload asks for them.

use serde::Serialize;
use std::fmt;

/// One accelerator model's public specs (per device: one GPU, one TPU chip,
/// one Trainium/Inferentia chip).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcceleratorSpec {
    /// Catalog name as SkyPilot spells it (`H100`, `A100-80GB`, `tpu-v5p`).
    pub name: String,
    pub vendor: String,
    pub memory_gib: f64,
    /// Dense (no sparsity) BF16 tensor throughput; FP16 tensor for chips
    /// without BF16 (V100, T4), FP32 for chips without tensor cores.
    pub bf16_tflops_dense: f64,
    pub generation: String,
    pub year: u16,
    pub source: String,
}

/// `MODEL:COUNT` per node, as in SkyPilot (`H100:8`, `tpu-v5p-8:1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AcceleratorRequest {
    pub name: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceleratorRequestError {
    #[error("empty accelerator name")]
    EmptyName,
    #[error("accelerator count '{0}' is not a whole number from 1 to 1024")]
    BadCount(String),
}

/// Upper bound on accelerators per node in a request.
pub const ACCELERATORS_PER_NODE_MAX: u32 = 1024;

impl AcceleratorRequest {
    /// Parses `NAME` (count 1) or `NAME:COUNT`.
    pub fn parse(text: &str) -> Result<AcceleratorRequest, AcceleratorRequestError> {
        let t = text.trim();
        let (name, count) = match t.rsplit_once(':') {
            Some((n, c)) => {
                let count: u32 = c
                    .trim()
                    .parse()
                    .map_err(|_| AcceleratorRequestError::BadCount(c.to_string()))?;
                (n.trim(), count)
            }
            None => (t, 1),
        };
        if name.is_empty() {
            return Err(AcceleratorRequestError::EmptyName);
        }
        if count == 0 || count > ACCELERATORS_PER_NODE_MAX {
            return Err(AcceleratorRequestError::BadCount(count.to_string()));
        }
        Ok(AcceleratorRequest {
            name: name.to_string(),
            count,
        })
    }
}

impl fmt::Display for AcceleratorRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.count)
    }
}

/// For a TPU slice name (`tpu-v5p-8`, `tpu-v5litepod-16`, `tpu-v6e-8`):
/// the per-chip family name in the accelerator table and the chip count.
///
/// v2, v3, v4 and v5p slices are named by TensorCores (two per chip);
/// v5e (`v5litepod`) and v6e slices are named by chips. Source: Google Cloud
/// TPU documentation, "TPU versions" pages.
pub fn tpu_slice_chips(slice: &str) -> Option<(&'static str, u32)> {
    let lower = slice.to_ascii_lowercase();
    let rest = lower.strip_prefix("tpu-")?;
    let (family, size) = rest.rsplit_once('-')?;
    let n: u32 = size.parse().ok()?;
    let (table_name, cores_per_chip) = match family {
        "v2" => ("tpu-v2", 2),
        "v3" => ("tpu-v3", 2),
        "v4" => ("tpu-v4", 2),
        "v5p" => ("tpu-v5p", 2),
        "v5litepod" | "v5e" => ("tpu-v5e", 1),
        "v6e" => ("tpu-v6e", 1),
        _ => return None,
    };
    let chips = n / cores_per_chip;
    (chips > 0).then_some((table_name, chips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok: &[(&str, &str, u32)] = &[
            ("H100:8", "H100", 8),
            ("A10G", "A10G", 1),
            (" tpu-v5p-8:1 ", "tpu-v5p-8", 1),
        ];
        for (text, name, count) in ok {
            let r = AcceleratorRequest::parse(text).unwrap();
            assert_eq!((r.name.as_str(), r.count), (*name, *count), "{text}");
        }
        for bad in ["", ":8", "H100:0", "H100:x", "H100:-1", "H100:5000"] {
            assert!(AcceleratorRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tpu_chips_table() {
        assert_eq!(tpu_slice_chips("tpu-v5p-8"), Some(("tpu-v5p", 4)));
        assert_eq!(tpu_slice_chips("tpu-v4-32"), Some(("tpu-v4", 16)));
        assert_eq!(tpu_slice_chips("tpu-v5litepod-16"), Some(("tpu-v5e", 16)));
        assert_eq!(tpu_slice_chips("tpu-v6e-8"), Some(("tpu-v6e", 8)));
        assert_eq!(tpu_slice_chips("H100"), None);
        assert_eq!(tpu_slice_chips("tpu-v9-8"), None);
    }
}
