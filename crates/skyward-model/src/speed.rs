//! How fast a class of workloads runs on each accelerator alternative,
//! learned from the throughput its runs report.
//!
//! Per alternative (`H100:8`), the log of the reported rate is modelled
//! as normal: reports scatter around the true log-rate with standard
//! deviation [`REPORT_LOG_SD`]. Before any report on an alternative, its
//! log-rate is what the datasheet says relative to the alternatives that
//! have reports (dense BF16 TFLOPS × count), with standard deviation
//! [`DATASHEET_LOG_SD`]: a job's real speed ratio between two chips is
//! often far from the datasheet's. Reports update that prior (normal-normal
//! conjugacy): precision = 1/τ² + n/σ², mean = (μ/τ² + Σ log x/σ²) ÷
//! precision. With no report at all, nothing is learned and placement
//! keeps the datasheet ratio.

use serde::Serialize;
use std::collections::BTreeMap;

/// Scatter of one run's reported log-rate around the class's true one.
pub const REPORT_LOG_SD: f64 = 0.15;
/// Uncertainty of a datasheet speed ratio, in log terms (a factor of
/// about 1.65 either way at one standard deviation).
pub const DATASHEET_LOG_SD: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedEstimate {
    /// The alternative (`H100:8`).
    pub alternative: String,
    pub reports: u32,
    /// The estimated rate (the posterior median, in the reports' unit).
    pub rate: f64,
    /// Standard deviation of the log-rate: the rate is within a factor
    /// exp(±log_sd) at one standard deviation.
    pub log_sd: f64,
    /// "measured" (reports on it), "datasheet" (only reports on other
    /// alternatives, scaled by the datasheet ratio).
    pub source: &'static str,
}

