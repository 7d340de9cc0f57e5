//! `ledger report --html FILE`: one self-contained page (inline SVG, no
//! scripts, no external resources) with a burn-down chart per spend
//! commitment, daily utilisation of commitments seen in FOCUS rows, and the
//! status and recommendation tables.

use skyward_ledger::status::ContractStatus;
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
    /// Axis titles, with units.
    pub x_title: String,
    pub y_title: String,
    /// A reference line across the chart (value, label), e.g. 100 %.
    pub hline: Option<(f64, String)>,
    /// The date the data ends (a vertical "today" line), if inside.
    pub now: Option<i64>,
}

const W: f64 = 900.0;
const H: f64 = 330.0;
const L: f64 = 88.0;
const R: f64 = 45.0;
const T: f64 = 36.0;
const B: f64 = 74.0;

/// A "nice" tick step (1, 2, 2.5 or 5 × 10^k) giving about `target` ticks
/// up to `max`.
pub fn nice_step(max: f64, target: usize) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= raw * 0.999_999 {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A tick label: $10M, $12.5M, $750k, 40% (no needless decimals).
pub fn tick_label(v: f64, pct: bool) -> String {
    let trim = |x: f64| {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if pct {
        return format!("{}%", trim(v));
    }
    let a = v.abs();
    let body = if a >= 1e9 {
        format!("${}B", trim(a / 1e9))
    } else if a >= 1e6 {
        format!("${}M", trim(a / 1e6))
    } else if a >= 1e3 {
        format!("${}k", trim(a / 1e3))
    } else {
        format!("${}", trim(a))
    };
    if v < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// Date ticks: years, quarters, months or weeks, whichever gives 3–12.
fn date_ticks(x0: i64, x1: i64) -> Vec<(i64, String)> {
    let span = (x1 - x0).max(1);
    let (y0, _, _) = civil_from_days(x0);
    let month_start = |y: i64, m: i64| -> i64 {
        let total = y * 12 + m;
        skyward_ledger::time::days_from_civil(
            total.div_euclid(12),
            (total.rem_euclid(12) + 1) as u32,
            1,
        )
    };
    let step_months = if span > 4 * 365 {
        12
    } else if span > 2 * 365 {
        6
    } else if span > 300 {
        3
    } else if span > 75 {
        1
    } else {
        0
    };
    let mut out = Vec::new();
    if step_months == 0 {
        let mut d = x0 + (7 - (x0 + 3).rem_euclid(7)) % 7; // Mondays
        while d <= x1 {
            out.push((d, date(d)));
            d += 7 * ((span / 7 / 10) + 1);
        }
        return out;
    }
    let mut k = 0i64;
    loop {
        let d = month_start(y0 - 1, k);
        k += step_months;
        if d < x0 {
            continue;
        }
        if d > x1 || out.len() > 40 {
            break;
        }
        let (y, m, _) = civil_from_days(d);
        if (m as i64 - 1) % step_months == 0 {
            let label = if step_months == 12 {
                format!("{y}")
            } else {
                format!("{y:04}-{m:02}")
            };
            out.push((d, label));
        }
    }
    out
}

impl Chart {
    fn x(&self, d: i64) -> f64 {
        L + (W - L - R) * (d - self.x0) as f64 / (self.x1 - self.x0).max(1) as f64
    }
    fn top(&self) -> f64 {
        let step = nice_step(self.y_max, 5);
        (self.y_max / step).ceil().max(1.0) * step
    }
    fn y(&self, v: f64) -> f64 {
        T + (H - T - B) * (1.0 - v / self.top().max(1e-9))
    }

    pub fn svg(&self) -> String {
        let mut s = format!(
            r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="11" role="img"><title>{}</title>"#,
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text class="chart-title" x="{L}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            esc(&self.title)
        );
        // Y grid at nice ticks.
        let step = nice_step(self.y_max, 5);
        let top = self.top();
        let mut v = 0.0;
        while v <= top + step * 1e-9 {
            let y = self.y(v);
            let _ = write!(
                s,
                r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text class="tick y" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0,
                tick_label(v, self.y_is_pct)
            );
            v += step;
        }
        // X ticks at calendar boundaries.
        for (d, label) in date_ticks(self.x0, self.x1) {
            let x = self.x(d);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text class="tick x" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 4.0,
                H - B + 16.0,
                esc(&label)
            );
        }
        // Axes and their titles.
        let _ = write!(
            s,
            r##"<line class="axis x" x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line class="axis y" x1="{L}" y1="{T}" x2="{L}" y2="{:.1}" stroke="#333"/>"##,
            H - B,
            W - R,
            H - B,
            H - B
        );
        let _ = write!(
            s,
            r##"<text class="axis-title x" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text><text class="axis-title y" x="16" y="{:.1}" text-anchor="middle" fill="#444" transform="rotate(-90 16 {:.1})">{}</text>"##,
            (L + W - R) / 2.0,
            H - B + 32.0,
            esc(&self.x_title),
            (T + H - B) / 2.0,
            (T + H - B) / 2.0,
            esc(&self.y_title)
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
        if let Some((v, label)) = &self.hline {
            let y = self.y(*v);
            let _ = write!(
                s,
                r##"<line class="reference" x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c0392b" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c0392b">{}</text>"##,
                W - R,
                W - R - 4.0,
                y - 4.0,
                esc(label)
            );
        }
        if let Some(now) = self.now.filter(|d| *d > self.x0 && *d < self.x1) {
            let x = self.x(now);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" fill="#555">{}</text>"##,
                H - B,
                x + 3.0,
                T + 10.0,
                date(now)
            );
        }
        for se in &self.series {
            let pts: Vec<String> = se
                .points
                .iter()
                .filter(|(d, _)| *d >= self.x0 && *d <= self.x1)
                .map(|(d, v)| format!("{:.1},{:.1}", self.x(*d), self.y(*v)))
                .collect();
            if pts.is_empty() {
                continue;
            }
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
        let ly = H - 14.0;
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

pub fn status_rows(report: &[ContractStatus]) -> String {
    let pct = |v: Option<f64>| v.map(|x| format!("{:.1}%", 100.0 * x)).unwrap_or_default();
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|r| match r {
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
                (x.list_spend - x.effective_spend).to_string(),
                pct(x.effective_savings_rate),
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
                pct(h.utilisation),
                pct(h.coverage),
                h.net_savings.map(|v| v.to_string()).unwrap_or_default(),
                String::new(),
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
                pct(c.utilisation),
                String::new(),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    table(
        &[
            "contract",
            "kind",
            "provider",
            "committed / paid>",
            "burned / used>",
            "remaining / unused>",
            "forecast P50 at end>",
            "expected shortfall>",
            "P(short)>",
            "utilisation>",
            "coverage>",
            "net savings>",
            "savings rate>",
        ],
        &rows,
    )
}

pub const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1880px}table{border-collapse:collapse;margin:8px 0 24px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}h2{margin-top:32px}.note{color:#666;font-size:12px}.pair{display:flex;flex-wrap:wrap;gap:12px}";

/// A table with a header; columns whose header ends in `>` are numbers
/// (right-aligned), the rest text (left-aligned).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let num: Vec<bool> = headers.iter().map(|h| h.ends_with('>')).collect();
    let mut s = String::from("<table><tr>");
    for (h, n) in headers.iter().zip(&num) {
        let _ = write!(
            s,
            "<th{}>{}</th>",
            if *n { " class=\"num\"" } else { "" },
            esc(h.trim_end_matches('>'))
        );
    }
    s.push_str("</tr>");
    for r in rows {
        s.push_str("<tr>");
        for (c, n) in r.iter().zip(num.iter().chain(std::iter::repeat(&false))) {
            let _ = write!(
                s,
                "<td{}>{}</td>",
                if *n { " class=\"num\"" } else { "" },
                esc(c)
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}
