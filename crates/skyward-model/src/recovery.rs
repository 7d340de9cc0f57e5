//! What a workload does when the site running it fails (its agent goes
//! silent, the run is lost, a spot pool takes it back): where the next
//! attempt may go, and how many restarts it gets.

use serde::{Deserialize, Serialize};

/// Where a workload goes after its site failed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStrategy {
    /// Anywhere allowed, the same site included; a site that failed it
    /// twice in a row is avoided for a while (SkyPilot's FAILOVER).
    #[default]
    SameSiteFirst,
    /// Not the failed site's region for a while (SkyPilot's
    /// EAGER_NEXT_REGION).
    NextRegion,
    /// Not the failed site's provider for a while: a cloud-wide outage is
    /// not waited out.
    AnyProvider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    #[serde(default)]
    pub strategy: RecoveryStrategy,
    /// Failures after which it is given up (failed); None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

impl Recovery {
    pub fn is_default(&self) -> bool {
        *self == Recovery::default()
    }
}

/// The most restarts a workload may ask for.
pub const MAX_RESTARTS_MAX: u32 = 10_000;
