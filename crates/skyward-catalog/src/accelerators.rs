//! The accelerator table: vendor, memory, dense BF16 throughput, generation.

use skyward_model::accel::tpu_slice_chips;
use skyward_model::AcceleratorSpec;
use std::collections::BTreeMap;

pub const BUILTIN_CSV: &str = include_str!("../data/accelerators.csv");

#[derive(Debug, thiserror::Error)]
#[error("accelerators.csv:{line}: {message}")]
pub struct AcceleratorTableError {
    pub line: u64,
    pub message: String,
}

/// Accelerator specs keyed by lower-case name.
#[derive(Debug, Clone, Default)]
pub struct AcceleratorTable {
    by_name: BTreeMap<String, AcceleratorSpec>,
}

impl AcceleratorTable {
    pub fn parse(text: &str) -> Result<AcceleratorTable, AcceleratorTableError> {
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let mut by_name = BTreeMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| AcceleratorTableError {
                line: 0,
                message: e.to_string(),
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let err = |message: String| AcceleratorTableError { line, message };
            let f = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
            let num = |i: usize| {
                f(i).parse::<f64>()
                    .map_err(|_| err(format!("column {i}: '{}' is not a number", f(i))))
            };
            let spec = AcceleratorSpec {
                name: f(0),
                vendor: f(1),
                memory_gib: num(2)?,
                bf16_tflops_dense: num(3)?,
                generation: f(4),
                year: f(5).parse().map_err(|_| err(format!("year '{}'", f(5))))?,
                source: f(6),
            };
            by_name.insert(spec.name.to_ascii_lowercase(), spec);
        }
        Ok(AcceleratorTable { by_name })
    }

    pub fn builtin() -> AcceleratorTable {
        // The embedded table is checked by a unit test; an error here is a
        // build defect, and an empty table still lets plans run (speed
        // ratios then need `throughput:`).
        AcceleratorTable::parse(BUILTIN_CSV).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&AcceleratorSpec> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    pub fn all(&self) -> impl Iterator<Item = &AcceleratorSpec> {
        self.by_name.values()
    }

    /// Dense BF16 TFLOPS of one catalog accelerator unit: a device, or a
    /// whole TPU slice (`tpu-v5p-8` = 4 chips).
    pub fn unit_tflops(&self, name: &str) -> Option<f64> {
        if let Some(spec) = self.get(name) {
            return Some(spec.bf16_tflops_dense);
        }
        let (family, chips) = tpu_slice_chips(name)?;
        self.get(family)
            .map(|s| s.bf16_tflops_dense * f64::from(chips))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_covers_required_models() {
        let t = AcceleratorTable::parse(BUILTIN_CSV).unwrap();
        for name in [
            "A100",
            "H100",
            "H200",
            "B200",
            "GB200",
            "L4",
            "L40S",
            "A10G",
            "MI300X",
            "tpu-v5e",
            "tpu-v5p",
            "tpu-v6e",
            "Trainium",
            "Trainium2",
            "Inferentia2",
        ] {
            let s = t.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(
                s.bf16_tflops_dense > 0.0 && s.memory_gib > 0.0 && !s.source.is_empty(),
                "{name}"
            );
        }
        assert_eq!(t.unit_tflops("tpu-v5p-8"), Some(459.0 * 4.0));
        assert_eq!(t.unit_tflops("h100"), Some(989.0));
    }
}
