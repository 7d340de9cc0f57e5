//! The ledger's use cases: importing a FOCUS file, and the ledger's
//! status at a date.
//!
//! Import is two steps so that a server can fold on a blocking thread
//! and store on its async pool: [`fold`] streams any reader through the
//! FOCUS parser and the folder (hashing the bytes as they pass, bounded
//! in buckets and warnings kept), then [`store`] writes the folded file in
//! one transaction.

use crate::AppError;
use serde::{Deserialize, Serialize};
use skyward_ledger::aggregate::{Aggregates, Folder, BUCKETS_MAX};
use skyward_ledger::contracts::{Contract, Terms};
use skyward_ledger::focus::{self, CommitmentCheck};
use skyward_ledger::status::{ContractStatus, DataCommitment, DayRow, HourRow};
use skyward_ledger::Timestamp;
use skyward_store::{FileHash, ImportMode, ImportRecord, Store, StoreError};
use std::io::Read;

/// Row warnings kept (the count of all is reported).
pub const WARNINGS_SHOWN_MAX: usize = 20;

/// Rows kept in memory to check FOCUS invariants on a file (beyond that,
/// the checks run on this prefix).
pub const CHECKED_ROWS_MAX: usize = 200_000;

/// A file read and folded, not yet stored.
pub struct Folded {
    pub name: String,
    pub sha256: String,
    pub aggregates: Aggregates,
    pub warnings: Vec<String>,
    pub warnings_total: u64,
    pub commitments: Vec<CommitmentCheck>,
    pub list_cost_mismatch_lines: Vec<u64>,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: FileHash,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a FOCUS file from `input` (named `name` in messages), validating
/// every row; `progress` is called with the rows read so far every
/// million rows. Nothing is stored.
pub fn fold<R: Read>(
    input: R,
    name: &str,
    provider: Option<&str>,
    mut progress: impl FnMut(u64),
) -> Result<Folded, AppError> {
    let mut input = Hashing {
        inner: std::io::BufReader::with_capacity(1 << 20, input),
        hash: FileHash::default(),
    };
    let mut agg = Folder::default();
    let mut kept = Vec::new();
    let mut too_many = false;
    let mut next_report = 1_000_000u64;
    let mut warnings = Vec::new();
    let mut warnings_total = 0u64;
    focus::read(&mut input, name, provider, |c| {
        if let Some(w) = focus::row_warning(&c) {
            warnings_total += 1;
            if warnings.len() < WARNINGS_SHOWN_MAX {
                warnings.push(format!("{name}: {w}"));
            }
        }
        agg.add(&c);
        if kept.len() < CHECKED_ROWS_MAX && (c.commitment_id.is_some() || c.list_cost.is_some()) {
            kept.push(c);
        }
        if agg.rows() >= next_report {
            progress(agg.rows());
            next_report += 1_000_000;
        }
        if agg.bucket_count() > BUCKETS_MAX {
            too_many = true;
        }
    })
    .map_err(|e| match e {
        focus::FocusError::Io { .. } => AppError::Io(e.to_string()),
        _ => AppError::Input(e.to_string()),
    })?;
    if too_many {
        return Err(AppError::Input(format!(
            "{name}: more than {BUCKETS_MAX} distinct daily buckets; split the file by billing period"
        )));
    }
    // Drain anything the parser left unread, so the hash covers the file.
    std::io::copy(&mut input, &mut std::io::sink())
        .map_err(|e| AppError::Io(format!("{name}: {e}")))?;
    if agg.rows() == 0 {
        return Err(AppError::Input(format!("{name}: no charge rows")));
    }
    Ok(Folded {
        name: name.to_string(),
        sha256: input.hash.hex(),
        aggregates: agg.finish(),
        warnings,
        warnings_total,
        commitments: focus::commitment_checks(&kept),
        list_cost_mismatch_lines: focus::list_cost_mismatches(&kept),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Imported {
    pub file: String,
    /// Same content as an earlier import: nothing changed (not a failure,
    /// so a pipeline that re-runs an import does not break).
    pub already_imported: bool,
    pub import_id: Option<i64>,
    pub rows: u64,
    pub buckets: usize,
    pub partitions: Vec<String>,
    pub replaced: Vec<String>,
    pub appended: Vec<String>,
    pub warnings: Vec<String>,
    pub warnings_total: u64,
    pub commitments: Vec<CommitmentCheck>,
    pub list_cost_mismatch_lines: Vec<u64>,
    /// Set when `already_imported`: the store's message.
    pub message: Option<String>,
}

/// Stores a folded file (see `skyward_store` for how partitions already
/// stored are treated).
pub async fn store(
    store: &Store,
    f: Folded,
    mode: ImportMode,
    now_s: i64,
) -> Result<Imported, AppError> {
    let base = Imported {
        file: f.name.clone(),
        already_imported: false,
        import_id: None,
        rows: f.aggregates.rows,
        buckets: f.aggregates.bucket_count(),
        partitions: Vec::new(),
        replaced: Vec::new(),
        appended: Vec::new(),
        warnings: f.warnings,
        warnings_total: f.warnings_total,
        commitments: f.commitments,
        list_cost_mismatch_lines: f.list_cost_mismatch_lines,
        message: None,
    };
    match store
        .import(&f.name, &f.sha256, "focus", &f.aggregates, mode, now_s)
        .await
    {
        Err(e @ StoreError::AlreadyImported { .. }) => Ok(Imported {
            already_imported: true,
            message: Some(e.to_string()),
            ..base
        }),
        Err(e) => Err(e.into()),
        Ok(out) => Ok(Imported {
            import_id: Some(out.id),
            rows: out.rows,
            buckets: out.buckets,
            partitions: out.partitions,
            replaced: out.replaced,
            appended: out.appended,
            ..base
        }),
    }
}

/// The import mode named by a flag or query value.
pub fn mode(text: &str) -> Result<ImportMode, AppError> {
    match text {
        "" | "auto" => Ok(ImportMode::Auto),
        "append" => Ok(ImportMode::Append),
        "replace" => Ok(ImportMode::Replace),
        other => Err(AppError::Input(format!(
            "mode: '{other}' is not one of auto, append, replace"
        ))),
    }
}

/// Everything `status` and the report read, in one pass over the store:
/// daily buckets, hourly on-demand usage only for providers with hourly or
/// capacity commitments, the last day with data, and the imports.
pub struct LedgerData {
    pub days: Vec<DayRow>,
    pub hours: Vec<HourRow>,
    pub last: Option<i64>,
    pub imports: Vec<ImportRecord>,
    /// Notes on hourly figures spread from daily or longer rows, for the
    /// providers with hourly or capacity commitments.
    pub spread_notes: Vec<String>,
}

pub async fn load(store: &Store, contracts: &[Contract]) -> Result<LedgerData, AppError> {
    let mut providers: Vec<String> = contracts
        .iter()
        .filter(|c| !matches!(c.terms, Terms::Spend(_)))
        .map(|c| c.provider.clone())
        .collect();
    providers.sort();
    providers.dedup();
    let cells: Vec<(String, String, String)> = contracts
        .iter()
        .filter_map(|c| match &c.terms {
            Terms::Capacity(t) if t.commitment_id.is_none() => {
                Some((c.provider.clone(), t.region.clone(), t.sku.clone()))
            }
            _ => None,
        })
        .collect();
    let last = store.last_day().await?;
    let hours = if providers.is_empty() {
        Vec::new()
    } else {
        store.hourly_on_demand(&providers, &cells).await?
    };
    let spread_notes = store
        .hourly_spread()
        .await?
        .into_iter()
        .filter(|(p, _, spread)| *spread > 0 && providers.contains(p))
        .map(|(p, all, spread)| {
            format!(
                "{p}: {:.0} % of usage rows are longer than an hour (daily or monthly), spread evenly over their period; hourly utilisation and coverage assume flat usage within each",
                100.0 * spread as f64 / all.max(1) as f64
            )
        })
        .collect();
    Ok(LedgerData {
        days: store.daily(None, i64::MAX).await?,
        hours,
        last,
        imports: store.imports().await?,
        spread_notes,
    })
}

/// The date a ledger command works at: `at` when given, else the day
/// after the last imported charge.
pub fn resolve_at(at: Option<&str>, last: Option<i64>) -> Result<Timestamp, AppError> {
    match (at, last) {
        (Some(d), _) => Timestamp::parse(d).map_err(|m| AppError::field("at", &m)),
        (None, Some(d)) => Ok(Timestamp((d + 1) * 86_400)),
        (None, None) => Err(AppError::Input(
            "no billing data: import a FOCUS file first (`skyward ledger import FILE`), or give a date (--at)".into(),
        )),
    }
}

pub const NO_CONTRACTS: &str =
    "no contracts given (pass --contracts FILE, or store them with `skyward contracts apply FILE`)";

/// The contracts a ledger question works on: the ones given, else the
/// current stored version, else none; with where they came from.
pub async fn contracts_for(
    store: &Store,
    given: Option<(Vec<Contract>, String)>,
) -> Result<(Vec<Contract>, String), AppError> {
    if let Some(g) = given {
        return Ok(g);
    }
    Ok(match crate::contracts::current(store, None).await? {
        Some(c) => {
            let source = c.source();
            (c.contracts, source)
        }
        None => (Vec::new(), NO_CONTRACTS.into()),
    })
}

/// `skyward ledger status` (and `GET /v1/ledger/status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub at: String,
    pub contracts_source: String,
    pub contracts: Vec<ContractStatus>,
    pub commitments_in_data: Vec<DataCommitment>,
    pub notes: Vec<String>,
}

/// What the ledger's questions read, read once: the contracts (and where
/// they came from) and the data. A server keeps it until the ledger
/// changes and answers every question of that moment from it.
pub struct Loaded {
    pub contracts: Vec<Contract>,
    pub source: String,
    pub data: LedgerData,
}

pub async fn loaded(
    store: &Store,
    given: Option<(Vec<Contract>, String)>,
) -> Result<Loaded, AppError> {
    let (contracts, source) = contracts_for(store, given).await?;
    let data = load(store, &contracts).await?;
    Ok(Loaded {
        contracts,
        source,
        data,
    })
}

pub async fn status(
    store: &Store,
    given: Option<(Vec<Contract>, String)>,
    at: Option<&str>,
) -> Result<Status, AppError> {
    status_of(&loaded(store, given).await?, at)
}

/// [`status`] of what is loaded.
pub fn status_of(l: &Loaded, at: Option<&str>) -> Result<Status, AppError> {
    let (contracts, data) = (&l.contracts, &l.data);
    let at = resolve_at(at, data.last)?;
    Ok(Status {
        at: at.date_string(),
        contracts_source: l.source.clone(),
        contracts: skyward_ledger::status::status(contracts, at, &data.days, &data.hours),
        commitments_in_data: skyward_ledger::status::data_commitments(contracts, at, &data.days),
        notes: data.spread_notes.clone(),
    })
}

/// One spend commitment's burn-down, as the report and the dashboard draw
/// it: days are days since 1970-01-01 (UTC), dollars are cumulative
/// eligible burn.
#[derive(Debug, Clone, Serialize)]
pub struct Burndown {
    pub name: String,
    pub provider: String,
    pub start_day: i64,
    pub end_day: i64,
    /// The day the figures are at, within the term.
    pub at_day: i64,
    pub committed_usd: f64,
    /// Cumulative burn by day, to `at_day`.
    pub burned: Vec<(i64, f64)>,
    /// By the end of each contract year, the floors of the years so far
    /// (empty without floors).
    pub floors: Vec<(i64, f64)>,
    /// The forecast from `at_day` to the end: (day, P10, P50, P90).
    pub forecast: Vec<(i64, f64, f64, f64)>,
}

/// Every spend contract's burn-down at `at` (band points a week apart).
pub fn burndowns(contracts: &[Contract], at: Timestamp, days: &[DayRow]) -> Vec<Burndown> {
    use skyward_ledger::status::{band, burn_series};
    let mut out = Vec::new();
    for c in contracts {
        let Terms::Spend(t) = &c.terms else {
            continue;
        };
        let (d0, d1) = (c.start.day(), c.end.day());
        let here = at.day().clamp(d0, d1);
        let mut floors = Vec::new();
        if !t.floors.is_empty() {
            floors.push((d0, 0.0));
            let mut cum = 0.0;
            let mut k = 0i64;
            loop {
                let ye = c.start.plus_months(12 * (k + 1)).min(c.end).day();
                cum += t
                    .floors
                    .iter()
                    .find(|f| i64::from(f.year) == k + 1)
                    .map(|f| f.commit.as_f64())
                    .unwrap_or(0.0);
                floors.push((ye, cum));
                k += 1;
                if ye >= d1 || k > 100 {
                    break;
                }
            }
        }
        out.push(Burndown {
            name: c.name.clone(),
            provider: c.provider.clone(),
            start_day: d0,
            end_day: d1,
            at_day: here,
            committed_usd: t.commit.as_f64(),
            burned: burn_series(c, at, days)
                .into_iter()
                .map(|(d, v)| (d, v.as_f64()))
                .collect(),
            floors,
            forecast: band(c, at, days, 7)
                .iter()
                .map(|p| {
                    (
                        here + p.day_offset,
                        p.p10.as_f64(),
                        p.p50.as_f64(),
                        p.p90.as_f64(),
                    )
                })
                .collect(),
        });
    }
    out
}

/// [`burndowns`] for the ledger in `store` at `at` (the data's last day
/// when None), with the day it is at.
pub async fn burndown(
    store: &Store,
    at: Option<&str>,
) -> Result<(String, Vec<Burndown>), AppError> {
    burndown_of(&loaded(store, None).await?, at)
}

/// [`burndown`] of what is loaded.
pub fn burndown_of(l: &Loaded, at: Option<&str>) -> Result<(String, Vec<Burndown>), AppError> {
    let at = resolve_at(at, l.data.last)?;
    Ok((at.date_string(), burndowns(&l.contracts, at, &l.data.days)))
}

/// Most commitments [`use_over_time`] gives series for (the ones with
/// the most committed money first); the rest are counted.
pub const USE_SERIES_MAX: usize = 32;

/// One day of a commitment seen in the data (FOCUS Used/Unused rows).
#[derive(Debug, Clone, Serialize)]
pub struct UseDay {
    pub day: i64,
    /// Used ÷ (used + unused); None on a day with neither.
    pub utilisation: Option<f64>,
    /// Covered on-demand-equivalent ÷ (covered + on-demand cost of the
    /// usage it could cover), as in the ledger's status.
    pub coverage: Option<f64>,
    pub used_usd: f64,
    pub unused_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitmentUse {
    /// Its contract's name when a contract names its id, else the id.
    pub name: String,
    pub commitment_id: String,
    pub provider: String,
    pub days: Vec<UseDay>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SavingsRate {
    pub provider: String,
    /// (first day of the week, 1 − Σ EffectiveCost ÷ Σ ListCost of usage).
    pub weeks: Vec<(i64, f64)>,
}

/// Utilisation and coverage over time: what the report and the
/// dashboard chart.
#[derive(Debug, Clone, Serialize)]
pub struct UseOverTime {
    pub commitments: Vec<CommitmentUse>,
    /// Commitments in the data left out past [`USE_SERIES_MAX`].
    pub commitments_not_shown: usize,
    pub savings_rate: Vec<SavingsRate>,
}

/// Day by day, every commitment seen in the data before `at` (at most
/// [`USE_SERIES_MAX`], those with the most used + unused first), and each
/// provider's weekly effective savings rate.
pub fn use_over_time(contracts: &[Contract], at: Timestamp, days: &[DayRow]) -> UseOverTime {
    use skyward_ledger::status::{commitment_days, data_commitments, savings_rate_weekly};
    let before: Vec<DayRow> = days.iter().filter(|r| r.day < at.day()).cloned().collect();
    let mut found = data_commitments(contracts, at, &before);
    found.sort_by(|a, b| {
        (b.used + b.unused)
            .cmp(&(a.used + a.unused))
            .then_with(|| a.commitment_id.cmp(&b.commitment_id))
    });
    let not_shown = found.len().saturating_sub(USE_SERIES_MAX);
    found.truncate(USE_SERIES_MAX);
    let commitments = found
        .iter()
        .map(|f| CommitmentUse {
            name: f
                .contract
                .clone()
                .unwrap_or_else(|| f.commitment_id.clone()),
            commitment_id: f.commitment_id.clone(),
            provider: f.provider.clone(),
            days: commitment_days(&f.provider, &f.commitment_id, &before)
                .iter()
                .map(|d| UseDay {
                    day: d.day,
                    utilisation: d.utilisation(),
                    coverage: d.coverage(),
                    used_usd: d.used.as_f64(),
                    unused_usd: d.unused.as_f64(),
                })
                .collect(),
        })
        .collect();
    let providers: std::collections::BTreeSet<&str> = before
        .iter()
        .filter(|r| r.category == "Usage")
        .map(|r| r.provider.as_str())
        .collect();
    let savings_rate = providers
        .into_iter()
        .map(|p| SavingsRate {
            provider: p.to_string(),
            weeks: savings_rate_weekly(p, &before),
        })
        .filter(|s| !s.weeks.is_empty())
        .collect();
    UseOverTime {
        commitments,
        commitments_not_shown: not_shown,
        savings_rate,
    }
}

/// [`use_over_time`] for the ledger in `store` at `at` (the data's last
/// day when None), with the day it is at.
pub async fn use_over_time_at(
    store: &Store,
    at: Option<&str>,
) -> Result<(String, UseOverTime), AppError> {
    use_over_time_of(&loaded(store, None).await?, at)
}

/// [`use_over_time_at`] of what is loaded.
pub fn use_over_time_of(l: &Loaded, at: Option<&str>) -> Result<(String, UseOverTime), AppError> {
    let at = resolve_at(at, l.data.last)?;
    Ok((
        at.date_string(),
        use_over_time(&l.contracts, at, &l.data.days),
    ))
}