/// Estimates for `alternatives` from `reports` (alternative, rate > 0),
/// with `tflops(alternative)` its datasheet throughput (count included).
/// Alternatives with neither a report nor a datasheet path to one are
/// left out; none at all when there is no report.
pub fn estimate(
    reports: &[(String, f64)],
    alternatives: &[String],
    tflops: impl Fn(&str) -> Option<f64>,
) -> Vec<SpeedEstimate> {
    let mut logs: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (alt, rate) in reports {
        if rate.is_finite() && *rate > 0.0 {
            logs.entry(alt.as_str()).or_default().push(rate.ln());
        }
    }
    if logs.is_empty() {
        return Vec::new();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (s2, t2) = (REPORT_LOG_SD.powi(2), DATASHEET_LOG_SD.powi(2));
    let mut out = Vec::new();
    for a in alternatives {
        // The datasheet's word for `a`, from every other alternative with
        // reports (their mean log-rate, scaled).
        let prior: Vec<f64> = logs
            .iter()
            .filter(|(b, _)| **b != a.as_str())
            .filter_map(|(b, v)| {
                let (ta, tb) = (tflops(a)?, tflops(b)?);
                (ta > 0.0 && tb > 0.0).then(|| mean(v) + (ta / tb).ln())
            })
            .collect();
        let own = logs.get(a.as_str());
        let (m, sd, source) = match (own, prior.is_empty()) {
            (None, true) => continue,
            (None, false) => (mean(&prior), DATASHEET_LOG_SD, "datasheet"),
            (Some(v), true) => (mean(v), REPORT_LOG_SD / (v.len() as f64).sqrt(), "measured"),
            (Some(v), false) => {
                let precision = 1.0 / t2 + v.len() as f64 / s2;
                let m = (mean(&prior) / t2 + v.iter().sum::<f64>() / s2) / precision;
                (m, precision.sqrt().recip(), "measured")
            }
        };
        out.push(SpeedEstimate {
            alternative: a.clone(),
            reports: own.map_or(0, |v| v.len() as u32),
            rate: m.exp(),
            log_sd: sd,
            source,
        });
    }
    out
}

/// An alternative's (`H100:8`) prior rate, the scale its reports are
/// compared on: the workload's own `throughput:` figure for its
/// accelerator when the workload gives figures (none when it gives none
/// for this one: its figures and datasheet TFLOPS are not on one scale),
/// else `unit_tflops(name)` × count.
pub fn prior_rate(
    alternative: &str,
    own: &BTreeMap<String, f64>,
    unit_tflops: impl Fn(&str) -> Option<f64>,
) -> Option<f64> {
    let r = crate::AcceleratorRequest::parse(alternative).ok()?;
    if !own.is_empty() {
        return own.get(&r.name).copied();
    }
    Some(unit_tflops(&r.name)? * f64::from(r.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: H100 datasheet 3.2× A100. Two H100 reports of 100 and 400
    /// (geometric mean 200); A100 unreported: 200 / 3.2 = 62.5, sd 0.5.
    /// One A100 report of 200 (the job runs as fast there): prior log
    /// 62.5, precision 1/0.25 + 1/0.0225 = 48.444…; mean = (ln 62.5 × 4 +
    /// ln 200 × 44.444…) / 48.444….
    #[test]
    fn reports_move_the_estimate_from_the_datasheet_ratio() {
        let tf = |a: &str| match a {
            "H100:1" => Some(3.2),
            "A100:1" => Some(1.0),
            _ => None,
        };
        let alts = vec![
            "H100:1".to_string(),
            "A100:1".to_string(),
            "X:1".to_string(),
        ];
        assert!(estimate(&[], &alts, tf).is_empty());
        let mut reports = vec![("H100:1".to_string(), 100.0), ("H100:1".to_string(), 400.0)];
        let e = estimate(&reports, &alts, tf);
        assert_eq!(e.len(), 2, "X has no datasheet figure: {e:?}");
        assert!((e[0].rate - 200.0).abs() < 1e-9);
        assert!((e[0].log_sd - 0.15 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!((e[1].source, e[1].reports), ("datasheet", 0));
        assert!((e[1].rate - 62.5).abs() < 1e-9);
        assert_eq!(e[1].log_sd, 0.5);
        reports.push(("A100:1".to_string(), 200.0));
        let e = estimate(&reports, &alts, tf);
        let p = 1.0 / 0.25 + 1.0 / 0.0225;
        let want = ((62.5f64.ln() / 0.25 + 200f64.ln() / 0.0225) / p).exp();
        assert!((e[1].rate - want).abs() < 1e-9, "{} vs {want}", e[1].rate);
        assert!(e[1].rate > 180.0 && e[1].rate < 200.0);
        assert!((e[1].log_sd - p.sqrt().recip()).abs() < 1e-12);
        assert_eq!(e[1].source, "measured");
    }
}

/// The line prefix a run prints to report its throughput
/// (`##skyward-metric throughput=1234.5 unit=tokens/s`).
pub const REPORT_PREFIX: &str = "##skyward-metric ";

/// The last well-formed throughput report in a run's output: (rate,
/// unit). A line with a rate that is not a positive number, or a unit
/// longer than 32 characters or not printable, is skipped.
pub fn last_report(output: &[u8]) -> Option<(f64, String)> {
    let text = String::from_utf8_lossy(output);
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.trim_end().strip_prefix(REPORT_PREFIX) else {
            continue;
        };
        let (mut rate, mut unit) = (None, String::new());
        for token in rest.split_whitespace() {
            match token.split_once('=') {
                Some(("throughput", v)) => {
                    rate = v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0)
                }
                Some(("unit", u)) if u.len() <= 32 && u.chars().all(|c| c.is_ascii_graphic()) => {
                    unit = u.to_string()
                }
                _ => {}
            }
        }
        if let Some(r) = rate {
            found = Some((r, unit));
        }
    }
    found
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn the_last_good_report_line_counts() {
        let out = b"step 1\n##skyward-metric throughput=10 unit=tokens/s\nnoise ##skyward-metric throughput=99\n##skyward-metric throughput=-3\n##skyward-metric throughput=250.5 unit=tokens/s\n##skyward-metric throughput=nan\n";
        assert_eq!(last_report(out), Some((250.5, "tokens/s".into())));
        assert_eq!(last_report(b"no report\n"), None);
        assert_eq!(
            last_report(b"##skyward-metric throughput=5 unit=\x1b[31m\n"),
            Some((5.0, String::new()))
        );
    }
}
