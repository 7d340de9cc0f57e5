//! Speeds learned by a server (`skyward profiles --output json`, the body
//! of `GET /v1/profiles`) applied to a fleet file's workloads, so that
//! `plan` and `explain` scale hours by what runs measured, as the server's
//! placement does.
//!
//! A workload takes the profile of its `class:` (`team/name`), or, without
//! one, of the only class named like it. An alternative measured by that
//! class's runs takes the measured rate. One not measured is scaled from
//! the measured ones (the mean of their log-rates, each times the prior
//! ratio: the fleet file's `throughput:` when it gives both figures, else
//! dense BF16 TFLOPS × count), with the datasheet's uncertainty. A
//! `risk_averse` workload takes each rate one standard deviation down.

use crate::AppError;
use serde::{Deserialize, Serialize};
use skyward_catalog::AcceleratorTable;
use skyward_model::speed;
use skyward_model::{AcceleratorRequest, Fleet};
use std::collections::BTreeMap;

/// Largest profiles file read.
pub const PROFILES_BYTES_MAX: usize = 64 << 20;
/// Classes, and estimates per class, read at most.
const CLASSES_MAX: usize = 100_000;
const ESTIMATES_MAX: usize = 64;

#[derive(Debug, Clone, Deserialize)]
pub struct Estimate {
    pub alternative: String,
    pub reports: u32,
    pub rate: f64,
    pub log_sd: f64,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub class: String,
    #[serde(default)]
    pub unit: String,
    pub estimates: Vec<Estimate>,
}

#[derive(Deserialize)]
struct Body {
    items: Vec<Profile>,
}

/// Reads a profiles file (`{"items": [{class, unit, estimates: [...]}]}`);
/// an error names the file and what is wrong.
pub fn parse(body: &[u8], shown: &str) -> Result<Vec<Profile>, AppError> {
    if body.len() > PROFILES_BYTES_MAX {
        return Err(AppError::Input(format!(
            "{shown}: larger than {} MiB",
            PROFILES_BYTES_MAX >> 20
        )));
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        AppError::Input(format!(
            "{shown}: not a profiles file (`skyward profiles --output json`): {e}"
        ))
    })?;
    if b.items.len() > CLASSES_MAX {
        return Err(AppError::Input(format!(
            "{shown}: more than {CLASSES_MAX} classes"
        )));
    }
    for (i, p) in b.items.iter().enumerate() {
        if p.estimates.len() > ESTIMATES_MAX {
            return Err(AppError::Input(format!(
                "{shown}: items[{i}] ({}): more than {ESTIMATES_MAX} estimates",
                p.class
            )));
        }
        for (j, e) in p.estimates.iter().enumerate() {
            let at = format!("{shown}: items[{i}].estimates[{j}]");
            if !(e.rate.is_finite() && e.rate > 0.0) {
                return Err(AppError::Input(format!("{at}.rate: not a positive number")));
            }
            if !(e.log_sd.is_finite() && e.log_sd >= 0.0) {
                return Err(AppError::Input(format!("{at}.log_sd: not a number ≥ 0")));
            }
            AcceleratorRequest::parse(&e.alternative)
                .map_err(|m| AppError::Input(format!("{at}.alternative: {m}")))?;
        }
    }
    Ok(b.items)
}

/// The speed a workload's alternative was given, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedSpeed {
    pub alternative: String,
    /// In the class's unit (tokens/s, …).
    pub rate: f64,
    pub source: String,
}

/// The learned speeds one workload took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub workload: String,
    pub class: String,
    pub unit: String,
    pub speeds: Vec<AppliedSpeed>,
}

