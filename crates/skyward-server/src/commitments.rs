//! The commitments' live state for the scheduler: the current contracts
//! (`skyward contracts apply`, stored in this database) and the ledger's
//! charges (imported bills and the runs' own usage), through
//! `skyward_ledger::live`. A background task recomputes it every
//! [`REFRESH_MS`] and soon after a run's usage is stored, and hands it to
//! the scheduler's loop; any replica can compute it for `GET
//! /v1/commitments`.

use crate::db::Db;
use skyward_ledger::live::LiveCommitment;
use skyward_ledger::time::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The live state is recomputed at least this often.
pub const REFRESH_MS: u64 = 10_000;
/// The store is asked this often whether anything the live state reads
/// changed (a new import, contracts version or run usage, from any
/// replica): one cheap query.
pub const CHANGE_POLL_MS: u64 = 250;
/// Recomputations come at most this often (usage of many runs ending
/// together is taken in together).
pub const REFRESH_MIN_GAP_MS: u64 = 50;

/// The live state the scheduler of this replica prices with (None when it
/// does not lead), for `GET /v1/commitments`.
#[derive(Default)]
pub struct Shared(std::sync::Mutex<Option<LiveState>>);

impl Shared {
    pub fn set(&self, s: Option<LiveState>) {
        if let Ok(mut g) = self.0.lock() {
            *g = s;
        }
    }
    pub fn get(&self) -> Option<LiveState> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// The live state now, with the contract set's version (None: no
/// contracts applied).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveState {
    pub contracts_version: Option<i64>,
    /// The date the forecast starts from (today: its usage so far counts
    /// as burned, the rest of it at the history's mean day).
    pub forecast_from: String,
    pub commitments: Vec<LiveCommitment>,
    /// Why there is nothing live (a stored set that no longer parses).
    pub error: Option<String>,
}

pub async fn live_state(db: &Db, now_ms: u64) -> Result<LiveState, crate::db::DbError> {
    let store = db.ledger();
    let Some(set) = store.contract_set(None).await.map_err(store_err)? else {
        return Ok(LiveState::default());
    };
    let now = Timestamp((now_ms / 1000) as i64);
    // The forecast draws from complete days, from today's midnight on.
    let at = Timestamp(now.day() * skyward_ledger::time::SECONDS_PER_DAY);
    let contracts = match skyward_spec::contracts::parse(&set.text, &set.file_name) {
        Ok(c) => c,
        Err(e) => {
            return Ok(LiveState {
                contracts_version: Some(set.version),
                forecast_from: at.date_string(),
                commitments: Vec::new(),
                error: Some(e.to_string()),
            })
        }
    };
    let days = store.daily(None, at.day() + 1).await.map_err(store_err)?;
    Ok(LiveState {
        contracts_version: Some(set.version),
        forecast_from: at.date_string(),
        commitments: skyward_ledger::live::live(&contracts, now, &days),
        error: None,
    })
}

fn store_err(e: skyward_store::StoreError) -> crate::db::DbError {
    crate::db::DbError::Corrupt(e.to_string())
}

/// The core's view: billed dollars free per commitment.
pub fn to_core(live: &[LiveCommitment]) -> Vec<skyward_core::LiveCommitment> {
    skyward_core::LiveCommitment::from_ledger(live)
}

/// Recomputes the live state in the background until the receiver is
/// dropped; `kick` asks for a prompt refresh.
pub fn spawn_refresher(
    db: Db,
    clock: Arc<dyn crate::runtime::Clock>,
    kick: Arc<Notify>,
    shared: Arc<Shared>,
) -> (watch::Receiver<LiveState>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(LiveState::default());
    let task = tokio::spawn(async move {
        let mut reported: Option<String> = None;
        let mut seen = db.ledger_version().await.ok();
        let mut last = clock.now_ms();
        loop {
            match live_state(&db, clock.now_ms()).await {
                Ok(s) => {
                    if s.error != reported {
                        if let Some(e) = &s.error {
                            eprintln!("skyward: stored contracts do not parse, no commitment is live: {e}");
                        }
                        reported = s.error.clone();
                    }
                    shared.set(Some(s.clone()));
                    if tx.send(s).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("skyward: commitments' live state: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(REFRESH_MIN_GAP_MS)).await;
            // Until something it reads changed, or the period is over.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(CHANGE_POLL_MS)) => {}
                    _ = kick.notified() => break,
                    _ = tx.closed() => return,
                }
                let now_version = db.ledger_version().await.ok();
                if now_version != seen || clock.now_ms().saturating_sub(last) >= REFRESH_MS {
                    seen = now_version;
                    break;
                }
            }
            last = clock.now_ms();
        }
    });
    (rx, task)
}
