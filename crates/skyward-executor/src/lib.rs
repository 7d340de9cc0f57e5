//! Executors: the edge where placed work really runs. The control-plane
//! core emits `Dispatch` / `CancelOnSite`; an executor turns them into
//! processes ([`local`]) or Slurm jobs ([`slurm`]), and reports back the
//! events the core consumes (`DispatchAcked`, `Started`, `Finished`), each
//! carrying the dispatch's fencing attempt.

pub mod isolation;
pub mod local;
pub mod reaper;
pub mod slurm;

pub use isolation::RunAs;
pub use local::{ExecEvent, LocalExecutor, Options, RunSpec};