/// Applies `profiles` to `fleet` (its workloads' `throughput` and the
/// source of each figure). Returns what each workload took; a workload
/// without a profile, or whose profile measured none of its
/// alternatives, keeps what the fleet file says.
pub fn apply(
    fleet: &mut Fleet,
    profiles: &[Profile],
    tflops: &AcceleratorTable,
) -> Result<Vec<Applied>, AppError> {
    let by_class: BTreeMap<&str, &Profile> =
        profiles.iter().map(|p| (p.class.as_str(), p)).collect();
    let mut out = Vec::new();
    for w in fleet.workloads.iter_mut() {
        let profile = match &w.class {
            Some(c) => by_class.get(c.as_str()).copied(),
            None => {
                let suffix = format!("/{}", w.name);
                let named: Vec<&Profile> = profiles
                    .iter()
                    .filter(|p| p.class.ends_with(&suffix))
                    .collect();
                if named.len() > 1 {
                    return Err(AppError::Input(format!(
                        "workload '{}': the profiles of {} all match its name; say which with `class:`",
                        w.name,
                        named
                            .iter()
                            .take(5)
                            .map(|p| p.class.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                named.first().copied()
            }
        };
        let Some(p) = profile else { continue };
        let alts: Vec<String> = w.accelerators.iter().map(|a| a.to_string()).collect();
        let measured: Vec<&Estimate> = p
            .estimates
            .iter()
            .filter(|e| e.source == "measured" && e.reports > 0)
            .filter(|e| {
                AcceleratorRequest::parse(&e.alternative)
                    .is_ok_and(|r| alts.contains(&r.to_string()))
            })
            .collect();
        if measured.is_empty() {
            continue;
        }
        // Alternatives not measured: scaled from the measured ones as the
        // server scales them (each measured rate taken as one report).
        let how = if w.throughput.is_empty() {
            "dense BF16 TFLOPS"
        } else {
            "the fleet file's throughput:"
        };
        let measured_rates: Vec<(String, f64)> = measured
            .iter()
            .filter_map(|e| {
                let r = AcceleratorRequest::parse(&e.alternative).ok()?;
                Some((r.to_string(), e.rate))
            })
            .collect();
        let scaled = speed::estimate(&measured_rates, &alts, |a| {
            speed::prior_rate(a, &w.throughput, |n| tflops.unit_tflops(n))
        });
        let down = |sd: f64| if w.risk_averse { (-sd).exp() } else { 1.0 };
        let averse = if w.risk_averse { ", one sd down" } else { "" };
        let mut speeds = Vec::new();
        for key in &alts {
            let (rate, source) = match measured_rates.iter().position(|(a, _)| a == key) {
                Some(i) => {
                    let e = measured[i];
                    (
                        e.rate * down(e.log_sd),
                        format!(
                            "measured: {} run report(s) of {} (±{:.0} %){averse}",
                            e.reports,
                            p.class,
                            (e.log_sd.exp() - 1.0) * 100.0,
                        ),
                    )
                }
                None => {
                    let Some(e) = scaled.iter().find(|e| e.alternative == *key) else {
                        continue;
                    };
                    (
                        e.rate * down(e.log_sd),
                        format!(
                            "scaled from the measured alternatives by {how} (±{:.0} %){averse}",
                            (e.log_sd.exp() - 1.0) * 100.0,
                        ),
                    )
                }
            };
            speeds.push(AppliedSpeed {
                alternative: key.clone(),
                rate,
                source,
            });
        }
        w.throughput = BTreeMap::new();
        w.speed_sources = BTreeMap::new();
        for s in &speeds {
            let name = AcceleratorRequest::parse(&s.alternative)
                .map(|r| r.name)
                .unwrap_or_default();
            w.throughput.entry(name.clone()).or_insert(s.rate);
            w.speed_sources.entry(name).or_insert(s.source.clone());
        }
        out.push(Applied {
            workload: w.name.clone(),
            class: p.class.clone(),
            unit: p.unit.clone(),
            speeds,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use skyward_model::{Workload, WorkloadKind};

    fn fleet(
        name: &str,
        class: Option<&str>,
        throughput: &[(&str, f64)],
        risk_averse: bool,
    ) -> Fleet {
        let mut w = Workload::new(
            name,
            WorkloadKind::Train,
            vec![
                AcceleratorRequest::parse("H100:8").unwrap(),
                AcceleratorRequest::parse("A100:8").unwrap(),
            ],
            1,
            10.0,
        );
        w.class = class.map(str::to_string);
        w.throughput = throughput
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        w.risk_averse = risk_averse;
        Fleet {
            workloads: vec![w],
            ..Fleet::default()
        }
    }

    fn profiles(json: &str) -> Vec<Profile> {
        parse(json.as_bytes(), "p.json").unwrap()
    }

    const H100_MEASURED: &str = r#"{"items": [{"class": "lab/train", "unit": "tokens/s", "reports": 4,
        "estimates": [{"alternative": "H100:8", "reports": 4, "rate": 100.0, "log_sd": 0.15, "source": "measured"}]}]}"#;

    fn tflops() -> AcceleratorTable {
        skyward_catalog::Catalog::builtin().unwrap().accelerators
    }

    /// Worked by hand: A100:8 is not measured; scaled by the datasheet
    /// from H100:8's 100: 100 × (312 × 8) / (989 × 8) = 31.547…
    #[test]
    fn an_unmeasured_alternative_is_scaled_from_the_measured_one() {
        let mut f = fleet("train", None, &[], false);
        let a = apply(&mut f, &profiles(H100_MEASURED), &tflops()).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].class, "lab/train");
        let w = &f.workloads[0];
        assert!((w.throughput["H100"] - 100.0).abs() < 1e-9);
        assert!((w.throughput["A100"] - 100.0 * 312.0 / 989.0).abs() < 1e-9);
        assert!(w.speed_sources["H100"].starts_with("measured: 4 run report(s) of lab/train"));
        assert!(w.speed_sources["A100"].contains("dense BF16 TFLOPS"));
    }

    /// Risk-averse: each rate one sd down: 100 × e^−0.15 and the scaled
    /// one × e^−0.5.
    #[test]
    fn risk_averse_takes_each_rate_one_sd_down() {
        let mut f = fleet("train", Some("lab/train"), &[], true);
        apply(&mut f, &profiles(H100_MEASURED), &tflops()).unwrap();
        let w = &f.workloads[0];
        assert!((w.throughput["H100"] - 100.0 * (-0.15f64).exp()).abs() < 1e-9);
        assert!((w.throughput["A100"] - 100.0 * 312.0 / 989.0 * (-0.5f64).exp()).abs() < 1e-9);
    }

    /// The fleet file's own ratio (H100 twice A100) is the prior: 50.
    #[test]
    fn the_fleet_files_throughput_is_the_prior_for_the_unmeasured() {
        let mut f = fleet("train", None, &[("H100", 2.0), ("A100", 1.0)], false);
        apply(&mut f, &profiles(H100_MEASURED), &tflops()).unwrap();
        assert!((f.workloads[0].throughput["A100"] - 50.0).abs() < 1e-9);
    }

    /// The file gives a figure for A100 only: its figures and datasheet
    /// TFLOPS are not on one scale, so A100 is not scaled from H100's
    /// measured rate (it was: 100 × 1 / (989 × 8) = 0.0126 tokens/s), and
    /// placement keeps the datasheet ratio for it.
    #[test]
    fn a_partial_throughput_map_is_not_mixed_with_the_datasheet() {
        let mut f = fleet("train", None, &[("A100", 1.0)], false);
        let a = apply(&mut f, &profiles(H100_MEASURED), &tflops()).unwrap();
        let alts: Vec<&str> = a[0].speeds.iter().map(|s| s.alternative.as_str()).collect();
        assert_eq!(alts, ["H100:8"]);
        assert!(!f.workloads[0].throughput.contains_key("A100"));
    }

    #[test]
    fn without_a_profile_the_fleet_file_stands() {
        let mut f = fleet(
            "train",
            Some("other/train"),
            &[("H100", 2.0), ("A100", 1.0)],
            false,
        );
        let a = apply(&mut f, &profiles(H100_MEASURED), &tflops()).unwrap();
        assert!(a.is_empty());
        assert_eq!(f.workloads[0].throughput["A100"], 1.0);
        // A profile that measured none of its alternatives changes nothing.
        let mut f = fleet("train", None, &[], false);
        let p = H100_MEASURED.replace("H100:8", "H100:4");
        assert!(apply(&mut f, &profiles(&p), &tflops()).unwrap().is_empty());
        assert!(f.workloads[0].throughput.is_empty());
    }

    #[test]
    fn two_classes_of_one_name_need_class() {
        let two = r#"{"items": [
            {"class": "a/train", "estimates": [{"alternative": "H100:8", "reports": 1, "rate": 1, "log_sd": 0.15, "source": "measured"}]},
            {"class": "b/train", "estimates": [{"alternative": "H100:8", "reports": 1, "rate": 2, "log_sd": 0.15, "source": "measured"}]}]}"#;
        let mut f = fleet("train", None, &[], false);
        let e = apply(&mut f, &profiles(two), &tflops())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a/train, b/train") && e.contains("class:"),
            "{e}"
        );
        let mut f = fleet("train", Some("b/train"), &[], false);
        apply(&mut f, &profiles(two), &tflops()).unwrap();
        assert_eq!(f.workloads[0].throughput["H100"], 2.0);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        for (body, want) in [
            ("not json", "not a profiles file"),
            (
                r#"{"items": [{"class": "a/b", "estimates": [{"alternative": "H100:8", "reports": 1, "rate": -1, "log_sd": 0.1, "source": "measured"}]}]}"#,
                "items[0].estimates[0].rate",
            ),
            (
                r#"{"items": [{"class": "a/b", "estimates": [{"alternative": "H100:x", "reports": 1, "rate": 1, "log_sd": 0.1, "source": "measured"}]}]}"#,
                "items[0].estimates[0].alternative",
            ),
        ] {
            let e = parse(body.as_bytes(), "p.json").unwrap_err().to_string();
            assert!(e.contains("p.json") && e.contains(want), "{e}");
        }
    }
}
