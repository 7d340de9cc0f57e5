//! `plan --svg FILE`: the plan as a picture. Three panels: each provider's
//! list spend, bill and commitment; reserved pool utilisation; the dearest
//! workloads by list cost, coloured by provider. Plain SVG, no scripts, no
//! external resources.

use skyward_app::html::esc;
use skyward_model::Usd;
use skyward_placement::{Plan, Status};
use std::fmt::Write as _;

const WIDTH: f64 = 1100.0;
const LABEL_W: f64 = 230.0;
const BAR_W: f64 = WIDTH - LABEL_W - 340.0;
const ROW_H: f64 = 26.0;
const WORKLOADS_SHOWN_MAX: usize = 20;

fn color(provider: &str) -> &'static str {
    match provider {
        "aws" => "#ff9900",
        "azure" => "#0078d4",
        "gcp" => "#34a853",
        "oci" => "#c74634",
        "lambda" => "#7b61ff",
        _ => "#888888",
    }
}

fn money_short(u: Usd) -> String {
    skyward_app::html::money_short(u.as_f64())
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, size: u32, weight: &str, s: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}">{}</text>"#,
        esc(s)
    );
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
    let _ = writeln!(
        out,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{fill}" {extra}/>"#,
        w.max(0.0)
    );
}

pub fn render(p: &Plan, title: &str) -> String {
    let mut body = String::new();
    let mut y = 40.0;
    text(
        &mut body,
        20.0,
        y,
        "start",
        20,
        "bold",
        &format!("Skyward plan: {title}"),
    );
    y += 24.0;
    text(
        &mut body,
        20.0,
        y,
        "start",
        13,
        "normal",
        &format!(
            "total {} (list {}, commitment shortfall {}) · lower bound {} · gap {:.3}% · {} placed, {} infeasible",
            p.total_cost_usd, p.list_cost_usd, p.commitment_shortfall_usd, p.lower_bound_usd, p.gap_pct, p.placed, p.infeasible
        ),
    );

    // Panel 1: providers.
    y += 36.0;
    text(
        &mut body,
        20.0,
        y,
        "start",
        15,
        "bold",
        "Spend by provider: list (light), billed (solid), commitment (line)",
    );
    y += 12.0;
    let max = p
        .providers
        .iter()
        .map(|x| x.list_spend_usd.max(x.cost_usd).max(x.commit_usd).as_f64())
        .fold(1.0, f64::max);
    let scale = BAR_W / max;
    for pr in &p.providers {
        y += ROW_H;
        let c = color(&pr.provider);
        let label = match &pr.contract {
            Some(k) => format!("{} ({k}, {}% off)", pr.provider, pr.discount_pct),
            None => pr.provider.clone(),
        };
        text(
            &mut body,
            LABEL_W - 8.0,
            y + 13.0,
            "end",
            12,
            "normal",
            &label,
        );
        rect(
            &mut body,
            LABEL_W,
            y,
            pr.list_spend_usd.as_f64() * scale,
            18.0,
            c,
            r#"fill-opacity="0.3""#,
        );
        rect(
            &mut body,
            LABEL_W,
            y + 4.0,
            pr.cost_usd.as_f64() * scale,
            10.0,
            c,
            "",
        );
        if pr.commit_usd > Usd::ZERO {
            let x = LABEL_W + pr.commit_usd.as_f64() * scale;
            let _ = writeln!(
                body,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#222" stroke-width="2"/>"##,
                y - 3.0,
                y + 21.0
            );
        }
        let note = if pr.shortfall_usd > Usd::ZERO {
            format!(
                "billed {} · unused commitment {}",
                money_short(pr.cost_usd),
                money_short(pr.shortfall_usd)
            )
        } else {
            format!("billed {}", money_short(pr.cost_usd))
        };
        text(
            &mut body,
            LABEL_W
                + pr.list_spend_usd
                    .max(pr.cost_usd)
                    .max(pr.commit_usd)
                    .as_f64()
                    * scale
                + 8.0,
            y + 13.0,
            "start",
            11,
            "normal",
            &note,
        );
    }

    // Panel 2: reserved pools.
    if !p.reserved.is_empty() {
        y += 48.0;
        text(
            &mut body,
            20.0,
            y,
            "start",
            15,
            "bold",
            "Reserved capacity (prepaid): nodes used of nodes held",
        );
        y += 12.0;
        for r in &p.reserved {
            y += ROW_H;
            text(
                &mut body,
                LABEL_W - 8.0,
                y + 13.0,
                "end",
                12,
                "normal",
                &format!("{} ({}:{})", r.name, r.provider, r.region),
            );
            rect(&mut body, LABEL_W, y, BAR_W, 18.0, "#dddddd", "");
            rect(
                &mut body,
                LABEL_W,
                y,
                BAR_W * r.utilisation_pct / 100.0,
                18.0,
                color(&r.provider),
                "",
            );
            text(
                &mut body,
                LABEL_W + BAR_W + 8.0,
                y + 13.0,
                "start",
                11,
                "normal",
                &format!(
                    "{}/{} ({:.0}%), idle {}/h",
                    r.nodes_used, r.nodes, r.utilisation_pct, r.idle_usd_per_hour
                ),
            );
        }
    }

    // Panel 3: workloads by list cost.
    let mut placed: Vec<_> = p
        .placements
        .iter()
        .filter(|x| x.status == Status::Placed)
        .collect();
    placed.sort_by(|a, b| {
        b.cost_usd
            .cmp(&a.cost_usd)
            .then(a.workload.cmp(&b.workload))
    });
    if !placed.is_empty() {
        y += 48.0;
        let shown = placed.len().min(WORKLOADS_SHOWN_MAX);
        text(
            &mut body,
            20.0,
            y,
            "start",
            15,
            "bold",
            &format!(
                "Workloads by list cost (top {shown} of {}), coloured by provider",
                placed.len()
            ),
        );
        y += 12.0;
        let max = placed
            .first()
            .and_then(|x| x.cost_usd)
            .map(|u| u.as_f64())
            .unwrap_or(1.0)
            .max(1.0);
        for pl in placed.iter().take(shown) {
            y += ROW_H;
            let provider = pl.provider.clone().unwrap_or_default();
            text(
                &mut body,
                LABEL_W - 8.0,
                y + 13.0,
                "end",
                12,
                "normal",
                &pl.workload,
            );
            let cost = pl.cost_usd.unwrap_or(Usd::ZERO);
            rect(
                &mut body,
                LABEL_W,
                y,
                BAR_W * cost.as_f64() / max,
                18.0,
                color(&provider),
                "",
            );
            let what = format!(
                "{} · {}:{} {} {}",
                money_short(cost),
                provider,
                pl.region.clone().unwrap_or_default(),
                pl.sku.clone().unwrap_or_default(),
                pl.pricing.map(|x| x.to_string()).unwrap_or_default()
            );
            text(
                &mut body,
                LABEL_W + BAR_W * cost.as_f64() / max + 8.0,
                y + 13.0,
                "start",
                11,
                "normal",
                &what,
            );
        }
    }
    let infeasible: Vec<_> = p
        .placements
        .iter()
        .filter(|x| x.status == Status::Infeasible)
        .collect();
    if !infeasible.is_empty() {
        y += 44.0;
        text(
            &mut body,
            20.0,
            y,
            "start",
            15,
            "bold",
            &format!("Infeasible ({})", infeasible.len()),
        );
        for pl in infeasible.iter().take(WORKLOADS_SHOWN_MAX) {
            y += 18.0;
            text(
                &mut body,
                30.0,
                y,
                "start",
                11,
                "normal",
                &format!(
                    "{}: {}",
                    pl.workload,
                    pl.reasons.last().cloned().unwrap_or_default()
                ),
            );
        }
    }
    let height = y + 40.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}
