//! `skyward simulate --html`: the policies compared on one page, with
//! charts people would rather look at than read (cumulative cost over the
//! years per policy, each commitment's burn against its straight line)
//! and the tables (totals, delay percentiles per stream). One
//! self-contained file: inline SVG and style, no script, no network.

use crate::html::{esc, money_short, table, Chart, Series, STYLE};
use skyward_ledger::Timestamp;
use skyward_sim::Report;
use std::fmt::Write as _;

const COLORS: [&str; 6] = [
    "#1f5fa8", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085",
];

/// Days since 1970-01-01 of a report's `YYYY-MM-DD` (0 if unreadable,
/// which the simulator never writes).
fn day(date: &str) -> i64 {
    Timestamp::parse(date).map_or(0, |t| t.0.div_euclid(86_400))
}

/// A delay as people read it: seconds, minutes, hours or days.
pub fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{}s", s.round())
    } else if s < 3600.0 {
        format!("{}m", (s / 60.0).round())
    } else if s < 86_400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

pub fn html(r: &Report) -> String {
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Skyward simulation: {}</title><style>{STYLE}</style></head><body><h1>Simulation: {}</h1><p>{} years from {}, seed {}; policies compared on the same seeded demand, prices and faults.</p>",
        esc(&r.scenario),
        esc(&r.scenario),
        r.years,
        esc(&r.start),
        r.seed
    );
    // Totals.
    let rows: Vec<Vec<String>> = r
        .policies
        .iter()
        .map(|p| {
            vec![
                p.policy.clone(),
                p.total.cost_usd.to_string(),
                p.total.list_usd.to_string(),
                p.total.billed_usd.to_string(),
                p.total.shortfall_usd.to_string(),
                p.total.prepaid_usd.to_string(),
                format!("{:.1}%", p.total.effective_discount_pct),
                duration(p.total.delay_s.p95),
                format!("{:.0}", p.total.lost_accelerator_hours),
                (p.running_at_horizon + p.pending_at_horizon).to_string(),
            ]
        })
        .collect();
    h.push_str("<h2>Totals</h2>");
    h.push_str(&table(
        &[
            "policy",
            "cost>",
            "list>",
            "billed>",
            "shortfall>",
            "prepaid>",
            "eff. discount>",
            "delay p95>",
            "lost acc-h>",
            "unfinished>",
        ],
        &rows,
    ));
    let x0 = day(&r.start);
    let x1 = r
        .policies
        .first()
        .and_then(|p| p.years.last())
        .map_or(x0 + 365, |y| day(&y.to));
    // Cumulative cost at each year's end.
    let series: Vec<Series> = r
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut total = 0.0;
            let mut points = vec![(x0, 0.0)];
            for y in &p.years {
                total += y.cost_usd.as_f64();
                points.push((day(&y.to), total));
            }
            Series {
                name: p.policy.clone(),
                points,
                color: COLORS[i % COLORS.len()],
                dash: false,
            }
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.05;
    let cost = Chart {
        title: "Cumulative cost by policy (paid: billed + prepaid + shortfalls)".into(),
        x0,
        x1,
        y_max,
        series,
        band: Vec::new(),
        band_name: String::new(),
        y_is_pct: false,
        x_title: "date (UTC), at each year's end".into(),
        y_title: "cumulative cost (USD)".into(),
        hline: None,
        now: None,
    };
    let _ = write!(h, "<h2>Cost over the years</h2>{}", cost.svg());
    // Each commitment's burn per policy against its straight line.
    let contracts = r
        .policies
        .first()
        .map(|p| p.contracts.clone())
        .unwrap_or_default();
    for (ci, c) in contracts.iter().enumerate() {
        let (c0, c1) = (day(&c.start), day(&c.end));
        let commit = c.commit_usd.as_f64();
        let mut series = vec![Series {
            name: "straight line to the commitment".into(),
            points: vec![(c0, 0.0), (c1, commit)],
            color: "#888888",
            dash: true,
        }];
        for (i, p) in r.policies.iter().enumerate() {
            let Some(pc) = p.contracts.get(ci) else {
                continue;
            };
            let mut burned = 0.0;
            let mut points = vec![(c0, 0.0)];
            // Contract years are calendar years from its start.
            let mut t = Timestamp::parse(&c.start).unwrap_or(Timestamp(0));
            for b in &pc.burn_by_year_usd {
                t = t.plus_months(12);
                burned += b.as_f64();
                points.push((t.0.div_euclid(86_400), burned));
            }
            series.push(Series {
                name: p.policy.clone(),
                points,
                color: COLORS[i % COLORS.len()],
                dash: false,
            });
        }
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(commit, f64::max)
            .max(1.0)
            * 1.05;
        let chart = Chart {
            title: format!("{} ({}): burn against the commitment", c.name, c.provider),
            x0: c0,
            x1: c1.max(c0 + 1),
            y_max,
            series,
            band: Vec::new(),
            band_name: String::new(),
            y_is_pct: false,
            x_title: "date (UTC), at each contract year's end".into(),
            y_title: "cumulative burn (USD)".into(),
            hline: Some((commit, format!("commit {}", money_short(commit)))),
            now: None,
        };
        let shortfalls: Vec<String> = r
            .policies
            .iter()
            .filter_map(|p| {
                p.contracts
                    .get(ci)
                    .map(|x| format!("{}: shortfall {}", p.policy, x.shortfall_usd))
            })
            .collect();
        let _ = write!(
            h,
            "<h2>{}</h2>{}<p class=\"note\">{}.</p>",
            esc(&c.name),
            chart.svg(),
            esc(&shortfalls.join("; "))
        );
    }
    // Delays per stream.
    let mut rows = Vec::new();
    for p in &r.policies {
        for s in &p.streams {
            rows.push(vec![
                p.policy.clone(),
                s.name.clone(),
                s.kind.as_str().to_string(),
                s.submitted.to_string(),
                s.completed.to_string(),
                duration(s.delay_s.p50),
                duration(s.delay_s.p95),
                duration(s.delay_s.p99),
                s.slo_misses.to_string(),
                format!("{:.0}", s.lost_accelerator_hours),
            ]);
        }
    }
    h.push_str("<h2>Queueing delay per stream</h2>");
    h.push_str(&table(
        &[
            "policy",
            "stream",
            "kind",
            "submitted>",
            "completed>",
            "delay p50>",
            "delay p95>",
            "delay p99>",
            "SLO misses>",
            "lost acc-h>",
        ],
        &rows,
    ));
    h.push_str("</body></html>\n");
    h
}
