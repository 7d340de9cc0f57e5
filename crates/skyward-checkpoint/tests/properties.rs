//! Properties of the resume choice and the replication plan over random
//! stores (reach, home cloud, newest step), checked against their
//! definitions computed here independently (brute force).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use skyward_checkpoint::{choose, sync_plan, Reach, StoreState};

const PROVIDERS: [&str; 4] = ["aws", "azure", "gcp", "oci"];

/// A store drawn: its home provider, who reaches it (None: all), its
/// newest step.
type Drawn = (Option<usize>, Option<Vec<usize>>, Option<u64>);

fn store() -> impl Strategy<Value = Drawn> {
    (
        proptest::option::of(0..4usize),
        proptest::option::of(proptest::collection::vec(0..4usize, 0..4)),
        proptest::option::of(0..20u64),
    )
}

fn build(raw: &[Drawn]) -> Vec<StoreState> {
    raw.iter()
        .enumerate()
        .map(|(i, (home, reach, newest))| StoreState {
            uri: format!("s3://store-{i}"),
            home: home.map(|h| PROVIDERS[h].to_string()),
            reach: match reach {
                None => Reach::All,
                Some(r) => Reach::Only(r.iter().map(|p| PROVIDERS[*p].to_string()).collect()),
            },
            newest: *newest,
        })
        .collect()
}

proptest! {
    /// An attempt never resumes from a store its provider cannot reach;
    /// it gets the newest checkpoint among those it can; it gets a store
    /// whenever it can reach one.
    #[test]
    fn the_choice_is_reachable_and_newest(raw in proptest::collection::vec(store(), 0..6), p in 0..4usize) {
        let stores = build(&raw);
        let provider = PROVIDERS[p];
        let reachable: Vec<&StoreState> = stores.iter().filter(|s| s.reach.allows(provider)).collect();
        match choose(provider, &stores) {
            None => prop_assert!(reachable.is_empty()),
            Some(r) => {
                let chosen = stores.iter().find(|s| s.uri == r.store).unwrap();
                prop_assert!(chosen.reach.allows(provider));
                let best = reachable.iter().filter_map(|s| s.newest).max();
                prop_assert_eq!(r.step, best);
                prop_assert_eq!(chosen.newest, best);
                // Among the stores holding that step, the provider's own
                // cloud when one of them is there.
                let home_has_it = reachable.iter().any(|s| s.newest == best && s.home.as_deref() == Some(provider));
                if home_has_it {
                    prop_assert_eq!(chosen.home.as_deref(), Some(provider));
                }
            }
        }
    }

    /// After the copies every store holds the newest checkpoint; nothing
    /// is copied to a store already at it, nor from a store without it.
    #[test]
    fn replication_brings_every_store_to_the_newest(raw in proptest::collection::vec(store(), 0..6)) {
        let mut stores = build(&raw);
        let newest = stores.iter().filter_map(|s| s.newest).max();
        let copies = sync_plan(&stores);
        for c in &copies {
            let from = stores.iter().find(|s| s.uri == c.from).unwrap();
            let to = stores.iter().find(|s| s.uri == c.to).unwrap();
            prop_assert_eq!(from.newest, Some(c.step));
            prop_assert!(to.newest.is_none_or(|n| n < c.step));
            prop_assert_eq!(Some(c.step), newest);
        }
        for c in &copies {
            stores.iter_mut().find(|s| s.uri == c.to).unwrap().newest = Some(c.step);
        }
        for s in &stores {
            prop_assert_eq!(s.newest, newest);
        }
    }
}
