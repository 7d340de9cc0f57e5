//! How much to commit: `skyward ledger recommend|options|backtest` and
//! `GET /v1/ledger/recommend|options|backtest`.
//!
//! - [`recommend`]: an hourly commitment (AWS's, Azure's and Skyward's
//!   methods side by side), or with discount tiers a spend commitment.
//! - [`options`]: terms and payment options by NPV, and laddering.
//! - [`backtest`]: how each method would have done on the history.
//!
//! Each is net of the commitments owned: those given, else the stored
//! contracts (commitments whose rows are in the data always are).

use crate::query::{check_f64, comma_text, comma_u32};
use crate::AppError;
use serde::{Deserialize, Serialize};
use skyward_ledger::contracts::Contract;
use skyward_ledger::recommend::{DemandModel, Netted, Recommendation, SpendOption};
use skyward_ledger::Amount;
use skyward_store::Store;

pub const LOOKBACKS_DAYS_DEFAULT: [u32; 3] = [7, 30, 60];

/// A provider's on-demand history net of `contracts`; an input error
/// when it has none.
async fn netted_history(
    store: &Store,
    provider: &str,
    contracts: &[Contract],
) -> Result<Netted, AppError> {
    let rows = store.hourly_on_demand(&[provider.to_string()], &[]).await?;
    let days = if contracts.is_empty() {
        Vec::new()
    } else {
        store.daily(Some(provider), i64::MAX).await?
    };
    let netted = skyward_ledger::recommend::net_for_provider(provider, &rows, &days, contracts);
    if netted.gross.is_empty() {
        return Err(AppError::field(
            "provider",
            &format!("no on-demand usage for '{provider}' in the ledger"),
        ));
    }
    Ok(netted)
}

fn provider(p: &str) -> Result<String, AppError> {
    let p = p.trim().to_ascii_lowercase();
    if p.is_empty() || p.len() > 64 {
        return Err(AppError::field(
            "provider",
            "give a provider (aws, azure, gcp, …)",
        ));
    }
    Ok(p)
}

