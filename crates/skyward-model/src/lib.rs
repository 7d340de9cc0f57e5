//! Skyward's domain model: the types every other crate shares.
//!
//! This crate does no I/O and has no dependency beyond `serde` and
//! `thiserror`. Money is exact ([`Usd`], integer micro-dollars); names carry
//! their units (`price_usd_per_hour`, `rtt_ms`, `egress_usd_per_gb`).

pub mod accel;
pub mod checkpoint;
pub mod fleet;
pub mod money;
pub mod offering;
pub mod recovery;
pub mod region;
pub mod rng;
pub mod speed;
pub mod variant;

pub use accel::{AcceleratorRequest, AcceleratorSpec};
pub use checkpoint::{CheckpointStore, Scheme, StoreUri};
pub use fleet::{
    AlternativeScope, Contract, DataSpec, Fleet, PlanSettings, Quota, ReservedCapacity, SpotPolicy,
    Workload, WorkloadKind,
};
pub use money::{Usd, UsdParseError};
pub use offering::{Offering, Pricing};
pub use recovery::{Recovery, RecoveryStrategy};
pub use region::{RegionInfo, RegionKey};
pub use variant::{Stack, Variant};
