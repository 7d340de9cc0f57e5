//! Inter-region network figures: round-trip time and egress $/GB.
//!
//! Measured pairs come from the Skyplane project's profiles (Apache-2.0):
//! `latency.csv` (2022 ping RTTs between 69 AWS/GCP/Azure regions) and
//! `cost.csv` (egress $/GB between 71 regions), folded from zones to
//! regions by the catalog build. Pairs that were not measured are
//! estimated, and every figure says whether it was measured:
//!
//! * RTT: a region with no measurements of its own borrows those of a
//!   measured region in the same metro (`METRO_PROXIES`, +1 ms a side);
//!   otherwise a conservative default by geography: same region 1 ms,
//!   same geography 40 ms, same continent 80 ms, else 200 ms. Defaults are
//!   high on purpose: a latency bound should not be met by a guess.
//! * Egress: 0 within a region; within a provider its inter-region rate;
//!   across providers the source provider's internet egress rate (first
//!   paid tier of each provider's public data-transfer price list).

use crate::regions;
use serde::Serialize;
use skyward_model::RegionKey;
use std::collections::BTreeMap;

pub const RTT_CSV: &str = include_str!("../data/rtt.csv");
pub const EGRESS_CSV: &str = include_str!("../data/egress.csv");

/// Unmeasured region → measured region in the same metro area.
pub const METRO_PROXIES: &[(&str, &str)] = &[
    ("oci:us-ashburn-1", "aws:us-east-1"),
    ("oci:us-phoenix-1", "azure:westus3"),
    ("oci:us-chicago-1", "azure:northcentralus"),
    ("oci:us-sanjose-1", "aws:us-west-1"),
    ("oci:ca-toronto-1", "gcp:northamerica-northeast2"),
    ("oci:ca-montreal-1", "aws:ca-central-1"),
    ("oci:eu-frankfurt-1", "aws:eu-central-1"),
    ("oci:eu-amsterdam-1", "azure:westeurope"),
    ("oci:uk-london-1", "aws:eu-west-2"),
    ("oci:eu-paris-1", "azure:francecentral"),
    ("oci:eu-milan-1", "aws:eu-south-1"),
    ("oci:eu-stockholm-1", "aws:eu-north-1"),
    ("oci:eu-zurich-1", "azure:switzerlandnorth"),
    ("oci:ap-tokyo-1", "aws:ap-northeast-1"),
    ("oci:ap-osaka-1", "aws:ap-northeast-3"),
    ("oci:ap-seoul-1", "aws:ap-northeast-2"),
    ("oci:ap-mumbai-1", "aws:ap-south-1"),
    ("oci:ap-singapore-1", "aws:ap-southeast-1"),
    ("oci:ap-sydney-1", "aws:ap-southeast-2"),
    ("oci:sa-saopaulo-1", "aws:sa-east-1"),
    ("oci:af-johannesburg-1", "azure:southafricanorth"),
    ("oci:me-dubai-1", "azure:uaenorth"),
    ("lambda:us-east-1", "aws:us-east-1"),
    ("lambda:us-west-1", "aws:us-west-1"),
    ("lambda:us-midwest-1", "azure:northcentralus"),
    ("lambda:us-south-1", "azure:southcentralus"),
    ("lambda:europe-central-1", "aws:eu-central-1"),
    ("lambda:asia-northeast-1", "aws:ap-northeast-1"),
    ("lambda:asia-northeast-2", "aws:ap-northeast-2"),
    ("lambda:asia-south-1", "aws:ap-south-1"),
    ("lambda:australia-east-1", "aws:ap-southeast-2"),
    ("aws:eu-west-3", "azure:francecentral"),
    ("aws:me-central-1", "azure:uaenorth"),
    ("aws:ap-southeast-4", "gcp:australia-southeast2"),
    ("gcp:us-east5", "aws:us-east-2"),
    ("gcp:us-central2", "gcp:us-central1"),
    ("gcp:europe-west9", "azure:francecentral"),
    ("azure:eastus2", "azure:eastus"),
    ("azure:centralus", "gcp:us-central1"),
    ("azure:westus2", "aws:us-west-2"),
];

