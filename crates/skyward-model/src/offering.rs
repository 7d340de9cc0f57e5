//! Offerings: capacity that can be bought by the hour in one region.

use crate::money::Usd;
use crate::region::RegionKey;
use serde::Serialize;
use std::fmt;

/// One instance type in one region, with its public hourly prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offering {
    pub region: RegionKey,
    /// Instance type / shape / slice (`p5.48xlarge`, `a3-highgpu-8g`,
    /// `tpu-v5p-8`).
    pub sku: String,
    pub accelerator: String,
    pub accelerator_count: u32,
    pub vcpus: f64,
    pub memory_gib: f64,
    pub on_demand_usd_per_hour: Option<Usd>,
    /// Cheapest zone's spot price in the region.
    pub spot_usd_per_hour: Option<Usd>,
    /// Number of zones the source lists for this region.
    pub zones: u32,
    /// Where the row came from (file and snapshot, or a curated source).
    pub source: String,
}

impl Offering {
    pub fn price(&self, pricing: Pricing) -> Option<Usd> {
        match pricing {
            Pricing::OnDemand => self.on_demand_usd_per_hour,
            Pricing::Spot => self.spot_usd_per_hour,
            Pricing::Reserved => Some(Usd::ZERO),
        }
    }
}

/// How capacity is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pricing {
    OnDemand,
    Spot,
    /// Prepaid reserved capacity: nothing extra to pay.
    Reserved,
}

impl fmt::Display for Pricing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pricing::OnDemand => "on-demand",
            Pricing::Spot => "spot",
            Pricing::Reserved => "reserved",
        })
    }
}
