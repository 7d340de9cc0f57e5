//! `skyward simulate --html`: the policies compared on one page, with
//! charts people would rather look at than read (cumulative cost over the
//! years per policy, each commitment's burn against its straight line)
//! and the tables (totals, delay percentiles per stream). One
//! self-contained file: inline SVG and style, no script, no network.

use crate::html::{esc, money_short, nice_step, table, Chart, Series, STYLE};
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

/// The delay distribution: per stream, its p50, p95 and p99 as bars, one
/// per policy, on one axis (seconds, minutes or hours, whichever reads).
pub fn delay_chart(r: &Report) -> String {
    const W: f64 = 900.0;
    const H: f64 = 330.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 46.0;
    const B: f64 = 90.0;
    let streams: Vec<&str> = r
        .policies
        .first()
        .map(|p| p.streams.iter().map(|s| s.name.as_str()).collect())
        .unwrap_or_default();
    type Pick = fn(&skyward_sim::report::Percentiles) -> f64;
    let pcts: [(&str, Pick); 3] = [("p50", |p| p.p50), ("p95", |p| p.p95), ("p99", |p| p.p99)];
    // groups[g][policy] = seconds
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for (si, s) in streams.iter().enumerate() {
        for (name, get) in &pcts {
            let values = r
                .policies
                .iter()
                .map(|p| p.streams.get(si).map_or(0.0, |x| get(&x.delay_s)))
                .collect();
            groups.push((format!("{s} {name}"), values));
        }
    }
    let max_s = groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .fold(0.0, f64::max);
    let (unit, per) = if max_s >= 2.0 * 3600.0 {
        ("hours", 3600.0)
    } else if max_s >= 120.0 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    };
    let step = nice_step((max_s / per).max(1e-9), 5);
    let top = ((max_s / per) / step).ceil().max(1.0) * step;
    let y = |v: f64| T + (H - T - B) * (1.0 - v / top);
    let title = "Queueing delay by stream: p50, p95 and p99 per policy";
    let mut s = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="11" role="img"><title>{title}</title><rect width="100%" height="100%" fill="white"/><text class="chart-title" x="{L}" y="20" font-size="14" font-weight="bold">{title}</text>"#
    );
    let mut v = 0.0;
    while v <= top + step * 1e-9 {
        let yy = y(v);
        let label = if step < 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        };
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text class="tick y" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            W - R,
            L - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let n = groups.len().max(1) as f64;
    let gw = (W - L - R) / n;
    let policies = r.policies.len().max(1) as f64;
    let bw = (gw * 0.8 / policies).max(1.0);
    for (gi, (label, values)) in groups.iter().enumerate() {
        let g0 = L + gw * gi as f64 + gw * 0.1;
        for (pi, sec) in values.iter().enumerate() {
            let x = g0 + bw * pi as f64;
            let v = sec / per;
            let _ = write!(
                s,
                r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                y(v),
                (bw - 1.0).max(0.5),
                (H - B - y(v)).max(0.0),
                COLORS[pi % COLORS.len()],
                esc(&format!("{} {label}", r.policies[pi].policy)),
                esc(&duration(*sec))
            );
        }
        let cx = L + gw * (gi as f64 + 0.5);
        let _ = write!(
            s,
            r#"<text class="tick x" x="{cx:.1}" y="{:.1}" text-anchor="end" transform="rotate(-35 {cx:.1} {:.1})">{}</text>"#,
            H - B + 14.0,
            H - B + 14.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r##"<line class="axis x" x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line class="axis y" x1="{L}" y1="{T}" x2="{L}" y2="{:.1}" stroke="#333"/><text class="axis-title x" x="{:.1}" y="{:.1}" text-anchor="middle">stream and percentile</text><text class="axis-title y" x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">queueing delay ({unit})</text>"##,
        H - B,
        W - R,
        H - B,
        H - B,
        (L + W - R) / 2.0,
        H - 8.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    // Legend.
    for (pi, p) in r.policies.iter().enumerate() {
        let x = W - R - 150.0 * (r.policies.len() - pi) as f64;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="26" width="10" height="10" fill="{}"/><text class="legend" x="{:.1}" y="35">{}</text>"#,
            COLORS[pi % COLORS.len()],
            x + 14.0,
            esc(&p.policy)
        );
    }
    s.push_str("</svg>");
    s
}

/// One line per replayed trace: its stream, file, format, tasks per pass
/// and the rows it did not replay, by reason.
pub fn trace_lines(r: &Report) -> Vec<String> {
    r.traces
        .iter()
        .map(|t| {
            let dropped = if t.dropped.is_empty() {
                "every row replayed".to_string()
            } else {
                let why: Vec<String> = t
                    .dropped
                    .iter()
                    .map(|(why, n)| format!("{n} {why}"))
                    .collect();
                format!("rows not replayed: {}", why.join(", "))
            };
            format!(
                "stream {} replays {} ({}): {} tasks per pass; {dropped}",
                t.stream, t.file, t.format, t.tasks
            )
        })
        .collect()
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
    for line in trace_lines(r) {
        let _ = write!(h, "<p class=\"note\">{}.</p>", esc(&line));
    }
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
    // Savings plans and reserved capacity, settled hour by hour.
    let rows: Vec<Vec<String>> = r
        .policies
        .iter()
        .flat_map(|p| {
            p.hourly.iter().map(|c| {
                vec![
                    p.policy.clone(),
                    c.name.clone(),
                    c.kind.clone(),
                    c.what.clone(),
                    c.committed_usd.to_string(),
                    c.used_usd.to_string(),
                    format!("{:.1}%", c.utilisation_pct),
                    c.covered_list_usd.to_string(),
                    c.net_savings_usd.to_string(),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        h.push_str("<h2>Savings plans and reserved capacity</h2>");
        h.push_str(&table(
            &[
                "policy",
                "commitment",
                "kind",
                "what",
                "paid>",
                "used>",
                "utilisation>",
                "covered (list)>",
                "net savings>",
            ],
            &rows,
        ));
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
    h.push_str(&delay_chart(r));
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
