//! What the server knows of a remote site's runs, between the core and
//! an agent it cannot reach directly (pure: the server's agent sites and
//! the deterministic simulation both drive it).
//!
//! The link remembers the runs it handed to the site (attempt,
//! accelerators, started). From what the agent reports it decides:
//! - an event of a run that is the site's own at that attempt goes to the
//!   core; any other (an older attempt, a run moved elsewhere while the
//!   site was cut off, a duplicate after the run ended) is ignored;
//! - a run the agent holds that is not the site's own (a newer attempt
//!   runs elsewhere, or it was cancelled) is told to stop, once;
//! - a run that started there and that the agent no longer holds, with no
//!   end to report, was lost with the agent's machine;
//! - a run of its own that it was told to stop has stopped only once the
//!   agent says so (its end, or it no longer holds it): until then the
//!   core must not place it again (a run preempted for higher-priority
//!   work would otherwise run twice while the cancel is on its way).
//!
//! So work cut off with its site never runs twice as the live attempt.

use crate::local::{DispatchError, ExecEvent};
use skyward_core::WorkloadId;
use std::collections::{BTreeMap, BTreeSet};

/// A run handed to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub attempt: u32,
    pub accelerators: u32,
    pub started: bool,
}

/// Why the link did something other than pass an event on (explanations
/// as data: the server logs them, the simulation counts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A report of a run that is not the site's own at that attempt.
    Ignored { id: WorkloadId, attempt: u32 },
    /// Started there, no longer held by the agent, no end reported.
    Lost { id: WorkloadId, attempt: u32 },
    /// Held by the agent though no longer the site's own: told to stop.
    Stopping { id: WorkloadId, attempt: u32 },
}

/// What one report from the agent comes to.
#[derive(Debug, Default, PartialEq)]
pub struct Reconciled {
    /// For the core, in order.
    pub events: Vec<ExecEvent>,
    /// Cancels to send the agent (the attempt fences older runs too).
    pub cancels: Vec<(WorkloadId, u32)>,
    /// Runs no longer the site's own after this report.
    pub forgotten: Vec<WorkloadId>,
    /// Runs it was told to stop that the agent says have stopped.
    pub stopped: Vec<(WorkloadId, u32)>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, Default)]
pub struct Link {
    capacity: u32,
    runs: BTreeMap<WorkloadId, Held>,
    /// Runs the agent holds that were told to stop (once each).
    stopping: BTreeSet<(WorkloadId, u32)>,
    /// Its own runs told to stop, until the agent says they have.
    unconfirmed: BTreeSet<(WorkloadId, u32)>,
}

impl Link {
    pub fn new(capacity: u32) -> Link {
        Link {
            capacity,
            ..Link::default()
        }
    }

    pub fn used(&self) -> u32 {
        self.runs.values().map(|r| r.accelerators).sum()
    }

    pub fn running(&self) -> Vec<WorkloadId> {
        self.runs.keys().copied().collect()
    }

    pub fn held(&self, id: WorkloadId) -> Option<Held> {
        self.runs.get(&id).copied()
    }

    /// A run the core believes is there (after a restart): followed until
    /// the agent says how it is.
    pub fn adopt(&mut self, id: WorkloadId, attempt: u32, accelerators: u32, started: bool) {
        self.runs.insert(
            id,
            Held {
                attempt,
                accelerators,
                started,
            },
        );
    }

    /// Hands a run to the site: refused when a run of this attempt or a
    /// newer one is already there, or the accelerators are not free.
    pub fn dispatch(
        &mut self,
        site: &str,
        id: WorkloadId,
        attempt: u32,
        accelerators: u32,
    ) -> Result<(), DispatchError> {
        if self.runs.get(&id).is_some_and(|r| r.attempt >= attempt) {
            return Err(DispatchError::Stale(id, attempt));
        }
        let free = self.capacity.saturating_sub(self.used());
        if accelerators > free {
            return Err(DispatchError::NoCapacity {
                site: site.to_string(),
                need: accelerators,
                free,
            });
        }
        self.runs.insert(
            id,
            Held {
                attempt,
                accelerators,
                started: false,
            },
        );
        Ok(())
    }

