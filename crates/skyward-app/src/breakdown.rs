//! Where the money went and what is owned: `skyward ledger breakdown` /
//! `GET /v1/ledger/breakdown` (showback by any dimension) and
//! `skyward ledger inventory` / `GET /v1/ledger/inventory` (every
//! commitment by end date).

use crate::AppError;
use serde::{Deserialize, Serialize};
use skyward_ledger::breakdown::{Dimension, Group};
use skyward_ledger::contracts::Contract;
use skyward_ledger::inventory::Item;
use skyward_ledger::Timestamp;
use skyward_store::Store;

/// How a commitment's cost reaches the usage that used it.
pub const SHOWBACK_RULE: &str = "Showback: a commitment's fee reaches the usage it covered as that usage's EffectiveCost; its unused cost is allocated in proportion to the on-demand-equivalent cost (ListCost) each group had covered by it. Groups add up to the period's usage EffectiveCost.";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakdownQuery {
    /// account, provider, service, region, sku, sku-family or tag:KEY.
    pub by: String,
    /// First day (default: 30 days before `to`), or `month`: the first
    /// day of the month of `to`'s last day (month to date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Day after the last (default: the day after the last charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Breakdown {
    pub by: String,
    pub from: String,
    pub to: String,
    pub rule: String,
    pub groups: Vec<Group>,
}

pub async fn breakdown(store: &Store, q: &BreakdownQuery) -> Result<Breakdown, AppError> {
    let dim = Dimension::parse(&q.by).map_err(|m| AppError::field("by", &m))?;
    let last = store.last_day().await?;
    let to = match (&q.to, last) {
        (Some(d), _) => Timestamp::parse(d).map_err(|m| AppError::field("to", &m))?,
        (None, _) => crate::ledger::resolve_at(None, last)?,
    };
    let from = match q.from.as_deref() {
        Some("month") => to.plus_days(-1).month_start(),
        Some(d) => Timestamp::parse(d).map_err(|m| AppError::field("from", &m))?,
        None => to.plus_days(-30),
    };
    if from >= to {
        return Err(AppError::field("from", "must be before `to`"));
    }
    let provider = q.provider.as_deref().map(str::to_ascii_lowercase);
    // Only the days asked about (the breakdown reads nothing else).
    let days = store
        .daily_detailed_between(provider.as_deref(), from.day(), to.day())
        .await?;
    Ok(Breakdown {
        by: q.by.clone(),
        from: from.date_string(),
        to: to.date_string(),
        rule: SHOWBACK_RULE.into(),
        groups: skyward_ledger::breakdown::breakdown(&days, &dim, from.day(), to.day()),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub at: String,
    pub contracts_source: String,
    pub commitments: Vec<Item>,
}

pub async fn inventory(
    store: &Store,
    q: &AtQuery,
    given: Option<(Vec<Contract>, String)>,
) -> Result<Inventory, AppError> {
    inventory_of(&crate::ledger::loaded(store, given).await?, q)
}

/// [`inventory`] of what is loaded.
pub fn inventory_of(l: &crate::ledger::Loaded, q: &AtQuery) -> Result<Inventory, AppError> {
    let (contracts, data) = (&l.contracts, &l.data);
    let at = crate::ledger::resolve_at(q.at.as_deref(), data.last)?;
    let status = skyward_ledger::status::status(contracts, at, &data.days, &data.hours);
    let found = skyward_ledger::status::data_commitments(contracts, at, &data.days);
    Ok(Inventory {
        at: at.date_string(),
        contracts_source: l.source.clone(),
        commitments: skyward_ledger::inventory::inventory(
            contracts, &status, &found, at, &data.days,
        ),
    })
}
