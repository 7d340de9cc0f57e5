//! `ledger recommend`: how much hourly commitment to buy.
//!
//! An hourly commitment covering q $/h of on-demand (list) spend costs
//! (1 − d)·q every hour; in an hour with on-demand spend x it saves
//! min(x, q) − (1 − d)·q. Three ways to choose q from hourly history:
//!
//! * **AWS Cost Explorer's**: the q that maximises savings over a 7-, 30- or
//!   60-day lookback. The objective is concave and piecewise linear in q
//!   with slope (share of hours with x > q) − (1 − d), so its maximum is at
//!   a data point; it is found exactly by one sorted scan.
//! * **Azure's** (Microsoft Learn, "Azure savings plan recommendations"):
//!   every hour's own optimal commitment is a candidate; each is simulated
//!   over the lookback; the best net saving wins; the recommendation over
//!   the last 3 days caps it, so a recent drop in usage is not
//!   over-committed.
//! * **Skyward's**: sample-average approximation over demand scenarios for
//!   the whole term — the future drawn as 7-day blocks of the recent hourly
//!   history (seeded), with optional growth. The SAA linear program
//!   max Σ_s,h y_sh − S·H·(1 − d)·q, y_sh ≤ x_sh, y_sh ≤ q has its optimum
//!   where the share of scenario-hours with x > q equals 1 − d; it is
//!   solved exactly by sorting, not approximately.
//!
//! Every recommendation is then evaluated on the same, independent set of
//! scenarios (another seed, so Skyward's choice is judged out of sample):
//! expected term savings, the probability that the term as a whole loses
//! money, the expected utilisation and the share of hours with unused
//! commitment.

use crate::amount::Amount;
use serde::Serialize;

pub const SCENARIOS: usize = 200;
pub const BLOCK_HOURS: usize = 168;
/// Upper bound on scenario-hours held at once.
pub const SCENARIO_HOURS_MAX: usize = 200 * 26_304;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Recommendation {
    pub method: String,
    pub lookback_days: Option<u32>,
    /// On-demand (list) spend per hour the commitment covers.
    pub covers_usd_per_hour: Amount,
    /// What is paid per hour: covers × (1 − discount).
    pub fee_usd_per_hour: Amount,
    /// Savings over the lookback it was chosen on (where there is one).
    pub lookback_savings: Option<Amount>,
    pub expected_term_savings: Amount,
    pub loss_probability: f64,
    /// P10 and P90 of the term's savings over the scenarios.
    pub savings_p10: Amount,
    pub savings_p90: Amount,
    pub expected_utilisation: f64,
    pub hours_underused_pct: f64,
}

/// A provider's on-demand (Standard-priced) list spend per hour, oldest
/// first, from its first to its last hour with usage, hours without usage
/// as 0: the series every method here reads. Empty when there is none.
pub fn on_demand_series(hours: &[crate::status::HourRow], provider: &str) -> Vec<f64> {
    on_demand_series_from(hours, provider).1
}

/// [`on_demand_series`] with the hour (since the epoch) it starts at.
pub fn on_demand_series_from(hours: &[crate::status::HourRow], provider: &str) -> (i64, Vec<f64>) {
    let mut by_hour: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for r in hours.iter().filter(|r| {
        r.provider == provider && matches!(r.pricing_category.as_str(), "Standard" | "")
    }) {
        *by_hour.entry(r.hour).or_insert(0.0) += r.list.as_f64();
    }
    match (by_hour.keys().next(), by_hour.keys().next_back()) {
        (Some(&h0), Some(&h1)) => (
            h0,
            (h0..=h1)
                .map(|h| by_hour.get(&h).copied().unwrap_or(0.0))
                .collect(),
        ),
        _ => (0, Vec::new()),
    }
}