    /// Stops the run at `attempt` or older: true when it was the site's
    /// own (now forgotten; [`Reconciled::stopped`] says when it has
    /// stopped). The cancel is sent either way (it may be a run the link
    /// never knew, such as one adopted by an older server).
    pub fn cancel(&mut self, id: WorkloadId, attempt: u32) -> bool {
        self.stopping.insert((id, attempt));
        if let Some(r) = self.runs.get(&id).filter(|r| r.attempt <= attempt) {
            self.unconfirmed.insert((id, r.attempt));
            self.runs.remove(&id);
            return true;
        }
        false
    }

    /// The agent's events since the last report, and the runs it holds
    /// (None: it has not said since).
    pub fn reconcile(
        &mut self,
        events: Vec<ExecEvent>,
        holds: Option<&[(WorkloadId, u32)]>,
    ) -> Reconciled {
        let mut out = Reconciled::default();
        for e in events {
            let (id, attempt) = match &e {
                ExecEvent::Acked { id, attempt }
                | ExecEvent::Started { id, attempt }
                | ExecEvent::Finished { id, attempt, .. }
                | ExecEvent::Lost { id, attempt, .. } => (*id, *attempt),
            };
            match self.runs.get_mut(&id) {
                Some(r) if r.attempt == attempt => {
                    match &e {
                        ExecEvent::Started { .. } => r.started = true,
                        ExecEvent::Finished { .. } | ExecEvent::Lost { .. } => {
                            self.runs.remove(&id);
                            out.forgotten.push(id);
                        }
                        ExecEvent::Acked { .. } => {}
                    }
                    out.events.push(e);
                }
                _ => {
                    let ended = matches!(e, ExecEvent::Finished { .. } | ExecEvent::Lost { .. });
                    if ended && self.unconfirmed.remove(&(id, attempt)) {
                        out.stopped.push((id, attempt));
                    } else {
                        out.notes.push(Note::Ignored { id, attempt });
                    }
                }
            }
        }
        let Some(holds) = holds else {
            return out;
        };
        let held: BTreeSet<(WorkloadId, u32)> = holds.iter().copied().collect();
        let stopped: Vec<(WorkloadId, u32)> = self
            .unconfirmed
            .iter()
            .filter(|r| !held.contains(r))
            .copied()
            .collect();
        for r in stopped {
            self.unconfirmed.remove(&r);
            out.stopped.push(r);
        }
        let gone: Vec<(WorkloadId, u32)> = self
            .runs
            .iter()
            .filter(|(id, r)| r.started && !held.contains(&(**id, r.attempt)))
            .map(|(id, r)| (*id, r.attempt))
            .collect();
        for (id, attempt) in gone {
            self.runs.remove(&id);
            out.forgotten.push(id);
            out.notes.push(Note::Lost { id, attempt });
            out.events.push(ExecEvent::Lost {
                id,
                attempt,
                started: true,
            });
        }
        for &(id, attempt) in holds {
            let ours = self.runs.get(&id).is_some_and(|r| r.attempt == attempt);
            if !ours && self.stopping.insert((id, attempt)) {
                out.notes.push(Note::Stopping { id, attempt });
                out.cancels.push((id, attempt));
            }
        }
        out
    }

    /// Forgets every run (the site is removed); returns them.
    pub fn detach(&mut self) -> Vec<WorkloadId> {
        let ids = self.running();
        self.runs.clear();
        ids
    }
}

