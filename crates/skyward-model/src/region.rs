//! Regions: where offerings live, with residency and certifications.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `provider:region`, e.g. `aws:us-east-1`. Lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionKey {
    pub provider: String,
    pub region: String,
}

impl RegionKey {
    pub fn new(provider: &str, region: &str) -> RegionKey {
        RegionKey {
            provider: provider.to_ascii_lowercase(),
            region: region.to_ascii_lowercase(),
        }
    }

    /// Parses `provider:region`.
    pub fn parse(text: &str) -> Option<RegionKey> {
        let (p, r) = text.trim().split_once(':')?;
        (!p.is_empty() && !r.is_empty()).then(|| RegionKey::new(p, r))
    }
}

impl fmt::Display for RegionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.region)
    }
}

/// Attributes of one region that hard constraints look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionInfo {
    pub key: RegionKey,
    /// Legal geography for residency: `us`, `eu`, `uk`, `ch`, `ca`, `jp`, …
    pub geography: String,
    /// Coarse continent, used for default network figures.
    pub continent: String,
    /// Certifications the provider holds for this region, lower-case
    /// (`hipaa`, `fedramp-moderate`, `fedramp-high`, `soc2`, `iso27001`, …).
    pub compliance: Vec<String>,
    pub source: String,
}

impl RegionInfo {
    pub fn has_certification(&self, cert: &str) -> bool {
        self.compliance.iter().any(|c| c.eq_ignore_ascii_case(cert))
            // FedRAMP High covers the Moderate baseline.
            || (cert.eq_ignore_ascii_case("fedramp-moderate") && self.compliance.iter().any(|c| c == "fedramp-high"))
    }
}