/// Takes existing commitments off an on-demand series (`hours`, oldest
/// first, starting at hour `first_hour`):
///
/// * commitments whose usage is in the data are already off it (their
///   usage is Committed-priced, not on-demand); `from_data` gives, for those
///   with a known end, the on-demand-equivalent they covered per day, which
///   is spread evenly over the day's hours so it can come back at expiry;
/// * hourly commitments known only from contracts are applied hour by hour
///   in the provider's order (EC2 Instance SPs before Compute SPs) over
///   their active hours, each covering up to its on-demand-equivalent per
///   hour.
///
/// `history_end_hour` is the first hour after the history; expiry is
/// measured from it. Returns the net series and the commitments.
pub fn net_of_existing(
    hours: &[f64],
    first_hour: i64,
    history_end_hour: i64,
    simulated: &[(&crate::contracts::Contract, &crate::contracts::HourlyTerms)],
    from_data: &[(
        &crate::contracts::Contract,
        std::collections::BTreeMap<i64, f64>,
    )],
) -> (Vec<f64>, Vec<Existing>) {
    let mut net = hours.to_vec();
    let mut out = Vec::new();
    let expiry = |c: &crate::contracts::Contract| {
        let end = c.end.hour();
        (end > history_end_hour).then(|| (end - history_end_hour) as usize)
    };
    let mut order: Vec<&(&crate::contracts::Contract, &crate::contracts::HourlyTerms)> =
        simulated.iter().collect();
    order.sort_by(|a, b| {
        (a.1.instrument.priority(), &a.0.name).cmp(&(b.1.instrument.priority(), &b.0.name))
    });
    for (c, t) in order {
        let covers = t.covers_list_per_hour().as_f64();
        let (s, e) = (c.start.hour(), c.end.hour());
        let covered: Vec<f64> = net
            .iter_mut()
            .enumerate()
            .map(|(k, x)| {
                let h = first_hour + k as i64;
                if h < s || h >= e {
                    return 0.0;
                }
                let take = x.min(covers).max(0.0);
                *x -= take;
                take
            })
            .collect();
        out.push(Existing {
            name: c.name.clone(),
            covered,
            expires_after_hours: expiry(c),
        });
    }
    for (c, per_day) in from_data {
        let covered: Vec<f64> = (0..hours.len())
            .map(|k| {
                let h = first_hour + k as i64;
                per_day.get(&h.div_euclid(24)).copied().unwrap_or(0.0) / 24.0
            })
            .collect();
        out.push(Existing {
            name: c.name.clone(),
            covered,
            expires_after_hours: expiry(c),
        });
    }
    (net, out)
}

/// A provider's on-demand history, net of the commitments it owns.
#[derive(Debug, Clone)]
pub struct Netted {
    pub first_hour: i64,
    /// On-demand $/h as imported.
    pub gross: Vec<f64>,
    /// What is left for a new commitment.
    pub net: Vec<f64>,
    pub existing: Vec<Existing>,
    /// Commitments that could not be netted (capacity without rows).
    pub not_netted: Vec<String>,
}

/// Nets `provider`'s on-demand usage of its commitments in `contracts`
/// (see [`net_of_existing`]): those whose `commitment_id` has Used rows in
/// `days` are read from the data, other hourly ones simulated. Empty
/// `gross` when there is no on-demand usage.
pub fn net_for_provider(
    provider: &str,
    hours: &[crate::status::HourRow],
    days: &[crate::status::DayRow],
    contracts: &[crate::contracts::Contract],
) -> Netted {
    use crate::contracts::Terms;
    let (first_hour, gross) = on_demand_series_from(hours, provider);
    let mut simulated = Vec::new();
    let mut from_data = Vec::new();
    let mut not_netted = Vec::new();
    for c in contracts.iter().filter(|c| c.provider == provider) {
        let id = match &c.terms {
            Terms::Hourly(t) => t.commitment_id.as_deref(),
            Terms::Capacity(t) => t.commitment_id.as_deref(),
            Terms::Spend(_) => continue,
        };
        let mut per_day: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        if let Some(id) = id {
            for r in days
                .iter()
                .filter(|r| r.commitment_id == id && r.commitment_status == "Used")
            {
                *per_day.entry(r.day).or_insert(0.0) += r.list.as_f64();
            }
        }
        match (&c.terms, per_day.is_empty()) {
            (_, false) => from_data.push((c, per_day)),
            (Terms::Hourly(t), true) => simulated.push((c, t)),
            _ => not_netted.push(c.name.clone()),
        }
    }
    let history_end = first_hour + gross.len() as i64;
    let (net, existing) = net_of_existing(&gross, first_hour, history_end, &simulated, &from_data);
    Netted {
        first_hour,
        gross,
        net,
        existing,
        not_netted,
    }
}

