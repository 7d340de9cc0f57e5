//! Which store an attempt resumes from, what to replicate, and the
//! recovery point per provider (pure; the server and the simulator call
//! these with what the stores hold).

/// Which providers' sites can reach a store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reach {
    /// Every provider (the default: object stores are on the internet).
    #[default]
    All,
    /// Only these (a store inside a private network, or a policy).
    Only(Vec<String>),
}

impl Reach {
    pub fn allows(&self, provider: &str) -> bool {
        match self {
            Reach::All => true,
            Reach::Only(p) => p.iter().any(|x| x == provider),
        }
    }
}

/// One of a workload's stores as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreState {
    /// Canonical location.
    pub uri: String,
    /// The provider whose cloud holds it (no egress), if any.
    pub home: Option<String>,
    pub reach: Reach,
    /// Its newest complete checkpoint.
    pub newest: Option<u64>,
}

/// Where an attempt writes its checkpoints and what it resumes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resume {
    pub store: String,
    /// None: no checkpoint yet in any store it can reach (it starts over).
    pub step: Option<u64>,
}

/// The store an attempt on `provider` uses: of the stores it can reach,
/// the one with the newest checkpoint; on a tie (or with no checkpoint
/// anywhere) a store in the provider's own cloud, then the workload's
/// order (primary first). None when it can reach none: the attempt runs
/// without a store, and never resumes from one it cannot reach.
pub fn choose(provider: &str, stores: &[StoreState]) -> Option<Resume> {
    stores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.reach.allows(provider))
        .max_by_key(|(i, s)| {
            (
                s.newest.map_or(0, |n| n + 1),
                s.home.as_deref() == Some(provider),
                std::cmp::Reverse(*i),
            )
        })
        .map(|(_, s)| Resume {
            store: s.uri.clone(),
            step: s.newest,
        })
}

/// One copy to make: checkpoint `step` from one store to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub step: u64,
    pub from: String,
    pub to: String,
}

/// The copies that bring every store up to the newest checkpoint any of
/// them holds. Only the newest is copied (an older one is superseded
/// before it would be used), from the first store holding it; a store
/// already at or past it gets nothing.
pub fn sync_plan(stores: &[StoreState]) -> Vec<Copy> {
    let Some((newest, from)) = stores.iter().filter_map(|s| s.newest.map(|n| (n, s))).fold(
        None::<(u64, &StoreState)>,
        |best, (n, s)| match best {
            Some((b, _)) if b >= n => best,
            _ => Some((n, s)),
        },
    ) else {
        return Vec::new();
    };
    stores
        .iter()
        .filter(|s| s.newest.is_none_or(|n| n < newest))
        .map(|s| Copy {
            step: newest,
            from: from.uri.clone(),
            to: s.uri.clone(),
        })
        .collect()
}

/// For each provider, where an attempt there would resume from.
pub fn recovery_points(
    providers: &[String],
    stores: &[StoreState],
) -> Vec<(String, Option<Resume>)> {
    providers
        .iter()
        .map(|p| (p.clone(), choose(p, stores)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(uri: &str, home: &str, reach: Reach, newest: Option<u64>) -> StoreState {
        StoreState {
            uri: uri.into(),
            home: Some(home.into()),
            reach,
            newest,
        }
    }

    #[test]
    fn the_newest_reachable_checkpoint_wins_then_the_home_store() {
        let s3 = st("s3://a", "aws", Reach::All, Some(40));
        let az = st("az://b", "azure", Reach::All, Some(30));
        // Newest first, wherever it is.
        assert_eq!(
            choose("azure", &[s3.clone(), az.clone()]).unwrap().store,
            "s3://a"
        );
        // Same step: the provider's own cloud.
        let az40 = StoreState {
            newest: Some(40),
            ..az.clone()
        };
        assert_eq!(
            choose("azure", &[s3.clone(), az40.clone()]).unwrap().store,
            "az://b"
        );
        assert_eq!(
            choose("aws", &[s3.clone(), az40.clone()]).unwrap().store,
            "s3://a"
        );
        // Nothing yet: home store, else the primary.
        let (s0, a0) = (
            StoreState {
                newest: None,
                ..s3.clone()
            },
            StoreState {
                newest: None,
                ..az.clone()
            },
        );
        assert_eq!(
            choose("azure", &[s0.clone(), a0.clone()]),
            Some(Resume {
                store: "az://b".into(),
                step: None
            })
        );
        assert_eq!(choose("gcp", &[s0, a0]).unwrap().store, "s3://a");
    }

    #[test]
    fn an_unreachable_store_is_never_chosen() {
        let s3 = st("s3://a", "aws", Reach::Only(vec!["aws".into()]), Some(50));
        let az = st("az://b", "azure", Reach::All, Some(10));
        assert_eq!(
            choose("azure", &[s3.clone(), az.clone()]),
            Some(Resume {
                store: "az://b".into(),
                step: Some(10)
            })
        );
        assert_eq!(choose("azure", &[s3]), None);
    }

    #[test]
    fn sync_copies_only_the_newest_to_stores_behind() {
        let a = st("s3://a", "aws", Reach::All, Some(40));
        let b = st("az://b", "azure", Reach::All, Some(30));
        let c = st("gs://c", "gcp", Reach::All, None);
        let d = st("gs://d", "gcp", Reach::All, Some(40));
        assert_eq!(
            sync_plan(&[b.clone(), a.clone(), c, d]),
            vec![
                Copy {
                    step: 40,
                    from: "s3://a".into(),
                    to: "az://b".into()
                },
                Copy {
                    step: 40,
                    from: "s3://a".into(),
                    to: "gs://c".into()
                },
            ]
        );
        // A store that moved ahead (an attempt in the other cloud wrote
        // there) is the source the other way.
        let b50 = StoreState {
            newest: Some(50),
            ..b
        };
        assert_eq!(
            sync_plan(&[a.clone(), b50]),
            vec![Copy {
                step: 50,
                from: "az://b".into(),
                to: "s3://a".into()
            }]
        );
        assert!(sync_plan(&[StoreState { newest: None, ..a }]).is_empty());
    }
}
