//! The queue policy's pure pieces.
//!
//! **Priorities.** Pending work is taken highest priority first, FIFO
//! within a priority (`Core::schedule`, step 1), with gang reservations
//! and EASY backfill so small jobs never starve a big gang ahead of them.
//!
//! **Preemption** ([`victims`]). A workload waiting only for capacity may
//! take it from running work of strictly lower priority that is marked
//! preemptible (by default, work with a `checkpoint`); work that is not
//! preemptible is never stopped for another. On a site, the victims are
//! the fewest runs that make room: lowest priority first, then the most
//! recently started (the least work lost), then the highest id. The
//! victims are requeued and resume from their checkpoints; across sites,
//! the core takes the site where the fewest accelerators are taken back.
//!
//! Not yet: team quotas and weighted (dominant-resource) fair share.

use crate::types::{Millis, WorkloadId};

/// A run on a site, as preemption sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: WorkloadId,
    pub priority: i32,
    pub preemptible: bool,
    pub accelerators: u32,
    pub since: Millis,
}

/// The runs to stop so a gang of `need` accelerators at `priority` fits
/// on a site with `free` accelerators free now, or None if it cannot (it
/// fits already, or not even stopping every eligible run makes room).
pub fn victims(priority: i32, need: u32, free: u32, running: &[Run]) -> Option<Vec<WorkloadId>> {
    if need <= free {
        return None;
    }
    let mut eligible: Vec<&Run> = running
        .iter()
        .filter(|r| r.preemptible && r.priority < priority)
        .collect();
    eligible.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.since.cmp(&a.since))
            .then(b.id.cmp(&a.id))
    });
    let mut room = free;
    let mut out = Vec::new();
    for r in eligible {
        if room >= need {
            break;
        }
        room = room.saturating_add(r.accelerators);
        out.push(r.id);
    }
    (room >= need).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, priority: i32, preemptible: bool, accelerators: u32, since: Millis) -> Run {
        Run {
            id: WorkloadId(id),
            priority,
            preemptible,
            accelerators,
            since,
        }
    }

    /// By hand, a site of 8 with nothing free: runs 1 (priority 0, 4
    /// GPUs, since 10), 2 (priority 0, 4 GPUs, since 20), 3 (priority 2,
    /// not preemptible). A priority-5 gang of 4 takes run 2 (lowest
    /// priority, most recently started); of 8, both; of 12, none can
    /// (run 3 is never stopped).
    #[test]
    fn victims_table() {
        let site = [
            run(1, 0, true, 4, 10),
            run(2, 0, true, 4, 20),
            run(3, 2, false, 4, 5),
        ];
        let cases: [(i32, u32, u32, Option<Vec<u64>>); 7] = [
            (5, 4, 0, Some(vec![2])),
            (5, 8, 0, Some(vec![2, 1])),
            (5, 12, 0, None),
            // Fits already: nothing to stop.
            (5, 4, 4, None),
            // Two free, needs 4: one run is enough.
            (5, 4, 2, Some(vec![2])),
            // Equal priority never preempts.
            (0, 4, 0, None),
            // Priority 1 may take the priority-0 runs only.
            (1, 8, 0, Some(vec![2, 1])),
        ];
        for (priority, need, free, want) in cases {
            let got = victims(priority, need, free, &site)
                .map(|v| v.into_iter().map(|w| w.0).collect::<Vec<_>>());
            assert_eq!(got, want, "priority {priority}, need {need}, free {free}");
        }
    }
}