/// Σ min(x, q) − (1 − d)·q·n.
pub fn savings(values: &[f64], covers: f64, d: f64) -> f64 {
    values.iter().map(|x| x.min(covers)).sum::<f64>() - (1.0 - d) * covers * values.len() as f64
}

/// The q maximising `savings` exactly (one sorted scan; 0 when nothing
/// saves). Ties go to the smaller commitment.
pub fn best_covers(values: &[f64], d: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let (mut best_q, mut best_s) = (0.0, 0.0);
    let mut below = 0.0; // Σ of values ≤ q
    for (i, &q) in v.iter().enumerate() {
        below += q;
        // Values after i are > or = q; min(x, q) = q for them.
        let s = below + q * (n - i - 1) as f64 - (1.0 - d) * q * n as f64;
        if s > best_s + 1e-9 {
            best_s = s;
            best_q = q;
        }
    }
    best_q
}

/// Azure's candidate simulation over `values`, capped by the last 3 days.
pub fn azure_covers(values: &[f64], d: f64) -> f64 {
    let pick = |vals: &[f64]| -> f64 {
        let mut cands: Vec<f64> = vals.to_vec();
        cands.sort_by(f64::total_cmp);
        cands.dedup();
        let mut best = (0.0, 0.0);
        for &q in &cands {
            let s = savings(vals, q, d);
            if s > best.1 + 1e-9 {
                best = (q, s);
            }
        }
        best.0
    };
    let full = pick(values);
    let recent = &values[values.len().saturating_sub(72)..];
    full.min(pick(recent))
}

use skyward_model::rng::SplitMix64 as Rng;

/// Demand scenarios, `hours` long each, built from whole weeks of
/// `history` drawn at random. Weeks are cut back from the end of the
/// history, so every drawn week starts at the hour of the week where the
/// future starts (weekday/weekend patterns stay in place). A history shorter
/// than a week is used whole.
pub fn scenarios(
    history: &[f64],
    hours: usize,
    count: usize,
    growth_pct: f64,
    seed: u64,
) -> Vec<Vec<f64>> {
    let model = DemandModel {
        kind: "recent".into(),
        growth_pct,
        growth_source: "given".into(),
        level_changes: Vec::new(),
    };
    let recent = &history[history.len().saturating_sub(91 * 24)..];
    model_scenarios(recent, &model, &[], hours, count, seed)
}

/// Usage an existing commitment covers, hour by hour over the same history
/// as the on-demand series, and when it ends: from then on the usage it
/// covered is on-demand again.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub name: String,
    /// On-demand-equivalent $ covered per history hour (aligned with the
    /// on-demand series).
    pub covered: Vec<f64>,
    /// Hours after the end of the history at which it expires (None: not
    /// within any term considered).
    pub expires_after_hours: Option<usize>,
}

/// How the future is drawn from the history (said in the output).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DemandModel {
    /// "seasonal" (a year and 91 days of history or more: the same weeks a
    /// year earlier, scaled by the year-over-year level) or "recent" (the
    /// last 91 days, weeks kept in phase).
    pub kind: String,
    /// Yearly growth applied: the user's, else the measured year-over-year
    /// change (seasonal), else none (a trend is not estimated from less than
    /// a year: a seasonal rise would look like one).
    pub growth_pct: f64,
    /// Where the growth comes from: "given", "year-over-year" or "none".
    pub growth_source: String,
    /// Month-to-month changes of the level the scenarios draw (log ratios
    /// of 30-day means four weeks apart, each with its opposite so they do
    /// not drift; of the year-over-year ratio when seasonal): the
    /// uncertainty of the level, not only of the hours.
    pub level_changes: Vec<f64>,
}

