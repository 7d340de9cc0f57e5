//! Why an offering was rejected. Exported constants, so tests and tools can
//! match them (Kubernetes' lesson). Order here is the order of the filter
//! chain: cheap, coarse checks first.

pub const WRONG_ACCELERATOR: &str = "wrong accelerator";
pub const PROVIDER_NOT_ALLOWED: &str = "provider not allowed";
pub const REGION_NOT_ALLOWED: &str = "region not allowed";
pub const RESIDENCY: &str = "region outside residency";
pub const COMPLIANCE: &str = "region lacks required certification";
pub const LATENCY: &str = "latency bound exceeded";
pub const NO_PRICE: &str = "no price for the allowed pricing";
pub const OVER_HOURLY_CAP: &str = "over max_hourly_usd";
pub const OVER_QUOTA: &str = "gang larger than quota";
pub const POOL_TOO_SMALL: &str = "reserved pool smaller than the gang";
pub const NO_SPEED: &str = "no throughput figure to scale hours";
pub const SPOT_REQUIRED: &str = "spot required (reserved capacity is not spot)";
pub const PRUNED: &str = "dominated by a cheaper option with the same constraints";

/// The filter chain in order, for stable output.
pub const ORDER: &[&str] = &[
    WRONG_ACCELERATOR,
    PROVIDER_NOT_ALLOWED,
    REGION_NOT_ALLOWED,
    RESIDENCY,
    COMPLIANCE,
    LATENCY,
    NO_SPEED,
    NO_PRICE,
    OVER_HOURLY_CAP,
    OVER_QUOTA,
    SPOT_REQUIRED,
    POOL_TOO_SMALL,
];
