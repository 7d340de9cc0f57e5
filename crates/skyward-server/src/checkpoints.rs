//! Checkpoints in object stores, the server's side: the stores it knows
//! (config `object_stores:` with their secrets resolved), the workloads
//! it watches, and a background task of the leader that lists each live
//! workload's stores, records every complete checkpoint it finds, and
//! copies the newest to the stores that lack it (`replicate_to`). At
//! dispatch the runtime asks [`Shared::resume`] which store an attempt
//! on a provider uses and what it resumes from (the pure rule is
//! `skyward_checkpoint::choose`).

use crate::config::ObjectStoreConfig;
use crate::db::{CheckpointRow, Db};
use skyward_checkpoint::{Resume, Store, StoreConfig, StoreState};
use skyward_model::{CheckpointStore, StoreUri};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// New checkpoints recorded per store and scan (a run that writes faster
/// is caught up over the next scans; only the newest matter).
const RECORD_PER_SCAN_MAX: usize = 16;

/// The configured stores with their credentials.
pub fn resolve(cfgs: &[ObjectStoreConfig], secrets: &BTreeMap<String, String>) -> Vec<StoreConfig> {
    cfgs.iter()
        .map(|c| {
            let secret = |field: &str| c.secrets.get(field).and_then(|n| secrets.get(n)).cloned();
            StoreConfig {
                uri: c.uri.clone(),
                endpoint: c.endpoint.clone(),
                region: c.region.clone(),
                access_key_id: secret("access_key_id"),
                secret_access_key: secret("secret_access_key"),
                account: c.account.clone(),
                access_key: secret("access_key"),
                service_account_key: secret("service_account_key"),
                reach: c.reach.clone(),
            }
        })
        .collect()
}