/// Hours in 52 weeks: "a year earlier" keeps the weekday.
pub const YEAR_HOURS: usize = 52 * 168;
const MONTH_HOURS: usize = 720;
/// Level-change samples kept (bounded work on long histories).
const LEVEL_SAMPLES_MAX: usize = 104;

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The demand model for `history` (oldest first; the whole on-demand
/// series) and an optional user growth.
pub fn demand_model(history: &[f64], growth_pct: Option<f64>) -> DemandModel {
    let n = history.len();
    let window = 91 * 24;
    let seasonal = n >= YEAR_HOURS + window;
    // Level series: 30-day means every week over the last year (of the
    // year-over-year ratio when seasonal).
    let mut levels = Vec::new();
    let mut end = n;
    while end >= MONTH_HOURS && levels.len() < LEVEL_SAMPLES_MAX / 2 + 2 {
        let now = mean(&history[end - MONTH_HOURS..end]);
        let level = if seasonal {
            if end < YEAR_HOURS + MONTH_HOURS {
                break;
            }
            let before = mean(&history[end - YEAR_HOURS - MONTH_HOURS..end - YEAR_HOURS]);
            if before <= 0.0 {
                break;
            }
            now / before
        } else {
            now
        };
        if level <= 0.0 {
            break;
        }
        levels.push(level);
        if end < 168 {
            break;
        }
        end -= 168;
    }
    levels.reverse();
    // log(level(t + 30 days) / level(t)), from samples four weeks apart.
    let mut changes: Vec<f64> = levels
        .iter()
        .zip(levels.iter().skip(4))
        .map(|(a, b)| (b / a).ln())
        .filter(|x| x.is_finite())
        .collect();
    // Mirrored (each change and its opposite): zero drift, the spread kept,
    // even from the one or two changes a short history has. Drift is growth,
    // which comes from `growth_pct`.
    let mirrored: Vec<f64> = changes.iter().map(|c| -c).collect();
    changes.extend(mirrored);
    let (growth, source) = match growth_pct {
        Some(g) => (g, "given"),
        None if seasonal => {
            let last = mean(&history[n - window..]);
            let before = mean(&history[n - window - YEAR_HOURS..n - YEAR_HOURS]);
            if before > 0.0 && last > 0.0 {
                (100.0 * (last / before - 1.0), "year-over-year")
            } else {
                (0.0, "none")
            }
        }
        None => (0.0, "none"),
    };
    DemandModel {
        kind: if seasonal { "seasonal" } else { "recent" }.into(),
        growth_pct: growth,
        growth_source: source.into(),
        level_changes: changes,
    }
}

impl DemandModel {
    pub fn describe(&self) -> String {
        let base = match self.kind.as_str() {
            "seasonal" => "the same weeks a year earlier",
            _ => "the last 91 days",
        };
        let growth = match self.growth_source.as_str() {
            "given" => format!("{:+.1}%/year growth (given)", self.growth_pct),
            "year-over-year" => format!(
                "{:+.1}%/year growth (measured year over year, applied to last year's season, not to the recent level)",
                self.growth_pct
            ),
            _ => "no growth (less than a year of history: a trend is not estimated)".to_string(),
        };
        format!(
            "scenarios from {base}, {growth}, level uncertainty from {} monthly changes",
            self.level_changes.len()
        )
    }
}

/// Demand scenarios of `hours` hours from the model: weeks of the history
/// (in phase with the future), scaled by growth and by a level that moves
/// each 30 days by a drawn monthly change. Each future hour also gets back
/// the usage of every existing commitment expired by then (`releases`:
/// covered $/h aligned with `history`, and the hour it comes back from).
pub fn model_scenarios(
    history: &[f64],
    model: &DemandModel,
    releases: &[(&[f64], usize)],
    hours: usize,
    count: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let n = history.len();
    if n == 0 || hours == 0 {
        return Vec::new();
    }
    let block = BLOCK_HOURS.min(n);
    let recent = (91 * 24).min(n);
    let weeks = (recent / block).max(1);
    let g = 1.0 + model.growth_pct / 100.0;
    // Recent mode rescales each drawn week to the latest 30-day level, so
    // the level is what the level walk says, not a mix of past levels.
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0f64);
    for x in history {
        prefix.push(prefix[prefix.len() - 1] + x);
    }
    let level_at = |end: usize| -> f64 {
        let from = end.saturating_sub(MONTH_HOURS);
        if end > from {
            (prefix[end] - prefix[from]) / (end - from) as f64
        } else {
            0.0
        }
    };
    let latest = level_at(n);
    let draw = |rng: &mut Rng| -> f64 {
        if model.level_changes.is_empty() {
            1.0
        } else {
            model.level_changes[rng.below(model.level_changes.len())].exp()
        }
    };
    (0..count)
        .map(|_| {
            let mut s = Vec::with_capacity(hours);
            // The next month's level is already uncertain.
            let mut level = draw(&mut rng);
            while s.len() < hours {
                let t0 = s.len();
                // The source week: seasonal, the same week a year earlier
                // (± two weeks); recent, any week of the last 91 days.
                let start = if model.kind == "seasonal" {
                    let shift = rng.below(5) as i64 - 2;
                    let back = YEAR_HOURS - (t0 % YEAR_HOURS);
                    (n as i64 - back as i64 + shift * block as i64).clamp(0, (n - block) as i64)
                        as usize
                } else {
                    let k = rng.below(weeks);
                    n - (weeks - k) * block
                };
                let take = block.min(hours - t0);
                let rescale = if model.kind == "seasonal" {
                    1.0
                } else {
                    let src = level_at((start + block).min(n));
                    if src > 0.0 && latest > 0.0 {
                        latest / src
                    } else {
                        1.0
                    }
                };
                for (h, &x0) in history.iter().enumerate().skip(start).take(take) {
                    let t = s.len();
                    if t > 0 && t % MONTH_HOURS == 0 {
                        level *= draw(&mut rng);
                    }
                    let mut x = x0;
                    for (covered, from) in releases {
                        if t >= *from {
                            x += covered.get(h).copied().unwrap_or(0.0);
                        }
                    }
                    let years = if model.kind == "seasonal" {
                        // Last year's season is one year behind.
                        1.0 + (t / YEAR_HOURS) as f64
                    } else {
                        t as f64 / 8_760.0
                    };
                    s.push(x * rescale * level * g.powf(years));
                }
            }
            s
        })
        .collect()
}