/// Default egress $/GB within one provider between two of its regions.
pub fn intra_provider_egress_usd_per_gb(provider: &str, same_continent: bool) -> f64 {
    match (provider, same_continent) {
        ("aws", _) => 0.02,
        ("gcp", true) => 0.02,
        ("gcp", false) => 0.08,
        ("azure", true) => 0.02,
        ("azure", false) => 0.05,
        ("oci", _) => 0.0085,
        ("lambda", _) => 0.0,
        (_, true) => 0.02,
        (_, false) => 0.09,
    }
}

/// Default internet egress $/GB out of a provider (first paid tier).
pub fn internet_egress_usd_per_gb(provider: &str) -> f64 {
    match provider {
        "aws" => 0.09,
        "gcp" => 0.12,
        "azure" => 0.087,
        "oci" => 0.0085,
        "lambda" => 0.0,
        _ => 0.12,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    Measured,
    MetroProxy,
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figure {
    pub value: f64,
    pub basis: Basis,
}

#[derive(Debug, Clone, Default)]
pub struct Network {
    rtt_ms: BTreeMap<(RegionKey, RegionKey), f64>,
    egress_usd_per_gb: BTreeMap<(RegionKey, RegionKey), f64>,
    proxies: BTreeMap<RegionKey, RegionKey>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct NetworkTableError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

fn parse_pairs(
    text: &str,
    file: &str,
) -> Result<BTreeMap<(RegionKey, RegionKey), f64>, NetworkTableError> {
    let mut out = BTreeMap::new();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| NetworkTableError {
            file: file.into(),
            line: 0,
            message: e.to_string(),
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let err = |m: &str| NetworkTableError {
            file: file.into(),
            line,
            message: m.to_string(),
        };
        let a =
            RegionKey::parse(rec.get(0).unwrap_or("")).ok_or_else(|| err("bad source region"))?;
        let b = RegionKey::parse(rec.get(1).unwrap_or(""))
            .ok_or_else(|| err("bad destination region"))?;
        let v: f64 = rec
            .get(2)
            .unwrap_or("")
            .trim()
            .parse()
            .map_err(|_| err("bad value"))?;
        out.insert((a, b), v);
    }
    Ok(out)
}

impl Network {
    pub fn parse(rtt_csv: &str, egress_csv: &str) -> Result<Network, NetworkTableError> {
        let proxies = METRO_PROXIES
            .iter()
            .filter_map(|(a, b)| Some((RegionKey::parse(a)?, RegionKey::parse(b)?)))
            .collect();
        Ok(Network {
            rtt_ms: parse_pairs(rtt_csv, "rtt.csv")?,
            egress_usd_per_gb: parse_pairs(egress_csv, "egress.csv")?,
            proxies,
        })
    }

    /// Regions the network tables know (measured RTT or egress, or a
    /// metro proxy): real regions, even where no GPU is sold.
    pub fn regions(&self) -> std::collections::BTreeSet<RegionKey> {
        self.rtt_ms
            .keys()
            .chain(self.egress_usd_per_gb.keys())
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .chain(
                self.proxies
                    .iter()
                    .flat_map(|(a, b)| [a.clone(), b.clone()]),
            )
            .collect()
    }

    pub fn builtin() -> Network {
        // Checked by a unit test; empty tables fall back to defaults.
        Network::parse(RTT_CSV, EGRESS_CSV).unwrap_or_default()
    }

    fn measured_rtt(&self, a: &RegionKey, b: &RegionKey) -> Option<f64> {
        let ab = self.rtt_ms.get(&(a.clone(), b.clone()));
        let ba = self.rtt_ms.get(&(b.clone(), a.clone()));
        match (ab, ba) {
            (Some(x), Some(y)) => Some((x + y) / 2.0),
            (Some(x), None) | (None, Some(x)) => Some(*x),
            (None, None) => None,
        }
    }

    /// Round-trip time between two regions, in ms.
    pub fn rtt_ms(&self, a: &RegionKey, b: &RegionKey) -> Figure {
        if a == b {
            return Figure {
                value: 1.0,
                basis: Basis::Measured,
            };
        }
        if let Some(v) = self.measured_rtt(a, b) {
            return Figure {
                value: v,
                basis: Basis::Measured,
            };
        }
        let pa = self.proxies.get(a).unwrap_or(a);
        let pb = self.proxies.get(b).unwrap_or(b);
        let hops = f64::from(u8::from(pa != a) + u8::from(pb != b));
        if hops > 0.0 {
            if pa == pb {
                return Figure {
                    value: 1.0 + hops,
                    basis: Basis::MetroProxy,
                };
            }
            if let Some(v) = self.measured_rtt(pa, pb) {
                return Figure {
                    value: v + hops,
                    basis: Basis::MetroProxy,
                };
            }
        }
        let ga = regions::geography(&a.provider, &a.region);
        let gb = regions::geography(&b.provider, &b.region);
        let value = if ga == gb && ga != "unknown" {
            40.0
        } else if regions::continent(ga) == regions::continent(gb)
            && regions::continent(ga) != "unknown"
        {
            80.0
        } else {
            200.0
        };
        Figure {
            value,
            basis: Basis::Default,
        }
    }

    /// Egress $/GB to move data from `src` to `dst` (billed by `src`'s
    /// provider).
    pub fn egress_usd_per_gb(&self, src: &RegionKey, dst: &RegionKey) -> Figure {
        if src == dst {
            return Figure {
                value: 0.0,
                basis: Basis::Measured,
            };
        }
        if let Some(v) = self.egress_usd_per_gb.get(&(src.clone(), dst.clone())) {
            return Figure {
                value: *v,
                basis: Basis::Measured,
            };
        }
        let value = if src.provider == dst.provider {
            let ca = regions::continent(regions::geography(&src.provider, &src.region));
            let cb = regions::continent(regions::geography(&dst.provider, &dst.region));
            intra_provider_egress_usd_per_gb(&src.provider, ca == cb && ca != "unknown")
        } else {
            internet_egress_usd_per_gb(&src.provider)
        };
        Figure {
            value,
            basis: Basis::Default,
        }
    }

    pub fn measured_rtt_pairs(&self) -> usize {
        self.rtt_ms.len()
    }

    pub fn measured_egress_pairs(&self) -> usize {
        self.egress_usd_per_gb.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> RegionKey {
        RegionKey::parse(s).unwrap()
    }

    #[test]
    fn builtin_tables_load() {
        let n = Network::parse(RTT_CSV, EGRESS_CSV).unwrap();
        assert!(n.measured_rtt_pairs() > 4000);
        assert!(n.measured_egress_pairs() > 4000);
        let f = n.rtt_ms(&k("azure:westeurope"), &k("gcp:europe-west4"));
        assert_eq!(f.basis, Basis::Measured);
        assert!(f.value > 1.0 && f.value < 20.0, "{f:?}");
    }

    #[test]
    fn defaults_and_proxies() {
        let n = Network::default();
        assert_eq!(
            n.rtt_ms(&k("aws:us-east-1"), &k("aws:us-east-1")).value,
            1.0
        );
        assert_eq!(
            n.rtt_ms(&k("aws:us-east-1"), &k("gcp:us-east4")).value,
            40.0
        );
        assert_eq!(
            n.rtt_ms(&k("aws:us-east-1"), &k("gcp:europe-west4")).value,
            200.0
        );
        assert_eq!(
            n.rtt_ms(&k("aws:eu-west-1"), &k("aws:eu-west-2")).value,
            80.0
        );
        let m = Network::parse(
            "src,dst,rtt_ms\naws:us-east-1,aws:us-west-1,60\n",
            "src,dst,usd_per_gb\n",
        )
        .unwrap();
        let f = m.rtt_ms(&k("oci:us-ashburn-1"), &k("lambda:us-west-1"));
        assert_eq!((f.value, f.basis), (62.0, Basis::MetroProxy));
        assert_eq!(
            m.egress_usd_per_gb(&k("aws:us-east-1"), &k("gcp:us-east4"))
                .value,
            0.09
        );
        assert_eq!(
            m.egress_usd_per_gb(&k("aws:us-east-1"), &k("aws:us-west-2"))
                .value,
            0.02
        );
        assert_eq!(
            m.egress_usd_per_gb(&k("lambda:us-east-1"), &k("aws:us-west-2"))
                .value,
            0.0
        );
    }
}
