//! Checkpoints in object storage, across clouds.
//!
//! A workload declares `checkpoint: {uri: s3://…, every: 30m,
//! replicate_to: [az://…]}`. The pure parts: the layout of numbered
//! checkpoints in a store ([`layout`]), which store an attempt on a
//! provider resumes from and what to copy between stores ([`plan`]). The
//! edge: the stores themselves through `object_store` ([`store`]), used
//! by the server (listing, replication) and by `skyward checkpoint`
//! inside a run (put, get, latest).

pub mod layout;
pub mod plan;
pub mod store;

pub use layout::Manifest;
pub use plan::{choose, recovery_points, sync_plan, Reach, Resume, StoreState};
pub use store::{covering, CheckpointError, Listing, Store, StoreConfig};
