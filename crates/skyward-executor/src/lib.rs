//! Executors: the edge where placed work really runs. The control-plane
//! core emits `Dispatch` / `CancelOnSite`; an executor turns them into
//! processes (here) or cloud and Slurm jobs (later), and reports back the
//! events the core consumes (`DispatchAcked`, `Started`, `Finished`), each
//! carrying the dispatch's fencing attempt.

pub mod local;

pub use local::{ExecEvent, LocalExecutor, RunSpec};
