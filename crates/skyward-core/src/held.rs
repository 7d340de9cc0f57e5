//! The work each site holds (dispatched or running), kept as it changes,
//! so that a cycle's questions about it cost the size of the answer, not
//! a pass over every workload the core knows (pending backlog included):
//! when a site's runs end (a waiting gang's reservation), how many
//! accelerator-hours the runs in flight will still use (the commitments'
//! room), what each team holds.
//!
//! Sums are kept in integers (accelerators × milliseconds), so adding and
//! removing runs in any order leaves them exact.

use crate::types::{Millis, WorkloadId};
use std::collections::{BTreeMap, BTreeSet};

/// One held run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub accelerators: u32,
    /// When it started; `None` while dispatched and not yet running.
    pub since: Option<Millis>,
    /// Its walltime on the site's accelerator, if it has one.
    pub walltime_ms: Option<Millis>,
}

impl Run {
    /// When it ends by its walltime, seen at `now` (a dispatched run
    /// starts now; an overdue one ends now); `None` without a walltime.
    pub fn end(&self, now: Millis) -> Option<Millis> {
        self.walltime_ms.map(|t| match self.since {
            Some(since) => since.saturating_add(t).max(now),
            None => now.saturating_add(t),
        })
    }
}

/// One site's held runs, with running sums of what they still need.
#[derive(Debug, Clone, Default)]
pub struct SiteHeld {
    pub runs: BTreeMap<WorkloadId, Run>,
    /// Running with a walltime whose end was after the last sweep.
    ending: BTreeSet<(Millis, WorkloadId)>,
    /// Σ accelerators and Σ accelerators × end over `ending`.
    ending_acc: u128,
    ending_acc_end_ms: u128,
    /// Σ accelerators × walltime over dispatched runs with a walltime.
    dispatched_acc_ms: u128,
    /// Σ accelerators over runs without a walltime.
    unknown_acc: u64,
    /// Σ accelerators over every run.
    pub accelerators: u64,
}

impl SiteHeld {
    fn add(&mut self, id: WorkloadId, run: Run) {
        let acc = u128::from(run.accelerators);
        match (run.since, run.walltime_ms) {
            (_, None) => self.unknown_acc += u64::from(run.accelerators),
            (None, Some(t)) => self.dispatched_acc_ms += acc * u128::from(t),
            (Some(since), Some(t)) => {
                let end = since.saturating_add(t);
                self.ending.insert((end, id));
                self.ending_acc += acc;
                self.ending_acc_end_ms += acc * u128::from(end);
            }
        }
        self.accelerators += u64::from(run.accelerators);
        self.runs.insert(id, run);
    }

    fn remove(&mut self, id: WorkloadId) -> Option<Run> {
        let run = self.runs.remove(&id)?;
        let acc = u128::from(run.accelerators);
        match (run.since, run.walltime_ms) {
            (_, None) => self.unknown_acc -= u64::from(run.accelerators),
            (None, Some(t)) => self.dispatched_acc_ms -= acc * u128::from(t),
            (Some(since), Some(t)) => {
                let end = since.saturating_add(t);
                // Already swept out if it is overdue.
                if self.ending.remove(&(end, id)) {
                    self.ending_acc -= acc;
                    self.ending_acc_end_ms -= acc * u128::from(end);
                }
            }
        }
        self.accelerators -= u64::from(run.accelerators);
        Some(run)
    }

    /// Drops from the sums the runs whose walltime has passed by `now`:
    /// they are counted as ending now (nothing left to use).
    fn sweep(&mut self, now: Millis) {
        while let Some(&(end, id)) = self.ending.first() {
            if end > now {
                break;
            }
            self.ending.pop_first();
            let acc = self.runs.get(&id).map_or(0, |r| u128::from(r.accelerators));
            self.ending_acc -= acc;
            self.ending_acc_end_ms -= acc * u128::from(end);
        }
    }

    /// Accelerator-hours the runs still need from `now`, each to its
    /// walltime, and how many accelerators run without one.
    pub fn remaining(&mut self, now: Millis) -> (f64, u64) {
        self.sweep(now);
        let ending = self.ending_acc_end_ms - self.ending_acc * u128::from(now);
        let acc_ms = ending + self.dispatched_acc_ms;
        (acc_ms as f64 / 3_600_000.0, self.unknown_acc)
    }

