//! Executors: the edge where placed work really runs. The control-plane
//! core emits `Dispatch` / `CancelOnSite`; an executor turns them into
//! processes ([`local`]) or Slurm jobs ([`slurm`]), and reports back the
//! events the core consumes (`DispatchAcked`, `Started`, `Finished`), each
//! carrying the dispatch's fencing attempt.

pub mod isolation;
pub mod link;
pub mod local;
pub mod reaper;
pub mod slurm;
pub mod slurm_rest;

pub use isolation::RunAs;
pub use local::{ExecEvent, LocalExecutor, Options, RunSpec};

use skyward_core::WorkloadId;
use std::path::PathBuf;

/// A site's executor: the server drives each site through one of these.
pub enum Executor {
    /// Processes on this machine.
    Local(LocalExecutor),
    /// Jobs of a Slurm cluster this machine can submit to.
    Slurm(slurm::SlurmExecutor),
}

macro_rules! each {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            Executor::Local($e) => $body,
            Executor::Slurm($e) => $body,
        }
    };
}

impl Executor {
    pub fn used(&self) -> u32 {
        each!(self, e => e.used())
    }
    pub fn running(&self) -> Vec<WorkloadId> {
        each!(self, e => e.running())
    }
    pub fn attempts(&self) -> Vec<(WorkloadId, u32)> {
        each!(self, e => e.attempts())
    }
    pub fn started(&self, id: WorkloadId) -> bool {
        each!(self, e => e.started(id))
    }
    pub fn workdir(&self, id: WorkloadId) -> PathBuf {
        each!(self, e => e.workdir(id))
    }
    pub fn dispatch(
        &mut self,
        id: WorkloadId,
        attempt: u32,
        accelerators: u32,
        spec: &RunSpec,
    ) -> Result<Vec<ExecEvent>, local::DispatchError> {
        each!(self, e => e.dispatch(id, attempt, accelerators, spec))
    }
    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) {
        each!(self, e => e.cancel(id, attempt))
    }
    pub fn poll(&mut self) -> Vec<ExecEvent> {
        each!(self, e => e.poll())
    }
    pub fn retire(&self, id: WorkloadId) {
        each!(self, e => e.retire(id))
    }
    pub fn recover(&mut self) -> Vec<ExecEvent> {
        each!(self, e => e.recover())
    }
    pub fn detach(&mut self) -> usize {
        each!(self, e => e.detach())
    }
}
