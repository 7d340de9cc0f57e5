//! `skyward ledger report` and `GET /v1/ledger/report`: one
//! self-contained HTML page (inline SVG, no scripts, nothing fetched)
//! with a burn-down chart per spend commitment, the daily utilisation and
//! coverage of commitments seen in the data, the effective savings rate,
//! the inventory and the recommendations.

use crate::breakdown::AtQuery;
use crate::ledger::LedgerData;
use crate::AppError;
use skyward_ledger::contracts::Contract;
use skyward_store::Store;

/// The page for the ledger in `store` at `q.at`; `place` names where the
/// data is (a file, a URL) in its first line.
pub async fn page(
    store: &Store,
    q: &AtQuery,
    given: Option<(Vec<Contract>, String)>,
    place: &str,
) -> Result<String, AppError> {
    use crate::html::{esc, money_short, status_rows, table, Chart, Series, STYLE};
    use skyward_ledger::contracts::Terms;
    use skyward_ledger::status::{status as compute, ContractStatus};
    use std::fmt::Write as _;
    let (contracts, source) = crate::ledger::contracts_for(store, given).await?;
    let LedgerData {
        days,
        hours,
        last,
        imports,
        spread_notes,
    } = crate::ledger::load(store, &contracts).await?;
    let at = crate::ledger::resolve_at(q.at.as_deref(), last)?;
    let status = compute(&contracts, at, &days, &hours);
    let found = skyward_ledger::status::data_commitments(&contracts, at, &days);
    let inventory = skyward_ledger::inventory::inventory(&contracts, &status, &found, at, &days);
    let opt =
        |v: Option<skyward_ledger::Amount>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let pct1 = |v: Option<f64>| {
        v.map(|x| format!("{:.1}%", 100.0 * x))
            .unwrap_or_else(|| "-".into())
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Skyward ledger report {}</title><style>{STYLE}</style></head><body><h1>Skyward ledger report</h1><p>As of <b>{}</b>; {} contracts ({}); {} commitments in the data; {} imports ({} rows) in {}.</p>",
        at.date_string(),
        at.date_string(),
        contracts.len(),
        esc(&source),
        found.len(),
        imports.len(),
        imports.iter().map(|i| i.rows).sum::<i64>(),
        esc(place)
    );
    for n in &spread_notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", esc(n));
    }
    html.push_str("<h2>Status</h2>");
    html.push_str(&status_rows(&status));
    html.push_str("<h2>Inventory and calendar</h2>");
    let rows: Vec<Vec<String>> = inventory
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.kind.clone(),
                i.provider.clone(),
                i.start.clone().unwrap_or_default(),
                i.end.clone().unwrap_or_else(|| "not in the data".into()),
                i.days_left
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(i.term_cost),
                opt(i.renewal_cost),
                pct1(i.utilisation),
                opt(i.monthly_gap),
            ]
        })
        .collect();
    html.push_str(&table(
        &[
            "commitment",
            "kind",
            "provider",
            "start",
            "ends",
            "days left>",
            "term cost>",
            "renewal (same terms)>",
            "utilisation / burned>",
            "gap if it ends ($/30 days)>",
        ],
        &rows,
    ));
    html.push_str("<p class=\"note\">Gap: the savings per 30 days that stop when it ends, at its recent rate (spend: last 30 days of eligible list spend × discount; hourly: net savings per hour so far × 720).</p>");
    let mut burndowns = crate::ledger::burndowns(&contracts, at, &days).into_iter();
    for (c, st) in contracts.iter().zip(&status) {
        if let (Terms::Spend(t), ContractStatus::Spend(s)) = (&c.terms, st) {
            // One burn-down per spend contract, in the same order.
            let Some(bd) = burndowns.next() else {
                break;
            };
            let (d0, d1, here) = (bd.start_day, bd.end_day, bd.at_day);
            let actual = bd.burned;
            let floor_pts = bd.floors;
            let area: Vec<(i64, f64, f64)> = bd.forecast.iter().map(|p| (p.0, p.1, p.3)).collect();
            let p50: Vec<(i64, f64)> = bd.forecast.iter().map(|p| (p.0, p.2)).collect();
            let make = |x0: i64, x1: i64, title: String| {
                let in_view = |v: &[(i64, f64)]| {
                    v.iter()
                        .filter(|(d, _)| *d >= x0 && *d <= x1)
                        .map(|x| x.1)
                        .fold(0.0, f64::max)
                };
                let line_at =
                    |d: i64| t.commit.as_f64() * (d - d0) as f64 / (d1 - d0).max(1) as f64;
                let mut series = vec![
                    Series {
                        name: "commitment".into(),
                        points: vec![(x0, t.commit.as_f64()), (x1, t.commit.as_f64())],
                        color: "#c0392b",
                        dash: true,
                    },
                    Series {
                        name: "straight line".into(),
                        points: vec![(x0, line_at(x0)), (x1, line_at(x1))],
                        color: "#888888",
                        dash: true,
                    },
                ];
                if !t.floors.is_empty() {
                    series.push(Series {
                        name: "floors (cumulative)".into(),
                        points: floor_pts.clone(),
                        color: "#e67e22",
                        dash: false,
                    });
                }
                series.push(Series {
                    name: "burned".into(),
                    points: actual.clone(),
                    color: "#1f5fa8",
                    dash: false,
                });
                series.push(Series {
                    name: "forecast P50".into(),
                    points: p50.clone(),
                    color: "#4a90d9",
                    dash: true,
                });
                let band_max = area
                    .iter()
                    .filter(|(d, _, _)| *d >= x0 && *d <= x1)
                    .map(|x| x.2)
                    .fold(0.0, f64::max);
                // The commitment sets the scale of the whole term; a recent
                // window is scaled to what it shows.
                let full = x0 == d0 && x1 == d1;
                let y_max = if full {
                    [t.commit.as_f64(), band_max, s.burned.as_f64()]
                        .into_iter()
                        .fold(1.0, f64::max)
                } else {
                    [in_view(&actual), band_max, line_at(x1), in_view(&p50)]
                        .into_iter()
                        .fold(1.0, f64::max)
                } * 1.05;
                Chart {
                    title,
                    x0,
                    x1,
                    y_max,
                    series,
                    band: area.clone(),
                    band_name: "forecast P10–P90".into(),
                    y_is_pct: false,
                    x_title: "date (UTC)".into(),
                    y_title: "cumulative eligible burn (USD)".into(),
                    hline: None,
                    now: Some(here),
                }
            };
            let full = make(
                d0,
                d1,
                format!("{} ({}): burn-down over the term", c.name, c.provider),
            );
            let recent = make(
                (here - 90).max(d0),
                (here + 180).min(d1).max(here + 1),
                format!("{}: last 90 days and next 180", c.name),
            );
            let _ = write!(
                html,
                "<h2>{}</h2><div class=\"pair\">{}{}</div><p class=\"note\">Burned {} of {} ({:.1}%); straight line {}; forecast at term end P10 {} / P50 {} / P90 {}; expected shortfall {} (P {:.0}%, rule: {}).</p>",
                esc(&c.name),
                full.svg(),
                recent.svg(),
                s.burned,
                s.committed,
                s.burned_pct,
                s.straight_line,
                s.forecast.as_ref().map(|f| money_short(f.p10.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| money_short(f.p50.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| money_short(f.p90.as_f64())).unwrap_or_default(),
                s.forecast.as_ref().map(|f| f.expected_shortfall.to_string()).unwrap_or_else(|| "-".into()),
                s.forecast.as_ref().map(|f| 100.0 * f.shortfall_probability).unwrap_or(0.0),
                match t.shortfall {
                    skyward_ledger::contracts::ShortfallRule::TermEnd => "term-end",
                    skyward_ledger::contracts::ShortfallRule::Yearly => "yearly",
                },
            );
        }
    }
    // Every commitment seen in the data: utilisation, coverage, unused cost.
    for f in &found {
        let d = skyward_ledger::status::commitment_days(&f.provider, &f.commitment_id, &days);
        if d.len() < 2 {
            continue;
        }
        let (x0, x1) = (d[0].day, d[d.len() - 1].day.max(d[0].day + 1));
        let name = f
            .contract
            .clone()
            .unwrap_or_else(|| f.commitment_id.clone());
        let util = Chart {
            title: format!("{name}: daily utilisation"),
            x0,
            x1,
            y_max: 100.0,
            series: vec![Series {
                name: "utilisation (Used ÷ Used + Unused)".into(),
                points: d
                    .iter()
                    .filter_map(|x| x.utilisation().map(|u| (x.day, 100.0 * u)))
                    .collect(),
                color: "#27ae60",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "date (UTC)".into(),
            y_title: "utilisation (%)".into(),
            hline: Some((100.0, "100 %".into())),
            now: None,
        };
        let cov = Chart {
            title: format!("{name}: daily coverage"),
            x0,
            x1,
            y_max: 100.0,
            series: vec![Series {
                name: "coverage (covered ÷ covered + on-demand)".into(),
                points: d
                    .iter()
                    .filter_map(|x| x.coverage().map(|u| (x.day, 100.0 * u)))
                    .collect(),
                color: "#8e44ad",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "date (UTC)".into(),
            y_title: "coverage (%)".into(),
            hline: Some((100.0, "100 %".into())),
            now: None,
        };
        let unused_pts: Vec<(i64, f64)> = d.iter().map(|x| (x.day, x.unused.as_f64())).collect();
        let unused = Chart {
            title: format!("{name}: unused commitment per day"),
            x0,
            x1,
            y_max: unused_pts.iter().map(|x| x.1).fold(1.0, f64::max) * 1.05,
            series: vec![Series {
                name: "unused (EffectiveCost of Unused rows)".into(),
                points: unused_pts,
                color: "#c0392b",
                dash: false,
            }],
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: false,
            x_title: "date (UTC)".into(),
            y_title: "unused cost (USD per day)".into(),
            hline: None,
            now: None,
        };
        let _ = write!(
            html,
            "<h2>{}</h2><div class=\"pair\">{}{}{}</div><p class=\"note\">Utilisation {}, coverage {}, unused {}, net savings {} over {}..{}.</p>",
            esc(&name),
            util.svg(),
            cov.svg(),
            unused.svg(),
            pct1(f.utilisation),
            pct1(f.coverage),
            f.unused,
            f.net_savings,
            f.first_seen,
            f.last_seen
        );
    }
    // Effective savings rate over time, per provider with usage.
    let providers: std::collections::BTreeSet<&str> = days
        .iter()
        .filter(|r| r.category == "Usage")
        .map(|r| r.provider.as_str())
        .collect();
    let mut rate_series = Vec::new();
    let colors = [
        "#1f5fa8", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085",
    ];
    for (k, p) in providers.iter().enumerate() {
        let pts: Vec<(i64, f64)> = skyward_ledger::status::savings_rate_weekly(p, &days)
            .into_iter()
            .map(|(w, r)| (w, 100.0 * r.max(0.0)))
            .collect();
        if pts.len() > 1 {
            rate_series.push(Series {
                name: (*p).to_string(),
                points: pts,
                color: colors[k % colors.len()],
                dash: false,
            });
        }
    }
    if !rate_series.is_empty() {
        let x0 = rate_series
            .iter()
            .filter_map(|s| s.points.first().map(|p| p.0))
            .min()
            .unwrap_or(0);
        let x1 = rate_series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0))
            .max()
            .unwrap_or(1);
        let y_max = rate_series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.1;
        let chart = Chart {
            title: "Effective savings rate by week (1 − effective cost ÷ list cost of usage)"
                .into(),
            x0,
            x1: x1.max(x0 + 1),
            y_max,
            series: rate_series,
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: true,
            x_title: "week starting (UTC)".into(),
            y_title: "effective savings rate (%)".into(),
            hline: None,
            now: None,
        };
        let _ = write!(html, "<h2>Effective savings rate</h2>{}", chart.svg());
    }
    // Recommendations for each provider with an hourly commitment.
    let mut done = std::collections::BTreeSet::new();
    for c in &contracts {
        let Terms::Hourly(h) = &c.terms else { continue };
        if !done.insert(c.provider.clone()) {
            continue;
        }
        let netted =
            skyward_ledger::recommend::net_for_provider(&c.provider, &hours, &days, &contracts);
        if netted.gross.is_empty() {
            continue;
        }
        let input = skyward_ledger::recommend::RecommendInput {
            hourly: &netted.net,
            existing: &netted.existing,
            discount_pct: h.discount_pct,
            term_hours: 8_760,
            lookbacks_days: &[7, 30, 60],
            growth_pct: None,
            scenarios: 100,
            seed: 7,
        };
        let (recs, model) = skyward_ledger::recommend::recommend_with_model(&input);
        let rows: Vec<Vec<String>> = recs
            .iter()
            .map(|r| {
                vec![
                    r.method.clone(),
                    r.lookback_days
                        .map(|d| format!("{d} days"))
                        .unwrap_or_else(|| "scenarios".into()),
                    r.covers_usd_per_hour.to_string(),
                    r.fee_usd_per_hour.to_string(),
                    r.expected_term_savings.to_string(),
                    r.savings_p10.to_string(),
                    r.savings_p90.to_string(),
                    format!("{:.0}%", 100.0 * r.loss_probability),
                    format!("{:.1}%", 100.0 * r.expected_utilisation),
                    format!("{:.0}%", r.hours_underused_pct),
                ]
            })
            .collect();
        let _ = write!(
            html,
            "<h2>Recommended hourly commitment: {} ({}% discount, 1 year)</h2>{}",
            esc(&c.provider),
            h.discount_pct,
            table(
                &[
                    "method",
                    "lookback",
                    "covers $/h>",
                    "fee $/h>",
                    "expected savings>",
                    "savings P10>",
                    "savings P90>",
                    "P(loss)>",
                    "utilisation>",
                    "hours under-used>",
                ],
                &rows
            )
        );
        let names: Vec<String> = netted.existing.iter().map(|e| esc(&e.name)).collect();
        let _ = write!(
            html,
            "<p class=\"note\">Risk: savings P10–P90 and P(loss) over 100 demand scenarios ({}). Net of what existing commitments cover{}; usage a commitment covers comes back into the scenarios when it expires.</p>",
            esc(&model.describe()),
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
        );
    }
    html.push_str("<p class=\"note\">Generated by skyward ledger report: one self-contained page (inline SVG, no scripts, nothing fetched). Forecast bands: the status projection (circular 7-day blocks of the last 91 days of burn, recurring purchases as a schedule; 500 paths).</p></body></html>\n");
    Ok(html)
}
