//! The pending queue in scheduling order, with how many of its workloads
//! each team has and each filter's own queue: a cycle asks "does one team
//! wait?" and "which filters wait?" without a pass over the queue, and
//! walks the filters' queues merged, dropping a filter once it has seen
//! enough of it (see `Core::schedule`).

use crate::types::WorkloadId;
use std::collections::{BTreeMap, BTreeSet};

/// (−priority, submission sequence, id): scheduling order.
pub type Key = (i64, u64, WorkloadId);

#[derive(Debug, Clone, Default)]
pub struct Queue {
    pub keys: BTreeSet<Key>,
    teams: BTreeMap<String, u32>,
    /// Each filter's workloads, in the same order.
    filters: BTreeMap<u32, BTreeSet<Key>>,
}

impl Queue {
    pub fn insert(&mut self, key: Key, team: &str, filter: u32) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        match self.teams.get_mut(team) {
            Some(n) => *n += 1,
            None => {
                self.teams.insert(team.to_string(), 1);
            }
        }
        self.filters.entry(filter).or_default().insert(key);
        true
    }

    pub fn remove(&mut self, key: &Key, team: &str, filter: u32) -> bool {
        if !self.keys.remove(key) {
            return false;
        }
        if let Some(n) = self.teams.get_mut(team) {
            *n -= 1;
            if *n == 0 {
                self.teams.remove(team);
            }
        }
        if let Some(set) = self.filters.get_mut(&filter) {
            set.remove(key);
            if set.is_empty() {
                self.filters.remove(&filter);
            }
        }
        true
    }

    /// At most one team waits (scheduling order is then key order).
    pub fn one_team(&self) -> bool {
        self.teams.len() <= 1
    }

    /// The filters that wait, each with its own queue in scheduling order.
    pub fn by_filter(
        &self,
    ) -> impl Iterator<Item = (u32, std::collections::btree_set::Iter<'_, Key>)> {
        self.filters.iter().map(|(f, set)| (*f, set.iter()))
    }

    /// Renumbers filters after a compaction (`remap[old]` is the new id;
    /// two old filters never map to one new one).
    pub fn remap_filters(&mut self, remap: &[u32]) {
        self.filters = std::mem::take(&mut self.filters)
            .into_iter()
            .filter_map(|(f, set)| Some((*remap.get(f as usize)?, set)))
            .collect();
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_inserts_and_removes() {
        let mut q = Queue::default();
        let k = |i: u64| (0, i, WorkloadId(i));
        assert!(q.insert(k(1), "a", 7));
        assert!(!q.insert(k(1), "a", 7), "a key once");
        assert!(q.one_team());
        assert!(q.insert(k(2), "b", 7));
        assert!(!q.one_team());
        assert_eq!(q.by_filter().count(), 1);
        assert!(q.insert(k(3), "b", 9));
        assert_eq!(q.by_filter().count(), 2);
        assert!(q.remove(&k(1), "a", 7));
        assert!(!q.remove(&k(1), "a", 7), "removed once");
        assert!(q.one_team());
        q.remap_filters(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(q.by_filter().count(), 2);
        assert!(q.remove(&k(2), "b", 1));
        assert_eq!(q.by_filter().count(), 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn each_filter_has_its_own_queue_in_scheduling_order() {
        let mut q = Queue::default();
        let k = |p: i64, i: u64| (-p, i, WorkloadId(i));
        for (key, f) in [(k(0, 1), 3), (k(0, 2), 4), (k(5, 3), 3), (k(0, 4), 3)] {
            assert!(q.insert(key, "a", f));
        }
        let lists: Vec<(u32, Vec<u64>)> = q
            .by_filter()
            .map(|(f, it)| (f, it.map(|k| k.2 .0).collect()))
            .collect();
        assert_eq!(lists, vec![(3, vec![3, 1, 4]), (4, vec![2])]);
        assert!(q.remove(&k(0, 2), "a", 4));
        q.remap_filters(&[0, 0, 0, 1, 0]);
        let lists: Vec<(u32, Vec<u64>)> = q
            .by_filter()
            .map(|(f, it)| (f, it.map(|k| k.2 .0).collect()))
            .collect();
        assert_eq!(lists, vec![(1, vec![3, 1, 4])]);
    }
}