fn lookbacks(v: &Option<Vec<u32>>) -> Result<Vec<u32>, AppError> {
    let v = v.clone().unwrap_or_else(|| LOOKBACKS_DAYS_DEFAULT.to_vec());
    if v.is_empty() || v.len() > 16 || v.iter().any(|d| !(1..=366).contains(d)) {
        return Err(AppError::field(
            "lookback_days",
            "1 to 16 windows of 1..366 days each",
        ));
    }
    Ok(v)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendQuery {
    pub provider: String,
    /// The hourly instrument's discount, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_pct: Option<f64>,
    /// A spend commitment's price sheet instead: MIN_COMMIT_USD:DISCOUNT_PCT.
    #[serde(default, with = "comma_text", skip_serializing_if = "Vec::is_empty")]
    pub discount_tiers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_years: Option<u32>,
    #[serde(default, with = "comma_u32", skip_serializing_if = "Option::is_none")]
    pub lookback_days: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A commitment owned that a recommendation is net of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owned {
    pub name: String,
    pub covers_usd_per_hour_recent_mean: f64,
    pub ends: Option<String>,
    pub expires_within_term: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HourlyAdvice {
    pub provider: String,
    pub history_hours: usize,
    pub mean_on_demand_usd_per_hour: f64,
    pub discount_pct: f64,
    pub term_years: u32,
    pub scenarios: usize,
    pub demand_model: DemandModel,
    pub demand_model_description: String,
    pub net_of: Vec<Owned>,
    pub not_netted: Vec<String>,
    pub recommendations: Vec<Recommendation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpendAdvice {
    pub provider: String,
    pub term_years: u32,
    pub growth_pct: f64,
    pub history_days: usize,
    pub projected_list_spend_p50: Amount,
    /// Demand paths the options were evaluated on.
    pub paths: usize,
    pub options: Vec<SpendOption>,
}

/// An hourly commitment's advice, or a spend commitment's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Advice {
    Hourly(HourlyAdvice),
    Spend(SpendAdvice),
}

pub async fn recommend(
    store: &Store,
    q: &RecommendQuery,
    given: Option<(Vec<Contract>, String)>,
) -> Result<Advice, AppError> {
    let provider = provider(&q.provider)?;
    if !q.discount_tiers.is_empty() {
        if q.discount_pct.is_some() {
            return Err(AppError::field(
                "discount_tiers",
                "give discount tiers (a spend commitment) or discount_pct (an hourly one), not both",
            ));
        }
        return spend(store, q, provider).await.map(Advice::Spend);
    }
    let discount_pct = check_f64(
        "discount_pct",
        q.discount_pct.ok_or_else(|| {
            AppError::field(
                "discount_pct",
                "give the hourly instrument's discount, or discount tiers for a spend commitment",
            )
        })?,
        |v| v > 0.0 && v < 100.0,
        "must be above 0 and below 100",
    )?;
    let term_years = q.term_years.unwrap_or(1);
    if !(1..=5).contains(&term_years) {
        return Err(AppError::field("term_years", "must be 1..5"));
    }
    let lookbacks = lookbacks(&q.lookback_days)?;
    let scenarios = q.scenarios.unwrap_or(200);
    if !(1..=2_000).contains(&scenarios) {
        return Err(AppError::field("scenarios", "must be 1..2000"));
    }
    if let Some(g) = q.growth_pct {
        check_f64(
            "growth_pct",
            g,
            |v| (-90.0..=1000.0).contains(&v),
            "must be from -90 to 1000",
        )?;
    }
    let (contracts, _) = crate::ledger::contracts_for(store, given).await?;
    let netted = netted_history(store, &provider, &contracts).await?;
    let term_hours = term_years as usize * 8_760;
    let input = skyward_ledger::recommend::RecommendInput {
        hourly: &netted.net,
        existing: &netted.existing,
        discount_pct,
        term_hours,
        lookbacks_days: &lookbacks,
        growth_pct: q.growth_pct,
        scenarios,
        seed: q.seed.unwrap_or(7),
    };
    let net_of = netted
        .existing
        .iter()
        .map(|e| {
            let recent = &e.covered[e.covered.len().saturating_sub(30 * 24)..];
            Owned {
                name: e.name.clone(),
                covers_usd_per_hour_recent_mean: recent.iter().sum::<f64>()
                    / recent.len().max(1) as f64,
                ends: contracts
                    .iter()
                    .find(|c| c.name == e.name)
                    .map(|c| c.end.date_string()),
                expires_within_term: e.expires_after_hours.is_some_and(|h| h < term_hours),
            }
        })
        .collect();
    let (recommendations, model) = skyward_ledger::recommend::recommend_with_model(&input);
    Ok(Advice::Hourly(HourlyAdvice {
        provider,
        history_hours: netted.net.len(),
        mean_on_demand_usd_per_hour: netted.net.iter().sum::<f64>()
            / netted.net.len().max(1) as f64,
        discount_pct,
        term_years,
        scenarios,
        demand_model_description: model.describe(),
        demand_model: model,
        net_of,
        not_netted: netted.not_netted,
        recommendations,
    }))
}

/// Discount tiers `MIN_COMMIT_USD:DISCOUNT_PCT`.
fn tiers(text: &[String]) -> Result<Vec<(Amount, f64)>, AppError> {
    if text.len() > 64 {
        return Err(AppError::field("discount_tiers", "at most 64 tiers"));
    }
    let mut out = Vec::new();
    for t in text {
        let bad = |why: &str| AppError::field("discount_tiers", &format!("'{t}': {why}"));
        let (c, d) = t
            .split_once(':')
            .ok_or_else(|| bad("not MIN_COMMIT_USD:DISCOUNT_PCT"))?;
        let c: f64 = c
            .trim()
            .parse()
            .map_err(|_| bad("the amount is not a number"))?;
        let d: f64 = d
            .trim()
            .parse()
            .map_err(|_| bad("the discount is not a number"))?;
        if !(c.is_finite()
            && (0.0..=1e15).contains(&c)
            && d.is_finite()
            && (0.0..100.0).contains(&d))
        {
            return Err(bad("amount 0..1e15, discount 0..100"));
        }
        out.push((Amount::parse(&format!("{c}")).map_err(|m| bad(&m))?, d));
    }
    Ok(out)
}

async fn spend(
    store: &Store,
    q: &RecommendQuery,
    provider: String,
) -> Result<SpendAdvice, AppError> {
    let tiers = tiers(&q.discount_tiers)?;
    let growth = check_f64(
        "growth_pct",
        q.growth_pct.unwrap_or(0.0),
        |v| (-90.0..=1000.0).contains(&v),
        "must be from -90 to 1000",
    )?;
    let term_years = q.term_years.unwrap_or(1);
    if !(1..=10).contains(&term_years) {
        return Err(AppError::field(
            "term_years",
            "must be 1..10 for a spend commitment",
        ));
    }
    let days = store.daily(Some(&provider), i64::MAX).await?;
    let mut daily: std::collections::BTreeMap<i64, Amount> = std::collections::BTreeMap::new();
    for r in days.iter().filter(|r| r.category == "Usage") {
        *daily.entry(r.day).or_insert(Amount::ZERO) += r.list;
    }
    let (Some((&d0, _)), Some((&d1, _))) = (daily.iter().next(), daily.iter().next_back()) else {
        return Err(AppError::field(
            "provider",
            &format!("no usage for '{provider}' in the ledger"),
        ));
    };
    let from = (d1 - 90).max(d0);
    let history: Vec<Amount> = (from..=d1)
        .map(|d| daily.get(&d).copied().unwrap_or(Amount::ZERO))
        .collect();
    let paths = skyward_ledger::status::paths(
        &format!("spend/{provider}/{}", q.seed.unwrap_or(7)),
        &history,
        Amount::ZERO,
        i64::from(term_years) * 365,
        growth,
    );
    let options = skyward_ledger::recommend::recommend_spend(&paths, &tiers);
    Ok(SpendAdvice {
        provider,
        term_years,
        growth_pct: growth,
        history_days: history.len(),
        projected_list_spend_p50: paths.get(paths.len() / 2).copied().unwrap_or_default(),
        paths: paths.len(),
        options,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsQuery {
    pub provider: String,
    /// YEARS:PAYMENT:DISCOUNT_PCT each (PAYMENT none, partial or all).
    #[serde(with = "comma_text")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers_usd_per_hour: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_rate_pct: Option<f64>,
    /// NxM: N tranches, one every M months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptionsAdvice {
    pub provider: String,
    pub covers_usd_per_hour: f64,
    pub horizon_years: usize,
    pub discount_rate_pct: f64,
    pub scenarios: usize,
    /// How the scenarios were drawn.
    pub demand_model: String,
    pub options: Vec<skyward_ledger::options::Valuation>,
}

pub async fn options(
    store: &Store,
    q: &OptionsQuery,
    given: Option<(Vec<Contract>, String)>,
) -> Result<OptionsAdvice, AppError> {
    use skyward_ledger::options::{ladder, npv_paths, value, Payment, Term, MONTH_HOURS};
    let provider = provider(&q.provider)?;
    if q.options.is_empty() || q.options.len() > 16 {
        return Err(AppError::field(
            "options",
            "give 1 to 16 options (YEARS:PAYMENT:DISCOUNT_PCT)",
        ));
    }
    let mut terms = Vec::new();
    for o in &q.options {
        let parts: Vec<&str> = o.split(':').collect();
        let parsed = match parts.as_slice() {
            [y, p, d] => match (y.parse::<u32>(), Payment::parse(p), d.parse::<f64>()) {
                (Ok(years @ 1..=5), Some(payment), Ok(discount_pct))
                    if discount_pct.is_finite() && discount_pct > 0.0 && discount_pct < 100.0 =>
                {
                    Some(Term {
                        years,
                        payment,
                        discount_pct,
                    })
                }
                _ => None,
            },
            _ => None,
        };
        terms.push(parsed.ok_or_else(|| {
            AppError::field(
                "options",
                &format!("'{o}': YEARS:PAYMENT:DISCOUNT_PCT with YEARS 1..5, PAYMENT none|partial|all, DISCOUNT_PCT in (0, 100)"),
            )
        })?);
    }
    let rate = check_f64(
        "discount_rate_pct",
        q.discount_rate_pct
            .unwrap_or(crate::analyze::DISCOUNT_RATE_PCT_DEFAULT),
        |v| (0.0..=100.0).contains(&v),
        "must be from 0 to 100",
    )?;
    let scenarios = q.scenarios.unwrap_or(200);
    if !(1..=2_000).contains(&scenarios) {
        return Err(AppError::field("scenarios", "must be 1..2000"));
    }
    let ladder_spec = match &q.ladder {
        None => None,
        Some(l) => Some(
            l.split_once('x')
                .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
                .filter(|(n, m)| (2..=24).contains(n) && (1..=12).contains(m))
                .ok_or_else(|| {
                    AppError::field(
                        "ladder",
                        &format!("'{l}': NxM, N 2..24 tranches every M 1..12 months"),
                    )
                })?,
        ),
    };
    let covers_given = match q.covers_usd_per_hour {
        Some(c) => Some(check_f64(
            "covers_usd_per_hour",
            c,
            |v| v > 0.0 && v < 1e9,
            "must be above 0 and below 1e9",
        )?),
        None => None,
    };
    let (contracts, _) = crate::ledger::contracts_for(store, given).await?;
    let netted = netted_history(store, &provider, &contracts).await?;
    let horizon_years = terms.iter().map(|t| t.years).max().unwrap_or(1) as usize;
    let horizon = horizon_years * 12 * MONTH_HOURS;
    let model = skyward_ledger::recommend::demand_model(&netted.net, None);
    let releases = skyward_ledger::recommend::releases(&netted.existing, horizon);
    let count = scenarios
        .min(skyward_ledger::recommend::SCENARIO_HOURS_MAX / horizon)
        .max(1);
    let scen = skyward_ledger::recommend::model_scenarios(
        &netted.net,
        &model,
        &releases,
        horizon,
        count,
        q.seed.unwrap_or(7),
    );
    let covers = match covers_given {
        Some(c) => c,
        None => {
            let pooled: Vec<f64> = scen.iter().flatten().copied().collect();
            skyward_ledger::recommend::best_covers(&pooled, terms[0].discount_pct / 100.0)
        }
    };
    let label = |t: &Term| {
        format!(
            "{} year{}, {}, {}% off",
            t.years,
            if t.years == 1 { "" } else { "s" },
            match t.payment {
                Payment::NoUpfront => "no upfront",
                Payment::PartialUpfront => "partial upfront",
                Payment::AllUpfront => "all upfront",
            },
            t.discount_pct
        )
    };
    let mut vals = Vec::new();
    for t in &terms {
        vals.push(value(
            label(t),
            npv_paths(&scen, covers, t, &ladder(1, 1), rate),
        ));
        if let Some((n, m)) = ladder_spec {
            vals.push(value(
                format!(
                    "{} — laddered: {n} tranches, one every {m} months",
                    label(t)
                ),
                npv_paths(&scen, covers, t, &ladder(n, m), rate),
            ));
        }
    }
    Ok(OptionsAdvice {
        provider,
        covers_usd_per_hour: covers,
        horizon_years,
        discount_rate_pct: rate,
        scenarios: scen.len(),
        demand_model: model.describe(),
        options: vals,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestQuery {
    pub provider: String,
    pub discount_pct: f64,
    /// Days each recommendation is realised over (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<u32>,
    /// Days between origins (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_days: Option<u32>,
    /// History before the first origin, days (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_history_days: Option<u32>,
    #[serde(default, with = "comma_u32", skip_serializing_if = "Option::is_none")]
    pub lookback_days: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacktestReport {
    pub provider: String,
    pub history_hours: usize,
    pub horizon_days: u32,
    pub step_days: u32,
    pub backtest: skyward_ledger::backtest::Backtest,
}

pub async fn backtest(
    store: &Store,
    q: &BacktestQuery,
    given: Option<(Vec<Contract>, String)>,
) -> Result<BacktestReport, AppError> {
    let provider = provider(&q.provider)?;
    let discount_pct = check_f64(
        "discount_pct",
        q.discount_pct,
        |v| v > 0.0 && v < 100.0,
        "must be above 0 and below 100",
    )?;
    let horizon_days = q.horizon_days.unwrap_or(90);
    let step_days = q.step_days.unwrap_or(30);
    let min_history_days = q.min_history_days.unwrap_or(60);
    let scenarios = q.scenarios.unwrap_or(100);
    let checks: [(&str, bool, &str); 4] = [
        (
            "horizon_days",
            (1..=1_100).contains(&horizon_days),
            "must be 1..1100",
        ),
        (
            "step_days",
            (1..=366).contains(&step_days),
            "must be 1..366",
        ),
        (
            "min_history_days",
            (7..=3_660).contains(&min_history_days),
            "must be 7..3660",
        ),
        (
            "scenarios",
            (1..=1_000).contains(&scenarios),
            "must be 1..1000",
        ),
    ];
    for (field, ok, why) in checks {
        if !ok {
            return Err(AppError::field(field, why));
        }
    }
    let lookbacks = lookbacks(&q.lookback_days)?;
    let (contracts, _) = crate::ledger::contracts_for(store, given).await?;
    let netted = netted_history(store, &provider, &contracts).await?;
    let need = (min_history_days + horizon_days) as usize * 24;
    if netted.net.len() < need {
        return Err(AppError::Input(format!(
            "{} hours of on-demand history for '{provider}'; a backtest needs min_history_days + horizon_days = {need} hours",
            netted.net.len()
        )));
    }
    let b = skyward_ledger::backtest::backtest(&skyward_ledger::backtest::BacktestInput {
        hourly: &netted.net,
        first_hour: netted.first_hour,
        discount_pct,
        horizon_hours: horizon_days as usize * 24,
        step_hours: step_days as usize * 24,
        min_history_hours: min_history_days as usize * 24,
        lookbacks_days: &lookbacks,
        scenarios,
        seed: q.seed.unwrap_or(7),
    });
    Ok(BacktestReport {
        provider,
        history_hours: netted.net.len(),
        horizon_days,
        step_days,
        backtest: b,
    })
}