    /// When each run ends by its walltime, seen at `now` (see [`Run::end`]).
    pub fn ends(&self, now: Millis) -> Vec<(Option<Millis>, u32)> {
        self.runs
            .values()
            .map(|r| (r.end(now), r.accelerators))
            .collect()
    }
}

/// Every site's held work.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub by_site: BTreeMap<String, SiteHeld>,
}

impl Held {
    pub fn add(&mut self, site: &str, id: WorkloadId, run: Run) {
        if let Some(s) = self.by_site.get_mut(site) {
            s.add(id, run);
        } else {
            let mut s = SiteHeld::default();
            s.add(id, run);
            self.by_site.insert(site.to_string(), s);
        }
    }

    pub fn remove(&mut self, site: &str, id: WorkloadId) -> Option<Run> {
        let s = self.by_site.get_mut(site)?;
        let run = s.remove(id);
        if s.runs.is_empty() {
            self.by_site.remove(site);
        }
        run
    }

    /// The workloads held on `site`, in id order.
    pub fn on(&self, site: &str) -> Vec<WorkloadId> {
        self.by_site
            .get(site)
            .map(|s| s.runs.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn ids(&self) -> impl Iterator<Item = WorkloadId> + '_ {
        self.by_site.values().flat_map(|s| s.runs.keys().copied())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const H: Millis = 3_600_000;

    /// The sums against each run's remaining time added up by hand.
    #[test]
    fn remaining_hours_match_a_sum_by_hand() {
        let mut s = SiteHeld::default();
        // 4 accelerators since t=0 for 10 h; 2 dispatched for 3 h;
        // 1 without a walltime; 8 since 5 h for 1 h (ends at 6 h).
        s.add(
            WorkloadId(1),
            Run {
                accelerators: 4,
                since: Some(0),
                walltime_ms: Some(10 * H),
            },
        );
        s.add(
            WorkloadId(2),
            Run {
                accelerators: 2,
                since: None,
                walltime_ms: Some(3 * H),
            },
        );
        s.add(
            WorkloadId(3),
            Run {
                accelerators: 1,
                since: Some(0),
                walltime_ms: None,
            },
        );
        s.add(
            WorkloadId(4),
            Run {
                accelerators: 8,
                since: Some(5 * H),
                walltime_ms: Some(H),
            },
        );
        // At 5 h: 4×5 + 2×3 + 8×1 = 34 accelerator-hours; 1 unknown.
        assert_eq!(s.remaining(5 * H), (34.0, 1));
        // At 7 h: run 4 is overdue (counts nothing): 4×3 + 2×3 = 18.
        assert_eq!(s.remaining(7 * H), (18.0, 1));
        // Removing the overdue run (already swept) and the dispatched one.
        s.remove(WorkloadId(4)).unwrap();
        s.remove(WorkloadId(2)).unwrap();
        assert_eq!(s.remaining(7 * H), (12.0, 1));
        s.remove(WorkloadId(1)).unwrap();
        s.remove(WorkloadId(3)).unwrap();
        assert_eq!(s.remaining(7 * H), (0.0, 0));
        assert_eq!(s.accelerators, 0);
        assert!(s.runs.is_empty());
    }

    #[test]
    fn ends_are_seen_from_now() {
        let mut h = Held::default();
        h.add(
            "a",
            WorkloadId(1),
            Run {
                accelerators: 2,
                since: Some(0),
                walltime_ms: Some(H),
            },
        );
        h.add(
            "a",
            WorkloadId(2),
            Run {
                accelerators: 1,
                since: None,
                walltime_ms: Some(H),
            },
        );
        h.add(
            "a",
            WorkloadId(3),
            Run {
                accelerators: 1,
                since: Some(0),
                walltime_ms: None,
            },
        );
        let ends = h.by_site["a"].ends(2 * H);
        // Overdue ends now, dispatched ends now + walltime, unknown never.
        assert_eq!(ends, vec![(Some(2 * H), 2), (Some(3 * H), 1), (None, 1)]);
        assert_eq!(h.on("a"), vec![WorkloadId(1), WorkloadId(2), WorkloadId(3)]);
        for id in 1..=3 {
            h.remove("a", WorkloadId(id)).unwrap();
        }
        assert!(h.by_site.is_empty());
    }
}
