#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Backtests and demand models against series whose answers are known.

use skyward_ledger::backtest::{backtest, BacktestInput};
use skyward_ledger::recommend::{best_covers, demand_model, recommend, savings, RecommendInput};

fn xorshift(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed.max(1);
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Constant demand: every method commits to it and realises exactly the
/// hindsight optimum, 28 % of $100 × 720 h per 30-day origin.
#[test]
fn constant_demand_realises_the_hindsight_optimum() {
    let hourly = vec![100.0; 24 * 150];
    let b = backtest(&BacktestInput {
        hourly: &hourly,
        first_hour: 0,
        discount_pct: 28.0,
        horizon_hours: 720,
        step_hours: 720,
        min_history_hours: 720,
        lookbacks_days: &[7, 30],
        scenarios: 20,
        seed: 1,
    });
    // Origins at days 30, 60, 90, 120 (the last with 30 days after it).
    assert_eq!(b.origins, 4);
    for m in &b.methods {
        assert_eq!(m.origins, 4, "{}", m.method);
        assert!((m.hindsight_savings.as_f64() - 4.0 * 20_160.0).abs() < 0.01);
        assert!(
            (m.pct_of_hindsight.unwrap() - 100.0).abs() < 1e-6,
            "{}",
            m.method
        );
        assert_eq!((m.band_coverage, m.realised_loss_share), (1.0, 0.0));
    }
}

/// Three years of seasonal demand (±30 % over the year) growing 10 %/year,
/// with hourly noise.
fn seasonal(years: usize) -> Vec<f64> {
    let mut r = xorshift(7);
    (0..years * 8_736)
        .map(|t| {
            let y = t as f64 / 8_736.0;
            let season = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * y).sin();
            1_000.0 * 1.1f64.powf(y) * season * (0.9 + 0.2 * r())
        })
        .collect()
}

/// The demand model finds the growth of seasonal data year over year, and
/// committing from it beats compounding the true growth on the recent
/// (peak) level, on the year that follows.
#[test]
fn growth_is_measured_year_over_year_not_compounded_on_a_peak() {
    let all = seasonal(4);
    // History to a quarter into year 3 (just after the seasonal peak).
    let cut = 2 * 8_736 + 8_736 / 4 + 300;
    let (past, future) = (&all[..cut], &all[cut..cut + 8_736]);
    let m = demand_model(past, None);
    assert_eq!(m.kind, "seasonal");
    assert!((m.growth_pct - 10.0).abs() < 2.0, "{}", m.growth_pct);
    let d = 0.28;
    let hindsight = savings(future, best_covers(future, d), d);
    let realised = |growth: Option<f64>, history: &[f64]| {
        let recs = recommend(&RecommendInput {
            hourly: history,
            existing: &[],
            discount_pct: 28.0,
            term_hours: 8_736,
            lookbacks_days: &[30],
            growth_pct: growth,
            scenarios: 40,
            seed: 3,
        });
        let q = recs
            .iter()
            .find(|r| r.method == "skyward-saa")
            .unwrap()
            .covers_usd_per_hour
            .as_f64();
        100.0 * savings(future, q, d) / hindsight
    };
    let measured = realised(None, past);
    // The same method given the true growth but only the last 91 days (as
    // before: growth compounded on the recent level).
    let compounded = realised(Some(10.0), &past[past.len() - 91 * 24..]);
    eprintln!("measured growth: {measured:.1} % of hindsight; compounded on the recent level: {compounded:.1} %");
    assert!(
        measured > 97.0,
        "measured growth: {measured:.1} % of hindsight"
    );
    assert!(
        measured > compounded,
        "measured {measured:.1} % vs compounded {compounded:.1} %"
    );
}

/// On noisy demand with level shifts the predicted bands and loss
/// probabilities are not degenerate: some realised outcomes fall outside a
/// band that was too narrow before (P(loss) = 0 everywhere), and the
/// predicted loss probability is not zero when realised losses happen.
#[test]
fn predictions_are_calibrated_on_shifting_demand() {
    let mut r = xorshift(11);
    let mut level = 1_000.0;
    let hourly: Vec<f64> = (0..24 * 730)
        .map(|t| {
            if t % 720 == 0 {
                level *= (0.75 + 0.5 * r()).max(0.1);
            }
            let weekday = if (t / 24) % 7 < 5 { 1.0 } else { 0.6 };
            level * weekday * (0.7 + 0.6 * r())
        })
        .collect();
    let b = backtest(&BacktestInput {
        hourly: &hourly,
        first_hour: 0,
        discount_pct: 28.0,
        horizon_hours: 90 * 24,
        step_hours: 30 * 24,
        min_history_hours: 60 * 24,
        lookbacks_days: &[30],
        scenarios: 100,
        seed: 5,
    });
    assert!(b.origins >= 20, "{}", b.origins);
    for m in &b.methods {
        eprintln!(
            "{:<18} {:>5.1}% of hindsight, band {:.2}, P(loss) {:.2} vs {:.2}, underused {:.0}% vs {:.0}%",
            m.method,
            m.pct_of_hindsight.unwrap_or(0.0),
            m.band_coverage,
            m.predicted_loss_probability,
            m.realised_loss_share,
            m.predicted_underused_pct,
            m.realised_underused_pct
        );
    }
    let saa = b
        .methods
        .iter()
        .find(|m| m.method == "skyward-saa")
        .unwrap();
    assert!(
        saa.band_coverage >= 0.6,
        "band coverage {}",
        saa.band_coverage
    );
    assert!(
        (saa.predicted_underused_pct - saa.realised_underused_pct).abs() < 15.0,
        "{saa:?}"
    );
}
