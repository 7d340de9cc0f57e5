//! `ledger report --html FILE`: one self-contained page (inline SVG, no
//! scripts, no external resources) with a burn-down chart per spend
//! commitment, daily utilisation of commitments seen in FOCUS rows, and the
//! status and recommendation tables.

use skyward_ledger::status::{BandPoint, ContractStatus};
use skyward_ledger::time::civil_from_days;
use skyward_ledger::Amount;
use std::fmt::Write as _;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn money_short(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1e9 {
        format!("${:.2}B", a / 1e9)
    } else if a >= 1e6 {
        format!("${:.2}M", a / 1e6)
    } else if a >= 1e3 {
        format!("${:.1}k", a / 1e3)
    } else {
        format!("${a:.0}")
    };
    if v < 0.0 {
        format!("-{s}")
    } else {
        s
    }
}

fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

pub struct Series {
    pub name: String,
    pub points: Vec<(i64, f64)>,
    pub color: &'static str,
    pub dash: bool,
}

pub struct Chart {
    pub title: String,
    pub x0: i64,
    pub x1: i64,
    pub y_max: f64,
    pub series: Vec<Series>,
    /// (day, low, high) shaded.
    pub band: Vec<(i64, f64, f64)>,
    pub band_name: String,
    pub y_is_pct: bool,
}

const W: f64 = 900.0;
const H: f64 = 320.0;
const L: f64 = 80.0;
const R: f64 = 45.0;
const T: f64 = 36.0;
const B: f64 = 60.0;

impl Chart {
    fn x(&self, d: i64) -> f64 {
        L + (W - L - R) * (d - self.x0) as f64 / (self.x1 - self.x0).max(1) as f64
    }
    fn y(&self, v: f64) -> f64 {
        T + (H - T - B) * (1.0 - v / self.y_max.max(1e-9))
    }

    pub fn svg(&self) -> String {
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
        );
        let _ = write!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{L}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            esc(&self.title)
        );
        // Y grid and labels.
        for i in 0..=5 {
            let v = self.y_max * f64::from(i) / 5.0;
            let y = self.y(v);
            let label = if self.y_is_pct {
                format!("{:.0}%", v)
            } else {
                money_short(v)
            };
            let _ = write!(
                s,
                r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0
            );
        }
        // X labels: about 8 dates.
        let span = (self.x1 - self.x0).max(1);
        for i in 0..=8 {
            let d = self.x0 + span * i / 8;
            let x = self.x(d);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 4.0,
                H - B + 16.0,
                date(d)
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            H - B,
            W - R,
            H - B
        );
        if self.band.len() > 1 {
            let mut pts: Vec<String> = self
                .band
                .iter()
                .map(|(d, lo, _)| format!("{:.1},{:.1}", self.x(*d), self.y(*lo)))
                .collect();
            pts.extend(
                self.band
                    .iter()
                    .rev()
                    .map(|(d, _, hi)| format!("{:.1},{:.1}", self.x(*d), self.y(*hi))),
            );
            let _ = write!(
                s,
                r##"<polygon points="{}" fill="#4a90d9" fill-opacity="0.18" stroke="none"/>"##,
                pts.join(" ")
            );
        }
        for se in &self.series {
            if se.points.is_empty() {
                continue;
            }
            let pts: Vec<String> = se
                .points
                .iter()
                .map(|(d, v)| format!("{:.1},{:.1}", self.x(*d), self.y(*v)))
                .collect();
            let dash = if se.dash {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                pts.join(" "),
                se.color
            );
        }
        // Legend.
        let mut lx = L;
        let ly = H - 18.0;
        for se in &self.series {
            let dash = if se.dash {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 24.0,
                se.color,
                lx + 28.0,
                ly + 4.0,
                esc(&se.name)
            );
            lx += 40.0 + 6.5 * se.name.len() as f64;
        }
        if !self.band.is_empty() {
            let _ = write!(
                s,
                r##"<rect x="{lx:.1}" y="{:.1}" width="24" height="10" fill="#4a90d9" fill-opacity="0.25"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                ly - 5.0,
                lx + 28.0,
                ly + 4.0,
                esc(&self.band_name)
            );
        }
        s.push_str("</svg>");
        s
    }
}

pub fn amount(a: Amount) -> f64 {
    a.as_f64()
}

/// A shaded band (day, low, high) and its middle line (day, value).
pub type BandSeries = (Vec<(i64, f64, f64)>, Vec<(i64, f64)>);

pub fn band_points(start_day: i64, band: &[BandPoint]) -> BandSeries {
    (
        band.iter()
            .map(|p| (start_day + p.day_offset, amount(p.p10), amount(p.p90)))
            .collect(),
        band.iter()
            .map(|p| (start_day + p.day_offset, amount(p.p50)))
            .collect(),
    )
}

pub fn status_rows(report: &[ContractStatus]) -> String {
    let mut s = String::from("<table><tr><th>contract</th><th>kind</th><th>provider</th><th>committed / paid</th><th>burned / used</th><th>remaining / unused</th><th>forecast P50 at end</th><th>expected shortfall</th><th>P(short)</th><th>utilisation</th><th>coverage</th></tr>");
    for r in report {
        let row = match r {
            ContractStatus::Spend(x) => vec![
                x.name.clone(),
                "spend".into(),
                x.provider.clone(),
                x.committed.to_string(),
                format!("{} ({:.1}%)", x.burned, x.burned_pct),
                x.remaining.to_string(),
                x.forecast
                    .as_ref()
                    .map(|f| f.p50.to_string())
                    .unwrap_or_default(),
                x.forecast
                    .as_ref()
                    .map(|f| f.expected_shortfall.to_string())
                    .unwrap_or_default(),
                x.forecast
                    .as_ref()
                    .map(|f| format!("{:.0}%", 100.0 * f.shortfall_probability))
                    .unwrap_or_default(),
                String::new(),
                String::new(),
            ],
            ContractStatus::Hourly(h) => vec![
                h.name.clone(),
                format!("hourly ({})", h.instrument.as_str()),
                h.provider.clone(),
                h.committed.to_string(),
                h.used.to_string(),
                h.unused.to_string(),
                String::new(),
                String::new(),
                String::new(),
                h.utilisation
                    .map(|v| format!("{:.1}%", 100.0 * v))
                    .unwrap_or_default(),
                h.coverage
                    .map(|v| format!("{:.1}%", 100.0 * v))
                    .unwrap_or_default(),
            ],
            ContractStatus::Capacity(c) => vec![
                c.name.clone(),
                "capacity".into(),
                c.provider.clone(),
                c.paid.to_string(),
                c.used
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                c.unused.map(|v| v.to_string()).unwrap_or_default(),
                String::new(),
                String::new(),
                String::new(),
                c.utilisation
                    .map(|v| format!("{:.1}%", 100.0 * v))
                    .unwrap_or_default(),
                String::new(),
            ],
        };
        s.push_str("<tr>");
        for c in row {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

pub const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;font-size:13px}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}h2{margin-top:32px}.note{color:#666;font-size:12px}";