/// What existing commitments give back within `horizon_hours`: the usage
/// each covered (aligned with the history) and the hour it expires, for
/// [`model_scenarios`].
pub fn releases(existing: &[Existing], horizon_hours: usize) -> Vec<(&[f64], usize)> {
    existing
        .iter()
        .filter_map(|e| {
            let at = e.expires_after_hours?;
            (at < horizon_hours).then_some((e.covered.as_slice(), at))
        })
        .collect()
}

/// Evaluates a commitment over scenarios.
pub fn evaluate(
    method: &str,
    lookback_days: Option<u32>,
    covers: f64,
    d: f64,
    lookback: Option<&[f64]>,
    scen: &[Vec<f64>],
) -> Recommendation {
    let fee = (1.0 - d) * covers;
    let mut total = 0.0;
    let mut losses = 0usize;
    let mut each = Vec::with_capacity(scen.len());
    let (mut used, mut committed, mut under, mut hours) = (0.0, 0.0, 0usize, 0usize);
    for s in scen {
        let sv = savings(s, covers, d);
        each.push(sv);
        total += sv;
        losses += usize::from(sv < 0.0);
        for &x in s {
            used += fee * (x.min(covers) / covers.max(1e-12));
            committed += fee;
            under += usize::from(x < covers);
            hours += 1;
        }
    }
    let n = scen.len().max(1) as f64;
    each.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        each.get(((each.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Recommendation {
        savings_p10: Amount::from_usd_f64(pct(0.1)),
        savings_p90: Amount::from_usd_f64(pct(0.9)),
        method: method.to_string(),
        lookback_days,
        covers_usd_per_hour: Amount::from_usd_f64(covers),
        fee_usd_per_hour: Amount::from_usd_f64(fee),
        lookback_savings: lookback.map(|v| Amount::from_usd_f64(savings(v, covers, d))),
        expected_term_savings: Amount::from_usd_f64(total / n),
        loss_probability: losses as f64 / n,
        expected_utilisation: if committed > 0.0 {
            used / committed
        } else {
            0.0
        },
        hours_underused_pct: if hours > 0 && covers > 0.0 {
            100.0 * under as f64 / hours as f64
        } else {
            0.0
        },
    }
}

#[derive(Debug, Clone)]
pub struct RecommendInput<'a> {
    /// Hourly on-demand spend, oldest first, no gaps, net of what existing
    /// commitments cover (see [`net_of_existing`]).
    pub hourly: &'a [f64],
    /// Existing commitments, aligned with `hourly`: the usage they cover
    /// comes back into the scenarios when they expire.
    pub existing: &'a [Existing],
    pub discount_pct: f64,
    pub term_hours: usize,
    pub lookbacks_days: &'a [u32],
    /// Yearly growth; None: estimated from the history when it can be
    /// (see [`demand_model`]).
    pub growth_pct: Option<f64>,
    pub scenarios: usize,
    pub seed: u64,
}

pub fn recommend(i: &RecommendInput) -> Vec<Recommendation> {
    recommend_with_model(i).0
}

/// [`recommend`], and the demand model its scenarios came from.
pub fn recommend_with_model(i: &RecommendInput) -> (Vec<Recommendation>, DemandModel) {
    let d = i.discount_pct / 100.0;
    let history = i.hourly;
    let releases = releases(i.existing, i.term_hours);
    let count = i
        .scenarios
        .min(SCENARIO_HOURS_MAX / i.term_hours.max(1))
        .max(1);
    let model = demand_model(history, i.growth_pct);
    let fit = model_scenarios(history, &model, &releases, i.term_hours, count, i.seed);
    let scen = model_scenarios(
        history,
        &model,
        &releases,
        i.term_hours,
        count,
        i.seed ^ 0x005E_ED0F_E7A1,
    );
    let mut out = Vec::new();
    for &days in i.lookbacks_days {
        let lb = &i.hourly[i.hourly.len().saturating_sub(days as usize * 24)..];
        out.push(evaluate(
            "aws-cost-explorer",
            Some(days),
            best_covers(lb, d),
            d,
            Some(lb),
            &scen,
        ));
    }
    for &days in i.lookbacks_days {
        let lb = &i.hourly[i.hourly.len().saturating_sub(days as usize * 24)..];
        out.push(evaluate(
            "azure",
            Some(days),
            azure_covers(lb, d),
            d,
            Some(lb),
            &scen,
        ));
    }
    let pooled: Vec<f64> = fit.iter().flatten().copied().collect();
    out.push(evaluate(
        "skyward-saa",
        None,
        best_covers(&pooled, d),
        d,
        None,
        &scen,
    ));
    (out, model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_documented_example() {
        // Microsoft Learn: about $500/h of pay-as-you-go usage most of the
        // time, sporadic spikes to $700 → the $500/hour plan is recommended.
        let mut usage = vec![500.0; 30 * 24];
        for h in (0..usage.len()).step_by(37) {
            usage[h] = 700.0;
        }
        for d in [0.15, 0.25, 0.40] {
            assert_eq!(azure_covers(&usage, d), 500.0, "discount {d}");
            assert_eq!(best_covers(&usage, d), 500.0, "discount {d}");
        }
    }

    #[test]
    fn best_covers_is_the_true_maximum() {
        let v: Vec<f64> = (0..500).map(|i| ((i * 7919) % 1000) as f64).collect();
        for d in [0.1, 0.28, 0.5, 0.72] {
            let q = best_covers(&v, d);
            let s = savings(&v, q, d);
            for k in 0..=1000 {
                assert!(
                    savings(&v, k as f64, d) <= s + 1e-6,
                    "d {d}: q {q} beaten by {k}"
                );
            }
        }
        assert_eq!(best_covers(&[], 0.3), 0.0);
        assert_eq!(best_covers(&[0.0, 0.0], 0.3), 0.0);
    }

    #[test]
    fn azure_caps_by_the_last_three_days() {
        // 27 days at $1,000/h, then 3 days at $200/h: commit to $200.
        let mut usage = vec![1000.0; 27 * 24];
        usage.extend(vec![200.0; 72]);
        assert_eq!(azure_covers(&usage, 0.3), 200.0);
        assert_eq!(best_covers(&usage, 0.3), 1000.0);
    }

    #[test]
    fn saa_with_constant_demand_commits_to_it() {
        let hist = vec![300.0; 24 * 60];
        let input = RecommendInput {
            hourly: &hist,
            existing: &[],
            discount_pct: 28.0,
            term_hours: 24 * 30,
            lookbacks_days: &[7, 30],
            growth_pct: Some(0.0),
            scenarios: 20,
            seed: 1,
        };
        let recs = recommend(&input);
        for r in &recs {
            assert_eq!(
                r.covers_usd_per_hour,
                Amount::from_usd_f64(300.0),
                "{}",
                r.method
            );
            // Saves 28% of $300 every hour for 720 hours.
            assert_eq!(r.expected_term_savings.cents(), 6_048_000, "{}", r.method);
            assert_eq!(r.loss_probability, 0.0);
            assert!((r.expected_utilisation - 1.0).abs() < 1e-12);
        }
    }
}

#[cfg(test)]
mod scenario_tests {
    use super::*;

    #[test]
    fn scenarios_keep_the_weekly_phase_and_grow() {
        // Two weeks of history: weekdays 100, weekends 50 (hour 0 = Monday 00:00).
        let hist: Vec<f64> = (0..336)
            .map(|h| if (h / 24) % 7 >= 5 { 50.0 } else { 100.0 })
            .collect();
        let s = scenarios(&hist, 24 * 14, 5, 0.0, 9);
        for sc in &s {
            assert_eq!(
                sc, &hist,
                "whole aligned weeks of a two-week periodic history reproduce it"
            );
        }
        let g = scenarios(&hist, 8_760, 1, 100.0, 9);
        // 100%/year growth: hour h is scaled by 2^(h/8760) over its weekly-phase base.
        for h in [0usize, 100, 4_000, 8_700] {
            let ratio = g[0][h] / hist[h % 336];
            assert!(
                (ratio - 2f64.powf(h as f64 / 8_760.0)).abs() < 1e-9,
                "hour {h}: {ratio}"
            );
        }
    }
}

/// One candidate size for a spend commitment (EDP/PPA/MACC style), with
/// the discount its tier gives.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SpendOption {
    pub commit_usd: Amount,
    pub discount_pct: f64,
    /// E[L − max(C, (1 − d)·L)] over the term's demand paths.
    pub expected_savings: Amount,
    pub expected_shortfall: Amount,
    pub shortfall_probability: f64,
    pub best: bool,
}

/// Sizes a spend commitment under discount tiers (`(minimum commit,
/// discount %)`, a deal's price sheet). Candidates are every tier's
/// minimum and, inside each tier, the 5th to 50th percentiles of the
/// projected discounted spend (1 − d)·L; each is evaluated on the same
/// paths `list_paths` (projected list spend over the term). With a single
/// fixed discount the best commitment is always the smallest (committing
/// more only adds risk), which is why tiers are required.
pub fn recommend_spend(list_paths: &[Amount], tiers: &[(Amount, f64)]) -> Vec<SpendOption> {
    if list_paths.is_empty() || tiers.is_empty() {
        return Vec::new();
    }
    let mut tiers: Vec<(Amount, f64)> = tiers.to_vec();
    tiers.sort_by_key(|t| t.0);
    let tier_of = |c: Amount| tiers.iter().rev().find(|(m, _)| c >= *m).map(|t| t.1);
    let mut candidates: Vec<Amount> = tiers
        .iter()
        .map(|t| t.0)
        .filter(|m| *m > Amount::ZERO)
        .collect();
    for (i, (min, d)) in tiers.iter().enumerate() {
        let next = tiers.get(i + 1).map(|t| t.0);
        let mut burns: Vec<Amount> = list_paths
            .iter()
            .map(|l| crate::contracts::scale(*l, 1.0 - d / 100.0))
            .collect();
        burns.sort();
        for p in [0.05, 0.10, 0.20, 0.30, 0.40, 0.50] {
            let c = crate::status::percentile(&burns, p);
            if c >= *min && next.is_none_or(|n| c < n) && c > Amount::ZERO {
                candidates.push(c);
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    let n = list_paths.len() as i128;
    let mut out: Vec<SpendOption> = candidates
        .into_iter()
        .filter_map(|c| {
            let d = tier_of(c)?;
            let (mut save, mut short, mut k) = (Amount::ZERO, Amount::ZERO, 0usize);
            for l in list_paths {
                let burn = crate::contracts::scale(*l, 1.0 - d / 100.0);
                save += *l - burn.max(c);
                let s = (c - burn).max(Amount::ZERO);
                short += s;
                k += usize::from(s > Amount::ZERO);
            }
            Some(SpendOption {
                commit_usd: c,
                discount_pct: d,
                expected_savings: Amount(save.0 / n),
                expected_shortfall: Amount(short.0 / n),
                shortfall_probability: k as f64 / list_paths.len() as f64,
                best: false,
            })
        })
        .collect();
    if let Some(i) = out
        .iter()
        .enumerate()
        .max_by(|a, b| {
            a.1.expected_savings
                .cmp(&b.1.expected_savings)
                .then(b.0.cmp(&a.0))
        })
        .map(|x| x.0)
    {
        out[i].best = true;
    }
    out
}

#[cfg(test)]
mod spend_tests {
    use super::*;

    fn usd(s: &str) -> Amount {
        Amount::parse(s).unwrap_or_default()
    }

    #[test]
    fn tiers_by_hand() {
        // Every path spends exactly $1,000,000 at list over the term.
        let paths = vec![usd("1000000"); 100];
        // 5% off from $100k, 10% off from $500k, 20% off from $950k.
        let tiers = vec![
            (usd("100000"), 5.0),
            (usd("500000"), 10.0),
            (usd("950000"), 20.0),
        ];
        let opts = recommend_spend(&paths, &tiers);
        let best = opts
            .iter()
            .find(|o| o.best)
            .unwrap_or_else(|| panic!("no best"));
        // $950k at 20%: burn 800k < 950k → pay 950k, save 50k. $500k..$900k
        // at 10%: burn 900k ≥ C → save 100k: the 10% tier wins.
        assert_eq!(best.discount_pct, 10.0);
        assert_eq!(best.expected_savings, usd("100000"));
        assert_eq!(best.shortfall_probability, 0.0);
        let top = opts
            .iter()
            .find(|o| o.discount_pct == 20.0)
            .unwrap_or_else(|| panic!("no 20% option"));
        assert_eq!(
            (top.expected_savings, top.expected_shortfall),
            (usd("50000"), usd("150000"))
        );
    }
}