/// An executor's report as the core's input: a run lost after it started
/// is a preemption (the site no longer has it), one lost before is a run
/// that never started (not billed). The server's runtime and the
/// deterministic simulation both use it.
pub fn core_input(site: &str, e: &ExecEvent) -> skyward_core::Input {
    use skyward_core::Input;
    let site = site.to_string();
    match *e {
        ExecEvent::Acked { id, attempt } => Input::DispatchAcked { id, site, attempt },
        ExecEvent::Started { id, attempt } => Input::Started { id, site, attempt },
        ExecEvent::Finished {
            id,
            attempt,
            success,
            ended_at_ms,
            ..
        } => Input::Finished {
            id,
            site,
            attempt,
            success,
            ended_at: ended_at_ms,
        },
        ExecEvent::Lost {
            id,
            attempt,
            started: true,
        } => Input::Preempted { id, site, attempt },
        ExecEvent::Lost { id, attempt, .. } => Input::NeverStarted { id, site, attempt },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u64) -> WorkloadId {
        WorkloadId(n)
    }

    #[test]
    fn a_run_cut_off_and_moved_is_stopped_once_and_its_reports_ignored() {
        let mut l = Link::new(8);
        l.dispatch("a", w(1), 1, 4).unwrap();
        let r = l.reconcile(
            vec![
                ExecEvent::Acked {
                    id: w(1),
                    attempt: 1,
                },
                ExecEvent::Started {
                    id: w(1),
                    attempt: 1,
                },
            ],
            Some(&[(w(1), 1)]),
        );
        assert_eq!(r.events.len(), 2);
        assert!(r.cancels.is_empty() && r.notes.is_empty());
        // The site is cut off; the core moves the run elsewhere and
        // cancels it here (the cancel waits in the outbox).
        assert!(l.cancel(w(1), 1));
        assert_eq!(l.used(), 0);
        // Back: the agent still runs attempt 1 and reports its end.
        let finished = ExecEvent::Finished {
            id: w(1),
            attempt: 1,
            success: true,
            exit_code: Some(0),
            ended_at_ms: None,
            note: None,
        };
        let r = l.reconcile(Vec::new(), Some(&[(w(1), 1)]));
        // The cancel was already sent with the core's: not again; and the
        // run has not stopped yet.
        assert_eq!(r, Reconciled::default());
        // Its end arrives (cut short, or it had finished): stopped, and
        // not passed on as the run's end.
        let r = l.reconcile(vec![finished.clone()], None);
        assert!(r.events.is_empty(), "{r:?}");
        assert_eq!(r.stopped, vec![(w(1), 1)]);
        // A copy of the end is only a stale report.
        let r = l.reconcile(vec![finished], Some(&[]));
        assert!(r.events.is_empty() && r.stopped.is_empty(), "{r:?}");
        assert_eq!(
            r.notes,
            vec![Note::Ignored {
                id: w(1),
                attempt: 1
            }]
        );
    }

    #[test]
    fn a_stop_is_confirmed_when_the_agent_no_longer_holds_the_run() {
        let mut l = Link::new(8);
        l.dispatch("a", w(1), 1, 4).unwrap();
        l.dispatch("a", w(2), 1, 4).unwrap();
        assert!(l.cancel(w(1), 1));
        assert!(l
            .reconcile(Vec::new(), Some(&[(w(1), 1), (w(2), 1)]))
            .stopped
            .is_empty());
        let r = l.reconcile(Vec::new(), Some(&[(w(2), 1)]));
        assert_eq!(r.stopped, vec![(w(1), 1)]);
        assert!(r.events.is_empty(), "{r:?}");
        // A cancel of a run that is not its own has nothing to confirm.
        assert!(!l.cancel(w(7), 1));
        assert!(l.reconcile(Vec::new(), Some(&[])).stopped.is_empty());
    }

    #[test]
    fn a_run_held_that_the_site_never_owned_is_stopped_once() {
        let mut l = Link::new(8);
        // A server restarted and forgot it; the agent still runs attempt 3.
        let r = l.reconcile(Vec::new(), Some(&[(w(9), 3)]));
        assert_eq!(r.cancels, vec![(w(9), 3)]);
        let r = l.reconcile(Vec::new(), Some(&[(w(9), 3)]));
        assert!(r.cancels.is_empty());
    }

    #[test]
    fn a_started_run_the_agent_no_longer_holds_is_lost_and_an_unstarted_one_waits() {
        let mut l = Link::new(8);
        l.dispatch("a", w(1), 1, 2).unwrap();
        l.dispatch("a", w(2), 1, 2).unwrap();
        l.reconcile(
            vec![ExecEvent::Started {
                id: w(1),
                attempt: 1,
            }],
            None,
        );
        let r = l.reconcile(Vec::new(), Some(&[]));
        assert_eq!(
            r.events,
            vec![ExecEvent::Lost {
                id: w(1),
                attempt: 1,
                started: true
            }]
        );
        assert_eq!(r.forgotten, vec![w(1)]);
        // Workload 2's dispatch may still be on its way.
        assert_eq!(l.running(), vec![w(2)]);
    }

    #[test]
    fn dispatch_is_fenced_and_bounded() {
        let mut l = Link::new(4);
        l.dispatch("a", w(1), 2, 2).unwrap();
        assert_eq!(
            l.dispatch("a", w(1), 2, 2),
            Err(DispatchError::Stale(w(1), 2))
        );
        assert_eq!(
            l.dispatch("a", w(2), 1, 3),
            Err(DispatchError::NoCapacity {
                site: "a".into(),
                need: 3,
                free: 2
            })
        );
        // A cancel of an older attempt leaves the newer run alone.
        assert!(!l.cancel(w(1), 1));
        assert_eq!(l.used(), 2);
    }
}
