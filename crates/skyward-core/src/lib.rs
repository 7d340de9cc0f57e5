//! Skyward's control-plane core, in the sans-IO shape (quinn-proto, str0m,
//! TigerBeetle): it reads no clock, spawns nothing and does no I/O. Time
//! arrives with every call; effects leave as [`Command`]s.
//!
//! ```text
//! runtime / simulator                       core
//!   persist submission, then ─ handle(now, Input::Submit) ─▶ queue
//!   at poll_timeout()       ─ handle_timeout(now) ─▶ scheduling cycle,
//!                                                    dispatch and heartbeat deadlines
//!   loop { poll_command() } ◀─ Dispatch / Cancel / Transition / RecordUsage
//! ```
//!
//! The server's runtime drives it with real time and real executors; the
//! simulator (`tests/dst.rs` now, a trace-driven one later) drives the same
//! code on simulated time.

pub mod assign;
pub mod core;
pub mod held;
pub mod policy;
pub mod queue;
pub mod types;

pub use crate::core::{
    Config, Core, Rejected, Snapshot, FILTER_DEPTH_MAX, REASON_FAILOVER_BLOCKED,
    REASON_QUEUE_DEPTH, REASON_RESERVED, REASON_SITE_DOWN, REASON_SITE_FULL, REASON_TEAM_QUOTA,
};
pub use types::{
    Avoid, Command, Failover, Input, JobSpec, LiveCommitment, Millis, Outcome, Record, SiteSpec,
    State, WorkloadId,
};