/// Why a workload's checkpoint stores cannot be used here (at submit):
/// every store must be inside one the server is configured for, so a
/// submitter can point neither the server nor a run at a place the
/// operator did not allow (a `file://` path on the server included).
pub fn check_workload(
    stores: &[StoreConfig],
    spec: &CheckpointStore,
) -> Result<(), (String, String)> {
    for (i, uri) in spec.stores().enumerate() {
        let field = if i == 0 {
            "checkpoint.uri".to_string()
        } else {
            format!("checkpoint.replicate_to[{}]", i - 1)
        };
        let u = StoreUri::parse(uri).map_err(|m| (field.clone(), m))?;
        if skyward_checkpoint::covering(stores, &u).is_none() {
            return Err((
                field,
                format!(
                    "'{u}' is in none of this server's object_stores (ask its operator to add it)"
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct State {
    /// Live workloads with checkpoint stores.
    watch: BTreeMap<u64, CheckpointStore>,
    /// Workload → store → its newest complete checkpoint.
    newest: BTreeMap<u64, BTreeMap<String, u64>>,
    /// Workload → its latest attempt: only that attempt's checkpoints
    /// are recorded from now on.
    attempt: BTreeMap<u64, u32>,
}

pub struct Shared {
    pub stores: Vec<StoreConfig>,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(stores: Vec<StoreConfig>) -> Shared {
        Shared {
            stores,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn watch(&self, id: u64, spec: CheckpointStore) {
        self.lock().watch.insert(id, spec);
    }

    pub fn unwatch(&self, id: u64) {
        let mut s = self.lock();
        s.watch.remove(&id);
        s.newest.remove(&id);
        s.attempt.remove(&id);
    }

    /// A new attempt was dispatched: checkpoints of earlier ones found
    /// from now on are not recorded (they were cut off from their site).
    pub fn attempt(&self, id: u64, attempt: u32) {
        self.lock().attempt.insert(id, attempt);
    }

    fn attempt_of(&self, id: u64) -> Option<u32> {
        self.lock().attempt.get(&id).copied()
    }

    /// What the store holds, as found by a scan (or read from the
    /// database when a leader starts).
    pub fn saw(&self, id: u64, store: &str, step: u64) {
        let mut s = self.lock();
        let e = s
            .newest
            .entry(id)
            .or_default()
            .entry(store.to_string())
            .or_insert(step);
        *e = (*e).max(step);
    }

    fn states(&self, id: u64, spec: &CheckpointStore) -> Vec<StoreState> {
        let newest = self.lock().newest.get(&id).cloned().unwrap_or_default();
        self.states_from(spec, &newest)
    }

    /// The workload's stores with their newest checkpoints as given.
    pub fn states_from(
        &self,
        spec: &CheckpointStore,
        newest: &BTreeMap<String, u64>,
    ) -> Vec<StoreState> {
        spec.stores()
            .map(|uri| {
                let parsed = StoreUri::parse(uri).ok();
                let cfg = parsed
                    .as_ref()
                    .and_then(|u| skyward_checkpoint::covering(&self.stores, u));
                StoreState {
                    uri: uri.to_string(),
                    home: parsed
                        .and_then(|u| u.scheme.home_provider())
                        .map(str::to_string),
                    // A store no longer configured is reachable from nowhere.
                    reach: cfg
                        .map(|c| c.reach.clone())
                        .unwrap_or(skyward_checkpoint::Reach::Only(Vec::new())),
                    newest: newest.get(uri).copied(),
                }
            })
            .collect()
    }

    /// The store an attempt on `provider` uses, what it resumes from, and
    /// the variables its run gets (location, step, credentials).
    pub fn resume(
        &self,
        id: u64,
        spec: &CheckpointStore,
        provider: &str,
    ) -> Option<(Resume, BTreeMap<String, String>)> {
        let r = skyward_checkpoint::choose(provider, &self.states(id, spec))?;
        let uri = StoreUri::parse(&r.store).ok()?;
        let cfg = skyward_checkpoint::covering(&self.stores, &uri)?;
        let mut env = cfg.env_for(&r.store);
        if let Some(step) = r.step {
            env.insert(skyward_checkpoint::store::ENV_STEP.into(), step.to_string());
        }
        if let Some(ms) = spec.every_ms {
            env.insert(
                skyward_checkpoint::store::ENV_EVERY_S.into(),
                (ms / 1000).to_string(),
            );
        }
        Some((r, env))
    }

    fn watched(&self) -> Vec<(u64, CheckpointStore)> {
        self.lock()
            .watch
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn newest_of(&self, id: u64, store: &str) -> Option<u64> {
        self.lock()
            .newest
            .get(&id)
            .and_then(|n| n.get(store))
            .copied()
    }
}

/// Loads what the database knows of live workloads' checkpoints (a new
/// leader resumes from them before its first scan).
pub async fn load(db: &Db, shared: &Shared) -> Result<(), crate::db::DbError> {
    for (id, store, step) in db.checkpoints_newest_live().await? {
        shared.saw(id.max(0) as u64, &store, step.max(0) as u64);
    }
    Ok(())
}

/// The leader's background task: every `every_ms`, each watched
/// workload's stores are listed, new checkpoints recorded and the newest
/// copied where it is missing. A store that fails is reported once per
/// kind of failure and tried again at the next scan.
pub async fn scan_forever(
    db: Db,
    shared: Arc<Shared>,
    clock: Arc<dyn crate::runtime::Clock>,
    every_ms: u64,
) {
    let mut open: HashMap<String, Store> = HashMap::new();
    let mut reported: HashMap<String, String> = HashMap::new();
    loop {
        let watched = shared.watched();
        for (id, spec) in &watched {
            if let Err((store, why)) = scan_one(&db, &shared, &*clock, &mut open, *id, spec).await {
                if reported.get(&store) != Some(&why) {
                    eprintln!("skyward: checkpoints of workload {id} in {store}: {why}");
                    reported.insert(store, why);
                }
            }
        }
        // Stores of workloads that ended are let go.
        let live: std::collections::HashSet<&str> =
            watched.iter().flat_map(|(_, spec)| spec.stores()).collect();
        open.retain(|uri, _| live.contains(uri.as_str()));
        reported.retain(|uri, _| live.contains(uri.as_str()));
        tokio::time::sleep(std::time::Duration::from_millis(every_ms)).await;
    }
}

fn store_for<'a>(
    shared: &Shared,
    open: &'a mut HashMap<String, Store>,
    uri: &str,
) -> Result<&'a Store, (String, String)> {
    if !open.contains_key(uri) {
        let u = StoreUri::parse(uri).map_err(|m| (uri.to_string(), m))?;
        let cfg = skyward_checkpoint::covering(&shared.stores, &u).ok_or_else(|| {
            (
                uri.to_string(),
                "in none of the configured object_stores".to_string(),
            )
        })?;
        let s = Store::open(cfg, &u).map_err(|e| (uri.to_string(), e.to_string()))?;
        open.insert(uri.to_string(), s);
    }
    open.get(uri)
        .ok_or_else(|| (uri.to_string(), "not open".to_string()))
}

async fn scan_one(
    db: &Db,
    shared: &Shared,
    clock: &dyn crate::runtime::Clock,
    open: &mut HashMap<String, Store>,
    id: u64,
    spec: &CheckpointStore,
) -> Result<(), (String, String)> {
    let mut first_err = None;
    for uri in spec.stores() {
        let store = match store_for(shared, open, uri) {
            Ok(s) => s.clone(),
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        let listing = match store.list().await {
            Ok(l) => l,
            Err(e) => {
                first_err.get_or_insert((uri.to_string(), e.to_string()));
                continue;
            }
        };
        let known = shared.newest_of(id, uri);
        let new: Vec<u64> = listing
            .steps
            .iter()
            .copied()
            .filter(|s| known.is_none_or(|k| *s > k))
            .collect();
        for step in new.iter().rev().take(RECORD_PER_SCAN_MAX).rev() {
            // Only a manifest that reads and checks is a checkpoint, and
            // only the latest attempt's (or one no run signed).
            match store.manifest(*step).await {
                Ok(m)
                    if m.attempt
                        .zip(shared.attempt_of(id))
                        .is_some_and(|(a, cur)| a != cur) =>
                {
                    first_err.get_or_insert((
                        uri.to_string(),
                        format!(
                            "checkpoints written by attempt {} are not recorded: attempt {} is the live one",
                            m.attempt.unwrap_or(0),
                            shared.attempt_of(id).unwrap_or(0)
                        ),
                    ));
                }
                Ok(m) => {
                    record(db, clock, id, uri, &m, None)
                        .await
                        .map_err(|e| (uri.to_string(), e))?;
                    shared.saw(id, uri, *step);
                }
                Err(e) => {
                    first_err.get_or_insert((uri.to_string(), e.to_string()));
                }
            }
        }
    }
    // Replication: the newest checkpoint to every store behind.
    let states = shared.states(id, spec);
    for c in skyward_checkpoint::sync_plan(&states) {
        let from = match store_for(shared, open, &c.from) {
            Ok(s) => s.clone(),
            Err(e) => return Err(e),
        };
        let to = match store_for(shared, open, &c.to) {
            Ok(s) => s.clone(),
            Err(e) => return Err(e),
        };
        match from.copy_to(&to, c.step).await {
            Ok(m) => {
                record(db, clock, id, &c.to, &m, Some(&c.from))
                    .await
                    .map_err(|e| (c.to.clone(), e))?;
                shared.saw(id, &c.to, c.step);
            }
            Err(e) => {
                first_err
                    .get_or_insert((c.to.clone(), format!("copy of checkpoint {}: {e}", c.step)));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn record(
    db: &Db,
    clock: &dyn crate::runtime::Clock,
    id: u64,
    store: &str,
    m: &skyward_checkpoint::Manifest,
    copied_from: Option<&str>,
) -> Result<(), String> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    db.checkpoint_record(&CheckpointRow {
        workload_id: id as i64,
        store: store.to_string(),
        step: clamp(m.step),
        bytes: clamp(m.bytes),
        files: m.files.len() as i64,
        written_at_ms: clamp(m.written_at_ms),
        recorded_at_ms: clock.now_ms() as i64,
        copied_from: copied_from.map(str::to_string),
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("recording it: {e}"))
}
