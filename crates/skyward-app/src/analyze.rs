//! `skyward ledger analyze` and `GET /v1/ledger/analyze`: a spend
//! commitment's headline against its effective economics, for a contract
//! owned or a proposed one ("what if").

use crate::query::check_f64;
use crate::AppError;
use serde::{Deserialize, Serialize};
use skyward_ledger::analyze::Analysis;
use skyward_ledger::contracts::{Contract, Eligibility, ShortfallRule, SpendTerms, Terms};
use skyward_ledger::{Amount, Timestamp};
use skyward_store::Store;

pub const DISCOUNT_RATE_PCT_DEFAULT: f64 = 8.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeQuery {
    /// A contract's name (the stored contracts, or those given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Analyze a proposed commitment: needs provider, commit_usd,
    /// term_years and discount_pct.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub what_if: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_years: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_pct: Option<f64>,
    /// Start of the what-if term (default: the day after the last charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Yearly rate for net present values, percent (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_rate_pct: Option<f64>,
    /// Yearly demand growth applied to the projection, percent (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The proposed commitment a what-if question describes.
fn what_if(q: &AnalyzeQuery, default_start: Option<Timestamp>) -> Result<Contract, AppError> {
    let need = |v: Option<f64>, field: &str| {
        v.ok_or_else(|| AppError::field(field, "a what-if analysis needs it"))
    };
    let commit = check_f64(
        "commit_usd",
        need(q.commit_usd, "commit_usd")?,
        |v| v > 0.0 && v <= 1e15,
        "must be above 0 and at most 1e15",
    )?;
    let discount = check_f64(
        "discount_pct",
        need(q.discount_pct, "discount_pct")?,
        |v| (0.0..100.0).contains(&v),
        "must be from 0 to below 100",
    )?;
    let years = q
        .term_years
        .ok_or_else(|| AppError::field("term_years", "a what-if analysis needs it"))?;
    if !(1..=20).contains(&years) {
        return Err(AppError::field("term_years", "must be 1..20"));
    }
    let provider = q
        .provider
        .clone()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| AppError::field("provider", "a what-if analysis needs it"))?
        .to_ascii_lowercase();
    let start = match &q.start {
        Some(s) => Timestamp::parse(s).map_err(|m| AppError::field("start", &m))?,
        None => default_start.ok_or_else(|| {
            AppError::field(
                "start",
                "no billing data to start after: give a start date, or import a FOCUS file first",
            )
        })?,
    };
    Ok(Contract {
        name: format!("what-if {provider} ${commit} {years}y {discount}%"),
        provider,
        start,
        end: start.plus_months(12 * i64::from(years)),
        terms: Terms::Spend(SpendTerms {
            commit: Amount::parse(&format!("{commit}"))
                .map_err(|m| AppError::field("commit_usd", &m))?,
            discount_pct: discount,
            floors: Vec::new(),
            shortfall: ShortfallRule::TermEnd,
            eligible: Eligibility::default(),
        }),
    })
}

pub async fn analyze(
    store: &Store,
    q: &AnalyzeQuery,
    given: Option<(Vec<Contract>, String)>,
) -> Result<Analysis, AppError> {
    let rate = check_f64(
        "discount_rate_pct",
        q.discount_rate_pct.unwrap_or(DISCOUNT_RATE_PCT_DEFAULT),
        |v| (0.0..=100.0).contains(&v),
        "must be from 0 to 100",
    )?;
    let growth = check_f64(
        "growth_pct",
        q.growth_pct.unwrap_or(0.0),
        |v| (-90.0..=1000.0).contains(&v),
        "must be from -90 to 1000",
    )?;
    let days = store.daily(None, i64::MAX).await?;
    let last = store.last_day().await?;
    let contract = if q.what_if {
        what_if(q, last.map(|d| Timestamp((d + 1) * 86_400)))?
    } else {
        let name = q.contract.as_ref().ok_or_else(|| {
            AppError::field("contract", "which contract? give its name, or ask what if")
        })?;
        let (all, source) = crate::ledger::contracts_for(store, given).await?;
        all.into_iter().find(|c| c.name == *name).ok_or_else(|| {
            AppError::NotFound(format!(
                "{source}: no contract named '{name}' (store contracts with `skyward contracts apply FILE`)"
            ))
        })?
    };
    let at = crate::ledger::resolve_at(q.at.as_deref(), last)?;
    skyward_ledger::analyze::analyze(&contract, at, &days, rate, growth)
        .map_err(|e| AppError::Input(e.to_string()))
}
