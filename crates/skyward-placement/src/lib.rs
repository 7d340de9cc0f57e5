//! Skyward's placement engine.
//!
//! `plan(fleet, catalog, options)` runs filter → score → assign:
//!
//! 1. [`context`]: per-plan indexes (offerings by accelerator class, region
//!    attributes, RTT/egress caches, coupling rows).
//! 2. [`candidates`]: per workload, the filter chain with rejection counts
//!    by reason, cost scoring, and exact dominance pruning.
//! 3. [`problem`] → a solver: [`exact`] (MILP) for small fleets, and
//!    [`lagrange`] for any size: a proven maximum count, then a proven
//!    cost bound for plans placing that many (duals maximised by
//!    [`cutting`] planes), and a plan from repairs, ejections and local
//!    search; it always reports its gap.
//! 4. [`plan`]: the result in exact money, with explanations as data.
//!
//! Deterministic: no clock, no randomness, ordered maps only; the same
//! fleet and catalog give the same plan, byte for byte.

pub mod candidates;
mod chain;
pub mod context;
pub mod cutting;
pub mod exact;
pub mod generate;
pub mod gub;
pub mod lagrange;
pub mod plan;
pub mod problem;
pub mod reasons;

pub use plan::{plan, ExplainScope, Method, Placement, Plan, PlanOptions, Status};
