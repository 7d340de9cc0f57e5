//! The pending queue in scheduling order, with how many of its workloads
//! each team and each filter has: a cycle asks "does one team wait?" and
//! "which filters wait?" without a pass over the queue.

use crate::types::WorkloadId;
use std::collections::{BTreeMap, BTreeSet};

/// (−priority, submission sequence, id): scheduling order.
pub type Key = (i64, u64, WorkloadId);

#[derive(Debug, Clone, Default)]
pub struct Queue {
    pub keys: BTreeSet<Key>,
    teams: BTreeMap<String, u32>,
    filters: BTreeMap<u32, u32>,
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
        *self.filters.entry(filter).or_insert(0) += 1;
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
        if let Some(n) = self.filters.get_mut(&filter) {
            *n -= 1;
            if *n == 0 {
                self.filters.remove(&filter);
            }
        }
        true
    }

    /// At most one team waits (scheduling order is then key order).
    pub fn one_team(&self) -> bool {
        self.teams.len() <= 1
    }

    /// Distinct filters among the waiting workloads.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// Renumbers filters after a compaction (`remap[old]` is the new id).
    pub fn remap_filters(&mut self, remap: &[u32]) {
        self.filters = std::mem::take(&mut self.filters)
            .into_iter()
            .filter_map(|(f, n)| Some((*remap.get(f as usize)?, n)))
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
        assert_eq!(q.filter_count(), 1);
        assert!(q.insert(k(3), "b", 9));
        assert_eq!(q.filter_count(), 2);
        assert!(q.remove(&k(1), "a", 7));
        assert!(!q.remove(&k(1), "a", 7), "removed once");
        assert!(q.one_team());
        q.remap_filters(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(q.filter_count(), 2);
        assert!(q.remove(&k(2), "b", 1));
        assert_eq!(q.filter_count(), 1);
        assert_eq!(q.len(), 1);
    }
}
