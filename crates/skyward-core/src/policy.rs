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
//! **Fair share** ([`fair_order`]). Within a priority, teams take turns:
//! the next workload comes from the team whose share of the accelerators
//! (in use, plus what this cycle has ordered for it so far), divided by
//! its weight, is lowest; FIFO within a team. With one resource
//! (accelerators) this is dominant-resource fairness. A team alone, or
//! teams with no weights set, keep plain FIFO order within a priority
//! only as far as their shares stay equal: one team's burst cannot starve
//! another's.
//!
//! **Quotas.** A team with `max_accelerators` never holds more: step 1
//! skips its work with "team quota reached" while it would exceed it.

use crate::types::{Millis, WorkloadId};
use std::collections::{BTreeMap, VecDeque};

/// A team's policy: its weight (default 1) and quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub weight: f64,
    pub max_accelerators: Option<u32>,
}

impl Default for Team {
    fn default() -> Self {
        Team {
            weight: 1.0,
            max_accelerators: None,
        }
    }
}

/// A pending workload as fair share sees it, in priority then FIFO order.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued<'a> {
    pub id: WorkloadId,
    pub priority: i32,
    pub team: &'a str,
    /// Accelerators it asks for (its smallest gang).
    pub need: u32,
}

/// The order step 1 walks: by priority (highest first); within a
/// priority, turn by turn to the team with the lowest (accelerators in
/// use + ordered so far) / weight, ties to the team whose head came first;
/// FIFO within a team. `queued` is in priority-then-FIFO order.
pub fn fair_order(
    queued: &[Queued<'_>],
    in_use: &BTreeMap<String, u32>,
    teams: &BTreeMap<String, Team>,
) -> Vec<WorkloadId> {
    // Teams as indices (the queue is long, the teams few): the name of the
    // last one seen is compared first.
    let mut names: Vec<&str> = Vec::new();
    let mut team_of: Vec<usize> = Vec::with_capacity(queued.len());
    for q in queued {
        let t = match names.last() {
            Some(last) if *last == q.team => names.len() - 1,
            _ => match names.iter().position(|n| *n == q.team) {
                Some(i) => i,
                None => {
                    names.push(q.team);
                    names.len() - 1
                }
            },
        };
        team_of.push(t);
    }
    let weight: Vec<f64> = names
        .iter()
        .map(|n| {
            teams
                .get(*n)
                .map(|t| t.weight)
                .filter(|w| *w > 0.0 && w.is_finite())
                .unwrap_or(1.0)
        })
        .collect();
    let mut held: Vec<u64> = names
        .iter()
        .map(|n| u64::from(in_use.get(*n).copied().unwrap_or(0)))
        .collect();
    let mut out = Vec::with_capacity(queued.len());
    let mut i = 0;
    while i < queued.len() {
        let p = queued[i].priority;
        let mut j = i;
        while j < queued.len() && queued[j].priority == p {
            j += 1;
        }
        // One team in this priority: its FIFO order.
        let first = team_of[i];
        if team_of[i..j].iter().all(|t| *t == first) {
            for q in &queued[i..j] {
                held[first] += u64::from(q.need);
                out.push(q.id);
            }
            i = j;
            continue;
        }
        // Per team, the positions of its workloads, FIFO.
        let mut lanes: Vec<VecDeque<usize>> = vec![VecDeque::new(); names.len()];
        for (k, t) in team_of.iter().enumerate().take(j).skip(i) {
            lanes[*t].push_back(k);
        }
        loop {
            let mut best: Option<(f64, usize, usize)> = None;
            for (t, lane) in lanes.iter().enumerate() {
                let Some(pos) = lane.front() else {
                    continue;
                };
                let share = held[t] as f64 / weight[t];
                if best.is_none_or(|(s, bp, _)| (share, *pos) < (s, bp)) {
                    best = Some((share, *pos, t));
                }
            }
            let Some((_, _, t)) = best else { break };
            if let Some(k) = lanes[t].pop_front() {
                held[t] += u64::from(queued[k].need);
                out.push(queued[k].id);
            }
        }
        i = j;
    }
    out
}

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

    fn q(id: u64, priority: i32, team: &'static str, need: u32) -> Queued<'static> {
        Queued {
            id: WorkloadId(id),
            priority,
            team,
            need,
        }
    }

    /// By hand: team a submitted 1–4 (8 GPUs each) before team b's 5–6;
    /// a already holds 16. Priority 9 (id 7, team a) comes first: a holds
    /// 24. Equal weights: b (0) < a (24): b5 (b 8), b6 (b 16 < 24), then
    /// a's in order.
    #[test]
    fn fair_order_by_hand() {
        let queued = [
            q(7, 9, "a", 8),
            q(1, 0, "a", 8),
            q(2, 0, "a", 8),
            q(3, 0, "a", 8),
            q(4, 0, "a", 8),
            q(5, 0, "b", 8),
            q(6, 0, "b", 8),
        ];
        let in_use: BTreeMap<String, u32> = [("a".to_string(), 16)].into();
        let ids = |v: Vec<WorkloadId>| v.into_iter().map(|w| w.0).collect::<Vec<_>>();
        // After 7 (a: 24): b 0 → 5 (b 8), b 8 < 24 → 6 (b 16), then a's.
        assert_eq!(
            ids(fair_order(&queued, &in_use, &BTreeMap::new())),
            vec![7, 5, 6, 1, 2, 3, 4]
        );
        // Weight 4 for a: its share is 24/4 = 6 < 8 after b5: a1 comes
        // before b6.
        let teams: BTreeMap<String, Team> = [(
            "a".to_string(),
            Team {
                weight: 4.0,
                max_accelerators: None,
            },
        )]
        .into();
        assert_eq!(
            ids(fair_order(&queued, &in_use, &teams)),
            vec![7, 5, 1, 2, 6, 3, 4]
        );
        // One team alone: plain FIFO within a priority.
        let alone = [q(3, 1, "a", 8), q(1, 0, "a", 8), q(2, 0, "a", 1)];
        assert_eq!(
            ids(fair_order(&alone, &BTreeMap::new(), &BTreeMap::new())),
            vec![3, 1, 2]
        );
    }

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
